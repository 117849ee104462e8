import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
SEED = SPECS / "mlflow-tracking.yaml"


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
