"""A schedule's trigger (azure-ai-ml's CronTrigger and RecurrenceTrigger fields) read, checked and
its next fire times computed, in the trigger's time zone (a Windows name, see timezones.py).

Cron: the five fields Azure takes (NCronTab: minutes hours days months weekdays), each `*`, a
number, a name (JAN, MON), a range `a-b`, a step `*/n` or `a-b/n`, or a list of those; weekdays
0-6 from Sunday (7 is Sunday too). As NCronTab does, a day must match both the days and the
weekdays fields (not either, as Vixie cron has it when both are restricted).

Recurrence: every `interval` minutes, hours, days, weeks or months counted from the start time
(the moment of asking when there is none), at the schedule's hours and minutes (default: the start
time's), on its week_days (week) or month_days (month). A local time that a clock change skips
fires at the same instant an hour later in wall time; one it repeats fires once. Stdlib only."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from . import timezones

FIELDS = ("minutes", "hours", "days", "months", "weekdays")
RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
WEEK_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
FREQUENCIES = ("minute", "hour", "day", "week", "month")
HORIZON_DAYS = 366 * 8  # a trigger that fires in none of these days never fires (Feb 30)
UTC = "UTC"


class TriggerError(ValueError):
    """A trigger's field that is wrong: `field` names it (under the trigger)."""

    def __init__(self, field: tuple, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 Sunday .. 6 Saturday

    def times(self, day: dt.date) -> list[dt.time]:
        if day.month not in self.months or day.day not in self.days:
            return []
        if (day.isoweekday() % 7) not in self.weekdays:
            return []
        return [dt.time(h, m) for h in sorted(self.hours) for m in sorted(self.minutes)]


def parse_cron(expression: str) -> Cron:
    """`0 2 * * *` -> Cron; a TriggerError naming the expression otherwise."""
    parts = expression.split()
    if len(parts) != 5:
        raise TriggerError(
            ("expression",),
            f"'{expression}' has {len(parts)} field{'s' * (len(parts) != 1)}: a cron expression "
            "has 5 (minutes hours days months weekdays)",
        )
    sets = [_cron_field(p, i, expression) for i, p in enumerate(parts)]
    weekdays = frozenset(d % 7 for d in sets[4])
    return Cron(sets[0], sets[1], sets[2], sets[3], weekdays)


def _cron_field(text: str, index: int, expression: str) -> frozenset[int]:
    low, high = RANGES[index]
    names = {3: MONTHS, 4: DAYS}.get(index, ())
    out: set[int] = set()

    def bad(why: str) -> TriggerError:
        return TriggerError(("expression",), f"'{expression}': {FIELDS[index]} '{text}' {why}")

    def number(s: str) -> int:
        if s.upper() in names:
            return names.index(s.upper()) + (1 if index == 3 else 0)
        if not s.isdigit():
            raise bad(f"is not a number from {low} to {high}" + (" or a name" if names else ""))
        value = int(s)
        if not low <= value <= high:
            raise bad(f"is out of range ({low}-{high})")
        return value

    for item in text.split(","):
        span, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise bad("has a step that is not a positive number")
            step = int(step_text)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            a, _, b = span.partition("-")
            first, last = number(a), number(b)
            if first > last:
                raise bad(f"has a range that goes down ({first}-{last})")
        else:
            first = number(span)
            last = high if step_text else first
        out.update(range(first, last + 1, step))
    return frozenset(out)


@dataclass(frozen=True)
class Recurrence:
    frequency: str  # minute, hour, day, week, month
    interval: int
    hours: tuple[int, ...] = ()  # the schedule's; empty: the start time's
    minutes: tuple[int, ...] = ()
    week_days: tuple[int, ...] = ()  # 0 Monday .. 6 Sunday (date.weekday())
    month_days: tuple[int, ...] = ()


def parse_recurrence(block: dict) -> Recurrence:
    """A recurrence trigger's fields -> Recurrence; a TriggerError naming the field otherwise."""
    frequency = str(block.get("frequency", "")).lower()
    if frequency not in FREQUENCIES:
        raise TriggerError(
            ("frequency",),
            f"'{block.get('frequency')}' is not a frequency (one of: {', '.join(FREQUENCIES)})",
        )
    interval = block.get("interval")
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise TriggerError(("interval",), f"{interval!r} is not a positive whole number")
    pattern = block.get("schedule") or {}
    if not isinstance(pattern, dict):
        raise TriggerError(("schedule",), "a schedule is a mapping (hours, minutes, ...)")
    if pattern:
        for key in ("hours", "minutes"):
            if key not in pattern:
                raise TriggerError(("schedule",), f"missing required key '{key}'")
    hours = _ints(pattern, "hours", 0, 23)
    minutes = _ints(pattern, "minutes", 0, 59)
    month_days = _ints(pattern, "month_days", 1, 31)
    week_days = []
    for day in _list(pattern.get("week_days")):
        if str(day).lower() not in WEEK_DAYS:
            raise TriggerError(
                ("schedule", "week_days"),
                f"'{day}' is not a day of the week (one of: {', '.join(WEEK_DAYS)})",
            )
        week_days.append(WEEK_DAYS.index(str(day).lower()))
    return Recurrence(
        frequency, interval, hours, minutes, tuple(sorted(set(week_days))), month_days
    )


def _list(value) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]


def _ints(pattern: dict, key: str, low: int, high: int) -> tuple[int, ...]:
    out = []
    for value in _list(pattern.get(key)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise TriggerError(
                ("schedule", key), f"{value!r} is not a whole number from {low} to {high}"
            )
        out.append(value)
    return tuple(sorted(set(out)))


# --- the trigger and its fire times -------------------------------------------------------------


@dataclass(frozen=True)
class Trigger:
    rule: Cron | Recurrence
    zone_name: str  # the Windows name, as the spec gives it
    zone: ZoneInfo
    start: dt.datetime | None  # aware
    end: dt.datetime | None

    def next(self, after: dt.datetime, count: int = 3) -> list[dt.datetime]:
        """The next `count` fire times strictly after `after` (aware), in the trigger's zone;
        fewer when the trigger ends (or never fires) first."""
        out: list[dt.datetime] = []
        for when in self._times(after):
            if self.end is not None and when > self.end:
                break
            if out and when <= out[-1]:
                continue  # a skipped wall time is the instant an hour later fires too: once
            if when > after and (self.start is None or when >= self.start):
                out.append(when)
                if len(out) == count:
                    break
        return out

    def _times(self, after: dt.datetime) -> Iterator[dt.datetime]:
        anchor = (self.start or after).astimezone(self.zone)
        rule = self.rule
        if isinstance(rule, Recurrence) and rule.frequency in ("minute", "hour"):
            yield from self._every(rule, anchor, after)
            return
        first = max(anchor, after.astimezone(self.zone)).date()
        for offset in range(HORIZON_DAYS):
            day = first + dt.timedelta(days=offset)
            times = rule.times(day) if isinstance(rule, Cron) else _times_on(rule, anchor, day)
            for t in times:
                yield _local(day, t, self.zone)

    def _every(self, rule: Recurrence, anchor: dt.datetime, after: dt.datetime):
        """Every `interval` minutes (or hours, at the schedule's minutes) from the anchor, in
        elapsed time."""
        step = dt.timedelta(minutes=rule.interval)
        minutes: tuple[int, ...] = (0,)
        if rule.frequency == "hour":
            step = dt.timedelta(hours=rule.interval)
            minutes = rule.minutes or (anchor.minute,)
            anchor = anchor.replace(minute=0, second=0, microsecond=0)
        skip = max(0, int((after - anchor) / step) - 1)
        base = anchor + skip * step
        while True:
            for m in minutes:
                yield (base + dt.timedelta(minutes=m)).astimezone(self.zone)
            base += step


def _times_on(rule: Recurrence, anchor: dt.datetime, day: dt.date) -> list[dt.time]:
    """The times of day a day/week/month recurrence fires on `day` (none before the anchor's day,
    nor in a period the interval skips)."""
    start = anchor.date()
    if day < start:
        return []
    if rule.frequency == "day":
        if (day - start).days % rule.interval:
            return []
    elif rule.frequency == "week":
        weeks = (day - start + dt.timedelta(days=start.weekday())).days // 7
        if weeks % rule.interval or day.weekday() not in (rule.week_days or (start.weekday(),)):
            return []
    else:  # month
        months = (day.year - start.year) * 12 + day.month - start.month
        if months % rule.interval or day.day not in (rule.month_days or (start.day,)):
            return []
    hours = rule.hours or (anchor.hour,)
    minutes = rule.minutes or (anchor.minute,)
    return [dt.time(h, m) for h in hours for m in minutes]


def _local(day: dt.date, t: dt.time, zone: ZoneInfo) -> dt.datetime:
    """A wall-clock time in `zone`, normalised (a skipped time becomes the instant it names)."""
    naive = dt.datetime.combine(day, t)
    return naive.replace(tzinfo=zone).astimezone(dt.UTC).astimezone(zone)


def parse_time(value, zone: ZoneInfo, key: str) -> dt.datetime:
    """A trigger's start_time/end_time: ISO 8601, in the trigger's zone unless it names an
    offset."""
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, dt.date):
        when = dt.datetime.combine(value, dt.time())
    else:
        try:
            when = dt.datetime.fromisoformat(str(value).replace(" ", "T"))
        except ValueError:
            raise TriggerError(
                (key,), f"'{value}' is not a date and time (YYYY-MM-DDThh:mm:ss)"
            ) from None
    return when.replace(tzinfo=zone) if when.tzinfo is None else when


def read(block: dict) -> Trigger:
    """A trigger's fields (type cron or recurrence) -> Trigger; a TriggerError naming the field
    that is wrong otherwise."""
    kind = block.get("type")
    if kind == "cron":
        if not isinstance(block.get("expression"), str):
            raise TriggerError(("expression",), "a cron trigger needs an expression (a string)")
        rule: Cron | Recurrence = parse_cron(block["expression"])
    elif kind == "recurrence":
        rule = parse_recurrence(block)
    else:
        raise TriggerError(("type",), f"'{kind}' is not a trigger type (cron or recurrence)")
    name = str(block.get("time_zone") or UTC)
    zone = timezones.zone(name)
    if zone is None:
        raise TriggerError(("time_zone",), _unknown_zone(name))
    start = parse_time(block["start_time"], zone, "start_time") if block.get("start_time") else None
    end = parse_time(block["end_time"], zone, "end_time") if block.get("end_time") else None
    if start is not None and end is not None and end <= start:
        raise TriggerError(("end_time",), f"end_time {end} is not after start_time {start}")
    return Trigger(rule, name, zone, start, end)


def _unknown_zone(name: str) -> str:
    import difflib

    iana = {v: k for k, v in timezones.table().items()}
    if name in iana:
        return f"'{name}' is an IANA name: Azure takes Windows names ('{iana[name]}')"
    close = difflib.get_close_matches(name, timezones.names(), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return (
        f"'{name}' is not a time zone Azure takes{hint}: Windows names, as 'UTC' or "
        "'Pacific Standard Time'"
    )


def shown(times: list[dt.datetime]) -> str:
    """`2026-12-08 09:00 -08:00, ...`: fire times in the trigger's zone, with its UTC offset."""
    return ", ".join(
        t.strftime("%Y-%m-%d %H:%M %z")[:-2] + ":" + t.strftime("%z")[-2:] for t in times
    )
