"""AutoML, FineTuning and Spark jobs (what `type: automl`, `type: finetuning` and `type: spark`
files become in the SDK's REST body, jobType AutoML / FineTuning / Spark): accepted when the body
has what the service needs (a task, training data already uploaded or on a datastore, a model for
fine-tuning; a Spark entry, its code uploaded, serverless resources or an attached pool, Direct
data), then run as a stand-in: the parent's MLflow run and one child run (`<job>_0`, tagged
mlflow.parentRunId, with the task's primary metric, or a Spark job's `rows`, logged as 0.5; no
model is trained, no Spark runs), status NotStarted -> Running -> Completed. The parent is tagged
automl_best_child_run_id as the service tags an AutoML parent.

As a pipeline step (a node of type automl or finetuning, its fields in snake_case, no component;
or a spark node of its spark component), the step is a stand-in child command job of the pipeline
(pipelines.py runs it): it writes STAND_IN.txt into each of the step's outputs, so the steps after
it have something to read.

A data import (`ml_client.data.import_data`: a pipeline of one node of type data_transfer, task
import_data, with a database or file_system source and a `sink` output naming the data asset) is
a stand-in step too: no connection is reached; the step writes STAND_IN.txt (saying what it
would have copied) into the sink's path, `${{name}}` there being the step's job name, and once the
pipeline completes the sink's version is registered, as the service registers it."""

from state import now_iso
from sweeps import SweepRunner

KINDS = ("AutoML", "FineTuning", "Spark")
STEP_KINDS = ("automl", "finetuning", "data_transfer")
IMPORT_SOURCES = {"database": "mltable", "file_system": "uri_folder"}
LOCAL = ("file:", "/", ".")  # a path the SDK should have uploaded before the PUT


def check(props: dict) -> str | None:
    """Why an AutoML, FineTuning or Spark job body is not acceptable, or None."""
    if props["jobType"] == "Spark":
        return check_spark(props)
    if props["jobType"] == "AutoML":
        task = props.get("taskDetails") or {}
        if not task.get("taskType"):
            return "An AutoML job needs taskDetails.taskType."
        data = (task.get("trainingData") or {}).get("uri")
    else:
        details = props.get("fineTuningDetails") or {}
        if not details.get("taskType") or not (details.get("model") or {}).get("uri"):
            return "A FineTuning job needs fineTuningDetails.taskType and a model."
        data = (details.get("trainingData") or {}).get("uri")
    if not data:
        return "The job needs training data."
    if data.startswith(LOCAL):
        return f"Training data '{data}' is a local path: upload it first."
    return None


def check_spark(props: dict) -> str | None:
    """A Spark job runs an entry (a file in its uploaded code, or a class) on serverless Spark
    (resources) or an attached Synapse pool (computeId), its data read by Spark (Direct)."""
    entry = props.get("entry") or {}
    if not (entry.get("file") or entry.get("className")):
        return "A Spark job needs an entry: a file or a class name."
    if entry.get("file") and not props.get("codeId"):
        return "A Spark job with an entry file needs its code uploaded (codeId)."
    if bool(props.get("computeId")) == bool(props.get("resources")):
        return "A Spark job needs one of computeId (an attached Synapse pool) or resources."
    for side in ("inputs", "outputs"):
        for name, value in (props.get(side) or {}).items():
            mode = (value or {}).get("mode")
            if mode not in (None, "Direct"):
                return f"Spark job {side[:-1]} '{name}' is {mode}: only Direct is supported."
    return None


def check_step(node: dict) -> str | None:
    """Why an automl, finetuning or data import pipeline node is not acceptable, or None."""
    if node["type"] == "data_transfer":
        return _check_import(node)
    if not node.get("task"):
        return f"a {node['type']} step needs a task."
    if not node.get("training_data"):
        return f"a {node['type']} step needs training_data."
    return None


def _check_import(node: dict) -> str | None:
    if node.get("task") != "import_data":
        return f"a data_transfer step's task '{node.get('task')}': the emulator runs import_data."
    source = node.get("source") or {}
    if source.get("type") not in IMPORT_SOURCES:
        return f"an import's source type '{source.get('type')}' is not database or file_system."
    if not source.get("connection"):
        return "an import's source needs a connection."
    sink = (node.get("outputs") or {}).get("sink") or {}
    if not sink.get("name") or not sink.get("uri"):
        return "an import needs a sink output with a name and a uri."
    return None


def step_spec(node: dict) -> dict:
    """What pipelines.py reads of a component, for a node that has none: its outputs."""
    outputs = {
        k: {"type": (v or {}).get("job_output_type") or "uri_folder"}
        for k, v in (node.get("outputs") or {}).items()
    }
    return {"type": node["type"], "name": node["type"], "inputs": {}, "outputs": outputs}


def step_command(node: dict, spec: dict) -> str:
    what = f"entry {spec.get('entry')}" if node["type"] == "spark" else f"task {node.get('task')}"
    said = f"stand-in for the {node['type']} step ({what})"
    if node["type"] == "data_transfer":
        source = node["source"]
        what = source.get("query") or source.get("table_name") or source.get("path")
        said = f"stand-in for an import from {source['type']} {source['connection']}: {what}"
        said = said.replace("'", "")
    writes = [
        f"mkdir -p ${{{{outputs.{k}}}}} && echo '{said}' > ${{{{outputs.{k}}}}}/STAND_IN.txt"
        for k in spec.get("outputs") or {}
    ]
    return " && ".join([f"echo '{said}'", *writes])


class AzureOnlyRunner(SweepRunner):
    """The parent of a stand-in AutoML or FineTuning run, answering for itself as a sweep does."""

    def run(self):
        server = self.app.mlflow_for(self.ws["id"])
        try:
            server.base_url()
            experiment = self.props["experimentName"]
            kind = self.props["jobType"]
            server.create_job_run(
                self.name,
                experiment,
                self.props.get("displayName") or self.name,
                {**(self.props.get("tags") or {}), "azureml.runsource": kind.lower()},
            )
            self.times["start"] = now_iso()
            self.set_status("Running")
            child = f"{self.name}_0"
            server.create_job_run(
                child, experiment, child, {"mlflow.parentRunId": self.name, "stand_in": "true"}
            )
            task = self.props.get("taskDetails") or {}
            metric = task.get("primaryMetric") or ("rows" if kind == "Spark" else "loss")
            _log(server, child, metric, 0.5)
            server.end_job_run(child, "FINISHED")
            if kind == "AutoML":
                server.store().set_tag(self.name, _tag("automl_best_child_run_id", child))
            if self.cancelled.is_set():
                self._finish(server, "Canceled", "KILLED")
            else:
                self._finish(server, "Completed", "FINISHED")
        except Exception as e:  # noqa: BLE001 - any emulator-side failure: a SystemError of the job
            self.error = {"code": "SystemError", "message": f"{type(e).__name__}: {e}"}
            self._finish(server, "Failed", "FAILED")


def _log(server, run_id: str, key: str, value: float):
    import time

    from mlflow.entities import Metric

    server.store().log_metric(run_id, Metric(key, value, int(time.time() * 1000), 0))


def _tag(key, value):
    from mlflow.entities import RunTag

    return RunTag(key, value)


def register_imports(app, wid: str, nodes: dict, outputs: dict) -> None:
    """The data versions a completed import pipeline made: each import node's sink, at the uri
    its step wrote (`outputs`: step -> its outputs as run)."""
    from data import register

    for step, node in nodes.items():
        if node.get("type") != "data_transfer":
            continue
        sink = node["outputs"]["sink"]
        kind = sink.get("job_output_type") or IMPORT_SOURCES[node["source"]["type"]]
        register(app, wid, sink["name"], sink.get("version"), kind, outputs[step]["sink"]["uri"])
