"""Parallel steps (type: parallel) in pipeline jobs: a command step makes a folder of small files, a
parallel step scores them (inline, or a parallel component from a file or of the spec's
components:) with append_row_to, a later step reads its rows. On the local target, with real
worker processes and a real MLflow store (one apply of a lab of two pipelines, one of which fails
past its error threshold, is shared by most tests); located errors of bad parallel steps; the
export azure-ai-ml loads; and a run on the loopback Azure emulator."""

import json
import re
import textwrap
from pathlib import Path

import pytest
from conftest import mlflow_client, run_mlrun

pytestmark = pytest.mark.e2e

WS = "ws-parsteps"
ENV = "azureml:AzureML-sklearn-1.5@latest"

# The entry script: init() reads --factor and --fail-on with parse_known_args (as Azure's examples
# do); run() gives a row per file, `NAME VALUE*FACTOR`, and raises for a file holding --fail-on.
SCORE = """\
import argparse
import os


def init():
    global args
    p = argparse.ArgumentParser(allow_abbrev=False)
    p.add_argument("--factor", type=int, required=True)
    p.add_argument("--fail-on", type=int, default=0)
    args, _ = p.parse_known_args()


def run(mini_batch):
    rows = []
    for path in mini_batch:
        n = int(open(path).read())
        if n == args.fail_on:
            raise ValueError("cannot score " + os.path.basename(path))
        rows.append([os.path.basename(path), n * args.factor])
    return rows
"""

# a parallel component file: rows to a folder output (parallel_run_step.txt), 3 files a mini-batch
SCORER = f"""\
$schema: https://azuremlschemas.azureedge.net/latest/parallelComponent.schema.json
type: parallel
name: scorer
version: 1
inputs:
  data: {{type: uri_folder}}
  factor: {{type: integer, default: 2}}
  fail_on: {{type: integer, default: 0}}
outputs:
  scored: {{type: uri_folder}}
input_data: ${{{{inputs.data}}}}
mini_batch_size: "3"
retry_settings: {{max_retries: 1, timeout: 60}}
task:
  type: run_function
  code: ./src
  entry_script: score.py
  program_arguments: --factor ${{{{inputs.factor}}}} --fail-on ${{{{inputs.fail_on}}}}
  append_row_to: ${{{{outputs.scored}}}}
  environment: {ENV}
"""


def make_step(count: str) -> str:
    """A command step writing f01.txt ... fNN.txt, each holding its number."""
    return f"""\
make:
  command: >-
    for i in $(seq 1 ${{{{inputs.count}}}});
    do echo $i > ${{{{outputs.files}}}}/f$(printf %02d $i).txt; done
  inputs: {{count: '{count}'}}
  outputs: {{files: {{type: uri_folder}}}}
  environment: {ENV}
"""


CHAIN = f"""\
chain:
  type: pipeline
  settings: {{default_compute: azureml:COMPUTE}}
  inputs:
    count: 6
  outputs:
    total: {{type: uri_folder}}
  jobs:
{textwrap.indent(make_step("${{parent.inputs.count}}"), "    ")}\
    score:
      type: parallel
      inputs:
        data: {{type: uri_folder, path: '${{{{parent.jobs.make.outputs.files}}}}'}}
        factor: 10
      outputs:
        rows: {{type: uri_file}}
      input_data: ${{{{inputs.data}}}}
      mini_batch_size: "2"
      max_concurrency_per_instance: 2
      task:
        type: run_function
        code: ./src
        entry_script: score.py
        program_arguments: --factor ${{{{inputs.factor}}}}
        append_row_to: ${{{{outputs.rows}}}}
        environment: {ENV}
    rescore:
      component: ./scorer.yml
      inputs:
        data: '${{{{parent.jobs.make.outputs.files}}}}'
    total:
      command: >-
        awk '{{s += $2}} END {{print s}}'
        ${{{{inputs.rows}}}} ${{{{inputs.scored}}}}/parallel_run_step.txt
        > ${{{{outputs.sum}}}}/sum.txt && cat ${{{{outputs.sum}}}}/sum.txt
      inputs:
        rows: '${{{{parent.jobs.score.outputs.rows}}}}'
        scored: '${{{{parent.jobs.rescore.outputs.scored}}}}'
      outputs:
        sum: '${{{{parent.outputs.total}}}}'
      environment: {ENV}
"""

# f04.txt raises: its mini-batch (f03, f04) fails, 2 items, past error_threshold 0
FAILING = f"""\
failing:
  type: pipeline
  settings: {{default_compute: azureml:COMPUTE}}
  jobs:
{textwrap.indent(make_step("5"), "    ")}\
    score:
      type: parallel
      component: azureml:scorer@latest
      inputs:
        data: '${{{{parent.jobs.make.outputs.files}}}}'
        fail_on: 4
      mini_batch_size: "2"
      error_threshold: 0
      retry_settings: {{max_retries: 0}}
    after:
      command: cat ${{{{inputs.scored}}}}/parallel_run_step.txt
      inputs:
        scored: '${{{{parent.jobs.score.outputs.scored}}}}'
      environment: {ENV}
"""


def make_lab(root: Path, jobs: str, compute: str = "cpu", azure: bool = False) -> Path:
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "src" / "score.py").write_text(SCORE)
    (root / "scorer.yml").write_text(SCORER)
    workspace = f"{{name: {WS}}}"
    if azure:
        workspace = (
            f"{{name: {WS}, resource_group: rg-parsteps, location: eastus}}\n"
            "targets: {azure: {subscription_id: '${{env.AZURE_SUBSCRIPTION_ID}}'}}"
        )
    spec = root / "lab.yaml"
    spec.write_text(
        f"name: parsteps\nworkspace: {workspace}\n"
        "computes:\n  cpu: {type: amlcompute, size: STANDARD_DS11_V2, max_instances: 4}\n"
        "components:\n  scorer: {file: scorer.yml}\n"
        "jobs:\n" + textwrap.indent(jobs.replace("COMPUTE", compute), "  ")
    )
    return spec


@pytest.fixture(scope="module")
def applied(tmp_path_factory):
    root = tmp_path_factory.mktemp("parsteps")
    spec = make_lab(root, CHAIN + FAILING)
    proc = run_mlrun("apply", "-y", spec.name, cwd=root, timeout=300, check=1)
    client = mlflow_client(root, WS)
    exp = client.get_experiment_by_name("parsteps")
    runs = client.search_runs([exp.experiment_id], order_by=["start_time ASC"])
    parents = {r.data.tags["mlrun.job"]: r for r in runs if "mlflow.parentRunId" not in r.data.tags}
    steps: dict = {name: {} for name in parents}
    for r in runs:
        for name, parent in parents.items():
            if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id:
                steps[name][r.data.tags["mlrun.step"]] = r
    return {"root": root, "spec": spec, "proc": proc, "parents": parents, "steps": steps}


def step_folder(root: Path, pipeline: str, step: str) -> Path:
    (run,) = (root / ".mlrun" / "local" / WS / "runs" / pipeline).iterdir()
    return run / "steps" / step


# --- the shared apply ---------------------------------------------------------------------------


def test_a_parallel_step_scores_an_upstream_steps_files_and_a_later_step_reads_its_rows(applied):
    root = applied["root"]
    rows = (step_folder(root, "chain", "score") / "outputs" / "rows" / "rows").read_text()
    # a uri_file output is the file rows are appended to (mini-batches end in any order)
    assert sorted(rows.splitlines()) == [f"f{i:02d}.txt {i * 10}" for i in range(1, 7)]
    # a component's folder output gets parallel_run_step.txt; its input's default factor 2
    scored = step_folder(root, "chain", "rescore") / "outputs" / "scored" / "parallel_run_step.txt"
    assert sorted(scored.read_text().splitlines()) == [f"f{i:02d}.txt {i * 2}" for i in range(1, 7)]
    # the last step summed both, into the pipeline's output: 210 + 42
    total = step_folder(root, "chain", "total") / "outputs" / "sum" / "sum.txt"
    assert total.read_text() == "252\n"
    client = mlflow_client(root, WS)
    parent = applied["parents"]["chain"].info.run_id
    assert Path(client.download_artifacts(parent, "total/sum.txt")).read_text() == "252\n"


def test_each_step_is_a_child_run_and_a_parallel_steps_counts_are_its_metrics(applied):
    chain = applied["steps"]["chain"]
    parent = applied["parents"]["chain"]
    assert set(chain) == {"make", "score", "rescore", "total"}
    assert {n: r.info.status for n, r in chain.items()} == dict.fromkeys(chain, "FINISHED")
    assert parent.info.status == "FINISHED"
    score = chain["score"]
    assert score.data.metrics == {
        "mini_batches_succeeded": 3,
        "mini_batches_failed": 0,
        "items_processed": 6,
        "items_failed": 0,
        "rows_appended": 6,
    }
    assert score.data.params == {"mini_batch_size": "2", "mini_batches": "3", "workers": "2"}
    assert chain["rescore"].data.params == {
        "mini_batch_size": "3",
        "mini_batches": "2",
        "workers": "1",
    }
    # its workers' logs and its own are artifacts, as a parallel job's are
    client = mlflow_client(applied["root"], WS)
    run_id = score.info.run_id
    assert [a.path for a in client.list_artifacts(run_id)] == ["logs", "rows", "user_logs"]
    assert [a.path for a in client.list_artifacts(run_id, "logs/user/stdout")] == [
        "logs/user/stdout/node0"
    ]
    # timed as any step: inside its pipeline's run, after the step it reads has ended
    times = {
        n: json.loads((step_folder(applied["root"], "chain", n) / "exit.json").read_text())
        for n in ("make", "score")
    }
    assert times["make"]["ended"] <= times["score"]["started"] < times["score"]["ended"]
    assert parent.info.start_time <= score.info.start_time < score.info.end_time
    assert score.info.end_time <= parent.info.end_time


def test_logs_status_and_report_show_the_parallel_step(applied):
    root, spec = applied["root"], applied["spec"]
    log = run_mlrun("logs", spec, "chain/score", cwd=root, check=0).stdout
    lines = log.splitlines()
    assert lines[0].startswith(
        "[parallel] 6 files in 3 mini-batches (mini_batch_size 2), 2 workers ("
    )
    assert lines[-1].startswith(
        "[parallel] mini-batches: 3 succeeded, 0 failed; items: 6 processed, 0 failed; "
        "6 rows appended to "
    )
    assert run_mlrun("logs", spec, "chain/total", cwd=root, check=0).stdout == "252\n"
    status = run_mlrun("status", spec, cwd=root, check=0).stdout
    score = applied["steps"]["chain"]["score"].info.run_id
    assert f"      {'score':<29}Completed  run {score[:7]}\n" in status
    table = run_mlrun("report", spec, cwd=root, check=0).stdout
    assert re.search(
        r"step     score: Completed, [0-9.]+s  items_failed=0  items_processed=6  "
        r"mini_batches_failed=0  mini_batches_succeeded=3  rows_appended=6\n",
        table,
    )


def test_a_failed_mini_batch_past_the_error_threshold_fails_the_step_and_the_pipeline(applied):
    out = applied["proc"].stdout + applied["proc"].stderr
    failing = applied["parents"]["failing"].info.run_id
    why = "exit code 1: error_threshold 0 exceeded: 2 items failed (the last: mini-batch 2 failed)"
    assert (
        f"error: 1 job did not complete: failing (run {failing[:7]}: step score failed ({why})); "
        "see mlrun logs lab.yaml failing/score\n"
    ) in out
    steps = applied["steps"]["failing"]
    assert {n: r.info.status for n, r in steps.items()} == {"make": "FINISHED", "score": "FAILED"}
    assert steps["score"].data.metrics["items_failed"] == 2
    assert applied["parents"]["failing"].info.status == "FAILED"
    root, spec = applied["root"], applied["spec"]
    status = run_mlrun("status", spec, cwd=root, check=0).stdout
    assert (
        f"  {'job.failing':<33}Failed     run {failing[:7]} "
        f"exit code 1: step score failed ({why})\n"
    ) in status
    log = run_mlrun("logs", spec, "failing", cwd=root, check=0).stdout
    assert "[pipeline] step score Failed (exit code 1)\n" in log
    assert "[pipeline] step after canceled: the pipeline is stopping\n" in log
    log = run_mlrun("logs", spec, "failing/score", cwd=root, check=0).stdout
    assert "[parallel] mini-batch 2 failed (try 1 of 1): ValueError: cannot score f04.txt\n" in log
    assert log.endswith(
        "[parallel] error: error_threshold 0 exceeded: 2 items failed "
        "(the last: mini-batch 2 failed)\n"
    )


def test_the_plan_says_how_a_parallel_step_runs_and_reuses_what_completed(applied):
    root, spec = applied["root"], applied["spec"]
    plan = run_mlrun("plan", spec, cwd=root, check=0).stdout
    chain = applied["parents"]["chain"].info.run_id
    make = applied["steps"]["failing"]["make"].info.run_id
    score = applied["steps"]["failing"]["score"].info.run_id
    assert f"  = job.chain                    up to date (run {chain[:7]}, Completed)\n" in plan
    assert (
        "  > job.failing                  pipeline: 2 of 3 steps to run\n"
        f"      = make                     reused (run {make[:7]})\n"
        f"      > score                    run {score[:7]} Failed; parallel, 1 x 1 workers, "
        "mini-batches of 2 files\n"
        "      > after                    upstream score runs\n"
    ) in plan


# --- validation ---------------------------------------------------------------------------------

BAD = """\
bad:
  type: pipeline
  inputs:
    files: {type: uri_folder, path: ./files}
    n: 3
  jobs:
    inline:
      type: parallel
      inputs: {data: '${{parent.inputs.files}}'}
      outputs: {out: {type: uri_folder}}
      input_data: ${{inputs.dta}}
      mini_batch_size: "10zb"
      task:
        type: run_function
        code: ./src
        entry_script: scor.py
        append_row_to: ${{outputs.result}}
    literal:
      type: parallel
      inputs: {n: '${{parent.inputs.n}}'}
      input_data: ${{inputs.n}}
      task: {type: run_function, code: ./src, entry_script: score.py}
    untyped:
      component: azureml:scorer@latest
      inputs: {data: '${{parent.inputs.files}}'}
    wrong:
      type: parallel
      component: {type: command, command: echo}
    override:
      type: parallel
      component: azureml:scorer:1
      inputs: {data: '${{parent.inputs.files}}'}
      input_data: ${{inputs.factor}}
    notask:
      type: parallel
      inputs: {data: '${{parent.inputs.files}}'}
      input_data: ${{inputs.data}}
    local_only:
      type: parallel
      component: ./scorer.yml
      inputs: {data: '${{parent.inputs.files}}'}
      partition_keys: [a]
"""


def test_bad_parallel_steps_are_located_errors_and_nothing_is_touched(tmp_path):
    spec = make_lab(tmp_path, BAD)
    (tmp_path / "files").mkdir()
    (tmp_path / "scorer.yml").write_text(
        SCORER.replace("entry_script: score.py", "entry_script: x.py")
    )
    proc = run_mlrun("plan", spec, cwd=tmp_path, check=1)
    lab = spec.read_text().splitlines()
    comp = (tmp_path / "scorer.yml").read_text().splitlines()

    def at(lines: list[str], file: str, key: str, nth: int = 0, value: bool = True) -> str:
        """Where `key:` (its value, else its key) is, in the nth line that starts with it."""
        rows = [i for i, line in enumerate(lines) if line.strip().startswith(key + ":")]
        row = rows[nth]
        col = lines[row].index(key) + (len(key) + 2 if value else 0)
        return f"{file}:{row + 1}:{col + 1}"

    p = "$.jobs.bad.jobs"
    expected = [
        f"{at(lab, 'lab.yaml', 'input_data', 0)}: error: {p}.inline.input_data: "
        "'${{inputs.dta}}' is not declared in inputs (declared: data)",
        f"{at(lab, 'lab.yaml', 'mini_batch_size')}: error: {p}.inline.mini_batch_size: '10zb' "
        "is not valid: use a count of files (10) or a size (10kb, 1mb, 1gb)",
        f"{at(lab, 'lab.yaml', 'entry_script')}: error: {p}.inline.task.entry_script: "
        "entry script 'scor.py' is not in the code folder './src'",
        f"{at(lab, 'lab.yaml', 'append_row_to')}: error: {p}.inline.task.append_row_to: "
        "'${{outputs.result}}' is not declared in outputs (declared: out)",
        f"{at(lab, 'lab.yaml', 'input_data', 1)}: error: {p}.literal.input_data: "
        "input 'n' is a literal, not data",
        f"{at(lab, 'lab.yaml', 'untyped', value=False)}: error: {p}.untyped: a step that runs "
        "registered parallel component azureml:scorer@latest needs type: parallel (azure-ai-ml "
        "loads a step without a type as a command step)",
        f"{at(lab, 'lab.yaml', 'component', 1)}: error: {p}.wrong.component: a type: parallel "
        "step runs a parallel component, not a command component",
        f"{at(lab, 'lab.yaml', 'input_data', 2)}: error: {p}.override.input_data: "
        "input 'factor' is integer: input_data takes uri_folder, uri_file, mltable",
        f"{at(lab, 'lab.yaml', 'notask', value=False)}: error: {p}.notask: missing required key "
        "'task' (or a parallel component)",
        f"{at(lab, 'lab.yaml', 'partition_keys')}: error: {p}.local_only.partition_keys: "
        "partition_keys runs on Azure ML only: locally mini-batches are made by mini_batch_size",
        # a registered component's problem is said once, where it is written
        f"{at(comp, 'scorer.yml', 'entry_script')}: error: $.components.scorer.task.entry_script:"
        " entry script 'x.py' is not in the code folder './src'",
        f"{at(comp, 'scorer.yml', 'entry_script')}: error: {p}.local_only.component.task."
        "entry_script: entry script 'x.py' is not in the code folder './src'",
    ]
    assert sorted(proc.stderr.splitlines()) == sorted(expected), proc.stderr
    assert not (tmp_path / ".mlrun").exists()


# --- azure --------------------------------------------------------------------------------------


def test_export_writes_a_pipeline_with_parallel_steps_that_load_job_reads(applied, tmp_path):
    pytest.importorskip("azure.ai.ml", reason="needs the azure extra (installed by .ci/run)")
    from azure.ai.ml import load_component, load_job

    out = tmp_path / "out"
    run_mlrun("export", applied["spec"], "-o", out, cwd=applied["root"], check=0)
    chain = load_job(out / "jobs" / "chain.yml")
    score = chain.jobs["score"]
    assert (score.type, score.task.entry_script, score.mini_batch_size) == (
        "parallel",
        "score.py",
        2,
    )
    assert (out / "jobs" / score.task.code).resolve() == (applied["root"] / "src").resolve()
    assert score.task.append_row_to == "${{outputs.rows}}"
    rescore = chain.jobs["rescore"]  # the component file, named where it is
    assert (rescore.type, rescore.component.task.entry_script) == ("parallel", "score.py")
    failing = load_job(out / "jobs" / "failing.yml").jobs["score"]
    assert (failing.type, failing.component, failing.error_threshold) == (
        "parallel",
        "scorer@latest",
        0,
    )
    scorer = load_component(out / "components" / "scorer.yml")
    assert (scorer.type, scorer.input_data) == ("parallel", "${{inputs.data}}")
    assert (out / "components" / scorer.task.code).resolve() == (applied["root"] / "src").resolve()
    # and imported back, a spec whose pipelines have the same steps, each as it runs
    back = tmp_path / "back" / "lab.yaml"
    back.parent.mkdir()
    files = ["workspace.yml", "computes/cpu.yml", "components/scorer.yml", "jobs/chain.yml"]
    run_mlrun("import", *[out / f for f in files], "-o", back, cwd=tmp_path, check=0)
    plan = run_mlrun("plan", back, cwd=tmp_path, check=0).stdout
    assert (
        "      > score                    first run; parallel, 1 x 2 workers, mini-batches of 2 "
        "files\n"
        "      > rescore                  first run; parallel, 1 x 1 workers, mini-batches of 3 "
        "files\n"
    ) in plan


@pytest.mark.azure
def test_on_the_emulator_a_parallel_step_runs_between_its_neighbours(azure_emulator, tmp_path):
    spec = make_lab(tmp_path, CHAIN, compute="serverless", azure=True)
    azure = ("--target", "azure")
    apply = azure_emulator.mlrun("apply", "-y", spec, *azure, cwd=tmp_path, check=0, timeout=600)
    assert "job.chain  Completed" in apply.stdout
    log = azure_emulator.mlrun("logs", spec, "chain/score", *azure, cwd=tmp_path, check=0).stdout
    assert log.endswith("3 mini-batches, 0 failed; 6 rows appended\n")
    log = azure_emulator.mlrun("logs", spec, "chain/total", *azure, cwd=tmp_path, check=0).stdout
    assert log == "252\n"
