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

import bisect
import hashlib
import json
import re
from dataclasses import dataclass, field

from .errors import MigrationFileError

#: A migration file: digits, underscore, snake_case slug, ``.sql``.
FILENAME_RE = re.compile(r"^(?P<version>\d+)_(?P<slug>[a-z][a-z0-9_]*)\.sql$")
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
_DURATION_RE = re.compile(r"^\d+(?:\.\d+)?(?:us|ms|s|min|h|d)?$")

# Statements whose text contains none of these words need no syntax tree: they are
# ordinary transactional SQL.  The few that do are parsed with PostgreSQL's parser.
_NEEDS_TREE_RE = re.compile(
    r"\b(concurrently|vacuum|database|tablespace|system|begin|start|commit|end|"
    r"rollback|abort|prepare)\b",
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
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def checksum_of(text: str) -> str:
    """SHA-256 (hex) of normalised migration text: CRLF and BOM do not count."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a section, located in its file."""

    sql: str
    offset: int  # character offset of the statement's first token in the file text
    line: int
    column: int
    non_transactional: bool = False
    transaction_control: str | None = None  # "begin", "commit" or "other"


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
        return not _strip_comments(self.sql).strip()


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

    @property
    def up_checksum(self) -> str:
        """Checksum of the up section alone: editing the down section keeps it."""
        return checksum_of(self.up.sql)

    @property
    def reversible(self) -> bool:
        return self.down is not None and not self.down.is_empty


def parse_migration(name: MigrationName, text: str) -> ParsedMigration:
    """Split normalised file text into header, up section and down section."""
    lines = text.split("\n")
    offsets = _line_offsets(text)
    title = ""
    revises: str | None = None
    up_marker: tuple[int, bool | None] | None = None  # (line index, transaction option)
    down_marker: tuple[int, bool | None] | None = None
    first_sql_line: int | None = None
    in_block_comment = False
    section_timeouts: dict[str, tuple[tuple[str, str], ...]] = {}

    for index, line in enumerate(lines):
        stripped = line.strip()
        marker = _MARKER_RE.match(stripped)
        if marker is not None:
            kind = marker.group("kind").lower()
            option = _parse_options(marker.group("options"), name.filename, index + 1)
            section_timeouts[marker.group("kind").lower()] = option[1]
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
                up_marker = (index, option[0])
            else:
                if down_marker is not None:
                    raise MigrationFileError(
                        name.filename,
                        "second `-- migrate:down` marker "
                        f"(the first is on line {down_marker[0] + 1})",
                        index + 1,
                    )
                down_marker = (index, option[0])
            continue
        if up_marker is None and down_marker is None and first_sql_line is None:
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

    up_start = up_marker[0] + 1 if up_marker is not None else 0
    up_end = down_marker[0] if down_marker is not None else len(lines)
    up_transaction = up_marker[1] if up_marker else None
    up_timeouts = section_timeouts.get("up", ())
    down: Section | None = None
    if down_marker is not None:
        down = _section(text, offsets, down_marker[0] + 1, len(lines), down_marker[1],
                        section_timeouts.get("down", ()))
    else:
        rollback = _find_rollback_block(lines, up_start, name.filename)
        if rollback is not None:
            up_end = rollback
            down = _rollback_section(lines, offsets, rollback)
    up = _section(text, offsets, up_start, up_end, up_transaction, up_timeouts)
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
            timeouts.append((key, value))
    return transaction, tuple(timeouts)


def _line_offsets(text: str) -> list[int]:
    offsets = [0]
    position = text.find("\n")
    while position != -1:
        offsets.append(position + 1)
        position = text.find("\n", position + 1)
    return offsets


def _section(
    text: str, offsets: list[int], start: int, end: int, transaction: bool | None,
    timeouts: tuple[tuple[str, str], ...] = (),
) -> Section:
    begin = offsets[start] if start < len(offsets) else len(text)
    finish = offsets[end] if end < len(offsets) else len(text)
    return Section(text[begin:finish], begin, start + 1, transaction, timeouts=timeouts)


def _find_rollback_block(lines: list[str], start: int, filename: str) -> int | None:
    """Index of a ``-- Rollback:`` line that opens a trailing block of comments."""
    for index in range(len(lines) - 1, start - 1, -1):
        if _ROLLBACK_RE.match(lines[index].strip()):
            for later in range(index + 1, len(lines)):
                stripped = lines[later].strip()
                if stripped and not stripped.startswith("--"):
                    raise MigrationFileError(
                        filename,
                        f"SQL on line {later + 1} follows the `-- Rollback:` block on line "
                        f"{index + 1}; the block must end the file (or use `-- migrate:down`)",
                        later + 1,
                    )
            return index
    return None


def _rollback_section(lines: list[str], offsets: list[int], index: int) -> Section:
    """Uncomment a ``-- Rollback:`` block; offsets and lines keep pointing into the file."""
    # text after "-- Rollback:" on the same line is a remark, not SQL
    body = [""] + [re.sub(r"^\s*--\s?", "", line) for line in lines[index + 1 :]]
    return Section("\n".join(body), offsets[index], index + 1, None, commented_out=True)


def _strip_comments(sql: str) -> str:
    sql = re.sub(r"/\*.*?\*/", "", sql, flags=re.DOTALL)
    return re.sub(r"--[^\n]*", "", sql)


# ---------------------------------------------------------------------------
# Statements


@dataclass(frozen=True)
class SplitSection:
    """A section's statements; ``unwrapped`` when a file-wide BEGIN/COMMIT was dropped."""

    statements: list[Statement]
    unwrapped: bool


def split_statements(migration: ParsedMigration, section: Section) -> SplitSection:
    """Split a section into statements with PostgreSQL's own scanner (pglast).

    ``$$`` bodies, quoted semicolons and comments are handled as the server would.
    A file wrapped in ``BEGIN; ... COMMIT;`` loses those two statements (the
    migration runs in its own transaction anyway); any other transaction control
    is refused, with its line.
    """
    from pglast.parser import ParseError  # imported here: only running SQL needs it

    text = migration.text
    line_starts = _line_offsets(text) if not section.commented_out else []
    filename = migration.name.filename

    def line_of(index: int) -> int:
        return section.line + section.sql.count("\n", 0, index)

    try:
        pieces = statement_spans(section.sql)
    except ParseError as err:  # an unterminated quote, $$ body or /* comment
        index = err.args[1] if len(err.args) > 1 and isinstance(err.args[1], int) else 0
        reason = re.sub(r'\s+"$', '"', " ".join(str(err.args[0]).split()))
        raise MigrationFileError(
            filename, f"{reason}; close it (PostgreSQL would reject the file)", line_of(index)
        ) from err
    except UnclosedStatement as err:
        raise MigrationFileError(
            filename,
            "the statement starting here never ends (an unclosed parenthesis or BEGIN ATOMIC "
            "block?); nothing after it could be read",
            line_of(err.start),
        ) from err
    statements: list[Statement] = []
    for piece_start, piece_end in pieces:
        sql = section.sql[piece_start:piece_end]
        if section.commented_out:
            line = section.line + section.sql.count("\n", 0, piece_start)
            column = 1
            offset = section.offset
        else:
            offset = section.offset + piece_start
            line_index = bisect.bisect_right(line_starts, offset) - 1
            line, column = line_index + 1, offset - line_starts[line_index] + 1
        kind = _statement_kind(sql) if _NEEDS_TREE_RE.search(sql) else None
        statements.append(
            Statement(
                sql,
                offset,
                line,
                column,
                non_transactional=kind == "non_transactional",
                transaction_control=kind if kind in ("begin", "commit", "other") else None,
            )
        )
    return _unwrap_transaction(statements, filename)


class UnclosedStatement(Exception):
    """The text ends inside a parenthesis or a ``BEGIN ATOMIC`` body."""

    def __init__(self, start: int) -> None:
        super().__init__(start)
        self.start = start


def statement_spans(sql: str) -> list[tuple[int, int]]:
    """(start, end) of each statement in ``sql``, from its first token to its last, without
    the ``;``, comments and blank space around it.  Pure.

    PostgreSQL's own scanner (pglast) reads the tokens, so quotes, ``$$`` bodies and
    comments are what the server would see; a ``;`` ends a statement only outside
    parentheses and outside a ``BEGIN ATOMIC ... END`` function body, as in psql.  Every
    token belongs to a statement: text the server would reject (``SELEC 1``) is a
    statement too, never dropped.  Raises pglast's ParseError for an unterminated quote
    or comment and :class:`UnclosedStatement` for text that ends inside a parenthesis or
    an atomic body.
    """
    from pglast.parser import scan

    spans: list[tuple[int, int]] = []
    start: int | None = None
    end = 0
    parens = 0
    atomic = 0  # depth inside BEGIN ATOMIC ... END (CASE ... END nests within it)
    previous = ""
    for token in scan(sql):
        name = token.name
        if name in ("SQL_COMMENT", "C_COMMENT"):
            continue
        if name == "ASCII_59" and parens == 0 and atomic == 0:  # ;
            if start is not None:
                spans.append((start, end))
            start = None
            previous = name
            continue
        if start is None:
            start = token.start
        end = token.end + 1
        if name == "ASCII_40":
            parens += 1
        elif name == "ASCII_41":
            parens = max(parens - 1, 0)
        elif (name == "ATOMIC" and previous == "BEGIN_P") or (atomic and name == "CASE"):
            atomic += 1
        elif atomic and name == "END_P":
            atomic -= 1
        previous = name
    if start is not None:
        if parens or atomic:
            raise UnclosedStatement(start)
        spans.append((start, end))
    return spans


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
            raise MigrationFileError(
                filename,
                f"transaction control `{statement.sql.split()[0].upper()}` inside a migration; "
                "each migration already runs in its own transaction. Remove it, or wrap the "
                "whole file in a single BEGIN; ... COMMIT;",
                statement.line,
            )
    return SplitSection(statements, unwrapped)


_NON_TRANSACTIONAL_NODES = {
    "VacuumStmt",
    "CreatedbStmt",
    "DropdbStmt",
    "CreateTableSpaceStmt",
    "DropTableSpaceStmt",
    "AlterSystemStmt",
}


def _statement_kind(sql: str) -> str | None:
    """Classify a statement by its syntax tree: transaction control or non-transactional."""
    from pglast.parser import ParseError, parse_sql_json

    try:
        tree = json.loads(parse_sql_json(sql))
    except ParseError:
        return None  # the server will report the syntax error, with its position
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
        if node_type in ("IndexStmt", "DropStmt") and node.get("concurrent"):
            return "non_transactional"
        if node_type == "ReindexStmt" and any(
            param.get("DefElem", {}).get("defname") == "concurrently"
            for param in node.get("params", ())
        ):
            return "non_transactional"
    return None
