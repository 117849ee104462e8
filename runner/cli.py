"""The `mlrun` command line: the one place that turns errors into messages and exit codes."""
from __future__ import annotations

import sys
import traceback

import click

from .errors import Problem, SpecError, UserError, display_path

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_BUG, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


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
        _print_problems(doc.problems)
        errors = sum(p.severity == "error" for p in doc.problems)
        warnings = len(doc.problems) - errors
        if errors:
            failed = True
            click.echo(f"{display_path(path)}: {_plural(errors, 'error')}, {_plural(warnings, 'warning')}", err=True)
        else:
            data = doc.data
            counts = ", ".join(_plural(len(data.get(k) or {}), w) for k, w in
                               (("computes", "compute"), ("jobs", "job"), ("queries", "query")))
            counts = counts.replace("querys", "queries")
            click.echo(f"{path}: ok ({counts}{', ' + _plural(warnings, 'warning') if warnings else ''})")
    return EXIT_ERROR if failed else EXIT_OK


@cli.command()
def schema() -> None:
    """Print the lab spec's JSON Schema (point your editor at it)."""
    from .validate import SCHEMA_FILE

    click.echo(SCHEMA_FILE.read_text(encoding="utf-8"), nl=False)


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
    sys.exit(run(argv))


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
