"""Spark jobs (runner/spark.py): the sparkJob fields checked offline with located errors, planned
(`runs under PySpark 3.4 local[N]`), run on the local target for real under PySpark in local mode
(spark-submit from the job's environment, built with uv offline from the wheels .ci/wheelhouse-spark
keeps; Java from the system) as a tracked MLflow run, and submitted through the SDK on the azure
target (the emulator runs a stand-in)."""

import json
import os
import re
import textwrap
from pathlib import Path

import pytest
from conftest import mlflow_client, run_mlrun

from runner import spark
from runner.spec import check_file

WHEELS = Path(
    os.environ.get("MLRUN_TEST_SPARK_WHEELS")
    or Path.home() / ".cache" / "mlrun-wheels" / "pyspark-3.4.4"
)
OFFLINE = {"UV_NO_INDEX": "1", "UV_FIND_LINKS": str(WHEELS)}
CONF = """\
    conf:
      spark.driver.cores: 1
      spark.driver.memory: 1g
      spark.executor.cores: 1
      spark.executor.memory: 1g
      spark.executor.instances: 2
      spark.sql.shuffle.partitions: 2
"""
# reads a CSV with Spark, writes the counts by class as a folder of CSV files, logs with MLflow;
# helpers.py comes through py_files, labels.txt through files
COUNT = """\
import argparse

import mlflow
from pyspark import SparkFiles
from pyspark.sql import SparkSession

from helpers import title

parser = argparse.ArgumentParser()
parser.add_argument("--rows")
parser.add_argument("--counts")
parser.add_argument("--min_x", type=int)
args = parser.parse_args()
spark = SparkSession.builder.getOrCreate()
rows = spark.read.csv(args.rows, header=True, inferSchema=True)
kept = rows.filter(rows.x >= args.min_x)
kept.groupBy("y").count().orderBy("y").write.csv(args.counts, header=True)
mlflow.log_metric("rows", kept.count())
mlflow.log_param("parallelism", spark.sparkContext.defaultParallelism)
with open(SparkFiles.get("labels.txt")) as f:
    mlflow.set_tag("label", title(f.read().strip()))
spark.stop()
"""
JOB = f"""\
    type: spark
    code: ./src
    entry: {{file: count.py}}
    py_files: [helpers.py]
    files: [labels.txt]
{CONF}    inputs:
      rows: {{type: uri_file, path: ./rows.csv, mode: direct}}
      min_x: 2
    outputs:
      counts: {{type: uri_folder, mode: direct}}
    args: >-
      --rows ${{{{inputs.rows}}}}
      --counts ${{{{outputs.counts}}}}
      --min_x ${{{{inputs.min_x}}}}
    resources: {{instance_type: standard_e4s_v3, runtime_version: "3.4"}}
    experiment_name: spark-counts
"""


def write_lab(folder: Path, job: str = JOB, extra: str = "") -> Path:
    (folder / "src").mkdir(parents=True, exist_ok=True)
    (folder / "src" / "count.py").write_text(COUNT)
    (folder / "src" / "helpers.py").write_text("def title(text):\n    return text.title()\n")
    (folder / "src" / "labels.txt").write_text("counted by spark\n")
    (folder / "rows.csv").write_text("x,y\n1,a\n2,a\n3,b\n4,b\n5,b\n")
    spec = folder / "lab.yaml"
    spec.write_text(
        "name: spark-lab\nworkspace: {name: ws-spark, resource_group: rg-spark, location: eastus}\n"
        f"{extra}jobs:\n  counts:\n{job}"
    )
    return spec


def problems(spec: Path, target: str = "local", runs: bool = False) -> list[str]:
    from runner.spec import read_doc
    from runner.validate import check

    doc = read_doc(spec, target=target)[0]
    check(doc, target=target, runs=runs)
    return [f"{p.line}:{p.col}: {p.severity}: {p.path}: {p.message}" for p in doc.problems]


# --- validate ------------------------------------------------------------------------------------


def test_a_valid_spark_job_validates(tmp_path):
    assert problems(write_lab(tmp_path)) == []


def test_bad_spark_jobs_are_located_errors(tmp_path):
    bad = """\
    type: spark
    code: ./src
    entry: {file: counts.py}
    py_files: [helpers.py, helpers.py]
    jars: [missing.jar]
    conf:
      spark.driver.cores: 1
      spark.driver.memory: lots
      spark.executor.cores: 1
      spark.executor.memory: 1g
      spark.dynamicAllocation.minExecutors: 1
    inputs:
      rows: {type: uri_file, path: ./rows.csv, mode: ro_mount}
    args: --rows ${{inputs.row}}
    resources: {instance_type: standard_ds3_v2, runtime_version: "3.1"}
    comptue: x
"""
    folder = tmp_path / "src"
    assert problems(write_lab(tmp_path, bad)) == [
        "20:5: error: $.jobs.counts.comptue: unknown key (did you mean 'compute'?)",
        "18:11: error: $.jobs.counts.args: '${{inputs.row}}' is not declared in inputs "
        "(declared: rows)",
        f"7:19: error: $.jobs.counts.entry.file: entry file 'counts.py' is not in the code folder "
        f"({folder})",
        "8:28: error: $.jobs.counts.py_files[1]: 'helpers.py' is listed twice "
        "(Azure ML refuses it)",
        f"9:12: error: $.jobs.counts.jars[0]: file 'missing.jar' is not in the code folder "
        f"({folder})",
        "19:32: error: $.jobs.counts.resources.instance_type: 'standard_ds3_v2' is not a "
        "serverless Spark size (one of: standard_e4s_v3, standard_e8s_v3, standard_e16s_v3, "
        "standard_e32s_v3, standard_e64s_v3)",
        "19:66: error: $.jobs.counts.resources.runtime_version: '3.1' is not a Synapse Spark "
        "runtime of Azure ML (one of: 3.3, 3.4)",
        "11:7: error: $.jobs.counts.conf: missing spark.executor.instances (Azure ML requires "
        "them without dynamic allocation)",
        "15:45: error: $.jobs.counts.conf['spark.dynamicAllocation.minExecutors']: only with "
        "spark.dynamicAllocation.enabled: true",
        "12:28: error: $.jobs.counts.conf['spark.driver.memory']: 'lots' is not a size such as "
        "512m or 2g",
        "17:54: error: $.jobs.counts.inputs.rows.mode: 'ro_mount': a spark job's inputs are read "
        "by Spark itself (mode: direct only)",
    ]


def test_an_entry_file_needs_its_code_folder(tmp_path):
    job = "".join(line for line in JOB.splitlines(True) if "code:" not in line)
    assert problems(write_lab(tmp_path, job)) == [
        "6:19: error: $.jobs.counts.entry.file: an entry file needs code: the folder that holds it"
    ]


def test_where_a_spark_job_runs_is_checked(tmp_path):
    job = JOB.replace(
        '    resources: {instance_type: standard_e4s_v3, runtime_version: "3.4"}\n', ""
    )
    assert problems(write_lab(tmp_path, job)) == [
        "4:3: error: $.jobs.counts: a spark job needs resources (serverless: instance_type, "
        "runtime_version) or compute (an attached Synapse Spark pool)"
    ]
    cluster = "computes:\n  cpu: {type: amlcompute, size: STANDARD_DS11_V2, max_instances: 1}\n"
    spec = write_lab(tmp_path, job + "    compute: azureml:cpu\n", cluster)
    assert problems(spec) == [
        "29:14: error: $.jobs.counts.compute: compute cpu is amlcompute: a spark job runs on an "
        "attached Synapse Spark pool (type: synapsespark) or serverless (resources)"
    ]


def test_without_java_validate_warns_and_plan_is_a_located_error(tmp_path):
    spec = write_lab(tmp_path)
    env = {"PATH": str(Path(os.__file__).parent), "JAVA_HOME": str(tmp_path / "no-java")}
    said = (
        "the local target runs spark jobs under PySpark, which needs Java (JAVA_HOME="
        f"{tmp_path / 'no-java'} has no bin/java): install a Java runtime (Java 17: on Debian, "
        "apt-get install openjdk-17-jre-headless)"
    )
    proc = run_mlrun("validate", spec, cwd=tmp_path, env=env, check=0)
    assert f"lab.yaml:5:11: warning: $.jobs.counts.type: {said}" in proc.stderr
    proc = run_mlrun("plan", spec, cwd=tmp_path, env=env, check=1)
    assert f"lab.yaml:5:11: error: $.jobs.counts.type: {said}" in proc.stderr
    assert not (tmp_path / ".mlrun").exists()


# --- plan ----------------------------------------------------------------------------------------


def test_the_plan_says_how_it_runs_here_and_what_its_environment_gets(tmp_path):
    spec = write_lab(tmp_path)
    proc = run_mlrun("plan", spec, cwd=tmp_path, check=0)
    assert (
        "> job.counts                   first run; runs under PySpark 3.4 local[2], driver "
        "memory 1g (pyspark==3.4.* added to its environment)"
    ) in proc.stdout
    assert "note: environment mlrun's own environment + pyspark==3.4.* of counts (Python " in (
        proc.stderr
    )
    # built already if this session's real Spark run came first (environments are shared)
    assert re.search(
        r"3 requirements, over mlrun's own packages\): (not built yet|built \()", (proc.stderr)
    ), proc.stderr
    (tmp_path / "conda.yml").write_text("dependencies:\n  - pip:\n    - pyspark==3.3.4\n")
    job = JOB.replace('"3.4"', '"3.3.0"') + "    environment: {image: x, conda_file: conda.yml}\n"
    proc = run_mlrun("plan", write_lab(tmp_path, job), cwd=tmp_path, check=0)
    assert "runs under PySpark 3.3 local[2], driver memory 1g\n" in proc.stdout  # it has one


def test_the_command_maps_the_conf_to_local_mode():
    fields = {
        "type": "spark",
        "entry": {"class_name": "org.example.Main"},
        "jars": ["app.jar", "dep.jar"],
        "archives": ["env.tar.gz#env"],
        "conf": {
            "spark.driver.memory": "2g",
            "spark.executor.cores": 2,
            "spark.dynamicAllocation.enabled": True,
            "spark.dynamicAllocation.maxExecutors": 3,
        },
        "args": "--in ${{inputs.x}}\n--n 2",
    }
    assert spark.command(fields) == (
        "spark-submit --master 'local[6]' --driver-memory 2g --conf spark.ui.enabled=false "
        "--conf spark.driver.host=127.0.0.1 --conf spark.driver.bindAddress=127.0.0.1 "
        "--conf spark.driver.memory=2g --conf spark.executor.cores=2 "
        "--conf spark.dynamicAllocation.enabled=true --conf spark.dynamicAllocation.maxExecutors=3 "
        "--jars app.jar,dep.jar --archives 'env.tar.gz#env' --class org.example.Main app.jar "
        "--in ${{inputs.x}} --n 2"
    )


# --- a real run ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def applied(tmp_path_factory):
    """The lab applied once: one real Spark run for the module."""
    if not (WHEELS / "complete").exists():
        pytest.skip(f"no wheelhouse at {WHEELS}: run .ci/wheelhouse-spark (CI does)")
    if spark.java() is None:
        pytest.skip("no Java: run .ci/install-java (CI does)")
    root = tmp_path_factory.mktemp("spark")
    spec = write_lab(root)
    (root / "count.yml").write_text(COMPONENT)
    piped = PIPELINE.split("      inline:")[0]  # a step of the spark component: a second run
    spec.write_text(spec.read_text() + f"  piped:\n{piped}")
    proc = run_mlrun("apply", "-y", spec, cwd=root, env=OFFLINE, timeout=600)
    return root, spec, proc


def test_apply_runs_it_under_pyspark_as_a_tracked_run(applied):
    root, spec, proc = applied
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "job.counts  Completed" in proc.stdout
    state = json.loads((root / ".mlrun" / "spark-lab.local.json").read_text())
    run = state["jobs"]["counts"]["runs"][-1]
    client = mlflow_client(root, "ws-spark")
    got = client.get_run(run["id"])
    assert got.info.status == "FINISHED"
    assert got.data.metrics == {"rows": 4.0}  # x >= 2: ${{inputs.min_x}} reached the script
    assert got.data.params["parallelism"] == "2"  # local[2]: 1 core x 2 executors
    assert got.data.tags["label"] == "Counted By Spark"  # py_files and files reached Spark
    exp = client.get_experiment(got.info.experiment_id)
    assert exp.name == "spark-counts"
    written = Path(run["run_dir"]) / "outputs" / "counts"
    lines = [line for f in written.glob("part-*.csv") for line in f.read_text().splitlines()]
    assert sorted(line for line in lines if line != "y,count") == ["a,1", "b,3"]
    artifacts = [a.path for a in client.list_artifacts(run["id"], "counts")]
    assert artifacts and all(a.startswith("counts/") for a in artifacts)
    command = (Path(run["run_dir"]) / "command.sh").read_text()
    assert command.startswith("spark-submit --master 'local[2]' --driver-memory 1g ")
    assert f"--rows {root / 'rows.csv'} --counts " in command


def test_a_spark_step_runs_as_a_child_run_of_its_pipeline(applied):
    root, spec, proc = applied
    assert "job.piped  Completed" in proc.stdout
    state = json.loads((root / ".mlrun" / "spark-lab.local.json").read_text())
    run = state["jobs"]["piped"]["runs"][-1]
    step = Path(run["run_dir"]) / "steps" / "from_component"
    command = (step / "command.sh").read_text() if (step / "command.sh").exists() else ""
    lines = [
        line
        for f in (step / "outputs" / "counts").glob("part-*.csv")
        for line in f.read_text().splitlines()
    ]
    assert sorted(line for line in lines if line != "y,count") == ["b,3"], command
    client = mlflow_client(root, "ws-spark")
    child = client.search_runs([run["experiment_id"]], f"tags.mlflow.parentRunId = '{run['id']}'")[
        0
    ]
    assert child.data.metrics == {"rows": 3.0}  # min_x: 3, from the step
    assert child.data.params["parallelism"] == "3"  # local[3]: the step's conf over the component's


def test_a_second_plan_has_them_up_to_date(applied):
    root, spec, _ = applied
    proc = run_mlrun("plan", spec, cwd=root, check=0)
    assert "= job.counts" in proc.stdout and "= job.piped" in proc.stdout


# --- the azure target ----------------------------------------------------------------------------


def test_the_schema_and_check_file_agree_on_azures_example_shape(tmp_path):
    """Azure's serverless standalone example's shape (written here in its spirit) validates for
    both targets through file:."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "titanic.py").write_text("print('hi')\n")
    (tmp_path / "job.yml").write_text(
        "$schema: https://azuremlschemas.azureedge.net/latest/sparkJob.schema.json\n"
        "type: spark\ncode: ./src\nentry:\n  file: titanic.py\n"
        "conf:\n  spark.driver.cores: 1\n  spark.driver.memory: 2g\n  spark.executor.cores: 2\n"
        "  spark.executor.memory: 2g\n  spark.executor.instances: 2\n"
        "inputs:\n  titanic_data:\n    type: uri_file\n"
        "    path: azureml://datastores/workspaceblobstore/paths/data/titanic.csv\n"
        "    mode: direct\n"
        "args: >-\n  --titanic_data ${{inputs.titanic_data}}\n"
        'resources:\n  instance_type: standard_e4s_v3\n  runtime_version: "3.4"\n'
    )
    (tmp_path / "lab.yaml").write_text(
        "name: ex\nworkspace: {name: ws-ex, resource_group: rg-ex, location: eastus}\n"
        "jobs:\n  titanic: {file: job.yml}\ntargets:\n  azure: {subscription_id: s}\n"
    )
    assert check_file(tmp_path / "lab.yaml", target="azure").problems == []


# --- pipeline steps ------------------------------------------------------------------------------

COMPONENT = f"""\
$schema: https://azuremlschemas.azureedge.net/latest/sparkComponent.schema.json
name: count_rows
type: spark
version: 1
code: ./src
entry: {{file: count.py}}
py_files: [helpers.py]
files: [labels.txt]
inputs:
  rows: {{type: uri_file, mode: direct}}
  min_x: {{type: integer, default: 1}}
outputs:
  counts: {{type: uri_folder, mode: direct}}
args: >-
  --rows ${{{{inputs.rows}}}} --counts ${{{{outputs.counts}}}} --min_x ${{{{inputs.min_x}}}}
{CONF.replace("    ", "", 1).replace(chr(10) + "      ", chr(10) + "  ")}"""
PIPELINE = """\
    type: pipeline
    inputs:
      rows: {type: uri_file, path: ./rows.csv, mode: direct}
    jobs:
      from_component:
        type: spark
        component: ./count.yml
        inputs: {rows: "${{parent.inputs.rows}}", min_x: 3}
        conf:
          spark.driver.cores: 1
          spark.driver.memory: 2g
          spark.executor.cores: 3
          spark.executor.memory: 1g
          spark.executor.instances: 1
        resources: {instance_type: standard_e8s_v3, runtime_version: 3.4.0}
      inline:
        type: spark
        code: ./src
        entry: {file: missing.py}
        inputs: {rows: "${{parent.inputs.rows}}"}
        args: --rows ${{inputs.rows}}
        resources: {instance_type: standard_e4s_v3, runtime_version: "3.4"}
"""


def test_spark_steps_are_checked_and_planned_as_spark_jobs_are(tmp_path):
    spec = write_lab(tmp_path, PIPELINE.replace("3.4.0", "3.3.0"))
    (tmp_path / "count.yml").write_text(COMPONENT)
    assert problems(spec) == [
        "23:23: error: $.jobs.counts.jobs.inline.entry.file: entry file 'missing.py' is not in "
        f"the code folder ({tmp_path / 'src'})",
        "20:7: error: $.jobs.counts.jobs.inline: missing spark.driver.cores, spark.driver.memory, "
        "spark.executor.cores, spark.executor.memory, spark.executor.instances (Azure ML requires "
        "them without dynamic allocation)",
    ]
    (tmp_path / "src" / "missing.py").write_text("print('here now')\n")
    conf = textwrap.indent(textwrap.dedent(CONF), "        ").lstrip()
    spec.write_text(spec.read_text().replace("args: --rows", f"{conf}        args: --rows"))
    proc = run_mlrun("plan", spec, cwd=tmp_path, check=0)
    assert (
        "      > from_component           first run; runs under PySpark 3.3 local[3], driver "
        "memory 2g (pyspark==3.3.* added to its environment)\n"
        "      > inline                   first run; runs under PySpark 3.4 local[2], driver "
        "memory 1g (pyspark==3.4.* added to its environment)\n"
    ) in proc.stdout


def test_azure_submits_spark_jobs_and_steps_through_the_sdk(azure_emulator, tmp_path):
    """One apply on the emulator: the job (a SparkJob body) and a pipeline of spark steps (spark
    nodes, each of an anonymous spark component), run there as stand-ins."""
    from test_azure import az

    conf = textwrap.indent(textwrap.dedent(CONF), "        ").lstrip()
    piped = PIPELINE.replace("missing.py", "count.py")
    piped = piped.replace("args: --rows", f"{conf}        args: --rows")
    spec = write_lab(tmp_path)
    (tmp_path / "count.yml").write_text(COMPONENT)
    azure = 'targets:\n  azure: {subscription_id: "${{env.AZURE_SUBSCRIPTION_ID}}"}\n'
    spec.write_text(spec.read_text() + f"  piped:\n{piped}" + azure)
    plan = az(azure_emulator, "plan", spec, cwd=tmp_path, check=0).stdout
    assert "> job.counts                   first run; spark runtime 3.4 on serverless " in plan
    assert (
        "      > from_component           first run; spark runtime 3.4 on serverless "
        "standard_e8s_v3\n      > inline                   first run; spark runtime 3.4 on "
        "serverless standard_e4s_v3\n"
    ) in plan
    apply = az(azure_emulator, "apply", "-y", spec, cwd=tmp_path, check=0).stdout
    assert "job.counts  Completed" in apply and "job.piped  Completed" in apply
    state = json.loads((tmp_path / ".mlrun" / "spark-lab.azure.json").read_text())
    stored = azure_emulator.call("GET", "/_emulator/state")["resources"]

    def body(name: str) -> dict:
        run_id = state["jobs"][name]["runs"][-1]["id"]
        return next(r for k, r in stored.items() if k.endswith(f"/jobs/{run_id}"))["properties"]

    props = body("counts")
    assert props["jobType"] == "Spark"
    assert props["entry"]["file"] == "count.py"
    assert props["pyFiles"] == ["helpers.py"] and props["files"] == ["labels.txt"]
    assert props["resources"] == {"instanceType": "standard_e4s_v3", "runtimeVersion": "3.4"}
    assert props["conf"]["spark.executor.instances"] == "2"
    assert props["args"].startswith("--rows ${{inputs.rows}} --counts ${{outputs.counts}}")
    assert props["inputs"]["rows"]["mode"] == "Direct"
    assert props["experimentName"] == "spark-counts"
    nodes = body("piped")["jobs"]
    assert {n["type"] for n in nodes.values()} == {"spark"}
    assert nodes["from_component"]["conf"]["spark.executor.cores"] == 3  # the step's, over it
    assert nodes["from_component"]["resources"]["runtime_version"] == "3.4.0"
    component = next(
        r["properties"]["componentSpec"]
        for k, r in stored.items()
        if k.lower() == nodes["from_component"]["componentId"].lower()
    )
    assert component["type"] == "spark" and component["entry"] == {"file": "count.py"}


def test_export_writes_spark_files_the_sdk_loads(tmp_path):
    from azure.ai.ml import load_component, load_job

    spec = write_lab(tmp_path, extra="components:\n  count_rows: {file: count.yml}\n")
    (tmp_path / "count.yml").write_text(COMPONENT)
    run_mlrun("export", spec, "-o", tmp_path / "out", cwd=tmp_path, check=0)
    component = load_component(tmp_path / "out" / "components" / "count_rows.yml")
    assert type(component).__name__ == "SparkComponent"
    assert component.entry.entry == "count.py" and component.py_files == ["helpers.py"]
    job = load_job(tmp_path / "out" / "jobs" / "counts.yml")
    assert job.type == "spark" and job.entry.entry == "count.py"
    assert job.resources.runtime_version == "3.4" and job.executor_instances == 2
