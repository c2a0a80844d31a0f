"""The checks made before a run moves the database, on both paths: our API's verbs and
the plain ``alembic upgrade`` through our env.py (which must not import :mod:`.api`).

Pure: they read a :class:`~fraiseql_alembic.engine.status.StatusReport` and the parsed files,
and raise one of our errors; nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine import status as status_view
from ..errors import (
    ChecksumMismatchError,
    MigrationFileError,
    MigrationLayoutError,
    shown_path,
)
from ..sql.statements import split_statements

if TYPE_CHECKING:
    from ..sql.parse import ParsedMigration


def sql_migration(script: Any) -> ParsedMigration | None:
    """The parsed SQL file behind an Alembic ``Script``, or None for a ``.py`` revision."""
    migration: ParsedMigration | None = getattr(script.module, "fraiseql_migration", None)
    return migration


def validate_pending(rows: Sequence[status_view.StatusRow], *, standard_strings: bool,
                     upgrade: bool = True) -> None:
    """Read every SQL migration's section that a run will execute (up sections of pending
    rows, or down sections of those to roll back) as it would run, before the first one
    runs: a file that cannot be (a COMMIT in its middle, an unterminated quote, a psql
    meta-command) stops the run with nothing done, not after the files before it."""
    for row in rows:
        migration = row.migration
        section = None if migration is None else migration.up if upgrade else migration.down
        if migration is None or section is None:
            continue
        try:
            split_statements(migration, section, standard_strings=standard_strings)
        except MigrationFileError as err:
            done = "applied" if upgrade else "rolled back"
            raise MigrationFileError(err.filename, f"{err.detail}. Nothing was {done}",
                                     err.line) from err


def irreversible_message(migration: ParsedMigration) -> str:
    """Why a migration without a down section cannot be rolled back, and the way out."""
    return (
        f"Migration {migration.name.filename} has no down section, so it cannot be rolled "
        "back. Add a `-- migrate:down` line at the end of the file followed by the SQL that "
        "undoes it (e.g. DROP TABLE ...), then run the command again."
    )


def refuse_inconsistent(report: status_view.StatusReport, folder: Path | None = None) -> None:
    """Refuse to migrate past a changed applied file, one that never ran here, or one
    merged out of order (it branches off a revision the database has moved past), or an
    ``alembic_version`` whose rows cannot all be right."""
    if report.version_rows_problem is not None:
        raise MigrationLayoutError(
            f"Refusing to migrate: {report.version_rows_problem}. Nothing was applied"
        )
    for row in report.rows:
        if row.state == status_view.MODIFIED:
            raise ChecksumMismatchError(
                f"Migration {row.filename} checksum mismatch: the file changed after it was "
                f"applied{when_applied(row)}. Don't edit applied migrations: restore the file "
                f"(e.g. `git checkout -- {shown(folder, row.filename)}`) and put the change "
                "in a new "
                "migration (`fraiseql migrate create fix_...`); if the edit is harmless (e.g. a "
                f"comment), accept it with `fraiseql migrate repair {row.version}`"
            )
        if row.state == status_view.OUT_OF_ORDER or (
            row.state == status_view.UNTRACKED and row.fork is not None
        ):
            raise MigrationLayoutError(
                f"Refusing to migrate: {status_view.out_of_order_message(row)}. "
                "Nothing was applied"
            )
        if row.state == status_view.UNTRACKED:
            raise MigrationLayoutError(
                f"Refusing to apply {row.filename}: fraiseql_migrations says it was applied"
                f"{when_applied(row)}, but alembic_version does not (was alembic_version edited "
                "by hand?). If its changes are in the database, record that with `alembic stamp "
                f"{row.version}`; if they were undone by hand, run `fraiseql migrate status` "
                "and see docs/troubleshooting.md. Nothing was applied"
            )
        if row.state == status_view.BELOW_BASELINE:
            raise MigrationLayoutError(
                f"Refusing to migrate: {status_view.below_baseline_message(row)}. "
                "Nothing was applied"
            )
        if row.state == status_view.UNRECORDED:
            raise MigrationLayoutError(
                f"Migration {row.filename} sits below migrations this database already has "
                "but never ran here: it was merged late (numbered below the applied ones), "
                "or its row in fraiseql_migrations was deleted. If it is new, renumber it "
                "above the last applied migration (e.g. `git mv`); if its changes are in the "
                f"database, record it with `fraiseql migrate mark-applied {row.version}`. "
                "Nothing was applied"
            )


def shown(folder: Path | None, filename: str) -> str:
    """``migrations/003_x.sql``: the file as seen from the current directory."""
    return filename if folder is None else shown_path(folder / filename)


def when_applied(row: status_view.StatusRow) -> str:
    return f" on {row.applied_at:%Y-%m-%d %H:%M:%S}" if row.applied_at else ""
