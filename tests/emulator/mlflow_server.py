"""One real MLflow tracking server per workspace (SQLite in a temp folder), and the run of each job.

Azure ML creates a job's MLflow run itself, with run id == job name; MLflow's API cannot choose a
run id, so the emulator writes that run straight into the workspace's store (same models MLflow
uses), then the job's process resumes it through the proxied REST API as it does on Azure.
"""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

_MIGRATIONS = (
    threading.Lock()
)  # alembic's migration context is process-global: one new store at a time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    def __init__(self, folder: Path, on_spawn=lambda pid: None):
        self.folder, self.on_spawn = folder, on_spawn
        folder.mkdir(parents=True, exist_ok=True)
        self.db_uri = f"sqlite:///{folder / 'mlflow.db'}"
        self.artifacts = folder / "artifacts"
        self.port = None
        self.proc = None
        self.ready = threading.Event()
        self.error = None
        self._store = None
        self._lock = threading.Lock()
        self._started = False

    def start_async(self):
        """Start the server in the background, once (base_url starts it on first need)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._start, daemon=True, name=f"mlflow-{self.folder.name}").start()

    def _start(self):
        try:
            self.store()  # creates and migrates the SQLite store before the server opens it
            self.port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
            env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
            cmd = [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--backend-store-uri",
                self.db_uri,
                "--default-artifact-root",
                self.artifacts.as_uri(),
                "--no-serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ]
            self.log = open(self.folder / "server.log", "wb")
            self.proc = subprocess.Popen(
                cmd,
                env=env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            self.on_spawn(self.proc.pid)
            self._wait_listening(60)
        except Exception as e:  # noqa: BLE001 - reported to the request that needs the server
            self.error = e
        finally:
            self.ready.set()

    def _wait_listening(self, timeout):
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited: {(self.folder / 'server.log').read_text()[-2000:]}"
                )
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("mlflow server did not answer /health in time")

    def base_url(self, timeout=90) -> str:
        self.start_async()
        if not self.ready.wait(timeout):
            raise RuntimeError("mlflow server still starting")
        if self.error:
            raise self.error
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(2)  # nothing to flush: SQLite/Azurite writes are already durable
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)

    def store(self):
        with self._lock:
            if self._store is None:
                from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

                with _MIGRATIONS:
                    self._store = SqlAlchemyStore(self.db_uri, self.artifacts.as_uri())
            return self._store

    def experiment_id(self, name: str) -> str:
        store = self.store()
        exp = store.get_experiment_by_name(name)
        if exp is None:
            try:
                return store.create_experiment(name)
            except Exception:  # noqa: BLE001 - created meanwhile by another thread: look it up
                exp = store.get_experiment_by_name(name)
        return exp.experiment_id

    def create_job_run(self, run_id: str, experiment: str, run_name: str, tags: dict) -> str:
        """The job's run, with run id == job name (as Azure ML does); returns the experiment id."""
        from mlflow.store.tracking.dbmodels.models import SqlRun, SqlTag
        from mlflow.utils.time import get_current_time_millis

        exp_id = self.experiment_id(experiment)
        store = self.store()
        all_tags = {
            "mlflow.runName": run_name,
            "mlflow.user": "emulator",
            "mlflow.source.type": "JOB",
            "azureml.runsource": "azureml.scriptrun",
            **(tags or {}),
        }
        with store.ManagedSessionMaker(read_only=False) as session:
            run = SqlRun(
                name=run_name,
                artifact_uri=(self.artifacts / exp_id / run_id / "artifacts").as_uri(),
                run_uuid=run_id,
                experiment_id=exp_id,
                source_type="JOB",
                source_name="",
                entry_point_name="",
                user_id="emulator",
                status="RUNNING",
                start_time=get_current_time_millis(),
                end_time=None,
                deleted_time=None,
                source_version="",
                lifecycle_stage="active",
            )
            run.tags = [SqlTag(key=k, value=str(v)) for k, v in all_tags.items()]
            session.add(run)
        return exp_id

    def end_job_run(self, run_id: str, status: str):
        """status: FINISHED, FAILED or KILLED."""
        from mlflow.entities import RunStatus
        from mlflow.utils.time import get_current_time_millis

        self.store().update_run_info(
            run_id, RunStatus.from_string(status), get_current_time_millis(), None
        )
