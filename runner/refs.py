"""What a spec's strings refer to: `${{...}}` expressions, and paths that are local or remote.
Shared by loading, checking and running a spec; stdlib only."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

if TYPE_CHECKING:
    from .yamldoc import Doc

EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]", re.S)  # an optional part of a command
# left for Azure ML: a job's own names; ${{default_datastore}} in a pipeline output's path
LEFT_FOR_JOB = ("inputs", "outputs", "search_space", "name", "parent", "default_datastore")
NAMESPACES = ("vars", "env") + LEFT_FOR_JOB
LOCAL_INPUT_TYPES = (
    "uri_file",
    "uri_folder",
    "mlflow_model",
    "custom_model",
    "mltable",
    "triton_model",
)
REMOTE = re.compile(r"^(azureml|https?|wasbs?|abfss?|adl|gs|s3):", re.I)
MODEL_INPUT_TYPES = ("mlflow_model", "custom_model", "triton_model")
_VERSIONED = re.compile(
    r"^azureml:(?P<name>[^:@/]+)(?::(?P<version>[^:@/]+)|@(?P<label>[\w.-]+))?$"
)


def parse_ref(ref: Any) -> tuple[str, str | None] | None:
    """`azureml:NAME:VERSION` -> (NAME, VERSION); `azureml:NAME@latest` (a label) or
    `azureml:NAME` -> (NAME, None); anything else (a URI such as azureml://datastores/..., a
    registry's, a path) -> None."""
    m = _VERSIONED.match(ref) if isinstance(ref, str) else None
    return (m["name"], m["version"]) if m else None


def model_ref(value: Any) -> tuple[str, str | None] | None:
    """A job input that is a registered model (`type: mlflow_model|custom_model|triton_model`,
    path `azureml:NAME:VERSION` or `@latest`): (NAME, VERSION or None for the latest)."""
    if isinstance(value, dict) and value.get("type") in MODEL_INPUT_TYPES:
        return parse_ref(value.get("path"))
    return None


def unresolved(value: Any) -> bool:
    """Whether a string still holds a ${{vars.*}}, ${{env.*}} or unknown expression: one loading
    could not resolve and reported (another target's env aside), so checks of it only repeat
    that."""
    return isinstance(value, str) and any(
        m.group(1).partition(".")[0] not in LEFT_FOR_JOB for m in EXPR.finditer(value)
    )


def substitute(
    command: str, values: Mapping[tuple[str, str], str], blank: tuple[str, ...] = ()
) -> str:
    """`${{ns.name}}` in a job's command replaced by its value, shell-quoted; a name of a `blank`
    namespace without a value (an optional input left out) becomes '', anything else stays."""

    def sub(m: re.Match) -> str:
        ns, _, name = m.group(1).partition(".")
        if (ns, name) in values:
            return shlex.quote(values[(ns, name)])
        return "''" if ns in blank else m.group(0)

    return EXPR.sub(sub, command)


def relative_to(doc: Doc, path: tuple, ref: str) -> Path:
    """`ref` resolved against the folder of the file that holds the value at `path`."""
    return Path(os.path.abspath(Path(doc.where(path)[0]).parent / os.path.expanduser(ref)))


def is_local(ref: Any) -> TypeGuard[str]:
    """Whether `ref` is a local path (not azureml:, a URL or a cloud store)."""
    return isinstance(ref, str) and not REMOTE.match(ref)


def run_block(job: Any) -> tuple:
    """Where a job's code and environment are: () for a command job, ("trial",) for a sweep's,
    ("task",) for a parallel job's."""
    kind = job.get("type") if isinstance(job, dict) else None
    blocks: dict[Any, tuple[str, ...]] = {"sweep": ("trial",), "parallel": ("task",)}
    return blocks.get(kind, ()) if isinstance(kind, str) else ()  # the schema says what else


def mapping(value: Any) -> dict:
    """`value` if it is a mapping, else an empty one (its shape is the schema check's to report)."""
    return value if isinstance(value, dict) else {}


def local_inputs(data: dict) -> dict:
    """targets.local.inputs: remote input paths mapped to local stand-ins."""
    targets = mapping(data.get("targets"))
    local = mapping(targets.get("local"))
    return mapping(local.get("inputs"))


def path_entries(doc: Doc, data: Any, section: str) -> Iterator[tuple[str, dict, str, Path | None]]:
    """The entries of a section of assets (`data:`, `models:`) that have a path: (name, block,
    the path as written, the local file or folder it is, if it is one)."""
    for name, block in mapping(mapping(data).get(section)).items():
        if isinstance(block, dict) and isinstance(block.get("path"), str):
            ref = block["path"]
            local = (
                relative_to(doc, (section, name, "path"), ref)
                if is_local(ref) and not unresolved(ref)
                else None
            )
            yield name, block, ref, local


def output_file(name: str, decl: Any) -> str | None:
    """The file a `type: uri_file` output is, as a job writes it (`echo hi > ${{outputs.x}}`):
    its path's last part, or the output's name where the path gives none (or an expression);
    None for any other output, which is a folder."""
    if not (isinstance(decl, dict) and decl.get("type") == "uri_file"):
        return None
    path = decl.get("path")
    last = path.rstrip("/").rpartition("/")[2] if isinstance(path, str) else ""
    return last if last and not EXPR.search(last) and last not in (".", "..") else name


def output_files(outputs: Any) -> dict[str, str]:
    """A job's `type: uri_file` outputs: name -> the file's name (see output_file)."""
    return {n: f for n, d in mapping(outputs).items() if (f := output_file(n, d)) is not None}


def optional_parts(command: str, given: set[str]) -> str:
    """`$[[ ... ]]`: kept (without the brackets) when every input it names is given, else
    dropped, as Azure ML does for optional inputs."""

    def keep(m: re.Match) -> str:
        names = {
            e.group(1).partition(".")[2]
            for e in EXPR.finditer(m.group(1))
            if e.group(1).startswith("inputs.")
        }
        return m.group(1) if names <= given else ""

    return OPTIONAL.sub(keep, command)
