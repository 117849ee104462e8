"""Azure faults as a matrix: each step of the seed lab against the kinds of failure Azure answers.

The lab is a slimmed copy of specs/mlflow-tracking.yaml with the same steps (resource group,
workspace, a compute instance, a cluster, one job that runs in well under a second, its run read
back through azureml-mlflow). Each case gets its own names (`--var suffix=...`) and its fault
rules carry its own tag (cleared by that tag), so the cases run concurrently on the session's
emulator. A failing apply must end in a clear message: exit 1, a few plain lines naming the
resource and what to do, no traceback, no secrets. Then either `destroy -y` runs at once, or the
fault is cleared and a re-apply must succeed (for some, the next plan has no changes) first;
a destroy must leave nothing mlrun created (checked on the emulator's state) and keep a resource
group that existed before. The transient faults (which the SDKs retry, so the apply succeeds)
are injected into those converging re-applies: a full lab run each is what the budget allows.

The full matrix (7 steps x 8 fault kinds, a full lab each) does not fit the time budget, so this
is a Latin-square-style cover: every step meets at least one persistent and most a transient
fault, and every fault kind (500/503, 429 with Retry-After, 409, 403, 400, a failed long-running
operation, a dropped connection, a failing job) appears at least once. Connection timeouts are
not covered: the SDKs wait minutes for a read timeout.

step        | fault that fails the apply            | transient fault in the re-apply (must succeed)
rg          | 403; 409 (re-applied)                 | connection reset once
workspace   | failed deployment (re-applied); 400;  | 429 with Retry-After once
            |   503 on the GET after the deployment |
            |   in a pre-existing group (re-applied)|
instance    | failed LRO                            |
cluster     | connection reset always (re-applied)  | 500 once on the code upload (next step)
job submit  | 403 on the job PUT (re-applied)       | 503 once on MLflow runs/get (next steps)
job wait    | the job fails (re-applied);           |
            |   503 on the status poll (re-applied) |
metrics     | 403 on MLflow runs/get                |
"""

import re
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
from conftest import ROOT

pytestmark = pytest.mark.azure
# Per mlrun command, a runaway guard, not a speed test: the slowest took 56 s with the matrix's
# cases running at once (the project's 2-core machine, 2026-12-02); it only stops a hung command.
COMMAND_TIMEOUT = 600

LAB = textwrap.dedent("""\
    name: faults
    variables:
      suffix: x
      exit: 0
    workspace:
      name: ws-${{vars.suffix}}
      resource_group: rg-${{vars.suffix}}
      location: eastus
    computes:
      ci-${{vars.suffix}}:
        type: computeinstance
        size: STANDARD_DS11_V2
      cl:
        type: amlcompute
        size: STANDARD_DS11_V2
        min_instances: 0
        max_instances: 1
    jobs:
      tiny:
        code: code
        command: echo tiny; exit ${{vars.exit}}
        environment: azureml:AzureML-sklearn-1.5@latest
        compute: cl
        experiment_name: faults
    targets:
      azure:
        subscription_id: ${{env.AZURE_SUBSCRIPTION_ID}}
    """)

SECRETS = ("access_token", "Bearer ", "sig=", "eyJ", "AccountKey=")


@dataclass
class Case:
    id: str
    step: str
    rules: list  # fault rules for the first apply; "{s}" in path_regex is the case's suffix
    error: str  # the words its error line must hold ("{s}": the suffix)
    converge: list | None = (
        None  # None: destroy at once; else rules for a re-apply that must succeed
    )
    existing_rg: bool = False
    vars: dict = field(default_factory=dict)
    replan: bool = False  # after converging, the next plan must have no changes (a plan costs time)


WS = r"/workspaces/ws-{s}"
MLFLOW_GET = WS + r"/api/2\.0/mlflow/runs/get$"
CASES = [
    Case(
        "rg-403",
        "rg",
        [dict(method="PUT", path_regex=r"/resourcegroups/rg-{s}$", status=403, count=-1)],
        "not allowed: resource_group.rg-{s}: Injected fault: HTTP 403. "
        "You need the Contributor role",
    ),
    Case(
        "rg-409",
        "rg",
        [dict(method="PUT", path_regex=r"/resourcegroups/rg-{s}$", status=409, count=-1)],
        "the name is taken: resource_group.rg-{s}: ",
        converge=[dict(method="PUT", path_regex=r"/resourcegroups/rg-{s}$", reset=True)],
    ),
    Case(
        "ws-deployment-failed",
        "workspace",
        [
            dict(
                method="PUT",
                path_regex=r"/deployments/ws-{s}-",
                async_failure={
                    "code": "InternalServerError",
                    "message": "The workspace could not be provisioned.",
                },
            )
        ],
        "Azure could not finish it: workspace.ws-{s}: The workspace could not be provisioned. "
        "Apply again",
        converge=[
            dict(method="PUT", path_regex=r"/deployments/ws-{s}-", status=429, retry_after=1)
        ],
    ),
    Case(
        "ws-400",
        "workspace",
        [dict(method="PUT", path_regex=r"/deployments/ws-{s}-", status=400, count=-1)],
        "Azure answered 400: workspace.ws-{s}: Injected fault: HTTP 400. "
        "Check this resource's fields",
    ),
    Case(
        "ws-503-after-create",
        "workspace",  # skip: the plan's GET and the SDK's GET before the deployment
        [dict(method="GET", path_regex=WS + "$", status=503, count=-1, skip=2)],
        "Azure answered 503: workspace.ws-{s}: Injected fault: HTTP 503. This is usually temporary",
        converge=[],
        existing_rg=True,
        replan=True,
    ),
    Case(
        "ci-lro-failed",
        "instance",
        [
            dict(
                method="PUT",
                path_regex=r"/computes/ci-{s}$",
                async_failure={
                    "code": "ComputeInstanceCreationFailed",
                    "message": "Allocation failed in eastus.",
                },
            )
        ],
        "Azure could not finish it: compute.ci-{s}: Allocation failed in eastus. Apply again",
    ),
    Case(
        "cluster-reset",
        "cluster",
        [dict(method="PUT", path_regex=WS + r"/computes/cl$", reset=True, count=-1)],
        "could not reach Azure (still after retries): compute.cl: ",
        converge=[
            dict(method="POST", path_regex=WS + r"/codes/.*/startPendingUpload$", status=500)
        ],
    ),
    Case(
        "submit-403",
        "submit",
        [dict(method="PUT", path_regex=WS + r"/jobs/[^/]+$", status=403, count=-1)],
        "not allowed: job.tiny: Injected fault: HTTP 403. You need the Contributor role",
        converge=[dict(method="GET", path_regex=MLFLOW_GET, status=503)],
        replan=True,
    ),
    Case(
        "job-fails",
        "wait",
        [],
        "1 job did not complete: tiny (run ",
        converge=[],
        vars={"exit": "3"},
        replan=True,
    ),
    Case(
        "poll-503",
        "wait",
        [dict(method="GET", path_regex=WS + r"/jobs/[^/]+$", status=503, count=-1)],
        "Azure answered 503: run ",
        converge=[],
        replan=True,
    ),
    Case(
        "mlflow-403",
        "metrics",
        [dict(method="GET", path_regex=MLFLOW_GET, status=403, count=-1)],
        "not allowed: the MLflow of workspace.ws-{s}: Injected fault: HTTP 403. "
        "You need the Contributor role",
    ),
]


def _suffix(case: Case) -> str:
    return "f" + re.sub(r"[^a-z0-9]", "", case.id)[:14]


class Lab:
    """One case's folder, commands and view of the emulator."""

    def __init__(self, emulator, root, case: Case):
        self.emulator, self.case, self.s = emulator, case, _suffix(case)
        self.root = root / self.s
        (self.root / "code").mkdir(parents=True)
        (self.root / "code" / "tiny.py").write_text("print('tiny')\n")
        (self.root / "lab.yaml").write_text(LAB)
        self.env = {**emulator.env, "PYTHONPATH": f"{emulator.env['PYTHONPATH']}:{ROOT}"}
        self.log = []

    def mlrun(self, *args, vars=None):
        extra = [
            a for k, v in {"suffix": self.s, **(vars or {})}.items() for a in ("--var", f"{k}={v}")
        ]
        proc = self.emulator.mlrun(
            *args,
            "lab.yaml",
            "--target",
            "azure",
            *extra,
            cwd=self.root,
            env=self.env,
            timeout=COMMAND_TIMEOUT,
        )
        self.log.append((args[0], proc))
        return proc

    def inject(self, rules):
        rules = [
            {**r, "path_regex": r["path_regex"].replace("{s}", self.s), "tag": self.s}
            for r in rules
        ]
        if rules:
            self.emulator.call("POST", "/_emulator/faults", rules)

    def faulted(self, since) -> list:
        """This case's requests since `since` that were answered by a fault rule."""
        return [r for r in self.emulator.requests(since) if r["fault"] and self.s in r["path"]]

    def clear(self):
        self.emulator.call("DELETE", f"/_emulator/faults?tag={self.s}")

    def left(self) -> list:
        """What of this case's resources the emulator still holds (a group's deployment history
        aside: the SDK's records of how the workspace was made, which Azure keeps too)."""
        ids = self.emulator.call("GET", "/_emulator/state")["resources"]
        return sorted(
            i
            for i in ids
            if (f"/resourcegroups/rg-{self.s}" in i or f"/workspaces/ws-{self.s}" in i)
            and "/microsoft.resources/deployments/" not in i
        )


def existing_group(emulator, name):
    """A resource group made before mlrun runs, straight through ARM."""
    sub = emulator.subscription
    emulator.call(
        "PUT",
        f"/subscriptions/{sub}/resourcegroups/{name}?api-version=2025-04-01",
        {"location": "eastus"},
    )


def run_case(emulator, root, case: Case) -> dict:
    lab = Lab(emulator, root, case)
    out = {"lab": lab, "s": lab.s}
    if case.existing_rg:
        existing_group(emulator, f"rg-{lab.s}")
    for step, rules, args in (("apply", case.rules, case.vars), ("reapply", case.converge, {})):
        if rules is None:
            break
        mark = emulator.mark()
        lab.inject(rules)
        try:
            out[step] = lab.mlrun("apply", "-y", vars=args)
        finally:
            lab.clear()
        out[f"{step}_faulted"] = lab.faulted(mark)
    if case.replan:
        out["replan"] = lab.mlrun("plan")
    out["destroy"] = lab.mlrun("destroy", "-y")
    out["left"] = lab.left()
    return out


@pytest.fixture(scope="module")
def matrix(azure_emulator, tmp_path_factory, request):
    """Every selected case, run concurrently (their names and fault tags keep them apart)."""
    selected = {
        item.callspec.params["case"].id
        for item in request.session.items
        if item.module.__name__ == __name__
        and hasattr(item, "callspec")
        and "case" in item.callspec.params
    }
    cases = [c for c in CASES if c.id in selected]
    root = tmp_path_factory.mktemp("faults")
    with ThreadPoolExecutor(max_workers=5) as pool:
        futures = {
            c.id: pool.submit(run_case, azure_emulator, root, c)  # the longest first
            for c in sorted(cases, key=lambda c: c.converge is None)
        }
        results = {}
        for k, f in futures.items():
            try:
                results[k] = f.result()
            except Exception as e:  # noqa: BLE001 - reported by that case's test, not by all
                results[k] = e
    return results


def _show(result) -> str:
    return "\n".join(
        f"--- mlrun {cmd} -> {p.returncode}\n"
        f"stdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}"
        for cmd, p in result["lab"].log
    )


def _clean(proc, result):
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, _show(result)
    for secret in SECRETS:
        assert secret not in proc.stdout + proc.stderr, (secret, _show(result))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault(matrix, case):
    result = matrix[case.id]
    if isinstance(result, Exception):
        raise result
    s = result["s"]
    apply = result["apply"]
    _clean(apply, result)
    if any(
        "async_failure" not in r for r in case.rules
    ):  # the fault was really injected where the case says
        assert result["apply_faulted"], _show(result)
    assert apply.returncode == 1, _show(result)
    lines = apply.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 3, _show(result)
    error = lines[-1]
    assert error.startswith("error: ") and case.error.format(s=s) in error, _show(result)
    assert len(error) < 600, _show(result)
    if case.converge is not None:
        reapply = result["reapply"]
        assert reapply.returncode == 0 and "tiny  Completed" in reapply.stdout, _show(result)
        _clean(reapply, result)
        assert len(result["reapply_faulted"]) == len(case.converge), _show(
            result
        )  # retried through
        if case.replan:
            assert result["replan"].stdout.endswith("No changes. Everything is up to date.\n"), (
                _show(result)
            )
    destroy = result["destroy"]
    assert destroy.returncode == 0, _show(result)
    _clean(destroy, result)
    if case.existing_rg:  # the group that was there before is kept; what mlrun made in it is gone
        assert result["left"] == [
            f"/subscriptions/{result['lab'].emulator.subscription}/resourcegroups/rg-{s}"
        ], (result["left"], _show(result))
    else:
        assert result["left"] == [], (result["left"], _show(result))
