"""The lab's training folder: the generated data set is reproducible, and the seed's job learns
from the real data set (shared/data/diabetes.csv beside the repository) as the lab expects."""

import hashlib
import json
import subprocess
import sys

import pytest
from conftest import ROOT, mlflow_client, run_mlrun

REAL = ROOT.parent / "shared" / "data" / "diabetes.csv"
COLUMNS = (
    "PatientID,Pregnancies,PlasmaGlucose,DiastolicBloodPressure,TricepsThickness,SerumInsulin,BMI,"
    "DiabetesPedigree,Age,Diabetic"
)


def test_generator_reproduces_the_committed_data_set(tmp_path):
    out = tmp_path / "d.csv"
    subprocess.run(
        [sys.executable, str(ROOT / "training" / "generate_data.py"), "-o", str(out)], check=True
    )
    committed = ROOT / "training" / "data" / "diabetes.csv"
    assert (
        hashlib.sha256(out.read_bytes()).hexdigest()
        == hashlib.sha256(committed.read_bytes()).hexdigest()
    )
    lines = committed.read_text().splitlines()
    assert lines[0] == COLUMNS and len(lines) == 10_001


@pytest.mark.e2e
def test_hand_logging_job_learns_from_the_real_data_set(tmp_path):
    if not REAL.exists():
        pytest.skip(f"the real data set is not beside the repository ({REAL})")
    (tmp_path / "lab.yaml").write_text(f"""name: real
workspace: {{name: ws-real}}
jobs:
  train:
    code: {ROOT / "training"}
    command: python train-model-mlflow.py --training_data ${{{{inputs.data}}}}
    inputs: {{data: {{type: uri_file, path: {REAL}}}}}
    experiment_name: real-data
""")
    run_mlrun("apply", "-y", "lab.yaml", cwd=tmp_path, check=0)
    (run,) = mlflow_client(tmp_path, "ws-real").search_runs(
        [mlflow_client(tmp_path, "ws-real").get_experiment_by_name("real-data").experiment_id]
    )
    assert run.data.metrics["AUC"] > 0.8 and run.data.metrics["Accuracy"] > 0.75
    assert run.data.params == {"Regularization rate": "0.01"}
    report = json.loads(
        run_mlrun("report", "lab.yaml", "--format", "json", cwd=tmp_path, check=0).stdout
    )
    assert report["jobs"][0]["metrics"]["AUC"] == run.data.metrics["AUC"]
