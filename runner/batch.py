"""A batch endpoint's scoring job: what `az ml batch-endpoint invoke` starts on Azure, here a
parallel job (runner/parallel.py, backends/parallel_controller.py) made from the deployment: its
compute, instances and settings; the input's files in mini-batches; the deployment's scoring
script, or for an MLflow model without one the driver Azure's no-code deployments get
(backends/batch_driver.py); `append_row` rows to the output `score`'s `output_file_name`.

The job is named after the endpoint (its runs are kept under that name: `mlrun logs SPEC
ENDPOINT`), runs in the experiment of that name, as Azure's do, and is fingerprinted by what the
plan's invoke change holds (the deployment, its settings, the input's content)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from . import data as data_assets, endpoints
from .endpoints import Deployment, Endpoint
from .environments import Environment, shown
from .errors import UserError
from .records import Run
from .refs import is_local, local_inputs, parse_ref
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
