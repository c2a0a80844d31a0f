"""Planning: what a verb would do to the database, and what it refuses to do.

Pure: every function takes the chain of revisions (base first) and a
:class:`~fraiseql_alembic.engine.database.DatabaseState` (or the
:class:`~fraiseql_alembic.engine.status.StatusReport` :func:`reconcile` makes of them)
and returns a plan or raises one of our errors.  Nothing here opens a connection, so
each rule is unit-tested without a database (tests/unit/test_plan.py), the way
Django tests ``MigrationExecutor.migration_plan``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import (
    IrreversibleMigrationError,
    MigrationError,
    MigrationFileError,
    MigrationLayoutError,
    UsageError,
    plural,
    shown_path,
)
from . import history
from . import status as status_view
from .preflight import (
    irreversible_message,
    refuse_inconsistent,
    sql_migration,
    validate_pending,
    when_applied,
)
from .status import StatusReport, StatusRow

if TYPE_CHECKING:
    from .database import DatabaseState


class Script(Protocol):
    """What planning reads of a revision: Alembic's ``Script``, or the bridge's
    ``SqlRevision`` for a folder of SQL files alone."""

    @property
    def revision(self) -> str: ...
    @property
    def down_revision(self) -> str | Sequence[str] | None: ...
    @property
    def path(self) -> str: ...
    @property
    def module(self) -> object:
        """The revision's module; a SQL file's has ``fraiseql_migration``."""


def display_name(script: Script) -> str:
    """The file name of a revision: ``003_add_indexes.sql``, or the ``.py`` file's."""
    migration = sql_migration(script)
    return migration.name.filename if migration is not None else os.path.basename(script.path)


def reconcile(
    scripts: Sequence[Script], state: DatabaseState, ignored: Iterable[Path] = ()
) -> StatusReport:
    """The folder's revisions (base first) joined with where the database is: one row
    per revision, and the files passed over (``ignored``)."""
    report = status_view.build(scripts, state, sql_migration, display_name)
    return status_view.with_ignored(report, ignored)


@dataclass(frozen=True)
class PlannedMigration:
    """A migration that would run, with the SQL it would send."""

    version: str
    filename: str
    sql: str | None  # None for a .py revision


@dataclass(frozen=True)
class UpgradePlan:
    """What ``up`` would do: ``planned`` in order, of which the first ``len(marked)``
    are stamped (marked applied by hand), not run."""

    planned: tuple[PlannedMigration, ...]
    warnings: tuple[str, ...] = field(default=())
    marked: tuple[str, ...] = field(default=())


def plan_upgrade(
    report: StatusReport, heads: Sequence[str], steps: int | None, *, folder: Path,
    validate: bool = True, standard_strings: bool = True,
) -> UpgradePlan:
    """What ``up`` would run from ``report`` (the database at ``heads``).

    Refuses inconsistent states (:func:`~.preflight.refuse_inconsistent`), a folder with
    several heads, and a database whose head file is gone.  ``validate`` reads every
    pending file first (a rehearsal reports an unreadable file as that migration's
    outcome instead); ``standard_strings`` is the session's setting it is read with.
    """
    refuse_inconsistent(report, folder)
    if report.branched:
        raise MigrationLayoutError(
            f"{status_view.branched_message(report.folder_heads)}. Nothing was applied"
        )
    lost_heads = [row for row in report.rows
                  if row.state == status_view.MISSING and row.version in heads]
    if lost_heads:
        raise MigrationLayoutError(
            f"The database is at {lost_heads[0].filename}, whose file is missing from "
            f"{folder}; restore it (e.g. from git) before applying anything after it, or, if "
            "it was deleted on purpose, record that with `fraiseql migrate repair --missing "
            f"{lost_heads[0].version}`"
        )
    pending = [row for row in report.rows if row.state == status_view.PENDING]
    marked = leading_manual_marks(pending)
    if validate:
        validate_pending(pending[len(marked):], standard_strings=standard_strings)
    if steps is not None:
        pending = pending[:steps]
    marked = marked[: len(pending)]
    planned = tuple(
        PlannedMigration(
            row.version,
            row.filename,
            migration.up.sql.strip() if (migration := row.migration) is not None else None,
        )
        for row in pending
    )
    for row in pending[len(marked) :]:
        if row.migration is not None and row.migration.up.is_empty:
            raise MigrationFileError(
                row.filename,
                "has no SQL to run (the up section is empty or only comments); write the "
                "migration's SQL below `-- migrate:up` or delete the file. Nothing was applied",
            )
    return UpgradePlan(planned, tuple(status_view.warnings(report)), tuple(marked))


def leading_manual_marks(pending: Sequence[StatusRow]) -> list[str]:
    """Versions marked applied by hand (the spec's INSERT) at the front of the pending list.

    They are stamped, not run.  A hand mark behind an unmarked pending migration is
    refused: stamping it would skip the one before it.
    """
    marked: list[str] = []
    for index, row in enumerate(pending):
        if row.marked_by_hand is None:
            later = next((later for later in pending[index:] if later.marked_by_hand), None)
            if later is not None:
                raise MigrationLayoutError(
                    f"{later.filename} is marked applied by hand in fraiseql_migrations, but "
                    f"{row.filename} before it is not applied; apply or mark {row.filename} "
                    "first, or delete the hand-made row"
                )
            break
        marked.append(row.version)
    return marked


def plan_downgrade(
    report: StatusReport, steps: int, *, folder: Path, standard_strings: bool = True,
) -> tuple[tuple[PlannedMigration, ...], str]:
    """What ``steps`` rollbacks would undo, newest first, and the revision they end at
    (``base`` when everything is rolled back)."""
    if report.version_rows_problem is not None:
        raise MigrationLayoutError(
            f"Refusing to roll back: {report.version_rows_problem}. Nothing was rolled back"
        )
    partial = [row for row in report.rows if row.partial is not None and not row.applied]
    if partial:
        raise MigrationLayoutError(
            f"{partial[0].filename} is partly applied (up to line "
            f"{partial[0].partial.next_line - 1 if partial[0].partial else '?'}); finish it "
            "with `fraiseql migrate up` before rolling back anything, so that the rollback "
            "starts from a known state. Nothing was rolled back"
        )
    applied = [row for row in report.rows if row.applied]
    missing = [row for row in applied if row.state == status_view.MISSING]
    if missing:
        raise MigrationLayoutError(
            f"Applied migration {missing[-1].filename} is missing from {folder}; "
            "restore the file (e.g. from git) before rolling back, or, if it was deleted on "
            f"purpose, record that with `fraiseql migrate repair --missing "
            f"{missing[-1].version}`"
        )
    if not applied:
        raise MigrationError("Nothing to roll back: no migration is applied to this database")
    if steps > len(applied):
        raise UsageError(
            f"--steps {steps} is more than the {len(applied)} applied migration(s); "
            f"use --steps {len(applied)} to roll back everything"
        )
    plan_rows = list(reversed(applied))[:steps]
    for row in plan_rows:
        if row.migration is not None and row.migration.squashes:
            raise IrreversibleMigrationError(
                f"{row.filename} is a baseline (`fraiseql migrate squash` made it of "
                f"{plural(len({entry.filename for entry in row.migration.squashes}), 'file')}"
                "): rolling back below it is refused, since the files it replaced "
                "are gone. Restore the database from a backup, or write a new migration "
                "that undoes what you need. Nothing was rolled back")
        if row.migration is not None and not row.migration.reversible:
            raise IrreversibleMigrationError(
                irreversible_message(row.migration) + " Nothing was rolled back."
            )
    validate_pending(plan_rows, upgrade=False, standard_strings=standard_strings)
    planned = tuple(
        PlannedMigration(
            row.version,
            row.filename,
            row.migration.down.sql.strip()
            if row.migration is not None and row.migration.down is not None
            else None,
        )
        for row in plan_rows
    )
    target_row = applied[len(applied) - steps - 1] if steps < len(applied) else None
    return planned, target_row.version if target_row is not None else "base"


def find_row(report: StatusReport, given: str, folder: Path) -> StatusRow:
    """The row a user means by ``003``, ``3``, ``003_add_indexes`` or a file name/path."""
    wanted = Path(given.strip()).name.removesuffix(".sql")
    for row in report.rows:
        stem = row.filename.removesuffix(".sql")
        if wanted in (row.version, stem) or (
            wanted.isdigit() and row.version.isdigit() and int(wanted) == int(row.version)
        ):
            return row
    raise UsageError(
        f"No migration {given!r} in {shown_path(folder)} or in the database's history; give "
        "a version such as 003 (`fraiseql migrate status` lists them)"
    )


def plan_mark(
    scripts: Sequence[Script], state: DatabaseState, version: str, *, folder: Path,
    reason: str | None = None,
) -> tuple[StatusRow, history.Entry, tuple[str | None, str] | None]:
    """The row of ``version``, the ``marked_applied`` history row ``mark_applied`` writes
    for it, and the move of ``alembic_version`` (from, to) it makes, if any.

    Only the next pending migration can be marked (a linear chain cannot skip one); a
    file below applied migrations that never ran here is recorded without a move.
    """
    report = reconcile(scripts, state)
    row = find_row(report, version, folder)
    if row.state in (status_view.APPLIED, status_view.MODIFIED, status_view.MISSING,
                     status_view.SQUASHED, status_view.BELOW_BASELINE):
        missing = ("; its file is missing" if row.state == status_view.MISSING else
                   f"; {row.squashed_into} replaced it" if row.squashed_into else "")
        raise MigrationError(
            f"{row.filename} is already applied{when_applied(row)}{missing}; nothing to mark "
            "(`fraiseql migrate status` shows every migration)"
        )
    others = replace(report, rows=tuple(other for other in report.rows if other is not row))
    refuse_inconsistent(others, folder)
    if row.state in (status_view.UNTRACKED, status_view.OUT_OF_ORDER):
        refuse_inconsistent(report, folder)  # explains this one
    move: tuple[str | None, str] | None = None
    if row.state == status_view.PENDING:
        first = report.pending[0]
        if first is not row:
            raise MigrationLayoutError(
                f"Cannot mark {row.filename} applied while {first.filename} before it is "
                "pending: the chain cannot skip it. Apply it (`fraiseql migrate up "
                f"--steps 1`) or mark it first (`fraiseql migrate mark-applied "
                f"{first.version}`). Nothing was recorded"
            )
        move = (linear_parent(scripts, row, state.heads), row.version)
    migration = row.migration
    entry = history.Entry(
        version=row.version,
        name=migration.name.slug if migration is not None else None,
        filename=row.filename,
        checksum=row.checksum,
        execution_ms=None,
        action=history.MARKED_APPLIED,
        up_checksum=migration.up_checksum if migration is not None else None,
        note=reason,
    )
    return row, entry, move


def linear_parent(
    scripts: Sequence[Script], row: StatusRow, heads: Sequence[str]
) -> str | None:
    """The version ``alembic_version`` must hold for ``row`` to be the next step."""
    script = next(script for script in scripts if script.revision == row.version)
    parent = script.down_revision
    expected = () if parent is None else (parent,)
    if not isinstance(parent, (str, type(None))) or tuple(heads) != expected:
        raise MigrationLayoutError(
            f"Cannot mark {row.filename} applied: it is not one step after where the "
            f"database is (alembic_version: {', '.join(heads) or 'empty'}; its parent: "
            f"{parent or 'none'}). For branches and merges use `alembic stamp "
            f"{row.version}`. Nothing was recorded"
        )
    return parent


def plan_repair(
    report: StatusReport, version: str | None, *, folder: Path, reason: str | None = None,
) -> list[tuple[StatusRow, history.Entry]]:
    """The MODIFIED rows ``repair`` accepts (every one, or only ``version``, which must be
    MODIFIED), each with the ``repaired`` history row that records its new checksums."""
    rows = [row for row in report.rows if row.state == status_view.MODIFIED]
    if version is not None:
        row = find_row(report, version, folder)
        if row.state != status_view.MODIFIED:
            raise MigrationError(
                f"{row.filename} is not modified ({describe(row)}); nothing to repair. "
                "`repair` accepts the new checksum of an applied file that changed "
                "(✗ MODIFIED in `fraiseql migrate status`)"
            )
        rows = [row]
    planned = []
    for row in rows:
        migration = row.migration
        assert migration is not None  # MODIFIED needs a SQL file to compare
        previous = f"previous checksum {row.recorded_checksum}"
        planned.append((row, history.Entry(
            version=row.version,
            name=migration.name.slug,
            filename=row.filename,
            checksum=migration.checksum,
            execution_ms=None,
            action=history.REPAIRED,
            up_checksum=migration.up_checksum,
            note=f"{previous}; {reason}" if reason else previous,
        )))
    return planned


def plan_missing(
    scripts: Sequence[Script], report: StatusReport, version: str, *, folder: Path,
    reason: str | None = None,
) -> tuple[StatusRow, history.Entry, tuple[str | None, str | None] | None]:
    """``repair --missing VERSION``: the MISSING row of an applied file deleted on
    purpose, the ``file_deleted`` history row that records it, and the move of
    ``alembic_version`` (from, to) when the database is at it (to the newest applied
    revision of the folder below it; None: no row left).

    Refused when the file is not missing, and when it was only renamed: a file of the
    folder that this database has not applied holds the checksum it was applied with
    (rename it back instead).
    """
    row = find_row(report, version, folder)
    if row.state != status_view.MISSING:
        raise MigrationError(
            f"{row.filename} is not missing ({describe(row)}); nothing to repair. `repair "
            "--missing` records that an applied file was deleted on purpose (✗ file "
            "MISSING in `fraiseql migrate status`)"
        )
    renamed = next((other for other in report.rows if other.migration is not None
                    and not other.applied  # an applied file has a history of its own
                    and row.recorded_checksum == other.migration.checksum), None)
    if renamed is not None:
        raise MigrationError(
            f"{row.filename} was not deleted but renamed: {renamed.filename} holds the content "
            f"it was applied with (the same checksum). Rename it back to {row.filename} "
            "(databases know a migration by its number and file); nothing was recorded"
        )
    move: tuple[str | None, str | None] | None = None
    if row.version in report.heads:
        applied = {other.version for other in report.rows
                   if other.applied and other.state != status_view.MISSING}
        below = {parent for script in scripts if script.revision in applied
                 for parent in status_view.parents_of(script)}
        heads = sorted(applied - below)
        if len(heads) > 1:
            raise MigrationLayoutError(
                f"The database is at {row.filename}, and the applied migrations below it "
                f"form several lines ({', '.join(heads)}): set alembic_version with "
                f"`alembic stamp` first; nothing was recorded")
        move = (row.version, heads[0] if heads else None)
    moved = (f"; alembic_version moved from {move[0]} to {move[1] or '(nothing)'}"
             if move is not None else "")
    note = f"file deleted on purpose{moved}"
    return row, history.Entry(
        version=row.version,
        name=None,
        filename=row.filename,
        checksum=row.recorded_checksum,
        execution_ms=None,
        action=history.FILE_DELETED,
        note=f"{note}; {reason}" if reason else note,
    ), move


def describe(row: StatusRow) -> str:
    """A row's state in words: ``it is pending``, ``applied on ... and unchanged since``."""
    if row.state == status_view.APPLIED:
        return f"applied{when_applied(row)} and unchanged since"
    return {
        status_view.PENDING: "it is pending",
        status_view.MISSING: "its file is missing",
        status_view.SQUASHED: f"it was squashed into {row.squashed_into}",
        status_view.BELOW_BASELINE: f"the database is at it, below {row.squashed_into}",
        status_view.UNRECORDED: "it never ran here",
        status_view.UNTRACKED: "it is not in alembic_version",
        status_view.OUT_OF_ORDER: "it was merged out of order",
    }.get(row.state, row.state)


def database_problems(report: StatusReport) -> list[tuple[str | None, int, str]]:
    """(file name, line, message) for each row of the status that ``up`` would refuse or
    that needs a person: modified, missing, never ran here, not in alembic_version, merged
    out of order, partial; and (None, 1, message) for rows of alembic_version that cannot
    all be right (what ``fraiseql migrate check`` reports of a database)."""
    found: list[tuple[str | None, int, str]] = []
    if report.version_rows_problem is not None:
        found.append((None, 1, report.version_rows_problem))
    for row in report.rows:
        when = when_applied(row)
        if row.state == status_view.MODIFIED:
            found.append((row.filename, 1, (
                f"changed after it was applied to the database{when} (checksum mismatch); "
                "restore it from git and put the change in a new migration"
            )))
        elif row.state == status_view.MISSING:
            found.append((row.filename, 1, (
                f"was applied to the database{when} but the file is missing from the folder; "
                + status_view.missing_way_out(row.version)
            )))
        elif row.state == status_view.BELOW_BASELINE:
            found.append((row.squashed_into, 1, status_view.below_baseline_message(row)))
        elif row.state == status_view.UNRECORDED:
            found.append((row.filename, 1, (
                "never ran on the database, yet later migrations did (merged late?); "
                "renumber it above the last applied migration"
            )))
        elif row.state == status_view.OUT_OF_ORDER or (
            row.state == status_view.UNTRACKED and row.fork is not None
        ):
            found.append((row.filename, 1, status_view.out_of_order_message(row)))
        elif row.state == status_view.UNTRACKED:
            found.append((row.filename, 1, (
                f"fraiseql_migrations says it was applied{when} but alembic_version does not; "
                "see `fraiseql migrate status` and docs/troubleshooting.md"
            )))
        elif row.partial is not None:
            direction = "up" if row.state == status_view.PENDING else "down"
            found.append((row.filename, row.partial.next_line, (
                f"partly {'applied' if direction == 'up' else 'rolled back'} on the database; "
                f"`fraiseql migrate {direction}` resumes at this line"
            )))
    return found
