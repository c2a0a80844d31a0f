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

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from . import history
from .cancel import CancelToken, MigrationInterrupted
from .errors import MigrationExecutionError
from .sqlfile import ParsedMigration, Section, Statement, split_statements

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationContext

NoticeSink = Callable[[str], None]


def _stderr_notice(text: str) -> None:
    print(text, file=sys.stderr)


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
) -> None:
    """Execute ``section`` and write its history row, online or offline.

    Timeouts named on the section's marker (``lock_timeout:2s``) apply to it alone.
    """
    split = split_statements(migration, section)
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
    if autocommit:
        with context.autocommit_block(), _section_timeouts(context, section, local=False):
            _execute(context, migration, statements, sink, cancel, in_transaction=False)
    else:
        with _section_timeouts(context, section, local=True):
            _execute(context, migration, statements, sink, cancel, in_transaction=True)
    elapsed_ms = int((time.perf_counter() - started) * 1000)
    cursor = _dbapi_connection(context).cursor()
    try:
        history.ensure_table(cursor, history_schema)
        history.record(cursor, history_schema, _entry(migration, action, elapsed_ms))
    finally:
        cursor.close()


def _entry(migration: ParsedMigration, action: str, elapsed_ms: int | None) -> history.Entry:
    return history.Entry(
        version=migration.name.version,
        name=migration.name.slug,
        filename=migration.name.filename,
        checksum=migration.checksum,
        execution_ms=elapsed_ms,
        action=action,
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
        self.sink(" ".join(message.split(None, 1)) if message.strip() else "")


@contextmanager
def _forward_notices(dbapi: Any, sink: NoticeSink) -> Iterator[None]:
    saved = dbapi.notices
    dbapi.notices = _NoticeForwarder(sink)
    try:
        yield
    finally:
        dbapi.notices = saved


@contextmanager
def _section_timeouts(
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


def _execute(
    context: MigrationContext,
    migration: ParsedMigration,
    statements: list[Statement],
    sink: NoticeSink,
    cancel: CancelToken | None,
    *,
    in_transaction: bool,
) -> None:
    import psycopg2

    dbapi = _dbapi_connection(context)
    with _forward_notices(dbapi, sink):
        cursor = dbapi.cursor()
        try:
            for statement in statements:
                if cancel is not None:
                    cancel.check(f"in {migration.name.filename} before line {statement.line}")
                try:
                    cursor.execute(statement.sql)
                except psycopg2.Error as err:
                    if cancel is not None and cancel.cancelled:
                        raise MigrationInterrupted(
                            f"Stopped by {cancel.reason} in {migration.name.filename} at line "
                            f"{statement.line}; "
                            + ("that migration was rolled back" if in_transaction else
                               "the statement was cancelled")
                        ) from err
                    raise _located_error(
                        migration, statement, err, dbapi, in_transaction=in_transaction
                    ) from err
        finally:
            cursor.close()


def _located_error(
    migration: ParsedMigration,
    statement: Statement,
    err: Any,
    dbapi: Any,
    *,
    in_transaction: bool,
) -> MigrationExecutionError:
    """Turn a server error into file:line:column, the statement and PostgreSQL's words."""
    diag = getattr(err, "diag", None)
    message = (getattr(diag, "message_primary", None) or str(err).strip().splitlines()[0]).strip()
    line, column = statement.line, statement.column
    position = getattr(diag, "statement_position", None)
    if position and statement.offset + int(position) - 1 < len(migration.text):
        offset = statement.offset + int(position) - 1
        end = statement.offset + len(statement.sql)
        if migration.text[statement.offset : end] == statement.sql:
            line = migration.text.count("\n", 0, offset) + 1
            column = offset - (migration.text.rfind("\n", 0, offset) + 1) + 1
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
        kept_nothing=in_transaction,
        connection_lost=lost,
    )


def _invalid_index_left(dbapi: Any, statement: Statement) -> str | None:
    """After a failed ``CREATE INDEX CONCURRENTLY``, the name of the INVALID index it left."""
    if not statement.non_transactional:
        return None
    from pglast.parser import ParseError, parse_sql_json

    try:
        tree = json.loads(parse_sql_json(statement.sql))
        node = tree["stmts"][0]["stmt"].get("IndexStmt")
    except (ParseError, KeyError, IndexError):
        return None
    if not node or not node.get("idxname"):
        return None
    cursor = dbapi.cursor()
    try:
        cursor.execute(
            "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE NOT i.indisvalid AND c.relname = %s",
            (node["idxname"],),
        )
        row = cursor.fetchone()
    except Exception:  # the connection may be unusable; the main error matters more
        return None
    finally:
        cursor.close()
    return str(row[0]) if row else None


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
            last_line = statement.sql.rsplit("\n", 1)[-1]
            output(statement.sql + ("\n;" if "--" in last_line else ";") + "\n")

    if autocommit:
        with context.autocommit_block():
            emit_all()
    else:
        emit_all()
    if not getattr(context, "_fraiseql_history_emitted", False):
        output(history.create_table_sql(history_schema) + ";\n")
        context._fraiseql_history_emitted = True  # type: ignore[attr-defined]
    output(history.record_sql(history_schema, _entry(migration, action, None)) + ";\n")
