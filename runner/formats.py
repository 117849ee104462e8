"""How values read in every view (plans, status, a report's table, Markdown and HTML): run ids,
numbers, changes, durations, a sweep in one line."""

from __future__ import annotations

REPORT_FORMATS = ("table", "json", "markdown", "html")


def short(run_id: str | None) -> str:
    """A run id as every view shows it: its first 7 characters (`?` for none)."""
    return (run_id or "?")[:7]


# MLflow's run statuses in Azure ML's words, which every view uses (a job's status is Azure's)
STATUS_WORDS = {
    "FINISHED": "Completed",
    "FAILED": "Failed",
    "KILLED": "Canceled",
    "RUNNING": "Running",
    "SCHEDULED": "Queued",
}


def status_word(status: str) -> str:
    """A run's status as Azure ML says it (`Completed`, not MLflow's `FINISHED`)."""
    return STATUS_WORDS.get(status, status)


def num(value) -> str:
    """A metric or param: floats to 4 significant digits (10000 and up as whole numbers, not
    `1e+04`), anything else as it is."""
    return _float(value, "") if isinstance(value, float) else str(value)


def signed(value: float) -> str:
    """A change since the previous run: `+0.01`, `-2`, `+12000`."""
    return _float(value, "+")


def _float(value: float, sign: str) -> str:
    if 1e4 <= abs(value) < 1e15:  # whole digits a person reads, not an exponent
        return f"{value:{sign}.0f}"
    return f"{value:{sign}.4g}"


def duration(seconds) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


def best_trial(sweep: dict) -> dict | None:
    """The best trial of a report's sweep entry, if one completed."""
    return next((t for t in sweep["trials"] if t["run_id"] == sweep["best_trial"]), None)


def sweep_line(sweep: dict) -> str:
    """`best tune-trial-2: AUC=0.84 (reg=0.1); maximize, 3 trials, 1 stopped early`."""
    best, stopped = best_trial(sweep), sum(t["early_terminated"] for t in sweep["trials"])
    head = (
        f"best {best['run_name']}: {sweep['primary_metric']}={num(best['value'])} "
        f"({', '.join(f'{k}={v}' for k, v in best['params'].items())})"
        if best
        else "no trial completed"
    )
    return f"{head}; {sweep['goal']}, {len(sweep['trials'])} trials" + (
        f", {stopped} stopped early" if stopped else ""
    )


def share(endpoint: dict, dep: dict) -> str:
    """A deployment's traffic (online), or whether it is its batch endpoint's default."""
    if dep.get("compute"):
        return "default" if endpoint.get("default") == dep["name"] else "-"
    return f"{dep['traffic']}%"


def served(dep: dict) -> str:
    """What a deployment serves: its model, or a pipeline deployment's component."""
    if dep.get("component"):
        return f"pipeline {dep['component']}"
    return dep.get("model") or "-"


def placed(dep: dict) -> str:
    """Where a deployment runs: its instances, a batch one's nodes of its compute, or a pipeline
    deployment's steps on theirs."""
    if dep.get("component"):
        steps = dep.get("steps") or []
        return f"{len(steps)} step{'' if len(steps) == 1 else 's'} on {dep.get('compute')}"
    if dep.get("compute"):
        return f"{(dep.get('settings') or {}).get('instance_count', 1)} x {dep['compute']}"
    return f"{dep.get('instance_count')} x {dep.get('instance_type')}"
