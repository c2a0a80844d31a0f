"""Lint migrations for operations that hurt a busy production database.

Pure: :func:`lint_migrations` takes parsed migrations and returns findings; nothing
here reads files or talks to a database.  Each statement of a file's up section is
parsed with PostgreSQL's own parser (pglast) and the rules match the syntax tree;
the SQL statements of a ``DO`` block are parsed out of its PL/pgSQL body and go
through the same rules.  docs/lint.md describes every rule: why it is dangerous and
what to write instead.

State carried through one file: the tables, indexes and schemas it creates (new and
empty, so exempt from the locking rules), the effective ``lock_timeout`` and
``search_path``, and enum values added in the running transaction.  State carried
across files, in order: what session-level ``SET`` left behind (one ``up`` runs every
file in one database session), and ``CHECK (col IS NOT NULL)`` constraints and
whether they are validated, so that ``SET NOT NULL`` after ``VALIDATE CONSTRAINT`` in
a later file passes (rule FQL004).
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass, field

from pglast import ast
from pglast.enums import (
    AlterTableType,
    ConstrType,
    DropBehavior,
    NullTestType,
    ObjectType,
    ReindexObjectType,
    VariableSetKind,
)
from pglast.parser import ParseError, parse_sql, scan
from pglast.visitors import Visitor

from ..errors import MigrationFileError
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
    Rule("FQL007", "drop-without-down",
         "DROP TABLE / DROP COLUMN / DROP SCHEMA ... CASCADE / TRUNCATE in a file with no down "
         "section"),
    Rule("FQL008", "rename",
         "RENAME of a column, table or schema, or SET SCHEMA, that the application uses"),
    Rule("FQL009", "missing-lock-timeout", "ACCESS EXCLUSIVE lock with lock_timeout disabled"),
    Rule("FQL010", "unknown-ignore", "`-- fraiseql-lint:` comment naming no known rule"),
    Rule("FQL011", "syntax-error", "statement PostgreSQL's parser rejects"),
    Rule("FQL012", "blocking-maintenance",
         "VACUUM FULL / CLUSTER / REINDEX without CONCURRENTLY on an existing table"),
    Rule("FQL013", "new-enum-value-used",
         "enum value added by ALTER TYPE ... ADD VALUE used in the same transaction"),
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
    session = _Session(lock_timeout, "lock_timeout in the project settings")
    findings: list[Finding] = []
    for migration in migrations:
        reported = report is None or migration.name.filename in report
        try:
            found = _lint_file(migration, catalog, session)
        except MigrationFileError:
            if reported:
                raise
            continue  # context only: its own lint run reports it
        if reported:
            findings.extend(found)
    return findings


# ---------------------------------------------------------------------------
# State

_Key = tuple[str, str]  # (schema, name) after search_path resolution
_TEMP_SCHEMA = "pg_temp"
_DEFAULT_SEARCH_PATH = ("public",)  # PostgreSQL's "$user", public, with no $user schema


def _shown(relation: ast.RangeVar | None) -> str:
    """The name as written: ``tb_user`` or ``app.tb_user``."""
    if relation is None:
        return ""
    name = relation.relname or ""
    return f"{relation.schemaname}.{name}" if relation.schemaname else name


def _text(value: str | None) -> str:
    return value or ""


@dataclass
class _Session:
    """Settings a session-level ``SET`` leaves for the files that run after it: one
    ``up`` runs every pending file in the same database session."""

    lock_timeout: str
    lock_timeout_source: str
    search_path: tuple[str, ...] = _DEFAULT_SEARCH_PATH


@dataclass
class _Catalog:
    """What earlier statements (of any file) said about NOT NULL check constraints."""

    # (table, constraint name) -> (column, validated)
    not_null_checks: dict[tuple[_Key, str], tuple[str, bool]] = field(default_factory=dict)

    def proves_not_null(self, table: _Key, column: str) -> bool:
        return any(
            key[0] == table and checked == (column, True)
            for key, checked in self.not_null_checks.items()
        )


@dataclass
class _FileState:
    migration: ParsedMigration
    session: _Session
    lock_timeout: str
    lock_timeout_source: str
    search_path: tuple[str, ...]
    line: int = 1  # of the statement being linted
    in_transaction: bool = True  # the statement runs in the file's transaction
    created: set[_Key] = field(default_factory=set)
    created_indexes: set[_Key] = field(default_factory=set)
    created_schemas: set[str] = field(default_factory=set)
    # enum values added in the running transaction: value -> (type, line)
    new_enum_values: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def schema(self) -> str:
        """Where an unqualified name is created or looked up: the first schema of
        ``search_path`` (``public`` unless the migrations SET it)."""
        return next(iter(self.search_path), "public")

    def key(self, schema: str | None, name: str | None, *, temporary: bool = False) -> _Key:
        """Resolve a name.  Unquoted names arrive folded to lower case from the parser,
        quoted ones keep their case.  An unqualified name is the temporary table of that
        name if the file made one (pg_temp comes first in the search), else the one in
        the first schema of search_path."""
        if schema:
            return (_TEMP_SCHEMA if schema.startswith("pg_temp") else schema, _text(name))
        if temporary or (_TEMP_SCHEMA, _text(name)) in self.created:
            return (_TEMP_SCHEMA, _text(name))
        return (self.schema, _text(name))

    def resolve(self, relation: ast.RangeVar | None) -> _Key:
        if relation is None:
            return ("", "")
        return self.key(relation.schemaname, relation.relname,
                        temporary=relation.relpersistence == "t")

    def qualified(self, parts: Sequence[str | None]) -> _Key:
        """``["s", "t"]`` -> ("s", "t"); ``["t"]`` -> (first search_path schema, "t")."""
        names = [_text(part) for part in parts]
        return self.key(names[-2] if len(names) > 1 else None, names[-1])

    def is_new(self, relation: ast.RangeVar | None) -> bool:
        return relation is not None and self.resolve(relation) in self.created

    def set_lock_timeout(self, value: str, *, local: bool, what: str) -> None:
        self.lock_timeout = value
        self.lock_timeout_source = f"{what} on line {self.line}"
        if not local:
            self.session.lock_timeout = value
            self.session.lock_timeout_source = (
                f"{what} on line {self.line} of {self.migration.name.filename}, which lasts "
                "for the rest of the session: one `up` runs every file in one session"
            )

    def set_search_path(self, schemas: tuple[str, ...], *, local: bool) -> None:
        self.search_path = schemas
        if not local:
            self.session.search_path = schemas


@dataclass(frozen=True)
class _Hit:
    rule: str
    message: str
    fix: str
    location: int = 0  # character offset inside the statement


# ---------------------------------------------------------------------------
# One file


def _lint_file(migration: ParsedMigration, catalog: _Catalog, session: _Session) -> list[Finding]:
    section = migration.up
    statements = split_statements(migration, section).statements
    layout, findings = _directives(migration)
    timeouts = dict(section.timeouts)
    if "lock_timeout" in timeouts:
        source = f"lock_timeout:{timeouts['lock_timeout']} on the `-- migrate:up` marker"
        effective = timeouts["lock_timeout"]
    else:
        source, effective = session.lock_timeout_source, session.lock_timeout
    state = _FileState(migration, session, effective, source, session.search_path)
    for index, statement in enumerate(statements):
        state.line = statement.line
        state.in_transaction = section.transaction is True or (
            section.transaction is None and not statement.non_transactional
        )
        if not state.in_transaction:
            state.new_enum_values.clear()  # what ran before has committed
        hits = list(_sql_hits(statement.sql, state, catalog))
        if not hits:
            continue
        silenced = _silenced(migration, statements, index, layout)
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


def _sql_hits(sql: str, state: _FileState, catalog: _Catalog) -> Iterator[_Hit]:
    """Hits of the statement(s) in ``sql``, located inside ``sql``; updates the state."""
    try:
        nodes = [raw.stmt for raw in parse_sql(sql) if raw.stmt is not None]
    except ParseError as err:
        index = err.args[1] if len(err.args) > 1 and isinstance(err.args[1], int) else 0
        yield _Hit(
            "FQL011",
            f"PostgreSQL's parser rejects this statement ({err.args[0] if err.args else err})",
            "fix the SQL; `fraiseql migrate up` would fail here",
            max(0, min(index, len(sql))),
        )
        return
    for node in nodes:
        yield from _rules(node, state, catalog)
        yield from _new_enum_value_rule(node, state)
        if isinstance(node, ast.DoStmt):
            yield from _do_hits(node, sql, state, catalog)
        _remember(node, state, catalog)


def _position(text: str, offset: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - line_start + 1


# ---------------------------------------------------------------------------
# DO blocks: the SQL statements of the PL/pgSQL body

_DOLLAR_QUOTE_RE = re.compile(r"\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$")


def _do_hits(node: ast.DoStmt, sql: str, state: _FileState, catalog: _Catalog) -> Iterator[_Hit]:
    """Lint the statements a ``DO`` block runs: SQL statements, PERFORM, and EXECUTE of a
    string constant.  Hits point at the inner statement when the body is dollar-quoted."""
    from pglast import parse_plpgsql

    options = {item.defname: item for item in node.args or () if isinstance(item, ast.DefElem)}
    language = options.get("language")
    body_option = options.get("as")
    if (
        language is not None
        and isinstance(language.arg, ast.String)
        and _text(language.arg.sval).lower() != "plpgsql"
    ) or body_option is None or not isinstance(body_option.arg, ast.String):
        return
    body = _text(body_option.arg.sval)
    delimiter = "$fraiseql_lint$"
    while delimiter in body:
        delimiter = delimiter[:-1] + "x$"
    try:
        tree = parse_plpgsql(
            f"CREATE FUNCTION fraiseql_lint() RETURNS void LANGUAGE plpgsql AS "
            f"{delimiter}{body}{delimiter}"
        )
    except ParseError as err:
        yield _Hit(
            "FQL011",
            "PostgreSQL's PL/pgSQL parser rejects this DO block "
            f"({err.args[0] if err.args else err})",
            "fix the block; `fraiseql migrate up` would fail here",
        )
        return
    start = getattr(body_option, "arg_location", -1)
    opening = _DOLLAR_QUOTE_RE.match(sql, start) if isinstance(start, int) and start >= 0 else None
    body_at = opening.end() if opening is not None else -1
    if body_at < 0 or sql[body_at : body_at + len(body)] != body:
        body_at = -1  # a '...' body: escapes shift positions, so report at the DO
    line_starts = [0] + [index + 1 for index, char in enumerate(body) if char == "\n"]
    for line, query, dynamic in sorted(_plpgsql_statements(tree), key=lambda item: item[0]):
        if body_at < 0 or not 1 <= line <= len(line_starts):
            where = None
        else:
            line_start = line_starts[line - 1]
            found = -1 if dynamic else body.find(query, line_start)
            if found < 0:  # PERFORM, INTO (blanked out), EXECUTE: the line's first word
                found = line_start + len(body[line_start:]) - len(body[line_start:].lstrip())
            where = body_at + found
        for hit in _sql_hits(query, state, catalog):
            location = 0 if where is None else where + (0 if dynamic else hit.location)
            yield _Hit(hit.rule, hit.message, hit.fix, location)


def _plpgsql_statements(tree: object) -> Iterator[tuple[int, str, bool]]:
    """(line in the body, SQL, dynamic) for each statement a PL/pgSQL tree runs."""
    if isinstance(tree, list):
        for item in tree:
            yield from _plpgsql_statements(item)
        return
    if not isinstance(tree, dict):
        return
    for kind, value in tree.items():
        if isinstance(value, dict) and kind in (
            "PLpgSQL_stmt_execsql", "PLpgSQL_stmt_perform", "PLpgSQL_stmt_dynexecute"
        ):
            expression = value.get("sqlstmt") or value.get("expr") or value.get("query") or {}
            query = expression.get("PLpgSQL_expr", {}).get("query")
            line = value.get("lineno", 0)
            if not isinstance(query, str) or not isinstance(line, int):
                continue
            if kind != "PLpgSQL_stmt_dynexecute":
                yield line, query, False
                continue
            constant = _string_constant(query)
            if constant is not None:
                yield line, constant, True
        else:
            yield from _plpgsql_statements(value)


def _string_constant(expression: str) -> str | None:
    """The value of ``'CREATE INDEX ...'`` (an EXECUTE of a constant); None otherwise."""
    try:
        (raw,) = parse_sql(f"SELECT {expression}")
    except (ParseError, ValueError):
        return None
    select = raw.stmt
    targets = select.targetList if isinstance(select, ast.SelectStmt) else None
    if not targets or len(targets) != 1:
        return None
    value = _constant(getattr(targets[0], "val", None))
    return value if isinstance(value, str) else None


# ---------------------------------------------------------------------------
# `-- fraiseql-lint: ignore FQL001, set-not-null -- why`

_DIRECTIVE_RE = re.compile(r"fraiseql-lint\s*:\s*(?P<rest>.*)", re.IGNORECASE | re.DOTALL)
_IGNORE_RE = re.compile(r"^ignore\b(?P<names>.*)$", re.IGNORECASE | re.DOTALL)
_REASON_RE = re.compile(r"--|:|\n")  # rule names end here; a free-text reason may follow


@dataclass(frozen=True)
class _Directive:
    start: int  # character offsets of the comment in the file text
    end: int
    rules: frozenset[str]


@dataclass
class _Layout:
    """Where the up section's code and comments are: which comment silences what."""

    directives: list[_Directive] = field(default_factory=list)
    code: list[tuple[int, int]] = field(default_factory=list)  # (start, end) in the file
    comment_lines: set[int] = field(default_factory=set)


def _comments(sql: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, kind) of tokens; comments inside a dollar-quoted body (a DO block)
    are included, as ``SQL_COMMENT`` / ``C_COMMENT`` located in ``sql``."""
    for token in scan(sql):
        yield token.start, token.end + 1, token.name
        opening = _DOLLAR_QUOTE_RE.match(sql, token.start)
        if token.name != "SCONST" or opening is None:
            continue
        inner = sql[opening.end() : token.end + 1 - len(opening.group())]
        try:
            inner_tokens = scan(inner)
        except ParseError:
            continue
        for inner_token in inner_tokens:
            if inner_token.name in ("SQL_COMMENT", "C_COMMENT"):
                yield (opening.end() + inner_token.start, opening.end() + inner_token.end + 1,
                       inner_token.name)


def _directives(migration: ParsedMigration) -> tuple[_Layout, list[Finding]]:
    """The layout of the up section with its ignore comments, and findings for names no
    rule has."""
    section = migration.up
    text = migration.text
    layout = _Layout()
    try:
        tokens = list(_comments(section.sql))
    except ParseError:
        return layout, []  # e.g. an unterminated quote: the statements report it
    findings: list[Finding] = []
    unknown = _BY_ID["FQL010"]
    for token_start, token_end, kind in tokens:
        start, end = section.offset + token_start, section.offset + token_end
        if kind not in ("SQL_COMMENT", "C_COMMENT"):
            layout.code.append((start, end))
            continue
        first, _ = _position(text, start)
        last, _ = _position(text, end - 1)
        layout.comment_lines.update(range(first, last + 1))
        body = text[start:end]
        body = body[2:-2] if kind == "C_COMMENT" else body[2:]
        match = _DIRECTIVE_RE.search(body)
        if match is None:
            continue
        line, column = _position(text, start)
        ignore = _IGNORE_RE.match(match.group("rest").strip())
        names = [
            name for name in re.split(r"[\s,]+", _REASON_RE.split(ignore.group("names"), 1)[0])
            if name
        ] if ignore is not None else []
        if not names:
            findings.append(Finding(
                migration.name.filename, line, column, unknown.id, unknown.slug,
                f"`{body.strip()}` is not a lint directive, so it silences nothing",
                "write `-- fraiseql-lint: ignore FQL001` (rule ids or slugs, comma-separated; "
                "a reason may follow ` -- ` or `:`)",
            ))
            continue
        rules: set[str] = set()
        for name in names:
            rule = rule_named(name)
            if rule is None:
                findings.append(Finding(
                    migration.name.filename, line, column, unknown.id, unknown.slug,
                    f"`{name}` in this fraiseql-lint comment is no rule id or slug, so it "
                    "silences nothing (a typo, or a reason without ` -- ` or `:` before it?)",
                    "use a rule id or slug from docs/lint.md (FQL001, index-not-concurrent), "
                    "and write a reason after ` -- `: `ignore FQL001 -- tiny table`",
                ))
            else:
                rules.add(rule.id)
        layout.directives.append(_Directive(start, end, frozenset(rules)))
    return layout, findings


def _silenced(
    migration: ParsedMigration, statements: Sequence[Statement], index: int, layout: _Layout
) -> frozenset[str]:
    """Rules silenced for ``statements[index]``: by directives inside it, after it on the
    line where it ends (when no other statement starts between), or in the comment lines
    right above it (no blank line, no other code between)."""
    if not layout.directives:
        return frozenset()
    text = migration.text
    statement = statements[index]
    start, end = statement.offset, statement.offset + len(statement.sql)
    next_start = statements[index + 1].offset if index + 1 < len(statements) else len(text)
    last_line, _ = _position(text, end - 1)
    found: set[str] = set()
    for directive in layout.directives:
        line, _ = _position(text, directive.start)
        if start <= directive.start < end:
            inside = True
        elif end <= directive.start < next_start:
            inside = line == last_line  # trailing, after the last statement on the line
        else:
            inside = directive.end <= start and _right_above(text, directive, statement, layout)
        if inside:
            found |= directive.rules
    return frozenset(found)


def _right_above(text: str, directive: _Directive, statement: Statement,
                 layout: _Layout) -> bool:
    """Only comments between ``directive`` and the statement, no blank line, and no code
    before the directive on its line."""
    before = [code for code in layout.code if code[0] < directive.start]
    between = [code for code in layout.code if directive.start < code[0] < statement.offset]
    if between:
        return False
    line, _ = _position(text, directive.start)
    if before and _position(text, before[-1][1] - 1)[0] >= line:
        return False
    end_line, _ = _position(text, directive.end - 1)
    return all(number in layout.comment_lines for number in range(end_line + 1, statement.line))


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
    if (
        isinstance(node, ast.IndexStmt)
        and not node.concurrent
        and not state.is_new(node.relation)
        and (node.relation is None or node.relation.inh)  # ON ONLY a partitioned table
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
    if isinstance(node, (ast.RenameStmt, ast.AlterObjectSchemaStmt)):
        yield from _schema_rename_rule(node, state)
    if isinstance(node, (ast.DropStmt, ast.TruncateStmt)):
        yield from _data_loss_rule(node, state)
    yield from _maintenance_rule(node, state)
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
        state.resolve(relation), _text(command.name)
    ):
        column = command.name
        yield _Hit(
            "FQL004",
            f"SET NOT NULL on {table}.{column} scans the whole table under ACCESS EXCLUSIVE "
            "(no reads or writes) to prove it holds no NULL",
            f"ALTER TABLE {table} ADD CONSTRAINT {relation.relname}_{column}_not_null CHECK "
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
    yield _breaking_rename(
        what, old,
        "expand and contract: add the new name (column, or a view), write to both, move "
        "readers over, and drop the old name in a later migration",
    )


def _breaking_rename(what: str, old: str, fix: str) -> _Hit:
    """FQL008: ``what`` renames ``old``, which running copies of the application still use."""
    return _Hit(
        "FQL008",
        f"{what} breaks every running copy of the application that still uses {old} "
        "(deploys are not atomic)",
        fix,
    )


def _data_loss_rule(node: ast.DropStmt | ast.TruncateStmt, state: _FileState) -> Iterator[_Hit]:
    """FQL007: DROP TABLE, DROP SCHEMA ... CASCADE, TRUNCATE with no way back."""
    if state.migration.reversible:
        return
    if isinstance(node, ast.TruncateStmt):
        for relation in node.relations or ():
            if state.is_new(relation):
                continue
            yield _Hit(
                "FQL007",
                f"TRUNCATE {_shown(relation)} deletes every row of it, and this file has no "
                "down section: there is no way back",
                "take a backup before deploying and write a `-- migrate:down` section that "
                "says how to restore the rows (or silence this rule if they are disposable)",
                _location(relation),
            )
        return
    if node.removeType == ObjectType.OBJECT_TABLE:
        for names in node.objects or ():
            parts = [part.sval for part in names]
            if state.qualified(parts) in state.created:
                continue
            yield _Hit(
                "FQL007",
                f"DROP TABLE {'.'.join(_text(part) for part in parts)} deletes its data, and "
                "this file has no down section: there is no way back",
                "write a `-- migrate:down` section that recreates it, take a backup before "
                "deploying, and drop it only once no application code uses it",
            )
    elif node.removeType == ObjectType.OBJECT_SCHEMA and node.behavior == DropBehavior.DROP_CASCADE:
        for name in node.objects or ():
            schema = _text(getattr(name, "sval", None))
            if schema in state.created_schemas:
                continue
            yield _Hit(
                "FQL007",
                f"DROP SCHEMA {schema} CASCADE deletes every table, view, function and type "
                f"in {schema} with their data, and this file has no down section: there is no "
                "way back",
                "drop the objects one by one (each DROP is then linted), write a "
                "`-- migrate:down` section, and take a backup before deploying",
            )


def _schema_rename_rule(
    node: ast.RenameStmt | ast.AlterObjectSchemaStmt, state: _FileState
) -> Iterator[_Hit]:
    """FQL008 for names the application resolves: ALTER SCHEMA ... RENAME, SET SCHEMA."""
    if isinstance(node, ast.RenameStmt):
        if node.renameType != ObjectType.OBJECT_SCHEMA or node.subname in state.created_schemas:
            return
        what, old = f"ALTER SCHEMA {node.subname} RENAME TO {node.newname}", node.subname
        old = f"schema {old}"
    elif node.objectType in _RELATION_KINDS and node.relation is not None and not (
        state.is_new(node.relation)
    ):
        old = _shown(node.relation)
        what = f"SET SCHEMA {node.newschema} on {old}"
    else:
        return
    yield _breaking_rename(
        what, old,
        "keep the old name working while the application moves: create the new schema and "
        "views (or a search_path that holds both), switch the application, and move or drop "
        "the old name in a later migration",
    )


def _maintenance_rule(node: ast.Node, state: _FileState) -> Iterator[_Hit]:
    """FQL012: VACUUM FULL, CLUSTER, REINDEX without CONCURRENTLY on existing tables."""
    if isinstance(node, ast.VacuumStmt) and any(
        option.defname == "full" and _enabled(option) for option in node.options or ()
    ):
        relations = [item.relation for item in node.rels or () if item.relation is not None]
        if not relations:
            yield _Hit("FQL012", _REWRITE.format(what="VACUUM FULL", table="every table of "
                       "the database"), _REWRITE_FIX)
        for relation in relations:
            if not state.is_new(relation):
                yield _Hit("FQL012", _REWRITE.format(what="VACUUM FULL", table=_shown(relation)),
                           _REWRITE_FIX, _location(relation))
    elif isinstance(node, ast.ClusterStmt):
        if node.relation is None:
            yield _Hit("FQL012", _REWRITE.format(what="CLUSTER", table="every table clustered "
                       "before"), _REWRITE_FIX)
        elif not state.is_new(node.relation):
            yield _Hit("FQL012", _REWRITE.format(what="CLUSTER", table=_shown(node.relation)),
                       _REWRITE_FIX, _location(node.relation))
    elif isinstance(node, ast.ReindexStmt) and not any(
        option.defname == "concurrently" and _enabled(option) for option in node.params or ()
    ):
        if node.relation is not None:
            key = state.resolve(node.relation)
            if key in state.created or key in state.created_indexes:
                return
            target = _shown(node.relation)
        else:
            target = f"every index of {node.name or 'the database'}"
        kind = ReindexObjectType(node.kind or 0).name.removeprefix("REINDEX_OBJECT_")
        yield _Hit(
            "FQL012",
            f"REINDEX {kind} {target} without CONCURRENTLY blocks every write to the table "
            "until the indexes are rebuilt, and every read that would use an index being "
            "rebuilt (ACCESS EXCLUSIVE on it)",
            f"REINDEX {kind} CONCURRENTLY {node.relation.relname if node.relation else '...'} "
            "(PostgreSQL 12+): reads and writes go on; fraiseql runs it outside a transaction",
            _location(node.relation),
        )


_REWRITE = ("{what} rewrites {table} under ACCESS EXCLUSIVE: no reads or writes until the "
            "whole table and its indexes are copied")
_REWRITE_FIX = ("run plain VACUUM (no lock on reads or writes) or pg_repack / pg_squeeze, "
                "which rebuild a table online, outside migrations")
_RELATION_KINDS = frozenset({ObjectType.OBJECT_TABLE, ObjectType.OBJECT_VIEW,
                             ObjectType.OBJECT_MATVIEW, ObjectType.OBJECT_FOREIGN_TABLE,
                             ObjectType.OBJECT_SEQUENCE})


def _enabled(option: ast.DefElem) -> bool:
    """``FULL`` / ``FULL true`` / ``FULL on`` / ``FULL 1``, not ``FULL false``."""
    value = option.arg
    if value is None:
        return True
    if isinstance(value, ast.Boolean):
        return bool(value.boolval)
    if isinstance(value, ast.Integer):
        return value.ival != 0
    return _text(getattr(value, "sval", None)).lower() not in ("false", "off", "0", "no")


def _new_enum_value_rule(node: ast.Node, state: _FileState) -> Iterator[_Hit]:
    """FQL013: a value ALTER TYPE ... ADD VALUE added earlier in the same transaction."""
    if not state.new_enum_values or isinstance(node, ast.AlterEnumStmt):
        return
    constants = _StringConstants()
    constants(node)
    for value, location in constants.found:
        added = state.new_enum_values.get(value)
        if added is None:
            continue
        enum, line = added
        yield _Hit(
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


class _StringConstants(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, int]] = []

    def visit_A_Const(self, _ancestors: object, node: ast.A_Const) -> None:
        if isinstance(node.val, ast.String) and node.val.sval is not None:
            self.found.append((node.val.sval, _location(node)))


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
    elif (
        isinstance(node, ast.AlterObjectSchemaStmt)
        and node.objectType in _RELATION_KINDS
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
    elif isinstance(node, ast.RenameStmt) and node.renameType in _RELATION_KINDS and (
        state.is_new(node.relation)
    ):
        state.created.add((state.resolve(node.relation)[0], _text(node.newname)))
    elif isinstance(node, ast.AlterObjectSchemaStmt) and node.objectType in _RELATION_KINDS and (
        state.is_new(node.relation) and node.relation is not None
    ):
        state.created.add((_text(node.newschema), _text(node.relation.relname)))
    elif isinstance(node, ast.AlterTableStmt):
        for command in node.cmds or ():
            _remember_constraint(state.resolve(node.relation), command, catalog)
    elif isinstance(node, ast.AlterEnumStmt) and node.newVal and state.in_transaction:
        enum = ".".join(_text(part.sval) for part in node.typeName or ())
        state.new_enum_values[node.newVal] = (enum, state.line)
    elif isinstance(node, ast.VariableSetStmt) and node.name in ("lock_timeout", "search_path"):
        _set_variable(state, node)
    if isinstance(node, ast.SelectStmt):
        for target in node.targetList or ():
            call = getattr(target, "val", None)
            if isinstance(call, ast.FuncCall) and call.funcname and call.args:
                _set_config(state, call)


def _set_config(state: _FileState, call: ast.FuncCall) -> None:
    """``SELECT set_config('lock_timeout', '0', false)``: false lasts for the session."""
    arguments = call.args or ()
    if not call.funcname or call.funcname[-1].sval != "set_config" or len(arguments) < 2:
        return
    name, value = _constant(arguments[0]), _constant(arguments[1])
    if value is None:
        return
    local_flag = arguments[2] if len(arguments) > 2 else None
    if isinstance(local_flag, ast.TypeCast):
        local_flag = local_flag.arg
    if isinstance(local_flag, ast.A_Const) and isinstance(local_flag.val, ast.Boolean):
        local = bool(local_flag.val.boolval)
    else:
        flag = _constant(local_flag)
        local = str(flag).lower() in ("true", "t", "on", "yes", "1")
    scope = "true" if local else "false"
    if name == "lock_timeout":
        state.set_lock_timeout(str(value), local=local,
                               what=f"set_config('lock_timeout', '{value}', {scope})")
    elif name == "search_path":
        state.set_search_path(_search_path(str(value)), local=local)


def _set_variable(state: _FileState, node: ast.VariableSetStmt) -> None:
    local = bool(node.is_local)
    if node.kind == VariableSetKind.VAR_SET_VALUE and node.args:
        values = [_constant(argument) for argument in node.args]
        if any(value is None for value in values):
            return
        if node.name == "search_path":
            state.set_search_path(
                _search_path(", ".join(f'"{value}"' for value in values)), local=local
            )
            return
        state.set_lock_timeout(str(values[0]), local=local,
                               what=f"SET {'LOCAL ' if local else ''}lock_timeout = {values[0]}")
    elif node.kind in (VariableSetKind.VAR_SET_DEFAULT, VariableSetKind.VAR_RESET):
        if node.name == "search_path":
            state.set_search_path(_DEFAULT_SEARCH_PATH, local=local)
            return
        # the server default: no timeout, unless postgresql.conf or the role says otherwise
        what = "RESET lock_timeout" if node.kind == VariableSetKind.VAR_RESET else (
            f"SET {'LOCAL ' if local else ''}lock_timeout TO DEFAULT")
        state.set_lock_timeout("0", local=local, what=what)


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


def _remember_constraint(table: _Key, command: ast.AlterTableCmd, catalog: _Catalog) -> None:
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
            name = constraint.conname or f"{table[1]}_{column}_check"
            catalog.not_null_checks[(table, name)] = (column, not constraint.skip_validation)
    elif command.subtype == AlterTableType.AT_ValidateConstraint:
        key = (table, _text(command.name))
        known = catalog.not_null_checks.get(key)
        if known is not None:
            catalog.not_null_checks[key] = (known[0], True)
    elif command.subtype == AlterTableType.AT_DropConstraint:
        catalog.not_null_checks.pop((table, _text(command.name)), None)


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
