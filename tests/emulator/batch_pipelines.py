"""Pipeline component batch deployments (batch.py's routes call these): the checks the service
makes of one, and what an invoke of one starts: the registered pipeline component's steps run
for real as a pipeline job (pipelines.PipelineRunner) with the invoke's inputs bound."""

import re

import pipelines
from arm import MLS_NS, system_data
from ml import job_services
from state import now_iso

TYPES = {  # an invoke's jobInputType (the SDK's REST names) -> the job's
    "urifolder": "uri_folder",
    "urifile": "uri_file",
    "mltable": "mltable",
    "mlflowmodel": "mlflow_model",
    "custommodel": "custom_model",
    "tritonmodel": "triton_model",
}


def is_pipeline(props: dict) -> bool:
    config = props.get("deploymentConfiguration") or {}
    return config.get("deploymentConfigurationType") == "PipelineComponent"


def compute_id(wid: str, compute: str) -> str:
    """A compute as a deployment's settings name it (NAME, azureml:NAME or an ARM id)."""
    return f"{wid}/computes/{compute.rsplit('/', 1)[-1].removeprefix('azureml:')}"


def deployment_problem(app, wid: str, props: dict) -> str | None:
    """What the service refuses in a pipeline component deployment: a component version that is
    not there or not a pipeline component, a default_compute that is not a compute of the
    workspace."""
    config = props["deploymentConfiguration"]
    asset = ((config.get("componentId") or {}).get("assetId") or "").removeprefix("azureml:")
    if not asset:
        return "A pipeline component batch deployment needs a component (componentId)."
    found = app.state.get(asset)
    if found is None:
        return f"Component '{asset}' was not found."
    kind = found["properties"]["componentSpec"].get("type")
    if kind != "pipeline":
        return (
            f"Component '{asset.split('/components/')[-1]}' is a {kind} component: a pipeline "
            "component batch deployment runs a pipeline component."
        )
    compute = (config.get("settings") or {}).get("default_compute")
    if not compute:
        return "A pipeline component batch deployment needs settings.default_compute."
    if app.state.get(compute_id(wid, compute)) is None:
        named = compute_id(wid, compute).rsplit("/", 1)[-1]
        return f"Compute '{named}' does not exist in the workspace."
    return None


def call(app, wres: dict, ep: dict, dep: dict, name: str, body: dict):
    """The pipeline job an invoke of pipeline deployment `dep` makes, named `name`, not started
    (None and what is wrong with the invoke's inputs, when something is)."""
    wid, config = wres["id"], dep["properties"]["deploymentConfiguration"]
    asset = config["componentId"]["assetId"].removeprefix("azureml:")
    component = app.state.get(asset)
    if component is None:
        return None, f"Component '{asset}' of deployment '{dep['name']}' was not found."
    spec = component["properties"]["componentSpec"]
    inputs, problem = _inputs(spec, body.get("inputData") or {})
    if problem:
        return None, problem
    given = body.get("outputData") or {}
    outputs = {
        out: {
            "jobOutputType": (decl or {}).get("type") or "uri_folder",
            "uri": (given.get(out) or {}).get("uri")
            or f"azureml://datastores/workspaceblobstore/paths/azureml/{name}/{out}/",
        }
        for out, decl in (spec.get("outputs") or {}).items()
    }
    settings = {
        **(config.get("settings") or {}),
        "default_compute": compute_id(wid, config["settings"]["default_compute"]),
    }
    experiment = (body.get("properties") or {}).get("experimentName") or ep["name"]
    props = {
        "jobType": "Pipeline",
        "displayName": name,
        "experimentName": experiment,
        "status": "NotStarted",
        "isArchived": False,
        "computeId": None,
        "inputs": inputs,
        "outputs": outputs,
        "jobs": spec.get("jobs") or {},
        "settings": settings,
        "tags": {
            "azureml.batchrun": "true",
            "azureml.deploymentname": dep["name"],
            "azureml.jobtype": "azureml.pipelinejob",
        },
        "properties": {
            "azureml.runsource": "azureml.PipelineRun",
            "runSource": "BatchDeployment",
            "runType": "HTTP",
            "azureml.runLineageType": "batchDeployment",
            "azureml.pipelineComponent": "pipelinerun",
            "azureml.endpointname": ep["name"],
            "azureml.deploymentname": dep["name"],
            "azureml.defaultComputeName": settings["default_compute"].rsplit("/", 1)[-1],
            "azureml.pipelineComponentId": asset,
        },
        "services": job_services(wres, name),
    }
    problem = pipelines.check(app, wid, props)
    if problem:
        return None, problem
    job = {
        "id": f"{wid}/jobs/{name}",
        "name": name,
        "type": f"{MLS_NS}/workspaces/jobs",
        "systemData": system_data(),
        "properties": props,
    }
    return PipelineCall(app, wres, job, ep["name"], dep["name"]), None


def _inputs(spec: dict, given: dict) -> tuple[dict, str | None]:
    """The invoke's inputs as the pipeline job's (the component's defaults for the rest), or
    what is wrong with them: an input the component does not have, a required one missing."""
    declared = spec.get("inputs") or {}
    out = {}
    for key, value in given.items():
        if key not in declared:
            known = ", ".join(sorted(declared)) or "none"
            return {}, f"The pipeline component has no input '{key}' (inputs: {known})."
        kind = re.sub(r"[^a-z]", "", str((value or {}).get("jobInputType", "")).lower())
        if kind == "literal":
            out[key] = {"jobInputType": "literal", "value": _text(value.get("value"))}
        elif kind in TYPES:
            out[key] = {"jobInputType": TYPES[kind], "uri": value.get("uri")}
        else:
            return {}, f"Input '{key}': jobInputType '{value.get('jobInputType')}' is not known."
    for key, decl in declared.items():
        decl = decl or {}
        if key in out:
            continue
        if decl.get("default") is not None:
            out[key] = {"jobInputType": "literal", "value": _text(decl["default"])}
        elif not decl.get("optional"):
            return (
                {},
                f"Input '{key}' of the pipeline component is required: the invoke gives none.",
            )
    return out, None


def _text(value) -> str:
    """A literal as a command line has it (true/false as YAML writes them)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


class PipelineCall(pipelines.PipelineRunner):
    """The pipeline job of a pipeline deployment's invoke: its component's steps."""

    def __init__(self, app, wres, job, endpoint, deployment):
        super().__init__(app, wres, job)
        self.endpoint, self.deployment = endpoint, deployment
        self.times["created"] = now_iso()

    def resource(self) -> dict:
        """The job as the scoring URI and list_jobs answer it (a BatchJobResource)."""
        return job_resource(self, self.props["inputs"], self.props["outputs"])


def job_resource(runner, input_data: dict, output_data: dict, **more) -> dict:
    """A batch endpoint's job as the scoring URI and list_jobs answer it (a BatchJobResource):
    `runner` the job's runner (its name, endpoint, deployment, workspace, properties), `more` what
    a kind of job adds to its properties."""
    props, wid = runner.props, runner.ws["id"]
    eid = f"{wid}/batchEndpoints/{runner.endpoint}"
    return {
        "id": f"{eid}/deployments/{runner.deployment}/jobs/{runner.name}",
        "name": runner.name,
        "type": f"{MLS_NS}/workspaces/batchEndpoints/deployments/jobs",
        "systemData": runner.job["systemData"],
        "properties": {
            "name": runner.name,
            "status": props["status"],
            "provisioningState": "Succeeded",
            "compute": {"isLocal": False, "target": props["settings"]["default_compute"]},
            "inputData": input_data,
            "outputData": output_data,
            **more,
            "interactionEndpoints": {
                key: {"endpoint": s["endpoint"], "jobEndpointType": key}
                for key, s in props["services"].items()
            },
            "properties": props["properties"],
            "tags": props["tags"],
        },
    }
