"""validate: every spec in specs/ is valid; each invalid case gets its exact messages.

An invalid case is a YAML file in tests/specs/invalid/ ending in `# expect: ...` lines: the
diagnostics `mlrun validate` must print, in order, word for word (the case's own file name is
implied when an expectation starts with a line number).
"""

import datetime
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SEED, SPECS, run_mlrun

from runner.cache import canonical

INVALID = Path(__file__).parent / "specs" / "invalid"
CASES = sorted(INVALID.glob("*.yaml"))


def expectations(case: Path) -> list[str]:
    lines = []
    for line in case.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^# expect: (.*)$", line)
        if m:
            text = m.group(1)
            lines.append(f"{case.name}:{text}" if text[:1].isdigit() else text)
    return lines


@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_spec_in_specs_is_valid(mlrun, spec):
    code, out, err = mlrun("validate", spec)
    assert (code, err) == (0, ""), err
    assert out.startswith(f"{spec}: ok (")


def test_seed_spec_summary(mlrun):
    code, out, _ = mlrun("validate", "specs/mlflow-tracking.yaml", cwd=ROOT)
    assert code == 0
    assert out == "specs/mlflow-tracking.yaml: ok (2 computes, 2 jobs, 1 query)\n"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_invalid_spec_messages(mlrun, case):
    expected = expectations(case)
    assert expected, f"{case.name} has no '# expect:' lines"
    code, out, err = mlrun("validate", case.name, cwd=INVALID)
    errors = sum(": error: " in e for e in expected)
    warnings = len(expected) - errors
    if errors:
        summary = (
            f"{case.name}: {errors} error{'s' * (errors != 1)}, "
            f"{warnings} warning{'s' * (warnings != 1)}"
        )
        assert (code, out) == (1, "")
        assert err.splitlines() == expected + [summary]
    else:
        assert code == 0
        assert err.splitlines() == expected
        assert out.endswith(f", {warnings} warning{'s' * (warnings != 1)})\n")


def test_there_are_enough_invalid_cases():
    assert len(CASES) >= 30


def test_all_problems_at_once_sorted_by_position(mlrun, tmp_path):
    spec = tmp_path / "lab.yaml"
    spec.write_text(
        "name: Bad_Name\nworkspace: {name: w}\njobs:\n  a: {command: x, compute: nope}\n"
    )
    code, _, err = mlrun("validate", spec, cwd=tmp_path)
    assert code == 1
    assert err.splitlines() == [
        "lab.yaml:1:7: error: $.name: 'Bad_Name' is not valid: use lowercase letters, digits "
        "and '-', starting with a letter or digit",
        "lab.yaml:2:19: error: $.workspace.name: 'w' is not a valid name: a workspace name has "
        "3-33 letters, digits, '-' or '_', and starts with a letter or digit",
        "lab.yaml:4:28: error: $.jobs.a.compute: 'nope' is not a compute of this spec "
        "(defined: none)",
        "lab.yaml: 3 errors, 0 warnings",
    ]


def test_var_overrides_and_unknown_var(mlrun, tmp_path):
    spec = tmp_path / "lab.yaml"
    spec.write_text(
        "name: lab\nvariables: {n: 1}\nworkspace:\n  name: ws-${{vars.n}}\n"
        "computes:\n  c1: {type: amlcompute, max_instances: '${{vars.n}}'}\n"
    )
    assert mlrun("validate", spec, "--var", "n=2")[0] == 0
    code, _, err = mlrun("validate", spec, "--var", "m=2", cwd=tmp_path)
    assert code == 1
    assert (
        err.splitlines()[0]
        == "lab.yaml:1:1: error: $: --var m: the spec has no such variable (defined: n)"
    )
    code, _, err = mlrun("validate", spec, "--var", "n=x", cwd=tmp_path)
    assert (
        err.splitlines()[0]
        == "lab.yaml:6:41: error: $.computes.c1.max_instances: expected an integer, got a string"
    )


def test_env_of_another_target_is_not_needed(mlrun, monkeypatch, tmp_path):
    monkeypatch.delenv("AZURE_SUBSCRIPTION_ID", raising=False)
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path))  # no Azure CLI profile either
    (tmp_path / "specs").mkdir()
    spec = tmp_path / "specs" / "lab.yaml"  # beside copies of what the seed refers to
    spec.write_text(
        SEED.read_text()
        + "targets:\n  azure:\n    subscription_id: ${{env.AZURE_SUBSCRIPTION_ID}}\n"
    )
    shutil.copytree(SEED.parent / "jobs", tmp_path / "specs" / "jobs")
    shutil.copytree(ROOT / "training", tmp_path / "training")
    assert mlrun("validate", spec)[0] == 0
    code, _, err = mlrun("validate", spec, "--target", "azure")
    assert code == 1
    assert (
        "error: $.targets.azure.subscription_id: "
        "environment variable 'AZURE_SUBSCRIPTION_ID' is not set" in err
    )
    code, _, err = mlrun("validate", SEED, "--target", "azure")  # the seed names none
    assert code == 1 and "the azure target needs a subscription: " in err


def test_missing_file_is_a_clear_error(mlrun, tmp_path):
    code, _, err = mlrun("validate", tmp_path / "nope.yaml")
    assert (code, err) == (1, f"error: {tmp_path / 'nope.yaml'}: no such file\n")


def test_a_pipe_or_a_device_as_the_spec_file_is_refused_not_read(tmp_path):
    """Reading /dev/zero never ends and opening a pipe blocks until a writer comes: both are named
    and refused before any read (a subprocess, so that a regression times out instead of
    hanging)."""
    pipe = tmp_path / "lab.yaml"
    os.mkfifo(pipe)
    for path in (pipe.name, "/dev/zero"):
        proc = run_mlrun("validate", path, cwd=tmp_path, timeout=60)
        assert (proc.returncode, proc.stderr) == (
            1,
            f"error: {path}: not a regular file, not a spec file\n",
        )


def test_schema_command_prints_the_schema(mlrun):
    code, out, _ = mlrun("schema")
    assert code == 0
    assert json.loads(out) == json.loads((ROOT / "schemas" / "lab.schema.json").read_text())


def test_schema_is_2020_12_and_every_property_is_described():
    from jsonschema import Draft202012Validator

    schema = json.loads((ROOT / "schemas" / "lab.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    undescribed = []

    def walk(node, path):  # visit every subschema; each property must say what it is
        if not isinstance(node, dict):
            return
        for name, prop in (node.get("properties") or {}).items():
            if "description" not in prop and "$ref" not in prop:
                undescribed.append(f"{path}.{name}")
            walk(prop, f"{path}.{name}")
        for key in ("additionalProperties", "items", "then", "propertyNames"):
            walk(node.get(key), f"{path}/{key}")
        for key in ("oneOf", "anyOf", "allOf"):
            for i, sub in enumerate(node.get(key) or []):
                walk(sub, f"{path}/{key}[{i}]")

    walk(schema, "$")
    for name, d in schema["$defs"].items():
        walk(d, name)
    assert undescribed == []


HEAVY = ("mlflow", "azure", "pandas", "matplotlib", "numpy", "sklearn")


def imported_by(
    command: str, spec: Path, cwd: Path, *args: str
) -> tuple[subprocess.CompletedProcess, set]:
    """`mlrun COMMAND SPEC ARGS` in a subprocess with a cache of its own under cwd, and the
    top-level packages it imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "runner", command, str(spec), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "XDG_CACHE_HOME": str(cwd / "cache")},
    )
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    return proc, imported


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_validate_and_a_local_plan_import_nothing_heavy(command, tmp_path):
    spec = tmp_path / "specs" / SEED.name  # a copy: the plan of a fresh lab (no state beside it)
    spec.parent.mkdir()
    spec.write_text(SEED.read_text())
    (tmp_path / "training").symlink_to(ROOT / "training")
    proc, imported = imported_by(command, spec, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "jsonschema" in imported  # the probe works
    assert sorted(imported & set(HEAVY)) == []


def test_a_spec_applied_before_is_not_checked_against_the_schema_again(tmp_path):
    spec = tmp_path / "lab.yaml"
    text = (
        "name: tiny\nworkspace: {name: 'ws-${{vars.suffix}}'}\n"
        "variables: {suffix: {generate: hex}}\n"
    )
    spec.write_text(text)
    kept = ("--var", "suffix=a1b2c3")  # as a state keeps it; a fresh one is new each time
    first, imported = imported_by("validate", spec, tmp_path, *kept)
    assert first.returncode == 0 and "jsonschema" in imported, first.stderr
    again, imported = imported_by("validate", spec, tmp_path, *kept)
    assert "jsonschema" in imported  # validate and plan write nothing, the cache included
    assert not (tmp_path / "cache" / "mlrun" / "schema-passed").exists()
    applied = imported_by("apply", spec, tmp_path, "-y", *kept)[0]
    assert applied.returncode == 0, applied.stderr
    again, imported = imported_by("validate", spec, tmp_path, *kept)
    assert again.returncode == 0, again.stderr
    assert "jsonschema" not in imported  # the schema pass was remembered
    assert again.stdout == first.stdout
    assert "jsonschema" in imported_by("validate", spec, tmp_path)[1]  # another suffix each time
    # a comment changes nothing the schema sees; a misspelt key is checked (and said) again
    spec.write_text(text + "# a comment\n")
    assert "jsonschema" not in imported_by("validate", spec, tmp_path, *kept)[1]
    spec.write_text(text + "descripton: typo\n")
    bad, imported = imported_by("validate", spec, tmp_path, *kept)
    assert bad.returncode == 1 and "jsonschema" in imported
    assert "descripton: unknown section (did you mean 'description'? sections: " in bad.stderr


def test_only_data_that_json_keeps_apart_is_remembered():
    assert canonical({"a": [1, 2.5, True, None]}) == b'{"a":[1,2.5,true,null]}'
    assert canonical({1: "x"}) is None  # JSON would make it {"1": "x"}
    assert canonical({"d": datetime.date(2026, 12, 2)}) is None
    assert canonical({"n": float("nan")}) is None
    assert canonical({"a": 1}) != canonical({"a": 1.0}) != canonical({"a": True})
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    assert canonical(deep) is None


def test_seed_jobs_exported_as_cli_v2_are_accepted_by_load_job(tmp_path):
    import yaml
    from azure.ai.ml import load_job

    from runner import spec as spec_mod
    from runner.export import job_document

    spec = spec_mod.load(SEED)
    for job in spec.jobs.values():
        path = tmp_path / f"{job.name}.yml"
        path.write_text(yaml.safe_dump(job_document(spec, job, tmp_path), sort_keys=False))
        loaded = load_job(path)
        assert loaded.type == "command"
        assert loaded.command == job.command
        assert loaded.compute == "aml-cluster"  # load_job drops the azureml: prefix
        assert loaded.experiment_name == "diabetes-training"
        assert loaded.inputs["training_data"].type == "uri_file"
        assert (path.parent / loaded.code).resolve() == (
            ROOT / "training"
        ).resolve()  # relative to the file


def test_the_summary_counts_every_section_a_spec_has(mlrun, tmp_path):
    # was: environments and components went uncounted
    (tmp_path / "lab.yaml").write_text(
        "name: counted\nworkspace: {name: mlw-counted}\n"
        "environments:\n  py: {image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04}\n"
        "components:\n"
        "  hello: {command: echo hi, environment: azureml:py@latest}\n"
        "  bye: {command: echo bye, environment: azureml:py@latest}\n"
        "jobs:\n  hello: {command: echo hi, environment: azureml:py@latest}\n"
    )
    code, out, err = mlrun("validate", "lab.yaml", cwd=tmp_path)
    assert (code, err) == (0, "")
    assert out == "lab.yaml: ok (0 computes, 1 environment, 2 components, 1 job, 0 queries)\n"


def test_a_remote_step_input_is_refused_by_plan_as_a_command_jobs_is(mlrun, tmp_path):
    # was: a warning from plan for the step (then a failed apply), an error for the command job
    (tmp_path / "lab.yaml").write_text(
        "name: rem\nworkspace: {name: mlw-rem}\njobs:\n"
        "  pipe:\n    type: pipeline\n    jobs:\n      a:\n        command: ls ${{inputs.d}}\n"
        "        inputs: {d: {type: uri_folder, path: azureml:somedata@latest}}\n"
    )
    said = (
        "lab.yaml:9:46: {}: $.jobs.pipe.jobs.a.inputs.d.path: 'azureml:somedata@latest' is "
        "remote, which the local target cannot read: map it to a local file or folder in "
        "targets.local.inputs\n"
    )
    code, _, err = mlrun("validate", "lab.yaml", cwd=tmp_path)
    assert (code, err) == (0, said.format("warning"))  # the spec may be meant for Azure
    code, out, err = mlrun("plan", "lab.yaml", cwd=tmp_path)
    assert (code, out, err) == (1, "", said.format("error"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.yaml"]  # nothing made
