"""Azure's failures in plain words (runner.backends.azure.errors), without the emulator: the SDK's
and MLflow's real exception classes, made in-process (HTTP errors from a response built in
memory, parsed by azure-core as it parses Azure's), translated by `plain`, raised by
`plain_errors` and by the MlflowClient wrapper."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests  # azure-core's transport (and MLflow's)

from runner.backends.azure.errors import _Refusals, plain, plain_errors
from runner.errors import UserError

core = pytest.importorskip("azure.core.exceptions", reason="needs the azure extra (.ci/run)")
transport = pytest.importorskip("azure.core.pipeline.transport")
rest = pytest.importorskip("azure.core.rest")


def answered(status: int, error: dict, exc_type=core.HttpResponseError):
    """The SDK's exception for an HTTP answer with Azure's {"error": ...} body."""
    raw = requests.Response()
    raw.status_code, raw.reason = status, "Reason"
    raw._content = json.dumps({"error": error}).encode()
    raw.headers["Content-Type"] = "application/json"
    request = rest.HttpRequest(
        "PUT", "https://management.azure.com/subscriptions/s/resourceGroups/rg"
    )
    return exc_type(response=transport.RequestsTransportResponse(request, raw))


def test_errors_that_are_not_azures_are_left_alone():
    assert plain(ValueError("bad value")) is None
    assert plain(KeyError("name"), "compute.cpu") is None
    error = ValueError("bad value")
    with pytest.raises(ValueError) as raised, plain_errors("compute.cpu"):
        raise error
    assert raised.value is error


def test_sign_in_conflict_and_not_found_say_what_to_do():
    assert plain(core.ClientAuthenticationError("token expired"), "workspace.ws") == (
        "Azure sign-in failed: workspace.ws: token expired. Run `az login` (or set the AZURE_* "
        "variables of a service principal)."
    )
    taken = answered(
        409, {"code": "Conflict", "message": "name   taken."}, core.ResourceExistsError
    )
    assert plain(taken, "workspace.ws") == (
        "the name is taken: workspace.ws: name taken. Pick another name (a variable suffix helps)."
    )
    gone = answered(
        404, {"code": "NotFound", "message": "no such group"}, core.ResourceNotFoundError
    )
    assert plain(gone) == "not found on Azure: no such group"  # no `what`: no prefix


@pytest.mark.parametrize("exc_type", [core.ServiceRequestError, core.ServiceResponseError])
def test_a_dropped_connection_says_to_check_the_network(exc_type):
    assert plain(exc_type("Connection refused"), "compute.cpu") == (
        "could not reach Azure (still after retries): compute.cpu: Connection refused. Check the "
        "network connection (and proxy), then run the command again."
    )


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (
            400,
            {"code": "QuotaExceeded", "message": "Operation results in exceeding Quota limits."},
            "not enough quota: compute.cpu: Operation results in exceeding Quota limits. Request "
            "more vCPU quota for this VM family in the region, pick a smaller size, or lower "
            "max_instances.",
        ),
        (
            403,
            {"code": "AuthorizationFailed", "message": "The client has no access."},
            "not allowed: compute.cpu: The client has no access. You need the Contributor role "
            "on the subscription or resource group.",
        ),
        (
            429,
            {"code": "TooManyRequests", "message": "Too many requests."},
            "Azure is throttling requests (still after retries): compute.cpu: Too many requests. "
            "Wait a minute and apply again.",
        ),
        (
            503,
            {"code": "ServiceUnavailable", "message": "Try later."},
            "Azure answered 503: compute.cpu: Try later. This is usually temporary: run the "
            "command again in a few minutes.",
        ),
        (
            400,
            {"code": "BadRequest", "message": "vmSize is not valid."},
            "Azure answered 400: compute.cpu: vmSize is not valid. Check this resource's fields "
            "in the spec.",
        ),
    ],
)
def test_http_answers_by_status_and_message(status, error, expected):
    exc = answered(status, error)
    assert exc.status_code == status  # azure-core read the answer as Azure sends it
    assert plain(exc, "compute.cpu") == expected


def test_a_failed_long_running_operation_says_why_from_its_innermost_detail():
    """No status (the operation ended Failed): the reason is the deepest of Azure's details, its
    whitespace collapsed and its final period dropped."""
    exc = answered(
        200,
        {
            "code": "DeploymentFailed",
            "message": "At least one resource deployment operation failed.",
            "details": [
                {
                    "code": "Conflict",
                    "message": "outer",
                    "details": [
                        {"code": "StorageAccountAlreadyTaken", "message": "stmlrun\n is  taken."}
                    ],
                }
            ],
        },
    )
    exc.status_code = None
    assert plain(exc, "workspace.ws") == (
        "Azure could not finish it: workspace.ws: stmlrun is taken. Apply again to retry; mlrun "
        "destroy removes what was made."
    )


def test_mlflow_errors_with_azures_body_or_a_refusal_are_translated():
    from mlflow.exceptions import MlflowException, RestException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, PERMISSION_DENIED

    throttled = RestException({"error": {"code": "TooManyRequests", "message": "slow down"}})
    assert plain(throttled, "the MLflow of workspace.ws") == (
        "Azure is throttling requests (still after retries): the MLflow of workspace.ws: slow "
        "down. Wait a minute and apply again."
    )
    refused = RestException({"error": {"code": "AuthorizationFailed", "message": ""}})
    assert plain(refused).startswith("not allowed: AuthorizationFailed. ")  # the code, no message
    failed = RestException({"error": {"code": "InternalError", "message": "oops"}})
    assert plain(failed) == (
        "Azure answered 500: oops. This is usually temporary: run the command again in a few "
        "minutes."
    )
    denied = MlflowException("denied.", error_code=PERMISSION_DENIED)
    assert plain(denied) == (
        "not allowed: denied. You need the Contributor role on the subscription or resource group."
    )
    assert plain(MlflowException("bad filter", error_code=INVALID_PARAMETER_VALUE)) is None


def test_plain_errors_raises_the_plain_message_alone_and_keeps_user_errors():
    with pytest.raises(UserError) as raised, plain_errors("compute.cpu"):
        raise answered(403, {"code": "AuthorizationFailed", "message": "No access."})
    assert str(raised.value).startswith("not allowed: compute.cpu: No access. ")
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    mine = UserError("already plain")
    with pytest.raises(UserError) as raised, plain_errors("compute.cpu"):
        raise mine
    assert raised.value is mine


class _FakeMlflow:
    """Stands in for MlflowClient: what Azure answers for each call."""

    tracking_uri = "azureml://example"

    def __init__(self):
        self.calls = 0

    def get_run(self, run_id):
        self.calls += 1
        raise answered(429, {"code": "TooManyRequests", "message": "Rate limit."})

    def search_runs(self, experiment_ids, filter_string=""):
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        raise MlflowException(f"bad filter {filter_string}", error_code=INVALID_PARAMETER_VALUE)


def test_the_mlflow_wrapper_raises_refusals_plainly_and_keeps_finished_runs():
    from mlflow.exceptions import MlflowException

    fake = _FakeMlflow()
    client = _Refusals(fake, "the MLflow of workspace.ws")
    assert client.tracking_uri == "azureml://example"  # attributes pass through as they are
    with pytest.raises(UserError) as raised:
        client.get_run("r1")
    assert str(raised.value) == (
        "Azure is throttling requests (still after retries): the MLflow of workspace.ws: Rate "
        "limit. Wait a minute and apply again."
    )
    with pytest.raises(MlflowException, match="bad filter x"):  # MLflow's own complaint stays
        client.search_runs(["0"], filter_string="x")

    class Run:
        class info:
            run_id = "r2"

    client.keep(Run)
    assert client.get_run("r2") is Run and fake.calls == 1  # answered without asking Azure


def test_a_file_the_sdks_schema_refuses_says_which_fields(tmp_path):
    from azure.ai.ml import load_job

    (tmp_path / "job.yml").write_text(
        "command: echo hi\ncompute: azureml:cpu\nresources: {instance_count: many}\n"
    )
    with pytest.raises(UserError) as raised, plain_errors("job.hello"):
        load_job(tmp_path / "job.yml")  # the SDK's marshmallow ValidationError, nested schemas'
    assert str(raised.value) == (
        "job.hello: azure-ai-ml refused it: environment: Missing data for required field; "
        "resources.instance_count: Not a valid integer."
    )


class _Failing(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_mlflow_giving_up_after_retries_is_said_plainly_not_as_a_bug():
    from mlflow.exceptions import MlflowException
    from mlflow.utils.rest_utils import MlflowHostCreds, http_request

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host = f"http://127.0.0.1:{server.server_port}"
    try:  # MLflow's own client, retrying a server that keeps answering 503, then refused
        with pytest.raises(MlflowException) as kept_failing:
            http_request(
                MlflowHostCreds(host),
                "/api/2.0/mlflow/runs/get",
                "GET",
                max_retries=1,
                backoff_factor=0,
                backoff_jitter=0,
            )
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(MlflowException) as unreachable:
        http_request(MlflowHostCreds(host), "/api/2.0/mlflow/runs/get", "GET", max_retries=0)
    assert plain(kept_failing.value, "run abc") == (
        "Azure answered 500: run abc: MLflow's 2.0/mlflow/runs/get kept failing. This is "
        "usually temporary: run the command again in a few minutes."
    )
    said = plain(unreachable.value, "run abc")
    assert said.startswith(
        "could not reach Azure (still after retries): run abc: MLflow's 2.0/mlflow/runs/get: "
    )
    assert said.endswith("Check the network connection (and proxy), then run the command again.")
