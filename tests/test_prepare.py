"""runner/backends/prepare.py: a local run's folder as Azure ML prepares a job, before anything
starts: the command with its inputs and outputs, the working copy, the variables Azure ML sets,
and the configuration a sweep's or pipeline's controller is handed."""

import json
import textwrap
from pathlib import Path

import pytest

from runner import fingerprint, spec as spec_mod
from runner.backends import contract
from runner.backends.prepare import Preparer, step_secrets

SPEC = """\
name: prep
workspace: {name: ws-prep, resource_group: rg-prep}
targets: {azure: {subscription_id: 00000000-0000-0000-0000-000000000001}}
computes:
  ci-prep: {type: computeinstance, size: STANDARD_DS11_V2}
  cluster: {type: amlcompute, max_instances: 3}
jobs:
  train:
    command: >-
      python train.py --data ${{inputs.data}} --rate ${{inputs.rate}}
      --out ${{outputs.model}}
    code: src
    compute: ci-prep
    inputs:
      data: {type: uri_file, path: data.csv}
      rate: 0.5
    outputs: {model: {type: uri_folder}, score: {type: uri_file}}
    environment_variables: {MODE: fast}
  tune:
    type: sweep
    compute: cluster
    trial:
      command: python train.py --reg ${{search_space.reg}}
      code: src
    search_space: {reg: {type: choice, values: [0.1, 1.0]}}
    sampling_algorithm: grid
    objective: {primary_metric: AUC, goal: maximize}
    limits: {max_total_trials: 2, max_concurrent_trials: 5}
  pipe:
    type: pipeline
    jobs:
      first:
        command: echo $TOKEN > ${{outputs.o}}/t
        outputs: {o: {type: uri_folder}}
        environment_variables: {TOKEN: '${{env.PREP_TOKEN}}'}
      second:
        command: cat ${{inputs.x}}/t
        compute: cluster
        inputs: {x: '${{parent.jobs.first.outputs.o}}'}
"""


@pytest.fixture
def lab(tmp_path, monkeypatch):
    monkeypatch.setenv("PREP_TOKEN", "s3cret")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("print('hi')\n")
    (tmp_path / "data.csv").write_text("a\n1\n")
    path = tmp_path / "lab.yaml"
    path.write_text(textwrap.dedent(SPEC))
    spec = spec_mod.load(path)

    def no_models(model, what):
        raise AssertionError(f"{what}: no model lookup expected")

    root = tmp_path / "ws"
    return spec, Preparer(spec, root, f"sqlite:///{root / 'mlflow.db'}", no_models), tmp_path


def test_a_jobs_command_has_its_inputs_and_outputs(lab):
    spec, prep, tmp = lab
    run_dir = tmp / "run"
    command = prep.command(spec.jobs["train"], run_dir)
    assert command == (
        f"python train.py --data {tmp / 'data.csv'} --rate 0.5 --out {run_dir / 'outputs/model'}"
    )
    assert (run_dir / "outputs" / "model").is_dir()  # made before the command, as on Azure
    assert (run_dir / "outputs" / "score").is_dir()  # a uri_file output: its folder


def test_the_variables_azure_ml_sets_and_the_jobs_own(lab):
    spec, prep, tmp = lab
    run_dir = tmp / "run"
    env = prep.env(spec.jobs["train"], {"id": "r1", "experiment_id": "7"}, run_dir)
    assert env["MODE"] == "fast"
    assert env["MLFLOW_RUN_ID"] == env["AZUREML_RUN_ID"] == "r1"
    assert env["MLFLOW_EXPERIMENT_ID"] == "7" and env["MLFLOW_EXPERIMENT_NAME"] == "prep"
    assert env["MLFLOW_TRACKING_URI"].startswith("sqlite:///")
    assert env["AZUREML_ARM_WORKSPACE_NAME"] == "ws-prep"
    assert env["AZUREML_ARM_RESOURCEGROUP"] == "rg-prep"
    assert env["AZURE_ML_INPUT_data"] == str(tmp / "data.csv")
    assert env["AZURE_ML_OUTPUT_model"] == str(run_dir / "outputs" / "model")
    assert "AZURE_ML_INPUT_rate" not in env  # a literal is not a path


def test_the_working_copy_and_an_instances_config_json(lab):
    spec, prep, tmp = lab
    work = tmp / "run" / "work"
    prep.copy_code(spec.jobs["train"].code, work)
    prep.workspace_config("ci-prep", work)
    assert (work / "train.py").read_text() == "print('hi')\n"
    assert json.loads((work / "config.json").read_text()) == {
        "subscription_id": "00000000-0000-0000-0000-000000000001",
        "resource_group": "rg-prep",
        "workspace_name": "ws-prep",
    }
    other = tmp / "other"
    prep.workspace_config("cluster", other)  # a cluster's nodes have none
    assert not other.exists()


def test_a_sweeps_controller_is_handed_its_trials_and_slots(lab):
    spec, prep, tmp = lab
    command, config = prep.sweep(spec.jobs["tune"], tmp / "run")
    assert "sweep_controller" in command
    assert isinstance(config, contract.SweepConfig)
    assert config.trials == [{"reg": 0.1}, {"reg": 1.0}] and config.algorithm == "grid"
    assert config.concurrency == 3  # max_concurrent_trials 5, but the cluster has 3 nodes
    assert config.tags["mlrun.job"] == "tune"
    assert config.base is None  # set when its environment is built, before the handover


def test_a_pipelines_controller_is_handed_the_plans_fingerprints_and_no_secret(lab):
    spec, prep, tmp = lab
    job = spec.jobs["pipe"]
    planned = fingerprint.pipeline(job)["steps"]
    record = {"fingerprint": "f", "parts": {}, "compute": None, "steps": planned}
    command, config = prep.pipeline(job, tmp / "run", record)
    assert "pipeline_controller" in command
    first, second = config.steps["first"], config.steps["second"]
    assert first.fingerprint == planned["first"]["fingerprint"]
    assert second.upstream == ["first"]
    assert second.inputs["x"] == contract.StepInput("step", ["first", "o"])
    assert config.capacity == {"": config.capacity[""], "cluster": 3}
    secrets = step_secrets(job)
    assert secrets == {"first": {"TOKEN": ("MLRUN_STEP_SECRET_0", "s3cret")}}
    assert "TOKEN" not in first.env_vars and first.secret_env == {"TOKEN": "MLRUN_STEP_SECRET_0"}
    contract.write(tmp / "pipeline.json", config)
    assert "s3cret" not in Path(tmp / "pipeline.json").read_text()  # handed through variables
