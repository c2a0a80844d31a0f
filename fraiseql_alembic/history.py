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
from typing import Any, Protocol

TABLE = "fraiseql_migrations"
_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")

APPLIED = "applied"
ROLLED_BACK = "rolled_back"
STAMPED = "stamped"
UNSTAMPED = "unstamped"  # `alembic stamp` moved below it: recorded as not applied
MANUAL = "manual"  # the default: a row someone inserted by hand (the spec's recipe)
MARKED_APPLIED = "marked_applied"  # `fraiseql migrate mark-applied`: recorded, never run
REPAIRED = "repaired"  # `fraiseql migrate repair`: the file's new checksum was accepted

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
        from .errors import ConfigError

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
    import psycopg2

    cursor = dbapi_connection.cursor()
    try:
        yield cursor
    except psycopg2.errors.InsufficientPrivilege as err:
        from .errors import DatabaseError

        message = (err.diag.message_primary or str(err)).strip()
        raise DatabaseError(
            f"Cannot write the migration history in schema {schema!r}: {message} [SQLSTATE "
            f"42501]. Grant the migrating role CREATE and USAGE on schema {schema} (e.g. GRANT "
            f"CREATE, USAGE ON SCHEMA {schema} TO <role>), or set history_schema to a schema "
            "it may write. Nothing was applied"
        ) from err
    finally:
        cursor.close()


def table_exists(cursor: Cursor, schema: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified_table(schema),))
    row = cursor.fetchone()
    return bool(row and row[0])


def ensure_table(cursor: Cursor, schema: str) -> None:
    """Create the table unless it exists (checked first: no notice on every run)."""
    if not table_exists(cursor, schema):
        cursor.execute("SELECT to_regnamespace(%s) IS NOT NULL", (schema,))
        row = cursor.fetchone()
        if not (row and row[0]):
            from .errors import ConfigError

            raise ConfigError(
                f"History schema {schema!r} does not exist in this database: create it "
                f"(CREATE SCHEMA {schema};) or set history_schema to an existing schema"
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


@dataclass(frozen=True)
class Progress:
    """How far a segmented migration got: segments committed and the next one's line.

    ``checksum`` covers the lines before ``next_line`` only: the rest of the file may
    be fixed before the run resumes.
    """

    version: str
    direction: str
    checksum: str
    segments_done: int
    next_line: int


def _progress_table(schema: str) -> str:
    qualified_table(schema)  # validates the schema name
    return f'"{schema}".{PROGRESS_TABLE}'


def ensure_progress_table(cursor: Cursor, schema: str) -> None:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (_progress_table(schema),))
    row = cursor.fetchone()
    if not (row and row[0]):
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {_progress_table(schema)} ("
            "version TEXT NOT NULL, direction TEXT NOT NULL, checksum TEXT NOT NULL, "
            "segments_done INTEGER NOT NULL, next_line INTEGER NOT NULL, "
            "updated_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (version, direction))"
        )


def read_progress(cursor: Cursor, schema: str) -> dict[tuple[str, str], Progress]:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (_progress_table(schema),))
    row = cursor.fetchone()
    if not (row and row[0]):
        return {}
    cursor.execute(
        "SELECT version, direction, checksum, segments_done, next_line "
        f"FROM {_progress_table(schema)}"
    )
    return {(r[0], r[1]): Progress(*r) for r in cursor.fetchall()}


def save_progress(cursor: Cursor, schema: str, progress: Progress) -> None:
    cursor.execute(
        f"INSERT INTO {_progress_table(schema)} "
        "(version, direction, checksum, segments_done, next_line) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (version, direction) DO UPDATE SET segments_done = EXCLUDED.segments_done, "
        "next_line = EXCLUDED.next_line, checksum = EXCLUDED.checksum, updated_at = now()",
        (progress.version, progress.direction, progress.checksum, progress.segments_done,
         progress.next_line),
    )


def clear_progress(cursor: Cursor, schema: str, version: str, direction: str) -> None:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (_progress_table(schema),))
    row = cursor.fetchone()
    if row and row[0]:
        cursor.execute(
            f"DELETE FROM {_progress_table(schema)} WHERE version = %s AND direction = %s",
            (version, direction),
        )
