"""Load a lab spec: YAML with positions, `${{vars.*}}`/`${{env.*}}`, `file:` includes -> Spec."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import data as data_assets, datastores, models, parallel, spark, validate, yamldoc
from .backends import targets
from .environments import Environment, shown
from .errors import SpecError, UserError, read_text, special_file
from .pipelines import SENSITIVE, Pipeline, masked
from .refs import (
    EXPR,
    LEFT_FOR_JOB,
    LOCAL_INPUT_TYPES,
    NAMESPACES,
    is_local,
    local_inputs,
    mapping,
    model_ref,
    output_files,
    relative_to,
    run_block,
    unresolved,
)
from .sections import Sections
from .yamldoc import Doc

INCLUDABLE: tuple[str, ...] = ("jobs", "computes", "environments", "components", "data", "models")
INCLUDABLE += ("endpoints", "datastores", "schedules")
SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
_INT = re.compile(r"^-?(0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^-?(0|[1-9][0-9]*)\.[0-9]+([eE][-+]?[0-9]+)?$")


def parse_var(text: str) -> Any:
    """A --var value: JSON-like numbers and booleans keep their type, anything else is a string."""
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return {"true": True, "false": False}.get(text, text)


def secret_name(name: Any) -> bool:
    """Whether an environment variable's name says its value is secret (KEY, TOKEN, SECRET,
    PASSWORD)."""
    return any(word in str(name).upper() for word in SECRET_WORDS)


def secret_env_path(path: tuple) -> bool:
    """Whether `path` is a job's (a sweep trial's, a pipeline step's) environment variable: where
    secrets may go."""
    if len(path) < 4 or path[0] != "jobs":
        return False
    return (
        (len(path) == 4 and path[2] == "environment_variables")
        or (len(path) == 5 and path[2:4] == ("trial", "environment_variables"))
        or (len(path) == 6 and path[2] == "jobs" and path[4] == "environment_variables")
    )


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class Resolver:
    """The scalar hook that resolves `${{vars.X}}` and `${{env.X}}` while the YAML is built."""

    def __init__(
        self, variables: dict | None, env: Mapping[str, str], target: str, secret_vars=frozenset()
    ):
        self.variables, self.env, self.target = variables, env, target
        self.secret_vars = secret_vars
        self.declared: set = set()  # variables the spec declares, with a value or not
        # path -> (what made its value secret, e.g. "${{env.API_TOKEN}}", where)
        self.secret: dict = {}

    def __call__(self, text: str, node: yaml.ScalarNode, path: tuple, doc: Doc) -> Any:
        if "${{" not in text:
            return text
        whole = EXPR.fullmatch(text)
        parts, last = [], 0
        for m in EXPR.finditer(text):
            value = self.resolve(m, text, node, path, doc)
            if whole:
                return value
            parts.append(text[last : m.start()] + _text(value))
            last = m.end()
        return "".join(parts) + text[last:]

    def resolve(self, m: re.Match, text: str, node: yaml.ScalarNode, path: tuple, doc: Doc) -> Any:
        expr = m.group(1)
        ns, _, name = expr.partition(".")
        at = _column(node, m.start())
        if ns in LEFT_FOR_JOB:
            return m.group(0)
        if ns == "env" and name:
            if name in self.env:
                if secret_name(name) or datastores.secret_path(path):
                    self.secret[path] = (m.group(0), (doc.file, *at))
                return self.env[name]
            if path[:1] == ("targets",) and path[1:2] != (self.target,):
                return m.group(0)  # another target's setting: resolved when that target is used
            doc.problem(path, f"environment variable '{name}' is not set", at=(doc.file, *at))
            return m.group(0)
        if ns == "vars" and name and self.variables is not None:
            if path[:1] == ("variables",):
                doc.problem(path, "variables cannot refer to other variables", at=(doc.file, *at))
                return m.group(0)
            if name in self.variables:
                if name in self.secret_vars:
                    self.secret[path] = (f"variable '{name}'", (doc.file, *at))
                return self.variables[name]
            if name in self.declared:
                doc.problem(
                    path,
                    f"variable '{name}' has no value: give it with --var {name}=VALUE",
                    at=(doc.file, *at),
                )
                return m.group(0)
            known = ", ".join(sorted(self.variables)) or "none"
            doc.problem(path, f"undefined variable '{name}' (defined: {known})", at=(doc.file, *at))
            return m.group(0)
        if ns == "vars" and name:
            return m.group(0)
        if models.refers_to_job(expr):
            if path[:1] == ("models",) and path[2:] == ("path",):
                return m.group(0)  # a model made by a job: registered once the job completes
            doc.problem(
                path,
                f"'${{{{{expr}}}}}' is what a job makes: only a model's path "
                "(models.NAME.path) may refer to it",
                at=(doc.file, *at),
            )
            return m.group(0)
        doc.problem(
            path,
            f"unknown expression '${{{{{expr}}}}}' (namespaces: {', '.join(NAMESPACES)})",
            at=(doc.file, *at),
        )
        return m.group(0)


def _column(node: yaml.ScalarNode, offset: int) -> tuple[int, int]:
    """Line and column of `offset` inside a scalar: exact for one-line scalars, else its start."""
    line, col = node.start_mark.line + 1, node.start_mark.column + 1
    if node.start_mark.line != node.end_mark.line or node.style not in (None, '"', "'"):
        return line, col
    return line, col + offset + (1 if node.style else 0)


def resolve_variables(
    doc: Doc,
    node: Any,
    overrides: Mapping[str, Any],
    generated: Mapping[str, str],
    env: Mapping[str, str],
    target: str,
    seed: str | None = None,
) -> tuple[dict, dict, set]:
    """Variable values (overrides > state's generated > default > generate), the values of
    generated variables that the state does not hold yet, and the names of the secret ones
    (`secret: true`, or a default from ${{env.NAME}} with a secret NAME). A value generated with
    a `seed` (the state's: see context.open_context) is derived from it, so that plan shows the
    names the next apply makes; without one it is random."""
    hook = Resolver(None, env, target)
    if node is None:
        raw: Any = {}
    else:
        sub = Doc(doc.file)  # positions and problems come again with the whole document
        raw = yamldoc.build(node, sub, hook, ("variables",))
        if not isinstance(raw, dict):
            return {}, {}, set()  # the schema check reports the shape
    secret = {p[1] for p in hook.secret if len(p) > 1}
    secret |= {
        name for name, spec in raw.items() if isinstance(spec, dict) and spec.get("secret") is True
    }
    values, fresh = {}, {}
    for name, spec in raw.items():
        generate = isinstance(spec, dict) and "generate" in spec
        if name in overrides:
            values[name] = overrides[name]
        elif generate and name in generated:
            values[name] = generated[name]
        elif generate:
            length = spec.get("length", 6)
            length = (
                length if isinstance(length, int) and 1 <= length <= 32 else 6
            )  # else the schema says why
            values[name] = (
                hashlib.sha256(f"{seed}|{name}".encode()).hexdigest()[:length]
                if seed
                else secrets.token_hex((length + 1) // 2)[:length]
            )
        elif isinstance(spec, dict):
            if "default" in spec:
                values[name] = spec["default"]
        else:
            values[name] = spec
        if generate and name not in generated:
            fresh[name] = values[name]
    return values, fresh, secret


@dataclass(frozen=True)
class Input:
    name: str
    type: str | None  # None for a literal value
    value: Any  # the literal, or the path as written
    local_path: Path | None  # resolved local file or folder, when it is one
    mode: str | None = None
    asset: tuple[str, str | None] | None = None  # a data asset of the spec's: (name, version)
    model: tuple[str, str | None] | None = None  # a registered model: (name, version or latest)


@dataclass(frozen=True)
class Compute:
    name: str
    type: str
    fields: dict

    @property
    def slots(self) -> int:
        """How many jobs it runs at once: an instance one, a cluster its max_instances."""
        if self.type == "amlcompute":
            return int(self.fields.get("max_instances", 1))
        return 1


@dataclass(frozen=True)
class Job:
    name: str
    fields: dict  # the CLI v2 fields, includes merged, `file` dropped
    code: Path | None
    inputs: dict = field(default_factory=dict)
    source: Path | None = None  # the CLI v2 file it came from, if any
    secrets: frozenset = frozenset()  # names of environment_variables whose values are secret
    env: Environment = Environment(shown(None))  # what its `environment` resolves to
    pipeline: Pipeline | None = None  # a pipeline job's steps, resolved

    @property
    def is_sweep(self) -> bool:
        return self.fields.get("type") == "sweep"

    @property
    def is_pipeline(self) -> bool:
        return self.fields.get("type") == "pipeline"

    @property
    def is_parallel(self) -> bool:
        return self.fields.get("type") == "parallel"

    @property
    def is_spark(self) -> bool:
        return self.fields.get("type") == "spark"

    @property
    def trial(self) -> dict:
        """What runs: a sweep's `trial` block, a parallel job's `task`, or the command job's own
        fields."""
        block = run_block(self.fields)
        return (_get(self.fields, block) or {}) if block else self.fields

    @property
    def command(self) -> str:
        """The command; a parallel job's entry script and program arguments."""
        if self.is_parallel:
            return parallel.command(self.trial)
        if self.is_spark:
            return spark.command(self.fields)
        return self.trial.get("command", "")

    @property
    def compute(self) -> str | None:
        c = self.fields.get("compute")
        return c[len("azureml:") :] if isinstance(c, str) and c.startswith("azureml:") else c

    @property
    def outputs(self) -> dict:
        return self.fields.get("outputs") or {}

    @property
    def output_files(self) -> dict[str, str]:
        """Its `type: uri_file` outputs: name -> the file's name (the rest are folders)."""
        return output_files(self.outputs)

    @property
    def environment(self) -> Any:
        return self.trial.get("environment")

    @property
    def env_vars(self) -> dict:
        """The environment variables with their values, secret ones too: for the job's process
        only."""
        block = self.fields if self.is_parallel else self.trial  # a parallel job's: beside task
        return {k: _text(v) for k, v in (block.get("environment_variables") or {}).items()}

    @property
    def shown_env_vars(self) -> dict:
        """The environment variables as mlrun shows and stores them: secret values as
        (sensitive)."""
        return masked(self.env_vars, self.secrets)

    @property
    def timeout(self) -> int | None:
        return (self.fields.get("limits") or {}).get("timeout")

    @property
    def instance_count(self) -> int:
        """The nodes it runs on (resources.instance_count): slots of its compute, locally."""
        count = (self.fields.get("resources") or {}).get("instance_count", 1)
        return count if isinstance(count, int) and count > 0 else 1

    @property
    def distribution(self) -> dict | None:
        """distribution: {type: pytorch|tensorflow|mpi, ...}, or None for a plain job."""
        return self.fields.get("distribution") or None

    # --- sweep jobs (type: sweep) ---

    @property
    def search_space(self) -> dict:
        return self.fields.get("search_space") or {}

    @property
    def sampling(self) -> dict:
        """The sampling algorithm as a mapping: {type: grid|random|bayesian, seed?, ...}."""
        algo = self.fields.get("sampling_algorithm") or "random"
        return {"type": algo} if isinstance(algo, str) else dict(algo)

    @property
    def objective(self) -> dict:
        return self.fields.get("objective") or {}

    @property
    def limits(self) -> dict:
        return self.fields.get("limits") or {}

    @property
    def early_termination(self) -> dict | None:
        return self.fields.get("early_termination")


@dataclass
class Spec:
    path: Path
    name: str
    description: str
    variables: dict
    workspace: dict
    computes: dict
    jobs: dict
    queries: dict
    targets: dict
    generated: dict  # generated variables not yet in the state
    doc: Doc
    secret_vars: frozenset = frozenset()  # variables whose values are never shown or stored
    environments: dict = field(default_factory=dict)  # name -> Environment (environments:)
    components: dict = field(default_factory=dict)  # name -> pipelines.Component (components:)
    data: dict = field(default_factory=dict)  # name -> data.DataAsset (data:)
    models: dict = field(default_factory=dict)  # name -> models.Model (models:)
    endpoints: dict = field(default_factory=dict)  # name -> endpoints.Endpoint (endpoints:)
    # name -> datastores.Datastore (datastores:, and the workspace's own)
    datastores: dict = field(default_factory=dict)
    schedules: dict = field(default_factory=dict)  # name -> schedules.Schedule (schedules:)
    component_environments: dict = field(default_factory=dict)  # component -> its Environment
    expires_after: str | None = None  # the lab's expiry (see expiry.py)

    def experiment(self, job: Job) -> str:
        return job.fields.get("experiment_name") or self.name

    def shown_variables(self) -> dict:
        """The variables as plans show and save them: secret values as (sensitive)."""
        return {k: SENSITIVE if k in self.secret_vars else v for k, v in self.variables.items()}


def read_doc(
    path: str | os.PathLike,
    *,
    target: str = "local",
    overrides: Mapping[str, Any] | None = None,
    generated: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    seed: str | None = None,
) -> tuple[Doc, dict, dict]:
    """The spec parsed, variables resolved, includes merged; also the variables' values and the
    newly generated ones. Problems are in the Doc."""
    env = os.environ if env is None else env
    file = str(path)
    text = read_text(file, "spec file")
    doc = Doc(file)
    node = yamldoc.compose(text, doc)
    if node is None:
        return doc, {}, {}
    if not isinstance(node, yaml.MappingNode):
        doc.problem((), f"a lab spec must be a mapping, not {_kind(node)}")
        return doc, {}, {}
    var_node = next(
        (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == "variables"),
        None,
    )
    overrides = dict(overrides or {})
    values, fresh, secret = resolve_variables(
        doc, var_node, overrides, generated or {}, env, target, seed
    )
    declared = _declared_variables(var_node)
    for name in sorted(set(overrides) - declared):
        doc.problem(
            (),
            f"--var {name}: the spec has no such variable "
            f"(defined: {', '.join(sorted(declared)) or 'none'})",
        )
    hook = Resolver(values, env, target, frozenset(secret))
    hook.declared = declared
    doc.data = yamldoc.build(node, doc, hook)
    if isinstance(doc.data, dict):
        _include(doc, hook)
    doc.secret.update({("variables", name): values[name] for name in secret if name in values})
    jobs = doc.data.get("jobs") if isinstance(doc.data, dict) else None
    for job, block in jobs.items() if isinstance(jobs, dict) else ():
        places = [("environment_variables",), ("trial", "environment_variables")]
        steps = block.get("jobs") if isinstance(block, dict) else None
        for step in steps if isinstance(steps, dict) else ():
            places.append(("jobs", step, "environment_variables"))
            places.append(("jobs", step, "component", "environment_variables"))
        for at in places:
            _secret_names(doc, ("jobs", job) + at)
    for name in mapping(doc.data.get("components")) if isinstance(doc.data, dict) else ():
        _secret_names(doc, ("components", name, "environment_variables"))
    for at in _pipeline_components(doc.data):  # their steps' variables, by name
        for step in mapping(_get(doc.data, at + ("jobs",))):
            _secret_names(doc, at + ("jobs", step, "environment_variables"))
            _secret_names(doc, at + ("jobs", step, "component", "environment_variables"))
    for where, (what, at) in hook.secret.items():
        if where[:1] == ("variables",):
            continue  # a secret variable's own default (resolve_variables saw it)
        if secret_env_path(where) or datastores.secret_path(where):
            doc.secret[where] = _get(doc.data, where)
        else:
            doc.problem(
                where,
                f"{what} is secret: use it only in a job's environment_variables (the command "
                "reads it as $NAME), so that it is never shown or stored",
                at=at,
            )
    datastores.clear_text(doc, {w for w in hook.secret if datastores.secret_path(w)})
    return doc, values, fresh


def _pipeline_components(data: Any) -> list[tuple]:
    """Where the spec's pipeline components are: in components:, and batch deployments' own."""
    found: list[tuple] = [
        ("components", name)
        for name, c in mapping(mapping(data).get("components")).items()
        if mapping(c).get("type") == "pipeline"
    ]
    for name, endpoint in mapping(mapping(data).get("endpoints")).items():
        for dep, block in mapping(mapping(endpoint).get("deployments")).items():
            if isinstance(mapping(block).get("component"), dict):
                found.append(("endpoints", name, "deployments", dep, "component"))
    return found


def _secret_names(doc: Doc, at: tuple) -> None:
    """The environment variables at `at` whose names say they are secret."""
    env = _get(doc.data, at)
    for key, value in env.items() if isinstance(env, dict) else ():
        if secret_name(key):
            doc.secret[at + (key,)] = value


def _get(data: Any, path: tuple) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def redact(doc: Doc) -> None:
    """Secret values out of the doc's problems (a check may quote a value it rejects)."""
    values = sorted(
        {_text(v) for v in doc.secret.values() if len(_text(v)) >= 3}, key=len, reverse=True
    )
    if values:
        doc.problems[:] = [
            dataclasses.replace(p, message=_redacted(p.message, values)) for p in doc.problems
        ]


def _redacted(text: str, values: list) -> str:
    for value in values:
        text = text.replace(value, SENSITIVE)
    return text


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return "a scalar value" if isinstance(node, yaml.ScalarNode) else "a mapping"


def _declared_variables(node: Any) -> set:
    if isinstance(node, yaml.MappingNode):
        return {k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    return set()


def _include(doc: Doc, hook: Resolver) -> None:
    """Merge `file:` includes of CLI v2 job/compute files; the including block's keys win."""
    for section in INCLUDABLE:
        blocks = doc.data.get(section)
        if not isinstance(blocks, dict):
            continue
        for name, block in blocks.items():
            if isinstance(block, dict) and isinstance(block.get("file"), str):
                if unresolved(block["file"]):
                    doc.broken.add((section, name))
                else:
                    blocks[name] = _merge_include(doc, (section, name), block, hook)
    for name, job in mapping(doc.data.get("jobs")).items():
        if isinstance(job, dict) and job.get("type") == "pipeline":
            _component_pipeline(doc, ("jobs", name), job)
            _include_components(doc, ("jobs", name), job, hook)
    for name, comp in mapping(doc.data.get("components")).items():  # a pipeline component's
        if isinstance(comp, dict) and comp.get("type") == "pipeline":  # steps' component files
            _include_components(doc, ("components", name), comp, hook)
    local = mapping(mapping(doc.data.get("targets")).get("local"))
    stand_ins = mapping(local.get("components"))  # components registered outside the spec
    for name, ref in stand_ins.items():
        at = ("targets", "local", "components", name)
        if isinstance(ref, str) and not unresolved(ref):
            merged = _merge_include(doc, at, {"file": ref}, hook, what="component file")
            stand_ins[name] = ref = merged if "file" not in merged else ref
        if isinstance(ref, dict) and ref.get("type") == "pipeline":
            _include_components(doc, at, ref, hook)
    for name, endpoint in mapping(doc.data.get("endpoints")).items():  # deployment files
        deployments = mapping(endpoint.get("deployments") if isinstance(endpoint, dict) else None)
        for dep, block in deployments.items():
            at = ("endpoints", name, "deployments", dep)
            if isinstance(block, dict) and isinstance(block.get("file"), str):
                if unresolved(block["file"]):
                    doc.broken.add(at)
                else:
                    deployments[dep] = block = _merge_include(doc, at, block, hook)
            if isinstance(block, dict) and block.get("type") == "pipeline":
                _include_pipeline_component(doc, at, block, hook)


COMPONENT_STEP = "component"  # the one step of a pipeline job that names a component


def _component_pipeline(doc: Doc, at: tuple, job: dict) -> None:
    """A pipeline job that runs a pipeline component (`component:` in place of `jobs:`, as
    azureml-examples' deploy-pipelines try a component before deploying it) read as a pipeline
    of one step (`component`) running it, each of the job's inputs and outputs passed through;
    the step's positions are the job's."""
    if "component" not in job or "jobs" in job:
        return
    ref = job.pop("component")
    step: dict = {"type": "pipeline", "component": ref}
    for section in ("inputs", "outputs"):
        if isinstance(job.get(section), dict) and job[section]:
            step[section] = {k: "${{parent." + f"{section}.{k}" + "}}" for k in job[section]}
    job["jobs"] = {COMPONENT_STEP: step}
    inner = at + ("jobs", COMPONENT_STEP)
    for table in (doc.pos, doc.keypos):
        for path, mark in list(table.items()):
            if path[: len(at) + 1] == at + ("component",):
                table[inner + path[len(at) :]] = mark
            elif path[: len(at) + 1] in (at + ("inputs",), at + ("outputs",)):
                table[inner + path[len(at) :]] = mark
    doc.pos.setdefault(inner, doc.pos.get(at + ("component",), doc.where(at)))


def _include_pipeline_component(doc: Doc, at: tuple, deployment: dict, hook: Resolver) -> None:
    """A pipeline batch deployment's `component: pipeline.yml` (or file:pipeline.yml), an
    unmodified pipelineComponent file read in place of the reference, then its steps' component
    files (paths in each stay relative to the file that holds them)."""
    ref = deployment.get("component")
    where = at + ("component",)
    if isinstance(ref, str) and not ref.startswith("azureml:") and not unresolved(ref):
        file = ref[len("file:") :] if ref.startswith("file:") else ref
        merged = _merge_include(doc, where, {"file": file}, hook, what="component file")
        if "file" not in merged:  # read (else the problem is said)
            deployment["component"] = ref = merged
    if isinstance(ref, dict) and ref.get("type") == "pipeline":
        _include_components(doc, where, ref, hook)


def _include_components(doc: Doc, at: tuple, pipeline: dict, hook: Resolver) -> None:
    """A pipeline step's `component: ./x.yml` (or file:x.yml), an unmodified commandComponent
    file, read in place of the reference (paths in it stay relative to it)."""
    for step, block in mapping(pipeline.get("jobs")).items():
        sweep = isinstance(block, dict) and block.get("type") == "sweep"  # its trial's file
        ref = block.get("trial" if sweep else "component") if isinstance(block, dict) else None
        where = at + ("jobs", step, "trial" if sweep else "component")
        if isinstance(ref, dict) and ref.get("type") == "pipeline":  # nested inline
            _include_components(doc, where, ref, hook)
        if not isinstance(ref, str) or ref.startswith("azureml:") or unresolved(ref):
            continue
        file = ref[len("file:") :] if ref.startswith("file:") else ref
        merged = _merge_include(doc, where, {"file": file}, hook, what="component file")
        if "file" not in merged:  # read (else the problem is said)
            block[where[-1]] = merged
            if merged.get("type") == "pipeline":  # a nested pipeline: its steps' files too
                path = doc.includes.get(where)
                if path in {doc.includes.get(where[:i]) for i in range(1, len(where))}:
                    doc.problem(
                        where,
                        f"component file '{ref}' runs itself: pipelines nest, but not in a cycle",
                    )
                    doc.broken.add(where)
                else:
                    _include_components(doc, where, merged, hook)


def _merge_include(
    doc: Doc, at: tuple, block: dict, hook: Resolver, what: str = "include file"
) -> dict:
    ref = block["file"]
    path = relative_to(doc, at + ("file",), ref)
    try:
        if special_file(path):
            raise OSError("not a regular file")
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError) as e:  # ValueError: not UTF-8, or a NUL in the name
        reasons: dict[type, str] = {
            FileNotFoundError: "not found",
            IsADirectoryError: "is a folder",
        }
        why = reasons.get(type(e)) or f"cannot be read ({e})"
        doc.problem(at + ("file",), f"{what} '{ref}' {why}")
        doc.broken.add(at)  # what the file would give is unknown: missing keys are no news
        return block
    sub = Doc(str(path))
    node = yamldoc.compose(text, sub)
    data = yamldoc.build(node, sub, hook, at) if node is not None else None  # paths as in the spec
    if node is not None and not isinstance(data, dict):
        sub.problem(at, f"an included file must be a mapping, not {_kind(node)}")
    doc.problems.extend(sub.problems)
    doc.broken |= sub.broken
    if not isinstance(data, dict):
        doc.broken.add(at)
        return block
    if "file" in data:
        doc.problem(
            at + ("file",),
            "an included file cannot include another: includes do not nest",
            at=sub.where(at + ("file",), key=True),
        )
    own = {k: v for k, v in block.items() if k != "file"}
    for table, into in ((sub.pos, doc.pos), (sub.keypos, doc.keypos)):
        for p, mark in table.items():
            if (
                len(p) > len(at) and p[len(at)] not in own
            ):  # the block's own keys keep their positions
                into[p] = mark
    doc.includes[at] = path
    merged = {k: v for k, v in data.items() if k != "file"}
    merged.update(own)
    return merged


def load(
    path: str | os.PathLike,
    *,
    target: str = "local",
    overrides: Mapping[str, Any] | None = None,
    generated: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    runs: bool = False,
    kept: Callable[[str], tuple[Mapping[str, str], str]] | None = None,
) -> Spec:
    """A valid Spec, or SpecError with every problem found (warnings ride along on the Spec).
    `runs`: it is loaded to run on `target` (plan, apply), so what would stop a run is an error.
    `kept(name)`: the generated variables' values the lab of that name keeps (its state), used
    instead of new ones, and the seed new ones are derived from (so that plan and the apply after
    it agree); the spec is read again with them before it is checked, once."""
    doc, values, fresh = read_doc(
        path, target=target, overrides=overrides, generated=generated, env=env
    )
    name = doc.data.get("name") if isinstance(doc.data, dict) else None
    if fresh and kept is not None and isinstance(name, str):
        known, seed = kept(name)
        generated = {**(generated or {}), **known}
        doc, values, fresh = read_doc(
            path, target=target, overrides=overrides, generated=generated, env=env, seed=seed
        )
    sections = validate.check(doc, target=target, runs=runs)
    redact(doc)
    if any(p.severity == "error" for p in doc.problems):
        raise SpecError(doc.problems)
    stand_ins = local_inputs(doc.data) if targets.get(target).runs_here else {}
    return _typed(doc, sections, values, fresh, stand_ins)


def check_file(
    path: str | os.PathLike, *, target: str = "local", overrides: Mapping[str, Any] | None = None
) -> Doc:
    """`mlrun validate` of one file: the parsed spec with every problem found (secrets redacted)."""
    doc, _, _ = read_doc(path, target=target, overrides=overrides)
    validate.check(doc, target=target)
    redact(doc)
    return doc


def parse_vars(pairs) -> dict:
    """--var NAME=VALUE pairs as a mapping (values typed by parse_var)."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UserError(f"--var {pair}: expected NAME=VALUE")
        out[name] = parse_var(value)
    return out


def _typed(doc: Doc, sections: Sections, variables: dict, fresh: dict, stand_ins: dict) -> Spec:
    data = doc.data
    computes = {n: Compute(n, c["type"], c) for n, c in (data.get("computes") or {}).items()}
    jobs = {n: _job(doc, sections, n, j, stand_ins) for n, j in (data.get("jobs") or {}).items()}
    envs = sections.environments
    return Spec(
        path=Path(doc.file),
        name=data["name"],
        description=data.get("description", ""),
        variables=variables,
        workspace=data["workspace"],
        computes=computes,
        jobs=jobs,
        queries=data.get("queries") or {},
        targets=data.get("targets") or {},
        generated=fresh,
        doc=doc,
        secret_vars=frozenset(p[1] for p in doc.secret if p[0] == "variables"),
        components=sections.components,
        data=sections.data,
        models=sections.models,
        endpoints=sections.endpoints,
        datastores=sections.datastores,
        schedules=sections.schedules,
        expires_after=None if data.get("expires_after") is None else str(data["expires_after"]),
        environments={
            n: envs[("environments", n)]
            for n in data.get("environments") or {}
            if ("environments", n) in envs
        },
        component_environments={  # a parallel component's is its task's
            n: envs[at]
            for n, c in sections.components.items()
            if (at := ("components", n) + run_block(c.fields) + ("environment",)) in envs
        },
    )


def _job(doc: Doc, sections: Sections, name: str, fields: dict, stand_ins: dict) -> Job:
    assets = sections.data
    at = ("jobs", name)
    block = run_block(fields)
    code_at = at + block + ("code",)
    code_ref = (_get(fields, block) or {}).get("code") if block else fields.get("code")
    code = relative_to(doc, code_at, code_ref) if is_local(code_ref) else None
    inputs = {}
    for key, value in (fields.get("inputs") or {}).items():
        if isinstance(value, dict):
            ref, local, asset = value.get("path"), None, None
            found = (
                None if model_ref(value) else data_assets.input_source(doc, ref, assets, stand_ins)
            )
            if found is not None:  # one of the spec's data assets
                local, asset = found
            elif value.get("type", "uri_folder") in LOCAL_INPUT_TYPES and is_local(ref):
                local = relative_to(doc, at + ("inputs", key, "path"), ref)
            elif ref in stand_ins:  # a remote input's local stand-in (targets.local.inputs)
                local = relative_to(doc, ("targets", "local", "inputs", ref), stand_ins[ref])
            else:  # a datastore's path: in its folder, on a target that runs here
                local = datastores.local_path(sections.datastores, ref)
            inputs[key] = Input(
                key,
                value.get("type", "uri_folder"),
                ref if ref is not None else value.get("default"),
                local,
                value.get("mode"),
                asset,
                model_ref(value),
            )
        else:
            inputs[key] = Input(key, None, value, None)
    vars_block = () if fields.get("type") == "parallel" else block  # beside a parallel's task
    env_at = at + vars_block + ("environment_variables",)
    env = (_get(fields, vars_block) or {}) if vars_block else fields
    secrets = frozenset(
        k
        for k in env.get("environment_variables") or {}
        if secret_name(k) or env_at + (k,) in doc.secret
    )
    run_at = code_at[:-1]  # the job, its sweep trial or its parallel task
    runs = (_get(fields, block) or {}) if block else fields
    resolved = sections.environments.get(run_at) or Environment(
        shown(runs.get("environment")), ref=runs.get("environment")
    )
    if fields.get("type") == "spark":  # with PySpark of its runtime (spark.py)
        resolved = spark.environment(resolved, fields)
    pipeline = sections.pipelines.get(at)
    return Job(name, fields, code, inputs, doc.includes.get(at), secrets, resolved, pipeline)
