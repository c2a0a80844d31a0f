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
import hashlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .. import sqlstate
from ..engine import history
from ..errors import (
    InterruptedStatementError,
    MigrationError,
    MigrationExecutionError,
    MigrationFileError,
    StatementStillRunningError,
)
from ..sql.parse import ParsedMigration, Section
from ..sql.statements import Statement, split_statements, terminated
from .cancel import CancelToken, MigrationInterrupted
from .database import OFFLINE_RESET_SQL
from .translate import server_words

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
    partial: bool | None = None,
) -> None:
    """Execute ``section`` and write its history row, online or offline.

    ``history_ready`` says the history table exists (our env.py made sure), saving
    a round trip per migration; another env.py leaves it False.  ``partial`` says
    whether an earlier run left the section partly run (None: look it up); such a
    section resumes segment by segment even when nothing in it needs autocommit any
    more (its last non-transactional statement was edited out).

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
    if not autocommit and (partial if partial is not None else _has_progress(
            context, migration.name.version, direction, history_schema)):
        autocommit = True  # resumed segment by segment
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
    """Checksum of the file's lines before ``line``: what a progress row written by an
    earlier release vouches for."""
    from ..sql.parse import checksum_of

    text, end = migration.text, 0
    for _ in range(max(line - 1, 0)):
        found = text.find("\n", end)
        if found < 0:
            return checksum_of(text)
        end = found + 1
    return checksum_of(text[: max(end - 1, 0)])


def statement_checksum(statement: Statement) -> str:
    """Identity of one statement (its text and COPY data; CRLF does not count): 16 hex
    digits of SHA-256, enough to recognise an edit, small enough to keep one per statement."""
    text = statement.sql
    if statement.copy is not None:
        data = statement.copy
        text += "\n" + data.text[data.start:data.end]
    return hashlib.sha256(text.replace("\r\n", "\n").encode("utf-8")).hexdigest()[:16]


def _chained(chain: str, checksums: list[str]) -> str:
    """The progress row's ``checksum``: a hash chain over the completed statements."""
    for checksum in checksums:
        chain = hashlib.sha256((chain + checksum).encode("ascii")).hexdigest()
    return chain


def _alone(statement: Statement, section: Section) -> bool:
    return statement.non_transactional or section.transaction is False


def _has_progress(context: MigrationContext, version: str, direction: str, schema: str) -> bool:
    cursor = _dbapi_connection(context).cursor()
    try:
        return history.has_progress(cursor, schema, version, direction)
    finally:
        cursor.close()


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

    Each transactional segment commits together with the record of its statements, so
    a re-run resumes after the last completed segment, whatever was edited after it.
    Before a statement that runs outside a transaction, its intent is committed (state
    ``running``); a re-run that finds it settles it first (:func:`_settle_running`).
    """
    import psycopg2

    dbapi = _dbapi_connection(context)
    cursor = dbapi.cursor()
    filename, version = migration.name.filename, migration.name.version
    try:
        with history.writing(dbapi, schema) as setup:
            history.ensure_progress_table(setup, schema)
        checksums = [statement_checksum(statement) for statement in statements]
        end_line = migration.text.count("\n") + 2

        def line_after(count: int) -> int:
            return statements[count].line if count < len(statements) else end_line

        done, segments_done, chain = 0, 0, ""
        progress = history.read_progress(cursor, schema).get((version, direction))
        if progress is not None:
            done = _completed(cursor, migration, statements, checksums, progress, schema,
                              direction)
            segments_done, chain = progress.segments_done, _chained("", checksums[:done])
            if progress.state == history.RUNNING:
                if _settle_running(cursor, migration, statements, checksums, progress,
                                   direction, sink):
                    done, segments_done = done + 1, segments_done + 1
                    chain = _chained(chain, checksums[done - 1 : done])
                    history.save_segment(cursor, schema, history.Progress(
                        version, direction, chain, segments_done, line_after(done), done,
                    ), statements[done - 1].line, checksums[done - 1 : done])
                else:
                    history.save_progress(cursor, schema, history.Progress(
                        version, direction, chain, segments_done, line_after(done), done))
            if done:
                sink(
                    f"Resuming {filename} at line {line_after(done)}: the segments before it "
                    "were completed by an earlier run"
                )
            for statement in statements[done:]:  # a failed CONCURRENTLY build edited into
                if not statement.non_transactional and _CREATE_INDEX_RE.match(statement.sql):
                    _drop_invalid_leftover(cursor, statement, migration, sink)  # a plain one
        # Segments are formed from what is left to run: a statement inserted at the
        # resume point runs too, even if it would have joined a completed segment.
        for segment in segments_of(section, statements[done:]):
            transactional = not _alone(segment[0], section)
            first, after = done, done + len(segment)
            if transactional:
                cursor.execute("BEGIN")
            else:  # the intent, committed before the statement is sent
                history.save_progress(cursor, schema, history.Progress(
                    version, direction, chain, segments_done, line_after(after), done,
                    history.RUNNING, segment[0].line, checksums[first],
                ), statement_offset=segment[0].offset)
            try:
                execute_statements(
                    context, migration, segment, sink, cancel, in_transaction=transactional,
                    segment=(segments_done, direction),
                )
                chain = _chained(chain, checksums[first:after])
                history.save_segment(cursor, schema, history.Progress(
                    version, direction, chain, segments_done + 1, line_after(after), after,
                ), segment[0].line, checksums[first:after])
                if transactional:
                    cursor.execute("COMMIT")
            except BaseException as err:
                if transactional and not dbapi.closed:
                    with contextlib.suppress(psycopg2.Error):
                        cursor.execute("ROLLBACK")
                elif not transactional and _failed_on_server(err, dbapi):
                    # PostgreSQL answered with an error: the statement did not take effect
                    with contextlib.suppress(psycopg2.Error):
                        if done:
                            history.save_progress(cursor, schema, history.Progress(
                                version, direction, chain, segments_done, segment[0].line,
                                done))
                        else:
                            history.clear_progress(cursor, schema, version, direction)
                raise
            done, segments_done = after, segments_done + 1
    finally:
        cursor.close()


_CREATE_INDEX_RE = re.compile(r"\s*CREATE\s+(UNIQUE\s+)?INDEX\b", re.IGNORECASE)


def _failed_on_server(err: BaseException, dbapi: Any) -> bool:
    """Whether ``err`` is PostgreSQL's answer to a statement, on a connection still open
    (so the statement surely did not complete), rather than a lost connection."""
    import psycopg2

    cause = err.__cause__ if isinstance(err, MigrationError) else err
    return (isinstance(cause, psycopg2.Error) and getattr(cause, "pgcode", None) is not None
            and not dbapi.closed and not getattr(err, "connection_lost", False))


def _completed(
    cursor: Any,
    migration: ParsedMigration,
    statements: list[Statement],
    checksums: list[str],
    progress: history.Progress,
    schema: str,
    direction: str,
) -> int:
    """How many statements of the section an earlier run completed, after checking that
    none of them changed since; an edit among them is refused, naming its line."""
    filename = migration.name.filename
    undo = (
        f"or undo the applied part by hand and delete the file's rows (version "
        f"'{migration.name.version}') from {history.PROGRESS_TABLE} and "
        f"{history.SEGMENTS_TABLE}"
    )
    if progress.done is None:  # a row written by an earlier release
        if progress.checksum != _prefix_checksum(migration, progress.next_line):
            raise MigrationFileError(
                filename,
                f"lines 1-{progress.next_line - 1} changed since they were applied (the "
                f"file is partly applied). Restore them, {undo}",
            )
        count = sum(1 for statement in statements if statement.line < progress.next_line)
        if count:
            history.save_segment(cursor, schema, replace(
                progress, checksum=_chained("", checksums[:count]), done=count,
            ), statements[0].line, checksums[:count])
        return count
    recorded = history.read_segments(cursor, schema, migration.name.version, direction)
    if len(recorded) != progress.done:
        raise MigrationFileError(
            filename,
            f"its rows in {history.PROGRESS_TABLE} and {history.SEGMENTS_TABLE} disagree "
            f"(were they edited by hand?); the file is partly applied: {undo}",
        )
    applied = (
        f"lines {statements[0].line}-{progress.next_line - 1}"
        if statements and progress.next_line - 1 > statements[0].line
        else f"line {progress.next_line - 1}"
    )
    for index, expected in enumerate(recorded):
        if index >= len(statements):
            raise MigrationFileError(
                filename,
                f"an earlier run completed {len(recorded)} statements of this section, "
                f"and it has {len(statements)} now: completed statements were removed (the "
                f"file is partly applied). Restore them, {undo}",
            )
        if checksums[index] != expected:
            raise MigrationFileError(
                filename,
                f"this statement changed since an earlier run completed it ({applied} are "
                f"applied; the file is partly applied). Restore it, and edit only what "
                f"comes after, {undo}",
                statements[index].line,
            )
    return len(recorded)


def _settle_running(
    cursor: Any,
    migration: ParsedMigration,
    statements: list[Statement],
    checksums: list[str],
    progress: history.Progress,
    direction: str,
    sink: NoticeSink,
) -> bool:
    """The outcome of the statement an earlier run started outside a transaction and never
    recorded: True when it took effect (record it done), False when it is to be sent again
    (it did not, or running it twice is harmless).  Raises when it is still running on
    the server, or when its outcome cannot be known."""
    filename = migration.name.filename
    index = progress.done or 0
    line = progress.statement_line
    command = f"fraiseql migrate {direction}"
    if index >= len(statements) or checksums[index] != progress.statement_checksum:
        raise MigrationFileError(
            filename,
            "the statement an earlier run started here outside a transaction (its outcome "
            "was never recorded) has changed since. Run `" + command + " --resume again` "
            "to send the statement as it is now, or restore it and run `" + command
            + " --resume done` if the earlier one took effect",
            line,
        )
    statement = statements[index]
    pid = _running_elsewhere(cursor, statement)
    if pid is not None:
        raise StatementStillRunningError(filename, statement.line, statement.sql, pid, direction)
    took_effect, why = statement_outcome(cursor, statement)
    if took_effect is None:
        raise InterruptedStatementError(filename, statement.line, statement.sql, direction)
    sink(
        f"{filename}:{statement.line}: an earlier run stopped before recording this statement"
        f"'s outcome; {why}: "
        + ("recorded as done, not run again" if took_effect else "running it again")
    )
    return took_effect


def _running_elsewhere(cursor: Any, statement: Statement) -> int | None:
    """The pid of another backend still running ``statement`` (as the dead client sent it),
    if any: pg_stat_activity keeps the first track_activity_query_size bytes of it."""
    cursor.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND state IS DISTINCT FROM 'idle' AND (query = %s OR "
        "(octet_length(query) >= (SELECT setting::int - 8 FROM pg_settings "
        "WHERE name = 'track_activity_query_size') AND starts_with(%s, query))) "
        "ORDER BY backend_start LIMIT 1",
        (statement.sql, statement.sql),
    )
    row = cursor.fetchone()
    return int(row[0]) if row else None


def _quoted(*parts: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in parts)


def _relation(node: dict[str, Any]) -> str:
    parts = [node["schemaname"]] if node.get("schemaname") else []
    return _quoted(*parts, node["relname"])


#: Statements that leave the same state when run twice, or whose second run is only
#: extra work: sent again after an interruption.
_REPEATABLE = {
    "VacuumStmt": "VACUUM/ANALYZE",
    "ReindexStmt": "REINDEX",
    "ClusterStmt": "CLUSTER",
    "CheckPointStmt": "CHECKPOINT",
    "RefreshMatViewStmt": "REFRESH MATERIALIZED VIEW",
    "DiscardStmt": "DISCARD",
    "VariableSetStmt": "SET",
}


def statement_outcome(cursor: Any, statement: Statement) -> tuple[bool | None, str]:
    """Whether an interrupted statement took effect, read from the catalogs: (True, why)
    it did, (False, why) send it again, (None, "") no way to know.

    Index builds (``CREATE INDEX [CONCURRENTLY]`` with a name): a valid index is done,
    an INVALID one is dropped and built again, a missing one is built.  ``DROP INDEX
    [CONCURRENTLY]``: done when the index is gone.  ``ALTER TYPE ... ADD VALUE``: done
    when the value exists.  Maintenance statements (:data:`_REPEATABLE`) run again.
    """
    from pglast.parser import ParseError, parse_sql_json

    try:
        stmts = json.loads(parse_sql_json(statement.sql))["stmts"]
        kind, node = next(iter(stmts[0]["stmt"].items()))
    except (ParseError, KeyError, IndexError, StopIteration):
        return None, ""
    if len(stmts) != 1:
        return None, ""
    if kind == "IndexStmt" and node.get("idxname"):
        name = node["idxname"]
        cursor.execute(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = to_regclass(%s) AND c.relname = %s",
            (_relation(node["relation"]), name),
        )
        row = cursor.fetchone()
        if row is None:
            return False, f"index {name} does not exist"
        if row[0]:
            return True, f"index {name} exists and is valid"
        return False, f"index {name} is INVALID (the build did not finish)"
    if kind == "DropStmt" and node.get("removeType") == "OBJECT_INDEX":
        names = [_quoted(*(item["String"]["sval"] for item in obj["List"]["items"]))
                 for obj in node.get("objects", [])]
        cursor.execute("SELECT to_regclass(name) IS NOT NULL FROM unnest(%s::text[]) AS name",
                       (names,))
        present = [bool(row[0]) for row in cursor.fetchall()]
        if names and not any(present):
            return True, f"index {', '.join(names)} no longer exists"
        if names and all(present):
            return False, f"index {', '.join(names)} still exists"
        return None, ""
    if kind == "AlterEnumStmt" and node.get("newVal") and not node.get("oldVal"):
        type_name = _quoted(*(part["String"]["sval"] for part in node["typeName"]))
        cursor.execute("SELECT EXISTS (SELECT FROM pg_enum WHERE enumtypid = to_regtype(%s) "
                       "AND enumlabel = %s)", (type_name, node["newVal"]))
        row = cursor.fetchone()
        if row and row[0]:
            return True, f"value {node['newVal']!r} of type {type_name} exists"
        return False, f"value {node['newVal']!r} of type {type_name} does not exist"
    if kind in _REPEATABLE:
        return False, f"{_REPEATABLE[kind]} is safe to run again"
    return None, ""


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

    code = getattr(err, "pgcode", None)
    lost = isinstance(err, psycopg2.OperationalError) and (
        code is None or code.startswith(sqlstate.CONNECTION_EXCEPTION_CLASS)
        or code in sqlstate.SERVER_GONE
    )
    return MigrationExecutionError(
        migration.name.filename,
        line,
        column,
        statement.sql,
        message,
        code,
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
    # psql runs the whole script on one session: reset it as a new one would be, so that
    # the bookkeeping below finds alembic_version as the session found it on connecting
    # (a file may have cleared search_path, as pg_dump output does) and the next
    # migration starts from the same session as this one.
    output(OFFLINE_RESET_SQL)
    if not getattr(context, "_fraiseql_history_emitted", False):
        output(history.create_table_sql(history_schema) + ";\n")
        # our own mark on Alembic's MigrationContext: the offline script creates the table once
        context._fraiseql_history_emitted = True  # type: ignore[attr-defined]  # noqa: SLF001
    output(history.record_sql(history_schema, history_entry(migration, action, None)) + ";\n")
