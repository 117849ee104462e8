"""Pipeline component batch deployments on the azure target: the real SDK
(`PipelineComponentBatchDeployment`, `batch_endpoints.invoke(inputs=...)`, `jobs.download`) over
HTTPS against the loopback emulator, which runs the deployed component's steps as a pipeline job.
One lab, applied once for the module, then called by hand, changed and destroyed in file order: a
pipeline component of two command steps (`split` writes the words of the input's files, one a
line; `shout`, a command component of the spec's, writes each in capitals `times` times) deployed
twice: from its file (registered anonymously, as Azure registers a deployment's own component)
and as the spec's registered `azureml:words@latest`."""

import json
import re
import shutil
from pathlib import Path

import pytest
from azure_fixtures import run_sdk

pytestmark = pytest.mark.azure

SUB = "00000000-0000-0000-0000-00000000000e"
RG, WS, EP = "rg-azpipe", "ws-azpipe", "words"
WS_ID = (
    f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices"
    f"/workspaces/{WS}"
)
EP_ID = f"{WS_ID}/batchEndpoints/{EP}"
SPLIT_PY = """\
import pathlib, sys
text, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
words = [w for f in sorted(text.glob("*.txt")) for w in f.read_text().split()]
(out / "words.txt").write_text("\\n".join(words) + "\\n")
print(f"split {len(words)} words")
"""
SHOUT_PY = """\
import pathlib, sys
words, times, out = pathlib.Path(sys.argv[1]), int(sys.argv[2]), pathlib.Path(sys.argv[3])
lines = []
for word in (words / "words.txt").read_text().split():
    if word == "boom":
        sys.exit(f"cannot shout {word!r}")
    lines.append(" ".join([word.upper()] * times))
(out / "shouted.txt").write_text("\\n".join(lines) + "\\n")
"""
WORDS = """\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineComponent.schema.json
type: pipeline
name: words
inputs:
  text: {type: uri_folder}
  times: {type: integer, default: 1}
outputs:
  shouted: {type: uri_folder}
jobs:
  split:
    type: command
    component:
      code: split
      environment: azureml:AzureML-sklearn-1.5@latest
      inputs: {text: {type: uri_folder}}
      outputs: {words: {type: uri_folder}}
      command: python split.py ${{inputs.text}} ${{outputs.words}}
    inputs:
      text: ${{parent.inputs.text}}
  shout:
    type: command
    component: azureml:shout@latest
    inputs:
      words: ${{parent.jobs.split.outputs.words}}
      times: ${{parent.inputs.times}}
    outputs:
      shouted: ${{parent.outputs.shouted}}
"""
LAB = f"""\
name: azpipe
workspace: {{name: {WS}, resource_group: {RG}, location: eastus}}
computes:
  cpu-cluster: {{type: amlcompute, size: Standard_DS3_v2, min_instances: 0, max_instances: 2}}
components:
  shout:
    type: command
    inputs: {{words: {{type: uri_folder}}, times: {{type: integer}}}}
    outputs: {{shouted: {{type: uri_folder}}}}
    code: shout
    environment: azureml:AzureML-sklearn-1.5@latest
    command: python shout.py ${{{{inputs.words}}}} ${{{{inputs.times}}}} ${{{{outputs.shouted}}}}
  words: {{file: words.yml}}
endpoints:
  {EP}:
    type: batch
    defaults: {{deployment_name: piped}}
    deployments:
      piped:
        type: pipeline
        component: words.yml
        settings: {{default_compute: azureml:cpu-cluster, continue_on_step_failure: false}}
      registered:
        type: pipeline
        component: azureml:words@latest
        settings: {{default_compute: cpu-cluster}}
    invoke:
      input: ./text
      inputs: {{times: 2}}
"""


def az(emulator, *args, cwd, check=None):
    return emulator.mlrun(*args, "--target", "azure", cwd=cwd, check=check)


def emulated(emulator, prefix: str) -> dict:
    """What the emulator keeps under `prefix` (an ARM id), by path under it."""
    resources = emulator.call("GET", "/_emulator/state")["resources"]
    return {
        k[len(prefix) :] or "/": v for k, v in resources.items() if k.startswith(prefix.lower())
    }


def written(emulator, mark: int) -> list[str]:
    """The PUTs and POSTs that made components, batch endpoints and deployments, and calls, since
    `mark`, as `METHOD path` (under the workspace, or the scoring URI's)."""
    out = []
    for r in emulator.requests(mark):
        path = r["path"].replace(WS_ID, "")
        if r["method"] in ("PUT", "POST") and path.startswith(("/components/", "/batch")):
            out.append(f"{r['method']} {path}")
    return out


def hashed(calls: list[str]) -> list[str]:
    """The calls with an anonymous component's version (its content hash) as HASH."""
    return [re.sub(r"/versions/[0-9a-f-]{36}$", "/versions/HASH", c) for c in calls]


def called(out: str) -> Path:
    """The output folder the apply's call says."""
    found = re.search(rf"invoke\.{EP}  called  run \w+: output shouted (\S+)", out)
    assert found, out
    return Path(found.group(1))


def last_run(root: Path) -> dict:
    """The endpoint's latest call, as the lab's state keeps it."""
    state = json.loads((root / ".mlrun" / "azpipe.azure.json").read_text())
    return state["jobs"][EP]["runs"][-1]


@pytest.fixture(scope="module")
def lab(azure_emulator, tmp_path_factory):
    root = tmp_path_factory.mktemp("azure-pipeline-batch")
    for name, text in {
        "words.yml": WORDS,
        "split/split.py": SPLIT_PY,
        "shout/shout.py": SHOUT_PY,
        "text/a.txt": "hello world",
        "text/b.txt": "mlrun",
        "lab.yaml": LAB,
    }.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    mark = azure_emulator.mark()
    apply = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=root, check=0)
    yield {"root": root, "apply": apply.stdout, "calls": written(azure_emulator, mark)}
    shutil.rmtree(root, ignore_errors=True)


def test_apply_registers_deploys_and_calls_the_component(lab, azure_emulator):
    out = lab["apply"]
    planned = [" ".join(line.split()) for line in out.splitlines()]
    assert [line for line in planned if line.startswith(("+ deployment", "> invoke"))] == [
        "+ deployment.words/piped pipeline component words.yml on cpu-cluster: 2 steps "
        "(split, shout)",
        "+ deployment.words/registered pipeline component azureml:words@latest on cpu-cluster: "
        "2 steps (split, shout)",
        "> invoke.words text=./text, times=2 -> piped (once deployed)",
    ], out
    calls = lab["calls"]
    assert hashed(calls)[:3] == [
        "PUT /components/shout/versions/1",
        "PUT /components/azureml_anonymous/versions/HASH",  # words' inline step
        "PUT /components/words/versions/1",
    ], calls
    assert calls[-1] == f"POST /batch/{SUB}/{RG}/{WS}/{EP}/jobs", calls
    deployed = emulated(azure_emulator, f"{EP_ID}/deployments/")
    piped = deployed["piped"]["properties"]["deploymentConfiguration"]
    registered = deployed["registered"]["properties"]["deploymentConfiguration"]
    assert piped["deploymentConfigurationType"] == "PipelineComponent"
    # the deployment's own component: registered anonymously just before the deployment
    anonymous = piped["componentId"]["assetId"].removeprefix(WS_ID)
    assert anonymous.startswith("/components/azureml_anonymous/versions/")
    assert calls.index(f"PUT {anonymous}") < calls.index(
        f"PUT /batchEndpoints/{EP}/deployments/piped"
    )
    assert piped["settings"] == {
        "continue_on_step_failure": False,
        "default_compute": "cpu-cluster",
    }
    assert registered["componentId"]["assetId"] == f"{WS_ID}/components/words/versions/1"
    assert registered["settings"] == {"default_compute": "cpu-cluster"}
    # the call: its job ran the component's steps with the call's inputs bound
    output, run = called(out), last_run(lab["root"])["id"]
    job = emulated(azure_emulator, f"{WS_ID}/jobs/{run}")["/"]["properties"]
    assert job["inputs"]["times"] == {"jobInputType": "literal", "value": "2"}
    assert job["inputs"]["text"]["jobInputType"] == "uri_folder"
    assert output == lab["root"] / f".mlrun/azure/{WS}/runs/{EP}/{run}/steps/shout/outputs/shouted"
    assert (output / "shouted.txt").read_text() == "HELLO HELLO\nWORLD WORLD\nMLRUN MLRUN\n"


def test_a_second_apply_changes_nothing(lab, azure_emulator):
    mark = azure_emulator.mark()
    out = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=lab["root"], check=0)
    assert out.stdout.endswith("No changes. Everything is up to date.\n"), out.stdout
    assert {r["method"] for r in azure_emulator.requests(mark)} <= {"GET", "HEAD"}


def test_mlrun_invoke_calls_the_registered_one_and_logs_read_a_step(lab, azure_emulator, tmp_path):
    (tmp_path / "c.txt").write_text("batch pipelines")
    spec = str(lab["root"] / "lab.yaml")
    proc = az(
        azure_emulator,
        "invoke",
        spec,
        EP,
        "--deployment",
        "registered",
        "--input",
        ".",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == f"invoke.{EP}  calling  text=. -> registered"
    printed = Path(proc.stdout.splitlines()[-1])
    assert printed.name == "shouted.txt"
    assert printed.read_text() == "BATCH\nPIPELINES\n"  # times: the component's default
    logs = az(azure_emulator, "logs", spec, f"{EP}/split", cwd=tmp_path, check=0)
    assert logs.stdout == "split 2 words\n"


def test_a_failing_step_is_named_with_its_logs(lab, azure_emulator, tmp_path):
    (tmp_path / "d.txt").write_text("big boom")
    spec = str(lab["root"] / "lab.yaml")
    failed = az(azure_emulator, "invoke", spec, EP, "--input", ".", cwd=tmp_path, check=1)
    assert re.search(
        rf"error: invoke\.{EP}: the pipeline job did not complete \(run \w+: step shout failed "
        rf"\(.*cannot shout 'boom'\)\); see mlrun logs {re.escape(spec)} {EP}/shout\n$",
        failed.stderr,
    ), failed.stderr
    logs = az(azure_emulator, "logs", spec, f"{EP}/shout", cwd=tmp_path, check=0)
    assert logs.stdout == "cannot shout 'boom'\n"
    steps = last_run(lab["root"])["steps"]
    assert {s: r["status"] for s, r in steps.items()} == {"split": "Completed", "shout": "Failed"}


def test_a_changed_component_is_registered_again_and_redeployed(lab, azure_emulator):
    """The spec's command component changed: a new version of it, and of the pipeline component
    that names it (registered, it is bound to the version it named), both deployments updated in
    place, and the call made again with the new code."""
    root = lab["root"]
    shout = root / "shout" / "shout.py"
    shout.write_text(shout.read_text().replace("word.upper()", "word.upper() + '!'"))
    mark = azure_emulator.mark()
    out = az(azure_emulator, "apply", "-y", "lab.yaml", cwd=root, check=0).stdout
    assert "~ deployment.words/piped" in out and "~ deployment.words/registered" in out, out
    calls = written(azure_emulator, mark)
    assert calls.index("PUT /components/shout/versions/2") < calls.index(
        "PUT /components/words/versions/2"
    ), calls
    assert sorted(c for c in calls if "/deployments/" in c) == [
        f"PUT /batchEndpoints/{EP}/deployments/piped",
        f"PUT /batchEndpoints/{EP}/deployments/registered",
    ]
    deployed = emulated(azure_emulator, f"{EP_ID}/deployments/")
    component = deployed["registered"]["properties"]["deploymentConfiguration"]["componentId"]
    assert component["assetId"] == f"{WS_ID}/components/words/versions/2"
    output = called(out)
    assert (output / "shouted.txt").read_text() == "HELLO! HELLO!\nWORLD! WORLD!\nMLRUN! MLRUN!\n"


REFUSED = f"""
import json, os
from azure.identity import DefaultAzureCredential
from azure.ai.ml import Input, MLClient
from azure.ai.ml.entities import PipelineComponentBatchDeployment
from azure.core.exceptions import HttpResponseError

ml = MLClient(DefaultAzureCredential(), os.environ["AZURE_SUBSCRIPTION_ID"], "{RG}", "{WS}",
              enable_telemetry=False)
said = {{}}
for name, component, compute in (
    ("command", "shout@latest", "cpu-cluster"), ("elsewhere", "words@latest", "gpu-cluster")
):
    deployment = PipelineComponentBatchDeployment(
        name=name, endpoint_name="{EP}", component=component,
        settings={{"default_compute": compute}})
    try:
        ml.batch_deployments.begin_create_or_update(deployment).result()
    except HttpResponseError as e:
        said[name] = e.message
try:
    ml.batch_endpoints.invoke("{EP}", inputs={{"nope": Input(type="string", default="x")}})
except HttpResponseError as e:
    said["invoke"] = e.message
print(json.dumps(said))
"""


def test_the_service_refuses_what_it_cannot_run(lab, azure_emulator):
    """The emulator's checks, through the SDK: a command component, a compute the workspace
    lacks, an input the component does not have."""
    said = run_sdk(azure_emulator, REFUSED)
    assert re.search(r"Component 'shout/versions/\d' is a command component", said["command"])
    assert "Compute 'gpu-cluster' does not exist in the workspace." in said["elsewhere"], said
    assert "The pipeline component has no input 'nope'" in said["invoke"], said


def test_destroy_deletes_the_endpoint_and_its_deployments(lab, azure_emulator):
    out = az(azure_emulator, "destroy", "-y", "lab.yaml", cwd=lab["root"], check=0)
    assert "endpoint.words" in out.stdout
    assert emulated(azure_emulator, EP_ID) == {}
