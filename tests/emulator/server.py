"""HTTPS plumbing: routing, the request log, fault injection, control endpoints, cloud metadata
and the managed-identity token endpoint."""

import base64
import json
import re
import socket
import ssl
import struct
import sys
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from state import now_iso

CLOUD = "AzureEmulator"
TENANT = "00000000-0000-0000-0000-0000000000e1"
ROUTES = []  # (methods, compiled pattern, handler)

SUB = r"/subscriptions/(?P<sub>[^/]+)"
RG = SUB + r"/resourcegroups/(?P<rg>[^/]+)"
MLS = r"/providers/Microsoft\.MachineLearningServices"
WS = RG + MLS + r"/workspaces/(?P<ws>[^/]+)"


def route(methods, pattern):
    def register(fn):
        ROUTES.append((set(methods.split()), re.compile(pattern, re.I), fn))
        return fn

    return register


class Reply:
    def __init__(self, status=200, body=None, headers=None):
        self.status, self.body, self.headers = status, body, dict(headers or {})


def error(status, code, message, **extra):
    return Reply(status, {"error": {"code": code, "message": message, **extra}})


class Ctx:
    """One request as handlers see it."""

    def __init__(self, app, method, path, query, headers, raw):
        self.app, self.method, self.path, self.query, self.headers, self.raw = (
            app,
            method,
            path,
            query,
            headers,
            raw,
        )
        self._json = None

    @property
    def json(self):
        if self._json is None:
            self._json = json.loads(self.raw or b"{}") if self.raw else {}
        return self._json

    def q(self, name, default=None):
        for k, v in self.query.items():
            if k.lower() == name.lower():
                return v[0]
        return default

    def async_failure(self):
        """The error an 'async_failure' fault rule assigns to the operation this request starts."""
        rule = self.app.state.take_fault(self.method, self.path, "async")
        if not rule:
            return None
        failure = rule["async_failure"]
        if not isinstance(failure, dict):
            failure = {"code": "InternalServerError", "message": str(failure)}
        return failure


def jwt(subject="emulator", lifetime=3600 * 24, audience="https://management.azure.com/"):
    """A JWT-shaped (unsigned) token with exp, as the SDKs decode but never verify. Its audience
    is the resource asked for, as Entra ID's: azure-ai-ml checks that the token it sends along
    with a pipeline job (x-azureml-token) is for https://ml.azure.com."""

    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{TENANT}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "oid": subject,
        "sub": subject,
        "tid": TENANT,
        "appid": "emulator",
        "name": subject,
    }
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.sig"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mlrun-azure-emulator"

    def log_message(self, *args):  # the JSON-lines log replaces the default stderr lines
        pass

    def _serve(self):
        app = self.server.app
        started = time.time()
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctx = Ctx(app, self.command, path, query, self.headers, raw)
        control = path.startswith("/_emulator")
        fault = None
        try:
            if not control:
                app.state.settle()
                fault = app.state.take_fault(self.command, path, "sync")
            reply = fault_reply(fault) if fault else dispatch(ctx)
        except Exception as e:  # noqa: BLE001 - an emulator bug is a 500 reply, not a dead server
            traceback.print_exc(file=sys.stderr)
            reply = error(500, "InternalServerError", f"emulator bug: {type(e).__name__}: {e}")
        if fault and fault.get("reset"):  # the connection drops (TCP RST) before any answer
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            reply = Reply(0)
        else:
            self._send(reply)
        if not control:
            app.state.log_request(
                {
                    "time": now_iso(),
                    "t": started,
                    "method": self.command,
                    "path": path,
                    "query": parts.query,
                    "status": reply.status,
                    "ms": round((time.time() - started) * 1000, 1),
                    "fault": bool(fault),
                }
            )

    def _send(self, reply):
        body = reply.body
        headers = {"x-ms-request-id": str(uuid.uuid4()), **reply.headers}
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
        elif isinstance(body, str):
            body = body.encode()
        body = body or b""
        self.send_response(reply.status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _serve


def fault_reply(rule):
    status = int(rule.get("status", 500))
    codes = {
        400: "BadRequest",
        401: "AuthenticationFailed",
        403: "AuthorizationFailed",
        404: "NotFound",
        409: "Conflict",
        429: "TooManyRequests",
        500: "InternalServerError",
        503: "ServiceUnavailable",
    }
    body = rule.get("body") or {
        "error": {"code": codes.get(status, "Error"), "message": f"Injected fault: HTTP {status}."}
    }
    headers = (
        {"Retry-After": str(rule["retry_after"])} if rule.get("retry_after") is not None else {}
    )
    return Reply(status, body, headers)


def dispatch(ctx):
    allowed = False
    for methods, pattern, fn in ROUTES:
        m = pattern.fullmatch(ctx.path)
        if m:
            if ctx.method in methods:
                return fn(ctx, **m.groupdict())
            allowed = True
    if allowed:
        return error(405, "MethodNotAllowed", f"{ctx.method} is not supported on {ctx.path}")
    return error(
        404,
        "NoRegisteredProviderFound" if "/providers/" in ctx.path else "NotFound",
        f"The emulator has no route for {ctx.method} {ctx.path}",
    )


def serve(app, port):
    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    httpd.daemon_threads = True
    httpd.app = app
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(app.cert, app.key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    return httpd


# --- cloud metadata and identity ---


@route("GET", r"/metadata/endpoints")
def metadata(ctx):
    base = ctx.app.base
    return Reply(
        200,
        [
            {
                "name": CLOUD,
                "portal": "https://portal.azure.com",
                "resourceManager": base + "/",
                "authentication": {
                    "loginEndpoint": base + "/login/",
                    "audiences": [base + "/"],
                    "tenant": "common",
                    "identityProvider": "AAD",
                },
                "media": base + "/",
                "graphAudience": base + "/",
                "graph": base + "/",
                "batch": base + "/",
                "sqlManagement": base + "/",
                "gallery": base + "/",
                "activeDirectoryDataLake": base + "/",
                "microsoftGraphResourceId": base + "/",
                "appInsightsResourceId": base + "/",
                "appInsightsTelemetryChannelResourceId": base + "/",
                "logAnalyticsResourceId": base + "/",
                "synapseAnalyticsResourceId": base + "/",
                "attestationResourceId": base + "/",
                "vmImageAliasDoc": base + "/aliases.json",
                "suffixes": {
                    "storage": f"core.localhost:{ctx.app.azurite.port}",
                    "keyVaultDns": "vault.localhost",
                    "sqlServerHostname": "database.localhost",
                    "acrLoginServer": "azurecr.localhost",
                    "azureDataLakeStoreFileSystem": "azuredatalakestore.localhost",
                    "azureDataLakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.localhost",
                    "storageSyncEndpointSuffix": "afs.localhost",
                    "mhsmDns": "managedhsm.localhost",
                    "mysqlServerEndpoint": "mysql.localhost",
                    "postgresqlServerEndpoint": "postgres.localhost",
                    "mariadbServerEndpoint": "mariadb.localhost",
                    "synapseAnalytics": "synapse.localhost",
                    "attestationEndpoint": "attest.localhost",
                },
            }
        ],
    )


@route("GET", r"/msi/token")
def msi_token(ctx):
    if not ctx.headers.get("X-IDENTITY-HEADER"):
        return error(400, "invalid_request", "X-IDENTITY-HEADER is missing")
    exp = int(time.time()) + 24 * 3600
    resource = ctx.q("resource", "")
    token = jwt(audience=resource or "https://management.azure.com/")
    with ctx.app.state.lock:
        ctx.app.state.tokens.add(token)
    return Reply(
        200,
        {
            "access_token": token,
            "expires_on": str(exp),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": "emulator",
        },
    )


# --- control endpoints ---


@route("GET", r"/_emulator/health")
def health(ctx):
    return Reply(200, {"status": "ok", "env": ctx.app.env})


@route("GET DELETE", r"/_emulator/requests")
def requests_log(ctx):
    state = ctx.app.state
    with state.lock:
        if ctx.method == "DELETE":
            state.requests.clear()
            return Reply(204)
        since = int(ctx.q("since", 0))
        return Reply(200, [r for r in state.requests if r["seq"] >= since])


def _rules(ctx, rules: list, add):
    """GET lists the rules, POST adds one or a list of them, DELETE clears them (?tag=T: those
    added with that "tag" only, so concurrent tests clear their own)."""
    with ctx.app.state.lock:
        if ctx.method == "POST":
            given = ctx.json if isinstance(ctx.json, list) else [ctx.json]
            return Reply(201, [add(r) for r in given])
        if ctx.method == "DELETE":
            tag = ctx.q("tag")
            rules[:] = [r for r in rules if tag is not None and r.get("tag") != tag]
            return Reply(204)
        return Reply(200, rules)


@route("GET POST DELETE", r"/_emulator/faults")
def faults(ctx):
    return _rules(ctx, ctx.app.state.faults, ctx.app.state.add_fault)


@route("GET POST DELETE", r"/_emulator/delay")
def delays(ctx):
    return _rules(ctx, ctx.app.state.delays, ctx.app.state.add_delay)


@route("GET POST", r"/_emulator/quota")
def quota(ctx):
    """POST {"total": N} and/or {"family": "standardDSv2Family", "limit": N}."""
    state = ctx.app.state
    with state.lock:
        if ctx.method == "POST":
            if "total" in ctx.json:
                state.quota["total"] = int(ctx.json["total"])
            if "low_priority" in ctx.json:
                state.quota["low_priority"] = int(ctx.json["low_priority"])
            if "family" in ctx.json:
                state.quota["families"][ctx.json["family"]] = int(ctx.json["limit"])
        return Reply(200, state.quota)


@route("GET", r"/_emulator/state")
def dump(ctx):
    with ctx.app.state.lock:
        return Reply(
            200,
            {
                "resources": ctx.app.state.resources,
                "operations": {k: o.status for k, o in ctx.app.state.ops.items()},
            },
        )
