"""Datastores (the spec's `datastores:`, az ml datastore create): validate's located errors; on
the local target a datastore is a folder that azureml://datastores/NAME/paths/P inputs read and
outputs write (in the workspace, or where targets.local.datastores maps it), data assets on a
datastore path read the same folder; credentials never reach a file mlrun writes or anything it
prints; on the azure target the real SDK registers, reads back and deletes them."""

import json
import re
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import run_mlrun

KEY = "c2VjcmV0LWFjY291bnQta2V5LWZvci10ZXN0cw=="  # what ${{env.STORAGE_ACCOUNT_KEY}} gives

LOCAL_LAB = """\
name: stores
workspace: {name: ws-stores}
datastores:
  mystore:
    type: azure_blob
    account_name: dp100storage
    container_name: training-data
    credentials: {account_key: "${{env.STORAGE_ACCOUNT_KEY}}"}
  shared: {file: shared.yml}
data:
  patients: {type: uri_folder, path: "azureml://datastores/shared/paths/in/"}
jobs:
  read:
    command: cat ${{inputs.d}}/greeting.txt ${{inputs.d}}/more/n.txt > ./outputs/copy.txt
    inputs:
      d: {type: uri_folder, path: azureml://datastores/mystore/paths/out/}
  write:
    command: >-
      echo hello > ${{outputs.out}}/greeting.txt && mkdir ${{outputs.out}}/more
      && echo 42 > ${{outputs.out}}/more/n.txt && echo noted > ${{outputs.note}}
      && echo "$STORAGE_ACCOUNT_KEY" | wc -c
    outputs:
      out: {type: uri_folder, path: azureml://datastores/mystore/paths/out/}
      note: {type: uri_file, path: "azureml://datastores/mystore/paths/notes/${{name}}/n.txt"}
  asset:
    command: cat ${{inputs.p}}/rows.txt > ./outputs/rows.txt
    inputs:
      p: {type: uri_folder, path: "azureml:patients@latest"}
  pipe:
    type: pipeline
    settings: {default_datastore: azureml:mystore}
    outputs:
      total:
        type: uri_file
        path: "azureml://datastores/${{default_datastore}}/paths/totals/${{name}}/total.txt"
    jobs:
      count:
        command: wc -l < ${{inputs.f}} > ${{outputs.o}}/n.txt
        inputs: {f: {type: uri_file, path: "azureml://datastores/shared/paths/in/rows.txt"}}
        outputs: {o: {type: uri_folder, path: "azureml://datastores/mystore/paths/piped/"}}
      show:
        command: ls ${{inputs.after}} > /dev/null && cat ${{inputs.n}} > ${{outputs.t}}
        inputs:
          n: {type: uri_file, path: "azureml://datastores/mystore/paths/piped/n.txt"}
          after: ${{parent.jobs.count.outputs.o}}
        outputs: {t: "${{parent.outputs.total}}"}
targets:
  local:
    datastores: {shared: ./stand-in}
"""
SHARED = """\
$schema: https://azuremlschemas.azureedge.net/latest/azureDataLakeGen2.schema.json
name: adls_gen2_example
type: azure_data_lake_gen2
description: Datastore pointing to an Azure Data Lake Storage Gen2.
account_name: mytestdatalakegen2
filesystem: my-gen2-container
"""


def write_local_lab(root: Path) -> Path:
    (root / "stand-in" / "in").mkdir(parents=True)
    (root / "stand-in" / "in" / "rows.txt").write_text("a\nb\nc\n")
    (root / "shared.yml").write_text(SHARED)
    spec = root / "lab.yaml"
    spec.write_text(LOCAL_LAB)
    return spec


@pytest.fixture(scope="module")
def local_lab(tmp_path_factory):
    """The lab applied once: the reader comes first in the spec, the writer after it."""
    root = tmp_path_factory.mktemp("stores")
    spec = write_local_lab(root)
    env = {"STORAGE_ACCOUNT_KEY": KEY}
    apply = run_mlrun("apply", "-y", spec, cwd=root, env=env, check=0)
    plan = run_mlrun("plan", spec, "--json", cwd=root, env=env, check=0)
    return {"root": root, "spec": spec, "env": env, "apply": apply, "plan": plan}


def latest_run_dir(root: Path, job: str) -> Path:
    (found,) = sorted((root / ".mlrun" / "local" / "ws-stores" / "runs" / job).iterdir())[-1:]
    return found


# --- validate ------------------------------------------------------------------------------------

BAD_LAB = """\
name: bad
workspace: {name: ws-bad}
datastores:
  mystore:
    type: azure_blob
    account_name: acct
    credentials: {account_key: plain-text-key-value}
  lake:
    type: azure_data_lake_gen2
    account_name: acct
    filesystem: fs
    credentials: {sas_token: "${{env.STORAGE_SAS}}"}
  workspaceblobstore: {type: azure_blob, account_name: a, container_name: c}
  share:
    type: azure_file
    account_name: acct
    file_share_name: s
    container_name: c
data:
  d1: {type: uri_folder, path: "azureml://datastores/nostore/paths/x/"}
jobs:
  write:
    command: echo hi > ${{outputs.out}}/x.txt
    outputs:
      out: {type: uri_folder, path: "azureml://datastores/mystor/paths/out/"}
  read:
    command: ls ${{inputs.d}}
    inputs:
      d: {type: uri_folder, path: "azureml://datastores/mystore/paths/../../etc/"}
  pipe:
    type: pipeline
    jobs:
      s:
        command: echo hi > ${{outputs.o}}/x.txt
        outputs: {o: {type: uri_folder, path: "azureml://datastores/mystore/paths/p/"}}
targets:
  local:
    datastores: {other: ./x}
"""


def test_validate_says_every_datastore_problem_where_it_is(tmp_path, mlrun, monkeypatch):
    monkeypatch.setenv("STORAGE_SAS", "sv=2024&sig=abcdefgh")
    (tmp_path / "lab.yaml").write_text(BAD_LAB)
    code, out, err = mlrun("validate", "lab.yaml", cwd=tmp_path)
    assert code == 1
    defined = "defined: lake, mystore, share, workspaceartifactstore, workspaceblobstore"
    assert err.splitlines() == [
        "lab.yaml:4:3: error: $.datastores.mystore: missing required key 'container_name' "
        "(an azure_blob datastore needs it)",
        "lab.yaml:7:32: warning: $.datastores.mystore.credentials.account_key: account_key is "
        "written in clear text: give it as ${{env.NAME}} (or a secret variable), so that the "
        "spec does not hold it",
        "lab.yaml:12:19: error: $.datastores.lake.credentials.sas_token: an "
        "azure_data_lake_gen2 datastore takes a service principal (tenant_id, client_id, "
        "client_secret), not sas_token",
        "lab.yaml:13:3: error: $.datastores.workspaceblobstore: workspaceblobstore is the "
        "workspace's own datastore: it exists without being declared (map it to a folder in "
        "targets.local.datastores)",
        "lab.yaml:18:5: error: $.datastores.share.container_name: an azure_file datastore has "
        "no container_name (it names file_share_name)",
        "lab.yaml:20:32: error: $.data.d1.path: 'azureml://datastores/nostore/paths/x/': this "
        f"spec has no datastore 'nostore' (did you mean 'mystore'? {defined})",
        "lab.yaml:25:37: error: $.jobs.write.outputs.out.path: "
        "'azureml://datastores/mystor/paths/out/': this spec has no datastore 'mystor' (did you "
        f"mean 'mystore'? {defined})",
        "lab.yaml:29:35: error: $.jobs.read.inputs.d.path: "
        "'azureml://datastores/mystore/paths/../../etc/': a datastore path cannot go up ('..')",
        "lab.yaml:38:18: error: $.targets.local.datastores.other: this spec has no datastore "
        f"'other' ({defined})",
        "lab.yaml: 8 errors, 1 warning",
    ]
    assert "plain-text-key-value" not in out + err and "abcdefgh" not in out + err


DEFAULT_STORE_LAB = """\
name: defaults
workspace: {name: ws-defaults}
jobs:
  own:
    type: pipeline
    jobs:
      s:
        command: echo hi > ${{outputs.o}}
        outputs:
          o: {type: uri_file, path: "azureml://datastores/${{default_datastore}}/paths/${{name}}/o.csv"}
  set:
    type: pipeline
    settings: {default_datastore: azureml:elsewhere}
    jobs:
      s:
        command: echo hi > ${{outputs.o}}
        outputs:
          o: {type: uri_file, path: "azureml://datastores/${{default_datastore}}/paths/o.csv"}
"""


def test_default_datastore_in_a_step_output_is_the_pipeline_default(tmp_path, mlrun):
    """azureml-examples' parallel pipelines write to `azureml://datastores/${{default_datastore}}
    /paths/${{name}}/...`: the workspace's default datastore, or settings.default_datastore."""
    (tmp_path / "lab.yaml").write_text(DEFAULT_STORE_LAB)
    code, _, err = mlrun("validate", "lab.yaml", cwd=tmp_path)
    lines = err.splitlines()
    assert code == 1
    assert [line for line in lines if ": error:" in line] == [
        "lab.yaml:18:37: error: $.jobs.set.jobs.s.outputs.o.path: "
        "'azureml://datastores/${{default_datastore}}/paths/o.csv': this spec has no datastore "
        "'elsewhere' (defined: workspaceartifactstore, workspaceblobstore)"
    ]
    assert [line for line in lines if "$.jobs.own" in line] == []
    (tmp_path / "lab.yaml").write_text(
        DEFAULT_STORE_LAB.replace("azureml:elsewhere", "workspaceartifactstore")
    )
    code, out, err = mlrun("validate", "lab.yaml", cwd=tmp_path)
    assert code == 0, err
    assert out == "lab.yaml: ok (0 computes, 2 jobs, 0 queries)\n"


def test_an_unmodified_datastore_file_validates_and_env_credentials_are_accepted(
    tmp_path, mlrun, monkeypatch
):
    monkeypatch.setenv("STORAGE_ACCOUNT_KEY", KEY)
    write_local_lab(tmp_path)
    code, out, err = mlrun("validate", "lab.yaml", cwd=tmp_path)
    assert (code, err) == (0, "")
    assert out == "lab.yaml: ok (0 computes, 4 jobs, 0 queries, 1 data asset, 2 datastores)\n"


def test_a_secret_env_var_in_another_datastore_field_is_refused(tmp_path, mlrun, monkeypatch):
    monkeypatch.setenv("STORAGE_ACCOUNT_KEY", KEY)
    spec = write_local_lab(tmp_path)
    secret_name = 'account_name: "${{env.STORAGE_ACCOUNT_KEY}}"'
    spec.write_text(LOCAL_LAB.replace("account_name: dp100storage", secret_name))
    code, _, err = mlrun("validate", "lab.yaml", cwd=tmp_path)
    assert (code, err.splitlines()) == (
        1,
        [
            "lab.yaml:6:20: error: $.datastores.mystore.account_name: "
            "${{env.STORAGE_ACCOUNT_KEY}} is secret: use it only in a job's "
            "environment_variables (the command reads it as $NAME), so that it is never shown "
            "or stored",
            "lab.yaml: 1 error, 0 warnings",
        ],
    )


# --- the local target ----------------------------------------------------------------------------


def test_plan_shows_each_datastore_and_its_folder(local_lab):
    root = local_lab["root"]
    out = local_lab["apply"].stdout
    folder = root / ".mlrun" / "local" / "ws-stores" / "datastores" / "mystore"
    assert re.search(
        r"\+ datastore\.mystore +azure_blob dp100storage/training-data, account key; "
        rf"folder {re.escape(str(folder))}\n",
        out,
    ), out
    assert re.search(
        r"\+ datastore\.shared +azure_data_lake_gen2 mytestdatalakegen2/my-gen2-container, no "
        rf"credential \(identity\); folder {re.escape(str(root / 'stand-in'))}\n",
        out,
    ), out


def test_a_job_reads_what_another_wrote_to_a_datastore_in_one_apply(local_lab):
    root = local_lab["root"]
    store = root / ".mlrun" / "local" / "ws-stores" / "datastores" / "mystore"
    assert (store / "out" / "greeting.txt").read_text() == "hello\n"
    assert (store / "out" / "more" / "n.txt").read_text() == "42\n"
    state = json.loads((root / ".mlrun" / "stores.local.json").read_text())
    run_id = state["jobs"]["write"]["runs"][-1]["id"]
    assert (store / "notes" / run_id / "n.txt").read_text() == "noted\n"  # ${{name}}: the run
    assert (latest_run_dir(root, "write") / "outputs" / "out" / "greeting.txt").is_file()
    copy = latest_run_dir(root, "read") / "work" / "outputs" / "copy.txt"
    assert copy.read_text() == "hello\n42\n"
    out = local_lab["apply"].stdout
    assert out.index("job.write  Completed") < out.index("job.read  Running"), out
    assert re.search(
        r"> job\.read +first run; after job\.write \(reads what it writes to a datastore\)\n", out
    ), out


def test_a_data_asset_and_a_pipeline_step_read_a_mapped_datastore_folder(local_lab):
    root = local_lab["root"]
    rows = latest_run_dir(root, "asset") / "work" / "outputs" / "rows.txt"
    assert rows.read_text() == "a\nb\nc\n"
    assert "+ data.patients" in local_lab["apply"].stdout
    counted = list((root / ".mlrun" / "local" / "ws-stores" / "runs").rglob("o/n.txt"))
    assert [p.read_text().strip() for p in counted] == ["3"]


def test_a_pipeline_step_writes_a_datastore_path_the_next_step_reads(local_lab):
    """As azureml-examples' 4b_datastore_datapath_uri: a step's output on a datastore path is
    there before the step after it starts, which reads a file in it by its datastore path; a
    pipeline output on `${{default_datastore}}` (settings) and `${{name}}` (the step's run)."""
    store = local_lab["root"] / ".mlrun" / "local" / "ws-stores" / "datastores" / "mystore"
    assert (store / "piped" / "n.txt").read_text().strip() == "3"
    (total,) = (store / "totals").glob("*/total.txt")
    assert total.read_text().strip() == "3"
    state = json.loads((local_lab["root"] / ".mlrun" / "stores.local.json").read_text())
    steps = state["jobs"]["pipe"]["runs"][-1]["steps"]
    assert total.parent.name == steps["show"]["run_id"]


def test_the_next_plan_is_up_to_date(local_lab):
    root = local_lab["root"]
    plan = run_mlrun("plan", local_lab["spec"], cwd=root, env=local_lab["env"], check=0)
    assert plan.stdout.endswith("No changes. Everything is up to date.\n"), plan.stdout
    changes = {c["address"]: c for c in json.loads(local_lab["plan"].stdout)["changes"]}
    assert changes["datastore.mystore"]["action"] == "noop"
    assert changes["datastore.mystore"]["after"]["credentials"] == "account_key"


def test_the_key_is_in_no_file_mlrun_wrote_nor_anything_it_printed(local_lab):
    root = local_lab["root"]
    log = latest_run_dir(root, "write") / "user_logs" / "std_log.txt"
    assert log.read_text().strip() == str(len(KEY) + 1)  # the job saw it (env), mlrun kept none
    status = run_mlrun("status", local_lab["spec"], "--json", cwd=root, env=local_lab["env"])
    printed = [local_lab["apply"], local_lab["plan"], status]  # apply ends with the report
    assert all(KEY not in p.stdout + p.stderr for p in printed)
    written = [p for p in root.rglob("*") if p.is_file()]
    assert len(written) > 10
    assert [p for p in written if KEY.encode() in p.read_bytes()] == []


def test_export_writes_datastore_files_without_the_key_and_import_reads_them_back(local_lab):
    root = local_lab["root"]
    env = {**local_lab["env"], "MYSTORE_ACCOUNT_KEY": KEY}
    export = run_mlrun("export", local_lab["spec"], "-o", "out", cwd=root, env=env, check=0)
    assert (root / "out" / "datastores" / "mystore.yml").read_text() == textwrap.dedent("""\
        $schema: https://azuremlschemas.azureedge.net/latest/azureBlob.schema.json
        name: mystore
        type: azure_blob
        account_name: dp100storage
        container_name: training-data
        credentials:
          account_key: (sensitive)
        """)
    assert (
        "note: out/datastores/mystore.yml: account_key written as (sensitive); give it when you "
        "create it: az ml datastore create --file out/datastores/mystore.yml --set "
        "credentials.account_key=VALUE"
    ) in export.stderr
    files = ["out/workspace.yml", "out/datastores/mystore.yml", "out/datastores/shared.yml"]
    imported = run_mlrun("import", *files, "-o", "back/lab.yaml", cwd=root, env=env, check=0)
    assert "wrote back/lab.yaml (0 computes, 0 jobs, 2 datastores)" in imported.stdout
    assert yaml.safe_load((root / "back" / "lab.yaml").read_text())["datastores"] == {
        "mystore": {
            "file": "../out/datastores/mystore.yml",
            "credentials": {"account_key": "${{env.MYSTORE_ACCOUNT_KEY}}"},
        },
        "shared": {"file": "../out/datastores/shared.yml"},  # no credential: nothing to give
    }
    assert KEY not in export.stdout + export.stderr + imported.stdout + imported.stderr


# --- the azure target ----------------------------------------------------------------------------

AZURE_LAB = """\
name: azstores
workspace: {name: ws-azstores, resource_group: rg-azstores, location: eastus}
datastores:
  blob_training_data:
    type: azure_blob
    account_name: dp100storage
    container_name: training-data
    description: the lab's data
    credentials: {account_key: "${{env.STORAGE_ACCOUNT_KEY}}"}
  lake: {file: lake.yml}
computes: {cpu: {type: amlcompute, size: STANDARD_DS11_V2, max_instances: 1}}
jobs:
  read:
    command: cat ${{inputs.d}}/greeting.txt
    inputs: {d: {type: uri_folder, path: azureml://datastores/blob_training_data/paths/out/}}
    compute: azureml:cpu
    environment: azureml:AzureML-sklearn-1.5@latest
  write:
    command: echo hello from the datastore > ${{outputs.out}}/greeting.txt
    outputs: {out: {type: uri_folder, path: azureml://datastores/blob_training_data/paths/out/}}
    compute: azureml:cpu
    environment: azureml:AzureML-sklearn-1.5@latest
targets:
  azure: {subscription_id: "${{env.AZURE_SUBSCRIPTION_ID}}"}
"""
LAKE = """\
$schema: https://azuremlschemas.azureedge.net/latest/azureDataLakeGen2.schema.json
name: adls_gen2_example
type: azure_data_lake_gen2
account_name: mytestdatalakegen2
filesystem: my-gen2-container
credentials:
  tenant_id: 00000000-0000-0000-0000-000000000001
  client_id: 00000000-0000-0000-0000-000000000002
  client_secret: "${{env.LAKE_CLIENT_SECRET}}"
"""
LAKE_SECRET = "lake-client-secret-value"
SECRETS_OF = """\
import json, os
from azure.ai.ml import MLClient
from azure.identity import DefaultAzureCredential
ml = MLClient(DefaultAzureCredential(), os.environ["AZURE_SUBSCRIPTION_ID"], "rg-azstores",
              "ws-azstores", enable_telemetry=False)
blob = ml.datastores.get("blob_training_data", include_secrets=True)
lake = ml.datastores.get("lake", include_secrets=True)
print(json.dumps({"key": blob.credentials.account_key, "secret": lake.credentials.client_secret}))
"""


@pytest.mark.azure
def test_azure_registers_reads_back_and_deletes_datastores(azure_emulator, tmp_path):
    (tmp_path / "lab.yaml").write_text(AZURE_LAB)
    (tmp_path / "lake.yml").write_text(LAKE)
    env = {"STORAGE_ACCOUNT_KEY": KEY, "LAKE_CLIENT_SECRET": LAKE_SECRET}

    def az(*args, check=0):
        return azure_emulator.mlrun(*args, "--target", "azure", cwd=tmp_path, env=env, check=check)

    mark = azure_emulator.mark()
    apply = az("apply", "-y", "lab.yaml")
    assert (
        "datastore.blob_training_data  created  azure_blob dp100storage/training-data, account key"
        in apply.stdout
    )
    puts = [
        r["path"].split("/workspaces/ws-azstores/")[1]
        for r in azure_emulator.requests(mark)
        if r["method"] == "PUT" and "/datastores/" in r["path"]
    ]
    assert sorted(puts) == ["datastores/blob_training_data", "datastores/lake"]
    kept = azure_emulator.call("GET", "/_emulator/state")["resources"]
    stores = {k.rsplit("/", 1)[1]: v for k, v in kept.items() if "/datastores/" in k}
    assert stores["blob_training_data"]["properties"]["credentials"] == {
        "credentialsType": "AccountKey"
    }
    assert stores["lake"]["properties"]["credentials"]["clientId"].endswith("2")
    secrets = run_sdk_json(azure_emulator, tmp_path)
    assert secrets == {"key": KEY, "secret": LAKE_SECRET}  # sent in the PUTs, kept by the service
    # the writer's output went to the datastore's own container, which the reader read
    assert az("logs", "lab.yaml", "read").stdout == "hello from the datastore\n"
    assert az("plan", "lab.yaml").stdout.endswith("No changes. Everything is up to date.\n")
    mark = azure_emulator.mark()
    destroy = az("destroy", "-y", "lab.yaml")
    deleted = [
        r["path"].rsplit("/", 1)[1]
        for r in azure_emulator.requests(mark)
        if r["method"] == "DELETE" and "/datastores/" in r["path"]
    ]
    assert sorted(deleted) == ["blob_training_data", "lake"]  # never workspaceblobstore
    for proc in (apply, destroy):
        assert KEY not in proc.stdout + proc.stderr and LAKE_SECRET not in proc.stdout + proc.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert [p for p in written if KEY.encode() in p.read_bytes()] == []
    assert [p for p in written if LAKE_SECRET.encode() in p.read_bytes()] == []


def run_sdk_json(emulator, cwd) -> dict:
    from azure_fixtures import run_sdk

    found = run_sdk(emulator, SECRETS_OF, cwd=cwd)
    return {k: v for k, v in found.items() if not k.startswith("_")}
