"""The local target end to end: real subprocesses, a real MLflow SQLite store, the real CLI."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import mlflow_client, mlrun_cmd, run_mlrun

pytestmark = pytest.mark.e2e


def write_spec(folder: Path, body: str, name: str = "lab.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(body)
    return path


def runs_of(root, workspace, experiment):
    client = mlflow_client(root, workspace)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], order_by=["start_time ASC"]) if exp else []


# --- the seed lab, run once ----------------------------------------------------------------------


def test_seed_lab_runs_carry_the_labs_params_metrics_tags_and_artifacts(seed_lab):
    client = mlflow_client(seed_lab["root"] / "specs", "mlw-dp100-e2e")
    exp = client.get_experiment_by_name("diabetes-training")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert sorted(runs) == ["diabetes-train-autolog", "diabetes-train-mlflow"]
    manual, auto = runs["diabetes-train-mlflow"], runs["diabetes-train-autolog"]
    assert manual.info.status == auto.info.status == "FINISHED"
    assert manual.data.params == {"Regularization rate": "0.01"}
    assert set(manual.data.metrics) == {"Accuracy", "AUC"}
    assert 0.8 < manual.data.metrics["AUC"] < 1
    assert manual.data.tags["model_type"] == "LogisticRegression"
    assert manual.data.tags["mlrun.job"] == "train-mlflow"
    assert "training_roc_auc" in auto.data.metrics and auto.data.params["C"] == "100.0"
    assert "model_type" not in auto.data.tags
    artifacts = {a.path for a in client.list_artifacts(manual.info.run_id)}
    assert {"ROC-Curve.png", "user_logs"} <= artifacts
    logs = [a.path for a in client.list_artifacts(manual.info.run_id, "user_logs")]
    assert logs == ["user_logs/std_log.txt"]
    local = client.download_artifacts(manual.info.run_id, "user_logs/std_log.txt")
    assert "AUC: 0.8" in Path(local).read_text()
    assert exp.artifact_location.startswith((seed_lab["root"] / "specs" / ".mlrun").as_uri())


def test_seed_apply_prints_progress_and_a_results_table(seed_lab):
    out = seed_lab["apply"].stdout
    assert "Plan: 3 to add, 0 to change, 0 to replace, 0 to destroy, 2 jobs to run." in out
    assert "job.train-mlflow  Completed" in out
    table = out[out.index("JOB ") :]
    assert "train-mlflow   Completed" in table
    assert "params   Regularization rate=0.01" in table
    assert "metrics  AUC=0.8" in table


def test_best_auc_query_finds_the_hand_logged_run(seed_lab):
    client = mlflow_client(seed_lab["root"] / "specs", "mlw-dp100-e2e")
    exp = client.get_experiment_by_name("diabetes-training")
    found = client.search_runs(
        [exp.experiment_id],
        filter_string="metrics.AUC > 0.8 and tags.model_type = 'LogisticRegression'",
        order_by=["start_time DESC"],
        max_results=2,
    )
    assert [r.info.run_name for r in found] == ["diabetes-train-mlflow"]


def test_second_apply_changes_nothing_and_imports_no_mlflow(seed_lab):
    root = seed_lab["root"]
    before = len(runs_of(root / "specs", "mlw-dp100-e2e", "diabetes-training"))
    proc = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "runner",
            "apply",
            "-y",
            "specs/mlflow-tracking.yaml",
        ],
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith("No changes. Everything is up to date.\n")
    assert "= job.train-mlflow" in proc.stdout
    assert not [
        line for line in proc.stderr.splitlines() if line.endswith(("| mlflow", "| pandas"))
    ]
    assert len(runs_of(root / "specs", "mlw-dp100-e2e", "diabetes-training")) == before


def test_status_json_has_tracking_uri_and_latest_runs(seed_lab):
    proc = run_mlrun(
        "status", "specs/mlflow-tracking.yaml", "--json", cwd=seed_lab["root"], check=0
    )
    data = json.loads(proc.stdout)
    db = seed_lab["root"] / "specs" / ".mlrun" / "local" / "mlw-dp100-e2e" / "mlflow.db"
    assert data["tracking_uri"] == f"sqlite:///{db}"
    jobs = {j["job"]: j for j in data["jobs"]}
    assert jobs["train-mlflow"]["status"] == "Completed" and jobs["train-mlflow"]["up_to_date"]
    client = mlflow_client(seed_lab["root"] / "specs", "mlw-dp100-e2e")
    assert client.get_run(jobs["train-autolog"]["run_id"]).info.run_name == "diabetes-train-autolog"


# --- small labs, one per test --------------------------------------------------------------------

QUICK = """name: quick
workspace: {name: ws-quick}
computes:
  cluster: {type: amlcompute, max_instances: 2}
jobs:
"""


def test_input_change_reruns_only_that_job(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "b.txt").write_text("two")
    spec = write_spec(
        tmp_path,
        QUICK
        + """  a:
    command: cat ${{inputs.data}}
    inputs: {data: {type: uri_file, path: a.txt}}
    compute: cluster
  b:
    command: cat ${{inputs.data}}
    inputs: {data: {type: uri_file, path: b.txt}}
    compute: cluster
""",
    )
    run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0)
    first = {
        r.data.tags["mlrun.job"]: r.info.run_id for r in runs_of(tmp_path, "ws-quick", "quick")
    }
    (tmp_path / "a.txt").write_text("changed")
    plan = run_mlrun("plan", spec, cwd=tmp_path, check=0).stdout
    assert f"  > job.a                        inputs changed since run {first['a'][:7]}\n" in plan
    assert (
        f"  = job.b                        up to date (run {first['b'][:7]}, Completed)\n" in plan
    )
    run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0)
    runs = runs_of(tmp_path, "ws-quick", "quick")
    assert sorted(r.data.tags["mlrun.job"] for r in runs) == ["a", "a", "b"]
    log = run_mlrun("logs", spec, "a", cwd=tmp_path, check=0).stdout
    assert log == "changed\n"  # a log cut mid-line ends its line: the prompt does not run into it


def test_failing_job_fails_apply_keeps_its_log_and_spares_the_others(tmp_path):
    spec = write_spec(
        tmp_path,
        QUICK
        + """  bad:
    command: echo about to fail; echo boom >&2; exit 3
    compute: cluster
  good:
    command: echo fine
    compute: cluster
""",
    )
    proc = run_mlrun("apply", "-y", spec, cwd=tmp_path, check=1)
    assert "error: 1 job did not complete: bad (run " in proc.stderr
    assert ": exit code 3); see mlrun logs" in proc.stderr
    runs = {r.data.tags["mlrun.job"]: r for r in runs_of(tmp_path, "ws-quick", "quick")}
    assert runs["bad"].info.status == "FAILED"
    assert runs["good"].info.status == "FINISHED"
    assert run_mlrun("logs", spec, "bad", cwd=tmp_path, check=0).stdout == "about to fail\nboom\n"
    client = mlflow_client(tmp_path, "ws-quick")
    text = Path(
        client.download_artifacts(runs["bad"].info.run_id, "user_logs/std_log.txt")
    ).read_text()
    assert text == "about to fail\nboom\n"
    plan = run_mlrun("plan", spec, cwd=tmp_path, check=0).stdout
    assert f"> job.bad                      run {runs['bad'].info.run_id[:7]} Failed" in plan


def test_timeout_kills_the_job_and_its_children(tmp_path):
    marker = f"mlrun-timeout-{os.getpid()}"
    sleeper = f'python -c "import time; time.sleep(300)" {marker}'
    spec = write_spec(
        tmp_path,
        QUICK
        + f"""  slow:
    command: ({sleeper}; echo after) & {sleeper}
    compute: cluster
    limits: {{timeout: 2}}
""",
    )
    start = time.monotonic()
    proc = run_mlrun("apply", "-y", spec, cwd=tmp_path, check=1)
    assert time.monotonic() - start < 150  # runaway guard (normally 5 s): not the sleepers' 300 s
    assert "slow (run " in proc.stderr and ": timed out after 2s (limits.timeout))" in proc.stderr
    (run,) = runs_of(tmp_path, "ws-quick", "quick")
    assert run.info.status == "FAILED"
    leftovers = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
    assert leftovers == ""


def test_jobs_on_a_two_node_cluster_run_at_the_same_time(tmp_path):
    window = "date +%s.%N > ${{outputs.t}}/start; sleep 1.5; date +%s.%N > ${{outputs.t}}/end"
    jobs = "".join(
        f"""  j{i}:
    command: {window}
    outputs: {{t: {{type: uri_folder}}}}
    compute: cluster
"""
        for i in (1, 2)
    )
    spec = write_spec(tmp_path, QUICK + jobs)
    run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0)
    client = mlflow_client(tmp_path, "ws-quick")
    spans = []
    for run in runs_of(tmp_path, "ws-quick", "quick"):
        folder = Path(client.download_artifacts(run.info.run_id, "t"))
        spans.append((float((folder / "start").read_text()), float((folder / "end").read_text())))
    (s1, e1), (s2, e2) = spans
    assert max(s1, s2) < min(e1, e2), f"no overlap: {spans}"


def test_a_one_node_cluster_runs_jobs_one_at_a_time(tmp_path):
    window = "date +%s.%N > ${{outputs.t}}/start; sleep 0.5; date +%s.%N > ${{outputs.t}}/end"
    jobs = "".join(
        f"""  j{i}:
    command: {window}
    outputs: {{t: {{type: uri_folder}}}}
    compute: single
"""
        for i in (1, 2)
    )
    spec = write_spec(
        tmp_path,
        "name: quick\nworkspace: {name: ws-quick}\ncomputes:\n"
        "  single: {type: amlcompute, max_instances: 1}\njobs:\n" + jobs,
    )
    run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0)
    client = mlflow_client(tmp_path, "ws-quick")
    spans = sorted(
        (
            float(Path(client.download_artifacts(r.info.run_id, "t/start")).read_text()),
            float(Path(client.download_artifacts(r.info.run_id, "t/end")).read_text()),
        )
        for r in runs_of(tmp_path, "ws-quick", "quick")
    )
    assert spans[0][1] <= spans[1][0], f"overlap: {spans}"


def test_saved_plan_is_applied_exactly_and_refused_once_stale(tmp_path):
    spec = write_spec(tmp_path, QUICK + "  a: {command: echo a, compute: cluster}\n")
    run_mlrun("plan", spec, "--out", "p.json", cwd=tmp_path, check=0)
    saved = json.loads((tmp_path / "p.json").read_text())
    assert [c["address"] for c in saved["changes"]] == [
        "workspace.ws-quick",
        "compute.cluster",
        "job.a",
    ]
    proc = run_mlrun("apply", "p.json", cwd=tmp_path, check=0)
    assert "job.a  Completed" in proc.stdout
    run_mlrun("plan", spec, "--out", "p2.json", "--force", "a", cwd=tmp_path, check=0)
    spec.write_text(spec.read_text().replace("echo a", "echo b"))
    proc = run_mlrun("apply", "p2.json", cwd=tmp_path, check=1)
    assert proc.stderr == (
        "error: the saved plan p2.json is stale: the spec or its files changed since it "
        "was made; run mlrun plan again\n"
    )
    run_mlrun("plan", spec, "--out", "p3.json", cwd=tmp_path, check=0)
    run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0)
    proc = run_mlrun("apply", "p3.json", cwd=tmp_path, check=1)
    assert "the state changed since it was made" in proc.stderr


def test_destroy_removes_everything_then_plan_shows_creates(tmp_path):
    spec = write_spec(tmp_path, QUICK + "  a: {command: echo a, compute: cluster}\n")
    run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0)
    proc = run_mlrun("destroy", "-y", spec, cwd=tmp_path, check=0)
    assert proc.stdout.startswith(
        "  - job.a                        forget it; its runs are deleted with the workspace\n"
        "  - compute.cluster\n"
        f"  - workspace.ws-quick           with its tracking store (sqlite:///{tmp_path}/.mlrun/local/ws-quick/mlflow.db)"
        " and every run in it\n"
        "Plan: 0 to add, 0 to change, 0 to replace, 3 to destroy, 0 jobs to run.\n"
    )
    assert not (tmp_path / ".mlrun" / "local" / "ws-quick").exists()
    plan = run_mlrun("plan", spec, cwd=tmp_path, check=0).stdout
    assert plan.startswith("  + workspace.ws-quick\n  + compute.cluster")
    assert run_mlrun("destroy", "-y", spec, cwd=tmp_path, check=0).stdout == "Nothing to destroy.\n"


def test_apply_without_yes_and_without_a_terminal_refuses(tmp_path):
    spec = write_spec(tmp_path, QUICK + "  a: {command: echo a, compute: cluster}\n")
    proc = run_mlrun("apply", spec, cwd=tmp_path, check=1)
    assert proc.stderr == "error: this needs a confirmation: run it on a terminal, or pass -y\n"
    assert not (tmp_path / ".mlrun" / "local").exists()


def test_second_apply_is_refused_while_the_first_holds_the_lock(tmp_path):
    spec = write_spec(tmp_path, QUICK + "  a: {command: sleep 5, compute: cluster}\n")
    first = subprocess.Popen(
        mlrun_cmd() + ["apply", "-y", str(spec)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = tmp_path / ".mlrun" / "quick.local.lock"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (lock.exists() and lock.read_text()):
            time.sleep(0.05)
        proc = run_mlrun("apply", "-y", spec, cwd=tmp_path, check=1)
        assert proc.stderr.startswith(f"error: the state is locked by pid {first.pid} on ")
        assert "(mlrun apply); wait for it to finish" in proc.stderr
        assert run_mlrun("status", spec, cwd=tmp_path).returncode == 0  # status needs no lock
    finally:
        first.communicate(timeout=60)
    assert first.returncode == 0


def test_ctrl_c_cancels_running_jobs_and_exits_130(tmp_path):
    marker = f"mlrun-ctrlc-{os.getpid()}"
    spec = write_spec(
        tmp_path,
        QUICK
        + f"""  a:
    command: python -c "import time; time.sleep(300)" {marker} & wait
    compute: cluster
""",
    )
    proc = subprocess.Popen(
        mlrun_cmd() + ["apply", "-y", str(spec)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # SIGINT as a terminal has it, even if pytest started with it ignored (a background job)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline
        and not subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout
    ):
        time.sleep(0.1)
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout, (
        "the job never started"
    )
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "job.a  Canceled" in out
    (run,) = runs_of(tmp_path, "ws-quick", "quick")
    assert run.info.status == "KILLED"
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True).stdout == b""
    state = json.loads((tmp_path / ".mlrun" / "quick.local.json").read_text())
    assert state["jobs"]["a"]["runs"][-1]["status"] == "Canceled"


def test_detach_then_apply_adopts_the_running_job_instead_of_rerunning(tmp_path):
    gate = tmp_path / "gate"  # the job runs until the test opens it (a sleep could end first)
    wait = f"while [ ! -f {gate} ]; do sleep 0.05; done"
    spec = write_spec(
        tmp_path, QUICK + f"  a: {{command: 'echo start; {wait}; echo done', compute: cluster}}\n"
    )
    proc = run_mlrun("apply", "-y", "--detach", spec, cwd=tmp_path, check=0)
    assert "detached" in proc.stdout
    status = json.loads(run_mlrun("status", spec, "--json", cwd=tmp_path, check=0).stdout)
    assert status["jobs"][0]["status"] == "Running"
    plan = run_mlrun("plan", spec, cwd=tmp_path, check=0).stdout
    assert "  * job.a" in plan and "is Running: wait for it" in plan
    gate.touch()
    assert run_mlrun("logs", spec, "a", "--follow", cwd=tmp_path, check=0).stdout == "start\ndone\n"
    proc = run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0)
    assert "job.a  Completed" in proc.stdout
    (run,) = runs_of(tmp_path, "ws-quick", "quick")
    assert run.info.status == "FINISHED"


def test_killed_mlrun_leaves_a_job_that_the_next_apply_adopts(tmp_path):
    spec = write_spec(
        tmp_path, QUICK + "  a: {command: 'sleep 2; echo survived', compute: cluster}\n"
    )
    proc = subprocess.Popen(
        mlrun_cmd() + ["apply", "-y", str(spec)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    state_file = tmp_path / ".mlrun" / "quick.local.json"
    deadline = time.monotonic() + 60
    started = (
        tmp_path / ".mlrun" / "local" / "ws-quick" / "runs" / "a"
    )  # recorded in the state, then started
    journal = state_file.with_name(state_file.name + ".journal")  # where a run's record goes

    def recorded() -> str:
        return "".join(f.read_text() for f in (state_file, journal) if f.exists())

    while time.monotonic() < deadline and not (
        '"Preparing"' in recorded() and list(started.glob("*/pgid"))
    ):
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    time.sleep(3)  # the job finishes without mlrun
    out = run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0).stdout
    assert "ended while mlrun was away" in out
    (run,) = runs_of(tmp_path, "ws-quick", "quick")
    assert run.info.status == "FINISHED"
    assert run_mlrun("logs", spec, "a", cwd=tmp_path, check=0).stdout == "survived\n"
    assert run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0).stdout.endswith(
        "No changes. Everything is up to date.\n"
    )
