"""The kinds only Azure runs (runner/azure_only.py): automl and finetuning jobs and pipeline steps,
attached Synapse and Kubernetes computes. Checked offline against azure-ai-ml's fields, planned
`runs on Azure only` and skipped by the local target, submitted through the SDK on the azure one."""

import json

import pytest
from conftest import run_mlrun

from runner import azure_only
from runner.spec import check_file

POOL = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Synapse/workspaces/w/bigDataPools/p"
SYNAPSE = f"""\
  synapse:
    type: synapsespark
    resource_id: {POOL}
"""
LAB = """\
name: ao-lab
workspace: {name: mlw-ao, resource_group: rg-ao, location: eastus}
computes:
  cpu-cluster: {type: amlcompute, size: STANDARD_DS11_V2, max_instances: 1}
SYNAPSE
jobs:
  hello:
    command: echo hello
    environment: azureml:AzureML-sklearn-1.5@latest
    compute: cpu-cluster
  classify: {file: automl.yml}
  tune:
    type: finetuning
    task: chat_completion
    model_provider: custom
    model: {type: mlflow_model, path: azureml://registries/azureml/models/Phi-3-mini-4k-instruct/versions/14}
    training_data: data/train.jsonl
    validation_data: {type: uri_file, path: data/train.jsonl}
    hyperparameters: {num_train_epochs: "1", learning_rate: "0.00002"}
    compute: cpu-cluster
    outputs:
      registered_model: {type: mlflow_model, name: phi-tuned}
  flow:
    type: pipeline
    settings: {default_compute: azureml:cpu-cluster}
    inputs:
      rows: {type: mltable, path: data/train}
    jobs:
      classify_node:
        type: automl
        task: regression
        primary_metric: r2_score
        target_column_name: y
        training_data: ${{parent.inputs.rows}}
        limits: {max_trials: 1}
        outputs:
          best_model: {type: mlflow_model}
      show_model:
        command: cat ${{inputs.model}}/STAND_IN.txt
        environment: azureml:AzureML-sklearn-1.5@latest
        inputs:
          model: ${{parent.jobs.classify_node.outputs.best_model}}
"""

AUTOML = """\
$schema: https://azuremlsdk2.blob.core.windows.net/preview/0.0.1/autoMLJob.schema.json
type: automl
experiment_name: ao-automl
task: classification
primary_metric: AUC_weighted
log_verbosity: debug
target_column_name: "y"
compute: azureml:cpu-cluster
training_data: {type: mltable, path: ./data/train}
limits: {timeout_minutes: 30, max_trials: 2, enable_early_termination: true}
featurization: {mode: auto}
training: {enable_stack_ensemble: false, allowed_training_algorithms: [logistic_regression]}
"""

BROKEN = """\
name: ao-broken
workspace: {name: mlw-ao, resource_group: rg-ao, location: eastus}
computes:
  k8s: {type: kubernetes, resource_id: x, namspace: default}
jobs:
  classify:
    type: automl
    task: clasification
    training_data: {type: mltable, path: ./nope}
  regress:
    type: automl
    task: regression
    primary_metric: r3_score
    training_data: {type: mltable, path: ./data/train}
    limits: {max_trialz: 2, timeout_minutes: soon}
    trainin: {enable_stack_ensemble: false}
  tune:
    type: finetuning
    task: chat_completion
    model: {type: mlflow_model, path: azureml://registries/azureml/models/Phi/versions/1}
  flow:
    type: pipeline
    jobs:
      step:
        type: automl
        task: forecasting
        training_data: ${{parent.inputs.rows}}
        forecasting: {time_column: t}
"""


def write_lab(folder, azure=False):
    (folder / "data" / "train").mkdir(parents=True)
    (folder / "data" / "train" / "MLTable").write_text("paths:\n  - file: ./rows.csv\n")
    (folder / "data" / "train" / "rows.csv").write_text("x,y\n1,0\n2,1\n3,0\n4,1\n")
    (folder / "data" / "train.jsonl").write_text('{"messages": []}\n')
    (folder / "automl.yml").write_text(AUTOML)
    lab = LAB.replace("SYNAPSE\n", "" if azure else SYNAPSE)
    if azure:
        lab += 'targets:\n  azure: {subscription_id: "${{env.AZURE_SUBSCRIPTION_ID}}"}\n'
    (folder / "lab.yaml").write_text(lab)
    (folder / "broken.yaml").write_text(BROKEN)
    return folder


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return write_lab(tmp_path_factory.mktemp("azure-only"))


@pytest.fixture(scope="module")
def applied(lab):
    """The lab's local plan, apply, report and status, run once."""
    plan = run_mlrun("plan", "lab.yaml", cwd=lab, check=0).stdout
    apply = run_mlrun("apply", "-y", "lab.yaml", cwd=lab, check=0).stdout
    report = json.loads(
        run_mlrun("report", "lab.yaml", "--format", "json", cwd=lab, check=0).stdout
    )
    status = run_mlrun("status", "lab.yaml", cwd=lab, check=0).stdout
    return {"plan": plan, "apply": apply, "report": report, "status": status}


# --- validate ----------------------------------------------------------------------------------


def test_automl_finetuning_steps_and_attached_computes_validate(lab):
    doc = check_file(lab / "lab.yaml")
    assert [str(p) for p in doc.problems] == []


def test_a_broken_file_gets_every_problem_located(lab):
    doc = check_file(lab / "broken.yaml")
    got = [f"{p.line}:{p.col}: {p.path}: {p.message}" for p in doc.problems]
    assert got == [
        "4:43: $.computes.k8s.namspace: unknown key (did you mean 'namespace'?)",
        "8:11: $.jobs.classify.task: 'clasification' is not one of: classification, regression, "
        "forecasting, image_classification, image_classification_multilabel, "
        "image_object_detection, image_instance_segmentation, text_classification, "
        "text_classification_multilabel, text_ner (did you mean 'classification'?)",
        "9:42: $.jobs.classify.training_data.path: data path './nope' does not exist",
        "13:21: $.jobs.regress.primary_metric: 'r3_score' is not one of: "
        "normalized_mean_absolute_error, normalized_root_mean_squared_error, r2_score, "
        "spearman_correlation (did you mean 'r2_score'?)",
        "15:14: $.jobs.regress.limits.max_trialz: unknown key (did you mean 'max_trials'?)",
        "15:46: $.jobs.regress.limits.timeout_minutes: expected an integer, got a string",
        "16:5: $.jobs.regress.trainin: unknown key (did you mean 'training'?)",
        "17:3: $.jobs.tune: missing required key 'training_data'",
        "28:23: $.jobs.flow.jobs.step.forecasting.time_column: unknown key "
        "(did you mean 'time_column_name'?)",
    ]


def test_the_azure_target_takes_attached_computes(tmp_path):
    (tmp_path / "lab.yaml").write_text(
        "name: attach\nworkspace: {name: mlw-a, resource_group: rg-a, location: eastus}\n"
        f"computes:\n{SYNAPSE}targets:\n  azure: {{subscription_id: s}}\n"
    )
    doc = check_file(tmp_path / "lab.yaml", target="azure")
    assert [str(p) for p in doc.problems] == []


def test_enums_compare_as_the_sdk_does_ignoring_case_and_underscores(lab):
    # AUC_weighted (automl.yml) and chat_completion (the SDK's chatCompletion) are accepted
    doc = check_file(lab / "lab.yaml")
    assert not doc.problems
    assert azure_only.reason({"type": "automl", "task": "classification"}) == (
        "runs on Azure only (automl classification)"
    )


def test_the_bundled_table_is_what_the_installed_sdk_says():
    assert azure_only.build() == azure_only.table()


# --- the local target --------------------------------------------------------------------------


def test_the_local_plan_marks_each_azure_only_kind(applied):
    plan = applied["plan"]
    assert (
        "= compute.synapse              runs on Azure only (an attached Synapse Spark pool)" in plan
    )
    assert "= job.classify                 runs on Azure only (automl classification)" in plan
    assert "= job.tune                     runs on Azure only (finetuning chat_completion)" in plan
    assert (
        "= job.flow                     runs on Azure only (step classify_node is automl)" in plan
    )
    assert "> job.hello                    first run" in plan
    assert "Plan: 2 to add, 0 to change, 0 to replace, 0 to destroy, 1 job to run." in plan
    assert "synapse" not in plan.split("cost")[1]  # an attached pool is not Azure ML's to price


def test_apply_runs_the_rest_and_says_it_skipped_them(applied):
    lines = [line.split(None, 1)[1] for line in applied["apply"].splitlines() if "skipped" in line]
    assert lines[:4] == [
        "compute.synapse  skipped  runs on Azure only (an attached Synapse Spark pool)",
        "job.classify  skipped  runs on Azure only (automl classification)",
        "job.tune  skipped  runs on Azure only (finetuning chat_completion)",
        "job.flow  skipped  runs on Azure only (step classify_node is automl)",
    ]
    assert "job.hello  Completed" in applied["apply"]


def test_the_report_and_status_show_them_skipped_not_never_run(applied):
    jobs = {j["job"]: j for j in applied["report"]["jobs"]}
    assert jobs["hello"]["status"] == "Completed"
    for name in ("classify", "tune", "flow"):
        assert jobs[name]["status"] == "skipped"
        assert jobs[name]["skipped"].startswith("runs on Azure only")
        assert jobs[name]["error"] is None
    assert "job.classify                     skipped" in applied["status"]
    assert "never run" not in applied["status"]


def test_a_second_plan_has_nothing_to_do_and_nothing_was_recorded(applied, lab):
    plan = run_mlrun("plan", "lab.yaml", "--detailed-exitcode", cwd=lab, check=0).stdout
    assert plan.endswith("No changes. Everything is up to date.\n")
    state = json.loads((lab / ".mlrun" / "ao-lab.local.json").read_text())
    assert "compute.synapse" not in state["resources"]
    assert set(state["jobs"]) == {"hello"}


def test_only_a_job_of_azure_leaves_the_others_not_selected(applied, lab):
    plan = run_mlrun("plan", "lab.yaml", "--only", "classify", cwd=lab, check=0).stdout
    assert "= job.classify                 runs on Azure only (automl classification)" in plan
    assert "= job.tune                     not selected (--only)" in plan


def test_export_writes_each_as_its_own_az_ml_file_the_sdk_loads(lab, tmp_path):
    from azure.ai.ml import load_job

    run_mlrun("export", "lab.yaml", "-o", tmp_path / "out", cwd=lab, check=0)
    classify = load_job(tmp_path / "out" / "jobs" / "classify.yml")
    tune = load_job(tmp_path / "out" / "jobs" / "tune.yml")
    flow = load_job(tmp_path / "out" / "jobs" / "flow.yml")
    assert type(classify).__name__ == "ClassificationJob"
    assert classify.training_data.path.endswith("data/train")
    assert type(tune).__name__ == "CustomModelFineTuningJob"
    assert type(flow.jobs["classify_node"]).__name__ == "RegressionJob"


# --- the azure target ----------------------------------------------------------------------------


@pytest.mark.azure
def test_azure_submits_them_through_the_sdk_unchanged(azure_emulator, tmp_path):
    from test_azure import az

    write_lab(tmp_path, azure=True)
    plan = az(azure_emulator, "plan", "lab.yaml", cwd=tmp_path, check=0).stdout
    assert "> job.classify                 first run" in plan
    assert "> job.tune                     first run" in plan
    assert "runs on Azure only" not in plan
    apply = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=tmp_path, check=0).stdout
    for name in ("hello", "classify", "tune", "flow"):
        assert f"job.{name}  Completed" in apply
    state = json.loads((tmp_path / ".mlrun" / "ao-lab.azure.json").read_text())
    ids = {n: state["jobs"][n]["runs"][-1]["id"] for n in ("classify", "tune", "flow")}
    stored = azure_emulator.call("GET", "/_emulator/state")["resources"]
    body = {
        n: next(r for k, r in stored.items() if k.endswith(f"/jobs/{i}")) for n, i in ids.items()
    }
    automl = body["classify"]["properties"]
    assert automl["jobType"] == "AutoML"
    assert automl["taskDetails"]["taskType"] == "Classification"
    assert automl["taskDetails"]["primaryMetric"] == "AUCWeighted"
    assert automl["taskDetails"]["targetColumnName"] == "y"
    assert automl["taskDetails"]["trainingData"]["uri"].startswith("azureml://")
    assert automl["taskDetails"]["limitSettings"]["maxTrials"] == 2
    assert automl["experimentName"] == "ao-automl"
    assert automl["computeId"].endswith("/computes/cpu-cluster")
    assert automl["properties"]["mlrun.job"] == "classify"
    tune = body["tune"]["properties"]
    assert tune["jobType"] == "FineTuning"
    details = tune["fineTuningDetails"]
    assert details["taskType"] == "chatCompletion"  # as the SDK sends it
    assert details["model"]["uri"].endswith("Phi-3-mini-4k-instruct/versions/14")
    assert details["hyperParameters"] == {"num_train_epochs": "1", "learning_rate": "0.00002"}
    node = body["flow"]["properties"]["jobs"]["classify_node"]  # a step: the SDK's snake_case
    assert node["type"] == "automl" and node["task"] == "regression"
    assert node["training_data"] == "${{parent.inputs.rows}}"
    assert node["outputs"] == {"best_model": {"job_output_type": "mlflow_model"}}


ATTACH = """\
name: at-lab
workspace: {name: mlw-at, resource_group: rg-at, location: eastus}
computes:
  synapse: {file: attached-spark.yml}
  k8s:
    type: kubernetes
    resource_id: ARC
    namespace: ml
targets:
  azure: {subscription_id: "${{env.AZURE_SUBSCRIPTION_ID}}"}
"""
ARC = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Kubernetes/connectedClusters/arc"
SPARK_FILE = f"""\
# an attached Synapse Spark pool, as az ml compute attach takes it
name: my-pool
type: synapsespark
resource_id: {POOL}
identity:
  type: system_assigned
"""


@pytest.mark.azure
def test_azure_attaches_and_detaches_synapse_and_kubernetes(azure_emulator, tmp_path):
    from test_azure import az

    (tmp_path / "attached-spark.yml").write_text(SPARK_FILE)
    (tmp_path / "lab.yaml").write_text(ATTACH.replace("ARC", ARC))
    plan = az(azure_emulator, "plan", "lab.yaml", cwd=tmp_path, check=0).stdout
    assert (
        "+ compute.synapse              attach synapsespark "
        "Microsoft.Synapse/workspaces/w/bigDataPools/p" in plan
    )
    assert (
        "+ compute.k8s                  attach kubernetes "
        "Microsoft.Kubernetes/connectedClusters/arc (namespace ml)" in plan
    )
    az(azure_emulator, "apply", "-y", "lab.yaml", cwd=tmp_path, check=0)
    stored = azure_emulator.call("GET", "/_emulator/state")["resources"]
    body = {
        n: next(r for k, r in stored.items() if k.endswith(f"/workspaces/mlw-at/computes/{n}"))
        for n in ("synapse", "k8s")
    }
    assert body["synapse"]["properties"]["computeType"] == "SynapseSpark"
    assert body["synapse"]["properties"]["resourceId"] == POOL
    assert body["synapse"]["properties"]["isAttachedCompute"] is True
    assert body["synapse"]["identity"]["type"] == "SystemAssigned"
    assert body["k8s"]["properties"]["computeType"] == "Kubernetes"
    assert body["k8s"]["properties"]["properties"]["namespace"] == "ml"
    again = az(azure_emulator, "plan", "lab.yaml", "--detailed-exitcode", cwd=tmp_path, check=0)
    assert again.stdout.endswith("No changes. Everything is up to date.\n")
    status = az(azure_emulator, "status", "lab.yaml", cwd=tmp_path, check=0).stdout
    assert "  compute.k8s                      attached kubernetes Microsoft.Kubernetes/" in status
    assert "billable" not in status  # an attached pool or cluster bills as its own resource
    renamed = ATTACH.replace("ARC", ARC).replace("  k8s:\n", "  k8x:\n")
    (tmp_path / "lab.yaml").write_text(renamed)
    plan = az(azure_emulator, "plan", "lab.yaml", cwd=tmp_path, check=0).stdout
    assert (
        "- compute.k8s                  no longer in the spec; detach: the cluster itself stays"
        in plan
    )
    since = azure_emulator.mark()
    az(azure_emulator, "apply", "-y", "lab.yaml", cwd=tmp_path, check=0)
    deletes = [
        (r["path"].rsplit("/", 1)[-1], r["query"])
        for r in azure_emulator.requests(since)
        if r["method"] == "DELETE" and "/computes/" in r["path"]
    ]
    assert len(deletes) == 1 and deletes[0][0] == "k8s"
    assert "underlyingResourceAction=Detach" in deletes[0][1]
    destroy = az(azure_emulator, "destroy", "-y", "lab.yaml", cwd=tmp_path, check=0).stdout
    assert "compute.synapse" in destroy
    plan = az(azure_emulator, "plan", "lab.yaml", cwd=tmp_path, check=0).stdout
    assert "+ compute.synapse" in plan  # detached, then the workspace went with the lab
