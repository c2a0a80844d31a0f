"""The schema snapshot on a real PostgreSQL: ``up``/``down --dump-schema`` write a normalised
``schema.sql``, the same bytes from two databases built from the same migrations, and
``check`` fails on a stale or missing one."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import psycopg2
import pytest
from conftest import Project, Tenants
from scenarios import fetch_one, meanwhile

from fraiseql_alembic import api, settings
from fraiseql_alembic.api.snapshot import schema_file_problems
from fraiseql_alembic.engine.backup import server_major, server_version_num
from fraiseql_alembic.engine.cancel import CancelToken, MigrationInterrupted
from fraiseql_alembic.engine.snapshot import SnapshotError

SCHEMA = """-- migrate:up
CREATE TABLE tb_user (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL,
                      seq serial);
CREATE INDEX ix_user_email ON tb_user (email);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.email = lower(NEW.email);
    RETURN NEW;
END$$;
CREATE TRIGGER tr_touch BEFORE UPDATE ON tb_user FOR EACH ROW EXECUTE FUNCTION touch();
CREATE VIEW v_user AS SELECT id, email FROM tb_user;
COMMENT ON TABLE tb_user IS 'users';
GRANT SELECT ON tb_user TO PUBLIC;
-- migrate:down
DROP VIEW v_user;
DROP TABLE tb_user;
DROP FUNCTION touch();
"""
BIO = """-- migrate:up
CREATE SCHEMA app;
CREATE TYPE app.mood AS ENUM ('happy', 'sad');
ALTER TABLE tb_user ADD COLUMN bio text, ADD COLUMN mood app.mood;
-- migrate:down
ALTER TABLE tb_user DROP COLUMN bio, DROP COLUMN mood;
DROP SCHEMA app CASCADE;
"""
STALE = "stale schema snapshot"


def execute(url: str, sql: str) -> None:
    connection = psycopg2.connect(url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


def test_up_writes_a_normalised_snapshot_also_when_up_to_date(project: Project) -> None:
    project.write("001_initial_schema.sql", SCHEMA)
    project.write("002_add_bio.sql", BIO)

    result = project.cli("up", "--dump-schema")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "✓ Schema snapshot: schema.sql (written)"
    text = (project.root / "schema.sql").read_text(encoding="utf-8")
    for made in ("CREATE TABLE public.tb_user (", "CREATE INDEX ix_user_email ON public.tb_user",
                 "CREATE FUNCTION public.touch() RETURNS trigger",
                 "    NEW.email = lower(NEW.email);", "CREATE TRIGGER tr_touch",
                 "CREATE VIEW public.v_user AS", "CREATE SCHEMA app;",
                 "CREATE TYPE app.mood AS ENUM", "COMMENT ON TABLE public.tb_user IS 'users';",
                 "GRANT SELECT ON TABLE public.tb_user TO PUBLIC;", "    bio text,"):
        assert made in text, made
    assert text.endswith("-- 001_initial_schema.sql\n-- 002_add_bio.sql\n")
    for noise in ("Dumped from", "Dumped by", "\\restrict", "\\unrestrict", "\nSET ",
                  "set_config", "OWNER TO", "dump complete", "fraiseql_migrations",
                  "alembic_version"):
        assert noise not in text, noise
    # the file is a dump psql can load: pg_dump's statements, kept whole
    assert "\n-- Name: tb_user; Type: TABLE; Schema: public; Owner: -\n" in text

    again = project.cli("up", "--dump-schema")

    assert again.exit_code == 0, again.output
    assert again.output.splitlines() == ["Already up to date",
                                         "✓ Schema snapshot: schema.sql (unchanged)"]
    assert (project.root / "schema.sql").read_text(encoding="utf-8") == text


def test_down_writes_the_snapshot_again(project: Project) -> None:
    project.write("001_initial_schema.sql", SCHEMA)
    project.write("002_add_bio.sql", BIO)
    assert project.cli("up", "--dump-schema", "db/schema.sql").exit_code == 0
    path = project.root / "db" / "schema.sql"
    assert "bio text" in path.read_text(encoding="utf-8")

    result = project.cli("down", "--force", "--dump-schema", "db/schema.sql")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "✓ Schema snapshot: db/schema.sql (written)"
    text = path.read_text(encoding="utf-8")
    assert "bio text" not in text and "app.mood" not in text
    assert "CREATE TABLE public.tb_user (" in text
    assert text.endswith("-- 001_initial_schema.sql\n")


def test_two_databases_give_the_same_bytes(project: Project, tenants: Tenants) -> None:
    """Other OIDs (objects made and dropped first), another creation order of the
    migrations' objects (one up per migration, a table made before them), same text."""
    project.write("001_initial_schema.sql", SCHEMA)
    project.write("002_add_bio.sql", BIO)
    first, second = tenants(2)
    execute(second, "CREATE TABLE junk (a int); CREATE TYPE junk_t AS (a int); "
            "CREATE FUNCTION junk_f() RETURNS int LANGUAGE sql AS 'SELECT 1'; "
            "DROP TABLE junk; DROP TYPE junk_t; DROP FUNCTION junk_f()")
    api.upgrade(settings.resolve(project.migrations, first),
                dump_schema=project.root / "first.sql")
    other = settings.resolve(project.migrations, second)
    api.upgrade(other, steps=1)
    api.upgrade(other, dump_schema=project.root / "second.sql")

    one = (project.root / "first.sql").read_bytes()
    assert one == (project.root / "second.sql").read_bytes()
    oids = [row[0] for url in (first, second) for row in _oid(url)]
    assert oids[0] != oids[1]  # the databases really differ underneath


def _oid(url: str) -> list[tuple[int]]:
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 'public.tb_user'::regclass::oid::int")
            return cursor.fetchall()
    finally:
        connection.close()


def test_check_passes_on_a_fresh_snapshot_and_fails_on_a_stale_or_missing_one(
    project: Project, shadow_url: str,
) -> None:
    (project.root / "pyproject.toml").write_text(
        '[tool.fraiseql]\ndump_schema = "db/schema.sql"\n', encoding="utf-8")
    project.write("001_initial_schema.sql", SCHEMA)
    check = ("check", "--shadow-database-url", shadow_url)

    missing = project.cli(*check)

    assert missing.exit_code == 1, missing.output
    assert missing.output.splitlines()[0] == (
        "db/schema.sql:1: missing: there is no schema snapshot at this path; write it with "
        "`fraiseql migrate up --dump-schema db/schema.sql` on a database that has every "
        "migration and nothing else")

    written = project.cli("up")  # dump_schema is configured: up writes it
    assert written.output.splitlines()[-1] == "✓ Schema snapshot: db/schema.sql (written)"
    fresh = project.cli(*check)

    assert fresh.exit_code == 0, fresh.output
    assert fresh.output.splitlines() == [
        "✓ No problems (1 migration; database: 0 pending; db/schema.sql matches the "
        "migrations)"]

    project.write("002_add_bio.sql", BIO)  # a new migration, the snapshot not written
    added = project.cli(*check)

    assert added.exit_code == 1, added.output
    (line,) = [line for line in added.output.splitlines() if STALE in line]
    assert line.startswith("db/schema.sql:"), line
    assert line.endswith("write it with `fraiseql migrate up --dump-schema db/schema.sql` "
                         "on a database that has every migration and nothing else")
    assert project.cli(*check, "--no-schema-file").exit_code == 0

    assert project.cli("up").exit_code == 0
    assert project.cli(*check).exit_code == 0
    # an applied migration edited afterwards: the snapshot no longer matches
    project.write("002_add_bio.sql", BIO.replace("bio text", "bio varchar(200)"))
    edited = project.cli(*check)

    assert edited.exit_code == 1, edited.output
    (line,) = [line for line in edited.output.splitlines() if STALE in line]
    number = int(line.split(":")[1])
    expected = (project.root / "db" / "schema.sql").read_text().split("\n")[number - 1]
    assert f"line {number} is `{expected.strip()}` where the migrations build " in line
    assert "bio character varying(200)" in line, line


def test_check_schema_file_flag_without_configuration(project: Project, shadow_url: str
                                                      ) -> None:
    project.write("001_initial_schema.sql", SCHEMA)
    assert project.cli("up", "--dump-schema").exit_code == 0
    assert project.cli("check").output.endswith("(1 migration; database: 0 pending)\n")

    result = project.cli("check", "--schema-file", "--shadow-database-url", shadow_url)

    assert result.exit_code == 0, result.output
    assert "schema.sql matches the migrations" in result.output
    (project.root / "schema.sql").write_text("-- edited by hand\n", encoding="utf-8")
    stale = project.cli("check", "--schema-file", "--shadow-database-url", shadow_url)
    assert stale.exit_code == 1
    assert stale.output.startswith("schema.sql:1: stale schema snapshot: line 1 is `-- "
                                   "edited by hand` where the migrations build `-- The "
                                   "schema the migrations build")


def test_refusals(project: Project, tmp_path: Path) -> None:
    project.write("001_initial_schema.sql", SCHEMA)
    targets = tmp_path / "targets.txt"
    targets.write_text(project.database_url + "\n", encoding="utf-8")

    fleet = project.cli("up", "--dump-schema", "--targets", str(targets))
    assert fleet.exit_code == 2
    assert ("--dump-schema cannot be combined with --targets; run it on one database "
            "(--database-url)") in fleet.output
    fleet_down = project.cli("down", "--force", "--dump-schema", "--targets", str(targets))
    assert fleet_down.exit_code == 2
    assert "--dump-schema cannot be combined with --targets" in fleet_down.output
    dry = project.cli("up", "--dry-run", "--dump-schema")
    assert dry.exit_code == 2 and "--dump-schema cannot be combined with --dry-run" in dry.output
    both = project.cli("up", "--dump-schema", "--no-dump-schema")
    assert both.exit_code == 2
    assert "--dump-schema and --no-dump-schema cannot be combined" in both.output
    assert project.tables() == set()  # nothing ran
    assert not (project.root / "schema.sql").exists()


def test_configured_snapshot_is_skipped_by_the_opt_out_and_a_dry_run(project: Project) -> None:
    (project.root / "alembic.ini").write_text(
        "[alembic]\nfraiseql.dump_schema = true\n", encoding="utf-8")
    project.write("001_initial_schema.sql", SCHEMA)

    assert project.cli("up", "--dry-run").exit_code == 0
    assert project.cli("up", "--no-dump-schema").exit_code == 0
    assert not (project.root / "schema.sql").exists()
    assert project.cli("up").output.splitlines() == [
        "Already up to date", "✓ Schema snapshot: schema.sql (written)"]


def test_missing_pg_dump_after_a_successful_up(project: Project,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    project.write("001_initial_schema.sql", SCHEMA)
    monkeypatch.chdir(project.root)
    monkeypatch.setenv("FRAISEQL_PG_DUMP", str(project.root / "no-pg-dump"))
    own = settings.resolve(project.migrations, project.database_url)

    with pytest.raises(SnapshotError) as raised:
        api.upgrade(own, dump_schema=project.root / "schema.sql")

    assert raised.value.message == (
        "1 migration applied, but the schema snapshot schema.sql was not written: Cannot "
        f"dump the schema: FRAISEQL_PG_DUMP={project.root / 'no-pg-dump'} is not an "
        "executable. Install PostgreSQL's client tools (the server's major version or newer, "
        "e.g. postgresql-client), or run without it (drop --dump-schema, or pass "
        "--no-dump-schema when dump_schema is configured).")
    assert "tb_user" in project.tables()  # the migration itself was applied


def test_json_summary_names_the_snapshot(project: Project) -> None:
    project.write("001_initial_schema.sql", SCHEMA)

    result = project.cli("up", "--json", "--dump-schema")

    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.splitlines()[-1])
    assert summary["event"] == "summary"
    assert summary["schema"] == str(project.root / "schema.sql")
    assert (project.root / "schema.sql").is_file()


def _fake_pg_dump(folder: Path, body: str) -> Path:
    script = folder / "pg_dump"
    script.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    script.chmod(0o755)
    return script


def test_pg_dump_gets_the_password_in_its_environment_only(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The snapshot's pg_dump is called as up --backup's: the URL's password is in
    PGPASSWORD, never on its command line (which `ps` shows every user)."""
    password = settings.sqlalchemy_url(project.database_url).split(":", 2)[2].split("@")[0]
    assert password
    log = tmp_path / "pg_dump.log"
    real = shutil.which("pg_dump")
    assert real is not None
    wrapper = _fake_pg_dump(tmp_path, f'printf "%s\\n" "$*" >> {log}\n'
                            f'printf "PGPASSWORD=%s\\n" "$PGPASSWORD" >> {log}\n'
                            f'exec {real} "$@"')
    monkeypatch.setenv("FRAISEQL_PG_DUMP", str(wrapper))
    project.write("001_initial_schema.sql", SCHEMA)

    assert project.cli("up", "--dump-schema").exit_code == 0

    calls = log.read_text(encoding="utf-8").splitlines()
    argv = [line for line in calls if "--schema-only" in line]
    assert len(argv) == 1 and password not in argv[0], calls
    assert "--exclude-table=*.fraiseql_migrations" in argv[0]
    assert f"PGPASSWORD={password}" in calls


def test_a_pg_dump_older_than_the_server_is_one_line(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = _fake_pg_dump(tmp_path, 'echo "pg_dump (PostgreSQL) 14.9"')
    monkeypatch.setenv("FRAISEQL_PG_DUMP", str(old))
    project.write("001_initial_schema.sql", SCHEMA)

    server = server_major(server_version_num(project.database_url))
    assert server > 14

    result = project.cli("up", "--dump-schema")

    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "Error: 1 migration applied, but the schema snapshot schema.sql was not written: "
        f"Cannot dump the schema: {old} is PostgreSQL 14, older than the server (PostgreSQL "
        f"{server}), and cannot dump it. Install postgresql-client-{server} or newer (or point "
        "FRAISEQL_PG_DUMP at it), or run without it (drop --dump-schema, or pass "
        "--no-dump-schema when dump_schema is configured).")
    assert "tb_user" in project.tables()


def test_a_cancel_stops_check_s_dump_of_the_shadow_database(project: Project,
                                                             shadow_url: str) -> None:
    """check --schema-file: a cancel (Ctrl-C, SIGTERM) while pg_dump dumps the shadow
    database stops pg_dump, which waits here for a table another session locked (with the
    lock timeout, not the cancel, it would fail as a SnapshotError 5 s later)."""
    project.write("001_initial_schema.sql", SCHEMA)
    (project.root / "schema.sql").write_text("-- never compared\n", encoding="utf-8")
    resolved = settings.resolve(project.migrations, project.database_url)
    resolved = replace(resolved, run=replace(resolved.run, lock_timeout="5s"))
    token = CancelToken()
    blocker = psycopg2.connect(shadow_url)

    def build(shadow: settings.Settings) -> None:
        api.upgrade(shadow)
        blocker.cursor().execute("LOCK TABLE tb_user IN ACCESS EXCLUSIVE MODE")
        token.cancel("SIGTERM")

    def emptying() -> object:  # the shadow is emptied after the stop: it waits for the lock
        return fetch_one(shadow_url, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                         "'DROP SCHEMA%' AND wait_event_type = 'Lock'")

    try:
        with meanwhile(emptying, blocker.rollback), pytest.raises(
                MigrationInterrupted, match=r"^Stopped by SIGTERM while the schema was dumped$"):
            schema_file_problems(resolved, project.root / "schema.sql", shadow_url=shadow_url,
                                 build=build, cancel=token)
    finally:
        blocker.close()
