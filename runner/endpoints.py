"""Endpoints (the spec's `endpoints:`, az ml online-endpoint / batch-endpoint) and their
deployments, read and checked. An online deployment serves a model: an MLflow model without a
scoring script is served by MLflow's scoring server; a model with `code_configuration` by its
script's init() and run(); a custom container, a Triton model without a script, or a model
package only on Azure (Deployment.served_on_azure). A batch deployment (modelBatchDeployment)
scores an input's files in mini-batches on a compute when its endpoint is invoked; a pipeline one
(type: pipeline) runs a pipeline component (pipeline_deployments.py checks them, batch.py runs a
call). Stdlib only: validate and plan read them."""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .pipelines import SETTINGS as PIPELINE_SETTINGS
from .refs import is_local, mapping, parse_ref, relative_to, unresolved

if TYPE_CHECKING:
    from .environments import Environment, Reader
    from .models import Model
    from .pipelines import Pipeline
    from .yamldoc import Doc

ONLINE, BATCH = "online", "batch"
# az ml's rule for endpoint names: 3-32 letters, digits and '-', starting with a letter
ENDPOINT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]$")
DEPLOYMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{1,30}[A-Za-z0-9]$")
AUTH = {"Key": "key", "AMLToken": "aml_token", "AADToken": "aad_token"}  # SDK spellings
# Azure ML's, for model batch deployments (the SDK's BatchDeployment)
BATCH_DEFAULTS: dict[str, Any] = {
    "max_concurrency_per_instance": 1,
    "mini_batch_size": 10,
    "output_action": "append_row",
    "output_file_name": "predictions.csv",
    "retry_settings": {"max_retries": 3, "timeout": 30},
    "error_threshold": -1,
    "logging_level": "info",
}
URI_TYPES = ("uri_folder", "uri_file", "mltable")  # a pipeline deployment's call's `input` binds
# fields of one kind of deployment that the other kind's schema does not have
ONLINE_ONLY = (
    "instance_type",
    "instance_count",
    "request_settings",
    "liveness_probe",
    "readiness_probe",
    "scale_settings",
    "app_insights_enabled",
    "egress_public_network_access",
    "data_collector",
)
BATCH_ONLY = ("compute", "resources", "settings", "component")
REQUEST_DEFAULTS = {  # Azure ML's, for managed online deployments
    "request_timeout_ms": 5000,
    "max_concurrent_requests_per_instance": 1,
    "max_queue_wait_ms": 500,
}


@dataclass(frozen=True)
class ModelRef:
    """A deployment's model: a registered one (`azureml:NAME:V`, `@latest`: `registered`), a model
    of the spec's `models:` among them (`spec_model`), or an inline model's local folder."""

    shown: str
    registered: tuple[str, str | None] | None = None
    local: Path | None = None
    type: str | None = None  # mlflow_model, custom_model, triton_model; None: not known yet
    spec_model: str | None = None


@dataclass(frozen=True)
class PipelineComponent:
    """A pipeline deployment's component: how plans name it, where its fields are in the spec,
    the fields, and its steps as read with the deployment's settings."""

    shown: str  # the file (relative to the spec's folder), azureml:NAME@latest, or inline
    at: tuple
    fields: dict
    pipeline: Pipeline

    @property
    def inputs(self) -> dict:
        return mapping(self.fields.get("inputs"))

    @property
    def uri_inputs(self) -> list[str]:
        return [n for n, d in self.inputs.items() if mapping(d).get("type") in URI_TYPES]


@dataclass(frozen=True)
class Deployment:
    endpoint: str
    name: str
    fields: dict
    model: ModelRef | None
    code: Path | None  # code_configuration.code
    scoring_script: str | None
    environment: Environment | None
    batch: bool = False  # a batch endpoint's (modelBatchDeployment), else an online one's
    # a pipeline deployment's component (pipelineComponentBatchDeployment), read by validate
    component: PipelineComponent | None = None
    kubernetes: str | None = None  # a Kubernetes online endpoint's deployment: its compute

    @property
    def served_on_azure(self) -> str | None:
        """What serves an online deployment that has no scoring script and no MLflow model, which
        only Azure can start (the local target runs no container image and no Triton server):
        a custom container (its environment's inference_config), Triton (a triton_model), or an
        environment that holds everything (a model package); None for one served here."""
        if self.batch or self.scoring_script is not None:
            return None
        definition = mapping(self.environment.definition if self.environment else None)
        if definition.get("inference_config") is not None:
            image = definition.get("image")
            return f"{f'image {image}' if image else 'its image'} serves it as a custom container"
        if self.model is not None and self.model.type == "triton_model":
            return "Triton Inference Server serves its triton_model"
        env = self.environment
        if self.model is None and env is not None and not env.built and not env.curated:
            return f"its environment {env.shown} serves it, as a model package does"
        return None

    @property
    def key(self) -> str:
        """`diabetes-online/blue`: how plans and state name it."""
        return f"{self.endpoint}/{self.name}"

    @property
    def instance_type(self) -> str | None:
        return self.fields.get("instance_type")

    @property
    def instance_count(self) -> int:
        count = self.fields.get("instance_count", 1)
        return count if isinstance(count, int) else 1

    @property
    def request_settings(self) -> dict:
        return REQUEST_DEFAULTS | mapping(self.fields.get("request_settings"))

    @property
    def is_pipeline(self) -> bool:
        """A batch deployment of a pipeline component (type: pipeline)."""
        return self.batch and self.fields.get("type") == "pipeline"

    @property
    def compute(self) -> str | None:
        """Batch: the compute it scores on (`azureml:` dropped); a pipeline deployment's
        settings.default_compute."""
        value = self.fields.get("compute")
        if self.is_pipeline:
            value = mapping(self.fields.get("settings")).get("default_compute")
        return value.removeprefix("azureml:") if isinstance(value, str) else None

    @property
    def batch_settings(self) -> dict:
        """Batch: its settings with Azure's defaults for what it leaves out, and its instances."""
        given = mapping(self.fields.get("settings"))
        retry = BATCH_DEFAULTS["retry_settings"] | mapping(given.get("retry_settings"))
        count = mapping(self.fields.get("resources")).get("instance_count", 1)
        return (
            BATCH_DEFAULTS
            | given
            | {
                "retry_settings": retry,
                "instance_count": count if isinstance(count, int) else 1,
            }
        )

    @property
    def mlflow_server(self) -> bool:
        """Served by MLflow's scoring server: an MLflow model without a scoring script."""
        return self.scoring_script is None and bool(
            self.model and self.model.type == "mlflow_model"
        )


@dataclass(frozen=True)
class Endpoint:
    name: str
    type: str
    fields: dict
    deployments: dict[str, Deployment] = field(default_factory=dict)

    @property
    def compute(self) -> str | None:
        """A Kubernetes online endpoint's compute (`azureml:` dropped); None for a managed one."""
        value = self.fields.get("compute") if self.type == ONLINE else None
        return value.removeprefix("azureml:") if isinstance(value, str) else None

    @property
    def azure_only(self) -> str | None:
        """Why the local target does not serve the endpoint (None: it does): one of its
        deployments is served by what only Azure starts, and its traffic is the endpoint's."""
        said = [
            f"deployment {d.name}: {why}"
            for d in self.deployments.values()
            if (why := d.served_on_azure)
        ]
        return f"runs on Azure only ({'; '.join(said)})" if said else None

    @property
    def auth_mode(self) -> str:
        mode = self.fields.get("auth_mode") or "key"
        return AUTH.get(mode, mode) if isinstance(mode, str) else "key"  # the schema says why

    @property
    def traffic(self) -> dict[str, int]:
        return dict(mapping(self.fields.get("traffic")))

    @property
    def mirror_traffic(self) -> dict[str, int]:
        return dict(mapping(self.fields.get("mirror_traffic")))

    @property
    def invoke(self) -> dict:
        return mapping(self.fields.get("invoke"))

    @property
    def default_deployment(self) -> str | None:
        """Batch: `defaults.deployment_name`, else its first deployment (Azure makes the first
        one created the default)."""
        named = mapping(self.fields.get("defaults")).get("deployment_name")
        return named if isinstance(named, str) else next(iter(self.deployments), None)


def read(
    doc: Doc,
    data: Any,
    reader: Reader,
    models: dict[str, Model],
    defined: dict,
    substitutes: dict | None,
    computes: Collection[str] = (),
) -> dict[str, Endpoint]:
    """The `endpoints:` section (what the schema check let through), each problem said located:
    names, traffic to deployments that do not exist or not summing to 100, models, scoring
    scripts and request files that are not there, an MLflow model with a script but no
    environment. `reader` reads deployments' environments as it reads jobs'."""
    out = {}
    for name, block in mapping(mapping(data).get("endpoints")).items():
        at: tuple = ("endpoints", name)
        if at in doc.broken or not isinstance(block, dict):
            continue
        if not ENDPOINT_NAME.match(name):
            doc.problem(
                at,
                f"'{name}' is not a valid endpoint name: 3-32 letters, digits or '-', starting "
                "with a letter, not ending with '-'",
                key=True,
            )
        _other_name(doc, at + ("name",), block.get("name"), name, "endpoint")
        kind = endpoint_type(block)
        compute = _kubernetes_compute(doc, at, block, data) if kind == ONLINE else None
        deployments = {}
        for dep, fields in mapping(block.get("deployments")).items():
            where = at + ("deployments", dep)
            if where in doc.broken or not isinstance(fields, dict):
                continue
            _other_name(doc, where + ("name",), fields.get("name"), dep, "deployment")
            _other_name(
                doc, where + ("endpoint_name",), fields.get("endpoint_name"), name, "endpoint"
            )
            deployments[dep] = _deployment(
                doc, where, name, dep, fields, reader, models, defined, substitutes, kind == BATCH
            )
            if compute is not None:
                deployments[dep] = replace(deployments[dep], kubernetes=compute)
            _deployment_checks(doc, where, deployments[dep], kind, computes)
        endpoint = Endpoint(name, kind, block, deployments)
        if kind == BATCH:
            _check_batch(doc, at, endpoint)
        else:
            _check_traffic(doc, at, endpoint)
            _check_invoke(doc, at, endpoint)
        out[name] = endpoint
    return out


def endpoint_type(block: dict) -> str:
    """online or batch: as written, else as an included az ml file's $schema says (a batch
    endpoint's file has no type: batchEndpoint.schema.json)."""
    kind = block.get("type")
    if isinstance(kind, str):
        return kind
    return BATCH if "batchendpoint" in str(block.get("$schema") or "").lower() else ONLINE


def _other_name(doc: Doc, at: tuple, written: Any, used: str, what: str) -> None:
    """A name an endpoint or deployment file gives (`name:`, `endpoint_name:`) that is not the
    one the spec uses: Azure gets the spec's."""
    if isinstance(written, str) and written != used and not unresolved(written):
        doc.problem(
            at,
            f"the file names the {what} '{written}', but it is {what} '{used}' here: Azure gets "
            f"'{used}' (rename one to match)",
            severity="warning",
        )


def _deployment(
    doc: Doc,
    at: tuple,
    endpoint: str,
    name: str,
    fields: dict,
    reader: Reader,
    models: dict[str, Model],
    defined: dict,
    substitutes: dict | None,
    batch: bool,
) -> Deployment:
    if not DEPLOYMENT_NAME.match(name):
        doc.problem(
            at,
            f"'{name}' is not a valid deployment name: 3-32 letters, digits or '-', starting with "
            "a letter or digit",
            key=True,
        )
    model = _model(doc, at + ("model",), fields.get("model"), models)
    code, script = None, None
    config = mapping(fields.get("code_configuration"))
    if isinstance(config.get("code"), str) and isinstance(config.get("scoring_script"), str):
        script = config["scoring_script"]
        if not unresolved(config["code"]):
            code = relative_to(doc, at + ("code_configuration", "code"), config["code"])
            if not code.is_dir():
                doc.problem(
                    at + ("code_configuration", "code"), f"folder '{config['code']}' does not exist"
                )
            elif not (code / script).is_file():
                doc.problem(
                    at + ("code_configuration", "scoring_script"),
                    f"scoring script '{script}' is not in {config['code']}",
                )
    env = None
    if fields.get("environment") is not None:
        env = reader.job(at + ("environment",), fields["environment"], defined, substitutes)
    return Deployment(endpoint, name, fields, model, code, script, env, batch)


def _deployment_checks(
    doc: Doc, at: tuple, dep: Deployment, kind: str, computes: Collection[str]
) -> None:
    other: tuple[str, ...]
    other, kind_name = (
        (ONLINE_ONLY, "a batch deployment") if kind == BATCH else (BATCH_ONLY, "an online one")
    )
    if dep.kubernetes is not None:  # a Kubernetes deployment's requests and limits
        other, kind_name = tuple(k for k in other if k != "resources"), "a Kubernetes one"
    if kind == ONLINE:
        _kubernetes_type(doc, at, dep)
    for key in other:
        if key in dep.fields:
            home = "online deployments" if kind == BATCH else "batch deployments"
            doc.problem(at + (key,), f"{key} is a field of {home}, not of {kind_name}", key=True)
    if kind == BATCH:
        _batch_deployment_checks(doc, at, dep, computes)
        return
    if dep.fields.get("type") in ("model", "pipeline"):
        doc.problem(at + ("type",), f"type {dep.fields['type']} is for batch deployments")
    if dep.served_on_azure is not None:
        return  # a custom container, Triton, a model package: Azure checks what it runs
    if dep.model is None and dep.scoring_script is None:
        doc.problem(at, "a deployment needs a model, a scoring script, or both", key=True)
    if dep.scoring_script is not None and dep.environment is None:
        what = (
            "an MLflow model with a scoring script"
            if dep.model and dep.model.type == "mlflow_model"
            else "a scoring script"
        )
        doc.problem(
            at + ("code_configuration",),
            f"{what} needs an environment to run in (as on Azure ML): add environment:",
        )
    if dep.scoring_script is None and dep.model and dep.model.type not in (None, "mlflow_model"):
        doc.problem(
            at + ("model",),
            f"a {dep.model.type} needs a scoring script (code_configuration) to be served; only "
            "an MLflow model is served without one",
        )


def _batch_deployment_checks(
    doc: Doc, at: tuple, dep: Deployment, computes: Collection[str]
) -> None:
    """A model batch deployment: a model, a compute of the spec, and a script with an
    environment unless the model is an MLflow model (Azure writes its scoring script then). A
    pipeline deployment is checked by pipeline_deployments (it needs the spec's components)."""
    kind = dep.fields.get("type", "model")
    if kind == "pipeline":
        return
    if kind not in ("model",):
        doc.problem(at + ("type",), f"type {kind} is for online deployments")
        return
    if "model" not in dep.fields:
        doc.problem(at, "a model batch deployment needs a model", key=True)
    if "component" in dep.fields:
        doc.problem(
            at + ("component",),
            "component is a field of pipeline deployments (type: pipeline), not of a model "
            "deployment",
            key=True,
        )
    for key in mapping(dep.fields.get("settings")):
        if key in PIPELINE_SETTINGS:
            doc.problem(
                at + ("settings", key),
                f"{key} is a setting of pipeline deployments (type: pipeline), not of a model "
                "deployment",
                key=True,
            )
    compute = dep.compute
    if compute is None:
        doc.problem(at, "a batch deployment needs a compute: compute: azureml:NAME", key=True)
    elif not unresolved(compute):
        check_compute(doc, at + ("compute",), compute, computes)
    if dep.scoring_script is not None and dep.environment is None:
        doc.problem(
            at + ("code_configuration",),
            "a scoring script needs an environment to run in (as on Azure ML): add environment:",
        )
    if dep.scoring_script is None and dep.model and dep.model.type not in (None, "mlflow_model"):
        doc.problem(
            at + ("model",),
            f"a {dep.model.type} needs a scoring script (code_configuration) with run(mini_batch); "
            "only an MLflow model is scored without one",
        )


def _kubernetes_compute(doc: Doc, at: tuple, block: dict, data: Any) -> str | None:
    """An online endpoint's `compute:` (a Kubernetes online endpoint, az ml's
    kubernetesOnlineEndpoint): an attached Kubernetes compute of the spec; None for a managed
    endpoint. A compute that is not one is said, and its deployments are still read as a
    Kubernetes endpoint's (what the file means)."""
    value = block.get("compute")
    if not isinstance(value, str) or unresolved(value):
        return None
    name = value.removeprefix("azureml:")
    computes = mapping(mapping(data).get("computes"))
    if check_compute(doc, at + ("compute",), name, computes):
        kind = mapping(computes[name]).get("type")
        if kind != "kubernetes":
            doc.problem(
                at + ("compute",),
                f"an online endpoint's compute is an attached Kubernetes compute (a Kubernetes "
                f"online endpoint); '{name}' is {kind}",
            )
    return name


def _kubernetes_type(doc: Doc, at: tuple, dep: Deployment) -> None:
    """A Kubernetes endpoint's deployments are `type: kubernetes` (az ml reads a deployment file
    without it as a managed one, which such an endpoint does not take), and only theirs are."""
    kind = dep.fields.get("type")
    if dep.kubernetes is not None and kind != "kubernetes":
        doc.problem(
            at + ("type",) if "type" in dep.fields else at,
            f"a deployment of a Kubernetes endpoint (compute {dep.kubernetes}) is type: kubernetes",
            key="type" not in dep.fields,
        )
    elif dep.kubernetes is None and kind == "kubernetes":
        doc.problem(
            at + ("type",),
            "a kubernetes deployment runs on its endpoint's Kubernetes compute: give the "
            "endpoint compute: azureml:NAME (an attached Kubernetes compute)",
        )


def check_compute(doc: Doc, at: tuple, compute: str, computes: Collection[str]) -> bool:
    """Whether a batch deployment's compute is one of the spec's (else said, at `at`)."""
    if compute in computes:
        return True
    close = difflib.get_close_matches(compute, sorted(computes), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    defined = ", ".join(sorted(computes)) or "none"
    doc.problem(at, f"'{compute}' is not a compute of this spec ({hint}defined: {defined})")
    return False


def _check_batch(doc: Doc, at: tuple, endpoint: Endpoint) -> None:
    """A batch endpoint: its default deployment and its call (`invoke: {input: ...}`)."""
    names = ", ".join(sorted(endpoint.deployments)) or "none"
    for key in ("traffic", "mirror_traffic"):
        if key in endpoint.fields:
            doc.problem(at + (key,), f"{key} is a field of online endpoints", key=True)
    named = mapping(endpoint.fields.get("defaults")).get("deployment_name")
    if isinstance(named, str) and named not in endpoint.deployments:
        doc.problem(
            at + ("defaults", "deployment_name"),
            f"endpoint {endpoint.name} has no deployment '{named}' (deployments: {names})",
        )
    invoke = endpoint.invoke
    if not invoke:
        return
    dep = invoke.get("deployment_name")
    if isinstance(dep, str) and dep not in endpoint.deployments:
        doc.problem(
            at + ("invoke", "deployment_name"),
            f"endpoint {endpoint.name} has no deployment '{dep}' (deployments: {names})",
        )
    if "request_file" in invoke:
        doc.problem(
            at + ("invoke", "request_file"),
            "a batch endpoint is invoked with an input (invoke: {input: PATH}), not a request file",
            key=True,
        )
    called = endpoint.deployments.get(dep if isinstance(dep, str) else "") or (
        endpoint.deployments.get(endpoint.default_deployment or "")
    )
    if called is not None and called.is_pipeline:  # pipeline_deployments.check_call
        return
    if "inputs" in invoke:
        doc.problem(
            at + ("invoke", "inputs"),
            "inputs name a pipeline deployment's inputs: a model deployment scores one input "
            "(invoke: {input: PATH})",
            key=True,
        )
    value = invoke.get("input")
    path = value.get("path") if isinstance(value, dict) else value
    if value is None:
        doc.problem(at + ("invoke",), "a batch endpoint's invoke needs an input", key=True)
    elif not isinstance(path, str):
        doc.problem(at + ("invoke", "input"), "an input needs a path", key=True)
    elif is_local(path) and not unresolved(path):
        where = at + ("invoke", "input") + (("path",) if isinstance(value, dict) else ())
        if not relative_to(doc, where, path).exists():
            doc.problem(where, f"input path '{path}' does not exist")


def batch_input(doc: Doc, endpoint: Endpoint) -> str | Path | None:
    """A batch endpoint's invoke input: a local path (resolved), or a reference as written
    (`azureml:patient-data@latest`)."""
    value = endpoint.invoke.get("input")
    path = value.get("path") if isinstance(value, dict) else value
    if not isinstance(path, str):
        return None
    if not is_local(path):
        return path
    where = ("endpoints", endpoint.name, "invoke", "input")
    return relative_to(doc, where + (("path",) if isinstance(value, dict) else ()), path)


def _model(doc: Doc, at: tuple, value: Any, models: dict[str, Model]) -> ModelRef | None:
    if value is None:
        return None
    if isinstance(value, dict):
        path = value.get("path")
        if not isinstance(path, str) or unresolved(path):
            return None
        mtype = value.get("type", "custom_model")
        if not is_local(path):
            ref = parse_ref(path)
            return ModelRef(path, registered=ref, type=mtype) if ref else ModelRef(path, type=mtype)
        folder = relative_to(doc, at + ("path",), path)
        if not folder.exists():
            doc.problem(at + ("path",), f"model path '{path}' does not exist")
        elif mtype == "mlflow_model" and not (folder / "MLmodel").is_file():
            doc.problem(
                at + ("path",), f"'{path}' has no MLmodel file, which an mlflow_model needs"
            )
        return ModelRef(path, local=folder, type=mtype)
    if not isinstance(value, str) or unresolved(value):
        return None
    ref = parse_ref(value)
    if ref is None:
        doc.problem(
            at, f"'{value}' is not a model reference: azureml:NAME:VERSION or azureml:NAME@latest"
        )
        return None
    name, version = ref
    own = models.get(name)
    if own is None:
        return ModelRef(value, registered=ref)
    if version is not None and own.version is not None and version != own.version:
        doc.problem(at, f"model {name} has version {own.version} in this spec, not {version}")
    return ModelRef(value, registered=ref, type=own.type, spec_model=name)


def _check_traffic(doc: Doc, at: tuple, endpoint: Endpoint) -> None:
    names = sorted(endpoint.deployments)
    for key in ("traffic", "mirror_traffic"):
        weights = mapping(endpoint.fields.get(key))
        for dep in weights:
            if dep not in endpoint.deployments:
                close = difflib.get_close_matches(str(dep), names, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                doc.problem(
                    at + (key, dep),
                    f"endpoint {endpoint.name} has no deployment '{dep}' ({hint}deployments: "
                    f"{', '.join(names) or 'none'})",
                    key=True,
                )
    total = sum(v for v in endpoint.traffic.values() if isinstance(v, int))
    if endpoint.traffic and total not in (0, 100):
        doc.problem(at + ("traffic",), f"traffic adds up to {total}%, not 100% (or 0%)")
    mirrored = [d for d, share in endpoint.mirror_traffic.items() if share]
    if len(mirrored) > 1:
        doc.problem(
            at + ("mirror_traffic",),
            f"traffic is mirrored to one deployment at most, not {len(mirrored)} "
            f"({', '.join(map(str, mirrored))})",
        )
    for dep, share in endpoint.mirror_traffic.items():
        if isinstance(share, int) and endpoint.traffic.get(dep):
            doc.problem(
                at + ("mirror_traffic", dep),
                f"deployment {dep} gets live traffic: traffic is mirrored to another one",
            )
        if isinstance(share, int) and share > 50:
            doc.problem(at + ("mirror_traffic", dep), "at most 50% of traffic can be mirrored")


def _check_invoke(doc: Doc, at: tuple, endpoint: Endpoint) -> None:
    invoke = endpoint.invoke
    if not invoke:
        return
    dep = invoke.get("deployment_name")
    if isinstance(dep, str) and dep not in endpoint.deployments:
        names = ", ".join(sorted(endpoint.deployments)) or "none"
        doc.problem(
            at + ("invoke", "deployment_name"),
            f"endpoint {endpoint.name} has no deployment '{dep}' (deployments: {names})",
        )
    file = invoke.get("request_file")
    if not isinstance(file, str):
        doc.problem(at + ("invoke",), "an online endpoint's invoke needs a request_file", key=True)
    elif (
        not unresolved(file)
        and not relative_to(doc, at + ("invoke", "request_file"), file).is_file()
    ):
        doc.problem(at + ("invoke", "request_file"), f"request file '{file}' does not exist")


def request_file(doc: Doc, endpoint: Endpoint) -> Path | None:
    """The endpoint's invoke request file, if it has one."""
    file = endpoint.invoke.get("request_file")
    return (
        relative_to(doc, ("endpoints", endpoint.name, "invoke", "request_file"), file)
        if isinstance(file, str)
        else None
    )
