"""The human view of a Plan (mlrun plan, apply, destroy): one line per change, the lab's cost,
then the summary line."""

from __future__ import annotations

from . import cost
from .changes import CREATE, DESTROY, NOOP, REPLACE, RUN, UPDATE, Action, Kind, Plan
from .errors import plural


def render(plan: Plan, costs: dict | None = None) -> str:
    """The human plan: one line per change (unchanged resources omitted, but for schedules, said
    with their next fire times; a compute with its price from `costs`, cost.estimate's), the
    lab's cost, then the summary."""
    shown = [
        c
        for c in plan.changes
        if not (c.action == NOOP and c.address.kind not in (Kind.JOB, Kind.SCHEDULE))
        or (c.after or {}).get("azure_only")  # an attached compute the local target skips
    ]
    steps = [s for c in shown if isinstance(c.after, dict) for s in c.after.get("steps", [])]
    width = max([29] + [len(c.address) + 2 for c in shown] + [len(s["step"]) + 6 for s in steps])
    priced = {i["address"]: cost.compute_text(i) for i in (costs or {}).get("items", [])}
    lines = []
    for c in shown:
        reason = c.reason
        if c.address in priced and c.action != DESTROY:
            reason = f"{reason}; {priced[c.address]}" if reason else priced[c.address]
        lines.append(f"{c.action.value:>3} {c.address:<{width}}{reason}".rstrip())
        for s in (c.after or {}).get("steps", []) if isinstance(c.after, dict) else []:
            symbol = Action.from_word(s["action"]).value
            lines.append(f"    {symbol:>3} {s['step']:<{width - 4}}{s['reason']}".rstrip())
    if costs and any(c.action in (CREATE, UPDATE, REPLACE, RUN) for c in plan.changes):
        lines.append(cost.line(costs, plan.target))  # (not for a plan that only waits or deletes)
    lines.append(summary_line(plan))
    return "\n".join(lines) + "\n"


def summary_line(plan: Plan) -> str:
    if not plan.has_changes:
        return "No changes. Everything is up to date."
    s = plan.summary()
    calls = sum(c.action == RUN and c.address.kind == Kind.INVOKE for c in plan.changes)
    runs = f"{plural(s['run'] - calls, 'job')} to run"
    if calls:
        runs += f", {plural(calls, 'endpoint call')} to make"
    wait = f", {s['wait']} to wait for" if s["wait"] else ""
    return (
        f"Plan: {s['add']} to add, {s['change']} to change, {s['replace']} to replace, "
        f"{s['destroy']} to destroy, {runs}{wait}."
    )
