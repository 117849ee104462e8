"""Data assets registered in a local workspace (`az ml data create`): each version a record,
WS/data/NAME/VERSION.json, of a copy of the content kept by its digest in WS/data/.content, so
editing the source later changes no registered version and equal content is kept once."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from .. import fingerprint
from ..data import DataAsset
from ..errors import UserError
from ..fingerprint import SKIP_DIRS

CONTENT = ".content"


def snapshot(src: Path, dest: Path, symlinks: bool = True) -> None:
    """A copy of `src` (a folder or a file, which goes inside `dest`) without caches, VCS folders,
    pipes or sockets, as the fingerprint skips them."""
    skipped = shutil.ignore_patterns(*SKIP_DIRS, "*.pyc")

    def ignore(folder, names):
        special = set()
        for n in names:
            p = os.path.join(folder, n)
            if not (symlinks and os.path.islink(p)) and not (os.path.isfile(p) or os.path.isdir(p)):
                special.add(n)  # a pipe, a socket, a broken link: reading it may never end
        return skipped(folder, names) | special

    if src.is_dir():
        shutil.copytree(src, dest, symlinks=symlinks, ignore=ignore)
    else:
        dest.mkdir(parents=True)
        shutil.copy2(src, dest)


def register(root: Path, asset: DataAsset, version: str, planned: str) -> dict:
    """Version `version` of `asset`: its content copied in (kept once per content), its record
    written last (atomically). `planned` is the asset's digest (a prefix) as the plan saw it:
    content that changed since is refused, so what is registered is what the plan showed."""
    store, src = root / "data", asset.local
    if src is None:  # a URI, registered as it is (as on Azure ML)
        named = {"name": asset.name, "version": version, "type": asset.type, "path": asset.path}
        return _write(root, {**named, "created": time.time_ns()})
    digest, path = keep(
        store,
        src,
        lambda copy: fingerprint.data(dataclasses.replace(asset, local=copy)).startswith(planned),
        f"data.{asset.name}",
    )
    record: dict = {
        "name": asset.name,
        "version": version,
        "type": asset.type,
        "path": str(path),
        "content": digest,
        "source": str(src),
        "created": time.time_ns(),
    }
    return _write(root, record)


def keep(
    store: Path, src: Path, as_planned: Callable[[Path], bool], address: str
) -> tuple[str, Path]:
    """A copy of `src` in `store`/.content, kept by its digest (equal content once): (the digest,
    where the copy of `src` is). Content that `as_planned` refuses (it changed since the plan) is
    not kept."""
    tmp = store / CONTENT / f".tmp-{uuid.uuid4().hex}"
    snapshot(src, tmp, symlinks=False)
    copy = tmp / src.name if src.is_file() else tmp
    if not as_planned(copy):
        shutil.rmtree(tmp)
        raise UserError(f"{address}: {src} changed since the plan; run mlrun plan again")
    digest = fingerprint.tree_digest(copy)
    content = store / CONTENT / digest
    if content.exists():
        shutil.rmtree(tmp)
    else:
        os.replace(tmp, content)
    return digest, content / src.name if src.is_file() else content


def _write(root: Path, record: dict) -> dict:
    out = record_path(root, record["name"], record["version"])
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(f".{out.name}.tmp")
    part.write_text(json.dumps(record, indent=2))
    os.replace(part, out)
    return record


def record_path(root: Path, name: str, version: str) -> Path:
    return root / "data" / name / f"{version}.json"


def versions(root: Path, name: str) -> list[dict]:
    """The registered versions of `name`, oldest first."""
    records = []
    for path in (root / "data" / name).glob("*.json"):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # another apply is writing it
    return sorted(records, key=lambda r: r["created"])


def path_of(root: Path, name: str, version: str | None) -> Path:
    """Where version `version` (None: the latest) of data asset `name` is."""
    known = versions(root, name)
    found = [r for r in known if version is None or r["version"] == version]
    if not found:
        have = ", ".join(r["version"] for r in known) or "none"
        raise UserError(
            f"data asset {name} has no version {version or '(any)'} in this workspace "
            f"(registered: {have})"
        )
    return Path(found[-1]["path"])


def remove(root: Path, name: str) -> None:
    """Every version of `name`, and the content no other version keeps."""
    store = root / "data"
    shutil.rmtree(store / name, ignore_errors=True)
    kept = {
        r["content"]
        for folder in (store.iterdir() if store.exists() else ())
        if folder.name != CONTENT
        for r in versions(root, folder.name)
        if "content" in r
    }
    for content in (store / CONTENT).iterdir() if (store / CONTENT).exists() else ():
        if content.name not in kept:
            shutil.rmtree(content, ignore_errors=True)
