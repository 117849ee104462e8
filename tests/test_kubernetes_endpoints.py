"""Kubernetes online endpoints (az ml's kubernetesOnlineEndpoint / kubernetesOnlineDeployment): an
online endpoint whose `compute:` is an attached Kubernetes compute, its deployments `type:
kubernetes` sized by their containers' requests and limits. Validated located; planned without a
price (the cluster bills as its own resource); served locally as any online deployment (the plan
says its requests and limits are not applied); sent as the SDK's Kubernetes entities on Azure."""

import json

import pytest
from conftest import run_mlrun

from runner.spec import check_file

ARC = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Kubernetes/connectedClusters/arc"
ENDPOINT = """\
$schema: https://azuremlschemas.azureedge.net/latest/kubernetesOnlineEndpoint.schema.json
name: scorer
compute: azureml:k8s
auth_mode: key
"""
DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/kubernetesOnlineDeployment.schema.json
name: blue
type: kubernetes
endpoint_name: scorer
model: {path: ./model}
code_configuration: {code: ./score, scoring_script: score.py}
environment: azureml:AzureML-sklearn-1.5@latest
request_settings: {request_timeout_ms: 3000}
resources:
  requests: {cpu: "0.1", memory: 0.5Gi}
  limits: {cpu: "0.5", memory: 1Gi, nvidia.com/gpu: "1"}
instance_count: 1
"""
SCORE = """\
def init():
    pass


def run(raw_data):
    return [0]
"""
LAB = f"""\
name: kube
workspace: {{name: mlw-kube, resource_group: rg-kube, location: eastus}}
computes:
  k8s: {{type: kubernetes, resource_id: {ARC}, namespace: ml}}
  cpu: {{type: amlcompute, size: STANDARD_DS11_V2, max_instances: 1}}
endpoints:
  scorer:
    file: endpoint.yml
    traffic: {{blue: 100}}
    deployments:
      blue: {{file: blue.yml}}
    invoke: {{request_file: request.json}}
"""
AZURE = 'targets:\n  azure: {subscription_id: "${{env.AZURE_SUBSCRIPTION_ID}}"}\n'


def write_lab(folder, azure=False):
    (folder / "model").mkdir()
    (folder / "model" / "weights.bin").write_bytes(b"\x01" * 8)
    (folder / "score").mkdir()
    (folder / "score" / "score.py").write_text(SCORE)
    (folder / "endpoint.yml").write_text(ENDPOINT)
    (folder / "blue.yml").write_text(DEPLOYMENT)
    (folder / "request.json").write_text('{"input_data": {"data": [[1, 2]]}}\n')
    (folder / "lab.yaml").write_text(LAB + (AZURE if azure else ""))
    return folder


def problems(path) -> list[str]:
    return [f"{p.line}:{p.col}: {p.path}: {p.message}" for p in check_file(path).problems]


def test_kubernetes_endpoint_files_validate(tmp_path):
    write_lab(tmp_path)
    assert problems(tmp_path / "lab.yaml") == []


def test_what_azure_refuses_is_located(tmp_path):
    write_lab(tmp_path)
    (tmp_path / "endpoint.yml").write_text(ENDPOINT.replace("azureml:k8s", "azureml:cpu"))
    (tmp_path / "blue.yml").write_text(DEPLOYMENT.replace("type: kubernetes\n", ""))
    lab = (tmp_path / "lab.yaml").read_text()
    managed = "  other:\n    deployments:\n      green: {file: green.yml}\n"
    (tmp_path / "green.yml").write_text(
        DEPLOYMENT.replace("scorer", "other").replace("name: blue", "name: green")
    )
    (tmp_path / "lab.yaml").write_text(lab + managed)
    assert problems(tmp_path / "lab.yaml") == [
        "3:10: $.endpoints.scorer.compute: an online endpoint's compute is an attached "
        "Kubernetes compute (a Kubernetes online endpoint); 'cpu' is amlcompute",
        "11:7: $.endpoints.scorer.deployments.blue: a deployment of a Kubernetes endpoint "
        "(compute cpu) is type: kubernetes",  # (read as the file means it: its resources too)
        "3:7: $.endpoints.other.deployments.green.type: a kubernetes deployment runs on its "
        "endpoint's Kubernetes compute: give the endpoint compute: azureml:NAME (an attached "
        "Kubernetes compute)",
        "9:1: $.endpoints.other.deployments.green.resources: resources is a field of batch "
        "deployments, not of an online one",
    ]
    (tmp_path / "endpoint.yml").write_text(ENDPOINT)  # the compute right, the type left out
    (tmp_path / "lab.yaml").write_text(lab)
    assert problems(tmp_path / "lab.yaml") == [
        "11:7: $.endpoints.scorer.deployments.blue: a deployment of a Kubernetes endpoint "
        "(compute k8s) is type: kubernetes"
    ]


def test_the_local_plan_serves_it_here_unpriced_and_says_what_is_not_applied(tmp_path):
    write_lab(tmp_path)
    plan = run_mlrun("plan", "lab.yaml", cwd=tmp_path, check=0).stdout
    lines = {
        parts[1]: parts[2]
        for line in plan.splitlines()
        if len(parts := line.split(None, 2)) == 3 and parts[0] in "+=>~-"
    }
    assert lines["compute.k8s"] == "runs on Azure only (attached Kubernetes)"
    assert lines["endpoint.scorer"] == (
        "online, key auth, on Kubernetes compute k8s, traffic blue 100%"
    )
    assert lines["deployment.scorer/blue"] == (
        "./model (score.py) on Kubernetes compute k8s, requests cpu 0.1 memory 0.5Gi, limits cpu "
        "0.5 memory 1Gi nvidia.com/gpu 1; served here as any online deployment: its requests and "
        "limits are not applied"
    )  # no price: the cluster bills as its own resource
    assert "cost on azure: $0.19/h while running" in plan  # the amlcompute's node alone


@pytest.mark.azure
def test_azure_makes_a_kubernetes_endpoint_and_deployment(azure_emulator, tmp_path):
    from test_azure import az

    lab = write_lab(tmp_path, azure=True)
    plan = az(azure_emulator, "plan", "lab.yaml", cwd=lab, check=0).stdout
    assert "served here" not in plan and "runs on Azure only" not in plan
    apply = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=lab, check=0).stdout
    assert "deployment.scorer/blue  created" in apply
    assert "invoke.scorer  called  200: [0]" in apply
    stored = {
        k.lower(): r for k, r in azure_emulator.call("GET", "/_emulator/state")["resources"].items()
    }
    endpoint = next(r for k, r in stored.items() if k.endswith("/onlineendpoints/scorer"))
    assert endpoint["kind"] == "K8S"
    assert endpoint["properties"]["compute"].lower().endswith("/computes/k8s")
    blue = next(r for k, r in stored.items() if k.endswith("/scorer/deployments/blue"))
    assert blue["properties"]["endpointComputeType"] == "Kubernetes"
    assert blue["properties"]["containerResourceRequirements"] == {
        "containerResourceRequests": {"cpu": "0.1", "memory": "0.5Gi"},
        "containerResourceLimits": {"cpu": "0.5", "memory": "1Gi", "gpu": "1"},
    }
    state = json.loads((lab / ".mlrun" / "kube.azure.json").read_text())
    assert state["resources"]["endpoint.scorer"]["attrs"]["compute"] == "k8s"
    again = az(azure_emulator, "plan", "lab.yaml", "--detailed-exitcode", cwd=lab, check=0)
    assert again.stdout.endswith("No changes. Everything is up to date.\n")
