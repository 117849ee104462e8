"""Results: what each job's latest run logged. Views render; they never decide."""
from __future__ import annotations

import datetime as dt

from .plan import short


def _seconds(run: dict) -> float | None:
    try:
        start = dt.datetime.fromisoformat(run["started"].replace("Z", "+00:00"))
        end = dt.datetime.fromisoformat(run["ended"].replace("Z", "+00:00"))
    except (KeyError, AttributeError, ValueError):
        return None
    return (end - start).total_seconds()


def job_results(spec, state, backend) -> list[dict]:
    """Each job's latest run with its params and metrics from the tracking store."""
    client = backend.client()
    rows = []
    for name in spec.jobs:
        run = state.latest(name)
        row = {"job": name, "status": run["status"] if run else "never run", "run": run and run.get("id"),
               "duration": _seconds(run) if run else None, "params": {}, "metrics": {}, "tags": {},
               "error": run and run.get("error")}
        if run and run.get("id"):
            data = client.get_run(run["id"]).data
            row["params"], row["metrics"] = dict(data.params), dict(data.metrics)
            row["tags"] = {k: v for k, v in data.tags.items() if not k.startswith(("mlflow.", "mlrun."))}
        rows.append(row)
    return rows


def _num(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render_table(rows: list[dict]) -> str:
    """A results table: one line per job, then its params and metrics, indented."""
    width = max([len(r["job"]) for r in rows] + [3])
    lines = [f"{'JOB':<{width}}  {'STATUS':<10} {'RUN':<8} DURATION"]
    for r in rows:
        duration = f"{r['duration']:.1f}s" if r["duration"] is not None else "-"
        lines.append(f"{r['job']:<{width}}  {r['status']:<10} {short(r['run']) if r['run'] else '-':<8} {duration}")
        if r.get("error"):
            lines.append(f"{'':<{width}}  error    {r['error']}")
        for label, values in (("params", r["params"]), ("metrics", r["metrics"])):
            if values:
                text = "  ".join(f"{k}={_num(v)}" for k, v in sorted(values.items()))
                lines.append(f"{'':<{width}}  {label:<8} {text}")
    return "\n".join(lines) + "\n"
