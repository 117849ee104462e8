"""runner/records.py describes what is really written: every key of every run, step record and
resource in the state files that real applies leave (the seed lab's, a pipeline's) is one the
records declare, with the required ones there. A key a backend starts writing without declaring
it fails here, not in mypy's blind spot (the state is JSON, read back as written)."""

import json
import textwrap
import typing

from conftest import run_mlrun

from runner.records import JobEntry, Resource, Run, StateDoc, StepRecord


def keys(record_type) -> tuple[set, set]:
    """(required, every) key of a TypedDict."""
    return set(record_type.__required_keys__), set(typing.get_type_hints(record_type))


def conforms(data: dict, record_type, where: str) -> None:
    required, known = keys(record_type)
    assert required <= set(data), f"{where}: missing {sorted(required - set(data))}"
    assert set(data) <= known, f"{where}: undeclared {sorted(set(data) - known)}"


def check_state(path) -> int:
    """Every record of a state file against the records; how many runs it held."""
    doc = json.loads(path.read_text())
    conforms(doc, StateDoc, str(path))
    for address, resource in doc["resources"].items():
        conforms(resource, Resource, address)
    runs = 0
    for job, entry in doc["jobs"].items():
        conforms(entry, JobEntry, f"jobs.{job}")
        for run in entry["runs"]:
            conforms(run, Run, f"jobs.{job} run {run.get('id')}")
            for step, record in (run.get("steps") or {}).items():
                conforms(record, StepRecord, f"jobs.{job} step {step}")
            runs += 1
    return runs


def test_the_seed_labs_state_is_made_of_the_records(seed_lab):
    (state,) = (seed_lab["root"] / "specs" / ".mlrun").glob("*.local.json")
    assert check_state(state) == 2


def test_a_pipelines_state_is_made_of_the_records(tmp_path):
    spec = tmp_path / "p.yaml"
    spec.write_text(
        textwrap.dedent(
            """\
            name: rec
            workspace: {name: ws-rec}
            jobs:
              plain: {command: echo plain}
              pipe:
                type: pipeline
                jobs:
                  first: {command: 'echo 1 > ${{outputs.o}}/f', outputs: {o: null}}
                  second:
                    command: cat ${{inputs.x}}/f
                    inputs: {x: '${{parent.jobs.first.outputs.o}}'}
            """
        )
    )
    run_mlrun("apply", "-y", spec, cwd=tmp_path)
    run_mlrun("apply", "-y", spec, "--force", "pipe", cwd=tmp_path)  # its steps reused
    (state,) = (tmp_path / ".mlrun").glob("*.local.json")
    assert check_state(state) == 3
    steps = json.loads(state.read_text())["jobs"]["pipe"]["runs"][-1]["steps"]
    assert {s["status"] for s in steps.values()} == {"Reused"}
    assert all(s["reused"] for s in steps.values())
