"""Sweep jobs (type: sweep) on the local target: real subprocesses, a real MLflow store, the CLI."""

import json
from pathlib import Path

import pytest
from conftest import mlflow_client, run_mlrun

from runner import sweep

pytestmark = pytest.mark.e2e

WS = "mlw-sweep"

# A trial: logs t_start, then `score` = a * 10 + b once per step (sleeping between), then t_end.
TRAIN = """\
import argparse
import time

import mlflow

p = argparse.ArgumentParser()
p.add_argument("--a", type=float, default=0)
p.add_argument("--b", type=float, default=0)
p.add_argument("--steps", type=int, default=1)
p.add_argument("--bad-steps", type=int, default=0)  # the steps of a trial with a < 0.5
p.add_argument("--sleep", type=float, default=0)
args = p.parse_args()
mlflow.log_metric("t_start", time.time())
for step in range(args.bad_steps if args.bad_steps and args.a < 0.5 else args.steps):
    mlflow.log_metric("score", args.a * 10 + args.b, step=step)
    time.sleep(args.sleep)
mlflow.log_metric("t_end", time.time())
print("done", args.a, args.b)
"""


def lab(tmp_path: Path, job: str, computes: str = "") -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(TRAIN)
    spec = tmp_path / "lab.yaml"
    spec.write_text(
        f"name: sweep-lab\nworkspace: {{name: {WS}}}\n"
        + (f"computes:\n{computes}" if computes else "")
        + "jobs:\n  tune:\n"
        + "".join(f"    {line}\n" for line in job.strip().splitlines())
    )
    return spec


def apply(tmp_path: Path, check=0):
    return run_mlrun("apply", "-y", "lab.yaml", cwd=tmp_path, check=check, timeout=240)


def runs(tmp_path: Path, experiment="sweep-lab"):
    """The parent run and the child runs (by trial number) of the one sweep in the store."""
    client = mlflow_client(tmp_path, WS)
    exp = client.get_experiment_by_name(experiment)
    all_runs = client.search_runs([exp.experiment_id])
    parents = [r for r in all_runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    children = sorted(
        (r for r in all_runs if "mlflow.parentRunId" in r.data.tags),
        key=lambda r: int(r.data.tags["mlrun.trial"]),
    )
    return client, parents[0], children


GRID = """
type: sweep
display_name: tune-ab
trial:
  code: src
  command: python train.py --a ${{search_space.a}} --b ${{search_space.b}}
search_space:
  a: {type: choice, values: [1, 2, 3]}
  b: {type: choice, values: [0.1, 0.2]}
sampling_algorithm: grid
objective: {goal: GOAL, primary_metric: score}
limits: {max_concurrent_trials: 6}
"""


@pytest.mark.parametrize("goal, best", [("maximize", ("3", "0.2")), ("minimize", ("1", "0.1"))])
def test_grid_sweep_runs_the_cartesian_product_and_tags_the_best_trial(tmp_path, goal, best):
    lab(
        tmp_path,
        GRID.replace("GOAL", goal),
        computes="  cpu: {type: amlcompute, max_instances: 6}\n",
    )
    proc = apply(tmp_path)
    assert "job.tune" in proc.stdout and "Completed" in proc.stdout
    client, parent, children = runs(tmp_path)
    assert parent.info.status == "FINISHED"
    assert [(c.data.params["a"], c.data.params["b"]) for c in children] == [
        ("1", "0.1"),
        ("1", "0.2"),
        ("2", "0.1"),
        ("2", "0.2"),
        ("3", "0.1"),
        ("3", "0.2"),
    ]
    assert [c.info.run_name for c in children] == [f"tune-ab-trial-{n}" for n in range(1, 7)]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.info.status for c in children} == {"FINISHED"}
    assert all(c.data.tags["mlrun.job"] == "tune" for c in children)
    want = next(c for c in children if (c.data.params["a"], c.data.params["b"]) == best)
    assert parent.data.tags["mlrun.best_trial"] == want.info.run_id
    assert parent.data.metrics["score"] == pytest.approx(float(best[0]) * 10 + float(best[1]))
    assert parent.data.params == {"a": best[0], "b": best[1]}
    assert parent.info.run_name == "tune-ab"
    logs = {a.path for a in client.list_artifacts(want.info.run_id, "user_logs")}
    assert logs == {"user_logs/std_log.txt"}
    check_sweep_report(tmp_path, want, children, goal)


def check_sweep_report(tmp_path, want, children, goal):
    """The report shows the trials, the best one, and the objective against each parameter."""
    import json

    report = json.loads(
        run_mlrun("report", "lab.yaml", "--format", "json", cwd=tmp_path, check=0).stdout
    )
    (job,) = report["jobs"]
    s = job["sweep"]
    assert (s["primary_metric"], s["goal"], s["parameters"]) == ("score", goal, ["a", "b"])
    assert s["best_trial"] == want.info.run_id
    assert [t["run_id"] for t in s["trials"]] == [c.info.run_id for c in children]
    assert [t["params"] for t in s["trials"]][:2] == [
        {"a": "1", "b": "0.1"},
        {"a": "1", "b": "0.2"},
    ]
    best = (
        f"best {want.info.run_name}: score={want.data.metrics['score']:.4g} "
        f"(a={want.data.params['a']}, b={want.data.params['b']}); {goal}, 6 trials"
    )
    table = run_mlrun("report", "lab.yaml", cwd=tmp_path, check=0).stdout
    assert f"      sweep    {best}\n" in table
    md = run_mlrun(
        "report", "lab.yaml", "--format", "markdown", cwd=tmp_path, check=0
    ).stdout.splitlines()
    assert "## Sweep `tune`" in md and best in md
    assert "| trial | status | a | b | score |  |" in md
    assert any(
        line.startswith(f"| {want.info.run_name} | Completed |") and line.endswith("| best |")
        for line in md
    )
    html = run_mlrun("report", "lab.yaml", "--format", "html", cwd=tmp_path, check=0).stdout
    assert '<section id="sweep-tune">' in html
    assert "score by a</figcaption>" in html and "score by b</figcaption>" in html


def test_sampling_grid_and_random_are_deterministic():
    space = {
        "a": {"type": "choice", "values": [1, 2]},
        "b": {"type": "choice", "values": ["x", "y", "z"]},
    }
    assert sweep.sample(space, {"type": "grid"}, {}) == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 1, "b": "z"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
        {"a": 2, "b": "z"},
    ]
    assert len(sweep.sample(space, {"type": "grid"}, {"max_total_trials": 4})) == 4
    every = {
        "c": {"type": "choice", "values": [1, 2, 3]},
        "r": {"type": "randint", "upper": 5},
        "u": {"type": "uniform", "min_value": 1, "max_value": 2},
        "lu": {"type": "loguniform", "min_value": -3, "max_value": 0},
        "qu": {"type": "quniform", "min_value": 0, "max_value": 100, "q": 5},
        "qlu": {"type": "qloguniform", "min_value": 0, "max_value": 3, "q": 0.5},
        "n": {"type": "normal", "mu": 0, "sigma": 1},
        "ln": {"type": "lognormal", "mu": 0, "sigma": 1},
        "qn": {"type": "qnormal", "mu": 10, "sigma": 3, "q": 2},
        "qln": {"type": "qlognormal", "mu": 1, "sigma": 0.5, "q": 1},
    }
    first = sweep.sample(every, {"type": "random", "seed": 7}, {"max_total_trials": 25})
    assert first == sweep.sample(every, {"type": "random", "seed": 7}, {"max_total_trials": 25})
    assert first != sweep.sample(every, {"type": "random", "seed": 8}, {"max_total_trials": 25})
    assert len(first) == 25
    for t in first:
        assert t["c"] in (1, 2, 3) and t["r"] in range(5) and 1 <= t["u"] <= 2
        assert 0.049 < t["lu"] <= 1 and t["qu"] % 5 == 0 and t["qn"] % 2 == 0 and t["ln"] > 0
        assert isinstance(t["qu"], int) and float(t["qlu"] / 0.5).is_integer()
    assert sweep.sample(every, {"type": "bayesian", "seed": 7}, {"max_total_trials": 25}) == first
    assert len(sweep.sample(every, {"type": "random"}, {})) == sweep.DEFAULT_RANDOM_TRIALS


RANDOM = """
type: sweep
trial:
  code: src
  command: python train.py --a ${{search_space.a}} --b ${{search_space.b}}
search_space:
  a: {type: uniform, min_value: 0, max_value: 1}
  b: {type: choice, values: [1, 2, 3]}
sampling_algorithm: {type: random, seed: 42}
objective: {goal: maximize, primary_metric: score}
limits: {max_total_trials: 3}
"""


def test_random_sweep_with_a_seed_runs_the_seeded_trials_up_to_max_total_trials(tmp_path):
    lab(tmp_path, RANDOM)
    apply(tmp_path)
    _, parent, children = runs(tmp_path)
    want = sweep.sample(
        {
            "a": {"type": "uniform", "min_value": 0, "max_value": 1},
            "b": {"type": "choice", "values": [1, 2, 3]},
        },
        {"type": "random", "seed": 42},
        {"max_total_trials": 3},
    )
    assert [c.data.params for c in children] == [{"a": str(t["a"]), "b": str(t["b"])} for t in want]
    scores = [c.data.metrics["score"] for c in children]
    assert scores == pytest.approx([t["a"] * 10 + t["b"] for t in want])
    best = max(children, key=lambda c: c.data.metrics["score"])
    assert parent.data.tags["mlrun.best_trial"] == best.info.run_id


CONCURRENT = """
type: sweep
compute: cpu
trial:
  code: src
  command: python train.py --a ${{search_space.a}} --sleep 1.5
search_space:
  a: {type: choice, values: [1, 2, 3, 4, 5]}
sampling_algorithm: grid
objective: {goal: maximize, primary_metric: score}
limits: {max_concurrent_trials: 3}
"""


def test_trials_run_concurrently_up_to_min_of_max_concurrent_trials_and_the_computes_slots(
    tmp_path,
):
    lab(tmp_path, CONCURRENT, computes="  cpu: {type: amlcompute, max_instances: 2}\n")
    apply(tmp_path)
    _, parent, children = runs(tmp_path)
    assert len(children) == 5 and {c.info.status for c in children} == {"FINISHED"}
    windows = [(c.data.metrics["t_start"], c.data.metrics["t_end"]) for c in children]
    most = max(sum(1 for s, e in windows if s <= t < e) for t, _ in windows)
    assert most == 2  # min(max_concurrent_trials 3, the cluster's 2 slots), and that many used


MEDIAN = """
type: sweep
trial:
  code: src
  command: python train.py --a ${{search_space.a}} --steps 12 --bad-steps 60 --sleep 0.25
search_space:
  a: {type: choice, values: [0.9, 0.91, 0.1]}
sampling_algorithm: grid
objective: {goal: maximize, primary_metric: score}
limits: {max_concurrent_trials: 3}
early_termination: {type: median_stopping, evaluation_interval: 1, delay_evaluation: 2}
"""


def test_median_stopping_ends_a_clearly_bad_trial_early(tmp_path):
    # the bad trial (a=0.1) would log 60 steps, 15 s; the good ones 12 steps, 3 s
    lab(tmp_path, MEDIAN)
    proc = apply(tmp_path)
    client, parent, children = runs(tmp_path)
    by_a = {c.data.params["a"]: c for c in children}
    bad = by_a["0.1"]
    assert bad.info.status == "KILLED"
    assert bad.data.tags["mlrun.early_terminated"] == "true"
    # ended early: fewer steps than its 60 (counted, not timed: a busy machine is slower, not wrong)
    assert len(client.get_metric_history(bad.info.run_id, "score")) < 30
    for good in ("0.9", "0.91"):
        assert by_a[good].info.status == "FINISHED"
        assert "mlrun.early_terminated" not in by_a[good].data.tags
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["mlrun.best_trial"] == by_a["0.91"].info.run_id
    assert "Completed" in proc.stdout


def test_bayesian_and_bandit_are_noted_in_the_local_plan(tmp_path):
    lab(
        tmp_path,
        RANDOM.replace("{type: random, seed: 42}", "bayesian").replace(
            "limits: {max_total_trials: 3}", ""
        )
        + "early_termination: {type: bandit, slack_factor: 0.1}\n",
    )
    proc = run_mlrun("plan", "lab.yaml", cwd=tmp_path, check=0)
    assert (
        "note: sweep tune samples bayesian on Azure ML; locally it samples random instead"
        in proc.stdout + proc.stderr
    )
    assert (
        "note: sweep tune sets no limits.max_total_trials; "
        f"locally it runs {sweep.DEFAULT_RANDOM_TRIALS} trials" in proc.stdout + proc.stderr
    )
    assert (
        "note: sweep tune uses bandit early termination on Azure ML; "
        "locally median stopping is used instead" in proc.stdout + proc.stderr
    )


def test_sweep_fingerprint_covers_the_sweep_fields(tmp_path):
    from runner import fingerprint, spec as spec_mod

    path = lab(tmp_path, RANDOM)
    base = fingerprint.parts(spec_mod.load(path).jobs["tune"])
    assert set(fingerprint.SWEEP_PARTS) <= set(base)
    for old, new, part in [
        ("seed: 42", "seed: 43", "sampling_algorithm"),
        ("max_value: 1", "max_value: 2", "search_space"),
        ("goal: maximize", "goal: minimize", "objective"),
        ("max_total_trials: 3", "max_total_trials: 4", "limits"),
        ("--b ${{search_space.b}}", "--b ${{search_space.b}} --x", "command"),
    ]:
        lab(tmp_path, RANDOM.replace(old, new))
        assert fingerprint.changed(base, fingerprint.parts(spec_mod.load(path).jobs["tune"])) == [
            part
        ]
    lab(tmp_path, RANDOM + "early_termination: {type: median_stopping}\n")
    assert fingerprint.changed(base, fingerprint.parts(spec_mod.load(path).jobs["tune"])) == [
        "early_termination"
    ]
    lab(tmp_path, RANDOM)
    (tmp_path / "src" / "train.py").write_text(TRAIN + "# changed\n")
    assert fingerprint.changed(base, fingerprint.parts(spec_mod.load(path).jobs["tune"])) == [
        "code"
    ]
    assert json.dumps(base)  # parts are plain data (stored in the state)


SWEEP = """type: sweep
trial:
  code: src
  command: python train.py --a ${{search_space.a}}
  environment: azureml:AzureML-sklearn-1.5@latest
compute: azureml:cluster
search_space:
  a: {type: choice, values: [0.1, 0.9]}
sampling_algorithm: grid
objective: {goal: maximize, primary_metric: score}
limits: {max_total_trials: 2, max_concurrent_trials: 2}
"""


def test_a_sweep_exported_as_cli_v2_is_a_sweep_job_for_load_job(tmp_path):
    import yaml
    from azure.ai.ml import load_job

    from runner import spec as spec_mod
    from runner.export import job_document

    path = lab(tmp_path, SWEEP, computes="  cluster: {type: amlcompute, max_instances: 2}\n")
    spec = spec_mod.load(path)
    out = tmp_path / "exported"
    out.mkdir()
    (out / "tune.yml").write_text(
        yaml.safe_dump(job_document(spec, spec.jobs["tune"], out), sort_keys=False)
    )
    loaded = load_job(out / "tune.yml")
    assert loaded.type == "sweep" and loaded.objective.primary_metric == "score"
    assert (out / loaded.trial.code).resolve() == (tmp_path / "src").resolve()
    assert loaded.compute == "cluster"
