"""The records the state, apply, the backends and the views share: a run, how a run changed, a
resource, a pipeline step's record, the state document and the world as a target reads it.

They are JSON as the state file keeps them (what a killed apply left is read back as written), so
they are TypedDicts: plain dicts at run time, typed for mypy (`disallow_any_generics` here and in
the Backend protocol). A key that only one target writes is said so. (No `from __future__ import
annotations` here: the Required and NotRequired marks must be seen when the classes are made.)"""

from typing import Any, NotRequired, Required, TypedDict


class StepRecord(TypedDict, total=False):
    """A pipeline step as its run ended (the local target's controller writes them, steps.json;
    a run's record keeps them under `steps`)."""

    fingerprint: str
    parts: dict[str, Any]
    run_id: str | None
    status: str  # Completed, Failed, Canceled, Reused
    run_dir: str
    reused: bool
    error: str  # a failed step's: its exit code (and the reason its controller gave)


class RunChange(TypedDict, total=False):
    """How a run stands now (poll: {} when unchanged), or how it ended (wait)."""

    status: str
    started: str | None
    ended: str | None
    exit_code: int | None
    error: str
    pid: int
    steps: dict[str, StepRecord]  # a pipeline's, once it ended (local)


class StepPlan(TypedDict):
    """A pipeline step as the plan fingerprinted it (fingerprint.pipeline)."""

    fingerprint: str
    parts: dict[str, Any]
    upstream: list[str]
    reusable: bool


class Submission(TypedDict):
    """What apply knows of a run before the target makes it (Backend.submit's `record`): the
    fingerprints the plan computed, a pipeline's steps' too."""

    fingerprint: str
    parts: dict[str, Any]
    compute: str | None
    steps: NotRequired[dict[str, StepPlan]]  # a pipeline's


class Run(RunChange, total=False):
    """A run of a job: made by submit, kept in the state's jobs.NAME.runs."""

    id: Required[str]  # the MLflow run id (on Azure ML, the job's name)
    fingerprint: str
    parts: dict[str, Any]
    compute: str | None
    submitted: str
    finalized: bool
    experiment_id: str  # local
    run_dir: str  # local: the run's folder; azure: where a scoring run's output is downloaded
    artifact_uri: str  # local
    studio_url: str  # azure
    endpoint: str  # azure: a batch endpoint's scoring run (its output is downloaded)
    deployment: str  # azure: a pipeline deployment's call (its steps and outputs are read)
    run_id: str | None  # a step's record read as a run (Backend.step_run)
    step: str
    reused: bool


class Resource(TypedDict, total=False):
    """A resource as the state keeps it: what the spec asked (attrs) and what the target said."""

    kind: Required[str]
    name: Required[str]
    attrs: dict[str, Any]
    details: dict[str, Any]
    created_by_mlrun: bool


class JobEntry(TypedDict):
    runs: list[Run]


class StateDoc(TypedDict):
    """The state file's document (state.py)."""

    format_version: int
    lineage: str
    serial: int
    name: str
    target: str
    variables: dict[str, str]
    resources: dict[str, Resource]
    jobs: dict[str, JobEntry]
    lab: NotRequired[dict[str, Any]]  # the lab's own times (started, extended)


class Actual(TypedDict):
    """The world as plan sees it (Backend.refresh): the resources there, each job's latest run as
    it stands, and which state it was read against."""

    resources: dict[str, Resource]
    jobs: dict[str, Run]
    lineage: str
    serial: int
    reusable: NotRequired[dict[str, str]]  # step fingerprints a completed step run has
