"""A lab's expiry (the spec's `expires_after`: a duration from its first apply, `8h`, `30m`, `2d`,
`1h30m`, or a time, `2026-12-04T18:00:00Z`), pushed out by `apply --extend`: when it has passed,
plan, apply and status say so, and `mlrun destroy --expired` finds the lab on Azure by the tags its
resources carry (TAG_LAB, TAG_EXPIRES). Stdlib only: validate reads it."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

TAG_LAB = "mlrun-lab"
TAG_EXPIRES = "mlrun-expires"
DURATION = re.compile(r"^(?:\d+[dhm])+$")
UNITS = {"d": 86_400, "h": 3_600, "m": 60}


def duration(text: Any) -> int | None:
    """`1h30m` -> 5400 seconds; None when `text` is not a duration."""
    if not isinstance(text, str) or not DURATION.match(text.strip()):
        return None
    return sum(int(n) * UNITS[u] for n, u in re.findall(r"(\d+)([dhm])", text))


def moment(text: Any) -> dt.datetime | None:
    """An ISO 8601 time with its zone (`Z` or an offset), as UTC; None otherwise."""
    if isinstance(text, dt.datetime):
        when = text
    elif isinstance(text, str):
        try:
            when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return when.astimezone(dt.UTC) if when.tzinfo else None


def problem(value: Any) -> str | None:
    """Why `expires_after` cannot be read (None: it can)."""
    if duration(value) or moment(value):
        return None
    return (
        f"'{value}' is neither a duration (30m, 8h, 2d, 1h30m) nor a time with its zone "
        "(2026-12-04T18:00:00Z)"
    )


def expires(value: Any, lab: dict, now: dt.datetime) -> dt.datetime | None:
    """When the lab expires: `value` from its first apply (`lab['started']`; not applied yet:
    `now`), or the time it names, plus what `apply --extend` added (`lab['extended']`)."""
    if value is None:
        return None
    extra = dt.timedelta(seconds=int(lab.get("extended") or 0))
    seconds = duration(value)
    if seconds:
        started = moment(lab.get("started")) or now
        return started + dt.timedelta(seconds=seconds) + extra
    when = moment(value)
    return when + extra if when else None


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def shown(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def warning(value: Any, lab: dict, spec_path: str, now: dt.datetime) -> str | None:
    """What plan, apply and status say once the lab's expiry has passed."""
    when = expires(value, lab, now)
    if when is None or when > now or not lab.get("started"):
        return None
    return (
        f"warning: this lab expired at {shown(when)} (expires_after: {value}): remove it with "
        f"mlrun destroy {spec_path}, or keep it with mlrun apply {spec_path} --extend 2h"
    )
