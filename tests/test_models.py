"""Models (the spec's `models:`, az ml model create) on the local target: registered into the
workspace's MLflow Model Registry from what a job makes (its run's artifacts, an autologged model
included; a named output; a pipeline's output) or from a folder, versioned per run, listed by
status, report and `mlrun runs --model`, removed with the spec."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.e2e

WS = "ws-models"


def dp100(folder: Path, data_version: str = "") -> Path:
    """Lab 10's flow: a data asset, a job that trains on it with autologging, and the model it
    logged registered from the job's run."""
    (folder / "data").mkdir(exist_ok=True)
    if not (folder / "data" / "diabetes.csv").exists():
        shutil.copy(ROOT / "training" / "data" / "diabetes.csv", folder / "data")
    spec = folder / "lab.yaml"
    spec.write_text(
        f"""\
name: dp100-models
workspace: {{name: {WS}}}
data:
  diabetes-data:
    type: uri_file
    path: data/diabetes.csv{data_version}
models:
  diabetes-model:
    type: mlflow_model
    path: ${{{{jobs.train.artifacts}}}}/model
    description: The autologged classifier
    tags: {{course: dp100}}
jobs:
  train:
    code: {ROOT / "training"}
    command: python train-model-autolog.py --training_data ${{{{inputs.training_data}}}}
    inputs:
      training_data: {{type: uri_file, path: "azureml:diabetes-data@latest"}}
    experiment_name: diabetes-training
"""
    )
    return spec


def tracking(folder: Path) -> str:
    return f"sqlite:///{folder}/.mlrun/local/{WS}/mlflow.db"


def versions(folder: Path, name: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking(folder))
    return sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))


def latest_run(folder: Path, job: str, lab: str = "dp100-models") -> str:
    state = json.loads((folder / ".mlrun" / f"{lab}.local.json").read_text())
    return state["jobs"][job]["runs"][-1]["id"]


def predict(folder: Path, uri: str) -> list:
    """The registered model loaded back as a user would (a process of its own, the workspace's
    tracking URI) and asked about the first 20 patients."""
    script = (
        "import json, sys, mlflow, pandas as pd\n"
        "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "rows = pd.read_csv(sys.argv[2]).drop(columns=['PatientID', 'Diabetic']).head(20)\n"
        "print(json.dumps([int(p) for p in model.predict(rows)]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, uri, str(folder / "data" / "diabetes.csv")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "MLFLOW_TRACKING_URI": tracking(folder)},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_an_autologged_model_is_registered_from_its_job_and_loads_back(mlrun, tmp_path):
    spec = dp100(tmp_path)
    code, out, err = mlrun("plan", spec, cwd=tmp_path)
    assert code == 0, err
    assert (
        "+ model.diabetes-model         mlflow_model v1 from job.train's new run, once it "
        "completes" in out
    )
    code, out, err = mlrun("apply", "-y", spec, cwd=tmp_path)
    assert code == 0, out + err
    run1 = latest_run(tmp_path, "train")
    assert (
        f"model.diabetes-model  created  mlflow_model v1 from job.train artifacts/model "
        f"(run {run1[:7]})" in out
    )
    [v1] = versions(tmp_path, "diabetes-model")
    assert (str(v1.version), v1.run_id, v1.tags["course"]) == ("1", run1, "dp100")
    assert v1.description == "The autologged classifier"
    guesses = predict(tmp_path, "models:/diabetes-model/1")
    assert len(guesses) == 20 and set(guesses) <= {0, 1} and len(set(guesses)) == 2

    code, out, _ = mlrun("plan", spec, cwd=tmp_path)
    assert (code, out.splitlines()[-1]) == (0, "No changes. Everything is up to date.")
    code, out, _ = mlrun("status", spec, cwd=tmp_path)
    assert (
        "  model.diabetes-model             mlflow_model v1 from job.train artifacts/model "
        f"(run {run1[:7]})" in out
    )
    code, out, _ = mlrun("report", "--format", "json", spec, cwd=tmp_path)
    [model] = json.loads(out)["models"]
    assert (model["version"], model["run_id"], model["uri"]) == (
        "1",
        run1,
        "models:/diabetes-model/1",
    )

    # an explicit data version whose content changes is refused; without one: v2, a new run and
    # a new model version from it
    dp100(tmp_path, "\n    version: 1")
    assert mlrun("plan", spec, cwd=tmp_path)[0] == 0
    csv = tmp_path / "data" / "diabetes.csv"
    csv.write_text(csv.read_text() + "1999999,1,100,70,20,80,30.5,0.5,40,1\n")
    code, out, err = mlrun("plan", spec, cwd=tmp_path)
    assert code == 1 and "data.diabetes-data: version 1 was registered with other content" in err
    dp100(tmp_path)
    code, out, err = mlrun("plan", spec, cwd=tmp_path)
    assert code == 0, err
    assert "+ data.diabetes-data           uri_file v2 (10,001 rows" in out
    assert "> job.train                    inputs changed since run" in out
    assert "mlflow_model v2 from job.train's new run, once it completes; v1 is kept" in out
    code, out, err = mlrun("apply", "-y", spec, cwd=tmp_path)
    assert code == 0, out + err
    run2 = latest_run(tmp_path, "train")
    assert [(str(v.version), v.run_id) for v in versions(tmp_path, "diabetes-model")] == [
        ("1", run1),
        ("2", run2),
    ]
    assert len(predict(tmp_path, "models:/diabetes-model/2")) == 20
    code, out, err = mlrun("runs", spec, "--model", "diabetes-model", "--json", cwd=tmp_path)
    assert code == 0, err
    made = {r["run_id"]: r["model_versions"] for r in json.loads(out)["runs"]}
    assert made == {run1: ["1"], run2: ["2"]}

    # out of the spec: its versions are removed from the registry
    spec.write_text(
        spec.read_text().split("models:")[0] + "jobs:" + spec.read_text().split("jobs:")[1]
    )
    code, out, err = mlrun("apply", "-y", spec, cwd=tmp_path)
    assert code == 0, out + err
    assert "model.diabetes-model  destroyed" in out
    assert versions(tmp_path, "diabetes-model") == []
    assert mlrun("destroy", "-y", spec, cwd=tmp_path)[0] == 0


MODEL_FILE = """\
$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json
name: local-model
type: mlflow_model
path: model
description: A model folder registered as it is
"""


def sources(folder: Path) -> Path:
    """Models from a job's named output, a file in a pipeline's output, a folder given inline,
    and an unmodified az ml model file."""
    (folder / "model").mkdir(exist_ok=True)
    (folder / "model" / "MLmodel").write_text("flavors: {}\n")
    (folder / "model.yml").write_text(MODEL_FILE)
    spec = folder / "lab.yaml"
    spec.write_text(
        f"""\
name: sources
workspace: {{name: {WS}}}
models:
  scores: {{path: "${{{{jobs.score.outputs.out}}}}", tags: {{kind: scores}}}}
  summary: {{path: "${{{{jobs.pipe.outputs.report}}}}/summary.txt"}}
  folder: {{type: custom_model, path: model}}
  from-file: {{file: model.yml}}
jobs:
  score:
    command: echo 42 > ${{{{outputs.out}}}}/score.txt
    outputs: {{out: {{type: uri_folder}}}}
  pipe:
    type: pipeline
    outputs: {{report: {{type: uri_folder}}}}
    jobs:
      write:
        command: echo done > ${{{{outputs.o}}}}/summary.txt
        outputs: {{o: "${{{{parent.outputs.report}}}}"}}
"""
    )
    return spec


def path_of(version) -> Path:
    from urllib.parse import unquote, urlparse

    return Path(unquote(urlparse(version.source).path))


def test_models_from_outputs_pipelines_folders_and_files_are_registered_once(mlrun, tmp_path):
    spec = sources(tmp_path)
    code, out, err = mlrun("apply", "-y", spec, cwd=tmp_path)
    assert code == 0, out + err
    [scores] = versions(tmp_path, "scores")
    assert (path_of(scores) / "score.txt").read_text() == "42\n"
    assert scores.run_id == latest_run(tmp_path, "score", "sources")
    assert scores.tags["kind"] == "scores"
    [summary] = versions(tmp_path, "summary")
    assert path_of(summary).read_text() == "done\n"
    assert summary.run_id == latest_run(tmp_path, "pipe", "sources")  # the pipeline's own run
    [folder] = versions(tmp_path, "folder")
    copy = path_of(folder)
    assert (copy / "MLmodel").read_text() == "flavors: {}\n"
    assert (tmp_path / ".mlrun" / "local" / WS / "models") in copy.parents  # a copy, kept
    [from_file] = versions(tmp_path, "from-file")
    assert from_file.description == "A model folder registered as it is"
    assert from_file.tags["mlrun.type"] == "mlflow_model"

    # mlrun stopped after registering, before recording: the next apply finds the version
    state_file = tmp_path / ".mlrun" / "sources.local.json"
    state = json.loads(state_file.read_text())
    del state["resources"]["model.scores"]
    state_file.write_text(json.dumps(state))
    code, out, _ = mlrun("plan", spec, cwd=tmp_path)
    assert f"+ model.scores                 custom_model v1 from run {scores.run_id[:7]}" in out
    code, out, err = mlrun("apply", "-y", spec, cwd=tmp_path)
    assert code == 0, out + err
    assert [str(v.version) for v in versions(tmp_path, "scores")] == ["1"]
    code, out, _ = mlrun("plan", spec, cwd=tmp_path)
    assert out.splitlines()[-1] == "No changes. Everything is up to date."

    # the folder edited: a new version of it, the first one as it was; a forced run: a new
    # version of what it made
    (tmp_path / "model" / "MLmodel").write_text("flavors: {python_function: {}}\n")
    code, out, _ = mlrun("plan", "--force", "score", spec, cwd=tmp_path)
    assert (
        "+ model.folder                 custom_model v2 from model (new version: its content "
        "changed; v1 is kept)" in out
    )
    assert "+ model.scores                 custom_model v2 from job.score's new run" in out
    assert "model.summary" not in out  # its job is up to date
    code, out, err = mlrun("apply", "-y", "--force", "score", spec, cwd=tmp_path)
    assert code == 0, out + err
    assert (copy / "MLmodel").read_text() == "flavors: {}\n"
    assert [str(v.version) for v in versions(tmp_path, "folder")] == ["1", "2"]
    assert [str(v.version) for v in versions(tmp_path, "scores")] == ["1", "2"]
    code, out, _ = mlrun("runs", spec, "--model", "scores", cwd=tmp_path)
    assert code == 0 and "MODEL" in out.splitlines()[0] and "2 runs in sources" in out
    code, _, err = mlrun("runs", spec, "--model", "folder", cwd=tmp_path)
    assert code == 1 and "no model named 'folder' made by a job" in err
    assert mlrun("destroy", "-y", spec, cwd=tmp_path)[0] == 0


def test_a_model_whose_job_fails_is_not_registered_and_an_explicit_version_is_kept(mlrun, tmp_path):
    spec = tmp_path / "lab.yaml"
    body = """\
name: failing
workspace: {name: ws-failing}
models:
  scores: {path: "${{jobs.score.outputs.out}}", version: 3}
jobs:
  score:
    command: echo 1 > ${{outputs.out}}/s.txt && exit EXIT
    outputs: {out: {type: uri_folder}}
"""
    spec.write_text(body.replace("EXIT", "1"))
    code, out, _ = mlrun("apply", "-y", spec, cwd=tmp_path)
    assert code != 0
    assert "model.scores  skipped  job.score did not complete" in out
    code, out, _ = mlrun("plan", spec, cwd=tmp_path)
    assert "+ model.scores                 custom_model v3 from job.score's new run" in out
    spec.write_text(body.replace("EXIT", "0"))
    code, out, err = mlrun("apply", "-y", spec, cwd=tmp_path)
    assert code == 0, out + err
    code, out, _ = mlrun("status", spec, cwd=tmp_path)
    assert "model.scores                     custom_model v3 from job.score outputs/out" in out
    code, out, err = mlrun("plan", "--force", "score", spec, cwd=tmp_path)
    assert code == 1
    assert "model.scores: version 3 is registered from run" in err
    assert "versions are immutable" in err
