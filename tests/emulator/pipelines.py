"""Pipeline jobs, really run: each step (a node of `jobs`, bound to a registered component) is a
child command job, started when the steps it reads outputs of have completed; independent steps
run at once. A parallel step (a node of type parallel, its component a parallel component) is a
child job too, whose command is a stand-in for Azure ML's ParallelRunStep, run for real in one
process: parallel_step.py imports the entry script, calls init() once and run() per mini-batch in
turn, appends the rows to append_row_to and applies retry_settings.max_retries and the two error
thresholds; several nodes and processes, timeouts and partition_keys are not emulated (see that
module), and model or function tasks are refused at submission.

A child's run id is a GUID, its display name the step's display_name or its name, its MLflow run
a child of the pipeline's (tag mlflow.parentRunId); outputs go to the blob store under
azureml/{child}/{output} (or the path bound) and are downloaded by the steps that read them.

A failed step fails the pipeline: the steps still running are canceled and none is started after,
unless settings.continue_on_step_failure, where the steps that do not depend on it still run.
Fault injection, besides the request faults every route has: a delay rule matching
`{pipeline id}/steps/{step}` holds that step queued so long, and an async_failure rule matching it
fails that step with the rule's error (the PUT of the pipeline itself: fails the whole pipeline).
"""

import hashlib
import json
import queue
import re
import shlex
import sys
import threading
import uuid
from pathlib import Path

import azure_only
import flows
from jobs import JobRunner
from state import now_iso

TERMINAL = ("Completed", "Failed", "Canceled")
PARENT_INPUT = re.compile(r"\$\{\{\s*parent\.inputs\.([A-Za-z0-9_]+)\s*\}\}")
PARENT_OUTPUT = re.compile(r"^\$\{\{\s*parent\.outputs\.([A-Za-z0-9_]+)\s*\}\}$")
STEP_OUTPUT = re.compile(
    r"^\$\{\{\s*parent\.jobs\.([A-Za-z0-9_]+)\.outputs\.([A-Za-z0-9_]+)\s*\}\}$"
)
OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]", re.S)
INPUT_REF = re.compile(r"\$\{\{\s*inputs\.([A-Za-z0-9_]+)\s*\}\}")
OUTPUT_REF = re.compile(r"\$\{\{\s*outputs\.([A-Za-z0-9_]+)\s*\}\}")
PARALLEL_STEP = Path(__file__).resolve().with_name("parallel_step.py")
# a parallel node's own settings, over its component's
PARALLEL_KEYS = (
    "input_data",
    "mini_batch_size",
    "partition_keys",
    "resources",
    "max_concurrency_per_instance",
    "error_threshold",
    "mini_batch_error_threshold",
    "logging_level",
    "retry_settings",
    "task",
)
FAILED_MESSAGE = "Pipeline has some failed steps. See child run or execution logs for more details."
EXEC_LOG = "logs/azureml/executionlogs.txt"


def _get(spec: dict, *keys, default=None):
    """The first of keys present (the SDK writes a node's fields in snake_case, the job's in
    camelCase)."""
    for key in keys:
        if key in spec and spec[key] is not None:
            return spec[key]
    return default


def _arm_id(ref: str) -> str:
    return ref[len("azureml:") :] if ref.startswith("azureml:/") else ref


def is_serverless(compute_id) -> bool:
    return not compute_id or compute_id.rstrip("/").rsplit("/", 1)[-1].lower() == "serverless"


def settings_of(props) -> dict:
    return props.get("settings") or {}


def continue_on_failure(props) -> bool:
    value = _get(settings_of(props), "continue_on_step_failure", "continueOnStepFailure")
    return str(value).lower() == "true"


def dependencies(node: dict) -> set[str]:
    deps = set()
    for spec in (node.get("inputs") or {}).values():
        m = STEP_OUTPUT.match(str((spec or {}).get("value") or ""))
        if m:
            deps.add(m.group(1))
    return deps


def check(app, wid: str, props: dict) -> str | None:
    """Why a Pipeline job body cannot run, or None: what the service refuses at submission."""
    nodes = props.get("jobs") or {}
    if not nodes:
        return "A pipeline job needs at least one job under jobs."
    computes = [
        _get(settings_of(props), "default_compute", "defaultCompute"),
        props.get("computeId"),
    ]
    specs = {}
    for name, node in nodes.items():
        kind = (node or {}).get("type")
        if kind in azure_only.STEP_KINDS:  # a stand-in (azure_only.py), checked there
            if problem := azure_only.check_step(node):
                return f"Step '{name}': {problem}"
            specs[name] = azure_only.step_spec(node)
            computes.append(_get(node, "computeId", "compute"))
            continue
        if kind in ("pipeline", "sweep"):  # nested.py checks and runs them
            import nested

            found = nested.check_node(app, wid, props, name, node)
            if isinstance(found, str):
                return found
            specs[name] = found
            computes.append(_get(node, "computeId", "compute"))
            continue
        if kind not in ("command", "parallel", "spark"):
            return (
                f"Step '{name}' is of type '{kind}': the emulator runs command, parallel, spark, "
                "pipeline, sweep, automl, finetuning and data import steps only."
            )
        ref = node.get("componentId")
        if not ref:
            return f"Step '{name}' has no componentId."
        component = app.state.get(_arm_id(ref))
        if component is None:
            return f"Step '{name}': component '{ref}' was not found in the workspace."
        spec = component["properties"]["componentSpec"]
        if spec.get("type") != kind:
            return f"Step '{name}' of type {kind}: its component is of type '{spec.get('type')}'."
        parallel = kind == "parallel" and not flows.is_flow(spec)
        if parallel and (problem := _parallel_problem(node, spec)):
            return f"Step '{name}': {problem}"
        specs[name] = spec
        computes.append(_get(node, "computeId", "compute"))
    for compute in computes:
        if PARENT_INPUT.fullmatch(str(compute or "").strip()):
            continue  # bound to a pipeline input: resolved when the step runs
        if compute and not is_serverless(compute) and not app.state.get(_arm_id(compute)):
            return f"Compute '{compute.rsplit('/', 1)[-1]}' does not exist in the workspace."
    parent_inputs = props.get("inputs") or {}
    parent_outputs = props.get("outputs") or {}
    for name, node in nodes.items():
        spec = specs[name]
        for key, binding in (node.get("inputs") or {}).items():
            if key not in (spec.get("inputs") or {}):
                if node.get("type") == "pipeline" or flows.is_flow(spec):
                    continue  # Azure ML ignores it; or a flow's column mapping
                return f"Step '{name}': its component has no input '{key}'."
            value = str((binding or {}).get("value") or "")
            for ref in PARENT_INPUT.findall(value):
                if ref not in parent_inputs:
                    return f"Step '{name}' input '{key}': the pipeline has no input '{ref}'."
            m = STEP_OUTPUT.match(value)
            if m:
                step, output = m.groups()
                if step not in nodes:
                    return f"Step '{name}' input '{key}': there is no step '{step}'."
                if output not in (specs[step].get("outputs") or {}):
                    return f"Step '{name}' input '{key}': step '{step}' has no output '{output}'."
        for key, binding in (node.get("outputs") or {}).items():
            if key not in (spec.get("outputs") or {}):
                return f"Step '{name}': its component has no output '{key}'."
            m = PARENT_OUTPUT.match(str((binding or {}).get("value") or ""))
            if m and m.group(1) not in parent_outputs:
                return f"Step '{name}' output '{key}': the pipeline has no output '{m.group(1)}'."
        for key, declared in (spec.get("inputs") or {}).items():
            given = (node.get("inputs") or {}).get(key) or (node.get("search_space") or {}).get(key)
            if given is None and declared.get("default") is None and not declared.get("optional"):
                return f"Step '{name}': required input '{key}' is not bound."
    if _order(nodes) is None:
        return "The pipeline's steps depend on each other in a cycle."
    return None


def _parallel(node: dict, spec: dict) -> dict:
    """A parallel step's settings and task: its component's, with the node's own over them."""
    return {**spec, **{k: node[k] for k in PARALLEL_KEYS if node.get(k) is not None}}


def _parallel_problem(node: dict, spec: dict) -> str | None:
    """Why the emulator cannot run a parallel step, or None."""
    fields = _parallel(node, spec)
    task = fields.get("task") or {}
    if task.get("type") != "run_function":
        return f"a {task.get('type')} task: the emulator runs run_function parallel tasks only."
    if not task.get("entry_script"):
        return "a run_function task needs an entry_script."
    if fields.get("partition_keys"):
        return "partition_keys: the emulator makes mini-batches by mini_batch_size only."
    m = INPUT_REF.fullmatch(str(fields.get("input_data") or "").strip())
    if not m or m.group(1) not in (spec.get("inputs") or {}):
        return f"input_data '{fields.get('input_data')}' is not ${{{{inputs.NAME}}}} of an input."
    return None


def _parallel_settings(node: dict, spec: dict) -> dict:
    """What parallel_step.py reads (AZUREML_EMULATOR_PARALLEL) of a parallel step."""
    fields = _parallel(node, spec)
    task = fields["task"]
    data = INPUT_REF.fullmatch(fields["input_data"].strip()).group(1)
    out = OUTPUT_REF.fullmatch(str(task.get("append_row_to") or "").strip())
    retry = fields.get("retry_settings") or {}
    outputs = spec.get("outputs") or {}
    return {
        "entry_script": task["entry_script"],
        "input": data,
        "input_type": (spec["inputs"][data].get("type") or "uri_folder").lower(),
        "mini_batch_size": fields.get("mini_batch_size"),
        "append_to": out.group(1) if out else None,
        "append_type": (outputs.get(out.group(1)) or {}).get("type") if out else None,
        "max_retries": retry.get("max_retries", 3),
        "error_threshold": fields.get("error_threshold", -1),
        "mini_batch_error_threshold": fields.get("mini_batch_error_threshold", -1),
    }


def _spec(app, node) -> dict:
    if node.get("type") in azure_only.STEP_KINDS:
        return azure_only.step_spec(node)
    ref = node["trial"]["componentId"] if node.get("type") == "sweep" else node["componentId"]
    return app.state.get(_arm_id(ref))["properties"]["componentSpec"]


def _order(nodes: dict) -> list[str] | None:
    """The steps in an order where each comes after those it reads (None: a cycle)."""
    deps = {name: dependencies(node) & set(nodes) for name, node in nodes.items()}
    done, order = set(), []
    while len(order) < len(nodes):
        ready = [n for n in nodes if n not in done and deps[n] <= done]
        if not ready:
            return None
        for n in ready:
            done.add(n)
            order.append(n)
    return order


class StepRunner(JobRunner):
    """A pipeline's step: a command job whose run is a child of the pipeline's."""

    def __init__(self, app, workspace, job, pipeline, step):
        super().__init__(app, workspace, job)
        self.pipeline, self.step = pipeline, step
        self.queue_delay = app.state.delay_for("PUT", pipeline.step_path(step))

    def details(self) -> dict:
        body = super().details()
        body.update(
            parentRunId=self.pipeline.name,
            rootRunId=self.pipeline.name,
            runType="azureml.StepRun",
        )
        return body


class PipelineRunner(threading.Thread):
    """The parent run of a pipeline: schedules its steps and answers for itself like a run."""

    def __init__(self, app, workspace: dict, job: dict):
        super().__init__(daemon=True, name=f"pipeline-{job['name']}")
        self.app, self.ws, self.job = app, workspace, job
        self.props = job["properties"]
        self.name = job["name"]
        self.cancelled = threading.Event()
        self.times = {"created": now_iso()}
        self.error = None
        self.children: list[StepRunner] = []
        self.steps: dict[str, StepRunner] = {}
        self.exp_id = None
        self.failure = None  # an async_failure rule of the PUT: the pipeline fails at start
        self.queue_delay = app.state.delay_for("PUT", job["id"])
        self.log_lines: list[str] = []
        self.log_blob = f"ExperimentRun/dcid.{self.name}/{EXEC_LOG}"
        self.has_log = False
        self.lock = threading.Lock()
        self.max_running = None  # at most this many steps at once (None: as many as are ready)

    def step_path(self, step: str) -> str:
        return f"{self.job['id']}/steps/{step}"

    # --- what the run history answers ---
    def details(self) -> dict:
        container = self.app.state.info(self.ws["id"])["artifact_container"]
        logs = (
            {EXEC_LOG: self.app.azurite.blob_sas_url(container, self.log_blob)}
            if self.has_log
            else {}
        )
        return {
            "runId": self.name,
            "runUuid": self.name,
            "rootRunId": self.name,
            "runType": "azureml.PipelineRun",
            "status": self.props["status"],
            "target": None,
            "createdTimeUtc": self.times["created"],
            "createdUtc": self.times["created"],
            "startTimeUtc": self.times.get("start"),
            "endTimeUtc": self.times.get("end"),
            "logFiles": logs,
            "warnings": None,
            "error": {"error": self.error} if self.error else None,
            "tags": self.props.get("tags") or {},
            "properties": self.props.get("properties") or {},
            "displayName": self.props.get("displayName"),
            "experimentName": self.props.get("experimentName"),
            "experimentId": self.exp_id,
            "runDefinition": None,
            "services": {},
        }

    def patch(self, body: dict):
        for key in ("tags", "displayName", "description"):
            if body.get(key) is not None:
                self.props[key] = body[key]

    def cancel(self):
        self.cancelled.set()
        if self.props["status"] not in TERMINAL:
            self.set_status("CancelRequested")
        for child in list(self.children):
            child.cancel()

    def set_status(self, status):
        with self.app.state.lock:
            self.props["status"] = status

    def _log(self, line: str):
        stamp = now_iso()[:19].replace("T", " ")
        with self.lock:
            self.log_lines.append(f"[{stamp}Z] {line}\n")
            data = "".join(self.log_lines).encode()
        container = self.app.state.info(self.ws["id"])["artifact_container"]
        try:
            self.app.azurite.upload(container, self.log_blob, data)
            self.has_log = True
        except Exception:  # noqa: BLE001 - the execution log is best effort
            pass

    # --- the life of a pipeline ---
    def run(self):
        server = self.app.mlflow_for(self.ws["id"])
        try:
            if self.cancelled.wait(self.queue_delay):
                return self._finish("Canceled", "KILLED")
            server.base_url()
            self.exp_id = server.create_job_run(
                self.name,
                self.props["experimentName"],
                self.props.get("displayName") or self.name,
                {**(self.props.get("tags") or {}), "azureml.runsource": "azureml.PipelineRun"},
            )
            if self.failure:
                self.error = self.failure
                return self._finish("Failed", "FAILED")
            self.times["start"] = now_iso()
            self.set_status("Running")
            self._schedule()
            if self.cancelled.is_set():
                return self._finish("Canceled", "KILLED")
            problem = self._outcome(server)
            if problem:
                self.error = self.error or problem
                self._finish("Failed", "FAILED")
            else:
                outputs = {n: c.props["outputs"] for n, c in self.steps.items()}
                azure_only.register_imports(self.app, self.ws["id"], self._nodes(), outputs)
                self._finish("Completed", "FINISHED")
        except Exception as e:  # noqa: BLE001 - any emulator-side failure: a SystemError of the job
            self.error = {"code": "SystemError", "message": f"{type(e).__name__}: {e}"}
            for child in list(self.children):
                child.cancel()
            self._finish("Failed", "FAILED")

    def _outcome(self, server) -> dict | None:
        """Why the run failed once its steps ended (None: it completed): a step that did not."""
        statuses = [c.props["status"] for c in self.children]
        if any(s != "Completed" for s in statuses) or len(statuses) < len(self._nodes()):
            return {"code": "UserError", "message": FAILED_MESSAGE}
        return None

    def _nodes(self) -> dict:
        return self.props.get("jobs") or {}

    def _schedule(self):
        nodes = self._nodes()
        deps = {name: dependencies(node) & set(nodes) for name, node in nodes.items()}
        pending = list(_order(nodes) or [])
        running: dict[str, threading.Thread] = {}
        finished: queue.Queue = queue.Queue()
        results: dict[str, str] = {}
        keep_going = continue_on_failure(self.props)
        stop = False
        while pending or running:
            if self.cancelled.is_set() and not stop:
                stop = True
            for name in list(pending):
                if stop:
                    pending.remove(name)
                    continue
                if any(results.get(d) in ("Failed", "Canceled", "Skipped") for d in deps[name]):
                    pending.remove(name)
                    results[name] = "Skipped"
                    self._log(f"Step {name} is not run: a step it depends on did not complete.")
                elif all(results.get(d) == "Completed" for d in deps[name]):
                    if self.max_running and len(running) >= self.max_running:
                        break
                    pending.remove(name)
                    running[name] = self._launch(name, finished)
            if not running:
                break
            try:
                name = finished.get(timeout=0.5)
            except queue.Empty:
                continue
            running.pop(name).join()
            status = self.steps[name].props["status"]
            results[name] = status
            self._log(f"Completing processing run id {self.steps[name].name} ({name}): {status}.")
            if status != "Completed" and not keep_going and not stop:
                stop = True
                for other in running:
                    self.steps[other].cancel()
        self._log("Finishing experiment: no runs left and nothing to schedule.")

    def _launch(self, step: str, finished: queue.Queue) -> threading.Thread:
        child = self._child(step)
        self.steps[step] = child
        self.children.append(child)
        self.app.jobs[child.job["id"].lower()] = child
        self._log(f"Submitting 1 runs, first five are: {child.name} ({step})")

        def work():
            try:
                rule = self.app.state.take_fault("PUT", self.step_path(step), "async")
                if rule:
                    failure = rule["async_failure"]
                    child.error = (
                        failure
                        if isinstance(failure, dict)
                        else {"code": "SystemError", "message": str(failure)}
                    )
                    child._finish("Failed", "FAILED")
                elif self.cancelled.is_set():
                    child._finish("Canceled", "KILLED")
                else:
                    child.run()
            finally:
                finished.put(step)

        thread = threading.Thread(target=work, daemon=True, name=f"step-{self.name}-{step}")
        thread.start()
        return thread

    def _child(self, step: str) -> StepRunner:
        node = self._nodes()[step]
        spec = _spec(self.app, node)
        if node.get("type") in ("pipeline", "sweep"):  # a child with children: see nested.py
            import nested

            return nested.child(self, step, node, spec)
        name = str(uuid.uuid4())
        wid = self.ws["id"]
        inputs = self._inputs(node, spec)
        outputs = self._outputs(node, spec, name)
        settings = settings_of(self.props)
        compute = self._compute(
            _get(node, "computeId", "compute")
            or _get(settings, "default_compute", "defaultCompute")
            or self.props.get("computeId")
        )
        runs = spec  # what a command step runs; a parallel step's is its task, run by a stand-in
        command = _optional_blocks(spec.get("command") or "", inputs)
        variables = dict(_get(node, "environment_variables", "environmentVariables", default={}))
        if node.get("type") == "parallel" and not flows.is_flow(spec):
            runs = _parallel(node, spec)["task"]
            program = runs.get("program_arguments") or ""
            command = f"{shlex.quote(sys.executable)} {shlex.quote(str(PARALLEL_STEP))} {program}"
            variables["AZUREML_EMULATOR_PARALLEL"] = json.dumps(_parallel_settings(node, spec))
        if node.get("type") in (*azure_only.STEP_KINDS, "spark"):  # a stand-in: azure_only.py
            command = azure_only.step_command(node, spec)
        if flows.is_flow(spec):  # a stand-in: flows.py
            command = flows.step_command(node, spec)
        code = runs.get("code")
        limits = node.get("limits") or {}
        props = {
            "jobType": "Command",
            "command": command,
            "codeId": _arm_id(code) if code else None,
            "environmentId": runs.get("environment"),
            "environmentVariables": variables,
            "inputs": inputs,
            "outputs": outputs,
            "computeId": None if is_serverless(compute) else _arm_id(compute),
            "experimentName": self.props["experimentName"],
            "displayName": _get(node, "display_name", "displayName") or step,
            "status": "NotStarted",
            "limits": {"timeout": limits.get("timeout")},
            "tags": {"mlflow.parentRunId": self.name, **(node.get("tags") or {})},
            "properties": {
                "azureml.nodeid": hashlib.sha256(step.encode()).hexdigest()[:8],
                "azureml.pipelinerunid": self.name,
                "azureml.runsource": "azureml.StepRun",
                "azureml.moduleid": _arm_id(node.get("componentId") or node["type"]),
                "azureml.moduleName": spec.get("name"),
                "StepType": "Parallel" if node.get("type") == "parallel" else "Command",
            },
        }
        return StepRunner(
            self.app,
            self.ws,
            {"id": f"{wid}/jobs/{name}", "name": name, "properties": props},
            self,
            step,
        )

    def _compute(self, compute):
        """A step's compute: one bound to a pipeline input (`${{parent.inputs.c}}`, a nested
        pipeline's) is that input's value, a compute's name or id."""
        m = PARENT_INPUT.fullmatch(str(compute or "").strip())
        if not m:
            return compute
        name = self._literal(m.group(1)).removeprefix("azureml:")
        return name if not name or name.startswith("/") else f"{self.ws['id']}/computes/{name}"

    def _inputs(self, node: dict, spec: dict) -> dict:
        parent = self.props.get("inputs") or {}
        declared = spec.get("inputs") or {}
        given = node.get("inputs") or {}
        values = {}
        for key, decl in declared.items():
            binding = given.get(key)
            kind = (decl.get("type") or "string").lower()
            if binding is None:
                if decl.get("default") is not None:
                    values[key] = {"jobInputType": "literal", "value": str(decl["default"])}
                continue
            value = binding.get("value")
            uri = binding.get("uri")
            text = str(value) if value is not None else ""
            whole = PARENT_INPUT.fullmatch(text.strip())
            out = STEP_OUTPUT.match(text)
            if whole and parent.get(whole.group(1)) is not None:
                values[key] = _normal(parent[whole.group(1)])
            elif out:
                step, output = out.groups()
                upstream = self.steps[step].props["outputs"][output]
                values[key] = {"jobInputType": kind, "uri": upstream["uri"]}
            elif uri:
                values[key] = {
                    "jobInputType": _get(binding, "job_input_type", "jobInputType", default=kind),
                    "uri": uri,
                }
            else:
                values[key] = {
                    "jobInputType": "literal",
                    "value": PARENT_INPUT.sub(lambda m: self._literal(m.group(1)), text),
                }
        return values

    def _literal(self, name) -> str:
        spec = _normal((self.props.get("inputs") or {}).get(name) or {})
        return str(spec.get("value") if spec.get("value") is not None else spec.get("uri", ""))

    def _outputs(self, node: dict, spec: dict, child: str) -> dict:
        parent = self.props.get("outputs") or {}
        given = node.get("outputs") or {}
        datastore = (
            _get(settings_of(self.props), "default_datastore", "defaultDatastore")
            or "workspaceblobstore"
        ).rsplit("/", 1)[-1]
        outputs = {}
        for key, decl in (spec.get("outputs") or {}).items():
            binding = given.get(key) or {}
            m = PARENT_OUTPUT.match(str(binding.get("value") or ""))
            bound = _normal(parent.get(m.group(1)) or {}) if m else {}
            uri = (
                binding.get("uri")
                or bound.get("uri")
                or f"azureml://datastores/{datastore}/paths/azureml/{child}/{key}/"
            ).replace("${{name}}", child)  # as Azure ML names an output's path
            outputs[key] = {"jobOutputType": (decl.get("type") or "uri_folder"), "uri": uri}
        return outputs

    def _finish(self, status, mlflow_status):
        self.times["end"] = now_iso()
        try:
            self.app.mlflow_for(self.ws["id"]).end_job_run(self.name, mlflow_status)
        except Exception:  # noqa: BLE001 - best effort (no run yet), the status is set either way
            pass
        self.set_status(status)


def _normal(spec: dict) -> dict:
    """A job input in the camelCase the command runner reads."""
    kind = _get(spec, "jobInputType", "job_input_type", default="literal")
    if spec.get("uri") is not None:
        return {"jobInputType": kind, "uri": spec["uri"]}
    return {"jobInputType": "literal", "value": str(spec.get("value"))}


def _optional_blocks(command: str, inputs: dict) -> str:
    """`$[[...]]`: kept (without the brackets) when every input it names is bound, else
    dropped."""

    def keep(m):
        names = INPUT_REF.findall(m.group(1))
        return m.group(1) if all(n in inputs for n in names) else ""

    return OPTIONAL.sub(keep, command)
