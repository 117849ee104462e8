"""Online endpoints on Azure (`az ml online-endpoint` / `online-deployment`): made, updated and
deleted through `ml_client.online_endpoints` and `online_deployments`, read back for refresh, and
called through the SDK's `invoke`. An endpoint's traffic is set once the deployments it names
exist (Azure refuses traffic to a deployment it does not have): by the endpoint's own change when
they already do, else by the last of its deployments to be made. A deployment's traffic goes to 0
before it is deleted (Azure keeps a deployment that still gets live traffic). Keys stay in the
SDK's memory: nothing here returns or records them. Every SDK is imported lazily."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...errors import UserError
from ...records import Resource
from ...spec import Spec
from .client import Session, _sdk_stderr
from .errors import plain_errors

KINDS = ("endpoint", "deployment", "invoke")
_traffic = threading.Lock()  # an endpoint's traffic is read and written by one thread at a time
# the SDK's invoke keeps its request headers (key, deployment) in one class-level dict
_invoking = threading.Lock()


def live(session: Session, kind: str, name: str, record: Resource | dict) -> dict | None:
    """The endpoint or deployment as Azure has it, in the spec's words (None: it is not there);
    a deployment whose provisioning failed says so under `down`. An invoke is a call mlrun made,
    kept in the state: it is there while its endpoint is."""
    from azure.core.exceptions import ResourceNotFoundError

    ml = session.ml()
    endpoint, _, dep = name.partition("/")
    try:
        if kind == "deployment":
            d = ml.online_deployments.get(dep, endpoint)
            found = {"instance_type": d.instance_type, "instance_count": d.instance_count}
            if (d.provisioning_state or "").lower() == "failed":
                found["down"] = "its deployment failed on Azure"
            return found
        e = ml.online_endpoints.get(endpoint)
    except ResourceNotFoundError:
        return None
    if kind == "invoke":
        return {}
    known = (record.get("attrs") or {}) if isinstance(record, dict) else {}
    tags = {k: v for k, v in (e.tags or {}).items() if not k.startswith("mlrun-")}
    return {
        "type": "online",
        "auth_mode": e.auth_mode,  # the SDK's words: key, aml_token, aad_token
        "traffic": _as_named(e.traffic, known.get("traffic")),
        "mirror_traffic": _as_named(e.mirror_traffic, known.get("mirror_traffic")),
        "description": e.description,
        "tags": tags or None,
    }


def _as_named(weights: dict | None, named: Any) -> dict:
    """Azure's weights (lower-cased names, zeros dropped) under the names the spec gave them."""
    named = named if isinstance(named, dict) else {}
    spelled = {str(k).lower(): k for k in named}
    out = {k: 0 for k in named}
    for dep, weight in (weights or {}).items():
        if int(weight):
            out[spelled.get(dep.lower(), dep)] = int(weight)
    return out


def create_endpoint(session: Session, name: str, attrs: dict, lab_tags: dict) -> dict:
    """Make or update the endpoint (with its traffic, if its deployments are there): its id and
    scoring URI."""
    from azure.ai.ml.entities import KubernetesOnlineEndpoint, ManagedOnlineEndpoint

    ml = session.ml()
    with _traffic:
        traffic, mirror = _settable(session, name, attrs)
        kubernetes = {"compute": attrs["compute"]} if attrs.get("compute") else {}
        entity = (KubernetesOnlineEndpoint if kubernetes else ManagedOnlineEndpoint)(
            name=name,
            auth_mode=attrs.get("auth_mode") or "key",
            description=attrs.get("description"),
            tags={**(attrs.get("tags") or {}), **lab_tags} or None,
            traffic=traffic,
            mirror_traffic=mirror,
            **kubernetes,
        )
        with _sdk_errors(f"endpoint.{name}"), _sdk_stderr():
            made = ml.online_endpoints.begin_create_or_update(entity).result()
    return {"id": made.id, "scoring_uri": made.scoring_uri}


def _settable(session: Session, name: str, attrs: dict) -> tuple[dict, dict]:
    """The spec's traffic and mirror traffic when every deployment they weigh exists, else what
    the endpoint has now (nothing, when it is new)."""
    from azure.core.exceptions import ResourceNotFoundError

    ml = session.ml()
    try:
        current = ml.online_endpoints.get(name)
    except ResourceNotFoundError:
        return {}, {}
    there = {d.lower() for d in current.traffic}  # get() lists every deployment, 0 included
    there |= {d.lower() for d in current.mirror_traffic}
    wanted = [attrs.get("traffic") or {}, attrs.get("mirror_traffic") or {}]
    if all(str(d).lower() in there for w in wanted for d, v in w.items() if v):
        return wanted[0], wanted[1]
    return dict(current.traffic), dict(current.mirror_traffic)


def deploy(session: Session, spec: Spec, key: str, attrs: dict, lab_tags: dict) -> dict:
    """Make or update the deployment (Azure rolls its instances), then its endpoint's traffic."""
    from azure.ai.ml.entities import (
        CodeConfiguration,
        ManagedOnlineDeployment,
        OnlineRequestSettings,
        ProbeSettings,
    )

    endpoint, _, name = key.partition("/")
    dep = spec.endpoints[endpoint].deployments[name]
    fields = dep.fields
    managed = {"egress_public_network_access": fields.get("egress_public_network_access")}
    kind, own = (ManagedOnlineDeployment, managed) if dep.kubernetes is None else _kubernetes(dep)
    entity = kind(
        name=name,
        endpoint_name=endpoint,
        model=_model(dep, attrs),
        code_configuration=CodeConfiguration(code=str(dep.code), scoring_script=dep.scoring_script)
        if dep.code is not None
        else None,
        environment=_environment(dep),
        instance_type=dep.instance_type,
        instance_count=dep.instance_count,
        request_settings=OnlineRequestSettings(**fields["request_settings"])
        if fields.get("request_settings")
        else None,
        liveness_probe=ProbeSettings(**fields["liveness_probe"])
        if fields.get("liveness_probe")
        else None,
        readiness_probe=ProbeSettings(**fields["readiness_probe"])
        if fields.get("readiness_probe")
        else None,
        app_insights_enabled=fields.get("app_insights_enabled") is True,
        environment_variables={
            str(k): str(v) for k, v in (fields.get("environment_variables") or {}).items()
        }
        or None,
        description=fields.get("description"),
        tags={**(fields.get("tags") or {}), **lab_tags} or None,
        **own,
    )
    _quiet_polling()
    with _sdk_errors(f"deployment.{key}"), _sdk_stderr():
        with session.uploading:  # its code and model folders; then the waits run side by side
            poller = session.ml().online_deployments.begin_create_or_update(entity)
        made = poller.result()
    want = spec.endpoints[endpoint].fields
    with _traffic, _sdk_errors(f"endpoint.{endpoint}"):
        _apply_traffic(session, endpoint, want.get("traffic") or {}, want.get("mirror_traffic"))
    # since when its instances bill (status's estimate of the cost so far): this deployment
    return {
        "id": made.id,
        "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")[:19] + "Z",
    }


def _kubernetes(dep) -> tuple[type, dict]:
    """A Kubernetes endpoint's deployment: the SDK's class, and its containers' requests and
    limits (`nvidia.com/gpu` as the SDK's `gpu`)."""
    from azure.ai.ml.entities import (
        KubernetesOnlineDeployment,
        ResourceRequirementsSettings,
        ResourceSettings,
    )

    def amounts(side: str):
        given = (dep.fields.get("resources") or {}).get(side)
        if not isinstance(given, dict):
            return None
        named = {"nvidia.com/gpu": "gpu"}
        return ResourceSettings(**{named.get(str(k), str(k)): str(v) for k, v in given.items()})

    resources = ResourceRequirementsSettings(requests=amounts("requests"), limits=amounts("limits"))
    return KubernetesOnlineDeployment, {"resources": resources}


def _model(dep, attrs: dict):
    """`NAME:VERSION` of a registered model (a model of the spec's: the version its plan
    registered, `diabetes-mlflow v2`; else as written, `@latest` resolved by the SDK), or a local
    folder the SDK uploads. A reference goes without its `azureml:`, as the CLI's schema passes
    it: the SDK reads `azureml:NAME@latest` as a model named `azureml:NAME`."""
    from azure.ai.ml.entities import Model

    model = dep.model
    if model is None:
        return None
    if model.local is not None:
        return Model(path=str(model.local), type=model.type or "custom_model")
    if model.registered is None:
        return model.shown
    name, version = model.registered
    planned = re.fullmatch(rf"{re.escape(name)} v(\S+)", str(attrs.get("model") or ""))
    if model.spec_model and planned:
        version = planned.group(1)
    return f"{name}:{version}" if version else f"{name}@latest"


def _environment(dep):
    """A reference as the CLI's schema passes it (`NAME:V`, `NAME@latest`, a curated one, which
    the SDK sends as `azureml:AzureML-...`; a registry's URI as written), or an inline definition
    or environment file, which the SDK registers as an anonymous environment."""
    value = dep.fields.get("environment")
    if value is None:
        return None
    if isinstance(value, str) and not value.startswith("file:"):
        return value if value.startswith("azureml://") else value.removeprefix("azureml:")
    definition = dep.environment.definition if dep.environment is not None else None
    return environment_entity(definition or value)


def environment_entity(definition: dict, **fields):
    """An azure-ai-ml Environment of a definition (image, conda file read in, build context, a
    custom container's inference_config)."""
    from azure.ai.ml.entities import BuildContext, Environment

    build = definition.get("build")
    return Environment(
        image=definition.get("image"),
        conda_file=definition.get("conda_file"),
        inference_config=definition.get("inference_config"),
        build=BuildContext(path=build["path"], dockerfile_path=build.get("dockerfile_path"))
        if build
        else None,
        **fields,
    )


def _apply_traffic(session: Session, endpoint: str, traffic: dict, mirror: dict | None) -> None:
    """The endpoint's traffic as the spec wants it, once every deployment it weighs exists."""
    ml = session.ml()
    current = ml.online_endpoints.get(endpoint)
    there = {d.lower() for d in current.traffic} | {d.lower() for d in current.mirror_traffic}
    weighed = {str(d).lower() for w in (traffic, mirror or {}) for d, v in w.items() if v}
    if not weighed <= there:
        return  # a deployment made after this one sets it
    if _weights(traffic, mirror or {}) == _weights(current.traffic, current.mirror_traffic):
        return
    current.traffic, current.mirror_traffic = dict(traffic), dict(mirror or {})
    with _sdk_stderr():
        ml.online_endpoints.begin_create_or_update(current).result()


def _weights(*splits: dict) -> list[dict]:
    """Traffic splits as Azure compares them: lower-cased names, zeros dropped."""
    return [{str(k).lower(): v for k, v in split.items() if v} for split in splits]


def delete(session: Session, kind: str, name: str) -> None:
    """Delete the endpoint (its deployments go with it) or a deployment, once its traffic is 0;
    what is already gone is fine. An invoke is a call: nothing to delete."""
    from azure.core.exceptions import ResourceNotFoundError

    if kind == "invoke":
        return
    _quiet_polling()
    ml = session.ml()
    endpoint, _, dep = name.partition("/")
    with _sdk_errors(f"{kind}.{name}"):
        try:
            current = ml.online_endpoints.get(endpoint)
        except ResourceNotFoundError:
            return
        if kind == "endpoint":
            ml.online_endpoints.begin_delete(endpoint).result()
            return
        if dep.lower() not in {d.lower() for d in current.traffic}:
            return  # get() names every deployment the endpoint has
        with _traffic:
            _zero_traffic(session, endpoint, dep)
        ml.online_deployments.begin_delete(dep, endpoint).result()


def _zero_traffic(session: Session, endpoint: str, dep: str) -> None:
    """No more traffic (live or mirrored) to `dep`; the others keep theirs if they still add up
    to 100, else get none (the endpoint is being emptied)."""
    ml = session.ml()
    current = ml.online_endpoints.get(endpoint)
    traffic = {k: v for k, v in current.traffic.items() if v and k.lower() != dep.lower()}
    mirror = {k: v for k, v in current.mirror_traffic.items() if v and k.lower() != dep.lower()}
    if _weights(traffic, mirror) == _weights(current.traffic, current.mirror_traffic):
        return
    current.traffic = traffic if sum(traffic.values()) == 100 else {}
    current.mirror_traffic = mirror
    with _sdk_stderr():
        ml.online_endpoints.begin_create_or_update(current).result()


def invoke(
    session: Session, endpoint: str, body: bytes, deployment: str | None
) -> tuple[int, bytes]:
    """`ml_client.online_endpoints.invoke`: the answer as (200, bytes); an HTTP error as its
    status and body, as the local target answers them."""
    from azure.ai.ml.constants._endpoint import EndpointInvokeFields
    from azure.core.exceptions import HttpResponseError

    try:
        json.loads(body)
    except ValueError as e:
        raise UserError(f"endpoint {endpoint}: the request is not JSON ({e})") from None
    with tempfile.TemporaryDirectory(prefix="mlrun-invoke-") as tmp:
        request = Path(tmp) / "request.json"
        request.write_bytes(body)
        with _invoking:
            headers = EndpointInvokeFields.DEFAULT_HEADER  # the SDK adds to it, and keeps it
            for kept in (EndpointInvokeFields.AUTHORIZATION, EndpointInvokeFields.MODEL_DEPLOYMENT):
                headers.pop(kept, None)
            try:
                with _sdk_errors(f"endpoint.{endpoint}", scoring=True):
                    answer = session.ml().online_endpoints.invoke(
                        endpoint_name=endpoint,
                        request_file=str(request),
                        deployment_name=deployment,
                    )
            except HttpResponseError as e:
                if e.response is None or e.status_code is None:
                    raise
                return e.status_code, e.response.text().encode() or str(e.message).encode()
            finally:
                headers.pop(EndpointInvokeFields.AUTHORIZATION, None)
    return 200, answer.encode()


@contextlib.contextmanager
def _sdk_errors(what: str, scoring: bool = False) -> Iterator[None]:
    """plain_errors, and the SDK's own refusals (MlException: a deployment that does not exist, a
    field it rejects) as located UserErrors. With `scoring`, the scoring URI's HTTP answers pass
    through (invoke returns them)."""
    from azure.ai.ml.exceptions import MlException
    from azure.core.exceptions import HttpResponseError

    try:
        yield
    except Exception as exc:
        request = getattr(getattr(exc, "response", None), "request", None)
        if (
            scoring
            and isinstance(exc, HttpResponseError)
            and "/score" in str(request and request.url)
        ):
            raise
        if isinstance(exc, MlException):
            # the SDK re-raises a refusal with its advice around it: the refusal says it
            inner = exc.__context__ if isinstance(exc.__context__, MlException) else exc
            text = " ".join(str(inner.message or inner).split())
            raise UserError(f"{what}: {text}") from None
        with plain_errors(what):
            raise


_quiet = threading.Lock()


def _quiet_polling() -> None:
    """azure-ai-ml's AzureMLPolling (online deployments) prints a '.' to stdout at every poll,
    from the poller's own thread, where no redirect of the caller's reaches: mlrun's events say
    what happens instead."""
    from azure.ai.ml._utils._azureml_polling import AzureMLPolling
    from azure.mgmt.core.polling.arm_polling import ARMPolling

    with _quiet:
        AzureMLPolling.update_status = ARMPolling.update_status  # type: ignore[method-assign]
