"""Every command's help has examples, and they stay true: each example's command line is parsed by
the CLI, and run against a copy of the applied seed lab where running it changes nothing outside
that copy (the rest are named below, with why). Shell completion offers the spec's names."""

import glob
import os
import shlex
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

from runner.cli import cli
from runner.examples import EXAMPLES, SEED

pytestmark = pytest.mark.e2e

# examples only parsed, not run: they need Azure, run a job again, wait on a server, or remove
NOT_RUN = {
    "mlrun validate {S} --target azure": "needs the azure target's settings (a subscription)",
    "mlrun plan {S} --target azure --out plan.json": "needs Azure",
    "mlrun apply {S}": "asks for confirmation on a terminal",
    "mlrun apply -y {S} --force train-mlflow": "runs the seed job again (tests/test_local.py does)",
    "mlrun apply plan.json": "needs the azure plan saved above",
    "mlrun apply -y {S} --target azure --detach": "needs Azure",
    "mlrun destroy {S}": "asks for confirmation on a terminal",
    "mlrun destroy -y {S} --target azure": "needs Azure",
    "mlrun destroy --expired --target azure": "needs Azure",
    "mlrun logs {S} train-mlflow -f": "the same as without -f once the run has ended",
    "mlrun invoke specs/deploy.yaml diabetes-online": "needs the deploy lab applied "
    "(tests/test_endpoints.py applies it and calls mlrun invoke)",
    "mlrun invoke specs/deploy.yaml diabetes-online --request-file training/sample-data.json "
    "--deployment blue": "needs the deploy lab applied (tests/test_endpoints.py calls it)",
    "mlrun invoke specs/deploy-batch.yaml diabetes-batch --input training/data/patients": "needs "
    "the batch lab applied (tests/test_batch_endpoints.py calls mlrun invoke --input)",
    "mlrun ui {S}": "serves until stopped (tests/test_report.py runs it)",
    "mlrun ui {S} --port 5001": "serves until stopped",
}


def examples() -> list[tuple[str, str]]:
    return [(cmd, line) for cmd, lines in EXAMPLES.items() for line, _ in lines]


def argv(line: str, cwd) -> list[str]:
    """The example's arguments after `mlrun`, as a shell would pass them (globs expanded, a
    redirection left out)."""
    words = shlex.split(line)
    words = words[: words.index(">")] if ">" in words else words
    assert words[0] == "mlrun"
    out = []
    for w in words[1:]:
        matched = sorted(glob.glob(w, root_dir=cwd)) if any(c in w for c in "*?[") else []
        out += matched or [w]
    return out


def test_every_command_has_examples_of_itself_and_each_parses(mlrun):
    assert set(EXAMPLES) == {"", *cli.commands}
    for command, line in examples():
        args = argv(line, ROOT)
        if command:
            assert args[0] == command, line
        sub = cli.commands[args[0]]
        sub.make_context(args[0], args[1:])  # a UsageError if the shape is wrong
        code, helped, _ = mlrun(*([command] if command else []), "--help")
        assert code == 0 and "Examples:" in helped and line in helped, (command, line)
    assert {k.format(S=SEED) for k in NOT_RUN} <= {line for _, line in examples()}


def test_the_examples_run_against_the_seed_lab(seed_lab, tmp_path, mlrun, monkeypatch):
    lab = tmp_path / "lab"
    shutil.copytree(seed_lab["root"], lab)
    not_run = {k.format(S=SEED): why for k, why in NOT_RUN.items()}
    ran = []
    for _, line in examples():
        if line in not_run:
            print(f"not run: {line}: {not_run[line]}")
            continue
        args = argv(line, lab)
        code, out, err = mlrun(*args, cwd=lab)  # in-process: MLflow loads once
        allowed = (0, 2) if "--detailed-exitcode" in args else (0,)
        assert code in allowed, f"{line}\n{out}\n{err}"
        if line.endswith(" > lab.schema.json"):
            assert out.startswith("{")
        ran.append(line)
    assert len(ran) >= 15, ran
    assert (lab / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert (lab / "lab.yaml").exists()  # import read what export wrote


def test_completion_offers_the_specs_jobs_queries_and_targets(seed_lab):
    def complete(*words: str) -> list[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "runner"],
            cwd=seed_lab["root"],
            capture_output=True,
            text=True,
            env={
                **os.environ,
                "_MLRUN_COMPLETE": "bash_complete",
                "COMP_WORDS": " ".join(["mlrun", *words]),
                "COMP_CWORD": str(len(words)),
            },
        )
        assert proc.returncode == 0, proc.stderr
        return [line.split(",", 1)[1] for line in proc.stdout.splitlines() if line]

    assert complete("logs", SEED, "train") == ["train-mlflow", "train-autolog"]
    assert complete("apply", SEED, "--only", "") == ["train-mlflow", "train-autolog"]
    assert complete("runs", SEED, "") == ["best-auc"]
    assert complete("plan", SEED, "--target", "") == ["local", "azure"]
    assert complete("logs", "missing.yaml", "") == []  # no spec yet: nothing, and no error
    source = subprocess.run(
        [sys.executable, "-m", "runner"],
        env={**os.environ, "_MLRUN_COMPLETE": "bash_source"},
        capture_output=True,
        text=True,
    )
    assert "_MLRUN_COMPLETE=bash_complete" in source.stdout
