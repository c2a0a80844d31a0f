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

from ..engine import history
from ..project.check import branched_message as branched_message  # the branch rule's words

if TYPE_CHECKING:
    from ..sql.parse import ParsedMigration
    from .database import DatabaseState

APPLIED = "applied"
PENDING = "pending"
MODIFIED = "modified"  # applied, but the file changed since
MISSING = "missing"  # applied, but the file is gone
UNRECORDED = "unrecorded"  # inside the applied chain, but it never ran here (merged late?)
UNTRACKED = "untracked"  # history says applied, alembic_version says not (edited by hand?)
#: Applied here, then replaced by a baseline (``fraiseql migrate squash``): its file is gone
#: on purpose and the baseline, which this database has reached, stands for it.
SQUASHED = "squashed"
#: alembic_version is at a file a baseline replaced, below the baseline: this database
#: never reached the version the baseline was made at, so nothing in the folder leads on.
BELOW_BASELINE = "below_baseline"
#: Pending, and it branches off a revision that this database has already moved past on
#: another line of history: merged after later migrations were applied.
OUT_OF_ORDER = "out_of_order"


@dataclass(frozen=True)
class Fork:
    """Where a revision parts from the database's line of history (display names).

    For an OUT_OF_ORDER row: ``parent`` is the revision it follows, ``other`` the applied
    revision that came after ``parent`` on the database's line, and ``follow`` the id it
    should follow instead (the head of that line in the folder), when there is one.
    For an UNTRACKED row: ``other`` ran after it (fraiseql_migrations) yet follows
    ``parent`` in the folder, so ``alembic_version`` no longer covers it.
    """

    parent: str
    other: str
    follow: str | None = None


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
    fork: Fork | None = None  # OUT_OF_ORDER, or UNTRACKED because the chain changed under it
    #: SQUASHED and BELOW_BASELINE: the baseline file that took this file's place.
    squashed_into: str | None = None

    @property
    def applied(self) -> bool:
        """Applied according to ``alembic_version`` (a SQUASHED row is not a revision of
        the folder any more: its baseline is the applied one)."""
        return self.state not in (PENDING, UNTRACKED, OUT_OF_ORDER, SQUASHED, BELOW_BASELINE)


@dataclass(frozen=True)
class StatusReport:
    rows: tuple[StatusRow, ...]
    heads: tuple[str, ...]  # alembic_version
    ignored: tuple[Path, ...] = ()
    #: The heads of the folder's chain, as file names; more than one is a branch.
    folder_heads: tuple[str, ...] = ()
    #: Why the rows of ``alembic_version`` cannot all be right (several rows in a single
    #: line of migrations, or one row below another), and the way out; None when fine.
    version_rows_problem: str | None = None

    @property
    def pending(self) -> tuple[StatusRow, ...]:
        return tuple(row for row in self.rows if row.state == PENDING)

    @property
    def problems(self) -> tuple[StatusRow, ...]:
        return tuple(
            row for row in self.rows
            if row.state in (MODIFIED, MISSING, UNRECORDED, UNTRACKED, OUT_OF_ORDER,
                             BELOW_BASELINE)
        )

    @property
    def branched(self) -> bool:
        """The folder has several heads and something is not applied: ``up`` refuses."""
        return len(self.folder_heads) > 1 and any(not row.applied for row in self.rows)

    @property
    def inconsistent(self) -> bool:
        """Anything ``up`` would refuse or a person must look at: problems, a branch, wrong
        ``alembic_version`` rows, a partly applied migration (``status --exit-code`` 4)."""
        return bool(self.problems or self.branched or self.version_rows_problem
                    or any(row.partial is not None for row in self.rows))


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

    A baseline (``fraiseql migrate squash``) names in its header the files it replaced
    with their checksums: their history rows are SQUASHED (BELOW_BASELINE when
    ``alembic_version`` is still at one of them), and the baseline counts as applied
    unchanged on a database whose row for its version holds the checksum of the file
    it replaced.

    When the folder has several heads, a pending revision that branches off a revision
    the database has moved past on another line is OUT_OF_ORDER (a ``.py`` revision
    merged after later migrations were applied), never silently left out.
    """
    by_id = {script.revision: script for script in scripts}
    children: dict[str | None, list[str]] = {}
    for script in scripts:
        for parent in parents_of(script) or (None,):
            children.setdefault(parent, []).append(script.revision)
    folder_heads = tuple(script.revision for script in scripts if script.revision not in children)
    applied_ids = ancestors(state.heads, by_id.get)
    recorded_ids = {
        version
        for version, row in state.history.items()
        if row.action in history.APPLIED_ACTIONS
    }
    if any(head not in by_id for head in state.heads):
        applied_ids |= recorded_ids  # the chain below a deleted head is unknown: trust history
    squashed_into = {entry.version: display_name(script)
                     for script in scripts if (migration := sql_migration(script)) is not None
                     for entry in migration.squashes if entry.version != script.revision}

    def name(revision: str | None) -> str:
        script = by_id.get(revision) if revision is not None else None
        return display_name(script) if script is not None else (revision or "<base>")

    def fork(script: Any, recorded: history.HistoryRow | None) -> Fork | None:
        """The applied revision beside ``script`` that the database went on with."""
        if len(folder_heads) < 2:
            return None  # one head: a merge revision joined the lines on purpose
        for parent in parents_of(script) or (None,):
            if parent is not None and parent not in applied_ids:
                continue
            for other in children.get(parent, ()):
                if other == script.revision or other not in applied_ids:
                    continue
                if recorded is None:  # pending: what should it follow instead?
                    follow = [head for head in folder_heads
                              if other in ancestors([head], by_id.get)]
                    return Fork(name(parent), name(other), follow[0] if len(follow) == 1
                                else (state.heads[0] if len(state.heads) == 1 else None))
                ran_after = state.history.get(other)
                if ran_after is not None and ran_after.id > recorded.id:
                    return Fork(name(parent), name(other))
        return None

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
                              action=record.action, repair=record.repair,
                              fork=fork(script, record))
                )
                continue
            mark = _manual_mark(script.revision, display_name(script), state.history)
            branch = fork(script, None) if applied_ids else None
            rows.append(
                StatusRow(script.revision, display_name(script),
                          PENDING if branch is None else OUT_OF_ORDER, None, None, None,
                          checksum, None, migration, mark,
                          state.progress.get((script.revision, "up")), fork=branch)
            )
            continue
        if record is not None and record.action not in history.APPLIED_ACTIONS:
            record = None  # e.g. rolled back, then stamped past it: no applied_at to show
        if record is None:  # the spec's hand-made INSERT counts as a record too
            record = _manual_mark(script.revision, display_name(script), state.history)
        if record is None and migration is not None and state.history:
            state_name = UNRECORDED
        elif (record is not None and migration is not None and _changed(record, migration)
              and not _replaced(record, migration)):
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
        baseline = squashed_into.get(version)
        rows.append(
            StatusRow(
                version,
                (record.filename if record is not None and record.filename else version),
                MISSING if baseline is None else
                BELOW_BASELINE if version in state.heads else SQUASHED,
                record.applied_at if record is not None else None,
                record.execution_ms if record is not None else None,
                record.applied_by if record is not None else None,
                None,
                record.checksum if record is not None else None,
                action=record.action if record is not None else None,
                repair=record.repair if record is not None else None,
                squashed_into=baseline,
            )
        )
    rows = _squashed_first(rows)
    return StatusReport(tuple(rows), state.heads,
                        folder_heads=tuple(name(head) for head in folder_heads),
                        version_rows_problem=_version_rows_problem(
                            state, by_id.get, len(folder_heads) > 1, name))


def _version_rows_problem(
    state: DatabaseState, lookup: Callable[[str], Any], branched: bool,
    name: Callable[[str | None], str],
) -> str | None:
    """What is wrong with ``alembic_version`` holding several rows, or None.

    Alembic keeps one row per line of history: several rows in a project whose
    migrations form a single line (a hand-made INSERT instead of an UPDATE, a botched
    stamp), or a row below another row of the same line, leave it unclear where the
    database is.  The way out keeps the row of the migration that fraiseql_migrations
    says ran last.
    """
    heads = state.heads
    if len(heads) < 2:
        return None
    below = {head for head in heads if heads.count(head) > 1} | {
        head for head in heads
        if any(other != head and head in ancestors([other], lookup) for other in heads)
    }
    if branched and not below:
        return None  # one row per line of a branched history: Alembic's own way
    shown = ", ".join(name(head) for head in heads)
    if branched:
        lower = sorted(below)
        return (
            f"alembic_version holds {len(heads)} rows ({shown}), and "
            f"{', '.join(name(head) for head in lower)} is below another of them, which "
            "Alembic never writes (one row per line of history). Delete the lower row "
            "(`DELETE FROM alembic_version WHERE version_num IN ("
            + ", ".join(f"'{head}'" for head in lower) + ")`)"
        )
    ran = [(record.id, head) for head in set(heads)
           if (record := state.history.get(head)) is not None
           and record.action in history.APPLIED_ACTIONS]
    keep = max(ran)[1] if ran else None
    others = "the other" if len(heads) == 2 else "the others"
    where = (f"fraiseql_migrations says {name(keep)} ran last: keep its row and delete "
             f"{others}" if keep is not None else
             "Keep only the row of the migration the database is really at and delete "
             f"{others}")
    version = keep if keep is not None else "<version>"
    return (
        f"alembic_version holds {len(heads)} rows ({shown}), but this project's migrations "
        f"form a single line, so the database can be at only one of them. {where} (`DELETE "
        f"FROM alembic_version WHERE version_num <> '{version}'`)"
    )


def parents_of(script: Any) -> tuple[str, ...]:
    """A revision's ``down_revision`` as a tuple (none, one, or a merge's several)."""
    parents = script.down_revision
    return (parents,) if isinstance(parents, str) else tuple(parents or ())


def _changed(record: history.HistoryRow, migration: ParsedMigration) -> bool:
    """The file differs from what ran; changing only its down section does not count."""
    if not record.checksum or record.checksum == migration.checksum:
        return False
    return record.up_checksum is None or record.up_checksum != migration.up_checksum


def _squashed_first(rows: list[StatusRow]) -> list[StatusRow]:
    """The rows of files a baseline replaced, just before the baseline's row."""
    squashed = [row for row in rows if row.squashed_into is not None]
    if not squashed:
        return rows
    ordered: list[StatusRow] = []
    for row in rows:
        if row.squashed_into is None:
            ordered += [early for early in squashed if early.squashed_into == row.filename]
            ordered.append(row)
    placed = {id(row) for row in ordered}
    return ordered + [row for row in squashed if id(row) not in placed]


def _replaced(record: history.HistoryRow, migration: ParsedMigration) -> bool:
    """A baseline's row written by the file it replaced (the same version, a checksum its
    header lists): the database ran that file, which the baseline stands for."""
    return any(
        entry.version == record.version
        and (record.checksum == entry.checksum
             or (record.up_checksum is not None and record.up_checksum == entry.up_checksum))
        for entry in migration.squashes
    )


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
        f"{missing_way_out(row.version)}"
        for row in report.rows
        if row.state == MISSING
    ]
    lines += [
        f"{path.name} is not loaded: migration files are named NNN_snake_case_name.sql"
        for path in report.ignored
    ]
    if report.branched and not any(row.state == OUT_OF_ORDER for row in report.rows):
        lines.append(branched_message(report.folder_heads))
    return lines


def missing_way_out(version: str) -> str:
    """What to do about an applied file that is gone (MISSING)."""
    return ("restore it from version control, or, if it was deleted on purpose, record "
            f"that with `fraiseql migrate repair --missing {version}`")


def below_baseline_message(row: StatusRow) -> str:
    """A database whose alembic_version is at a file a baseline replaced."""
    return (
        f"the database is at {row.filename}, which {row.squashed_into} replaced; it never "
        f"reached the version that baseline was made at, so no file leads on from here. "
        "Check out the commit before the squash, run `fraiseql migrate up` there, then come "
        "back (see docs/drift.md#squash-baseline)"
    )


def out_of_order_message(row: StatusRow) -> str:
    """An OUT_OF_ORDER or relinked UNTRACKED row: what happened and the way out."""
    fork = row.fork
    assert fork is not None
    sql = row.filename.endswith(".sql")
    if row.state == UNTRACKED:
        relink = (f"`-- revises: {row.version}` header line to {fork.other}"
                  if fork.other.endswith(".sql")
                  else f"`down_revision = \"{row.version}\"` to {fork.other}")
        return (
            f"{row.filename} was applied, and {fork.other} after it, but in the folder "
            f"{fork.other} follows {fork.parent}, not {row.filename}, so alembic_version no "
            f"longer covers it: give {fork.other} its parent back (add a {relink})"
        )
    follow = fork.follow or "<the head>"
    relink = (f"add a `-- revises: {follow}` header line to it" if sql
              else f"set `down_revision = \"{follow}\"` in it")
    return (
        f"{row.filename} was merged after {fork.other} was applied: it follows "
        f"{fork.parent}, which this database has moved past, so it would run out of order. "
        f"If no database has run it yet, {relink} so that it runs after the migrations "
        "already applied; to run it out of order on purpose, join the two lines with "
        "`alembic merge heads -m merge`"
    )


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
