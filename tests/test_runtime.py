"""The local runtime as Azure ML has it (issue 27): `type: uri_file` outputs are files, a step's
`environment: file:` is read, a job on a compute instance finds the workspace's config.json, a
model logged without start_run is the job's, registered models are job and step inputs, and
status and destroy need only the state. One lab, applied twice, shared by the module."""

from __future__ import annotations

import json
import textwrap
import urllib.parse
from pathlib import Path

import pytest
from conftest import mlflow_client, run_mlrun

pytestmark = pytest.mark.e2e

LOG_MODEL = (
    "import mlflow, mlflow.pyfunc\n"
    "class Echo(mlflow.pyfunc.PythonModel):\n"
    "    def predict(self, context, model_input):\n"
    "        return model_input\n"
    "mlflow.pyfunc.log_model(name='model', python_model=Echo())  # no start_run, as lab 10 does\n"
)

LAB = """\
name: rt
workspace: {name: ws-rt, resource_group: rg-rt}
computes:
  ci-rt: {type: computeinstance}
models:
  echo: {type: custom_model, path: "${{jobs.log-model.artifacts}}/model"}
jobs:
  log-model:
    code: src
    command: python log_model.py
  file-out:
    command: echo hi > ${{outputs.out}}
    outputs:
      out: {type: uri_file, path: "azureml://datastores/workspaceblobstore/paths/${{name}}/greeting.txt"}
      folder: {type: uri_folder}
  on-instance:
    compute: ci-rt
    command: cat config.json
  pipe:
    type: pipeline
    outputs:
      final: {type: uri_file}
    jobs:
      write:
        command: echo hello > ${{outputs.greeting}}
        outputs: {greeting: "${{parent.outputs.final}}"}
      read:
        command: cat ${{inputs.g}}
        inputs: {g: "${{parent.jobs.write.outputs.greeting}}"}
"""

USE_MODEL = """\
  use-model:
    command: ls ${{inputs.m}}
    inputs:
      m: {type: custom_model, path: "azureml:echo@latest"}
  pipe-model:
    type: pipeline
    jobs:
      look:
        command: ls ${{inputs.m}}
        inputs: {m: {type: custom_model, path: "azureml:echo:1"}}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("runtime")
    (root / "src").mkdir()
    (root / "src" / "log_model.py").write_text(LOG_MODEL)
    spec = root / "lab.yaml"
    spec.write_text(LAB)
    first = run_mlrun("apply", "-y", spec, cwd=root, check=0, timeout=300)
    spec.write_text(LAB + USE_MODEL)  # the registered model, as the input of a job and a step
    second = run_mlrun("apply", "-y", spec, cwd=root, check=0, timeout=300)
    return {"root": root, "spec": spec, "first": first, "second": second}


def _runs(lab) -> dict:
    state = json.loads((lab["root"] / ".mlrun" / "rt.local.json").read_text())
    return {name: entry["runs"][-1] for name, entry in state["jobs"].items()}


def test_a_uri_file_output_is_a_file_logged_under_the_outputs_name(lab):
    run = _runs(lab)["file-out"]
    written = Path(run["run_dir"]) / "outputs" / "out" / "greeting.txt"
    assert written.read_text() == "hi\n"  # the path's last part names the file
    assert (Path(run["run_dir"]) / "outputs" / "folder").is_dir()  # a uri_folder stays a folder
    client = mlflow_client(lab["root"], "ws-rt")
    assert [a.path for a in client.list_artifacts(run["id"], "out")] == ["out/greeting.txt"]


def test_a_pipeline_steps_uri_file_output_is_handed_on_and_logged_on_the_pipeline(lab):
    spec = lab["spec"]
    assert run_mlrun("logs", spec, "pipe/read", cwd=lab["root"], check=0).stdout == "hello\n"
    client = mlflow_client(lab["root"], "ws-rt")
    parent = _runs(lab)["pipe"]["id"]
    assert [a.path for a in client.list_artifacts(parent, "final")] == [
        "final/greeting"
    ]  # the step output names the file


def test_a_job_on_a_compute_instance_finds_the_workspaces_config_json(lab):
    out = run_mlrun("logs", lab["spec"], "on-instance", cwd=lab["root"], check=0).stdout
    config = json.loads(out)
    assert config["resource_group"] == "rg-rt" and config["workspace_name"] == "ws-rt"
    assert set(config) == {"subscription_id", "resource_group", "workspace_name"}


def test_a_model_logged_without_start_run_is_the_jobs_and_registers_linked_to_its_run(lab):
    client = mlflow_client(lab["root"], "ws-rt")
    (version,) = client.search_model_versions("name = 'echo'")
    assert version.run_id == _runs(lab)["log-model"]["id"]
    uri = client.get_model_version_download_uri("echo", version.version)
    assert (Path(urllib.parse.urlparse(uri).path) / "MLmodel").is_file()


def test_a_registered_model_is_the_input_of_a_job_and_of_a_step(lab):
    for job in ("use-model", "pipe-model/look"):
        listing = run_mlrun("logs", lab["spec"], job, cwd=lab["root"], check=0).stdout.split()
        assert "MLmodel" in listing and "python_model.pkl" in listing, (job, listing)


def test_a_model_input_with_no_such_version_stops_the_job_with_a_plain_message(tmp_path):
    (tmp_path / "lab.yaml").write_text(
        "name: nomodel\nworkspace: {name: ws-nomodel}\njobs:\n"
        "  use: {command: ls, inputs: {m: {type: mlflow_model, path: 'azureml:nope@latest'}}}\n"
    )
    assert run_mlrun("validate", "lab.yaml", cwd=tmp_path, check=0).stderr == ""
    proc = run_mlrun("apply", "-y", "lab.yaml", cwd=tmp_path, check=1)
    assert (
        "job use: input 'm': model nope has no version in the workspace's registry" in proc.stderr
    )


def test_a_steps_environment_file_is_read_as_a_jobs_is(tmp_path):
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "env.yml").write_text("name: docker-env\nbuild: {path: .}\n")
    (tmp_path / "lab.yaml").write_text(
        textwrap.dedent(
            """\
            name: envfile
            workspace: {name: ws-envfile}
            jobs:
              pipe:
                type: pipeline
                jobs:
                  one: {command: echo one, environment: "file:./env/env.yml"}
            """
        )
    )
    proc = run_mlrun("plan", "lab.yaml", cwd=tmp_path, check=1)
    assert "environment file:./env/env.yml is built from a Docker context" in proc.stderr


def test_status_and_destroy_need_only_the_state_not_what_plan_checks(lab):
    root, spec = lab["root"], lab["spec"]
    spec.write_text(
        spec.read_text()
        + "  remote-in:\n    command: ls\n"
        + "    inputs: {d: {type: uri_folder, path: 'https://example.com/data'}}\n"
    )
    assert (
        "is remote, which the local target cannot read"
        in run_mlrun("plan", spec, cwd=root, check=1).stderr
    )
    run_mlrun("status", spec, cwd=root, check=0)
    run_mlrun("destroy", "-y", spec, cwd=root, check=0)
    assert not (root / ".mlrun" / "local" / "ws-rt").exists()
