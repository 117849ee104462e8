"""Prompt flows as pipeline steps. The SDK makes a flow's component (a flow.dag.yaml, or a run.yml
naming one) as a component version of type promptflow_parallel: its code is the uploaded flow
folder, flow_definition_uri the flow file in it. The service keeps it as a parallel component
(the SDK cannot read a promptflow_parallel component back: FlowComponent refuses REST objects),
whose ports are a flow component's: `data` (the rows the flow runs over) and an optional
`flow_outputs` in, `flow_outputs` and `debug_info` out; a step may give it any other input (the
flow's column mappings, `${data.text}`).

A step running it is a stand-in child command job (pipelines.py runs it): no flow runs (there is
no promptflow and no model here); it writes STAND_IN.txt into each of its outputs, naming the
flow and its column mappings, so the steps after it have something to read."""

KIND = "promptflow_parallel"  # what the SDK sends
# the environment the service runs a flow in, unless the flow names one (azureml.environment)
RUNTIME = "azureml://registries/azureml/environments/promptflow-runtime/labels/latest"
PORTS = {
    "inputs": {
        "data": {"type": "uri_folder"},
        "flow_outputs": {"type": "uri_folder", "optional": True},
    },
    "outputs": {"flow_outputs": {"type": "uri_folder"}, "debug_info": {"type": "uri_folder"}},
}


def check(spec: dict) -> str | None:
    """Why a promptflow_parallel component version cannot be made, or None."""
    if not spec.get("code"):
        return "A flow component needs its code: the flow folder, uploaded."
    if not str(spec.get("flow_definition_uri") or "").startswith("https://"):
        return "A flow component needs flow_definition_uri: its flow file in the uploaded code."
    return None


def as_parallel(spec: dict) -> dict:
    """The component version as the service keeps it: a parallel component with a flow
    component's ports, its task the flow folder (flow_definition_uri kept, which marks it)."""
    return {
        **spec,
        **PORTS,
        "type": "parallel",
        "input_data": "${{inputs.data}}",
        "task": {
            "type": "run_function",
            "code": "azureml:" + spec["code"].removeprefix("azureml:"),
            "entry_script": spec["flow_definition_uri"].rsplit("/", 1)[-1],
            "environment": spec.get("environment") or RUNTIME,
        },
    }


def is_flow(spec: dict) -> bool:
    return bool(spec.get("flow_definition_uri"))


def step_command(node: dict, spec: dict) -> str:
    """The stand-in's command: say what would run, write STAND_IN.txt into each output."""
    flow = spec["flow_definition_uri"].rsplit("/", 1)[-1]
    mappings = {
        k: (v or {}).get("value")
        for k, v in (node.get("inputs") or {}).items()
        if k not in PORTS["inputs"]
    }
    said = f"stand-in for prompt flow {spec.get('name')} ({flow}), columns {mappings}"
    said = said.replace("'", "").replace("$", "")
    writes = [
        f"mkdir -p ${{{{outputs.{k}}}}} && echo '{said}' > ${{{{outputs.{k}}}}}/STAND_IN.txt"
        for k in spec.get("outputs") or {}
    ]
    return " && ".join([f"echo '{said}'", *writes])
