"""Triggers (triggers.py) and time zones (timezones.py): a cron expression's or a recurrence's next
fire times, in the trigger's (Windows-named) time zone, across clock changes; errors naming the
field; the bundled Windows -> IANA table against azure-ai-ml's TimeZone enum and its generator."""

import datetime as dt
import json

import pytest

from runner import timezones, triggers

UTC = dt.UTC


def at(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def utc(times) -> list[str]:
    return [t.astimezone(UTC).strftime("%Y-%m-%d %H:%M") for t in times]


def cron(expression, zone="UTC", **more):
    return triggers.read({"type": "cron", "expression": expression, "time_zone": zone, **more})


def test_nine_pacific_is_17_utc_in_winter_and_16_utc_in_summer():
    t = cron("0 9 * * *", "Pacific Standard Time")
    assert utc(t.next(at(2026, 1, 10))) == [
        "2026-01-10 17:00",
        "2026-01-11 17:00",
        "2026-01-12 17:00",
    ]
    assert utc(t.next(at(2026, 7, 10))) == [
        "2026-07-10 16:00",
        "2026-07-11 16:00",
        "2026-07-12 16:00",
    ]
    # across the spring change (2026-03-08): the offset moves between two fires
    assert utc(t.next(at(2026, 3, 7, 18))) == [
        "2026-03-08 16:00",
        "2026-03-09 16:00",
        "2026-03-10 16:00",
    ]
    assert triggers.shown(t.next(at(2026, 3, 7), 2)) == (
        "2026-03-07 09:00 -08:00, 2026-03-08 09:00 -07:00"
    )


def test_a_time_the_clock_skips_fires_once_at_the_instant_it_names():
    t = cron("*/30 1-3 * * *", "Pacific Standard Time")  # 02:00-02:59 does not exist on 03-08
    shown = triggers.shown(t.next(at(2026, 3, 8, 8, 59), 5))
    assert shown == (
        "2026-03-08 01:00 -08:00, 2026-03-08 01:30 -08:00, 2026-03-08 03:00 -07:00, "
        "2026-03-08 03:30 -07:00, 2026-03-09 01:00 -07:00"
    )


def test_cron_lists_ranges_steps_names_and_both_day_fields():
    assert utc(cron("15,45 */6 * * *").next(at(2026, 12, 7, 5), 4)) == [
        "2026-12-07 06:15",
        "2026-12-07 06:45",
        "2026-12-07 12:15",
        "2026-12-07 12:45",
    ]
    assert utc(cron("0 10 * JAN-FEB/1 MON-FRI").next(at(2026, 12, 31), 3)) == [
        "2027-01-01 10:00",  # a Friday
        "2027-01-04 10:00",
        "2027-01-05 10:00",
    ]
    # NCronTab: a day matches both the days and the weekdays fields (13th AND a Friday)
    assert utc(cron("0 0 13 * 5").next(at(2026, 1, 1), 2)) == [
        "2026-02-13 00:00",
        "2026-03-13 00:00",
    ]
    assert utc(cron("0 0 * * 7").next(at(2026, 12, 7), 1)) == ["2026-12-13 00:00"]  # Sunday
    assert cron("0 0 30 2 *").next(at(2026, 1, 1)) == []  # never


def test_start_and_end_time_bound_the_fires_in_the_trigger_zone():
    t = cron(
        "0 * * * *",
        "W. Europe Standard Time",
        start_time="2026-12-10T10:00:00",
        end_time="2026-12-10T12:00:00",
    )
    assert utc(t.next(at(2026, 12, 1))) == [
        "2026-12-10 09:00",
        "2026-12-10 10:00",
        "2026-12-10 11:00",
    ]
    assert utc(t.next(at(2026, 12, 10, 10, 30))) == ["2026-12-10 11:00"]


def recurrence(**block):
    return triggers.read({"type": "recurrence", **block})


def test_recurrences_every_period_from_their_start():
    daily = recurrence(
        frequency="day",
        interval=1,
        schedule={"hours": [4, 10], "minutes": [0, 30]},
        start_time="2022-07-10T10:00:00",
        time_zone="Pacific Standard Time",
    )
    assert utc(daily.next(at(2026, 12, 7, 17), 3)) == [
        "2026-12-07 18:00",
        "2026-12-07 18:30",
        "2026-12-08 12:00",
    ]
    # a recurrence keeps its wall time across a clock change, as a cron trigger does
    assert utc(daily.next(at(2026, 7, 7, 16, 59), 1)) == ["2026-07-07 17:00"]  # 10:00 PDT
    fortnight = recurrence(
        frequency="week",
        interval=2,
        schedule={"hours": 9, "minutes": 0, "week_days": ["monday", "friday"]},
        start_time="2026-12-01T00:00:00",  # a Tuesday: its week is week 0
    )
    assert utc(fortnight.next(at(2026, 12, 1), 4)) == [
        "2026-12-04 09:00",
        "2026-12-14 09:00",
        "2026-12-18 09:00",
        "2026-12-28 09:00",
    ]
    monthly = recurrence(
        frequency="month",
        interval=1,
        schedule={"hours": 6, "minutes": 0, "month_days": [31]},
        start_time="2026-01-01T00:00:00",
    )
    assert utc(monthly.next(at(2026, 1, 1), 3)) == [
        "2026-01-31 06:00",
        "2026-03-31 06:00",
        "2026-05-31 06:00",
    ]
    hourly = recurrence(frequency="hour", interval=4, start_time="2026-01-01T00:30:00")
    assert utc(hourly.next(at(2026, 12, 7, 17), 3)) == [
        "2026-12-07 20:30",
        "2026-12-08 00:30",
        "2026-12-08 04:30",
    ]
    every = recurrence(frequency="minute", interval=45, start_time="2026-12-07T00:00:00")
    assert utc(every.next(at(2026, 12, 7, 1), 2)) == ["2026-12-07 01:30", "2026-12-07 02:15"]
    no_start = recurrence(frequency="day", interval=1, schedule={"hours": 2, "minutes": 0})
    assert utc(no_start.next(at(2026, 12, 7, 3), 2)) == ["2026-12-08 02:00", "2026-12-09 02:00"]


@pytest.mark.parametrize(
    "block, field, message",
    [
        (
            {"type": "cron", "expression": "0 0 * *"},
            ("expression",),
            "'0 0 * *' has 4 fields: a cron expression has 5 (minutes hours days months weekdays)",
        ),
        (
            {"type": "cron", "expression": "0 24 * * *"},
            ("expression",),
            "'0 24 * * *': hours '24' is out of range (0-23)",
        ),
        (
            {"type": "cron", "expression": "*/0 * * * *"},
            ("expression",),
            "'*/0 * * * *': minutes '*/0' has a step that is not a positive number",
        ),
        (
            {"type": "cron", "expression": "0 0 * FOO *"},
            ("expression",),
            "'0 0 * FOO *': months 'FOO' is not a number from 1 to 12 or a name",
        ),
        (
            {"type": "cron", "expression": "0 0 * * *", "time_zone": "Europe/Paris"},
            ("time_zone",),
            "'Europe/Paris' is an IANA name: Azure takes Windows names ('Romance Standard Time')",
        ),
        (
            {"type": "recurrence", "frequency": "week", "interval": 0},
            ("interval",),
            "0 is not a positive whole number",
        ),
        (
            {"type": "recurrence", "frequency": "week", "interval": 1, "schedule": {"hours": 1}},
            ("schedule",),
            "missing required key 'minutes'",
        ),
        (
            {
                "type": "recurrence",
                "frequency": "week",
                "interval": 1,
                "schedule": {"hours": 1, "minutes": 0, "week_days": ["funday"]},
            },
            ("schedule", "week_days"),
            "'funday' is not a day of the week (one of: monday, tuesday, wednesday, thursday, "
            "friday, saturday, sunday)",
        ),
        (
            {"type": "cron", "expression": "0 0 * * *", "start_time": "yesterday"},
            ("start_time",),
            "'yesterday' is not a date and time (YYYY-MM-DDThh:mm:ss)",
        ),
    ],
)
def test_a_wrong_trigger_names_its_field(block, field, message):
    with pytest.raises(triggers.TriggerError) as e:
        triggers.read(block)
    assert (e.value.field, str(e.value)) == (field, message)


def test_the_table_maps_every_time_zone_the_sdk_takes():
    from azure.ai.ml.constants import TimeZone

    assert sorted(timezones.names()) == sorted(t.value for t in TimeZone)
    assert all(timezones.zone(t.value) is not None for t in TimeZone)
    assert str(timezones.zone("Pacific Standard Time")) == "America/Los_Angeles"
    assert str(timezones.zone("UTC")) == "Etc/UTC"
    bundled = json.loads(timezones.BUNDLED.read_text())
    assert bundled["as_of"] and "CLDR" in bundled["source"]
    assert timezones.zone("Mars Standard Time") is None


XML = """<supplementalData><windowsZones><mapTimezones otherVersion="7e11800" typeVersion="2021a">
<mapZone other="Pacific Standard Time" territory="001" type="America/Los_Angeles"/>
<mapZone other="Pacific Standard Time" territory="CA" type="America/Vancouver"/>
<mapZone other="Central Standard Time" territory="001" type="America/Chicago"/>
</mapTimezones></windowsZones></supplementalData>"""
JSON = {
    "supplemental": {
        "version": {"_cldrVersion": "48"},
        "windowsZones": {
            "mapTimezones": [
                {"mapZone": {"_other": "UTC", "_type": "Etc/UTC", "_territory": "001"}},
                {"mapZone": {"_other": "UTC", "_type": "Etc/GMT", "_territory": "ZZ"}},
                {
                    "mapZone": {
                        "_other": "Alaskan Standard Time",
                        "_type": "America/Anchorage America/Juneau",
                        "_territory": "001",
                    }
                },
            ]
        },
    }
}


def test_the_generator_reads_cldr_xml_and_cldr_json():
    assert timezones.parse(XML) == (
        {
            "Pacific Standard Time": "America/Los_Angeles",
            "Central Standard Time": "America/Chicago",
        },
        "tz 2021a",
    )
    assert timezones.parse(json.dumps(JSON)) == (
        {"UTC": "Etc/UTC", "Alaskan Standard Time": "America/Anchorage"},
        "48",
    )
