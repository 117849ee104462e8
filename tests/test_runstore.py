"""runner/backends/runstore.py: the same calls give the same runs whether they go through
mlflow_db (the store's schema is this MLflow's) or through MlflowClient (it is not, or the direct
store cannot answer), on one real SQLite store; MLflow is asked only where mlflow_db cannot
answer."""

import shutil
import threading

import pytest

from runner.backends import mlflow_db, runstore
from runner.backends.local import _template_db


class Counted:
    """A real MlflowClient whose calls are counted (which path a call took)."""

    def __init__(self, client):
        self.client, self.calls = client, []

    def __getattr__(self, name):
        self.calls.append(name)
        return getattr(self.client, name)


@pytest.fixture
def stores(tmp_path):
    from mlflow.tracking import MlflowClient

    db = tmp_path / "mlflow.db"
    shutil.copyfile(_template_db(), db)
    direct = mlflow_db.Store.open(db, _template_db())
    assert direct is not None
    client = Counted(MlflowClient(tracking_uri=f"sqlite:///{db}"))
    lock = threading.Lock()
    both = {
        "direct": runstore.Runs(lambda: direct, lambda: client, lock),
        "mlflow": runstore.Runs(lambda: None, lambda: client, lock),
    }
    return both, client, tmp_path


def made(runs: runstore.Runs, where, name: str):
    experiment = runs.experiment_id(name, (where / name).as_uri())
    parent, _ = runs.create(experiment, "parent", {"mlrun.job": "p"}, {"alpha": "0.1"})
    kids = [
        runs.create(experiment, f"kid-{i}", {"mlflow.parentRunId": parent}, {"i": str(i)})[0]
        for i in range(3)
    ]
    return experiment, parent, kids


@pytest.mark.parametrize("path", ["direct", "mlflow"])
def test_a_lab_of_runs_reads_back_the_same_either_way(stores, path):
    both, client, where = stores
    runs = both[path]
    experiment, parent, kids = made(runs, where, f"exp-{path}")
    assert runs.experiment_id(f"exp-{path}", "ignored") == experiment  # found, not made again
    runs.end(kids[0], "FINISHED")
    runs.end(kids[1], "FAILED")
    got = runs.get(kids[0])
    assert got.info.status == "FINISHED" and got.data.params == {"i": "0"}
    assert got.data.tags["mlflow.parentRunId"] == parent
    assert runs.get(kids[1]).info.status == "FAILED"
    assert runs.get(kids[2]).info.status == "RUNNING"
    read = runs.read({experiment: {parent, *kids, "0" * 32}})
    assert sorted(read) == sorted([parent, *kids])  # an unknown id is left out
    assert read[parent].data.params == {"alpha": "0.1"}
    children = runs.children(runs.get(parent))
    assert [c.info.run_name for c in children] == ["kid-0", "kid-1", "kid-2"]  # oldest first
    asked = set(client.calls)
    if path == "direct":
        assert asked == set(), f"MLflow was asked for {asked}"
    else:
        assert {"create_run", "set_terminated", "search_runs", "get_run"} <= asked


def test_both_paths_write_runs_the_other_reads(stores):
    both, _, where = stores
    experiment, parent, _ = made(both["direct"], where, "shared")
    assert both["mlflow"].experiment_id("shared", "x") == experiment
    from_mlflow = both["mlflow"].get(parent)
    from_direct = both["direct"].get(parent)
    assert from_mlflow.info.run_id == from_direct.info.run_id == parent
    assert from_mlflow.data.params == from_direct.data.params == {"alpha": "0.1"}
    both["mlflow"].end(parent, "KILLED")
    assert both["direct"].get(parent).info.status == "KILLED"


def test_a_run_the_direct_store_cannot_end_is_ended_through_mlflow(stores):
    """set_terminated of mlflow_db answers False for a run it does not find active; Runs then
    asks MLflow, which says what is wrong (here: no such run)."""
    both, client, _ = stores
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException):
        both["direct"].end("f" * 32, "FINISHED")
    assert client.calls == ["set_terminated"]
