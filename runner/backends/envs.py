"""Environments on the local target: built ones, and the throwaway layer every run gets.

A built environment is a venv made by uv from an Environment's Python version and requirements,
in the user's cache (`~/.cache/mlrun/envs/KEY`, KEY a hash of the request), shared by every lab on
this machine: built once under a lock, complete only once its marker file is written (a build cut
short is started again), reused after. uv never downloads an interpreter.

A layer is a venv without packages of its own in a run's folder, whose interpreter sees its base's
packages through a .pth file: mlrun's own interpreter and packages, or a built environment. It has
its own `pip` (mlrun's pip, installing into the layer), so what a job installs lands in the layer
and nowhere else, and MLflow stays at the version the store needs. Deleted when the run ends.
Stdlib only (the sweep controller makes layers for its trials).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import site
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import IO

from ..cache import cache_dir

MARKER = "mlrun-env.json"
FORMAT = 1


@functools.cache
def mlflow_version() -> str | None:
    """The MLflow mlrun runs with (its store's schema is this version's), without importing it.
    Looked up once per process (it scans every installed distribution's metadata)."""
    try:
        return metadata.version("mlflow")
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Base:
    """What a run's layer sits on: an interpreter, the site-packages folders it sees, the folder of
    their console scripts, and the MLflow version to hold (None: the base has no MLflow)."""

    python: str
    version: str
    sites: tuple[str, ...]
    scripts: str | None
    mlflow: str | None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Base:
        return cls(
            data["python"], data["version"], tuple(data["sites"]), data["scripts"], data["mlflow"]
        )


def own() -> Base:
    """mlrun's own interpreter and packages (for jobs with no environment mlrun builds)."""
    real = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    return Base(
        real,
        sys.version.split()[0],
        tuple(site.getsitepackages()),
        os.path.dirname(sys.executable),
        mlflow_version(),
    )


# --- built environments --------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What to build: an interpreter and requirements (MLflow pinned to mlrun's own when asked
    for)."""

    python: str
    version: str
    requirements: tuple[str, ...]
    constraints: tuple[str, ...]

    @property
    def key(self) -> str:
        text = json.dumps([FORMAT, self.version, self.requirements, self.constraints])
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    @property
    def folder(self) -> Path:
        return cache_dir() / "envs" / self.key


def request(python: tuple[str, str], requirements: tuple, asks_for_mlflow: bool) -> Request:
    """The build request for an environment: `python` (path, version) found by
    environments.find_python; MLflow pinned to mlrun's version when the definition asks for it."""
    pins: tuple[str, ...] = ()
    if asks_for_mlflow and (version := mlflow_version()):
        from ..environments import MLFLOW_PACKAGES, requirement_name

        pins = (f"mlflow=={version}", f"mlflow-skinny=={version}")
        requirements = tuple(
            f"{requirement_name(r)}=={version}" if requirement_name(r) in MLFLOW_PACKAGES[:2] else r
            for r in requirements
        )
    return Request(python[0], python[1], tuple(requirements), pins)


def built(req: Request) -> Base | None:
    """The environment if it is built and complete."""
    marker = req.folder / MARKER
    try:
        return Base.from_dict(json.loads(marker.read_text())["base"])
    except (OSError, ValueError, KeyError):
        return None


def build(req: Request, log: IO[bytes]) -> Base:
    """Build the environment unless it is built (another lab's apply may be building it: its lock
    is waited for); the build's output goes to `log`. A failed build raises BuildFailed."""
    root = req.folder.parent
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{req.key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        base = built(req)
        if base is not None:
            return base
        if req.folder.exists():  # a build cut short: start again
            shutil.rmtree(req.folder)
        _run(
            [
                _uv(),
                "venv",
                "--python",
                req.python,
                "--no-python-downloads",
                "--quiet",
                str(req.folder),
            ],
            log,
        )
        python = req.folder / "bin" / "python"
        if req.requirements:
            reqs = req.folder / "mlrun-requirements.txt"
            reqs.write_text("".join(r + "\n" for r in req.requirements))
            args = [_uv(), "pip", "install", "--python", str(python), "-r", str(reqs)]
            if req.constraints:
                pins = req.folder / "mlrun-constraints.txt"
                pins.write_text("".join(c + "\n" for c in req.constraints))
                args += ["-c", str(pins)]
            _run(args, log)
        minor = ".".join(req.version.split(".")[:2])
        sites = (str(req.folder / "lib" / f"python{minor}" / "site-packages"),)
        mlflow = req.constraints[0].split("==")[1] if req.constraints else None
        base = Base(req.python, req.version, sites, str(req.folder / "bin"), mlflow)
        tmp = req.folder / f".{MARKER}.tmp"
        tmp.write_text(
            json.dumps({"format": FORMAT, "request": asdict(req), "base": base.to_dict()}, indent=2)
        )
        os.replace(tmp, req.folder / MARKER)
        return base


class BuildFailed(Exception):
    pass


def _uv() -> str:
    from uv import find_uv_bin  # the pinned uv this package depends on

    return find_uv_bin()


def _run(args: list[str], log: IO[bytes]) -> None:
    log.write(("$ " + " ".join(args) + "\n").encode())
    log.flush()
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "NO_COLOR": "1"}
    proc = subprocess.run(
        args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
    )
    if proc.returncode != 0:
        raise BuildFailed(f"{Path(args[0]).name} {args[1]} exited with {proc.returncode}")


# --- layers --------------------------------------------------------------------------------------


def make_layer(folder: Path, base: Base) -> dict[str, str]:
    """A venv at `folder` over `base`; the environment variables a run in it needs (PATH first)."""
    minor = ".".join(base.version.split(".")[:2])
    scripts = folder / "bin"
    packages = folder / "lib" / f"python{minor}" / "site-packages"
    packages.mkdir(parents=True)
    scripts.mkdir()
    (folder / "pyvenv.cfg").write_text(
        f"home = {os.path.dirname(base.python)}\n"
        f"include-system-site-packages = false\nversion = {base.version}\n"
    )
    for name in ("python", "python3", f"python{minor}"):
        os.symlink(base.python, scripts / name)
    (packages / "_mlrun_base.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({s!r})" for s in base.sites) + "\n"
    )
    target = _quote(str(scripts / "python"))
    pip = f'#!/bin/sh\nexec {_quote(sys.executable)} -m pip --python {target} "$@"\n'
    for name in ("pip", "pip3"):
        (scripts / name).write_text(pip)
        (scripts / name).chmod(0o755)
    env = {
        "VIRTUAL_ENV": str(folder),
        "PYTHONNOUSERSITE": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    if base.mlflow:  # a job's pip cannot move MLflow off the version the store needs
        pins = folder / "constraints.txt"
        pins.write_text(f"mlflow=={base.mlflow}\nmlflow-skinny=={base.mlflow}\n")
        env["PIP_CONSTRAINT"] = str(pins)
    own_scripts = os.path.dirname(sys.executable)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != own_scripts]
    env["PATH"] = os.pathsep.join([str(scripts)] + ([base.scripts] if base.scripts else []) + path)
    return env


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
