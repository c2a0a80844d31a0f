"""Rehearse pending migrations: run them in one transaction, then roll it all back.

``up --rehearse`` answers "would this deploy work against this database?" with the
database itself: every pending migration that can run in a transaction runs, in
order, inside ONE transaction on one connection, and that transaction is rolled
back at the end whatever happened.  No ``alembic_version`` change, no history row,
nothing of the migrations' own SQL is kept.

The rehearsal stops at the first migration that fails (later migrations usually
depend on it: they are "not reached"), and at the first one that cannot run in a
transaction (``CREATE INDEX CONCURRENTLY``, ``transaction:false``) or is a Python
revision: those and everything after them are "not rehearsed".
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import (
    MigrationError,
    MigrationExecutionError,
    MigrationFileError,
)
from ..sql.statements import split_statements
from ..sqlstate import UNSAFE_NEW_ENUM_VALUE_USAGE
from .cancel import MigrationInterrupted, sending
from .events import (
    NOT_REACHED,
    NOT_REHEARSED,
    WOULD_APPLY,
    WOULD_FAIL,
    Outcome,
)
from .execute import execute_statements, needs_autocommit
from .session import Session, apply_session_settings, open_dbapi, rollback, session_reset_sql
from .translate import foreign_error, server_words

if TYPE_CHECKING:
    from ..settings import RunOptions
    from ..sql.parse import ParsedMigration
    from .cancel import CancelToken

@dataclass(frozen=True)
class Candidate:
    """A pending migration to rehearse; ``migration`` is None for a Python revision."""

    version: str
    filename: str
    migration: ParsedMigration | None


def rehearse(
    url: str,
    candidates: Sequence[Candidate],
    *,
    options: RunOptions,
    on_outcome: Callable[[Outcome], None],
    on_notice: Callable[[str], None],
    cancel: CancelToken | None,
) -> list[Outcome]:
    """Run ``candidates`` in one transaction that is always rolled back; one Outcome each.

    The session gets the run's ``lock_timeout`` / ``statement_timeout``; a file's own
    timeouts apply to that file.  ``cancel`` stops the rehearsal (MigrationInterrupted).
    """
    # lazy: psycopg2 (~20 ms) loads only when a command connects
    import psycopg2


    dbapi = open_dbapi(url, application_name="fraiseql-migrate rehearsal")
    # the statements that may run long go through CancelToken.sending: a cancel reaches
    # them, and nothing else (the reset, the rollback) gets a request
    owned: AbstractContextManager[None] = (
        cancel.owning(dbapi) if cancel is not None else nullcontext())
    owned.__enter__()
    outcomes: list[Outcome] = []

    def report(outcome: Outcome) -> None:
        outcomes.append(outcome)
        on_outcome(outcome)

    reset = session_reset_sql(options)
    try:
        with dbapi.cursor() as cursor:
            apply_session_settings(cursor, options)
        dbapi.commit()  # only session settings ran: they must outlive the rollbacks below
        shim = Session(dbapi)
        stopped: str | None = None
        why: str | None = None  # said of the migrations after the stop, when it helps
        for candidate in candidates:
            if stopped is not None:
                report(Outcome(candidate.version, candidate.filename, stopped, why))
                continue
            if cancel is not None:
                cancel.check(f"before {candidate.filename}; nothing was written")
            with dbapi.cursor() as cursor:  # the same session `up` gives each migration
                cursor.execute(reset)
            outcome = _rehearse_one(shim, candidate, on_notice, cancel)
            if outcome.result == WOULD_APPLY:
                _still_in_transaction(dbapi, candidate.filename)
            report(outcome)
            if outcome.result == WOULD_FAIL:
                stopped = NOT_REACHED
            elif outcome.result == NOT_REHEARSED:
                stopped = NOT_REHEARSED
            elif candidate.migration is not None and _adds_enum_value(candidate.migration):
                stopped = NOT_REHEARSED
                why = (f"it comes after {candidate.filename}, which adds an enum value that "
                       f"nothing may use before that migration commits (SQLSTATE "
                       f"{UNSAFE_NEW_ENUM_VALUE_USAGE}); `up` "
                       "commits each migration, the rehearsal cannot")
    except psycopg2.Error as err:
        raise foreign_error(err) from err
    finally:
        rollback(dbapi)
        owned.__exit__(None, None, None)
        dbapi.close()
    return outcomes


def _rehearse_one(
    shim: Session,
    candidate: Candidate,
    on_notice: Callable[[str], None],
    cancel: CancelToken | None,
) -> Outcome:
    """Run one migration inside the rehearsal's transaction."""
    version, filename, migration = candidate.version, candidate.filename, candidate.migration
    if migration is None:
        return Outcome(version, filename, NOT_REHEARSED,
                       "a Python revision: only SQL files can be rehearsed")
    try:
        split = split_statements(migration, migration.up,
                                 standard_strings=shim.standard_strings)
    except MigrationFileError as err:
        return Outcome(version, filename, WOULD_FAIL, err.message)
    if needs_autocommit(migration.up, split.statements):
        return Outcome(version, filename, NOT_REHEARSED, _why_not_transactional(migration))
    if split.unwrapped:
        on_notice(f"note: {filename} is wrapped in BEGIN; ... COMMIT; those two statements are "
                  "skipped, as `up` skips them")
    started = time.perf_counter()
    try:
        with shim.section_timeouts(migration.up, local=False):
            execute_statements(
                shim, migration, split.statements, on_notice, cancel, in_transaction=True,
            )
    except MigrationExecutionError as err:
        return Outcome(version, filename, WOULD_FAIL, err.located)
    with sending(cancel, shim.dbapi, f"in {filename} before its deferred checks"):
        failed_at_commit = _deferred_checks(shim.dbapi, filename)
    if failed_at_commit is not None and cancel is not None and cancel.cancelled:
        raise MigrationInterrupted(f"Stopped by {cancel.reason} in {filename} during its "
                                   "deferred checks; nothing was written")
    if failed_at_commit is not None:
        return Outcome(version, filename, WOULD_FAIL, failed_at_commit)
    return Outcome(version, filename, WOULD_APPLY,
                   elapsed_ms=int((time.perf_counter() - started) * 1000))


def _deferred_checks(dbapi: Any, filename: str) -> str | None:
    """Run the checks a COMMIT would (deferred constraints) now; their error, if any.

    ``SET CONSTRAINTS ALL IMMEDIATE`` stays in force for the rest of the rehearsal, so a
    later migration that relies on a deferred constraint *inside* itself may be reported
    as failing although `up` (one transaction per migration) would apply it.
    """
    # lazy: psycopg2 (~20 ms) loads only when a command connects
    import psycopg2

    try:
        with dbapi.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    except psycopg2.Error as err:
        message, state = server_words(err)
        return f"{filename}: at COMMIT: {message}{state} (a deferred constraint)"
    return None


def _adds_enum_value(migration: ParsedMigration) -> bool:
    """Whether the up section runs ``ALTER TYPE ... ADD VALUE``: PostgreSQL lets no later
    statement of the same transaction use the new value (55P04), so what follows it cannot
    be rehearsed in the rehearsal's one transaction."""
    # lazy: pglast (~35 ms) loads only when a statement is parsed
    from pglast import ast, parse_sql
    from pglast.parser import ParseError

    for statement in split_statements(migration, migration.up).statements:
        if not re.search(r"\bADD\s+VALUE\b", statement.sql, re.IGNORECASE):
            continue
        try:
            parsed = parse_sql(statement.sql)
        except ParseError:
            continue
        if any(isinstance(raw.stmt, ast.AlterEnumStmt) and raw.stmt.newVal for raw in parsed):
            return True
    return False


def _why_not_transactional(migration: ParsedMigration) -> str:
    if migration.up.transaction is False:
        return (f"its up marker (line {migration.up.line - 1}) says transaction:false, so it "
                "cannot run inside the rehearsal's transaction")
    statement = next(s for s in split_statements(migration, migration.up).statements
                     if s.non_transactional)
    words = " ".join(statement.sql.split()[:4])
    return (f"line {statement.line}: `{words}` cannot run inside a transaction, so it cannot "
            "be rehearsed")


def _still_in_transaction(dbapi: Any, filename: str) -> None:
    """Refuse to go on if a migration ended the rehearsal's transaction.

    The statement splitter refuses COMMIT and its kin, so this is a last line of
    defence: the rehearsal must never commit anything.
    """
    # lazy: psycopg2 (~20 ms) loads only when a command connects
    from psycopg2.extensions import TRANSACTION_STATUS_INERROR, TRANSACTION_STATUS_INTRANS

    status = dbapi.get_transaction_status()
    if status not in (TRANSACTION_STATUS_INTRANS, TRANSACTION_STATUS_INERROR):
        raise MigrationError(
            f"Rehearsal stopped: {filename} ended the rehearsal's transaction, so what ran "
            "before it may have been committed; check the database with `fraiseql migrate "
            "status` and report this as a bug"
        )
