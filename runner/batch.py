"""A batch endpoint's scoring job: what `az ml batch-endpoint invoke` starts on Azure, here a
parallel job (runner/parallel.py, backends/parallel_controller.py) made from the deployment: its
compute, instances and settings; the input's files in mini-batches; the deployment's scoring
script, or for an MLflow model without one the driver Azure's no-code deployments get
(backends/batch_driver.py); `append_row` rows to the output `score`'s `output_file_name`.

The job is named after the endpoint (its runs are kept under that name: `mlrun logs SPEC
ENDPOINT`), runs in the experiment of that name, as Azure's do, and is fingerprinted by what the
plan's invoke change holds (the deployment, its settings, the input's content).

A pipeline deployment's call (pipeline_deployments.py) is a pipeline job of its component's steps
with the call's inputs (`pipeline_inputs`, `pipeline_job`), named and fingerprinted the same way."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import data as data_assets, endpoints, pipeline_deployments
from .endpoints import Deployment, Endpoint, PipelineComponent
from .environments import Environment, Reader, shown, stand_ins
from .errors import UserError
from .pipelines import LITERAL_TYPES, SETTINGS, PipelineReader
from .records import Run
from .refs import MODEL_INPUT_TYPES, is_local, local_inputs, mapping, parse_ref, relative_to
from .spec import Input, Job, Spec

INPUT = "data"  # the scoring job's input and output, as Azure names them
OUTPUT = "score"
DRIVER = "batch_driver.py"


def fingerprint(after: dict, deployment: dict) -> str:
    """A scoring job's identity: the call (input content, deployment) and the deployment as it
    was when it ran, so that the same call on the same deployment is never scored twice."""
    text = json.dumps({"invoke": after, "deployment": deployment}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def spec_input(spec: Spec, endpoint: Endpoint, remote: bool = False) -> Input:
    """The endpoint's own call's input (`invoke: {input: ...}`): a path relative to the file
    that holds it, or one of the spec's data assets."""
    value = endpoint.invoke.get("input")
    found = endpoints.batch_input(spec.doc, endpoint)
    if not isinstance(found, Path):
        return job_input(spec, value, remote=remote)
    kind = value.get("type", "uri_folder") if isinstance(value, dict) else "uri_folder"
    written = value.get("path") if isinstance(value, dict) else value
    return _local(str(written), found, kind)


def job_input(spec: Spec, value: Any, base: Path | None = None, remote: bool = False) -> Input:
    """The input to score: a local file or folder (relative to `base`, for one given on the
    command line), or one of the spec's data assets (`azureml:NAME@latest`); with `remote` (the
    azure target), any other reference too, as written."""
    kind = "uri_folder"
    if isinstance(value, dict):
        kind, value = value.get("type", "uri_folder"), value.get("path")
    if not isinstance(value, str):
        raise UserError("a batch endpoint's input needs a path")
    if is_local(value):
        return _local(value, (base or spec.path.parent) / value, kind)
    found = data_assets.input_source(spec.doc, value, spec.data, local_inputs(spec.doc.data))
    if (found is None or found[0] is None) and remote:
        return Input(INPUT, kind, value, None)
    if found is None or found[0] is None:
        named = parse_ref(value)
        what = f"data asset {named[0]}" if named else value
        raise UserError(
            f"input {value}: {what} is not one of this spec's data assets with a local copy "
            "(the local target scores local files)"
        )
    local, asset = found
    return Input(INPUT, kind, value, local, None, asset)


def _local(written: str, path: Path, kind: str) -> Input:
    if not path.exists():
        raise UserError(f"input {written}: no such file or folder ({path})")
    return Input(INPUT, "uri_file" if path.is_file() else kind, written, path.resolve())


def output_folder(run: Run) -> Path | None:
    """Where a scoring run's output `score` is."""
    return Path(run["run_dir"]) / "outputs" / OUTPUT if run.get("run_dir") else None


def scoring_job(spec: Spec, endpoint: Endpoint, dep: Deployment, details: dict, inp: Input) -> Job:
    """The parallel job that scores `inp` with deployment `dep` (its record's `details`: where
    its model and driver are, and the Python an MLflow model without a script is scored on)."""
    s = dep.batch_settings
    append = s["output_action"] == "append_row"
    task: dict[str, Any] = {
        "type": "run_function",
        "entry_script": dep.scoring_script or DRIVER,
    }
    if append:
        task["append_row_to"] = f"${{{{outputs.{OUTPUT}}}}}"
    outputs = (
        {OUTPUT: {"type": "uri_file", "path": s["output_file_name"]}}
        if append
        else {OUTPUT: {"type": "uri_folder"}}
    )
    variables = {str(k): str(v) for k, v in (s.get("environment_variables") or {}).items()}
    if details.get("models"):
        variables["AZUREML_MODEL_DIR"] = details["models"]
    fields = {
        "type": "parallel",
        "display_name": f"{endpoint.name}-{dep.name}",
        "experiment_name": endpoint.name,
        "compute": f"azureml:{dep.compute}",
        "inputs": {INPUT: {"type": inp.type, "path": inp.value}},
        "outputs": outputs,
        "input_data": f"${{{{inputs.{INPUT}}}}}",
        "mini_batch_size": str(s["mini_batch_size"]),
        "resources": {"instance_count": s["instance_count"]},
        "max_concurrency_per_instance": s["max_concurrency_per_instance"],
        "error_threshold": s["error_threshold"],
        "mini_batch_error_threshold": -1,
        "retry_settings": s["retry_settings"],
        "logging_level": str(s["logging_level"]).upper(),
        "environment_variables": variables,
        "tags": {"mlrun.endpoint": endpoint.name, "mlrun.deployment": dep.name},
        "task": task,
    }
    code = dep.code if dep.scoring_script else Path(details["code"])
    env = dep.environment if dep.scoring_script else _model_environment(details)
    assert env is not None  # validate: a scoring script has an environment
    return Job(endpoint.name, fields, code, {INPUT: inp}, None, frozenset(), env)


def _model_environment(details: dict) -> Environment:
    """Where an MLflow model is scored: mlrun's interpreter when it has the model's requirements
    (the deployment found it so), else an environment built from the model's requirements.txt."""
    import sys

    if details["python"] == sys.executable:
        return Environment(shown(None))
    from .backends import serving

    version, wanted = serving.model_requirements(Path(details["model_dir"]))
    return Environment(
        "the model's environment (its requirements.txt)",
        definition={"python": version, "requirements": list(wanted)},
        python=version,
        requirements=wanted,
    )


# --- a pipeline deployment's call ----------------------------------------------------------


def pipeline_inputs(
    spec: Spec,
    endpoint: Endpoint,
    comp: PipelineComponent,
    value: str | None = None,
    named: dict | None = None,
) -> dict[str, Input]:
    """A call's inputs: the endpoint's own call's (`invoke:`, paths relative to the file that
    holds them), or those given by hand (mlrun invoke --input PATH, --set inputs.NAME=VALUE:
    paths relative to where mlrun runs; what is left out takes the component's default, as
    `az ml batch-endpoint invoke` does)."""
    own = value is None and not named
    if own:
        given, named = endpoint.invoke.get("input"), mapping(endpoint.invoke.get("inputs"))
        said = {"input": "invoke.input", "inputs": "invoke.inputs."}
    else:
        given, named = value, named or {}
        said = {"input": "--input", "inputs": "--set inputs."}
    values, wrong = pipeline_deployments.bind(comp, given, named)
    if wrong:
        raise UserError(
            f"endpoint {endpoint.name}: "
            + "; ".join(
                (f"{said[w[0]]}{w[1] if len(w) > 1 else ''}: " if w else "") + message
                for w, message in wrong
            )
        )
    out = {}
    for name, v in values.items():
        where = ("endpoints", endpoint.name, "invoke") + pipeline_deployments.given_at(named, name)
        where += ("path",) if isinstance(v, dict) else ()

        def local(path: str, where: tuple = where) -> Path:
            return relative_to(spec.doc, where, path) if own else Path.cwd() / path

        out[name] = _pipeline_input(spec, comp, name, v, local)
    return out


def _pipeline_input(
    spec: Spec, comp: PipelineComponent, name: str, value: Any, local: Callable[[str], Path]
) -> Input:
    """One of a call's inputs: a literal, a registered model, a local path (resolved), or one of
    the spec's data assets (job_input's rules, as a model deployment's call has them)."""
    kind = mapping(comp.inputs.get(name)).get("type")
    if kind in LITERAL_TYPES or (kind is None and not isinstance(value, dict)):
        return Input(name, None, value, None)  # (an input of no type: a value, unless a path)
    path = value.get("path") if isinstance(value, dict) else value
    kind = value.get("type", kind) if isinstance(value, dict) else kind
    if kind in MODEL_INPUT_TYPES and (ref := parse_ref(path)) is not None:
        return Input(name, kind, path, None, model=ref)
    found = job_input(spec, {"type": kind or "uri_folder", "path": path}, base=local("."))
    return replace(found, name=name)


# --- a call as a pipeline job ---------------------------------------------------------------


def pipeline_job(spec: Spec, endpoint: Endpoint, dep: Deployment, inputs: dict[str, Input]) -> Job:
    """The pipeline job a call of `dep` runs: the component's steps with the call's inputs (the
    component's defaults for the rest), on the deployment's compute, named after the endpoint
    and in the experiment of that name, as a model deployment's scoring job is."""
    comp = dep.component
    assert comp is not None  # validate: a pipeline deployment has a component
    given = {n: _job_value(i) for n, i in inputs.items()}
    settings = {k: v for k, v in mapping(dep.fields.get("settings")).items() if k in SETTINGS}
    fields = {
        "type": "pipeline",
        "display_name": f"{endpoint.name}-{dep.name}",
        "experiment_name": endpoint.name,
        "settings": settings,
        "inputs": {**comp.inputs, **given},
        "outputs": mapping(comp.fields.get("outputs")),
        "jobs": comp.fields["jobs"],
        "tags": {"mlrun.endpoint": endpoint.name, "mlrun.deployment": dep.name},
    }
    known = {("components", n, "environment"): e for n, e in spec.component_environments.items()}
    reader = PipelineReader(
        spec.doc,
        Reader(spec.doc, local=True, report=False),  # validate said what is wrong
        spec.components,
        spec.environments,
        stand_ins(spec.doc.data),
        set(spec.computes),
        local_inputs(spec.doc.data),
        True,
        spec.data,
        known,
    )
    pipeline = reader.read(comp.at, fields)
    return Job(endpoint.name, fields, None, env=Environment(shown(None)), pipeline=pipeline)


def _job_value(inp: Input) -> Any:
    """An input as a pipeline job's inputs: give it (a path resolved, a reference as written)."""
    if inp.type is None:
        return inp.value
    if inp.local_path is not None and inp.asset is None:
        return {"type": inp.type, "path": str(inp.local_path)}
    return {"type": inp.type, "path": inp.value}
