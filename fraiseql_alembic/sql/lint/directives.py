"""``-- fraiseql-lint: ignore FQL001, set-not-null -- why``: which comment silences what.

``ignore`` silences the statement the comment is in, ends or stands right above;
``ignore-file`` (anywhere in the header or the up section) silences the whole file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ..parse import ParsedMigration
from ..statements import Statement
from .plpgsql import DOLLAR_QUOTE_RE
from .ruletable import rule_named
from .state import Hit, position

_DIRECTIVE_RE = re.compile(r"fraiseql-lint\s*:\s*(?P<rest>.*)", re.IGNORECASE | re.DOTALL)
_IGNORE_RE = re.compile(r"^ignore(?P<file>-file)?\b(?P<names>.*)$", re.IGNORECASE | re.DOTALL)
_REASON_RE = re.compile(r"--|:|\n")  # rule names end here; a free-text reason may follow


@dataclass(frozen=True)
class _Directive:
    start: int  # character offsets of the comment in the file text
    end: int
    rules: frozenset[str]


@dataclass
class Layout:
    """Where the up section's code and comments are: which comment silences what."""

    directives: list[_Directive] = field(default_factory=list)
    code: list[tuple[int, int]] = field(default_factory=list)  # (start, end) in the file
    comment_lines: set[int] = field(default_factory=set)
    file_rules: set[str] = field(default_factory=set)  # silenced by ``ignore-file``


def _comments(sql: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, kind) of tokens; comments inside a dollar-quoted body (a DO block)
    are included, as ``SQL_COMMENT`` / ``C_COMMENT`` located in ``sql``.  Raises pglast's
    ParseError."""
    from pglast.parser import ParseError, scan  # lazy: pglast, for files with a directive

    for token in scan(sql):
        yield token.start, token.end + 1, token.name
        opening = DOLLAR_QUOTE_RE.match(sql, token.start)
        if token.name != "SCONST" or opening is None:
            continue
        inner = sql[opening.end() : token.end + 1 - len(opening.group())]
        try:
            inner_tokens = scan(inner)
        except ParseError:
            continue
        for inner_token in inner_tokens:
            if inner_token.name in ("SQL_COMMENT", "C_COMMENT"):
                yield (opening.end() + inner_token.start, opening.end() + inner_token.end + 1,
                       inner_token.name)


def read_directives(migration: ParsedMigration) -> tuple[Layout, list[Hit]]:
    """The layout of the up section with its ignore comments, and FQL010 hits (located
    in the file text) for names no rule has."""
    section = migration.up
    text = migration.text
    layout = Layout()
    if "fraiseql-lint" not in text.lower():
        return layout, []  # no directive: no need to find the comments (most files)
    from pglast.parser import ParseError  # lazy: pglast, for files with a directive

    try:
        tokens = [(section.offset + start, section.offset + end, kind, True)
                  for start, end, kind in _comments(section.sql)]
        if section.offset:  # the header above `-- migrate:up`: comments only
            tokens[:0] = [(start, end, kind, False)
                          for start, end, kind in _comments(text[:section.offset])]
    except ParseError:
        return layout, []  # e.g. an unterminated quote: the statements report it
    findings: list[Hit] = []
    for start, end, kind, in_section in tokens:
        if kind not in ("SQL_COMMENT", "C_COMMENT"):
            layout.code.append((start, end))
            continue
        if in_section:
            first, _ = position(text, start)
            last, _ = position(text, end - 1)
            layout.comment_lines.update(range(first, last + 1))
        body = text[start:end]
        body = body[2:-2] if kind == "C_COMMENT" else body[2:]
        match = _DIRECTIVE_RE.search(body)
        if match is None:
            continue
        ignore = _IGNORE_RE.match(match.group("rest").strip())
        if not in_section and (ignore is None or not ignore.group("file")):
            continue  # only ignore-file means something above the up section
        names = [
            name for name in re.split(r"[\s,]+", _REASON_RE.split(ignore.group("names"), 1)[0])
            if name
        ] if ignore is not None else []
        if not names:
            findings.append(Hit(
                "FQL010",
                f"`{body.strip()}` is not a lint directive, so it silences nothing",
                "write `-- fraiseql-lint: ignore FQL001` (rule ids or slugs, comma-separated; "
                "a reason may follow ` -- ` or `:`), or `ignore-file FQL001` for the whole "
                "file",
                start,
            ))
            continue
        rules: set[str] = set()
        for name in names:
            rule = rule_named(name)
            if rule is None:
                findings.append(Hit(
                    "FQL010",
                    f"`{name}` in this fraiseql-lint comment is no rule id or slug, so it "
                    "silences nothing (a typo, or a reason without ` -- ` or `:` before it?)",
                    "use a rule id or slug from docs/lint.md (FQL001, index-not-concurrent), "
                    "and write a reason after ` -- `: `ignore FQL001 -- tiny table`",
                    start,
                ))
            else:
                rules.add(rule.id)
        if ignore is not None and ignore.group("file"):
            layout.file_rules |= rules
        else:
            layout.directives.append(_Directive(start, end, frozenset(rules)))
    return layout, findings


def silenced(
    migration: ParsedMigration, statements: Sequence[Statement], index: int, layout: Layout
) -> frozenset[str]:
    """Rules silenced for ``statements[index]``: by directives inside it, after it on the
    line where it ends (when no other statement starts between), or in the comment lines
    right above it (no blank line, no other code between)."""
    if not layout.directives:
        return frozenset()
    text = migration.text
    statement = statements[index]
    start, end = statement.offset, statement.offset + len(statement.sql)
    next_start = statements[index + 1].offset if index + 1 < len(statements) else len(text)
    last_line, _ = position(text, end - 1)
    found: set[str] = set()
    for directive in layout.directives:
        line, _ = position(text, directive.start)
        if start <= directive.start < end:
            inside = True
        elif end <= directive.start < next_start:
            inside = line == last_line  # trailing, after the last statement on the line
        else:
            inside = directive.end <= start and _right_above(text, directive, statement, layout)
        if inside:
            found |= directive.rules
    return frozenset(found)


def _right_above(text: str, directive: _Directive, statement: Statement,
                 layout: Layout) -> bool:
    """Only comments between ``directive`` and the statement, no blank line, and no code
    before the directive on its line."""
    before = [code for code in layout.code if code[0] < directive.start]
    between = [code for code in layout.code if directive.start < code[0] < statement.offset]
    if between:
        return False
    line, _ = position(text, directive.start)
    if before and position(text, before[-1][1] - 1)[0] >= line:
        return False
    end_line, _ = position(text, directive.end - 1)
    return all(number in layout.comment_lines for number in range(end_line + 1, statement.line))
