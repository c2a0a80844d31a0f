"""Connections and read-only queries of the database state.

Driver errors are put into words by :mod:`.translate`.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..engine import history
from ..settings import Settings, sqlalchemy_url
from .history import HistoryRow, Progress
from .pooler import STATEMENT, pooler_error, statement_pooling
from .session import SESSION_CLEAN_SQL
from .session import open_dbapi as open_dbapi  # the API connects through this module
from .session import standard_strings as standard_strings
from .translate import connect_error, foreign_error

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

VERSION_TABLE = "alembic_version"


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


def create_engine(url: str, *, read_only: bool = False) -> Any:
    """An engine with no pool; ``read_only`` makes every transaction READ ONLY."""
    # lazy: SQLAlchemy (~150 ms) loads only when a run needs it
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


def read_state(
    dbapi_connection: Any, history_schema: str, heads: tuple[str, ...] | None = None
) -> DatabaseState:
    """Read alembic_version, the history and segment progress on a DB-API connection.

    ``heads``, when given, are the version table's rows as the caller read them (an
    adopted project's env.py may name its own ``version_table``); alembic_version is
    then not read."""
    cursor = dbapi_connection.cursor()
    try:
        if heads is None:
            cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (VERSION_TABLE,))
            row = cursor.fetchone()
            heads = ()
            if row and row[0]:
                cursor.execute(f"SELECT version_num FROM {VERSION_TABLE} ORDER BY version_num")
                heads = tuple(str(item[0]) for item in cursor.fetchall())
        rows = history.read_latest(cursor, history_schema)
        progress = history.read_progress(cursor, history_schema)
    finally:
        cursor.close()
    return DatabaseState(heads, rows, progress)


def current_state(settings: Settings, connection: Connection | None = None) -> DatabaseState:
    """Where the database is, on a read-only psycopg2 session (no SQLAlchemy needed):
    a new one, or a read-only transaction on ``connection`` (autocommit, idle).  One
    snapshot (REPEATABLE READ): alembic_version and the history are read as of one
    moment, so a deploy committing between the reads (``status`` takes no lock) does
    not make the migration it applied look untracked.

    On a new session, and on any in lease mode, the transaction first resets what a new
    session would not have (:data:`~.session.SESSION_CLEAN_SQL`, undone by its
    ROLLBACK): behind a transaction pooler the server session may be one on which a
    migration's ``SET search_path = ''`` (pg_dump output) or ``SET ROLE`` was left, and
    alembic_version, found on the search_path, must not seem missing.  A session the
    caller set up (``status --targets`` sets each schema's search_path) is read as is."""
    # lazy: psycopg2 (~20 ms) loads only when a command connects
    import psycopg2

    own = connection is None
    session = open_dbapi(settings.require_url()) if connection is None else connection
    if own:  # read only by BEGIN READ ONLY: poolers refuse a startup `options` parameter
        session.autocommit = True
    try:
        with session.cursor() as cursor:
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\n"
                           + (SESSION_CLEAN_SQL if own or settings.run.pooled else ""))
        try:
            return read_state(session, settings.history_schema)
        finally:
            with suppress(psycopg2.Error), session.cursor() as cursor:
                cursor.execute("ROLLBACK")
    except psycopg2.Error as err:
        if own and session.closed and statement_pooling(settings.require_url()):
            raise pooler_error(settings.require_url(), STATEMENT) from err
        raise foreign_error(err) from err
    finally:
        if own:
            session.close()
