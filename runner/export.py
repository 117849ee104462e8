"""A spec's blocks as Azure ML CLI v2 YAML documents (what `az ml` and `azure.ai.ml.load_*`
read)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from . import azure_only, datastores, schedules
from .refs import is_local, relative_to, run_block
from .spec import SENSITIVE, Job, Spec, masked

JOB_SCHEMA = "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json"
SWEEP_SCHEMA = "https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json"
PARALLEL_SCHEMA = "https://azuremlschemas.azureedge.net/latest/parallelJob.schema.json"
SPARK_SCHEMA = "https://azuremlschemas.azureedge.net/latest/sparkJob.schema.json"
WORKSPACE_SCHEMA = "https://azuremlschemas.azureedge.net/latest/workspace.schema.json"
ENVIRONMENT_SCHEMA = "https://azuremlschemas.azureedge.net/latest/environment.schema.json"
COMPONENT_SCHEMA = "https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json"
SPARK_COMPONENT_SCHEMA = "https://azuremlschemas.azureedge.net/latest/sparkComponent.schema.json"
PARALLEL_COMPONENT_SCHEMA = (
    "https://azuremlschemas.azureedge.net/latest/parallelComponent.schema.json"
)
PIPELINE_SCHEMA = "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json"
PIPELINE_COMPONENT_SCHEMA = (
    "https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json"
)
DATA_SCHEMA = "https://azuremlschemas.azureedge.net/latest/data.schema.json"
DATA_IMPORT_SCHEMA = "http://azureml/sdk-2-0/DataImport.json"  # as Azure's import files have it
MODEL_SCHEMA = "https://azuremlschemas.azureedge.net/latest/model.schema.json"
ENDPOINT_SCHEMAS = {
    "online": "https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json",
    "batch": "https://azuremlschemas.azureedge.net/latest/batchEndpoint.schema.json",
}
DEPLOYMENT_SCHEMAS = {
    "online": "https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json",
    "model": "https://azuremlschemas.azureedge.net/latest/modelBatchDeployment.schema.json",
    "pipeline": (
        "https://azuremlschemas.azureedge.net/latest/pipelineComponentBatchDeployment.schema.json"
    ),
}
DATASTORE_SCHEMAS = {
    "azure_blob": "https://azuremlschemas.azureedge.net/latest/azureBlob.schema.json",
    "azure_data_lake_gen2": (
        "https://azuremlschemas.azureedge.net/latest/azureDataLakeGen2.schema.json"
    ),
    "azure_file": "https://azuremlschemas.azureedge.net/latest/azureFile.schema.json",
    "azure_data_lake_gen1": (
        "https://azuremlschemas.azureedge.net/latest/azureDataLakeGen1.schema.json"
    ),
}
COMPUTE_SCHEMAS = {
    "amlcompute": "https://azuremlschemas.azureedge.net/latest/amlCompute.schema.json",
    "computeinstance": "https://azuremlschemas.azureedge.net/latest/computeInstance.schema.json",
    "synapsespark": "https://azuremlschemas.azureedge.net/latest/synapseSparkCompute.schema.json",
    "kubernetes": "https://azuremlschemas.azureedge.net/latest/kubernetesCompute.schema.json",
}
WORKSPACE_KEYS = ("name", "display_name", "description", "location", "resource_group", "tags")
NOT_EXPORTED = {
    "variables": "resolved into the files",
    "queries": "no az ml equivalent",
    "targets": "no az ml equivalent",
}


def job_document(spec: Spec, job: Job, out_dir: Path) -> dict:
    """The job as a commandJob (or sweepJob, or pipelineJob) file written in `out_dir`: local
    paths made relative to it (a sweep's code is its trial's)."""
    if job.is_pipeline:
        return pipeline_document(spec, job, out_dir)
    if azure_only.kind(job.fields):  # automl, finetuning: its own fields, passed on
        return _azure_only(spec, job, out_dir)
    kind = "sweep" if job.is_sweep else "parallel" if job.is_parallel else "command"
    kind = "spark" if job.is_spark else kind
    schemas = {"sweep": SWEEP_SCHEMA, "parallel": PARALLEL_SCHEMA, "spark": SPARK_SCHEMA}
    doc: dict = {"$schema": schemas.get(kind, JOB_SCHEMA), "type": kind}
    for key, value in job.fields.items():
        if key in ("$schema", "type", "name"):
            continue
        doc[key] = value
    runs = run_block(job.fields)  # a sweep's trial, a parallel job's task: a copy, edited
    if runs:
        doc[runs[0]] = dict(job.trial)
    if job.code:
        (doc[runs[0]] if runs else doc)["code"] = _rel(job.code, out_dir)
    if job.secrets:  # never on disk: written as (sensitive); put_secrets sets them on a loaded job
        block = doc["trial"] if job.is_sweep else doc  # a parallel job's are beside its task
        block["environment_variables"] = masked(block["environment_variables"], job.secrets)
    env_at = ("jobs", job.name) + runs
    block = doc[runs[0]] if runs else doc
    if isinstance(block.get("environment"), dict):  # its files' paths, relative to the new file
        block["environment"] = _environment_paths(
            spec, env_at + ("environment",), block["environment"], out_dir
        )
    if job.compute:
        doc["compute"] = f"azureml:{job.compute}"
    doc["experiment_name"] = spec.experiment(job)
    inputs = {}
    for name, value in (job.fields.get("inputs") or {}).items():
        if isinstance(value, dict) and is_local(value.get("path")):
            where = relative_to(spec.doc, ("jobs", job.name, "inputs", name, "path"), value["path"])
            value = {**value, "path": _rel(where, out_dir)}
        inputs[name] = value
    if inputs:
        doc["inputs"] = inputs
    return doc


def _azure_only(spec: Spec, job: Job, out_dir: Path) -> dict:
    """An automl or finetuning job as its own CLI v2 file: its fields, its data's local paths
    absolute (the SDK resolves them against the working directory, not the file's folder), its
    compute and experiment as for any job."""
    at = ("jobs", job.name)
    doc = azure_only.exported(spec.doc, at, job.fields, str)
    doc.pop("name", None)
    if job.compute:
        doc["compute"] = f"azureml:{job.compute}"
    doc["experiment_name"] = spec.experiment(job)
    return doc


def pipeline_document(spec: Spec, job: Job, out_dir: Path) -> dict:
    """A pipeline job as a pipelineJob file in `out_dir`: a step from a component file names that
    file (unmodified, where it is), inline steps and components have their paths made relative to
    `out_dir`, registered components stay azureml: references."""
    at = ("jobs", job.name)
    doc: dict = {"$schema": PIPELINE_SCHEMA, "type": "pipeline"}
    doc.update(
        {k: v for k, v in job.fields.items() if k not in ("$schema", "type", "name", "jobs")}
    )
    doc["inputs"] = _input_paths(spec, at, job.fields.get("inputs"), out_dir)
    doc["experiment_name"] = spec.experiment(job)
    secrets = {n: s.secrets for n, s in job.pipeline.steps.items()} if job.pipeline else {}
    doc["jobs"] = _steps(spec, at, job.fields.get("jobs") or {}, out_dir, secrets)
    return {k: v for k, v in doc.items() if v not in (None, {})}


def _steps(spec: Spec, at: tuple, jobs: dict, out_dir: Path, secrets: dict) -> dict:
    """A pipeline's steps (at `at`), as pipeline_document writes them; `secrets`: each step's
    secret environment variables, written as (sensitive)."""
    steps = {}
    for name, fields in jobs.items():
        step_at = at + ("jobs", name)
        step = dict(fields)
        key = "trial" if step.get("type") == "sweep" else "component"  # what the step runs
        comp = step.get(key)
        source = spec.doc.includes.get(step_at + (key,))
        if azure_only.kind(step):  # automl, finetuning: passed on, data paths moved
            step = azure_only.exported(spec.doc, step_at, step, lambda p: _rel(p, out_dir))
        elif isinstance(comp, dict) and source is not None:
            step[key] = _rel(source, out_dir)
        elif isinstance(comp, dict) and comp.get("type") == "pipeline":  # nested, inline
            step[key] = _nested(spec, step_at + (key,), comp, out_dir)
        elif isinstance(comp, dict):
            step[key] = _code_paths(spec, step_at + (key,), comp, out_dir)
        elif isinstance(comp, str) and comp.startswith("azureml:"):
            step["outputs"] = _registered_outputs(spec, comp, step.get("outputs"))
        else:
            step = _code_paths(spec, step_at, step, out_dir)
        step["inputs"] = _input_paths(spec, step_at, step.get("inputs"), out_dir)
        hidden = secrets.get(name) or frozenset()
        for block in (step, step.get("component")):
            if hidden and isinstance(block, dict) and block.get("environment_variables"):
                block["environment_variables"] = masked(block["environment_variables"], hidden)
        steps[name] = {k: v for k, v in step.items() if v not in (None, {})}
    return steps


def _nested(spec: Spec, at: tuple, comp: dict, out_dir: Path) -> str:
    """An inline pipeline component (a nested pipeline), which the SDK takes only as a file:
    written beside the job's file as JOB.STEP.component.yml (its steps as _steps writes them,
    their secret environment variables as (sensitive)); its name, for the step to use."""
    jobs = comp.get("jobs") or {}
    secrets = {
        step: frozenset(
            p[-1]
            for p in spec.doc.secret
            if p[: len(at) + 2] == at + ("jobs", step) and "environment_variables" in p
        )
        for step in jobs
    }
    doc = {"$schema": PIPELINE_COMPONENT_SCHEMA, **comp}
    doc["jobs"] = _steps(spec, at, jobs, out_dir, secrets)
    doc["inputs"] = _input_paths(spec, at, comp.get("inputs"), out_dir)
    names = [at[1]] + [at[i + 1] for i in range(2, len(at) - 1) if at[i] == "jobs"]
    path = Path(out_dir) / f"{'.'.join(names)}.component.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump({k: v for k, v in doc.items() if v not in (None, {})}, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return f"./{path.name}"


def _registered_outputs(spec: Spec, ref: str, outputs) -> dict:
    """A step running a registered component declares the component's outputs it does not
    bind: the SDK cannot see a registered component's outputs when it loads the file, and
    refuses bindings to outputs it cannot see."""
    name = ref[len("azureml:") :].split("@")[0].split(":")[0]
    declared = dict(outputs or {})
    component = spec.components.get(name)
    for output, value in ((component.fields.get("outputs") or {}) if component else {}).items():
        if output not in declared:
            kind = (
                (value or {}).get("type", "uri_folder") if isinstance(value, dict) else "uri_folder"
            )
            declared[output] = {"type": kind}
    return declared


def _code_paths(spec: Spec, at: tuple, block: dict, out_dir: Path) -> dict:
    """An inline step's or component's code folder and environment files relative to `out_dir`
    (a parallel step's or component's: its task's)."""
    block = dict(block)
    if isinstance(block.get("task"), dict):
        block["task"] = _code_paths(spec, at + ("task",), block["task"], out_dir)
    if is_local(block.get("code")):
        block["code"] = _rel(relative_to(spec.doc, at + ("code",), block["code"]), out_dir)
    if isinstance(block.get("additional_includes"), list):
        block["additional_includes"] = [
            _rel(relative_to(spec.doc, at + ("additional_includes", i), p), out_dir)
            if isinstance(p, str)
            else p
            for i, p in enumerate(block["additional_includes"])
        ]
    if isinstance(block.get("environment"), dict):
        block["environment"] = _environment_paths(
            spec, at + ("environment",), block["environment"], out_dir
        )
    return block


def _input_paths(spec: Spec, at: tuple, inputs, out_dir: Path) -> dict:
    """Inputs whose local paths are made relative to `out_dir` (bindings and literals as
    written)."""
    out = {}
    for name, value in (inputs or {}).items():
        if isinstance(value, dict) and is_local(value.get("path")) and "${{" not in value["path"]:
            where = relative_to(spec.doc, at + ("inputs", name, "path"), value["path"])
            value = {**value, "path": _rel(where, out_dir)}
        out[name] = value
    return out


def _environment_paths(spec: Spec, at: tuple, env: dict, out_dir: Path) -> dict:
    """An environment's conda file and build context as paths relative to `out_dir`."""
    env = dict(env)
    conda = env.get("conda_file")
    if isinstance(conda, str) and is_local(conda):
        env["conda_file"] = _rel(relative_to(spec.doc, at + ("conda_file",), conda), out_dir)
    build = env.get("build")
    if isinstance(build, dict) and is_local(build.get("path")):
        where = relative_to(spec.doc, at + ("build", "path"), build["path"])
        env["build"] = {**build, "path": _rel(where, out_dir)}
    return env


def environment_document(spec: Spec, name: str, out_dir: Path) -> dict:
    """An environment of the spec's environments: section as an environment.schema.json file."""
    fields = (spec.doc.data.get("environments") or {}).get(name) or {}
    env = _environment_paths(spec, ("environments", name), fields, out_dir)
    doc = _document(ENVIRONMENT_SCHEMA, name, env)
    return doc


def _document(schema: str, name: str, fields: dict, skip: tuple[str, ...] = ()) -> dict:
    """An az ml file's head (`$schema`, `name`) and the spec's fields for it, those of the
    including block's `file:` and `skip` left out."""
    left_out = ("$schema", "name", "file", *skip)
    return {
        "$schema": schema,
        "name": name,
        **{k: v for k, v in fields.items() if k not in left_out},
    }


def data_document(spec: Spec, name: str, out_dir: Path) -> dict:
    """A data asset of the spec's data: section as a data.schema.json file in `out_dir` (a data
    import as the DataImport file `az ml data import` takes)."""
    asset = spec.data[name]
    doc = _document(DATA_IMPORT_SCHEMA if asset.imported else DATA_SCHEMA, name, asset.fields)
    doc["type"] = asset.type
    if asset.imported:  # az ml data import --file: the datastore path it writes, as written
        doc["path"] = asset.path
    elif asset.local is not None:
        doc["path"] = _rel(asset.local, out_dir)
    return doc


def model_document(spec: Spec, name: str, out_dir: Path) -> dict:
    """A model of the spec's models: section as a model.schema.json file in `out_dir`; one a
    job makes names that job's run as Azure ML does (`azureml://jobs/JOB_RUN/outputs/...`), which
    is known once the job ran (closing_notes says so)."""
    model = spec.models[name]
    doc = _document(MODEL_SCHEMA, name, model.fields)
    doc["type"] = model.type
    if model.local is not None:
        doc["path"] = _rel(model.local, out_dir)
    elif model.job is not None:
        output = model.job.output or "artifacts"
        sub = f"/paths/{model.job.sub}" if model.job.sub else ""
        doc["path"] = f"azureml://jobs/<run of job {model.job.job}>/outputs/{output}{sub}"
    return doc


def endpoint_documents(spec: Spec, name: str, out_dir: Path) -> dict[str, dict]:
    """An endpoint of the spec's endpoints: section as a managedOnlineEndpoint or batchEndpoint
    file (`NAME.yml`) and each deployment as its deployment file (`NAME/DEPLOYMENT.yml`), paths
    relative to `out_dir`."""
    endpoint = spec.endpoints[name]
    at = ("endpoints", name)
    # its type is what its schema says; its deployments and call are files and notes of their own
    skip = ("deployments", "invoke", "type")
    doc = _document(ENDPOINT_SCHEMAS[endpoint.type], name, endpoint.fields, skip)
    docs = {f"{name}.yml": doc}
    for dep_name, dep in endpoint.deployments.items():
        kind = "online" if endpoint.type == "online" else dep.fields.get("type", "model")
        schema = DEPLOYMENT_SCHEMAS.get(kind, DEPLOYMENT_SCHEMAS["model"])
        dep_doc = _document(schema, dep_name, {"endpoint_name": name, **dep.fields})
        where = out_dir / name
        if dep.code is not None:
            dep_doc["code_configuration"] = {
                "code": _rel(dep.code, where),
                "scoring_script": dep.scoring_script,
            }
        if isinstance(dep_doc.get("environment"), dict):
            dep_doc["environment"] = _environment_paths(
                spec, at + ("deployments", dep_name, "environment"), dep_doc["environment"], where
            )
        model = dep.model
        if model is not None and model.local is not None and isinstance(dep_doc.get("model"), dict):
            dep_doc["model"] = {**dep_doc["model"], "path": _rel(model.local, where)}
        elif model is not None and model.local is not None:
            dep_doc["model"] = _rel(model.local, where)
        if dep.component is not None and isinstance(dep_doc.get("component"), str):
            if is_local(dep_doc["component"]):
                found = relative_to(
                    spec.doc, at + ("deployments", dep_name, "component"), dep_doc["component"]
                )
                dep_doc["component"] = _rel(found, where)
        docs[f"{name}/{dep_name}.yml"] = dep_doc
    return docs


def datastore_document(spec: Spec, name: str) -> dict:
    """A datastore of the spec's datastores: section as an az ml datastore file; a secret
    credential written as (sensitive) (datastore_note says how to give it)."""
    store = spec.datastores[name]
    doc: dict = {"$schema": DATASTORE_SCHEMAS[store.type], "name": name, "type": store.type}
    doc.update(store.fields)
    if store.credentials:
        doc["credentials"] = {
            k: SENSITIVE if k in datastores.SECRETS else v for k, v in store.credentials.items()
        }
    return doc


def datastore_note(spec: Spec, name: str, path: str) -> str | None:
    """How to create an exported datastore whose credential was written as (sensitive)."""
    secret = sorted(k for k in spec.datastores[name].credentials if k in datastores.SECRETS)
    if not secret:
        return None
    sets = " ".join(f"--set credentials.{k}=VALUE" for k in secret)
    return (
        f"note: {path}: {', '.join(secret)} written as {SENSITIVE}; give "
        f"{'them' if len(secret) > 1 else 'it'} when you create it: az ml datastore create "
        f"--file {path} {sets}"
    )


def schedule_document(spec: Spec, name: str, out_dir: Path) -> dict:
    """A schedule as an az ml schedule file in `out_dir`: its trigger and fields; create_job the
    spec's job's exported file (../jobs/JOB.yml), a job file where it is, or azureml:NAME, with
    create_job's overrides beside it; import_data likewise. `enabled` is mlrun's own (see
    schedule_note)."""
    sched = spec.schedules[name]
    doc: dict = {"$schema": schedules.SCHEDULE_SCHEMA, "name": name}
    doc.update(sched.fields)
    doc["trigger"] = dict(sched.trigger_fields)
    if sched.imports is not None:
        at = ("schedules", name, "import_data")
        value = sched.imports
        doc["import_data"] = (
            _rel(relative_to(spec.doc, at, value), out_dir) if is_local(value) else value
        )
        return doc
    if sched.job is not None:
        job: str | None = _rel(Path(out_dir).parent / "jobs" / f"{sched.job}.yml", out_dir)
    elif sched.job_file is not None:
        job = _rel(sched.job_file, out_dir)
    else:
        job = sched.job_ref
    doc["create_job"] = {"job": job, **sched.overrides} if sched.overrides else job
    return doc


def schedule_note(spec: Spec, name: str, path: str) -> str | None:
    """What an exported schedule file cannot say: that it is disabled; that a command job is
    scheduled on Azure as a one-step pipeline (as mlrun sends it)."""
    sched = spec.schedules[name]
    if not sched.enabled:
        return (
            f"note: {path}: disabled in the spec: after az ml schedule create, "
            f"az ml schedule disable --name {name}"
        )
    job = spec.jobs.get(sched.job or "")
    if job is not None and not job.is_pipeline:
        return (
            f"note: {path}: azure-ai-ml schedules command jobs only in preview; mlrun apply sends "
            f"job {sched.job} as a one-step pipeline job"
        )
    return None


def component_document(spec: Spec, name: str, out_dir: Path) -> dict:
    """A component of the spec's components: section as a commandComponent (or
    parallelComponent) file in `out_dir`; a pipeline component as a pipelineComponent file, its
    steps as pipeline_document's."""
    fields = (spec.doc.data.get("components") or {}).get(name) or {}
    at = ("components", name)
    if fields.get("type") == "pipeline":
        return pipeline_component_document(spec, at, fields, out_dir, name)
    schemas = {"parallel": PARALLEL_COMPONENT_SCHEMA, "spark": SPARK_COMPONENT_SCHEMA}
    schema = schemas.get(str(fields.get("type")), COMPONENT_SCHEMA)
    doc = _code_paths(spec, at, _document(schema, name, fields), out_dir)
    doc.setdefault("type", "command")
    return doc


def pipeline_component_document(
    spec: Spec, at: tuple, fields: dict, out_dir: Path, name: str | None = None
) -> dict:
    """A pipeline component (`fields`, at `at` in the spec: of its components:, or a pipeline
    deployment's) as a pipelineComponent file in `out_dir`, its steps as pipeline_document's;
    named `name` (else as its fields name it)."""
    doc: dict = {"$schema": PIPELINE_COMPONENT_SCHEMA}
    if name is not None:
        doc["name"] = name
    skip = ("$schema", "file") + (("name",) if name is not None else ())
    doc.update({k: v for k, v in fields.items() if k not in skip})
    secrets = {  # a step's variables secret by name (spec.read_doc marks them)
        step: frozenset(
            p[-1]
            for p in spec.doc.secret
            if p[: len(at) + 2] == at + ("jobs", step) and "environment_variables" in p
        )
        for step in fields.get("jobs") or {}
    }
    doc["jobs"] = _steps(spec, at, fields.get("jobs") or {}, out_dir, secrets)
    return doc


def put_secrets(entity, job: Job) -> None:
    """Set a job's secret environment variables on its azure-ai-ml entity (loaded from the
    job_document file, which holds them as (sensitive)), in memory only."""

    def put(block, values: dict, secrets: frozenset) -> None:
        if secrets:
            block.environment_variables = {
                **(block.environment_variables or {}),
                **{k: v for k, v in values.items() if k in secrets},
            }

    put(entity.trial if job.is_sweep else entity, job.env_vars, job.secrets)
    for step in job.pipeline.steps.values() if job.pipeline else ():
        if step.secrets:  # overrides its component's; a nested step's is in its component's jobs
            first, *inner = step.name.split(".")
            node = entity.jobs[first]
            for name in inner:
                node = node.component.jobs[name]
            put(node, step.env_vars, step.secrets)


def secret_note(job: Job, path: str) -> str | None:
    """What to do about a job file whose secret environment variables were written as
    (sensitive)."""
    at = "trial.environment_variables" if job.is_sweep else "environment_variables"
    places = [f"{at}.{n}" for n in sorted(job.secrets)]
    for step in job.pipeline.steps.values() if job.pipeline else ():
        places += [f"jobs.{step.name}.environment_variables.{n}" for n in sorted(step.secrets)]
    if not places:
        return None
    names = sorted({p.rsplit(".", 1)[1] for p in places})
    return (
        f"note: {path}: secret environment variable{'s' if len(names) > 1 else ''} "
        f"{', '.join(names)} written as {SENSITIVE}; set {'them' if len(names) > 1 else 'it'} "
        f"when you submit: az ml job create --file {path} "
        + " ".join(f'--set {p}="${p.rsplit(".", 1)[1]}"' for p in places)
    )


def variable_notes(spec: Spec, overrides: dict) -> list[str]:
    """Generated variables made up for this export alone (the state holds none yet)."""
    return [
        f"note: variable {name} was generated for this export only ({value}); pass "
        f"--var {name}=VALUE to choose it"
        for name, value in spec.generated.items()
        if name not in overrides
    ]


def closing_notes(spec: Spec, out_dir: Path) -> list[str]:
    """After writing: how to submit jobs with secrets, and what the files leave out."""
    from .errors import display_path

    notes = [
        note
        for name, job in spec.jobs.items()
        if (note := secret_note(job, display_path(str(Path(out_dir) / "jobs" / f"{name}.yml"))))
    ]
    notes += [
        f"{display_path(str(Path(out_dir) / 'models' / f'{name}.yml'))}: its path names the run "
        f"of job {m.job.job}: set it once the job ran (az ml job create prints its name)"
        for name, m in spec.models.items()
        if m.job is not None
    ]
    notes += [
        f"endpoint {name}'s invoke: is a call, not a file: az ml "
        + (
            f"online-endpoint invoke --name {name} --request-file FILE"
            if e.type == "online"
            else f"batch-endpoint invoke --name {name} --input PATH"
        )
        for name, e in spec.endpoints.items()
        if e.invoke
    ]
    notes += [
        note
        for name in spec.schedules
        if (
            note := schedule_note(
                spec, name, display_path(str(Path(out_dir) / "schedules" / f"{name}.yml"))
            )
        )
    ]
    notes += [
        note
        for name in datastores.declared(spec.datastores)
        if (
            note := datastore_note(
                spec, name, display_path(str(Path(out_dir) / "datastores" / f"{name}.yml"))
            )
        )
    ]
    left = [f"{k} ({why})" for k, why in NOT_EXPORTED.items() if spec.doc.data.get(k)]
    if left:
        notes.append(f"not exported: {', '.join(left)}")
    return notes


def workspace_document(spec: Spec) -> dict:
    """The workspace as a workspace.schema.json file."""
    doc: dict = {"$schema": WORKSPACE_SCHEMA}
    doc.update({k: spec.workspace[k] for k in WORKSPACE_KEYS if k in spec.workspace})
    return doc


def compute_document(spec: Spec, name: str) -> dict:
    """A compute as an amlCompute / computeInstance file."""
    compute = spec.computes[name]
    doc = {"$schema": COMPUTE_SCHEMAS[compute.type], "name": name, "type": compute.type}
    for key, value in compute.fields.items():
        if key not in ("$schema", "file", "name", "type"):
            doc[key] = value
    return doc


def export(spec: Spec, out_dir: Path) -> list[Path]:
    """Write workspace.yml, computes/NAME.yml, environments/NAME.yml, components/NAME.yml,
    data/NAME.yml, datastores/NAME.yml, jobs/NAME.yml, models/NAME.yml, endpoints/NAME.yml
    (with endpoints/NAME/DEPLOYMENT.yml) and schedules/NAME.yml under `out_dir`; the files
    written."""
    out_dir = Path(out_dir)
    written = []

    def write(path: Path, doc: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
        written.append(path)

    write(out_dir / "workspace.yml", workspace_document(spec))
    for name in spec.computes:
        write(out_dir / "computes" / f"{name}.yml", compute_document(spec, name))
    for name in spec.environments:
        folder = out_dir / "environments"
        write(folder / f"{name}.yml", environment_document(spec, name, folder))
    for name in spec.components:
        folder = out_dir / "components"
        write(folder / f"{name}.yml", component_document(spec, name, folder))
    for name in spec.data:
        folder = out_dir / "data"
        write(folder / f"{name}.yml", data_document(spec, name, folder))
    for name in datastores.declared(spec.datastores):
        write(out_dir / "datastores" / f"{name}.yml", datastore_document(spec, name))
    for name, job in spec.jobs.items():
        folder = out_dir / "jobs"
        write(folder / f"{name}.yml", job_document(spec, job, folder))
    for name in spec.models:
        folder = out_dir / "models"
        write(folder / f"{name}.yml", model_document(spec, name, folder))
    for name in spec.endpoints:
        folder = out_dir / "endpoints"
        for file, doc in endpoint_documents(spec, name, folder).items():
            write(folder / file, doc)
    for name in spec.schedules:
        folder = out_dir / "schedules"
        write(folder / f"{name}.yml", schedule_document(spec, name, folder))
    return written


def _rel(path: Path, out_dir: Path) -> str:
    return os.path.relpath(Path(path).resolve(), Path(out_dir).resolve())
