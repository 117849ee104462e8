"""Distributed jobs on the local target: `resources.instance_count` nodes, each running the
command as Azure ML would for its `distribution`, as that many processes on this machine, with
the variables Azure ML sets for each (pytorch: MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK,
LOCAL_RANK, NODE_RANK; tensorflow: TF_CONFIG; mpi: Open MPI's OMPI_COMM_WORLD_*). The supervisor
starts one process per file this writes (RUN_DIR/processes/RANK), logs each to
user_logs/std_log_process_RANK.txt and stops them all when one fails."""

from __future__ import annotations

import json
import socket
from pathlib import Path

HOST = "127.0.0.1"
KINDS = ("pytorch", "tensorflow", "mpi")  # ray runs as one process locally


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def processes(distribution: dict, nodes: int) -> list[dict[str, str]]:
    """Each process's variables, by rank."""
    kind = distribution.get("type")
    if kind == "tensorflow":
        return _tensorflow(distribution, nodes)
    per_node = int(distribution.get("process_count_per_instance") or 1)
    world = nodes * per_node
    if kind == "mpi":
        master = {"AZ_BATCHAI_MPI_MASTER_NODE": HOST}
        if nodes > 1:
            master["AZ_BATCH_MASTER_NODE"] = f"{HOST}:{free_port()}"
        return [
            {
                **master,
                "OMPI_COMM_WORLD_RANK": str(rank),
                "OMPI_COMM_WORLD_SIZE": str(world),
                "OMPI_COMM_WORLD_LOCAL_RANK": str(rank % per_node),
                "OMPI_COMM_WORLD_LOCAL_SIZE": str(per_node),
                **_node(rank // per_node, rank),
            }
            for rank in range(world)
        ]
    port = str(free_port())  # pytorch
    return [
        {
            "MASTER_ADDR": HOST,
            "MASTER_PORT": port,
            "WORLD_SIZE": str(world),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank % per_node),
            "LOCAL_WORLD_SIZE": str(per_node),
            "NODE_RANK": str(rank // per_node),
            **_node(rank // per_node, rank),
        }
        for rank in range(world)
    ]


def _tensorflow(distribution: dict, nodes: int) -> list[dict[str, str]]:
    """One process per worker and per parameter server, each told the whole cluster in TF_CONFIG
    (worker 0 is the chief; `ps` is listed, empty or not, as Azure ML does)."""
    workers = int(distribution.get("worker_count") or nodes)
    servers = int(distribution.get("parameter_server_count") or 0)
    cluster = {
        "worker": [f"{HOST}:{free_port()}" for _ in range(workers)],
        "ps": [f"{HOST}:{free_port()}" for _ in range(servers)],
    }
    tasks = [("worker", i) for i in range(workers)] + [("ps", i) for i in range(servers)]
    return [
        {
            "TF_CONFIG": json.dumps(
                {"cluster": cluster, "task": {"type": kind, "index": i}, "environment": "cloud"}
            ),
            **_node(min(rank, nodes - 1), rank),
        }
        for rank, (kind, i) in enumerate(tasks)
    ]


def _node(node: int, rank: int) -> dict[str, str]:
    return {"AZUREML_CR_NODE_RANK": str(node), "AZUREML_PROCESS_NAME": f"rank_{rank}"}


def write(folder: Path, distribution: dict, nodes: int) -> int:
    """RUN_DIR/processes/RANK, one per process (lines NAME=VALUE); how many."""
    folder.mkdir(parents=True, exist_ok=True)
    todo = processes(distribution, nodes)
    for rank, env in enumerate(todo):
        (folder / str(rank)).write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    return len(todo)
