"""Results: what the lab's runs logged, as one value (format_version 1) that every view renders.
Building it reads the tracking store; the views (table, JSON, Markdown; HTML in report_html.py)
only render it."""

from __future__ import annotations

import base64
import datetime as dt
import json
import mimetypes
import os
from pathlib import Path
from typing import TYPE_CHECKING

from . import azure_only
from .backends import targets
from .errors import UserError, plural
from .formats import duration, num, placed, served, share, short, signed, status_word, sweep_line

if TYPE_CHECKING:
    from .context import Context

FORMAT_VERSION = 1
IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".gif", ".svg")


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (
        dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
        .isoformat(timespec="seconds")
        .replace("+00:00", "Z")
    )


def _seconds(run: dict) -> float | None:
    try:
        start = dt.datetime.fromisoformat(run["started"].replace("Z", "+00:00"))
        end = dt.datetime.fromisoformat(run["ended"].replace("Z", "+00:00"))
    except (KeyError, AttributeError, TypeError, ValueError):
        return None
    return round((end - start).total_seconds(), 3)


def _artifacts(client, run_id: str, path: str | None = None) -> list[str]:
    out: list[str] = []
    for f in client.list_artifacts(run_id, path):
        out += _artifacts(client, run_id, f.path) if f.is_dir else [f.path]
    return out


def _user_tags(tags: dict) -> dict:
    return {k: v for k, v in sorted(tags.items()) if not k.startswith(("mlflow.", "mlrun."))}


def _run_summary(run) -> dict:
    """An MLflow run as reports and `mlrun runs` show it."""
    info, data = run.info, run.data
    return {
        "run_id": info.run_id,
        "run_name": info.run_name,
        "job": data.tags.get("mlrun.job"),
        "status": status_word(info.status),
        "start": _iso(info.start_time),
        "duration": round((info.end_time - info.start_time) / 1000, 3) if info.end_time else None,
        "params": dict(sorted(data.params.items())),
        "metrics": dict(sorted(data.metrics.items())),
        "tags": _user_tags(data.tags),
    }


def job_entry(spec, state, backend, client, name: str, images: bool, full: bool = True) -> dict:
    run = state.latest(name)
    entry = {
        "job": name,
        "status": run["status"] if run else "never run",
        "run_id": run and run.get("id"),
        "experiment": spec.experiment(spec.jobs[name]) if name in spec.jobs else None,
        "start": run and run.get("started"),
        "duration": _seconds(run) if run else None,
        "error": run and run.get("error"),
        "params": {},
        "metrics": {},
        "tags": {},
        "artifacts": [],
        "where": backend.run_url(run) if run and run.get("id") else None,
        "previous": None,
        "histories": {},
        "images": [],
        "sweep": None,
        "pipeline": None,
    }
    if not (run and run.get("id")):
        return entry
    mlrun = client.find(run["id"])
    if mlrun is None:  # the store has no such run (a job stopped before its run was made)
        return entry
    entry.update(
        {k: v for k, v in _run_summary(mlrun).items() if k in ("params", "metrics", "tags")}
    )
    if name in spec.jobs and spec.jobs[name].is_sweep:
        entry["sweep"] = _sweep(client, spec.jobs[name], mlrun)
    if name in spec.jobs and spec.jobs[name].pipeline is not None:
        entry["pipeline"] = _pipeline(client, spec.jobs[name], mlrun)
    earlier = [r for r in state.runs(name)[:-1] if r.get("id") and r.get("status") == "Completed"]
    before = client.find(earlier[-1]["id"]) if earlier else None
    if before is not None:
        prev = before.data.metrics
        entry["previous"] = {
            "run_id": earlier[-1]["id"],
            "metrics": dict(sorted(prev.items())),
            "change": {k: v - prev[k] for k, v in entry["metrics"].items() if k in prev},
        }
    if not full:
        return entry
    entry["artifacts"] = _artifacts(client, run["id"])
    for key in entry["metrics"]:
        history = client.get_metric_history(run["id"], key)
        if len(history) > 1:
            entry["histories"][key] = [
                [m.step, m.value] for m in sorted(history, key=lambda m: (m.step, m.timestamp))
            ]
    for path in entry["artifacts"]:
        if path.lower().endswith(IMAGE_TYPES):
            image = {"path": path, "mime": mimetypes.guess_type(path)[0] or "image/png"}
            if images:
                with open(client.download_artifacts(run["id"], path), "rb") as f:
                    image["data"] = base64.b64encode(f.read()).decode()
            entry["images"].append(image)
    return entry


def _sweep(client, job, parent) -> dict:
    """A sweep's trials (its parent run's children) with their searched values and objective."""
    primary = job.objective.get("primary_metric")
    children = client.children(parent)
    trials = [
        {
            "run_id": r.info.run_id,
            "run_name": r.info.run_name,
            "status": status_word(r.info.status),
            "params": _searched(job, r),
            "value": r.data.metrics.get(primary),
            "early_terminated": r.data.tags.get("mlrun.early_terminated") == "true",
        }
        for r in children
    ]
    best = parent.data.tags.get("mlrun.best_trial") or parent.data.tags.get(
        "best_child_run_id"
    )  # local, Azure
    return {
        "primary_metric": primary,
        "goal": job.objective.get("goal", "maximize"),
        "parameters": list(job.search_space),
        "best_trial": best,
        "trials": trials,
    }


def _pipeline(client, job, parent) -> dict:
    """A pipeline's steps (its parent run's children, tagged mlrun.step), in dependency order:
    status, duration, params and metrics, and the run a reused step reuses."""
    runs = _step_runs(client, parent, list(job.pipeline.steps))
    steps = []
    for name, step in job.pipeline.steps.items():
        run = runs.get(name)
        summary = _run_summary(run) if run else {}
        steps.append(
            {
                "step": name,
                "upstream": step.upstream,
                "run_id": run.info.run_id if run else None,
                "status": "Reused"
                if run and run.data.tags.get("mlrun.reused_from")
                else (status_word(run.info.status) if run else "NotStarted"),
                "reused_from": run.data.tags.get("mlrun.reused_from") if run else None,
                "duration": summary.get("duration"),
                "params": summary.get("params", {}),
                "metrics": summary.get("metrics", {}),
            }
        )
    return {"steps": steps}


def _step_runs(client, parent, names) -> dict:
    """A pipeline run's steps by name: its children (tagged mlrun.step, or by run name); a
    nested pipeline's step `OUTER.INNER` (locally flattened into the outer run) else found as
    INNER among the children of OUTER's run, as Azure ML runs them."""

    def kids(run) -> dict:
        return {r.data.tags.get("mlrun.step") or r.info.run_name: r for r in client.children(run)}

    runs = kids(parent)
    found, seen = dict(runs), {"": runs}
    for name in names:
        if name in found or "." not in name:
            continue
        parts = name.split(".")
        for i in range(1, len(parts)):
            outer, at = ".".join(parts[:i]), ".".join(parts[: i - 1])
            run = seen.get(at, {}).get(parts[i - 1])
            if run is None:
                break
            seen.setdefault(outer, kids(run))
        run = seen.get(".".join(parts[:-1]), {}).get(parts[-1])
        if run is not None:
            found[name] = run
    return found


def _searched(job, run) -> dict:
    """A trial's searched values: its params (local), or Azure ML's `hyperparameters` tag (JSON)."""
    try:
        tagged = json.loads(run.data.tags.get("hyperparameters") or "{}")
    except ValueError:
        tagged = {}
    return {
        p: run.data.params.get(p, None if tagged.get(p) is None else str(tagged[p]))
        for p in job.search_space
    }


def build(ctx: Context, images: bool = False, full: bool = True) -> dict:
    """The report of a lab: jobs, experiments side by side, saved queries with their results.
    Not `full` (apply's closing table): the jobs' params, metrics and changes only, which on Azure
    saves a request per metric, artifact folder, experiment and query."""
    os.environ.setdefault(
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false"
    )  # one bar per image otherwise
    spec, state, backend = ctx.spec, ctx.state, ctx.backend
    client = _RunCache(backend)
    client.prefetch(state, spec.jobs)
    jobs = [job_entry(spec, state, backend, client, name, images, full) for name in spec.jobs]
    if targets.get(ctx.target).runs_here:  # what only Azure runs was skipped, not left unrun
        for j in jobs:
            job = spec.jobs[j["job"]]
            if j["status"] == "never run" and (why := azure_only.reason(job.fields, job.pipeline)):
                j.update(status="skipped", skipped=why)
    experiments = []
    for exp_name in dict.fromkeys(j["experiment"] for j in jobs if j["experiment"] and full):
        ids = [j["run_id"] for j in jobs if j["experiment"] == exp_name and j["run_id"]]
        runs = [_run_summary(r) for i in ids if (r := client.find(i)) is not None]
        metrics = sorted(
            {m for r in runs for m in r["metrics"]},
            key=lambda m: (-sum(m in r["metrics"] for r in runs), m),
        )
        experiments.append({"name": exp_name, "metrics": metrics, "runs": runs})
    queries = []
    for name, q in spec.queries.items() if full else ():
        try:
            found = search(
                client,
                q["experiment"],
                q.get("filter", ""),
                order_keys(q.get("order_by")),
                q.get("max_results", 100),
            )
            queries.append({"name": name, **_query_fields(q), "runs": found, "error": None})
        except UserError as e:
            queries.append({"name": name, **_query_fields(q), "runs": [], "error": str(e)})
    return {
        "format_version": FORMAT_VERSION,
        "lab": spec.name,
        "description": spec.description,
        "target": ctx.target,
        "tracking_uri": backend.tracking_uri,
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "jobs": jobs,
        "data": data_assets(state) + skipped_data(ctx),
        "models": models(state),
        "endpoints": endpoints(state),
        "experiments": experiments,
        "queries": queries,
    }


def data_assets(state) -> list[dict]:
    """The data asset versions the lab registered (the latest of each), as the state has them."""
    return [
        {
            "name": r["name"],
            "version": (r.get("attrs") or {}).get("version"),
            "type": (r.get("attrs") or {}).get("type"),
            "summary": (r.get("attrs") or {}).get("summary"),
        }
        for _, r in sorted(state.resources.items())
        if r.get("kind") == "data"
    ]


def skipped_data(ctx: Context) -> list[dict]:
    """On a target that is not Azure, the spec's data imports: skipped, and why."""
    if not targets.get(ctx.target).runs_here:
        return []
    return [
        {"name": name, "version": None, "type": a.type, "summary": why, "skipped": why}
        for name, a in ctx.spec.data.items()
        if a.imported and (why := azure_only.import_note(a.fields))
    ]


def models(state) -> list[dict]:
    """The model versions the lab registered (the latest of each), with the run that made it."""
    found = []
    for _, r in sorted(state.resources.items()):
        if r.get("kind") == "model":
            attrs, details = r.get("attrs") or {}, r.get("details") or {}
            found.append(
                {
                    "name": r["name"],
                    "version": attrs.get("version"),
                    "type": attrs.get("type"),
                    "source": attrs.get("source"),
                    "job": attrs.get("job"),
                    "run_id": attrs.get("run"),
                    "uri": details.get("uri") or details.get("id"),
                }
            )
    return found


def endpoints(state) -> list[dict]:
    """The lab's endpoints as the state has them: where each answers, its deployments (what they
    serve, their share of traffic, whether their servers were down when last looked at), and the
    answer to the lab's call (`invoke:`) when it made one."""
    found = []
    for _, r in sorted(state.resources.items()):
        if r.get("kind") != "endpoint":
            continue
        name, attrs = r["name"], r.get("attrs") or {}
        traffic = attrs.get("traffic") or {}
        deployments = []
        for _, d in sorted(state.resources.items()):
            if d.get("kind") == "deployment" and d["name"].startswith(f"{name}/"):
                dep, info = d["name"].partition("/")[2], d.get("attrs") or {}
                deployments.append(
                    {
                        "name": dep,
                        "model": info.get("model"),
                        "server": info.get("server"),
                        "instance_type": info.get("instance_type"),
                        "instance_count": info.get("instance_count"),
                        "compute": info.get("compute"),
                        "settings": info.get("settings"),
                        "component": info.get("component"),  # a pipeline deployment's
                        "steps": info.get("component_steps"),
                        "traffic": traffic.get(dep, 0),
                        "down": (d.get("details") or {}).get("down"),
                    }
                )
        call = next(
            (
                c
                for c in state.resources.values()
                if c.get("kind") == "invoke" and c["name"] == name
            ),
            None,
        )
        invoke = None
        if call is not None:
            asked, answered = call.get("attrs") or {}, call.get("details") or {}
            invoke = {
                "request_file": asked.get("request_file"),
                "input": asked.get("input"),  # batch: what it scored, its run and output
                "deployment": asked.get("deployment"),
                "status": answered.get("status"),
                "answer": answered.get("answer"),
                "at": answered.get("at"),
                "run_id": answered.get("run"),
                "output": _output_files(answered.get("output"))
                + [  # a pipeline deployment's call: each of its outputs
                    f
                    for out in (answered.get("outputs") or {}).values()
                    for f in _output_files(out)
                ],
            }
        found.append(
            {
                "name": name,
                "type": attrs.get("type"),
                "auth_mode": attrs.get("auth_mode"),
                "scoring_uri": (r.get("details") or {}).get("scoring_uri"),
                "default": attrs.get("default"),  # batch: the deployment invoked by default
                "deployments": deployments,
                "invoke": invoke,
            }
        )
    return found


def _output_files(folder: str | None) -> list[dict]:
    """A batch call's output files, with their lines (rows appended)."""
    found = []
    for path in sorted(Path(folder).glob("*")) if folder else []:
        if path.is_file():
            with open(path, "rb") as f:
                found.append({"path": str(path), "lines": sum(1 for _ in f)})
    return found


class _RunCache:
    """An MLflow client whose get_run answers each run once per report; MLflow is loaded only
    for what the runs read at first (prefetch) do not answer."""

    def __init__(self, backend):
        self._backend, self._client, self._runs = backend, None, {}

    @property
    def client(self):
        if self._client is None:
            self._client = self._backend.client()
        return self._client

    def prefetch(self, state, names) -> None:
        """Read the runs the report shows (each job's latest run and the completed one before it)
        at once, where the target reads runs in bulk. A run it does not give is read by get_run."""
        wanted: dict[str, set[str]] = {}
        for name in names:
            runs = [r for r in state.runs(name) if r.get("id") and r.get("experiment_id")]
            earlier = [r for r in runs[:-1] if r.get("status") == "Completed"]
            for r in runs[-1:] + earlier[-1:]:
                wanted.setdefault(str(r["experiment_id"]), set()).add(r["id"])
        if wanted:
            self._runs.update(self._backend.read_runs(wanted))

    def children(self, parent) -> list:
        """A sweep's or pipeline's child runs, oldest first."""
        return self._backend.child_runs(parent)

    def get_run(self, run_id: str):
        if run_id not in self._runs:
            self._runs[run_id] = self.client.get_run(run_id)
        return self._runs[run_id]

    def find(self, run_id: str):
        """The run, or None where the tracking store has none of that id: a run recorded in the
        state before the target made it (mlrun stopped in between), or one deleted since."""
        try:
            return self.get_run(run_id)
        except Exception as e:
            if getattr(e, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def __getattr__(self, name):
        return getattr(self.client, name)


def query_runs(
    ctx,
    query: str | None,
    experiment: str | None,
    filter_string: str | None,
    order_by: tuple[str, ...],
    max_results: int | None,
    model: str | None = None,
) -> tuple[str, list[dict]]:
    """`mlrun runs`: a saved query of the spec, or the flags, run against the tracking store; the
    experiment searched (the flag's, the query's, the model's job's, or the jobs' only one) and
    the runs found. With `model`, only the runs that made a version of it (each with its
    `model_version`)."""
    spec, saved = ctx.spec, {}
    if model is not None and (model not in spec.models or spec.models[model].job is None):
        made = ", ".join(n for n, m in spec.models.items() if m.job) or "none"
        raise UserError(f"no model named '{model}' made by a job of {spec.path} (models: {made})")
    if query:
        if query not in spec.queries:
            raise UserError(
                f"no query named '{query}' in {spec.path} "
                f"(queries: {', '.join(spec.queries) or 'none'})"
            )
        saved = spec.queries[query]
    experiments = list(dict.fromkeys(spec.experiment(j) for j in spec.jobs.values()))
    if model is not None:
        experiments = [spec.experiment(spec.jobs[spec.models[model].job.job])]
    experiment = (
        experiment or saved.get("experiment") or (experiments[0] if len(experiments) == 1 else None)
    )
    if not experiment:
        raise UserError(
            f"which experiment? pass --experiment (experiments: {', '.join(experiments) or 'none'})"
        )
    ctx.require_runs()
    order = list(order_by) or order_keys(saved.get("order_by"))
    filters = [filter_string if filter_string is not None else saved.get("filter", "")]
    versions: dict[str, list[str]] = {}
    if model is not None:
        for version, run_id in ctx.backend.model_versions(model):
            versions.setdefault(run_id, []).append(version)
        if not versions:
            return experiment, []
        ids = ", ".join(f"'{run_id}'" for run_id in versions)
        filters.append(f"attributes.run_id IN ({ids})")
    found = search(
        ctx.backend.client(),
        experiment,
        " AND ".join(f for f in filters if f),
        order,
        max_results or saved.get("max_results", 100),
    )
    for r in found if model is not None else ():
        r["model_versions"] = versions.get(r["run_id"], [])
    return experiment, found


def order_keys(order_by) -> list[str]:
    return [order_by] if isinstance(order_by, str) else list(order_by or [])


def _query_fields(q: dict) -> dict:
    return {
        "description": q.get("description", ""),
        "experiment": q["experiment"],
        "filter": q.get("filter", ""),
        "order_by": order_keys(q.get("order_by")),
        "max_results": q.get("max_results", 100),
    }


def search(
    client, experiment: str, filter_string: str, order_by: list[str], max_results: int
) -> list[dict]:
    """MLflow's search_runs on one experiment, MLflow's complaints as one clear UserError."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise UserError(
            f"no experiment named '{experiment}' in the tracking store (has the lab run?)"
        )
    try:
        runs = client.search_runs(
            [exp.experiment_id],
            filter_string=filter_string or "",
            order_by=order_by or None,
            max_results=max_results,
        )
    except MlflowException as e:
        reason = " ".join(str(e.message).split())
        raise UserError(f"MLflow rejected the search: {reason}") from None
    return [_run_summary(r) for r in runs]


# --- views ---------------------------------------------------------------------------------------


def render_runs(experiment: str, found: list[dict]) -> str:
    """`mlrun runs`: one line per run found by `search`."""
    width = max([len(r["run_name"] or "") for r in found] + [3])
    made = any("model_versions" in r for r in found)  # mlrun runs --model
    model = f"{'MODEL':<7}  " if made else ""
    lines = [f"{'RUN':<{width}}  {'ID':<7}  {model}{'STATUS':<9} {'START':<20}  METRICS"]
    for r in found:
        metrics = "  ".join(f"{k}={num(v)}" for k, v in r["metrics"].items())
        versions = ",".join(f"v{v}" for v in r.get("model_versions", []))
        model = f"{versions:<7}  " if made else ""
        lines.append(
            f"{r['run_name'] or '-':<{width}}  {r['run_id'][:7]}  {model}{r['status']:<9} "
            f"{r['start'] or '-':<20}  {metrics}".rstrip()
        )
    lines.append(f"{plural(len(found), 'run')} in {experiment}")
    return "\n".join(lines) + "\n"


def render_table(report: dict) -> str:
    """The terminal view (also what apply prints at the end): a line per job, then its details."""
    jobs = report["jobs"]
    width = max([len(j["job"]) for j in jobs] + [3])
    lines = [f"{'JOB':<{width}}  {'STATUS':<10} {'RUN':<8} DURATION"]
    for j in jobs:
        lines.append(
            f"{j['job']:<{width}}  {j['status']:<10} "
            f"{short(j['run_id']) if j['run_id'] else '-':<8} {duration(j['duration'])}"
        )
        change = (j["previous"] or {}).get("change", {})
        details = [
            ("error", j["error"]),
            ("skipped", j.get("skipped")),
            ("params", "  ".join(f"{k}={num(v)}" for k, v in j["params"].items())),
            (
                "metrics",
                "  ".join(
                    f"{k}={num(v)}" + (f" ({signed(change[k])})" if change.get(k) else "")
                    for k, v in j["metrics"].items()
                ),
            ),
        ]
        lines += [f"{'':<{width}}  {label:<8} {text}" for label, text in details if text]
        if j["sweep"]:
            lines.append(f"{'':<{width}}  {'sweep':<8} {sweep_line(j['sweep'])}")
        for s in (j.get("pipeline") or {}).get("steps", []):
            what = (
                f"reuses {short(s['reused_from'])}" if s["reused_from"] else duration(s["duration"])
            )
            metrics = "  ".join(f"{k}={num(v)}" for k, v in s["metrics"].items())
            lines.append(
                f"{'':<{width}}  {'step':<8} {s['step']}: {s['status']}, {what}"
                + (f"  {metrics}" if metrics else "")
            )
    return "\n".join(lines) + "\n"


def render_terminal(report: dict) -> str:
    """`mlrun report`: the jobs' table apply ends with, then what the Markdown and JSON reports
    have beside it: data assets, models, endpoints, each experiment's runs side by side and the
    saved queries' answers, each a plain table."""
    parts = [render_table(report)]
    if report.get("data"):
        rows = [[d["name"], f"v{d['version']}", d["type"], d["summary"]] for d in report["data"]]
        parts.append(_text_table(["DATA ASSET", "VERSION", "TYPE", "CONTENT"], rows))
    if report.get("models"):
        rows = [
            [m["name"], f"v{m['version']}", m["type"], m["source"], short(m["run_id"] or "") or "-"]
            for m in report["models"]
        ]
        parts.append(_text_table(["MODEL", "VERSION", "TYPE", "FROM", "RUN"], rows))
    for e in report.get("endpoints") or []:
        rows = [_deployment_row(e, d) for d in e["deployments"]]
        head = f"endpoint {e['name']}: {e['type']}, scoring URI {e['scoring_uri'] or '-'}\n"
        table = _text_table(["DEPLOYMENT", "MODEL", "INSTANCES", "TRAFFIC", "HEALTH"], rows)
        call = e["invoke"]
        if call and call.get("run_id"):
            table += f"scored {call['input']}: run {short(call['run_id'])}\n"
            table += "".join(f"  {f['path']} ({f['lines']:,} rows)\n" for f in call["output"])
        elif call:
            table += f"called with {call['request_file']}: {call['status']} {call['answer']}\n"
        parts.append(head + table)
    for exp in report["experiments"]:
        rows = [
            [r["run_name"] or "-", r["job"] or "-", r["status"]]
            + [num(r["metrics"][m]) if m in r["metrics"] else "-" for m in exp["metrics"]]
            for r in exp["runs"]
        ]
        head = f"experiment {exp['name']}: {plural(len(exp['runs']), 'run')}\n"
        parts.append(head + _text_table(["RUN", "JOB", "STATUS", *exp["metrics"]], rows))
    for q in report["queries"]:
        head = (
            f"query {q['name']}: {q['filter'] or '(all runs)'} on {q['experiment']}"
            + (f", ordered by {', '.join(q['order_by'])}" if q["order_by"] else "")
            + "\n"
        )
        if q["error"]:
            parts.append(head + f"error: {q['error']}\n")
            continue
        rows = [
            [
                r["run_name"] or "-",
                r["status"],
                r["start"] or "-",
                "  ".join(f"{k}={num(v)}" for k, v in r["metrics"].items()),
            ]
            for r in q["runs"]
        ]
        parts.append(
            head
            + (
                _text_table(["RUN", "STATUS", "START", "METRICS"], rows)
                if rows
                else "no runs match\n"
            )
        )
    return "\n".join(parts)


def _deployment_row(e: dict, d: dict) -> list[str]:
    """A deployment of a report's endpoint: name, model, instances, traffic, health."""
    health = f"down: {d['down']}" if d["down"] else "ready" if d["compute"] else "running"
    return [d["name"], served(d), placed(d), share(e, d), health]


def _text_table(header: list[str], rows: list[list]) -> str:
    """Columns as wide as their widest cell, two spaces apart."""
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in cells
    )


def render(report: dict, fmt: str) -> str:
    """The report in one of formats.REPORT_FORMATS."""
    if fmt == "html":
        from .report_html import render_html

        return render_html(report)
    views = {"table": render_terminal, "json": render_json, "markdown": render_markdown}
    return views[fmt](report)


def render_json(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=False) + "\n"


def _md(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]


def render_markdown(report: dict) -> str:
    """For CI summaries: tables and links, no images."""
    lines = [f"# {report['lab']}", ""]
    if report["description"]:
        lines += [report["description"], ""]
    lines += [
        f"Target `{report['target']}`, tracking `{report['tracking_uri']}`.",
        "",
        "## Jobs",
        "",
    ]
    rows = []
    for j in report["jobs"]:
        change = (j["previous"] or {}).get("change", {})
        metrics = ", ".join(
            f"{k}={num(v)}" + (f" ({signed(change[k])})" if change.get(k) else "")
            for k, v in j["metrics"].items()
        )
        run = (
            f"[{short(j['run_id'])}]({j['where']})"
            if j["run_id"] and j["where"]
            else (short(j["run_id"]) if j["run_id"] else "-")
        )
        rows.append(
            [
                j["job"],
                j["status"],
                run,
                duration(j["duration"]),
                ", ".join(f"{k}={num(v)}" for k, v in j["params"].items()) or "-",
                metrics or "-",
            ]
        )
    lines += _md_table(["job", "status", "run", "duration", "params", "metrics"], rows)
    if report.get("data"):
        lines += ["", "## Data assets", ""]
        lines += _md_table(
            ["data asset", "version", "type", "content"],
            [[d["name"], d["version"] or "-", d["type"], d["summary"]] for d in report["data"]],
        )
    if report.get("models"):
        lines += ["", "## Models", ""]
        lines += _md_table(
            ["model", "version", "type", "from", "run"],
            [
                [m["name"], m["version"], m["type"], m["source"], short(m["run_id"] or "") or "-"]
                for m in report["models"]
            ],
        )
    for e in report.get("endpoints") or []:
        lines += ["", f"## Endpoint `{e['name']}`", ""]
        lines += [
            f"{e['type']}, {e['auth_mode']} auth, scoring URI `{e['scoring_uri'] or '-'}`",
            "",
        ]
        lines += _md_table(
            ["deployment", "model", "instances", "traffic", "health"],
            [_deployment_row(e, d) for d in e["deployments"]],
        )
        call = e["invoke"]
        to = f" -> {call['deployment']}" if call and call["deployment"] else ""
        if call and call.get("run_id"):  # a batch endpoint's scoring job
            lines += ["", f"Scored `{call['input']}`{to}: run {short(call['run_id'])}", ""]
            lines += [f"- `{f['path']}` ({f['lines']:,} rows)" for f in call["output"]]
        elif call:
            said = f"Called with `{call['request_file']}`{to} at {call['at']}: {call['status']}"
            lines += ["", said, "", "```json", str(call["answer"]), "```"]
    for j in report["jobs"]:
        if j["sweep"]:
            s = j["sweep"]
            lines += ["", f"## Sweep `{j['job']}`", "", sweep_line(s), ""]
            lines += _md_table(
                ["trial", "status"] + s["parameters"] + [s["primary_metric"], ""],
                [
                    [t["run_name"], t["status"]]
                    + [t["params"][p] for p in s["parameters"]]
                    + [
                        "-" if t["value"] is None else num(t["value"]),
                        "best"
                        if t["run_id"] == s["best_trial"]
                        else ("stopped early" if t["early_terminated"] else ""),
                    ]
                    for t in s["trials"]
                ],
            )
    for j in report["jobs"]:
        if j.get("pipeline"):
            lines += ["", f"## Pipeline `{j['job']}`", ""]
            lines += _md_table(
                ["step", "after", "status", "duration", "params", "metrics"],
                [
                    [
                        s["step"],
                        ", ".join(s["upstream"]) or "-",
                        s["status"]
                        + (f" (reuses {short(s['reused_from'])})" if s["reused_from"] else ""),
                        duration(s["duration"]),
                        ", ".join(f"{k}={num(v)}" for k, v in s["params"].items()) or "-",
                        ", ".join(f"{k}={num(v)}" for k, v in s["metrics"].items()) or "-",
                    ]
                    for s in j["pipeline"]["steps"]
                ],
            )
    for exp in report["experiments"]:
        lines += ["", f"## Experiment `{exp['name']}`", ""]
        lines += _md_table(
            ["run", "job", "status"] + exp["metrics"],
            [
                [r["run_name"], r["job"] or "-", r["status"]]
                + [num(r["metrics"][m]) if m in r["metrics"] else "-" for m in exp["metrics"]]
                for r in exp["runs"]
            ],
        )
    for q in report["queries"]:
        lines += [
            "",
            f"## Query `{q['name']}`",
            "",
            f"`{q['filter'] or '(all runs)'}` on `{q['experiment']}`"
            + (f", ordered by {', '.join(q['order_by'])}" if q["order_by"] else "")
            + f", at most {q['max_results']}",
            "",
        ]
        if q["error"]:
            lines.append(f"**Error:** {_md(q['error'])}")
        elif not q["runs"]:
            lines.append("No runs match.")
        else:
            lines += _md_table(
                ["run", "status", "start", "metrics"],
                [
                    [
                        r["run_name"],
                        r["status"],
                        r["start"],
                        ", ".join(f"{k}={num(v)}" for k, v in r["metrics"].items()),
                    ]
                    for r in q["runs"]
                ],
            )
    return "\n".join(lines) + "\n"
