"""fraiseql_alembic.engine.batchquery: one query of several statements, read result by result."""

from __future__ import annotations

import threading

import psycopg2
import psycopg2.errors
import pytest
from conftest import Project

from fraiseql_alembic.engine import batchquery


@pytest.fixture
def dbapi(database_url: str):  # type: ignore[no-untyped-def]
    connection = psycopg2.connect(database_url)
    connection.autocommit = True
    yield connection
    connection.close()


def test_completed_statements_are_counted_up_to_the_error(dbapi) -> None:  # type: ignore[no-untyped-def]
    with dbapi.cursor() as cursor:
        cursor.execute("CREATE TABLE t (id int NOT NULL)")
    notices: list[str] = []
    outcome = batchquery.run(dbapi, (
        b"BEGIN;\nSELECT 1;\nDO $$ BEGIN RAISE NOTICE 'first'; END $$;\n"
        b"DO $$ BEGIN RAISE NOTICE 'second'; END $$;\nINSERT INTO t VALUES (NULL);\n"
        b"DO $$ BEGIN RAISE NOTICE 'never'; END $$;\nCOMMIT"), notices.append)
    assert outcome.completed == 4 and not outcome.lost and outcome.position is None
    assert isinstance(outcome.error, psycopg2.errors.NotNullViolation)
    assert outcome.error.pgcode == "23502"
    assert str(outcome.error).startswith('null value in column "id" of relation "t"')
    assert notices == ["NOTICE:  first\n", "NOTICE:  second\n"]
    assert dbapi.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INERROR
    with dbapi.cursor() as cursor:  # psycopg2 goes on using the connection
        cursor.execute("ROLLBACK")
        cursor.execute("SELECT count(*) FROM t")
        assert cursor.fetchone() == (0,)


def test_a_syntax_error_stops_the_query_before_any_statement_with_its_position(dbapi) -> None:  # type: ignore[no-untyped-def]
    outcome = batchquery.run(dbapi, b"SELECT 1;\nSELEC 2;\n", lambda _: None)
    assert outcome.completed == 0 and outcome.position == 11
    assert isinstance(outcome.error, psycopg2.errors.SyntaxError)


def test_rows_and_copy_out_are_read_and_dropped(dbapi) -> None:  # type: ignore[no-untyped-def]
    outcome = batchquery.run(
        dbapi, b"SELECT generate_series(1, 1000);\nCOPY (SELECT 1) TO STDOUT;\nSELECT 'ok'",
        lambda _: None)
    # a command tag's count is kept only for statements that change rows (or COPY them)
    assert outcome == batchquery.Outcome(3, rows=(0, 1, 0))
    with dbapi.cursor() as cursor:
        cursor.execute("SELECT 'still usable'")
        assert cursor.fetchone() == ("still usable",)


def test_a_lost_connection_is_told_and_psycopg2_sees_it(dbapi, database_url: str) -> None:  # type: ignore[no-untyped-def]
    with dbapi.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    killer = psycopg2.connect(database_url)
    killer.autocommit = True

    def kill_when_sleeping() -> None:
        with killer.cursor() as cursor:
            while True:  # until the query below sleeps: then end its backend
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE pid = %s AND wait_event = 'PgSleep'", (pid,))
                if cursor.fetchall():
                    return

    thread = threading.Thread(target=kill_when_sleeping)
    thread.start()
    try:
        outcome = batchquery.run(dbapi, b"SELECT 1;\nSELECT pg_sleep(60);\nSELECT 2",
                                 lambda _: None)
    finally:
        thread.join(timeout=60)
        killer.close()
    assert outcome.lost and outcome.completed == 1
    assert isinstance(outcome.error, psycopg2.OperationalError)
    assert str(outcome.error).startswith("terminating connection due to administrator command")
    assert dbapi.closed


def test_without_libpq_a_file_runs_statement_by_statement_and_is_located(
    project: Project, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batchquery, "available", lambda _dbapi: False)
    project.write("001_t.sql", "CREATE SEQUENCE s;\nCREATE TABLE t (id int NOT NULL);\n")
    project.write("002_bad.sql", "SELECT nextval('s');\nINSERT INTO t VALUES (NULL);\n")
    result = project.cli("up")
    assert result.exit_code == 1
    assert "Migration 002_bad.sql failed at line 2, column 1: null value" in result.output
    assert project.query("SELECT last_value FROM s") == [(1,)]
    assert project.version() == ["001"]
