"""Lint migrations for operations that hurt a busy production database.

Pure: :func:`lint_migrations` takes parsed migrations and returns findings; nothing
here reads files or talks to a database.  Each statement of a file's up section is
parsed with PostgreSQL's own parser (pglast) and the rules match the syntax tree.
docs/lint.md describes every rule: why it is dangerous and what to write instead.

State carried through one file: the tables it creates (new and empty, so exempt
from the locking rules) and the effective ``lock_timeout``.  State carried across
files, in order: ``CHECK (col IS NOT NULL)`` constraints and whether they are
validated, so that ``SET NOT NULL`` after ``VALIDATE CONSTRAINT`` in a later file
passes (rule FQL004).
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass, field

from pglast import ast
from pglast.enums import AlterTableType, ConstrType, NullTestType, ObjectType, VariableSetKind
from pglast.parser import ParseError, parse_sql, scan
from pglast.visitors import Visitor

from .errors import MigrationFileError
from .sqlfile import ParsedMigration, Statement, split_statements


@dataclass(frozen=True)
class Rule:
    id: str
    slug: str
    summary: str


RULES: tuple[Rule, ...] = (
    Rule("FQL001", "index-not-concurrent", "index built without CONCURRENTLY on an existing table"),
    Rule("FQL002", "not-null-without-default", "ADD COLUMN ... NOT NULL without a DEFAULT"),
    Rule("FQL003", "volatile-default", "ADD COLUMN whose default rewrites the table"),
    Rule("FQL004", "set-not-null", "SET NOT NULL without a validated CHECK (col IS NOT NULL)"),
    Rule("FQL005", "constraint-without-not-valid",
         "FOREIGN KEY / CHECK added to an existing table without NOT VALID"),
    Rule("FQL006", "alter-column-type", "ALTER COLUMN ... TYPE on an existing table"),
    Rule("FQL007", "drop-without-down", "DROP TABLE / DROP COLUMN in a file with no down section"),
    Rule("FQL008", "rename", "RENAME of a column or table the application uses"),
    Rule("FQL009", "missing-lock-timeout", "ACCESS EXCLUSIVE lock with lock_timeout disabled"),
    Rule("FQL010", "unknown-ignore", "`-- fraiseql-lint:` comment naming no known rule"),
    Rule("FQL011", "syntax-error", "statement PostgreSQL's parser rejects"),
)
_BY_ID = {rule.id: rule for rule in RULES}
_BY_NAME = {**{rule.id.lower(): rule for rule in RULES}, **{rule.slug: rule for rule in RULES}}


@dataclass(frozen=True)
class Finding:
    """One problem: where (file name, 1-based line and column), which rule, why, what instead."""

    file: str
    line: int
    column: int
    rule: str
    slug: str
    message: str
    fix: str

    def text(self) -> str:
        """``003_x.sql:12:1: FQL001 index-not-concurrent: <why>. Instead: <fix>``."""
        return (
            f"{self.file}:{self.line}:{self.column}: {self.rule} {self.slug}: "
            f"{self.message}. Instead: {self.fix}"
        )


def rule_named(name: str) -> Rule | None:
    """The rule of an id (``FQL001``, any case) or slug (``index-not-concurrent``)."""
    return _BY_NAME.get(name.strip().lower())


def lint_migrations(
    migrations: Sequence[ParsedMigration],
    *,
    lock_timeout: str = "10s",
    report: Container[str] | None = None,
) -> list[Finding]:
    """Findings for the up sections of ``migrations`` (in the order they run).

    ``lock_timeout`` is the project's setting (``RunOptions.lock_timeout``).  Files
    whose name is not in ``report`` are read only for what later files depend on
    (constraints); ``None`` reports every file.  A reported file that ``sqlfile``
    refuses (e.g. transaction control) raises MigrationFileError; one read only for
    context is skipped.
    """
    catalog = _Catalog()
    findings: list[Finding] = []
    for migration in migrations:
        reported = report is None or migration.name.filename in report
        try:
            found = _lint_file(migration, catalog, lock_timeout)
        except MigrationFileError:
            if reported:
                raise
            continue  # context only: its own lint run reports it
        if reported:
            findings.extend(found)
    return findings


# ---------------------------------------------------------------------------
# State


def _key(relation: ast.RangeVar | None) -> tuple[str, str]:
    if relation is None:
        return ("", "")
    return (relation.schemaname or "", relation.relname or "")


def _shown(relation: ast.RangeVar | None) -> str:
    schema, name = _key(relation)
    return f"{schema}.{name}" if schema else name


def _text(value: str | None) -> str:
    return value or ""


class _Tables:
    """Relation names; ``tb_user`` and ``public.tb_user`` match each other."""

    def __init__(self) -> None:
        self._keys: set[tuple[str, str]] = set()

    def add(self, key: tuple[str, str]) -> None:
        self._keys.add(key)

    def __contains__(self, key: tuple[str, str]) -> bool:
        schema, name = key
        if key in self._keys or ("", name) in self._keys:
            return True
        return not schema and any(known == name for _, known in self._keys)


@dataclass
class _Catalog:
    """What earlier statements (of any file) said about NOT NULL check constraints."""

    # (table name, constraint name) -> (column, validated)
    not_null_checks: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)

    def proves_not_null(self, table: str, column: str) -> bool:
        return any(
            key[0] == table and checked == (column, True)
            for key, checked in self.not_null_checks.items()
        )


@dataclass
class _FileState:
    migration: ParsedMigration
    created: _Tables
    lock_timeout: str
    lock_timeout_source: str
    created_indexes: set[str] = field(default_factory=set)

    def is_new(self, relation: ast.RangeVar | None) -> bool:
        return relation is not None and _key(relation) in self.created


@dataclass(frozen=True)
class _Hit:
    rule: str
    message: str
    fix: str
    location: int = 0  # character offset inside the statement


# ---------------------------------------------------------------------------
# One file


def _lint_file(migration: ParsedMigration, catalog: _Catalog, lock_timeout: str) -> list[Finding]:
    section = migration.up
    statements = split_statements(migration, section).statements
    directives, findings = _directives(migration)
    timeouts = dict(section.timeouts)
    if "lock_timeout" in timeouts:
        source = f"lock_timeout:{timeouts['lock_timeout']} on the `-- migrate:up` marker"
        effective = timeouts["lock_timeout"]
    else:
        source = "lock_timeout in the project settings"
        effective = lock_timeout
    state = _FileState(migration, _Tables(), effective, source)
    for statement in statements:
        hits: list[_Hit] = []
        try:
            nodes = [raw.stmt for raw in parse_sql(statement.sql) if raw.stmt is not None]
        except ParseError as err:
            index = err.args[1] if len(err.args) > 1 and isinstance(err.args[1], int) else 0
            location = max(0, min(index, len(statement.sql)))
            hits.append(_Hit(
                "FQL011",
                f"PostgreSQL's parser rejects this statement ({err.args[0] if err.args else err})",
                "fix the SQL; `fraiseql migrate up` would fail here",
                location,
            ))
            nodes = []
        for node in nodes:
            hits.extend(_rules(node, state, catalog))
            _remember(node, state, catalog)
        if not hits:
            continue
        silenced = _silenced(migration, statement, directives)
        for hit in hits:
            if hit.rule in silenced:
                continue
            line, column = _position(migration.text, statement.offset + hit.location)
            rule = _BY_ID[hit.rule]
            findings.append(
                Finding(migration.name.filename, line, column, rule.id, rule.slug, hit.message,
                        hit.fix)
            )
    findings.sort(key=lambda finding: (finding.line, finding.column, finding.rule))
    return findings


def _position(text: str, offset: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


# ---------------------------------------------------------------------------
# `-- fraiseql-lint: ignore FQL001, set-not-null`

_DIRECTIVE_RE = re.compile(r"fraiseql-lint\s*:\s*(?P<rest>.*)", re.IGNORECASE | re.DOTALL)
_IGNORE_RE = re.compile(r"^ignore\b(?P<names>.*)$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class _Directive:
    line: int
    rules: frozenset[str]


def _directives(migration: ParsedMigration) -> tuple[list[_Directive], list[Finding]]:
    """The ignore comments of the up section, and findings for names no rule has."""
    section = migration.up
    try:
        tokens = scan(section.sql)
    except ParseError:
        return [], []  # e.g. an unterminated quote: the statements report it
    directives: list[_Directive] = []
    findings: list[Finding] = []
    unknown = _BY_ID["FQL010"]
    for token in tokens:
        if token.name not in ("SQL_COMMENT", "C_COMMENT"):
            continue
        body = section.sql[token.start : token.end + 1]
        body = body[2:-2] if token.name == "C_COMMENT" else body[2:]
        match = _DIRECTIVE_RE.search(body)
        if match is None:
            continue
        line, column = _position(migration.text, section.offset + token.start)
        ignore = _IGNORE_RE.match(match.group("rest").strip())
        names = [name for name in re.split(r"[\s,]+", ignore.group("names")) if name] \
            if ignore is not None else []
        if not names:
            findings.append(Finding(
                migration.name.filename, line, column, unknown.id, unknown.slug,
                f"`{body.strip()}` is not a lint directive, so it silences nothing",
                "write `-- fraiseql-lint: ignore FQL001` (rule ids or slugs, comma-separated)",
            ))
            continue
        rules: set[str] = set()
        for name in names:
            rule = rule_named(name)
            if rule is None:
                findings.append(Finding(
                    migration.name.filename, line, column, unknown.id, unknown.slug,
                    f"`{name}` in this fraiseql-lint comment is no rule id or slug, so it "
                    "silences nothing (a typo?)",
                    "use a rule id or slug from docs/lint.md (FQL001, index-not-concurrent)",
                ))
            else:
                rules.add(rule.id)
        directives.append(_Directive(line, frozenset(rules)))
    return directives, findings


def _silenced(
    migration: ParsedMigration, statement: Statement, directives: list[_Directive]
) -> frozenset[str]:
    """Rules silenced for a statement: directives inside it, on its last line after it,
    or in the comment lines right above it."""
    if not directives:
        return frozenset()
    text = migration.text
    lines = text.split("\n")
    first = statement.line
    last, _ = _position(text, statement.offset + len(statement.sql))
    while first > 1 and lines[first - 2].strip().startswith("--"):
        first -= 1
    found: set[str] = set()
    for directive in directives:
        if first <= directive.line <= last:
            found |= directive.rules
    return frozenset(found)


# ---------------------------------------------------------------------------
# Rules

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

#: Functions whose value differs per row: as a new column's default, every row is written.
VOLATILE_FUNCTIONS = frozenset({
    "random", "clock_timestamp", "timeofday", "gen_random_uuid", "uuid_generate_v1",
    "uuid_generate_v1mc", "uuid_generate_v4", "uuidv4", "uuidv7", "nextval", "txid_current",
    "random_normal", "gen_random_bytes",
})
_SERIAL_TYPES = frozenset({"serial", "serial2", "serial4", "serial8", "smallserial",
                           "bigserial"})


def _rules(node: ast.Node, state: _FileState, catalog: _Catalog) -> Iterator[_Hit]:
    if isinstance(node, ast.IndexStmt) and not node.concurrent and not state.is_new(
        node.relation
    ):
        table = _shown(node.relation)
        yield _Hit(
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
    if isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_TABLE:
        yield from _drop_table_rule(node, state)
    yield from _lock_timeout_rule(node, state)


def _alter_table_rules(
    relation: ast.RangeVar, command: ast.AlterTableCmd, state: _FileState, catalog: _Catalog
) -> Iterator[_Hit]:
    table = _shown(relation)
    subtype = command.subtype
    if subtype == AlterTableType.AT_AddColumn and isinstance(command.def_, ast.ColumnDef):
        yield from _add_column_rules(table, command.def_)
    elif subtype == AlterTableType.AT_AddConstraint and isinstance(command.def_, ast.Constraint):
        yield from _add_constraint_rules(table, command.def_)
    elif subtype == AlterTableType.AT_SetNotNull and not catalog.proves_not_null(
        _key(relation)[1], _text(command.name)
    ):
        column = command.name
        yield _Hit(
            "FQL004",
            f"SET NOT NULL on {table}.{column} scans the whole table under ACCESS EXCLUSIVE "
            "(no reads or writes) to prove it holds no NULL",
            f"ALTER TABLE {table} ADD CONSTRAINT {_key(relation)[1]}_{column}_not_null CHECK "
            f"({column} IS NOT NULL) NOT VALID; in a later migration VALIDATE CONSTRAINT it, "
            "then SET NOT NULL (PostgreSQL 12+ skips the scan) and drop the constraint",
        )
    elif subtype == AlterTableType.AT_AlterColumnType:
        yield _Hit(
            "FQL006",
            f"ALTER COLUMN {command.name} TYPE rewrites {table} and rebuilds its indexes under "
            "ACCESS EXCLUSIVE, unless the change is binary-compatible (e.g. varchar(n) to text)",
            "add a column of the new type, backfill it in batches, move the application to "
            "it, drop the old column in a later migration (or silence this rule if the change "
            "is binary-compatible)",
            _location(command.def_),
        )
    elif subtype == AlterTableType.AT_DropColumn and not state.migration.reversible:
        yield _Hit(
            "FQL007",
            f"DROP COLUMN {command.name} deletes the data of {table}.{command.name}, and this "
            "file has no down section: there is no way back",
            "write a `-- migrate:down` section that restores the column, take a backup "
            "before deploying, and drop the column only once no application code reads it",
        )


def _add_column_rules(table: str, column: ast.ColumnDef) -> Iterator[_Hit]:
    constraints = [c for c in column.constraints or () if isinstance(c, ast.Constraint)]
    kinds = {constraint.contype for constraint in constraints}
    default = next((c for c in constraints if c.contype == ConstrType.CONSTR_DEFAULT), None)
    type_name = (
        column.typeName.names[-1].sval
        if column.typeName is not None and column.typeName.names
        else ""
    )
    name = column.colname
    where = _location(column)
    if {ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY} & kinds:
        yield _Hit(
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
        yield _Hit(
            "FQL002",
            f"ADD COLUMN {name} NOT NULL without a DEFAULT fails as soon as {table} has a row "
            "(existing rows would hold NULL)",
            "give it a constant DEFAULT (instant since PostgreSQL 11), or add it nullable, "
            "backfill it, and SET NOT NULL the safe way (see FQL004)",
            where,
        )
    volatile = _volatile_call(default.raw_expr) if default is not None else None
    if volatile is not None or rewrites:
        what = (
            f"DEFAULT {volatile}() is volatile" if volatile is not None
            else f"type {type_name} takes its default from a sequence" if type_name in
            _SERIAL_TYPES else "an identity or generated column is computed for every row"
        )
        yield _Hit(
            "FQL003",
            f"ADD COLUMN {name}: {what}, so PostgreSQL rewrites all of {table} and its indexes "
            "under ACCESS EXCLUSIVE (only constants and now() are instant since PostgreSQL 11)",
            "add the column without that default, then ALTER COLUMN ... SET DEFAULT in a "
            "separate statement (new rows only) and backfill existing rows in batches",
            where,
        )


def _add_constraint_rules(table: str, constraint: ast.Constraint) -> Iterator[_Hit]:
    name = constraint.conname or "..."
    where = _location(constraint)
    if constraint.contype in (ConstrType.CONSTR_UNIQUE, ConstrType.CONSTR_PRIMARY,
                              ConstrType.CONSTR_EXCLUSION) and not constraint.indexname:
        yield _Hit(
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
            target = _shown(constraint.pktable) if constraint.pktable is not None else "..."
            what = (f"FOREIGN KEY {name} checks every row of {table} while blocking writes to "
                    f"{table} and {target}")
        else:
            what = f"CHECK {name} scans every row of {table} under ACCESS EXCLUSIVE"
        yield _Hit(
            "FQL005",
            what,
            f"add it with NOT VALID (instant; new rows are checked), then `ALTER TABLE {table} "
            f"VALIDATE CONSTRAINT {name}` in a later migration (reads and writes go on)",
            where,
        )


def _rename_rule(node: ast.RenameStmt) -> Iterator[_Hit]:
    table = _shown(node.relation)
    if node.renameType == ObjectType.OBJECT_COLUMN:
        what = f"RENAME COLUMN {node.subname} TO {node.newname} on {table}"
        old = f"{table}.{node.subname}"
    elif node.renameType in (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_VIEW,
                             ObjectType.OBJECT_MATVIEW):
        what, old = f"RENAME {table} TO {node.newname}", table
    else:
        return
    yield _Hit(
        "FQL008",
        f"{what} breaks every running copy of the application that still uses {old} "
        "(deploys are not atomic)",
        "expand and contract: add the new name (column, or a view), write to both, move "
        "readers over, and drop the old name in a later migration",
    )


def _drop_table_rule(node: ast.DropStmt, state: _FileState) -> Iterator[_Hit]:
    if state.migration.reversible:
        return
    for names in node.objects or ():
        parts = [part.sval for part in names]
        if _qualified(parts) in state.created:
            continue
        yield _Hit(
            "FQL007",
            f"DROP TABLE {'.'.join(parts)} deletes its data, and this file has no down "
            "section: there is no way back",
            "write a `-- migrate:down` section that recreates it, take a backup before "
            "deploying, and drop it only once no application code uses it",
        )


def _qualified(parts: Sequence[str | None]) -> tuple[str, str]:
    """``["s", "t"]`` -> ("s", "t"); ``["t"]`` -> ("", "t")."""
    names = [_text(part) for part in parts]
    return (names[-2], names[-1]) if len(names) > 1 else ("", names[-1])


def _lock_timeout_rule(node: ast.Node, state: _FileState) -> Iterator[_Hit]:
    if not _is_zero(state.lock_timeout):
        return
    for target, what in _access_exclusive(node, state):
        yield _Hit(
            "FQL009",
            f"{what} takes ACCESS EXCLUSIVE on {target} with lock_timeout disabled "
            f"({state.lock_timeout_source}): while it waits behind a long query, every "
            f"other query on {target} queues behind it",
            "keep a lock_timeout (the default 10s gives up and retries): remove "
            "lock_timeout:0, or write `-- migrate:up lock_timeout:5s` or `SET LOCAL "
            "lock_timeout = '5s'`",
        )


def _access_exclusive(node: ast.Node, state: _FileState) -> Iterator[tuple[str, str]]:
    """(relation, statement) for each existing relation ``node`` locks ACCESS EXCLUSIVE."""
    relations: list[ast.RangeVar] = []
    what = ""
    if isinstance(node, ast.AlterTableStmt) and node.relation is not None and any(
        _alter_needs_access_exclusive(command) for command in node.cmds or ()
    ):
        relations, what = [node.relation], "ALTER TABLE"
    elif isinstance(node, ast.RenameStmt) and node.relation is not None:
        relations, what = [node.relation], "ALTER ... RENAME"
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
        option.defname == "full" for option in node.options or ()
    ):
        relations = [item.relation for item in node.rels or () if item.relation is not None]
        what = "VACUUM FULL"
    elif isinstance(node, ast.DropStmt) and node.removeType in (
        ObjectType.OBJECT_TABLE, ObjectType.OBJECT_MATVIEW, ObjectType.OBJECT_INDEX
    ) and not node.concurrent:
        kind = "INDEX" if node.removeType == ObjectType.OBJECT_INDEX else "TABLE"
        for names in node.objects or ():
            parts = [part.sval for part in names]
            if _qualified(parts) not in state.created and parts[-1] not in state.created_indexes:
                shown = ".".join(parts)
                yield (f"the table of index {shown}" if kind == "INDEX" else shown,
                       f"DROP {kind} {shown}")
        return
    for relation in relations:
        if not state.is_new(relation):
            yield _shown(relation), what


def _alter_needs_access_exclusive(command: ast.AlterTableCmd) -> bool:
    if command.subtype in _WEAKER_THAN_ACCESS_EXCLUSIVE:
        return False
    return not (  # a foreign key takes SHARE ROW EXCLUSIVE
        command.subtype == AlterTableType.AT_AddConstraint
        and isinstance(command.def_, ast.Constraint)
        and command.def_.contype == ConstrType.CONSTR_FOREIGN
    )


def _location(node: object) -> int:
    location = getattr(node, "location", None)
    return location if isinstance(location, int) and location >= 0 else 0


class _FunctionCalls(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def visit_FuncCall(self, _ancestors: object, node: ast.FuncCall) -> None:
        if node.funcname:
            self.names.append(_text(node.funcname[-1].sval))


def _volatile_call(expression: ast.Node | None) -> str | None:
    """The first known-volatile function an expression calls, if any."""
    if expression is None:
        return None
    calls = _FunctionCalls()
    calls(expression)
    return next((name for name in calls.names if name in VOLATILE_FUNCTIONS), None)


_DURATION_NUMBER_RE = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*[a-z]*\s*$", re.IGNORECASE)


def _is_zero(duration: str) -> bool:
    """``0``, ``0s``, ``0ms``: PostgreSQL's "no timeout"."""
    match = _DURATION_NUMBER_RE.match(duration)
    return match is not None and float(match.group("number")) == 0


# ---------------------------------------------------------------------------
# What a statement leaves behind for the next ones


def _remember(node: ast.Node, state: _FileState, catalog: _Catalog) -> None:
    if isinstance(node, ast.CreateStmt) and not node.if_not_exists:
        state.created.add(_key(node.relation))
    elif isinstance(node, ast.CreateTableAsStmt) and node.into is not None and (
        not node.if_not_exists
    ):
        state.created.add(_key(node.into.rel))
    elif isinstance(node, ast.IndexStmt) and node.idxname:
        state.created_indexes.add(node.idxname)
    elif (
        isinstance(node, ast.RenameStmt)
        and node.renameType == ObjectType.OBJECT_TABLE
        and state.is_new(node.relation)
    ):
        state.created.add((_key(node.relation)[0], _text(node.newname)))
    elif isinstance(node, ast.AlterTableStmt):
        for command in node.cmds or ():
            _remember_constraint(_key(node.relation)[1], command, catalog)
    elif isinstance(node, ast.VariableSetStmt) and node.name == "lock_timeout":
        _set_lock_timeout(state, node)
    elif isinstance(node, ast.SelectStmt):
        for target in node.targetList or ():
            call = getattr(target, "val", None)
            if not isinstance(call, ast.FuncCall) or not call.funcname or not call.args:
                continue
            arguments = call.args
            if (
                call.funcname[-1].sval == "set_config"
                and len(arguments) >= 2
                and _constant(arguments[0]) == "lock_timeout"
                and _constant(arguments[1]) is not None
            ):
                state.lock_timeout = str(_constant(arguments[1]))
                state.lock_timeout_source = "set_config('lock_timeout', ...) earlier in the file"


def _remember_constraint(table: str, command: ast.AlterTableCmd, catalog: _Catalog) -> None:
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
            column = _text(test.arg.fields[0].sval)
            name = constraint.conname or f"{table}_{column}_check"
            catalog.not_null_checks[(table, name)] = (column, not constraint.skip_validation)
    elif command.subtype == AlterTableType.AT_ValidateConstraint:
        key = (table, _text(command.name))
        known = catalog.not_null_checks.get(key)
        if known is not None:
            catalog.not_null_checks[key] = (known[0], True)
    elif command.subtype == AlterTableType.AT_DropConstraint:
        catalog.not_null_checks.pop((table, _text(command.name)), None)


def _set_lock_timeout(state: _FileState, node: ast.VariableSetStmt) -> None:
    if node.kind == VariableSetKind.VAR_SET_VALUE and node.args:
        value = _constant(node.args[0])
        if value is None:
            return
        state.lock_timeout = str(value)
        state.lock_timeout_source = "SET lock_timeout earlier in the file"
    elif node.kind in (VariableSetKind.VAR_SET_DEFAULT, VariableSetKind.VAR_RESET):
        state.lock_timeout = "0"  # the server default: no timeout, unless configured
        state.lock_timeout_source = "lock_timeout reset to the server default earlier in the file"


def _constant(node: ast.Node | None) -> str | int | float | None:
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
