"""Every migration starts from the same clean session, as psql gives each file a new one.

Migration 001 leaves something on its session (a temporary table, a prepared statement,
a LISTEN, a WITH HOLD cursor, a cleared search_path, a custom setting, a role, a sequence
value); 002 does what fails, or reads what differs, when that leaked.  Each case runs on
the direct path (`fraiseql migrate up` on SQL files), through Alembic (`alembic upgrade
head` with alembic.ini) and offline (`alembic upgrade head --sql` run by `psql`). The
first two run in-process (a run opens its own session whoever starts it: what the session
carries is the subject, not the command); offline writes the script in-process
(``run_process.in_process``, or the installed `alembic` for the pg_dump-style file) and
runs it with the installed `psql`.
"""

from __future__ import annotations

import shutil
import uuid

import pytest
from alembic.util import CommandError
from conftest import ProcessRunner, Project
from scenarios import REPO, alembic_in_process

PATHS = ["direct", "alembic", "offline"]


def migrate(run_process: ProcessRunner, project: Project, path: str,
            installed: bool = False) -> tuple[int, str]:
    """Apply every migration of the folder the way ``path`` names: exit code, output;
    offline, the script is written by the installed `alembic` when ``installed``."""
    if path == "direct":
        ran = project.cli("up")
        return ran.exit_code, ran.output
    if path == "alembic":
        try:
            alembic_in_process(project.root, project.database_url, ("upgrade", "head"))
        except CommandError as error:  # `alembic` prints it as FAILED: ..., exit 255
            return 255, str(error)
        return 0, ""
    shutil.copy(REPO / "alembic.ini.example", project.root / "alembic.ini")
    argv = ("alembic", "upgrade", "head", "--sql")
    script = run_process(*argv) if installed else run_process.in_process(*argv)
    assert script.returncode == 0, script.stderr
    done = run_process("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", project.database_url,
                       input=script.stdout)
    return done.returncode, done.stdout + done.stderr


#: (what 001 leaves behind, what 002 does, what 002 must have seen)
CASES = {
    "temp table": ("CREATE TEMP TABLE scratch (i int);\n",
                   "CREATE TEMP TABLE scratch (i int);\nCREATE TABLE seen AS SELECT 1 AS v;\n",
                   [(1,)]),
    "prepared statement": ("PREPARE lookup AS SELECT 1;\n",
                           "PREPARE lookup AS SELECT 2;\n"
                           "CREATE TABLE seen AS SELECT count(*)::int AS v "
                           "FROM pg_prepared_statements WHERE NOT name LIKE 'fraiseql%';\n",
                           [(1,)]),
    "listen": ("LISTEN deploys;\n",
               "CREATE TABLE seen AS SELECT count(*)::int AS v FROM pg_listening_channels();\n",
               [(0,)]),
    "cursor with hold": ("DECLARE rows_left CURSOR WITH HOLD FOR SELECT 1;\n",
                         "DECLARE rows_left CURSOR WITH HOLD FOR SELECT 2;\nCLOSE rows_left;\n"
                         "CREATE TABLE seen AS SELECT 1 AS v;\n",
                         [(1,)]),
    "search_path cleared": ("SELECT pg_catalog.set_config('search_path', '', false);\n"
                            "CREATE TABLE public.a (id int);\n",
                            "CREATE TABLE seen AS SELECT current_setting('search_path') AS v;\n",
                            [('"$user", public',)]),
    "custom setting": ("SET fraiseql_test.tenant = 'acme';\n",
                       "CREATE TABLE seen AS SELECT "
                       "coalesce(current_setting('fraiseql_test.tenant', true), '') AS v;\n",
                       [("",)]),
    "sequence value": ("CREATE SEQUENCE s;\nSELECT nextval('s');\n",
                       "DO $$ BEGIN PERFORM currval('s'); CREATE TABLE seen AS SELECT 'leaked' AS v;"
                       " EXCEPTION WHEN object_not_in_prerequisite_state THEN"
                       " CREATE TABLE seen AS SELECT 'clean' AS v; END $$;\n",
                       [("clean",)]),
    "role": ("SET ROLE {role};\n",
             "CREATE TABLE seen AS SELECT current_user::text = session_user::text AS v;\n",
             [(True,)]),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", list(CASES))
def test_a_migration_does_not_see_what_the_one_before_left_on_its_session(
    project: Project, path: str, case: str, run_process: ProcessRunner,
) -> None:
    first, second, seen = CASES[case]
    role = f"fraiseql_test_{uuid.uuid4().hex[:8]}"
    if "{role}" in first:  # a role that may do what the migrating user may (its member)
        user = project.query("SELECT current_user")[0][0]
        project.query(f'CREATE ROLE {role}; GRANT "{user}" TO {role}')
    try:
        project.write("001_leave.sql", first.format(role=role))
        project.write("002_look.sql", second)
        project.write("003_after.sql", "CREATE TABLE after_them (id int);\n")
        code, output = migrate(run_process, project, path)
        assert code == 0, output
        assert project.query("SELECT v FROM seen") == seen
        assert project.version() == ["003"]
        rows = project.query("SELECT version, action FROM fraiseql_migrations ORDER BY id")
        assert rows == [("001", "applied"), ("002", "applied"), ("003", "applied")]
    finally:
        if "{role}" in first:
            project.query(f"DROP ROLE IF EXISTS {role}")


def test_prepared_statements_left_behind_keep_the_bookkeeping_prepared(project: Project) -> None:
    # 002's one-round-trip query finds 001's statement at its head, is refused before
    # any of it runs, and runs again once the session is clean: each migration once,
    # each recorded with its server-measured time (the prepared bookkeeping still works).
    project.write("000_s.sql", "CREATE SEQUENCE s;\n")
    project.write("001_a.sql", "SELECT nextval('s');\nPREPARE mine AS SELECT 1;\n")
    project.write("002_b.sql", "SELECT nextval('s');\nPREPARE mine AS SELECT 2;\n")
    project.write("003_c.sql", "SELECT nextval('s');\nPREPARE yours AS SELECT 3;\n")
    project.write("004_d.sql", "SELECT nextval('s');\n")
    result = project.cli("up")  # in-process: the session the run opened is the subject
    assert result.exit_code == 0, result.output
    assert project.query("SELECT last_value FROM s") == [(4,)]
    rows = project.query("SELECT version, execution_ms IS NOT NULL FROM fraiseql_migrations "
                         "ORDER BY id")
    assert rows == [("000", True), ("001", True), ("002", True), ("003", True), ("004", True)]


def test_a_session_advisory_lock_a_migration_takes_is_kept_until_the_run_ends(
    project: Project,
) -> None:
    # Documented (docs/safety.md): the session's own locks never block it, so a later
    # migration cannot tell; the migration lock, held on the same session, stays too.
    project.write("001_lock.sql", "SELECT pg_advisory_lock(4242);\n")
    project.write("002_try.sql", "CREATE TABLE seen AS SELECT pg_try_advisory_lock(4242) AS v;\n")
    result = project.cli("up")  # in-process: the session the run opened is the subject
    assert result.exit_code == 0, result.output
    assert project.query("SELECT v FROM seen") == [(True,)]
    assert project.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == [(0,)]


def test_offline_script_after_a_pg_dump_style_file_runs_in_psql(project: Project, run_process: ProcessRunner) -> None:
    project.write("001_dump.sql",
                  "SET statement_timeout = 0;\nSET lock_timeout = 0;\n"
                  "SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n"
                  "SELECT pg_catalog.set_config('search_path', '', false);\n"
                  "SET client_min_messages = warning;\nSET row_security = off;\n"
                  "CREATE TABLE public.customer (id integer NOT NULL);\n")
    project.write("002_next.sql", "CREATE TABLE orders (id int);\n")
    code, output = migrate(run_process, project, "offline", installed=True)
    assert code == 0, output
    assert project.version() == ["002"]
    assert {"customer", "orders"} <= project.tables()
    assert project.query("SELECT version FROM fraiseql_migrations ORDER BY id") == [
        ("001",), ("002",)]


def test_a_function_that_drops_every_prepared_statement_outside_one_query(
    project: Project,
) -> None:
    # 002 is not sent as one query (its marker sets a timeout), so nothing prepares the
    # bookkeeping again after it: 003's query finds its session check gone (SQLSTATE
    # 26000) before any of it ran, and runs again once the session is clean.
    project.write("001_f.sql", "CREATE FUNCTION forget() RETURNS void LANGUAGE plpgsql AS "
                  "$$ BEGIN EXECUTE 'DEALL' || 'OCATE ALL'; END $$;\nCREATE SEQUENCE s;\n")
    project.write("002_call.sql", "-- migrate:up lock_timeout:5s\nSELECT forget();\n")
    project.write("003_c.sql", "SELECT nextval('s');\nCREATE TABLE c (id int);\n")
    project.write("004_d.sql", "SELECT nextval('s');\n")
    result = project.cli("up")  # in-process: the session the run opened is the subject
    assert result.exit_code == 0, result.output
    assert project.version() == ["004"]
    assert project.query("SELECT last_value FROM s") == [(2,)]
