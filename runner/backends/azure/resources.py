"""What mlrun makes on Azure, and reads back: resource groups, workspaces, computes and the
versioned assets (environments, components, data, models), created, updated, deleted or archived
through the SDK; refresh's view of them, the quota advice before apply, and what computes bill.
Every SDK is imported lazily, inside the calls."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...azure_only import COMPUTE_KINDS as ATTACHED  # computes mlrun attaches, and detaches
from ...changes import COMPUTE_FIELDS, CREATE, REPLACE, WORKSPACE_FIELDS, Address, Kind
from ...records import Actual, Resource, Run, RunChange, StateDoc
from ...spec import Spec
from .batch import (
    create_endpoint as create_batch_endpoint,
    delete as delete_batch,
    deploy as deploy_batch,
    is_batch,
    live as live_batch,
)
from .client import Session, _sdk_stderr
from .datastores import create as create_store, delete as delete_store, live as live_store
from .endpoints import (
    KINDS as SERVED,
    create_endpoint,
    delete as delete_served,
    deploy,
    environment_entity,
    live as live_served,
)
from .errors import plain_errors
from .jobs import import_data
from .schedules import (
    create as create_schedule,
    delete as delete_schedule,
    live as live_schedule,
    update as update_schedule,
)

PROVIDER = "Microsoft.MachineLearningServices"
CLUSTER_FIELDS = (
    "size",
    "min_instances",
    "max_instances",
    "idle_time_before_scale_down",
    "tier",
    "location",
    "description",
    "tags",
)
INSTANCE_FIELDS = (
    "size",
    "idle_time_before_shutdown_minutes",
    "idle_time_before_shutdown",
    "location",
    "description",
    "tags",
)

ASSETS = {  # versioned assets: the kind, and the spec's and MLClient's attribute of them
    "environment": "environments",
    "component": "components",
    "data": "data",
    "model": "models",
}


def refresh(
    session: Session, spec: Spec, state: StateDoc, poll: Callable[[Run], RunChange]
) -> Actual:
    """GET each resource the spec names or the state holds; 404 means it is not there."""
    with plain_errors():
        actual: Actual = {
            "resources": {},
            "jobs": {},
            "lineage": state["lineage"],
            "serial": state["serial"],
        }
        addresses = {Address.parse(a) for a in state["resources"]}
        if spec.workspace.get("resource_group"):  # a config.json's group is used, not managed
            addresses.add(Address(Kind.RESOURCE_GROUP, spec.workspace["resource_group"]))
        addresses.add(Address(Kind.WORKSPACE, session.workspace))
        addresses.update(Address(Kind.COMPUTE, n) for n in spec.computes)
        addresses.update(Address(Kind.ENVIRONMENT, n) for n in spec.environments)
        addresses.update(Address(Kind.COMPONENT, n) for n in spec.components)
        addresses.update(
            Address(Kind.DATASTORE, n) for n, s in spec.datastores.items() if not s.builtin
        )
        addresses.update(Address(Kind.SCHEDULE, n) for n in spec.schedules)
        rg_alive = rg_exists(session)
        ws = session.get_workspace() if rg_alive else None
        for address in sorted(addresses):
            kind, name = address.kind.value, address.name
            record = state["resources"].get(address) or {"kind": kind, "name": name}
            live = _live(session, spec, kind, name, ws, record) if rg_alive else None
            if (
                live is not None
            ):  # compared on the fields the spec or the state names, not Azure's defaults
                known = record.get("attrs", {})
                keys = set(known) | _named(spec, kind, name)
                details = dict(record.get("details") or {})
                if down := live.pop("down", None):  # a deployment that failed: made again
                    details["down"] = down
                actual["resources"][address] = {
                    "kind": kind,
                    "name": name,
                    **record,
                    "details": details,
                    "attrs": {
                        k: live.get(k, known.get(k))
                        for k in sorted(keys)
                        if k in live or k in known
                    },
                }
        if ws is not None:
            for name, entry in state["jobs"].items():
                if entry.get("runs"):
                    run = entry["runs"][-1]
                    actual["jobs"][name] = {**run, **poll(run)}
        return actual


def _named(spec: Spec, kind: str, name: str) -> set:
    if kind == "workspace":
        return set(spec.workspace) & set(WORKSPACE_FIELDS)
    if kind == "compute" and name in spec.computes:
        return set(spec.computes[name].fields) & set(COMPUTE_FIELDS)
    if kind in ASSETS:
        return {"version", "content"}
    return {"location"} if kind == "resource_group" else set()


def rg_exists(session: Session) -> bool:
    return bool(session.arm().resource_groups.check_existence(session.resource_group))


def _live(
    session: Session, spec: Spec, kind: str, name: str, ws, record: Resource | None = None
) -> dict | None:
    """The resource's fields as Azure has them, in the spec's words; None if it is absent."""
    if kind == "resource_group":
        return {"location": session.location}
    if kind == "workspace":
        return (
            None
            if ws is None or name != session.workspace
            else _pick(
                {
                    "location": _region(ws.location),
                    "resource_group": session.resource_group,
                    "display_name": ws.display_name,
                    "description": ws.description,
                    "tags": _own_tags(ws.tags),
                }
            )
        )
    if ws is None:
        return None
    from azure.core.exceptions import ResourceNotFoundError

    if kind in ASSETS:
        return _live_asset(session, spec, kind, name, record or {})
    if kind == "datastore":
        return live_store(session, name)
    if kind == "schedule":
        return live_schedule(session, name)
    if kind in SERVED:
        if is_batch(kind, record):
            return live_batch(session, kind, name)
        return live_served(session, kind, name, record or {})
    try:
        c = session.ml().compute.get(name)
    except ResourceNotFoundError:
        return None
    if c.type in ("synapsespark", "kubernetes"):  # attached: what it is attached to
        return _pick(
            {
                "type": c.type,
                "resource_id": c.resource_id,
                "namespace": getattr(c, "namespace", None),
                "description": c.description,
                "tags": _own_tags(c.tags),
            }
        )
    if c.type == "amlcompute":
        return _pick(
            {
                "type": "amlcompute",
                "size": c.size,
                "min_instances": c.min_instances,
                "max_instances": c.max_instances,
                "idle_time_before_scale_down": c.idle_time_before_scale_down,
                "tier": c.tier,
                "description": c.description,
                "tags": _own_tags(c.tags),
            }
        )
    return _pick(
        {
            "type": c.type,
            "size": c.size,
            "description": c.description,
            "tags": _own_tags(c.tags),
            "idle_time_before_shutdown_minutes": getattr(
                c, "idle_time_before_shutdown_minutes", None
            ),
        }
    )


def _live_asset(
    session: Session, spec: Spec, kind: str, name: str, record: Resource | dict[str, Any]
) -> dict | None:
    """The version of an environment or component the state (or else the spec) names, as
    registered, with the content digest mlrun tagged it with; None when it is not there."""
    from azure.core.exceptions import ResourceNotFoundError

    spec_assets = getattr(spec, ASSETS[kind])
    asked = spec_assets[name].version if name in spec_assets else None
    version = (record.get("attrs") or {}).get("version") or asked
    if version is None:
        return None
    operations = getattr(session.ml(), ASSETS[kind])
    try:
        asset = operations.get(name, version=version)
    except ResourceNotFoundError:
        return None
    content = (asset.tags or {}).get("mlrun.content")
    if kind == "data" and name in spec.data and spec.data[name].imported:
        content = (record.get("attrs") or {}).get("content")  # made by its job, untagged
    return {"version": str(asset.version), "content": content}


def advise(session: Session, plan) -> list[str]:
    """Notes and warnings before apply: the subscription, when the spec names none; the vCPU
    quota the new computes need against the subscription's free quota in the region (the
    commonest way this lab fails for students): its own rows of the usage list (a
    workspace's rows share their names), -1 being no cap, a cluster's max_instances the SDK's
    4 when not given."""
    notes = []
    if session.subscription_from:
        notes.append(f"note: subscription {session.subscription}, from {session.subscription_from}")
    new = [
        c.after
        for c in plan.changes
        if c.address.kind == Kind.COMPUTE and c.action in (CREATE, REPLACE)
    ]
    if not new or not session.location:
        return notes
    with plain_errors():
        sizes = {
            s.name.lower(): (_field(s, "v_cp_us", "vCPUs") or 0, s.family)
            for s in session.ml().compute.list_sizes(location=session.location)
        }
        usages = {
            _usage_name(u): (_field(u, "current_value", "currentValue") or 0, u.limit or 0)
            for u in session.ml().compute.list_usage(location=session.location)
            if "/workspaces/" not in str(getattr(u, "id", "") or "").lower()
        }
    need: dict = {}
    low = 0  # low-priority clusters count against the region's low-priority quota only
    for attrs in new:
        vcpus, family = sizes.get(str(attrs.get("size", "")).lower(), (0, None))
        nodes = attrs.get("max_instances", 4) if attrs.get("type") == "amlcompute" else 1
        if str(attrs.get("tier", "")).lower().replace("_", "") == "lowpriority":
            low += vcpus * nodes
        elif family:
            need[family] = need.get(family, 0) + vcpus * nodes
    need["TotalCores"] = sum(need.values())
    need["TotalLowPriorityCores"] = low
    out = []
    for family, wanted in need.items():
        if family in usages:
            used, limit = usages[family]
            if limit >= 0 and wanted > limit - used:  # -1: no cap
                what = {
                    "TotalCores": "in total",
                    "TotalLowPriorityCores": "of low priority in total",
                }.get(family, f"of the {family}")
                out.append(
                    f"warning: the new computes need {wanted} vCPUs {what} in {session.location}, "
                    f"but the subscription has {max(0, limit - used)} free (quota {limit}, "
                    f"{used} in use): creating them will fail. Request more quota (Azure "
                    "portal, Quotas, Machine learning), or pick a smaller size or fewer "
                    "max_instances."
                )
    return notes + out


def create(
    session: Session,
    spec: Spec,
    kind: str,
    name: str,
    attrs: dict,
    lab_tags: dict,
    expires=None,
) -> dict:
    with plain_errors(f"{kind}.{name}"):
        if kind == "resource_group":
            return _create_rg(session, name, lab_tags)
        if kind == "environment":
            return _create_environment(session, spec, name, attrs)
        if kind == "component":
            return _create_component(session, spec, name, attrs)
        if kind == "data":
            return _create_data(session, spec, name, attrs)
        if kind == "datastore":
            return create_store(session, spec.datastores[name])
        if kind == "schedule":
            return create_schedule(session, spec, name, attrs)
        if kind == "endpoint":
            if attrs.get("type") == "batch":
                return create_batch_endpoint(session, name, attrs, lab_tags)
            return create_endpoint(session, name, attrs, lab_tags)
        if kind == "deployment":
            if attrs.get("compute"):  # a batch deployment scores on a compute
                return deploy_batch(session, spec, name, attrs, lab_tags)
            return deploy(session, spec, name, attrs, lab_tags)
        if kind == "workspace":
            from azure.ai.ml.entities import Workspace

            ws = (
                session.ml()
                .workspaces.begin_create(
                    Workspace(
                        name=name,
                        location=attrs.get("location") or session.location,
                        display_name=attrs.get("display_name"),
                        description=attrs.get("description"),
                        tags={**(attrs.get("tags") or {}), **lab_tags} or None,
                    )
                )
                .result()
            )
            return {"id": ws.id, "mlflow_tracking_uri": ws.mlflow_tracking_uri}
        compute = (
            session.ml()
            .compute.begin_create_or_update(
                _compute(name, attrs, session.location, lab_tags, expires)
            )
            .result()
        )
        return {"id": compute.id}


def _create_rg(session: Session, name: str, lab_tags: dict) -> dict:
    arm = session.arm()
    provider = arm.providers.get(PROVIDER)
    if (provider.registration_state or "").lower() != "registered":
        arm.providers.register(PROVIDER)
    if arm.resource_groups.check_existence(name):
        return {"created_by_mlrun": False}  # it existed before: destroy will leave it alone
    rg = arm.resource_groups.create_or_update(
        name, {"location": session.location, "tags": lab_tags or None}
    )
    return {"id": rg.id, "created_by_mlrun": True}


def _create_environment(session: Session, spec: Spec, name: str, attrs: dict) -> dict:
    """`az ml environment create`: the spec's definition (its conda file read in) as a new
    version, tagged with its content digest."""
    definition = spec.environments[name].definition or {}
    fields = (spec.doc.data.get("environments") or {}).get(name) or {}
    entity = environment_entity(
        definition,
        name=name,
        version=attrs["version"],
        description=fields.get("description"),
        tags={**(fields.get("tags") or {}), "mlrun.content": attrs["content"]},
    )
    with _sdk_stderr():
        created = session.ml().environments.create_or_update(entity)
    return {"id": created.id}


def _create_component(session: Session, spec: Spec, name: str, attrs: dict) -> dict:
    """`az ml component create`: the spec's component written as a commandComponent file,
    loaded by the SDK, registered as a new version tagged with its content digest."""
    import yaml
    from azure.ai.ml import load_component

    from ...export import component_document

    with tempfile.TemporaryDirectory(prefix="mlrun-component-") as tmp:
        path = Path(tmp) / f"{name}.yml"
        document = component_document(spec, name, Path(tmp))
        document["version"] = attrs["version"]
        document["tags"] = {**(document.get("tags") or {}), "mlrun.content": attrs["content"]}
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        with _sdk_stderr():
            created = session.ml().components.create_or_update(load_component(source=path))
    return {"id": created.id}


def _create_data(session: Session, spec: Spec, name: str, attrs: dict) -> dict:
    """`az ml data create`: the local content uploaded to the workspace's default datastore
    (a URI registered as it is), as a new version tagged with its content digest."""
    from azure.ai.ml.entities import Data

    asset = spec.data[name]
    if asset.imported:
        return import_data(session, asset, attrs)
    entity = Data(
        name=name,
        version=attrs["version"],
        type=asset.type,
        path=str(asset.local) if asset.local is not None else asset.path,
        description=asset.fields.get("description"),
        tags={**(asset.fields.get("tags") or {}), "mlrun.content": attrs["content"]},
    )
    with _sdk_stderr():
        created = session.ml().data.create_or_update(entity)
    return {"id": created.id}


def update(session: Session, spec: Spec, kind: str, name: str, attrs: dict, lab_tags: dict) -> dict:
    if kind in ("endpoint", "deployment", "datastore"):  # made again: Azure updates in place
        return create(session, spec, kind, name, attrs, lab_tags)
    if kind == "schedule":
        with plain_errors(f"{kind}.{name}"):
            return update_schedule(session, spec, name, attrs)
    with plain_errors(f"{kind}.{name}"):
        if kind == "compute" and attrs.get("type") == "computeinstance":
            _update_idle_shutdown(session, name, attrs.get("idle_time_before_shutdown_minutes"))
        if kind == "compute":
            compute = (
                session.ml()
                .compute.begin_update(_compute(name, attrs, session.location, lab_tags))
                .result()
            )
            return {"id": compute.id}
        if kind == "workspace":
            ws = session.ml().workspaces.get(name)
            ws.display_name, ws.description, ws.tags = (
                attrs.get("display_name"),
                attrs.get("description"),
                attrs.get("tags"),
            )
            session.ml().workspaces.begin_update(ws).result()
        return {}


def _update_idle_shutdown(session: Session, name: str, minutes: int | None) -> None:
    """An existing instance's idle shutdown (a compute PUT leaves it as it was): Azure's
    updateIdleShutdownSetting action, which the SDK has no method for (sent through its own
    client, as its enable_sso is). 0 or none: no idle shutdown."""
    from azure.core.rest import HttpRequest

    ml = session.ml()
    url = (
        f"/subscriptions/{session.subscription}/resourceGroups/{session.resource_group}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{session.workspace}"
        f"/computes/{name}/updateIdleShutdownSetting"
    )
    body = {"idleTimeBeforeShutdown": f"PT{minutes}M" if minutes else None}
    request = HttpRequest("POST", url, params={"api-version": "2024-04-01-preview"}, json=body)
    ml.compute._sso_service_client.send_request(request).raise_for_status()


def delete(session: Session, kind: str, name: str, record: Resource) -> None:
    """Delete what exists; something already gone is fine (checked first, not guessed from a
    404 inside the operation: the workspace delete GETs its dependent resources too)."""
    with plain_errors(f"{kind}.{name}"):
        if not record.get("created_by_mlrun", True):
            return  # it was there before mlrun: never deleted
        if kind in SERVED:
            if rg_exists(session) and session.get_workspace() is not None:
                if is_batch(kind, record):
                    delete_batch(session, kind, name)
                else:
                    delete_served(session, kind, name)
        elif kind == "resource_group":
            if rg_exists(session):
                session.arm().resource_groups.begin_delete(name).result()
        elif kind == "workspace":
            if rg_exists(session) and session.get_workspace() is not None:
                # its storage, key vault, insights and registry were made with it: they go
                # with it
                session.ml().workspaces.begin_delete(name, delete_dependent_resources=True).result()
        elif kind == "schedule":  # it fires nothing more; the runs it made stay
            if rg_exists(session) and session.get_workspace() is not None:
                delete_schedule(session, name)
        elif kind == "datastore":  # its registration: the data in the storage stays
            if rg_exists(session) and session.get_workspace() is not None:
                delete_store(session, name)
        elif kind in ASSETS:  # archived: Azure ML never deletes them
            if rg_exists(session) and session.get_workspace() is not None:
                getattr(session.ml(), ASSETS[kind]).archive(name)
        elif (
            rg_exists(session)
            and session.get_workspace() is not None
            and _compute_exists(session, name)
        ):  # an attached pool or cluster is detached: it is not Azure ML's to delete
            attached = (record.get("attrs") or {}).get("type") in ATTACHED
            action = "Detach" if attached else "Delete"
            session.ml().compute.begin_delete(name, action=action).result()


def _compute_exists(session: Session, name: str) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        session.ml().compute.get(name)
        return True
    except ResourceNotFoundError:
        return False


def register_model(session: Session, spec: Spec, name: str, attrs: dict, run: Run | None) -> dict:
    """`az ml model create`: a local folder uploaded, or a job's output as Azure ML names it
    (azureml://jobs/JOB/outputs/NAME/paths/PATH; a run's artifacts are its `artifacts`
    output), as the planned version, tagged with the run and content digest. That version
    registered before from the same run and content (an apply killed before recording it)
    is taken as it is."""
    from azure.ai.ml.entities import Model
    from azure.core.exceptions import ResourceNotFoundError

    model, version = spec.models[name], attrs["version"]
    tags = {str(k): str(v) for k, v in (model.fields.get("tags") or {}).items()}
    tags["mlrun.content"] = attrs["content"]
    if model.job is not None and run is not None:
        output = model.job.output or "artifacts"
        sub = f"/paths/{model.job.sub}" if model.job.sub else ""
        path = f"azureml://jobs/{run['id']}/outputs/{output}{sub}"
        tags["mlrun.run"] = run["id"]
    else:
        path = str(model.local) if model.local is not None else model.path
    with plain_errors(f"model.{name}"):
        try:
            found = session.ml().models.get(name, version=version)
        except ResourceNotFoundError:
            found = None
        if found is not None and all((found.tags or {}).get(k) == v for k, v in tags.items()):
            return {"id": found.id, "version": str(found.version)}
        entity = Model(
            name=name,
            version=version,
            type=model.type,
            path=path,
            description=model.fields.get("description"),
            tags=tags,
            properties=model.fields.get("properties"),
            stage=model.fields.get("stage"),
        )
        with _sdk_stderr():
            created = session.ml().models.create_or_update(entity)
    return {"id": created.id, "version": str(created.version)}


def model_versions(session: Session, name: str) -> list[tuple[str, str]]:
    with plain_errors(f"model.{name}"):
        found = list(session.ml().models.list(name=name))
    return [(str(m.version), m.tags["mlrun.run"]) for m in found if (m.tags or {}).get("mlrun.run")]


def billing(session: Session, names: list[str]) -> dict[str, dict]:
    """What each of these computes runs now, as Azure says it: an instance's state and since
    when (its last start, else its creation), a cluster's current nodes."""
    from azure.core.rest import HttpRequest

    client = session.ml().compute._sso_service_client
    out = {}
    for name in names:
        url = (
            f"/subscriptions/{session.subscription}/resourceGroups/{session.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{session.workspace}"
            f"/computes/{name}"
        )
        with plain_errors(f"compute.{name}"):
            response = client.send_request(
                HttpRequest("GET", url, params={"api-version": "2024-04-01-preview"})
            )
            if response.status_code == 404:
                continue
            response.raise_for_status()
        props = response.json().get("properties") or {}
        inner = props.get("properties") or {}
        last = inner.get("lastOperation") or {}
        started = last.get("operationTime") if last.get("operationName") == "Start" else None
        out[name] = {
            "state": inner.get("state") or inner.get("allocationState"),
            "nodes": inner.get("currentNodeCount"),
            "since": started or props.get("createdOn"),
        }
    return out


def _field(obj, *names):
    """azure-ai-ml 1.35 leaves some fields under their REST names (vCPUs, currentValue)."""
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _own_tags(tags: dict | None) -> dict | None:
    """A resource's tags as the spec names them, without the lab's (mlrun-lab, mlrun-expires)."""
    own = {k: v for k, v in (tags or {}).items() if not k.startswith("mlrun-")}
    return own or None


def _usage_name(usage) -> str:
    name = usage.name
    return str(name.get("value") if isinstance(name, dict) else getattr(name, "value", name))


def _pick(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def _region(location: str | None) -> str | None:
    return location.replace(" ", "").lower() if location else location


def _compute(
    name: str, attrs: dict, location: str | None, lab_tags: dict | None = None, expires=None
):
    """The SDK's compute; made with the lab's tags and, for an instance, a stop schedule at the
    lab's expiry (`expires`)."""
    from azure.ai.ml.entities import AmlCompute, ComputeInstance

    if attrs.get("type") in ATTACHED:
        return _attached(name, attrs, lab_tags)

    fields = {
        k: attrs.get(k)
        for k in (CLUSTER_FIELDS if attrs.get("type") == "amlcompute" else INSTANCE_FIELDS)
    }
    if lab_tags:
        fields["tags"] = {**(fields.get("tags") or {}), **lab_tags}
    if attrs.get("type") == "amlcompute":
        return AmlCompute(name=name, **_pick(fields))
    fields.pop("idle_time_before_shutdown", None)
    if not fields.get("idle_time_before_shutdown_minutes"):  # 0: never shut down when idle
        fields.pop("idle_time_before_shutdown_minutes", None)
    if expires is not None:
        from azure.ai.ml.entities import (
            ComputePowerAction,
            ComputeSchedules,
            ComputeStartStopSchedule,
            CronTrigger,
        )

        at = f"{expires.minute} {expires.hour} {expires.day} {expires.month} *"  # once, in UTC
        stop = ComputeStartStopSchedule(
            trigger=CronTrigger(expression=at, time_zone="UTC"), action=ComputePowerAction.STOP
        )
        fields["schedules"] = ComputeSchedules(compute_start_stop=[stop])
    return ComputeInstance(name=name, **_pick(fields))


def _attached(name: str, attrs: dict, lab_tags: dict | None):
    """An attached Synapse Spark pool or Kubernetes cluster (`az ml compute attach`): its fields
    as a CLI v2 compute file, loaded by the SDK (which maps identity and namespace), with the
    lab's tags."""
    import yaml
    from azure.ai.ml import load_compute

    fields = {k: v for k, v in attrs.items() if v is not None}
    if lab_tags:
        fields["tags"] = {**(fields.get("tags") or {}), **lab_tags}
    with tempfile.TemporaryDirectory(prefix="mlrun-compute-") as tmp:
        path = Path(tmp) / f"{name}.yml"
        path.write_text(yaml.safe_dump({"name": name, **fields}, sort_keys=False))
        return load_compute(source=path)
