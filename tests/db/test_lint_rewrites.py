"""Rule FQL006 against the real PostgreSQL 15: for each type change, lint fires exactly
when the server rewrites the table (a new pg_class.relfilenode), and the changes
PostgreSQL makes in place (varchar(n) -> text, longer varchar, numeric(p,s) -> numeric,
cidr -> inet, timestamp <-> timestamptz under UTC, ...) are not reported."""

from __future__ import annotations

import psycopg2

from fraiseql_alembic.sql.lint import LintPolicy, lint_migrations
from fraiseql_alembic.sql.names import parse_filename
from fraiseql_alembic.sql.parse import ParsedMigration, parse_migration

# (old type, new type, what the migration runs before the ALTER, USING, rewrites)
CASES = [
    ("varchar(10)", "text", "", "", False),
    ("varchar(10)", "varchar(20)", "", "", False),
    ("varchar(10)", "varchar", "", "", False),
    ("character varying(10)", "character varying(10)", "", "", False),
    ("text", "varchar", "", "", False),
    ("numeric(10,2)", "numeric", "", "", False),
    ("numeric(10,2)", "numeric(12,2)", "", "", False),
    ("decimal(10,2)", "numeric(14,2)", "", "", False),
    ("cidr", "inet", "", "", False),
    ("bit varying(5)", "varbit(10)", "", "", False),
    ("timestamp(3)", "timestamp", "", "", False),
    ("timestamp", "timestamptz", "SET TIME ZONE 'UTC';", "", False),
    ("timestamptz", "timestamp", "SET LOCAL TimeZone = 'Etc/UTC';", "", False),
    ("timestamp", "timestamp with time zone", "SELECT set_config('TimeZone', 'UTC', true);",
     "", False),
    ("varchar(10)", "text", "", "USING c", False),
    ("varchar(10)", "text", "", "USING c::text", False),
    # rewrites
    ("varchar(20)", "varchar(10)", "", "", True),
    ("varchar", "varchar(10)", "", "", True),
    ("text", "varchar(10)", "", "", True),
    ("numeric(10,2)", "numeric(10,3)", "", "", True),
    ("numeric(10,2)", "numeric(9,2)", "", "", True),
    ("numeric", "numeric(10,2)", "", "", True),
    ("int", "bigint", "", "", True),
    ("bigint", "int", "", "", True),
    ("inet", "cidr", "", "", True),
    ("json", "jsonb", "", "", True),
    ("char(3)", "char(5)", "", "", True),
    ("char(3)", "text", "", "", True),
    ("timestamp", "timestamp(3)", "", "", True),
    ("timestamp", "timestamptz", "", "", True),  # the server's zone: not known to lint
    ("timestamp", "timestamptz", "SET TIME ZONE 'Europe/Paris';", "", True),
    ("timestamptz", "timestamp", "SET TIME ZONE 'Europe/London';", "", True),
    ("varchar(10)", "text", "", "USING lower(c)", True),
    ("varchar(10)", "text", "", "USING c::varchar(5)", True),
    ("varchar(10)[]", "text[]", "", "", True),
]


def parsed(text: str, filename: str) -> ParsedMigration:
    name = parse_filename(filename)
    assert name is not None
    return parse_migration(name, text)


def lint_fires(create: str, migration: str) -> bool:
    found = lint_migrations([parsed(create, "001_create.sql"), parsed(migration, "002_alter.sql")],
                            report={"002_alter.sql"})
    return "FQL006" in [finding.rule for finding in found]


def test_lint_reports_a_type_change_exactly_when_postgresql_rewrites(database_url: str) -> None:
    connection = psycopg2.connect(database_url)
    wrong: list[str] = []
    try:
        with connection.cursor() as cursor:
            for index, (old, new, before, using, expected) in enumerate(CASES):
                table = f"tb_{index}"
                create = f"CREATE TABLE {table} (id int, c {old});\n"
                alter = f"ALTER TABLE {table} ALTER COLUMN c TYPE {new} {using};\n"
                migration = f"{before}\n{alter}"
                cursor.execute(create + f"INSERT INTO {table} VALUES (1, NULL);")
                connection.commit()
                cursor.execute("SELECT pg_relation_filenode(%s)", (table,))
                (node_before,) = cursor.fetchone()  # type: ignore[misc]
                # the server's own zone, which lint does not see, is not UTC
                cursor.execute("SET TIME ZONE 'America/New_York';")
                cursor.execute(migration)
                cursor.execute("SELECT pg_relation_filenode(%s)", (table,))
                (node_after,) = cursor.fetchone()  # type: ignore[misc]
                connection.commit()
                rewritten = node_after != node_before
                fired = lint_fires(create, migration)
                if rewritten != expected or fired != expected:
                    wrong.append(f"{old} -> {new} {before} {using}: PostgreSQL rewrote="
                                 f"{rewritten}, lint fired={fired}, expected {expected}")
    finally:
        connection.close()
    assert wrong == []


def test_postgres_version_11_rewrites_timestamp_to_timestamptz() -> None:
    create = "CREATE TABLE tb_t (c timestamp);\n"
    migration = "SET TIME ZONE 'UTC';\nALTER TABLE tb_t ALTER COLUMN c TYPE timestamptz;\n"
    files = [parsed(create, "001_create.sql"), parsed(migration, "002_alter.sql")]
    assert lint_migrations(files, report={"002_alter.sql"}) == []
    (finding,) = lint_migrations(files, report={"002_alter.sql"},
                                 policy=LintPolicy(postgres_version=11))
    assert "PostgreSQL 12+ with the session's TimeZone UTC" in finding.message
