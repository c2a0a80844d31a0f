"""Shared fixtures: one throwaway PostgreSQL cluster per session, a fresh database per test."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fraiseql_alembic.devdb import DevCluster, find_pg_bindir


@pytest.fixture(scope="session")
def pg_bindir() -> Path:
    """PostgreSQL's server bin directory; fails (never skips) when PostgreSQL is missing."""
    return find_pg_bindir()


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory, pg_bindir: Path) -> Iterator[DevCluster]:
    """A local cluster for the whole session, stopped at its end.

    As root the server runs as `postgres`, which cannot enter pytest's /tmp/pytest-of-root
    (mode 0700, re-tightened by every pytest run that starts): devdb then picks a fresh
    directory under /tmp, removed at the end.
    """
    as_root = os.geteuid() == 0
    base_dir = None if as_root else tmp_path_factory.mktemp("pg_cluster")
    cluster = DevCluster.start(base_dir, bindir=pg_bindir)
    try:
        yield cluster
    finally:
        cluster.stop()
        if as_root:
            shutil.rmtree(cluster.base_dir, ignore_errors=True)


@pytest.fixture
def database_url(pg_cluster: DevCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """URL (``postgresql://...``) of a new, empty database, dropped after the test."""
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    name = f"t_{slug}_{uuid.uuid4().hex[:8]}"
    url = pg_cluster.create_database(name)
    try:
        yield url
    finally:
        pg_cluster.drop_database(name)


# ---------------------------------------------------------------------------
# Projects and the CLI


class Project:
    """A scratch FraiseQL project: a migrations folder and a database."""

    def __init__(self, root: Path, database_url: str) -> None:
        self.root = root
        self.migrations = root / "migrations"
        self.database_url = database_url

    def write(self, filename: str, text: str) -> Path:
        self.migrations.mkdir(exist_ok=True)
        path = self.migrations / filename
        path.write_text(text, encoding="utf-8")
        return path

    def cli(self, *args: str, input: str | None = None) -> Any:
        """Run ``fraiseql migrate ARGS`` in-process with CliRunner, in the project."""
        from click.testing import CliRunner

        from fraiseql_alembic.cli.app import main

        runner = CliRunner()
        cwd = os.getcwd()
        os.chdir(self.root)
        try:
            return runner.invoke(
                main,
                ["migrate", *args],
                input=input,
                env={"DATABASE_URL": self.database_url},
                catch_exceptions=False,
            )
        finally:
            os.chdir(cwd)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        import psycopg2

        connection = psycopg2.connect(self.database_url)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    def tables(self) -> set[str]:
        return {
            row[0]
            for row in self.query(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        }

    def version(self) -> list[str]:
        if "alembic_version" not in self.tables():
            return []
        return [row[0] for row in self.query("SELECT version_num FROM alembic_version")]


@pytest.fixture
def project(tmp_path: Path, database_url: str) -> Project:
    (tmp_path / "migrations").mkdir()
    return Project(tmp_path, database_url)
