"""Data assets: the versions a workspace registers (`data.create_or_update`, after the SDK uploads
a local path to the default datastore), their containers (what `data.archive(name)` reads and
writes back), listing and `latest`; a job's input naming a version by ARM id reads its dataUri."""

import re
import time

from arm import MLS_NS, not_found, system_data
from components import container, resolve, versions_of
from ml import workspace_or_404
from server import WS, Reply, error, route
from state import now_iso

SECTION = "data"
TYPES = ("uri_file", "uri_folder", "mltable")
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


@route("GET", WS + r"/data")
def list_data(ctx, sub, rg, ws):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    prefix = f"{wres['id']}/data/".lower()
    with ctx.app.state.lock:
        names = {
            v["id"].split("/")[-3]
            for k, v in ctx.app.state.resources.items()
            if k.startswith(prefix) and "/versions/" in k
        }
    found = [container(ctx.app, wres["id"], n, SECTION) for n in sorted(names)]
    view = _view(ctx).lower()
    if view != "all":
        found = [c for c in found if (view == "archivedonly") == c["properties"]["isArchived"]]
    return Reply(200, {"value": found})


@route("GET PUT", WS + r"/data/(?P<name>[^/]+)")
def data_container(ctx, sub, rg, ws, name):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    cid = f"{wres['id']}/data/{name}"
    if ctx.method == "PUT":
        props = dict((ctx.json or {}).get("properties") or {})
        for computed in ("latestVersion", "nextVersion", "provisioningState"):
            props.pop(computed, None)
        ctx.app.state.put(
            cid, {"id": cid, "name": name, "systemData": system_data(), "properties": props}
        )
        return Reply(200, container(ctx.app, wres["id"], name, SECTION))
    found = container(ctx.app, wres["id"], name, SECTION)
    return Reply(200, found) if found else not_found("workspaces/data", name, rg)


@route("GET", WS + r"/data/(?P<name>[^/]+)/versions")
def list_data_versions(ctx, sub, rg, ws, name):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    found = versions_of(ctx.app, wres["id"], name, _view(ctx), SECTION)
    if (ctx.q("$orderBy") or "").lower() == "createdtime asc":
        found.reverse()
    top = ctx.q("$top")
    return Reply(200, {"value": found[: int(top)] if top else found})


@route("GET PUT", WS + r"/data/(?P<name>[^/]+)/versions/(?P<version>[^/]+)")
def data_version(ctx, sub, rg, ws, name, version):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    state = ctx.app.state
    if ctx.method == "GET":
        found = resolve(ctx.app, wres["id"], name, version, SECTION)
        if found:
            return Reply(200, found)
        return not_found("workspaces/data/versions", f"{name}/{version}", rg)
    props = dict((ctx.json or {}).get("properties") or {})
    kind, uri = props.get("dataType"), props.get("dataUri")
    if kind not in TYPES or not uri:
        return error(400, "UserError", "A data version needs properties.dataType and dataUri.")
    vid = f"{wres['id']}/data/{name}/versions/{version}"
    current = state.get(vid)
    if current and (current["properties"]["dataUri"], current["properties"]["dataType"]) != (
        uri,
        kind,
    ):
        return error(
            409,
            "UserError",
            f"Data {name} version {version} already exists with other content: a registered "
            "data version cannot change; register a new version.",
        )
    body = {
        "id": vid,
        "name": version,
        "type": f"{MLS_NS}/workspaces/data/versions",
        "systemData": (current or {}).get("systemData") or system_data(),
        "properties": {
            "dataType": kind,
            "dataUri": uri,
            "description": props.get("description"),
            "tags": props.get("tags") or {},
            "properties": props.get("properties") or {},
            "isAnonymous": bool(props.get("isAnonymous")),
            "isArchived": bool(props.get("isArchived")),
        },
    }
    with state.lock:
        seq = state.info(vid).get("seq") or time.monotonic_ns()
        state.put(vid, body, seq=seq, created=now_iso())
    return Reply(200 if current else 201, body)
