"""Data assets (the spec's `data:`, az ml data create) on the local target: registered as copies
inside the workspace, versioned as Azure ML versions them, read by jobs and pipeline steps through
azureml:NAME@latest and azureml:NAME:VERSION."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.e2e

DATA = ROOT / "training" / "data" / "diabetes.csv"
DATA_FILE = """\
$schema: https://azuremlschemas.azureedge.net/latest/data.schema.json
name: diabetes-folder
description: The DP-100 data set, as a folder
type: uri_folder
path: ./data
"""


def lab(folder: Path, version: str = "") -> Path:
    """A data asset `diabetes-data` (uri_file, versioned as given), another from an az ml data
    file (a folder), a job reading both, and a pipeline whose step reads the first."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    if not (folder / "data" / "diabetes.csv").exists():
        shutil.copy(DATA, folder / "data" / "diabetes.csv")
    (folder / "data-folder.yml").write_text(DATA_FILE)
    spec = folder / "lab.yaml"
    spec.write_text(
        f"""\
name: assets
workspace: {{name: ws-assets}}
data:
  diabetes-data:
    type: uri_file
    path: data/diabetes.csv
    description: The DP-100 data set{version}
  diabetes-folder: {{file: data-folder.yml}}
jobs:
  rows:
    command: >-
      echo "file ${{{{inputs.d}}}}" && wc -l < ${{{{inputs.d}}}} > ./outputs/rows.txt
      && ls ${{{{inputs.f}}}} > ./outputs/listing.txt
    inputs:
      d: {{type: uri_file, path: "azureml:diabetes-data@latest"}}
      f: {{type: uri_folder, path: "azureml:diabetes-folder:1"}}
  pipe:
    type: pipeline
    jobs:
      count:
        command: wc -l < ${{{{inputs.d}}}} > ${{{{outputs.o}}}}/rows.txt
        inputs: {{d: {{type: uri_file, path: "azureml:diabetes-data@latest"}}}}
        outputs: {{o: null}}
"""
    )
    return spec


def state(folder: Path) -> dict:
    return json.loads((folder / ".mlrun" / "assets.local.json").read_text())


def registered(folder: Path, name: str, version: str) -> dict:
    path = folder / ".mlrun" / "local" / "ws-assets" / "data" / name / f"{version}.json"
    return json.loads(path.read_text())


def test_data_assets_are_registered_versioned_and_read_by_jobs_and_steps(mlrun, tmp_path):
    spec = lab(tmp_path)
    source = tmp_path / "data" / "diabetes.csv"
    rows = len(source.read_text().splitlines())
    code, out, err = mlrun("plan", spec, cwd=tmp_path)
    assert code == 0, err
    assert f"+ data.diabetes-data           uri_file v1 ({rows - 1:,} rows, " in out
    assert "+ data.diabetes-folder         uri_folder v1 (1 file, " in out

    code, out, err = mlrun("apply", "-y", spec, cwd=tmp_path)
    assert code == 0, out + err
    v1 = registered(tmp_path, "diabetes-data", "1")
    copy = Path(v1["path"])
    assert copy.read_bytes() == source.read_bytes() and copy != source
    assert (tmp_path / ".mlrun" / "local" / "ws-assets") in copy.parents
    run_dir = Path(state(tmp_path)["jobs"]["rows"]["runs"][-1]["run_dir"])
    assert (run_dir / "work" / "outputs" / "rows.txt").read_text().split() == [str(rows)]
    assert (run_dir / "work" / "outputs" / "listing.txt").read_text().split() == ["diabetes.csv"]
    assert f"file {copy}" in (run_dir / "user_logs" / "std_log.txt").read_text()  # the copy

    code, out, _ = mlrun("plan", spec, cwd=tmp_path)
    assert (code, out.splitlines()[-1]) == (0, "No changes. Everything is up to date.")
    code, out, _ = mlrun("status", spec, cwd=tmp_path)
    assert f"  data.diabetes-data               uri_file v1 ({rows - 1:,} rows, " in out
    code, out, _ = mlrun("report", "--format", "json", spec, cwd=tmp_path)
    assert [(d["name"], d["version"], d["type"]) for d in json.loads(out)["data"]] == [
        ("diabetes-data", "1", "uri_file"),
        ("diabetes-folder", "1", "uri_folder"),
    ]

    # the source edited: no version given, so a new version, and what read @latest runs again
    source.write_text(source.read_text() + "1,2,3,4,5,6,7,8,9\n")
    code, out, err = mlrun("plan", spec, cwd=tmp_path)
    assert code == 0, err
    assert (
        f"+ data.diabetes-data           uri_file v2 ({rows:,} rows, " in out
        and "new version: its content changed; v1 is kept)" in out
    )
    assert "> job.rows                     inputs changed since run" in out
    assert "+ data.diabetes-folder         uri_folder v2 (" in out  # the same folder
    assert "> job.pipe                     pipeline: 1 of 1 step to run" in out
    assert "    > count                    inputs changed since run" in out
    code, out, err = mlrun("apply", "-y", spec, cwd=tmp_path)
    assert code == 0, out + err
    assert registered(tmp_path, "diabetes-data", "2")["path"] != v1["path"]
    assert copy.read_bytes() != source.read_bytes()  # version 1 is as it was registered
    assert len(copy.read_text().splitlines()) == rows
    run_dir = Path(state(tmp_path)["jobs"]["rows"]["runs"][-1]["run_dir"])
    assert (run_dir / "work" / "outputs" / "rows.txt").read_text().split() == [str(rows + 1)]
    log = (run_dir / "user_logs" / "std_log.txt").read_text()
    assert registered(tmp_path, "diabetes-data", "2")["path"] in log
    pipe = Path(state(tmp_path)["jobs"]["pipe"]["runs"][-1]["run_dir"])
    step = json.loads((pipe / "pipeline.json").read_text())["steps"]["count"]
    assert step["inputs"]["d"]["value"] == registered(tmp_path, "diabetes-data", "2")["path"]
    pinned = registered(tmp_path, "diabetes-folder", "1")["path"]  # :1, not the new version
    assert (Path(pinned) / "diabetes.csv").read_bytes() == copy.read_bytes()

    # an explicit version whose content changed is refused, and nothing is touched
    lab(tmp_path, version="\n    version: 2")
    assert mlrun("plan", spec, cwd=tmp_path)[0] == 0  # version 2 is what is registered
    source.write_text(source.read_text() + "9,8,7,6,5,4,3,2,1\n")
    before = (tmp_path / ".mlrun" / "assets.local.json").read_bytes()
    code, out, err = mlrun("apply", "-y", spec, cwd=tmp_path)
    assert code == 1
    assert "data.diabetes-data: version 2 was registered with other content" in err
    assert (tmp_path / ".mlrun" / "assets.local.json").read_bytes() == before

    code, out, err = mlrun("destroy", "-y", spec, cwd=tmp_path)
    assert code == 0, out + err
    assert not (tmp_path / ".mlrun" / "local" / "ws-assets").exists()


def test_a_data_version_that_never_got_made_is_made_by_the_next_apply(mlrun, tmp_path):
    """The state records a version before making it (so destroy knows of it); one whose copy
    never got made (mlrun killed, a disk full) is planned again, not taken as made."""
    spec = lab(tmp_path)
    code, out, err = mlrun("apply", "-y", spec, cwd=tmp_path)
    assert code == 0, out + err
    record = tmp_path / ".mlrun" / "local" / "ws-assets" / "data" / "diabetes-data" / "1.json"
    record.unlink()
    code, out, _ = mlrun("plan", spec, cwd=tmp_path)
    assert "+ data.diabetes-data           uri_file v1 (" in out
    assert "= job.rows" in out  # the content it read is the same
    code, out, err = mlrun("apply", "-y", spec, cwd=tmp_path)
    assert code == 0, out + err
    assert record.exists()


def test_data_assets_export_to_files_load_data_accepts_and_import_back(mlrun, tmp_path):
    from azure.ai.ml import load_data

    spec = lab(tmp_path)
    code, out, err = mlrun("export", spec, "-o", tmp_path / "out", cwd=tmp_path)
    assert code == 0, err
    files = sorted((tmp_path / "out" / "data").glob("*.yml"))
    assert [f.name for f in files] == ["diabetes-data.yml", "diabetes-folder.yml"]
    loaded = {d.name: d for d in map(load_data, files)}
    assert loaded["diabetes-data"].type == "uri_file"
    assert Path(loaded["diabetes-data"].path) == tmp_path / "data" / "diabetes.csv"
    assert loaded["diabetes-folder"].description == "The DP-100 data set, as a folder"
    back = tmp_path / "out" / "back.yaml"
    code, _, err = mlrun(
        "import", *files, *sorted((tmp_path / "out" / "jobs").glob("*.yml")), "-o", back
    )
    assert code == 0, err
    plans = [mlrun("plan", s, cwd=tmp_path)[1].splitlines() for s in (spec, back)]
    assert [line for line in plans[0] if "data." in line] == [
        line for line in plans[1] if "data." in line
    ]
    assert len([line for line in plans[1] if line.startswith("  + data.")]) == 2


def test_an_mltable_folder_and_a_remote_uri_as_data_assets(mlrun, tmp_path):
    """An mltable asset is its folder, MLTable file included; a URI is registered as it is, and a
    job that reads it locally needs a stand-in, as any remote input does."""
    table = tmp_path / "titanic"
    table.mkdir()
    (table / "MLTable").write_text("paths:\n  - file: ./titanic.csv\n")
    (table / "titanic.csv").write_text("a,b\n1,2\n")
    (tmp_path / "cloud.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/data.schema.json\n"
        "name: cloud-file\ntype: uri_file\n"
        "path: https://account.blob.core.windows.net/container/titanic.csv\n"
    )
    spec = tmp_path / "lab.yaml"
    body = (
        "name: tables\nworkspace: {name: ws-tables}\n"
        "data:\n  titanic: {type: mltable, path: titanic}\n  cloud: {file: cloud.yml}\n"
        "jobs:\n"
        "  show:\n    command: cat ${{inputs.t}}/MLTable && head -1 ${{inputs.c}}\n"
        "    inputs:\n"
        "      t: {type: mltable, path: 'azureml:titanic@latest'}\n"
        "      c: {type: uri_file, path: 'azureml:cloud@latest'}\n"
    )
    spec.write_text(body)
    code, _, err = mlrun("plan", spec, cwd=tmp_path)
    assert code == 1
    assert err.startswith(
        "lab.yaml:11:33: error: $.jobs.show.inputs.c.path: data asset 'cloud' is "
        "https://account.blob.core.windows.net/container/titanic.csv, which the local target "
        "cannot read: map it (or azureml:cloud@latest) to a local file or folder in "
        "targets.local.inputs"
    )
    spec.write_text(
        body + "targets:\n  local:\n    inputs:\n"
        "      'https://account.blob.core.windows.net/container/titanic.csv': titanic/titanic.csv\n"
    )
    code, out, err = mlrun("apply", "-y", spec, cwd=tmp_path)
    assert code == 0, out + err
    ws = tmp_path / ".mlrun" / "local" / "ws-tables"
    cloud = json.loads((ws / "data" / "cloud" / "1.json").read_text())
    assert cloud["path"] == "https://account.blob.core.windows.net/container/titanic.csv"
    run = json.loads((tmp_path / ".mlrun" / "tables.local.json").read_text())["jobs"]["show"]
    log = Path(run["runs"][-1]["run_dir"], "user_logs", "std_log.txt").read_text()
    assert log.split() == ["paths:", "-", "file:", "./titanic.csv", "a,b"]
