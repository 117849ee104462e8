"""What a pipeline's parallel step runs on the emulator (pipelines.py makes it the step's command):
`python parallel_step.py PROGRAM_ARGUMENTS...` in the step's code folder, its settings in the
AZUREML_EMULATOR_PARALLEL variable (JSON), its input and output folders in AZURE_ML_INPUT_* and
AZURE_ML_OUTPUT_* as for any step.

A stand-in for Azure ML's ParallelRunStep, run for real in one process: the entry script is
imported with sys.argv = [ENTRY_SCRIPT, PROGRAM_ARGUMENTS...], init() is called once, then
run(mini_batch) for each mini-batch in turn. The input's files (a folder's, recursively, in name
order; a file; an MLTable's `paths`) are grouped mini_batch_size at a time, or for tabular data
(an MLTable that reads delimited files) whole files up to mini_batch_size bytes handed over as one
pandas DataFrame. A mini-batch whose run() raises is tried again up to retry_settings.max_retries
times; each row run() returns is appended to append_row_to (a folder output's
parallel_run_step.txt, or the uri_file output's file); the step
fails (exit 1, the reason on its last line) once more mini-batches than mini_batch_error_threshold,
or more items than error_threshold, failed. Not emulated: several nodes and processes, timeouts,
partition_keys, model and function tasks (pipelines.check refuses those).
"""

import glob
import importlib.util
import json
import os
import sys
import traceback

APPEND_FILE = "parallel_run_step.txt"


def files_of(path: str, kind: str) -> tuple[list[str], bool]:
    """The input's files in name order, and whether they are tabular (read into a DataFrame)."""
    if kind != "mltable":
        if os.path.isfile(path):
            return [path], False
        found = glob.glob(os.path.join(path, "**", "*"), recursive=True)
        return sorted(f for f in found if os.path.isfile(f)), False
    import yaml

    with open(os.path.join(path, "MLTable"), encoding="utf-8") as f:
        table = yaml.safe_load(f) or {}
    files = []
    for entry in table.get("paths") or []:
        for key, ref in entry.items():
            where = os.path.join(path, ref)
            if key == "file":
                files.append(where)
            elif key in ("folder", "pattern"):
                pattern = os.path.join(where, "**", "*") if key == "folder" else where
                files += sorted(f for f in glob.glob(pattern, recursive=True) if os.path.isfile(f))
    steps = table.get("transformations") or []
    readers = [next(iter(s)) if isinstance(s, dict) else s for s in steps]
    return files, "read_delimited" in readers


def batches(files: list[str], size: int, tabular: bool) -> list[list[str]]:
    """Files by count, or for tabular data whole files up to `size` bytes."""
    if not tabular:
        return [files[i : i + size] for i in range(0, len(files), size)]
    out, total = [], 0
    for f in files:
        length = os.path.getsize(f)
        if out and total + length <= size:
            out[-1].append(f)
            total += length
        else:
            out.append([f])
            total = length
    return out


def rows(result) -> list[str]:
    if hasattr(result, "itertuples"):
        return [" ".join(str(v) for v in row) for row in result.itertuples(index=False)]
    return [" ".join(map(str, r)) if isinstance(r, (list, tuple)) else str(r) for r in result]


def main() -> int:
    settings = json.loads(os.environ["AZUREML_EMULATOR_PARALLEL"])
    entry = settings["entry_script"]
    sys.argv = [entry, *sys.argv[1:]]
    sys.path.insert(0, os.getcwd())
    spec = importlib.util.spec_from_file_location(os.path.splitext(entry)[0], entry)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if hasattr(module, "init"):
        module.init()
    data = os.environ[f"AZURE_ML_INPUT_{settings['input']}"]
    files, tabular = files_of(data, settings["input_type"])
    default = 1024 * 1024 if tabular else 10
    groups = batches(files, int(settings.get("mini_batch_size") or default), tabular)
    append = None
    if settings.get("append_to"):
        append = os.environ[f"AZURE_ML_OUTPUT_{settings['append_to']}"]
        if settings.get("append_type") != "uri_file":  # a folder
            append = os.path.join(append, APPEND_FILE)
        open(append, "a").close()
    tries = 1 + int(settings.get("max_retries", 3))
    failed_batches, failed_items, appended = 0, 0, 0
    for number, group in enumerate(groups, 1):
        for attempt in range(1, tries + 1):
            try:
                if tabular:
                    import pandas as pd

                    batch = pd.concat([pd.read_csv(f) for f in group], ignore_index=True)
                else:
                    batch = list(group)
                found = rows(module.run(batch))
                break
            except Exception:  # noqa: BLE001 - the user's run(): tried again, then counted
                print(f"mini-batch {number} failed (try {attempt} of {tries}):", flush=True)
                traceback.print_exc(file=sys.stdout)
                found = None
        if found is None:
            failed_batches += 1
            failed_items += len(group)
        else:
            if append:
                with open(append, "a", encoding="utf-8") as f:
                    f.write("".join(r + "\n" for r in found))
            appended += len(found)
        reason = exceeded(settings, failed_batches, failed_items)
        if reason:
            print(f"{len(groups)} mini-batches, {failed_batches} failed: {reason}", flush=True)
            return 1
    print(f"{len(groups)} mini-batches, {failed_batches} failed; {appended} rows appended")
    return 0


def exceeded(settings: dict, failed_batches: int, failed_items: int) -> str | None:
    batch_limit = int(settings.get("mini_batch_error_threshold", -1))
    item_limit = int(settings.get("error_threshold", -1))
    if 0 <= batch_limit < failed_batches:
        return f"mini_batch_error_threshold {batch_limit} exceeded"
    if 0 <= item_limit < failed_items:
        return f"error_threshold {item_limit} exceeded"
    return None


if __name__ == "__main__":
    sys.exit(main())
