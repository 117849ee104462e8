"""The local target's online endpoint: a router process in front of the endpoint's deployments,
routing scoring requests as Azure ML's managed online endpoints do. Standard library only (it
starts fast and loads nothing of mlrun's); another part of mlrun starts the deployments' servers.

    python -m runner.backends.router FOLDER [--port N]

FOLDER holds two files written atomically by mlrun, re-read when their bytes change (looked at
most every CHECK_EVERY seconds, by the requests):
- endpoint.json: {"name", "auth_mode": "key" | "aml_token", "traffic": {DEP: percent},
  "mirror_traffic": {DEP: percent}, "deployments": {DEP: {"kind": "mlflow" | "script",
  "servers": [URL, ...], "columns": [...], "request_timeout_ms",
  "max_concurrent_requests_per_instance", "max_queue_wait_ms"}}}; a missing request setting is
  Azure's default (DEFAULTS), a missing kind is "script";
- keys.json: {"primaryKey", "secondaryKey", "accessToken"}: secrets, never logged nor echoed.
The router listens on 127.0.0.1 (on port N if it is free, else on any), then writes router.json
{"pid", "port", "url"}; SIGTERM stops it and removes router.json. It logs (to stderr) a line when
it starts and one per real problem, none per request.

POST /score needs `Authorization: Bearer KEY` (primaryKey or secondaryKey; accessToken with
aml_token), else 401. It goes to the deployment named by the `azureml-model-deployment` header
(404 if unknown), else to one drawn by `traffic` (404 if none has any), named back in the answer's
`azureml-model-deployment` header; `mirror_traffic` also sends that share of the requests without
the header to other deployments, their answers discarded. A deployment's servers take turns
(round-robin); one refusing connections is skipped, 503 if none answers. A server has at most
max_concurrent_requests_per_instance requests in flight (mirrored ones too): a request waits
max_queue_wait_ms for a slot (else 429); a server silent for request_timeout_ms is a 408 (the
timeout of its socket, so a server sending slowly may take longer). A body needs a Content-Length
(411; 400 if invalid) of at most MAX_BODY bytes (413). To an `mlflow` deployment (MLflow's scoring
server: POST /invocations) Azure's {"input_data": ...} goes as MLflow's dataframe_split (inputs
for a list when the columns are unknown), other keys along, and the answer {"predictions": X}
comes back as X, as from Azure's MLflow deployments; any other body, and any to a `script`
deployment (Azure's inference server: POST /score), goes unchanged. The status, Content-Type and
body of a server's answer come back as they are. GET / (without a key) tells the deployments'
health; any other path is 404. Connections to clients and to servers are kept alive (HTTP/1.1).
"""

from __future__ import annotations

import argparse
import email.utils
import http.client
import itertools
import json
import os
import random
import secrets
import signal
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

MAX_BODY = 3 * 1024 * 1024 // 2  # bytes: 1.5 MiB
DEFAULTS = {  # Azure's, in the order forward() reads them
    "request_timeout_ms": 5000,
    "max_concurrent_requests_per_instance": 1,
    "max_queue_wait_ms": 500,
}
MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
PATHS = {"mlflow": "/invocations", "script": "/score"}
CHECK_EVERY = 0.05  # seconds between two looks at endpoint.json or keys.json
JSON = "application/json"
Answer = tuple[int, str, bytes]  # status, Content-Type, body


def log(message: str) -> None:
    print(time.strftime("%Y-%m-%d %H:%M:%S"), message, file=sys.stderr, flush=True)


def error(status: int, message: str) -> Answer:
    return status, JSON, json.dumps({"message": message}).encode()


def write_json(path: Path, data: dict[str, Any]) -> None:
    """As runner.backends.supervised.write_json (atomic), without all that module imports."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def to_mlflow(body: bytes, columns: list[str] | None) -> bytes | None:
    """Azure's {"input_data": ...} as MLflow's scoring server reads it; None for any other body."""
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict) or any(k in doc for k in MLFLOW_FORMATS):
        return None
    data = doc.pop("input_data", None)
    if isinstance(data, dict):
        doc["dataframe_split"] = {"columns": columns, **data} if columns else data
    elif isinstance(data, list) and columns:
        doc["dataframe_split"] = {"columns": columns, "data": data}
    elif isinstance(data, list):
        doc["inputs"] = data
    else:
        return None
    return json.dumps(doc).encode()


def from_mlflow(data: bytes) -> bytes:
    """MLflow's {"predictions": X} as X."""
    try:
        answer = json.loads(data)
    except ValueError:
        return data
    found = isinstance(answer, dict) and "predictions" in answer
    return json.dumps(answer["predictions"]).encode() if found else data


def number(value: Any) -> float:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


class Watched:
    """A JSON object in a file another process rewrites atomically: the last good one read. Its
    bytes are compared, not its mtime and size, which can miss a rewrite of the same size within
    the file system's clock tick."""

    def __init__(self, path: Path) -> None:
        self.path, self.raw, self.problem, self.next_look = path, b"", "", 0.0
        self.data: dict[str, Any] = {}
        self.lock = threading.Lock()

    def get(self) -> dict[str, Any]:
        if time.monotonic() < self.next_look or not self.lock.acquire(blocking=False):
            return self.data
        problem = ""
        try:
            self.next_look = time.monotonic() + CHECK_EVERY
            raw = self.path.read_bytes()
            if raw != self.raw:
                self.raw, data = raw, json.loads(raw)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                self.data = data
        except (OSError, ValueError) as e:  # the kind of error only: keys.json is secret
            problem = f"{self.path.name}: {type(e).__name__}; keeping the last one read"
        finally:
            self.lock.release()
        if problem and problem != self.problem:
            log(problem)
        self.problem = problem
        return self.data


class Upstream:
    """A keep-alive HTTP/1.1 connection to a deployment's server: a request in one write, the
    answer read by Content-Length or chunks (what http.client does, in a third of its time)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.sock: socket.socket | None = None
        self.buffer = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buffer = None, b""

    def post(self, path: str, body: bytes, ctype: str, timeout: float) -> tuple[int, dict, bytes]:
        """The answer's status, headers (lower-case names) and body; ConnectionError when the
        server closed the connection before answering, TimeoutError after `timeout` seconds."""
        if self.sock is None:
            self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.sock.sendall(head.encode("latin-1") + body)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        raw, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        try:
            status = int(status_line.split(" ", 2)[1])
        except (IndexError, ValueError):
            raise http.client.BadStatusLine(status_line) from None
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            data = self._chunks()
        elif "content-length" in headers:
            data = self._exactly(int(headers["content-length"]))
        else:  # the body runs to the end of the connection
            while self._fill(eof_ok=True):
                pass
            data, self.buffer = self.buffer, b""
            headers["connection"] = "close"
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, data

    def _fill(self, eof_ok: bool = False) -> bool:
        assert self.sock is not None
        more = self.sock.recv(65536)
        if not more:
            if eof_ok:
                return False
            raise ConnectionError("the server closed the connection")
        self.buffer += more
        return True

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def _chunks(self) -> bytes:
        parts: list[bytes] = []
        while True:
            try:
                size = int(self._line().split(b";")[0], 16)
            except ValueError:
                raise http.client.IncompleteRead(b"") from None
            if size == 0:  # trailers, if any, up to a blank line
                while self._line():
                    pass
                return b"".join(parts)
            parts.append(self._exactly(size + 2)[:-2])


class Server:
    """A deployment's server: its requests in flight and its idle keep-alive connections."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.url, self.host, self.port = url, parts.hostname or "127.0.0.1", parts.port or 80
        self.busy, self.down = 0, False  # busy: guarded by Router.slots
        self.idle: list[Upstream] = []

    def post(self, path: str, body: bytes, ctype: str, timeout: float) -> Answer:
        """POST on an idle connection (one the server closed is dropped), else on a new one."""
        while self.idle:
            try:
                conn = self.idle.pop()
            except IndexError:  # taken by another thread
                break
            try:
                return self.send(conn, path, body, ctype, timeout)
            except ConnectionError:
                pass  # closed while idle, or the server died: a new connection tells which
        return self.send(Upstream(self.host, self.port), path, body, ctype, timeout)

    def send(self, conn: Upstream, path: str, body: bytes, ctype: str, timeout: float) -> Answer:
        try:
            status, headers, data = conn.post(path, body, ctype, timeout)
        except Exception:
            conn.close()
            raise
        if conn.sock is not None:
            self.idle.append(conn)
        return status, headers.get("content-type") or JSON, data

    def answers(self) -> bool:
        try:
            socket.create_connection((self.host, self.port), timeout=0.5).close()
            return True
        except OSError:
            return False


class Router(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, folder: Path, port: int) -> None:
        self.endpoint, self.keys = Watched(folder / "endpoint.json"), Watched(folder / "keys.json")
        self.servers: dict[str, Server] = {}  # by URL, over the changes of endpoint.json
        self.turns: dict[str, itertools.count[int]] = {}  # by deployment: round-robin
        self.slots = threading.Condition()  # notified when a server's slot is freed
        super().__init__(("127.0.0.1", port), Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client gone is no problem
            log(f"error serving a client: {traceback.format_exc()}")

    def authorized(self, endpoint: dict[str, Any], header: str) -> bool:
        aml_token = endpoint.get("auth_mode") == "aml_token"
        names = ["accessToken"] if aml_token else ["primaryKey", "secondaryKey"]
        keys = [k for k in map(self.keys.get().get, names) if isinstance(k, str) and k]
        scheme, _, given = header.strip().partition(" ")
        match = (secrets.compare_digest(given.strip().encode(), k.encode()) for k in keys)
        return scheme.lower() == "bearer" and any(match)

    def route(
        self, endpoint: dict[str, Any], name: str | None, body: bytes, ctype: str
    ) -> tuple[Answer, str | None]:
        """The answer of the deployment named, else of one drawn by traffic; and its name."""
        deployments: dict[str, Any] = endpoint.get("deployments") or {}
        if not name:
            traffic = endpoint.get("traffic") or {}
            weights = {d: w for d, w in traffic.items() if number(w) > 0}
            if not weights:
                message = f"no deployment of {endpoint.get('name')} has traffic; name one in "
                return error(404, message + "the azureml-model-deployment header"), None
            [name] = random.choices(list(weights), list(weights.values()))
            for other, share in (endpoint.get("mirror_traffic") or {}).items():
                if other in deployments and other != name and random.random() * 100 < number(share):
                    mirrored = (other, deployments[other], body, ctype)
                    threading.Thread(target=self.forward, args=mirrored, daemon=True).start()
        if name not in deployments:
            message = f"deployment {name} not found; deployments: {', '.join(deployments)}"
            return error(404, message), None
        return self.forward(name, deployments[name], body, ctype), name

    def forward(self, name: str, deployment: dict[str, Any], body: bytes, ctype: str) -> Answer:
        """The deployment's answer to a scoring request."""
        timeout, limit, wait = (
            v if deployment.get(k) is None else deployment[k] for k, v in DEFAULTS.items()
        )
        kind = deployment.get("kind") or "script"
        translated = to_mlflow(body, deployment.get("columns")) if kind == "mlflow" else None
        if translated is not None:
            body, ctype = translated, JSON
        urls = deployment.get("servers") or []
        servers = [self.servers.get(u) or self.servers.setdefault(u, Server(u)) for u in urls]
        turn = next(self.turns.setdefault(name, itertools.count())) % max(len(servers), 1)
        servers = servers[turn:] + servers[:turn]
        deadline, refused = time.monotonic() + wait / 1000, set[Server]()
        while server := self.take(servers, limit, refused, deadline):
            try:
                path = PATHS.get(kind, "/score")
                status, answer_type, data = server.post(path, body, ctype, timeout / 1000)
            except TimeoutError:
                return error(408, f"request timed out after {timeout} ms")
            except OSError:  # refused, or closed without an answer: the next server
                refused.add(server)
                self.mark(name, server, down=True)
                continue
            except http.client.HTTPException as e:
                return error(502, f"deployment {name} answered badly ({type(e).__name__})")
            finally:
                with self.slots:
                    server.busy -= 1
                    self.slots.notify_all()
            self.mark(name, server, down=False)
            if translated is not None and status == 200:
                return status, JSON, from_mlflow(data)
            return status, answer_type, data
        if len(refused) == len(servers):
            return error(503, f"deployment {name} is not running (no server answers)")
        message = f"too many requests: no server of deployment {name} was free within {wait} ms"
        return error(429, f"{message} (max_concurrent_requests_per_instance: {limit})")

    def take(
        self, servers: list[Server], limit: int, skip: set[Server], deadline: float
    ) -> Server | None:
        """The first server not skipped with a free slot, waiting until `deadline` for one."""
        with self.slots:
            while left := [s for s in servers if s not in skip]:
                if server := next((s for s in left if s.busy < limit), None):
                    server.busy += 1
                    return server
                if time.monotonic() >= deadline:
                    break
                self.slots.wait(deadline - time.monotonic())
        return None

    def mark(self, name: str, server: Server, down: bool) -> None:
        if server.down != down:
            server.down = down
            news = "refuses connections" if down else "answers again"
            log(f"deployment {name}: {server.url} {news}")

    def health(self) -> dict[str, Any]:
        endpoint = self.endpoint.get()
        traffic, mirror = endpoint.get("traffic") or {}, endpoint.get("mirror_traffic") or {}
        health = {}
        for name, deployment in (endpoint.get("deployments") or {}).items():
            urls = deployment.get("servers") or []
            health[name] = {
                "kind": deployment.get("kind") or "script",
                "traffic": traffic.get(name, 0),
                "mirror_traffic": mirror.get(name, 0),
                "servers": len(urls),
                "answering": sum(Server(u).answers() for u in urls),
            }
        return {"endpoint": endpoint.get("name"), "deployments": health}


_last_date: tuple[int, str] = (0, "")  # replaced whole, so threads read a consistent pair


def _date() -> str:
    """The Date header's value, made once a second."""
    global _last_date
    now = int(time.time())
    second, text = _last_date
    if second != now:
        text = email.utils.formatdate(now, usegmt=True)
        _last_date = (now, text)
    return text


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "mlrun-router"
    disable_nagle_algorithm = True
    timeout = 300  # seconds an idle client connection is kept
    server: Router

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no line per request

    def reply(self, answer: Answer, deployment: str | None = None, close: bool = False) -> None:
        """Send the answer, in one write; with `close`, close the connection (a body left
        unread)."""
        status, ctype, body = answer
        self.close_connection = self.close_connection or close
        phrase = self.responses.get(status, ("",))[0]
        head = [
            f"HTTP/1.1 {status} {phrase}",
            f"Server: {self.server_version}",
            f"Date: {_date()}",
            f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}",
        ]
        if deployment:
            head.append(f"azureml-model-deployment: {deployment}")
        if self.close_connection:
            head.append("Connection: close")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/":
            return self.reply(error(404, "not found: score with POST /score"))
        self.reply((200, JSON, json.dumps(self.server.health()).encode()))

    def do_POST(self) -> None:
        length = (self.headers.get("Content-Length") or "").strip()
        if not length or self.headers.get("Transfer-Encoding"):
            return self.reply(error(411, "a request needs a Content-Length header"), close=True)
        if not (length.isascii() and length.isdigit()):
            return self.reply(error(400, "invalid Content-Length header"), close=True)
        if int(length) > MAX_BODY:
            return self.reply(error(413, f"the request body is over {MAX_BODY} bytes"), close=True)
        body = self.rfile.read(int(length))
        if len(body) < int(length):
            self.close_connection = True  # the client went away
            return None
        if self.path.split("?")[0] != "/score":
            return self.reply(error(404, "not found: score with POST /score"))
        endpoint = self.server.endpoint.get()
        if not self.server.authorized(endpoint, self.headers.get("Authorization", "")):
            return self.reply(error(401, "missing or invalid key (Authorization: Bearer KEY)"))
        named = (self.headers.get("azureml-model-deployment") or "").strip() or None
        try:
            answer, picked = self.server.route(
                endpoint, named, body, self.headers.get("Content-Type") or JSON
            )
        except Exception:  # noqa: BLE001 - a router never dies of a request
            log(f"error routing a request: {traceback.format_exc()}")
            answer, picked = error(500, "the endpoint's router failed (see router.log)"), None
        self.reply(answer, picked)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runner.backends.router")
    parser.add_argument("folder", type=Path, help="the endpoint's (endpoint.json, keys.json)")
    parser.add_argument("--port", type=int, default=0, help="the port to listen on if free")
    args = parser.parse_args(argv)
    folder: Path = args.folder.resolve()
    try:
        router = Router(folder, args.port)
    except OSError as e:
        if not args.port:
            raise
        router = Router(folder, 0)
        log(f"port {args.port} is taken ({e.strerror}); listening on another")
    record, port = folder / "router.json", router.server_address[1]
    url = f"http://127.0.0.1:{port}"
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        write_json(record, {"pid": os.getpid(), "port": port, "url": url})
        log(
            f"pid {os.getpid()} routing {router.endpoint.get().get('name') or folder.name} at {url}"
        )
        router.serve_forever()
    except (SystemExit, KeyboardInterrupt):
        log(f"pid {os.getpid()} stopped")
    finally:
        record.unlink(missing_ok=True)
        router.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
