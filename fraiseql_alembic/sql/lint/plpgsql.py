"""``DO`` blocks: the SQL statements of the PL/pgSQL body, linted like the file's own."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

from ..pgparse import ParseError, parse_plpgsql_json
from .fastast import parse_statements
from .nodes import ast
from .state import Hit, constant, text_of

DOLLAR_QUOTE_RE = re.compile(r"\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$")


def do_hits(
    node: ast.DoStmt, sql: str, lint_sql: Callable[[str], Iterator[Hit]]
) -> Iterator[Hit]:
    """Lint the statements a ``DO`` block runs (SQL statements, PERFORM, and EXECUTE of a
    string constant) with ``lint_sql``, which lints a statement and carries the state on.
    Hits point at the inner statement when the body is dollar-quoted."""
    options = {item.defname: item for item in node.args or () if isinstance(item, ast.DefElem)}
    language = options.get("language")
    body_option = options.get("as")
    if (
        language is not None
        and isinstance(language.arg, ast.String)
        and text_of(language.arg.sval).lower() != "plpgsql"
    ) or body_option is None or not isinstance(body_option.arg, ast.String):
        return
    body = text_of(body_option.arg.sval)
    delimiter = "$fraiseql_lint$"
    while delimiter in body:
        delimiter = delimiter[:-1] + "x$"
    try:
        tree = json.loads(parse_plpgsql_json(
            f"CREATE FUNCTION fraiseql_lint() RETURNS void LANGUAGE plpgsql AS "
            f"{delimiter}{body}{delimiter}"
        ))
    except ParseError as err:
        yield Hit(
            "FQL011",
            "PostgreSQL's PL/pgSQL parser rejects this DO block "
            f"({err.args[0] if err.args else err})",
            "fix the block; `fraiseql migrate up` would fail here",
        )
        return
    start = getattr(body_option, "arg_location", -1)
    opening = DOLLAR_QUOTE_RE.match(sql, start) if isinstance(start, int) and start >= 0 else None
    body_at = opening.end() if opening is not None else -1
    if body_at < 0 or sql[body_at : body_at + len(body)] != body:
        body_at = -1  # a '...' body: escapes shift positions, so report at the DO
    line_starts = [0] + [index + 1 for index, char in enumerate(body) if char == "\n"]
    for line, query, dynamic in sorted(_plpgsql_statements(tree), key=lambda item: item[0]):
        if body_at < 0 or not 1 <= line <= len(line_starts):
            where = None
        else:
            line_start = line_starts[line - 1]
            found = -1 if dynamic else body.find(query, line_start)
            if found < 0:  # PERFORM, INTO (blanked out), EXECUTE: the line's first word
                found = line_start + len(body[line_start:]) - len(body[line_start:].lstrip())
            where = body_at + found
        for hit in lint_sql(query):
            location = 0 if where is None else where + (0 if dynamic else hit.location)
            yield Hit(hit.rule, hit.message, hit.fix, location)


def _plpgsql_statements(tree: object) -> Iterator[tuple[int, str, bool]]:
    """(line in the body, SQL, dynamic) for each statement a PL/pgSQL tree runs."""
    if isinstance(tree, list):
        for item in tree:
            yield from _plpgsql_statements(item)
        return
    if not isinstance(tree, dict):
        return
    for kind, value in tree.items():
        if isinstance(value, dict) and kind in (
            "PLpgSQL_stmt_execsql", "PLpgSQL_stmt_perform", "PLpgSQL_stmt_dynexecute"
        ):
            expression = value.get("sqlstmt") or value.get("expr") or value.get("query") or {}
            query = expression.get("PLpgSQL_expr", {}).get("query")
            line = value.get("lineno", 0)
            if not isinstance(query, str) or not isinstance(line, int):
                continue
            if kind != "PLpgSQL_stmt_dynexecute":
                yield line, query, False
                continue
            executed = _string_constant(query)
            if executed is not None:
                yield line, executed, True
        else:
            yield from _plpgsql_statements(value)


def _string_constant(expression: str) -> str | None:
    """The value of ``'CREATE INDEX ...'`` (an EXECUTE of a constant); None otherwise."""
    try:
        (select,) = parse_statements(f"SELECT {expression}")
    except (ParseError, ValueError):
        return None
    targets = select.targetList if isinstance(select, ast.SelectStmt) else None
    if not targets or len(targets) != 1:
        return None
    value = constant(getattr(targets[0], "val", None))
    return value if isinstance(value, str) else None
