"""mlrun commands (and SDK scripts) against the Azure emulator, each a process of its own forked
from one that has already imported mlrun and the Azure SDKs (a zygote), so a test's command does
not pay the SDKs' 2-3 seconds of imports again (on the 2-core CI machine they were a fifth of the
suite's CPU).

Each command still runs in a real, separate process: the real `runner.cli.main` with its own
working folder, environment, standard streams (files) and session, and exits with its own code; a
fork copies a process that has run nothing (the SDKs cache cloud and MLflow context per process,
so none is shared). The zygote stays single-threaded, so forking it is safe: for each request it
forks a waiter, which forks the command, waits for it and answers the exit code.

    python tests/zygote.py SOCKET        # serves until the socket's client closes it or SIGTERM
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

PRELOAD = (  # what `mlrun ... --target azure` loads
    "runner.cli",
    "runner.backends.azure",
    "azure.ai.ml",
    "azure.ai.ml.entities",
    "azure.identity",
    "azure.mgmt.resource.resources",
    "azureml.mlflow",
    "mlflow.tracking",
)


class Zygote:
    """The client: `run` is subprocess.run of `python -m runner ARGS`, by a fork of the zygote."""

    def __init__(self, folder: Path, env: dict):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.path = folder, folder / "zygote.sock"
        self.proc = subprocess.Popen(
            [sys.executable, __file__, str(self.path)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=open(folder / "zygote.log", "wb"),  # the zygote's own output
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while not self.path.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((folder / "zygote.log").read_text()[-3000:])
            time.sleep(0.05)

    def run(
        self, args: list[str], cwd, env: dict, timeout: float, script: str | None = None
    ) -> subprocess.CompletedProcess:
        """`mlrun ARGS`, or with `script`, `python -c SCRIPT` (ARGS its arguments)."""
        name = uuid.uuid4().hex  # tests run commands from several threads at once
        out, err = (self.folder / f"{name}.{n}" for n in ("out", "err"))
        request = {
            "args": args,
            "script": script,
            "cwd": str(cwd or os.getcwd()),
            "env": env,
            "out": str(out),
            "err": str(err),
        }
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(str(self.path))
            conn.sendall(json.dumps(request).encode() + b"\n")
            conn.settimeout(timeout)
            reader = conn.makefile("r")
            pid = int(reader.readline())
            try:
                code = int(reader.readline())
            except TimeoutError:
                os.killpg(pid, signal.SIGKILL)
                raise subprocess.TimeoutExpired(["mlrun", *args], timeout) from None
        stdout, stderr = out.read_text(), err.read_text()
        out.unlink(), err.unlink()
        return subprocess.CompletedProcess(["mlrun", *args], code, stdout, stderr)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def _command(request: dict) -> None:
    """In the forked command: become `python -m runner ARGS` in the request's folder, with its
    environment and streams, and run it to its exit."""
    os.setsid()  # a session of its own, as the subprocesses the tests start have
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for fd, path, flags in (
        (0, os.devnull, os.O_RDONLY),
        (1, request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (2, request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        os.dup2(os.open(path, flags), fd)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", closefd=False)
    sys.stderr = open(2, "w", closefd=False)
    code = 0
    try:
        if request["script"] is not None:  # python -c SCRIPT
            sys.argv = ["-c", *request["args"]]
            exec(compile(request["script"], "<string>", "exec"), {"__name__": "__main__"})
        else:
            from runner.cli import main

            sys.argv = ["mlrun", *request["args"]]
            main(request["args"])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - as the interpreter reports an uncaught one
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _waiter(conn: socket.socket) -> None:
    """In the forked waiter: read the request, fork the command, answer its pid then its exit."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the zygote ignores it; this one waits
    request = json.loads(conn.makefile("r").readline())
    pid = os.fork()
    if pid == 0:
        try:
            conn.close()
            _command(request)
        finally:
            os._exit(70)  # _command exits; here only if setting it up failed
    conn.sendall(f"{pid}\n".encode())
    _, status = os.waitpid(pid, 0)
    conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
    os._exit(0)


def serve(path: str) -> None:
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # waiters are reaped by the kernel
    server = socket.socket(socket.AF_UNIX)
    server.bind(path + ".tmp")
    server.listen(64)
    os.replace(path + ".tmp", path)  # the client sees the socket once it listens
    while True:
        conn, _ = server.accept()
        if os.fork() == 0:
            try:
                server.close()
                _waiter(conn)
            finally:
                os._exit(70)
        conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
