"""`mlrun status`: the resources the state records and each job's latest run, as data and as
text."""

from __future__ import annotations

import time

from . import azure_only, cost, plan as planning, schedules
from .backends import targets
from .changes import VERSIONED
from .formats import short


def build(ctx) -> dict:
    """Resources and jobs as the target reports them now; a job is up to date when its latest run
    completed with the fingerprint the spec gives it today."""
    actual = ctx.refresh()
    model = planning.desired(ctx.spec, manages_resource_group=ctx.backend.manages_resource_group)
    jobs = []
    for name in list(ctx.spec.jobs) + [n for n in actual["jobs"] if n not in ctx.spec.jobs]:
        run = actual["jobs"].get(name) or {}
        want = model["jobs"].get(name)
        jobs.append(
            {
                "job": name,
                "run_id": run.get("id"),
                "status": run.get("status", _unrun(ctx, name)),
                "started": run.get("started"),
                "ended": run.get("ended"),
                "error": run.get("error"),
                "up_to_date": bool(
                    want
                    and run.get("status") == "Completed"
                    and run.get("fingerprint") == want["fingerprint"]
                ),
                **_steps(run, ctx.spec.jobs.get(name)),
            }
        )
    computes = [r["name"] for r in actual["resources"].values() if r.get("kind") == "compute"]
    live = ctx.backend.billing(  # an attached pool or cluster bills as its own resource
        [
            n
            for n in computes
            if n in ctx.spec.computes and not azure_only.compute_kind(ctx.spec.computes[n].fields)
        ]
    )
    served = {  # online deployments bill while they exist, on a target that bills
        r["name"]: r.get("details") or {}
        for r in actual["resources"].values()
        if r.get("kind") == "deployment" and targets.get(ctx.target).bills
    }
    return {
        "spec": str(ctx.spec.path),
        "target": ctx.target,
        "tracking_uri": ctx.backend.tracking_uri,
        "resources": [{"address": a, **r} for a, r in actual["resources"].items()]
        + _skipped(ctx, model["resources"], actual["resources"]),
        "jobs": jobs,
        "billable": cost.billable(ctx.spec, live, time.time(), served),
        "schedules": _schedules(model, actual, targets.get(ctx.target).runs_here),
        "traffic": {
            r["name"]: (r.get("attrs") or {}).get("traffic") or {}
            for r in actual["resources"].values()
            if r.get("kind") == "endpoint"
        },
    }


def _schedules(model: dict, actual: dict, here: bool) -> list[dict]:
    """The spec's schedules: made or not, enabled or not, their next three fire times (in each
    one's time zone), and the line plans say of them."""
    out = []
    for address, want in model["resources"].items():
        if want["kind"] != "schedule":
            continue
        attrs, job = want["attrs"], want.get("by_hand")
        times = schedules.next_times(attrs) or []
        out.append(
            {
                "address": str(address),
                "created": address in actual["resources"],
                "enabled": attrs.get("enabled", True),
                "job": job,
                "next": [t.isoformat() for t in times] if attrs.get("enabled", True) else [],
                "line": want.get("azure_only") or schedules.line(attrs, job, here),
            }
        )
    return out


def _skipped(ctx, wanted: dict, have: dict) -> list[dict]:
    """On a target that is not Azure, what only Azure makes (data imports, attached computes):
    skipped, and why."""
    if not targets.get(ctx.target).runs_here:
        return []
    return [
        {"address": a, "kind": w["kind"], "name": w["name"], "skipped": w["azure_only"]}
        for a, w in wanted.items()
        if w.get("azure_only") and a not in have
    ]


def _unrun(ctx, name: str) -> str:
    """A job without a run: skipped where only Azure runs it and the target is not Azure."""
    job = ctx.spec.jobs.get(name)
    here = targets.get(ctx.target).runs_here
    return (
        "skipped" if here and job and azure_only.reason(job.fields, job.pipeline) else "never run"
    )


def _steps(run: dict, job) -> dict:
    """A pipeline run's steps as its controller recorded them (none while it runs), in the
    pipeline's order."""
    steps = run.get("steps")
    if not isinstance(steps, dict) or not all(
        isinstance(s, dict) and "status" in s for s in steps.values()
    ):
        return {}
    order = list(job.pipeline.steps) if job is not None and job.pipeline else []
    names = [n for n in order if n in steps] + sorted(n for n in steps if n not in order)
    return {
        "steps": [
            {"step": n, "status": steps[n]["status"], "run_id": steps[n].get("run_id")}
            for n in names
        ]
    }


def render(data: dict) -> str:
    firsts = [r["address"] for r in data["resources"]]
    firsts += [b["address"] for b in data.get("billable") or []]
    firsts += ["job." + j["job"] for j in data["jobs"]]
    firsts += ["    " + s["step"] for j in data["jobs"] for s in j.get("steps", [])]
    width = max([33] + [len(f) + 2 for f in firsts])  # every row's columns line up

    def _cell(text: str) -> str:
        return f"{text:<{width}}"

    lines = [f"target {data['target']}, tracking {data['tracking_uri']}"]
    if not data["resources"]:
        lines.append("  nothing created yet: run mlrun apply")
    for r in sorted(
        data["resources"], key=lambda r: (-planning.depth(r.get("kind")), r["address"])
    ):
        shown = r.get("kind") in ("compute", "model") or r.get("kind") in VERSIONED
        detail = planning.describe(r["kind"], r.get("attrs") or {}) if shown else ""
        if detail.startswith("attach "):  # an attached pool or cluster, as it is now
            detail = "attached " + detail.removeprefix("attach ")
        details = r.get("details") or {}
        attrs = r.get("attrs") or {}
        if r.get("kind") == "endpoint":  # where it answers (a batch one: its default)
            detail = details.get("scoring_uri") or planning.describe("endpoint", attrs)
        if r.get("kind") == "invoke" and details.get("run"):  # a batch call: its run, its output
            outputs = details.get("outputs")  # a pipeline deployment's call: each of its outputs
            said = (
                ", ".join(f"output {n} {p}" for n, p in outputs.items()) or "no outputs"
                if isinstance(outputs, dict)
                else f"output {details.get('output')}"
            )
            detail = f"run {short(details['run'])}, {said}"
        if r.get("kind") == "schedule":  # its trigger, job, next fire times
            found = [s for s in data.get("schedules") or [] if s["address"] == r["address"]]
            detail = found[0]["line"] if found else "no longer in the spec"
        if r.get("kind") == "deployment" and attrs.get("compute"):  # batch: how it scores
            detail = planning.describe("deployment", attrs)
        elif r.get("kind") == "deployment":  # its servers' health, and its share of traffic
            detail = f"not running: {details['down']}" if details.get("down") else "running"
            endpoint, _, dep = r["name"].partition("/")
            traffic = data.get("traffic", {}).get(endpoint, {})
            detail += f", traffic {traffic.get(dep, 0)}%"
        if r.get("skipped"):
            detail = f"{'skipped':<11}{r['skipped']}"
        lines.append(f"  {_cell(r['address'])}{detail}".rstrip())
    if data.get("billable"):
        lines.append("billable now (estimates, USD retail):")
    for b in data.get("billable") or []:
        rate = "not priced" if b["per_hour"] is None else f"{cost.money(b['per_hour'])}/h"
        since = f"since {b['since']}" if b["since"] else ""
        so_far = f"about {cost.money(b['cost_so_far'])} so far" if b["cost_so_far"] else ""
        row = f"{b['state']:<11}{rate:<11}{since:<34}{so_far}"
        lines.append(f"  {_cell(b['address'])}{row}".rstrip())
    for j in data["jobs"]:
        run = f"run {short(j['run_id'])}" if j["run_id"] else ""
        note = "up to date" if j["up_to_date"] else (j["error"] or "")
        lines.append(f"  {_cell('job.' + j['job'])}{j['status']:<11}{run:<12}{note}".rstrip())
        for s in j.get("steps", []):
            run = f"run {short(s['run_id'])}" if s["run_id"] else ""
            lines.append(f"  {_cell('    ' + s['step'])}{s['status']:<11}{run}".rstrip())
    return "\n".join(lines) + "\n"
