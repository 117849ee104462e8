"""runner/backends/contract.py: the files the local backend hands a controller, and the one a
pipeline's controller hands back, read as they were written; another format version refused."""

import json

import pytest

from runner.backends import contract
from runner.records import StepRecord


def pipeline() -> contract.PipelineConfig:
    step = contract.StepConfig(
        command="python train.py --data ${{inputs.data}} --out ${{outputs.model}}",
        inputs={
            "data": contract.StepInput("path", "/data/diabetes.csv"),
            "prep": contract.StepInput("step", ["prep", "out"]),
            "rate": contract.StepInput("literal", 0.01),
            "maybe": contract.StepInput("unset"),
        },
        outputs={"model": None, "score": "score.txt"},
        compute="aml-cluster",
        upstream=["prep"],
        fingerprint="f" * 64,
        parts={"command": "c", "upstream": {"prep": "p"}},
        reusable=True,
        run_name="train",
        tags={"team": "a"},
        env_vars={"MODE": "fast"},
        secret_env={"TOKEN": "MLRUN_STEP_SECRET_0"},
        timeout=60.0,
        distribution={"type": "pytorch", "process_count_per_instance": 2},
        instance_count=2,
        base={"python": "/usr/bin/python3"},
        tracking_uri="http://127.0.0.1:5000",
    )
    return contract.PipelineConfig(
        pipeline="pipe",
        steps={"train": step},
        capacity={"aml-cluster": 2, "": 4},
        cache="/ws/steps",
        continue_on_step_failure=False,
        outputs={"model": ["train", "model"], "nothing": None},
        tags={"mlrun.job": "pipe"},
    )


def test_a_pipeline_config_reads_back_as_written(tmp_path):
    written = pipeline()
    contract.write(tmp_path / contract.PIPELINE, written)
    read = contract.read_pipeline(tmp_path / contract.PIPELINE)
    assert read == written
    assert read.steps["train"].inputs["prep"].value == ["prep", "out"]
    assert json.loads((tmp_path / contract.PIPELINE).read_text())["version"] == contract.VERSION
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left beside it


def test_a_sweep_config_reads_back_as_written(tmp_path):
    written = contract.SweepConfig(
        command="python train.py --reg ${{search_space.reg}}",
        outputs={"model": None},
        trials=[{"reg": 0.1}, {"reg": 1.0}],
        algorithm="grid",
        concurrency=2,
        trial_timeout=None,
        objective={"primary_metric": "AUC", "goal": "maximize"},
        early_termination={"type": "median_stopping", "evaluation_interval": 1},
        run_name="tune",
        tags={"mlrun.job": "tune"},
    )
    contract.write(tmp_path / contract.SWEEP, written)
    assert contract.read_sweep(tmp_path / contract.SWEEP) == written


@pytest.mark.parametrize("version", [None, 0, contract.VERSION + 1])
def test_a_file_of_another_version_is_refused_with_what_it_is(tmp_path, version):
    contract.write(tmp_path / contract.PIPELINE, pipeline())
    data = json.loads((tmp_path / contract.PIPELINE).read_text())
    if version is None:
        del data["version"]
    else:
        data["version"] = version
    path = tmp_path / contract.PIPELINE
    path.write_text(json.dumps(data))  # the same file, but for its version
    with pytest.raises(contract.ContractError, match=f"format {version}, which this mlrun"):
        contract.read_pipeline(path)


def test_a_broken_file_is_refused(tmp_path):
    path = tmp_path / contract.SWEEP
    path.write_text("{not json")
    with pytest.raises(contract.ContractError, match="cannot be read"):
        contract.read_sweep(path)


def test_step_records_read_back_as_the_runs_record_keeps_them(tmp_path):
    def record(fingerprint, parts, run_id, status, run_dir, **more) -> StepRecord:
        return {"fingerprint": fingerprint, "parts": parts, "run_id": run_id, "status": status,
                "run_dir": run_dir, **more}  # fmt: skip

    records = {
        "prep": record("a" * 64, {"command": "c"}, "r1", "Completed", "/runs/prep"),
        "train": record("b" * 64, {}, "r0", "Reused", "/old/train", reused=True),
        "late": record("c" * 64, {}, None, "Canceled", "/runs/late"),
    }
    path = tmp_path / contract.STEPS
    assert contract.read_steps(path) is None  # not written yet: the controller runs
    contract.write_steps(path, records)
    read = contract.read_steps(path)
    assert read == {
        "prep": {
            "fingerprint": "a" * 64,
            "parts": {"command": "c"},
            "run_id": "r1",
            "status": "Completed",
            "run_dir": "/runs/prep",
        },
        "train": {
            "fingerprint": "b" * 64,
            "parts": {},
            "run_id": "r0",
            "status": "Reused",
            "run_dir": "/old/train",
            "reused": True,
        },
        "late": {
            "fingerprint": "c" * 64,
            "parts": {},
            "run_id": None,
            "status": "Canceled",
            "run_dir": "/runs/late",
        },
    }


def test_steps_written_before_the_contract_had_a_version_are_read(tmp_path):
    """A pipeline started by an mlrun before this one, adopted by this one."""
    old = {"prep": {"fingerprint": "a", "parts": {}, "run_id": "r", "status": "Completed"}}
    (tmp_path / contract.STEPS).write_text(json.dumps(old))
    assert contract.read_steps(tmp_path / contract.STEPS) == old
