"""Fixtures for tests against the loopback Azure emulator (tests/emulator).

One emulator per session, started as `python tests/emulator` in a subprocess. The SDKs cache cloud
and MLflow context per process (MLClient even writes AZUREML_CURRENT_CLOUD into os.environ), so
code that drives them runs in subprocesses with `emulator.env` (see `run_sdk`).
"""

import json
import os
import shlex
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

EMULATOR = Path(__file__).resolve().parent / "emulator"


class Emulator:
    """A running emulator: `env` for subprocesses, `mlrun` to run mlrun commands against it, and
    its control endpoints."""

    def __init__(self, exported: dict, folder: Path):
        self.exported, self.folder = exported, folder
        self._zygote = None
        self._starting = threading.Lock()
        self.url = exported["AZURE_EMULATOR_URL"]
        self.subscription = exported["AZURE_SUBSCRIPTION_ID"]
        self._tls = ssl.create_default_context(cafile=exported["REQUESTS_CA_BUNDLE"])

    @property
    def env(self) -> dict:
        """This process's environment without Azure/MLflow settings, plus the emulator's."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AZURE", "MLFLOW_", "IDENTITY_"))
        }
        env.update(self.exported)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (self.exported["PYTHONPATH"], os.environ.get("PYTHONPATH")) if p
        )
        return env

    def mlrun(self, *args, cwd, env=None, check=None, timeout=400, script=None):
        """`mlrun ARGS` against the emulator, as conftest.run_mlrun runs it (with `script`:
        `python -c SCRIPT ARGS`), in a process forked from one that has imported the Azure SDKs
        already (tests/zygote.py)."""
        from zygote import Zygote

        with self._starting:
            if self._zygote is None:
                self._zygote = Zygote(self.folder / "zygote", self.env)
        full_env = {k: v for k, v in self.env.items() if not k.startswith("MLFLOW_")}
        full_env.update(env or {})
        proc = self._zygote.run([str(a) for a in args], cwd, full_env, timeout, script)
        if check is not None:
            assert proc.returncode == check, (
                f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def close(self):
        if self._zygote is not None:
            self._zygote.close()

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, context=self._tls, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def fault(self, **rule):
        """e.g. fault(method="PUT", path_regex="/computes/c1$", status=429, retry_after=1,
        count=1)."""
        return self.call("POST", "/_emulator/faults", rule)[0]

    def delay(self, **rule):
        """e.g. delay(method="PUT", path_regex="/computes/", seconds=3): LROs stay InProgress that
        long."""
        return self.call("POST", "/_emulator/delay", rule)[0]

    def requests(self, since=0):
        return self.call("GET", f"/_emulator/requests?since={since}")

    def mark(self) -> int:
        """The sequence number the next request will get (for `requests(since=...)`)."""
        log = self.requests()
        return log[-1]["seq"] + 1 if log else 0

    def reset(self):
        self.call("DELETE", "/_emulator/faults")
        self.call("DELETE", "/_emulator/delay")


def stop_emulator(proc, folder: Path):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    pids = folder / "state" / "children.pids"
    for pid in pids.read_text().split() if pids.exists() else []:
        try:
            os.killpg(int(pid), signal.SIGKILL)  # only if the emulator could not stop it
        except (ProcessLookupError, PermissionError):
            pass


def start_emulator(folder: Path):
    """Start `python tests/emulator` with its state in `folder`; (process, Emulator) once it is
    ready. Raises RuntimeError (with the emulator's log) if it exits or is not ready within 60 s."""
    env_file, log_path = folder / "emulator.env", folder / "emulator.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AZURE"))}
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(EMULATOR),
                "--dir",
                str(folder / "state"),
                "--env-file",
                str(env_file),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    while not env_file.exists():
        problem = (
            f"exited with {proc.returncode}"
            if proc.poll() is not None
            else "was not ready within 60 s"
            if time.monotonic() - started > 60
            else None
        )
        if problem:
            stop_emulator(proc, folder)
            raise RuntimeError(f"the Azure emulator {problem}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)
    exported = dict(
        shlex.split(line)[1].split("=", 1) for line in env_file.read_text().splitlines()
    )
    emulator = Emulator(exported, folder)
    emulator.startup_seconds = time.monotonic() - started
    return proc, emulator


@pytest.fixture(scope="session")
def azure_emulator(tmp_path_factory):
    folder = tmp_path_factory.mktemp("azure-emulator")
    try:
        proc, emulator = start_emulator(folder)
    except RuntimeError as e:
        pytest.fail(str(e))
    try:
        yield emulator
    finally:
        emulator.close()
        stop_emulator(proc, folder)


def run_sdk(emulator: Emulator, script: str, *, cwd=None, timeout=300, check=True):
    """Run a Python script (source text) against the emulator in a process of its own, forked from
    one that has imported the SDKs (Emulator.mlrun). The script prints one JSON object as its last
    stdout line; that object is returned."""
    proc = emulator.mlrun(cwd=cwd, timeout=timeout, script=script)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"SDK script failed ({proc.returncode}):\nstdout:\n{proc.stdout[-4000:]}\n"
            f"stderr:\n{proc.stderr[-6000:]}"
        )
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    result["_stdout"], result["_stderr"], result["_rc"] = proc.stdout, proc.stderr, proc.returncode
    return result
