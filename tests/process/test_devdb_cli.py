"""`python -m fraiseql_alembic.devdb` as a command: start, reuse, print the URL, stop twice."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from scenarios import fetch_one

from fraiseql_alembic.devdb import DevCluster, DevDBError


@pytest.fixture
def cluster_dir() -> Iterator[Path]:
    """An empty directory for a second cluster, reachable by `postgres` when we are root
    (pytest's tmp_path is not), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="fraiseql-devdb-test-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


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
        assert fetch_one(url, "SELECT 1") == 1
    finally:
        first = devdb("stop")
    assert first.returncode == 0, first.stderr
    assert devdb("stop").returncode == 0  # stopping twice is fine
    missing = devdb("url")
    assert missing.returncode == 1
    assert "not running" in missing.stderr
    with pytest.raises(DevDBError, match="not running"):
        DevCluster.attach(base)


def test_start_export_is_eval_able_and_stop_remove_deletes_the_cluster(
    cluster_dir: Path, pg_bindir: Path
) -> None:
    """`eval "$(... start --export)"` sets DATABASE_URL and FRAISEQL_DEVDB_DIR in the shell;
    `stop --dir "$FRAISEQL_DEVDB_DIR" --remove` stops the server and deletes the directory."""
    script = (
        f'eval "$({sys.executable} -m fraiseql_alembic.devdb start --export)"\n'
        'printf "%s\\n%s\\n" "$DATABASE_URL" "$FRAISEQL_DEVDB_DIR"\n'
    )
    env = {**os.environ, "FRAISEQL_PG_BINDIR": str(pg_bindir), "TMPDIR": str(cluster_dir)}
    started = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                             timeout=120)
    assert started.returncode == 0, started.stderr
    url, directory = started.stdout.splitlines()
    base = Path(directory)
    try:
        assert url.startswith("postgresql://fraiseql:") and base.is_dir()
        assert fetch_one(url, "SELECT 1") == 1
        assert started.stderr == ("Stop and remove it with: python -m fraiseql_alembic.devdb "
                                  'stop --dir "$FRAISEQL_DEVDB_DIR" --remove\n')
    finally:
        stopped = subprocess.run(
            [sys.executable, "-m", "fraiseql_alembic.devdb", "stop", "--dir", directory,
             "--remove"], capture_output=True, text=True, env=env, timeout=120)
        shutil.rmtree(base, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stderr
    assert not base.exists()
