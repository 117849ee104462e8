"""Command jobs, really run: code snapshot and inputs from Azurite, the command under bash, MLflow
pointed at the emulator, status NotStarted -> Queued -> Running -> Completed/Failed/Canceled."""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from server import CLOUD, jwt
from state import now_iso

BINDING = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z0-9_]+)\s*\}\}")
DATASTORE_URI = re.compile(r"azureml://(?:.*/)?datastores/(?P<ds>[^/]+)/paths/(?P<path>.*)", re.I)
HOLDS = ("containerName", "fileShareName", "filesystem", "storeName")  # what a datastore holds


def store_container(app, ws, name: str) -> str:
    """The Azurite container behind a workspace's datastore: the workspace's own for
    workspaceblobstore, else a container of its own per registered datastore (named for its
    container, share or filesystem); a datastore the workspace has not is an error, as the
    service says it."""
    # "": a job's default output location; workspacemanageddatastore: the store the service
    # keeps for data imports (azureml://datastores/workspacemanageddatastore), the blob one here
    if name.lower() in ("workspaceblobstore", "workspacemanageddatastore", ""):
        return app.state.info(ws["id"])["blob_container"]
    if name.lower() == "workspaceartifactstore":
        info = app.state.info(ws["id"])
        return info.get("artifact_container") or info["blob_container"]
    found = app.state.get(f"{ws['id']}/datastores/{name}")
    if found is None:
        raise ValueError(f"datastore '{name}' was not found in workspace {ws['name']}")
    props = found["properties"]
    held = next((props[k] for k in HOLDS if props.get(k)), name)
    container = re.sub(r"[^a-z0-9-]+", "-", f"ds-{name}-{held}".lower())[:63].strip("-")
    app.azurite.ensure_container(container)
    return container


LOG_NAME = "user_logs/std_log.txt"


class JobRunner(threading.Thread):
    def __init__(self, app, workspace: dict, job: dict):
        super().__init__(daemon=True, name=f"job-{job['name']}")
        self.app, self.ws, self.job = app, workspace, job
        self.props = job["properties"]
        self.name = job["name"]
        self.dir = app.tmp / "jobs" / self.name
        self.proc = None
        self.cancelled = threading.Event()
        self.times = {"created": now_iso()}
        self.error = None
        self.log_blob = f"ExperimentRun/dcid.{self.name}/{LOG_NAME}"
        self.has_log = False
        self.queue_delay = app.state.delay_for("PUT", job["id"])
        self.exp_id = None

    # --- what the run history endpoint answers ---
    def details(self) -> dict:
        container = self.app.state.info(self.ws["id"])["artifact_container"]
        logs = (
            {LOG_NAME: self.app.azurite.blob_sas_url(container, self.log_blob)}
            if self.has_log
            else {}
        )
        compute = (self.props.get("computeId") or "").rsplit("/", 1)[-1] or None
        return {
            "runId": self.name,
            "runUuid": self.name,
            "status": self.props["status"],
            "target": compute,
            "compute": {"target": compute} if compute else None,
            "createdTimeUtc": self.times["created"],
            "createdUtc": self.times["created"],
            "experimentId": self.exp_id,
            "startTimeUtc": self.times.get("start"),
            "endTimeUtc": self.times.get("end"),
            "logFiles": logs,
            "warnings": None,
            "error": {"error": self.error} if self.error else None,
            "tags": self.props.get("tags") or {},
            "properties": self.props.get("properties") or {},
            "displayName": self.props.get("displayName"),
            "experimentName": self.props.get("experimentName"),
            "runDefinition": None,
            "services": {},
        }

    def patch(self, body: dict):
        for src, dst in (
            ("tags", "tags"),
            ("displayName", "displayName"),
            ("description", "description"),
        ):
            if body.get(src) is not None:
                self.props[dst] = body[src]

    def cancel(self):
        self.cancelled.set()
        if self.props["status"] not in ("Completed", "Failed", "Canceled"):
            self.set_status("CancelRequested")
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)

    def set_status(self, status):
        with self.app.state.lock:
            self.props["status"] = status

    # --- the life of a job ---
    def run(self):
        slot = None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            time.sleep(0.2)
            self.set_status("Queued")
            if self.cancelled.wait(self.queue_delay):
                return self._finish("Canceled", "KILLED")
            code_dir = self._download_code()
            bindings = self._resolve_bindings()
            exp_id = self.exp_id = self._start_mlflow_run()
            slot = self.app.compute_slot(self.props.get("computeId"))
            while slot and not slot.acquire(timeout=0.5):
                if self.cancelled.is_set():
                    slot = None
                    return self._finish("Canceled", "KILLED")
            self.app.node_count(self.props.get("computeId"), +1)
            if self.cancelled.is_set():
                return self._finish("Canceled", "KILLED")
            self.times["start"] = now_iso()
            self.set_status("Running")
            rc = self._run_command(code_dir, bindings, exp_id)
            self._collect_outputs(code_dir, bindings)
            if self.cancelled.is_set():
                self._finish("Canceled", "KILLED")
            elif rc == 0:
                self._finish("Completed", "FINISHED")
            else:
                self.error = {
                    "code": "UserError",
                    "message": (
                        "Execution failed. User process 'bash' exited with status code "
                        f"{rc}. Please check log file '{LOG_NAME}' for error details. "
                        f"Error: {self._log_tail()}"
                    ),
                }
                self._finish("Failed", "FAILED")
        except Exception as e:  # noqa: BLE001 - any emulator-side failure: a SystemError of the job
            self.error = {"code": "SystemError", "message": f"{type(e).__name__}: {e}"}
            self._finish("Failed", "FAILED")
        finally:
            if slot:
                self.app.node_count(self.props.get("computeId"), -1)
                slot.release()

    def _finish(self, status, mlflow_status):
        self.times["end"] = now_iso()
        try:
            self.app.mlflow_for(self.ws["id"]).end_job_run(self.name, mlflow_status)
        except Exception:  # noqa: BLE001 - best effort, the job's status is set either way
            pass  # no run yet (failed before it was created)
        self.set_status(status)

    def _download_code(self) -> Path:
        code_dir = self.dir / "code"
        code_dir.mkdir(exist_ok=True)
        code_id = self.props.get("codeId")
        if not code_id:
            return code_dir
        version = self.app.state.get(code_id)
        if version is None:
            raise RuntimeError(f"code asset {code_id} not found")
        container, prefix = self._split_blob_url(version["properties"]["codeUri"])
        self.app.azurite.download_prefix(container, prefix, code_dir)
        return code_dir

    def _split_blob_url(self, url):
        parts = unquote(urlsplit(url).path).lstrip("/").split("/", 2)  # account/container/path
        return parts[1], parts[2] if len(parts) > 2 else ""

    def _resolve_bindings(self) -> dict:
        import data  # (data -> components -> ml -> jobs: imported once the routes are in)

        values = {}
        for name, spec in (self.props.get("inputs") or {}).items():
            kind = (spec.get("jobInputType") or "").lower()
            if kind == "literal":
                values[("inputs", name)] = str(spec.get("value"))
                continue
            uri = data.data_uri(self.app, spec.get("uri", ""))  # a data version: its content
            m = DATASTORE_URI.match(uri)
            if not m:
                values[("inputs", name)] = uri  # a remote URL passes through
                continue
            container = store_container(self.app, self.ws, m.group("ds"))
            path = m.group("path").rstrip("/")
            target = self.dir / "inputs" / name
            if kind == "uri_file":
                values[("inputs", name)] = str(
                    self.app.azurite.download_blob(container, path, target / Path(path).name)
                )
            else:
                target.mkdir(parents=True, exist_ok=True)
                self.app.azurite.download_prefix(container, path, target)
                values[("inputs", name)] = str(target)
        for name, spec in (self.props.get("outputs") or {}).items():
            target = self.dir / "outputs" / name
            target.mkdir(parents=True, exist_ok=True)
            values[("outputs", name)] = str(target)
            if ((spec or {}).get("jobOutputType") or "").lower() == "uri_file":  # a file in it
                last = ((spec or {}).get("uri") or "").rstrip("/").rsplit("/", 1)[-1]
                values[("outputs", name)] = str(target / (last or name))
        return values

    def _start_mlflow_run(self) -> str:
        server = self.app.mlflow_for(self.ws["id"])
        server.base_url()  # waits for the server if the workspace is brand new
        tags = {k: str(v) for k, v in (self.props.get("tags") or {}).items()}
        return server.create_job_run(
            self.name,
            self.props["experimentName"],
            self.props.get("displayName") or self.name,
            tags,
        )

    def _env(self, bindings, exp_id) -> dict:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("MLFLOW_", "AZUREML_", "AZURE_"))
        }
        env.update({k: str(v) for k, v in (self.props.get("environmentVariables") or {}).items()})
        ids = self.ws["id"].split("/")
        app = self.app
        env.update(
            {
                "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
                "MLFLOW_TRACKING_URI": self.ws["properties"]["mlFlowTrackingUri"],
                "MLFLOW_RUN_ID": self.name,
                "MLFLOW_EXPERIMENT_ID": exp_id,
                "MLFLOW_EXPERIMENT_NAME": self.props["experimentName"],
                "MLFLOW_TRACKING_TOKEN": jwt(self.name),
                "AZUREML_CURRENT_CLOUD": CLOUD,
                "ARM_CLOUD_METADATA_URL": app.env["ARM_CLOUD_METADATA_URL"],
                "REQUESTS_CA_BUNDLE": str(app.cert),
                "SSL_CERT_FILE": str(app.cert),
                "AZUREML_ARM_SUBSCRIPTION": ids[2],
                "AZUREML_ARM_RESOURCEGROUP": ids[4],
                "AZUREML_ARM_WORKSPACE_NAME": ids[8],
                "AZUREML_ARM_PROJECT_NAME": self.props["experimentName"],
                "AZUREML_RUN_ID": self.name,
                "AZUREML_CR_EXECUTION_WORKING_DIR_PATH": str(self.dir / "code"),
            }
        )
        for (kind, name), value in bindings.items():
            env[f"AZURE_ML_{kind[:-1].upper()}_{name}"] = value
        return env

    def _run_command(self, code_dir, bindings, exp_id) -> int:
        command = BINDING.sub(
            lambda m: bindings.get((m.group(1), m.group(2)), m.group(0)), self.props["command"]
        )
        log_path = self.dir / LOG_NAME
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                ["bash", "-c", command],
                cwd=code_dir,
                env=self._env(bindings, exp_id),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            self.app.track(self.proc.pid)
            limit = (self.props.get("limits") or {}).get("timeout")
            deadline = time.monotonic() + _seconds(limit) if limit else None
            while self.proc.poll() is None:
                self._upload_log()
                if deadline and time.monotonic() > deadline:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                try:
                    self.proc.wait(1)
                except subprocess.TimeoutExpired:
                    pass
        self._upload_log()
        return self.proc.returncode

    def _upload_log(self):
        data = (self.dir / LOG_NAME).read_bytes()
        container = self.app.state.info(self.ws["id"])["artifact_container"]
        self.app.azurite.upload(container, self.log_blob, data)
        self.has_log = True

    def _log_tail(self, lines=5):
        try:
            return " | ".join(
                (self.dir / LOG_NAME).read_text(errors="replace").strip().splitlines()[-lines:]
            )
        except OSError:
            return ""

    def _collect_outputs(self, code_dir, bindings):
        """As Azure ML does: the std log and ./outputs become run artifacts; named outputs go to
        blob (a uri_file output's file as the blob at the output's path)."""
        server = self.app.mlflow_for(self.ws["id"])
        art = (
            server.artifacts
            / server.experiment_id(self.props["experimentName"])
            / self.name
            / "artifacts"
        )
        (art / "user_logs").mkdir(parents=True, exist_ok=True)
        shutil.copy(self.dir / LOG_NAME, art / LOG_NAME)
        if (code_dir / "outputs").is_dir():
            shutil.copytree(code_dir / "outputs", art / "outputs", dirs_exist_ok=True)
        for name, spec in (self.props.get("outputs") or {}).items():
            m = DATASTORE_URI.match((spec or {}).get("uri") or "")
            container = store_container(self.app, self.ws, m.group("ds") if m else "")
            prefix = m.group("path").rstrip("/") if m else f"azureml/{self.name}/{name}"
            root = Path(bindings[("outputs", name)])
            if ((spec or {}).get("jobOutputType") or "").lower() == "uri_file":
                if root.is_file():  # the blob at the output's path is the file
                    self.app.azurite.upload(container, prefix, root.read_bytes())
                continue
            for f in root.rglob("*"):
                if f.is_file():
                    self.app.azurite.upload(
                        container, f"{prefix}/{f.relative_to(root).as_posix()}", f.read_bytes()
                    )


def _seconds(value) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?", str(value))
    if not m:
        return 0.0
    h, mnt, s = (float(x) if x else 0.0 for x in m.groups())
    return h * 3600 + mnt * 60 + s
