"""PostgreSQL's parse tree as pglast's node classes, built about five times faster.

``pglast.parser.parse_sql`` builds every node through its validating ``__setattr__``
(about 1.5 us an attribute), which was two thirds of lint's time on a folder of
migrations.  :func:`parse_statements` asks libpg_query for the same tree as JSON (the
same parser, in C) and fills the same classes directly: every slot as ``parse_sql``
sets it (JSON leaves out zeros, false and empty values, which come back as their
defaults), enums as members, ``A_Const`` values as value nodes, nested lists as
tuples, locations as character offsets.  tests/unit/test_lint_fastast.py checks that the
trees are equal to ``parse_sql``'s on every statement the lint tests use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pglast import ast, enums
from pglast.parser import Displacements

from ..statements import parse_tree

_Builder = Callable[[Any, Callable[[int], int]], Any]
_INTEGERS = frozenset({"int", "int16", "int32", "uint32", "uint64", "int64", "long",
                       "Oid", "AttrNumber", "Index", "bits32", "Cost", "Cardinality",
                       "SubTransactionId", "AclMode", "double", "float"})
_VALUES = {"ival": ast.Integer, "fval": ast.Float, "sval": ast.String,
           "boolval": ast.Boolean, "bsval": ast.BitString}
_PLANS: dict[str, list[tuple[str, str, _Builder | None, Any]]] = {}
#: Each kind's class and plan, looked up once (:func:`_node` runs for every node).
_KINDS: dict[str, tuple[type[ast.Node], list[tuple[str, str, _Builder | None, Any]]]] = {}
_new = object.__new__
_set = object.__setattr__


def parse_statements(sql: str) -> list[ast.Node]:
    """The statements of ``sql`` (``RawStmt.stmt`` of each), as ``parse_sql`` gives them;
    a ParseError as ``parse_sql`` raises it."""
    tree = parse_tree(sql)  # often parsed already, when the split classified it
    where: Callable[[int], int] = _same_offset
    if not sql.isascii():  # byte offsets in the UTF-8 text -> character offsets
        displacements = Displacements(sql)

        def where(offset: int) -> int:
            return displacements(offset) or 0

    return [_node(next(iter(raw["stmt"])), next(iter(raw["stmt"].values())), where)
            for raw in tree.get("stmts", ()) if "stmt" in raw]


def _same_offset(offset: int) -> int:
    return offset


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


def _node(kind: str, fields: dict[str, Any], where: Callable[[int], int]) -> ast.Node:
    known = _KINDS.get(kind)
    if known is None:
        known = _KINDS[kind] = (getattr(ast, kind), _plan(kind))
    cls, plan = known
    node: ast.Node = _new(cls)
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


def _a_const(node: ast.Node, fields: dict[str, Any], where: Callable[[int], int]) -> None:
    """``{"ival": {"ival": 1}, "location": 7}`` -> ``A_Const(isnull=False,
    val=Integer(ival=1))``."""
    value = None
    for key, cls in _VALUES.items():
        if key in fields:
            value = _node(cls.__name__, fields[key], where)
            break
    object.__setattr__(node, "isnull", bool(fields.get("isnull", False)))
    object.__setattr__(node, "val", value)  # pglast's A_Const keeps no location


def _plan(kind: str) -> list[tuple[str, str, _Builder | None, Any]]:
    """For each slot of ``kind``: its JSON key (``def`` for ``def_``), how to build it from
    JSON (None: the JSON value as it is), and its value when absent."""
    plan = _PLANS.get(kind)
    if plan is not None:
        return plan
    plan = []
    for name, info in getattr(ast, kind).__slots__.items():
        ctype = info.c_type
        build: _Builder
        default: Any = None
        if ctype == "bool":
            build, default = _boolean, False
        elif ctype == "char":
            build, default = _same, "\x00"
        elif ctype == "ParseLoc":
            build, default = _location, 0
        elif ctype in _INTEGERS:
            build, default = _same, 0
        elif ctype == "char*":
            build = _same
        elif ctype in ("Node*", "List*", "Expr*") or ctype.startswith("List"):
            build = _build
        elif ctype.endswith("*"):
            build = _typed(ctype[:-1])
        elif hasattr(enums, ctype):
            enum = getattr(enums, ctype)
            build = _enum(enum)
            default = enum(0) if 0 in enum._value2member_map_ else None
        else:  # another scalar typedef (RelFileNumber, ...): by its Python type
            types = info.py_type if isinstance(info.py_type, tuple) else (info.py_type,)
            build, default = _same, 0 if int in types else None
        plan.append((name, name.rstrip("_"), None if build is _same else build, default))
    _PLANS[kind] = plan
    return plan


def _same(value: Any, _where: Callable[[int], int]) -> Any:
    return value


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


def _enum(enum: Any) -> _Builder:
    members = enum._member_map_  # enum[name] without EnumType.__getitem__'s Python call

    def build(value: Any, _where: Callable[[int], int]) -> Any:
        return members[value] if isinstance(value, str) else enum(value)
    return build
