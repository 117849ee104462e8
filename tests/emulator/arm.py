"""ARM: resource groups, provider registration, template deployments, workspaces, computes,
quota."""

import re
import time
import uuid

import attach
from lro import async_headers, location_headers
from server import MLS, RG, SUB, WS, Reply, error, route
from state import now_iso

MLS_NS = "Microsoft.MachineLearningServices"
# size -> (vCPUs, family, memory GB); the lab's sizes and a few neighbours.
VM_SIZES = {
    "STANDARD_DS11_V2": (2, "standardDSv2Family", 14),
    "STANDARD_DS12_V2": (4, "standardDSv2Family", 28),
    "STANDARD_DS3_V2": (4, "standardDSv2Family", 14),
    "STANDARD_DS2_V2": (2, "standardDSv2Family", 7),
    "STANDARD_D2_V3": (2, "standardDv3Family", 8),
    "STANDARD_E4DS_V4": (4, "standardEDSv4Family", 32),
    "STANDARD_NC6": (6, "standardNCFamily", 56),
    "STANDARD_NC24": (24, "standardNCFamily", 224),
}
FAMILY_DEFAULT_LIMIT = 24


def rg_id(sub, rg):
    return f"/subscriptions/{sub}/resourceGroups/{rg}"


def ws_id(sub, rg, ws):
    return f"{rg_id(sub, rg)}/providers/{MLS_NS}/workspaces/{ws}"


def not_found(kind, name, rg=None):
    if kind == "resourceGroups":
        return error(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")
    return error(
        404,
        "ResourceNotFound",
        f"The Resource '{MLS_NS}/{kind}/{name}' under resource group "
        f"'{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def system_data():
    return {
        "createdAt": now_iso(),
        "createdBy": "emulator",
        "createdByType": "Application",
        "lastModifiedAt": now_iso(),
        "lastModifiedBy": "emulator",
        "lastModifiedByType": "Application",
    }


# --- resource groups ---


@route("GET", SUB + r"/resourcegroups")
def list_groups(ctx, sub):
    """The subscription's groups; `$filter=tagName eq 'T'` (and `and tagValue eq 'V'`): those
    tagged so, as ARM filters them."""
    groups = ctx.app.state.children(f"/subscriptions/{sub}", "resourceGroups")
    wanted = dict(re.findall(r"(tagName|tagValue)\s+eq\s+'([^']*)'", ctx.q("$filter") or ""))
    if "tagName" in wanted:
        groups = [
            g
            for g in groups
            if wanted["tagName"] in (g.get("tags") or {})
            and wanted.get("tagValue") in (None, g["tags"][wanted["tagName"]])
        ]
    return Reply(200, {"value": groups})


@route("PUT GET HEAD DELETE PATCH", RG)
def resource_group(ctx, sub, rg):
    state, rid = ctx.app.state, rg_id(sub, rg)
    current = state.get(rid)
    if ctx.method == "PUT":
        body = {
            "id": rg_id(sub, current["name"] if current else rg),
            "name": current["name"] if current else rg,
            "type": "Microsoft.Resources/resourceGroups",
            "location": ctx.json.get("location", "eastus"),
            "tags": ctx.json.get("tags") or {},
            "properties": {"provisioningState": "Succeeded"},
        }
        if current and current["properties"]["provisioningState"] == "Deleting":
            return error(
                409,
                "ResourceGroupBeingDeleted",
                f"The resource group '{rg}' is in deprovisioning state "
                "and cannot perform this operation.",
            )
        time.sleep(
            state.delay_for(ctx.method, ctx.path)
        )  # a synchronous PUT: the delay is the answer's
        return Reply(200 if current else 201, state.put(rid, body))
    if current is None:
        return Reply(404) if ctx.method == "HEAD" else not_found("resourceGroups", rg)
    if ctx.method == "HEAD":
        return Reply(204)
    if ctx.method == "GET":
        return Reply(200, current)
    if ctx.method == "PATCH":
        current["tags"] = ctx.json.get("tags", current["tags"])
        return Reply(200, current)
    current["properties"]["provisioningState"] = "Deleting"

    def done():
        ctx.app.on_deleted(state.delete_tree(rid))

    def failed():
        current["properties"]["provisioningState"] = "Succeeded"

    op = state.new_op(ctx.method, ctx.path, done, failed, ctx.async_failure())
    return Reply(202, None, location_headers(ctx, op, f"/subscriptions/{sub}"))


# --- provider registration ---


def provider(ctx, sub, namespace):
    info = ctx.app.state.info(f"/subscriptions/{sub}/providers/{namespace}")
    registered_at = info.get("registered_at")
    if namespace.lower() != MLS_NS.lower():
        status = "Registered"
    elif registered_at is None:
        status = "NotRegistered"
    else:
        status = "Registered" if time.monotonic() >= registered_at else "Registering"
    return {
        "id": f"/subscriptions/{sub}/providers/{namespace}",
        "namespace": namespace,
        "registrationState": status,
        "registrationPolicy": "RegistrationRequired",
        "resourceTypes": [
            {
                "resourceType": t,
                "locations": ["East US", "West Europe"],
                "apiVersions": ["2024-10-01-preview", "2023-08-01-preview"],
            }
            for t in ("workspaces", "workspaces/computes", "workspaces/jobs")
        ],
    }


@route("GET", SUB + r"/providers")
def list_providers(ctx, sub):
    return Reply(
        200, {"value": [provider(ctx, sub, MLS_NS), provider(ctx, sub, "Microsoft.Resources")]}
    )


@route("GET", SUB + r"/providers/(?P<namespace>[A-Za-z.]+)")
def get_provider(ctx, sub, namespace):
    return Reply(200, provider(ctx, sub, namespace))


@route("POST", SUB + r"/providers/(?P<namespace>[A-Za-z.]+)/register")
def register_provider(ctx, sub, namespace):
    info = ctx.app.state.info(f"/subscriptions/{sub}/providers/{namespace}")
    info.setdefault(
        "registered_at", time.monotonic() + ctx.app.state.delay_for(ctx.method, ctx.path)
    )
    return Reply(200, provider(ctx, sub, namespace))


# --- template deployments (how azure-ai-ml creates a workspace) ---


def _find_resources(template, rtype):
    for res in template.get("resources", []) if isinstance(template, dict) else []:
        if res.get("type", "").lower() == rtype.lower():
            yield res
        nested = (
            res.get("properties", {}).get("template")
            if isinstance(res.get("properties"), dict)
            else None
        )
        if nested:
            yield from _find_resources(nested, rtype)


@route("PUT GET", RG + r"/providers/Microsoft\.Resources/deployments/(?P<name>[^/]+)")
def deployment(ctx, sub, rg, name):
    state = ctx.app.state
    did = f"{rg_id(sub, rg)}/providers/Microsoft.Resources/deployments/{name}"
    if ctx.method == "GET":
        found = state.get(did)
        return (
            Reply(200, found)
            if found
            else error(404, "DeploymentNotFound", f"Deployment '{name}' could not be found.")
        )
    if state.get(rg_id(sub, rg)) is None:
        return not_found("resourceGroups", rg)
    props = ctx.json.get("properties", {})
    params = {k: v.get("value") for k, v in (props.get("parameters") or {}).items()}
    workspaces = list(_find_resources(props.get("template") or {}, f"{MLS_NS}/workspaces"))
    dep = {
        "id": did,
        "name": name,
        "type": "Microsoft.Resources/deployments",
        "properties": {
            "provisioningState": "Running",
            "timestamp": now_iso(),
            "duration": "PT0S",
            "correlationId": str(uuid.uuid4()),
            "mode": props.get("mode", "Incremental"),
            "parameters": props.get("parameters") or {},
            "outputResources": [],
            "dependencies": [],
        },
    }
    operations = []
    if workspaces and params.get("workspaceName"):
        target = ws_id(sub, rg, params["workspaceName"])
        operations.append(
            {
                "id": f"{did}/operations/{uuid.uuid4().hex[:16].upper()}",
                "operationId": uuid.uuid4().hex[:16].upper(),
                "properties": {
                    "provisioningOperation": "Create",
                    "provisioningState": "Running",
                    "timestamp": now_iso(),
                    "duration": "PT0.5S",
                    "trackingId": str(uuid.uuid4()),
                    "serviceRequestId": str(uuid.uuid4()),
                    "statusCode": "Created",
                    "targetResource": {
                        "id": target,
                        "resourceName": params["workspaceName"],
                        "resourceType": f"{MLS_NS}/workspaces",
                    },
                },
            }
        )
    state.put(did, dep, operations=operations)
    started = time.monotonic()
    failure = ctx.async_failure()

    def finish(status):
        dep["properties"]["provisioningState"] = status
        dep["properties"]["duration"] = f"PT{time.monotonic() - started:.3f}S"
        for o in operations:  # "PT<seconds with a fraction>S": the SDK prints split(".")[0] + "s"
            o["properties"]["duration"] = dep["properties"]["duration"]
            o["properties"]["provisioningState"] = status
            o["properties"]["statusCode"] = "OK" if status == "Succeeded" else "BadRequest"

    def done():
        finish("Succeeded")
        if operations:
            ws = ctx.app.create_workspace(sub, rg, params)
            dep["properties"]["outputResources"] = [{"id": ws["id"]}]

    def failed():
        finish("Failed")
        dep["properties"]["error"] = op.error
        for o in operations:
            o["properties"]["statusMessage"] = {"status": "Failed", "error": failure}

    error_body = None
    if failure:
        error_body = {
            "code": "DeploymentFailed",
            "target": did,
            "message": "At least one resource deployment operation failed. Please list deployment "
            "operations for details. Please see https://aka.ms/arm-deployment-operations "
            "for usage details.",
            "details": [failure],
        }
    if not failure and not state.delay_for(ctx.method, ctx.path):
        # nothing to wait for: answered done, as ARM may answer a deployment (the SDK then skips
        # its 5-second polling sleeps); a delay or a failure rule makes it long-running
        done()
        return Reply(201, dep)
    op = state.new_op(ctx.method, ctx.path, done, failed, error_body)
    headers = async_headers(ctx, op, did, "2020-06-01")
    return Reply(201, dep, headers)


@route("GET", RG + r"(?:/providers/Microsoft\.Resources)?/deployments/(?P<name>[^/]+)/operations")
def deployment_operations(ctx, sub, rg, name):
    did = f"{rg_id(sub, rg)}/providers/Microsoft.Resources/deployments/{name}"
    if ctx.app.state.get(did) is None:
        return error(404, "DeploymentNotFound", f"Deployment '{name}' could not be found.")
    return Reply(200, {"value": ctx.app.state.info(did).get("operations", [])})


# --- workspaces ---


@route("GET", RG + MLS + r"/workspaces")
def list_workspaces(ctx, sub, rg):
    return Reply(
        200, {"value": ctx.app.state.children(f"{rg_id(sub, rg)}/providers/{MLS_NS}", "workspaces")}
    )


@route("GET", SUB + MLS + r"/workspaces")
def list_sub_workspaces(ctx, sub):
    with ctx.app.state.lock:
        found = [
            v
            for v in ctx.app.state.resources.values()
            if v.get("type") == f"{MLS_NS}/workspaces"
            and v["id"].lower().startswith(f"/subscriptions/{sub}/".lower())
        ]
    return Reply(200, {"value": found})


@route("GET PUT PATCH DELETE", WS)
def workspace(ctx, sub, rg, ws):
    state, wid = ctx.app.state, ws_id(sub, rg, ws)
    current = state.get(wid)
    if ctx.method == "PUT":
        if state.get(rg_id(sub, rg)) is None:
            return not_found("resourceGroups", rg)
        body = ctx.json
        params = {
            "workspaceName": ws,
            "location": body.get("location"),
            "tagValues": body.get("tags"),
            **{k: v for k, v in body.get("properties", {}).items()},
        }
        created = ctx.app.create_workspace(sub, rg, params)
        return Reply(200 if current else 201, created)
    if current is None:
        return Reply(204) if ctx.method == "DELETE" else not_found("workspaces", ws, rg)
    if ctx.method == "GET":
        return Reply(200, current)
    if ctx.method == "PATCH":
        for key in ("tags",):
            if key in ctx.json:
                current[key] = ctx.json[key]
        for key in ("description", "friendlyName", "imageBuildCompute", "publicNetworkAccess"):
            if key in ctx.json.get("properties", {}):
                current["properties"][key] = ctx.json["properties"][key]
        return Reply(200, current)
    current["properties"]["provisioningState"] = "Deleting"

    def done():
        ctx.app.on_deleted(state.delete_tree(wid))

    def failed():
        current["properties"]["provisioningState"] = "Succeeded"

    op = state.new_op(ctx.method, ctx.path, done, failed, ctx.async_failure())
    status_base = f"/subscriptions/{sub}/providers/{MLS_NS}/locations/{current['location']}"
    headers = {**async_headers(ctx, op, status_base), **location_headers(ctx, op, status_base)}
    return Reply(202, None, headers)


# --- computes ---


def vm(size):
    return VM_SIZES.get((size or "").upper())


def used_vcpus(state, sub, location, family=None, priority="Dedicated"):
    """vCPUs in use in the region (of a family): a cluster's current nodes of that priority, an
    instance whether running or stopped (a stopped one keeps its quota unless it was made with
    releaseQuotaOnStop), as the service counts them."""
    total = 0
    with state.lock:
        for res in state.resources.values():
            if (
                res.get("type") != f"{MLS_NS}/workspaces/computes"
                or res.get("location") != location
            ):
                continue
            if not res["id"].lower().startswith(f"/subscriptions/{sub}/".lower()):
                continue
            p = res["properties"]["properties"] or {}
            size = vm(p.get("vmSize"))
            if not size or (family and size[1] != family):
                continue
            if res["properties"]["computeType"] == "AmlCompute":
                mine = (p.get("vmPriority") or "Dedicated") == priority
                nodes = p.get("currentNodeCount", 0) if mine else 0
            else:
                released = p.get("state") == "Stopped" and p.get("releaseQuotaOnStop")
                nodes = 0 if released or priority != "Dedicated" else 1
            total += size[0] * nodes
    return total


def quota_error(state, sub, location, size):
    vcpus, family, _ = vm(size)
    total = state.quota["total"]
    if total - used_vcpus(state, sub, location) < vcpus:
        return error(
            400,
            "BadRequest",
            f"The specified subscription has a total vCPU quota of {total} and cannot "
            f"accomodate for at least 1 requested managed compute node which maps to {vcpus} "
            "vCPUs. Talk to your Subscription Admin or refer to https://aka.ms/AmlQuotaIncrease "
            "to increase the total quota.",
        )
    limit = state.quota["families"].get(family, FAMILY_DEFAULT_LIMIT)
    if limit - used_vcpus(state, sub, location, family) < vcpus:
        return error(
            400,
            "BadRequest",
            f"The specified subscription has a vCPU quota of {limit} for {family} "
            f"and cannot accomodate for at least 1 requested managed compute node which maps to "
            f"{vcpus} vCPUs. Talk to your Subscription Admin or refer to "
            "https://aka.ms/AmlQuotaIncrease to increase the quota.",
        )
    return None


@route("GET", WS + r"/computes")
def list_computes(ctx, sub, rg, ws):
    wid = ws_id(sub, rg, ws)
    if ctx.app.state.get(wid) is None:
        return not_found("workspaces", ws, rg)
    return Reply(200, {"value": ctx.app.state.children(wid, "computes")})


def compute_resource(workspace_res: dict, name: str, body: dict, props: dict) -> tuple[str, dict]:
    """A compute's id and ARM resource (created or attached): the request's tags and identity,
    `props` as its properties."""
    cid = f"{workspace_res['id']}/computes/{name}"
    return cid, {
        "id": cid,
        "name": name,
        "type": f"{MLS_NS}/workspaces/computes",
        "location": workspace_res["location"],
        "tags": body.get("tags"),
        "identity": body.get("identity"),
        "properties": props,
        "systemData": system_data(),
    }


@route("GET PUT PATCH DELETE", WS + r"/computes/(?P<name>[^/]+)")
def compute(ctx, sub, rg, ws, name):
    state, wid = ctx.app.state, ws_id(sub, rg, ws)
    workspace_res = state.get(wid)
    if workspace_res is None:
        return not_found("workspaces", ws, rg)
    cid = f"{wid}/computes/{name}"
    current = state.get(cid)
    status_base = f"/subscriptions/{sub}/providers/{MLS_NS}/locations/{workspace_res['location']}"
    if ctx.method == "GET":
        return Reply(200, current) if current else not_found("workspaces/computes", name, rg)
    if ctx.method == "DELETE":
        if current is None:
            return Reply(204)
        if refusal := attach.delete_refusal(ctx, current):
            return refusal
        current["properties"]["provisioningState"] = "Deleting"

        def gone():
            ctx.app.on_deleted(state.delete_tree(cid))

        def kept():
            current["properties"]["provisioningState"] = "Succeeded"

        op = state.new_op(ctx.method, ctx.path, gone, kept, ctx.async_failure())
        return Reply(
            202,
            None,
            {**async_headers(ctx, op, status_base), **location_headers(ctx, op, status_base)},
        )
    if ctx.method == "PATCH":
        if current is None:
            return not_found("workspaces/computes", name, rg)
        scale = (ctx.json.get("properties") or {}).get("scaleSettings")
        if scale:
            current["properties"]["properties"]["scaleSettings"].update(scale)
        current["properties"]["modifiedOn"] = now_iso()
        return Reply(200, current)
    return put_compute(ctx, sub, rg, ws, name, workspace_res, current, status_base)


def put_compute(ctx, sub, rg, ws, name, workspace_res, current, status_base):
    state = ctx.app.state
    body = ctx.json
    props = dict(body.get("properties") or {})
    inner = dict(props.get("properties") or {})
    ctype = props.get("computeType")
    if ctype in attach.TYPES:
        return attach.put(ctx, name, workspace_res, current, status_base)
    if ctype not in ("AmlCompute", "ComputeInstance"):
        return error(400, "BadRequest", f"Compute type '{ctype}' is not supported by the emulator.")
    size = inner.get("vmSize") or "STANDARD_DS3_V2"
    if not vm(size):
        return error(
            400,
            "BadRequest",
            f"The specified VM size '{size}' is not available in location "
            f"'{workspace_res['location']}'.",
        )
    if current:
        old = current["properties"]
        if (
            old["computeType"] != ctype
            or (old["properties"].get("vmSize") or "").upper() != size.upper()
        ):
            return error(
                400,
                "BadRequest",
                f"Compute '{name}' already exists with a different "
                f"{'type' if old['computeType'] != ctype else 'vmSize'}; these cannot be updated. "
                "Delete the compute and create it again.",
            )
        if ctype == "AmlCompute" and inner.get("scaleSettings"):
            old["properties"]["scaleSettings"] = inner["scaleSettings"]
        old["modifiedOn"] = now_iso()
        return Reply(200, current)
    refusal = quota_error(state, sub, workspace_res["location"], size)
    if refusal:
        return refusal
    inner.update({"vmSize": size, "osType": "Linux"})
    if ctype == "AmlCompute":
        inner.setdefault("vmPriority", "Dedicated")
        inner.setdefault(
            "scaleSettings",
            {"maxNodeCount": 1, "minNodeCount": 0, "nodeIdleTimeBeforeScaleDown": "PT2M"},
        )
        inner.update(
            {
                "allocationState": "Resizing",
                "allocationStateTransitionTime": now_iso(),
                "currentNodeCount": 0,
                "targetNodeCount": 0,
                "nodeStateCounts": {
                    "idleNodeCount": 0,
                    "runningNodeCount": 0,
                    "preparingNodeCount": 0,
                    "unusableNodeCount": 0,
                    "leavingNodeCount": 0,
                    "preemptedNodeCount": 0,
                },
            }
        )
    else:
        inner.update(
            {
                "state": "Creating",
                "applications": [],
                "connectivityEndpoints": {"publicIpAddress": "127.0.0.1"},
            }
        )
    props.update(
        {
            "properties": inner,
            "provisioningState": "Creating",
            "createdOn": now_iso(),
            "modifiedOn": now_iso(),
            "isAttachedCompute": False,
            "disableLocalAuth": True,
            "computeLocation": workspace_res["location"],
            "provisioningErrors": None,
        }
    )
    cid, res = compute_resource(workspace_res, name, body, props)
    state.put(cid, res)

    def done():
        props["provisioningState"] = "Succeeded"
        if ctype == "AmlCompute":
            inner.update({"allocationState": "Steady", "allocationStateTransitionTime": now_iso()})
        else:
            inner["state"] = "Running"

    def failed():
        props["provisioningState"] = "Failed"
        props["provisioningErrors"] = [{"error": op.error}]
        if ctype == "ComputeInstance":
            inner["state"] = "CreateFailed"

    op = state.new_op(ctx.method, ctx.path, done, failed, ctx.async_failure())
    return Reply(201, res, async_headers(ctx, op, status_base))


@route("POST", WS + r"/computes/(?P<name>[^/]+)/(?P<action>start|stop|restart)")
def compute_action(ctx, sub, rg, ws, name, action):
    state = ctx.app.state
    current = state.get(f"{ws_id(sub, rg, ws)}/computes/{name}")
    if current is None or current["properties"]["computeType"] != "ComputeInstance":
        return not_found("workspaces/computes", name, rg)
    inner = current["properties"]["properties"]
    inner["state"] = {"start": "Starting", "stop": "Stopping", "restart": "Restarting"}[action]
    final = "Stopped" if action == "stop" else "Running"
    op = state.new_op(
        ctx.method, ctx.path, lambda: inner.update(state=final), None, ctx.async_failure()
    )
    status_base = f"/subscriptions/{sub}/providers/{MLS_NS}/locations/{current['location']}"
    return Reply(
        202, None, {**async_headers(ctx, op, status_base), **location_headers(ctx, op, status_base)}
    )


@route("POST", WS + r"/computes/(?P<name>[^/]+)/updateIdleShutdownSetting")
def update_idle_shutdown(ctx, sub, rg, ws, name):
    """How an existing instance's idle shutdown changes (a PUT of the compute leaves it as it
    was, as on Azure)."""
    current = ctx.app.state.get(f"{ws_id(sub, rg, ws)}/computes/{name}")
    if current is None or current["properties"]["computeType"] != "ComputeInstance":
        return not_found("workspaces/computes", name, rg)
    idle = (ctx.json or {}).get("idleTimeBeforeShutdown")
    minutes = re.fullmatch(r"PT(\d+)M", idle or "")
    if idle is not None and not (minutes and 15 <= int(minutes.group(1)) <= 4320):
        return error(400, "BadRequest", f"idleTimeBeforeShutdown '{idle}': PT15M to PT4320M.")
    inner = current["properties"]["properties"]
    if idle is None:
        inner.pop("idleTimeBeforeShutdown", None)
    else:
        inner["idleTimeBeforeShutdown"] = idle
    current["properties"]["modifiedOn"] = now_iso()
    return Reply(200, None)


# --- quota and sizes ---


@route("GET", SUB + MLS + r"/locations/(?P<loc>[^/]+)/usages")
def usages(ctx, sub, loc):
    state = ctx.app.state
    base = f"/subscriptions/{sub}/providers/{MLS_NS}/locations/{loc}/usages"
    rows = [
        {
            "id": f"{base}/totalCores",
            "amlWorkspaceLocation": loc,
            "type": f"{MLS_NS}/totalCores/usages",
            "unit": "Count",
            "currentValue": used_vcpus(state, sub, loc),
            "limit": state.quota["total"],
            "name": {
                "value": "TotalCores",
                "localizedValue": "Total Cluster Dedicated Regional vCPUs",
            },
        },
        {
            "id": f"{base}/totalLowPriorityCores",
            "amlWorkspaceLocation": loc,
            "type": f"{MLS_NS}/totalLowPriorityCores/usages",
            "unit": "Count",
            "currentValue": used_vcpus(state, sub, loc, priority="LowPriority"),
            "limit": state.quota.get("low_priority", 100),
            "name": {
                "value": "TotalLowPriorityCores",
                "localizedValue": "Total Cluster LowPriority Regional vCPUs",
            },
        },
    ]
    for family in sorted({f for _, f, _ in VM_SIZES.values()}):
        rows.append(
            {
                "id": f"{base}/{family}",
                "amlWorkspaceLocation": loc,
                "type": f"{MLS_NS}/vmFamily/usages",
                "unit": "Count",
                "currentValue": used_vcpus(state, sub, loc, family),
                "limit": state.quota["families"].get(family, FAMILY_DEFAULT_LIMIT),
                "name": {"value": family, "localizedValue": f"{family} Cluster Dedicated vCPUs"},
            }
        )
    for wid in sorted(k for k, v in state.resources.items() if _is_workspace(k, v, sub)):
        for row in list(rows):  # a workspace's own rows: the same names, the workspace's caps
            rows.append(
                {**row, "id": f"{wid}/usages/{row['name']['value']}", "limit": 0, "currentValue": 0}
            )
    return Reply(200, {"value": rows})


def _is_workspace(rid: str, resource: dict, sub: str) -> bool:
    return (
        rid.lower().startswith(f"/subscriptions/{sub}/".lower())
        and isinstance(resource, dict)
        and str(resource.get("type", "")).lower() == f"{MLS_NS}/workspaces".lower()
    )


@route("GET", SUB + MLS + r"/locations/(?P<loc>[^/]+)/vmSizes")
def vm_sizes(ctx, sub, loc):
    return Reply(
        200,
        {
            "value": [
                {
                    "name": size.title().replace("Standard_", "Standard_"),
                    "family": family,
                    "vCPUs": vcpus,
                    "gpus": 0,
                    "osVhdSizeMB": 1047552,
                    "maxResourceVolumeMB": 28672,
                    "memoryGB": mem,
                    "lowPriorityCapable": True,
                    "premiumIO": True,
                    "supportedComputeTypes": ["AmlCompute", "ComputeInstance"],
                }
                for size, (vcpus, family, mem) in VM_SIZES.items()
            ]
        },
    )


# --- the workspace's dependent resources (storage, key vault, insights, registry) ---
# The workspace's ARM template creates them; here they exist while their resource group does,
# which is what the SDK's workspace delete with delete_dependent_resources=True needs to see.

DEPENDENT = (
    r"/providers/(?P<ns>Microsoft\.(?:Storage|KeyVault|Insights|ContainerRegistry))"
    r"/(?P<kind>[^/]+)/(?P<name>[^/]+)"
)


@route("GET DELETE", RG + DEPENDENT)
def dependent_resource(ctx, sub, rg, ns, kind, name):
    if ctx.app.state.get(rg_id(sub, rg)) is None:
        return not_found("resourceGroups", rg)
    if ctx.method == "DELETE":
        return Reply(200)
    return Reply(
        200,
        {
            "id": f"{rg_id(sub, rg)}/providers/{ns}/{kind}/{name}",
            "name": name,
            "type": f"{ns}/{kind}",
            "location": "eastus",
            "properties": {"provisioningState": "Succeeded"},
        },
    )
