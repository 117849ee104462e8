"""runner/planview.py: the human view of a plan, line by line, and its summary line."""

from test_plan import (
    QUICK,
    actual,
    applied,
    changed_parts,
    cluster,
    job,
    model,
    plan_of,
    run,
    ws,
)

from runner import cost, spec as spec_mod
from runner.changes import CREATE, NOOP, REPLACE, RUN, UPDATE, Change, Plan
from runner.plan import desired, destroy_plan
from runner.planview import render, summary_line

# --- the summary line ----------------------------------------------------------------------------


def test_summary_counts_each_action():
    p = plan_of(
        model(
            ws(),
            cluster("new"),
            cluster("up", max_instances=4),
            cluster("rep", size="X"),
            jobs={"a": job(), "b": job(), "w": job(), "n": job()},
        ),
        actual(
            ws(),
            cluster("up"),
            cluster("rep"),
            cluster("gone"),
            jobs={"b": run(status="Failed"), "w": run(status="Running"), "n": run()},
        ),
    )
    assert p.summary() == {"add": 1, "change": 1, "replace": 1, "destroy": 1, "run": 2, "wait": 1}
    assert p.has_changes
    assert (
        summary_line(p)
        == "Plan: 1 to add, 1 to change, 1 to replace, 1 to destroy, 2 jobs to run, 1 to wait for."
    )


def test_a_plan_with_only_a_wait_has_changes():
    p = plan_of(model(ws(), jobs={"w": job()}), actual(ws(), jobs={"w": run(status="Running")}))
    assert p.has_changes
    assert (
        summary_line(p)
        == "Plan: 0 to add, 0 to change, 0 to replace, 0 to destroy, 0 jobs to run, 1 to wait for."
    )


# --- the human view ------------------------------------------------------------------------------

DESIGN_EXAMPLE = """\
  + workspace.mlw-dp100-dev
  + compute.aml-cluster          amlcompute STANDARD_DS11_V2, 0..2 nodes
  ~ compute.ci-dev               idle_time_before_shutdown_minutes: 60 -> 30
-/+ compute.gpu                  size: STANDARD_NC6 -> STANDARD_NC24 (cannot change in place)
  > job.train-mlflow             code changed since run 3f2a9c1
  = job.train-autolog            up to date (run 81bd0e2, Completed)
Plan: 2 to add, 1 to change, 1 to replace, 0 to destroy, 1 job to run.
"""


def hand_plan(changes):
    return Plan(
        target="local",
        spec="lab.yaml",
        digest="d",
        lineage="",
        serial=0,
        variables={},
        changes=changes,
    )


def test_render_matches_the_design_example_word_for_word():
    p = hand_plan(
        [
            Change("workspace.mlw-dp100-dev", CREATE, ""),
            Change("compute.aml-cluster", CREATE, "amlcompute STANDARD_DS11_V2, 0..2 nodes"),
            Change("compute.ci-dev", UPDATE, "idle_time_before_shutdown_minutes: 60 -> 30"),
            Change(
                "compute.gpu",
                REPLACE,
                "size: STANDARD_NC6 -> STANDARD_NC24 (cannot change in place)",
            ),
            Change("compute.unchanged", NOOP, "up to date"),
            Change("job.train-mlflow", RUN, "code changed since run 3f2a9c1"),
            Change("job.train-autolog", NOOP, "up to date (run 81bd0e2, Completed)"),
        ]
    )
    assert render(p) == DESIGN_EXAMPLE


def test_render_of_a_made_plan_with_one_of_each_action():
    m = model(
        ws(),
        cluster("new"),
        cluster("grow", max_instances=4),
        cluster("bigger", size="STANDARD_NC24"),
        cluster("same"),
        jobs={"train": job(changed_parts("code")), "score": job(), "eval": job()},
    )
    a = actual(
        ws(),
        cluster("grow"),
        cluster("bigger", size="STANDARD_NC6"),
        cluster("same"),
        cluster("gone"),
        jobs={
            "train": run(),
            "score": run(status="Running", run_id="5e6f7a8b9c"),
            "eval": run(run_id="81bd0e2aa"),
        },
    )
    assert render(plan_of(m, a)) == (
        "  + compute.new                  amlcompute STANDARD_DS11_V2, 0..2 nodes\n"
        "  ~ compute.grow                 max_instances: 2 -> 4\n"
        "-/+ compute.bigger               size: STANDARD_NC6 -> STANDARD_NC24 "
        "(cannot change in place)\n"
        "  > job.train                    code changed since run abc1234\n"
        "  * job.score                    run 5e6f7a8 is Running: wait for it\n"
        "  = job.eval                     up to date (run 81bd0e2, Completed)\n"
        "  - compute.gone                 no longer in the spec\n"
        "Plan: 1 to add, 1 to change, 1 to replace, 1 to destroy, 1 job to run, 1 to wait for.\n"
    )


def test_render_widens_the_address_column_for_a_long_address():
    long = "compute." + "x" * 30
    p = hand_plan([Change("job.a", RUN, "first run"), Change(long, CREATE, "computeinstance")])
    assert render(p) == (
        "  > job.a                                   first run\n"
        "  + compute.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx  computeinstance\n"
        "Plan: 1 to add, 0 to change, 0 to replace, 0 to destroy, 1 job to run.\n"
    )


def test_render_of_an_up_to_date_lab_shows_its_jobs_and_says_no_changes():
    p = plan_of(
        model(ws(), cluster(), jobs={"train": job()}),
        actual(ws(), cluster(), jobs={"train": run()}),
    )
    assert render(p) == (
        "  = job.train                    up to date (run abc1234, Completed)\n"
        "No changes. Everything is up to date.\n"
    )


def test_render_of_an_empty_plan_is_only_the_summary():
    assert render(hand_plan([])) == "No changes. Everything is up to date.\n"


# --- from a real spec, with its cost ------------------------------------------------------------


def test_render_of_a_plan_made_from_a_spec_prices_its_computes_and_says_the_labs_cost(tmp_path):
    (tmp_path / "lab.yaml").write_text(QUICK)
    spec = spec_mod.load(tmp_path / "lab.yaml")
    m = desired(spec, manages_resource_group=False)
    costs = cost.estimate(spec)  # the bundled table's (conftest keeps the live API out of tests)
    lines = render(plan_of(m, actual(lineage="", serial=0)), costs).splitlines()
    assert lines == [
        "  + workspace.ws-quick",
        "  + compute.cpu                  amlcompute STANDARD_DS11_V2, 0..2 nodes; $0.00/h idle, "
        "$0.37/h at 2 nodes",
        "  > job.hi                       first run",
        "cost on azure: $0.37/h while running, $0.00/h idle (USD retail, eastus, prices as of "
        "2026-12-01, bundled; disks, storage and networking not priced)",
        "Plan: 2 to add, 0 to change, 0 to replace, 0 to destroy, 1 job to run.",
    ]
    grown = QUICK.replace("max_instances: 2", "max_instances: 4")
    (tmp_path / "lab.yaml").write_text(grown)
    spec = spec_mod.load(tmp_path / "lab.yaml")
    lines = render(
        plan_of(desired(spec, manages_resource_group=False), applied(m)), cost.estimate(spec)
    ).splitlines()
    assert lines == [
        "  ~ compute.cpu                  max_instances: 2 -> 4; $0.00/h idle, $0.74/h at 4 nodes",
        "  = job.hi                       up to date (run 0234567, Completed)",
        "cost on azure: $0.74/h while running, $0.00/h idle (USD retail, eastus, prices as of "
        "2026-12-01, bundled; disks, storage and networking not priced)",
        "Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy, 0 jobs to run.",
    ]


def test_a_plan_that_only_destroys_is_not_priced(tmp_path):
    (tmp_path / "lab.yaml").write_text(QUICK)
    spec = spec_mod.load(tmp_path / "lab.yaml")
    p = destroy_plan(
        applied(desired(spec, manages_resource_group=False)), target="local", spec="lab.yaml"
    )
    assert render(p, cost.estimate(spec)) == (
        "  - job.hi                       forget it; its runs are deleted with the workspace\n"
        "  - compute.cpu\n"
        "  - workspace.ws-quick           with its tracking store and every run in it\n"
        "Plan: 0 to add, 0 to change, 0 to replace, 3 to destroy, 0 jobs to run.\n"
    )
