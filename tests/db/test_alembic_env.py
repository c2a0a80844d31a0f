"""Our Alembic env.py uses the connection it is handed (pytest-alembic, Alembic's cookbook)."""

from __future__ import annotations

import os

from conftest import Project
from scenarios import UP_DOWN


def test_env_uses_the_connection_it_is_given(project: Project) -> None:
    """pytest-alembic and Alembic's cookbook hand env.py a connection: it must be used."""
    from alembic import command as alembic_command
    from alembic.config import Config

    from fraiseql_alembic.engine.database import create_engine

    project.write("001_initial_schema.sql", UP_DOWN.format(t="given"))
    config = Config()
    config.set_main_option("script_location", "fraiseql_alembic:alembic_env")
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(project.migrations))
    engine = create_engine(project.database_url)
    config.attributes["connection"] = engine
    old = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = "postgresql://nobody:x@127.0.0.1:1/elsewhere"
    try:
        alembic_command.upgrade(config, "head")
    finally:
        if old is None:
            del os.environ["DATABASE_URL"]
        else:
            os.environ["DATABASE_URL"] = old
        engine.dispose()
    assert "given" in project.tables()
