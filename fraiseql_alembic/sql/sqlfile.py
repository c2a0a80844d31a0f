"""Parse one migration file: its name, sections, options, statements and checksum.

Pure code: functions here take text and return values; nothing touches the disk
or the database.  The format (docs/file-format.md)::

    -- Migration 002: Add comments table       header comments (optional)
    -- revises: 1a2b3c4d                       parent revision (optional)
    -- migrate:up [transaction:false]          marker (optional)
    CREATE TABLE tb_comment (...);
    -- migrate:down                            marker (optional)
    DROP TABLE tb_comment;

Without markers the whole file is the up section.  A trailing ``-- Rollback:``
block of commented-out SQL serves as the down section.
"""

from __future__ import annotations

import hashlib
import json
import re
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..errors import ConfigError, MigrationFileError
from ..settings import check_duration

#: A migration file: digits, underscore, snake_case slug, ``.sql``.
#: ASCII digits only: ``٠٠٤_x.sql`` is not migration 4.
FILENAME_RE = re.compile(r"^(?P<version>[0-9]+)_(?P<slug>[a-z][a-z0-9_]*)\.sql$")
#: A name accepted by ``create``.
SLUG_RE = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_SLUG_LENGTH = 100


def suggest_slug(text: str) -> str | None:
    """``text`` as a snake_case name (``'Add User Bio!'`` -> ``add_user_bio``), if it makes one."""
    words = "".join(ch if ch.isalnum() and ch.isascii() else " " for ch in text).lower().split()
    suggestion = "_".join(words).lstrip("0123456789_")
    return suggestion if SLUG_RE.match(suggestion) else None

_MARKER_RE = re.compile(r"^--\s*migrate:(?P<kind>up|down)\b(?P<options>.*)$", re.IGNORECASE)
_ROLLBACK_RE = re.compile(r"^--\s*rollback\s*:(?P<rest>.*)$", re.IGNORECASE)
_REVISES_RE = re.compile(r"^--\s*revises\s*:\s*(?P<rev>\S+)\s*$", re.IGNORECASE)
_TITLE_RE = re.compile(r"^--\s*(?:migration\s+\S+?\s*:\s*)?(?P<title>.*?)\s*$", re.IGNORECASE)
_OPTION_RE = re.compile(r"^(?P<key>[a-z_]+):(?P<value>\S+)$")
_KNOWN_OPTIONS = ("transaction", "lock_timeout", "statement_timeout")
_DURATION_RE = re.compile(r"^[0-9]+(?:\.[0-9]+)?(?:us|ms|s|min|h|d)?$")

# Statements whose text contains none of these words need no syntax tree: they are
# ordinary transactional SQL.  The few that do are parsed with PostgreSQL's parser.
_NEEDS_TREE_RE = re.compile(
    r"\b(concurrently|vacuum|database|tablespace|system|begin|start|commit|end|"
    r"rollback|abort|prepare|reindex|discard|cluster|subscription)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class MigrationName:
    """What a file name says: ``003_add_indexes.sql`` -> version ``003``, number 3."""

    filename: str
    version: str
    number: int
    slug: str

    @property
    def stem(self) -> str:
        return f"{self.version}_{self.slug}"


def parse_filename(filename: str) -> MigrationName | None:
    """Return the parts of a migration file name, or None if it is not one."""
    match = FILENAME_RE.match(filename)
    if match is None:
        return None
    version = match.group("version")
    return MigrationName(filename, version, int(version), match.group("slug"))


def normalize_text(raw: bytes, filename: str) -> str:
    """Decode a file as UTF-8, dropping a BOM and turning CRLF/CR into LF."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise MigrationFileError(
            filename, "is not valid UTF-8 text; re-save the file as UTF-8", line
        ) from err
    nul = text.find("\0")
    if nul >= 0:
        raise MigrationFileError(
            filename,
            "contains a NUL byte, which would cut the file short when sent to PostgreSQL; "
            "remove it (a binary file saved as .sql?)",
            text.count("\n", 0, nul) + 1,
        )
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


_CHECKSUM_CHUNK = 1 << 20


def checksum_of(text: str) -> str:
    """SHA-256 (hex) of normalised migration text: CRLF and BOM do not count.

    Hashed a megabyte at a time, so a large file is never held twice as bytes."""
    digest = hashlib.sha256()
    for start in range(0, len(text), _CHECKSUM_CHUNK):
        digest.update(text[start:start + _CHECKSUM_CHUNK].encode("utf-8"))
    return digest.hexdigest()


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
class Section:
    """The up or down part of a file."""

    sql: str
    offset: int  # character offset of ``sql`` in the file text
    line: int
    transaction: bool | None = None  # None: decided by the statements
    commented_out: bool = False  # a ``-- Rollback:`` block: sql is the uncommented text
    timeouts: tuple[tuple[str, str], ...] = ()  # (setting, value) from marker options

    @property
    def is_empty(self) -> bool:
        match = _ONLY_COMMENTS_RE.match(self.sql)
        return match is not None and match.end() == len(self.sql)


@dataclass(frozen=True)
class ParsedMigration:
    """Everything a migration file says, before anything runs."""

    name: MigrationName
    text: str
    checksum: str
    title: str
    revises: str | None
    up: Section
    down: Section | None
    notices: tuple[str, ...] = field(default=())

    @cached_property
    def up_checksum(self) -> str:
        """Checksum of the up section alone: editing the down section keeps it."""
        return checksum_of(self.up.sql)

    @property
    def reversible(self) -> bool:
        return self.down is not None and not self.down.is_empty


def parse_migration(name: MigrationName, text: str) -> ParsedMigration:
    """Split normalised file text into header, up section and down section.

    Only the header and the marker lines are read line by line: a large file is not
    split into a list of its lines.
    """
    title = ""
    revises: str | None = None
    up_marker: tuple[int, int, bool | None] | None = None  # (line index, offset, transaction)
    down_marker: tuple[int, int, bool | None] | None = None
    first_sql_line: int | None = None
    section_timeouts: dict[str, tuple[tuple[str, str], ...]] = {}
    markers = _marker_lines(text)

    header_end = markers[0][1] if markers else len(text)
    in_block_comment = False
    for index, _offset, line in _lines(text, 0, header_end):
        stripped = line.strip()
        if in_block_comment or stripped.startswith("/*"):
            in_block_comment = "*/" not in stripped or stripped.endswith("/*")
            continue
        if stripped.startswith("--"):
            revision = _REVISES_RE.match(stripped)
            if revision is not None:
                revises = revision.group("rev")
            elif not title and stripped.strip("-").strip():
                title = _TITLE_RE.match(stripped).group("title")  # type: ignore[union-attr]
            continue
        if stripped:
            first_sql_line = index
            break

    for index, offset, marker in markers:
        kind = marker.group("kind").lower()
        option = _parse_options(marker.group("options"), name.filename, index + 1)
        section_timeouts[kind] = option[1]
        if kind == "up":
            if up_marker is not None:
                raise MigrationFileError(
                    name.filename,
                    f"second `-- migrate:up` marker (the first is on line {up_marker[0] + 1})",
                    index + 1,
                )
            if down_marker is not None:
                raise MigrationFileError(
                    name.filename, "`-- migrate:up` must come before `-- migrate:down`",
                    index + 1,
                )
            if first_sql_line is not None:
                raise MigrationFileError(
                    name.filename,
                    f"SQL on line {first_sql_line + 1} comes before `-- migrate:up`; "
                    "move it below the marker",
                    index + 1,
                )
            up_marker = (index, offset, option[0])
        else:
            if down_marker is not None:
                raise MigrationFileError(
                    name.filename,
                    "second `-- migrate:down` marker "
                    f"(the first is on line {down_marker[0] + 1})",
                    index + 1,
                )
            down_marker = (index, offset, option[0])

    if up_marker is not None:
        up_line, up_begin = up_marker[0] + 1, _next_line(text, up_marker[1])
    else:
        up_line, up_begin = 0, 0
    up_finish = down_marker[1] if down_marker is not None else len(text)
    up_transaction = up_marker[2] if up_marker else None
    up_timeouts = section_timeouts.get("up", ())
    down: Section | None = None
    if down_marker is not None:
        begin = _next_line(text, down_marker[1])
        down = Section(text[begin:], begin, down_marker[0] + 2, down_marker[2],
                       timeouts=section_timeouts.get("down", ()))
    else:
        rollback = _find_rollback_block(text, up_begin, up_line, name.filename)
        if rollback is not None:
            up_finish = rollback[1]
            down = _rollback_section(text, *rollback)
    up = Section(text[up_begin:up_finish], up_begin, up_line + 1, up_transaction,
                 timeouts=up_timeouts)
    return ParsedMigration(
        name=name,
        text=text,
        checksum=checksum_of(text),
        title=title or name.slug.replace("_", " ").capitalize(),
        revises=revises,
        up=up,
        down=down,
    )


def _parse_options(
    raw: str, filename: str, line: int
) -> tuple[bool | None, tuple[tuple[str, str], ...]]:
    """``transaction:false lock_timeout:2s`` -> (False, (("lock_timeout", "2s"),))."""
    transaction: bool | None = None
    timeouts: list[tuple[str, str]] = []
    for token in raw.split():
        match = _OPTION_RE.match(token)
        if match is None or match.group("key") not in _KNOWN_OPTIONS:
            raise MigrationFileError(
                filename,
                f"unknown marker option {token!r}; known options: transaction:true|false, "
                "lock_timeout:<duration>, statement_timeout:<duration>",
                line,
            )
        key, value = match.group("key"), match.group("value").lower()
        if key == "transaction":
            if value not in ("true", "false"):
                raise MigrationFileError(
                    filename,
                    f"option {token!r} must be transaction:true or transaction:false",
                    line,
                )
            transaction = value == "true"
        elif not _DURATION_RE.match(value):
            raise MigrationFileError(
                filename, f"option {token!r} needs a duration such as 500ms, 2s or 1min", line
            )
        else:
            try:  # below 1ms PostgreSQL rounds to 0 (no timeout); above ~24 days it refuses
                check_duration(value, f"option {key}:")
            except ConfigError as err:
                raise MigrationFileError(filename, err.message, line) from err
            timeouts.append((key, value))
    return transaction, tuple(timeouts)


# A literal "--" first lets the regex engine skip to candidates quickly (a pattern that
# starts with ``^`` tries every line of a large file); the line start is checked after.
_MARKER_LINE_RE = re.compile(r"--[^\S\n]*(?i:migrate):[^\n]*")
_ROLLBACK_LINE_RE = re.compile(r"--[^\S\n]*(?i:rollback)[^\S\n]*:[^\n]*")  # one a line


def _line_starts_with(text: str, offset: int) -> int | None:
    """The start of the line holding ``offset`` when only blanks come before it there."""
    start = text.rfind("\n", 0, offset) + 1
    return start if not text[start:offset].strip() else None


def _marker_lines(text: str) -> list[tuple[int, int, re.Match[str]]]:
    """(line index, offset, match) of each ``-- migrate:up|down`` line."""
    found = []
    line, counted = 0, 0
    for candidate in _MARKER_LINE_RE.finditer(text):
        start = _line_starts_with(text, candidate.start())
        marker = _MARKER_RE.match(candidate.group().strip()) if start is not None else None
        if start is None or marker is None:
            continue
        line += text.count("\n", counted, start)
        counted = start
        found.append((line, start, marker))
    return found


def _lines(text: str, start: int, stop: int) -> Iterator[tuple[int, int, str]]:
    """(index, offset, text) of each line that starts in ``text[start:stop]``."""
    index = text.count("\n", 0, start)
    while start < stop:
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        yield index, start, text[start:end]
        index, start = index + 1, end + 1


def _next_line(text: str, offset: int) -> int:
    """Offset of the line after the one at ``offset`` (the end of the text if none)."""
    end = text.find("\n", offset)
    return len(text) if end < 0 else end + 1


def _find_rollback_block(
    text: str, start: int, start_line: int, filename: str
) -> tuple[int, int] | None:
    """(line index, offset) of a ``-- Rollback:`` line that opens a trailing block of
    comments, searched from ``start``."""
    last = None
    for candidate in _ROLLBACK_LINE_RE.finditer(text, start):
        line_start = _line_starts_with(text, candidate.start())
        if line_start is not None and line_start >= start:
            last = line_start
    if last is None:
        return None
    index = start_line + text.count("\n", start, last)
    for later, _offset, line in _lines(text, _next_line(text, last), len(text)):
        stripped = line.strip()
        if stripped and not stripped.startswith("--"):
            raise MigrationFileError(
                filename,
                f"SQL on line {later + 1} follows the `-- Rollback:` block on line "
                f"{index + 1}; the block must end the file (or use `-- migrate:down`)",
                later + 1,
            )
    return index, last


def _rollback_section(text: str, index: int, offset: int) -> Section:
    """Uncomment a ``-- Rollback:`` block; offsets and lines keep pointing into the file."""
    # text after "-- Rollback:" on the same line is a remark, not SQL
    lines = text[_next_line(text, offset):].split("\n")
    body = [""] + [re.sub(r"^\s*--\s?", "", line) for line in lines]
    return Section("\n".join(body), offset, index + 1, None, commented_out=True)


_ONLY_COMMENTS_RE = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/)*", re.DOTALL)


# ---------------------------------------------------------------------------
# Statements


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
    from .psqlscan import ScanError, scan

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


def _transaction_keyword(sql: str) -> tuple[str, int]:
    """The first word of the transaction statement in ``sql``, and its offset (psql may
    send several statements as one, when its BEGIN ... END count says so)."""
    from pglast.parser import parse_sql_json

    for item in json.loads(parse_sql_json(sql)).get("stmts", ()):
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
    from pglast.parser import ParseError, parse_sql_json

    try:
        tree = json.loads(parse_sql_json(sql))
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
