"""The lease table is created once however many deploys start at the same moment."""

from __future__ import annotations

import threading

import psycopg2

from fraiseql_alembic.engine import locking
from fraiseql_alembic.engine.locking import lease_table

THREADS = 12
ROUNDS = 8


def test_many_deploys_creating_the_lease_table_at_once_all_succeed(database_url: str) -> None:
    """Concurrent ``CREATE TABLE IF NOT EXISTS`` fails with 42710/23505 in PostgreSQL:
    each round, a dozen sessions create the table in a fresh schema at the same instant."""
    connections = [psycopg2.connect(database_url) for _ in range(THREADS)]
    for connection in connections:
        connection.autocommit = True
    try:
        for round_number in range(ROUNDS):
            schema = f"lease_race_{round_number}"
            with connections[0].cursor() as cursor:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE; CREATE SCHEMA "{schema}"')
            table = lease_table(schema)
            barrier = threading.Barrier(THREADS)
            errors: list[BaseException] = []

            def create(connection: psycopg2.extensions.connection, table: str = table,
                       barrier: threading.Barrier = barrier,
                       errors: list[BaseException] = errors) -> None:
                barrier.wait()
                try:
                    locking.ensure_lease_table(connection, table)
                except BaseException as err:
                    errors.append(err)

            threads = [threading.Thread(target=create, args=(c,)) for c in connections]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == [], f"round {round_number}: {errors[0]!r}"
            with connections[0].cursor() as cursor:
                cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
                assert cursor.fetchone() == (True,)
    finally:
        for connection in connections:
            connection.close()
