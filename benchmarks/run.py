"""Side-by-side timings: each case runs mlrun and its baseline interleaved, several times, and
prints medians and the ratio. Only ratios from one run count (shared machines drift).

    python benchmarks/run.py            # every case, 7 repetitions
    python benchmarks/run.py --quick    # 2 repetitions (what CI runs, to check the scripts work)
    python benchmarks/run.py validate   # cases whose name contains 'validate'
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "specs" / "mlflow-tracking.yaml"
PY = sys.executable


def timed(cmd: list[str], cwd: Path, env: dict | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed


def lab_copy(into: Path) -> Path:
    """A copy of the seed lab (spec and training folder) with its own state."""
    shutil.copytree(ROOT / "training", into / "training", ignore=shutil.ignore_patterns("__pycache__"))
    (into / "specs").mkdir()
    shutil.copy(SEED, into / "specs" / SEED.name)
    return into / "specs" / SEED.name


def export_jobs(spec: Path, out: Path) -> list[Path]:
    """The seed's jobs as CLI v2 files, for the load_job baseline."""
    script = ("import sys, yaml; from pathlib import Path; from runner import spec as s; "
              "from runner.export import job_document; sp = s.load(sys.argv[1]); out = Path(sys.argv[2]); "
              "[(out / f'{j.name}.yml').write_text(yaml.safe_dump(job_document(sp, j, out), sort_keys=False)) "
              "for j in sp.jobs.values()]")
    subprocess.run([PY, "-c", script, str(spec), str(out)], check=True, cwd=ROOT)
    return sorted(out.glob("*.yml"))


def cases(work: Path) -> dict:
    """name -> (mlrun command, baseline command, target ratio, cwd)."""
    spec = lab_copy(work / "lab")
    exported = work / "exported"
    exported.mkdir()
    files = export_jobs(spec, exported)
    load_jobs = [PY, "-c", "import sys; from azure.ai.ml import load_job; [load_job(f) for f in sys.argv[1:]]",
                 *map(str, files)]
    subprocess.run([PY, "-m", "runner", "apply", "-y", str(spec), "--only", "train-mlflow"], cwd=work,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    validate = [PY, "-m", "runner", "validate", str(spec)]
    return {
        "validate vs import yaml+jsonschema+click": (validate, [PY, "-c", "import yaml, jsonschema, click"], 1.5, work),
        "validate vs azure.ai.ml.load_job": (validate, load_jobs, 0.2, work),
        "plan (no changes, local) vs validate": ([PY, "-m", "runner", "plan", str(spec), "--only", "train-mlflow"],
                                                 validate, 1.5, work),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="run the cases whose names contain these words")
    parser.add_argument("--quick", action="store_true", help="2 repetitions: check that the cases run")
    parser.add_argument("-n", type=int, default=7, help="repetitions (default 7)")
    args = parser.parse_args()
    reps = 2 if args.quick else args.n
    env = {**os.environ, "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))}
    with tempfile.TemporaryDirectory(prefix="mlrun-bench-") as tmp:
        table = cases(Path(tmp))
        print(f"{'case':<44} {'mlrun':>9} {'baseline':>9} {'ratio':>7} {'target':>7}")
        for name, (ours, base, target, cwd) in table.items():
            if args.only and not any(w in name for w in args.only):
                continue
            timed(ours, cwd, env), timed(base, cwd, env)  # warm the page cache: "cold" means a new process
            a, b = [], []
            for _ in range(reps):  # interleaved, so drift hits both alike
                a.append(timed(ours, cwd, env))
                b.append(timed(base, cwd, env))
            ma, mb = statistics.median(a), statistics.median(b)
            verdict = "ok" if ma / mb <= target else "MISSED"
            print(f"{name:<44} {ma:>8.3f}s {mb:>8.3f}s {ma / mb:>6.2f}x {'<=' + str(target) + 'x':>7} {verdict}",
                  flush=True)


if __name__ == "__main__":
    main()
