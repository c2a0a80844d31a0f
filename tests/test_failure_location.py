"""A failing statement is named by its file:line on both paths, whatever the error and
however long it ran, and nothing is run twice to find it; a connection lost while a
migration commits is reported alike by `fraiseql migrate up` on either path and by the
plain `alembic upgrade`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest
from conftest import Project

from fraiseql_alembic.devdb import DevCluster

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent

PATHS = ["direct", "alembic"]


def on_path(project: Project, path: str, first: str, text: str) -> None:
    """Write the first migration; on the Alembic path a `.py` revision comes before it
    (a folder holding one is run by Alembic)."""
    if path == "alembic":
        project.write("000_py.py", 'revision = "000"\ndown_revision = None\n'
                      "def upgrade():\n    pass\n\ndef downgrade():\n    pass\n")
        text = "-- revises: 000\n" + text
    project.write(first, text)


@pytest.mark.parametrize("path", PATHS)
def test_an_error_without_a_position_names_its_line_and_nothing_runs_twice(
    project: Project, path: str,
) -> None:
    on_path(project, path, "001_t.sql", "CREATE SEQUENCE s;\nCREATE TABLE t (id int NOT NULL);\n")
    project.write("002_bad.sql", "SELECT nextval('s');\nCREATE TABLE x (id int);\n"
                  "INSERT INTO t\n  VALUES (NULL);\nSELECT nextval('s');\n")
    result = project.cli("up")
    assert result.exit_code == 1
    assert ('Migration 002_bad.sql failed at line 3, column 1: null value in column "id" of '
            'relation "t" violates not-null constraint [SQLSTATE 23502] in statement '
            "`INSERT INTO t`. The migration was rolled back") in result.output
    assert project.version() == ["001"] and "x" not in project.tables()
    # sequences are not transactional: one call means the statements before it ran once
    assert project.query("SELECT last_value FROM s") == [(1,)]


@pytest.mark.parametrize("path", PATHS)
def test_a_lock_timeout_names_its_line(project: Project, path: str) -> None:
    on_path(project, path, "001_t.sql", "CREATE SEQUENCE s;\nCREATE TABLE t (id int);\n")
    assert project.cli("up").exit_code == 0
    project.write("002_alter.sql", "SELECT nextval('s');\nALTER TABLE t ADD COLUMN y int;\n")
    blocker = psycopg2.connect(project.database_url)
    try:
        with blocker.cursor() as cursor:
            cursor.execute("LOCK TABLE t IN ACCESS SHARE MODE")
        result = project.cli("up", "--lock-timeout", "200ms", "--lock-retries", "0")
    finally:
        blocker.close()
    assert result.exit_code == 1
    assert ("Migration 002_alter.sql could not get a lock at line 2 (canceling statement due "
            "to lock timeout [SQLSTATE 55P03]). Gave up after 1 attempt") in result.output
    assert project.query("SELECT last_value FROM s") == [(1,)]
    assert project.version() == ["001"]


@pytest.mark.parametrize("path", PATHS)
def test_a_statement_timeout_names_its_line(project: Project, path: str) -> None:
    on_path(project, path, "001_t.sql", "CREATE SEQUENCE s;\n")
    project.write("002_slow.sql", "SELECT nextval('s');\nSELECT pg_sleep(60);\n")
    began = time.monotonic()
    result = project.cli("up", "--statement-timeout", "300ms")
    assert time.monotonic() - began < 30
    assert result.exit_code == 1
    assert ("Migration 002_slow.sql failed at line 2, column 1: canceling statement due to "
            "statement timeout [SQLSTATE 57014] in statement `SELECT pg_sleep(60)`") \
        in result.output
    assert project.query("SELECT last_value FROM s") == [(1,)]


@pytest.mark.parametrize("path", PATHS)
def test_a_deferred_constraint_fails_at_commit(project: Project, path: str) -> None:
    on_path(project, path, "001_fk.sql", "CREATE SEQUENCE s;\nCREATE TABLE p (id int PRIMARY KEY);\n"
            "CREATE TABLE c (pid int REFERENCES p DEFERRABLE INITIALLY DEFERRED);\n")
    project.write("002_bad.sql", "SELECT nextval('s');\nINSERT INTO c VALUES (999);\n")
    result = project.cli("up")
    assert result.exit_code == 1
    assert ('Migration 002_bad.sql failed at COMMIT: insert or update on table "c" violates '
            'foreign key constraint "c_pid_fkey" [SQLSTATE 23503] (a deferred constraint is '
            "checked only then). The migration was rolled back") in result.output
    assert project.query("SELECT last_value FROM s") == [(1,)]
    assert project.version() == ["001"]


def test_a_failure_in_the_bookkeeping_is_told_without_running_the_file_again(
    project: Project,
) -> None:
    project.write("001_t.sql", "CREATE SEQUENCE s;\n")
    project.write("002_move.sql", "SELECT nextval('s');\n"
                  "UPDATE alembic_version SET version_num = 'zzz';\n")
    result = project.cli("up")
    assert result.exit_code == 1
    assert ("alembic_version no longer says 001 (changed while 002_move.sql ran?); that "
            "migration was rolled back") in result.output
    assert project.query("SELECT last_value FROM s") == [(1,)]
    assert project.version() == ["001"]


# A deferred constraint trigger that sleeps: the migration's COMMIT takes a minute, long
# enough to end its backend while pg_stat_activity shows it in COMMIT.
SLOW_COMMIT = (
    "CREATE TABLE t (id int);\n"
    "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN PERFORM pg_sleep(60); RETURN NULL; END $$;\n"
    "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED "
    "FOR EACH ROW EXECUTE FUNCTION slow_commit();\n"
)


@pytest.mark.parametrize(("how", "cause"), [
    ("direct", "terminate"), ("alembic", "terminate"), ("plain alembic", "terminate"),
    ("alembic", "restart"),
])
def test_a_backend_killed_during_commit_is_told_alike_on_every_path(
    project: Project, pg_cluster: DevCluster, how: str, cause: str,
) -> None:
    on_path(project, "alembic" if how != "direct" else "direct", "001_slow_commit.sql",
            SLOW_COMMIT)
    argv = ["fraiseql", "migrate", "up"]
    if how == "plain alembic":
        shutil.copy(REPO / "alembic.ini.example", project.root / "alembic.ini")
        argv = ["alembic", "upgrade", "head"]
    env = {**os.environ, "DATABASE_URL": project.database_url}
    subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=project.root, env=env, check=True,
                   capture_output=True, timeout=120)
    project.write("002_insert.sql", "INSERT INTO t VALUES (1);\n")
    process = subprocess.Popen([str(BIN / argv[0]), *argv[1:]], cwd=project.root, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        in_commit = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                     "AND wait_event = 'PgSleep' AND query ~ 'COMMIT\\s*$'")
        deadline = time.monotonic() + 60
        while not project.query(in_commit):
            assert process.poll() is None and time.monotonic() < deadline, "never in COMMIT"
            time.sleep(0.05)
        if cause == "restart":  # the server ends every backend, and is back a moment later
            pg_cluster.restart()
        else:
            assert project.query(f"SELECT pg_terminate_backend(pid) FROM ({in_commit}) c") \
                == [(True,)]
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    # The reason is the driver's: the server's last word when psycopg2 kept it (the
    # direct path reads the results itself), else libpq's.
    message = (r"Migration 002_insert\.sql was interrupted: (terminating connection due to "
               r"administrator command|server closed the connection unexpectedly)\. The "
               r"connection to the database was lost; nothing of this migration was kept\. "
               r"Run the command again once the database is back")
    if how == "plain alembic":
        assert process.returncode != 0
        assert re.search(f"^FAILED: {message}$", out + err, re.MULTILINE), out + err
    else:
        assert process.returncode == 1, err
        assert re.fullmatch(f"Error: {message}\n", err), err
    assert "Traceback" not in out + err
    assert project.version() == ["001"]
    assert project.query("SELECT count(*) FROM t") == [(0,)]
