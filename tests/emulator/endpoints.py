"""Managed (and Kubernetes) online endpoints and their deployments, as the SDK drives them
(`ml_client.online_endpoints` / `online_deployments`, api-versions 2022-02-01-preview and
2023-04-01-preview): PUT answers 201 (200 for an update) with an Azure-AsyncOperation status URL,
polled until Succeeded, then the resource is read again; DELETE answers 202 with status and
Location URLs. `listKeys` answers the endpoint's keys (made at create, never in a GET), `token`
an aml_token endpoint's token.

Checks the service makes: traffic only to deployments that exist, adding up to 100 (or 0), mirrored
to one deployment at most, at most 50%, and not to one that gets live traffic; a deployment's
endpoint, model version and instance type must exist, an MLflow or Triton model deploys with no
scoring script ("no-code"), and so does any model a custom container serves (an environment with
an inference_config), any other model needs a script and an environment; an environment alone
(a model package) serves itself; the environment must be registered (or curated), the code
version must exist and its uploaded folder hold the scoring script; a deployment that still gets
live traffic cannot be deleted. A Kubernetes online endpoint's compute is an attached Kubernetes
compute of the workspace, its deployments are Kubernetes ones (and only its are), sized by their
containers' requests and limits rather than by a VM. An `async_failure` fault on
a deployment's PUT ends its operation Failed and leaves it provisioningState Failed, as a
deployment whose container never became ready does.

The endpoint's `scoringUri` is this emulator
(https://127.0.0.1:PORT/inference/SUB/RG/WS/ENDPOINT/score), which checks the key (or token),
honours the `azureml-model-deployment` header and otherwise splits requests by traffic weight. It
runs no model: it answers a documented stand-in, one prediction `0` per row of the request's
`input_data` (`{"input_data": {"data": [[...], ...]}}`, or a list of rows), with the
`azureml-model-deployment` header naming the deployment that answered. A body that is not JSON
is a 400, as a deployment's server answers it."""

import json
import random
import re
import secrets

from arm import MLS_NS, not_found, system_data, vm, ws_id
from lro import async_headers, location_headers
from ml import workspace_or_404
from server import WS, Reply, error, jwt, route

EP = WS + r"/onlineEndpoints/(?P<name>[^/]+)"
PROBE = {
    "failureThreshold": 30,
    "successThreshold": 1,
    "timeout": "PT2S",
    "period": "PT10S",
    "initialDelay": "PT10S",
}
DEPLOYMENT_DEFAULTS = {  # what the service fills in for a managed deployment
    "scaleSettings": {"scaleType": "Default"},
    "requestSettings": {
        "requestTimeout": "PT5S",
        "maxConcurrentRequestsPerInstance": 1,
        "maxQueueWait": "PT0.5S",
    },
    "livenessProbe": PROBE,
    "readinessProbe": PROBE,
    "appInsightsEnabled": False,
    "egressPublicNetworkAccess": "Enabled",
}
AUTH = {"key": "Key", "aml_token": "AMLToken", "aad_token": "AADToken"}


def _status_base(sub, wres):
    return f"/subscriptions/{sub}/providers/{MLS_NS}/locations/{wres['location']}"


def _deployments(state, eid):
    return state.children(eid, "deployments")


def _traffic_problem(state, eid, props) -> str | None:
    names = {d["name"].lower() for d in _deployments(state, eid)}
    for key in ("traffic", "mirrorTraffic"):
        for dep, weight in (props.get(key) or {}).items():
            if int(weight) and dep.lower() not in names:
                return (
                    f"Traffic is allocated to deployment '{dep}', which does not exist in this "
                    "endpoint."
                )
    total = sum(int(w) for w in (props.get("traffic") or {}).values())
    if total not in (0, 100):
        return f"Traffic values must add up to 100 (or 0), not {total}."
    live = {d.lower() for d, w in (props.get("traffic") or {}).items() if int(w)}
    mirrored = {d: int(w) for d, w in (props.get("mirrorTraffic") or {}).items() if int(w)}
    if len(mirrored) > 1:
        return "Traffic can be mirrored to one deployment of an endpoint only."
    for dep, weight in mirrored.items():
        if weight > 50:
            return f"Mirror traffic values must add up to at most 50, not {weight}."
        if dep.lower() in live:
            return f"Deployment '{dep}' gets live traffic: it cannot get mirrored traffic too."
    return None


@route("GET", WS + r"/onlineEndpoints")
def list_endpoints(ctx, sub, rg, ws):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    return missing or Reply(200, {"value": ctx.app.state.children(wres["id"], "onlineEndpoints")})


@route("GET PUT DELETE", EP)
def endpoint(ctx, sub, rg, ws, name):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    state, eid = ctx.app.state, f"{wres['id']}/onlineEndpoints/{name}"
    current = state.get(eid)
    if ctx.method == "GET":
        return Reply(200, current) if current else not_found("workspaces/onlineEndpoints", name, rg)
    if ctx.method == "DELETE":
        if current is None:
            return Reply(204)
        current["properties"]["provisioningState"] = "Deleting"
        op = state.new_op(ctx.method, ctx.path, lambda: state.delete_tree(eid))
        base = _status_base(sub, wres)
        return Reply(202, None, {**async_headers(ctx, op, base), **location_headers(ctx, op, base)})
    props = dict(ctx.json.get("properties") or {})
    if props.get("authMode") not in AUTH.values():
        return error(400, "BadRequest", f"authMode '{props.get('authMode')}' is not valid.")
    problem = _traffic_problem(state, eid, props) or _compute_problem(state, wres, props)
    if problem:
        return error(400, "BadRequest", problem)
    base = f"/inference/{sub}/{rg}/{ws}/{name}"
    body = {
        "id": eid,
        "name": name,
        "type": f"{MLS_NS}/workspaces/onlineEndpoints",
        "location": wres["location"],
        "kind": "K8S" if props.get("compute") else "Managed",
        "identity": {"type": "SystemAssigned", "principalId": "e", "tenantId": "e"},
        "tags": ctx.json.get("tags") or {},
        "systemData": (current or {}).get("systemData") or system_data(),
        "properties": {
            "authMode": props["authMode"],
            "description": props.get("description"),
            "properties": props.get("properties") or {},
            "traffic": props.get("traffic") or {},
            "mirrorTraffic": props.get("mirrorTraffic") or {},
            "publicNetworkAccess": "Enabled",
            **({"compute": _compute_id(wres, props["compute"])} if props.get("compute") else {}),
            "provisioningState": "Updating" if current else "Creating",
            "scoringUri": f"{ctx.app.base}{base}/score",
            "swaggerUri": f"{ctx.app.base}{base}/swagger.json",
        },
    }
    if current is None:
        state.put(eid, body, keys=[secrets.token_urlsafe(24), secrets.token_urlsafe(24)])
    else:
        state.put(eid, body)

    def done():
        body["properties"]["provisioningState"] = "Succeeded"

    op = state.new_op(ctx.method, ctx.path, done)
    return Reply(200 if current else 201, body, async_headers(ctx, op, _status_base(sub, wres)))


@route("POST", EP + r"/listKeys")
def list_keys(ctx, sub, rg, ws, name):
    eid = f"{ws_id(sub, rg, ws)}/onlineEndpoints/{name}"
    if ctx.app.state.get(eid) is None:
        return not_found("workspaces/onlineEndpoints", name, rg)
    primary, secondary = ctx.app.state.info(eid)["keys"]
    return Reply(200, {"primaryKey": primary, "secondaryKey": secondary})


@route("POST", EP + r"/token")
def token(ctx, sub, rg, ws, name):
    eid = f"{ws_id(sub, rg, ws)}/onlineEndpoints/{name}"
    current = ctx.app.state.get(eid)
    if current is None:
        return not_found("workspaces/onlineEndpoints", name, rg)
    if current["properties"]["authMode"] != "AMLToken":
        return error(400, "BadRequest", f"Endpoint '{name}' does not use aml_token auth.")
    issued = jwt(audience="https://ml.azure.com")
    ctx.app.state.info(eid).setdefault("tokens", []).append(issued)
    return Reply(200, {"accessToken": issued, "tokenType": "Bearer", "expiryTimeUtc": 0})


@route("GET", EP + r"/deployments")
def list_deployments(ctx, sub, rg, ws, name):
    eid = f"{ws_id(sub, rg, ws)}/onlineEndpoints/{name}"
    if ctx.app.state.get(eid) is None:
        return not_found("workspaces/onlineEndpoints", name, rg)
    return Reply(200, {"value": _deployments(ctx.app.state, eid)})


@route("GET PUT DELETE", EP + r"/deployments/(?P<dep>[^/]+)")
def deployment(ctx, sub, rg, ws, name, dep):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    state, eid = ctx.app.state, f"{wres['id']}/onlineEndpoints/{name}"
    ep, did = state.get(eid), f"{eid}/deployments/{dep}"
    current = state.get(did)
    if ep is None:
        return not_found("workspaces/onlineEndpoints", name, rg)
    if ctx.method == "GET":
        return Reply(200, current) if current else not_found("onlineEndpoints/deployments", dep, rg)
    base = _status_base(sub, wres)
    if ctx.method == "DELETE":
        if current is None:
            return Reply(204)
        share = {k.lower(): int(v) for k, v in ep["properties"]["traffic"].items()}
        if share.get(dep.lower()):
            return error(
                400,
                "BadRequest",
                f"Deployment '{dep}' gets {share[dep.lower()]}% of the traffic of endpoint "
                f"'{name}': set its traffic to 0 before deleting it.",
            )
        current["properties"]["provisioningState"] = "Deleting"
        op = state.new_op(ctx.method, ctx.path, lambda: state.delete_tree(did))
        return Reply(202, None, {**async_headers(ctx, op, base), **location_headers(ctx, op, base)})
    props = dict(ctx.json.get("properties") or {})
    kubernetes = props.get("endpointComputeType") == "Kubernetes"
    problem = _deployment_problem(ctx.app, props, ctx.json.get("sku") or {})
    if kubernetes != bool(ep["properties"].get("compute")):
        problem = (
            f"A {'Kubernetes' if kubernetes else 'managed'} deployment cannot be made under a "
            f"{'managed' if kubernetes else 'Kubernetes'} endpoint."
        )
    if problem:
        return error(400, "BadRequest", problem)
    body = {
        "id": did,
        "name": dep,
        "type": f"{MLS_NS}/workspaces/onlineEndpoints/deployments",
        "location": wres["location"],
        "kind": "Kubernetes" if kubernetes else "Managed",
        "sku": {"name": "Default", "capacity": (ctx.json.get("sku") or {}).get("capacity", 1)},
        "tags": ctx.json.get("tags") or {},
        "systemData": (current or {}).get("systemData") or system_data(),
        "properties": {
            **DEPLOYMENT_DEFAULTS,
            **{k: v for k, v in props.items() if v is not None},
            "endpointComputeType": "Kubernetes" if kubernetes else "Managed",
            "provisioningState": "Updating" if current else "Creating",
        },
    }
    state.put(did, body)

    def done():
        body["properties"]["provisioningState"] = "Succeeded"

    def failed():
        body["properties"]["provisioningState"] = "Failed"

    op = state.new_op(ctx.method, ctx.path, done, failed, ctx.async_failure())
    return Reply(200 if current else 201, body, async_headers(ctx, op, base))


def _compute_id(wres, compute: str) -> str:
    return compute if compute.startswith("/subscriptions/") else f"{wres['id']}/computes/{compute}"


def _compute_problem(state, wres, props) -> str | None:
    """A Kubernetes online endpoint's compute: an attached Kubernetes compute of the workspace."""
    if not props.get("compute"):
        return None
    found = state.get(_compute_id(wres, props["compute"]))
    if found is None:
        return f"Compute '{props['compute']}' was not found in the workspace."
    if found["properties"].get("computeType") != "Kubernetes":
        return f"Compute '{props['compute']}' is not a Kubernetes compute."
    return None


def _deployment_problem(app, props, sku) -> str | None:
    size = props.get("instanceType")
    managed = props.get("endpointComputeType") != "Kubernetes"  # (else its cluster's types)
    if managed and not vm(size):
        return f"Instance type '{size}' is not supported for managed online deployments."
    if int(sku.get("capacity") or 0) < 1:
        return "instance_count must be at least 1."
    return model_problem(app, props.get("model"), props, online=True)


def model_problem(app, model, props, online: bool = False) -> str | None:
    """What the service says of a deployment's model (an ARM id) and scoring script, online or
    batch: the model version must exist; an MLflow model deploys with no scoring script, any
    other model needs one and an environment. Online only: a Triton model deploys with no script
    too (Triton serves it), and so does any model whose environment is a custom container (it
    has an inference_config: its image serves the model); with neither model nor script, the
    environment serves it by itself (a model package, which must be registered)."""
    found = app.state.get(model) if model and model.startswith("/subscriptions/") else None
    if model and model.startswith("/subscriptions/") and found is None:
        return f"Model '{model}' was not found."
    env = app.state.get(props.get("environmentId") or "") if online else None
    container = bool(env) and bool(env["properties"].get("inferenceConfig"))
    if online and not model and not props.get("codeConfiguration"):
        if not props.get("environmentId"):
            return "A deployment needs a model, a scoring script, or an environment that serves."
        return _environment_problem(app, props.get("environmentId"))
    by_itself = ("mlflow_model", "triton_model") if online else ("mlflow_model",)
    no_code = bool(found) and found["properties"].get("modelType") in by_itself
    if not props.get("codeConfiguration") and not no_code and not container:
        what = (
            "an MLflow or Triton model, unless a custom container serves it"
            if online
            else ("an MLflow model")
        )
        return (
            "A scoring script (code_configuration) and an environment are required for a model "
            f"that is not {what}."
        )
    if props.get("codeConfiguration") and not props.get("environmentId"):
        return "A deployment with a scoring script needs an environment."
    return _environment_problem(app, props.get("environmentId")) or _code_problem(
        app, props.get("codeConfiguration")
    )


def _environment_problem(app, env: str | None) -> str | None:
    """A registered environment version (an anonymous one the SDK registered among them), or a
    curated one (`azureml:AzureML-...`, or Azure's registry): the rest the service cannot find."""
    if not env:
        return None
    m = re.fullmatch(r"/subscriptions/.+/environments/([^/]+)/versions/[^/]+", env, re.I)
    if m and (m[1].startswith("AzureML-") or app.state.get(env) is not None):
        return None
    if not m and env.startswith(("azureml:AzureML-", "azureml://registries/azureml/")):
        return None
    return f"Environment '{env}' was not found."


def _code_problem(app, config: dict | None) -> str | None:
    """The code version exists and its uploaded folder holds the scoring script."""
    if not config:
        return None
    code, script = config.get("codeId") or "", config.get("scoringScript") or ""
    found = app.state.get(code) if code.startswith("/subscriptions/") else None
    if found is None:
        return f"Code '{code}' was not found."
    if script.replace("\\", "/").removeprefix("./") not in app.azurite.names_under(
        found["properties"]["codeUri"]
    ):
        return f"Scoring script '{script}' was not found in code '{code}'."
    return None


# --- the scoring URI -----------------------------------------------------------------------------


@route("POST", r"/inference/(?P<sub>[^/]+)/(?P<rg>[^/]+)/(?P<ws>[^/]+)/(?P<name>[^/]+)/score")
def score(ctx, sub, rg, ws, name):
    state, eid = ctx.app.state, f"{ws_id(sub, rg, ws)}/onlineEndpoints/{name}"
    ep = state.get(eid)
    if ep is None:
        return Reply(404, {"message": f"endpoint {name} not found"})
    given = (ctx.headers.get("Authorization") or "").removeprefix("Bearer ")
    allowed = state.info(eid).get(
        "tokens" if ep["properties"]["authMode"] == "AMLToken" else "keys", []
    )
    if not given or given not in allowed:
        return Reply(401, {"message": "Unauthorized: the key or token is missing or wrong."})
    live = {d["name"].lower(): d for d in _deployments(state, eid)}
    wanted = (ctx.headers.get("azureml-model-deployment") or "").lower()
    if wanted:
        chosen = live.get(wanted)
        if chosen is None:
            return Reply(404, {"message": f"deployment {wanted} not found on endpoint {name}"})
    else:
        weights = {k.lower(): int(v) for k, v in ep["properties"]["traffic"].items() if int(v)}
        if not weights:
            return Reply(424, {"message": "No valid deployments to route to: set traffic."})
        dep = random.choices(list(weights), weights=list(weights.values()))[0]
        chosen = live[dep]
    if chosen["properties"]["provisioningState"] != "Succeeded":
        return Reply(503, {"message": f"deployment {chosen['name']} is not ready"})
    try:
        body = json.loads(ctx.raw or b"")
    except ValueError:
        return Reply(400, {"message": "the request body is not JSON"})
    rows = body.get("input_data", body) if isinstance(body, dict) else body
    rows = rows.get("data", []) if isinstance(rows, dict) else rows
    if not isinstance(rows, list):
        return Reply(400, {"message": "input_data holds no rows"})
    return Reply(200, [0] * len(rows), {"azureml-model-deployment": chosen["name"]})
