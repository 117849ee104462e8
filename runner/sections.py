"""The spec's typed sections, built once per load: validate builds them as it checks the document
(each section read once, its problems said as it goes), and spec.load makes the Spec of them. The
YAML document (yamldoc.Doc) stays YAML with positions; nothing typed is parked on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .data import DataAsset
    from .datastores import Datastore
    from .endpoints import Endpoint
    from .environments import Environment
    from .models import Model
    from .pipelines import Component, Pipeline
    from .schedules import Schedule

Where = tuple[Any, ...]  # a path in the spec: ("jobs", "train"), ("components", "c", "environment")


@dataclass
class Sections:
    data: dict[str, DataAsset] = field(default_factory=dict)  # data: (az ml data create)
    models: dict[str, Model] = field(default_factory=dict)  # models: (az ml model create)
    components: dict[str, Component] = field(default_factory=dict)  # components:
    # each Environment by where the spec defines or names it: an `environments:` entry, a job or
    # sweep trial, a component, a pipeline step
    environments: dict[Where, Environment] = field(default_factory=dict)
    pipelines: dict[Where, Pipeline] = field(default_factory=dict)  # by the pipeline job's path
    endpoints: dict[str, Endpoint] = field(default_factory=dict)  # endpoints: (online, batch)
    datastores: dict[str, Datastore] = field(default_factory=dict)  # datastores: and built-in
    schedules: dict[str, Schedule] = field(default_factory=dict)  # schedules: (az ml schedule)
