"""Jobs that behave badly on the local target: floods of output, stray children, a job that
ignores SIGTERM, a job that deletes its own folder. mlrun stays small, stops what it started,
and ends with the job's status and a message, never a traceback."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import mlflow_client, mlrun_cmd, run_mlrun

pytestmark = pytest.mark.e2e

QUICK = """name: quick
workspace: {name: ws-bad}
computes:
  cluster: {type: amlcompute, max_instances: 2}
jobs:
"""
MiB = 1 << 20


def write_spec(folder: Path, jobs: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lab.yaml"
    path.write_text(QUICK + jobs)
    return path


def measured(*args, cwd: Path, env: dict | None = None, stdout=None) -> tuple[int, int, str, str]:
    """Run mlrun in a subprocess: (exit code, peak RSS in bytes, stdout, stderr). The peak is
    wait4's ru_maxrss: mlrun's own, or a waited-for descendant's if larger (the job's are tiny)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    full_env.update(env or {})
    out_path, err_path = cwd / f".out-{time.monotonic_ns()}", cwd / f".err-{time.monotonic_ns()}"
    with (
        open(err_path, "w") as err,
        open(out_path, "w") if stdout is None else open(os.devnull, "w") as out,
    ):
        proc = subprocess.Popen(
            mlrun_cmd() + [str(a) for a in args],
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    text = out_path.read_text() if out_path.exists() else ""
    return proc.returncode, usage.ru_maxrss * 1024, text, err_path.read_text()


def latest(spec: Path, job: str) -> dict:
    state = json.loads((spec.parent / ".mlrun" / "quick.local.json").read_text())
    return state["jobs"][job]["runs"][-1]


def gone(pid: int, marker: str) -> bool:
    """Whether pid is no longer a running process of ours (a zombie left to init counts as gone)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state == "Z" or marker not in cmdline


def test_gigabytes_of_output_stream_to_the_log_and_mlrun_memory_stays_flat(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    if free < 3 * 256 * MiB:
        pytest.skip(f"only {free // MiB} MiB free in {tmp_path}")
    size = min(
        384 * MiB, free // 6 // MiB * MiB
    )  # the log and its artifact copy, with room to spare
    line = b"mlrun-bad-job-output-line\n"
    spec = write_spec(
        tmp_path,
        f"""  tiny:
    command: yes mlrun-bad-job-output-line | head -c 1000
    compute: cluster
  flood:
    command: yes mlrun-bad-job-output-line | head -c {size}; echo done >&2
    compute: cluster
""",
    )
    code, small_rss, out, err = measured("apply", "-y", "--only", "tiny", spec, cwd=tmp_path)
    assert code == 0, out + err
    code, big_rss, out, err = measured("apply", "-y", "--only", "flood", spec, cwd=tmp_path)
    assert code == 0, out + err
    assert "Traceback" not in err
    log = Path(latest(spec, "flood")["run_dir"]) / "user_logs" / "std_log.txt"
    assert log.stat().st_size == size + len("done\n")
    with open(log, "rb") as f:
        assert f.read(len(line) * 3) == line * 3
        f.seek(-len("done\n"), os.SEEK_END)
        assert f.read() == b"done\n"
    # mlrun never holds the output: its peak is the tiny run's, give or take, not size more
    assert big_rss < small_rss + size // 4, (small_rss // MiB, big_rss // MiB, size // MiB)
    client = mlflow_client(tmp_path, "ws-bad")
    (artifact,) = client.list_artifacts(latest(spec, "flood")["id"], "user_logs")
    assert artifact.file_size == size + len("done\n")
    # so does `mlrun logs`, which copies the log through in blocks
    code, small_logs_rss, _, err = measured("logs", spec, "tiny", cwd=tmp_path, stdout="null")
    assert code == 0, err
    code, big_logs_rss, _, err = measured("logs", spec, "flood", cwd=tmp_path, stdout="null")
    assert code == 0, err
    assert big_logs_rss < small_logs_rss + size // 4, (small_logs_rss // MiB, big_logs_rss // MiB)
    shutil.rmtree(tmp_path / ".mlrun")  # a gigabyte or two is not left behind in the temp folder


def test_children_a_job_leaves_behind_are_stopped_with_its_process_group(tmp_path):
    marker = f"mlrun-orphan-{os.getpid()}-{time.monotonic_ns()}"
    pids = tmp_path / "pids"
    sleeper = (
        'python -c "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); '
        f'time.sleep(300)" {marker}'
    )
    spec = write_spec(
        tmp_path,
        f"""  forker:
    command: |
      {sleeper} &
      echo $! >> "$PIDS"
      ( {sleeper} & echo $! >> "$PIDS" )
      nohup {sleeper} > /dev/null 2>&1 &
      echo $! >> "$PIDS"
      echo parent leaves
    compute: cluster
    environment_variables: {{PIDS: {pids}}}
""",
    )
    start = time.monotonic()
    proc = run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0)
    assert time.monotonic() - start < 150  # runaway guard (normally 3-6 s): not the sleepers' 300 s
    assert "job.forker  Completed" in proc.stdout
    children = [int(p) for p in pids.read_text().split()]
    assert len(children) == 3
    deadline = time.monotonic() + 5
    while not all(gone(p, marker) for p in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in children if not gone(p, marker)] == []
    assert run_mlrun("logs", spec, "forker", cwd=tmp_path, check=0).stdout == "parent leaves\n"


def test_a_job_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
    marker = f"mlrun-stubborn-{os.getpid()}-{time.monotonic_ns()}"
    stubborn = (
        'python -c "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); '
        f"print('ignoring TERM', flush=True); time.sleep(300)\" {marker}"
    )
    spec = write_spec(
        tmp_path,
        f"""  stubborn:
    command: |
      trap '' TERM
      echo started
      {stubborn}
    compute: cluster
    limits: {{timeout: 2}}
""",
    )
    start = time.monotonic()
    proc = run_mlrun("apply", "-y", spec, cwd=tmp_path, env={"MLRUN_KILL_GRACE": "1"}, check=1)
    assert time.monotonic() - start < 150  # runaway guard (normally 3-6 s): not the sleepers' 300 s
    assert "Traceback" not in proc.stderr
    run = latest(spec, "stubborn")
    assert run["status"] == "Failed"
    assert run["error"] == "timed out after 2s (limits.timeout); killed: it ignored SIGTERM for 1s"
    assert f"stubborn (run {run['id'][:7]}: {run['error']}); see mlrun logs" in proc.stderr
    assert f"job.stubborn  Failed  run {run['id'][:7]}: {run['error']}" in proc.stdout
    ended = json.loads((Path(run["run_dir"]) / "exit.json").read_text())
    assert ended["status"] == "TimedOut" and ended["killed"] is True
    took = _seconds(ended["ended"]) - _seconds(ended["started"])
    # the timeout (2 s), then the grace (1 s), then KILL; the upper bound is only a runaway guard
    # (normally 3.0 s), far below the 300 s the job would sleep if it were not killed
    assert 3 <= took < 60, took
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout == ""
    client = mlflow_client(tmp_path, "ws-bad")
    assert client.get_run(run["id"]).info.status == "FAILED"
    assert (
        run_mlrun("logs", spec, "stubborn", cwd=tmp_path, check=0).stdout
        == "started\nignoring TERM\n"
    )
    log = Path(client.download_artifacts(run["id"], "user_logs/std_log.txt")).read_text()
    assert log == "started\nignoring TERM\n"
    status = run_mlrun("status", spec, cwd=tmp_path, check=0).stdout
    assert (
        f"job.stubborn                     Failed     run {run['id'][:7]} {run['error']}\n"
        in status
    )


def _seconds(stamp: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_a_job_that_deletes_its_folder_ends_with_its_status_and_a_message(tmp_path):
    spec = write_spec(
        tmp_path,
        """  rm-work:
    command: echo deleting my working folder; rm -rf "$PWD"; echo deleted
    compute: cluster
  rm-run:
    command: echo deleting my run folder; rm -rf "$(dirname "$PWD")"; echo deleted; exit 4
    compute: cluster
""",
    )
    proc = run_mlrun("apply", "-y", spec, cwd=tmp_path, check=1)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    work, run_folder = latest(spec, "rm-work"), latest(spec, "rm-run")
    assert work["status"] == "Completed"
    assert (
        run_mlrun("logs", spec, "rm-work", cwd=tmp_path, check=0).stdout
        == "deleting my working folder\ndeleted\n"
    )
    assert run_folder["status"] == "Failed"
    assert run_folder["error"] == "exit code 4; the job deleted its run folder, with its log"
    assert (
        f"rm-run (run {run_folder['id'][:7]}: {run_folder['error']}); see mlrun logs" in proc.stderr
    )
    client = mlflow_client(tmp_path, "ws-bad")
    assert client.get_run(work["id"]).info.status == "FINISHED"
    assert client.get_run(run_folder["id"]).info.status == "FAILED"
    logs = run_mlrun("logs", spec, "rm-run", cwd=tmp_path, check=1)
    assert (
        logs.stderr == f"error: the log of run {run_folder['id'][:7]} is gone: "
        f"{run_folder['run_dir']}/user_logs/std_log.txt does not exist\n"
    )


def test_a_pipe_in_the_code_folder_is_neither_hashed_nor_copied(tmp_path):
    """A named pipe left in a code folder (a tool's control channel, say) would block the
    fingerprint's read and fail the snapshot's copy: it is skipped, the job runs without it."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print('trained')\n")
    os.mkfifo(code / "control")
    spec = write_spec(
        tmp_path,
        """  listing:
    command: ls -A; python train.py
    code: ./code
    compute: cluster
""",
    )
    assert (
        "> job.listing                  first run"
        in run_mlrun("plan", spec, cwd=tmp_path, timeout=60, check=0).stdout
    )
    proc = run_mlrun("apply", "-y", spec, cwd=tmp_path, timeout=120, check=0)
    assert "Traceback" not in proc.stderr
    listing = run_mlrun("logs", spec, "listing", cwd=tmp_path, check=0).stdout
    assert listing == "logs\noutputs\ntrain.py\ntrained\n"  # ./logs and ./outputs: made by mlrun
    assert (
        "No changes. Everything is up to date."
        in run_mlrun("plan", spec, cwd=tmp_path, timeout=60, check=0).stdout
    )
