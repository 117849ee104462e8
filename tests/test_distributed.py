"""Distributed jobs on the local target: instance_count x processes with Azure ML's variables,
one MLflow run, a log per process, and all stopped together when one fails."""

import json
import time
from pathlib import Path

import pytest
from conftest import mlflow_client, run_mlrun

from runner.backends import distributed

pytestmark = pytest.mark.e2e

SHOW = "echo $RANK $LOCAL_RANK $NODE_RANK $WORLD_SIZE $MASTER_ADDR $MASTER_PORT $MLFLOW_RUN_ID"


def lab(folder: Path, job: str, nodes: int = 2) -> Path:
    spec = folder / "lab.yaml"
    spec.write_text(
        "name: dist\nworkspace: {name: ws-dist}\n"
        f"computes: {{gpu: {{type: amlcompute, max_instances: {nodes}}}}}\n"
        "jobs:\n" + job
    )
    return spec


def test_pytorch_two_instances_two_processes_each(tmp_path):
    spec = lab(
        tmp_path,
        "  train:\n"
        f"    command: {SHOW}\n"
        "    compute: gpu\n"
        "    resources: {instance_count: 2}\n"
        "    distribution: {type: pytorch, process_count_per_instance: 2}\n",
    )
    run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0)
    client = mlflow_client(tmp_path, "ws-dist")
    (run,) = client.search_runs([client.get_experiment_by_name("dist").experiment_id])
    folder = Path(client.download_artifacts(run.info.run_id, "user_logs"))
    logs = sorted(p.name for p in folder.iterdir())
    assert logs == [f"std_log_process_{r}.txt" for r in range(4)]
    rows = [(folder / f"std_log_process_{r}.txt").read_text().split() for r in range(4)]
    assert [r[:4] for r in rows] == [
        ["0", "0", "0", "4"],
        ["1", "1", "0", "4"],
        ["2", "0", "1", "4"],
        ["3", "1", "1", "4"],
    ]
    assert {tuple(r[4:]) for r in rows} == {("127.0.0.1", rows[0][5], run.info.run_id)}
    assert run.info.status == "FINISHED"
    shown = run_mlrun("logs", spec, "train", cwd=tmp_path, check=0).stdout  # rank 0's, as Azure
    assert shown.split()[:4] == ["0", "0", "0", "4"]


def test_one_failing_process_fails_the_job_and_stops_the_others(tmp_path):
    spec = lab(
        tmp_path,
        "  train:\n"
        "    command: 'if [ $RANK = 1 ]; then exit 3; fi; sleep 300'\n"
        "    compute: gpu\n"
        "    resources: {instance_count: 2}\n"
        "    distribution: {type: pytorch}\n",
    )
    start = time.monotonic()
    proc = run_mlrun("apply", "-y", spec, cwd=tmp_path)
    assert proc.returncode == 1
    assert time.monotonic() - start < 150  # the sleepers were stopped, not waited for
    assert "train (run " in proc.stderr and "exit code 3" in proc.stderr


def test_tensorflow_and_mpi_get_their_variables():
    tf = distributed.processes(
        {"type": "tensorflow", "worker_count": 2, "parameter_server_count": 1}, 2
    )
    configs = [json.loads(p["TF_CONFIG"]) for p in tf]
    assert [c["task"] for c in configs] == [
        {"type": "worker", "index": 0},
        {"type": "worker", "index": 1},
        {"type": "ps", "index": 0},
    ]
    assert len(configs[0]["cluster"]["worker"]) == 2 and len(configs[0]["cluster"]["ps"]) == 1
    assert all(
        c["cluster"] == configs[0]["cluster"] and c["environment"] == "cloud" for c in configs
    )
    alone = json.loads(distributed.processes({"type": "tensorflow"}, 1)[0]["TF_CONFIG"])
    assert alone["cluster"]["ps"] == []  # listed empty, as Azure ML does
    mpi = distributed.processes({"type": "mpi", "process_count_per_instance": 2}, 2)
    assert [(p["OMPI_COMM_WORLD_RANK"], p["OMPI_COMM_WORLD_LOCAL_RANK"]) for p in mpi] == [
        ("0", "0"),
        ("1", "1"),
        ("2", "0"),
        ("3", "1"),
    ]
    assert {p["OMPI_COMM_WORLD_SIZE"] for p in mpi} == {"4"}
    assert mpi[0]["AZ_BATCH_MASTER_NODE"].startswith("127.0.0.1:")


def test_a_job_cannot_ask_for_more_instances_than_its_compute_has(tmp_path):
    line = "  train: {command: echo, compute: gpu, resources: {instance_count: 3}}"
    spec = lab(tmp_path, line + "\n")
    proc = run_mlrun("validate", spec, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == (
        f"lab.yaml:5:{line.index('3}') + 1}: error: $.jobs.train.resources.instance_count: "
        "the job asks for 3 "
        "instances, but compute 'gpu' has max_instances 2"
    )
