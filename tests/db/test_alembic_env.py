"""Our Alembic env.py uses the connection it is handed (pytest-alembic, Alembic's cookbook)."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import ProcessRunner, Project
from scenarios import REPO, UP_DOWN


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


def test_an_unreachable_database_names_the_setting_alembic_took_its_url_from(
        tmp_path: Path, run_process: ProcessRunner) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "001_a.sql").write_text("CREATE TABLE a (id int);\n")
    ini = (REPO / "alembic.ini.example").read_text()
    (tmp_path / "alembic.ini").write_text(ini)
    line = ("FAILED: Cannot connect to postgresql://app:***@127.0.0.1:1/{}: connection to server "
            'at "127.0.0.1", port 1 failed: Connection refused. Check {} and that the server '
            "is running")
    for verb in (("upgrade", "head"), ("current",)):
        ran = run_process.in_process("alembic", *verb,
                                     url="postgresql://app:pw@127.0.0.1:1/from_env")
        assert ran.returncode == 255
        assert line.format("from_env", "DATABASE_URL") in ran.stdout, ran.stdout + ran.stderr
    (tmp_path / "alembic.ini").write_text(ini.replace(
        "\nsqlalchemy.url =", "\nsqlalchemy.url = postgresql://app:pw@127.0.0.1:1/from_ini", 1))
    ran = run_process.in_process("alembic", "upgrade", "head", url=None)
    assert ran.returncode == 255
    assert line.format("from_ini", "sqlalchemy.url in alembic.ini") in ran.stdout, ran.stdout
