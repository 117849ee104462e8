"""Data assets and models: the versions a workspace registers (`data.create_or_update` and
`models.create_or_update`, after the SDK uploads a local path to the default datastore; a model
may also name a job's output, azureml://jobs/JOB/outputs/NAME[/paths/PATH], which must be a
completed job's), their containers (what `archive(name)` reads and writes back), listing and
`latest`; a job's input naming a data version by ARM id reads its dataUri."""

import re
import time

from arm import MLS_NS, not_found, system_data
from components import container, resolve, versions_of
from ml import workspace_or_404
from server import WS, Reply, error, route
from state import now_iso

SECTIONS = "(?P<section>data|models)"
KEYS = {  # a version's kind and content, as each section's properties name them
    "data": ("dataType", "dataUri", ("uri_file", "uri_folder", "mltable")),
    "models": ("modelType", "modelUri", ("custom_model", "mlflow_model", "triton_model")),
}
JOB_OUTPUT = re.compile(r"^azureml://jobs/(?P<job>[^/]+)/outputs/(?P<output>[^/]+)(?:/paths/.*)?$")
ARM_ID = re.compile(
    r"^(?:azureml:)?(?P<id>/subscriptions/.+/workspaces/[^/]+/data/[^/]+/versions/[^/]+)$", re.I
)


def data_uri(app, uri: str) -> str:
    """A job input's uri: a data version's ARM id (`/subscriptions/.../data/N/versions/V`, as
    the SDK sends azureml:N:V and azureml:N@latest) as that version's dataUri; others as they
    are."""
    m = ARM_ID.match(uri or "")
    if not m:
        return uri
    found = app.state.get(m.group("id"))
    return found["properties"]["dataUri"] if found else uri


def _view(ctx):
    return ctx.q("listViewType", "ActiveOnly") or "ActiveOnly"


@route("GET", WS + "/" + SECTIONS)
def list_data(ctx, sub, rg, ws, section):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    prefix = f"{wres['id']}/{section}/".lower()
    with ctx.app.state.lock:
        names = {
            v["id"].split("/")[-3]
            for k, v in ctx.app.state.resources.items()
            if k.startswith(prefix) and "/versions/" in k
        }
    found = [container(ctx.app, wres["id"], n, section) for n in sorted(names)]
    view = _view(ctx).lower()
    if view != "all":
        found = [c for c in found if (view == "archivedonly") == c["properties"]["isArchived"]]
    return Reply(200, {"value": found})


@route("GET PUT", WS + "/" + SECTIONS + r"/(?P<name>[^/]+)")
def data_container(ctx, sub, rg, ws, section, name):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    cid = f"{wres['id']}/{section}/{name}"
    if ctx.method == "PUT":
        props = dict((ctx.json or {}).get("properties") or {})
        for computed in ("latestVersion", "nextVersion", "provisioningState"):
            props.pop(computed, None)
        ctx.app.state.put(
            cid, {"id": cid, "name": name, "systemData": system_data(), "properties": props}
        )
        return Reply(200, container(ctx.app, wres["id"], name, section))
    found = container(ctx.app, wres["id"], name, section)
    return Reply(200, found) if found else not_found(f"workspaces/{section}", name, rg)


@route("GET", WS + "/" + SECTIONS + r"/(?P<name>[^/]+)/versions")
def list_data_versions(ctx, sub, rg, ws, section, name):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    found = versions_of(ctx.app, wres["id"], name, _view(ctx), section)
    if (ctx.q("$orderBy") or "").lower() == "createdtime asc":
        found.reverse()
    top = ctx.q("$top")
    return Reply(200, {"value": found[: int(top)] if top else found})


@route("GET PUT", WS + "/" + SECTIONS + r"/(?P<name>[^/]+)/versions/(?P<version>[^/]+)")
def data_version(ctx, sub, rg, ws, section, name, version):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    state = ctx.app.state
    if ctx.method == "GET":
        found = resolve(ctx.app, wres["id"], name, version, section)
        if found:
            return Reply(200, found)
        return not_found(f"workspaces/{section}/versions", f"{name}/{version}", rg)
    props = dict((ctx.json or {}).get("properties") or {})
    kind_key, uri_key, types = KEYS[section]
    kind, uri = props.get(kind_key), props.get(uri_key)
    if kind not in types or not uri:
        return error(400, "UserError", f"A version needs properties.{kind_key} and {uri_key}.")
    if section == "models" and (problem := _job_output_problem(ctx.app, wres["id"], uri)):
        return error(400, "UserError", problem)
    vid = f"{wres['id']}/{section}/{name}/versions/{version}"
    current = state.get(vid)
    if current and (current["properties"][uri_key], current["properties"][kind_key]) != (uri, kind):
        what = "Data" if section == "data" else "Model"
        return error(
            409,
            "UserError",
            f"{what} {name} version {version} already exists with other content: a registered "
            "version cannot change; register a new version.",
        )
    body = _store(state, section, vid, version, props, current)
    return Reply(200 if current else 201, body)


def _store(state, section: str, vid: str, version: str, props: dict, current) -> dict:
    kind_key, uri_key, _ = KEYS[section]
    body = {
        "id": vid,
        "name": version,
        "type": f"{MLS_NS}/workspaces/{section}/versions",
        "systemData": (current or {}).get("systemData") or system_data(),
        "properties": {
            **{k: v for k, v in props.items() if k not in ("provisioningState",)},
            kind_key: props[kind_key],
            uri_key: props[uri_key],
            "description": props.get("description"),
            "tags": props.get("tags") or {},
            "properties": props.get("properties") or {},
            "isAnonymous": bool(props.get("isAnonymous")),
            "isArchived": bool(props.get("isArchived")),
            **({"flavors": props.get("flavors") or {}} if section == "models" else {}),
        },
    }
    with state.lock:
        seq = state.info(vid).get("seq") or time.monotonic_ns()
        state.put(vid, body, seq=seq, created=now_iso())
    return body


def register(app, wid: str, name: str, version: str | None, kind: str, uri: str) -> dict:
    """A data version registered by the service itself (a data import's sink); with no version,
    the next number."""
    if version is None:
        numbers = [
            int(v["name"])
            for v in versions_of(app, wid, name, "All", "data")
            if str(v["name"]).isdigit()
        ]
        version = str(max(numbers, default=0) + 1)
    vid = f"{wid}/data/{name}/versions/{version}"
    props = {"dataType": kind, "dataUri": uri}
    return _store(app.state, "data", vid, version, props, app.state.get(vid))


def _job_output_problem(app, wid: str, uri: str) -> str | None:
    """Why a model cannot come from `uri`, azureml://jobs/JOB/outputs/NAME[/paths/...]: no such
    job, it has not completed, or it has no such output (`artifacts`: every job has them). None
    for other URIs."""
    m = JOB_OUTPUT.match(uri)
    if not m:
        return None
    job = app.state.get(f"{wid}/jobs/{m.group('job')}")
    if job is None:
        return f"Job {m.group('job')} not found: a model's path names an existing job's output."
    props = job.get("properties") or {}
    if props.get("status") != "Completed":
        return f"Job {m.group('job')} is {props.get('status')}: a model needs a completed job."
    output = m.group("output")
    if output != "artifacts" and output not in (props.get("outputs") or {}):
        return f"Job {m.group('job')} has no output {output}."
    return None
