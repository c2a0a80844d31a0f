"""Run one section of a parsed migration through an Alembic migration context.

Online, statements go to the server verbatim on the DB-API cursor (no parameter
processing: ``%``, ``:name`` and ``$$`` bodies are untouched), one by one, so a
failure is located at its file line and column.  The section runs inside the
migration's transaction unless one of its statements cannot (``CREATE INDEX
CONCURRENTLY``, ``VACUUM``...) or the marker says ``transaction:false``; then it
runs in autocommit, one statement at a time.  Offline (``--sql``), the same
statements are written out for ``psql``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from . import history
from .cancel import CancelToken, MigrationInterrupted
from .errors import MigrationExecutionError, MigrationFileError, server_words
from .sqlfile import ParsedMigration, Section, Statement, split_statements, terminated

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationContext

NoticeSink = Callable[[str], None]


def _stderr_notice(text: str) -> None:
    print(text, file=sys.stderr)


#: Characters of COPY data sent per read (psycopg2 encodes each piece on its own).
COPY_CHUNK = 1 << 20


def needs_autocommit(section: Section, statements: list[Statement]) -> bool:
    """True when the section must run outside a transaction block."""
    if section.transaction is not None:
        return not section.transaction
    return any(statement.non_transactional for statement in statements)


def run_section(
    context: MigrationContext,
    migration: ParsedMigration,
    section: Section,
    *,
    action: str,
    history_schema: str,
    on_notice: NoticeSink | None = None,
    cancel: CancelToken | None = None,
    history_ready: bool = False,
) -> None:
    """Execute ``section`` and write its history row, online or offline.

    ``history_ready`` says the history table exists (our env.py made sure), saving
    a round trip per migration; another env.py leaves it False.

    Timeouts named on the section's marker (``lock_timeout:2s``) apply to it alone.
    """
    if context.as_sql:  # psql will read the script: as the session starts, with it on
        split = split_statements(migration, section)
    else:
        from .database import standard_strings

        split = split_statements(migration, section,
                                 standard_strings=standard_strings(_dbapi_connection(context)))
    statements = split.statements
    autocommit = needs_autocommit(section, statements)
    if context.as_sql:
        _emit_offline(context, migration, statements, autocommit, action, history_schema)
        return
    started = time.perf_counter()
    sink = on_notice or _stderr_notice
    if split.unwrapped:
        sink(
            f"note: {migration.name.filename} is wrapped in BEGIN; ... COMMIT; those two "
            "statements are skipped: the migration already runs in its own transaction"
        )
    direction = "up" if action == history.APPLIED else "down"
    if autocommit:
        with context.autocommit_block(), section_timeouts(context, section, local=False):
            _execute_segments(
                context, migration, section, statements, direction, history_schema, sink, cancel
            )
    else:
        with section_timeouts(context, section, local=True):
            execute_statements(context, migration, statements, sink, cancel, in_transaction=True)
    elapsed_ms = int((time.perf_counter() - started) * 1000)
    with history.writing(_dbapi_connection(context), history_schema) as cursor:
        if not history_ready:
            history.ensure_table(cursor, history_schema)
        history.record(cursor, history_schema, history_entry(migration, action, elapsed_ms))
        if autocommit:
            history.clear_progress(cursor, history_schema, migration.name.version, direction)


def segments_of(section: Section, statements: list[Statement]) -> list[list[Statement]]:
    """Consecutive transactional statements form one segment; the others stand alone.

    With ``transaction:false`` every statement is its own segment.
    """
    segments: list[list[Statement]] = []
    for statement in statements:
        alone = statement.non_transactional or section.transaction is False
        if not alone and segments and not _alone(segments[-1][0], section):
            segments[-1].append(statement)
        else:
            segments.append([statement])
    return segments


def _prefix_checksum(migration: ParsedMigration, line: int) -> str:
    """Checksum of the file's lines before ``line``: the part a partial run applied."""
    from .sqlfile import checksum_of

    text, end = migration.text, 0
    for _ in range(max(line - 1, 0)):
        found = text.find("\n", end)
        if found < 0:
            return checksum_of(text)
        end = found + 1
    return checksum_of(text[: max(end - 1, 0)])


def _alone(statement: Statement, section: Section) -> bool:
    return statement.non_transactional or section.transaction is False


def _execute_segments(
    context: MigrationContext,
    migration: ParsedMigration,
    section: Section,
    statements: list[Statement],
    direction: str,
    schema: str,
    sink: NoticeSink,
    cancel: CancelToken | None,
) -> None:
    """Run a section that cannot be one transaction, segment by segment, in autocommit.

    Each transactional segment commits together with the progress row that says it
    is done, so a re-run resumes after the last completed segment.
    """
    import psycopg2

    dbapi = _dbapi_connection(context)
    cursor = dbapi.cursor()
    try:
        with history.writing(dbapi, schema) as setup:
            history.ensure_progress_table(setup, schema)
        key = (migration.name.version, direction)
        progress = history.read_progress(cursor, schema).get(key)
        resume_line = 0
        if progress is not None:
            if progress.checksum != _prefix_checksum(migration, progress.next_line):
                raise MigrationFileError(
                    migration.name.filename,
                    f"lines 1-{progress.next_line - 1} changed since they were applied (the "
                    "file is partly applied). Restore them, or undo those parts by hand and "
                    f"delete the file's row from {history.PROGRESS_TABLE}",
                )
            resume_line = progress.next_line
            sink(
                f"Resuming {migration.name.filename} at line {resume_line}: the segments "
                "before it were completed by an earlier run"
            )
        end_line = migration.text.count("\n") + 2
        # Segments are formed from what is left to run: a statement inserted at the
        # resume line runs too, even if it would have joined a completed segment.
        segments = segments_of(section, [s for s in statements if s.line >= resume_line])
        for index, segment in enumerate(segments):
            transactional = not _alone(segment[0], section)
            if transactional:
                cursor.execute("BEGIN")
            try:
                execute_statements(
                    context, migration, segment, sink, cancel, in_transaction=transactional,
                    segment=(index + (1 if resume_line else 0), direction),
                )
                next_line = segments[index + 1][0].line if index + 1 < len(segments) else end_line
                history.save_progress(cursor, schema, history.Progress(
                    migration.name.version, direction, _prefix_checksum(migration, next_line),
                    index + 1, next_line,
                ))
                if transactional:
                    cursor.execute("COMMIT")
            except BaseException:
                if transactional and not dbapi.closed:
                    with contextlib.suppress(psycopg2.Error):
                        cursor.execute("ROLLBACK")
                raise
    finally:
        cursor.close()


def history_entry(migration: ParsedMigration, action: str, elapsed_ms: int | None) -> history.Entry:
    return history.Entry(
        version=migration.name.version,
        name=migration.name.slug,
        filename=migration.name.filename,
        checksum=migration.checksum,
        execution_ms=elapsed_ms,
        action=action,
        up_checksum=migration.up_checksum,
    )


def _dbapi_connection(context: MigrationContext) -> Any:
    connection = context.connection
    assert connection is not None
    return connection.connection.dbapi_connection


class _NoticeForwarder:
    """Stands in for psycopg2's ``connection.notices`` list: forwards each notice."""

    def __init__(self, sink: NoticeSink) -> None:
        self.sink = sink

    def append(self, message: str) -> None:
        self.sink(" ".join(message.strip().split(None, 1)))


@contextmanager
def forward_notices(dbapi: Any, sink: NoticeSink) -> Iterator[None]:
    saved = dbapi.notices
    dbapi.notices = _NoticeForwarder(sink)
    try:
        yield
    finally:
        dbapi.notices = saved


@contextmanager
def section_timeouts(
    context: MigrationContext, section: Section, *, local: bool
) -> Iterator[None]:
    """Apply a section's own timeouts: SET LOCAL in a transaction, else SET and restore."""
    if not section.timeouts:
        yield
        return
    cursor = _dbapi_connection(context).cursor()
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


def execute_statements(
    context: MigrationContext,
    migration: ParsedMigration,
    statements: list[Statement],
    sink: NoticeSink,
    cancel: CancelToken | None,
    *,
    in_transaction: bool,
    segment: tuple[int, str] | None = None,
) -> None:
    import psycopg2

    dbapi = _dbapi_connection(context)
    with forward_notices(dbapi, sink):
        cursor = dbapi.cursor()
        try:
            for statement in statements:
                if cancel is not None:
                    cancel.check(f"in {migration.name.filename} before line {statement.line}")
                if statement.non_transactional and not in_transaction:
                    _drop_invalid_leftover(cursor, statement, migration, sink)
                try:
                    if statement.copy is not None:  # its data follows in the file
                        cursor.copy_expert(statement.sql, statement.copy.reader(),
                                           size=COPY_CHUNK)
                    else:
                        cursor.execute(statement.sql)
                except psycopg2.Error as err:
                    if cancel is not None and cancel.cancelled:
                        raise MigrationInterrupted(
                            f"Stopped by {cancel.reason} in {migration.name.filename} at line "
                            f"{statement.line}; "
                            + ("that migration was rolled back" if in_transaction else
                               "the statement was cancelled")
                        ) from err
                    raise located_error(
                        migration, statement, err, dbapi, in_transaction=in_transaction,
                        segment=segment,
                    ) from err
        finally:
            cursor.close()


def located_error(
    migration: ParsedMigration,
    statement: Statement,
    err: Any,
    dbapi: Any,
    *,
    in_transaction: bool,
    segment: tuple[int, str] | None = None,
    position: int | None = None,
) -> MigrationExecutionError:
    """Turn a server error into file:line:column, the statement and PostgreSQL's words.

    ``position`` (1-based, in ``statement.sql``) overrides the error's own
    ``statement_position``, for an error raised by a query that held more statements.
    """
    diag = getattr(err, "diag", None)
    message, _ = server_words(err)
    line, column = statement.line, statement.column
    if position is None:
        position = getattr(diag, "statement_position", None)
    if position and statement.offset + int(position) - 1 < len(migration.text):
        offset = statement.offset + int(position) - 1
        end = statement.offset + len(statement.sql)
        if migration.text[statement.offset : end] == statement.sql:
            line = migration.text.count("\n", 0, offset) + 1
            column = offset - (migration.text.rfind("\n", 0, offset) + 1) + 1
    if statement.copy is not None:
        data_line = _copy_line(getattr(diag, "context", None))
        if data_line is not None:
            line, column = statement.copy.file_line(data_line), 1
            message += f" (line {data_line} of the COPY data)"
    if not in_transaction:
        invalid = _invalid_index_left(dbapi, statement)
        if invalid:
            message += (
                f"; it left the INVALID index {invalid} behind: run "
                f"`DROP INDEX CONCURRENTLY {invalid};` before retrying"
            )
    import psycopg2

    sqlstate = getattr(err, "pgcode", None)
    lost = isinstance(err, psycopg2.OperationalError) and (
        sqlstate is None or sqlstate.startswith("08") or sqlstate in ("57P01", "57P02", "57P03")
    )
    return MigrationExecutionError(
        migration.name.filename,
        line,
        column,
        statement.sql,
        message,
        sqlstate,
        kept_nothing=in_transaction and (segment is None or segment[0] == 0),
        connection_lost=lost,
        resume_command=(
            f"fraiseql migrate {segment[1]}" if segment is not None and segment[0] > 0 else None
        ),
    )


def _copy_line(context: str | None) -> int | None:
    """The data line PostgreSQL names in a COPY error's context (``COPY t, line 3``)."""
    import re

    match = re.search(r"\bCOPY [^,]+, line (\d+)", context or "")
    return int(match.group(1)) if match else None


def _index_name(statement: Statement) -> str | None:
    """The index a ``CREATE INDEX`` statement names, from its syntax tree."""
    from pglast.parser import ParseError, parse_sql_json

    try:
        tree = json.loads(parse_sql_json(statement.sql))
        node = tree["stmts"][0]["stmt"].get("IndexStmt")
    except (ParseError, KeyError, IndexError):
        return None
    name = node.get("idxname") if node else None
    return str(name) if name else None


_INVALID_INDEX_SQL = (
    "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_index i "
    "JOIN pg_class c ON c.oid = i.indexrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE NOT i.indisvalid AND c.relname = %s AND pg_table_is_visible(i.indrelid)"
)


def _invalid_index_left(dbapi: Any, statement: Statement) -> str | None:
    """After a failed ``CREATE INDEX CONCURRENTLY``, the name of the INVALID index it left."""
    if not statement.non_transactional:
        return None
    name = _index_name(statement)
    if name is None:
        return None
    cursor = dbapi.cursor()
    try:
        cursor.execute(_INVALID_INDEX_SQL, (name,))
        row = cursor.fetchone()
    except Exception:  # the connection may be unusable; the main error matters more
        return None
    finally:
        cursor.close()
    return str(row[0]) if row else None


def _drop_invalid_leftover(
    cursor: Any, statement: Statement, migration: ParsedMigration, sink: NoticeSink
) -> None:
    """Before re-running ``CREATE INDEX CONCURRENTLY``: drop the INVALID index an
    earlier failed attempt left under the same name (it serves no query anyway)."""
    name = _index_name(statement)
    if name is None:
        return
    cursor.execute(_INVALID_INDEX_SQL, (name,))
    row = cursor.fetchone()
    if row is None:
        return
    sink(
        f"{migration.name.filename}:{statement.line}: dropping INVALID index {row[0]} left by "
        "an earlier failed attempt before building it again"
    )
    cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {row[0]}")


def _emit_offline(
    context: MigrationContext,
    migration: ParsedMigration,
    statements: list[Statement],
    autocommit: bool,
    action: str,
    history_schema: str,
) -> None:
    output = context.impl.static_output

    def emit_all() -> None:
        for statement in statements:
            if statement.copy is not None:  # with its data and their end, as psql reads them
                data = statement.copy
                output(terminated(statement.sql) + "\n" + data.text[data.start:data.end] + "\\.")
            else:
                output(terminated(statement.sql) + "\n")

    if autocommit:
        with context.autocommit_block():
            emit_all()
    else:
        emit_all()
    if not getattr(context, "_fraiseql_history_emitted", False):
        output(history.create_table_sql(history_schema) + ";\n")
        context._fraiseql_history_emitted = True  # type: ignore[attr-defined]
    output(history.record_sql(history_schema, history_entry(migration, action, None)) + ";\n")
