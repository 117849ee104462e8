"""Reports and run queries on a real store from a real lab run."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import mlrun_cmd, run_mlrun

pytestmark = pytest.mark.e2e
FILTER = "metrics.AUC > 0.8 and tags.model_type = 'LogisticRegression'"


@pytest.fixture(scope="module")
def seed_report(seed_lab):
    proc = run_mlrun(
        "report", "specs/mlflow-tracking.yaml", "--format", "json", cwd=seed_lab["root"], check=0
    )
    return json.loads(proc.stdout)


def test_report_json_has_each_jobs_latest_run(seed_report, seed_lab):
    r = seed_report
    assert (r["format_version"], r["lab"], r["target"]) == (1, "mlflow-tracking", "local")
    jobs = {j["job"]: j for j in r["jobs"]}
    assert list(jobs) == ["train-mlflow", "train-autolog"]
    manual = jobs["train-mlflow"]
    assert manual["status"] == "Completed" and manual["experiment"] == "diabetes-training"
    assert manual["params"] == {"Regularization rate": "0.01"}
    assert list(manual["metrics"]) == ["AUC", "Accuracy"]
    assert manual["tags"] == {"model_type": "LogisticRegression"}
    assert {"ROC-Curve.png", "user_logs/std_log.txt"} <= set(manual["artifacts"])
    assert [i["path"] for i in manual["images"]] == ["ROC-Curve.png"]
    assert "data" not in manual["images"][0]  # image bytes only for HTML
    assert Path(manual["where"]).is_dir() and manual["duration"] > 0
    assert manual["previous"] is None and manual["histories"] == {}
    auto_images = [i["path"] for i in jobs["train-autolog"]["images"]]
    assert "training_confusion_matrix.png" in auto_images


def test_report_compares_the_experiments_runs_and_answers_the_saved_query(seed_report):
    (exp,) = seed_report["experiments"]
    assert exp["name"] == "diabetes-training"
    assert exp["metrics"][:2] == ["AUC", "Accuracy"] or {"AUC", "Accuracy"} <= set(exp["metrics"])
    assert sorted(r["run_name"] for r in exp["runs"]) == [
        "diabetes-train-autolog",
        "diabetes-train-mlflow",
    ]
    (q,) = seed_report["queries"]
    assert (q["name"], q["filter"], q["order_by"], q["max_results"], q["error"]) == (
        "best-auc",
        FILTER,
        ["start_time DESC"],
        2,
        None,
    )
    assert [run["run_name"] for run in q["runs"]] == ["diabetes-train-mlflow"]


def test_report_markdown_tables(seed_report, seed_lab):
    md = run_mlrun(
        "report",
        "specs/mlflow-tracking.yaml",
        "--format",
        "markdown",
        cwd=seed_lab["root"],
        check=0,
    ).stdout
    manual = seed_report["jobs"][0]
    lines = md.splitlines()
    assert lines[:3] == ["# mlflow-tracking", "", "Use MLflow to track training jobs"]
    assert "| job | status | run | duration | params | metrics |" in lines
    row = (
        f"| train-mlflow | Completed | [{manual['run_id'][:7]}]({manual['where']}) "
        f"| {manual['duration']:.1f}s | Regularization rate=0.01 "
        f"| AUC={manual['metrics']['AUC']:.4g}, "
        f"Accuracy={manual['metrics']['Accuracy']:.4g} |"
    )
    assert row in lines
    assert "## Query `best-auc`" in lines
    assert f"`{FILTER}` on `diabetes-training`, ordered by start_time DESC, at most 2" in lines
    assert "<img" not in md


def test_the_terminal_report_has_what_the_others_have(seed_report, seed_lab):
    # was: only apply's closing table; the experiments and queries were in Markdown and JSON only
    text = run_mlrun("report", "specs/mlflow-tracking.yaml", cwd=seed_lab["root"], check=0).stdout
    closing, *sections = text.split("\n\n")
    assert closing.splitlines()[0].split() == ["JOB", "STATUS", "RUN", "DURATION"]
    (exp,) = seed_report["experiments"]
    experiment = sections[0].splitlines()
    assert experiment[0] == f"experiment {exp['name']}: {len(exp['runs'])} runs"
    assert experiment[1].split() == ["RUN", "JOB", "STATUS", *exp["metrics"]]
    assert [line.split()[:3] for line in experiment[2:]] == [
        [r["run_name"], r["job"], r["status"]] for r in exp["runs"]
    ]
    (query,) = seed_report["queries"]
    said = sections[1].splitlines()
    assert said[0] == f"query best-auc: {FILTER} on diabetes-training, ordered by start_time DESC"
    assert [line.split()[:2] for line in said[2:]] == [
        [r["run_name"], r["status"]] for r in query["runs"]
    ]
    assert len(sections) == 2  # the seed has no data assets, models or endpoints


def test_report_writes_a_file(seed_lab, tmp_path):
    out = tmp_path / "r.json"
    proc = run_mlrun(
        "report",
        "specs/mlflow-tracking.yaml",
        "--format",
        "json",
        "-o",
        out,
        cwd=seed_lab["root"],
        check=0,
    )
    assert proc.stdout == f"Wrote {out}\n"
    assert json.loads(out.read_text())["format_version"] == 1


def test_runs_saved_query_and_the_same_search_by_flags(seed_lab):
    root = seed_lab["root"]
    by_name = json.loads(
        run_mlrun(
            "runs", "specs/mlflow-tracking.yaml", "best-auc", "--json", cwd=root, check=0
        ).stdout
    )
    by_flags = json.loads(
        run_mlrun(
            "runs",
            "specs/mlflow-tracking.yaml",
            "--experiment",
            "diabetes-training",
            "--filter",
            FILTER,
            "--order-by",
            "start_time DESC",
            "--max-results",
            "2",
            "--json",
            cwd=root,
            check=0,
        ).stdout
    )
    assert by_name == by_flags
    assert [r["run_name"] for r in by_name["runs"]] == ["diabetes-train-mlflow"]
    table = run_mlrun(
        "runs", "specs/mlflow-tracking.yaml", "best-auc", cwd=root, check=0
    ).stdout.splitlines()
    assert table[0].split() == ["RUN", "ID", "STATUS", "START", "METRICS"]
    assert (
        table[1].startswith("diabetes-train-mlflow  ") and table[-1] == "1 run in diabetes-training"
    )
    everything = json.loads(
        run_mlrun("runs", "specs/mlflow-tracking.yaml", "--json", cwd=root, check=0).stdout
    )
    assert len(everything["runs"]) == 2


def test_runs_with_a_bad_filter_says_mlflows_reason_in_one_line(seed_lab):
    proc = run_mlrun(
        "runs",
        "specs/mlflow-tracking.yaml",
        "--filter",
        "metrics.AUC >> 1",
        cwd=seed_lab["root"],
        check=1,
    )
    assert proc.stdout == ""
    assert proc.stderr.startswith(
        "error: MLflow rejected the search: Invalid comparator '>>' not one of "
    )
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    proc = run_mlrun("runs", "specs/mlflow-tracking.yaml", "nope", cwd=seed_lab["root"], check=1)
    assert (
        proc.stderr
        == "error: no query named 'nope' in specs/mlflow-tracking.yaml (queries: best-auc)\n"
    )


def test_report_shows_metric_histories_and_the_change_since_the_previous_run(tmp_path):
    (tmp_path / "x.txt").write_text("0.5")
    script = (
        "import mlflow; v = float(open('${{inputs.x}}').read()); "
        "[mlflow.log_metric('loss', v / (s + 1), step=s) for s in range(4)]; "
        "mlflow.log_metric('score', v)"
    )
    spec = tmp_path / "lab.yaml"
    spec.write_text(f"""name: hist
workspace: {{name: ws-hist}}
jobs:
  fit:
    command: python -c "{script}"
    inputs: {{x: {{type: uri_file, path: x.txt}}}}
""")
    run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0)
    (tmp_path / "x.txt").write_text("0.75")
    out = run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0).stdout
    assert "     metrics  loss=0.1875 (+0.0625)  score=0.75 (+0.25)\n" in out
    (job,) = json.loads(
        run_mlrun("report", spec, "--format", "json", cwd=tmp_path, check=0).stdout
    )["jobs"]
    assert job["histories"] == {"loss": [[0, 0.75], [1, 0.375], [2, 0.25], [3, 0.1875]]}
    assert job["previous"]["metrics"] == {"loss": 0.125, "score": 0.5}
    assert job["previous"]["change"] == {"loss": 0.0625, "score": 0.25}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group(pgid: int) -> list[int]:
    """The live processes of a process group (zombies, reaped or not, are not alive)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                found.append(int(entry))
    return found


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name
)
def test_ui_says_its_url_once_it_answers_and_any_stop_signal_leaves_no_process(seed_lab, sig):
    port = _free_port()
    proc = subprocess.Popen(
        mlrun_cmd() + ["ui", "specs/mlflow-tracking.yaml", "--port", str(port)],
        cwd=seed_lab["root"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a signal for mlrun alone, as a process manager sends it
        # SIGINT as a terminal has it, even if this process started with it ignored (a shell's
        # background job): Python then raises KeyboardInterrupt on it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    pgid = 0
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # printed only once the port answers
            if f"http://127.0.0.1:{port}" in line:
                break
        else:
            pytest.fail(f"mlrun ui never said its URL (exit {proc.wait()})")
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read().decode()
        assert "<title>MLflow</title>" in body
        server = subprocess.run(
            ["pgrep", "-f", f"mlflow server .*--port {port}"], capture_output=True, text=True
        ).stdout.split()
        assert server, "the server should be running"
        pgid = os.getpgid(int(server[0]))
        assert len(_group(pgid)) >= 2, "the server and its uvicorn worker"
    finally:
        proc.send_signal(sig)
        proc.communicate(timeout=60)
    assert proc.returncode == 130
    deadline = time.monotonic() + 5
    while _group(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _group(pgid) == []


def test_ui_refuses_a_taken_port_and_says_when_the_server_exits_early(seed_lab, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            mlrun_cmd() + ["ui", "specs/mlflow-tracking.yaml", "--port", str(port)],
            cwd=seed_lab["root"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in proc.stderr
    assert "Starting" not in proc.stderr

    # an `mlflow` that exits at once, first on the server's path
    fake = tmp_path / "fake" / "mlflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(
        "import sys; print('no server today', file=sys.stderr); sys.exit(4)"
    )
    env = {**os.environ, "PYTHONPATH": str(fake.parent)}
    proc = subprocess.run(
        mlrun_cmd() + ["ui", "specs/mlflow-tracking.yaml", "--port", str(_free_port())],
        cwd=seed_lab["root"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 1, proc.stderr
    assert "no server today" in proc.stderr
    assert "mlflow server exited (code 4) before it answered" in proc.stderr
    assert "MLflow UI on" not in proc.stderr


def test_a_run_the_store_does_not_have_is_reported_without_its_mlflow_data(tmp_path):
    """A run recorded in the state that the tracking store has no run for (on Azure: a job named
    before mlrun stopped, never submitted): the report shows the job as the state has it,
    without params or metrics, and does not fail."""
    spec = tmp_path / "gone.yaml"
    spec.write_text(
        "name: gone\nworkspace: {name: ws-gone}\n"
        "jobs:\n  kept: {command: echo kept}\n  lost: {command: echo lost}\n"
    )
    run_mlrun("apply", "-y", spec, cwd=tmp_path)
    run_mlrun("apply", "-y", spec, "--force", "lost", cwd=tmp_path)  # a completed run before it
    state = tmp_path / ".mlrun" / "gone.local.json"
    data = json.loads(state.read_text())
    for run in data["jobs"]["lost"]["runs"]:
        run["id"] = run["id"][::-1]  # ids the store does not have
    state.write_text(json.dumps(data))
    out = run_mlrun("report", spec, "--format", "json", cwd=tmp_path)
    jobs = {j["job"]: j for j in json.loads(out.stdout)["jobs"]}
    assert jobs["lost"]["status"] == "Completed" and jobs["lost"]["run_id"]
    assert jobs["lost"]["metrics"] == {} and jobs["lost"]["previous"] is None
    assert jobs["kept"]["status"] == "Completed"
    table = run_mlrun("report", spec, cwd=tmp_path)
    assert "lost" in table.stdout and "Traceback" not in table.stderr


def test_a_report_before_anything_ran_is_empty_not_an_error(mlrun, tmp_path):
    # was: exit 1, "nothing has run yet"; a report of nothing says what is there: jobs never run
    (tmp_path / "lab.yaml").write_text(
        "name: fresh\nworkspace: {name: mlw-fresh}\n"
        "jobs:\n  hello: {command: echo hi, environment: azureml:AzureML-sklearn-1.5@latest}\n"
    )
    code, out, err = mlrun("report", "lab.yaml", "--format", "json", cwd=tmp_path)
    assert (code, err) == (0, "")
    found = json.loads(out)
    assert [(j["job"], j["status"], j["run_id"]) for j in found["jobs"]] == [
        ("hello", "never run", None)
    ]
    code, out, _ = mlrun("report", "lab.yaml", cwd=tmp_path)
    assert code == 0 and out.splitlines()[1].split() == ["hello", "never", "run", "-", "-"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab.yaml"]  # nothing made
