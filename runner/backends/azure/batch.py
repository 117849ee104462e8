"""Batch endpoints on Azure (`az ml batch-endpoint` / `batch-deployment`): made, updated and
deleted through `ml_client.batch_endpoints` and `batch_deployments`, read back for refresh, and
invoked through the SDK's `invoke`, which starts a job in the workspace that mlrun waits for as it
waits for any job, then downloads its output `score` (what `az ml job download --output-name
score` does) into the run's folder, where the local target keeps its own.

An endpoint's default deployment is set once that deployment exists (Azure refuses a default it
does not have): by the endpoint's own change when it already does, else by the deployment's. A
batch endpoint takes Microsoft Entra tokens only: no keys. Pipeline component deployments and
their calls' inputs, steps and outputs are batch_pipelines.py's. Every SDK is imported lazily."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from pathlib import Path

from ...endpoints import Deployment
from ...errors import UserError
from ...records import Resource
from ...spec import Input, Spec
from .batch_pipelines import deployment as pipeline_deployment, inputs as pipeline_inputs
from .client import Session, _sdk_stderr
from .endpoints import _environment, _invoking, _model, _quiet_polling, _sdk_errors

_default = threading.Lock()  # an endpoint's default is read and written by one thread at a time
OUTPUT = "score"  # the output Azure's batch jobs write their results to


def is_batch(kind: str, record: Resource | dict | None) -> bool:
    """Whether a state record is a batch endpoint's: its planned attrs say so (a batch endpoint's
    type, a deployment's compute, a call's input)."""
    attrs = (record or {}).get("attrs") or {}
    if kind == "endpoint":
        return attrs.get("type") == "batch"
    if kind == "deployment":
        return bool(attrs.get("compute"))
    return "input" in attrs


def live(session: Session, kind: str, name: str) -> dict | None:
    """The batch endpoint or deployment as Azure has it, in the spec's words (None: it is not
    there); a deployment whose provisioning failed says so under `down`."""
    from azure.core.exceptions import ResourceNotFoundError

    ml = session.ml()
    endpoint, _, dep = name.partition("/")
    try:
        if kind == "deployment":
            d = ml.batch_deployments.get(dep, endpoint)
            compute = d.compute or (d.properties or {}).get("default_compute")  # a pipeline's
            found: dict = {
                "compute": str(compute or "").rsplit("/", 1)[-1].removeprefix("azureml:") or None
            }
            if (d.provisioning_state or "").lower() == "failed":
                found["down"] = "its deployment failed on Azure"
            return found
        e = ml.batch_endpoints.get(endpoint)
    except ResourceNotFoundError:
        return None
    if kind == "invoke":
        return {}
    tags = {k: v for k, v in (e.tags or {}).items() if not k.startswith("mlrun-")}
    return {
        "type": "batch",
        "auth_mode": "aad_token",
        "default": (e.defaults.deployment_name if e.defaults else None) or None,
        "description": e.description,
        "tags": tags or None,
    }


def create_endpoint(session: Session, name: str, attrs: dict, lab_tags: dict) -> dict:
    """Make or update the endpoint (with its default deployment, if that exists): its id and
    scoring URI."""
    from azure.ai.ml.entities import BatchEndpoint

    with _default:
        default = attrs.get("default")
        default = default if _has_deployment(session, name, default) else None
        entity = BatchEndpoint(
            name=name,
            description=attrs.get("description"),
            tags={**(attrs.get("tags") or {}), **lab_tags} or None,
            defaults={"deployment_name": default} if default else None,
        )
        _quiet_polling()
        with _sdk_errors(f"endpoint.{name}"), _sdk_stderr():
            made = session.ml().batch_endpoints.begin_create_or_update(entity).result()
    return {"id": made.id, "scoring_uri": made.scoring_uri}


def _has_deployment(session: Session, endpoint: str, dep: str | None) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    if not dep:
        return False
    try:
        session.ml().batch_deployments.get(dep, endpoint)
        return True
    except ResourceNotFoundError:
        return False


def deploy(session: Session, spec: Spec, key: str, attrs: dict, lab_tags: dict) -> dict:
    """Make or update the batch deployment (a model's, or a pipeline component's), then its
    endpoint's default if it is the one."""
    endpoint, _, name = key.partition("/")
    dep = spec.endpoints[endpoint].deployments[name]
    tags = {**(dep.fields.get("tags") or {}), **lab_tags} or None
    entity = (
        pipeline_deployment(session, spec, dep, tags)
        if dep.is_pipeline
        else _model_deployment(dep, attrs, tags)
    )
    _quiet_polling()
    with _sdk_errors(f"deployment.{key}"), _sdk_stderr():
        made = session.ml().batch_deployments.begin_create_or_update(entity).result()
    want = spec.endpoints[endpoint].default_deployment
    if want == name:
        with _default, _sdk_errors(f"endpoint.{endpoint}"):
            _set_default(session, endpoint, name)
    return {"id": getattr(made, "id", None) or _deployment_id(session, key)}


def _deployment_id(session: Session, key: str) -> str:
    """A deployment's ARM id (the SDK's pipeline deployment leaves it out)."""
    endpoint, _, name = key.partition("/")
    return (
        f"/subscriptions/{session.subscription}/resourceGroups/{session.resource_group}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{session.workspace}"
        f"/batchEndpoints/{endpoint}/deployments/{name}"
    )


def _model_deployment(dep: Deployment, attrs: dict, tags: dict | None):
    from azure.ai.ml.entities import (
        BatchRetrySettings,
        CodeConfiguration,
        ModelBatchDeployment,
        ModelBatchDeploymentSettings,
        ResourceConfiguration,
    )

    s = dep.batch_settings
    return ModelBatchDeployment(
        name=dep.name,
        endpoint_name=dep.endpoint,
        model=_model(dep, attrs),
        code_configuration=CodeConfiguration(code=str(dep.code), scoring_script=dep.scoring_script)
        if dep.code is not None
        else None,
        environment=_environment(dep),
        compute=dep.compute,
        resources=ResourceConfiguration(instance_count=s["instance_count"]),
        settings=ModelBatchDeploymentSettings(
            mini_batch_size=int(s["mini_batch_size"]),
            max_concurrency_per_instance=s["max_concurrency_per_instance"],
            output_action=s["output_action"],
            output_file_name=s["output_file_name"],
            retry_settings=BatchRetrySettings(
                max_retries=s["retry_settings"].get("max_retries"),
                timeout=s["retry_settings"].get("timeout"),
            ),
            error_threshold=s["error_threshold"],
            logging_level=s["logging_level"],
            environment_variables={
                str(k): str(v) for k, v in (s.get("environment_variables") or {}).items()
            }
            or None,
        ),
        description=dep.fields.get("description"),
        tags=tags,
    )


def _set_default(session: Session, endpoint: str, name: str) -> None:
    ml = session.ml()
    current = ml.batch_endpoints.get(endpoint)
    if current.defaults and (current.defaults.deployment_name or "").lower() == name.lower():
        return
    current.defaults = {"deployment_name": name}  # the SDK turns a dict into its defaults
    with _sdk_stderr():
        ml.batch_endpoints.begin_create_or_update(current).result()


def delete(session: Session, kind: str, name: str) -> None:
    """Delete the endpoint (its deployments go with it) or a deployment; what is already gone is
    fine. An invoke is a call: nothing to delete (its job stays in the workspace's history)."""
    from azure.core.exceptions import ResourceNotFoundError

    if kind == "invoke":
        return
    _quiet_polling()
    ml = session.ml()
    endpoint, _, dep = name.partition("/")
    # a deployment's is one at a time (with the default's other changes): the default moves to
    # another deployment, which must not be going meanwhile
    with (
        _default if kind == "deployment" else contextlib.nullcontext(),
        _sdk_errors(f"{kind}.{name}"),
    ):
        try:
            current = ml.batch_endpoints.get(endpoint)
            if kind == "deployment":
                ml.batch_deployments.get(dep, endpoint)
        except ResourceNotFoundError:
            return
        default = (current.defaults.deployment_name if current.defaults else None) or ""
        if kind == "deployment" and default.lower() == dep.lower():
            # Azure keeps an endpoint's default deployment: another one becomes the default
            # (the spec's own default is set by the endpoint's change); the last one is left to
            # go with its endpoint (a replace makes it again in place; it bills nothing idle)
            others = [d.name for d in ml.batch_deployments.list(endpoint) if d.name != dep]
            if not others:
                return
            _set_default(session, endpoint, others[0])
        if kind == "endpoint":
            ml.batch_endpoints.begin_delete(endpoint).result()
        else:
            ml.batch_deployments.begin_delete(dep, endpoint).result()


def invoke(
    session: Session,
    endpoint: str,
    deployment: str,
    inp: Input | dict[str, Input],
    job_name: str,
) -> dict:
    """`ml_client.batch_endpoints.invoke`: a job named `job_name` (named before Azure hears of
    it, so that a killed apply's call is found, not made again) scoring `inp` (a local file or
    folder the SDK uploads, or a data asset as written) with `deployment`; a pipeline
    deployment's inputs by name (batch_pipelines.inputs)."""
    from azure.ai.ml import Input as SdkInput
    from azure.ai.ml.constants._endpoint import EndpointInvokeFields

    given: dict
    if isinstance(inp, dict):
        given = {"inputs": pipeline_inputs(endpoint, inp)}
    else:
        local = inp.local_path is not None and not inp.asset  # a data asset: the registered one
        path = str(inp.local_path) if local else str(inp.value)
        given = {"input": SdkInput(type=inp.type or "uri_folder", path=path)}
    # the SDK's invoke keeps its request headers (token, deployment) in one class-level dict,
    # online endpoints' invoke too: one call at a time, and none of them kept after it
    with _invoking:
        headers = EndpointInvokeFields.DEFAULT_HEADER
        try:
            with _sdk_errors(f"endpoint.{endpoint}"), _sdk_stderr():
                job = session.ml().batch_endpoints.invoke(
                    endpoint_name=endpoint,
                    deployment_name=deployment,
                    job_name=job_name,
                    experiment_name=endpoint,
                    **given,
                )
        finally:
            for kept in (
                EndpointInvokeFields.AUTHORIZATION,
                EndpointInvokeFields.MODEL_DEPLOYMENT,
                EndpointInvokeFields.REPEATABILITY_REQUEST_ID,
            ):
                headers.pop(kept, None)
    return {"studio_url": getattr(job, "studio_url", None) or ""}


def scoring_step(session: Session, job_name: str) -> str | None:
    """The name of the step of a batch job that scored (its logs are that step's, as a
    pipeline's are its steps')."""
    with _sdk_errors(f"run {job_name[:7]}"):
        for child in session.ml().jobs.list(parent_job_name=job_name):
            return child.name
    return None


def download(session: Session, job_name: str, folder: Path, output: str = OUTPUT) -> None:
    """The job's output (`score`, a model deployment's) into `folder` (replaced), as `az ml job
    download --output-name` lays it out under named-outputs/OUTPUT."""
    with tempfile.TemporaryDirectory(prefix="mlrun-score-") as tmp:
        with _sdk_errors(f"run {job_name[:7]}"), _sdk_stderr():
            session.ml().jobs.download(job_name, output_name=output, download_path=tmp)
        found = Path(tmp) / "named-outputs" / output
        if not found.is_dir():
            raise UserError(f"run {job_name[:7]}: Azure ML has no output '{output}' for it")
        if folder.exists():
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(found, folder)
