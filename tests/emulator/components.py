"""Components: the versions a workspace registers (named ones from `components.create_or_update`,
anonymous ones the SDK registers for a pipeline's inline steps), their containers (what
`components.archive(name)` reads and writes back), listing, `azureml_default` and `@latest`."""

import time

import flows
from arm import MLS_NS, not_found, system_data
from ml import workspace_or_404
from server import WS, Reply, error, route
from state import now_iso

DEFAULT = "azureml_default"  # the SDK's name for "the default version" (components.get(name))
SPEC_KEYS = ("command", "code", "environment", "inputs", "outputs", "type", "distribution")


def versions_of(app, wid, name, view="ActiveOnly", section="components") -> list[dict]:
    """A component's (or another versioned asset's) versions, newest registration first."""
    found = app.state.children(f"{wid}/{section}/{name}", "versions")
    found.sort(key=lambda v: app.state.info(v["id"]).get("seq", 0), reverse=True)
    if view.lower() == "activeonly":
        return [v for v in found if not v["properties"].get("isArchived")]
    if view.lower() == "archivedonly":
        return [v for v in found if v["properties"].get("isArchived")]
    return found


def resolve(app, wid, name, version, section="components") -> dict | None:
    """A registered version; `azureml_default`, `latest` or None: the newest active one."""
    if version and version not in (DEFAULT, "latest"):
        return app.state.get(f"{wid}/{section}/{name}/versions/{version}")
    newest = versions_of(app, wid, name, section=section)
    return newest[0] if newest else None


def _next_version(app, wid, name, section="components") -> str:
    numbers = [
        int(v["name"])
        for v in versions_of(app, wid, name, "All", section)
        if str(v["name"]).isdigit()
    ]
    return str(max(numbers, default=0) + 1)


def container(app, wid, name, section="components") -> dict | None:
    cid = f"{wid}/{section}/{name}"
    versions = versions_of(app, wid, name, "All", section)
    stored = app.state.get(cid)
    if stored is None and not versions:
        return None
    props = dict((stored or {}).get("properties") or {})
    props.setdefault("isArchived", False)
    props.setdefault("description", None)
    props.setdefault("tags", {})
    props.setdefault("properties", {})
    props["latestVersion"] = versions[0]["name"] if versions else None
    props["nextVersion"] = _next_version(app, wid, name, section)
    props["provisioningState"] = "Succeeded"
    return {
        "id": cid,
        "name": name,
        "type": f"{MLS_NS}/workspaces/{section}",
        "systemData": (stored or {}).get("systemData") or system_data(),
        "properties": props,
    }


def _view(ctx):
    return ctx.q("listViewType", "ActiveOnly") or "ActiveOnly"


@route("GET", WS + r"/components")
def list_components(ctx, sub, rg, ws):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    prefix = f"{wres['id']}/components/".lower()
    with ctx.app.state.lock:
        names = {
            v["id"].split("/")[-3]
            for k, v in ctx.app.state.resources.items()
            if k.startswith(prefix) and "/versions/" in k and not v["properties"].get("isAnonymous")
        }
    view = _view(ctx).lower()
    found = []
    for name in sorted(names):
        c = container(ctx.app, wres["id"], name)
        archived = c["properties"]["isArchived"]
        if view == "all" or (view == "archivedonly") == archived:
            found.append(c)
    return Reply(200, {"value": found})


@route("GET PUT", WS + r"/components/(?P<name>[^/]+)")
def component_container(ctx, sub, rg, ws, name):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    cid = f"{wres['id']}/components/{name}"
    if ctx.method == "PUT":
        props = dict((ctx.json or {}).get("properties") or {})
        for computed in ("latestVersion", "nextVersion", "provisioningState"):
            props.pop(computed, None)
        ctx.app.state.put(
            cid,
            {"id": cid, "name": name, "systemData": system_data(), "properties": props},
        )
        return Reply(200, container(ctx.app, wres["id"], name))
    found = container(ctx.app, wres["id"], name)
    return Reply(200, found) if found else not_found("workspaces/components", name, rg)


@route("GET", WS + r"/components/(?P<name>[^/]+)/versions")
def list_component_versions(ctx, sub, rg, ws, name):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    found = versions_of(ctx.app, wres["id"], name, _view(ctx))
    if (ctx.q("$orderBy") or "").lower() == "createdtime asc":
        found.reverse()
    skip = int(ctx.q("$skip") or 0)
    top = ctx.q("$top")
    found = found[skip : skip + int(top)] if top else found[skip:]
    return Reply(200, {"value": found})


@route("GET PUT", WS + r"/components/(?P<name>[^/]+)/versions/(?P<version>[^/]+)")
def component_version(ctx, sub, rg, ws, name, version):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    state = ctx.app.state
    if ctx.method == "GET":
        found = resolve(ctx.app, wres["id"], name, version)
        return (
            Reply(200, found)
            if found
            else not_found("workspaces/components/versions", f"{name}/{version}", rg)
        )
    vid = f"{wres['id']}/components/{name}/versions/{version}"
    props = dict((ctx.json or {}).get("properties") or {})
    spec = props.get("componentSpec")
    if not isinstance(spec, dict) or not spec.get("type"):
        return error(400, "UserError", "A component version needs properties.componentSpec.type.")
    problem = flows.check(spec) if spec["type"] == flows.KIND else check_spec(spec)
    if problem:
        return error(400, "UserError", problem)
    if spec["type"] == flows.KIND:  # kept as a parallel component (flows.py)
        spec = flows.as_parallel(spec)
    current = state.get(vid)
    if current:
        old = current["properties"]["componentSpec"]
        if any(old.get(k) != spec.get(k) for k in SPEC_KEYS):
            return error(
                409,
                "UserError",
                f"Component {name} version {version} already exists with a different "
                "definition: a registered component version cannot change; register a new "
                "version.",
            )
    spec = {**spec, "name": name, "version": version}
    body = {
        "id": vid,
        "name": version,
        "type": f"{MLS_NS}/workspaces/components/versions",
        "systemData": (current or {}).get("systemData") or system_data(),
        "properties": {
            "description": props.get("description"),
            "tags": props.get("tags") or {},
            "properties": props.get("properties") or {},
            "isAnonymous": bool(props.get("isAnonymous")),
            "isArchived": bool(props.get("isArchived")),
            "componentSpec": spec,
            "provisioningState": "Succeeded",
        },
    }
    with state.lock:
        seq = state.info(vid).get("seq") or time.monotonic_ns()
        state.put(vid, body, seq=seq, created=now_iso())
    return Reply(200 if current else 201, body)


def check_spec(spec: dict) -> str | None:
    """Why a command component's spec cannot run, or None (other types are stored as given)."""
    if spec.get("type") != "command":
        return None
    if not spec.get("command"):
        return "A command component needs a command."
    if not spec.get("environment"):
        return "A command component needs an environment."
    return None
