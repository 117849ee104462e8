"""The workspace's tracking server answers the calls every run makes from the store directly
(runner/backends/tracking_api.py). Each call here goes to two real servers over HTTP, one on a copy
of the same store with MLRUN_TRACKING_DIRECT=0 (every call to MLflow's own app): their answers and
the rows they leave must be the same, ids and clocks aside. Unusual calls (a changed param, a run
that is not active, a bad name) get MLflow's own error from the direct server too."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from runner.backends import mlflow_db, tracking
from runner.backends.local import _template_db

T0 = 1_700_000_000_000  # the calls' own timestamps
TABLES = (
    "runs",
    "tags",
    "params",
    "metrics",
    "latest_metrics",
    "datasets",
    "inputs",
    "input_tags",
    "logged_models",
    "logged_model_params",
    "logged_model_tags",
    "logged_model_metrics",
)
NOW_COLUMNS = {"creation_timestamp_ms", "last_updated_timestamp_ms"}  # the server's clock


class Server:
    """A tracking server on its own copy of `store`; `direct` False: MLflow's app answers all."""

    def __init__(self, root: Path, store: Path, direct: bool, monkeypatch):
        self.root = root
        root.mkdir()
        shutil.copyfile(store, root / "mlflow.db")
        self.holder = root / "holder"  # the registered run the server serves for
        self.holder.mkdir()
        monkeypatch.setenv("MLRUN_TRACKING_DIRECT", "1" if direct else "0")
        self.url = tracking.ensure(root, self.holder)
        monkeypatch.delenv("MLRUN_TRACKING_DIRECT")

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        url = f"{self.url}/api/2.0/mlflow/{path}"
        data = None
        if method == "GET":
            url += "?" + "&".join(f"{k}={v}" for k, v in (body or {}).items())
        else:
            data = json.dumps(body or {}).encode()
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def rows(self) -> dict[str, list[tuple]]:
        con = sqlite3.connect(self.root / "mlflow.db")
        try:
            found = {}
            for table in TABLES:
                cursor = con.execute(f"SELECT * FROM {table}")
                names = [d[0] for d in cursor.description]
                found[table] = [
                    tuple(
                        "<now>" if n in NOW_COLUMNS else v for n, v in zip(names, row, strict=True)
                    )
                    for row in cursor
                ]
            return found
        finally:
            con.close()

    def log(self) -> str:
        return (self.root / "tracking" / "server.log").read_text()

    def stop(self) -> None:
        (self.holder / "exit.json").write_text("{}")
        tracking.stop(self.root)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, str, str]:
    """A workspace's store with an experiment and two runs (the second deleted), as mlrun makes
    them: (store, run id, deleted run id)."""
    folder = tmp_path_factory.mktemp("store")
    db = folder / "mlflow.db"
    shutil.copyfile(_template_db(), db)
    writer = mlflow_db.Store(db)
    experiment = writer.experiment_id("lab", (folder / "artifacts" / "lab").as_uri())
    assert experiment is not None
    made = writer.create_run(experiment, "train", {"mlflow.user": "ann"})
    gone = writer.create_run(experiment, "gone", {})
    assert made and gone
    con = sqlite3.connect(db)
    con.execute("UPDATE runs SET lifecycle_stage = 'deleted' WHERE run_uuid = ?", (gone[0],))
    con.commit()
    con.close()
    return db, made[0], gone[0]


def _calls(run: str, gone: str) -> list:
    """(method, path, body) of each call; `{model}` is the server's own logged model's id."""
    metric = {"run_id": run, "timestamp": T0}
    return [
        ("GET", "runs/get", {"run_id": run}),
        ("POST", "runs/update", {"run_id": run, "status": "RUNNING"}),
        ("POST", "runs/log-parameter", {"run_id": run, "key": "alpha", "value": "0.1"}),
        ("POST", "runs/log-parameter", {"run_id": run, "key": "alpha", "value": "0.1"}),
        ("POST", "runs/log-metric", {**metric, "key": "acc", "value": 0.5, "step": 1}),
        ("POST", "runs/log-metric", {**metric, "key": "acc", "value": 0.7, "step": 2}),
        ("POST", "runs/log-metric", {**metric, "key": "acc", "value": 0.6, "step": 1}),
        ("POST", "runs/log-metric", {**metric, "key": "acc", "value": 0.7, "step": 2}),
        ("POST", "runs/log-metric", {**metric, "key": "loss", "value": "NaN"}),
        ("POST", "runs/log-metric", {**metric, "key": "big", "value": 7}),
        ("POST", "runs/log-metric", {**metric, "key": "inf", "value": "-Infinity"}),
        ("POST", "runs/set-tag", {"run_id": run, "key": "team", "value": "a"}),
        ("POST", "runs/set-tag", {"run_id": run, "key": "team", "value": "b"}),
        ("POST", "runs/set-tag", {"run_id": run, "key": "mlflow.runName", "value": "renamed"}),
        (
            "POST",
            "runs/log-batch",
            {
                "run_id": run,
                "metrics": [
                    {"key": "f1", "value": 0.25, "timestamp": T0 + 1, "step": 0},
                    {"key": "f1", "value": 0.5, "timestamp": T0 + 2, "step": 0},
                    {"key": "acc", "value": 0.1, "timestamp": T0 + 3, "step": 1},
                ],
                "params": [{"key": "C", "value": "1.0"}, {"key": "alpha", "value": "0.1"}],
                "tags": [{"key": "mlflow.source.name", "value": "train.py"}],
            },
        ),
        (
            "POST",
            "runs/log-inputs",
            {
                "run_id": run,
                "datasets": [
                    {
                        "tags": [{"key": "mlflow.data.context", "value": "train"}],
                        "dataset": {
                            "name": "diabetes",
                            "digest": "abc123",
                            "source_type": "local",
                            "source": '{"uri": "data/diabetes.csv"}',
                            "schema": '{"mlflow_colspec": []}',
                            "profile": '{"num_rows": 10}',
                        },
                    },
                    {
                        "dataset": {
                            "name": "diabetes",
                            "digest": "abc123",
                            "source_type": "local",
                            "source": "{}",
                        }
                    },
                ],
            },
        ),
        (
            "POST",
            "runs/log-inputs",
            {
                "run_id": run,
                "datasets": [
                    {
                        "dataset": {
                            "name": "diabetes",
                            "digest": "abc123",
                            "source_type": "local",
                            "source": "{}",
                        }
                    },
                    {
                        "dataset": {
                            "name": "test",
                            "digest": "d2",
                            "source_type": "code",
                            "source": "{}",
                        }
                    },
                ],
            },
        ),
        (
            "POST",
            "logged-models",
            {
                "experiment_id": "1",
                "name": "model",
                "source_run_id": run,
                "model_type": "sklearn",
                "params": [{"key": "C", "value": "1.0"}],
                "tags": [{"key": "mlflow.user", "value": "ann"}],
            },
        ),
        ("POST", "logged-models", {"experiment_id": "1", "name": "bare"}),
        ("GET", "logged-models/{model}", {}),
        ("POST", "runs/log-metric", {**metric, "key": "auc", "value": 0.9, "model_id": "{model}"}),
        (
            "POST",
            "runs/log-batch",
            {
                "run_id": run,
                "metrics": [
                    {
                        "key": "rmse",
                        "value": 1.5,
                        "timestamp": T0,
                        "step": 3,
                        "model_id": "{model}",
                        "dataset_name": "diabetes",
                        "dataset_digest": "abc123",
                    }
                ],
            },
        ),
        ("POST", "runs/outputs", {"run_id": run, "models": [{"model_id": "{model}", "step": 0}]}),
        ("POST", "runs/log-inputs", {"run_id": run, "models": [{"model_id": "{model}"}]}),
        ("POST", "runs/log-inputs", {"run_id": run, "models": [{"model_id": "{model}"}]}),
        (
            "PATCH",
            "logged-models/{model}",
            {"model_id": "{model}", "status": "LOGGED_MODEL_READY"},
        ),
        ("GET", "logged-models/{model}", {}),
        ("GET", "runs/get", {"run_id": run}),
        ("POST", "runs/update", {"run_id": run, "status": "FINISHED", "end_time": T0 + 9}),
        ("POST", "runs/update", {"run_id": run, "run_name": "final"}),
        ("GET", "runs/get", {"run_id": run}),
        # unusual: MLflow's own errors, from either server
        ("POST", "runs/log-parameter", {"run_id": run, "key": "alpha", "value": "0.2"}),
        ("POST", "runs/log-parameter", {"run_id": run, "key": "../up", "value": "1"}),
        ("POST", "runs/log-metric", {**metric, "key": "acc", "value": True}),
        ("POST", "runs/log-metric", {"run_id": run, "key": "acc", "value": 1}),
        ("POST", "runs/set-tag", {"run_id": gone, "key": "k", "value": "v"}),
        ("POST", "runs/log-batch", {"run_id": "0" * 32, "params": [{"key": "a", "value": "b"}]}),
        (
            "POST",
            "runs/log-batch",
            {"run_id": run, "params": [{"key": "z", "value": "1"}, {"key": "z", "value": "2"}]},
        ),
        ("POST", "logged-models", {"experiment_id": "1", "name": "a.b"}),
        ("GET", "logged-models/m-" + "0" * 32, {}),
        ("GET", "runs/get", {"run_id": gone}),
        ("GET", "runs/get", {"run_id": run}),
    ]


def _fill(value, model: str):
    if isinstance(value, str):
        return value.replace("{model}", model)
    if isinstance(value, list):
        return [_fill(v, model) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, model) for k, v in value.items()}
    return value


def _norm(answer, ids: dict[str, str]):
    """An answer with the server's own ids and clock named by their order of appearance, and its
    lists sorted (MLflow's order is the database's: not part of the API)."""
    if isinstance(answer, dict):
        return {
            k: "<now>" if k in NOW_COLUMNS else _norm(v, ids) for k, v in sorted(answer.items())
        }
    if isinstance(answer, list):
        return sorted((_norm(v, ids) for v in answer), key=json.dumps)
    if isinstance(answer, str):
        return re.sub(
            r"m-[0-9a-f]{32}", lambda m: ids.setdefault(m[0], f"<model{len(ids)}>"), answer
        )
    return answer


def _play(server: Server, calls: list) -> list:
    model, answers, ids = "", [], {}
    for method, path, body in calls:
        status, answer = server.call(method, _fill(path, model), _fill(body, model))
        if path == "logged-models" and status == 200 and not model:
            model = answer["model"]["info"]["model_id"]
        answers.append((method, path, status, _norm(answer, ids)))
    return answers


def test_the_direct_server_answers_and_writes_as_mlflows_own_call_by_call(tmp_path, store):
    patch = pytest.MonkeyPatch()
    ours = Server(tmp_path / "direct", store[0], True, patch)
    theirs = Server(tmp_path / "mlflow", store[0], False, patch)
    try:
        calls = _calls(store[1], store[2])
        for mine, mlflow, call in zip(_play(ours, calls), _play(theirs, calls), calls, strict=True):
            assert mine == mlflow, f"{call[0]} {call[1]} {json.dumps(call[2])[:200]}"
        mine_rows, mlflow_rows = ours.rows(), theirs.rows()
        for table in TABLES:
            assert _rows(mine_rows[table], store[1:]) == _rows(mlflow_rows[table], store[1:]), table
        assert sum(len(rows) for rows in mine_rows.values()) > 30  # the calls wrote rows
        # a call not answered here is MLflow's, through the same server
        status, answer = ours.call("POST", "experiments/search", {"max_results": 10})
        assert status == 200, answer
        assert sorted(e["name"] for e in answer["experiments"]) == ["Default", "lab"]
    finally:
        ours.stop()
        theirs.stop()
    counts = re.search(
        r"\((\d+) calls answered from the store, (\d+) by MLflow's app\)", ours.log()
    )
    assert counts, ours.log()
    answered, passed = int(counts[1]), int(counts[2])
    unusual = 10  # the calls under "unusual" that MLflow refuses, and experiments/search
    assert (answered, passed) == (len(calls) - unusual + 1, unusual), ours.log()
    assert "0 calls answered from the store" in theirs.log()


def _rows(rows: list[tuple], run_ids: tuple[str, ...]) -> list[tuple]:
    """A table's rows, sorted, with the server's own ids (logged models', datasets', inputs')
    named by order of appearance; run ids kept."""
    pattern = re.compile(r"m-[0-9a-f]{32}|\b[0-9a-f]{32}\b")

    def sub(value, replace):
        if not isinstance(value, str):
            return value
        return pattern.sub(lambda m: m[0] if m[0] in run_ids else replace(m[0]), value)

    ordered = sorted(rows, key=lambda row: json.dumps([sub(v, lambda _: "<id>") for v in row]))
    names: dict[str, str] = {}
    return [
        tuple(sub(v, lambda i: names.setdefault(i, f"<id{len(names)}>")) for v in row)
        for row in ordered
    ]


def test_the_direct_server_answers_a_real_clients_run_without_loading_mlflow(
    tmp_path, store, monkeypatch
):
    """MLflow's own client (this machine's) logs a run's params, metrics, tags, a dataset and a
    logged model through a fresh direct server: every call is answered from the store (MLflow's
    app is never loaded), and MLflow reads the run back as it was logged."""
    server = Server(tmp_path / "ws", store[0], True, monkeypatch)
    script = f"""
import mlflow, pandas
mlflow.set_tracking_uri({server.url!r})
with mlflow.start_run(run_id={store[1]!r}):
    mlflow.log_param("alpha", 0.5)
    mlflow.log_metrics({{"acc": 0.75, "loss": 0.25}}, step=1)
    mlflow.set_tag("team", "a")
    frame = pandas.DataFrame({{"x": [1, 2]}})
    mlflow.log_input(mlflow.data.from_pandas(frame, name="frame"), context="train")
    model = mlflow.create_external_model(name="ext", model_type="demo")
    mlflow.log_metric("auc", 0.9, model_id=model.model_id)
run = mlflow.get_run({store[1]!r})
print(run.info.status, run.data.params, run.data.metrics["acc"], len(run.inputs.dataset_inputs))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    server.stop()
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "FINISHED {'alpha': '0.5'} 0.75 1", done.stdout
    log = server.log()
    assert "loaded MLflow's app" not in log, log
    assert re.search(r"\((\d+) calls answered from the store, 0 by MLflow's app\)", log), log
