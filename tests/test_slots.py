"""runner/slots.py: a compute's slots, held as leases. Unit tests of the pool; the apply engine's
pools (a cluster, an instance, no compute) with more jobs than slots against FakeBackend; a
lease that is never given back ends the apply as a bug (exit 3), never a hang; and one lab with
every kind of pool (a cluster, an instance, no compute, a pipeline's steps with and without a
compute, a sweep's trials) run for real, with more jobs than slots in each."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from conftest import run_mlrun
from test_apply import LIMIT, InThread, Lab, addr

from runner import slots
from runner.apply import Stalled
from runner.slots import Lease, Pool

# --- the pool ----------------------------------------------------------------------------------


def test_a_lease_holds_its_slots_until_its_block_ends_and_gives_them_back_once():
    pool = Pool("cluster", 2)
    with pool.take(2) as lease:
        assert pool.free == 0 and lease.held
        assert pool.take(1, block=False) is None  # full: a non-blocking taker is told at once
    assert pool.free == 2 and not lease.held
    lease.release()  # a second release gives nothing back twice
    assert pool.free == 2


def test_a_lease_is_given_back_when_its_holder_raises():
    pool = Pool("ci", 1)
    with pytest.raises(RuntimeError), pool.take() as _:
        raise RuntimeError("the job's submit failed")
    assert pool.free == 1


def test_a_job_wanting_more_slots_than_the_pool_has_takes_them_all_and_does_not_wait():
    pool = Pool("cluster", 2)
    lease = pool.take(5)  # a compute made smaller since the plan: the job still runs
    assert lease is not None and lease.count == 2 and pool.free == 0


def test_a_blocked_taker_is_woken_by_a_release_and_by_close():
    pool = Pool("ci", 1)
    first = pool.take()
    assert first is not None
    got: list[Lease | None] = []
    taker = threading.Thread(target=lambda: got.append(pool.take()))
    taker.start()
    assert _eventually(pool.blocked)  # it waits for a slot that is not free
    first.release()
    taker.join(LIMIT)
    assert got and got[0] is not None and not pool.blocked()
    closer = threading.Thread(target=lambda: got.append(pool.take()))
    closer.start()
    assert _eventually(pool.blocked)
    pool.close()  # an apply that stops: the taker gets nothing, at once
    closer.join(LIMIT)
    assert not closer.is_alive() and got[1] is None and not pool.blocked()


def test_a_pool_of_no_compute_has_a_slot_per_core(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 3)
    assert slots.unbound() == 3
    monkeypatch.setattr("os.cpu_count", lambda: None)
    assert slots.unbound() == 1


def _eventually(predicate, timeout: float = LIMIT) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


# --- the apply engine's pools, against FakeBackend -----------------------------------------------


@pytest.mark.parametrize(
    "compute,bound",
    [("cluster", 2), ("ci-one", 1), (None, slots.unbound())],
    ids=["cluster", "instance", "no-compute"],
)
def test_each_pool_runs_more_jobs_than_slots_to_the_end_at_most_its_slots_at_once(
    tmp_path, compute, bound
):
    names = [f"j{i}" for i in range(bound + 3)]
    lab = Lab(tmp_path, {n: compute for n in names}, max_instances=2)
    gates = {n: lab.fake.script(n, hold=True) for n in names}
    apply = InThread(lab.applier().run)
    left = set(names)
    while left:  # end one running job at a time: the next queued one takes its slot
        want = min(bound, len(left))
        assert lab.fake.wait_until(lambda want=want: len(lab.fake.running_jobs(compute)) == want), (
            lab.fake.running_jobs(compute)
        )
        name = lab.fake.running_jobs(compute)[0]
        gates[name].set()
        left.discard(name)
    outcome = apply.join()
    assert lab.fake.max_running[compute] == bound
    assert sorted(outcome.runs) == names and outcome.failed == []


def test_a_lease_that_is_never_given_back_stalls_the_apply_as_a_bug_not_a_hang(tmp_path):
    lab = Lab(tmp_path, {"a": "ci-one", "b": "ci-one", "c": None})
    applier = lab.applier()
    leaked = applier.pools["ci-one"].take()  # held by no job: what issue 26's bug did
    assert leaked is not None
    started = time.monotonic()
    with pytest.raises(Stalled) as stalled:
        InThread(applier.run).join()
    assert time.monotonic() - started < 3  # noticed at two looks 0.25 s apart, not a timeout
    assert str(stalled.value) == (
        "apply stalled: 2 jobs (a, b) wait for the slots of compute ci-one "
        "(1 of 1 slots held) while no job runs or starts"
    )
    assert lab.statuses(addr("job", "c"))[-1] == "Completed"  # the other pool ran
    assert lab.statuses(addr("job", "a")) == ["Queued", "Canceled"]
    assert lab.fake.calls_of("submit") and all(
        c.subject == "c" for c in lab.fake.calls_of("submit")
    )


def test_a_stall_exits_3_naming_what_waited(tmp_path, mlrun, monkeypatch):
    """The CLI with the bug put back (a lease's release gives nothing back): exit 3, the
    traceback of an internal error, and what was waiting, instead of waiting forever."""
    (tmp_path / "h.yaml").write_text(_JOBS_WITHOUT_COMPUTE)
    monkeypatch.setattr(slots, "unbound", lambda: 2)
    monkeypatch.setattr(Lease, "release", lambda self: None)
    code, _, err = mlrun("apply", "-y", "h.yaml", cwd=tmp_path)
    assert code == 3, err
    assert (
        "runner.apply.Stalled: apply stalled: 2 jobs (c, d) wait for the slots of jobs with no "
        "compute (2 of 2 slots held) while no job runs or starts\n"
        "mlrun: internal error (a bug in mlrun)."
    ) in err


_JOBS_WITHOUT_COMPUTE = """\
name: h
workspace: {name: mlw-h, resource_group: rg-h, location: eastus}
jobs:
  a: {command: echo a}
  b: {command: echo b}
  c: {command: echo c}
  d: {command: echo d}
"""


@pytest.mark.e2e
def test_issue_26_jobs_without_a_compute_beyond_the_cores_all_run_in_one_apply(tmp_path):
    (tmp_path / "h.yaml").write_text(
        _JOBS_WITHOUT_COMPUTE
        + "".join(f"  x{i}: {{command: echo x{i}}}\n" for i in range(slots.unbound()))
    )
    proc = run_mlrun("apply", "-y", "h.yaml", cwd=tmp_path, check=0, timeout=60)
    table = re.findall(r"^(\w+) +Completed  ", proc.stdout, re.M)  # the closing table's rows
    assert table == ["a", "b", "c", "d", *(f"x{i}" for i in range(slots.unbound()))]


# --- every kind of pool, for real -----------------------------------------------------------------


def _log(log: Path, name: str) -> str:
    """A command that records when it starts and ends, holding its slot a moment in between."""
    return (
        f'echo "start {name} $(date +%s.%N)" >> {log}; sleep 0.3; '
        f'echo "end {name} $(date +%s.%N)" >> {log}'
    )


@pytest.mark.e2e
def test_every_kind_of_pool_runs_more_jobs_than_its_slots_in_one_apply(tmp_path):
    log = tmp_path / "times.log"
    free = slots.unbound() + 1  # more jobs than a pool of no compute has slots
    jobs = {
        **{f"cl{i}": ("cluster", _log(log, f"cl{i}")) for i in range(3)},
        **{f"ci{i}": ("ci-pools", _log(log, f"ci{i}")) for i in range(2)},
        **{f"no{i}": (None, _log(log, f"no{i}")) for i in range(free)},
    }
    lines = [
        "name: pools",
        "workspace: {name: ws-pools}",
        "computes:",
        "  cluster: {type: amlcompute, max_instances: 2}",
        "  ci-pools: {type: computeinstance}",
        "  one: {type: amlcompute, max_instances: 1}",
        "jobs:",
    ]
    for name, (compute, command) in jobs.items():
        on = f", compute: {compute}" if compute else ""
        lines.append(f"  {name}: {{command: '{command}'{on}}}")
    lines += ["  pipe:", "    type: pipeline", "    jobs:"]
    for i in range(3):  # three steps on a one-node cluster, `free` steps on no compute
        lines.append(f"      on{i}: {{command: '{_log(log, f'on{i}')}', compute: azureml:one}}")
    for i in range(free):
        lines.append(f"      off{i}: {{command: '{_log(log, f'off{i}')}'}}")
    lines += [
        "  tune:",
        "    type: sweep",
        "    compute: cluster",
        f"    trial: {{command: '{_log(log, 'trial${{search_space.n}}')}'}}",
        "    search_space: {n: {type: choice, values: [1, 2, 3, 4]}}",
        "    sampling_algorithm: grid",
        "    objective: {goal: maximize, primary_metric: none}",
        "    limits: {max_concurrent_trials: 2}",
    ]
    (tmp_path / "lab.yaml").write_text("\n".join(lines) + "\n")
    run_mlrun("apply", "-y", "lab.yaml", cwd=tmp_path, check=0, timeout=180)

    windows: dict[str, list[float]] = {}
    for line in log.read_text().splitlines():
        _, name, at = line.split()
        windows.setdefault(name, []).append(float(at))
    groups = {
        "cluster": ([f"cl{i}" for i in range(3)], 2),
        "instance": ([f"ci{i}" for i in range(2)], 1),
        "no compute": ([f"no{i}" for i in range(free)], slots.unbound()),
        "steps on a compute": ([f"on{i}" for i in range(3)], 1),
        "steps on no compute": ([f"off{i}" for i in range(free)], slots.unbound()),
        "trials": ([f"trial{i}" for i in range(1, 5)], 2),
    }
    for group, (names, bound) in groups.items():
        assert all(len(windows.get(n, [])) == 2 for n in names), (group, windows)
        spans = [windows[n] for n in names]
        most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
        assert most <= bound, f"{group}: {most} at once, {bound} slots"
