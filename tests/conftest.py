import os
import sys
from pathlib import Path

import pytest

pytest_plugins = ["azure_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
SEED = SPECS / "mlflow-tracking.yaml"


def pytest_itemcollected(item):
    """Tests run in parallel workers (pytest-xdist, --dist loadgroup), each test in one worker
    with its own caches and session fixtures. Tests that share a module-scoped fixture (one lab
    run, one emulator state) are kept in one worker, as are the users of the one seed-lab run,
    so each of those is made once. Marked as each test is collected, before any hook that
    reads the collection (xdist reads the groups in pytest_collection_modifyitems; setup.cfg
    keeps pytest below 9.2, whose node ids xdist 3.8 can no longer add its group to)."""
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    if any(d and d[-1].scope == "module" for d in defs.values()):
        item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    elif "seed_lab" in getattr(item, "fixturenames", ()):
        item.add_marker(pytest.mark.xdist_group("seed_lab"))


@pytest.fixture(scope="session", autouse=True)
def own_cache(tmp_path_factory, worker_id):
    """mlrun's and uv's caches (built environments, the template store) in a folder of the test
    run's, not the user's: what a test builds cannot leak into a later run. The workers of one
    run share it, as labs on one machine share the user's (builds take a lock; the template
    store is written atomically), so each is made once per run."""
    if not os.environ.get("MLRUN_TESTS_SHARED_CACHE"):
        base = tmp_path_factory.getbasetemp()
        shared = base.parent if worker_id != "master" else base  # the run's, above each worker's
        (shared / "cache").mkdir(exist_ok=True)
        os.environ["XDG_CACHE_HOME"] = str(shared / "cache")
    # prices from the bundled table (the same on every machine); a test of the live lookup points
    # MLRUN_PRICES_URL at the emulator
    os.environ["MLRUN_PRICES_URL"] = "off"
    # tests never download: no interpreter (uv), and curated environments (whose packages come
    # from PyPI) map to mlrun's interpreter unless a test builds one from a table of its own
    os.environ["UV_PYTHON_DOWNLOADS"] = "never"
    os.environ["MLRUN_CURATED_ENVIRONMENTS"] = "mlrun"
    yield


@pytest.fixture
def mlrun(capsys, monkeypatch):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from runner.cli import run

    def call(*args, cwd=None):
        if cwd:
            monkeypatch.chdir(cwd)
        code = run([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def mlrun_cmd():
    """The command line that runs mlrun in a subprocess with this interpreter."""
    return [sys.executable, "-m", "runner"]


@pytest.fixture
def clean_env(monkeypatch):
    for k in list(os.environ):
        if k.startswith(("MLFLOW_", "AZURE_")):
            monkeypatch.delenv(k)


def run_mlrun(*args, cwd, timeout=300, env=None, check=None):
    """mlrun in a real subprocess; returns the CompletedProcess (text)."""
    import subprocess

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    full_env.update(env or {})
    proc = subprocess.run(
        mlrun_cmd() + [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )
    if check is not None:
        assert proc.returncode == check, (
            f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def start_mlrun(*args, cwd, capture=False, env=None):
    """mlrun in a real subprocess of its own process group (to kill -9 with os.killpg), not
    waited for; its output is piped (text) with `capture`, else dropped."""
    import subprocess

    out = subprocess.PIPE if capture else subprocess.DEVNULL
    return subprocess.Popen(
        mlrun_cmd() + [str(a) for a in args],
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | (env or {}),
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=out,
        text=True,
    )


@pytest.fixture(scope="session")
def seed_lab(tmp_path_factory):
    """One real run of the seed lab, shared by the session: a copy of specs/ and training/,
    applied."""
    root = lab_copy(tmp_path_factory.mktemp("seed"), SEED.name)
    proc = run_mlrun(
        "apply", "-y", "specs/mlflow-tracking.yaml", "--var", "suffix=e2e", cwd=root, check=0
    )
    return {"root": root, "spec": root / "specs" / SEED.name, "apply": proc}


def lab_copy(root: Path, spec: str) -> Path:
    """`root` holding a copy of training/ and of specs/SPEC, as a user's clone has them."""
    import shutil

    shutil.copytree(
        ROOT / "training", root / "training", ignore=shutil.ignore_patterns("__pycache__")
    )
    (root / "specs").mkdir()
    shutil.copy(SPECS / spec, root / "specs" / spec)
    return root


def mlflow_client(root, workspace):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{root}/.mlrun/local/{workspace}/mlflow.db")
