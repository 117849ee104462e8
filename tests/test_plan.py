"""runner/plan.py: desired vs actual -> Changes with exact reasons; the JSON view (the human view:
test_planview.py)."""

import copy
import json
from pathlib import Path

import pytest

from runner import fingerprint, spec as spec_mod
from runner.backends.azure import AzureBackend
from runner.backends.local import LocalBackend
from runner.changes import CREATE, DESTROY, NOOP, REPLACE, RUN, UPDATE, WAIT, Change, Plan
from runner.plan import desired, destroy_plan, digest, make_plan
from runner.planview import render, summary_line

RUN_ID = "abc1234def5678"
PARTS = {p: f"{p}-v1" for p in fingerprint.PARTS}
FP = fingerprint.combine(PARTS)


# --- builders ------------------------------------------------------------------------------------


def ws(name="mlw-dev", **attrs):
    attrs = attrs or {"location": "eastus", "resource_group": "rg-dev"}
    return f"workspace.{name}", {"kind": "workspace", "name": name, "attrs": attrs}


def cluster(name="aml-cluster", **attrs):
    base = {
        "type": "amlcompute",
        "size": "STANDARD_DS11_V2",
        "min_instances": 0,
        "max_instances": 2,
    }
    return f"compute.{name}", {"kind": "compute", "name": name, "attrs": {**base, **attrs}}


def instance(name="ci-dev", **attrs):
    base = {
        "type": "computeinstance",
        "size": "STANDARD_DS11_V2",
        "idle_time_before_shutdown_minutes": 60,
    }
    return f"compute.{name}", {"kind": "compute", "name": name, "attrs": {**base, **attrs}}


def job(parts=None, compute="aml-cluster"):
    parts = dict(parts or PARTS)
    return {"fingerprint": fingerprint.combine(parts), "parts": parts, "compute": compute}


def run(status="Completed", parts=None, run_id=RUN_ID, **extra):
    parts = dict(parts or PARTS)
    return {
        "id": run_id,
        "status": status,
        "fingerprint": fingerprint.combine(parts),
        "parts": parts,
        **extra,
    }


def model(*resources, jobs=None, variables=None):
    return {"resources": dict(resources), "jobs": jobs or {}, "variables": variables or {}}


def actual(*resources, jobs=None, lineage="lin-1", serial=7):
    return {"resources": dict(resources), "jobs": jobs or {}, "lineage": lineage, "serial": serial}


def plan_of(m, a, **kw):
    return make_plan(m, a, target="local", spec="lab.yaml", updatable=LocalBackend.updatable, **kw)


def change(p, address):
    [c] = [c for c in p.changes if c.address == address]
    return c


def job_change(job_model, latest, **kw):
    """The change for one job 'train' in an existing, unchanged workspace."""
    p = plan_of(
        model(ws(), jobs={"train": job_model}),
        actual(ws(), jobs={"train": latest} if latest else {}),
        **kw,
    )
    return change(p, "job.train")


# --- resources -----------------------------------------------------------------------------------


def test_everything_missing_is_created_with_a_description_and_jobs_run_first_time():
    m = model(ws(), cluster(), instance(), jobs={"train": job()})
    p = plan_of(m, actual(lineage="", serial=0))
    assert p.changes == [
        Change(
            "workspace.mlw-dev",
            CREATE,
            "",
            after={"location": "eastus", "resource_group": "rg-dev"},
        ),
        Change(
            "compute.aml-cluster",
            CREATE,
            "amlcompute STANDARD_DS11_V2, 0..2 nodes",
            after={
                "type": "amlcompute",
                "size": "STANDARD_DS11_V2",
                "min_instances": 0,
                "max_instances": 2,
            },
        ),
        Change(
            "compute.ci-dev",
            CREATE,
            "computeinstance STANDARD_DS11_V2, idle shutdown after 60 min",
            after={
                "type": "computeinstance",
                "size": "STANDARD_DS11_V2",
                "idle_time_before_shutdown_minutes": 60,
            },
        ),
        Change("job.train", RUN, "first run", before=None, after={"fingerprint": FP}),
    ]
    assert (p.target, p.spec, p.lineage, p.serial, p.format_version) == (
        "local",
        "lab.yaml",
        "",
        0,
        1,
    )


def test_create_description_defaults_for_a_cluster_without_node_counts_or_size():
    address, res = cluster()
    res["attrs"] = {"type": "amlcompute"}
    p = plan_of(model(ws(), (address, res)), actual())
    assert change(p, address).reason == "amlcompute, 0..1 nodes"


def test_unchanged_resources_are_noop_up_to_date():
    p = plan_of(model(ws(), cluster()), actual(ws(), cluster()))
    attrs = cluster()[1]["attrs"]
    assert change(p, "compute.aml-cluster") == Change(
        "compute.aml-cluster", NOOP, "up to date", attrs, attrs
    )
    assert [c.action for c in p.changes] == [NOOP, NOOP]
    assert not p.has_changes


def test_cluster_max_instances_change_is_an_update_in_place():
    p = plan_of(model(ws(), cluster(max_instances=4)), actual(ws(), cluster(max_instances=2)))
    c = change(p, "compute.aml-cluster")
    assert (c.action, c.reason) == (UPDATE, "max_instances: 2 -> 4")
    assert (c.before["max_instances"], c.after["max_instances"]) == (2, 4)


def test_several_updatable_fields_are_listed_sorted_by_name():
    p = plan_of(model(ws(), cluster(max_instances=4, min_instances=1)), actual(ws(), cluster()))
    assert change(p, "compute.aml-cluster").reason == "max_instances: 2 -> 4, min_instances: 0 -> 1"


def test_cluster_size_change_replaces_and_names_only_the_fixed_fields():
    p = plan_of(
        model(ws(), cluster(size="STANDARD_NC24", max_instances=4)),
        actual(ws(), cluster(size="STANDARD_NC6")),
    )
    c = change(p, "compute.aml-cluster")
    assert (c.action, c.reason) == (
        REPLACE,
        "size: STANDARD_NC6 -> STANDARD_NC24 (cannot change in place)",
    )


def test_compute_instance_idle_shutdown_is_updatable_but_its_size_is_not():
    p = plan_of(
        model(ws(), instance(idle_time_before_shutdown_minutes=30)), actual(ws(), instance())
    )
    assert change(p, "compute.ci-dev").action == UPDATE
    assert change(p, "compute.ci-dev").reason == "idle_time_before_shutdown_minutes: 60 -> 30"
    p = plan_of(model(ws(), instance(size="STANDARD_DS12_V2")), actual(ws(), instance()))
    assert change(p, "compute.ci-dev").action == REPLACE
    assert (
        change(p, "compute.ci-dev").reason
        == "size: STANDARD_DS11_V2 -> STANDARD_DS12_V2 (cannot change in place)"
    )


def test_max_instances_is_not_updatable_on_a_compute_instance():
    # the allow-list is per compute type: a field updatable on a cluster replaces an instance
    p = plan_of(model(ws(), instance(max_instances=2)), actual(ws(), instance(max_instances=1)))
    assert change(p, "compute.ci-dev").reason == "max_instances: 1 -> 2 (cannot change in place)"


def test_changing_the_compute_type_replaces_it():
    address, want = instance("box")
    have = cluster("box")
    p = plan_of(model(ws(), (address, want)), actual(ws(), have))
    assert change(p, address).action == REPLACE
    assert change(p, address).reason == (
        "max_instances: 2 -> (none), min_instances: 0 -> (none), "
        "type: amlcompute -> computeinstance (cannot change in place)"
    )  # idle_time_before_shutdown_minutes is updatable: not the reason


def test_what_changes_in_place_is_what_the_backend_declares_updatable():
    assert LocalBackend.updatable == AzureBackend.updatable  # the local target mimics Azure ML
    m, a = model(ws(), cluster(max_instances=4)), actual(ws(), cluster())
    grow = "max_instances: 2 -> 4"
    for updatable, action, reason in [
        (LocalBackend.updatable, UPDATE, grow),
        ({}, REPLACE, f"{grow} (cannot change in place)"),
        ({"amlcompute": frozenset({"tags"})}, REPLACE, f"{grow} (cannot change in place)"),
        ({"amlcompute": frozenset({"max_instances"})}, UPDATE, grow),
    ]:
        p = make_plan(m, a, target="local", spec="lab.yaml", updatable=updatable)
        assert change(p, "compute.aml-cluster") == Change(
            "compute.aml-cluster",
            action,
            reason,
            cluster()[1]["attrs"],
            m["resources"]["compute.aml-cluster"]["attrs"],
        )


def test_workspace_tags_and_description_update_in_place_with_json_values():
    want = ws(location="eastus", resource_group="rg-dev", tags={"team": "ml"}, description="lab")
    p = plan_of(
        model(want), actual(ws(location="eastus", resource_group="rg-dev", description="old"))
    )
    c = change(p, "workspace.mlw-dev")
    assert (c.action, c.reason) == (
        UPDATE,
        'description: old -> lab, tags: (none) -> {"team": "ml"}',
    )


def test_a_replaced_workspace_recreates_its_computes_and_reruns_its_jobs():
    m = model(
        ws(location="westus", resource_group="rg-dev"),
        cluster(max_instances=4),
        instance(),
        cluster("new"),
        jobs={"train": job(), "fresh": job()},
    )
    a = actual(ws(), cluster(), instance(), jobs={"train": run()})
    p = plan_of(m, a)
    assert [(c.address, c.action, c.reason) for c in p.changes] == [
        ("workspace.mlw-dev", REPLACE, "location: eastus -> westus (cannot change in place)"),
        ("compute.aml-cluster", CREATE, "in the new workspace"),
        ("compute.ci-dev", CREATE, "in the new workspace"),
        ("compute.new", CREATE, "amlcompute STANDARD_DS11_V2, 0..2 nodes"),
        ("job.train", RUN, "the workspace is new"),
        ("job.fresh", RUN, "first run"),
    ]
    # the converted changes keep what the state had and what the spec wants
    c = change(p, "compute.aml-cluster")
    assert (c.before["max_instances"], c.after["max_instances"]) == (2, 4)


def test_a_new_workspace_name_creates_it_and_destroys_the_old_one_last():
    m = model(ws("mlw-b"), cluster(), jobs={"train": job()})
    a = actual(ws("mlw-a"), cluster(), cluster("zz-old"), jobs={"train": run()})
    p = plan_of(m, a)
    assert [(c.address, c.action, c.reason) for c in p.changes] == [
        ("workspace.mlw-b", CREATE, ""),
        ("compute.aml-cluster", CREATE, "in the new workspace"),
        ("job.train", RUN, "the workspace is new"),
        ("compute.zz-old", DESTROY, "no longer in the spec"),
        ("workspace.mlw-a", DESTROY, "no longer in the spec"),
    ]
    assert change(p, "workspace.mlw-a").before == {"location": "eastus", "resource_group": "rg-dev"}
    assert change(p, "workspace.mlw-a").after is None


def test_resources_and_jobs_gone_from_the_spec_are_destroyed_jobs_first():
    m = model(ws(), jobs={"keep": job()})
    a = actual(
        ws(),
        cluster("b-gone"),
        cluster("a-gone"),
        jobs={"keep": run(), "old": run(status="Failed", run_id="9f8e7d6c5b")},
    )
    p = plan_of(m, a)
    assert [(c.address, c.action, c.reason) for c in p.changes] == [
        ("workspace.mlw-dev", NOOP, "up to date"),
        ("job.keep", NOOP, "up to date (run abc1234, Completed)"),
        ("job.old", DESTROY, "no longer in the spec (its runs stay in the tracking store)"),
        ("compute.a-gone", DESTROY, "no longer in the spec"),
        ("compute.b-gone", DESTROY, "no longer in the spec"),
    ]
    assert change(p, "job.old").before == {
        "run": "9f8e7d6c5b",
        "status": "Failed",
        "fingerprint": FP,
    }


# --- jobs ----------------------------------------------------------------------------------------


def changed_parts(*names):
    return {p: (f"{p}-v2" if p in names else v) for p, v in PARTS.items()}


@pytest.mark.parametrize(
    "names, reason",
    [
        (("code",), "code changed since run abc1234"),
        (("code", "inputs"), "code and inputs changed since run abc1234"),
        (("command", "code", "inputs"), "command, code and inputs changed since run abc1234"),
        (("compute", "command"), "command and compute changed since run abc1234"),
        (("environment_variables",), "environment variables changed since run abc1234"),
        (
            ("environment", "environment_variables"),
            "environment and environment variables changed since run abc1234",
        ),
        (
            fingerprint.PARTS,
            "command, code, inputs, environment, compute and environment variables "
            "changed since run abc1234",
        ),
    ],
)
def test_a_changed_job_runs_and_says_which_parts_changed(names, reason):
    c = job_change(job(changed_parts(*names)), run())
    assert c == Change(
        "job.train",
        RUN,
        reason,
        before={"run": RUN_ID, "status": "Completed", "fingerprint": FP},
        after={"fingerprint": fingerprint.combine(changed_parts(*names))},
    )


def test_a_run_recorded_without_parts_counts_every_part_as_changed():
    latest = run()
    del latest["parts"]
    latest["fingerprint"] = "old"
    assert job_change(job(), latest).reason == (
        "command, code, inputs, environment, compute and environment variables "
        "changed since run abc1234"
    )


def test_a_fingerprint_that_differs_with_the_same_parts_still_says_what_changed():
    latest = run()
    latest["fingerprint"] = "made by an older mlrun"
    assert job_change(job(), latest).reason == "fingerprint changed since run abc1234"


def test_a_completed_run_with_the_same_fingerprint_is_up_to_date():
    c = job_change(job(), run())
    assert c == Change(
        "job.train",
        NOOP,
        "up to date (run abc1234, Completed)",
        before={"run": RUN_ID, "status": "Completed", "fingerprint": FP},
        after={"fingerprint": FP},
    )


@pytest.mark.parametrize("status", ["Failed", "Canceled"])
def test_a_run_that_did_not_complete_runs_again(status):
    c = job_change(job(), run(status=status))
    assert (c.action, c.reason) == (RUN, f"run abc1234 {status}")


@pytest.mark.parametrize("status", ["Running", "Queued", "Starting", "Finalizing"])
def test_an_active_run_is_waited_for_never_submitted_again(status):
    c = job_change(job(changed_parts("code")), run(status=status))
    assert (c.action, c.reason) == (WAIT, f"run abc1234 is {status}: wait for it")
    forced = job_change(job(), run(status=status), force=("train",))
    assert (forced.action, forced.reason) == (WAIT, f"run abc1234 is {status}: wait for it")


def test_force_reruns_an_up_to_date_job():
    c = job_change(job(), run(), force=("train",))
    assert (c.action, c.reason) == (RUN, "forced (--force)")
    assert c.before == {"run": RUN_ID, "status": "Completed", "fingerprint": FP}


def test_force_before_the_first_run_says_forced():
    assert job_change(job(), None, force=("train",)).reason == "forced (--force)"


def test_only_skips_the_jobs_not_selected():
    m = model(ws(), jobs={"train": job(), "score": job()})
    p = plan_of(m, actual(ws()), only={"score"})
    assert [(c.address, c.action, c.reason) for c in p.changes[1:]] == [
        ("job.train", NOOP, "not selected (--only)"),
        ("job.score", RUN, "first run"),
    ]


def test_only_wins_over_force_for_a_job_not_selected():
    c = job_change(job(), run(status="Failed"), only={"other"}, force=("train",))
    assert (c.action, c.reason) == (NOOP, "not selected (--only)")


def test_first_run_in_a_new_workspace_says_first_run():
    p = plan_of(model(ws(), jobs={"train": job()}), actual())
    assert change(p, "job.train").reason == "first run"


def test_the_run_id_is_shortened_to_seven_characters_and_a_missing_one_shows_a_question_mark():
    assert (
        job_change(job(), run(run_id="0123456789abcdef", status="Failed")).reason
        == "run 0123456 Failed"
    )
    assert job_change(job(), run(run_id=None, status="Failed")).reason == "run ? Failed"


# --- the plan as a value -------------------------------------------------------------------------


def test_make_plan_is_pure_and_carries_the_state_it_was_made_from():
    m = model(ws(), cluster(max_instances=4), jobs={"train": job()}, variables={"suffix": "dev"})
    a = actual(
        ws(), cluster(), jobs={"train": run(status="Failed"), "old": run()}, lineage="L1", serial=12
    )
    m0, a0 = copy.deepcopy(m), copy.deepcopy(a)
    p1 = plan_of(m, a)
    p2 = plan_of(m, a)
    assert (m, a) == (m0, a0)
    assert p1 == p2
    assert (p1.lineage, p1.serial, p1.variables, p1.digest) == (
        "L1",
        12,
        {"suffix": "dev"},
        digest(m),
    )
    assert digest(m) != digest(
        model(ws(), cluster(max_instances=5), jobs={"train": job()}, variables={"suffix": "dev"})
    )


# --- the JSON view -------------------------------------------------------------------------------


def test_to_dict_is_format_version_1_with_each_change_as_data():
    m = model(ws(), cluster(max_instances=4), jobs={"train": job()}, variables={"suffix": "dev"})
    p = plan_of(m, actual(ws(), cluster(), lineage="L1", serial=3))
    assert p.to_dict() == {
        "format_version": 1,
        "target": "local",
        "spec": "lab.yaml",
        "digest": digest(m),
        "state": {"lineage": "L1", "serial": 3},
        "variables": {"suffix": "dev"},
        "changes": [
            {
                "address": "workspace.mlw-dev",
                "action": "noop",
                "reason": "up to date",
                "before": {"location": "eastus", "resource_group": "rg-dev"},
                "after": {"location": "eastus", "resource_group": "rg-dev"},
            },
            {
                "address": "compute.aml-cluster",
                "action": "update",
                "reason": "max_instances: 2 -> 4",
                "before": cluster()[1]["attrs"],
                "after": cluster(max_instances=4)[1]["attrs"],
            },
            {
                "address": "job.train",
                "action": "run",
                "reason": "first run",
                "before": None,
                "after": {"fingerprint": FP},
            },
        ],
        "summary": {"add": 0, "change": 1, "replace": 0, "destroy": 0, "run": 1, "wait": 0},
    }


def test_json_round_trip_gives_the_same_plan():
    m = model(
        ws(tags={"a": "b"}, location="eastus"),
        cluster("new"),
        cluster("grow", max_instances=4),
        cluster("big", size="B"),
        jobs={"train": job(changed_parts("code")), "w": job(), "n": job()},
        variables={"suffix": "dev", "n": 3, "flag": True},
    )
    a = actual(
        ws(tags={"a": "b"}, location="eastus"),
        cluster("grow"),
        cluster("big", size="A"),
        cluster("gone"),
        jobs={"train": run(), "w": run(status="Running"), "n": run(), "old": run()},
    )
    p = plan_of(m, a)
    assert {c.action for c in p.changes} == {NOOP, CREATE, UPDATE, REPLACE, DESTROY, RUN, WAIT}
    back = Plan.from_dict(json.loads(json.dumps(p.to_dict())))
    assert back == p
    assert render(back) == render(p)


# --- destroy -------------------------------------------------------------------------------------


def test_destroy_plan_orders_jobs_then_computes_then_the_workspace():
    a = actual(
        ws(),
        cluster("b-cluster"),
        instance("a-ci"),
        jobs={"train": run(), "score": run(status="Running", run_id="5e6f7a8b9c")},
        lineage="L",
        serial=4,
    )
    p = destroy_plan(a, target="local", spec="lab.yaml", tracking="sqlite:///x/mlflow.db")
    assert [(c.address, c.action, c.reason) for c in p.changes] == [
        ("job.score", DESTROY, "cancel its running run; its runs are deleted with the workspace"),
        ("job.train", DESTROY, "forget it; its runs are deleted with the workspace"),
        ("compute.a-ci", DESTROY, ""),
        ("compute.b-cluster", DESTROY, ""),
        (
            "workspace.mlw-dev",
            DESTROY,
            "with its tracking store (sqlite:///x/mlflow.db) and every run in it",
        ),
    ]
    assert change(p, "compute.a-ci").before == instance("a-ci")[1]["attrs"]
    assert change(p, "job.score").before == {
        "run": "5e6f7a8b9c",
        "status": "Running",
        "fingerprint": FP,
    }
    assert (p.lineage, p.serial, p.digest) == ("L", 4, "")
    assert (
        summary_line(p) == "Plan: 0 to add, 0 to change, 0 to replace, 5 to destroy, 0 jobs to run."
    )


def test_destroy_plan_without_a_tracking_uri_and_of_nothing():
    p = destroy_plan(actual(ws()), target="local", spec="lab.yaml")
    assert p.changes == [
        Change(
            "workspace.mlw-dev",
            DESTROY,
            "with its tracking store and every run in it",
            before={"location": "eastus", "resource_group": "rg-dev"},
        )
    ]
    assert destroy_plan(actual(), target="local", spec="lab.yaml").changes == []


# --- from real specs -----------------------------------------------------------------------------

LAB = """\
name: lab
variables:
  suffix: dev
workspace:
  name: mlw-${{vars.suffix}}
  resource_group: rg-${{vars.suffix}}
  location: eastus
computes:
  ci-${{vars.suffix}}:
    type: computeinstance
    size: STANDARD_DS11_V2
    idle_time_before_shutdown_minutes: 60
  aml-cluster: {type: amlcompute, size: STANDARD_DS11_V2, min_instances: 0, max_instances: 2}
jobs:
  train:
    code: src
    command: python train.py --data ${{inputs.data}}
    inputs:
      data: {type: uri_file, path: data.csv}
    environment: azureml:AzureML-sklearn-1.5@latest
    compute: aml-cluster
  hello:
    command: echo hi
    compute: ci-${{vars.suffix}}
"""


def write_lab(root: Path, body: str = LAB) -> Path:
    (root / "src").mkdir(exist_ok=True)
    if not (root / "src" / "train.py").exists():
        (root / "src" / "train.py").write_text("print('train')\n")
    if not (root / "data.csv").exists():
        (root / "data.csv").write_text("a,b\n1,2\n")
    path = root / "lab.yaml"
    path.write_text(body)
    return path


def applied(m: dict) -> dict:
    """The actual world right after a successful apply of model m."""
    return actual(
        *copy.deepcopy(m["resources"]).items(),
        jobs={
            n: run(parts=j["parts"], run_id=f"{i}234567aaaa")
            for i, (n, j) in enumerate(m["jobs"].items())
        },
    )


def test_desired_from_a_spec(tmp_path):
    m = desired(spec_mod.load(write_lab(tmp_path)), manages_resource_group=False)
    assert m["resources"] == {
        "workspace.mlw-dev": {
            "kind": "workspace",
            "name": "mlw-dev",
            "attrs": {"location": "eastus", "resource_group": "rg-dev"},
        },
        "compute.ci-dev": {
            "kind": "compute",
            "name": "ci-dev",
            "attrs": {
                "type": "computeinstance",
                "size": "STANDARD_DS11_V2",
                "idle_time_before_shutdown_minutes": 60,
            },
        },
        "compute.aml-cluster": {
            "kind": "compute",
            "name": "aml-cluster",
            "attrs": {
                "type": "amlcompute",
                "size": "STANDARD_DS11_V2",
                "min_instances": 0,
                "max_instances": 2,
            },
        },
    }
    assert list(m["jobs"]) == ["train", "hello"]
    assert m["jobs"]["train"]["compute"] == "aml-cluster"
    assert m["jobs"]["train"]["fingerprint"] == fingerprint.combine(m["jobs"]["train"]["parts"])
    assert m["variables"] == {"suffix": "dev"}


def test_the_resource_group_is_desired_only_where_the_backend_manages_it(tmp_path):
    spec = spec_mod.load(write_lab(tmp_path))
    assert not LocalBackend.manages_resource_group and AzureBackend.manages_resource_group
    local = desired(spec, manages_resource_group=LocalBackend.manages_resource_group)
    azure = desired(spec, manages_resource_group=AzureBackend.manages_resource_group)
    group = {"kind": "resource_group", "name": "rg-dev", "attrs": {"location": "eastus"}}
    assert not any(a.startswith("resource_group.") for a in local["resources"])
    assert azure["resources"] == {"resource_group.rg-dev": group, **local["resources"]}
    assert list(azure["resources"])[0] == "resource_group.rg-dev"  # made first, destroyed last
    assert azure["jobs"] == local["jobs"]
    no_group = LAB.replace("  resource_group: rg-${{vars.suffix}}\n", "")
    spec = spec_mod.load(write_lab(tmp_path, no_group))  # one only in a config.json: not managed
    assert not any(
        a.startswith("resource_group.")
        for a in desired(spec, manages_resource_group=True)["resources"]
    )


def test_a_spec_planned_against_its_own_apply_has_no_changes_until_it_changes(tmp_path):
    path = write_lab(tmp_path)
    before = desired(spec_mod.load(path), manages_resource_group=False)
    a = applied(before)
    p = plan_of(before, a)
    assert render(p) == (
        "  = job.train                    up to date (run 0234567, Completed)\n"
        "  = job.hello                    up to date (run 1234567, Completed)\n"
        "No changes. Everything is up to date.\n"
    )
    (tmp_path / "src" / "train.py").write_text("print('train v2')\n")
    (tmp_path / "data.csv").write_text("a,b\n1,3\n")
    write_lab(
        tmp_path,
        LAB.replace("max_instances: 2", "max_instances: 3")
        .replace("idle_time_before_shutdown_minutes: 60", "idle_time_before_shutdown_minutes: 30")
        .replace("echo hi", "echo hello"),
    )
    p = plan_of(desired(spec_mod.load(path), manages_resource_group=False), a)
    assert render(p) == (
        "  ~ compute.ci-dev               idle_time_before_shutdown_minutes: 60 -> 30\n"
        "  ~ compute.aml-cluster          max_instances: 2 -> 3\n"
        "  > job.train                    code and inputs changed since run 0234567\n"
        "  > job.hello                    command changed since run 1234567\n"
        "Plan: 0 to add, 2 to change, 0 to replace, 0 to destroy, 2 jobs to run.\n"
    )


def test_a_new_variable_value_renames_the_workspace_and_starts_over(tmp_path):
    path = write_lab(tmp_path)
    a = applied(desired(spec_mod.load(path), manages_resource_group=False))
    p = plan_of(
        desired(spec_mod.load(path, overrides={"suffix": "prod"}), manages_resource_group=False), a
    )
    assert [(c.address, c.action, c.reason) for c in p.changes] == [
        ("workspace.mlw-prod", CREATE, ""),
        ("compute.ci-prod", CREATE, "computeinstance STANDARD_DS11_V2, idle shutdown after 60 min"),
        ("compute.aml-cluster", CREATE, "in the new workspace"),
        ("job.train", RUN, "the workspace is new"),
        ("job.hello", RUN, "the workspace is new"),
        ("compute.ci-dev", DESTROY, "no longer in the spec"),
        ("workspace.mlw-dev", DESTROY, "no longer in the spec"),
    ]
    assert Plan.from_dict(json.loads(json.dumps(p.to_dict()))) == p


# --- the CLI -------------------------------------------------------------------------------------

QUICK = """\
name: quick
workspace: {name: ws-quick}
computes:
  cpu: {type: amlcompute, size: STANDARD_DS11_V2, max_instances: 2}
jobs:
  hi: {command: echo hi, compute: cpu}
"""


def test_cli_plan_json_and_detailed_exitcode_on_a_fresh_spec_write_nothing(tmp_path, mlrun):
    (tmp_path / "lab.yaml").write_text(QUICK)
    code, out, err = mlrun("plan", "lab.yaml", "--json", cwd=tmp_path)
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["format_version"] == 1
    assert data["state"] == {"lineage": "", "serial": 0}
    assert [(c["address"], c["action"], c["reason"]) for c in data["changes"]] == [
        ("workspace.ws-quick", "create", ""),
        ("compute.cpu", "create", "amlcompute STANDARD_DS11_V2, 0..2 nodes"),
        ("job.hi", "run", "first run"),
    ]
    assert all(
        set(c) == {"address", "action", "reason", "before", "after"} for c in data["changes"]
    )
    assert data["summary"] == {
        "add": 2,
        "change": 0,
        "replace": 0,
        "destroy": 0,
        "run": 1,
        "wait": 0,
    }
    assert data["cost"] == {  # the bundled table's (conftest keeps the live API out of tests)
        "currency": "USD",
        "per_hour_running": 0.37,
        "per_hour_idle": 0.0,
        "region": "eastus",
        "source": "bundled",
        "as_of": "2026-12-01",
        "not_priced": [],
        "items": [
            {
                "address": "compute.cpu",
                "type": "amlcompute",
                "size": "STANDARD_DS11_V2",
                "region": "eastus",
                "unit_price": 0.185,
                "nodes": [0, 2],
                "per_hour_running": 0.37,
                "per_hour_idle": 0.0,
            }
        ],
    }

    code, out, err = mlrun("plan", "lab.yaml", "--detailed-exitcode", cwd=tmp_path)
    assert (code, err) == (2, "")
    assert out == (
        "  + workspace.ws-quick\n"
        "  + compute.cpu                  amlcompute STANDARD_DS11_V2, 0..2 nodes; $0.00/h idle, "
        "$0.37/h at 2 nodes\n"
        "  > job.hi                       first run\n"
        "cost on azure: $0.37/h while running, $0.00/h idle (USD retail, eastus, prices as of "
        "2026-12-01, bundled; disks, storage and networking not priced)\n"
        "Plan: 2 to add, 0 to change, 0 to replace, 0 to destroy, 1 job to run.\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.yaml"]  # no .mlrun, no state


def test_cli_plan_out_saves_the_json_plan_and_nothing_else(tmp_path, mlrun):
    (tmp_path / "lab.yaml").write_text(QUICK)
    code, out, _ = mlrun("plan", "lab.yaml", "--out", "plan.json", cwd=tmp_path)
    assert code == 0
    assert out.endswith(
        "Saved the plan to plan.json: apply exactly it with mlrun apply plan.json\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.yaml", "plan.json"]
    _, as_json, _ = mlrun("plan", "lab.yaml", "--json", cwd=tmp_path)
    assert json.loads((tmp_path / "plan.json").read_text()) == json.loads(as_json)


def test_cli_detailed_exitcode_is_0_when_everything_is_up_to_date(tmp_path, mlrun):
    """A state as apply leaves it (hand-written: no run needed) makes the plan a no-op."""
    from runner.state import State, state_path

    spec_file = tmp_path / "lab.yaml"
    spec_file.write_text(QUICK)
    m = desired(spec_mod.load(spec_file), manages_resource_group=False)
    state = State.load(state_path(spec_file, "quick", "local"), "quick", "local")
    for address, want in m["resources"].items():
        state.set_resource(address, want)
    state.add_run("hi", run(parts=m["jobs"]["hi"]["parts"]))
    (tmp_path / ".mlrun" / "local" / "ws-quick").mkdir(parents=True)
    (tmp_path / ".mlrun" / "local" / "ws-quick" / "mlflow.db").touch()  # the local workspace exists
    saved = state_path(spec_file, "quick", "local").read_bytes()
    code, out, err = mlrun("plan", "lab.yaml", "--detailed-exitcode", cwd=tmp_path)
    assert (code, err) == (0, "")
    assert out == (
        "  = job.hi                       up to date (run abc1234, Completed)\n"
        "No changes. Everything is up to date.\n"
    )
    assert (
        state_path(spec_file, "quick", "local").read_bytes() == saved
    )  # plan never writes the state
