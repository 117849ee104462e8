"""Talking to Azure through its SDKs: the lab's subscription, resource group and workspace (from
the spec, its config.json or the signed-in account), the clients on them (credential, MLClient,
the resource manager, MLflow), each made once, and the SDK's own output kept off the terminal.
Every SDK is imported lazily, inside the calls."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import threading
from collections.abc import Callable

from ...account import default_subscription
from ...errors import UserError
from ...spec import Spec
from .errors import _Refusals, plain_errors


class Session:
    """The lab's Azure: where it is, and the SDK clients on it (made on first use, once)."""

    def __init__(self, spec: Spec):
        settings = spec.targets.get("azure") or {}
        config = _read_config(spec, settings.get("config"))
        ws = spec.workspace
        self.subscription = settings.get("subscription_id") or config.get("subscription_id")
        self.subscription_from = None  # named by the spec
        if not self.subscription and (found := default_subscription()):
            self.subscription, self.subscription_from = found
        self.resource_group = ws.get("resource_group") or config.get("resource_group")
        self.workspace = ws["name"]
        self.location = ws.get("location")
        self.tenant = settings.get("tenant_id")
        self.interactive = settings.get("credential") == "interactive_browser"
        self._lock = (
            threading.RLock()
        )  # clients are made from other clients (arm() needs credential())
        self._cache: dict = {}
        self._locks: dict = {}
        # the SDK uploads local folders (code, models) to content-addressed blobs, one call at a
        # time: two writing one blob at once, the loser's 409 is swallowed (show_progress=False)
        # and the SDK waits for its upload forever
        self.uploading = threading.Lock()

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

    def made(self, key: str) -> bool:
        """Whether the client `key` ("mlflow", ...) has been made already."""
        return key in self._cache

    @property
    def tracking_uri(self) -> str:
        """The workspace's MLflow URI; "" while the workspace does not exist (not kept: apply
        makes it)."""
        with self._key_lock("tracking_uri"):
            if "tracking_uri" not in self._cache:
                with plain_errors(f"workspace.{self.workspace}"):
                    ws = self.get_workspace()  # a 404 too when the resource group is missing
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

    def get_workspace(self):
        """The workspace as the SDK has it; None when it does not exist."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.ml().workspaces.get(self.workspace)
        except ResourceNotFoundError:
            return None


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


def _arm(credential, subscription: str):
    """A resource manager client on the cloud the SDK is configured for."""
    from azure.ai.ml._azure_environments import _get_base_url_from_metadata
    from azure.mgmt.resource.resources import ResourceManagementClient

    base = _get_base_url_from_metadata()
    return ResourceManagementClient(
        credential, subscription, base_url=base, credential_scopes=[base + "/.default"]
    )


def _read_config(spec: Spec, ref: str | None) -> dict:
    if not ref:
        return {}
    from ...refs import relative_to

    path = relative_to(spec.doc, ("targets", "azure", "config"), ref)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read the Azure config {path}: {e}") from None
