"""Sweep jobs (type: sweep) on the local target.

Sampling (`sample`) is pure and stdlib only: the local backend samples the trials when it submits
the sweep and writes them, with everything else a trial needs, to `RUN_DIR/sweep.json`.

The sweep itself runs like any local job: its command is this module's controller (`main`), run
by the supervisor in the sweep's run folder, so status, logs, cancel, timeouts and adoption after
a crash work as for a command job. The controller reads the parent MLflow run from the
environment (MLFLOW_RUN_ID, as every local job does) and:
  - runs each trial as a supervised subprocess of its own (RUN_DIR/trials/N/, a copy of the code
    snapshot), with `${{search_space.x}}` and `${{outputs.x}}` substituted, shell-quoted, under a
    child MLflow run (tag mlflow.parentRunId, params = the trial's values, name `<name>-trial-N`);
  - keeps at most `concurrency` trials running (min(max_concurrent_trials, the compute's slots));
  - applies median stopping every POLL seconds, from the primary metric's history in MLflow;
  - at the end tags the parent with mlrun.best_trial and logs the best value and its params;
  - exits 0 when at least one trial completed.
SIGTERM (the supervisor's cancel or timeout) cancels the running trials and waits for them.
"""
from __future__ import annotations

import collections
import itertools
import json
import math
import os
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_RANDOM_TRIALS = 10  # a random sweep without limits.max_total_trials, locally
POLL = 0.5                   # seconds between looks at the trials and their metrics
MIN_OTHERS = 2               # median stopping compares a trial with at least this many others
CONFIG = "sweep.json"
ROOT = Path(__file__).resolve().parent.parent  # the folder that holds the `runner` package


# --- sampling --------------------------------------------------------------------------------------

def local_algorithm(sampling: dict) -> str:
    """The algorithm used locally: grid or random (bayesian is random here)."""
    return "grid" if sampling.get("type") == "grid" else "random"


def trial_count(search_space: dict, sampling: dict, limits: dict) -> int:
    limit = limits.get("max_total_trials")
    if local_algorithm(sampling) == "grid":
        size = math.prod(len(p.get("values") or []) for p in search_space.values())
        return min(size, limit) if limit else size
    return limit or DEFAULT_RANDOM_TRIALS


def sample(search_space: dict, sampling: dict, limits: dict) -> list[dict]:
    """The trials' values, in order: grid gives the cartesian product of the choices (in the
    order the spec lists them), random draws each parameter (the same trials for the same seed)."""
    names = list(search_space)
    count = trial_count(search_space, sampling, limits)
    if local_algorithm(sampling) == "grid":
        combos = itertools.product(*(search_space[n]["values"] for n in names))
        return [dict(zip(names, c)) for c in itertools.islice(combos, count)]
    rng = random.Random(sampling.get("seed"))
    return [{n: draw(rng, search_space[n]) for n in names} for _ in range(count)]


def draw(rng: random.Random, p: dict):
    """One value of a search-space parameter (Azure ML's distributions: loguniform's bounds are
    exponents, lognormal's mu and sigma those of the logarithm, q rounds to a multiple of q)."""
    kind = p["type"]
    if kind == "choice":
        return rng.choice(p["values"])
    if kind == "randint":
        return rng.randrange(int(p["upper"]))
    base = kind[1:] if kind.startswith("q") else kind
    if base in ("uniform", "loguniform"):
        x = rng.uniform(p["min_value"], p["max_value"])
    else:
        x = rng.gauss(p["mu"], p["sigma"])
    if base.startswith("log"):
        x = math.exp(x)
    if kind.startswith("q"):
        q = p["q"]
        x = round(x / q) * q
        if isinstance(q, int):
            x = int(x)
    return x


def text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def controller_command(run_dir: Path) -> str:
    """The sweep's command.sh: this interpreter running `main` (this checkout of mlrun first)."""
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from runner.sweep import main; sys.exit(main(sys.argv[1]))"
    return f"exec {shlex.quote(sys.executable)} -c {shlex.quote(code)} {shlex.quote(str(run_dir))}"


# --- the controller ----------------------------------------------------------------------------------

class Trial:
    def __init__(self, number: int, params: dict):
        self.number, self.params = number, params
        self.run_id: str | None = None
        self.dir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.history: list[float] = []   # the primary metric's values, by step
        self.evaluated = 0               # the last step count the policy judged it at
        self.stopped_early = False
        self.status: str | None = None
        self.value: float | None = None  # the primary metric's final value


class Controller:
    def __init__(self, run_dir: Path):
        from mlflow.tracking import MlflowClient

        self.run_dir = run_dir
        self.cfg = json.loads((run_dir / CONFIG).read_text())
        self.parent = os.environ["MLFLOW_RUN_ID"]
        self.experiment = os.environ["MLFLOW_EXPERIMENT_ID"]
        self.client = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
        self.objective = self.cfg["objective"]
        self.metric = self.objective["primary_metric"]
        self.maximize = self.objective.get("goal", "maximize") == "maximize"
        self.policy = self.cfg.get("early_termination")
        self.trials = [Trial(i, p) for i, p in enumerate(self.cfg["trials"], 1)]
        self.stopping = False

    def log(self, message: str) -> None:
        print(f"[sweep] {message}", flush=True)

    def on_term(self, *_):
        self.stopping = True
        for t in self.trials:
            if t.proc is not None and t.status is None:
                _signal(t.proc.pid, signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.on_term)
        concurrency = max(1, int(self.cfg["concurrency"]))
        self.log(f"{len(self.trials)} trials ({self.cfg['algorithm']}), at most {concurrency} at once, "
                 f"objective: {self.objective.get('goal', 'maximize')} {self.metric}")
        pending = collections.deque(self.trials)
        running: list[Trial] = []
        while (pending and not self.stopping) or running:
            while pending and not self.stopping and len(running) < concurrency:
                t = pending.popleft()
                self.start(t)
                running.append(t)
            time.sleep(POLL)
            for t in list(running):
                if t.proc.poll() is not None:
                    self.finish(t)
                    running.remove(t)
            if self.policy and not self.stopping:
                self.evaluate(running)
        for t in pending:
            t.status = "Canceled"
        return self.conclude()

    # --- one trial ---

    def start(self, t: Trial) -> None:
        from .backends.local import SUPERVISOR

        t.dir = self.run_dir / "trials" / str(t.number)
        if t.dir.exists():  # a trial folder left by a crashed controller: start it afresh
            shutil.rmtree(t.dir)
        shutil.copytree(self.run_dir / "work", t.dir / "work", symlinks=True)
        values = {("search_space", k): text(v) for k, v in t.params.items()}
        for name in self.cfg["outputs"]:
            out = t.dir / "outputs" / name
            out.mkdir(parents=True, exist_ok=True)
            values[("outputs", name)] = str(out)
        from .spec import EXPR

        def sub(m):
            ns, _, name = m.group(1).partition(".")
            return shlex.quote(values[(ns, name)]) if (ns, name) in values else m.group(0)

        (t.dir / "command.sh").write_text(EXPR.sub(sub, self.cfg["command"]) + "\n")
        tags = dict(self.cfg["tags"])
        tags.update({"mlflow.parentRunId": self.parent, "mlrun.trial": str(t.number)})
        run = self.client.create_run(self.experiment, run_name=f"{self.cfg['run_name']}-trial-{t.number}", tags=tags)
        t.run_id = run.info.run_id
        from mlflow.entities import Param

        self.client.log_batch(t.run_id, params=[Param(k, text(v)) for k, v in t.params.items()])
        (t.dir / "run_id").write_text(t.run_id)
        env = dict(os.environ, MLFLOW_RUN_ID=t.run_id)
        args = [sys.executable, "-I", "-S", str(SUPERVISOR), str(t.dir)]
        if self.cfg.get("trial_timeout"):
            args.append(str(self.cfg["trial_timeout"]))
        (t.dir / "spawned").touch()
        t.proc = subprocess.Popen(args, env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.log(f"trial {t.number} started: run {t.run_id} {json.dumps(t.params)}")

    def finish(self, t: Trial) -> None:
        from .backends.local import finalize_run

        ended = _read_json(t.dir / "exit.json") or {"status": "Failed", "exit_code": None}
        status = {"TimedOut": "Failed"}.get(ended["status"], ended["status"])
        if t.stopped_early:
            status = "Canceled"
            self.client.set_tag(t.run_id, "mlrun.early_terminated", "true")
        t.status = status
        if status == "Completed":
            t.value = self.client.get_run(t.run_id).data.metrics.get(self.metric)
        finalize_run(self.client, t.run_id, t.dir, status)
        how = "stopped early" if t.stopped_early else f"{status} ({ended['status']}, exit code {ended.get('exit_code')})"
        self.log(f"trial {t.number} {how}; {self.metric}: {t.value}")

    # --- median stopping ---

    def history(self, t: Trial) -> list[float]:
        points = self.client.get_metric_history(t.run_id, self.metric)
        return [m.value for m in sorted(points, key=lambda m: (m.step, m.timestamp))]

    def evaluate(self, running: list[Trial]) -> None:
        """Median stopping: at each evaluation point (delay_evaluation steps, then every
        evaluation_interval), stop a running trial whose best value so far is worse than the
        median of the other trials' running averages at that step. A trial is judged only against
        at least MIN_OTHERS other trials that got that far (the median of one is no median)."""
        delay = int(self.policy.get("delay_evaluation", 0) or 0)
        interval = int(self.policy.get("evaluation_interval", 1) or 1)
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
            others = [o.history[:point] for o in self.trials
                      if o is not t and o.run_id and len(o.history) >= point]
            if len(others) < MIN_OTHERS:
                continue  # too few to compare with yet: judged when the others get there
            t.evaluated = point
            median = statistics.median(statistics.fmean(h) for h in others)
            best = max(t.history[:point]) if self.maximize else min(t.history[:point])
            if (best < median) if self.maximize else (best > median):
                t.stopped_early = True
                _signal(t.proc.pid, signal.SIGTERM)  # the supervisor stops the trial's group
                self.log(f"trial {t.number} stopped early at step {point}: best {self.metric} {best} "
                         f"is worse than the median {median} of the other trials' averages")

    # --- the end ---

    def conclude(self) -> int:
        done = [t for t in self.trials if t.status == "Completed"]
        scored = [t for t in done if t.value is not None]
        counts = collections.Counter(t.status for t in self.trials if t.status)
        self.client.set_tag(self.parent, "mlrun.trials", json.dumps(dict(counts), sort_keys=True))
        if scored:
            best = (max if self.maximize else min)(scored, key=lambda t: t.value)
            from mlflow.entities import Metric, Param

            self.client.set_tag(self.parent, "mlrun.best_trial", best.run_id)
            self.client.log_batch(self.parent, metrics=[Metric(self.metric, best.value, int(time.time() * 1000), 0)],
                                  params=[Param(k, text(v)) for k, v in best.params.items()])
            self.log(f"best trial: {best.number} (run {best.run_id}) {self.metric} {best.value} {json.dumps(best.params)}")
        elif done:
            self.log(f"no completed trial logged the metric '{self.metric}'")
        self.log(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        if self.stopping:
            return 1
        return 0 if done else 1


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _read_json(path: Path) -> dict | None:
    for _ in range(20):  # the supervisor writes exit.json just before it exits
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            time.sleep(0.05)
    return None


def main(run_dir: str) -> int:
    return Controller(Path(run_dir)).run()
