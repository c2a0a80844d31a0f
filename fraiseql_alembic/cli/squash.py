"""``fraiseql migrate squash --through N``: parse, call :func:`fraiseql_alembic.api.squash`,
print what was written (or would be)."""

from __future__ import annotations

from pathlib import Path

import click

from .. import api
from ..errors import shown_path
from .app import common_options, env_option, handle_errors
from .options import announce, resolved
from .render import CHECK, plural
from .signals import run_interruptible


@click.command()
@click.option("--through", "through", required=True, metavar="N",
              help="The last migration the baseline replaces (003, 3 or its file name); "
              "every known database must have applied it.")
@click.option("--targets", "targets", type=click.Path(path_type=Path), default=None,
              metavar="FILE", help="Also check every database of this targets file (see "
              "docs/fleet.md), schema-per-tenant ones too.")
@click.option("--shadow-database-url", metavar="URL", default=None,
              help="An empty database to build 001..N in, emptied before and after "
              "(default: $FRAISEQL_SHADOW_DATABASE_URL, else a throwaway PostgreSQL).")
@click.option("--dry-run", is_flag=True,
              help="Check the folder and the databases, say what would be written and "
              "removed; build and write nothing.")
@env_option
@common_options
@handle_errors
def squash(through: str, targets: Path | None, shadow_database_url: str | None,
           dry_run: bool, env: str | None, path: Path | None, database_url: str | None
           ) -> None:
    """Replace migrations 001..N by one baseline file built from a shadow database.

    Refused unless every database given (--database-url / DATABASE_URL, --targets) has
    applied N unchanged.  The files it replaces are removed (git keeps them).
    """
    settings = resolved(path, database_url, env)
    environment = settings.environment
    if targets is None and environment is not None:
        targets = environment.targets  # a fleet environment: its targets are the databases
    announce(settings)
    fleet = api.fleet(targets) if targets is not None else None
    result = run_interruptible(lambda token: api.squash(
        settings, through, fleet=fleet, shadow_database_url=shadow_database_url,
        dry_run=dry_run, on_step=lambda line: click.echo(f"{line}...", err=True),
        cancel=token))
    baseline = shown_path(result.baseline)
    replaced = f"{result.squashed[0]} .. {result.squashed[-1]} ({plural(len(result.squashed))})"
    checked = (f"{plural(len(result.targets), 'database')} checked, each at "
               f"{result.version} or past it")
    if result.dry_run:
        click.echo(f"Dry run: would write {baseline} in place of {replaced}, and remove "
                   + ", ".join(path.name for path in result.removed) + f"; {checked}. "
                   "Nothing was built or written")
        return
    click.echo(f"{CHECK} Wrote {baseline}: the baseline of {replaced}, built in "
               f"{result.shadow}; a fresh database built from it dumps the same")
    click.echo(f"Removed {', '.join(path.name for path in result.removed)} (git keeps them); "
               f"{checked}. Commit the change: git add -A {shown_path(result.baseline.parent)}")
