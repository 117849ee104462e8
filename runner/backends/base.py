"""The Backend protocol: what apply, status, logs and reports need from a target."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from ..records import Actual, Resource, Run, RunChange, StateDoc, StepRecord, Submission

if TYPE_CHECKING:  # types only: a run's controllers import this module, and not the spec's
    from datetime import datetime

    from ..changes import Plan
    from ..endpoints import Endpoint
    from ..spec import Input, Job, Spec

# Statuses are Azure ML's; these are the ones a run ends in.
TERMINAL = ("Completed", "Failed", "Canceled")
MLFLOW_STATUS = {"Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED"}
# What Azure ML can change in place (dstack-style allow-list), by kind (a compute's by its type);
# any other difference replaces. The local target, which mimics Azure ML, declares it too.
UPDATABLE: Mapping[str, frozenset[str]] = {
    "workspace": frozenset({"display_name", "description", "tags"}),
    "amlcompute": frozenset(
        {
            "min_instances",
            "max_instances",
            "idle_time_before_scale_down",
            "description",
            "tags",
        }
    ),
    "computeinstance": frozenset(
        {
            "idle_time_before_shutdown_minutes",
            "idle_time_before_shutdown",
            "description",
            "tags",
        }
    ),
    "endpoint": frozenset({"traffic", "mirror_traffic", "description", "tags"}),
    # a schedule is made again in place (az ml schedule create / update; enable and disable are
    # its `enabled`)
    "schedule": frozenset(
        {
            "display_name",
            "description",
            "tags",
            "properties",
            "trigger",
            "create_job",
            "overrides",
            "import_data",
            "job",
            "enabled",
        }
    ),
    # a datastore is registered again in place (az ml datastore create); its type is fixed
    "datastore": frozenset(
        {
            "account_name",
            "container_name",
            "filesystem",
            "file_share_name",
            "store_name",
            "protocol",
            "endpoint",
            "description",
            "tags",
            "credentials",
            "folder",
        }
    ),
    # a deployment is updated in place (Azure rolls its instances; locally new servers answer
    # before the old ones stop)
    "deployment": frozenset(
        {
            "model",
            "model_content",
            "code",
            "scoring_script",
            "environment",
            "environment_variables",
            "instance_type",
            "instance_count",
            "request_settings",
            "compute",  # a batch deployment's: where and how it scores when called
            "settings",
            "component",  # a pipeline deployment's (its steps' content too)
            "component_steps",
            "content",
            "description",
            "tags",
        }
    ),
}


class LineEnding:
    """A binary stream that remembers whether what was written ends a line, so that a log that
    does not end with a newline does not run into what is printed next."""

    def __init__(self, out: BinaryIO):
        self.out, self.last = out, b"\n"

    def write(self, data: bytes) -> int:
        if data:
            self.last = data[-1:]
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()

    def end_line(self) -> None:
        if self.last != b"\n":
            self.write(b"\n")
            self.flush()


def new_run(record: Submission, run_id: str) -> Run:
    """A run's first record: the submission's bookkeeping (not a pipeline's planned steps: a run's
    `steps` are how they ended) and its id."""
    return {
        "fingerprint": record["fingerprint"],
        "parts": record["parts"],
        "compute": record["compute"],
        "id": run_id,
    }


def step_as_run(run: Run, record: StepRecord, folder: str) -> Run:
    """A pipeline step's record (empty: not ended yet) as a run: the pipeline's run's status while
    that runs, a reused step's as Completed."""
    ended = run.get("status") in TERMINAL
    status = record.get("status") or (run.get("status") if ended else "Running")
    out: Run = {**record, "id": record.get("run_id") or run["id"], "run_dir": folder}
    if status is not None:
        out["status"] = "Completed" if status == "Reused" else status
    return out


class Backend(Protocol):
    name: str
    # The fields the target changes in place, by kind (a compute's by its type): plan replaces a
    # resource whose other fields differ.
    updatable: Mapping[str, frozenset[str]]
    # Whether the workspace's resource_group is a resource the lab makes and destroys (Azure);
    # else it is only a workspace field.
    manages_resource_group: bool

    @property
    def tracking_uri(self) -> str: ...

    def refresh(self, state: StateDoc) -> Actual:
        """The actual world as plan sees it: {resources, jobs: {name: latest run}, lineage, serial}.
        Reads only; never imports heavy libraries for the local target."""

    def reusable(self, fingerprints: list[str]) -> dict[str, str]:
        """Of these pipeline step fingerprints, those a completed step run has, with its run id
        (the target reuses that run instead of running the step)."""

    def step_run(self, run: Run, step: str, shown: str) -> Run:
        """A step (`shown`: its display name) of a pipeline's run, as a run of its own: its id,
        folder and status (mlrun logs PIPELINE/STEP)."""

    def read_runs(self, wanted: Mapping[str, set[str]]) -> dict[str, Any]:
        """MLflow runs by id (`wanted`: experiment id -> run ids) read at once, where the target
        reads in bulk; {} where it reads a run at a time (callers get_run what is missing)."""

    def child_runs(self, parent: Any) -> list[Any]:
        """The MLflow runs of a sweep's trials or a pipeline's steps (children of the MLflow run
        `parent`), oldest first."""

    def poll(self, run: Run) -> RunChange:
        """How the run stands now, cheaply: {} if unchanged, else {status, ...}."""

    def advise(self, plan: Plan) -> list[str]:
        """Warnings about a plan before it is applied (e.g. not enough quota)."""

    def create(self, kind: str, name: str, attrs: dict[str, Any]) -> dict[str, Any]:
        """Make the resource; what the target says of it (the record's details)."""

    def update(self, kind: str, name: str, attrs: dict[str, Any]) -> dict[str, Any]: ...

    def delete(self, kind: str, name: str, record: Resource) -> None: ...

    def invoke(self, endpoint: str, body: bytes, deployment: str | None) -> tuple[int, bytes]:
        """Call an online endpoint as a client does (its key or token; `deployment`: the
        azureml-model-deployment header): the answer's status and body."""

    def register_model(self, name: str, attrs: dict[str, Any], run: Run | None) -> dict[str, Any]:
        """Register the spec's model `name` (from `run`, the completed run of its job, if it comes
        from one): its details, with the version registered. A version registered before from the
        same run and content is returned, not made again."""

    def set_expiry(self, when: datetime | None) -> None:
        """The lab's expiry (a UTC datetime, or None), for what the target creates from now on."""

    def retag(self, created_group: bool) -> None:
        """The lab's expiry on what it made (apply --extend), where the target tags resources."""

    def billing(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """What these computes run now (what bills): {name: {state, nodes, since}}; {} where
        nothing bills (the local target)."""

    def model_versions(self, name: str) -> list[tuple[str, str]]:
        """The registered versions of model `name` that a run made: (version, run id) each."""

    def submit(
        self, spec: Spec, job: Job, record: Submission, on_start: Callable[[Run], None]
    ) -> Run:
        """Start a run of `job`; `record` has id-less bookkeeping, `on_start` persists it
        (called before anything runs). Returns the run record."""

    def score(
        self,
        spec: Spec,
        endpoint: Endpoint,
        deployment: str,
        details: dict[str, Any],
        inp: Input | dict[str, Input],
        record: Submission,
        on_start: Callable[[Run], None],
    ) -> Run:
        """Start a batch endpoint's scoring job (az ml batch-endpoint invoke) on `inp` with
        `deployment` (`details`: what its record says of it), as submit starts a job; its output
        `score` is in batch.output_folder(run) once finalize has run. A pipeline deployment's
        call gives its component's inputs by name: its run is a pipeline job whose `steps` say
        how each step ended once it has, its outputs in
        pipeline_deployments.output_folders(run, component) once finalize has run."""

    def wait(self, run: Run) -> RunChange:
        """Block until the run ends; returns {status, exit_code, ended, error?}."""

    def cancel(self, run: Run) -> None: ...

    def finalize(self, run: Run) -> None:
        """Make the tracking store agree with how the run ended (status, logs, outputs)."""

    def logs(self, run: Run, follow: bool, out: BinaryIO) -> None:
        """Write the run's std output to the binary stream `out` (until it ends, with `follow`)."""

    def run_url(self, run: Run) -> str:
        """Where a person sees the run: a local folder, or the Azure ML studio URL."""

    def client(self) -> Any:
        """An MlflowClient on the target's tracking store (imports mlflow)."""
