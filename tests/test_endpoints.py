"""Endpoints (DP-100 lab 11): the spec's `endpoints:` validated located, planned with their cost,
and on the local target deployed for real: an MLflow model behind MLflow's scoring server, behind
the endpoint's router on 127.0.0.1 (key auth, Azure's `input_data` body), called by apply's
`invoke:` and by `mlrun invoke`, adopted by the next apply, restarted when its server was killed,
replaced without a failed request, stopped by destroy."""

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, lab_copy, run_mlrun

SAMPLE = json.loads((ROOT / "training" / "sample-data.json").read_text())  # Azure's body


def lab(folder: Path, body: str) -> Path:
    spec = folder / "lab.yaml"
    spec.write_text(f"name: serve\nworkspace: {{name: ws-serve}}\n{body}")
    return spec


def problems(folder: Path, body: str) -> str:
    proc = run_mlrun("validate", lab(folder, body), cwd=folder, check=1)
    return proc.stdout + proc.stderr


def test_bad_endpoints_are_located_errors(tmp_path):
    (tmp_path / "model").mkdir()  # no MLmodel file
    out = problems(
        tmp_path,
        """\
endpoints:
  diabetes-online:
    traffic: {blu: 90, green: 20}
    deployments:
      blue: {model: {path: ./model, type: mlflow_model}}
      green:
        model: {path: ./nothing, type: mlflow_model}
        code_configuration: {code: ./score, scoring_script: score.py}
    invoke: {request_file: missing.json, deployment_name: red}
  x: {deployments: {}}
""",
    )
    assert (
        "lab.yaml:5:14: error: $.endpoints.diabetes-online.traffic: traffic adds up to 110%" in out
    )
    assert (
        "lab.yaml:5:15: error: $.endpoints.diabetes-online.traffic.blu: endpoint diabetes-online "
        "has no deployment 'blu' (did you mean 'blue'?" in out
    )
    assert "deployments.blue.model.path: './model' has no MLmodel file" in out
    assert "deployments.green.model.path: model path './nothing' does not exist" in out
    assert (
        "green.code_configuration: an MLflow model with a scoring script needs an environment"
        in out
    )
    assert "green.code_configuration.code: folder './score' does not exist" in out
    assert "invoke.request_file: request file 'missing.json' does not exist" in out
    assert "invoke.deployment_name: endpoint diabetes-online has no deployment 'red'" in out
    assert "lab.yaml:12:3: error: $.endpoints.x: 'x' is not a valid endpoint name" in out


def test_an_unknown_field_and_a_misplaced_one_are_refused(tmp_path):
    out = problems(
        tmp_path,
        """\
computes:
  batch-cluster: {type: amlcompute, max_instances: 2}
endpoints:
  scorer:
    type: batch
    traffic: {blue: 100}
    deployments:
      blue: {model: azureml:m@latest, compute: batch-cluster, instance_type: Standard_DS3_v2}
  online-one:
    deployments:
      blue: {model: azureml:m@latest, instance_cout: 2, compute: azureml:batch-cluster}
""",
    )
    assert "lab.yaml:8:5: error: $.endpoints.scorer.traffic: traffic is a field of online" in out
    assert (
        "$.endpoints.scorer.deployments.blue.instance_type: instance_type is a field of online "
        "deployments, not of a batch deployment"
    ) in out
    assert "$.endpoints.online-one.deployments.blue.instance_cout" in out
    assert "$.endpoints.online-one.deployments.blue.compute: compute is a field of batch" in out


BATCH_DEPLOYMENT = """\
$schema: https://azuremlschemas.azureedge.net/latest/batchDeployment.schema.json
endpoint_name: heart-batch
name: classifier
type: model
model: azureml:heart-classifier@latest
compute: azureml:batch-cluster
resources:
  instance_count: 2
settings:
  max_concurrency_per_instance: 2
  mini_batch_size: 2
  output_action: append_row
  output_file_name: predictions.csv
  retry_settings:
    max_retries: 3
    timeout: 300
  error_threshold: -1
  logging_level: info
"""


def test_a_batch_endpoint_and_its_deployment_file_validate_and_plan(tmp_path):
    """azureml-examples' heart-classifier-mlflow shape, included unmodified: the plan says where
    and how it scores, prices nothing until it is invoked, and calls it once deployed."""
    (tmp_path / "deployment.yml").write_text(BATCH_DEPLOYMENT)
    (tmp_path / "endpoint.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/batchEndpoint.schema.json\n"
        "name: heart-batch\ndescription: A heart condition classifier\nauth_mode: aad_token\n"
    )
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("x\n1\n")
    spec = lab(
        tmp_path,
        """\
computes:
  batch-cluster: {type: amlcompute, size: STANDARD_DS3_V2, max_instances: 2}
endpoints:
  heart-batch:
    file: endpoint.yml
    type: batch
    deployments:
      classifier: {file: deployment.yml}
    invoke: {input: {type: uri_folder, path: ./data}}
""",
    )
    run_mlrun("validate", spec, cwd=tmp_path, check=0)
    out = run_mlrun("plan", spec, cwd=tmp_path, check=0).stdout
    assert "+ endpoint.heart-batch" in out and "batch, default classifier" in out
    assert (
        "azureml:heart-classifier@latest on batch-cluster: 2 x 2 at once, mini-batches of 2 "
        "files, append_row to predictions.csv"
    ) in out
    assert "> invoke.heart-batch" in out and "./data -> classifier (once deployed)" in out
    assert "bills until destroyed" not in out  # its compute bills while it scores, as a job's


def test_bad_batch_endpoints_are_located_errors(tmp_path):
    out = problems(
        tmp_path,
        """\
computes:
  batch-cluster: {type: amlcompute, max_instances: 2}
endpoints:
  heart-batch:
    type: batch
    defaults: {deployment_name: nope}
    deployments:
      custom:
        model: {path: ./model, type: custom_model}
        compute: azureml:batch-clustr
      piped: {type: pipeline, component: azureml:c@latest, compute: batch-cluster}
      bare: {model: azureml:m@latest}
    invoke: {request_file: r.json, input: ./missing}
""",
    )
    at = "$.endpoints.heart-batch"
    assert f"lab.yaml:8:33: error: {at}.defaults.deployment_name: endpoint heart-batch has" in out
    assert (
        f"{at}.deployments.custom.compute: 'batch-clustr' is not a compute of this spec (did you "
        "mean 'batch-cluster'? defined: batch-cluster)"
    ) in out
    assert f"{at}.deployments.custom.model.path: model path './model' does not exist" in out
    assert (
        f"{at}.deployments.piped.compute: compute is a field of model batch deployments, not of a "
        "pipeline deployment (a pipeline deployment's is settings.default_compute)"
    ) in out
    assert f"{at}.deployments.bare: a batch deployment needs a compute" in out
    assert f"{at}.invoke.request_file: a batch endpoint is invoked with an input" in out
    assert f"{at}.invoke.input: input path './missing' does not exist" in out


def test_endpoint_and_deployment_files_are_included_unmodified(tmp_path):
    """Azure's own endpoint and deployment YAML (their $schema, name, endpoint_name) by file:."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n")
    (tmp_path / "endpoint.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json\n"
        "name: my-endpoint\nauth_mode: key\n"
    )
    (tmp_path / "blue-deployment.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json\n"
        "name: blue\nendpoint_name: my-endpoint\n"
        "model:\n  path: ./model\n  type: mlflow_model\n"
        "instance_type: Standard_DS3_v2\ninstance_count: 2\n"
    )
    spec = lab(
        tmp_path,
        """\
endpoints:
  my-endpoint:
    file: endpoint.yml
    traffic: {blue: 100}
    deployments:
      blue: {file: blue-deployment.yml}
""",
    )
    run_mlrun("validate", spec, cwd=tmp_path, check=0)
    out = run_mlrun("plan", spec, cwd=tmp_path, check=0).stdout
    assert "+ endpoint.my-endpoint" in out and "online, key auth, traffic blue 100%" in out
    # two instances bill, whether called or not
    assert "+ deployment.my-endpoint/blue" in out and "(2 x Standard_DS3_v2), bills until" in out
    assert "mlflow_model" not in out or "./model" in out


# --- deployed for real (one lab, applied once for the module) -------------------------------------


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """specs/deploy.yaml as a user runs it: train with autologging, register the model, deploy it
    behind an online endpoint, call it."""
    root = lab_copy(tmp_path_factory.mktemp("deploy"), "deploy.yaml")
    spec = root / "specs" / "deploy.yaml"
    proc = run_mlrun("apply", "-y", spec, cwd=root, check=0)
    yield {"root": root, "spec": spec, "apply": proc}
    run_mlrun("destroy", "-y", spec, cwd=root)


def endpoint_folder(root: Path) -> Path:
    return (
        root / "specs" / ".mlrun" / "local" / "mlw-dp100-deploy" / "endpoints" / "diabetes-online"
    )


def score(root: Path, body: dict, key: str | None = "primaryKey", headers: dict | None = None):
    """A client's POST to the scoring URI: (status, decoded answer)."""
    where = endpoint_folder(root)
    url = json.loads((where / "router.json").read_text())["url"] + "/score"
    sent = {"Content-Type": "application/json", **(headers or {})}
    if key:
        sent["Authorization"] = "Bearer " + json.loads((where / "keys.json").read_text())[key]
    request = urllib.request.Request(url, json.dumps(body).encode(), sent, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def test_apply_trains_registers_deploys_and_calls(deployed):
    out = deployed["apply"].stdout
    assert (
        "deployment.diabetes-online/blue  created  diabetes-mlflow v1 (MLflow scoring server)"
        in out
    )
    assert "invoke.diabetes-online  called  200: [0, 1]" in out
    # the state keeps the call's answer, never the endpoint's keys
    text = (deployed["root"] / "specs" / ".mlrun" / "deploy.local.json").read_text()
    keys = json.loads((endpoint_folder(deployed["root"]) / "keys.json").read_text())
    assert '"answer": "[0, 1]"' in text
    assert not any(k in text for k in keys.values())
    assert os.stat(endpoint_folder(deployed["root"]) / "keys.json").st_mode & 0o077 == 0


def test_reports_show_the_endpoint_and_the_labs_call(deployed):
    root, spec = deployed["root"], deployed["spec"]
    keys = json.loads((endpoint_folder(root) / "keys.json").read_text()).values()
    made = json.loads(run_mlrun("report", spec, "--format", "json", cwd=root, check=0).stdout)
    (endpoint,) = made["endpoints"]
    assert endpoint["name"] == "diabetes-online" and endpoint["scoring_uri"].endswith("/score")
    (blue,) = endpoint["deployments"]
    assert (blue["name"], blue["model"], blue["traffic"]) == ("blue", "diabetes-mlflow v1", 100)
    assert endpoint["invoke"]["status"] == 200 and endpoint["invoke"]["answer"] == "[0, 1]"
    for fmt, said in (
        ("markdown", "## Endpoint `diabetes-online`"),
        ("html", '<section id="endpoint-diabetes-online">'),
    ):
        text = run_mlrun("report", spec, "--format", fmt, cwd=root, check=0).stdout
        assert said in text and "[0, 1]" in text and "sample-data.json" in text, text
        assert not any(k in text for k in keys)


def test_the_endpoint_answers_as_azure_does(deployed):
    root = deployed["root"]
    assert score(root, SAMPLE) == (200, [0, 1])  # Azure's input_data, a bare list back
    assert score(root, SAMPLE, key="secondaryKey")[0] == 200
    status, answer = score(root, SAMPLE, key=None)
    assert status == 401 and "message" in answer
    split = {"dataframe_split": SAMPLE["input_data"]}  # MLflow's own body: MLflow's answer
    assert score(root, split) == (200, {"predictions": [0, 1]})
    status, answer = score(root, SAMPLE, headers={"azureml-model-deployment": "green"})
    assert status == 404 and "green" in answer["message"]
    proc = run_mlrun("invoke", deployed["spec"], "diabetes-online", cwd=root, check=0)
    assert proc.stdout.strip() == "[0, 1]"
    one = root / "one.json"
    one.write_text(json.dumps({"input_data": [SAMPLE["input_data"]["data"][1]]}))  # a bare list
    args = ("invoke", deployed["spec"], "diabetes-online", "--request-file", one)
    proc = run_mlrun(*args, "--deployment", "blue", cwd=root, check=0)
    assert proc.stdout.strip() == "[1]"
    proc = run_mlrun(*args, "--deployment", "green", cwd=root, check=1)
    assert "deployment green not found" in proc.stdout and "answered 404" in proc.stderr


def test_a_killed_server_is_said_and_restarted_by_the_next_apply(deployed):
    root, spec = deployed["root"], deployed["spec"]
    current = json.loads(
        (endpoint_folder(root) / "deployments" / "blue" / "current.json").read_text()
    )
    os.kill(current["pids"][0], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while score(root, SAMPLE)[0] != 503 and time.monotonic() < deadline:
        time.sleep(0.05)
    status, answer = score(root, SAMPLE)
    assert status == 503 and "not running" in answer["message"]
    assert (
        "not running: its server is not running"
        in run_mlrun("status", spec, cwd=root, check=0).stdout
    )
    plan = run_mlrun("plan", spec, cwd=root, check=0).stdout
    assert "~ deployment.diabetes-online/blue" in plan and "restarted" in plan
    run_mlrun("apply", "-y", spec, cwd=root, check=0)
    assert score(root, SAMPLE) == (200, [0, 1])
    assert "No changes" in run_mlrun("plan", spec, cwd=root, check=0).stdout


def test_a_changed_deployment_is_replaced_without_a_failed_request(deployed):
    """Two instances instead of one: new servers answer before the router moves to them."""
    root, spec = deployed["root"], deployed["spec"]
    answers: list = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            answers.append(score(root, SAMPLE)[0])

    # One client: with Azure's default max_concurrent_requests_per_instance (1), a second one
    # could wait longer than max_queue_wait_ms on a busy machine and rightly get a 429.
    worker = threading.Thread(target=client)
    worker.start()
    try:
        text = spec.read_text().replace("instance_count: 1", "instance_count: 2")
        spec.write_text(text)
        proc = run_mlrun("apply", "-y", spec, cwd=root, check=0)
    finally:
        stop.set()
        worker.join()
    assert "deployment.diabetes-online/blue  updated" in proc.stdout
    assert len(answers) > 20 and set(answers) == {200}, sorted(set(answers))
    current = json.loads(
        (endpoint_folder(root) / "deployments" / "blue" / "current.json").read_text()
    )
    assert len(current["servers"]) == 2


def test_destroy_stops_every_server(deployed, tmp_path):
    root, spec = deployed["root"], deployed["spec"]
    where = endpoint_folder(root)
    pids = [json.loads((where / "router.json").read_text())["pid"]]
    pids += json.loads((where / "deployments" / "blue" / "current.json").read_text())["pids"]
    run_mlrun("destroy", "-y", spec, cwd=root, check=0)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(Path(f"/proc/{p}").exists() for p in pids)
    assert not where.exists()


# --- a scoring script under Azure's inference server ----------------------------------------------

WHEELS = Path(
    os.environ.get("MLRUN_TEST_WHEELS")
    or Path.home() / ".cache" / "mlrun-wheels" / "inference-server-1.5.1"
)
SCORE = """\
import json
import os

weights = None


def init():
    global weights
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "weights.json")) as f:
        weights = json.load(f)


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    if not rows:
        raise ValueError("no rows to score")
    return [weights["bias"] + sum(w * x for w, x in zip(weights["w"], row)) for row in rows]
"""


def test_a_scoring_script_runs_under_azures_inference_server(tmp_path):
    """azureml-examples' managed/sample shape: a custom model folder, a scoring script with init()
    and run(), an environment from a conda file (built with uv, offline, from the wheels
    .ci/wheelhouse keeps), AZUREML_MODEL_DIR laid out as on Azure."""
    if not (WHEELS / "complete").exists():
        pytest.skip(f"no wheelhouse at {WHEELS}: run .ci/wheelhouse (CI does)")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.json").write_text('{"bias": -1.0, "w": [0.5, 0.25]}')
    (tmp_path / "onlinescoring").mkdir()
    (tmp_path / "onlinescoring" / "score.py").write_text(SCORE)
    (tmp_path / "conda.yaml").write_text(
        "name: scoring\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n"
        "      - azureml-inference-server-http==1.5.1\n"
    )
    (tmp_path / "request.json").write_text('{"data": [[1, 2], [4, 8]]}')
    spec = lab(
        tmp_path,
        """\
endpoints:
  scorer:
    traffic: {green: 100}
    deployments:
      green:
        model: {path: ./model}
        code_configuration: {code: ./onlinescoring, scoring_script: score.py}
        environment:
          image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest
          conda_file: conda.yaml
        instance_type: Standard_DS3_v2
    invoke: {request_file: request.json}
""",
    )
    offline = {"UV_NO_INDEX": "1", "UV_FIND_LINKS": str(WHEELS)}
    try:
        out = run_mlrun("apply", "-y", spec, cwd=tmp_path, env=offline, check=0).stdout
        assert "deployment.scorer/green  created  ./model (score.py)" in out
        assert "invoke.scorer  called  200: [0.0, 3.0]" in out
        bad = tmp_path / "bad.json"
        bad.write_text('{"data": []}')  # run() raises: Azure's 500, the reason in the server log
        proc = run_mlrun("invoke", spec, "scorer", "--request-file", bad, cwd=tmp_path, check=1)
        assert "An unexpected error occurred in scoring script" in proc.stdout
        assert "answered 500" in proc.stderr
        logs = list(tmp_path.rglob("endpoints/scorer/deployments/green/*/server-0.log"))
        assert logs and "no rows to score" in logs[0].read_text()
        proc = run_mlrun("invoke", spec, "scorer", cwd=tmp_path, check=0)
        assert json.loads(proc.stdout) == [0.0, 3.0]
    finally:
        run_mlrun("destroy", "-y", spec, cwd=tmp_path, check=0)
