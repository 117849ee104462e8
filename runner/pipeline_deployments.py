"""Pipeline component batch deployments (az ml's pipelineComponentBatchDeployment, `type:
pipeline`): a batch endpoint's deployment that runs a pipeline component when the endpoint is
invoked, as Azure ML runs one: a pipeline job of the component's steps, with the call's inputs,
its steps on `settings.default_compute` unless they name their own compute.

Read and checked offline, located: the component (a local pipelineComponent file, an inline one,
or azureml:NAME@latest of the spec's components: that is a pipeline), the deployment's settings
and the fields of model deployments it cannot have, the component's steps (as a pipeline job's
are), and the inputs a call gives (`input` binds the component's one uri input, `inputs` names
them). A call is a pipeline job (batch.pipeline_job) that the pipeline engine runs, named after the
endpoint so that its runs are kept with the endpoint's other calls. Stdlib and PyYAML only."""

from __future__ import annotations

import difflib
import os
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .endpoints import PipelineComponent, check_compute
from .errors import plural
from .pipelines import LITERAL_TYPES, SETTINGS, strip_compute
from .refs import is_local, mapping, parse_ref, relative_to, unresolved

if TYPE_CHECKING:
    from .pipelines import Component, PipelineReader
    from .records import Run
    from .yamldoc import Doc

# a model batch deployment's fields, which a pipeline deployment does not have
MODEL_FIELDS = (
    "model",
    "code_configuration",
    "environment",
    "environment_variables",
    "compute",
    "resources",
)


# --- reading and checking -------------------------------------------------------------------


def read(
    doc: Doc,
    at: tuple,
    fields: dict,
    components: dict[str, Component],
    computes: Collection,
    steps: PipelineReader,
    quiet: PipelineReader,
) -> PipelineComponent | None:
    """The deployment at `at` checked, and its component read (None when it has none to read).
    A component of the spec's components: is read with `quiet`, which says nothing: its steps
    were checked where it is defined."""
    compute = check(doc, at, fields, computes)
    found = _component(doc, at, fields, components)
    if found is None:
        return None
    comp, comp_at, shown = found
    settings = {k: v for k, v in mapping(fields.get("settings")).items() if k in SETTINGS}
    if compute is False:  # said once, here, not again for each step
        settings.pop("default_compute", None)
    reader = quiet if comp_at[0] == "components" else steps
    pipeline = reader.read(comp_at, {**comp, "settings": settings})
    return PipelineComponent(shown, comp_at, comp, pipeline)


def check(doc: Doc, at: tuple, fields: dict, computes: Collection) -> bool | None:
    """The deployment's own fields: none of a model deployment's, pipeline settings only, and a
    compute of the spec's as its default_compute. Whether that compute is one (None: not known,
    an expression)."""
    for key in MODEL_FIELDS:
        if key in fields:
            where = " (a pipeline deployment's is settings.default_compute)"
            doc.problem(
                at + (key,),
                f"{key} is a field of model batch deployments, not of a pipeline deployment"
                + (where if key == "compute" else ""),
                key=True,
            )
    if "job_definition" in fields:
        doc.problem(
            at + ("job_definition",),
            "a deployment made from a pipeline job is not run by mlrun: give the pipeline "
            "component as component:",
            key=True,
        )
    settings = mapping(fields.get("settings"))
    for key in settings:
        if key not in SETTINGS:
            doc.problem(
                at + ("settings", key),
                f"{key} is a setting of model batch deployments, not of a pipeline deployment "
                f"(settings: {', '.join(SETTINGS)})",
                key=True,
            )
    value = settings.get("default_compute")
    if not isinstance(value, str):
        doc.problem(
            at,
            "a pipeline deployment needs a compute: settings: {default_compute: NAME}",
            key=True,
        )
        return False
    compute = strip_compute(value)
    if compute is None or unresolved(compute):
        return None
    return check_compute(doc, at + ("settings", "default_compute"), compute, computes)


def _component(
    doc: Doc, at: tuple, fields: dict, components: dict[str, Component]
) -> tuple[dict, tuple, str] | None:
    """The deployment's pipeline component: its fields, where they are, how plans name it."""
    where = at + ("component",)
    value = fields.get("component")
    if value is None:
        doc.problem(
            at,
            "a pipeline deployment needs a component: component: FILE.yml or azureml:NAME@latest",
            key=True,
        )
        return None
    if where in doc.broken:  # a file that could not be read: said
        return None
    if isinstance(value, dict):  # a component file read in by spec.py, or an inline one
        file = doc.includes.get(where)
        shown = os.path.relpath(file, Path(doc.file).parent) if file else "inline component"
        return _pipeline_only(doc, where, value, shown, where)
    if not isinstance(value, str) or unresolved(value):
        return None
    ref = parse_ref(value)
    if ref is None:
        doc.problem(
            where,
            f"'{value}' is not a component reference: use ./FILE.yml, file:FILE.yml, "
            "azureml:NAME:VERSION or azureml:NAME@latest (a component of this spec's)",
        )
        return None
    name, version = ref
    if name not in components:
        piped = sorted(n for n, c in components.items() if c.fields.get("type") == "pipeline")
        close = difflib.get_close_matches(name, piped, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        doc.problem(
            where,
            f"component '{name}' is not a component of this spec ({hint}pipeline components: "
            f"{', '.join(piped) or 'none'})",
        )
        return None
    comp = components[name]
    if version is not None and comp.version is not None and version != comp.version:
        doc.problem(
            where, f"component {name} has version {comp.version} in this spec, not {version}"
        )
    return _pipeline_only(doc, where, comp.fields, value, ("components", name))


def _pipeline_only(
    doc: Doc, where: tuple, fields: dict, shown: str, at: tuple
) -> tuple[dict, tuple, str] | None:
    kind = fields.get("type", "command")
    if kind != "pipeline":
        doc.problem(
            where,
            f"{shown} is a {kind} component: a pipeline deployment runs a pipeline component "
            "(type: pipeline, its steps under jobs:)",
        )
        return None
    return fields, at, shown


# --- a call's inputs ------------------------------------------------------------------------


def bind(comp: PipelineComponent, value: Any, named: dict) -> tuple[dict, list[tuple[tuple, str]]]:
    """A call's values by the component's input names (`value`, a call's input, binds its one
    uri input; `named` names them) and what is wrong with them: (where under the call, what)."""
    declared, values, uri = comp.inputs, {}, comp.uri_inputs
    wrong: list[tuple[tuple, str]] = []
    if value is not None:
        if len(uri) == 1:
            values[uri[0]] = value
        else:
            names = f" ({', '.join(uri)})" if uri else ""
            wrong.append(
                (
                    ("input",),
                    f"component {comp.shown} has {plural(len(uri), 'uri input')}{names}: name "
                    "the input to give under inputs",
                )
            )
    for name, given in named.items():
        if name not in declared:
            close = difflib.get_close_matches(str(name), sorted(declared), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            known = ", ".join(sorted(declared)) or "none"
            wrong.append(
                (
                    ("inputs", name),
                    f"component {comp.shown} has no input '{name}' ({hint}inputs: {known})",
                )
            )
        elif name in values:
            wrong.append((("inputs", name), f"input '{name}' is given twice: by input and here"))
        else:
            values[name] = given
    for name, decl in declared.items():
        decl = mapping(decl)
        if name in values or "default" in decl or decl.get("path") is not None:
            continue
        if value is not None and name in uri:  # `input` meant one of them: said above
            continue
        if decl.get("optional") is not True:
            wrong.append(((), f"the call gives no value for input '{name}' of {comp.shown}"))
    for name, given in values.items():
        kind = mapping(declared.get(name)).get("type")
        path = given.get("path") if isinstance(given, dict) else given
        if kind in LITERAL_TYPES and isinstance(given, dict):
            wrong.append((given_at(named, name), f"input '{name}' is a {kind}: give a value"))
        elif kind not in (*LITERAL_TYPES, None) and not isinstance(path, str):
            wrong.append((given_at(named, name), f"input '{name}' is a {kind}: give a path"))
    return values, wrong


def given_at(named: dict, name: str) -> tuple:
    """Where a call gives input `name`: under inputs, or as its input."""
    return ("inputs", name) if name in named else ("input",)


def check_call(doc: Doc, at: tuple, invoke: dict, comp: PipelineComponent) -> None:
    """The endpoint's own call (`invoke:` at `at`) of a pipeline deployment: its inputs bound,
    its local paths there."""
    values, wrong = bind(comp, invoke.get("input"), mapping(invoke.get("inputs")))
    for where, message in wrong:
        doc.problem(at + where, message, key=bool(where) and where[0] == "inputs")
    if wrong:
        return
    for name, given in values.items():
        where = given_at(mapping(invoke.get("inputs")), name)
        where = at + where + (("path",) if isinstance(given, dict) else ())
        path = given.get("path") if isinstance(given, dict) else given
        kind = mapping(comp.inputs.get(name)).get("type")
        if kind in LITERAL_TYPES or not is_local(path) or unresolved(path):
            continue
        if not relative_to(doc, where, path).exists():
            doc.problem(where, f"input path '{path}' does not exist")


def output_folders(run: Run, comp: PipelineComponent) -> dict[str, Path]:
    """Where a call's outputs are: each output of the component, in the folder of the step that
    fed it (a reused step's: the run it reused), once the run has ended."""
    steps = run.get("steps") or {}
    out = {}
    for name, feed in comp.pipeline.outputs.items():
        record = steps.get(feed[0]) if feed else None
        if feed and record and record.get("run_dir"):
            out[name] = Path(record["run_dir"]) / "outputs" / feed[1]
    return out
