"""Side-by-side timings: each case runs mlrun and its baseline interleaved, several times, and
prints medians and the ratio against the issue's target. Only ratios from one run count (shared
machines drift); RESULTS.md records them with the machine, date and commit.

    python benchmarks/run.py             # every case, 5 repetitions
    python benchmarks/run.py --quick     # 1 repetition and small sizes (CI: the cases still run)
    python benchmarks/run.py validate    # cases whose name contains 'validate'
    python benchmarks/run.py emulator    # only the seed lab on the Azure emulator (needs Azurite)
    python benchmarks/run.py endpoint    # only the online endpoint's latency (issue 29)
    python benchmarks/run.py batch       # only the batch endpoint's scoring (issue 29)
    python benchmarks/run.py --skip batch endpoint   # all but those
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "specs" / "mlflow-tracking.yaml"
PY = sys.executable
MLRUN = [PY, "-m", "runner"]
Prep = Callable[[Path], list]  # a fresh scratch folder -> the command to time there


@dataclass
class Case:
    name: str
    ours: Prep
    base: Prep
    target: float
    ours_exit: int = 0  # the exit code mlrun's side must end with (1: the input has errors)


def timed(cmd: list, cwd: Path, env: dict, expect: int = 0) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != expect:
        raise SystemExit(
            f"failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{proc.stderr[-2000:]}"
        )
    return elapsed


# --quick (CI: the cases still run, in a fraction of the time): the seed's scripts are stood in
# for by one that reads the data and makes the same kind of MLflow calls, without training
QUICK_SCRIPT = """\
import argparse, mlflow
p = argparse.ArgumentParser()
p.add_argument("--training_data")
p.add_argument("--reg_rate", type=float, default=0.01)
args = p.parse_args()
with open(args.training_data) as f:
    rows = sum(1 for _ in f) - 1
with mlflow.start_run():
    mlflow.log_param("Regularization rate", args.reg_rate)
    mlflow.log_metrics({"Accuracy": 0.5, "rows": rows})
"""
quick_scripts = False


def lab_copy(into: Path) -> Path:
    """A copy of the seed lab (spec and training folder) with its own state; in quick mode, with
    QUICK_SCRIPT in place of its training scripts."""
    shutil.copytree(
        ROOT / "training", into / "training", ignore=shutil.ignore_patterns("__pycache__")
    )
    if quick_scripts:
        for script in ("train-model-mlflow.py", "train-model-autolog.py"):
            (into / "training" / script).write_text(QUICK_SCRIPT)
    (into / "specs").mkdir(parents=True)
    shutil.copy(SEED, into / "specs" / SEED.name)
    return into / "specs" / SEED.name


def export_jobs(spec: Path, out: Path) -> list:
    """The seed's jobs as CLI v2 files, for the load_job baseline."""
    out.mkdir(parents=True, exist_ok=True)
    script = (
        "import sys, yaml; from pathlib import Path; from runner import spec as s; "
        "from runner.export import job_document; sp = s.load(sys.argv[1]); "
        "out = Path(sys.argv[2]); "
        "[(out / f'{j.name}.yml').write_text("
        "yaml.safe_dump(job_document(sp, j, out), sort_keys=False)) "
        "for j in sp.jobs.values()]"
    )
    subprocess.run([PY, "-c", script, str(spec), str(out)], check=True, cwd=ROOT)
    return sorted(str(p) for p in out.glob("*.yml"))


def many_jobs(
    folder: Path, n: int, command: str = "python -c pass", compute: str | None = "cluster"
) -> Path:
    """n jobs on a 2-node cluster, or (compute=None) naming no compute: a slot per core."""
    folder.mkdir(parents=True, exist_ok=True)
    on = f", compute: {compute}" if compute else ""
    jobs = "".join(f"  j{i}: {{command: {command}{on}}}\n" for i in range(n))
    spec = folder / "lab.yaml"
    spec.write_text(
        "name: many\nworkspace: {name: ws-many}\ncomputes:\n"
        "  cluster: {type: amlcompute, max_instances: 2}\njobs:\n" + jobs
    )
    return spec


def alias_bomb(width: int, depth: int) -> str:
    """As tests/test_fuzz.py writes it: each level lists the one before `width` times."""
    lines = ["{l0: &l0 [" + ",".join(["lol"] * width) + "]"]
    lines += [f", l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * width) + "]" for i in range(1, depth)]
    return "".join(lines) + "}"


# The heavy snippets of tests/test_fuzz.py (HEAVY_SNIPPETS), at the largest sizes it draws.
HEAVY_INPUTS = {
    "integer": "9" * 6000,
    "hex": "0x" + "f" * 6000,
    "float": "-" + "1" * 6000 + ".5e3",
    "sexagesimal": "1:" + "59:" * 2000 + "1",
    "flow-sequences": "[" * 3000 + "]" * 3000,
    "flow-mappings": "{a: " * 3000 + "1" + "}" * 3000,
    "block-mappings": "".join(f"\n{'  ' * (i + 1)}k{i}:" for i in range(400)) + " 1",
    "block-sequences": "".join(f"\n{' ' * i}- " for i in range(400)) + "1",
    "alias-bomb": alias_bomb(12, 9),
    "expressions": "${{vars.suffix}}" * (60_000 // len("${{vars.suffix}}")),
}


def heavy_specs(seed: Path) -> list[str]:
    """The seed spec with each heavy snippet added as the value of a key `heavy` (an unknown key:
    every file has an error), next to the seed so that its relative paths resolve."""
    text = seed.read_text()
    paths = []
    for name, snippet in HEAVY_INPUTS.items():
        path = seed.with_name(f"heavy-{name}.yaml")
        sep = "" if snippet.startswith("\n") else " "
        path.write_text(f"{text}heavy:{sep}{snippet}\n")
        paths.append(str(path))
    return paths


def scripts_in_a_row(folder: Path, *runs: str) -> list:
    """The baseline a user would type: the training scripts (each `SCRIPT ARGS`, given
    --training_data) one after the other, MLflow on a fresh store."""
    lab_copy(folder)
    data = folder / "training" / "data" / "diabetes.csv"
    steps = " && ".join(
        f"python {script} --training_data {data}{' ' + args if args else ''}"
        for script, _, args in (run.partition(" ") for run in runs)
    )
    return [
        "bash",
        "-c",
        f"export MLFLOW_TRACKING_URI=sqlite:///{folder}/mlflow.db; cd {folder}/training && {steps}",
    ]


def scripts_directly(folder: Path) -> list:
    """The seed's two scripts."""
    return scripts_in_a_row(folder, "train-model-mlflow.py", "train-model-autolog.py")


THREE_STEPS = """\
name: three
workspace: {{name: ws-three}}
computes: {{cluster: {{type: amlcompute, max_instances: 2}}}}
jobs:
  three:
    type: pipeline
    settings: {{default_compute: azureml:cluster}}
    jobs:
      manual:
        code: {code}
        command: >-
          python train-model-mlflow.py --training_data {data}
          && echo done > ${{{{outputs.o}}}}/x
        outputs: {{o: null}}
      auto:
        code: {code}
        command: >-
          python train-model-autolog.py --training_data {data}
          && cp ${{{{inputs.i}}}}/x ${{{{outputs.o}}}}/
        inputs: {{i: '${{{{parent.jobs.manual.outputs.o}}}}'}}
        outputs: {{o: null}}
      again:
        code: {code}
        command: >-
          python train-model-mlflow.py --training_data {data} --reg_rate 0.1
          && cat ${{{{inputs.i}}}}/x
        inputs: {{i: '${{{{parent.jobs.auto.outputs.o}}}}'}}
"""


def three_steps(folder: Path) -> Path:
    """A 3-step pipeline, each step after the one before it: the seed's two training scripts, then
    the first again with another regularization rate."""
    lab_copy(folder)
    spec = folder / "three.yaml"
    training = folder / "training"
    spec.write_text(THREE_STEPS.format(code=training, data=training / "data" / "diabetes.csv"))
    return spec


def three_scripts(folder: Path) -> list:
    """The 3-step pipeline's scripts."""
    return scripts_in_a_row(
        folder,
        "train-model-mlflow.py",
        "train-model-autolog.py",
        "train-model-mlflow.py --reg_rate 0.1",
    )


def many_steps(folder: Path, n: int) -> Path:
    """One pipeline of n trivial steps (each its own command, so none is reused)."""
    folder.mkdir(parents=True, exist_ok=True)
    steps = "".join(f"      s{i}: {{command: python -c pass {i}}}\n" for i in range(n))
    spec = folder / "lab.yaml"
    spec.write_text(
        "name: steps\nworkspace: {name: ws-steps}\njobs:\n  p:\n    type: pipeline\n    jobs:\n"
        + steps
    )
    return spec


def many_trials(folder: Path, n: int) -> Path:
    """One grid sweep of n trivial trials (`python -c pass K`) on a 2-node cluster."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / "lab.yaml"
    spec.write_text(
        "name: trials\nworkspace: {name: ws-trials}\n"
        "computes: {cluster: {type: amlcompute, max_instances: 2}}\n"
        "jobs:\n  s:\n    type: sweep\n    compute: cluster\n"
        "    trial: {command: 'python -c pass ${{search_space.k}}'}\n"
        f"    search_space: {{k: {{type: choice, values: {list(range(n))}}}}}\n"
        "    sampling_algorithm: grid\n"
        "    objective: {goal: minimize, primary_metric: loss}\n"
        f"    limits: {{max_total_trials: {n}, max_concurrent_trials: 2}}\n"
    )
    return spec


def pipeline_reapply(work: Path, reps: int, env: dict) -> None:
    """A re-apply of the 3-step pipeline with nothing changed (every step reused: nothing runs)."""
    folder = work / "reapply"
    spec = three_steps(folder)
    subprocess.run(
        MLRUN + ["apply", "-y", str(spec)],
        cwd=folder,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    times = [timed(MLRUN + ["apply", "-y", str(spec)], folder, env) for _ in range(reps)]
    best = statistics.median(times)
    verdict = "ok" if best <= 0.5 else "MISSED"
    print(
        f"\n{'3-step pipeline re-applied, nothing changed':<44} {best:>8.3f}s {'':>9} "
        f"{'':>7} {'<=0.5s':>7} {verdict}",
        flush=True,
    )


STATE_BYTES = """\
import json, sys
from pathlib import Path
import runner.state as state

written = [0]
save, journal = state.atomic_write, state.State._log


def counted_save(path, text, backup=False):
    written[0] += len(text.encode())
    return save(path, text, backup)


def counted_log(self, entry):
    before = self._journal.tell() if self._journal is not None else None
    journal(self, entry)
    if before is not None and self._journal is not None:
        written[0] += self._journal.tell() - before


state.atomic_write, state.State._log = counted_save, counted_log
from runner.cli import run

code = run(["apply", "-y", sys.argv[1]])
print(json.dumps({"code": code, "bytes": written[0]}))
"""


def state_bytes(work: Path, sizes: list[int], env: dict) -> None:
    """The state's bytes written per job by a fresh apply of N trivial jobs, at each size: the
    same per job however large the lab (the target: the largest size's within 1.25x of the
    smallest's)."""
    per_job = {}
    for n in sizes:
        folder = work / f"state-bytes-{n}"
        spec = many_jobs(folder, n, command="'true'")
        done = subprocess.run(
            [PY, "-c", STATE_BYTES, str(spec)],
            cwd=folder,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        per_job[n] = result["bytes"] / n
    verdict = "ok" if per_job[sizes[-1]] <= 1.25 * per_job[sizes[0]] else "MISSED"
    shown = ", ".join(f"{n} jobs: {b:,.0f}" for n, b in per_job.items())
    print(f"\n{'state bytes written per job':<44} {shown}  (constant) {verdict}", flush=True)


SCALE = """\
import json, resource, sys, threading, time
from runner.cli import run

samples, done = [], threading.Event()


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def sample():
    while not done.wait(0.1):
        samples.append((time.monotonic(), rss()))


threading.Thread(target=sample, daemon=True).start()
start = time.monotonic()
code = run(["apply", "-y", sys.argv[1]])
done.set()
used = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"code": code, "wall": time.monotonic() - start, "samples": samples,
                  "cpu": used.ru_utime + used.ru_stime, "start": start}))
"""


def scale(work: Path, n: int, reps: int, env: dict) -> None:
    """Issue 18's rows at n jobs: a fresh apply of n trivial jobs (in a process that measures its
    own CPU and memory as it goes) beside n bare spawns; the same with jobs that name no compute
    (issue 26); then the re-apply, nothing changed, beside `mlrun validate` of the same spec."""
    walls, bares, cpus, growths = [], [], [], []
    for i in range(reps):
        folder = work / f"scale-{n}-{i}"
        spec = many_jobs(folder, n)
        done = subprocess.run(
            [PY, "-c", SCALE, str(spec)], cwd=folder, env=env, capture_output=True, text=True
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        if result["code"] != 0:
            raise SystemExit(f"scale apply failed:\n{done.stderr[-2000:]}")
        bares.append(
            timed(["bash", "-c", f"for i in $(seq {n}); do {PY} -c pass; done"], folder, env)
        )
        walls.append(result["wall"])
        cpus.append(result["cpu"] / n)
        # memory: the slope of the resident size over the middle 80% of the apply (its jobs
        # spread evenly over it), per job
        t0, wall = result["start"], result["wall"]
        mid = [(t, r) for t, r in result["samples"] if t0 + 0.1 * wall <= t <= t0 + 0.9 * wall]
        times, sizes = [t for t, _ in mid], [r for _, r in mid]
        slope = statistics.linear_regression(times, sizes).slope if len(mid) > 2 else 0.0
        growths.append(max(0.0, slope) * wall / n)
    ma, mb = statistics.median(walls), statistics.median(bares)
    cpu, growth = statistics.median(cpus), statistics.median(growths)
    print(
        f"{f'{n} trivial jobs (fresh) vs bare loop':<44} {ma:>8.3f}s {mb:>8.3f}s {ma / mb:>6.2f}x "
        f"{'<=1.25x':>7} {'ok' if ma / mb <= 1.25 else 'MISSED'}"
    )
    print(
        f"{'  mlrun own CPU per job':<44} {cpu * 1000:>7.1f}ms {'':>9} {'':>7} {'<=25ms':>7} "
        f"{'ok' if cpu <= 0.025 else 'MISSED'}"
    )
    # a run's record: about 1 KB as JSON, 2-3 KB as Python objects
    print(
        f"{'  memory growth per job':<44} {growth / 1024:>7.1f}KB {'':>9} "
        f"{'':>7} {'<=4KB':>7} {'ok' if growth <= 4096 else 'MISSED'}",
        flush=True,
    )
    free, bare = [], []  # jobs that name no compute: a pool of a slot per core
    for i in range(reps):
        spec = many_jobs(work / f"scale-free-{n}-{i}", n, compute=None)
        free.append(timed(MLRUN + ["apply", "-y", str(spec)], spec.parent, env))
        bare.append(
            timed(["bash", "-c", f"for i in $(seq {n}); do {PY} -c pass; done"], spec.parent, env)
        )
    ma, mb = statistics.median(free), statistics.median(bare)
    print(
        f"{f'{n} trivial jobs, no compute vs bare loop':<44} {ma:>8.3f}s {mb:>8.3f}s "
        f"{ma / mb:>6.2f}x {'<=1.25x':>7} {'ok' if ma / mb <= 1.25 else 'MISSED'}",
        flush=True,
    )
    spec = work / f"scale-{n}-0" / "lab.yaml"
    again, validate = [], []
    for _ in range(reps):
        again.append(timed(MLRUN + ["apply", "-y", str(spec)], spec.parent, env))
        validate.append(timed(MLRUN + ["validate", str(spec)], spec.parent, env))
    ma, mb = statistics.median(again), statistics.median(validate)
    print(
        f"{f're-apply of {n} unchanged jobs vs validate':<44} {ma:>8.3f}s {mb:>8.3f}s "
        f"{ma / mb:>6.2f}x {'<=2.0x':>7} {'ok' if ma / mb <= 2.0 else 'MISSED'}",
        flush=True,
    )


def mlflow_projects(folder: Path) -> list:
    """Both scripts as MLflow Project entry points, `mlflow run --env-manager local`."""
    lab_copy(folder)
    (folder / "training" / "MLproject").write_text(
        "name: diabetes\nentry_points:\n"
        "  manual: {parameters: {data: path}, "
        "command: 'python train-model-mlflow.py --training_data {data}'}\n"
        "  auto: {parameters: {data: path}, "
        "command: 'python train-model-autolog.py --training_data {data}'}\n"
    )
    data = folder / "training" / "data" / "diabetes.csv"
    run = f"mlflow run {folder}/training --env-manager local -P data={data}"
    return [
        "bash",
        "-c",
        f"export MLFLOW_TRACKING_URI=sqlite:///{folder}/mlflow.db; "
        f"{run} -e manual && {run} -e auto",
    ]


ONE_JOB = "name: one\nworkspace: {name: mlw-one}\njobs:\n  hello: {command: echo hi}\n"
TWO_STEPS = (
    "name: two\nworkspace: {name: mlw-two}\njobs:\n  io:\n    type: pipeline\n    jobs:\n"
    "      hello:\n        command: echo hi > ${{outputs.out}}/x.txt\n"
    "        outputs: {out: {type: uri_folder}}\n"
    "      world:\n        command: cat ${{inputs.inp}}/x.txt\n"
    "        inputs: {inp: '${{parent.jobs.hello.outputs.out}}'}\n"
)


def written(folder: Path, text: str) -> Path:
    spec = folder / "lab.yaml"
    spec.write_text(text)
    return spec


def at_home(home: Path, cmd: list) -> list:
    """`cmd` as a user whose home folder is `home` (mlrun's and MLflow's caches in it)."""
    home.mkdir(parents=True, exist_ok=True)
    return ["env", "-u", "XDG_CACHE_HOME", "-u", "XDG_CONFIG_HOME", f"HOME={home}", *cmd]


def cases(work: Path, quick: bool) -> list[Case]:
    spec = lab_copy(work / "lab")
    warm = work / "warm-home"  # a machine mlrun ran on before
    subprocess.run(
        at_home(warm, MLRUN + ["apply", "-y", str(written(work, ONE_JOB))]),
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    exported = export_jobs(spec, work / "exported")
    load_jobs = [
        PY,
        "-c",
        "import sys; from azure.ai.ml import load_job; [load_job(f) for f in sys.argv[1:]]",
        *exported,
    ]
    subprocess.run(
        MLRUN + ["apply", "-y", str(spec), "--only", "train-mlflow"],
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout, as every case runs it
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    validate = MLRUN + ["validate", str(spec)]
    heavy = heavy_specs(spec)
    n = 10 if quick else 100

    def fresh_apply(folder: Path) -> list:
        return MLRUN + ["apply", "-y", str(lab_copy(folder)), "--var", "suffix=bench"]

    return [
        Case(
            "validate vs import yaml+jsonschema+click",
            lambda _: validate,
            lambda _: [PY, "-c", "import yaml, jsonschema, click"],
            1.5,
        ),
        Case("validate vs azure.ai.ml.load_job", lambda _: validate, lambda _: load_jobs, 0.2),
        Case(
            f"validate {len(heavy)} heavy inputs vs the seed {len(heavy)}x",
            lambda _: MLRUN + ["validate", *heavy],
            lambda _: MLRUN + ["validate", *[str(spec)] * len(heavy)],
            3.0,
            ours_exit=1,
        ),
        Case(
            "plan (no changes, local) vs validate",
            lambda _: MLRUN + ["plan", str(spec), "--only", "train-mlflow"],
            lambda _: validate,
            1.5,
        ),
        Case(
            "first apply (empty home) vs the same, warm",  # issue 31
            lambda f: at_home(f / "home", MLRUN + ["apply", "-y", str(written(f, ONE_JOB))]),
            lambda f: at_home(warm, MLRUN + ["apply", "-y", str(written(f, ONE_JOB))]),
            1.5,
        ),
        Case(
            "2-step pipeline, an output on vs one job",  # issue 31
            lambda f: MLRUN + ["apply", "-y", str(written(f, TWO_STEPS))],
            lambda f: MLRUN + ["apply", "-y", str(written(f, ONE_JOB))],
            2.0,
        ),
        Case("seed apply (fresh, local) vs scripts directly", fresh_apply, scripts_directly, 0.8),
        Case("seed apply (fresh, local) vs mlflow run", fresh_apply, mlflow_projects, 0.5),
        Case(
            "3-step pipeline (fresh) vs the scripts directly",
            lambda f: MLRUN + ["apply", "-y", str(three_steps(f))],
            three_scripts,
            1.2,
        ),
        Case(
            f"pipeline of {2 * n} trivial steps vs bare loop",
            lambda f: MLRUN + ["apply", "-y", str(many_steps(f, 2 * n))],
            lambda f: ["bash", "-c", f"for i in $(seq {2 * n}); do {PY} -c pass; done"],
            1.5,
        ),
        Case(
            f"sweep of {2 * n} trivial trials vs bare loop",
            lambda f: MLRUN + ["apply", "-y", str(many_trials(f, 2 * n))],
            lambda f: ["bash", "-c", f"for i in $(seq {2 * n}); do {PY} -c pass; done"],
            1.5,
        ),
        Case(
            f"{n} trivial jobs, 2-node cluster vs bare loop",
            lambda f: MLRUN + ["apply", "-y", str(many_jobs(f, n))],
            lambda f: ["bash", "-c", f"for i in $(seq {n}); do {PY} -c pass; done"],
            1.5,
        ),
    ]


def plan_scaling(work: Path, sizes: list[int], env: dict) -> None:
    """Plan time against the number of jobs: it should grow linearly; 1,000 jobs within 2 s."""
    print(f"\n{'plan, jobs':<44} {'time':>9} {'per job':>9}")
    for n in sizes:
        spec = many_jobs(work / f"plan-{n}", n, command="echo hi")
        t = min(timed(MLRUN + ["plan", str(spec)], spec.parent, env) for _ in range(2))
        verdict = " (target <= 2s: " + ("ok)" if t <= 2 else "MISSED)") if n == 1000 else ""
        print(f"{n:<44} {t:>8.3f}s {t / n * 1000:>7.2f}ms{verdict}", flush=True)


LAYER_LOOP = """
import shutil, subprocess, sys, os
from pathlib import Path
from runner.backends import envs
n, mode, base = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
req = envs.request((sys.executable, sys.version.split()[0]), ()) if mode == "built" else None
for i in range(n):
    if mode == "bare":
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        continue
    layer = base / str(i)
    over = envs.own() if req is None else envs.built(req)
    env = {**os.environ, **envs.make_layer(layer, over)}
    subprocess.run([str(layer / "bin" / "python"), "-c", "pass"], env=env, check=True)
    shutil.rmtree(layer)
"""


def environment_costs(work: Path, reps: int, n: int, env: dict) -> None:
    """What a run's environment adds to each job, side by side with a bare `python -c pass`: the
    throwaway layer over mlrun's own packages (target <= 20 ms), and a layer over a cached built
    environment, found in the cache (target <= 50 ms). Then the same for whole applies: n jobs
    with a built (cached) environment against n jobs with none."""
    sys.path.insert(0, str(ROOT))  # this checkout's runner
    from runner.backends import envs as envs_mod

    req = envs_mod.request((PY, sys.version.split()[0]), ())
    if envs_mod.built(req) is None:  # the cached built environment (an image alone: empty)
        with open(os.devnull, "wb") as log:
            envs_mod.build(req, log)
    print(f"\n{'per job, ' + str(n) + ' jobs':<44} {'mlrun':>9} {'baseline':>9} {'added':>9}")
    rows = (
        ("layer over mlrun's packages", "own", 0.020),
        ("layer over a cached build", "built", 0.050),
    )
    for name, mode, target in rows:
        ours, base = [], []
        for i in range(reps):
            folder = work / "layers" / f"{mode}-{i}"
            folder.mkdir(parents=True)
            loop = [PY, "-c", LAYER_LOOP, str(n)]
            ours.append(timed(loop + [mode, str(folder)], work, env))
            base.append(timed(loop + ["bare", str(folder)], work, env))
        ma, mb = statistics.median(ours) / n, statistics.median(base) / n
        verdict = "ok" if ma - mb <= target else "MISSED"
        print(
            f"  {name:<42} {ma * 1000:>7.1f}ms {mb * 1000:>7.1f}ms {(ma - mb) * 1000:>7.1f}ms "
            f"<={target * 1000:.0f}ms {verdict}",
            flush=True,
        )
    built, plain = [], []
    for i in range(reps):
        for label, out, extra in (
            ("built", built, ", environment: {image: python}"),
            ("none", plain, ""),
        ):
            folder = work / "env-apply" / f"{label}-{i}"
            spec = many_jobs(folder, n)
            text = spec.read_text().replace(", compute: cluster}", extra + ", compute: cluster}")
            spec.write_text(text)
            out.append(timed(MLRUN + ["apply", "-y", str(spec)], folder, env))
    ma, mb = statistics.median(built) / n, statistics.median(plain) / n
    verdict = "ok" if ma - mb <= 0.050 else "MISSED"
    print(
        f"  {'apply, cached built env vs none':<42} {ma * 1000:>7.1f}ms {mb * 1000:>7.1f}ms "
        f"{(ma - mb) * 1000:>7.1f}ms <=50ms {verdict}",
        flush=True,
    )


LOG_TEN = (
    "import mlflow\n"
    "with mlflow.start_run():\n"
    "    for i in range(10):\n"
    "        mlflow.log_metric('m', i, step=i)\n"
    "    mlflow.log_param('p', 1)\n"
)


def tracking_costs(work: Path, reps: int, env: dict) -> None:
    """Issue 27's rows for jobs whose MLflow is not mlrun's: the workspace's tracking server
    started from nothing until it answers (target <= 3 s, once per apply; jobs start meanwhile:
    its port listens at once), and a job that logs ten metrics and a
    param through it (mlrun's per-job part, tracking.ensure on a running server, included)
    against the same job writing the store directly (target <= 50 ms more). Each job resumes a
    run made beforehand, as every job of mlrun's does (MLFLOW_RUN_ID)."""
    sys.path.insert(0, str(ROOT))
    from runner.backends import mlflow_db, tracking
    from runner.backends.local import _template_db

    root = work / "tracking-ws"
    root.mkdir()
    shutil.copyfile(_template_db(), root / "mlflow.db")  # as a workspace's store is made
    holder = work / "tracking-holder"  # a run that keeps the server up between the rows
    holder.mkdir()
    starts, ours, base = [], [], []
    for i in range(reps):
        started = time.perf_counter()
        url = tracking.ensure(root, holder)  # the port listens; MLflow loads
        with urllib.request.urlopen(f"{url}/health", timeout=60) as answer:  # waits for it
            assert answer.status == 200
        starts.append(time.perf_counter() - started)
        for _ in range(2):  # interleaved
            started = time.perf_counter()
            url = tracking.ensure(root, work / f"tracking-run-{i}")
            ensure = time.perf_counter() - started
            made = mlflow_db.Store(root / "mlflow.db").create_run("0", "via-server", {})
            assert made is not None
            via = {**env, "MLFLOW_TRACKING_URI": url, "MLFLOW_RUN_ID": made[0]}
            ours.append(ensure + timed([PY, "-c", LOG_TEN], work, via))
            made = mlflow_db.Store(root / "mlflow.db").create_run("0", "direct", {})
            assert made is not None
            direct = {
                **env,
                "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
                "MLFLOW_RUN_ID": made[0],
            }
            base.append(timed([PY, "-c", LOG_TEN], work, direct))
        (holder / "exit.json").write_text("{}")  # the server stops once no run needs it
        tracking.stop(root)
        (holder / "exit.json").unlink()
    start = statistics.median(starts)
    print(
        f"{'tracking server start':<44} {start:>8.3f}s {'':>9} {'':>7} {'<=3s':>7} "
        f"{'ok' if start <= 3.0 else 'MISSED'}"
    )
    ma, mb = statistics.median(ours), statistics.median(base)
    print(
        f"{'job via tracking server vs direct store':<44} {ma:>8.3f}s {mb:>8.3f}s "
        f"{(ma - mb) * 1000:>+6.0f}ms {'<=50ms':>7} {'ok' if ma - mb <= 0.050 else 'MISSED'}",
        flush=True,
    )


def curated_seed(work: Path, quick: bool, reps: int, env: dict) -> None:
    """The seed lab in its curated environment (AzureML-sklearn-1.5, built beforehand) against
    its two scripts run one after the other by that environment's Python, MLflow on a fresh
    store (a file store: the environment's MLflow is mlflow-skinny, without SQLite's). Target
    <= 0.8x. In quick mode (no package index), mlrun's interpreter stands in for the
    environment on both sides."""
    sys.path.insert(0, str(ROOT))
    from runner.backends import envs as envs_mod
    from runner.backends.local import LocalBackend
    from runner.spec import load

    mode = "mlrun" if quick else "build"
    env = {**env, "MLRUN_CURATED_ENVIRONMENTS": mode, "MLFLOW_ALLOW_FILE_STORE": "true"}
    python = PY
    if not quick:  # the environment as the seed's jobs resolve it, built once beforehand
        os.environ["MLRUN_CURATED_ENVIRONMENTS"] = "build"
        spec = load(SEED)
        req = LocalBackend(spec)._request(spec.jobs["train-mlflow"].env)
        if envs_mod.built(req) is None:
            with open(work / "sklearn-build.log", "wb") as log:
                envs_mod.build(req, log)
        python = str(req.folder / "bin" / "python")
    ours, base = [], []
    for i in range(reps + (0 if quick else 1)):  # the first round warms caches, not counted
        a, b = work / "curated-seed" / f"{i}-a", work / "curated-seed" / f"{i}-b"
        spec = lab_copy(a)
        t_ours = timed(MLRUN + ["apply", "-y", str(spec), "--var", "suffix=bench"], a, env)
        lab_copy(b)
        data = b / "training" / "data" / "diabetes.csv"
        script = " && ".join(
            f"{python} {s} --training_data {data}"
            for s in ("train-model-mlflow.py", "train-model-autolog.py")
        )
        store = f"export MLFLOW_TRACKING_URI={(b / 'mlruns').as_uri()}; cd {b}/training && "
        t_base = timed(["bash", "-c", store + script], b, env)
        if i or quick:
            ours.append(t_ours), base.append(t_base)
    ma, mb = statistics.median(ours), statistics.median(base)
    name = "seed, curated env built, vs its scripts" + (" (quick)" if quick else "")
    print(
        f"{name:<44} {ma:>8.3f}s {mb:>8.3f}s {ma / mb:>6.2f}x {'<=0.8x':>7} "
        f"{'ok' if ma / mb <= 0.8 else 'MISSED'}",
        flush=True,
    )


def endpoint_latency(work: Path, quick: bool, reps: int, env: dict) -> None:
    """Issue 29's online row: specs/deploy.yaml applied once (train, register, deploy behind the
    endpoint's router, call), then sequential requests of training/sample-data.json on kept-alive
    connections: through the router with the key (Azure's input_data body, which it translates),
    and straight to the deployment's scoring server with the same data as MLflow's body
    (dataframe_split, POST /invocations). The two sides take turns in blocks, so the machine's
    noise hits both; p50 and p99 of each round, medians over the rounds (after a warm-up round),
    target <= 1.2x each. Destroyed at the end."""
    root = work / "deploy"
    shutil.copytree(
        ROOT / "training", root / "training", ignore=shutil.ignore_patterns("__pycache__")
    )
    (root / "specs").mkdir()
    spec = root / "specs" / "deploy.yaml"
    shutil.copy(ROOT / "specs" / "deploy.yaml", spec)
    applied = subprocess.run(
        MLRUN + ["apply", "-y", str(spec)], cwd=root, env=env, capture_output=True, text=True
    )
    try:
        if applied.returncode != 0:
            raise SystemExit(
                f"deploy.yaml did not apply:\n{applied.stdout[-2000:]}{applied.stderr}"
            )
        where = root / "specs" / ".mlrun" / "local" / "mlw-dp100-deploy" / "endpoints"
        where = where / "diabetes-online"
        router = urlsplit(json.loads((where / "router.json").read_text())["url"])
        key = json.loads((where / "keys.json").read_text())["primaryKey"]
        current = json.loads((where / "deployments" / "blue" / "current.json").read_text())
        server = urlsplit(current["servers"][0])
        sample = (ROOT / "training" / "sample-data.json").read_bytes()  # Azure's body
        split = {"dataframe_split": json.loads(sample)["input_data"]}  # MLflow's, same data
        sides = {
            "router": (
                http.client.HTTPConnection(router.hostname or "", router.port),
                "/score",
                sample,
                {"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
                [0, 1],
            ),
            "server": (
                http.client.HTTPConnection(server.hostname or "", server.port),
                "/invocations",
                json.dumps(split).encode(),
                {"Content-Type": "application/json"},
                {"predictions": [0, 1]},
            ),
        }

        def send(side: str, count: int, out: list[float]) -> None:
            conn, path, body, headers, expected = sides[side]
            for _ in range(count):
                for attempt in (1, 2):  # a kept-alive connection the server closed while idle
                    start = time.perf_counter()  # (uvicorn's keep-alive is 5 s): connect again
                    try:
                        conn.request("POST", path, body, headers)
                        answer = conn.getresponse()
                        data = answer.read()
                        break
                    except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                        conn.close()
                        if attempt == 2:
                            raise
                out.append(time.perf_counter() - start)
                if answer.status != 200:
                    raise SystemExit(f"{side} answered {answer.status}: {data[:500]!r}")
            if json.loads(data) != expected:  # the last answer of the block
                raise SystemExit(f"{side} answered {data[:500]!r}, not {expected}")

        n, block = (200, 50) if quick else (2000, 100)
        p50s: dict[str, list[float]] = {"router": [], "server": []}
        p99s: dict[str, list[float]] = {"router": [], "server": []}
        for i in range(reps + (0 if quick else 1)):  # the first round warms up, not counted
            took: dict[str, list[float]] = {"router": [], "server": []}
            for b in range(n // block):  # interleaved, each side first in turn
                for side in ("router", "server") if b % 2 == 0 else ("server", "router"):
                    send(side, block, took[side])
            if i or quick:
                for side, times in took.items():
                    cuts = statistics.quantiles(times, n=100)
                    p50s[side].append(cuts[49]), p99s[side].append(cuts[98])
        for conn, *_ in sides.values():
            conn.close()
        print(f"\nonline endpoint, {n} requests a side a round, median of {len(p50s['router'])}")
        for label, got in (("p50", p50s), ("p99", p99s)):
            ma, mb = statistics.median(got["router"]), statistics.median(got["server"])
            print(
                f"{f'  {label}: router vs straight to scoring server':<44} {ma * 1000:>7.2f}ms "
                f"{mb * 1000:>7.2f}ms {ma / mb:>6.2f}x {'<=1.2x':>7} "
                f"{'ok' if ma / mb <= 1.2 else 'MISSED'}",
                flush=True,
            )
    finally:
        subprocess.run(
            MLRUN + ["destroy", "-y", str(spec)],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


BATCH_LOOP = """\
import glob, os, sys
import mlflow.pyfunc, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
with open(sys.argv[3], "w") as out:
    for path in sorted(glob.glob(os.path.join(sys.argv[2], "*.csv"))):
        data = pd.read_csv(path)
        for row, p in zip(data.index, model.predict(data)):
            out.write(f"{row},{p},{os.path.basename(path)}\\n")
"""


def batch_scoring(work: Path, quick: bool, reps: int, env: dict) -> None:
    """Issue 29's batch row: a batch endpoint's scoring of 1,000 small CSV files (an MLflow
    model of the diabetes data, 2 instances x 2 at once, mini-batches of 10 files, append_row):
    `mlrun invoke --input` of the deployed lab against one Python process loading the model and
    predicting the files in a plain loop, writing the same rows. Target <= 1.5x. The first round
    warms caches, not counted; the lab is applied (and its first call made) beforehand."""
    import csv

    import mlflow.sklearn
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    root = work / "batch"
    files = root / "files"
    files.mkdir(parents=True)
    with open(ROOT / "training" / "data" / "diabetes.csv", newline="") as f:
        rows = list(csv.reader(f))
    data = pd.DataFrame([r[1:-1] for r in rows[1:2001]], columns=rows[0][1:-1]).astype(float)
    labels = [int(r[-1]) for r in rows[1:2001]]
    mlflow.sklearn.save_model(
        LogisticRegression(max_iter=500).fit(data, labels), root / "model", input_example=data[:2]
    )
    count = 100 if quick else 1000
    for i in range(count):  # two patients a file
        data[2 * i % 2000 : 2 * i % 2000 + 2].to_csv(files / f"p{i:04d}.csv", index=False)
    (root / "lab.yaml").write_text(
        "name: bench-batch\nworkspace: {name: ws-bench-batch}\n"
        "computes:\n  cluster: {type: amlcompute, max_instances: 2}\n"
        "endpoints:\n  scorer:\n    type: batch\n    deployments:\n      mlflow:\n"
        "        model: {path: ./model, type: mlflow_model}\n        compute: azureml:cluster\n"
        "        resources: {instance_count: 2}\n"
        "        settings: {max_concurrency_per_instance: 2, mini_batch_size: 10}\n"
        "    invoke: {input: ./files}\n"
    )
    (root / "loop.py").write_text(BATCH_LOOP)
    timed(MLRUN + ["apply", "-y", "lab.yaml"], root, env)
    ours, base = [], []
    try:
        for i in range(reps + (0 if quick else 1)):
            cmd = MLRUN + ["invoke", "lab.yaml", "scorer", "--input", "files"]
            t_ours = timed(cmd, root, env)
            t_base = timed([PY, "loop.py", "model", "files", f"loop-{i}.csv"], root, env)
            if i or quick:
                ours.append(t_ours), base.append(t_base)
    finally:
        timed(MLRUN + ["destroy", "-y", "lab.yaml"], root, env)
    ma, mb = statistics.median(ours), statistics.median(base)
    name = f"batch scoring, {count} files, vs a plain loop"
    print(
        f"{name:<44} {ma:>8.3f}s {mb:>8.3f}s {ma / mb:>6.2f}x {'<=1.5x':>7} "
        f"{'ok' if ma / mb <= 1.5 else 'MISSED'}",
        flush=True,
    )


def azure_emulator_case(work: Path, reps: int, delay: float, env: dict) -> None:
    """The seed lab on the Azure emulator, every PUT (each create, each job's queueing) delayed
    `delay` seconds: `mlrun apply` against the seed's own order by hand
    (benchmarks/seed_by_hand.py), wall time and the number of requests the service saw (the jobs'
    own MLflow calls included, the same on both sides; cloud metadata left out: the SDK fetches it
    for every call in a custom cloud like the emulator's and never in Azure's public cloud, which
    it knows)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from azure_fixtures import start_emulator, stop_emulator

    folder = work / "emulator"
    folder.mkdir()
    proc, emulator = start_emulator(folder)
    try:
        emulator.delay(method="PUT", path_regex=".*", seconds=delay)
        az_env = {**env, **emulator.env}
        az_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), emulator.env["PYTHONPATH"]])
        walls, counts = {"mlrun": [], "by hand": []}, {"mlrun": [], "by hand": []}
        for i in range(reps):
            for who in ("mlrun", "by hand"):  # interleaved
                run = work / "azure" / f"{i}-{who.replace(' ', '-')}"
                spec = lab_copy(run)
                suffix = f"b{i}{'m' if who == 'mlrun' else 'h'}"
                cmd = (
                    MLRUN
                    + ["apply", "-y", str(spec), "--target", "azure", "--var", f"suffix={suffix}"]
                    if who == "mlrun"
                    else [
                        PY,
                        str(ROOT / "benchmarks" / "seed_by_hand.py"),
                        suffix,
                        str(run / "training"),
                    ]
                )
                mark = emulator.mark()
                walls[who].append(timed(cmd, run, az_env))
                counts[who].append(
                    sum(r["path"] != "/metadata/endpoints" for r in emulator.requests(mark))
                )
        (wa, wb), (ra, rb) = (
            (statistics.median(d["mlrun"]), statistics.median(d["by hand"]))
            for d in (walls, counts)
        )
        print(
            f"\nseed lab on the Azure emulator, each PUT delayed {delay:g} s, "
            "vs the seed's own order by hand"
        )
        print(
            f"{'  wall':<44} {wa:>8.1f}s {wb:>8.1f}s {wa / wb:>6.2f}x {'<=0.6x':>7} "
            f"{'ok' if wa / wb <= 0.6 else 'MISSED'}"
        )
        print(
            f"{'  requests':<44} {ra:>9g} {rb:>9g} {ra / rb:>6.2f}x {'<=1.0x':>7} "
            f"{'ok' if ra / rb <= 1.0 else 'MISSED'}",
            flush=True,
        )
    finally:
        stop_emulator(proc, folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="run the cases whose names contain these words")
    parser.add_argument("--quick", action="store_true", help="1 repetition, small sizes")
    parser.add_argument("-n", type=int, default=5, help="repetitions (default 5)")
    parser.add_argument(
        "--skip", nargs="*", default=[], help="leave out the cases whose names contain these"
    )
    args = parser.parse_args()

    def wanted(word: str) -> bool:  # one of the cases after the table's
        return (not args.only or word in args.only) and word not in args.skip

    reps = 1 if args.quick else args.n
    global quick_scripts
    quick_scripts = args.quick
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MLFLOW_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), env.get("PYTHONPATH")])
    )  # this checkout
    with tempfile.TemporaryDirectory(prefix="mlrun-bench-") as tmp:
        work = Path(tmp)
        # Python as users run it: compiled modules are kept (here outside the checkout), not
        # compiled again by every process, whatever this machine's PYTHONDONTWRITEBYTECODE says
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        print(f"{'case':<44} {'mlrun':>9} {'baseline':>9} {'ratio':>7} {'target':>7}")
        for case in cases(work, args.quick):
            if args.only and not any(w in case.name for w in args.only):
                continue
            if any(w in case.name for w in args.skip):
                continue
            ours, base = [], []
            for i in range(
                reps + (0 if args.quick else 1)
            ):  # the first round warms caches, not counted
                a = work / "runs" / f"{len(ours)}-{i}-a-{time.monotonic_ns()}"
                b = work / "runs" / f"{len(ours)}-{i}-b-{time.monotonic_ns()}"
                a.mkdir(parents=True), b.mkdir(parents=True)
                t_ours = timed(case.ours(a), a, env, case.ours_exit)
                t_base = timed(case.base(b), b, env)  # interleaved
                if i or args.quick:
                    ours.append(t_ours), base.append(t_base)
            ma, mb = statistics.median(ours), statistics.median(base)
            verdict = "ok" if ma / mb <= case.target else "MISSED"
            print(
                f"{case.name:<44} {ma:>8.3f}s {mb:>8.3f}s {ma / mb:>6.2f}x "
                f"{'<=' + str(case.target) + 'x':>7} {verdict}",
                flush=True,
            )
        if (not args.only or any("plan" in w for w in args.only)) and "plan" not in args.skip:
            plan_scaling(work, [10, 100] if args.quick else [10, 100, 1000, 5000], env)
        if wanted("pipeline"):
            pipeline_reapply(work, 1 if args.quick else args.n, env)
        if wanted("scale"):
            scale(work, 20 if args.quick else 1000, 1 if args.quick else min(args.n, 3), env)
        if wanted("state"):
            state_bytes(work, [10, 100] if args.quick else [100, 1000], env)
        if wanted("environment"):
            environment_costs(work, 1 if args.quick else args.n, 5 if args.quick else 50, env)
        if wanted("tracking"):
            tracking_costs(work, 1 if args.quick else args.n, env)
        if wanted("curated"):
            curated_seed(work, args.quick, 1 if args.quick else args.n, env)
        if wanted("endpoint"):
            endpoint_latency(work, args.quick, 1 if args.quick else args.n, env)
        if wanted("batch"):
            batch_scoring(work, args.quick, 1 if args.quick else args.n, env)
        if wanted("emulator"):
            azure_emulator_case(work, 1 if args.quick else args.n, 0.1 if args.quick else 3.0, env)


if __name__ == "__main__":
    main()
