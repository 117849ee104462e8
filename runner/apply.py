"""Carry out a Plan through a Backend: ordering, concurrency, waiting. It never prints: it emits
Events, and views render them."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from . import batch, endpoints, expiry, fingerprint, pipeline_deployments, planfile, slots
from .backends.base import TERMINAL, Backend
from .changes import CREATE, DESTROY, NOOP, REPLACE, RUN, UPDATE, WAIT, Address, Change, Kind, Plan
from .context import Context
from .endpoints import Endpoint
from .errors import UserError, plural
from .formats import short
from .plan import describe, pipeline_call
from .records import Actual, Run, Submission
from .slots import Lease, Pool
from .spec import Input, Spec
from .state import Lock, State, now

Call = Input | dict[str, Input]  # a batch call's input, or a pipeline deployment's inputs by name


@dataclass(frozen=True)
class Event:
    address: str
    status: str  # creating, created, updating, ..., Queued, Running, Completed, Failed, ...
    message: str = ""
    run: str | None = None
    at: float = field(default_factory=time.monotonic)


Emit = Callable[[Event], None]


class Stalled(RuntimeError):
    """Jobs wait for slots that nothing will give back: a bug in mlrun, never a wait."""


@dataclass
class Outcome:
    runs: dict[str, Run] = field(default_factory=dict)  # job -> final run record
    failed: list = field(default_factory=list)  # job names
    interrupted: bool = False

    def failure(self, spec_path) -> str | None:
        """What to tell the user when some jobs did not complete (None when all did)."""
        if not self.failed:
            return None
        details, logs = [], []
        for n in self.failed:
            run = self.runs[n]
            why, step = why_failed(run)
            details.append(f"{n} (run {short(run['id'])}: {why})")
            logs.append(f"{n}/{step}" if step else n)
        return (
            f"{plural(len(self.failed), 'job')} did not complete: {', '.join(details)}; "
            f"see mlrun logs {spec_path} {logs[0]}"
        )


def why_failed(run: Run) -> tuple[str, str | None]:
    """Why a run did not complete, and a pipeline's first failed step (None: not a pipeline,
    or none of its steps failed): the steps that failed and their reasons, not the controller's
    exit code; else the run's error or status."""
    steps = {k: v for k, v in (run.get("steps") or {}).items() if v.get("status") == "Failed"}
    why = ", ".join(
        f"step {k} failed" + (f" ({v['error']})" if v.get("error") else "")
        for k, v in steps.items()
    )
    return why or run.get("error") or run["status"], next(iter(steps), None)


class Applier:
    def __init__(
        self,
        plan: Plan,
        spec: Spec,
        model: dict,
        backend: Backend,
        state: State,
        emit: Emit,
        detach: bool = False,
    ):
        self.plan, self.spec, self.model, self.backend, self.state = (
            plan,
            spec,
            model,
            backend,
            state,
        )
        self.emit, self.detach = emit, detach
        self.outcome = Outcome()
        self.cancelled = threading.Event()
        self.active: dict[str, Run] = {}  # run id -> run, while it runs
        # jobs of this apply that have ended: a job reading a datastore path another writes
        # waits for it (the plan's `after`)
        self._ended: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        # job slots: an instance runs one job at a time, a cluster max_instances,
        # no compute one per core
        self.pools: dict[str, Pool] = {n: Pool(n, c.slots) for n, c in spec.computes.items()}
        self.pools[""] = Pool("", slots.unbound())  # jobs with no compute

    # --- the whole apply ---------------------------------------------------------------------

    def run(self) -> Outcome:
        by_kind: dict[Kind, list[Change]] = {kind: [] for kind in Kind}
        for c in self.plan.changes:
            by_kind[c.address.kind].append(c)

        def kept(kind: Kind) -> list[Change]:
            return [c for c in by_kind[kind] if c.action != DESTROY]

        def gone(kind: Kind) -> list[Change]:
            return [c for c in by_kind[kind] if c.action == DESTROY]

        jobs = [c for c in by_kind[Kind.JOB] if c.action in (RUN, WAIT)]
        self.adopt_finished()
        self.adopt_existing()
        if jobs:
            self.close_orphans()
        self._parallel(gone(Kind.SCHEDULE), self.change_resource)  # nothing fires from here on
        self._parallel(gone(Kind.JOB), self.forget_job)
        inside = (Kind.COMPUTE, Kind.ENVIRONMENT, Kind.COMPONENT, Kind.DATA)  # made at once
        self._parallel(
            [c for k in (*inside, Kind.DATASTORE) for c in gone(k)], self.change_resource
        )
        # a pipeline component names the spec's other components (Azure ML resolves them when
        # it registers it): made after them
        piped = [c for c in kept(Kind.COMPONENT) if self._is_pipeline_component(c.address.name)]
        stores = (Kind.DATASTORE,)  # before the data assets on their paths
        for kinds in ((Kind.RESOURCE_GROUP,), (Kind.WORKSPACE,), stores, inside):  # outside in
            made = [c for k in kinds for c in kept(k) if c not in piped]
            self._parallel(made, self.change_resource)
        self._parallel(piped, self.change_resource)
        self._parallel(kept(Kind.SCHEDULE), self.change_resource)  # what their jobs use is made
        for c in self.plan.changes:  # what only Azure runs, on a target that is not Azure
            if c.action == NOOP and (c.after or {}).get("azure_only"):
                self.emit(Event(c.address, "skipped", c.reason))
        self.run_jobs(jobs)
        self._parallel(kept(Kind.MODEL), self.register_model)  # what the jobs made
        self._parallel(gone(Kind.INVOKE), self.change_resource)
        self._parallel(kept(Kind.ENDPOINT), self.change_resource)  # then what serves the models
        self._parallel(kept(Kind.DEPLOYMENT), self.deploy)
        self._parallel(gone(Kind.DEPLOYMENT), self.change_resource)
        self._parallel(gone(Kind.ENDPOINT), self.change_resource)
        self._parallel([c for c in kept(Kind.INVOKE) if c.action == RUN], self.invoke)
        self._parallel(gone(Kind.MODEL), self.change_resource)  # once nothing serves them
        self._parallel(gone(Kind.WORKSPACE), self.change_resource)
        self._parallel(gone(Kind.RESOURCE_GROUP), self.change_resource)
        return self.outcome

    def _is_pipeline_component(self, name: str) -> bool:
        comp = self.spec.components.get(name)
        return comp is not None and comp.fields.get("type") == "pipeline"

    def _parallel(
        self, changes: list[Change], fn: Callable[[Change], None], workers: int | None = None
    ) -> None:
        """Run `fn` on each change at once and wait for all of them (one failing does not stop the
        others), then raise the first error in plan order. On Ctrl-C, at any point of the wait:
        cancel what runs, wait for it, re-raise."""
        changes = [c for c in changes if c.action != NOOP]
        if not changes or self.cancelled.is_set():
            return
        with ThreadPoolExecutor(max_workers=workers or len(changes)) as pool:
            futures = [pool.submit(fn, c) for c in changes]
            try:
                self._wait(futures)
            except KeyboardInterrupt:
                self.interrupt()
                self._wait(futures)
                raise
        for f in futures:
            f.result()

    def run_jobs(self, changes: list[Change]) -> None:
        """Each job once its compute has a slot for it (in plan order, compute by compute), with a
        thread per job started or waited for, not per job queued; then, as _parallel, wait for all
        and raise the first error in plan order. Jobs that wait for slots while no job runs or
        starts are a bug (Stalled), never a wait."""
        if not changes or self.cancelled.is_set():
            return
        queues: dict[Pool | None, list[Change]] = {}
        self._ended.update({c.address.name: threading.Event() for c in changes})
        for c in changes:
            if c.action == RUN:
                self.emit(Event(c.address, "Queued", c.reason))
            queues.setdefault(self._pool_of(c), []).append(c)
        futures: dict[str, Future] = {}  # by job, while it runs or if it raised
        left: dict[Pool | None, list[Change]] = dict(queues)  # what each feeder has not started
        lock = threading.Lock()

        def forget(name: str, future: Future) -> None:  # a job that ended well: nothing kept
            if future.exception() is None:
                with lock:
                    futures.pop(name, None)

        def running() -> list[Future]:
            with lock:
                return list(futures.values())

        def stalled() -> str | None:
            """What waits in vain, when some job waits for slots and none runs or starts."""
            if any(not f.done() for f in running()):
                return None
            for pool, queue in left.items():
                if pool is not None and queue and pool.blocked():
                    owner = f"compute {pool.name}" if pool.name else "jobs with no compute"
                    names = ", ".join(c.address.name for c in queue)
                    return (
                        f"apply stalled: {plural(len(queue), 'job')} ({names}) wait for the "
                        f"slots of {owner} ({pool.describe()}) while no job runs or starts"
                    )
            return None

        with ThreadPoolExecutor(max_workers=len(changes)) as executor:

            def feed(pool: Pool | None, queue: list[Change]) -> None:
                for i, change in enumerate(queue):
                    count = self.spec.jobs[change.address.name].instance_count
                    lease = slots.NONE if pool is None else pool.take(count)
                    if lease is None:  # the apply stops
                        for rest in queue[i:]:
                            self.emit(Event(rest.address, "Canceled", "not started"))
                        left[pool] = []
                        return
                    try:  # the lease is the job's from here: run_job gives it back
                        future = executor.submit(self.run_job, change, lease)
                    except BaseException:
                        lease.release()
                        raise
                    with lock:
                        futures[change.address.name] = future
                    left[pool] = queue[i + 1 :]
                    future.add_done_callback(functools.partial(forget, change.address.name))

            with ThreadPoolExecutor(max_workers=len(queues)) as feeders:
                fed = [feeders.submit(feed, p, q) for p, q in queues.items()]
                try:
                    self._wait(fed, watch=stalled)
                    self._wait(running())
                except KeyboardInterrupt:
                    self.interrupt()
                    self._wait(fed)
                    self._wait(running())
                    raise
                except Stalled:
                    self._close_pools()
                    raise
        for f in fed:
            f.result()
        for c in changes:
            if c.address.name in futures:
                futures[c.address.name].result()

    def _pool_of(self, change: Change) -> Pool | None:
        """The pool whose slots a job takes: None for one that takes none (a wait for a run that
        already holds its nodes, a pipeline: its steps take them)."""
        if change.action == WAIT:
            return None
        job = self.spec.jobs[change.address.name]
        if job.is_pipeline:
            return None
        return self.pools.get(job.compute or "", self.pools[""])

    def _close_pools(self) -> None:
        for pool in self.pools.values():
            pool.close()

    @staticmethod
    def _wait(futures: list[Future], watch: Callable[[], str | None] | None = None) -> None:
        """Wait for `futures` in short waits, so the main thread sees Ctrl-C; `watch` says what
        is stuck, if anything: stuck at two looks in a row raises Stalled."""
        pending: set[Future] | list[Future] = futures
        stuck = None
        while pending:
            _, pending = wait(pending, timeout=0.25)
            if pending and watch is not None:
                now = watch()
                if now is not None and stuck is not None:
                    raise Stalled(now)
                stuck = now

    def interrupt(self) -> None:
        self.cancelled.set()
        self._close_pools()  # a feeder waiting for a slot stops at once
        self.outcome.interrupted = True
        self.emit(Event("apply", "interrupted", "stopping running jobs"))
        with self._lock:
            runs = list(self.active.values())
        for run in runs:
            self.backend.cancel(run)

    # --- resources ---------------------------------------------------------------------------

    def change_resource(self, change: Change) -> None:
        kind, name = change.address.kind.value, change.address.name
        verb = {
            CREATE: "creating",
            UPDATE: "updating",
            REPLACE: "replacing",
            DESTROY: "destroying",
        }[change.action]
        self.emit(Event(change.address, verb))
        record = self.state.resources.get(change.address)
        if change.action in (REPLACE, DESTROY) and record:
            self.backend.delete(kind, name, record)
            self.state.set_resource(change.address, None)
        if change.action == DESTROY:
            self.emit(Event(change.address, "destroyed"))
            return
        act = self.backend.update if change.action == UPDATE else self.backend.create
        if (
            change.action != UPDATE and kind != "resource_group"
        ):  # (a group's owner is known only once made)
            # recorded first: if the create fails or mlrun dies midway, what it made may exist, and
            # destroy must delete it rather than the next apply adopt it as "existed before mlrun"
            self.state.set_resource(
                change.address,
                {
                    "kind": kind,
                    "name": name,
                    "attrs": change.after,
                    "details": {},
                    "created_by_mlrun": True,
                },
            )
        details = act(kind, name, change.after)
        self.state.set_resource(
            change.address,
            {
                "kind": kind,
                "name": name,
                "attrs": change.after,
                "details": details,
                "created_by_mlrun": details.get("created_by_mlrun", True),
            },
        )
        self.emit(
            Event(change.address, {"updating": "updated"}.get(verb, "created"), change.reason)
        )

    def register_model(self, change: Change) -> None:
        """A model, from its folder or from the run its job just made (a job that did not complete
        registers nothing: the next apply registers its next run's). The target finds a version
        registered before from the same run and content instead of making another, so an apply
        killed between registering and recording does not register twice."""
        name = change.address.name
        model = self.spec.models[name]
        run = self.state.latest(model.job.job) if model.job else None
        if model.job and (not run or run.get("status") != "Completed"):
            why = (
                f"job.{model.job.job} did not complete"
                if not run or run.get("status") in TERMINAL
                else f"job.{model.job.job} runs on: the next apply registers it once it completes"
            )
            self.emit(Event(change.address, "skipped", why))
            return
        self.emit(Event(change.address, "creating"))
        details = self.backend.register_model(name, change.after, run)
        attrs = {**change.after, "version": details.pop("version")}
        if run:
            attrs["run"] = run["id"]
        self.state.set_resource(
            change.address,
            {
                "kind": "model",
                "name": name,
                "attrs": attrs,
                "details": details,
                "created_by_mlrun": True,
            },
        )
        self.emit(Event(change.address, "created", describe("model", attrs)))

    # --- endpoints ---------------------------------------------------------------------------

    def deploy(self, change: Change) -> None:
        """A deployment, unless the model of the spec's it serves was not registered (its job did
        not complete): the next apply deploys it."""
        endpoint, _, name = change.address.name.partition("/")
        model = self.spec.endpoints[endpoint].deployments[name].model
        source = model.spec_model if model else None
        if source and Address(Kind.MODEL, source) not in self.state.resources:
            why = f"model.{source} is not registered: the next apply deploys it"
            self.emit(Event(change.address, "skipped", why))
            return
        self.change_resource(change)

    def invoke(self, change: Change) -> None:
        """The endpoint's call: its answer kept in the state (recorded only when it succeeds, so
        that a failed call is made again by the next apply)."""
        name = change.address.name
        if Address(Kind.ENDPOINT, name) not in self.state.resources:
            return
        endpoint = self.spec.endpoints[name]
        if endpoint.type == "batch":
            deployment = change.after["deployment"]
            comp = endpoint.deployments[deployment].component
            inp: Call = (
                batch.pipeline_inputs(self.spec, endpoint, comp)
                if comp is not None
                else batch.spec_input(self.spec, endpoint, remote=self.plan.target != "local")
            )
            self.score(change.address, deployment, inp, change.after)
            return
        file = endpoints.request_file(self.spec.doc, endpoint)
        assert file is not None  # validate: an invoke has a request file
        self.emit(Event(change.address, "calling"))
        status, answer = self.backend.invoke(
            name, file.read_bytes(), change.after.get("deployment")
        )
        text = answer.decode(errors="replace")
        if status >= 300:
            raise UserError(f"{change.address}: the endpoint answered {status}: {text[:2000]}")
        self.state.set_resource(
            change.address,
            {
                "kind": "invoke",
                "name": name,
                "attrs": change.after,
                "details": {"status": status, "answer": text[:4000], "at": now()},
                "created_by_mlrun": True,
            },
        )
        self.emit(Event(change.address, "called", f"{status}: {text[:200]}"))

    def score(
        self, address: Address, deployment: str, inp: Call, after: dict, by_hand: bool = False
    ) -> Run:
        """A batch endpoint's call: its scoring job (runner/batch.py), or for a pipeline
        deployment a pipeline job of its component's steps (runner/pipeline_deployments.py), run
        as any job is, its runs kept under the endpoint's name; one an earlier apply started for
        the same input and deployment is waited for (or, ended, taken), never started again. The
        call's record keeps the run and where its output is; a failed run is an error naming its
        logs. `by_hand` (mlrun invoke): a new run, as `az ml batch-endpoint invoke` makes, not
        the lab's call."""
        name = address.name
        endpoint = self.spec.endpoints[name]
        record = self.state.resources.get(Address(Kind.DEPLOYMENT, f"{name}/{deployment}"))
        if record is None:
            raise UserError(f"{address}: deployment {name}/{deployment} is not deployed")
        fp = batch.fingerprint(after, record.get("attrs") or {})
        run = self.state.latest(name)
        same = (
            run is not None
            and run.get("fingerprint") == fp
            and run.get("status") not in ("Failed", "Canceled")
        )
        if run is not None and same and not by_hand:
            self.emit(Event(address, run["status"], "the same call, made before", run["id"]))
            if run.get("status") not in TERMINAL:
                run = self._wait_run(name, run)
        else:
            sent = after["input"] if isinstance(inp, dict) else inp.value
            self.emit(Event(address, "calling", f"{sent} -> {deployment}"))
            run = self._call(endpoint, deployment, record.get("details") or {}, inp, fp)
            self.emit(Event(address, "Running", f"run {short(run['id'])}", run["id"]))
            run = self._wait_run(name, run)
        if not run.get("finalized"):
            self.backend.finalize(run)
            run = self.state.update_run(name, run["id"], finalized=True)
        comp = endpoint.deployments[deployment].component
        if run["status"] != "Completed":
            raise UserError(self._call_failed(address, run, comp is not None))
        output = batch.output_folder(run) if comp is None else None
        outputs = pipeline_deployments.output_folders(run, comp) if comp is not None else {}
        if not by_hand:  # the lab's own call
            details: dict = {"run": run["id"], "output": str(output) if output else None}
            if comp is not None:
                details["outputs"] = {n: str(p) for n, p in outputs.items()}
            self.state.set_resource(
                address,
                {
                    "kind": "invoke",
                    "name": name,
                    "attrs": after,
                    "details": details,
                    "created_by_mlrun": True,
                },
            )
        said = (
            f"output {output}"
            if comp is None
            else ", ".join(f"output {n} {p}" for n, p in outputs.items()) or "no outputs"
        )
        self.emit(Event(address, "called", f"run {short(run['id'])}: {said}", run["id"]))
        return run

    def _call(self, endpoint: Endpoint, deployment: str, details: dict, inp: Call, fp: str) -> Run:
        """Start the call's run (Backend.score): the scoring job of a model deployment, or the
        pipeline job of a pipeline deployment's component."""
        name = endpoint.name
        dep = endpoint.deployments[deployment]
        submission: Submission = {"fingerprint": fp, "parts": {}, "compute": dep.compute}
        return self.backend.score(
            self.spec,
            endpoint,
            deployment,
            details,
            inp,
            submission,
            on_start=lambda r: self.state.add_run(name, r),
        )

    def _call_failed(self, address: Address, run: Run, pipeline: bool) -> str:
        """What to say of a call whose run did not complete: a pipeline's failed step, and where
        its logs are."""
        what = "pipeline job" if pipeline else "scoring job"
        why, step = why_failed(run)
        logs = f"{address.name}/{step}" if step else address.name
        return (
            f"{address}: the {what} did not complete (run {short(run['id'])}: {why}); "
            f"see mlrun logs {self.spec.path} {logs}"
        )

    # --- jobs --------------------------------------------------------------------------------

    def run_job(self, change: Change, lease: Lease = slots.NONE) -> None:
        """Start the job (on the slots of its compute that `lease` holds, given back once it
        ends) and wait for it, or wait for a run an earlier apply started."""
        try:
            with lease:
                self._after(change.address.name)
                run = self._run(change)
            if run is not None:
                self._finalize(change.address.name, run)  # the slots are free: the next job starts
        finally:
            if change.address.name in self._ended:
                self._ended[change.address.name].set()

    def _after(self, name: str) -> None:
        """Wait for the jobs of this apply whose datastore outputs job `name` reads."""
        for writer in (self.model["jobs"].get(name) or {}).get("after", ()):
            ended = self._ended.get(writer)
            while ended is not None and not ended.wait(0.2) and not self.cancelled.is_set():
                pass

    def _run(self, change: Change) -> Run | None:
        """The job's run once it ended, to finalize (None: nothing more to do for it)."""
        name = change.address.name
        if change.action == WAIT:
            run = self.state.latest(name)
            assert run is not None, f"a wait for job {name}, which has no run"
            if run.get("finalized"):  # it ended after the plan was made: adopt_finished recorded it
                self._record(name, run)
                return None
            self.emit(Event(change.address, run["status"], "waiting for the run", run["id"]))
            return self._wait_run(name, run)
        if self.cancelled.is_set():
            self.emit(Event(change.address, "Canceled", "not started"))
            return None
        job = self.spec.jobs[name]
        want = self.model["jobs"][name]
        record: Submission = {
            "fingerprint": want["fingerprint"],
            "parts": want["parts"],
            "compute": job.compute,
        }
        if "steps" in want:  # a pipeline's steps, fingerprinted once, by the plan
            record["steps"] = want["steps"]
        try:
            run = self.backend.submit(
                self.spec, job, record, on_start=lambda r: self.state.add_run(name, r)
            )
        except Exception as e:  # said now, not once every other job has ended
            self.emit(Event(change.address, "Failed", f"not submitted: {e}"))
            raise
        # saved with the next save (the record made before the process is what adoption needs)
        self.state.update_run(
            name,
            run["id"],
            save=self.detach,
            status=run["status"],
            pid=run.get("pid"),
            started=run.get("started"),
        )
        self.emit(Event(change.address, "Running", f"run {short(run['id'])}", run["id"]))
        if self.detach:
            self.outcome.runs[name] = run
            return None
        return self._wait_run(name, run)

    def _finish(self, name: str, run: Run) -> None:
        self._finalize(name, self._wait_run(name, run))

    def _wait_run(self, name: str, run: Run) -> Run:
        with self._lock:
            self.active[run["id"]] = run
        if self.cancelled.is_set():
            self.backend.cancel(run)
        try:
            ending = self.backend.wait(run)
        finally:
            with self._lock:
                self.active.pop(run["id"], None)
        return self.state.update_run(name, run["id"], save=False, **ending)  # saved once finalized

    def _finalize(self, name: str, run: Run) -> None:
        self.backend.finalize(run)
        run = self.state.update_run(name, run["id"], finalized=True)
        self._record(name, run)
        detail = f"run {short(run['id'])}" + (f": {run['error']}" if run.get("error") else "")
        self.emit(Event(Address(Kind.JOB, name), run["status"], detail, run["id"]))

    def _record(self, name: str, run: Run) -> None:
        self.outcome.runs[name] = run
        if run["status"] != "Completed":
            self.outcome.failed.append(name)

    def forget_job(self, change: Change) -> None:
        name = change.address.name
        run = self.state.latest(name)
        if run and run.get("status") not in TERMINAL:
            self.backend.cancel(run)
            self._finish(name, run)
        self.state.forget_job(name)
        self.emit(Event(change.address, "forgotten", change.reason))

    def adopt_existing(self) -> None:
        """Resources the spec names that were there before mlrun (up to date, yet not in the
        state): recorded as not created by mlrun, so status shows them and destroy keeps them."""
        for c in self.plan.changes:
            kind, name = c.address.kind, c.address.name
            if (
                c.action == NOOP
                and kind not in (Kind.JOB, Kind.MODEL)  # a model is registered, never adopted
                and c.address not in self.state.resources
                and not (c.after or {}).get("azure_only")  # left alone: the target cannot be it
            ):
                self.state.set_resource(
                    c.address,
                    {
                        "kind": kind.value,
                        "name": name,
                        "attrs": c.after,
                        "details": {"created_by_mlrun": False},
                        "created_by_mlrun": False,
                    },
                )

    def adopt_finished(self) -> None:
        """Runs that ended while no mlrun watched: record how, and tell the tracking store."""
        for name in list(self.state.jobs):
            run = self.state.latest(name)
            if not run or run.get("finalized"):
                continue
            ending = self.backend.poll(run)
            status = ending.get("status", run.get("status"))
            if status in TERMINAL:
                run = self.state.update_run(name, run["id"], save=False, **ending)
                self.backend.finalize(run)
                self.state.update_run(name, run["id"], finalized=True)
                self.emit(
                    Event(
                        Address(Kind.JOB, name),
                        status,
                        f"run {short(run['id'])} ended while mlrun was away",
                        run["id"],
                    )
                )
            elif ending:  # still running (its record may say Preparing: that is not saved twice)
                self.state.update_run(name, run["id"], save=False, **ending)

    def close_orphans(self) -> None:
        """Tracking-store runs created by an mlrun that died before recording them in the state
        (so nothing ever started them): closed, so that none stays RUNNING forever."""
        known = {r["id"] for entry in self.state.jobs.values() for r in entry.get("runs", [])}
        for name, run_id in getattr(self.backend, "close_orphans", lambda known: [])(known):
            self.emit(
                Event(
                    Address(Kind.JOB, name),
                    "Canceled",
                    f"run {short(run_id)} never started: mlrun stopped first",
                    run_id,
                )
            )


def pending_adoption(state: State, backend: Backend) -> bool:
    """Whether some run ended without its ending recorded (apply then has work to do)."""
    for name in state.jobs:
        run = state.latest(name)
        if run and not run.get("finalized"):
            if backend.poll(run).get("status", run.get("status")) in TERMINAL:
                return True
    return False


# --- apply and destroy as commands: planned under the state's lock, then carried out ------------


@dataclass
class Locked:
    """A plan made while holding the state's lock (the state reloaded under it), ready to carry
    out."""

    ctx: Context
    lock: Lock
    plan: Plan
    model: dict

    @property
    def needed(self) -> bool:
        """Whether applying has work to do: a change, or a run that ended unrecorded."""
        return self.plan.has_changes or pending_adoption(self.ctx.state, self.ctx.backend)

    def extend(self, seconds: int) -> str:
        """apply --extend: the lab's expiry pushed out (on the target's tags too); the new one."""
        now, lab = expiry.utcnow(), self.ctx.state.lab
        before = expiry.expires(self.ctx.spec.expires_after, lab, now) or now
        lapsed = max(0, int((now - before).total_seconds()))  # an expired lab: from now on
        self.ctx.state.set_lab(extended=int(lab.get("extended") or 0) + lapsed + seconds)
        when = self._expiry()
        group = [r for r in self.ctx.state.resources.values() if r.get("kind") == "resource_group"]
        self.ctx.backend.retag(any(r.get("created_by_mlrun") for r in group))
        return expiry.shown(when) if when else ""

    def _expiry(self):
        """The lab's expiry, given to the target for what it creates (its first apply starts the
        clock)."""
        value = self.ctx.spec.expires_after
        if value is None:
            return None
        if not self.ctx.state.lab.get("started"):
            self.ctx.state.set_lab(started=expiry.shown(expiry.utcnow()))
        when = expiry.expires(value, self.ctx.state.lab, expiry.utcnow())
        self.ctx.backend.set_expiry(when)
        return when

    def apply(self, emit: Emit, detach: bool = False) -> Outcome:
        ctx = self.ctx
        ctx.state.set_variables(
            {k: v for k, v in ctx.spec.generated.items() if k not in ctx.state.variables}
        )
        self._expiry()
        with ctx.state.journaled():  # a run's record: a line, not the whole state again
            return Applier(
                self.plan, ctx.spec, self.model, ctx.backend, ctx.state, emit, detach=detach
            ).run()

    def destroy(self, emit: Emit) -> Outcome:
        ctx = self.ctx
        outcome = Applier(self.plan, ctx.spec, {}, ctx.backend, ctx.state, emit).run()
        ctx.state.forget_variables(
            ctx.spec.generated.keys()
        )  # new names next time: Azure keeps deleted ones a while
        ctx.state.forget_lab()  # applied again, it is a new lab
        return outcome


def score(
    ctx: Context,
    name: str,
    value: str | None,
    deployment: str | None,
    emit: Emit,
    named: dict | None = None,
) -> Run:
    """mlrun invoke SPEC ENDPOINT [--input PATH]: a batch endpoint's scoring job, by hand (a path
    relative to where mlrun runs, or one of the spec's data assets; without one, the endpoint's
    own invoke input), its run kept with the lab's other calls; the endpoint's deployment must be
    deployed (apply). A pipeline deployment's inputs are `value` (its one uri input) and `named`
    (--set inputs.NAME=VALUE)."""
    endpoint = ctx.spec.endpoints[name]
    deployment = deployment or endpoint.default_deployment
    if deployment not in endpoint.deployments:
        names = ", ".join(sorted(endpoint.deployments)) or "none"
        raise UserError(f"endpoint {name} has no deployment '{deployment}' (deployments: {names})")
    comp = endpoint.deployments[deployment].component
    if named and comp is None:
        raise UserError(
            f"deployment {name}/{deployment} is a model deployment: it scores one input "
            "(--input), --set inputs.NAME=VALUE gives a pipeline deployment's"
        )
    with _locked(ctx, "mlrun invoke"):
        inp: Call
        if comp is not None:
            inp = batch.pipeline_inputs(ctx.spec, endpoint, comp, value, named)
            after = pipeline_call(inp, deployment)
        else:
            remote = ctx.target != "local"  # Azure reads any data asset, a local run its copy
            inp = (
                batch.spec_input(ctx.spec, endpoint, remote=remote)
                if value is None
                else batch.job_input(ctx.spec, value, base=Path.cwd(), remote=remote)
            )
            content = fingerprint.tree_digest(inp.local_path)[:16] if inp.local_path else None
            after = {"input": inp.value, "content": content, "deployment": deployment}
        plan = Plan(ctx.target, str(ctx.spec.path), "", "", 0, {})
        applier = Applier(plan, ctx.spec, {}, ctx.backend, ctx.state, emit)
        with ctx.state.journaled():
            return applier.score(Address(Kind.INVOKE, name), deployment, inp, after, by_hand=True)


@contextmanager
def _locked(ctx: Context, command: str) -> Iterator[Lock]:
    with Lock(ctx.state.path, command) as lock:
        ctx.state = State.load(
            ctx.state.path, ctx.spec.name, ctx.target
        )  # as it is now, under the lock
        yield lock


@contextmanager
def planned(
    ctx: Context, force=(), only=(), saved: Plan | None = None, saved_path: str = ""
) -> Iterator[Locked]:
    """mlrun apply: lock, plan; a saved plan is used only if nothing moved since it was made."""
    with _locked(ctx, "mlrun apply") as lock:
        plan, model = ctx.plan(force, only)
        if saved is not None:
            planfile.check_current(saved, plan, saved_path)
            plan = saved
        yield Locked(ctx, lock, plan, model)


@contextmanager
def planned_destroy(ctx: Context) -> Iterator[Locked]:
    """mlrun destroy: lock, and plan the removal of everything the state says mlrun made."""
    from .plan import destroy_plan

    with _locked(ctx, "mlrun destroy") as lock:
        state, backend = ctx.state, ctx.backend
        snap = state.snapshot()
        actual: Actual = {
            "resources": snap["resources"],
            "lineage": snap["lineage"],
            "serial": snap["serial"],
            "jobs": {n: {**r, **backend.poll(r)} for n in snap["jobs"] if (r := state.latest(n))},
        }
        plan = destroy_plan(
            actual, target=ctx.target, spec=str(ctx.spec.path), tracking=backend.tracking_uri
        )
        yield Locked(ctx, lock, plan, {})
