"""The controller of a parallel job (type: parallel) on the local target: Azure ML's
ParallelRunStep on one machine.

It runs as the job's command (supervised.controller_command), in the job's layer, so status, logs,
cancel, timeouts and adoption after a crash work for it as for any job; it reads RUN_DIR/
parallel.json, written by the local backend with the mini-batches when it submitted the job (for a
pipeline's parallel step, by the pipeline's controller when the step starts, with the input it
splits into mini-batches itself: an upstream step made it), and:
  - starts `workers` processes of the job's Python (the first `python` on the layer's PATH: the
    job's environment) running parallel_worker.py in the working folder; each imports the entry
    script and calls init() once, then run(mini_batch) for each mini-batch it is given; each
    worker's output goes to logs/user/stdout/nodeN/processM.stdout.txt of the working folder;
  - retries a mini-batch whose run() raised, whose worker died, or that took longer than
    `timeout` (its worker is stopped and another started) up to `max_retries` times;
  - fails the job once more mini-batches than mini_batch_error_threshold, or more items than
    error_threshold, failed (-1: never); a failed mini-batch's items, and the items a run() gave
    no row for, are failed items;
  - appends every row run() returns to `append_to` as it comes;
  - logs the counts (MLflow metrics on the job's run) and exits 0, or 1 with the reason in
    RUN_DIR/reason.txt.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import parallel
from ..errors import plural
from ..refs import substitute
from . import contract, mlflow_db, supervised

MODULE = __name__
WORKER = Path(__file__).with_name("parallel_worker.py")
FORKS = "MLRUN_PARALLEL_FORKS"  # parallel_worker.FORKS (that file runs without mlrun)
POLL = 0.2  # seconds between looks at the workers' clocks


def configure(
    fields: dict,
    values: dict[tuple[str, str], str],
    output_files: dict[str, str],
    batches: list[list[str]] | None = None,
    tabular: dict | None = None,
    source: dict | None = None,
) -> contract.ParallelConfig:
    """A parallel job's (or step's) configuration: its settings with Azure's defaults, its
    program arguments with `values` (what ${{inputs.X}} and ${{outputs.Y}} stand for) put in, the
    file returned rows are appended to (the uri_file output, else parallel_run_step.txt in the
    folder), and its mini-batches (or the `source` the controller splits)."""
    s = parallel.settings(fields)
    append = parallel.binding(s.task.get("append_row_to"), "outputs")
    append_to = None
    if append is not None:
        out = Path(values[("outputs", append)])
        append_to = str(out if append in output_files else out / parallel.APPEND_FILE)
    arguments = substitute(s.task.get("program_arguments") or "", values, blank=("inputs",))
    return contract.ParallelConfig(
        entry_script=str(s.task.get("entry_script")),
        arguments=shlex.split(arguments),
        batches=batches,
        tabular=tabular,
        workers=s.workers,
        per_instance=s.per_instance,
        max_retries=s.max_retries,
        timeout=s.timeout,
        error_threshold=s.error_threshold,
        mini_batch_error_threshold=s.mini_batch_error_threshold,
        logging_level=s.logging_level,
        append_to=append_to,
        batch_size=s.batch_text or "default",
        source=source,
    )


@dataclass
class Batch:
    number: int
    files: list[str]
    tries: int = 0
    errors: list[str] = field(default_factory=list)


class Forked:
    """A worker forked by the first one (not this process's child): its pid, once it says it."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and self.pid is not None and not supervised.alive(self.pid):
            self.returncode = -1  # its parent reaped it: the code is not known here
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.pid is not None and self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0)
            time.sleep(0.02)
        return self.returncode if self.returncode is not None else -1

    def kill(self) -> None:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Worker:
    """A worker process, the pipes to it, and the mini-batch it is running."""

    def __init__(self, number: int, cfg: contract.ParallelConfig, work: Path, out) -> None:
        self.number, self.ready, self.gone = number, False, False
        self.batch: Batch | None = None
        self.since = 0.0
        self.log_dir = work / "logs" / "user" / "stdout" / f"node{number // cfg.per_instance}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log = self.log_dir / f"process{number:03d}.stdout.txt"
        requests_r, requests_w = os.pipe()
        answers_r, answers_w = os.pipe()
        self.theirs = (requests_r, answers_w)  # the worker's ends, closed once it has them
        self.proc: subprocess.Popen | Forked = Forked()
        self.requests = os.fdopen(requests_w, "w")
        threading.Thread(target=self._read, args=(os.fdopen(answers_r), out), daemon=True).start()

    @classmethod
    def start(
        cls, numbers: list[int], python: str, cfg: contract.ParallelConfig, work: Path, out
    ) -> list[Worker]:
        """Workers `numbers`: the first a process of the job's Python, which imports the entry
        script and forks the others."""
        workers = [cls(n, cfg, work, out) for n in numbers]
        first, others = workers[0], workers[1:]
        forks = [[*w.theirs, str(w.log)] for w in others]
        with open(first.log, "ab") as log:
            first.proc = subprocess.Popen(
                [python, str(WORKER), *map(str, first.theirs), cfg.entry_script]
                + [cfg.logging_level, *cfg.arguments],
                cwd=work,
                pass_fds=[fd for w in workers for fd in w.theirs],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, FORKS: json.dumps(forks)},
            )
        for w in workers:
            for fd in w.theirs:
                os.close(fd)
        return workers

    def _read(self, answers, out: queue.Queue) -> None:
        for line in answers:
            out.put((self, json.loads(line)))
        out.put((self, None))  # it exited

    def give(self, batch: Batch, tabular: dict | None) -> None:
        self.batch, self.since = batch, time.monotonic()
        self.requests.write(
            json.dumps({"id": batch.number, "files": batch.files, "tabular": tabular})
        )
        self.requests.write("\n")
        self.requests.flush()

    def stop(self, kill: bool = False) -> None:
        self.gone = True
        try:
            self.requests.close()
        except OSError:
            pass
        if kill and self.proc.poll() is None:
            self.proc.kill()


class ParallelController:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.work = run_dir / "work"
        self.cfg = contract.read_parallel(run_dir / contract.PARALLEL)
        self.answers: queue.Queue = queue.Queue()
        self.pending: collections.deque[Batch] = collections.deque()
        self.workers: list[Worker] = []
        self.done = 0
        self.failed: list[Batch] = []
        self.items, self.failed_items, self.appended = 0, 0, 0
        self.reason: str | None = None

    def log(self, message: str) -> None:
        print(f"[parallel] {message}", flush=True)

    # --- the run -------------------------------------------------------------------------------

    def split(self) -> list[list[str]]:
        """The mini-batches: made at submission, or now from the input (a pipeline step's)."""
        if self.cfg.batches is not None:
            return self.cfg.batches
        source = self.cfg.source or {}
        if not source.get("path"):
            raise ValueError("the input that input_data names has no value")
        found = parallel.source(Path(source["path"]), source.get("type"))
        size = parallel.batch_size(self.cfg.batch_size)  # None: "default"
        batches = parallel.mini_batches(found.files, size, found.tabular is not None)
        self.cfg.batches, self.cfg.tabular = [[str(f) for f in b] for b in batches], found.tabular
        return self.cfg.batches

    def run(self) -> int:
        cfg = self.cfg
        python = shutil.which("python")
        if python is None:
            return self.fail("the job's environment has no python on its PATH")
        try:
            batches = self.split()
        except (OSError, ValueError) as e:
            return self.fail(f"input_data ({(cfg.source or {}).get('path')}): {e}")
        self.pending.extend(Batch(i, f) for i, f in enumerate(batches, 1))
        files = sum(len(b) for b in batches)
        count = min(cfg.workers, len(batches))
        self.log(
            f"{files} files in {len(batches)} mini-batches (mini_batch_size {cfg.batch_size}), "
            f"{plural(count, 'worker')} ({python}), each mini-batch tried at most "
            f"{1 + cfg.max_retries} times, timeout {cfg.timeout:g}s"
        )
        if cfg.append_to:
            Path(cfg.append_to).parent.mkdir(parents=True, exist_ok=True)
            Path(cfg.append_to).touch()
        if count:  # (no files: nothing to run, as Azure ML's is a run of no mini-batches)
            self.workers = Worker.start(list(range(count)), python, cfg, self.work, self.answers)
        while self.reason is None and (self.pending or any(w.batch for w in self.workers)):
            for w in self.workers:
                if w.ready and w.batch is None and self.pending:
                    w.give(self.pending.popleft(), cfg.tabular)
            try:
                worker, message = self.answers.get(timeout=POLL)
            except queue.Empty:
                worker, message = None, None
            if worker is not None and worker in self.workers:
                self.answer(worker, message, python)
            self.check_clocks(python)
        for w in self.workers:
            w.stop(kill=self.reason is not None)
        for w in self.workers:
            try:
                w.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                w.proc.kill()
        return self.conclude()

    def answer(self, worker: Worker, message: dict | None, python: str) -> None:
        if message is None:  # the worker exited
            if isinstance(worker.proc, Forked) and worker.proc.pid is None:
                self.workers.remove(worker)  # never forked: the first worker says why
                return
            if not worker.ready and not worker.gone:  # before init() returned: it would again
                code = worker.proc.wait()
                self.reason = (
                    f"worker {worker.number} exited before init() returned (exit code {code})"
                )
                return
            if worker.batch is not None:
                code = worker.proc.wait()
                self.retry(worker.batch, f"its worker exited (exit code {code})")
            self.replace(worker, python)
        elif "init_error" in message:
            self.log(f"worker {worker.number}: init() failed:\n{message['init_error'].rstrip()}")
            last = message["init_error"].strip().splitlines()[-1]
            self.reason = f"the entry script {self.cfg.entry_script} failed to start: {last}"
        elif "pid" in message:
            if isinstance(worker.proc, Forked):
                worker.proc.pid = int(message["pid"])
        elif message.get("ready"):
            worker.ready = True
        elif worker.batch is not None and message.get("id") == worker.batch.number:
            batch, worker.batch = worker.batch, None
            if message["ok"]:
                self.succeeded(batch, message["items"], message["rows"])
            else:
                self.retry(batch, message["error"])

    def check_clocks(self, python: str) -> None:
        """A mini-batch running longer than the timeout: its worker stopped, the batch retried."""
        now = time.monotonic()
        for w in list(self.workers):
            if w.batch is not None and now - w.since > self.cfg.timeout:
                batch, w.batch = w.batch, None
                w.stop(kill=True)
                self.retry(batch, f"timed out after {self.cfg.timeout:g}s (retry_settings.timeout)")
                self.replace(w, python)

    def replace(self, worker: Worker, python: str) -> None:
        """Another process in the place of one that exited or was stopped, if work is left."""
        worker.stop(kill=True)
        index = self.workers.index(worker)
        if self.pending and self.reason is None:
            (self.workers[index],) = Worker.start(
                [worker.number], python, self.cfg, self.work, self.answers
            )
        else:
            self.workers.pop(index)

    def succeeded(self, batch: Batch, items: int, rows: list[str]) -> None:
        self.done += 1
        self.items += items
        if self.cfg.append_to and rows:
            with open(self.cfg.append_to, "a", encoding="utf-8") as f:
                f.write("".join(r + "\n" for r in rows))
            self.appended += len(rows)
        if len(rows) < items:  # items run() gave no row for
            self.count_failed_items(
                items - len(rows),
                f"mini-batch {batch.number} returned {len(rows)} rows for {items} items",
            )

    def retry(self, batch: Batch, error: str) -> None:
        batch.tries += 1
        last = error.strip().splitlines()[-1] if error.strip() else error
        tries = 1 + self.cfg.max_retries
        self.log(f"mini-batch {batch.number} failed (try {batch.tries} of {tries}): {last}")
        if "\n" in error.strip():
            print(error.rstrip(), flush=True)
        if batch.tries < tries:
            self.pending.append(batch)
            return
        self.failed.append(batch)
        threshold = self.cfg.mini_batch_error_threshold
        if threshold >= 0 and len(self.failed) > threshold and self.reason is None:
            self.reason = (
                f"mini_batch_error_threshold {threshold} exceeded: {len(self.failed)} mini-batches "
                f"failed ({', '.join(str(b.number) for b in self.failed)})"
            )
        self.count_failed_items(len(batch.files), f"mini-batch {batch.number} failed")

    def count_failed_items(self, count: int, why: str) -> None:
        self.failed_items += count
        threshold = self.cfg.error_threshold
        if threshold >= 0 and self.failed_items > threshold and self.reason is None:
            self.reason = (
                f"error_threshold {threshold} exceeded: {self.failed_items} items failed "
                f"(the last: {why})"
            )

    # --- the end -------------------------------------------------------------------------------

    def conclude(self) -> int:
        left = len(self.pending) + sum(1 for w in self.workers if w.batch)
        self.log(
            f"mini-batches: {self.done} succeeded, {len(self.failed)} failed"
            + (f", {left} not run" if self.reason and left else "")
            + f"; items: {self.items} processed, {self.failed_items} failed"
            + (
                f"; {self.appended} rows appended to {self.cfg.append_to}"
                if self.cfg.append_to
                else ""
            )
        )
        self.record()
        if self.reason is not None:
            return self.fail(self.reason)
        return 0

    def record(self) -> None:
        """The counts as the job's MLflow metrics, the settings as its params: written straight
        into the workspace's store (mlflow_db), else through MLflow (a tracking server's URI)."""
        metrics = {
            "mini_batches_succeeded": self.done,
            "mini_batches_failed": len(self.failed),
            "items_processed": self.items,
            "items_failed": self.failed_items,
            "rows_appended": self.appended,
        }
        params = {
            "mini_batch_size": self.cfg.batch_size,
            "mini_batches": len(self.cfg.batches or []),
            "workers": self.cfg.workers,
        }
        run_id, uri = os.environ["MLFLOW_RUN_ID"], os.environ["MLFLOW_TRACKING_URI"]
        store = mlflow_db.Store.for_uri(uri)
        if store is not None:
            store.log_params(run_id, {k: str(v) for k, v in params.items()})
            store.log_metrics(run_id, metrics)
            return
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        at = int(time.time() * 1000)
        MlflowClient(uri).log_batch(
            run_id,
            metrics=[Metric(k, v, at, 0) for k, v in metrics.items()],
            params=[Param(k, str(v)) for k, v in params.items()],
        )

    def fail(self, reason: str) -> int:
        self.log(f"error: {reason}")
        (self.run_dir / supervised.REASON).write_text(reason + "\n")
        return 1


def main(run_dir: str) -> int:
    """The controller of RUN_DIR (supervised.controller_command's `main`)."""
    code = ParallelController(Path(run_dir)).run()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # MLflow's teardown serves no one: every record is written
