"""runner/backends/mlflow_db.py writes a job's experiment and run without loading MLflow: the rows
must be the ones MLflow writes itself (checked here table by table against MlflowClient on the
same store), and what it reads must be what MlflowClient.get_run reads."""

import math
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from runner.backends import mlflow_db
from runner.backends.local import _template_db


@pytest.fixture
def store(tmp_path):
    from mlflow.tracking import MlflowClient

    db = tmp_path / "mlflow.db"
    shutil.copyfile(_template_db(), db)
    direct = mlflow_db.Store.open(db, _template_db())
    assert direct is not None
    return direct, MlflowClient(tracking_uri=f"sqlite:///{db}"), db


def rows(db: Path) -> dict[str, list[dict]]:
    """Every table's rows (as dicts), to see what a call wrote anywhere in the store."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: [dict(r) for r in con.execute(f'SELECT * FROM "{t}"')] for t in tables}
    finally:
        con.close()


def written(before: dict, after: dict) -> dict[str, list[dict]]:
    """The rows `after` has that `before` did not, by table."""
    return {t: new for t in after if (new := [r for r in after[t] if r not in before.get(t, [])])}


def normalized(found: dict, run_id: str | None, exp_id: str, location: str) -> dict:
    """Rows with the values that differ by nature (ids, times, the experiment's name and
    location) replaced by placeholders."""
    times = ("creation_time", "last_update_time", "start_time", "end_time")

    def value(column: str, v):
        if column in times and v is not None:
            return "TIME"
        if column == "experiment_id":
            return "EXP" if str(v) == exp_id else v
        if isinstance(v, str):
            v = v.replace(location, "LOCATION")
            return v.replace(run_id, "RUN") if run_id else v
        return v

    return {
        table: sorted(
            (
                {k: value(k, v) for k, v in r.items() if (table, k) != ("experiments", "name")}
                for r in new
            ),
            key=repr,
        )
        for table, new in found.items()
    }


def test_experiment_and_run_rows_are_the_ones_mlflow_writes(store, tmp_path):
    from mlflow.entities import Param

    direct, client, db = store
    tags = {"mlrun.job": "train", "mlflow.source.type": "JOB", "team": "a"}

    # MLflow's own calls, on one experiment
    ours_at, theirs_at = (tmp_path / "art" / "ours").as_uri(), (tmp_path / "art" / "mine").as_uri()
    start = rows(db)
    theirs_exp = client.create_experiment("theirs", artifact_location=theirs_at)
    after_exp = rows(db)
    theirs_run = client.create_run(theirs_exp, run_name="train", tags=tags)
    client.log_batch(theirs_run.info.run_id, params=[Param("alpha", "0.5"), Param("n", "3")])
    after_run = rows(db)
    client.set_terminated(theirs_run.info.run_id, "FAILED")
    after_end = rows(db)

    # the same through mlflow_db, on another
    ours_exp = direct.experiment_id("ours", ours_at)
    assert ours_exp is not None and ours_exp != theirs_exp
    after_exp2 = rows(db)
    made = direct.create_run(ours_exp, "train", tags)
    assert made is not None
    run_id, artifact_uri = made
    direct.log_params(run_id, {"alpha": "0.5", "n": "3"})
    after_run2 = rows(db)
    assert direct.set_terminated(run_id, "FAILED")
    after_end2 = rows(db)

    steps = [
        ((start, after_exp), (after_end, after_exp2), None),
        ((after_exp, after_run), (after_exp2, after_run2), "run"),
        ((after_run, after_end), (after_run2, after_end2), "run"),
    ]
    for (t0, t1), (o0, o1), has_run in steps:
        theirs = normalized(
            written(t0, t1), theirs_run.info.run_id if has_run else None, theirs_exp, theirs_at
        )
        ours = normalized(written(o0, o1), run_id if has_run else None, ours_exp, ours_at)
        assert ours == theirs
        assert ours  # each call wrote something
    assert artifact_uri == theirs_run.info.artifact_uri.replace(theirs_at, ours_at).replace(
        theirs_run.info.run_id, run_id
    )

    # and MLflow reads them back as its own
    got = client.get_run(run_id)
    assert (got.info.status, got.info.run_name, got.info.experiment_id) == (
        "FAILED",
        "train",
        ours_exp,
    )
    assert got.data.tags == {**tags, "mlflow.runName": "train"}
    assert client.get_experiment_by_name("ours").artifact_location == ours_at


def test_runs_are_read_as_mlflow_reads_them(store):
    direct, client, _ = store
    exp = client.create_experiment("e")
    run = client.create_run(exp, run_name="r", tags={"k": "v"})
    rid = run.info.run_id
    client.log_param(rid, "alpha", "0.1")
    for step, value in enumerate([0.5, 0.25, float("nan")]):
        client.log_metric(rid, "loss", value, step=step)
    client.log_metric(rid, "auc", 0.9, step=3)
    client.log_metric(rid, "auc", 0.7, step=1)  # an earlier step logged later: not the latest
    client.set_terminated(rid, "FINISHED")
    other = client.create_run(exp, run_name="other").info.run_id

    found = direct.runs([rid, other, "0" * 32])
    assert set(found) == {rid, other}
    for run_id in (rid, other):
        want, got = client.get_run(run_id), found[run_id]
        for field in (
            "run_id",
            "run_name",
            "status",
            "start_time",
            "end_time",
            "experiment_id",
            "artifact_uri",
            "lifecycle_stage",
            "user_id",
        ):
            assert getattr(got.info, field) == getattr(want.info, field), field
        assert got.data.params == want.data.params
        assert got.data.tags == want.data.tags
        assert got.data.metrics.keys() == want.data.metrics.keys()
        for key, value in want.data.metrics.items():
            mine = got.data.metrics[key]
            assert (math.isnan(mine) and math.isnan(value)) or mine == value, key
    assert found[rid].data.metrics["auc"] == 0.9


def test_children_are_the_runs_search_runs_finds_oldest_first(store):
    direct, client, _ = store
    exp = client.create_experiment("sweep")
    parent = client.create_run(exp, run_name="parent").info.run_id
    made = []
    for i in range(3):
        run_id, _ = direct.create_run(exp, f"trial-{i}", {"mlflow.parentRunId": parent}) or ("", "")
        made.append(run_id)
    other = client.create_run(exp, run_name="x", tags={"mlflow.parentRunId": "someone-else"})
    client.delete_run(made[1])
    want = client.search_runs(
        [exp],
        filter_string=f"tags.mlflow.parentRunId = '{parent}'",
        order_by=["attributes.start_time ASC"],
    )
    got = direct.children(parent)
    assert [r.info.run_id for r in got] == [r.info.run_id for r in want]
    assert {r.info.run_id for r in got} == {made[0], made[2]}
    assert other.info.run_id not in {r.info.run_id for r in got}


def test_a_store_of_another_schema_or_a_deleted_experiment_is_left_to_mlflow(store, tmp_path):
    direct, client, db = store
    exp = client.create_experiment("gone")
    client.delete_experiment(exp)
    assert direct.experiment_id("gone", "file:///x") is None  # MLflow says what to do
    assert direct.create_run(exp, "r", {}) is None
    run = client.create_run(client.create_experiment("kept"), run_name="r")
    client.delete_run(run.info.run_id)
    assert not direct.set_terminated(run.info.run_id, "FINISHED")
    assert direct.create_run("1", "r", {"mlflow.runName": "another"}) is None

    other = tmp_path / "other.db"
    shutil.copyfile(db, other)
    con = sqlite3.connect(other)
    con.execute("UPDATE alembic_version SET version_num = 'aaaaaaaaaaaa'")
    con.commit()
    con.close()
    assert mlflow_db.Store.open(other, _template_db()) is None
    assert mlflow_db.Store.open(tmp_path / "missing.db", _template_db()) is None


def test_a_lab_of_plain_jobs_runs_without_loading_mlflow_in_mlrun(tmp_path):
    """The jobs' runs are made, ended and reported through mlflow_db; MLflow reads them all."""
    (tmp_path / "lab.yaml").write_text(
        "name: plain\nworkspace: {name: ws-plain}\n"
        "computes: {cluster: {type: amlcompute, max_instances: 2}}\njobs:\n"
        + "".join(
            f"  j{i}: {{command: 'echo hello {i}; exit {1 if i == 2 else 0}', "
            f"compute: cluster, tags: {{n: '{i}'}}}}\n"
            for i in range(4)
        )
    )
    script = (
        "import sys; from runner.cli import run; code = run(['apply', '-y', 'lab.yaml']); "
        "print('MLFLOW LOADED' if 'mlflow' in sys.modules else 'no mlflow'); sys.exit(code)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1, proc.stderr  # j2 failed
    assert proc.stdout.rstrip().endswith("no mlflow"), proc.stdout + proc.stderr
    assert "j2   Failed" in proc.stdout

    from conftest import mlflow_client

    client = mlflow_client(tmp_path, "ws-plain")
    found = client.search_runs([client.get_experiment_by_name("plain").experiment_id])
    by_job = {r.data.tags["mlrun.job"]: r for r in found}
    assert {j: r.info.status for j, r in by_job.items()} == {
        "j0": "FINISHED",
        "j1": "FINISHED",
        "j2": "FAILED",
        "j3": "FINISHED",
    }
    assert by_job["j3"].data.tags["n"] == "3"
    log = client.download_artifacts(by_job["j1"].info.run_id, "user_logs/std_log.txt", tmp_path)
    assert Path(log).read_text() == "hello 1\n"


def test_the_bundled_schema_is_the_store_mlflow_makes(tmp_path, monkeypatch):
    """runner/mlflow_schema.sql (a first apply's store, in milliseconds) against a store the
    installed MLflow migrates now: the same tables, indexes and rows (the Default experiment's
    place and time aside). Fails when MLflow's schema moves: `python -m
    runner.backends.mlflow_schema` regenerates the file."""
    from mlflow.tracking import MlflowClient

    from runner.backends import mlflow_schema

    monkeypatch.chdir(tmp_path)
    theirs, ours = tmp_path / "theirs.db", tmp_path / "ours.db"
    MlflowClient(tracking_uri=f"sqlite:///{theirs}").search_experiments(max_results=1)
    (made,) = sqlite3.connect(theirs).execute("SELECT version_num FROM alembic_version").fetchone()
    assert mlflow_schema.head_revision() == made == mlflow_schema.bundled_revision()
    assert mlflow_schema.make(ours)
    # as lines, whatever their order: MLflow's batch migrations write a table's constraints in
    # an order that differs from one store it makes to the next
    assert lines(mlflow_schema.dump(ours)) == lines(mlflow_schema.dump(theirs))

    def default(db):
        row = sqlite3.connect(db).execute("SELECT * FROM experiments").fetchall()
        assert len(row) == 1
        exp_id, name, location, stage, created, updated, workspace = row[0]
        assert created == updated and abs(created - time.time() * 1000) < 120_000
        return exp_id, name, location, stage, workspace

    assert (
        default(ours)
        == default(theirs)
        == (0, "Default", str(tmp_path / "mlruns" / "0"), "active", "default")
    )
    assert mlflow_db.Store.open(ours, theirs) is not None  # the direct writer takes it


def lines(sql: str) -> Counter:
    return Counter(line.strip().rstrip(",").strip() for line in sql.splitlines())


def test_another_mlflows_schema_is_not_replayed(tmp_path, monkeypatch):
    from runner.backends import mlflow_schema

    monkeypatch.setattr(mlflow_schema, "head_revision", lambda: "0123456789ab")
    assert not mlflow_schema.make(tmp_path / "x.db")
    assert not (tmp_path / "x.db").exists()  # MLflow makes it then, as it always did


@pytest.mark.parametrize("through", ["direct", "mlflow"])
def test_a_finished_run_ends_when_its_process_ended_not_when_it_is_recorded(
    store, tmp_path, through
):
    # a pipeline's finalizer records a step while the next one runs: the run's end is the
    # step's (exit.json), not the moment it was recorded (was: now)
    import json as json_mod

    from runner.backends import runstore, supervised

    direct, client, _ = store
    experiment = direct.experiment_id("timed", (tmp_path / "artifacts").as_uri())
    runs = runstore.Runs(lambda: direct if through == "direct" else None, lambda: client)
    run_id, uri = runs.create(experiment, "step", {})
    folder = tmp_path / "step"
    folder.mkdir()
    ended = time.time() - 5
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ended)) + ".250Z"
    (folder / "exit.json").write_text(json_mod.dumps({"status": "Completed", "ended": stamp}))
    supervised.finalize_run(lambda: client, run_id, folder, "Completed", runs, uri)
    info = client.get_run(run_id).info
    assert info.status == "FINISHED"
    assert info.end_time == int(ended) * 1000 + 250
