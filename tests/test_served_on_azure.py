"""Online deployments only Azure can serve (endpoints.Deployment.served_on_azure): a custom
container (an environment with an inference_config: its image serves the model), a Triton model
with no scoring script (Triton Inference Server serves it), and an environment that serves by
itself (a model package). The local target runs no image and no Triton server: it plans the whole
endpoint `runs on Azure only` and skips it; the azure target deploys them through the SDK."""

import json

import pytest
from conftest import run_mlrun

from runner.spec import check_file

CONTAINER = """\
name: container
endpoint_name: scorer
model: {path: ./model}
environment_variables: {MODEL_FOLDER: model}
environment:
  image: myregistry.azurecr.io/scorer:1
  inference_config:
    liveness_route: {port: 8000, path: /health}
    readiness_route: {port: 8000, path: /health}
    scoring_route: {port: 8000, path: /score}
instance_type: Standard_DS3_v2
instance_count: 1
"""
LAB = """\
name: served
workspace: {name: mlw-served, resource_group: rg-served, location: eastus}
endpoints:
  scorer:
    traffic: {container: 100}
    deployments:
      container: {file: container.yml}
    invoke: {request_file: request.json}
  densenet:
    deployments:
      triton:
        model: {path: ./triton, type: triton_model}
        instance_type: Standard_DS3_v2
  packaged:
    deployments:
      pkg:
        environment: azureml:scorer-pkg@latest
        instance_type: Standard_DS3_v2
  plain:
    deployments:
      mlflow:
        model: {path: ./mlflow-model, type: mlflow_model}
        instance_type: Standard_DS3_v2
"""
AZURE = 'targets:\n  azure: {subscription_id: "${{env.AZURE_SUBSCRIPTION_ID}}"}\n'
MLMODEL = """\
artifact_path: model
flavors:
  python_function: {loader_module: mlflow.sklearn, model_path: model.pkl, python_version: 3.11.7}
"""


def write_lab(folder, azure=False, lab=LAB):
    (folder / "model").mkdir()
    (folder / "model" / "weights.bin").write_bytes(b"\x00" * 16)
    repo = folder / "triton" / "densenet"
    (repo / "1").mkdir(parents=True)
    (repo / "1" / "model.onnx").write_bytes(b"onnx stand-in")
    (repo / "config.pbtxt").write_text('name: "densenet"\nplatform: "onnxruntime_onnx"\n')
    (folder / "mlflow-model").mkdir()
    (folder / "mlflow-model" / "MLmodel").write_text(MLMODEL)
    (folder / "container.yml").write_text(CONTAINER)
    (folder / "request.json").write_text('{"input_data": {"data": [[1, 2]]}}\n')
    (folder / "lab.yaml").write_text(lab + (AZURE if azure else ""))
    return folder


def test_they_validate_where_a_custom_model_without_a_script_is_refused(tmp_path):
    write_lab(tmp_path)
    assert [str(p) for p in check_file(tmp_path / "lab.yaml").problems] == []
    plain = CONTAINER.replace("  inference_config:", "  inference_confi:")  # not a container
    (tmp_path / "container.yml").write_text(plain)
    said = [f"{p.line}:{p.col}: {p.message}" for p in check_file(tmp_path / "lab.yaml").problems]
    assert (
        "3:8: a custom_model needs a scoring script (code_configuration) to be served; only "
        "an MLflow model is served without one"
    ) in said


def said(plan: str, address: str) -> str:
    """What a plan line says of `address`: its sign, then its text after the address."""
    line = next(x for x in plan.splitlines() if x.split()[1:2] == [address])
    sign, _, text = line.split(None, 2)
    return f"{sign} {text}"


def test_locally_each_endpoint_is_planned_and_skipped_as_azure_only(tmp_path):
    write_lab(tmp_path)
    plan = run_mlrun("plan", "lab.yaml", cwd=tmp_path, check=0).stdout
    container = (
        "= runs on Azure only (deployment container: image myregistry.azurecr.io/scorer:1 "
        "serves it as a custom container)"
    )
    for address in ("endpoint.scorer", "invoke.scorer"):  # nothing to call here
        assert said(plan, address) == container
    assert said(plan, "deployment.scorer/container").startswith(container + "; $0.29/h")
    triton = (
        "= runs on Azure only (deployment triton: Triton Inference Server serves its triton_model)"
    )
    assert said(plan, "endpoint.densenet") == triton
    assert said(plan, "endpoint.packaged") == (
        "= runs on Azure only (deployment pkg: its environment azureml:scorer-pkg@latest serves "
        "it, as a model package does)"
    )
    assert said(plan, "endpoint.plain") == "+ online, key auth"  # served here
    assert said(plan, "deployment.plain/mlflow").startswith("+ ./mlflow-model (MLflow scoring")


@pytest.fixture
def lab_without_plain(tmp_path):
    """The three Azure-only endpoints alone (the MLflow one would start a server here)."""
    return write_lab(tmp_path, lab=LAB.split("  plain:")[0])


def test_apply_skips_them_and_status_says_so(lab_without_plain):
    lab = lab_without_plain
    apply = run_mlrun("apply", "-y", "lab.yaml", cwd=lab, check=0).stdout
    for address in ("endpoint.scorer", "deployment.scorer/container", "invoke.scorer"):
        assert f"{address}  skipped  runs on Azure only" in apply
    status = run_mlrun("status", "lab.yaml", cwd=lab, check=0).stdout
    assert "endpoint.densenet" in status and "skipped" in status
    state = json.loads((lab / ".mlrun" / "served.local.json").read_text())
    assert not [a for a in state["resources"] if a.startswith(("endpoint.", "deployment."))]
    again = run_mlrun("plan", "lab.yaml", "--detailed-exitcode", cwd=lab, check=0).stdout
    assert again.endswith("No changes. Everything is up to date.\n")
    called = run_mlrun("invoke", "lab.yaml", "densenet", "--request-file", "request.json", cwd=lab)
    assert called.returncode == 1
    assert called.stderr == (
        "error: endpoint densenet runs on Azure only (deployment triton: Triton Inference Server "
        "serves its triton_model): call it with --target azure\n"
    )


@pytest.mark.azure
def test_azure_deploys_a_custom_container_triton_and_a_package(azure_emulator, tmp_path):
    from azure_fixtures import run_sdk
    from test_azure import az

    first = LAB.split("  packaged:")[0]  # the package's environment is made after the workspace
    lab = write_lab(tmp_path, azure=True, lab=first)
    plan = az(azure_emulator, "plan", "lab.yaml", cwd=lab, check=0).stdout
    assert "runs on Azure only" not in plan
    assert said(plan, "deployment.scorer/container").startswith(
        "+ ./model (image myregistry.azurecr.io/scorer:1 serves it as a custom container)"
    )
    apply = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=lab, check=0).stdout
    for address in ("deployment.scorer/container", "deployment.densenet/triton", "invoke.scorer"):
        assert f"{address}  " in apply
    assert "Failed" not in apply
    run_sdk(  # what `az ml model package` leaves in the workspace: an environment that serves
        azure_emulator,
        """
import json, os
from azure.ai.ml import MLClient
from azure.ai.ml.entities import Environment
from azure.identity import DefaultAzureCredential
ml = MLClient(DefaultAzureCredential(), os.environ["AZURE_SUBSCRIPTION_ID"], "rg-served",
              "mlw-served")
env = ml.environments.create_or_update(
    Environment(name="scorer-pkg", version="1", image="myregistry.azurecr.io/pkg:1")
)
print(json.dumps({"id": env.id}))
""",
    )
    (lab / "lab.yaml").write_text(LAB.split("  plain:")[0] + AZURE)
    apply = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=lab, check=0).stdout
    assert "deployment.packaged/pkg  created" in apply
    stored = {  # the emulator keeps ids as Azure compares them: case ignored
        k.lower(): r for k, r in azure_emulator.call("GET", "/_emulator/state")["resources"].items()
    }
    deps = {
        k.rsplit("/", 1)[-1]: r["properties"]
        for k, r in stored.items()
        if "/onlineendpoints/" in k and "/deployments/" in k
    }
    assert deps["container"].get("codeConfiguration") is None
    env = stored[deps["container"]["environmentId"].lower()]["properties"]
    assert env["inferenceConfig"]["scoringRoute"] == {"port": 8000, "path": "/score"}
    assert env["image"] == "myregistry.azurecr.io/scorer:1"
    assert stored[deps["triton"]["model"].lower()]["properties"]["modelType"] == "triton_model"
    assert deps["pkg"]["environmentId"].endswith("/environments/scorer-pkg/versions/1")
    assert deps["pkg"].get("model") is None
    again = az(azure_emulator, "plan", "lab.yaml", "--detailed-exitcode", cwd=lab, check=0)
    assert again.stdout.endswith("No changes. Everything is up to date.\n")
