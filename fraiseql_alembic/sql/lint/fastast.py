"""PostgreSQL's parse tree of a statement, built from libpg_query's JSON.

``pglast.parser.parse_sql`` builds every node through its validating ``__setattr__``
(about 1.5 us an attribute), and importing pglast's node classes and enums costs about
60 ms.  :func:`parse_statements` reads the JSON of the same parser
(:func:`.statements.parse_tree`) into the light classes of :mod:`.nodes`: every slot as
``parse_sql`` sets it (JSON leaves out zeros, false and empty values, which come back as
their defaults), enums as their members' names, ``A_Const`` values as value nodes,
nested lists as tuples, locations as character offsets.  tests/unit/test_lint_nodes.py
checks that the trees are ``parse_sql``'s on every statement the lint tests use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..statements import parse_tree
from .nodes import ast, slot_codes

_Builder = Callable[[Any, Callable[[int], int]], Any]
_Plan = list[tuple[str, str, "_Builder | None", Any]]
_VALUES = {"ival": "Integer", "fval": "Float", "sval": "String", "boolval": "Boolean",
           "bsval": "BitString"}
#: Each kind's class and plan, made once (:func:`_node` runs for every node).
_KINDS: dict[str, tuple[type[Any], _Plan]] = {}
_new = object.__new__
_set = object.__setattr__


def parse_statements(sql: str) -> list[ast.Node]:
    """The statements of ``sql`` (``RawStmt.stmt`` of each), as ``parse_sql`` gives them;
    :class:`.pgparse.ParseError` as ``parse_sql`` raises it."""
    tree = parse_tree(sql)  # often parsed already, when the split classified it
    where: Callable[[int], int] = _same_offset
    if not sql.isascii():  # byte offsets in the UTF-8 text -> character offsets
        where = _characters(sql)
    return [_node(next(iter(raw["stmt"])), next(iter(raw["stmt"].values())), where)
            for raw in tree.get("stmts", ()) if "stmt" in raw]


def _same_offset(offset: int) -> int:
    return offset


def _characters(sql: str) -> Callable[[int], int]:
    """Byte offset in the UTF-8 text -> character offset, as pglast's Displacements (an
    offset inside a character gives the character; past the end, 0)."""
    characters: list[int] = []
    for index, char in enumerate(sql):
        characters.extend([index] * len(char.encode("utf-8")))

    def where(offset: int) -> int:
        return characters[offset] if 0 <= offset < len(characters) else 0
    return where


def _build(value: Any, where: Callable[[int], int]) -> Any:
    """A JSON value of a ``Node*`` or ``List*`` slot: ``{"Kind": {...}}`` or a list."""
    if isinstance(value, list):
        return tuple([_build(item, where) for item in value])
    if isinstance(value, dict):
        ((kind, fields),) = value.items()
        if kind == "List":
            return tuple([_build(item, where) for item in fields.get("items", ())])
        return _node(kind, fields, where)
    return value


def _node(kind: str, fields: dict[str, Any], where: Callable[[int], int]) -> Any:
    known = _KINDS.get(kind)
    if known is None:
        known = _KINDS[kind] = (getattr(ast, kind), _plan(kind))
    cls, plan = known
    node = _new(cls)
    if kind == "A_Const":
        _a_const(node, fields, where)
        return node
    get = fields.get
    for name, key, build, default in plan:
        raw = get(key)
        if raw is None:
            _set(node, name, default)
        elif build is None:  # a scalar, as JSON gives it
            _set(node, name, raw)
        else:
            _set(node, name, build(raw, where))
    return node


def _a_const(node: Any, fields: dict[str, Any], where: Callable[[int], int]) -> None:
    """``{"ival": {"ival": 1}, "location": 7}`` -> ``A_Const(isnull=False,
    val=Integer(ival=1))``."""
    value = None
    for key, kind in _VALUES.items():
        if key in fields:
            value = _node(kind, fields[key], where)
            break
    _set(node, "isnull", bool(fields.get("isnull", False)))
    _set(node, "val", value)  # pglast's A_Const keeps no location


def _plan(kind: str) -> _Plan:
    """For each slot of ``kind``: its JSON key (``def`` for ``def_``), how to build it from
    JSON (None: the JSON value as it is), and its value when absent."""
    plan: _Plan = []
    for name, code in slot_codes(kind):
        build: _Builder | None = None
        default: Any = None
        if code == "b":
            build, default = _boolean, False
        elif code == "c":
            default = "\x00"
        elif code == "l":
            build, default = _location, 0
        elif code == "i":
            default = 0
        elif code == "n":
            build = _build
        elif code.startswith("t="):
            build = _typed(code[2:])
        elif code.startswith("e"):  # the member's name, as JSON gives it
            default = code[2:] or None
        plan.append((name, name.rstrip("_"), build, default))
    return plan


def _boolean(value: Any, _where: Callable[[int], int]) -> bool:
    return bool(value)


def _location(value: int, where: Callable[[int], int]) -> int | None:
    return where(value) if value >= 0 else None  # -1: unknown, as pglast says it


def _typed(kind: str) -> _Builder:
    """A ``TypeName*`` slot: JSON gives its fields without the ``{"TypeName": ...}``."""
    def build(value: Any, where: Callable[[int], int]) -> Any:
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)) == kind:
            value = value[kind]
        return _node(kind, value, where)
    return build
