"""Spark jobs (type: spark, the CLI v2 sparkJob fields): Azure ML runs them on its Synapse Spark
runtime (serverless, sized by `resources`, or on an attached Synapse pool named by `compute`); the
local target runs them under PySpark in local mode, as `spark-submit` from the job's environment.

Locally the driver and executor settings become `--master local[N]` (N: executor cores times
executors, every executor a thread pool in the one JVM) and `--driver-memory` (all of Spark's heap
in local mode); `conf`, `py_files`, `jars`, `files` and `archives` are passed on as spark-submit
takes them; `args` keeps its `${{inputs.X}}`/`${{outputs.X}}`, substituted as a command job's are.
The job's environment must hold PySpark of its runtime's minor version: `pyspark==3.4.*` is added
to it when it lacks PySpark (and, for an environment the local target does not build, PySpark and
the runtime's numpy and pandas are laid over mlrun's own interpreter and packages). Java comes
from the system (JAVA_HOME, else PATH).

Part of the Spec layer: stdlib only."""

from __future__ import annotations

import os
import re
import shlex
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from .conda import requirement_name
from .environments import Environment
from .refs import EXPR, REMOTE, mapping, unresolved
from .yamldoc import Doc

KIND = "spark"
RUNTIMES = ("3.3", "3.4")  # Azure ML's Synapse Spark runtimes: runtime_version -> Spark's minor
DEFAULT_RUNTIME = "3.4"  # locally, when the job names none (an attached pool's is the pool's)
INSTANCE_TYPES = (  # serverless Spark compute's sizes
    "standard_e4s_v3",
    "standard_e8s_v3",
    "standard_e16s_v3",
    "standard_e32s_v3",
    "standard_e64s_v3",
)
FILE_LISTS = {
    "py_files": "--py-files",
    "jars": "--jars",
    "files": "--files",
    "archives": "--archives",
}
SIZES = (
    "spark.driver.cores",
    "spark.driver.memory",
    "spark.executor.cores",
    "spark.executor.memory",
)
DYNAMIC = "spark.dynamicAllocation.enabled"
MIN, MAX = "spark.dynamicAllocation.minExecutors", "spark.dynamicAllocation.maxExecutors"
INSTANCES = "spark.executor.instances"
MEMORY = re.compile(r"^\d+[kmgt]b?$", re.I)  # Spark's sizes: 512m, 2g
LOCAL_CONF = {  # what local mode needs unless the job says otherwise: no UI port, loopback only
    "spark.ui.enabled": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
}
# what Azure's Synapse runtimes (3.3, 3.4) hold beside Spark and PySpark's pandas API needs: laid
# with PySpark over mlrun's own packages (numpy 2 and pandas 2 break pyspark.pandas before 4.0)
RUNTIME_LIBRARIES = ("numpy<2", "pandas<2")
# what a pipeline's spark step sets over its component's (azure-ai-ml's Spark node)
NODE_FIELDS = ("entry", "py_files", "jars", "files", "archives", "conf", "args", "resources")
JAVA_HINT = "install a Java runtime (Java 17: on Debian, apt-get install openjdk-17-jre-headless)"


def is_spark(fields: Any) -> bool:
    return mapping(fields).get("type") == KIND


def runtime(fields: Any) -> str | None:
    """The Spark minor version `resources.runtime_version` names ("3.4.0", 3.4 -> "3.4"), None when
    the job names none."""
    value = mapping(mapping(fields).get("resources")).get("runtime_version")
    if value is None or isinstance(value, bool):
        return None
    return ".".join(str(value).split(".")[:2])


def version(fields: Any) -> str:
    """The Spark minor version the job runs locally."""
    found = runtime(fields)
    return found if found in RUNTIMES else DEFAULT_RUNTIME


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _count(value: Any, default: int) -> int:
    try:
        found = int(str(value))
    except ValueError:
        return default
    return found if found > 0 else default


def threads(fields: Any) -> int:
    """local[N]: every executor's cores, as threads of the one local JVM (executors: the fixed
    count, else dynamic allocation's maximum)."""
    conf = mapping(mapping(fields).get("conf"))
    cores = _count(conf.get("spark.executor.cores"), 1)
    executors = conf.get(INSTANCES)
    if executors is None and _truthy(conf.get(DYNAMIC)):
        executors = conf.get(MAX)
    return cores * _count(executors, 1)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def command(fields: Any) -> str:
    """The spark-submit command line the local target runs (plans and fingerprints show it):
    `args` as written, its ${{inputs.X}} left for the job."""
    fields = mapping(fields)
    conf = {str(k): _text(v) for k, v in mapping(fields.get("conf")).items()}
    parts = ["spark-submit", "--master", f"local[{threads(fields)}]"]
    if conf.get("spark.driver.memory"):
        parts += ["--driver-memory", conf["spark.driver.memory"]]
    for key, value in {**LOCAL_CONF, **conf}.items():
        parts += ["--conf", f"{key}={value}"]
    for key, flag in FILE_LISTS.items():
        items = [str(i) for i in fields.get(key) or [] if i is not None]
        if items:
            parts += [flag, ",".join(items)]
    entry = mapping(fields.get("entry"))
    if entry.get("class_name") is not None:  # a JVM main class: in the first of the jars
        jars = [str(j) for j in fields.get("jars") or []]
        parts += ["--class", str(entry["class_name"]), jars[0] if jars else ""]
    else:
        parts.append(str(entry.get("file", "")))
    line = " ".join(shlex.quote(p) for p in parts)
    lines = str(fields.get("args") or "").splitlines()
    args = " ".join(part.strip() for part in lines if part.strip())  # one line: bash runs it
    return f"{line} {args}" if args else line


def describe(fields: Any, env: Environment) -> str:
    """What a local plan says of how it runs: `runs under PySpark 3.4 local[4], driver memory 2g`
    (and that PySpark was added to its environment)."""
    conf = mapping(mapping(fields).get("conf"))
    text = f"runs under PySpark {version(fields)} local[{threads(fields)}]"
    if conf.get("spark.driver.memory") is not None:
        text += f", driver memory {_text(conf['spark.driver.memory'])}"
    added = (env.definition or {}).get("spark")
    if added:
        text += f" ({added} added to its environment)"
    return text


def describe_azure(fields: Any) -> str:
    """What an azure plan says: the Synapse runtime and where it runs."""
    fields = mapping(fields)
    res = mapping(fields.get("resources"))
    where = (
        f"attached Synapse pool {fields['compute']}"
        if fields.get("compute")
        else f"serverless {res.get('instance_type', '')}".rstrip()
    )
    found = runtime(fields)
    return f"spark{f' runtime {found}' if found else ''} on {where}"


def java() -> str | None:
    """The java Spark will start: JAVA_HOME's, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        found = Path(home) / "bin" / "java"
        return str(found) if os.access(found, os.X_OK) else None
    return shutil.which("java")


def environment(env: Environment, fields: Any) -> Environment:
    """The job's environment as the local target runs it: with PySpark of its runtime's version
    (added, and recorded in the definition, when it lacks one); an environment the local target
    does not build becomes PySpark laid over mlrun's own interpreter and packages."""
    pin = f"pyspark=={version(fields)}.*"
    if env.built:
        if any(requirement_name(r) == "pyspark" for r in env.requirements):
            return env
        definition = {**(env.definition or {}), "spark": pin}
        return replace(env, definition=definition, requirements=(*env.requirements, pin))
    return replace(
        env,
        shown=f"{env.shown} + {pin}",
        definition={"spark": pin, "over": env.ref},
        python=None,
        requirements=(pin, *RUNTIME_LIBRARIES),
        overlay=True,
    )


# --- checks --------------------------------------------------------------------------------------


def check(
    doc: Doc,
    at: tuple,
    job: dict,
    folder: Path | None,
    computes: dict,
    local: bool,
    runs: bool,
) -> None:
    """A spark job's fields beyond their shapes (the schema's): its entry and files in its code
    folder, where it runs (an attached Synapse pool or serverless resources, as the SDK requires),
    its runtime, its conf as Azure ML checks it, direct inputs and outputs; locally, Java."""
    _check_entry(doc, at, job, folder)
    _check_where(doc, at, job, computes)
    _check_conf(doc, at, mapping(job.get("conf")))
    _check_java(doc, at, local, runs)
    for side in ("inputs", "outputs"):
        for name, value in mapping(job.get(side)).items():
            mode = mapping(value).get("mode")
            if mode is not None and mode != "direct":
                doc.problem(
                    at + (side, name, "mode"),
                    f"'{mode}': a spark job's {side} are read by Spark itself (mode: direct only)",
                )


def check_step(
    doc: Doc, at: tuple, comp_at: tuple, fields: dict, folder: Path | None, local: bool, runs: bool
) -> None:
    """A pipeline's spark step: its fields (its component's, its own over them) as a spark
    job's, each problem located where the field is written (the step, else its component)."""
    where = at if "entry" in doc_keys(doc, at) or comp_at == at else comp_at
    _check_entry(doc, where, fields, folder)
    conf_at = at if "conf" in doc_keys(doc, at) else comp_at
    _check_conf(doc, conf_at, mapping(fields.get("conf")))
    _check_java(doc, at, local, runs)


def doc_keys(doc: Doc, at: tuple) -> set:
    """The keys written at `at` in the spec (an included file's merged in)."""
    node: Any = doc.data
    for key in at:
        node = node.get(key) if isinstance(node, dict) else None
    return set(node) if isinstance(node, dict) else set()


def _check_java(doc: Doc, at: tuple, local: bool, runs: bool) -> None:
    if local and java() is None:
        home = os.environ.get("JAVA_HOME")
        found = f"JAVA_HOME={home} has no bin/java" if home else "no java on PATH, no JAVA_HOME"
        doc.problem(
            at + ("type",),
            f"the local target runs spark jobs under PySpark, which needs Java ({found}): "
            + JAVA_HINT,
            severity="error" if runs else "warning",
        )


def _check_entry(doc: Doc, at: tuple, job: dict, folder: Path | None) -> None:
    entry = job.get("entry")
    if "entry" not in job:
        doc.problem(at, "missing required key 'entry' (file: or class_name:)", key=True)
    elif isinstance(entry, dict) and ("file" in entry) == ("class_name" in entry):
        doc.problem(at + ("entry",), "entry takes one of file: (a Python file) or class_name:")
    elif isinstance(entry, dict) and "class_name" in entry and not job.get("jars"):
        doc.problem(at + ("entry",), "entry.class_name needs the jar that holds it in jars")
    if isinstance(entry, dict) and isinstance(entry.get("file"), str):
        if job.get("code") is None:
            doc.problem(
                at + ("entry", "file"), "an entry file needs code: the folder that holds it"
            )
        _check_file(doc, at + ("entry", "file"), entry["file"], folder, "entry file")
    for key in FILE_LISTS:
        items = job.get(key)
        if not isinstance(items, list):
            continue
        seen: set = set()
        for i, item in enumerate(items):
            if item in seen:
                doc.problem(at + (key, i), f"'{item}' is listed twice (Azure ML refuses it)")
            seen.add(item)
            if isinstance(item, str):
                _check_file(doc, at + (key, i), item.partition("#")[0], folder, "file")


def _check_file(doc: Doc, at: tuple, path: str, folder: Path | None, what: str) -> None:
    """A file the job names, relative to its code folder (a remote URI is Spark's to read)."""
    if folder is None or REMOTE.match(path) or EXPR.search(path) or unresolved(path):
        return
    if not folder.is_dir() or not (folder / path).exists():
        doc.problem(at, f"{what} '{path}' is not in the code folder ({folder})")


def _check_where(doc: Doc, at: tuple, job: dict, computes: dict) -> None:
    compute, resources = job.get("compute"), job.get("resources")
    if compute is None and resources is None:
        doc.problem(
            at,
            "a spark job needs resources (serverless: instance_type, runtime_version) or compute "
            "(an attached Synapse Spark pool)",
            key=True,
        )
    elif compute is not None and resources is not None:
        doc.problem(at + ("compute",), "a spark job takes compute or resources, not both")
    if isinstance(compute, str) and not unresolved(compute):
        bare = compute.removeprefix("azureml:")
        kind = mapping(computes.get(bare)).get("type")
        if kind is not None and kind != "synapsespark":
            doc.problem(
                at + ("compute",),
                f"compute {bare} is {kind}: a spark job runs on an attached Synapse Spark pool "
                "(type: synapsespark) or serverless (resources)",
            )
    res = mapping(resources)
    if resources is not None and "instance_type" not in res:
        doc.problem(at + ("resources",), "missing required key 'instance_type'", key=True)
    size = res.get("instance_type")
    if isinstance(size, str) and not unresolved(size) and size.lower() not in INSTANCE_TYPES:
        doc.problem(
            at + ("resources", "instance_type"),
            f"'{size}' is not a serverless Spark size (one of: {', '.join(INSTANCE_TYPES)})",
        )
    found = runtime(job)
    if found is not None and found not in RUNTIMES:
        doc.problem(
            at + ("resources", "runtime_version"),
            f"'{res['runtime_version']}' is not a Synapse Spark runtime of Azure ML "
            f"(one of: {', '.join(RUNTIMES)})",
        )


def _check_conf(doc: Doc, at: tuple, conf: dict) -> None:
    """The driver and executor settings, as azure-ai-ml requires them."""
    where = at + ("conf",)
    dynamic = _truthy(conf.get(DYNAMIC))
    needed = [*SIZES, *([] if dynamic else [INSTANCES]), *([MIN, MAX] if dynamic else [])]
    missing = [k for k in needed if conf.get(k) is None]
    if missing:
        said = "with" if dynamic else "without"
        doc.problem(
            where if conf else at,
            f"missing {', '.join(missing)} (Azure ML requires them {said} dynamic allocation)",
            key=not conf,
        )
    if not dynamic:
        for key in (MIN, MAX):
            if conf.get(key) is not None:
                doc.problem(where + (key,), "only with spark.dynamicAllocation.enabled: true")
    for key in ("spark.driver.memory", "spark.executor.memory"):
        value = conf.get(key)
        if value is not None and not (isinstance(value, str) and MEMORY.match(value)):
            doc.problem(where + (key,), f"'{value}' is not a size such as 512m or 2g")
    for key in ("spark.driver.cores", "spark.executor.cores", INSTANCES, MIN, MAX):
        value = conf.get(key)
        if value is not None and _count(value, 0) == 0:
            doc.problem(where + (key,), f"'{value}' is not a positive whole number")
    low, high = _count(conf.get(MIN), 0), _count(conf.get(MAX), 0)
    if dynamic and low and high and low > high:
        doc.problem(where + (MIN,), f"{low} is more than {MAX} ({high})")
    count = _count(conf.get(INSTANCES), 0)
    if dynamic and count and low and high and not low <= count <= high:
        doc.problem(where + (INSTANCES,), f"{count} is not between {MIN} and {MAX}")
