"""Batch endpoints and their model deployments, as the SDK drives them (`ml_client.batch_endpoints`
/ `batch_deployments`): PUT answers 201 (200 for an update) with an Azure-AsyncOperation status
URL, polled until Succeeded, then the resource is read again; DELETE answers 202 with status and
Location URLs. An endpoint's `scoringUri` is this emulator
(https://127.0.0.1:PORT/batch/SUB/RG/WS/ENDPOINT/jobs); `list_jobs` reads
`/mferp/managementfrontend/subscriptions/.../batchEndpoints/ENDPOINT[/deployments/DEP]/jobs` at
the discovery URL (this emulator).

Checks the service makes: an endpoint authenticates with AADToken only; `defaults.deploymentName`
must name one of its deployments (a PUT without defaults keeps the default it has); a deployment
needs its endpoint, a compute that is an AmlCompute of the workspace and a model version that
exists; an MLflow model deploys with no scoring script or environment, any other model needs
both. The first deployment that succeeds on an endpoint without a default becomes its default,
as Azure does. The default deployment cannot be deleted (the emulator is strict here: make
another deployment the default, or delete the endpoint with its deployments). Only model
deployments and pipeline component ones are served. An `async_failure` fault on a deployment's
PUT ends its operation Failed and leaves it provisioningState Failed.

Pipeline component deployments (batch_pipelines.py; `deploymentConfiguration`
{deploymentConfigurationType: PipelineComponent, componentId: {assetId}, settings}, no compute
of their own): the component version must exist and be a pipeline component (a command one is
refused), settings.default_compute must name a compute of the workspace (by name, azureml:NAME
or ARM id). Stored as sent, without the model deployments' defaults; the workspace's MLflow
server is started then (its calls' steps log to it). An invoke of one sends `inputData` {NAME:
{"jobInputType": "UriFolder"|"UriFile"|"Literal"|..., "uri"|"value"}} (an input the component
does not declare, or a required one left out with no default: 400) and makes a pipeline job,
named as asked, in the experiment named after the endpoint, tagged as a batch run (as below),
whose steps are the registered component's `jobs` run for real as any pipeline job's
(pipelines.PipelineRunner: child command jobs, `jobs.list(parent_job_name=JOB)`, each with its
std log) on settings.default_compute, with the invoke's inputs bound and the component's
defaults for the rest (literals as text: an integer 3 is "3", booleans true/false). Each output
of the component is a uri_folder at azureml://datastores/workspaceblobstore/paths/azureml/JOB/
OUTPUT/ (or the path the invoke's outputData names), written by the step bound to it, and
downloadable with `jobs.download(JOB, output_name=OUTPUT)`. A failing step fails the job
("Pipeline has some failed steps..."), its error in its own run history; an async_failure rule
matching the invoke's POST fails the whole job at start, and delay/async_failure rules matching
`{job id}/steps/{step}` hold or fail one step, as for pipelines.

Invoking a model deployment: the SDK POSTs a batch job body ({"properties": {"inputData": {KEY:
{"jobInputType": "UriFolder"|"UriFile", "uri": ...}}, "name": JOB?, ...}}) to the scoring URI with a
bearer token for https://ml.azure.com that /msi/token issued (else 401), routed to the deployment
the `azureml-model-deployment` header names, else to the endpoint's default (none: 404, which the
SDK raises as ResourceNotFoundError). It answers the job (a BatchJobResource, status NotStarted) and
makes it a job of the workspace, named as asked or `batchjob-GUID`, in the experiment named after
the endpoint: a pipeline job (tags azureml.batchrun "true", azureml.jobtype "azureml.pipelinejob")
with one child step, display name `batchscoring`, a run with a GUID id
(`jobs.list(parent_job_name=JOB)`). Both have the output `score`, a uri_folder
azureml://datastores/workspaceblobstore/paths/azureml/CHILD/score/ (or the output path the invoke
names), which `jobs.download(JOB or CHILD, output_name="score")` fetches (through run history's
rundata and the data plane's batchGetResolvedUris, served in ml.py).

The step runs no model: it reads the input's files from Azurite (a folder the SDK uploaded, a
data asset version, a datastore path) and, for output_action append_row, writes
`output_file_name` (default predictions.csv) with one line `ROW,0,FILE` per data row of each file
(ROW the row's 0-based index in its file, 0 the stand-in prediction, FILE the file's base name;
data rows: the non-blank lines after the header of a CSV, TSV or other text file, those of a
.json/.jsonl (JSON lines) file, the rows of a Parquet file), files in the order of their paths;
summary_only writes no file. Its std log
(user_logs/std_log.txt) has a line per file scored; the pipeline's execution log
(logs/azureml/executionlogs.txt) the step's start and end. An output file that already exists at
an output path the invoke names fails the step, as Azure does.

Faults, besides the request faults every route has: an async_failure rule matching the invoke's
POST (`/batch/SUB/RG/WS/ENDPOINT/jobs`) fails the job's step with the rule's error (the pipeline:
"Pipeline has some failed steps..."); a delay rule matching `{job id}/steps/batchscoring` holds
the step Queued that long, as for pipelines.
"""

import base64
import json
import time
import uuid
from pathlib import Path

import batch_pipelines
from arm import MLS_NS, not_found, system_data, ws_id
from endpoints import model_problem
from jobs import DATASTORE_URI, LOG_NAME
from lro import async_headers, location_headers
from ml import job_services, workspace_or_404
from pipelines import FAILED_MESSAGE, PipelineRunner, StepRunner
from server import WS, Reply, error, route
from state import now_iso

EP = WS + r"/batchEndpoints/(?P<name>[^/]+)"
SCORING = r"/batch/(?P<sub>[^/]+)/(?P<rg>[^/]+)/(?P<ws>[^/]+)/(?P<name>[^/]+)/jobs"
AUDIENCE = "https://ml.azure.com"
STEP, OUTPUT = "batchscoring", "score"
DEPLOYMENT_DEFAULTS = {  # what the service fills in for a model batch deployment
    "outputAction": "AppendRow",
    "outputFileName": "predictions.csv",
    "miniBatchSize": 10,
    "maxConcurrencyPerInstance": 1,
    "errorThreshold": -1,
    "loggingLevel": "Info",
    "retrySettings": {"maxRetries": 3, "timeout": "PT30S"},
    "resources": {"instanceCount": 1},
}
INPUT_TYPES = {"urifolder": "uri_folder", "urifile": "uri_file"}


def _status_base(sub, wres):
    return f"/subscriptions/{sub}/providers/{MLS_NS}/locations/{wres['location']}"


def _default(ep) -> str | None:
    return ((ep["properties"].get("defaults") or {}).get("deploymentName")) or None


# --- endpoints -----------------------------------------------------------------------------------


@route("GET", WS + r"/batchEndpoints")
def list_endpoints(ctx, sub, rg, ws):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    return missing or Reply(200, {"value": ctx.app.state.children(wres["id"], "batchEndpoints")})


@route("GET PUT DELETE", EP)
def endpoint(ctx, sub, rg, ws, name):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    state, eid = ctx.app.state, f"{wres['id']}/batchEndpoints/{name}"
    current = state.get(eid)
    if ctx.method == "GET":
        return Reply(200, current) if current else not_found("workspaces/batchEndpoints", name, rg)
    base = _status_base(sub, wres)
    if ctx.method == "DELETE":
        if current is None:
            return Reply(204)
        current["properties"]["provisioningState"] = "Deleting"
        op = state.new_op(ctx.method, ctx.path, lambda: state.delete_tree(eid))
        return Reply(202, None, {**async_headers(ctx, op, base), **location_headers(ctx, op, base)})
    props = dict(ctx.json.get("properties") or {})
    if str(props.get("authMode")).lower() != "aadtoken":
        return error(
            400,
            "BadRequest",
            f"authMode '{props.get('authMode')}' is not supported: batch endpoints use AADToken.",
        )
    wanted = (props.get("defaults") or {}).get("deploymentName") or (
        _default(current) if current else None
    )
    if wanted and state.get(f"{eid}/deployments/{wanted}") is None:
        return error(
            400,
            "BadRequest",
            f"Default deployment '{wanted}' does not exist in batch endpoint '{name}'.",
        )
    base_uri = f"{ctx.app.base}/batch/{sub}/{rg}/{ws}/{name}"
    body = {
        "id": eid,
        "name": name,
        "type": f"{MLS_NS}/workspaces/batchEndpoints",
        "location": wres["location"],
        "identity": {"type": "SystemAssigned", "principalId": "e", "tenantId": "e"},
        "tags": ctx.json.get("tags") or {},
        "systemData": (current or {}).get("systemData") or system_data(),
        "properties": {
            "authMode": "AADToken",
            "description": props.get("description"),
            "properties": {
                **(props.get("properties") or {}),
                "BatchEndpointCreationApiVersion": ctx.q("api-version", ""),
                "azureml.onlineendpointid": eid,
            },
            "defaults": {"deploymentName": wanted} if wanted else None,
            "provisioningState": "Updating" if current else "Creating",
            "scoringUri": f"{base_uri}/jobs",
            "swaggerUri": None,
        },
    }
    state.put(eid, body)

    def done():
        body["properties"]["provisioningState"] = "Succeeded"

    op = state.new_op(ctx.method, ctx.path, done)
    return Reply(200 if current else 201, body, async_headers(ctx, op, base))


# --- deployments ---------------------------------------------------------------------------------


@route("GET", EP + r"/deployments")
def list_deployments(ctx, sub, rg, ws, name):
    eid = f"{ws_id(sub, rg, ws)}/batchEndpoints/{name}"
    if ctx.app.state.get(eid) is None:
        return not_found("workspaces/batchEndpoints", name, rg)
    return Reply(200, {"value": ctx.app.state.children(eid, "deployments")})


@route("GET PUT DELETE", EP + r"/deployments/(?P<dep>[^/]+)")
def deployment(ctx, sub, rg, ws, name, dep):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    state, eid = ctx.app.state, f"{wres['id']}/batchEndpoints/{name}"
    ep, did = state.get(eid), f"{eid}/deployments/{dep}"
    current = state.get(did)
    if ep is None:
        return not_found("workspaces/batchEndpoints", name, rg)
    if ctx.method == "GET":
        return Reply(200, current) if current else not_found("batchEndpoints/deployments", dep, rg)
    base = _status_base(sub, wres)
    if ctx.method == "DELETE":
        if current is None:
            return Reply(204)
        if (_default(ep) or "").lower() == dep.lower():
            return error(
                400,
                "BadRequest",
                f"Deployment '{dep}' is the default deployment of batch endpoint '{name}': make "
                "another deployment the default, or delete the endpoint.",
            )
        current["properties"]["provisioningState"] = "Deleting"
        op = state.new_op(ctx.method, ctx.path, lambda: state.delete_tree(did))
        return Reply(202, None, {**async_headers(ctx, op, base), **location_headers(ctx, op, base)})
    props = dict(ctx.json.get("properties") or {})
    piped = batch_pipelines.is_pipeline(props)
    problem = (
        batch_pipelines.deployment_problem(ctx.app, wres["id"], props)
        if piped
        else _deployment_problem(ctx.app, wres["id"], props)
    )
    if problem:
        return error(400, "BadRequest", problem)
    if piped:  # its calls run steps that log to the workspace's MLflow: start it meanwhile
        ctx.app.mlflow_for(wres["id"]).start_async()
    else:
        props["compute"] = _compute_id(wres["id"], props["compute"])
    body = {
        "id": did,
        "name": dep,
        "type": f"{MLS_NS}/workspaces/batchEndpoints/deployments",
        "location": wres["location"],
        "tags": ctx.json.get("tags") or {},
        "systemData": (current or {}).get("systemData") or system_data(),
        "properties": {
            **({} if piped else DEPLOYMENT_DEFAULTS),
            **{k: v for k, v in props.items() if v is not None},
            "provisioningState": "Updating" if current else "Creating",
        },
    }
    state.put(did, body)

    def done():
        body["properties"]["provisioningState"] = "Succeeded"
        endpoint_now = state.get(eid)
        if endpoint_now and not _default(endpoint_now):  # the first deployment: the default
            endpoint_now["properties"]["defaults"] = {"deploymentName": dep}

    def failed():
        body["properties"]["provisioningState"] = "Failed"

    op = state.new_op(ctx.method, ctx.path, done, failed, ctx.async_failure())
    return Reply(200 if current else 201, body, async_headers(ctx, op, base))


def _compute_id(wid, compute: str) -> str:
    """A deployment's compute as the SDK sends it (NAME, azureml:NAME, or an ARM id whose last
    part may be azureml:NAME) as an ARM id."""
    return f"{wid}/computes/{compute.rsplit('/', 1)[-1].removeprefix('azureml:')}"


def _deployment_problem(app, wid, props) -> str | None:
    config = props.get("deploymentConfiguration") or {}
    if config.get("deploymentConfigurationType") not in (None, "Model"):
        return f"Unknown deployment configuration {config.get('deploymentConfigurationType')}."
    compute = props.get("compute")
    if not compute:
        return "A batch deployment needs a compute cluster (compute)."
    cid = _compute_id(wid, compute)
    found = app.state.get(cid)
    if found is None:
        return f"Compute '{cid.rsplit('/', 1)[-1]}' does not exist in the workspace."
    if found["properties"].get("computeType") != "AmlCompute":
        return (
            f"Compute '{found['name']}' is a {found['properties'].get('computeType')}: batch "
            "deployments run on compute clusters (AmlCompute)."
        )
    model = ((props.get("model") or {}).get("assetId") or "").removeprefix("azureml:")
    if not model:
        return "A model batch deployment needs a model."
    return model_problem(app, model, props)


# --- invoking: the scoring URI -------------------------------------------------------------------


def _token_problem(ctx) -> str | None:
    given = (ctx.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
    with ctx.app.state.lock:
        issued = given in ctx.app.state.tokens
    if not issued:
        return "Unauthorized: the bearer token is missing or was not issued by this tenant."
    claims = json.loads(base64.urlsafe_b64decode(given.split(".")[1] + "=="))
    if claims.get("aud", "").rstrip("/") != AUDIENCE:
        return f"Unauthorized: the token's audience is {claims.get('aud')}, not {AUDIENCE}."
    if claims.get("exp", 0) < time.time():
        return "Unauthorized: the token has expired."
    return None


@route("POST", SCORING)
def invoke(ctx, sub, rg, ws, name):
    app, wid = ctx.app, ws_id(sub, rg, ws)
    wres, eid = app.state.get(wid), f"{wid}/batchEndpoints/{name}"
    ep = app.state.get(eid)
    if wres is None or ep is None:
        return error(404, "NotFound", f"Batch endpoint '{name}' was not found.")
    problem = _token_problem(ctx)
    if problem:
        return error(401, "Unauthorized", problem)
    dep_name = ctx.headers.get("azureml-model-deployment") or _default(ep)
    if not dep_name:
        return error(
            404,
            "NotFound",
            f"Batch endpoint '{name}' has no default deployment: set defaults.deployment_name "
            "or name a deployment (azureml-model-deployment).",
        )
    dep = app.state.get(f"{eid}/deployments/{dep_name}")
    if dep is None:
        return error(
            404, "NotFound", f"Deployment '{dep_name}' was not found in batch endpoint '{name}'."
        )
    if dep["properties"]["provisioningState"] != "Succeeded":
        return error(
            400,
            "BadRequest",
            f"Deployment '{dep_name}' is {dep['properties']['provisioningState']}, not ready.",
        )
    try:
        props = (ctx.json or {}).get("properties") or {}
    except ValueError:
        return error(400, "BadRequest", "The request body is not JSON.")
    job_name = props.get("name") or f"batchjob-{uuid.uuid4()}"
    if app.state.get(f"{wid}/jobs/{job_name}"):
        return error(
            409, "UserError", f"A job with name '{job_name}' already exists in workspace '{ws}'."
        )
    if batch_pipelines.is_pipeline(dep["properties"]):
        runner, problem = batch_pipelines.call(app, wres, ep, dep, job_name, props)
        if problem:
            return error(400, "UserError", problem)
        runner.failure = ctx.async_failure()
        app.state.put(runner.job["id"], runner.job, created=now_iso())
        app.jobs[runner.job["id"].lower()] = runner
        answer = runner.resource()
        runner.start()
        return Reply(200, answer)
    inputs = {
        key: {"jobInputType": INPUT_TYPES[kind], "uri": spec.get("uri")}
        for key, spec in (props.get("inputData") or {}).items()
        if (kind := str(spec.get("jobInputType", "")).lower()) in INPUT_TYPES
    }
    if len(inputs) != 1:
        return error(
            400,
            "BadRequest",
            f"A model deployment's job takes one uri_folder or uri_file input, not {len(inputs)}.",
        )
    runner = BatchJob(app, wres, ep, dep, job_name, inputs, props)
    runner.child.failure = ctx.async_failure()
    app.state.put(runner.job["id"], runner.job, created=now_iso())
    app.jobs[runner.job["id"].lower()] = runner
    app.jobs[runner.child.job["id"].lower()] = runner.child
    answer = runner.resource()  # as submitted: NotStarted
    runner.start()
    return Reply(200, answer)


@route("GET", SCORING + r"/(?P<job>[^/]+)")
def scoring_job(ctx, sub, rg, ws, name, job):
    runner = ctx.app.jobs.get(f"{ws_id(sub, rg, ws)}/jobs/{job}".lower())
    if not isinstance(runner, CALLS) or runner.endpoint.lower() != name.lower():
        return error(404, "NotFound", f"Job '{job}' was not found in batch endpoint '{name}'.")
    return Reply(200, runner.resource())


@route("GET", r"(?:/mferp/managementfrontend)?" + EP + r"(?:/deployments/(?P<dep>[^/]+))?/jobs")
def list_jobs(ctx, sub, rg, ws, name, dep=None):
    """What list_jobs reads (api-version 2020-09-01-dataplanepreview, at the discovery URL's
    /mferp/managementfrontend)."""
    wid = ws_id(sub, rg, ws).lower()
    found = [
        r.resource()
        for r in list(ctx.app.jobs.values())
        if isinstance(r, CALLS)
        and r.ws["id"].lower() == wid
        and r.endpoint.lower() == name.lower()
        and (dep is None or r.deployment.lower() == dep.lower())
    ]
    return Reply(200, {"value": found, "nextLink": None})


# --- the job -------------------------------------------------------------------------------------


class BatchJob(PipelineRunner):
    """The pipeline job an invoke makes: one step, batchscoring (a ScoringStep)."""

    def __init__(self, app, wres, ep, dep, name, inputs, body):
        wid, dprops = wres["id"], dep["properties"]
        self.endpoint, self.deployment = ep["name"], dep["name"]
        self.output_action = dprops.get("outputAction") or "AppendRow"
        self.file_name = body.get("outputFileName") or dprops.get("outputFileName")
        self.input_data = body["inputData"]  # as the invoke sent it
        child = str(uuid.uuid4())
        datastore, prefix = _output_location(body, child)
        self.custom_output = prefix != f"azureml/{child}/{OUTPUT}"
        outputs = {
            OUTPUT: {
                "jobOutputType": "uri_folder",
                "mode": "ReadWriteMount",
                "uri": f"azureml://datastores/{datastore}/paths/{prefix}/",
            }
        }
        experiment = (body.get("properties") or {}).get("experimentName") or ep["name"]
        tags = {
            "azureml.batchrun": "true",
            "azureml.deploymentname": dep["name"],
            "azureml.jobtype": "azureml.pipelinejob",
        }
        compute = dprops["compute"]
        job = {
            "id": f"{wid}/jobs/{name}",
            "name": name,
            "type": f"{MLS_NS}/workspaces/jobs",
            "systemData": system_data(),
            "properties": {
                "jobType": "Pipeline",
                "displayName": name,
                "experimentName": experiment,
                "status": "NotStarted",
                "isArchived": False,
                "computeId": None,
                "inputs": inputs,
                "outputs": outputs,
                "jobs": {},
                "settings": {"default_compute": compute, "default_datastore": None},
                "tags": tags,
                "properties": {
                    "azureml.runsource": "azureml.PipelineRun",
                    "runSource": "BatchDeployment",
                    "runType": "HTTP",
                    "azureml.runLineageType": "batchDeployment",
                    "azureml.pipelineComponent": "pipelinerun",
                    "azureml.endpointname": ep["name"],
                    "azureml.deploymentname": dep["name"],
                    "azureml.defaultComputeName": compute.rsplit("/", 1)[-1],
                    "azureml.defaultDataStoreName": "workspaceblobstore",
                },
                "services": job_services(wres, name),
            },
        }
        super().__init__(app, wres, job)
        step_job = {
            "id": f"{wid}/jobs/{child}",
            "name": child,
            "properties": {
                "jobType": "Command",
                "displayName": STEP,
                "experimentName": experiment,
                "status": "NotStarted",
                "computeId": compute,
                "inputs": inputs,
                "outputs": outputs,
                "tags": {"mlflow.parentRunId": name},
                "properties": {
                    "azureml.pipelinerunid": name,
                    "azureml.runsource": "azureml.StepRun",
                    "StepType": "ParallelRunStep",
                },
            },
        }
        self.child = ScoringStep(app, wres, step_job, self, STEP)
        self.children.append(self.child)
        self.steps[STEP] = self.child

    def resource(self) -> dict:
        """The job as the scoring URI and list_jobs answer it (a BatchJobResource)."""
        wid = self.ws["id"]
        datastore, path = DATASTORE_URI.match(self.props["outputs"][OUTPUT]["uri"]).groups()
        scored = {
            OUTPUT: {
                "jobOutputType": "UriFile",
                "mode": "ReadWriteMount",
                "uri": f"{wid}/datastores/{datastore}/paths/{path.rstrip('/')}/{self.file_name}",
            }
        }
        return batch_pipelines.job_resource(
            self,
            self.input_data,
            scored,
            output={
                "datastoreId": f"{wid}/datastores/workspaceartifactstore",
                "path": f"ExperimentRun/dcid.{self.name}",
            },
            outputFileName=self.file_name,
        )

    def run(self):
        child = self.child
        self.times["start"] = now_iso()
        self.set_status("Running")
        self._log(f"Submitting 1 runs, first five are: {child.name} ({STEP})")
        child.run()
        status = child.props["status"]
        self._log(f"Completing processing run id {child.name} ({STEP}): {status}.")
        self.times["end"] = now_iso()
        if status == "Completed":
            self.set_status("Completed")
        elif status == "Canceled" or self.cancelled.is_set():
            self.set_status("Canceled")
        else:
            self.error = {"code": "UserError", "message": FAILED_MESSAGE}
            self.set_status("Failed")


CALLS = (BatchJob, batch_pipelines.PipelineCall)  # the jobs an invoke makes


class ScoringStep(StepRunner):
    """The batchscoring step: reads the input's files and writes the stand-in predictions."""

    failure: dict | None = None  # an async_failure rule of the invoke: the step fails with it

    def run(self):
        slot = None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.set_status("Queued")
            if self.cancelled.wait(self.queue_delay):
                return self._finish("Canceled", "KILLED")
            if self.failure:
                return self._fail(self.failure)
            slot = self.app.compute_slot(self.props["computeId"])
            while slot and not slot.acquire(timeout=0.5):
                if self.cancelled.is_set():
                    slot = None
                    return self._finish("Canceled", "KILLED")
            self.app.node_count(self.props["computeId"], +1)
            self.times["start"] = now_iso()
            self.set_status("Running")
            self._score()
        except Exception as e:  # noqa: BLE001 - any emulator-side failure: a SystemError of the job
            self.error = {"code": "SystemError", "message": f"{type(e).__name__}: {e}"}
            self._finish("Failed", "FAILED")
        finally:
            if slot:
                self.app.node_count(self.props["computeId"], -1)
                slot.release()

    def _score(self):
        parent: BatchJob = self.pipeline
        ((key, spec),) = self.props["inputs"].items()
        self._say(
            f"Scoring {spec['uri']} with deployment {parent.deployment} of batch endpoint "
            f"{parent.endpoint}"
        )
        root = Path(self._resolve_bindings()[("inputs", key)])
        files = sorted(p for p in (root.rglob("*") if root.is_dir() else [root]) if p.is_file())
        if not files:
            return self._fail(f"No input files found in {spec['uri']}.")
        lines = []
        for path in files:
            if self.cancelled.is_set():
                return self._finish("Canceled", "KILLED")
            count = _rows(path)
            lines += [f"{row},0,{path.name}" for row in range(count)]
            self._say(
                f"{path.relative_to(root.parent if root.is_file() else root)}: {count} rows scored"
            )
        if parent.output_action.lower() == "appendrow":
            datastore, prefix = DATASTORE_URI.match(self.props["outputs"][OUTPUT]["uri"]).groups()
            container = _container(self.app, self.ws["id"], datastore)
            blob = f"{prefix.rstrip('/')}/{parent.file_name}"
            blobs = self.app.azurite.service().get_blob_client(container, blob)
            if parent.custom_output and blobs.exists():
                return self._fail(
                    f"The output file {blob} already exists: a batch job writes to a new output "
                    "location."
                )
            blobs.upload_blob("".join(f"{line}\n" for line in lines).encode(), overwrite=True)
            self._say(f"Wrote {len(lines)} rows to {parent.file_name}")
        else:
            self._say(f"{len(lines)} rows scored (summary_only: no output file)")
        self._finish("Completed", "FINISHED")

    def _fail(self, failure: dict | str):
        """Ends the step Failed with this error (a message: a UserError), said in its log."""
        if isinstance(failure, str):
            failure = {"code": "UserError", "message": failure}
        self.error = failure
        self._say(f"Error: {failure.get('message')}")
        self._finish("Failed", "FAILED")

    def _say(self, line: str):
        log = self.dir / LOG_NAME
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            f.write(line + "\n")
        self._upload_log()

    def _finish(self, status, mlflow_status):
        """As a command job ends, without an MLflow run (the step runs no user code)."""
        self.times["end"] = now_iso()
        self.set_status(status)


def _output_location(body: dict, child: str) -> tuple[str, str]:
    """(datastore, path) of the job's output: the `score` output or the output dataset the
    invoke names, else azureml/CHILD/score on the workspace's blob store."""
    named = ((body.get("outputData") or {}).get(OUTPUT) or {}).get("uri") or ""
    m = DATASTORE_URI.match(named)
    if m:
        return m.group("ds"), m.group("path").strip("/")
    dataset = body.get("outputDataset") or {}
    if dataset.get("path"):
        store = (dataset.get("datastoreId") or "workspaceblobstore").rstrip("/").rsplit("/", 1)[-1]
        return store, dataset["path"].strip("/")
    return "workspaceblobstore", f"azureml/{child}/{OUTPUT}"


def _container(app, wid, datastore) -> str:
    info = app.state.info(wid)
    if datastore == "workspaceartifactstore":
        return info["artifact_container"]
    if datastore != "workspaceblobstore":
        raise ValueError(f"datastore {datastore} is not one the emulator has")
    return info["blob_container"]


def _rows(path: Path) -> int:
    """The data rows of a file, as MLflow's batch scoring reads it."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pandas as pd

        return len(pd.read_parquet(path))
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if suffix in (".json", ".jsonl"):
        return len(lines)
    return max(len(lines) - 1, 0)  # CSV, TSV: the first line is the header
