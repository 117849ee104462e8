"""Schedules (the spec's `schedules:`, az ml schedule create): each a trigger (triggers.py) and the
job it submits (a job of the spec, a job file, or azureml:NAME on Azure) or a data import (Azure
only), read and checked with located errors, and described for plans and status with its next
three fire times in its time zone. Nothing fires by itself on a target that runs here: a
schedule's job runs by hand (mlrun apply --only JOB). Stdlib only: validate and plan read them."""

from __future__ import annotations

import datetime as dt
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import triggers
from .refs import mapping, relative_to, unresolved

if TYPE_CHECKING:
    from .yamldoc import Doc

FIELDS = ("display_name", "description", "tags", "properties")  # the CLI v2 fields kept as given
OWN = ("file", "$schema", "name", "enabled")  # not the schedule's definition on Azure
AZURE_ONLY = "runs on Azure only (a data import)"


@dataclass(frozen=True)
class Schedule:
    name: str
    fields: dict  # the CLI v2 fields (FIELDS)
    trigger_fields: dict  # as the spec gives them
    trigger: triggers.Trigger | None  # None: the trigger is wrong (validate said so)
    job: str | None = None  # a job of this spec
    job_file: Path | None = None  # an az ml job file
    job_ref: str | None = None  # azureml:NAME, a job already on Azure
    overrides: dict = field(default_factory=dict)  # create_job's other fields (inputs, settings)
    imports: Any = None  # import_data: a data import (Azure only), a file or inline
    imports_file: Path | None = None  # import_data's file
    enabled: bool = True

    @property
    def runs(self) -> str:
        """What it submits, in a few words: `job.train`, `jobs/x.yml`, `azureml:x`."""
        if self.job:
            return f"job.{self.job}"
        if self.job_file is not None:
            return self.job_file.name
        return self.job_ref or "a data import"

    def attrs(self, job_fingerprint: str | None = None) -> dict:
        """What a plan compares and the state keeps: the definition, and the fingerprint of the
        spec's job it submits (a changed job changes the schedule on Azure, which holds it)."""
        out: dict = {k: self.fields[k] for k in FIELDS if self.fields.get(k) is not None}
        out["trigger"] = dict(self.trigger_fields)
        out["create_job"] = self.runs if self.imports is None else None
        if self.job_file is not None:
            out["create_job"] = str(self.job_file)
        if self.overrides:
            out["overrides"] = self.overrides
        if self.imports is not None:
            out["import_data"] = self.imports if isinstance(self.imports, str) else "inline"
        if job_fingerprint:
            out["job"] = job_fingerprint[:16]
        out["enabled"] = self.enabled
        return {k: v for k, v in out.items() if v is not None}

    def next(self, after: dt.datetime | None = None, count: int = 3) -> list[dt.datetime]:
        if self.trigger is None:
            return []
        return self.trigger.next(after or dt.datetime.now(dt.UTC), count)


def read(doc: Doc, data: dict) -> dict[str, Schedule]:
    """The spec's schedules, each checked (its problems said on `doc`)."""
    jobs = mapping(data.get("jobs"))
    out = {}
    for name, block in mapping(data.get("schedules")).items():
        at = ("schedules", name)
        if not isinstance(block, dict) or at in doc.broken:
            continue
        out[name] = _read(doc, at, name, block, jobs)
    return out


def _read(doc: Doc, at: tuple, name: str, block: dict, jobs: dict) -> Schedule:
    trigger = None
    given = block.get("trigger")
    if not isinstance(given, dict):
        if given is None:
            doc.problem(at, "missing required key 'trigger' (cron or recurrence)", key=True)
    elif not any(unresolved(v) for v in given.values()):
        try:
            trigger = triggers.read(given)
        except triggers.TriggerError as e:
            doc.problem(at + ("trigger", *e.field[: 1 if e.field[0] in given else 0]), str(e))
    create, imports = block.get("create_job"), block.get("import_data")
    if create is None and imports is None:
        doc.problem(at, "missing required key 'create_job' (the job it submits)", key=True)
    elif create is not None and imports is not None:
        doc.problem(at + ("import_data",), "a schedule has create_job or import_data, not both")
    found: dict = {}
    if imports is not None and create is None:
        found["imports"] = imports
        if isinstance(imports, str) and not unresolved(imports):
            found["imports_file"] = path = relative_to(doc, at + ("import_data",), imports)
            if not path.is_file():
                doc.problem(at + ("import_data",), f"'{imports}' is not a file (a data import)")
    elif isinstance(create, dict):
        found = _job(doc, at + ("create_job", "job"), create.get("job"), jobs)
        found["overrides"] = {k: v for k, v in create.items() if k != "job"}
    elif create is not None:
        found = _job(doc, at + ("create_job",), create, jobs)
    return Schedule(
        name,
        {k: block[k] for k in FIELDS if k in block},
        {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in mapping(given).items()},
        trigger,
        enabled=block.get("enabled", True) is not False,
        **found,
    )


def _job(doc: Doc, at: tuple, ref: Any, jobs: dict) -> dict:
    """create_job's job: a job of this spec, azureml:NAME, or a job file that exists."""
    if not isinstance(ref, str) or unresolved(ref):
        return {}  # the schema check says what is wrong
    if ref in jobs:
        return {"job": ref}
    if ref.startswith("azureml:"):
        return {"job_ref": ref}
    path = relative_to(doc, at, ref.removeprefix("file:"))
    if path.is_file():
        return {"job_file": path}
    close = difflib.get_close_matches(ref, list(jobs), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    defined = ", ".join(sorted(jobs)) or "none"
    doc.problem(
        at,
        f"'{ref}' is not a job of this spec ({hint}defined: {defined}), azureml:NAME, "
        "nor a job file that exists",
    )
    return {}


# --- what plans and status say -------------------------------------------------------------------


def trigger_text(t: dict) -> str:
    """`cron '0 2 * * *' UTC`, `every 2 weeks (monday, friday at 9:00) Pacific Standard Time`."""
    zone = t.get("time_zone") or triggers.UTC
    if t.get("type") == "cron":
        return f"cron '{t.get('expression')}' {zone}"
    n, unit = t.get("interval"), t.get("frequency")
    text = f"every {unit}" if n == 1 else f"every {n} {unit}s"
    pattern = mapping(t.get("schedule"))
    if pattern:
        days = pattern.get("week_days") or pattern.get("month_days")
        hours, minutes = _listed(pattern.get("hours")), _listed(pattern.get("minutes"))
        at = ", ".join(f"{h}:{m:02d}" for h in hours for m in minutes if isinstance(m, int))
        text += f" ({_joined(days)} at {at})" if days else f" (at {at})"
    return f"{text} {zone}"


def _listed(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _joined(value: Any) -> str:
    return ", ".join(str(v) for v in _listed(value))


def fires(attrs: dict, after: dt.datetime | None = None) -> str:
    """`next 2026-12-08 02:00 +00:00, ...` (or why none): a schedule's attrs (as plans and the
    state keep them) read again."""
    if attrs.get("enabled") is False:
        return "disabled: fires nothing"
    times = next_times(attrs, after)
    if times is None:
        return "its trigger is wrong"
    return f"next {triggers.shown(times)}" if times else "fires no more (past its end_time)"


def next_times(attrs: dict, after: dt.datetime | None = None) -> list[dt.datetime] | None:
    """The next three fire times of a schedule's trigger (as its attrs keep it), in its time
    zone; None when the trigger cannot be read."""
    try:
        trigger = triggers.read(mapping(attrs.get("trigger")))
    except triggers.TriggerError:
        return None
    return trigger.next(after or dt.datetime.now(dt.UTC))


def line(attrs: dict, job: str | None, runs_here: bool, after: dt.datetime | None = None) -> str:
    """A schedule in a plan: its trigger and job, its next fire times, and (on a target that runs
    here) that nothing fires by itself, and how to run its job by hand."""
    runs = f"job.{job}" if job else Path(str(attrs.get("create_job") or "a data import")).name
    text = f"{trigger_text(mapping(attrs.get('trigger')))} -> {runs}; {fires(attrs, after)}"
    if not runs_here:
        return text
    if job:
        return f"{text}; here nothing fires by itself: run it with mlrun apply --only {job}"
    if str(attrs.get("create_job") or "").startswith("azureml:"):
        return f"{text}; here nothing fires by itself (its job is on Azure)"
    return (
        f"{text}; here nothing fires by itself (to run its job by hand, add the file to jobs: "
        "and mlrun apply --only that job)"
    )


# --- what Azure takes ----------------------------------------------------------------------------

PIPELINE_SCHEMA = "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json"
SCHEDULE_SCHEMA = "https://azuremlschemas.azureedge.net/latest/schedule.schema.json"
TOP = ("experiment_name", "display_name", "description", "tags", "settings")  # a pipeline's own


def as_pipeline(doc: dict, step: str, overrides: dict | None = None) -> dict:
    """A job file's document as Azure schedules it: a pipeline job as it is, a command or sweep
    job as a one-step pipeline (step `step`: azure-ai-ml schedules command jobs only in private
    preview); create_job's overrides merged in (inputs, outputs and the like into a wrapped job's
    step, the pipeline's own fields on top), as the SDK merges them."""
    overrides = {k: v for k, v in (overrides or {}).items() if k != "type"}
    step = re.sub(r"[^a-z0-9_]", "_", step.lower())  # a pipeline node's name
    if doc.get("type") == "pipeline":
        return _merged(doc, overrides)
    inner = {k: v for k, v in doc.items() if k not in ("$schema", "name", "experiment_name")}
    inner.setdefault("type", "command")
    top: dict = {"$schema": PIPELINE_SCHEMA, "type": "pipeline"}
    top.update({k: doc[k] for k in TOP if k in doc})
    top["jobs"] = {step: _merged(inner, {k: v for k, v in overrides.items() if k not in TOP})}
    return _merged(top, {k: v for k, v in overrides.items() if k in TOP})


def _merged(doc: dict, overrides: dict) -> dict:
    out = dict(doc)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out
