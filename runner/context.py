"""What a command works on: the spec, its state for a target, and the target's backend."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from . import plan as planning, spec as spec_mod
from .backends import base
from .state import State, state_path


@dataclass
class Context:
    spec: spec_mod.Spec
    state: State
    backend: base.Backend
    target: str

    def refresh(self) -> dict:
        return self.backend.refresh(self.state.snapshot())

    def plan(self, force=(), only=None) -> tuple[planning.Plan, dict]:
        model = planning.desired(self.spec, self.target)
        return planning.make_plan(model, self.refresh(), target=self.target, spec=str(self.spec.path.resolve()),
                                  force=tuple(force), only=set(only) if only else None), model


def open_context(path: str | Path, target: str = "local", overrides: Mapping[str, Any] | None = None,
                 runs: bool = True) -> Context:
    """Load the spec with the state's generated variables, the state, and the backend.
    `runs`: the spec is loaded to run on the target (see spec.load)."""
    spec = spec_mod.load(path, target=target, overrides=overrides, runs=runs)
    state = State.load(state_path(spec.path, spec.name, target), spec.name, target)
    kept = state.data["variables"]
    if spec.generated and any(name in kept for name in spec.generated):
        spec = spec_mod.load(path, target=target, overrides=overrides, generated=kept, runs=runs)
    return Context(spec, state, base.get(target, spec), target)
