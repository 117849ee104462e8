"""The `mlrun` command line: the one place that turns errors into messages and exit codes."""
from __future__ import annotations

import atexit
import json
import os
import sys
import traceback
from pathlib import Path

import click

from .errors import Problem, SpecError, UserError, display_path, plural

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _print_problems(problems: list[Problem]) -> None:
    for p in sorted(problems):
        click.echo(p.render(), err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="mlrun", message="mlrun %(version)s")
def cli() -> None:
    """Declarative runner for Azure Machine Learning labs: validate, plan, apply, report, destroy."""


@cli.command()
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--target", default="local", show_default=True, help="Check the settings of this target too.")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Set a variable.")
def validate(specs: tuple[str, ...], target: str, variables: tuple[str, ...]) -> int:
    """Check lab specs offline: schema and semantics, every problem at once."""
    from . import spec as spec_mod, validate as checks

    failed = False
    overrides = _parse_vars(variables)
    for path in specs:
        doc, _, _ = spec_mod.read_doc(path, target=target, overrides=overrides)
        checks.check(doc, target=target)
        spec_mod.redact(doc)
        _print_problems(doc.problems)
        errors = sum(p.severity == "error" for p in doc.problems)
        warnings = len(doc.problems) - errors
        if errors:
            failed = True
            click.echo(f"{display_path(path)}: {plural(errors, 'error')}, {plural(warnings, 'warning')}", err=True)
        else:
            data = doc.data
            counts = ", ".join(plural(len(data.get(k) or {}), w) for k, w in
                               (("computes", "compute"), ("jobs", "job"), ("queries", "query")))
            counts = counts.replace("querys", "queries")
            click.echo(f"{path}: ok ({counts}{', ' + plural(warnings, 'warning') if warnings else ''})")
    return EXIT_ERROR if failed else EXIT_OK


@cli.command()
def schema() -> None:
    """Print the lab spec's JSON Schema (point your editor at it)."""
    from .validate import SCHEMA_FILE

    click.echo(SCHEMA_FILE.read_text(encoding="utf-8"), nl=False)


def _target_options(f):
    f = click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Set a variable.")(f)
    return click.option("--target", default="local", show_default=True, help="Where to run: local or azure.")(f)


def _open(spec_path: str, target: str, variables):
    from .context import open_context

    ctx = open_context(spec_path, target, variables if isinstance(variables, dict) else _parse_vars(variables))
    _print_problems(ctx.spec.doc.problems)  # warnings only: errors stopped the load
    return ctx


def _check_jobs(ctx, names) -> None:
    unknown = [n for n in names if n not in ctx.spec.jobs]
    if unknown:
        raise UserError(f"no job named {', '.join(repr(n) for n in unknown)} in {ctx.spec.path} "
                        f"(jobs: {', '.join(ctx.spec.jobs) or 'none'})")


def _confirm(question: str) -> None:
    if not sys.stdin.isatty():
        raise UserError("this needs a confirmation: run it on a terminal, or pass -y")
    answer = click.prompt(f"{question} Only 'yes' will be accepted", default="", show_default=False)
    if answer.strip() != "yes":
        raise UserError("cancelled: nothing was changed")


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@_target_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (format_version 1).")
@click.option("--out", type=click.Path(dir_okay=False), help="Save the plan for mlrun apply FILE.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes.")
@click.option("--only", multiple=True, metavar="JOB", help="Plan to run only these jobs.")
@click.option("--force", multiple=True, metavar="JOB", help="Plan to rerun these jobs even if up to date.")
def plan(spec, target, variables, as_json, out, detailed_exitcode, only, force) -> int:
    """Show what apply would do, changing nothing."""
    from . import plan as planning
    from .state import atomic_write

    ctx = _open(spec, target, variables)
    _check_jobs(ctx, only + force)
    p, _ = ctx.plan(force, only)
    _advise(ctx, p)
    if out:
        atomic_write(Path(out), json.dumps(p.to_dict(), indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(p.to_dict(), indent=2))
    else:
        click.echo(planning.render(p), nl=False)
        if out:
            click.echo(f"Saved the plan to {out}: apply exactly it with mlrun apply {out}")
    return EXIT_CHANGES if detailed_exitcode and p.has_changes else EXIT_OK


def _advise(ctx, p) -> None:
    for line in ctx.backend.advise(p):  # "warning: ..." or "note: ..."
        click.echo(line, err=True)


def _saved_plan(path: str):
    """The Plan in `path` if it is a saved plan file, else None (it is a spec)."""
    from .plan import Plan

    if not path.endswith(".json"):
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return Plan.from_dict(data)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: not a plan file saved by mlrun plan --out ({e})") from None


@cli.command()
@click.argument("spec_or_plan", metavar="SPEC|PLANFILE", type=click.Path(dir_okay=False))
@_target_options
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--only", multiple=True, metavar="JOB", help="Run only these jobs.")
@click.option("--force", multiple=True, metavar="JOB", help="Rerun these jobs even if up to date.")
@click.option("--detach", is_flag=True, help="Start the jobs and return without waiting.")
def apply(spec_or_plan, target, variables, yes, only, force, detach) -> int:
    """Make it so: create what is missing, run the jobs, wait, report."""
    from . import plan as planning
    from .apply import Applier, pending_adoption
    from .progress import view_for
    from .spec import SENSITIVE
    from .state import Lock, State

    saved = _saved_plan(spec_or_plan)
    hidden = {k for k, v in saved.variables.items() if v == SENSITIVE} if saved else set()
    given = _parse_vars(variables)
    if saved and (only or force or set(given) - hidden):  # a plan never holds a secret: --var gives it
        raise UserError("a saved plan is applied as it is: --only, --force and --var belong to mlrun plan")
    if saved:
        kept = {k: v for k, v in saved.variables.items() if k not in hidden}
        ctx = _open(saved.spec, saved.target, {**kept, **given})
    else:
        ctx = _open(spec_or_plan, target, given)
    _check_jobs(ctx, only + force)
    with Lock(ctx.state.path, "mlrun apply") as lock:
        if lock.taken_over:
            click.echo(f"note: took over the lock of pid {lock.taken_over.get('pid')}, which is no longer "
                       "running", err=True)
        ctx.state = State.load(ctx.state.path, ctx.spec.name, ctx.target)  # as it is now, under the lock
        p, model = ctx.plan(force, only)
        if saved:
            if saved.digest != p.digest:
                raise UserError(f"the saved plan {spec_or_plan} is stale: the spec or its files changed "
                                "since it was made; run mlrun plan again")
            if (saved.lineage, saved.serial) != (p.lineage, p.serial):
                raise UserError(f"the saved plan {spec_or_plan} is stale: the state changed since it was "
                                "made; run mlrun plan again")
            p = saved
        if not p.has_changes and not pending_adoption(ctx.state, ctx.backend):
            click.echo(planning.render(p), nl=False)
            return EXIT_OK
        click.echo(planning.render(p), nl=False)
        _advise(ctx, p)
        if not (yes or saved):
            _confirm("Apply this plan?")
        ctx.state.set_variables({k: v for k, v in ctx.spec.generated.items() if k not in ctx.state.data["variables"]})
        view = view_for()
        try:
            outcome = Applier(p, ctx.spec, model, ctx.backend, ctx.state, view, detach=detach).run()
        finally:
            view.close()
    return _after_apply(ctx, outcome, detach)


def _after_apply(ctx, outcome, detach: bool) -> int:
    from . import report
    from .plan import short

    if detach:
        click.echo(f"Started {len(outcome.runs)} run(s) and detached: see mlrun status {ctx.spec.path}")
        return EXIT_OK
    if outcome.runs:
        click.echo()
        click.echo(report.render_table(report.build(ctx.spec, ctx.state, ctx.backend, full=False)), nl=False)
    if outcome.failed:
        details = ", ".join(f"{n} (run {short(outcome.runs[n]['id'])}: {outcome.runs[n].get('error') or outcome.runs[n]['status']})"
                            for n in outcome.failed)
        raise UserError(f"{plural(len(outcome.failed), 'job')} did not complete: {details}; "
                        f"see mlrun logs {ctx.spec.path} {outcome.failed[0]}")
    return EXIT_OK


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@_target_options
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(spec, target, variables, as_json) -> int:
    """Resources and the latest run of each job."""
    from . import status as view

    data = view.build(_open(spec, target, variables))
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(view.render(data), nl=False)
    return EXIT_OK


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.argument("job")
@_target_options
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the run ends.")
def logs(spec, job, target, variables, follow) -> int:
    """Print a job's std output (its latest run)."""
    ctx = _open(spec, target, variables)
    if job not in ctx.state.jobs:
        _check_jobs(ctx, (job,))  # a job of the spec that has not run yet is said below
    run = ctx.state.latest(job)
    if run is None:
        raise UserError(f"job {job} has not run yet")
    ctx.backend.logs(run, follow, sys.stdout.buffer)
    return EXIT_OK


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@_target_options
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def destroy(spec, target, variables, yes) -> int:
    """Delete everything the spec created, in reverse order."""
    from . import plan as planning
    from .apply import Applier
    from .progress import view_for
    from .state import Lock, State

    ctx = _open(spec, target, variables)
    with Lock(ctx.state.path, "mlrun destroy"):
        ctx.state = State.load(ctx.state.path, ctx.spec.name, ctx.target)
        snap = ctx.state.snapshot()
        actual = {"resources": snap["resources"], "lineage": snap["lineage"], "serial": snap["serial"],
                  "jobs": {n: {**r, **ctx.backend.poll(r)} for n in snap["jobs"] if (r := ctx.state.latest(n))}}
        p = planning.destroy_plan(actual, target=ctx.target, spec=str(ctx.spec.path), tracking=ctx.backend.tracking_uri)
        if not p.changes:
            click.echo("Nothing to destroy.")
            return EXIT_OK
        click.echo(planning.render(p), nl=False)
        if not yes:
            _confirm("Destroy all of this?")
        view = view_for()
        try:
            Applier(p, ctx.spec, {}, ctx.backend, ctx.state, view).run()
        finally:
            view.close()
        for name in ctx.spec.generated.keys() | set(ctx.state.data["variables"]):
            ctx.state.data["variables"].pop(name, None)  # new names next time: Azure keeps deleted ones a while
        ctx.state.save()
    click.echo(f"Destroyed {plural(len(p.changes), 'thing')}.")
    return EXIT_OK


@cli.command("export")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="The folder to write workspace.yml, computes/ and jobs/ in.")
@_target_options
def export_cmd(spec, out_dir, target, variables) -> int:
    """Write the spec as Azure ML CLI v2 YAML files: one per workspace, compute and job."""
    from . import export as exporting
    from .context import open_context

    overrides = _parse_vars(variables)
    s = open_context(spec, target, overrides, runs=False).spec  # generated variables as the state keeps them
    _print_problems(s.doc.problems)
    for name, value in s.generated.items():
        if name in overrides:
            continue
        click.echo(f"note: variable {name} was generated for this export only ({value}); pass --var {name}=VALUE "
                   "to choose it", err=True)
    for path in exporting.export(s, Path(out_dir)):
        click.echo(f"wrote {display_path(str(path))}")
    for name, job in s.jobs.items():
        note = exporting.secret_note(job, display_path(str(Path(out_dir) / "jobs" / f"{name}.yml")))
        if note:
            click.echo(note, err=True)
    left = [f"{k} ({why})" for k, why in exporting.NOT_EXPORTED.items() if s.doc.data.get(k)]
    if left:
        click.echo(f"not exported: {', '.join(left)}", err=True)
    return EXIT_OK


@cli.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False), help="The spec file to write.")
@click.option("--name", help="The spec's name (default: the MLproject's or workspace's name).")
@click.option("--inline", is_flag=True, help="Copy the az ml files' fields in instead of file: includes.")
@click.option("--force", is_flag=True, help="Overwrite the output file.")
def import_cmd(files, out, name, inline, force) -> int:
    """Write a lab spec from az ml workspace, compute and job YAML files and MLproject files."""
    from . import importer, spec as spec_mod, validate as checks

    out_path = Path(out)
    if out_path.exists() and not force:
        raise UserError(f"{display_path(out)}: already exists (pass --force to overwrite)")
    doc, notes = importer.build([Path(f) for f in files], out_path, name=name, inline=inline)
    importer.write(doc, out_path, force=True)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    counts = ", ".join(plural(len(doc.get(k) or {}), w) for k, w in (("computes", "compute"), ("jobs", "job")))
    click.echo(f"wrote {display_path(out)} ({counts})")
    checked, _, _ = spec_mod.read_doc(out_path)
    checks.check(checked)
    _print_problems(checked.problems)
    return EXIT_ERROR if any(p.severity == "error" for p in checked.problems) else EXIT_OK


FORMATS = ("table", "json", "markdown", "html")


@cli.command("report")
@click.argument("spec", type=click.Path(dir_okay=False))
@_target_options
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
def report_cmd(spec, target, variables, fmt, output) -> int:
    """The lab's results: jobs, runs side by side, saved queries; HTML with charts and images."""
    from . import report
    from .state import atomic_write

    ctx = _open(spec, target, variables)
    if not ctx.state.jobs:
        raise UserError(f"nothing has run yet: run mlrun apply {spec}")
    data = report.build(ctx.spec, ctx.state, ctx.backend, images=fmt == "html")
    if fmt == "html":
        from .report_html import render_html

        text = render_html(data)
    else:
        text = {"table": report.render_table, "json": report.render_json, "markdown": report.render_markdown}[fmt](data)
    if output:
        atomic_write(Path(output), text)
        click.echo(f"Wrote {output}")
    else:
        click.echo(text, nl=False)
    return EXIT_OK


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.argument("query", required=False)
@_target_options
@click.option("--experiment", help="The experiment to search (default: the query's, or the jobs' only one).")
@click.option("--filter", "filter_string", help="An MLflow filter, e.g. \"metrics.AUC > 0.8\".")
@click.option("--order-by", multiple=True, help="A sort key, e.g. \"start_time DESC\"; repeatable.")
@click.option("--max-results", type=click.IntRange(min=1), help="The most runs to show.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def runs(spec, query, target, variables, experiment, filter_string, order_by, max_results, as_json) -> int:
    """Search the runs with MLflow's filter syntax, or run a saved query of the spec."""
    from . import report

    ctx = _open(spec, target, variables)
    saved = {}
    if query:
        if query not in ctx.spec.queries:
            raise UserError(f"no query named '{query}' in {spec} (queries: {', '.join(ctx.spec.queries) or 'none'})")
        saved = ctx.spec.queries[query]
    experiments = list(dict.fromkeys(ctx.spec.experiment(j) for j in ctx.spec.jobs.values()))
    experiment = experiment or saved.get("experiment") or (experiments[0] if len(experiments) == 1 else None)
    if not experiment:
        raise UserError(f"which experiment? pass --experiment (experiments: {', '.join(experiments) or 'none'})")
    if not ctx.state.jobs:
        raise UserError(f"nothing has run yet: run mlrun apply {spec}")
    order = list(order_by) or report.order_keys(saved.get("order_by"))
    found = report.search(ctx.backend.client(), experiment, filter_string if filter_string is not None
                          else saved.get("filter", ""), order, max_results or saved.get("max_results", 100))
    if as_json:
        click.echo(json.dumps({"experiment": experiment, "runs": found}, indent=2))
    else:
        click.echo(report.render_runs(experiment, found), nl=False)
    return EXIT_OK


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@_target_options
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
def ui(spec, target, variables, port) -> int:
    """MLflow's UI on the target's tracking store, at http://127.0.0.1:PORT (Ctrl-C stops it)."""
    import os
    import subprocess

    ctx = _open(spec, target, variables)
    store = ctx.backend.tracking_uri
    args = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(args, env=env, start_new_session=True, stdin=subprocess.DEVNULL)
    click.echo(f"MLflow UI on {store}: http://127.0.0.1:{port} (Ctrl-C to stop)", err=True)
    try:
        return EXIT_OK if proc.wait() == 0 else EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    finally:
        _stop_group(proc)


def _stop_group(proc) -> None:
    """Stop a process and everything in its process group: TERM, then KILL after a grace."""
    import os
    import signal
    import time

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, so an empty group reads as gone
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def _parse_vars(pairs: tuple[str, ...]) -> dict:
    from .spec import parse_var

    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UserError(f"--var {pair}: expected NAME=VALUE")
        out[name] = parse_var(value)
    return out


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command, map every outcome to an exit code."""
    code = run(argv)
    if "mlflow" in sys.modules or "azure.ai.ml" in sys.modules:
        # Tearing down the thousands of objects those SDKs made costs 0.4-0.7 s and serves no one:
        # the state is saved (fsynced), MLflow's store committed; run the exit handlers, flush, go.
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def run(argv: list[str] | None = None) -> int:
    try:
        code = cli.main(args=argv, prog_name="mlrun", standalone_mode=False)
        return code if isinstance(code, int) else EXIT_OK
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.Abort as e:
        if isinstance(e.__cause__, KeyboardInterrupt):
            return EXIT_INTERRUPTED
        click.echo("Aborted.", err=True)
        return EXIT_ERROR
    except click.ClickException as e:
        e.show()
        return EXIT_ERROR
    except SpecError as e:
        _print_problems(e.problems)
        return EXIT_ERROR
    except UserError as e:
        click.echo(f"error: {e}", err=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except Exception:  # an internal bug: the only thing that may print a traceback
        traceback.print_exc()
        click.echo("mlrun: internal error (a bug in mlrun). Please report it with the traceback above.",
                   err=True)
        return EXIT_BUG
