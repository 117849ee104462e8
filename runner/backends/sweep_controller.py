"""The controller of a sweep job (type: sweep) on the local target.

The local backend samples the trials (runner/sweep.py) when it submits the sweep and writes them,
with everything else a trial needs, to RUN_DIR/sweep.json; this controller then:
  - runs each trial as a child run in RUN_DIR/trials/N/ (a copy of the code snapshot), with
    `${{search_space.x}}` and `${{outputs.x}}` substituted, shell-quoted, params = the trial's
    values, run name `<name>-trial-N`;
  - keeps at most `concurrency` trials running (min(max_concurrent_trials, the compute's slots));
  - applies median stopping every POLL seconds, from the primary metric's history in MLflow;
  - at the end tags the parent with mlrun.best_trial and logs the best value and its params;
  - exits 0 when at least one trial completed.
"""

from __future__ import annotations

import collections
import json
import shutil
import statistics
import time
from pathlib import Path

from ..refs import substitute
from ..slots import Pool
from . import contract, supervised
from .controller import Child, Controller

POLL = 0.5  # seconds between looks at the trials and their metrics
MIN_OTHERS = 2  # median stopping compares a trial with at least this many others
MODULE = __name__
BEST = "best.json"  # the best trial's number, in the run folder


class Trial(Child):
    def __init__(self, folder: Path, number: int, params: dict):
        super().__init__(folder)
        self.number, self.params = number, params
        self.history: list[float] = []  # the primary metric's values, by step
        self.evaluated = 0  # the last step count the policy judged it at
        self.stopped_early = False
        self.value: float | None = None  # the primary metric's final value


class SweepController(Controller):
    TAG = "sweep"
    cfg: contract.SweepConfig

    def read_config(self, run_dir: Path) -> contract.SweepConfig:
        return contract.read_sweep(run_dir / contract.SWEEP)

    def __init__(self, run_dir: Path):
        super().__init__(run_dir)
        self.objective = self.cfg.objective
        self.metric = self.objective["primary_metric"]
        self.maximize = self.objective.get("goal", "maximize") == "maximize"
        self.policy = self.cfg.early_termination
        self.trials = [
            Trial(run_dir / "trials" / str(i), i, p) for i, p in enumerate(self.cfg.trials, 1)
        ]

    def run(self) -> int:
        concurrency = max(1, int(self.cfg.concurrency))
        self.log(
            f"{len(self.trials)} trials ({self.cfg.algorithm}), at most {concurrency} at once, "
            f"objective: {self.objective.get('goal', 'maximize')} {self.metric}"
        )
        pending = collections.deque(self.trials)
        running: list[Trial] = []
        pool = Pool("trials", concurrency)
        while (pending and not self.stopping) or running:
            while pending and not self.stopping and (lease := pool.take(block=False)):
                t = pending.popleft()
                t.lease = lease  # given back when the trial is finished (Controller.finish_child)
                self.start(t)
                running.append(t)
            for child in self.wait_ended(POLL):  # woken the moment a trial's process exits
                assert isinstance(child, Trial)
                self.finish(child)
                running.remove(child)
            if self.policy and not self.stopping:
                self.evaluate(running)
        for t in pending:
            t.status = "Canceled"
        return self.conclude()

    # --- one trial ---

    def start(self, t: Trial) -> None:
        if t.dir.exists():  # a trial folder left by a crashed controller: start it afresh
            shutil.rmtree(t.dir)
        shutil.copytree(self.run_dir / "work", t.dir / "work", symlinks=True)
        values = {("search_space", k): supervised.literal(v) for k, v in t.params.items()}
        files = {n: f for n, f in self.cfg.outputs.items() if f}
        for name in self.cfg.outputs:
            out = supervised.output_path(t.dir / "outputs", name, files)
            values[("outputs", name)] = str(out)
        self.start_child(
            t,
            substitute(self.cfg.command, values),
            run_name=f"{self.cfg.run_name}-trial-{t.number}",
            tags={**self.cfg.tags, "mlrun.trial": str(t.number)},
            params=t.params,
            timeout=self.cfg.trial_timeout,
        )
        self.log(f"trial {t.number} started: run {t.run_id} {json.dumps(t.params)}")

    def finish(self, t: Trial) -> None:
        assert t.run_id is not None, "finish of a trial never started"
        if t.stopped_early:
            with self.writing:
                self.client.set_tag(t.run_id, "mlrun.early_terminated", "true")
        status = self.finish_child(t, "Canceled" if t.stopped_early else None)
        if status == "Completed":
            t.value = self.metrics(t.run_id).get(self.metric)
        ended = t.ended
        how = (
            "stopped early"
            if t.stopped_early
            else f"{status} ({ended['status']}, exit code {ended.get('exit_code')})"
        )
        self.log(f"trial {t.number} {how}; {self.metric}: {t.value}")

    # --- median stopping ---

    def history(self, t: Trial) -> list[float]:
        points = self.client.get_metric_history(t.run_id or "", self.metric)
        return [m.value for m in sorted(points, key=lambda m: (m.step, m.timestamp))]

    def evaluate(self, running: list[Trial]) -> None:
        """Median stopping: at each evaluation point (delay_evaluation steps, then every
        evaluation_interval), stop a running trial whose best value so far is worse than the
        median of the other trials' running averages at that step. A trial is judged only against
        at least MIN_OTHERS other trials that got that far (the median of one is no median)."""
        policy = self.policy or {}
        delay = int(policy.get("delay_evaluation", 0) or 0)
        interval = int(policy.get("evaluation_interval", 1) or 1)
        for t in running:
            if not t.stopped_early:
                t.history = self.history(t)
        for t in running:
            k = len(t.history)
            if t.stopped_early or k < max(delay, 1):
                continue
            point = delay + (k - delay) // interval * interval
            if point < 1 or point <= t.evaluated:
                continue
            others = [
                o.history[:point]
                for o in self.trials
                if o is not t and o.run_id and len(o.history) >= point
            ]
            if len(others) < MIN_OTHERS:
                continue  # too few to compare with yet: judged when the others get there
            t.evaluated = point
            median = statistics.median(statistics.fmean(h) for h in others)
            best = max(t.history[:point]) if self.maximize else min(t.history[:point])
            if ((best < median) if self.maximize else (best > median)) and t.proc is not None:
                t.stopped_early = True
                supervised.cancel(t.dir)  # the supervisor stops the trial's group
                self.log(
                    f"trial {t.number} stopped early at step {point}: best {self.metric} {best} "
                    f"is worse than the median {median} of the other trials' averages"
                )

    # --- the end ---

    def conclude(self) -> int:
        self.drain()  # every trial recorded before the parent's verdict
        done = [t for t in self.trials if t.status == "Completed"]
        scored = [(t.value, t) for t in done if t.value is not None]
        counts = collections.Counter(t.status for t in self.trials if t.status)
        self.client.set_tag(self.parent, "mlrun.trials", json.dumps(dict(counts), sort_keys=True))
        if scored:
            value, best = (max if self.maximize else min)(scored, key=lambda pair: pair[0])
            from mlflow.entities import Metric, Param

            self.client.set_tag(self.parent, "mlrun.best_trial", best.run_id)
            # which trial, for a pipeline whose sweep step hands on the best trial's outputs
            (self.run_dir / BEST).write_text(json.dumps({"trial": best.number}) + "\n")
            self.client.log_batch(
                self.parent,
                metrics=[Metric(self.metric, value, int(time.time() * 1000), 0)],
                params=[Param(k, supervised.literal(v)) for k, v in best.params.items()],
            )
            self.log(
                f"best trial: {best.number} (run {best.run_id}) {self.metric} {best.value} "
                f"{json.dumps(best.params)}"
            )
        elif done:
            self.log(f"no completed trial logged the metric '{self.metric}'")
        self.log(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        if self.stopping:
            return 1
        return 0 if done else 1


main = SweepController.entry
