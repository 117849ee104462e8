"""Sweep jobs, really run: the trials are command jobs named `<sweep>_<n>` (child MLflow runs with
mlflow.parentRunId), sampled from the REST search space (grid, or seeded random; Bayesian is sampled
as random here), at most maxConcurrentTrials at once; the parent is tagged best_child_run_id.
Early termination policies are accepted and not applied."""

import itertools
import json
import math
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from jobs import JobRunner, _seconds
from state import now_iso

SEARCH = re.compile(r"\$\{\{\s*search_space\.([A-Za-z0-9_]+)\s*\}\}")
TERMINAL = ("Completed", "Failed", "Canceled")


def check(props: dict) -> str | None:
    """Why a Sweep job body is not acceptable, or None."""
    trial = props.get("trial") or {}
    if not trial.get("command"):
        return "A sweep job needs trial.command."
    space = props.get("searchSpace") or {}
    if not space:
        return "A sweep job needs a non-empty searchSpace."
    for name, value in space.items():
        if not (isinstance(value, list) and len(value) == 2 and value[0] in SAMPLERS):
            return f"searchSpace.{name} is not a valid distribution: {json.dumps(value)}"
    kind = (props.get("samplingAlgorithm") or {}).get("samplingAlgorithmType")
    if kind not in ("Grid", "Random", "Bayesian"):
        return (
            f"samplingAlgorithm.samplingAlgorithmType must be Grid, Random or Bayesian, not {kind}."
        )
    if kind == "Grid" and any(v[0] != "choice" for v in space.values()):
        return "Grid sampling supports choice distributions only."
    objective = props.get("objective") or {}
    if not objective.get("primaryMetric") or str(objective.get("goal", "")).lower() not in (
        "maximize",
        "minimize",
    ):
        return (
            "A sweep job needs objective.primaryMetric and objective.goal (maximize or minimize)."
        )
    if kind != "Grid" and not (props.get("limits") or {}).get("maxTotalTrials"):
        return "limits.maxTotalTrials is required for Random and Bayesian sampling."
    return None


SAMPLERS = {
    "choice": lambda r, a: r.choice(a[0]),
    "randint": lambda r, a: r.randrange(int(a[0])),
    "uniform": lambda r, a: r.uniform(a[0], a[1]),
    "quniform": lambda r, a: round(r.uniform(a[0], a[1]) / a[2]) * a[2],
    "loguniform": lambda r, a: math.exp(r.uniform(a[0], a[1])),
    "qloguniform": lambda r, a: round(math.exp(r.uniform(a[0], a[1])) / a[2]) * a[2],
    "normal": lambda r, a: r.gauss(a[0], a[1]),
    "qnormal": lambda r, a: round(r.gauss(a[0], a[1]) / a[2]) * a[2],
    "lognormal": lambda r, a: math.exp(r.gauss(a[0], a[1])),
    "qlognormal": lambda r, a: round(math.exp(r.gauss(a[0], a[1])) / a[2]) * a[2],
}


def trials(props: dict) -> list[dict]:
    space = props["searchSpace"]
    algo = props["samplingAlgorithm"]
    limit = (props.get("limits") or {}).get("maxTotalTrials")
    if algo["samplingAlgorithmType"] == "Grid":
        names = list(space)
        combos = [
            dict(zip(names, values, strict=True))
            for values in itertools.product(*(space[n][1][0] for n in names))
        ]
        return combos[:limit] if limit else combos
    rng = random.Random(algo.get("seed"))
    return [{n: SAMPLERS[v[0]](rng, v[1]) for n, v in space.items()} for _ in range(int(limit))]


class SweepRunner(threading.Thread):
    """The parent of a sweep: runs its trials through JobRunner and answers for itself like one."""

    def __init__(self, app, workspace: dict, job: dict):
        super().__init__(daemon=True, name=f"sweep-{job['name']}")
        self.app, self.ws, self.job = app, workspace, job
        self.props = job["properties"]
        self.name = job["name"]
        self.cancelled = threading.Event()
        self.times = {"created": now_iso()}
        self.error = None
        self.children: list[JobRunner] = []

    def details(self) -> dict:
        return {
            "runId": self.name,
            "runUuid": self.name,
            "status": self.props["status"],
            "createdTimeUtc": self.times["created"],
            "startTimeUtc": self.times.get("start"),
            "endTimeUtc": self.times.get("end"),
            "logFiles": {},
            "warnings": None,
            "error": {"error": self.error} if self.error else None,
            "tags": self.props.get("tags") or {},
            "properties": self.props.get("properties") or {},
            "displayName": self.props.get("displayName"),
            "experimentName": self.props.get("experimentName"),
            "runDefinition": None,
            "services": {},
        }

    def patch(self, body: dict):
        for key in ("tags", "displayName", "description"):
            if body.get(key) is not None:
                self.props[key] = body[key]

    def cancel(self):
        self.cancelled.set()
        if self.props["status"] not in TERMINAL:
            self.set_status("CancelRequested")
        for child in list(self.children):
            child.cancel()

    def set_status(self, status):
        with self.app.state.lock:
            self.props["status"] = status

    def run(self):
        server = self.app.mlflow_for(self.ws["id"])
        try:
            server.base_url()
            experiment = self.props["experimentName"]
            server.create_job_run(
                self.name,
                experiment,
                self.props.get("displayName") or self.name,
                {**(self.props.get("tags") or {}), "azureml.runsource": "hyperdrive"},
            )
            self.times["start"] = now_iso()
            self.set_status("Running")
            limits = self.props.get("limits") or {}
            deadline = (
                time.monotonic() + _seconds(limits["timeout"]) if limits.get("timeout") else None
            )
            plan = trials(self.props)
            with ThreadPoolExecutor(
                max_workers=int(limits.get("maxConcurrentTrials") or len(plan) or 1)
            ) as pool:
                list(pool.map(lambda nv: self._trial(*nv, deadline), enumerate(plan)))
            best = self._best(server)
            if best:
                server.store().set_tag(self.name, _tag("best_child_run_id", best))
            done = [c for c in self.children if c.props["status"] == "Completed"]
            if self.cancelled.is_set():
                self._finish(server, "Canceled", "KILLED")
            elif done:
                self._finish(server, "Completed", "FINISHED")
            else:
                self.error = {"code": "UserError", "message": "No trial of the sweep completed."}
                self._finish(server, "Failed", "FAILED")
        except Exception as e:  # noqa: BLE001 - any emulator-side failure: a SystemError of the job
            self.error = {"code": "SystemError", "message": f"{type(e).__name__}: {e}"}
            self._finish(server, "Failed", "FAILED")

    def _trial(self, number: int, values: dict, deadline):
        if self.cancelled.is_set() or (deadline and time.monotonic() > deadline):
            return
        trial = self.props["trial"]
        name = f"{self.name}_{number}"

        def fill(m):
            value = values.get(m.group(1))
            return m.group(0) if value is None else str(value)

        props = {
            "jobType": "Command",
            "command": SEARCH.sub(fill, trial["command"]),
            "codeId": trial.get("codeId"),
            "environmentId": trial.get("environmentId"),
            "environmentVariables": trial.get("environmentVariables") or {},
            "inputs": self.props.get("inputs") or {},
            "outputs": {},
            "computeId": self.props.get("computeId"),
            "experimentName": self.props["experimentName"],
            "displayName": name,
            "status": "NotStarted",
            "limits": {"timeout": (self.props.get("limits") or {}).get("trialTimeout")},
            "tags": {"mlflow.parentRunId": self.name, "hyperparameters": json.dumps(values)},
        }
        child = JobRunner(
            self.app,
            self.ws,
            {"id": f"{self.job['id']}_{number}", "name": name, "properties": props},
        )
        self.children.append(child)
        self.app.jobs[child.job["id"].lower()] = child
        child.run()  # in this pool thread

    def _best(self, server):
        objective = self.props["objective"]
        sign = 1 if str(objective["goal"]).lower() == "maximize" else -1
        scored = []
        for child in self.children:
            if child.props["status"] != "Completed":
                continue
            value = server.store().get_run(child.name).data.metrics.get(objective["primaryMetric"])
            if value is not None:
                scored.append((sign * value, child.name))
        return max(scored)[1] if scored else None

    def _finish(self, server, status, mlflow_status):
        self.times["end"] = now_iso()
        try:
            server.end_job_run(self.name, mlflow_status)
        except Exception:  # noqa: BLE001 - best effort (no run yet), the status is set either way
            pass
        self.set_status(status)


def _tag(key, value):
    from mlflow.entities import RunTag

    return RunTag(key, value)
