"""Sections that cannot be one transaction: run segment by segment, resumed exactly.

Consecutive transactional statements form one segment, committed together with the
record of its statements; a statement that cannot run in a transaction (``CREATE
INDEX CONCURRENTLY``, ``transaction:false``) is a segment of its own, its intent
committed before it is sent.  A re-run resumes after the last completed segment,
refuses an edit to a completed one, and settles a statement an earlier run left
running (:func:`statement_outcome`).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ..errors import (
    InterruptedStatementError,
    MigrationError,
    MigrationFileError,
    StatementStillRunningError,
)
from ..sql.parse import ParsedMigration, Section, checksum_of
from ..sql.statements import Statement, parse_tree
from . import history
from .cancel import CancelToken
from .execute import drop_invalid_leftover, execute_statements
from .session import NoticeSink, Session

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection
    from psycopg2.extensions import cursor as Cursor


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

def execute_segments(
    session: Session,
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
    import psycopg2  # lazy: start-up time

    dbapi = session.dbapi
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
                    drop_invalid_leftover(cursor, statement, migration, sink)  # a plain one
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
                    session, migration, segment, sink, cancel, in_transaction=transactional,
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

def _failed_on_server(err: BaseException, dbapi: Connection) -> bool:
    """Whether ``err`` is PostgreSQL's answer to a statement, on a connection still open
    (so the statement surely did not complete), rather than a lost connection."""
    import psycopg2  # lazy: start-up time

    cause = err.__cause__ if isinstance(err, MigrationError) else err
    return (isinstance(cause, psycopg2.Error) and getattr(cause, "pgcode", None) is not None
            and not dbapi.closed and not getattr(err, "connection_lost", False))

def _completed(
    cursor: Cursor,
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
    cursor: Cursor,
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

def _running_elsewhere(cursor: Cursor, statement: Statement) -> int | None:
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

def statement_outcome(cursor: Cursor, statement: Statement) -> tuple[bool | None, str]:
    """Whether an interrupted statement took effect, read from the catalogs: (True, why)
    it did, (False, why) send it again, (None, "") no way to know.

    Index builds (``CREATE INDEX [CONCURRENTLY]`` with a name): a valid index is done,
    an INVALID one is dropped and built again, a missing one is built.  ``DROP INDEX
    [CONCURRENTLY]``: done when the index is gone.  ``ALTER TYPE ... ADD VALUE``: done
    when the value exists.  Maintenance statements (:data:`_REPEATABLE`) run again.
    """
    from ..sql.pgparse import ParseError  # lazy: loads the parser

    try:
        stmts = parse_tree(statement.sql)["stmts"]  # the split's tree, kept
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
