"""Column types, and whether ``ALTER COLUMN ... TYPE`` rewrites the table (rule FQL006).

PostgreSQL skips the rewrite (``ATColumnChangeRequiresRewrite`` in tablecmds.c) when the
conversion is binary-coercible (``pg_cast.castmethod = 'b'``: ``varchar`` <-> ``text``,
``cidr`` -> ``inet``), or a length coercion that the type's support function proves
cannot change a value (``varchar``/``varbit`` to a longer or unlimited length,
``numeric`` to more precision with the same scale or to unconstrained ``numeric``,
``timestamp``/``time`` to more or unlimited fractional digits), or, from PostgreSQL 12 on,
``timestamp`` <-> ``timestamptz`` when the session's ``TimeZone`` has a fixed zero offset
(UTC).  Anything else (another type, a shorter length, a ``USING`` expression other than
the column itself, a ``COLLATE``, arrays) is taken to rewrite.
tests/db/test_lint_rewrites.py checks each claim on a real server (pg_class.relfilenode).
"""

from __future__ import annotations

from dataclasses import dataclass

from .nodes import ast

_ALIASES = {"int": "int4", "integer": "int4", "smallint": "int2", "bigint": "int8",
            "serial": "int4", "serial4": "int4", "bigserial": "int8", "serial8": "int8",
            "smallserial": "int2", "serial2": "int2", "decimal": "numeric",
            "character varying": "varchar", "bool": "bool", "boolean": "bool",
            "real": "float4", "double precision": "float8"}
#: Binary-coercible conversions (pg_cast, castmethod 'b') between the types lint names.
_BINARY = {("varchar", "text"), ("text", "varchar"), ("cidr", "inet")}
#: Types whose length coercion keeps every value when the new limit is not smaller.
_WIDENS = {"varchar", "varbit", "timestamp", "timestamptz", "time", "timetz"}
#: TimeZone values with a fixed zero offset (PostgreSQL compares the offset, not the name).
_UTC_NAMES = frozenset({
    "utc", "etc/utc", "gmt", "etc/gmt", "uct", "etc/uct", "zulu", "etc/zulu", "universal",
    "etc/universal", "greenwich", "etc/greenwich", "gmt0", "etc/gmt0", "gmt+0", "gmt-0",
    "etc/gmt+0", "etc/gmt-0", "z", "0", "+0", "-0", "+00", "+00:00", "0:00", "00:00",
})


@dataclass(frozen=True)
class ColumnType:
    name: str  # e.g. "varchar", "numeric", "public.money2" (pg_catalog left out)
    typmods: tuple[int, ...] | None  # (10,) for varchar(10); None when not constant
    array: bool = False

    def __str__(self) -> str:
        mods = f"({','.join(str(mod) for mod in self.typmods)})" if self.typmods else ""
        return f"{self.name}{mods}{'[]' if self.array else ''}"


def column_type(type_name: ast.TypeName | None) -> ColumnType | None:
    """The type as written in a column definition; None for ``%TYPE`` and the like."""
    if type_name is None or not type_name.names or type_name.pct_type:
        return None
    parts = [getattr(part, "sval", None) or "" for part in type_name.names]
    if parts[0] == "pg_catalog":
        parts = parts[1:]
    name = ".".join(parts)
    name = _ALIASES.get(name, name)
    mods: list[int] = []
    for mod in type_name.typmods or ():
        value = getattr(getattr(mod, "val", None), "ival", None)
        if not isinstance(value, int):
            return ColumnType(name, None, bool(type_name.arrayBounds))
        mods.append(value)
    return ColumnType(name, tuple(mods), bool(type_name.arrayBounds))


def is_utc(value: str) -> bool:
    """Whether a TimeZone setting has a fixed zero offset."""
    return value.strip().lower() in _UTC_NAMES


def rewrites(old: ColumnType, new: ColumnType, *, utc: bool, postgres_version: int) -> bool:
    """Whether changing a column of type ``old`` to ``new`` (no USING, no COLLATE) rewrites
    the table, by PostgreSQL's rules (see the module docstring)."""
    if old.typmods is None or new.typmods is None or old.array or new.array:
        return old != new or old.typmods is None
    if old == new:
        return False
    if (old.name, new.name) in _BINARY:
        return bool(new.typmods)  # text -> varchar(n) must check every value
    if {old.name, new.name} == {"timestamp", "timestamptz"}:
        if postgres_version < 12 or not utc:
            return True
        return not _wider(old.typmods, new.typmods)
    if old.name != new.name:
        return True
    if old.name in _WIDENS:
        return not _wider(old.typmods, new.typmods)
    if old.name == "numeric":
        if not new.typmods:
            return False
        if not old.typmods:
            return True
        old_scale = old.typmods[1] if len(old.typmods) > 1 else 0
        new_scale = new.typmods[1] if len(new.typmods) > 1 else 0
        return new_scale != old_scale or new.typmods[0] < old.typmods[0]
    return True


def _wider(old: tuple[int, ...], new: tuple[int, ...]) -> bool:
    """A length limit that keeps every value: none, or not smaller than the old one."""
    return not new or (bool(old) and new[0] >= old[0])
