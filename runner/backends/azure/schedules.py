"""Schedules on Azure (`az ml schedule create`): made or updated with
`ml_client.schedules.begin_create_or_update` (the trigger, and the job as a pipeline job:
azure-ai-ml schedules command jobs only in private preview, so one is sent as a one-step
pipeline), enabled or disabled with `begin_enable` / `begin_disable`, read back for refresh and
deleted by destroy (`begin_delete`)."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

from ...refs import is_local
from ...schedules import Schedule, as_pipeline
from ...spec import Spec
from .client import Session, _sdk_stderr


def _trigger(fields: dict) -> Any:
    from azure.ai.ml.entities import CronTrigger, RecurrencePattern, RecurrenceTrigger

    when = {k: str(fields[k]) for k in ("start_time", "end_time") if fields.get(k)}
    zone = fields.get("time_zone") or "UTC"
    if fields.get("type") == "cron":
        return CronTrigger(expression=fields["expression"], time_zone=zone, **when)
    pattern = dict(fields.get("schedule") or {})
    days = pattern.get("week_days")
    if days:  # Azure's words: Monday, Week
        pattern["week_days"] = [
            str(d).capitalize() for d in (days if isinstance(days, list) else [days])
        ]
    return RecurrenceTrigger(
        frequency=str(fields["frequency"]).capitalize(),
        interval=fields["interval"],
        schedule=RecurrencePattern(**pattern) if pattern else None,
        time_zone=zone,
        **when,
    )


def _job(spec: Spec, sched: Schedule, tmp: Path) -> Any:
    """The job the schedule submits, as the SDK's entity (a job of the spec written as it is
    submitted, a job file read, or azureml:NAME passed on)."""
    import yaml
    from azure.ai.ml import load_job

    from ...export import job_document, put_secrets

    if sched.job_ref is not None:
        return sched.job_ref
    if sched.job is not None:
        job = spec.jobs[sched.job]
        doc = job_document(spec, job, tmp)
        folder, step = tmp, sched.job
    else:
        assert sched.job_file is not None  # validate: a schedule names its job
        doc = yaml.safe_load(sched.job_file.read_text(encoding="utf-8")) or {}
        folder, step = sched.job_file.parent, sched.job_file.stem.replace(".", "_")
    doc = as_pipeline(doc, step, sched.overrides)
    for node in (doc.get("jobs") or {}).values():  # the SDK refuses a step's code with '..'
        if isinstance(node, dict) and is_local(node.get("code")):
            node["code"] = str((folder / node["code"]).resolve())
    text = yaml.safe_dump(doc, sort_keys=False)
    entity = load_job(io.StringIO(text), relative_origin=str(folder))  # its paths: from there
    if sched.job is not None and not job.is_pipeline:
        (node,) = entity.jobs.values()  # type: ignore[attr-defined]  # the one step
        put_secrets(node, job)  # in memory only
    elif sched.job is not None:
        put_secrets(entity, job)
    return entity


def create(session: Session, spec: Spec, name: str, attrs: dict) -> dict:
    """az ml schedule create (enabled), then az ml schedule disable when the spec says so."""
    return _put(session, spec, name, attrs, was=True)


def update(session: Session, spec: Spec, name: str, attrs: dict) -> dict:
    """az ml schedule update (made again in place, enabled or not as it was), then enable or
    disable when `enabled` changes."""
    found = live(session, name)
    return _put(session, spec, name, attrs, was=True if found is None else found["enabled"])


def _imports(sched: Schedule) -> Any:
    """A data import schedule, as the SDK loads an az ml schedule file with import_data (its
    import file read where it is)."""
    import yaml
    from azure.ai.ml.entities._load_functions import load_schedule

    doc = {"name": sched.name, **sched.fields, "trigger": sched.trigger_fields}
    doc["import_data"] = sched.imports
    if sched.imports_file is not None:  # (the SDK reads it against the working directory)
        doc["import_data"] = str(sched.imports_file)
    return load_schedule(io.StringIO(yaml.safe_dump(doc, sort_keys=False)))


def _put(session: Session, spec: Spec, name: str, attrs: dict, was: bool) -> dict:
    from azure.ai.ml.entities import JobSchedule

    sched = spec.schedules[name]
    with tempfile.TemporaryDirectory(prefix="mlrun-schedule-") as tmp, _sdk_stderr():
        entity = (
            _imports(sched)
            if sched.imports is not None
            else JobSchedule(
                name=name,
                trigger=_trigger(sched.trigger_fields),
                create_job=_job(spec, sched, Path(tmp)),
                display_name=sched.fields.get("display_name"),
                description=sched.fields.get("description"),
                tags={str(k): str(v) for k, v in (sched.fields.get("tags") or {}).items()},
                properties={
                    str(k): str(v) for k, v in (sched.fields.get("properties") or {}).items()
                },
            )
        )
        entity._is_enabled = was  # as it is: enable and disable are their own calls
        ops = session.ml().schedules
        made = ops.begin_create_or_update(entity).result()
        want = attrs.get("enabled", True) is not False
        if want != was:
            made = (ops.begin_enable if want else ops.begin_disable)(name).result()
    return {"id": made.id, "enabled": made.is_enabled}


def live(session: Session, name: str) -> dict | None:
    """What refresh compares: whether it is enabled, and its own words (the trigger and job as
    the state keeps them: Azure spells them its own way)."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        with _sdk_stderr():
            found = session.ml().schedules.get(name)
    except ResourceNotFoundError:
        return None
    out = {
        "enabled": bool(found.is_enabled),
        "display_name": found.display_name,
        "description": found.description,
    }
    return {k: v for k, v in out.items() if v is not None}


def delete(session: Session, name: str) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        with _sdk_stderr():
            session.ml().schedules.begin_delete(name).result()
    except ResourceNotFoundError:
        pass
