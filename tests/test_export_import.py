"""mlrun export (CLI v2 YAML files the azure-ai-ml SDK loads) and mlrun import (az ml files,
MLproject)."""

import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SEED, SPECS, mlflow_client, run_mlrun

from runner import plan as planning, spec as spec_mod

HELLO = SPECS / "hello.yaml"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


# --- export -----------------------------------------------------------------------------------


def test_export_of_the_seed_spec_is_loaded_by_the_sdk(mlrun, tmp_path):
    pytest.importorskip("azure.ai.ml")
    from azure.ai.ml import load_compute, load_job, load_workspace

    out = tmp_path / "out"
    code, stdout, err = mlrun("export", SEED, "-o", out, "--var", "suffix=x")
    assert code == 0, err
    for rel in (
        "workspace.yml",
        "computes/ci-x.yml",
        "computes/aml-cluster.yml",
        "jobs/train-mlflow.yml",
        "jobs/train-autolog.yml",
    ):
        assert f"wrote {out / rel}" in stdout
    assert (
        "not exported: variables (resolved into the files), queries (no az ml equivalent)\n" in err
    )

    ws_doc = yaml.safe_load((out / "workspace.yml").read_text())
    assert ws_doc["$schema"] == "https://azuremlschemas.azureedge.net/latest/workspace.schema.json"
    ws = load_workspace(out / "workspace.yml")
    assert (ws.name, ws.location, ws.resource_group) == ("mlw-dp100-x", "eastus", "rg-dp100-x")

    ci_doc = yaml.safe_load((out / "computes/ci-x.yml").read_text())
    assert (
        ci_doc["$schema"]
        == "https://azuremlschemas.azureedge.net/latest/computeInstance.schema.json"
    )
    ci = load_compute(out / "computes/ci-x.yml")
    assert (type(ci).__name__, ci.name, ci.type, ci.size) == (
        "ComputeInstance",
        "ci-x",
        "computeinstance",
        "STANDARD_DS11_V2",
    )
    cluster_doc = yaml.safe_load((out / "computes/aml-cluster.yml").read_text())
    assert (
        cluster_doc["$schema"]
        == "https://azuremlschemas.azureedge.net/latest/amlCompute.schema.json"
    )
    cluster = load_compute(out / "computes/aml-cluster.yml")
    assert (
        cluster.name,
        cluster.type,
        cluster.size,
        cluster.min_instances,
        cluster.max_instances,
    ) == ("aml-cluster", "amlcompute", "STANDARD_DS11_V2", 0, 2)

    job_doc = yaml.safe_load((out / "jobs/train-mlflow.yml").read_text())
    assert (
        job_doc["$schema"] == "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json"
    )
    assert (out / "jobs" / job_doc["code"]).resolve() == ROOT / "training"
    assert (
        out / "jobs" / job_doc["inputs"]["training_data"]["path"]
    ).resolve() == ROOT / "training" / "data" / "diabetes.csv"
    job = load_job(out / "jobs/train-mlflow.yml")
    assert job.command == "python train-model-mlflow.py --training_data ${{inputs.training_data}}"
    assert (job.compute, job.experiment_name, job.display_name) == (
        "aml-cluster",
        "diabetes-training",
        "diabetes-train-mlflow",
    )
    assert job.environment == "AzureML-sklearn-1.5@latest"  # the SDK strips azureml:
    assert job.inputs["training_data"].type == "uri_file"
    assert job.tags == {"model_type": "LogisticRegression"}
    autolog = load_job(out / "jobs/train-autolog.yml")
    assert autolog.command.startswith("python train-model-autolog.py")


def test_export_of_the_hello_spec_is_loaded_by_the_sdk(mlrun, tmp_path):
    pytest.importorskip("azure.ai.ml")
    from azure.ai.ml import load_compute, load_job, load_workspace

    out = tmp_path / "out"
    code, stdout, err = mlrun("export", HELLO, "-o", out)
    assert code == 0, err
    assert stdout.splitlines() == [
        f"wrote {out / 'workspace.yml'}",
        f"wrote {out / 'computes/cpu-cluster.yml'}",
        f"wrote {out / 'jobs/hello.yml'}",
    ]
    assert load_workspace(out / "workspace.yml").name == "mlw-hello"
    cluster = load_compute(out / "computes/cpu-cluster.yml")
    assert (cluster.name, cluster.max_instances) == ("cpu-cluster", 1)
    job = load_job(out / "jobs/hello.yml")
    assert job.compute == "cpu-cluster"
    assert job.environment.image == "library/python:latest"
    assert job.experiment_name == "hello-world"
    assert job.command.startswith('echo "hello world"')


def test_export_notes_a_generated_variable(mlrun, tmp_path):
    code, _, err = mlrun("export", SEED, "-o", tmp_path / "out")
    assert code == 0, err
    name = yaml.safe_load((tmp_path / "out/workspace.yml").read_text())["name"]
    suffix = name.removeprefix("mlw-dp100-")
    assert (
        f"note: variable suffix was generated for this export only ({suffix}); "
        "pass --var suffix=VALUE to choose it" in err
    )


# --- round trip -------------------------------------------------------------------------------


def _same_plan(a: Path, b: Path, overrides_a: dict, overrides_b: dict) -> None:
    want = planning.desired(spec_mod.load(a, overrides=overrides_a), manages_resource_group=False)
    got = planning.desired(spec_mod.load(b, overrides=overrides_b), manages_resource_group=False)
    assert {k: v["attrs"] for k, v in got["resources"].items()} == {
        k: v["attrs"] for k, v in want["resources"].items()
    }
    assert {k: v["fingerprint"] for k, v in got["jobs"].items()} == {
        k: v["fingerprint"] for k, v in want["jobs"].items()
    }
    assert {k: v["compute"] for k, v in got["jobs"].items()} == {
        k: v["compute"] for k, v in want["jobs"].items()
    }


@pytest.mark.parametrize("inline", [False, True], ids=["includes", "inline"])
def test_export_then_import_gives_the_same_plan(mlrun, tmp_path, inline):
    out = tmp_path / "exported"
    assert mlrun("export", SEED, "-o", out, "--var", "suffix=x")[0] == 0
    files = [
        out / "workspace.yml",
        *sorted((out / "computes").iterdir()),
        *sorted((out / "jobs").iterdir()),
    ]
    spec = tmp_path / "lab" / "spec.yaml"
    code, stdout, err = mlrun(
        "import", *files, "-o", spec, "--name", "mlflow-tracking", *(["--inline"] if inline else [])
    )
    assert code == 0, err
    assert stdout == f"wrote {spec} (2 computes, 2 jobs)\n"
    data = yaml.safe_load(spec.read_text())
    assert data["name"] == "mlflow-tracking"
    assert data["workspace"] == {
        "name": "mlw-dp100-x",
        "location": "eastus",
        "resource_group": "rg-dp100-x",
    }
    if inline:
        assert (spec.parent / data["jobs"]["train-mlflow"]["code"]).resolve() == ROOT / "training"
        assert data["computes"]["ci-x"] == {"type": "computeinstance", "size": "STANDARD_DS11_V2"}
    else:
        assert data["computes"]["ci-x"] == {"file": "../exported/computes/ci-x.yml"}
        assert data["jobs"]["train-mlflow"] == {"file": "../exported/jobs/train-mlflow.yml"}
    assert mlrun("validate", spec)[0] == 0
    _same_plan(SEED, spec, {"suffix": "x"}, {})


SWEEP_LAB = """\
name: tune
workspace: {name: ws-tune, resource_group: rg-tune, location: eastus}
computes:
  cluster: {type: amlcompute, size: STANDARD_DS11_V2, max_instances: 2}
jobs:
  tune:
    type: sweep
    compute: cluster
    trial:
      code: src
      command: python train.py --a ${{search_space.a}} --lr ${{search_space.lr}}
      environment: azureml:AzureML-sklearn-1.5@latest
    search_space:
      a: {type: choice, values: [1, 2]}
      lr: {type: loguniform, min_value: -6, max_value: -1}
    sampling_algorithm: {type: random, seed: 7}
    objective: {goal: minimize, primary_metric: loss}
    limits: {max_total_trials: 6, max_concurrent_trials: 2, trial_timeout: 60}
    early_termination: {type: median_stopping, evaluation_interval: 1, delay_evaluation: 2}
"""


@pytest.mark.parametrize("inline", [False, True], ids=["includes", "inline"])
def test_a_sweep_exported_then_imported_gives_the_same_plan(mlrun, tmp_path, inline):
    lab = _write(tmp_path / "lab" / "lab.yaml", SWEEP_LAB)
    _write(tmp_path / "lab" / "src" / "train.py", "print('trial')\n")
    out = tmp_path / "exported"
    assert mlrun("export", lab, "-o", out)[0] == 0
    spec = tmp_path / "again" / "spec.yaml"
    code, _, err = mlrun(
        "import",
        out / "workspace.yml",
        out / "computes" / "cluster.yml",
        out / "jobs" / "tune.yml",
        "-o",
        spec,
        "--name",
        "tune",
        *(["--inline"] if inline else []),
    )
    assert code == 0, err
    job = yaml.safe_load(spec.read_text())["jobs"]["tune"]
    if inline:
        assert job["type"] == "sweep" and job["search_space"]["lr"]["type"] == "loguniform"
    assert mlrun("validate", spec)[0] == 0
    _same_plan(lab, spec, {}, {})
    loaded = spec_mod.load(spec)
    assert loaded.jobs["tune"].is_sweep and loaded.jobs["tune"].limits["max_total_trials"] == 6


def test_import_inside_the_repo_points_at_the_schema(mlrun, tmp_path):
    out = tmp_path / "exported"
    assert mlrun("export", HELLO, "-o", out)[0] == 0
    spec = SPECS / "jobs" / "tmp-imported-by-test.yaml"
    try:
        code, _, err = mlrun(
            "import",
            out / "workspace.yml",
            out / "jobs/hello.yml",
            out / "computes/cpu-cluster.yml",
            "-o",
            spec,
        )
        assert code == 0, err
        assert (
            spec.read_text().splitlines()[0]
            == "# yaml-language-server: $schema=../../schemas/lab.schema.json"
        )
        assert yaml.safe_load(spec.read_text())["name"] == "mlw-hello"
        _same_plan(HELLO, spec, {}, {})
    finally:
        spec.unlink(missing_ok=True)
    outside = tmp_path / "spec.yaml"
    assert mlrun("import", out / "workspace.yml", "-o", outside)[0] == 0
    assert not outside.read_text().startswith("#")


# --- MLproject --------------------------------------------------------------------------------

LOG_PARAM = """
import sys

import mlflow

name, value = sys.argv[1], sys.argv[2]
mlflow.log_param(name, value)
"""


def _mlproject(root: Path) -> Path:
    _write(root / "project" / "log_param.py", LOG_PARAM)
    _write(root / "project" / "data" / "rows.csv", "a,b\n1,2\n")
    return _write(
        root / "project" / "MLproject",
        """
        name: My Project
        python_env: python_env.yaml
        entry_points:
          main:
            parameters:
              alpha: {type: float, default: 0.5}
              data: {type: path, default: data/rows.csv}
            command: "python log_param.py alpha {alpha} && test -f {data}"
          greet:
            parameters:
              greeting: hello
            command: "python log_param.py greeting {greeting}"
        """,
    )


def test_mlproject_import_gives_jobs_with_inputs(mlrun, tmp_path):
    mlproject = _mlproject(tmp_path)
    spec = tmp_path / "lab" / "spec.yaml"
    code, stdout, err = mlrun("import", mlproject, "-o", spec)
    assert code == 0, err
    assert stdout == f"wrote {spec} (0 computes, 2 jobs)\n"
    assert (
        err == f"note: {mlproject}: python_env not imported: locally the current interpreter runs "
        "the jobs; give them an environment to run on Azure\n"
    )
    data = yaml.safe_load(spec.read_text())
    assert data["name"] == "my-project"
    assert data["variables"]["suffix"]["generate"] == "hex"
    assert data["workspace"] == {
        "name": "mlw-my-project-${{vars.suffix}}",
        "resource_group": "rg-my-project-${{vars.suffix}}",
        "location": "eastus",
    }
    assert data["jobs"] == {
        "main": {
            "code": "../project",
            "command": "python log_param.py alpha ${{inputs.alpha}} && test -f ${{inputs.data}}",
            "inputs": {
                "alpha": 0.5,
                "data": {"type": "uri_file", "path": "../project/data/rows.csv"},
            },
        },
        "greet": {
            "code": "../project",
            "command": "python log_param.py greeting ${{inputs.greeting}}",
            "inputs": {"greeting": "hello"},
        },
    }
    assert mlrun("validate", spec)[0] == 0


def test_mlproject_jobs_run_locally_with_their_parameters(tmp_path):
    mlproject = _mlproject(tmp_path)
    run_mlrun("import", mlproject, "-o", "lab/spec.yaml", "--name", "proj", cwd=tmp_path, check=0)
    run_mlrun("apply", "-y", "lab/spec.yaml", "--var", "suffix=t", cwd=tmp_path, check=0)
    client = mlflow_client(tmp_path / "lab", "mlw-proj-t")
    exp = client.get_experiment_by_name("proj")
    runs = {r.data.tags["mlrun.job"]: r for r in client.search_runs([exp.experiment_id])}
    assert runs["main"].info.status == "FINISHED"
    assert runs["main"].data.params["alpha"] == "0.5"
    assert runs["greet"].data.params["greeting"] == "hello"


# --- errors -----------------------------------------------------------------------------------


def test_import_refuses_to_overwrite(mlrun, tmp_path):
    mlproject = _mlproject(tmp_path)
    spec = _write(tmp_path / "spec.yaml", "keep: me\n")
    code, out, err = mlrun("import", mlproject, "-o", spec)
    assert (code, out, err) == (
        1,
        "",
        f"error: {spec}: already exists (pass --force to overwrite)\n",
    )
    assert spec.read_text() == "keep: me\n"
    assert mlrun("import", mlproject, "-o", spec, "--force")[0] == 0
    assert yaml.safe_load(spec.read_text())["name"] == "my-project"


@pytest.mark.parametrize(
    "name,text,message",
    [
        (
            "notes.yml",
            "hello: world\n",
            "{f}: not an az ml workspace, compute, environment, component, data, datastore, "
            "model, endpoint, deployment, schedule or job file, nor an MLproject file",
        ),
        (
            "broken.yml",
            "a: [1, 2\n",
            "{f}:2:1: not valid YAML: expected ',' or ']', but got '<stream end>'",
        ),
        ("list.yml", "- 1\n- 2\n", "{f}: expected a YAML mapping"),
        ("deep.yml", "a: " + "[" * 3000 + "\n", "{f}: not valid YAML: nested too deeply"),
        (
            "MLproject",
            "name: x\nentry_points:\n  main:\n    parameters: {a: {type: float}}\n"
            "    command: python t.py {a}\n",
            "{f}: entry point 'main': parameter 'a' has no default (a spec input needs a value)",
        ),
        (
            "MLproject",
            "name: x\nentry_points:\n  main:\n    command: python t.py {b}\n",
            "{f}: entry point 'main': the command uses undeclared parameters: b",
        ),
    ],
)
def test_import_errors_name_the_file(mlrun, tmp_path, name, text, message):
    f = _write(tmp_path / name, text)
    code, out, err = mlrun("import", f, "-o", tmp_path / "spec.yaml")
    assert (code, out, err) == (1, "", f"error: {message.format(f=f)}\n")
    assert not (tmp_path / "spec.yaml").exists()


def test_import_maps_automl_finetuning_and_pipeline_component_files(mlrun, tmp_path):
    """azureml-examples' automl and finetuning job files are jobs; a pipelineComponent file
    (`type: pipeline`, as a pipeline job) is a component."""
    automl = _write(
        tmp_path / "automl.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/autoMLJob.schema.json
        type: automl
        task: classification
        primary_metric: accuracy
        target_column_name: y
        training_data: {type: mltable, path: azureml:bank@latest}
        """,
    )
    finetune = _write(
        tmp_path / "tune.yml",
        """
        type: finetuning
        model_provider: custom
        task: chat_completion
        model: {path: azureml://registries/azureml/models/Phi-3/versions/14, type: mlflow_model}
        training_data: {type: uri_file, path: azureml:chats@latest}
        """,
    )
    component = _write(
        tmp_path / "hello.yml",
        """
        $schema: https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json
        name: hello_batch
        type: pipeline
        jobs:
          hello: {type: command, command: echo hi, environment: azureml:AzureML-sklearn-1.5@latest}
        """,
    )
    spec = tmp_path / "spec.yaml"
    code, _, err = mlrun("import", automl, finetune, component, "-o", spec)
    assert code == 0, err
    doc = yaml.safe_load(spec.read_text())
    assert doc["jobs"] == {"automl": {"file": "automl.yml"}, "tune": {"file": "tune.yml"}}
    assert doc["components"] == {"hello_batch": {"file": "hello.yml"}}


def test_import_of_a_missing_file(mlrun, tmp_path):
    code, out, err = mlrun("import", tmp_path / "nope.yml", "-o", tmp_path / "spec.yaml")
    assert (code, out, err) == (1, "", f"error: {tmp_path / 'nope.yml'}: no such file\n")


def test_import_rejects_two_jobs_with_one_name(mlrun, tmp_path):
    a = _write(tmp_path / "a" / "train.yml", "command: echo a\n")
    b = _write(tmp_path / "b" / "train.yml", "command: echo b\n")
    code, out, err = mlrun("import", a, b, "-o", tmp_path / "spec.yaml")
    assert (code, out, err) == (
        1,
        "",
        f"error: {b}: a second job named 'train' (the first is in {a})\n",
    )


@pytest.mark.parametrize("name", ["deploy.yaml", "deploy-batch.yaml"])
def test_models_and_endpoints_are_exported_for_the_sdk_and_imported_back(mlrun, tmp_path, name):
    """Issue 30: export carries models, endpoints and their deployments (az ml model /
    online-endpoint / batch-endpoint / *-deployment files the SDK loads), and import reads them
    back to the same plan; a model a job makes names that job's run, said in a note."""
    from azure.ai.ml import (
        load_batch_endpoint,
        load_model,
        load_online_deployment,
        load_online_endpoint,
    )
    from azure.ai.ml.entities._load_functions import load_model_batch_deployment

    spec = ROOT / "specs" / name
    out = tmp_path / "exported"
    code, stdout, err = mlrun("export", spec, "-o", out)
    assert code == 0, err
    said = stdout + err
    (model,) = sorted((out / "models").iterdir())
    assert "its path names the run of job train: set it once the job ran" in said
    loaded = load_model(model)
    assert loaded.type == "mlflow_model"
    assert loaded.path == "azureml://jobs/<run of job train>/outputs/artifacts/paths/model"
    (endpoint_file,) = sorted((out / "endpoints").glob("*.yml"))
    deployments = sorted((out / "endpoints" / endpoint_file.stem).glob("*.yml"))
    online = name == "deploy.yaml"
    endpoint = (load_online_endpoint if online else load_batch_endpoint)(endpoint_file)
    assert endpoint.name == endpoint_file.stem
    for file in deployments:
        dep = (load_online_deployment if online else load_model_batch_deployment)(file)
        assert (dep.name, dep.endpoint_name) == (file.stem, endpoint.name)
        assert str(dep.model).endswith("diabetes-mlflow@latest")  # the SDK drops azureml:
    files = [p for p in sorted(out.rglob("*.yml")) if p.name != "workspace.yml"]
    back = tmp_path / "lab" / "spec.yaml"
    code, _, err = mlrun("import", out / "workspace.yml", *files, "-o", back)
    assert code == 0, err
    data = yaml.safe_load(back.read_text())
    assert data["models"]["diabetes-mlflow"]["path"] == "${{jobs.train.artifacts}}/model"
    assert set(data["endpoints"][endpoint.name]["deployments"]) == {p.stem for p in deployments}
    assert mlrun("validate", back)[0] == 0
    want = planning.desired(spec_mod.load(spec), manages_resource_group=False)["resources"]
    got = planning.desired(spec_mod.load(back), manages_resource_group=False)["resources"]
    called = {k for k in want if k.startswith("invoke.")}  # a call, not a file: noted
    assert called and "invoke: is a call, not a file" in said
    assert {k: v["attrs"] for k, v in got.items()} == {
        k: v["attrs"] for k, v in want.items() if k not in called
    }
