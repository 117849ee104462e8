"""MLflow's REST API for the calls a job makes on every run (its run read, updated and ended; its
params, metrics and tags; its dataset inputs; its logged models made, read and finalized),
answered from the workspace's store directly, with the rows SqlAlchemyStore writes and the answers
MLflow's server gives (tests/test_tracking_api.py sends each call to both and compares them).
Anything else, and anything unusual (a run that is not active, a param changed, a name or value
MLflow would refuse or cut), goes to MLflow's own app, loaded when first needed, which answers
with its own rows or its own error; nothing is written here before that is decided.

So a job pays for MLflow's server (three seconds of CPU, on the cores the jobs run on) only when
it calls what is not here. Only a store of this MLflow's schema is written here (mlflow_db.Store);
for any other every call goes to MLflow.
"""

from __future__ import annotations

import io
import json
import math
import posixpath
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from . import mlflow_db

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]

PREFIXES = ("/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/")
_NAME = re.compile(r"^[/\w.\- :]*$")  # MLflow's rule for param, metric and tag names
KEY_MAX, PARAM_MAX, TAG_MAX = 250, 6000, 8000
BATCH_BYTES, BATCH_METRICS, BATCH_PARAMS_TAGS, BATCH_ALL = 1_000_000, 1000, 100, 1000
RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
MODEL_STATUSES = {
    0: "LOGGED_MODEL_STATUS_UNSPECIFIED",
    1: "LOGGED_MODEL_PENDING",
    2: "LOGGED_MODEL_READY",
    3: "LOGGED_MODEL_UPLOAD_FAILED",
}
DATASET_LIMITS = {"name": 500, "digest": 36, "source": 65535, "schema": 1048575}
PROFILE_MAX, INPUT_TAG_KEY_MAX, INPUT_TAG_VALUE_MAX = 16777215, 255, 500
MAX_FLOAT = 1.7976931348623157e308
SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class Unusual(Exception):
    """MLflow's own app answers this call (with its own rows, or its own error)."""


def _millis() -> int:
    return int(time.time() * 1000)


def _str(body: dict, field: str, required: bool = True) -> str | None:
    value = body.get(field)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise Unusual(field)
    return value


def _int(body: dict, field: str, default: int | None = None) -> int | None:
    value = body.get(field, default)
    if value is None and default is None and field not in body:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unusual(field)
    return value


def _name(key: Any) -> str:
    """A param, metric or tag name MLflow takes as it is."""
    if not isinstance(key, str) or not key or len(key) > KEY_MAX or not _NAME.match(key):
        raise Unusual("name")
    norm = posixpath.normpath(key)
    if norm != key or norm == "." or norm.startswith("..") or norm.startswith("/"):
        raise Unusual("name")
    return key


def _value(value: Any, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise Unusual("value")  # MLflow cuts it (with a warning) or refuses it
    return value


def _pairs(items: Any, limit: int) -> list[tuple[str, str]]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise Unusual("list")
    return [(_name(i.get("key")), _value(i.get("value"), limit)) for i in _dicts(items)]


def _dicts(items: Any) -> list[dict]:
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise Unusual("list")
    return items


class _Metric:
    """One metric of a call, as MLflow stores it (NaN as 0 and is_nan, infinities clamped)."""

    def __init__(self, body: dict):
        self.key = _name(body.get("key"))
        value = body.get("value")
        value = (
            SPECIAL_FLOATS.get(value, value) if isinstance(value, str) else value
        )  # JSON: no NaN
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Unusual("value")
        self.timestamp = _int(body, "timestamp")
        self.step = _int(body, "step", 0)
        if self.timestamp is None or self.timestamp < 0:
            raise Unusual("timestamp")
        self.is_nan = math.isnan(value)
        self.value = 0.0 if self.is_nan else max(-MAX_FLOAT, min(MAX_FLOAT, float(value)))
        self.model_id = _str(body, "model_id", required=False) or None
        self.dataset_name = _str(body, "dataset_name", required=False) or None
        self.dataset_digest = _str(body, "dataset_digest", required=False) or None


class Api:
    """The WSGI app of the workspace's tracking server. `store` is the direct store (None: every
    call goes to MLflow); `mlflow_app()` loads MLflow's own app, once."""

    def __init__(self, store: mlflow_db.Store | None, mlflow_app: Callable[[], WSGIApp]):
        self.store = store
        self._load = mlflow_app
        self._app: WSGIApp | None = None
        self._loading = threading.Lock()
        self.answered = 0  # calls answered here (server.log says how many at the end)
        self.passed = 0  # calls MLflow's app answered

    def mlflow(self) -> WSGIApp:
        with self._loading:
            if self._app is None:
                self._app = self._load()
            return self._app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        if path == "/health":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"OK"]
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(size) if size > 0 else b""
        route = _route(path, method)
        if route is not None and self.store is not None:
            try:
                answer = self._answer(route, environ, body)
            except Unusual:
                pass
            else:
                self.answered += 1
                data = json.dumps(answer, indent=2).encode()
                start_response(
                    "200 OK",
                    [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
                )
                return [data]
        self.passed += 1
        environ["wsgi.input"] = io.BytesIO(body)  # read above: MLflow reads it again
        return self.mlflow()(environ, start_response)

    def _answer(self, route: tuple[str, str | None], environ: dict, raw: bytes) -> dict:
        call, model_id = route
        if environ.get("REQUEST_METHOD") == "GET":
            body: Any = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        else:
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                raise Unusual("json") from None
            if not isinstance(body, dict):
                raise Unusual("json")
            if call == "log-batch" and len(raw) > BATCH_BYTES:
                raise Unusual("size")
        assert self.store is not None
        con = sqlite3.connect(self.store.db, timeout=mlflow_db.BUSY_TIMEOUT, isolation_level=None)
        try:
            con.execute("BEGIN" if call in READS else "BEGIN IMMEDIATE")
            try:
                answer = CALLS[call](con, body, model_id)
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
            return answer
        finally:
            con.close()


def _route(path: str, method: str) -> tuple[str, str | None] | None:
    """(call, logged model id) of a call answered here, or None."""
    for prefix in PREFIXES:
        if path.startswith(prefix):
            rest = path[len(prefix) :]
            break
    else:
        return None
    if rest.startswith("logged-models/") and rest.count("/") == 1:
        model_id = rest.split("/")[1]
        if method == "GET":
            return "get-logged-model", model_id
        return ("finalize-logged-model", model_id) if method == "PATCH" else None
    call = ROUTES.get((method, rest))
    return (call, None) if call else None


# -- runs ------------------------------------------------------------------------------------------


def _active_run(con: sqlite3.Connection, body: dict) -> tuple[str, int]:
    """(run id, experiment id) of the call's run, which must exist and be active."""
    run_id = body.get("run_id") or body.get("run_uuid")
    if not isinstance(run_id, str):
        raise Unusual("run_id")
    row = con.execute(
        "SELECT experiment_id, lifecycle_stage FROM runs WHERE run_uuid = ?", (run_id,)
    ).fetchone()
    if row is None or row[1] != "active":
        raise Unusual("run")  # MLflow's "not found" or "must be in the 'active' state"
    return run_id, row[0]


def _run_info(con: sqlite3.Connection, run_id: str) -> dict:
    row = con.execute(
        "SELECT run_uuid, name, experiment_id, user_id, status, start_time, end_time, "
        "artifact_uri, lifecycle_stage FROM runs WHERE run_uuid = ?",
        (run_id,),
    ).fetchone()
    if row is None:
        raise Unusual("run")
    info: dict[str, Any] = {"run_id": row[0]}
    if row[1] is not None:
        info["run_name"] = row[1]
    info.update(experiment_id=str(row[2]), user_id=row[3], status=row[4], start_time=row[5])
    if row[6]:
        info["end_time"] = row[6]
    if row[7]:
        info["artifact_uri"] = row[7]
    info["lifecycle_stage"] = row[8]
    info["run_uuid"] = row[0]
    if info["user_id"] is None or info["start_time"] is None:
        raise Unusual("run")
    return info


def _metric_json(key: str, value: float, timestamp: int, step: int, is_nan: Any) -> dict:
    return {"key": key, "value": "NaN" if is_nan else value, "timestamp": timestamp, "step": step}


def get_run(con: sqlite3.Connection, body: dict, _: str | None) -> dict:
    run_id = body.get("run_id") or body.get("run_uuid")
    if not isinstance(run_id, str):
        raise Unusual("run_id")
    run: dict[str, Any] = {"info": _run_info(con, run_id)}
    data: dict[str, list] = {}
    metrics = [
        _metric_json(*row)
        for row in con.execute(
            "SELECT key, value, timestamp, step, is_nan FROM latest_metrics WHERE run_uuid = ?",
            (run_id,),
        )
    ]
    params = [
        {"key": k, "value": v}
        for k, v in con.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,))
    ]
    tags = [
        {"key": k, "value": v}
        for k, v in con.execute("SELECT key, value FROM tags WHERE run_uuid = ?", (run_id,))
    ]
    for field, items in (("metrics", metrics), ("params", params), ("tags", tags)):
        if items:
            data[field] = items
    run["data"] = data
    run["inputs"] = _run_inputs(con, run_id)
    outputs = [
        {"model_id": m, "step": s}
        for m, s in con.execute(
            "SELECT destination_id, step FROM inputs WHERE source_type = 'RUN_OUTPUT' "
            "AND source_id = ? AND destination_type = 'MODEL_OUTPUT'",
            (run_id,),
        )
    ]
    run["outputs"] = {"model_outputs": outputs} if outputs else {}
    return {"run": run}


def _run_inputs(con: sqlite3.Connection, run_id: str) -> dict:
    datasets: dict[str, dict] = {}
    for input_uuid, name, digest, source_type, source, schema, profile in con.execute(
        "SELECT inputs.input_uuid, d.name, d.digest, d.dataset_source_type, d.dataset_source, "
        "d.dataset_schema, d.dataset_profile FROM inputs JOIN datasets d "
        "ON inputs.source_id = d.dataset_uuid "
        "WHERE inputs.destination_type = 'RUN' AND inputs.destination_id = ?",
        (run_id,),
    ):
        dataset: dict[str, Any] = {
            "name": name,
            "digest": digest,
            "source_type": source_type,
            "source": source,
        }
        if schema:
            dataset["schema"] = schema
        if profile:
            dataset["profile"] = profile
        tags = [
            {"key": k, "value": v}
            for k, v in con.execute(
                "SELECT name, value FROM input_tags WHERE input_uuid = ?", (input_uuid,)
            )
        ]
        datasets[input_uuid] = {"tags": tags, "dataset": dataset} if tags else {"dataset": dataset}
    models = [
        {"model_id": m}
        for (m,) in con.execute(
            "SELECT destination_id FROM inputs WHERE source_type = 'RUN_INPUT' AND source_id = ? "
            "AND destination_type = 'MODEL_INPUT'",
            (run_id,),
        )
    ]
    inputs: dict[str, list] = {}
    if datasets:
        inputs["dataset_inputs"] = list(datasets.values())
    if models:
        inputs["model_inputs"] = models
    return inputs


def update_run(con: sqlite3.Connection, body: dict, _: str | None) -> dict:
    run_id, _experiment = _active_run(con, body)
    status = _str(body, "status", required=False)
    if status is not None and status not in RUN_STATUSES:
        raise Unusual("status")
    end_time = _int(body, "end_time")
    run_name = _str(body, "run_name", required=False)
    if status is not None:
        con.execute("UPDATE runs SET status = ? WHERE run_uuid = ?", (status, run_id))
    if end_time is not None:
        con.execute("UPDATE runs SET end_time = ? WHERE run_uuid = ?", (end_time, run_id))
    if run_name:
        _name_run(con, run_id, run_name)
    return {"run_info": _run_info(con, run_id)}


def _name_run(con: sqlite3.Connection, run_id: str, name: str) -> None:
    """The run's name, and its mlflow.runName tag, as update_run_info sets both."""
    con.execute("UPDATE runs SET name = ? WHERE run_uuid = ?", (name, run_id))
    con.execute(
        "INSERT INTO tags (key, value, run_uuid) VALUES ('mlflow.runName', ?, ?) "
        "ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value",
        (name, run_id),
    )


def log_metric(con: sqlite3.Connection, body: dict, _: str | None) -> dict:
    run_id, experiment_id = _active_run(con, body)
    metric = _Metric(body)
    _write_metrics(con, run_id, experiment_id, [metric])
    return {}


def _write_metrics(
    con: sqlite3.Connection, run_id: str, experiment_id: int, metrics: list[_Metric]
) -> None:
    """The metrics' rows, each once; the run's latest value of each key (the greatest step,
    then timestamp, then value); and a logged model's metric rows for those naming a model."""
    for m in metrics:
        if m.model_id is None:
            continue
        if (
            con.execute(
                "SELECT 1 FROM logged_model_metrics WHERE model_id = ? AND metric_name = ? AND "
                "metric_timestamp_ms = ? AND metric_step = ? AND run_id = ?",
                (m.model_id, m.key, m.timestamp, m.step, run_id),
            ).fetchone()
            or not con.execute(
                "SELECT 1 FROM logged_models WHERE model_id = ?", (m.model_id,)
            ).fetchone()
        ):
            raise Unusual("model metric")
    model_rows: set[tuple] = set()
    for m in metrics:
        if m.model_id is not None:
            row = (m.model_id, m.key, m.timestamp, m.step, m.value, experiment_id, run_id)
            if row[:4] in {r[:4] for r in model_rows}:
                raise Unusual("model metric")
            model_rows.add(row + (None, m.dataset_name, m.dataset_digest))
    con.executemany(
        "INSERT INTO logged_model_metrics (model_id, metric_name, metric_timestamp_ms, "
        "metric_step, metric_value, experiment_id, run_id, dataset_uuid, dataset_name, "
        "dataset_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        sorted(model_rows, key=str),
    )
    latest: dict[str, _Metric] = {}
    for m in metrics:
        inserted = con.execute(
            "INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (m.key, m.value, m.timestamp, run_id, m.step, m.is_nan),
        ).rowcount
        if not inserted:
            continue  # logged before: MLflow keeps one row
        best = latest.get(m.key)
        if best is None:
            row = con.execute(
                "SELECT step, timestamp, value FROM latest_metrics WHERE run_uuid = ? AND key = ?",
                (run_id, m.key),
            ).fetchone()
            if row is None or (m.step, m.timestamp, m.value) > tuple(row):
                latest[m.key] = m
        elif (m.step, m.timestamp, m.value) > (best.step, best.timestamp, best.value):
            latest[m.key] = m
    con.executemany(
        "INSERT OR REPLACE INTO latest_metrics (key, value, timestamp, run_uuid, step, is_nan) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(m.key, m.value, m.timestamp, run_id, m.step, m.is_nan) for m in latest.values()],
    )


def log_param(con: sqlite3.Connection, body: dict, _: str | None) -> dict:
    run_id, _experiment = _active_run(con, body)
    _write_params(con, run_id, [(_name(body.get("key")), _value(body.get("value"), PARAM_MAX))])
    return {}


def _write_params(con: sqlite3.Connection, run_id: str, params: list[tuple[str, str]]) -> None:
    if len({k for k, _ in params}) != len(params):
        raise Unusual("duplicate params")
    for key, value in params:
        row = con.execute(
            "SELECT value FROM params WHERE run_uuid = ? AND key = ?", (run_id, key)
        ).fetchone()
        if row is not None and row[0] != value:
            raise Unusual("param changed")  # MLflow refuses it, and says why
        if row is None:
            con.execute(
                "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", (key, value, run_id)
            )


def set_tag(con: sqlite3.Connection, body: dict, _: str | None) -> dict:
    run_id, _experiment = _active_run(con, body)
    _write_tags(con, run_id, [(_name(body.get("key")), _value(body.get("value"), TAG_MAX))])
    return {}


def _write_tags(con: sqlite3.Connection, run_id: str, tags: list[tuple[str, str]]) -> None:
    for key, value in tags:
        if key == "mlflow.runName":
            if value:  # an empty name changes nothing, as in MLflow
                _name_run(con, run_id, value)
        else:
            con.execute(
                "INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?) "
                "ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value",
                (key, value, run_id),
            )


def log_batch(con: sqlite3.Connection, body: dict, _: str | None) -> dict:
    run_id, experiment_id = _active_run(con, body)
    metrics = [_Metric(m) for m in _dicts(body.get("metrics", []))]
    params = _pairs(body.get("params", []), PARAM_MAX)
    tags = _pairs(body.get("tags", []), TAG_MAX)
    if (
        len(metrics) > BATCH_METRICS
        or max(len(params), len(tags)) > BATCH_PARAMS_TAGS
        or len(metrics) + len(params) + len(tags) > BATCH_ALL
    ):
        raise Unusual("batch limits")
    _write_params(con, run_id, params)
    _write_metrics(con, run_id, experiment_id, metrics)
    _write_tags(con, run_id, tags)
    return {}


def log_inputs(con: sqlite3.Connection, body: dict, _: str | None) -> dict:
    run_id, experiment_id = _active_run(con, body)
    firsts: dict[tuple[str, str], tuple[dict, list[tuple[str, str]]]] = {}
    for item in _dicts(body.get("datasets", [])):
        dataset, tags = _dataset(item)
        firsts.setdefault((dataset["name"], dataset["digest"]), (dataset, tags))
    for (name, digest), (dataset, tags) in firsts.items():
        row = con.execute(
            "SELECT dataset_uuid FROM datasets WHERE experiment_id = ? AND name = ? AND digest = ?",
            (experiment_id, name, digest),
        ).fetchone()
        if row is None:
            dataset_uuid = uuid.uuid4().hex
            con.execute(
                "INSERT INTO datasets (dataset_uuid, experiment_id, name, digest, "
                "dataset_source_type, dataset_source, dataset_schema, dataset_profile) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    dataset_uuid,
                    experiment_id,
                    name,
                    digest,
                    dataset["source_type"],
                    dataset["source"],
                    dataset.get("schema"),
                    dataset.get("profile"),
                ),
            )
        else:
            dataset_uuid = row[0]
        if con.execute(
            "SELECT 1 FROM inputs WHERE source_type = 'DATASET' AND source_id = ? "
            "AND destination_type = 'RUN' AND destination_id = ?",
            (dataset_uuid, run_id),
        ).fetchone():
            continue
        input_uuid = uuid.uuid4().hex
        con.execute(
            "INSERT INTO inputs (input_uuid, source_type, source_id, destination_type, "
            "destination_id) VALUES (?, 'DATASET', ?, 'RUN', ?)",
            (input_uuid, dataset_uuid, run_id),
        )
        if len({k for k, _ in tags}) != len(tags):
            raise Unusual("duplicate input tags")
        con.executemany(
            "INSERT INTO input_tags (input_uuid, name, value) VALUES (?, ?, ?)",
            [(input_uuid, k, v) for k, v in tags],
        )
    for item in _dicts(body.get("models", [])):
        model_id = _str(item, "model_id")
        con.execute(
            "INSERT OR REPLACE INTO inputs (input_uuid, source_type, source_id, destination_type, "
            "destination_id, step) VALUES (?, 'RUN_INPUT', ?, 'MODEL_INPUT', ?, 0)",
            (uuid.uuid4().hex, run_id, model_id),
        )
    return {}


def _dataset(item: dict) -> tuple[dict, list[tuple[str, str]]]:
    """A dataset input's dataset (its fields within MLflow's limits) and its tags."""
    dataset = item.get("dataset")
    if not isinstance(dataset, dict):
        raise Unusual("dataset")
    for field in ("name", "digest", "source_type", "source"):
        if not isinstance(dataset.get(field), str):
            raise Unusual(field)
    for field, limit in DATASET_LIMITS.items():
        if len(dataset.get(field) or "") > limit:
            raise Unusual(field)
    for field in ("schema", "profile"):
        if dataset.get(field) is not None and not isinstance(dataset[field], str):
            raise Unusual(field)
    if len(dataset.get("profile") or "") > PROFILE_MAX:
        raise Unusual("profile")
    tags = []
    for tag in _dicts(item.get("tags", [])):
        key, value = tag.get("key"), tag.get("value")
        if not isinstance(key, str) or not key or len(key) > INPUT_TAG_KEY_MAX:
            raise Unusual("input tag")
        if not isinstance(value, str) or not value or len(value) > INPUT_TAG_VALUE_MAX:
            raise Unusual("input tag")
        tags.append((key, value))
    return dataset, tags


def log_outputs(con: sqlite3.Connection, body: dict, _: str | None) -> dict:
    run_id, _experiment = _active_run(con, body)
    models = _dicts(body.get("models"))
    rows: list[tuple[str, str | None, int | None]] = []
    for item in models:
        model_id, step = _str(item, "model_id"), _int(item, "step", 0)
        if con.execute(
            "SELECT 1 FROM inputs WHERE source_type = 'RUN_OUTPUT' AND source_id = ? "
            "AND destination_type = 'MODEL_OUTPUT' AND destination_id = ?",
            (run_id, model_id),
        ).fetchone() or model_id in {r[1] for r in rows}:
            raise Unusual("output logged before")
        rows.append((uuid.uuid4().hex, model_id, step))
    con.executemany(
        "INSERT INTO inputs (input_uuid, source_type, source_id, destination_type, "
        "destination_id, step) VALUES (?, 'RUN_OUTPUT', ?, 'MODEL_OUTPUT', ?, ?)",
        [(u, run_id, m, s) for u, m, s in rows],
    )
    return {}


# -- logged models ---------------------------------------------------------------------------------


def create_logged_model(con: sqlite3.Connection, body: dict, _: str | None) -> dict:
    experiment = _str(body, "experiment_id")
    assert experiment is not None
    name = _str(body, "name", required=False)
    if not name or any(c in name for c in "/:.%\"'"):
        raise Unusual("name")  # none: MLflow makes one up; a bad one: MLflow refuses it
    model_type = _str(body, "model_type", required=False) or ""
    source_run_id = _str(body, "source_run_id", required=False) or ""
    params, tags = _model_pairs(body.get("params")), _model_pairs(body.get("tags"))
    if not experiment.isdigit():
        raise Unusual("experiment_id")
    row = con.execute(
        "SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = ?",
        (int(experiment),),
    ).fetchone()
    if row is None or row[1] != "active" or not str(row[0]).startswith(("file:", "/")):
        raise Unusual("experiment")
    model_id = f"m-{uuid.uuid4().hex}"
    now = _millis()
    con.execute(
        "INSERT INTO logged_models (model_id, experiment_id, name, artifact_location, "
        "creation_timestamp_ms, last_updated_timestamp_ms, status, lifecycle_stage, model_type, "
        "source_run_id, status_message) VALUES (?, ?, ?, ?, ?, ?, 1, 'active', ?, ?, NULL)",
        (
            model_id,
            int(experiment),
            name,
            f"{str(row[0]).rstrip('/')}/models/{model_id}/artifacts",
            now,
            now,
            model_type,
            source_run_id,
        ),
    )
    con.executemany(
        "INSERT INTO logged_model_params (model_id, experiment_id, param_key, param_value) "
        "VALUES (?, ?, ?, ?)",
        [(model_id, int(experiment), k, v) for k, v in params],
    )
    con.executemany(
        "INSERT INTO logged_model_tags (model_id, experiment_id, tag_key, tag_value) "
        "VALUES (?, ?, ?, ?)",
        [(model_id, int(experiment), k, v) for k, v in tags],
    )
    return {"model": _logged_model(con, model_id)}


def _model_pairs(items: Any) -> list[tuple[str, str]]:
    pairs = []
    for item in _dicts(items or []):
        key, value = item.get("key"), item.get("value")
        if not isinstance(key, str) or not isinstance(value, str):
            raise Unusual("pair")
        pairs.append((key, value))
    if len({k for k, _ in pairs}) != len(pairs):
        raise Unusual("duplicate keys")
    return pairs


def _logged_model(con: sqlite3.Connection, model_id: str, allow_deleted: bool = False) -> dict:
    row = con.execute(
        "SELECT experiment_id, name, artifact_location, creation_timestamp_ms, "
        "last_updated_timestamp_ms, model_type, source_run_id, status, lifecycle_stage "
        "FROM logged_models WHERE model_id = ?",
        (model_id,),
    ).fetchone()
    if row is None or (row[8] == "deleted" and not allow_deleted) or row[7] not in MODEL_STATUSES:
        raise Unusual("logged model")
    info: dict[str, Any] = {
        "model_id": model_id,
        "experiment_id": str(row[0]),
        "name": row[1],
        "artifact_uri": row[2],
        "creation_timestamp_ms": row[3],
        "last_updated_timestamp_ms": row[4],
    }
    if row[5] is not None:
        info["model_type"] = row[5]
    if row[6] is not None:
        info["source_run_id"] = row[6]
    info["status"] = MODEL_STATUSES[row[7]]
    tags = [
        {"key": k, "value": v}
        for k, v in con.execute(
            "SELECT tag_key, tag_value FROM logged_model_tags WHERE model_id = ?", (model_id,)
        )
    ]
    if tags:
        info["tags"] = tags
    data: dict[str, list] = {}
    params = [
        {"key": k, "value": v}
        for k, v in con.execute(
            "SELECT param_key, param_value FROM logged_model_params WHERE model_id = ?",
            (model_id,),
        )
    ]
    metrics = []
    for key, value, timestamp, step, run_id, name, digest in con.execute(
        "SELECT metric_name, metric_value, metric_timestamp_ms, metric_step, run_id, "
        "dataset_name, dataset_digest FROM logged_model_metrics WHERE model_id = ?",
        (model_id,),
    ):
        metric = {"key": key, "value": value, "timestamp": timestamp, "step": step}
        metric.update(run_id=run_id, model_id=model_id)
        if name is not None:
            metric["dataset_name"] = name
        if digest is not None:
            metric["dataset_digest"] = digest
        metrics.append(metric)
    if params:
        data["params"] = params
    if metrics:
        data["metrics"] = metrics
    return {"info": info, "data": data}


def get_logged_model(con: sqlite3.Connection, body: dict, model_id: str | None) -> dict:
    assert model_id is not None
    allow = str(body.get("allow_deleted", "false")).lower() == "true"
    return {"model": _logged_model(con, model_id, allow_deleted=allow)}


def finalize_logged_model(con: sqlite3.Connection, body: dict, model_id: str | None) -> dict:
    status = body.get("status")
    if isinstance(status, str):  # an enum, by its name
        status = {name: number for number, name in MODEL_STATUSES.items()}.get(status)
    if status not in MODEL_STATUSES or isinstance(status, bool) or body.get("model_id") != model_id:
        raise Unusual("status")
    if not con.execute("SELECT 1 FROM logged_models WHERE model_id = ?", (model_id,)).fetchone():
        raise Unusual("logged model")
    con.execute(
        "UPDATE logged_models SET status = ?, last_updated_timestamp_ms = ? WHERE model_id = ?",
        (status, _millis(), model_id),
    )
    return {"model": _logged_model(con, str(model_id), allow_deleted=True)}


Call = Callable[[sqlite3.Connection, Any, "str | None"], dict]
CALLS: dict[str, Call] = {
    "get": get_run,
    "update": update_run,
    "log-metric": log_metric,
    "log-parameter": log_param,
    "set-tag": set_tag,
    "log-batch": log_batch,
    "log-inputs": log_inputs,
    "outputs": log_outputs,
    "create-logged-model": create_logged_model,
    "get-logged-model": get_logged_model,
    "finalize-logged-model": finalize_logged_model,
}
READS = frozenset({"get", "get-logged-model"})
ROUTES = {
    ("GET", "runs/get"): "get",
    ("POST", "runs/update"): "update",
    ("POST", "runs/log-metric"): "log-metric",
    ("POST", "runs/log-parameter"): "log-parameter",
    ("POST", "runs/set-tag"): "set-tag",
    ("POST", "runs/log-batch"): "log-batch",
    ("POST", "runs/log-inputs"): "log-inputs",
    ("POST", "runs/outputs"): "outputs",
    ("POST", "logged-models"): "create-logged-model",
}
