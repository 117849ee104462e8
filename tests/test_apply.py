"""runner/apply.py: the Applier driven against FakeBackend (tests/fake_backend.py), with real
specs, real plans (desired + make_plan, destroy_plan) and a real State file in tmp_path."""

from __future__ import annotations

import _thread
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fake_backend import FakeBackend

from runner.apply import Applier, Event, pending_adoption
from runner.changes import NOOP, RUN, WAIT
from runner.errors import UserError
from runner.plan import desired, destroy_plan, make_plan
from runner.spec import load
from runner.state import State


@pytest.fixture(autouse=True)
def ctrl_c_raises():
    """Ctrl-C (SIGINT) raises KeyboardInterrupt here even when this process started with SIGINT
    ignored (as a shell starts a background job, e.g. `bash .ci/run &`), so that the Ctrl-C tests
    test mlrun, not how pytest was started."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


LIMIT = 5.0  # seconds a positive wait may take: reached only when the test fails
SETTLE = 0.05  # seconds given to something that must NOT happen (a job past its slot) to show


def addr(kind: str, name: str) -> str:
    """A plan/event address (the one place that knows how addresses are spelled)."""
    return f"{kind}.{name}"


def job_yaml(jobs: dict[str, str | None]) -> str:
    lines = []
    for name, compute in jobs.items():
        on = f", compute: {compute}" if compute else ""
        env = ", environment: azureml:AzureML-sklearn-1.5@latest"  # (Azure requires one)
        lines.append(f"  {name}: {{command: echo {name}{env}{on}}}")
    return "\n".join(lines)


def spec_text(jobs: dict[str, str | None], max_instances: int = 2) -> str:
    return f"""\
name: lab
workspace: {{name: ws-lab, resource_group: rg-lab, location: eastus}}
computes:
  cluster: {{type: amlcompute, size: STANDARD_DS11_V2, max_instances: {max_instances}}}
  ci-one: {{type: computeinstance, size: STANDARD_DS11_V2}}
jobs:
{job_yaml(jobs)}
targets:
  azure: {{subscription_id: 00000000-0000-0000-0000-000000000000}}
"""


class Lab:
    """A spec in tmp_path, its State file, a FakeBackend, and the events of every apply."""

    def __init__(
        self,
        root: Path,
        jobs: dict[str, str | None],
        target: str = "local",
        max_instances: int = 2,
        latency: float = 0.0,
    ):
        (root / "lab.yaml").write_text(spec_text(jobs, max_instances))
        self.spec = load(root / "lab.yaml", target=target)
        self.target = target
        self.state_file = root / "state.json"
        self.state = State.load(self.state_file, self.spec.name, target)
        self.fake = FakeBackend(latency=latency, manages_resource_group=target == "azure")
        self.events: list[Event] = []
        self._seen = threading.Condition()

    def emit(self, event: Event) -> None:
        with self._seen:
            self.events.append(event)
            self._seen.notify_all()

    def wait_events(self, predicate: Callable[[list[Event]], bool], timeout: float = LIMIT) -> bool:
        with self._seen:
            return self._seen.wait_for(lambda: predicate(self.events), timeout)

    def reopen(self) -> State:
        """The state as the next mlrun process reads it from disk."""
        self.state = State.load(self.state_file, self.spec.name, self.target)
        return self.state

    def plan(self):
        model = desired(self.spec, manages_resource_group=self.fake.manages_resource_group)
        actual = self.fake.refresh(self.state.snapshot())
        return make_plan(
            model,
            actual,
            target=self.target,
            spec=str(self.spec.path),
            updatable=self.fake.updatable,
        ), model

    def applier(self, plan=None, model=None, **kw) -> Applier:
        if plan is None:
            plan, model = self.plan()
        return Applier(plan, self.spec, model, self.fake, self.state, emit=self.emit, **kw)

    def destroy_applier(self) -> Applier:
        """As `mlrun destroy` does it: the state's resources, each job's latest run polled."""
        snap = self.state.snapshot()
        actual = {
            "resources": snap["resources"],
            "lineage": snap["lineage"],
            "serial": snap["serial"],
            "jobs": {
                n: {**r, **self.fake.poll(r)} for n in snap["jobs"] if (r := self.state.latest(n))
            },
        }
        p = destroy_plan(actual, target=self.target, spec=str(self.spec.path))
        return Applier(p, self.spec, {}, self.fake, self.state, emit=self.emit)

    def statuses(self, address: str) -> list[str]:
        return [e.status for e in self.events if e.address == address]

    def queued(self) -> int:
        return sum(e.status == "Queued" for e in self.events)


class InThread:
    """fn() in a thread; join() returns its result or raises what it raised."""

    def __init__(self, fn: Callable[[], Any]):
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.result = fn()
        except BaseException as e:  # noqa: BLE001 - handed to join()
            self.error = e

    def join(self) -> Any:
        self.thread.join(LIMIT)
        assert not self.thread.is_alive(), "the apply did not end"
        if self.error is not None:
            raise self.error
        return self.result


def action(plan, address: str):
    [c] = [c for c in plan.changes if c.address == address]
    return c.action


def seq(calls, method: str, subject: str, detail: Any = None) -> list[int]:
    return [
        c.seq
        for c in calls
        if c.method == method and c.subject == subject and (detail is None or c.detail == detail)
    ]


# --- (1) ordering --------------------------------------------------------------------------------


def test_create_goes_group_then_workspace_then_computes_at_once_then_jobs(tmp_path):
    lab = Lab(tmp_path, {"a": "cluster", "b": "ci-one"}, target="azure", latency=0.02)
    rg, ws = addr("resource_group", "rg-lab"), addr("workspace", "ws-lab")
    computes = [addr("compute", "cluster"), addr("compute", "ci-one")]
    gates = [lab.fake.hold_create(c) for c in computes]
    plan, model = lab.plan()
    assert [c.address for c in plan.changes][:4] == [rg, ws, *computes]
    apply = InThread(lab.applier(plan, model).run)

    # both computes are being created at the same time, after the workspace and before any job
    def both_started() -> bool:
        return all(seq(lab.fake.calls, "create", c, "start") for c in computes)

    assert lab.fake.wait_until(both_started, LIMIT)
    assert lab.fake.calls_of("submit") == []
    for g in gates:
        g.set()
    outcome = apply.join()

    calls = lab.fake.calls
    assert seq(calls, "create", rg, "end")[0] < seq(calls, "create", ws, "start")[0]
    ws_done = seq(calls, "create", ws, "end")[0]
    assert all(ws_done < seq(calls, "create", c, "start")[0] for c in computes)
    last_compute = max(seq(calls, "create", c, "end")[0] for c in computes)
    assert all(last_compute < c.seq for c in lab.fake.calls_of("submit"))
    assert sorted(outcome.runs) == ["a", "b"] and outcome.failed == []
    saved = lab.reopen()
    assert set(saved.resources) == {rg, ws, *computes}
    assert saved.resources[computes[0]]["details"] == {"id": "/fake/compute/cluster"}


def test_destroy_goes_jobs_then_computes_then_workspace_then_group(tmp_path):
    lab = Lab(tmp_path, {"done": "cluster", "long": "ci-one"}, target="azure", latency=0.02)
    lab.fake.script("long", hold=True)
    lab.applier(detach=True).run()  # `long` is left Running on the service
    [long_run] = [c.run for c in lab.fake.calls_of("submit") if c.subject == "long"]
    lab.reopen()
    before = len(lab.fake.calls)

    lab.destroy_applier().run()

    calls = lab.fake.calls[before:]
    rg, ws = addr("resource_group", "rg-lab"), addr("workspace", "ws-lab")
    computes = [addr("compute", "cluster"), addr("compute", "ci-one")]
    # the running run is cancelled, waited for and finalized before anything is deleted
    [cancel] = [c for c in calls if c.method == "cancel"]
    assert (cancel.subject, cancel.run) == ("long", long_run)
    job_calls = [c.seq for c in calls if c.method in ("cancel", "wait", "finalize")]
    first_delete = min(c.seq for c in calls if c.method == "delete")
    assert job_calls and max(job_calls) < first_delete
    last_compute = max(seq(calls, "delete", c, "end")[0] for c in computes)
    assert last_compute < seq(calls, "delete", ws, "start")[0]
    assert seq(calls, "delete", ws, "end")[0] < seq(calls, "delete", rg, "start")[0]
    assert lab.fake.resources == {}
    saved = lab.reopen()
    assert (saved.resources, saved.jobs) == ({}, {})
    assert lab.fake.runs[long_run]["status"] == "Canceled"
    assert lab.statuses(addr("job", "long"))[-1] == "forgotten"
    assert lab.statuses(ws)[-2:] == ["destroying", "destroyed"]


# --- (2) the concurrency bound per compute -------------------------------------------------------


def drive_one_at_a_time(lab: Lab, compute: str, bound: int, gates: dict) -> None:
    """Release the running jobs of `compute` one by one; before each release, no more than
    `bound` run, and as many as `bound` do while enough are left."""
    left = set(gates)
    assert lab.wait_events(lambda events: lab.queued() == len(gates))  # all wait for a slot

    def running() -> int:
        return len(lab.fake.running_jobs(compute))

    while left:
        want = min(bound, len(left))
        assert lab.fake.wait_until(lambda want=want: running() == want, LIMIT), (
            f"{lab.fake.running_jobs(compute)} run on {compute}, {want} expected"
        )
        # a job past its slot would start now: give it the moment, and see that none does
        assert not lab.fake.wait_until(lambda: running() > bound, SETTLE), lab.fake.running_jobs(
            compute
        )
        name = lab.fake.running_jobs(compute)[0]
        gates[name].set()
        left.discard(name)


@pytest.mark.parametrize("compute,bound", [("cluster", 2), ("ci-one", 1)])
def test_a_compute_runs_at_most_its_slots_at_once(tmp_path, compute, bound):
    names = [f"j{i}" for i in range(5 if bound == 2 else 3)]
    lab = Lab(tmp_path, {n: compute for n in names}, max_instances=2)
    gates = {n: lab.fake.script(n, hold=True) for n in names}
    apply = InThread(lab.applier().run)
    drive_one_at_a_time(lab, compute, bound, gates)
    outcome = apply.join()

    assert lab.fake.max_running[compute] == bound
    assert len(lab.fake.calls_of("submit")) == len(names)
    assert sorted(outcome.runs) == names and outcome.failed == []
    assert {lab.reopen().latest(n)["status"] for n in names} == {"Completed"}


def test_jobs_on_different_computes_run_at_the_same_time(tmp_path):
    lab = Lab(tmp_path, {"on-cluster": "cluster", "on-ci": "ci-one"})
    gates = [lab.fake.script(n, hold=True) for n in ("on-cluster", "on-ci")]
    apply = InThread(lab.applier().run)
    assert lab.fake.wait_until(lambda: lab.fake.running_jobs() == ["on-ci", "on-cluster"], LIMIT)
    for g in gates:
        g.set()
    apply.join()
    assert lab.fake.max_running_total == 2
    assert lab.fake.max_running == {"cluster": 1, "ci-one": 1}


# --- (3) Ctrl-C ----------------------------------------------------------------------------------


def test_ctrl_c_cancels_running_runs_and_never_starts_queued_ones(tmp_path):
    names = ["j1", "j2", "j3", "j4"]
    lab = Lab(tmp_path, {n: "cluster" for n in names}, max_instances=2)
    gates = {n: lab.fake.script(n, hold=True) for n in names}  # never set: only cancel ends a run
    applier = lab.applier()

    def press_ctrl_c() -> None:
        ready = lab.wait_events(lambda events: lab.queued() == 4) and lab.fake.wait_until(
            lambda: len(lab.fake.running_jobs("cluster")) == 2, LIMIT
        )
        if ready:
            _thread.interrupt_main()  # KeyboardInterrupt in the main thread, as from the terminal
        else:
            for g in gates.values():  # let the apply end: the test fails on its missing interrupt
                g.set()

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    with pytest.raises(KeyboardInterrupt):
        applier.run()
    presser.join(LIMIT)

    started = {c.subject: c.run for c in lab.fake.calls_of("submit")}
    assert len(started) == 2
    cancelled = {c.run for c in lab.fake.calls_of("cancel")}
    assert cancelled == set(started.values())
    assert {lab.fake.runs[r]["status"] for r in started.values()} == {"Canceled"}
    assert not any(g.is_set() for g in gates.values())
    assert applier.outcome.interrupted
    assert sorted(applier.outcome.failed) == sorted(started)
    saved = lab.reopen()
    for name, run_id in started.items():
        latest = saved.latest(name)
        assert (latest["id"], latest["status"], latest["finalized"]) == (run_id, "Canceled", True)
    queued = sorted(set(names) - set(started))
    for name in queued:
        assert saved.latest(name) is None
        assert lab.statuses(addr("job", name)) == ["Queued", "Canceled"]
    assert [e.status for e in lab.events if e.address == "apply"] == ["interrupted"]


def test_a_run_that_starts_while_ctrl_c_is_handled_is_cancelled_too(tmp_path):
    lab = Lab(tmp_path, {"train": "cluster"})
    gate = lab.fake.script("train", hold=True)
    applier = lab.applier()
    # Ctrl-C lands after the run was submitted, before the applier knows it as running
    lab.fake.at_start = lambda job, run_id: applier.interrupt()

    outcome = applier.run()

    [run_id] = [c.run for c in lab.fake.calls_of("submit")]
    assert [c.run for c in lab.fake.calls_of("cancel")] == [run_id]
    assert not gate.is_set() and lab.fake.runs[run_id]["status"] == "Canceled"
    assert outcome.interrupted and outcome.failed == ["train"]
    latest = lab.reopen().latest("train")
    assert (latest["status"], latest["finalized"]) == ("Canceled", True)


def poll_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """For what nothing notifies (where a thread is): checked every few milliseconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def main_thread_in(code) -> bool:
    """Whether the main thread is inside `code` (a function's __code__) right now."""
    frame = sys._current_frames().get(threading.main_thread().ident)
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


def test_ctrl_c_after_a_job_failed_to_submit_still_cancels_the_running_ones(tmp_path):
    lab = Lab(tmp_path, {"long": "cluster", "broken": "ci-one"})
    gate = lab.fake.script("long", hold=True)
    lab.fake.fail_submit("broken", UserError("job broken: the service refused it"))
    applier = lab.applier()

    def press_ctrl_c() -> None:
        def refused_while_long_runs() -> bool:
            refused = seq(lab.fake.calls, "submit", "broken", "error")
            return bool(refused) and lab.fake.running_jobs() == ["long"]

        lab.fake.wait_until(refused_while_long_runs, LIMIT)
        # the submit failed; the main thread goes on waiting for `long` to end, in Applier._wait
        poll_until(lambda: main_thread_in(Applier._wait.__code__), 2.0)
        if main_thread_in(Applier.run.__code__):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # a real Ctrl-C

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    try:
        with pytest.raises((KeyboardInterrupt, UserError)):
            applier.run()
        presser.join(LIMIT)
        [run_id] = [c.run for c in lab.fake.calls_of("submit") if c.run]
        assert [c.run for c in lab.fake.calls_of("cancel")] == [run_id]
        assert applier.outcome.interrupted
        assert lab.fake.runs[run_id]["status"] == "Canceled"
    finally:
        gate.set()  # the run the apply left behind ends: its thread does not outlive the test


# --- (4) adoption --------------------------------------------------------------------------------


def detached(tmp_path, **script) -> tuple[Lab, str]:
    """A lab whose job `train` a previous (detached) apply left Running on the service."""
    lab = Lab(tmp_path, {"train": "cluster"})
    lab.fake.script("train", hold=True, **script)
    outcome = lab.applier(detach=True).run()
    run_id = outcome.runs["train"]["id"]
    lab.reopen()
    on_disk = lab.state.latest("train")
    assert (on_disk["id"], on_disk["status"], on_disk.get("finalized")) == (run_id, "Running", None)
    return lab, run_id


def test_a_run_still_running_is_waited_for_and_finalized_not_submitted_again(tmp_path):
    lab, run_id = detached(tmp_path)
    plan, model = lab.plan()
    assert action(plan, addr("job", "train")) == WAIT
    assert {c.action for c in plan.changes if c.address != addr("job", "train")} == {NOOP}
    lab.events.clear()
    apply = InThread(lab.applier(plan, model).run)
    waited = lambda: [c.run for c in lab.fake.calls_of("wait")] == [run_id]  # noqa: E731
    assert lab.fake.wait_until(waited, LIMIT)
    lab.fake.scripts["train"].gate.set()
    outcome = apply.join()

    assert len(lab.fake.calls_of("submit")) == 1  # the first apply's, only
    assert [c.run for c in lab.fake.calls_of("finalize")] == [run_id]
    assert outcome.runs["train"]["id"] == run_id and outcome.failed == []
    latest = lab.reopen().latest("train")
    assert (latest["id"], latest["status"], latest["finalized"]) == (run_id, "Completed", True)
    assert len(lab.state.runs("train")) == 1
    assert lab.statuses(addr("job", "train")) == ["Running", "Completed"]


def test_a_run_that_ended_while_mlrun_was_away_is_finalized_by_adoption(tmp_path):
    lab, run_id = detached(tmp_path)
    lab.fake.scripts["train"].gate.set()  # it ends while no mlrun watches
    assert pending_adoption(lab.state, lab.fake)
    plan, model = lab.plan()
    assert action(plan, addr("job", "train")) == NOOP and not plan.has_changes
    lab.events.clear()
    calls_before = len(lab.fake.calls)

    outcome = lab.applier(plan, model).run()

    after = lab.fake.calls[calls_before:]
    assert [c.method for c in after if c.method in ("submit", "wait", "cancel")] == []
    assert [c.run for c in after if c.method == "finalize"] == [run_id]
    latest = lab.reopen().latest("train")
    assert (latest["id"], latest["status"], latest["finalized"], latest["exit_code"]) == (
        run_id,
        "Completed",
        True,
        0,
    )
    [event] = [e for e in lab.events if e.address == addr("job", "train")]
    assert (event.status, event.run) == ("Completed", run_id)
    assert "ended while mlrun was away" in event.message
    assert outcome.runs == {} and not pending_adoption(lab.state, lab.fake)


def test_a_run_that_failed_while_away_is_finalized_then_the_job_runs_again(tmp_path):
    lab, old = detached(tmp_path, status="Failed")
    lab.fake.scripts["train"].gate.set()
    lab.fake.script("train")  # the rerun completes
    plan, model = lab.plan()
    assert action(plan, addr("job", "train")) == RUN
    lab.events.clear()

    outcome = lab.applier(plan, model).run()

    [new] = [c.run for c in lab.fake.calls_of("submit")][1:]
    assert [c.run for c in lab.fake.calls_of("finalize")] == [old, new]
    runs = lab.reopen().runs("train")
    assert [(r["id"], r["status"], r["finalized"]) for r in runs] == [
        (old, "Failed", True),
        (new, "Completed", True),
    ]
    assert runs[0]["error"] == "exit code 1"
    assert lab.statuses(addr("job", "train")) == ["Failed", "Queued", "Running", "Completed"]
    assert outcome.failed == []


def test_a_run_that_ends_between_plan_and_apply_is_finalized_once(tmp_path):
    lab, run_id = detached(tmp_path)
    plan, model = lab.plan()
    assert action(plan, addr("job", "train")) == WAIT
    lab.fake.scripts["train"].gate.set()  # it ends while the plan awaits confirmation
    lab.events.clear()

    lab.applier(plan, model).run()

    latest = lab.reopen().latest("train")
    assert (latest["status"], latest["finalized"]) == ("Completed", True)
    assert [c.run for c in lab.fake.calls_of("finalize")] == [run_id]
    assert lab.statuses(addr("job", "train")) == ["Completed"]


# --- (5) one failing resource among several ------------------------------------------------------


def test_one_compute_failing_to_create_lets_the_other_finish_and_is_recorded_for_destroy(tmp_path):
    lab = Lab(tmp_path, {"a": "cluster", "b": "ci-one"})
    bad, good = addr("compute", "ci-one"), addr("compute", "cluster")
    lab.fake.fail_create(bad, UserError("compute ci-one: quota exceeded"))
    release = lab.fake.hold_create(good)  # still being created when the other fails

    def release_after_the_failure() -> None:
        lab.fake.wait_until(lambda: bool(seq(lab.fake.calls, "create", bad, "error")), LIMIT)
        release.set()

    helper = threading.Thread(target=release_after_the_failure, daemon=True)
    helper.start()
    with pytest.raises(UserError, match="quota exceeded"):
        lab.applier().run()
    helper.join(LIMIT)

    [failed] = seq(lab.fake.calls, "create", bad, "error")
    assert failed < seq(lab.fake.calls, "create", good, "end")[0]
    assert lab.fake.calls_of("submit") == []  # no job starts without its computes
    assert set(lab.fake.resources) == {addr("workspace", "ws-lab"), good}
    saved = lab.reopen()
    assert saved.resources[good]["details"] == {"id": "/fake/compute/cluster"}
    assert saved.resources[good]["created_by_mlrun"] is True
    # what failed midway may exist on the service: recorded as mlrun's, so destroy removes it
    assert saved.resources[bad]["created_by_mlrun"] is True
    assert saved.resources[bad]["attrs"] == {
        "type": "computeinstance",
        "size": "STANDARD_DS11_V2",
        "idle_time_before_shutdown_minutes": 60,  # the default
    }
    assert lab.statuses(bad) == ["creating"] and lab.statuses(good) == ["creating", "created"]

    lab.destroy_applier().run()
    deleted = {c.subject for c in lab.fake.calls_of("delete")}
    assert deleted == {bad, good, addr("workspace", "ws-lab")}
    assert lab.reopen().resources == {}


def test_a_job_whose_submit_fails_is_not_left_queued_while_the_others_run(tmp_path):
    lab = Lab(tmp_path, {"long": "cluster", "broken": "ci-one"})
    gate = lab.fake.script("long", hold=True)
    lab.fake.fail_submit("broken", UserError("job broken: the service refused it"))
    apply = InThread(lab.applier().run)
    try:

        def refused_while_long_runs() -> bool:
            refused = seq(lab.fake.calls, "submit", "broken", "error")
            return bool(refused) and lab.fake.running_jobs() == ["long"]

        def told(events: list[Event]) -> bool:
            return [e.status for e in events if e.address == addr("job", "broken")][-1] != "Queued"

        assert lab.fake.wait_until(refused_while_long_runs, LIMIT)
        assert lab.wait_events(told, timeout=0.5), lab.statuses(addr("job", "broken"))
    finally:
        gate.set()
        with pytest.raises(UserError, match="refused"):
            apply.join()


# --- resources there before mlrun ----------------------------------------------------------------


def test_resources_there_before_mlrun_are_recorded_as_such_and_destroy_keeps_them(tmp_path):
    lab = Lab(tmp_path, {"train": "cluster"}, target="azure")
    rg, ws = addr("resource_group", "rg-lab"), addr("workspace", "ws-lab")
    lab.fake.seed(rg, {"location": "eastus"})
    lab.fake.seed(ws, {"location": "eastus", "resource_group": "rg-lab"})
    plan, model = lab.plan()
    assert action(plan, rg) == NOOP and action(plan, ws) == NOOP

    lab.applier(plan, model).run()

    assert {c.subject for c in lab.fake.calls_of("create")} == {
        addr("compute", "cluster"),
        addr("compute", "ci-one"),
    }
    saved = lab.reopen()
    assert saved.resources[rg]["created_by_mlrun"] is False
    assert saved.resources[ws]["created_by_mlrun"] is False
    assert saved.resources[addr("compute", "cluster")]["created_by_mlrun"] is True
    lab.destroy_applier().run()
    # the engine hands delete the record; the backend keeps what mlrun did not make
    kept = {c.subject for c in lab.fake.calls_of("delete") if c.detail == "kept"}
    assert kept == {rg, ws} and set(lab.fake.resources) == {rg, ws}
    assert lab.reopen().resources == {}


# --- events --------------------------------------------------------------------------------------


def test_events_per_address_tell_each_resource_and_job_in_order(tmp_path):
    lab = Lab(tmp_path, {"ok": "cluster", "broken": "ci-one"})
    lab.fake.script("broken", status="Failed")

    outcome = lab.applier().run()

    assert lab.statuses(addr("workspace", "ws-lab")) == ["creating", "created"]
    assert lab.statuses(addr("compute", "cluster")) == ["creating", "created"]
    assert lab.statuses(addr("job", "ok")) == ["Queued", "Running", "Completed"]
    assert lab.statuses(addr("job", "broken")) == ["Queued", "Running", "Failed"]
    saved = lab.reopen()
    for name in ("ok", "broken"):
        run_id = saved.latest(name)["id"]
        runs = [e.run for e in lab.events if e.address == addr("job", name)]
        assert runs == [None, run_id, run_id]
    [failed] = [
        e for e in lab.events if e.address == addr("job", "broken") and e.status == "Failed"
    ]
    assert "exit code 1" in failed.message
    assert outcome.failed == ["broken"] and not outcome.interrupted
    assert saved.latest("broken")["status"] == "Failed"
    assert saved.latest("ok")["status"] == "Completed"


def test_a_run_is_in_the_state_file_before_it_starts_on_the_service(tmp_path):
    lab = Lab(tmp_path, {"train": "cluster"})
    on_disk: list = []
    lab.fake.at_start = lambda job, run_id: on_disk.append(
        [r["id"] for r in State.load(lab.state_file, "lab", "local").runs(job)]
    )
    outcome = lab.applier().run()
    assert on_disk == [[outcome.runs["train"]["id"]]]
