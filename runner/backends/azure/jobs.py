"""Azure ML jobs: submitting them (as CLI v2 files the SDK loads, secrets set in memory),
polling, waiting, cancelling, reading what a finished run recorded, and their logs. Every SDK is
imported lazily, inside the calls."""

from __future__ import annotations

import contextlib
import io
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from ...errors import UserError
from ...records import Run, RunChange, Submission
from ...spec import Job, Spec
from ...state import now
from ..base import TERMINAL, new_run
from .client import Session, _sdk_stderr
from .errors import plain_errors

STATUS = {
    "Completed": "Completed",
    "Failed": "Failed",
    "NotResponding": "Failed",
    "Canceled": "Canceled",
    "CancelRequested": "Canceled",
}
POLL_SECONDS = 5.0
NO_ERROR = "the job failed on Azure ML: see mlrun logs"  # Azure said nothing more


def poll(session: Session, run: Run) -> RunChange:
    if run.get("status") in TERMINAL:
        return {}
    from azure.core.exceptions import ResourceNotFoundError

    with plain_errors(f"run {run['id'][:7]}"):
        try:
            job = session.ml().jobs.get(run["id"])
        except ResourceNotFoundError:
            # named but never submitted (mlrun stopped in between): nothing ran
            return {"status": "Canceled", "error": "mlrun stopped before the job was submitted"}
    status = STATUS.get(job.status, job.status)
    out: RunChange = {"status": status}
    if status in TERMINAL:
        out["ended"] = now()
        if status == "Failed":
            out["error"] = _job_error(job)
    return out


def child(session: Session, run: Run, name: str) -> Run | None:
    """The child job of a pipeline job that ran the step shown as `name`; a nested pipeline's
    step (`OUTER.INNER`, as plans show it) is a child of the child job that ran OUTER."""
    found, parent = None, run["id"]
    with plain_errors(f"run {run['id'][:7]}"):
        for part in name.split("."):
            jobs = session.ml().jobs.list(parent_job_name=parent)
            found = next((j for j in jobs if part in (j.display_name, j.name)), None)
            if found is None:
                return None
            parent = found.name
    if found is None:
        return None
    status = STATUS.get(found.status, found.status)
    return {"id": found.name, "status": status, "studio_url": found.studio_url}


def submit(
    session: Session,
    spec: Spec,
    job: Job,
    record: Submission,
    on_start: Callable[[Run], None],
    lock: threading.Lock,
) -> Run:
    import yaml
    from azure.ai.ml import load_job

    from ...export import job_document, put_secrets

    name = uuid.uuid4().hex  # like an MLflow run id: Azure ML's run id is the job's name
    run: Run = {**new_run(record, name), "status": "Preparing", "submitted": now()}
    on_start(run)  # named in the state before Azure hears of it: a crash here is adoptable
    # one submission at a time: jobs sharing a code folder upload the same
    # content-addressed blob
    with (
        lock,
        plain_errors(f"job.{job.name}"),
        tempfile.TemporaryDirectory(prefix="mlrun-job-") as tmp,
    ):
        path = Path(tmp) / f"{job.name}.yml"
        path.write_text(yaml.safe_dump(job_document(spec, job, Path(tmp)), sort_keys=False))
        entity = load_job(path)
        put_secrets(entity, job)  # the file holds them as (sensitive): the values stay in memory
        entity.name = name
        entity.properties = {
            **(entity.properties or {}),
            "mlrun.fingerprint": record["fingerprint"],
            "mlrun.job": job.name,
        }
        entity.tags = {**(entity.tags or {}), "mlrun.job": job.name}
        with _sdk_stderr():
            created = session.ml().jobs.create_or_update(entity)
    run.update(
        {
            "status": STATUS.get(created.status, created.status or "NotStarted"),
            "started": now(),
            "studio_url": created.studio_url,
        }
    )
    return run


def import_data(session: Session, asset, attrs: dict, poll_seconds: float = POLL_SECONDS) -> dict:
    """`az ml data import`: the SDK's import_data submits a pipeline job that copies the source
    (through its connection) into the asset's path and registers the version; waited on as any
    job, its failure the resource's."""
    from azure.ai.ml.data_transfer import Database, FileSystem
    from azure.ai.ml.entities import DataImport

    source = dict(asset.fields["source"])
    kind = source.pop("type")
    entity = DataImport(
        name=asset.name,
        version=attrs["version"],
        path=asset.path,
        source=Database(**source) if kind == "database" else FileSystem(**source),
        description=asset.fields.get("description"),
        tags={**(asset.fields.get("tags") or {}), "mlrun.content": attrs["content"]},
    )
    with _sdk_stderr():
        job = session.ml().data.import_data(entity)
    run: Run = {"id": job.name, "status": "NotStarted"}
    while (change := poll(session, run)).get("status") not in TERMINAL:
        time.sleep(poll_seconds)
    if change["status"] != "Completed":
        why = change.get("error")
        raise UserError(
            f"the import job {job.name} ended {change['status']}"
            + (f": {why}" if why and why != NO_ERROR else "")
            + f" (its log: {job.studio_url})"
        )
    return {"import_job": job.name, "studio_url": job.studio_url}


def wait(session: Session, run: Run, poll_seconds: float) -> RunChange:
    if not session.made("mlflow"):  # the closing report needs it: import azureml-mlflow meanwhile
        threading.Thread(
            target=_warm_client, args=(session,), daemon=True, name="mlflow-import"
        ).start()
    while True:
        change = poll(session, run)
        if change.get("status") in TERMINAL:
            return change
        time.sleep(poll_seconds)


def _warm_client(session: Session) -> None:
    try:
        session.client()
    except Exception:  # noqa: BLE001  (the report makes it again and says what went wrong)
        pass


def cancel(session: Session, run: Run) -> None:
    with plain_errors():
        session.ml().jobs.begin_cancel(run["id"])


def finalize(session: Session, run: Run) -> None:
    """Azure ML records the run itself: read it once (retried while its history lags the job),
    for the closing report to reuse."""
    if run.get("status") != "Completed":
        return
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            session.client().keep(
                session.client().get_run(run["id"])
            )  # what the closing report reads
            return
        except UserError:  # refused (MLflow itself retried what is transient): the report says why
            return
        except Exception:  # noqa: BLE001  (metrics lag the job's completion: retry)
            time.sleep(2)


def run_url(run: Run) -> str:
    return run.get("studio_url") or f"https://ml.azure.com/runs/{run['id']}"


def logs(session: Session, run: Run, follow: bool, out) -> None:
    """The job's user_logs/std_log.txt from its run history (what `az ml job stream` reads);
    with `follow` and a running job, Azure ML's stream until it ends."""
    with plain_errors():
        if follow and poll(session, run).get("status", run.get("status")) not in TERMINAL:
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                session.ml().jobs.stream(run["id"])
            out.write(buffer.getvalue().encode())
        else:
            details = session.ml().jobs._runs_operations.get_run_details(run["id"])
            url = (details.log_files or {}).get("user_logs/std_log.txt")
            if url is None:
                raise UserError(f"run {run['id']} has no user_logs/std_log.txt yet")
            out.write(_download(url))
    out.flush()


def _download(url: str) -> bytes:
    from azure.core.pipeline.transport import RequestsTransport
    from azure.core.rest import HttpRequest

    with RequestsTransport() as transport:
        response = transport.send(HttpRequest("GET", url))
        response.raise_for_status()
        return response.body()


def _job_error(job) -> str:
    error = getattr(job, "error", None) or (job.properties or {}).get("error")
    return str(error) if error else NO_ERROR
