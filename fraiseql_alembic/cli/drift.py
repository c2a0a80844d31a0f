"""``fraiseql migrate drift``: parse, call :func:`fraiseql_alembic.api.drift`, print.

Exit codes: 0 the live schema is what the applied migrations build, :data:`EXIT_DRIFT`
it is not, 1 an error, 2 bad usage.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import click

from .. import api
from ..engine.fleet import FAILED, TargetOutcome
from ..project.drift import Difference, shown_value
from ..settings import Settings
from .app import common_options, env_option, handle_errors
from .fleetflags import FleetFlags, check_single, fleet_options, load_fleet
from .options import resolved
from .render import CHECK, PROBLEM_MARK, plural
from .signals import run_interruptible

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
@fleet_options(policy=False)
@env_option
@common_options
@handle_errors
def drift(as_diff: bool, as_json: bool, ignore: tuple[str, ...],
          shadow_database_url: str | None, fleet: FleetFlags, env: str | None,
          path: Path | None, database_url: str | None) -> None:
    """Compare the live schema with what its applied migrations build.

    Builds the schema of the migrations applied to the database in a shadow database,
    reads both from PostgreSQL's catalogs and lists every object that differs.  Exit 0
    when they match, 3 when they differ, 1 on error.
    """
    if as_diff and as_json:
        raise click.UsageError("--diff cannot be combined with --json (the JSON holds "
                               "both sides of each difference)")
    on_step = None if as_json else lambda line: click.echo(f"{line}...", err=True)
    settings = resolved(path, database_url, env)
    environment = settings.environment
    if fleet.targets is None and environment is not None and environment.targets is not None:
        fleet = replace(fleet, targets=environment.targets)
    if fleet.targets is not None:
        _on_targets(settings, fleet, database_url, as_diff=as_diff,
                    as_json=as_json, ignore=ignore or None,
                    shadow_database_url=shadow_database_url, on_step=on_step)
        return
    check_single(fleet)
    report = run_interruptible(lambda token: api.drift(
        settings, shadow_database_url=shadow_database_url,
        ignore=ignore or None, on_step=on_step, cancel=token,
    ))
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


def _on_targets(settings: Settings, flags: FleetFlags, database_url: str | None, *,
                as_diff: bool, as_json: bool, ignore: tuple[str, ...] | None,
                shadow_database_url: str | None, on_step: Callable[[str], None] | None
                ) -> None:
    """``drift --targets``: each target's list as it ends (``[name]`` before each line),
    then a summary; exit 1 when a target could not be compared, else 3 when one drifted."""
    if flags.jobs is not None:
        raise click.UsageError("--jobs cannot be combined with drift: the targets are "
                               "compared one at a time, in one shadow database")
    fleet = load_fleet(flags, database_url)

    def ended(outcome: TargetOutcome[api.DriftReport]) -> None:
        if as_json:
            return
        name = outcome.target.name
        if outcome.result is None:
            click.echo(f"[{name}] {PROBLEM_MARK} Could not compare: {outcome.error}")
            return
        lines = render_drift(outcome.result)
        if as_diff and not outcome.result.identical:
            lines += outcome.result.unified_diff(live_name=name, expected_name="expected")
        for warning in outcome.result.warnings:
            click.echo(f"[{name}] warning: {warning}", err=True)
        for line in lines:
            click.echo(f"[{name}] {line}")

    result = run_interruptible(lambda token: api.drift_fleet(
        settings, fleet, shadow_database_url=shadow_database_url, ignore=ignore,
        on_step=on_step, on_end=ended, cancel=token))
    reports = [outcome.result for outcome in result.outcomes]
    drifted = sum(1 for report in reports if report is not None and not report.identical)
    failed = len(result.having(FAILED))
    if as_json:
        click.echo(json.dumps({"targets": [
            {"target": outcome.target.name, "url": outcome.target.shown_url,
             "state": outcome.state, "error": outcome.error,
             "identical": outcome.result.identical if outcome.result else None,
             "applied": list(outcome.result.applied) if outcome.result else None,
             "differences": [each.as_json() for each in outcome.result.differences]
             if outcome.result else None} for outcome in result.outcomes],
            "totals": {"identical": len(reports) - drifted - failed, "drifted": drifted,
                       "failed": failed}}, indent=2))
    else:
        click.echo(f"{plural(len(reports), 'target')}: {len(reports) - drifted - failed} "
                   f"identical, {drifted} drifted, {failed} could not be compared")
    if failed:
        sys.exit(1)
    if drifted:
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
