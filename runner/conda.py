"""Conda environment files as the local target builds them: dependencies converted to PyPI
requirements (`name=1.2` becomes `name==1.2.*`, `pip:` entries kept as they are), and the
packages that have no PyPI counterpart. Stdlib only: validate, plan and the curated table's
regenerator read it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from .refs import is_local

MLFLOW_PACKAGES = ("mlflow", "mlflow-skinny", "azureml-mlflow")
# conda packages with no PyPI counterpart that a job could need at run time: a build cannot succeed
CONDA_ONLY = frozenset(
    "cudatoolkit cudnn nccl cuda cuda-toolkit cuda-nvcc mkl mkl-service mkl_fft mkl_random "
    "intel-openmp blas openblas openmpi mpich mpi r-base r-essentials nodejs gcc gxx gfortran "
    "cmake make git pytorch-cuda cpuonly nvidia-apex gxx_linux-64 gcc_linux-64 ffmpeg".split()
)
# what conda ships for its own Python (lib* too): here the system's or the wheels' own serve
RUNTIME_LIBRARIES = frozenset(
    "openssl ca-certificates zlib xz bzip2 sqlite tk readline ncurses tzdata ld_impl_linux-64 "
    "_libgcc_mutex _openmp_mutex setuptools wheel".split()
)
# conda names of packages that PyPI names otherwise
CONDA_NAMES = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "py-xgboost": "xgboost",
    "matplotlib-base": "matplotlib",
    "tensorflow-base": "tensorflow",
    "pytables": "tables",
    "py-opencv": "opencv-python",
}
_CONDA_SPEC = re.compile(r"^\s*(?:[\w.-]+::)?([A-Za-z0-9_.\-]+)\s*(.*)$")
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-]*)")


def normalize(name: str) -> str:
    """A package name as PyPI compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def conda_requirements(data: dict, folder: Path) -> tuple[tuple | None, list[str], list]:
    """A conda environment file's dependencies as PyPI requirements: ((python version, its path in
    the file) or None, requirements, problems as (path in the file, message, severity, whether
    only the local target has it))."""
    python: tuple | None = None
    out: list[str] = []
    problems: list = []
    deps = data.get("dependencies")
    if deps is None:
        return None, [], []
    if not isinstance(deps, list):
        return None, [], [(("dependencies",), "must be a list", "error", False)]
    for i, dep in enumerate(deps):
        at = ("dependencies", i)
        if isinstance(dep, dict) and "pip" in dep:
            pips = dep["pip"] if isinstance(dep["pip"], list) else []
            out += [_pip_entry(str(entry), folder) for entry in pips]
            continue
        m = _CONDA_SPEC.match(dep) if isinstance(dep, str) else None
        if m is None:
            shape = "a package spec (name=1.2) or a {pip: [...]} list"
            problems.append(
                (
                    at,
                    f"{_shown_dep(dep)} is not a conda dependency: expected {shape}",
                    "error",
                    False,
                )
            )
            continue
        name, version = m[1].lower(), m[2].strip()
        if name == "python":
            found = _version_prefix(version)
            python = (found, at) if found else None
        elif name == "pip":
            pass  # every run has pip (its layer's); the version conda would pin is not needed here
        elif name in CONDA_ONLY:
            problems.append(
                (
                    at,
                    f"'{dep}' is a conda-only package: it has no PyPI counterpart, so "
                    "the local target cannot build this environment (map it to a stand-in "
                    "in targets.local.environments)",
                    "error",
                    True,
                )
            )
        elif name in RUNTIME_LIBRARIES or name.startswith("lib"):
            problems.append(
                (
                    at,
                    f"'{dep}' is a runtime library conda installs; locally the "
                    "system's and the wheels' own are used",
                    "warning",
                    True,
                )
            )
        else:
            out.append(CONDA_NAMES.get(name, name) + _pip_version(version))
    return python, out, problems


def _shown_dep(dep: Any) -> str:
    return f"'{dep}'" if isinstance(dep, str) else json.dumps(dep, default=str)


def _pip_entry(entry: str, folder: Path) -> str:
    """A `pip:` entry as pip reads it; `-r FILE` and local paths made absolute (the build reads the
    requirements from elsewhere)."""
    for flag in ("-r ", "--requirement ", "-c ", "--constraint "):
        if entry.startswith(flag):
            ref = entry[len(flag) :].strip()
            return flag + str(folder / ref) if is_local(ref) and not os.path.isabs(ref) else entry
    if entry.startswith((".", "/")) and is_local(entry):
        return str((folder / entry).resolve())
    return entry


def _version_prefix(spec: str) -> str | None:
    """python=3.11 / python=3.11.7 / python 3.11 -> 3.11 (the minor version picks the
    interpreter)."""
    m = re.search(r"(\d+)\.(\d+)", spec)
    return f"{m[1]}.{m[2]}" if m else None


def _pip_version(spec: str) -> str:
    """A conda version spec as a PyPI one: `=1.2` -> `==1.2.*`, `1.2` -> `==1.2.*`, `==1.2`, `>=1`
    and `1.2.*` as they mean; a build string (`=1.2=py38_0`) is dropped."""
    spec = spec.strip()
    if not spec:
        return ""
    if spec.startswith("=") and not spec.startswith("=="):
        spec = spec[1:]
    spec = spec.split("=")[0] if re.match(r"^[\d.*]+=", spec) else spec
    if re.match(r"^[\d][\w.]*\*?$", spec):  # a bare version: conda's "this prefix"
        return f"=={spec}" if spec.endswith("*") else f"=={spec}.*"
    return spec.replace(" ", "")


def requirement_name(requirement: str) -> str:
    m = _REQ_NAME.match(requirement)
    return normalize(m[1]) if m else ""
