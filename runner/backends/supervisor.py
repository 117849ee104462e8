"""Runs one local job and records how it ended, whether or not mlrun is still alive.

Started by the local backend as `python -I -S supervisor.py RUN_DIR [TIMEOUT]` in a session of
its own; `os`, `_signal` and `time` only (no subprocess, json or re: it starts in milliseconds).
In RUN_DIR it reads `command.sh` and writes:
  pid          its own pid (the job's process group id is in `pgid`)
  user_logs/std_log.txt   the job's stdout and stderr (a distributed job: one
               std_log_process_RANK.txt per process, all in one process group, stopped together
               when one fails)
  exit.json    {"exit_code", "status", "started", "ended", "timeout", "grace", "killed",
               "log_lost"}, atomically, when the job is over (RUN_DIR made again if the job
               deleted it)
SIGTERM (mlrun's cancel, Ctrl-C) stops the job's whole process group: TERM, then KILL after a grace.
The job's output goes to the log file through the file descriptor: it never passes through here.
"""

import _signal as signal  # `signal` imports enum: 9 ms of every job's start
import os
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


def processes(run_dir):
    """What to start: [(log file name, extra environment)]. A distributed job has one file per
    process in RUN_DIR/processes (named by rank, lines NAME=VALUE); any other job one process."""
    folder = os.path.join(run_dir, "processes")
    try:
        ranks = sorted(os.listdir(folder), key=int)
    except FileNotFoundError:
        return [("std_log.txt", None)]
    out = []
    for rank in ranks:
        with open(os.path.join(folder, rank)) as f:
            env = dict(line.partition("=")[::2] for line in f.read().splitlines() if line)
        out.append((f"std_log_process_{rank}.txt", env))
    return out


def spawn(run_dir, log_path, env=None, group=0):
    """bash RUN_DIR/command.sh in RUN_DIR/work, output to the log, in the process group `group`
    (0: a new one it leads)."""
    pid = os.fork()
    if pid == 0:  # the child: only os calls until exec
        try:
            os.setpgid(0, group)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.chdir(os.path.join(run_dir, "work"))
            args = ["bash", os.path.join(run_dir, "command.sh")]
            if env:
                os.execvpe("bash", args, {**os.environ, **env})
            os.execvp("bash", args)
        except BaseException as e:  # noqa: BLE001  (said in the job's log; the job fails with 127)
            os.write(2, f"mlrun: could not start the job: {e}\n".encode())
        finally:
            os._exit(127)
    try:
        os.setpgid(pid, group or pid)  # also here: the group exists before anyone signals it
    except OSError:
        pass  # the child set it and exec'd already
    return pid


def wait_all(pids):
    """Block until every process has exited 0 (0), or one failed (its exit code, negative for
    the signal that ended it). A signal handler that raises ends the wait."""
    left = set(pids)
    while left:
        pid, status = os.waitpid(-1, 0)
        if pid in left:
            left.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            if code != 0:
                return code
    return 0


def reap(pids, seconds):
    """Wait up to `seconds` for the processes to exit: {pid: exit code} of those that did."""
    deadline, codes = time.monotonic() + seconds, {}
    while True:
        for pid in pids:
            if pid not in codes:
                try:
                    done, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:  # reaped already (by wait_all)
                    done, status = pid, 0
                if done:
                    codes[pid] = os.waitstatus_to_exitcode(status)
        if len(codes) == len(pids) or time.monotonic() >= deadline:
            return codes
        time.sleep(0.02)


def stop(group, pids):
    """TERM the job's process group, then KILL it after the grace period: (the first process's
    exit code, whether it took KILL)."""
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        pass
    codes = reap(pids, GRACE)
    killed = len(codes) < len(pids)
    if killed:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        codes.update(reap([p for p in pids if p not in codes], 60))
    return codes.get(pids[0]), killed


def main(run_dir, timeout=None):
    signal.signal(
        signal.SIGINT, signal.SIG_IGN
    )  # the terminal's Ctrl-C goes to mlrun, which decides
    started = now()
    log_dir = os.path.join(run_dir, "user_logs")
    os.makedirs(log_dir, exist_ok=True)
    todo = processes(run_dir)
    log_path = os.path.join(log_dir, todo[0][0])
    pids = []
    group = 0
    killed = False
    signal.signal(signal.SIGTERM, raise_(Cancelled))
    signal.signal(signal.SIGALRM, raise_(TimedOut))
    try:
        # the pid only once a SIGTERM is a cancel: whoever reads it may signal it (cancel() waits
        # for it), and the run is recorded as Canceled even if nothing started yet
        write_atomic(os.path.join(run_dir, "pid"), str(os.getpid()), durable=False)
        for log_name, env in todo:  # one group: stopped together, whichever ends first
            pids.append(spawn(run_dir, os.path.join(log_dir, log_name), env, group))
            if not group:
                group = pids[0]
                write_atomic(os.path.join(run_dir, "pgid"), str(group), durable=False)
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, float(timeout))
        code = wait_all(pids)
        signal.setitimer(signal.ITIMER_REAL, 0)
        status = "Completed" if code == 0 else "Failed"
        if code != 0 and len(pids) > 1:  # one process failed: the others go too
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            killed = stop(group, pids)[1]
    except (Cancelled, TimedOut) as e:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        status = "Canceled" if isinstance(e, Cancelled) else "TimedOut"
        if not pids:  # cancelled before the job existed
            code = None
        else:
            code, killed = stop(group, pids)
    if group:
        try:  # children the job left behind in its group go with it
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    log_lost = bool(pids) and not os.path.exists(log_path)  # the job deleted it
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
