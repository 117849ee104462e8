"""The azure target: the real service through azure-ai-ml (MLClient), azure-identity,
azure-mgmt-resource and azureml-mlflow. Every SDK is imported lazily, inside the calls."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..account import default_subscription
from ..errors import UserError
from ..plan import COMPUTE_FIELDS, CREATE, REPLACE, WORKSPACE_FIELDS, Address, Kind
from ..spec import Job, Spec
from ..state import now
from . import runstore
from .base import TERMINAL, UPDATABLE

PROVIDER = "Microsoft.MachineLearningServices"
STATUS = {
    "Completed": "Completed",
    "Failed": "Failed",
    "NotResponding": "Failed",
    "Canceled": "Canceled",
    "CancelRequested": "Canceled",
}
POLL_SECONDS = 5.0
CLUSTER_FIELDS = (
    "size",
    "min_instances",
    "max_instances",
    "idle_time_before_scale_down",
    "tier",
    "location",
    "description",
    "tags",
)
INSTANCE_FIELDS = (
    "size",
    "idle_time_before_shutdown_minutes",
    "idle_time_before_shutdown",
    "location",
    "description",
    "tags",
)

ASSETS = {  # versioned assets: the kind, and the spec's and MLClient's attribute of them
    "environment": "environments",
    "component": "components",
    "data": "data",
    "model": "models",
}


class AzureBackend:
    name = "azure"
    updatable = UPDATABLE
    manages_resource_group = True  # the workspace's group, made (and destroyed) with the lab

    def __init__(self, spec: Spec):
        self.spec = spec
        settings = spec.targets.get("azure") or {}
        config = _read_config(spec, settings.get("config"))
        ws = spec.workspace
        self.subscription = settings.get("subscription_id") or config.get("subscription_id")
        self.subscription_from = None  # named by the spec
        self.expires = None  # the lab's expiry (set_expiry), tagged on what mlrun creates
        self.lab_tags: dict = {}
        if not self.subscription and (found := default_subscription()):
            self.subscription, self.subscription_from = found
        self.resource_group = ws.get("resource_group") or config.get("resource_group")
        self.workspace = ws["name"]
        self.location = ws.get("location")
        self.tenant = settings.get("tenant_id")
        self.interactive = settings.get("credential") == "interactive_browser"
        self.poll_seconds = POLL_SECONDS
        self._lock = (
            threading.RLock()
        )  # clients are made from other clients (arm() needs credential())
        self._cache: dict = {}
        self._locks: dict = {}
        self._submit_lock = threading.Lock()

    # --- SDK clients -----------------------------------------------------------------------------

    def _key_lock(self, key: str) -> threading.RLock:
        """One lock per client: making one (seconds, for MLflow's) never blocks using another."""
        with self._lock:
            return self._locks.setdefault(key, threading.RLock())

    def _once(self, key: str, make: Callable):
        with self._key_lock(key):
            if key not in self._cache:
                self._cache[key] = make()
            return self._cache[key]

    def credential(self):
        def make():
            if self.interactive:
                from azure.identity import InteractiveBrowserCredential

                return InteractiveBrowserCredential(tenant_id=self.tenant)
            from azure.identity import DefaultAzureCredential

            return DefaultAzureCredential()

        return self._once("credential", make)

    def ml(self):
        def make():
            from azure.ai.ml import MLClient

            _quiet_sdk()
            return MLClient(
                self.credential(),
                subscription_id=self.subscription,
                resource_group_name=self.resource_group,
                workspace_name=self.workspace,
                enable_telemetry=False,
                show_progress=False,
            )

        return self._once("ml", make)

    def arm(self):
        return self._once("arm", lambda: _arm(self.credential(), self.subscription or ""))

    @property
    def tracking_uri(self) -> str:
        """The workspace's MLflow URI; "" while the workspace does not exist (not kept: apply
        makes it)."""
        with self._key_lock("tracking_uri"):
            if "tracking_uri" not in self._cache:
                with plain_errors(f"workspace.{self.workspace}"):
                    ws = self._get_workspace()  # a 404 too when the resource group is missing
                if ws is None:
                    return ""
                self._cache["tracking_uri"] = ws.mlflow_tracking_uri
            return self._cache["tracking_uri"]

    def client(self):
        def make():
            import azureml.mlflow  # noqa: F401  (registers the azureml:// tracking scheme)
            from mlflow.tracking import MlflowClient

            if not self.tracking_uri:
                raise UserError(
                    f"the workspace {self.workspace} does not exist (yet): run mlrun apply"
                )
            return _Refusals(
                MlflowClient(tracking_uri=self.tracking_uri),
                f"the MLflow of workspace.{self.workspace}",
            )

        return self._once("mlflow", make)

    def read_runs(self, wanted: dict[str, set[str]]) -> dict[str, Any]:
        return {}  # read a get_run at a time, as reports always have on Azure

    def child_runs(self, parent: Any) -> list:
        return runstore.search_children(self.client(), parent)

    # --- reading the world -----------------------------------------------------------------------

    def refresh(self, state: dict) -> dict:
        """GET each resource the spec names or the state holds; 404 means it is not there."""
        with plain_errors():
            actual = {
                "resources": {},
                "jobs": {},
                "lineage": state["lineage"],
                "serial": state["serial"],
            }
            addresses = {Address.parse(a) for a in state["resources"]}
            if self.spec.workspace.get(
                "resource_group"
            ):  # a config.json's group is used, not managed
                addresses.add(Address(Kind.RESOURCE_GROUP, self.spec.workspace["resource_group"]))
            addresses.add(Address(Kind.WORKSPACE, self.workspace))
            addresses.update(Address(Kind.COMPUTE, n) for n in self.spec.computes)
            addresses.update(Address(Kind.ENVIRONMENT, n) for n in self.spec.environments)
            addresses.update(Address(Kind.COMPONENT, n) for n in self.spec.components)
            rg_alive = self._rg_exists()
            ws = self._get_workspace() if rg_alive else None
            for address in sorted(addresses):
                kind, name = address.kind.value, address.name
                record = state["resources"].get(address, {})
                live = self._live(kind, name, ws, record) if rg_alive else None
                if (
                    live is not None
                ):  # compared on the fields the spec or the state names, not Azure's defaults
                    known = record.get("attrs", {})
                    keys = set(known) | self._named(kind, name)
                    actual["resources"][address] = {
                        "kind": kind,
                        "name": name,
                        **record,
                        "attrs": {
                            k: live.get(k, known.get(k))
                            for k in sorted(keys)
                            if k in live or k in known
                        },
                    }
            if ws is not None:
                for name, entry in state["jobs"].items():
                    if entry.get("runs"):
                        run = entry["runs"][-1]
                        actual["jobs"][name] = {**run, **self.poll(run)}
            return actual

    def _named(self, kind: str, name: str) -> set:
        if kind == "workspace":
            return set(self.spec.workspace) & set(WORKSPACE_FIELDS)
        if kind == "compute" and name in self.spec.computes:
            return set(self.spec.computes[name].fields) & set(COMPUTE_FIELDS)
        if kind in ASSETS:
            return {"version", "content"}
        return {"location"} if kind == "resource_group" else set()

    def _rg_exists(self) -> bool:
        return bool(self.arm().resource_groups.check_existence(self.resource_group))

    def _get_workspace(self):
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.ml().workspaces.get(self.workspace)
        except ResourceNotFoundError:
            return None

    def _live(self, kind: str, name: str, ws, record: dict | None = None) -> dict | None:
        """The resource's fields as Azure has them, in the spec's words; None if it is absent."""
        if kind == "resource_group":
            return {"location": self.location}
        if kind == "workspace":
            return (
                None
                if ws is None or name != self.workspace
                else _pick(
                    {
                        "location": _region(ws.location),
                        "resource_group": self.resource_group,
                        "display_name": ws.display_name,
                        "description": ws.description,
                        "tags": _own_tags(ws.tags),
                    }
                )
            )
        if ws is None:
            return None
        from azure.core.exceptions import ResourceNotFoundError

        if kind in ASSETS:
            return self._live_asset(kind, name, record or {})
        try:
            c = self.ml().compute.get(name)
        except ResourceNotFoundError:
            return None
        if c.type == "amlcompute":
            return _pick(
                {
                    "type": "amlcompute",
                    "size": c.size,
                    "min_instances": c.min_instances,
                    "max_instances": c.max_instances,
                    "idle_time_before_scale_down": c.idle_time_before_scale_down,
                    "tier": c.tier,
                    "description": c.description,
                    "tags": _own_tags(c.tags),
                }
            )
        return _pick(
            {
                "type": c.type,
                "size": c.size,
                "description": c.description,
                "tags": _own_tags(c.tags),
                "idle_time_before_shutdown_minutes": getattr(
                    c, "idle_time_before_shutdown_minutes", None
                ),
            }
        )

    def poll(self, run: dict) -> dict:
        if run.get("status") in TERMINAL:
            return {}
        from azure.core.exceptions import ResourceNotFoundError

        with plain_errors(f"run {run['id'][:7]}"):
            try:
                job = self.ml().jobs.get(run["id"])
            except ResourceNotFoundError:
                # named but never submitted (mlrun stopped in between): nothing ran
                return {"status": "Canceled", "error": "mlrun stopped before the job was submitted"}
        status = STATUS.get(job.status, job.status)
        out = {"status": status}
        if status in TERMINAL:
            out["ended"] = now()
            if status == "Failed":
                out["error"] = _job_error(job)
        return out

    def child(self, run: dict, name: str) -> dict | None:
        """The child job of a pipeline job that ran the step shown as `name`."""
        with plain_errors(f"run {run['id'][:7]}"):
            for job in self.ml().jobs.list(parent_job_name=run["id"]):
                if name in (job.display_name, job.name):
                    status = STATUS.get(job.status, job.status)
                    return {"id": job.name, "status": status, "studio_url": job.studio_url}
        return None

    def reusable(self, fingerprints: list[str]) -> dict[str, str]:
        return {}  # Azure ML decides what it reuses when the pipeline runs

    def advise(self, plan) -> list[str]:
        """Notes and warnings before apply: the subscription, when the spec names none; the vCPU
        quota the new computes need against the subscription's free quota in the region (the
        commonest way this lab fails for students): its own rows of the usage list (a
        workspace's rows share their names), -1 being no cap, a cluster's max_instances the SDK's
        4 when not given."""
        notes = []
        if self.subscription_from:
            notes.append(f"note: subscription {self.subscription}, from {self.subscription_from}")
        new = [
            c.after
            for c in plan.changes
            if c.address.kind == Kind.COMPUTE and c.action in (CREATE, REPLACE)
        ]
        if not new or not self.location:
            return notes
        with plain_errors():
            sizes = {
                s.name.lower(): (_field(s, "v_cp_us", "vCPUs") or 0, s.family)
                for s in self.ml().compute.list_sizes(location=self.location)
            }
            usages = {
                _usage_name(u): (_field(u, "current_value", "currentValue") or 0, u.limit or 0)
                for u in self.ml().compute.list_usage(location=self.location)
                if "/workspaces/" not in str(getattr(u, "id", "") or "").lower()
            }
        need: dict = {}
        low = 0  # low-priority clusters count against the region's low-priority quota only
        for attrs in new:
            vcpus, family = sizes.get(str(attrs.get("size", "")).lower(), (0, None))
            nodes = attrs.get("max_instances", 4) if attrs.get("type") == "amlcompute" else 1
            if str(attrs.get("tier", "")).lower().replace("_", "") == "lowpriority":
                low += vcpus * nodes
            elif family:
                need[family] = need.get(family, 0) + vcpus * nodes
        need["TotalCores"] = sum(need.values())
        need["TotalLowPriorityCores"] = low
        out = []
        for family, wanted in need.items():
            if family in usages:
                used, limit = usages[family]
                if limit >= 0 and wanted > limit - used:  # -1: no cap
                    what = {
                        "TotalCores": "in total",
                        "TotalLowPriorityCores": "of low priority in total",
                    }.get(family, f"of the {family}")
                    out.append(
                        f"warning: the new computes need {wanted} vCPUs {what} in {self.location}, "
                        f"but the subscription has {max(0, limit - used)} free (quota {limit}, "
                        f"{used} in use): creating them will fail. Request more quota (Azure "
                        "portal, Quotas, Machine learning), or pick a smaller size or fewer "
                        "max_instances."
                    )
        return notes + out

    # --- resources -------------------------------------------------------------------------------

    def _live_asset(self, kind: str, name: str, record: dict) -> dict | None:
        """The version of an environment or component the state (or else the spec) names, as
        registered, with the content digest mlrun tagged it with; None when it is not there."""
        from azure.core.exceptions import ResourceNotFoundError

        spec_assets = getattr(self.spec, ASSETS[kind])
        asked = spec_assets[name].version if name in spec_assets else None
        version = (record.get("attrs") or {}).get("version") or asked
        if version is None:
            return None
        operations = getattr(self.ml(), ASSETS[kind])
        try:
            asset = operations.get(name, version=version)
        except ResourceNotFoundError:
            return None
        return {"version": str(asset.version), "content": (asset.tags or {}).get("mlrun.content")}

    def _create_environment(self, name: str, attrs: dict) -> dict:
        """`az ml environment create`: the spec's definition (its conda file read in) as a new
        version, tagged with its content digest."""
        from azure.ai.ml.entities import BuildContext, Environment

        definition = self.spec.environments[name].definition or {}
        fields = (self.spec.doc.data.get("environments") or {}).get(name) or {}
        build = definition.get("build")
        entity = Environment(
            name=name,
            version=attrs["version"],
            image=definition.get("image"),
            conda_file=definition.get("conda_file"),
            build=BuildContext(path=build["path"], dockerfile_path=build.get("dockerfile_path"))
            if build
            else None,
            description=fields.get("description"),
            tags={**(fields.get("tags") or {}), "mlrun.content": attrs["content"]},
        )
        with _sdk_stderr():
            created = self.ml().environments.create_or_update(entity)
        return {"id": created.id}

    def _create_component(self, name: str, attrs: dict) -> dict:
        """`az ml component create`: the spec's component written as a commandComponent file,
        loaded by the SDK, registered as a new version tagged with its content digest."""
        import yaml
        from azure.ai.ml import load_component

        from ..export import component_document

        with tempfile.TemporaryDirectory(prefix="mlrun-component-") as tmp:
            path = Path(tmp) / f"{name}.yml"
            document = component_document(self.spec, name, Path(tmp))
            document["version"] = attrs["version"]
            document["tags"] = {**(document.get("tags") or {}), "mlrun.content": attrs["content"]}
            path.write_text(yaml.safe_dump(document, sort_keys=False))
            with _sdk_stderr():
                created = self.ml().components.create_or_update(load_component(source=path))
        return {"id": created.id}

    def _create_data(self, name: str, attrs: dict) -> dict:
        """`az ml data create`: the local content uploaded to the workspace's default datastore
        (a URI registered as it is), as a new version tagged with its content digest."""
        from azure.ai.ml.entities import Data

        asset = self.spec.data[name]
        entity = Data(
            name=name,
            version=attrs["version"],
            type=asset.type,
            path=str(asset.local) if asset.local is not None else asset.path,
            description=asset.fields.get("description"),
            tags={**(asset.fields.get("tags") or {}), "mlrun.content": attrs["content"]},
        )
        with _sdk_stderr():
            created = self.ml().data.create_or_update(entity)
        return {"id": created.id}

    def register_model(self, name: str, attrs: dict, run: dict | None) -> dict:
        """`az ml model create`: a local folder uploaded, or a job's output as Azure ML names it
        (azureml://jobs/JOB/outputs/NAME/paths/PATH; a run's artifacts are its `artifacts`
        output), as the planned version, tagged with the run and content digest. That version
        registered before from the same run and content (an apply killed before recording it)
        is taken as it is."""
        from azure.ai.ml.entities import Model
        from azure.core.exceptions import ResourceNotFoundError

        model, version = self.spec.models[name], attrs["version"]
        tags = {str(k): str(v) for k, v in (model.fields.get("tags") or {}).items()}
        tags["mlrun.content"] = attrs["content"]
        if model.job is not None and run is not None:
            output = model.job.output or "artifacts"
            sub = f"/paths/{model.job.sub}" if model.job.sub else ""
            path = f"azureml://jobs/{run['id']}/outputs/{output}{sub}"
            tags["mlrun.run"] = run["id"]
        else:
            path = str(model.local) if model.local is not None else model.path
        with plain_errors(f"model.{name}"):
            try:
                found = self.ml().models.get(name, version=version)
            except ResourceNotFoundError:
                found = None
            if found is not None and all((found.tags or {}).get(k) == v for k, v in tags.items()):
                return {"id": found.id, "version": str(found.version)}
            entity = Model(
                name=name,
                version=version,
                type=model.type,
                path=path,
                description=model.fields.get("description"),
                tags=tags,
                properties=model.fields.get("properties"),
                stage=model.fields.get("stage"),
            )
            with _sdk_stderr():
                created = self.ml().models.create_or_update(entity)
        return {"id": created.id, "version": str(created.version)}

    def model_versions(self, name: str) -> list[tuple[str, str]]:
        with plain_errors(f"model.{name}"):
            found = list(self.ml().models.list(name=name))
        return [
            (str(m.version), m.tags["mlrun.run"]) for m in found if (m.tags or {}).get("mlrun.run")
        ]

    def create(self, kind: str, name: str, attrs: dict) -> dict:
        with plain_errors(f"{kind}.{name}"):
            if kind == "resource_group":
                return self._create_rg(name)
            if kind == "environment":
                return self._create_environment(name, attrs)
            if kind == "component":
                return self._create_component(name, attrs)
            if kind == "data":
                return self._create_data(name, attrs)
            if kind == "workspace":
                from azure.ai.ml.entities import Workspace

                ws = (
                    self.ml()
                    .workspaces.begin_create(
                        Workspace(
                            name=name,
                            location=attrs.get("location") or self.location,
                            display_name=attrs.get("display_name"),
                            description=attrs.get("description"),
                            tags={**(attrs.get("tags") or {}), **self.lab_tags} or None,
                        )
                    )
                    .result()
                )
                return {"id": ws.id, "mlflow_tracking_uri": ws.mlflow_tracking_uri}
            compute = (
                self.ml()
                .compute.begin_create_or_update(
                    _compute(name, attrs, self.location, self.lab_tags, self.expires)
                )
                .result()
            )
            return {"id": compute.id}

    def _create_rg(self, name: str) -> dict:
        arm = self.arm()
        provider = arm.providers.get(PROVIDER)
        if (provider.registration_state or "").lower() != "registered":
            arm.providers.register(PROVIDER)
        if arm.resource_groups.check_existence(name):
            return {"created_by_mlrun": False}  # it existed before: destroy will leave it alone
        rg = arm.resource_groups.create_or_update(
            name, {"location": self.location, "tags": self.lab_tags or None}
        )
        return {"id": rg.id, "created_by_mlrun": True}

    def update(self, kind: str, name: str, attrs: dict) -> dict:
        with plain_errors(f"{kind}.{name}"):
            if kind == "compute" and attrs.get("type") == "computeinstance":
                self._update_idle_shutdown(name, attrs.get("idle_time_before_shutdown_minutes"))
            if kind == "compute":
                compute = (
                    self.ml()
                    .compute.begin_update(_compute(name, attrs, self.location, self.lab_tags))
                    .result()
                )
                return {"id": compute.id}
            if kind == "workspace":
                ws = self.ml().workspaces.get(name)
                ws.display_name, ws.description, ws.tags = (
                    attrs.get("display_name"),
                    attrs.get("description"),
                    attrs.get("tags"),
                )
                self.ml().workspaces.begin_update(ws).result()
            return {}

    def set_expiry(self, when) -> None:
        """The lab's expiry (a UTC datetime, or None): what mlrun creates from now on carries it as
        tags (and an instance, a stop schedule at that time)."""
        from ..expiry import TAG_EXPIRES, TAG_LAB, shown

        self.expires = when
        self.lab_tags = {TAG_LAB: self.spec.name, TAG_EXPIRES: shown(when)} if when else {}

    def retag(self, created_group: bool) -> None:
        """The lab's tags on its resource group (apply --extend), when mlrun made the group."""
        if self.lab_tags and created_group and self.resource_group:
            with plain_errors(f"resource_group.{self.resource_group}"):
                self.arm().resource_groups.update(self.resource_group, {"tags": self.lab_tags})

    def billing(self, names: list[str]) -> dict[str, dict]:
        """What each of these computes runs now, as Azure says it: an instance's state and since
        when (its last start, else its creation), a cluster's current nodes."""
        from azure.core.rest import HttpRequest

        client = self.ml().compute._sso_service_client
        out = {}
        for name in names:
            url = (
                f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace}"
                f"/computes/{name}"
            )
            with plain_errors(f"compute.{name}"):
                response = client.send_request(
                    HttpRequest("GET", url, params={"api-version": "2024-04-01-preview"})
                )
                if response.status_code == 404:
                    continue
                response.raise_for_status()
            props = response.json().get("properties") or {}
            inner = props.get("properties") or {}
            last = inner.get("lastOperation") or {}
            started = last.get("operationTime") if last.get("operationName") == "Start" else None
            out[name] = {
                "state": inner.get("state") or inner.get("allocationState"),
                "nodes": inner.get("currentNodeCount"),
                "since": started or props.get("createdOn"),
            }
        return out

    def _update_idle_shutdown(self, name: str, minutes: int | None) -> None:
        """An existing instance's idle shutdown (a compute PUT leaves it as it was): Azure's
        updateIdleShutdownSetting action, which the SDK has no method for (sent through its own
        client, as its enable_sso is). 0 or none: no idle shutdown."""
        from azure.core.rest import HttpRequest

        ml = self.ml()
        url = (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace}"
            f"/computes/{name}/updateIdleShutdownSetting"
        )
        body = {"idleTimeBeforeShutdown": f"PT{minutes}M" if minutes else None}
        request = HttpRequest("POST", url, params={"api-version": "2024-04-01-preview"}, json=body)
        ml.compute._sso_service_client.send_request(request).raise_for_status()

    def delete(self, kind: str, name: str, record: dict) -> None:
        """Delete what exists; something already gone is fine (checked first, not guessed from a
        404 inside the operation: the workspace delete GETs its dependent resources too)."""
        with plain_errors(f"{kind}.{name}"):
            if not record.get("created_by_mlrun", True):
                return  # it was there before mlrun: never deleted
            if kind == "resource_group":
                if self._rg_exists():
                    self.arm().resource_groups.begin_delete(name).result()
            elif kind == "workspace":
                if self._rg_exists() and self._get_workspace() is not None:
                    # its storage, key vault, insights and registry were made with it: they go
                    # with it
                    self.ml().workspaces.begin_delete(
                        name, delete_dependent_resources=True
                    ).result()
            elif kind in ASSETS:  # archived: Azure ML never deletes them
                if self._rg_exists() and self._get_workspace() is not None:
                    getattr(self.ml(), ASSETS[kind]).archive(name)
            elif (
                self._rg_exists()
                and self._get_workspace() is not None
                and self._compute_exists(name)
            ):
                self.ml().compute.begin_delete(name).result()

    def _compute_exists(self, name: str) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.ml().compute.get(name)
            return True
        except ResourceNotFoundError:
            return False

    # --- jobs ------------------------------------------------------------------------------------

    def submit(self, spec: Spec, job: Job, record: dict, on_start: Callable[[dict], None]) -> dict:
        import yaml
        from azure.ai.ml import load_job

        from ..export import job_document, put_secrets

        name = uuid.uuid4().hex  # like an MLflow run id: Azure ML's run id is the job's name
        run = {**record, "id": name, "status": "Preparing", "submitted": now()}
        on_start(run)  # named in the state before Azure hears of it: a crash here is adoptable
        # one submission at a time: jobs sharing a code folder upload the same
        # content-addressed blob
        with (
            self._submit_lock,
            plain_errors(f"job.{job.name}"),
            tempfile.TemporaryDirectory(prefix="mlrun-job-") as tmp,
        ):
            path = Path(tmp) / f"{job.name}.yml"
            path.write_text(yaml.safe_dump(job_document(spec, job, Path(tmp)), sort_keys=False))
            entity = load_job(path)
            put_secrets(
                entity, job
            )  # the file holds them as (sensitive): the values stay in memory
            entity.name = name
            entity.properties = {
                **(entity.properties or {}),
                "mlrun.fingerprint": record["fingerprint"],
                "mlrun.job": job.name,
            }
            entity.tags = {**(entity.tags or {}), "mlrun.job": job.name}
            with _sdk_stderr():
                created = self.ml().jobs.create_or_update(entity)
        run.update(
            status=STATUS.get(created.status, created.status or "NotStarted"),
            started=now(),
            studio_url=created.studio_url,
        )
        return run

    def wait(self, run: dict) -> dict:
        if (
            "mlflow" not in self._cache
        ):  # the closing report needs it: import azureml-mlflow meanwhile
            threading.Thread(target=self._warm_client, daemon=True, name="mlflow-import").start()
        while True:
            change = self.poll(run)
            if change.get("status") in TERMINAL:
                return change
            time.sleep(self.poll_seconds)

    def _warm_client(self) -> None:
        try:
            self.client()
        except Exception:  # noqa: BLE001  (the report makes it again and says what went wrong)
            pass

    def cancel(self, run: dict) -> None:
        with plain_errors():
            self.ml().jobs.begin_cancel(run["id"])

    def finalize(self, run: dict) -> None:
        """Azure ML records the run itself: read it once (retried while its history lags the job),
        for the closing report to reuse."""
        if run.get("status") != "Completed":
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.client().keep(
                    self.client().get_run(run["id"])
                )  # what the closing report reads
                return
            except (
                UserError
            ):  # refused (MLflow itself retried what is transient): the report says why
                return
            except Exception:  # noqa: BLE001  (metrics lag the job's completion: retry)
                time.sleep(2)

    def run_url(self, run: dict) -> str:
        return run.get("studio_url") or f"https://ml.azure.com/runs/{run['id']}"

    def logs(self, run: dict, follow: bool, out) -> None:
        """The job's user_logs/std_log.txt from its run history (what `az ml job stream` reads);
        with `follow` and a running job, Azure ML's stream until it ends."""
        with plain_errors():
            if follow and self.poll(run).get("status", run.get("status")) not in TERMINAL:
                buffer = io.StringIO()
                with contextlib.redirect_stdout(buffer):
                    self.ml().jobs.stream(run["id"])
                out.write(buffer.getvalue().encode())
            else:
                details = self.ml().jobs._runs_operations.get_run_details(run["id"])
                url = (details.log_files or {}).get("user_logs/std_log.txt")
                if url is None:
                    raise UserError(f"run {run['id']} has no user_logs/std_log.txt yet")
                out.write(_download(url))
        out.flush()


class _Refusals:
    """An MlflowClient whose calls Azure refuses (403, throttling, ...) raise mlrun's plain errors;
    MLflow's own complaints (a bad filter) stay MlflowExceptions."""

    def __init__(self, client, what: str):
        self._client, self._what = client, what
        self._finished: dict = {}

    def keep(self, run) -> None:
        """A finished run read once: get_run answers it again without asking Azure."""
        self._finished[run.info.run_id] = run

    def get_run(self, run_id: str):
        return self._finished.get(run_id) or self.__getattr__("get_run")(run_id)

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            with plain_errors(self._what):
                return attr(*args, **kwargs)

        return call


def _download(url: str) -> bytes:
    from azure.core.pipeline.transport import RequestsTransport
    from azure.core.rest import HttpRequest

    with RequestsTransport() as transport:
        response = transport.send(HttpRequest("GET", url))
        response.raise_for_status()
        return response.body()


class _ThreadStderr:
    """sys.stderr while SDK calls run: each thread inside _sdk_stderr writes to its own buffer,
    any other thread to the real stream. (contextlib.redirect_stderr swaps one global: two
    threads uploading at once would leave sys.stderr on a finished call's buffer, and every
    message after it, errors included, would vanish.)"""

    def __init__(self, real):
        self.real, self.local, self.users = real, threading.local(), 0

    def write(self, text: str) -> int:
        return (getattr(self.local, "buffer", None) or self.real).write(text)

    def flush(self) -> None:
        (getattr(self.local, "buffer", None) or self.real).flush()

    def __getattr__(self, name: str):
        return getattr(self.real, name)


_stderr_lock = threading.Lock()


@contextlib.contextmanager
def _sdk_stderr():
    """azure-ai-ml prints a colour reset (ESC[39m) and a blank line to stderr after every upload,
    progress bar or not: keep that off the user's terminal and pass on anything else."""
    with _stderr_lock:
        if not isinstance(sys.stderr, _ThreadStderr):
            sys.stderr = _ThreadStderr(sys.stderr)
        router = sys.stderr
        router.users += 1
    buffer, outer = io.StringIO(), getattr(router.local, "buffer", None)
    router.local.buffer = buffer
    try:
        yield
    finally:
        router.local.buffer = outer
        with _stderr_lock:
            router.users -= 1
            if router.users == 0 and sys.stderr is router:
                sys.stderr = router.real
    rest = buffer.getvalue().replace("\x1b[39m", "").strip()
    if rest:
        print(rest, file=sys.stderr)


def _quiet_sdk() -> None:
    """azure-ai-ml gives some modules their own INFO handlers on stderr ("The deployment request
    ... was accepted", "experimental class"): mlrun's events say what happens instead."""
    import logging

    # configures its logger, which the loop below then quiets
    import azure.ai.ml._arm_deployments.arm_deployment_executor  # noqa: F401

    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("azure", "azureml")):
            logging.getLogger(name).setLevel(logging.ERROR)


def _field(obj, *names):
    """azure-ai-ml 1.35 leaves some fields under their REST names (vCPUs, currentValue)."""
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _arm(credential, subscription: str):
    """A resource manager client on the cloud the SDK is configured for."""
    from azure.ai.ml._azure_environments import _get_base_url_from_metadata
    from azure.mgmt.resource.resources import ResourceManagementClient

    base = _get_base_url_from_metadata()
    return ResourceManagementClient(
        credential, subscription, base_url=base, credential_scopes=[base + "/.default"]
    )


def expired_labs(subscription: str, now) -> list[dict]:
    """The resource groups of labs whose expiry (their mlrun-expires tag) has passed:
    {name, lab, expires} each (`mlrun destroy --expired`)."""
    from azure.identity import DefaultAzureCredential

    from ..expiry import TAG_EXPIRES, TAG_LAB, moment

    arm = _arm(DefaultAzureCredential(), subscription)
    found = []
    with plain_errors("resource groups"):
        for rg in arm.resource_groups.list(filter=f"tagName eq '{TAG_EXPIRES}'"):
            tags = rg.tags or {}
            when = moment(tags.get(TAG_EXPIRES))
            if TAG_LAB in tags and when is not None and when <= now:
                found.append({"name": rg.name, "lab": tags[TAG_LAB], "expires": tags[TAG_EXPIRES]})
    return found


def destroy_group(subscription: str, name: str) -> None:
    from azure.identity import DefaultAzureCredential

    with plain_errors(f"resource_group.{name}"):
        _arm(DefaultAzureCredential(), subscription).resource_groups.begin_delete(name).result()


def _own_tags(tags: dict | None) -> dict | None:
    """A resource's tags as the spec names them, without the lab's (mlrun-lab, mlrun-expires)."""
    own = {k: v for k, v in (tags or {}).items() if not k.startswith("mlrun-")}
    return own or None


def _usage_name(usage) -> str:
    name = usage.name
    return str(name.get("value") if isinstance(name, dict) else getattr(name, "value", name))


def _pick(values: dict) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def _region(location: str | None) -> str | None:
    return location.replace(" ", "").lower() if location else location


def _compute(
    name: str, attrs: dict, location: str | None, lab_tags: dict | None = None, expires=None
):
    """The SDK's compute; made with the lab's tags and, for an instance, a stop schedule at the
    lab's expiry (`expires`)."""
    from azure.ai.ml.entities import AmlCompute, ComputeInstance

    fields = {
        k: attrs.get(k)
        for k in (CLUSTER_FIELDS if attrs.get("type") == "amlcompute" else INSTANCE_FIELDS)
    }
    if lab_tags:
        fields["tags"] = {**(fields.get("tags") or {}), **lab_tags}
    if attrs.get("type") == "amlcompute":
        return AmlCompute(name=name, **_pick(fields))
    fields.pop("idle_time_before_shutdown", None)
    if not fields.get("idle_time_before_shutdown_minutes"):  # 0: never shut down when idle
        fields.pop("idle_time_before_shutdown_minutes", None)
    if expires is not None:
        from azure.ai.ml.entities import (
            ComputePowerAction,
            ComputeSchedules,
            ComputeStartStopSchedule,
            CronTrigger,
        )

        at = f"{expires.minute} {expires.hour} {expires.day} {expires.month} *"  # once, in UTC
        stop = ComputeStartStopSchedule(
            trigger=CronTrigger(expression=at, time_zone="UTC"), action=ComputePowerAction.STOP
        )
        fields["schedules"] = ComputeSchedules(compute_start_stop=[stop])
    return ComputeInstance(name=name, **_pick(fields))


def _job_error(job) -> str:
    error = getattr(job, "error", None) or (job.properties or {}).get("error")
    return str(error) if error else "the job failed on Azure ML: see mlrun logs"


def _read_config(spec: Spec, ref: str | None) -> dict:
    if not ref:
        return {}
    from ..refs import relative_to

    path = relative_to(spec.doc, ("targets", "azure", "config"), ref)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the Azure config {path}: {e}") from None


@contextlib.contextmanager
def plain_errors(what: str | None = None) -> Iterator[None]:
    """Azure's failures in plain words, with what to do; unknown ones keep Azure's message.
    `what` names the resource (or run) the failed call was about."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        message = plain(exc, what)
        if message is None:
            raise
        raise UserError(message) from None


def plain(exc: BaseException, what: str | None = None) -> str | None:
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
        ResourceExistsError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    body = getattr(exc, "json", None)  # an MLflow RestException with Azure's error body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code, message = body["error"].get("code", ""), body["error"].get("message", "")
        exc = HttpResponseError(message=message or code)
        exc.status_code = {"AuthorizationFailed": 403, "TooManyRequests": 429}.get(code, 500)
    elif getattr(exc, "error_code", None) in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
        exc = HttpResponseError(message=getattr(exc, "message", str(exc)))
        exc.status_code = 403
    elif not isinstance(exc, AzureError):
        return None
    error = getattr(exc, "error", None)  # Azure's {"error": {"code", "message"}}, when it sent one
    while details := getattr(
        error, "details", None
    ):  # "At least one resource deployment operation failed": why is inside
        error = details[0]
    detail = getattr(error, "message", None) or getattr(exc, "message", None) or exc
    text = " ".join(str(detail).split()).rstrip(".")
    low = text.lower()
    text = (f"{what}: " if what else "") + text
    if isinstance(exc, ClientAuthenticationError):
        return (
            f"Azure sign-in failed: {text}. Run `az login` (or set the AZURE_* variables of a "
            "service principal)."
        )
    if isinstance(exc, ResourceExistsError):
        return f"the name is taken: {text}. Pick another name (a variable suffix helps)."
    if isinstance(exc, ResourceNotFoundError):
        return f"not found on Azure: {text}"
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return (
            f"could not reach Azure (still after retries): {text}. Check the network connection "
            "(and proxy), then run the command again."
        )
    if isinstance(exc, HttpResponseError):
        status = getattr(exc, "status_code", None)
        if "quota" in low:
            return (
                f"not enough quota: {text}. Request more vCPU quota for this VM family in the "
                "region, pick a smaller size, or lower max_instances."
            )
        if status == 403 or "authorization" in low:
            return (
                f"not allowed: {text}. You need the Contributor role on the subscription or "
                "resource group."
            )
        if status == 429:
            return (
                f"Azure is throttling requests (still after retries): {text}. Wait a minute and "
                "apply again."
            )
        if status is None or status < 300:  # a long-running operation that ended Failed
            return (
                f"Azure could not finish it: {text}. Apply again to retry; mlrun destroy removes "
                "what was made."
            )
        if status >= 500:
            return (
                f"Azure answered {status}: {text}. This is usually temporary: run the command "
                "again in a few minutes."
            )
        return f"Azure answered {status}: {text}. Check this resource's fields in the spec."
    return None
