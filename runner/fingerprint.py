"""Job fingerprints: a hash of everything that determines a job's result, part by part."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from pathlib import Path

from . import azure_only, parallel
from .pipelines import Step
from .refs import mapping
from .spec import Job

SKIP_DIRS = {".git", "__pycache__", ".mlrun", ".ipynb_checkpoints", ".pytest_cache"}
SKIP_SUFFIXES = (".pyc",)
PARTS = ("command", "code", "inputs", "environment", "compute", "environment_variables")
SWEEP_PARTS = ("search_space", "sampling_algorithm", "objective", "limits", "early_termination")
STEP_PARTS = PARTS + ("outputs", "upstream")  # a pipeline step's
PIPELINE_PARTS = ("steps", "settings")  # a pipeline's (each step has its own)
PARALLEL_PARTS = ("parallel",)  # a parallel job's settings (mini-batches, workers, task)
# a parallel job's or step's settings (its task is fingerprinted with its code), and its outputs
PARALLEL_FIELDS = tuple(f for f in parallel.FIELDS if f != "task") + ("outputs",)
INCLUDE_PARTS = ("additional_includes", "sweep")  # a step's included files; a sweep step's sweep
# a command job has PARTS only, so its fingerprint is as before
ALL_PARTS = (
    PARTS + SWEEP_PARTS + STEP_PARTS[len(PARTS) :] + PIPELINE_PARTS + PARALLEL_PARTS + INCLUDE_PARTS
)
ALL_PARTS += ("settings", "data")  # an automl or finetuning job's fields and its local data
RACY_NS = 2_000_000_000  # a file this recent may change again within its mtime's tick: not cached

_tree_cache: dict = {}


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_digest(path: Path) -> str:
    """The content hash of a file or folder (names and bytes; caches, VCS and state skipped).
    Cached per process by the tree's (name, size, mtime) listing, unless a file is too recent
    for its mtime to tell a later edit apart (as git does with racy index entries)."""
    path = Path(path)
    if path.is_file():
        return _file_digest(path)
    listing = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            if not name.endswith(SKIP_SUFFIXES):
                full = Path(root, name)
                try:
                    st = full.stat()
                except OSError:  # a broken link: nothing to upload or run
                    continue
                if not stat.S_ISREG(st.st_mode):  # a pipe or a socket: reading it may never end
                    continue
                listing.append((str(full.relative_to(path)), st.st_size, st.st_mtime_ns))
    key = (str(path), tuple(listing))
    if key in _tree_cache:
        return _tree_cache[key]
    h = hashlib.sha256()
    for rel, _, _ in listing:
        h.update(rel.encode() + b"\0" + _file_digest(path / rel).encode() + b"\0")
    settled = time.time_ns() - RACY_NS
    if all(mtime < settled for _, _, mtime in listing):
        _tree_cache[key] = h.hexdigest()
    return h.hexdigest()


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def parts(job: Job, produced: dict[str, str] | None = None) -> dict:
    """Each part's digest, so a plan can say what changed. `produced`: inputs another job of the
    spec writes (a datastore path), by the writer's fingerprint rather than the content now."""
    inputs: dict = {}
    for name, inp in sorted(job.inputs.items()):
        if name in (produced or {}):
            inputs[name] = {"type": inp.type, "from": (produced or {})[name]}
        elif inp.local_path is not None:
            inputs[name] = {
                "type": inp.type,
                "content": tree_digest(inp.local_path) if inp.local_path.exists() else None,
            }
        else:
            inputs[name] = {"type": inp.type, "value": inp.value}
    return {
        "command": _digest(job.command),
        "code": tree_digest(job.code)
        if job.code and job.code.exists()
        else _digest(job.trial.get("code")),
        "inputs": _digest(inputs),
        "environment": job.env.digest,  # a built one's content, its conda file read in
        "compute": _digest(job.compute),
        "environment_variables": _digest(
            job.shown_env_vars
        ),  # secrets by name: a new key reruns nothing
        **(
            {
                "search_space": _digest(job.search_space),
                "sampling_algorithm": _digest(job.sampling),
                "objective": _digest(job.objective),
                "limits": _digest(job.limits),
                "early_termination": _digest(job.early_termination),
            }
            if job.is_sweep
            else {}
        ),
        **({"parallel": _digest(_parallel(job.fields))} if job.is_parallel else {}),
    }


def azure_only_parts(doc, job: Job) -> dict:
    """An automl or finetuning job's own parts: its fields, and its local data's content."""
    paths = azure_only.local_paths(doc, ("jobs", job.name), job.fields)
    data = {k: _content(p) for k, p in sorted(paths.items())}
    return {"settings": _digest(job.fields), "data": _digest(data)}


def _parallel(fields: dict) -> dict:
    """What a parallel job's (or step's) result depends on beyond a command job's parts."""
    given = fields.get("task")
    task = {k: v for k, v in mapping(given).items() if k not in ("code", "environment")}
    return {**{k: fields.get(k) for k in PARALLEL_FIELDS}, "task": task}


def _content(path: Path) -> str | None:
    return tree_digest(path) if path.exists() else None


def step_parts(step: Step, upstream: dict[str, str]) -> dict:
    """A pipeline step's parts; `upstream` has the fingerprints of the steps before it, so a step
    whose input is another's output changes when that one does (as Azure ML reuses steps)."""
    inputs = {}
    for name, source in sorted(step.inputs.items()):
        if name in step.written_by:  # on a datastore path another step writes: that step
            writer = step.written_by[name]
            inputs[name] = {"written_by": writer, "fingerprint": upstream.get(writer)}
        elif source.kind == "path":
            inputs[name] = {"content": _content(source.value)}
        elif source.kind == "step":
            inputs[name] = {"step": source.value[0], "output": source.value[1]}
        else:
            inputs[name] = {source.kind: source.value}
    return {
        "command": _digest(step.command),
        "code": tree_digest(step.code) if step.code and step.code.exists() else _digest(None),
        "inputs": _digest(inputs),
        "environment": step.env.digest,
        "compute": _digest(step.compute),
        "environment_variables": _digest(step.shown_env_vars),
        "outputs": _digest(sorted(step.outputs)),
        "upstream": _digest({u: upstream.get(u) for u in step.upstream}),
        **({"parallel": _digest(_parallel(step.parallel))} if step.parallel is not None else {}),
        **(
            {"additional_includes": _digest({p.name: _content(p) for p in step.includes})}
            if step.includes
            else {}
        ),
        **({"sweep": _digest(step.sweep)} if step.sweep is not None else {}),
        **({"flow": _digest(step.flow)} if step.flow is not None else {}),
    }


def pipeline(job: Job) -> dict:
    """A pipeline job's parts, and each step's fingerprint and parts (in dependency order)."""
    assert job.pipeline is not None
    steps: dict[str, dict] = {}
    fingerprints: dict[str, str] = {}
    for step in job.pipeline.steps.values():
        step_parts_ = step_parts(step, fingerprints)
        fingerprints[step.name] = combine(step_parts_)
        steps[step.name] = {
            "fingerprint": fingerprints[step.name],
            "parts": step_parts_,
            "upstream": step.upstream,
            "reusable": step.deterministic and not job.pipeline.force_rerun,
        }
    settings = {
        "outputs": job.pipeline.outputs,
        "continue_on_step_failure": job.pipeline.continue_on_step_failure,
    }
    return {
        "parts": {"steps": _digest(fingerprints), "settings": _digest(settings)},
        "steps": steps,
    }


def component(spec, name: str) -> str:
    """A component of the spec's components: as its content: its fields, its code folder's
    content and its environment's; a pipeline component's, its steps' code and the content of
    the spec's components they name (registered, a pipeline component is bound to their
    versions as they were: a new one of theirs is a new one of it)."""
    from .refs import is_local, parse_ref, relative_to

    fields = spec.components[name].fields
    code = fields.get("code")
    folder = relative_to(spec.doc, ("components", name, "code"), code) if is_local(code) else None
    env = spec.component_environments.get(name)
    steps = {}  # a pipeline component's: each step's code (its own, or its component file's)
    for step, block in (
        (fields.get("jobs") or {}).items() if fields.get("type") == "pipeline" else ()
    ):
        at = ("components", name, "jobs", step)
        inline = isinstance(block.get("component"), dict)
        code = (block["component"] if inline else block).get("code")
        named = parse_ref(block.get("component"))
        if is_local(code):
            found = relative_to(spec.doc, at + (("component",) if inline else ()) + ("code",), code)
            steps[step] = _content(found)
        elif named and named[0] in spec.components:
            used = spec.components[named[0]]  # a command component (pipelines do not nest)
            if used.fields.get("type") != "pipeline":
                steps[step] = component(spec, named[0])
    return _digest(
        {
            "fields": {k: v for k, v in fields.items() if k not in ("version", "$schema")},
            "code": _content(folder) if folder else None,
            "environment": env.digest if env else None,
            **({"steps": steps} if steps else {}),
        }
    )


def combine(job_parts: dict) -> str:
    return _digest([job_parts[p] for p in ALL_PARTS if p in job_parts])


def changed(old: dict | None, new: dict) -> list[str]:
    """The names of the parts that differ (all of them when the old parts are unknown)."""
    if not old:
        return [p for p in ALL_PARTS if p in new]
    return [p for p in ALL_PARTS if (p in old or p in new) and old.get(p) != new.get(p)]


def data(asset) -> str:
    """A data asset as its content: its type, and its local content's digest (else its URI)."""
    content = _content(asset.local) if asset.local is not None else asset.path
    if asset.imported:  # what it is copied from, and into
        return _digest({"type": asset.type, "content": content, "source": asset.fields["source"]})
    return _digest({"type": asset.type, "content": content})


def model(m) -> str:
    """A model as what its registered versions carry: its fields, and its local folder's content
    (a model from a job: its source; each run of the job makes a version of its own)."""
    content = _content(m.local) if m.local is not None else m.path
    return _digest({"fields": m.registry_fields, "content": content})
