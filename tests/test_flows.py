"""Prompt flows as pipeline steps (runner/flows.py): a type: parallel step whose component is a
flow's flow.dag.yaml, or a run.yml naming one. Checked as azure-ai-ml checks it, planned `runs on
Azure only` by the local target, exported by its file, and sent through the SDK on the azure
target, where the emulator runs a stand-in (tests/emulator/flows.py)."""

import json
from pathlib import Path

import pytest
from conftest import run_mlrun

from runner import fingerprint
from runner.spec import check_file, load

FLOW_SCHEMA = "https://azuremlschemas.azureedge.net/promptflow/latest/Flow.schema.json"
RUN_SCHEMA = "https://azuremlschemas.azureedge.net/promptflow/latest/Run.schema.json"

# a flow of two nodes: a prompt template and a python tool that answers from it
DAG = f"""\
$schema: {FLOW_SCHEMA}
inputs:
  question: {{type: string, default: "What is MLflow?"}}
outputs:
  answer: {{type: string, reference: "${{answer.output}}"}}
nodes:
- name: prompt
  type: prompt
  source: {{type: code, path: ask.jinja2}}
  inputs: {{question: "${{inputs.question}}"}}
- name: answer
  type: python
  source: {{type: code, path: answer.py}}
  inputs: {{prompt: "${{prompt.output}}"}}
environment:
  python_requirements_txt: requirements.txt
"""
ANSWER = """\
from promptflow import tool


@tool
def answer(prompt: str) -> str:
    return f"an answer to: {prompt}"
"""
TOOLS = {"package": {}, "code": {"ask.jinja2": {"type": "prompt", "source": "ask.jinja2"}}}
RUN = f"""\
$schema: {RUN_SCHEMA}
flow: ./qa
display_name: qa over the questions
environment_variables:
  QA_TONE: short
"""
PIPELINE = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
display_name: questions and answers
settings: {default_compute: azureml:cpu}
inputs:
  questions: {type: uri_file, path: ./questions.jsonl}
jobs:
  from_dag:
    type: parallel
    component: ./qa/flow.dag.yaml
    inputs:
      data: ${{parent.inputs.questions}}
      question: ${data.question}
  from_run:
    type: parallel
    component: ./run.yml
    inputs:
      data: ${{parent.inputs.questions}}
      question: ${data.question}
  show:
    command: cat ${{inputs.answers}}/STAND_IN.txt
    environment: azureml:AzureML-sklearn-1.5@latest
    inputs:
      answers: ${{parent.jobs.from_dag.outputs.flow_outputs}}
"""
LAB = """\
name: flows
workspace: {name: mlw-flows, resource_group: rg-flows, location: eastus}
computes:
  cpu: {type: amlcompute, size: STANDARD_DS11_V2, max_instances: 2}
jobs:
  qa: {file: pipeline.yml}
  hello:
    command: echo hello
    environment: azureml:AzureML-sklearn-1.5@latest
    compute: cpu
"""
AZURE = 'targets:\n  azure: {subscription_id: "${{env.AZURE_SUBSCRIPTION_ID}}"}\n'


def write_lab(folder: Path, azure: bool = False) -> Path:
    qa = folder / "qa"
    (qa / ".promptflow").mkdir(parents=True)
    (qa / "flow.dag.yaml").write_text(DAG)
    (qa / "ask.jinja2").write_text("Answer briefly: {{question}}\n")
    (qa / "answer.py").write_text(ANSWER)
    (qa / "requirements.txt").write_text("promptflow\n")
    (qa / ".promptflow" / "flow.tools.json").write_text(json.dumps(TOOLS))
    (folder / "run.yml").write_text(RUN)
    (folder / "questions.jsonl").write_text(
        '{"question": "What is a run?"}\n{"question": "What is a metric?"}\n'
    )
    (folder / "pipeline.yml").write_text(PIPELINE)
    (folder / "lab.yaml").write_text(LAB + (AZURE if azure else ""))
    return folder


@pytest.fixture
def lab(tmp_path):
    return write_lab(tmp_path)


def problems(path: Path, **kw) -> list[str]:
    doc = check_file(path, **kw)
    return [
        f"{Path(p.file).name}:{p.line}:{p.col}: {p.severity}: {p.path}: {p.message}"
        for p in doc.problems
    ]


# --- validate ----------------------------------------------------------------------------------


def test_a_flow_and_a_run_file_as_steps_validate(lab):
    assert problems(lab / "lab.yaml") == []
    (lab / "lab.yaml").write_text(LAB + "targets:\n  azure: {subscription_id: s}\n")
    assert problems(lab / "lab.yaml", target="azure") == []


def test_what_the_sdk_refuses_is_located(lab):
    (lab / "qa" / ".promptflow" / "flow.tools.json").unlink()
    (lab / "run.yml").write_text(RUN.replace("./qa", "./qb") + "column_mapping: {q: x}\n")
    text = PIPELINE.replace(
        "    type: parallel\n    component: ./run.yml", "    component: ./run.yml"
    )
    text = text.replace(
        "      data: ${{parent.inputs.questions}}\n      question", "      question", 1
    )
    text = text.replace("from_dag.outputs.flow_outputs", "from_dag.outputs.answers")
    (lab / "pipeline.yml").write_text(text)
    assert problems(lab / "lab.yaml") == [
        "pipeline.yml:10:16: error: $.jobs.qa.jobs.from_dag.component: the flow folder 'qa' has "
        "no .promptflow/flow.tools.json, which Azure ML needs to use a flow as a component: run "
        "`pf flow validate` in it to write it",
        "pipeline.yml:8:3: error: $.jobs.qa.jobs.from_dag: missing required input 'data' of "
        "the component",
        "run.yml:6:1: warning: $.jobs.qa.jobs.from_run.component.column_mapping: azure-ai-ml "
        "ignores it when it makes the flow's component (did you mean 'column_mappings'?)",
        "run.yml:2:7: error: $.jobs.qa.jobs.from_run.component.flow: flow './qb' is not a "
        "folder holding flow.dag.yaml nor a flow file",
        "pipeline.yml:13:3: error: $.jobs.qa.jobs.from_run: a prompt flow runs as a type: "
        "parallel step",
        "pipeline.yml:22:16: error: $.jobs.qa.jobs.show.inputs.answers: "
        "'${{parent.jobs.from_dag.outputs.answers}}': step from_dag has no output 'answers' "
        "(outputs: debug_info, flow_outputs)",
    ]


def test_a_flow_file_is_checked_as_the_sdk_reads_it(lab):
    (lab / "qa" / "flow.dag.yaml").write_text(DAG + "environment_variables: {A: [1]}\n")
    (lab / "run.yml").write_text(RUN + "azureml: {is_deterministic: maybe}\n")
    assert sorted(problems(lab / "lab.yaml")) == [
        "flow.dag.yaml:17:28: error: $.jobs.qa.jobs.from_dag.component.environment_variables.A: "
        "expected a string, got a list",
        "run.yml:6:29: error: $.jobs.qa.jobs.from_run.component.azureml.is_deterministic: "
        "expected a boolean, got a string",
    ]


REGISTERED = """\
name: flows-registered
workspace: {name: mlw-flows, resource_group: rg-flows, location: eastus}
computes:
  cpu: {type: amlcompute, size: STANDARD_DS11_V2, max_instances: 2}
COMPONENTS
jobs:
  p:
    type: pipeline
    settings: {default_compute: azureml:cpu}
    inputs:
      questions: {type: uri_file, path: ./questions.jsonl}
    jobs:
      ask:
        type: parallel
        component: azureml:qa@latest
        inputs: {data: "${{parent.inputs.questions}}", question: "${data.question}"}
"""


def test_a_flow_is_given_to_its_step_by_file_not_registered_from_components(lab):
    spec = lab / "registered.yaml"
    spec.write_text(REGISTERED.replace("COMPONENTS", "components:\n  qa: {file: qa/flow.dag.yaml}"))
    assert problems(spec)[0] == (
        "registered.yaml:6:3: error: $.components.qa: a prompt flow is not registered from "
        "components: here; give it to its step by its file (type: parallel, component: "
        "./FOLDER/flow.dag.yaml or a run.yml), and Azure ML makes its component when the "
        "pipeline is submitted"
    )


def test_a_registered_component_mapped_to_a_flow_runs_on_azure_only(lab):
    spec = lab / "registered.yaml"
    mapped = "targets:\n  local:\n    components:\n      qa: qa/flow.dag.yaml"
    spec.write_text(REGISTERED.replace("COMPONENTS", mapped))
    assert problems(spec) == []
    plan = run_mlrun("plan", "registered.yaml", cwd=lab, check=0).stdout
    assert "= job.p                        runs on Azure only (step ask is a prompt flow)" in plan


# --- the local target ----------------------------------------------------------------------------


def test_locally_the_pipeline_runs_on_azure_only_and_the_rest_runs(lab):
    plan = run_mlrun("plan", "lab.yaml", cwd=lab, check=0).stdout
    reason = "runs on Azure only (steps from_dag, from_run are prompt flows)"
    assert f"= job.qa                       {reason}" in plan
    assert "> job.hello                    first run" in plan
    apply = run_mlrun("apply", "-y", "lab.yaml", cwd=lab, check=0).stdout
    assert f"job.qa  skipped  {reason}" in apply
    assert "job.hello  Completed" in apply
    report = json.loads(
        run_mlrun("report", "lab.yaml", "--format", "json", cwd=lab, check=0).stdout
    )
    jobs = {j["job"]: j for j in report["jobs"]}
    assert jobs["qa"]["status"] == "skipped" and jobs["qa"]["skipped"] == reason


def test_export_names_each_flow_by_its_file_and_the_sdk_loads_it(lab, tmp_path):
    from azure.ai.ml import load_job

    out = tmp_path / "out"
    run_mlrun("export", "lab.yaml", "-o", out, cwd=lab, check=0)
    job = load_job(out / "jobs" / "qa.yml")
    flows = {n: job.jobs[n].component for n in ("from_dag", "from_run")}
    assert {n: type(c).__name__ for n, c in flows.items()} == {
        "from_dag": "FlowComponent",
        "from_run": "FlowComponent",
    }
    assert flows["from_run"].environment_variables == {"QA_TONE": "short"}
    assert Path(flows["from_dag"].base_path).resolve() == (lab / "qa").resolve()


def test_a_change_in_the_flow_folder_or_the_run_file_changes_its_step_only(lab):
    (lab / "lab.yaml").write_text(LAB + "targets:\n  azure: {subscription_id: s}\n")

    def steps():
        spec = load(lab / "lab.yaml", target="azure")
        found = fingerprint.pipeline(spec.jobs["qa"])["steps"]
        return {n: s["fingerprint"] for n, s in found.items()}

    before = steps()
    (lab / "qa" / "answer.py").write_text(ANSWER.replace("an answer", "the answer"))
    after_code = steps()
    assert after_code["from_dag"] != before["from_dag"]
    assert after_code["from_run"] != before["from_run"]  # the same folder
    (lab / "run.yml").write_text(RUN.replace("short", "long"))
    after_run = steps()
    assert after_run["from_run"] != after_code["from_run"]
    assert after_run["from_dag"] == after_code["from_dag"]


# --- the azure target ----------------------------------------------------------------------------


@pytest.mark.azure
def test_azure_makes_each_flow_a_component_and_runs_the_pipeline(azure_emulator, tmp_path):
    from test_azure import az

    write_lab(tmp_path, azure=True)
    plan = az(azure_emulator, "plan", "lab.yaml", cwd=tmp_path, check=0).stdout
    assert "runs on Azure only" not in plan.split("\n      > from_dag")[0]
    assert "> from_dag                 first run; prompt flow qa (flow.dag.yaml)" in plan
    assert "> from_run                 first run; prompt flow qa (run.yml)" in plan
    apply = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=tmp_path, check=0).stdout
    assert "job.qa  Completed" in apply
    for step in ("from_dag", "from_run", "show"):
        assert f"step     {step}: Completed" in apply
    state = json.loads((tmp_path / ".mlrun" / "flows.azure.json").read_text())
    run_id = state["jobs"]["qa"]["runs"][-1]["id"]
    stored = azure_emulator.call("GET", "/_emulator/state")["resources"]
    job = next(r for k, r in stored.items() if k.endswith(f"/jobs/{run_id}"))
    nodes = job["properties"]["jobs"]
    assert nodes["from_dag"]["type"] == "parallel"
    assert nodes["from_dag"]["inputs"]["question"]["value"] == "${data.question}"
    specs = {
        n: next(
            r["properties"]["componentSpec"]
            for k, r in stored.items()
            if k.lower() == nodes[n]["componentId"].lower()
        )
        for n in ("from_dag", "from_run")
    }
    assert specs["from_dag"]["flow_definition_uri"].endswith("/qa/flow.dag.yaml")
    assert specs["from_run"]["environment_variables"] == {"QA_TONE": "short"}
    again = az(azure_emulator, "plan", "lab.yaml", "--detailed-exitcode", cwd=tmp_path, check=0)
    assert again.stdout.endswith("No changes. Everything is up to date.\n")
