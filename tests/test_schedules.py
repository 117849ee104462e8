"""Schedules (the spec's `schedules:`, az ml schedule create): validate's located errors; an
unmodified schedule file (its create_job relative to it); on the local target the plan and status
list each schedule with its next three fire times in its time zone and nothing fires by itself
(its job runs by hand with apply --only); a data import schedule is planned as Azure-only; destroy
forgets them. The azure target's tests are in test_azure_schedules.py."""

import datetime as dt
import json
import re
import textwrap
from pathlib import Path

import pytest
from conftest import run_mlrun

from runner import triggers

LAB = """\
name: sched
workspace: {name: ws-sched}
jobs:
  train:
    command: echo trained > ./outputs/model.txt
  other:
    command: echo other
schedules:
  nightly:
    trigger: {type: cron, expression: "0 9 * * *", time_zone: Pacific Standard Time}
    create_job: train
  hourly: {file: schedules/hourly.yml}
  paused:
    trigger:
      type: recurrence
      frequency: week
      interval: 1
      schedule: {hours: 2, minutes: 0, week_days: [monday]}
    create_job: {job: other, tags: {from: schedule}}
    enabled: false
  imports:
    trigger: {type: cron, expression: "15 10 * * 1", time_zone: Pacific Standard Time}
    import_data: ./import.yml
"""
HOURLY = """\
$schema: https://azuremlschemas.azureedge.net/latest/schedule.schema.json
name: simple_cron_job_schedule
display_name: Simple cron job schedule
description: a simple hourly cron job schedule
trigger:
  type: cron
  expression: "0 * * * *"
  start_time: "2022-07-10T10:00:00"
  time_zone: "Pacific Standard Time"
create_job: ./hello-job.yml
"""
JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: echo hello
environment: azureml:AzureML-sklearn-1.5@latest
"""


def write_lab(root: Path) -> Path:
    (root / "schedules").mkdir()
    (root / "schedules" / "hourly.yml").write_text(HOURLY)
    (root / "schedules" / "hello-job.yml").write_text(JOB)
    (root / "import.yml").write_text("type: mltable\nname: x\n")
    spec = root / "lab.yaml"
    spec.write_text(LAB)
    return spec


BAD = """\
name: sched-bad
workspace: {name: ws-sched}
jobs:
  train: {command: echo hi}
schedules:
  a:
    trigger: {type: cron, expression: "0 25 * * *"}
    create_job: trian
  b:
    trigger: {type: recurrence, frequency: fortnight, interval: 1}
    create_job: ./missing.yml
  c:
    trigger: {type: cron, expression: "0 1 * * *", time_zone: America/Los_Angeles}
  d:
    trigger:
      type: cron
      expression: "0 1 * * *"
      start_time: "2026-02-01T00:00:00"
      end_time: "2026-01-01T00:00:00"
    create_job: {job: train}
    import_data: ./i.yml
  e:
    create_job: azureml:some-job
  f:
    trigger: {type: cron, expression: "15 10 * * 1"}
    import_data: ./nope.yml
"""


def test_wrong_schedules_are_located(tmp_path, mlrun):
    spec = tmp_path / "bad.yaml"
    spec.write_text(BAD)
    code, _, err = mlrun("validate", spec)
    assert code == 1
    f = str(spec)
    assert err.splitlines() == [
        f"{f}:7:39: error: $.schedules.a.trigger.expression: '0 25 * * *': hours '25' is out of "
        "range (0-23)",
        f"{f}:8:17: error: $.schedules.a.create_job: 'trian' is not a job of this spec (did you "
        "mean 'train'? defined: train), azureml:NAME, nor a job file that exists",
        f"{f}:10:44: error: $.schedules.b.trigger.frequency: 'fortnight' is not a frequency (one "
        "of: minute, hour, day, week, month)",
        f"{f}:11:17: error: $.schedules.b.create_job: './missing.yml' is not a job of this spec "
        "(defined: train), azureml:NAME, nor a job file that exists",
        f"{f}:12:3: error: $.schedules.c: missing required key 'create_job' (the job it submits)",
        f"{f}:13:63: error: $.schedules.c.trigger.time_zone: 'America/Los_Angeles' is an IANA "
        "name: Azure takes Windows names ('Pacific Standard Time')",
        f"{f}:19:17: error: $.schedules.d.trigger.end_time: end_time 2026-01-01 00:00:00+00:00 is "
        "not after start_time 2026-02-01 00:00:00+00:00",
        f"{f}:21:18: error: $.schedules.d.import_data: a schedule has create_job or import_data, "
        "not both",
        f"{f}:22:3: error: $.schedules.e: missing required key 'trigger' (cron or recurrence)",
        f"{f}:26:18: error: $.schedules.f.import_data: './nope.yml' is not a file (a data import)",
        f"{f}: 10 errors, 0 warnings",
    ]


def test_an_unknown_trigger_key_is_a_schema_error(tmp_path, mlrun):
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        textwrap.dedent(
            """\
            name: sched-bad
            workspace: {name: ws-sched}
            jobs: {train: {command: echo hi}}
            schedules:
              a:
                trigger: {type: cron, expression: "0 1 * * *", tmie_zone: UTC}
                create_job: train
            """
        )
    )
    code, _, err = mlrun("validate", spec)
    assert code == 1
    assert err.splitlines()[0] == (
        f"{spec}:6:52: error: $.schedules.a.trigger.tmie_zone: unknown key (did you mean "
        "'time_zone'?)"
    )


TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d [+-]\d\d:\d\d"
NEXT = rf"next {TIME}, {TIME}, {TIME}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("sched")
    return write_lab(root)


def test_the_local_plan_lists_next_fire_times_and_how_to_run_by_hand(lab):
    proc = run_mlrun("plan", lab, cwd=lab.parent, check=0)
    lines = {line.split()[1]: line for line in proc.stdout.splitlines() if "schedule." in line}
    nightly = lines["schedule.nightly"]
    assert nightly.startswith("  + schedule.nightly")
    assert "cron '0 9 * * *' Pacific Standard Time -> job.train; next " in nightly
    assert re.search(NEXT, nightly)
    assert all(o in ("-08:00", "-07:00") for o in re.findall(r"[+-]\d\d:\d\d", nightly))
    assert nightly.endswith("here nothing fires by itself: run it with mlrun apply --only train")
    hourly = lines["schedule.hourly"]
    assert "cron '0 * * * *' Pacific Standard Time -> hello-job.yml; next " in hourly
    assert hourly.endswith(
        "here nothing fires by itself (to run its job by hand, add the file to jobs: and mlrun "
        "apply --only that job)"
    )
    paused = lines["schedule.paused"]
    assert "every week (monday at 2:00) UTC -> job.other; disabled: fires nothing" in paused
    assert (
        lines["schedule.imports"]
        .rstrip()
        .endswith("schedule.imports             runs on Azure only (a data import)")
    )
    assert "Plan: 4 to add" in proc.stdout  # the workspace and three schedules
    assert "2 jobs to run" in proc.stdout


def test_apply_makes_them_runs_only_what_it_is_told_and_status_lists_fire_times(lab):
    proc = run_mlrun("apply", "-y", "--only", "train", lab, cwd=lab.parent, check=0)
    assert "schedule.nightly  created" in proc.stdout
    assert "job.train  Completed" in proc.stdout
    assert "job.other" not in proc.stdout.split("JOB")[-1]  # not run: only what --only names
    proc = run_mlrun("status", lab, "--json", cwd=lab.parent, check=0)
    data = json.loads(proc.stdout)
    scheds = {s["address"]: s for s in data["schedules"]}
    assert set(scheds) == {
        "schedule.nightly",
        "schedule.hourly",
        "schedule.paused",
        "schedule.imports",
    }
    nightly = scheds["schedule.nightly"]
    assert nightly["created"] and nightly["enabled"] and nightly["job"] == "train"
    times = [dt.datetime.fromisoformat(t) for t in nightly["next"]]
    assert len(times) == 3 and times == sorted(times)
    trigger = triggers.read(
        {"type": "cron", "expression": "0 9 * * *", "time_zone": "Pacific Standard Time"}
    )
    assert times == trigger.next(times[0] - dt.timedelta(seconds=1))  # the trigger's own
    assert all(t.hour == 9 and t.minute == 0 for t in times)  # 09:00 Pacific, DST or not
    assert scheds["schedule.paused"]["next"] == []
    assert not scheds["schedule.imports"]["created"]
    text = run_mlrun("status", lab, cwd=lab.parent, check=0).stdout
    assert re.search(r"schedule\.nightly\s+cron '0 9 \* \* \*' Pacific Standard Time", text)
    plan = run_mlrun("plan", lab, cwd=lab.parent, check=0).stdout  # listed though unchanged
    assert re.search(r"= schedule\.nightly\s+up to date; cron '0 9", plan)


def test_a_changed_trigger_updates_in_place_and_destroy_forgets_them(lab):
    lab.write_text(LAB.replace('"0 9 * * *"', '"30 6 * * 1-5"'))
    try:
        proc = run_mlrun("plan", lab, cwd=lab.parent, check=0)
        line = next(x for x in proc.stdout.splitlines() if "schedule.nightly" in x)
        assert line.startswith("  ~ schedule.nightly")
        assert "trigger: " in line and "-> job.train; next " in line
        proc = run_mlrun("destroy", "-y", lab, cwd=lab.parent, check=0)
        assert "schedule.nightly  destroyed" in proc.stdout
        state = json.loads((lab.parent / ".mlrun" / "sched.local.json").read_text())
        assert not [a for a in state["resources"] if a.startswith("schedule.")]
    finally:
        lab.write_text(LAB)


def test_export_writes_schedule_files_the_sdk_loads_and_import_reads_them_back(tmp_path, mlrun):
    spec = write_lab(tmp_path)
    code, out, err = mlrun("export", spec, "-o", tmp_path / "out")
    assert code == 0, err
    folder = tmp_path / "out" / "schedules"
    assert sorted(p.name for p in folder.iterdir()) == [
        "hourly.yml",
        "imports.yml",
        "nightly.yml",
        "paused.yml",
    ]
    import yaml

    nightly = yaml.safe_load((folder / "nightly.yml").read_text())
    assert nightly == {
        "$schema": "https://azuremlschemas.azureedge.net/latest/schedule.schema.json",
        "name": "nightly",
        "trigger": {
            "type": "cron",
            "expression": "0 9 * * *",
            "time_zone": "Pacific Standard Time",
        },
        "create_job": "../jobs/train.yml",
    }
    paused = yaml.safe_load((folder / "paused.yml").read_text())
    assert paused["create_job"] == {"job": "../jobs/other.yml", "tags": {"from": "schedule"}}
    assert "enabled" not in paused
    hourly = yaml.safe_load((folder / "hourly.yml").read_text())
    assert hourly["create_job"] == "../../schedules/hello-job.yml"  # the file, where it is
    assert yaml.safe_load((folder / "imports.yml").read_text())["import_data"] == "../../import.yml"
    notes = (out + err).splitlines()
    assert (
        f"note: {folder / 'paused.yml'}: disabled in the spec: after az ml schedule create, "
        "az ml schedule disable --name paused"
    ) in notes
    from azure.ai.ml.entities._load_functions import load_schedule

    loaded = load_schedule(folder / "hourly.yml")  # (the spec's jobs name no environment)
    assert (loaded.name, loaded.trigger.expression) == ("hourly", "0 * * * *")
    assert loaded.create_job.command == "echo hello"

    files = [tmp_path / "out" / "jobs" / f"{n}.yml" for n in ("train", "other")]
    files += [folder / f"{n}.yml" for n in ("nightly", "hourly", "paused")]
    code, out, err = mlrun("import", *files, "-o", tmp_path / "round.yaml")
    assert code == 0, err
    round_trip = yaml.safe_load((tmp_path / "round.yaml").read_text())
    assert round_trip["schedules"] == {
        "nightly": {"file": "out/schedules/nightly.yml", "create_job": "train"},
        "hourly": {"file": "out/schedules/hourly.yml"},
        "paused": {
            "file": "out/schedules/paused.yml",
            "create_job": {"job": "other", "tags": {"from": "schedule"}},
        },
    }
    code, _, err = mlrun("validate", tmp_path / "round.yaml")
    assert code == 0, err
