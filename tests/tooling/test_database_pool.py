"""The per-worker DatabasePool of tests/conftest.py: a database a test is done with comes
back to the next test exactly as a new one, or is dropped."""

from __future__ import annotations

import psycopg2
from conftest import DatabasePool

from fraiseql_alembic.devdb import DevCluster


def run(url: str, sql: str) -> None:
    connection = psycopg2.connect(url)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


def names(cluster: DevCluster) -> set[str]:
    connection = psycopg2.connect(cluster.url("postgres"))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT datname FROM pg_database")
            return {str(row[0]) for row in cursor.fetchall()}
    finally:
        connection.close()


def test_a_used_database_comes_back_as_new_or_is_dropped(pg_cluster: DevCluster) -> None:
    pool = DatabasePool(pg_cluster)
    url = pool.take("pool_a")
    new = pool.new
    # what tests leave: tables (an identity column's sequence goes with its table), types,
    # functions, schemas, an extension, a setting, a session still connected (a killed
    # client's) holding a lock and a temporary table
    run(url, "CREATE TABLE t (id serial PRIMARY KEY); CREATE TYPE mood AS ENUM ('ok'); "
             "CREATE TABLE u (id int GENERATED ALWAYS AS IDENTITY); "
             "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'; "
             "CREATE SCHEMA ops; CREATE TABLE ops.history (id int); "
             "CREATE EXTENSION pgcrypto; COMMENT ON TABLE t IS 'x'; "
             "ALTER DATABASE pool_a SET search_path = ops")
    held = psycopg2.connect(url)
    with held.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE scratch (id int); SELECT pg_advisory_lock(1)")
    pool.give_back("pool_a")
    assert pool.free == ["pool_a"] and held.closed == 0
    url = pool.take("pool_b")
    assert pool.free == [] and "pool_a" not in names(pg_cluster)
    assert pool.fingerprint(url) == new
    run(url, "SELECT 1")  # the new name connects; nothing of the last test is there
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('search_path'), (SELECT count(*) FROM "
                           "pg_class WHERE relnamespace = 'public'::regnamespace), "
                           "to_regnamespace('ops'), (SELECT count(*) FROM pg_locks WHERE "
                           "locktype = 'advisory')")
            assert cursor.fetchone() == ('"$user", public', 0, None, 0)
    finally:
        connection.close()
    held.close()
    # what the reset does not undo makes the database go: privileges changed on public
    run(url, "GRANT CREATE ON SCHEMA public TO PUBLIC")
    pool.give_back("pool_b")
    assert pool.free == [] and "pool_b" not in names(pg_cluster)
    # public dropped and made again (its initdb privileges are lost): dropped too
    pool.take("pool_c")
    run(pg_cluster.url("pool_c"), "DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    pool.give_back("pool_c")
    assert pool.free == [] and "pool_c" not in names(pg_cluster)
