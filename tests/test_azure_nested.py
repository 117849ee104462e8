"""Nested pipelines and sweep steps on the azure target: sent as the SDK's own pipeline-component
and sweep nodes (not flattened as the local target runs them), run by the emulator as child runs
with children of their own (tests/emulator/nested.py), and read back step by step as
`OUTER.INNER`."""

import json

import pytest
from conftest import run_mlrun
from test_azure import az
from test_pipeline_vocabulary import ENV, GUESS, SCALE, TWICE

pytestmark = pytest.mark.azure

# scale.yml, saying what it made
LOUD = SCALE.replace('))"', ")); print('scaled', n * ${{inputs.factor}})\"")
assert LOUD != SCALE

# a pipeline component whose one step is the twice.yml pipeline component: two levels
OUTER = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json
type: pipeline
name: outer
inputs:
  data: {type: uri_folder}
  where: {type: string}
outputs:
  doubled: {type: uri_folder}
jobs:
  inner:
    type: pipeline
    component: ./twice.yml
    compute: ${{parent.inputs.where}}
    inputs: {data: "${{parent.inputs.data}}"}
    outputs: {result: "${{parent.outputs.doubled}}"}
"""
LAB = f"""\
name: nest-az
workspace: {{name: mlw-nest, resource_group: rg-nest, location: eastus}}
computes:
  cpu: {{type: amlcompute, size: STANDARD_DS11_V2, max_instances: 2}}
jobs:
  nest:
    type: pipeline
    settings: {{default_compute: azureml:cpu}}
    inputs:
      raw: {{type: uri_folder, path: ./raw}}
      k: 5
    outputs:
      final: {{type: uri_folder}}
    jobs:
      a:
        type: pipeline
        component: ./twice.yml
        inputs:
          data: ${{{{parent.inputs.raw}}}}
          factor: ${{{{parent.inputs.k}}}}
      b:
        type: pipeline
        component: ./outer.yml
        inputs:
          data: ${{{{parent.jobs.a.outputs.result}}}}
          where: azureml:cpu
      last:
        command: >-
          python -c "import pathlib as p, mlflow;
          n = int(p.Path('${{{{inputs.x}}}}', 'n.txt').read_text()); mlflow.log_metric('n', n + 1);
          p.Path('${{{{outputs.y}}}}', 'n.txt').write_text(str(n + 1))"
        environment: {ENV}
        inputs:
          x: ${{{{parent.jobs.b.outputs.doubled}}}}
        outputs:
          y: ${{{{parent.outputs.final}}}}
  tune:
    type: pipeline
    settings: {{default_compute: azureml:cpu}}
    jobs:
      sweep:
        type: sweep
        trial: ./guess.yml
        inputs: {{data: {{type: uri_folder, path: ./raw}}}}
        search_space:
          x: {{type: choice, values: [1, 3, 5]}}
        sampling_algorithm: grid
        objective: {{goal: minimize, primary_metric: loss}}
        limits: {{max_total_trials: 3, max_concurrent_trials: 2}}
      after:
        command: >-
          python -c "import pathlib as p, mlflow;
          mlflow.log_metric('best', int(p.Path('${{{{inputs.best}}}}', 'x.txt').read_text()))"
        environment: {ENV}
        inputs: {{best: "${{{{parent.jobs.sweep.outputs.out}}}}"}}
targets:
  azure: {{subscription_id: "${{{{env.AZURE_SUBSCRIPTION_ID}}}}"}}
"""


@pytest.fixture(scope="module")
def applied(azure_emulator, tmp_path_factory):
    root = tmp_path_factory.mktemp("nested-azure")
    (root / "raw").mkdir()
    (root / "raw" / "n.txt").write_text("2")
    for name, text in {"scale": LOUD, "twice": TWICE, "outer": OUTER, "guess": GUESS}.items():
        (root / f"{name}.yml").write_text(text)
    (root / "lab.yaml").write_text(LAB)
    plan = az(azure_emulator, "plan", "lab.yaml", cwd=root, check=0).stdout
    mark = azure_emulator.mark()
    apply = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=root, check=0).stdout
    report = json.loads(
        az(azure_emulator, "report", "lab.yaml", "--format", "json", cwd=root, check=0).stdout
    )
    state = json.loads((root / ".mlrun" / "nest-az.azure.json").read_text())
    return {
        "root": root,
        "plan": plan,
        "apply": apply,
        "report": report,
        "mark": mark,
        "state": state,
    }


def _steps(report, job):
    entry = next(j for j in report["jobs"] if j["job"] == job)
    return {s["step"]: s for s in entry["pipeline"]["steps"]}


def test_the_plan_names_each_nested_step_as_locally(applied):
    assert (
        "      > a.first                  first run; in pipeline step a (twice.yml)"
        in (applied["plan"])
    )
    assert "      > b.inner.second" in applied["plan"]
    assert (
        "      > sweep                    first run; sweep of 3 trials (grid, minimize loss)"
        in (applied["plan"])
    )


def test_nested_pipelines_go_as_the_sdks_pipeline_nodes_and_run_two_levels_deep(
    applied, azure_emulator
):
    assert "job.nest  Completed" in applied["apply"]
    run = applied["state"]["jobs"]["nest"]["runs"][-1]["id"]
    stored = azure_emulator.call("GET", "/_emulator/state")["resources"]
    body = next(r for k, r in stored.items() if k.endswith(f"/jobs/{run}"))["properties"]
    assert sorted(body["jobs"]) == ["a", "b", "last"]  # not flattened: the SDK's own nodes
    assert body["jobs"]["a"]["type"] == "pipeline" and body["jobs"]["b"]["type"] == "pipeline"
    outer = next(
        r["properties"]["componentSpec"]
        for k, r in stored.items()
        if k.lower().endswith(body["jobs"]["b"]["componentId"].lower().rsplit("/workspaces/", 1)[1])
    )
    assert outer["type"] == "pipeline" and outer["jobs"]["inner"]["type"] == "pipeline"
    steps = _steps(applied["report"], "nest")
    assert {n: s["status"] for n, s in steps.items()} == {
        "a.first": "Completed",
        "a.second": "Completed",
        "b.inner.first": "Completed",
        "b.inner.second": "Completed",
        "last": "Completed",
    }
    # 2 * 5 * 3 in a, * 2 * 3 in b (twice.yml's default factor), + 1 in last
    assert steps["last"]["metrics"] == {"n": 181.0}


def test_logs_of_a_step_two_levels_down_are_its_own(applied, azure_emulator):
    logs = az(azure_emulator, "logs", "lab.yaml", "nest/b.inner.second", cwd=applied["root"])
    assert logs.returncode == 0, logs.stderr
    assert "scaled 180" in logs.stdout  # 30 * 2 in inner.first, * 3 in inner.second
    missing = az(azure_emulator, "logs", "lab.yaml", "nest/b.inner.third", cwd=applied["root"])
    assert missing.returncode == 1
    assert "has no step 'b.inner.third'" in missing.stderr


def test_a_sweep_step_runs_its_trials_and_hands_on_the_best_trials_output(applied, azure_emulator):
    assert "job.tune  Completed" in applied["apply"]
    run = applied["state"]["jobs"]["tune"]["runs"][-1]["id"]
    stored = azure_emulator.call("GET", "/_emulator/state")["resources"]
    node = next(r for k, r in stored.items() if k.endswith(f"/jobs/{run}"))["properties"]["jobs"][
        "sweep"
    ]
    assert node["type"] == "sweep" and node["trial"]["componentId"]
    assert node["search_space"] == {"x": {"type": "choice", "values": [1, 3, 5]}}
    steps = _steps(applied["report"], "tune")
    assert steps["sweep"]["status"] == "Completed"
    assert steps["after"]["metrics"] == {"best": 3.0}  # loss (x - 3)^2 + 2 is least at x = 3


# registered pipeline components as steps: one of the spec's `components:`, one registered
# outside it (mapped locally by targets.local.components)
REGISTERED = f"""\
name: reg-az
workspace: {{name: mlw-regp, resource_group: rg-regp, location: eastus}}
computes:
  cpu: {{type: amlcompute, size: STANDARD_DS11_V2, max_instances: 2}}
components:
  outer:
    type: pipeline
    inputs:
      data: {{type: uri_folder}}
    outputs:
      doubled: {{type: uri_folder}}
    jobs:
      inner:
        type: pipeline
        component: ./twice.yml
        inputs: {{data: "${{{{parent.inputs.data}}}}"}}
        outputs: {{result: "${{{{parent.outputs.doubled}}}}"}}
jobs:
  p:
    type: pipeline
    settings: {{default_compute: azureml:cpu}}
    inputs: {{raw: {{type: uri_folder, path: ./raw}}}}
    jobs:
      b:
        type: pipeline
        component: azureml:outer@latest
        inputs: {{data: "${{{{parent.inputs.raw}}}}"}}
      ext:
        type: pipeline
        component: azureml:my_twice@latest
        inputs: {{data: "${{{{parent.jobs.b.outputs.doubled}}}}"}}
        outputs: {{result: {{type: uri_folder}}}}  # named, for the SDK to bind the step after
      last:
        command: >-
          python -c "import pathlib as p, mlflow;
          mlflow.log_metric('n', int(p.Path('${{{{inputs.x}}}}', 'n.txt').read_text()))"
        environment: {ENV}
        inputs: {{x: "${{{{parent.jobs.ext.outputs.result}}}}"}}
targets:
  local:
    components: {{my_twice: ./twice.yml}}
  azure: {{subscription_id: "${{{{env.AZURE_SUBSCRIPTION_ID}}}}"}}
"""
REGISTER = """\
import json, os
from azure.ai.ml import MLClient, load_component
from azure.identity import DefaultAzureCredential
ml = MLClient(DefaultAzureCredential(), os.environ["AZURE_SUBSCRIPTION_ID"], "rg-regp",
              "mlw-regp", enable_telemetry=False)
made = ml.components.create_or_update(load_component("my_twice.yml"))
print(json.dumps({"name": made.name, "version": made.version, "type": made.type}))
"""


def test_registered_pipeline_components_are_steps_by_reference(azure_emulator, tmp_path):
    from azure_fixtures import run_sdk

    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "n.txt").write_text("2")
    (tmp_path / "scale.yml").write_text(LOUD)
    (tmp_path / "twice.yml").write_text(TWICE)
    (tmp_path / "my_twice.yml").write_text(TWICE.replace("name: twice", "name: my_twice"))
    (tmp_path / "lab.yaml").write_text(REGISTERED)
    local = run_mlrun("plan", "lab.yaml", cwd=tmp_path, check=0)
    assert "      > ext.first" in local.stdout  # locally: its stand-in's steps
    plan = az(azure_emulator, "plan", "lab.yaml", cwd=tmp_path, check=0).stdout
    assert "  + component.outer" in plan
    assert "      > b.inner.first            first run; in pipeline step b (outer:auto)" in plan
    assert (
        "      > ext                      first run; pipeline component azureml:my_twice@latest, "
        "run by Azure ML by reference" in plan
    )
    refused = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=tmp_path)
    assert refused.returncode == 1
    assert (
        "error: job.p: azure-ai-ml refused it: Asset my_twice does not exist in workspace "
        "mlw-regp." in refused.stderr
    )
    assert "Traceback" not in refused.stderr
    made = run_sdk(azure_emulator, REGISTER, cwd=tmp_path)
    assert (made["name"], made["version"], made["type"]) == ("my_twice", "1", "pipeline")
    az(azure_emulator, "apply", "-y", "lab.yaml", cwd=tmp_path, check=0)
    state = json.loads((tmp_path / ".mlrun" / "reg-az.azure.json").read_text())
    run = state["jobs"]["p"]["runs"][-1]["id"]
    stored = azure_emulator.call("GET", "/_emulator/state")["resources"]
    nodes = next(r for k, r in stored.items() if k.endswith(f"/jobs/{run}"))["properties"]["jobs"]
    assert nodes["b"]["componentId"].endswith("/components/outer/versions/1")
    assert nodes["ext"]["componentId"].endswith("/components/my_twice/versions/1")
    report = json.loads(
        az(azure_emulator, "report", "lab.yaml", "--format", "json", cwd=tmp_path, check=0).stdout
    )
    steps = _steps(report, "p")
    assert {n: s["status"] for n, s in steps.items()} == {
        "b.inner.first": "Completed",
        "b.inner.second": "Completed",
        "ext": "Completed",
        "last": "Completed",
    }
    assert steps["last"]["metrics"] == {"n": 72.0}  # 2 * 2 * 3, then * 2 * 3
