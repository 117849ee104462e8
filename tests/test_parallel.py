"""Parallel jobs (type: parallel) on the local target: real worker processes, a real MLflow
store, the CLI. One apply of a lab with four parallel jobs is shared by most tests."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from conftest import mlflow_client, run_mlrun, start_mlrun

from runner import parallel

pytestmark = pytest.mark.e2e

WS = "mlw-parallel"
ROWS = 4  # rows per CSV file
FILE_SIZE = 300  # bytes per CSV file: 3 fit in 1kb

# The entry script: init() reads its arguments with parse_known_args (as Azure's examples do) and
# records the call; run() records its process and times, raises for a file named *boom* with
# --fail-on boom, hangs on one with --hang-on boom, waits for --gate, and returns rows.
SCORE = """\
import argparse
import os
import time
import uuid


def init():
    global args
    p = argparse.ArgumentParser(allow_abbrev=False)
    p.add_argument("--tag")
    p.add_argument("--trace")
    p.add_argument("--fail-on", default="")
    p.add_argument("--hang-on", default="")
    p.add_argument("--gate", default="")
    p.add_argument("--sleep", type=float, default=0)
    args, _ = p.parse_known_args()
    os.makedirs(args.trace, exist_ok=True)
    with open(os.path.join(args.trace, "init-%d" % os.getpid()), "a") as f:
        f.write("init\\n")


def run(mini_batch):
    start = time.time()
    names = (
        [os.path.basename(p) for p in mini_batch]
        if isinstance(mini_batch, list)
        else ["rows:%d" % len(mini_batch)]
    )
    with open(os.path.join(args.trace, "run-%s" % uuid.uuid4().hex), "w") as f:
        f.write("%d %f %s\\n" % (os.getpid(), start, " ".join(names)))
    while args.gate and not os.path.exists(args.gate):
        time.sleep(0.05)
    if args.hang_on and any(args.hang_on in n for n in names):
        time.sleep(600)
    time.sleep(args.sleep)
    if args.fail_on and any(args.fail_on in n for n in names):
        raise ValueError("cannot score " + " ".join(names))
    with open(os.path.join(args.trace, "end-%d-%f" % (os.getpid(), start)), "w") as f:
        f.write("%f" % time.time())
    if not isinstance(mini_batch, list):
        return mini_batch  # a DataFrame: its rows are appended
    return [[args.tag, n] for n in names]
"""


def csv(number: int) -> str:
    """A CSV file of exactly FILE_SIZE bytes: a header and ROWS rows."""
    head = "a,b\n"
    rows = [f"{number * 10 + r},{'x' * 20}" for r in range(ROWS)]
    body = head + "\n".join(rows) + "\n"
    pad = FILE_SIZE - len(body)
    return head + "\n".join(rows[:-1] + [rows[-1] + "x" * pad]) + "\n"


def make_lab(root: Path, jobs: str) -> Path:
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "src" / "score.py").write_text(SCORE)
    files = root / "table" / "files"
    files.mkdir(parents=True, exist_ok=True)
    for i in range(1, 13):
        (files / f"f{i:02d}.csv").write_text(csv(i))
    (files / "f13-boom.csv").write_text(csv(13))
    (root / "table" / "MLTable").write_text(
        "paths:\n  - folder: ./files\ntransformations:\n"
        "  - read_delimited: {delimiter: ',', header: all_files_same_headers}\n"
    )
    spec = root / "lab.yaml"
    spec.write_text(
        f"name: parallel-lab\nworkspace: {{name: {WS}}}\n"
        "computes:\n  cluster: {type: amlcompute, size: STANDARD_DS11_V2, max_instances: 5}\n"
        "jobs:\n" + jobs
    )
    return spec


def job(name: str, trace: Path, body: str, args: str = "", data: str = "uri_folder") -> str:
    path = "./table/files" if data == "uri_folder" else "./table"
    text = f"""\
{name}:
  type: parallel
  compute: azureml:cluster
  inputs:
    data: {{type: {data}, path: {path}, mode: ro_mount}}
    tag: hello
  outputs: {{out: {{type: uri_folder}}}}
  input_data: ${{{{inputs.data}}}}
  task:
    type: run_function
    code: ./src
    entry_script: score.py
    program_arguments: --tag ${{{{inputs.tag}}}} --trace {trace / name} {args}
    append_row_to: ${{{{outputs.out}}}}
"""
    text += "".join(f"  {line}\n" for line in body.strip().splitlines())
    return "".join(f"  {line}\n" for line in text.splitlines())


LAB_JOBS = {
    # 13 files, 3 a mini-batch: 5 mini-batches on 2 x 2 workers; the last (f13-boom) raises,
    # is tried twice, then counted: one failed mini-batch is tolerated
    "count": (
        """
mini_batch_size: "3"
resources: {instance_count: 2}
max_concurrency_per_instance: 2
mini_batch_error_threshold: 1
retry_settings: {max_retries: 1, timeout: 60}
logging_level: DEBUG
""",
        "--fail-on boom --sleep 0.5",
        "uri_folder",
    ),
    # an MLTable of CSV files: each run() gets a DataFrame of whole files up to 1kb (3 files)
    "size": ('mini_batch_size: "1kb"\n', "", "mltable"),
    # one failed file is more than error_threshold 0 allows
    "threshold": (
        "mini_batch_size: 5\nerror_threshold: 0\nretry_settings: {max_retries: 0}\n",
        "--fail-on boom",
        "uri_folder",
    ),
    # a mini-batch that never returns: stopped at the timeout, tried twice, then the job fails
    "hang": (
        "mini_batch_size: 20\nmini_batch_error_threshold: 0\n"
        "retry_settings: {max_retries: 1, timeout: 2}\n",
        "--hang-on boom",
        "uri_folder",
    ),
}


@pytest.fixture(scope="module")
def applied(tmp_path_factory):
    root = tmp_path_factory.mktemp("parallel")
    trace = root / "trace"
    jobs = "".join(job(n, trace, body, args, data) for n, (body, args, data) in LAB_JOBS.items())
    spec = make_lab(root, jobs)
    proc = run_mlrun("apply", "-y", spec, cwd=root, timeout=300, check=1)
    client = mlflow_client(root, WS)
    exp = client.get_experiment_by_name("parallel-lab")
    runs = {r.data.tags["mlrun.job"]: r for r in client.search_runs([exp.experiment_id])}
    return {"root": root, "spec": spec, "trace": trace, "proc": proc, "runs": runs}


def run_folder(root: Path, name: str) -> Path:
    (folder,) = (root / ".mlrun" / "local" / WS / "runs" / name).iterdir()
    return folder


def calls(trace: Path) -> list[tuple[int, float, float | None, list[str]]]:
    """Each run() call: (pid, start, end or None if it raised or hung, its files)."""
    ends = {}
    for f in trace.glob("end-*"):
        _, pid, start = f.name.split("-", 2)
        ends[(int(pid), round(float(start), 3))] = float(f.read_text())
    out = []
    for f in trace.glob("run-*"):
        pid, start, *names = f.read_text().split()
        out.append((int(pid), float(start), ends.get((int(pid), round(float(start), 3))), names))
    return sorted(out, key=lambda c: c[1])


# --- the shared apply ---------------------------------------------------------------------------


def test_mini_batches_by_count_each_tried_and_a_failing_one_retried_then_counted(applied):
    runs = calls(applied["trace"] / "count")
    batches = sorted(" ".join(names) for _, _, _, names in runs)
    # 4 good mini-batches once each, the failing one twice (max_retries: 1)
    assert batches == [
        "f01.csv f02.csv f03.csv",
        "f04.csv f05.csv f06.csv",
        "f07.csv f08.csv f09.csv",
        "f10.csv f11.csv f12.csv",
        "f13-boom.csv",
        "f13-boom.csv",
    ]
    log = (run_folder(applied["root"], "count") / "user_logs" / "std_log.txt").read_text()
    assert (
        "[parallel] mini-batch 5 failed (try 1 of 2): ValueError: cannot score f13-boom.csv" in log
    )
    assert (
        "[parallel] mini-batch 5 failed (try 2 of 2): ValueError: cannot score f13-boom.csv" in log
    )
    assert (
        "[parallel] mini-batches: 4 succeeded, 1 failed; items: 12 processed, 1 failed; "
        "12 rows appended to " in log
    )


def test_workers_overlap_and_each_calls_init_once(applied):
    trace = applied["trace"] / "count"
    runs = calls(trace)
    pids = {pid for pid, *_ in runs}
    assert 2 <= len(pids) <= 4  # 2 instances x 2 per instance, at most
    inits = {int(f.name.split("-")[1]): f.read_text() for f in trace.glob("init-*")}
    assert set(inits) >= pids and len(inits) == 4  # every worker started (forked or not)
    assert all(text == "init\n" for text in inits.values())  # once per worker process
    # two calls of different workers ran at the same time (by the times the script wrote)
    done = [(pid, start, end) for pid, start, end, _ in runs if end is not None]
    overlaps = [
        (a, b)
        for a in done
        for b in done
        if a[0] != b[0] and a[1] < b[1] < a[2]  # b started while a ran
    ]
    assert overlaps


def test_program_arguments_reach_the_script_and_rows_are_appended(applied):
    out = run_folder(applied["root"], "count") / "outputs" / "out" / parallel.APPEND_FILE
    rows = sorted(out.read_text().splitlines())
    assert rows == [f"hello f{i:02d}.csv" for i in range(1, 13)]


def test_mini_batches_by_size_of_tabular_data_get_dataframes(applied):
    runs = calls(applied["trace"] / "size")
    # 13 files of 300 bytes, 1kb a mini-batch: 3 files (12 rows) a DataFrame, the last 1 file
    assert sorted(names[0] for *_, names in runs) == ["rows:12"] * 4 + ["rows:4"]
    out = run_folder(applied["root"], "size") / "outputs" / "out" / parallel.APPEND_FILE
    rows = out.read_text().splitlines()
    assert len(rows) == 13 * ROWS
    assert "10 xxxxxxxxxxxxxxxxxxxx" in rows  # a DataFrame's values, separated by spaces


def test_error_threshold_fails_the_job_with_the_reason(applied):
    out = applied["proc"].stdout + applied["proc"].stderr
    assert (
        "exit code 1: error_threshold 0 exceeded: 3 items failed "
        "(the last: mini-batch 3 failed)" in out  # f11, f12 and f13-boom: each item counts
    )
    log = (run_folder(applied["root"], "threshold") / "user_logs" / "std_log.txt").read_text()
    assert "[parallel] error: error_threshold 0 exceeded: 3 items failed" in log


def test_a_mini_batch_that_times_out_is_stopped_and_retried(applied):
    runs = calls(applied["trace"] / "hang")
    assert [len(names) for *_, names in runs] == [13, 13]  # one mini-batch, tried twice
    assert len({pid for pid, *_ in runs}) == 2  # the hung worker was replaced
    log = (run_folder(applied["root"], "hang") / "user_logs" / "std_log.txt").read_text()
    assert log.count("timed out after 2s (retry_settings.timeout)") == 2
    assert "mini_batch_error_threshold 0 exceeded: 1 mini-batches failed (1)" in log


def test_each_job_is_an_mlflow_run_with_its_status_counts_and_worker_logs(applied):
    runs = applied["runs"]
    assert {n: r.info.status for n, r in runs.items()} == {
        "count": "FINISHED",
        "size": "FINISHED",
        "threshold": "FAILED",
        "hang": "FAILED",
    }
    assert runs["count"].data.metrics == {
        "mini_batches_succeeded": 5 - 1,
        "mini_batches_failed": 1,
        "items_processed": 12,
        "items_failed": 1,
        "rows_appended": 12,
    }
    assert runs["count"].data.params == {
        "mini_batch_size": "3",
        "mini_batches": "5",
        "workers": "4",
    }
    client = mlflow_client(applied["root"], WS)
    run_id = runs["count"].info.run_id
    assert [a.path for a in client.list_artifacts(run_id)] == ["logs", "out", "user_logs"]
    logs = [a.path for a in client.list_artifacts(run_id, "logs/user/stdout")]
    assert logs == ["logs/user/stdout/node0", "logs/user/stdout/node1"]


def test_the_plan_says_how_it_runs_and_a_reapply_skips_what_completed(applied):
    root, spec = applied["root"], applied["spec"]
    plan = run_mlrun("plan", spec, cwd=root, check=0).stdout
    lines = {line.split()[1]: line for line in plan.splitlines() if line[2:3] in ("=", ">")}
    assert "up to date" in lines["job.count"]
    assert lines["job.threshold"].endswith(
        " Failed; parallel, 1 x 1 workers, mini-batches of 5 files: 13 files in 3 mini-batches"
    )
    run_mlrun("apply", "-y", "--only", "count", spec, cwd=root, check=0)
    assert len(list((root / ".mlrun" / "local" / WS / "runs" / "count").iterdir())) == 1


# --- validation ---------------------------------------------------------------------------------


def test_bad_fields_are_located_errors_and_nothing_is_touched(tmp_path):
    spec = make_lab(
        tmp_path,
        job("bad", tmp_path / "trace", 'mini_batch_size: "10zb"\nerror_threshold: -2\n')
        .replace("${{inputs.data}}", "${{inputs.dta}}")
        .replace("${{outputs.out}}", "${{outputs.result}}")
        .replace("entry_script: score.py", "entry_script: scor.py"),
    )
    proc = run_mlrun("apply", "-y", spec, cwd=tmp_path, check=1)
    lines = spec.read_text().splitlines()

    def at(key: str) -> str:  # where the value of `key:` starts
        row = next(i for i, line in enumerate(lines) if line.strip().startswith(key))
        return f"lab.yaml:{row + 1}:{lines[row].index(key) + len(key) + 1}"

    assert proc.stderr.splitlines() == [  # in the order of the file
        f"{at('input_data: ')}: error: $.jobs.bad.input_data: '${{{{inputs.dta}}}}' is not "
        "declared in inputs (declared: data, tag)",
        f"{at('entry_script: ')}: error: $.jobs.bad.task.entry_script: entry script 'scor.py' "
        "is not in the code folder './src'",
        f"{at('append_row_to: ')}: error: $.jobs.bad.task.append_row_to: "
        "'${{outputs.result}}' is not declared in outputs (declared: out)",
        f"{at('mini_batch_size: ')}: error: $.jobs.bad.mini_batch_size: '10zb' is not valid: "
        "use a count of files (10) or a size (10kb, 1mb, 1gb)",
        f"{at('error_threshold: ')}: error: $.jobs.bad.error_threshold: must be at least -1 "
        "(got -2)",
    ]
    assert not (tmp_path / ".mlrun").exists()


def test_azure_only_settings_are_refused_locally(tmp_path):
    spec = make_lab(
        tmp_path,
        job("other", tmp_path / "trace", "partition_keys: [a]\n").replace(
            "type: run_function", "type: model"
        ),
    )
    proc = run_mlrun("plan", spec, cwd=tmp_path, check=1)
    assert "$.jobs.other.task.type: a model task runs on Azure ML only" in proc.stderr
    assert "$.jobs.other.partition_keys: partition_keys runs on Azure ML only" in proc.stderr
    assert run_mlrun("validate", spec, cwd=tmp_path, check=0).returncode == 0  # warnings


def test_batch_sizes_and_the_splitting_rule(tmp_path):
    assert parallel.batch_size("10kb") == ("bytes", 10 * 1024)
    assert parallel.batch_size("2MB") == ("bytes", 2 * 1024**2)
    assert parallel.batch_size("7") == ("files", 7)
    assert parallel.batch_size(3) == ("files", 3)
    assert parallel.batch_size("10zb") is None
    for i, size in enumerate([100, 100, 900, 50, 2000, 10]):
        (tmp_path / f"{i}.bin").write_bytes(b"x" * size)
    files = sorted(tmp_path.iterdir())
    groups = parallel.mini_batches(files, ("bytes", 1000), tabular=False)
    # whole files up to the size; a larger file is a mini-batch of its own
    assert [[f.name for f in g] for g in groups] == [
        ["0.bin", "1.bin"],
        ["2.bin", "3.bin"],
        ["4.bin"],
        ["5.bin"],
    ]


# --- a killed apply -------------------------------------------------------------------------------


def test_a_killed_apply_adopts_the_running_parallel_job_and_runs_nothing_twice(tmp_path):
    gate, trace = tmp_path / "go", tmp_path / "trace"
    spec = make_lab(
        tmp_path, job("held", trace, 'mini_batch_size: "5"\n', f"--gate {gate}", "uri_folder")
    )
    proc = start_mlrun("apply", "-y", spec, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not (trace / "held").is_dir() or not any((trace / "held").glob("run-*")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # mlrun dies; the job's controller and workers go on
    proc.wait()
    threading.Timer(2.0, gate.touch).start()  # while the next apply waits on it
    again = run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0)  # adopts it, waits for it
    assert "job.held  Completed  run " in again.stdout
    assert len(list((tmp_path / ".mlrun" / "local" / WS / "runs" / "held").iterdir())) == 1
    out = run_folder(tmp_path, "held") / "outputs" / "out" / parallel.APPEND_FILE
    assert len(out.read_text().splitlines()) == 13
    assert sorted(" ".join(n) for *_, n in calls(trace / "held")) == [
        "f01.csv f02.csv f03.csv f04.csv f05.csv",
        "f06.csv f07.csv f08.csv f09.csv f10.csv",
        "f11.csv f12.csv f13-boom.csv",
    ]
    assert run_mlrun("plan", spec, cwd=tmp_path, check=0).stdout.endswith(
        "No changes. Everything is up to date.\n"
    )


def test_export_writes_a_parallel_job_file_and_the_azure_target_says_where_it_runs(tmp_path):
    pytest.importorskip("azure.ai.ml", reason="needs the azure extra (installed by .ci/run)")
    import yaml

    spec = make_lab(tmp_path, job("score", tmp_path / "trace", 'mini_batch_size: "10kb"\n'))
    run_mlrun("export", spec, "-o", tmp_path / "out", cwd=tmp_path, check=0)
    doc = yaml.safe_load((tmp_path / "out" / "jobs" / "score.yml").read_text())
    assert (doc["$schema"], doc["type"], doc["mini_batch_size"]) == (
        "https://azuremlschemas.azureedge.net/latest/parallelJob.schema.json",
        "parallel",
        "10kb",
    )
    assert doc["task"]["code"] == "../../src" and "code" not in doc
    proc = run_mlrun(
        "validate", "--target", "azure", spec, cwd=tmp_path, env={"AZURE_SUBSCRIPTION_ID": "x"}
    )
    assert "$.jobs.score.type: Azure ML runs a parallel job only as a pipeline step" in proc.stderr
