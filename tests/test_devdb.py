"""The throwaway cluster the whole test suite stands on."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from fraiseql_alembic.devdb import DevCluster, DevDBError, find_pg_bindir


def _fetch_one(url: str, query: str) -> object:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(query)
        row = cur.fetchone()
        assert row is not None
        return row[0]


@pytest.fixture
def cluster_dir() -> Iterator[Path]:
    """An empty directory for a second cluster, reachable by `postgres` when we are root
    (pytest's tmp_path is not), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="fraiseql-devdb-test-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_database_url_connects_to_postgresql(database_url: str, pg_cluster: DevCluster) -> None:
    assert database_url.startswith(f"postgresql://fraiseql:{pg_cluster.password}@127.0.0.1:")
    version = _fetch_one(database_url, "SELECT version()")
    assert isinstance(version, str)
    assert version.startswith("PostgreSQL ")
    assert _fetch_one(database_url, "SELECT current_database()") == database_url.rsplit("/", 1)[1]


def test_each_test_gets_its_own_empty_database(database_url: str) -> None:
    tables = _fetch_one(
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
    assert _fetch_one(database_url, "SELECT v FROM kept") == "still here"


def test_server_does_not_run_as_root(pg_cluster: DevCluster, database_url: str) -> None:
    data_dir = _fetch_one(database_url, "SELECT current_setting('data_directory')")
    assert isinstance(data_dir, str)
    assert Path(data_dir) == pg_cluster.data_dir
    assert Path(data_dir).stat().st_uid != 0
    assert _fetch_one(database_url, "SELECT current_setting('listen_addresses')") == "127.0.0.1"


def test_cli_start_reuse_url_and_double_stop(cluster_dir: Path, pg_bindir: Path) -> None:
    base = cluster_dir / "cli"
    env = {**os.environ, "FRAISEQL_PG_BINDIR": str(pg_bindir)}

    def devdb(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fraiseql_alembic.devdb", *args, "--dir", str(base)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    started = devdb("start")
    try:
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip()
        assert url.startswith("postgresql://fraiseql:") and "\n" not in url
        assert devdb("start").stdout.strip() == url  # reuses the running cluster
        assert devdb("url").stdout.strip() == url
        assert DevCluster.attach(base).url() == url
        assert _fetch_one(url, "SELECT 1") == 1
    finally:
        first = devdb("stop")
    assert first.returncode == 0, first.stderr
    assert devdb("stop").returncode == 0  # stopping twice is fine
    missing = devdb("url")
    assert missing.returncode == 1
    assert "not running" in missing.stderr
    with pytest.raises(DevDBError, match="not running"):
        DevCluster.attach(base)


def test_bad_bindir_override_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FRAISEQL_PG_BINDIR", str(tmp_path))
    with pytest.raises(DevDBError, match="holds no initdb"):
        find_pg_bindir()
