"""Parallel jobs (type: parallel, Azure ML's parallelJob): their settings, the input split into
mini-batches, the semantic checks, and what the local target does differently.

Stdlib (and yaml, for an MLTable file) only: validate and plan use it. The local backend splits the
input when it submits the job and hands the mini-batches to the job's controller
(backends/parallel_controller.py), which runs them in worker processes.

The local rule for mini-batches, said by the plan: the input's files in name order (a folder's,
recursively; an MLTable's `paths`), grouped by count, or for a size (`10kb`) whole files grouped
until the next would pass the size (a file larger than it is a mini-batch of its own; Azure may
split one file of tabular data). For tabular data (an MLTable that reads its files) run() gets a
pandas DataFrame of the mini-batch's files' rows, else the list of the files' paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import plural
from .refs import EXPR, mapping, unresolved

if TYPE_CHECKING:
    from .yamldoc import Doc


SIZE = re.compile(r"^([0-9]+)([kKmMgG][bB])?$")
SIZE_PATTERN = "^[0-9]*[1-9][0-9]*([kKmMgG][bB])?$"  # mini_batch_size in the schema
UNITS = {"kb": 1024, "mb": 1024**2, "gb": 1024**3}
DEFAULT_FILES = 10  # Azure's default mini_batch_size for file data
DEFAULT_BYTES = 1024**2  # and for tabular data (1MB)
DEFAULT_RETRIES = 3
DEFAULT_TIMEOUT = 60
APPEND_FILE = "parallel_run_step.txt"  # Azure's default append_row file name
READERS = ("read_delimited", "read_parquet", "read_json_lines")
INPUT_TYPES = ("uri_folder", "uri_file", "mltable")
# a parallel job's own fields (beside its inputs, outputs, compute...): what a parallel component
# holds and a pipeline step running one may set again
FIELDS = (
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


@dataclass(frozen=True)
class Settings:
    """A parallel job's settings with Azure's defaults filled in."""

    input_name: str | None  # the input that input_data binds
    batch: tuple[str, int] | None  # ("files", N) or ("bytes", N); None: the default for the data
    batch_text: str | None  # as written
    instance_count: int
    per_instance: int
    max_retries: int
    timeout: int
    error_threshold: int
    mini_batch_error_threshold: int
    logging_level: str
    task: dict

    @property
    def workers(self) -> int:
        return self.instance_count * self.per_instance


def binding(text: Any, namespace: str) -> str | None:
    """NAME of a value that is exactly ${{NAMESPACE.NAME}}, else None."""
    m = EXPR.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        return None
    ns, _, name = m.group(1).partition(".")
    return name if ns == namespace and name and "." not in name else None


def batch_size(value: Any) -> tuple[str, int] | None:
    """mini_batch_size as ("files", N) or ("bytes", N); None when it is not one (the schema
    says why) or not given."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return ("files", value) if value > 0 else None
    m = SIZE.match(str(value))
    if m is None or int(m.group(1)) <= 0:
        return None
    unit = (m.group(2) or "").lower()
    return ("bytes", int(m.group(1)) * UNITS[unit]) if unit else ("files", int(m.group(1)))


def command(task: dict) -> str:
    """What a parallel task runs, as plans and fingerprints show it: the entry script and its
    program arguments."""
    return f"{task.get('entry_script', '')} {task.get('program_arguments') or ''}".strip()


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def settings(fields: dict) -> Settings:
    retry = mapping(fields.get("retry_settings"))
    return Settings(
        input_name=binding(fields.get("input_data"), "inputs"),
        batch=batch_size(fields.get("mini_batch_size")),
        batch_text=None
        if fields.get("mini_batch_size") is None
        else str(fields["mini_batch_size"]),
        instance_count=max(1, _int(mapping(fields.get("resources")).get("instance_count"), 1)),
        per_instance=max(1, _int(fields.get("max_concurrency_per_instance"), 1)),
        max_retries=_int(retry.get("max_retries"), DEFAULT_RETRIES),
        timeout=_int(retry.get("timeout"), DEFAULT_TIMEOUT),
        error_threshold=_int(fields.get("error_threshold"), -1),
        mini_batch_error_threshold=_int(fields.get("mini_batch_error_threshold"), -1),
        logging_level=str(fields.get("logging_level") or "INFO"),
        task=mapping(fields.get("task")),
    )


# --- the input's files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """What a parallel job reads: its files, and for tabular data how each is read (a pandas
    reader and its keyword arguments), else None."""

    files: list[Path]
    tabular: dict | None = None
    ignored: tuple[str, ...] = ()  # an MLTable's transformations not applied locally


def source(path: Path, kind: str | None) -> Source:
    """The files of an input: a file, a folder's files (recursively, in name order, hidden ones
    left out), or an MLTable's. Raises ValueError for an MLTable it cannot read."""
    if kind == "mltable":
        return _mltable(path)
    if path.is_file():
        return Source([path])
    return Source(_files(path))


def _files(folder: Path, pattern: str = "**/*") -> list[Path]:
    return sorted(
        p
        for p in folder.glob(pattern)
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _mltable(folder: Path) -> Source:
    import yaml  # (only here: a pipeline's controller imports this module, and reads no MLTable)

    try:
        table = yaml.safe_load((folder / "MLTable").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ValueError(f"its MLTable file cannot be read ({e})") from None
    table = mapping(table)
    files: list[Path] = []
    for entry in table.get("paths") or []:
        entry = mapping(entry)
        for key in ("file", "folder", "pattern"):
            if isinstance(entry.get(key), str):
                files += _mltable_path(folder, key, entry[key])
    if not table.get("paths"):
        raise ValueError("its MLTable file has no paths")
    tabular, ignored = None, []
    for step in table.get("transformations") or []:
        name = next(iter(step), None) if isinstance(step, dict) else step
        if name in READERS and tabular is None:
            options = mapping(step.get(name) if isinstance(step, dict) else None)
            tabular = {"reader": name, **_reader_options(name, options)}
        else:
            ignored.append(str(name))
    return Source(sorted(dict.fromkeys(files)), tabular, tuple(ignored))


def _mltable_path(folder: Path, key: str, ref: str) -> list[Path]:
    if "://" in ref:
        raise ValueError(f"its path {ref} is remote, which the local target cannot read")
    if key == "pattern":
        return _files(folder, ref.removeprefix("./"))
    path = folder / ref
    if key == "file":
        if not path.is_file():
            raise ValueError(f"its file {ref} does not exist")
        return [path]
    if not path.is_dir():
        raise ValueError(f"its folder {ref} does not exist")
    return _files(path)


def _reader_options(name: str, options: dict) -> dict:
    """pandas' arguments for an MLTable reader (read_delimited: delimiter, header, encoding)."""
    if name != "read_delimited":
        return {}
    header = options.get("header", "all_files_same_headers")
    return {
        "sep": options.get("delimiter", ","),
        "header": None if header == "no_header" else 0,
        "encoding": {"utf8": "utf-8"}.get(options.get("encoding", "utf8"), "utf-8"),
    }


def mini_batches(files: list[Path], batch: tuple[str, int] | None, tabular: bool) -> list[list]:
    """The files grouped into mini-batches: by count, or whole files up to a size."""
    kind, size = batch or (("bytes", DEFAULT_BYTES) if tabular else ("files", DEFAULT_FILES))
    if kind == "files":
        return [files[i : i + size] for i in range(0, len(files), size)]
    out: list[list] = []
    total = 0
    for f in files:
        length = f.stat().st_size
        if out and total + length <= size:
            out[-1].append(f)
            total += length
        else:
            out.append([f])
            total = length
    return out


# --- plan ----------------------------------------------------------------------------------------


def describe(fields: dict, kind: str | None, path: Path | None) -> str:
    """`parallel, 2 x 2 workers, mini-batches of 10kb: 12 files in 3 mini-batches` (the count
    when the input, of type `kind`, is at a local `path` mlrun can read now)."""
    s = settings(fields)
    size = s.batch_text
    if s.batch and s.batch[0] == "files":
        size = plural(s.batch[1], "file")
    text = (
        f"parallel, {s.instance_count} x {s.per_instance} workers, "
        f"mini-batches of {size or 'the default size'}"
    )
    if path is None or not path.exists():
        return text
    try:
        found = source(path, kind)
        count = len(mini_batches(found.files, s.batch, found.tabular is not None))
    except (OSError, ValueError):
        return text
    batches = plural(count, "mini-batch", "mini-batches")
    return f"{text}: {plural(len(found.files), 'file')} in {batches}"


def notes(what: str, fields: dict, kind: str | None, path: Path | None) -> list[str]:
    """What a parallel job (`what`: `parallel job NAME`, or a pipeline's step) does differently
    on the local target, said plainly; `path` is its input (of type `kind`) when it is local."""
    s = settings(fields)
    workers = plural(s.workers, "worker process", "worker processes")
    out = [
        f"note: {what} runs {workers} "
        f"on this machine ({s.instance_count} node(s) x {s.per_instance}); mini-batches hold whole "
        "files, in name order"
    ]
    if path is not None and kind == "mltable" and path.exists():
        try:
            found = source(path, kind)
        except ValueError:
            return out
        if found.tabular is not None and s.batch and s.batch[0] == "bytes":
            out.append(
                f"note: {what} reads tabular data: locally a mini-batch is whole files up to "
                f"{s.batch_text} (Azure ML may split a file by size)"
            )
        if found.ignored:
            out.append(
                f"note: {what}: the MLTable's transformations "
                f"{', '.join(found.ignored)} are not applied locally (its files are read as "
                "they are)"
            )
    return out


# --- validate ------------------------------------------------------------------------------------


def check(
    doc: Doc,
    at: tuple,
    job: dict,
    declared: dict,
    code: Path | None,
    runs: bool,
    origin: dict[str, tuple] | None = None,
) -> None:
    """The semantic checks of a parallel job (the schema checked the shapes), located: at `at`,
    or for a key `origin` names, where that key was written (a pipeline step's settings come
    from its parallel component, unless the step sets them again)."""
    task = mapping(job.get("task"))

    def where(*keys: str) -> tuple:
        return (origin or {}).get(keys[0], at) + keys

    inputs, outputs = declared["inputs"], declared["outputs"]
    data = job.get("input_data")
    if data is None:
        doc.problem(at, "missing required key 'input_data' (${{inputs.NAME}})", key=True)
    elif isinstance(data, str) and not unresolved(data):
        name = binding(data, "inputs")
        if name is None:
            doc.problem(where("input_data"), f"'{data}' must be ${{{{inputs.NAME}}}}, one input")
        elif name not in inputs:
            known = ", ".join(sorted(inputs)) or "none"
            doc.problem(
                where("input_data"), f"'{data}' is not declared in inputs (declared: {known})"
            )
        elif isinstance(inputs[name], dict):
            kind = inputs[name].get("type", "uri_folder")
            if kind not in INPUT_TYPES:
                doc.problem(
                    where("input_data"),
                    f"input '{name}' is {kind}: input_data takes {', '.join(INPUT_TYPES)}",
                )
        else:
            doc.problem(where("input_data"), f"input '{name}' is a literal, not data")
    append = task.get("append_row_to")
    if isinstance(append, str):
        name = binding(append, "outputs")
        if name is None:
            doc.problem(where("task", "append_row_to"), f"'{append}' must be ${{{{outputs.NAME}}}}")
        elif name not in outputs:
            known = ", ".join(sorted(outputs)) or "none"
            doc.problem(
                where("task", "append_row_to"),
                f"'{append}' is not declared in outputs (declared: {known})",
            )
    kind = task.get("type")
    if isinstance(kind, str) and kind != "run_function":
        doc.problem(
            where("task", "type"),
            f"a {kind} task runs on Azure ML only: the local target runs run_function tasks",
            severity="error" if runs else "warning",
        )
    if job.get("partition_keys"):
        doc.problem(
            where("partition_keys"),
            "partition_keys runs on Azure ML only: locally mini-batches are made by "
            "mini_batch_size",
            severity="error" if runs else "warning",
        )
    script = task.get("entry_script")
    if kind == "run_function" and script is None:
        doc.problem(where("task"), "missing required key 'entry_script'", key=True)
    elif isinstance(script, str) and code is not None and code.is_dir():
        if not (code / script).is_file():
            doc.problem(
                where("task", "entry_script"),
                f"entry script '{script}' is not in the code folder '{task.get('code')}'",
            )
