"""A compute's job slots: an instance has one, a cluster max_instances, no compute as many as the
machine has cores. A job takes one per node it runs on, all at once, as a Lease: the one way to
hold slots, given back by its `with` block (or by its owner's one release), never by hand.

The apply engine takes leases in its feeders (blocking, in plan order); the sweep and pipeline
controllers take them for their trials and steps (without blocking: a full pool means "later")."""

from __future__ import annotations

import os
import threading


def unbound() -> int:
    """The slots of jobs that name no compute: one per core."""
    return os.cpu_count() or 1


class Lease:
    """Slots held for one job; released once, whichever way its holder ends (idempotent)."""

    __slots__ = ("count", "_pool")

    def __init__(self, pool: Pool | None, count: int):
        self._pool, self.count = pool, count

    def release(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool._give_back(self.count)

    @property
    def held(self) -> bool:
        return self._pool is not None

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *_) -> None:
        self.release()


NONE = Lease(None, 0)  # for what takes no slot (a wait for a run that holds its nodes already)


class Pool:
    """`total` slots. `take` gives a Lease of `count` of them (at most `total`: validate refuses
    more, and a compute changed since cannot block a job forever)."""

    def __init__(self, name: str, total: int):
        self.name, self.total = name, max(1, total)
        self.free = self.total
        self._needs: list[int] = []  # what each taker blocked in take() waits for
        self._closed = False
        self._cond = threading.Condition()

    def take(self, count: int = 1, block: bool = True) -> Lease | None:
        """A lease of `count` slots: waits for them (None if the pool is closed first), or with
        block=False answers None at once when they are not free."""
        count = max(1, min(count, self.total))
        with self._cond:
            if block:
                self._needs.append(count)
                try:
                    self._cond.wait_for(lambda: self._closed or self.free >= count)
                finally:
                    self._needs.remove(count)
            if self._closed or self.free < count:
                return None
            self.free -= count
            return Lease(self, count)

    def close(self) -> None:
        """Wake every taker: nothing more is given out (an apply that stops)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def blocked(self) -> bool:
        """Whether a taker waits for slots that are not free now (one that was just woken for
        them is not: it is on its way)."""
        with self._cond:
            return not self._closed and any(n > self.free for n in self._needs)

    def describe(self) -> str:
        with self._cond:
            return f"{self.total - self.free} of {self.total} slots held"

    def _give_back(self, count: int) -> None:
        with self._cond:
            self.free += count
            assert self.free <= self.total, f"pool {self.name!r}: more slots given back than taken"
            self._cond.notify_all()
