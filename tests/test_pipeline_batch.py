"""Pipeline component batch deployments (pipelineComponentBatchDeployment, azureml-examples'
deploy-pipelines shape): a batch endpoint whose deployment runs a pipeline component, a prepare
step handing its output to a score step, on the local target. Apply deploys it and makes the
lab's call, a pipeline job of the component's steps run as child runs under the endpoint's name;
the next apply has nothing to do; mlrun invoke --input / --set inputs.NAME=VALUE calls it by hand
(through the spec's registered copy of the component too, whose steps are then reused); a failing
step names itself and its logs; mistakes are located errors, in the files that hold them."""

import json
from pathlib import Path

import pytest
from conftest import mlflow_client, run_mlrun

PREPARE = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: prepare
type: command
inputs:
  raw: {type: uri_folder}
outputs:
  prepared: {type: uri_folder}
code: src
environment: azureml:AzureML-sklearn-1.5@latest
command: python prepare.py ${{inputs.raw}} ${{outputs.prepared}}
"""
PREPARE_PY = """\
import pathlib, sys
raw, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for f in sorted(raw.glob("*.txt")):
    (out / f.name).write_text(" ".join(sorted(f.read_text().split(), key=int)))
    print("prepared", f.name)
"""
SCORE_PY = """\
import pathlib, sys
data, factor, out = pathlib.Path(sys.argv[1]), int(sys.argv[2]), pathlib.Path(sys.argv[3])
rows = []
for f in sorted(data.glob("*.txt")):
    numbers = [int(x) for x in f.read_text().split()]
    if any(n < 0 for n in numbers):
        sys.exit(f"cannot score {f.name}: a negative number")
    rows.append(f"{f.name},{sum(numbers) * factor}")
(out / "scores.csv").write_text("\\n".join(rows) + "\\n")
"""
SCORING = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json
type: pipeline
name: scoring
inputs:
  input_data: {type: uri_folder}
  factor: {type: integer, default: 2}
outputs:
  scores: {type: uri_folder}
jobs:
  prepare:
    type: command
    component: components/prepare.yml
    inputs:
      raw: ${{parent.inputs.input_data}}
  score:
    type: command
    component: azureml:score@latest
    inputs:
      data: ${{parent.jobs.prepare.outputs.prepared}}
      factor: ${{parent.inputs.factor}}
    outputs:
      scores: {type: uri_folder, path: '${{parent.outputs.scores}}'}
"""
DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineComponentBatchDeployment.schema.json
name: scorer
endpoint_name: numbers
type: pipeline
component: scoring.yml
settings:
  continue_on_step_failure: false
  default_compute: cpu-cluster
"""
LAB = """\
name: pcb
workspace: {name: ws-pcb}
computes:
  cpu-cluster: {type: amlcompute, max_instances: 2}
components:
  score:
    type: command
    inputs:
      data: {type: uri_folder}
      factor: {type: integer}
    outputs:
      scores: {type: uri_folder}
    code: components/src
    environment: azureml:AzureML-sklearn-1.5@latest
    command: python score.py ${{inputs.data}} ${{inputs.factor}} ${{outputs.scores}}
  scoring: {file: scoring.yml}
endpoints:
  numbers:
    type: batch
    defaults: {deployment_name: scorer}
    deployments:
      scorer: {file: deployment.yml}
      registered:
        type: pipeline
        component: azureml:scoring@latest
        settings: {default_compute: azureml:cpu-cluster}
    invoke:
      input: ./data
      inputs: {factor: 3}
"""


def write_lab(folder: Path, lab: str = LAB) -> Path:
    (folder / "components" / "src").mkdir(parents=True, exist_ok=True)
    (folder / "components" / "prepare.yml").write_text(PREPARE)
    (folder / "components" / "src" / "prepare.py").write_text(PREPARE_PY)
    (folder / "components" / "src" / "score.py").write_text(SCORE_PY)
    (folder / "scoring.yml").write_text(SCORING)
    (folder / "deployment.yml").write_text(DEPLOYMENT)
    for name, text in {"data/a.txt": "3 1 2", "data/b.txt": "10 5", "other/c.txt": "4 4"}.items():
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text(text)
    spec = folder / "lab.yaml"
    spec.write_text(lab)
    return spec


def state(folder: Path) -> dict:
    return json.loads((folder / ".mlrun" / "pcb.local.json").read_text())


@pytest.fixture(scope="module")
def called(tmp_path_factory):
    """The lab applied once for the module: deployed, and its own call made."""
    folder = tmp_path_factory.mktemp("pcb")
    spec = write_lab(folder)
    proc = run_mlrun("apply", "-y", spec, cwd=folder, check=0)
    yield {"folder": folder, "spec": spec, "apply": proc}
    run_mlrun("destroy", "-y", spec, cwd=folder)


@pytest.mark.e2e
def test_apply_runs_the_component_as_a_pipeline_job_under_the_endpoints_name(called):
    out, folder = called["apply"].stdout, called["folder"]
    assert (
        "+ deployment.numbers/scorer      pipeline component scoring.yml on cpu-cluster: 2 steps "
        "(prepare, score)"
    ) in out
    assert (
        "+ deployment.numbers/registered  pipeline component azureml:scoring@latest on "
        "cpu-cluster: 2 steps (prepare, score)"
    ) in out
    assert "> invoke.numbers                 input_data=./data, factor=3 -> scorer (once" in out
    call = state(folder)["resources"]["invoke.numbers"]["details"]
    scores = Path(call["outputs"]["scores"])
    assert f"invoke.numbers  called  run {call['run'][:7]}: output scores {scores}" in out
    # the prepare step sorted each file, the score step summed it times the call's factor
    assert (scores / "scores.csv").read_text() == "a.txt,18\nb.txt,45\n"
    (run,) = state(folder)["jobs"]["numbers"]["runs"]
    assert {s: r["status"] for s, r in run["steps"].items()} == {
        "prepare": "Completed",
        "score": "Completed",
    }
    client = mlflow_client(folder, "ws-pcb")
    experiment = client.get_experiment_by_name("numbers")  # the endpoint's, as Azure's calls
    runs = client.search_runs([experiment.experiment_id])
    steps = {r.data.tags["mlrun.step"]: r for r in runs if "mlrun.step" in r.data.tags}
    assert sorted(steps) == ["prepare", "score"]
    assert {r.data.tags["mlflow.parentRunId"] for r in steps.values()} == {call["run"]}
    logs = run_mlrun("logs", called["spec"], "numbers/prepare", cwd=folder, check=0).stdout
    assert logs.splitlines() == ["prepared a.txt", "prepared b.txt"]


@pytest.mark.e2e
def test_the_next_apply_makes_no_call_again(called):
    folder, spec = called["folder"], called["spec"]
    assert run_mlrun("plan", spec, cwd=folder, check=0).stdout == (
        "No changes. Everything is up to date.\n"
    )
    run_mlrun("apply", "-y", spec, cwd=folder, check=0)
    assert len(state(folder)["jobs"]["numbers"]["runs"]) == 1
    status = run_mlrun("status", spec, cwd=folder, check=0).stdout
    assert (
        "deployment.numbers/scorer        pipeline component scoring.yml on cpu-cluster" in status
    )


@pytest.mark.e2e
def test_mlrun_invoke_calls_it_by_hand_with_an_input_and_set_inputs(called):
    folder, spec = called["folder"], called["spec"]
    before = state(folder)["resources"]["invoke.numbers"]
    proc = run_mlrun(
        "invoke", spec, "numbers", "--input", "other", "--set", "inputs.factor=10", cwd=folder
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "invoke.numbers  calling  input_data=other, factor=10 -> scorer"
    assert Path(lines[-1]).name == "scores.csv"
    assert Path(lines[-1]).read_text() == "c.txt,80\n"
    assert state(folder)["resources"]["invoke.numbers"] == before  # not the lab's call
    # the spec's registered copy of the component: the same steps on the same data, reused
    proc = run_mlrun(
        "invoke", spec, "numbers", "--deployment", "registered", "--input", "data", cwd=folder
    )
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.splitlines()[-1]).read_text() == "a.txt,12\nb.txt,30\n"  # factor 2
    run = state(folder)["jobs"]["numbers"]["runs"][-1]
    assert run["steps"]["prepare"]["status"] == "Reused"
    proc = run_mlrun("invoke", spec, "numbers", "--set", "inputs.fator=1", cwd=folder, check=1)
    assert proc.stderr == (
        "error: endpoint numbers: --set inputs.fator: component scoring.yml has no input "
        "'fator' (did you mean 'factor'? inputs: factor, input_data); the call gives no value "
        "for input 'input_data' of scoring.yml\n"
    )


@pytest.mark.e2e
def test_a_failing_step_is_named_with_its_logs(called):
    folder, spec = called["folder"], called["spec"]
    bad = folder / "bad"
    bad.mkdir()
    (bad / "d.txt").write_text("-1 5")
    proc = run_mlrun("invoke", spec, "numbers", "--input", "bad", cwd=folder, check=1)
    run = state(folder)["jobs"]["numbers"]["runs"][-1]
    assert proc.stderr == (
        f"error: invoke.numbers: the pipeline job did not complete (run {run['id'][:7]}: step "
        f"score failed (exit code 1)); see mlrun logs {spec} numbers/score\n"
    )
    logs = run_mlrun("logs", spec, "numbers/score", cwd=folder, check=0).stdout
    assert logs == "cannot score d.txt: a negative number\n"
    assert run["steps"]["prepare"]["status"] == "Completed"


BAD_SCORING = """\
type: pipeline
inputs:
  input_data: {type: uri_folder}
  more_data: {type: uri_folder}
jobs:
  prepare:
    component: components/prepare.yml
    inputs:
      raw: ${{parent.inputs.nope}}
"""
BAD_LAB = """\
name: pcb
workspace: {name: ws-pcb}
computes:
  cpu-cluster: {type: amlcompute, max_instances: 2}
components:
  prepare: {file: components/prepare.yml}
  score:
    type: command
    inputs: {data: {type: uri_folder}, factor: {type: integer}}
    outputs: {scores: {type: uri_folder}}
    command: python score.py ${{inputs.data}} ${{inputs.factor}} ${{outputs.scores}}
  scoring: {file: scoring.yml}
jobs:
  nested:
    type: pipeline
    jobs:
      inner: {component: azureml:scoring@latest}
endpoints:
  numbers:
    type: batch
    deployments:
      scorer:
        type: pipeline
        component: bad-scoring.yml
        model: azureml:m@latest
        settings: {default_compute: cpu-clustr, mini_batch_size: 2}
      command:
        type: pipeline
        component: azureml:prepare@latest
        settings: {default_compute: cpu-cluster}
      from-job: {type: pipeline, job_definition: azureml:some-job}
    invoke:
      input: ./data
      inputs: {factr: 3}
"""


def test_mistakes_are_located_errors(tmp_path):
    spec = write_lab(tmp_path, BAD_LAB)
    (tmp_path / "bad-scoring.yml").write_text(BAD_SCORING)
    proc = run_mlrun("validate", spec, cwd=tmp_path, check=1)
    at = "$.endpoints.numbers"
    assert proc.stderr.splitlines() == [
        "bad-scoring.yml:9:12: error: $.endpoints.numbers.deployments.scorer.component.jobs."
        "prepare.inputs.raw: '${{parent.inputs.nope}}': the pipeline has no input 'nope' "
        "(inputs: input_data, more_data)",
        "lab.yaml:17:7: error: $.jobs.nested.jobs.inner: missing required input 'input_data' of "
        "the component",
        f"lab.yaml:25:9: error: {at}.deployments.scorer.model: model is a field of model batch "
        "deployments, not of a pipeline deployment",
        f"lab.yaml:26:37: error: {at}.deployments.scorer.settings.default_compute: 'cpu-clustr' "
        "is not a compute of this spec (did you mean 'cpu-cluster'? defined: cpu-cluster)",
        f"lab.yaml:26:49: error: {at}.deployments.scorer.settings.mini_batch_size: "
        "mini_batch_size is a setting of model batch deployments, not of a pipeline deployment "
        "(settings: default_compute, default_datastore, continue_on_step_failure, force_rerun)",
        f"lab.yaml:29:20: error: {at}.deployments.command.component: azureml:prepare@latest is "
        "a command component: a pipeline deployment runs a pipeline component (type: pipeline, "
        "its steps under jobs:)",
        f"lab.yaml:31:7: error: {at}.deployments.from-job: a pipeline deployment needs a "
        "component: component: FILE.yml or azureml:NAME@latest",
        f"lab.yaml:31:7: error: {at}.deployments.from-job: a pipeline deployment needs a "
        "compute: settings: {default_compute: NAME}",
        f"lab.yaml:31:34: error: {at}.deployments.from-job.job_definition: a deployment made "
        "from a pipeline job is not run by mlrun: give the pipeline component as component:",
        f"lab.yaml:33:14: error: {at}.invoke.input: component bad-scoring.yml has 2 uri inputs "
        "(input_data, more_data): name the input to give under inputs",
        f"lab.yaml:34:16: error: {at}.invoke.inputs.factr: component bad-scoring.yml has no "
        "input 'factr' (inputs: input_data, more_data)",
        "lab.yaml: 11 errors, 0 warnings",
    ]


def test_the_azure_target_takes_them(tmp_path):
    """tests/test_azure_pipeline_batch.py deploys and calls them there."""
    lab = LAB.replace("{name: ws-pcb}", "{name: ws-pcb, resource_group: rg-pcb, location: eastus}")
    spec = write_lab(tmp_path, lab)
    proc = run_mlrun(
        "validate", spec, "--target", "azure", cwd=tmp_path, env={"AZURE_SUBSCRIPTION_ID": "x"}
    )
    assert (proc.returncode, proc.stderr) == (0, "")


def test_an_unmodified_hello_batch_deployment_plans(tmp_path):
    """azureml-examples' hello-batch as it is: a registered pipeline component of one step
    (hello-component/hello.yml) deployed with deployment.yml, called without inputs."""
    (tmp_path / "hello-component" / "src").mkdir(parents=True)
    (tmp_path / "hello-component" / "hello.yml").write_text(HELLO)
    (tmp_path / "hello-component" / "src" / "hello.py").write_text('print("hello world!")')
    (tmp_path / "deployment.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/"
        "pipelineComponentBatchDeployment.schema.json\nname: hello-batch-dpl\n"
        "endpoint_name: hello-pipeline-batch\ntype: pipeline\n"
        "component: azureml:hello_batch@latest\nsettings:\n    default_compute: batch-cluster"
    )
    spec = tmp_path / "lab.yaml"
    spec.write_text(HELLO_LAB)
    out = run_mlrun("plan", spec, cwd=tmp_path, check=0).stdout
    assert (
        "+ deployment.hello-batch/hello-batch-dpl  pipeline component azureml:hello_batch@latest "
        "on batch-cluster: 1 step (main_job)"
    ) in out
    assert "> invoke.hello-batch                      (no inputs) -> hello-batch-dpl" in out


HELLO = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json
name: hello_batch
display_name: Hello Batch component
version: 1
type: pipeline
jobs:
  main_job:
    type: command
    component:
      code: src
      environment: azureml://registries/azureml/environments/sklearn-1.5/labels/latest
      command: >-
        python hello.py
"""
HELLO_LAB = """\
name: hello-batch
workspace: {name: ws-hello}
computes:
  batch-cluster: {type: amlcompute, min_instances: 0, max_instances: 5}
components:
  hello_batch: {file: hello-component/hello.yml}
endpoints:
  hello-batch:
    type: batch
    deployments:
      hello-batch-dpl: {file: deployment.yml}
    invoke: {inputs: {}}
"""
