"""A spec's blocks as Azure ML CLI v2 YAML documents (what `az ml` and `azure.ai.ml.load_*` read)."""
from __future__ import annotations

import os
from pathlib import Path

from .spec import Job, Spec, is_local, relative_to

JOB_SCHEMA = "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json"


def job_document(spec: Spec, job: Job, out_dir: Path) -> dict:
    """The job as a commandJob file written in `out_dir`: local paths made relative to it."""
    doc = {"$schema": JOB_SCHEMA, "type": "command"}
    for key, value in job.fields.items():
        if key in ("$schema", "type", "name"):
            continue
        doc[key] = value
    if job.code:
        doc["code"] = _rel(job.code, out_dir)
    if job.compute:
        doc["compute"] = f"azureml:{job.compute}"
    doc["experiment_name"] = spec.experiment(job)
    inputs = {}
    for name, value in (job.fields.get("inputs") or {}).items():
        if isinstance(value, dict) and is_local(value.get("path")):
            where = relative_to(spec.doc, ("jobs", job.name, "inputs", name, "path"), value["path"])
            value = {**value, "path": _rel(where, out_dir)}
        inputs[name] = value
    if inputs:
        doc["inputs"] = inputs
    return doc


def _rel(path: Path, out_dir: Path) -> str:
    return os.path.relpath(Path(path).resolve(), Path(out_dir).resolve())
