"""What a local run's folder holds before it starts, as Azure ML prepares a job: the command with
its inputs and outputs substituted, the working copy (a snapshot of the code, ./outputs, ./logs,
an instance's config.json), the variables Azure ML sets, and for a sweep or pipeline the
configuration its controller is handed (contract.py). The local backend starts what this makes."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from .. import datastores, parallel, slots, sweep
from ..account import default_subscription
from ..errors import UserError
from ..pipelines import Step
from ..records import Run, Submission
from ..refs import substitute, unresolved
from ..spec import Input, Job, Spec
from . import (
    assets,
    contract,
    parallel_controller,
    pipeline_controller,
    supervised,
    sweep_controller,
)
from .controller import STEP_SECRET


class Preparer:
    """Prepares runs of `spec`'s jobs in the workspace folder `root`; `model_path` finds a
    registered model's folder (the backend's registry, looked up once per apply)."""

    def __init__(
        self,
        spec: Spec,
        root: Path,
        tracking_uri: str,
        model_path: Callable[[tuple[str, str | None], str], Path],
    ):
        self.spec, self.root, self.tracking_uri, self.model_path = (
            spec,
            root,
            tracking_uri,
            model_path,
        )

    def command(self, job: Job, run_dir: Path, outputs: bool = True) -> str:
        return substitute(job.command, self.values(job, run_dir, outputs), blank=("inputs",))

    def values(self, job: Job, run_dir: Path, outputs: bool = True) -> dict[tuple[str, str], str]:
        """What ${{inputs.X}} and ${{outputs.Y}} of the job stand for: paths and literals."""
        values = {}
        for name, inp in job.inputs.items():
            path = self.input_path(inp, job.name)
            if (
                inp.type is not None
                and path is None
                and isinstance(inp.value, str)
                and inp.type not in ("string", "integer", "number", "boolean")
            ):
                raise UserError(
                    f"job {job.name}: input '{name}' is {inp.value}, which the local target "
                    "cannot read; give it a local path"
                )
            values[("inputs", name)] = str(path) if path else supervised.literal(inp.value)
        for name in job.outputs if outputs else ():
            out = supervised.output_path(
                run_dir / "outputs", name, job.output_files, made=not job.is_spark
            )
            values[("outputs", name)] = str(out)
        return values

    def input_path(self, inp: Input, job: str) -> Path | None:
        """Where a job's input is: a data asset's registered copy (not its source, which may
        change later), a registered model's folder, a local path or its stand-in; None for a
        literal or a remote one."""
        if inp.model:
            return self.model_path(inp.model, f"job {job}: input '{inp.name}'")
        return assets.path_of(self.root, *inp.asset) if inp.asset else inp.local_path

    def env(self, job: Job, run: Run, run_dir: Path) -> dict[str, str]:
        """The job's environment variables: mlrun's own, the job's, and those Azure ML sets for a
        job that scripts read (MLflow's, the run and workspace, inputs and outputs)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AZUREML_"))}
        env.update(job.env_vars)
        experiment = self.spec.experiment(job)
        ws = self.spec.workspace
        env.update(
            MLFLOW_TRACKING_URI=self.tracking_uri,
            MLFLOW_RUN_ID=run["id"],
            MLFLOW_EXPERIMENT_ID=run["experiment_id"],
            MLFLOW_EXPERIMENT_NAME=experiment,
            AZUREML_RUN_ID=run["id"],
            AZUREML_ARM_WORKSPACE_NAME=ws["name"],
            AZUREML_ARM_RESOURCEGROUP=str(ws.get("resource_group") or ""),
            AZUREML_ARM_PROJECT_NAME=experiment,
            AZUREML_EXPERIMENT_ID=run["experiment_id"],
            AZUREML_CR_EXECUTION_WORKING_DIR_PATH=str(run_dir / "work"),
            AZUREML_CR_NODE_RANK="0",
            AZUREML_NODE_COUNT=str(job.instance_count),
        )
        for name, inp in job.inputs.items():
            if (path := self.input_path(inp, job.name)) is not None:
                env[f"AZURE_ML_INPUT_{name}"] = str(path)
        for name in job.outputs:
            out = supervised.output_path(
                run_dir / "outputs", name, job.output_files, made=not job.is_spark
            )
            env[f"AZURE_ML_OUTPUT_{name}"] = str(out)
        return env

    def copy_code(self, code: Path | None, work: Path) -> None:
        """The working folder: a snapshot of `code` (a folder, or a file), or an empty one."""
        if code:
            assets.snapshot(code, work)
        else:
            work.mkdir(parents=True)

    def copy_includes(self, includes: list[Path], work: Path) -> None:
        """A component's additional_includes copied beside its code, each under its own name,
        as az ml does."""
        for extra in includes:
            if extra.is_dir():
                assets.snapshot(extra, work / extra.name)
            else:
                work.mkdir(parents=True, exist_ok=True)
                shutil.copy2(extra, work / extra.name)

    def workspace_config(self, compute: str | None, work: Path) -> None:
        """On a compute instance, the workspace's config.json in the working folder, as an
        instance has it (so `MLClient.from_config()` finds the workspace), unless the code
        brings its own."""
        found = self.spec.computes.get(compute or "")
        if found is None or found.type != "computeinstance" or (work / "config.json").exists():
            return
        azure = self.spec.targets.get("azure") or {}
        subscription = azure.get("subscription_id")
        if not subscription or unresolved(subscription):
            subscription = (default_subscription() or ("",))[0]
        work.mkdir(parents=True, exist_ok=True)
        config = {
            "subscription_id": str(subscription),
            "resource_group": str(self.spec.workspace.get("resource_group") or ""),
            "workspace_name": self.spec.workspace["name"],
        }
        (work / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    def pipeline(
        self, job: Job, run_dir: Path, record: Submission
    ) -> tuple[str, contract.PipelineConfig]:
        """The command that runs the pipeline's controller (backends/pipeline_controller.py) and
        its configuration (each step resolved: command, inputs, outputs, compute, fingerprint),
        with each step's code snapshot made in RUN_DIR/steps/STEP/work."""
        assert job.pipeline is not None
        planned = record["steps"]  # fingerprinted by the plan (fingerprint.pipeline)
        steps, capacity = {}, {}
        secret_keys = {
            name: {k: key for k, (key, _) in found.items()}
            for name, found in step_secrets(job).items()
        }
        for step in job.pipeline.steps.values():
            if step.code:  # snapshotted now, as Azure ML does at submission; the controller
                # makes the working folder (with ./outputs and ./logs) of a step without code
                self.copy_code(step.code, run_dir / "steps" / step.name / "work")
            self.copy_includes(step.includes, run_dir / "steps" / step.name / "work")
            self.workspace_config(step.compute, run_dir / "steps" / step.name / "work")
            compute = self.spec.computes.get(step.compute or "")
            capacity[step.compute or ""] = compute.slots if compute else slots.unbound()
            inputs: dict[str, contract.StepInput] = {}
            for name, source in step.inputs.items():
                if source.kind == "remote":
                    raise UserError(
                        f"job {job.name}: step {step.name}: input '{name}' is "
                        f"{source.value}, which the local target cannot read; give it "
                        "a local path or a stand-in in targets.local.inputs"
                    )
                if source.kind == "model":
                    what = f"job {job.name}: step {step.name}: input '{name}'"
                    path = self.model_path(source.value, what)
                    inputs[name] = contract.StepInput("path", str(path))
                    continue
                if source.asset:  # the registered copy, not the source (which may change later)
                    found = assets.path_of(self.root, *source.asset)
                    inputs[name] = contract.StepInput("path", str(found))
                    continue
                value = source.value
                if source.kind == "path":
                    value = str(value)
                elif source.kind == "step":  # [step, output], as the file has it
                    value = list(value)
                inputs[name] = contract.StepInput(source.kind, value)
            steps[step.name] = contract.StepConfig(
                command=step.command,
                inputs=inputs,
                outputs={n: step.output_files.get(n) for n in sorted(step.outputs)},
                compute=step.compute,
                upstream=list(step.upstream),
                fingerprint=planned[step.name]["fingerprint"],
                parts=planned[step.name]["parts"],
                reusable=planned[step.name]["reusable"],
                run_name=step.fields.get("display_name") or step.name,
                tags={str(k): str(v) for k, v in (step.fields.get("tags") or {}).items()},
                env_vars={k: v for k, v in step.env_vars.items() if k not in step.secrets},
                # secret values reach the step through the controller's environment, not a file
                secret_env=secret_keys.get(step.name, {}),
                timeout=(step.fields.get("limits") or {}).get("timeout"),
                distribution=step.fields.get("distribution"),
                instance_count=int((step.fields.get("resources") or {}).get("instance_count", 1)),
                parallel=None if step.parallel is None else _parallel_step(step),
                sweep=None if step.sweep is None else _sweep_step(step, capacity),
                deliver={
                    name: str(place)
                    for name, uri in step.output_paths.items()
                    if (place := datastores.local_path(self.spec.datastores, uri)) is not None
                },
                spark=step.spark is not None,
            )
        config = contract.PipelineConfig(
            pipeline=job.name,
            steps=steps,
            capacity=capacity,
            cache=str(self.root / "steps"),
            continue_on_step_failure=job.pipeline.continue_on_step_failure,
            outputs={k: list(v) if v else None for k, v in job.pipeline.outputs.items()},
            tags={"mlrun.job": job.name, "mlflow.source.type": "JOB"},
        )
        run_dir.mkdir(parents=True, exist_ok=True)
        return supervised.controller_command(pipeline_controller.MODULE, run_dir), config

    def sweep(self, job: Job, run_dir: Path) -> tuple[str, contract.SweepConfig]:
        """The command that runs the sweep's controller (backends/sweep_controller.py) and its
        configuration (the trials, sampled now, and what each needs)."""
        compute = self.spec.computes.get(job.compute)
        room = compute.slots if compute else slots.unbound()
        limit = job.limits.get("max_concurrent_trials")
        config = contract.SweepConfig(
            command=self.command(job, run_dir, outputs=False),  # outputs are per trial
            outputs={n: job.output_files.get(n) for n in sorted(job.outputs)},
            trials=sweep.sample(job.search_space, job.sampling, job.limits),
            algorithm=sweep.local_algorithm(job.sampling),
            concurrency=min(limit, room) if limit else room,
            trial_timeout=job.limits.get("trial_timeout"),
            objective=job.objective,
            early_termination=job.early_termination,
            run_name=job.fields.get("display_name") or job.name,
            tags={
                **{str(k): str(v) for k, v in (job.fields.get("tags") or {}).items()},
                "mlrun.job": job.name,
                "mlflow.source.name": job.command,
                "mlflow.source.type": "JOB",
            },
        )
        run_dir.mkdir(parents=True, exist_ok=True)
        return supervised.controller_command(sweep_controller.MODULE, run_dir), config

    def parallel(self, job: Job, run_dir: Path) -> tuple[str, contract.ParallelConfig]:
        """The command that runs the parallel job's controller (backends/parallel_controller.py)
        and its configuration: the input's files split into mini-batches now (parallel.py)."""
        s = parallel.settings(job.fields)
        inp = job.inputs[s.input_name]  # validate made sure input_data names an input
        path = self.input_path(inp, job.name)
        if path is None:
            raise UserError(
                f"job {job.name}: input '{inp.name}' is {inp.value}, which the local target "
                "cannot read; give it a local path"
            )
        try:
            found = parallel.source(path, inp.type)
        except ValueError as e:
            raise UserError(f"job {job.name}: input '{inp.name}' ({inp.value}): {e}") from None
        batches = parallel.mini_batches(found.files, s.batch, found.tabular is not None)
        config = parallel_controller.configure(
            job.fields,
            self.values(job, run_dir),
            job.output_files,
            [[str(f) for f in batch] for batch in batches],
            found.tabular,
        )
        run_dir.mkdir(parents=True, exist_ok=True)
        return supervised.controller_command(parallel_controller.MODULE, run_dir), config


def _sweep_step(step: Step, capacity: dict[str, int]) -> dict:
    """What a sweep step's controller needs: its trials, sampled now (as a sweep job's are), and
    how many run at once (max_concurrent_trials, within the step's compute)."""
    assert step.sweep is not None
    algo = step.sweep["sampling_algorithm"] or "random"
    sampling = {"type": algo} if isinstance(algo, str) else dict(algo)
    limits = step.sweep["limits"]
    room = capacity[step.compute or ""]
    limit = limits.get("max_concurrent_trials")
    return {
        "trials": sweep.sample(step.sweep["search_space"], sampling, limits),
        "algorithm": sweep.local_algorithm(sampling),
        "concurrency": min(limit, room) if limit else room,
        "trial_timeout": limits.get("trial_timeout"),
        "objective": step.sweep["objective"],
        "early_termination": step.sweep["early_termination"],
    }


def _parallel_step(step: Step) -> dict:
    """What a parallel step's controller needs to make it a parallel job when it starts: its
    settings and task, and the type of the input its input_data names."""
    assert step.parallel is not None
    name = parallel.settings(step.parallel).input_name
    return {"fields": step.parallel, "input_type": step.input_types.get(name or "")}


def step_secrets(job: Job) -> dict[str, dict[str, tuple[str, str]]]:
    """A pipeline's secret step variables: step -> {NAME: (the controller's variable, value)}."""
    found: dict[str, dict[str, tuple[str, str]]] = {}
    steps = job.pipeline.steps.values() if job.pipeline else ()
    for step in steps:
        for name in sorted(step.secrets):
            key = f"{STEP_SECRET}{sum(map(len, found.values()))}"
            found.setdefault(step.name, {})[name] = (key, step.env_vars[name])
    return found
