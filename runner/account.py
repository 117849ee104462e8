"""Which Azure subscription a lab uses when its spec names none, as Terraform's azurerm provider
finds it: AZURE_SUBSCRIPTION_ID, else the Azure CLI's default subscription (its profile,
azureProfile.json under AZURE_CONFIG_DIR or ~/.azure). Stdlib only: validate asks it."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path


def default_subscription(env: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """(subscription id, where it came from, in words), or None when neither is there."""
    env = os.environ if env is None else env
    if env.get("AZURE_SUBSCRIPTION_ID"):
        return env["AZURE_SUBSCRIPTION_ID"], "AZURE_SUBSCRIPTION_ID"
    folder = Path(env.get("AZURE_CONFIG_DIR") or Path.home() / ".azure")
    try:  # the CLI writes it with a byte order mark
        profile = json.loads((folder / "azureProfile.json").read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return None
    for sub in profile.get("subscriptions") or [] if isinstance(profile, dict) else []:
        if isinstance(sub, dict) and sub.get("isDefault") and sub.get("id"):
            name = f" '{sub['name']}'" if sub.get("name") else ""
            return str(sub["id"]), f"the Azure CLI's default subscription{name} (az account show)"
    return None
