"""The `fraiseql migrate` verbs through Click's CliRunner, against a real PostgreSQL."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import pytest
from click.testing import Result
from conftest import Cli, Project
from scenarios import UP_DOWN

from fraiseql_alembic import api, settings

# ---------------------------------------------------------------------------
# init / create: no database needed


def test_init_creates_folder_and_readme_and_is_idempotent(tmp_path: Path, cli: Cli) -> None:
    first = cli("migrate", "init", env={"DATABASE_URL": ""}, catch_exceptions=True)
    assert first.exit_code == 0, first.output
    assert first.output.startswith("✓ Initialized migrations in migrations\n")
    readme = (tmp_path / "migrations" / "README.md").read_text()
    assert "fraiseql migrate create" in readme and "-- migrate:down" in readme
    (tmp_path / "migrations" / "README.md").write_text("team notes\n")
    second = cli("migrate", "init", env={"DATABASE_URL": ""}, catch_exceptions=True)
    assert second.exit_code == 0
    assert "Already initialized" in second.output and "nothing changed" in second.output
    assert (tmp_path / "migrations" / "README.md").read_text() == "team notes\n"


def test_init_custom_path(tmp_path: Path, cli: Cli) -> None:
    result = cli("migrate", "init", "--path", "db/migrations", env={"DATABASE_URL": ""}, catch_exceptions=True)
    assert result.exit_code == 0
    assert (tmp_path / "db" / "migrations" / "README.md").is_file()


def test_init_refuses_a_file_as_path(tmp_path: Path, cli: Cli) -> None:
    (tmp_path / "afile").write_text("x")
    result = cli("migrate", "init", "--path", "afile", env={"DATABASE_URL": ""}, catch_exceptions=True)
    assert result.exit_code == 1
    assert "is a file, not a folder" in result.output


def test_create_numbers_files_and_writes_markers(tmp_path: Path, cli: Cli) -> None:
    cli("migrate", "init", env={"DATABASE_URL": ""}, catch_exceptions=True)
    first = cli("migrate", "create", "initial_schema", env={"DATABASE_URL": ""}, catch_exceptions=True)
    assert first.exit_code == 0
    assert first.output == "✓ Created migrations/001_initial_schema.sql\n"
    second = cli("migrate", "create", "add_comments_table", env={"DATABASE_URL": ""}, catch_exceptions=True)
    assert second.output == "✓ Created migrations/002_add_comments_table.sql\n"
    text = (tmp_path / "migrations" / "002_add_comments_table.sql").read_text()
    assert text.startswith("-- Migration 002: Add comments table\n")
    assert "\n-- migrate:up\n" in text and "\n-- migrate:down\n" in text


def test_create_grows_past_999_and_counts_py_revisions(tmp_path: Path, cli: Cli) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "999_last_small.sql").write_text("SELECT 1;\n")
    result = cli("migrate", "create", "next_one", env={"DATABASE_URL": ""}, catch_exceptions=True)
    assert result.output == "✓ Created migrations/1000_next_one.sql\n"
    (folder / "1001_hand_written.py").write_text("revision = '1001'\ndown_revision = '1000'\n")
    result = cli("migrate", "create", "after_py", env={"DATABASE_URL": ""}, catch_exceptions=True)
    assert result.output == "✓ Created migrations/1002_after_py.sql\n"


@pytest.mark.parametrize(
    "name",
    ["", "   ", "add users", "AddUsers", "../evil", "a/b", "x;drop table y", "$(rm -rf ~)",
     "1_starts_with_digit", "_leading", "a" * 101, "naïve"],
)
def test_create_refuses_bad_names_and_writes_nothing(tmp_path: Path, name: str, cli: Cli) -> None:
    cli("migrate", "init", env={"DATABASE_URL": ""}, catch_exceptions=True)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = cli("migrate", "create", name, env={"DATABASE_URL": ""}, catch_exceptions=True)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: Migration name")
    assert len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_create_suggests_snake_case(tmp_path: Path, cli: Cli) -> None:
    cli("migrate", "init", env={"DATABASE_URL": ""}, catch_exceptions=True)
    result = cli("migrate", "create", "Add Users Table", env={"DATABASE_URL": ""}, catch_exceptions=True)
    assert "(e.g. add_users_table)" in result.output


def test_create_without_init_says_what_to_do(tmp_path: Path, cli: Cli) -> None:
    result = cli("migrate", "create", "x", env={"DATABASE_URL": ""}, catch_exceptions=True)
    assert result.exit_code == 1
    assert "does not exist; run `fraiseql migrate init`" in result.output


# ---------------------------------------------------------------------------
# Database configuration errors


def test_no_database_configured(tmp_path: Path, cli: Cli) -> None:
    cli("migrate", "init", env={"DATABASE_URL": ""}, catch_exceptions=True)
    result = cli("migrate", "status", env={"DATABASE_URL": ""}, catch_exceptions=True)
    assert result.exit_code == 1
    assert result.output.startswith("Error: No database configured")


def test_bad_url_is_one_line_and_masked(tmp_path: Path, cli: Cli) -> None:
    cli("migrate", "init", env={"DATABASE_URL": ""}, catch_exceptions=True)
    result = cli("migrate", "status", "--database-url", "mysql://u:hunter2@h/db", env={"DATABASE_URL": ""}, catch_exceptions=True)
    assert result.exit_code == 1
    assert "hunter2" not in result.output
    assert "is not a PostgreSQL URL" in result.output


def test_unreachable_database_masks_password(tmp_path: Path, cli: Cli) -> None:
    cli("migrate", "init", env={"DATABASE_URL": ""}, catch_exceptions=True)
    url = "postgresql://app:s3cr3tpw@127.0.0.1:1/app"
    for args in (("status",), ("up",), ("down", "--force"), ("up", "--dry-run")):
        result = cli("migrate", *args, "--database-url", url, env={"DATABASE_URL": ""}, catch_exceptions=True)
        assert result.exit_code == 1
        assert "s3cr3tpw" not in result.output
        assert result.output.startswith("Error: Cannot connect to postgresql://app:***@127.0.0.1:1/app")
        assert len(result.output.strip().splitlines()) == 1


#: Where the URL was set -> the words of the line's "Check ... and that the server is running".
URL_SOURCES = [
    ("--database-url", None, "", "--database-url"),
    ("DATABASE_URL", None, "", "DATABASE_URL"),
    ("pyproject.toml", None, '[tool.fraiseql.migrations]\ndatabase_url = "{url}"\n',
     "database_url in pyproject.toml"),
    ("environment", "prod", '[tool.fraiseql.environments.prod]\nurl = "{url}"\n',
     "the url of environment prod"),
]


@pytest.mark.parametrize(("source", "env", "pyproject", "words"), URL_SOURCES,
                         ids=[source for source, *_ in URL_SOURCES])
def test_unreachable_database_names_where_its_url_was_set(
        tmp_path: Path, cli: Cli, source: str, env: str | None, pyproject: str,
        words: str) -> None:
    cli("migrate", "init", env={"DATABASE_URL": ""}, catch_exceptions=True)
    url = "postgresql://app:s3cr3tpw@127.0.0.1:1/app"
    (tmp_path / "pyproject.toml").write_text(pyproject.format(url=url))
    args = ["--database-url", url] if source == "--database-url" else []
    args += ["--env", env] if env else []
    variables = {"DATABASE_URL": url if source == "DATABASE_URL" else ""}
    for verb in (("status",), ("up",), ("check", "--no-shadow"), ("mark-applied", "001")):
        result = cli("migrate", *verb, *args, env=variables, catch_exceptions=True)
        if "No such option" in result.output or "no such option" in result.output:
            continue  # the verb does not take --env
        assert result.exit_code == 1, result.output
        assert result.output.splitlines(keepends=True)[-1] == (  # after `Environment prod: ...`
            "Error: Cannot connect to postgresql://app:***@127.0.0.1:1/app: connection to "
            'server at "127.0.0.1", port 1 failed: Connection refused. '
            f"Check {words} and that the server is running\n"), verb


def test_an_unreachable_target_names_the_targets_file_and_a_shadow_names_no_source(
        tmp_path: Path, cli: Cli, database_url: str) -> None:
    cli("migrate", "init", env={"DATABASE_URL": ""}, catch_exceptions=True)
    (tmp_path / "targets.txt").write_text("postgresql://app@127.0.0.1:1/eu1\n")
    result = cli("migrate", "status", "--targets", "targets.txt", catch_exceptions=True)
    assert ("Cannot connect to postgresql://app@127.0.0.1:1/eu1: connection to server at "
            '"127.0.0.1", port 1 failed: Connection refused. Check the target\'s URL in the '
            "targets file and that the server is running") in result.output
    # the shadow's URL is not the one DATABASE_URL set: no source is named for it
    (tmp_path / "migrations" / "001_a.sql").write_text("CREATE TABLE a (id int);\n")
    (tmp_path / "schema.sql").write_text("-- to compare with what the shadow builds\n")
    result = cli("migrate", "check", "--schema-file", "--shadow-database-url",
                 "postgresql://app@127.0.0.1:1/shadow",
                 env={"DATABASE_URL": database_url}, catch_exceptions=True)
    assert result.exit_code == 1, result.output
    assert ("Cannot connect to postgresql://app@127.0.0.1:1/shadow: connection to server at "
            '"127.0.0.1", port 1 failed: Connection refused. Check the database URL and that '
            "the server is running") in result.output, result.output


def test_wrong_password_is_masked(project: Project) -> None:
    bad = re.sub(r"://([^:]+):[^@]+@", r"://\1:wrongpassword@", project.database_url)
    result = project.cli("status", "--database-url", bad)
    assert result.exit_code == 1
    assert "wrongpassword" not in result.output
    assert "password authentication failed" in result.output


def test_verbose_shows_traceback_without_password(tmp_path: Path, cli: Cli) -> None:
    cli("migrate", "init", env={"DATABASE_URL": ""}, catch_exceptions=True)
    url = "postgresql://app:s3cr3tpw@127.0.0.1:1/app"
    result = cli("migrate", "status", "--verbose", "--database-url", url, env={"DATABASE_URL": ""}, catch_exceptions=True)
    assert result.exit_code == 1
    assert "Traceback" in result.output
    assert "s3cr3tpw" not in result.output


def test_missing_folder_and_path_to_file(project: Project) -> None:
    result = project.cli("status", "--path", "nope")
    assert result.exit_code == 1
    assert "Migrations folder" in result.output and "does not exist" in result.output
    (project.root / "file.txt").write_text("x")
    result = project.cli("up", "--path", "file.txt")
    assert result.exit_code == 1
    assert "is a file, not a folder" in result.output


# ---------------------------------------------------------------------------
# up / status / down


def test_up_status_down_cycle(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.write("002_add_comments_table.sql", UP_DOWN.format(t="b"))
    project.write("003_add_indexes.sql", UP_DOWN.format(t="c"))
    status = project.cli("status")
    assert status.output == (
        "Migration Status:\n"
        "  ○ 001_initial_schema.sql (pending)\n"
        "  ○ 002_add_comments_table.sql (pending)\n"
        "  ○ 003_add_indexes.sql (pending)\n"
    )
    up = project.cli("up", "--steps", "2")
    assert up.output == (
        "✓ Running migration: 001_initial_schema.sql\n"
        "✓ Running migration: 002_add_comments_table.sql\n"
        "✓ Migration completed successfully\n"
    )
    status = project.cli("status")
    lines = status.output.splitlines()
    assert re.fullmatch(r"  ✓ 001_initial_schema\.sql \(applied \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\)", lines[1])
    assert re.fullmatch(r"  ✓ 002_add_comments_table\.sql \(applied .*\)", lines[2])
    assert lines[3] == "  ○ 003_add_indexes.sql (pending)"
    assert project.cli("up").output.count("Running migration") == 1
    assert project.cli("up").output == "Already up to date\n"
    down = project.cli("down", "--steps", "2", "--force")
    assert down.exit_code == 0, down.output
    assert "✓ Rolling back migration: 003_add_indexes.sql\n✓ Rolling back migration: 002_add_comments_table.sql\n" in down.output
    assert project.version() == ["001"]
    assert project.tables() >= {"a"} and not project.tables() & {"b", "c"}
    actions = project.query("SELECT version, action FROM fraiseql_migrations ORDER BY id")
    assert actions == [("001", "applied"), ("002", "applied"), ("003", "applied"),
                       ("003", "rolled_back"), ("002", "rolled_back")]


def test_history_rows_have_the_audit_columns(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.cli("up")
    ((version, name, filename, checksum, ms, by, action),) = project.query(
        "SELECT version, name, filename, checksum, execution_ms, applied_by, action "
        "FROM fraiseql_migrations ORDER BY applied_at")
    assert (version, name, filename, action) == ("001", "initial_schema", "001_initial_schema.sql", "applied")
    assert re.fullmatch(r"[0-9a-f]{64}", checksum)
    assert ms >= 0 and "@" in by and " as " in by


def test_execution_time_is_the_migrations_own(project: Project) -> None:
    project.write("001_slow.sql", "-- migrate:up\nCREATE TABLE a (id int);\nSELECT pg_sleep(0.3);\n")
    project.write("002_fast.sql", "-- migrate:up\nCREATE TABLE b (id int);\n")
    began = time.monotonic()
    assert project.cli("up").exit_code == 0
    run_ms = (time.monotonic() - began) * 1000
    slow, fast = (ms for (ms,) in project.query(
        "SELECT execution_ms FROM fraiseql_migrations ORDER BY version"))
    # milliseconds, of the migration alone: within the run, at least its own sleep
    assert 300 <= slow <= run_ms and 0 <= fast < slow


def test_sql_with_percent_signs_runs_verbatim(project: Project) -> None:
    project.write("001_percent.sql",
                  "-- migrate:up\nCREATE TABLE a (s text DEFAULT '100%% %s %(x)s');\n")
    assert project.cli("up").exit_code == 0
    (default,) = project.query("SELECT column_default FROM information_schema.columns "
                               "WHERE table_name = 'a'")[0]
    assert default == "'100%% %s %(x)s'::text"


def test_a_migration_that_moves_alembic_version_itself_is_rolled_back(project: Project) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    project.write("002_b.sql", "-- migrate:up\nCREATE TABLE b (id int);\n"
                  "UPDATE alembic_version SET version_num = 'elsewhere';\n")
    result = project.cli("up")
    assert result.exit_code == 1
    assert "alembic_version no longer says 001" in result.output
    assert "002_b.sql" in result.output and "rolled back" in result.output
    assert project.version() == ["001"] and "b" not in project.tables()
    assert project.query("SELECT version FROM fraiseql_migrations") == [("001",)]


def test_dry_run_lists_sql_and_writes_nothing(project: Project) -> None:
    project.write("001_initial_schema.sql", "-- migrate:up\nCREATE TABLE a (id int);\n")
    result = project.cli("up", "--dry-run")
    assert result.exit_code == 0
    assert "001_initial_schema.sql" in result.output
    assert "CREATE TABLE a (id int);" in result.output
    assert "Nothing was applied" in result.output
    assert project.tables() == set()  # not even alembic_version or the history table


def test_down_without_terminal_and_without_force_refuses(project: Project) -> None:
    """``echo y | fraiseql migrate down``: the piped answer is not read, and the one line
    says so and what to do (a terminal, or --force)."""
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.cli("up")
    result = project.cli("down", input="y\n")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "Error: Refusing to roll back without confirmation: there is no terminal to ask on "
        "(standard input is not a terminal, and a piped answer such as `echo y |` is not "
        "read). Run it on a terminal to be asked, or add --force to roll back without "
        "asking; nothing was changed")
    assert project.version() == ["001"]


def test_down_when_nothing_applied(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    result = project.cli("down", "--force")
    assert result.exit_code == 1
    assert "Nothing to roll back" in result.output


def test_down_steps_beyond_applied(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.cli("up")
    result = project.cli("down", "--steps", "5", "--force")
    assert result.exit_code == 2
    assert "more than the 1 applied" in result.output
    assert project.version() == ["001"]


def test_down_refuses_irreversible_in_the_middle_and_rolls_back_nothing(project: Project) -> None:
    project.write("001_initial_schema.sql", "CREATE TABLE a (id int);\n")
    project.write("002_b.sql", UP_DOWN.format(t="b"))
    project.cli("up")
    result = project.cli("down", "--steps", "2", "--force")
    assert result.exit_code == 1
    assert "001_initial_schema.sql has no down section" in result.output
    assert "Nothing was rolled back" in result.output
    assert project.version() == ["002"] and "b" in project.tables()


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_bad_steps(project: Project, value: str) -> None:
    for verb in ("up", "down"):
        result = project.cli(verb, "--steps", value)
        assert result.exit_code == 2
        assert "--steps" in result.output


def test_checksum_mismatch_refuses_up(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.write("003_add_indexes.sql", "CREATE INDEX i ON a (id);\n")
    project.cli("up")
    project.write("003_add_indexes.sql", "CREATE INDEX i ON a (id);\nCREATE INDEX j ON a (id);\n")
    project.write("004_more.sql", UP_DOWN.format(t="d"))
    result = project.cli("up")
    assert result.exit_code == 1
    assert result.output.startswith("Error: Migration 003_add_indexes.sql checksum mismatch")
    assert "d" not in project.tables()
    status = project.cli("status")
    assert "✗ 003_add_indexes.sql (applied" in status.output and "MODIFIED" in status.output


def test_crlf_and_bom_are_not_changes(project: Project) -> None:
    path = project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.cli("up")
    path.write_bytes(b"\xef\xbb\xbf" + UP_DOWN.format(t="a").replace("\n", "\r\n").encode())
    project.write("002_b.sql", UP_DOWN.format(t="b"))
    result = project.cli("up")
    assert result.exit_code == 0, result.output
    assert "MODIFIED" not in project.cli("status").output


def test_duplicate_numbers_refused_by_every_command(project: Project) -> None:
    project.write("002_from_alice.sql", "SELECT 1;\n")
    project.write("002_from_bob.sql", "SELECT 2;\n")
    for args in (("up",), ("up", "--dry-run"), ("down", "--force"), ("status",), ("create", "x")):
        result = project.cli(*args)
        assert result.exit_code == 1, args
        assert "002_from_alice.sql and 002_from_bob.sql" in result.output
        assert "Renumber" in result.output
    assert not (project.migrations / "003_x.sql").exists()


def test_verbatim_sql_and_notices(project: Project) -> None:
    project.write(
        "001_initial_schema.sql",
        "CREATE TABLE t (a text, j jsonb);\n"
        "INSERT INTO t VALUES ('100%', '{\"k\": \":name\"}'::jsonb);\n"
        "INSERT INTO t VALUES (':name %s %(x)s', NULL);\n"
        "DO $$ BEGIN RAISE NOTICE 'rows: % (%%)', (SELECT count(*) FROM t); END $$;\n"
        "CREATE FUNCTION f() RETURNS text AS $fn$ SELECT '%'::text $fn$ LANGUAGE sql;\n",
    )
    result = project.cli("up")
    assert result.exit_code == 0, result.output
    assert "  NOTICE: rows: 2 (%)\n" in result.output
    assert project.query("SELECT a, j->>'k' FROM t ORDER BY a") == [
        ("100%", ":name"), (":name %s %(x)s", None)]
    assert project.query("SELECT f()") == [("%",)]


def test_notices_before_a_failure_are_shown_once(project: Project) -> None:
    project.write("001_a.sql", "DO $$ BEGIN RAISE NOTICE 'starting'; END $$;\n"
                  "CREATE TABLE a (id int);\nSELECT * FROM no_such_table;\n")
    result = project.cli("up")
    assert result.exit_code == 1
    assert result.output.count("NOTICE: starting") == 1, result.output
    assert "001_a.sql failed at line 3" in result.output


def test_an_error_with_a_position_is_located_without_running_the_migration_again(
    project: Project,
) -> None:
    project.write("001_seq.sql", "CREATE SEQUENCE s;\n")
    project.write("002_bad.sql", "SELECT nextval('s');\nCREATE TABLE a (id int);\n"
                  "INSERT INTO a\n  SELECT id FROM no_such_table;\n")
    result = project.cli("up")
    assert result.exit_code == 1
    assert ("Migration 002_bad.sql failed at line 4, column 18: relation \"no_such_table\" "
            "does not exist [SQLSTATE 42P01]") in result.output
    assert project.version() == ["001"] and "a" not in project.tables()
    # sequences are not transactional: one call means the statements ran once
    assert project.query("SELECT last_value FROM s") == [(1,)]


def test_a_typo_without_a_keyword_fails_instead_of_vanishing(project: Project) -> None:
    project.write("001_typo.sql", "CREATE TABLE a (id int);\nSELEC 1;\n")
    result = project.cli("up")
    assert result.exit_code == 1
    assert "001_typo.sql failed at line 2, column 1: syntax error at or near \"SELEC\"" in result.output
    assert project.version() == [] and "a" not in project.tables()


def test_sql_standard_function_bodies_run_whole(project: Project) -> None:
    project.write("001_f.sql", "CREATE FUNCTION two() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n"
                  "  SELECT 1;\n  SELECT CASE WHEN true THEN 2 END;\nEND;\nSELECT two();\n")
    result = project.cli("up")
    assert result.exit_code == 0, result.output
    assert project.query("SELECT two()") == [(2,)]


@pytest.mark.parametrize("through_alembic", [False, True])
def test_a_set_in_one_migration_does_not_leak_into_the_next(
    project: Project, through_alembic: bool,
) -> None:
    if through_alembic:  # a .py revision in the folder: the Alembic path
        project.write("000_py.py", 'revision = "000"\ndown_revision = None\n'
                      "def upgrade():\n    pass\n\ndef downgrade():\n    pass\n")
        project.write("001_dump.sql", "-- revises: 000\n-- migrate:up\n"
                      "SELECT pg_catalog.set_config('search_path', '', false);\n"
                      "SET lock_timeout = 0;\nCREATE TABLE public.t (id int);\n")
    else:
        project.write("001_dump.sql", "SELECT pg_catalog.set_config('search_path', '', false);\n"
                      "SET lock_timeout = 0;\nCREATE TABLE public.t (id int);\n")
    project.write("002_look.sql", ("-- revises: 001\n" if through_alembic else "")
                  + "CREATE TABLE seen AS SELECT current_setting('lock_timeout') AS lt, "
                  "current_setting('search_path') AS sp;\n")
    result = project.cli("up", "--lock-timeout", "3s")
    assert result.exit_code == 0, result.output
    assert project.query("SELECT lt, sp FROM seen") == [("3s", '"$user", public')]
    assert project.version() == ["002"]


def test_a_failed_migration_is_located_with_the_session_reset(project: Project) -> None:
    # 002's one-round-trip query starts by resetting what 001 set; when it fails, the
    # reset is rolled back with it, and the statement-by-statement rerun that finds the
    # line must reset again (else CREATE TABLE fails for want of a search_path).
    project.write("001_clear.sql", "SET search_path = '';\nCREATE TABLE public.a (id int);\n")
    project.write("002_bad.sql", "CREATE TABLE b (id int);\nSELECT 1 / 0;\n")
    result = project.cli("up")
    assert result.exit_code == 1
    assert "002_bad.sql" in result.output and "line 2" in result.output, result.output
    assert "division by zero" in result.output and "no schema" not in result.output
    assert project.version() == ["001"]


@pytest.mark.parametrize("forget", [
    "DEALLOCATE ALL;\n",
    "DISCARD PLANS;\n",
    "DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$;\n",
])
def test_migrations_after_one_that_drops_prepared_statements_are_recorded(
    project: Project, forget: str,
) -> None:
    project.write("000_s.sql", "CREATE SEQUENCE s;\n")
    project.write("001_a.sql", "SELECT nextval('s');\n" + forget)
    project.write("002_b.sql", "SELECT nextval('s');\nCREATE TABLE b (id int);\n")
    project.write("003_c.sql", "CREATE TABLE c (id int);\n")
    result = project.cli("up")
    assert result.exit_code == 0, result.output
    assert project.version() == ["003"]
    assert project.query("SELECT last_value FROM s") == [(2,)]  # each ran once: no rerun
    rows = project.query("SELECT version, action, execution_ms IS NOT NULL "
                         "FROM fraiseql_migrations ORDER BY id")
    assert rows == [("000", "applied", True), ("001", "applied", True),
                    ("002", "applied", True), ("003", "applied", True)]


def test_prepared_statements_dropped_where_no_file_says_so(project: Project) -> None:
    # The function hides DEALLOCATE from the file's text: 002's bookkeeping then fails
    # (26000), 002 is run again with plain bookkeeping (it is not its statements that
    # failed), and the statements come back for 003 and 004.
    project.write("001_f.sql", "CREATE FUNCTION forget() RETURNS void LANGUAGE plpgsql AS "
                  "$$ BEGIN EXECUTE 'DEALL' || 'OCATE ALL'; END $$;\nCREATE SEQUENCE s;\n")
    project.write("002_call.sql", "SELECT nextval('s');\nSELECT forget();\n")
    project.write("003_c.sql", "CREATE TABLE c (id int);\n")
    project.write("004_d.sql", "CREATE TABLE d (id int);\n")
    result = project.cli("up")
    assert result.exit_code == 0, result.output
    assert project.version() == ["004"]
    assert project.query("SELECT version FROM fraiseql_migrations WHERE action = 'applied' "
                         "ORDER BY id") == [("001",), ("002",), ("003",), ("004",)]
    assert project.query("SELECT last_value FROM s") == [(2,)]  # once more, to record it


def test_an_error_raised_at_commit_names_the_migration(project: Project) -> None:
    project.write("001_fk.sql", "CREATE TABLE p (id int PRIMARY KEY);\n"
                  "CREATE TABLE c (pid int REFERENCES p DEFERRABLE INITIALLY DEFERRED);\n")
    project.write("002_bad.sql", "INSERT INTO c VALUES (999);\n")
    result = project.cli("up")
    assert result.exit_code == 1
    assert "Migration 002_bad.sql failed at COMMIT: insert or update on table \"c\" violates " \
        "foreign key constraint" in result.output
    assert "rolled back" in result.output
    assert project.version() == ["001"] and project.query("SELECT count(*) FROM c") == [(0,)]


def test_transaction_false_forces_autocommit(project: Project) -> None:
    project.write("001_initial_schema.sql", "CREATE TABLE t (a int);\n")
    project.write("002_vacuum.sql", "-- migrate:up transaction:false\nVACUUM t;\n"
                  "CREATE TABLE u (a int);\n")
    result = project.cli("up")
    assert result.exit_code == 0, result.output
    assert project.version() == ["002"]


def test_failed_concurrent_index_reports_invalid_index(project: Project) -> None:
    project.write("001_initial_schema.sql", "CREATE TABLE t (a int);\nINSERT INTO t VALUES (1), (1);\n")
    project.write("002_unique.sql", "CREATE UNIQUE INDEX CONCURRENTLY t_a_key ON t (a);\n")
    result = project.cli("up")
    assert result.exit_code == 1
    assert "002_unique.sql failed at line 1" in result.output
    assert "could not create unique index" in result.output
    assert "INVALID index public.t_a_key" in result.output
    assert "DROP INDEX CONCURRENTLY public.t_a_key;" in result.output
    assert project.version() == ["001"]


def test_notice_for_ignored_files(project: Project) -> None:
    project.write("001_initial_schema.sql", "SELECT 1;\n")
    project.write("002_x.SQL", "SELECT 1;\n")
    project.write("3-x.sql", "SELECT 1;\n")
    status = project.cli("status")
    assert "Warning: 002_x.SQL is not loaded" in status.output
    assert "Warning: 3-x.sql is not loaded" in status.output


def test_missing_applied_file(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    path = project.write("002_b.sql", UP_DOWN.format(t="b"))
    project.cli("up")
    path.unlink()
    status = project.cli("status")
    assert "✗ 002_b.sql (applied" in status.output and "file MISSING" in status.output
    down = project.cli("down", "--force")
    assert down.exit_code == 1
    assert "002_b.sql is missing" in down.output
    assert project.version() == ["002"]


def test_spec_manual_mark_recipe(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.write("002_add_comments_table.sql", UP_DOWN.format(t="b"))
    project.write("003_add_indexes.sql", UP_DOWN.format(t="c"))
    project.cli("up", "--steps", "1")
    project.query("CREATE TABLE b (id int)")  # someone applied 002 by hand
    project.query("INSERT INTO fraiseql_migrations (version, applied_at) "
                  "VALUES ('002_add_comments_table', NOW())")
    status = project.cli("status")
    assert "○ 002_add_comments_table.sql (pending; marked applied by hand" in status.output
    result = project.cli("up")
    assert result.exit_code == 0, result.output
    assert "Recorded as applied without running it" in result.output
    assert "✓ Running migration: 003_add_indexes.sql" in result.output
    assert "Running migration: 002" not in result.output
    assert project.version() == ["003"]
    assert project.cli("up").output == "Already up to date\n"


def test_empty_migration_shown_and_refused(project: Project) -> None:
    project.cli("create", "nothing_yet")
    status = project.cli("status")
    assert "001_nothing_yet.sql (pending; EMPTY" in status.output
    result = project.cli("up")
    assert result.exit_code == 1
    assert "001_nothing_yet.sql: has no SQL to run" in result.output
    assert project.tables() == set()


def test_begin_commit_wrapped_file_stays_atomic(project: Project) -> None:
    project.write("001_initial_schema.sql", "CREATE TABLE tb_post (published boolean);\n")
    project.write(
        "030_update_post_status.sql",
        "BEGIN;\n\nALTER TABLE tb_post ADD COLUMN status TEXT DEFAULT 'draft';\n"
        "UPDATE tb_post SET status = 'x';\nALTER TABLE tb_post DROP COLUMN no_such_column;\n\nCOMMIT;\n",
    )
    result = project.cli("up")
    assert result.exit_code == 1
    assert "030_update_post_status.sql failed at line 5" in result.output
    columns = {row[0] for row in project.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'tb_post'")}
    assert columns == {"published"}  # the ALTER before the failure was rolled back too
    assert project.version() == ["001"]


def test_file_merged_late_is_reported_and_refused(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.write("041_later.sql", UP_DOWN.format(t="b"))
    project.cli("up")
    project.write("035_from_branch.sql", UP_DOWN.format(t="late"))
    status = project.cli("status")
    assert "✗ 035_from_branch.sql (NEVER RAN HERE, yet below applied migrations" in status.output
    result = project.cli("up")
    assert result.exit_code == 1
    assert "Migration 035_from_branch.sql sits below migrations this database already has" in result.output
    assert "renumber it above the last applied migration" in result.output
    assert "late" not in project.tables()
    (project.migrations / "035_from_branch.sql").rename(project.migrations / "042_from_branch.sql")
    assert project.cli("up").exit_code == 0
    assert "late" in project.tables()


def test_deleted_file_in_the_middle_of_the_chain_is_missing(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    middle = project.write("002_b.sql", UP_DOWN.format(t="b"))
    project.write("003_c.sql", UP_DOWN.format(t="c"))
    project.cli("up")
    middle.unlink()
    status = project.cli("status")
    assert "✗ 002_b.sql (applied" in status.output and "file MISSING" in status.output
    up = project.cli("up")
    assert "Warning: Applied migration 002_b.sql is missing" in up.output


def test_editing_only_the_down_section_is_not_a_change(project: Project) -> None:
    path = project.write("001_initial_schema.sql", "CREATE TABLE a (id int);\n")
    project.cli("up")
    refused = project.cli("down", "--force")
    assert "has no down section" in refused.output
    path.write_text("CREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n")
    assert "MODIFIED" not in project.cli("status").output
    project.write("002_b.sql", UP_DOWN.format(t="b"))
    assert project.cli("up").exit_code == 0
    assert project.cli("down", "--steps", "2", "--force").exit_code == 0
    assert project.tables() & {"a", "b"} == set()


def test_unknown_revises_and_missing_history_schema(project: Project) -> None:
    project.write("001_initial_schema.sql", "-- revises: deadbeef\nSELECT 1;\n")
    result = project.cli("status")
    assert result.exit_code == 1
    assert "001_initial_schema.sql: `-- revises: deadbeef` names no revision" in result.output
    project.write("001_initial_schema.sql", "SELECT 1;\n")
    (project.root / "pyproject.toml").write_text('[tool.fraiseql.migrations]\nhistory_schema = "audit"\n')
    result = project.cli("up")
    assert result.exit_code == 1
    assert "History schema 'audit' does not exist in this database: create it" in result.output
    assert project.version() == []


def test_bad_project_settings_are_one_line(project: Project) -> None:
    (project.root / "pyproject.toml").write_text('[tool.fraiseql.migrations]\nlock_wait = "abc"\n')
    result = project.cli("status")
    assert result.exit_code == 1
    assert "lock_wait = 'abc' in [tool.fraiseql.migrations] in pyproject.toml must be a number" in result.output


def test_create_needs_no_valid_database_url(tmp_path: Path, cli: Cli) -> None:
    cli("migrate", "init", env={"DATABASE_URL": ""}, catch_exceptions=True)
    result = cli("migrate", "create", "x", env={"DATABASE_URL": "mysql://nope"}, catch_exceptions=True)
    assert result.exit_code == 0, result.output


def test_dry_run_with_only_hand_marked_migrations(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.write("002_b.sql", UP_DOWN.format(t="b"))
    project.cli("up", "--steps", "1")
    project.query("INSERT INTO fraiseql_migrations (version, applied_at) VALUES ('002_b', now())")
    result = project.cli("up", "--dry-run")
    assert "Dry run: would record 002_b.sql as applied (marked by hand)" in result.output
    assert "would apply 0" not in result.output


def test_create_ignores_hex_ids_made_only_of_digits(tmp_path: Path, cli: Cli) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "001_first.sql").write_text("SELECT 1;\n")
    (folder / "123456789012_hand_made.py").write_text("revision = '123456789012'\ndown_revision = '001'\n")
    result = cli("migrate", "create", "next_one", env={"DATABASE_URL": ""}, catch_exceptions=True)
    assert result.output == "✓ Created migrations/002_next_one.sql\n"


def test_status_json_and_exit_codes(project: Project) -> None:
    import json

    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.write("002_b.sql", UP_DOWN.format(t="b"))
    assert project.cli("status", "--exit-code").exit_code == 3
    project.cli("up", "--steps", "1")
    document = json.loads(project.cli("status", "--json").output)
    assert document["pending"] == 1 and document["problems"] == 0 and document["heads"] == ["001"]
    first, second = document["migrations"]
    assert (first["version"], first["file"], first["state"]) == ("001", "001_initial_schema.sql", "applied")
    assert first["applied_at"] and first["execution_ms"] is not None and "@" in first["applied_by"]
    assert first["checksum"] == first["recorded_checksum"] and len(first["checksum"]) == 64
    assert (second["state"], second["applied_at"]) == ("pending", None)
    project.cli("up")
    assert project.cli("status", "--exit-code").exit_code == 0
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a").replace("(id int)", "(id bigint)"))
    assert project.cli("status", "--exit-code").exit_code == 4
    assert json.loads(project.cli("status", "--json").output)["migrations"][0]["state"] == "modified"


def test_status_reads_one_snapshot_while_a_deploy_commits(project: Project) -> None:
    """alembic_version and the history are read in one snapshot: a deploy that commits
    between the two reads must not make the migration it applied look untracked."""
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.write("002_b.sql", UP_DOWN.format(t="b"))
    assert project.cli("up", "--steps", "1").exit_code == 0
    deploys: list[Result] = []

    class DeployAfterTheVersionRead(psycopg2.extensions.cursor):
        def execute(self, query: Any, vars: Any = None) -> None:
            super().execute(query, vars)
            if "FROM alembic_version" in str(query) and not deploys:
                deploys.append(project.cli("up"))

    connection = psycopg2.connect(project.database_url, cursor_factory=DeployAfterTheVersionRead)
    connection.autocommit = True
    try:
        report = api.status(settings.resolve(database_url=project.database_url,
                                             cwd=project.root), connection=connection)
    finally:
        connection.close()
    assert [result.exit_code for result in deploys] == [0]
    assert project.version() == ["002"]  # the deploy committed while status read
    assert [(row.filename, row.state) for row in report.rows] == [
        ("001_initial_schema.sql", "applied"), ("002_b.sql", "pending")]


def test_up_json_events(project: Project) -> None:
    import json

    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.write("002_b.sql", "DO $$ BEGIN RAISE NOTICE 'hello'; END $$;\n")
    result = project.cli("up", "--json")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines()]
    assert [(e["event"], e.get("file")) for e in events if e["event"] in ("start", "done")] == [
        ("start", "001_initial_schema.sql"), ("done", "001_initial_schema.sql"),
        ("start", "002_b.sql"), ("done", "002_b.sql")]
    assert {"event": "notice", "text": "NOTICE: hello"} in events
    assert events[-1]["event"] == "summary" and events[-1]["applied"] == ["001", "002"]


def test_spec_insert_clears_never_ran_here(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.write("002_b.sql", UP_DOWN.format(t="b"))
    project.cli("up")
    project.query("DELETE FROM fraiseql_migrations WHERE version = '002'")
    assert "NEVER RAN HERE" in project.cli("status").output
    project.query("INSERT INTO fraiseql_migrations (version, applied_at) VALUES ('002_b', NOW())")
    status = project.cli("status").output
    assert "NEVER RAN HERE" not in status and "✓ 002_b.sql (applied" in status


def test_up_refuses_when_the_current_head_file_is_missing(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    head = project.write("002_b.sql", UP_DOWN.format(t="b"))
    project.cli("up")
    head.unlink()
    project.write("003_c.sql", UP_DOWN.format(t="c"))
    for args in (("up",), ("up", "--dry-run")):
        result = project.cli(*args)
        assert result.exit_code == 1
        assert "The database is at 002_b.sql, whose file is missing" in result.output
    assert "c" not in project.tables()
