"""The loopback Azure emulator, proven with the real SDKs (azure-ai-ml, azure-identity,
azure-mgmt-resource, azureml-mlflow), each run in its own interpreter (see azure_fixtures)."""

import base64
import json
import textwrap
import time
import urllib.request

import pytest
from azure_fixtures import run_sdk

pytestmark = pytest.mark.azure

PRELUDE = textwrap.dedent("""
    import json, os, sys, time
    from azure.identity import DefaultAzureCredential
    from azure.ai.ml import MLClient

    SUB = os.environ["AZURE_SUBSCRIPTION_ID"]
    ARM = os.environ["ARM_CLOUD_METADATA_URL"].split("/metadata/")[0] + "/"
    cred = DefaultAzureCredential()

    def ml(rg, ws=None):
        return MLClient(cred, SUB, rg, ws, enable_telemetry=False)

    def rm():
        from azure.mgmt.resource.resources import ResourceManagementClient
        return ResourceManagementClient(
            cred, SUB, base_url=ARM, credential_scopes=[ARM + ".default"])

    def done(**result):
        print(json.dumps(result, default=str))
""")

TRAIN = textwrap.dedent("""
    import argparse
    import mlflow

    parser = argparse.ArgumentParser()
    parser.add_argument("--training_data")
    parser.add_argument("--reg_rate", type=float, default=0.01)
    args = parser.parse_args()
    rows = sum(1 for _ in open(args.training_data)) - 1
    print(f"Training on {rows} rows")
    with mlflow.start_run():
        mlflow.log_param("Regularization rate", args.reg_rate)
        mlflow.log_metric("Accuracy", 0.774)
        mlflow.log_metric("AUC", 0.848)
        mlflow.log_metric("rows", rows)
    print("Training done")
""")


@pytest.fixture(scope="session")
def azure_workspace(azure_emulator):
    """A resource group and workspace shared by the tests that only need one."""
    run_sdk(
        azure_emulator,
        PRELUDE
        + textwrap.dedent("""
        from azure.ai.ml.entities import Workspace
        rm().resource_groups.create_or_update("rg-shared", {"location": "eastus"})
        ws = ml("rg-shared").workspaces.begin_create(
            Workspace(name="ws-shared", location="eastus")).result()
        done(name=ws.name)
    """),
    )
    return "rg-shared", "ws-shared"


def test_tls_metadata_and_managed_identity_token(azure_emulator):
    env = azure_emulator.exported
    assert {
        "ARM_CLOUD_METADATA_URL",
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
        "AZUREML_CURRENT_CLOUD",
        "AZURE_SUBSCRIPTION_ID",
    } <= set(env)
    clouds = azure_emulator.call("GET", "/metadata/endpoints?api-version=2019-05-01")
    assert clouds[0]["name"] == env["AZUREML_CURRENT_CLOUD"]
    assert clouds[0]["resourceManager"] in env["ARM_CLOUD_METADATA_URL"]
    req = urllib.request.Request(
        env["IDENTITY_ENDPOINT"] + "?api-version=2019-08-01&resource=x",
        headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]},
    )
    with urllib.request.urlopen(req, context=azure_emulator._tls) as resp:
        token = json.loads(resp.read())
    claims = json.loads(base64.urlsafe_b64decode(token["access_token"].split(".")[1] + "=="))
    assert claims["exp"] > time.time() + 3600
    assert int(token["expires_on"]) == claims["exp"]


def test_lab_end_to_end_with_real_sdks(azure_emulator, tmp_path):
    """Provider, resource group, workspace (ARM deployment), cluster, a command job that really runs
    and logs to MLflow, logs streamed, metrics read back through azureml-mlflow, then every
    delete."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(TRAIN)
    (tmp_path / "data.csv").write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(10)))
    mark = azure_emulator.mark()
    started = time.monotonic()
    result = run_sdk(
        azure_emulator,
        PRELUDE
        + textwrap.dedent("""
        import mlflow
        from azure.ai.ml import Input, command
        from azure.ai.ml.entities import AmlCompute, Workspace
        from azure.core.exceptions import ResourceNotFoundError
        out = {}
        t0 = time.monotonic()
        provider = rm().providers.register("Microsoft.MachineLearningServices")
        out["provider"] = rm().providers.get("Microsoft.MachineLearningServices").registration_state
        rm().resource_groups.create_or_update("rg-e2e", {"location": "eastus"})
        out["rg_exists"] = rm().resource_groups.check_existence("rg-e2e")
        ws = ml("rg-e2e").workspaces.begin_create(
            Workspace(name="ws-e2e", location="eastus")).result()
        out["tracking_uri"] = ws.mlflow_tracking_uri
        out["t_workspace"] = time.monotonic() - t0
        client = ml("rg-e2e", "ws-e2e")
        cluster = client.compute.begin_create_or_update(AmlCompute(
            name="aml-cluster", size="STANDARD_DS11_V2", min_instances=0, max_instances=2)).result()
        cluster = client.compute.get("aml-cluster")
        out["cluster"] = [cluster.provisioning_state, cluster.size, cluster.max_instances]
        # quirk (azure-ai-ml 1.35.2): Usage._from_rest_object copies as_dict(), whose keys are the
        # REST names, so current_value stays None, the value is in `currentValue`, and name is a
        # plain dict.
        out["usages"] = {u.name["value"]: [u.current_value, u.currentValue, u.limit]
                         for u in client.compute.list_usage(location="eastus")
                         if "/workspaces/" not in u.id}  # the subscription's rows
        job = client.jobs.create_or_update(command(
            code="./src", command="python train.py --training_data ${{inputs.training_data}}",
            inputs={"training_data": Input(type="uri_file", path="./data.csv")},
            environment="azureml:AzureML-sklearn-1.5@latest", compute="aml-cluster",
            experiment_name="diabetes-training", display_name="diabetes-train-mlflow",
            tags={"model_type": "LogisticRegression"}))
        out["submitted"] = job.status
        client.jobs.stream(job.name)
        out["status"] = client.jobs.get(job.name).status
        out["listed"] = [j.name for j in client.jobs.list()]
        out["t_job"] = time.monotonic() - t0
        mlflow.set_tracking_uri(ws.mlflow_tracking_uri)
        run = mlflow.get_run(job.name)
        out["run"] = [run.info.run_id, run.info.status, run.info.run_name, run.data.metrics,
                      run.data.params, run.data.tags.get("model_type")]
        found = mlflow.search_runs(
            experiment_names=["diabetes-training"], output_format="list",
            filter_string="metrics.AUC > 0.8 and tags.model_type = 'LogisticRegression'",
            order_by=["start_time DESC"], max_results=2)
        out["searched"] = [r.info.run_id for r in found]
        client.compute.begin_delete("aml-cluster").result()
        out["computes_after_delete"] = [c.name for c in client.compute.list()]
        ml("rg-e2e").workspaces.begin_delete("ws-e2e", delete_dependent_resources=False).result()
        try:
            ml("rg-e2e").workspaces.get("ws-e2e")
            out["workspace_after_delete"] = "exists"
        except ResourceNotFoundError:
            out["workspace_after_delete"] = "gone"
        rm().resource_groups.begin_delete("rg-e2e").result()
        out["rg_after_delete"] = rm().resource_groups.check_existence("rg-e2e")
        done(**out)
    """),
        cwd=tmp_path,
    )
    elapsed = time.monotonic() - started
    assert result["provider"] in ("Registered", "Registering")
    assert result["rg_exists"] is True
    assert result["tracking_uri"].startswith("azureml://127.0.0.1:")
    assert result["tracking_uri"].endswith(
        "/resourceGroups/rg-e2e/providers/Microsoft.MachineLearningServices/workspaces/ws-e2e"
    )
    assert result["cluster"] == ["Succeeded", "STANDARD_DS11_V2", 2]
    assert result["usages"]["TotalCores"] == [None, 0, 100]
    assert result["usages"]["standardDSv2Family"] == [None, 0, 24]
    assert result["submitted"] == "NotStarted"
    assert result["status"] == "Completed"
    job_name = result["run"][0]
    assert result["listed"] == [job_name]
    assert result["run"] == [
        job_name,
        "FINISHED",
        "diabetes-train-mlflow",
        {"Accuracy": 0.774, "AUC": 0.848, "rows": 10.0},
        {"Regularization rate": "0.01"},
        "LogisticRegression",
    ]
    assert result["searched"] == [job_name]
    assert "Streaming user_logs/std_log.txt" in result["_stdout"]
    assert "Training on 10 rows" in result["_stdout"]
    assert result["computes_after_delete"] == []
    assert result["workspace_after_delete"] == "gone"
    assert result["rg_after_delete"] is False

    calls = [
        (r["method"], r["path"].lower(), r["status"]) for r in azure_emulator.requests(since=mark)
    ]
    sub = f"/subscriptions/{azure_emulator.subscription}".lower()
    for expected in [
        ("POST", f"{sub}/providers/microsoft.machinelearningservices/register", 200),
        ("PUT", f"{sub}/resourcegroups/rg-e2e", 201),
        (
            "PUT",
            f"{sub}/resourcegroups/rg-e2e/providers/microsoft.machinelearningservices/workspaces/ws-e2e/computes/aml-cluster",
            201,
        ),
        ("DELETE", f"{sub}/resourcegroups/rg-e2e", 202),
    ]:
        assert expected in calls
    paths = [p for _, p, _ in calls]
    assert any(
        p.startswith(
            f"{sub}/resourcegroups/rg-e2e/providers/microsoft.resources/deployments/ws-e2e-"
        )
        for p in paths
    )
    assert any(p.endswith("/startpendingupload") for p in paths)
    assert any(p.endswith(f"/runs/{job_name}/details".lower()) for p in paths)
    assert any(
        p.endswith("/api/2.0/mlflow/runs/log-batch")
        or p.endswith("/api/2.0/mlflow/runs/log-metric")
        or p.endswith("/log-batch-async")
        for p in paths
    )
    print(
        f"\nend to end: {elapsed:.1f}s (workspace after {result['t_workspace']:.1f}s, "
        f"job completed after {result['t_job']:.1f}s); "
        f"emulator start-up {azure_emulator.startup_seconds:.1f}s"
    )


def test_compute_create_retried_after_429(azure_emulator, azure_workspace):
    rg, ws = azure_workspace
    azure_emulator.fault(
        method="PUT", path_regex=r"/computes/c429$", status=429, retry_after=1, count=1
    )
    mark = azure_emulator.mark()
    result = run_sdk(
        azure_emulator,
        PRELUDE
        + textwrap.dedent(f'''
        from azure.ai.ml.entities import AmlCompute
        c = ml("{rg}", "{ws}").compute.begin_create_or_update(
            AmlCompute(name="c429", size="STANDARD_DS11_V2", max_instances=1)).result()
        done(state=c.provisioning_state)
    '''),
    )
    assert result["state"] == "Succeeded"
    puts = [
        r
        for r in azure_emulator.requests(since=mark)
        if r["method"] == "PUT" and r["path"].endswith("/computes/c429")
    ]
    assert [(r["status"], r["fault"]) for r in puts] == [(429, True), (201, False)]
    # after the 1 s asked for (a retry without it comes at once); the upper bound is only a
    # runaway guard (normally 1.0 s)
    assert 0.9 <= puts[1]["t"] - puts[0]["t"] < 30


def test_quota_error_on_compute_create(azure_emulator, azure_workspace):
    rg, ws = azure_workspace
    azure_emulator.call("POST", "/_emulator/quota", {"family": "standardNCFamily", "limit": 0})
    result = run_sdk(
        azure_emulator,
        PRELUDE
        + textwrap.dedent(f'''
        from azure.ai.ml.entities import AmlCompute
        from azure.core.exceptions import HttpResponseError
        try:
            ml("{rg}", "{ws}").compute.begin_create_or_update(
                AmlCompute(name="gpu", size="STANDARD_NC6")).result()
            done(error=None)
        except HttpResponseError as e:
            done(error=type(e).__name__, code=e.error.code if e.error else None, message=e.message)
    '''),
    )
    assert result["code"] == "BadRequest"
    assert (
        "The specified subscription has a vCPU quota of 0 for standardNCFamily and cannot "
        "accomodate for at least 1 requested managed compute node which maps to 6 vCPUs."
    ) in result["message"]


def test_async_failure_and_lro_delay(azure_emulator, azure_workspace):
    rg, ws = azure_workspace
    azure_emulator.fault(
        method="PUT",
        path_regex=r"/computes/cfail$",
        async_failure={"code": "ClusterCreationFailed", "message": "Allocation failed in eastus."},
    )
    azure_emulator.delay(method="PUT", path_regex=r"/computes/cslow$", seconds=3)
    mark = azure_emulator.mark()
    result = run_sdk(
        azure_emulator,
        PRELUDE
        + textwrap.dedent(f'''
        from azure.ai.ml.entities import AmlCompute
        client = ml("{rg}", "{ws}")
        try:
            client.compute.begin_create_or_update(
                AmlCompute(name="cfail", size="STANDARD_DS11_V2")).result()
            error = None
        except Exception as e:
            error = f"{{type(e).__name__}}: {{e}}"
        failed = client.compute.get("cfail").provisioning_state
        t0 = time.monotonic()
        client.compute.begin_create_or_update(
            AmlCompute(name="cslow", size="STANDARD_DS11_V2")).result()
        done(error=error, failed=failed, slow=time.monotonic() - t0)
    '''),
    )
    azure_emulator.reset()
    assert "Allocation failed in eastus." in result["error"]
    assert result["failed"] == "Failed"
    # waited for the 3 s operation, polling every second as asked (counted, not timed); the upper
    # bound is only a runaway guard (normally 3.2 s)
    assert 3 <= result["slow"] < 60
    polls = [r for r in azure_emulator.requests(since=mark) if "operationStatuses" in r["path"]]
    assert len(polls) >= 3


def test_failed_job_reports_its_exit_code(azure_emulator, azure_workspace, tmp_path):
    rg, ws = azure_workspace
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "fail.sh").write_text("echo about to fail\nexit 3\n")
    result = run_sdk(
        azure_emulator,
        PRELUDE
        + textwrap.dedent(f'''
        from azure.ai.ml import command
        client = ml("{rg}", "{ws}")
        job = client.jobs.create_or_update(command(code="./src", command="bash fail.sh",
                                                   environment="azureml:AzureML-sklearn-1.5@latest"))
        try:
            client.jobs.stream(job.name)
            error = None
        except Exception as e:
            error = str(e)
        done(status=client.jobs.get(job.name).status, error=error)
    '''),
        cwd=tmp_path,
    )
    assert result["status"] == "Failed"
    assert "exited with status code 3" in result["error"]
    assert "about to fail" in result["_stdout"]


def test_request_log_file_matches_endpoint(azure_emulator):
    azure_emulator.call("GET", "/_emulator/health")  # control calls are not logged
    served = azure_emulator.requests()
    with open(azure_emulator.exported["AZURE_EMULATOR_REQUEST_LOG"]) as f:
        written = [json.loads(line) for line in f]
    assert written[: len(served)] == served
    assert set(served[0]) == {
        "seq",
        "time",
        "t",
        "method",
        "path",
        "query",
        "status",
        "ms",
        "fault",
    }
    assert not any(r["path"].startswith("/_emulator") for r in served)
