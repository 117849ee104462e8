"""Views of apply's events: one line per event (logs, CI), or a live table on a terminal."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from .apply import Event

DONE = (
    "created",
    "updated",
    "destroyed",
    "forgotten",
    "skipped",
    "called",
    "Completed",
    "Failed",
    "Canceled",
)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


class LineView:
    """`  0:03 job.train-mlflow  Running  run 3f2a9c1`: one line per event, nothing redrawn."""

    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stdout
        self.start = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, e: Event) -> None:
        line = f"{_clock(e.at - self.start):>6} {e.address}  {e.status}" + (
            f"  {e.message}" if e.message else ""
        )
        with self._lock:
            print(line, file=self.out, flush=True)

    def close(self) -> None:
        pass


class LiveView:
    """A table of every address with its status and elapsed time, redrawn in place."""

    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stdout
        self.rows: dict[str, list] = {}  # address -> [status, message, since, ended]
        self._lock = threading.Lock()
        self._drawn = 0
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    def __call__(self, e: Event) -> None:
        with self._lock:
            row = self.rows.setdefault(e.address, [e.status, e.message, e.at, None])
            row[0], row[1] = e.status, e.message or row[1]
            row[3] = e.at if e.status in DONE else None
            self._draw()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                self._draw()

    def _draw(self) -> None:
        now = time.monotonic()
        width = max([len(a) for a in self.rows] + [10])
        lines = [
            f"  {a:<{width}}  {st:<11} {_clock((end or now) - since):>6}  {msg}"
            for a, (st, msg, since, end) in self.rows.items()
        ]
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        self.out.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.out.flush()
        self._drawn = len(lines)

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._draw()


def view_for(out: TextIO | None = None):
    out = out or sys.stdout
    return LiveView(out) if out.isatty() else LineView(out)
