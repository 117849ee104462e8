"""Pipeline jobs and components on the loopback Azure emulator, through the real azure-ai-ml SDK:
components registered, listed, archived; pipelines of inline, local-file and registered steps
really run in dependency order with their outputs flowing, failures, continue_on_step_failure,
cancel, and faults. Each script runs in its own interpreter (see azure_fixtures.run_sdk)."""

import textwrap
import urllib.parse

import pytest
from azure_fixtures import run_sdk

pytestmark = pytest.mark.azure

RG, WS = "rg-pipes", "ws-pipes"

PRELUDE = textwrap.dedent(f"""
    import json, os, sys, time, urllib.request
    from azure.identity import DefaultAzureCredential
    from azure.ai.ml import MLClient, load_component, load_job

    cred = DefaultAzureCredential()
    ml = MLClient(cred, os.environ["AZURE_SUBSCRIPTION_ID"], "{RG}", "{WS}",
                  enable_telemetry=False)
    TERMINAL = ("Completed", "Failed", "Canceled")

    def done(**result):
        print(json.dumps(result, default=str))

    def wait(name, timeout=240):
        deadline = time.monotonic() + timeout
        while ml.jobs.get(name).status not in TERMINAL:
            if time.monotonic() > deadline:
                raise TimeoutError(name)
            time.sleep(1)
        return ml.jobs.get(name).status

    def fetch(url):
        with urllib.request.urlopen(url) as resp:
            return resp.read().decode()

    def steps(name):
        # the pipeline's child jobs, as mlrun reads them: status, display name, run details, log
        found = {{}}
        for child in ml.jobs.list(parent_job_name=name):
            details = ml.jobs._runs_operations.get_run_details(child.name)
            logs = details.log_files or {{}}
            found[child.display_name] = {{
                "name": child.name, "status": child.status, "compute": child.compute,
                "start": details.start_time_utc, "end": details.end_time_utc,
                "logs": sorted(logs),
                "log": fetch(logs["user_logs/std_log.txt"]) if logs else None,
                "error": details.error.error.message if details.error else None,
            }}
        return found
""")

RELAY = textwrap.dedent("""\
    import argparse
    import pathlib

    import mlflow

    p = argparse.ArgumentParser()
    p.add_argument("--note")
    p.add_argument("--times", type=int)
    p.add_argument("--result")
    p.add_argument("--upstream")
    a = p.parse_args()
    lines = []
    if a.upstream:
        for f in sorted(pathlib.Path(a.upstream).rglob("*.txt")):
            lines += f.read_text().split()
    lines += [a.note] * a.times
    out = pathlib.Path(a.result)
    out.mkdir(parents=True, exist_ok=True)
    (out / "chain.txt").write_text("\\n".join(lines) + "\\n")
    print("chain: " + "|".join(lines))
    with mlflow.start_run():
        mlflow.log_param("note", a.note)
        mlflow.log_metric("links", len(lines))
""")

# a command component: code folder, typed inputs with defaults, an optional input, an output
RELAY_YML = textwrap.dedent("""\
    $schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
    type: command
    name: relay
    version: "1"
    display_name: Relay
    description: Appends a note to the lines it is given.
    inputs:
      note: {type: string, default: relayed}
      times: {type: integer, default: 1}
      upstream: {type: uri_folder, optional: true}
    outputs:
      result: {type: uri_folder}
    code: ./src
    environment: azureml:AzureML-sklearn-1.5@latest
    command: >-
      python relay.py --note ${{inputs.note}} --times ${{inputs.times}}
      --result ${{outputs.result}} $[[--upstream ${{inputs.upstream}}]]
""")

# a -> b -> c: an inline step (with an inline image environment), a step from a local component
# file, a step from the registered component; a literal and an uploaded file as pipeline inputs,
# c's output bound to the pipeline's output
CHAIN_YML = textwrap.dedent("""\
    $schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
    type: pipeline
    display_name: chain
    experiment_name: pipelines-chain
    settings:
      default_compute: azureml:serverless
    inputs:
      greeting: hello-from-a
      notes: {type: uri_file, path: ./notes.txt}
    outputs:
      final: {type: uri_folder, path: azureml://datastores/workspaceblobstore/paths/chain-final/}
    jobs:
      a:
        display_name: start
        command: >-
          echo ${{inputs.greeting}} > ${{outputs.seed}}/chain.txt
          && cat ${{inputs.notes}} >> ${{outputs.seed}}/chain.txt
        environment:
          image: python:3.11-slim
        inputs:
          greeting: ${{parent.inputs.greeting}}
          notes: ${{parent.inputs.notes}}
        outputs:
          seed: {type: uri_folder}
      b:
        component: ./relay.yml
        inputs:
          note: middle
          upstream: ${{parent.jobs.a.outputs.seed}}
      c:
        component: azureml:relay:1
        inputs:
          note: end
          times: 2
          upstream: ${{parent.jobs.b.outputs.result}}
        outputs:
          result: ${{parent.outputs.final}}
""")


def branches_yml(
    name, continue_on_step_failure, slow="sleep 3 && echo slow done", compute="serverless"
):
    """first -> broken -> after, and an independent branch slow -> tail."""
    return textwrap.dedent(f"""\
        type: pipeline
        name: {name}
        experiment_name: pipelines-branches
        settings:
          default_compute: azureml:{compute}
          continue_on_step_failure: {str(continue_on_step_failure).lower()}
        jobs:
          first:
            command: echo ok > ${{{{outputs.out}}}}/first.txt
            environment: azureml:AzureML-sklearn-1.5@latest
            outputs: {{out: {{type: uri_folder}}}}
          broken:
            command: echo about to fail && cat ${{{{inputs.inp}}}}/first.txt && exit 7
            environment: azureml:AzureML-sklearn-1.5@latest
            inputs: {{inp: "${{{{parent.jobs.first.outputs.out}}}}"}}
            outputs: {{out: {{type: uri_folder}}}}
          after:
            command: echo never && ls ${{{{inputs.inp}}}}
            environment: azureml:AzureML-sklearn-1.5@latest
            inputs: {{inp: "${{{{parent.jobs.broken.outputs.out}}}}"}}
          slow:
            command: {slow} && echo slow > ${{{{outputs.out}}}}/slow.txt
            environment: azureml:AzureML-sklearn-1.5@latest
            outputs: {{out: {{type: uri_folder}}}}
          tail:
            component: azureml:relay@latest
            inputs:
              note: tail
              upstream: ${{{{parent.jobs.slow.outputs.out}}}}
        """)


@pytest.fixture(scope="module")
def lab(azure_emulator, tmp_path_factory):
    """The workspace, and a folder with the relay component (registered as relay:1)."""
    folder = tmp_path_factory.mktemp("pipelines")
    (folder / "src").mkdir()
    (folder / "src" / "relay.py").write_text(RELAY)
    (folder / "relay.yml").write_text(RELAY_YML)
    (folder / "notes.txt").write_text("notes-line\n")
    run_sdk(
        azure_emulator,
        PRELUDE.replace(
            "ml = MLClient(",
            "from azure.ai.ml.entities import Workspace\n"
            "from azure.mgmt.resource.resources import ResourceManagementClient\n"
            'ARM = os.environ["ARM_CLOUD_METADATA_URL"].split("/metadata/")[0] + "/"\n'
            'ResourceManagementClient(cred, os.environ["AZURE_SUBSCRIPTION_ID"], base_url=ARM,'
            ' credential_scopes=[ARM + ".default"]).resource_groups.create_or_update('
            f'"{RG}", {{"location": "eastus"}})\n'
            'MLClient(cred, os.environ["AZURE_SUBSCRIPTION_ID"], '
            f'"{RG}", enable_telemetry=False).workspaces.begin_create('
            f'Workspace(name="{WS}", location="eastus")).result()\n'
            "ml = MLClient(",
        )
        + textwrap.dedent("""
            c = ml.components.create_or_update(load_component("relay.yml"))
            done(name=c.name, version=c.version)
        """),
        cwd=folder,
    )
    return folder


def test_a_component_is_registered_read_listed_and_archived(azure_emulator, lab, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "greet.py").write_text("print('hi')\n")
    (tmp_path / "greeter.yml").write_text(RELAY_YML.replace("name: relay", "name: greeter"))
    result = run_sdk(
        azure_emulator,
        PRELUDE
        + textwrap.dedent("""
        from azure.ai.ml.constants import ListViewType
        from azure.core.exceptions import HttpResponseError
        out = {}
        one = ml.components.create_or_update(load_component("greeter.yml"))
        out["registered"] = [one.name, one.version, one.type, one.display_name]
        got = ml.components.get("greeter", "1")
        out["got"] = [got.version, got.description, sorted(got.inputs), sorted(got.outputs),
                      got.inputs["times"].default, got.inputs["upstream"].optional,
                      got.environment, got.code is not None]
        out["same_again"] = ml.components.create_or_update(load_component("greeter.yml")).version
        two = load_component("greeter.yml")
        two.version = "2"
        out["two"] = ml.components.create_or_update(two).version
        out["latest"] = ml.components.get("greeter", label="latest").version
        out["default"] = ml.components.get("greeter").version
        out["versions"] = sorted(c.version for c in ml.components.list("greeter"))
        changed = load_component("greeter.yml")
        changed.command = "echo changed"
        try:
            ml.components.create_or_update(changed)
            out["changed"] = None
        except HttpResponseError as e:
            out["changed"] = [e.status_code, e.message]
        out["names"] = sorted(c.name for c in ml.components.list())
        ml.components.archive("greeter")
        out["after_archive"] = sorted(c.name for c in ml.components.list())
        out["archived"] = [
            c.name for c in ml.components.list(list_view_type=ListViewType.ARCHIVED_ONLY)]
        ml.components.restore("greeter")
        out["restored"] = sorted(c.name for c in ml.components.list())
        done(**out)
        """),
        cwd=tmp_path,
    )
    assert result["registered"] == ["greeter", "1", "command", "Relay"]
    assert result["got"][:6] == [
        "1",
        "Appends a note to the lines it is given.",
        ["note", "times", "upstream"],
        ["result"],
        1,  # the SDK reads an integer's default back as one
        True,
    ]
    assert "AzureML-sklearn-1.5" in result["got"][6] and result["got"][7] is True
    assert result["same_again"] == "1"  # the same definition again: accepted as it is
    assert [result["two"], result["latest"], result["default"]] == ["2", "2", "2"]
    assert result["versions"] == ["1", "2"]
    assert result["changed"][0] == 409 and "cannot change" in result["changed"][1]
    assert result["names"] == ["greeter", "relay"]  # anonymous components are not listed
    assert result["after_archive"] == ["relay"] and result["archived"] == ["greeter"]
    assert result["restored"] == ["greeter", "relay"]


def test_a_three_step_pipeline_runs_its_steps_in_order_and_their_outputs_flow(azure_emulator, lab):
    (lab / "chain.yml").write_text(CHAIN_YML)
    mark = azure_emulator.mark()
    result = run_sdk(
        azure_emulator,
        PRELUDE
        + textwrap.dedent("""
        import mlflow
        from azure.storage.blob import BlobServiceClient
        job = ml.jobs.create_or_update(load_job("chain.yml"))
        submitted = [job.status, job.type, sorted(job.jobs)]
        ml.jobs.stream(job.name)  # the pipeline's execution log, until it ends
        got = ml.jobs.get(job.name)
        details = ml.jobs._runs_operations.get_run_details(job.name)
        execution = fetch(details.log_files["logs/azureml/executionlogs.txt"])
        mlflow.set_tracking_uri(ml.workspaces.get().mlflow_tracking_uri)
        runs = mlflow.search_runs(
            experiment_names=["pipelines-chain"], output_format="list",
            filter_string=f"tags.mlflow.parentRunId = '{job.name}'")
        store = ml.datastores.get("workspaceblobstore", include_secrets=True)
        blobs = BlobServiceClient(
            f"https://{store.account_name}.blob.{store.endpoint}",
            credential=store.credentials.account_key).get_container_client(store.container_name)
        final = blobs.download_blob("chain-final/chain.txt").readall().decode()
        done(name=job.name, submitted=submitted, status=got.status, display=got.display_name,
             settings=[got.settings.default_compute, got.settings.continue_on_step_failure],
             steps=steps(job.name), execution=execution,
             parent_run=mlflow.get_run(job.name).info.status,
             runs={r.info.run_name: [r.info.run_id, r.info.status, r.data.params.get("note"),
                                     r.data.metrics.get("links")] for r in runs},
             final=final, listed=[j.name for j in ml.jobs.list()])
        """),
        cwd=lab,
    )
    name = result["name"]
    assert result["submitted"] == ["NotStarted", "pipeline", ["a", "b", "c"]]
    assert result["status"] == "Completed" and result["display"] == "chain"
    assert result["settings"][0].endswith("serverless")
    steps = result["steps"]
    assert sorted(steps) == ["b", "c", "start"]  # a's display_name is "start"
    assert all(s["status"] == "Completed" for s in steps.values())
    assert all(s["logs"] == ["user_logs/std_log.txt"] for s in steps.values())
    a, b, c = steps["start"], steps["b"], steps["c"]
    # in order: each step started after the one it reads had ended (the execution log is exact,
    # the run times are to the second)
    assert a["end"] <= b["start"] and b["end"] <= c["start"]
    lines = result["execution"].splitlines()

    def at(text):
        return next(i for i, line in enumerate(lines) if text in line)

    assert at(f"{a['name']} (a): Completed") < at(f"first five are: {b['name']} (b)")
    assert at(f"{b['name']} (b): Completed") < at(f"first five are: {c['name']} (c)")
    assert "Streaming logs/azureml/executionlogs.txt" in result["_stdout"]
    # outputs flowed: c read what b wrote from what a wrote (the literal and the uploaded file)
    assert "chain: hello-from-a|notes-line|middle\n" in b["log"]
    assert "chain: hello-from-a|notes-line|middle|end|end\n" in c["log"]
    assert result["final"] == "hello-from-a\nnotes-line\nmiddle\nend\nend\n"  # the pipeline output
    # MLflow: a child run per step under the pipeline's run
    assert result["parent_run"] == "FINISHED"
    assert result["runs"] == {
        "start": [a["name"], "FINISHED", None, None],
        "b": [b["name"], "FINISHED", "middle", 3.0],
        "c": [c["name"], "FINISHED", "end", 5.0],
    }
    assert name in result["listed"] and a["name"] not in result["listed"]  # steps are children

    # what the service keeps (and jobs.get answers) is the REST body the SDK sent, with a status
    stored = azure_emulator.call("GET", "/_emulator/state")["resources"]
    props = next(v for k, v in stored.items() if k.endswith(f"/jobs/{name}"))["properties"]
    assert props["jobType"] == "Pipeline" and props["status"] == "Completed"
    assert props["settings"]["default_compute"].endswith("/computes/serverless")
    jobs = props["jobs"]
    assert jobs["c"]["componentId"].endswith("/components/relay/versions/1")
    assert "/components/azureml_anonymous/versions/" in jobs["a"]["componentId"]
    assert jobs["b"]["inputs"]["upstream"] == {
        "value": "${{parent.jobs.a.outputs.seed}}",
        "job_input_type": "literal",
    }
    assert jobs["c"]["outputs"]["result"] == {
        "value": "${{parent.outputs.final}}",
        "type": "literal",
    }
    assert props["inputs"]["greeting"] == {"value": "hello-from-a", "jobInputType": "literal"}
    assert props["inputs"]["notes"]["jobInputType"] == "uri_file"
    assert props["inputs"]["notes"]["uri"].startswith(
        "azureml://datastores/workspaceblobstore/paths/LocalUpload/"
    )
    assert props["outputs"]["final"]["uri"].endswith("/paths/chain-final/")

    calls = azure_emulator.requests(mark)
    puts = [r["path"].split("/workspaces/")[1] for r in calls if r["method"] == "PUT"]
    anonymous = [p for p in puts if "/components/azureml_anonymous/versions/" in p]
    assert len(anonymous) == 2  # the inline step and the local component file; c is relay:1
    assert puts[-1] == f"{WS}/jobs/{name}"
    assert any(  # the x-azureml-token the SDK sends with a pipeline is for Azure ML
        r["path"] == "/msi/token"
        and "resource=https://ml.azure.com" in urllib.parse.unquote(r["query"])
        for r in calls
    )


def test_a_failing_step_fails_the_pipeline_and_nothing_runs_after_it(azure_emulator, lab):
    (lab / "stop.yml").write_text(branches_yml("branches-stop", False, slow="sleep 120"))
    result = run_sdk(
        azure_emulator,
        PRELUDE
        + textwrap.dedent("""
        import mlflow
        from azure.ai.ml.exceptions import JobException
        job = ml.jobs.create_or_update(load_job("stop.yml"))
        try:
            ml.jobs.stream(job.name)
            raised = None
        except JobException as e:
            raised = str(e)
        details = ml.jobs._runs_operations.get_run_details(job.name)
        mlflow.set_tracking_uri(ml.workspaces.get().mlflow_tracking_uri)
        runs = mlflow.search_runs(
            experiment_names=["pipelines-branches"], output_format="list",
            filter_string=f"tags.mlflow.parentRunId = '{job.name}'")
        done(status=ml.jobs.get(job.name).status, raised=raised, steps=steps(job.name),
             error=details.error.error.message,
             runs=sorted([r.info.run_name, r.info.status] for r in runs))
        """),
        cwd=lab,
    )
    assert result["status"] == "Failed"
    assert "Pipeline has some failed steps" in result["error"]
    assert "Pipeline has some failed steps" in result["raised"]  # jobs.stream raises it
    steps = result["steps"]
    assert {k: v["status"] for k, v in steps.items()} == {
        "first": "Completed",
        "broken": "Failed",
        "slow": "Canceled",  # still running when broken failed: canceled
    }  # neither after (downstream of the failure) nor tail (after slow) ran
    assert "about to fail\nok\n" in steps["broken"]["log"]
    assert "exited with status code 7" in steps["broken"]["error"]
    assert result["runs"] == [["broken", "FAILED"], ["first", "FINISHED"], ["slow", "KILLED"]]


def test_continue_on_step_failure_lets_an_independent_branch_finish(azure_emulator, lab):
    (lab / "go-on.yml").write_text(branches_yml("branches-go-on", True, compute="pipe-cluster"))
    result = run_sdk(
        azure_emulator,
        PRELUDE
        + textwrap.dedent("""
        from azure.ai.ml.entities import AmlCompute
        ml.compute.begin_create_or_update(AmlCompute(
            name="pipe-cluster", size="STANDARD_DS11_V2", max_instances=2)).result()
        job = ml.jobs.create_or_update(load_job("go-on.yml"))
        status = wait(job.name)
        done(status=status, steps=steps(job.name),
             tail=ml.jobs.get(job.name).jobs["tail"].component)
        """),
        cwd=lab,
    )
    assert result["status"] == "Failed"  # a step failed, the branch without it still finished
    steps = result["steps"]
    assert {k: v["status"] for k, v in steps.items()} == {
        "first": "Completed",
        "broken": "Failed",
        "slow": "Completed",
        "tail": "Completed",
    }  # after, downstream of broken, did not run
    assert {s["compute"] for s in steps.values()} == {"pipe-cluster"}  # settings.default_compute
    assert "slow done" in steps["slow"]["log"]
    assert "chain: slow|tail\n" in steps["tail"]["log"]
    assert steps["slow"]["end"] <= steps["tail"]["start"]
    assert result["tail"].startswith("relay:")  # azureml:relay@latest, resolved by the SDK


def test_canceling_a_pipeline_cancels_its_running_step(azure_emulator, lab):
    (lab / "cancel.yml").write_text(
        textwrap.dedent("""\
        type: pipeline
        settings: {default_compute: azureml:serverless}
        jobs:
          long:
            command: echo started && sleep 120 && echo > ${{outputs.out}}/x
            environment: azureml:AzureML-sklearn-1.5@latest
            outputs: {out: {type: uri_folder}}
          next:
            command: ls ${{inputs.inp}}
            environment: azureml:AzureML-sklearn-1.5@latest
            inputs: {inp: "${{parent.jobs.long.outputs.out}}"}
        """)
    )
    result = run_sdk(
        azure_emulator,
        PRELUDE
        + textwrap.dedent("""
        job = ml.jobs.create_or_update(load_job("cancel.yml"))
        deadline = time.monotonic() + 60
        while not any(c.status == "Running" for c in ml.jobs.list(parent_job_name=job.name)):
            assert time.monotonic() < deadline, "the step never ran"
            time.sleep(0.5)
        t0 = time.monotonic()
        ml.jobs.begin_cancel(job.name).result()
        status = wait(job.name)
        done(status=status, seconds=time.monotonic() - t0, steps=steps(job.name))
        """),
        cwd=lab,
    )
    assert result["status"] == "Canceled"
    assert {k: v["status"] for k, v in result["steps"].items()} == {"long": "Canceled"}
    assert "started" in result["steps"]["long"]["log"]
    assert result["seconds"] < 60  # the sleep was killed, not waited for


def test_a_missing_component_or_compute_is_refused_at_submission(azure_emulator, lab):
    for name, compute, component in [
        ("missing-component", "serverless", "no_such_component:3"),
        ("missing-compute", "no-such-cluster", "relay:1"),
    ]:
        (lab / f"{name}.yml").write_text(
            textwrap.dedent(f"""\
            type: pipeline
            settings: {{default_compute: azureml:{compute}}}
            jobs:
              x:
                component: azureml:{component}
            """)
        )
    result = run_sdk(
        azure_emulator,
        PRELUDE
        + textwrap.dedent("""
        from azure.core.exceptions import HttpResponseError
        errors = {}
        for name in ("missing-component", "missing-compute"):
            try:
                ml.jobs.create_or_update(load_job(f"{name}.yml"))
                errors[name] = None
            except HttpResponseError as e:
                errors[name] = [e.status_code, e.message]
        done(**errors)
        """),
        cwd=lab,
    )
    assert result["missing-component"][0] == 400
    assert "no_such_component/versions/3' was not found" in result["missing-component"][1]
    assert result["missing-compute"][0] == 400
    assert "Compute 'no-such-cluster' does not exist" in result["missing-compute"][1]


def test_faults_on_components_and_steps(azure_emulator, lab):
    """A throttled component PUT is retried; an async_failure on a step's path fails that step;
    a delay on a step's path holds it queued."""
    azure_emulator.fault(
        method="PUT", path_regex=r"/components/relay/versions/7$", status=429, retry_after=1
    )
    azure_emulator.fault(
        path_regex=r"/jobs/faulty-1/steps/broken$",
        async_failure={"code": "ServiceError", "message": "Injected: the node was preempted."},
    )
    azure_emulator.delay(path_regex=r"/jobs/faulty-1/steps/slow$", seconds=3)
    azure_emulator.fault(  # the pipeline's own PUT: accepted, then the whole pipeline fails
        method="PUT",
        path_regex=r"/jobs/faulty-2$",
        async_failure={"code": "ServiceError", "message": "Injected: pipeline not scheduled."},
    )
    # broken would succeed here: only the fault fails it
    (lab / "faulty.yml").write_text(
        branches_yml("faulty-1", True, slow="echo slow done").replace("&& exit 7", "")
    )
    (lab / "faulty-2.yml").write_text(branches_yml("faulty-2", False))
    mark = azure_emulator.mark()
    try:
        result = run_sdk(
            azure_emulator,
            PRELUDE
            + textwrap.dedent("""
            from datetime import datetime
            seven = load_component("relay.yml")
            seven.version = "7"
            version = ml.components.create_or_update(seven).version
            job = ml.jobs.create_or_update(load_job("faulty.yml"))
            status = wait(job.name)
            found = steps(job.name)
            slow = ml.jobs._runs_operations.get_run_details(found["slow"]["name"])
            other = ml.jobs.create_or_update(load_job("faulty-2.yml"))
            other_status = wait(other.name)
            other_error = ml.jobs._runs_operations.get_run_details(other.name).error.error.message
            done(version=version, status=status, steps=found,
                 held=(slow.start_time_utc - slow.created_time_utc).total_seconds(),
                 other=[other.status, other_status, other_error, steps(other.name)])
            """),
            cwd=lab,
        )
    finally:
        azure_emulator.reset()
    assert result["version"] == "7"
    puts = [
        (r["status"], r["fault"])
        for r in azure_emulator.requests(mark)
        if r["method"] == "PUT" and r["path"].endswith("/components/relay/versions/7")
    ]
    assert puts == [(429, True), (201, False)]
    assert result["status"] == "Failed"
    steps = result["steps"]
    assert steps["broken"]["status"] == "Failed" and steps["broken"]["log"] is None
    assert steps["broken"]["error"] == "Injected: the node was preempted."
    assert "after" not in steps
    assert steps["slow"]["status"] == "Completed" and steps["tail"]["status"] == "Completed"
    assert result["held"] >= 2  # 3 s queued (the run times are to the second)
    assert result["other"] == ["NotStarted", "Failed", "Injected: pipeline not scheduled.", {}]
