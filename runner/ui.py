"""`mlrun ui`: MLflow's own server on a tracking store, at 127.0.0.1, in a process group of its own
so that stopping it stops its workers too (on Ctrl-C, SIGTERM or SIGHUP)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from .errors import UserError

STOP_GRACE = 10.0  # seconds between TERM and KILL for the server's group
READY_TIMEOUT = 300.0  # seconds to wait for the server's port to answer


class Stopped(Exception):
    """mlrun was asked to stop (SIGTERM, SIGHUP)."""


@contextmanager
def stop_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise Stopped (as Ctrl-C raises KeyboardInterrupt) while inside."""

    def stop(signum, _frame):
        raise Stopped(signal.Signals(signum).name)

    before = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def port_taken(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:PORT."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds it
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Server:
    def __init__(self, tracking_uri: str, port: int):
        self.url = f"http://127.0.0.1:{port}"
        args = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            tracking_uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ]
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.proc = subprocess.Popen(
            args, env=env, start_new_session=True, stdin=subprocess.DEVNULL
        )

        self.port = port

    def ready(self, waiting: Callable[[float], None], timeout: float = READY_TIMEOUT) -> None:
        """Wait until the server's port answers, calling `waiting(seconds so far)` about once a
        second; a server that exits first, or never answers, is a UserError."""
        start = time.monotonic()
        said = 0
        while not _answers(self.port):
            code = self.proc.poll()
            if code is not None:
                raise UserError(
                    f"mlflow server exited (code {code}) before it answered on port "
                    f"{self.port}: see its output above"
                )
            elapsed = time.monotonic() - start
            if elapsed > timeout:
                raise UserError(f"mlflow server did not answer on port {self.port} in {timeout:g}s")
            if int(elapsed) > said:
                said = int(elapsed)
                waiting(elapsed)
            time.sleep(0.1)

    def wait(self) -> int:
        """Until the server exits: its exit code."""
        return self.proc.wait()

    def stop(self) -> None:
        """Stop the server and everything in its process group: TERM, then KILL after a grace."""
        stop_group(self.proc)


def stop_group(proc: subprocess.Popen, grace: float = STOP_GRACE) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, so an empty group reads as gone
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
