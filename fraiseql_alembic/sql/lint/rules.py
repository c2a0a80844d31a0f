"""The rules (FQL001 ...): each matches a parsed statement and says why and what instead.

A new rule is a row of :data:`.ruletable.RULES` and a function called from
:func:`statement_hits` (and, if it needs to know what earlier statements did, a field of
the state in :mod:`.state`).  docs/lint.md describes every rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .nodes import (
    AlterTableType,
    ConstrType,
    DropBehavior,
    ObjectType,
    ast,
    enum_name,
)
from .state import (
    RELATION_KINDS,
    Catalog,
    FileState,
    Hit,
    location_of,
    shown,
    text_of,
    walk,
)
from .types import ColumnType, column_type, rewrites
from .volatility import volatile_call


def statement_hits(node: ast.Node, state: FileState, catalog: Catalog) -> Iterator[Hit]:
    """The hits of one parsed statement (the state is read, not changed)."""
    yield from _rules(node, state, catalog)
    yield from _new_enum_value_rule(node, state)


_WEAKER_THAN_ACCESS_EXCLUSIVE = {
    AlterTableType.AT_SetStatistics,
    AlterTableType.AT_SetOptions,
    AlterTableType.AT_ResetOptions,
    AlterTableType.AT_ValidateConstraint,
    AlterTableType.AT_ClusterOn,
    AlterTableType.AT_DropCluster,
    AlterTableType.AT_SetRelOptions,
    AlterTableType.AT_ResetRelOptions,
    AlterTableType.AT_ReplaceRelOptions,
    AlterTableType.AT_EnableTrig,
    AlterTableType.AT_EnableAlwaysTrig,
    AlterTableType.AT_EnableReplicaTrig,
    AlterTableType.AT_DisableTrig,
    AlterTableType.AT_EnableTrigAll,
    AlterTableType.AT_DisableTrigAll,
    AlterTableType.AT_EnableTrigUser,
    AlterTableType.AT_DisableTrigUser,
    AlterTableType.AT_AttachPartition,
}

_SERIAL_TYPES = frozenset({"serial", "serial2", "serial4", "serial8", "smallserial",
                           "bigserial"})


def _rules(node: ast.Node, state: FileState, catalog: Catalog) -> Iterator[Hit]:
    if (
        isinstance(node, ast.IndexStmt)
        and not node.concurrent
        and not state.is_new(node.relation)
        and (node.relation is None or node.relation.inh)  # ON ONLY a partitioned table
    ):
        table = shown(node.relation)
        yield Hit(
            "FQL001",
            f"CREATE INDEX on {table} without CONCURRENTLY blocks every write to {table} "
            "(SHARE lock) until the whole index is built",
            f"CREATE INDEX CONCURRENTLY {node.idxname or '...'} ON {table} (...); fraiseql "
            "runs it outside a transaction and resumes the file there if it is interrupted",
        )
    if isinstance(node, ast.AlterTableStmt) and node.relation is not None and not state.is_new(
        node.relation
    ):
        for command in node.cmds or ():
            yield from _alter_table_rules(node.relation, command, state, catalog)
    if isinstance(node, ast.RenameStmt) and node.relation is not None and not state.is_new(
        node.relation
    ):
        yield from _rename_rule(node)
    if isinstance(node, (ast.RenameStmt, ast.AlterObjectSchemaStmt)):
        yield from _schema_rename_rule(node, state)
    if isinstance(node, (ast.DropStmt, ast.TruncateStmt)):
        yield from _data_loss_rule(node, state)
    yield from _maintenance_rule(node, state)
    yield from _lock_timeout_rule(node, state)


def _alter_table_rules(
    relation: ast.RangeVar, command: ast.AlterTableCmd, state: FileState, catalog: Catalog
) -> Iterator[Hit]:
    table = shown(relation)
    subtype = command.subtype
    if subtype == AlterTableType.AT_AddColumn and isinstance(command.def_, ast.ColumnDef):
        yield from _add_column_rules(table, command.def_, state, catalog)
    elif subtype == AlterTableType.AT_AddConstraint and isinstance(command.def_, ast.Constraint):
        yield from _add_constraint_rules(table, command.def_)
    elif subtype == AlterTableType.AT_SetNotNull and not (
        state.session.postgres_version >= 12  # older releases scan all the same
        and catalog.proves_not_null(state.resolve(relation), text_of(command.name))
    ):
        column = command.name
        yield Hit(
            "FQL004",
            f"SET NOT NULL on {table}.{column} scans the whole table under ACCESS EXCLUSIVE "
            "(no reads or writes) to prove it holds no NULL",
            f"ALTER TABLE {table} ADD CONSTRAINT {relation.relname}_{column}_not_null CHECK "
            f"({column} IS NOT NULL) NOT VALID; in a later migration VALIDATE CONSTRAINT it, "
            "then SET NOT NULL (PostgreSQL 12+ skips the scan) and drop the constraint",
        )
    elif subtype == AlterTableType.AT_AlterColumnType and isinstance(command.def_,
                                                                       ast.ColumnDef):
        yield from _column_type_rule(relation, command.def_, text_of(command.name), state,
                                     catalog)
    elif subtype == AlterTableType.AT_DropColumn and not state.migration.reversible:
        yield Hit(
            "FQL007",
            f"DROP COLUMN {command.name} deletes the data of {table}.{command.name}, and this "
            "file has no down section: there is no way back",
            "write a `-- migrate:down` section that restores the column, take a backup "
            "before deploying, and drop the column only once no application code reads it",
        )


def _column_type_rule(relation: ast.RangeVar, definition: ast.ColumnDef, column: str,
                      state: FileState, catalog: Catalog) -> Iterator[Hit]:
    """FQL006 unless the change keeps the table as it is (:mod:`.types`)."""
    table = shown(relation)
    old = catalog.columns.get(state.resolve(relation), {}).get(column)
    new = column_type(definition.typeName)
    using = definition.raw_default
    plain = definition.collClause is None and (using is None or _is_column(using, column, new))
    version = state.session.postgres_version
    if old is not None and new is not None and plain and not rewrites(
        old, new, utc=state.utc, postgres_version=version
    ):
        return
    if old is None:
        change = (f"ALTER COLUMN {column} TYPE {new or '...'} rewrites {table} and rebuilds "
                  "its indexes under ACCESS EXCLUSIVE (lint cannot see the column's current "
                  "type: no migration here defines it), unless the change is "
                  "binary-compatible")
    elif not plain:
        change = (f"ALTER COLUMN {column} TYPE {new or '...'} with USING or COLLATE "
                  f"rewrites {table} and rebuilds its indexes under ACCESS EXCLUSIVE")
    else:
        utc_note = (" (timestamp and timestamptz convert in place only on PostgreSQL 12+ "
                    "with the session's TimeZone UTC)"
                    if {old.name, new.name if new else ""} == {"timestamp", "timestamptz"}
                    else "")
        change = (f"ALTER COLUMN {column} TYPE from {old} to {new} rewrites {table} and "
                  f"rebuilds its indexes under ACCESS EXCLUSIVE{utc_note}")
    yield Hit(
        "FQL006",
        change,
        "add a column of the new type, backfill it in batches, move the application to "
        "it, drop the old column in a later migration (changes PostgreSQL makes in place, "
        "such as varchar(n) to text, are not reported when lint knows the old type)",
        location_of(definition),
    )


def _is_column(expression: ast.Node | None, column: str, new: ColumnType | None) -> bool:
    """``USING col`` or ``USING col::<the new type>``: the conversion PostgreSQL would
    make anyway."""
    if isinstance(expression, ast.TypeCast):
        if new is None or column_type(expression.typeName) != new:
            return False
        expression = expression.arg
    if not isinstance(expression, ast.ColumnRef):
        return False
    fields = expression.fields or ()
    return len(fields) == 1 and text_of(getattr(fields[0], "sval", None)) == column


def _add_column_rules(table: str, column: ast.ColumnDef, state: FileState,
                      catalog: Catalog) -> Iterator[Hit]:
    constraints = [c for c in column.constraints or () if isinstance(c, ast.Constraint)]
    kinds = {constraint.contype for constraint in constraints}
    default = next((c for c in constraints if c.contype == ConstrType.CONSTR_DEFAULT), None)
    type_name = (
        column.typeName.names[-1].sval
        if column.typeName is not None and column.typeName.names
        else ""
    )
    name = column.colname
    where = location_of(column)
    if {ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY} & kinds:
        yield Hit(
            "FQL001",
            f"ADD COLUMN {name} UNIQUE / PRIMARY KEY builds an index on {table} while holding "
            "ACCESS EXCLUSIVE (no reads or writes) until it is built",
            f"add the column plain, CREATE UNIQUE INDEX CONCURRENTLY on it, then ALTER TABLE "
            f"{table} ADD CONSTRAINT ... UNIQUE USING INDEX ...",
            where,
        )
    rewrites = (
        ConstrType.CONSTR_IDENTITY in kinds
        or ConstrType.CONSTR_GENERATED in kinds
        or type_name in _SERIAL_TYPES
    )
    if (
        {ConstrType.CONSTR_NOTNULL, ConstrType.CONSTR_PRIMARY} & kinds
        and default is None
        and not rewrites
    ):
        yield Hit(
            "FQL002",
            f"ADD COLUMN {name} NOT NULL without a DEFAULT fails as soon as {table} has a row "
            "(existing rows would hold NULL)",
            "give it a constant DEFAULT (instant since PostgreSQL 11), or add it nullable, "
            "backfill it, and SET NOT NULL the safe way (see FQL004)",
            where,
        )
    for constraint in constraints:
        if constraint.contype == ConstrType.CONSTR_FOREIGN:
            target = shown(constraint.pktable) if constraint.pktable is not None else "..."
            yield Hit(
                "FQL005",
                f"ADD COLUMN {name} ... REFERENCES {target} adds a FOREIGN KEY that checks "
                f"every row of {table} while holding ACCESS EXCLUSIVE on it and blocking "
                f"writes to {target}",
                f"add the column without REFERENCES, then `ALTER TABLE {table} ADD CONSTRAINT "
                f"... FOREIGN KEY ({name}) REFERENCES {target} NOT VALID` (instant), and "
                "VALIDATE CONSTRAINT it in a later migration",
                location_of(constraint),
            )
        elif constraint.contype == ConstrType.CONSTR_CHECK:
            yield Hit(
                "FQL005",
                f"ADD COLUMN {name} ... CHECK scans every row of {table} under ACCESS "
                "EXCLUSIVE to prove the check holds",
                f"add the column without CHECK, then `ALTER TABLE {table} ADD CONSTRAINT ... "
                "CHECK (...) NOT VALID` (instant), and VALIDATE CONSTRAINT it in a later "
                "migration",
                location_of(constraint),
            )
    volatile = volatile_call(default.raw_expr, state, catalog) if default is not None else None
    if volatile is not None or rewrites:
        if volatile is not None:
            function, known = volatile
            what = (f"DEFAULT calls {function}(), which is volatile" if known else
                    f"DEFAULT calls {function}(), which lint cannot prove immutable or stable "
                    "(not a built-in function, and not created IMMUTABLE or STABLE by these "
                    "migrations)")
        else:
            what = (f"type {type_name} takes its default from a sequence" if type_name in
                    _SERIAL_TYPES else "an identity or generated column is computed for every "
                    "row")
        yield Hit(
            "FQL003",
            f"ADD COLUMN {name}: {what}, so PostgreSQL rewrites all of {table} and its indexes "
            "under ACCESS EXCLUSIVE (constants and immutable or stable expressions such as "
            "now() are instant since PostgreSQL 11)",
            "add the column without that default, then ALTER COLUMN ... SET DEFAULT in a "
            "separate statement (new rows only) and backfill existing rows in batches",
            where,
        )


def _add_constraint_rules(table: str, constraint: ast.Constraint) -> Iterator[Hit]:
    name = constraint.conname or "..."
    where = location_of(constraint)
    if constraint.contype in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY,
                              ConstrType.CONSTR_EXCLUSION) and not constraint.indexname:
        yield Hit(
            "FQL001",
            f"ADD CONSTRAINT {name} builds its index on {table} while holding ACCESS "
            "EXCLUSIVE (no reads or writes) until it is built",
            f"CREATE UNIQUE INDEX CONCURRENTLY first, then ALTER TABLE {table} ADD CONSTRAINT "
            f"{name} UNIQUE USING INDEX <that index> (instant)",
            where,
        )
    if constraint.contype in (ConstrType.CONSTR_FOREIGN, ConstrType.CONSTR_CHECK) and (
        not constraint.skip_validation
    ):
        if constraint.contype == ConstrType.CONSTR_FOREIGN:
            target = shown(constraint.pktable) if constraint.pktable is not None else "..."
            what = (f"FOREIGN KEY {name} checks every row of {table} while blocking writes to "
                    f"{table} and {target}")
        else:
            what = f"CHECK {name} scans every row of {table} under ACCESS EXCLUSIVE"
        yield Hit(
            "FQL005",
            what,
            f"add it with NOT VALID (instant; new rows are checked), then `ALTER TABLE {table} "
            f"VALIDATE CONSTRAINT {name}` in a later migration (reads and writes go on)",
            where,
        )


def _rename_rule(node: ast.RenameStmt) -> Iterator[Hit]:
    table = shown(node.relation)
    if node.renameType == ObjectType.OBJECT_COLUMN:
        what = f"RENAME COLUMN {node.subname} TO {node.newname} on {table}"
        old = f"{table}.{node.subname}"
    elif node.renameType in (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_VIEW,
                             ObjectType.OBJECT_MATVIEW):
        what, old = f"RENAME {table} TO {node.newname}", table
    else:
        return
    yield _breaking_rename(
        what, old,
        "expand and contract: add the new name (column, or a view), write to both, move "
        "readers over, and drop the old name in a later migration",
    )


def _breaking_rename(what: str, old: str, fix: str) -> Hit:
    """FQL008: ``what`` renames ``old``, which running copies of the application still use."""
    return Hit(
        "FQL008",
        f"{what} breaks every running copy of the application that still uses {old} "
        "(deploys are not atomic)",
        fix,
    )


def _data_loss_rule(node: ast.DropStmt | ast.TruncateStmt, state: FileState) -> Iterator[Hit]:
    """FQL007: DROP TABLE, DROP SCHEMA ... CASCADE, TRUNCATE with no way back."""
    if state.migration.reversible:
        return
    if isinstance(node, ast.TruncateStmt):
        for relation in node.relations or ():
            if state.is_new(relation):
                continue
            yield Hit(
                "FQL007",
                f"TRUNCATE {shown(relation)} deletes every row of it, and this file has no "
                "down section: there is no way back",
                "take a backup before deploying and write a `-- migrate:down` section that "
                "says how to restore the rows (or silence this rule if they are disposable)",
                location_of(relation),
            )
        return
    if node.removeType == ObjectType.OBJECT_TABLE:
        for names in node.objects or ():
            parts = [part.sval for part in names]
            if state.qualified(parts) in state.created:
                continue
            yield Hit(
                "FQL007",
                f"DROP TABLE {'.'.join(text_of(part) for part in parts)} deletes its data, and "
                "this file has no down section: there is no way back",
                "write a `-- migrate:down` section that recreates it, take a backup before "
                "deploying, and drop it only once no application code uses it",
            )
    elif node.removeType == ObjectType.OBJECT_SCHEMA and node.behavior == DropBehavior.DROP_CASCADE:
        for name in node.objects or ():
            schema = text_of(getattr(name, "sval", None))
            if schema in state.created_schemas:
                continue
            yield Hit(
                "FQL007",
                f"DROP SCHEMA {schema} CASCADE deletes every table, view, function and type "
                f"in {schema} with their data, and this file has no down section: there is no "
                "way back",
                "drop the objects one by one (each DROP is then linted), write a "
                "`-- migrate:down` section, and take a backup before deploying",
            )


def _schema_rename_rule(
    node: ast.RenameStmt | ast.AlterObjectSchemaStmt, state: FileState
) -> Iterator[Hit]:
    """FQL008 for names the application resolves: ALTER SCHEMA ... RENAME, SET SCHEMA."""
    if isinstance(node, ast.RenameStmt):
        if node.renameType != ObjectType.OBJECT_SCHEMA or node.subname in state.created_schemas:
            return
        what, old = f"ALTER SCHEMA {node.subname} RENAME TO {node.newname}", node.subname
        old = f"schema {old}"
    elif node.objectType in RELATION_KINDS and node.relation is not None and not (
        state.is_new(node.relation)
    ):
        old = shown(node.relation)
        what = f"SET SCHEMA {node.newschema} on {old}"
    else:
        return
    yield _breaking_rename(
        what, old,
        "keep the old name working while the application moves: create the new schema and "
        "views (or a search_path that holds both), switch the application, and move or drop "
        "the old name in a later migration",
    )


def _maintenance_rule(node: ast.Node, state: FileState) -> Iterator[Hit]:
    """FQL012: VACUUM FULL, CLUSTER, REINDEX without CONCURRENTLY on existing tables."""
    if isinstance(node, ast.VacuumStmt) and any(
        option.defname == "full" and _enabled(option) for option in node.options or ()
    ):
        relations = [item.relation for item in node.rels or () if item.relation is not None]
        if not relations:
            yield Hit("FQL012", _REWRITE.format(what="VACUUM FULL", table="every table of "
                       "the database"), _REWRITE_FIX)
        for relation in relations:
            if not state.is_new(relation):
                yield Hit("FQL012", _REWRITE.format(what="VACUUM FULL", table=shown(relation)),
                           _REWRITE_FIX, location_of(relation))
    elif isinstance(node, ast.ClusterStmt):
        if node.relation is None:
            yield Hit("FQL012", _REWRITE.format(what="CLUSTER", table="every table clustered "
                       "before"), _REWRITE_FIX)
        elif not state.is_new(node.relation):
            yield Hit("FQL012", _REWRITE.format(what="CLUSTER", table=shown(node.relation)),
                       _REWRITE_FIX, location_of(node.relation))
    elif isinstance(node, ast.ReindexStmt) and not any(
        option.defname == "concurrently" and _enabled(option) for option in node.params or ()
    ):
        if node.relation is not None:
            key = state.resolve(node.relation)
            if key in state.created or key in state.created_indexes:
                return
            target = shown(node.relation)
        else:
            target = f"every index of {node.name or 'the database'}"
        kind = enum_name(node.kind).removeprefix("REINDEX_OBJECT_")
        yield Hit(
            "FQL012",
            f"REINDEX {kind} {target} without CONCURRENTLY blocks every write to the table "
            "until the indexes are rebuilt, and every read that would use an index being "
            "rebuilt (ACCESS EXCLUSIVE on it)",
            f"REINDEX {kind} CONCURRENTLY {node.relation.relname if node.relation else '...'} "
            "(PostgreSQL 12+): reads and writes go on; fraiseql runs it outside a transaction",
            location_of(node.relation),
        )


_REWRITE = ("{what} rewrites {table} under ACCESS EXCLUSIVE: no reads or writes until the "
            "whole table and its indexes are copied")
_REWRITE_FIX = ("run plain VACUUM (no lock on reads or writes) or pg_repack / pg_squeeze, "
                "which rebuild a table online, outside migrations")


def _enabled(option: ast.DefElem) -> bool:
    """``FULL`` / ``FULL true`` / ``FULL on`` / ``FULL 1``, not ``FULL false``."""
    value = option.arg
    if value is None:
        return True
    if isinstance(value, ast.Boolean):
        return bool(value.boolval)
    if isinstance(value, ast.Integer):
        return value.ival != 0
    return text_of(getattr(value, "sval", None)).lower() not in ("false", "off", "0", "no")


def _new_enum_value_rule(node: ast.Node, state: FileState) -> Iterator[Hit]:
    """FQL013: a value ALTER TYPE ... ADD VALUE added earlier in the same transaction."""
    if not state.new_enum_values or isinstance(node, ast.AlterEnumStmt):
        return
    constants = [(found.val.sval, location_of(found)) for found in walk(node)
                 if isinstance(found, ast.A_Const) and isinstance(found.val, ast.String)
                 and found.val.sval is not None]
    for value, location in constants:
        added = state.new_enum_values.get(value)
        if added is None:
            continue
        enum, line = added
        yield Hit(
            "FQL013",
            f"'{value}' was added to enum {enum} on line {line} in the same transaction; "
            f"PostgreSQL 12+ refuses to use it before that transaction commits (`unsafe use "
            f"of new value \"{value}\" of enum type {enum}`), and PostgreSQL 11 and older "
            "refuse ALTER TYPE ... ADD VALUE inside a transaction at all",
            "put ALTER TYPE ... ADD VALUE in a migration of its own, numbered before the one "
            "that uses the value: each migration commits before the next one starts",
            location,
        )
        return


def _lock_timeout_rule(node: ast.Node, state: FileState) -> Iterator[Hit]:
    if not _is_zero(state.lock_timeout):
        return
    for target, what in _access_exclusive(node, state):
        yield Hit(
            "FQL009",
            f"{what} takes ACCESS EXCLUSIVE on {target} with lock_timeout disabled "
            f"({state.lock_timeout_source}): while it waits behind a long query, every "
            f"other query on {target} queues behind it",
            "keep a lock_timeout (the default 10s gives up and retries): remove "
            "lock_timeout:0, or write `-- migrate:up lock_timeout:5s` or `SET LOCAL "
            "lock_timeout = '5s'`",
        )


def _access_exclusive(node: ast.Node, state: FileState) -> Iterator[tuple[str, str]]:
    """(relation, statement) for each existing relation ``node`` locks ACCESS EXCLUSIVE."""
    relations: list[ast.RangeVar] = []
    what = ""
    if isinstance(node, ast.AlterTableStmt) and node.relation is not None and any(
        needs_access_exclusive(command) for command in node.cmds or ()
    ):
        relations, what = [node.relation], "ALTER TABLE"
    elif isinstance(node, ast.RenameStmt) and node.relation is not None:
        relations, what = [node.relation], "ALTER ... RENAME"
    elif (
        isinstance(node, ast.AlterObjectSchemaStmt)
        and node.objectType in RELATION_KINDS
        and node.relation is not None
    ):
        relations, what = [node.relation], "ALTER ... SET SCHEMA"
    elif isinstance(node, ast.TruncateStmt):
        relations, what = list(node.relations or ()), "TRUNCATE"
    elif isinstance(node, ast.LockStmt) and node.mode == 8:  # AccessExclusiveLock
        relations, what = list(node.relations or ()), "LOCK TABLE"
    elif isinstance(node, ast.ClusterStmt) and node.relation is not None:
        relations, what = [node.relation], "CLUSTER"
    elif (
        isinstance(node, ast.RefreshMatViewStmt)
        and node.relation is not None
        and not node.concurrent
    ):
        relations, what = [node.relation], "REFRESH MATERIALIZED VIEW"
    elif isinstance(node, ast.VacuumStmt) and any(
        option.defname == "full" and _enabled(option) for option in node.options or ()
    ):
        relations = [item.relation for item in node.rels or () if item.relation is not None]
        what = "VACUUM FULL"
    elif isinstance(node, ast.DropStmt) and node.removeType in (
        ObjectType.OBJECT_TABLE, ObjectType.OBJECT_MATVIEW, ObjectType.OBJECT_INDEX
    ) and not node.concurrent:
        kind = "INDEX" if node.removeType == ObjectType.OBJECT_INDEX else "TABLE"
        for names in node.objects or ():
            parts = [part.sval for part in names]
            key = state.qualified(parts)
            if key not in state.created and key not in state.created_indexes:
                dropped = ".".join(parts)
                yield (f"the table of index {dropped}" if kind == "INDEX" else dropped,
                       f"DROP {kind} {dropped}")
        return
    for relation in relations:
        if not state.is_new(relation):
            yield shown(relation), what


def needs_access_exclusive(command: ast.AlterTableCmd) -> bool:
    """Whether an ALTER TABLE subcommand takes ACCESS EXCLUSIVE on the table."""
    if command.subtype in _WEAKER_THAN_ACCESS_EXCLUSIVE:
        return False
    return not (  # a foreign key takes SHARE ROW EXCLUSIVE
        command.subtype == AlterTableType.AT_AddConstraint
        and isinstance(command.def_, ast.Constraint)
        and command.def_.contype == ConstrType.CONSTR_FOREIGN
    )


_DURATION_NUMBER_RE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*[a-z]*\s*$", re.IGNORECASE)


def _is_zero(duration: str) -> bool:
    """``0``, ``0s``, ``0ms``: PostgreSQL's "no timeout"."""
    match = _DURATION_NUMBER_RE.match(duration)
    return match is not None and float(match.group("number")) == 0
