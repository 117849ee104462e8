"""Data imports (a `data:` entry with a `source:`, az ml data import): checked offline against
azure-ai-ml's DatabaseSchema and FileSystemSchema, planned `runs on Azure only` and skipped by the
local target (apply, status and report say so), imported through the SDK's data.import_data on
the azure one and waited on as a job."""

import json

import pytest
from conftest import run_mlrun

from runner.spec import check_file

SQL = """\
$schema: http://azureml/sdk-2-0/DataImport.json
type: mltable
name: sales_rows
source:
  type: database
  query: select * from sales
  connection: azureml:my_sql_connection
path: azureml://datastores/workspaceblobstore/paths/sales/${{name}}
"""
LAB = """\
name: di-lab
workspace: {name: mlw-di, resource_group: rg-di, location: eastus}
data:
  sales: {file: sql-import.yml}
  bucket:
    source: {type: file_system, path: exports/titanic.csv, connection: azureml:my_s3}
    path: azureml://datastores/workspaceblobstore/paths/s3/${{name}}
    description: copied from S3
jobs:
  hello:
    command: echo hello
    environment: azureml:AzureML-sklearn-1.5@latest
"""
BROKEN = """\
name: di-broken
workspace: {name: mlw-di, resource_group: rg-di, location: eastus}
data:
  a:
    type: uri_folder
    source: {type: database, qurey: select 1, connection: azureml:c}
    path: azureml://datastores/workspaceblobstore/paths/a
  b:
    source: {type: file_system, path: x.csv}
    path: ./here
  c:
    source: {type: blob, connection: azureml:c}
    path: azureml://datastores/workspaceblobstore/paths/c
  d:
    source: {type: database, query: 3, connection: azureml:c}
    path: azureml://datastores/workspaceblobstore/paths/d
"""


def write_lab(folder, azure=False):
    (folder / "sql-import.yml").write_text(SQL)
    lab = LAB
    if azure:
        lab += 'targets:\n  azure: {subscription_id: "${{env.AZURE_SUBSCRIPTION_ID}}"}\n'
    (folder / "lab.yaml").write_text(lab)
    (folder / "broken.yaml").write_text(BROKEN)
    return folder


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return write_lab(tmp_path_factory.mktemp("data-import"))


@pytest.fixture(scope="module")
def applied(lab):
    plan = run_mlrun("plan", "lab.yaml", cwd=lab, check=0).stdout
    apply = run_mlrun("apply", "-y", "lab.yaml", cwd=lab, check=0).stdout
    status = json.loads(run_mlrun("status", "lab.yaml", "--json", cwd=lab, check=0).stdout)
    shown = run_mlrun("status", "lab.yaml", cwd=lab, check=0).stdout
    report = json.loads(
        run_mlrun("report", "lab.yaml", "--format", "json", cwd=lab, check=0).stdout
    )
    return {"plan": plan, "apply": apply, "status": status, "shown": shown, "report": report}


def test_imports_validate_inline_and_from_an_az_ml_file(lab):
    assert [str(p) for p in check_file(lab / "lab.yaml").problems] == []


def test_a_broken_import_gets_every_problem_located(lab):
    doc = check_file(lab / "broken.yaml")
    got = [f"{p.line}:{p.col}: {p.path}: {p.message}" for p in doc.problems]
    assert got == [
        "12:20: $.data.c.source.type: 'blob' is not one of: database, file_system",
        "6:30: $.data.a.source.qurey: unknown key (did you mean 'query'?)",
        "5:11: $.data.a.type: an import from a database makes mltable data (azure-ai-ml's "
        "import_data sets it): type: mltable",
        "9:5: $.data.b.source: missing required key 'connection'",
        "10:11: $.data.b.path: a data import writes to a datastore: path is "
        "azureml://datastores/NAME/paths/FOLDER/${{name}}",
        "15:37: $.data.d.source.query: expected a string, got an integer",
    ]


def test_the_local_plan_marks_them_azure_only(applied):
    plan = applied["plan"]
    assert (
        "= data.sales                   runs on Azure only "
        "(data import from database azureml:my_sql_connection)" in plan
    )
    assert (
        "= data.bucket                  runs on Azure only "
        "(data import from file_system azureml:my_s3)" in plan
    )
    assert "Plan: 1 to add, 0 to change, 0 to replace, 0 to destroy, 1 job to run." in plan


def test_apply_status_and_report_say_they_were_skipped(applied, lab):
    skipped = [
        line.split(None, 1)[1] for line in applied["apply"].splitlines() if "skipped" in line
    ]
    assert skipped == [
        "data.sales  skipped  runs on Azure only (data import from database "
        "azureml:my_sql_connection)",
        "data.bucket  skipped  runs on Azure only (data import from file_system azureml:my_s3)",
    ]
    rows = {r["address"]: r for r in applied["status"]["resources"]}
    assert rows["data.sales"]["skipped"].startswith("runs on Azure only (data import")
    assert "  data.bucket                      skipped    runs on Azure only" in applied["shown"]
    data = {d["name"]: d for d in applied["report"]["data"]}
    assert data["sales"]["type"] == "mltable" and data["sales"]["version"] is None
    assert data["bucket"]["type"] == "uri_folder"
    assert data["bucket"]["skipped"] == (
        "runs on Azure only (data import from file_system azureml:my_s3)"
    )
    state = json.loads((lab / ".mlrun" / "di-lab.local.json").read_text())
    assert not [a for a in state["resources"] if a.startswith("data.")]
    plan = run_mlrun("plan", "lab.yaml", "--detailed-exitcode", cwd=lab, check=0).stdout
    assert plan.endswith("No changes. Everything is up to date.\n")


@pytest.mark.azure
def test_azure_imports_them_through_the_sdk_and_waits(azure_emulator, tmp_path):
    from test_azure import az

    write_lab(tmp_path, azure=True)
    plan = az(azure_emulator, "plan", "lab.yaml", cwd=tmp_path, check=0).stdout
    assert (
        "+ data.sales                   mltable v1 (import from database "
        "azureml:my_sql_connection)" in plan
    )
    assert "runs on Azure only" not in plan
    apply = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=tmp_path, check=0).stdout
    assert "data.sales  created" in apply and "data.bucket  created" in apply
    state = json.loads((tmp_path / ".mlrun" / "di-lab.azure.json").read_text())
    jobs = {
        n: state["resources"][f"data.{n}"]["details"]["import_job"] for n in ("sales", "bucket")
    }
    stored = azure_emulator.call("GET", "/_emulator/state")["resources"]
    body = next(r for k, r in stored.items() if k.endswith(f"/jobs/{jobs['sales']}"))["properties"]
    assert body["jobType"] == "Pipeline"
    assert body["properties"]["azureml.materializationAssetName"] == "sales"
    (node,) = body["jobs"].values()
    assert node["type"] == "data_transfer" and node["task"] == "import_data"
    assert node["source"]["type"] == "database"
    assert node["source"]["query"] == "select * from sales"
    assert node["source"]["connection"] == "azureml:my_sql_connection"
    sink = node["outputs"]["sink"]
    assert sink["name"] == "sales" and sink["version"] == "1"
    assert sink["uri"] == "azureml://datastores/workspaceblobstore/paths/sales/${{name}}"
    status = {
        k: r["properties"]["status"] for k, r in stored.items() if k.endswith(tuple(jobs.values()))
    }
    assert set(status.values()) == {"Completed"}
    registered = [
        k for k in stored if "/data/sales/versions/1" in k or "/data/bucket/versions/1" in k
    ]
    assert len(registered) == 2  # the import registered each version
    again = az(azure_emulator, "plan", "lab.yaml", "--detailed-exitcode", cwd=tmp_path, check=0)
    assert "= data.sales" not in again.stdout and again.stdout.endswith(
        "No changes. Everything is up to date.\n"
    )


def test_export_writes_the_dataimport_file_the_sdk_loads(lab, tmp_path):
    import yaml
    from azure.ai.ml.entities import DataImport

    run_mlrun("export", "lab.yaml", "-o", tmp_path / "out", cwd=lab, check=0)
    path = tmp_path / "out" / "data" / "bucket.yml"
    loaded = DataImport._load(data=yaml.safe_load(path.read_text()), yaml_path=path)
    assert (loaded.name, loaded.type) == ("bucket", "uri_folder")
    assert loaded.path == "azureml://datastores/workspaceblobstore/paths/s3/${{name}}"
    assert type(loaded.source).__name__ == "FileSystem"
    assert (loaded.source.path, loaded.source.connection) == (
        "exports/titanic.csv",
        "azureml:my_s3",
    )
    sales = yaml.safe_load((tmp_path / "out" / "data" / "sales.yml").read_text())
    assert sales["$schema"] == "http://azureml/sdk-2-0/DataImport.json"
    assert sales["source"]["query"] == "select * from sales"
