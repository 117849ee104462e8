"""A workspace's MLflow store (SQLite), written directly for the calls on every job's way: its
experiment found or made, its run made, its run ended. They are the rows MLflow's SqlAlchemyStore
writes for MlflowClient.create_experiment, create_run and set_terminated (tests/test_mlflow_db.py
compares them with MLflow's own, table by table), written without loading MLflow, which takes
seconds before the first job could start otherwise.

Only a store whose schema revision is the one this MLflow made (its empty template's, made by
MLflow itself) is written here; `open` returns None for any other, and the caller goes through
MLflow. Anything unusual (a deleted experiment or run) is left to MLflow too, for its own error.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

BUSY_TIMEOUT = 60.0  # seconds a write waits for the jobs' own MLflow writers


def template() -> Path:
    """Where the empty store MLflow made (every migration applied) is kept for this MLflow
    version: its schema is the one written here (local._template_db makes it)."""
    from ..cache import cache_dir
    from .envs import mlflow_version

    return cache_dir() / f"mlflow-{mlflow_version()}-empty.db"


def revision(db: Path) -> str | None:
    """The store's schema revision (alembic's), or None if it has none."""
    if not db.exists():
        return None
    try:
        row = _read_one(db, "SELECT version_num FROM alembic_version", ())
    except sqlite3.Error:
        return None
    return row[0] if row else None


def _connect(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(db, timeout=BUSY_TIMEOUT, isolation_level=None)


def _read_one(db: Path, sql: str, args: tuple) -> tuple | None:
    con = _connect(db)
    try:
        return con.execute(sql, args).fetchone()
    finally:
        con.close()


def _millis() -> int:
    return int(time.time() * 1000)


class Store:
    """The rows of one store; every call is its own transaction (safe from any thread)."""

    def __init__(self, db: Path):
        self.db = db

    @classmethod
    def open(cls, db: Path, made_by_mlflow: Path | None = None) -> Store | None:
        """A Store on `db` if its schema is the template's (this MLflow's), else None."""
        known = revision(made_by_mlflow or template())
        return cls(db) if known is not None and revision(db) == known else None

    @classmethod
    def for_uri(cls, tracking_uri: str) -> Store | None:
        """The Store of a local tracking URI (sqlite:///PATH), if it is one of this schema."""
        prefix = "sqlite:///"
        if not tracking_uri.startswith(prefix):
            return None
        return cls.open(Path(tracking_uri[len(prefix) :]))

    def _write(self, statements) -> int:
        """Run (sql, args) pairs in one write transaction; the last one's row count."""
        con = _connect(self.db)
        try:
            con.execute("BEGIN IMMEDIATE")
            count = 0
            for sql, args in statements:
                count = con.execute(sql, args).rowcount
            con.execute("COMMIT")
            return count
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def experiment_id(self, name: str, artifact_location: str) -> str | None:
        """The id of the active experiment `name`, made if there is none (None: it exists but is
        deleted: MLflow says what to do)."""
        row = _read_one(
            self.db,
            "SELECT experiment_id, lifecycle_stage FROM experiments "
            "WHERE name = ? AND workspace = 'default'",
            (name,),
        )
        if row is None:
            at = _millis()
            try:
                self._write(
                    [
                        (
                            "INSERT INTO experiments (name, artifact_location, lifecycle_stage, "
                            "creation_time, last_update_time) VALUES (?, ?, 'active', ?, ?)",
                            (name, artifact_location, at, at),
                        )
                    ]
                )
            except sqlite3.IntegrityError:  # made meanwhile by another writer
                pass
            return self.experiment_id(name, artifact_location)
        return str(row[0]) if row[1] == "active" else None

    def create_run(
        self, experiment_id: str, run_name: str, tags: dict[str, str]
    ) -> tuple[str, str] | None:
        """A RUNNING run in the experiment, as MlflowClient.create_run makes it: (run id, artifact
        URI); None if MLflow would refuse it (the experiment is not active, a tag names the run
        otherwise)."""
        if tags.get("mlflow.runName", run_name) != run_name:
            return None  # MLflow refuses it, and says why
        row = _read_one(
            self.db,
            "SELECT artifact_location, lifecycle_stage FROM experiments WHERE experiment_id = ?",
            (int(experiment_id),),
        )
        if row is None or row[1] != "active":
            return None
        run_id = uuid.uuid4().hex
        artifact_uri = f"{row[0].rstrip('/')}/{run_id}/artifacts"
        tags = {"mlflow.runName": run_name, **tags}
        self._write(
            [
                (
                    "INSERT INTO runs (run_uuid, name, source_type, source_name, "
                    "entry_point_name, user_id, status, start_time, end_time, source_version, "
                    "lifecycle_stage, artifact_uri, experiment_id, deleted_time) "
                    "VALUES (?, ?, 'UNKNOWN', '', '', ?, 'RUNNING', ?, NULL, '', 'active', ?, ?, "
                    "NULL)",
                    (
                        run_id,
                        run_name,
                        tags.get("mlflow.user", "unknown"),
                        _millis(),
                        artifact_uri,
                        int(experiment_id),
                    ),
                ),
                *(
                    ("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", (k, v, run_id))
                    for k, v in tags.items()
                ),
            ]
        )
        return run_id, artifact_uri

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        """A new run's parameters, as MlflowClient.log_batch(params=...) writes them."""
        self._write(
            [
                ("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", (k, v, run_id))
                for k, v in params.items()
            ]
        )

    def log_metrics(self, run_id: str, metrics: Mapping[str, float]) -> None:
        """Metrics at step 0, now, as MlflowClient.log_batch(metrics=...) writes them (each
        also the run's latest value of its key)."""
        at = _millis()
        rows = [(k, float(v), at, run_id) for k, v in metrics.items()]
        self._write(
            [
                (
                    "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
                    "VALUES (?, ?, ?, ?, 0, 0)",
                    row,
                )
                for row in rows
            ]
            + [
                (
                    "INSERT OR REPLACE INTO latest_metrics "
                    "(key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, 0, 0)",
                    row,
                )
                for row in rows
            ]
        )

    def children(self, parent_id: str) -> list[Run]:
        """The active runs tagged mlflow.parentRunId = parent_id, oldest first (what
        search_runs with that filter, ordered by start time, gives)."""
        con = _connect(self.db)
        try:
            ids = [
                r[0]
                for r in con.execute(
                    "SELECT runs.run_uuid FROM runs JOIN tags ON tags.run_uuid = runs.run_uuid "
                    "WHERE tags.key = 'mlflow.parentRunId' AND tags.value = ? "
                    "AND runs.lifecycle_stage = 'active' "
                    "ORDER BY runs.start_time IS NULL, runs.start_time, runs.run_uuid",
                    (parent_id,),
                )
            ]
        finally:
            con.close()
        found = self.runs(ids)
        return [found[i] for i in ids if i in found]

    def set_terminated(self, run_id: str, status: str, end_time: int | None = None) -> bool:
        """End an active run with an MLflow status (FINISHED, FAILED, KILLED), at `end_time`
        (epoch milliseconds) or now; False if there is no such active run."""
        return (
            self._write(
                [
                    (
                        "UPDATE runs SET status = ?, end_time = ? "
                        "WHERE run_uuid = ? AND lifecycle_stage = 'active'",
                        (status, end_time or _millis(), run_id),
                    )
                ]
            )
            == 1
        )

    def runs(self, run_ids: list[str]) -> dict[str, Run]:
        """The runs as MlflowClient.get_run gives them (info, params, latest metrics, tags), a
        query per table per 500 runs; a run the store does not have is left out."""
        found: dict[str, Run] = {}
        con = _connect(self.db)
        try:
            for i in range(0, len(run_ids), 500):
                chunk = run_ids[i : i + 500]
                marks = ", ".join("?" * len(chunk))
                for row in con.execute(
                    "SELECT run_uuid, name, status, start_time, end_time, experiment_id, "
                    f"artifact_uri, lifecycle_stage, user_id FROM runs WHERE run_uuid IN ({marks})",
                    chunk,
                ):
                    info = RunInfo(row[0], row[1], row[2], row[3], row[4], str(row[5]), *row[6:])
                    found[row[0]] = Run(info, RunData({}, {}, {}))
                for key, value, run_id in con.execute(
                    f"SELECT key, value, run_uuid FROM params WHERE run_uuid IN ({marks})", chunk
                ):
                    found[run_id].data.params[key] = value
                for key, value, is_nan, run_id in con.execute(
                    "SELECT key, value, is_nan, run_uuid FROM latest_metrics "
                    f"WHERE run_uuid IN ({marks})",
                    chunk,
                ):
                    found[run_id].data.metrics[key] = float("nan") if is_nan else value
                for key, value, run_id in con.execute(
                    f"SELECT key, value, run_uuid FROM tags WHERE run_uuid IN ({marks})", chunk
                ):
                    found[run_id].data.tags[key] = value
        finally:
            con.close()
        return found


@dataclass(frozen=True)
class RunInfo:
    """The fields of MLflow's RunInfo that mlrun reads."""

    run_id: str
    run_name: str | None
    status: str
    start_time: int | None
    end_time: int | None
    experiment_id: str
    artifact_uri: str | None
    lifecycle_stage: str
    user_id: str | None


@dataclass(frozen=True)
class RunData:
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


@dataclass(frozen=True)
class Run:
    """A run as mlrun reads MLflow's (`run.info.status`, `run.data.metrics`, ...)."""

    info: RunInfo
    data: RunData
