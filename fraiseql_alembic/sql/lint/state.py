"""What linting carries from statement to statement and from file to file.

Per file (:class:`FileState`): the tables, indexes and schemas it creates (new and
empty, so exempt from the locking rules), the effective ``lock_timeout``,
``search_path`` and ``TimeZone``, and enum values added in the running transaction.
Every file starts from the same settings (:class:`Session`): the runner resets the
session before each migration (``RESET ALL``), so a ``SET`` never outlives its file.
Across files: ``CHECK (col IS NOT NULL)`` constraints and whether they are validated
(rule FQL004), and the type of each column the migrations define (rule FQL006), in
:class:`Catalog`.  :func:`remember` updates them after each statement.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ...settings import DEFAULT_POSTGRES_VERSION
from ..parse import ParsedMigration
from .nodes import AlterTableType, ConstrType, NullTestType, ObjectType, VariableSetKind, ast
from .types import ColumnType, column_type, is_utc

Key = tuple[str, str]  # (schema, name) after search_path resolution
_TEMP_SCHEMA = "pg_temp"
_DEFAULT_SEARCH_PATH = ("public",)  # PostgreSQL's "$user", public, with no $user schema


def shown(relation: ast.RangeVar | None) -> str:
    """The name as written: ``tb_user`` or ``app.tb_user``."""
    if relation is None:
        return ""
    name = relation.relname or ""
    return f"{relation.schemaname}.{name}" if relation.schemaname else name


def text_of(value: str | None) -> str:
    return value or ""


@dataclass(frozen=True)
class Session:
    """What every file starts with: the runner's settings after its session reset, and
    the PostgreSQL release assumed."""

    lock_timeout: str
    lock_timeout_source: str
    search_path: tuple[str, ...] = _DEFAULT_SEARCH_PATH
    postgres_version: int = DEFAULT_POSTGRES_VERSION
    timezone: str | None = None  # the server's TimeZone when the project says it


@dataclass
class Catalog:
    """What earlier statements (of any file) said about NOT NULL check constraints."""

    # (table, constraint name) -> (column, validated)
    not_null_checks: dict[tuple[Key, str], tuple[str, bool]] = field(default_factory=dict)
    # table -> column -> type (None: not known), as the migrations defined them
    columns: dict[Key, dict[str, ColumnType | None]] = field(default_factory=dict)
    # functions the migrations create -> volatility ("i", "s" or "v")
    functions: dict[Key, str] = field(default_factory=dict)

    def proves_not_null(self, table: Key, column: str) -> bool:
        return any(
            key[0] == table and checked == (column, True)
            for key, checked in self.not_null_checks.items()
        )


@dataclass
class FileState:
    migration: ParsedMigration
    session: Session
    lock_timeout: str
    lock_timeout_source: str
    search_path: tuple[str, ...]
    timezone: str | None = None  # TimeZone of the session, when known
    line: int = 1  # of the statement being linted
    in_transaction: bool = True  # the statement runs in the file's transaction
    created: set[Key] = field(default_factory=set)
    created_indexes: set[Key] = field(default_factory=set)
    created_schemas: set[str] = field(default_factory=set)
    # enum values added in the running transaction: value -> (type, line)
    new_enum_values: dict[str, tuple[str, int]] = field(default_factory=dict)
    created_types: set[Key] = field(default_factory=set)  # types and domains
    # constraints this file added to tables it did not create: (table, name)
    created_constraints: set[tuple[Key, str]] = field(default_factory=set)
    # In the running transaction: constraints added NOT VALID ((table, name) -> line),
    # tables locked ACCESS EXCLUSIVE by DDL and tables backfilled whole (-> line)
    not_valid: dict[tuple[Key, str], int] = field(default_factory=dict)
    ddl: dict[Key, int] = field(default_factory=dict)
    backfilled: dict[Key, int] = field(default_factory=dict)

    def transaction_ended(self) -> None:
        """What ran before has committed: forget what lasts only for a transaction."""
        self.new_enum_values.clear()
        self.not_valid.clear()
        self.ddl.clear()
        self.backfilled.clear()

    @property
    def schema(self) -> str:
        """Where an unqualified name is created or looked up: the first schema of
        ``search_path`` (``public`` unless the migrations SET it)."""
        return next(iter(self.search_path), "public")

    def key(self, schema: str | None, name: str | None, *, temporary: bool = False) -> Key:
        """Resolve a name.  Unquoted names arrive folded to lower case from the parser,
        quoted ones keep their case.  An unqualified name is the temporary table of that
        name if the file made one (pg_temp comes first in the search), else the one in
        the first schema of search_path."""
        if schema:
            return (_TEMP_SCHEMA if schema.startswith("pg_temp") else schema, text_of(name))
        if temporary or (_TEMP_SCHEMA, text_of(name)) in self.created:
            return (_TEMP_SCHEMA, text_of(name))
        return (self.schema, text_of(name))

    def resolve(self, relation: ast.RangeVar | None) -> Key:
        if relation is None:
            return ("", "")
        return self.key(relation.schemaname, relation.relname,
                        temporary=relation.relpersistence == "t")

    def qualified(self, parts: Sequence[str | None]) -> Key:
        """``["s", "t"]`` -> ("s", "t"); ``["t"]`` -> (first search_path schema, "t")."""
        names = [text_of(part) for part in parts]
        return self.key(names[-2] if len(names) > 1 else None, names[-1])

    def is_new(self, relation: ast.RangeVar | None) -> bool:
        return relation is not None and self.resolve(relation) in self.created

    @property
    def utc(self) -> bool:
        """Whether the session's TimeZone is known to have a fixed zero offset."""
        return self.timezone is not None and is_utc(self.timezone)

    def set_lock_timeout(self, value: str, *, what: str) -> None:
        self.lock_timeout = value
        self.lock_timeout_source = f"{what} on line {self.line}"


@dataclass(frozen=True)
class Hit:
    rule: str
    message: str
    fix: str
    location: int = 0  # character offset inside the statement (or file, for directives)


RELATION_KINDS = frozenset({ObjectType.OBJECT_TABLE, ObjectType.OBJECT_VIEW,
                             ObjectType.OBJECT_MATVIEW, ObjectType.OBJECT_FOREIGN_TABLE,
                             ObjectType.OBJECT_SEQUENCE})


def position(text: str, offset: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


def walk(tree: object) -> Iterator[ast.Node]:
    """Every node of ``tree``, depth first in slot order (as pglast's Visitor visits
    them, without loading pglast's printers)."""
    if isinstance(tree, ast.Node):
        yield tree
        for name in getattr(type(tree), "FIELDS", ()):  # nodes.Node.FIELDS: the slots
            value = getattr(tree, name, None)
            if isinstance(value, (ast.Node, tuple)):
                yield from walk(value)
    elif isinstance(tree, tuple):
        for item in tree:
            yield from walk(item)


def location_of(node: object) -> int:
    location = getattr(node, "location", None)
    return location if isinstance(location, int) and location >= 0 else 0


def constant(node: ast.Node | None) -> str | int | float | None:
    if isinstance(node, ast.TypeCast):
        node = node.arg
    if not isinstance(node, ast.A_Const) or node.isnull:
        return None
    value = node.val
    for attribute in ("sval", "ival", "fval"):
        if hasattr(value, attribute):
            result: str | int | float = getattr(value, attribute)
            return result
    return None


# ---------------------------------------------------------------------------
# What a statement leaves behind for the next ones


def remember(node: ast.Node, state: FileState, catalog: Catalog) -> None:
    _remember_columns(node, state, catalog)
    if isinstance(node, ast.CreateStmt) and not node.if_not_exists:
        state.created.add(state.resolve(node.relation))
    elif isinstance(node, ast.CreateTableAsStmt) and node.into is not None and (
        not node.if_not_exists
    ):
        state.created.add(state.resolve(node.into.rel))
    elif isinstance(node, ast.SelectStmt) and node.intoClause is not None:
        state.created.add(state.resolve(node.intoClause.rel))  # SELECT ... INTO new_table
    elif isinstance(node, ast.CreateSchemaStmt) and node.schemaname and not node.if_not_exists:
        state.created_schemas.add(node.schemaname)
    elif isinstance(node, ast.IndexStmt) and node.idxname:
        state.created_indexes.add((state.resolve(node.relation)[0], node.idxname))
    elif isinstance(node, ast.RenameStmt) and node.renameType in RELATION_KINDS and (
        state.is_new(node.relation)
    ):
        state.created.add((state.resolve(node.relation)[0], text_of(node.newname)))
    elif isinstance(node, ast.AlterObjectSchemaStmt) and node.objectType in RELATION_KINDS and (
        state.is_new(node.relation) and node.relation is not None
    ):
        state.created.add((text_of(node.newschema), text_of(node.relation.relname)))
    elif isinstance(node, ast.AlterTableStmt):
        for command in node.cmds or ():
            _remember_constraint(state.resolve(node.relation), command, catalog)
    elif isinstance(node, ast.AlterEnumStmt) and node.newVal and state.in_transaction:
        enum = ".".join(text_of(part.sval) for part in node.typeName or ())
        state.new_enum_values[node.newVal] = (enum, state.line)
    elif isinstance(node, ast.VariableSetStmt) and node.name in ("lock_timeout", "search_path",
                                                                   "timezone"):
        _set_variable(state, node)
    if isinstance(node, ast.SelectStmt):
        for target in node.targetList or ():
            call = getattr(target, "val", None)
            if isinstance(call, ast.FuncCall) and call.funcname and call.args:
                _set_config(state, call)


def _set_config(state: FileState, call: ast.FuncCall) -> None:
    """``SELECT set_config('lock_timeout', '0', false)``: false lasts for the session."""
    arguments = call.args or ()
    if not call.funcname or call.funcname[-1].sval != "set_config" or len(arguments) < 2:
        return
    name, value = constant(arguments[0]), constant(arguments[1])
    if value is None:
        return
    local_flag = arguments[2] if len(arguments) > 2 else None
    if isinstance(local_flag, ast.TypeCast):
        local_flag = local_flag.arg
    if isinstance(local_flag, ast.A_Const) and isinstance(local_flag.val, ast.Boolean):
        local = bool(local_flag.val.boolval)
    else:
        flag = constant(local_flag)
        local = str(flag).lower() in ("true", "t", "on", "yes", "1")
    scope = "true" if local else "false"
    if name == "lock_timeout":
        state.set_lock_timeout(str(value),
                               what=f"set_config('lock_timeout', '{value}', {scope})")
    elif name == "search_path":
        state.search_path = _search_path(str(value))
    elif str(name).lower() == "timezone":
        state.timezone = str(value)


def _set_variable(state: FileState, node: ast.VariableSetStmt) -> None:
    local = bool(node.is_local)
    if node.kind == VariableSetKind.VAR_SET_VALUE and node.args:
        values = [constant(argument) for argument in node.args]
        if node.name == "timezone":  # SET TIME ZONE INTERVAL '...': not read, so unknown
            state.timezone = str(values[0]) if len(values) == 1 and values[0] is not None \
                and not isinstance(node.args[0], ast.TypeCast) else None
            return
        if any(value is None for value in values):
            return
        if node.name == "search_path":
            state.search_path = _search_path(", ".join(f'"{value}"' for value in values))
            return
        state.set_lock_timeout(str(values[0]),
                               what=f"SET {'LOCAL ' if local else ''}lock_timeout = {values[0]}")
    elif node.kind in (VariableSetKind.VAR_SET_DEFAULT, VariableSetKind.VAR_RESET):
        if node.name == "search_path":
            state.search_path = _DEFAULT_SEARCH_PATH
            return
        if node.name == "timezone":
            state.timezone = state.session.timezone
            return
        # the server default: no timeout, unless postgresql.conf or the role says otherwise
        what = "RESET lock_timeout" if node.kind == VariableSetKind.VAR_RESET else (
            f"SET {'LOCAL ' if local else ''}lock_timeout TO DEFAULT")
        state.set_lock_timeout("0", what=what)


def _search_path(value: str) -> tuple[str, ...]:
    """``app, "Mixed", "$user"`` -> ("app", "Mixed"): unquoted names fold to lower case;
    ``$user`` (a schema named after the role, rarely there) and pg_catalog are skipped."""
    schemas: list[str] = []
    for item in value.split(","):
        name = item.strip()
        name = name[1:-1].replace('""', '"') if name.startswith('"') and name.endswith('"') \
            and len(name) > 1 else name.lower()
        if name and name not in ("$user", "pg_catalog"):
            schemas.append(name)
    return tuple(schemas) or _DEFAULT_SEARCH_PATH


def _remember_constraint(table: Key, command: ast.AlterTableCmd, catalog: Catalog) -> None:
    if command.subtype == AlterTableType.AT_AddConstraint and isinstance(
        command.def_, ast.Constraint
    ):
        constraint = command.def_
        test = constraint.raw_expr
        if (
            constraint.contype == ConstrType.CONSTR_CHECK
            and isinstance(test, ast.NullTest)
            and test.nulltesttype == NullTestType.IS_NOT_NULL
            and isinstance(test.arg, ast.ColumnRef)
            and test.arg.fields
            and len(test.arg.fields) == 1
            and isinstance(test.arg.fields[0], ast.String)
        ):
            column = text_of(test.arg.fields[0].sval)
            name = constraint.conname or f"{table[1]}_{column}_check"
            catalog.not_null_checks[(table, name)] = (column, not constraint.skip_validation)
    elif command.subtype == AlterTableType.AT_ValidateConstraint:
        key = (table, text_of(command.name))
        known = catalog.not_null_checks.get(key)
        if known is not None:
            catalog.not_null_checks[key] = (known[0], True)
    elif command.subtype == AlterTableType.AT_DropConstraint:
        catalog.not_null_checks.pop((table, text_of(command.name)), None)


def _remember_columns(node: ast.Node, state: FileState, catalog: Catalog) -> None:
    """Column types, as CREATE TABLE, ADD COLUMN and ALTER COLUMN ... TYPE define them;
    renames and drops move or forget them."""
    columns = catalog.columns
    if isinstance(node, ast.CreateStmt) and not node.if_not_exists:
        columns[state.resolve(node.relation)] = {
            text_of(element.colname): column_type(element.typeName)
            for element in node.tableElts or () if isinstance(element, ast.ColumnDef)
        }
    elif isinstance(node, ast.AlterTableStmt) and node.relation is not None:
        table = columns.setdefault(state.resolve(node.relation), {})
        for command in node.cmds or ():
            definition = command.def_
            if command.subtype == AlterTableType.AT_AddColumn and isinstance(
                definition, ast.ColumnDef
            ):
                name = text_of(definition.colname)
                if not (command.missing_ok and name in table):
                    table[name] = column_type(definition.typeName)
            elif command.subtype == AlterTableType.AT_AlterColumnType and isinstance(
                definition, ast.ColumnDef
            ):
                table[text_of(command.name)] = column_type(definition.typeName)
            elif command.subtype == AlterTableType.AT_DropColumn:
                table.pop(text_of(command.name), None)
    elif isinstance(node, ast.RenameStmt) and node.relation is not None:
        key = state.resolve(node.relation)
        if node.renameType == ObjectType.OBJECT_COLUMN and key in columns:
            columns[key][text_of(node.newname)] = columns[key].pop(text_of(node.subname), None)
        elif node.renameType in RELATION_KINDS and key in columns:
            columns[(key[0], text_of(node.newname))] = columns.pop(key)
    elif isinstance(node, ast.AlterObjectSchemaStmt) and node.relation is not None and (
        node.objectType in RELATION_KINDS
    ):
        key = state.resolve(node.relation)
        if key in columns:
            columns[(text_of(node.newschema), key[1])] = columns.pop(key)
    elif isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_TABLE:
        for names in node.objects or ():
            columns.pop(state.qualified([part.sval for part in names]), None)
