"""The workspace's completed pipeline steps, by fingerprint: what step reuse looks up.

A step whose fingerprint (its own parts and its upstream steps' fingerprints) matches a completed
step run is reused, as Azure ML reuses steps: its outputs are handed on instead of running it
again. One small JSON file per fingerprint under the workspace's `steps/`, written atomically by
the pipeline controller once the step's run is finalized, so a crash leaves either a complete
record or none. Stdlib only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class StepCache:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def get(self, fingerprint: str) -> dict | None:
        """The completed run for `fingerprint`, if its outputs are still there."""
        try:
            record = json.loads((self.folder / f"{fingerprint}.json").read_text())
        except (OSError, ValueError):
            return None
        outputs = record.get("outputs")
        if not isinstance(outputs, dict) or not all(Path(p).exists() for p in outputs.values()):
            return None
        return record

    def put(self, fingerprint: str, record: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{fingerprint}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, self.folder / f"{fingerprint}.json")

    def reusable(self, fingerprints: list[str]) -> dict[str, str]:
        return {fp: r["run_id"] for fp in fingerprints if (r := self.get(fp)) is not None}
