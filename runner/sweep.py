"""Sweep jobs (type: sweep): sampling the trials, and what the local target does differently.

Pure and stdlib only: the local backend samples the trials when it submits a sweep and hands them
to the sweep's controller (backends/sweep_controller.py), which runs them.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Protocol


class SweepJob(Protocol):
    """What `notes` reads of a spec.Job (named so, not imported: spec imports pipelines, which
    import this module)."""

    name: str

    @property
    def is_sweep(self) -> bool: ...

    @property
    def sampling(self) -> dict: ...

    @property
    def limits(self) -> dict: ...

    @property
    def early_termination(self) -> dict | None: ...


DEFAULT_RANDOM_TRIALS = 10  # a random sweep without limits.max_total_trials, locally


# --- sampling ------------------------------------------------------------------------------------


def local_algorithm(sampling: dict) -> str:
    """The algorithm used locally: grid or random (bayesian is random here)."""
    return "grid" if sampling.get("type") == "grid" else "random"


def trial_count(search_space: dict, sampling: dict, limits: dict) -> int:
    limit = limits.get("max_total_trials")
    if local_algorithm(sampling) == "grid":
        size = math.prod(len(p.get("values") or []) for p in search_space.values())
        return min(size, limit) if limit else size
    return limit or DEFAULT_RANDOM_TRIALS


def sample(search_space: dict, sampling: dict, limits: dict) -> list[dict]:
    """The trials' values, in order: grid gives the cartesian product of the choices (in the
    order the spec lists them), random draws each parameter (the same trials for the same seed)."""
    names = list(search_space)
    count = trial_count(search_space, sampling, limits)
    if local_algorithm(sampling) == "grid":
        combos = itertools.product(*(search_space[n]["values"] for n in names))
        return [dict(zip(names, c, strict=True)) for c in itertools.islice(combos, count)]
    rng = random.Random(sampling.get("seed"))
    return [{n: draw(rng, search_space[n]) for n in names} for _ in range(count)]


def draw(rng: random.Random, p: dict):
    """One value of a search-space parameter (Azure ML's distributions: loguniform's bounds are
    exponents, lognormal's mu and sigma those of the logarithm, q rounds to a multiple of q)."""
    kind = p["type"]
    if kind == "choice":
        return rng.choice(p["values"])
    if kind == "randint":
        return rng.randrange(int(p["upper"]))
    base = kind[1:] if kind.startswith("q") else kind
    if base in ("uniform", "loguniform"):
        x = rng.uniform(p["min_value"], p["max_value"])
    else:
        x = rng.gauss(p["mu"], p["sigma"])
    if base.startswith("log"):
        x = math.exp(x)
    if kind.startswith("q"):
        q = p["q"]
        x = round(x / q) * q
        if isinstance(q, int):
            x = int(x)
    return x


def notes(job: SweepJob) -> list[str]:
    """What a sweep does differently on the local target, said plainly."""
    if not job.is_sweep:
        return []
    out = []
    sampling = job.sampling
    if sampling.get("type") == "bayesian":
        seed = f" (seed {sampling['seed']})" if sampling.get("seed") is not None else ""
        out.append(
            f"note: sweep {job.name} samples bayesian on Azure ML; locally it samples "
            f"random{seed} instead"
        )
    elif sampling.get("rule") == "sobol":
        out.append(
            f"note: sweep {job.name} samples with the sobol rule on Azure ML; locally plain random"
        )
    if local_algorithm(sampling) == "random" and not job.limits.get("max_total_trials"):
        out.append(
            f"note: sweep {job.name} sets no limits.max_total_trials; locally it runs "
            f"{DEFAULT_RANDOM_TRIALS} trials"
        )
    policy = (job.early_termination or {}).get("type")
    if policy in ("bandit", "truncation_selection"):
        out.append(
            f"note: sweep {job.name} uses {policy} early termination on Azure ML; "
            "locally median stopping is used instead"
        )
    return out
