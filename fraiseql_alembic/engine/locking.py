"""One migration lock per database (and history schema: :func:`lock_key`), so two deploys
never migrate the same database at the same time.

Two modes (``--lock``, ``FRAISEQL_LOCK``, ``lock`` in pyproject.toml):

- ``advisory`` (default, :class:`MigrationLock`): a session-level
  ``pg_try_advisory_lock`` taken on a dedicated autocommit connection that stays
  idle between migrations.  An idle session has no open transaction, so ``CREATE
  INDEX CONCURRENTLY`` (which waits for older transactions) never waits on it.  The
  server drops the lock when the connection ends, whichever way the process ends.
  Behind a pooler in transaction mode the session is not ours between transactions,
  so the lock would be lost (or left held on a pooled server connection):
  :func:`engine.pooler.pooling` detects that first and the lock refuses with the fixes.
- ``lease`` (:class:`LeaseLock`): a row in ``fraiseql_migration_lock`` naming its
  holder, with an expiry that a heartbeat thread pushes forward on its own
  connection.  Every statement is a transaction of its own, so it works through any
  pooler that runs transactions (PgBouncer session or transaction mode).  A crashed
  holder's lease expires; a holder whose heartbeat fails stops before its next
  migration.

Each mode also respects the other: an advisory run waits while a live lease exists,
and a lease holder backs off while a session holds the advisory lock.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from ..errors import MigrationError
from .cancel import MigrationInterrupted
from .history import qualified_table
from .pooler import STATEMENT, pooler_error, pooling
from .session import libpq_url as libpq_url  # re-exported: backup and the API use it
from .session import open_dbapi

#: "fraiseql" in ASCII: the bigint key of the lock, the same in every database, for the
#: history schema ``public`` (see :func:`lock_key` for the others).
LOCK_KEY = 0x667261697365716C


def lock_key(schema: str) -> int:
    """The advisory lock's key for the history schema ``schema``: one lock per (database,
    schema), so that the tenants of a database (schema per tenant) migrate in parallel.
    ``public`` keeps :data:`LOCK_KEY`; another schema's key shares its upper half (the
    lock's ``classid``) and takes the lower from a hash of the name."""
    if schema == "public":
        return LOCK_KEY
    low = int.from_bytes(hashlib.sha256(schema.encode("utf-8")).digest()[:4], "big")
    if low in (LOCK_KEY & 0xFFFFFFFF, LEASE_TABLE_KEY & 0xFFFFFFFF):
        low ^= 0x80000000  # never another schema's, nor the lease table's, key
    return (LOCK_KEY & ~0xFFFFFFFF) | low
APPLICATION_NAME = "fraiseql-migrate lock"


@dataclass(frozen=True)
class LockHolder:
    """Who holds the lock, as pg_locks and pg_stat_activity tell it."""

    pid: int
    application_name: str
    client: str
    since: datetime | None

    def describe(self) -> str:
        since = f", since {self.since:%Y-%m-%d %H:%M:%S %Z}".rstrip() if self.since else ""
        app = self.application_name or "unknown application"
        return f"pid {self.pid} ({app}) from {self.client}{since}"


class LockTimeoutError(MigrationError):
    """The lock stayed taken for longer than we were allowed to wait."""

    def __init__(self, waited: float, holder: LockHolder | LeaseHolder | None) -> None:
        who = holder.describe() if holder is not None else "another session"
        way_out = (
            holder.way_out() if isinstance(holder, LeaseHolder)
            else "end that session (SELECT pg_terminate_backend(pid))"
        )
        super().__init__(
            f"Gave up after waiting {waited:.0f}s for the migration lock held by {who}. "
            "Another deploy is migrating this database; wait for it, raise --lock-wait "
            f"(fraiseql_lock_wait in alembic.ini), or {way_out}"
        )
        self.holder = holder


def _wait_for(
    attempt: Callable[[], tuple[bool, LockHolder | LeaseHolder | None]],
    wait_seconds: float,
    on_wait: Callable[[LockHolder | LeaseHolder | None], None] | None,
    should_stop: Callable[[], bool] | None,
) -> None:
    """Call ``attempt`` until it takes the lock, backing off from 50 ms to 1 s; tell
    ``on_wait`` who holds it once, and give up after ``wait_seconds`` or when
    ``should_stop`` says so (both lock modes wait alike)."""
    started = time.monotonic()
    told = False
    delay = 0.05
    while True:
        taken, holder = attempt()
        if taken:
            return
        if not told and on_wait is not None:
            on_wait(holder)
            told = True
        waited = time.monotonic() - started
        if waited >= wait_seconds:
            raise LockTimeoutError(waited, holder)
        if should_stop is not None and should_stop():
            raise MigrationInterrupted(
                "Stopped while waiting for the migration lock; nothing was changed"
            )
        time.sleep(min(delay, max(wait_seconds - waited, 0.01)))
        delay = min(delay * 2, 1.0)


class MigrationLock:
    """Context manager holding the database's migration lock.

    ``on_wait`` is called once, with the holder, when the lock is taken by someone
    else; ``should_stop`` is polled while waiting (an interrupted waiter stops).
    """

    def __init__(
        self,
        url: str,
        *,
        wait_seconds: float = 60.0,
        on_wait: Callable[[LockHolder | LeaseHolder | None], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        history_schema: str = "public",
    ) -> None:
        self.url = url
        self.wait_seconds = wait_seconds
        self.on_wait = on_wait
        self.should_stop = should_stop
        self.history_schema = history_schema
        self.connection: Any = None

    def __enter__(self) -> MigrationLock:

        self.connection = open_dbapi(self.url, application_name=APPLICATION_NAME)
        self.connection.autocommit = True
        try:
            mode = pooling(self.connection, self.url)
            if mode is not None:
                raise pooler_error(self.url, mode)
            self._acquire()
        except BaseException:
            self.connection.close()
            raise
        return self

    def check(self) -> None:
        """Nothing to check: the lock lives as long as the session (see LeaseLock)."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # lazy: psycopg2 (~20 ms) loads only when a command connects
        import psycopg2

        try:
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)",
                               (lock_key(self.history_schema),))
        except psycopg2.Error:
            pass  # closing the connection below releases it anyway
        finally:
            self.connection.close()

    def _acquire(self) -> None:
        key = lock_key(self.history_schema)

        def attempt() -> tuple[bool, LockHolder | LeaseHolder | None]:
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s), to_regclass(%s) IS NOT NULL",
                               (key, lease_table(self.history_schema)))
                row = cursor.fetchone()
                lease = (live_lease(cursor, self.history_schema, table_exists=bool(row[1]))
                         if row and row[0] else None)
                if lease is not None:  # a deploy in lease mode is migrating: let it be
                    cursor.execute("SELECT pg_advisory_unlock(%s)", (key,))
            if row and row[0] and lease is None:
                return True, None
            return False, lease or self.holder()

        _wait_for(attempt, self.wait_seconds, self.on_wait, self.should_stop)

    def holder(self) -> LockHolder | None:
        """The session holding the lock, if it can be seen."""
        with self.connection.cursor() as cursor:
            return advisory_holder(cursor, lock_key(self.history_schema))


def advisory_holder(cursor: Any, key: int = LOCK_KEY) -> LockHolder | None:
    """The session holding the advisory lock ``key`` in this database, if it can be seen."""
    cursor.execute(
        "SELECT a.pid, coalesce(a.application_name, ''), "
        "coalesce(host(a.client_addr), 'local socket'), a.backend_start "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.classid = (%s >> 32)::oid AND l.objid = (%s & 4294967295)::oid "
        "AND l.objsubid = 1 AND l.database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())",
        (key, key),
    )
    row = cursor.fetchone()
    if row is None:
        return None
    return LockHolder(int(row[0]), str(row[1]), str(row[2]), row[3])


# ---------------------------------------------------------------------------
# lease mode

LEASE_TABLE = "fraiseql_migration_lock"
HEARTBEAT_APPLICATION = "fraiseql-migrate heartbeat"


def lease_table(schema: str) -> str:
    """``"schema".fraiseql_migration_lock`` (the history schema, validated)."""
    qualified_table(schema)
    return f'"{schema}".{LEASE_TABLE}'


def lease_table_sql(table: str) -> str:
    """One row at most (``id = 1``): who holds the lease, and until when."""
    return (
        f"CREATE TABLE IF NOT EXISTS {table} ("
        "id integer PRIMARY KEY DEFAULT 1 CHECK (id = 1), "
        "token text NOT NULL, host text NOT NULL, pid integer NOT NULL, "
        "application text NOT NULL, acquired_at timestamptz NOT NULL, "
        "heartbeat_at timestamptz NOT NULL, expires_at timestamptz NOT NULL)"
    )


#: The transaction-level advisory lock that lets one deploy at a time create the lease
#: table (not LOCK_KEY: holding that one means "migrating" to the advisory mode).
LEASE_TABLE_KEY = LOCK_KEY + 1


def ensure_lease_table(connection: Any, table: str) -> None:
    """Create the lease table unless it exists, safely while other deploys do the same.

    Concurrent ``CREATE TABLE IF NOT EXISTS`` is not safe in PostgreSQL: two sessions
    that both find no table both create it, and the second fails on the catalogs'
    unique indexes (``type ... already exists``, 42710, or 23505).  The creations are
    serialised by a transaction-level advisory lock (kept by a transaction pooler for
    the transaction), so the next one finds the table; those errors are still taken
    as "another deploy created it" (a creator that does not take the lock).
    ``connection`` is in autocommit."""
    # lazy: psycopg2 (~20 ms) loads only when a command connects
    import psycopg2
    import psycopg2.errors

    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
        row = cursor.fetchone()
        if row and row[0]:
            return
        try:
            cursor.execute(f"BEGIN; SELECT pg_advisory_xact_lock({LEASE_TABLE_KEY}); "
                           f"{lease_table_sql(table)}; COMMIT")
        except (psycopg2.errors.UniqueViolation, psycopg2.errors.DuplicateTable,
                psycopg2.errors.DuplicateObject):
            cursor.execute("ROLLBACK")


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds the lease, as its row tells it."""

    host: str
    pid: int
    application: str
    since: datetime | None
    expires_in: float  # seconds, by the server's clock
    table: str

    def describe(self) -> str:
        since = f", since {self.since:%Y-%m-%d %H:%M:%S %Z}".rstrip() if self.since else ""
        return (
            f"pid {self.pid} ({self.application}) on host {self.host}{since}, by a lease "
            f"that expires in {max(self.expires_in, 0):.0f}s unless its heartbeat renews it"
        )

    def way_out(self) -> str:
        return (
            "if that deploy is dead, wait for its lease to expire or delete it "
            f"(DELETE FROM {self.table})"
        )


def live_lease(cursor: Any, schema: str, *, table_exists: bool | None = None) -> LeaseHolder | None:
    """The unexpired lease in ``schema``'s lock table, if there is one."""
    table = lease_table(schema)
    if table_exists is None:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
        row = cursor.fetchone()
        table_exists = bool(row and row[0])
    if not table_exists:
        return None
    cursor.execute(
        f"SELECT host, pid, application, acquired_at, "
        f"extract(epoch FROM expires_at - now())::float8 FROM {table} "
        "WHERE id = 1 AND expires_at > now()"
    )
    row = cursor.fetchone()
    if row is None:
        return None
    return LeaseHolder(str(row[0]), int(row[1]), str(row[2]), row[3], float(row[4]), table)


class LeaseLostError(MigrationError):
    """The heartbeat could not keep the lease: another deploy may hold it now."""


class LeaseLock:
    """Context manager holding the migration lease (lock mode ``lease``).

    The lease is the one row of ``fraiseql_migration_lock`` in the history schema.
    Taking it is one statement (insert, or take over an expired row), so is every
    renewal and the release: nothing depends on keeping a server session, and it
    works through PgBouncer in transaction mode.  A heartbeat thread renews the
    expiry every quarter of ``expiry`` seconds on a connection of its own.  When a
    renewal finds the row taken over or deleted, or no renewal has succeeded for
    ``expiry`` seconds, the lease is lost: :meth:`check`, called before each
    migration, raises :class:`LeaseLostError`.  ``connection`` (autocommit, idle)
    is the one that took the lease; the direct path plans and runs on it.
    """

    def __init__(
        self,
        url: str,
        *,
        wait_seconds: float = 60.0,
        expiry: float = 60.0,
        history_schema: str = "public",
        on_wait: Callable[[LockHolder | LeaseHolder | None], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        application: str | None = None,
    ) -> None:
        self.url = url
        self.wait_seconds = wait_seconds
        self.expiry = expiry
        self.schema = history_schema
        self.table = lease_table(history_schema)
        self.on_wait = on_wait
        self.on_notice = on_notice
        self.should_stop = should_stop
        self.application = application or (
            os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
        )
        self.token = uuid.uuid4().hex
        self.connection: Any = None
        self._renewed = 0.0  # time.monotonic() when the last successful renewal started
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LeaseLock:

        self.connection = open_dbapi(self.url, application_name=APPLICATION_NAME)
        self.connection.autocommit = True
        try:
            if pooling(self.connection, self.url) == STATEMENT:
                raise pooler_error(self.url, STATEMENT)
            self._ensure_table()
            self._acquire()
        except BaseException:
            self.connection.close()
            raise
        self._thread = threading.Thread(
            target=self._heartbeat, name="fraiseql-lease-heartbeat", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # lazy: psycopg2 (~20 ms) loads only when a command connects
        import psycopg2


        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            connection = self.connection
            if connection.closed:  # e.g. its session was ended: release on a new one
                connection = open_dbapi(self.url, application_name=APPLICATION_NAME)
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"DELETE FROM {self.table} WHERE id = 1 AND token = %s",
                               (self.token,))
            if connection is not self.connection:
                connection.close()
        except (psycopg2.Error, MigrationError):
            pass  # the lease expires by itself
        finally:
            self.connection.close()

    def check(self) -> None:
        """Raise LeaseLostError if the lease may no longer be ours."""
        reason = self._lost
        if reason is None and time.monotonic() - self._renewed >= self.expiry:
            reason = f"no heartbeat renewed it for {self.expiry:.0f}s"
        if reason is not None:
            raise LeaseLostError(
                f"Lost the migration lease in {self.table} ({reason}): another deploy may "
                "be migrating this database now, so this one stopped before its next "
                "migration; those before it are applied. See `fraiseql migrate status`, "
                "then run the command again"
            )

    def _ensure_table(self) -> None:
        ensure_lease_table(self.connection, self.table)

    def _acquire(self) -> None:
        def attempt() -> tuple[bool, LockHolder | LeaseHolder | None]:
            self._renewed = time.monotonic()
            took, previous = self._try_take()
            with self.connection.cursor() as cursor:
                if not took:
                    return False, live_lease(cursor, self.schema, table_exists=True)
                holder = advisory_holder(cursor, lock_key(self.schema))
                if holder is None:
                    if previous is not None and self.on_notice is not None:
                        self.on_notice(
                            f"Took over the migration lease of {previous}, which "
                            "expired without being renewed (that deploy stopped?)"
                        )
                    return True, None
                # a deploy in advisory mode is migrating: let it be
                cursor.execute(f"DELETE FROM {self.table} WHERE id = 1 AND token = %s",
                               (self.token,))
                return False, holder

        _wait_for(attempt, self.wait_seconds, self.on_wait, self.should_stop)

    def _try_take(self) -> tuple[bool, str | None]:
        """Insert the lease, or take over an expired one: (taken, who held it before)."""
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"WITH previous AS (SELECT host, pid, application FROM {self.table} "
                "WHERE id = 1) "
                f"INSERT INTO {self.table} AS lease (id, token, host, pid, application, "
                "acquired_at, heartbeat_at, expires_at) VALUES (1, %s, %s, %s, %s, now(), "
                "now(), now() + make_interval(secs => %s)) "
                "ON CONFLICT (id) DO UPDATE SET token = EXCLUDED.token, host = EXCLUDED.host, "
                "pid = EXCLUDED.pid, application = EXCLUDED.application, "
                "acquired_at = EXCLUDED.acquired_at, heartbeat_at = EXCLUDED.heartbeat_at, "
                "expires_at = EXCLUDED.expires_at WHERE lease.expires_at <= now() "
                "RETURNING (SELECT format('pid %%s (%%s) on host %%s', pid, application, host) "
                "FROM previous)",
                (self.token, socket.gethostname(), os.getpid(), self.application, self.expiry),
            )
            row = cursor.fetchone()
        if row is None:
            return False, None
        return True, (str(row[0]) if row[0] is not None else None)

    def _heartbeat(self) -> None:
        """Renew the expiry every quarter of it until told to stop or the lease is lost."""
        # lazy: psycopg2 (~20 ms) loads only when a command connects
        import psycopg2


        every = max(self.expiry / 4, 0.1)
        connection: Any = None
        try:
            while not self._stop.wait(every):
                started = time.monotonic()
                try:
                    if connection is None or connection.closed:
                        connection = open_dbapi(self.url, application_name=HEARTBEAT_APPLICATION,
                                                connect_timeout=max(int(every), 2))
                        connection.autocommit = True
                    with connection.cursor() as cursor:
                        cursor.execute(
                            f"UPDATE {self.table} SET heartbeat_at = now(), "
                            "expires_at = now() + make_interval(secs => %s) "
                            "WHERE id = 1 AND token = %s",
                            (self.expiry, self.token),
                        )
                        renewed = cursor.rowcount == 1
                except (psycopg2.Error, MigrationError) as err:
                    if connection is not None:
                        connection.close()
                    connection = None
                    if time.monotonic() - self._renewed >= self.expiry:
                        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
                        self._lost = f"no heartbeat renewed it for {self.expiry:.0f}s: {first}"
                        return
                    continue
                if not renewed:
                    self._lost = "its row was taken over or deleted"
                    return
                self._renewed = started
        finally:
            if connection is not None:
                connection.close()
