"""The Backend protocol: what apply, status, logs and reports need from a target."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, BinaryIO, Protocol

from ..spec import Job, Spec

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

    def refresh(self, state: dict) -> dict:
        """The actual world as plan sees it: {resources, jobs: {name: latest run}, lineage, serial}.
        Reads only; never imports heavy libraries for the local target."""

    def reusable(self, fingerprints: list[str]) -> dict[str, str]:
        """Of these pipeline step fingerprints, those a completed step run has, with its run id
        (the target reuses that run instead of running the step)."""

    def child(self, run: dict, name: str) -> dict | None:
        """A child run of a pipeline's run (its step `name`), as a run record, where the target
        runs the pipeline itself; None where mlrun's own records say (the local target)."""

    def read_runs(self, wanted: dict[str, set[str]]) -> dict[str, Any]:
        """MLflow runs by id (`wanted`: experiment id -> run ids) read at once, where the target
        reads in bulk; {} where it reads a run at a time (callers get_run what is missing)."""

    def child_runs(self, parent: Any) -> list:
        """The MLflow runs of a sweep's trials or a pipeline's steps (children of the MLflow run
        `parent`), oldest first."""

    def poll(self, run: dict) -> dict:
        """How the run stands now, cheaply: {} if unchanged, else {status, ...}."""

    def advise(self, plan) -> list[str]:
        """Warnings about a plan before it is applied (e.g. not enough quota)."""

    def create(self, kind: str, name: str, attrs: dict) -> dict: ...

    def update(self, kind: str, name: str, attrs: dict) -> dict: ...

    def delete(self, kind: str, name: str, record: dict) -> None: ...

    def register_model(self, name: str, attrs: dict, run: dict | None) -> dict:
        """Register the spec's model `name` (from `run`, the completed run of its job, if it comes
        from one): its details, with the version registered. A version registered before from the
        same run and content is returned, not made again."""

    def set_expiry(self, when) -> None:
        """The lab's expiry (a UTC datetime, or None), for what the target creates from now on."""

    def retag(self, created_group: bool) -> None:
        """The lab's expiry on what it made (apply --extend), where the target tags resources."""

    def billing(self, names: list[str]) -> dict[str, dict]:
        """What these computes run now (what bills): {name: {state, nodes, since}}; {} where
        nothing bills (the local target)."""

    def model_versions(self, name: str) -> list[tuple[str, str]]:
        """The registered versions of model `name` that a run made: (version, run id) each."""

    def submit(self, spec: Spec, job: Job, record: dict, on_start: Callable[[dict], None]) -> dict:
        """Start a run of `job`; `record` has id-less bookkeeping, `on_start` persists it
        (called before anything runs). Returns the run record."""

    def wait(self, run: dict) -> dict:
        """Block until the run ends; returns {status, exit_code, ended, error?}."""

    def cancel(self, run: dict) -> None: ...

    def finalize(self, run: dict) -> None:
        """Make the tracking store agree with how the run ended (status, logs, outputs)."""

    def logs(self, run: dict, follow: bool, out) -> None:
        """Write the run's std output to the binary stream `out` (until it ends, with `follow`)."""

    def run_url(self, run: dict) -> str:
        """Where a person sees the run: a local folder, or the Azure ML studio URL."""

    def client(self):
        """An MlflowClient on the target's tracking store (imports mlflow)."""
