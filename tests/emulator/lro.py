"""Long-running operation answers: Azure-AsyncOperation status URLs and Location result URLs."""

from server import Reply, route

POLL_KINDS = (
    r"(?:operationStatuses|computeOperationsStatus|workspaceOperationsStatus|mfeOperationsStatus)"
)


def async_headers(ctx, op, status_base, api_version=None):
    """Headers of an LRO started by ctx: status_base is the ARM path the status URL hangs under."""
    api = api_version or ctx.q("api-version", "2023-08-01-preview")
    url = f"{ctx.app.base}{status_base}/operationStatuses/{op.id}?api-version={api}"
    return {"Azure-AsyncOperation": url, "Retry-After": "1"}


def location_headers(ctx, op, base):
    api = ctx.q("api-version", "2025-04-01")
    return {
        "Location": f"{ctx.app.base}{base}/operationresults/{op.id}?api-version={api}",
        "Retry-After": "1",
    }


@route("GET", r"/.*/" + POLL_KINDS + r"/(?P<op_id>[^/]+)")
def operation_status(ctx, op_id):
    op = ctx.app.state.ops.get(op_id)
    if op is None:
        return Reply(
            404, {"error": {"code": "NotFound", "message": f"operation {op_id} not found"}}
        )
    body = {"id": ctx.path, "name": op.id, "status": op.status, "startTime": op.start}
    if op.status == "InProgress":
        return Reply(200, body, {"Retry-After": "1"})
    body["endTime"] = body["startTime"]
    body["percentComplete"] = 100.0
    if op.error:
        body["error"] = op.error
    return Reply(200, body)


@route("GET", r"/.*/operationresults/(?P<op_id>[^/]+)")
def operation_result(ctx, op_id):
    op = ctx.app.state.ops.get(op_id)
    if op is None:
        return Reply(
            404, {"error": {"code": "NotFound", "message": f"operation {op_id} not found"}}
        )
    if op.status == "InProgress":
        return Reply(
            202, None, {"Location": ctx.app.base + ctx.path + "?" + _query(ctx), "Retry-After": "1"}
        )
    if op.error:
        return Reply(int(op.error.get("status", 400)), {"error": op.error})
    return Reply(200, None)


def _query(ctx):
    return "&".join(f"{k}={v[0]}" for k, v in ctx.query.items())
