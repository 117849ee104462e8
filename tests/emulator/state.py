"""The emulator's memory: resources by ARM id, long-running operations, fault and delay rules."""

import json
import re
import threading
import time
import uuid


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())


class Operation:
    """An LRO: in progress until done_at, then Succeeded (on_done runs once) or Failed (on_fail)."""

    def __init__(self, op_id, done_at, on_done=None, on_fail=None, error=None):
        self.id, self.done_at, self.error = op_id, done_at, error
        self.on_done, self.on_fail = on_done, on_fail
        self.finished = False
        self.start = now_iso()

    @property
    def status(self):
        if not self.finished:
            return "InProgress"
        return "Failed" if self.error else "Succeeded"


class State:
    def __init__(self, request_log_path=None):
        self.lock = threading.RLock()
        self.resources = {}  # lower-cased ARM id -> resource dict (as answered)
        self.extra = {}  # lower-cased ARM id -> emulator-side data (not answered)
        self.ops = {}
        self.faults = []
        self.delays = []
        self.quota = {"total": 100, "families": {}}  # family limits default to 24 vCPUs
        self.requests = []
        self.tokens = set()  # access tokens /msi/token issued (batch endpoints accept only those)
        self._log = open(request_log_path, "a", buffering=1) if request_log_path else None

    # --- resources ---
    def get(self, rid):
        with self.lock:
            return self.resources.get(rid.lower())

    def put(self, rid, resource, **extra):
        with self.lock:
            self.resources[rid.lower()] = resource
            if extra:
                self.extra.setdefault(rid.lower(), {}).update(extra)
            return resource

    def info(self, rid) -> dict:
        with self.lock:
            return self.extra.setdefault(rid.lower(), {})

    def delete_tree(self, rid):
        """Delete rid and everything below it; returns the removed ids."""
        prefix = rid.lower().rstrip("/")
        with self.lock:
            gone = [k for k in self.resources if k == prefix or k.startswith(prefix + "/")]
            for k in gone:
                self.resources.pop(k)
            return gone

    def children(self, parent, kind):
        """Resources directly under parent/kind/{name}."""
        pat = re.compile(
            re.escape(parent.lower().rstrip("/") + "/" + kind.lower() + "/") + r"[^/]+$"
        )
        with self.lock:
            return [v for k, v in self.resources.items() if pat.match(k)]

    # --- long-running operations ---
    def new_op(self, method, path, on_done=None, on_fail=None, error=None) -> Operation:
        op = Operation(
            uuid.uuid4().hex,
            time.monotonic() + self.delay_for(method, path),
            on_done,
            on_fail,
            error,
        )
        with self.lock:
            self.ops[op.id] = op
        return op

    def settle(self):
        """Finish every operation whose time has come (called before each request is answered)."""
        with self.lock:
            due = [
                op for op in self.ops.values() if not op.finished and op.done_at <= time.monotonic()
            ]
            for op in due:
                op.finished = True
                callback = op.on_fail if op.error else op.on_done
                if callback:
                    callback()

    # --- faults and delays ---
    def add_fault(self, rule: dict):
        rule = {"method": "*", "path_regex": ".*", "count": 1, **rule}
        re.compile(rule["path_regex"])
        with self.lock:
            self.faults.append(rule)
        return rule

    def take_fault(self, method, path, kind):
        """The first rule matching this request; kind 'sync' (a status, or reset: drop the
        connection) or 'async' (async_failure)."""
        with self.lock:
            for rule in self.faults:
                if (kind == "async") != ("async_failure" in rule):
                    continue
                if rule["method"] not in ("*", method) or not re.search(
                    rule["path_regex"], path, re.I
                ):
                    continue
                if rule.get("skip", 0) > 0:  # let the first `skip` matching requests through
                    rule["skip"] -= 1
                    continue
                if rule["count"] > 0:
                    rule["count"] -= 1
                    if rule["count"] == 0:
                        self.faults.remove(rule)
                return rule  # count < 0: forever
        return None

    def add_delay(self, rule: dict):
        rule = {"method": "*", "path_regex": ".*", **rule}
        re.compile(rule["path_regex"])
        with self.lock:
            self.delays.append(rule)
        return rule

    def delay_for(self, method, path) -> float:
        with self.lock:
            for rule in self.delays:
                if rule["method"] in ("*", method) and re.search(rule["path_regex"], path, re.I):
                    return float(rule["seconds"])
        return 0.0

    # --- request log ---
    def log_request(self, entry: dict):
        with self.lock:
            entry["seq"] = len(self.requests)
            self.requests.append(entry)
            if self._log:
                self._log.write(json.dumps(entry) + "\n")
