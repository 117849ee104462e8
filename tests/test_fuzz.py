"""Spec fuzzing: thousands of mutated specs through `mlrun validate` and `mlrun plan`, in-process.

Seeds: specs/mlflow-tracking.yaml, specs/hello.yaml and tests/specs/fuzz/sweep.yaml, copied into
a lab folder laid out like the repository (so their relative paths resolve and a mutation that
keeps a spec valid gets as far as a real local plan). Mutations are structural (the parsed data
changed, then dumped as YAML: dropped, renamed, retyped, shared and nested values) and textual
(bytes edited: nasty snippets, tags, anchors, alias bombs, deep nesting, huge numbers and
strings, control characters, invalid UTF-8, BOMs, NULs, random bytes).

For every case: exit 0 or 1, never an exception out of `run` or a traceback; exit 1 says what is
wrong on stderr, naming the file, one line per message; no runaway work (guards far above the
normal case, not speed tests: CPU time per case, and a wall-clock alarm for hangs; a case over
either is measured once more, as the machine is shared; how fast heavy input is validated is
measured in benchmarks/run.py) nor memory (peak RSS growth, with an address-space limit as a
safety net); and nothing written, started or requested (an audit hook sees every write-open,
file operation, process and socket; socket.connect is patched to refuse; the lab folder's
listing is unchanged; and, per test, no child process is left).

Reproducible: derandomized, no example database.
"""

import contextlib
import gc
import io
import os
import re
import resource
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from conftest import ROOT, SEED, SPECS
from hypothesis import HealthCheck, given, settings, strategies as st

from runner.cli import run

FUZZ = Path(__file__).parent / "specs" / "fuzz"
SEEDS = {
    "mlflow-tracking": SEED,
    "hello": SPECS / "hello.yaml",
    "sweep": FUZZ / "sweep.yaml",
    "deploy": SPECS / "deploy.yaml",  # online endpoints (issue 29)
    "deploy-batch": SPECS / "deploy-batch.yaml",  # a batch endpoint, a data asset, a cluster
}
CASE = "case.yaml"
RSS_GROWTH_MB = 200  # one case may raise the process's peak RSS by at most this much
ADDRESS_SPACE_GB = 2  # above the current size: a runaway case gets MemoryError, not the OOM killer
# Runaway guards, not speed tests: the slowest case measured took 0.42 s of CPU (the heavy ones
# at most 0.07 s; the project's 2-core machine, 2026-12-02), so a case over 5 s is doing work it
# should not (it was 2 s for nesting 3,000 '[' deep before yamldoc stopped composing past the
# limit). CPU time, not wall time: CI machines are shared.
CPU_SECONDS = 5
HANG_SECONDS = 30  # wall time, far above CPU_SECONDS: only a real hang (a blocking read) trips it
FAST = dict(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)

# --- the side-effect guard -----------------------------------------------------------------------

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
FILE_EVENTS = {
    "os.mkdir",
    "os.rename",
    "os.remove",
    "os.rmdir",
    "os.symlink",
    "os.link",
    "os.truncate",
    "os.chmod",
    "os.chown",
    "os.utime",
    "shutil.copyfile",
    "shutil.copytree",
    "shutil.rmtree",
    "shutil.move",
    "shutil.make_archive",
    "sqlite3.connect",
}
PROCESS_EVENTS = {
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "os.kill",
    "os.killpg",
    "pty.spawn",
}
NETWORK_EVENTS = {
    "socket.connect",
    "socket.bind",
    "socket.sendto",
    "socket.sendmsg",
    "socket.getaddrinfo",
    "socket.gethostbyname",
    "socket.gethostbyaddr",
    "http.client.connect",
    "urllib.Request",
    "ftplib.connect",
    "smtplib.connect",
}


class Guard:
    """Records, while armed, every audit event that writes, starts or requests something."""

    def __init__(self):
        self.armed, self.seen = False, []

    def hook(self, event, args):
        if not self.armed:
            return
        if event == "open":
            path, mode, flags = (list(args) + [None, None])[:3]
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & WRITE_FLAGS
            )
            if writes and "__pycache__" not in str(path):  # a lazy import may write its bytecode
                self.seen.append((event, str(path)))
        elif event in FILE_EVENTS | PROCESS_EVENTS | NETWORK_EVENTS:
            self.seen.append((event, repr(args)[:200]))


GUARD = Guard()
_hooked = []


@pytest.fixture(scope="module")
def guard():
    if not _hooked:  # audit hooks cannot be removed: one, idle unless armed
        sys.addaudithook(GUARD.hook)
        _hooked.append(True)
    return GUARD


class Hang(BaseException):
    """Raised by the alarm in a case that hangs; a BaseException so `run` cannot swallow it."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory, guard):
    """A copy of what the seeds refer to, the seeds, a warm-up (lazy imports, caches), and the
    process limits of the fuzz run."""
    root = tmp_path_factory.mktemp("fuzzlab")
    shutil.copytree(
        ROOT / "training", root / "training", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(SPECS / "jobs", root / "specs" / "jobs")
    shutil.copytree(FUZZ / "src", root / "specs" / "src")
    seeds = {name: path.read_bytes() for name, path in SEEDS.items()}
    for name, data in seeds.items():
        (root / "specs" / f"seed-{name}.yaml").write_bytes(data)
    for name in seeds:
        for command in ("validate", "plan"):
            code, out, err = _run(command, root / "specs" / f"seed-{name}.yaml")
            assert code == 0, err
    old_handler = signal.signal(signal.SIGALRM, _on_alarm)
    old_as = resource.getrlimit(resource.RLIMIT_AS)
    size = psutil.Process().memory_info().vms
    soft = size + ADDRESS_SPACE_GB * 2**30
    if old_as[0] == resource.RLIM_INFINITY or old_as[0] > soft:
        resource.setrlimit(resource.RLIMIT_AS, (soft, old_as[1]))
    try:
        yield {
            "root": root,
            "spec": root / "specs" / CASE,
            "seeds": seeds,
            "data": {name: yaml.safe_load(data) for name, data in seeds.items()},
            "text": {name: data.decode() for name, data in seeds.items()},
        }
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old_as)
        signal.signal(signal.SIGALRM, old_handler)


def _on_alarm(signum, frame):
    raise Hang(f"a case ran for more than {HANG_SECONDS} s")


def _run(command: str, path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run([command, str(path)])
    return code, out.getvalue(), err.getvalue()


def _listing(root: Path) -> set:
    return {
        str(Path(d, n).relative_to(root)) for d, dirs, files in os.walk(root) for n in dirs + files
    }


CONTROL = "[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]"  # in a message: a value quoted raw


class NoNetwork(Exception):
    pass


COUNT: dict = {}  # kind -> cases run
OUTCOMES: dict = {}  # (kind, command, exit code) -> cases


def _guarded(command: str, spec: Path) -> dict:
    """Run `command` on `spec` with the guard armed, sockets refusing and the hang alarm set."""
    connects = []

    def refuse(sock, *args):
        connects.append(args)
        raise NoNetwork("the fuzz run must not connect anywhere")

    real_connect = socket.socket.connect
    socket.socket.connect = refuse
    GUARD.seen.clear()
    GUARD.armed = True
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    cpu = time.process_time()
    try:
        code, out, err = _run(command, spec)
        hang = False
    except Hang:
        code, out, err, hang = None, "", "", True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        cpu = time.process_time() - cpu
        GUARD.armed = False
        socket.socket.connect = real_connect
    return {
        "code": code,
        "out": out,
        "err": err,
        "hang": hang,
        "cpu": cpu,
        "seen": list(GUARD.seen),
        "connects": connects,
    }


def exercise(lab, data: bytes, command: str, kind: str) -> int:
    """One case: write `data` as the spec, run `command` on it, check everything the module says."""
    COUNT[kind] = COUNT.get(kind, 0) + 1
    spec, root = lab["spec"], lab["root"]
    spec.write_bytes(data)
    before = _listing(root)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = _guarded(command, spec)
    if (
        r["hang"] or r["cpu"] >= CPU_SECONDS
    ):  # measured again once: a shared machine stalls at times
        gc.collect()
        r = _guarded(command, spec)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
    code, out, err = r["code"], r["out"], r["err"]
    shown = f"mlrun {command} -> {code}\nstdout:\n{out[:2000]}\nstderr:\n{err[:4000]}"
    assert not r["hang"], f"mlrun {command} hangs (twice) on {len(data)} bytes: {data[:300]!r}"
    assert "Traceback (most recent call last)" not in out + err, shown
    assert "internal error" not in out + err, shown
    assert code in (0, 1), shown
    if code == 1:
        assert CASE in err, shown  # says what is wrong, naming the file
        assert re.search(
            rf"(^|/){re.escape(CASE)}(:\d+:\d+)?: error: |^error: .*{re.escape(CASE)}", err, re.M
        ), shown
    else:
        assert ": error: " not in err, shown
    assert not re.search(CONTROL, err.replace(str(spec), "")), (
        shown
    )  # one line per message, no escapes
    assert r["seen"] == [], (r["seen"], shown)
    assert r["connects"] == [], shown
    assert _listing(root) == before, (sorted(_listing(root) ^ before), shown)
    assert grown_mb < RSS_GROWTH_MB, (f"peak RSS grew by {grown_mb:.0f} MB", shown)
    assert r["cpu"] < CPU_SECONDS, (f"took {r['cpu']:.1f} s of CPU (twice)", shown)
    OUTCOMES[(kind, command, code)] = OUTCOMES.get((kind, command, code), 0) + 1
    return code


# --- values --------------------------------------------------------------------------------------

NASTY_STRINGS = [
    "",
    " ",
    "~",
    "null",
    "yes",
    "off",
    "0x1F",
    "0o17",
    "1_000",
    "1:30:00",
    ".nan",
    "-.inf",
    "1e999",
    "2001-12-14t21:59:43.10-05:00",
    "${{vars.suffix}}",
    "${{vars.runs}}",
    "${{vars.nope}}",
    "${{env.HOME}}",
    "${{env.MLRUN_FUZZ_UNSET}}",
    "${{inputs.training_data}}",
    "${{search_space.a}}",
    "${{outputs.x}}",
    "${{name}}",
    "${{ }}",
    "${{",
    "}}",
    "${{vars}}",
    "${{bad.ns}}",
    "azureml:aml-cluster",
    "azureml:",
    "https://example.invalid/data.csv",
    "wasbs://c@a.blob.core.windows.net/x",
    "../training",
    "src",
    "jobs/hello-world.yml",
    "../training/data/diabetes.csv",
    "/",
    ".",
    "..",
    "../../../../../../etc/passwd",
    "/dev/zero",
    "/dev/urandom",
    "/dev/null",
    "/proc/self/environ",
    "~/x",
    "~nobody/x",
    "a\x00b",
    "\x00",
    "\ufeff",
    "\u202eevil",
    "\u2028",
    "\x85",
    "\x1b[31mred",
    "\r\n",
    "\t",
    "'",
    '"',
    "\\",
    "%",
    "&a",
    "*a",
    "!!binary",
    "<<",
    "? ",
    "- ",
    ": ",
    "#",
    "a" * 300,
    "é" * 40,
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "日本語",
    "\U0010ffff",
    "amlcompute",
    "computeinstance",
    "sweep",
    "command",
    "grid",
    "random",
    "bayesian",
    "choice",
    "uniform",
    "uri_file",
    "uri_folder",
    "mlflow_model",
    "ro_mount",
    "maximize",
    "hex",
    "cpu-cluster",
    "aml-cluster",
    "mlw-lab",
    "x" * 34,
    "-bad",
    "1abc",
]
KEYS = [
    "name",
    "workspace",
    "computes",
    "jobs",
    "queries",
    "targets",
    "variables",
    "description",
    "type",
    "size",
    "min_instances",
    "max_instances",
    "command",
    "code",
    "compute",
    "inputs",
    "outputs",
    "environment",
    "environment_variables",
    "file",
    "path",
    "mode",
    "trial",
    "search_space",
    "sampling_algorithm",
    "objective",
    "limits",
    "timeout",
    "generate",
    "length",
    "default",
    "local",
    "azure",
    "subscription_id",
    "experiment",
    "filter",
    "order_by",
    "max_results",
    "<<",
    "$schema",
    "tags",
    "identity",
    "experiment_name",
    "display_name",
    "early_termination",
]


def rarely(common, rare, one_in: int = 30):
    """`rare` about once in `one_in` draws: heavy cases (huge, deep, bombs) cost 100x a plain
    one."""
    return st.integers(1, one_in).flatmap(lambda n: rare if n == 1 else common)


# 1,000 to 60,000 characters (of "${{vars.suffix}}" too: 3,750 expressions, not 960 KB of them,
# which cost 0.5 s of PyYAML scanning per case and checked nothing more)
huge_strings = st.builds(
    lambda c, n: c * (n // len(c)),
    st.sampled_from(["a", "é", "\x00", "${{vars.suffix}}", "\U0001f600", "-", " "]),
    st.integers(1_000, 60_000),
)
scalars = rarely(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(-(2**70), 2**70),
        st.sampled_from(
            [0, -1, 1, 2, 32, 33, 10**6, 10**9, 2**31, 2**63, 10**30, 10**4000, -(10**4000)]
        ),
        st.floats(),
        st.text(max_size=30),
        st.sampled_from(NASTY_STRINGS),
        st.text(
            st.characters(codec="utf-8", categories=["Cc", "Cf", "Zl", "Zp", "Co", "Mn"]),
            max_size=10,
        ),
    ),
    huge_strings,
)
keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=12), st.sampled_from(NASTY_STRINGS))
values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(keys, kids, max_size=4),
    max_leaves=8,
)


def _nested(depth: int, leaf, how: str):
    for _ in range(depth):
        leaf = [leaf] if how == "list" else {"a": leaf}
    return leaf


# --- structural mutations ------------------------------------------------------------------------


def _paths(node, path=(), seen=None):
    """Every (path, value) of a plain-data tree, parents before children; a shared (or recursive)
    container is entered once, and not deeper than 40 levels."""
    seen = set() if seen is None else seen
    yield path, node
    if not isinstance(node, (dict, list)) or id(node) in seen or len(path) > 40:
        return
    seen.add(id(node))
    items = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
    for k, v in items:
        yield from _paths(v, path + (k,), seen)


def _get(root, path):
    for p in path:
        root = root[p]
    return root


mutation = st.tuples(
    st.sampled_from(
        ["drop", "rename", "retype", "retype", "share", "nest", "add", "wrap", "sequence"]
    ),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    values,
    keys,
    st.integers(1, 120),
)


def mutate(data, op, at, other, value, key, depth):
    """Apply one mutation to the tree `data` (in place where it can; returns the new root)."""
    paths = [p for p, _ in _paths(data)]
    path = paths[at % len(paths)]
    if not path:
        return {
            "drop": None,
            "retype": value,
            "nest": _nested(depth, data, "list"),
            "wrap": [data],
            "sequence": [data, data],
        }.get(op, data)
    parent, last = _get(data, path[:-1]), path[-1]
    if op == "drop":
        del parent[last]
    elif op == "rename" and isinstance(parent, dict):
        parent[key] = parent.pop(last)
    elif op == "retype":
        parent[last] = value
    elif op == "share":  # the same object twice: dumped as an anchor and an alias (maybe recursive)
        parent[last] = _get(data, paths[other % len(paths)])
    elif op == "nest":
        parent[last] = _nested(depth, parent[last], "list" if depth % 2 else "dict")
    elif op == "add" and isinstance(parent[last], dict):
        parent[last][key] = value
    elif op == "wrap":
        parent[last] = [parent[last]]
    elif op == "sequence" and isinstance(parent[last], dict):
        parent[last] = list(parent[last].items()) if depth % 2 else list(parent[last])
    return data


def dump(data, flow: bool, unicode: bool, width: int) -> bytes:
    try:
        text = yaml.safe_dump(
            data, default_flow_style=flow, allow_unicode=unicode, width=width, sort_keys=False
        )
    except (RecursionError, ValueError):
        text = yaml.safe_dump(str(data)[:10_000])
    return text.encode("utf-8", "surrogatepass")


@given(
    seed=st.sampled_from(sorted(SEEDS)),
    mutations=st.lists(mutation, min_size=1, max_size=4),
    flow=st.booleans(),
    unicode=st.booleans(),
    width=st.sampled_from([40, 80, 10_000]),
    command=st.sampled_from(["validate", "validate", "plan"]),
)
def _structural(seed, mutations, flow, unicode, width, command):
    import copy

    lab = LAB["lab"]
    data = copy.deepcopy(lab["data"][seed])
    for m in mutations:
        data = mutate(data, *m)
    exercise(lab, dump(data, flow, unicode, width), command, "structural")


# --- textual mutations ---------------------------------------------------------------------------


def alias_bomb(width: int, depth: int) -> str:
    lines = ["{l0: &l0 [" + ",".join(["lol"] * width) + "]"]
    lines += [f", l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * width) + "]" for i in range(1, depth)]
    return "".join(lines) + "}"


LIGHT_SNIPPETS = st.one_of(
    st.sampled_from(
        [
            "!!python/object/apply:os.system ['echo pwned > pwned']",
            "!!python/object:__main__.X {a: 1}",
            "!!python/name:os.system",
            "!!python/module:os",
            "!!binary aGVsbG8=",
            "!!binary '@@@'",
            "!custom x",
            "!<tag:example.com,2000:x> y",
            "!!set {a, b}",
            "!!omap [a: 1]",
            "!!pairs [a: 1]",
            "!!timestamp 2001-12-14",
            "!!int 0x1F",
            "!!int notanint",
            "!!float xyz",
            "!!bool maybe",
            "!!null x",
            "!!str 1",
            "!!map [1]",
            "!!seq {a: 1}",
            "!!merge x",
            "&anchor {a: 1}",
            "*undefined",
            "&a [*a]",
            "&m {<<: *m}",
            "{<<: 1}",
            "{<<: [1, {a: 1}]}",
            "{? [a, b]: c}",
            "{? {a: 1}: c}",
            "[a, b",
            "{a: 1",
            "'unclosed",
            '"\\x00\\uD800"',
            '"\\0\\e\\N\\_\\L\\P"',
            "|\n  literal\n   more",
            ">-\n  folded",
            "- a\n- b",
            "---\nname: x",
            "...",
            "%YAML 1.1\n---\na",
            "%TAG !e! tag:example.com,2000:\n--- !e!x y",
            "@x",
            "`x",
            "\t1",
            "${{vars.suffix}}",
            "'${{vars.nope}}'",
            "${{ env.MLRUN_FUZZ_UNSET }}",
            "{type: sweep}",
            "{file: /dev/zero}",
            "{file: /dev/urandom}",
            '{file: "x\\0y"}',
            "{file: ..}",
            "{file: /}",
            "{file: jobs/hello-world.yml}",
            "{generate: hex, length: -3}",
            "{generate: hex, length: 10000000000}",
            "{generate: hex, length: 0}",
            "{type: uri_file, path: /dev/zero}",
            "{type: mlflow_model, path: /dev/zero}",
            "{type: uri_folder, path: /proc/self}",
            "/dev/zero",
            "1e999",
            "-.inf",
            ".NaN",
            "0b1010",
            "0o777",
            "190:20:30",
            "-0",
            "+12",
            "1_000_000",
        ]
    ),
    st.sampled_from(
        [
            "99999999999999999999999",
            "0x" + "f" * 40,
            "[[[[[[[[[[]]]]]]]]]]",
            "{a: {b: {c: 1}}}",
            "{x: &x [1, 2], y: *x, z: *x}",
        ]
    ),
    st.builds(
        lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"', st.text(max_size=40)
    ),
    st.sampled_from(NASTY_STRINGS),
    st.text(max_size=40),
)
HEAVY_SNIPPETS = st.one_of(  # huge numbers, deep nesting, alias bombs, huge strings
    st.builds(lambda n: "9" * n, st.integers(10, 6000)),
    st.builds(lambda n: "0x" + "f" * n, st.integers(10, 6000)),
    st.builds(lambda n: "-" + "1" * n + ".5e3", st.integers(10, 6000)),
    st.builds(lambda n: "1:" + "59:" * n + "1", st.integers(1, 2000)),
    st.builds(lambda n: "[" * n + "]" * n, st.integers(1, 3000)),
    st.builds(lambda n: "{a: " * n + "1" + "}" * n, st.integers(1, 3000)),
    st.builds(
        lambda n: "".join(f"\n{'  ' * (i + 1)}k{i}:" for i in range(n)) + " 1", st.integers(1, 400)
    ),
    st.builds(lambda n: "".join(f"\n{' ' * i}- " for i in range(n)) + "1", st.integers(1, 400)),
    st.builds(alias_bomb, st.integers(2, 12), st.integers(2, 9)),
    huge_strings,
)
JUNK = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [
            b"\x00",
            b"\xff",
            b"\xfe\xff",
            b"\xff\xfe",
            b"\xef\xbb\xbf",
            b"\xed\xa0\x80",
            b"\xc3(",
            b"\xf4\x90\x80\x80",
            b"\xc0\xaf",
            b"\r",
            b"\x1b",
            b"\x7f",
            b"\x85",
            b"\xe2\x80\xa8",
            b"\t",
            b"\x0c",
            b"\x00" * 1000,
        ]
    ),
)
edit = st.tuples(
    st.sampled_from(
        [
            "snippet-value",
            "snippet-line",
            "snippet-at",
            "junk",
            "delete",
            "duplicate",
            "swap-lines",
            "indent",
        ]
    ),
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    rarely(LIGHT_SNIPPETS, HEAVY_SNIPPETS, 40),
    JUNK,
)


def edit_text(raw: bytes, op, at, span, snippet, junk) -> bytes:
    lines = raw.split(b"\n")
    i = at % len(lines)
    line, body = lines[i], snippet.encode("utf-8", "surrogatepass")
    if op == "snippet-value":  # the value of some key becomes the snippet
        head, sep, _ = line.partition(b": ")
        lines[i] = head + b": " + body if sep else line + b" " + body
    elif op == "snippet-line":  # a new key at that line's indentation
        indent = line[: len(line) - len(line.lstrip(b" "))]
        lines.insert(i, indent + b"k" + str(span % 97).encode() + b": " + body)
    elif op == "snippet-at":
        pos = at % (len(raw) + 1)
        return raw[:pos] + body + raw[pos:]
    elif op == "junk":
        pos = at % (len(raw) + 1)
        return raw[:pos] + junk + raw[pos + span % 3 :]
    elif op == "delete":
        pos = at % (len(raw) + 1)
        return raw[:pos] + raw[pos + span % 40 :]
    elif op == "duplicate":  # a line again: duplicate keys, mostly
        lines.insert(i, line)
    elif op == "swap-lines":
        j = span % len(lines)
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "indent":
        lines[i] = b" " * (span % 5) + line.lstrip(b" ") if span % 2 else line[span % 3 :]
    return b"\n".join(lines)


@given(
    seed=st.sampled_from(sorted(SEEDS)),
    edits=st.lists(edit, min_size=1, max_size=3),
    command=st.sampled_from(["validate", "validate", "plan"]),
)
def _textual(seed, edits, command):
    lab = LAB["lab"]
    raw = lab["seeds"][seed]
    for e in edits:
        raw = edit_text(raw, *e)
    exercise(lab, raw, command, "textual")


@given(
    seed=st.sampled_from(sorted(SEEDS)),
    op=st.sampled_from(["snippet-value", "snippet-line", "snippet-at"]),
    at=st.integers(0, 10**6),
    span=st.integers(0, 10**6),
    snippet=HEAVY_SNIPPETS,
    command=st.sampled_from(["validate", "validate", "plan"]),
)
def _heavy(seed, op, at, span, snippet, command):
    lab = LAB["lab"]
    exercise(lab, edit_text(lab["seeds"][seed], op, at, span, snippet, b""), command, "heavy")


ENCODINGS = ["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "utf-8-sig"]


@given(
    seed=st.sampled_from(sorted(SEEDS)),
    how=st.sampled_from(
        ["random", "prefix", "suffix", "encode", "nul", "truncate", "crlf", "only-junk"]
    ),
    junk=st.binary(max_size=200),
    at=st.integers(0, 10**6),
    encoding=st.sampled_from(ENCODINGS),
    command=st.sampled_from(["validate", "validate", "plan"]),
)
def _binary(seed, how, junk, at, encoding, command):
    lab = LAB["lab"]
    raw = lab["seeds"][seed]
    pos = at % (len(raw) + 1)
    data = {
        "random": lambda: raw[:pos] + junk + raw[pos + len(junk) :],
        "prefix": lambda: junk[:4] + raw,
        "suffix": lambda: raw + junk,
        "encode": lambda: lab["text"][seed].encode(encoding, "replace"),
        "nul": lambda: raw[:pos] + b"\x00" + raw[pos:],
        "truncate": lambda: raw[:pos],
        "crlf": lambda: raw.replace(b"\n", [b"\r\n", b"\r", b"\x85", b"\xe2\x80\xa8"][at % 4]),
        "only-junk": lambda: junk,
    }[how]()
    exercise(lab, data, command, "binary")


# --- the tests: several @given runs, each with its own budget ------------------------------------

# Every suite run: 1,600 cases (derandomized: the same ones each run). MLRUN_FUZZ=full: 5,200.
FULL = {"structural": 2000, "textual": 2000, "heavy": 300, "binary": 900}
QUICK = {"structural": 600, "textual": 600, "heavy": 100, "binary": 300}
BUDGET = FULL if os.environ.get("MLRUN_FUZZ") == "full" else QUICK


LAB: dict = {}  # the lab of the running test: kept out of the examples hypothesis prints


def _drive(fuzz, lab, kind):
    COUNT.pop(kind, None)
    LAB["lab"] = lab
    children = psutil.Process().children(
        recursive=True
    )  # per case, the audit hook sees processes start
    settings(max_examples=BUDGET[kind], **FAST)(fuzz)()
    assert COUNT.get(kind, 0) >= BUDGET[kind]
    assert psutil.Process().children(recursive=True) == children


def test_seeds_are_valid_and_plan_cleanly(lab):
    for name in SEEDS:
        assert exercise(lab, lab["seeds"][name], "validate", "seed") == 0
        assert exercise(lab, lab["seeds"][name], "plan", "seed") == 0


def test_structural_mutations(lab):
    _drive(_structural, lab, "structural")


def test_textual_mutations(lab):
    _drive(_textual, lab, "textual")


def test_heavy_snippets(lab):
    _drive(_heavy, lab, "heavy")


def test_binary_junk(lab):
    _drive(_binary, lab, "binary")


def test_enough_cases_per_run():
    """At least 1,000 cases in every run of this module, 5,000 in a full one (MLRUN_FUZZ=full);
    each budget is counted as run (_drive)."""
    assert sum(QUICK.values()) >= 1000 and sum(FULL.values()) >= 5000
    assert all(QUICK[k] <= FULL[k] for k in FULL)


# --- the guard itself must be able to fail -------------------------------------------------------


def test_guard_sees_writes_processes_and_requests(guard, tmp_path):
    GUARD.seen.clear()
    GUARD.armed = True
    try:
        (tmp_path / "x").write_text("x")
        (tmp_path / "d").mkdir()
        with contextlib.suppress(OSError):
            socket.getaddrinfo("localhost", 80)
        import subprocess

        subprocess.run([sys.executable, "-c", "pass"], check=True)
    finally:
        GUARD.armed = False
    events = {e for e, _ in GUARD.seen}
    assert {"open", "os.mkdir", "socket.getaddrinfo", "subprocess.Popen"} <= events


# --- what the fuzzer found: each a plain regression test, messages word for word -----------------

BASE = "name: lab\nworkspace: {name: mlw-lab}\n"


def _validate(mlrun, tmp_path, text: str | bytes) -> tuple[int, list[str]]:
    spec = tmp_path / "lab.yaml"
    spec.write_bytes(text if isinstance(text, bytes) else text.encode())
    code, out, err = mlrun("validate", "lab.yaml", cwd=tmp_path)
    assert "Traceback" not in err
    return code, err.splitlines()


def test_an_integer_too_long_for_python_is_a_problem_not_a_crash(mlrun, tmp_path):
    # int() refuses more than 4,300 digits (ValueError); a hex one converts but cannot be printed
    text = (
        BASE + f"computes:\n  cpu: {{type: amlcompute, max_instances: {'9' * 5000}}}\n"
        f"  gpu: {{type: amlcompute, min_instances: -0x{'f' * 4000}}}\n"
    )
    assert _validate(mlrun, tmp_path, text) == (
        1,
        [
            "lab.yaml:4:42: error: $.computes.cpu.max_instances: "
            "the number '99999999999999999999...' is too large (5000 characters)",
            "lab.yaml:5:42: error: $.computes.gpu.min_instances: "
            "the number '-0xfffffffffffffffff...' is too large (4003 characters)",
            "lab.yaml: 2 errors, 0 warnings",
        ],
    )


def test_a_nul_in_an_include_path_is_a_problem(mlrun, tmp_path):
    code, err = _validate(mlrun, tmp_path, BASE + 'jobs:\n  a: {file: "x\\0y"}\n')
    assert (code, err) == (
        1,
        [
            "lab.yaml:4:13: error: $.jobs.a.file: include file 'x\\x00y' cannot be read "
            "(embedded null byte)",
            "lab.yaml: 1 error, 0 warnings",
        ],
    )


def test_a_path_with_a_part_too_long_for_the_system_does_not_exist(mlrun, tmp_path):
    long = "d" * 300
    text = BASE + (
        f"computes: {{cpu: {{type: amlcompute}}}}\njobs:\n"
        f"  a: {{command: x, compute: cpu, code: {long}}}\n"
    )
    assert _validate(mlrun, tmp_path, text) == (
        1,
        [
            f"lab.yaml:5:39: error: $.jobs.a.code: code folder '{long}' does not exist",
            "lab.yaml: 1 error, 0 warnings",
        ],
    )


def test_nesting_deeper_than_the_limit_is_one_problem_where_it_happens(mlrun, tmp_path):
    from runner.yamldoc import MAX_DEPTH

    code, err = _validate(mlrun, tmp_path, BASE + "description: " + "[" * 150 + "]" * 150 + "\n")
    assert (code, err) == (
        1,
        [
            f"lab.yaml:3:{13 + MAX_DEPTH}: error: $.description{'[0]' * MAX_DEPTH}: "
            f"YAML nesting is too deep (more than {MAX_DEPTH} levels)",
            "lab.yaml: 1 error, 0 warnings",
        ],
    )


def test_nesting_far_deeper_than_the_limit_is_refused_without_reading_on(
    mlrun, tmp_path, monkeypatch
):
    # was: 3,000 '[' cost 2 s of CPU (PyYAML rechecks every open '[' at each token, and the
    # composer went on to Python's recursion limit), then one problem at 1:1. The tokens read
    # are counted, not the time taken: past MAX_TEXT_DEPTH levels the parse stops.
    from runner import yamldoc

    fetched = []
    fetch = yamldoc._Loader.fetch_more_tokens
    monkeypatch.setattr(
        yamldoc._Loader, "fetch_more_tokens", lambda self: fetched.append(1) or fetch(self)
    )
    flow = "description: " + "[" * 3000 + "]" * 3000 + "\n"
    assert _validate(mlrun, tmp_path, BASE + flow) == (
        1,
        [
            f"lab.yaml:3:{13 + yamldoc.MAX_DEPTH}: error: YAML nesting is too deep "
            f"(more than {yamldoc.MAX_DEPTH} levels)",
            "lab.yaml: 1 error, 0 warnings",
        ],
    )
    assert 0 < len(fetched) < yamldoc.MAX_TEXT_DEPTH + 20
    block = "description:" + "".join(f"\n{'  ' * (i + 1)}k{i}:" for i in range(300)) + " 1\n"
    assert _validate(mlrun, tmp_path, BASE + block) == (
        1,
        [
            f"lab.yaml:{3 + yamldoc.MAX_DEPTH}:{2 * yamldoc.MAX_DEPTH + 1}: error: YAML nesting is "
            f"too deep (more than {yamldoc.MAX_DEPTH} levels)",
            "lab.yaml: 1 error, 0 warnings",
        ],
    )


def test_a_document_that_contains_itself_is_one_problem(mlrun, tmp_path):
    # was: nesting too deep, then one 'not set' error per level of the partial expansion (1.6 MB)
    text = (
        "&root\nname: lab\nworkspace: {name: mlw-lab}\n"
        "targets: {azure: {subscription_id: '${{env.MLRUN_FUZZ_UNSET}}'}}\n"
        "again: *root\n"
    )
    assert _validate(mlrun, tmp_path, text) == (
        1,
        [
            "lab.yaml:5:1: error: $.again: this alias refers to an anchor that contains it: "
            "the value would contain itself",
            "lab.yaml:5:1: error: $.again: unknown section (sections: components, computes, data, "
            "datastores, description, endpoints, environments, expires_after, jobs, models, name, "
            "queries, schedules, targets, variables, workspace)",
            "lab.yaml: 2 errors, 0 warnings",
        ],
    )


def test_a_control_character_is_located_by_line_and_column(mlrun, tmp_path):
    assert _validate(mlrun, tmp_path, BASE + "description: a\x01b\n") == (
        1,
        [
            "lab.yaml:3:15: error: YAML syntax: the character #x0001 is not allowed "
            "(special characters are not allowed)",
            "lab.yaml: 1 error, 0 warnings",
        ],
    )


def test_control_characters_in_quoted_values_are_escaped(mlrun, tmp_path):
    assert _validate(
        mlrun, tmp_path, 'name: "lab\\e[2J\\nfake.yaml:1:1: error: x"\nworkspace: {name: mlw-lab}\n'
    ) == (
        1,
        [
            "lab.yaml:1:7: error: $.name: 'lab\\x1b[2J\\nfake.yaml:1:1: error: x' is not valid: "
            "use lowercase letters, digits and '-', starting with a letter or digit",
            "lab.yaml: 1 error, 0 warnings",
        ],
    )


def test_bytes_that_are_not_utf8_are_located_by_line_and_column(mlrun, tmp_path):
    assert _validate(mlrun, tmp_path, BASE.encode() + b"description: caf\xe9\n") == (
        1,
        ["lab.yaml:3:17: error: not UTF-8 text (invalid continuation byte at byte 53)"],
    )
