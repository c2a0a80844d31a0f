"""Apply or roll back SQL migrations directly on psycopg2, or record them without running.

For a folder of SQL files alone, Alembic's per-step machinery (a SQLAlchemy
statement per version change, a revision-map walk per step) costs more than the
migrations' own SQL.  This executor does what Alembic's ``upgrade``/``downgrade``
do for a linear chain, with the same ``alembic_version`` table and the same
runner: per migration one transaction holding its SQL, the version change and the
history row.  Folders with ``.py`` revisions or ``-- revises:`` headers, and the
plain ``alembic`` CLI, go through Alembic itself.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .. import sqlstate
from ..engine import history
from ..errors import DatabaseError, MigrationError
from .translate import foreign_error, server_words

if TYPE_CHECKING:
    from ..engine import batchquery
    from ..settings import RunOptions
    from ..sql.parse import ParsedMigration, Section
    from ..sql.statements import SplitSection, Statement
    from .cancel import CancelToken

VERSION_TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL, "
    "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
)


@dataclass(frozen=True)
class Step:
    """One migration to run: the file, which way, and the version it leaves behind."""

    migration: ParsedMigration
    upgrade: bool
    version_before: str | None
    version_after: str | None


class _Shim:
    """The corner of Alembic's MigrationContext the runner uses, over one psycopg2
    connection: ``connection.connection.dbapi_connection`` and ``autocommit_block``."""

    as_sql = False

    def __init__(self, dbapi: Any) -> None:
        self.dbapi = dbapi
        self.connection = self  # runner reads context.connection.connection.dbapi_connection
        self.dbapi_connection = dbapi

    @contextmanager
    def autocommit_block(self) -> Iterator[None]:
        self.dbapi.commit()
        self.dbapi.autocommit = True
        try:
            yield
        finally:
            self.dbapi.autocommit = False


def run_steps(
    url: str,
    steps: Sequence[Step],
    *,
    history_schema: str,
    options: RunOptions,
    reporter: Any,
    cancel: CancelToken | None,
    done: set[str],
    connection: Any = None,
) -> None:
    """Run ``steps`` in order, each committed on its own; ``done`` collects versions.

    Steps whose version is already in ``done`` are skipped (a retry resumes).  They run
    on ``connection`` (an idle autocommit session, left open and in autocommit
    afterwards) or on a new connection to ``url``.
    """
    import psycopg2

    from .database import open_dbapi
    from .runner import run_section

    dbapi = connection if connection is not None else open_dbapi(url)
    dbapi.autocommit = False
    if cancel is not None:
        cancel.register(dbapi)
    shim = _Shim(dbapi)
    todo = [step for step in steps if step.migration.name.version not in done]
    try:
        try:
            run = _prepare(dbapi, history_schema, options)
            partial = _partly_run(dbapi, history_schema)
        except psycopg2.Error as err:
            raise foreign_error(err) from err
        for prepared in _prepared_ahead(todo, run):
            step, section = prepared.step, prepared.section
            key = step.migration.name.version
            resumes = (key, "up" if step.upgrade else "down") in partial
            if resumes:  # it goes on from where an earlier run stopped, segment by segment
                prepared = replace(prepared, batch=None)
            if cancel is not None:
                cancel.check(f"before {step.migration.name.filename}")
            if reporter is not None:
                reporter.start(step.migration.name.filename, step.upgrade)
            try:
                if not _run_batched(dbapi, shim, prepared, run, reporter, cancel, url):
                    with dbapi.cursor() as cursor:
                        if prepared.reset_before and run.session_clean:
                            cursor.execute(run.session_clean)
                            dbapi.commit()  # on its own: an UNLISTEN acts at COMMIT
                        if run.transaction_setup:
                            cursor.execute(run.transaction_setup)
                    run_section(
                        shim,  # type: ignore[arg-type]
                        step.migration,
                        section,
                        action=history.APPLIED if step.upgrade else history.ROLLED_BACK,
                        history_schema=history_schema,
                        on_notice=reporter.notice if reporter is not None else None,
                        cancel=cancel,
                        history_ready=True,
                        partial=resumes,
                    )
                    _move_version(dbapi, step, run.version_table)
                    _commit(dbapi, step)
                if prepared.forgets_statements:
                    _restore_record_statements(dbapi, run)
            except BaseException as err:
                _rollback(dbapi)
                if isinstance(err, psycopg2.Error):
                    raise foreign_error(err) from err
                raise
            done.add(key)
            if reporter is not None:
                reporter.done(step.migration.name.filename, step.upgrade)
    finally:
        if cancel is not None:
            cancel.unregister(dbapi)
        if connection is None:
            dbapi.close()
        elif not dbapi.closed:
            _rollback(dbapi)
            dbapi.autocommit = True


def _partly_run(dbapi: Any, schema: str) -> set[tuple[str, str]]:
    """(version, direction) of the sections an earlier run left partly run."""
    with dbapi.cursor() as cursor:
        partial = set(history.read_progress(cursor, schema))
    dbapi.commit()
    return partial


def record_without_running(
    url: str,
    entries: Sequence[history.Entry],
    *,
    history_schema: str,
    options: RunOptions,
    move: tuple[str | None, str] | None = None,
) -> None:
    """Write history rows, and move ``alembic_version`` by ``move`` (from, to), in one
    transaction, running no migration SQL (``mark-applied``, ``repair``).

    The move is guarded: if ``alembic_version`` no longer says ``from``, nothing is
    written.  A marked version's resume point (a partly applied file) is cleared.
    """
    import psycopg2

    from .database import open_dbapi

    dbapi = open_dbapi(url)
    try:
        run = _prepare(dbapi, history_schema, options)
        with history.writing(dbapi, history_schema) as cursor:
            if move is not None:
                cursor.execute(*_version_statement(*move, table=run.version_table))
                if cursor.rowcount != 1:
                    raise MigrationError(
                        f"alembic_version no longer says {move[0] or '(nothing applied)'} "
                        "(another session changed it?); nothing was recorded. Run "
                        "`fraiseql migrate status` and try again"
                    )
            for entry in entries:
                history.record(cursor, history_schema, entry)
                if entry.action == history.MARKED_APPLIED:
                    history.clear_progress(cursor, history_schema, entry.version, "up")
        dbapi.commit()
    except psycopg2.Error as err:
        raise foreign_error(err) from err
    finally:
        _rollback(dbapi)
        dbapi.close()


@dataclass(frozen=True)
class _Prepared:
    """A step with its statements split and, when it can run in one round trip,
    the query that does it (statements, version move, history row, COMMIT)."""

    step: Step
    section: Section
    statements: tuple[Statement, ...]
    batch: str | None
    params: tuple[Any, ...]
    starts: tuple[int, ...] = ()  # where each statement begins in the query the server gets
    reset_before: bool = False  # the session is reset first (every step of a run)
    forgets_statements: bool = False  # it may drop the session's prepared statements
    head_statements: int = 0  # statements of the query before the migration's own


@dataclass(frozen=True)
class _Run:
    """What every step of one run shares: the history schema, the version table's
    schema-qualified name, and the SQL that resets the session before each migration."""

    schema: str
    version_table: str
    #: at the head of each migration's query, in a transaction of its own (an UNLISTEN
    #: acts at COMMIT): database.SESSION_CLEAN_SQL and the EXECUTE of the prepared
    #: session check (settings; fails if the session holds prepared statements not
    #: ours).  Empty in lease mode (transaction_setup does it)
    session_reset: str
    #: (name, PREPARE statement) of each shape of the bookkeeping (see _record_statements)
    record_statements: tuple[tuple[str, str], ...] = ()
    #: SQL each migration's transaction starts with (lease mode: database.transaction_setup_sql)
    transaction_setup: str = ""
    #: the session's standard_conforming_strings, with which psql would read the files
    standard_strings: bool = True
    #: the whole reset, sent on its own: session_reset with DEALLOCATE ALL and our
    #: statements prepared again (after a failed session check, before a migration that
    #: is not one query, before a rerun)
    session_clean: str = ""


#: A section larger than this is sent statement by statement, as psql sends it, rather
#: than as one query: a query string is held in memory several times over on its way.
BATCH_LIMIT = 4 << 20


def _prepare_step(step: Step, run: _Run, reset_before: bool = False) -> _Prepared:
    """Pure: split the step's section and build its one-round-trip query, if any;
    ``reset_before`` puts the session reset at its head."""
    from ..sql.statements import split_statements, terminated
    from .runner import needs_autocommit

    section = step.migration.up if step.upgrade else step.migration.down
    assert section is not None
    split = split_statements(step.migration, section, standard_strings=run.standard_strings)
    statements = tuple(split.statements)
    forgets = forgets_statements(statements)
    if (section.timeouts or needs_autocommit(section, split.statements) or split.unwrapped
            or not batchable(split, len(section.sql))):
        return _Prepared(step, section, statements, None, (), reset_before=reset_before,
                         forgets_statements=forgets)
    guard, params = _guarded_bookkeeping(run, step, inline=forgets or not run.record_statements)
    head = (run.session_reset if reset_before else "") + "BEGIN;\n" + run.transaction_setup
    starts: list[int] = []
    offset = len(head)
    for statement in statements:
        starts.append(offset)
        offset += len(terminated(statement.sql)) + 1
    batch = (
        head.replace("%", "%%")
        + "".join(terminated(s.sql).replace("%", "%%") + "\n" for s in statements)
        + guard + ";\nCOMMIT"
    )
    return _Prepared(step, section, statements, batch, params, tuple(starts), reset_before,
                     forgets, _statement_count(head))


@functools.lru_cache(maxsize=16)
def _statement_count(sql: str) -> int:
    """How many statements ``sql`` (our own, such as a batch's head) holds."""
    from ..sql.psqlscan import scan

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


def _failing_statement(prepared: _Prepared, position: int | None) -> tuple[int, int] | None:
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


def _prepared_ahead(steps: Sequence[Step], run: _Run) -> Iterator[_Prepared]:
    """:func:`_prepare_step` for each step, in order, computed on a second thread.

    Splitting and building the next migrations' queries then overlaps with the
    server running the current one (psycopg2 releases the GIL while it waits), so
    the client's CPU time is mostly hidden.  An error preparing a step is raised
    when that step's turn comes; leaving early cancels what is not started.
    """
    import time
    from concurrent.futures import ThreadPoolExecutor

    def prepare(step: Step) -> _Prepared:  # called in order (one worker)
        # Every migration starts from the same session, as psql gives each file a new one.
        prepared = _prepare_step(step, run, reset_before=True)
        # Let the main thread have the GIL if a query of its returned meanwhile: else it
        # waits for this thread's switch interval (5 ms) while later steps are prepared.
        time.sleep(0)
        return prepared

    if len(steps) < 2:
        yield from (prepare(step) for step in steps)
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fraiseql-prepare")
    try:
        yield from pool.map(prepare, steps)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_batched(
    dbapi: Any,
    shim: _Shim,
    prepared: _Prepared,
    run: _Run,
    reporter: Any,
    cancel: CancelToken | None,
    url: str,
) -> bool:
    """Run a plain transactional section in one round trip; False when it is not one.

    ``BEGIN; <statements>; <version change and history row>; COMMIT`` go in one
    simple-protocol query: the server runs them in order and stops at the first
    error, leaving the transaction aborted, so nothing of a failed migration is
    kept.  The history row's ``execution_ms`` is then measured by the server.  The
    query goes through :mod:`.batchquery`, which counts the statements that completed:
    a failure names its statement's line however long it ran, and nothing is run again
    to find it.
    """
    import time

    from ..engine import batchquery
    from .cancel import MigrationInterrupted
    from .runner import _NoticeForwarder, execute_statements, history_entry

    if prepared.batch is None or not batchquery.available(dbapi):
        return False
    step = prepared.step
    sink = reporter.notice if reporter is not None else _ignore
    started = time.perf_counter()
    dbapi.autocommit = True
    # The batch's notices are held back until it is known whether the statements run
    # again (only when the session lost its prepared bookkeeping): each is shown once.
    held: list[str] = []
    try:
        with dbapi.cursor() as cursor:
            query = cursor.mogrify(prepared.batch, prepared.params)
            outcome = batchquery.run(dbapi, query, _NoticeForwarder(held.append).append)
            err = outcome.error
            if err is None:
                _release(held, sink)
                return True
            _rollback(dbapi)
            if cancel is not None and cancel.cancelled:
                _release(held, sink)
                raise MigrationInterrupted(
                    f"Stopped by {cancel.reason} in {step.migration.name.filename}; that "
                    "migration was rolled back"
                ) from err
            if outcome.lost:
                _release(held, sink)
                raise _connection_lost(url, step, err) from err
            if _session_check_failed(err):  # an earlier migration left prepared statements:
                held.clear()  # nothing of this one ran; deallocate them, and run it again
                cursor.execute(run.session_clean)
                return _run_batched(dbapi, shim, prepared, run, reporter, cancel, url)
            if getattr(err, "pgcode", None) != PREPARED_STATEMENT_GONE or (
                    outcome.completed - prepared.head_statements != len(prepared.statements)):
                _release(held, sink)
                raise _batch_failure(prepared, outcome, dbapi) or err
            # Every statement ran, then the session's prepared bookkeeping statement was
            # found gone (a function of the migration deallocated it): all of it was rolled
            # back, and it runs once more, statement by statement, with the bookkeeping
            # spelled out.  Its notices are printed by that run.
            held.clear()
            if prepared.reset_before and run.session_clean:  # rolled back with the batch
                cursor.execute(run.session_clean)  # (PREPAREs are not: the whole reset)
            cursor.execute("BEGIN")
            if run.transaction_setup:
                cursor.execute(run.transaction_setup)
            execute_statements(
                shim,  # type: ignore[arg-type]
                step.migration, list(prepared.statements), sink, cancel,
                in_transaction=True,
            )
            elapsed_ms = int((time.perf_counter() - started) * 1000)
            action = history.APPLIED if step.upgrade else history.ROLLED_BACK
            entry = history_entry(step.migration, action, elapsed_ms)
            record, params = _bookkeeping(run, entry, step)
            cursor.execute(record, params)
            moved = cursor.fetchone()
            if not moved or moved[0] != 1:
                _rollback(dbapi)
                raise _version_moved(step)
            _commit(dbapi, step, cursor)
            _restore_record_statements(dbapi, run)
    except BaseException:
        _rollback(dbapi)
        raise
    finally:
        if not dbapi.closed:
            dbapi.autocommit = False
    return True


def _connection_lost(
    url: str, step: Step, err: Exception, probe_seconds: float = 10.0
) -> MigrationError:
    """What happened to a migration whose connection died during its one query."""
    return connection_lost(
        url, step.migration.name.filename, err,
        before=(step.version_before,) if step.version_before is not None else (),
        after=(step.version_after,) if step.version_after is not None else (),
        probe_seconds=probe_seconds,
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
) -> MigrationError:
    """What happened to a migration whose connection died before its COMMIT was answered,
    on either path.

    PostgreSQL kept all of its transaction or none of it; a new connection (tried for up
    to ``probe_seconds``) reads ``version_table`` to tell which: the versions ``after``
    it there and those ``before`` it gone mean it committed.
    """
    import time

    import psycopg2
    import psycopg2.errors

    from .database import open_dbapi

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
    if versions is None:
        return DatabaseError(
            f"Migration {filename} was interrupted: {reason}. The connection to the database "
            "was lost and the database cannot be reached now; PostgreSQL kept all of that "
            "migration or none of it (none unless it had reached its COMMIT). Once the "
            "database is back, `fraiseql migrate status` shows which; then run the command again"
        )
    return DatabaseError(
        f"Migration {filename} was interrupted: {reason}. The connection to the database was "
        "lost; nothing of this migration was kept. Run the command again once the database "
        "is back"
    )


def _batch_failure(
    prepared: _Prepared, outcome: batchquery.Outcome, dbapi: Any
) -> MigrationError | None:
    """What a failed batch's error means; None when it is not about the migration's SQL
    (the session reset or ``BEGIN`` failed: the driver's error says it).

    PostgreSQL's error position (syntax errors, unknown tables or columns, ...) names the
    statement and the column; otherwise the statements that completed before the error
    name the failing one: one of the migration's, the bookkeeping (``alembic_version``
    moved underneath: the guard's division by zero) or ``COMMIT`` (a deferred constraint).
    """
    from .runner import located_error

    step, statements, err = prepared.step, prepared.statements, outcome.error
    found = _failing_statement(prepared, outcome.position)
    if found is not None:
        index, position = found
        return located_error(step.migration, statements[index], err, dbapi,
                             in_transaction=True, position=position)
    index = outcome.completed - prepared.head_statements
    if 0 <= index < len(statements):
        return located_error(step.migration, statements[index], err, dbapi,
                             in_transaction=True)
    if index == len(statements) and getattr(err, "pgcode", None) == DIVISION_BY_ZERO:
        return _version_moved(step)
    if index == len(statements) + 1 and err is not None:
        return _commit_failed(step, err)
    return None


DIVISION_BY_ZERO = sqlstate.DIVISION_BY_ZERO
#: The session's prepared bookkeeping statement is gone (see :func:`_run_batched`).
PREPARED_STATEMENT_GONE = sqlstate.INVALID_SQL_STATEMENT_NAME


def _ignore(_text: str) -> None:
    return None


def _release(held: list[str], sink: Any) -> None:
    for text in held:
        sink(text)
    held.clear()


def _guarded_bookkeeping(
    run: _Run, step: Step, *, inline: bool = False
) -> tuple[str, tuple[Any, ...]]:
    """The version move and history row as one statement that fails (division by
    zero) when ``alembic_version`` did not say ``step.version_before``; the caller
    then reruns the migration step by step, where :func:`_bookkeeping` says why.

    It is the ``EXECUTE`` of a statement the session prepared once
    (:func:`_record_statements`): planning the same ``WITH`` statement for every
    migration cost about 0.1 ms of server time each.  ``inline`` spells the statement
    out instead, for a migration that may drop the prepared one before it runs.
    """
    from .runner import history_entry

    move, move_params = _version_statement(step.version_before, step.version_after,
                                           table=run.version_table)
    action = history.APPLIED if step.upgrade else history.ROLLED_BACK
    entry = history_entry(step.migration, action, None)
    insert, insert_params = history.record_statement(run.schema, entry, server_timed=True)
    params = move_params + insert_params
    if inline:
        return _guard_sql(move, insert), params
    return f"EXECUTE {_record_statement_name(move)}({', '.join(['%s'] * len(params))})", params


def _guard_sql(move: str, insert: str) -> str:
    return (f"WITH moved AS ({move}), recorded AS ({insert}) "
            "SELECT 1 / (SELECT count(*)::integer FROM moved)")


#: The (before, after) of each way :func:`_version_statement` moves ``alembic_version``:
#: the first migration's INSERT, a move's UPDATE, the last rollback's DELETE.
_MOVE_SHAPES: tuple[tuple[str | None, str | None], ...] = ((None, ""), ("", ""), ("", None))


def _record_statement_name(move: str) -> str:
    """The session's prepared bookkeeping statement for a version move, named by the
    move's verb: ``fraiseql_record_insert``, ``_update`` or ``_delete``."""
    return "fraiseql_record_" + move.split(" ", 1)[0].lower()


def _record_statements(schema: str, version_table: str) -> tuple[tuple[str, str], ...]:
    """``PREPARE`` statements of the guarded bookkeeping, one per shape of version move:
    the same SQL as before with ``$n`` for each parameter, all of them ``text``."""
    entry = history.Entry(version="", name=None, filename=None, checksum=None,
                          up_checksum=None, execution_ms=None, action="")
    insert, insert_params = history.record_statement(schema, entry, server_timed=True)
    prepared = []
    for before, after in _MOVE_SHAPES:
        # The table goes in after numbering: its schema's name might hold a "%s".
        move, move_params = _version_statement(before, after, table="\0")
        count = len(move_params) + len(insert_params)
        pieces = _guard_sql(move, insert).split("%s")
        assert len(pieces) == count + 1  # one placeholder per parameter, nothing else
        sql = pieces[0] + "".join(f"${number}{piece}"
                                  for number, piece in enumerate(pieces[1:], start=1))
        sql = sql.replace("\0", version_table)
        name = _record_statement_name(move)
        prepared.append((name, f"PREPARE {name} ({', '.join(['text'] * count)}) AS {sql}"))
    return tuple(prepared)


def _restore_record_statements(dbapi: Any, run: _Run) -> None:
    """Prepare again the bookkeeping statements the session no longer has (a migration
    ran ``DISCARD`` or ``DEALLOCATE``), in a transaction of their own."""
    if not run.record_statements:  # lease mode: nothing of a session is relied on
        return
    with dbapi.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements WHERE name = ANY(%s)",
                       ([name for name, _ in run.record_statements],))
        present = {row[0] for row in cursor.fetchall()}
        missing = [sql for name, sql in run.record_statements if name not in present]
        if missing:
            cursor.execute(";\n".join(missing))
    if not dbapi.autocommit:
        dbapi.commit()


def _bookkeeping(run: _Run, entry: history.Entry, step: Step) -> tuple[str, tuple[Any, ...]]:
    """One statement: move alembic_version and add the history row, returning the number
    of version rows moved (1, or 0 when alembic_version changed underneath)."""
    move, move_params = _version_statement(step.version_before, step.version_after,
                                           table=run.version_table)
    insert, insert_params = history.record_statement(run.schema, entry)
    sql = (
        f"WITH moved AS ({move}), recorded AS ({insert} RETURNING 1) "
        "SELECT (SELECT count(*) FROM moved) + 0 * (SELECT count(*) FROM recorded)"
    )
    return sql, move_params + insert_params


def _prepare(dbapi: Any, schema: str, options: RunOptions) -> _Run:
    """Session timeouts, and the version and history tables, committed before any step.

    The version table is found (or made) on the session's search_path, as Alembic does,
    then named with its schema: a migration that changes search_path (pg_dump output
    clears it) does not lose it.
    """
    from .database import (
        SESSION_CLEAN_SQL,
        apply_session_settings,
        session_check_sql,
        standard_strings,
        transaction_setup_sql,
        version_table_schema,
    )

    with dbapi.cursor() as cursor:
        if not options.pooled:  # lease mode: each transaction sets them (transaction_setup)
            apply_session_settings(cursor, options)
        cursor.execute("SELECT to_regclass('alembic_version') IS NOT NULL")
        row = cursor.fetchone()
        if not (row and row[0]):  # checked first: no notice, no CREATE right needed
            cursor.execute(VERSION_TABLE_DDL)
        version_schema = version_table_schema(cursor)
    with history.writing(dbapi, schema) as cursor:
        history.ensure_table(cursor, schema)
    dbapi.commit()
    table = (
        '"' + version_schema.replace('"', '""') + '".alembic_version'
        if version_schema else "alembic_version"
    )
    if options.pooled:  # a pooler may hand each transaction another session: rely on none
        run = _Run(schema, table, "", (), transaction_setup_sql(options),
                   standard_strings=standard_strings(dbapi))
    else:
        record = _record_statements(schema, table)
        keep = [name for name, _ in record] + [SESSION_CHECK]
        statements = (*record, (SESSION_CHECK, f"PREPARE {SESSION_CHECK} AS "
                                + session_check_sql(options, keep)))
        check = f"EXECUTE {SESSION_CHECK};\n"
        reset = "BEGIN;\n" + SESSION_CLEAN_SQL + check + "COMMIT;\n"
        run = _Run(schema, table, reset, statements, standard_strings=standard_strings(dbapi),
                   session_clean=(SESSION_CLEAN_SQL + "DEALLOCATE ALL;\n"
                                  + "".join(sql + ";\n" for _, sql in statements) + check))
    _restore_record_statements(dbapi, run)
    return run


#: The session's prepared check (database.session_check_sql), run after the reset at the
#: head of each migration's query.
SESSION_CHECK = "fraiseql_session_check"


def _session_check_failed(err: Exception) -> bool:
    """Whether a migration's query failed in the session check at its head: the session
    held prepared statements not ours, or the check itself was gone (a function of an
    earlier migration deallocated it).  Nothing of the migration ran then."""
    from .database import SESSION_CHECK_MARK

    text, code = str(err), getattr(err, "pgcode", None)
    return ((code == sqlstate.INVALID_TEXT_REPRESENTATION and SESSION_CHECK_MARK in text)
            or (code == PREPARED_STATEMENT_GONE and f'"{SESSION_CHECK}"' in text))


def _move_version(dbapi: Any, step: Step, table: str) -> None:
    """Alembic's bookkeeping for a linear chain: INSERT, UPDATE or DELETE one row."""
    with dbapi.cursor() as cursor:
        cursor.execute(*_version_statement(step.version_before, step.version_after, table=table))
        if cursor.rowcount != 1:
            raise _version_moved(step)


def _version_moved(step: Step) -> MigrationError:
    return MigrationError(
        f"alembic_version no longer says {step.version_before} (changed while "
        f"{step.migration.name.filename} ran?); that migration was rolled back"
    )


def _version_statement(
    before: str | None, after: str | None, *, table: str = "alembic_version"
) -> tuple[str, tuple[Any, ...]]:
    """The statement that moves ``alembic_version`` (``table``, schema-qualified) from
    ``before`` to ``after`` (None: no row) in a linear chain, returning 1 per moved row."""
    if before is None:
        return f"INSERT INTO {table} (version_num) VALUES (%s) RETURNING 1", (after,)
    if after is None:
        return f"DELETE FROM {table} WHERE version_num = %s RETURNING 1", (before,)
    return f"UPDATE {table} SET version_num = %s WHERE version_num = %s RETURNING 1", (
        after,
        before,
    )


def _commit(dbapi: Any, step: Step, cursor: Any = None) -> None:
    """COMMIT a migration's transaction; an error raised only now (a deferred constraint)
    names the migration, which was rolled back."""
    import psycopg2

    try:
        if cursor is not None:
            cursor.execute("COMMIT")
        else:
            dbapi.commit()
    except psycopg2.Error as err:
        if dbapi.closed:
            raise
        raise _commit_failed(step, err) from err


def _commit_failed(step: Step, err: BaseException) -> MigrationError:
    return commit_failed(step.migration.name.filename, err)


def commit_failed(filename: str, err: BaseException) -> MigrationError:
    """A migration whose COMMIT failed (and was rolled back), on either path."""
    message, state = server_words(err)
    return MigrationError(
        f"Migration {filename} failed at COMMIT: {message}{state} (a deferred constraint "
        "is checked only then). The migration was rolled back; fix the file and run the "
        "command again"
    )


def _rollback(dbapi: Any) -> None:
    """End whatever transaction is open, in autocommit mode (an explicit BEGIN) or not.

    On a dead connection there is nothing to do: the server rolled back.
    """
    import psycopg2
    from psycopg2.extensions import TRANSACTION_STATUS_IDLE

    if dbapi.closed:
        return
    with contextlib.suppress(psycopg2.Error):
        if not dbapi.autocommit:
            dbapi.rollback()
        elif dbapi.get_transaction_status() != TRANSACTION_STATUS_IDLE:
            dbapi.cursor().execute("ROLLBACK")
