"""The user's cache folder (`$XDG_CACHE_HOME/mlrun`, else `~/.cache/mlrun`), and a record of facts
worth remembering between runs: a fact is a digest that names everything it depends on."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

KEEP = 256  # facts of one kind kept; the oldest go first


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlrun"


def digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big") + part)
    return h.hexdigest()


def canonical(data: Any) -> bytes | None:
    """`data` as JSON bytes that only equal data compare equal to, or None when it holds anything
    JSON would blur (a key that is not a string, a value of another type than JSON's)."""

    def plain(v: Any) -> bool:
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        if isinstance(v, list):
            return all(plain(x) for x in v)
        return v is None or isinstance(v, (str, int, float, bool))

    try:
        if not plain(data):
            return None
        return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
    except (ValueError, RecursionError):  # NaN, or deeper than JSON goes
        return None


def known(kind: str, fact: str) -> bool:
    return (cache_dir() / kind / fact).exists()


def remember(kind: str, fact: str) -> None:
    """Record `fact` (an empty file named for it); never fails: a cache is only a shortcut."""
    folder = cache_dir() / kind
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / fact).touch()
        entries = list(folder.iterdir())
        if len(entries) > KEEP:
            entries.sort(key=lambda p: p.stat().st_mtime)
            for old in entries[: len(entries) - KEEP]:
                old.unlink(missing_ok=True)
    except OSError:
        pass
