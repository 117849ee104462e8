"""Runs one local job and records how it ended, whether or not mlrun is still alive.

Started by the local backend as `python -I -S supervisor.py RUN_DIR [TIMEOUT]` in a session of
its own; stdlib only, so it starts in milliseconds. In RUN_DIR it reads `command.sh` and writes:
  pid          its own pid (the job's process group id is in `pgid`)
  user_logs/std_log.txt   the job's stdout and stderr
  exit.json    {"exit_code", "status", "started", "ended"}, atomically, when the job is over
SIGTERM (mlrun's cancel, Ctrl-C) stops the job's whole process group: TERM, then KILL after a grace.
"""
import datetime as dt
import json
import os
import signal
import subprocess
import sys

GRACE = float(os.environ.get("MLRUN_KILL_GRACE", "10"))


def now():
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def stop(proc):
    """TERM the job's process group, then KILL it after the grace period."""
    for sig, wait in ((signal.SIGTERM, GRACE), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


class Cancelled(Exception):
    pass


def on_term(*_):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Cancelled()


def main(run_dir, timeout=None):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl-C goes to mlrun, which decides
    write_atomic(os.path.join(run_dir, "pid"), str(os.getpid()))
    started = now()
    log_dir = os.path.join(run_dir, "user_logs")
    os.makedirs(log_dir, exist_ok=True)
    with open(os.path.join(log_dir, "std_log.txt"), "ab", buffering=0) as log:
        proc = subprocess.Popen(["bash", os.path.join(run_dir, "command.sh")], cwd=os.path.join(run_dir, "work"),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, process_group=0)
    write_atomic(os.path.join(run_dir, "pgid"), str(proc.pid))
    try:
        signal.signal(signal.SIGTERM, on_term)
        proc.wait(float(timeout) if timeout else None)  # a signal handler that raises ends the wait
        status = "Completed" if proc.returncode == 0 else "Failed"
    except subprocess.TimeoutExpired:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop(proc)
        status = "TimedOut"
    except Cancelled:
        stop(proc)
        status = "Canceled"
    try:  # children the job left behind in its group go with it
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    write_atomic(os.path.join(run_dir, "exit.json"),
                 json.dumps({"exit_code": proc.returncode, "status": status, "started": started, "ended": now()}))


if __name__ == "__main__":
    main(*sys.argv[1:3])
