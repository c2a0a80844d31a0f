"""Connections and read-only queries of the database state.

Driver errors are put into words by :mod:`.translate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..engine import history
from ..settings import RunOptions, sqlalchemy_url
from .history import HistoryRow, Progress
from .translate import connect_error

VERSION_TABLE = "alembic_version"


def open_dbapi(url: str, *, application_name: str = "fraiseql-migrate", **options: Any) -> Any:
    """A psycopg2 connection to ``url``; a failure is :func:`connect_error`'s one line."""
    import psycopg2

    from .locking import libpq_url

    try:
        return psycopg2.connect(libpq_url(url), application_name=application_name, **options)
    except psycopg2.Error as err:
        raise connect_error(url, err) from err


def version_table_schema(cursor: Any) -> str | None:
    """The schema of ``alembic_version`` on the session's search_path, or, while there is
    none, the schema it would be created in (``current_schema()``), as Alembic does.
    Naming it lets a migration change search_path (pg_dump output clears it) without
    losing the table."""
    cursor.execute(
        "SELECT coalesce((SELECT n.nspname FROM pg_class c JOIN pg_namespace n "
        f"ON n.oid = c.relnamespace WHERE c.oid = to_regclass('{VERSION_TABLE}')), "
        "current_schema())"
    )
    row = cursor.fetchone()
    return str(row[0]) if row and row[0] else None


def standard_strings(dbapi_connection: Any) -> bool:
    """The session's ``standard_conforming_strings`` (reported by the server at connect and
    on every change), with which psql would read a migration file."""
    return bool(dbapi_connection.get_parameter_status("standard_conforming_strings") != "off")


#: What a new session would not have, and ``DISCARD ALL`` clears, except prepared
#: statements and advisory locks (the callers decide about those): cursors kept open
#: ``WITH HOLD``, a ``SET SESSION AUTHORIZATION`` or ``SET ROLE`` (which ``RESET ALL``
#: leaves alone), every ``SET`` and ``set_config``, temporary tables, functions and
#: types, sequence values read by ``currval``/``lastval``, and ``LISTEN`` channels.  All
#: of them may run inside a transaction block (``DISCARD ALL`` may not).  Values set
#: when connecting (``options=-c ...`` in the URL, ``ALTER ROLE ... SET``) are the
#: defaults RESET returns to, so they stay.
SESSION_CLEAN_SQL = (
    "CLOSE ALL;\nRESET SESSION AUTHORIZATION;\nRESET ROLE;\nRESET ALL;\nDISCARD TEMP;\n"
    "DISCARD SEQUENCES;\nUNLISTEN *;\n"
)

#: The session reset an offline (``--sql``) script writes after each SQL migration, for
#: psql: no prepared statement of ours lives on psql's session, so all of them go.
OFFLINE_RESET_SQL = SESSION_CLEAN_SQL + "DEALLOCATE ALL;\n"

#: The text of the error :func:`session_check_sql` raises (SQLSTATE 22P02).
SESSION_CHECK_MARK = "fraiseql: prepared statements left by the previous migration: "


def session_reset_sql(options: RunOptions) -> str:
    """Literal SQL that gives each migration the same session, as a new connection
    would have it (:data:`SESSION_CLEAN_SQL` and ``DEALLOCATE ALL``: a ``SET`` in one
    file, such as the ``SET lock_timeout = 0`` or cleared ``search_path`` that pg_dump
    output starts with, a temporary table or a prepared statement must not leak into
    the next file), then the run's own settings again.  For sessions this package
    opened and on which it prepared nothing (the Alembic path, rehearsals)."""
    return SESSION_CLEAN_SQL + "DEALLOCATE ALL;\n" + _settings_sql(options) + ";\n"


def session_check_sql(options: RunOptions, keep: Sequence[str]) -> str:
    """A query that applies the run's settings and fails (SQLSTATE 22P02, with
    :data:`SESSION_CHECK_MARK`) when the session holds prepared statements other than
    ``keep``: the direct path prepares it once and runs it after :data:`SESSION_CLEAN_SQL`
    before each migration; only when it fails are the statements deallocated (and ours
    prepared again).  Reading ``pg_prepared_statements`` costs about 10 us; deallocating
    by name would need a ``DO`` block, about 75 us for every migration."""
    names = ", ".join("'" + name.replace("'", "''") + "'" for name in keep)
    others = ("FROM pg_catalog.pg_prepared_statements "
              f"WHERE name <> ALL (ARRAY[{names}]::text[])")
    mark = SESSION_CHECK_MARK.replace("'", "''")
    return (  # the names are listed only when there are some (EXISTS alone is cheaper)
        _settings_sql(options) + f", CASE WHEN EXISTS (SELECT {others}) THEN (SELECT CAST('"
        + mark + f"' || pg_catalog.string_agg(name, ', ' ORDER BY name) AS integer) {others}) END"
    )


def apply_session_settings(cursor: Any, options: RunOptions) -> None:
    """lock_timeout / statement_timeout for a migration session, and (PostgreSQL 14+) a
    check that the client is still there, so a killed deploy's statement stops within a
    second instead of running on with its locks."""
    cursor.execute(_settings_sql(options))


def transaction_setup_sql(options: RunOptions) -> str:
    """Literal SQL that a migration's transaction starts with in lease mode, where a
    transaction pooler may hand each transaction another server session:
    :data:`SESSION_CLEAN_SQL` (whatever an earlier transaction left on that session) and
    the run's settings for this transaction only (``set_config(..., true)``, as ``SET
    LOCAL``), so that nothing is left behind for the pool's other clients.  Prepared
    statements are not deallocated: on a pooled server session they may be the pooler's
    (PgBouncer prepares its clients' statements under its own names).  Empty in
    advisory mode."""
    if not options.pooled:
        return ""
    return SESSION_CLEAN_SQL + _settings_sql(options, local=True) + ";\n"


def _settings_sql(options: RunOptions, *, local: bool = False) -> str:
    def literal(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    scope = "true" if local else "false"
    return (
        f"SELECT set_config('lock_timeout', {literal(options.lock_timeout)}, {scope}), "
        f"set_config('statement_timeout', {literal(options.statement_timeout or '0')}, "
        f"{scope}), CASE WHEN current_setting('server_version_num')::int >= 140000 "
        f"THEN set_config('client_connection_check_interval', '1s', {scope}) END"
    )


def create_engine(url: str, *, read_only: bool = False) -> Any:
    """An engine with no pool; ``read_only`` makes every transaction READ ONLY."""
    from sqlalchemy import create_engine as sa_create_engine
    from sqlalchemy.pool import NullPool

    connect_args: dict[str, Any] = {"application_name": "fraiseql-migrate"}
    if read_only:
        connect_args["options"] = "-c default_transaction_read_only=on"
    return sa_create_engine(sqlalchemy_url(url), poolclass=NullPool, connect_args=connect_args)


def connect(url: str, *, read_only: bool = False) -> Any:
    engine = create_engine(url, read_only=read_only)
    try:
        return engine.connect()
    except Exception as err:
        raise connect_error(url, err) from err


@dataclass(frozen=True)
class DatabaseState:
    """Where the database is, read without writing anything."""

    heads: tuple[str, ...]
    history: dict[str, HistoryRow]
    progress: dict[tuple[str, str], Progress] = field(default_factory=dict)


def read_state(dbapi_connection: Any, history_schema: str) -> DatabaseState:
    """Read alembic_version, the history and segment progress on a DB-API connection."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (VERSION_TABLE,))
        row = cursor.fetchone()
        heads: tuple[str, ...] = ()
        if row and row[0]:
            cursor.execute(f"SELECT version_num FROM {VERSION_TABLE} ORDER BY version_num")
            heads = tuple(str(item[0]) for item in cursor.fetchall())
        rows = history.read_latest(cursor, history_schema)
        progress = history.read_progress(cursor, history_schema)
    finally:
        cursor.close()
    return DatabaseState(heads, rows, progress)
