"""The part every controller of child runs shares (a sweep's trials, a pipeline's steps).

A controller runs as a local job's command (see supervised.controller_command), so status, logs,
cancel, timeouts and adoption after a crash work for it as for any job. It reads its parent MLflow
run from the environment (MLFLOW_RUN_ID, as every local job does) and its configuration from a
JSON file in its run folder, written by the local backend when it submitted the job. Each child is
a supervised run of its own in a folder under the controller's, with a child MLflow run (tag
mlflow.parentRunId). SIGTERM (the supervisor's cancel or timeout) stops the running children.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .. import slots
from . import contract, envs, mlflow_db, runstore, supervised

STEP_SECRET = "MLRUN_STEP_SECRET_"  # a secret step variable's value, in a controller's environment


class Unstarted(Exception):
    """The controller's run was never handed over to it: it ends having started nothing."""


class Child:
    """A child run: its folder, MLflow run, process (the supervisor) and, once over, its status."""

    def __init__(self, folder: Path):
        self.dir = folder
        self.run_id: str | None = None
        self.artifact_uri: str | None = None
        self.proc: subprocess.Popen | None = None
        self.status: str | None = None
        self.ended: dict = {}  # the supervisor's exit.json
        self.lease = slots.NONE  # the slots it runs on, given back by finish_child


class Controller:
    TAG = "controller"  # the prefix of its log lines
    cfg: contract.PipelineConfig | contract.SweepConfig

    def read_config(self, run_dir: Path) -> contract.PipelineConfig | contract.SweepConfig:
        """The file mlrun handed this kind of controller (backends/contract.py)."""
        raise NotImplementedError

    def __init__(self, run_dir: Path):
        # Children's runs are made, ended and read through mlflow_db (no MLflow needed to start
        # them); MLflow loads meanwhile, for the rest (metric histories, tags, artifacts).
        self._client: Any = None
        self._loading = threading.Thread(target=self._load_mlflow, daemon=True)
        self._started = threading.Lock()  # the loading thread is started once
        store = mlflow_db.Store.for_uri(os.environ["MLFLOW_TRACKING_URI"])
        if store is None:  # every MLflow call goes through MLflow: load it now, meanwhile
            self._load_now()
        handed = supervised.take_over(run_dir)
        if handed is None:
            raise Unstarted("no run was handed over (mlrun stopped, or the run could not start)")
        os.environ.update(handed)  # the run's variables, which its children inherit
        os.environ.pop(supervised.HANDOVER_PID, None)
        self.run_dir = run_dir
        self.cfg = self.read_config(run_dir)
        self.parent = os.environ["MLFLOW_RUN_ID"]
        self.experiment = os.environ["MLFLOW_EXPERIMENT_ID"]
        self.children: list[Child] = []
        self.ended: queue.Queue[Child] = queue.Queue()  # children whose process exited
        self.finalizer = ThreadPoolExecutor(max_workers=1)  # MLflow records, in order
        self.writing = threading.Lock()  # one MLflow write at a time (a SQLite store)
        self.finalizing: list[Future] = []
        self.runs = runstore.Runs(lambda: store, lambda: self.client, self.writing)
        self.stopping = False
        base = self.cfg.base  # what each child's layer sits on (backends/envs.py)
        self.base = envs.Base.from_dict(base) if base else None
        if self.needs_mlflow():
            self._load_now()

    def needs_mlflow(self) -> bool:
        """Whether this run calls MLflow beyond making and ending its children's runs (then it
        is loaded at once, in the background; else only when first used, if ever)."""
        return True

    def _load_now(self) -> None:
        with self._started:
            if not self._loading.is_alive() and self._client is None:
                self._loading.start()

    def _load_mlflow(self) -> None:
        try:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
        except BaseException as e:  # noqa: BLE001 - said by the first use of the client
            self._client = e

    @property
    def client(self) -> Any:
        """The MlflowClient on the workspace's store, once loaded."""
        self._load_now()
        self._loading.join()
        if isinstance(self._client, BaseException):
            raise self._client
        return self._client

    def make_run(self, run_name: str, tags: dict, params: dict | None = None) -> tuple[str, str]:
        """A child MLflow run (tagged with the parent): (run id, artifact URI)."""
        return self.runs.create(
            self.experiment, run_name, {**tags, "mlflow.parentRunId": self.parent}, params
        )

    def metrics(self, run_id: str) -> dict[str, float]:
        """A child run's latest metrics."""
        return self.runs.get(run_id).data.metrics

    def log(self, message: str) -> None:
        print(f"[{self.TAG}] {message}", flush=True)

    def on_term(self, *_) -> None:
        """SIGTERM: start no more children, and stop the running ones (their supervisors stop
        their process groups and record it)."""
        self.stopping = True
        for child in self.children:
            if child.proc is not None and child.status is None and child.proc.poll() is None:
                supervised.cancel(child.dir)

    def start_child(
        self,
        child: Child,
        command: str,
        run_name: str,
        tags: dict,
        params: dict,
        timeout: float | None = None,
        base: envs.Base | None = None,
        env: dict | None = None,
    ) -> None:
        """Run `command` (its ${{...}} already substituted) in child.dir/work under a new child
        MLflow run with `tags` and `params`, in a layer over `base` (else the controller's), with
        `env` added to its environment."""
        (child.dir / "command.sh").write_text(command + "\n")
        child.run_id, child.artifact_uri = self.make_run(
            run_name, tags, {k: supervised.literal(v) for k, v in params.items()}
        )
        (child.dir / "run_id").write_text(child.run_id)
        mine = {k: v for k, v in os.environ.items() if not k.startswith(STEP_SECRET)}
        environ = {**mine, **(env or {})}  # a child sees its own secrets, not another's
        environ.update(MLFLOW_RUN_ID=child.run_id, AZUREML_RUN_ID=child.run_id)
        if self.cfg.tracking_uri and not (env or {}).get("MLFLOW_TRACKING_URI"):
            environ["MLFLOW_TRACKING_URI"] = self.cfg.tracking_uri  # its MLflow's: over HTTP
        over = base or self.base
        if over is not None:
            environ.update(envs.make_layer(child.dir / "env", over))
        child.proc = supervised.launch(child.dir, environ, timeout)
        if child not in self.children:
            self.children.append(child)
        threading.Thread(target=self._reap, args=(child,), daemon=True).start()

    def _reap(self, child: Child) -> None:
        assert child.proc is not None
        child.proc.wait()
        self.ended.put(child)

    def wait_ended(self, timeout: float) -> list[Child]:
        """The children whose processes exited, waiting up to `timeout` for the first."""
        try:
            done = [self.ended.get(timeout=timeout)]
        except queue.Empty:
            return []
        while not self.ended.empty():
            done.append(self.ended.get_nowait())
        return done

    def finish_child(self, child: Child, status: str | None = None, then=None) -> str:
        """Record an exited child: its status from its exit.json (or `status`, the controller's
        own verdict) at once, its folder into MLflow in the background (then `then()`), so that
        the next child starts meanwhile; `drain` waits for what is left."""
        assert child.run_id is not None, "finish_child of a child never started"
        child.lease.release()
        child.ended = supervised.read_json(child.dir / "exit.json", wait=1.0) or {
            "status": "Failed",
            "exit_code": None,
        }
        child.status = status or {"TimedOut": "Failed"}.get(
            child.ended["status"], child.ended["status"]
        )
        run_id, folder, ended, uri = child.run_id, child.dir, child.status, child.artifact_uri

        def record() -> None:
            supervised.finalize_run(
                lambda: self.client,
                run_id,
                folder,
                ended,
                self.runs,
                artifact_uri=uri,
            )
            if then is not None:
                then()

        self.finalizing.append(self.finalizer.submit(record))
        return child.status

    def drain(self) -> None:
        """Wait until every exited child is recorded in MLflow (raising what recording raised)."""
        for future in self.finalizing:
            future.result()
        self.finalizing.clear()

    @classmethod
    def entry(cls, run_dir: str) -> int:
        """The controller of RUN_DIR, from the start (supervised.controller_command's `main`)."""
        try:
            controller = cls(Path(run_dir))
        except Unstarted as e:
            print(f"[{cls.TAG}] {e}", flush=True)
            return 1
        return controller.main()

    def main(self) -> int:
        signal.signal(signal.SIGTERM, self.on_term)
        try:
            code = self.run()
        finally:
            self.drain()
        # Tearing down what MLflow made costs about half a second and serves no one: every run is
        # recorded and the store committed. Flush and go.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    def run(self) -> int:
        raise NotImplementedError
