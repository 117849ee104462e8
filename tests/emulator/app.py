"""The emulator: wires the HTTPS server, Azurite, the per-workspace MLflow servers and running
jobs."""

import threading
import uuid
from pathlib import Path

import arm  # noqa: F401  (registers routes)
import batch  # noqa: F401
import components  # noqa: F401
import data  # noqa: F401
import endpoints  # noqa: F401
import lro  # noqa: F401
import ml  # noqa: F401
import prices  # noqa: F401
import schedules  # noqa: F401
from arm import MLS_NS, system_data, ws_id
from azure_only import KINDS as AZURE_ONLY, AzureOnlyRunner
from azurite import Azurite
from certs import make_cert
from jobs import JobRunner
from mlflow_server import MlflowServer, free_port
from pipelines import PipelineRunner
from server import CLOUD, serve
from state import State
from sweeps import SweepRunner

SUBSCRIPTION = "00000000-0000-0000-0000-00000000000e"
SHIM = Path(__file__).resolve().parent / "pyshim"


class Emulator:
    def __init__(self, tmp: Path, port=0, azurite_port=0):
        self.tmp = tmp
        self.cert, self.key = make_cert(tmp / "tls")
        self.state = State(tmp / "requests.jsonl")
        self.azurite = Azurite(tmp / "azurite", self.cert, self.key, azurite_port or free_port())
        self.httpd = serve(self, port)
        self.port = self.httpd.server_address[1]
        self.base = f"https://127.0.0.1:{self.port}"
        self.mlflow = {}  # lower-cased workspace id -> MlflowServer
        self.jobs = {}  # lower-cased job id -> JobRunner
        self.slots = {}  # lower-cased compute id -> Semaphore of max nodes
        self.env = {
            "ARM_CLOUD_METADATA_URL": f"{self.base}/metadata/endpoints?api-version=2019-05-01",
            "AZUREML_CURRENT_CLOUD": CLOUD,
            "IDENTITY_ENDPOINT": f"{self.base}/msi/token",
            "IDENTITY_HEADER": "emulator",
            "REQUESTS_CA_BUNDLE": str(self.cert),
            "SSL_CERT_FILE": str(self.cert),
            "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
            "PYTHONPATH": str(SHIM),
            "AZURE_EMULATOR_URL": self.base,
            "MLRUN_PRICES_URL": f"{self.base}/api/retail/prices",
            "AZURE_EMULATOR_REQUEST_LOG": str(tmp / "requests.jsonl"),
        }

    def track(self, pid):
        """Children run in their own sessions; their pids let a supervisor clean up after a
        crash."""
        with open(self.tmp / "children.pids", "a") as f:
            f.write(f"{pid}\n")

    def start(self):
        self.track(self.azurite.proc.pid)
        self.azurite.wait_ready()
        threading.Thread(target=self.httpd.serve_forever, daemon=True, name="https").start()

    def shutdown(self):
        self.httpd.shutdown()
        for runner in list(self.jobs.values()):
            runner.cancel()
        stoppers = [
            threading.Thread(target=child.stop) for child in [*self.mlflow.values(), self.azurite]
        ]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()

    # --- called by route handlers ---
    def create_workspace(self, sub, rg, params) -> dict:
        name = params["workspaceName"]
        wid = ws_id(sub, rg, name)
        existing = self.state.get(wid)
        if existing:
            if params.get("tagValues"):
                existing["tags"] = params["tagValues"]
            return existing
        workspace_id = str(uuid.uuid4())
        location = params.get("location") or "eastus"
        rid = f"/subscriptions/{sub}/resourceGroups/{rg}/providers"
        blob_container, artifact_container = f"azureml-blobstore-{workspace_id}", "azureml"
        for c in (blob_container, artifact_container):
            self.azurite.ensure_container(c)
        ws = {
            "id": wid,
            "name": name,
            "type": f"{MLS_NS}/workspaces",
            "location": location,
            "kind": params.get("kind") or "Default",
            "tags": params.get("tagValues") or {},
            "identity": {
                "type": "SystemAssigned",
                "principalId": str(uuid.uuid4()),
                "tenantId": "00000000-0000-0000-0000-0000000000e1",
            },
            "sku": {"name": "Basic", "tier": "Basic"},
            "systemData": system_data(),
            "properties": {
                "friendlyName": params.get("friendlyName") or name,
                "description": params.get("description") or "",
                "storageAccount": (
                    f"{rid}/Microsoft.Storage/storageAccounts/"
                    f"{params.get('storageAccountName') or 'st' + workspace_id[:8]}"
                ),
                "keyVault": (
                    f"{rid}/Microsoft.KeyVault/vaults/"
                    f"{params.get('keyVaultName') or 'kv' + workspace_id[:8]}"
                ),
                "applicationInsights": (
                    f"{rid}/Microsoft.Insights/components/"
                    f"{params.get('applicationInsightsName') or 'ai' + workspace_id[:8]}"
                ),
                "containerRegistry": None,
                "workspaceId": workspace_id,
                "provisioningState": "Succeeded",
                "discoveryUrl": f"{self.base}/discovery",
                "hbiWorkspace": False,
                "v1LegacyMode": False,
                "publicNetworkAccess": "Enabled",
                "storageHnsEnabled": False,
                "mlFlowTrackingUri": f"azureml://127.0.0.1:{self.port}/mlflow/v1.0{wid}",
                "systemDatastoresAuthMode": "accesskey",
                "enableDataIsolation": False,
            },
        }
        self.state.put(
            wid,
            ws,
            workspace_id=workspace_id,
            blob_container=blob_container,
            artifact_container=artifact_container,
        )
        server = MlflowServer(self.tmp / "mlflow" / workspace_id, self.track)
        self.mlflow[wid.lower()] = server
        # started on first use (MlflowServer.base_url): most workspaces of the fault tests never
        # need it
        return ws

    def mlflow_for(self, wid) -> MlflowServer:
        return self.mlflow[wid.lower()]

    def start_job(self, workspace, job, failure=None):
        kinds = {"Sweep": SweepRunner, "Pipeline": PipelineRunner}
        kinds.update(dict.fromkeys(AZURE_ONLY, AzureOnlyRunner))  # AutoML, FineTuning: stand-ins
        runner = kinds.get(job["properties"].get("jobType"), JobRunner)(self, workspace, job)
        if failure:
            runner.failure = failure
        self.jobs[job["id"].lower()] = runner
        runner.start()

    def compute_slot(self, compute_id):
        if not compute_id:
            return None
        with self.state.lock:
            key = compute_id.lower()
            if key not in self.slots:
                res = self.state.get(compute_id)
                inner = res["properties"]["properties"] if res else {}
                size = (inner.get("scaleSettings") or {}).get("maxNodeCount", 1) or 1
                self.slots[key] = threading.Semaphore(size)
            return self.slots[key]

    def node_count(self, compute_id, delta):
        with self.state.lock:
            res = self.state.get(compute_id) if compute_id else None
            if res and res["properties"]["computeType"] == "AmlCompute":
                inner = res["properties"]["properties"]
                inner["currentNodeCount"] = max(0, inner.get("currentNodeCount", 0) + delta)
                inner["targetNodeCount"] = inner["currentNodeCount"]
                inner["nodeStateCounts"]["runningNodeCount"] = inner["currentNodeCount"]

    def on_deleted(self, ids):
        """Resources just removed by a delete: stop their jobs and MLflow servers."""
        for rid in ids:
            runner = self.jobs.get(rid)
            if runner:
                runner.cancel()
            server = self.mlflow.pop(rid, None)
            if server:
                server.stop()
            self.slots.pop(rid, None)
