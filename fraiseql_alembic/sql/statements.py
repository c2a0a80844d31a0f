"""The statements of a section, as ``psql -f`` would send them.

Pure code: :func:`split_statements` cuts a section with :mod:`.psqlscan` (psql's
lexer), drops a file-wide ``BEGIN; ... COMMIT;``, refuses other transaction control,
and marks the statements PostgreSQL refuses inside a transaction block.
"""

from __future__ import annotations

import functools
import json
import re
import weakref
from dataclasses import dataclass, field
from typing import Any

from ..errors import MigrationFileError
from .parse import ParsedMigration, Section

# Statements whose text contains none of these words need no syntax tree: they are
# ordinary transactional SQL.  The few that do are parsed with PostgreSQL's parser.
# ASCII: PostgreSQL folds only A-Z, and the search is three times as fast.
_NEEDS_TREE_RE = re.compile(
    r"\b(concurrently|vacuum|database|tablespace|system|begin|start|commit|end|"
    r"rollback|abort|prepare|reindex|discard|cluster|subscription)\b",
    re.IGNORECASE | re.ASCII,
)


@dataclass(frozen=True)
class CopyData:
    """The data lines after ``COPY ... FROM stdin;``: a window on the text, not a copy."""

    text: str = field(repr=False)
    start: int
    end: int
    line: int  # file line of the first data line

    def __len__(self) -> int:
        return self.end - self.start

    def reader(self, chunk: int = 1 << 20) -> _CopyReader:
        """A file-like object for ``cursor.copy_expert``: the data, a chunk at a time."""
        return _CopyReader(self, chunk)

    def file_line(self, data_line: int) -> int:
        """The file line of the ``data_line``-th (1-based) line of the data."""
        return self.line + data_line - 1


class _CopyReader:
    def __init__(self, data: CopyData, chunk: int) -> None:
        self.data = data
        self.position = data.start
        self.chunk = chunk

    def read(self, size: int = -1) -> str:
        limit = self.data.end - self.position
        size = limit if size is None or size < 0 else min(size, limit, max(self.chunk, 1))
        piece = self.data.text[self.position:self.position + size]
        self.position += size
        return piece


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a section, located in its file."""

    sql: str
    offset: int  # character offset of the statement's first token in the file text
    line: int
    column: int
    non_transactional: bool = False
    transaction_control: str | None = None  # "begin", "commit" or "other"
    copy: CopyData | None = None  # the data of ``COPY ... FROM stdin``


@dataclass(frozen=True)
class SplitSection:
    """A section's statements; ``unwrapped`` when a file-wide BEGIN/COMMIT was dropped;
    ``changes_lexing`` when the statements must each be sent on their own, as psql sends
    them, rather than joined in one query string that the server would read differently:
    after a change of ``standard_conforming_strings``, or when a statement that psql ends
    inside a ``BEGIN ATOMIC`` body could run on into the next one."""

    statements: list[Statement]
    unwrapped: bool
    changes_lexing: bool = False


#: Sections already split, per migration (``up`` reads every pending file before the
#: first runs, then runs each: one split serves both).  Weak keys: a migration's splits
#: live as long as the migration does.
_SPLITS: weakref.WeakKeyDictionary[
    ParsedMigration, dict[tuple[int, bool, bool], SplitSection]
] = weakref.WeakKeyDictionary()


def split_statements(
    migration: ParsedMigration, section: Section, *, standard_strings: bool = True
) -> SplitSection:
    """The statements ``psql -f`` would send for ``section`` (:func:`_split`), split once
    per migration, section and ``standard_strings``."""
    key = (section.offset, section.commented_out, standard_strings)
    splits = _SPLITS.setdefault(migration, {})
    found = splits.get(key)
    if found is None:
        found = splits[key] = _split(migration, section, standard_strings)
    return found


def _split(migration: ParsedMigration, section: Section, standard_strings: bool) -> SplitSection:
    """Split a section into the statements ``psql -f`` would send (:mod:`.psqlscan`).

    Quotes (with backslash escapes when ``standard_conforming_strings`` is off, from
    ``standard_strings`` at the start and every ``SET`` of it), ``$$`` bodies, comments
    and ``COPY ... FROM stdin`` data are read as psql reads them; psql meta-commands and
    variables are refused with their line.  A file wrapped in ``BEGIN; ... COMMIT;`` loses
    those two statements (the migration runs in its own transaction anyway); any other
    transaction control is refused, with its line.
    """
    from .psqlscan import ScanError, scan  # lazy: ~10 ms of patterns; api.py preloads it

    filename = migration.name.filename
    if section.commented_out:  # offsets are into the uncommented text
        source, begin, finish = section.sql, 0, len(section.sql)
    else:
        source, begin, finish = migration.text, section.offset, section.offset + len(section.sql)

    def line_of(index: int) -> int:
        if section.commented_out:
            return section.line + source.count("\n", 0, index)
        return source.count("\n", 0, index) + 1

    try:
        scanned = scan(source, begin, finish, standard_strings=standard_strings)
    except ScanError as err:
        raise MigrationFileError(filename, _scan_reason(err.message), line_of(err.offset)) \
            from err
    statements: list[Statement] = []
    alone = False  # a statement must reach the server on its own
    line, counted = line_of(begin), begin  # lines counted incrementally: linear in the file
    line_start = source.rfind("\n", 0, begin) + 1  # ... and where the current line starts
    for span in scanned.spans:
        line += source.count("\n", counted, span.start)
        line_start = max(line_start, source.rfind("\n", counted, span.start) + 1)
        counted = span.start
        sql = source[span.start:span.end]
        if section.commented_out:
            offset, column = section.offset, 1
        else:
            offset = span.start
            column = span.start - line_start + 1
        kind = _statement_kind(sql) if _NEEDS_TREE_RE.search(sql) else None
        if kind == "unparsed" and _ATOMIC_RE.search(sql):
            # psql ended it inside what the server reads as a BEGIN ATOMIC body (a bare
            # ``end`` there): joined to the next statements, the server would run the
            # whole body where psql sends, and the server rejects, this part alone
            kind, alone = None, True
        elif kind == "unparsed":
            kind = None
        copy = None
        if span.copy_data is not None:
            data_start, data_end = span.copy_data
            copy = CopyData(source, data_start, data_end,
                            line + source.count("\n", span.start, data_start))
        statements.append(
            Statement(
                sql,
                offset,
                line,
                column,
                non_transactional=kind == "non_transactional",
                transaction_control=kind if kind in ("begin", "commit", "other") else None,
                copy=copy,
            )
        )
    split = _unwrap_transaction(statements, filename)
    return SplitSection(split.statements, split.unwrapped, scanned.changes_lexing or alone)


def _scan_reason(message: str) -> str:
    if message.startswith("unterminated"):
        return f"{message}; close it (PostgreSQL would reject the file)"
    return message


def terminated(sql: str) -> str:
    """A statement with its ``;``, on a new line when its last line ends in a ``--``
    comment (which would otherwise swallow the terminator)."""
    last_line = sql.rsplit("\n", 1)[-1]
    return sql + ("\n;" if "--" in last_line else ";")


def _unwrap_transaction(statements: list[Statement], filename: str) -> SplitSection:
    unwrapped = (
        len(statements) >= 2
        and statements[0].transaction_control == "begin"
        and statements[-1].transaction_control == "commit"
    )
    if unwrapped:
        statements = statements[1:-1]
    for statement in statements:
        if statement.transaction_control is not None:
            keyword, offset = _transaction_keyword(statement.sql)
            raise MigrationFileError(
                filename,
                f"transaction control `{keyword}` inside a migration; "
                "each migration already runs in its own transaction. Remove it, or wrap the "
                "whole file in a single BEGIN; ... COMMIT;",
                statement.line + statement.sql.count("\n", 0, offset),
            )
    return SplitSection(statements, unwrapped)


@functools.lru_cache(maxsize=128)
def parse_tree(sql: str) -> dict[str, Any]:
    """PostgreSQL's parse tree of ``sql`` (libpg_query's JSON, read): the same object for
    the same text while it is among the last 128 asked for, so that the split
    (:func:`_statement_kind`) and lint (:mod:`.lint.fastast`) parse a statement once (a
    file with more statements to classify parses the rest twice; a long-lived process
    keeps no more than that).  Callers must not change it.  Raises
    :class:`.pgparse.ParseError`."""
    from .pgparse import parse_json  # lazy: loads the parser, which most verbs never need

    tree: dict[str, Any] = json.loads(parse_json(sql))
    return tree


def _transaction_keyword(sql: str) -> tuple[str, int]:
    """The first word of the transaction statement in ``sql``, and its offset (psql may
    send several statements as one, when its BEGIN ... END count says so)."""
    for item in parse_tree(sql).get("stmts", ()):
        if "TransactionStmt" in item["stmt"]:
            offset = len(sql.encode()[:item.get("stmt_location", 0)].decode(errors="ignore"))
            offset += len(sql[offset:]) - len(sql[offset:].lstrip(" \t\n\r\f;"))
            return sql[offset:].split(None, 1)[0].rstrip(";").upper(), offset
    return sql.split()[0].upper(), 0


_NON_TRANSACTIONAL_NODES = {
    "VacuumStmt",
    "CreatedbStmt",
    "DropdbStmt",
    "CreateTableSpaceStmt",
    "DropTableSpaceStmt",
    "AlterSystemStmt",
}


_ATOMIC_RE = re.compile(r"\batomic\b", re.IGNORECASE)


def _statement_kind(sql: str) -> str | None:
    """Classify a statement by its syntax tree: transaction control or non-transactional
    (``"unparsed"`` when PostgreSQL's parser rejects it)."""
    from .pgparse import ParseError  # lazy: loads the parser, which most verbs never need

    try:
        tree = parse_tree(sql)
    except ParseError:
        return "unparsed"  # the server will report the syntax error, with its position
    for item in tree.get("stmts", ()):
        ((node_type, node),) = item["stmt"].items()
        if node_type == "TransactionStmt":
            kind = node.get("kind", "")
            if kind in ("TRANS_STMT_BEGIN", "TRANS_STMT_START"):
                return "begin"
            if kind == "TRANS_STMT_COMMIT":
                return "commit"
            if kind in ("TRANS_STMT_SAVEPOINT", "TRANS_STMT_RELEASE", "TRANS_STMT_ROLLBACK_TO"):
                return None
            return "other"
        if node_type in _NON_TRANSACTIONAL_NODES:
            return "non_transactional"
        if _refused_in_transaction(node_type, node):
            return "non_transactional"
    return None


_WHOLE_REINDEX = {"REINDEX_OBJECT_SCHEMA", "REINDEX_OBJECT_DATABASE", "REINDEX_OBJECT_SYSTEM"}


def _options(node: dict[str, Any], key: str = "options") -> dict[str, str]:
    """A statement's ``WITH (...)`` options (or ``params``) as name -> lowercase value text
    (``"true"`` for a bare name)."""
    found: dict[str, str] = {}
    for item in node.get(key) or ():
        element: dict[str, Any] = item.get("DefElem", {})
        found[str(element.get("defname", ""))] = _constant_text(element.get("arg"))
    return found


def _constant_text(arg: dict[str, Any] | None) -> str:
    """An option's value as PostgreSQL's parser wrote it: ``false``, ``off`` (a TypeName),
    ``0`` (an Integer whose zero the JSON leaves out); ``true`` when there is none."""
    if not arg:
        return "true"
    ((kind, value),) = arg.items()
    if kind == "String":
        return str(value.get("sval", "")).lower()
    if kind == "TypeName":
        return str(value.get("names", [{}])[-1].get("String", {}).get("sval", "")).lower()
    if kind == "Integer":
        return str(value.get("ival", 0))
    if kind == "Boolean":
        return "true" if value.get("boolval") else "false"
    return str(value).lower()


def _refused_in_transaction(node_type: str, node: dict[str, Any]) -> bool:
    """Whether PostgreSQL refuses this statement inside a transaction block
    (``PreventInTransactionBlock``), beyond the node types that always are."""
    if node_type in ("IndexStmt", "DropStmt"):
        return bool(node.get("concurrent"))
    if node_type == "ReindexStmt":
        return node.get("kind") in _WHOLE_REINDEX or _options(node, "params").get(
            "concurrently", "false") not in _FALSE
    if node_type == "AlterTableStmt":  # DETACH PARTITION ... CONCURRENTLY
        return any(
            command.get("AlterTableCmd", {}).get("def", {}).get("PartitionCmd", {})
            .get("concurrent")
            for command in node.get("cmds") or ()
        )
    if node_type == "DiscardStmt":
        return node.get("target") == "DISCARD_ALL"
    if node_type == "ClusterStmt":  # CLUSTER of every clustered table
        return "relation" not in node
    if node_type == "AlterDatabaseStmt":
        return "tablespace" in _options(node)
    if node_type == "CreateSubscriptionStmt":
        options = _options(node)
        return options.get("create_slot", "true") not in _FALSE and options.get(
            "connect", "true") not in _FALSE
    if node_type == "AlterSubscriptionStmt":
        kind = node.get("kind")
        if kind == "ALTER_SUBSCRIPTION_REFRESH":
            return True
        return (kind in ("ALTER_SUBSCRIPTION_SET_PUBLICATION", "ALTER_SUBSCRIPTION_ADD_PUBLICATION",
                         "ALTER_SUBSCRIPTION_DROP_PUBLICATION")
                and _options(node).get("refresh", "true") not in _FALSE)
    return node_type == "DropSubscriptionStmt"  # with a replication slot: cannot be known here


_FALSE = {"false", "off", "no", "0"}
