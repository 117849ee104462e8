"""One worker process of a parallel job: runs in the job's environment (its Python, which may not
have mlrun), so it uses the standard library only (pandas too, for tabular data).

Started by the parallel job's controller as `python parallel_worker.py IN OUT ENTRY_SCRIPT
LOGGING_LEVEL [ARGS...]` in the job's working folder, with IN and OUT two pipe descriptors. It
imports the entry script, with sys.argv = [ENTRY_SCRIPT, ARGS...] (as Azure ML's
ParallelRunStep passes program_arguments, so argparse's parse_known_args() works in init()); with
MLRUN_PARALLEL_FORKS (the pipes and log files of the job's other workers) it then forks them,
so a script and what it imports are imported once, not once per worker (a second or more each,
for MLflow and pandas). Each worker says {"pid"}, calls init() once, says {"ready": true}, then
for each request {"id", "files", "tabular"} calls run(mini_batch) and answers {"id", "ok",
"items", "rows"} (rows: each returned row as a line of text, values separated by spaces) or
{"id", "ok": false, "error"}. A failed import or init() is {"init_error": ...}, then it exits.
Its own stdout and stderr are the worker's log file.
"""

import importlib.util
import json
import logging
import os
import signal
import sys
import traceback

FORKS = "MLRUN_PARALLEL_FORKS"


def load(entry: str, args: list):
    """The entry script imported (not initialised)."""
    sys.argv = [entry, *args]
    sys.path.insert(0, os.getcwd())
    name = os.path.splitext(os.path.basename(entry))[0]
    spec = importlib.util.spec_from_file_location(name, entry)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"{entry} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "run", None)):
        raise RuntimeError(f"{entry} defines no run(mini_batch) function")
    return module


def mini_batch(files: list, tabular):
    """The run() argument: the files' paths, or for tabular data a DataFrame of their rows."""
    if tabular is None:
        return list(files)
    import pandas as pd

    options = {k: v for k, v in tabular.items() if k != "reader"}
    reader = tabular["reader"]
    frames = [
        pd.read_csv(f, **options)
        if reader == "read_delimited"
        else pd.read_parquet(f)
        if reader == "read_parquet"
        else pd.read_json(f, lines=True)
        for f in files
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def rows(result) -> list:
    """What run() returned as lines: a DataFrame's rows, or a list's elements (a list or tuple
    element's values separated by spaces)."""
    if hasattr(result, "itertuples"):
        return [" ".join(str(v) for v in row) for row in result.itertuples(index=False)]
    if isinstance(result, (list, tuple)):
        return [
            " ".join(str(v) for v in r) if isinstance(r, (list, tuple)) else str(r) for r in result
        ]
    raise TypeError(
        f"run() returned {type(result).__name__}: it must return a list or a pandas DataFrame"
    )


def serve(module, requests, answers) -> int:
    """init() once, then run(mini_batch) for each request, until the requests end."""

    def say(message: dict) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        answers.write(json.dumps(message) + "\n")
        answers.flush()

    say({"pid": os.getpid()})
    try:
        if hasattr(module, "init"):
            module.init()
    except BaseException:  # noqa: BLE001 - a user's script: said to the controller, whatever it is
        say({"init_error": traceback.format_exc()})
        return 1
    say({"ready": True})
    for line in requests:
        request = json.loads(line)
        try:
            batch = mini_batch(request["files"], request["tabular"])
            found = rows(module.run(batch))
            say({"id": request["id"], "ok": True, "items": len(batch), "rows": found})
        except Exception:  # noqa: BLE001 - the mini-batch failed; the controller retries it
            say({"id": request["id"], "ok": False, "error": traceback.format_exc()})
    return 0


def main() -> int:
    requests = os.fdopen(int(sys.argv[1]), "r")
    answers = os.fdopen(int(sys.argv[2]), "w")
    entry, level, args = sys.argv[3], sys.argv[4], sys.argv[5:]
    # the other workers this process is the first of: [requests fd, answers fd, log file] each
    others = json.loads(os.environ.pop(FORKS, "[]"))
    logging.basicConfig(level=getattr(logging, level, logging.INFO))
    try:
        module = load(entry, args)
    except BaseException:  # noqa: BLE001 - a user's script: said to the controller, whatever it is
        answers.write(json.dumps({"init_error": traceback.format_exc()}) + "\n")
        answers.flush()
        return 1
    # imported once, the script's other workers are forked from here: each then runs init() and
    # its mini-batches as a process of its own (as a server preloading its app forks workers)
    if others:
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # they are reaped as they end
    for i, (r, w, log) in enumerate(others):
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            requests.close()
            answers.close()
            for r2, w2, _ in others[i + 1 :]:  # (the earlier ones' are closed already)
                os.close(r2)
                os.close(w2)
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.close(out)
            code = serve(module, os.fdopen(r, "r"), os.fdopen(w, "w"))
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        os.close(r)
        os.close(w)
    return serve(module, requests, answers)


if __name__ == "__main__":
    sys.exit(main())
