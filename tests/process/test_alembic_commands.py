"""Alembic's smaller commands in our environment, through the installed `alembic` command."""

from __future__ import annotations

import shutil

import pytest
from conftest import ProcessRunner, Project
from scenarios import REPO, UP_DOWN


@pytest.fixture
def ini_project(project: Project) -> Project:
    shutil.copy(REPO / "alembic.ini.example", project.root / "alembic.ini")
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    return project


def _version_tables(project: Project) -> list[tuple[str, int]]:
    rows = project.query(
        "SELECT schemaname FROM pg_tables WHERE tablename = 'alembic_version' ORDER BY 1")
    return [(schema, project.query(f'SELECT count(*) FROM "{schema}".alembic_version')[0][0])
            for (schema,) in rows]


def test_ensure_version_creates_alembic_version(ini_project: Project, run_process: ProcessRunner) -> None:
    run_process("alembic", "ensure_version", check=True)
    assert _version_tables(ini_project) == [("public", 0)]
    run_process("alembic", "ensure_version", check=True)  # again: nothing to do
    assert _version_tables(ini_project) == [("public", 0)]
    assert run_process("alembic", "current", check=True).stdout == ""
    run_process("alembic", "upgrade", "head", check=True)
    assert _version_tables(ini_project) == [("public", 1)]


def test_ensure_version_uses_the_search_path_schema(ini_project: Project, run_process: ProcessRunner) -> None:
    database = ini_project.query("SELECT current_database()")[0][0]
    ini_project.query(f'CREATE SCHEMA app; ALTER DATABASE "{database}" SET search_path = app, public')
    run_process("alembic", "ensure_version", check=True)
    assert _version_tables(ini_project) == [("app", 0)]
    up = run_process("fraiseql", "migrate", "up", check=True).stdout
    assert "✓ Running migration: 001_initial_schema.sql" in up
    assert _version_tables(ini_project) == [("app", 1)]
