"""The session a migration runs on: one psycopg2 connection, on either path.

The direct path opens it (:func:`open_dbapi`); under Alembic the bridge hands over the
connection of Alembic's MigrationContext, with its ``autocommit_block`` and, offline
(``alembic upgrade --sql``), its output.  Everything else in the engine runs a
migration on a :class:`Session`: settings, the clean-session reset policy, notices,
a section's own timeouts, cancel registration, commit and rollback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..settings import RunOptions, sqlalchemy_url
from .translate import connect_error

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection
    from psycopg2.extensions import cursor as Cursor

    from ..sql.parse import Section
    from .cancel import CancelToken

NoticeSink = Callable[[str], None]


def libpq_url(url: str) -> str:
    """A URL psycopg2/libpq accepts (no SQLAlchemy ``+driver`` part)."""
    return "postgresql://" + sqlalchemy_url(url).split("://", 1)[1]


def open_dbapi(url: str, *, application_name: str = "fraiseql-migrate",
               **options: Any) -> Connection:
    """A psycopg2 connection to ``url``; a failure is :func:`connect_error`'s one line."""
    # lazy: psycopg2 (~20 ms) loads only when a command connects
    import psycopg2

    try:
        connection: Connection = psycopg2.connect(
            libpq_url(url), application_name=application_name, **options)
    except psycopg2.Error as err:
        raise connect_error(url, err) from err
    return connection


def standard_strings(dbapi_connection: Connection) -> bool:
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


def apply_session_settings(cursor: Cursor, options: RunOptions) -> None:
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


class _NoticeForwarder:
    """Stands in for psycopg2's ``connection.notices`` list: forwards each notice."""

    def __init__(self, sink: NoticeSink) -> None:
        self.sink = sink

    def append(self, message: str) -> None:
        self.sink(" ".join(message.strip().split(None, 1)))


def notice_forwarder(sink: NoticeSink) -> Callable[[str], None]:
    """A callable that puts one server notice (``NOTICE:  text``) into words for ``sink``."""
    return _NoticeForwarder(sink).append


class Session:
    """One psycopg2 connection a migration runs on, online or (``output`` given) written
    out for psql.

    ``autocommit_block`` leaves the current transaction for statements that cannot run
    in one (``CREATE INDEX CONCURRENTLY``); on the direct path it commits and switches
    the connection to autocommit, under Alembic it is Alembic's own (the bridge builds
    the session over Alembic's MigrationContext).  ``url`` lets the direct path reconnect
    to see what became of a migration whose connection died.
    """

    def __init__(
        self,
        dbapi: Connection | None,
        *,
        autocommit_block: Callable[[], AbstractContextManager[Any]] | None = None,
        output: Callable[[str], None] | None = None,
        url: str | None = None,
    ) -> None:
        self._dbapi = dbapi
        self.url = url
        self._autocommit_block = autocommit_block
        self.output = output
        #: offline: the history table's CREATE was written once already
        self.history_emitted = False

    @property
    def as_sql(self) -> bool:
        return self.output is not None

    @property
    def dbapi(self) -> Connection:
        assert self._dbapi is not None, "an offline session has no connection"
        return self._dbapi

    def cursor(self) -> Cursor:
        return self.dbapi.cursor()

    @property
    def standard_strings(self) -> bool:
        return standard_strings(self.dbapi)

    @property
    def closed(self) -> bool:
        return bool(self.dbapi.closed)

    def autocommit_block(self) -> AbstractContextManager[Any]:
        if self._autocommit_block is not None:
            return self._autocommit_block()
        return self._own_autocommit_block()

    @contextmanager
    def _own_autocommit_block(self) -> Iterator[None]:
        dbapi = self.dbapi
        dbapi.commit()
        dbapi.autocommit = True
        try:
            yield
        finally:
            dbapi.autocommit = False

    @contextmanager
    def forward_notices(self, sink: NoticeSink) -> Iterator[None]:
        dbapi = self.dbapi
        saved = dbapi.notices
        dbapi.notices = _NoticeForwarder(sink)  # type: ignore[assignment]  # has .append
        try:
            yield
        finally:
            dbapi.notices = saved

    @contextmanager
    def section_timeouts(self, section: Section, *, local: bool) -> Iterator[None]:
        """Apply a section's own timeouts: SET LOCAL in a transaction, else SET and restore."""
        if not section.timeouts:
            yield
            return
        cursor = self.cursor()
        try:
            saved = []
            for setting, value in section.timeouts:
                cursor.execute("SELECT current_setting(%s), set_config(%s, %s, %s)",
                               (setting, setting, value, local))
                row = cursor.fetchone()
                saved.append((setting, row[0] if row else "0"))
            yield
            if not local:
                for setting, value in saved:
                    cursor.execute("SELECT set_config(%s, %s, false)", (setting, value))
        finally:
            cursor.close()

    @contextmanager
    def cancellable(self, cancel: CancelToken | None) -> Iterator[None]:
        """``cancel`` may cancel the migration's statement running on this session
        meanwhile: the step runner sends each inside :meth:`CancelToken.sending`, and
        nothing else on the session gets a cancel request (:meth:`CancelToken.owning`)."""
        if cancel is None:
            yield
            return
        with cancel.owning(self.dbapi):
            yield

    def commit(self) -> None:
        self.dbapi.commit()

    def rollback(self) -> None:
        """End whatever transaction is open, in autocommit mode (an explicit BEGIN) or not.

        On a dead connection there is nothing to do: the server rolled back.
        """
        rollback(self.dbapi)


@dataclass(frozen=True)
class SessionReset:
    """What gives each migration under Alembic a clean session: :func:`session_reset_sql`,
    or in lease mode :func:`transaction_setup_sql`, whose settings belong to the
    migration's own transaction (``own_transaction`` False).  The direct path resets
    the same way at the head of each migration's query (:mod:`.recorder`)."""

    sql: str
    own_transaction: bool = True

    @classmethod
    def for_run(cls, options: RunOptions) -> SessionReset:
        if options.pooled:
            return cls(transaction_setup_sql(options), own_transaction=False)
        return cls(session_reset_sql(options))

    def run(self, session: Session) -> None:
        """Committed on its own when the migration's transaction has run nothing yet (an
        ``UNLISTEN`` acts only at COMMIT; Alembic's transaction then goes on as if
        nothing happened), else inside it."""
        # lazy: psycopg2 (~20 ms) loads only when a command connects
        from psycopg2.extensions import TRANSACTION_STATUS_IDLE

        dbapi = session.dbapi
        idle = dbapi.get_transaction_status() == TRANSACTION_STATUS_IDLE
        with dbapi.cursor() as cursor:
            cursor.execute(self.sql)
        if idle and self.own_transaction:
            dbapi.commit()


def rollback(dbapi: Connection) -> None:
    """:meth:`Session.rollback` on a bare connection."""
    # lazy: psycopg2 (~20 ms) loads only when a command connects
    import psycopg2
    from psycopg2.extensions import TRANSACTION_STATUS_IDLE

    if dbapi.closed:
        return
    with contextlib.suppress(psycopg2.Error):
        if not dbapi.autocommit:
            dbapi.rollback()
        elif dbapi.get_transaction_status() != TRANSACTION_STATUS_IDLE:
            dbapi.cursor().execute("ROLLBACK")
