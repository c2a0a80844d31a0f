"""What a verb that moves the database does around its plan: report progress, hold the
migration lock, read where the database is, settle a statement an interrupted run left
unrecorded, back up, run SQL files directly, and retry a migration that hit
``lock_timeout``.  :mod:`fraiseql_alembic.api` strings these together, one verb each.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import MigrationError, MigrationExecutionError, plural
from ..settings import LEASE, Settings
from ..sqlstate import LOCK_NOT_AVAILABLE
from ..sqlstate import shown as shown_sqlstate
from . import backup, history
from .backup import Backup
from .events import Events
from .locking import LeaseHolder, LeaseLock, LockHolder, MigrationLock, libpq_url
from .plan import Script, display_name
from .recorder import Step
from .run import run_steps
from .translate import foreign_error

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

    from .cancel import CancelToken
    from .events import Outcome
    from .tracing import MigrationSpans

#: ``--resume``: what became of the statement an interrupted run left unrecorded.
Resume = Literal["done", "again"]


#: What receives progress while migrations run (the CLI's reporters): the one protocol of
#: :mod:`.events`, under the name the API has always given it.
Reporter = Events


class Progress:
    """Forwards progress to the caller's reporter (and to the ``observer``, the spans of
    :mod:`.tracing` when something traces) and remembers which migration is running."""

    def __init__(self, reporter: Reporter | None) -> None:
        self.reporter = reporter
        self.current: str | None = None
        #: called before each migration starts (the lease's check: stop if it was lost)
        self.before_each: Callable[[], None] | None = None
        #: also told when a migration starts, ends or fails (:meth:`failed`)
        self.observer: MigrationSpans | None = None

    def observe(self, observer: MigrationSpans | None) -> None:
        self.observer = observer

    def start(self, filename: str, is_upgrade: bool) -> None:
        if self.before_each is not None:
            self.before_each()
        self.current = filename
        if self.observer is not None:
            self.observer.start(filename, is_upgrade)
        if self.reporter is not None:
            self.reporter.start(filename, is_upgrade)

    def done(self, filename: str, is_upgrade: bool) -> None:
        self.current = None
        if self.observer is not None:
            self.observer.done(filename, is_upgrade)
        if self.reporter is not None:
            self.reporter.done(filename, is_upgrade)

    def failed(self, error: BaseException) -> None:
        """The running migration failed and is retried (a failure that ends the run
        reaches the observer as an exception leaving :func:`.tracing.run_span`)."""
        self.current = None
        if self.observer is not None:
            self.observer.failed(error)

    def rows(self, filename: str, count: int) -> None:
        """How many rows the running migration changed, where the server said."""
        if self.observer is not None:
            self.observer.rows(filename, count)
        self._optional("rows", filename, count)

    def notice(self, text: str) -> None:
        if self.reporter is not None:
            self.reporter.notice(text)

    def marked(self, filename: str) -> None:
        if self.reporter is not None:
            self.reporter.marked(filename)

    def waiting(self, text: str) -> None:
        if self.observer is not None:
            self.observer.waiting(text)
        if self.reporter is not None:
            self.reporter.waiting(text)

    def plan(self, total: int, is_upgrade: bool) -> None:
        if self.observer is not None:
            self.observer.plan(total, is_upgrade)
        self._optional("plan", total, is_upgrade)

    def backed_up(self, dumped: Backup) -> None:
        self._optional("backed_up", dumped)

    def rehearsed(self, outcome: Outcome) -> None:
        self._optional("rehearsed", outcome)

    def _optional(self, name: str, *args: Any) -> None:
        method = getattr(self.reporter, name, None)
        if method is not None:
            method(*args)


@contextmanager
def migration_lock(
    settings: Settings, progress: Progress, cancel: CancelToken | None
) -> Iterator[Connection]:
    """Hold the database's migration lock (advisory, or a lease with ``--lock lease``)
    while planning and running; yields the lock's connection (autocommit, idle), which
    the direct path also plans and runs on.  Under a lease, ``progress.start`` first
    checks that the lease is still ours, so a lost lease stops the run before the next
    migration."""
    options = settings.run

    def on_wait(holder: LockHolder | LeaseHolder | None) -> None:
        who = holder.describe() if holder is not None else "another session"
        progress.waiting(
            f"Waiting up to {options.lock_wait:.0f}s for the migration lock held by {who}"
        )

    should_stop = (lambda: cancel.cancelled) if cancel is not None else None
    lock: LeaseLock | MigrationLock
    if options.lock == LEASE:
        lock = LeaseLock(
            settings.require_url(), wait_seconds=options.lock_wait,
            expiry=options.lease_expiry, history_schema=settings.history_schema,
            on_wait=on_wait, on_notice=progress.waiting, should_stop=should_stop,
        )
    else:
        lock = MigrationLock(
            settings.require_url(), wait_seconds=options.lock_wait, on_wait=on_wait,
            should_stop=should_stop, history_schema=settings.history_schema,
        )
    with lock:
        progress.before_each = lock.check
        try:
            yield lock.connection
        finally:
            progress.before_each = None


def run_direct(
    settings: Settings, progress: Progress, cancel: CancelToken | None, steps: list[Step],
    connection: Connection,
) -> None:
    """Run SQL-only steps with :mod:`fraiseql_alembic.engine.run` (retries included), on
    ``connection``, the session holding the migration lock."""
    done: set[str] = set()  # versions completed, so that a retry resumes after them
    run_with_retries(
        settings,
        progress,
        lambda: run_steps(
            settings.require_url(),
            steps,
            history_schema=settings.history_schema,
            options=settings.run,
            events=progress,
            cancel=cancel,
            done=done,
            connection=connection,
        ),
    )


def settle_interrupted(
    settings: Settings,
    connection: Connection,
    direction: str,
    resume: Resume,
    scripts: Sequence[Script],
    notice: Callable[[str], None],
) -> None:
    """Settle, by the user's word, the statement that a run of ``direction`` sent
    outside a transaction and stopped before recording (the run that finds it stops
    with an :class:`~fraiseql_alembic.errors.InterruptedStatementError`).

    ``"done"``: it took effect; it is recorded as completed and the file resumes after
    it.  ``"again"``: the record of it is dropped, and the file resumes with it.
    ``connection`` is an idle autocommit session under the migration lock.
    """
    # lazy: psycopg2 (~20 ms) loads only when a command connects
    import psycopg2

    try:
        with connection.cursor() as cursor:
            settled = history.resolve_running(
                cursor, settings.history_schema, direction, done=resume == "done"
            )
    except psycopg2.Error as err:
        raise foreign_error(err) from err
    if settled is None:
        raise MigrationError(
            f"--resume {resume}: no statement of an earlier `fraiseql migrate {direction}` "
            "was left unrecorded (see `fraiseql migrate status`); nothing was run. Run the "
            "command without --resume"
        )
    names = {script.revision: display_name(script) for script in scripts}
    where = f"{names.get(settled.version, settled.version)}:{settled.statement_line}"
    notice(f"{where}: recorded as done, not run again (--resume done)" if resume == "done"
           else f"{where}: will be run again (--resume again)")


def load_sql_scanner_in_background() -> None:
    """Start importing the splitter (psqlscan: about 10 ms compiling its patterns) and
    the parser (:mod:`.sql.pgparse`, libpg_query; it classifies statements such as
    ``CREATE INDEX CONCURRENTLY``) on a daemon thread.

    Reading the pending files needs them, but nothing before that does; loaded here, the
    imports overlap with waiting for the lock connection and the state queries instead
    of delaying the first migration.  A failed import is left for the real one to report.
    """
    if {"fraiseql_alembic.sql.pgparse", "fraiseql_alembic.sql.psqlscan"} <= sys.modules.keys():
        return

    def load() -> None:
        with suppress(Exception):
            # lazy: loaded in a background thread, overlapping the wait for the lock
            from ..sql import psqlscan  # noqa: F401
        with suppress(Exception):
            # lazy: loaded in a background thread, overlapping the wait for the lock
            from ..sql import pgparse  # noqa: F401

    threading.Thread(target=load, name="fraiseql-load-scanner", daemon=True).start()


def back_up(
    settings: Settings, target: Path | bool, cancel: CancelToken | None
) -> Backup:
    """``pg_dump`` the database to ``target`` (True: ``backups/<db>-<UTC time>.dump``)."""
    url = settings.require_url()
    if target is True:
        target = backup.default_path(backup.split_password(libpq_url(url)).dbname)
    assert isinstance(target, Path)
    return backup.dump(url, target, lock_timeout=settings.run.lock_timeout, cancel=cancel)


def run_with_retries(settings: Settings, progress: Progress, run: Callable[[], None]) -> None:
    """Run migrations; a migration that hit lock_timeout (55P03) is retried.

    Every migration is one transaction, so a failed attempt left nothing behind and
    the next attempt resumes from the last completed migration.
    """
    attempts = settings.run.lock_retries + 1
    for attempt in range(1, attempts + 1):
        try:
            run()
            return
        except MigrationExecutionError as err:
            if err.sqlstate != LOCK_NOT_AVAILABLE:
                raise
            if attempt == attempts:
                raise MigrationError(
                    f"Migration {err.filename} could not get a lock"
                    + (f" at line {err.line}" if err.line else "") + " "
                    f"({err.pg_message}{shown_sqlstate(LOCK_NOT_AVAILABLE)}). Gave up after "
                    f"{plural(attempts, 'attempt')}: a long transaction "
                    "holds a lock this migration needs; nothing of it was kept. Retry when "
                    "that transaction ends, or raise --lock-timeout"
                ) from err
            delay = min(2 ** (attempt - 1), 30)
            progress.failed(err)
            progress.notice(
                f"Lock timeout in {err.filename} (SQLSTATE {LOCK_NOT_AVAILABLE}): attempt "
                f"{attempt} of {attempts} rolled back; retrying in {delay}s"
            )
            time.sleep(delay)
