"""The embedded local target: a workspace folder, slot-pool computes, jobs as supervised
subprocesses, and a real MLflow SQLite store. MLflow is imported only when a run is touched."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import batch, curated, datastores, fingerprint, parallel, sweep
from ..changes import RUN, Kind
from ..endpoints import Deployment, Endpoint
from ..environments import Environment, curated_mode, find_python, uv_downloads_python
from ..errors import UserError, plural
from ..records import Actual, Resource, Run, RunChange, StateDoc, Submission
from ..spec import Input, Job, Spec
from ..state import now
from . import (
    assets,
    contract,
    distributed,
    envs,
    mlflow_db,
    mlflow_schema,
    prepare,
    registry,
    runstore,
    serving,
    supervised,
    tracking,
)
from .base import TERMINAL, UPDATABLE, new_run, step_as_run
from .steps import StepCache


class LocalBackend:
    name = "local"
    updatable = UPDATABLE  # as Azure ML's
    manages_resource_group = False  # a local workspace is a folder: no group to make

    def __init__(self, spec: Spec):
        self.spec = spec
        self.root = spec.path.resolve().parent / ".mlrun" / "local" / spec.workspace["name"]
        self._client: Any = None
        self._experiments: dict[str, str] = {}
        self._mlflow_lock = threading.Lock()
        self._experiments_lock = threading.Lock()
        self._store_lock = threading.Lock()
        self._procs: dict[str, subprocess.Popen] = {}
        self._direct: mlflow_db.Store | None | bool = None  # False: MLflow's schema is not known
        self._models: dict[tuple[str, str | None], Path] = {}  # registered models' folders
        self.runs = runstore.Runs(self.direct, self.client, self._mlflow_lock)
        self.prepare = prepare.Preparer(spec, self.root, self.tracking_uri, self._model_path)

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    # --- reading the world -----------------------------------------------------------------------

    def refresh(self, state: StateDoc) -> Actual:
        actual: Actual = {
            "resources": {},
            "jobs": {},
            "lineage": state["lineage"],
            "serial": state["serial"],
        }
        if (self.root / "mlflow.db").exists():  # everything local lives in the workspace folder
            actual["resources"] = {  # a data version whose record is missing was never made
                address: r
                for address, r in state["resources"].items()
                if r.get("kind") != "data"
                or assets.record_path(self.root, r["name"], r["attrs"]["version"]).exists()
            }
            for address, r in actual["resources"].items():  # a server killed since: restarted
                if r.get("kind") == "deployment" and (why := serving.down(r.get("details") or {})):
                    actual["resources"][address] = {**r, "details": {**r["details"], "down": why}}
            for name, entry in state["jobs"].items():
                if entry.get("runs"):
                    actual["jobs"][name] = {**entry["runs"][-1], **self.poll(entry["runs"][-1])}
        return actual

    def poll(self, run: Run) -> RunChange:
        """The run's status as its folder tells it, without MLflow: {} when nothing changed."""
        if run.get("status") in TERMINAL:
            return {}
        change: RunChange = supervised.status(run)
        steps = Path(run["run_dir"]) / contract.STEPS  # a pipeline's, once its controller ended
        if change.get("status") in TERMINAL and (found := contract.read_steps(steps)):
            change["steps"] = found
        return change

    def run_url(self, run: Run) -> str:
        """Where to see a run: its folder (working copy, logs, outputs)."""
        return str(run.get("run_dir") or self.root)

    def logs(self, run: Run, follow: bool, out) -> None:
        """Copy the run's std_log.txt (a distributed job's: rank 0's, as Azure ML streams) to
        `out`; with `follow`, until the run ends."""
        logs = Path(run["run_dir"]) / "user_logs"
        path = logs / "std_log.txt"
        if (logs.parent / "processes").is_dir():  # distributed
            path = logs / "std_log_process_0.txt"
        offset = _copy_out(path, 0, out)
        if not path.exists() and (
            not follow or self.poll(run).get("status", run.get("status")) in TERMINAL
        ):
            raise UserError(f"the log of run {run['id'][:7]} is gone: {path} does not exist")
        while follow:
            ended = self.poll(run).get("status", run.get("status")) in TERMINAL
            grown = _copy_out(
                path, offset, out
            )  # after reading the status: the end of the log is in
            if ended:
                return
            if grown == offset:
                time.sleep(0.2)
            offset = grown

    def advise(self, plan) -> list[str]:
        """Notes on the jobs to run: the environment each runs in here (built, to be built, or
        Azure's, for which mlrun's own interpreter stands in), and what a sweep does differently."""
        running = [
            self.spec.jobs[c.address.name]
            for c in plan.changes
            if c.action == RUN and c.address.kind == Kind.JOB and c.address.name in self.spec.jobs
        ]
        groups: dict[str, list[tuple[str, Environment]]] = {}
        for job in running:  # a pipeline's steps by PIPELINE/STEP, as mlrun logs names them
            users = (
                [(f"{job.name}/{s.name}", s.env) for s in job.pipeline.steps.values()]
                if job.pipeline is not None
                else [(job.name, job.env)]
            )
            for name, env in users:
                if env.ref is not None or env.definition is not None:
                    groups.setdefault(env.shown, []).append((name, env))
        notes = [self._environment_note(users) for users in groups.values()]
        for job in running:
            notes += sweep.notes(job)
            if job.is_parallel:
                name = parallel.settings(job.fields).input_name
                inp = job.inputs.get(name) if name else None
                path = self.prepare.input_path(inp, job.name) if inp and not inp.model else None
                kind = inp.type if inp else None
                notes += parallel.notes(f"parallel job {job.name}", job.fields, kind, path)
            for step in job.pipeline.steps.values() if job.pipeline else ():
                if step.parallel is not None:
                    what = f"parallel step {job.name}/{step.name}"
                    notes += parallel.notes(what, step.parallel, *step.data)
        return notes

    def _environment_note(self, users: list[tuple[str, Environment]]) -> str:
        env, names = users[0][1], ", ".join(name for name, _ in users)
        they, their = ("they run", "their") if len(users) > 1 else ("it runs", "its")
        if not env.built:
            python = f"{sys.executable} (Python {sys.version.split()[0]})"
            own = f"{they} with {python} and its packages, in a layer of {their} own"
            name = curated.curated_name(env.shown)
            mode, where = curated_mode(self.spec.doc.data)
            if name and mode == "mlrun":
                return (
                    f"note: environment {env.shown} of {names} is curated, mapped to mlrun's "
                    f"interpreter ({where}: mlrun): {own}"
                )
            if name:
                return (
                    f"note: environment {env.shown} of {names} is curated but not in mlrun's "
                    f"table (Azure/azureml-assets as of {curated.AS_OF}): {own}"
                )
            return f"note: environment {env.shown} of {names} is not built locally: {own}"
        req = self._request(env)
        count = len(req.requirements)
        parts = [f"curated {env.curated} as of {curated.AS_OF}"] if env.curated else []
        parts.append(f"Python {req.version}" + (" (uv downloads it)" if req.download else ""))
        parts.append(plural(count, "requirement") if count else "nothing else")
        entry = curated.lookup(str(env.ref)) if env.curated else None
        if entry and entry.dropped:
            parts.append(f"conda-only left out: {', '.join(entry.dropped)}")
        if req.torch_cpu:
            parts.append("a GPU image's: PyTorch as CPU wheels")
        if env.overlay:
            parts.append("over mlrun's own packages")
        base = envs.built(req)
        state = "built" if base else "not built yet: builds on apply"
        if base is not None and not base.direct:
            state += f", MLflow {base.mlflow}: logs through the workspace's tracking server"
        what = ", ".join(parts)
        return f"note: environment {env.shown} of {names} ({what}): {state} ({req.folder})"

    def _request(self, env: Environment) -> envs.Request:
        python = find_python(env.python)
        if python is not None:
            return envs.request(python, env.requirements, env.gpu)
        if env.python and uv_downloads_python():
            return envs.request(env.python, env.requirements, env.gpu)
        # validate says so, located; the interpreter went away since
        raise UserError(f"environment {env.shown}: no Python {env.python} is installed here")

    def _base(self, env: Environment, run_dir: Path) -> envs.Base:
        """What a run sits on: mlrun's own environment, or its built one (built now, the output
        in the run's azureml-logs/20_image_build_log.txt, if no lab built it before)."""
        if not env.built:
            return envs.own()
        base = envs.ensure(self._request(env), run_dir / "azureml-logs" / "20_image_build_log.txt")
        return envs.overlay(base) if env.overlay else base

    # --- resources -------------------------------------------------------------------------------

    def create(self, kind: str, name: str, attrs: dict) -> dict:
        if kind == "endpoint" and attrs.get("type") == "batch":  # a name that jobs are run under
            serving.folder(self.root, name).mkdir(parents=True, exist_ok=True)
            return {"path": str(serving.folder(self.root, name))}
        if kind == "endpoint":
            return serving.create_endpoint(self.root, name, attrs)
        if kind == "deployment" and attrs.get("component"):
            return self._pipeline_deployment(name)
        if kind == "deployment" and attrs.get("compute"):
            return self._batch_deployment(name)
        if kind == "deployment":
            return self._deploy(name)
        if kind == "workspace":
            (self.root / "runs").mkdir(parents=True, exist_ok=True)
            self._store()  # mlflow.db, made once, before any job can touch it
            return {"path": str(self.root), "tracking_uri": self.tracking_uri}
        if kind == "datastore":  # a folder, in the workspace or where the spec maps it
            folder = self.spec.datastores[name].local
            assert folder is not None  # the local target gives each one
            folder.mkdir(parents=True, exist_ok=True)
            return {"path": str(folder)}
        if kind == "schedule":  # recorded only: nothing fires by itself here
            return {}
        if kind == "environment":  # registered: built (into the shared cache) when a job needs it
            return {"version": attrs["version"]}
        if kind == "data":  # a copy of its content, as az ml data create uploads it
            record = assets.register(
                self.root, self.spec.data[name], attrs["version"], attrs["content"]
            )
            return {"version": attrs["version"], "path": record["path"]}
        if kind == "component":  # registered in the workspace: its file, as az ml would have it
            from ..export import component_document

            folder = self.root / "components" / name
            folder.mkdir(parents=True, exist_ok=True)
            document = {**component_document(self.spec, name, folder), "version": attrs["version"]}
            (folder / f"{attrs['version']}.json").write_text(json.dumps(document, indent=2))
            return {"version": attrs["version"], "path": str(folder / f"{attrs['version']}.json")}
        return {"slots": _slots(attrs)}

    def update(self, kind: str, name: str, attrs: dict) -> dict:
        if kind in ("workspace", "endpoint", "deployment", "datastore", "schedule"):
            return self.create(kind, name, attrs)
        return {"slots": _slots(attrs)}

    def _deploy(self, key: str) -> dict:
        """An online deployment's servers, started (a new generation replacing a running one): an
        MLflow model's scoring server in the model's environment, or the scoring script under
        Azure's inference server in the deployment's environment."""
        endpoint, _, name = key.partition("/")
        dep = self.spec.endpoints[endpoint].deployments[name]
        model_dir = self._deployed_model(dep)
        log = serving.folder(self.root, endpoint) / "deployments" / name / "build.log"
        if dep.scoring_script is None:
            assert model_dir is not None  # validate: a deployment without a script has a model
            python, runs_on = serving.model_python(model_dir, log)
            server = serving.Server(python, model_dir)
        else:
            assert dep.environment is not None  # validate: a script needs an environment
            python, runs_on = self._script_python(dep.environment, key, log)
            server = serving.Server(python, model_dir, dep.code, dep.scoring_script)
        variables = dep.fields.get("environment_variables") or {}
        details = serving.deploy(
            self.root,
            endpoint,
            name,
            server,
            count=dep.instance_count,
            settings=dep.request_settings,
            env={str(k): str(v) for k, v in variables.items()},
        )
        return {**details, "model_dir": str(model_dir) if model_dir else None, "python": runs_on}

    def _deployed_model(self, dep: Deployment) -> Path | None:
        """A deployment's model folder: its own (a local path), or a registered version's."""
        if dep.model is not None and dep.model.local is not None:
            return dep.model.local
        if dep.model is not None and dep.model.registered is not None:
            return self._model_path(dep.model.registered, f"deployment {dep.key}")
        return None

    def _batch_deployment(self, key: str) -> dict:
        """A batch deployment: nothing runs until its endpoint is invoked; what it will run on is
        made ready now (its model found in the registry, its environment built), so that a
        deployment that could not score fails here, as Azure's fails to create."""
        endpoint, _, name = key.partition("/")
        dep = self.spec.endpoints[endpoint].deployments[name]
        model_dir = self._deployed_model(dep)
        where = serving.folder(self.root, endpoint) / "deployments" / name
        shutil.rmtree(where, ignore_errors=True)
        (where / "code").mkdir(parents=True)
        details: dict[str, Any] = {"model_dir": str(model_dir) if model_dir else None}
        if model_dir is not None:  # AZUREML_MODEL_DIR: a folder holding the model, as on Azure
            (where / "azureml-models").mkdir()
            (where / "azureml-models" / model_dir.name).symlink_to(model_dir)
            details["models"] = str(where / "azureml-models")
        if dep.scoring_script is None:  # the driver Azure writes for an MLflow model
            assert model_dir is not None  # validate: an MLflow model without a script
            shutil.copy(Path(__file__).with_name("batch_driver.py"), where / "code")
            details["code"] = str(where / "code")
            python, runs_on = serving.model_python(model_dir, where / "build.log")
        else:
            assert dep.environment is not None  # validate: a script needs an environment
            python, runs_on = self._script_python(
                dep.environment, key, where / "build.log", server=False
            )
        return {**details, "python": python, "runs_on": runs_on}

    def _pipeline_deployment(self, key: str) -> dict:
        """A pipeline deployment: nothing runs until its endpoint is invoked; the registered
        models its steps read are looked up now and their environments built, so that a
        deployment that could not run fails here, as Azure's fails to create."""
        endpoint, _, name = key.partition("/")
        dep = self.spec.endpoints[endpoint].deployments[name]
        assert dep.component is not None  # validate read it
        where = serving.folder(self.root, endpoint) / "deployments" / name
        where.mkdir(parents=True, exist_ok=True)
        for step in dep.component.pipeline.steps.values():
            what = f"deployment {key}: step {step.name}"
            for inp, source in step.inputs.items():
                if source.kind == "model":
                    self._model_path(source.value, f"{what}: input '{inp}'")
            try:
                self._base(step.env, where)
            except envs.BuildFailed as e:
                log = where / "azureml-logs" / "20_image_build_log.txt"
                raise UserError(
                    f"{what}: environment {step.env.shown} did not build: {e}; its log: {log}"
                ) from None
        return {"path": str(where), "component": dep.component.shown}

    def _script_python(
        self, env: Environment, key: str, log: Path, server: bool = True
    ) -> tuple[str, str]:
        """The interpreter of a scoring script's environment, built with uv if no lab built it;
        an online one must have Azure's inference server, as Azure ML requires of a custom
        environment."""
        if not env.built:
            raise UserError(
                f"deployment {key}: environment {env.shown} is not built locally (not in mlrun's "
                "table of curated environments): give the deployment an environment with a conda "
                "file, or map it in targets.local.environments"
            )
        req = self._request(env)
        try:
            envs.ensure(req, log)
        except envs.BuildFailed as e:
            raise UserError(
                f"deployment {key}: environment {env.shown} did not build: {e}; its log: {log}"
            ) from None
        python = req.folder / "bin" / "python"
        if server and not list(
            req.folder.glob("lib/python*/site-packages/azureml_inference_server_http")
        ):
            raise UserError(
                f"deployment {key}: environment {env.shown} has no azureml-inference-server-http, "
                "which Azure ML needs to run a scoring script: add it to its conda file's pip list"
            )
        return str(python), f"environment {env.shown} ({req.folder})"

    def invoke(self, endpoint: str, body: bytes, deployment: str | None) -> tuple[int, bytes]:
        auth = self.spec.endpoints[endpoint].auth_mode if endpoint in self.spec.endpoints else "key"
        return serving.call(self.root, endpoint, auth, body, deployment)

    def register_model(self, name: str, attrs: dict, run: Run | None) -> dict:
        model = self.spec.models[name]
        return registry.register(
            self.client(), self._mlflow_lock, self.root, self.spec.name, model, attrs, run
        )

    def set_expiry(self, when) -> None:
        pass  # nothing here is tagged: plan, apply and status say when the lab expired

    def retag(self, created_group: bool) -> None:
        pass

    def billing(self, names: list[str]) -> dict[str, dict]:
        return {}  # nothing here bills

    def model_versions(self, name: str) -> list[tuple[str, str]]:
        return registry.made_by_runs(self.client(), self._mlflow_lock, name)

    def delete(self, kind: str, name: str, record: Resource) -> None:
        if kind == "data":
            assets.remove(self.root, name)
        if kind == "model" and (self.root / "mlflow.db").exists():
            registry.remove(self.client(), self._mlflow_lock, self.spec.name, name)
        if kind == "deployment":
            endpoint, _, dep = name.partition("/")
            serving.undeploy(self.root, endpoint, dep)
        if kind == "endpoint":
            serving.delete_endpoint(self.root, name)
        if kind == "workspace":
            path = Path((record.get("details") or {}).get("path") or self.root)
            tracking.stop(path)  # its tracking server, if one still serves
            serving.delete_all(path)  # its endpoints' routers and servers
            if path.exists():
                shutil.rmtree(path)
            self._client = None
            self._experiments.clear()

    # --- MLflow ----------------------------------------------------------------------------------

    def client(self):
        with self._mlflow_lock:
            if self._client is None:
                import logging

                from mlflow.tracking import MlflowClient

                for name in ("mlflow", "alembic"):  # "Creating initial MLflow database tables..."
                    logging.getLogger(name).setLevel(logging.WARNING)

                self._store()
                self._client = MlflowClient(tracking_uri=self.tracking_uri)
            return self._client

    def _store(self) -> None:
        """The workspace's mlflow.db: a copy of an empty, migrated store (without loading MLflow,
        which takes seconds, once that store is made)."""
        with self._store_lock:
            self.root.mkdir(parents=True, exist_ok=True)
            db = self.root / "mlflow.db"
            if not db.exists():  # initialised here, once, before any job can touch it
                _copy_atomic(_template_db(), db)

    def direct(self) -> mlflow_db.Store | None:
        """The store written without MLflow (see mlflow_db), if its schema is this MLflow's."""
        if self._direct is None:
            self._store()
            with self._store_lock:
                if self._direct is None:
                    store = mlflow_db.Store.open(self.root / "mlflow.db", _template_db())
                    self._direct = store or False
        return self._direct if isinstance(self._direct, mlflow_db.Store) else None

    def read_runs(self, wanted: Mapping[str, set[str]]) -> dict[str, Any]:
        return self.runs.read(wanted)

    def child_runs(self, parent: Any) -> list:
        return self.runs.children(parent)

    def experiment_id(self, name: str) -> str:
        with self._experiments_lock:  # not MLflow's lock: held while MLflow loads
            if name not in self._experiments:  # looked up (or made) once per apply
                location = (self.root / "artifacts" / name.replace("/", "_")).as_uri()
                self._experiments[name] = self.runs.experiment_id(name, location)
            return self._experiments[name]

    def close_orphans(self, known: set) -> list[tuple[str, str]]:
        """Runs this workspace's store has RUNNING that no state knows: created by an mlrun killed
        before it recorded them, never started. Marked KILLED; (job, run id) of each. A sweep's
        trials (they have a parent run) are its controller's business. Only looked for when a run
        folder could hold one (else MLflow is loaded in the background, for the jobs to come)."""
        suspects = self._unrecorded(known) if (self.root / "mlflow.db").exists() else []
        if not suspects:
            if self._will_need_mlflow():
                threading.Thread(target=self._warm_up, daemon=True).start()
            return []
        client = self.client()
        experiments = [e.experiment_id for e in client.search_experiments()]
        closed = []
        for r in (
            client.search_runs(experiments, "attributes.status = 'RUNNING'") if experiments else []
        ):
            tags = r.data.tags
            if (
                "mlrun.job" in tags
                and "mlflow.parentRunId" not in tags
                and r.info.run_id not in known
            ):
                with self._mlflow_lock:
                    client.set_terminated(r.info.run_id, "KILLED")
                closed.append((tags["mlrun.job"], r.info.run_id))
        for folder in suspects:  # looked at: not suspects again (unless still running)
            pid = supervised.read_int(folder / "pid")
            if not (pid and supervised.alive(pid)):
                supervised.fail_unstarted(folder, "mlrun stopped before the job started")
        return closed

    def _unrecorded(self, known: set) -> list[Path]:
        """Run folders no state knows that have not ended: where an mlrun killed between making
        a run and recording it left an MLflow run RUNNING."""
        return [
            folder
            for folder in (self.root / "runs").glob("*/*")
            if folder.is_dir()
            and not (folder / "exit.json").exists()
            and _read(folder / "run_id") not in known
        ]

    def _will_need_mlflow(self) -> bool:
        """Whether this apply will load MLflow whatever its jobs do: for a job's declared outputs,
        a model. Jobs' runs (a sweep's or pipeline's too) are made, ended and read by mlflow_db
        (MLflow is loaded only if a job leaves files in ./outputs or ./logs)."""
        if self.spec.models or self.direct() is None:
            return True
        return any(j.outputs for j in self.spec.jobs.values())

    def _warm_up(self) -> None:
        """MLflow loaded (seconds) while apply does other things: client() then returns at once."""
        try:
            self.client()
        except Exception:  # noqa: BLE001 - the jobs' own call to client() says what went wrong
            pass

    # --- jobs ------------------------------------------------------------------------------------

    def score(
        self,
        spec: Spec,
        endpoint: Endpoint,
        deployment: str,
        details: dict,
        inp: Input | dict[str, Input],
        record: Submission,
        on_start: Callable[[Run], None],
    ) -> Run:
        """A parallel job made from the deployment (runner/batch.py), run as any job is; a
        pipeline deployment's call, the pipeline job of its component's steps (fingerprinted as a
        pipeline job's are, so that a step is reused as in any pipeline)."""
        dep = endpoint.deployments[deployment]
        if isinstance(inp, dict):
            job = batch.pipeline_job(spec, endpoint, dep, inp)
            steps = fingerprint.pipeline(job)
            record = record.copy()
            record["parts"], record["steps"] = steps["parts"], steps["steps"]
        else:
            job = batch.scoring_job(spec, endpoint, dep, details, inp)
        return self.submit(spec, job, record, on_start)

    def submit(
        self, spec: Spec, job: Job, record: Submission, on_start: Callable[[Run], None]
    ) -> Run:
        run_dir = (
            self.root
            / "runs"
            / job.name
            / f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        )
        config: contract.Config | None = None
        if job.is_sweep:  # the sweep's controller runs as the job; its trials are jobs of their own
            command, config = self.prepare.sweep(job, run_dir)
        elif job.is_pipeline:  # so does a pipeline's: its steps are child runs
            command, config = self.prepare.pipeline(job, run_dir, record)
        elif job.is_parallel:  # its controller runs as the job's command, in the job's layer,
            command, config = self.prepare.parallel(job, run_dir)  # its workers on its Python
        else:
            command = self.prepare.command(job, run_dir)
        self.prepare.copy_code(job.code, run_dir / "work")
        for name in ("outputs", "logs"):  # as Azure ML has them before the command starts
            (run_dir / "work" / name).mkdir(exist_ok=True)
        self.prepare.workspace_config(job.compute, run_dir / "work")
        (run_dir / "command.sh").write_text(command + "\n")
        proc, early = None, {}
        if job.is_sweep or job.is_pipeline:  # its controller loads MLflow while mlrun does
            early = self.prepare.env(job, {"id": "", "experiment_id": ""}, run_dir)
            # secret step variables reach the controller through its environment, never a file
            for found in prepare.step_secrets(job).values():
                early.update(dict(found.values()))
            proc = supervised.launch(
                run_dir, {**early, supervised.HANDOVER_PID: str(os.getpid())}, job.timeout
            )
        try:
            return self._start(spec, job, record, on_start, run_dir, proc, early, config)
        except BaseException:
            if proc is not None and not (run_dir / supervised.HANDOVER).exists():
                supervised.hand_over(run_dir, None)  # the waiting controller ends, unstarted
            raise

    def _start(
        self,
        spec: Spec,
        job: Job,
        record: Submission,
        on_start: Callable[[Run], None],
        run_dir: Path,
        proc: subprocess.Popen | None,
        early: dict,
        config: contract.Config | None,
    ) -> Run:
        """Make the job's MLflow run, record it, build its environments and start it (hand it to
        its controller, already started as `proc`, with its `config` written now, once)."""
        experiment = self.experiment_id(spec.experiment(job))
        tags = {str(k): str(v) for k, v in (job.fields.get("tags") or {}).items()}
        tags.update(
            {
                "mlrun.job": job.name,
                "mlrun.fingerprint": record["fingerprint"],
                "mlflow.source.name": job.command,
                "mlflow.source.type": "JOB",
            }
        )
        run_name = job.fields.get("display_name") or job.name
        made = self.runs.create(experiment, run_name, tags)
        run: Run = {
            **new_run(record, made[0]),
            "experiment_id": experiment,
            "run_dir": str(run_dir),
            "artifact_uri": made[1],
            "status": "Preparing",
            "submitted": now(),
        }
        (run_dir / "run_id").write_text(run["id"])
        on_start(run)  # in the state before it starts anything: a crash from here on is adoptable
        building = job.env
        try:
            base = self._base(job.env, run_dir)
            if isinstance(config, contract.PipelineConfig):  # every step's environment, built
                for step in (job.pipeline.steps if job.pipeline else {}).values():  # before any
                    building = step.env  # step starts
                    found = self._base(step.env, run_dir)
                    config.steps[step.name].base = found.to_dict()
                    if not found.direct:  # the step's own MLflow logs over HTTP
                        config.steps[step.name].tracking_uri = tracking.ensure(self.root, run_dir)
        except envs.BuildFailed as e:
            if proc is not None:  # the waiting controller ends; then the run is recorded
                supervised.hand_over(run_dir, None)
                proc.wait()
            log = run_dir / "azureml-logs" / "20_image_build_log.txt"
            supervised.fail_unstarted(
                run_dir, f"environment {building.shown} did not build: {e}; its log: {log}", log
            )
            return run  # Preparing: waiting on it finds how it ended
        env = self.prepare.env(job, run, run_dir)
        if not base.direct and not (job.is_sweep or job.is_pipeline):  # its own MLflow: over HTTP
            env["MLFLOW_TRACKING_URI"] = tracking.ensure(self.root, run_dir)
        if (job.distribution or {}).get("type") in distributed.KINDS:
            distributed.write(run_dir / "processes", job.distribution or {}, job.instance_count)
        if isinstance(config, contract.SweepConfig):  # the controller runs with mlrun; its trials
            config.base = base.to_dict()  # each get a layer over base
            if not base.direct:  # the trials' own MLflow logs over HTTP
                config.tracking_uri = tracking.ensure(self.root, run_dir)
        if config is not None:
            contract.write(run_dir / contract.file_name(config), config)
        if proc is not None:  # a controller: each step or trial gets a layer of its own
            supervised.hand_over(run_dir, {k: v for k, v in env.items() if early.get(k) != v})
        else:
            env.update(envs.make_layer(run_dir / "env", base))
            proc = supervised.launch(run_dir, env, job.timeout)
        self._procs[run["id"]] = proc
        run.update({"status": "Running", "pid": proc.pid, "started": now()})
        return run

    def step_run(self, run: Run, step: str, shown: str) -> Run:
        """From the record its controller wrote (steps.json), else its folder as it runs."""
        record = (run.get("steps") or {}).get(step) or {}
        folder = record.get("run_dir") or str(Path(run.get("run_dir", "")) / "steps" / step)
        return step_as_run(run, record, folder)

    def reusable(self, fingerprints: list[str]) -> dict[str, str]:
        return StepCache(self.root / "steps").reusable(fingerprints)

    def _model_path(self, model: tuple[str, str | None], what: str) -> Path:
        """A registered model's folder in the workspace's registry (looked up once per apply)."""
        if model not in self._models:
            name, version = model
            found = registry.local_path(self.client(), self._mlflow_lock, name, version)
            if found is None or not found.exists():
                which = f"no version {version}" if version else "no version"
                raise UserError(
                    f"{what}: model {name} has {which} in the workspace's registry: register "
                    "it first (a models: entry of a lab applied to this workspace)"
                )
            self._models[model] = found
        return self._models[model]

    def wait(self, run: Run) -> RunChange:
        proc = self._procs.pop(run["id"], None)
        if proc is not None:
            proc.wait()
        while True:
            change = self.poll(run)
            if change.get("status") in TERMINAL:
                return change
            time.sleep(0.2)

    def cancel(self, run: Run) -> None:
        supervised.cancel(Path(run["run_dir"]))

    def finalize(self, run: Run) -> None:
        """Log std_log.txt and outputs as artifacts; set the MLflow status from the exit. A
        completed job's outputs on datastore paths go to their datastores' folders."""
        job = self.spec.jobs.get(Path(run["run_dir"]).parent.name)  # runs/JOB/STAMP
        if job is not None and run["status"] == "Completed" and not job.is_pipeline:
            datastores.deliver(self.spec.datastores, job.outputs, Path(run["run_dir"]), run["id"])
        supervised.finalize_run(
            self.client,
            run["id"],
            Path(run["run_dir"]),
            run["status"],
            self.runs,
            run.get("artifact_uri"),
        )


def _copy_out(path: Path, offset: int, out) -> int:
    """Write what `path` has past `offset` to `out`, a block at a time (a log may hold
    gigabytes); the new offset."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            for block in iter(lambda: f.read(1 << 20), b""):
                out.write(block)
                offset += len(block)
    except FileNotFoundError:
        return offset
    out.flush()
    return offset


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _template_db() -> Path:
    """An empty MLflow store with every migration applied, made by MLflow once per MLflow version
    (migrating a new SQLite store takes seconds; copying one takes milliseconds)."""
    path = mlflow_db.template()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}")
        if not mlflow_schema.make(tmp):  # the bundled schema is another MLflow's: MLflow's own
            from mlflow.tracking import MlflowClient

            sys.stderr.write(
                f"mlrun: making an empty MLflow {envs.mlflow_version()} store (once on this "
                "machine; it takes MLflow some seconds)\n"
            )
            MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments(max_results=1)
        os.replace(tmp, path)
    return path


def _copy_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _slots(attrs: dict) -> int:
    return int(attrs.get("max_instances", 1)) if attrs.get("type") == "amlcompute" else 1
