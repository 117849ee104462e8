"""What the local backend hands a sweep's, pipeline's or parallel job's controller, and what a
pipeline's controller hands back: one typed contract with a version.

RUN_DIR/sweep.json, RUN_DIR/pipeline.json or RUN_DIR/parallel.json is written once, when the run is
handed over (its environments built), and read once by the controller; RUN_DIR/steps.json is
written once by a pipeline's controller when it ends, and read into the run's record. A file of
another format version (another mlrun's) is refused with what it is, never half read."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ..records import StepRecord
from ..state import atomic_write

VERSION = 1
PIPELINE = "pipeline.json"
SWEEP = "sweep.json"
PARALLEL = "parallel.json"
STEPS = "steps.json"


class ContractError(RuntimeError):
    """A controller's file this mlrun does not read (another version, or broken)."""


@dataclass
class StepInput:
    """Where a step's input comes from: `path` (a local file or folder), `literal` (a value),
    `step` ([step, output] of an upstream step), `unset` (an optional input not given)."""

    kind: str
    value: Any = None


@dataclass
class StepConfig:
    command: str
    inputs: dict[str, StepInput]
    outputs: dict[str, str | None]  # output -> its file name (a uri_file output), else None
    compute: str | None
    upstream: list[str]
    fingerprint: str
    parts: dict[str, Any]
    reusable: bool
    run_name: str
    tags: dict[str, str]
    env_vars: dict[str, str]
    secret_env: dict[str, str]  # variable -> the controller's variable holding the secret
    timeout: float | None
    distribution: dict[str, Any] | None
    instance_count: int
    base: dict[str, Any] | None = None  # the step's environment (envs.Base.to_dict())
    tracking_uri: str | None = None  # its own MLflow logs over HTTP to this server
    # a parallel step's: {"fields": its parallel settings and task, "input_type": the type of the
    # input its input_data names}; the step then runs as a parallel job (parallel_controller.py)
    parallel: dict[str, Any] | None = None
    # a sweep step's: its trials (sampled at submission), algorithm, concurrency, trial_timeout,
    # objective and early_termination; the step then runs as a sweep (sweep_controller.py)
    sweep: dict[str, Any] | None = None
    # outputs on datastore paths: name -> the local file or folder it is copied to once the step
    # completes (`${{name}}` in it: the step's run id), as Azure ML writes them to the datastore
    deliver: dict[str, str] = field(default_factory=dict)
    spark: bool = False  # a spark step: Spark makes its outputs' folders itself


@dataclass
class PipelineConfig:
    pipeline: str
    steps: dict[str, StepConfig]
    capacity: dict[str, int]  # compute ("" for none) -> its slots
    cache: str  # the workspace's completed steps (backends/steps.py)
    continue_on_step_failure: bool
    outputs: dict[str, list[str] | None]  # the pipeline's output -> [step, output]
    tags: dict[str, str]
    base: dict[str, Any] | None = None  # the steps' each have theirs
    tracking_uri: str | None = None


@dataclass
class SweepConfig:
    command: str
    outputs: dict[str, str | None]
    trials: list[dict[str, Any]]  # each trial's search space values, sampled at submission
    algorithm: str
    concurrency: int
    trial_timeout: float | None
    objective: dict[str, Any]
    early_termination: dict[str, Any] | None
    run_name: str
    tags: dict[str, str]
    base: dict[str, Any] | None = None  # what each trial's layer sits on
    tracking_uri: str | None = None  # the trials' own MLflow logs over HTTP to this server


@dataclass
class ParallelConfig:
    """A parallel job's mini-batches (made at submission) and how its workers run them."""

    entry_script: str  # in the working folder
    arguments: list[str]  # program_arguments, substituted and split
    batches: list[list[str]] | None  # each mini-batch's files (None: made from `source`)
    tabular: dict[str, Any] | None  # how a file of tabular data is read (parallel.Source)
    workers: int
    per_instance: int  # workers per node (max_concurrency_per_instance)
    max_retries: int
    timeout: float
    error_threshold: int
    mini_batch_error_threshold: int
    logging_level: str
    append_to: str | None  # the file rows are appended to
    batch_size: str
    # {"path", "type"} of the input the controller splits into mini-batches when it starts (a
    # pipeline step's, whose input an upstream step makes); None: `batches` were made at submission
    source: dict[str, Any] | None = None


Config = PipelineConfig | SweepConfig | ParallelConfig


def file_name(config: Config) -> str:
    """The file a controller's configuration is written to in its run folder."""
    if isinstance(config, PipelineConfig):
        return PIPELINE
    return SWEEP if isinstance(config, SweepConfig) else PARALLEL


def write(path: Path, config: Config) -> None:
    """The controller's file, atomically (a controller never reads half of one)."""
    _write(path, {"version": VERSION, **dataclasses.asdict(config)})


def read_pipeline(path: Path) -> PipelineConfig:
    data = _read(path)
    steps = {
        name: StepConfig(
            **{**step, "inputs": {k: StepInput(**v) for k, v in step["inputs"].items()}}
        )
        for name, step in data.pop("steps").items()
    }
    return PipelineConfig(**data, steps=steps)


def read_sweep(path: Path) -> SweepConfig:
    return SweepConfig(**_read(path))


def read_parallel(path: Path) -> ParallelConfig:
    return ParallelConfig(**_read(path))


def write_steps(path: Path, records: dict[str, StepRecord]) -> None:
    _write(path, {"version": VERSION, "steps": records})


def read_steps(path: Path) -> dict[str, StepRecord] | None:
    """A pipeline's step records as its run's record keeps them (None: not written yet)."""
    if not path.exists():
        return None
    data = _load(path)
    if isinstance(data, dict) and "version" not in data:  # written before steps.json had one:
        return cast(dict[str, StepRecord], data)  # the records themselves
    return cast(dict[str, StepRecord], _checked(path, data)["steps"])


def _write(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(data, indent=2, default=str))


def _read(path: Path) -> dict[str, Any]:
    return _checked(path, _load(path))


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ContractError(f"{path}: cannot be read ({e})") from None


def _checked(path: Path, data: Any) -> dict[str, Any]:
    """The file's data without its version, if the version is this mlrun's."""
    version = data.pop("version", None) if isinstance(data, dict) else None
    if version != VERSION:
        raise ContractError(
            f"{path}: format {version}, which this mlrun does not read (it reads {VERSION}): "
            "the run was started by another version of mlrun"
        )
    return cast(dict[str, Any], data)
