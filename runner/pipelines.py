"""Pipeline jobs (type: pipeline) and components, as Azure ML CLI v2 has them.

A pipeline's steps are inline command jobs or components (a component file read in by spec.py,
an inline one, or `azureml:NAME:VERSION` / `azureml:NAME@latest` of the spec's `components:`);
a `type: parallel` step is an inline parallel job or runs a parallel component, whose settings the
step may set again, checked as a parallel job is (parallel.check).
A step's inputs are literals, assets, or bindings: `${{parent.inputs.X}}` (the pipeline's input)
and `${{parent.jobs.STEP.outputs.Y}}` (another step's output, which orders the two); a step's
output may feed the pipeline's own (`${{parent.outputs.Z}}`). Reading a pipeline resolves all of
it into Steps in dependency order and reports, located, what is wrong: unknown steps, outputs or
inputs in a binding, cycles, missing required inputs, literals outside a component input's
min/max/enum, unknown components and computes, unknown settings. Stdlib and PyYAML only.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import data as data_assets, datastores, flows, parallel, spark, sweep
from .environments import Environment, Reader, parse_ref
from .refs import (
    LOCAL_INPUT_TYPES,
    is_local,
    mapping,
    model_ref,
    output_file,
    relative_to,
    unresolved,
)
from .yamldoc import Doc

SENSITIVE = "(sensitive)"  # what plans, reports, state and exports show instead of a secret value


def masked(variables: dict, secrets: frozenset | set) -> dict:
    """Environment variables as mlrun shows and stores them: the values of `secrets` hidden."""
    return {k: SENSITIVE if k in secrets else v for k, v in variables.items()}


PARENT = re.compile(r"^\$\{\{\s*parent\.(inputs|outputs)\.([\w.-]+)\s*\}\}$")
STEP_OUTPUT = re.compile(r"^\$\{\{\s*parent\.jobs\.([\w.-]+)\.outputs\.([\w.-]+)\s*\}\}$")
SETTINGS = ("default_compute", "default_datastore", "continue_on_step_failure", "force_rerun")
LITERAL_TYPES = ("string", "integer", "number", "boolean")
NESTED = "in pipeline step "  # how plans say which nested pipeline a step is of
ARTIFACTS = "artifacts"  # a step output that is the step's own artifacts (./outputs and ./logs)
REGISTRY_COMPONENT = re.compile(
    r"^azureml://registries/(?P<registry>[^/]+)/components/(?P<name>[^/@:]+)"
    r"(?:/versions/(?P<version>[^/]+)|/labels/(?P<label>[^/]+))?$"
)
OUTSIDE = "targets.local.components"  # where components registered outside the spec are mapped


@dataclass(frozen=True)
class Source:
    """Where a step input's value comes from: a literal, a local path (with `asset`: a data asset
    of the spec's, as defined there), an older version of one (asset: its (name, version), read
    from the workspace), a registered model ((name, version or None), read from the workspace's
    registry when the step runs), a remote asset (which a local run needs a stand-in for), another
    step's output (step, output), or nothing (an optional input left out)."""

    kind: str  # literal | path | asset | model | remote | step | unset
    value: Any = None
    asset: tuple[str, str | None] | None = None  # a data asset of the spec's: (name, version)


@dataclass
class Step:
    name: str
    command: str
    code: Path | None
    env: Environment
    compute: str | None  # a compute of the spec; None: no compute (serverless)
    inputs: dict[str, Source]
    outputs: dict[str, str | None]  # output -> the pipeline output it feeds, if any
    env_vars: dict[str, str] = field(default_factory=dict)
    deterministic: bool = True
    component: str | None = None  # what it runs, as plans show it (NAME:VERSION, a file)
    fields: dict = field(default_factory=dict)  # display_name, tags, resources, ...
    secrets: frozenset = frozenset()  # names of env_vars whose values are secret
    output_files: dict[str, str] = field(default_factory=dict)  # uri_file outputs: name -> file
    # a parallel step's settings and task (parallel.settings reads them), else None
    parallel: dict | None = None
    input_types: dict[str, str] = field(default_factory=dict)  # data inputs: name -> type
    at: tuple = ()  # where the step is written (a nested pipeline's step: inside its component)
    nested: str | None = None  # a nested pipeline's step: `in OUTER (its component)`, for plans
    notes: list[str] = field(default_factory=list)  # what plans say beside why it runs
    includes: list[Path] = field(default_factory=list)  # additional_includes: copied beside code
    # a sweep step's search_space, sampling_algorithm, objective, limits, early_termination
    sweep: dict | None = None
    # outputs declared on a datastore path (its own block's, or the pipeline output's it feeds):
    # name -> the path (${{default_datastore}} resolved), where a local run copies them
    output_paths: dict[str, str] = field(default_factory=dict)
    # inputs on a datastore path another step of the pipeline writes: input -> that step
    written_by: dict[str, str] = field(default_factory=dict)
    spark: dict | None = None  # a spark step's fields (its component's and its own; spark.py)
    flow: dict | None = None  # a prompt flow step's flow file, as read (flows.py)

    @property
    def shown_env_vars(self) -> dict[str, str]:
        """The environment variables as mlrun shows and stores them: secret values hidden."""
        return masked(self.env_vars, self.secrets)

    @property
    def upstream(self) -> list[str]:
        return sorted({s.value[0] for s in self.inputs.values() if s.kind == "step"})

    @property
    def data(self) -> tuple[str | None, Path | None]:
        """A parallel step's input_data: the type of the input it names, and the local folder
        (or file) that is, when it is one (another step's output is not there yet)."""
        name = parallel.settings(self.parallel or {}).input_name or ""
        source = self.inputs.get(name)
        path = source.value if source is not None and source.kind == "path" else None
        return self.input_types.get(name), path


@dataclass
class Pipeline:
    steps: dict[str, Step]  # in dependency order
    outputs: dict[str, tuple[str, str] | None]  # pipeline output -> (step, output) feeding it
    force_rerun: bool = False
    continue_on_step_failure: bool = False

    def downstream(self, name: str) -> set[str]:
        """Every step that needs `name`'s outputs, directly or not."""
        out, todo = set(), [name]
        while todo:
            current = todo.pop()
            for s in self.steps.values():
                if current in s.upstream and s.name not in out:
                    out.add(s.name)
                    todo.append(s.name)
        return out


@dataclass
class ParallelFields:
    """A parallel step's parallel settings and task (its component's, with the step's own over
    them), and where each was written."""

    fields: dict
    origin: dict[str, tuple]


@dataclass
class Component:
    """A component of the spec's `components:` (az ml component create)."""

    name: str
    version: str | None
    fields: dict


def strip_compute(value: Any) -> str | None:
    """`azureml:cpu-cluster` -> `cpu-cluster`; `azureml:serverless` and none -> None."""
    if not isinstance(value, str):
        return None
    bare = value[len("azureml:") :] if value.startswith("azureml:") else value
    return None if bare == "serverless" else bare


def sweep_note(found: dict | None) -> list[str]:
    """What a plan says of a sweep step: its trials and objective, and what it hands on."""
    if found is None:
        return []
    algo = found["sampling_algorithm"] or "random"
    sampling = {"type": algo} if isinstance(algo, str) else dict(algo)
    count = sweep.trial_count(found["search_space"], sampling, found["limits"])
    goal = found["objective"].get("goal", "maximize")
    metric = found["objective"].get("primary_metric")
    return [
        f"sweep of {count} trials ({sweep.local_algorithm(sampling)}, {goal} {metric}): the best "
        "trial's outputs are handed on"
    ]


class PipelineReader:
    """Reads one pipeline job (at `at` in `doc`) into a Pipeline, saying what is wrong."""

    def __init__(
        self,
        doc: Doc,
        envs: Reader,
        components: dict[str, Component],
        defined_envs: dict,
        substitutes: dict | None,
        computes: set,
        stand_ins: dict,
        local: bool,
        assets: dict | None = None,
        environments: dict | None = None,
        runs: bool = False,
        stores: dict | None = None,
        mapped: dict | None = None,
    ):
        self.doc, self.envs, self.components = doc, envs, components
        self.stores = stores or {}  # datastores by name: a local one's paths are in its folder
        self.default_datastore = "workspaceblobstore"  # ${{default_datastore}}: settings may say
        # a remote input without a stand-in: an error for a run (plan, apply), as for a command
        # job; a warning for validate (the spec may be meant for Azure)
        self.remote_severity = "error" if runs else "warning"
        self.defined_envs, self.substitutes = defined_envs, substitutes
        self.computes, self.stand_ins, self.local = computes, stand_ins, local
        self.runs = runs  # plan and apply: what stops a run on this target is an error
        self.assets = assets or {}  # the spec's data assets by name
        # each Environment read, by where the spec names it (sections.Sections.environments)
        self.environments: dict = {} if environments is None else environments
        # while a nested pipeline (a pipeline component run as a step) is read: the prefix of
        # its steps' names (OUTER.), its inputs as the outer step gives them, and the
        # components being read (a component that runs itself is a cycle)
        # targets.local.components: stand-ins (read in by spec.py) for components registered
        # outside the spec, by name
        self.mapped = {k: v for k, v in (mapped or {}).items() if isinstance(v, dict)}
        self.notes: dict[tuple, list[str]] = {}  # a step's notes, by where it is
        self.prefix = ""
        self.bound: dict[str, Source] | None = None
        self.reading: list[tuple] = []
        # a nested step's outputs: its flattened name -> output -> (inner step, its output)
        self.nested_outputs: dict[str, dict[str, tuple[str, str]]] = {}

    def problem(
        self, path: tuple, message: str, severity: str = "error", key: bool = False
    ) -> None:
        if self.envs.report:
            self.doc.problem(path, message, severity=severity, key=key)

    def read(self, at: tuple, job: dict, default: Any = None) -> Pipeline:
        """The pipeline at `at`; `default`: the compute of a nested pipeline's steps that name
        none (the outer step's, else the outer pipeline's default)."""
        settings = mapping(job.get("settings"))
        for key in settings:
            if key not in SETTINGS:
                close = difflib.get_close_matches(str(key), SETTINGS, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.problem(
                    at + ("settings", key),
                    f"unknown setting{hint}: Azure ML ignores it",
                    severity="warning",
                    key=True,
                )
        default_compute = settings.get("default_compute", job.get("compute", default))
        if "default_datastore" in settings or default is None:  # a nested one keeps its outer's
            self.default_datastore = datastores.default_of(job)
        parent_inputs = mapping(job.get("inputs"))
        parent_outputs = mapping(job.get("outputs"))
        blocks = {n: b for n, b in mapping(job.get("jobs")).items() if isinstance(b, dict)}
        steps: dict[str, Step] = {}
        for name, block in blocks.items():
            step_at = at + ("jobs", name)
            found = self.component(
                step_at, block, "trial" if block.get("type") == "sweep" else None
            )
            passed = not found[0] and found[2] is not None  # on Azure, registered there
            if flows.is_flow(found[0]):  # runs on Azure only
                steps[self.prefix + name] = self.flow_step(
                    step_at,
                    name,
                    block,
                    default_compute,
                    parent_inputs,
                    parent_outputs,
                    blocks,
                    found,
                )
                continue
            if passed and block.get("type") == "pipeline":  # one step here, its own steps there
                self.notes.setdefault(step_at, []).append(
                    f"pipeline component {found[2]}, run by Azure ML by reference"
                )
            elif found[0].get("type") == "pipeline" or block.get("type") == "pipeline":
                steps.update(
                    self.nested(
                        step_at,
                        name,
                        block,
                        found,
                        default_compute,
                        parent_inputs,
                        parent_outputs,
                        blocks,
                    )
                )
                continue
            steps[self.prefix + name] = self.step(
                step_at,
                name,
                block,
                default_compute,
                parent_inputs,
                parent_outputs,
                blocks,
                found,
            )
        self.relink(steps)
        self.link_datastore_paths(steps)
        feeds: dict[str, tuple[str, str] | None] = {o: None for o in parent_outputs}
        for step in steps.values():
            for output, target in step.outputs.items():
                if target is not None:
                    feeds[target] = (step.name, output)
        return Pipeline(
            self.order(at, steps),
            feeds,
            settings.get("force_rerun") is True,
            settings.get("continue_on_step_failure") is True,
        )

    def link_datastore_paths(self, steps: dict[str, Step]) -> None:
        """Each step input on a local datastore path that a step of the pipeline writes (the
        same path, or one inside the other; the step itself too): its fingerprint is that step's,
        not what is there now, which the pipeline changes (Azure ML knows such an input by its
        path)."""
        written = [
            (name, found)
            for name, step in steps.items()
            for uri in step.output_paths.values()
            if "${{" not in uri and (found := datastores.local_path(self.stores, uri)) is not None
        ]
        for step in steps.values():
            for name, source in step.inputs.items():
                if source.kind != "path" or not written:
                    continue
                read = Path(source.value)
                for writer, place in written:
                    if read.is_relative_to(place) or place.is_relative_to(read):
                        step.written_by[name] = writer

    # --- one step ---

    def step(
        self,
        at: tuple,
        name: str,
        block: dict,
        default_compute: Any,
        parent_inputs: dict,
        parent_outputs: dict,
        blocks: dict,
        found: tuple[dict, tuple, str | None],
    ) -> Step:
        comp, comp_at, shown = found
        par = self.parallel_fields(at, block, comp, comp_at)
        if par is not None:  # what runs is its task
            runs, runs_at = mapping(par.fields.get("task")), par.origin["task"] + ("task",)
            command = parallel.command(runs)
        else:
            runs, runs_at = comp, comp_at
            command = comp["command"] if isinstance(comp.get("command"), str) else ""
        merged = self.spark_fields(block, comp)
        if merged is not None:  # its component's fields, the step's own over them
            command = spark.command(merged)
        sweep = self.sweep(at, block, comp) if block.get("type") == "sweep" else None
        if sweep is not None:  # each trial's values: the search space's, not the step's
            for key in sweep["search_space"]:
                command = re.sub(
                    r"\$\{\{\s*inputs\." + re.escape(str(key)) + r"\s*\}\}",
                    "${{search_space." + str(key) + "}}",
                    command,
                )
        code_ref = runs.get("code")
        code = relative_to(self.doc, runs_at + ("code",), code_ref) if is_local(code_ref) else None
        env_value = block.get("environment", runs.get("environment"))
        if env_value is None and not self.local and command and merged is None:
            what = "a parallel task" if par is not None else "a command component"
            self.problem(
                at, f"a step needs an environment on Azure ML ({what} requires one)", key=True
            )
        env_at = (at if "environment" in block else runs_at) + ("environment",)
        env = self.environments.get(env_at)  # a registered component's: read once
        if env is None:
            env = self.envs.job(env_at, env_value, self.defined_envs, self.substitutes)
            self.environments[env_at] = env
        self.environments[at] = env
        if merged is not None:  # with PySpark of its runtime
            env = spark.environment(env, merged)
        compute = self.step_compute(at, name, block, default_compute, parent_inputs, blocks)
        declared = mapping(comp.get("inputs")) if comp is not block else {}
        if sweep is not None:
            declared = {k: v for k, v in declared.items() if k not in sweep["search_space"]}
        inputs = self.inputs(at, name, block, declared, parent_inputs, blocks)
        outputs = self.outputs(at, block, comp if comp is not block else {}, parent_outputs)
        types = self.data_types(block, declared, inputs, parent_inputs, blocks)
        if par is not None:
            self.check_parallel(at, par, block, comp, types, code)
        if merged is not None and self.envs.report:
            spark.check_step(self.doc, at, comp_at, merged, code, self.local, self.runs)
        env_vars, secret = self.env_vars(at, block, comp, comp_at)
        deterministic = (
            block.get("is_deterministic", comp.get("is_deterministic", True)) is not False
        )
        kept = {
            k: v
            for k, v in {**comp, **block}.items()
            if k in ("display_name", "description", "tags", "resources", "distribution", "limits")
        }
        return Step(
            self.prefix + name,
            command,
            code,
            env,
            compute,
            inputs,
            outputs,
            env_vars,
            deterministic,
            shown,
            kept,
            secret,
            self.output_files(block, comp, parent_outputs, outputs),
            par.fields if par is not None else None,
            types,
            at,
            notes=self.notes.get(at, []) + self.services(block) + sweep_note(sweep),
            includes=self.includes(runs_at, runs, code),
            sweep=sweep,
            output_paths=self.output_paths(block, comp, parent_outputs, outputs),
            spark=merged,
        )

    def step_compute(
        self,
        at: tuple,
        name: str,
        block: dict,
        default_compute: Any,
        parent_inputs: dict,
        blocks: dict,
    ) -> str | None:
        """The compute a step runs on (its own, else the pipeline's default), checked."""
        compute_at = at + ("compute",) if "compute" in block else at
        raw = self.bound_compute(
            compute_at, name, block.get("compute", default_compute), parent_inputs, blocks
        )
        compute = strip_compute(raw)
        if compute is not None and compute not in self.computes and not unresolved(compute):
            defined = ", ".join(sorted(self.computes)) or "none"
            self.problem(
                compute_at, f"'{compute}' is not a compute of this spec (defined: {defined})"
            )
        return compute

    def env_vars(
        self, at: tuple, block: dict, comp: dict, comp_at: tuple
    ) -> tuple[dict[str, str], frozenset]:
        """A step's environment variables (its component's, the step's own over them) and the
        names of the secret ones."""
        env_vars = {
            **mapping(comp.get("environment_variables")),
            **mapping(block.get("environment_variables")),
        }
        secret = frozenset(
            k
            for k in env_vars
            if at + ("environment_variables", k) in self.doc.secret
            or (comp is not block and comp_at + ("environment_variables", k) in self.doc.secret)
        )
        return {str(k): str(v) for k, v in env_vars.items()}, secret

    def flow_step(
        self,
        at: tuple,
        name: str,
        block: dict,
        default_compute: Any,
        parent_inputs: dict,
        parent_outputs: dict,
        blocks: dict,
        found: tuple[dict, tuple, str | None],
    ) -> Step:
        """A step running a prompt flow (flows.py): its inputs, outputs and compute checked as
        any step's; what runs is the flow, on Azure only."""
        comp, comp_at, shown = found
        if self.envs.report:
            flows.check(self.doc, comp_at, comp)
        if block.get("type") != "parallel":
            where = at + ("type",) if "type" in block else at
            self.problem(where, f"{flows.WHAT} runs as a type: parallel step", key=where == at)
        compute = self.step_compute(at, name, block, default_compute, parent_inputs, blocks)
        declared = flows.step_inputs(mapping(block.get("inputs")))
        inputs = self.inputs(at, name, block, declared, parent_inputs, blocks)
        outputs = self.outputs(at, block, flows.PORTS, parent_outputs)
        env = self.envs.job(at + ("environment",), None, self.defined_envs, self.substitutes)
        self.environments[at] = env
        env_vars, secret = self.env_vars(at, block, comp, comp_at)
        kept = {k: v for k, v in block.items() if k in ("display_name", "description", "tags")}
        return Step(
            self.prefix + name,
            "",
            flows.folder(self.doc, comp_at, comp),
            env,
            compute,
            inputs,
            outputs,
            env_vars,
            block.get("is_deterministic", True) is not False,
            shown,
            kept,
            secret,
            at=at,
            notes=[flows.note(self.doc, comp_at, comp, shown)],
            flow=comp,
        )

    def spark_fields(self, block: dict, comp: dict) -> dict | None:
        """A spark step's fields: its component's, the step's own over them (None for another
        kind of step)."""
        if block.get("type") != spark.KIND and comp.get("type") != spark.KIND:
            return None
        if comp is block:
            return block
        return {**comp, **{k: v for k, v in block.items() if k in spark.NODE_FIELDS}}

    def sweep(self, at: tuple, block: dict, trial: dict) -> dict:
        """A sweep step's settings; a search-space name its trial has no input for, or limits
        without max_total_trials, is an error."""
        space = mapping(block.get("search_space"))
        declared = mapping(trial.get("inputs"))
        for key in space:
            if trial and key not in declared:
                known = ", ".join(sorted(declared)) or "none"
                self.problem(
                    at + ("search_space", key),
                    f"the trial has no input '{key}' (inputs: {known})",
                    key=True,
                )
        objective = mapping(block.get("objective"))  # (its keys: the schema checks them)
        limits = mapping(block.get("limits"))
        if "max_total_trials" not in limits:  # azure-ai-ml refuses a sweep step without it
            self.problem(
                at + (("limits",) if "limits" in block else ()),
                "a sweep step needs limits.max_total_trials (azure-ai-ml requires it)",
                key=True,
            )
        return {
            "search_space": space,
            "sampling_algorithm": block.get("sampling_algorithm", "random"),
            "objective": objective,
            "limits": mapping(block.get("limits")),
            "early_termination": block.get("early_termination"),
        }

    def includes(self, at: tuple, fields: dict, code: Path | None) -> list[Path]:
        """A component's additional_includes: files and folders (relative to its file) copied
        into the working folder beside its code, as az ml does; one that is not there, or whose
        name the code folder has too, is an error (said once for a component many steps run)."""
        entries = fields.get("additional_includes")
        found = []
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            if not isinstance(entry, str) or unresolved(entry):
                continue
            where = at + ("additional_includes", i)
            path = relative_to(self.doc, where, entry)
            if not path.exists():
                self.once(where, f"additional include '{entry}' not found")
            elif code is not None and code.is_dir() and (code / path.name).exists():
                self.once(
                    where,
                    f"additional include '{entry}': the code folder has a {path.name} too (Azure "
                    "ML refuses a name both bring)",
                )
            else:
                found.append(path)
        return found

    def once(self, where: tuple, message: str) -> None:
        """A problem, unless it was said already (a registered component's, of every step)."""
        before = len(self.doc.problems)
        self.problem(where, message)
        if self.doc.problems[before:] and self.doc.problems[-1] in self.doc.problems[:before]:
            self.doc.problems.pop()

    def services(self, block: dict) -> list[str]:
        """A step's interactive services (vs_code, jupyter_lab, ...): Azure ML starts them on its
        nodes; the local target does not, and its plan says so."""
        found = mapping(block.get("services"))
        if not found or not self.local:
            return []
        kinds = [f"{n} ({mapping(v).get('type', '?')})" for n, v in found.items()]
        return [f"services not started locally: {', '.join(kinds)}"]

    def bound_compute(
        self, where: tuple, step: str, value: Any, parent_inputs: dict, blocks: dict
    ) -> Any:
        """A step's compute as written, or the value of the pipeline input it binds
        (`compute: ${{parent.inputs.NAME}}`, as Azure's examples promote a compute to an input)."""
        if not (isinstance(value, str) and (m := PARENT.match(value)) and m.group(1) == "inputs"):
            return value
        source = self.source(where, step, value, parent_inputs, blocks)
        return source.value if source.kind == "literal" else None

    def nested(
        self,
        at: tuple,
        name: str,
        block: dict,
        found: tuple[dict, tuple, str | None],
        default_compute: Any,
        parent_inputs: dict,
        parent_outputs: dict,
        blocks: dict,
    ) -> dict[str, Step]:
        """A step that runs a pipeline component: its steps, read with the step's inputs bound
        to the component's, named NAME.STEP (flattened into this pipeline: each runs as a step
        of the outer pipeline's run); the component's outputs, as the step's, are handed on
        from the inner steps that feed them."""
        comp, comp_at, shown = found
        if not comp:  # an unknown component: said already
            return {}
        if comp.get("type") != "pipeline":
            self.problem(
                at + ("component",),
                "a type: pipeline step runs a pipeline component, not a "
                f"{comp.get('type', 'command')} component",
            )
            return {}
        if comp_at in self.reading:
            self.problem(at + ("component",), f"component {shown} runs itself: a cycle")
            return {}
        declared = mapping(comp.get("inputs"))
        bound = self.inputs(at, name, block, declared, parent_inputs, blocks, nested=True)
        for key, value in bound.items():  # a literal checked against the component's input
            if value.kind == "literal" and key not in mapping(block.get("inputs")):
                self.check_literal(at, key, value.value, mapping(declared.get(key)))
        targets = self.outputs(at, block, comp, parent_outputs)
        compute_at = at + ("compute",) if "compute" in block else at
        compute = self.bound_compute(
            compute_at, name, block.get("compute", default_compute), parent_inputs, blocks
        )
        saved = (self.prefix, self.bound)
        self.prefix, self.bound = f"{self.prefix}{name}.", bound
        self.reading.append(comp_at)
        before = len(self.doc.problems)
        try:
            inner = self.read(comp_at, comp, default=compute)
        finally:
            self.prefix, self.bound = saved
            self.reading.pop()
        if comp_at[0] == "components":  # a registered component's problems, said once
            found_now = self.doc.problems[before:]
            del self.doc.problems[before:]
            self.doc.problems += [p for p in dict.fromkeys(found_now) if p not in self.doc.problems]
        flat = self.prefix + name
        self.nested_outputs[flat] = {o: f for o, f in inner.outputs.items() if f is not None}
        for step in inner.steps.values():  # inner outputs fed the component's: now its own
            step.notes = self.notes.get(at, []) + step.notes
            step.outputs = {o: None for o in step.outputs}
            where = f"{name} ({shown or 'inline component'})"
            deeper = f" > {step.nested.removeprefix(NESTED)}" if step.nested else ""
            step.nested = f"{NESTED}{where}{deeper}"
        for output, target in targets.items():
            feed = inner.outputs.get(output)
            if target is not None and feed is not None:
                inner.steps[feed[0]].outputs[feed[1]] = target
        return inner.steps

    def relink(self, steps: dict[str, Step]) -> None:
        """Inputs bound to a nested step's outputs rebound to the inner steps that make them
        (an output no inner step feeds: unset)."""
        for step in steps.values():
            for key, source in step.inputs.items():
                seen = 0
                while (
                    source.kind == "step" and source.value[0] in self.nested_outputs and seen < 100
                ):
                    feed = self.nested_outputs[source.value[0]].get(source.value[1])
                    source = Source("step", feed) if feed else Source("unset")
                    seen += 1
                step.inputs[key] = source

    @staticmethod
    def output_decl(
        block: dict, comp: dict, parent_outputs: dict, name: str, target: str | None
    ) -> dict:
        """A step output's type and path, from its own block, its component or the pipeline
        output it feeds (the first that gives each)."""
        decls = [
            mapping(mapping(block.get("outputs")).get(name)),
            mapping(mapping(comp.get("outputs")).get(name)),
            mapping(parent_outputs.get(target)) if target else {},
        ]
        return {
            "type": next((d["type"] for d in decls if d.get("type")), None),
            "path": next((d["path"] for d in decls if isinstance(d.get("path"), str)), None),
        }

    def output_files(
        self, block: dict, comp: dict, parent_outputs: dict, outputs: dict[str, str | None]
    ) -> dict[str, str]:
        """The step's `type: uri_file` outputs: name -> the file's name."""
        files = {}
        for name, target in outputs.items():
            decl = self.output_decl(block, comp, parent_outputs, name, target)
            if (found := output_file(name, decl)) is not None:
                files[name] = found
        return files

    def output_paths(
        self, block: dict, comp: dict, parent_outputs: dict, outputs: dict[str, str | None]
    ) -> dict[str, str]:
        """The step's outputs on datastore paths: name -> the path, `${{default_datastore}}`
        being the pipeline's settings.default_datastore (else workspaceblobstore)."""
        found = {}
        for name, target in outputs.items():
            path = self.output_decl(block, comp, parent_outputs, name, target)["path"]
            if path is not None:
                path = datastores.DEFAULT.sub(self.default_datastore, path)
                if datastores.parse(path) is not None:
                    found[name] = path
        return found

    def parallel_fields(
        self, at: tuple, block: dict, comp: dict, comp_at: tuple
    ) -> ParallelFields | None:
        """A parallel step's settings and task, with where each is written (None for a command
        step); a step type that does not match its component's is an error."""
        step_type, comp_type = block.get("type"), comp.get("type", "command")
        if comp is block:  # inline
            if step_type != "parallel":
                return None
            if "task" not in block:
                self.problem(at, "missing required key 'task' (or a parallel component)", key=True)
            fields = {k: block[k] for k in parallel.FIELDS if k in block}
            return ParallelFields(fields, {k: at for k in (*parallel.FIELDS, "task")})
        if not comp:  # a component that is not there: said already
            return None
        if step_type == "parallel" and comp_type != "parallel":
            self.problem(
                at + ("component",),
                f"a type: parallel step runs a parallel component, not a {comp_type} component",
            )
            return None
        if comp_type != "parallel":
            return None
        if step_type != "parallel" and isinstance(block.get("component"), str):
            self.problem(  # (a component file or an inline one says its type itself)
                at,
                f"a step that runs registered parallel component {block['component']} needs "
                "type: parallel (azure-ai-ml loads a step without a type as a command step)",
                key=True,
            )
        fields = {k: comp[k] for k in parallel.FIELDS if k in comp}
        origin = {k: comp_at for k in (*parallel.FIELDS, "task")}
        for key in parallel.FIELDS:  # the step's own settings over its component's
            if key in block:
                fields[key], origin[key] = block[key], at
        return ParallelFields(fields, origin)

    def check_parallel(
        self,
        at: tuple,
        par: ParallelFields,
        block: dict,
        comp: dict,
        types: dict[str, str],
        code: Path | None,
    ) -> None:
        """A parallel step checked as a parallel job is: its input_data names a data input (of
        its component, or its own), its append_row_to an output. A registered component's
        problems are said once, however many steps run it."""
        if not self.envs.report:
            return
        holder = comp if comp is not block else block  # what declares the inputs and outputs
        declared = {
            "inputs": {
                k: ({"type": types[k]} if k in types and not isinstance(v, dict) else v)
                for k, v in mapping(holder.get("inputs")).items()
            },
            "outputs": {**mapping(comp.get("outputs")), **mapping(block.get("outputs"))},
        }
        before = len(self.doc.problems)
        parallel.check(self.doc, at, par.fields, declared, code, self.runs, par.origin)
        found = self.doc.problems[before:]
        del self.doc.problems[before:]
        self.doc.problems += [p for p in dict.fromkeys(found) if p not in self.doc.problems]

    def data_types(
        self,
        block: dict,
        declared: dict,
        inputs: dict[str, Source],
        parent_inputs: dict,
        blocks: dict,
    ) -> dict[str, str]:
        """Each data input's type: as the step gives it, else as its component declares it,
        else as what it binds is declared (a pipeline input, another step's output); by
        default uri_folder."""
        given = mapping(block.get("inputs"))
        out = {}
        for name, source in inputs.items():
            if source.kind in ("literal", "unset"):
                continue
            value = given.get(name)
            bound = mapping(value).get("path", value)
            found = [mapping(value).get("type"), mapping(declared.get(name)).get("type")]
            if isinstance(bound, str) and (m := PARENT.match(bound)) and m.group(1) == "inputs":
                found.append(mapping(parent_inputs.get(m.group(2))).get("type"))
            elif isinstance(bound, str) and (m := STEP_OUTPUT.match(bound)):
                upstream = mapping(blocks.get(m.group(1)))
                for where in (upstream, self.component_of(upstream)):
                    found.append(mapping(mapping(where.get("outputs")).get(m.group(2))).get("type"))
            out[name] = next((f for f in found if isinstance(f, str)), "uri_folder")
        return out

    def component(
        self, at: tuple, block: dict, key: str | None = None
    ) -> tuple[dict, tuple, str | None]:
        """What the step runs: (its fields, where they are in the doc, how plans name it);
        `key`: where the step names it (component, or a sweep step's trial)."""
        key = key or "component"
        comp = block.get(key)
        if comp is None:
            return ({}, at, None) if key == "trial" else (block, at, None)
        if isinstance(comp, dict):  # inline, or a component file read in by spec.py
            where = self.doc.includes.get(at + (key,))
            return comp, at + (key,), str(where.name) if where else "inline component"
        ref = parse_ref(comp) if isinstance(comp, str) else None
        registry = REGISTRY_COMPONENT.match(comp) if isinstance(comp, str) else None
        if registry is not None:
            ref = (registry["name"], registry["version"])
        if ref is None or unresolved(comp):
            broken = at + (key,) in self.doc.broken  # a file that could not be read: said
            if isinstance(comp, str) and not unresolved(comp) and not broken:
                self.problem(
                    at + ("component",),
                    f"'{comp}' is not a component reference: use "
                    "./FILE.yml, file:FILE.yml, azureml:NAME:VERSION, azureml:NAME@latest or "
                    "azureml://registries/REGISTRY/components/NAME/versions/V",
                )
            return {}, at, None
        name, version = ref
        if registry is None and name in self.components:
            pass  # one of the spec's
        elif self.local and name in self.mapped:
            where = self.doc.includes.get(("targets", "local", "components", name))
            shown = where.name if where else f"{OUTSIDE}.{name}"
            self.notes.setdefault(at, []).append(f"{comp} mapped to {shown} ({OUTSIDE})")
            return self.mapped[name], ("targets", "local", "components", name), str(shown)
        elif self.local:  # registered outside the spec: a local run needs a stand-in
            known = ", ".join(sorted(self.components)) or "none"
            what = (
                f"component '{name}' of registry {registry['registry']}"
                if registry
                else f"component '{name}' is not a component of this spec (components: {known}) and"
            )
            self.problem(
                at + ("component",),
                f"{what} is not mapped in {OUTSIDE}: the local target cannot run it (map "
                f"{name} to a component file there)",
                severity=self.remote_severity,
            )
            return {}, at, None
        else:  # on Azure: registered there, passed through as written
            return {}, at, comp
        registered = self.components[name]
        if version is not None and registered.version is not None and version != registered.version:
            self.problem(
                at + ("component",),
                f"component {name} has version {registered.version} in this spec, not {version}",
            )
        return registered.fields, ("components", name), f"{name}:{registered.version or 'auto'}"

    def inputs(
        self,
        at: tuple,
        step: str,
        block: dict,
        declared: dict,
        parent_inputs: dict,
        blocks: dict,
        nested: bool = False,
    ) -> dict[str, Source]:
        """The step's inputs resolved; one its component does not declare is an error (for a
        pipeline component, which Azure ML takes and ignores it for: a warning)."""
        given = mapping(block.get("inputs"))
        out = {}
        for name, value in given.items():
            where = at + ("inputs", name)
            if declared and name not in declared:
                known = ", ".join(sorted(declared)) or "none"
                ignored = ": Azure ML ignores it" if nested else ""
                self.problem(
                    where,
                    f"the component has no input '{name}' (inputs: {known}){ignored}",
                    severity="warning" if nested else "error",
                    key=True,
                )
            source = self.source(where, step, value, parent_inputs, blocks)
            out[name] = source
            spec = mapping(declared.get(name))
            if source.kind == "literal":
                through = isinstance(value, str) and self.bound is not None and PARENT.match(value)
                hint = f" (given to this pipeline as {str(value).strip('${} ')})" if through else ""
                self.check_literal(where, name, source.value, spec, hint)
        for name, spec in declared.items():
            spec = mapping(spec)
            if name in out:
                continue
            if "default" in spec:
                out[name] = Source("literal", spec["default"])
            elif spec.get("path") is not None:
                out[name] = self.source(
                    at,
                    step,
                    {"type": spec.get("type"), "path": spec["path"]},
                    parent_inputs,
                    blocks,
                )
            elif spec.get("optional") is True:
                out[name] = Source("unset")
            else:
                self.problem(at, f"missing required input '{name}' of the component", key=True)
                out[name] = Source("unset")
        return out

    def source(
        self,
        where: tuple,
        step: str,
        value: Any,
        parent_inputs: dict,
        blocks: dict,
        from_parent: bool = False,
    ) -> Source:
        if (
            isinstance(value, dict)
            and isinstance(value.get("path"), str)
            and (PARENT.match(value["path"]) or STEP_OUTPUT.match(value["path"]))
        ):
            value = value["path"]  # {type: uri_folder, path: ${{parent...}}}
        if isinstance(value, str) and (m := STEP_OUTPUT.match(value)):
            other, output = m.group(1), m.group(2)
            if other == step:
                self.problem(where, f"step {step} cannot take its own output '{output}'")
            elif other not in blocks:
                known = ", ".join(sorted(blocks))
                self.problem(where, f"'{value}': there is no step '{other}' (steps: {known})")
            elif self.knows(blocks[other]) and output not in self.outputs_of(blocks[other]):
                known = ", ".join(sorted(self.outputs_of(blocks[other]))) or "none"
                self.problem(
                    where, f"'{value}': step {other} has no output '{output}' (outputs: {known})"
                )
            return Source("step", (self.prefix + other, output))
        if isinstance(value, str) and (m := PARENT.match(value)):
            kind, name = m.group(1), m.group(2)
            if kind != "inputs" or from_parent:
                self.problem(
                    where,
                    f"'{value}': a step input binds ${{{{parent.inputs.NAME}}}} or "
                    "${{parent.jobs.STEP.outputs.NAME}}",
                )
                return Source("unset")
            if name not in parent_inputs:
                known = ", ".join(sorted(parent_inputs)) or "none"
                self.problem(
                    where, f"'{value}': the pipeline has no input '{name}' (inputs: {known})"
                )
                return Source("unset")
            if self.bound is not None:  # a nested pipeline's input: as the outer step gives it
                return self.bound.get(name, Source("unset"))
            parent_at = where[: where.index("jobs", 1)] + ("inputs", name)
            return self.source(parent_at, step, parent_inputs[name], parent_inputs, blocks, True)
        if isinstance(value, dict):
            kind = value.get("type", "uri_folder")
            if kind in LITERAL_TYPES or (
                "path" not in value and ("value" in value or "default" in value)
            ):
                return Source("literal", value.get("value", value.get("default")))
            ref = value.get("path")
            if not isinstance(ref, str) or unresolved(ref):
                return Source("unset")
            if (model := model_ref(value)) is not None:  # read from the registry when it runs
                return Source("model", model)
            found = data_assets.input_source(self.doc, ref, self.assets, self.stand_ins)
            if found is not None:  # one of the spec's data assets
                local, asset = found
                if local is not None:
                    return Source("path", local, asset=asset)
                if asset is not None:  # an older version, registered before
                    return Source("asset", list(asset), asset=asset)
                if self.local:  # remote content, without a stand-in
                    self.problem(
                        where + ("path",),
                        f"'{ref}' is a data asset of a URI, which the local target cannot "
                        "read: map it to a local file or folder in targets.local.inputs",
                        severity=self.remote_severity,
                    )
                return Source("remote", ref)
            if is_local(ref):
                return Source("path", relative_to(self.doc, where + ("path",), ref))
            if ref in self.stand_ins:
                return Source(
                    "path",
                    relative_to(self.doc, ("targets", "local", "inputs", ref), self.stand_ins[ref]),
                )
            if (stored := datastores.local_path(self.stores, ref)) is not None:
                return Source("path", stored)
            if self.local and kind in LOCAL_INPUT_TYPES:
                self.problem(
                    where + ("path",),
                    f"'{ref}' is remote, which the local target cannot "
                    "read: map it to a local file or folder in targets.local.inputs",
                    severity=self.remote_severity,
                )
            return Source("remote", ref)
        return Source("literal", value)

    def component_of(self, block: dict) -> dict:
        """A step's component's fields (inline, from a file, registered, or a stand-in for one
        registered outside the spec), else {}."""
        comp = block.get("trial" if block.get("type") == "sweep" else "component")
        if isinstance(comp, str):
            registry = REGISTRY_COMPONENT.match(comp)
            ref = (registry["name"], None) if registry else parse_ref(comp)
            if ref and not registry and ref[0] in self.components:
                return self.components[ref[0]].fields
            return self.mapped.get(ref[0], {}) if ref and self.local else {}
        if flows.is_flow(comp):  # its ports, not the flow's own inputs and outputs
            return flows.PORTS
        return comp if isinstance(comp, dict) else {}

    def knows(self, block: dict) -> bool:
        """Whether what a step runs is known here (a component registered outside the spec,
        without a stand-in, is not: its outputs cannot be checked)."""
        comp = block.get("trial" if block.get("type") == "sweep" else "component")
        return not isinstance(comp, str) or bool(self.component_of(block))

    def outputs_of(self, block: dict) -> set[str]:
        """A step's outputs: its component's (inline, from a file, or registered) and its own."""
        declared = set(mapping(self.component_of(block).get("outputs")))
        return declared | set(mapping(block.get("outputs")))

    def check_literal(
        self, where: tuple, name: str, value: Any, spec: dict, given: str = ""
    ) -> None:
        if unresolved(value):
            return
        low, high, allowed = spec.get("min"), spec.get("max"), spec.get("enum")
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if number is not None and isinstance(low, (int, float)) and number < low:
            self.problem(where, f"{value} is below the minimum of input '{name}' ({low}){given}")
        if number is not None and isinstance(high, (int, float)) and number > high:
            self.problem(where, f"{value} is above the maximum of input '{name}' ({high}){given}")
        if isinstance(allowed, list) and allowed and value not in allowed:
            options = ", ".join(str(a) for a in allowed)
            self.problem(
                where, f"'{value}' is not one of the values of input '{name}': {options}{given}"
            )

    def outputs(
        self, at: tuple, block: dict, comp: dict, parent_outputs: dict
    ) -> dict[str, str | None]:
        out: dict[str, str | None] = {name: None for name in mapping(comp.get("outputs"))}
        for name, value in mapping(block.get("outputs")).items():
            if comp and name not in out:
                known = ", ".join(sorted(out)) or "none"
                self.problem(
                    at + ("outputs", name),
                    f"the component has no output '{name}' (outputs: {known})",
                    key=True,
                )
            target = None
            if isinstance(value, dict):  # {type: mlflow_model, path: ${{parent.outputs.model}}}
                path = value.get("path")  # (another path: where Azure ML writes it; a folder here)
                value = path if isinstance(path, str) and PARENT.match(path) else None
            if isinstance(value, str) and (m := PARENT.match(value)) and m.group(1) == "outputs":
                target = m.group(2)
                if target not in parent_outputs:
                    known = ", ".join(sorted(parent_outputs)) or "none"
                    self.problem(
                        at + ("outputs", name),
                        f"'{value}': the pipeline has no output '{target}' (outputs: {known})",
                    )
                    target = None
            elif isinstance(value, str):
                self.problem(
                    at + ("outputs", name),
                    f"'{value}': an output binds ${{{{parent.outputs.NAME}}}}",
                )
            out[name] = target
        return out

    # --- order ---

    def order(self, at: tuple, steps: dict[str, Step]) -> dict[str, Step]:
        """The steps so that each comes after those whose outputs it takes; a cycle is an error
        (its steps then keep their written order)."""
        done: dict[str, Step] = {}
        left = dict(steps)
        while left:
            ready = [
                s for s in left.values() if all(u in done or u not in steps for u in s.upstream)
            ]
            if not ready:
                cycle = self.cycle(left)
                self.problem(
                    at + ("jobs",),
                    "steps " + " -> ".join(cycle) + " form a cycle: "
                    "each waits for another's output",
                    key=True,
                )
                done.update(left)
                break
            for s in ready:
                done[s.name] = left.pop(s.name)
        return done

    @staticmethod
    def cycle(left: dict[str, Step]) -> list[str]:
        path, current = [], next(iter(left))
        while current not in path:
            path.append(current)
            current = next(u for u in left[current].upstream if u in left)
        return path[path.index(current) :] + [current]
