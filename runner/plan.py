"""Plans: desired vs actual -> Changes, each with an action and a reason. make_plan is pure."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import (
    azure_only,
    batch,
    cost,
    data as data_assets,
    datastores,
    endpoints,
    fingerprint,
    parallel,
    schedules,
    spark,
)
from .backends import targets
from .changes import (
    ACTIVE,
    COMPUTE_FIELDS,
    CREATE,
    DESTROY,
    IDLE,
    IDLE_NOTE,
    NOOP,
    REPLACE,
    RUN,
    UPDATE,
    VERSIONED,
    WAIT,
    WORKSPACE_FIELDS,
    Address,
    Change,
    Kind,
    Plan,
)
from .endpoints import Deployment, Endpoint
from .errors import UserError, plural
from .formats import short
from .models import Model
from .records import Actual, Resource, Run, StepRecord
from .refs import local_inputs, mapping
from .spec import Input, Job, Spec

# --- the desired model ---------------------------------------------------------------------------


def desired(spec: Spec, *, manages_resource_group: bool) -> dict:
    """What the spec asks for: resources by address (a resource group where the target
    `manages_resource_group`, Azure), and each job's fingerprint."""
    ws = spec.workspace
    resources = {}
    # (a group named only in a config.json is used, not managed)
    if manages_resource_group and ws.get("resource_group"):
        rg = ws["resource_group"]
        resources[Address(Kind.RESOURCE_GROUP, rg)] = {
            "kind": "resource_group",
            "name": rg,
            "attrs": {"location": ws.get("location")},
        }
    resources[Address(Kind.WORKSPACE, ws["name"])] = {
        "kind": "workspace",
        "name": ws["name"],
        "attrs": {k: ws[k] for k in WORKSPACE_FIELDS if k in ws},
    }
    for c in spec.computes.values():
        fields = COMPUTE_FIELDS + (
            azure_only.ATTACH_FIELDS if azure_only.compute_kind(c.fields) else ()
        )
        resources[Address(Kind.COMPUTE, c.name)] = {
            "kind": "compute",
            "name": c.name,
            "attrs": {k: c.fields[k] for k in fields if k in c.fields},
        }
        if cost.idle_default(c.fields):  # no surprise bills: it stops when idle, unless told not to
            resources[Address(Kind.COMPUTE, c.name)]["attrs"][IDLE] = cost.IDLE_DEFAULT
            resources[Address(Kind.COMPUTE, c.name)]["note"] = IDLE_NOTE
    for name, store in datastores.declared(spec.datastores).items():  # credentials: their kind
        resources[Address(Kind.DATASTORE, name)] = {
            "kind": "datastore",
            "name": name,
            "attrs": store.attrs(),
        }
    for name, comp in spec.components.items():  # versioned: see _asset_change
        resources[Address(Kind.COMPONENT, name)] = {
            "kind": "component",
            "name": name,
            "attrs": {"version": comp.version, "content": fingerprint.component(spec, name)[:16]},
        }
    for name, asset in spec.data.items():  # versioned: see _asset_change
        resources[Address(Kind.DATA, name)] = {
            "kind": "data",
            "name": name,
            "attrs": {
                "version": asset.version,
                "content": fingerprint.data(asset)[:16],
                "type": asset.type,
                "summary": data_assets.summary(asset),
            },
        }
        if asset.imported:  # az ml data import: only Azure runs it
            resources[Address(Kind.DATA, name)]["attrs"]["summary"] = azure_only.import_summary(
                asset.fields
            )
            resources[Address(Kind.DATA, name)]["azure_only"] = azure_only.import_note(asset.fields)
    for name, env in spec.environments.items():  # versioned: see _asset_change
        resources[Address(Kind.ENVIRONMENT, name)] = {
            "kind": "environment",
            "name": name,
            "attrs": {"version": env.version, "content": env.digest[:16]},
        }
    for name, m in spec.models.items():  # planned after the jobs: see _model_change
        resources[Address(Kind.MODEL, name)] = {"kind": "model", "name": name, "attrs": _model(m)}
    for e in spec.endpoints.values():  # planned after the models: see _deployment_change
        resources[Address(Kind.ENDPOINT, e.name)] = {
            "kind": "endpoint",
            "name": e.name,
            "attrs": _endpoint(e),
        }
        for d in e.deployments.values():
            resources[Address(Kind.DEPLOYMENT, d.key)] = {
                "kind": "deployment",
                "name": d.key,
                "attrs": _deployment(d),
            }
            if d.kubernetes is not None:  # said by a local plan beside what it does
                resources[Address(Kind.DEPLOYMENT, d.key)]["here"] = KUBERNETES_HERE
        if e.invoke:
            resources[Address(Kind.INVOKE, e.name)] = {
                "kind": "invoke",
                "name": e.name,
                "attrs": _invoke(spec, e),
            }
        if why := e.azure_only:  # a custom container, Triton, a package: the whole endpoint
            for address in (Address(Kind.ENDPOINT, e.name), Address(Kind.INVOKE, e.name)):
                if address in resources:
                    resources[address]["azure_only"] = why
            for d in e.deployments.values():
                resources[Address(Kind.DEPLOYMENT, d.key)]["azure_only"] = why
    jobs: dict[str, dict] = {}
    links = datastores.links(spec.jobs)  # a job reading what another writes runs after it
    after = {reader: set(found.values()) for reader, found in links.items()}
    for job in (spec.jobs[n] for n in datastores.ordered(list(spec.jobs), after)):
        if job.is_pipeline:
            model = fingerprint.pipeline(job)
            for step in job.pipeline.steps.values() if job.pipeline else ():
                if step.parallel is not None:  # how a parallel step runs, said beside why
                    described = parallel.describe(step.parallel, *step.data)
                    model["steps"][step.name]["parallel"] = described
                if step.spark is not None:  # how a spark step runs here, and on Azure
                    model["steps"][step.name]["spark"] = _spark(step.spark, step.env)
                notes = [*step.notes, *([step.nested] if step.nested else [])]
                if notes:  # a nested pipeline's step, a stand-in component: said beside why
                    model["steps"][step.name]["notes"] = notes
            jobs[job.name] = {
                "fingerprint": fingerprint.combine(model["parts"]),
                **model,
                "compute": None,
            }
            continue
        produced = {i: jobs[w]["fingerprint"] for i, w in links.get(job.name, {}).items()}
        parts = fingerprint.parts(job, produced)
        if azure_only.kind(job.fields):
            parts.update(fingerprint.azure_only_parts(spec.doc, job))
        jobs[job.name] = {
            "fingerprint": fingerprint.combine(parts),
            "parts": parts,
            "compute": job.compute,
        }
        if job.name in after:
            jobs[job.name]["after"] = sorted(after[job.name])
        if job.is_parallel:  # how it runs, said beside why
            jobs[job.name]["parallel"] = parallel.describe(job.fields, *_data(job))
        if job.is_spark:  # how it runs here, and on Azure
            jobs[job.name]["spark"] = _spark(job.fields, job.env)
    for job in spec.jobs.values():  # automl, finetuning, a pipeline with such a step
        if why := azure_only.reason(job.fields, job.pipeline):
            jobs[job.name]["azure_only"] = why
    for name, sched in spec.schedules.items():  # after the jobs: it holds its job's fingerprint
        job = jobs.get(sched.job or "", {}).get("fingerprint")
        resources[Address(Kind.SCHEDULE, name)] = {
            "kind": "schedule",
            "name": name,
            "attrs": sched.attrs(job),
            "by_hand": sched.job,  # the spec's job it submits, run by hand here
        }
        if sched.imports is not None:
            resources[Address(Kind.SCHEDULE, name)]["azure_only"] = schedules.AZURE_ONLY
    for c in spec.computes.values():  # an attached Synapse pool or Kubernetes cluster
        if azure_only.compute_kind(c.fields):
            resources[Address(Kind.COMPUTE, c.name)]["azure_only"] = azure_only.compute_note(
                c.fields
            )
    return {"resources": resources, "jobs": jobs, "variables": spec.shown_variables()}


def _spark(fields: dict, env: Any) -> dict:
    """How a spark job or step runs: under PySpark here, on a Synapse runtime on Azure."""
    return {"here": spark.describe(fields, env), "azure": spark.describe_azure(fields)}


def _data(job: Job) -> tuple[str | None, Path | None]:
    """The type of the input a parallel job's input_data names, and the local folder (or file)
    it is, when it is one."""
    name = parallel.settings(job.fields).input_name
    inp = job.inputs.get(name) if name else None
    return (inp.type, inp.local_path) if inp is not None else (None, None)


def _model(m: Model) -> dict:
    attrs = {
        "version": m.version,
        "content": fingerprint.model(m)[:16],
        "type": m.type,
        "source": m.source,
    }
    return {**attrs, "job": m.job.job} if m.job else attrs


ENDPOINT_FIELDS = ("type", "auth_mode", "traffic", "mirror_traffic", "description", "tags")


def _endpoint(e: Endpoint) -> dict:
    attrs = {k: e.fields[k] for k in ENDPOINT_FIELDS if k in e.fields}
    if e.compute is not None:  # a Kubernetes online endpoint
        attrs["compute"] = e.compute
    if e.type == "batch":  # Azure's batch endpoints take Microsoft Entra tokens only
        return {**attrs, "type": e.type, "auth_mode": "aad_token", "default": e.default_deployment}
    return {**attrs, "type": e.type, "auth_mode": e.auth_mode}


def _deployment(d: Deployment) -> dict:
    """What a deployment serves and on what: a change to any of it is a new deployment of it."""
    if d.component is not None:
        return _pipeline_deployment(d)
    attrs: dict[str, Any] = {"model": d.model.shown if d.model else None}
    if d.batch:  # where and how it scores when invoked
        attrs |= {"compute": d.compute, "settings": d.batch_settings}
    else:
        attrs |= {"instance_type": d.instance_type, "instance_count": d.instance_count}
    attrs["server"] = d.served_on_azure or ("mlflow" if d.mlflow_server else "script")
    if d.kubernetes is not None:  # on its endpoint's Kubernetes compute, sized by requests
        attrs["kubernetes"] = d.kubernetes
        for key in ("resources", "scale_settings"):
            if key in d.fields:
                attrs[key] = d.fields[key]
    if d.model and d.model.local is not None and d.model.local.exists():
        attrs["model_content"] = fingerprint.tree_digest(d.model.local)[:16]
    if d.model and d.model.spec_model:
        attrs["spec_model"] = d.model.spec_model
    if d.code is not None and d.code.exists():
        attrs["code"] = fingerprint.tree_digest(d.code)[:16]
        attrs["scoring_script"] = d.scoring_script
    if d.environment is not None:
        attrs["environment"] = f"{d.environment.shown} ({d.environment.digest[:12]})"
    for key in ("request_settings", "description", "tags"):
        if key in d.fields:
            attrs[key] = d.fields[key]
    if d.fields.get("environment_variables"):  # values may be secrets: only their digest
        variables = d.fields["environment_variables"]
        attrs["environment_variables"] = {
            "names": sorted(variables),
            "digest": hashlib.sha256(json.dumps(variables, sort_keys=True).encode()).hexdigest()[
                :16
            ],
        }
    return attrs


def _pipeline_deployment(d: Deployment) -> dict:
    """A pipeline deployment: its component (and the content of its steps: commands, code,
    environments, inputs, as a pipeline job's steps are fingerprinted), where its steps run."""
    assert d.component is not None
    job = Job(d.key, {}, None, pipeline=d.component.pipeline)
    settings = mapping(d.fields.get("settings"))
    attrs: dict[str, Any] = {
        "model": None,
        "component": d.component.shown,
        "content": fingerprint.combine(fingerprint.pipeline(job)["parts"])[:16],
        "component_steps": list(d.component.pipeline.steps),
        "compute": d.compute,
        "settings": {"continue_on_step_failure": settings.get("continue_on_step_failure") is True},
    }
    for key in ("description", "tags"):
        if key in d.fields:
            attrs[key] = d.fields[key]
    return attrs


def pipeline_call(inputs: dict[str, Input], deployment: str) -> dict:
    """A call of a pipeline deployment: its inputs as written (`input`, what plans show), the
    digest of each local one's content, the deployment."""
    return {
        "input": ", ".join(f"{n}={i.value}" for n, i in inputs.items()) or "(no inputs)",
        "inputs": {
            n: {
                "value": i.value,
                "content": fingerprint.tree_digest(i.local_path)[:16]
                if i.local_path is not None and i.local_path.exists()
                else None,
            }
            for n, i in inputs.items()
        },
        "deployment": deployment,
    }


def _invoke(spec: Spec, e: Endpoint) -> dict:
    """An endpoint's call: what it sends (a request file, or a batch endpoint's input) and the
    digest of its content, so that a changed request or input is called again."""
    called = e.deployments.get(e.invoke.get("deployment_name") or e.default_deployment or "")
    if called is not None and called.component is not None:
        try:
            inputs = batch.pipeline_inputs(spec, e, called.component)
        except UserError as err:  # apply says it (validate said what it could)
            return {"input": str(err), "deployment": called.name}
        return pipeline_call(inputs, called.name)
    if e.type == "batch":
        found = endpoints.batch_input(spec.doc, e)
        if isinstance(found, str):  # one of the spec's data assets: its content
            asset = data_assets.input_source(
                spec.doc, found, spec.data, local_inputs(spec.doc.data)
            )
            found = asset[0] if asset else None
        local = found if isinstance(found, Path) and found.exists() else None
        value = e.invoke.get("input")
        return {
            "input": value.get("path") if isinstance(value, dict) else value,
            "content": fingerprint.tree_digest(local)[:16] if local else None,
            "deployment": e.invoke.get("deployment_name") or e.default_deployment,
        }
    file = endpoints.request_file(spec.doc, e)
    return {
        "request_file": e.invoke.get("request_file"),
        "request": fingerprint.tree_digest(file)[:16] if file and file.is_file() else None,
        "deployment": e.invoke.get("deployment_name"),
    }


def digest(model: dict) -> str:
    return hashlib.sha256(json.dumps(model, sort_keys=True, default=str).encode()).hexdigest()


# --- planning (pure) -----------------------------------------------------------------------------


def make_plan(
    model: dict,
    actual: Actual,
    *,
    target: str,
    spec: str,
    updatable: Mapping[str, frozenset[str]],
    force=(),
    only=None,
) -> Plan:
    """Compare the desired model with the actual state (resources and latest runs): the Plan.
    `updatable`: the fields the target changes in place, by kind (its backend's declaration)."""
    resources, have = model["resources"], actual["resources"]
    changes = [
        _asset_change(Address.parse(address), want, have.get(address))
        if want["kind"] in VERSIONED
        else _resource_change(Address.parse(address), want, have.get(address), updatable)
        for address, want in resources.items()
        if want["kind"] not in AFTER_JOBS
    ]
    ws = next(i for i, (_, want) in enumerate(resources.items()) if want["kind"] == "workspace")
    fresh_ws = changes[ws].action in (CREATE, REPLACE)
    if fresh_ws:  # computes live in the workspace: a new one has none of the old ones
        changes[ws + 1 :] = [
            c
            if c.action == CREATE
            else Change(c.address, CREATE, "in the new workspace", c.before, c.after)
            for c in changes[ws + 1 :]
        ]
    reusable = actual.get("reusable") or {}
    here = targets.get(target).runs_here
    if here:  # what only Azure runs is planned, and left alone, by the local target
        changes = [_azure_only(c, resources) for c in changes]
    changes = [_schedule(c, resources.get(c.address), here) for c in changes]
    for name, job in model["jobs"].items():
        if here and job.get("azure_only") and (only is None or name in only):
            after = {"fingerprint": job["fingerprint"], "azure_only": job["azure_only"]}
            changes.append(Change(Address(Kind.JOB, name), NOOP, job["azure_only"], None, after))
            continue
        change = _job_change(
            name,
            job,
            actual["jobs"].get(name),
            fresh_ws,
            name in force,
            only is not None and name not in only,
        )
        if "steps" in job and change.action == RUN:
            change = _with_steps(
                change, job, actual["jobs"].get(name), reusable, name in force, here
            )
        if job.get("after") and change.action == RUN:  # what it reads from a datastore path
            writers = ", ".join(f"job.{w}" for w in job["after"])
            reason = f"{change.reason}; after {writers} (reads what it writes to a datastore)"
            change = Change(change.address, change.action, reason, change.before, change.after)
        if job.get("parallel") and change.action == RUN:
            reason = f"{change.reason}; {job['parallel']}"
            change = Change(change.address, change.action, reason, change.before, change.after)
        if job.get("spark") and change.action == RUN:
            reason = f"{change.reason}; {job['spark']['here' if here else 'azure']}"
            change = Change(change.address, change.action, reason, change.before, change.after)
        changes.append(change)
    job_changes = {c.address.name: c for c in changes if c.address.kind == Kind.JOB}
    for address, want in resources.items():
        if want["kind"] == "model":
            job = want["attrs"].get("job")
            changes.append(
                _model_change(
                    Address.parse(address),
                    want,
                    have.get(address),
                    fresh_ws,
                    job_changes.get(job),
                    actual["jobs"].get(job),
                )
            )
    served = _served(resources, have, changes, fresh_ws, updatable)
    changes += [_here(_azure_only(c, resources), resources) for c in served] if here else served
    gone = [a for a in have if a not in resources]
    scored = {w["name"] for w in resources.values() if w["kind"] == "invoke"}  # batch calls' runs
    for name in actual["jobs"]:
        if name not in model["jobs"] and name not in scored:
            changes.append(
                Change(
                    Address(Kind.JOB, name),
                    DESTROY,
                    "no longer in the spec (its runs stay in the tracking store)",
                    before=_run_view(actual["jobs"][name]),
                )
            )
    for address in sorted(gone, key=lambda a: (depth(have[a].get("kind")), a)):
        detach = azure_only.detach_note(have[address].get("attrs"))
        changes.append(
            Change(
                Address.parse(address),
                DESTROY,
                "no longer in the spec" + (f"; {detach}" if detach else ""),
                before=have[address].get("attrs"),
            )
        )
    return Plan(
        target=target,
        spec=spec,
        digest=digest(model),
        lineage=actual.get("lineage", ""),
        serial=actual.get("serial", 0),
        variables=model["variables"],
        changes=changes,
    )


KUBERNETES_HERE = "served here as any online deployment: its requests and limits are not applied"


def _here(change: Change, resources: dict) -> Change:
    """A change said with how the local target does what Azure does otherwise (a Kubernetes
    deployment served as a managed one is)."""
    note = resources.get(change.address, {}).get("here")
    if not note or change.action not in (CREATE, UPDATE, REPLACE):
        return change
    return Change(
        change.address, change.action, f"{change.reason}; {note}", change.before, change.after
    )


def _azure_only(change: Change, resources: dict) -> Change:
    """What the local target cannot be or serve (an attached Synapse pool or Kubernetes
    cluster, a data import, an endpoint a custom container serves): left alone, never made (nor
    called)."""
    note = resources.get(change.address, {}).get("azure_only")
    if not note or change.action not in (CREATE, RUN):
        return change
    return Change(change.address, NOOP, note, None, {**(change.after or {}), "azure_only": note})


def _schedule(change: Change, want: dict | None, here: bool) -> Change:
    """A schedule's change said with its trigger, job and next three fire times (computed now, in
    its time zone; never part of what is compared or kept), and, on a target that runs here,
    that nothing fires by itself and how its job runs by hand."""
    if change.address.kind != Kind.SCHEDULE or want is None or change.action == DESTROY:
        return change
    if (change.after or {}).get("azure_only"):
        return change
    text = schedules.line(want["attrs"], want.get("by_hand"), here)
    reason = text if change.action == CREATE else f"{change.reason}; {text}"
    return Change(change.address, change.action, reason, change.before, change.after)


AFTER_JOBS = ("model", "endpoint", "deployment", "invoke")  # planned once the jobs are


def _served(
    resources: dict,
    have: dict[str, Resource],
    changes: list[Change],
    fresh_ws: bool,
    updatable: Mapping[str, frozenset[str]],
) -> list[Change]:
    """Endpoints, then their deployments (a model of the spec's at the version its change
    registers), then each endpoint's call, which runs again when any of its endpoint changed."""
    models = {c.address.name: c for c in changes if c.address.kind == Kind.MODEL}
    out: list[Change] = []
    for kind in ("endpoint", "deployment"):
        for address, want in resources.items():
            if want["kind"] != kind:
                continue
            want = {**want, "attrs": dict(want["attrs"])}
            source = want["attrs"].pop("spec_model", None)
            if source in models:  # `diabetes-mlflow@latest` -> the version it will have
                registered = models[source].after or models[source].before or {}
                version = registered.get("version")
                want["attrs"]["model"] = f"{source} v{version}" if version else source
            record = None if fresh_ws else have.get(address)
            change = _resource_change(Address.parse(address), want, record, updatable)
            down = record.get("details", {}).get("down") if record is not None else None
            if record is not None and down and change.action == NOOP:
                before = record.get("attrs")
                change = Change(change.address, UPDATE, f"{down}: restarted", before, want["attrs"])
            out.append(change)
    for address, want in resources.items():
        if want["kind"] != "invoke":
            continue
        name = want["name"]
        record = None if fresh_ws else have.get(address)
        moved = [
            c
            for c in out
            if c.action != NOOP
            and (c.address.name == name or c.address.name.startswith(f"{name}/"))
        ]
        after = want["attrs"]
        if record is None:
            why = "once deployed"
        elif moved:
            why = f"{moved[0].address} changed"
        elif record.get("attrs") != after:
            why = "the request changed"
        else:
            out.append(
                Change(Address.parse(address), NOOP, "up to date", record.get("attrs"), after)
            )
            continue
        target = f" -> {after['deployment']}" if after.get("deployment") else ""
        sent = after.get("request_file") or after.get("input")
        out.append(Change(Address.parse(address), RUN, f"{sent}{target} ({why})", None, after))
    return out


def depth(kind: str | None) -> int:
    """Destroy order: what lives inside first (computes and assets, then the workspace, then its
    group); a deployment before its endpoint, both before the models they serve."""
    return {
        "schedule": -4,
        "invoke": -3,
        "deployment": -2,
        "endpoint": -1,
        "workspace": 1,
        "resource_group": 2,
    }.get(kind or "", 0)


def _asset_change(address: Address, want: dict, have: Resource | None) -> Change:
    """A versioned asset (an environment), as Azure ML keeps them: a version is immutable, so
    changed content needs a new version. With no version in the spec one is assigned: 1, then the
    next one whenever the content changes. Changed content under the same explicit version is
    refused."""
    asked, content = want["attrs"].get("version"), want["attrs"]["content"]
    before = (have.get("attrs") if have else None) or {}
    shown = {k: v for k, v in want["attrs"].items() if k not in ("version", "content")}
    if not before:
        after = {**shown, "version": asked or "1", "content": content}
        return Change(address, CREATE, describe(address.kind, after), after=after)
    current = before.get("version")
    if before.get("content") == content and asked in (None, current):
        return Change(address, NOOP, f"up to date (v{current})", before=before, after=before)
    if asked is not None and asked == current:
        raise UserError(
            f"{address}: version {current} was registered with other content; versions are "
            "immutable, as on Azure ML: give it a new version (or drop version: to number them "
            "automatically)"
        )
    after = {**shown, "version": asked or _next_version(current), "content": content}
    why = "new version" if asked else "new version: its content changed"
    what = describe(address.kind, after)  # `v2`, or `uri_file v2 (11 rows, 1 KB)`
    reason = (
        f"{what[:-1]}; {why}; v{current} is kept)"
        if what.endswith(")")
        else f"{what} ({why}; v{current} is kept)"
    )
    return Change(address, CREATE, reason, before, after)


def _model_change(
    address: Address,
    want: dict,
    have: Resource | None,
    fresh_ws: bool,
    job: Change | None,
    run: Run | None,
) -> Change:
    """A model: a local folder's is versioned as any asset; one from a job gets a new version
    whenever the job makes a new run, registered once that run completes."""
    if job is None:
        change = _asset_change(address, want, have)
        if fresh_ws and change.action != CREATE:
            return Change(address, CREATE, "in the new workspace", change.before, change.after)
        return change
    attrs, before = (
        want["attrs"],
        ((have.get("attrs") if have else None) or {}) if not fresh_ws else {},
    )
    asked, current, name = attrs.get("version"), before.get("version"), attrs["job"]
    shown = {k: v for k, v in attrs.items() if k != "version"}
    latest = run if run and run.get("status") == "Completed" else None
    if job.action == RUN:
        origin, run_id, pending = f"job.{name}'s new run", None, True
    elif job.action == WAIT:
        origin, run_id, pending = (
            f"run {short(run['id'] if run else None)} of job.{name}",
            None,
            True,
        )
    elif latest is None:
        why = f"up to date (v{current})" if before else f"job.{name} has no completed run yet"
        return Change(address, NOOP, why, before=before or None, after=before or None)
    else:
        origin, run_id, pending = f"run {short(latest['id'])} of job.{name}", latest["id"], False
        same = before.get("run") == run_id and before.get("content") == attrs["content"]
        if same and asked in (None, current):
            return Change(
                address, NOOP, f"up to date (v{current}, {origin})", before=before, after=before
            )
    if before and asked is not None and asked == current:
        raise UserError(
            f"{address}: version {current} is registered from run {short(before.get('run'))}; "
            f"{origin} makes another: versions are immutable, as on Azure ML: give it a new "
            "version (or drop version: to number them automatically)"
        )
    after = {**shown, "version": asked or (_next_version(current) if before else "1")}
    after["run"] = run_id
    when = ", once it completes" if pending else ""
    kept = f"; v{current} is kept" if before else ""
    reason = f"{attrs['type']} v{after['version']} from {origin}{when}{kept}"
    return Change(address, CREATE, reason, before=before or None, after=after)


def _next_version(version: str | None) -> str:
    return str(int(version) + 1) if version and version.isdigit() else "1"


def _resource_change(
    address: Address, want: dict, have: Resource | None, updatable: Mapping[str, frozenset[str]]
) -> Change:
    change = _resource_diff(address, want, have, updatable)
    note = want.get("note")
    if note and change.action != NOOP and (change.action == CREATE or IDLE in change.reason):
        return Change(
            address, change.action, f"{change.reason} ({note})", change.before, change.after
        )
    return change


def _resource_diff(
    address: Address, want: dict, have: Resource | None, updatable: Mapping[str, frozenset[str]]
) -> Change:
    after = want["attrs"]
    if have is None:
        return Change(address, CREATE, describe(want["kind"], after), after=after)
    before = have.get("attrs", {})
    diff = [k for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
    if not diff:
        return Change(address, NOOP, "up to date", before=before, after=after)
    kind = {
        "compute": after.get("type", "workspace"),
        "endpoint": "endpoint",
        "datastore": "datastore",
        "schedule": "schedule",
    }.get(want["kind"], "deployment" if want["kind"] == "deployment" else "workspace")
    fixed = [k for k in diff if k not in updatable.get(kind, frozenset())]
    text = ", ".join(
        f"{k}: {_show(before.get(k))} -> {_show(after.get(k))}" for k in (fixed or diff)
    )
    if fixed:
        return Change(
            address, REPLACE, f"{text} (cannot change in place)", before=before, after=after
        )
    return Change(address, UPDATE, text, before=before, after=after)


def describe(kind: str, a: dict) -> str:
    """`amlcompute STANDARD_DS11_V2, 0..2 nodes`: a resource in a few words."""
    if kind == "workspace":
        return ""
    if kind == "datastore":  # `azure_blob acct/container, account key; folder F`
        return datastores.describe(a)
    if kind == "data":  # `uri_file v1 (10,001 rows, 511 KB)`
        return f"{a.get('type')} v{a.get('version')} ({a.get('summary')})"
    if kind in VERSIONED:
        return f"v{a.get('version')}"
    if kind == "model":  # `mlflow_model v2 from job.train artifacts/model (run 1a2b3c4)`
        run = f" (run {short(a['run'])})" if a.get("run") else ""
        return f"{a.get('type')} v{a.get('version')} from {a.get('source')}{run}"
    if kind == "resource_group":
        return a.get("location") or ""
    if kind == "endpoint":  # `online, key auth, traffic blue 90%, green 10%`
        if a.get("type") == "batch":  # `batch, default classifier`
            return f"batch, default {a.get('default') or '(none)'}"
        traffic = ", ".join(f"{d} {w}%" for d, w in (a.get("traffic") or {}).items())
        mirror = ", ".join(f"{d} {w}%" for d, w in (a.get("mirror_traffic") or {}).items() if w)
        return (
            f"{a.get('type')}, {a.get('auth_mode')} auth"
            + (f", on Kubernetes compute {a['compute']}" if a.get("compute") else "")
            + (f", traffic {traffic}" if traffic else "")
            + (f", mirrored to {mirror}" if mirror else "")
        )
    if kind == "deployment" and a.get("component"):
        # `pipeline component scoring.yml on cpu-cluster: 2 steps (prepare, score)`
        steps = a.get("component_steps") or []
        going = (
            ", continue on step failure"
            if (a.get("settings") or {}).get("continue_on_step_failure")
            else ""
        )
        return (
            f"pipeline component {a['component']} on {a.get('compute') or 'no compute'}: "
            f"{plural(len(steps), 'step')} ({', '.join(steps)}){going}"
        )
    if kind == "deployment" and a.get("compute"):
        # `diabetes-mlflow v1 on aml-cluster: 2 x 2 at once, mini-batches of 2 files, append_row`
        s = a.get("settings") or {}
        scorer = f" ({a['scoring_script']})" if a.get("scoring_script") else ""
        output = (
            f"append_row to {s.get('output_file_name')}"
            if s.get("output_action") == "append_row"
            else "summary_only"
        )
        return (
            f"{a.get('model')}{scorer} on {a['compute']}: {s.get('instance_count')} x "
            f"{s.get('max_concurrency_per_instance')} at once, mini-batches of "
            f"{s.get('mini_batch_size')} files, {output}"
        )
    if kind == "deployment":  # `azureml:diabetes@latest (MLflow scoring server)`
        server = a.get("server")
        if server == "mlflow":
            server = "MLflow scoring server"
        elif a.get("scoring_script") or server in (None, "script"):
            server = a.get("scoring_script") or "no scoring script"
        on = f" on Kubernetes compute {a['kubernetes']}" if a.get("kubernetes") else ""
        sized = _kubernetes_resources(a.get("resources"))
        return f"{a.get('model') or 'no model'} ({server}){on}{sized}"
    if azure_only.compute_kind(a):  # `attach synapsespark .../workspaces/w/bigDataPools/p`
        return azure_only.attach_summary(a)
    size = f" {a['size']}" if a.get("size") else ""
    if a.get("type") == "amlcompute":
        return f"amlcompute{size}, {a.get('min_instances', 0)}..{a.get('max_instances', 1)} nodes"
    if a.get("type") == "computeinstance" and a.get(IDLE) is not None:
        idle = f"idle shutdown after {a[IDLE]} min" if a[IDLE] else "no idle shutdown"
        return f"computeinstance{size}, {idle}"
    return f"{a.get('type')}{size}"


def _kubernetes_resources(resources: Any) -> str:
    """`, requests cpu 0.1 memory 0.1Gi, limits cpu 0.2`: a Kubernetes deployment's sizes."""
    said = [
        f"{side} " + " ".join(f"{k} {v}" for k, v in amounts.items())
        for side in ("requests", "limits")
        if isinstance(amounts := (resources or {}).get(side), dict) and amounts
    ]
    return "".join(f", {s}" for s in said)


def _show(value: Any) -> str:
    return (
        "(none)"
        if value is None
        else json.dumps(value)
        if isinstance(value, (dict, list))
        else str(value)
    )


def _run_view(run: Run | None) -> dict | None:
    if not run:
        return None
    return {
        "run": run.get("id"),
        "status": run.get("status"),
        "fingerprint": run.get("fingerprint"),
    }


def _job_change(
    name: str, job: dict, run: Run | None, fresh_ws: bool, forced: bool, skipped: bool
) -> Change:
    address, after = Address(Kind.JOB, name), {"fingerprint": job["fingerprint"]}
    before = _run_view(run)
    if run and run.get("status") in ACTIVE:
        return Change(
            address, WAIT, f"run {short(run['id'])} is {run['status']}: wait for it", before, after
        )
    if skipped:
        return Change(address, NOOP, "not selected (--only)", before, after)
    if forced:
        return Change(address, RUN, "forced (--force)", before, after)
    if run is None:
        return Change(address, RUN, "first run", before, after)
    if fresh_ws:
        return Change(address, RUN, "the workspace is new", before, after)
    if run.get("status") != "Completed":
        return Change(address, RUN, f"run {short(run['id'])} {run.get('status')}", before, after)
    if run.get("fingerprint") != job["fingerprint"]:
        parts = fingerprint.changed(run.get("parts"), job["parts"]) or [
            "fingerprint"
        ]  # same parts, other hashing
        what = " and ".join(
            [", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts
        ).replace("_", " ")
        return Change(address, RUN, f"{what} changed since run {short(run['id'])}", before, after)
    return Change(address, NOOP, f"up to date (run {short(run['id'])}, Completed)", before, after)


def _with_steps(
    change: Change, job: dict, run: Run | None, reusable: dict, forced: bool, here: bool
) -> Change:
    """A pipeline to run, with each step and why it runs or is reused (as Azure ML reuses a step
    whose fingerprint, upstream steps included, matches a completed run's)."""
    before = (run.get("steps") if run else None) or {}
    steps: list[dict] = []
    running: set[str] = set()
    for name, step in job["steps"].items():
        action, reason = RUN, _step_reason(name, step, before.get(name), running, reusable, forced)
        if reason.startswith("reused"):
            action = NOOP
        else:
            running.add(name)
            reason += f"; {step['parallel']}" if step.get("parallel") else ""
            reason += f"; {step['spark']['here' if here else 'azure']}" if step.get("spark") else ""
        reason += "".join(f"; {note}" for note in step.get("notes", []))
        steps.append({"step": name, "action": action.word, "reason": reason})
    after = {**change.after, "steps": steps}
    reason = f"pipeline: {len(running)} of {plural(len(steps), 'step')} to run"
    return Change(change.address, change.action, reason, change.before, after)


def _step_reason(
    name: str, step: dict, before: StepRecord | None, running: set, reusable: dict, forced: bool
) -> str:
    if forced:
        return "forced (--force)"
    if not step["reusable"]:
        return "runs every time (is_deterministic: false, or settings.force_rerun)"
    if step["fingerprint"] in reusable:
        return f"reused (run {short(reusable[step['fingerprint']])})"
    if before is None:
        return "first run"
    own = [p for p in fingerprint.changed(before.get("parts"), step["parts"]) if p != "upstream"]
    if own:
        what = " and ".join([", ".join(own[:-1]), own[-1]] if len(own) > 1 else own)
        return f"{what.replace('_', ' ')} changed since run {short(before.get('run_id'))}"
    upstream = [u for u in step["upstream"] if u in running]
    if upstream:
        return f"upstream {', '.join(upstream)} {'runs' if len(upstream) == 1 else 'run'}"
    return f"run {short(before.get('run_id'))} {before.get('status', 'cannot be reused')}"


def destroy_plan(actual: Actual, *, target: str, spec: str, tracking: str = "") -> Plan:
    """Everything the state says mlrun made, in reverse order: jobs, computes, the workspace."""
    changes = []
    for name, run in sorted(actual["jobs"].items()):
        what = "cancel its running run" if run.get("status") in ACTIVE else "forget it"
        changes.append(
            Change(
                Address(Kind.JOB, name),
                DESTROY,
                f"{what}; its runs are deleted with the workspace",
                before=_run_view(run),
            )
        )
    ordered = sorted(actual["resources"].items(), key=lambda kv: (depth(kv[1].get("kind")), kv[0]))
    for address, record in ordered:
        reason = ""
        if record.get("kind") == "workspace":
            reason = (
                f"with its tracking store{f' ({tracking})' if tracking else ''} and every run in it"
            )
        if record.get("kind") == "compute":
            reason = azure_only.detach_note(record.get("attrs")) or reason
        if not record.get("created_by_mlrun", True):
            reason = "it existed before mlrun: kept, only forgotten"
        changes.append(Change(Address.parse(address), DESTROY, reason, before=record.get("attrs")))
    return Plan(
        target=target,
        spec=spec,
        digest="",
        lineage=actual.get("lineage", ""),
        serial=actual.get("serial", 0),
        variables={},
        changes=changes,
    )
