"""Models (the spec's `models:`, az ml model create): a local folder, or what a job makes: a named
output, `${{jobs.JOB.outputs.NAME}}[/PATH]`, or a folder of its run's artifacts,
`${{jobs.JOB.artifacts}}/PATH`. Only a model's path may refer to a job so. Stdlib only: validate
reads them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .refs import path_entries

if TYPE_CHECKING:
    from .yamldoc import Doc

TYPES = ("mlflow_model", "custom_model", "triton_model")
DEFAULT_TYPE = "custom_model"  # as az ml model create has it
ARTIFACTS = "artifacts"
FROM_JOB = re.compile(
    r"^\$\{\{\s*jobs\.(?P<job>[\w.-]+?)\.(?:outputs\.(?P<output>[\w.-]+)|(?P<artifacts>artifacts))"
    r"\s*\}\}(?:/(?P<sub>.*?))?/?$"
)


def refers_to_job(expr: str) -> bool:
    """Whether `${{expr}}` is a job's output or artifacts (`jobs.JOB....`)."""
    return expr.startswith("jobs.")


@dataclass(frozen=True)
class FromJob:
    """Where a model comes from in a job's run: a named output (`output`), else its artifacts."""

    job: str
    output: str | None  # None: the run's artifacts
    sub: str  # a path inside it ('' for the whole output)

    @property
    def within(self) -> str:
        """`outputs/model_output`, `artifacts/model`: the part of the run, as plans say it."""
        head = f"outputs/{self.output}" if self.output else ARTIFACTS
        return f"{head}/{self.sub}" if self.sub else head

    @property
    def artifact_path(self) -> str:
        """The path in the run's artifacts (an output is logged under its name)."""
        parts = [self.output or "", self.sub]
        return "/".join(p for p in parts if p)


def parse_source(path: Any) -> FromJob | None:
    m = FROM_JOB.match(path) if isinstance(path, str) else None
    if not m:
        return None
    return FromJob(m.group("job"), m.group("output"), (m.group("sub") or "").strip("/"))


@dataclass(frozen=True)
class Model:
    name: str
    version: str | None  # None: numbered by mlrun, a new one per run (or content)
    type: str
    path: str  # as written
    local: Path | None  # a local folder or file
    job: FromJob | None  # what a job makes
    fields: dict = field(default_factory=dict)

    @property
    def source(self) -> str:
        """`job.train artifacts/model`, or the path as written."""
        return f"job.{self.job.job} {self.job.within}" if self.job else self.path

    @property
    def registry_fields(self) -> dict:
        """What a registered version carries besides its content (a change makes a new one)."""
        keep = ("type", "description", "tags", "properties", "stage")
        return {k: self.fields[k] for k in keep if k in self.fields} | {"type": self.type}


def read(doc: Doc, data: Any) -> dict[str, Model]:
    """The `models:` section as Models (what the schema check let through)."""
    models = {}
    for name, block, ref, local in path_entries(doc, data, "models"):  # a job's: not local
        version = block.get("version")
        job = parse_source(ref)
        models[name] = Model(
            name,
            None if version is None else str(version),
            block.get("type", DEFAULT_TYPE),
            ref,
            local,
            job,
            block,
        )
    return models
