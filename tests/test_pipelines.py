"""Pipeline jobs and components on the local target: resolution and located errors, steps as
child runs in dependency order with outputs flowing, step reuse and the plan's reasons, failures,
and a kill mid-pipeline."""

import json
import os
import re
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import mlflow_client, run_mlrun, start_mlrun
from test_crash import start_apply

pytestmark = pytest.mark.e2e

PREP = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: prep
version: 1
type: command
inputs:
  raw: {type: uri_folder}
  factor: {type: integer, default: 2, min: 1, max: 10}
  label: {type: string, optional: true}
outputs:
  clean: {type: uri_folder}
code: ./prep_src
environment: azureml:AzureML-sklearn-1.5@latest
command: >-
  python prep.py --raw ${{inputs.raw}} --factor ${{inputs.factor}} --clean ${{outputs.clean}}
  $[[--label ${{inputs.label}}]]
"""
PREP_PY = """\
import argparse, pathlib, sys
p = argparse.ArgumentParser()
p.add_argument("--raw"); p.add_argument("--factor", type=int); p.add_argument("--clean")
p.add_argument("--label", default="none")
a = p.parse_args()
n = int(pathlib.Path(a.raw, "n.txt").read_text()) * a.factor
pathlib.Path(a.clean, "n.txt").write_text(str(n))
print("prep", n, a.label, " ".join(sys.argv[1:]))
"""
TRAIN = """\
name: train
type: command
inputs:
  data: {type: uri_folder}
  rate: {type: number, default: 0.5}
outputs:
  model: {type: uri_folder}
environment: azureml:AzureML-sklearn-1.5@latest
command: >-
  python -c "import pathlib, mlflow; n = int(pathlib.Path('${{inputs.data}}', 'n.txt').read_text());
  mlflow.log_metric('n', n); pathlib.Path('${{outputs.model}}', 'model.txt').write_text(str(n + 1))"
"""


def lab(folder: Path, pipeline: str, extra: str = "") -> Path:
    """A lab with a prep component file, a registered train component and the given pipeline."""
    (folder / "prep_src").mkdir(parents=True, exist_ok=True)
    (folder / "prep_src" / "prep.py").write_text(PREP_PY)
    (folder / "raw").mkdir(exist_ok=True)
    (folder / "raw" / "n.txt").write_text("21")
    (folder / "prep.yml").write_text(PREP)
    spec = folder / "lab.yaml"
    body = (
        "name: pipes\nworkspace: {name: ws-pipes}\n"
        "computes: {cpu: {type: amlcompute, max_instances: 2}}\n"
        "components:\n  train:\n" + textwrap.indent(TRAIN, "    ") + extra + "jobs:\n"
    )
    spec.write_text(body + textwrap.indent(textwrap.dedent(pipeline), "  "))
    return spec


CHAIN = """\
chain:
  type: pipeline
  settings: {default_compute: azureml:cpu}
  inputs:
    raw: {type: uri_folder, path: ./raw}
    factor: 3
  outputs:
    final: {mode: upload}
  jobs:
    prep:
      component: ./prep.yml
      inputs:
        raw: ${{parent.inputs.raw}}
        factor: ${{parent.inputs.factor}}
    train:
      component: azureml:train@latest
      inputs:
        data: ${{parent.jobs.prep.outputs.clean}}
    report:
      command: cat ${{inputs.model}}/model.txt > ${{outputs.out}}/report.txt && echo $MARK
      environment_variables: {MARK: step-env}
      environment: azureml:AzureML-sklearn-1.5@latest
      inputs:
        model: ${{parent.jobs.train.outputs.model}}
      outputs:
        out: ${{parent.outputs.final}}
"""


def children(folder: Path, workspace: str = "ws-pipes", experiment: str = "pipes") -> dict:
    client = mlflow_client(folder, workspace)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], order_by=["start_time ASC"])
    return {
        "parents": [r for r in runs if "mlflow.parentRunId" not in r.data.tags],
        "steps": [r for r in runs if "mlrun.step" in r.data.tags],
        "client": client,
    }


def test_steps_run_in_order_as_child_runs_with_outputs_flowing(tmp_path):
    spec = lab(tmp_path, CHAIN)
    plan = run_mlrun("plan", spec, cwd=tmp_path, check=0).stdout
    assert (
        "  + component.train              v1\n"
        "  > job.chain                    pipeline: 3 of 3 steps to run\n"
        "      > prep                     first run\n"
        "      > train                    first run\n"
        "      > report                   first run\n"
    ) in plan
    run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0)
    found = children(tmp_path)
    (parent,) = found["parents"]
    steps = {r.data.tags["mlrun.step"]: r for r in found["steps"]}
    assert list(steps) == ["prep", "train", "report"]  # in dependency order
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in steps.values())
    assert all(r.info.status == "FINISHED" for r in [parent, *steps.values()])
    assert steps["train"].data.metrics["n"] == 63  # 21 x factor 3, the pipeline's input
    client = found["client"]
    report = client.download_artifacts(parent.info.run_id, "final/report.txt")
    assert Path(report).read_text() == "64"  # the pipeline's output, logged on its run
    log = client.download_artifacts(steps["prep"].info.run_id, "user_logs/std_log.txt")
    # the optional input left out: its $[[ ... ]] part is dropped
    assert Path(log).read_text().startswith("prep 63 none --raw ")
    assert "--label" not in Path(log).read_text()
    log = client.download_artifacts(steps["report"].info.run_id, "user_logs/std_log.txt")
    assert Path(log).read_text() == "step-env\n"
    # status, logs and reports show the steps
    assert run_mlrun("logs", spec, "chain/report", cwd=tmp_path, check=0).stdout == "step-env\n"
    status = run_mlrun("status", spec, cwd=tmp_path, check=0).stdout
    for name in steps:
        line = f"      {name:<29}Completed  run {steps[name].info.run_id[:7]}\n"
        assert line in status
    table = run_mlrun("report", spec, cwd=tmp_path, check=0).stdout
    assert "       step     train: Completed, " in table and "  n=63" in table
    page = run_mlrun("report", spec, "--format", "html", cwd=tmp_path, check=0).stdout
    assert '<section id="pipeline-chain">' in page and page.count('<g class="step ok">') == 3
    wrong = run_mlrun("logs", spec, "chain/nope", cwd=tmp_path)
    assert wrong.stderr == "error: pipeline chain has no step 'nope' (steps: prep, train, report)\n"


def test_unchanged_steps_are_reused_and_the_plan_says_why_others_run(tmp_path):
    spec = lab(tmp_path, CHAIN)
    run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0)
    again = run_mlrun("plan", spec, cwd=tmp_path, check=0).stdout
    assert again.endswith("No changes. Everything is up to date.\n")
    first = {r.data.tags["mlrun.step"]: r.info.run_id for r in children(tmp_path)["steps"]}
    # the train component changes: prep is reused, train's command changed, report runs after it
    text = spec.read_text().replace("mlflow.log_metric('n', n)", "mlflow.log_metric('n', n * 1)")
    spec.write_text(text)
    plan = run_mlrun("plan", spec, cwd=tmp_path, check=0).stdout
    assert (
        "  + component.train              v2 (new version: its content changed; v1 is kept)\n"
        "  > job.chain                    pipeline: 2 of 3 steps to run\n"
        f"      = prep                     reused (run {first['prep'][:7]})\n"
        f"      > train                    command changed since run {first['train'][:7]}\n"
        "      > report                   upstream train runs\n"
    ) in plan
    as_json = json.loads(run_mlrun("plan", spec, "--json", cwd=tmp_path, check=0).stdout)
    (job,) = [c for c in as_json["changes"] if c["address"] == "job.chain"]
    assert job["after"]["steps"] == [
        {"step": "prep", "action": "noop", "reason": f"reused (run {first['prep'][:7]})"},
        {
            "step": "train",
            "action": "run",
            "reason": f"command changed since run {first['train'][:7]}",
        },
        {"step": "report", "action": "run", "reason": "upstream train runs"},
    ]
    run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0)
    latest = {}
    for r in children(tmp_path)["steps"]:
        latest[r.data.tags["mlrun.step"]] = r
    assert latest["prep"].data.tags["mlrun.reused_from"] == first["prep"]
    assert "mlrun.reused_from" not in latest["train"].data.tags
    assert latest["train"].info.run_id != first["train"]


def test_a_failing_step_cancels_the_rest_unless_told_to_continue(tmp_path):
    pipeline = """\
    branches:
      type: pipeline
      settings: {continue_on_step_failure: CONTINUE}
      jobs:
        bad: {command: exit 3, outputs: {o: null}}
        after_bad: {command: echo never, inputs: {x: '${{parent.jobs.bad.outputs.o}}'}}
        slow: {command: sleep 2 && echo slow-done}
    """
    for cont, slow in (("false", "Canceled"), ("true", "Completed")):
        folder = tmp_path / cont
        spec = lab(folder, pipeline.replace("CONTINUE", cont))
        proc = run_mlrun("apply", "-y", spec, cwd=folder)
        assert proc.returncode == 1
        assert "1 job did not complete: branches (run " in proc.stderr
        # the step that failed, its exit code, and the logs command for it (was: the
        # controller's `exit code 1` and `mlrun logs SPEC branches`)
        assert proc.stderr.rstrip().endswith(
            f": step bad failed (exit code 3)); see mlrun logs {spec} branches/bad"
        ), proc.stderr
        statuses = {r.data.tags["mlrun.step"]: r.info.status for r in children(folder)["steps"]}
        assert statuses["bad"] == "FAILED"
        assert "after_bad" not in statuses  # never started
        if slow == "Canceled":  # canceled while it ran, or before it started
            assert statuses.get("slow") in (None, "KILLED")
        else:  # an independent branch finishes
            assert statuses["slow"] == "FINISHED"
        log = run_mlrun("logs", spec, "branches", cwd=folder, check=0).stdout
        assert "step after_bad canceled" in log


def test_each_steps_run_starts_and_ends_with_the_step(tmp_path):
    # was: both steps' runs started when the pipeline did and ended together at its end
    pipeline = """\
    timed:
      type: pipeline
      jobs:
        hello: {command: 'echo hi > ${{outputs.out}}/x.txt', outputs: {out: null}}
        world:
          command: 'sleep 0.6; cat ${{inputs.x}}/x.txt'
          inputs: {x: '${{parent.jobs.hello.outputs.out}}'}
          outputs: {o: null}
        last:
          command: 'sleep 0.3'
          inputs: {x: '${{parent.jobs.world.outputs.o}}'}
          outputs: {o: null}
    """
    spec = lab(tmp_path, pipeline)
    run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0)
    found = children(tmp_path)
    steps = {r.data.tags["mlrun.step"]: r.info for r in found["steps"]}
    (parent,) = [r.info for r in found["parents"] if r.data.tags.get("mlrun.job") == "timed"]
    hello, world, last = steps["hello"], steps["world"], steps["last"]
    assert parent.start_time <= hello.start_time < hello.end_time <= world.start_time
    assert world.end_time <= last.start_time < last.end_time <= parent.end_time
    assert world.end_time - world.start_time >= 600  # it slept; the others did not wait on it
    assert hello.end_time - hello.start_time < 600


def test_a_step_that_is_not_deterministic_runs_every_time(tmp_path):
    pipeline = """\
    twice:
      type: pipeline
      jobs:
        stamp: {command: date +%s%N, is_deterministic: false}
        fixed: {command: echo fixed}
    """
    spec = lab(tmp_path, pipeline)
    run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0)
    plan = run_mlrun("plan", spec, "--force", "twice", cwd=tmp_path, check=0).stdout
    assert "      > stamp                    forced (--force)\n" in plan
    text = spec.read_text().replace("echo fixed", "echo fixed again")
    spec.write_text(text)
    plan = run_mlrun("plan", spec, cwd=tmp_path, check=0).stdout
    assert "      > stamp                    runs every time (is_deterministic: false" in plan


BAD = """\
bad:
  type: pipeline
  settings: {default_datestore: azureml:workspaceblobstore}
  inputs: {n: 3}
  jobs:
    a:
      component: ./prep.yml
      inputs: {raw: '${{parent.inputs.nope}}', factor: 11}
    b:
      command: echo ${{inputs.x}}
      inputs: {x: '${{parent.jobs.c.outputs.o}}'}
      outputs: {o: null}
    c:
      command: echo ${{inputs.x}}
      inputs: {x: '${{parent.jobs.b.outputs.o}}'}
      outputs: {o: null}
    d:
      component: azureml:missing:1
    e:
      command: echo
      inputs: {x: '${{parent.jobs.a.outputs.nope}}', y: '${{parent.jobs.zz.outputs.o}}'}
    f:
      component: ./prep.yml
"""


def test_pipeline_mistakes_are_located_errors(tmp_path):
    spec = lab(tmp_path, BAD)
    proc = run_mlrun("validate", spec, cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    expected = [
        "error: $.jobs.bad.jobs: steps b -> c -> b form a cycle: each waits for another's output",
        "error: $.jobs.bad.jobs.a.inputs.factor: 11 is above the maximum of input 'factor' (10)",
        "error: $.jobs.bad.jobs.a.inputs.raw: '${{parent.inputs.nope}}': the pipeline has no "
        "input 'nope' (inputs: n)",
        "warning: $.jobs.bad.jobs.d.component: component 'missing' is not a component of this "
        "spec (components: train) and is not mapped in targets.local.components: the local "
        "target cannot run it (map missing to a component file there)",
        "error: $.jobs.bad.jobs.e.inputs.x: '${{parent.jobs.a.outputs.nope}}': step a has no "
        "output 'nope' (outputs: clean)",
        "error: $.jobs.bad.jobs.e.inputs.y: '${{parent.jobs.zz.outputs.o}}': there is no step "
        "'zz' (steps: a, b, c, d, e, f)",
        "error: $.jobs.bad.jobs.f: missing required input 'raw' of the component",
        "warning: $.jobs.bad.settings.default_datestore: unknown setting (did you mean "
        "'default_datastore'?): Azure ML ignores it",
    ]
    for want in expected:
        assert any(line.split(": ", 1)[1] == want for line in lines), (want, lines)
    assert lines[-1] == "lab.yaml: 6 errors, 2 warnings"
    assert all(line.startswith("lab.yaml:") for line in lines)


def test_killed_mid_pipeline_the_next_apply_converges_and_runs_no_step_twice(tmp_path):
    gate = tmp_path / "go"
    count = tmp_path / "count"
    pipeline = f"""\
    held:
      type: pipeline
      jobs:
        first: {{command: 'echo first >> {count}', outputs: {{o: null}}}}
        second:
          command: 'echo second >> {count}; while [ ! -e {gate} ]; do sleep 0.05; done'
          inputs: {{x: '${{{{parent.jobs.first.outputs.o}}}}'}}
          outputs: {{o: null}}
        third:
          command: 'echo third >> {count}'
          inputs: {{x: '${{{{parent.jobs.second.outputs.o}}}}'}}
    """
    spec = lab(tmp_path, pipeline)
    proc = start_mlrun("apply", "-y", spec, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while "second" not in (count.read_text() if count.exists() else ""):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # mlrun dies; the pipeline's controller goes on
    proc.wait()
    gate.touch()
    run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0)  # adopts the running pipeline
    assert count.read_text().split() == ["first", "second", "third"]
    assert run_mlrun("plan", spec, cwd=tmp_path, check=0).stdout.endswith(
        "No changes. Everything is up to date.\n"
    )
    # an edit of the last step: the first two are reused, not run again
    spec.write_text(spec.read_text().replace("echo third", "echo third-v2"))
    run_mlrun("apply", "-y", spec, cwd=tmp_path, check=0)
    assert count.read_text().split() == ["first", "second", "third", "third-v2"]


def test_export_writes_pipeline_and_component_files_the_sdk_loads_and_import_reads_back(tmp_path):
    pytest.importorskip("azure.ai.ml", reason="needs the azure extra (installed by .ci/run)")
    from azure.ai.ml import load_component, load_job

    spec = lab(tmp_path / "lab", CHAIN)
    out = tmp_path / "out"
    run_mlrun("export", spec, "-o", out, cwd=tmp_path, check=0)
    job = load_job(out / "jobs" / "chain.yml")
    assert list(job.jobs) == ["prep", "train", "report"]
    assert load_component(out / "components" / "train.yml").name == "train"
    # the exported files, imported, give a spec with the same plan
    files = [
        out / "workspace.yml",
        out / "computes" / "cpu.yml",
        out / "components" / "train.yml",
        out / "jobs" / "chain.yml",
    ]
    back = tmp_path / "back" / "lab.yaml"
    back.parent.mkdir()
    run_mlrun("import", *files, "-o", back, "--name", "pipes", cwd=tmp_path, check=0)
    first = run_mlrun("plan", spec, cwd=tmp_path, check=0).stdout
    again = run_mlrun("plan", back, cwd=tmp_path, check=0).stdout
    assert again == first


@pytest.mark.azure
def test_on_azure_a_pipeline_is_the_sdks_pipeline_job_with_its_components_registered_first(
    azure_emulator, tmp_path
):
    spec = lab(tmp_path, CHAIN.replace("azureml:cpu", "azureml:serverless"))
    text = spec.read_text().replace(
        "workspace: {name: ws-pipes}",
        "workspace: {name: ws-pipes, resource_group: rg-pipes, location: eastus}\n"
        "targets: {azure: {subscription_id: '${{env.AZURE_SUBSCRIPTION_ID}}'}}",
    )
    spec.write_text(text)
    azure = ("--target", "azure")
    mark = azure_emulator.mark()
    azure_emulator.mlrun("apply", "-y", spec, *azure, cwd=tmp_path, check=0, timeout=900)
    calls = [(r["method"], r["path"]) for r in azure_emulator.requests(mark)]
    registered = [i for i, (m, p) in enumerate(calls) if m == "PUT" and "/components/train/" in p]
    submitted = [i for i, (m, p) in enumerate(calls) if m == "PUT" and "/jobs/" in p]
    assert registered and submitted and registered[0] < submitted[0]
    status = azure_emulator.mlrun("status", spec, *azure, cwd=tmp_path, check=0).stdout
    assert "job.chain" in status and "Completed" in status
    table = azure_emulator.mlrun("report", spec, *azure, cwd=tmp_path, check=0).stdout
    assert "step     train: Completed" in table and "n=63" in table
    log = azure_emulator.mlrun("logs", spec, "chain/report", *azure, cwd=tmp_path, check=0).stdout
    assert log.strip().endswith("step-env")
    azure_emulator.mlrun("destroy", "-y", spec, *azure, cwd=tmp_path, check=0)


def test_a_step_environment_that_does_not_build_fails_the_pipeline_before_any_step(tmp_path):
    """The controller starts while mlrun makes the run and builds the steps' environments; a build
    that fails ends it without starting a step, and the run says why."""
    from test_environments import CONDA, offline
    from wheels import make_wheel

    wheels = tmp_path / "wheels"
    make_wheel(wheels, "tinybuilt", "0.1")
    minor = f"{sys.version_info[0]}.{sys.version_info[1]}"
    (tmp_path / "conda.yml").write_text(CONDA.format(minor=minor, pin="tinybuilt==9.9"))
    pipeline = """\
    built:
      type: pipeline
      jobs:
        first: {command: echo first}
        uses: {command: echo uses, environment: {image: 'python:3.11', conda_file: conda.yml}}
    """
    spec = lab(tmp_path, pipeline)
    proc = run_mlrun("apply", "-y", spec, cwd=tmp_path, env=offline(wheels))
    assert proc.returncode == 1
    (run_dir,) = (tmp_path / ".mlrun" / "local" / "ws-pipes" / "runs" / "built").iterdir()
    # uv's own reason, quoted, and the build log's full path (was: `uv pip exited with 1: see
    # azureml-logs/20_image_build_log.txt in the run folder`)
    assert re.search(
        r"did not build: No solution found when resolving dependencies: Because there "
        r"is no version of tinybuilt==9\.9.*unsatisfiable\. "
        r"\(uv pip compile exited with 1\); its log: "
        + re.escape(str(run_dir / "azureml-logs" / "20_image_build_log.txt")),
        proc.stderr,
    ), proc.stderr
    assert not list((run_dir / "steps").glob("*/exit.json"))  # no step started
    assert "tinybuilt" in (run_dir / "user_logs" / "std_log.txt").read_text()  # the build's log
    assert children(tmp_path)["steps"] == []


def test_killed_before_it_hands_the_run_over_the_waiting_controller_starts_nothing(tmp_path):
    """mlrun dies after starting a pipeline's controller and before handing it the run (killed
    at that exact call): the controller ends having started nothing, and the next applies run
    each step once."""
    count = tmp_path / "count"
    pipeline = f"""\
    handed:
      type: pipeline
      jobs:
        one: {{command: 'echo one >> {count}'}}
        two: {{command: 'echo two >> {count}'}}
    """
    spec = lab(tmp_path, pipeline)
    proc = start_apply(tmp_path, spec, "before-handover")  # SIGKILLs itself at that call
    assert proc.wait(120) == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    runs = tmp_path / ".mlrun" / "local" / "ws-pipes" / "runs" / "handed"
    (run_dir,) = runs.iterdir()
    assert not (run_dir / "handover.json").exists()
    deadline = time.monotonic() + 120
    ended = None
    while ended is None:  # the controller notices and ends
        assert time.monotonic() < deadline
        ended = (
            json.loads((run_dir / "exit.json").read_text())
            if (run_dir / "exit.json").exists()
            else None
        )
        time.sleep(0.05)
    assert ended["status"] == "Failed"
    assert "no run was handed over" in (run_dir / "user_logs" / "std_log.txt").read_text()
    assert not count.exists() and not (run_dir / "steps.json").exists()
    for _ in range(3):  # the state may hold the run (then it ends Failed once) or not
        run_mlrun("apply", "-y", spec, cwd=tmp_path)
        plan = run_mlrun("plan", spec, cwd=tmp_path, check=0).stdout
        if plan.endswith("No changes. Everything is up to date.\n"):
            break
    assert plan.endswith("No changes. Everything is up to date.\n")
    assert sorted(count.read_text().split()) == ["one", "two"]
