"""Send a migration's statements one by one on a :class:`Session`, and say where one failed.

Statements go to the server verbatim on the DB-API cursor (no parameter processing:
``%``, ``:name`` and ``$$`` bodies are untouched), so a failure is located at its file
line and column; ``COPY ... FROM stdin`` data follows from the file.  Offline
(``alembic upgrade --sql``) the same statements are written out for psql.  A failed
``CREATE INDEX CONCURRENTLY`` leaves an INVALID index: it is named in the error, and
dropped before the statement runs again.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .. import sqlstate
from ..errors import DatabaseError, MigrationError, MigrationExecutionError
from ..sql.parse import ParsedMigration, Section
from ..sql.statements import Statement, parse_tree, terminated
from . import history
from .batchquery import changed_rows
from .cancel import CancelToken, MigrationInterrupted, sending
from .session import OFFLINE_RESET_SQL, NoticeSink, Session
from .translate import server_words

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection
    from psycopg2.extensions import cursor as Cursor


#: Characters of COPY data sent per read (psycopg2 encodes each piece on its own).
COPY_CHUNK = 1 << 20

def needs_autocommit(section: Section, statements: list[Statement]) -> bool:
    """True when the section must run outside a transaction block."""
    if section.transaction is not None:
        return not section.transaction
    return any(statement.non_transactional for statement in statements)

def execute_statements(
    session: Session,
    migration: ParsedMigration,
    statements: list[Statement],
    sink: NoticeSink,
    cancel: CancelToken | None,
    *,
    in_transaction: bool,
    segment: tuple[int, str] | None = None,
    rows: list[int] | None = None,
) -> None:
    """Run ``statements`` in order, notices to ``sink``; the first failure is raised as
    :func:`located_error` (or :class:`MigrationInterrupted` when ``cancel`` stopped it).
    ``rows`` receives how many rows each statement changed."""
    import psycopg2  # lazy: start-up time

    dbapi = session.dbapi
    with session.forward_notices(sink):
        cursor = dbapi.cursor()
        try:
            for statement in statements:
                where = f"in {migration.name.filename} before line {statement.line}"
                if statement.non_transactional and not in_transaction:
                    with sending(cancel, dbapi, where):  # may wait for older transactions
                        drop_invalid_leftover(cursor, statement, migration, sink)
                try:
                    with sending(cancel, dbapi, where):  # checked, then cancelled for sure
                        if statement.copy is not None:  # its data follows in the file
                            cursor.copy_expert(statement.sql,
                                               statement.copy.reader(),  # type: ignore[arg-type]
                                               size=COPY_CHUNK)  # (it reads text too)
                        else:
                            cursor.execute(statement.sql)
                    if rows is not None:
                        rows.append(changed_rows(cursor.statusmessage or ""))
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
    err: BaseException,
    dbapi: Connection,
    *,
    in_transaction: bool,
    segment: tuple[int, str] | None = None,
    position: int | None = None,
) -> MigrationError:
    """Turn a server error into file:line:column, the statement and PostgreSQL's words.

    ``position`` (1-based, in ``statement.sql``) overrides the error's own
    ``statement_position``, for an error raised by a query that held more statements.
    A connection lost in a migration's transaction is told as :func:`interrupted`, as
    when it is lost at COMMIT, on both paths.
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
    import psycopg2  # lazy: start-up time

    code = getattr(err, "pgcode", None)
    lost = isinstance(err, psycopg2.OperationalError) and (
        code is None or code.startswith(sqlstate.CONNECTION_EXCEPTION_CLASS)
        or code in sqlstate.SERVER_GONE
    )
    kept_nothing = in_transaction and (segment is None or segment[0] == 0)
    if lost and kept_nothing:
        return interrupted(migration.name.filename, message, line=statement.line)
    return MigrationExecutionError(
        migration.name.filename,
        line,
        column,
        statement.sql,
        message,
        code,
        kept_nothing=kept_nothing,
        connection_lost=lost,
        resume_command=(
            f"fraiseql migrate {segment[1]}" if segment is not None and segment[0] > 0 else None
        ),
    )

def interrupted(
    filename: str, reason: str, *, line: int | None = None, reachable: bool = True,
) -> DatabaseError:
    """A migration whose connection was lost before its COMMIT was answered, and which
    PostgreSQL therefore did not keep (``reachable`` False: the database cannot be reached
    to tell whether it did); ``line``: of the statement that was running, when known."""
    where = f" at line {line}" if line is not None else ""
    if not reachable:
        return DatabaseError(
            f"Migration {filename} was interrupted{where}: {reason}. The connection to the "
            "database was lost and the database cannot be reached now; PostgreSQL kept all "
            "of that migration or none of it (none unless it had reached its COMMIT). Once "
            "the database is back, `fraiseql migrate status` shows which; then run the "
            "command again"
        )
    return DatabaseError(
        f"Migration {filename} was interrupted{where}: {reason}. The connection to the "
        "database was lost; nothing of this migration was kept. Run the command again once "
        "the database is back"
    )


def _copy_line(context: str | None) -> int | None:
    """The data line PostgreSQL names in a COPY error's context (``COPY t, line 3``)."""
    match = re.search(r"\bCOPY [^,]+, line (\d+)", context or "")
    return int(match.group(1)) if match else None

def _index_name(statement: Statement) -> str | None:
    """The index a ``CREATE INDEX`` statement names, from its syntax tree."""
    from ..sql.pgparse import ParseError  # lazy: loads the parser

    try:
        tree = parse_tree(statement.sql)  # the split's tree, kept: not parsed again
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

def _invalid_index_left(dbapi: Connection, statement: Statement) -> str | None:
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

def drop_invalid_leftover(
    cursor: Cursor, statement: Statement, migration: ParsedMigration, sink: NoticeSink
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

def emit_offline(
    session: Session,
    migration: ParsedMigration,
    statements: list[Statement],
    autocommit: bool,
    action: str,
    history_schema: str,
) -> None:
    """Write the statements (and the history row) out for psql, as ``--sql`` does."""
    output = session.output
    assert output is not None

    def emit_all() -> None:
        for statement in statements:
            if statement.copy is not None:  # with its data and their end, as psql reads them
                data = statement.copy
                output(terminated(statement.sql) + "\n" + data.text[data.start:data.end] + "\\.")
            else:
                output(terminated(statement.sql) + "\n")

    if autocommit:
        with session.autocommit_block():
            emit_all()
    else:
        emit_all()
    # psql runs the whole script on one session: reset it as a new one would be, so that
    # the bookkeeping below finds alembic_version as the session found it on connecting
    # (a file may have cleared search_path, as pg_dump output does) and the next
    # migration starts from the same session as this one.
    output(OFFLINE_RESET_SQL)
    if not session.history_emitted:  # the script creates the table once
        output(history.create_table_sql(history_schema) + ";\n")
        session.history_emitted = True
    output(history.record_sql(history_schema, history.entry_for(migration, action, None)) + ";\n")
