"""What a command works on: the spec, its state for a target, and the target's backend."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import plan as planning, spec as spec_mod
from .backends import targets
from .backends.base import Backend
from .changes import Plan
from .errors import UserError
from .records import Actual, Run
from .state import State, state_path


def backend_for(target: str, spec: spec_mod.Spec) -> Backend:
    """The target's backend (each imports its SDKs only when it needs them). The one place that
    picks code by target: imported here, on demand, so that a local plan never loads Azure's."""
    if targets.get(target) is targets.LOCAL:
        from .backends.local import LocalBackend

        return LocalBackend(spec)
    from .backends.azure import AzureBackend

    return AzureBackend(spec)


@dataclass
class Context:
    spec: spec_mod.Spec
    state: State
    backend: Backend
    target: str

    def refresh(self) -> Actual:
        return self.backend.refresh(self.state.snapshot())

    def plan(self, force=(), only=None) -> tuple[Plan, dict[str, Any]]:
        model = planning.desired(
            self.spec, manages_resource_group=self.backend.manages_resource_group
        )
        actual = self.refresh()
        steps = [
            s["fingerprint"] for j in model["jobs"].values() for s in j.get("steps", {}).values()
        ]
        actual["reusable"] = self.backend.reusable(steps) if steps else {}
        return planning.make_plan(
            model,
            actual,
            target=self.target,
            spec=str(self.spec.path.resolve()),
            updatable=self.backend.updatable,
            force=tuple(force),
            only=set(only) if only else None,
        ), model

    def check_jobs(self, names: Iterable[str]) -> None:
        """Refuse job names (from --only, --force, logs) that the spec does not have."""
        unknown = [n for n in names if n not in self.spec.jobs]
        if unknown:
            raise UserError(
                f"no job named {', '.join(repr(n) for n in unknown)} in {self.spec.path} "
                f"(jobs: {', '.join(self.spec.jobs) or 'none'})"
            )

    def latest_run(self, job: str) -> Run:
        """The job's latest run, for logs: a job the spec lacks, or one not run yet, is refused.
        PIPELINE/STEP names a step of a pipeline's latest run."""
        pipeline, _, step = job.partition("/")
        if step:
            return self.step_run(pipeline, step)
        if job not in self.state.jobs:
            self.check_jobs((job,))  # a job of the spec that has not run yet is said below
        run = self.state.latest(job)
        if run is None:
            raise UserError(f"job {job} has not run yet")
        return run

    def step_run(self, pipeline: str, step: str) -> Run:
        """A step of the latest run of a pipeline, as a run of its own (its id, folder, status);
        of a batch endpoint's latest call of a pipeline deployment too."""
        if pipeline not in self.spec.jobs and pipeline in self.spec.endpoints:
            return self._call_step(pipeline, step)
        job = self.spec.jobs.get(pipeline)
        if job is None or job.pipeline is None:
            pipelines = [n for n, j in self.spec.jobs.items() if j.pipeline] or ["none"]
            raise UserError(
                f"no pipeline named '{pipeline}' in {self.spec.path} "
                f"(pipelines: {', '.join(pipelines)})"
            )
        if step not in job.pipeline.steps:
            raise UserError(
                f"pipeline {pipeline} has no step '{step}' (steps: {', '.join(job.pipeline.steps)})"
            )
        run = self.latest_run(pipeline)
        shown = job.pipeline.steps[step].fields.get("display_name") or step
        return self.backend.step_run(run, step, shown)

    def _call_step(self, endpoint: str, step: str) -> Run:
        """A step of a batch endpoint's latest call (a pipeline deployment's pipeline job)."""
        run = self.latest_run(endpoint)
        steps = list(run.get("steps") or {}) or [
            s
            for d in self.spec.endpoints[endpoint].deployments.values()
            if d.component is not None
            for s in d.component.pipeline.steps
        ]
        if step not in steps:
            raise UserError(
                f"endpoint {endpoint}'s latest call has no step '{step}' (steps: "
                f"{', '.join(dict.fromkeys(steps)) or 'none'})"
            )
        return self.backend.step_run(run, step, step)

    def require_runs(self) -> None:
        if not self.state.jobs:
            raise UserError(f"nothing has run yet: run mlrun apply {self.spec.path}")


def open_context(
    path: str | Path,
    target: str = "local",
    overrides: Mapping[str, Any] | None = None,
    runs: bool = True,
) -> Context:
    """Load the spec with the state's generated variables, the state, and the backend.
    `runs`: the spec is loaded to run on the target (see spec.load)."""
    states: dict[str, State] = {}

    def kept(name: str) -> tuple[Mapping[str, str], str]:
        """The generated values a lab of this name keeps, and the seed of those it does not
        have yet: its state (which file, which lineage, how many saves: a destroy saves, so the
        names after it are new, as Azure keeps deleted ones a while), on this machine, for this
        user. Plan and the apply after it derive the same values."""
        state = states[name] = State.load(state_path(Path(path), name, target), name, target)
        seed = "|".join(
            str(p)
            for p in (
                state.path.resolve(),
                state.data["lineage"],
                state.serial,
                socket.gethostname(),
                os.getuid(),
                _machine_id(),
            )
        )
        return state.variables, seed

    spec = spec_mod.load(path, target=target, overrides=overrides, runs=runs, kept=kept)
    state = states.get(spec.name) or State.load(
        state_path(spec.path, spec.name, target), spec.name, target
    )
    return Context(spec, state, backend_for(target, spec), target)


def _machine_id() -> str:
    """This machine's id (systemd's), where there is one: labs on cloned machines of the same
    name and user still generate different values."""
    try:
        return Path("/etc/machine-id").read_text().strip()
    except OSError:
        return ""
