"""Each command's "Examples:" block (its help's epilog), and shell completion of the names a spec
defines: jobs, saved queries, targets. tests/test_examples.py runs every example's command line
against a copy of the seed lab (or parses it, where running it would change the world)."""

from __future__ import annotations

import os
from pathlib import Path

SEED = "specs/mlflow-tracking.yaml"

# command -> [(command line, what it does)]
EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "": [
        (f"mlrun validate {SEED}", "check the spec offline"),
        (f"mlrun plan {SEED}", "what apply would change and run"),
        (f"mlrun apply {SEED}", "make it so, run the jobs, report"),
        (f"mlrun destroy {SEED}", "remove what apply made"),
    ],
    "validate": [
        (f"mlrun validate {SEED}", "schema and semantics, every problem at once"),
        (f"mlrun validate {SEED} --target azure", "the azure target's settings too"),
        (f"mlrun validate {SEED} --var suffix=dev", "with a variable set"),
    ],
    "schema": [("mlrun schema > lab.schema.json", "for your editor's YAML support")],
    "plan": [
        (f"mlrun plan {SEED}", "what apply would do on the local target"),
        (f"mlrun plan {SEED} --target azure --out plan.json", "save it for apply"),
        (f"mlrun plan {SEED} --only train-mlflow", "one job"),
        (f"mlrun plan {SEED} --json", "as JSON"),
        (f"mlrun plan {SEED} --detailed-exitcode", "exit 2 when there are changes"),
    ],
    "apply": [
        (f"mlrun apply {SEED}", "plan, ask, then make it so and run the jobs"),
        (f"mlrun apply -y {SEED} --only train-mlflow", "one job, without asking"),
        (f"mlrun apply -y {SEED} --force train-mlflow", "run it again though up to date"),
        ("mlrun apply plan.json", "exactly a saved plan"),
        (f"mlrun apply -y {SEED} --target azure --detach", "start on Azure, do not wait"),
    ],
    "status": [
        (f"mlrun status {SEED}", "resources and latest runs, as the state has them"),
        (f"mlrun status {SEED} --json", "as JSON"),
    ],
    "logs": [
        (f"mlrun logs {SEED} train-mlflow", "the job's latest run's std_log.txt"),
        (f"mlrun logs {SEED} train-mlflow -f", "follow it until the run ends"),
    ],
    "invoke": [
        (
            "mlrun invoke specs/deploy.yaml diabetes-online",
            "call the endpoint with its invoke.request_file",
        ),
        (
            "mlrun invoke specs/deploy.yaml diabetes-online --request-file "
            "training/sample-data.json --deployment blue",
            "one deployment, another request",
        ),
        (
            "mlrun invoke specs/deploy-batch.yaml diabetes-batch --input training/data/patients",
            "a batch endpoint: score these files (a job; prints its output files)",
        ),
    ],
    "destroy": [
        (f"mlrun destroy {SEED}", "plan the removal, ask, remove"),
        (f"mlrun destroy -y {SEED} --target azure", "on Azure, without asking"),
        ("mlrun destroy --expired --target azure", "every lab past its expires_after"),
    ],
    "export": [(f"mlrun export {SEED} -o exported", "az ml YAML files, one per resource")],
    "import": [
        (
            "mlrun import exported/workspace.yml exported/computes/*.yml exported/jobs/*.yml "
            "-o lab.yaml",
            "a spec from az ml files",
        ),
    ],
    "report": [
        (f"mlrun report {SEED}", "jobs, runs side by side, saved queries"),
        (f"mlrun report {SEED} --format html -o report.html", "a page with charts and images"),
        (f"mlrun report {SEED} --format markdown", "for a README or a pull request"),
    ],
    "runs": [
        (f"mlrun runs {SEED} best-auc", "a saved query of the spec"),
        (
            f"mlrun runs {SEED} --filter \"metrics.AUC > 0.8\" --order-by 'start_time DESC'",
            "MLflow's search syntax",
        ),
        (f"mlrun runs {SEED} --json", "as JSON"),
    ],
    "ui": [
        (f"mlrun ui {SEED}", "MLflow's UI on the lab's store"),
        (f"mlrun ui {SEED} --port 5001", "on another port"),
    ],
}

COMPLETION = """\
Shell completion (jobs, queries and targets come from the spec on the command line):

\b
  # bash, in ~/.bashrc
  eval "$(_MLRUN_COMPLETE=bash_source mlrun)"
  # zsh, in ~/.zshrc
  eval "$(_MLRUN_COMPLETE=zsh_source mlrun)"
  # fish, in ~/.config/fish/completions/mlrun.fish
  _MLRUN_COMPLETE=fish_source mlrun | source
"""


def epilog(command: str) -> str:
    """The command's Examples block as click shows it (\b: lines kept as they are)."""
    body = "\n".join(f"  # {what}\n  {line}" for line, what in EXAMPLES[command])
    text = f"Examples:\n\n\b\n{body}\n"
    return text + ("\n" + COMPLETION if command == "" else "")


# --- completion ----------------------------------------------------------------------------------


def _spec_data(ctx) -> dict:
    """The spec named on the command line so far, read as plain YAML ({} if there is none yet, or
    it does not read): completion must never fail or print."""
    path = ctx.params.get("spec") or ctx.params.get("spec_or_plan")
    if not path:  # click could not parse the line so far (an option still wants its value):
        # the first YAML file among the words the shell passed (bash, zsh and fish all do)
        words = os.environ.get("COMP_WORDS", "").split()
        path = next((w for w in words[2:] if w.endswith((".yaml", ".yml"))), None)
    if not path or not Path(path).is_file():
        return {}
    try:
        import yaml

        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001 - a half-written spec completes nothing
        return {}
    return data if isinstance(data, dict) else {}


def _names(data: dict, key: str) -> list[str]:
    found = data.get(key)
    return [str(k) for k in found] if isinstance(found, dict) else []


def complete_jobs(ctx, _param, incomplete: str) -> list:
    from click.shell_completion import CompletionItem

    return [CompletionItem(n) for n in _names(_spec_data(ctx), "jobs") if n.startswith(incomplete)]


def complete_queries(ctx, _param, incomplete: str) -> list:
    from click.shell_completion import CompletionItem

    return [
        CompletionItem(n) for n in _names(_spec_data(ctx), "queries") if n.startswith(incomplete)
    ]


def complete_targets(ctx, _param, incomplete: str) -> list:
    from click.shell_completion import CompletionItem

    names = dict.fromkeys(["local", "azure", *_names(_spec_data(ctx), "targets")])
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]
