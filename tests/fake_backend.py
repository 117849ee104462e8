"""FakeBackend: an in-memory stand-in for the remote service behind the Backend protocol
(runner/backends/base.py), for tests of the apply engine.

It holds what a service holds (resources, runs and how each run stands) and nothing of mlrun's
own logic: no ordering, no slots, no state file. Every call is recorded, in order, with a
timestamp and its thread, so that tests can assert on what the engine asked and when.

Knobs (set before the apply; all thread-safe):
  - script(job, status="Completed", error=None, hold=False) -> Gate: how the job's runs end.
    With hold=True a run keeps Running until the test sets the returned gate (or the run is
    cancelled); with hold=False it ends as soon as it starts. Unscripted jobs complete at once.
  - fail_create(address, error): create() of that resource raises `error` (e.g. a UserError).
  - fail_submit(job, error): submit() of that job raises `error` before any run exists.
  - hold_create(address) -> Gate: create() of that resource blocks until the gate is set.
  - latency: seconds each create/update/delete takes (0 by default), to make overlaps visible.
  - seed(address, attrs): a resource that exists on the service before mlrun.
  - at_start(job, run_id): called as a run starts on the service (after on_start returned).
Observations: calls / calls_of(method), running_jobs(compute), max_running[compute],
max_running_total, runs (the service's runs by id), resources, wait_until(predicate).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runner.backends import runstore
from runner.backends.base import TERMINAL, UPDATABLE, step_as_run
from runner.errors import UserError
from runner.state import now as _now

LIMIT = 10.0  # seconds a blocking call waits at most: a test that forgot a gate fails, not hangs


@dataclass(frozen=True)
class Call:
    seq: int
    method: str  # a Backend method, or "start"/"end" (a run starts or ends on the service)
    subject: str  # a resource's address, a job's name, or "" (refresh, advise, client)
    run: str | None = None
    detail: Any = None
    at: float = field(default_factory=time.monotonic)
    thread: str = field(default_factory=lambda: threading.current_thread().name)


class Gate(threading.Event):
    """A threading.Event that wakes the fake's waiters when set."""

    def __init__(self, wake: Callable[[], None]):
        super().__init__()
        self._wake = wake

    def set(self) -> None:
        super().set()
        self._wake()


@dataclass
class Script:
    status: str  # how its runs end: Completed, Failed or Canceled
    error: str | None
    gate: Gate  # a run ends once it is set (set from the start: it ends as it starts)


class FakeBackend:
    name = "fake"
    updatable = UPDATABLE  # as the targets': Azure ML's

    def __init__(
        self,
        latency: float = 0.0,
        tracking: str = "fake://tracking",
        manages_resource_group: bool = False,
    ):
        self.latency = latency
        self.manages_resource_group = manages_resource_group  # as the azure target does, if set
        self._tracking = tracking
        self._cond = threading.Condition(threading.RLock())
        self.calls: list[Call] = []
        self.resources: dict[str, dict] = {}  # address -> {kind, name, attrs, details}
        self.runs: dict[str, dict] = {}  # run id -> the service's view of the run
        self.scripts: dict[str, Script] = {}
        self.create_errors: dict[str, Exception] = {}
        self.create_gates: dict[str, Gate] = {}
        self.submit_errors: dict[str, Exception] = {}
        self.running: dict[str | None, set] = {}  # compute -> ids of the runs running on it now
        self.max_running: dict[str | None, int] = {}
        self.max_running_total = 0
        self.advice: list[str] = []
        self.at_start: Callable[[str, str], None] | None = None  # (job, run id), as a run starts

    # --- knobs ---------------------------------------------------------------------------------

    def gate(self) -> Gate:
        return Gate(self._wake)

    def script(
        self, job: str, status: str = "Completed", error: str | None = None, hold: bool = False
    ) -> Gate:
        assert status in TERMINAL, status
        g = self.gate()
        if not hold:
            g.set()
        with self._cond:
            self.scripts[job] = Script(status, error, g)
        return g

    def fail_create(self, address: str, error: Exception | None = None) -> None:
        with self._cond:
            self.create_errors[address] = error or UserError(f"{address}: refused by the service")

    def fail_submit(self, job: str, error: Exception | None = None) -> None:
        with self._cond:
            self.submit_errors[job] = error or UserError(f"job {job}: refused by the service")

    def hold_create(self, address: str) -> Gate:
        g = self.gate()
        with self._cond:
            self.create_gates[address] = g
        return g

    def seed(self, address: str, attrs: dict, details: dict | None = None) -> None:
        kind, name = address.split(".", 1)
        with self._cond:
            self.resources[address] = {
                "kind": kind,
                "name": name,
                "attrs": dict(attrs),
                "details": dict(details or {}),
            }

    # --- observing -----------------------------------------------------------------------------

    def _record(
        self, method: str, subject: str = "", run: str | None = None, detail: Any = None
    ) -> None:
        with self._cond:
            self.calls.append(Call(len(self.calls), method, subject, run, detail))
            self._cond.notify_all()

    def _wake(self) -> None:
        with self._cond:
            self._settle()
            self._cond.notify_all()

    def calls_of(self, *methods: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method in methods]

    def running_jobs(self, compute: str | None = None) -> list[str]:
        """Names of the jobs whose runs run on the service now (on `compute`, or anywhere)."""
        with self._cond:
            ids = (
                self.running.get(compute, set())
                if compute is not None
                else set().union(*self.running.values())
            )
            return sorted(self.runs[i]["job"] for i in ids)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
        """Block until `predicate()` holds (checked at each recorded change); its last value."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    # --- the service's runs --------------------------------------------------------------------

    def _settle(self) -> None:
        """Runs whose gate is set end now, as the service would see them end."""
        for run_id, r in self.runs.items():
            if r["status"] == "Running" and r["gate"].is_set():
                self._end(run_id, r["script"].status, r["script"].error)

    def _end(self, run_id: str, status: str, error: str | None) -> None:
        r = self.runs[run_id]
        exit_code = {"Completed": 0, "Failed": 1}.get(status)
        r.update(
            status=status,
            exit_code=exit_code,
            ended=_now(),
            error=error or (f"exit code {exit_code}" if status == "Failed" else None),
        )
        self.running[r["compute"]].discard(run_id)
        self.calls.append(Call(len(self.calls), "end", r["job"], run_id, status))
        self._cond.notify_all()

    def _ending(self, run_id: str) -> dict:
        r = self.runs[run_id]
        out = {"status": r["status"], "exit_code": r["exit_code"], "ended": r["ended"]}
        if r["error"]:
            out["error"] = r["error"]
        return out

    # --- the Backend protocol ------------------------------------------------------------------

    @property
    def tracking_uri(self) -> str:
        return self._tracking

    def refresh(self, state: dict) -> dict:
        """What exists on the service (with the state's record of it), and each job's latest run."""
        self._record("refresh")
        actual = {
            "resources": {},
            "jobs": {},
            "lineage": state["lineage"],
            "serial": state["serial"],
        }
        with self._cond:
            for address, live in self.resources.items():
                record = state["resources"].get(address, {})
                actual["resources"][address] = {
                    **record,
                    "kind": live["kind"],
                    "name": live["name"],
                    "attrs": dict(live["attrs"]),
                }
        for name, entry in state["jobs"].items():
            if entry.get("runs"):
                run = entry["runs"][-1]
                actual["jobs"][name] = {**run, **self.poll(run)}
        return actual

    def step_run(self, run: dict, step: str, shown: str) -> dict:
        return step_as_run(run, {}, "")  # the fake service runs no pipelines

    def reusable(self, fingerprints: list[str]) -> dict[str, str]:
        return {}  # the fake service runs no pipelines

    def poll(self, run: dict) -> dict:
        self._record("poll", self._job(run), run["id"])
        with self._cond:
            self._settle()
            r = self.runs.get(run["id"])
            if r is None or run.get("status") in TERMINAL or r["status"] == run.get("status"):
                return {}
            return self._ending(run["id"]) if r["status"] in TERMINAL else {"status": r["status"]}

    def advise(self, plan) -> list[str]:
        self._record("advise")
        return list(self.advice)

    def create(self, kind: str, name: str, attrs: dict) -> dict:
        return self._put("create", kind, name, attrs)

    def update(self, kind: str, name: str, attrs: dict) -> dict:
        return self._put("update", kind, name, attrs)

    def _put(self, method: str, kind: str, name: str, attrs: dict) -> dict:
        address = f"{kind}.{name}"
        self._record(method, address, detail="start")
        with self._cond:
            gate, error = self.create_gates.get(address), self.create_errors.get(address)
        if method == "create" and gate is not None and not gate.wait(LIMIT):
            raise AssertionError(f"FakeBackend: the create gate of {address} was never set")
        if self.latency:
            time.sleep(self.latency)
        if method == "create" and error is not None:
            self._record(method, address, detail="error")
            raise error
        details = {"id": f"/fake/{kind}/{name}"}
        with self._cond:
            self.resources[address] = {
                "kind": kind,
                "name": name,
                "attrs": dict(attrs or {}),
                "details": details,
            }
        self._record(method, address, detail="end")
        return dict(details)

    def delete(self, kind: str, name: str, record: dict) -> None:
        address = f"{kind}.{name}"
        if not record.get("created_by_mlrun", True):  # there before mlrun: kept, as backends do
            self._record("delete", address, detail="kept")
            return
        self._record("delete", address, detail="start")
        if self.latency:
            time.sleep(self.latency)
        with self._cond:
            self.resources.pop(address, None)  # something already gone is fine
        self._record("delete", address, detail="end")

    def submit(self, spec, job, record: dict, on_start: Callable[[dict], None]) -> dict:
        with self._cond:
            script = self.scripts.get(job.name) or Script("Completed", None, _set(self.gate()))
            error = self.submit_errors.get(job.name)
        if error is not None:  # refused before the run exists (a validation error, say)
            self._record("submit", job.name, None, "error")
            raise error
        run_id = uuid.uuid4().hex
        self._record("submit", job.name, run_id)
        run = {**record, "id": run_id, "status": "Preparing", "submitted": _now()}
        on_start(run)  # persisted before the run exists on the service, as the protocol says
        self._record("on_start", job.name, run_id)
        if self.at_start is not None:
            self.at_start(job.name, run_id)
        with self._cond:
            compute = job.compute
            self.runs[run_id] = {
                "job": job.name,
                "compute": compute,
                "status": "Running",
                "script": script,
                "gate": script.gate,
                "exit_code": None,
                "ended": None,
                "error": None,
                "cancelled": False,
            }
            self.running.setdefault(compute, set()).add(run_id)
            now_running = len(self.running[compute])
            self.max_running[compute] = max(self.max_running.get(compute, 0), now_running)
            total = sum(len(ids) for ids in self.running.values())
            self.max_running_total = max(self.max_running_total, total)
            self.calls.append(Call(len(self.calls), "start", job.name, run_id, compute))
            self._settle()  # a run scripted not to be held ends at once
            self._cond.notify_all()
        run.update(status="Running", started=_now())
        return run

    def wait(self, run: dict) -> dict:
        self._record("wait", self._job(run), run["id"])
        with self._cond:
            if run["id"] not in self.runs:
                raise UserError(f"run {run['id']} does not exist on the service")

            def over() -> bool:
                self._settle()
                return self.runs[run["id"]]["status"] in TERMINAL

            if not self._cond.wait_for(over, LIMIT):
                raise AssertionError(f"FakeBackend: run of {self._job(run)} was never released")
            return self._ending(run["id"])

    def cancel(self, run: dict) -> None:
        self._record("cancel", self._job(run), run["id"])
        with self._cond:
            r = self.runs.get(run["id"])
            if r is not None and r["status"] not in TERMINAL:
                r["cancelled"] = True
                self._end(run["id"], "Canceled", None)

    def finalize(self, run: dict) -> None:
        self._record("finalize", self._job(run), run["id"], run.get("status"))

    def logs(self, run: dict, follow: bool, out) -> None:
        self._record("logs", self._job(run), run["id"])
        out.write(f"fake log of run {run['id']}\n".encode())

    def run_url(self, run: dict) -> str:
        return f"fake://runs/{run['id']}"

    def read_runs(self, wanted: dict) -> dict:
        return {}  # a get_run per run, as a target without bulk reads

    def child_runs(self, parent) -> list:
        return runstore.search_children(self.client(), parent)

    def client(self):
        """An MlflowClient on `tracking` if it is a real store (sqlite:, file:); else none."""
        self._record("client")
        if self._tracking.startswith(("sqlite:", "file:")):
            from mlflow.tracking import MlflowClient

            return MlflowClient(tracking_uri=self._tracking)
        raise UserError(f"the fake service has no tracking store ({self._tracking})")

    def _job(self, run: dict) -> str:
        with self._cond:
            r = self.runs.get(run["id"])
        return r["job"] if r else ""


def _set(g: Gate) -> Gate:
    g.set()
    return g
