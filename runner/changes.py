"""What a plan is made of, as data: an action, an address (kind and name), a change, the plan
itself (to and from its JSON), and the fields of a workspace and a compute that plans compare.
Below the diff (plan.py), the views and the backends, which all read changes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

FORMAT_VERSION = 1


class Action(enum.StrEnum):
    """What a change does; its value is the plan's symbol, its `word` what `plan --json` says."""

    CREATE = "+"
    UPDATE = "~"
    REPLACE = "-/+"
    DESTROY = "-"
    RUN = ">"
    WAIT = "*"
    NOOP = "="

    @property
    def word(self) -> str:
        return self.name.lower()

    @classmethod
    def from_word(cls, word: str) -> Action:
        return cls[word.upper()]

    def __str__(self) -> str:
        return self.value


CREATE, UPDATE, REPLACE, DESTROY, RUN, WAIT, NOOP = Action  # short names, in definition order


class Kind(enum.StrEnum):
    """What an address names, in the order apply creates them (destroy: the reverse)."""

    RESOURCE_GROUP = "resource_group"
    WORKSPACE = "workspace"
    COMPUTE = "compute"
    DATASTORE = "datastore"  # before the data assets and jobs that use its paths
    ENVIRONMENT = "environment"
    COMPONENT = "component"
    DATA = "data"
    JOB = "job"
    MODEL = "model"  # after the jobs: a model from a job is registered once the job completes
    ENDPOINT = "endpoint"  # after the models it deploys
    DEPLOYMENT = "deployment"  # ENDPOINT/NAME
    INVOKE = "invoke"  # an endpoint's call once deployed
    SCHEDULE = "schedule"  # made last, deleted first: it fires nothing while the rest changes

    def __str__(self) -> str:
        return self.value


class Address(str):
    """`compute.aml-cluster`: a kind and a name. It is its text (state keys, JSON, messages) with
    the two parts parsed once, so no caller splits strings."""

    kind: Kind
    name: str

    def __new__(cls, kind: Kind | str, name: str) -> Address:
        kind = Kind(kind)
        self = super().__new__(cls, f"{kind.value}.{name}")
        self.kind, self.name = kind, name
        return self

    def __getnewargs__(self) -> tuple:  # copies and pickles rebuild it from its parts
        return (self.kind.value, self.name)

    @classmethod
    def parse(cls, text: str) -> Address:
        if isinstance(text, Address):
            return text
        kind, sep, name = str(text).partition(".")
        if not sep or kind not in Kind._value2member_map_:
            raise ValueError(f"not an address: {text!r}")
        return cls(kind, name)


VERSIONED = (
    Kind.ENVIRONMENT,
    Kind.COMPONENT,
    Kind.DATA,
)  # assets whose versions are immutable (see _asset_change)
IDLE = "idle_time_before_shutdown_minutes"
IDLE_NOTE = f"default; {IDLE}: 0 opts out"
ACTIVE = ("NotStarted", "Preparing", "Queued", "Starting", "Running", "Finalizing")
WORKSPACE_FIELDS = ("location", "resource_group", "display_name", "description", "tags")
COMPUTE_FIELDS = (
    "type",
    "size",
    "min_instances",
    "max_instances",
    "idle_time_before_scale_down",
    "tier",
    "idle_time_before_shutdown_minutes",
    "idle_time_before_shutdown",
    "location",
    "description",
    "tags",
)


@dataclass(frozen=True)
class Change:
    address: Address
    action: Action
    reason: str
    before: Any = None
    after: Any = None

    def __post_init__(self) -> None:  # an address given as text is parsed once, here
        object.__setattr__(self, "address", Address.parse(self.address))
        object.__setattr__(self, "action", Action(self.action))

    def to_dict(self) -> dict:
        return {
            "address": str(self.address),
            "action": self.action.word,
            "reason": self.reason,
            "before": self.before,
            "after": self.after,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Change:
        return cls(
            Address.parse(data["address"]),
            Action.from_word(data["action"]),
            data["reason"],
            data.get("before"),
            data.get("after"),
        )


@dataclass
class Plan:
    target: str
    spec: str
    digest: str
    lineage: str
    serial: int
    variables: dict
    changes: list[Change] = field(default_factory=list)
    format_version: int = FORMAT_VERSION

    def count(self, action: Action) -> int:
        return sum(c.action == action for c in self.changes)

    @property
    def has_changes(self) -> bool:
        return any(c.action != NOOP for c in self.changes)

    def summary(self) -> dict:
        return {
            "add": self.count(CREATE),
            "change": self.count(UPDATE),
            "replace": self.count(REPLACE),
            "destroy": self.count(DESTROY),
            "run": self.count(RUN),
            "wait": self.count(WAIT),
        }

    def to_dict(self) -> dict:
        return {
            "format_version": self.format_version,
            "target": self.target,
            "spec": self.spec,
            "digest": self.digest,
            "state": {"lineage": self.lineage, "serial": self.serial},
            "variables": self.variables,
            "changes": [c.to_dict() for c in self.changes],
            "summary": self.summary(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        return cls(
            target=data["target"],
            spec=data["spec"],
            digest=data["digest"],
            lineage=data["state"]["lineage"],
            serial=data["state"]["serial"],
            variables=data["variables"],
            changes=[Change.from_dict(c) for c in data["changes"]],
            format_version=data["format_version"],
        )
