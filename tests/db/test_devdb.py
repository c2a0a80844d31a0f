"""The throwaway cluster the whole test suite stands on."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import psycopg2
import pytest
from scenarios import fetch_one

from fraiseql_alembic.devdb import DevCluster, DevDBError, find_pg_bindir


def test_database_url_connects_to_postgresql(database_url: str, pg_cluster: DevCluster) -> None:
    assert database_url.startswith(f"postgresql://fraiseql:{pg_cluster.password}@127.0.0.1:")
    version = fetch_one(database_url, "SELECT version()")
    assert isinstance(version, str)
    assert version.startswith("PostgreSQL ")
    assert fetch_one(database_url, "SELECT current_database()") == database_url.rsplit("/", 1)[1]


def test_each_test_gets_its_own_empty_database(database_url: str) -> None:
    tables = fetch_one(
        database_url,
        "SELECT count(*) FROM pg_tables"
        " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    )
    assert tables == 0


def test_restart_keeps_data_and_port(pg_cluster: DevCluster, database_url: str) -> None:
    with closing(psycopg2.connect(database_url)) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
        conn.commit()
    port = pg_cluster.port

    pg_cluster.restart()

    assert pg_cluster.port == port
    assert pg_cluster.is_running()
    assert fetch_one(database_url, "SELECT v FROM kept") == "still here"


def test_server_does_not_run_as_root(pg_cluster: DevCluster, database_url: str) -> None:
    data_dir = fetch_one(database_url, "SELECT current_setting('data_directory')")
    assert isinstance(data_dir, str)
    assert Path(data_dir) == pg_cluster.data_dir
    assert Path(data_dir).stat().st_uid != 0
    assert fetch_one(database_url, "SELECT current_setting('listen_addresses')") == "127.0.0.1"


def test_bad_bindir_override_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FRAISEQL_PG_BINDIR", str(tmp_path))
    with pytest.raises(DevDBError, match="holds no initdb"):
        find_pg_bindir()
