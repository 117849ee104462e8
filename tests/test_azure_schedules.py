"""Schedules on the azure target, through the real azure-ai-ml SDK against the emulator: created
(a command job sent as a one-step pipeline, a job file, azureml:NAME), disabled and enabled with
the SDK's own calls, read back so that a second plan has no changes, and deleted by destroy
before anything else."""

import pytest

LAB = """\
name: azsched
workspace: {name: ws-azsched, resource_group: rg-azsched, location: eastus}
computes: {cpu: {type: amlcompute, size: STANDARD_DS11_V2, max_instances: 1}}
jobs:
  train-model:
    code: ./src
    command: python train.py
    compute: azureml:cpu
    environment: azureml:AzureML-sklearn-1.5@latest
schedules:
  nightly:
    trigger: {type: cron, expression: "0 9 * * *", time_zone: Pacific Standard Time}
    create_job: train-model
    description: every morning, Pacific time
  weekly: {file: weekly.yml}
  remote:
    trigger: {type: cron, expression: "0 2 * * 1"}
    create_job: azureml:some-job
    enabled: false
  imports:
    trigger: {type: cron, expression: "15 10 * * 1", time_zone: Pacific Standard Time}
    import_data: ./imports/warehouse.yml
targets:
  azure: {subscription_id: "${{env.AZURE_SUBSCRIPTION_ID}}"}
"""
WEEKLY = """\
$schema: https://azuremlschemas.azureedge.net/latest/schedule.schema.json
name: simple_recurrence_job_schedule
display_name: Simple recurrence job schedule
trigger:
  type: recurrence
  frequency: week
  interval: 1
  schedule:
    hours: [4, 10]
    minutes: [0, 30]
    week_days: [monday, friday]
  start_time: "2022-07-10T10:00:00"
  time_zone: "W. Europe Standard Time"
create_job:
  job: ./jobs/hello.yml
  tags: {schedule: weekly}
"""
WAREHOUSE = """\
type: mltable
name: warehouse_rows
source:
  type: database
  query: select * from patients
  connection: azureml:my_warehouse_connection
path: azureml://datastores/workspaceblobstore/paths/warehouse/${{name}}
"""
HELLO = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
code: ../src
command: python train.py
environment: azureml:AzureML-sklearn-1.5@latest
compute: azureml:cpu
"""


@pytest.mark.azure
def test_azure_creates_disables_enables_and_deletes_schedules(azure_emulator, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("print('trained')\n")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "hello.yml").write_text(HELLO)
    (tmp_path / "weekly.yml").write_text(WEEKLY)
    (tmp_path / "imports").mkdir()
    (tmp_path / "imports" / "warehouse.yml").write_text(WAREHOUSE)
    spec = tmp_path / "lab.yaml"
    spec.write_text(LAB)

    def az(*args, check=0):
        return azure_emulator.mlrun(*args, "--target", "azure", cwd=tmp_path, check=check)

    def kept() -> dict:
        found = azure_emulator.call("GET", "/_emulator/state")["resources"]
        return {k.rsplit("/", 1)[1]: v for k, v in found.items() if "/schedules/" in k}

    plan = az("plan", "lab.yaml").stdout
    nightly = next(x for x in plan.splitlines() if "schedule.nightly" in x)
    assert "cron '0 9 * * *' Pacific Standard Time -> job.train-model; next " in nightly
    assert "nothing fires by itself" not in nightly  # Azure fires it
    mark = azure_emulator.mark()
    az("apply", "-y", "lab.yaml")
    puts = [
        r["path"].rsplit("/", 1)[1]
        for r in azure_emulator.requests(mark)
        if r["method"] == "PUT" and "/schedules/" in r["path"]
    ]
    assert sorted(puts) == ["imports", "nightly", "remote", "remote", "weekly"]  # remote: disabled
    scheds = kept()
    props = scheds["nightly"]["properties"]
    assert props["trigger"]["triggerType"] == "Cron"
    assert props["trigger"]["timeZone"] == "Pacific Standard Time"
    assert props["description"] == "every morning, Pacific time"
    job = props["action"]["jobDefinition"]
    assert job["jobType"] == "Pipeline" and list(job["jobs"]) == ["train_model"]
    assert props["isEnabled"] is True
    weekly = scheds["weekly"]["properties"]
    assert weekly["trigger"]["schedule"]["weekDays"] == ["Monday", "Friday"]
    assert weekly["trigger"]["timeZone"] == "W. Europe Standard Time"
    assert weekly["action"]["jobDefinition"]["tags"] == {"schedule": "weekly"}
    remote = scheds["remote"]["properties"]
    assert remote["action"]["jobDefinition"]["sourceJobId"] == "azureml:some-job"
    assert remote["isEnabled"] is False
    imports = scheds["imports"]["properties"]["action"]
    assert imports["actionType"] == "ImportData"
    assert imports["dataImportDefinition"]["assetName"] == "warehouse_rows"
    assert (
        imports["dataImportDefinition"]["source"]["connection"] == "azureml:my_warehouse_connection"
    )
    assert az("plan", "lab.yaml").stdout.endswith("No changes. Everything is up to date.\n")

    spec.write_text(LAB.replace("    enabled: false\n", ""))
    line = next(x for x in az("plan", "lab.yaml").stdout.splitlines() if "schedule.remote" in x)
    assert line.startswith("  ~ schedule.remote") and "enabled: False -> True" in line
    az("apply", "-y", "lab.yaml")
    assert kept()["remote"]["properties"]["isEnabled"] is True

    mark = azure_emulator.mark()
    az("destroy", "-y", "lab.yaml")
    deletes = [r["path"] for r in azure_emulator.requests(mark) if r["method"] == "DELETE"]
    names = [p.rsplit("/", 1)[1] for p in deletes]
    assert sorted(names[:4]) == ["imports", "nightly", "remote", "weekly"]  # before the rest
    assert all("/schedules/" in p for p in deletes[:4])
    assert kept() == {}
