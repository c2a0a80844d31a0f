"""PostgreSQL's parse tree in light classes shaped as pglast's, without importing pglast.

The rules are written, and type-checked, against pglast's node classes and enums
(``ast.AlterTableStmt``, ``AlterTableType.AT_AddColumn``); importing those costs about
60 ms, half of a lint run's start.  At run time this module stands in for them: ``ast``
makes, on first use, a class of each node kind with pglast's slots in pglast's order
(from :mod:`.nodekinds`, generated from pglast), and the enum names give each member as
its name, a string, which is how libpg_query's JSON gives an enum and how
:mod:`.fastast` stores it.  ``node.subtype == AlterTableType.AT_AddColumn`` therefore
means what it means with pglast's classes; :func:`enum_name` reads a member's name in
both worlds.  tests/unit/test_lint_nodes.py checks that the trees are pglast's, slot by
slot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .nodekinds import KINDS

__all__ = ["AlterTableType", "ConstrType", "DropBehavior", "NullTestType", "ObjectType",
           "ReindexObjectType", "VariableSetKind", "ast", "enum_name", "slot_codes"]


class Node:
    """A node of PostgreSQL's parse tree (the base of every kind's class)."""

    __slots__: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        """As pglast's: the same kind and equal slots, locations aside."""
        if type(other) is not type(self):
            return False
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__
                   if name not in _UNCOMPARED)

    __hash__ = None  # type: ignore[assignment]  # as pglast's nodes: equal, not hashable

    def __repr__(self) -> str:
        shown = " ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__
                         if name != "location" and getattr(self, name) is not None)
        return f"<{type(self).__name__}{' ' if shown else ''}{shown}>"


_UNCOMPARED = frozenset({"location", "stmt_len", "list_start", "list_end"})


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
            slots = tuple(name for name, _ in slot_codes(kind))
        except KeyError:
            raise AttributeError(f"PostgreSQL's parse tree has no node kind {kind!r}") from None
        cls = type(kind, (Node,), {"__slots__": slots, "__module__": __name__})
        setattr(self, kind, cls)
        return cls


class _Names:
    """An enum whose members are their names (as libpg_query's JSON gives them)."""

    def __getattr__(self, member: str) -> str:
        if member.startswith("_"):
            raise AttributeError(member)
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
    ast = _Kinds()
    AlterTableType = ConstrType = DropBehavior = NullTestType = ObjectType = _Names()
    ReindexObjectType = VariableSetKind = AlterTableType
