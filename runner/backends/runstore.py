"""A workspace's MLflow runs as the local target and its controllers make, end and read them:
through mlflow_db (no MLflow loaded, milliseconds) when the store's schema is this MLflow's, else
through an MlflowClient (loaded when first needed). The one place that says "mlflow_db, else
MLflow"; the Azure backend reads children with `search_children` as this does without mlflow_db."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from . import mlflow_db

SEARCH_CHUNK = 100  # run ids per search_runs filter (`attributes.run_id IN (...)`)


class Runs:
    """`store()` gives the direct store (None: MLflow's schema is not known); `client()` the
    MlflowClient, called only when the direct store cannot answer; `lock` is held around every
    client call (a SQLite store takes one MLflow write at a time)."""

    def __init__(
        self,
        store: Callable[[], mlflow_db.Store | None],
        client: Callable[[], Any],
        lock: threading.Lock | None = None,
    ):
        self._store, self._client, self._lock = store, client, lock or threading.Lock()

    def experiment_id(self, name: str, location: str) -> str:
        """The experiment's id, made (artifacts at `location`) if there is none."""
        store = self._store()
        found = store.experiment_id(name, location) if store else None
        if found is not None:
            return found
        client = self._client()  # it says what is wrong with a deleted experiment
        with self._lock:
            exp = client.get_experiment_by_name(name)
            return (
                exp.experiment_id
                if exp is not None
                else client.create_experiment(name, artifact_location=location)
            )

    def create(
        self, experiment: str, run_name: str, tags: dict, params: dict | None = None
    ) -> tuple[str, str]:
        """A new RUNNING run with its tags and params: (run id, artifact URI)."""
        store = self._store()
        made = store.create_run(experiment, run_name, tags) if store else None
        if store is not None and made is not None:
            if params:
                store.log_params(made[0], params)
            return made
        client = self._client()
        with self._lock:
            run = client.create_run(experiment, run_name=run_name, tags=tags)
            if params:
                from mlflow.entities import Param

                client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()])
        return run.info.run_id, run.info.artifact_uri

    def end(self, run_id: str, mlflow_status: str, end_time: int | None = None) -> None:
        """End the run with an MLflow status (FINISHED, FAILED, KILLED), at `end_time` (epoch
        milliseconds: when its process ended) or now."""
        store = self._store()
        if store is not None and store.set_terminated(run_id, mlflow_status, end_time):
            return
        client = self._client()
        with self._lock:
            client.set_terminated(run_id, mlflow_status, end_time=end_time)

    def get(self, run_id: str) -> Any:
        """The run as MlflowClient.get_run gives it (info, params, latest metrics, tags)."""
        store = self._store()
        found = store.runs([run_id]).get(run_id) if store else None
        return found if found is not None else self._client().get_run(run_id)

    def read(self, wanted: Mapping[str, Iterable[str]]) -> dict[str, Any]:
        """Runs by id (`wanted`: experiment id -> run ids), read at once: from the store's tables,
        else in a search per hundred runs. A run neither finds is left out."""
        store = self._store()
        if store is not None:
            return store.runs(sorted({i for ids in wanted.values() for i in ids}))
        found: dict[str, Any] = {}
        client = self._client()
        for experiment, ids in wanted.items():
            ordered = sorted(ids)
            for i in range(0, len(ordered), SEARCH_CHUNK):
                chunk = ordered[i : i + SEARCH_CHUNK]
                quoted = ", ".join(f"'{run_id}'" for run_id in chunk)
                for run in client.search_runs(
                    [experiment], f"attributes.run_id IN ({quoted})", max_results=len(chunk)
                ):
                    found[run.info.run_id] = run
        return found

    def children(self, parent: Any) -> list:
        """A sweep's or pipeline's child runs, oldest first."""
        store = self._store()
        if store is not None:
            return store.children(parent.info.run_id)
        return search_children(self._client(), parent)


def search_children(client: Any, parent: Any) -> list:
    """A run's children through MLflow's search, oldest first."""
    return client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        order_by=["attributes.start_time ASC"],
    )
