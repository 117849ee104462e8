"""The controller of a pipeline job (type: pipeline) on the local target.

The local backend resolves the pipeline when it submits it (runner/pipelines.py), snapshots each
step's code into RUN_DIR/steps/STEP/work, builds the steps' environments, and writes everything a
step needs to RUN_DIR/pipeline.json; this controller then runs the steps as child runs (tag
mlflow.parentRunId = the pipeline's run, mlrun.step = the step):
  - in dependency order, independent steps at once within their computes' capacity;
  - each output a folder (RUN_DIR/steps/STEP/outputs/NAME; `artifacts`: the step's working folder
    with its ./outputs and ./logs), handed to the steps that bind it;
  - a step whose fingerprint matches a completed step run of this workspace (backends/steps.py)
    is reused unless it is not deterministic or forced: a child run tagged mlrun.reused_from,
    its outputs handed on as they are;
  - a parallel step (type: parallel) runs as a parallel job in its folder: the parallel job's
    controller (parallel_controller.py) on its input, which its upstream step made;
  - a failing step cancels the running ones and the rest (with continue_on_step_failure, only
    the steps that need its outputs), and the pipeline's run says which failed, and why;
  - a completed step's outputs declared on datastore paths are copied to those datastores'
    folders before the steps after it start;
  - at the end the pipeline's outputs are logged on the parent run, RUN_DIR/steps.json records
    each step (fingerprint, parts, run, status) for the state, and it exits 0 when every step
    completed or was reused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import datastores, parallel
from ..records import Run, StepRecord
from ..refs import optional_parts, substitute
from ..slots import Pool
from . import contract, distributed, envs, parallel_controller, supervised, sweep_controller
from .controller import Child, Controller
from .steps import StepCache

POLL = 0.2  # seconds between looks at the running steps
MODULE = __name__
DONE = ("Completed", "Reused")


class StepRun(Child):
    def __init__(self, folder: Path, name: str, cfg: contract.StepConfig):
        super().__init__(folder)
        self.name, self.cfg = name, cfg
        self.outputs: dict[str, str] = {}
        self.reused_from: str | None = None
        self.error: str | None = None  # a failed step's exit code, and its controller's reason
        self.origin = folder  # the run folder of its run (a reused step's: the reused run's)
        self.looked = False  # whether the completed steps were looked at for it


class PipelineController(Controller):
    TAG = "pipeline"
    cfg: contract.PipelineConfig

    def read_config(self, run_dir: Path) -> contract.PipelineConfig:
        return contract.read_pipeline(run_dir / contract.PIPELINE)

    def needs_mlflow(self) -> bool:
        """Only to log the pipeline's own outputs on its run: steps' runs are made and ended,
        and their outputs handed on, without MLflow."""
        return any(self.cfg.outputs.values())

    def __init__(self, run_dir: Path):
        super().__init__(run_dir)
        self.cache = StepCache(Path(self.cfg.cache))
        self.steps = {n: StepRun(run_dir / "steps" / n, n, c) for n, c in self.cfg.steps.items()}
        self.pools = {compute: Pool(compute, n) for compute, n in self.cfg.capacity.items()}
        self.failure: str | None = None  # the first step that failed, and why

    def run(self) -> int:
        self.log(f"{len(self.steps)} steps: {', '.join(self.steps)}")
        running: set[str] = set()
        while True:
            moved = True
            while moved:  # a reused or canceled step may let others go at once
                moved = False
                for step in self.steps.values():
                    if step.status is not None or step.name in running:
                        continue
                    if self.startable(step) and self.start(step):
                        running.add(step.name)
                    moved = moved or step.name in running or step.status is not None
            if not running:
                break
            for child in self.wait_ended(POLL):  # woken the moment a step's process exits
                assert isinstance(child, StepRun)
                running.discard(child.name)
                self.finish(child)
        return self.conclude()

    def key(self, step: StepRun) -> str:
        return step.cfg.compute or ""

    def startable(self, step: StepRun) -> bool:
        """Whether the step can start now; a step whose upstream failed is Canceled here."""
        upstream = [self.steps[u] for u in step.cfg.upstream]
        if self.stopping or any(u.status not in (None, *DONE) for u in upstream):
            step.status = "Canceled"
            self.log(
                f"step {step.name} canceled: "
                + (
                    "the pipeline is stopping"
                    if self.stopping
                    else "a step it needs did not complete"
                )
            )
            return False
        return all(u.status in DONE for u in upstream)

    # --- one step ---

    def start(self, step: StepRun) -> bool:
        """Reuse the step or start it (False: its compute is full, try again later)."""
        if step.cfg.reusable and not step.looked:  # once: the step is ready now
            step.looked = True
            if record := self.cache.get(step.cfg.fingerprint):
                self.reuse(step, record)
                return False
        lease = self.pools[self.key(step)].take(int(step.cfg.instance_count or 1), block=False)
        if lease is None:
            return False
        step.lease = lease  # given back when the step is finished (Controller.finish_child)
        for name in ("outputs", "logs"):  # as Azure ML has them before the command starts
            (step.dir / "work" / name).mkdir(parents=True, exist_ok=True)
        values, given = {}, set()
        for name, source in step.cfg.inputs.items():
            kind, value = source.kind, source.value
            if kind == "step":
                value = self.steps[value[0]].outputs[value[1]]
            elif kind in ("unset", "remote"):
                continue
            values[("inputs", name)] = supervised.literal(value)
            given.add(name)
        env = {f"AZURE_ML_INPUT_{n}": values[("inputs", n)] for n in given}
        files = {n: f for n, f in step.cfg.outputs.items() if f}
        for name in step.cfg.outputs:
            path = (
                step.dir / "work"
                if name == "artifacts"
                else supervised.output_path(
                    step.dir / "outputs", name, files, made=not step.cfg.spark
                )
            )
            step.outputs[name] = values[("outputs", name)] = str(path)
            env[f"AZURE_ML_OUTPUT_{name}"] = str(path)
        if step.cfg.parallel is not None:
            command = self.parallel_command(step, values, files)
        elif step.cfg.sweep is not None:
            command = self.sweep_command(step, values, given, files)
        else:
            command = substitute(optional_parts(step.cfg.command, given), values, blank=("inputs",))
        env.update(step.cfg.env_vars)
        if step.cfg.tracking_uri:  # the step's own MLflow logs over HTTP
            env["MLFLOW_TRACKING_URI"] = step.cfg.tracking_uri
        env.update({k: os.environ.get(key, "") for k, key in step.cfg.secret_env.items()})
        spread = step.cfg.distribution or {}
        if spread.get("type") in distributed.KINDS:  # as many processes as Azure ML would start
            distributed.write(step.dir / "processes", spread, int(step.cfg.instance_count or 1))
        assert step.cfg.base is not None, f"step {step.name}: handed over without its environment"
        base = envs.Base.from_dict(step.cfg.base)
        self.start_child(
            step,
            command,
            step.cfg.run_name,
            self.tags(step),
            {},
            step.cfg.timeout,
            base,
            env,
        )
        self.log(f"step {step.name} started: run {step.run_id}")
        return True

    def parallel_command(self, step: StepRun, values: dict, files: dict[str, str]) -> str:
        """A parallel step's command: the parallel job's controller on the step's folder, handed
        the input it splits into mini-batches (an upstream step's output is there only now)."""
        assert step.cfg.parallel is not None
        fields = step.cfg.parallel["fields"]
        name = parallel.settings(fields).input_name
        source = {"path": values.get(("inputs", name)), "type": step.cfg.parallel["input_type"]}
        config = parallel_controller.configure(fields, values, files, source=source)
        contract.write(step.dir / contract.PARALLEL, config)
        return supervised.controller_command(parallel_controller.MODULE, step.dir)

    def sweep_command(self, step: StepRun, values: dict, given: set, files: dict[str, str]) -> str:
        """A sweep step's command: the sweep controller on the step's folder, its trials' command
        the step's with the inputs given now (each trial's outputs and search-space values are
        the controller's to give)."""
        assert step.cfg.sweep is not None
        sweep = step.cfg.sweep
        inputs = {k: v for k, v in values.items() if k[0] == "inputs"}
        config = contract.SweepConfig(
            command=substitute(optional_parts(step.cfg.command, given), inputs, blank=("inputs",)),
            outputs={n: files.get(n) for n in step.cfg.outputs},
            trials=sweep["trials"],
            algorithm=sweep["algorithm"],
            concurrency=sweep["concurrency"],
            trial_timeout=sweep["trial_timeout"],
            objective=sweep["objective"],
            early_termination=sweep["early_termination"],
            run_name=step.cfg.run_name,
            tags={**self.tags(step)},
        )
        contract.write(step.dir / contract.SWEEP, config)
        return supervised.controller_command(sweep_controller.MODULE, step.dir)

    def best_outputs(self, step: StepRun) -> None:
        """A sweep step's outputs: its best trial's (none logged the metric: its own, empty)."""
        best = step.dir / sweep_controller.BEST
        if step.cfg.sweep is None or not best.is_file():
            return
        trial = step.dir / "trials" / str(json.loads(best.read_text())["trial"])
        files = {n: f for n, f in step.cfg.outputs.items() if f}
        for name in step.cfg.outputs:
            step.outputs[name] = str(supervised.output_path(trial / "outputs", name, files))
        self.log(f"step {step.name}: the outputs of its best trial, {trial.name}, handed on")

    def tags(self, step: StepRun) -> dict:
        return {
            **self.cfg.tags,
            **step.cfg.tags,
            "mlrun.step": step.name,
            "mlrun.fingerprint": step.cfg.fingerprint,
        }

    def reuse(self, step: StepRun, record: dict) -> None:
        """A completed run of the same step (same fingerprint): recorded as a child run that
        points at it, its outputs handed on."""
        tags = {**self.tags(step), "mlrun.reused_from": record["run_id"]}
        run_id, _ = self.make_run(step.cfg.run_name, tags)
        self.runs.end(run_id, "FINISHED")
        step.run_id, step.status = run_id, "Reused"
        step.reused_from, step.outputs = record["run_id"], dict(record["outputs"])
        step.origin = Path(record.get("run_dir") or step.dir)
        self.log(f"step {step.name} reused: run {record['run_id']}")
        self.deliver(step, record["run_id"])

    def finish(self, step: StepRun) -> None:
        self.best_outputs(step)
        completed = {
            "run_id": step.run_id,
            "step": step.name,
            "pipeline": self.cfg.pipeline,
            "outputs": step.outputs,
            "run_dir": str(step.dir),
        }
        # a completed step is offered for reuse once its run is recorded in MLflow
        status = self.finish_child(step, then=lambda: self.remember(step, completed))
        self.log(f"step {step.name} {status} (exit code {step.ended.get('exit_code')})")
        if status == "Completed" and step.run_id:
            self.deliver(step, step.run_id)
        if status == "Failed":  # its exit code, with the reason its controller gave, if any
            run: Run = {"id": step.run_id or "", "run_dir": str(step.dir)}
            step.error = supervised.ending(step.ended, run).get("error")
            self.failure = self.failure or f"step {step.name} failed ({step.error})"
        if status != "Completed" and not self.cfg.continue_on_step_failure and not self.stopping:
            self.log(f"step {step.name} failed: canceling the rest")
            self.on_term()

    def deliver(self, step: StepRun, run_id: str) -> None:
        """A completed step's outputs on datastore paths copied to their datastores' folders
        before the steps after it start, as Azure ML writes them there."""
        for name, target in step.cfg.deliver.items():
            if name in step.outputs:
                place = Path(datastores.named(target, run_id))
                if datastores.copy(Path(step.outputs[name]), place):
                    self.log(f"step {step.name}: output {name} written to {place}")
                else:
                    self.log(f"step {step.name}: output {name} is empty: nothing for {place}")

    def remember(self, step: StepRun, record: dict) -> None:
        if step.status == "Completed":
            self.cache.put(step.cfg.fingerprint, {**record, "ended": step.ended.get("ended")})

    # --- the end ---

    def conclude(self) -> int:
        self.drain()
        for name, feed in self.cfg.outputs.items():  # the pipeline's own outputs
            if feed and self.steps[feed[0]].status in DONE:
                found = self.steps[feed[0]].outputs.get(feed[1])
                if found and Path(found).is_file():  # a uri_file output
                    self.client.log_artifact(self.parent, found, artifact_path=name)
                elif found and Path(found).is_dir() and any(Path(found).iterdir()):
                    self.client.log_artifacts(self.parent, found, artifact_path=name)
        record: dict[str, StepRecord] = {}
        for name, s in self.steps.items():
            record[name] = {
                "fingerprint": s.cfg.fingerprint,
                "parts": s.cfg.parts,
                "run_id": s.reused_from or s.run_id,
                "status": s.status or "Canceled",
                "run_dir": str(s.origin),
            }
            if s.reused_from:
                record[name]["reused"] = True
            if s.status == "Failed" and s.error and s.ended.get("exit_code") is not None:
                record[name]["error"] = s.error  # `exit code 1: error_threshold 0 exceeded: ...`
        contract.write_steps(self.run_dir / contract.STEPS, record)
        counts = [f"{n} {s}" for s, n in _count(r["status"] for r in record.values()).items()]
        self.log(", ".join(counts))
        if all(r["status"] in DONE for r in record.values()):
            return 0
        if self.failure is not None:  # said with the pipeline's exit code
            (self.run_dir / supervised.REASON).write_text(self.failure + "\n")
        return 1


def _count(values) -> dict:
    out: dict = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


main = PipelineController.entry
