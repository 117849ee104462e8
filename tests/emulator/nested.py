"""Pipeline steps that are runs with children of their own, as the SDK sends them:

- a pipeline component used as a step (a node of type pipeline whose componentId is a registered
  pipeline component, anonymous or named): a child pipeline run of the outer one, whose steps are
  the component's jobs, really run as any pipeline's; its inputs are the node's, resolved in the
  outer pipeline; its outputs are where the outer pipeline reads them (the outer pipeline's own
  output when the node binds one, else a folder of its own), so the steps after it read what its
  inner steps wrote. Nested pipelines nest to any depth.
- a sweep step (a node of type sweep, its trial a command component, `trial.componentId`): a
  child run whose trials are that component run with the node's inputs and sampled search-space
  values (grid, or seeded random; Bayesian sampled as random, as the standalone sweeps are),
  really, at most limits.max_concurrent_trials at once; a trial that fails does not stop the
  others; the step completes when a trial completes, and the best trial's outputs (by
  objective.primary_metric in its MLflow run) become the step's; the step's run is tagged
  best_child_run_id. Early termination is accepted and not applied.

Each is a PipelineRunner, answering for itself as a child of the outer run (parentRunId)."""

import json
import uuid

from pipelines import PipelineRunner, _arm_id, _get, settings_of
from sweeps import trials

KINDS = ("pipeline", "sweep")
# a search-space distribution's fields, in the order the REST form lists its parameters
DISTRIBUTIONS = {
    "choice": ("values",),
    "randint": ("upper",),
    "uniform": ("min_value", "max_value"),
    "quniform": ("min_value", "max_value", "q"),
    "loguniform": ("min_value", "max_value"),
    "qloguniform": ("min_value", "max_value", "q"),
    "normal": ("mu", "sigma"),
    "qnormal": ("mu", "sigma", "q"),
    "lognormal": ("mu", "sigma"),
    "qlognormal": ("mu", "sigma", "q"),
}


def _component(app, ref) -> dict | None:
    found = app.state.get(_arm_id(ref or ""))
    return found["properties"]["componentSpec"] if found else None


def check_node(app, wid: str, props: dict, name: str, node: dict):
    """A pipeline or sweep node's component spec (what the steps after it read the outputs of),
    or why it cannot run."""
    from pipelines import check

    if node["type"] == "pipeline":
        spec = _component(app, node.get("componentId"))
        if spec is None or spec.get("type") != "pipeline":
            return (
                f"Step '{name}' of type pipeline: '{node.get('componentId')}' is not a pipeline "
                "component of the workspace."
            )
        inner = {
            "jobs": spec.get("jobs") or {},
            "inputs": spec.get("inputs") or {},
            "outputs": spec.get("outputs") or {},
            "settings": settings_of(props),
            "computeId": _get(node, "computeId", "compute") or props.get("computeId"),
        }
        problem = check(app, wid, inner)
        return (
            f"Step '{name}' (pipeline component {spec.get('name')}): {problem}" if problem else spec
        )
    ref = (node.get("trial") or {}).get("componentId")
    spec = _component(app, ref)
    if spec is None or spec.get("type") != "command":
        return (
            f"Step '{name}' of type sweep: its trial '{ref}' is not a command component of the "
            "workspace."
        )
    space = node.get("search_space") or {}
    if not space:
        return f"Step '{name}': a sweep step needs a search_space."
    for key, value in space.items():
        if key not in (spec.get("inputs") or {}):
            return f"Step '{name}': search_space.{key} is not an input of its trial."
        if (value or {}).get("type") not in DISTRIBUTIONS:
            return f"Step '{name}': search_space.{key} has no known distribution type."
    objective = node.get("objective") or {}
    if not objective.get("primary_metric") or str(objective.get("goal")).lower() not in (
        "maximize",
        "minimize",
    ):
        return f"Step '{name}': a sweep step needs objective.primary_metric and goal."
    if not (node.get("limits") or {}).get("max_total_trials"):
        return f"Step '{name}': a sweep step needs limits.max_total_trials."
    return spec


def child(outer: PipelineRunner, step: str, node: dict, spec: dict) -> PipelineRunner:
    """The child run of a pipeline or sweep node of `outer`."""
    name = str(uuid.uuid4())
    props = {
        "jobType": "Pipeline",
        "inputs": outer._inputs(node, spec),
        "outputs": outer._outputs(node, spec, name),
        "settings": dict(settings_of(outer.props)),
        "computeId": outer._compute(_get(node, "computeId", "compute"))
        or outer.props.get("computeId"),
        "experimentName": outer.props["experimentName"],
        "displayName": _get(node, "display_name", "displayName") or step,
        "status": "NotStarted",
        "tags": {"mlflow.parentRunId": outer.name, **(node.get("tags") or {})},
        "properties": {"azureml.pipelinerunid": outer.name, "StepType": node["type"].title()},
    }
    job = {"id": f"{outer.ws['id']}/jobs/{name}", "name": name, "properties": props}
    if node["type"] == "pipeline":
        props["jobs"] = spec.get("jobs") or {}
        return NestedPipeline(outer, job)
    return SweepStep(outer, job, node, spec)


class NestedPipeline(PipelineRunner):
    """A pipeline component's run, a child of the pipeline it is a step of."""

    def __init__(self, outer: PipelineRunner, job: dict):
        super().__init__(outer.app, outer.ws, job)
        self.outer, self.root = outer, getattr(outer, "root", outer.name)
        self.queue_delay = 0

    def details(self) -> dict:
        body = super().details()
        body.update(parentRunId=self.outer.name, rootRunId=self.root)
        return body


class SweepStep(NestedPipeline):
    """A sweep step's run: its trials are its steps, none depending on another."""

    def __init__(self, outer: PipelineRunner, job: dict, node: dict, spec: dict):
        super().__init__(outer, job)
        self.node, self.trial_spec = node, spec
        props = job["properties"]
        props["settings"]["continue_on_step_failure"] = True  # a failed trial stops no other
        limits = node.get("limits") or {}
        self.max_running = limits.get("max_concurrent_trials")
        ref = node["trial"]["componentId"]
        given = {k: {"value": f"${{{{parent.inputs.{k}}}}}"} for k in props["inputs"]}
        props["jobs"] = {
            f"{self.name}_{n}": {
                "type": "command",
                "componentId": ref,
                "display_name": f"{self.name}_{n}",
                "inputs": {**given, **{k: {"value": str(v)} for k, v in values.items()}},
                "tags": {"hyperparameters": json.dumps(values)},
            }
            for n, values in enumerate(trials(_rest_sweep(node)))
        }
        props["outputs"] = {}  # the best trial's, once it is known

    def _outcome(self, server) -> dict | None:
        objective = self.node["objective"]
        sign = 1 if str(objective["goal"]).lower() == "maximize" else -1
        scored = []
        for trial in self.steps.values():
            if trial.props["status"] == "Completed":
                metrics = server.store().get_run(trial.name).data.metrics
                value = metrics.get(objective["primary_metric"])
                scored.append((value is not None, sign * (value or 0), trial.name, trial))
        if not scored:
            return {"code": "UserError", "message": "No trial of the sweep completed."}
        best = max(scored, key=lambda t: t[:3])[3]
        from mlflow.entities import RunTag

        server.store().set_tag(self.name, RunTag("best_child_run_id", best.name))
        self.props["outputs"] = dict(best.props["outputs"])
        self.props["properties"]["best_child_run_id"] = best.name
        return None


def _rest_sweep(node: dict) -> dict:
    """A sweep node's search space, sampling and limits in the REST form sweeps.trials reads."""
    space = {
        k: [v["type"], [v.get(f) for f in DISTRIBUTIONS[v["type"]]]]
        for k, v in node["search_space"].items()
    }
    sampling = node.get("sampling_algorithm") or "random"
    kind = sampling.get("type") if isinstance(sampling, dict) else sampling
    seed = sampling.get("seed") if isinstance(sampling, dict) else None
    return {
        "searchSpace": space,
        "samplingAlgorithm": {"samplingAlgorithmType": str(kind).title(), "seed": seed},
        "limits": {"maxTotalTrials": node["limits"]["max_total_trials"]},
    }
