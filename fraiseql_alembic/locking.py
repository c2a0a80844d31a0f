"""One advisory lock per database, so two deploys never migrate at the same time.

The lock is a session-level ``pg_try_advisory_lock`` taken on a dedicated
autocommit connection that stays idle while migrations run.  An idle session has
no open transaction, so ``CREATE INDEX CONCURRENTLY`` (which waits for older
transactions) never waits on it.  The server drops the lock when the connection
ends, whichever way the process ends (exit, exception, SIGKILL).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from .errors import MigrationError

#: "fraiseql" in ASCII: the bigint key of the lock, the same in every database.
LOCK_KEY = 0x667261697365716C
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

    def __init__(self, waited: float, holder: LockHolder | None) -> None:
        who = holder.describe() if holder is not None else "another session"
        super().__init__(
            f"Gave up after waiting {waited:.0f}s for the migration lock held by {who}. "
            "Another deploy is migrating this database; wait for it, raise --lock-wait "
            "(fraiseql_lock_wait in alembic.ini), "
            "or end that session (SELECT pg_terminate_backend(pid))"
        )
        self.holder = holder


def libpq_url(url: str) -> str:
    """A URL psycopg2/libpq accepts (no SQLAlchemy ``+driver`` part)."""
    from .settings import sqlalchemy_url

    return "postgresql://" + sqlalchemy_url(url).split("://", 1)[1]


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
        on_wait: Callable[[LockHolder | None], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.url = url
        self.wait_seconds = wait_seconds
        self.on_wait = on_wait
        self.should_stop = should_stop
        self.connection: Any = None

    def __enter__(self) -> MigrationLock:
        from .database import open_dbapi

        self.connection = open_dbapi(self.url, application_name=APPLICATION_NAME)
        self.connection.autocommit = True
        try:
            self._acquire()
        except BaseException:
            self.connection.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        import psycopg2

        try:
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        except psycopg2.Error:
            pass  # closing the connection below releases it anyway
        finally:
            self.connection.close()

    def _acquire(self) -> None:
        started = time.monotonic()
        told = False
        delay = 0.05
        holder: LockHolder | None = None
        while True:
            with self.connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
                row = cursor.fetchone()
            if row and row[0]:
                return
            holder = self.holder()
            if not told and self.on_wait is not None:
                self.on_wait(holder)
                told = True
            waited = time.monotonic() - started
            if waited >= self.wait_seconds:
                raise LockTimeoutError(waited, holder)
            if self.should_stop is not None and self.should_stop():
                from .cancel import MigrationInterrupted

                raise MigrationInterrupted(
                    "Stopped while waiting for the migration lock; nothing was changed"
                )
            time.sleep(min(delay, max(self.wait_seconds - waited, 0.01)))
            delay = min(delay * 2, 1.0)

    def holder(self) -> LockHolder | None:
        """The session holding the lock, if it can be seen."""
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT a.pid, coalesce(a.application_name, ''), "
                "coalesce(host(a.client_addr), 'local socket'), a.backend_start "
                "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.classid = (%s >> 32)::oid AND l.objid = (%s & 4294967295)::oid "
                "AND l.objsubid = 1 AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())",
                (LOCK_KEY, LOCK_KEY),
            )
            row = cursor.fetchone()
        if row is None:
            return None
        return LockHolder(int(row[0]), str(row[1]), str(row[2]), row[3])

