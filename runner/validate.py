"""Schema and semantic checks of a parsed spec: every problem at once, located precisely."""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import (
    __version__,
    azure_only,
    data as data_assets,
    datastores,
    endpoints,
    environments,
    expiry,
    flows,
    models as model_assets,
    parallel,
    pipeline_deployments,
    pipelines,
    schedules,
    spark,
)
from .backends import targets
from .cache import canonical, digest, known, remember
from .errors import plural
from .refs import (
    EXPR,
    LOCAL_INPUT_TYPES,
    is_local,
    local_inputs,
    mapping,
    model_ref,
    parse_ref,
    relative_to,
    run_block,
    unresolved as _unresolved,
)
from .sections import Sections
from .yamldoc import Doc

SCHEMA_FILE = Path(__file__).with_name("lab.schema.json")
SCHEMA_PASSED = "schema-passed"  # the cache's record of resolved specs that passed the schema
WORKSPACE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,32}$")
INSTANCE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$")
CLUSTER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,14}[A-Za-z0-9]$")
RESOURCE_GROUP = re.compile(r"^[-\w.()]{0,89}[-\w()]$")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
JSON_TYPES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}
PATTERN_RULES = {
    "^[a-z0-9][a-z0-9-]*$": "use lowercase letters, digits and '-', starting with a letter or digit"
}
PATTERN_RULES[parallel.SIZE_PATTERN] = "use a count of files (10) or a size (10kb, 1mb, 1gb)"


@lru_cache(maxsize=1)
def schema() -> dict:
    return json.loads(_schema_bytes())


@lru_cache(maxsize=1)
def _validator():
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema())


def _check_schema(doc: Doc) -> None:
    """The JSON Schema pass, skipped (with the import of jsonschema) for a spec whose resolved data
    passed it in an apply before, under the same schema and mlrun (see remember_schema_pass)."""
    data = canonical(doc.data)
    fact = data and digest(data, _schema_bytes(), __version__.encode())
    if fact and known(SCHEMA_PASSED, fact):
        return
    passed = True
    for error in _validator().iter_errors(doc.data):
        passed = False
        _report(doc, error)
    if fact and passed:
        doc.schema_passed = fact


def remember_schema_pass(doc: Doc) -> None:
    """Record that `doc`'s data passed the schema check, in the user's cache. Only apply does,
    which writes anyway: validate and plan write nothing."""
    if doc.schema_passed:
        remember(SCHEMA_PASSED, doc.schema_passed)


@lru_cache(maxsize=1)
def _schema_bytes() -> bytes:
    return SCHEMA_FILE.read_bytes()


def summary(data: dict) -> str:
    """What a valid spec holds, in words: `2 computes, 2 jobs, 1 query` (and its environments,
    components, data assets, models and endpoints, when it has some)."""
    return ", ".join(
        plural(len(data.get(k) or {}), word, many)
        for k, word, many in (
            ("computes", "compute", None),
            ("environments", "environment", None),
            ("components", "component", None),
            ("jobs", "job", None),
            ("queries", "query", "queries"),
            ("data", "data asset", None),
            ("datastores", "datastore", None),
            ("models", "model", None),
            ("endpoints", "endpoint", None),
        )
        if k in ("computes", "jobs", "queries") or data.get(k)
    )


def check(doc: Doc, target: str = "local", runs: bool = False) -> Sections:
    """Add every schema and semantic problem of `doc` to `doc.problems`, and the spec's typed
    sections, each built once as it is checked. With `runs` (plan and apply), what only stops a
    run on this target is an error too, not a warning."""
    if doc.data is None:
        return Sections()
    if not isinstance(doc.data, dict):
        doc.problem((), "a lab spec must be a mapping")
        return Sections()
    _check_schema(doc)
    return _semantics(doc, doc.data, target, runs)


# --- schema errors as messages -------------------------------------------------------------------


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    for t, name in (
        (dict, "a mapping"),
        (list, "a list"),
        (str, "a string"),
        (int, "an integer"),
        (float, "a number"),
    ):
        if isinstance(value, t):
            return name
    return "null"


def _report(doc: Doc, error) -> None:
    path = tuple(error.absolute_path)
    if any(path[:i] in doc.broken for i in range(len(path) + 1)) or _unresolved(error.instance):
        return  # a problem already said: its value is broken, or an expression in it is unresolved
    v, inst, sch = error.validator, error.instance, error.schema
    if v == "additionalProperties":
        allowed = sorted(sch.get("properties", {}))
        for key in inst:
            if key not in allowed and not _unresolved(key):
                doc.problem(path + (key,), _unknown(key, allowed, top=not path), key=True)
    elif v == "required":
        missing = [k for k in error.validator_value if k not in inst]
        for key in missing:
            doc.problem(path, f"missing required key '{key}'", key=True)
    elif v in ("oneOf", "anyOf"):
        _report_branches(doc, error)
    elif "propertyNames" in error.relative_schema_path:  # the error is the name's, e.g. its pattern
        doc.problem(
            path + (inst,),
            f"'{inst}' is not a valid name: use letters, digits and '_', "
            "starting with a letter or '_'",
            key=True,
        )
    else:
        doc.problem(path, _message(v, error.validator_value, inst, sch))


def _message(v: str, want: Any, inst: Any, sch: dict) -> str:
    if v == "type":
        return f"expected {_either([want] if isinstance(want, str) else want)}, got {_kind(inst)}"
    if v in ("enum", "const"):
        options = want if v == "enum" else [want]
        close = (
            difflib.get_close_matches(inst, [str(o) for o in options], n=1)
            if isinstance(inst, str)
            else []
        )
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{_show(inst)} is not one of: {', '.join(str(o) for o in options)}{hint}"
    if v == "minimum":
        return f"must be at least {want} (got {inst})"
    if v == "maximum":
        return f"must be at most {want} (got {inst})"
    if v == "minLength":
        return "must not be empty" if want == 1 else f"must be at least {want} characters long"
    if v == "maxLength":
        return f"must be at most {want} characters long (got {len(inst)})"
    if v == "pattern":
        return f"'{inst}' is not valid: {PATTERN_RULES.get(want, 'it must match ' + want)}"
    return f"{_show(inst) if not isinstance(inst, (dict, list)) else _kind(inst)} is invalid ({v})"


def _show(value: Any) -> str:
    """A value as messages quote it: 'text', or JSON for numbers, booleans and null."""
    return f"'{value}'" if isinstance(value, str) else json.dumps(value)


def _report_branches(doc: Doc, error) -> None:
    """For `oneOf` (a string or a mapping, say): the errors of the branch whose type fits (of two
    mapping branches, the one the keys fit), else one line naming the kinds accepted."""
    branches: dict[int, list] = {}
    for sub in error.context or []:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    fitting = [
        errs
        for errs in branches.values()
        if not any(e.validator == "type" and len(e.relative_schema_path) <= 2 for e in errs)
    ]
    if (
        fitting
    ):  # of several mapping branches, the one whose keys fit, then the one with fewest errors
        at = len(error.absolute_path)
        best = min(
            fitting,
            key=lambda errs: (
                any(
                    len(e.absolute_path) == at
                    and e.validator in ("additionalProperties", "required")
                    for e in errs
                ),
                len(errs),
            ),
        )
        for sub in best:
            _report(doc, sub)
        return
    types: list[str] = []
    for option in error.validator_value:
        if "$ref" in option:
            option = _resolve(option["$ref"])
        t = option.get("type", "object")
        types += [t] if isinstance(t, str) else t
    doc.problem(
        tuple(error.absolute_path), f"expected {_either(types)}, got {_kind(error.instance)}"
    )


def _either(types: list[str]) -> str:
    """`a string, a number, a boolean or a mapping` (an integer counts as a number when both
    fit)."""
    if "number" in types and "integer" in types:
        types = [t for t in types if t != "integer"]
    names = list(dict.fromkeys(JSON_TYPES[t] for t in types))
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _resolve(ref: str) -> dict:
    return schema()["$defs"][ref.rsplit("/", 1)[1]]


def _unknown(key: str, allowed: list[str], top: bool) -> str:
    """An unknown key; at the top of a spec, an unknown section: every section is listed."""
    if not top:
        return "unknown key" + _suggest(key, allowed)
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown section ({hint}sections: {', '.join(allowed)})"


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    if 0 < len(options) <= 12:  # a longer list is more noise than help
        return f" (expected one of: {', '.join(options)})"
    return ""


# --- semantic checks -----------------------------------------------------------------------------


def _dicts(value: Any) -> dict:
    """The mapping entries whose values are mappings (the rest the schema check reports)."""
    return (
        {k: v for k, v in value.items() if isinstance(v, dict)} if isinstance(value, dict) else {}
    )


def _semantics(doc: Doc, data: dict, target: str, runs: bool = False) -> Sections:
    ws = data.get("workspace")
    if isinstance(ws, dict):
        _check_name(
            doc,
            ("workspace", "name"),
            ws.get("name"),
            WORKSPACE_NAME,
            "a workspace name has 3-33 letters, digits, '-' or '_', "
            "and starts with a letter or digit",
        )
        _check_name(
            doc,
            ("workspace", "resource_group"),
            ws.get("resource_group"),
            RESOURCE_GROUP,
            "a resource group name has 1-90 letters, digits, '_', '-', '.', '(' or ')', "
            "and does not end with '.'",
        )
    if "expires_after" in data and (why := expiry.problem(data["expires_after"])):
        doc.problem(("expires_after",), why)
    computes = _dicts(data.get("computes"))
    for name, c in computes.items():
        _check_compute(doc, name, c)
    experiments = set()
    where = targets.get(target)
    stand_ins = local_inputs(data) if where.runs_here else None
    stores = datastores.read(doc, data, where.runs_here)
    sections = Sections(
        data=datastores.assets_on(data_assets.read(doc, data), stores),
        models=model_assets.read(doc, data),
        datastores=stores,
    )
    datastores.check(doc, data, stores)
    if where.runs_here:
        datastores.check_local(doc, data, stores, runs)
    assets = sections.data
    _check_data(doc, assets)
    _check_models(doc, sections.models, _dicts(data.get("jobs")), where.runs_here, runs)
    for name, job in _dicts(data.get("jobs")).items():
        _check_job(doc, name, job, computes, stand_ins, runs, assets)
        experiment = job.get("experiment_name") or data.get("name")
        if isinstance(experiment, str):  # else the schema check reports it
            experiments.add(experiment)
    for name, q in _dicts(data.get("queries")).items():
        exp = q.get("experiment")
        if isinstance(exp, str) and experiments and exp not in experiments:
            doc.problem(
                ("queries", name, "experiment"),
                f"no job of this spec logs to experiment '{exp}' "
                f"(experiments: {', '.join(sorted(str(e) for e in experiments))})",
                severity="warning",
            )
    azure_only.check(doc, data)
    sections.schedules = schedules.read(doc, data)
    _check_environments(doc, data, where.runs_here, runs, sections)
    if where.check is not None:
        where.check(doc, data)
    return sections


def _check_environments(doc: Doc, data: dict, local: bool, runs: bool, sections: Sections) -> None:
    """Each job's (or sweep trial's) environment read, its conda file too, and resolved; the
    components and pipelines read: into `sections`. Locally, a conda-only package or a python=
    not installed here is an error (environments.Reader says them); a Docker build context needs a
    stand-in."""
    reader = environments.Reader(doc, local=local)
    substitutes = environments.stand_ins(data) if local else None
    defined = {}
    for name, fields in _dicts(data.get("environments")).items():  # az ml environment create
        where: tuple = ("environments", name)
        if where in doc.broken:
            continue
        version = fields.get("version")
        env = reader.definition(
            where, fields, name, version=None if version is None else str(version)
        )
        sections.environments[where] = defined[name] = env
        if not fields.get("image") and not fields.get("build"):
            need = "an environment needs an image or a build context (as Azure ML does)"
            doc.problem(where, need, key=True)
    sections.components = components = {
        name: pipelines.Component(name, None if c.get("version") is None else str(c["version"]), c)
        for name, c in _dicts(data.get("components")).items()
        if ("components", name) not in doc.broken and not flows.registered(doc, name, c)
    }
    for name, comp in components.items():  # their environments, read once for their steps
        runs_in = run_block(comp.fields)  # a parallel component's is its task's
        where = ("components", name) + runs_in + ("environment",)
        value = mapping(comp.fields.get(runs_in[0])) if runs_in else comp.fields
        if value.get("environment") is not None:
            env = reader.job(where, value["environment"], defined, substitutes)
            sections.environments[where] = env
    computes = set(_dicts(data.get("computes")))

    def steps_reader(envs: environments.Reader = reader) -> pipelines.PipelineReader:
        return pipelines.PipelineReader(
            doc,
            envs,
            components,
            defined,
            substitutes,
            computes,
            local_inputs(data),
            local,
            sections.data,
            sections.environments,
            runs,
            sections.datastores,
            mapped=mapping(mapping(mapping(data.get("targets")).get("local")).get("components")),
        )

    def read_pipeline(at: tuple, block: dict) -> None:  # (pipeline components as steps nest)
        sections.pipelines[at] = found = steps_reader().read(at, block)
        for step in found.steps.values():
            _check_buildable(doc, step.at or at + ("jobs", step.name), step.env, local, runs)

    for name, comp in components.items():  # a pipeline component's steps, checked once
        if comp.fields.get("type") == "pipeline":
            read_pipeline(("components", name), comp.fields)
    for name, job in _dicts(data.get("jobs")).items():
        if job.get("type") == "pipeline":
            read_pipeline(("jobs", name), job)
            continue
        at = ("jobs", name) + run_block(job)
        block = mapping(job.get(at[2])) if len(at) > 2 else job
        if block.get("environment") is None:
            _check_no_environment(doc, ("jobs", name), job, block, local)
            continue
        env = reader.job(at + ("environment",), block["environment"], defined, substitutes)
        sections.environments[at] = env
        _check_buildable(doc, at, env, local, runs)
    sections.endpoints = endpoints.read(
        doc, data, reader, sections.models, defined, substitutes, computes
    )
    quiet = steps_reader(environments.Reader(doc, local=local, report=False))
    for endpoint in sections.endpoints.values():
        _read_pipeline_deployments(doc, endpoint, components, computes, steps_reader(), quiet)
        for dep in endpoint.deployments.values():
            if dep.component is not None and dep.component.at[0] != "components":
                for step in dep.component.pipeline.steps.values():
                    where = dep.component.at + ("jobs", step.name)
                    _check_buildable(doc, where, step.env, local, runs)
    jobs = _dicts(data.get("jobs"))
    for endpoint in sections.endpoints.values():
        if endpoint.type == "batch" and endpoint.name in jobs:
            doc.problem(
                ("endpoints", endpoint.name),
                f"job {endpoint.name} has this name too: a batch endpoint's scoring runs are kept "
                "under its name (mlrun logs SPEC ENDPOINT)",
                key=True,
            )
        for dep in endpoint.deployments.values():
            if dep.environment is not None:
                where = ("endpoints", endpoint.name, "deployments", dep.name)
                sections.environments[where] = dep.environment
                _check_buildable(doc, where, dep.environment, local, runs)


NEEDS_ENVIRONMENT = {  # a job type -> what of it Azure ML requires an environment of
    None: "a command job",
    "command": "a command job",
    "sweep": "a sweep's trial",
    "parallel": "a parallel job's task",
}


def _check_no_environment(doc: Doc, at: tuple, job: dict, block: dict, local: bool) -> None:
    """A job that names no environment runs on mlrun's interpreter locally; Azure ML refuses it
    (the SDK's schema requires one of a command job, a sweep's trial, a parallel job's task)."""
    kind = job.get("type")
    what = NEEDS_ENVIRONMENT.get(kind) if kind is None or isinstance(kind, str) else None
    if local or what is None or at in doc.broken or not block:
        return
    doc.problem(at, f"a job needs an environment on Azure ML ({what} requires one)", key=True)


def _read_pipeline_deployments(
    doc: Doc,
    endpoint: endpoints.Endpoint,
    components: dict,
    computes: set,
    steps: pipelines.PipelineReader,
    quiet: pipelines.PipelineReader,
) -> None:
    """The endpoint's pipeline deployments checked and their components read (kept on each
    deployment), and the endpoint's own call of one checked against its component's inputs."""
    at = ("endpoints", endpoint.name)
    for name, dep in endpoint.deployments.items():
        if not dep.is_pipeline:
            continue
        where = at + ("deployments", name)
        comp_at = where + ("component",)
        if isinstance(dep.fields.get("component"), dict):
            _check_nested(doc, comp_at, dep.fields["component"], components)
        found = pipeline_deployments.read(
            doc, where, dep.fields, components, computes, steps, quiet
        )
        endpoint.deployments[name] = dataclasses.replace(dep, component=found)
    called = endpoint.invoke.get("deployment_name") or endpoint.default_deployment
    target = endpoint.deployments.get(called) if isinstance(called, str) else None
    if endpoint.invoke and target is not None and target.component is not None:
        pipeline_deployments.check_call(doc, at + ("invoke",), endpoint.invoke, target.component)


def _check_nested(doc: Doc, at: tuple, block: dict, components: dict) -> None:
    """A step runs a command component: a pipeline component of the spec's is not a step (mlrun
    runs one as a batch deployment; pipelines do not nest)."""
    for step, fields in _dicts(block.get("jobs")).items():
        ref = parse_ref(fields.get("component"))
        comp = components.get(ref[0]) if ref else None
        nested = comp is not None and comp.fields.get("type") == "pipeline"
        if nested or mapping(fields.get("component")).get("type") == "pipeline":
            doc.problem(
                at + ("jobs", step, "component"),
                "a step runs a command component, not a pipeline component: pipelines do not "
                "nest here (a pipeline component runs as a batch deployment, type: pipeline)",
            )


def _check_buildable(doc: Doc, at: tuple, env, local: bool, runs: bool) -> None:
    if local and env.built and not env.buildable:
        doc.problem(
            at + ("environment",),
            f"environment {env.shown} is built from a Docker context, which the local target "
            "cannot build: map it to a local stand-in in targets.local.environments",
            severity="error" if runs else "warning",
        )


def _check_name(
    doc: Doc, path: tuple, name: Any, pattern: re.Pattern, rule: str, key: bool = False
) -> None:
    if isinstance(name, str) and not pattern.match(name) and not _unresolved(name):
        doc.problem(path, f"'{name}' is not a valid name: {rule}", key=key)


def _check_compute(doc: Doc, name: str, c: dict) -> None:
    at = ("computes", name)
    if c.get("type") == "amlcompute":
        _check_name(
            doc,
            at,
            name,
            CLUSTER_NAME,
            "a cluster name has 2-16 letters, digits or '-', "
            "starts with a letter and ends with a letter or digit",
            key=True,
        )
        lo, hi = c.get("min_instances", 0), c.get("max_instances", 1)
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            doc.problem(
                at + ("min_instances",),
                f"min_instances ({lo}) is greater than max_instances ({hi})",
            )
        elif isinstance(lo, int) and lo > 0:
            doc.problem(
                at + ("min_instances",),
                f"min_instances: {lo} keeps {plural(lo, 'node')} running, and billing, while "
                "the cluster is idle (0 scales it down to nothing)",
                severity="warning",
            )
    elif c.get("type") == "computeinstance":
        _check_name(
            doc,
            at,
            name,
            INSTANCE_NAME,
            "a compute instance name has 3-24 letters, digits or '-', "
            "starts with a letter and ends with a letter or digit",
            key=True,
        )
        idle = c.get("idle_time_before_shutdown_minutes")
        if isinstance(idle, int) and not isinstance(idle, bool) and 0 < idle < 15:
            doc.problem(
                at + ("idle_time_before_shutdown_minutes",),
                f"{idle} minutes: Azure ML shuts an idle instance down after 15 to 4320 "
                "minutes (0: never, which bills it until it is stopped)",
            )


def _check_job(
    doc: Doc,
    name: str,
    job: dict,
    computes: dict,
    stand_ins: dict | None = None,
    runs: bool = False,
    assets: dict | None = None,
) -> None:
    at = ("jobs", name)
    compute = job.get("compute")
    if isinstance(compute, str) and not _unresolved(compute):
        bare = compute[len("azureml:") :] if compute.startswith("azureml:") else compute
        if bare not in computes:
            defined = ", ".join(sorted(computes)) or "none"
            doc.problem(
                at + ("compute",), f"'{bare}' is not a compute of this spec (defined: {defined})"
            )
        else:
            _check_instances(doc, at, job, bare, computes[bare])
    inputs = mapping(job.get("inputs"))
    outputs = mapping(job.get("outputs"))
    sweep = job.get("type") == "sweep"
    run_at = at + run_block(job)
    runs_what = mapping(job.get(run_at[2])) if len(run_at) > 2 else job
    declared = {"inputs": inputs, "outputs": outputs}
    if sweep:
        declared["search_space"] = _dicts(job.get("search_space"))
        _check_sweep(doc, at, job)
    for key in ("command", "program_arguments", "args"):
        if isinstance(runs_what.get(key), str):
            _check_placeholders(doc, run_at + (key,), runs_what[key], declared)
    code = runs_what.get("code")
    folder = relative_to(doc, run_at + ("code",), code) if is_local(code) else None
    if folder is not None and not _unresolved(code) and not _exists(folder):
        doc.problem(run_at + ("code",), f"code folder '{code}' does not exist")
    if job.get("type") == "parallel":
        parallel.check(doc, at, job, declared, folder, runs)
    if job.get("type") == "spark":
        spark.check(doc, at, job, folder, computes, stand_ins is not None, runs)
    for key, value in inputs.items():
        if isinstance(value, dict):
            if model_ref(value) is not None:  # a registered model: read from the registry
                continue
            if _check_data_input(doc, at + ("inputs", key), value, assets or {}, stand_ins, runs):
                continue
            _check_input(doc, at + ("inputs", key), value)
            if stand_ins is not None:
                _check_remote_input(doc, at + ("inputs", key), value, stand_ins, runs, assets)
    misplaced = {"type", "path", "mode"} & set(inputs)
    if "type" in misplaced and len(misplaced) >= 2:
        keys = " and ".join(f"'{k}'" for k in sorted(misplaced))
        doc.problem(
            at + ("inputs",),
            f"inputs named {keys} look like the fields of one input: "
            "did you mean inputs: {NAME: {type: ..., path: ...}}?",
            key=True,
            severity="warning",
        )


def _check_instances(doc: Doc, at: tuple, job: dict, name: str, compute: dict) -> None:
    """A job runs on at most as many nodes as its compute has (Azure ML queues it forever)."""
    count = mapping(job.get("resources")).get("instance_count")
    if compute.get("type") == "amlcompute":
        nodes, what = compute.get("max_instances", 1), "max_instances"
    else:
        nodes, what = 1, "one node (a compute instance)"
    if isinstance(count, int) and isinstance(nodes, int) and count > nodes:
        has = f"{what} {nodes}" if what == "max_instances" else what
        doc.problem(
            at + ("resources", "instance_count"),
            f"the job asks for {count} instances, but compute '{name}' has {has}",
        )


def _check_sweep(doc: Doc, at: tuple, job: dict) -> None:
    """Grid sampling enumerates choices: every parameter of a grid sweep must be a choice."""
    algo = job.get("sampling_algorithm")
    kind = algo.get("type") if isinstance(algo, dict) else algo
    if kind != "grid":
        return
    for name, param in _dicts(job.get("search_space")).items():
        if param.get("type") not in ("choice", None) and isinstance(param.get("type"), str):
            doc.problem(
                at + ("search_space", name, "type"),
                f"grid sampling needs choice parameters, "
                f"but '{name}' is {param['type']} (use random sampling, or a choice of values)",
            )


def _check_placeholders(doc: Doc, path: tuple, command: str, declared: dict) -> None:
    for m in EXPR.finditer(command):
        ns, _, name = m.group(1).partition(".")
        if ns in declared and name.split(".")[0] not in declared[ns]:
            known = ", ".join(sorted(declared[ns])) or "none"
            doc.problem(path, f"'{m.group(0)}' is not declared in {ns} (declared: {known})")


def _exists(path) -> bool:
    """Path.exists(), a name the system refuses (a part longer than 255 bytes, say) counting as
    missing."""
    try:
        return path.exists()
    except OSError:
        return False


def _check_input(doc: Doc, path: tuple, value: dict) -> None:
    kind, ref = value.get("type", "uri_folder"), value.get("path")
    if kind not in LOCAL_INPUT_TYPES or not is_local(ref) or _unresolved(ref):
        return
    local = relative_to(doc, path + ("path",), ref)
    if not _exists(local):
        doc.problem(path + ("path",), f"input path '{ref}' does not exist")
    elif kind == "uri_file" and not local.is_file():
        doc.problem(
            path + ("path",), f"input path '{ref}' is a folder, but the input's type is uri_file"
        )
    elif kind == "uri_folder" and not local.is_dir():
        doc.problem(
            path + ("path",), f"input path '{ref}' is a file, but the input's type is uri_folder"
        )


def _check_data(doc: Doc, assets: dict) -> None:
    """Each data asset's local content: there, and of its type (an mltable is a folder with an
    MLTable file). A URI is registered as it is."""
    for name, asset in assets.items():
        at = ("data", name, "path")
        if asset.local is None or datastores.parse(asset.path) is not None or asset.imported:
            continue  # a URI, registered as it is (a job reading it locally needs a stand-in)
        if not _exists(asset.local):
            doc.problem(at, f"data path '{asset.path}' does not exist")
        elif asset.type not in data_assets.TYPES:
            continue  # the schema check says so
        elif asset.type == "uri_file" and not asset.local.is_file():
            doc.problem(at, f"'{asset.path}' is a folder, but the asset's type is uri_file")
        elif asset.type != "uri_file" and not asset.local.is_dir():
            doc.problem(at, f"'{asset.path}' is a file, but the asset's type is {asset.type}")
        elif asset.type == "mltable" and not (asset.local / "MLTable").is_file():
            doc.problem(at, f"'{asset.path}' has no MLTable file, which an mltable asset needs")


def _check_models(doc: Doc, models: dict, jobs: dict, local: bool, runs: bool) -> None:
    """Each model's source: a local folder that is there (an mlflow_model's with its MLmodel
    file), or a job of the spec and one of its outputs. A URI is registered as it is on Azure;
    the local target cannot."""
    for name, model in models.items():
        if not MODEL_NAME.match(name):
            doc.problem(
                ("models", name),
                "a model name has 1-255 letters, digits, '-', '_' or '.', and starts with a "
                "letter or digit",
                key=True,
            )
        at = ("models", name, "path")
        if model.local is not None:
            if not _exists(model.local):
                doc.problem(at, f"model path '{model.path}' does not exist")
            elif model.type == "mlflow_model" and not (model.local / "MLmodel").is_file():
                doc.problem(at, f"'{model.path}' has no MLmodel file, which an mlflow_model needs")
            continue
        source = model.job
        if source is None:
            if any(model_assets.refers_to_job(m.group(1)) for m in EXPR.finditer(model.path)):
                doc.problem(
                    at,
                    f"'{model.path}': a model made by a job is ${{{{jobs.JOB.outputs.NAME}}}} "
                    "(a named output) or ${{jobs.JOB.artifacts}}/PATH (its run's artifacts)",
                )
            elif local and not _unresolved(model.path):
                doc.problem(
                    at,
                    f"model path '{model.path}' is remote: the local target registers a local "
                    "folder or what a job of the spec makes",
                    severity="error" if runs else "warning",
                )
            continue
        job = jobs.get(source.job)
        if job is None:
            close = difflib.get_close_matches(source.job, list(jobs), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            doc.problem(
                at,
                f"'{model.path}': this spec has no job '{source.job}' "
                f"({hint}jobs: {', '.join(sorted(jobs)) or 'none'})",
            )
        elif job.get("type") == "sweep":
            doc.problem(
                at,
                f"'{model.path}': job {source.job} is a sweep, whose trials each make their own "
                "outputs: register the model from a job that trains the best trial's parameters",
            )
        elif source.output is not None and source.output not in mapping(job.get("outputs")):
            known = ", ".join(sorted(mapping(job.get("outputs")))) or "none"
            doc.problem(
                at,
                f"'{model.path}': job {source.job} has no output '{source.output}' "
                f"(outputs: {known})",
            )
        elif source.output is None and not source.sub:
            doc.problem(
                at,
                f"'{model.path}': name the folder of the run's artifacts that holds the model, "
                f"as in ${{{{jobs.{source.job}.artifacts}}}}/model",
            )


def _check_data_input(
    doc: Doc, path: tuple, value: dict, assets: dict, stand_ins: dict | None, runs: bool
) -> bool:
    """An input whose path is azureml:NAME:VERSION or azureml:NAME@latest: True when NAME is a
    data asset of this spec (checked here: the input's type against the asset's). A name that is
    not one, in a spec that defines data assets, is said: with the names it has."""
    ref = data_assets.parse_ref(value.get("path"))
    if ref is None:
        return False
    if ref[0] in assets:
        asset = assets[ref[0]]
        want = value.get("type", "uri_folder")
        if want in data_assets.TYPES and want != asset.type:
            doc.problem(
                path + ("type",), f"the input is {want}, but data asset '{ref[0]}' is {asset.type}"
            )
        found = data_assets.input_source(doc, value["path"], assets, stand_ins or {})
        if stand_ins is not None and found == (None, None):
            doc.problem(
                path + ("path",),
                f"data asset '{ref[0]}' is {asset.path}, which the local target cannot read: map "
                f"it (or {value['path']}) to a local file or folder in targets.local.inputs",
                severity="error" if runs else "warning",
            )
        return True
    if assets and stand_ins is None:  # locally the remote input's message says it
        doc.problem(
            path + ("path",),
            f"{_not_an_asset(ref[0], assets)}: it must be registered in the workspace already",
            severity="warning",
        )
    return False


def _not_an_asset(name: str, assets: dict) -> str:
    close = difflib.get_close_matches(name, list(assets), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"'{name}' is not a data asset of this spec ({hint}defined: {', '.join(sorted(assets))})"


def _check_remote_input(
    doc: Doc, path: tuple, value: dict, stand_ins: dict, runs: bool, assets: dict | None = None
) -> None:
    """A remote input on the local target: it needs a local stand-in (an error for a run, a
    warning for validate: the spec may be meant for Azure)."""
    ref = value.get("path")
    if (
        value.get("type", "uri_folder") not in LOCAL_INPUT_TYPES
        or not isinstance(ref, str)
        or is_local(ref)
        or datastores.parse(ref) is not None  # a datastore's folder (datastores.check says which)
    ):
        return
    if ref in stand_ins:
        local = relative_to(doc, ("targets", "local", "inputs", ref), stand_ins[ref])
        if not _exists(local):
            doc.problem(
                ("targets", "local", "inputs", ref),
                f"the local stand-in '{stand_ins[ref]}' does not exist",
            )
        return
    named = data_assets.parse_ref(ref)
    doc.problem(
        path + ("path",),
        f"'{ref}' is remote, which the local target cannot read: map it to a local "
        "file or folder in targets.local.inputs"
        + (f"; {_not_an_asset(named[0], assets)}" if named and assets else ""),
        severity="error" if runs else "warning",
    )
