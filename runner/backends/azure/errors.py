"""Azure's failures in mlrun's plain words: SDK and HTTP errors (and MLflow's, where Azure
refused the call) translated into UserErrors that say what to do. The SDK is imported lazily."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator

from ...errors import UserError


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
    from marshmallow.exceptions import ValidationError

    if isinstance(exc, ValidationError):  # azure-ai-ml's schema refused a file: the fields it names
        said = "; ".join(_schema_errors(str(exc))) or " ".join(str(exc).split())
        return (f"{what}: " if what else "") + f"azure-ai-ml refused it: {said.rstrip('.')}."
    body = getattr(exc, "json", None)  # an MLflow RestException with Azure's error body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code, message = body["error"].get("code", ""), body["error"].get("message", "")
        exc = HttpResponseError(message=message or code)
        exc.status_code = {"AuthorizationFailed": 403, "TooManyRequests": 429}.get(code, 500)
    elif getattr(exc, "error_code", None) in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
        exc = HttpResponseError(message=getattr(exc, "message", str(exc)))
        exc.status_code = 403
    elif (failed := _mlflow_transport(exc)) is not None:  # MLflow's client gave up retrying
        exc = failed
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
    return _sdk_refusal(exc, what)


MLFLOW_GAVE_UP = re.compile(r"^API request to (\S+) failed with exception (.*)$", re.S)


def _mlflow_transport(exc: BaseException):
    """MLflow's client's `API request to URL failed with exception E` (its requests gave up after
    retries) as azure-core's exception of the same meaning: an answer of 500 when Azure kept
    answering with server errors, else a connection that could not be made; None for anything
    else."""
    from azure.core.exceptions import HttpResponseError, ServiceRequestError

    found = MLFLOW_GAVE_UP.match(str(getattr(exc, "message", "")))
    if getattr(exc, "error_code", None) != "INTERNAL_ERROR" or found is None:
        return None
    url, why = found.group(1), " ".join(found.group(2).split())
    path = url.split("/api/", 1)[-1] if "/api/" in url else url
    if "too many 5" in why:  # urllib3's `too many 500 error responses`
        answer = HttpResponseError(message=f"MLflow's {path} kept failing")
        answer.status_code = 500
        return answer
    return ServiceRequestError(message=f"MLflow's {path}: {why}")


def _sdk_refusal(exc: BaseException, what: str | None) -> str | None:
    """azure-ai-ml's own refusal (an MlException: `Asset my_train does not exist in workspace
    w`, raised before or after a request), in its innermost plain words; None for anything else."""
    from azure.ai.ml.exceptions import MlException

    if not isinstance(exc, MlException):
        return None
    inner: BaseException = exc
    while isinstance(inner.__context__, MlException):
        inner = inner.__context__
    text = " ".join(str(getattr(inner, "message", "") or inner).split()).rstrip(".")
    return (f"{what}: " if what else "") + f"azure-ai-ml refused it: {text}."


def _schema_errors(text: str) -> list[str]:
    """`environment: Missing data for required field` for each field azure-ai-ml's schema
    refused, from its ValidationError's text (JSON, with nested schemas' messages as JSON in
    their own text)."""
    start = text.find("{")
    try:
        found, _ = json.JSONDecoder().raw_decode(text[start:]) if start >= 0 else (None, 0)
    except ValueError:
        return []
    if isinstance(found, dict) and isinstance(found.get("errors"), list):
        out = []
        for error in found["errors"]:
            message = str(error.get("message", "")) if isinstance(error, dict) else ""
            out += _schema_errors(message) or ([" ".join(message.split())] if message else [])
        return out
    return [f"{path}: {message}" for path, message in _flatten(found)] if found else []


def _flatten(value, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _flatten(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for inner in value:
            yield from _flatten(inner, path)
    else:
        yield path or "*", " ".join(str(value).split()).rstrip(".")
