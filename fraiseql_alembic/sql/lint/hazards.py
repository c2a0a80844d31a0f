"""Rules FQL014-FQL022, and the parts of FQL005 / FQL008 on domains and types.

Each function matches one parsed statement and says why and what instead, like
:mod:`.rules`; :func:`remember_hazards` keeps what later statements of the same
transaction or file need (constraints added NOT VALID, DDL, backfills, new types,
functions and their volatility).
"""

from __future__ import annotations

from collections.abc import Iterator

from .nodes import AlterTableType, ConstrType, ObjectType, ast
from .rules import needs_access_exclusive
from .state import Catalog, FileState, Hit, location_of, shown, text_of
from .types import column_type
from .volatility import remember_function

_REWRITING = {
    AlterTableType.AT_SetTableSpace: "SET TABLESPACE copies every page of {table} to the "
    "new tablespace",
    AlterTableType.AT_SetLogged: "SET LOGGED writes all of {table} to the WAL (a rewrite)",
    AlterTableType.AT_SetUnLogged: "SET UNLOGGED rewrites {table}",
    AlterTableType.AT_SetAccessMethod: "SET ACCESS METHOD rewrites {table}",
}
_DESTRUCTIVE_DROPS = {
    ObjectType.OBJECT_VIEW: "VIEW", ObjectType.OBJECT_MATVIEW: "MATERIALIZED VIEW",
    ObjectType.OBJECT_SEQUENCE: "SEQUENCE", ObjectType.OBJECT_TYPE: "TYPE",
    ObjectType.OBJECT_DOMAIN: "DOMAIN", ObjectType.OBJECT_FUNCTION: "FUNCTION",
    ObjectType.OBJECT_PROCEDURE: "PROCEDURE", ObjectType.OBJECT_EXTENSION: "EXTENSION",
    ObjectType.OBJECT_TRIGGER: "TRIGGER", ObjectType.OBJECT_POLICY: "POLICY",
    ObjectType.OBJECT_SCHEMA: "SCHEMA",
}
_TYPE_KINDS = (ObjectType.OBJECT_TYPE, ObjectType.OBJECT_DOMAIN)
_KEEP_DATA = ("take a backup before deploying, and drop it in a later migration once no "
              "running code uses it")


def hazard_hits(node: ast.Node, state: FileState, catalog: Catalog) -> Iterator[Hit]:
    """The hits of one parsed statement for the rules of this module."""
    if isinstance(node, ast.AlterTableStmt) and node.relation is not None:
        yield from _alter_table(node, state)
    elif isinstance(node, ast.DropStmt):
        yield from _drop(node, state)
    elif isinstance(node, ast.RefreshMatViewStmt) and node.relation is not None and not (
        node.concurrent or node.skipData or state.is_new(node.relation)
    ):
        view = shown(node.relation)
        yield Hit(
            "FQL018",
            f"REFRESH MATERIALIZED VIEW {view} without CONCURRENTLY blocks every read of "
            f"{view} (ACCESS EXCLUSIVE) until the query behind it has run again",
            f"REFRESH MATERIALIZED VIEW CONCURRENTLY {view} (it needs a UNIQUE index on the "
            "view; reads go on while it runs)",
            location_of(node.relation),
        )
    elif isinstance(node, ast.AlterEnumStmt) and node.oldVal is not None:
        yield from _enum_rename(node, state)
    elif isinstance(node, ast.AlterDomainStmt) and node.subtype == "C":
        yield from _domain_constraint(node, state)
    elif isinstance(node, (ast.RenameStmt, ast.AlterObjectSchemaStmt)):
        yield from _type_rename(node, state)
    elif isinstance(node, ast.AlterTableMoveAllStmt):
        yield Hit(
            "FQL017",
            f"ALTER ... ALL IN TABLESPACE {node.orig_tablespacename} SET TABLESPACE copies "
            "every relation of that tablespace, each under ACCESS EXCLUSIVE",
            "move tables online with pg_repack --tablespace, outside migrations, or in a "
            "maintenance window",
        )
    elif isinstance(node, ast.DropdbStmt):
        yield _destructive(f"DROP DATABASE {node.dbname} deletes a whole database",
                           "drop databases by hand, not in a migration")
    elif isinstance(node, (ast.DropOwnedStmt, ast.DropRoleStmt)):
        what = "DROP OWNED" if isinstance(node, ast.DropOwnedStmt) else "DROP ROLE"
        yield _destructive(f"{what} deletes roles or everything they own",
                           "manage roles outside schema migrations")
    elif isinstance(node, (ast.UpdateStmt, ast.DeleteStmt, ast.InsertStmt)):
        yield from _backfill(node, state)
    elif isinstance(node, ast.TruncateStmt) and state.migration.reversible:
        for relation in node.relations or ():  # without a down section: FQL007's
            if not state.is_new(relation):
                yield _destructive(
                    f"TRUNCATE {shown(relation)} deletes every row of it: the down section "
                    "cannot bring them back", _KEEP_DATA)
    yield from _json_columns(node)


def _alter_table(node: ast.AlterTableStmt, state: FileState) -> Iterator[Hit]:
    relation = node.relation
    assert relation is not None
    table = shown(relation)
    if state.is_new(relation):
        return
    key = state.resolve(relation)
    backfill = state.backfilled.get(key)
    if backfill is not None and any(needs_access_exclusive(command)
                                    for command in node.cmds or ()):
        yield Hit(
            "FQL021",
            f"ALTER TABLE {table} runs in the same transaction as the whole-table write to it "
            f"on line {backfill}: every row that write changed stays locked until this DDL "
            "and its ACCESS EXCLUSIVE lock commit",
            "put the backfill in its own migration, in batches (UPDATE ... WHERE id BETWEEN "
            "...), apart from the DDL's migration",
        )
    for command in node.cmds or ():
        subtype = command.subtype
        if subtype == AlterTableType.AT_ValidateConstraint:
            added = state.not_valid.get((key, text_of(command.name)))
            if added is not None:
                yield Hit(
                    "FQL014",
                    f"VALIDATE CONSTRAINT {command.name} runs in the same transaction as its "
                    f"ADD CONSTRAINT ... NOT VALID on line {added}: the ADD's lock on {table} "
                    "(ACCESS EXCLUSIVE for a CHECK, SHARE ROW EXCLUSIVE on both tables for a "
                    "FOREIGN KEY) is held while VALIDATE scans the whole table",
                    f"VALIDATE CONSTRAINT {command.name} in a later migration: each migration "
                    "commits before the next one starts",
                )
        elif subtype == AlterTableType.AT_DetachPartition and isinstance(
            command.def_, ast.PartitionCmd
        ) and not command.def_.concurrent:
            partition = shown(command.def_.name)
            fix = (f"ALTER TABLE {table} DETACH PARTITION {partition} CONCURRENTLY (fraiseql "
                   "runs it outside a transaction)"
                   if state.session.postgres_version >= 14 else
                   "PostgreSQL 13 and older have no DETACH ... CONCURRENTLY: detach in a quiet "
                   "moment with a short lock_timeout, or upgrade to 14+")
            yield Hit(
                "FQL016",
                f"DETACH PARTITION {partition} without CONCURRENTLY takes ACCESS EXCLUSIVE on "
                f"{table} and {partition}: every query on the partitioned table waits",
                fix,
            )
        elif subtype in _REWRITING:
            what = _REWRITING[subtype].format(table=table)
            yield Hit(
                "FQL017",
                f"{what} under ACCESS EXCLUSIVE: no reads or writes until it is done",
                "rebuild it online with pg_repack (--tablespace for a move), outside "
                "migrations, or create a new table and switch to it",
            )
        elif subtype == AlterTableType.AT_DropNotNull:
            yield _destructive(
                f"DROP NOT NULL on {table}.{command.name} lets NULL in where running code "
                "expects a value",
                "keep NOT NULL until no code relies on it, or raise this rule's severity in "
                "your policy if your team forbids it")
        elif subtype == AlterTableType.AT_DropConstraint and (
            (state.resolve(relation), text_of(command.name)) not in state.created_constraints
        ):
            yield _destructive(
                f"DROP CONSTRAINT {command.name} on {table} stops checking what it enforced",
                "drop it in a migration of its own, once the data no longer needs it")
        elif subtype == AlterTableType.AT_DropColumn and state.migration.reversible:
            # Without a down section this is FQL007's.
            yield _destructive(
                f"DROP COLUMN {command.name} deletes the values of {table}.{command.name}: "
                "the down section can bring the column back, not what it held",
                _KEEP_DATA)


def _drop(node: ast.DropStmt, state: FileState) -> Iterator[Hit]:
    if node.removeType == ObjectType.OBJECT_INDEX and not node.concurrent:
        for names in node.objects or ():
            parts = [part.sval for part in names]
            if state.qualified(parts) in state.created_indexes:
                continue
            index = ".".join(text_of(part) for part in parts)
            yield Hit(
                "FQL015",
                f"DROP INDEX {index} without CONCURRENTLY takes ACCESS EXCLUSIVE on its table: "
                "while it waits for running queries, every query on the table queues "
                "behind it",
                f"DROP INDEX CONCURRENTLY {index} (one index per statement; fraiseql runs it "
                "outside a transaction); an index behind a constraint goes with ALTER TABLE "
                "... DROP CONSTRAINT",
            )
        return
    if node.removeType == ObjectType.OBJECT_TABLE:
        if state.migration.reversible:  # without a down section: FQL007's
            for names in node.objects or ():
                parts = [part.sval for part in names]
                if state.qualified(parts) not in state.created:
                    table = ".".join(text_of(part) for part in parts)
                    yield _destructive(
                        f"DROP TABLE {table} deletes its rows: the down section can "
                        "recreate the table, not what it held", _KEEP_DATA)
        return
    kind = _DESTRUCTIVE_DROPS.get(node.removeType) if node.removeType is not None else None
    if kind is None:
        return
    for item in node.objects or ():
        if isinstance(item, ast.ObjectWithArgs):  # a function: its name, not its arguments
            item = item.objname or ()
        elif isinstance(item, ast.TypeName):  # DROP TYPE / DOMAIN
            item = item.names or ()
        parts = [text_of(getattr(part, "sval", None)) for part in item] if isinstance(
            item, (list, tuple)) else [text_of(getattr(item, "sval", None))]
        key = state.qualified(parts) if parts and all(parts) else None
        if key is not None and (key in state.created_types or key in state.created
                                or (len(parts) == 1 and parts[0] in state.created_schemas)):
            continue
        name = ".".join(part for part in parts if part) or "..."
        yield _destructive(f"DROP {kind} {name} removes what running code may still use",
                           f"drop the {kind.lower()} in a later migration, once no code "
                           "uses it")


def _destructive(what: str, fix: str) -> Hit:
    return Hit("FQL020", what, fix)


def _enum_rename(node: ast.AlterEnumStmt, state: FileState) -> Iterator[Hit]:
    parts = [text_of(part.sval) for part in node.typeName or ()]
    if state.qualified(parts) in state.created_types:
        return
    enum = ".".join(parts)
    yield Hit(
        "FQL019",
        f"ALTER TYPE {enum} RENAME VALUE '{node.oldVal}' TO '{node.newVal}' breaks every "
        f"running copy of the application that still writes or compares '{node.oldVal}' "
        "(deploys are not atomic)",
        f"ALTER TYPE {enum} ADD VALUE '{node.newVal}' in a migration of its own, move the "
        f"rows and the application to it, and stop using '{node.oldVal}' (enum values cannot "
        "be dropped; a lookup table can change freely)",
    )


def _domain_constraint(node: ast.AlterDomainStmt, state: FileState) -> Iterator[Hit]:
    constraint = node.def_
    parts = [text_of(part.sval) for part in node.typeName or ()]
    if not isinstance(constraint, ast.Constraint) or constraint.skip_validation or (
        state.qualified(parts) in state.created_types
    ):
        return
    domain = ".".join(parts)
    name = constraint.conname or "..."
    yield Hit(
        "FQL005",
        f"ALTER DOMAIN {domain} ADD CONSTRAINT {name} checks every column of type {domain} in "
        "every table, blocking writes to each of them (SHARE lock) until done",
        f"ALTER DOMAIN {domain} ADD CONSTRAINT {name} ... NOT VALID (instant; new values are "
        f"checked), then `ALTER DOMAIN {domain} VALIDATE CONSTRAINT {name}` in a later "
        "migration",
        location_of(constraint),
    )


def _type_rename(node: ast.RenameStmt | ast.AlterObjectSchemaStmt,
                 state: FileState) -> Iterator[Hit]:
    """FQL008 for types and domains: RENAME TO, SET SCHEMA."""
    kind = node.renameType if isinstance(node, ast.RenameStmt) else node.objectType
    if kind not in _TYPE_KINDS or not isinstance(node.object, (list, tuple)):
        return
    parts = [text_of(getattr(part, "sval", None)) for part in node.object]
    if state.qualified(parts) in state.created_types:
        return
    old = ".".join(parts)
    what = (f"ALTER TYPE {old} RENAME TO {node.newname}" if isinstance(node, ast.RenameStmt)
            else f"ALTER TYPE {old} SET SCHEMA {node.newschema}")
    yield Hit(
        "FQL008",
        f"{what} breaks every running copy of the application that still names type {old} "
        "(casts, function signatures; deploys are not atomic)",
        "create the type under the new name, move columns and code to it, and drop the old "
        "one in a later migration",
    )


def _backfill(node: ast.UpdateStmt | ast.DeleteStmt | ast.InsertStmt,
              state: FileState) -> Iterator[Hit]:
    """FQL021: a whole-table write in the transaction of DDL on that table."""
    relation = node.relation
    if relation is None or state.is_new(relation) or not _unbounded(node):
        return
    key = state.resolve(relation)
    line = state.ddl.get(key)
    if line is None:
        return
    verb = type(node).__name__.removesuffix("Stmt").upper()
    yield Hit(
        "FQL021",
        f"{verb} of every row of {shown(relation)} (no WHERE or LIMIT) runs in the same "
        f"transaction as the DDL on line {line}, whose ACCESS EXCLUSIVE lock on "
        f"{shown(relation)} is held until the backfill commits: no reads or writes meanwhile",
        "put the backfill in its own migration after the DDL's, in batches (UPDATE ... WHERE "
        "id BETWEEN ...), or run it outside migrations",
        location_of(relation),
    )


def _unbounded(node: ast.UpdateStmt | ast.DeleteStmt | ast.InsertStmt) -> bool:
    if isinstance(node, ast.InsertStmt):
        select = node.selectStmt
        return (isinstance(select, ast.SelectStmt) and bool(select.fromClause)
                and select.whereClause is None and select.limitCount is None)
    return node.whereClause is None


def _json_columns(node: ast.Node) -> Iterator[Hit]:
    """FQL022: a column of type json, in CREATE TABLE or ADD COLUMN."""
    columns: list[ast.ColumnDef] = []
    if isinstance(node, ast.CreateStmt):
        columns = [item for item in node.tableElts or () if isinstance(item, ast.ColumnDef)]
    elif isinstance(node, ast.AlterTableStmt):
        columns = [command.def_ for command in node.cmds or ()
                   if command.subtype == AlterTableType.AT_AddColumn
                   and isinstance(command.def_, ast.ColumnDef)]
    for column in columns:
        found = column_type(column.typeName)
        if found is not None and found.name == "json":
            yield Hit(
                "FQL022",
                f"column {column.colname} is json, which stores the text as written: it has "
                "no equality operator (DISTINCT, GROUP BY, UNION and unique indexes fail), "
                "no GIN index, and every access parses it again",
                f"{column.colname} jsonb (json only when the exact text, key order or "
                "duplicate keys must be kept)",
                location_of(column),
            )


# ---------------------------------------------------------------------------
# What a statement leaves behind for these rules


def remember_hazards(node: ast.Node, state: FileState, catalog: Catalog) -> None:
    if isinstance(node, ast.CreateFunctionStmt):
        remember_function(node, state, catalog)
    elif isinstance(node, (ast.CreateEnumStmt, ast.CreateDomainStmt)):
        names = node.typeName if isinstance(node, ast.CreateEnumStmt) else node.domainname
        state.created_types.add(state.qualified([part.sval for part in names or ()]))
    elif isinstance(node, ast.CompositeTypeStmt) and node.typevar is not None:
        state.created_types.add(state.resolve(node.typevar))
    elif isinstance(node, ast.ViewStmt) and node.view is not None and not node.replace:
        state.created.add(state.resolve(node.view))
    elif isinstance(node, ast.AlterTableStmt) and node.relation is not None and not (
        state.is_new(node.relation)
    ):
        key = state.resolve(node.relation)
        for command in node.cmds or ():
            definition = command.def_
            if (command.subtype == AlterTableType.AT_AddConstraint
                    and isinstance(definition, ast.Constraint) and definition.conname):
                state.created_constraints.add((key, text_of(definition.conname)))
            if (command.subtype == AlterTableType.AT_AddConstraint
                    and isinstance(definition, ast.Constraint) and definition.skip_validation
                    and definition.contype in (ConstrType.CONSTR_CHECK,
                                               ConstrType.CONSTR_FOREIGN)):
                state.not_valid[(key, text_of(definition.conname))] = state.line
            if needs_access_exclusive(command):
                state.ddl.setdefault(key, state.line)
    elif isinstance(node, (ast.UpdateStmt, ast.DeleteStmt, ast.InsertStmt)) and (
        node.relation is not None and _unbounded(node)
    ):
        key = state.resolve(node.relation)
        if key not in state.ddl:  # else reported already, at the backfill
            state.backfilled.setdefault(key, state.line)
