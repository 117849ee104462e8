"""runner/environments.py and runner/backends/envs.py: what an environment asks for,
interpreters found here, builds, and the layer every local run gets (conda files as PyPI
requirements: tests/test_conda.py)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import mlflow_client, run_mlrun
from wheels import make_wheel

from runner import environments as envs_mod
from runner.backends import envs


def test_python_versions_are_found_here_never_downloaded():
    mine = f"{sys.version_info[0]}.{sys.version_info[1]}"
    path, version = envs_mod.find_python(mine)
    assert version == sys.version.split()[0] and os.path.exists(path)
    assert envs_mod.find_python("3.99") is None
    assert mine in envs_mod.installed_pythons()


def test_references_parse_like_azure_mls():
    assert envs_mod.parse_ref("azureml:sklearn-env:3") == ("sklearn-env", "3")
    assert envs_mod.parse_ref("azureml:sklearn-env@latest") == ("sklearn-env", None)
    assert (
        envs_mod.parse_ref("azureml://registries/azureml/environments/sklearn-1.5/labels/latest")
        is None
    )


# --- layers ------------------------------------------------------------------------------------


def run_in(layer_env: dict, script: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **layer_env, "PIP_NO_INDEX": "1"}
    return subprocess.run(
        ["sh", "-c", script], env=env, capture_output=True, text=True, timeout=300
    )


def test_a_layer_sees_mlruns_packages_and_keeps_what_a_job_installs(tmp_path):
    wheel = make_wheel(tmp_path / "wheels", "tinylayer", "0.1")
    one = envs.make_layer(tmp_path / "one", envs.own())
    two = envs.make_layer(tmp_path / "two", envs.own())
    proc = run_in(
        one, f"pip install {wheel} && python -c 'import tinylayer, mlflow, sys; print(sys.prefix)'"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(str(tmp_path / "one"))
    assert list((tmp_path / "one" / "lib").glob("python*/site-packages/tinylayer/__init__.py"))
    # neither another layer nor mlrun's own interpreter sees it
    assert run_in(two, "python -c 'import tinylayer'").returncode == 1
    mine = subprocess.run([sys.executable, "-c", "import tinylayer"], capture_output=True)
    assert mine.returncode == 1


def test_a_layer_holds_mlflow_at_the_stores_version(tmp_path):
    layer = envs.make_layer(tmp_path / "layer", envs.own())
    proc = run_in(layer, "pip install 'mlflow==2.0.1'")
    assert proc.returncode != 0
    assert "mlflow" in proc.stderr.lower()
    version = run_in(layer, "python -c 'import mlflow; print(mlflow.__version__)'").stdout.strip()
    assert version == envs.mlflow_version()


@pytest.mark.parametrize(
    "reqs, prefer",
    [
        (("numpy", "mlflow"), True),  # MLflow named, unpinned: mlrun's version where it fits
        (("numpy", "azureml-mlflow"), True),
        (("numpy", "mlflow==2.22.2"), False),  # pinned: kept as it is, never rewritten
        (("numpy", "mlflow>=2", "azureml-mlflow"), False),
        (("numpy",), False),  # no MLflow asked for: none added
    ],
)
def test_a_build_request_keeps_requirements_as_written_and_prefers_mlflow_when_unpinned(
    reqs, prefer
):
    python = envs_mod.find_python(None)
    req = envs.request(python, reqs)
    assert (req.requirements, req.prefer_mlflow, req.download) == (reqs, prefer, False)
    assert len(req.key) == 20 and req.key != envs.request(python, ("pandas",)).key
    wanted = envs.request("3.10", reqs)  # a version not found here: uv may download it
    assert (wanted.python, wanted.version, wanted.download) == ("3.10", "3.10", True)


# --- through mlrun: validate, plan and apply ------------------------------------------------------


def lab_with(folder: Path, jobs: str, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "lab.yaml"
    spec.write_text(
        "name: envs\nworkspace: {name: ws-envs}\n"
        "computes: {cpu: {type: amlcompute, max_instances: 2}}\n" + extra + "jobs:\n" + jobs
    )
    return spec


def offline(wheels: Path) -> dict:
    """uv and pip find packages in `wheels` only (tests never download)."""
    return {"UV_NO_INDEX": "1", "UV_FIND_LINKS": str(wheels), "PIP_NO_INDEX": "1"}


CONDA = """\
name: tiny
channels: [conda-forge]
dependencies:
  - python={minor}
  - pip
  - pip:
      - {pin}
"""


def test_a_conda_file_is_built_offline_once_shared_by_labs_and_rebuilt_when_edited(tmp_path):
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "tinybuilt", "0.1")
    make_wheel(wheels, "tinybuilt", "0.2")
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    job = (
        "  show:\n"
        "    command: python -c 'import tinybuilt, sys; print(tinybuilt.VALUE, sys.prefix)';"
        " python -c 'import mlflow' 2>/dev/null || echo no-mlflow\n"
        "    environment: {image: python:3.11, conda_file: conda.yml}\n"
        "    compute: cpu\n"
    )
    labs = [tmp_path / "one", tmp_path / "two"]
    for lab in labs:
        (lab).mkdir()
        (lab / "conda.yml").write_text(CONDA.format(minor=minor, pin="tinybuilt==0.1"))
        lab_with(lab, job)
    env = offline(wheels)
    first = run_mlrun("apply", "-y", "lab.yaml", cwd=labs[0], env=env, check=0)
    built = re.search(r"not built yet: builds on apply \((.+?)\)\n", first.stderr)
    assert built, first.stderr
    log = run_mlrun("logs", "lab.yaml", "show", cwd=labs[0], check=0).stdout.split()
    assert log[0] == "0.1" and log[2] == "no-mlflow"  # mlrun adds nothing it was not asked for
    assert "/runs/show/" in log[1] and log[1].endswith("/env")  # the run's own layer
    assert (Path(built[1]) / "mlrun-env.json").is_file()
    # the second lab, same content: the environment is reused, not built again
    second = run_mlrun("apply", "-y", "lab.yaml", cwd=labs[1], env=env, check=0)
    assert f"): built ({built[1]})\n" in second.stderr
    assert not list((labs[1] / ".mlrun").rglob("20_image_build_log.txt"))
    assert list((labs[0] / ".mlrun").rglob("20_image_build_log.txt"))
    # an edit of the conda file reruns the job in a new build
    (labs[1] / "conda.yml").write_text(CONDA.format(minor=minor, pin="tinybuilt==0.2"))
    plan = run_mlrun("plan", "lab.yaml", cwd=labs[1], env=env, check=0)
    assert "> job.show" in plan.stdout and "environment changed since run" in plan.stdout
    rebuilt = re.search(r"not built yet: builds on apply \((.+?)\)\n", plan.stderr)
    assert rebuilt and rebuilt[1] != built[1], plan.stderr  # a new build, the old one kept
    run_mlrun("apply", "-y", "lab.yaml", cwd=labs[1], env=env, check=0)
    assert run_mlrun("logs", "lab.yaml", "show", cwd=labs[1], check=0).stdout.startswith("0.2 ")
    assert (Path(rebuilt[1]) / "mlrun-env.json").is_file()
    assert (Path(built[1]) / "mlrun-env.json").is_file()


def test_what_a_job_installs_stays_in_its_run(tmp_path):
    wheel = make_wheel(tmp_path / "wheels", "tinyiso", "0.1")
    spec = lab_with(
        tmp_path,
        "  install:\n"
        f"    command: pip install {wheel} && python -c 'import tinyiso; print(tinyiso.VALUE)'\n"
        "    environment: azureml:AzureML-sklearn-1.5@latest\n"
        "    compute: cpu\n",
    )
    run_mlrun("apply", "-y", spec, cwd=tmp_path, env=offline(tmp_path), check=0)
    assert run_mlrun("logs", spec, "install", cwd=tmp_path, check=0).stdout.endswith("0.1\n")
    lab_with(
        tmp_path,
        "  install:\n"
        f"    command: pip install {wheel} && python -c 'import tinyiso; print(tinyiso.VALUE)'\n"
        "    environment: azureml:AzureML-sklearn-1.5@latest\n"
        "    compute: cpu\n"
        "  other:\n"
        "    command: python -c 'import tinyiso' 2>/dev/null || echo isolated\n"
        "    compute: cpu\n",
    )
    run_mlrun("apply", "-y", spec, cwd=tmp_path, env=offline(tmp_path), check=0)
    assert run_mlrun("logs", spec, "other", cwd=tmp_path, check=0).stdout == "isolated\n"
    assert subprocess.run([sys.executable, "-c", "import tinyiso"]).returncode == 1
    assert not list((tmp_path / ".mlrun").rglob("tinyiso"))  # the layers went with their runs


def test_azure_mls_folders_and_variables_are_there_before_the_command(tmp_path):
    spec = lab_with(
        tmp_path,
        "  hello:\n"
        '    command: echo "hello world" > ./outputs/helloworld.txt && echo note > logs/n.txt'
        " && echo $AZUREML_RUN_ID $MLFLOW_RUN_ID $AZUREML_ARM_WORKSPACE_NAME"
        " $AZUREML_ARM_PROJECT_NAME $MLFLOW_EXPERIMENT_NAME $AZURE_ML_OUTPUT_out\n"
        "    outputs: {out: {type: uri_folder}}\n"
        "    experiment_name: hello-exp\n",
    )
    run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0)
    words = run_mlrun("logs", spec, "hello", cwd=tmp_path, check=0).stdout.split()
    assert words[0] == words[1] and len(words[0]) == 32
    assert words[2:5] == ["ws-envs", "hello-exp", "hello-exp"]
    assert words[5].endswith("/outputs/out")
    client = mlflow_client(tmp_path, "ws-envs")
    run = client.get_run(words[0])
    assert Path(
        client.download_artifacts(run.info.run_id, "outputs/helloworld.txt")
    ).read_text() == ("hello world\n")


DOCKER = "  docker: {command: echo, environment: {build: {path: ctx}}}"


def test_environments_the_local_target_cannot_build_are_located_errors(tmp_path):
    (tmp_path / "old.yml").write_text("dependencies:\n  - python=3.99\n  - numpy\n")
    (tmp_path / "cuda.yml").write_text(
        "dependencies:\n  - python=3.11\n  - cudatoolkit=11.8\n  - libgcc-ng\n"
    )
    spec = lab_with(
        tmp_path,
        "  old: {command: echo, environment: {image: x, conda_file: old.yml}}\n"
        "  cuda: {command: echo, environment: {image: x, conda_file: cuda.yml}}\n" + DOCKER + "\n",
    )
    proc = run_mlrun("validate", spec, cwd=tmp_path)
    assert proc.returncode == 1
    installed = ", ".join(envs_mod.installed_pythons())
    assert proc.stderr.splitlines() == [
        "cuda.yml:3:5: error: $.jobs.cuda.environment.conda_file.dependencies[1]: "
        "'cudatoolkit=11.8' is a conda-only package: it has no PyPI counterpart, so the local "
        "target cannot build this environment (map it to a stand-in in "
        "targets.local.environments)",
        "cuda.yml:4:5: warning: $.jobs.cuda.environment.conda_file.dependencies[2]: 'libgcc-ng' "
        "is a runtime library conda installs; locally the system's and the wheels' own are used",
        f"lab.yaml:7:{DOCKER.index('{build') + 1}: warning: "
        "$.jobs.docker.environment: environment inline build ctx is built from a Docker context, "
        "which the local target cannot build: map it to a local stand-in in "
        "targets.local.environments",
        "old.yml:2:5: error: $.jobs.old.environment.conda_file.dependencies[0]: python=3.99: no "
        f"Python 3.99 is installed here (installed: {installed}) and uv may not download one "
        "(UV_PYTHON_DOWNLOADS); install it, or change the conda file",
        "lab.yaml: 2 errors, 2 warnings",
    ]
    # on Azure all three build: nothing to say
    azure = run_mlrun("validate", spec, "--target", "azure", cwd=tmp_path)
    assert "conda" not in azure.stderr and "Docker" not in azure.stderr


def test_a_stand_in_replaces_a_reference_locally(tmp_path):
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "tinystand", "0.3")
    (tmp_path / "env.yml").write_text("name: stand\nimage: python:3.11\nconda_file: conda.yml\n")
    (tmp_path / "conda.yml").write_text("dependencies:\n  - pip:\n      - tinystand\n")
    spec = lab_with(
        tmp_path,
        "  show:\n"
        "    command: python -c 'import tinystand; print(tinystand.VALUE)'\n"
        "    environment: azureml:my-env@latest\n",
        extra="targets:\n  local:\n    environments: {'azureml:my-env@latest': env.yml}\n",
    )
    proc = run_mlrun("apply", "-y", spec, cwd=tmp_path, env=offline(wheels), check=0)
    assert "note: environment azureml:my-env@latest (stand-in env.yml) of show" in proc.stderr
    assert run_mlrun("logs", spec, "show", cwd=tmp_path, check=0).stdout == "0.3\n"


# --- the environments: section (az ml environment create) -----------------------------------------

REGISTERED = """\
environments:
  tiny-env: {{image: python:3.11, conda_file: conda.yml{version}}}
"""
USES = (
    "  show:\n    command: python -c 'import tinyreg; print(tinyreg.VALUE)'\n"
    "    environment: {ref}\n"
)


def registered_lab(folder: Path, pin: str, version: str = "", ref: str = "azureml:tiny-env@latest"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "conda.yml").write_text(f"dependencies:\n  - pip:\n      - {pin}\n")
    return lab_with(folder, USES.format(ref=ref), extra=REGISTERED.format(version=version))


def test_a_registered_environment_is_versioned_and_built_for_the_jobs_that_use_it(tmp_path):
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "tinyreg", "1.0")
    make_wheel(wheels, "tinyreg", "2.0")
    lab = tmp_path / "lab"
    spec = registered_lab(lab, "tinyreg==1.0")
    env = offline(wheels)
    plan = run_mlrun("plan", spec, cwd=lab, env=env, check=0).stdout
    assert "  + environment.tiny-env         v1\n" in plan
    run_mlrun("apply", "-y", spec, cwd=lab, env=env, check=0)
    assert run_mlrun("logs", spec, "show", cwd=lab, check=0).stdout == "1.0\n"
    again = run_mlrun("plan", spec, cwd=lab, env=env, check=0).stdout
    assert again.endswith("No changes. Everything is up to date.\n")
    # new content without a version: the next version, and the job runs in it
    registered_lab(lab, "tinyreg==2.0")
    plan = run_mlrun("plan", spec, cwd=lab, env=env, check=0).stdout
    assert (
        "  + environment.tiny-env         v2 (new version: its content changed; v1 is kept)\n"
        in plan
    )
    assert "environment changed since run" in plan
    run_mlrun("apply", "-y", spec, cwd=lab, env=env, check=0)
    assert run_mlrun("logs", spec, "show", cwd=lab, check=0).stdout == "2.0\n"


def test_changed_content_under_the_same_version_is_refused_and_a_wrong_version_located(tmp_path):
    wheels = tmp_path / "wheels"
    make_wheel(wheels, "tinyreg", "1.0")
    spec = registered_lab(tmp_path, "tinyreg==1.0", version=", version: 3")
    run_mlrun("apply", "-y", spec, cwd=tmp_path, env=offline(wheels), check=0)
    registered_lab(tmp_path, "tinyreg==2.0", version=", version: 3")
    proc = run_mlrun("plan", spec, cwd=tmp_path, env=offline(wheels))
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        "error: environment.tiny-env: version 3 was registered with other content; versions are "
        "immutable, as on Azure ML: give it a new version (or drop version: to number them "
        "automatically)\n"
    )
    registered_lab(tmp_path, "tinyreg==1.0", version=", version: 3", ref="azureml:tiny-env:2")
    proc = run_mlrun("validate", spec, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == (
        "lab.yaml:9:18: error: $.jobs.show.environment: environment tiny-env has version 3 in "
        "this spec, not 2"
    )


@pytest.mark.azure
def test_on_azure_an_environment_is_registered_tagged_and_archived_by_destroy(
    azure_emulator, tmp_path
):
    spec = registered_lab(tmp_path, "tinyreg==1.0")
    text = spec.read_text().replace(
        "workspace: {name: ws-envs}",
        "workspace: {name: ws-envs, resource_group: rg-envs, location: eastus}\n"
        "targets: {azure: {subscription_id: '${{env.AZURE_SUBSCRIPTION_ID}}'}}",
    )
    spec.write_text(text.replace("jobs:\n" + USES.format(ref="azureml:tiny-env@latest"), ""))
    azure = ("--target", "azure")
    plan = azure_emulator.mlrun("plan", spec, *azure, cwd=tmp_path, check=0).stdout
    assert "  + environment.tiny-env         v1\n" in plan
    mark = azure_emulator.mark()
    azure_emulator.mlrun("apply", "-y", spec, *azure, cwd=tmp_path, check=0)
    puts = [r for r in azure_emulator.requests(mark) if r["method"] == "PUT"]
    assert any(r["path"].endswith("/environments/tiny-env/versions/1") for r in puts)
    again = azure_emulator.mlrun("plan", spec, *azure, cwd=tmp_path, check=0).stdout
    assert again == "No changes. Everything is up to date.\n"
    mark = azure_emulator.mark()
    azure_emulator.mlrun("destroy", "-y", spec, *azure, cwd=tmp_path, check=0)
    archived = [
        r
        for r in azure_emulator.requests(mark)
        if r["method"] == "PUT" and r["path"].endswith("/environments/tiny-env")
    ]
    assert archived


def test_export_writes_environment_files_the_sdk_loads_with_their_conda_files(tmp_path):
    pytest.importorskip("azure.ai.ml", reason="needs the azure extra (installed by .ci/run)")
    from azure.ai.ml import load_environment, load_job

    spec = registered_lab(tmp_path / "lab", "tinyreg==1.0", version=", version: 2")
    text = spec.read_text() + (
        "  inline:\n    command: echo\n"
        "    environment: {image: python:3.11, conda_file: conda.yml}\n"
    )
    spec.write_text(text)
    out = tmp_path / "out"
    run_mlrun("export", spec, "-o", out, cwd=tmp_path, check=0)
    env = load_environment(out / "environments" / "tiny-env.yml")
    assert (env.name, env.version, env.image) == ("tiny-env", "2", "python:3.11")
    assert env.conda_file["dependencies"] == [{"pip": ["tinyreg==1.0"]}]
    job = load_job(out / "jobs" / "inline.yml")
    assert job.environment.conda_file["dependencies"] == [{"pip": ["tinyreg==1.0"]}]
