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
it have something to read."""

from state import now_iso
from sweeps import SweepRunner

KINDS = ("AutoML", "FineTuning", "Spark")
STEP_KINDS = ("automl", "finetuning")
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
    """Why an automl or finetuning pipeline node is not acceptable, or None."""
    if not node.get("task"):
        return f"a {node['type']} step needs a task."
    if not node.get("training_data"):
        return f"a {node['type']} step needs training_data."
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
