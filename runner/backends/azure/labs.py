"""Lab expiry on Azure: the tags that mark what a lab made (mlrun-lab, mlrun-expires), put again
on its resource group (apply --extend), and the expired labs found by them across a subscription
and destroyed (`mlrun destroy --expired`). Every SDK is imported lazily, inside the calls."""

from __future__ import annotations

from .client import Session, _arm
from .errors import plain_errors


def expiry_tags(lab: str, when) -> dict:
    """The tags of lab `lab` expiring at `when` (a UTC datetime, or None: no tags)."""
    from ...expiry import TAG_EXPIRES, TAG_LAB, shown

    return {TAG_LAB: lab, TAG_EXPIRES: shown(when)} if when else {}


def retag(session: Session, lab_tags: dict, created_group: bool) -> None:
    """The lab's tags on its resource group (apply --extend), when mlrun made the group."""
    if lab_tags and created_group and session.resource_group:
        with plain_errors(f"resource_group.{session.resource_group}"):
            session.arm().resource_groups.update(session.resource_group, {"tags": lab_tags})


def expired_labs(subscription: str, now) -> list[dict]:
    """The resource groups of labs whose expiry (their mlrun-expires tag) has passed:
    {name, lab, expires} each (`mlrun destroy --expired`)."""
    from azure.identity import DefaultAzureCredential

    from ...expiry import TAG_EXPIRES, TAG_LAB, moment

    arm = _arm(DefaultAzureCredential(), subscription)
    found = []
    with plain_errors("resource groups"):
        for rg in arm.resource_groups.list(filter=f"tagName eq '{TAG_EXPIRES}'"):
            tags = rg.tags or {}
            when = moment(tags.get(TAG_EXPIRES))
            if TAG_LAB in tags and when is not None and when <= now:
                found.append({"name": rg.name, "lab": tags[TAG_LAB], "expires": tags[TAG_EXPIRES]})
    return found


def destroy_group(subscription: str, name: str) -> list[str]:
    """Delete an expired lab's resource group, its online endpoints first: they bill by the hour
    until deleted, and a group's deletion can take many minutes. The endpoints deleted."""
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    from .client import _quiet_sdk

    credential, gone = DefaultAzureCredential(), []
    _quiet_sdk()
    with plain_errors(f"resource_group.{name}"):
        group = MLClient(
            credential, subscription, name, enable_telemetry=False, show_progress=False
        )
        for ws in group.workspaces.list(scope="resource_group"):
            ml = MLClient(
                credential, subscription, name, ws.name, enable_telemetry=False, show_progress=False
            )
            for endpoint in ml.online_endpoints.list():
                ml.online_endpoints.begin_delete(name=endpoint.name).result()
                gone.append(f"{ws.name}/{endpoint.name}")
        _arm(credential, subscription).resource_groups.begin_delete(name).result()
    return gone
