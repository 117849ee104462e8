"""runner/planfile.py: a saved plan (mlrun plan --out) is read back as the same Plan, and one
that the spec or the state has moved past is refused before it is applied."""

import dataclasses
import json

import pytest

from runner import planfile, spec as spec_mod
from runner.backends.local import LocalBackend
from runner.changes import CREATE, RUN, Plan
from runner.errors import UserError
from runner.plan import desired, make_plan
from runner.spec import SENSITIVE

LAB = """\
name: lab
variables:
  suffix: dev
workspace: {name: "mlw-${{vars.suffix}}", location: eastus}
computes:
  cpu: {type: amlcompute, size: STANDARD_DS11_V2, max_instances: 2}
jobs:
  hi: {command: echo hi, compute: cpu}
"""

NOTHING = {"resources": {}, "jobs": {}, "lineage": "", "serial": 0}


def planned(tmp_path, body: str = LAB, actual: dict = NOTHING) -> Plan:
    """The plan of the spec `body` against `actual` (by default: nothing made yet)."""
    path = tmp_path / "lab.yaml"
    path.write_text(body)
    m = desired(spec_mod.load(path), manages_resource_group=LocalBackend.manages_resource_group)
    return make_plan(m, actual, target="local", spec=str(path), updatable=LocalBackend.updatable)


def test_a_saved_plan_loads_back_as_the_same_plan(tmp_path):
    p = planned(tmp_path)
    assert [(c.address, c.action) for c in p.changes] == [
        ("workspace.mlw-dev", CREATE),
        ("compute.cpu", CREATE),
        ("job.hi", RUN),
    ]
    costs = {"currency": "USD", "per_hour_running": 0.37}
    planfile.save(p, str(tmp_path / "plan.json"), costs)
    back = planfile.load(str(tmp_path / "plan.json"))
    assert back == p
    assert back is not p


def test_the_file_is_the_plan_as_plan_json_prints_it_with_its_cost(tmp_path):
    p = planned(tmp_path)
    planfile.save(p, str(tmp_path / "plan.json"), {"currency": "USD"})
    text = (tmp_path / "plan.json").read_text(encoding="utf-8")
    assert text == json.dumps({**p.to_dict(), "cost": {"currency": "USD"}}, indent=2) + "\n"
    data = json.loads(text)
    assert (data["format_version"], data["target"], data["variables"]) == (
        1,
        "local",
        {"suffix": "dev"},
    )
    assert data["summary"] == {
        "add": 2,
        "change": 0,
        "replace": 0,
        "destroy": 0,
        "run": 1,
        "wait": 0,
    }
    planfile.save(p, str(tmp_path / "nocost.json"))
    assert json.loads((tmp_path / "nocost.json").read_text())["cost"] is None
    assert planfile.load(str(tmp_path / "nocost.json")) == p


def test_a_path_that_is_not_a_json_file_is_a_spec_and_bad_files_are_refused(tmp_path):
    assert planfile.load(str(tmp_path / "lab.yaml")) is None
    missing = str(tmp_path / "missing.json")
    with pytest.raises(UserError, match=r"missing\.json: no such file$"):
        planfile.load(missing)
    (tmp_path / "bad.json").write_text('{"x": 1}')
    with pytest.raises(UserError) as e:
        planfile.load(str(tmp_path / "bad.json"))
    assert (
        str(e.value)
        == f"{tmp_path / 'bad.json'}: not a plan file saved by mlrun plan --out ('target')"
    )


def test_a_plan_of_the_same_spec_and_state_is_current(tmp_path):
    saved = planned(tmp_path)
    planfile.check_current(saved, planned(tmp_path), "plan.json")  # no error


def test_a_plan_whose_spec_changed_since_is_stale(tmp_path):
    saved = planned(tmp_path)
    now = planned(tmp_path, LAB.replace("echo hi", "echo hello"))
    assert now.digest != saved.digest
    with pytest.raises(UserError) as e:
        planfile.check_current(saved, now, "plan.json")
    assert str(e.value) == (
        "the saved plan plan.json is stale: the spec or its files changed since it was made; "
        "run mlrun plan again"
    )


def test_a_plan_whose_state_moved_since_is_stale(tmp_path):
    saved = planned(tmp_path)
    for lineage, serial in (("", 1), ("other", 0)):
        now = planned(tmp_path, actual={**NOTHING, "lineage": lineage, "serial": serial})
        assert now.digest == saved.digest
        with pytest.raises(UserError) as e:
            planfile.check_current(saved, now, "p.json")
        assert str(e.value) == (
            "the saved plan p.json is stale: the state changed since it was made; "
            "run mlrun plan again"
        )


def test_reopen_variables_gives_the_plans_and_only_secret_ones_from_var(tmp_path):
    p = dataclasses.replace(planned(tmp_path), variables={"suffix": "dev", "token": SENSITIVE})
    assert planfile.reopen_variables(p, {}) == {"suffix": "dev"}
    assert planfile.reopen_variables(p, {"token": "s3"}) == {"suffix": "dev", "token": "s3"}
    refused = "a saved plan is applied as it is: --only, --force and --var belong to mlrun plan"
    with pytest.raises(UserError, match=refused):
        planfile.reopen_variables(p, {"suffix": "prod"})
    with pytest.raises(UserError, match=refused):
        planfile.reopen_variables(p, {}, selected=True)
