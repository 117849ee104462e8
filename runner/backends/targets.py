"""What each target is, for the modules that must not load its backend (validate, spec, cost,
plan): where its jobs run, whether its computes bill, and its own checks of a spec. Cheap to
import: no SDK, no MLflow. The backends themselves are made by context.backend_for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from ..refs import mapping
from ..yamldoc import Doc


@dataclass(frozen=True)
class Target:
    name: str
    # Its jobs run on this machine: their inputs are read and their environments built here, so
    # a remote input needs a stand-in (targets.local.inputs) and a Docker context cannot build.
    runs_here: bool
    # Its computes cost money while they run (else a plan prices them as they would on Azure).
    bills: bool
    # Its own checks of a spec (what it needs to reach the service), after the common ones.
    check: Callable[[Doc, dict[str, Any]], None] | None = None
    # The module that finds labs past their expiry by their tags and deletes them
    # (`expired_labs`, `destroy_group`: mlrun destroy --expired), where the target tags them.
    labs: str | None = None

    def section(self, data: Any) -> dict[str, Any]:
        """The spec's `targets.<name>` block ({} if none)."""
        return mapping(mapping(mapping(data).get("targets")).get(self.name))

    def expired_labs(self) -> Any:
        """The `labs` module (imported now: it brings the target's SDKs)."""
        if self.labs is None:
            raise UserError("--expired finds labs on Azure by their tags: add --target azure")
        import importlib

        return importlib.import_module(self.labs)


def _check_azure(doc: Doc, data: dict[str, Any]) -> None:
    from ..account import default_subscription

    azure = AZURE.section(data)
    if not azure.get("subscription_id") and not azure.get("config") and not default_subscription():
        doc.problem(
            ("targets",),
            "the azure target needs a subscription: targets.azure.subscription_id, "
            "targets.azure.config (a config.json), AZURE_SUBSCRIPTION_ID, or the Azure CLI's "
            "default one (az login)",
            key=True,
        )
    for name, job in mapping(data.get("jobs")).items():
        if mapping(job).get("type") == "parallel":
            doc.problem(
                ("jobs", name, "type"),
                "Azure ML runs a parallel job only as a pipeline step (azure-ai-ml's load_job: "
                "'Unsupported job type: parallel'): put it under a type: pipeline job's jobs",
            )
    ws = mapping(data.get("workspace"))
    for key in ("resource_group", "location"):
        if not ws.get(key) and not azure.get("config"):
            doc.problem(("workspace",), f"the azure target needs workspace.{key}", key=True)


LOCAL = Target("local", runs_here=True, bills=False)
AZURE = Target(
    "azure", runs_here=False, bills=True, check=_check_azure, labs="runner.backends.azure.labs"
)
TARGETS = {t.name: t for t in (LOCAL, AZURE)}


def get(name: str) -> Target:
    found = TARGETS.get(name)
    if found is None:
        raise UserError(f"unknown target '{name}' (targets: {', '.join(TARGETS)})")
    return found
