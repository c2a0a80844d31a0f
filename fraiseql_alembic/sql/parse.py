"""Parse one migration file: its sections, options, header and checksum.

Pure code: functions here take text and return values; nothing touches the disk
or the database.  The format (docs/file-format.md)::

    -- Migration 002: Add comments table       header comments (optional)
    -- revises: 1a2b3c4d                       parent revision (optional)
    -- migrate:up [transaction:false]          marker (optional)
    CREATE TABLE tb_comment (...);
    -- migrate:down                            marker (optional)
    DROP TABLE tb_comment;

Without markers the whole file is the up section.  A trailing ``-- Rollback:``
block of commented-out SQL serves as the down section.  The statements of a section
are split by :mod:`.statements`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

from ..errors import ConfigError, MigrationFileError
from ..settings import check_duration
from .names import MigrationName

_MARKER_RE = re.compile(r"^--\s*migrate:(?P<kind>up|down)\b(?P<options>.*)$", re.IGNORECASE)
_REVISES_RE = re.compile(r"^--\s*revises\s*:\s*(?P<rev>\S+)\s*$", re.IGNORECASE)
#: A baseline's header line naming one file it replaces (``fraiseql migrate squash``).
_SQUASHED_RE = re.compile(
    r"^--\s*squashed:\s*(?P<version>[0-9]+)\s+(?P<filename>\S+)"
    r"\s+checksum=(?P<checksum>[0-9a-f]{64})(?:\s+up_checksum=(?P<up>[0-9a-f]{64}))?\s*$"
)
_TITLE_RE = re.compile(r"^--\s*(?:migration\s+\S+?\s*:\s*)?(?P<title>.*?)\s*$", re.IGNORECASE)
_OPTION_RE = re.compile(r"^(?P<key>[a-z_]+):(?P<value>\S+)$")
_KNOWN_OPTIONS = ("transaction", "lock_timeout", "statement_timeout")
_DURATION_RE = re.compile(r"^[0-9]+(?:\.[0-9]+)?(?:us|ms|s|min|h|d)?$")


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
    import hashlib  # lazy: ~1.5 ms (OpenSSL) that lint, which reads no checksum, is spared

    digest = hashlib.sha256()
    for start in range(0, len(text), _CHECKSUM_CHUNK):
        digest.update(text[start:start + _CHECKSUM_CHUNK].encode("utf-8"))
    return digest.hexdigest()


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
class Squashed:
    """A file a baseline replaces, as its header names it: the version, the file name
    and the checksums its history rows hold."""

    version: str
    filename: str
    checksum: str
    up_checksum: str | None = None

    def header_line(self) -> str:
        """``-- squashed: 002 002_add_posts.sql checksum=<sha256> up_checksum=<sha256>``."""
        up = f" up_checksum={self.up_checksum}" if self.up_checksum else ""
        return f"-- squashed: {self.version} {self.filename} checksum={self.checksum}{up}"


@dataclass(frozen=True)
class ParsedMigration:
    """Everything a migration file says, before anything runs."""

    name: MigrationName
    text: str
    title: str
    revises: str | None
    up: Section
    down: Section | None
    notices: tuple[str, ...] = field(default=())
    #: A baseline's ``-- squashed:`` header lines: the files it takes the place of.
    squashes: tuple[Squashed, ...] = field(default=())

    @cached_property
    def checksum(self) -> str:
        """Checksum of the whole file (:func:`checksum_of`), what the history records;
        computed when first asked for (lint never asks)."""
        return checksum_of(self.text)

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
    squashes: list[Squashed] = []
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
            squashed = _SQUASHED_RE.match(stripped)
            if revision is not None:
                revises = revision.group("rev")
            elif squashed is not None:
                squashes.append(Squashed(squashed.group("version"), squashed.group("filename"),
                                         squashed.group("checksum"), squashed.group("up")))
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
        title=title or name.slug.replace("_", " ").capitalize(),
        revises=revises,
        up=up,
        down=down,
        squashes=tuple(squashes),
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
