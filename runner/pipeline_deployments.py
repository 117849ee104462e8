"""Pipeline component batch deployments (az ml's pipelineComponentBatchDeployment, `type:
pipeline`): a batch endpoint's deployment that runs a pipeline component when the endpoint is
invoked, as Azure ML runs one: a pipeline job of the component's steps, with the call's inputs,
its steps on `settings.default_compute` unless they name their own compute.

Read and checked offline, located: the component (a local pipelineComponent file, an inline one,
or azureml:NAME@latest of the spec's components: that is a pipeline), the deployment's settings
and the fields of model deployments it cannot have, the component's steps (as a pipeline job's
are), and the inputs a call gives (`input` binds the component's one uri input, `inputs` names
them). A call is a pipeline job (`job`) that the pipeline engine runs, named after the endpoint so
that its runs are kept with the endpoint's other calls. Stdlib only."""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UserError, plural
from .pipelines import LITERAL_TYPES, SETTINGS, strip_compute
from .refs import MODEL_INPUT_TYPES, is_local, mapping, parse_ref, relative_to, unresolved

if TYPE_CHECKING:
    from .endpoints import Deployment, Endpoint
    from .pipelines import Component, Pipeline, PipelineReader
    from .records import Run
    from .spec import Input, Job, Spec
    from .yamldoc import Doc

URI_TYPES = ("uri_folder", "uri_file", "mltable")  # what a call's `input` binds
# a model batch deployment's fields, which a pipeline deployment does not have
MODEL_FIELDS = (
    "model",
    "code_configuration",
    "environment",
    "environment_variables",
    "compute",
    "resources",
)


@dataclass(frozen=True)
class PipelineComponent:
    """A pipeline deployment's component: how plans name it, where its fields are in the spec,
    the fields, and its steps as read with the deployment's settings."""

    shown: str  # the file (relative to the spec's folder), azureml:NAME@latest, or inline
    at: tuple
    fields: dict
    pipeline: Pipeline

    @property
    def inputs(self) -> dict:
        return mapping(self.fields.get("inputs"))

    @property
    def uri_inputs(self) -> list[str]:
        return [n for n, d in self.inputs.items() if mapping(d).get("type") in URI_TYPES]


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
    from .endpoints import check_compute

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
            wrong.append((_at(value, named, name), f"input '{name}' is a {kind}: give a value"))
        elif kind not in LITERAL_TYPES and not isinstance(path, str):
            wrong.append((_at(value, named, name), f"input '{name}' is a {kind}: give a path"))
    return values, wrong


def _at(value: Any, named: dict, name: str) -> tuple:
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
        where = _at(invoke.get("input"), mapping(invoke.get("inputs")), name)
        where = at + where + (("path",) if isinstance(given, dict) else ())
        path = given.get("path") if isinstance(given, dict) else given
        kind = mapping(comp.inputs.get(name)).get("type")
        if kind in LITERAL_TYPES or not is_local(path) or unresolved(path):
            continue
        if not relative_to(doc, where, path).exists():
            doc.problem(where, f"input path '{path}' does not exist")


def call_inputs(
    spec: Spec,
    endpoint: Endpoint,
    comp: PipelineComponent,
    value: str | None = None,
    named: dict | None = None,
) -> dict[str, Input]:
    """A call's inputs: the endpoint's own call's (`invoke:`, paths relative to the file that
    holds them), or those given by hand (mlrun invoke --input PATH, --set inputs.NAME=VALUE:
    paths relative to where mlrun runs; what is left out takes the component's default, as
    `az ml batch-endpoint invoke` does)."""
    own = value is None and not named
    if own:
        given, named = endpoint.invoke.get("input"), mapping(endpoint.invoke.get("inputs"))
        said = {"input": "invoke.input", "inputs": "invoke.inputs."}
    else:
        given, named = value, named or {}
        said = {"input": "--input", "inputs": "--set inputs."}
    values, wrong = bind(comp, given, named)
    if wrong:
        raise UserError(
            f"endpoint {endpoint.name}: "
            + "; ".join(
                (f"{said[w[0]]}{w[1] if len(w) > 1 else ''}: " if w else "") + message
                for w, message in wrong
            )
        )
    out = {}
    for name, v in values.items():
        where = ("endpoints", endpoint.name, "invoke") + _at(given, named, name)
        where += ("path",) if isinstance(v, dict) else ()

        def local(path: str, where: tuple = where) -> Path:
            return relative_to(spec.doc, where, path) if own else Path.cwd() / path

        out[name] = _input(spec, comp, name, v, local)
    return out


def _input(
    spec: Spec, comp: PipelineComponent, name: str, value: Any, local: Callable[[str], Path]
) -> Input:
    """One of a call's inputs: a literal, a registered model, a local path (resolved), or one of
    the spec's data assets (batch.job_input's rules, as a model deployment's call has them)."""
    from . import batch
    from .spec import Input

    decl = mapping(comp.inputs.get(name))
    kind = decl.get("type")
    if kind in LITERAL_TYPES:
        return Input(name, None, value, None)
    path = value.get("path") if isinstance(value, dict) else value
    kind = value.get("type", kind) if isinstance(value, dict) else kind
    if kind in MODEL_INPUT_TYPES and (ref := parse_ref(path)) is not None:
        return Input(name, kind, path, None, model=ref)
    found = batch.job_input(spec, {"type": kind or "uri_folder", "path": path}, base=local("."))
    return replace(found, name=name)


# --- a call as a pipeline job ---------------------------------------------------------------


def job(spec: Spec, endpoint: Endpoint, dep: Deployment, inputs: dict[str, Input]) -> Job:
    """The pipeline job a call of `dep` runs: the component's steps with the call's inputs (the
    component's defaults for the rest), on the deployment's compute, named after the endpoint
    and in the experiment of that name, as a model deployment's scoring job is."""
    from .environments import Environment, Reader, shown, stand_ins
    from .pipelines import PipelineReader
    from .refs import local_inputs
    from .spec import Job

    comp = dep.component
    assert comp is not None  # validate: a pipeline deployment has a component
    given = {n: _value(i) for n, i in inputs.items()}
    settings = {k: v for k, v in mapping(dep.fields.get("settings")).items() if k in SETTINGS}
    fields = {
        "type": "pipeline",
        "display_name": f"{endpoint.name}-{dep.name}",
        "experiment_name": endpoint.name,
        "settings": settings,
        "inputs": {**comp.inputs, **given},
        "outputs": mapping(comp.fields.get("outputs")),
        "jobs": comp.fields["jobs"],
        "tags": {"mlrun.endpoint": endpoint.name, "mlrun.deployment": dep.name},
    }
    known = {("components", n, "environment"): e for n, e in spec.component_environments.items()}
    reader = PipelineReader(
        spec.doc,
        Reader(spec.doc, local=True, report=False),  # validate said what is wrong
        spec.components,
        spec.environments,
        stand_ins(spec.doc.data),
        set(spec.computes),
        local_inputs(spec.doc.data),
        True,
        spec.data,
        known,
    )
    pipeline = reader.read(comp.at, fields)
    return Job(endpoint.name, fields, None, env=Environment(shown(None)), pipeline=pipeline)


def _value(inp: Input) -> Any:
    """An input as a pipeline job's inputs: give it (a path resolved, a reference as written)."""
    if inp.type is None:
        return inp.value
    if inp.local_path is not None and inp.asset is None:
        return {"type": inp.type, "path": str(inp.local_path)}
    return {"type": inp.type, "path": inp.value}


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
