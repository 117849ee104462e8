"""Models registered in a local workspace's MLflow Model Registry (`az ml model create`), so that
`mlflow.pyfunc.load_model("models:/NAME/VERSION")` loads them against the workspace's tracking
URI. A model comes from a folder (registered as a copy kept by its digest in WS/models/.content,
so editing the folder later changes no version), from a job's named output (logged as the run's
artifact of that name), or from a folder of the job's run artifacts (an autologged model too,
which MLflow 3 keeps as a logged model of the run rather than in its artifacts)."""

from __future__ import annotations

import dataclasses
import threading
import urllib.parse
from pathlib import Path
from typing import Any

from .. import fingerprint
from ..errors import UserError
from ..formats import short
from ..models import Model
from . import assets

LAB = "mlrun.lab"  # the tag of the versions a lab registered (destroy removes those only)


def register(
    client: Any, lock: threading.Lock, root: Path, lab: str, model: Model, attrs: dict, run
) -> dict:
    """Register `model` (from `run`, its job's completed run, if it comes from one); its details:
    `version` (the spec's own, or the registry's number), `registry_version`, `uri`."""
    tags = {str(k): str(v) for k, v in (model.fields.get("tags") or {}).items()}
    tags.update({str(k): str(v) for k, v in (model.fields.get("properties") or {}).items()})
    if model.fields.get("stage"):
        tags["stage"] = str(model.fields["stage"])
    tags.update({LAB: lab, "mlrun.content": attrs["content"], "mlrun.type": model.type})
    if model.version is not None:
        tags["mlrun.version"] = model.version
    if run is not None and model.job is not None:
        tags.update({"mlrun.run": run["id"], "mlrun.job": model.job.job})
    with lock:
        newest = _versions(client, model.name)[-1:]
    if (
        newest
        and all(newest[0].tags.get(k) == tags[k] for k in (LAB, "mlrun.content"))
        and (newest[0].tags.get("mlrun.run") == tags.get("mlrun.run"))
    ):  # registered by an apply that stopped before recording it
        return _details(model, newest[0])
    source, model_id = _source(root, client, model, attrs, run)
    from mlflow.exceptions import MlflowException

    with lock:
        try:
            client.create_registered_model(model.name)
        except MlflowException as e:
            if e.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = client.create_model_version(
            model.name,
            source,
            run_id=run["id"] if run else None,
            tags=tags,
            description=model.fields.get("description"),
            model_id=model_id,
        )
    return _details(model, version)


def _details(model: Model, version: Any) -> dict:
    number = str(version.version)
    return {
        "version": model.version or number,
        "registry_version": number,
        "uri": f"models:/{model.name}/{number}",
        "source": version.source,
    }


def _versions(client: Any, name: str) -> list:
    """The registered versions of `name`, oldest first (none: [])."""
    found = client.search_model_versions(f"name = '{name}'")
    return sorted(found, key=lambda v: int(v.version))


def _source(root: Path, client: Any, model: Model, attrs: dict, run) -> tuple[str, str | None]:
    """Where the model's files are, as the registry records them, and the MLflow logged model it
    is (if it is one)."""
    if model.job is None:
        assert model.local is not None, f"model {model.name} has neither a folder nor a job"
        if model.type == "mlflow_model" and not (model.local / "MLmodel").is_file():
            raise UserError(f"model.{model.name}: {model.local} has no MLmodel file")
        digest, path = assets.keep(
            root / "models",
            model.local,
            lambda copy: fingerprint.model(dataclasses.replace(model, local=copy)).startswith(
                attrs["content"]
            ),
            f"model.{model.name}",
        )
        return path.as_uri(), None
    artifacts = Path(urllib.parse.unquote(urllib.parse.urlparse(run["artifact_uri"]).path))
    origin = f"run {short(run['id'])} of job.{model.job.job}"
    path = artifacts / model.job.artifact_path
    if path.exists():
        if model.type == "mlflow_model" and not (path / "MLmodel").is_file():
            raise UserError(
                f"model.{model.name}: {model.job.within} of {origin} has no MLmodel file, which "
                "an mlflow_model needs (is it a custom_model?)"
            )
        return path.as_uri(), None
    if model.job.output is None and "/" not in model.job.sub:  # an MLflow 3 logged model
        found = _logged_model(client, run, model.job.sub)
        if found is not None:
            return found.artifact_location, found.model_id
    have = sorted(p.name for p in artifacts.iterdir()) if artifacts.is_dir() else []
    raise UserError(
        f"model.{model.name}: {origin} has nothing at {model.job.within} "
        f"(its artifacts: {', '.join(have) or 'none'})"
    )


def _logged_model(client: Any, run: dict, name: str) -> Any:
    """The MLflow 3 logged model `name` the run made: one whose source run it is, else one logged
    in its experiment while it ran with no source run (a script that logs a model without
    start_run: MLflow 3 then links it to no run, though MLFLOW_RUN_ID names the job's)."""
    experiments = [run["experiment_id"]]
    own = client.search_logged_models(
        experiments, filter_string=f"source_run_id = '{run['id']}' AND name = '{name}'"
    )
    if own:
        return own[-1]
    info = client.get_run(run["id"]).info
    end = info.end_time or float("inf")
    unlinked = [
        m
        for m in client.search_logged_models(experiments, filter_string=f"name = '{name}'")
        if not m.source_run_id and info.start_time <= m.creation_timestamp <= end
    ]
    return max(unlinked, key=lambda m: m.creation_timestamp) if unlinked else None


def local_path(client: Any, lock: threading.Lock, name: str, version: str | None) -> Path | None:
    """The folder of a registered model's version (`version` as the spec numbers it, else the
    registry's; None: the latest), as a job input reads it; None if there is no such version."""
    with lock:
        found = _versions(client, name) if _exists(client, name) else []
        if version is not None:
            found = [v for v in found if version in (v.tags.get("mlrun.version"), str(v.version))]
        if not found:
            return None
        uri = client.get_model_version_download_uri(name, found[-1].version)
    parsed = urllib.parse.urlparse(uri)
    return Path(urllib.parse.unquote(parsed.path)) if parsed.scheme in ("", "file") else None


def _exists(client: Any, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        return False
    return True


def remove(client: Any, lock: threading.Lock, lab: str, name: str) -> None:
    """The versions of `name` that lab `lab` registered; the model too once it has none left."""
    with lock:
        found = _versions(client, name)
        for version in found:
            if version.tags.get(LAB) == lab:
                client.delete_model_version(name, version.version)
        if found and all(v.tags.get(LAB) == lab for v in found):
            client.delete_registered_model(name)


def made_by_runs(client: Any, lock: threading.Lock, name: str) -> list[tuple[str, str]]:
    """(version, run id) of each version of `name` a run made."""
    with lock:
        found = _versions(client, name)
    return [(v.tags.get("mlrun.version") or str(v.version), v.run_id) for v in found if v.run_id]
