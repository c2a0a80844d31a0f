"""PostgreSQL's parse tree in light classes shaped as pglast's, without importing pglast.

The rules are written, and type-checked, against pglast's node classes and enums
(``ast.AlterTableStmt``, ``AlterTableType.AT_AddColumn``); importing those costs about
60 ms, half of a lint run's start.  At run time this module stands in for them: ``ast``
makes, on first use, a class of each node kind with pglast's slots in pglast's order
(from :mod:`.nodekinds`, generated from pglast), and the enum names give each member as
its name, a string, which is how libpg_query's JSON gives an enum.  :func:`make` wraps a
node's JSON: a slot is read from it when first asked for (as pglast's ``parse_sql`` would
have set it: JSON leaves out zeros, false and empty values, which come back as their
defaults; ``A_Const`` values as value nodes; nested lists as tuples; locations as
character offsets), so that the parts of a statement no rule looks at are never built.
``node.subtype == AlterTableType.AT_AddColumn`` therefore means what it means with
pglast's classes; :func:`enum_name` reads a member's name in both worlds.
tests/unit/test_lint_nodes.py checks that the trees are pglast's, slot by slot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from .nodekinds import KINDS

__all__ = ["AlterTableType", "ConstrType", "DropBehavior", "NullTestType", "ObjectType",
           "ReindexObjectType", "VariableSetKind", "ast", "enum_name", "make", "slot_codes"]

#: Byte offset in the statement's UTF-8 text -> character offset.
Where = Callable[[int], int]
_Builder = Callable[[Any, Where], Any]
_new = object.__new__


class Node:
    """A node of PostgreSQL's parse tree (the base of every kind's class): its JSON
    (``_json``), and each slot once read, in the instance's dictionary."""

    #: The slots of the kind, in pglast's order (pglast's ``__slots__``).
    FIELDS: ClassVar[tuple[str, ...]] = ()

    def __eq__(self, other: object) -> bool:
        """As pglast's: the same kind and equal slots, locations aside."""
        if type(other) is not type(self):
            return False
        return all(getattr(self, name) == getattr(other, name) for name in self.FIELDS
                   if name not in _UNCOMPARED)

    __hash__ = None  # type: ignore[assignment]  # as pglast's nodes: equal, not hashable

    def __repr__(self) -> str:
        shown = " ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS
                         if name != "location" and getattr(self, name) is not None)
        return f"<{type(self).__name__}{' ' if shown else ''}{shown}>"


_UNCOMPARED = frozenset({"location", "stmt_len", "list_start", "list_end"})


class _Slot:
    """A slot of a kind's class: read from the node's JSON the first time, then kept in
    the node's dictionary (which Python looks in first from then on)."""

    __slots__ = ("build", "default", "key", "name")

    def __init__(self, name: str, key: str | None, build: _Builder | None,
                 default: Any) -> None:
        self.name = name
        self.key = key  # None: the whole JSON object
        self.build = build  # None: the value as JSON gives it
        self.default = default  # when JSON leaves it out

    def __get__(self, node: Node | None, owner: type | None = None) -> Any:
        if node is None:
            return self
        values = node.__dict__
        fields: dict[str, Any] = values["_json"]
        raw = fields if self.key is None else fields.get(self.key)
        if raw is None:
            value = self.default
        elif self.build is None:
            value = raw
        else:
            value = self.build(raw, values["_where"])
        values[self.name] = value
        return value


def _lines() -> dict[str, str]:
    """Each kind's line of :data:`.nodekinds.KINDS` (its continuation lines joined)."""
    found: dict[str, str] = {}
    kind = ""
    for line in KINDS.splitlines():
        if line.startswith(" "):
            found[kind] += line
        elif line:
            kind = line.split(" ", 1)[0]
            found[kind] = line
    return found


_LINES = _lines()


def slot_codes(kind: str) -> list[tuple[str, str]]:
    """(slot, code) for each slot of ``kind``, in pglast's order (codes: :mod:`.nodekinds`).
    KeyError for a kind pglast does not have."""
    return [tuple(slot.split(":", 1)) for slot in _LINES[kind].split()[1:]]  # type: ignore[misc]


class _Kinds:
    """``ast.Kind``: the class of each node kind, made when first asked for."""

    Node = Node

    def __getattr__(self, kind: str) -> type:
        if kind.startswith("_"):
            raise AttributeError(kind)
        try:
            slots = _slots(kind)
        except KeyError:
            raise AttributeError(f"PostgreSQL's parse tree has no node kind {kind!r}") from None
        cls = type(kind, (Node,), {"FIELDS": tuple(slots), "__module__": __name__, **slots})
        setattr(self, kind, cls)
        return cls


def make(kind: str, fields: dict[str, Any], where: Where) -> Any:
    """The node of ``kind`` whose JSON (libpg_query's) is ``fields``."""
    node = _new(_classes.get(kind) or _class(kind))
    values = node.__dict__
    values["_json"] = fields
    values["_where"] = where
    return node


_classes: dict[str, type[Node]] = {}


def _class(kind: str) -> type[Node]:
    cls: type[Node] = getattr(_KINDS, kind)
    _classes[kind] = cls
    return cls


def _slots(kind: str) -> dict[str, _Slot]:
    """Each slot of ``kind``: its JSON key (``def`` for ``def_``), how to build it, and
    its value when JSON leaves it out (codes: :mod:`.nodekinds`)."""
    plan: dict[str, _Slot] = {}
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
        plan[name] = _Slot(name, name.rstrip("_"), build, default)
    if kind == "A_Const":  # its value: ``{"ival": {"ival": 1}}`` -> Integer(ival=1)
        plan["val"] = _Slot("val", None, _constant, None)
    return plan


def _build(value: Any, where: Where) -> Any:
    """A JSON value of a ``Node*`` or ``List*`` slot: ``{"Kind": {...}}`` or a list."""
    if isinstance(value, list):
        return tuple([_build(item, where) for item in value])
    if isinstance(value, dict):
        ((kind, fields),) = value.items()
        if kind == "List":
            return tuple([_build(item, where) for item in fields.get("items", ())])
        return make(kind, fields, where)
    return value


_VALUES = {"ival": "Integer", "fval": "Float", "sval": "String", "boolval": "Boolean",
           "bsval": "BitString"}


def _constant(fields: dict[str, Any], where: Where) -> Any:
    """``A_Const.val``: the value node of ``{"ival": {"ival": 1}, "location": 7}``."""
    for key, kind in _VALUES.items():
        if key in fields:
            return make(kind, fields[key], where)
    return None


def _boolean(value: Any, _where: Where) -> bool:
    return bool(value)


def _location(value: int, where: Where) -> int | None:
    return where(value) if value >= 0 else None  # -1: unknown, as pglast says it


def _typed(kind: str) -> _Builder:
    """A ``TypeName*`` slot: JSON gives its fields without the ``{"TypeName": ...}``."""
    def build(value: Any, where: Where) -> Any:
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)) == kind:
            value = value[kind]
        return make(kind, value, where)
    return build


_KINDS = _Kinds()


class _Names:
    """An enum whose members are their names (as libpg_query's JSON gives them)."""

    def __getattr__(self, member: str) -> str:
        if member.startswith("_"):
            raise AttributeError(member)
        setattr(self, member, member)  # asked for again: found without this call
        return member


def enum_name(member: Any) -> str:
    """The name of an enum member: pglast's member, or its name as lint's trees hold it."""
    return str(getattr(member, "name", member))


if TYPE_CHECKING:  # the rules are checked against pglast's classes and enums
    from pglast import ast as ast
    from pglast.enums import (
        AlterTableType as AlterTableType,
    )
    from pglast.enums import (
        ConstrType as ConstrType,
    )
    from pglast.enums import (
        DropBehavior as DropBehavior,
    )
    from pglast.enums import (
        NullTestType as NullTestType,
    )
    from pglast.enums import (
        ObjectType as ObjectType,
    )
    from pglast.enums import (
        ReindexObjectType as ReindexObjectType,
    )
    from pglast.enums import (
        VariableSetKind as VariableSetKind,
    )
else:
    ast = _KINDS
    AlterTableType = ConstrType = DropBehavior = NullTestType = ObjectType = _Names()
    ReindexObjectType = VariableSetKind = AlterTableType
