"""Rule FQL003's table of built-in function volatilities matches the running PostgreSQL's
pg_proc, and its verdicts match what the server does (a new relfilenode: a rewrite)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import psycopg2
from scenarios import REPO

from fraiseql_alembic.sql.lint import builtin_volatility, lint_migrations
from fraiseql_alembic.sql.names import parse_filename
from fraiseql_alembic.sql.parse import parse_migration


def generator() -> ModuleType:
    path = REPO / "tools" / "generate_pg_volatility.py"
    spec = importlib.util.spec_from_file_location("generate_pg_volatility", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_volatility_table_matches_the_servers_pg_proc(database_url: str) -> None:
    tool = generator()
    version, rows = tool.read(database_url)
    assert version.split(".")[0] == builtin_volatility.SERVER_VERSION.split(".")[0]
    shipped = {name: kinds for name, kinds in builtin_volatility.MIXED.items()}
    for letter, names in (("i", builtin_volatility.IMMUTABLE), ("s", builtin_volatility.STABLE),
                          ("v", builtin_volatility.VOLATILE)):
        shipped.update(dict.fromkeys(names, letter))
    assert shipped == rows
    # and the file is exactly what the generator writes for this server
    assert tool.render(builtin_volatility.SERVER_VERSION, rows) == tool.TARGET.read_text(
        encoding="utf-8")


DEFAULTS = [  # (the migration, does PostgreSQL rewrite the table)
    ("ALTER TABLE tb_v ADD COLUMN a float8 DEFAULT random();", True),
    ("ALTER TABLE tb_v ADD COLUMN a uuid DEFAULT gen_random_uuid();", True),
    ("ALTER TABLE tb_v ADD COLUMN a timestamptz DEFAULT clock_timestamp();", True),
    ("ALTER TABLE tb_v ADD COLUMN a timestamptz DEFAULT now();", False),
    ("ALTER TABLE tb_v ADD COLUMN a bigint DEFAULT txid_current();", False),
    ("ALTER TABLE tb_v ADD COLUMN a text DEFAULT lower('X') || to_char(now(), 'YYYY');", False),
    ("CREATE FUNCTION f_one() RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN 1; END $$;\n"
     "ALTER TABLE tb_v ADD COLUMN a int DEFAULT f_one();", False),
    ("CREATE FUNCTION f_one() RETURNS int LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN 1; END $$;\n"
     "ALTER TABLE tb_v ADD COLUMN a int DEFAULT f_one();", False),
    # VOLATILE unless it says otherwise (a plain SQL one the planner inlines may not rewrite,
    # but lint goes by the declaration)
    ("CREATE FUNCTION f_one() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;\n"
     "ALTER TABLE tb_v ADD COLUMN a int DEFAULT f_one();", True),
]


def test_volatile_default_verdicts_match_the_server(database_url: str) -> None:
    connection = psycopg2.connect(database_url)
    wrong: list[str] = []
    name = parse_filename("002_add.sql")
    assert name is not None
    try:
        with connection.cursor() as cursor:
            for migration, expected in DEFAULTS:
                cursor.execute("DROP TABLE IF EXISTS tb_v; DROP FUNCTION IF EXISTS f_one();"
                               "CREATE TABLE tb_v (id int); INSERT INTO tb_v VALUES (1);")
                connection.commit()
                cursor.execute("SELECT pg_relation_filenode('tb_v')")
                (before,) = cursor.fetchone()  # type: ignore[misc]
                cursor.execute(migration)
                cursor.execute("SELECT pg_relation_filenode('tb_v')")
                (after,) = cursor.fetchone()  # type: ignore[misc]
                connection.commit()
                fired = "FQL003" in [finding.rule for finding in lint_migrations(
                    [parse_migration(name, migration)])]
                if (before != after) != expected or fired != expected:
                    wrong.append(f"{migration!r}: rewrote={before != after}, lint={fired}, "
                                 f"expected {expected}")
    finally:
        connection.close()
    assert wrong == []
