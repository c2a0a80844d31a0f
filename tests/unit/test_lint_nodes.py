"""Lint's parse trees are pglast's without pglast's Python: sql/pgparse.py calls the parser
pglast bundles and returns what pglast returns; sql/lint/nodekinds.py is what
tools/generate_pg_nodes.py writes from the installed pglast; sql/lint/fastast.py builds,
in the classes of sql/lint/nodes.py, the very trees pglast's parse_sql builds (every
slot, locations included, enums as their members' names) on every statement the lint
tests use, the spec's examples and the benchmark's migrations; and refuses what
parse_sql refuses, at the same place.  A lint run never imports pglast."""

from __future__ import annotations

import enum
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pglast.parser
import pytest
import scenarios
from pglast import ast
from pglast.parser import parse_sql
from scenarios import REPO, bench_module
from test_lint import CASES

from fraiseql_alembic.sql import pgparse
from fraiseql_alembic.sql.lint import lint_migrations, nodekinds, nodes
from fraiseql_alembic.sql.lint.fastast import parse_statements
from fraiseql_alembic.sql.names import parse_filename
from fraiseql_alembic.sql.parse import ParsedMigration, parse_migration
from fraiseql_alembic.sql.pgparse import ParseError
from fraiseql_alembic.sql.statements import parse_tree, split_statements

EXTRA = [
    'ALTER TABLE "t\u00ebst\u2615" ADD COLUMN a int NOT NULL',
    "SELECT '\u00e9' || $$x$$, B'101', X'1F', 1.5e3, true, false, null, -2147483649, 0",
    "DROP FUNCTION app.f_old(int, OUT text), g(VARIADIC int[])",
    "CREATE TABLE t (a int) PARTITION BY RANGE (a); SELECT 1 /* \u2615 */; RESET ALL",
    "ALTER TABLE t ALTER COLUMN a TYPE numeric(10, 2) USING a::numeric COLLATE \"C\"",
    "CREATE INDEX CONCURRENTLY i ON t USING gin (data jsonb_path_ops) WHERE a IS NOT NULL",
    "GRANT SELECT ON ALL TABLES IN SCHEMA app TO reader; COMMENT ON COLUMN t.a IS 'x'",
]


def statements() -> list[str]:
    texts = [text for _, bad, good in CASES for text in (bad, good)]
    texts += [value for key, value in vars(scenarios).items()
              if key.startswith("SPEC") and isinstance(value, str)]
    texts += [template(number) for number, template in enumerate(bench_module("lint").TEMPLATES, 7)]
    found = list(EXTRA)
    name = parse_filename("001_any.sql")
    assert name is not None
    for text in texts:
        migration = parse_migration(name, text)
        found += [statement.sql for statement in split_statements(migration,
                                                                  migration.up).statements]
    return found


def difference(ours: object, theirs: object, path: str = "") -> str | None:
    """Where two trees differ, comparing every slot (pglast's == skips locations): a node of
    ours and pglast's of the same kind, an enum member and its name, alike."""
    if isinstance(theirs, enum.Enum):
        theirs = theirs.name
    if isinstance(theirs, ast.Node) and isinstance(ours, nodes.Node):
        if type(ours).__name__ != type(theirs).__name__ or tuple(
                theirs.__slots__) != ours.FIELDS:
            return f"{path}: {type(ours).__name__} != {type(theirs).__name__}"
    elif type(ours) is not type(theirs):
        return f"{path}: {type(ours).__name__} != {type(theirs).__name__}"
    if isinstance(ours, nodes.Node):
        for name in ours.FIELDS:
            found = difference(getattr(ours, name, "<unset>"), getattr(theirs, name, "<unset>"),
                               f"{path}.{name}")
            if found:
                return found
        return None
    if isinstance(ours, tuple) and isinstance(theirs, tuple):
        if len(ours) != len(theirs):
            return f"{path}: {len(ours)} items != {len(theirs)}"
        for index, (mine, other) in enumerate(zip(ours, theirs, strict=True)):
            found = difference(mine, other, f"{path}[{index}]")
            if found:
                return found
        return None
    return None if ours == theirs else f"{path}: {ours!r} != {theirs!r}"


def test_the_trees_are_pglasts() -> None:
    checked = statements()
    assert len(checked) > 200
    wrong = []
    for sql in checked:
        try:
            theirs = tuple(raw.stmt for raw in parse_sql(sql))
        except pglast.parser.ParseError as refused:  # FQL011's cases: refused alike
            with pytest.raises(ParseError) as ours:
                parse_statements(sql)
            assert ours.value.args == refused.args
            continue
        found = difference(tuple(parse_statements(sql)), theirs)
        if found:
            wrong.append(f"{sql[:60]!r}: {found}")
    assert wrong == []
    # the comparison sees a location that differs
    (node,) = parse_statements("SELECT 1")
    (other,) = parse_statements("SELECT 1")
    assert difference(node, other) is None
    assert difference(*parse_statements("CREATE INDEX i ON t (a)"),
                      *parse_statements("CREATE INDEX i ON  t (a)")) is not None


@pytest.mark.parametrize("sql", ["CREATE TABLE t (a int,)", "SELECT '\u2615' FROM WHERE"])
def test_parse_errors_are_parse_sqls(sql: str) -> None:
    with pytest.raises(ParseError) as ours:
        parse_statements(sql)
    with pytest.raises(pglast.parser.ParseError) as theirs:
        parse_sql(sql)
    assert ours.value.args == theirs.value.args


def test_an_empty_text_has_no_statements() -> None:
    assert parse_statements("") == [] == list(parse_sql(""))
    assert parse_statements("-- nothing\n") == []


def test_lint_time_grows_linearly_with_the_files() -> None:
    """4x the migrations may cost at most 8x the CPU time (linear gives 4x, quadratic
    16x); CPU time, best of two, so that a busy machine cannot fail it."""
    templates = bench_module("lint").TEMPLATES

    def folder(count: int) -> list[ParsedMigration]:
        found = []
        for number in range(1, count + 1):
            name = parse_filename(f"{number:04d}_step.sql")
            assert name is not None
            found.append(parse_migration(name, templates[(number - 1) % len(templates)](number)))
        return found

    def cpu(count: int) -> float:
        migrations = folder(count)
        spent = []
        for _ in range(2):
            start = time.process_time()
            lint_migrations(migrations)
            spent.append(time.process_time() - start)
        return min(spent)

    small, large = cpu(100), cpu(400)
    assert large < 8 * max(small, 0.05), f"4x the files took {large / small:.1f}x the time"


def test_a_statement_the_split_parsed_is_not_parsed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """The split classifies a statement with BEGIN ... END or CONCURRENTLY in it by its
    tree (statements._statement_kind); lint reads that same tree (statements.parse_tree)."""
    parsed: list[str] = []
    real = pgparse.parse_json

    def counted(sql: str) -> str:
        parsed.append(sql)
        return real(sql)

    monkeypatch.setattr(pgparse, "parse_json", counted)
    name = parse_filename("0001_once.sql")
    assert name is not None
    migration = parse_migration(name, "CREATE INDEX CONCURRENTLY once_i ON once_t (a);\n"
                                      "DO $$ BEGIN PERFORM 1; END $$;\n")
    parse_tree.cache_clear()
    lint_migrations([migration])
    assert sorted(parsed) == sorted(set(parsed)), parsed  # each parsed once
    assert {"CREATE INDEX CONCURRENTLY once_i ON once_t (a)",
            "DO $$ BEGIN PERFORM 1; END $$"} <= set(parsed)


def test_the_node_kinds_are_the_installed_pglasts() -> None:
    """nodekinds.py is what tools/generate_pg_nodes.py writes from the installed pglast."""
    spec = importlib.util.spec_from_file_location(
        "generate_pg_nodes", REPO / "tools" / "generate_pg_nodes.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert generator.render() == (REPO / "fraiseql_alembic" / "sql" / "lint"
                                  / "nodekinds.py").read_text(encoding="utf-8"), (
        "run `python tools/generate_pg_nodes.py`")
    assert nodekinds.KINDS.count("\nAlterTableCmd ") == 1


def test_enum_members_are_their_names() -> None:
    """What the rules compare with: at run time, an enum member is its name, as the
    trees hold it; a node kind pglast lacks is an error, not a silent class."""
    (node,) = parse_statements("ALTER TABLE t ADD COLUMN a int")
    (command,) = node.cmds
    assert command.subtype == nodes.AlterTableType.AT_AddColumn == "AT_AddColumn"
    assert nodes.enum_name(command.subtype) == "AT_AddColumn"
    assert nodes.enum_name(pglast.enums.AlterTableType.AT_AddColumn) == "AT_AddColumn"
    assert isinstance(node, nodes.ast.AlterTableStmt) and isinstance(node, nodes.ast.Node)
    with pytest.raises(AttributeError):
        nodes.ast.NoSuchStmt  # noqa: B018
    assert node == parse_statements("ALTER  TABLE t ADD COLUMN a int")[0]  # as pglast's ==
    assert node != parse_statements("ALTER TABLE t ADD COLUMN b int")[0]


@pytest.mark.parametrize("sql", [
    "SELECT 1", "", "CREATE TABLE t (a int,)", "SELECT '\u2615' FROM WHERE", "SELECT",
    "SELECT '\u00e9'; DROP TABLE x",
])
def test_the_parser_answers_as_pglasts(sql: str) -> None:
    def outcome(parse: object, error: type[Exception]) -> object:
        try:
            return parse(sql)  # type: ignore[operator]
        except error as refused:
            return refused.args

    function = f"CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN {sql}; END$$"
    theirs = (outcome(pglast.parser.parse_sql_json, pglast.parser.ParseError),
              outcome(lambda _: pglast.parser.parse_plpgsql_json(function),
                      pglast.parser.ParseError))
    library = pgparse.load_library()
    assert library is not None  # here, the parser is called in place
    for parse, plpgsql in (pgparse.bind(library), pgparse.bind(None)):  # None: pglast's
        assert (outcome(parse, ParseError),
                outcome(lambda _, plpgsql=plpgsql: plpgsql(function), ParseError)) == theirs
    assert outcome(pgparse.parse_json, ParseError) == theirs[0]


def test_a_lint_run_never_imports_pglast(tmp_path: Path) -> None:
    """The parser is called in place; pglast's Python (its node classes and enums, about
    60 ms) stays out of a plain lint run, here on a folder that uses every kind of file
    the benchmark has, a DO block and a parse error included."""
    folder = tmp_path / "migrations"
    bench_module("lint").write_corpus(folder, 14)
    (folder / "0015_bad.sql").write_text("CREATE TABLE t (a int,);\n", encoding="utf-8")
    script = ("import sys\n"
              "from fraiseql_alembic.cli import lintfast\n"
              "status = lintfast.run([])\n"
              "loaded = sorted(name for name in sys.modules if name.startswith('pglast'))\n"
              "print(status, loaded, file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, check=True, env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert "FQL011" in done.stdout
    assert done.stderr.strip() == "1 []"
