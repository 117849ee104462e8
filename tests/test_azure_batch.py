"""Batch endpoints on the azure target: the real SDK (`batch_endpoints`, `batch_deployments`,
`invoke`, `jobs.download`) over HTTPS against the loopback emulator. One lab, applied once for
the module, then called by hand, changed and destroyed in file order: a model of the spec's
`models:` (a tiny MLflow model folder) behind a batch endpoint with one model deployment on a
cluster of the spec, and its call on a folder of two CSV files (the emulator's stand-in scores
each row 0)."""

import re
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.azure

SUB = "00000000-0000-0000-0000-00000000000e"
RG, WS, EP = "rg-azbatch", "ws-azbatch", "tiny-batch"
EP_ID = (
    f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices"
    f"/workspaces/{WS}/batchEndpoints/{EP}"
)
LAB = f"""\
name: azbatch
workspace: {{name: {WS}, resource_group: {RG}, location: eastus}}
computes:
  cpu-cluster: {{type: amlcompute, size: Standard_DS3_v2, min_instances: 0, max_instances: 2}}
models:
  tiny: {{type: mlflow_model, path: ./model, description: two flavourless rows}}
endpoints:
  {EP}:
    type: batch
    description: a tiny model in batches
    deployments:
      classifier:
        type: model
        model: azureml:tiny@latest
        compute: azureml:cpu-cluster
        resources: {{instance_count: 1}}
        settings: {{mini_batch_size: MINI, output_file_name: predictions.csv}}
    invoke: {{input: ./patients}}
"""


def az(emulator, *args, cwd, check=None):
    return emulator.mlrun(*args, "--target", "azure", cwd=cwd, check=check)


def write_lab(root, mini=2):
    (root / "lab.yaml").write_text(LAB.replace("MINI", str(mini)))


def emulated(emulator) -> dict:
    """The endpoint and its deployments as the emulator keeps them, by path under the endpoint."""
    prefix = EP_ID.lower()
    resources = emulator.call("GET", "/_emulator/state")["resources"]
    return {k[len(prefix) :] or "/": v for k, v in resources.items() if k.startswith(prefix)}


def rows(folder: Path) -> list[str]:
    return (folder / "predictions.csv").read_text().splitlines()


@pytest.fixture(scope="module")
def lab(azure_emulator, tmp_path_factory):
    root = tmp_path_factory.mktemp("azure-batch")
    (root / "model").mkdir()
    (root / "model" / "MLmodel").write_text(
        "artifact_path: model\nflavors:\n  python_function: {loader_module: mlflow.sklearn}\n"
    )
    (root / "patients").mkdir()
    (root / "patients" / "a.csv").write_text("age,bmi\n50,22.1\n61,30.4\n")
    (root / "patients" / "b.csv").write_text("age,bmi\n33,19.0\n")
    write_lab(root)
    plan = az(azure_emulator, "plan", "lab.yaml", cwd=root, check=0)
    mark = azure_emulator.mark()
    apply = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=root, check=0)
    yield {
        "root": root,
        "plan": plan.stdout,
        "apply": apply,
        "calls": [(r["method"], r["path"]) for r in azure_emulator.requests(mark)],
    }
    shutil.rmtree(root, ignore_errors=True)


def test_plan_shows_the_endpoint_the_deployment_and_the_call(lab):
    lines = [" ".join(line.split()) for line in lab["plan"].splitlines()]
    assert lines[4:7] == [
        "+ endpoint.tiny-batch batch, default classifier",
        "+ deployment.tiny-batch/classifier tiny v1 on cpu-cluster: 1 x 1 at once, mini-batches "
        "of 2 files, append_row to predictions.csv",
        "> invoke.tiny-batch ./patients -> classifier (once deployed)",
    ], lab["plan"]


def test_apply_deploys_then_calls_and_downloads_the_output(lab, azure_emulator):
    made = [(m, p) for m, p in lab["calls"] if m in ("PUT", "POST") and "/batchEndpoints/" in p]
    assert made[:2] == [("PUT", EP_ID), ("PUT", f"{EP_ID}/deployments/classifier")], made
    found = emulated(azure_emulator)
    dep = found["/deployments/classifier"]["properties"]
    assert dep["compute"].endswith(f"/workspaces/{WS}/computes/cpu-cluster")
    assert dep["model"]["assetId"].endswith(f"/workspaces/{WS}/models/tiny/versions/1")
    assert dep["miniBatchSize"] == 2
    assert dep["outputFileName"] == "predictions.csv"
    assert found["/"]["properties"]["defaults"]["deploymentName"] == "classifier"
    out = lab["apply"].stdout
    called = re.search(r"invoke.tiny-batch  called  run (\w+): output (\S+)", out)
    assert called, out
    output = Path(called.group(2))
    assert output.is_relative_to(lab["root"] / ".mlrun" / "azure" / WS)
    # the emulator's stand-in: a 0 for each row of each file, as ROW,PREDICTION,FILE
    assert sorted(rows(output)) == ["0,0,a.csv", "0,0,b.csv", "1,0,a.csv"]


def test_a_second_apply_changes_nothing(lab, azure_emulator):
    mark = azure_emulator.mark()
    out = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=lab["root"], check=0)
    assert out.stdout.endswith("No changes. Everything is up to date.\n"), out.stdout
    assert {r["method"] for r in azure_emulator.requests(mark)} <= {"GET", "HEAD"}


def test_mlrun_invoke_scores_another_folder_and_logs_show_it(lab, azure_emulator, tmp_path):
    (tmp_path / "c.csv").write_text("age,bmi\n70,28.2\n71,28.3\n72,28.4\n")
    called = az(
        azure_emulator, "invoke", str(lab["root"] / "lab.yaml"), EP, "--input", ".", cwd=tmp_path
    )
    assert called.returncode == 0, called.stderr
    printed = called.stdout.splitlines()[-1]
    assert printed.endswith("predictions.csv"), called.stdout
    assert rows(Path(printed).parent) == ["0,0,c.csv", "1,0,c.csv", "2,0,c.csv"]
    logs = az(azure_emulator, "logs", "lab.yaml", EP, cwd=lab["root"], check=0)
    assert "c.csv" in logs.stdout


def test_a_changed_setting_updates_the_deployment_and_calls_again(lab, azure_emulator):
    root = lab["root"]
    write_lab(root, mini=5)
    mark = azure_emulator.mark()
    out = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=root, check=0)
    assert "~ deployment.tiny-batch/classifier" in out.stdout, out.stdout
    written = [
        (r["method"], r["path"])
        for r in azure_emulator.requests(mark)
        if r["method"] in ("PUT", "DELETE") and "/batchEndpoints/" in r["path"]
    ]
    assert written == [("PUT", f"{EP_ID}/deployments/classifier")], written
    assert emulated(azure_emulator)["/deployments/classifier"]["properties"]["miniBatchSize"] == 5
    assert "invoke.tiny-batch  called" in out.stdout  # the deployment changed: a new call


def test_a_failed_scoring_job_is_an_error_naming_its_logs(lab, azure_emulator, tmp_path):
    (tmp_path / "d.csv").write_text("age,bmi\n40,20.0\n")
    azure_emulator.fault(
        method="POST",
        path_regex=f"/batch/.*/{EP}/jobs$",
        async_failure={"code": "UserError", "message": "Mini batch 1 failed: model crashed."},
        count=1,
    )
    spec = str(lab["root"] / "lab.yaml")
    failed = az(azure_emulator, "invoke", spec, EP, "--input", ".", cwd=tmp_path)
    assert failed.returncode == 1, failed.stdout
    assert re.search(
        rf"error: invoke.{EP}: the scoring job did not complete \(run \w+: .+\); see mlrun "
        rf"logs {re.escape(spec)} {EP}\n",
        failed.stderr,
    ), failed.stderr
    logs = az(azure_emulator, "logs", spec, EP, cwd=tmp_path, check=0)
    assert "Mini batch 1 failed: model crashed." in logs.stdout  # the scoring step's log


def test_destroy_deletes_the_endpoint(lab, azure_emulator):
    root = lab["root"]
    out = az(azure_emulator, "destroy", "-y", "lab.yaml", cwd=root, check=0)
    assert "endpoint.tiny-batch" in out.stdout
    assert emulated(azure_emulator) == {}
