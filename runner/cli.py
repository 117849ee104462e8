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
from .examples import complete_jobs, complete_queries, complete_targets, epilog
from .formats import REPORT_FORMATS

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _print_problems(problems: list[Problem]) -> None:
    for p in sorted(problems):
        click.echo(p.render(), err=True)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=epilog(""),
)
@click.version_option(package_name="mlrun", message="mlrun %(version)s")
def cli() -> None:
    """Declarative runner for Azure Machine Learning labs: validate, plan, apply, report,
    destroy."""


@cli.command(epilog=epilog("validate"))
@click.argument("specs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--target",
    default="local",
    show_default=True,
    shell_complete=complete_targets,
    help="Check the settings of this target too.",
)
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Set a variable.")
def validate(specs: tuple[str, ...], target: str, variables: tuple[str, ...]) -> int:
    """Check lab specs offline: schema and semantics, every problem at once."""
    from . import spec as spec_mod, validate as checks

    failed = False
    overrides = spec_mod.parse_vars(variables)
    for path in specs:
        doc = spec_mod.check_file(path, target=target, overrides=overrides)
        _print_problems(doc.problems)
        errors = sum(p.severity == "error" for p in doc.problems)
        warnings = len(doc.problems) - errors
        if errors:
            failed = True
            click.echo(
                f"{display_path(path)}: {plural(errors, 'error')}, {plural(warnings, 'warning')}",
                err=True,
            )
        else:
            more = f", {plural(warnings, 'warning')}" if warnings else ""
            click.echo(f"{path}: ok ({checks.summary(doc.data)}{more})")
    return EXIT_ERROR if failed else EXIT_OK


@cli.command(epilog=epilog("schema"))
def schema() -> None:
    """Print the lab spec's JSON Schema (point your editor at it)."""
    from .validate import SCHEMA_FILE

    click.echo(SCHEMA_FILE.read_text(encoding="utf-8"), nl=False)


def _target_options(f):
    f = click.option(
        "--var", "variables", multiple=True, metavar="NAME=VALUE", help="Set a variable."
    )(f)
    return click.option(
        "--target",
        default="local",
        show_default=True,
        shell_complete=complete_targets,
        help="Where to run: local or azure.",
    )(f)


def _extension(ctx, extend: str | None, saved) -> int:
    """apply --extend's seconds (0 without it), refused where it cannot apply."""
    from . import expiry

    if extend is None:
        return 0
    seconds = expiry.duration(extend)
    if not seconds:
        raise UserError(f"--extend {extend}: a duration, such as 30m, 2h or 1d")
    if saved:
        raise UserError("a saved plan is applied as it is: --extend belongs to mlrun apply SPEC")
    if ctx.spec.expires_after is None:
        raise UserError(f"--extend: {ctx.spec.path} has no expires_after to push out")
    return seconds


def _warn_expired(ctx) -> None:
    """Once the lab's expiry has passed: plan, apply and status say so."""
    from . import expiry

    value = ctx.spec.expires_after
    said = expiry.warning(value, ctx.state.lab, str(ctx.spec.path), expiry.utcnow())
    if said:
        click.echo(said, err=True)


def _open(spec_path: str, target: str, variables, runs: bool = False):
    """The command's context; the spec's warnings echoed (errors stopped the load). `runs`: for
    plan and apply, which refuse what would stop a run; the others (status, logs, destroy, ...)
    need only what the state holds."""
    from .context import open_context
    from .spec import parse_vars

    ctx = open_context(
        spec_path,
        target,
        variables if isinstance(variables, dict) else parse_vars(variables),
        runs=runs,
    )
    _print_problems(ctx.spec.doc.problems)
    return ctx


def _confirm(question: str) -> None:
    if not sys.stdin.isatty():
        raise UserError("this needs a confirmation: run it on a terminal, or pass -y")
    answer = click.prompt(f"{question} Only 'yes' will be accepted", default="", show_default=False)
    if answer.strip() != "yes":
        raise UserError("cancelled: nothing was changed")


@cli.command(epilog=epilog("plan"))
@click.argument("spec", type=click.Path(dir_okay=False))
@_target_options
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (format_version 1).")
@click.option("--out", type=click.Path(dir_okay=False), help="Save the plan for mlrun apply FILE.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when there are changes.")
@click.option(
    "--only",
    multiple=True,
    metavar="JOB",
    shell_complete=complete_jobs,
    help="Plan to run only these jobs.",
)
@click.option(
    "--force",
    multiple=True,
    metavar="JOB",
    shell_complete=complete_jobs,
    help="Plan to rerun these jobs even if up to date.",
)
def plan(spec, target, variables, as_json, out, detailed_exitcode, only, force) -> int:
    """Show what apply would do, changing nothing."""
    from . import cost, planfile, planview

    ctx = _open(spec, target, variables, runs=True)
    ctx.check_jobs(only + force)
    p, _ = ctx.plan(force, only)
    _advise(ctx, p)
    _warn_expired(ctx)
    costs = cost.estimate(ctx.spec) if as_json or out or p.has_changes else None  # (said if so)
    if out:
        planfile.save(p, out, costs)
    if as_json:
        click.echo(json.dumps({**p.to_dict(), "cost": costs}, indent=2))
    else:
        click.echo(planview.render(p, costs), nl=False)
        if out:
            click.echo(f"Saved the plan to {out}: apply exactly it with mlrun apply {out}")
    return EXIT_CHANGES if detailed_exitcode and p.has_changes else EXIT_OK


def _advise(ctx, p) -> None:
    for line in ctx.backend.advise(p):  # "warning: ..." or "note: ..."
        click.echo(line, err=True)


@cli.command(epilog=epilog("apply"))
@click.argument("spec_or_plan", metavar="SPEC|PLANFILE", type=click.Path(dir_okay=False))
@_target_options
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--only",
    multiple=True,
    metavar="JOB",
    shell_complete=complete_jobs,
    help="Run only these jobs.",
)
@click.option(
    "--force",
    multiple=True,
    metavar="JOB",
    shell_complete=complete_jobs,
    help="Rerun these jobs even if up to date.",
)
@click.option("--detach", is_flag=True, help="Start the jobs and return without waiting.")
@click.option(
    "--extend", metavar="DURATION", help="Push the lab's expiry (expires_after) out, e.g. 2h."
)
def apply(spec_or_plan, target, variables, yes, only, force, detach, extend) -> int:
    """Make it so: create what is missing, run the jobs, wait, report."""
    from . import apply as engine, cost, planfile, planview, validate
    from .progress import view_for
    from .spec import parse_vars

    saved = planfile.load(spec_or_plan)
    given = parse_vars(variables)
    if saved:
        ctx = _open(
            saved.spec,
            saved.target,
            planfile.reopen_variables(saved, given, selected=bool(only or force)),
            runs=True,
        )
    else:
        ctx = _open(spec_or_plan, target, given, runs=True)
    ctx.check_jobs(only + force)
    longer = _extension(ctx, extend, saved)
    validate.remember_schema_pass(ctx.spec.doc)  # a re-apply of the same spec skips the check
    with engine.planned(ctx, force, only, saved, spec_or_plan) as locked:
        if locked.lock.taken_over:
            click.echo(
                f"note: took over the lock of pid {locked.lock.taken_over.get('pid')}, which is no "
                "longer running",
                err=True,
            )
        if longer:
            click.echo(f"The lab now expires at {locked.extend(longer)}.")
        _warn_expired(ctx)
        has_changes = locked.plan.has_changes
        click.echo(
            planview.render(locked.plan, cost.estimate(ctx.spec) if has_changes else None), nl=False
        )
        if not locked.needed:
            return EXIT_OK
        _advise(ctx, locked.plan)
        if not (yes or saved):
            _confirm("Apply this plan?")
        view = view_for()
        try:
            outcome = locked.apply(view, detach=detach)
        finally:
            view.close()
    if detach:
        click.echo(
            f"Started {len(outcome.runs)} run(s) and detached: see mlrun status {ctx.spec.path}"
        )
        return EXIT_OK
    if outcome.runs:
        from . import report

        click.echo()
        click.echo(
            report.render_table(report.build(ctx, full=False)),
            nl=False,
        )
    failure = outcome.failure(ctx.spec.path)
    if failure:
        raise UserError(failure)
    return EXIT_OK


@cli.command(epilog=epilog("status"))
@click.argument("spec", type=click.Path(dir_okay=False))
@_target_options
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(spec, target, variables, as_json) -> int:
    """Resources and the latest run of each job."""
    from . import status as view

    ctx = _open(spec, target, variables)
    data = view.build(ctx)
    _warn_expired(ctx)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(view.render(data), nl=False)
    return EXIT_OK


@cli.command(epilog=epilog("logs"))
@click.argument("spec", type=click.Path(dir_okay=False))
@click.argument("job", shell_complete=complete_jobs)
@_target_options
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the run ends.")
def logs(spec, job, target, variables, follow) -> int:
    """Print a job's std output (its latest run)."""
    from .backends.base import LineEnding

    ctx = _open(spec, target, variables)
    out = LineEnding(sys.stdout.buffer)
    try:
        ctx.backend.logs(ctx.latest_run(job), follow, out)
    finally:
        out.end_line()  # a log cut mid-line (a failed job's, often) ends its line
    return EXIT_OK


@cli.command(epilog=epilog("invoke"))
@click.argument("spec", type=click.Path(dir_okay=False))
@click.argument("endpoint")
@_target_options
@click.option(
    "--request-file",
    type=click.Path(dir_okay=False),
    help="The JSON request body (default: the endpoint's invoke.request_file).",
)
@click.option(
    "--input",
    "input_",
    help="Batch: the file or folder to score, or azureml:DATA@latest of the spec's data assets.",
)
@click.option(
    "--deployment",
    help="Call this deployment (else the traffic split picks one; batch: the default one).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="inputs.NAME=VALUE",
    help="Batch, a pipeline deployment: give its component's input NAME (a value, a path or "
    "azureml:DATA@latest); repeatable.",
)
def invoke(spec, endpoint, target, variables, request_file, input_, deployment, sets) -> int:
    """Call an online endpoint and print its answer (az ml online-endpoint invoke), or run a
    batch endpoint's scoring job and say where its output is (az ml batch-endpoint invoke)."""
    from .backends import targets
    from .endpoints import request_file as spec_request

    ctx = _open(spec, target, variables)
    found = ctx.spec.endpoints.get(endpoint)
    if found is None:
        names = ", ".join(sorted(ctx.spec.endpoints)) or "none"
        raise UserError(f"{spec} has no endpoint '{endpoint}' (endpoints: {names})")
    if found.azure_only and targets.get(ctx.target).runs_here:
        raise UserError(f"endpoint {endpoint} {found.azure_only}: call it with --target azure")
    if found.type == "batch":
        return _score(ctx, endpoint, input_, deployment, _input_sets(sets))
    if input_ is not None or sets:
        raise UserError(f"endpoint {endpoint} is an online endpoint: give --request-file")
    path = Path(request_file) if request_file else spec_request(ctx.spec.doc, found)
    if path is None:
        raise UserError(f"endpoint {endpoint} has no invoke.request_file: pass --request-file")
    deployment = deployment or (None if request_file else found.invoke.get("deployment_name"))
    try:
        body = path.read_bytes()
    except OSError as e:
        raise UserError(f"request file {path}: {e.strerror}") from None
    status, answer = ctx.backend.invoke(endpoint, body, deployment)
    click.echo(answer.decode(errors="replace"))
    if status >= 300:
        raise UserError(f"endpoint {endpoint} answered {status}")
    return EXIT_OK


def _input_sets(pairs) -> dict:
    """--set inputs.NAME=VALUE pairs as a mapping (values typed as --var values are)."""
    from .spec import parse_var

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        name = key.removeprefix("inputs.")
        if not sep or not name or name == key:
            raise UserError(f"--set {pair}: expected inputs.NAME=VALUE")
        out[name] = parse_var(value)
    return out


def _score(ctx, endpoint: str, value: str | None, deployment: str | None, named: dict) -> int:
    """mlrun invoke of a batch endpoint: its scoring job (a pipeline deployment's pipeline job),
    and the files of its output (each of the pipeline's outputs)."""
    from . import apply as engine, batch, pipeline_deployments

    found = ctx.spec.endpoints[endpoint]
    dep = found.deployments.get(deployment or found.default_deployment or "")
    comp = dep.component if dep is not None else None
    if comp is None and value is None and not named and not found.invoke.get("input"):
        raise UserError(f"endpoint {endpoint} has no invoke.input: pass --input")

    def say(event) -> None:
        click.echo(f"{event.address}  {event.status}  {event.message}".rstrip())

    run = engine.score(ctx, endpoint, value, deployment, say, named)
    if comp is not None:
        for folder in pipeline_deployments.output_folders(run, comp).values():
            for f in sorted(p for p in folder.rglob("*") if p.is_file()):
                click.echo(str(f))
        return EXIT_OK
    output = batch.output_folder(run)
    for f in sorted(output.iterdir()) if output is not None and output.is_dir() else []:
        click.echo(str(f))
    return EXIT_OK


@cli.command(epilog=epilog("destroy"))
@click.argument("spec", type=click.Path(dir_okay=False), required=False)
@_target_options
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--expired",
    is_flag=True,
    help="Instead of a SPEC: every lab on Azure whose expires_after has passed, by its tags.",
)
def destroy(spec, target, variables, yes, expired) -> int:
    """Delete everything the spec created, in reverse order."""
    from . import apply as engine, planview
    from .progress import view_for

    if expired or spec is None:
        return _destroy_expired(spec, target, yes, expired)
    ctx = _open(spec, target, variables)
    with engine.planned_destroy(ctx) as locked:
        if not locked.plan.changes:
            click.echo("Nothing to destroy.")
            return EXIT_OK
        click.echo(planview.render(locked.plan), nl=False)
        if not yes:
            _confirm("Destroy all of this?")
        view = view_for()
        try:
            locked.destroy(view)
        finally:
            view.close()
    click.echo(f"Destroyed {plural(len(locked.plan.changes), 'thing')}.")
    return EXIT_OK


def _destroy_expired(spec, target: str, yes: bool, expired: bool) -> int:
    """mlrun destroy --expired (for a scheduled CI job): the resource groups of expired labs in
    the subscription (AZURE_SUBSCRIPTION_ID, else the Azure CLI's default), found by their
    mlrun-expires tag, deleted with everything in them."""
    from . import expiry
    from .account import default_subscription
    from .backends import targets

    if not expired:
        raise UserError("mlrun destroy needs a SPEC (or --expired)")
    if spec is not None:
        raise UserError(
            "--expired finds labs by their tags: give no SPEC (mlrun destroy SPEC "
            "destroys that lab)"
        )
    admin = targets.get(target).expired_labs()
    found = default_subscription()
    if found is None:
        raise UserError("--expired needs a subscription: AZURE_SUBSCRIPTION_ID, or az login")
    labs = admin.expired_labs(found[0], expiry.utcnow())
    if not labs:
        click.echo(f"No expired labs in subscription {found[0]}.")
        return EXIT_OK
    for lab in labs:
        click.echo(
            f"  - resource_group.{lab['name']:<30}lab {lab['lab']}, expired {lab['expires']}"
        )
    if not yes:
        _confirm(f"Destroy {plural(len(labs), 'expired lab')} and everything in them?")
    for lab in labs:
        for endpoint in admin.destroy_group(found[0], lab["name"]):  # first: they bill hourly
            click.echo(f"destroyed endpoint {endpoint} (resource_group.{lab['name']})")
        click.echo(f"destroyed resource_group.{lab['name']}")
    click.echo(f"Destroyed {plural(len(labs), 'expired lab')}.")
    return EXIT_OK


@cli.command("export", epilog=epilog("export"))
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="The folder to write workspace.yml, computes/ and jobs/ in.",
)
@_target_options
def export_cmd(spec, out_dir, target, variables) -> int:
    """Write the spec as Azure ML CLI v2 YAML files: one per workspace, compute and job."""
    from . import export as exporting
    from .context import open_context
    from .spec import parse_vars

    overrides = parse_vars(variables)
    s = open_context(
        spec, target, overrides, runs=False
    ).spec  # generated variables as the state keeps them
    _print_problems(s.doc.problems)
    for note in exporting.variable_notes(s, overrides):
        click.echo(note, err=True)
    for path in exporting.export(s, Path(out_dir)):
        click.echo(f"wrote {display_path(str(path))}")
    for note in exporting.closing_notes(s, Path(out_dir)):
        click.echo(note, err=True)
    return EXIT_OK


@cli.command("import", epilog=epilog("import"))
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(dir_okay=False),
    help="The spec file to write.",
)
@click.option("--name", help="The spec's name (default: the MLproject's or workspace's name).")
@click.option(
    "--inline", is_flag=True, help="Copy the az ml files' fields in instead of file: includes."
)
@click.option("--force", is_flag=True, help="Overwrite the output file.")
def import_cmd(files, out, name, inline, force) -> int:
    """Write a lab spec from az ml YAML files (workspace, computes, environments, components,
    data, models, endpoints and deployments, jobs) and MLproject files."""
    from . import importer, spec as spec_mod

    notes, counts = importer.make(
        [Path(f) for f in files], Path(out), name=name, inline=inline, force=force
    )
    for note in notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {display_path(out)} ({counts})")
    doc = spec_mod.check_file(out)
    _print_problems(doc.problems)
    return EXIT_ERROR if any(p.severity == "error" for p in doc.problems) else EXIT_OK


@cli.command("report", epilog=epilog("report"))
@click.argument("spec", type=click.Path(dir_okay=False))
@_target_options
@click.option(
    "--format", "fmt", type=click.Choice(REPORT_FORMATS), default="table", show_default=True
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout."
)
def report_cmd(spec, target, variables, fmt, output) -> int:
    """The lab's results: jobs, runs side by side, saved queries; HTML with charts and images."""
    from . import report
    from .state import atomic_write

    ctx = _open(spec, target, variables)
    text = report.render(report.build(ctx, images=fmt == "html"), fmt)
    if output:
        atomic_write(Path(output), text)
        click.echo(f"Wrote {output}")
    else:
        click.echo(text, nl=False)
    return EXIT_OK


@cli.command(epilog=epilog("runs"))
@click.argument("spec", type=click.Path(dir_okay=False))
@click.argument("query", required=False, shell_complete=complete_queries)
@_target_options
@click.option(
    "--experiment", help="The experiment to search (default: the query's, or the jobs' only one)."
)
@click.option("--filter", "filter_string", help='An MLflow filter, e.g. "metrics.AUC > 0.8".')
@click.option("--order-by", multiple=True, help='A sort key, e.g. "start_time DESC"; repeatable.')
@click.option("--max-results", type=click.IntRange(min=1), help="The most runs to show.")
@click.option("--model", help="Only the runs that made a version of this model of the spec.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def runs(
    spec, query, target, variables, experiment, filter_string, order_by, max_results, model, as_json
) -> int:
    """Search the runs with MLflow's filter syntax, or run a saved query of the spec."""
    from . import report

    ctx = _open(spec, target, variables)
    experiment, found = report.query_runs(
        ctx, query, experiment, filter_string, order_by, max_results, model
    )
    if as_json:
        click.echo(json.dumps({"experiment": experiment, "runs": found}, indent=2))
    else:
        click.echo(report.render_runs(experiment, found), nl=False)
    return EXIT_OK


@cli.command(epilog=epilog("ui"))
@click.argument("spec", type=click.Path(dir_okay=False))
@_target_options
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
def ui(spec, target, variables, port) -> int:
    """MLflow's UI on the target's tracking store, at http://127.0.0.1:PORT (Ctrl-C, SIGTERM or
    SIGHUP stops it and its workers)."""
    from .ui import Server, Stopped, port_taken, stop_signals

    store = _open(spec, target, variables).backend.tracking_uri
    if port_taken(port):
        raise UserError(
            f"port {port} on 127.0.0.1 is in use: stop what holds it, or pick another with --port"
        )
    with stop_signals():
        try:
            server = Server(store, port)
        except Stopped:
            return EXIT_INTERRUPTED
        try:
            click.echo(f"Starting MLflow's server on {store} ...", err=True)

            def waiting(seconds: float) -> None:  # a line every 5 s until the port answers
                if int(seconds) % 5 == 0:
                    click.echo(f"  still starting ({seconds:.0f}s)", err=True)

            server.ready(waiting)
            click.echo(f"MLflow UI on {store}: {server.url} (Ctrl-C to stop)", err=True)
            return EXIT_OK if server.wait() == 0 else EXIT_ERROR
        except (KeyboardInterrupt, Stopped):
            return EXIT_INTERRUPTED
        finally:
            server.stop()


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
    except Exception:  # noqa: BLE001  (an internal bug: the only thing that may print a traceback)
        traceback.print_exc()
        click.echo(
            "mlrun: internal error (a bug in mlrun). Please report it with the traceback above.",
            err=True,
        )
        return EXIT_BUG
