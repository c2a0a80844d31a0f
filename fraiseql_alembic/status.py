"""The status view: revisions on disk joined with ``alembic_version`` and the history table.

Pure: it receives the loaded scripts and the database state and returns rows.
Rendering (text, JSON) is the CLI's job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import history

if TYPE_CHECKING:
    from .database import DatabaseState
    from .sqlfile import ParsedMigration

APPLIED = "applied"
PENDING = "pending"
MODIFIED = "modified"  # applied, but the file changed since
MISSING = "missing"  # applied, but the file is gone
UNRECORDED = "unrecorded"  # inside the applied chain, but it never ran here (merged late?)
UNTRACKED = "untracked"  # history says applied, alembic_version says not (edited by hand?)


@dataclass(frozen=True)
class StatusRow:
    version: str
    filename: str
    state: str
    applied_at: datetime | None = None
    execution_ms: int | None = None
    applied_by: str | None = None
    checksum: str | None = None
    recorded_checksum: str | None = None
    migration: ParsedMigration | None = field(default=None, compare=False, repr=False)
    marked_by_hand: history.HistoryRow | None = None  # pending, but a manual row says applied
    partial: history.Progress | None = None  # segments of it ran; the next run resumes
    #: The action of the history row behind ``applied_at`` (applied, stamped,
    #: marked_applied, or manual for the spec's hand-made INSERT).
    action: str | None = None
    repair: history.HistoryRow | None = None  # the newest repair, which accepted ``checksum``

    @property
    def applied(self) -> bool:
        """Applied according to ``alembic_version``."""
        return self.state not in (PENDING, UNTRACKED)


@dataclass(frozen=True)
class StatusReport:
    rows: tuple[StatusRow, ...]
    heads: tuple[str, ...]
    ignored: tuple[Path, ...] = ()

    @property
    def pending(self) -> tuple[StatusRow, ...]:
        return tuple(row for row in self.rows if row.state == PENDING)

    @property
    def problems(self) -> tuple[StatusRow, ...]:
        return tuple(
            row for row in self.rows if row.state in (MODIFIED, MISSING, UNRECORDED, UNTRACKED)
        )


def build(
    scripts: Sequence[Any],
    state: DatabaseState,
    sql_migration: Callable[[Any], ParsedMigration | None],
    display_name: Callable[[Any], str],
) -> StatusReport:
    """Join scripts (base first) with the database state.

    ``alembic_version`` decides what is applied.  The history table adds when and
    by whom, and catches what ``alembic_version`` alone cannot: applied files that
    were deleted (MISSING), files changed after they ran (MODIFIED; an edited down
    section alone is not a change), and SQL files that sit inside the applied part
    of the chain but never ran here (UNRECORDED: merged late, numbered below
    migrations that were already applied, or their history row was deleted).
    """
    by_id = {script.revision: script for script in scripts}
    applied_ids = ancestors(state.heads, by_id.get)
    recorded_ids = {
        version
        for version, row in state.history.items()
        if row.action in history.APPLIED_ACTIONS
    }
    if any(head not in by_id for head in state.heads):
        applied_ids |= recorded_ids  # the chain below a deleted head is unknown: trust history
    rows: list[StatusRow] = []
    for script in scripts:
        migration = sql_migration(script)
        record = state.history.get(script.revision)
        checksum = migration.checksum if migration is not None else None
        if script.revision not in applied_ids:
            if record is not None and record.action in history.APPLIED_ACTIONS:
                rows.append(
                    StatusRow(script.revision, display_name(script), UNTRACKED,
                              record.applied_at, record.execution_ms, record.applied_by,
                              checksum, record.checksum, migration,
                              action=record.action, repair=record.repair)
                )
                continue
            mark = _manual_mark(script.revision, display_name(script), state.history)
            rows.append(
                StatusRow(script.revision, display_name(script), PENDING, None, None, None,
                          checksum, None, migration, mark,
                          state.progress.get((script.revision, "up")))
            )
            continue
        if record is not None and record.action not in history.APPLIED_ACTIONS:
            record = None  # e.g. rolled back, then stamped past it: no applied_at to show
        if record is None:  # the spec's hand-made INSERT counts as a record too
            record = _manual_mark(script.revision, display_name(script), state.history)
        if record is None and migration is not None and state.history:
            state_name = UNRECORDED
        elif record is not None and migration is not None and _changed(record, migration):
            state_name = MODIFIED
        else:
            state_name = APPLIED
        rows.append(
            StatusRow(
                script.revision,
                display_name(script),
                state_name,
                record.applied_at if record is not None else None,
                record.execution_ms if record is not None else None,
                record.applied_by if record is not None else None,
                checksum,
                record.checksum if record is not None else None,
                migration,
                None,
                state.progress.get((script.revision, "down")),
                action=record.action if record is not None else None,
                repair=record.repair if record is not None else None,
            )
        )
    gone = (applied_ids | recorded_ids) - set(by_id)
    for version in sorted(gone, key=_version_key):
        record = state.history.get(version)
        if record is None and version not in state.heads:
            continue
        rows.append(
            StatusRow(
                version,
                (record.filename if record is not None and record.filename else version),
                MISSING,
                record.applied_at if record is not None else None,
                record.execution_ms if record is not None else None,
                record.applied_by if record is not None else None,
                None,
                record.checksum if record is not None else None,
                action=record.action if record is not None else None,
                repair=record.repair if record is not None else None,
            )
        )
    return StatusReport(tuple(rows), state.heads)


def _changed(record: history.HistoryRow, migration: ParsedMigration) -> bool:
    """The file differs from what ran; changing only its down section does not count."""
    if not record.checksum or record.checksum == migration.checksum:
        return False
    return record.up_checksum is None or record.up_checksum != migration.up_checksum


def _manual_mark(
    version: str, filename: str, rows: dict[str, history.HistoryRow]
) -> history.HistoryRow | None:
    """A hand-inserted row (the spec's recipe) marking ``version`` applied, if still unused.

    The row may name the version as ``003``, ``003_add_indexes`` or the file name.
    It is used up once a later row for the version exists (e.g. the stamp it caused).
    """
    stem = filename.rsplit(".", 1)[0]
    marks = [
        row
        for key in {version, stem, filename}
        if (row := rows.get(key)) is not None and row.action == history.MANUAL
    ]
    if not marks:
        return None
    mark = max(marks, key=lambda row: row.id)
    newer = rows.get(version)
    if newer is not None and newer.action != history.MANUAL and newer.id > mark.id:
        return None
    return mark


def with_ignored(report: StatusReport, ignored: Iterable[Path]) -> StatusReport:
    return replace(report, ignored=tuple(ignored))


def warnings(report: StatusReport) -> list[str]:
    """Lines worth telling the user before running anything."""
    lines = [
        f"Applied migration {row.filename} is missing from the migrations folder; "
        "restore it from version control"
        for row in report.rows
        if row.state == MISSING
    ]
    lines += [
        f"{path.name} is not loaded: migration files are named NNN_snake_case_name.sql"
        for path in report.ignored
    ]
    return lines


def ancestors(revision_ids: Iterable[str], lookup: Callable[[str], Any]) -> set[str]:
    """The given revisions and every revision below them (parents and dependencies).

    ``lookup`` returns the script of an id, or None when it is unknown.
    """
    seen: set[str] = set()
    stack = list(revision_ids)
    while stack:
        revision = stack.pop()
        if revision in seen:
            continue
        seen.add(revision)
        script = lookup(revision)
        if script is None:
            continue
        parents = script.down_revision
        stack.extend([parents] if isinstance(parents, str) else list(parents or ()))
        stack.extend(getattr(script, "dependencies", None) or ())
    return seen


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), version) if version.isdigit() else (1 << 62, version)
