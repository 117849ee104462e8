"""Prompt flows as pipeline steps: a `type: parallel` step whose component is a prompt flow's
`flow.dag.yaml`, or a `run.yml` naming one (`flow: ./folder`), each known as azure-ai-ml knows it,
by its `$schema` (promptflow's Flow or Run schema; a file with a `type:` is a component of that
type). Azure ML runs such a step as a batch of the flow over its `data` input, the step's other
inputs being the flow's column mappings (`text: ${data.text}`); it writes `flow_outputs` and
`debug_info`.

The local target cannot run a prompt flow (promptflow and the models its nodes call are not
here): a pipeline with such a step runs on Azure only, which its local plan says. The flow file is
read in place of the step's reference (its fields checked as the SDK checks them, and what the
SDK needs to make the component: the flow folder, with the `.promptflow/flow.tools.json` that
`pf flow validate` writes), and the step goes to Azure as written, by its file.

Part of the Spec layer: stdlib only."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from .refs import EXPR, mapping, relative_to
from .yamldoc import Doc

SCHEMAS = (  # azure-ai-ml's SchemaUrl.PROMPTFLOW_FLOW and PROMPTFLOW_RUN, as it compares them
    "https://azuremlschemas.azureedge.net/promptflow/latest/Flow.schema.json",
    "https://azuremlschemas.azureedge.net/promptflow/latest/Run.schema.json",
)
DAG = "flow.dag.yaml"  # the flow's file in a flow folder
TOOLS = Path(".promptflow") / "flow.tools.json"  # what the SDK needs beside it to make a component
DATA = "data"  # the step's required input: the rows the flow runs over
INPUTS = {DATA: {"type": "uri_folder"}, "flow_outputs": {"type": "uri_folder", "optional": True}}
OUTPUTS = {"flow_outputs": {"type": "uri_folder"}, "debug_info": {"type": "uri_folder"}}
PORTS = {"inputs": INPUTS, "outputs": OUTPUTS}  # a flow component's, as the SDK makes it
RUN_KEYS = (  # what azure-ai-ml's RunSchema reads of a run.yml (it drops the rest)
    "$schema",
    "azureml",
    "column_mappings",
    "connections",
    "description",
    "display_name",
    "environment_variables",
    "flow",
    "name",
    "tags",
    "variant",
    "version",
)
WHAT = "a prompt flow"


def is_flow(component: Any) -> bool:
    """A component (read from its file) that is a prompt flow: azure-ai-ml's rule, its $schema
    is promptflow's Flow or Run schema and it has no type of its own."""
    c = mapping(component)
    return c.get("$schema") in SCHEMAS and "type" not in c


def is_run(component: Any) -> bool:
    """A run.yml: a flow named by its `flow:`."""
    return mapping(component).get("$schema") == SCHEMAS[1]


def folder(doc: Doc, at: tuple, component: dict) -> Path | None:
    """The flow's folder (what the SDK uploads as the component's code): a run.yml's `flow:` (a
    folder holding flow.dag.yaml, or a flow file), else the folder of the flow file read in at
    `at`; None when it cannot be told."""
    if is_run(component):
        ref = component.get("flow")
        if not isinstance(ref, str) or EXPR.search(ref):
            return None
        path = relative_to(doc, at + ("flow",), ref)
        return path if path.is_dir() else path.parent
    source = doc.includes.get(at)
    return source.parent if source is not None else None


def check(doc: Doc, at: tuple, component: dict) -> None:
    """What the SDK refuses when it makes the flow's component: a run.yml's flow that is not a
    folder holding flow.dag.yaml nor a file, a flow folder without .promptflow/flow.tools.json;
    and a run.yml's keys it drops (promptflow's `data`, `column_mapping`), as warnings."""
    if is_run(component):
        for key in component:
            if key not in RUN_KEYS:
                close = difflib.get_close_matches(str(key), RUN_KEYS, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                doc.problem(
                    at + (key,),
                    f"azure-ai-ml ignores it when it makes the flow's component{hint}",
                    severity="warning",
                    key=True,
                )
        ref = component.get("flow")
        if not isinstance(ref, str):
            if ref is None:
                doc.problem(at, "missing required key 'flow' (the flow's folder)", key=True)
            return  # (not a string: the schema says)
        path = relative_to(doc, at + ("flow",), ref)
        if not (path.is_file() or (path / DAG).is_file()):
            doc.problem(
                at + ("flow",),
                f"flow '{ref}' is not a folder holding {DAG} nor a flow file",
            )
            return
    where = folder(doc, at, component)
    if where is not None and not (where / TOOLS).is_file():
        doc.problem(
            at,
            f"the flow folder '{where.name}' has no {TOOLS.as_posix()}, which Azure ML needs to "
            "use a flow as a component: run `pf flow validate` in it to write it",
        )


def registered(doc: Doc, name: str, component: dict) -> bool:
    """A prompt flow in the spec's components: (az ml component create takes one), said to be
    given to its step by file instead: mlrun registers the components it can run or check, and a
    step naming a flow's file is how Azure's examples use one. False for any other component."""
    if not is_flow(component):
        return False
    doc.problem(
        ("components", name),
        f"{WHAT} is not registered from components: here; give it to its step by its file "
        "(type: parallel, component: ./FOLDER/flow.dag.yaml or a run.yml), and Azure ML makes "
        "its component when the pipeline is submitted",
        key=True,
    )
    return True


def step_inputs(given: dict) -> dict:
    """A flow step's inputs as its component declares them: `data` (required), `flow_outputs`
    (optional), and every other input the step gives (a column mapping such as `${data.text}`,
    or a connection's setting: the flow's own, which the SDK does not resolve either)."""
    return {**{k: {"type": "string", "optional": True} for k in given}, **INPUTS}


def note(doc: Doc, at: tuple, component: dict, shown: str | None) -> str:
    """What a plan says of a flow step: `prompt flow basic (run.yml), runs on Azure only` (the
    component's name, by default its flow folder's, as the SDK names it)."""
    name = component.get("name")
    if not isinstance(name, str):
        where = folder(doc, at, component)
        name = where.name if where is not None else ""
    return f"prompt flow {name} ({shown}), runs on Azure only".replace("  ", " ")
