"""What a whole statement tells psql's lexer (:mod:`.psqlscan`) about what follows it.

Pure code: whether a ``COPY`` reads data lines from the file (``FROM stdin``) or writes
to psql's output (``TO stdout``), and whether a statement changes
``standard_conforming_strings``, which changes how psql reads the rest of the file.
"""

from __future__ import annotations

import json
import re

_STDIN_RE = re.compile(r"\bfrom\s+stdin\b", re.IGNORECASE | re.ASCII)
_STDOUT_RE = re.compile(r"\bto\s+stdout\b", re.IGNORECASE | re.ASCII)
#: ``stdin`` / ``stdout`` anywhere: a comment may stand between ``FROM`` and ``STDIN``.
_STDIN_WORD_RE = re.compile(r"\bstdin\b", re.IGNORECASE | re.ASCII)
_STDOUT_WORD_RE = re.compile(r"\bstdout\b", re.IGNORECASE | re.ASCII)
SCS_RE = re.compile(r"standard_conforming_strings", re.IGNORECASE | re.ASCII)
_SET_SCS_RE = re.compile(
    r"\ASET\s+(?:(?:SESSION|LOCAL)\s+)?standard_conforming_strings\s*(?:=|\s+TO\s)\s*"
    r"(?P<value>[A-Za-z0-9_]+|'[A-Za-z0-9_]*')\Z",
    re.IGNORECASE | re.ASCII,
)
_RESET_SCS_RE = re.compile(r"\A(?:RESET\s+standard_conforming_strings|RESET\s+ALL|DISCARD\s+ALL)\Z",
                           re.IGNORECASE | re.ASCII)
_SESSION_DEFAULTS_RE = re.compile(r"\AALTER\s+(?:DATABASE|ROLE|USER)\b", re.IGNORECASE | re.ASCII)
_ON = frozenset({"on", "true", "yes", "1", "tru", "tr", "t", "ye", "y"})
_OFF = frozenset({"off", "false", "no", "0", "fals", "fal", "fa", "f", "n", "of"})


def copy_direction(statement: str) -> str | None:
    """``"stdin"`` for ``COPY ... FROM STDIN``, ``"stdout"`` for ``COPY ... TO STDOUT``,
    else None; from PostgreSQL's parser, or from the words when it cannot parse it (the
    server then rejects the statement, and its data is not read as SQL)."""
    if not (_STDIN_WORD_RE.search(statement) or _STDOUT_WORD_RE.search(statement)):
        return None

    from .pgparse import ParseError, parse_json  # lazy: the parser, for COPY only

    try:
        tree = json.loads(parse_json(statement))
        node = tree["stmts"][0]["stmt"]["CopyStmt"]
    except (ParseError, KeyError, IndexError):
        if _STDIN_RE.search(statement):
            return "stdin"
        return "stdout" if _STDOUT_RE.search(statement) else None
    if node.get("filename") or node.get("is_program"):
        return None
    return "stdin" if node.get("is_from") else "stdout"


def strings_setting(sql: str) -> str:
    """What ``sql`` (one statement naming standard_conforming_strings, maybe in a comment)
    sets it to for psql: ``"on"``, ``"off"``, ``"initial"`` (RESET, DISCARD ALL, SET ...
    DEFAULT: the value the file started with), ``"unknown"`` (a change that cannot be
    followed), or ``""`` (named in a comment only, or a default for later sessions)."""
    statement = " ".join(strip_comments(sql).split())
    if _RESET_SCS_RE.match(statement):
        return "initial"
    if not SCS_RE.search(statement) or _SESSION_DEFAULTS_RE.match(statement):
        return ""
    match = _SET_SCS_RE.match(statement)
    word = match.group("value").strip("'").lower() if match else ""
    if word == "default":
        return "initial"
    return "on" if word in _ON else "off" if word in _OFF else "unknown"


def strip_comments(sql: str) -> str:
    """``sql`` without its ``/* */`` (read unnested) and ``--`` comments, in linear time."""
    parts, position = [], 0
    while True:
        opening = sql.find("/*", position)
        closing = sql.find("*/", opening + 2) if opening >= 0 else -1
        if closing < 0:
            break
        parts += [sql[position:opening], " "]
        position = closing + 2
    parts.append(sql[position:])
    return re.sub(r"--[^\n]*", " ", "".join(parts))
