"""Run a migration: the one step runner of both paths.

The direct path (``fraiseql migrate up``/``down`` on a folder of SQL files) calls
:func:`run_steps`; under Alembic, each SQL revision's generated ``upgrade()`` /
``downgrade()`` calls :func:`run_step` on Alembic's connection.  Both go the same way:
a plain transactional section is sent as one query (:func:`run_batched`, located by
:mod:`.batchquery` without running anything again); any other runs statement by
statement (:func:`run_statements`), segment by segment when it cannot be one
transaction (:mod:`.resume`).  Only the :mod:`.recorder` differs: ours moves
``alembic_version`` in the step's own transaction, under Alembic Alembic does.
"""

from __future__ import annotations

import functools
import re
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .. import sqlstate
from ..errors import DatabaseError, MigrationError
from ..sql.psqlscan import scan
from ..sql.statements import SplitSection, Statement, split_statements, terminated
from . import batchquery, history
from .cancel import MigrationInterrupted, sending
from .events import Events
from .execute import (
    emit_offline,
    execute_statements,
    interrupted,
    located_error,
    needs_autocommit,
)
from .recorder import (
    PREPARED_STATEMENT_GONE,
    OwnRecorder,
    Recorder,
    Step,
    prepare,
    session_check_failed,
    version_moved,
)
from .resume import execute_segments
from .session import NoticeSink, Session, notice_forwarder, open_dbapi
from .translate import foreign_error, server_words

if TYPE_CHECKING:
    from ..settings import RunOptions
    from ..sql.parse import ParsedMigration, Section
    from .cancel import CancelToken

__all__ = ["Step", "run_step", "run_steps"]


def run_steps(
    url: str,
    steps: Sequence[Step],
    *,
    history_schema: str,
    options: RunOptions,
    events: Events | None,
    cancel: CancelToken | None,
    done: set[str],
    connection: Any = None,
) -> None:
    """Run ``steps`` in order, each committed on its own; ``done`` collects versions.

    Steps whose version is already in ``done`` are skipped (a retry resumes).  They run
    on ``connection`` (an idle autocommit session, left open and in autocommit
    afterwards) or on a new connection to ``url``.
    """
    import psycopg2  # lazy: start-up time

    dbapi = connection if connection is not None else open_dbapi(url)
    dbapi.autocommit = False
    session = Session(dbapi, url=url)
    todo = [step for step in steps if step.migration.name.version not in done]
    try:
        with session.cancellable(cancel):
            try:
                recorder = prepare(dbapi, history_schema, options)
                partial = _partly_run(session, history_schema)
            except psycopg2.Error as err:
                raise foreign_error(err) from err
            for prepared in _prepared_ahead(todo, recorder):
                step = prepared.step
                key, filename = step.migration.name.version, step.migration.name.filename
                if cancel is not None:
                    cancel.check(f"before {filename}")
                if events is not None:
                    events.start(filename, step.upgrade)
                resumes = (key, "up" if step.upgrade else "down") in partial
                run_step(session, step, recorder, events, cancel,
                         prepared=prepared, resumes=resumes)
                done.add(key)
                if events is not None:
                    events.done(filename, step.upgrade)
    finally:
        if connection is None:
            dbapi.close()
        elif not dbapi.closed:
            session.rollback()
            dbapi.autocommit = True


def run_step(
    session: Session,
    step: Step,
    recorder: Recorder,
    events: Events | None,
    cancel: CancelToken | None,
    *,
    prepared: Prepared | None = None,
    resumes: bool | None = None,
) -> None:
    """Run one migration on ``session``, recorded by ``recorder``; its notices go to
    ``events`` (None: to stderr).  The caller announces it (``events.start``/``done``):
    under Alembic, our env.py does so for every revision, ``.py`` ones included.

    ``resumes`` says whether an earlier run left the section partly run (None: look it
    up); it then goes on segment by segment.  Offline, the SQL is written out.
    """
    import psycopg2  # lazy: start-up time

    section = step.migration.up if step.upgrade else step.migration.down
    assert section is not None
    if session.as_sql:
        split = split_statements(step.migration, section)
        emit_offline(session, step.migration, split.statements,
                     needs_autocommit(section, split.statements), step.action, recorder.schema)
        return
    sink = events.notice if events is not None else _stderr_notice
    own = recorder.own_transaction
    counted: list[int] = []  # rows each statement changed, when run in one transaction
    try:
        if prepared is None:
            prepared = prepare_step(step, recorder, session.standard_strings,
                                    reset_before=own)
        if resumes is None:
            with session.cursor() as cursor:
                resumes = history.has_progress(cursor, recorder.schema,
                                               step.migration.name.version,
                                               "up" if step.upgrade else "down")
        if resumes:  # it goes on from where an earlier run stopped, segment by segment
            prepared = replace(prepared, batch=None)
        if not run_batched(session, prepared, recorder, sink, cancel, rows=counted):
            recorder.begin(session, prepared.reset_before)
            run_statements(
                session, step.migration, section, action=step.action,
                history_schema=recorder.schema, on_notice=sink, cancel=cancel,
                history_ready=recorder.history_ready, partial=resumes, rows=counted,
            )
            if own:
                recorder.finish(session, step)
                _commit(session, step)
        if prepared.forgets_statements:
            recorder.restore(session)
        rows = getattr(events, "rows", None)  # optional (events.py)
        if rows is not None and len(counted) == len(prepared.statements):
            rows(step.migration.name.filename, sum(counted))
    except BaseException as err:
        if own:  # under Alembic, Alembic rolls back and tells a driver's error
            session.rollback()
            if isinstance(err, psycopg2.Error):
                raise foreign_error(err) from err
        raise


def _partly_run(session: Session, schema: str) -> set[tuple[str, str]]:
    """(version, direction) of the sections an earlier run left partly run."""
    with session.cursor() as cursor:
        partial = set(history.read_progress(cursor, schema))
    session.commit()
    return partial


def _stderr_notice(text: str) -> None:
    print(text, file=sys.stderr)


def run_statements(
    session: Session,
    migration: ParsedMigration,
    section: Section,
    *,
    action: str,
    history_schema: str,
    on_notice: NoticeSink | None = None,
    cancel: CancelToken | None = None,
    history_ready: bool = False,
    partial: bool | None = None,
    rows: list[int] | None = None,
) -> None:
    """Execute ``section`` statement by statement and write its history row.

    ``history_ready`` says the history table exists (our env.py made sure), saving
    a round trip per migration; another env.py leaves it False.  ``partial`` says
    whether an earlier run left the section partly run (None: look it up); such a
    section resumes segment by segment even when nothing in it needs autocommit any
    more (its last non-transactional statement was edited out).

    Timeouts named on the section's marker (``lock_timeout:2s``) apply to it alone.
    ``rows`` receives how many rows each statement changed, when the section runs in one
    transaction (not segment by segment).
    """
    split = split_statements(migration, section, standard_strings=session.standard_strings)
    statements = split.statements
    autocommit = needs_autocommit(section, statements)
    started = time.perf_counter()
    sink = on_notice or _stderr_notice
    if split.unwrapped:
        sink(
            f"note: {migration.name.filename} is wrapped in BEGIN; ... COMMIT; those two "
            "statements are skipped: the migration already runs in its own transaction"
        )
    direction = "up" if action == history.APPLIED else "down"
    if partial is None:
        with session.cursor() as cursor:
            partial = history.has_progress(cursor, history_schema, migration.name.version,
                                           direction)
    if partial:
        autocommit = True  # resumed segment by segment
    if autocommit:
        with session.autocommit_block(), session.section_timeouts(section, local=False):
            execute_segments(
                session, migration, section, statements, direction, history_schema, sink, cancel
            )
    else:
        with session.section_timeouts(section, local=True):
            execute_statements(session, migration, statements, sink, cancel, in_transaction=True,
                               rows=rows)
    elapsed_ms = int((time.perf_counter() - started) * 1000)
    with history.writing(session.dbapi, history_schema) as cursor:
        if not history_ready:
            history.ensure_table(cursor, history_schema)
        history.record(cursor, history_schema, history.entry_for(migration, action, elapsed_ms))
        if autocommit:
            history.clear_progress(cursor, history_schema, migration.name.version, direction)


@dataclass(frozen=True)
class Prepared:
    """A step with its statements split and, when it can run in one round trip,
    the query that does it (statements, then the recorder's bookkeeping)."""

    step: Step
    section: Section
    statements: tuple[Statement, ...]
    batch: str | None
    params: tuple[Any, ...]
    starts: tuple[int, ...] = ()  # where each statement begins in the query the server gets
    reset_before: bool = False  # the session is reset first (every step of a run)
    forgets_statements: bool = False  # it may drop the session's prepared statements
    head_statements: int = 0  # statements of the query before the migration's own


#: A section larger than this is sent statement by statement, as psql sends it, rather
#: than as one query: a query string is held in memory several times over on its way.
BATCH_LIMIT = 4 << 20


def prepare_step(step: Step, recorder: Recorder, standard_strings: bool,
                 reset_before: bool = False) -> Prepared:
    """Pure: split the step's section and build its one-round-trip query, if any;
    ``reset_before`` puts the session reset at its head."""
    section = step.migration.up if step.upgrade else step.migration.down
    assert section is not None
    split = split_statements(step.migration, section, standard_strings=standard_strings)
    statements = tuple(split.statements)
    forgets = forgets_statements(statements)
    if (section.timeouts or needs_autocommit(section, split.statements) or split.unwrapped
            or not recorder.history_ready or not batchable(split, len(section.sql))):
        return Prepared(step, section, statements, None, (), reset_before=reset_before,
                        forgets_statements=forgets)
    tail, params = recorder.batch_tail(step, inline=forgets)
    head = recorder.batch_head(reset_before)
    starts: list[int] = []
    offset = len(head)
    for statement in statements:
        starts.append(offset)
        offset += len(terminated(statement.sql)) + 1
    batch = (
        head.replace("%", "%%")
        + "".join(terminated(s.sql).replace("%", "%%") + "\n" for s in statements)
        + tail
    )
    return Prepared(step, section, statements, batch, params, tuple(starts), reset_before,
                    forgets, _statement_count(head))


@functools.lru_cache(maxsize=16)
def _statement_count(sql: str) -> int:
    """How many statements ``sql`` (our own, such as a batch's head) holds."""
    return len(scan(sql).spans)


def batchable(split: SplitSection, size: int) -> bool:
    """Whether a section's statements may go to the server as one query string.

    Not when a statement changes ``standard_conforming_strings`` (the server reads a
    query string whole with the setting it had before it, psql sends each statement on
    its own), not with ``COPY ... FROM stdin`` data, and not above :data:`BATCH_LIMIT`."""
    return (not split.changes_lexing and size <= BATCH_LIMIT
            and not any(statement.copy is not None for statement in split.statements))


_FORGETS_STATEMENTS_RE = re.compile(r"\b(?:DISCARD|DEALLOCATE)\b", re.IGNORECASE)


def forgets_statements(statements: Sequence[Statement]) -> bool:
    """Whether a migration may drop the session's prepared statements (``DISCARD``,
    ``DEALLOCATE``, also inside a ``DO`` block), so that the bookkeeping statements must
    be prepared again after it.  Pure; errs on the side of True."""
    return any(_FORGETS_STATEMENTS_RE.search(statement.sql) for statement in statements)


def _failing_statement(prepared: Prepared, position: int | None) -> tuple[int, int] | None:
    """(index, 1-based position inside that statement) for the error position PostgreSQL
    gave in the whole batch, when it falls inside one of the migration's statements."""
    if not position:
        return None
    offset = int(position) - 1
    for index in range(len(prepared.statements) - 1, -1, -1):
        start = prepared.starts[index]
        if offset >= start:
            if offset - start < len(prepared.statements[index].sql):
                return index, offset - start + 1
            return None
    return None


def _prepared_ahead(steps: Sequence[Step], recorder: OwnRecorder) -> Iterator[Prepared]:
    """:func:`prepare_step` for each step, in order, computed on a second thread.

    Splitting and building the next migrations' queries then overlaps with the
    server running the current one (psycopg2 releases the GIL while it waits), so
    the client's CPU time is mostly hidden.  An error preparing a step is raised
    when that step's turn comes; leaving early cancels what is not started.
    """

    def prepared(step: Step) -> Prepared:  # called in order (one worker)
        # Every migration starts from the same session, as psql gives each file a new one.
        found = prepare_step(step, recorder, recorder.standard_strings, reset_before=True)
        # Let the main thread have the GIL if a query of its returned meanwhile: else it
        # waits for this thread's switch interval (5 ms) while later steps are prepared.
        time.sleep(0)
        return found

    if len(steps) < 2:
        yield from (prepared(step) for step in steps)
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fraiseql-prepare")
    try:
        yield from pool.map(prepared, steps)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_batched(
    session: Session,
    prepared: Prepared,
    recorder: Recorder,
    sink: NoticeSink,
    cancel: CancelToken | None,
    rows: list[int] | None = None,
) -> bool:
    """Run a plain transactional section in one round trip; False when it is not one.
    ``rows`` receives how many rows each of the migration's statements changed.

    Ours: ``BEGIN; <statements>; <version change and history row>; COMMIT`` go in one
    simple-protocol query: the server runs them in order and stops at the first
    error, leaving the transaction aborted, so nothing of a failed migration is
    kept.  Under Alembic: ``<statements>; <history row>`` inside Alembic's transaction,
    which Alembic then rolls back or commits with its version move.  The history row's
    ``execution_ms`` is measured by the server.  The query goes through
    :mod:`.batchquery`, which counts the statements that completed: a failure names
    its statement's line however long it ran, and nothing is run again to find it.
    """
    from psycopg2.extensions import TRANSACTION_STATUS_IDLE  # lazy: start-up time

    dbapi = session.dbapi
    if prepared.batch is None or not batchquery.available(dbapi):
        return False
    step, own = prepared.step, recorder.own_transaction
    started = time.perf_counter()
    if own:
        dbapi.autocommit = True
    elif dbapi.get_transaction_status() == TRANSACTION_STATUS_IDLE:
        with dbapi.cursor() as cursor:  # psycopg2 opens Alembic's transaction, and knows it
            cursor.execute("SELECT 1")
    # The batch's notices are held back until it is known whether the statements run
    # again (only when the session lost its prepared bookkeeping): each is shown once.
    held: list[str] = []
    try:
        with dbapi.cursor() as cursor:
            query = cursor.mogrify(prepared.batch, prepared.params)
            with sending(cancel, dbapi, f"before {step.migration.name.filename}"):
                outcome = batchquery.run(dbapi, query, notice_forwarder(held.append))
            err = outcome.error
            if err is None:
                _release(held, sink)
                if rows is not None:
                    start = prepared.head_statements
                    rows.extend(outcome.rows[start : start + len(prepared.statements)])
                return True
            if own:
                session.rollback()
            if cancel is not None and cancel.cancelled:
                _release(held, sink)
                line = _running_line(prepared, outcome)
                raise MigrationInterrupted(
                    f"Stopped by {cancel.reason} in {step.migration.name.filename}"
                    + (f" at line {line}" if line is not None else "")
                    + "; that migration was rolled back"
                ) from err
            if outcome.lost and own and session.url is not None:
                _release(held, sink)
                raise step_connection_lost(session.url, step, err,
                                           line=_running_line(prepared, outcome)) from err
            if own and session_check_failed(err):  # an earlier migration left prepared
                held.clear()  # statements: nothing of this one ran; deallocate them, rerun
                cursor.execute(recorder.session_clean)
                return run_batched(session, prepared, recorder, sink, cancel, rows)
            if not own or getattr(err, "pgcode", None) != PREPARED_STATEMENT_GONE or (
                    outcome.completed - prepared.head_statements != len(prepared.statements)):
                _release(held, sink)
                raise _batch_failure(prepared, outcome, dbapi) or err
            # Every statement ran, then the session's prepared bookkeeping statement was
            # found gone (a function of the migration deallocated it): all of it was rolled
            # back, and it runs once more, statement by statement, with the bookkeeping
            # spelled out.  Its notices are printed by that run.
            held.clear()
            if prepared.reset_before and recorder.session_clean:  # rolled back with the
                cursor.execute(recorder.session_clean)  # batch (PREPAREs are not: all of it)
            cursor.execute("BEGIN")
            recorder.begin(session, reset_before=False)
            execute_statements(session, step.migration, list(prepared.statements),
                               sink, cancel, in_transaction=True, rows=rows)
            elapsed_ms = int((time.perf_counter() - started) * 1000)
            entry = history.entry_for(step.migration, step.action, elapsed_ms)
            cursor.execute(*recorder.rerun_bookkeeping(entry, step))
            moved = cursor.fetchone()
            if not moved or moved[0] != 1:
                session.rollback()
                raise version_moved(step)
            _commit(session, step, cursor)
            recorder.restore(session)
    except BaseException:
        if own:
            session.rollback()
        raise
    finally:
        if own and not dbapi.closed:
            dbapi.autocommit = False
    return True


def step_connection_lost(
    url: str, step: Step, err: BaseException, probe_seconds: float = 10.0,
    line: int | None = None,
) -> MigrationError:
    """What happened to a migration whose connection died during its one query."""
    return connection_lost(
        url, step.migration.name.filename, err,
        before=(step.version_before,) if step.version_before is not None else (),
        after=(step.version_after,) if step.version_after is not None else (),
        probe_seconds=probe_seconds, line=line,
    )


def connection_lost(
    url: str,
    filename: str,
    err: BaseException,
    *,
    before: Sequence[str],
    after: Sequence[str],
    version_table: str = "alembic_version",
    probe_seconds: float = 10.0,
    line: int | None = None,
) -> MigrationError:
    """What happened to a migration whose connection died before its COMMIT was answered,
    on either path (``line``: of the statement that was running, when known).

    PostgreSQL kept all of its transaction or none of it; a new connection (tried for up
    to ``probe_seconds``) reads ``version_table`` to tell which: the versions ``after``
    it there and those ``before`` it gone mean it committed.
    """
    import psycopg2  # lazy: start-up time
    import psycopg2.errors

    reason = str(err).strip().splitlines()[0] if str(err).strip() else "connection lost"
    versions: set[str] | None = None
    deadline = time.monotonic() + probe_seconds
    while versions is None:
        try:
            probe = open_dbapi(url, connect_timeout=5)
            try:
                with probe.cursor() as cursor:
                    cursor.execute(f"SELECT version_num FROM {version_table}")
                    versions = {str(row[0]) for row in cursor.fetchall()}
            except psycopg2.errors.UndefinedTable:  # nothing was ever recorded
                versions = set()
            finally:
                probe.close()
        except (psycopg2.Error, MigrationError):  # not reachable (yet)
            if time.monotonic() >= deadline:
                break
            time.sleep(0.5)  # e.g. the server is restarting
    committed = versions is not None and (
        all(version in versions for version in after)
        and not any(version in versions for version in before)
    )
    if committed:
        return DatabaseError(
            f"Migration {filename} was applied, but the connection was lost as it committed "
            f"({reason}). Run the command again to continue after it"
        )
    return interrupted(filename, reason, line=line, reachable=versions is not None)


def _batch_failure(
    prepared: Prepared, outcome: batchquery.Outcome, dbapi: Any
) -> MigrationError | None:
    """What a failed batch's error means; None when it is not about the migration's SQL
    (the session reset or ``BEGIN`` failed: the driver's error says it).

    PostgreSQL's error position (syntax errors, unknown tables or columns, ...) names the
    statement and the column; otherwise the statements that completed before the error
    name the failing one: one of the migration's, the bookkeeping (``alembic_version``
    moved underneath: the guard's division by zero) or ``COMMIT`` (a deferred constraint).
    """
    step, statements, err = prepared.step, prepared.statements, outcome.error
    assert err is not None
    found = _failing_statement(prepared, outcome.position)
    if found is not None:
        index, position = found
        return located_error(step.migration, statements[index], err, dbapi,
                             in_transaction=True, position=position)
    index = outcome.completed - prepared.head_statements
    if 0 <= index < len(statements):
        return located_error(step.migration, statements[index], err, dbapi,
                             in_transaction=True)
    if index == len(statements) and getattr(err, "pgcode", None) == sqlstate.DIVISION_BY_ZERO:
        return version_moved(step)
    if index == len(statements) + 1:
        return commit_failed(step.migration.name.filename, err)
    return None


def _running_line(prepared: Prepared, outcome: batchquery.Outcome) -> int | None:
    """The line of the migration's statement a batch was running when it stopped."""
    found = _failing_statement(prepared, outcome.position)
    index = found[0] if found is not None else outcome.completed - prepared.head_statements
    return prepared.statements[index].line if 0 <= index < len(prepared.statements) else None


def _release(held: list[str], sink: NoticeSink) -> None:
    for text in held:
        sink(text)
    held.clear()


def _commit(session: Session, step: Step, cursor: Any = None) -> None:
    """COMMIT a migration's transaction; an error raised only now (a deferred constraint)
    names the migration, which was rolled back."""
    import psycopg2  # lazy: start-up time

    try:
        if cursor is not None:
            cursor.execute("COMMIT")
        else:
            session.commit()
    except psycopg2.Error as err:
        if session.closed:
            raise
        raise commit_failed(step.migration.name.filename, err) from err


def commit_failed(filename: str, err: BaseException) -> MigrationError:
    """A migration whose COMMIT failed (and was rolled back), on either path."""
    message, state = server_words(err)
    return MigrationError(
        f"Migration {filename} failed at COMMIT: {message}{state} (a deferred constraint "
        "is checked only then). The migration was rolled back; fix the file and run the "
        "command again"
    )
