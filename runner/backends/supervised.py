"""Supervised runs on this machine: what the local backend (a run per job), the sweep controller
(a run per trial) and any other controller of child runs share.

A run folder RUN_DIR holds `command.sh` and `work/` (written by whoever launches the run), `run_id`
(its MLflow run) and `spawned` (touched just before the supervisor starts); backends/supervisor.py
writes `pid`, `pgid`, `user_logs/std_log.txt` and, once the command is over, `exit.json`. The folder
alone tells how the run stands, so a run outlives whoever launched it and is adopted by the next.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..records import Run, RunChange
from . import runstore
from .base import MLFLOW_STATUS

SUPERVISOR = Path(__file__).with_name("supervisor.py")
ROOT = Path(__file__).resolve().parents[2]  # the folder that holds the `runner` package
ADOPT_WAIT = 3.0  # seconds to wait for a just-spawned supervisor to say it started
REASON = "reason.txt"  # why a controller failed its run, in a line (said with its exit code)


def launch(run_dir: Path, env: dict, timeout: float | None = None) -> subprocess.Popen:
    """Start the supervisor on RUN_DIR in a session of its own (it outlives its launcher)."""
    (run_dir / "spawned").touch()
    args = [sys.executable, "-I", "-S", str(SUPERVISOR), str(run_dir)]
    if timeout:
        args.append(str(timeout))
    return subprocess.Popen(
        args,
        env=env,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def controller_command(module: str, run_dir: Path) -> str:
    """A command.sh line running `module.main(RUN_DIR)` with this interpreter and this checkout of
    mlrun: a controller of child runs, supervised like any job."""
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); from {module} import main; "
        "sys.exit(main(sys.argv[1]))"
    )
    return f"exec {shlex.quote(sys.executable)} -c {shlex.quote(code)} {shlex.quote(str(run_dir))}"


def literal(value) -> str:
    """A literal input or searched value as a command sees it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


# --- how a run stands ----------------------------------------------------------------------------


def status(run: Run) -> RunChange:
    """The run's status as its folder tells it, without MLflow: {} when it still has the status
    its record says, else {status, ...} (see ending)."""
    run_dir = Path(run["run_dir"])
    ended = read_json(run_dir / "exit.json")
    if ended:
        return ending(ended, run)
    pid = read_int(run_dir / "pid")
    if pid is None and (run_dir / "spawned").exists():
        deadline = time.monotonic() + ADOPT_WAIT
        while pid is None and time.monotonic() < deadline:
            time.sleep(0.05)
            pid = read_int(run_dir / "pid")
    if pid is None:
        return {
            "status": "Canceled",
            "error": "mlrun stopped before the job started",
            "exit_code": None,
        }
    if alive(pid):
        return {"status": "Running"}
    ended = read_json(run_dir / "exit.json")  # it may have just finished
    if ended:
        return ending(ended, run)
    return {"status": "Failed", "error": "the job's supervisor was killed", "exit_code": None}


def ending(ended: dict[str, Any], run: Run) -> RunChange:
    """An exit.json as a run's final fields: status (Azure ML's words), exit code, times, error."""
    status = {"TimedOut": "Failed"}.get(ended["status"], ended["status"])
    out: RunChange = {
        "status": status,
        "exit_code": ended.get("exit_code"),
        "ended": ended.get("ended"),
        "started": ended.get("started", run.get("started")),
    }
    killed = (
        f"killed: it ignored SIGTERM for {_secs(ended.get('grace'))}s"
        if ended.get("killed")
        else ""
    )
    if ended["status"] == "TimedOut":
        limit = (
            f" after {_secs(ended['timeout'])}s (limits.timeout)" if ended.get("timeout") else ""
        )
        out["error"] = f"timed out{limit}" + (f"; {killed}" if killed else "")
    elif ended.get("error"):  # it never started (fail_unstarted)
        out["error"] = ended["error"]
    elif status == "Failed":
        out["error"] = f"exit code {ended.get('exit_code')}"
        reason = _first_line(Path(run.get("run_dir") or ".") / REASON) if run.get("run_dir") else ""
        if reason:
            out["error"] += f": {reason}"
    elif status == "Canceled" and killed:
        out["error"] = f"canceled; {killed}"
    if ended.get("log_lost") and "error" in out:
        out["error"] += "; the job deleted its run folder, with its log"
    return out


# --- the handover: a controller started before its run exists --------------------------------
# A controller (a sweep's, a pipeline's) is launched before mlrun has made its MLflow run, so that
# it loads MLflow while mlrun does; it then waits for RUN_DIR/handover.json (the run's variables,
# written once the run is in the state and the environments are built). If its launcher dies
# first, nothing was handed over: it ends without starting anything.

HANDOVER = "handover.json"
HANDOVER_PID = "MLRUN_HANDOVER_PID"  # the launcher's pid, in a waiting controller's environment


def hand_over(run_dir: Path, env: dict[str, str] | None) -> None:
    """Give the waiting controller its run: the variables it did not have at launch (None: there
    is no run for it, it ends having started nothing)."""
    write_json(run_dir / HANDOVER, {"env": env} if env is not None else {"abort": True})


def take_over(run_dir: Path) -> dict[str, str] | None:
    """In the controller: the handed-over variables, once written (None: no run was handed over,
    or the launcher died first). A controller launched whole (no HANDOVER_PID) gets {} at once."""
    launcher = os.environ.get(HANDOVER_PID)
    while launcher:
        handed = read_json(run_dir / HANDOVER)
        if handed is None and not alive(int(launcher)):
            handed = read_json(run_dir / HANDOVER) or {}  # written just before it died, or never
        if handed is not None:
            return handed.get("env")
        time.sleep(0.02)
    return {}


def fail_unstarted(run_dir: Path, error: str, log: Path | None = None) -> None:
    """Record a run that failed before its command could start (its environment did not build):
    exit.json says why, and std_log.txt holds `log` so that `mlrun logs` shows it."""
    logs = run_dir / "user_logs"
    logs.mkdir(parents=True, exist_ok=True)
    if log is not None and log.exists():
        shutil.copyfile(log, logs / "std_log.txt")
    at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    record = {"exit_code": None, "status": "Failed", "started": at, "ended": at, "error": error}
    write_json(run_dir / "exit.json", record)


def _first_line(path: Path) -> str:
    try:
        return path.read_text().strip().splitlines()[0]
    except (OSError, IndexError):
        return ""


def _secs(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else "?"


def cancel(run_dir: Path) -> None:
    """Ask the supervisor to stop the run (it stops the command's group and records it); with no
    supervisor left, kill the command's group. A supervisor just spawned is waited for until it
    writes its pid (from then on a SIGTERM is a cancel it records; before, it would kill it)."""
    pid = read_int(run_dir / "pid")
    if pid is None and (run_dir / "spawned").exists() and not (run_dir / "exit.json").exists():
        deadline = time.monotonic() + ADOPT_WAIT
        while pid is None and time.monotonic() < deadline:
            time.sleep(0.01)
            pid = read_int(run_dir / "pid")
    if pid and alive(pid):
        os.kill(pid, signal.SIGTERM)
        return
    pgid = read_int(run_dir / "pgid")
    if pgid:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def finalize_run(
    client: Callable[[], Any],
    run_id: str,
    run_dir: Path,
    status: str,
    runs: runstore.Runs,
    artifact_uri: str | None = None,
) -> None:
    """A finished run's folder into MLflow: its logs (user_logs/std_log*.txt, an environment's
    build log), outputs, ./outputs and ./logs of the working copy as artifacts, then the status (a
    job's run, or a controller's child), ended through `runs`. Logs are copied straight into a
    local artifact folder (what MLflow's local artifact repository does, without reading the run
    back first). `client()` gives the MlflowClient for the rest (called only if needed: loading
    MLflow takes seconds)."""
    logs = [
        log
        for pattern in ("user_logs/std_log*.txt", "azureml-logs/*.txt")
        for log in sorted(run_dir.glob(pattern))
    ]
    root = None
    if artifact_uri and artifact_uri.startswith("file://"):
        root = Path(urllib.parse.unquote(urllib.parse.urlparse(artifact_uri).path))
    for log in logs:
        if root is not None:
            (root / log.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, root / log.parent.name / log.name)
        else:
            client().log_artifact(run_id, str(log), artifact_path=log.parent.name)
    folders = [(f, f.name) for f in sorted((run_dir / "outputs").glob("*"))]
    folders += [(run_dir / "work" / n, n) for n in ("outputs", "logs")]  # as Azure ML uploads
    for folder, name in folders:  # ./outputs and ./logs
        if not (folder.is_dir() and any(folder.iterdir())):
            continue
        if root is not None:  # what MLflow's local artifact repository does: a copy
            shutil.copytree(folder, root / name, dirs_exist_ok=True)
        else:
            client().log_artifacts(run_id, str(folder), artifact_path=name)
    # ended when its process ended (exit.json), not now: a pipeline's next step may be running
    runs.end(run_id, MLFLOW_STATUS[status], _millis(read_json(run_dir / "exit.json")))
    shutil.rmtree(run_dir / "env", ignore_errors=True)  # the run's throwaway layer


def _millis(ended: dict | None) -> int | None:
    """An exit record's end (`2026-12-07T14:08:42.495Z`) in epoch milliseconds, if it has one."""
    import datetime as dt

    when = (ended or {}).get("ended")
    try:
        return int(dt.datetime.fromisoformat(str(when).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def output_path(folder: Path, name: str, files: dict[str, str], made: bool = True) -> Path:
    """Where a job writes its output `name`: the folder folder/name, made now, or for a
    `type: uri_file` output (`files`: name -> file name) the file of that name in it. Not
    `made`: a path the job makes itself (a spark job's, as Spark's writers refuse one that
    exists), its parent made."""
    out = folder / name
    (out if made or name in files else folder).mkdir(parents=True, exist_ok=True)
    return out / files[name] if name in files else out


# --- small readers and writers -----------------------------------------------------------------


def write_json(path: Path, data: dict) -> None:
    """`data` as JSON at `path`, atomically (readers see the old file or the new, whole)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def read_json(path: Path, wait: float = 0.0) -> dict | None:
    """A JSON file written atomically by another process, or None; with `wait`, keep looking that
    many seconds (a supervisor writes exit.json just before it exits)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)


def read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own exited child, not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
