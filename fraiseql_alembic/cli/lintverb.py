"""``fraiseql migrate lint``: parse the flags, call :func:`fraiseql_alembic.api.lint`, print
its findings (:mod:`.lintformats`).

A module of its own, loaded through :data:`.app.VERBS` instead of :mod:`.verbs`: lint
reads and parses files and needs neither the engine, the Alembic bridge nor fleet code,
which :mod:`.verbs` (through :mod:`fraiseql_alembic.api`) loads.  It calls the API's
``lint`` where it lives, :mod:`fraiseql_alembic.lintapi` (``api.lint`` is the same
function), so that a run on a few hundred files costs little more than the linting
(``tests/process/test_startup_imports.py`` checks what it loads; bench/lint.py times it).
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import click

from .. import lintapi
from ..settings import resolve
from .app import common_options, handle_errors
from .lintformats import DOCUMENTS, FORMATS, render_findings, summary


@click.command()
@click.argument("files", nargs=-1,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="text",
              show_default=True,
              help="text: one `file:line:column: severity RULE slug: ...` line per finding; "
              "github: GitHub Actions annotations; json, sarif (SARIF 2.1.0, GitHub code "
              "scanning), gitlab (GitLab Code Quality): one JSON document.")
@click.option("--fail-on", type=click.Choice(["info", "warning", "error"]),
              help="Exit 1 only for findings of this severity or worse (default: fail_on "
              "in the lint settings, else warning).")
@click.option("--exit-zero", is_flag=True,
              help="Exit 0 even when findings remain (report only).")
@click.option("--base", metavar="REF",
              help="Git ref (e.g. origin/main): lint only the files added or changed since "
              "it, as `check --base` does.")
@common_options
@handle_errors
def lint(files: tuple[Path, ...], output_format: str, fail_on: str | None, exit_zero: bool,
         base: str | None, path: Path | None, database_url: str | None) -> None:
    """Find risky operations in migrations (default: every file in the folder).

    Rules FQL001 and up (docs/lint.md), each with a severity (error, warning, info)
    that [tool.fraiseql.lint] in pyproject.toml may change.  Silence one for a
    statement with `-- fraiseql-lint: ignore FQL001` in it or on the line above.
    Exit 0 when nothing at --fail-on or worse is found, 1 otherwise.
    """
    settings = resolve(path, database_url, env="")
    if fail_on is not None:
        settings = replace(settings, lint=replace(settings.lint, fail_on=fail_on))
    report = lintapi.lint(settings, files, base=base)
    for line in render_findings(report, output_format):
        click.echo(line)
    if output_format not in DOCUMENTS:
        click.echo(summary(report))
    if report.failing and not exit_zero:
        sys.exit(1)
