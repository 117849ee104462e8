"""runner/changes.py: what a plan is made of, as data. Addresses are their text with their parts
parsed once; changes and plans go to JSON and back unchanged."""

import copy
import json
import pickle

import pytest

from runner.changes import (
    CREATE,
    NOOP,
    RUN,
    UPDATE,
    Action,
    Address,
    Change,
    Kind,
    Plan,
)


def test_an_address_is_its_text_with_its_parts():
    a = Address(Kind.COMPUTE, "aml-cluster")
    assert a == "compute.aml-cluster" and a.kind is Kind.COMPUTE and a.name == "aml-cluster"
    assert {a: 1}["compute.aml-cluster"] == 1  # a state key as it is written
    dotted = Address.parse("data.diabetes.v2")  # a name may hold dots: split at the first
    assert (dotted.kind, dotted.name) == (Kind.DATA, "diabetes.v2")
    assert Address.parse(a) is a
    for copied in (copy.deepcopy(a), pickle.loads(pickle.dumps(a))):
        assert copied == a and copied.kind is Kind.COMPUTE and copied.name == "aml-cluster"


@pytest.mark.parametrize("text", ["compute", "cluster.aml", ".x", ""])
def test_text_that_is_not_an_address_is_refused(text):
    with pytest.raises(ValueError, match="not an address"):
        Address.parse(text)


def test_each_action_has_a_symbol_and_a_word():
    assert [str(a) for a in Action] == ["+", "~", "-/+", "-", ">", "*", "="]
    assert [a.word for a in Action] == [
        "create", "update", "replace", "destroy", "run", "wait", "noop",
    ]  # fmt: skip
    assert all(Action.from_word(a.word) is a for a in Action)


def test_a_change_given_text_is_parsed_once():
    c = Change("job.train", "~", "params changed")  # type: ignore[arg-type]
    assert c.address.kind is Kind.JOB and c.action is UPDATE


def test_a_plan_goes_to_json_and_back_unchanged_and_counts_its_changes():
    plan = Plan(
        target="local",
        spec="/labs/spec.yaml",
        digest="d" * 64,
        lineage="l-1",
        serial=7,
        variables={"suffix": "abc"},
        changes=[
            Change(Address(Kind.WORKSPACE, "ws"), CREATE, "missing", None, {"location": "eastus"}),
            Change(Address(Kind.JOB, "a"), RUN, "first run"),
            Change(Address(Kind.JOB, "b"), NOOP, "up to date"),
        ],
    )
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["summary"] == {
        "add": 1, "change": 0, "replace": 0, "destroy": 0, "run": 1, "wait": 0,
    }  # fmt: skip
    assert data["changes"][0] == {
        "address": "workspace.ws",
        "action": "create",
        "reason": "missing",
        "before": None,
        "after": {"location": "eastus"},
    }
    assert Plan.from_dict(data) == plan and plan.has_changes
    quiet = Plan("local", "s", "d", "l", 1, {}, [Change(Address(Kind.JOB, "b"), NOOP, "")])
    assert not quiet.has_changes
