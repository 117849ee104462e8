"""Online endpoints on the local target: a router (backends/router.py) on 127.0.0.1 per endpoint,
in front of its deployments' servers, each a real HTTP server on 127.0.0.1: MLflow's scoring
server (what `mlflow models serve` runs: uvicorn over mlflow.pyfunc.scoring_server) for an MLflow
model, in the model's own environment (mlrun's interpreter when it already has every package the
model's requirements.txt pins, at that Python; else built with uv from them).

Every process is supervised as a job is: started in a session of its own (it outlives mlrun), its
pid and port recorded in the endpoint's folder and the state; the next apply adopts what still
runs and restarts what does not; destroy stops them. The endpoint's folder, WS/endpoints/NAME/:

    keys.json        the endpoint's keys and token (mode 0600; never in the state, logs or plans)
    settings.json    the endpoint's fields (auth_mode, traffic, mirror_traffic)
    endpoint.json    what the router reads: settings, and each serving deployment's servers
    router.json      the router's pid and port, once it listens; router.log
    deployments/DEP/current.json  the deployment's live generation: its servers, pids, columns
    deployments/DEP/GEN/server-I.log  each server's output

A changed deployment is a new generation: its servers start and answer before the router is
pointed at them, then the old ones stop, so no request fails during a re-apply."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from . import supervised

READY = 120.0  # seconds a server may take to answer its first probe
ROUTER_READY = 30.0
STOP_WAIT = 10.0


def folder(root: Path, endpoint: str) -> Path:
    return root / "endpoints" / endpoint


@contextmanager
def _locked(where: Path) -> Iterator[None]:
    """The endpoint's folder, under its lock: deployments made at once publish one at a time."""
    where.mkdir(parents=True, exist_ok=True)
    with open(where / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


# --- endpoints -----------------------------------------------------------------------------------


def create_endpoint(root: Path, name: str, attrs: dict) -> dict:
    """Make or update the endpoint: its keys (once), its settings, its router (started, or the
    running one adopted). Its details: the scoring URI and the router's pid."""
    where = folder(root, name)
    with _locked(where):
        keys = where / "keys.json"
        if not keys.exists():
            made = {
                "primaryKey": secrets.token_urlsafe(32),
                "secondaryKey": secrets.token_urlsafe(32),
                "accessToken": secrets.token_urlsafe(48),
            }
            fd = os.open(keys, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(made, f)
        supervised.write_json(where / "settings.json", {"name": name, **attrs})
        _publish(where)
    info = _router(where)
    return {"scoring_uri": f"{info['url']}/score", "pid": info["pid"], "port": info["port"]}


def _router(where: Path) -> dict:
    info = supervised.read_json(where / "router.json")
    if info and supervised.alive(int(info["pid"])):
        return info
    args = [sys.executable, "-m", "runner.backends.router", str(where)]
    if info:  # the same scoring URI as before, where the port is still free
        args += ["--port", str(info["port"])]
    (where / "router.json").unlink(missing_ok=True)
    with open(where / "router.log", "ab") as log:
        proc = subprocess.Popen(
            args,
            cwd=supervised.ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + ROUTER_READY
    while time.monotonic() < deadline:
        info = supervised.read_json(where / "router.json")
        if info and int(info["pid"]) == proc.pid:
            return info
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    path = where / "router.log"
    raise UserError(f"the endpoint's router did not start ({path}):\n{_tail(path)}")


def delete_endpoint(root: Path, name: str) -> None:
    """Stop the endpoint's router and every server of its deployments; remove its folder."""
    where = folder(root, name)
    for dep in (where / "deployments").glob("*"):
        undeploy(root, name, dep.name)
    info = supervised.read_json(where / "router.json")
    if info:
        _stop([int(info["pid"])])
    shutil.rmtree(where, ignore_errors=True)


def delete_all(root: Path) -> None:
    """Every endpoint of the workspace (destroying the workspace)."""
    for where in (root / "endpoints").glob("*"):
        delete_endpoint(root, where.name)


def keys(root: Path, name: str) -> dict:
    """The endpoint's keys (`az ml online-endpoint get-credentials`)."""
    found = supervised.read_json(folder(root, name) / "keys.json")
    if not found:
        raise UserError(f"endpoint {name} has no keys: it is not deployed (mlrun apply)")
    return found


def scoring_uri(root: Path, name: str) -> str | None:
    info = supervised.read_json(folder(root, name) / "router.json")
    return f"{info['url']}/score" if info and supervised.alive(int(info["pid"])) else None


# --- deployments ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    """What serves a deployment: an interpreter, the model's folder, and, for a scoring script,
    the folder it is in and its name (Azure's inference server runs it; else MLflow's scoring
    server serves the MLflow model)."""

    python: str
    model_dir: Path | None
    code: Path | None = None
    script: str | None = None

    @property
    def kind(self) -> str:
        return "script" if self.script else "mlflow"

    def command(self, port: int) -> list[str]:
        if self.script is None:  # what `mlflow models serve --env-manager local` runs
            return [
                *(self.python, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)),
                *("--no-access-log", "mlflow.pyfunc.scoring_server.app:app"),
            ]
        # azmlinfsrv, Azure's own entry point, bound to 127.0.0.1 instead of 0.0.0.0
        code = (
            "import azureml_inference_server_http.amlserver as s; "
            "s.DEFAULT_HOST = '127.0.0.1'; s.run()"
        )
        return [self.python, "-c", code, "--entry_script", self.script, "--port", str(port)]

    def environment(self, settings: dict) -> dict[str, str]:
        if self.script is None:
            timeout_s = max(1, int(settings.get("request_timeout_ms", 5000)) // 1000 + 1)
            assert self.model_dir is not None
            return {
                "__pyfunc_model_path__": str(self.model_dir),  # what `mlflow models serve` sets
                "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT": str(timeout_s),
                "AZUREML_MODEL_DIR": str(self.model_dir.parent),
            }
        return {"AML_APP_ROOT": str(self.code), "WORKER_TIMEOUT": "300"}

    @property
    def probe(self) -> str:
        return "/" if self.script else "/ping"


def deploy(
    root: Path,
    endpoint: str,
    name: str,
    server: Server,
    *,
    count: int,
    settings: dict,
    env: dict[str, str],
) -> dict:
    """Start `count` servers of the deployment, wait until each answers, point the router at
    them, stop the deployment's previous servers. Its details: the servers' pids and URLs.

    A scoring script runs in a copy of its code folder, with AZUREML_MODEL_DIR a folder holding
    the model under its own name (`azureml-models/model/...`), as Azure ML lays them out."""
    where = folder(root, endpoint) / "deployments" / name
    where.mkdir(parents=True, exist_ok=True)
    old = supervised.read_json(where / "current.json")
    generation = int(old["generation"]) + 1 if old else 1
    gen = where / str(generation)
    shutil.rmtree(gen, ignore_errors=True)
    cwd = gen / "code"
    if server.code is not None:
        shutil.copytree(server.code, cwd, ignore=shutil.ignore_patterns("__pycache__"))
        server = dataclasses.replace(server, code=cwd)
    cwd.mkdir(parents=True, exist_ok=True)
    if server.script and server.model_dir is not None:
        (cwd / "azureml-models").mkdir(exist_ok=True)
        (cwd / "azureml-models" / server.model_dir.name).symlink_to(server.model_dir)
    server_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AZUREML_"))}
    server_env.update(env)
    server_env.update(server.environment(settings))
    if server.script:
        server_env["AZUREML_MODEL_DIR"] = str(cwd / "azureml-models")
    procs: list[tuple[subprocess.Popen, int]] = []
    try:
        for i in range(count):
            port = _free_port()
            with open(gen / f"server-{i}.log", "ab") as log:
                proc = subprocess.Popen(
                    server.command(port),
                    cwd=cwd,
                    env=server_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
            procs.append((proc, port))
        for i, (proc, port) in enumerate(procs):
            url, log_path = f"http://127.0.0.1:{port}{server.probe}", gen / f"server-{i}.log"
            _wait_ready(proc, url, log_path, f"{endpoint}/{name}")
    except BaseException:
        _stop([p.pid for p, _ in procs])
        raise
    current = {
        "generation": generation,
        "kind": server.kind,
        "servers": [f"http://127.0.0.1:{port}" for _, port in procs],
        "pids": [p.pid for p, _ in procs],
        **settings,
    }
    if server.script is None and server.model_dir is not None:
        current["columns"] = _columns(server.model_dir)
    with _locked(folder(root, endpoint)):
        supervised.write_json(where / "current.json", current)
        _publish(folder(root, endpoint))
    if old:  # the router no longer sends it anything: its requests in flight end first
        time.sleep(0.2)
        _stop([int(p) for p in old.get("pids", [])])
        shutil.rmtree(where / str(old["generation"]), ignore_errors=True)
    return {"servers": current["servers"], "pids": current["pids"], "generation": generation}


def undeploy(root: Path, endpoint: str, name: str) -> None:
    where = folder(root, endpoint) / "deployments" / name
    current = supervised.read_json(where / "current.json")
    if where.exists():
        with _locked(folder(root, endpoint)):
            (where / "current.json").unlink(missing_ok=True)
            _publish(folder(root, endpoint))
    if current:
        _stop([int(p) for p in current.get("pids", [])])
    shutil.rmtree(where, ignore_errors=True)


def down(details: dict) -> str | None:
    """What of a deployment's servers is not running (None: all are), from its recorded pids."""
    pids = [int(p) for p in details.get("pids") or []]
    dead = [p for p in pids if not supervised.alive(p)]
    if not dead:
        return None
    if len(pids) == 1:
        return f"its server is not running (pid {dead[0]} exited)"
    return (
        f"{len(dead)} of its {len(pids)} servers are not running (pids {', '.join(map(str, dead))})"
    )


def _publish(where: Path) -> None:
    """endpoint.json from the settings and the deployments that serve (under the lock). Traffic
    goes only to deployments whose servers answer: one still starting gets its share once it
    does, so a re-apply that adds one fails no request."""
    settings = supervised.read_json(where / "settings.json") or {}
    serving = {}
    for dep in sorted((where / "deployments").glob("*")):
        current = supervised.read_json(dep / "current.json")
        if current:
            keep = (
                "kind",
                "servers",
                "columns",
                "request_timeout_ms",
                "max_concurrent_requests_per_instance",
                "max_queue_wait_ms",
            )
            serving[dep.name] = {k: current[k] for k in keep if k in current}
    config = {
        "name": settings.get("name", where.name),
        "auth_mode": settings.get("auth_mode", "key"),
        "traffic": {d: w for d, w in (settings.get("traffic") or {}).items() if d in serving},
        "mirror_traffic": {
            d: w for d, w in (settings.get("mirror_traffic") or {}).items() if d in serving
        },
        "deployments": serving,
    }
    supervised.write_json(where / "endpoint.json", config)


def _columns(model_dir: Path) -> list[str] | None:
    """The input columns of an MLflow model's signature (Azure's `input_data` lists name none)."""
    import yaml

    try:
        meta = yaml.safe_load((model_dir / "MLmodel").read_text())
        inputs = json.loads(meta["signature"]["inputs"])
        names = [i["name"] for i in inputs if "name" in i]
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return None
    return names or None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(proc: subprocess.Popen, url: str, log: Path, what: str) -> None:
    deadline = time.monotonic() + READY
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(
                f"deployment {what}: its server exited (code {proc.returncode}) before it "
                f"answered ({log}):\n{_tail(log)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise UserError(f"deployment {what}: its server did not answer in {READY:g}s ({log})")


def _stop(pids: list[int]) -> None:
    """SIGTERM each (its whole session: uvicorn's workers too), then SIGKILL what is left."""
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + STOP_WAIT
    while any(supervised.alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if supervised.alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-2000:]
    except OSError:
        return ""


def call(
    root: Path, endpoint: str, auth_mode: str, body: bytes, deployment: str | None
) -> tuple[int, bytes]:
    """POST `body` to the endpoint's scoring URI with its key (or token), as a client would:
    (status, answer)."""
    uri = scoring_uri(root, endpoint)
    if uri is None:
        raise UserError(f"endpoint {endpoint} is not running: mlrun apply starts it again")
    found = keys(root, endpoint)
    token = found["accessToken"] if auth_mode == "aml_token" else found["primaryKey"]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    if deployment:
        headers["azureml-model-deployment"] = deployment
    request = urllib.request.Request(uri, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def model_python(model_dir: Path, log: Path) -> tuple[str, str]:
    """The interpreter that serves an MLflow model, and how plans say it: mlrun's own when it is
    the model's Python (major.minor, python_env.yaml) and already has every requirement of the
    model's requirements.txt at a version it allows (the same packages Azure would install);
    else an environment built with uv from those requirements, once, in the shared cache."""
    from ..environments import find_python
    from . import envs

    version, wanted = model_requirements(model_dir)
    if own_python_serves(version, wanted):
        mine = f"{sys.version_info[0]}.{sys.version_info[1]}"
        return sys.executable, f"mlrun's Python {mine}, which has the model's requirements"
    found = find_python(version)
    if found is None:
        raise UserError(
            f"the model in {model_dir} needs Python {version}, which is not installed here"
        )
    req = envs.request(found, tuple(wanted))
    try:
        base = envs.ensure(req, log)
    except envs.BuildFailed as e:
        raise UserError(f"the model's environment did not build: {e}; its log: {log}") from None
    venv = req.folder / "bin" / "python"  # the built venv's own interpreter
    return str(venv), f"Python {base.version} built from the model's requirements ({req.folder})"


def model_requirements(model_dir: Path) -> tuple[str | None, tuple[str, ...]]:
    """An MLflow model's Python (major.minor, from python_env.yaml; None if it names none) and
    the requirements of its requirements.txt."""
    import yaml

    try:
        python_env = yaml.safe_load((model_dir / "python_env.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        python_env = {}
    version = ".".join(str(python_env.get("python") or "").split(".")[:2]) or None
    try:
        lines = (model_dir / "requirements.txt").read_text().splitlines()
    except OSError:
        lines = []
    return version, tuple(ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip())


def own_python_serves(version: str | None, wanted: tuple[str, ...]) -> bool:
    """Whether mlrun's interpreter is the model's Python and has every requirement at a version
    the model allows (the same packages Azure would install)."""
    from packaging.requirements import InvalidRequirement, Requirement

    if version not in (None, f"{sys.version_info[0]}.{sys.version_info[1]}"):
        return False
    try:
        return all(_installed(Requirement(r)) for r in wanted)
    except InvalidRequirement:
        return False


def _installed(req: Any) -> bool:
    from importlib import metadata

    try:
        return req.specifier.contains(metadata.version(req.name), prereleases=True)
    except metadata.PackageNotFoundError:
        return False
