"""Sweep jobs on the azure target: the SDK's own SweepJob, submitted over HTTPS to the emulator."""

import json
import textwrap

import pytest
from azure_fixtures import run_sdk
from test_azure import az

pytestmark = pytest.mark.azure

TRAIN = """\
import argparse

import mlflow

p = argparse.ArgumentParser()
p.add_argument("--a", type=float)
p.add_argument("--b", type=float)
args = p.parse_args()
mlflow.log_metric("score", args.a * 10 + args.b)
"""


def sweep_lab(folder, sampling):
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "train.py").write_text(TRAIN)
    (folder / "lab.yaml").write_text(
        textwrap.dedent(f"""\
        name: tune
        workspace: {{name: ws-sweep, resource_group: rg-sweep, location: eastus}}
        computes:
          cluster: {{type: amlcompute, size: STANDARD_DS11_V2, max_instances: 2}}
        jobs:
          tune:
            type: sweep
            compute: cluster
            trial:
              code: src
              command: python train.py --a ${{{{search_space.a}}}} --b ${{{{search_space.b}}}}
              environment: azureml:AzureML-sklearn-1.5@latest
            search_space:
              a: {{type: choice, values: [1, 2, 3]}}
              b: {{type: uniform, min_value: 0, max_value: 1}}
            sampling_algorithm: {sampling}
            objective: {{goal: maximize, primary_metric: score}}
            limits: {{max_total_trials: 4, max_concurrent_trials: 2, trial_timeout: 300}}
            early_termination: {{type: bandit, slack_factor: 0.1, evaluation_interval: 1}}
        targets:
          azure: {{subscription_id: "${{{{env.AZURE_SUBSCRIPTION_ID}}}}"}}
        """)
    )
    return folder / "lab.yaml"


def test_a_sweep_submits_the_sdks_sweep_job_and_reports_the_best_trial(azure_emulator, tmp_path):
    sweep_lab(tmp_path, "bayesian")
    plan = az(azure_emulator, "plan", "lab.yaml", cwd=tmp_path, check=0)
    assert "> job.tune" in plan.stdout
    assert (
        "random" not in plan.stdout + plan.stderr
    )  # Bayesian is Azure's own: nothing is substituted
    mark = azure_emulator.mark()
    apply = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=tmp_path, check=0)
    assert "job.tune" in apply.stdout and "Completed" in apply.stdout
    puts = [
        r["path"]
        for r in azure_emulator.requests(mark)
        if r["method"] == "PUT" and "/jobs/" in r["path"]
    ]
    assert len(puts) == 1  # one sweep job; its trials are Azure's to run

    state = json.loads((tmp_path / ".mlrun" / "tune.azure.json").read_text())
    name = state["jobs"]["tune"]["runs"][-1]["id"]
    # what the service stored is a sweep job the SDK reads back as one
    got = run_sdk(
        azure_emulator,
        textwrap.dedent(f"""\
        import json, os
        from azure.ai.ml import MLClient
        from azure.identity import DefaultAzureCredential
        ml = MLClient(DefaultAzureCredential(), os.environ["AZURE_SUBSCRIPTION_ID"],
                      "rg-sweep", "ws-sweep", enable_telemetry=False)
        job = ml.jobs.get("{name}")
        print(json.dumps({{"type": job.type, "algo": job.sampling_algorithm.type,
                          "space": sorted(job.search_space), "metric": job.objective.primary_metric,
                          "trials": job.limits.max_total_trials,
                          "policy": job.early_termination.type, "status": job.status}}))
        """),
    )
    assert {
        k: got[k] for k in ("type", "algo", "space", "metric", "trials", "policy", "status")
    } == {
        "type": "sweep",
        "algo": "bayesian",
        "space": ["a", "b"],
        "metric": "score",
        "trials": 4,
        "policy": "bandit",
        "status": "Completed",
    }

    report = json.loads(
        az(azure_emulator, "report", "lab.yaml", "--format", "json", cwd=tmp_path, check=0).stdout
    )
    sweep = next(j for j in report["jobs"] if j["job"] == "tune")["sweep"]
    assert len(sweep["trials"]) == 4 and all(t["status"] == "Completed" for t in sweep["trials"])
    best = max(sweep["trials"], key=lambda t: t["value"])
    assert sweep["best_trial"] == best["run_id"]
    assert (
        abs(best["value"] - (float(best["params"]["a"]) * 10 + float(best["params"]["b"]))) < 1e-9
    )

    again = az(azure_emulator, "plan", "lab.yaml", cwd=tmp_path, check=0)
    assert "> job.tune" not in again.stdout  # completed: not resubmitted
    az(azure_emulator, "destroy", "-y", "lab.yaml", cwd=tmp_path, check=0)


def test_a_grid_over_a_uniform_is_refused_before_anything_is_created(azure_emulator, tmp_path):
    """Grid sampling needs choices: mlrun says so before anything is created."""
    sweep_lab(tmp_path, "grid")
    proc = az(azure_emulator, "plan", "lab.yaml", cwd=tmp_path, check=1)
    assert "$.jobs.tune.search_space.b" in proc.stderr and "Traceback" not in proc.stderr


def test_an_unmodified_cli_v2_job_without_compute_runs_serverless(azure_emulator, tmp_path):
    """tests/specs/cli_v2/literals-outputs.yml as it is: literal inputs, an empty output block, an
    image environment, environment variables and no compute (Azure ML's serverless compute)."""
    import shutil

    from conftest import ROOT

    shutil.copytree(ROOT / "tests" / "specs" / "cli_v2", tmp_path / "cli_v2")
    (tmp_path / "lab.yaml").write_text(
        textwrap.dedent("""\
        name: interop
        workspace: {name: ws-interop, resource_group: rg-interop, location: eastus}
        jobs:
          literals: {file: cli_v2/literals-outputs.yml}
        targets:
          azure: {subscription_id: "${{env.AZURE_SUBSCRIPTION_ID}}"}
        """)
    )
    mark = azure_emulator.mark()
    apply = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=tmp_path, check=0)
    assert "job.literals" in apply.stdout and "Completed" in apply.stdout
    assert apply.stderr.strip() == ""  # nothing of the SDK's own printing
    put = next(
        r for r in azure_emulator.requests(mark) if r["method"] == "PUT" and "/jobs/" in r["path"]
    )
    assert "computes" not in put["path"]
    logs = az(azure_emulator, "logs", "lab.yaml", "literals", cwd=tmp_path, check=0)
    assert "args: --rate 0.5 --label hello world | FLAG: on" in logs.stdout
    az(azure_emulator, "destroy", "-y", "lab.yaml", cwd=tmp_path, check=0)
