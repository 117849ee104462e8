"""`mlrun ui`: MLflow's own server on a tracking store, at 127.0.0.1, in a process group of its own
so that stopping it stops its workers too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

STOP_GRACE = 10.0  # seconds between TERM and KILL for the server's group


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
