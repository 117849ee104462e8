"""runner/conda.py: a conda environment file's dependencies as PyPI requirements, and what the
local target cannot build from one."""

from pathlib import Path

from runner.conda import conda_requirements, normalize, requirement_name


def conda(*deps):
    return {"name": "x", "channels": ["conda-forge"], "dependencies": list(deps)}


def test_conda_dependencies_become_pypi_requirements():
    python, reqs, problems = conda_requirements(
        conda(
            "python=3.11",
            "scikit-learn",
            "pandas=1.5",
            "numpy==1.22",
            "matplotlib>=3.5",
            "scipy=1.10.1=py311h_0",
            "conda-forge::lightgbm=4.1",
            "pytorch=2.0",
            "pip=21.2.4",
            {"pip": ["mlflow==2.22.2", "-r requirements.txt", "./wheels/x-1.whl"]},
        ),
        Path("/lab/env"),
    )
    assert python == ("3.11", ("dependencies", 0))
    assert reqs == [
        "scikit-learn",
        "pandas==1.5.*",
        "numpy==1.22",
        "matplotlib>=3.5",
        "scipy==1.10.1.*",
        "lightgbm==4.1.*",
        "torch==2.0.*",
        "mlflow==2.22.2",
        "-r /lab/env/requirements.txt",
        "/lab/env/wheels/x-1.whl",
    ]
    assert problems == []


def test_conda_only_packages_are_errors_and_runtime_libraries_warnings():
    _, reqs, problems = conda_requirements(
        conda("python=3.11", "cudatoolkit=11.3", "libgcc-ng", "openssl", "numpy", 42), Path("/x")
    )
    assert reqs == ["numpy"]
    assert [(p, s, local) for p, _, s, local in problems] == [
        (("dependencies", 1), "error", True),
        (("dependencies", 2), "warning", True),
        (("dependencies", 3), "warning", True),
        (("dependencies", 5), "error", False),
    ]
    assert problems[0][1] == (
        "'cudatoolkit=11.3' is a conda-only package: it has no PyPI counterpart, so the local "
        "target cannot build this environment (map it to a stand-in in targets.local.environments)"
    )
    assert problems[3][1] == (
        "42 is not a conda dependency: expected a package spec (name=1.2) or a {pip: [...]} list"
    )


def test_names_compare_as_pypi_compares_them():
    assert normalize("Scikit_Learn") == normalize("scikit.learn") == "scikit-learn"
    assert requirement_name("azureml-mlflow>=1.2") == "azureml-mlflow"
    assert requirement_name("-r requirements.txt") == ""
