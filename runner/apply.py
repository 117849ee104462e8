"""Carry out a Plan through a Backend: ordering, concurrency, waiting. It never prints: it emits
Events, and views render them."""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable

from .backends.base import TERMINAL, Backend
from .plan import CREATE, DESTROY, NOOP, REPLACE, RUN, UPDATE, WAIT, Change, Plan, short
from .spec import Spec
from .state import State


@dataclass(frozen=True)
class Event:
    address: str
    status: str          # creating, created, updating, ..., Queued, Running, Completed, Failed, ...
    message: str = ""
    run: str | None = None
    at: float = field(default_factory=time.monotonic)


Emit = Callable[[Event], None]


@dataclass
class Outcome:
    runs: dict = field(default_factory=dict)      # job -> final run record
    failed: list = field(default_factory=list)    # job names
    interrupted: bool = False


class Applier:
    def __init__(self, plan: Plan, spec: Spec, model: dict, backend: Backend, state: State, emit: Emit,
                 detach: bool = False):
        self.plan, self.spec, self.model, self.backend, self.state = plan, spec, model, backend, state
        self.emit, self.detach = emit, detach
        self.outcome = Outcome()
        self.cancelled = threading.Event()
        self.active: dict[str, dict] = {}   # run id -> run, while it runs
        self._lock = threading.Lock()
        # job slots: an instance runs one job at a time, a cluster max_instances, no compute cpu_count
        self.slots = {name: threading.Semaphore(c.slots) for name, c in spec.computes.items()}
        self.slots[None] = threading.Semaphore(os.cpu_count() or 1)

    # --- the whole apply ---------------------------------------------------------------------

    def run(self) -> Outcome:
        by_kind = {"job": [], "compute": [], "workspace": [], "resource_group": []}
        for c in self.plan.changes:
            by_kind[c.address.split(".", 1)[0]].append(c)
        kept = lambda kind: [c for c in by_kind[kind] if c.action != DESTROY]  # noqa: E731
        gone = lambda kind: [c for c in by_kind[kind] if c.action == DESTROY]  # noqa: E731
        self.adopt_finished()
        self.adopt_existing()
        if any(c.action in (RUN, WAIT) for c in by_kind["job"]):
            self.close_orphans()
        self._parallel(gone("job"), self.forget_job)
        self._parallel(gone("compute"), self.change_resource)
        for kind in ("resource_group", "workspace", "compute"):  # outside in; each kind at once
            self._parallel(kept(kind), self.change_resource)
        self._parallel([c for c in by_kind["job"] if c.action in (RUN, WAIT)], self.run_job,
                       workers=max(1, len(by_kind["job"])))
        self._parallel(gone("workspace"), self.change_resource)
        self._parallel(gone("resource_group"), self.change_resource)
        return self.outcome

    def _parallel(self, changes: list[Change], fn: Callable[[Change], None], workers: int | None = None) -> None:
        """Run `fn` on each change at once; on Ctrl-C cancel what runs, wait for it, re-raise."""
        changes = [c for c in changes if c.action != NOOP]
        if not changes or self.cancelled.is_set():
            return
        with ThreadPoolExecutor(max_workers=workers or len(changes)) as pool:
            futures = [pool.submit(fn, c) for c in changes]
            try:
                self._wait(futures)
            except KeyboardInterrupt:
                self.interrupt()
                self._wait(futures)
                raise

    @staticmethod
    def _wait(futures: list[Future]) -> None:
        pending = futures
        while pending:  # short waits, so the main thread sees Ctrl-C
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
            for f in done:
                f.result()

    def interrupt(self) -> None:
        self.cancelled.set()
        self.outcome.interrupted = True
        self.emit(Event("apply", "interrupted", "stopping running jobs"))
        with self._lock:
            runs = list(self.active.values())
        for run in runs:
            self.backend.cancel(run)

    # --- resources ---------------------------------------------------------------------------

    def change_resource(self, change: Change) -> None:
        kind, name = change.address.split(".", 1)
        verb = {CREATE: "creating", UPDATE: "updating", REPLACE: "replacing", DESTROY: "destroying"}[change.action]
        self.emit(Event(change.address, verb))
        record = self.state.resources.get(change.address)
        if change.action in (REPLACE, DESTROY) and record:
            self.backend.delete(kind, name, record)
            self.state.set_resource(change.address, None)
        if change.action == DESTROY:
            self.emit(Event(change.address, "destroyed"))
            return
        act = self.backend.update if change.action == UPDATE else self.backend.create
        if change.action != UPDATE and kind != "resource_group":  # (a group's owner is known only once made)
            # recorded first: if the create fails or mlrun dies midway, what it made may exist, and
            # destroy must delete it rather than the next apply adopt it as "existed before mlrun"
            self.state.set_resource(change.address, {"kind": kind, "name": name, "attrs": change.after,
                                                     "details": {}, "created_by_mlrun": True})
        details = act(kind, name, change.after)
        self.state.set_resource(change.address, {"kind": kind, "name": name, "attrs": change.after,
                                                 "details": details,
                                                 "created_by_mlrun": details.get("created_by_mlrun", True)})
        self.emit(Event(change.address, {"updating": "updated"}.get(verb, "created"), change.reason))

    # --- jobs --------------------------------------------------------------------------------

    def run_job(self, change: Change) -> None:
        name = change.address.split(".", 1)[1]
        if change.action == WAIT:
            run = self.state.latest(name)
            self.emit(Event(change.address, run["status"], "waiting for the run", run["id"]))
            return self._finalize(name, self._wait_run(name, run))
        job = self.spec.jobs[name]
        self.emit(Event(change.address, "Queued", change.reason))
        with self.slots[job.compute if job.compute in self.slots else None]:
            if self.cancelled.is_set():
                self.emit(Event(change.address, "Canceled", "not started"))
                return
            want = self.model["jobs"][name]
            record = {"fingerprint": want["fingerprint"], "parts": want["parts"], "compute": job.compute}
            run = self.backend.submit(self.spec, job, record, on_start=lambda r: self.state.add_run(name, r))
            # saved with the next save (the record made before the process is what adoption needs)
            self.state.update_run(name, run["id"], save=self.detach, status=run["status"], pid=run.get("pid"),
                                  started=run.get("started"))
            self.emit(Event(change.address, "Running", f"run {short(run['id'])}", run["id"]))
            if self.detach:
                self.outcome.runs[name] = run
                return
            run = self._wait_run(name, run)
        self._finalize(name, run)  # the compute's slot is free again: the next job starts meanwhile

    def _finish(self, name: str, run: dict) -> None:
        self._finalize(name, self._wait_run(name, run))

    def _wait_run(self, name: str, run: dict) -> dict:
        with self._lock:
            self.active[run["id"]] = run
        if self.cancelled.is_set():
            self.backend.cancel(run)
        try:
            ending = self.backend.wait(run)
        finally:
            with self._lock:
                self.active.pop(run["id"], None)
        return self.state.update_run(name, run["id"], save=False, **ending)  # saved once finalized

    def _finalize(self, name: str, run: dict) -> None:
        self.backend.finalize(run)
        run = self.state.update_run(name, run["id"], finalized=True)
        self.outcome.runs[name] = run
        if run["status"] != "Completed":
            self.outcome.failed.append(name)
        detail = f"run {short(run['id'])}" + (f": {run['error']}" if run.get("error") else "")
        self.emit(Event(f"job.{name}", run["status"], detail, run["id"]))

    def forget_job(self, change: Change) -> None:
        name = change.address.split(".", 1)[1]
        run = self.state.latest(name)
        if run and run.get("status") not in TERMINAL:
            self.backend.cancel(run)
            self._finish(name, run)
        self.state.forget_job(name)
        self.emit(Event(change.address, "forgotten", change.reason))

    def adopt_existing(self) -> None:
        """Resources the spec names that were there before mlrun (up to date, yet not in the
        state): recorded as not created by mlrun, so status shows them and destroy keeps them."""
        for c in self.plan.changes:
            kind = c.address.split(".", 1)[0]
            if c.action == NOOP and kind != "job" and c.address not in self.state.resources:
                self.state.set_resource(c.address, {"kind": kind, "name": c.address.split(".", 1)[1],
                                                    "attrs": c.after, "details": {"created_by_mlrun": False},
                                                    "created_by_mlrun": False})

    def adopt_finished(self) -> None:
        """Runs that ended while no mlrun watched: record how, and tell the tracking store."""
        for name in list(self.state.jobs):
            run = self.state.latest(name)
            if not run or run.get("finalized"):
                continue
            ending = self.backend.poll(run)
            status = ending.get("status", run.get("status"))
            if status in TERMINAL:
                run = self.state.update_run(name, run["id"], save=False, **ending)
                self.backend.finalize(run)
                self.state.update_run(name, run["id"], finalized=True)
                self.emit(Event(f"job.{name}", status, f"run {short(run['id'])} ended while mlrun was away",
                                run["id"]))
            elif ending:  # still running (its record may say Preparing: that is not saved twice)
                self.state.update_run(name, run["id"], save=False, **ending)

    def close_orphans(self) -> None:
        """Tracking-store runs created by an mlrun that died before recording them in the state
        (so nothing ever started them): closed, so that none stays RUNNING forever."""
        known = {r["id"] for entry in self.state.jobs.values() for r in entry.get("runs", [])}
        for name, run_id in getattr(self.backend, "close_orphans", lambda known: [])(known):
            self.emit(Event(f"job.{name}", "Canceled", f"run {short(run_id)} never started: mlrun stopped first",
                            run_id))


def pending_adoption(state: State, backend: Backend) -> bool:
    """Whether some run ended without its ending recorded (apply then has work to do)."""
    for name in state.jobs:
        run = state.latest(name)
        if run and not run.get("finalized"):
            if backend.poll(run).get("status", run.get("status")) in TERMINAL:
                return True
    return False
