"""The ``fraiseql_migrations`` audit table: who applied, rolled back, stamped, marked or
repaired what, when, and why.

``alembic_version`` stays the truth for where a database is; this table is the
trail beside it.  Rows are written on the migration's own connection, inside its
transaction, so a migration and its record commit or vanish together.  Every
value reaches SQL as a bound parameter.
"""

from __future__ import annotations

import functools
import getpass
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError
from .translate import permission_denied

if TYPE_CHECKING:
    from ..sql.parse import ParsedMigration

TABLE = "fraiseql_migrations"
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")

APPLIED = "applied"
ROLLED_BACK = "rolled_back"
STAMPED = "stamped"
UNSTAMPED = "unstamped"  # `alembic stamp` moved below it: recorded as not applied
MANUAL = "manual"  # the default: a row someone inserted by hand (the spec's recipe)
MARKED_APPLIED = "marked_applied"  # `fraiseql migrate mark-applied`: recorded, never run
REPAIRED = "repaired"  # `fraiseql migrate repair`: the file's new checksum was accepted
#: `fraiseql migrate repair --missing`: the applied file was deleted on purpose; the
#: version no longer counts as applied (its changes stay in the database).
FILE_DELETED = "file_deleted"

#: Actions after which a version counts as applied (its SQL ran, or someone said so).
APPLIED_ACTIONS = frozenset({APPLIED, STAMPED, MARKED_APPLIED})


class Cursor(Protocol):
    """The part of a DB-API cursor this module uses."""

    def execute(self, query: str, vars: Any = ...) -> Any: ...
    def fetchall(self) -> list[tuple[Any, ...]]: ...
    def fetchone(self) -> tuple[Any, ...] | None: ...


def qualified_table(schema: str) -> str:
    """``"schema".fraiseql_migrations``, refusing a schema that is not a plain identifier."""
    if not _IDENTIFIER_RE.match(schema):
        raise ConfigError(
            f"History schema {schema!r} is not a plain identifier; use letters, digits and _"
        )
    return f'"{schema}".{TABLE}'


def create_table_sql(schema: str) -> str:
    return f"""CREATE TABLE IF NOT EXISTS {qualified_table(schema)} (
    id           BIGSERIAL PRIMARY KEY,
    version      TEXT NOT NULL,
    name         TEXT,
    filename     TEXT,
    checksum     TEXT,
    up_checksum  TEXT,
    applied_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    execution_ms INTEGER,
    applied_by   TEXT DEFAULT current_user,
    action       TEXT NOT NULL DEFAULT '{MANUAL}',
    note         TEXT
)"""

#: Columns added after the first pre-releases, with their type: ``ensure_table`` adds
#: the ones an older table lacks.
_LATER_COLUMNS = {"up_checksum": "TEXT", "note": "TEXT"}


@dataclass(frozen=True)
class HistoryRow:
    """One row of the audit table, as the status view needs it."""

    id: int
    version: str
    name: str | None
    filename: str | None
    checksum: str | None
    applied_at: datetime
    execution_ms: int | None
    applied_by: str | None
    action: str
    up_checksum: str | None = None
    note: str | None = None
    #: The newest ``repaired`` row after this one: its checksums are already in this
    #: row's ``checksum`` and ``up_checksum``; ``applied_at`` stays the original one.
    repair: HistoryRow | None = None


@dataclass(frozen=True)
class Entry:
    """A row to write."""

    version: str
    name: str | None
    filename: str | None
    checksum: str | None
    execution_ms: int | None
    action: str
    up_checksum: str | None = None
    note: str | None = None  # why (mark-applied, repair); written only when given


def entry_for(migration: ParsedMigration, action: str, elapsed_ms: int | None) -> Entry:
    """The row for running ``migration`` (``action``: applied or rolled back)."""
    return Entry(
        version=migration.name.version,
        name=migration.name.slug,
        filename=migration.name.filename,
        checksum=migration.checksum,
        execution_ms=elapsed_ms,
        action=action,
        up_checksum=migration.up_checksum,
    )


@functools.lru_cache(maxsize=1)
def operator() -> str:
    """``user@host`` of whoever runs the migration (the database user is in the row too)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


@contextmanager
def writing(dbapi_connection: Any, schema: str) -> Iterator[Any]:
    """A cursor for bookkeeping writes; a permission error becomes one clear line."""
    # lazy: psycopg2 (~20 ms) loads only when a command connects
    import psycopg2

    cursor = dbapi_connection.cursor()
    try:
        yield cursor
    except psycopg2.errors.InsufficientPrivilege as err:
        message = (err.diag.message_primary or str(err)).strip()
        raise permission_denied(message, schema) from err
    finally:
        cursor.close()


def table_exists(cursor: Cursor, schema: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified_table(schema),))
    row = cursor.fetchone()
    return bool(row and row[0])


def ensure_table(cursor: Cursor, schema: str) -> None:
    """Create the table unless it exists (checked first: no notice on every run)."""
    if not table_exists(cursor, schema):
        # quoted: the name is used as written (to_regnamespace would fold it to lower case)
        cursor.execute("SELECT to_regnamespace(%s) IS NOT NULL", (f'"{schema}"',))
        row = cursor.fetchone()
        if not (row and row[0]):
            name = schema if schema == schema.lower() else f'"{schema}"'
            raise ConfigError(
                f"History schema {schema!r} does not exist in this database: create it "
                f"(CREATE SCHEMA {name};) or set history_schema to an existing schema"
            )
        cursor.execute(create_table_sql(schema))
        return
    missing = [column for column in _LATER_COLUMNS if column not in _columns(cursor, schema)]
    for column in missing:  # a table made by an earlier release
        cursor.execute(
            f"ALTER TABLE {qualified_table(schema)} ADD COLUMN IF NOT EXISTS {column} "
            f"{_LATER_COLUMNS[column]}"
        )


def _columns(cursor: Cursor, schema: str) -> set[str]:
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
        "AND NOT attisdropped",
        (qualified_table(schema),),
    )
    return {str(row[0]) for row in cursor.fetchall()}


#: execution_ms measured by the server: from the receipt of the query message that
#: holds the migration's statements and this INSERT, to now.
SERVER_ELAPSED_MS = (
    "(extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000)::integer"
)


def record_statement(
    schema: str, entry: Entry, *, server_timed: bool = False
) -> tuple[str, tuple[Any, ...]]:
    """The INSERT of one history row, with its bound parameters.

    With ``server_timed`` the row's ``execution_ms`` is :data:`SERVER_ELAPSED_MS`
    (``entry.execution_ms`` is ignored): the INSERT then runs in the same query
    message as the migration's statements.
    """
    elapsed: tuple[Any, ...] = () if server_timed else (entry.execution_ms,)
    noted = entry.note is not None  # so that tables without the column still take rows
    return (
        f"INSERT INTO {qualified_table(schema)} "
        "(version, name, filename, checksum, up_checksum, execution_ms, applied_by, action"
        + (", note" if noted else "")
        + ") VALUES (%s, %s, %s, %s, %s, "
        + (SERVER_ELAPSED_MS if server_timed else "%s")
        + ", %s || ' as ' || current_user, %s"
        + (", %s" if noted else "")
        + ")",
        (
            entry.version,
            entry.name,
            entry.filename,
            entry.checksum,
            entry.up_checksum,
            *elapsed,
            operator(),
            entry.action,
            *((entry.note,) if noted else ()),
        ),
    )


def record(cursor: Cursor, schema: str, entry: Entry) -> None:
    cursor.execute(*record_statement(schema, entry))


def record_sql(schema: str, entry: Entry) -> str:
    """The same INSERT as literal SQL, for offline (``--sql``) scripts."""

    def literal(value: str | int | None) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, int):
            return str(value)
        return "'" + value.replace("'", "''") + "'"

    values = [entry.version, entry.name, entry.filename, entry.checksum, entry.up_checksum,
              entry.execution_ms]
    return (
        f"INSERT INTO {qualified_table(schema)} "
        "(version, name, filename, checksum, up_checksum, execution_ms, applied_by, action) "
        "VALUES ("
        + ", ".join(literal(value) for value in values)
        + f", {literal(operator())} || ' as ' || current_user, {literal(entry.action)})"
    )


def read_latest(cursor: Cursor, schema: str) -> dict[str, HistoryRow]:
    """The newest row for each version (manual rows keyed as written).

    A ``repaired`` row newer than it does not replace it: its checksums are folded
    into it (``HistoryRow.repair`` keeps the repair), so that the row still says when
    the migration was applied, and by whom.
    """
    if not table_exists(cursor, schema):
        return {}
    columns = _columns(cursor, schema)
    optional = ", ".join(name if name in columns else "NULL" for name in _LATER_COLUMNS)
    cursor.execute(
        "SELECT DISTINCT ON (version, action = %s) id, version, name, filename, checksum, "
        f"applied_at, execution_ms, applied_by, action, {optional} "
        f"FROM {qualified_table(schema)} ORDER BY version, action = %s, id DESC",
        (REPAIRED, REPAIRED),
    )
    latest: dict[str, HistoryRow] = {}
    repairs: dict[str, HistoryRow] = {}
    for values in cursor.fetchall():
        row = HistoryRow(*values)
        (repairs if row.action == REPAIRED else latest)[row.version] = row
    for version, repair in repairs.items():
        base = latest.get(version)
        if base is not None and repair.id > base.id:
            latest[version] = replace(
                base, checksum=repair.checksum, up_checksum=repair.up_checksum, repair=repair
            )
    return latest


# ---------------------------------------------------------------------------
# Progress inside a file that runs in segments (non-transactional statements)

PROGRESS_TABLE = "fraiseql_migration_progress"
SEGMENTS_TABLE = "fraiseql_migration_segments"

#: ``Progress.state``: the completed segments are recorded and nothing else started.
DONE = "done"
#: ``Progress.state``: a statement outside a transaction was started; its outcome was never
#: recorded (the client died, or the connection was lost, while it ran).
RUNNING = "running"


@dataclass(frozen=True)
class Progress:
    """How far a segmented migration got: statements committed and the next one's line.

    ``done`` statements of the section (in file order) are completed; the checksum of
    each is in the segments table (:func:`read_segments`), so that a completed part is
    recognised whatever is edited after it.  ``done`` is None for a row written by an
    earlier release: then ``checksum`` covers the file's lines before ``next_line``.

    With ``state`` :data:`RUNNING`, the statement at ``statement_line`` (the ``done``-th,
    counting from 0) was started outside a transaction and its outcome is not known.
    """

    version: str
    direction: str
    checksum: str
    segments_done: int
    next_line: int
    done: int | None = None
    state: str = DONE
    statement_line: int | None = None
    statement_checksum: str | None = None
    started_at: datetime | None = None


def _progress_table(schema: str) -> str:
    qualified_table(schema)  # validates the schema name
    return f'"{schema}".{PROGRESS_TABLE}'


def _segments_table(schema: str) -> str:
    qualified_table(schema)
    return f'"{schema}".{SEGMENTS_TABLE}'


#: Columns of the progress table added with the segments table (statement-level
#: resume and the record of a statement started outside a transaction).
_PROGRESS_LATER_COLUMNS = {
    "done": "INTEGER",
    "state": f"TEXT NOT NULL DEFAULT '{DONE}'",
    "statement_line": "INTEGER",
    "statement_offset": "INTEGER",
    "statement_checksum": "TEXT",
    "started_at": "TIMESTAMPTZ",
}


def ensure_progress_table(cursor: Cursor, schema: str) -> None:
    """Create the progress and segments tables, or add what an earlier release lacked."""
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL",
                   (_progress_table(schema), _segments_table(schema)))
    row = cursor.fetchone()
    if not (row and row[0]):
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {_progress_table(schema)} ("
            "version TEXT NOT NULL, direction TEXT NOT NULL, checksum TEXT NOT NULL, "
            "segments_done INTEGER NOT NULL, next_line INTEGER NOT NULL, "
            "updated_at TIMESTAMPTZ NOT NULL DEFAULT now(), "
            + "".join(f"{name} {kind}, " for name, kind in _PROGRESS_LATER_COLUMNS.items())
            + "PRIMARY KEY (version, direction))"
        )
    else:
        columns = _table_columns(cursor, _progress_table(schema))
        for name, kind in _PROGRESS_LATER_COLUMNS.items():
            if name not in columns:
                cursor.execute(f"ALTER TABLE {_progress_table(schema)} "
                               f"ADD COLUMN IF NOT EXISTS {name} {kind}")
    if not (row and row[1]):
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {_segments_table(schema)} ("
            "version TEXT NOT NULL, direction TEXT NOT NULL, segment INTEGER NOT NULL, "
            "first_statement INTEGER NOT NULL, first_line INTEGER NOT NULL, "
            "statements TEXT[] NOT NULL, done_at TIMESTAMPTZ NOT NULL DEFAULT now(), "
            "PRIMARY KEY (version, direction, segment))"
        )


def _table_columns(cursor: Cursor, table: str) -> set[str]:
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
        "AND NOT attisdropped",
        (table,),
    )
    return {str(row[0]) for row in cursor.fetchall()}


def read_progress(cursor: Cursor, schema: str) -> dict[tuple[str, str], Progress]:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (_progress_table(schema),))
    row = cursor.fetchone()
    if not (row and row[0]):
        return {}
    columns = _table_columns(cursor, _progress_table(schema))
    later = ", ".join(name if name in columns else "NULL"
                      for name in ("done", "state", "statement_line", "statement_checksum",
                                   "started_at"))
    cursor.execute(
        f"SELECT version, direction, checksum, segments_done, next_line, {later} "
        f"FROM {_progress_table(schema)}"
    )
    return {
        (r[0], r[1]): Progress(r[0], r[1], r[2], r[3], r[4], r[5], r[6] or DONE, r[7], r[8],
                               r[9])
        for r in cursor.fetchall()
    }


def has_progress(cursor: Cursor, schema: str, version: str, direction: str) -> bool:
    """Whether an earlier run left this section partly run."""
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (_progress_table(schema),))
    row = cursor.fetchone()
    if not (row and row[0]):
        return False
    cursor.execute(f"SELECT EXISTS (SELECT FROM {_progress_table(schema)} "
                   "WHERE version = %s AND direction = %s)", (version, direction))
    row = cursor.fetchone()
    return bool(row and row[0])


def read_segments(cursor: Cursor, schema: str, version: str, direction: str) -> list[str]:
    """The checksum of each completed statement of a partly run section, in file order."""
    cursor.execute(
        f"SELECT first_statement, statements FROM {_segments_table(schema)} "
        "WHERE version = %s AND direction = %s ORDER BY segment",
        (version, direction),
    )
    done: list[str] = []
    for first, statements in cursor.fetchall():
        if first != len(done):  # written by hand? then nothing before it can be trusted
            return done
        done.extend(statements)
    return done


def save_segment(
    cursor: Cursor, schema: str, progress: Progress, first_line: int, statements: list[str]
) -> None:
    """Record a completed segment and where the section goes on, in one query.

    ``progress`` is the state after the segment: ``done`` counts its statements,
    ``segments_done`` includes it.  Run it in the segment's transaction, or alone in
    autocommit (the two statements then commit together).
    """
    assert progress.done is not None
    cursor.execute(
        f"INSERT INTO {_segments_table(schema)} "
        "(version, direction, segment, first_statement, first_line, statements) "
        "VALUES (%s, %s, %s, %s, %s, %s::text[]) ON CONFLICT (version, direction, segment) "
        "DO UPDATE SET first_statement = EXCLUDED.first_statement, "
        "first_line = EXCLUDED.first_line, statements = EXCLUDED.statements, done_at = now();\n"
        + _UPSERT_PROGRESS.replace("{table}", _progress_table(schema)),
        (progress.version, progress.direction, progress.segments_done - 1,
         progress.done - len(statements), first_line, statements,
         *_progress_values(progress)),
    )


_UPSERT_PROGRESS = (
    "INSERT INTO {table} (version, direction, checksum, segments_done, next_line, done, state, "
    "statement_line, statement_offset, statement_checksum, started_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END) "
    "ON CONFLICT (version, direction) DO UPDATE SET checksum = EXCLUDED.checksum, "
    "segments_done = EXCLUDED.segments_done, next_line = EXCLUDED.next_line, "
    "done = EXCLUDED.done, state = EXCLUDED.state, statement_line = EXCLUDED.statement_line, "
    "statement_offset = EXCLUDED.statement_offset, "
    "statement_checksum = EXCLUDED.statement_checksum, started_at = EXCLUDED.started_at, "
    "updated_at = now()"
)


def _progress_values(progress: Progress, offset: int | None = None) -> tuple[Any, ...]:
    running = progress.state == RUNNING
    return (progress.version, progress.direction, progress.checksum, progress.segments_done,
            progress.next_line, progress.done, progress.state,
            progress.statement_line if running else None, offset if running else None,
            progress.statement_checksum if running else None, running)


def save_progress(
    cursor: Cursor, schema: str, progress: Progress, *, statement_offset: int | None = None
) -> None:
    """Write the progress row as it is now (``state`` :data:`RUNNING` records the
    intent to run the statement at ``statement_line``, before it is sent)."""
    cursor.execute(
        _UPSERT_PROGRESS.replace("{table}", _progress_table(schema)),
        _progress_values(progress, statement_offset),
    )


def resolve_running(
    cursor: Cursor, schema: str, direction: str, *, done: bool
) -> Progress | None:
    """Settle the statement a run left :data:`RUNNING` in ``direction``, by the user's word.

    ``done``: it is recorded as completed (the section resumes after it); otherwise the
    record of it is dropped and the next run sends it again.  Returns the row as it was,
    or None when no statement was left running.
    """
    running = [progress for (_, way), progress in read_progress(cursor, schema).items()
               if way == direction and progress.state == RUNNING]
    if not running:
        return None
    progress = running[0]
    assert progress.statement_checksum is not None and progress.statement_line is not None
    count = progress.done or 0
    if done:
        settled = replace(progress, state=DONE, done=count + 1,
                          segments_done=progress.segments_done + 1)
        save_segment(cursor, schema, settled, progress.statement_line,
                     [progress.statement_checksum])
    elif count == 0:
        clear_progress(cursor, schema, progress.version, direction)
    else:
        save_progress(cursor, schema, replace(progress, state=DONE,
                                              next_line=progress.statement_line))
    return progress


def clear_progress(cursor: Cursor, schema: str, version: str, direction: str) -> None:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL",
                   (_progress_table(schema), _segments_table(schema)))
    row = cursor.fetchone()
    if row and row[0]:
        cursor.execute(
            f"DELETE FROM {_progress_table(schema)} WHERE version = %s AND direction = %s",
            (version, direction),
        )
    if row and row[1]:
        cursor.execute(
            f"DELETE FROM {_segments_table(schema)} WHERE version = %s AND direction = %s",
            (version, direction),
        )
