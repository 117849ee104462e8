"""Workspace schedules (`ml_client.schedules`, az ml schedule): PUT (create or update, a long
running operation), GET, list, DELETE, with the service's checks of a trigger and a CreateJob
action. Nothing fires: a schedule is kept, enabled or disabled, as the service would hold it."""

from arm import MLS_NS, not_found, system_data
from lro import async_headers, location_headers
from ml import workspace_or_404
from server import WS, Reply, error, route

TRIGGERS = {"Cron": ("expression",), "Recurrence": ("frequency", "interval")}
FREQUENCIES = ("Minute", "Hour", "Day", "Week", "Month")


def _status_base(sub, wres):
    return f"/subscriptions/{sub}/providers/{MLS_NS}/locations/{wres['location']}"


@route("GET", WS + r"/schedules")
def list_schedules(ctx, sub, rg, ws):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    found = ctx.app.state.children(wres["id"], "schedules")
    view = ctx.q("listViewType", "EnabledOnly")
    if view == "EnabledOnly":
        found = [s for s in found if s["properties"].get("isEnabled")]
    elif view == "DisabledOnly":
        found = [s for s in found if not s["properties"].get("isEnabled")]
    return Reply(200, {"value": found})


@route("GET PUT DELETE", WS + r"/schedules/(?P<name>[^/]+)")
def one_schedule(ctx, sub, rg, ws, name):
    wres, missing = workspace_or_404(ctx, sub, rg, ws)
    if missing:
        return missing
    state, sid = ctx.app.state, f"{wres['id']}/schedules/{name}"
    current = state.get(sid)
    if ctx.method == "GET":
        return Reply(200, current) if current else not_found("workspaces/schedules", name, rg)
    base = _status_base(sub, wres)
    if ctx.method == "DELETE":
        if current is None:
            return Reply(204)
        op = state.new_op(ctx.method, ctx.path, lambda: state.delete_tree(sid))
        return Reply(202, None, {**async_headers(ctx, op, base), **location_headers(ctx, op, base)})
    props = dict((ctx.json or {}).get("properties") or {})
    problem = _check(props)
    if problem:
        return error(400, "UserError", problem)
    props["isEnabled"] = props.get("isEnabled", True) is not False
    props["provisioningState"] = "Updating" if current else "Creating"
    body = {
        "id": sid,
        "name": name,
        "type": f"{MLS_NS}/workspaces/schedules",
        "systemData": (current or {}).get("systemData") or system_data(),
        "properties": props,
    }
    state.put(sid, body)

    def done():
        body["properties"]["provisioningState"] = "Succeeded"

    op = state.new_op(ctx.method, ctx.path, done)
    return Reply(200 if current else 201, body, async_headers(ctx, op, base))


def _check(props) -> str | None:
    """What the service refuses in a schedule: a trigger without its fields, an action that
    creates no job, a job definition that names no job."""
    trigger = props.get("trigger") or {}
    kind = trigger.get("triggerType")
    if kind not in TRIGGERS:
        return f"Trigger type '{kind}' is not supported: use Cron or Recurrence."
    for key in TRIGGERS[kind]:
        if trigger.get(key) in (None, ""):
            return f"A {kind} trigger needs {key}."
    if kind == "Recurrence" and trigger.get("frequency") not in FREQUENCIES:
        return f"Recurrence frequency '{trigger.get('frequency')}' is not valid."
    if kind == "Cron" and len(str(trigger["expression"]).split()) != 5:
        return f"Cron expression '{trigger['expression']}' is not valid."
    action = props.get("action") or {}
    if action.get("actionType") == "ImportData":
        source = (action.get("dataImportDefinition") or {}).get("source") or {}
        if not source.get("connection"):
            return "A data import's source needs a connection."
        return None
    if action.get("actionType") != "CreateJob":
        return f"Schedule action '{action.get('actionType')}' is not supported here."
    job = action.get("jobDefinition") or {}
    if not job.get("jobType"):
        return "A schedule's job definition needs a jobType."
    if job.get("jobType") == "Pipeline" and not (job.get("jobs") or job.get("sourceJobId")):
        return "A scheduled pipeline job needs jobs or a sourceJobId."
    return None
