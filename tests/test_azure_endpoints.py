"""Online endpoints on the azure target: the real SDK (`online_endpoints`, `online_deployments`,
`invoke`) over HTTPS against the loopback emulator. One lab, applied once for the module, then
changed, broken and destroyed in file order: a model of the spec's `models:` (a tiny MLflow model
folder, uploaded through Azurite) behind an endpoint with one deployment, and its call."""

import json
import re
import shutil

import pytest

pytestmark = pytest.mark.azure

SUB = "00000000-0000-0000-0000-00000000000e"
RG, WS, EP = "rg-azep", "ws-azep", "tiny-online"
EP_ID = (
    f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices"
    f"/workspaces/{WS}/onlineEndpoints/{EP}"
)
REQUEST = {
    "input_data": {"columns": ["a", "b"], "index": [0, 1, 2], "data": [[1, 2], [3, 4], [5, 6]]}
}
LAB = f"""\
name: azep
workspace: {{name: {WS}, resource_group: {RG}, location: eastus}}
models:
  tiny: {{type: mlflow_model, path: ./model, description: two flavourless rows}}
endpoints:
  {EP}:
    auth_mode: key
    description: a tiny model online
    traffic: {{blue: 100}}
    deployments:
      blue:
        model: azureml:tiny@latest
        instance_type: Standard_DS3_v2
        instance_count: COUNT
        request_settings: {{request_timeout_ms: 3000}}
    invoke: {{request_file: request.json, deployment_name: blue}}
"""


def az(emulator, *args, cwd, check=None):
    return emulator.mlrun(*args, "--target", "azure", cwd=cwd, check=check)


def write_lab(root, count=1, extra=""):
    (root / "lab.yaml").write_text(LAB.replace("COUNT", str(count)) + extra)


def emulated(emulator) -> dict:
    """The endpoint and its deployments as the emulator keeps them, by name."""
    prefix = EP_ID.lower()
    resources = emulator.call("GET", "/_emulator/state")["resources"]
    return {k[len(prefix) :] or "/": v for k, v in resources.items() if k.startswith(prefix)}


def keys(emulator) -> list[str]:
    found = emulator.call("POST", f"{EP_ID}/listKeys?api-version=2023-04-01-preview")
    return [found["primaryKey"], found["secondaryKey"]]


@pytest.fixture(scope="module")
def lab(azure_emulator, tmp_path_factory):
    root = tmp_path_factory.mktemp("azure-endpoints")
    (root / "model").mkdir()
    (root / "model" / "MLmodel").write_text(
        "artifact_path: model\nflavors:\n  python_function: {loader_module: mlflow.sklearn}\n"
    )
    (root / "request.json").write_text(json.dumps(REQUEST))
    write_lab(root)
    plan = az(azure_emulator, "plan", "lab.yaml", cwd=root, check=0)
    mark = azure_emulator.mark()
    apply = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=root, check=0)
    outputs = [plan, apply]
    yield {
        "root": root,
        "plan": plan.stdout,
        "apply": apply,
        "calls": [(r["method"], r["path"]) for r in azure_emulator.requests(mark)],
        "outputs": outputs,
    }
    shutil.rmtree(root, ignore_errors=True)


def test_plan_prices_the_deployment_and_orders_the_call(lab):
    lines = lab["plan"].splitlines()
    assert lines[2:6] == [
        "  + model.tiny                   mlflow_model v1 from ./model",
        "  + endpoint.tiny-online         online, key auth, traffic blue 100%",
        "  + deployment.tiny-online/blue  tiny v1 (MLflow scoring server); $0.30/h (1 x "
        "Standard_DS3_v2), bills until destroyed",
        "  > invoke.tiny-online           request.json -> blue (once deployed)",
    ]


def test_apply_creates_endpoint_then_deployment_then_traffic_and_calls(lab, azure_emulator):
    made = [(m, p) for m, p in lab["calls"] if m in ("PUT", "POST") and "/onlineEndpoints/" in p]
    assert made == [
        ("PUT", EP_ID),  # the endpoint, without traffic: blue is not there yet
        ("PUT", f"{EP_ID}/deployments/blue"),
        ("PUT", EP_ID),  # then its traffic
        ("POST", f"{EP_ID}/listKeys"),  # invoke: the SDK reads the key
    ]
    found = emulated(azure_emulator)
    blue = found["/deployments/blue"]
    assert blue["sku"]["capacity"] == 1
    assert blue["properties"]["instanceType"] == "Standard_DS3_v2"
    assert blue["properties"]["model"].endswith("/workspaces/ws-azep/models/tiny/versions/1")
    assert "codeConfiguration" not in blue["properties"]  # a no-code MLflow deployment
    assert blue["properties"]["requestSettings"]["requestTimeout"] == "PT3S"
    assert found["/"]["properties"]["traffic"] == {"blue": 100}
    assert found["/"]["properties"]["authMode"] == "Key"
    out = lab["apply"].stdout
    assert "deployment.tiny-online/blue  created  tiny v1 (MLflow scoring server)" in out
    assert "invoke.tiny-online  called  200: [0, 0, 0]" in out  # the emulator's stand-in
    # every line after the plan is an event: no progress dots of the SDK's pollers in between
    events = out.split("1 endpoint call to make.\n")[1].splitlines()
    assert events and all(re.match(r"  \d+:\d\d [a-z]", line) for line in events), out


def test_a_second_apply_changes_nothing(lab, azure_emulator):
    mark = azure_emulator.mark()
    out = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=lab["root"], check=0)
    lab["outputs"].append(out)
    assert out.stdout.endswith("No changes. Everything is up to date.\n")
    assert {r["method"] for r in azure_emulator.requests(mark)} <= {"GET", "HEAD"}


def test_mlrun_invoke_and_status_show_the_answer_and_scoring_uri(lab, azure_emulator):
    root = lab["root"]
    called = az(azure_emulator, "invoke", "lab.yaml", EP, cwd=root, check=0)
    assert called.stdout == "[0, 0, 0]\n"
    status = az(azure_emulator, "status", "lab.yaml", cwd=root, check=0)
    uri = emulated(azure_emulator)["/"]["properties"]["scoringUri"]
    assert uri.startswith("https://127.0.0.1:") and uri.endswith(f"/{WS}/{EP}/score")
    assert f"  endpoint.tiny-online             {uri}\n" in status.stdout
    assert "  deployment.tiny-online/blue      running, traffic 100%\n" in status.stdout
    # its instances bill while it exists, called or not: priced, since it was deployed
    billable = status.stdout.partition("billable now (estimates, USD retail):\n")[2]
    assert re.match(
        r"  deployment.tiny-online/blue      1 instance \$0\.\d\d/h +since 20\d\d-", billable
    )
    lab["outputs"] += [called, status]


def test_invoke_errors_are_located_with_exit_1(lab, azure_emulator):
    root = lab["root"]
    (root / "no-rows.json").write_text('{"input_data": 5}')
    bad = az(azure_emulator, "invoke", "lab.yaml", EP, "--request-file", "no-rows.json", cwd=root)
    assert bad.returncode == 1
    assert bad.stdout == '{"message": "input_data holds no rows"}\n'  # the endpoint's answer
    assert bad.stderr == "error: endpoint tiny-online answered 400\n"
    missing = az(azure_emulator, "invoke", "lab.yaml", EP, "--deployment", "red", cwd=root)
    assert missing.returncode == 1
    assert "endpoint.tiny-online: Deployment name red not found for this endpoint" in (
        missing.stderr
    )
    lab["outputs"] += [bad, missing]


def test_a_changed_instance_count_updates_only_the_deployment(lab, azure_emulator):
    root = lab["root"]
    write_lab(root, count=2)
    mark = azure_emulator.mark()
    out = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=root, check=0)
    lab["outputs"].append(out)
    assert (
        "  ~ deployment.tiny-online/blue  instance_count: 1 -> 2; $0.60/h (2 x Standard_DS3_v2), "
        "bills until destroyed\n"
    ) in out.stdout
    assert "Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy" in out.stdout
    written = [
        (m, p)
        for m, p in ((r["method"], r["path"]) for r in azure_emulator.requests(mark))
        if m in ("PUT", "DELETE", "PATCH")
    ]
    assert written == [("PUT", f"{EP_ID}/deployments/blue")]  # traffic was right already
    assert emulated(azure_emulator)["/deployments/blue"]["sku"]["capacity"] == 2


def test_a_failing_deployment_is_said_located_then_made_again(lab, azure_emulator):
    root = lab["root"]
    green = "      green:\n        model: azureml:tiny:1\n        instance_type: Standard_DS3_v2\n"
    text = LAB.replace("COUNT", "2").replace("    invoke:", green + "    invoke:")
    (root / "lab.yaml").write_text(text)
    azure_emulator.fault(
        method="PUT",
        path_regex=f"/onlineEndpoints/{EP}/deployments/green$",
        async_failure={
            "code": "ResourceNotReady",
            "message": "User container has crashed or terminated: Liveness probe failed.",
        },
    )
    failed = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=root)
    assert failed.returncode == 1, failed.stderr
    assert (
        "error: Azure could not finish it: deployment.tiny-online/green: User container "
        "has crashed or terminated: Liveness probe failed. Apply again to retry"
    ) in failed.stderr
    assert "Traceback" not in failed.stderr
    assert emulated(azure_emulator)["/deployments/green"]["properties"]["provisioningState"] == (
        "Failed"
    )
    plan = az(azure_emulator, "plan", "lab.yaml", cwd=root, check=0).stdout
    assert "  ~ deployment.tiny-online/green" in plan and "deployment failed on Azure" in plan
    again = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=root, check=0)
    state = emulated(azure_emulator)["/deployments/green"]["properties"]["provisioningState"]
    assert state == "Succeeded"
    lab["outputs"] += [failed, again]


def test_removing_a_deployment_deletes_only_it(lab, azure_emulator):
    root = lab["root"]
    write_lab(root, count=2)
    out = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=root, check=0)
    lab["outputs"].append(out)
    assert "  - deployment.tiny-online/green  no longer in the spec\n" in out.stdout
    assert sorted(emulated(azure_emulator)) == ["/", "/deployments/blue"]


def test_destroy_deletes_deployment_and_endpoint(lab, azure_emulator):
    mark = azure_emulator.mark()
    secrets = keys(azure_emulator)
    out = az(azure_emulator, "destroy", "-y", "lab.yaml", cwd=lab["root"], check=0)
    lab["outputs"].append(out)
    deleted = [r["path"] for r in azure_emulator.requests(mark) if r["method"] == "DELETE"]
    assert deleted[:2] == [f"{EP_ID}/deployments/blue", EP_ID]
    assert emulated(azure_emulator) == {}
    # the keys are nowhere: not in the state, not in any output
    state = (lab["root"] / ".mlrun" / "azep.azure.json").read_text()
    shown = [state] + [o.stdout + o.stderr for o in lab["outputs"]]
    assert not any(k in text for k in secrets for text in shown)


def test_a_local_model_folder_behind_an_aml_token_endpoint(azure_emulator, tmp_path):
    """A deployment's model given by path: the SDK uploads the folder (Azurite) and registers it
    as an anonymous model version; an aml_token endpoint is called with the token the SDK asks
    for, not a key."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text("flavors:\n  python_function: {}\n")
    (tmp_path / "request.json").write_text(json.dumps({"input_data": [[1, 2], [3, 4]]}))
    (tmp_path / "lab.yaml").write_text(
        "name: azep-token\n"
        "workspace: {name: ws-azep-token, resource_group: rg-azep-token, location: eastus}\n"
        "endpoints:\n"
        "  token-online:\n"
        "    auth_mode: aml_token\n"
        "    traffic: {blue: 100}\n"
        "    deployments:\n"
        "      blue: {model: {path: ./model, type: mlflow_model}, instance_type: Standard_DS3_v2}\n"
        "    invoke: {request_file: request.json}\n"
    )
    mark = azure_emulator.mark()
    out = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=tmp_path, check=0).stdout
    assert "invoke.token-online  called  200: [0, 0]" in out
    calls = [(r["method"], r["path"].rsplit("/", 2)[-2:]) for r in azure_emulator.requests(mark)]
    assert ("POST", ["token-online", "token"]) in calls
    assert not any(path[-1] == "listKeys" for _, path in calls)
    resources = azure_emulator.call("GET", "/_emulator/state")["resources"]
    (blue,) = [v for k, v in resources.items() if k.endswith("/token-online/deployments/blue")]
    model = resources[blue["properties"]["model"].lower()]["properties"]
    assert model["isAnonymous"] and model["modelType"] == "mlflow_model"
    assert "/datastores/workspaceblobstore/paths/LocalUpload/" in model["modelUri"]
    assert az(azure_emulator, "plan", "lab.yaml", cwd=tmp_path, check=0).stdout == (
        "No changes. Everything is up to date.\n"
    )
    az(azure_emulator, "destroy", "-y", "lab.yaml", cwd=tmp_path, check=0)
    state = azure_emulator.call("GET", "/_emulator/state")["resources"]
    assert not any("/onlineendpoints/token-online" in k for k in state)


def test_destroy_expired_deletes_a_labs_online_endpoints_before_its_group(azure_emulator, tmp_path):
    """An expired lab's endpoints bill by the hour until deleted: destroy --expired deletes them
    first, then the resource group (whose deletion can take many minutes on Azure)."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "MLmodel").write_text("flavors:\n  python_function: {}\n")
    (tmp_path / "lab.yaml").write_text(
        "name: azep-old\nexpires_after: 2026-01-01T00:00:00Z\n"
        "workspace: {name: ws-azep-old, resource_group: rg-azep-old, location: eastus}\n"
        "endpoints:\n"
        "  old-online:\n"
        "    traffic: {blue: 100}\n"
        "    deployments:\n"
        "      blue: {model: {path: ./model, type: mlflow_model}, instance_type: Standard_DS3_v2}\n"
    )
    az(azure_emulator, "apply", "-y", "lab.yaml", cwd=tmp_path, check=0)
    mark = azure_emulator.mark()
    gone = azure_emulator.mlrun(
        "destroy", "--expired", "-y", "--target", "azure", cwd=tmp_path, check=0
    ).stdout
    assert "destroyed endpoint ws-azep-old/old-online (resource_group.rg-azep-old)" in gone
    assert gone.index("endpoint ws-azep-old/old-online") < gone.index(
        "destroyed resource_group.rg-azep-old"
    )
    deletes = [r["path"].lower() for r in azure_emulator.requests(mark) if r["method"] == "DELETE"]
    endpoint = next(i for i, p in enumerate(deletes) if p.endswith("/onlineendpoints/old-online"))
    group = next(i for i, p in enumerate(deletes) if p.endswith("/resourcegroups/rg-azep-old"))
    assert endpoint < group
    state = azure_emulator.call("GET", "/_emulator/state")["resources"]
    assert not any("rg-azep-old" in k for k in state)
