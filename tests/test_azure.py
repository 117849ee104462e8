"""The azure target through the real SDKs over HTTPS, against the loopback emulator."""

import json
import shutil
import textwrap
import time

import pytest
from azure_fixtures import run_sdk
from conftest import ROOT, SEED, run_mlrun

pytestmark = pytest.mark.azure


def az(emulator, *args, cwd, check=None, timeout=400):
    return emulator.mlrun(*args, "--target", "azure", cwd=cwd, check=check, timeout=timeout)


def calls(emulator, since):
    return [(r["method"], r["path"]) for r in emulator.requests(since)]


@pytest.fixture(scope="module")
def seed_azure(azure_emulator, tmp_path_factory):
    """The seed lab applied once on the emulator (real jobs, real MLflow behind azureml://)."""
    root = tmp_path_factory.mktemp("seed-azure")
    shutil.copytree(
        ROOT / "training", root / "training", ignore=shutil.ignore_patterns("__pycache__")
    )
    (root / "specs").mkdir()
    shutil.copy(SEED, root / "specs" / SEED.name)
    plan = az(
        azure_emulator,
        "plan",
        "specs/mlflow-tracking.yaml",
        "--var",
        "suffix=seed",
        cwd=root,
        check=0,
    )
    mark = azure_emulator.mark()
    apply = az(
        azure_emulator,
        "apply",
        "-y",
        "specs/mlflow-tracking.yaml",
        "--var",
        "suffix=seed",
        cwd=root,
        check=0,
    )
    return {
        "root": root,
        "plan": plan.stdout,
        "apply": apply,
        "apply_calls": calls(azure_emulator, mark),
    }


def test_seed_plan_shows_what_setup_sh_created_and_its_cost(seed_azure):
    source = "live" if ", live;" in seed_azure["plan"] else "cache"  # another test asked first
    assert seed_azure["plan"] == (
        "  + resource_group.rg-dp100-seed  eastus\n"
        "  + workspace.mlw-dp100-seed\n"
        "  + compute.ci-seed               computeinstance STANDARD_DS11_V2, idle shutdown after "
        "60 min (default; idle_time_before_shutdown_minutes: 0 opts out); $0.20/h\n"
        "  + compute.aml-cluster           amlcompute STANDARD_DS11_V2, 0..2 nodes; $0.00/h idle, "
        "$0.40/h at 2 nodes\n"
        "  > job.train-mlflow              first run\n"
        "  > job.train-autolog             first run\n"
        "cost: $0.60/h while running, $0.00/h idle (USD retail, eastus, prices as of "
        f"{time.strftime('%Y-%m-%d')}, {source}; disks, storage and networking not priced)\n"
        "Plan: 4 to add, 0 to change, 0 to replace, 0 to destroy, 2 jobs to run.\n"
    )


def test_seed_apply_creates_everything_and_runs_both_jobs(seed_azure):
    made = seed_azure["apply_calls"]
    sub = "/subscriptions/00000000-0000-0000-0000-00000000000e"
    assert ("PUT", f"{sub}/resourcegroups/rg-dp100-seed") in made
    assert any(
        m == "PUT" and "/Microsoft.Resources/deployments/mlw-dp100-seed" in p for m, p in made
    )
    for compute in ("ci-seed", "aml-cluster"):
        assert any(m == "PUT" and p.endswith(f"/computes/{compute}") for m, p in made)
    assert sum(m == "PUT" and "/jobs/" in p for m, p in made) == 2
    out = seed_azure["apply"].stdout
    assert "job.train-mlflow  Completed" in out and "job.train-autolog  Completed" in out
    assert "Uploading" not in seed_azure["apply"].stderr  # the SDK's progress bars stay quiet


def test_seed_metrics_read_back_through_azureml_mlflow(seed_azure, azure_emulator):
    report = json.loads(
        az(
            azure_emulator,
            "report",
            "specs/mlflow-tracking.yaml",
            "--format",
            "json",
            cwd=seed_azure["root"],
            check=0,
        ).stdout
    )
    assert report["tracking_uri"].startswith("azureml://127.0.0.1:")
    jobs = {j["job"]: j for j in report["jobs"]}
    manual = jobs["train-mlflow"]
    assert manual["params"] == {"Regularization rate": "0.01"}
    assert 0.8 < manual["metrics"]["AUC"] < 1 and "Accuracy" in manual["metrics"]
    assert manual["tags"]["model_type"] == "LogisticRegression"
    assert manual["where"].startswith("https://ml.azure.com/runs/" + manual["run_id"])
    assert "training_roc_auc" in jobs["train-autolog"]["metrics"]
    found = json.loads(
        az(
            azure_emulator,
            "runs",
            "specs/mlflow-tracking.yaml",
            "best-auc",
            "--json",
            cwd=seed_azure["root"],
            check=0,
        ).stdout
    )
    assert [r["run_name"] for r in found["runs"]] == ["diabetes-train-mlflow"]


def test_seed_replan_is_up_to_date_and_only_reads(seed_azure, azure_emulator):
    mark = azure_emulator.mark()
    out = az(
        azure_emulator, "plan", "specs/mlflow-tracking.yaml", cwd=seed_azure["root"], check=0
    ).stdout
    assert out.endswith("No changes. Everything is up to date.\n")
    methods = {m for m, _ in calls(azure_emulator, mark)}
    assert methods <= {"GET", "HEAD"}, methods


def test_seed_status_and_logs(seed_azure, azure_emulator):
    status = json.loads(
        az(
            azure_emulator,
            "status",
            "specs/mlflow-tracking.yaml",
            "--json",
            cwd=seed_azure["root"],
            check=0,
        ).stdout
    )
    assert status["target"] == "azure" and status["tracking_uri"].startswith("azureml://")
    assert [(j["job"], j["status"], j["up_to_date"]) for j in status["jobs"]] == [
        ("train-mlflow", "Completed", True),
        ("train-autolog", "Completed", True),
    ]
    log = az(
        azure_emulator,
        "logs",
        "specs/mlflow-tracking.yaml",
        "train-mlflow",
        cwd=seed_azure["root"],
        check=0,
    )
    assert "AUC: 0.8" in log.stdout


def test_seed_state_on_azure_is_made_of_the_records(seed_azure):
    """What the azure backend writes in the state is what runner/records.py declares."""
    from test_records import check_state

    (state,) = (seed_azure["root"] / "specs" / ".mlrun").glob("*.azure.json")
    assert check_state(state) == 2


def test_seed_destroy_deletes_the_resource_group_it_created(seed_azure, azure_emulator):
    root = seed_azure["root"]
    mark = azure_emulator.mark()
    out = az(
        azure_emulator, "destroy", "-y", "specs/mlflow-tracking.yaml", cwd=root, check=0
    ).stdout
    assert "  - resource_group.rg-dp100-seed\n" in out
    deleted = [p for m, p in calls(azure_emulator, mark) if m == "DELETE"]
    assert any(p.endswith("/computes/aml-cluster") for p in deleted)
    assert any(p.endswith("/workspaces/mlw-dp100-seed") for p in deleted)
    assert any(p.endswith("/resourcegroups/rg-dp100-seed") for p in deleted)
    plan = az(
        azure_emulator,
        "plan",
        "specs/mlflow-tracking.yaml",
        "--var",
        "suffix=seed",
        cwd=root,
        check=0,
    ).stdout
    assert plan.startswith(
        "  + resource_group.rg-dp100-seed  eastus\n  + workspace.mlw-dp100-seed\n"
    )


# --- small labs ----------------------------------------------------------------------------------


QUOTA_SUB = "00000000-0000-0000-0000-00000000999{}"  # the quota tests' own subscriptions


def small_lab(folder, suffix, cluster="max_instances: 2", rg=None, subscription=None):
    """A workspace with two clusters. `subscription`: one of the lab's own (usage rows count
    only its computes, whatever other tests left in the emulator's default one)."""
    sub = f'"{subscription}"' if subscription else '"${{env.AZURE_SUBSCRIPTION_ID}}"'
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lab.yaml").write_text(
        textwrap.dedent(f"""\
        name: small
        workspace: {{name: ws-{suffix}, resource_group: {rg or "rg-" + suffix}, location: eastus}}
        computes:
          c1: {{type: amlcompute, size: STANDARD_DS11_V2, {cluster}}}
          c2: {{type: amlcompute, size: STANDARD_DS11_V2, max_instances: 1}}
        targets:
          azure: {{subscription_id: {sub}}}
        """)
    )
    return folder / "lab.yaml"


def test_computes_are_created_concurrently(azure_emulator, tmp_path):
    spec = small_lab(tmp_path, "conc")
    delay = 3  # each compute's creation stays InProgress this long after its PUT
    azure_emulator.delay(method="PUT", path_regex=r"/computes/c[12]$", seconds=delay)
    try:
        mark = azure_emulator.mark()
        az(azure_emulator, "apply", "-y", spec, cwd=tmp_path, check=0)
        log = azure_emulator.requests(mark)
    finally:
        azure_emulator.reset()
    puts = [
        r["t"]
        for r in log
        if r["method"] == "PUT" and r["path"].endswith(("/computes/c1", "/computes/c2"))
    ]
    # The second PUT comes while the first compute is still being created. One after the other,
    # it could only come once the first was done, `delay` s after its PUT, however fast the
    # machine: an order, not a speed bound.
    assert len(puts) == 2 and abs(puts[0] - puts[1]) < delay, puts
    assert any("/operationStatuses/" in r["path"] for r in log)  # polled as operations


def test_update_in_place_and_replace(azure_emulator, tmp_path):
    spec = small_lab(tmp_path, "upd")
    az(azure_emulator, "apply", "-y", spec, cwd=tmp_path, check=0)
    small_lab(tmp_path, "upd", cluster="max_instances: 4")
    plan = az(azure_emulator, "plan", spec, cwd=tmp_path, check=0).stdout
    assert (
        "  ~ compute.c1                   max_instances: 2 -> 4; $0.00/h idle, $0.80/h at 4 nodes\n"
        in plan
    )
    mark = azure_emulator.mark()
    az(azure_emulator, "apply", "-y", spec, cwd=tmp_path, check=0)
    made = calls(azure_emulator, mark)
    assert not any(m == "DELETE" for m, _ in made)
    assert any(m in ("PUT", "PATCH") and p.endswith("/computes/c1") for m, p in made)
    spec.write_text(
        spec.read_text().replace(
            "c1: {type: amlcompute, size: STANDARD_DS11_V2",
            "c1: {type: amlcompute, size: STANDARD_DS12_V2",
        )
    )
    plan = az(azure_emulator, "plan", spec, cwd=tmp_path, check=0).stdout
    assert (
        "-/+ compute.c1                   size: STANDARD_DS11_V2 -> STANDARD_DS12_V2 "
        "(cannot change in place); STANDARD_DS12_V2 not priced\n" in plan
    )
    mark = azure_emulator.mark()
    az(azure_emulator, "apply", "-y", spec, cwd=tmp_path, check=0)
    made = [(m, p) for m, p in calls(azure_emulator, mark) if p.endswith("/computes/c1")]
    assert [m for m, _ in made if m != "GET"][:2] == ["DELETE", "PUT"]
    assert az(azure_emulator, "plan", spec, cwd=tmp_path, check=0).stdout.endswith(
        "No changes. Everything is up to date.\n"
    )


def existing_resource_group(emulator, name):
    """A resource group made before mlrun runs, through the real SDK."""
    run_sdk(
        emulator,
        textwrap.dedent(f"""\
        import json, os
        from azure.ai.ml._azure_environments import _get_base_url_from_metadata
        from azure.identity import DefaultAzureCredential
        from azure.mgmt.resource.resources import ResourceManagementClient
        base = _get_base_url_from_metadata()
        arm = ResourceManagementClient(
            DefaultAzureCredential(), os.environ["AZURE_SUBSCRIPTION_ID"],
            base_url=base, credential_scopes=[base + "/.default"])
        arm.resource_groups.create_or_update("{name}", {{"location": "eastus"}})
        print(json.dumps({{"ok": True}}))
        """),
    )


def test_a_resource_group_that_existed_before_survives_destroy(azure_emulator, tmp_path):
    existing_resource_group(azure_emulator, "rg-mine")
    spec = small_lab(tmp_path, "keep", rg="rg-mine")
    az(azure_emulator, "apply", "-y", spec, cwd=tmp_path, check=0)
    mark = azure_emulator.mark()
    out = az(azure_emulator, "destroy", "-y", spec, cwd=tmp_path, check=0).stdout
    assert "  - resource_group.rg-mine       it existed before mlrun: kept, only forgotten\n" in out
    made = calls(azure_emulator, mark)
    assert any(m == "DELETE" and p.endswith("/workspaces/ws-keep") for m, p in made)
    assert not any(m == "DELETE" and p.lower().endswith("/resourcegroups/rg-mine") for m, p in made)


# --- faults --------------------------------------------------------------------------------------


def test_429_with_retry_after_is_retried_to_success(azure_emulator, tmp_path):
    spec = small_lab(tmp_path, "t429")
    azure_emulator.fault(
        method="PUT", path_regex=r"/computes/c1$", status=429, retry_after=1, count=1
    )
    try:
        mark = azure_emulator.mark()
        az(azure_emulator, "apply", "-y", spec, cwd=tmp_path, check=0)
    finally:
        azure_emulator.reset()
    statuses = [
        r["status"]
        for r in azure_emulator.requests(mark)
        if r["method"] == "PUT" and r["path"].endswith("/computes/c1")
    ]
    assert statuses[:2] == [429, 201]


def test_quota_error_is_plain_and_the_next_apply_converges(azure_emulator, tmp_path):
    spec = small_lab(tmp_path, "quota")
    azure_emulator.call("POST", "/_emulator/quota", {"total": 0})
    try:
        proc = az(azure_emulator, "apply", "-y", spec, cwd=tmp_path, check=1)
    finally:
        azure_emulator.call("POST", "/_emulator/quota", {"total": 100})
    warning, error = proc.stderr.splitlines()
    assert warning.startswith(
        "warning: the new computes need 6 vCPUs in total in eastus, but the subscription has 0 free"
    )
    assert error.startswith("error: not enough quota: ") and ".. " not in error
    assert error.endswith(
        ". Request more vCPU quota for this VM family in the region, pick a smaller size, "
        "or lower max_instances."
    )
    plan = az(azure_emulator, "plan", spec, cwd=tmp_path, check=0).stdout
    assert "  + compute.c1" in plan and "workspace" not in plan.split("Plan:")[0].replace(
        "  = ", ""
    )
    az(azure_emulator, "apply", "-y", spec, cwd=tmp_path, check=0)
    assert az(azure_emulator, "plan", spec, cwd=tmp_path, check=0).stdout.endswith(
        "No changes. Everything is up to date.\n"
    )


def test_plan_warns_in_plain_words_when_quota_is_short(azure_emulator, tmp_path):
    spec = small_lab(
        tmp_path, "short", cluster="max_instances: 8", subscription=QUOTA_SUB.format(1)
    )
    azure_emulator.call("POST", "/_emulator/quota", {"family": "standardDSv2Family", "limit": 4})
    try:
        proc = az(azure_emulator, "plan", spec, cwd=tmp_path, check=0)
    finally:
        azure_emulator.call(
            "POST", "/_emulator/quota", {"family": "standardDSv2Family", "limit": 24}
        )
    assert proc.stderr == (
        "warning: the new computes need 18 vCPUs of the standardDSv2Family in eastus, but the "
        "subscription has 4 free (quota 4, 0 in use): creating them will fail. Request more quota "
        "(Azure portal, Quotas, Machine learning), or pick a smaller size or fewer max_instances.\n"
    )
    assert "  + compute.c1" in proc.stdout


def test_quota_counts_the_sdks_four_nodes_when_not_given_and_minus_one_is_no_cap(
    azure_emulator, tmp_path
):
    spec = small_lab(
        tmp_path, "nocap", cluster="min_instances: 0", subscription=QUOTA_SUB.format(2)
    )  # the SDK makes 4 nodes
    azure_emulator.call("POST", "/_emulator/quota", {"family": "standardDSv2Family", "limit": 8})
    try:
        short = az(azure_emulator, "plan", spec, cwd=tmp_path, check=0).stderr
        azure_emulator.call(
            "POST", "/_emulator/quota", {"family": "standardDSv2Family", "limit": -1}
        )
        uncapped = az(azure_emulator, "plan", spec, cwd=tmp_path, check=0).stderr
    finally:
        azure_emulator.call(
            "POST", "/_emulator/quota", {"family": "standardDSv2Family", "limit": 24}
        )
    assert short.startswith(  # c1's 4 nodes and c2's 1, of 2 vCPUs each
        "warning: the new computes need 10 vCPUs of the standardDSv2Family in eastus, but the "
        "subscription has "
    )
    assert uncapped == ""


def test_a_low_priority_cluster_counts_against_the_low_priority_quota_only(
    azure_emulator, tmp_path
):
    spec = small_lab(
        tmp_path,
        "lowpri",
        cluster="max_instances: 8, tier: low_priority",
        subscription=QUOTA_SUB.format(3),
    )
    azure_emulator.call("POST", "/_emulator/quota", {"family": "standardDSv2Family", "limit": 4})
    azure_emulator.call("POST", "/_emulator/quota", {"low_priority": 8})
    try:
        said = az(azure_emulator, "plan", spec, cwd=tmp_path, check=0).stderr
    finally:
        azure_emulator.call(
            "POST", "/_emulator/quota", {"family": "standardDSv2Family", "limit": 24}
        )
        azure_emulator.call("POST", "/_emulator/quota", {"low_priority": 100})
    assert said.splitlines() == [  # c1's 8 low-priority nodes; c2's 1 dedicated fits in 4
        "warning: the new computes need 16 vCPUs of low priority in total in eastus, but the "
        "subscription has 8 free (quota 8, 0 in use): creating them will fail. Request more "
        "quota (Azure portal, Quotas, Machine learning), or pick a smaller size or fewer "
        "max_instances."
    ]


@pytest.mark.parametrize(
    "fault, expected",
    [
        (
            {
                "status": 409,
                "body": {
                    "error": {"code": "Conflict", "message": "Compute name c1 is already in use."}
                },
            },
            "error: the name is taken: ",
        ),
        ({"status": 503, "count": 8}, "error: Azure answered 503: "),
        (
            {
                "async_failure": {
                    "code": "ClusterCreationFailed",
                    "message": "Allocation failed in eastus.",
                }
            },
            "Allocation failed in eastus.",
        ),
    ],
)
def test_compute_faults_end_in_a_clear_message_then_converge(
    azure_emulator, tmp_path, fault, expected
):
    spec = small_lab(tmp_path, f"fault{fault.get('status', 0)}")
    azure_emulator.fault(method="PUT", path_regex=r"/computes/c1$", **fault)
    try:
        proc = az(azure_emulator, "apply", "-y", spec, cwd=tmp_path, check=1)
    finally:
        azure_emulator.reset()
    assert expected in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    az(azure_emulator, "apply", "-y", spec, cwd=tmp_path, check=0)
    assert az(azure_emulator, "plan", spec, cwd=tmp_path, check=0).stdout.endswith(
        "No changes. Everything is up to date.\n"
    )


def test_failed_workspace_deployment_is_a_clear_message(azure_emulator, tmp_path):
    spec = small_lab(tmp_path, "depl")
    azure_emulator.fault(
        method="PUT",
        path_regex=r"/deployments/ws-depl",
        async_failure={
            "code": "DeploymentFailed",
            "message": "At least one resource deployment operation failed.",
        },
    )
    try:
        proc = az(azure_emulator, "apply", "-y", spec, cwd=tmp_path, check=1)
    finally:
        azure_emulator.reset()
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: "), proc.stderr
    az(azure_emulator, "apply", "-y", spec, cwd=tmp_path, check=0)


def test_a_config_json_names_the_subscription_and_an_existing_resource_group(
    azure_emulator, tmp_path
):
    existing_resource_group(azure_emulator, "rg-fromconfig")
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "subscription_id": azure_emulator.subscription,
                "resource_group": "rg-fromconfig",
                "workspace_name": "ws-cfg",
            }
        )
    )
    spec = tmp_path / "lab.yaml"
    spec.write_text(
        "name: cfg\nworkspace: {name: ws-cfg, location: eastus}\n"
        "computes:\n  c1: {type: amlcompute, size: STANDARD_DS11_V2, max_instances: 1}\n"
        "targets:\n  azure: {config: config.json}\n"
    )
    plan = az(azure_emulator, "plan", spec, cwd=tmp_path, check=0).stdout
    today, source = time.strftime("%Y-%m-%d"), "live" if ", live;" in plan else "cache"
    assert plan == (
        "  + workspace.ws-cfg\n"
        "  + compute.c1                   amlcompute STANDARD_DS11_V2, 0..1 nodes; $0.00/h idle, "
        "$0.20/h at 1 node\n"
        f"cost: $0.20/h while running, $0.00/h idle (USD retail, eastus, prices as of {today}, "
        f"{source}; disks, storage and networking not priced)\n"
        "Plan: 2 to add, 0 to change, 0 to replace, 0 to destroy, 0 jobs to run.\n"
    )
    mark = azure_emulator.mark()
    az(azure_emulator, "apply", "-y", spec, cwd=tmp_path, check=0)
    assert any(
        m == "PUT" and "/resourceGroups/rg-fromconfig/" in p and p.endswith("/computes/c1")
        for m, p in calls(azure_emulator, mark)
    )
    az(azure_emulator, "destroy", "-y", spec, cwd=tmp_path, check=0)


def test_data_assets_and_models_are_registered_versioned_and_read_by_jobs(azure_emulator, tmp_path):
    """Data uploaded and registered, read by a job as azureml:NAME@latest and azureml:NAME:V; the
    job's output and artifacts registered as models (azureml://jobs/JOB/outputs/..., which the
    emulator accepts only for a completed job's declared output), a new version per run."""
    (tmp_path / "data").mkdir()
    source = tmp_path / "data" / "rows.csv"
    source.write_text("a,b\n1,2\n3,4\n")
    spec = tmp_path / "lab.yaml"
    spec.write_text(
        textwrap.dedent("""\
        name: assets
        workspace: {name: ws-assets, resource_group: rg-assets, location: eastus}
        computes: {cpu: {type: amlcompute, size: STANDARD_DS11_V2, max_instances: 1}}
        data:
          rows: {type: uri_file, path: data/rows.csv, tags: {lab: dp100}}
          pinned: {path: data, version: 7}
        models:
          counted: {path: "${{jobs.count.outputs.out}}", description: rows counted}
          logged: {path: "${{jobs.count.artifacts}}/outputs"}
        jobs:
          count:
            command: wc -l < ${{inputs.d}} | tee ${{outputs.out}}/n.txt && ls ${{inputs.f}}
            outputs: {out: {type: uri_folder}}
            compute: azureml:cpu
            environment: azureml:AzureML-sklearn-1.5@latest
            inputs:
              d: {type: uri_file, path: "azureml:rows@latest"}
              f: {type: uri_folder, path: "azureml:pinned:7"}
        targets:
          azure: {subscription_id: "${{env.AZURE_SUBSCRIPTION_ID}}"}
        """)
    )
    mark = azure_emulator.mark()
    apply = az(azure_emulator, "apply", "-y", spec, cwd=tmp_path, check=0)
    assert "data.rows  created  uri_file v1 (2 rows, 12 bytes)" in apply.stdout
    run1 = json.loads((tmp_path / ".mlrun" / "assets.azure.json").read_text())["jobs"]["count"]
    run1 = run1["runs"][-1]["id"]
    created = f"model.counted  created  custom_model v1 from job.count outputs/out (run {run1[:7]})"
    assert created in apply.stdout
    puts = [p for m, p in calls(azure_emulator, mark) if m == "PUT" and "/data/" in p]
    assert sorted(p.split("/workspaces/ws-assets/")[1] for p in puts) == [
        "data/pinned/versions/7",
        "data/rows/versions/1",
    ]
    logs = az(azure_emulator, "logs", spec, "count", cwd=tmp_path, check=0).stdout
    assert logs.split()[:2] == ["3", "rows.csv"]  # the uploaded file and folder, as the job saw
    assert az(azure_emulator, "plan", spec, cwd=tmp_path, check=0).stdout.endswith(
        "No changes. Everything is up to date.\n"
    )
    source.write_text("a,b\n1,2\n3,4\n5,6\n")
    plan = az(azure_emulator, "plan", spec, cwd=tmp_path, check=1)  # pinned's content changed
    assert "data.pinned: version 7 was registered with other content" in plan.stderr
    spec.write_text(spec.read_text().replace("version: 7", "version: 8").replace(":7", ":8"))
    plan = az(azure_emulator, "plan", spec, cwd=tmp_path, check=0).stdout
    assert "+ data.rows                    uri_file v2 (3 rows, 16 bytes; new version" in plan
    assert "+ data.pinned                  uri_folder v8 (1 file, 16 bytes; new version" in plan
    az(azure_emulator, "apply", "-y", spec, cwd=tmp_path, check=0)
    logs = az(azure_emulator, "logs", spec, "count", cwd=tmp_path, check=0).stdout
    assert logs.split()[:2] == ["4", "rows.csv"]
    puts = [p for m, p in calls(azure_emulator, mark) if m == "PUT" and "/models/" in p]
    assert sorted(p.split("/workspaces/ws-assets/")[1] for p in puts) == [
        "models/counted/versions/1",
        "models/counted/versions/2",
        "models/logged/versions/1",
        "models/logged/versions/2",
    ]
    found = az(azure_emulator, "runs", spec, "--model", "counted", "--json", cwd=tmp_path, check=0)
    made = {r["run_id"]: r["model_versions"] for r in json.loads(found.stdout)["runs"]}
    assert made[run1] == ["1"] and sorted(made.values()) == [["1"], ["2"]]
    mark = azure_emulator.mark()
    az(azure_emulator, "destroy", "-y", spec, cwd=tmp_path, check=0)
    deleted = [p.lower() for m, p in calls(azure_emulator, mark) if m == "DELETE"]
    assert any(p.endswith("/resourcegroups/rg-assets") for p in deleted), deleted


def test_sdk_output_kept_off_the_terminal_by_each_thread_leaves_stderr_working():
    """Two SDK calls at once, the first ending before the second: stderr is the real one after,
    and each call's own output was its own (not the other's, not lost)."""
    import io
    import sys
    import threading

    from runner.backends.azure import _sdk_stderr

    real, seen = io.StringIO(), []
    inside, first_done = threading.Event(), threading.Event()

    def call(name, hold):
        with _sdk_stderr():
            print(f"\x1b[39m\n{name} says", file=sys.stderr)
            if hold:
                inside.set()
                first_done.wait(10)
        seen.append(name)

    saved, sys.stderr = sys.stderr, real
    try:
        second = threading.Thread(target=call, args=("second", True))
        second.start()
        inside.wait(10)
        call("first", False)  # enters after the second and ends before it
        first_done.set()
        second.join(10)
        print("after", file=sys.stderr)
        assert sys.stderr is real
    finally:
        sys.stderr = saved
    assert seen == ["first", "second"]
    assert real.getvalue().splitlines() == ["first says", "second says", "after"]


IDLE_CLIENT = (  # a script's MLClient on the idle test's workspace
    "import json, os\n"
    "from azure.ai.ml import MLClient\n"
    "from azure.identity import DefaultAzureCredential\n"
    "ml = MLClient(DefaultAzureCredential(), os.environ['AZURE_SUBSCRIPTION_ID'], 'rg-idle', "
    "'ws-idle')\n"
)


def test_an_instances_idle_shutdown_changes_in_place_through_azures_own_action(
    azure_emulator, tmp_path
):
    """60 idle minutes by default; changed on the existing instance with
    updateIdleShutdownSetting (a compute PUT would leave it as it was), then up to date."""
    spec = tmp_path / "lab.yaml"
    body = (
        "name: idle\nworkspace: {name: ws-idle, resource_group: rg-idle, location: eastus}\n"
        "computes:\n  ci-idle: {type: computeinstance, size: STANDARD_DS11_V2IDLE}\n"
        'targets:\n  azure: {subscription_id: "${{env.AZURE_SUBSCRIPTION_ID}}"}\n'
    )
    spec.write_text(body.replace("IDLE", ""))
    az(azure_emulator, "apply", "-y", spec, cwd=tmp_path, check=0)
    found = run_sdk(
        azure_emulator,
        IDLE_CLIENT + "print(json.dumps({'idle': ml.compute.get('ci-idle')"
        ".idle_time_before_shutdown_minutes}))\n",
    )
    assert found["idle"] == 60
    spec.write_text(body.replace("IDLE", ", idle_time_before_shutdown_minutes: 30"))
    plan = az(azure_emulator, "plan", spec, cwd=tmp_path, check=0).stdout
    assert "~ compute.ci-idle              idle_time_before_shutdown_minutes: 60 -> 30" in plan
    mark = azure_emulator.mark()
    az(azure_emulator, "apply", "-y", spec, cwd=tmp_path, check=0)
    assert (
        "POST",
        "/subscriptions/00000000-0000-0000-0000-00000000000e/resourceGroups/rg-idle"
        "/providers/Microsoft.MachineLearningServices/workspaces/ws-idle/computes/ci-idle"
        "/updateIdleShutdownSetting",
    ) in calls(azure_emulator, mark)
    plan = az(azure_emulator, "plan", spec, cwd=tmp_path, check=0).stdout
    assert plan.endswith("No changes. Everything is up to date.\n")

    # what bills: the running instance, by the hour and (an estimate) since it started
    status = az(azure_emulator, "status", spec, cwd=tmp_path, check=0).stdout
    assert "billable now (estimates, USD retail):\n  compute.ci-idle" in status
    assert "Running    $0.20/h    since 20" in status
    [bill] = json.loads(az(azure_emulator, "status", "--json", spec, cwd=tmp_path, check=0).stdout)[
        "billable"
    ]
    assert (bill["state"], bill["per_hour"], bill["estimate"]) == ("Running", 0.2, True)
    assert 0 <= bill["cost_so_far"] < 0.2  # created moments ago
    run_sdk(azure_emulator, IDLE_CLIENT + "ml.compute.begin_stop('ci-idle').result()\n")
    [bill] = json.loads(az(azure_emulator, "status", "--json", spec, cwd=tmp_path, check=0).stdout)[
        "billable"
    ]
    assert (bill["state"], bill["per_hour"], bill["cost_so_far"]) == ("Stopped", 0.0, None)
    az(azure_emulator, "destroy", "-y", spec, cwd=tmp_path, check=0)


def test_without_a_subscription_in_the_spec_the_azure_clis_default_is_used_and_named(
    azure_emulator, tmp_path
):
    """As Terraform's azurerm provider: AZURE_SUBSCRIPTION_ID, else the Azure CLI's default
    subscription (its profile, written with a byte order mark); the plan says which."""
    spec = tmp_path / "lab.yaml"
    spec.write_text(
        "name: nosub\nworkspace: {name: ws-nosub, resource_group: rg-nosub, location: eastus}\n"
    )
    env = {k: v for k, v in azure_emulator.env.items() if k != "AZURE_SUBSCRIPTION_ID"}
    env["AZURE_CONFIG_DIR"] = str(tmp_path / "az")
    run = ["plan", spec, "--target", "azure"]
    refused = run_mlrun(*run, cwd=tmp_path, env=env, check=1)
    assert "the azure target needs a subscription: targets.azure.subscription_id, " in (
        refused.stderr
    )
    (tmp_path / "az").mkdir()
    profile = {
        "subscriptions": [
            {"id": "ffffffff-0000-0000-0000-000000000000", "name": "Other", "isDefault": False},
            {"id": azure_emulator.subscription, "name": "Lab subscription", "isDefault": True},
        ]
    }
    (tmp_path / "az" / "azureProfile.json").write_text(
        "\ufeff" + json.dumps(profile), encoding="utf-8"
    )
    planned = run_mlrun(*run, cwd=tmp_path, env=env, check=0)
    assert (
        f"note: subscription {azure_emulator.subscription}, from the Azure CLI's default "
        "subscription 'Lab subscription' (az account show)" in planned.stderr
    )
    assert "+ workspace.ws-nosub" in planned.stdout
    env["AZURE_SUBSCRIPTION_ID"] = azure_emulator.subscription
    planned = run_mlrun(*run, cwd=tmp_path, env=env, check=0)
    assert f"note: subscription {azure_emulator.subscription}, from AZURE_SUBSCRIPTION_ID" in (
        planned.stderr
    )


def test_a_lab_that_expires_is_tagged_stopped_on_time_extended_and_destroyed_once_expired(
    azure_emulator, tmp_path
):
    """expires_after tags the resource group, workspace and computes mlrun creates, gives the
    instance a stop schedule at that time, is pushed out by apply --extend; a lab past its expiry
    is warned of, and destroy --expired removes it (by its tags) and nothing else."""
    import datetime as dt

    def lab(folder, name, expires, computes=""):
        folder.mkdir()
        (folder / "lab.yaml").write_text(
            f"name: {name}\nexpires_after: {expires}\n"
            f"workspace: {{name: ws-{name}, resource_group: rg-{name}, location: eastus}}\n"
            + computes
        )
        return folder / "lab.yaml"

    def tags(group):
        return run_sdk(
            azure_emulator,
            textwrap.dedent(f"""\
            import json, os
            from azure.ai.ml._azure_environments import _get_base_url_from_metadata
            from azure.identity import DefaultAzureCredential
            from azure.mgmt.resource.resources import ResourceManagementClient
            base = _get_base_url_from_metadata()
            arm = ResourceManagementClient(
                DefaultAzureCredential(), os.environ["AZURE_SUBSCRIPTION_ID"],
                base_url=base, credential_scopes=[base + "/.default"])
            print(json.dumps(arm.resource_groups.get("{group}").tags))
            """),
        )

    live = lab(
        tmp_path / "live",
        "fresh",
        "8h",
        "computes:\n  ci-fresh: {type: computeinstance, size: STANDARD_DS11_V2}\n",
    )
    started = dt.datetime.now(dt.UTC)
    az(azure_emulator, "apply", "-y", live, cwd=live.parent, check=0)
    found = tags("rg-fresh")
    expires = dt.datetime.fromisoformat(found["mlrun-expires"].replace("Z", "+00:00"))
    assert found["mlrun-lab"] == "fresh"
    assert abs((expires - started).total_seconds() - 8 * 3600) < 120
    schedule = run_sdk(
        azure_emulator,
        IDLE_CLIENT.replace("rg-idle", "rg-fresh").replace("ws-idle", "ws-fresh")
        + "ci = ml.compute.get('ci-fresh')\n"
        "stop = ci.schedules.compute_start_stop[0]\n"
        "print(json.dumps({'action': str(stop.action), 'cron': stop.trigger.expression,"
        " 'tags': ci.tags}))\n",
    )
    assert schedule["cron"] == f"{expires.minute} {expires.hour} {expires.day} {expires.month} *"
    assert "stop" in schedule["action"].lower()
    assert schedule["tags"]["mlrun-expires"] == found["mlrun-expires"]
    assert az(azure_emulator, "plan", live, cwd=live.parent, check=0).stdout.endswith(
        "No changes. Everything is up to date.\n"
    )
    extended = az(azure_emulator, "apply", "-y", live, "--extend", "2h", cwd=live.parent, check=0)
    later = tags("rg-fresh")["mlrun-expires"]
    assert f"The lab now expires at {later}." in extended.stdout
    assert (
        dt.datetime.fromisoformat(later.replace("Z", "+00:00")) - expires
    ).total_seconds() == 7200

    old = lab(tmp_path / "old", "stale", "2026-01-01T00:00:00Z")
    az(azure_emulator, "apply", "-y", old, cwd=old.parent, check=0)
    plan = az(azure_emulator, "plan", old, cwd=old.parent, check=0)
    assert "warning: this lab expired at 2026-01-01T00:00:00Z (expires_after: " in plan.stderr
    gone = run_mlrun(
        "destroy", "--expired", "-y", "--target", "azure", cwd=tmp_path, env=azure_emulator.env
    )
    assert gone.returncode == 0, gone.stderr
    assert "destroyed resource_group.rg-stale" in gone.stdout
    assert "rg-fresh" not in gone.stdout
    assert "Destroyed 1 expired lab." in gone.stdout
    az(azure_emulator, "destroy", "-y", live, cwd=live.parent, check=0)
