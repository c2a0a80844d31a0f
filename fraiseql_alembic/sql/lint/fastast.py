"""PostgreSQL's parse tree of a statement, from libpg_query's JSON, as lint reads it.

``pglast.parser.parse_sql`` builds every node through its validating ``__setattr__``
(about 1.5 us an attribute), and importing pglast's node classes and enums costs about
60 ms.  :func:`parse_statements` wraps the JSON of the same parser
(:func:`.statements.parse_tree`) in the light classes of :mod:`.nodes`, which build a
slot only when a rule reads it, as ``parse_sql`` would have set it.
tests/unit/test_lint_nodes.py checks that the trees are ``parse_sql``'s, slot by slot, on
every statement the lint tests use.
"""

from __future__ import annotations

from ..statements import parse_tree
from .nodes import Where, ast, make


def parse_statements(sql: str) -> list[ast.Node]:
    """The statements of ``sql`` (``RawStmt.stmt`` of each), as ``parse_sql`` gives them;
    :class:`.pgparse.ParseError` as ``parse_sql`` raises it."""
    tree = parse_tree(sql)  # often parsed already, when the split classified it
    where: Where = _same_offset
    if not sql.isascii():  # byte offsets in the UTF-8 text -> character offsets
        where = _characters(sql)
    statements: list[ast.Node] = []
    for raw in tree.get("stmts", ()):
        if "stmt" in raw:
            ((kind, fields),) = raw["stmt"].items()
            statements.append(make(kind, fields, where))
    return statements


def _same_offset(offset: int) -> int:
    return offset


def _characters(sql: str) -> Where:
    """Byte offset in the UTF-8 text -> character offset, as pglast's Displacements (an
    offset inside a character gives the character; past the end, 0)."""
    characters: list[int] = []
    for index, char in enumerate(sql):
        characters.extend([index] * len(char.encode("utf-8")))

    def where(offset: int) -> int:
        return characters[offset] if 0 <= offset < len(characters) else 0
    return where
