"""Autogenerate: compare the models with a database, and write the difference as SQL.

:func:`compare` runs Alembic's own ``produce_migrations`` on a connection to the shadow
database (the schema the migrations build) with ``compare_type``, server defaults,
comments, named CHECK constraints (Alembic's ``checkconstraint_byname`` plugin where the
installed Alembic has it), identity columns and the schemas the models name; our
bookkeeping tables are filtered out by :mod:`.filters`.  It also reads what Alembic does
not compare: PostgreSQL enum types and their values, schemas that do not exist yet, and
the views, functions and triggers it cannot see (enums are left to alembic-postgresql-enum
when it is loaded: :mod:`.pgenum`).  :mod:`.sqlrender` turns the result into the up and
down sections of a migration file.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from alembic import __version__ as alembic_version
from alembic.autogenerate import produce_migrations
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from sqlalchemy import CheckConstraint, Enum, MetaData
from sqlalchemy.engine import Connection

from ..engine.database import connect
from ..engine.translate import database_error
from ..errors import MigrationError, plural
from . import pgenum
from .filters import include_name, include_object
from .pgenum import EnumColumn

#: Alembic's opt-in comparator of CHECK constraints by name (in 1.19.2 and 1.20, not 1.18).
CHECK_PLUGIN = "alembic.ext.checkconstraint_byname"

_ENUMS = (
    "SELECT n.nspname, t.typname, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) "
    "FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid "
    "JOIN pg_namespace n ON n.oid = t.typnamespace GROUP BY 1, 2"
)
# The table columns of each enum type (or an array of it), with their defaults.
_ENUM_COLUMNS = """
SELECT tn.nspname, t.typname, cn.nspname, c.relname, a.attname, a.atttypid = t.typarray,
       pg_get_expr(d.adbin, d.adrelid)
FROM pg_type t JOIN pg_namespace tn ON tn.oid = t.typnamespace
JOIN pg_attribute a ON a.atttypid IN (t.oid, t.typarray) AND a.attnum > 0
  AND NOT a.attisdropped
JOIN pg_class c ON c.oid = a.attrelid AND c.relkind IN ('r', 'p')
JOIN pg_namespace cn ON cn.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE t.typtype = 'e' ORDER BY 3, 4, 5
"""
# Objects autogenerate does not compare, outside PostgreSQL's schemas and extensions.
_UNSEEN = """
SELECT
  (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('v', 'm') AND n.nspname <> 'information_schema'
      AND n.nspname !~ '^pg_'),
  (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                      AND d.objid = p.oid AND d.deptype = 'e')),
  (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal)
"""


@dataclass(frozen=True)
class EnumType:
    """A named PostgreSQL enum type: its schema (None: the default one), name, values."""

    schema: str | None
    name: str
    values: tuple[str, ...]
    model: Enum | None = None  # the models' type, when it comes from them


@dataclass
class Comparison:
    """What the models hold that the shadow database does not, and the other way round."""

    upgrade: ops.UpgradeOps
    default_schema: str
    new_schemas: tuple[str, ...] = ()
    new_enums: tuple[EnumType, ...] = ()
    # (the type in the database, in the models) when the models add values to it
    added_values: tuple[tuple[EnumType, EnumType], ...] = ()
    notes: list[str] = field(default_factory=list)  # for the file header
    # what this Alembic could not compare (also in notes): the commands say it too
    unchecked: list[str] = field(default_factory=list)
    known_enums: frozenset[tuple[str | None, str]] = frozenset()  # exist, or made here
    # the database's columns of each enum type (read when alembic-postgresql-enum is loaded)
    enum_columns: Mapping[tuple[str | None, str], tuple[EnumColumn, ...]] = field(
        default_factory=dict)

    @property
    def empty(self) -> bool:
        return (self.upgrade.is_empty() and not self.new_schemas and not self.new_enums
                and not self.added_values)


def compare(url: str, metadata: Sequence[MetaData]) -> Comparison:
    """The difference between ``metadata`` (the models) and the database at ``url``."""
    try:
        with connect(url) as connection:
            return _compare(connection, metadata)
    except MigrationError:
        raise
    except Exception as err:
        wrapped = database_error(err)
        if wrapped is None:
            raise
        raise wrapped from err


def options(metadata: Sequence[MetaData], *, schemas: Sequence[str] = ()) -> dict[str, Any]:
    """``context.configure`` options for comparing ``metadata``: types, server defaults,
    comments, named CHECK constraints, the ``schemas`` the models use (and no other), and
    the :mod:`.filters` that keep our bookkeeping tables out."""
    wanted = set(schemas)

    def name_filter(name: str | None, type_: str, parent_names: Mapping[str, Any]) -> bool:
        if type_ == "schema":
            return name is None or name in wanted
        return include_name(name, type_, parent_names)

    plugins = ["alembic.autogenerate.*"]
    if compares_named_checks():
        plugins.append(CHECK_PLUGIN)
    return {
        "target_metadata": list(metadata),
        "compare_type": True,
        "compare_server_default": True,
        "include_schemas": bool(wanted),
        "include_name": name_filter,
        "include_object": include_object,
        "autogenerate_plugins": plugins,
    }


def compares_named_checks() -> bool:
    """Whether the installed Alembic has :data:`CHECK_PLUGIN` (its ``alembic.ext`` package
    is missing altogether before 1.19)."""
    try:
        return importlib.util.find_spec(CHECK_PLUGIN) is not None
    except ModuleNotFoundError:
        return False


def schemas_of(metadata: Sequence[MetaData], default: str) -> list[str]:
    """The schemas the models name besides the default one."""
    return sorted({table.schema for each in metadata for table in each.tables.values()
                   if table.schema and table.schema != default})


def _compare(connection: Connection, metadata: Sequence[MetaData]) -> Comparison:
    default = str(connection.dialect.default_schema_name or "public")
    context = MigrationContext.configure(
        connection, opts=options(metadata, schemas=schemas_of(metadata, default)))
    script = produce_migrations(context, list(metadata))  # type: ignore[arg-type]
    assert script.upgrade_ops is not None
    comparison = comparison_of(connection, metadata, script.upgrade_ops)
    connection.rollback()  # it only read
    return comparison


def comparison_of(
    connection: Connection, metadata: Sequence[MetaData], upgrade: ops.UpgradeOps
) -> Comparison:
    """Alembic's ``upgrade`` operations, with what Alembic does not compare read from the
    database on ``connection``: schemas to create, enum types and values, unseen objects."""
    default = str(connection.dialect.default_schema_name or "public")
    schemas = schemas_of(metadata, default)
    existing = {str(row[0]) for row in connection.exec_driver_sql(
        "SELECT nspname FROM pg_namespace")}
    in_database = {
        (None if row[0] == default else str(row[0]), str(row[1])):
            EnumType(None if row[0] == default else str(row[0]), str(row[1]), tuple(row[2]))
        for row in connection.exec_driver_sql(_ENUMS)
    }
    comparison = Comparison(upgrade, default,
                            new_schemas=tuple(name for name in schemas if name not in existing))
    comparison.unchecked = _unchecked_constraints(metadata, upgrade)
    comparison.notes += comparison.unchecked
    models = _model_enums(metadata, default)
    if pgenum.active():  # alembic-postgresql-enum compares them: its operations are in upgrade
        comparison.known_enums = frozenset({*in_database, *models})
        columns: dict[tuple[str | None, str], list[EnumColumn]] = {}
        for row in connection.exec_driver_sql(_ENUM_COLUMNS):
            key = (None if row[0] == default else str(row[0]), str(row[1]))
            columns.setdefault(key, []).append(EnumColumn(
                str(row[2]), str(row[3]), str(row[4]), bool(row[5]), row[6]))
        comparison.enum_columns = {key: tuple(found) for key, found in columns.items()}
    else:
        _compare_enums(comparison, models, in_database)
    views, functions, triggers = connection.exec_driver_sql(_UNSEEN).one()
    unseen = [plural(count, kind) for count, kind in
              ((views, "view"), (functions, "function"), (triggers, "trigger")) if count]
    comparison.notes.append(
        "Not compared (autogenerate cannot see them, unless an extension such as "
        "alembic-utils registers them): views, functions, triggers, sequences' values, "
        "grants, policies"
        + (f"; the migrations' schema has {', '.join(unseen)}: change them by hand"
           if unseen else "")
    )
    return comparison


def _unchecked_constraints(metadata: Sequence[MetaData], upgrade: ops.UpgradeOps) -> list[str]:
    """Without Alembic's ``checkconstraint_byname`` (1.18 and older), the CHECK constraints of the
    models' tables that exist already are not compared: name them, once."""
    if compares_named_checks():
        return []
    created = {(op.schema, op.table_name) for op in upgrade.ops
               if isinstance(op, ops.CreateTableOp)}
    found = []
    for each in metadata:
        for table in each.tables.values():
            if (table.schema, table.name) in created:
                continue  # written with its new table
            for constraint in sorted(
                    (c for c in table.constraints if isinstance(c, CheckConstraint)),
                    key=lambda c: str(c.name) if isinstance(c.name, str) else ""):
                name = constraint.name if isinstance(constraint.name, str) else "unnamed"
                found.append(f"{table.fullname}.{name}")
    if not found:
        return []
    return [f"CHECK constraints on existing tables were not compared ({', '.join(found)}): "
            f"Alembic {alembic_version} has no {CHECK_PLUGIN} (newer Alembic releases "
            "compare named ones); compare them by hand, or upgrade Alembic"]


def _model_enums(metadata: Sequence[MetaData], default: str) -> dict[
        tuple[str | None, str], EnumType]:
    found: dict[tuple[str | None, str], EnumType] = {}
    for each in metadata:
        for table in each.tables.values():
            for column in table.columns:
                kind = getattr(column.type, "item_type", column.type)  # ARRAY(Enum)
                if isinstance(kind, Enum) and kind.native_enum and kind.name:
                    schema = kind.schema if kind.schema != default else None
                    key = (schema, str(kind.name))
                    found.setdefault(key, EnumType(schema, str(kind.name),
                                                   tuple(kind.enums), kind))
    return found


def _compare_enums(
    comparison: Comparison, models: Mapping[tuple[str | None, str], EnumType],
    in_database: Mapping[tuple[str | None, str], EnumType],
) -> None:
    comparison.new_enums = tuple(enum for key, enum in sorted(
        models.items(), key=lambda item: (item[0][0] or "", item[0][1]))
        if key not in in_database)
    added = []
    for key, model in models.items():
        current = in_database.get(key)
        if current is None or current.values == model.values:
            continue
        new_values = tuple(value for value in model.values if value not in current.values)
        if new_values:
            added.append((current, model))
            comparison.notes.append(
                f"Enum {_shown(current)}: the up section adds {', '.join(map(repr, new_values))}"
                "; PostgreSQL cannot remove an enum value, so the down section leaves them "
                "(a value added by ALTER TYPE ... ADD VALUE cannot be used in the same "
                "transaction)"
            )
        gone = [value for value in current.values if value not in model.values]
        if gone:
            comparison.notes.append(
                f"Enum {_shown(current)} has {', '.join(map(repr, gone))} in the database "
                "but not in the models, which autogenerate does not write (PostgreSQL cannot "
                "drop an enum value): rename the value (ALTER TYPE ... RENAME VALUE) or "
                "recreate the type by hand"
            )
        elif not new_values:
            comparison.notes.append(
                f"Enum {_shown(current)}: its values are in another order in the models; "
                "autogenerate does not reorder them"
            )
    comparison.added_values = tuple(added)
    compared = {schema for schema, _ in models} | {None}
    for key, enum in sorted(in_database.items(), key=lambda item: (item[0][0] or "", item[0][1])):
        if key not in models and enum.schema in compared:
            comparison.notes.append(
                f"Enum {_shown(enum)} is in the database but in no model; autogenerate "
                "does not drop it: drop it by hand once nothing uses it"
            )
    comparison.known_enums = frozenset({*in_database, *models})


def _shown(enum: EnumType) -> str:
    return f"{enum.schema}.{enum.name}" if enum.schema else enum.name

