"""What a lab's computes cost per hour on Azure (on either target: a local plan says what the same
computes would cost there): each compute's price per node (runner/prices.py), while running (an
instance; a cluster at max_instances) and idle (a cluster at min_instances; an instance that
shuts down when idle costs nothing once it has); an online deployment's instances, which bill
while it exists. Disks, storage and networking are not priced."""

from __future__ import annotations

import decimal

from . import azure_only, prices
from .backends import targets
from .endpoints import Deployment
from .spec import Compute, Spec

DEFAULT_SIZE = "STANDARD_DS3_V2"  # the SDK's default size of both kinds of compute
DEFAULT_NODES = 4  # the SDK's AmlCompute max_instances default
DEFAULT_REGION = "eastus"
IDLE_DEFAULT = 60  # minutes: a compute instance's idle shutdown unless the spec says otherwise
IDLE_KEYS = ("idle_time_before_shutdown_minutes", "idle_time_before_shutdown", "schedules")


def idle_default(fields: dict) -> bool:
    """Whether a compute instance gets the default idle shutdown (it names none, nor a schedule)."""
    return fields.get("type") == "computeinstance" and not any(k in fields for k in IDLE_KEYS)


def shuts_down(fields: dict) -> bool:
    """Whether a compute instance stops by itself (idle shutdown, by default or set, or a
    schedule); `idle_time_before_shutdown_minutes: 0` opts out."""
    return idle_default(fields) or bool(
        fields.get("idle_time_before_shutdown_minutes")
        or fields.get("idle_time_before_shutdown")
        or fields.get("schedules")
    )


def estimate(spec: Spec, timeout: float | None = None) -> dict | None:
    """The lab's hourly cost (None: it has no computes), as `plan --json` says it."""
    deployments = [  # a batch deployment costs nothing until invoked: its compute bills then
        d  # (and a Kubernetes one runs on its cluster, which bills as its own resource)
        for e in spec.endpoints.values()
        for d in e.deployments.values()
        if not d.batch and d.kubernetes is None
    ]
    # an attached Synapse pool or Kubernetes cluster bills as its own resource, not Azure ML's
    computes = [c for c in spec.computes.values() if not azure_only.compute_kind(c.fields)]
    if not computes and not deployments:
        return None
    region = str(spec.workspace.get("location") or DEFAULT_REGION).lower().replace(" ", "")
    sizes = {c.name: str(c.fields.get("size") or DEFAULT_SIZE) for c in computes}
    served = {d.key: str(d.instance_type or DEFAULT_SIZE) for d in deployments}
    quote = prices.quote(region, [*sizes.values(), *served.values()], timeout)
    items = [_item(c, sizes[c.name], region, quote.prices[sizes[c.name]]) for c in computes]
    items += [_served(d, served[d.key], region, quote.prices[served[d.key]]) for d in deployments]
    priced = [i for i in items if i["unit_price"] is not None]
    return {
        "currency": quote.currency,
        "per_hour_running": round(sum(i["per_hour_running"] for i in priced), 4),
        "per_hour_idle": round(sum(i["per_hour_idle"] for i in priced), 4),
        "region": region,
        "source": quote.source,
        "as_of": quote.as_of,
        "not_priced": sorted({i["size"] for i in items if i["unit_price"] is None}),
        "items": items,
    }


def _item(c: Compute, size: str, region: str, unit: float | None) -> dict:
    if c.type == "amlcompute":
        most = int(c.fields.get("max_instances", DEFAULT_NODES))
        least = int(c.fields.get("min_instances", 0))
    else:
        most, least = 1, 0 if shuts_down(c.fields) else 1
    return {
        "address": f"compute.{c.name}",
        "type": c.type,
        "size": size,
        "region": region,
        "unit_price": unit,
        "nodes": [least, most],
        "per_hour_running": None if unit is None else round(unit * most, 4),
        "per_hour_idle": None if unit is None else round(unit * least, 4),
    }


def _served(d: Deployment, size: str, region: str, unit: float | None) -> dict:
    """An online deployment: its instances bill while it exists, whether called or not."""
    count = d.instance_count
    per_hour = None if unit is None else round(unit * count, 4)
    return {
        "address": f"deployment.{d.key}",
        "type": "deployment",
        "size": size,
        "region": region,
        "unit_price": unit,
        "nodes": [count, count],
        "per_hour_running": per_hour,
        "per_hour_idle": per_hour,
    }


def money(value: float) -> str:
    """`$0.19`: dollars and cents, half a cent rounded up (as a price list shows 0.185)."""
    cents = decimal.Decimal(str(value)).quantize(decimal.Decimal("0.01"), decimal.ROUND_HALF_UP)
    return f"${cents:,}"


def compute_text(item: dict) -> str:
    """`$0.19/h`, or a cluster's `$0.00/h idle, $0.37/h at 2 nodes`: a plan line's price."""
    if item["unit_price"] is None:
        return f"{item['size']} not priced"
    running, idle, most = item["per_hour_running"], item["per_hour_idle"], item["nodes"][1]
    if item["type"] == "deployment":  # `$0.29/h (1 x Standard_DS3_v2), bills until destroyed`
        return f"{money(running)}/h ({most} x {item['size']}), bills until destroyed"
    if item["type"] == "amlcompute":
        return f"{money(idle)}/h idle, {money(running)}/h at {most} node{'s' if most != 1 else ''}"
    if idle:
        return f"{money(running)}/h, idle too (no idle shutdown)"
    return f"{money(running)}/h"


def line(cost: dict, target: str) -> str:
    """`cost: $0.56/h while running, $0.00/h idle (USD retail, eastus, prices as of 2026-12-01,
    live)`; a local plan's says what the computes would cost on Azure."""
    head = "cost" if targets.get(target).bills else "cost on azure"
    where = f"{cost['currency']} retail, {cost['region']}, prices as of {cost['as_of']}, "
    missing = ", ".join(cost["not_priced"])
    if missing and not any(i["unit_price"] is not None for i in cost["items"]):
        # nothing priced: an unknown price is said so, never $0.00
        return (
            f"{head}: not known (no {cost['region']} price for {missing}: {cost['currency']} "
            f"retail prices as of {cost['as_of']}, {cost['source']})"
        )
    least = "at least " if missing else ""  # some sizes priced: what is known, a floor
    return (
        f"{head}: {least}{money(cost['per_hour_running'])}/h while running, "
        f"{least}{money(cost['per_hour_idle'])}/h idle ({where}{cost['source']}"
        f"{'; not priced: ' + missing if missing else ''}; disks, storage and networking "
        "not priced)"
    )


RUNNING = ("Creating", "Starting", "Running", "Restarting", "JobRunning", "UserSettingUp")


def billable(
    spec: Spec, live: dict[str, dict], now: float, served: dict[str, dict] | None = None
) -> list[dict]:
    """What bills now, from what the target says each compute runs (backend.billing): per hour,
    and, for an instance, an estimate of its cost since it started; then each online deployment
    that exists (`served`: its key and record details, on a target that bills), whose instances
    bill until it is deleted."""
    served = {k: d for k, d in (served or {}).items() if _deployment(spec, k) is not None}
    if not live and not served:
        return []
    import datetime as dt

    region = str(spec.workspace.get("location") or DEFAULT_REGION).lower().replace(" ", "")
    sizes = {n: str(spec.computes[n].fields.get("size") or DEFAULT_SIZE) for n in live}
    deployments = {k: _deployment(spec, k) for k in served}
    kinds = {k: str(d.instance_type or DEFAULT_SIZE) for k, d in deployments.items() if d}
    quote = prices.quote(region, [*sizes.values(), *kinds.values()])
    out = []
    for name, seen in live.items():
        unit = quote.prices[sizes[name]]
        if spec.computes[name].type == "amlcompute":
            running = int(seen.get("nodes") or 0)
            state = f"{running} node{'s' if running != 1 else ''}"
        else:
            running = 1 if seen.get("state") in RUNNING else 0
            state = seen.get("state") or "?"
        since, so_far = seen.get("since") if running else None, None
        if since and unit is not None and spec.computes[name].type != "amlcompute":
            started = dt.datetime.fromisoformat(str(since).replace("Z", "+00:00"))
            hours = max(0.0, now - started.timestamp()) / 3600
            so_far = round(unit * hours, 2)
        out.append(
            {
                "address": f"compute.{name}",
                "size": sizes[name],
                "state": state,
                "since": since,
                "unit_price": unit,
                "per_hour": None if unit is None else round(unit * running, 4),
                "cost_so_far": so_far,
                "estimate": True,
                "currency": quote.currency,
                "prices": quote.source,
            }
        )
    for key, details in served.items():
        dep = deployments[key]
        assert dep is not None
        unit, count = quote.prices[kinds[key]], dep.instance_count
        since, so_far = details.get("since"), None
        if since and unit is not None:
            started = dt.datetime.fromisoformat(str(since).replace("Z", "+00:00"))
            so_far = round(unit * count * max(0.0, now - started.timestamp()) / 3600, 2)
        out.append(
            {
                "address": f"deployment.{key}",
                "size": kinds[key],
                "state": f"{count} instance{'s' if count != 1 else ''}",
                "since": since,
                "unit_price": unit,
                "per_hour": None if unit is None else round(unit * count, 4),
                "cost_so_far": so_far,
                "estimate": True,
                "currency": quote.currency,
                "prices": quote.source,
            }
        )
    return out


def _deployment(spec: Spec, key: str) -> Deployment | None:
    endpoint, _, name = key.partition("/")
    found = spec.endpoints[endpoint].deployments.get(name) if endpoint in spec.endpoints else None
    billed = found is not None and not found.batch and found.kubernetes is None
    return found if billed else None
