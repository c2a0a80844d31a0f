"""What a run writes beside a migration: the history row, and (ours) ``alembic_version``.

Both paths run a migration with :func:`.run.run_step`; only the recorder differs:

* :class:`OwnRecorder` (the direct path): the migration's own transaction moves
  ``alembic_version`` and writes the history row, guarded (nothing is written if the
  version changed underneath), with statements the session prepared once;
* :class:`AlembicRecorder` (a revision's ``upgrade()``/``downgrade()`` under Alembic):
  the history row only; Alembic's HeadMaintainer moves the version in the same
  transaction, and Alembic commits it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .. import sqlstate
from ..errors import MigrationError
from . import history
from .database import version_table_schema
from .session import (
    SESSION_CHECK_MARK,
    SESSION_CLEAN_SQL,
    Session,
    apply_session_settings,
    open_dbapi,
    rollback,
    session_check_sql,
    standard_strings,
    transaction_setup_sql,
)
from .translate import foreign_error

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

    from ..settings import RunOptions
    from ..sql.parse import ParsedMigration


@dataclass(frozen=True)
class Step:
    """One migration to run: the file, which way, and the version it leaves behind."""

    migration: ParsedMigration
    upgrade: bool
    version_before: str | None
    version_after: str | None

    @property
    def action(self) -> str:
        return history.APPLIED if self.upgrade else history.ROLLED_BACK


class Recorder(Protocol):
    """How :func:`.run.run_step` records a step, and which transaction holds it."""

    @property
    def schema(self) -> str:
        """The history table's schema."""

    @property
    def own_transaction(self) -> bool:
        """True: each step is a transaction of ours (BEGIN ... COMMIT, the version moved
        here); False: the caller's (Alembic's) transaction holds the step."""

    @property
    def session_clean(self) -> str:
        """The whole session reset, sent on its own ("" when there is none of ours)."""

    @property
    def history_ready(self) -> bool:
        """The history table exists (a batch may write to it)."""

    def batch_head(self, reset_before: bool) -> str:
        """SQL a step's one-query batch starts with."""

    def batch_tail(self, step: Step, *, inline: bool) -> tuple[str, tuple[Any, ...]]:
        """The bookkeeping statement (and its parameters) after the step's statements;
        ``inline``: not a prepared statement (the step may deallocate it)."""

    def begin(self, session: Session, reset_before: bool) -> None:
        """Before a step runs statement by statement."""

    def finish(self, session: Session, step: Step) -> None:
        """After a step ran statement by statement (its history row written)."""

    def restore(self, session: Session) -> None:
        """After a step that may have dropped the session's prepared statements."""

    def rerun_bookkeeping(self, entry: history.Entry,
                          step: Step) -> tuple[str, tuple[Any, ...]]:
        """The bookkeeping spelled out, for a step rerun after its batch lost the
        prepared statement; the query returns the number of version rows moved."""


@dataclass(frozen=True)
class AlembicRecorder:
    """Under Alembic: the history row, in Alembic's transaction; the version is Alembic's."""

    schema: str
    history_ready: bool = True
    own_transaction = False
    session_clean = ""

    def batch_head(self, reset_before: bool) -> str:
        return ""

    def batch_tail(self, step: Step, *, inline: bool) -> tuple[str, tuple[Any, ...]]:
        entry = history.entry_for(step.migration, step.action, None)
        return history.record_statement(self.schema, entry, server_timed=True)

    def begin(self, session: Session, reset_before: bool) -> None:
        return None

    def finish(self, session: Session, step: Step) -> None:
        return None

    def restore(self, session: Session) -> None:
        return None

    def rerun_bookkeeping(self, entry: history.Entry,
                          step: Step) -> tuple[str, tuple[Any, ...]]:
        insert, params = history.record_statement(self.schema, entry)
        return f"WITH recorded AS ({insert} RETURNING 1) SELECT 1", params


def version_table_sql(table: str = "alembic_version") -> str:
    """Alembic's version table, as Alembic creates it (``table`` may be schema-qualified)."""
    return (f"CREATE TABLE IF NOT EXISTS {table} (version_num VARCHAR(32) NOT NULL, "
            "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))")


VERSION_TABLE_DDL = version_table_sql()


@dataclass(frozen=True)
class OwnRecorder:
    """The direct path's bookkeeping, shared by every step of one run: the history
    schema, the version table's schema-qualified name, and the SQL that resets the
    session before each migration.  Made by :func:`prepare`."""

    schema: str
    version_table: str
    #: at the head of each migration's query, in a transaction of its own (an UNLISTEN
    #: acts at COMMIT): session.SESSION_CLEAN_SQL and the EXECUTE of the prepared
    #: session check (settings; fails if the session holds prepared statements not
    #: ours).  Empty in lease mode (transaction_setup does it)
    session_reset: str
    #: (name, PREPARE statement) of each shape of the bookkeeping (see record_statements)
    record_statements: tuple[tuple[str, str], ...] = ()
    #: SQL each migration's transaction starts with (lease mode: session.transaction_setup_sql)
    transaction_setup: str = ""
    #: the session's standard_conforming_strings, with which psql would read the files
    standard_strings: bool = True
    #: the whole reset, sent on its own: session_reset with DEALLOCATE ALL and our
    #: statements prepared again (after a failed session check, before a migration that
    #: is not one query, before a rerun)
    session_clean: str = ""
    own_transaction = True
    history_ready = True

    def batch_head(self, reset_before: bool) -> str:
        return (self.session_reset if reset_before else "") + "BEGIN;\n" + self.transaction_setup

    def batch_tail(self, step: Step, *, inline: bool) -> tuple[str, tuple[Any, ...]]:
        sql, params = guarded_bookkeeping(self, step, inline=inline or not self.record_statements)
        return sql + ";\nCOMMIT", params

    def begin(self, session: Session, reset_before: bool) -> None:
        with session.cursor() as cursor:
            if reset_before and self.session_clean:
                cursor.execute(self.session_clean)
                session.commit()  # on its own: an UNLISTEN acts at COMMIT
            if self.transaction_setup:
                cursor.execute(self.transaction_setup)

    def finish(self, session: Session, step: Step) -> None:
        move_version(session.dbapi, step, self.version_table)

    def restore(self, session: Session) -> None:
        restore_record_statements(session.dbapi, self)

    def rerun_bookkeeping(self, entry: history.Entry,
                          step: Step) -> tuple[str, tuple[Any, ...]]:
        return bookkeeping(self, entry, step)


def prepare(dbapi: Connection, schema: str, options: RunOptions) -> OwnRecorder:
    """Session timeouts, and the version and history tables, committed before any step.

    The version table is found (or made) on the session's search_path, as Alembic does,
    then named with its schema: a migration that changes search_path (pg_dump output
    clears it) does not lose it.  In lease mode the session is first reset as a new one
    would be: behind a transaction pooler it may be a server session on which an earlier
    transaction left such a ``SET``.
    """
    with dbapi.cursor() as cursor:
        if options.pooled:  # each transaction sets the timeouts (transaction_setup)
            cursor.execute(SESSION_CLEAN_SQL)
        else:
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
        run = OwnRecorder(schema, table, "", (), transaction_setup_sql(options),
                          standard_strings=standard_strings(dbapi))
    else:
        record = record_statements(schema, table)
        keep = [name for name, _ in record] + [SESSION_CHECK]
        statements = (*record, (SESSION_CHECK, f"PREPARE {SESSION_CHECK} AS "
                                + session_check_sql(options, keep)))
        check = f"EXECUTE {SESSION_CHECK};\n"
        reset = "BEGIN;\n" + SESSION_CLEAN_SQL + check + "COMMIT;\n"
        run = OwnRecorder(schema, table, reset, statements,
                          standard_strings=standard_strings(dbapi),
                          session_clean=(SESSION_CLEAN_SQL + "DEALLOCATE ALL;\n"
                                         + "".join(sql + ";\n" for _, sql in statements)
                                         + check))
    restore_record_statements(dbapi, run)
    return run


#: The session's prepared check (session.session_check_sql), run after the reset at the
#: head of each migration's query.
SESSION_CHECK = "fraiseql_session_check"


def session_check_failed(err: BaseException) -> bool:
    """Whether a migration's query failed in the session check at its head: the session
    held prepared statements not ours, or the check itself was gone (a function of an
    earlier migration deallocated it).  Nothing of the migration ran then."""
    text, code = str(err), getattr(err, "pgcode", None)
    return ((code == sqlstate.INVALID_TEXT_REPRESENTATION and SESSION_CHECK_MARK in text)
            or (code == PREPARED_STATEMENT_GONE and f'"{SESSION_CHECK}"' in text))


#: The session's prepared bookkeeping statement is gone (see :func:`.run.run_batched`).
PREPARED_STATEMENT_GONE = sqlstate.INVALID_SQL_STATEMENT_NAME


def guarded_bookkeeping(
    run: OwnRecorder, step: Step, *, inline: bool = False
) -> tuple[str, tuple[Any, ...]]:
    """The version move and history row as one statement that fails (division by
    zero) when ``alembic_version`` did not say ``step.version_before``; the caller
    then reruns the migration step by step, where :func:`bookkeeping` says why.

    It is the ``EXECUTE`` of a statement the session prepared once
    (:func:`record_statements`): planning the same ``WITH`` statement for every
    migration cost about 0.1 ms of server time each.  ``inline`` spells the statement
    out instead, for a migration that may drop the prepared one before it runs.
    """
    move, move_params = version_statement(step.version_before, step.version_after,
                                           table=run.version_table)
    entry = history.entry_for(step.migration, step.action, None)
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


def record_statements(schema: str, version_table: str) -> tuple[tuple[str, str], ...]:
    """``PREPARE`` statements of the guarded bookkeeping, one per shape of version move:
    the same SQL as before with ``$n`` for each parameter, all of them ``text``."""
    entry = history.Entry(version="", name=None, filename=None, checksum=None,
                          up_checksum=None, execution_ms=None, action="")
    insert, insert_params = history.record_statement(schema, entry, server_timed=True)
    prepared = []
    for before, after in _MOVE_SHAPES:
        # The table goes in after numbering: its schema's name might hold a "%s".
        move, move_params = version_statement(before, after, table="\0")
        count = len(move_params) + len(insert_params)
        pieces = _guard_sql(move, insert).split("%s")
        assert len(pieces) == count + 1  # one placeholder per parameter, nothing else
        sql = pieces[0] + "".join(f"${number}{piece}"
                                  for number, piece in enumerate(pieces[1:], start=1))
        sql = sql.replace("\0", version_table)
        name = _record_statement_name(move)
        prepared.append((name, f"PREPARE {name} ({', '.join(['text'] * count)}) AS {sql}"))
    return tuple(prepared)


def restore_record_statements(dbapi: Connection, run: OwnRecorder) -> None:
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


def bookkeeping(run: OwnRecorder, entry: history.Entry, step: Step) -> tuple[str, tuple[Any, ...]]:
    """One statement: move alembic_version and add the history row, returning the number
    of version rows moved (1, or 0 when alembic_version changed underneath)."""
    move, move_params = version_statement(step.version_before, step.version_after,
                                           table=run.version_table)
    insert, insert_params = history.record_statement(run.schema, entry)
    sql = (
        f"WITH moved AS ({move}), recorded AS ({insert} RETURNING 1) "
        "SELECT (SELECT count(*) FROM moved) + 0 * (SELECT count(*) FROM recorded)"
    )
    return sql, move_params + insert_params


def move_version(dbapi: Connection, step: Step, table: str) -> None:
    """Alembic's bookkeeping for a linear chain: INSERT, UPDATE or DELETE one row."""
    with dbapi.cursor() as cursor:
        cursor.execute(*version_statement(step.version_before, step.version_after, table=table))
        if cursor.rowcount != 1:
            raise version_moved(step)


def version_moved(step: Step) -> MigrationError:
    return MigrationError(
        f"alembic_version no longer says {step.version_before} (changed while "
        f"{step.migration.name.filename} ran?); that migration was rolled back"
    )


def version_statement(
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


def record_without_running(
    url: str,
    entries: Sequence[history.Entry],
    *,
    history_schema: str,
    options: RunOptions,
    move: tuple[str | None, str | None] | None = None,
) -> None:
    """Write history rows, and move ``alembic_version`` by ``move`` (from, to; None: no
    row), in one
    transaction, running no migration SQL (``mark-applied``, ``repair``).

    The move is guarded: if ``alembic_version`` no longer says ``from``, nothing is
    written.  A marked version's resume point (a partly applied file) is cleared.
    """
    import psycopg2  # lazy: start-up time

    dbapi = open_dbapi(url)
    try:
        run = prepare(dbapi, history_schema, options)
        with history.writing(dbapi, history_schema) as cursor:
            if move is not None:
                cursor.execute(*version_statement(*move, table=run.version_table))
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
        rollback(dbapi)
        dbapi.close()
