"""runner/backends/router.py, the local online endpoint's router: a real router process on
127.0.0.1 in front of tiny servers of this test's (they stand for MLflow's scoring server and
Azure's inference server, and record what they receive) routes as Azure ML's managed online
endpoints do. One router serves the module; each test writes the endpoint.json it needs."""

import http.client
import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from runner.backends.router import MAX_BODY

ROOT = Path(__file__).resolve().parent.parent
KEYS = {k: secrets.token_urlsafe(24) for k in ("primaryKey", "secondaryKey", "accessToken")}
NAMES = itertools.count()


def wait_for(check, timeout: float = 5.0):
    """check()'s first true value, asked until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
    return found


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class Fake(ThreadingHTTPServer):
    """A deployment's server: POST /invocations answers {"predictions": [its name]} (MLflow's
    scoring server), POST /score echoes (an Azure inference server), unless told `answer`; each
    request is recorded, and held `hold` seconds (until `release`) if told."""

    daemon_threads = True

    def __init__(self, name: str):
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.name, self.url = name, f"http://127.0.0.1:{self.server_address[1]}"
        self.release = threading.Event()
        self.reset()
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    def reset(self) -> None:
        self.release.set()  # lets go any request still held
        self.seen: list[tuple[str, str | None, bytes]] = []  # path, Content-Type, body
        self.peers: set[int] = set()  # the client ports of the requests
        self.answer: tuple[int, str, bytes] | None = None
        self.framing = "length"  # how the answer's body is delimited: length, chunked, close
        self.hold, self.held, self.release = 0.0, threading.Event(), threading.Event()

    def handle_error(self, request, client_address):
        pass  # the router dropped a connection it timed out


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Fake

    def log_message(self, format, *args):
        pass

    def do_POST(self):
        fake = self.server
        body = self.rfile.read(int(self.headers["Content-Length"]))
        fake.seen.append((self.path, self.headers.get("Content-Type"), body))
        fake.peers.add(self.client_address[1])
        if fake.hold:
            release = fake.release
            fake.held.set()
            release.wait(fake.hold)
        usual = (
            {"predictions": [fake.name]}
            if self.path == "/invocations"
            else {fake.name: body.decode()}
        )
        status, ctype, out = fake.answer or (200, "application/json", json.dumps(usual).encode())
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if fake.framing == "chunked":  # in two chunks, and a trailer
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            half = len(out) // 2
            for part in (out[:half], out[half:]):
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\nX-Trailer: 1\r\n\r\n")
        elif fake.framing == "close":  # no length: the body ends with the connection
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(out)
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)


class Endpoint:
    """A router process on `folder` (started as its caller in mlrun starts it) and its client."""

    def __init__(self, folder: Path, port: int | None = None):
        self.folder = folder
        args = [sys.executable, "-m", "runner.backends.router", str(folder)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(folder / "router.log", "ab") as log:
            self.proc = subprocess.Popen(
                args + (["--port", str(port)] if port else []),
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        info = wait_for(lambda: self.started(folder / "router.json"))
        self.port, self.url = info["port"], info["url"]
        assert self.url == f"http://127.0.0.1:{self.port}"

    def started(self, record: Path) -> dict | None:
        assert self.proc.poll() is None, (self.folder / "router.log").read_text()
        info = read_json(record)
        return info if info and info["pid"] == self.proc.pid else None

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(5)

    def configure(self, deployments: dict, traffic: dict | None = None, **more) -> str:
        """endpoint.json with these deployments, once the router has read it (GET / tells)."""
        name = f"ep-{next(NAMES)}"
        config = {"name": name, "auth_mode": "key", "traffic": traffic or {}, **more}
        write_json(self.folder / "endpoint.json", {**config, "deployments": deployments})
        wait_for(lambda: self.get("/")[1].get("endpoint") == name)
        return name

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def get(self, path: str) -> tuple[int, dict]:
        conn = self.connect()
        conn.request("GET", path)
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())

    def score(
        self,
        body: bytes | dict = b'{"input_data": [[1, 2]]}',
        key: str | None = KEYS["primaryKey"],
        deployment: str | None = None,
        ctype: str = "application/json",
        conn: http.client.HTTPConnection | None = None,
        path: str = "/score",
    ) -> tuple[int, str | None, bytes, str | None]:
        """POST body: (status, azureml-model-deployment, body, Content-Type) of the answer."""
        headers = {"Content-Type": ctype}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        if deployment:
            headers["azureml-model-deployment"] = deployment
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        client = conn or self.connect()
        client.request("POST", path, data, headers)
        answer = client.getresponse()
        out = answer.read()
        if conn is None:
            client.close()
        return (
            answer.status,
            answer.getheader("azureml-model-deployment"),
            out,
            answer.getheader("Content-Type"),
        )


def mlflow(*fakes: Fake, **settings) -> dict:
    return {"kind": "mlflow", "servers": [f.url for f in fakes], **settings}


def script(*fakes: Fake, **settings) -> dict:
    return {"kind": "script", "servers": [f.url for f in fakes], **settings}


@pytest.fixture(scope="module")
def fakes():
    servers = {name: Fake(name) for name in ("m1", "m2", "s1", "s2")}
    yield servers
    for fake in servers.values():
        fake.reset()
        fake.shutdown()
        fake.server_close()


@pytest.fixture(scope="module")
def dead():
    """Two URLs that refuse connections (their ports are bound, not listening)."""
    socks = [socket.socket() for _ in range(2)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    yield [f"http://127.0.0.1:{s.getsockname()[1]}" for s in socks]
    for s in socks:
        s.close()


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    folder = tmp_path_factory.mktemp("endpoint")
    write_json(folder / "keys.json", KEYS)
    (folder / "keys.json").chmod(0o600)
    endpoint = Endpoint(folder)
    yield endpoint
    assert endpoint.stop() == 0


@pytest.fixture
def ep(router, fakes):
    for fake in fakes.values():
        fake.reset()
    return router


def test_a_key_in_the_authorization_header_is_needed(ep, fakes):
    ep.configure({"blue": mlflow(fakes["m1"])}, {"blue": 100})
    for key in (None, "wrong", KEYS["accessToken"], ""):
        status, _, body, ctype = ep.score(key=key)
        assert status == 401 and "key" in json.loads(body)["message"]
        assert ctype == "application/json"
    conn = ep.connect()
    conn.request("POST", "/score", b"{}", {"Authorization": KEYS["primaryKey"]})  # no Bearer
    assert conn.getresponse().status == 401
    assert ep.score(key=KEYS["primaryKey"])[0] == 200
    assert ep.score(key=KEYS["secondaryKey"])[0] == 200
    assert len(fakes["m1"].seen) == 2


def test_aml_token_takes_the_access_token_only(ep, fakes):
    ep.configure({"blue": mlflow(fakes["m1"])}, {"blue": 100}, auth_mode="aml_token")
    assert ep.score(key=KEYS["accessToken"])[0] == 200
    assert ep.score(key=KEYS["primaryKey"])[0] == 401
    assert ep.score(key=KEYS["secondaryKey"])[0] == 401


def test_regenerated_keys_take_effect_while_it_runs(ep, fakes):
    ep.configure({"blue": mlflow(fakes["m1"])}, {"blue": 100})
    keys = ep.folder / "keys.json"
    new = {**KEYS, "primaryKey": secrets.token_urlsafe(24)}
    write_json(keys, new)
    try:
        wait_for(lambda: ep.score(key=KEYS["primaryKey"])[0] == 401)
        assert ep.score(key=new["primaryKey"])[0] == 200
        assert ep.score(key=KEYS["secondaryKey"])[0] == 200
    finally:
        write_json(keys, KEYS)
        wait_for(lambda: ep.score(key=KEYS["primaryKey"])[0] == 200)


def test_get_root_tells_the_deployments_health_and_other_paths_are_404(ep, fakes, dead):
    ep.configure(
        {
            "blue": mlflow(fakes["m1"], fakes["m2"]),
            "green": {"servers": [fakes["s1"].url, dead[0]]},
        },
        {"blue": 100},
        mirror_traffic={"green": 10},
    )
    status, health = ep.get("/")
    assert status == 200
    assert health["deployments"] == {
        "blue": {
            "kind": "mlflow",
            "traffic": 100,
            "mirror_traffic": 0,
            "servers": 2,
            "answering": 2,
        },
        "green": {
            "kind": "script",
            "traffic": 0,
            "mirror_traffic": 10,
            "servers": 2,
            "answering": 1,
        },
    }
    assert not any(key in json.dumps(health) for key in KEYS.values())
    assert ep.get("/score")[0] == 404
    assert ep.score(path="/invocations")[0] == 404
    assert ep.score(path="/")[0] == 404


def test_the_header_picks_the_deployment_and_is_sent_back(ep, fakes):
    ep.configure({"blue": script(fakes["s1"]), "green": script(fakes["s2"])}, {"blue": 100})
    status, deployment, body, _ = ep.score(b"x", deployment="green")
    assert (status, deployment, json.loads(body)) == (200, "green", {"s2": "x"})
    status, deployment, body, _ = ep.score(b"y")
    assert (status, deployment, json.loads(body)) == (200, "blue", {"s1": "y"})


def test_traffic_splits_requests_by_weight(ep, fakes):
    ep.configure(
        {"blue": script(fakes["s1"]), "green": script(fakes["s2"]), "idle": script(fakes["m1"])},
        {"blue": 75, "green": 25, "idle": 0},
    )
    conn = ep.connect()
    answers = [ep.score(b"{}", conn=conn) for _ in range(400)]
    assert {a[0] for a in answers} == {200}
    by = Counter(a[1] for a in answers)
    assert 240 <= by["blue"] <= 360 and by["blue"] + by["green"] == 400  # 300 expected, sd 8.7
    assert (len(fakes["s1"].seen), len(fakes["s2"].seen), fakes["m1"].seen) == (
        by["blue"],
        by["green"],
        [],
    )


def test_no_traffic_and_unknown_deployments_are_404(ep, fakes):
    ep.configure({"blue": script(fakes["s1"]), "green": script(fakes["s2"])}, {"blue": 0})
    status, deployment, body, _ = ep.score()
    assert status == 404 and deployment is None
    assert "azureml-model-deployment" in json.loads(body)["message"]
    assert ep.score(deployment="blue")[0] == 200  # a deployment without traffic, named
    status, _, body, _ = ep.score(deployment="red")
    assert status == 404
    assert json.loads(body) == {"message": "deployment red not found; deployments: blue, green"}
    assert len(fakes["s1"].seen) == 1 and not fakes["s2"].seen


def test_azure_input_data_goes_to_mlflow_as_its_format_and_comes_back_bare(ep, fakes):
    m1 = fakes["m1"]
    ep.configure({"blue": mlflow(m1, columns=["a", "b"]), "raw": mlflow(m1)}, {"blue": 100})
    sent: list[dict] = [
        {"input_data": [[1, 2], [3, 4]]},
        {"input_data": {"columns": ["x", "y"], "index": [7], "data": [[1, 2]]}, "params": {"p": 1}},
        {"input_data": {"index": [0], "data": [[5, 6]]}},
    ]
    for body in sent:
        status, deployment, answer, ctype = ep.score(body)
        assert (status, deployment, json.loads(answer), ctype) == (
            200,
            "blue",
            ["m1"],
            "application/json",
        )
    assert ep.score({"input_data": [[1, 2]]}, deployment="raw")[2] == b'["m1"]'
    assert [(path, ctype, json.loads(body)) for path, ctype, body in m1.seen] == [
        ("/invocations", "application/json", doc)
        for doc in (
            {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}},
            {"dataframe_split": sent[1]["input_data"], "params": {"p": 1}},
            {"dataframe_split": {"columns": ["a", "b"], "index": [0], "data": [[5, 6]]}},
            {"inputs": [[1, 2]]},  # the columns unknown
        )
    ]


def test_mlflow_format_and_other_bodies_pass_unchanged(ep, fakes):
    m1 = fakes["m1"]
    ep.configure({"blue": mlflow(m1, columns=["a"])}, {"blue": 100})
    bodies = [
        (b'{"dataframe_records": [{"a": 1}]}', "application/json"),
        (b'{"input_data": [[1]], "inputs": [[2]]}', "application/json"),
        (b"a\n1\n", "text/csv"),
    ]
    for body, ctype in bodies:
        status, _, answer, _ = ep.score(body, ctype=ctype)
        assert (status, json.loads(answer)) == (200, {"predictions": ["m1"]})
    assert m1.seen == [("/invocations", ctype, body) for body, ctype in bodies]


def test_a_script_deployment_gets_the_body_unchanged_on_score(ep, fakes):
    s1 = fakes["s1"]
    ep.configure({"blue": script(s1, columns=["a"])}, {"blue": 100})
    body = b'{"input_data": [[1, 2]], "params": {}}'
    status, _, answer, ctype = ep.score(body, ctype="application/json; charset=utf-8")
    assert (status, json.loads(answer), ctype) == (200, {"s1": body.decode()}, "application/json")
    assert s1.seen == [("/score", "application/json; charset=utf-8", body)]


def test_the_servers_of_a_deployment_take_turns(ep, fakes):
    ep.configure({"blue": script(fakes["s1"], fakes["s2"])}, {"blue": 100})
    conn = ep.connect()
    answered = [next(iter(json.loads(ep.score(b"{}", conn=conn)[2]))) for _ in range(10)]
    assert answered in (["s1", "s2"] * 5, ["s2", "s1"] * 5)


def test_a_dead_server_is_skipped_and_none_answering_is_503(ep, fakes, dead):
    s1 = fakes["s1"]
    ep.configure({"blue": {"kind": "script", "servers": [dead[0], s1.url]}}, {"blue": 100})
    assert [ep.score(b"{}")[0] for _ in range(6)] == [200] * 6
    assert len(s1.seen) == 6
    ep.configure({"blue": {"kind": "script", "servers": dead}}, {"blue": 100})
    status, deployment, body, _ = ep.score()
    assert (status, deployment) == (503, "blue")
    assert json.loads(body) == {"message": "deployment blue is not running (no server answers)"}
    ep.configure({"blue": {"kind": "script", "servers": []}}, {"blue": 100})
    assert ep.score()[0] == 503
    ep.configure({"blue": script(s1)}, {"blue": 100})
    assert ep.score()[0] == 200


def test_mirror_traffic_is_sent_too_and_its_answer_never_counts(ep, fakes, dead):
    m1, s1 = fakes["m1"], fakes["s1"]
    deployments = {"blue": mlflow(m1, columns=["a"]), "green": script(s1)}
    ep.configure(deployments, {"blue": 100}, mirror_traffic={"green": 100})
    for i in range(3):
        assert ep.score({"n": i}, deployment="blue")[0] == 200  # named: not mirrored
    for i in range(5):
        status, deployment, answer, _ = ep.score({"input_data": [[i]]})
        assert (status, deployment, json.loads(answer)) == (200, "blue", ["m1"])
    wait_for(lambda: len(s1.seen) >= 5)
    assert sorted(body for _, _, body in s1.seen) == [
        json.dumps({"input_data": [[i]]}).encode() for i in range(5)
    ]
    assert len(m1.seen) == 8
    s1.answer = (500, "application/json", b'{"message": "the mirror failed"}')
    assert ep.score()[:2] == (200, "blue")
    wait_for(lambda: len(s1.seen) == 6)
    deployments["green"] = {"kind": "script", "servers": dead}
    ep.configure(deployments, {"blue": 100}, mirror_traffic={"green": 100})
    assert [ep.score()[0] for _ in range(5)] == [200] * 5


def test_a_busy_server_makes_a_request_wait_then_429(ep, fakes):
    s1 = fakes["s1"]
    ep.configure({"blue": script(s1, max_queue_wait_ms=100)}, {"blue": 100})
    s1.hold = 10
    first: list = []
    thread = threading.Thread(target=lambda: first.append(ep.score(b"first")))
    thread.start()
    assert s1.held.wait(5)
    started = time.monotonic()
    status, deployment, body, _ = ep.score(b"second")
    assert time.monotonic() - started >= 0.09
    assert (status, deployment) == (429, "blue")
    assert json.loads(body)["message"].startswith("too many requests")
    s1.release.set()
    thread.join(5)
    assert first[0][0] == 200 and [b for _, _, b in s1.seen] == [b"first"]


def test_a_slow_server_times_out_with_408(ep, fakes):
    s1 = fakes["s1"]
    ep.configure({"blue": script(s1, request_timeout_ms=200)}, {"blue": 100})
    s1.hold = 10
    status, deployment, body, _ = ep.score()
    assert (status, deployment) == (408, "blue")
    assert json.loads(body) == {"message": "request timed out after 200 ms"}
    s1.release.set()
    s1.hold = 0
    assert ep.score()[0] == 200  # on a new connection, its slot given back


@pytest.mark.parametrize(
    "length, status",
    [(str(MAX_BODY + 1), 413), (None, 411), ("ten", 400), ("-1", 400)],
)
def test_a_body_needs_a_length_within_the_limit(ep, fakes, length, status):
    ep.configure({"blue": script(fakes["s1"])}, {"blue": 100})
    conn = ep.connect()
    conn.putrequest("POST", "/score")
    conn.putheader("Authorization", f"Bearer {KEYS['primaryKey']}")
    if length is not None:
        conn.putheader("Content-Length", length)
    conn.endheaders()  # the body is never sent: the router answers without it
    answer = conn.getresponse()
    assert answer.status == status and "message" in json.loads(answer.read())
    assert answer.getheader("Connection") == "close"
    assert not fakes["s1"].seen


def test_a_body_of_the_limit_passes(ep, fakes):
    ep.configure({"blue": script(fakes["s1"])}, {"blue": 100})
    fakes["s1"].answer = (200, "application/json", b"{}")
    assert ep.score(b"x" * MAX_BODY)[0] == 200
    assert len(fakes["s1"].seen[0][2]) == MAX_BODY


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_a_chunked_or_unsized_answer_comes_back_whole(ep, fakes, framing):
    s1 = fakes["s1"]
    ep.configure({"blue": script(s1)}, {"blue": 100})
    s1.framing = framing
    conn = ep.connect()
    for i in range(3):  # the router's connection to the server: reused, or made again
        body = json.dumps({"n": i, "pad": "x" * 70000}).encode()
        status, _, answer, _ = ep.score(body, conn=conn)
        assert (status, json.loads(answer)) == (200, {"s1": body.decode()})
    assert len(s1.peers) == (1 if framing == "chunked" else 3)


def test_an_error_of_a_server_passes_through(ep, fakes):
    m1, s1 = fakes["m1"], fakes["s1"]
    ep.configure({"blue": script(s1), "green": mlflow(m1, columns=["a"])}, {"blue": 100})
    s1.answer = (500, "application/json", b'{"message": "boom"}')
    assert ep.score()[::2] == (500, b'{"message": "boom"}')
    m1.answer = (400, "text/plain", b"bad input")
    status, deployment, body, ctype = ep.score(deployment="green")
    assert (status, deployment, body, ctype) == (400, "green", b"bad input", "text/plain")


def test_a_changed_endpoint_takes_effect_without_a_failed_request(ep, fakes):
    ep.configure({"blue": script(fakes["s1"]), "green": script(fakes["s2"])}, {"blue": 100})
    answers: list[tuple[float, int, str | None]] = []
    stop = threading.Event()

    def client():
        conn = ep.connect()
        while not stop.is_set():
            sent = time.monotonic()
            try:
                status, deployment, _, _ = ep.score(b"{}", conn=conn)
            except (OSError, http.client.HTTPException) as e:
                status, deployment = 0, repr(e)
            answers.append((sent, status, deployment))

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(answers) > 50)
        ep.configure({"blue": script(fakes["s1"]), "green": script(fakes["s2"])}, {"green": 100})
        moved = time.monotonic()
        wait_for(lambda: sum(sent > moved for sent, _, _ in answers) > 50)
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    assert [a for a in answers if a[1] != 200] == []
    assert {d for sent, _, d in answers if sent > moved} == {"green"}
    assert "blue" in {d for sent, _, d in answers if sent < moved}


def test_a_load_from_four_threads_is_all_answered(ep, fakes):
    ep.configure({"blue": mlflow(fakes["m1"], fakes["m2"])}, {"blue": 100})
    statuses: list[int] = []

    def client():
        conn = ep.connect()
        statuses.append(ep.score({"input_data": [[0]]}, conn=conn)[0])
        sock = conn.sock
        for i in range(1, 100):
            statuses.append(ep.score({"input_data": [[i]]}, conn=conn)[0])
        assert conn.sock is sock  # kept alive
        statuses.append(0)  # a thread's end

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(statuses) == [0] * 4 + [200] * 400
    assert len(fakes["m1"].seen) + len(fakes["m2"].seen) == 400
    # one request at a time on a server (max_concurrent_requests_per_instance): one connection
    assert (len(fakes["m1"].peers), len(fakes["m2"].peers)) == (1, 1)


def test_the_log_is_quiet_and_tells_no_key(ep, fakes):
    """Last of the module's: its router's log after all the above, a broken keys.json too."""
    ep.configure({"blue": script(fakes["s1"])}, {"blue": 100})
    keys = ep.folder / "keys.json"
    broken = json.dumps(KEYS)[:-5].encode()
    keys.write_bytes(broken)
    try:
        # looked at by the requests, which keep the last good keys
        wait_for(
            lambda: ep.score()[0] == 200 and "keys.json" in (ep.folder / "router.log").read_text()
        )
    finally:
        write_json(keys, KEYS)
    log = (ep.folder / "router.log").read_text()
    assert f"pid {ep.proc.pid} routing" in log
    assert not any(key in log for key in KEYS.values())
    assert "POST" not in log and len(log.splitlines()) < 30


def test_sigterm_removes_router_json_and_a_restart_keeps_the_port(tmp_path):
    write_json(tmp_path / "keys.json", KEYS)
    write_json(tmp_path / "endpoint.json", {"name": "e", "traffic": {}, "deployments": {}})
    first = Endpoint(tmp_path)
    assert first.get("/") == (200, {"endpoint": "e", "deployments": {}})
    assert first.stop() == 0
    assert not (tmp_path / "router.json").exists()
    again = Endpoint(tmp_path, port=first.port)
    try:
        assert again.port == first.port and again.get("/")[0] == 200
        other = Endpoint(tmp_path, port=first.port)  # taken: on another
        assert other.port != first.port and other.get("/")[0] == 200
        assert other.stop() == 0
    finally:
        assert again.stop() == 0
    log = (tmp_path / "router.log").read_text()
    assert f"pid {first.proc.pid} routing e at {first.url}" in log
    assert f"port {first.port} is taken" in log
    assert not any(key in log for key in KEYS.values())
