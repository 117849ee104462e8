"""The workspace's MLflow tracking server, for jobs whose environment carries an MLflow other than
mlrun's (1.x, 2.x, another 3.x, mlflow-skinny): they cannot write the workspace's SQLite store
themselves, so they log over HTTP to a server on 127.0.0.1 over that store: MLflow's REST API,
the calls every run makes answered from the store directly (tracking_api), the rest by MLflow's
own app (its Flask app, loaded in the same process when first needed). Plain jobs keep writing the
store directly.

It is supervised like a job and outlives mlrun: started by the first job that needs it
(`ensure`), it serves while any run registered with it has not ended (a run folder without its
exit.json whose supervisor lives, or whose registering mlrun lives until the supervisor starts),
so a killed apply leaves no orphan and an adopted run keeps logging; then it stops by itself. The
next apply adopts a running one; destroy stops it (`stop`). Its folder, WS/tracking/:
server.json (pid, port) once its port listens (starting.json until then), users/ (one file per
registered run), server.log, lock.

    python -m runner.backends.tracking WS   # the server (ensure starts it)
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError
from . import supervised

IDLE = 3.0  # seconds without a live user before the server stops
READY = 60.0  # seconds a start may take before it is an error
SERVER = "server.json"
STARTING = "starting.json"  # the pid of a server that does not answer yet


def folder(root: Path) -> Path:
    return root / "tracking"


@contextmanager
def _locked(root: Path) -> Iterator[Path]:
    """The tracking folder, under its lock (registering a user and deciding to stop never race)."""
    where = folder(root)
    (where / "users").mkdir(parents=True, exist_ok=True)
    with open(where / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield where


def running(root: Path) -> dict | None:
    """The server's record ({pid, port, url}) if it runs. Its port listens from the moment the
    record is written: a request made while MLflow still loads waits for the answer."""
    info = supervised.read_json(folder(root) / SERVER)
    return info if info and supervised.alive(int(info["pid"])) else None


def ensure(root: Path, run_dir: Path) -> str:
    """The URL of the workspace's tracking server (started, or adopted), with the run in
    `run_dir` registered so that the server serves until that run ends."""
    with _locked(root) as where:
        user = where / "users" / hashlib.sha256(str(run_dir).encode()).hexdigest()[:16]
        user.write_text(json.dumps({"run_dir": str(run_dir), "registrar": os.getpid()}))
        info = running(root)
        starting = supervised.read_json(where / STARTING)
        if info is None and not (starting and supervised.alive(int(starting["pid"]))):
            (where / SERVER).unlink(missing_ok=True)
            with open(where / "server.log", "ab") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", __name__, str(root)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env={k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
                    start_new_session=True,  # it outlives mlrun, as a job's supervisor does
                )
            starting = {"pid": proc.pid}  # another job waits for it, never starts a second one
            supervised.write_json(where / STARTING, starting)
    if info is not None:
        return info["url"]
    assert starting is not None
    deadline = time.monotonic() + READY
    while time.monotonic() < deadline:
        if (info := running(root)) is not None:
            return info["url"]
        if not supervised.alive(int(starting["pid"])):
            break
        time.sleep(0.05)
    tail = (where / "server.log").read_text(errors="replace")[-2000:]
    raise UserError(
        f"the workspace's MLflow tracking server did not start ({where / 'server.log'}):\n{tail}"
    )


def stop(root: Path) -> None:
    """Stop the workspace's server, if one runs (destroy)."""
    info = supervised.read_json(folder(root) / SERVER)
    if info and supervised.alive(int(info["pid"])):
        os.kill(int(info["pid"]), signal.SIGTERM)
        deadline = time.monotonic() + 10
        while supervised.alive(int(info["pid"])) and time.monotonic() < deadline:
            time.sleep(0.05)


def _live(user: dict) -> bool:
    """Whether a registered run may still log: it has not ended, and its supervisor lives (or,
    before the supervisor started, the mlrun that registered it)."""
    run_dir = Path(user["run_dir"])
    if (run_dir / "exit.json").exists():
        return False
    pid = supervised.read_int(run_dir / "pid")
    return supervised.alive(pid) if pid else supervised.alive(int(user["registrar"]))


def _users_left(where: Path) -> bool:
    """Whether a registered run may still log; the ended ones are forgotten."""
    left = False
    for path in (where / "users").glob("*"):
        user = supervised.read_json(path)
        if user is not None and _live(user):
            left = True
        else:
            path.unlink(missing_ok=True)
    return left


def serve(root: Path) -> None:
    """The server: at 127.0.0.1 on a free port, the calls of every run (tracking_api, from the
    store directly) and MLflow's own app for the rest (loaded when first needed: seconds), until
    no registered run may log for IDLE seconds, or SIGTERM. The port is bound and recorded first:
    jobs start meanwhile, and a first request waits for the server. MLRUN_TRACKING_DIRECT=0 sends
    every call to MLflow's app (to tell whether a difference is tracking_api's)."""
    import socket
    import threading

    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(128)
    port = listening.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    where = folder(root)
    supervised.write_json(where / SERVER, {"pid": os.getpid(), "port": port, "url": url})
    (where / STARTING).unlink(missing_ok=True)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    store, artifacts = f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri()
    from werkzeug.serving import WSGIRequestHandler, make_server

    from .mlflow_db import Store
    from .tracking_api import Api

    def mlflow_app():  # MLflow's own app (seconds), for the calls tracking_api leaves to it
        os.environ["_MLFLOW_SERVER_FILE_STORE"] = store
        os.environ["_MLFLOW_SERVER_ARTIFACT_ROOT"] = artifacts
        os.environ["_MLFLOW_SERVER_SERVE_ARTIFACTS"] = "false"  # runs' artifacts are local files
        from mlflow.server import app
        from mlflow.server.handlers import initialize_backend_stores

        # its stores opened now, as `mlflow server` does, not at the call's own time
        initialize_backend_stores(store, default_artifact_root=artifacts)
        print(f"pid {os.getpid()} loaded MLflow's app", flush=True)
        return app

    direct = os.environ.get("MLRUN_TRACKING_DIRECT", "1") != "0"  # 0: every call to MLflow's app
    api = Api(Store.open(root / "mlflow.db") if direct else None, mlflow_app)
    if api.store is None:  # a store of another MLflow's schema: every call is MLflow's
        api.mlflow()

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args, **kwargs) -> None:  # a line per request: the log would grow
            pass

    server = make_server(
        "127.0.0.1", port, api, threaded=True, request_handler=Quiet, fd=listening.fileno()
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"pid {os.getpid()} serving {root / 'mlflow.db'} at {url}", flush=True)
    idle_since = time.monotonic()
    while not stopping.wait(0.5):
        with _locked(root):
            if _users_left(where):
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= IDLE:
                (where / SERVER).unlink(missing_ok=True)  # no new user finds it from here on
                break
    (where / SERVER).unlink(missing_ok=True)
    print(
        f"pid {os.getpid()} stopped: no run needs it ({api.answered} calls answered from the "
        f"store, {api.passed} by MLflow's app)",
        flush=True,
    )
    server.shutdown()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
