"""runner/backends/targets.py: what each target is, read by the modules that must not load its
backend; and that validate, spec, cost and destroy --expired ask it, not a target's name."""

import os
import subprocess
import sys
import textwrap

import pytest

from runner.backends import targets
from runner.errors import UserError


def test_an_unknown_target_is_refused_with_the_ones_there_are():
    with pytest.raises(UserError, match=r"unknown target 'azur' \(targets: local, azure\)"):
        targets.get("azur")
    assert targets.get("local") is targets.LOCAL and targets.get("azure") is targets.AZURE


def test_what_each_target_is():
    assert targets.LOCAL.runs_here and not targets.LOCAL.bills
    assert targets.AZURE.bills and not targets.AZURE.runs_here
    data = {"targets": {"azure": {"subscription_id": "s"}, "local": {"inputs": {"a": "b"}}}}
    assert targets.AZURE.section(data) == {"subscription_id": "s"}
    assert targets.LOCAL.section(data) == {"inputs": {"a": "b"}}
    assert targets.LOCAL.section({"targets": None}) == {}


def test_only_a_target_that_tags_its_labs_finds_expired_ones():
    with pytest.raises(UserError, match="add --target azure"):
        targets.LOCAL.expired_labs()
    labs = targets.AZURE.expired_labs()
    assert callable(labs.expired_labs) and callable(labs.destroy_group)


SPEC = """\
name: t
workspace: {name: ws-t}
jobs:
  j: {command: echo hi, inputs: {d: {type: uri_file, path: 'https://example.com/d.csv'}}}
"""


@pytest.mark.parametrize(
    "target, expect",
    [
        ("local", ["'https://example.com/d.csv' is remote, which the local target cannot read"]),
        (
            "azure",
            [
                "the azure target needs workspace.resource_group",
                "t.yaml:4:3: error: $.jobs.j: a job needs an environment on Azure ML (a command "
                "job requires one)",  # locally it runs on mlrun's interpreter
            ],
        ),
    ],
)
def test_validate_checks_what_the_target_needs(tmp_path, target, expect):
    spec = tmp_path / "t.yaml"
    spec.write_text(textwrap.dedent(SPEC))
    env = {**os.environ, "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000000"}
    out = subprocess.run(
        [sys.executable, "-m", "runner", "validate", str(spec), "--target", target],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    said = out.stdout + out.stderr
    for line in expect:
        assert line in said
    others = ["local target"] if target == "azure" else ["azure target", "needs an environment"]
    for other in others:
        assert other not in said  # the other target's checks are not run


def test_validate_refuses_an_unknown_target(tmp_path):
    spec = tmp_path / "t.yaml"
    spec.write_text(textwrap.dedent(SPEC))
    out = subprocess.run(
        [sys.executable, "-m", "runner", "validate", str(spec), "--target", "gcp"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == 1
    assert "unknown target 'gcp' (targets: local, azure)" in out.stderr
    assert "Traceback" not in out.stderr
