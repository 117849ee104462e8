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


def destroy_group(subscription: str, name: str) -> None:
    from azure.identity import DefaultAzureCredential

    with plain_errors(f"resource_group.{name}"):
        _arm(DefaultAzureCredential(), subscription).resource_groups.begin_delete(name).result()
