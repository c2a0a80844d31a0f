"""pytest-alembic's built-in tests against a FraiseQL SQL-migration project.

The project mixes the spec's SQL files (with down sections) and a hand-written
``.py`` revision; pytest-alembic drives it through Alembic like any other project.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_alembic
from pytest_alembic.tests import (  # noqa: F401  (collected here, bound to our fixtures)
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)

MIGRATIONS = {
    "001_initial_schema.sql": (
        "-- Migration 001: Initial schema\n"
        "CREATE TABLE tb_user (id UUID PRIMARY KEY DEFAULT gen_random_uuid(), email TEXT NOT NULL);\n"
        "-- migrate:down\nDROP TABLE tb_user;\n"
    ),
    "002_add_posts.sql": (
        "-- migrate:up\nCREATE TABLE tb_post (id UUID PRIMARY KEY, author_id UUID REFERENCES tb_user(id));\n"
        "CREATE INDEX CONCURRENTLY idx_post_author ON tb_post (author_id);\n"
        "-- migrate:down\nDROP TABLE tb_post;\n"
    ),
    "003_add_tags.py": (
        "from alembic import op\n\nrevision = '003'\ndown_revision = '002'\n\n"
        "def upgrade():\n    op.execute('CREATE TABLE tb_tag (name TEXT PRIMARY KEY)')\n\n"
        "def downgrade():\n    op.execute('DROP TABLE tb_tag')\n"
    ),
    "004_category.sql": (
        "-- Migration 004: Add post categories\n"
        "CREATE TABLE tb_category (id UUID PRIMARY KEY, name TEXT NOT NULL UNIQUE);\n\n"
        "-- Rollback:\n-- DROP TABLE tb_category;\n"
    ),
}


@pytest.fixture
def alembic_config(tmp_path: Path, database_url: str) -> Any:
    from fraiseql_alembic import api, settings

    folder = tmp_path / "migrations"
    folder.mkdir()
    for name, text in MIGRATIONS.items():
        (folder / name).write_text(text)
    config = api.alembic_config(settings.resolve(folder, database_url))
    return pytest_alembic.config.Config(alembic_config=config)


@pytest.fixture
def alembic_engine(database_url: str) -> Iterator[Any]:
    from fraiseql_alembic.engine.database import create_engine

    engine = create_engine(database_url)
    yield engine
    engine.dispose()
