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
import re
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
FORMAT = 2  # 2: resolved into a lock file; the MLflow found in it recorded


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
    their console scripts, and the MLflow it has (its version, None if it has none; `mlflow_full`:
    the whole `mlflow` package, not only mlflow-skinny)."""

    python: str
    version: str
    sites: tuple[str, ...]
    scripts: str | None
    mlflow: str | None
    mlflow_full: bool = True

    @property
    def direct(self) -> bool:
        """Whether a run on it writes the workspace's store itself (MLFLOW_TRACKING_URI
        sqlite:///...): it has MLflow whole at mlrun's version, whose schema the store has, or no
        MLflow at all (what its layer lets a job install is then mlrun's version). Any other MLflow
        logs through the workspace's tracking server (backends/tracking.py)."""
        return self.mlflow is None or (self.mlflow_full and self.mlflow == mlflow_version())

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Base:
        return cls(
            data["python"],
            data["version"],
            tuple(data["sites"]),
            data["scripts"],
            data["mlflow"],
            data.get("mlflow_full", True),
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


def overlay(base: Base) -> Base:
    """A built environment's packages laid over mlrun's own (a spark job's PySpark, for an
    environment the local target does not build): same interpreter, its site-packages first."""
    mine = own()
    return Base(base.python, base.version, base.sites + mine.sites, base.scripts, mine.mlflow)


# --- built environments --------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What to build: an interpreter (its path; or a version uv finds, downloading it where uv's
    settings allow) and requirements, as written. `prefer_mlflow`: the definition names MLflow
    without pinning it, so mlrun's version is chosen where that moves no other requirement (the
    workspace's store is then written directly). `torch_cpu`: a GPU image's, whose PyTorch
    packages install as CPU wheels here."""

    python: str
    version: str
    requirements: tuple[str, ...]
    prefer_mlflow: bool = False
    torch_cpu: bool = False
    download: bool = False  # `python` is a version that uv may download

    @property
    def key(self) -> str:
        mine = mlflow_version() if self.prefer_mlflow else None
        text = json.dumps([FORMAT, self.version, self.requirements, mine, self.torch_cpu])
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    @property
    def folder(self) -> Path:
        return cache_dir() / "envs" / self.key


def request(python: tuple[str, str] | str, requirements: tuple, torch_cpu: bool = False) -> Request:
    """The build request for an environment: `python` (path, version) found by
    environments.find_python, or a version ("3.10") for uv to download; requirements as written
    (an MLflow pin stays as it is)."""
    from ..conda import MLFLOW_PACKAGES, requirement_name

    named = [r for r in requirements if requirement_name(r) in MLFLOW_PACKAGES]
    unpinned = bool(named) and all(_REQ_PINNED.search(r) is None for r in named)
    if isinstance(python, str):
        return Request(python, python, tuple(requirements), unpinned, torch_cpu, download=True)
    return Request(python[0], python[1], tuple(requirements), unpinned, torch_cpu)


_REQ_PINNED = re.compile(r"[<>=!~]|\s@\s")  # a requirement with a version (or a URL)


def built(req: Request) -> Base | None:
    """The environment if it is built and complete."""
    marker = req.folder / MARKER
    try:
        data = json.loads(marker.read_text())
        return Base.from_dict(data["base"]) if data.get("format") == FORMAT else None
    except (OSError, ValueError, KeyError):
        return None


def ensure(req: Request, log: Path) -> Base:
    """The environment, built now if no lab built it before (its output appended to `log`)."""
    base = built(req)
    if base is not None:
        return base
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return build(req, out)


def build(req: Request, log: IO[bytes]) -> Base:
    """Build the environment unless it is built (another lab's apply may be building it: its lock
    is waited for); the build's output goes to `log`. Its requirements are resolved into a lock
    file (mlrun-lock.txt) that is then installed exactly. A failed build raises BuildFailed."""
    root = req.folder.parent
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{req.key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        base = built(req)
        if base is not None:
            return base
        if req.folder.exists():  # a build cut short: start again
            shutil.rmtree(req.folder)
        venv = [_uv(), "venv", "--python", req.python, "--quiet", str(req.folder)]
        _run(venv if req.download else venv + ["--no-python-downloads"], log, req.download)
        python = req.folder / "bin" / "python"
        torch = ["--torch-backend", "cpu"] if req.torch_cpu else []
        if req.requirements:
            locked = _resolve(req, python, torch, log)
            # compiled as pip installs them (.pyc): jobs do not compile them again, each time
            # where PYTHONDONTWRITEBYTECODE is set
            install = [_uv(), "pip", "install", "--python", str(python), "--no-deps"]
            install.append("--compile-bytecode")
            _run(install + ["-r", str(locked), *torch], log)
        version = _venv_version(req.folder) or req.version
        minor = ".".join(version.split(".")[:2])
        sites = (str(req.folder / "lib" / f"python{minor}" / "site-packages"),)
        mlflow, full = _mlflow_in(Path(sites[0]))
        real = os.path.realpath(python)
        base = Base(real, version, sites, str(req.folder / "bin"), mlflow, full)
        tmp = req.folder / f".{MARKER}.tmp"
        tmp.write_text(
            json.dumps({"format": FORMAT, "request": asdict(req), "base": base.to_dict()}, indent=2)
        )
        os.replace(tmp, req.folder / MARKER)
        return base


def _resolve(req: Request, python: Path, torch: list[str], log: IO[bytes]) -> Path:
    """The requirements resolved (as pip would: every version the highest that fits) into a lock
    file. With `prefer_mlflow`, a second resolution with mlrun's MLflow (whole: the workspace's
    store is then written directly) is taken unless it moves a requirement given without any
    version to an older release than the first gave it (pip would install the newest: holding
    MLflow took azure-ai-ml 1.35 down to 1.23 in DP-100 lab 07's environment)."""
    reqs = req.folder / "mlrun-requirements.txt"
    reqs.write_text("".join(r + "\n" for r in req.requirements))
    free = req.folder / "mlrun-lock.txt"
    compile_ = [_uv(), "pip", "compile", "--python", str(python), "--quiet", *torch]
    _run(compile_ + [str(reqs), "-o", str(free)], log)
    mine, got = mlflow_version(), _locked(free)
    if not req.prefer_mlflow or mine is None or got.get("mlflow") == mine:
        return free
    with_mine = req.folder / "mlrun-requirements-mlflow.txt"
    with_mine.write_text(reqs.read_text() + f"mlflow=={mine}\n")
    held = req.folder / "mlrun-lock-mlflow.txt"
    try:
        _run(compile_ + [str(with_mine), "-o", str(held)], log)
    except BuildFailed:
        _say(log, f"MLflow {mine} does not fit these requirements: MLflow stays as resolved")
        return free
    from ..conda import MLFLOW_PACKAGES, requirement_name

    bare = {requirement_name(r) for r in req.requirements if _REQ_PINNED.search(r) is None}
    now = _locked(held)
    older = sorted(
        n
        for n in bare - set(MLFLOW_PACKAGES) - {""}
        if n in got and n in now and _release(now[n]) < _release(got[n])
    )
    if older:
        moved = ", ".join(f"{n} {got[n]} -> {now[n]}" for n in older)
        _say(log, f"MLflow {mine} would take {moved}: the resolution without it is kept")
        return free
    _say(log, f"MLflow held at {mine} (mlrun's, for the workspace's store)")
    os.replace(held, free)
    return free


def _release(version: str) -> tuple[int, ...]:
    """A version's release numbers, to compare (1.35.2 > 1.23.1)."""
    return tuple(int(n) for n in re.findall(r"\d+", version.split("+")[0].split("-")[0])[:4])


def _locked(path: Path) -> dict[str, str]:
    """A lock file's packages: normalized name -> version."""
    from ..conda import normalize

    found = {}
    for line in path.read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9][\w.-]*)==([^\s;]+)", line):
            found[normalize(m[1])] = m[2]
    return found


def _mlflow_in(site_packages: Path) -> tuple[str | None, bool]:
    """The MLflow a site-packages folder has: (version, whether the whole mlflow package)."""
    versions = {}
    for info in site_packages.glob("*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        if name.lower().replace("-", "_") in ("mlflow", "mlflow_skinny"):
            versions[name.lower().replace("-", "_")] = version
    if "mlflow" in versions:
        return versions["mlflow"], True
    return versions.get("mlflow_skinny"), False


def _venv_version(folder: Path) -> str | None:
    """The Python version a venv was made with (its pyvenv.cfg)."""
    try:
        for line in (folder / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() in ("version_info", "version"):
                return value.strip()
    except OSError:
        pass
    return None


class BuildFailed(Exception):
    pass


def _uv() -> str:
    from uv import find_uv_bin  # the pinned uv this package depends on

    return find_uv_bin()


def _say(log: IO[bytes], line: str) -> None:
    log.write(f"mlrun: {line}\n".encode())
    log.flush()


def _run(args: list[str], log: IO[bytes], download: bool = False) -> None:
    """Run a uv command, its output into `log`. uv downloads no interpreter unless `download`
    (then uv's own settings, UV_PYTHON_DOWNLOADS, decide)."""
    log.write(("$ " + " ".join(args) + "\n").encode())
    log.flush()
    env = {**os.environ, "NO_COLOR": "1"}
    if not download:
        env["UV_PYTHON_DOWNLOADS"] = "never"
    proc = subprocess.run(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
    )
    log.write(proc.stdout)
    log.flush()
    if proc.returncode != 0:
        said = f"{Path(args[0]).name} {' '.join(args[1:3])} exited with {proc.returncode}"
        why = reason(proc.stdout.decode(errors="replace"))
        raise BuildFailed(f"{why} ({said})" if why else said)


def reason(output: str) -> str:
    """uv's own reason for a failure, in one line: its `error:` line and the `cause:` lines
    under it (`No solution found when resolving dependencies: Because you require numpy==1.22.0
    and numpy==2.0.0, ...`); "" when it said none."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("error:")), None)
    if start is None:
        return ""
    said = [lines[start].removeprefix("error:").strip()]
    for line in lines[start + 1 :]:
        if not line.startswith((" ", "\t")) or not line.strip():
            break
        said.append(line.strip().removeprefix("cause:").strip())
    text = ": ".join(p.rstrip(".:") for p in said if p) + "."
    return text if len(text) <= 600 else text[:597] + "..."


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
    held = base.mlflow or mlflow_version()  # a job's pip cannot move the MLflow it logs with
    if held:
        pins = folder / "constraints.txt"
        pins.write_text(f"mlflow=={held}\nmlflow-skinny=={held}\n")
        env["PIP_CONSTRAINT"] = str(pins)
    own_scripts = os.path.dirname(sys.executable)
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != own_scripts]
    env["PATH"] = os.pathsep.join([str(scripts)] + ([base.scripts] if base.scripts else []) + path)
    return env


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
