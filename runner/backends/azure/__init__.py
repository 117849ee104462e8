"""The azure target: the real service through azure-ai-ml (MLClient), azure-identity,
azure-mgmt-resource and azureml-mlflow. Every SDK is imported lazily, inside the calls.

AzureBackend is the Backend the engine drives; what it does lives in this package's modules:
`client` (the SDK clients and their output), `errors` (Azure's failures in plain words),
`resources` (what mlrun makes), `endpoints` (online endpoints and their deployments), `batch`
and `batch_pipelines` (batch endpoints, their model and pipeline component deployments, and
their calls), `jobs` (runs) and `labs` (lab expiry)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ... import batch as scoring, pipeline_deployments
from ...endpoints import Endpoint, PipelineComponent
from ...records import Actual, Resource, Run, RunChange, StateDoc, Submission
from ...spec import Input, Job, Spec
from ...state import now
from .. import runstore
from ..base import UPDATABLE, new_run, step_as_run
from . import batch, batch_pipelines, endpoints, jobs, labs, resources
from .client import Session, _sdk_stderr

__all__ = ["AzureBackend", "_sdk_stderr"]


class AzureBackend:
    name = "azure"
    updatable = UPDATABLE
    manages_resource_group = True  # the workspace's group, made (and destroyed) with the lab

    def __init__(self, spec: Spec):
        self.spec = spec
        self.session = Session(spec)  # the subscription, group and workspace, and the clients
        self.expires = None  # the lab's expiry (set_expiry), tagged on what mlrun creates
        self.lab_tags: dict = {}
        self.poll_seconds = jobs.POLL_SECONDS
        self._submit_lock = self.session.uploading

    @property
    def tracking_uri(self) -> str:
        """The workspace's MLflow URI; "" while the workspace does not exist (not kept: apply
        makes it)."""
        return self.session.tracking_uri

    def client(self):
        return self.session.client()

    def read_runs(self, wanted: Mapping[str, set[str]]) -> dict[str, Any]:
        return {}  # read a get_run at a time, as reports always have on Azure

    def child_runs(self, parent: Any) -> list:
        return runstore.search_children(self.client(), parent)

    # --- reading the world -----------------------------------------------------------------------

    def refresh(self, state: StateDoc) -> Actual:
        """GET each resource the spec names or the state holds; 404 means it is not there."""
        return resources.refresh(self.session, self.spec, state, self.poll)

    def poll(self, run: Run) -> RunChange:
        return jobs.poll(self.session, run)

    def step_run(self, run: Run, step: str, shown: str) -> Run:
        """The child job of the pipeline job that ran the step (Azure ML runs the pipeline); a
        pipeline deployment's call's step as its record says."""
        record = (run.get("steps") or {}).get(step)
        if record and record.get("run_id"):
            return step_as_run(run, record, record["run_dir"])
        found = jobs.child(self.session, run, shown)
        if found is not None:
            return found
        return step_as_run(run, {}, str(Path(run.get("run_dir", "")) / "steps" / step))

    def reusable(self, fingerprints: list[str]) -> dict[str, str]:
        return {}  # Azure ML decides what it reuses when the pipeline runs

    def advise(self, plan) -> list[str]:
        return resources.advise(self.session, plan)

    # --- resources -------------------------------------------------------------------------------

    def create(self, kind: str, name: str, attrs: dict) -> dict:
        return resources.create(
            self.session, self.spec, kind, name, attrs, self.lab_tags, self.expires
        )

    def update(self, kind: str, name: str, attrs: dict) -> dict:
        return resources.update(self.session, self.spec, kind, name, attrs, self.lab_tags)

    def delete(self, kind: str, name: str, record: Resource) -> None:
        resources.delete(self.session, kind, name, record)

    def register_model(self, name: str, attrs: dict, run: Run | None) -> dict:
        return resources.register_model(self.session, self.spec, name, attrs, run)

    def invoke(self, endpoint: str, body: bytes, deployment: str | None) -> tuple[int, bytes]:
        return endpoints.invoke(self.session, endpoint, body, deployment)

    def model_versions(self, name: str) -> list[tuple[str, str]]:
        return resources.model_versions(self.session, name)

    def billing(self, names: list[str]) -> dict[str, dict]:
        return resources.billing(self.session, names)

    def set_expiry(self, when) -> None:
        """The lab's expiry (a UTC datetime, or None): what mlrun creates from now on carries it as
        tags (and an instance, a stop schedule at that time)."""
        self.expires = when
        self.lab_tags = labs.expiry_tags(self.spec.name, when)

    def retag(self, created_group: bool) -> None:
        labs.retag(self.session, self.lab_tags, created_group)

    # --- jobs ------------------------------------------------------------------------------------

    def submit(
        self, spec: Spec, job: Job, record: Submission, on_start: Callable[[Run], None]
    ) -> Run:
        return jobs.submit(self.session, spec, job, record, on_start, self._submit_lock)

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
        """`az ml batch-endpoint invoke`: the job is named (and recorded by `on_start`) before
        Azure hears of it; its output (a pipeline deployment's: each of its component's) is
        downloaded under the lab's folder when it completes."""
        name = uuid.uuid4().hex
        folder = spec.path.resolve().parent / ".mlrun" / "azure" / self.session.workspace
        run: Run = {
            **new_run(record, name),
            "status": "Preparing",
            "submitted": now(),
            "endpoint": endpoint.name,
            "run_dir": str(folder / "runs" / endpoint.name / name),
        }
        if isinstance(inp, dict):
            run["deployment"] = deployment
        on_start(run)
        made = batch.invoke(self.session, endpoint.name, deployment, inp, name)
        run.update({"status": "NotStarted", "started": now(), **made})
        return run

    def wait(self, run: Run) -> RunChange:
        change = jobs.wait(self.session, run, self.poll_seconds)
        comp = self._called(run)
        if comp is not None:  # a pipeline deployment's call: how each step ended
            change.update(batch_pipelines.ended(self.session, run, comp, change))
        return change

    def _called(self, run: Run) -> PipelineComponent | None:
        """The component a pipeline deployment's call ran (None: another run)."""
        endpoint = self.spec.endpoints.get(run.get("endpoint") or "")
        dep = endpoint.deployments.get(run.get("deployment") or "") if endpoint else None
        return dep.component if dep is not None else None

    def cancel(self, run: Run) -> None:
        jobs.cancel(self.session, run)

    def finalize(self, run: Run) -> None:
        if run.get("endpoint"):  # a batch endpoint's call: its output, where reports read it
            comp = self._called(run)
            folders = (
                pipeline_deployments.output_folders(run, comp)
                if comp is not None
                else {batch.OUTPUT: scoring.output_folder(run)}
            )
            for output, folder in folders.items():
                if run.get("status") == "Completed" and folder is not None:
                    batch.download(self.session, run["id"], folder, output)
            return
        jobs.finalize(self.session, run)

    def run_url(self, run: Run) -> str:
        return jobs.run_url(run)

    def logs(self, run: Run, follow: bool, out) -> None:
        if run.get("endpoint"):  # a batch job's log is its scoring step's
            step = batch.scoring_step(self.session, run["id"])
            if step is not None:
                run = {**run, "id": step}
        jobs.logs(self.session, run, follow, out)
