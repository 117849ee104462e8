"""Attached computes (`az ml compute attach`, the SDK's compute.begin_create_or_update of a
SynapseSparkCompute or KubernetesCompute): a compute PUT whose computeType is SynapseSpark or
Kubernetes and whose resourceId names the pool or cluster it attaches (a Synapse workspace's
bigDataPools/P; an Arc connectedClusters/C or AKS managedClusters/C), with no VM size and no
quota. The resource attached is not emulated: any id of the right form is accepted, and a pool
reads back with a small pool's settings (POOL). Detaching
(DELETE ?underlyingResourceAction=Detach) forgets the compute; Delete is refused for an attached
compute: the pool or cluster is not the workspace's to delete."""

import re

from lro import async_headers
from server import Reply, error
from state import now_iso

TYPES = {
    "SynapseSpark": re.compile(
        r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Synapse/workspaces/"
        r"[^/]+/bigDataPools/[^/]+$",
        re.I,
    ),
    "Kubernetes": re.compile(
        r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/(Microsoft\.Kubernetes/"
        r"connectedClusters|Microsoft\.ContainerService/managedClusters)/[^/]+$",
        re.I,
    ),
}
WHAT = {"SynapseSpark": "a Synapse Spark pool", "Kubernetes": "a Kubernetes cluster"}
# what the service reads of a pool it attaches (the pool is not emulated: a small one's settings)
POOL = {
    "autoScaleProperties": {"minNodeCount": 3, "maxNodeCount": 10, "enabled": True},
    "autoPauseProperties": {"delayInMinutes": 15, "enabled": True},
    "sparkVersion": "3.4",
    "nodeCount": 3,
    "nodeSize": "Small",
    "nodeSizeFamily": "MemoryOptimized",
}


def put(ctx, name: str, workspace_res: dict, current, status_base: str):
    from arm import compute_resource

    body = ctx.json
    props = dict(body.get("properties") or {})
    ctype, resource = props["computeType"], props.get("resourceId") or ""
    if not TYPES[ctype].match(resource):
        return error(
            400,
            "BadRequest",
            f"resourceId '{resource}' is not the ARM id of {WHAT[ctype]} "
            "(the compute attaches an existing one).",
        )
    if current and (
        current["properties"]["computeType"] != ctype
        or current["properties"].get("resourceId") != resource
    ):
        return error(
            400,
            "BadRequest",
            f"Compute '{name}' is already attached to another resource; detach it first.",
        )
    if ctype == "SynapseSpark":
        props["properties"] = {**POOL, **(props.get("properties") or {})}
    props.update(
        {
            "provisioningState": "Creating",
            "createdOn": (current or {}).get("properties", {}).get("createdOn") or now_iso(),
            "modifiedOn": now_iso(),
            "isAttachedCompute": True,
            "computeLocation": workspace_res["location"],
            "provisioningErrors": None,
        }
    )
    cid, res = compute_resource(workspace_res, name, body, props)
    ctx.app.state.put(cid, res)

    def done():
        props["provisioningState"] = "Succeeded"

    def failed():
        props["provisioningState"] = "Failed"
        props["provisioningErrors"] = [{"error": op.error}]

    op = ctx.app.state.new_op(ctx.method, ctx.path, done, failed, ctx.async_failure())
    return Reply(200 if current else 201, res, async_headers(ctx, op, status_base))


def delete_refusal(ctx, current: dict):
    """Why a DELETE of this compute is refused (None: it is not)."""
    props = current["properties"]
    action = ctx.q("underlyingResourceAction") or "Delete"
    if props.get("isAttachedCompute") and action.lower() != "detach":
        return error(
            400,
            "BadRequest",
            f"Compute '{current['name']}' is attached {WHAT.get(props['computeType'], '')}: "
            "detach it (underlyingResourceAction=Detach); it cannot be deleted from the workspace.",
        )
    return None
