"""The HTML view of a report (runner.report.build): one self-contained file, no network.

Inline CSS, no scripts, charts as hand-written inline SVG, images as data: URIs. Every string that
comes from the report goes through html.escape. Like the other views it only renders: the report
value has decided everything already."""

from __future__ import annotations

import html
import math
import re

from .formats import duration, num, placed, served, share, signed, sweep_line

PALETTE = ("#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2", "#65a30d", "#dc2626")
STATUS_CLASS = {
    "completed": "ok",
    "finished": "ok",
    "failed": "bad",
    "canceled": "off",
    "killed": "off",
    "never run": "off",
    "skipped": "off",
    "running": "run",
    "queued": "run",
    "starting": "run",
    "preparing": "run",
    "scheduled": "run",
    "provisioning": "run",
    "finalizing": "run",
    "reused": "ok",
    "ready": "ok",
    "not run": "off",
    "notstarted": "off",
}


def render_html(report: dict) -> str:
    """The whole page."""
    sections = [_header(report), _nav(report), _jobs(report["jobs"]), _data(report)]
    sections.append(_models(report))
    sections += [_endpoint(e) for e in report.get("endpoints") or []]
    sections += [_sweep(j) for j in report["jobs"] if j.get("sweep")]
    sections += [_pipeline(j) for j in report["jobs"] if j.get("pipeline")]
    sections += [_experiment(i, exp) for i, exp in enumerate(report["experiments"])]
    sections += [_histories(report["jobs"]), _images(report["jobs"]), _queries(report["queries"])]
    return PAGE.format(
        title=_e(f"{report['lab']}: mlrun report"),
        css=CSS,
        body="\n".join(s for s in sections if s),
    )


# --- small pieces --------------------------------------------------------------------------------


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _breakable(text) -> str:
    """Escaped, with line-break opportunities after / and before words after _ or . (paths,
    names)."""
    return re.sub(r"(/|[_.](?=[A-Za-z]))", r"\1<wbr>", _e(text))


def _time(iso: str | None) -> str:
    if not iso:
        return '<span class="muted">-</span>'
    date, _, clock = iso[:19].partition("T")
    zone = " UTC" if iso.endswith("Z") else ""
    return (
        f'<time datetime="{_e(iso)}">{_e(date)} '
        f'<span class="nowrap">{_e(clock + zone)}</span></time>'
    )


def _badge(status: str) -> str:
    return f'<span class="badge {STATUS_CLASS.get(str(status).lower(), "off")}">{_e(status)}</span>'


def _short(run_id: str | None) -> str:
    return (
        f'<code title="{_e(run_id)}">{_e(run_id[:7])}</code>'
        if run_id
        else '<span class="muted">-</span>'
    )


def _chips(values: dict) -> str:
    if not values:
        return '<span class="muted">-</span>'
    items = "".join(
        f'<li><span class="k">{_breakable(k)}</span> '
        f'<span class="v">{_breakable(num(v))}</span></li>'
        for k, v in values.items()
    )
    return f'<ul class="chips">{items}</ul>'


def _change(change: dict, key: str) -> str:
    if key not in change:
        return ""
    delta = change[key]
    if delta == 0:
        return '<span class="delta same">&#177;0</span>'
    arrow, cls = ("&#9650;", "up") if delta > 0 else ("&#9660;", "down")
    return f'<span class="delta {cls}">{arrow} {_e(signed(delta))}</span>'


def _where(where: str | None) -> str:
    if not where:
        return '<span class="muted">-</span>'
    if where.startswith(("https://", "http://")):
        return f'<a href="{_e(where)}">open in Azure ML studio</a>'
    return f'<code class="path">{_breakable(where)}</code>'


def _table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    """A table in its own horizontal scroller; cells are HTML already."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return (
        f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


# --- sections ------------------------------------------------------------------------------------


def _header(report: dict) -> str:
    facts = [
        ("Target", _e(report["target"])),
        ("Tracking URI", f'<code class="path">{_breakable(report["tracking_uri"])}</code>'),
        ("Generated", _time(report["generated"])),
    ]
    dl = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
    desc = f'<p class="lead">{_e(report["description"])}</p>' if report.get("description") else ""
    return (
        f'<header><p class="eyebrow">mlrun report</p><h1>{_e(report["lab"])}</h1>{desc}'
        f'<dl class="facts">{dl}</dl></header>'
    )


def _nav(report: dict) -> str:
    links = [("jobs", "Jobs")] + ([("data", "Data assets")] if report.get("data") else [])
    links += [("models", "Models")] if report.get("models") else []
    links += [
        (f"endpoint-{e['name']}", f"Endpoint {e['name']}") for e in report.get("endpoints") or []
    ]
    links += [(f"sweep-{j['job']}", f"Sweep {j['job']}") for j in report["jobs"] if j.get("sweep")]
    links += [(f"exp-{i}", f"Experiment {e['name']}") for i, e in enumerate(report["experiments"])]
    if any(j["histories"] for j in report["jobs"]):
        links.append(("histories", "Metric histories"))
    if any(j["images"] or j["artifacts"] for j in report["jobs"]):
        links.append(("images", "Artifacts"))
    if report["queries"]:
        links.append(("queries", "Queries"))
    return "<nav>" + "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in links) + "</nav>"


def _job_metrics(job: dict) -> str:
    if not job["metrics"]:
        return '<span class="muted">-</span>'
    change = (job["previous"] or {}).get("change")
    rows = "".join(
        f'<tr><th>{_breakable(k)}</th><td class="num">{_e(num(v))}</td>'
        + (f"<td>{_change(change, k)}</td>" if change is not None else "")
        + "</tr>"
        for k, v in job["metrics"].items()
    )
    return f'<table class="kv">{rows}</table>'


def _job_row(job: dict) -> list[str]:
    name = f'<strong class="nowrap">{_e(job["job"])}</strong>'
    if job["experiment"]:
        name += f'<div class="muted small">{_e(job["experiment"])}</div>'
    if job["tags"]:
        name += _chips(job["tags"])
    status = _badge(job["status"]) + (
        f'<div class="error small">{_e(job["error"])}</div>' if job["error"] else ""
    )
    return [
        name,
        status,
        _job_run(job),
        _chips(job["params"]),
        _job_metrics(job),
        _where(job["where"]),
    ]


def _job_run(job: dict) -> str:
    """Run id, start, duration and the previous run it is compared with."""
    parts = [_short(job["run_id"])]
    if job["start"]:
        parts.append(f'<div class="small">{_time(job["start"])}</div>')
    if job["duration"] is not None:
        parts.append(
            f'<div class="small">took '
            f'<span class="num">{_e(duration(job["duration"]))}</span></div>'
        )
    if job["previous"]:
        parts.append(f'<div class="muted small">previous {_short(job["previous"]["run_id"])}</div>')
    return "".join(parts)


def _jobs(jobs: list[dict]) -> str:
    header = ["Job", "Status", "Run", "Params", "Metrics (change vs previous run)", "Where"]
    table = _table(header, [_job_row(j) for j in jobs], "jobs")
    return (
        '<section id="jobs"><h2>Jobs</h2><p class="muted">The latest run of each job.</p>'
        f"{table}</section>"
    )


def _data(report: dict) -> str:
    rows = [
        [
            f"<code>{_e(d['name'])}</code>",
            _e(f"v{d['version']}" if d["version"] else "skipped"),
            _e(d["type"]),
            _e(d["summary"]),
        ]
        for d in report.get("data") or []
    ]
    if not rows:
        return ""
    table = _table(["Data asset", "Version", "Type", "Content"], rows)
    return (
        '<section id="data"><h2>Data assets</h2><p class="muted">The latest version of each, '
        f"as the lab registered it.</p>{table}</section>"
    )


def _models(report: dict) -> str:
    rows = [
        [
            f"<code>{_e(m['name'])}</code>",
            _e(f"v{m['version']}"),
            _e(m["type"]),
            _e(m["source"]),
            _short(m["run_id"]),
        ]
        for m in report.get("models") or []
    ]
    if not rows:
        return ""
    table = _table(["Model", "Version", "Type", "From", "Run"], rows)
    return (
        '<section id="models"><h2>Models</h2><p class="muted">The latest version of each, '
        f"and the run that made it.</p>{table}</section>"
    )


def _endpoint(e: dict) -> str:
    rows = [
        [
            f"<code>{_e(d['name'])}</code>",
            _e(served(d)),
            _e(placed(d)),
            _e(share(e, d)),
            _badge("Failed") + f" {_e(d['down'])}"
            if d["down"]
            else _badge("Ready" if d.get("compute") else "Running"),
        ]
        for d in e["deployments"]
    ]
    call, said = e.get("invoke"), ""
    if call and call.get("run_id"):  # a batch endpoint's scoring job and its output
        to = f" &rarr; <code>{_e(call['deployment'])}</code>" if call["deployment"] else ""
        files = "".join(
            f"<li><code>{_breakable(f['path'])}</code> ({f['lines']:,} rows)</li>"
            for f in call.get("output") or []
        )
        said = (
            f"<h3>The lab's call</h3><p>Scored <code>{_e(call['input'])}</code>{to}: run "
            f"{_short(call['run_id'])}</p><ul>{files}</ul>"
        )
    elif call:
        to = f" &rarr; <code>{_e(call['deployment'])}</code>" if call["deployment"] else ""
        said = (
            f"<h3>The lab's call</h3><p><code>{_e(call['request_file'])}</code>{to}, "
            f"{_time(call['at'])}: {_e(call['status'])}</p><pre>{_e(call['answer'])}</pre>"
        )
    return (
        f'<section id="endpoint-{_e(e["name"])}"><h2>Endpoint <code>{_e(e["name"])}</code></h2>'
        f'<p class="muted">{_e(e["type"])}, {_e(e["auth_mode"])} auth, scoring URI '
        f"<code>{_breakable(e['scoring_uri'] or '-')}</code></p>"
        f"{_table(['Deployment', 'Model', 'Instances', 'Traffic', 'Health'], rows)}{said}"
        "</section>"
    )


def _experiment(index: int, exp: dict) -> str:
    runs = exp["runs"]
    header = ["Metric"] + [_run_head(i, r) for i, r in enumerate(runs)]
    rows = [
        [f"<strong>{_e(m)}</strong>"] + [_value(r["metrics"], m) for r in runs]
        for m in exp["metrics"]
    ]
    charts = "".join(_metric_card(m, runs) for m in exp["metrics"])
    return (
        f'<section id="exp-{index}"><h2>Experiment <code>{_e(exp["name"])}</code></h2>'
        f"<h3>Runs side by side</h3>{_table(header, rows, 'side')}"
        f'<h3>Each metric across runs</h3><div class="grid charts">{charts}</div></section>'
    )


def _run_head(index: int, run: dict) -> str:
    """A run's column head, with the colour of its bars."""
    return (
        f'<span class="swatch" style="background:{PALETTE[index % len(PALETTE)]}"></span>'
        f"{_e(run['run_name'])}"
        f'<div class="muted small">{_e(run["job"] or "")} {_short(run["run_id"])}</div>'
    )


def _value(metrics: dict, key: str) -> str:
    return (
        f'<span class="num">{_e(num(metrics[key]))}</span>'
        if key in metrics
        else '<span class="muted">-</span>'
    )


def _metric_card(metric: str, runs: list[dict]) -> str:
    bars = [
        (r["run_name"] or r["run_id"][:7], r["metrics"][metric], PALETTE[i % len(PALETTE)])
        for i, r in enumerate(runs)
        if metric in r["metrics"] and math.isfinite(r["metrics"][metric])
    ]
    return (
        f'<figure class="card"><figcaption>{_e(metric)}</figcaption>'
        f"{_bar_chart(metric, bars)}</figure>"
    )


def _sweep(job: dict) -> str:
    """A sweep's trials, and its objective against each searched parameter (the best in green)."""
    s = job["sweep"]
    rows = [
        [f"{_e(t['run_name'])} {_short(t['run_id'])}", _badge(t["status"])]
        + [_e(t["params"][p]) for p in s["parameters"]]
        + [
            _e("-" if t["value"] is None else num(t["value"])),
            "best"
            if t["run_id"] == s["best_trial"]
            else ("stopped early" if t["early_terminated"] else ""),
        ]
        for t in s["trials"]
    ]
    table = _table(
        ["Trial", "Status"] + [_e(p) for p in s["parameters"]] + [_e(s["primary_metric"]), ""], rows
    )
    cards = ""
    for p in s["parameters"]:
        done = sorted(
            (t for t in s["trials"] if t["value"] is not None and math.isfinite(t["value"])),
            key=lambda t: _sort_key(t["params"][p]),
        )
        bars = [
            (
                f"{p}={t['params'][p]}",
                t["value"],
                "#16a34a" if t["run_id"] == s["best_trial"] else PALETTE[0],
            )
            for t in done
        ]
        cards += (
            f'<figure class="card"><figcaption>{_e(s["primary_metric"])} by {_e(p)}</figcaption>'
            f"{_bar_chart(s['primary_metric'], bars)}</figure>"
        )
    return (
        f'<section id="sweep-{_e(job["job"])}"><h2>Sweep {_e(job["job"])}</h2>'
        f'<p class="muted">{_e(sweep_line(s))}</p>{table}'
        "<h3>The objective against each searched parameter</h3>"
        f'<div class="grid charts">{cards}</div></section>'
    )


def _pipeline(job: dict) -> str:
    """A pipeline's steps: a table, and their graph (each step after those it takes outputs
    from)."""
    steps = job["pipeline"]["steps"]
    rows = [
        [
            f"{_e(s['step'])} {_short(s['run_id'])}",
            _badge(s["status"]),
            _e(", ".join(s["upstream"]) or "-"),
            f"reuses {_short(s['reused_from'])}"
            if s["reused_from"]
            else _e(duration(s["duration"])),
            _chips(s["params"]),
            _chips(s["metrics"]),
        ]
        for s in steps
    ]
    table = _table(["Step", "Status", "After", "Took", "Params", "Metrics"], rows)
    return (
        f'<section id="pipeline-{_e(job["job"])}"><h2>Pipeline {_e(job["job"])}</h2>'
        f'<figure class="card">{_step_graph(steps)}</figure>{table}</section>'
    )


def _step_graph(steps: list[dict]) -> str:
    """Steps as boxes in columns by depth (a step one column after the deepest it needs), with an
    arrow from each step to those that take its outputs."""
    depth: dict[str, int] = {}
    for s in steps:  # in dependency order
        depth[s["step"]] = 1 + max((depth.get(u, 0) for u in s["upstream"]), default=-1)
    columns: dict[int, list[str]] = {}
    for name, d in depth.items():
        columns.setdefault(d, []).append(name)
    box_w, box_h, gap_x, gap_y = 150, 40, 60, 20
    where = {
        name: (20 + d * (box_w + gap_x), 20 + i * (box_h + gap_y))
        for d, names in columns.items()
        for i, name in enumerate(names)
    }
    width = 40 + len(columns) * (box_w + gap_x) - gap_x
    height = 40 + max(len(n) for n in columns.values()) * (box_h + gap_y) - gap_y
    parts = []
    for s in steps:
        x2, y2 = where[s["step"]]
        for u in s["upstream"]:
            x1, y1 = where[u]
            start, end, mid = (x1 + box_w, y1 + box_h / 2), (x2, y2 + box_h / 2), gap_x / 2
            parts.append(
                f'<path d="M{start[0]},{start[1]} C{start[0] + mid},{start[1]} '
                f'{end[0] - mid},{end[1]} {end[0]},{end[1]}" class="edge"/>'
            )
    for s in steps:
        x, y = where[s["step"]]
        cls = STATUS_CLASS.get(s["status"].lower(), "off")
        parts.append(
            f'<g class="step {cls}"><rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6"/>'
            f'<text x="{x + box_w / 2}" y="{y + 17}" text-anchor="middle">{_e(s["step"])}</text>'
            f'<text x="{x + box_w / 2}" y="{y + 32}" text-anchor="middle" class="small">'
            f"{_e(s['status'].lower())}</text></g>"
        )
    return (
        f'<svg class="graph" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="steps of the pipeline">{"".join(parts)}</svg>'
    )


def _sort_key(value) -> tuple:
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def _histories(jobs: list[dict]) -> str:
    cards = "".join(
        f'<figure class="card"><figcaption>{_e(metric)} '
        f'<span class="muted">· {_e(job["job"])}</span>'
        f"</figcaption>{_line_chart(metric, points)}</figure>"
        for job in jobs
        for metric, points in job["histories"].items()
    )
    if not cards:
        return ""
    return (
        '<section id="histories"><h2>Metric histories</h2>'
        '<p class="muted">Metrics logged more than once, '
        f'by step.</p><div class="grid wide">{cards}</div></section>'
    )


def _images(jobs: list[dict]) -> str:
    blocks = "".join(_job_images(j) for j in jobs if j["images"] or j["artifacts"])
    return f'<section id="images"><h2>Artifacts</h2>{blocks}</section>' if blocks else ""


def _job_images(job: dict) -> str:
    shown = {i["path"] for i in job["images"]}
    others = "".join(
        f"<li><code>{_breakable(a)}</code></li>" for a in job["artifacts"] if a not in shown
    )
    others = (
        f'<p class="muted small">Other artifacts:</p><ul class="files">{others}</ul>'
        if others
        else ""
    )
    return (
        f'<h3>{_e(job["job"])} <span class="muted small">run {_short(job["run_id"])}</span></h3>'
        f'<div class="grid images">{"".join(_figure(i) for i in job["images"])}</div>{others}'
    )


def _figure(image: dict) -> str:
    """An image artifact with its path as caption; the report may have left its bytes out."""
    if not image.get("data"):
        return (
            f'<figure class="card image"><figcaption>{_e(image["path"])} '
            f'<span class="muted">(not embedded)</span></figcaption></figure>'
        )
    return (
        f'<figure class="card image"><img src="data:{_e(image["mime"])};'
        f'base64,{_e(image["data"])}" '
        f'alt="{_e(image["path"])}"><figcaption>{_e(image["path"])}</figcaption></figure>'
    )


def _queries(queries: list[dict]) -> str:
    if not queries:
        return ""
    return (
        '<section id="queries"><h2>Saved queries</h2>'
        + "".join(_query(q) for q in queries)
        + "</section>"
    )


def _query(q: dict) -> str:
    meta = (
        f"<code>{_e(q['filter'] or '(all runs)')}</code> on <code>{_e(q['experiment'])}</code>"
        + (f", ordered by <code>{_e(', '.join(q['order_by']))}</code>" if q["order_by"] else "")
        + f", at most {_e(q['max_results'])}"
    )
    if q["error"]:
        body = f'<p class="error box">{_e(q["error"])}</p>'
    elif not q["runs"]:
        body = '<p class="muted">No runs match.</p>'
    else:
        body = _table(
            ["Run", "Job", "Status", "Started", "Duration", "Metrics"],
            [
                [
                    f"{_e(r['run_name'])} {_short(r['run_id'])}",
                    _e(r["job"] or "-"),
                    _badge(r["status"]),
                    _time(r["start"]),
                    _e(duration(r["duration"])),
                    _chips(r["metrics"]),
                ]
                for r in q["runs"]
            ],
        )
    desc = f"<p>{_e(q['description'])}</p>" if q.get("description") else ""
    return (
        f'<div class="query"><h3>{_e(q["name"])}</h3>{desc}<p class="small">{meta}</p>{body}</div>'
    )


# --- charts (inline SVG) -------------------------------------------------------------------------


def _ticks(lo: float, hi: float, count: int = 5, least: float = 0.0) -> list[float]:
    """Round tick values covering [lo, hi], at least `least` apart."""
    if hi <= lo:
        lo, hi = lo - (abs(lo) or 1) / 2, hi + (abs(hi) or 1) / 2
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = max(least, next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9)))
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(k * step, 12) for k in range(first, last + 1)]


def _bar_chart(metric: str, bars: list[tuple[str, float, str]]) -> str:
    """Horizontal bars from zero; above each bar, the run's name and (right-aligned) its value."""
    if not bars:
        return '<p class="muted small">No finite values.</p>'
    width, left, right, row, top = 360, 14, 14, 40, 6
    ticks = _ticks(min(0.0, *(v for _, v, _ in bars)), max(0.0, *(v for _, v, _ in bars)))
    lo, hi = ticks[0], ticks[-1]
    x = lambda v: left + (v - lo) / (hi - lo) * (width - left - right)  # noqa: E731
    height = top + row * len(bars) + 22
    out = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{_e(metric)} by run">'
    ]
    for t in ticks:
        out.append(
            f'<line class="grid" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{height - 20}"/>'
            f'<text class="tick" x="{x(t):.1f}" y="{height - 6}" text-anchor="middle">'
            f"{_e(num(float(t)))}</text>"
        )
    for n, (label, value, color) in enumerate(bars):
        y = top + n * row
        x0, x1 = sorted((x(0), x(value)))
        out.append(
            f'<text class="label" x="{left + 2}" y="{y + 12}">{_e(label)}</text>'
            f'<text class="value" x="{width - right}" y="{y + 12}" text-anchor="end">'
            f"{_e(num(value))}</text>"
            f'<rect x="{x0:.1f}" y="{y + 17}" width="{max(x1 - x0, 1):.1f}" height="16" rx="2" '
            f'fill="{color}">'
            f"<title>{_e(label)}: {_e(value)}</title></rect>"
        )
    out.append(
        f'<line class="axis" x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{top}" y2="{height - 20}"/></svg>'
    )
    return "".join(out)


def _line_chart(metric: str, history: list[list[float]]) -> str:
    """Value by step, with both axes."""
    points = [(s, v) for s, v in history if math.isfinite(v)]
    if not points:
        return '<p class="muted small">No finite values.</p>'
    width, height, left, right, top, bottom = 560, 220, 52, 16, 10, 28
    xt = _ticks(min(s for s, _ in points), max(s for s, _ in points), least=1)
    yt = _ticks(min(v for _, v in points), max(v for _, v in points))
    x = lambda s: left + (s - xt[0]) / (xt[-1] - xt[0]) * (width - left - right)  # noqa: E731
    y = lambda v: (  # noqa: E731
        height - bottom - (v - yt[0]) / (yt[-1] - yt[0]) * (height - top - bottom)
    )
    out = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{_e(metric)} by step">'
    ]
    out += [
        f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>'
        f'<text class="tick" x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">'
        f"{_e(num(float(t)))}</text>"
        for t in yt
    ]
    out += [
        f'<text class="tick" x="{x(t):.1f}" y="{height - 8}" text-anchor="middle">'
        f"{_e(num(t))}</text>"
        for t in xt
    ]
    out.append(
        f'<line class="axis" x1="{left}" x2="{width - right}" y1="{height - bottom}" '
        f'y2="{height - bottom}"/>'
        f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{height - bottom}"/>'
    )
    path = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in points)
    out.append(f'<polyline points="{path}" fill="none" stroke="{PALETTE[0]}" stroke-width="2"/>')
    if len(points) <= 60:
        out += [
            f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="3" fill="{PALETTE[0]}">'
            f"<title>step {_e(s)}: {_e(v)}</title></circle>"
            for s, v in points
        ]
    return "".join(out) + "</svg>"


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<main>
{body}
<footer>Made by <code>mlrun report</code>. This file is self-contained: \
it loads nothing from the network.</footer>
</main>
</body>
</html>
"""

CSS = """
:root { --fg: #1f2937; --muted: #6b7280; --line: #e5e7eb; --bg: #f6f7f9; --card: #fff; \
--accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); \
font: 14px/1.5 system-ui, -apple-system, "Segoe UI",
  Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 24px; overflow-wrap: break-word; }
header { background: var(--card); border: 1px solid var(--line); border-radius: 10px; \
padding: 20px 24px; }
.eyebrow { margin: 0; color: var(--accent); font-weight: 600; text-transform: uppercase; \
letter-spacing: .06em; font-size: 12px; }
h1 { margin: 2px 0 4px; font-size: 26px; }
h2 { margin: 0 0 8px; font-size: 20px; }
h3 { margin: 20px 0 8px; font-size: 15px; }
.lead { margin: 0 0 12px; color: var(--muted); font-size: 15px; }
.facts { display: flex; flex-wrap: wrap; gap: 8px 32px; margin: 0; }
.facts dt { color: var(--muted); font-size: 12px; }
.facts dd { margin: 0; }
nav { display: flex; flex-wrap: wrap; gap: 6px; margin: 16px 0; }
nav a { padding: 4px 10px; border-radius: 999px; background: var(--card); \
border: 1px solid var(--line);
  color: var(--fg); text-decoration: none; font-size: 13px; }
nav a:hover { border-color: var(--accent); color: var(--accent); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; \
padding: 20px 24px; margin: 16px 0; }
code { font: 12.5px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", \
monospace; }
pre { font: 12.5px/1.4 ui-monospace, Menlo, Consolas, monospace; background: var(--bg); \
padding: 8px 12px; border-radius: 6px; white-space: pre-wrap; overflow-wrap: anywhere; }
.path, .error, .files code, .chips li, .kv th { overflow-wrap: break-word; }
.path { font-size: 12px; }
.muted { color: var(--muted); }
a { color: var(--accent); }
.small { font-size: 12px; }
.num { font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; max-width: 100%; border: 1px solid var(--line); border-radius: 8px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 8px; \
border-bottom: 1px solid var(--line); }
thead th { background: #f9fafb; font-size: 12px; color: var(--muted); font-weight: 600; }
tbody tr:last-child > td { border-bottom: 0; }
table.jobs .error { min-width: 140px; }
.jobs > thead th:nth-child(1) { width: 14%; } .jobs > thead th:nth-child(3) { width: 10%; }
.jobs > thead th:nth-child(4) { width: 22%; } .jobs > thead th:nth-child(5) { width: 27%; }
.jobs > thead th:nth-child(6) { width: 17%; }
.nowrap { white-space: nowrap; }
table.side td:not(:first-child), table.side th:not(:first-child) { text-align: right; }
table.kv { width: auto; }
table.kv th, table.kv td { padding: 1px 8px 1px 0; border: 0; font-weight: normal; \
font-size: 13px; }
table.kv td { white-space: nowrap; }
table.kv td.num { text-align: right; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; \
font-weight: 600; white-space: nowrap; }
.badge.ok { background: #dcfce7; color: #166534; }
.badge.bad { background: #fee2e2; color: #991b1b; }
.badge.run { background: #dbeafe; color: #1e40af; }
.badge.off { background: #f3f4f6; color: #4b5563; }
.chips { display: flex; flex-wrap: wrap; gap: 4px; margin: 4px 0 0; padding: 0; list-style: none; }
.chips li { background: #f3f4f6; border-radius: 4px; padding: 0 6px; font-size: 12px; }
.chips .k { color: var(--muted); }
.delta { font-size: 12px; white-space: nowrap; }
.delta.up { color: #047857; } .delta.down { color: #b91c1c; } .delta.same { color: var(--muted); }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
.grid { display: grid; gap: 12px; }
.grid.charts { grid-template-columns: repeat(auto-fill, minmax(min(100%, 300px), 1fr)); }
.grid.wide { grid-template-columns: repeat(auto-fill, minmax(min(100%, 420px), 1fr)); }
.grid.images { grid-template-columns: repeat(auto-fill, minmax(min(100%, 320px), 1fr)); }
.card { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; \
background: var(--card); min-width: 0; }
.card figcaption { font-weight: 600; font-size: 13px; margin-bottom: 4px; overflow-wrap: anywhere; }
.card.image img { display: block; max-width: 100%; height: auto; margin: 0 auto 6px; }
.card.image figcaption { font-weight: normal; text-align: center; }
svg.chart { display: block; width: 100%; height: auto; }
svg.graph { display: block; max-width: 100%; height: auto; }
svg.graph .edge { fill: none; stroke: #9ca3af; stroke-width: 1.5; }
svg.graph rect { fill: var(--card); stroke: #9ca3af; stroke-width: 1.5; }
svg.graph .ok rect { stroke: #16a34a; } svg.graph .bad rect { stroke: #dc2626; }
svg.graph .run rect { stroke: #2563eb; } svg.graph text { font-size: 12px; }
svg.graph text.small { fill: var(--muted); font-size: 10px; }
svg .grid { stroke: #eef0f3; } svg .axis { stroke: #9ca3af; }
svg text { font-size: 11px; fill: var(--fg); } svg .tick { fill: var(--muted); font-size: 10px; }
svg .value { font-weight: 600; }
svg .label, svg .value { paint-order: stroke; stroke: var(--card); stroke-width: 3px; \
stroke-linejoin: round; }
.files { margin: 4px 0 0; padding-left: 18px; }
.error { color: #991b1b; }
.box { background: #fef2f2; border: 1px solid #fecaca; border-radius: 6px; padding: 8px 12px; }
.query + .query { border-top: 1px solid var(--line); margin-top: 16px; }
@media (max-width: 1100px) { main { padding: 16px; } header, section { padding: 16px; } }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 8px 0 24px; }
"""
