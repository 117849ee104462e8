"""Saved plans (mlrun plan --out, mlrun apply FILE): a Plan written as `plan --json` prints it,
read back, and checked against the plan made now before it is applied as it is."""

from __future__ import annotations

import json
from pathlib import Path

from .changes import Plan
from .errors import UserError
from .spec import SENSITIVE
from .state import atomic_write


def load(path: str) -> Plan | None:
    """The Plan saved in `path` if it is a plan file (a .json), else None (it is a spec)."""
    if not path.endswith(".json"):
        return None
    try:
        return Plan.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: not a plan file saved by mlrun plan --out ({e})") from None


def save(plan: Plan, path: str, costs: dict | None = None) -> None:
    """Written as `plan --json` prints it (with the lab's cost, which applying ignores)."""
    atomic_write(Path(path), json.dumps({**plan.to_dict(), "cost": costs}, indent=2) + "\n")


def reopen_variables(plan: Plan, given: dict, selected: bool = False) -> dict:
    """The variables to load the spec with again: the plan's, and the secret ones from --var
    (a plan never holds a secret). Any other --var, or jobs `selected` with --only or --force,
    are refused: the plan is applied as it is."""
    hidden = {k for k, v in plan.variables.items() if v == SENSITIVE}
    if selected or set(given) - hidden:
        raise UserError(
            "a saved plan is applied as it is: --only, --force and --var belong to mlrun plan"
        )
    return {**{k: v for k, v in plan.variables.items() if k not in hidden}, **given}


def check_current(saved: Plan, current: Plan, path: str) -> None:
    """Refuse the plan `saved` in `path` when `current` (planned now, under the lock) shows that
    the spec, its files or the state moved since it was made."""
    if saved.digest != current.digest:
        raise UserError(
            f"the saved plan {path} is stale: the spec or its files changed "
            "since it was made; run mlrun plan again"
        )
    if (saved.lineage, saved.serial) != (current.lineage, current.serial):
        raise UserError(
            f"the saved plan {path} is stale: the state changed since it was "
            "made; run mlrun plan again"
        )
