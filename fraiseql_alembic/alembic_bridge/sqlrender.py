"""Alembic's operations rendered as PostgreSQL SQL for a migration file, safe by default.

Every statement is written by Alembic's own operations in an offline (``as_sql``)
context with the PostgreSQL dialect and literal binds, one operation at a time, so
that a comment can go above the one that loses data.  Before that, the up section's
operations are made safe for a table that already exists (rules in docs/autogenerate.md):

- ``CREATE INDEX`` and ``DROP INDEX`` become ``... CONCURRENTLY`` (the runner sends them
  outside the transaction, each in a segment of its own);
- a ``UNIQUE`` constraint becomes a unique index built concurrently, then attached
  with ``ADD CONSTRAINT ... UNIQUE USING INDEX``;
- a foreign key or CHECK constraint is added ``NOT VALID`` and validated by
  ``VALIDATE CONSTRAINT`` at the end of the section, which then runs
  ``transaction:false`` so the validation does not hold the lock the ADD took (as it
  does when it adds an enum value: PostgreSQL refuses a new value in the transaction
  that added it);
- ``SET NOT NULL`` becomes a ``CHECK (col IS NOT NULL) NOT VALID``, validated, then
  ``SET NOT NULL`` (which skips its scan) and the CHECK dropped.

Dropped tables and columns and narrowed types are written, with a ``-- DATA LOSS``
comment; the down section is Alembic's reverse of the (unchanged) operations.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from alembic.operations import Operations, ops
from alembic.runtime.migration import MigrationContext
from sqlalchemy import types as sqltypes
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import CreateEnumType, DropEnumType
from sqlalchemy.schema import CreateSchema, DropSchema

from . import pgenum
from .autogen import Comparison, EnumType

#: The comment above a statement that loses data.
DATA_LOSS = "-- DATA LOSS:"
_MAX_NAME = 63  # PostgreSQL's identifier length (NAMEDATALEN - 1)


@dataclass(frozen=True)
class Rendered:
    """The two sections of a generated migration, and what its header says."""

    up: str
    down: str
    header: tuple[str, ...]
    up_transaction: bool  # False: the up section runs transaction:false
    data_loss: tuple[str, ...]  # what the up section destroys, one line each
    warnings: tuple[str, ...]  # what may fail on a table with rows


@dataclass
class _Plan:
    new_tables: set[tuple[str | None, str]]
    validations: list[tuple[str | None, str, str]] = field(default_factory=list)
    late: list[ops.MigrateOperation] = field(default_factory=list)
    data_loss: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    adds_values: bool = False  # the up section adds an enum value (alembic-postgresql-enum)


class _Writer:
    """An offline Alembic context writing PostgreSQL SQL to a buffer, one chunk per call."""

    def __init__(self, known_enums: frozenset[tuple[str | None, str]],
                 default_schema: str) -> None:
        self.default_schema = default_schema
        self.buffer = io.StringIO()
        context = MigrationContext.configure(
            dialect_name="postgresql",
            # a named paramstyle, as Alembic's offline templates: with psycopg2's pyformat
            # every % of a literal (LIKE '%@%') would be written doubled
            dialect_opts={"paramstyle": "named"},
            opts={"as_sql": True, "output_buffer": self.buffer, "literal_binds": True},
        )
        # SQLAlchemy creates an enum type with the first table that uses it unless its
        # DDL runner (Alembic's impl) has seen it: we write every CREATE TYPE ourselves
        context.impl.memo["pg_enum"] = set(known_enums)
        self.operations = Operations(context)
        self.preparer = context.dialect.identifier_preparer
        self.chunks: list[str] = []

    def invoke(self, operation: ops.MigrateOperation, comment: str | None = None) -> None:
        if isinstance(operation, ops.OpContainer):
            for each in operation.ops:
                self.invoke(each)
            return
        if isinstance(operation, ops.AlterColumnOp) and not operation.has_changes():
            return
        if pgenum.is_operation(operation):  # alembic-postgresql-enum's
            self._capture(lambda: pgenum.invoke(self.operations, operation,
                                                self.default_schema), comment, pgenum.tidy)
            return
        self._capture(lambda: self.operations.invoke(operation), comment)

    def execute(self, statement: Any, comment: str | None = None) -> None:
        self._capture(lambda: self.operations.execute(statement), comment)

    def _capture(self, run: Any, comment: str | None,
                 tidy: Callable[[str], str] | None = None) -> None:
        start = len(self.buffer.getvalue())
        run()
        written = self.buffer.getvalue()[start:].strip()
        if tidy is not None:
            written = tidy(written)
        # SQLAlchemy ends the lines of a CREATE TABLE with ", ": no trailing blanks in a file
        text = "\n".join(line.rstrip() for line in written.splitlines())
        if text.endswith(";;"):  # an extension's SQL with its own ";" (alembic-utils)
            text = text[:-1]
        if text:
            self.chunks.append(f"{comment}\n{text}" if comment else text)

    def table(self, schema: str | None, name: str) -> str:
        quoted = self.preparer.quote(name)
        return f"{self.preparer.quote_schema(schema)}.{quoted}" if schema else quoted

    def text(self) -> str:
        return "\n\n".join(self.chunks) + ("\n" if self.chunks else "")


def render(comparison: Comparison) -> Rendered:
    """The up and down sections for ``comparison`` (see the module docstring)."""
    upgrade = comparison.upgrade
    for operation in _flat(upgrade):
        _name_constraint(operation)
    pgenum.hoist(upgrade, comparison.enum_columns, comparison.default_schema)
    downgrade = upgrade.reverse()  # from the operations as the models state them
    plan = _Plan({(op.schema, op.table_name) for op in _flat(upgrade)
                  if isinstance(op, ops.CreateTableOp)})
    _suspected_renames(upgrade, plan)

    up = _Writer(comparison.known_enums, comparison.default_schema)
    for new_schema in comparison.new_schemas:
        up.execute(CreateSchema(new_schema))
    for enum in comparison.new_enums:
        up.execute(CreateEnumType(enum.model))
    for current, model in comparison.added_values:
        _add_values(up, current, model)
    for operation in _flat(upgrade):
        _write_safely(up, operation, plan)
    for schema, table, name in plan.validations:
        up.execute(f"ALTER TABLE {up.table(schema, table)} VALIDATE CONSTRAINT "
                   f"{up.preparer.quote(name)}")
    for operation in plan.late:
        up.invoke(operation)

    down = _Writer(comparison.known_enums, comparison.default_schema)
    for operation in _flat(downgrade):
        down.invoke(operation)
    for enum in reversed(comparison.new_enums):
        down.execute(DropEnumType(enum.model))
    for new_schema in reversed(comparison.new_schemas):
        down.execute(DropSchema(new_schema))

    header = list(plan.notes)
    why = [reason for reason, needed in (
        ("VALIDATE CONSTRAINT does not hold the lock its ADD CONSTRAINT took",
         plan.validations),
        ("an enum value it adds can be used by the statements after it",
         comparison.added_values or plan.adds_values)) if needed]
    if why:
        header.append(
            f"The up section runs transaction:false: each statement commits on its own, so "
            f"that {' and '.join(why)}; an interrupted run resumes at the statement that "
            "did not complete"
        )
    header += [f"DATA LOSS: {line}" for line in plan.data_loss]
    header += [f"WARNING: {line}" for line in plan.warnings]
    header += comparison.notes
    return Rendered(up.text(), down.text(), tuple(header), not why,
                    tuple(plan.data_loss), tuple(plan.warnings))


def _flat(container: ops.OpContainer) -> Iterator[Any]:
    """The operations, with a table's ModifyTableOps opened (in order)."""
    for operation in container.ops:
        if isinstance(operation, ops.ModifyTableOps):
            yield from operation.ops
        else:
            yield operation


def _key(operation: Any) -> tuple[str | None, str]:
    if isinstance(operation, ops.CreateForeignKeyOp):
        return operation.kw.get("source_schema"), operation.source_table
    return getattr(operation, "schema", None), str(operation.table_name)


def _write_safely(writer: _Writer, operation: Any, plan: _Plan) -> None:
    if pgenum.is_operation(operation):
        _enum_operation(writer, operation, plan)
        return
    existing = _key(operation) not in plan.new_tables if hasattr(
        operation, "table_name") or isinstance(operation, ops.CreateForeignKeyOp) else False
    shown = writer.table(*_key(operation)) if existing else ""
    if isinstance(operation, ops.DropTableOp):
        line = f"drops table {shown} and every row in it"
        plan.data_loss.append(line)
        writer.invoke(operation, f"{DATA_LOSS} {line}")
        return
    if not existing:
        writer.invoke(operation)
        return
    if isinstance(operation, ops.CreateIndexOp | ops.DropIndexOp):
        operation.kw["postgresql_concurrently"] = True
    elif isinstance(operation, ops.CreateUniqueConstraintOp):
        writer.invoke(ops.CreateIndexOp(
            str(operation.constraint_name), operation.table_name, list(operation.columns),
            schema=operation.schema, unique=True, postgresql_concurrently=True))
        writer.execute(f"ALTER TABLE {shown} ADD CONSTRAINT "
                       f"{writer.preparer.quote(str(operation.constraint_name))} UNIQUE USING "
                       f"INDEX {writer.preparer.quote(str(operation.constraint_name))}")
        return
    elif isinstance(operation, ops.CreateForeignKeyOp | ops.CreateCheckConstraintOp):
        operation.kw["postgresql_not_valid"] = True
        plan.validations.append((*_key(operation), str(operation.constraint_name)))
    elif isinstance(operation, ops.DropColumnOp):
        line = f"drops column {shown}.{operation.column_name} and its values"
        plan.data_loss.append(line)
        writer.invoke(operation, f"{DATA_LOSS} {line}")
        return
    elif isinstance(operation, ops.AddColumnOp):
        column = operation.column
        # Alembic's add_column also writes the column's UNIQUE, foreign keys and index
        # (index=True), which autogenerate lists as operations of their own (made safe above)
        bare = column._copy()  # noqa: SLF001  (SQLAlchemy's copy of an unattached column)
        bare.unique, bare.index = False, False
        bare.constraints, bare.foreign_keys = set(), set()
        operation = ops.AddColumnOp(operation.table_name, bare, schema=operation.schema,
                                    **operation.kw)
        if (not column.nullable and column.server_default is None
                and column.identity is None and not column.computed):
            plan.warnings.append(
                f"{shown}.{column.name} is added NOT NULL without a server default, which "
                f"fails if {shown} has rows: give the model a server_default, or add it "
                "nullable, fill it, then make it NOT NULL"
            )
    elif isinstance(operation, ops.AlterColumnOp):
        _alter_column(writer, operation, plan, shown)
        return
    writer.invoke(operation)


def _alter_column(writer: _Writer, operation: ops.AlterColumnOp, plan: _Plan,
                  shown: str) -> None:
    comment = None
    if operation.modify_type is not None and operation.existing_type is not None:
        loss = narrowing(operation.existing_type, operation.modify_type)
        if loss:
            line = f"{shown}.{operation.column_name}: {loss}"
            plan.data_loss.append(line)
            comment = f"{DATA_LOSS} {line}"
    if operation.modify_nullable is False and operation.existing_nullable is not False:
        name = _limited(f"{operation.table_name}_{operation.column_name}_not_null")
        plan.warnings.append(
            f"{shown}.{operation.column_name} becomes NOT NULL: a row holding NULL makes its "
            f"VALIDATE fail; the run stops there, and resumes there once they are filled "
            f"(UPDATE {shown} SET {operation.column_name} = ... WHERE {operation.column_name} "
            "IS NULL)"
        )
        operation.modify_nullable = None
        writer.invoke(operation, comment)
        writer.invoke(ops.CreateCheckConstraintOp(
            name, operation.table_name,
            f"{writer.preparer.quote(operation.column_name)} IS NOT NULL",
            schema=operation.schema, postgresql_not_valid=True))
        plan.validations.append((operation.schema, operation.table_name, name))
        plan.late.append(ops.AlterColumnOp(
            operation.table_name, operation.column_name, schema=operation.schema,
            modify_nullable=False, existing_type=operation.modify_type
            or operation.existing_type))
        plan.late.append(ops.DropConstraintOp(name, operation.table_name, type_="check",
                                              schema=operation.schema))
        return
    writer.invoke(operation, comment)


def _add_values(writer: _Writer, current: EnumType, model: EnumType) -> None:
    """``ALTER TYPE ... ADD VALUE IF NOT EXISTS`` for each value the models add, in the
    models' place (after the value before it, or before the first one)."""
    name = writer.table(current.schema, current.name)
    previous: str | None = None
    for value in model.values:
        if value not in current.values:
            where = (f" AFTER {_literal(previous)}" if previous is not None
                     else f" BEFORE {_literal(current.values[0])}" if current.values else "")
            writer.execute(f"ALTER TYPE {name} ADD VALUE IF NOT EXISTS {_literal(value)}{where}")
        previous = value


def _enum_operation(writer: _Writer, operation: Any, plan: _Plan) -> None:
    """An operation of alembic-postgresql-enum (see :mod:`.pgenum`) in the up section."""
    what = pgenum.kind(operation)
    schema = pgenum.schema_of(operation, writer.default_schema)
    shown = writer.table(schema, str(operation.name))
    if what == "add":
        _add_values(writer, EnumType(schema, str(operation.name), tuple(operation.old_values)),
                    EnumType(schema, str(operation.name), tuple(operation.new_values)))
        plan.adds_values = True
        added = [value for value in operation.new_values if value not in operation.old_values]
        plan.notes.append(
            f"Enum {shown}: the up section adds {', '.join(map(repr, added))}; the down "
            "section recreates the type without them (alembic-postgresql-enum's "
            "sync_enum_values), which fails if a row holds one"
        )
        return
    if what == "sync":
        removed, added = pgenum.changed_values(operation)
        change = (f"drop {', '.join(map(repr, removed))}" if removed
                  else "change the order of its values")
        plan.warnings.append(
            f"enum {shown}: the models {change}: the up section recreates the type "
            "(alembic-postgresql-enum's sync_enum_values) and converts every column that "
            "uses it (a table rewrite under ACCESS EXCLUSIVE), which fails if a row holds a "
            "value that is gone"
        )
        if removed and added:
            renames = "; ".join(f"ALTER TYPE {shown} RENAME VALUE {_literal(old)} TO "
                                f"{_literal(new)}" for old, new in zip(removed, added,
                                                                       strict=False))
            plan.notes.append(
                f"Rename? enum {shown} loses {', '.join(map(repr, removed))} and gains "
                f"{', '.join(map(repr, added))}: if it is a rename, replace the statements "
                f"from ALTER TYPE {shown} RENAME TO ... to DROP TYPE ..._old with {renames} "
                "(and the reverse below -- migrate:down), which keeps the rows and rewrites "
                "nothing"
            )
    writer.invoke(operation)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _name_constraint(operation: Any) -> None:
    """An unnamed foreign key or unique constraint gets PostgreSQL's own default name, so
    that it can be validated, attached and dropped by name."""
    if isinstance(operation, ops.CreateForeignKeyOp) and operation.constraint_name is None:
        operation.constraint_name = _limited(
            "_".join([operation.source_table, *operation.local_cols, "fkey"]))
    elif (isinstance(operation, ops.CreateUniqueConstraintOp)
          and operation.constraint_name is None):
        operation.constraint_name = _limited(
            "_".join([operation.table_name, *map(str, operation.columns), "key"]))


def _limited(name: str) -> str:
    return name.encode("utf-8")[:_MAX_NAME].decode("utf-8", "ignore")


def _suspected_renames(upgrade: ops.UpgradeOps, plan: _Plan) -> None:
    """A column dropped and one added with the same type in one table, or a table dropped
    and one created with the same columns: perhaps a rename, which keeps the data."""
    for container in upgrade.ops:
        if isinstance(container, ops.ModifyTableOps):
            dropped = [op for op in container.ops if isinstance(op, ops.DropColumnOp)]
            added = [op for op in container.ops if isinstance(op, ops.AddColumnOp)]
            for gone in dropped:
                reverse = gone.to_column()
                for new in added:
                    if _same_type(reverse.type, new.column.type):
                        plan.notes.append(
                            f"Rename? {container.table_name}.{gone.column_name} is dropped and "
                            f"{container.table_name}.{new.column.name} added with the same "
                            f"type: if it is a rename, replace both with ALTER TABLE "
                            f"{container.table_name} RENAME COLUMN {gone.column_name} TO "
                            f"{new.column.name} (and the reverse below -- migrate:down) to "
                            "keep the data"
                        )
    dropped_tables = [op for op in upgrade.ops if isinstance(op, ops.DropTableOp)]
    created = [op for op in upgrade.ops if isinstance(op, ops.CreateTableOp)]
    for old in dropped_tables:
        columns = sorted(column.name for column in old.to_table().columns)
        for table in created:
            if columns == sorted(column.name for column in table.to_table().columns):
                plan.notes.append(
                    f"Rename? table {old.table_name} is dropped and {table.table_name} "
                    f"created with the same columns: if it is a rename, replace both with "
                    f"ALTER TABLE {old.table_name} RENAME TO {table.table_name} (and the "
                    "reverse below -- migrate:down) to keep the rows"
                )


def _same_type(left: Any, right: Any) -> bool:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return bool(left.compile(dialect=dialect) == right.compile(dialect=dialect))


_INTEGERS = {sqltypes.SmallInteger: 1, sqltypes.Integer: 2, sqltypes.BigInteger: 3}


def narrowing(old: Any, new: Any) -> str | None:
    """Why changing a column from ``old`` to ``new`` may lose data or fail, or None when
    every value fits (a longer or unlimited string, a wider integer or numeric)."""
    if isinstance(old, sqltypes.String) and isinstance(new, sqltypes.String):
        if new.length is None or (old.length is not None and new.length >= old.length):
            return None
        return f"type {old} -> {new} cuts longer values (the ALTER fails on one)"
    rank_old = next((rank for kind, rank in _INTEGERS.items() if type(old) is kind), None)
    rank_new = next((rank for kind, rank in _INTEGERS.items() if type(new) is kind), None)
    if rank_old is not None and rank_new is not None:
        return None if rank_new >= rank_old else (
            f"type {old} -> {new} is narrower (the ALTER fails on a value out of range)")
    if isinstance(old, sqltypes.Numeric) and isinstance(new, sqltypes.Numeric) and not (
            isinstance(old, sqltypes.Float) or isinstance(new, sqltypes.Float)):
        if new.precision is None:
            return None
        if old.precision is not None and new.precision >= old.precision and (
                new.scale or 0) >= (old.scale or 0) and new.precision - (new.scale or 0) >= (
                old.precision - (old.scale or 0)):
            return None
        return f"type {old} -> {new} rounds or refuses values that no longer fit"
    if rank_old is not None and isinstance(new, sqltypes.Numeric) and not isinstance(
            new, sqltypes.Float) and new.precision is None:
        return None
    return (f"type {old} -> {new} converts every value, and may lose data or fail (a USING "
            "clause may be needed)")
