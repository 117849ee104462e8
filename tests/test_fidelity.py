"""A job runs in the environment it names (issue 27), offline: a curated environment built from a
table of the test's own (tiny wheels it builds), MLflow chosen as Azure's pip would resolve it
(the lab 07 divergence, reproduced with tiny wheels), and a job whose environment carries another
MLflow logging through the workspace's tracking server (an old client stood in for by a package
that speaks MLflow's REST API), in a plain job, a pipeline step and a sweep trial."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest
from conftest import mlflow_client, run_mlrun, start_mlrun
from test_environments import offline
from wheels import make_wheel

from runner.backends import envs

pytestmark = pytest.mark.e2e

MINOR = f"{sys.version_info[0]}.{sys.version_info[1]}"
MINE = envs.mlflow_version()

# An MLflow client of another version, as an old one speaks to a tracking server: over REST only.
OLD_CLIENT = """\
import json, os, time, urllib.request

__version__ = "1.20.2"


def _post(path, body):
    request = urllib.request.Request(
        os.environ["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/" + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"{}")


def log_metric(key, value, step=0):
    now = int(time.time() * 1000)
    _post("runs/log-metric", {"run_id": os.environ["MLFLOW_RUN_ID"], "key": key,
                               "value": value, "timestamp": now, "step": step})


def log_param(key, value):
    _post("runs/log-parameter", {"run_id": os.environ["MLFLOW_RUN_ID"], "key": key,
                                  "value": str(value)})
"""


def wheels(folder: Path) -> Path:
    """The index of this module's tests: tiny packages, an old MLflow client, and the packages of
    the lab 07 divergence (an `aiml` whose newest release needs an `otel` that mlrun's MLflow
    version rules out, as azure-ai-ml and mlflow-skinny's OpenTelemetry pins did)."""
    found = folder / "wheels"
    make_wheel(found, "tinycur", "1.0")
    make_wheel(found, "mlflow-skinny", "1.20.2", code=OLD_CLIENT, module="mlflow")
    make_wheel(found, "otel", "1.0")
    make_wheel(found, "otel", "2.0")
    make_wheel(found, "aiml", "1.0")
    make_wheel(found, "aiml", "2.0", requires=("otel>=2",))
    make_wheel(found, "mlflow-skinny", MINE, module="mlflow", requires=("otel<2",))
    make_wheel(found, "mlflow", MINE, module="mlflow_whole", requires=(f"mlflow-skinny=={MINE}",))
    make_wheel(found, "mlflow-skinny", "99.0", module="mlflow", requires=("otel>=2",))
    return found


def table(folder: Path, requirements: list[str]) -> Path:
    """A curated table of one environment, AzureML-tinycur."""
    path = folder / "curated.json"
    entry = {
        "name": "tinycur",
        "aliases": ["AzureML-tinycur"],
        "python": MINOR,
        "requirements": requirements,
        "dropped": ["cudatoolkit"],
        "gpu": False,
        "retired": False,
        "kind": "training",
        "source": "assets/training/general/environments/tinycur@0000000",
    }
    path.write_text(
        json.dumps({"as_of": "2026-01-02", "source": "", "commit": "0" * 40, "entries": [entry]})
    )
    return path


def curated_env(folder: Path, requirements: list[str]) -> dict:
    return {
        **offline(wheels(folder)),
        "MLRUN_CURATED_ENVIRONMENTS": "build",
        "MLRUN_CURATED_TABLE": str(table(folder, requirements)),
    }


def test_a_curated_environment_is_built_from_its_definition_and_the_plan_says_so(tmp_path):
    env = curated_env(tmp_path, ["tinycur==1.0"])
    (tmp_path / "lab.yaml").write_text(
        "name: cur\nworkspace: {name: ws-cur}\njobs:\n"
        "  show:\n    command: python -c 'import tinycur, sys; print(tinycur.VALUE, sys.prefix)'\n"
        "    environment: azureml:AzureML-tinycur@latest\n"
        "  registry:\n    command: python -c 'import tinycur; print(tinycur.VALUE)'\n"
        "    environment: azureml://registries/azureml/environments/tinycur/labels/latest\n"
        "  pipe:\n    type: pipeline\n    jobs:\n"
        "      one: {command: python -c 'import tinycur; print(tinycur.VALUE)', "
        "environment: 'azureml:AzureML-tinycur:3'}\n"
    )
    plan = run_mlrun("plan", "lab.yaml", cwd=tmp_path, env=env, check=0)
    assert (
        "note: environment azureml:AzureML-tinycur@latest of show (curated tinycur as of "
        f"2026-01-02, Python {sys.version.split()[0]}, 1 requirement, conda-only left out: "
        "cudatoolkit): not built yet: builds on apply (" in plan.stderr
    )
    run_mlrun("apply", "-y", "lab.yaml", cwd=tmp_path, env=env, check=0)
    step_note = "note: environment azureml:AzureML-tinycur:3 of pipe/one (curated tinycur "
    assert step_note in plan.stderr
    for job in ("show", "registry", "pipe/one"):
        out = run_mlrun("logs", "lab.yaml", job, cwd=tmp_path, check=0).stdout
        assert out.startswith("1.0"), (job, out)
    # the same environment, built once; mapped to mlrun's interpreter, the job runs there instead
    assert len(list(Path(os.environ["XDG_CACHE_HOME"]).glob("mlrun/envs/*/mlrun-lock.txt"))) >= 1
    mapped = {**env, "MLRUN_CURATED_ENVIRONMENTS": "mlrun"}
    plan = run_mlrun("plan", "lab.yaml", cwd=tmp_path, env=mapped, check=0)
    assert "> job.show" in plan.stdout and "environment changed since run" in plan.stdout
    assert (
        "note: environment azureml:AzureML-tinycur@latest of show is curated, mapped to mlrun's "
        "interpreter (MLRUN_CURATED_ENVIRONMENTS: mlrun): it runs with " in plan.stderr
    )


def test_a_curated_name_not_in_the_table_runs_on_mlruns_interpreter_and_the_plan_says_so(
    tmp_path,
):
    env = curated_env(tmp_path, ["tinycur==1.0"])
    (tmp_path / "lab.yaml").write_text(
        "name: cur\nworkspace: {name: ws-cur}\njobs:\n"
        "  other: {command: echo, environment: 'azureml:AzureML-nosuch-9.9@latest'}\n"
    )
    plan = run_mlrun("plan", "lab.yaml", cwd=tmp_path, env=env, check=0)
    assert (
        "note: environment azureml:AzureML-nosuch-9.9@latest of other is curated but not in "
        "mlrun's table (Azure/azureml-assets as of 2026-01-02): it runs with " in plan.stderr
    )


CONDA = """\
name: pins
dependencies:
  - python={minor}
  - pip:
{pips}
"""


def built_with(tmp_path: Path, pips: list[str]) -> tuple[dict, str]:
    """Apply a job in an environment of a conda file with `pips`: (its packages, its build's
    log)."""
    env = offline(wheels(tmp_path))
    (tmp_path / "conda.yml").write_text(
        CONDA.format(minor=MINOR, pips="".join(f"      - {p}\n" for p in pips))
    )
    (tmp_path / "lab.yaml").write_text(
        "name: pins\nworkspace: {name: ws-pins}\njobs:\n"
        "  show:\n    command: pip list --format json\n"
        "    environment: {image: python, conda_file: conda.yml}\n"
    )
    run_mlrun("apply", "-y", "lab.yaml", cwd=tmp_path, env=env, check=0)
    listed = run_mlrun("logs", "lab.yaml", "show", cwd=tmp_path, check=0).stdout
    packages = {p["name"].lower(): p["version"] for p in json.loads(listed)}
    # the build's log, in the run that built it (none if another test of the run built the same
    # environment first: the workers share one cache, as labs on a machine do)
    logs = (tmp_path / ".mlrun").glob("local/*/runs/*/*/azureml-logs/20_image_build_log.txt")
    return packages, "".join(log.read_text() for log in logs)


def test_unpinned_mlflow_is_mlruns_only_where_no_unpinned_requirement_gets_older(tmp_path):
    """The lab 07 divergence: holding MLflow at mlrun's version would take an older `aiml` (as it
    took azure-ai-ml 1.35 down to 1.23, with a marshmallow that release breaks with); pip
    installs the newest of both, and so does the build."""
    packages, log = built_with(tmp_path, ["aiml", "mlflow-skinny"])
    assert (packages["aiml"], packages["mlflow-skinny"], packages["otel"]) == ("2.0", "99.0", "2.0")
    assert "mlflow" not in packages
    assert f"mlrun: MLflow {MINE} would take aiml 2.0 -> 1.0: the resolution without" in log


def test_unpinned_mlflow_is_mlruns_whole_where_it_fits_and_a_pin_is_kept_as_written(tmp_path):
    packages, log = built_with(tmp_path / "free", ["mlflow-skinny"])
    assert (packages["mlflow"], packages["mlflow-skinny"], packages["otel"]) == (MINE, MINE, "1.0")
    assert f"mlrun: MLflow held at {MINE} (mlrun's, for the workspace's store)" in log
    # a range accepts any release in it (sklearn-1.5's pyarrow>=23.0.1 goes from 25 to 23)
    packages, _ = built_with(tmp_path / "range", ["aiml>=1", "mlflow-skinny"])
    assert (packages["aiml"], packages["mlflow"]) == ("1.0", MINE)
    packages, _ = built_with(tmp_path / "pinned", ["mlflow-skinny==1.20.2"])
    assert packages["mlflow-skinny"] == "1.20.2"  # never rewritten (mlrun used to make it 3.x)
    assert "mlflow" not in packages


OLD = """\
name: old
workspace: {name: ws-old}
computes: {cpu: {type: amlcompute, max_instances: 2}}
environments:
  old-mlflow: {image: python, conda_file: conda.yml, version: 1}
jobs:
  plain:
    command: >-
      python -c "import mlflow; mlflow.log_param('client', mlflow.__version__);
      mlflow.log_metric('acc', 0.75)"
    environment: azureml:old-mlflow:1
    compute: cpu
  pipe:
    type: pipeline
    jobs:
      step:
        command: python -c "import mlflow; mlflow.log_metric('step_acc', 0.5)"
        environment: azureml:old-mlflow:1
  tune:
    type: sweep
    compute: cpu
    trial:
      command: python -c "import mlflow; mlflow.log_metric('score', ${{search_space.a}})"
      environment: azureml:old-mlflow:1
    search_space: {a: {type: choice, values: [1, 2]}}
    sampling_algorithm: grid
    objective: {goal: maximize, primary_metric: score}
"""


def old_lab(tmp_path: Path, spec: str = OLD) -> dict:
    env = offline(wheels(tmp_path))
    (tmp_path / "conda.yml").write_text(
        CONDA.format(minor=MINOR, pips="      - mlflow-skinny==1.20.2\n")
    )
    (tmp_path / "lab.yaml").write_text(spec)
    return env


def metrics_of(client, run_id: str) -> dict:
    return client.get_run(run_id).data.metrics


def test_a_job_with_another_mlflow_logs_through_the_tracking_server_which_then_stops(tmp_path):
    env = old_lab(tmp_path)
    run_mlrun("apply", "-y", "lab.yaml", cwd=tmp_path, env=env, check=0, timeout=300)
    state = json.loads((tmp_path / ".mlrun" / "old.local.json").read_text())
    runs = {name: entry["runs"][-1] for name, entry in state["jobs"].items()}
    client = mlflow_client(tmp_path, "ws-old")
    plain = client.get_run(runs["plain"]["id"])
    assert plain.data.params == {"client": "1.20.2"} and plain.data.metrics == {"acc": 0.75}
    assert plain.info.status == "FINISHED"
    steps = client.search_runs(
        [plain.info.experiment_id], f"tags.mlflow.parentRunId = '{runs['pipe']['id']}'"
    )
    assert [s.data.metrics for s in steps] == [{"step_acc": 0.5}]
    trials = client.search_runs(
        [plain.info.experiment_id], f"tags.mlflow.parentRunId = '{runs['tune']['id']}'"
    )
    assert sorted(t.data.metrics["score"] for t in trials) == [1.0, 2.0]
    assert client.get_run(runs["tune"]["id"]).data.tags["mlrun.best_trial"] in {
        t.info.run_id for t in trials if t.data.metrics["score"] == 2.0
    }
    # the report reads what the old client logged as any other run's
    report = run_mlrun("report", "lab.yaml", "--format", "json", cwd=tmp_path, check=0).stdout
    (entry,) = [j for j in json.loads(report)["jobs"] if j["job"] == "plain"]
    assert (entry["params"], entry["metrics"]) == ({"client": "1.20.2"}, {"acc": 0.75})
    assert_server_gone(tmp_path / ".mlrun" / "local" / "ws-old")
    log = (tmp_path / ".mlrun" / "local" / "ws-old" / "tracking" / "server.log").read_text()
    assert log.count(" serving ") == 1, log  # three jobs at once needed it: one server
    plan = run_mlrun("plan", "lab.yaml", "--force", "plain", cwd=tmp_path, env=env, check=0)
    assert ": built, MLflow 1.20.2: logs through the workspace's tracking server (" in plan.stderr


def assert_server_gone(root: Path, within: float = 30) -> None:
    """No tracking server is left: its record removed and every process it ran ended."""
    deadline = time.monotonic() + within
    while (root / "tracking" / "server.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (root / "tracking" / "server.json").exists(), "the tracking server still serves"
    log = (root / "tracking" / "server.log").read_text()
    pids = {int(p) for p in re.findall(r"^pid (\d+) serving", log, re.M)}
    assert pids, log
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids), log


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_a_killed_apply_leaves_the_server_to_the_run_it_serves_and_no_orphan(tmp_path):
    flag = tmp_path / "go"
    spec = (
        OLD.split("  pipe:")[0]
        .replace("mlflow.log_param('client', mlflow.__version__);\n      ", "")
        .replace("0.75", "0.5")
        .replace("      python -c", f"      while [ ! -e {flag} ]; do sleep 0.05; done; python -c")
    )
    env = old_lab(tmp_path, spec)
    proc = start_mlrun("apply", "-y", "lab.yaml", cwd=tmp_path, env=env)
    root = tmp_path / ".mlrun" / "local" / "ws-old"
    deadline = time.monotonic() + 240
    server = root / "tracking" / "server.json"
    while not server.exists() or not list(root.glob("runs/plain/*/pid")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # mlrun dies; the job and the server go on
    proc.wait()
    record = json.loads(server.read_text())
    time.sleep(4)  # longer than the server's idle time: the running job keeps it
    assert _alive(record["pid"])
    flag.touch()  # the job logs now, after mlrun died, then ends
    run_mlrun("apply", "-y", "lab.yaml", cwd=tmp_path, env=env, check=0)  # adopts the run
    state = json.loads((tmp_path / ".mlrun" / "old.local.json").read_text())
    run = state["jobs"]["plain"]["runs"][-1]
    assert len(state["jobs"]["plain"]["runs"]) == 1 and run["status"] == "Completed"
    assert metrics_of(mlflow_client(tmp_path, "ws-old"), run["id"]) == {"acc": 0.5}
    assert_server_gone(root)
