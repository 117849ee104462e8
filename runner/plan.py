"""Plans: desired vs actual -> Changes, each with an action and a reason. make_plan is pure."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from . import fingerprint
from .errors import plural
from .spec import Spec

FORMAT_VERSION = 1
CREATE, UPDATE, REPLACE, DESTROY, RUN, WAIT, NOOP = "create", "update", "replace", "destroy", "run", "wait", "noop"
SYMBOLS = {CREATE: "+", UPDATE: "~", REPLACE: "-/+", DESTROY: "-", RUN: ">", WAIT: "*", NOOP: "="}
ACTIVE = ("NotStarted", "Preparing", "Queued", "Starting", "Running", "Finalizing")
WORKSPACE_FIELDS = ("location", "resource_group", "display_name", "description", "tags")
COMPUTE_FIELDS = ("type", "size", "min_instances", "max_instances", "idle_time_before_scale_down", "tier",
                  "idle_time_before_shutdown_minutes", "idle_time_before_shutdown", "location", "description",
                  "tags")
# What Azure ML can change in place (dstack-style allow-list); any other difference replaces.
UPDATABLE = {
    "workspace": {"display_name", "description", "tags"},
    "amlcompute": {"min_instances", "max_instances", "idle_time_before_scale_down", "description", "tags"},
    "computeinstance": {"idle_time_before_shutdown_minutes", "idle_time_before_shutdown", "description", "tags"},
}


@dataclass(frozen=True)
class Change:
    address: str
    action: str
    reason: str
    before: Any = None
    after: Any = None


@dataclass
class Plan:
    target: str
    spec: str
    digest: str
    lineage: str
    serial: int
    variables: dict
    changes: list = field(default_factory=list)
    format_version: int = FORMAT_VERSION

    def count(self, action: str) -> int:
        return sum(c.action == action for c in self.changes)

    @property
    def has_changes(self) -> bool:
        return any(c.action != NOOP for c in self.changes)

    def summary(self) -> dict:
        return {"add": self.count(CREATE), "change": self.count(UPDATE), "replace": self.count(REPLACE),
                "destroy": self.count(DESTROY), "run": self.count(RUN), "wait": self.count(WAIT)}

    def to_dict(self) -> dict:
        return {"format_version": self.format_version, "target": self.target, "spec": self.spec,
                "digest": self.digest, "state": {"lineage": self.lineage, "serial": self.serial},
                "variables": self.variables, "changes": [asdict(c) for c in self.changes],
                "summary": self.summary()}

    @classmethod
    def from_dict(cls, data: dict) -> "Plan":
        return cls(target=data["target"], spec=data["spec"], digest=data["digest"],
                   lineage=data["state"]["lineage"], serial=data["state"]["serial"],
                   variables=data["variables"], changes=[Change(**c) for c in data["changes"]],
                   format_version=data["format_version"])


# --- the desired model ---------------------------------------------------------------------------

def desired(spec: Spec, target: str = "local") -> dict:
    """What the spec asks for: resources by address (a resource group on Azure), and each job's
    fingerprint."""
    ws = spec.workspace
    resources = {}
    if target == "azure" and ws.get("resource_group"):  # one named only in a config.json is used, not managed
        rg = ws["resource_group"]
        resources[f"resource_group.{rg}"] = {"kind": "resource_group", "name": rg,
                                             "attrs": {"location": ws.get("location")}}
    resources[f"workspace.{ws['name']}"] = {"kind": "workspace", "name": ws["name"],
                                            "attrs": {k: ws[k] for k in WORKSPACE_FIELDS if k in ws}}
    for c in spec.computes.values():
        resources[f"compute.{c.name}"] = {"kind": "compute", "name": c.name,
                                          "attrs": {k: c.fields[k] for k in COMPUTE_FIELDS if k in c.fields}}
    jobs = {}
    for job in spec.jobs.values():
        parts = fingerprint.parts(job)
        jobs[job.name] = {"fingerprint": fingerprint.combine(parts), "parts": parts, "compute": job.compute}
    return {"resources": resources, "jobs": jobs, "variables": spec.shown_variables()}


def digest(model: dict) -> str:
    return hashlib.sha256(json.dumps(model, sort_keys=True, default=str).encode()).hexdigest()


# --- planning (pure) -----------------------------------------------------------------------------

def make_plan(model: dict, actual: dict, *, target: str, spec: str, force=(), only=None) -> Plan:
    """Compare the desired model with the actual state (resources and latest runs): the Plan."""
    resources, have = model["resources"], actual["resources"]
    changes = [_resource_change(address, want, have.get(address)) for address, want in resources.items()]
    ws = next(i for i, (_, want) in enumerate(resources.items()) if want["kind"] == "workspace")
    fresh_ws = changes[ws].action in (CREATE, REPLACE)
    if fresh_ws:  # computes live in the workspace: a new one has none of the old ones
        changes[ws + 1:] = [c if c.action == CREATE else Change(c.address, CREATE, "in the new workspace", c.before,
                                                                c.after) for c in changes[ws + 1:]]
    for name, job in model["jobs"].items():
        changes.append(_job_change(name, job, actual["jobs"].get(name), fresh_ws, name in force,
                                   only is not None and name not in only))
    gone = [a for a in have if a not in resources]
    for name in actual["jobs"]:
        if name not in model["jobs"]:
            changes.append(Change(f"job.{name}", DESTROY, "no longer in the spec (its runs stay in the tracking store)",
                                  before=_run_view(actual["jobs"][name])))
    for address in sorted(gone, key=lambda a: (depth(have[a].get("kind")), a)):
        changes.append(Change(address, DESTROY, "no longer in the spec", before=have[address].get("attrs")))
    return Plan(target=target, spec=spec, digest=digest(model), lineage=actual.get("lineage", ""),
                serial=actual.get("serial", 0), variables=model["variables"], changes=changes)


def depth(kind: str | None) -> int:
    """Destroy order: what lives inside first (computes, then the workspace, then its group)."""
    return {"compute": 0, "workspace": 1, "resource_group": 2}.get(kind, 0)


def _resource_change(address: str, want: dict, have: dict | None) -> Change:
    after = want["attrs"]
    if have is None:
        return Change(address, CREATE, describe(want["kind"], after), after=after)
    before = have.get("attrs", {})
    diff = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    if not diff:
        return Change(address, NOOP, "up to date", before=before, after=after)
    kind = after.get("type", "workspace") if want["kind"] == "compute" else "workspace"
    fixed = [k for k in diff if k not in UPDATABLE.get(kind, set())]
    text = ", ".join(f"{k}: {_show(before.get(k))} -> {_show(after.get(k))}" for k in (fixed or diff))
    if fixed:
        return Change(address, REPLACE, f"{text} (cannot change in place)", before=before, after=after)
    return Change(address, UPDATE, text, before=before, after=after)


def describe(kind: str, a: dict) -> str:
    """`amlcompute STANDARD_DS11_V2, 0..2 nodes`: a resource in a few words."""
    if kind == "workspace":
        return ""
    if kind == "resource_group":
        return a.get("location") or ""
    size = f" {a['size']}" if a.get("size") else ""
    if a.get("type") == "amlcompute":
        return f"amlcompute{size}, {a.get('min_instances', 0)}..{a.get('max_instances', 1)} nodes"
    return f"{a.get('type')}{size}"


def _show(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _run_view(run: dict | None) -> dict | None:
    if not run:
        return None
    return {"run": run.get("id"), "status": run.get("status"), "fingerprint": run.get("fingerprint")}


def short(run_id: str | None) -> str:
    return (run_id or "?")[:7]


def _job_change(name: str, job: dict, run: dict | None, fresh_ws: bool, forced: bool, skipped: bool) -> Change:
    address, after = f"job.{name}", {"fingerprint": job["fingerprint"]}
    before = _run_view(run)
    if run and run.get("status") in ACTIVE:
        return Change(address, WAIT, f"run {short(run['id'])} is {run['status']}: wait for it", before, after)
    if skipped:
        return Change(address, NOOP, "not selected (--only)", before, after)
    if forced:
        return Change(address, RUN, "forced (--force)", before, after)
    if run is None:
        return Change(address, RUN, "first run", before, after)
    if fresh_ws:
        return Change(address, RUN, "the workspace is new", before, after)
    if run.get("status") != "Completed":
        return Change(address, RUN, f"run {short(run['id'])} {run.get('status')}", before, after)
    if run.get("fingerprint") != job["fingerprint"]:
        parts = fingerprint.changed(run.get("parts"), job["parts"]) or ["fingerprint"]  # same parts, other hashing
        what = " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts).replace("_", " ")
        return Change(address, RUN, f"{what} changed since run {short(run['id'])}", before, after)
    return Change(address, NOOP, f"up to date (run {short(run['id'])}, Completed)", before, after)


# --- views ---------------------------------------------------------------------------------------

def render(plan: Plan) -> str:
    """The human plan: one line per change (unchanged resources omitted), then the summary."""
    shown = [c for c in plan.changes if not (c.action == NOOP and not c.address.startswith("job."))]
    width = max([29] + [len(c.address) + 2 for c in shown])
    lines = [f"{SYMBOLS[c.action]:>3} {c.address:<{width}}{c.reason}".rstrip() for c in shown]
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def summary_line(plan: Plan) -> str:
    if not plan.has_changes:
        return "No changes. Everything is up to date."
    s = plan.summary()
    runs = f"{plural(s['run'], 'job')} to run"
    wait = f", {s['wait']} to wait for" if s["wait"] else ""
    return (f"Plan: {s['add']} to add, {s['change']} to change, {s['replace']} to replace, "
            f"{s['destroy']} to destroy, {runs}{wait}.")


def destroy_plan(actual: dict, *, target: str, spec: str, tracking: str = "") -> Plan:
    """Everything the state says mlrun made, in reverse order: jobs, computes, the workspace."""
    changes = []
    for name, run in sorted(actual["jobs"].items()):
        what = "cancel its running run" if run.get("status") in ACTIVE else "forget it"
        changes.append(Change(f"job.{name}", DESTROY, f"{what}; its runs are deleted with the workspace",
                              before=_run_view(run)))
    ordered = sorted(actual["resources"].items(), key=lambda kv: (depth(kv[1].get("kind")), kv[0]))
    for address, record in ordered:
        reason = ""
        if record.get("kind") == "workspace":
            reason = f"with its tracking store{f' ({tracking})' if tracking else ''} and every run in it"
        if not record.get("created_by_mlrun", True):
            reason = "it existed before mlrun: kept, only forgotten"
        changes.append(Change(address, DESTROY, reason, before=record.get("attrs")))
    return Plan(target=target, spec=spec, digest="", lineage=actual.get("lineage", ""),
                serial=actual.get("serial", 0), variables={}, changes=changes)
