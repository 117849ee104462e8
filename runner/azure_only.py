"""The kinds only Azure ML runs: automl and finetuning jobs (standalone or as pipeline steps),
prompt flows as pipeline steps (flows.py), data imports (a `data:` entry with a `source:`, az ml
data import), and the computes the local target cannot be (attached Synapse Spark pools,
Kubernetes). They are checked offline against the fields of their CLI v2 schemas (azure_only.json,
read from azure-ai-ml's marshmallow schemas by `build`), planned everywhere, passed to the SDK
unchanged on the azure target, and skipped by the local one, which says so (`runs on Azure
only`).

Part of the Spec layer: no SDK is imported here but by `build`, which regenerates the table."""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import flows
from .refs import EXPR, is_local, mapping, relative_to
from .yamldoc import Doc

KINDS = ("automl", "finetuning")  # job (and pipeline step) types
COMPUTE_KINDS = ("synapsespark", "kubernetes")  # compute types
NOTE = "runs on Azure only"
PLURAL = {flows.WHAT: "prompt flows"}  # what several steps are, when not what one is
DATA_KEYS = ("training_data", "validation_data", "test_data")  # their local paths are uploaded
TABLE = Path(__file__).with_name("azure_only.json")
PROVIDERS = {"azureopenai": "azure_openai", "custom": "custom"}  # finetuning model_provider
REQUIRED = {"automl": ("task", "training_data"), "finetuning": ("task", "model", "training_data")}
IMPORT_TYPES = {"database": "mltable", "file_system": "uri_folder"}  # source type -> what it makes


@lru_cache(maxsize=1)
def table() -> dict:
    return json.loads(TABLE.read_text())


def kind(fields: Any) -> str | None:
    """`automl` or `finetuning` for a job or step of that type, else None."""
    t = mapping(fields).get("type")
    return t if t in KINDS else None


def compute_kind(fields: Any) -> str | None:
    t = mapping(fields).get("type")
    return t if t in COMPUTE_KINDS else None


def steps(fields: Any) -> dict[str, str]:
    """A pipeline job's automl and finetuning steps: step name -> kind."""
    if mapping(fields).get("type") != "pipeline":
        return {}
    return {n: k for n, s in mapping(fields.get("jobs")).items() if (k := kind(s))}


def azure_steps(fields: Any, pipeline: Any = None) -> dict[str, str]:
    """A pipeline job's steps that only Azure runs: step name (OUTER.INNER in a nested
    pipeline) -> what it is (automl, finetuning, a prompt flow). `pipeline`: the job's steps as
    read (pipelines.Pipeline), which knows a flow however the step names it (by file, by a
    stand-in for a registered component, inside a nested pipeline)."""
    if mapping(fields).get("type") != "pipeline":
        return {}
    read = getattr(pipeline, "steps", {})
    return {**steps(fields), **{n: flows.WHAT for n, s in read.items() if s.flow is not None}}


def reason(fields: Any, pipeline: Any = None) -> str | None:
    """Why the local target does not run a job (None: it runs it): `runs on Azure only
    (automl classification)`, or for a pipeline `runs on Azure only (step train is automl)`,
    `(step answer is a prompt flow)`."""
    own = kind(fields)
    if own:
        what = mapping(fields).get("task")
        return f"{NOTE} ({own}{' ' + what if isinstance(what, str) else ''})"
    inner = azure_steps(fields, pipeline)
    if inner:
        kinds: dict[str, list[str]] = {}
        for n, k in inner.items():
            kinds.setdefault(k, []).append(n)
        said = ", ".join(
            f"{ns[0]} is {k}" if len(ns) == 1 else f"{', '.join(ns)} are {PLURAL.get(k, k)}"
            for k, ns in kinds.items()
        )
        return f"{NOTE} (step{'s' if len(inner) > 1 else ''} {said})"
    return None


def import_source(fields: Any) -> str | None:
    """`database` or `file_system` for a data asset that is imported (has a `source:`), else None
    (also for a source of no known type, which check reports)."""
    t = mapping(mapping(fields).get("source")).get("type")
    return t if t in IMPORT_TYPES else None


def import_summary(fields: dict) -> str:
    """`import from database azureml:my_sql`: a data import in a few words."""
    source = mapping(fields.get("source"))
    return f"import from {source.get('type')} {source.get('connection')}"


def import_note(fields: dict) -> str:
    """What a local plan says of a data import."""
    return f"{NOTE} (data {import_summary(fields)})"


ATTACH_FIELDS = ("resource_id", "namespace", "identity")  # what an attached compute is made of


def attach_summary(attrs: dict) -> str:
    """`attach synapsespark Microsoft.Synapse/workspaces/w/bigDataPools/p`: an attached compute
    in a few words (its resource id past `providers/`)."""
    tail = str(attrs.get("resource_id") or "").rpartition("/providers/")[2]
    space = f" (namespace {attrs['namespace']})" if attrs.get("namespace") else ""
    return f"attach {attrs.get('type')} {tail}{space}"


def detach_note(attrs: dict | None) -> str | None:
    """What destroying an attached compute does (None for any other compute)."""
    if compute_kind(attrs) is None:
        return None
    what = "Synapse Spark pool" if mapping(attrs)["type"] == "synapsespark" else "cluster"
    return f"detach: the {what} itself stays"


def compute_note(fields: Any) -> str:
    """What a local plan says of an attached compute."""
    what = {"synapsespark": "an attached Synapse Spark pool", "kubernetes": "attached Kubernetes"}
    return f"{NOTE} ({what[mapping(fields)['type']]})"


def _norm(value: Any) -> str:
    """An enum value as the SDK compares it: case and '_' ignored."""
    return str(value).lower().replace("_", "")


def schema_of(fields: dict) -> tuple[str, dict] | None:
    """The CLI v2 schema a job or step's fields follow, as (its name, its fields); None when the
    task (automl) is missing or unknown, which the caller reports."""
    t = table()
    if fields.get("type") == "automl":
        task = fields.get("task")
        found = next((e for n, e in t["automl"].items() if _norm(n) == _norm(task)), None)
    else:
        provider = PROVIDERS.get(_norm(fields.get("model_provider", "custom")), "custom")
        found = t["finetuning"][provider]
    return (found["schema"], found["fields"]) if found else None


# --- checks --------------------------------------------------------------------------------------


def check(doc: Doc, data: dict) -> None:
    """Every automl and finetuning job and step, and every Synapse or Kubernetes compute, against
    its schema's fields: unknown keys (with the closest known one), values of the wrong kind,
    enum values, required keys, local data paths that do not exist."""
    for name, c in mapping(data.get("computes")).items():
        k = compute_kind(c)
        if k:
            known = table()["computes"][k]["fields"]
            _walk(doc, ("computes", name), c, known, skip=frozenset({"file", "$schema"}))
    for name, asset in mapping(data.get("data")).items():
        if isinstance(asset, dict) and "source" in asset:
            _check_import(doc, ("data", name), asset)
    for name, job in mapping(data.get("jobs")).items():
        at = ("jobs", name)
        if kind(job):
            _check_job(doc, at, job)
        for step in steps(job):
            _check_job(doc, at + ("jobs", step), job["jobs"][step], step=True)


def _check_import(doc: Doc, at: tuple, asset: dict) -> None:
    """A data import's source against the SDK's DatabaseSchema or FileSystemSchema; its type
    as import_data sets it; its path a datastore URI the import writes to."""
    source = mapping(asset["source"])  # (not a mapping, no type, another type: the schema says)
    if source.get("type") in IMPORT_TYPES:
        found = table()["data_imports"][source["type"]]
        if "connection" not in source:
            doc.problem(at + ("source",), "missing required key 'connection'", key=True)
        _walk(doc, at + ("source",), source, found["fields"], skip=frozenset({"type"}))
        made = IMPORT_TYPES[source["type"]]
        if asset.get("type", made) != made:
            doc.problem(
                at + ("type",),
                f"an import from a {source['type']} makes {made} data (azure-ai-ml's "
                f"import_data sets it): type: {made}",
            )
    path = asset.get("path")
    if isinstance(path, str) and not path.startswith("azureml://datastores/"):
        doc.problem(
            at + ("path",),
            "a data import writes to a datastore: path is azureml://datastores/NAME/paths/"
            "FOLDER/${{name}}",
        )


def _check_job(doc: Doc, at: tuple, fields: dict, step: bool = False) -> None:
    own = kind(fields)
    assert own is not None
    for key in REQUIRED[own]:
        if key not in fields:
            doc.problem(at, f"missing required key '{key}'", key=True)
    found = schema_of(fields)
    if found is None and "task" in fields:
        doc.problem(at + ("task",), _not_one_of(fields["task"], list(table()["automl"])))
    if found is not None:  # a step also takes the keys every step has: its inputs' bindings
        extra = frozenset({"file", "$schema", "inputs"} | ({"component"} if step else set()))
        _walk(doc, at, fields, found[1], skip=extra)
    for key in DATA_KEYS:
        _check_data(doc, at + (key,), fields.get(key))
    model = fields.get("model")
    if own == "finetuning" and isinstance(model, dict):
        _check_data(doc, at + ("model",), model)


def _walk(doc: Doc, at: tuple, block: dict, known: dict, skip: frozenset = frozenset()) -> None:
    for key, value in block.items():
        if key in skip:
            continue
        if key not in known:
            doc.problem(at + (key,), "unknown key" + _suggest(str(key), list(known)), key=True)
            continue
        _value(doc, at + (key,), value, known[key])


def _value(doc: Doc, at: tuple, value: Any, rule: dict) -> None:
    if isinstance(value, str) and EXPR.search(value):
        return  # a binding (${{parent.inputs.x}}) or an expression left for the job
    if "enum" in rule:
        if value is not None and _norm(value) not in {_norm(v) for v in rule["enum"]}:
            doc.problem(at, _not_one_of(value, rule["enum"]))
    elif "fields" in rule:
        if not isinstance(value, dict):
            doc.problem(at, f"expected a mapping, got {_kind(value)}")
        else:
            _walk(doc, at, value, rule["fields"])
    elif "type" in rule and value is not None and not _fits(value, rule["type"]):
        doc.problem(at, f"expected {WORDS[rule['type']]}, got {_kind(value)}")


WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "mapping": "a mapping",
    "list": "a list",
}


def _fits(value: Any, want: str) -> bool:
    if want == "string":
        return isinstance(value, str)
    if want == "boolean":
        return isinstance(value, bool)
    if want == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if want == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if want == "mapping":
        return isinstance(value, dict)
    return isinstance(value, list)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    for t, name in ((dict, "a mapping"), (list, "a list"), (str, "a string"), (int, "an integer")):
        if isinstance(value, t):
            return name
    return "a number" if isinstance(value, float) else "null"


def _not_one_of(value: Any, options: list[str]) -> str:
    close = difflib.get_close_matches(str(value), options, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    shown = f"'{value}'" if isinstance(value, str) else json.dumps(value)
    return f"{shown} is not one of: {', '.join(options)}{hint}"


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    if 0 < len(options) <= 12:
        return f" (expected one of: {', '.join(sorted(options))})"
    return ""


def _check_data(doc: Doc, at: tuple, value: Any) -> None:
    """A local path given as data (training_data: {path: ./folder} or train.jsonl) must exist:
    the SDK uploads it."""
    path = data_path(value)
    if path is None:
        return
    where = at + ("path",) if isinstance(value, dict) else at
    if not os.path.exists(relative_to(doc, where, path)):
        doc.problem(where, f"data path '{path}' does not exist")


def data_path(value: Any) -> str | None:
    """The local path of a data field (a mapping's `path`, or the string itself), else None."""
    path = value.get("path") if isinstance(value, dict) else value
    if not isinstance(path, str) or not is_local(path) or EXPR.search(path):
        return None
    return path


def local_paths(doc: Doc, at: tuple, fields: dict) -> dict[str, Path]:
    """A job's local data paths, resolved: data key (or `model`) -> path."""
    out = {}
    for key in (*DATA_KEYS, "model"):
        value = fields.get(key)
        path = data_path(value)
        if path is not None:
            where = at + (key, "path") if isinstance(value, dict) else at + (key,)
            out[key] = relative_to(doc, where, path)
    return out


def exported(doc: Doc, at: tuple, fields: dict, rel: Callable[[Path], str]) -> dict:
    """The job's or step's fields as an az ml file holds them: unchanged but for its local data
    paths, made `rel` to where the file is written."""
    out = dict(fields)
    for key, path in local_paths(doc, at, fields).items():
        value = fields[key]
        out[key] = {**value, "path": rel(path)} if isinstance(value, dict) else rel(path)
    return out


# --- the table, from the SDK ---------------------------------------------------------------------

SKIP = {"id", "creation_context", "status", "log_files", "services", "provisioning_state"}
FIELD_TYPES = {
    "String": "string",
    "ArmStr": "string",
    "DateTime": "string",
    "Integer": "integer",
    "Float": "number",
    "Boolean": "boolean",
    "Dict": "mapping",
    "List": "list",
}


def build() -> dict:  # pragma: no cover - run by hand (python -m runner.azure_only) and a test
    """azure_only.json, read from the installed azure-ai-ml's marshmallow schemas."""
    import azure.ai.ml
    from azure.ai.ml._schema._finetuning import (
        azure_openai_finetuning as aoai,
        custom_model_finetuning as custom,
    )
    from azure.ai.ml._schema.automl.image_vertical import (
        image_classification as ic,
        image_object_detection as od,
    )
    from azure.ai.ml._schema.automl.nlp_vertical import (
        text_classification as tc,
        text_classification_multilabel as tcm,
        text_ner,
    )
    from azure.ai.ml._schema.automl.table_vertical import classification, forecasting, regression
    from azure.ai.ml._schema.compute import kubernetes_compute, synapsespark_compute
    from azure.ai.ml._schema.job.input_output_entry import DatabaseSchema, FileSystemSchema

    groups: dict[str, dict[str, Any]] = {
        "automl": {
            "classification": classification.AutoMLClassificationSchema,
            "regression": regression.AutoMLRegressionSchema,
            "forecasting": forecasting.AutoMLForecastingSchema,
            "image_classification": ic.ImageClassificationSchema,
            "image_classification_multilabel": ic.ImageClassificationMultilabelSchema,
            "image_object_detection": od.ImageObjectDetectionSchema,
            "image_instance_segmentation": od.ImageInstanceSegmentationSchema,
            "text_classification": tc.TextClassificationSchema,
            "text_classification_multilabel": tcm.TextClassificationMultilabelSchema,
            "text_ner": text_ner.TextNerSchema,
        },
        "finetuning": {
            "azure_openai": aoai.AzureOpenAIFineTuningSchema,
            "custom": custom.CustomModelFineTuningSchema,
        },
        "computes": {
            "synapsespark": synapsespark_compute.SynapseSparkComputeSchema,
            "kubernetes": kubernetes_compute.KubernetesComputeSchema,
        },
        "data_imports": {"database": DatabaseSchema, "file_system": FileSystemSchema},
    }
    out: dict = {
        "note": (
            "The CLI v2 fields of the kinds mlrun passes to Azure only, read from azure-ai-ml's "
            "marshmallow schemas (each entry names its class) by runner.azure_only.build. A field "
            "of {} takes any value the SDK's union field takes; enums compare as the SDK's do, "
            "ignoring case and '_'."
        ),
        "sdk": f"azure-ai-ml {azure.ai.ml.__version__}",
    }
    for group, classes in groups.items():
        out[group] = {
            name: {"schema": cls.__name__, "fields": _block(cls(context={"base_path": "."}))}
            for name, cls in classes.items()
        }
    return out


def _block(schema: Any, depth: int = 0) -> dict:
    out = {}
    for name, f in schema.fields.items():
        key = f.data_key or name
        if key not in SKIP and not f.dump_only:
            out[key] = _field(f, depth)
    return dict(sorted(out.items()))


def _field(f: Any, depth: int) -> dict:
    name = type(f).__name__
    if name == "ExperimentalField":
        return _field(f.experimental_field, depth)
    if name == "StringTransformedEnum":
        return {"enum": sorted(str(v) for v in f.allowed_values)}
    if name in ("NestedField", "Nested") and depth <= 3:
        inner = _block(f.schema if not isinstance(f.schema, type) else f.schema(), depth + 1)
        return {"fields": inner} if inner else {"type": "mapping"}
    return {"type": FIELD_TYPES[name]} if name in FIELD_TYPES else {}


if __name__ == "__main__":  # pragma: no cover
    TABLE.write_text(json.dumps(build(), indent=1) + "\n")
