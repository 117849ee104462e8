"""runner/curated.py: the bundled table of Azure ML's curated environments (every reference form,
the names the DP-100 labs and azureml-examples use) and its regenerator, run on a small git
repository made here in the shape of Azure/azureml-assets."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from runner import curated

TABLE = json.loads(curated.TABLE.read_text(encoding="utf-8"))


# --- the bundled table ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ref",
    [
        "azureml:AzureML-sklearn-1.5@latest",
        "azureml:AzureML-sklearn-1.5:17",
        "azureml:AzureML-sklearn-1.5",
        "AzureML-sklearn-1.5@latest",
        "AzureML-sklearn-1.5:3",
        "AzureML-sklearn-1.5",
        "azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
        "azureml://registries/azureml/environments/sklearn-1.5/versions/17",
        "azureml://registries/azureml/environments/sklearn-1.5",
        "azureml:azureml://registries/azureml/environments/sklearn-1.5/versions/17",
        "azureml:azureml-SKLEARN-1.5@latest",
        "AZUREML:AzureML-Sklearn-1.5:17",
        "azureml://registries/AzureML/environments/SKLearn-1.5/labels/latest",
        "  azureml:AzureML-sklearn-1.5@latest  ",
        "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.MachineLearningServices/"
        "workspaces/ws/environments/AzureML-sklearn-1.5/versions/17",
    ],
)
def test_every_reference_form_resolves_to_the_one_entry_of_its_name(ref):
    entry = curated.lookup(ref)
    assert entry is not None
    assert entry.name == "sklearn-1.5"
    assert entry is curated.lookup("azureml:AzureML-sklearn-1.5@latest")


def test_sklearn_1_5_is_python_3_10_with_the_published_pins():
    entry = curated.lookup("azureml:AzureML-sklearn-1.5@latest")
    assert entry is not None
    assert entry.python == "3.10"
    assert entry.aliases == ("AzureML-sklearn-1.5",)
    assert entry.requirements[:3] == ("pandas~=1.5.3", "scipy~=1.10.0", "numpy~=1.22.0")
    assert "scikit-learn~=1.5.0" in entry.requirements
    assert "azureml-mlflow" in entry.requirements  # {{latest-pypi-version}}: unpinned
    assert not any("{{" in r for r in entry.requirements)
    assert (entry.gpu, entry.retired, entry.kind, entry.dropped) == (False, False, "training", ())
    assert entry.source == f"assets/training/general/environments/sklearn-1.5@{curated.COMMIT}"


def test_the_dp100_retired_environments_resolve():
    old = curated.lookup("azureml:AzureML-sklearn-0.24-ubuntu18.04-py37-cpu@latest")
    assert old is not None
    assert (old.name, old.python, old.retired, old.gpu) == (
        "sklearn-0.24-ubuntu18.04-py37-cpu",
        "3.7",
        True,
        False,
    )
    assert "scikit-learn==0.24.1" in old.requirements
    assert "pandas>=1.1,<1.2" in old.requirements
    assert old.source.startswith("training/general/src/environments/sklearn-0.24-ubuntu18.04-py37-")
    assert re.fullmatch(r".*@[0-9a-f]{40}", old.source)
    assert old.source.rsplit("@", 1)[1] != curated.COMMIT  # read from history, not HEAD

    ten = curated.lookup("AzureML-sklearn-1.0-ubuntu20.04-py38-cpu")
    assert ten is not None
    assert (ten.name, ten.python, ten.retired) == ("sklearn-1.0-ubuntu20.04-py38-cpu", "3.8", True)
    assert "scikit-learn~=1.0.0" in ten.requirements


# every curated name azureml-examples and MicrosoftLearning/mslearn-azure-ml use, and its entry
USED = {
    "azureml://registries/azureml/environments/sklearn-1.5/labels/latest": "sklearn-1.5",
    "azureml://registries/azureml/environments/sklearn-1.0/labels/latest": "sklearn-1.0",
    "azureml://registries/azureml/environments/responsibleai-tabular/versions/28": (
        "responsibleai-tabular"
    ),
    "azureml://registries/azureml/environments/model-evaluation/versions/6": "model-evaluation",
    "azureml://registries/azureml/environments/model-evaluation/versions/24": "model-evaluation",
    "azureml://registries/azureml/environments/llm-dbcopilot-mir/versions/": "llm-dbcopilot-mir",
    "azureml://registries/azureml/environments/acpt-pytorch-2.8-cuda12.6/labels/latest": (
        "acpt-pytorch-2.8-cuda12.6"
    ),
    "azureml://registries/azureml/environments/tensorflow-2.16-cuda12/labels/latest": (
        "tensorflow-2.16-cuda12"
    ),
    "azureml:AzureML-acpt-pytorch-2.8-cuda12.6:1": "acpt-pytorch-2.8-cuda12.6",
    "azureml:AzureML-tensorflow-2.16-cuda12@latest": "tensorflow-2.16-cuda12",
    "AzureML-tensorflow-2.12-cuda11@latest": "tensorflow-2.12-cuda11",
    "azureml:AzureML-lightgbm-3.3@latest": "lightgbm-3.3",
    "AzureML-lightgbm-3.2-ubuntu18.04-py37-cpu@latest": "lightgbm-3.2-ubuntu18.04-py37-cpu",
    "AzureML-ai-ml-automl:1": "ai-ml-automl",
    "azureml:AzureML-pytorch-1.9-ubuntu18.04-py37-cuda11-gpu@latest": (
        "pytorch-1.9-ubuntu18.04-py37-cuda11-gpu"
    ),
    "AzureML-tensorflow-2.7-ubuntu20.04-py38-cuda11-gpu": (
        "tensorflow-2.7-ubuntu20.04-py38-cuda11-gpu"
    ),
    "AzureML-sklearn-0.24-ubuntu18.04-py37-cpu:22": "sklearn-0.24-ubuntu18.04-py37-cpu",
    "azureml:AzureML-ACPT-pytorch-1.12-py39-cuda11.6-gpu:3": "acpt-pytorch-1.12-py39-cuda11.6",
    "azureml:AzureML-sklearn-1.5@latest": "sklearn-1.5",
    "azureml:AzureML-sklearn-0.24-ubuntu18.04-py37-cpu@latest": "sklearn-0.24-ubuntu18.04-py37-cpu",
    "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest": "sklearn-1.0-ubuntu20.04-py38-cpu",
}


@pytest.mark.parametrize("ref", sorted(USED))
def test_the_names_examples_and_labs_use_resolve(ref):
    entry = curated.lookup(ref)
    assert entry is not None
    assert entry.name == USED[ref]
    assert re.fullmatch(r"3\.\d+", entry.python)


def test_gpu_images_and_inference_environments_are_marked():
    tf = curated.lookup("azureml:AzureML-tensorflow-2.16-cuda12@latest")
    assert tf is not None and (tf.gpu, tf.python, tf.kind) == (True, "3.11", "training")
    torch19 = curated.lookup("AzureML-pytorch-1.9-ubuntu18.04-py37-cuda11-gpu")
    assert torch19 is not None and torch19.dropped == ("cudatoolkit", "nvidia-apex")
    minimal = curated.lookup("azureml://registries/azureml/environments/minimal-py311-inference")
    assert minimal is not None
    assert (minimal.kind, minimal.python, minimal.gpu) == ("inference", "3.11", False)


@pytest.mark.parametrize(
    "ref",
    [
        "azureml:AzureML-sklearn-9.9@latest",
        "azureml://registries/azureml/environments/no-such-environment/labels/latest",
        "AzureML-AutoML@latest",
    ],
)
def test_curated_names_the_table_does_not_have_give_none(ref):
    assert curated.lookup(ref) is None
    assert curated.curated_name(ref) is not None  # but they are curated-looking


@pytest.mark.parametrize(
    "ref, name",
    [
        ("azureml:AzureML-sklearn-1.5@latest", "AzureML-sklearn-1.5"),
        ("azureml:AzureML-sklearn-1.5:17", "AzureML-sklearn-1.5"),
        ("AzureML-sklearn-1.5", "AzureML-sklearn-1.5"),
        ("azureml:azureml-minimal@latest", "azureml-minimal"),
        ("azureml://registries/azureml/environments/sklearn-1.5/labels/latest", "sklearn-1.5"),
        ("azureml://registries/azureml/environments/sklearn-1.5/versions/17", "sklearn-1.5"),
        ("azureml://registries/azureml/environments/my-own", "my-own"),
        ("azureml:sklearn-env@latest", None),
        ("azureml:sklearn-1.5:1", None),
        ("sklearn-1.5", None),
        ("azureml:AzureML-", None),
        ("azureml://registries/my-registry/environments/AzureML-sklearn-1.5/labels/latest", None),
        ("azureml://registries/azureml-meta/environments/sklearn-1.5/versions/1", None),
        ("azureml:diabetes-mlflow@latest", None),
        ("${{vars.environment}}", None),
        ("", None),
        (None, None),
        ({"image": "python:3.11"}, None),
    ],
)
def test_curated_name_tells_curated_looking_references_from_others(ref, name):
    assert curated.curated_name(ref) == name
    if name is None:
        assert curated.lookup(ref) is None


def test_the_table_is_dated_and_its_names_are_unique():
    assert curated.AS_OF == TABLE["as_of"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", curated.AS_OF)
    assert re.fullmatch(r"[0-9a-f]{40}", curated.COMMIT) and curated.COMMIT == TABLE["commit"]
    assert set(TABLE) == {"as_of", "source", "commit", "entries"}
    keys = [e["name"].lower() for e in TABLE["entries"]]
    keys += [a.lower() for e in TABLE["entries"] for a in e["aliases"]]
    assert len(keys) == len(set(keys))  # no name or alias claimed twice
    for e in TABLE["entries"]:
        assert set(e) == set(curated.Entry.__dataclass_fields__)
        assert e["kind"] in ("training", "inference")
        assert e["python"] == "" or re.fullmatch(r"3\.\d+", e["python"])
        assert e["aliases"][0] == "AzureML-" + e["name"]
        assert not any("{{" in r for r in e["requirements"])
    assert len(curated.entries()) == len(TABLE["entries"])


def test_importing_it_reads_neither_the_table_nor_yaml():
    code = (
        "import sys, runner.curated as c; "
        "assert c._table.cache_info().currsize == 0; "
        "assert 'yaml' not in sys.modules and 'runner.environments' not in sys.modules; "
        "print(c.lookup('azureml:AzureML-sklearn-1.5@latest').python, "
        "'yaml' in sys.modules, 'runner.environments' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["3.10", "False", "False"]


# --- the regenerator, on a repository in the shape of Azure/azureml-assets -----------------------

CONDA_A = """\
name: env-a
channels: [conda-forge]
dependencies:
- python=3.10
- pip=23.0
- pandas~=1.5.3
- numpy=1.22
- pip:
  - azureml-mlflow=={{latest-pypi-version}}
  - mldesigner=={{latest-pypi-version:pre}}
  - scikit-learn~=1.5.0  # a comment
  - -r extra.txt
  - -c constraints.txt
"""
CONDA_B = """\
name: env-b
dependencies:
- python=3.8
- cudatoolkit=11.3
- openssl
- nvidia::nccl
- numpy
- pip:
  - torch==1.9.0
"""
DOCKERFILE_C = """\
FROM mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:{{latest-image-tag}}
# Create the environment
RUN conda create -p $PREFIX python=3.11 'scipy=1.10' -c conda-forge && \\
    conda clean -a -y
RUN conda run -p $PREFIX pip install --no-cache-dir \\
    'xgboost==1.5.2' \\
    azureml-core=={{latest-pypi-version}} \\
    -r requirements.txt
# security overrides of transitive dependencies are not the environment's own
RUN pip install --upgrade 'idna>=3.15'
RUN /opt/conda/bin/python -m pip install 'cryptography>=48'
"""


def environment(folder: Path, name: str, files: dict[str, str], spec: str = "") -> None:
    (folder / "context").mkdir(parents=True, exist_ok=True)
    (folder / "asset.yaml").write_text(
        f"name: {name}\nversion: auto\ntype: environment\nspec: spec.yaml\n"
        "extra_config: environment.yaml\n"
    )
    (folder / "environment.yaml").write_text(
        f"image:\n  name: azureml/curated/{name}\n  context:\n    dir: context\n"
        "    dockerfile: Dockerfile\n"
    )
    (folder / "spec.yaml").write_text(spec or 'name: "{{asset.name}}"\nos_type: linux\n')
    for path, text in files.items():
        (folder / "context" / path).write_text(text)


def git(repo: Path, *args: str, date: str = "2024-05-01T12:00:00+00:00") -> str:
    env = dict(os.environ, GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    for key in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        env.pop(key, None)
    out = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo), *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@pytest.fixture
def assets(tmp_path):
    """A repository like Azure/azureml-assets: env-a (first named env-a-old) and env-c current,
    env-b (an inference GPU image) deleted in a later commit, and a test resource to ignore."""
    repo = tmp_path / "azureml-assets"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    a = repo / "assets/training/general/environments/env-a"
    environment(
        a,
        "env-a-old",
        {
            "conda_dependencies.yaml": CONDA_A,
            "extra.txt": "# from extra.txt\nmatplotlib~=3.5.0\n",
            "constraints.txt": "numpy<2\n",
            "Dockerfile": "FROM mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest\n",
        },
    )
    b = repo / "assets/inference/environments/env-b"
    environment(
        b,
        "env-b",
        {
            "conda_dependencies.yaml": CONDA_B,
            "Dockerfile": "FROM mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.3-ubuntu20.04\n",
        },
    )
    environment(
        repo / "test/resources/environment/bad-env",
        "bad-env",
        {"Dockerfile": "FROM scratch\n"},
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "two environments", date="2024-05-01T12:00:00+00:00")
    (a / "asset.yaml").write_text((a / "asset.yaml").read_text().replace("env-a-old", "env-a"))
    git(repo, "commit", "-q", "-am", "rename env-a", date="2024-05-02T12:00:00+00:00")
    last_with_b = git(repo, "rev-parse", "HEAD")
    git(repo, "rm", "-q", "-r", "assets/inference/environments/env-b")
    git(repo, "commit", "-q", "-m", "retire env-b", date="2024-05-03T12:00:00+00:00")
    environment(
        repo / "assets/training/automl/environments/env-c",
        "env-c",
        {"Dockerfile": DOCKERFILE_C, "requirements.txt": "lightgbm>=4\n"},
        spec='name: "{{asset.name}}"\ntags:\n  Python: "3.9"\n',
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "env-c", date="2024-06-30T08:00:00+00:00")
    return repo, git(repo, "rev-parse", "HEAD"), last_with_b


def test_the_regenerator_reads_current_and_retired_environments(assets, tmp_path, capsys):
    repo, head, last_with_b = assets
    out = tmp_path / "curated.json"
    assert curated.main([str(repo), "-o", str(out)]) == 0
    assert "3 environments (2 current, 1 retired), as of 2024-06-30" in capsys.readouterr().out
    assert json.loads(out.read_text()) == {
        "as_of": "2024-06-30",
        "source": "https://github.com/Azure/azureml-assets",
        "commit": head,
        "entries": [
            {
                "name": "env-a",
                "aliases": ["AzureML-env-a", "env-a-old", "AzureML-env-a-old"],
                "python": "3.10",
                "requirements": [
                    "pandas~=1.5.3",
                    "numpy==1.22.*",
                    "azureml-mlflow",
                    "mldesigner",
                    "scikit-learn~=1.5.0",
                    "matplotlib~=3.5.0",
                ],
                "dropped": [],
                "gpu": False,
                "retired": False,
                "kind": "training",
                "source": f"assets/training/general/environments/env-a@{head}",
            },
            {
                "name": "env-c",
                "aliases": ["AzureML-env-c"],
                "python": "3.11",
                "requirements": ["scipy==1.10.*", "xgboost==1.5.2", "azureml-core", "lightgbm>=4"],
                "dropped": [],
                "gpu": False,
                "retired": False,
                "kind": "training",
                "source": f"assets/training/automl/environments/env-c@{head}",
            },
            {
                "name": "env-b",
                "aliases": ["AzureML-env-b"],
                "python": "3.8",
                "requirements": ["numpy", "torch==1.9.0"],
                "dropped": ["cudatoolkit", "nccl"],
                "gpu": True,
                "retired": True,
                "kind": "inference",
                "source": f"assets/inference/environments/env-b@{last_with_b}",
            },
        ],
    }


def test_the_regenerated_table_answers_lookups(assets, tmp_path, monkeypatch):
    repo, head, last_with_b = assets
    out = tmp_path / "curated.json"
    assert curated.main([str(repo), "-o", str(out)]) == 0
    monkeypatch.setattr(curated, "TABLE", out)
    curated._table.cache_clear()
    try:
        assert curated.AS_OF == "2024-06-30" and curated.COMMIT == head
        old_name = curated.lookup("azureml:AzureML-env-a-old:1")
        assert old_name is not None and old_name.name == "env-a"
        b = curated.lookup("azureml://registries/azureml/environments/env-b/versions/4")
        assert b is not None
        assert (b.retired, b.gpu, b.dropped) == (True, True, ("cudatoolkit", "nccl"))
        assert b.source == f"assets/inference/environments/env-b@{last_with_b}"
        assert curated.lookup("azureml:AzureML-bad-env@latest") is None  # a test resource
        assert curated.lookup("azureml:AzureML-sklearn-1.5@latest") is None
    finally:
        monkeypatch.undo()
        curated._table.cache_clear()
    assert curated.lookup("azureml:AzureML-sklearn-1.5@latest") is not None  # the bundled one


def test_the_regenerator_reads_a_bare_clone_and_lists_the_names_examples_use(
    assets, tmp_path, capsys
):
    repo, head, _ = assets
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(bare)], check=True)
    labs = tmp_path / "labs"
    (labs / "jobs").mkdir(parents=True)
    (labs / "jobs" / "job.yml").write_text(
        "environment: azureml:AzureML-env-a@latest\n"
        "experiment_name: AzureML-Train-Samples\n"  # not an environment
        "dependencies: [azureml-core]\n"
    )
    (labs / "train.py").write_text(
        'env = "azureml://registries/azureml/environments/env-b/versions/2"\n'
        'environment = "AzureML-retired-long-ago:3"\n'
    )
    out = tmp_path / "curated.json"
    assert curated.main([str(bare), "--examples", str(labs), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert json.loads(out.read_text())["commit"] == head
    assert captured.out.splitlines()[-4:] == [
        f"{labs}:",  # by reference, in any case
        "  AzureML-retired-long-ago:3  x1  -> NOT IN THE TABLE",
        "  azureml://registries/azureml/environments/env-b/versions/2  x1  -> env-b (retired)",
        "  azureml:AzureML-env-a@latest  x1  -> env-a",
    ]
    assert "1 reference(s) not in the table" in captured.err


def test_the_regenerator_says_when_it_is_not_given_a_git_directory(tmp_path, capsys):
    assert curated.main([str(tmp_path), "-o", str(tmp_path / "out.json")]) == 2
    assert "cannot read it as a git directory" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()
