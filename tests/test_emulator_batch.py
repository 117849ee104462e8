"""Batch endpoints on the loopback Azure emulator, through the real azure-ai-ml SDK: an endpoint
with two model deployments of an MLflow model folder on an AmlCompute, the service's checks,
invoking (a local folder the SDK uploads, a data asset, a datastore file; by default or by the
azureml-model-deployment header) into a pipeline job with one batchscoring step whose `score`
output holds the emulator's stand-in predictions, summary_only, a named output location, the
failure fault, cancel, and deletes. Each script runs in its own interpreter (see
azure_fixtures.run_sdk)."""

import base64
import json
import textwrap
import urllib.error
import urllib.request

import pytest
from azure_fixtures import run_sdk

pytestmark = pytest.mark.azure

RG, WS, EP = "rg-batch", "ws-batch", "scorer"
WID = (
    "/subscriptions/00000000-0000-0000-0000-00000000000e/resourceGroups/rg-batch/providers/"
    "Microsoft.MachineLearningServices/workspaces/ws-batch"
)
FILES = {  # the invoke's local folder: 2, 3 and 1 data rows (c.csv ends with a blank line)
    "a.csv": "x,y\n1,2\n3,4\n",
    "b.csv": "x,y\n5,6\n7,8\n9,10\n",
    "nested/c.csv": "x,y\n11,12\n\n",
}
ROWS = "0,0,a.csv\n1,0,a.csv\n0,0,b.csv\n1,0,b.csv\n2,0,b.csv\n0,0,c.csv\n"
ASSET_ROWS = "0,0,d.csv\n1,0,d.csv\n2,0,d.csv\n3,0,d.csv\n"

PRELUDE = textwrap.dedent(f"""
    import json, os, pathlib, time, urllib.request
    from azure.identity import DefaultAzureCredential
    from azure.ai.ml import MLClient, Input, Output
    from azure.ai.ml.constants import BatchDeploymentOutputAction
    from azure.ai.ml.entities import (
        AmlCompute, BatchEndpoint, Data, Model, ModelBatchDeployment,
        ModelBatchDeploymentSettings)
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

    cred = DefaultAzureCredential()
    ml = MLClient(cred, os.environ["AZURE_SUBSCRIPTION_ID"], "{RG}", "{WS}",
                  enable_telemetry=False)
    TERMINAL = ("Completed", "Failed", "Canceled")

    def done(**result):  # on a line of its own (after the pollers' progress dots)
        print("\\n" + json.dumps(result, default=str))

    def wait(name, timeout=120):
        deadline = time.monotonic() + timeout
        while ml.jobs.get(name).status not in TERMINAL:
            if time.monotonic() > deadline:
                raise TimeoutError(name)
            time.sleep(0.5)
        return ml.jobs.get(name).status

    def fetch(url):
        with urllib.request.urlopen(url) as resp:
            return resp.read().decode()

    def refused(call):
        try:
            call()
        except HttpResponseError as e:
            return [e.status_code, e.message]
        return None

    def scored(name):
        # a batch job as mlrun reads it: the job, its one step, the step's log, the output
        job = ml.jobs.get(name)
        steps = list(ml.jobs.list(parent_job_name=name))
        details = [ml.jobs._runs_operations.get_run_details(s.name) for s in steps]
        folder = pathlib.Path("downloads", name)
        ml.jobs.download(name, output_name="score", download_path=folder)
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        parent = ml.jobs._runs_operations.get_run_details(name)
        return {{
            "status": job.status, "type": job.type, "tags": job.tags,
            "experiment": job.experiment_name,
            "output": job.outputs["score"].path if "score" in job.outputs else None,
            "steps": [[s.display_name, s.status] for s in steps],
            "step_names": [s.name for s in steps],
            "logs": [fetch(d.log_files["user_logs/std_log.txt"]) if d.log_files else None
                     for d in details],
            "step_errors": [d.error.error.message if d.error else None for d in details],
            "error": parent.error.error.message if parent.error else None,
            "execution": fetch(parent.log_files["logs/azureml/executionlogs.txt"])
                         if parent.log_files else None,
            "files": {{str(p.relative_to(folder)): p.read_text() for p in files}},
        }}
""")


@pytest.fixture(scope="module")
def lab(azure_emulator, tmp_path_factory):
    """A workspace with an AmlCompute, the MLflow model `tiny`, the data asset batch-in:1 (d.csv,
    4 rows) and endpoint `scorer` with deployments blue (append_row) then green (summary_only);
    a folder with the invoke's CSV files."""
    root = tmp_path_factory.mktemp("batch")
    (root / "model").mkdir()
    (root / "model" / "MLmodel").write_text(
        "artifact_path: model\nflavors:\n  python_function: {loader_module: mlflow.sklearn}\n"
    )
    for name, text in FILES.items():
        (root / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "in" / name).write_text(text)
    (root / "asset").mkdir()
    (root / "asset" / "d.csv").write_text("x,y\n1,1\n2,2\n3,3\n4,4\n")
    result = run_sdk(
        azure_emulator,
        PRELUDE
        + textwrap.dedent(f"""
        from azure.ai.ml.entities import Workspace
        from azure.mgmt.resource.resources import ResourceManagementClient
        ARM = os.environ["ARM_CLOUD_METADATA_URL"].split("/metadata/")[0] + "/"
        ResourceManagementClient(cred, os.environ["AZURE_SUBSCRIPTION_ID"], base_url=ARM,
            credential_scopes=[ARM + ".default"]).resource_groups.create_or_update(
            "{RG}", {{"location": "eastus"}})
        MLClient(cred, os.environ["AZURE_SUBSCRIPTION_ID"], "{RG}",
            enable_telemetry=False).workspaces.begin_create(
            Workspace(name="{WS}", location="eastus")).result()
        ml.compute.begin_create_or_update(
            AmlCompute(name="cpu", size="Standard_DS11_v2", max_instances=2)).result()
        tiny = ml.models.create_or_update(Model(name="tiny", path="model", type="mlflow_model"))
        ml.data.create_or_update(Data(name="batch-in", version="1", type="uri_folder",
                                      path="asset"))
        made = ml.batch_endpoints.begin_create_or_update(
            BatchEndpoint(name="{EP}", description="scores CSV files")).result()
        blue = ml.batch_deployments.begin_create_or_update(ModelBatchDeployment(
            name="blue", endpoint_name="{EP}", model=tiny, compute="cpu",
            settings=ModelBatchDeploymentSettings(
                mini_batch_size=2, max_concurrency_per_instance=2))).result()
        after_blue = ml.batch_endpoints.get("{EP}")
        green = ml.batch_deployments.begin_create_or_update(ModelBatchDeployment(
            name="green", endpoint_name="{EP}", model="azureml:tiny:1", compute="azureml:cpu",
            settings=ModelBatchDeploymentSettings(
                mini_batch_size=5,
                output_action=BatchDeploymentOutputAction.SUMMARY_ONLY))).result()
        endpoint = ml.batch_endpoints.get("{EP}")
        done(made=[made.provisioning_state, made.defaults, made.auth_mode],
             scoring_uri=endpoint.scoring_uri,
             defaults=[after_blue.defaults.deployment_name, endpoint.defaults.deployment_name],
             blue=[blue.provisioning_state, blue.compute, blue.model,
                   blue.mini_batch_size, blue.output_file_name, blue.output_action,
                   blue.retry_settings.max_retries],
             green=[green.provisioning_state, green.output_action],
             endpoints=[e.name for e in ml.batch_endpoints.list()],
             deployments=sorted(d.name for d in ml.batch_deployments.list("{EP}")))
        """),
        cwd=root,
    )
    return {"root": root, "setup": result}


def test_endpoint_and_deployments_as_the_service_fills_them_in(lab, azure_emulator):
    setup = lab["setup"]
    assert setup["made"] == ["Succeeded", None, "aad_token"]  # no default before a deployment
    port = azure_emulator.url.rsplit(":", 1)[1]
    assert setup["scoring_uri"] == (
        f"https://127.0.0.1:{port}/batch/00000000-0000-0000-0000-00000000000e/{RG}/{WS}/{EP}/jobs"
    )
    assert setup["defaults"] == ["blue", "blue"]  # the first deployment became the default
    assert setup["blue"] == [
        "Succeeded",
        f"{WID}/computes/cpu",
        f"{WID}/models/tiny/versions/1",
        2,
        "predictions.csv",  # the service's defaults
        "append_row",
        3,
    ]
    assert setup["green"] == ["Succeeded", "summary_only"]
    assert setup["endpoints"] == [EP]
    assert setup["deployments"] == ["blue", "green"]
    stored = azure_emulator.call("GET", "/_emulator/state")["resources"]
    green = stored[f"{WID}/batchEndpoints/{EP}/deployments/green".lower()]["properties"]
    assert green["outputAction"] == "SummaryOnly" and green["miniBatchSize"] == 5
    assert green["retrySettings"] == {"maxRetries": 3, "timeout": "PT30S"}
    assert "codeConfiguration" not in green and "environmentId" not in green  # MLflow: no-code


def test_the_service_refuses_what_azure_refuses(lab, azure_emulator):
    result = run_sdk(
        azure_emulator,
        PRELUDE
        + textwrap.dedent(f"""
        plain = ml.models.create_or_update(Model(name="plain", path="model",
                                                 type="custom_model"))
        def deploy(**kwargs):
            return lambda: ml.batch_deployments.begin_create_or_update(ModelBatchDeployment(
                name="red", endpoint_name="{EP}", **kwargs)).result()
        out = {{
            "no_compute": refused(deploy(model="azureml:tiny:1", compute="nope")),
            "not_mlflow": refused(deploy(model=plain, compute="cpu")),
        }}
        endpoint = ml.batch_endpoints.get("{EP}")
        endpoint.defaults.deployment_name = "red"
        out["bad_default"] = refused(
            lambda: ml.batch_endpoints.begin_create_or_update(endpoint).result())
        out["key_auth"] = refused(lambda: ml.batch_endpoints.begin_create_or_update(
            BatchEndpoint(name="keyed", auth_mode="key")).result())
        ml.batch_endpoints.begin_create_or_update(BatchEndpoint(name="empty")).result()
        try:
            ml.batch_endpoints.invoke(endpoint_name="empty", input=Input(path="in"))
            out["no_default"] = None
        except ResourceNotFoundError as e:
            out["no_default"] = e.message
        out["delete_default"] = refused(
            lambda: ml.batch_deployments.begin_delete(name="blue", endpoint_name="{EP}"))
        ml.batch_endpoints.begin_delete("empty").result()
        out["deployments"] = sorted(d.name for d in ml.batch_deployments.list("{EP}"))
        done(**out)
        """),
        cwd=lab["root"],
    )
    assert result["no_compute"][0] == 400
    assert "Compute 'nope' does not exist in the workspace." in result["no_compute"][1]
    assert result["not_mlflow"][0] == 400
    assert (
        "A scoring script (code_configuration) and an environment are required for a model that "
        "is not an MLflow model." in result["not_mlflow"][1]
    )
    status, message = result["bad_default"]
    assert status == 400
    assert "Default deployment 'red' does not exist in batch endpoint 'scorer'." in message
    assert result["key_auth"][0] == 400 and "batch endpoints use AADToken" in result["key_auth"][1]
    assert "Batch endpoint 'empty' has no default deployment" in result["no_default"]
    status, message = result["delete_default"]
    assert status == 400
    assert "Deployment 'blue' is the default deployment of batch endpoint 'scorer'" in message
    assert result["deployments"] == ["blue", "green"]  # nothing was made or deleted


def test_the_scoring_uri_takes_only_tokens_the_emulator_issued_for_azure_ml(lab, azure_emulator):
    uri = lab["setup"]["scoring_uri"]

    def post(token):
        req = urllib.request.Request(
            uri,
            data=b'{"properties": {}}',
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(req, context=azure_emulator._tls) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def issued(resource):
        req = urllib.request.Request(
            azure_emulator.exported["IDENTITY_ENDPOINT"] + f"?resource={resource}",
            headers={"X-IDENTITY-HEADER": "x"},
        )
        with urllib.request.urlopen(req, context=azure_emulator._tls) as resp:
            return json.loads(resp.read())["access_token"]

    good = issued("https://ml.azure.com")
    head, claims, sig = good.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"aud": "https://ml.azure.com"}).encode())
    status, body = post(f"{head}.{forged.decode().rstrip('=')}.{sig}")
    assert status == 401 and "was not issued" in body["error"]["message"]
    status, body = post(issued("https://management.azure.com/"))
    assert status == 401
    assert body["error"]["message"] == (
        "Unauthorized: the token's audience is https://management.azure.com/, not "
        "https://ml.azure.com."
    )
    status, body = post(good)  # a good token, but no input: the job is refused, not made
    assert status == 400
    assert "takes one uri_folder or uri_file input, not 0" in body["error"]["message"]


def test_invoke_scores_a_local_folder_into_the_score_output(lab, azure_emulator):
    mark = azure_emulator.mark()
    result = run_sdk(
        azure_emulator,
        PRELUDE
        + textwrap.dedent(f"""
        job = ml.batch_endpoints.invoke(endpoint_name="{EP}", job_name="batch-one",
                                        input=Input(type="uri_folder", path="in"))
        invoked = [job.name, job.status, job.type, job.id]
        ml.jobs.stream(job.name)
        out = scored(job.name)
        step = out["step_names"][0]
        pathlib.Path("step").mkdir(exist_ok=True)
        ml.jobs.download(step, output_name="score", download_path="step")
        out["step_files"] = sorted(str(p) for p in pathlib.Path("step").rglob("*")
                                   if p.is_file())
        out["listed"] = [[j.name, j.status] for j in ml.batch_endpoints.list_jobs("{EP}")]
        out["by_deployment"] = [j.name for j in ml.batch_deployments.list_jobs(
            "{EP}", name="green")]
        out["in_workspace"] = "batch-one" in [j.name for j in ml.jobs.list()]
        done(invoked=invoked, **out)
        """),
        cwd=lab["root"],
    )
    assert result["invoked"] == [
        "batch-one",
        "NotStarted",
        "Microsoft.MachineLearningServices/workspaces/batchEndpoints/deployments/jobs",
        f"{WID}/batchEndpoints/{EP}/deployments/blue/jobs/batch-one",
    ]
    assert result["status"] == "Completed" and result["type"] == "pipeline"
    assert result["tags"] == {
        "azureml.batchrun": "true",
        "azureml.deploymentname": "blue",
        "azureml.jobtype": "azureml.pipelinejob",
    }
    assert result["experiment"] == EP
    assert result["steps"] == [["batchscoring", "Completed"]]
    step = result["step_names"][0]
    assert result["output"] == (
        f"azureml://datastores/workspaceblobstore/paths/azureml/{step}/score/"
    )
    assert result["files"] == {"named-outputs/score/predictions.csv": ROWS}
    assert result["step_files"] == ["step/named-outputs/score/predictions.csv"]
    log = result["logs"][0].splitlines()
    assert log[0].startswith(
        "Scoring azureml://datastores/workspaceblobstore/paths/LocalUpload/"
    ) and log[0].endswith("/in/ with deployment blue of batch endpoint scorer")
    assert log[1:] == [
        "a.csv: 2 rows scored",
        "b.csv: 3 rows scored",
        "nested/c.csv: 1 rows scored",
        "Wrote 6 rows to predictions.csv",
    ]
    execution = result["execution"]
    assert f"first five are: {step} (batchscoring)" in execution
    assert f"Completing processing run id {step} (batchscoring): Completed." in execution
    assert result["error"] is None and result["step_errors"] == [None]
    assert ["batch-one", "Completed"] in result["listed"]
    assert result["by_deployment"] == [] and result["in_workspace"] is True
    calls = [(r["method"], r["path"]) for r in azure_emulator.requests(mark)]
    invoke = ("POST", f"/batch/00000000-0000-0000-0000-00000000000e/{RG}/{WS}/{EP}/jobs")
    assert calls.count(invoke) == 1
    assert any(m == "GET" and p.endswith(f"/batchEndpoints/{EP}") for m, p in calls)


def test_invoke_by_header_summary_only_asset_and_datastore_inputs(lab, azure_emulator):
    result = run_sdk(
        azure_emulator,
        PRELUDE
        + textwrap.dedent(f"""
        # invokes without deployment_name first: the SDK keeps the azureml-model-deployment
        # header of an invoke that names one in a class-level dict, for the process's later ones
        asset = ml.data.get("batch-in", "1")
        endpoint = ml.batch_endpoints.get("{EP}")
        endpoint.defaults.deployment_name = "green"
        ml.batch_endpoints.begin_create_or_update(endpoint).result()
        names = {{"new_default": ml.batch_endpoints.invoke(
            endpoint_name="{EP}", input=Input(path="azureml:batch-in:1")).name}}
        endpoint.defaults.deployment_name = "blue"
        ml.batch_endpoints.begin_create_or_update(endpoint).result()
        out = {{"where": "azureml://datastores/workspaceblobstore/paths/batch-out/"}}
        names["named"] = ml.batch_endpoints.invoke(
            endpoint_name="{EP}", input=Input(path="azureml:batch-in:1"),
            outputs={{"score": Output(type="uri_folder", path=out["where"])}}).name
        wait(names["named"])
        names["again"] = ml.batch_endpoints.invoke(
            endpoint_name="{EP}", input=Input(path="azureml:batch-in:1"),
            outputs={{"score": Output(type="uri_folder", path=out["where"])}}).name
        names["file"] = ml.batch_endpoints.invoke(
            endpoint_name="{EP}", deployment_name="blue",
            input=Input(type="uri_file", path=asset.path.rstrip("/") + "/d.csv")).name
        names["green"] = ml.batch_endpoints.invoke(
            endpoint_name="{EP}", deployment_name="green",
            input=Input(type="uri_folder", path="azureml:batch-in:1")).name
        for key, name in names.items():
            wait(name)
            out[key] = scored(name)
        done(**out)
        """),
        cwd=lab["root"],
    )
    green = result["green"]
    assert green["status"] == "Completed" and green["tags"]["azureml.deploymentname"] == "green"
    assert green["files"] == {}  # summary_only: no output file
    assert green["logs"][0].splitlines()[1:] == [
        "d.csv: 4 rows scored",
        "4 rows scored (summary_only: no output file)",
    ]
    assert result["new_default"]["tags"]["azureml.deploymentname"] == "green"  # the default
    assert result["new_default"]["files"] == {}
    by_file = result["file"]
    assert by_file["tags"]["azureml.deploymentname"] == "blue"
    assert by_file["files"] == {"named-outputs/score/predictions.csv": ASSET_ROWS}
    assert by_file["logs"][0].splitlines()[1] == "d.csv: 4 rows scored"
    named = result["named"]
    assert named["output"] == result["where"]
    assert named["tags"]["azureml.deploymentname"] == "blue"
    assert named["files"] == {"named-outputs/score/predictions.csv": ASSET_ROWS}
    again = result["again"]  # the same output location again: the file is there already
    assert again["status"] == "Failed"
    assert again["files"] == named["files"]  # the location holds the first job's file still
    assert again["step_errors"] == [
        "The output file batch-out/predictions.csv already exists: a batch job writes to a new "
        "output location."
    ]
    assert again["error"].startswith("Pipeline has some failed steps.")


def test_the_failure_fault_and_cancel(lab, azure_emulator):
    scoring = f"/batch/.*/{WS}/{EP}/jobs$"
    azure_emulator.fault(
        method="POST",
        path_regex=scoring,
        async_failure={"code": "UserError", "message": "Mini batch 1 failed: model crashed."},
        count=1,
    )
    azure_emulator.delay(
        path_regex="/jobs/batch-held/steps/batchscoring$", seconds=120, tag="batch-held"
    )
    try:
        result = run_sdk(
            azure_emulator,
            PRELUDE
            + textwrap.dedent(f"""
            failed = ml.batch_endpoints.invoke(endpoint_name="{EP}", job_name="batch-failed",
                                               input=Input(path="azureml:batch-in:1"))
            wait(failed.name)
            held = ml.batch_endpoints.invoke(endpoint_name="{EP}", job_name="batch-held",
                                             input=Input(path="azureml:batch-in:1"))
            time.sleep(1)
            before = [ml.jobs.get(held.name).status,
                      [s.status for s in ml.jobs.list(parent_job_name=held.name)]]
            ml.jobs.begin_cancel(held.name).result()
            wait(held.name)
            done(failed=scored(failed.name), held=scored(held.name), before=before)
            """),
            cwd=lab["root"],
        )
    finally:
        azure_emulator.call("DELETE", "/_emulator/delay?tag=batch-held")
    failed = result["failed"]
    assert failed["status"] == "Failed" and failed["steps"] == [["batchscoring", "Failed"]]
    assert failed["step_errors"] == ["Mini batch 1 failed: model crashed."]
    assert failed["error"] == (
        "Pipeline has some failed steps. See child run or execution logs for more details."
    )
    assert failed["logs"] == ["Error: Mini batch 1 failed: model crashed.\n"]
    assert failed["files"] == {}
    assert result["before"] == ["Running", ["Queued"]]
    held = result["held"]
    assert held["status"] == "Canceled" and held["steps"] == [["batchscoring", "Canceled"]]
    assert held["files"] == {}


def test_delete_a_deployment_then_the_endpoint_keeps_its_jobs(lab, azure_emulator):
    result = run_sdk(
        azure_emulator,
        PRELUDE
        + textwrap.dedent(f"""
        ml.batch_deployments.begin_delete(name="green", endpoint_name="{EP}").result()
        left = sorted(d.name for d in ml.batch_deployments.list("{EP}"))
        ml.batch_endpoints.begin_delete("{EP}").result()
        try:
            ml.batch_endpoints.get("{EP}")
            gone = False
        except ResourceNotFoundError:
            gone = True
        done(left=left, gone=gone, endpoints=[e.name for e in ml.batch_endpoints.list()],
             job=ml.jobs.get("batch-one").status)
        """),
        cwd=lab["root"],
    )
    assert result["left"] == ["blue"]
    assert result["gone"] is True and result["endpoints"] == []
    assert result["job"] == "Completed"  # an endpoint's jobs outlive it
    stored = azure_emulator.call("GET", "/_emulator/state")["resources"]
    assert not any(f"/batchendpoints/{EP}" in k for k in stored)
