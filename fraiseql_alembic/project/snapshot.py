"""The schema snapshot (``schema.sql``): pg_dump's text made the same on every machine.

``up --dump-schema`` writes it, ``check`` compares it with what the migrations build.
pg_dump (``--schema-only --no-owner``, :mod:`fraiseql_alembic.engine.snapshot`) already
orders objects by kind and name, and with ``--no-owner`` names no role that owns them;
what still changes from one run or machine to the next is taken out here: the preamble
(the ``Dumped from/by ... version`` lines, the ``SET`` lines, which also differ between
pg_dump releases), the ``\\restrict``/``\\unrestrict`` lines with their random key
(pg_dump 15.14+, 16.10+, 17.6+), the ``SET default_tablespace``-style lines pg_dump puts
between objects, and the closing comment.  Each object keeps pg_dump's own header
(``-- Name: ...; Type: ...; Schema: ...; Owner: -``), so a pull request shows which object
changed.  A fixed header opens the file and a trailing comment lists the applied
migrations (as dbmate lists the versions).  Pure: text in, text out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

HEADER = (
    "-- The schema the migrations build (pg_dump --schema-only --no-owner, normalised by\n"
    "-- fraiseql migrate: no version lines, SET lines, owners or bookkeeping tables).\n"
    "-- Written by `fraiseql migrate up --dump-schema`, checked by `fraiseql migrate\n"
    "-- check`. Do not edit it: change the migrations and write it again.\n"
)
APPLIED_HEADER = "--\n-- Applied migrations\n--\n"

_META_RE = re.compile(r"^\\(un)?restrict\b")
_SET_RE = re.compile(r"^(SET [a-z_]+ = .*|SELECT pg_catalog\.set_config\(.*\));$")
_NAME_RE = re.compile(r"^-- Name: .*; Type: .*")
_END = "-- PostgreSQL database dump complete"


def normalise(dump: str, applied: Sequence[str]) -> str:
    """The snapshot of a ``pg_dump --schema-only --no-owner`` text (plain format) and the
    migrations applied to the database it dumped (file names, in order)."""
    lines = [line for line in dump.replace("\r\n", "\n").split("\n")
             if not _META_RE.match(line)]
    blocks: list[list[str]] = []
    index = 0
    while index < len(lines):
        if _is_header(lines, index):
            if lines[index + 1] == _END:
                break
            blocks.append(lines[index:index + 3])
            index += 3
            continue
        if blocks:  # before the first object: the preamble, left out
            blocks[-1].append(lines[index])
        index += 1
    parts = [HEADER]
    for block in blocks:
        header, body = block[:3], _trimmed(block[3:])
        parts.append("\n".join(header) + "\n\n" + "".join(line + "\n" for line in body))
    listing = "".join(f"-- {name}\n" for name in applied) or "-- (none)\n"
    parts.append(APPLIED_HEADER + "\n" + listing)
    return "\n".join(parts)


def _is_header(lines: Sequence[str], index: int) -> bool:
    return (index + 2 < len(lines) and lines[index] == "--" and lines[index + 2] == "--"
            and (_NAME_RE.match(lines[index + 1]) is not None or lines[index + 1] == _END))


def _trimmed(body: list[str]) -> list[str]:
    """An object's statements without the blank lines around them and the ``SET`` lines
    pg_dump writes after them, before the next object (tablespace, access method)."""
    end = len(body)
    while end and (not body[end - 1].strip() or _SET_RE.match(body[end - 1])):
        end -= 1
    start = 0
    while start < end and not body[start].strip():
        start += 1
    return body[start:end]


@dataclass(frozen=True)
class Difference:
    """Where a snapshot first differs from the expected one (1-based line; None: the text
    ended there)."""

    line: int
    found: str | None
    expected: str | None

    def describe(self) -> str:
        """``line 12 is `...` where the migrations build `...```."""
        if self.found is None:
            return (f"it ends at line {self.line - 1} where the migrations build more: "
                    f"`{_short(self.expected)}`")
        if self.expected is None:
            return (f"line {self.line} is `{_short(self.found)}`, which the migrations do "
                    "not build (they end before it)")
        return (f"line {self.line} is `{_short(self.found)}` where the migrations build "
                f"`{_short(self.expected)}`")


def first_difference(found: str, expected: str) -> Difference | None:
    """The first line where ``found`` is not ``expected``; None when they are the same."""
    if found == expected:
        return None
    have, want = found.split("\n"), expected.split("\n")
    for number, (line, wanted) in enumerate(zip(have, want, strict=False), start=1):
        if line != wanted:
            return Difference(number, line, wanted)
    number = min(len(have), len(want)) + 1
    if len(have) < len(want):
        return Difference(number, None, want[number - 1])
    return Difference(number, have[number - 1], None)


def _short(text: str | None, width: int = 72) -> str:
    text = (text or "").strip()
    return text if len(text) <= width else text[:width - 3] + "..."
