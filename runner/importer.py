"""A lab spec from Azure ML CLI v2 YAML files (workspace, computes, jobs) and MLflow MLproject
files."""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from .errors import UserError, display_path, plural, read_text
from .pipelines import SENSITIVE
from .refs import LOCAL_INPUT_TYPES, is_local

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "schemas" / "lab.schema.json"
WORKSPACE_KEYS = ("name", "display_name", "description", "location", "resource_group", "tags")
PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
LITERAL_TYPES = {
    "float": float,
    "double": float,
    "number": float,
    "int": int,
    "integer": int,
    "long": int,
}


def kind(data: dict, path: Path) -> str:
    """workspace, compute, environment, component, data, model, endpoint, deployment, job or
    mlproject: what an az ml / MLflow YAML file describes."""
    schema = str(data.get("$schema") or "").lower()
    for marker, what in (
        ("workspace.schema", "workspace"),
        ("amlcompute.schema", "compute"),
        ("computeinstance.schema", "compute"),
        ("commandjob.schema", "job"),
        ("sweepjob.schema", "job"),
        ("pipelinejob.schema", "job"),
        ("paralleljob.schema", "job"),
        ("automljob.schema", "job"),
        ("sparkjob.schema", "job"),
        ("commandcomponent.schema", "component"),
        ("parallelcomponent.schema", "component"),
        ("sparkcomponent.schema", "component"),
        ("pipelinecomponent.schema", "component"),  # type: pipeline, yet not a job
        ("environment.schema", "environment"),
        ("data.schema", "data"),
        ("model.schema", "model"),
        ("deployment.schema", "deployment"),  # online, model batch, pipeline component batch
        ("endpoint.schema", "endpoint"),  # managed online, batch
        ("azureblob.schema", "datastore"),
        ("azuredatalakegen2.schema", "datastore"),
        ("azurefile.schema", "datastore"),
        ("azuredatalakegen1.schema", "datastore"),
        ("schedule.schema", "schedule"),
    ):
        if marker in schema:
            return what
    if path.name == "MLproject" or "entry_points" in data:
        return "mlproject"
    kind_of = data.get("type")
    if kind_of in ("amlcompute", "computeinstance", "synapsespark", "kubernetes"):
        return "compute"
    if kind_of in ("uri_file", "uri_folder", "mltable") and "path" in data:
        return "data"
    if kind_of in ("azure_blob", "azure_data_lake_gen2", "azure_file", "azure_data_lake_gen1"):
        return "datastore"
    if "trigger" in data and ("create_job" in data or "import_data" in data):
        return "schedule"
    if kind_of in ("command", "sweep", "pipeline", "automl", "finetuning", "spark") or (
        kind_of is None and "command" in data
    ):
        return "job"
    if kind_of in ("mlflow_model", "custom_model", "triton_model") and "path" in data:
        return "model"
    if "endpoint_name" in data:
        return "deployment"
    raise UserError(
        f"{display_path(str(path))}: not an az ml workspace, compute, environment, component, "
        "data, datastore, model, endpoint, deployment, schedule or job file, nor an MLproject file"
    )


def read_yaml(path: Path) -> dict:
    name = display_path(str(path))
    text = read_text(path, "YAML file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise UserError(f"{name}{where}: not valid YAML: {problem}") from None
    except RecursionError:  # PyYAML composes recursively
        raise UserError(f"{name}: not valid YAML: nested too deeply") from None
    if not isinstance(data, dict):
        raise UserError(f"{name}: expected a YAML mapping")
    return data


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return s[:64].strip("-") or "lab"


def build(
    files: list[Path], out: Path, name: str | None = None, inline: bool = False
) -> tuple[dict, list[str]]:
    """The spec (as a dict, in writing order) and notes for the user."""
    out_dir = out.resolve().parent
    workspace, notes = None, []
    computes: dict = {}
    jobs: dict = {}
    assets: dict = {"environment": {}, "component": {}, "data": {}, "datastore": {}, "model": {}}
    endpoints: dict = {}
    schedules: dict = {}
    job_files: dict[Path, str] = {}  # a job file imported -> its job's name in the spec
    deployments: list[tuple[str, str, dict, str]] = []  # endpoint, name, block, file shown
    seen: dict = {}
    spec_name = name
    for path in files:
        path = Path(path)
        data = read_yaml(path)
        what = kind(data, path)
        shown = display_path(str(path))
        if what == "workspace":
            if workspace is not None:
                raise UserError(f"{shown}: a second workspace file (a spec has one workspace)")
            dropped = sorted(k for k in data if k not in WORKSPACE_KEYS and k != "$schema")
            if dropped:
                notes.append(
                    f"{shown}: not imported (mlrun does not manage them): {', '.join(dropped)}"
                )
            workspace = {k: data[k] for k in WORKSPACE_KEYS if k in data}
            if "name" not in workspace:
                raise UserError(f"{shown}: the workspace file has no name")
        elif what == "compute":
            key = data.get("name")
            if not isinstance(key, str) or not key:
                raise UserError(f"{shown}: the compute file has no name")
            _add(
                computes,
                seen,
                "compute",
                key,
                shown,
                _inline_block(data, path, out_dir) if inline else {"file": _rel(path, out_dir)},
            )
        elif what == "endpoint":
            named = data.get("name")
            key = named if isinstance(named, str) and named else path.stem
            _add(endpoints, seen, "endpoint", key, shown, {"file": _rel(path, out_dir)})
        elif what == "deployment":
            named, endpoint = data.get("name"), data.get("endpoint_name")
            if not isinstance(endpoint, str) or not endpoint:
                raise UserError(f"{shown}: the deployment file has no endpoint_name")
            key = named if isinstance(named, str) and named else path.stem
            deployments.append((endpoint, key, {"file": _rel(path, out_dir)}, shown))
        elif what == "model" and (made := _from_job(data)) is not None:
            named = data.get("name")
            key = named if isinstance(named, str) and named else path.stem
            _add(assets["model"], seen, "model", key, shown, made)
        elif what in ("environment", "component", "data", "datastore", "model"):  # az ml create
            named = data.get("name")
            key = named if isinstance(named, str) and named else path.stem
            block = {"file": _rel(path, out_dir)}
            if what == "datastore":
                block.update(_datastore_secrets(data, key, shown, notes))
            _add(assets[what], seen, what, key, shown, block)
        elif what == "schedule":
            named = data.get("name")
            key = named if isinstance(named, str) and named else path.stem
            _add(schedules, seen, "schedule", key, shown, {"file": _rel(path, out_dir)})
            schedules[key]["_create_job"] = (path, data.get("create_job"))
        elif what == "job":
            named = data.get("name")
            key = named if isinstance(named, str) and named else path.stem
            job_files[path.resolve()] = key
            pipeline = data.get("type") == "pipeline"  # its steps' files stay where they are
            if inline and pipeline:
                notes.append(
                    f"{shown}: a pipeline is included with file: (its steps name files "
                    "relative to it)"
                )
            _add(
                jobs,
                seen,
                "job",
                key,
                shown,
                _inline_block(data, path, out_dir)
                if inline and not pipeline
                else {"file": _rel(path, out_dir)},
            )
        else:
            spec_name = spec_name or (
                slug(data["name"]) if data.get("name") else slug(path.resolve().parent.name)
            )
            for env_key in ("conda_env", "python_env"):
                if env_key in data:
                    notes.append(
                        f"{shown}: {env_key} not imported: locally the current interpreter runs "
                        "the jobs; give them an environment to run on Azure"
                    )
            for key, block in _mlproject_jobs(data, path, out_dir).items():
                _add(jobs, seen, "job", key, shown, block)
    spec_name = slug(spec_name or (workspace or {}).get("name") or out.stem)
    doc: dict = {
        "name": spec_name,
        "description": f"Imported from {', '.join(Path(f).name for f in files)}",
    }
    if workspace is None:
        doc["variables"] = {
            "suffix": {
                "generate": "hex",
                "length": 6,
                "description": "Makes the workspace name unique; generated once, "
                "kept in the state.",
            }
        }
        base = spec_name[:20].strip("-")
        workspace = {
            "name": f"mlw-{base}-${{{{vars.suffix}}}}",
            "resource_group": f"rg-{base}-${{{{vars.suffix}}}}",
            "location": "eastus",
        }
    doc["workspace"] = workspace
    if computes:
        doc["computes"] = computes
    if assets["environment"]:
        doc["environments"] = assets["environment"]
    if assets["component"]:
        doc["components"] = assets["component"]
    if assets["data"]:
        doc["data"] = assets["data"]
    if assets["datastore"]:
        doc["datastores"] = assets["datastore"]
    if jobs:
        doc["jobs"] = jobs
    if assets["model"]:
        doc["models"] = assets["model"]
    for endpoint, key, block, shown in deployments:  # under the endpoint they name
        if endpoint not in endpoints:
            raise UserError(
                f"{shown}: its endpoint_name '{endpoint}' is none of the endpoint files given"
            )
        _add(
            endpoints[endpoint].setdefault("deployments", {}),
            seen,
            f"deployment of {endpoint}",
            key,
            shown,
            block,
        )
    if endpoints:
        doc["endpoints"] = endpoints
    for block in schedules.values():  # a schedule of a job imported with it names that job
        path, create = block.pop("_create_job")
        ref = create.get("job") if isinstance(create, dict) else create
        if isinstance(ref, str) and is_local(ref):
            job = job_files.get((path.parent / ref.removeprefix("file:")).resolve())
            if job is not None:
                block["create_job"] = {**create, "job": job} if isinstance(create, dict) else job
    if schedules:
        doc["schedules"] = schedules
    return doc, notes


# what mlrun export writes for a model a job makes (the run is known once the job ran)
FROM_JOB = re.compile(
    r"azureml://jobs/<run of job (?P<job>[^>]+)>/outputs/(?P<output>[^/]+)(?:/paths/(?P<sub>.*))?"
)


def _from_job(data: dict) -> dict | None:
    """A model file mlrun export wrote for a model a job makes, as the spec's block again
    (`${{jobs.JOB.artifacts}}/model`); None for any other model file."""
    found = FROM_JOB.fullmatch(str(data.get("path") or ""))
    if found is None:
        return None
    job, output, sub = found.group("job", "output", "sub")
    part = "artifacts" if output == "artifacts" else f"outputs.{output}"
    ref = "${{jobs." + job + "." + part + "}}"
    block = {k: v for k, v in data.items() if k not in ("$schema", "name", "path")}
    return {**block, "path": f"{ref}/{sub}" if sub else ref}


def _datastore_secrets(data: dict, key: str, shown: str, notes: list[str]) -> dict:
    """A datastore file's credentials written as (sensitive) (as mlrun export writes them): each
    given as ${{env.NAME}} in the spec instead, NAME said in a note."""
    creds = data.get("credentials")
    if not isinstance(creds, dict) or SENSITIVE not in creds.values():
        return {}
    prefix = re.sub(r"[^A-Z0-9]+", "_", key.upper()).strip("_")
    names = {k: f"{prefix}_{k.upper()}" for k, v in creds.items() if v == SENSITIVE}
    notes.append(
        f"{shown}: {', '.join(names)} written as {SENSITIVE}: the spec reads "
        f"{'them' if len(names) > 1 else 'it'} from {', '.join(names.values())}"
    )
    given = {k: "${{env." + names[k] + "}}" if k in names else v for k, v in creds.items()}
    return {"credentials": given}


def _add(section: dict, seen: dict, what: str, key: str, shown: str, block: dict) -> None:
    if (what, key) in seen:
        raise UserError(
            f"{shown}: a second {what} named '{key}' (the first is in {seen[(what, key)]})"
        )
    seen[(what, key)] = shown
    section[key] = block


def _inline_block(data: dict, path: Path, out_dir: Path) -> dict:
    """A CLI v2 block copied in, its local paths made relative to the spec."""
    block = {k: v for k, v in data.items() if k not in ("$schema", "name")}
    here = path.resolve().parent
    if is_local(block.get("code")):
        block["code"] = _rel(here / block["code"], out_dir)
    trial = block.get("trial")
    if isinstance(trial, dict) and (
        is_local(trial.get("code")) or isinstance(trial.get("environment"), dict)
    ):
        block["trial"] = _inline_block(
            trial, path, out_dir
        )  # a sweep's trial holds its code and environment
    inputs = block.get("inputs")
    if isinstance(inputs, dict):
        block["inputs"] = {
            k: (
                {**v, "path": _rel(here / v["path"], out_dir)}
                if isinstance(v, dict)
                and v.get("type", "uri_folder") in LOCAL_INPUT_TYPES
                and is_local(v.get("path"))
                else v
            )
            for k, v in inputs.items()
        }
    env = block.get("environment")
    if isinstance(env, dict) and isinstance(env.get("conda_file"), str):
        block["environment"] = {**env, "conda_file": _rel(here / env["conda_file"], out_dir)}
    return block


def _mlproject_jobs(data: dict, path: Path, out_dir: Path) -> dict:
    shown = display_path(str(path))
    entry_points = data.get("entry_points")
    if not isinstance(entry_points, dict) or not entry_points:
        raise UserError(f"{shown}: an MLproject needs entry_points")
    here = path.resolve().parent
    environment = None
    docker = data.get("docker_env")
    if isinstance(docker, dict) and docker.get("image"):
        environment = {"image": docker["image"]}
    jobs = {}
    for entry, ep in entry_points.items():
        if not isinstance(ep, dict) or not isinstance(ep.get("command"), str):
            raise UserError(f"{shown}: entry point '{entry}' has no command")
        params = ep.get("parameters") or {}
        if not isinstance(params, dict):
            raise UserError(f"{shown}: entry point '{entry}': parameters must be a mapping")
        inputs = {}
        for pname, p in params.items():
            ptype, default = (
                (p.get("type", "string"), p.get("default"))
                if isinstance(p, dict)
                else ("string", p)
            )
            if default is None:
                raise UserError(
                    f"{shown}: entry point '{entry}': parameter '{pname}' has no default "
                    "(a spec input needs a value)"
                )
            inputs[pname] = _param_input(ptype, default, here, out_dir)
        unknown = sorted(set(PARAM.findall(ep["command"])) - set(params))
        if unknown:
            raise UserError(
                f"{shown}: entry point '{entry}': the command uses undeclared parameters: "
                f"{', '.join(unknown)}"
            )
        command = PARAM.sub(lambda m: f"${{{{inputs.{m.group(1)}}}}}", ep["command"])
        job: dict = {"code": _rel(here, out_dir), "command": command}
        if inputs:
            job["inputs"] = inputs
        if environment:
            job["environment"] = environment
        jobs[str(entry)] = job
    return jobs


def _param_input(ptype: str, default, here: Path, out_dir: Path):
    if ptype in ("path", "uri"):
        ref = str(default)
        if not is_local(ref):
            return {"type": "uri_folder" if ref.endswith("/") else "uri_file", "path": ref}
        local = here / os.path.expanduser(ref)
        return {
            "type": "uri_folder" if local.is_dir() else "uri_file",
            "path": _rel(local, out_dir),
        }
    convert = LITERAL_TYPES.get(ptype)
    if convert is None:  # string (MLflow's default type): the value as text
        return default if isinstance(default, (str, bool)) else str(default)
    try:
        return convert(default)
    except (TypeError, ValueError):
        return default


def schema_comment(out: Path) -> str | None:
    """The yaml-language-server line pointing at schemas/lab.schema.json, when out is in this
    repo."""
    out_dir = out.resolve().parent
    if not SCHEMA.exists():
        return None
    try:
        out_dir.relative_to(REPO)
    except ValueError:
        return None
    return f"# yaml-language-server: $schema={Path(os.path.relpath(SCHEMA, out_dir)).as_posix()}"


def make(
    files: list[Path], out: Path, name: str | None = None, inline: bool = False, force: bool = False
) -> tuple[list[str], str]:
    """`mlrun import`: the spec built from `files`, written to `out`; its notes and what it
    holds."""
    if out.exists() and not force:
        raise UserError(f"{display_path(str(out))}: already exists (pass --force to overwrite)")
    doc, notes = build(files, out, name=name, inline=inline)
    write(doc, out, force=True)
    return notes, ", ".join(
        plural(len(doc.get(k) or {}), w)
        for k, w in (
            ("computes", "compute"),
            ("jobs", "job"),
            ("datastores", "datastore"),
            ("schedules", "schedule"),
        )
        if k not in ("datastores", "schedules") or doc.get(k)
    )


def write(doc: dict, out: Path, force: bool = False) -> None:
    if out.exists() and not force:
        raise UserError(f"{display_path(str(out))}: already exists (pass --force to overwrite)")
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=120)
    comment = schema_comment(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text((comment + "\n" if comment else "") + text, encoding="utf-8")


def _rel(path: Path, out_dir: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), out_dir)).as_posix()
