"""Runs one local job and records how it ended, whether or not mlrun is still alive.

Started by the local backend as `python -I -S supervisor.py RUN_DIR [TIMEOUT]` in a session of
its own; `os`, `signal` and `time` only (no subprocess, json or re: it starts in milliseconds).
In RUN_DIR it reads `command.sh` and writes:
  pid          its own pid (the job's process group id is in `pgid`)
  user_logs/std_log.txt   the job's stdout and stderr
  exit.json    {"exit_code", "status", "started", "ended", "timeout", "grace", "killed",
               "log_lost"}, atomically, when the job is over (RUN_DIR made again if the job
               deleted it)
SIGTERM (mlrun's cancel, Ctrl-C) stops the job's whole process group: TERM, then KILL after a grace.
The job's output goes to the log file through the file descriptor: it never passes through here.
"""

import os
import signal
import sys
import time

GRACE = float(os.environ.get("MLRUN_KILL_GRACE", "10"))


def now():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def write_atomic(path, text, durable=True):
    """Readers see all of it or nothing; `durable`: on disk too (pid files need not outlive a
    reboot)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def to_json(record):
    """A flat record of None, bools, numbers and plain strings (status words, times) as JSON."""

    def value(v):
        if v is None or isinstance(v, bool):
            return {None: "null", True: "true", False: "false"}[v]
        return repr(v) if isinstance(v, (int, float)) else f'"{v}"'

    return "{" + ", ".join(f'"{k}": {value(v)}' for k, v in record.items()) + "}"


class Cancelled(Exception):
    pass


class TimedOut(Exception):
    pass


def raise_(kind):
    def handler(*_):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise kind()

    return handler


def spawn(run_dir, log_path):
    """bash RUN_DIR/command.sh in RUN_DIR/work, in a process group of its own, output to the log."""
    pid = os.fork()
    if pid == 0:  # the child: only os calls until exec
        try:
            os.setpgid(0, 0)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.chdir(os.path.join(run_dir, "work"))
            os.execvp("bash", ["bash", os.path.join(run_dir, "command.sh")])
        except BaseException as e:  # noqa: BLE001  (said in the job's log; the job fails with 127)
            os.write(2, f"mlrun: could not start the job: {e}\n".encode())
        finally:
            os._exit(127)
    try:
        os.setpgid(pid, pid)  # also here: the group exists before anyone signals it
    except OSError:
        pass  # the child set it and exec'd already
    return pid


def reap(pid, seconds):
    """The job's exit code (negative: the signal that ended it), or None if it still runs after
    `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def stop(pid):
    """TERM the job's process group, then KILL it after the grace period: (exit code, whether it
    took KILL)."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    code = reap(pid, GRACE)
    if code is not None:
        return code, False
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), True


def main(run_dir, timeout=None):
    signal.signal(
        signal.SIGINT, signal.SIG_IGN
    )  # the terminal's Ctrl-C goes to mlrun, which decides
    write_atomic(os.path.join(run_dir, "pid"), str(os.getpid()), durable=False)
    started = now()
    log_dir = os.path.join(run_dir, "user_logs")
    os.makedirs(log_dir, exist_ok=True)
    log_path = os.path.join(log_dir, "std_log.txt")
    signal.signal(signal.SIGTERM, raise_(Cancelled))
    signal.signal(signal.SIGALRM, raise_(TimedOut))
    pid = None
    killed = False
    try:
        pid = spawn(run_dir, log_path)
        write_atomic(os.path.join(run_dir, "pgid"), str(pid), durable=False)
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, float(timeout))
        code = os.waitstatus_to_exitcode(
            os.waitpid(pid, 0)[1]
        )  # a handler that raises ends the wait
        signal.setitimer(signal.ITIMER_REAL, 0)
        status = "Completed" if code == 0 else "Failed"
    except (Cancelled, TimedOut) as e:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        status = "Canceled" if isinstance(e, Cancelled) else "TimedOut"
        if pid is None:  # cancelled before the job existed
            code = None
        else:
            code, killed = stop(pid)
    if pid is not None:
        try:  # children the job left behind in its group go with it
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    log_lost = not os.path.exists(log_path)  # the job deleted it
    os.makedirs(run_dir, exist_ok=True)
    write_atomic(
        os.path.join(run_dir, "exit.json"),
        to_json(
            {
                "exit_code": code,
                "status": status,
                "started": started,
                "ended": now(),
                "timeout": float(timeout) if timeout else None,
                "grace": GRACE,
                "killed": killed,
                "log_lost": log_lost,
            }
        ),
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
