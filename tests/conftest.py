"""Shared fixtures: one throwaway PostgreSQL cluster per session, a fresh database per test."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraiseql_alembic.devdb import DevCluster, find_pg_bindir


@pytest.fixture(scope="session")
def pg_bindir() -> Path:
    """PostgreSQL's server bin directory; fails (never skips) when PostgreSQL is missing."""
    return find_pg_bindir()


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory, pg_bindir: Path) -> Iterator[DevCluster]:
    """A local cluster for the whole session (run as an unprivileged user when we are root)."""
    cluster = DevCluster.start(tmp_path_factory.mktemp("pg_cluster"), bindir=pg_bindir)
    try:
        yield cluster
    finally:
        cluster.stop()


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
