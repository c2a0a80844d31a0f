"""``fraiseql migrate drift``: parse, call :func:`fraiseql_alembic.api.drift`, print.

Exit codes: 0 the live schema is what the applied migrations build, :data:`EXIT_DRIFT`
it is not, 1 an error, 2 bad usage.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .. import api
from ..project.drift import Difference, shown_value
from ..settings import resolve
from .app import common_options, handle_errors
from .render import CHECK, PROBLEM_MARK, plural

#: The exit code when the live schema differs from what its applied migrations build.
EXIT_DRIFT = 3
_SHORT = 60  # longer values (or several lines) are shown by --diff, not in the list


@click.command()
@click.option("--diff", "as_diff", is_flag=True,
              help="Also print a unified diff of the two schemas, normalised (- what the "
              "migrations build, + the live database).")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@click.option("--ignore", "ignore", multiple=True, metavar="PATTERN",
              help="Leave out objects whose name matches the glob (KIND:GLOB for one kind; "
              "repeatable; replaces [tool.fraiseql.drift] ignore).")
@click.option("--shadow-database-url", metavar="URL", default=None,
              help="An empty database to build the applied migrations' schema in, emptied "
              "before and after (default: $FRAISEQL_SHADOW_DATABASE_URL, else a throwaway "
              "PostgreSQL).")
@common_options
@handle_errors
def drift(as_diff: bool, as_json: bool, ignore: tuple[str, ...],
          shadow_database_url: str | None, path: Path | None, database_url: str | None
          ) -> None:
    """Compare the live schema with what its applied migrations build.

    Builds the schema of the migrations applied to the database in a shadow database,
    reads both from PostgreSQL's catalogs and lists every object that differs.  Exit 0
    when they match, 3 when they differ, 1 on error.
    """
    if as_diff and as_json:
        raise click.UsageError("--diff cannot be combined with --json (the JSON holds "
                               "both sides of each difference)")
    report = api.drift(
        resolve(path, database_url), shadow_database_url=shadow_database_url,
        ignore=ignore or None,
        on_step=None if as_json else lambda line: click.echo(f"{line}...", err=True),
    )
    if as_json:
        click.echo(json.dumps({
            "identical": report.identical, "applied": list(report.applied),
            "shadow": report.shadow, "ignore": list(report.ignore),
            "warnings": list(report.warnings),
            "differences": [difference.as_json() for difference in report.differences],
        }, indent=2))
    else:
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)
        for line in render_drift(report):
            click.echo(line)
        if as_diff and not report.identical:
            click.echo("")
            for line in report.unified_diff(
                    live_name="live database",
                    expected_name=f"applied migrations (built in {report.shadow})"):
                click.echo(line)
    if not report.identical:
        sys.exit(EXIT_DRIFT)


def render_drift(report: api.DriftReport) -> list[str]:
    """The readable list: a line per object that differs, its attributes below it."""
    built = f"the {plural(len(report.applied))} applied to it"
    if report.identical:
        return [f"{CHECK} No drift: the database's schema is what {built} build"]
    lines = [f"{PROBLEM_MARK} Drift: {plural(len(report.differences), 'difference')} between "
             f"the database and what {built} build"]
    for difference in report.differences:
        lines.extend(_lines(difference))
    return lines


def _lines(difference: Difference) -> list[str]:
    head = f"  {difference.kind} {difference.name}"
    if difference.state == "missing":
        return [f"{head}: missing from the database (the migrations create it)"]
    if difference.state == "unexpected":
        return [f"{head}: in the database only (no applied migration creates it)"]
    lines = [f"{head}: changed"]
    live, expected = difference.live or {}, difference.expected or {}
    for key in difference.changed:
        now, wanted = shown_value(live.get(key)), shown_value(expected.get(key))
        if "\n" in now + wanted or len(now) > _SHORT or len(wanted) > _SHORT:
            lines.append(f"      {key} differs (--diff shows how)")
        else:
            lines.append(f"      {key}: {now} in the database, {wanted} expected")
    return lines
