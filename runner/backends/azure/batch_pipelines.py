"""Pipeline component batch deployments on Azure (`type: pipeline`, az ml's
pipelineComponentBatchDeployment), beside batch.py's model deployments.

The deployment is a `PipelineComponentBatchDeployment` whose component is a registered version:
`azureml:NAME@latest` (or `:VERSION`) of the spec's components:, which apply registers before any
deployment, resolved by the SDK to its ARM id; or a deployment's own component (a
pipelineComponent file, or an inline one), which mlrun registers first as Azure registers one:
anonymously (azureml_anonymous, versioned by its content, so that a changed component is a new
version and an unchanged one the same), written as export.pipeline_component_document writes it.
Its `settings` are the spec's (default_compute without `azureml:`, continue_on_step_failure, ...).

A call is `batch_endpoints.invoke(inputs={NAME: Input})`, one for each input the call gives (a
literal as a value of its type, a local path uploaded by the SDK, a data asset or URI as
written); the job Azure starts is a pipeline job whose child jobs are the component's steps.
Once it ends, each step's child job (by its display name) says how the step ended, in a folder
of the call's run folder as the local target lays them out, where each output of the component
is downloaded (pipeline_deployments.output_folders: the `outputs/OUTPUT` folder of the step
that feeds it)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ...endpoints import Deployment, PipelineComponent
from ...errors import UserError
from ...records import Run, RunChange, StepRecord
from ...spec import Input, Spec
from .client import Session, _sdk_stderr
from .endpoints import _sdk_errors
from .jobs import STATUS

LITERALS = {bool: "boolean", int: "integer", float: "number", str: "string"}


def deployment(session: Session, spec: Spec, dep: Deployment, tags: dict | None):
    """The SDK's PipelineComponentBatchDeployment for `dep` (its own component registered)."""
    from azure.ai.ml.entities import PipelineComponentBatchDeployment

    comp = dep.component
    assert comp is not None  # validate: a pipeline deployment has a component
    settings = {k: v for k, v in (dep.fields.get("settings") or {}).items() if v is not None}
    settings["default_compute"] = dep.compute
    return PipelineComponentBatchDeployment(
        name=dep.name,
        endpoint_name=dep.endpoint,
        component=_component(session, spec, dep.key, comp),
        settings=settings,
        description=dep.fields.get("description"),
        tags=tags,
    )


def _component(session: Session, spec: Spec, key: str, comp: PipelineComponent) -> str:
    """The component to deploy, as the SDK resolves it: one of the spec's as the deployment
    names it, or the deployment's own registered anonymously (its ARM id)."""
    import yaml
    from azure.ai.ml import load_component

    from ...export import pipeline_component_document

    if comp.at[0] == "components":  # registered by apply before the deployments
        return comp.shown.removeprefix("azureml:")  # NAME@latest: the SDK resolves it
    with tempfile.TemporaryDirectory(prefix="mlrun-component-") as tmp:
        path = Path(tmp) / "component.yml"
        document = pipeline_component_document(spec, comp.at, comp.fields, Path(tmp))
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        with _sdk_errors(f"deployment.{key}"), _sdk_stderr():
            made = session.ml().components.create_or_update(
                load_component(source=path), is_anonymous=True
            )
    return str(made.id)


def inputs(endpoint: str, given: dict[str, Input]) -> dict[str, Any]:
    """A call's inputs as the SDK's invoke takes them: a literal as a value of its type, a local
    file or folder (which the SDK uploads) by its path, anything else as written."""
    from azure.ai.ml import Input as SdkInput

    out = {}
    for name, inp in given.items():
        if inp.model is not None:  # the SDK's invoke resolves any path as a data asset
            raise UserError(
                f"endpoint {endpoint}: input {name}: a model is not an input azure-ai-ml's "
                "batch invoke sends (it resolves every reference as a data asset); give the "
                "model in the component's step instead"
            )
        if inp.type is None:  # a literal
            kind = LITERALS.get(type(inp.value), "string")
            out[name] = SdkInput(type=kind, default=inp.value)
            continue
        local = inp.local_path is not None and not inp.asset
        path = str(inp.local_path) if local else str(inp.value)
        out[name] = SdkInput(type=inp.type, path=path)
    return out


def step_folder(run: Run, step: str) -> Path:
    """Where a step of a call keeps its outputs (as the local target's run folder has it)."""
    return Path(run["run_dir"]) / "steps" / step


def ended(session: Session, run: Run, comp: PipelineComponent, change: RunChange) -> RunChange:
    """How a call that ended went, step by step: its `steps`, and for a failed one the error of
    the step that failed (Azure's own for the pipeline only says that some did)."""
    found = steps(session, run, comp)
    out: RunChange = {"steps": found}
    failed = [s["error"] for s in found.values() if s.get("error")]
    if change.get("status") == "Failed" and failed:
        out["error"] = failed[0]
    return out


def steps(session: Session, run: Run, comp: PipelineComponent) -> dict[str, StepRecord]:
    """How each step of the call ended: its child job (by display name, as Azure ML names a
    step's job), Canceled for a step that never ran."""
    shown = {
        (s.fields.get("display_name") or name): name for name, s in comp.pipeline.steps.items()
    }
    out: dict[str, StepRecord] = {
        name: {"run_id": None, "status": "Canceled", "run_dir": str(step_folder(run, name))}
        for name in comp.pipeline.steps
    }
    with _sdk_errors(f"run {run['id'][:7]}"):
        children = list(session.ml().jobs.list(parent_job_name=run["id"]))
    for child in children:
        name = shown.get(child.display_name or "") or shown.get(child.name)
        if name is None:
            continue
        status = STATUS.get(child.status, child.status) or "Canceled"
        out[name].update({"run_id": child.name, "status": status})
        if status == "Failed":
            out[name]["error"] = _child_error(session, child.name)
    return out


def _child_error(session: Session, name: str) -> str:
    """A failed step's error as its run history has it."""
    with _sdk_errors(f"run {name[:7]}"):
        details = session.ml().jobs._runs_operations.get_run_details(name)
    error = getattr(details, "error", None)
    inner = getattr(error, "error", None)
    return str(getattr(inner, "message", None) or "failed on Azure ML")
