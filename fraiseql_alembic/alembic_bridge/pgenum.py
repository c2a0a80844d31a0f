"""alembic-postgresql-enum's operations in a generated SQL file.

The extension (https://github.com/Pogchamp-company/alembic-postgresql-enum) registers an
autogenerate comparator when it is imported (its documented use: ``import
alembic_postgresql_enum`` in the models or env.py), and from then on compares PostgreSQL
enum types itself: a new type (``CreateEnumOp``), a type no model uses (``DropEnumOp``),
values added at the end or in between (``AddEnumValuesOp``), values removed, renamed or
reordered (``SyncEnumValuesOp``: the type is recreated and every column that uses it
converted).  While it is loaded, :mod:`.autogen` leaves enums to it (doing both would
write each change twice), and this module writes its operations as SQL in the offline
context :mod:`.sqlrender` writes Alembic's own in:

- ``CreateEnumOp`` / ``DropEnumOp``: ``CREATE TYPE`` / ``DROP TYPE`` (the extension has
  only Python renderers for them, calling ``sa.Enum(...).create(op.get_bind())``);
- ``SyncEnumValuesOp``: the extension's own ``sync_enum_values``, run on the offline
  context (its SQL goes to the file through Alembic's mock connection);
- ``AddEnumValuesOp`` is written by :mod:`.sqlrender` as ``ALTER TYPE ... ADD VALUE IF
  NOT EXISTS`` in the models' place (the extension's own places a value that goes
  between two others after the wrong one, and cannot be run again after an
  interruption).

The package is never imported here: when it is not loaded, none of its operations exist.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alembic.operations import Operations, ops
from sqlalchemy.dialects.postgresql import ENUM, CreateEnumType, DropEnumType

#: The extension's import name.
EXTENSION = "alembic_postgresql_enum"
_COMPARATOR = f"{EXTENSION}.compare_dispatch"  # registers the comparator on import


@dataclass(frozen=True)
class EnumColumn:
    """A table column of an enum type (``array``: of an array of it), in the database."""

    schema: str
    table: str
    column: str
    array: bool
    default: str | None  # as PostgreSQL prints it ('a'::mood), or None


def active() -> bool:
    """Whether alembic-postgresql-enum compares enums in this process (it is imported)."""
    return _COMPARATOR in sys.modules


def is_operation(operation: object) -> bool:
    """Whether ``operation`` is one of the extension's."""
    return type(operation).__module__.startswith(f"{EXTENSION}.")


def kind(operation: object) -> str:
    """``create``, ``drop``, ``add`` or ``sync`` (the extension's operation classes)."""
    return {"CreateEnumOp": "create", "DropEnumOp": "drop", "AddEnumValuesOp": "add",
            "SyncEnumValuesOp": "sync"}.get(type(operation).__name__, "")


def schema_of(operation: Any, default_schema: str) -> str | None:
    """The operation's enum schema, None for the default one (as :mod:`.autogen` keys it)."""
    schema = str(operation.schema) if operation.schema else None
    return None if schema == default_schema else schema


def hoist(upgrade: ops.UpgradeOps,
          columns: Mapping[tuple[str | None, str], Sequence[EnumColumn]],
          default_schema: str) -> None:
    """New types and changed values first, on the database's columns.

    The extension appends value changes after the table changes, where a column or a
    default using a new value comes before the value, and gives them the models'
    columns, some of which do not exist yet (or any more, in the down section).  First
    in the up section (and so last in the down section, Alembic's reverse), the columns
    they convert are the ones the database has (``columns``, read by :mod:`.autogen`)."""
    first: list[Any] = [op for op in upgrade.ops if kind(op) in ("create", "add", "sync")]
    for operation in first:
        if kind(operation) != "create":
            found = columns.get((schema_of(operation, default_schema), str(operation.name)), ())
            operation.affected_columns = _references(found)
    upgrade.ops[:] = first + [op for op in upgrade.ops if op not in first]


def _references(columns: Sequence[EnumColumn]) -> list[Any]:
    """The extension's TableReferences for ``columns`` (its own module: it is loaded)."""
    types = importlib.import_module(f"{EXTENSION}.get_enum_data.types")
    return [types.TableReference(
        table_name=column.table, column_name=column.column, table_schema=column.schema,
        column_type=types.ColumnType.ARRAY if column.array else types.ColumnType.COMMON,
        existing_server_default=column.default) for column in columns]


def invoke(operations: Operations, operation: Any, default_schema: str) -> None:
    """Write ``operation`` (not an ``add``, which :mod:`.sqlrender` writes) through the
    offline ``operations``."""
    what = kind(operation)
    if what in ("create", "drop"):
        enum = ENUM(*operation.enum_values, name=operation.name,
                    schema=schema_of(operation, default_schema))
        operations.execute(CreateEnumType(enum) if what == "create" else DropEnumType(enum))
    elif what == "sync":
        type(operation).sync_enum_values(
            operations, operation.schema, operation.name, list(operation.new_values),
            list(operation.affected_columns),
            indexes_to_recreate=list(operation.indexes_to_recreate))
    else:
        raise TypeError(f"{type(operation).__name__} of {EXTENSION} is not written here")


def tidy(text: str) -> str:
    """The extension's SQL as a reviewer reads it: each statement's lines after its first
    dedented under it by four spaces (its text carries its Python source's indentation)."""
    statements = []
    for statement in text.split("\n\n"):
        first, _, rest = statement.strip("\n").lstrip().partition("\n")
        rest = textwrap.indent(textwrap.dedent(rest), "    ") if rest else ""
        statements.append(first + ("\n" + rest if rest else ""))
    return "\n\n".join(statements)


def described(operation: Any, default_schema: str) -> str:
    """The operation as ``check --models`` names a difference."""
    schema = schema_of(operation, default_schema)
    name = f"{schema}.{operation.name}" if schema else str(operation.name)
    what = kind(operation)
    if what == "create":
        return f"enum type {name} is in the models, not in the migrations"
    if what == "drop":
        return f"enum type {name} is in the migrations, not in the models"
    if what == "add":
        _, added = changed_values(operation)
        return f"enum {name} lacks {_listed(added)} in the migrations"
    return (f"enum {name} has ({_listed(operation.old_values)}) in the migrations, "
            f"({_listed(operation.new_values)}) in the models")


def changed_values(operation: Any) -> tuple[list[str], list[str]]:
    """The values a ``sync`` removes and the ones it adds."""
    old: Sequence[str] = operation.old_values
    new: Sequence[str] = operation.new_values
    return [v for v in old if v not in new], [v for v in new if v not in old]


def _listed(values: Any) -> str:
    return ", ".join(repr(str(value)) for value in values)
