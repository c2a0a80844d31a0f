"""Shared fixtures: one throwaway PostgreSQL cluster per session, a fresh database per test."""

from __future__ import annotations

import os
import re
import shutil
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
