"""Data assets (the spec's `data:`, az ml data create) and the `azureml:NAME:VERSION` and
`azureml:NAME@latest` references that name them. Stdlib only: validate reads them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .azure_only import IMPORT_TYPES, import_source
from .refs import parse_ref, path_entries, relative_to

if TYPE_CHECKING:
    from .yamldoc import Doc

TYPES = ("uri_file", "uri_folder", "mltable")
DEFAULT_TYPE = "uri_folder"  # as az ml data create has it


@dataclass(frozen=True)
class DataAsset:
    name: str
    version: str | None  # None: numbered by mlrun as its content changes
    type: str
    path: str  # as written
    local: Path | None  # the content, when path is local
    fields: dict = field(default_factory=dict)

    @property
    def imported(self) -> bool:
        """A data import (`source:`): only Azure runs it, into `path`."""
        return import_source(self.fields) is not None

    def resolves(self, version: str | None) -> bool:
        """Whether a reference to `version` (None: @latest) is to the spec's own definition of
        this asset (else to an older version, registered before)."""
        return version is None or version == self.version


def input_source(
    doc: Doc, ref: Any, assets: dict[str, DataAsset], stand_ins: dict
) -> tuple[Path | None, tuple[str, str | None] | None] | None:
    """What an input whose path names one of the spec's data assets reads: (the content, as the
    plan digests it; (name, version), whose registered copy a local run reads). An older version
    than the spec defines: (None, (name, version)), registered before. A remote asset: its local
    stand-in (for the reference or the asset's URI, in targets.local.inputs), else (None, None).
    None when `ref` names no data asset of the spec."""
    named = parse_ref(ref)
    if named is None or named[0] not in assets:
        return None
    asset = assets[named[0]]
    if not asset.resolves(named[1]):
        return None, named
    if asset.local is not None:
        return asset.local, named
    for key in (ref, asset.path):
        if key in stand_ins:
            return relative_to(doc, ("targets", "local", "inputs", key), stand_ins[key]), None
    return None, None


def read(doc: Doc, data: Any) -> dict[str, DataAsset]:
    """The `data:` section as DataAssets (what the schema check let through)."""
    assets = {}
    for name, block, ref, local in path_entries(doc, data, "data"):
        version = block.get("version")
        assets[name] = DataAsset(
            name,
            None if version is None else str(version),
            block.get("type") or IMPORT_TYPES.get(import_source(block) or "", DEFAULT_TYPE),
            ref,
            local,
            block,
        )
    return assets


def size(path: Path) -> tuple[int, int]:
    """(files, bytes) under `path` (a file: 1 and its size)."""
    if path.is_file():
        return 1, path.stat().st_size
    files = total = 0
    for root, _, names in os.walk(path):
        for n in names:
            files += 1
            total += os.path.getsize(os.path.join(root, n))
    return files, total


def shown_size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:,.0f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError


def summary(asset: DataAsset) -> str:
    """`10,001 rows, 511 KB` (rows of a .csv file), `3 files, 2 MB`: the local content in words."""
    if asset.local is None or not asset.local.exists():
        return asset.path
    files, total = size(asset.local)
    if asset.local.is_file():
        if asset.local.suffix.lower() == ".csv" and total <= 64 << 20:
            lines, last = 0, b"\n"
            with open(asset.local, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    lines, last = lines + block.count(b"\n"), block[-1:]
            lines += last != b"\n"  # a last line without its newline
            rows = max(lines - 1, 0)
            return f"{rows:,} row{'s' if rows != 1 else ''}, {shown_size(total)}"
        return shown_size(total)
    return f"{files:,} file{'s' if files != 1 else ''}, {shown_size(total)}"
