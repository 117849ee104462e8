"""The Azure ML workspace data plane: datastores, code uploads, environments, jobs, run history,
discovery, and the MLflow endpoint (proxied to the workspace's real MLflow server)."""

import json
import re
import time
import urllib.error
import urllib.request
import uuid

import azure_only
import pipelines
import sweeps
from arm import MLS_NS, not_found, system_data, ws_id
from azurite import ACCOUNT, KEY
from lro import location_headers
from server import WS, Reply, error, route
from state import now_iso

WS_CASED = (
    r"/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)"
)
TERMINAL = {"Completed", "Failed", "Canceled", "NotResponding", "Paused"}


def workspace_or_404(ctx, sub, rg, ws):
    found = ctx.app.state.get(ws_id(sub, rg, ws))
    return found, (None if found else not_found("workspaces", ws, rg))


# --- datastores ---


def datastore(app, wres, name):
    container = app.state.info(wres["id"])["blob_container"]
    return {
        "id": f"{wres['id']}/datastores/{name}",
        "name": name,
        "type": f"{MLS_NS}/workspaces/datastores",
        "systemData": system_data(),
        "properties": {
            "datastoreType": "AzureBlob",
            "accountName": ACCOUNT,
            "containerName": container,
            "endpoint": f"core.localhost:{app.azurite.port}",
            "protocol": "https",
            "credentials": {"credentialsType": "AccountKey"},
            "isDefault": name == "workspaceblobstore",
            "serviceDataAccessAuthIdentity": "None",
            "description": None,
            "tags": {},
            "properties": {},
        },
    }


DATASTORES = ("workspaceblobstore", "workspaceartifactstore")


@route("GET", WS + r"/datastores")
def list_datastores(ctx, sub, rg, ws):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    names = (
        ["workspaceblobstore"] if (ctx.q("isDefault") or "").lower() == "true" else list(DATASTORES)
    )
    made = (
        [] if names == ["workspaceblobstore"] else ctx.app.state.children(wres["id"], "datastores")
    )
    made = [d for d in made if d["name"] not in DATASTORES]
    return Reply(200, {"value": [datastore(ctx.app, wres, n) for n in names] + made})


# what each datastore type needs (the service's checks of a PUT), and the credentials it takes
STORE_FIELDS = {
    "AzureBlob": ("accountName", "containerName"),
    "AzureDataLakeGen2": ("accountName", "filesystem"),
    "AzureFile": ("accountName", "fileShareName"),
    "AzureDataLakeGen1": ("storeName",),
}
STORE_CREDENTIALS = {
    "AzureBlob": ("AccountKey", "Sas", "None"),
    "AzureFile": ("AccountKey", "Sas", "None"),
    "AzureDataLakeGen2": ("ServicePrincipal", "Certificate", "None"),
    "AzureDataLakeGen1": ("ServicePrincipal", "Certificate", "None"),
}
SECRET_KEYS = {"AccountKey": "key", "Sas": "sasToken", "ServicePrincipal": "clientSecret"}


@route("GET PUT DELETE", WS + r"/datastores/(?P<name>[^/]+)")
def one_datastore(ctx, sub, rg, ws, name):
    """A workspace's own datastores are always there; others are PUT by `az ml datastore
    create`. The service keeps a credential's secret to itself: a GET never shows it, only
    listSecrets does."""
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    rid = f"{wres['id']}/datastores/{name}"
    if ctx.method == "PUT":
        return _put_datastore(ctx, rid, name)
    if ctx.method == "DELETE":
        if name == "workspaceblobstore":
            return error(
                400, "UserError", "The default datastore of a workspace cannot be deleted."
            )
        if name not in DATASTORES and ctx.app.state.get(rid) is None:
            return Reply(204)
        ctx.app.state.delete_tree(rid)
        return Reply(200)
    found = ctx.app.state.get(rid)
    if found is not None:
        return Reply(200, found)
    if name in DATASTORES:
        return Reply(200, datastore(ctx.app, wres, name))
    return not_found("workspaces/datastores", name, rg)


def _put_datastore(ctx, rid, name):
    props = dict((ctx.json or {}).get("properties") or {})
    kind = props.get("datastoreType")
    if kind not in STORE_FIELDS:
        return error(400, "UserError", f"Datastore type '{kind}' is not supported.")
    for key in STORE_FIELDS[kind]:
        if not props.get(key):
            return error(400, "UserError", f"{key} is required for a {kind} datastore.")
    creds = dict(props.get("credentials") or {"credentialsType": "None"})
    ctype = creds.get("credentialsType")
    if ctype not in STORE_CREDENTIALS[kind]:
        return error(400, "UserError", f"Credentials of type '{ctype}' are not valid for {kind}.")
    secrets = dict(creds.pop("secrets", None) or {})
    if ctype in SECRET_KEYS and not secrets.get(SECRET_KEYS[ctype]):
        return error(400, "UserError", f"{ctype} credentials need secrets.{SECRET_KEYS[ctype]}.")
    if ctype == "ServicePrincipal" and not (creds.get("clientId") and creds.get("tenantId")):
        return error(400, "UserError", "ServicePrincipal credentials need clientId and tenantId.")
    props["credentials"] = creds  # the secret is kept apart, as the service keeps it
    props.setdefault("isDefault", False)
    body = {
        "id": rid,
        "name": name,
        "type": f"{MLS_NS}/workspaces/datastores",
        "systemData": system_data(),
        "properties": props,
    }
    existed = ctx.app.state.get(rid) is not None
    ctx.app.state.put(rid, body, secrets=secrets)
    return Reply(200 if existed else 201, body)


@route("POST", WS + r"/datastores/(?P<name>[^/]+)/listSecrets")
def datastore_secrets(ctx, sub, rg, ws, name):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    rid = f"{wres['id']}/datastores/{name}"
    if ctx.app.state.get(rid) is not None:
        kept = ctx.app.state.info(rid).get("secrets") or {}
        ctype = ctx.app.state.get(rid)["properties"]["credentials"].get("credentialsType")
        return Reply(200, {"secretsType": ctype, **kept})
    return Reply(200, {"secretsType": "AccountKey", "key": KEY})


# --- code assets (snapshots of a job's code folder) ---


@route("GET", WS + r"/codes/(?P<name>[^/]+)/versions")
def list_code_versions(ctx, sub, rg, ws, name):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    wanted, state = ctx.q("hash"), ctx.app.state
    if wanted:  # the workspace's code versions with that content, whatever their name
        prefix = f"{wres['id']}/codes/".lower()
        with state.lock:
            found = [
                v
                for k, v in state.resources.items()
                if k.startswith(prefix)
                and "/versions/" in k
                and state.info(k).get("hash") == wanted
            ]
        return Reply(200, {"value": found})
    return Reply(200, {"value": state.children(f"{wres['id']}/codes/{name}", "versions")})


@route("GET PUT", WS + r"/codes/(?P<name>[^/]+)/versions/(?P<version>[^/]+)")
def code_version(ctx, sub, rg, ws, name, version):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    cid = f"{wres['id']}/codes/{name}/versions/{version}"
    current = ctx.app.state.get(cid)
    if ctx.method == "GET":
        return (
            Reply(200, current)
            if current
            else not_found("workspaces/codes/versions", f"{name}/{version}", rg)
        )
    props = ctx.json.get("properties", {})
    body = {
        "id": cid,
        "name": version,
        "type": f"{MLS_NS}/workspaces/codes/versions",
        "systemData": system_data(),
        "properties": {**props, "provisioningState": "Succeeded"},
    }
    ctx.app.state.put(cid, body, hash=(props.get("properties") or {}).get("hash_sha256"))
    return Reply(200 if current else 201, body)


@route("GET", WS + r"/codes/(?P<name>[^/]+)")
def code_container(ctx, sub, rg, ws, name):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    return Reply(
        200,
        {
            "id": f"{wres['id']}/codes/{name}",
            "name": name,
            "type": f"{MLS_NS}/workspaces/codes",
            "properties": {"latestVersion": "1", "nextVersion": "2"},
            "systemData": system_data(),
        },
    )


@route("POST", WS + r"/codes/(?P<name>[^/]+)/versions/(?P<version>[^/]+)/startPendingUpload")
def start_pending_upload(ctx, sub, rg, ws, name, version):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    # a container of its own, as Azure gives each pending upload (the SDK uploads to its root, so
    # two folders of one name would otherwise meet, and the second pass for the first)
    container = f"{ctx.app.state.info(wres['id'])['workspace_id']}-{uuid.uuid4().hex[:12]}"
    ctx.app.azurite.ensure_container(container)
    sas = ctx.app.azurite.container_sas_url(container)
    return Reply(
        200,
        {
            "pendingUploadId": str(uuid.uuid4()),
            "pendingUploadType": ctx.json.get("pendingUploadType", "TemporaryBlobReference"),
            "blobReferenceForConsumption": {
                "blobUri": f"{ctx.app.azurite.url}/{container}",
                "storageAccountArmId": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/"
                f"Microsoft.Storage/storageAccounts/{ACCOUNT}",
                "credential": {"credentialType": "SAS", "sasUri": sas},
            },
        },
    )


# --- environments (curated ones, and those a workspace registers: images, anonymous ones) ---


@route("GET PUT", WS + r"/environments/(?P<name>[^/]+)")
def environment_container(ctx, sub, rg, ws, name):
    """An environment's container: what `environments.archive(name)` reads and writes back."""
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    cid = f"{wres['id']}/environments/{name}"
    if ctx.method == "PUT":
        props = dict((ctx.json or {}).get("properties") or {})
        body = {
            "id": cid,
            "name": name,
            "type": f"{MLS_NS}/workspaces/environments",
            "systemData": system_data(),
            "properties": props,
        }
        ctx.app.state.put(cid, body, created=now_iso())
        return Reply(200, body)
    container = ctx.app.state.get(cid)
    if container:
        return Reply(200, container)
    if not ctx.app.state.children(cid, "versions"):
        return not_found("workspaces/environments", name, rg)
    return Reply(
        200,
        {
            "id": cid,
            "name": name,
            "type": f"{MLS_NS}/workspaces/environments",
            "systemData": system_data(),
            "properties": {"isArchived": False, "latestVersion": None},
        },
    )


@route("GET PUT", WS + r"/environments/(?P<name>[^/]+)/versions(?:/(?P<version>[^/]+))?")
def environment(ctx, sub, rg, ws, name, version=None):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    eid = f"{wres['id']}/environments/{name}/versions/{version}"
    if ctx.method == "PUT":
        props = dict((ctx.json or {}).get("properties") or {})
        if not version or not (props.get("image") or props.get("build")):
            return error(
                400, "UserError", "An environment version needs an image or a build context."
            )
        body = {
            "id": eid,
            "name": version,
            "type": f"{MLS_NS}/workspaces/environments/versions",
            "systemData": system_data(),
            "properties": {**props, "osType": props.get("osType") or "Linux"},
        }
        seq = ctx.app.state.info(eid).get("seq") or time.monotonic_ns()
        ctx.app.state.put(eid, body, created=now_iso(), seq=seq)
        return Reply(200, body)
    registered = ctx.app.state.get(eid) if version else None
    if registered:
        return Reply(200, registered)
    if not name.startswith("AzureML-"):
        if version is None:  # `@latest`: the SDK asks for the newest one ($top=1)
            from components import versions_of  # (components imports this module)

            found = versions_of(ctx.app, wres["id"], name, section="environments")
            top = ctx.q("$top")
            return Reply(200, {"value": found[: int(top)] if top else found})
        return not_found("workspaces/environments", name, rg)
    body = {
        "id": f"{wres['id']}/environments/{name}/versions/{version or '1'}",
        "name": version or "1",
        "type": f"{MLS_NS}/workspaces/environments/versions",
        "systemData": system_data(),
        "properties": {
            "image": "mcr.microsoft.com/azureml/curated/sklearn-1.5:1",
            "osType": "Linux",
            "isAnonymous": False,
            "tags": {},
            "properties": {},
            "description": "curated",
        },
    }
    return Reply(200, body if version else {"value": [body]})


# --- jobs ---


@route("GET", WS + r"/jobs")
def list_jobs(ctx, sub, rg, ws):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    return Reply(200, {"value": ctx.app.state.children(wres["id"], "jobs")})


@route("GET PUT", WS + r"/jobs/(?P<name>[^/]+)")
def job(ctx, sub, rg, ws, name):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    jid = f"{wres['id']}/jobs/{name}"
    current = ctx.app.state.get(jid)
    if ctx.method == "GET":
        if current:
            return Reply(200, current)
        runner = ctx.app.jobs.get(jid.lower())
        if isinstance(runner, (pipelines.StepRunner, pipelines.PipelineRunner)):
            # as the service answers for a pipeline's step (a nested pipeline's, a sweep
            # step's too): no properties (the SDK then reads the run from run history)
            return Reply(
                200,
                {
                    "id": jid,
                    "name": name,
                    "type": f"{MLS_NS}/workspaces/jobs",
                    "properties": None,
                    "systemData": system_data(),
                },
            )
        return not_found("workspaces/jobs", name, rg)
    if current:
        return error(
            409, "UserError", f"A job with name '{name}' already exists in workspace '{ws}'."
        )
    props = dict(ctx.json.get("properties") or {})
    if props.get("jobType") not in ("Command", "Sweep", "Pipeline", *azure_only.KINDS):
        return error(
            400,
            "UserError",
            "The emulator runs Command, Sweep, Pipeline, AutoML, FineTuning and Spark jobs, "
            f"not {props.get('jobType')}.",
        )
    problem = (
        azure_only.check(props)
        if props["jobType"] in azure_only.KINDS
        else sweeps.check(props)
        if props["jobType"] == "Sweep"
        else pipelines.check(ctx.app, wres["id"], props)
        if props["jobType"] == "Pipeline"
        else None
    )
    if problem:
        return error(400, "UserError", problem)
    compute_id = props.get("computeId") if props["jobType"] != "Pipeline" else None
    if compute_id and not compute_id.startswith("/"):  # a name (FineTuning: sent as written)
        compute_id = f"{wres['id']}/computes/{compute_id.removeprefix('azureml:')}"
    if compute_id and not ctx.app.state.get(compute_id):
        return error(
            400,
            "UserError",
            f"Compute '{compute_id.rsplit('/', 1)[-1]}' does not exist in workspace '{ws}'.",
        )
    props.setdefault("experimentName", "Default")
    props["status"] = "NotStarted"
    props["services"] = job_services(wres, name)
    body = {
        "id": jid,
        "name": name,
        "type": f"{MLS_NS}/workspaces/jobs",
        "properties": props,
        "systemData": system_data(),
    }
    ctx.app.state.put(jid, body, created=now_iso())
    ctx.app.start_job(wres, body, ctx.async_failure() if props["jobType"] == "Pipeline" else None)
    return Reply(201, body)


def job_services(wres, name) -> dict:
    """A job's services as the service answers them: its Studio page and MLflow tracking URI."""
    return {
        "Studio": {
            "jobServiceType": "Studio",
            "endpoint": f"https://ml.azure.com/runs/{name}?wsid={wres['id']}",
        },
        "Tracking": {
            "jobServiceType": "Tracking",
            "endpoint": wres["properties"]["mlFlowTrackingUri"],
        },
    }


@route("POST", WS + r"/jobs/(?P<name>[^/]+)/cancel")
def cancel_job(ctx, sub, rg, ws, name):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    jid = f"{wres['id']}/jobs/{name}"
    current = ctx.app.state.get(jid)
    if current is None:
        return not_found("workspaces/jobs", name, rg)
    runner = ctx.app.jobs.get(jid.lower())
    if runner and current["properties"]["status"] not in TERMINAL:
        runner.cancel()
    op = ctx.app.state.new_op(ctx.method, ctx.path)
    return Reply(
        202,
        None,
        location_headers(
            ctx, op, f"/subscriptions/{sub}/providers/{MLS_NS}/locations/{wres['location']}"
        ),
    )


# --- run history (what jobs.stream polls) and discovery ---

HISTORY = (
    r"/history/v1\.0"
    + WS_CASED
    + r"(?:/experiments/[^/]+|/experimentids/[^/]+)?/runs/(?P<run>[^/]+)"
)


@route("GET", HISTORY + r"/details")
def run_details(ctx, sub, rg, ws, run):
    runner = ctx.app.jobs.get(f"{ws_id(sub, rg, ws)}/jobs/{run}".lower())
    if runner is None:
        return error(404, "UserError", f"Run {run} was not found")
    return Reply(200, runner.details())


@route("GET", HISTORY + r"/children")
def run_children(ctx, sub, rg, ws, run):
    """A pipeline's steps (or a sweep's trials) as runs, in the order they were started."""
    runner = ctx.app.jobs.get(f"{ws_id(sub, rg, ws)}/jobs/{run}".lower())
    if runner is None:
        return error(404, "UserError", f"Run {run} was not found")
    children = [c.details() for c in getattr(runner, "children", [])]
    top = ctx.q("$top")
    return Reply(200, {"value": children[: int(top)] if top else children, "nextLink": None})


@route("GET PATCH POST", HISTORY)
def run(ctx, sub, rg, ws, run):
    runner = ctx.app.jobs.get(f"{ws_id(sub, rg, ws)}/jobs/{run}".lower())
    if runner is None:
        return error(404, "UserError", f"Run {run} was not found")
    if ctx.method != "GET":
        runner.patch(ctx.json)
    return Reply(200, runner.details())


@route("POST", r"/history/v1\.0" + WS_CASED + r"/rundata")
def run_data(ctx, sub, rg, ws):
    """A run with its outputs as data assets (`jobs.download(name, output_name=...)` reads them,
    then resolves each asset's URI with batchGetResolvedUris)."""
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    run_id = (ctx.json or {}).get("runId") or ""
    runner = ctx.app.jobs.get(f"{wres['id']}/jobs/{run_id}".lower())
    if runner is None:
        return error(404, "UserError", f"Run {run_id} was not found")
    outputs = {
        name: {"assetId": _output_asset(ctx.app, wres, run_id, name), "type": kind}
        for name, (kind, _) in _data_outputs(runner).items()
    }
    return Reply(
        200,
        {
            "runMetadata": {**runner.details(), "outputs": outputs},
            "runDefinition": None,
            "jobSpecification": None,
        },
    )


@route("POST", r"/data/v1\.0" + WS_CASED + r"/dataversion/batchGetResolvedUris")
def resolved_uris(ctx, sub, rg, ws):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    found = {}
    for asset in (ctx.json or {}).get("values") or []:
        m = OUTPUT_ASSET.match(asset)
        if not m:
            continue
        runner = ctx.app.jobs.get(f"{wres['id']}/jobs/{m.group('run')}".lower())
        kind, uri = _data_outputs(runner).get(m.group("output"), (None, None))
        if uri:
            found[asset] = {"uri": uri, "type": kind}
    return Reply(200, {"values": found})


OUTPUT_ASSET = re.compile(r".*/data/azureml_(?P<run>.+?)_output_data_(?P<output>[^/]+)/versions/1$")


def _output_asset(app, wres, run_id, name) -> str:
    """The id Azure gives a job's output as a data asset."""
    workspace_id = app.state.info(wres["id"])["workspace_id"]
    return (
        f"azureml://locations/{wres['location']}/workspaces/{workspace_id}/data/"
        f"azureml_{run_id}_output_data_{name}/versions/1"
    )


def _data_outputs(runner) -> dict:
    """A run's uri_file/uri_folder/mltable outputs: name -> (type, datastore URI)."""
    found = {}
    for name, spec in ((getattr(runner, "props", None) or {}).get("outputs") or {}).items():
        kind = re.sub(r"(?<!^)(?=[A-Z])", "_", (spec or {}).get("jobOutputType") or "").lower()
        if kind in ("uri_file", "uri_folder", "mltable"):
            uri = (spec or {}).get("uri") or (
                f"azureml://datastores/workspaceblobstore/paths/azureml/{runner.name}/{name}/"
            )
            found[name] = (kind, uri)
    return found


@route("GET", r"/discovery")
def discovery(ctx):
    base = ctx.app.base
    return Reply(
        200,
        {
            "api": base,
            "catalog": base,
            "experimentation": base,
            "history": base,
            "hyperdrive": base,
            "labeling": base,
            "modelmanagement": base,
            "pipelines": base,
            "studio": "https://ml.azure.com",
        },
    )


# --- MLflow: the azureml tracking URI's REST paths, served by the workspace's MLflow server ---


@route("GET POST PATCH DELETE", r"/mlflow/v[12]\.0" + WS_CASED + r"(?P<rest>/api/2\.0/.*)")
def mlflow_proxy(ctx, sub, rg, ws, rest):
    server = ctx.app.mlflow.get(ws_id(sub, rg, ws).lower())
    if server is None:
        return not_found("workspaces", ws, rg)
    if rest.endswith("/preview/mlflow/runs/get-run-data-status"):
        return Reply(200, {"is_complete": True})
    is_async = rest.endswith("/preview/mlflow/runs/log-batch-async")
    if is_async:
        rest = "/api/2.0/mlflow/runs/log-batch"
    query = "&".join(f"{k}={urllib.request.quote(v)}" for k, vs in ctx.query.items() for v in vs)
    url = server.base_url() + rest + (f"?{query}" if query else "")
    req = urllib.request.Request(
        url,
        data=ctx.raw if ctx.method != "GET" else None,
        method=ctx.method,
        headers={"Content-Type": ctx.headers.get("Content-Type", "application/json")},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, body, ctype = (
                resp.status,
                resp.read(),
                resp.headers.get("Content-Type", "application/json"),
            )
    except urllib.error.HTTPError as e:
        status, body, ctype = e.code, e.read(), e.headers.get("Content-Type", "application/json")
    if is_async and status == 200:
        body = json.dumps({"batch_tracking_id": str(uuid.uuid4())}).encode()
    return Reply(status, body, {"Content-Type": ctype})
