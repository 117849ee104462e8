"""Batch endpoints (DP-100 lab 11, "Deploy to a batch endpoint"): specs/deploy-batch.yaml trains
and registers a model, registers the unlabeled patient files, deploys the model to a batch
endpoint on the cluster and scores the files: a parallel job of the deployment's settings whose
predictions.csv has the rows Azure's MLflow batch deployments write (row, prediction, file).
Then: by hand with mlrun invoke --input, a custom scoring script with run(mini_batch) and its
error threshold, and a killed apply whose scoring job the next apply waits for instead of
running it again."""

import csv
import json
import os
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
from conftest import lab_copy, run_mlrun, start_mlrun

WORKSPACE = Path("specs") / ".mlrun" / "local" / "mlw-dp100-batch"


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """specs/deploy-batch.yaml as a user runs it (apply, once for the module)."""
    root = lab_copy(tmp_path_factory.mktemp("batch"), "deploy-batch.yaml")
    spec = root / "specs" / "deploy-batch.yaml"
    proc = run_mlrun("apply", "-y", spec, cwd=root, check=0)
    yield {"root": root, "spec": spec, "apply": proc}
    run_mlrun("destroy", "-y", spec, cwd=root)


def state(root: Path) -> dict:
    return json.loads((root / "specs" / ".mlrun" / "deploy-batch.local.json").read_text())


def predictions(folder: Path) -> list[list[str]]:
    with open(folder / "predictions.csv", newline="") as f:
        return list(csv.reader(f))


def test_apply_scores_the_patient_files_as_azure_writes_them(scored):
    out, root = scored["apply"].stdout, scored["root"]
    assert (
        "deployment.diabetes-batch/classifier-diabetes-mlflow  created  diabetes-mlflow v1 on "
        "aml-cluster: 2 x 2 at once, mini-batches of 2 files, append_row to predictions.csv"
    ) in out
    assert "invoke.diabetes-batch  called  run " in out
    call = state(root)["resources"]["invoke.diabetes-batch"]["details"]
    rows = predictions(Path(call["output"]))
    patients = sorted((root / "training" / "data" / "patients").glob("*.csv"))
    # a row per patient: its row in its file, the prediction, the file (no header, as on Azure)
    assert len(rows) == 100 and {len(r) for r in rows} == {3}
    assert {r[2] for r in rows} == {p.name for p in patients}
    assert sorted(int(r[0]) for r in rows if r[2] == patients[0].name) == list(range(25))
    # the registered model's own predictions, file by file
    import mlflow.pyfunc
    import pandas as pd

    deployment = state(root)["resources"]["deployment.diabetes-batch/classifier-diabetes-mlflow"]
    model = mlflow.pyfunc.load_model(deployment["details"]["model_dir"])
    for patient in patients:
        want = [str(v) for v in model.predict(pd.read_csv(patient))]
        assert [r[1] for r in rows if r[2] == patient.name] == want


def test_the_scoring_run_is_a_job_logs_status_and_reports_know(scored):
    root, spec = scored["root"], scored["spec"]
    logs = run_mlrun("logs", spec, "diabetes-batch", cwd=root, check=0).stdout
    assert "[parallel] 4 files in 2 mini-batches (mini_batch_size 2)" in logs
    assert "mini-batches: 2 succeeded, 0 failed; items: 4 processed, 0 failed" in logs
    status = run_mlrun("status", spec, cwd=root, check=0).stdout
    lines = [" ".join(line.split()) for line in status.splitlines()]
    assert "endpoint.diabetes-batch batch, default classifier-diabetes-mlflow" in lines
    assert any(
        line.startswith("deployment.diabetes-batch/classifier-diabetes-mlflow diabetes-mlflow v1")
        for line in lines
    )
    assert any(line.startswith("job.diabetes-batch Completed") for line in lines)
    columns = [re.match(r"  (\S+)( +)\S", line) for line in status.splitlines()]
    widths = {m.end(2) for m in columns if m}
    assert len(widths) == 1, status  # the columns line up past the longest name
    report = json.loads(run_mlrun("report", spec, "--format", "json", cwd=root, check=0).stdout)
    text = run_mlrun("report", spec, cwd=root, check=0).stdout  # the terminal's has them too
    assert "\nendpoint diabetes-batch: batch, scoring URI" in text
    assert "\nMODEL            VERSION  TYPE" in text and "\ndiabetes-mlflow  v1 " in text
    (endpoint,) = report["endpoints"]
    (output,) = endpoint["invoke"]["output"]
    assert output["path"].endswith("outputs/score/predictions.csv") and output["lines"] == 100
    assert endpoint["deployments"][0]["compute"] == "aml-cluster"
    plan = run_mlrun("plan", spec, cwd=root, check=0).stdout
    assert "No changes." in plan  # the call is made once, not at every apply


def test_mlrun_invoke_scores_a_folder_by_hand(scored, tmp_path):
    root, spec = scored["root"], scored["spec"]
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(root / "training" / "data" / "patients" / "patient-data-3.csv", one / "p.csv")
    before = state(root)["resources"]["invoke.diabetes-batch"]
    proc = run_mlrun("invoke", spec, "diabetes-batch", "--input", one, cwd=root, check=0)
    written = Path(proc.stdout.strip().splitlines()[-1])
    rows = predictions(written.parent)
    assert len(rows) == 25 and {r[2] for r in rows} == {"p.csv"}
    # a call by hand is not the lab's: the lab's call stays as it was
    assert state(root)["resources"]["invoke.diabetes-batch"] == before
    # without --input: the lab's own input, found from the spec wherever mlrun runs
    proc = run_mlrun("invoke", spec, "diabetes-batch", cwd=tmp_path, check=0)
    assert len(predictions(Path(proc.stdout.strip().splitlines()[-1]).parent)) == 100
    proc = run_mlrun("invoke", spec, "diabetes-batch", "--input", tmp_path / "nope", cwd=root)
    assert proc.returncode == 1 and "no such file or folder" in proc.stderr


SCRIPT = """\
import os, time

def init():
    global bias
    bias = float(open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "bias.txt")).read())

def run(mini_batch):
    rows = []
    for path in mini_batch:
        if "bad" in os.path.basename(path):
            raise ValueError("cannot score " + os.path.basename(path))
        if os.environ.get("SLOW"):
            time.sleep(float(os.environ["SLOW"]))
        total = sum(float(x) for x in open(path).read().split())
        rows.append([os.path.basename(path), total + bias])
    return rows
"""


def custom_lab(folder: Path, settings: str) -> Path:
    """A custom model scored by its own script (azureml-examples' mnist-classifier shape), in an
    environment built from a conda file with no packages (uv, offline)."""
    (folder / "model").mkdir()
    (folder / "model" / "bias.txt").write_text("0.5")
    (folder / "code").mkdir()
    (folder / "code" / "batch_driver.py").write_text(SCRIPT)
    (folder / "conda.yaml").write_text("name: plain\ndependencies:\n  - python=3.11\n  - pip\n")
    (folder / "files").mkdir()
    for i in range(4):
        (folder / "files" / f"f{i}.txt").write_text(f"{i} {i}")
    spec = folder / "lab.yaml"
    spec.write_text(
        f"""\
name: custom-batch
workspace: {{name: ws-custom-batch}}
computes:
  cpu-cluster: {{type: amlcompute, max_instances: 2}}
endpoints:
  summer:
    type: batch
    deployments:
      sums:
        model: {{path: ./model, type: custom_model}}
        code_configuration: {{code: ./code, scoring_script: batch_driver.py}}
        environment: {{image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04,
                      conda_file: conda.yaml}}
        compute: azureml:cpu-cluster
        resources: {{instance_count: 1}}
        settings: {settings}
    invoke: {{input: ./files}}
"""
    )
    return spec


OFFLINE = {"UV_OFFLINE": "1"}


def test_a_scoring_script_scores_each_mini_batch_and_its_failures_fail_the_call(tmp_path):
    spec = custom_lab(
        tmp_path,
        "{mini_batch_size: 1, output_action: append_row, output_file_name: sums.txt, "
        "error_threshold: 0, retry_settings: {max_retries: 1, timeout: 30}}",
    )
    try:
        out = run_mlrun("apply", "-y", spec, cwd=tmp_path, env=OFFLINE, check=0).stdout
        call = json.loads((tmp_path / ".mlrun" / "custom-batch.local.json").read_text())
        output = Path(call["resources"]["invoke.summer"]["details"]["output"])
        assert "invoke.summer  called" in out, out
        lines = sorted((output / "sums.txt").read_text().splitlines())
        assert lines == [f"f{i}.txt {2 * i + 0.5}" for i in range(4)]  # a list's values, spaced
        (tmp_path / "files" / "bad.txt").write_text("1")  # the input changed: scored again
        proc = run_mlrun("apply", "-y", spec, cwd=tmp_path, env=OFFLINE, check=1)
        assert "invoke.summer: the scoring job did not complete" in proc.stderr
        assert "error_threshold 0 exceeded" in proc.stderr
        assert "see mlrun logs" in proc.stderr and "summer" in proc.stderr
        logs = run_mlrun("logs", spec, "summer", cwd=tmp_path, check=0).stdout
        assert "cannot score bad.txt" in logs  # the failed run's logs are kept
        plan = run_mlrun("plan", spec, cwd=tmp_path, check=0).stdout
        assert "> invoke.summer" in plan  # a failed call is made again by the next apply
    finally:
        run_mlrun("destroy", "-y", spec, cwd=tmp_path, check=0)


def test_a_killed_apply_leaves_a_scoring_job_the_next_apply_waits_for(tmp_path):
    """kill -9 of apply while its scoring job runs: the job runs on, and the next apply takes its
    run (the same input, the same deployment) instead of scoring the files twice."""
    spec = custom_lab(
        tmp_path,
        "{mini_batch_size: 1, max_concurrency_per_instance: 1, "
        "environment_variables: {SLOW: '1.5'}}",
    )
    state_file = tmp_path / ".mlrun" / "custom-batch.local.json"
    try:
        proc = start_mlrun("apply", "-y", spec, cwd=tmp_path, env=OFFLINE)
        runs = tmp_path / ".mlrun" / "local" / "ws-custom-batch" / "runs" / "summer"
        deadline = time.monotonic() + 120
        # killed once the run's supervisor runs (before that, a killed apply's run never starts:
        # it ends Canceled, and the next apply makes the call)
        while time.monotonic() < deadline and not list(runs.glob("*/pid")):
            time.sleep(0.1)
        (started,) = [f.read_text() for f in runs.glob("*/run_id")]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        out = run_mlrun("apply", "-y", spec, cwd=tmp_path, env=OFFLINE, check=0).stdout
        assert "invoke.summer  " in out and "the same call, made before" in out, out
        after = json.loads(state_file.read_text())
        assert [r["id"] for r in after["jobs"]["summer"]["runs"]] == [started]
        assert len(list(runs.iterdir())) == 1  # scored once
        output = Path(after["resources"]["invoke.summer"]["details"]["output"])
        assert len((output / "predictions.csv").read_text().splitlines()) == 4
    finally:
        run_mlrun("destroy", "-y", spec, cwd=tmp_path, check=0)
