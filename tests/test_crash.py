"""Crash safety of the local target: `mlrun apply` killed with SIGKILL at many points, then the next
apply converges: the state loads, the lock is taken over, no job that ran runs again, jobs left
running are adopted, no MLflow run stays RUNNING, and a further apply changes nothing.

Kill points are exact: either the test watches the world from outside (a job that blocks on a flag
file it controls), or it runs the real `python -m runner apply -y` with a few of mlrun's functions
wrapped (in this test's bootstrap, never in mlrun) so the process SIGKILLs itself at that call."""

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, mlflow_client, run_mlrun

pytestmark = pytest.mark.e2e

JOBS = ("a", "b")
TERMINAL_MLFLOW = {"FINISHED", "FAILED", "KILLED"}

# Runs `python -m runner ARGS...` after wrapping one function so that its NTH matching call kills
# the process (SIGKILL, as `kill -9` from outside would) right before or right after it.
BOOT = r"""
import os, runpy, signal, sys, threading
point, args = sys.argv[1], sys.argv[2:]
import runner.state as st
import runner.backends.local as lb
import runner.backends.supervised as supervised

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def hook(owner, attr, when, nth=1, match=lambda *a, **k: True):
    real, seen, lock = getattr(owner, attr), [0], threading.Lock()
    def wrapper(*a, **k):
        hit = False
        if match(*a, **k):
            with lock:  # apply's threads call it at once
                seen[0] += 1
                hit = seen[0] == nth
        if hit and when == "before":
            die()
        result = real(*a, **k)
        if hit and when == "after":
            die()
        return result
    setattr(owner, attr, wrapper)

def is_state(src, dst):
    return str(dst).endswith(".local.json")

if point == "workspace-created":      # the store exists, the state does not know the workspace
    hook(lb.LocalBackend, "create", "after", match=lambda self, kind, *a: kind == "workspace")
elif point == "mlflow-run-created":   # an MLflow run exists (RUNNING), the state does not know it
    hook(st.State, "add_run", "before")
elif point == "run-recorded":         # in the state as Preparing, no process yet
    hook(st.State, "add_run", "after")
elif point == "job-spawned":          # the supervisor started, the state still says Preparing
    hook(supervised.subprocess, "Popen", "after",
         match=lambda args, *a, **k: str(supervised.SUPERVISOR) in str(args))
elif point == "mid-finalize":         # the state says Completed; artifacts logged,
                                      # MLflow still RUNNING
    from runner.backends import mlflow_db     # where a job's run is ended (without MLflow)
    hook(mlflow_db.Store, "set_terminated", "before")
elif point == "finalized":            # MLflow FINISHED, the state not marked finalized
    hook(lb.LocalBackend, "finalize", "after")
elif point == "before-handover":      # a controller started, waiting for its run: never handed
    hook(supervised, "hand_over", "before")
elif point == "state-rename":         # a state save's temp file written, not renamed (the 3rd save)
    hook(st.os, "replace", "before", nth=3, match=is_state)
else:
    raise SystemExit(f"unknown kill point {point}")
sys.argv = ["mlrun", *args]
runpy.run_module("runner", run_name="__main__", alter_sys=True)
"""


def env():
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
        "PYTHONPATH": str(ROOT),
    }


def lab(tmp_path: Path, block: bool = False) -> Path:
    """Two trivial jobs on one two-slot compute; each appends its name to `count` (outside the
    workspace) when it starts, then, with `block`, waits until the file `go-NAME` exists."""
    wait = "; while [ ! -e {}/go-{} ]; do sleep 0.02; done" if block else ""
    jobs = "".join(
        f"  {j}:\n    command: echo {j} >> {tmp_path}/count{wait.format(tmp_path, j)}\n"
        "    compute: pool\n"
        for j in JOBS
    )
    spec = tmp_path / "lab.yaml"
    spec.write_text(
        "name: crash\nworkspace: {name: ws-crash}\ncomputes:\n"
        "  pool: {type: amlcompute, max_instances: 2}\njobs:\n" + jobs
    )
    return spec


def counts(tmp_path: Path) -> dict:
    lines = (tmp_path / "count").read_text().split() if (tmp_path / "count").exists() else []
    return {j: lines.count(j) for j in JOBS}


def start_apply(tmp_path: Path, spec: Path, point: str | None = None) -> subprocess.Popen:
    args = [sys.executable, "-c", BOOT, point] if point else [sys.executable, "-m", "runner"]
    return subprocess.Popen(
        args + ["apply", "-y", str(spec)],
        cwd=tmp_path,
        env=env(),
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_dirs(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / ".mlrun" / "local" / "ws-crash" / "runs").glob("*/*"))


def wait_for(what, timeout=30):
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def converge(tmp_path: Path, spec: Path) -> tuple:
    """The next apply after the kill, then one more (which should do nothing)."""
    first = run_mlrun("apply", "-y", spec, cwd=tmp_path, env={"PYTHONPATH": str(ROOT)})
    return first, run_mlrun("apply", "-y", spec, cwd=tmp_path, env={"PYTHONPATH": str(ROOT)})


def check_converged(tmp_path: Path, first, again, killed_pid: int) -> None:
    from runner.state import State

    assert first.returncode == 0, f"stdout:\n{first.stdout}\nstderr:\n{first.stderr}"
    assert (
        f"note: took over the lock of pid {killed_pid}, which is no longer running\n"
        in first.stderr
    )
    state = State.load(tmp_path / ".mlrun" / "crash.local.json", "crash", "local")
    for j in JOBS:
        latest = state.latest(j)
        assert (latest["status"], latest.get("finalized")) == ("Completed", True), latest
    assert counts(tmp_path) == {j: 1 for j in JOBS}, "a job ran twice (or never)"
    client = mlflow_client(tmp_path, "ws-crash")
    runs = client.search_runs([client.get_experiment_by_name("crash").experiment_id])
    assert {
        r.info.run_id: r.info.status for r in runs if r.info.status not in TERMINAL_MLFLOW
    } == {}
    assert sorted(r.data.tags["mlrun.job"] for r in runs if r.info.status == "FINISHED") == sorted(
        JOBS
    )
    assert {r.info.run_id for r in runs if r.info.status == "FINISHED"} == {
        state.latest(j)["id"] for j in JOBS
    }
    assert sorted(p.name for p in (tmp_path / ".mlrun").iterdir() if p.name.endswith(".tmp")) == []
    for d in run_dirs(tmp_path):  # every job that was started has ended: none left behind
        assert (d / "exit.json").exists() or not (d / "spawned").exists(), d
    assert (again.returncode, again.stderr) == (0, "")
    assert again.stdout.endswith("No changes. Everything is up to date.\n")
    assert counts(tmp_path) == {j: 1 for j in JOBS}


# --- killed at an exact call ---------------------------------------------------------------------

POINTS = [
    "workspace-created",
    "mlflow-run-created",
    "run-recorded",
    "job-spawned",
    "mid-finalize",
    "finalized",
    "state-rename",
]


def crash_and_converge(folder: Path, point: str) -> dict:
    spec = lab(folder)
    proc = start_apply(folder, spec, point)
    out, err = proc.communicate(timeout=120)
    if proc.returncode != -signal.SIGKILL:
        return {"killed": (proc.returncode, out, err)}
    for d in run_dirs(folder):  # jobs the dead mlrun started end without it
        wait_for(lambda d=d: (d / "exit.json").exists() or not (d / "spawned").exists())
    return {
        "killed": (proc.returncode, out, err),
        "pid": proc.pid,
        "spec": spec,
        "applies": converge(folder, spec),
    }


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    """Every kill point's scenario, run side by side (each in a folder of its own): the processes
    mostly wait, and one at a time they would take a minute."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            p: pool.submit(crash_and_converge, tmp_path_factory.mktemp(p), p) for p in POINTS
        }
        yield futures


@pytest.mark.parametrize("point", POINTS)
def test_apply_killed_at_a_point_converges_on_the_next_apply(crashed, point):
    result = crashed[point].result()
    code, out, err = result["killed"]
    assert code == -signal.SIGKILL, f"the kill point was never reached: exit {code}\n{out}\n{err}"
    check_converged(result["spec"].parent, *result["applies"], result["pid"])


# --- killed from outside while the jobs run ------------------------------------------------------


def test_jobs_left_running_by_a_killed_mlrun_are_adopted_not_rerun(tmp_path):
    """kill -9 while both jobs run; one ends while mlrun is dead, the other is still running when
    the next apply starts: the first is adopted as it ended, the second waited on; neither
    reruns."""
    spec = lab(tmp_path, block=True)
    first = start_apply(tmp_path, spec)
    try:
        wait_for(lambda: counts(tmp_path) == {"a": 1, "b": 1})  # both started, both blocked
    finally:
        first.kill()
        first.communicate()
    (tmp_path / "go-a").touch()
    wait_for(
        lambda: (
            [(d.parent.name, (d / "exit.json").exists()) for d in run_dirs(tmp_path)]
            == [("a", True), ("b", False)]
        )
    )
    second = start_apply(tmp_path, spec)
    guard = threading.Timer(60, second.kill)  # a safety bound for the readline()s below
    guard.start()
    try:
        lines = [second.stdout.readline()]
        while lines[-1] and "job.b  Running  waiting for the run" not in lines[-1]:
            lines.append(second.stdout.readline())
        assert lines[0].startswith("  = job.a                        up to date (run "), lines
        assert lines[1].startswith("  * job.b                        run "), lines
        assert lines[1].endswith(" is Running: wait for it\n"), lines
        assert lines[2] == (
            "Plan: 0 to add, 0 to change, 0 to replace, 0 to destroy, 0 jobs to run, "
            "1 to wait for.\n"
        )
        assert "job.a  Completed  run " in lines[3] and lines[3].endswith(
            " ended while mlrun was away\n"
        ), lines
        assert "waiting for the run" in lines[-1], lines
        (tmp_path / "go-b").touch()
        out, err = second.communicate(timeout=60)
    finally:
        guard.cancel()
        second.kill()
    assert "job.b  Completed" in out
    again = run_mlrun("apply", "-y", spec, cwd=tmp_path, env={"PYTHONPATH": str(ROOT)})
    done = subprocess.CompletedProcess(second.args, second.returncode, "".join(lines) + out, err)
    check_converged(tmp_path, done, again, first.pid)


# --- killed at random while writing the state ----------------------------------------------------

SAVER = r"""
import sys
from runner.state import State
s = State.load(sys.argv[1], "lab", "local")
i = 0
while True:
    i += 1
    s.add_run("job", {"id": f"r{s.serial}", "status": "Running", "pad": "x" * 4000})
    s.update_run("job", f"r{s.serial - 1}", status="Completed")
"""


def test_state_writes_killed_at_random_always_leave_a_loadable_state(tmp_path):
    from runner.state import Lock, State

    path = tmp_path / ".mlrun" / "lab.local.json"
    rng = random.Random(8)
    serial = 0
    for _ in range(15):
        saver = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(path)], env=env(), start_new_session=True
        )
        wait_for(
            lambda serial=serial: path.exists() and State.load(path, "lab", "local").serial > serial
        )
        time.sleep(rng.uniform(0, 0.05))
        saver.kill()
        saver.wait()
        state = State.load(path, "lab", "local")  # never damaged, never behind
        assert state.serial >= serial
        serial = state.serial
        ids = [r["id"] for r in state.runs("job")]
        assert len(ids) == len(set(ids)) > 0
        assert State.load(path.with_name(path.name + ".bak"), "lab", "local").serial in (
            serial - 1,
            serial,
        )
    with Lock(
        path, "mlrun apply"
    ):  # the next holder of the lock clears the dead writers' temp files
        pass
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "lab.local.json",
        "lab.local.json.bak",
        "lab.local.lock",
    ]
