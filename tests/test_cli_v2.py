"""Unmodified Azure ML CLI v2 job files (of our own making, in tests/specs/cli_v2/) run through
`file:` includes on the local target, with a real MLflow store."""

import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, mlflow_client, run_mlrun

from runner.backends import envs
from runner.environments import find_python

pytestmark = pytest.mark.e2e
FILES = Path(__file__).parent / "specs" / "cli_v2"


@pytest.fixture
def lab(tmp_path):
    shutil.copytree(FILES, tmp_path / "jobs")
    return tmp_path


def write(lab, body):
    (lab / "lab.yaml").write_text(textwrap.dedent(body))
    return "lab.yaml"


def test_literals_outputs_image_env_vars_and_no_compute(lab):
    spec = write(
        lab,
        """\
        name: cli
        workspace: {name: ws-cli}
        jobs:
          show: {file: jobs/literals-outputs.yml}
        """,
    )
    plan = run_mlrun("plan", spec, cwd=lab, check=0)
    empty = envs.request(find_python(None), (), False)  # an image alone: Python and nothing else
    state = "built" if envs.built(empty) else "not built yet: builds on apply"
    assert plan.stderr == (
        "note: environment inline image mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest "
        f"of show (Python {sys.version.split()[0]}, nothing else): {state} ({empty.folder})\n"
    )
    run_mlrun("apply", "-y", spec, cwd=lab, check=0)
    client = mlflow_client(lab, "ws-cli")
    (run,) = client.search_runs([client.get_experiment_by_name("cli-v2").experiment_id])
    assert run.info.run_name == "literals and outputs" and run.info.status == "FINISHED"
    log = run_mlrun("logs", spec, "show", cwd=lab, check=0).stdout
    assert log == "args: --rate 0.5 --label hello world | FLAG: on\n"
    files = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"result", "outputs", "logs", "user_logs"} <= files
    assert (
        Path(client.download_artifacts(run.info.run_id, "result/out.txt")).read_text()
        == "rate=0.5\n"
    )
    assert Path(client.download_artifacts(run.info.run_id, "outputs/a.txt")).read_text() == "kept\n"
    assert Path(client.download_artifacts(run.info.run_id, "logs/l.txt")).read_text() == "noted\n"


def test_mlflow_model_folder_input_and_an_azureml_compute_reference(lab):
    spec = write(
        lab,
        """\
        name: cli
        workspace: {name: ws-cli}
        computes:
          cpu-cluster: {type: amlcompute, max_instances: 1}
        jobs:
          model: {file: jobs/model-input.yml}
        """,
    )
    run_mlrun("apply", "-y", spec, cwd=lab, check=0)
    assert run_mlrun("logs", spec, "model", cwd=lab, check=0).stdout == "MLmodel\n"


def test_remote_input_warns_in_validate_fails_a_local_plan_and_runs_with_a_stand_in(lab):
    body = """\
        name: cli
        workspace: {name: ws-cli}
        jobs:
          count: {file: jobs/remote-input.yml}
        """
    spec = write(lab, body)
    proc = run_mlrun("validate", spec, cwd=lab, check=0)
    message = (
        "jobs/remote-input.yml:8:11: {severity}: $.jobs.count.inputs.data.path: "
        "'azureml://datastores/workspaceblobstore/paths/diabetes/diabetes.csv' is not in "
        "datastore workspaceblobstore, which is the folder "
        ".mlrun/local/ws-cli/datastores/workspaceblobstore here (put it there, or map "
        "workspaceblobstore to a folder in targets.local.datastores)\n"
    )
    assert proc.stderr == message.format(severity="warning")
    proc = run_mlrun("plan", spec, cwd=lab, check=1)
    assert proc.stderr == message.format(severity="error")
    assert not (lab / ".mlrun").exists()
    data = ROOT / "training" / "data" / "diabetes.csv"
    spec = write(
        lab,
        body.rstrip(" ")
        + f"""\
        targets:
          local:
            inputs:
              azureml://datastores/workspaceblobstore/paths/diabetes/diabetes.csv: {data}
        """,
    )
    run_mlrun("apply", "-y", spec, cwd=lab, check=0)
    assert run_mlrun("logs", spec, "count", cwd=lab, check=0).stdout.strip() == "10001"
