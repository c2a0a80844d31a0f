"""A failing statement is named by its file:line on both paths, whatever the error and
however long it ran, and nothing is run twice to find it; a connection lost while a
migration commits is reported alike by `fraiseql migrate up` on either path and by the
plain `alembic upgrade`."""

from __future__ import annotations

import psycopg2
import pytest
from conftest import Project
from scenarios import on_path

PATHS = ["direct", "alembic"]




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
    # the message shows the 60 s statement was cancelled by the 300 ms statement_timeout
    result = project.cli("up", "--statement-timeout", "300ms")
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


