"""Datastores on Azure (`az ml datastore create`): the spec's made with
`ml_client.datastores.create_or_update`, its credential set on the entity in memory only (sent in
that request, never kept by mlrun), read back for refresh (without secrets: the service keeps
them), and deleted by destroy (only those mlrun made; never the workspace's own)."""

from __future__ import annotations

import re
from typing import Any

from ...datastores import FIELDS, Datastore
from .client import Session, _sdk_stderr

KINDS = {  # the SDK's credential classes, in mlrun's words
    "AccountKeyConfiguration": "account_key",
    "SasTokenConfiguration": "sas_token",
    "ServicePrincipalConfiguration": "service_principal",
    "NoneCredentialConfiguration": "none",
}


def _credentials(store: Datastore) -> Any:
    from azure.ai.ml.entities import (
        AccountKeyConfiguration,
        SasTokenConfiguration,
        ServicePrincipalConfiguration,
    )

    creds, kind = store.credentials, store.credential_kind
    if kind == "account_key":
        return AccountKeyConfiguration(account_key=creds["account_key"])
    if kind == "sas_token":
        return SasTokenConfiguration(sas_token=creds["sas_token"])
    if kind == "service_principal":
        extra = {k: creds[k] for k in ("authority_url", "resource_url") if creds.get(k)}
        return ServicePrincipalConfiguration(
            tenant_id=creds.get("tenant_id"),
            client_id=creds.get("client_id"),
            client_secret=creds.get("client_secret"),
            **extra,
        )
    return None


def entity(store: Datastore) -> Any:
    """The SDK's datastore for `store`, with its credential (in memory)."""
    from azure.ai.ml import entities

    classes = {
        "azure_blob": entities.AzureBlobDatastore,
        "azure_data_lake_gen2": entities.AzureDataLakeGen2Datastore,
        "azure_file": entities.AzureFileDatastore,
        "azure_data_lake_gen1": entities.AzureDataLakeGen1Datastore,
    }
    fields = {k: v for k, v in store.fields.items() if v is not None}
    if "tags" in fields:
        fields["tags"] = {str(k): str(v) for k, v in fields["tags"].items()}
    credentials = _credentials(store)
    if credentials is not None:
        fields["credentials"] = credentials
    return classes[store.type](name=store.name, **fields)


def create(session: Session, store: Datastore) -> dict:
    with _sdk_stderr():
        made = session.ml().datastores.create_or_update(entity(store))
    return {"id": made.id}


def live(session: Session, name: str) -> dict | None:
    """The datastore as Azure has it, in the spec's words (its credential's kind, not its
    value); None when there is none."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        ds = session.ml().datastores.get(name)
    except ResourceNotFoundError:
        return None
    out = {k: getattr(ds, k, None) for k in FIELDS}
    out = {k: v for k, v in out.items() if v is not None}
    kind = getattr(ds.type, "value", ds.type)  # DatastoreType.AZURE_BLOB: "AzureBlob"
    out["type"] = re.sub(r"(?<!^)(?=[A-Z])", "_", str(kind)).lower()  # as the spec says it
    out["credentials"] = KINDS.get(type(ds.credentials).__name__, "none")
    return out


def delete(session: Session, name: str) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        session.ml().datastores.delete(name)
    except ResourceNotFoundError:
        pass
