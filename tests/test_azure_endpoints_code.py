"""Online deployments with scoring scripts on the azure target: the real SDK over HTTPS against the
loopback emulator. One lab, applied once for the module, then changed in file order: an endpoint
and two deployments given as unmodified endpoint/deployment files in the shape of Azure's
`cli/endpoints/online/managed/sample` (a custom model, a scoring script, an inline environment of
an image and a conda file), green shadowing blue with mirrored traffic, and deployments whose
environment is one of the spec's (`@latest`, `:1`), a curated one or an environment file. The SDK
uploads each code folder (through Azurite) and registers what it resolves; the emulator checks
what the service does. Then the mirror changes, green's code changes (a new code version, the
deployment updated in place) and green goes (its mirror first)."""

import json
import re
import shutil

import pytest
from azure_fixtures import run_sdk

pytestmark = pytest.mark.azure

SUB = "00000000-0000-0000-0000-00000000000e"
RG, WS, EP = "rg-azcode", "ws-azcode", "sample-online"
WS_ID = (
    f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices"
    f"/workspaces/{WS}"
)
EP_ID = f"{WS_ID}/onlineEndpoints/{EP}"
IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
CURATED = "azureml:AzureML-sklearn-1.5@latest"
SCORE = """\
import json
import os


def init():
    global weights
    path = os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "weights.json")
    weights = json.load(open(path))


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    return [weights["bias"] + sum(w * x for w, x in zip(weights["w"], row)) for row in rows]
"""
CONDA = """\
name: model-env
channels: [conda-forge]
dependencies:
  - python=3.10
  - pip
  - pip:
      - azureml-inference-server-http
"""
ENDPOINT_FILE = f"""\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json
name: {EP}
auth_mode: key
"""
DEPLOYMENT_FILE = f"""\
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: COLOR
endpoint_name: {EP}
model:
  path: ../../model-N/model/
code_configuration:
  code: ../../model-N/onlinescoring/
  scoring_script: score.py
environment:
  conda_file: ../../model-N/environment/conda.yaml
  image: {IMAGE}
instance_type: Standard_DS3_v2
instance_count: 1
"""
SAMPLE = "online/managed/sample"
REGISTERED = """\
      NAME:
        model: {path: ./online/model-1/model}
        code_configuration: {code: ./online/model-1/onlinescoring, scoring_script: score.py}
        environment: ENV
        instance_type: Standard_DS3_v2
"""
ENVIRONMENTS = {  # deployments whose environment is the spec's, a curated one, or an env file
    "latest-env": "azureml:score-env@latest",
    "pinned-env": "azureml:score-env:1",
    "curated-env": CURATED,
    "file-env": "file:./online/model-1/environment/env.yml",
}
LAB = (
    f"""\
name: azcode
workspace: {{name: {WS}, resource_group: {RG}, location: eastus}}
environments:
  score-env: {{image: {IMAGE}, conda_file: ./online/model-1/environment/conda.yaml}}
endpoints:
  {EP}:
    file: {SAMPLE}/endpoint.yml
    traffic: {{blue: 100}}
    mirror_traffic: {{green: MIRROR}}
    deployments:
      blue: {{file: {SAMPLE}/blue-deployment.yml}}
      green: {{file: {SAMPLE}/green-deployment.yml}}
"""
    + "".join(REGISTERED.replace("NAME", n).replace("ENV", e) for n, e in ENVIRONMENTS.items())
    + "    invoke: {request_file: request.json}\n"
)


def az(emulator, *args, cwd, check=None):
    return emulator.mlrun(*args, "--target", "azure", cwd=cwd, check=check)


def write_lab(root, mirror=10, text=None):
    (root / "lab.yaml").write_text((text or LAB).replace("MIRROR", str(mirror)))


def write_sample(root):
    """Two models of Azure's sample's layout, each with its scoring script and conda file, and
    the endpoint and deployment files that name them (paths relative to those files)."""
    sample = root / SAMPLE
    sample.mkdir(parents=True)
    (sample / "endpoint.yml").write_text(ENDPOINT_FILE)
    for n, color in ((1, "blue"), (2, "green")):
        model = root / "online" / f"model-{n}"
        for sub in ("model", "onlinescoring", "environment"):
            (model / sub).mkdir(parents=True)
        (model / "model" / "weights.json").write_text(json.dumps({"bias": n, "w": [0.5, n]}))
        (model / "onlinescoring" / "score.py").write_text(f"{SCORE}# model-{n}\n")
        (model / "environment" / "conda.yaml").write_text(CONDA)
        (model / "environment" / "env.yml").write_text(
            "$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json\n"
            f"name: model-env\nimage: {IMAGE}\nconda_file: conda.yaml\n"
        )
        text = DEPLOYMENT_FILE.replace("COLOR", color).replace("model-N", f"model-{n}")
        (sample / f"{color}-deployment.yml").write_text(text)
    (root / "request.json").write_text(json.dumps({"data": [[1, 2], [3, 4]]}))


def resources(emulator) -> dict:
    return emulator.call("GET", "/_emulator/state")["resources"]


def deployments(emulator) -> dict:
    """The endpoint's deployments as the emulator keeps them, by name."""
    prefix = f"{EP_ID}/deployments/".lower()
    return {k[len(prefix) :]: v for k, v in resources(emulator).items() if k.startswith(prefix)}


def endpoint(emulator) -> dict:
    return resources(emulator)[EP_ID.lower()]["properties"]


def writes(emulator, mark) -> list[tuple[str, str]]:
    """What the SDK made or removed since `mark`: (method, path below the workspace)."""
    return [
        (r["method"], r["path"][len(WS_ID) :])
        for r in emulator.requests(mark)
        if r["method"] in ("PUT", "POST", "DELETE") and r["path"].startswith(WS_ID)
    ]


@pytest.fixture(scope="module")
def lab(azure_emulator, tmp_path_factory):
    root = tmp_path_factory.mktemp("azure-endpoints-code")
    write_sample(root)
    write_lab(root)
    validate = az(azure_emulator, "validate", "lab.yaml", cwd=root, check=0)
    plan = az(azure_emulator, "plan", "lab.yaml", cwd=root, check=0)
    mark = azure_emulator.mark()
    apply = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=root, check=0)
    yield {
        "root": root,
        "validate": validate.stdout,
        "plan": plan.stdout,
        "apply": apply,
        "writes": writes(azure_emulator, mark),
    }
    # not destroyed: test_azure_endpoints.py tests destroy; what is left is the emulator's memory
    shutil.rmtree(root, ignore_errors=True)


def test_validate_and_plan_say_what_each_deployment_runs(lab):
    assert (
        lab["validate"]
        == "lab.yaml: ok (0 computes, 1 environment, 0 jobs, 0 queries, 1 endpoint)\n"
    )
    bill = "$0.30/h (1 x Standard_DS3_v2), bills until destroyed"
    col = len(f"deployment.{EP}/curated-env")  # the longest address: the column's width

    def row(sign, address, what):
        return f"  {sign} {address:<{col}}  {what}"

    assert lab["plan"].splitlines()[2:11] == [
        row("+", "environment.score-env", "v1"),
        row("+", f"endpoint.{EP}", "online, key auth, traffic blue 100%, mirrored to green 10%"),
        row("+", f"deployment.{EP}/blue", f"../../model-1/model/ (score.py); {bill}"),
        row("+", f"deployment.{EP}/green", f"../../model-2/model/ (score.py); {bill}"),
        row("+", f"deployment.{EP}/latest-env", f"./online/model-1/model (score.py); {bill}"),
        row("+", f"deployment.{EP}/pinned-env", f"./online/model-1/model (score.py); {bill}"),
        row("+", f"deployment.{EP}/curated-env", f"./online/model-1/model (score.py); {bill}"),
        row("+", f"deployment.{EP}/file-env", f"./online/model-1/model (score.py); {bill}"),
        row(">", f"invoke.{EP}", "request.json (once deployed)"),
    ]


def code_of(emulator, dep: dict) -> dict:
    """The code version a deployment runs (its properties), as the SDK registered it."""
    return resources(emulator)[dep["properties"]["codeConfiguration"]["codeId"].lower()][
        "properties"
    ]


def test_apply_uploads_each_code_folder_and_resolves_each_environment(lab, azure_emulator):
    found = deployments(azure_emulator)
    assert sorted(found) == ["blue", "curated-env", "file-env", "green", "latest-env", "pinned-env"]
    props = {name: dep["properties"] for name, dep in found.items()}
    for name, p in props.items():
        assert p["codeConfiguration"]["scoringScript"] == "score.py", name
        assert re.fullmatch(
            rf"{WS_ID}/codes/[0-9a-f-]{{36}}/versions/1", p["codeConfiguration"]["codeId"]
        )
        assert p["instanceType"] == "Standard_DS3_v2" and p["provisioningState"] == "Succeeded"
    # an inline environment (an image and a conda file) is registered as an anonymous one
    anonymous = props["blue"]["environmentId"]
    assert re.fullmatch(
        rf"{WS_ID}/environments/CliV2AnonymousEnvironment/versions/[0-9a-f]{{64}}", anonymous
    )
    assert props["green"]["environmentId"] == anonymous  # the same image and conda file
    assert props["file-env"]["environmentId"] == anonymous  # an environment file of them too
    env = resources(azure_emulator)[anonymous.lower()]["properties"]
    assert (env["image"], env["isAnonymous"]) == (IMAGE, True)
    assert env["condaFile"] == (
        "channels:\n- conda-forge\ndependencies:\n- python=3.10\n- pip\n- pip:\n"
        "  - azureml-inference-server-http\nname: model-env\n"
    )
    # the spec's environment by label (resolved by the SDK) or by version; a curated one as named
    assert props["latest-env"]["environmentId"] == f"{WS_ID}/environments/score-env/versions/1"
    assert props["pinned-env"]["environmentId"] == f"{WS_ID}/environments/score-env/versions/1"
    assert props["curated-env"]["environmentId"] == CURATED
    # each model folder is uploaded and registered as an anonymous custom model
    models = {name: p["model"] for name, p in props.items()}
    assert models["blue"] == models["latest-env"] == models["curated-env"] != models["green"]
    for name in ("blue", "green"):
        model = resources(azure_emulator)[models[name].lower()]["properties"]
        assert (model["modelType"], model["isAnonymous"]) == ("custom_model", True)
    # blue's and green's scoring folders (one name, other content) are two code versions; the
    # deployments of one folder share its version (uploaded once, then found by its hash)
    codes = {name: p["codeConfiguration"]["codeId"] for name, p in props.items()}
    assert len(set(codes.values())) == 2 and codes.pop("green") not in codes.values()
    uploads = [p for m, p in lab["writes"] if p.endswith("/startPendingUpload")]
    assert len(uploads) == 2
    blue, green = code_of(azure_emulator, found["blue"]), code_of(azure_emulator, found["green"])
    uris = [blue["codeUri"], green["codeUri"]]
    assert uris[0] != uris[1] and all(u.endswith("/onlinescoring") for u in uris)
    assert blue["properties"]["hash_sha256"] != green["properties"]["hash_sha256"]


def test_traffic_and_its_mirror_are_set_once_both_deployments_exist(lab, azure_emulator):
    ep = f"/onlineEndpoints/{EP}"
    made = [(m, p) for m, p in lab["writes"] if p.startswith(ep)]
    names = ["blue", "curated-env", "file-env", "green", "latest-env", "pinned-env"]
    made_deployments = sorted(w for w in made if "/deployments/" in w[1])
    assert made_deployments == [("PUT", f"{ep}/deployments/{d}") for d in names]
    at = [i for i, w in enumerate(made) if w == ("PUT", ep)]
    assert at[0] == 0 and len(at) == 2  # made without traffic (nothing to weigh), then weighed
    assert at[1] > max(made.index(("PUT", f"{ep}/deployments/{d}")) for d in ("blue", "green"))
    assert made[-1] == ("POST", f"{ep}/listKeys")  # the call, once all is deployed
    props = endpoint(azure_emulator)
    assert (props["traffic"], props["mirrorTraffic"]) == ({"blue": 100}, {"green": 10})
    assert f"invoke.{EP}  called  200: [0, 0]\n" in lab["apply"].stdout  # blue's (the stand-in)
    # the keys the call used are in no output and not in the state
    keys = azure_emulator.call("POST", f"{EP_ID}/listKeys?api-version=2023-04-01-preview")
    state = (lab["root"] / ".mlrun" / "azcode.azure.json").read_text()
    shown = [state, lab["apply"].stdout, lab["apply"].stderr]
    assert not [k for k in keys.values() for text in shown if k in text]


def test_a_second_plan_changes_nothing(lab, azure_emulator):
    plan = az(azure_emulator, "plan", "lab.yaml", cwd=lab["root"], check=0)
    assert plan.stdout == "No changes. Everything is up to date.\n"


def test_a_changed_mirror_updates_only_the_endpoint(lab, azure_emulator):
    write_lab(lab["root"], mirror=20)
    mark = azure_emulator.mark()
    out = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=lab["root"], check=0).stdout
    changed = 'mirror_traffic: {"green": 10} -> {"green": 20}'
    assert re.search(rf"^  ~ endpoint\.{EP} +{re.escape(changed)}$", out, re.M), out
    assert writes(azure_emulator, mark) == [
        ("PUT", f"/onlineEndpoints/{EP}"),
        ("POST", f"/onlineEndpoints/{EP}/listKeys"),  # its call, made again
    ]
    props = endpoint(azure_emulator)
    assert (props["traffic"], props["mirrorTraffic"]) == ({"blue": 100}, {"green": 20})


def test_changed_code_is_uploaded_as_a_new_version_and_updated_in_place(lab, azure_emulator):
    root = lab["root"]
    before = deployments(azure_emulator)
    old = code_of(azure_emulator, before["green"])
    script = root / "online" / "model-2" / "onlinescoring" / "score.py"
    script.write_text(script.read_text().replace('weights["bias"] +', '2 * weights["bias"] +'))
    plan = az(azure_emulator, "plan", "lab.yaml", cwd=root, check=0).stdout
    changed = r"code: [0-9a-f]{16} -> [0-9a-f]{16}; \$0\.30/h \(1 x Standard_DS3_v2\)"
    assert re.search(rf"^  ~ deployment\.{EP}/green +{changed}", plan, re.M), plan
    assert "Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy" in plan
    mark = azure_emulator.mark()
    az(azure_emulator, "apply", "-y", "lab.yaml", cwd=root, check=0)
    made = writes(azure_emulator, mark)
    assert [w for w in made if w[1].startswith("/onlineEndpoints/")] == [
        ("PUT", f"/onlineEndpoints/{EP}/deployments/green"),  # no DELETE: updated in place
        ("POST", f"/onlineEndpoints/{EP}/listKeys"),
    ]
    codes = [(m, p.rsplit("/", 1)[-1]) for m, p in made if p.startswith("/codes/")]
    assert codes == [("POST", "startPendingUpload"), ("PUT", "1")]  # green's folder, uploaded
    after = deployments(azure_emulator)
    new = code_of(azure_emulator, after["green"])
    ids = [d["green"]["properties"]["codeConfiguration"]["codeId"] for d in (before, after)]
    assert ids[0] != ids[1]  # a new code version, not the old one's name
    assert new["properties"]["hash_sha256"] != old["properties"]["hash_sha256"]
    assert new["codeUri"] != old["codeUri"]
    assert after["blue"] == before["blue"]
    updated = [r for r in azure_emulator.requests(mark) if r["path"].endswith("/deployments/green")]
    assert [r["status"] for r in updated if r["method"] == "PUT"] == [200]  # an update


def test_removing_the_shadow_deployment_stops_its_mirror_first(lab, azure_emulator):
    root = lab["root"]
    text = LAB.replace("    mirror_traffic: {green: MIRROR}\n", "").replace(
        f"      green: {{file: {SAMPLE}/green-deployment.yml}}\n", ""
    )
    write_lab(root, text=text)
    mark = azure_emulator.mark()
    out = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=root, check=0).stdout
    assert f"  - deployment.{EP}/green" in out
    assert writes(azure_emulator, mark) == [
        ("PUT", f"/onlineEndpoints/{EP}"),  # no mirror: then green can go
        ("DELETE", f"/onlineEndpoints/{EP}/deployments/green"),
        ("POST", f"/onlineEndpoints/{EP}/listKeys"),
    ]
    props = endpoint(azure_emulator)
    assert (props["traffic"], props["mirrorTraffic"]) == ({"blue": 100}, {})
    assert "green" not in deployments(azure_emulator)


def test_an_environment_azure_does_not_have_is_said_located(lab, azure_emulator):
    root = lab["root"]
    text = LAB.replace("    mirror_traffic: {green: MIRROR}\n", "").replace(
        f"      green: {{file: {SAMPLE}/green-deployment.yml}}\n", ""
    )
    extra = REGISTERED.replace("NAME", "no-env").replace("ENV", "azureml:nope@latest")
    write_lab(root, text=text.replace("    invoke:", extra + "    invoke:"))
    mark = azure_emulator.mark()
    out = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=root)
    assert out.returncode == 1, out.stdout
    assert out.stderr.endswith(
        f"error: deployment.{EP}/no-env: Asset nope does not exist in workspace {WS}.\n"
    )
    assert "Resolutions" not in out.stderr and "Traceback" not in out.stderr
    assert not [w for w in writes(azure_emulator, mark) if "/deployments/" in w[1]]


REFUSED = """\
import json, os
from azure.ai.ml import MLClient
from azure.ai.ml.entities import CodeConfiguration, ManagedOnlineDeployment, Model
from azure.core.exceptions import HttpResponseError
from azure.identity import DefaultAzureCredential

ml = MLClient(DefaultAzureCredential(), os.environ["AZURE_SUBSCRIPTION_ID"], RG, WS,
              enable_telemetry=False)
model = Model(path="online/model-1/model")


def attempt(name, code=None, **fields):
    config = CodeConfiguration(code=code, scoring_script="score.py") if code else None
    entity = ManagedOnlineDeployment(name=name, endpoint_name=EP, model=model,
                                     code_configuration=config, instance_type="Standard_DS3_v2",
                                     instance_count=1, **fields)
    try:  # the SDK's own look at the script skipped: what the service says
        ml.online_deployments.begin_create_or_update(entity, skip_script_validation=True).result()
        return "created"
    except HttpResponseError as e:
        return [e.status_code, e.error.code, e.error.message]


def mirror(**weights):
    endpoint = ml.online_endpoints.get(EP)
    endpoint.mirror_traffic = weights
    try:
        ml.online_endpoints.begin_create_or_update(endpoint).result()
        return "updated"
    except HttpResponseError as e:
        return [e.status_code, e.error.code, e.error.message]


print(json.dumps({
    "two-mirrors": mirror(**{"latest-env": 10, "pinned-env": 10}),
    "over-half": mirror(**{"latest-env": 60}),
    "live-too": mirror(blue=10),
    "no-script": attempt("no-script", "online/model-1/environment", environment="score-env:1"),
    "no-code": attempt("no-code"),
    "no-env": attempt("no-env", "online/model-1/onlinescoring"),
    "unknown-env": attempt("unknown-env", "online/model-1/onlinescoring", environment="nope:3"),
}))
"""


def test_the_emulator_refuses_what_the_service_refuses(lab, azure_emulator):
    """What the service refuses, sent by the SDK itself (mlrun's validate and the SDK's own
    script check stop it before): traffic mirrored to two deployments, to more than half, or to
    one with live traffic; a code folder without its scoring script, a custom model without a
    script, a script without an environment, an environment not registered."""
    script = f"RG, WS, EP = {RG!r}, {WS!r}, {EP!r}\n{REFUSED}"
    mark = azure_emulator.mark()
    found = run_sdk(azure_emulator, script, cwd=lab["root"])
    # a folder uploaded before (onlinescoring) is found by its hash: only the new one is uploaded
    uploads = [p for m, p in writes(azure_emulator, mark) if p.endswith("/startPendingUpload")]
    assert len(uploads) == 1
    assert [found[k] for k in ("two-mirrors", "over-half", "live-too")] == [
        [400, "BadRequest", "Traffic can be mirrored to one deployment of an endpoint only."],
        [400, "BadRequest", "Mirror traffic values must add up to at most 50, not 60."],
        [
            400,
            "BadRequest",
            "Deployment 'blue' gets live traffic: it cannot get mirrored traffic too.",
        ],
    ]
    assert endpoint(azure_emulator)["mirrorTraffic"] == {}  # as it was
    code = re.escape(f"{WS_ID}/codes/") + r"[0-9a-f-]{36}/versions/1"
    assert re.fullmatch(
        rf"Scoring script 'score\.py' was not found in code '{code}'\.", found["no-script"][2]
    )
    assert found["no-script"][:2] == [400, "BadRequest"]
    assert found["no-code"] == [
        400,
        "BadRequest",
        "A scoring script (code_configuration) and an environment are required for a model that "
        "is not an MLflow or Triton model, unless a custom container serves it.",
    ]
    assert found["no-env"] == [
        400,
        "BadRequest",
        "A deployment with a scoring script needs an environment.",
    ]
    assert found["unknown-env"] == [
        400,
        "BadRequest",
        f"Environment '{WS_ID}/environments/nope/versions/3' was not found.",
    ]
    assert sorted(deployments(azure_emulator)) == [
        "blue",
        "curated-env",
        "file-env",
        "latest-env",
        "pinned-env",
    ]


def test_validate_on_azure_locates_what_the_service_would_refuse(azure_emulator, tmp_path):
    write_sample(tmp_path)
    (tmp_path / "empty").mkdir()
    sample = tmp_path / SAMPLE
    red = DEPLOYMENT_FILE.replace("COLOR", "red").replace("model-N", "model-1").splitlines(True)
    (sample / "red-deployment.yml").write_text("".join(red[:5] + red[8:]))  # no code_configuration
    (tmp_path / "lab.yaml").write_text(
        f"""\
name: azcheck
workspace: {{name: ws-azcheck, resource_group: rg-azcheck, location: eastus}}
endpoints:
  other-name:
    file: {SAMPLE}/endpoint.yml
    traffic: {{blue: 100}}
    mirror_traffic: {{green: 10, red: 10}}
    deployments:
      blue: {{file: {SAMPLE}/blue-deployment.yml}}
      green: {{file: {SAMPLE}/green-deployment.yml}}
      red: {{file: {SAMPLE}/red-deployment.yml}}
      empty:
        model: {{path: ./online/model-1/model}}
        code_configuration: {{code: ./empty, scoring_script: score.py}}
        environment: {{image: {IMAGE}, conda_file: ./missing.yml}}
        instance_type: Standard_DS3_v2
"""
    )
    out = az(azure_emulator, "validate", "lab.yaml", cwd=tmp_path, check=1)
    at = "$.endpoints.other-name"
    renamed = "the file names the endpoint 'sample-online', but it is endpoint 'other-name' here: "
    renamed += "Azure gets 'other-name' (rename one to match)"
    assert out.stdout + out.stderr == "".join(
        f"{line}\n"
        for line in (
            f"{SAMPLE}/blue-deployment.yml:3:16: warning: {at}.deployments.blue.endpoint_name: "
            + renamed,
            f"{SAMPLE}/endpoint.yml:2:7: warning: {at}.name: {renamed}",
            f"{SAMPLE}/green-deployment.yml:3:16: warning: {at}.deployments.green.endpoint_name: "
            + renamed,
            f"{SAMPLE}/red-deployment.yml:3:16: warning: {at}.deployments.red.endpoint_name: "
            + renamed,
            f"{SAMPLE}/red-deployment.yml:5:3: error: {at}.deployments.red.model: a custom_model "
            "needs a scoring script (code_configuration) to be served; only an MLflow model is "
            "served without one",
            f"lab.yaml:7:21: error: {at}.mirror_traffic: traffic is mirrored to one deployment at "
            "most, not 2 (green, red)",
            f"lab.yaml:14:61: error: {at}.deployments.empty.code_configuration.scoring_script: "
            "scoring script 'score.py' is not in ./empty",
            f"lab.yaml:15:101: error: {at}.deployments.empty.environment.conda_file: conda file "
            "'./missing.yml' does not exist",
            "lab.yaml: 4 errors, 4 warnings",
        )
    )
