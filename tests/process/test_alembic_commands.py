"""Alembic's smaller commands in our environment.

They run Alembic's own CommandLine in-process (``run_process.in_process``: same argv,
folder, environment, output and exit code); before Alembic 1.18 the `alembic heads` of our
shipped environment is the installed command (a new interpreter, where importing our
package installs the plugin).  tests/process/test_alembic_cli.py types the upgrade."""

from __future__ import annotations

import re
import shutil

import pytest
from conftest import ProcessRunner, Project
from scenarios import ALEMBIC_LOADS_PLUGINS, REPO, UP_DOWN, hold_lock, needs_plugin_entry_points
from test_alembic_cli import legacy_project


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
    run_process.in_process("alembic", "ensure_version", check=True)
    assert _version_tables(ini_project) == [("public", 0)]
    run_process.in_process("alembic", "ensure_version", check=True)  # again: nothing to do
    assert _version_tables(ini_project) == [("public", 0)]
    assert run_process.in_process("alembic", "current", check=True).stdout == ""
    run_process.in_process("alembic", "upgrade", "head", check=True)
    assert _version_tables(ini_project) == [("public", 1)]


def test_ensure_version_uses_the_search_path_schema(ini_project: Project, run_process: ProcessRunner) -> None:
    database = ini_project.query("SELECT current_database()")[0][0]
    ini_project.query(f'CREATE SCHEMA app; ALTER DATABASE "{database}" SET search_path = app, public')
    run_process.in_process("alembic", "ensure_version", check=True)
    assert _version_tables(ini_project) == [("app", 0)]
    up = run_process.in_process("fraiseql", "migrate", "up", check=True).stdout
    assert "✓ Running migration: 001_initial_schema.sql" in up
    assert _version_tables(ini_project) == [("app", 1)]


@needs_plugin_entry_points
def test_adopted_upgrade_waits_for_our_lock(project: Project, run_process: ProcessRunner) -> None:
    legacy_project(project, opt_in=True)
    ini = project.root / "alembic.ini"
    ini.write_text(ini.read_text() + "fraiseql_lock_wait = 1\n")
    holder = hold_lock(project)
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]  # type: ignore[index]
        result = run_process.in_process("alembic", "upgrade", "head")
        assert result.returncode == 255, result.stdout + result.stderr
        assert f"Waiting up to 1s for the migration lock held by pid {pid} (someone else's deploy)" in result.stderr
        assert f"FAILED: Gave up after waiting 1s for the migration lock held by pid {pid}" in result.stdout
        assert "Traceback" not in result.stderr
        assert project.version() == []
        # commands that only read do not wait
        run_process.in_process("alembic", "current", check=True)
    finally:
        holder.close()
    run_process.in_process("alembic", "upgrade", "head", check=True)
    assert project.version() == ["001"] and "from_sql" in project.tables()


@needs_plugin_entry_points
def test_adopted_upgrade_refuses_a_changed_applied_file(project: Project, run_process: ProcessRunner) -> None:
    versions = legacy_project(project, opt_in=True)
    run_process.in_process("alembic", "upgrade", "head", check=True)
    (versions / "001_first_sql.sql").write_text(UP_DOWN.format(t="from_sql").replace("(id int)", "(id bigint)"))
    (versions / "002_next.sql").write_text(UP_DOWN.format(t="next"))
    result = run_process.in_process("alembic", "upgrade", "head")
    assert result.returncode == 255
    assert result.stdout.startswith("FAILED: Migration 001_first_sql.sql checksum mismatch"), result.stdout
    assert project.version() == ["001"] and "next" not in project.tables()
    # a pending file that cannot be split is refused before anything runs
    (versions / "001_first_sql.sql").write_text(UP_DOWN.format(t="from_sql"))
    (versions / "003_broken.sql").write_text("-- migrate:up\nSELECT 'unterminated;\n-- migrate:down\nSELECT 1;\n")
    result = run_process.in_process("alembic", "upgrade", "head")
    assert result.returncode == 255 and "003_broken.sql" in result.stdout, result.stdout
    assert "next" not in project.tables()
    (versions / "003_broken.sql").unlink()
    run_process.in_process("alembic", "upgrade", "head", check=True)
    assert project.version() == ["002"]


@needs_plugin_entry_points
def test_adopted_upgrade_honours_fraiseql_history_schema(project: Project, run_process: ProcessRunner) -> None:
    legacy_project(project, opt_in=True)
    ini = project.root / "alembic.ini"
    ini.write_text(ini.read_text() + "fraiseql_history_schema = audit\n")
    project.query("CREATE SCHEMA audit")
    run_process.in_process("alembic", "upgrade", "head", check=True)
    assert project.query("SELECT version, action FROM audit.fraiseql_migrations") == [("001", "applied")]
    assert "fraiseql_migrations" not in project.tables()


@needs_plugin_entry_points
def test_fraiseql_migrate_refuses_an_env_py_version_table(project: Project, run_process: ProcessRunner) -> None:
    versions = legacy_project(project, opt_in=True)
    env = project.root / "alembic" / "env.py"
    env.write_text(env.read_text()
                   .replace("literal_binds=True)", "literal_binds=True, version_table='my_version')")
                   .replace("configure(connection=connection)",
                            "configure(connection=connection, version_table='my_version')"))
    run_process.in_process("alembic", "upgrade", "head", check=True)
    assert project.query("SELECT version_num FROM my_version") == [("001",)]
    for verb in (["status"], ["up"], ["down", "--force"]):
        result = run_process.in_process("fraiseql", "migrate", *verb, "--path", str(versions))
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stdout == ""
        assert result.stderr == (
            "Error: alembic/env.py configures version_table='my_version', and fraiseql migrate "
            "reads and moves alembic_version on the search_path: run `alembic upgrade`/`alembic "
            "downgrade` in this project instead (they take the same lock and make the same checks)\n")
    assert project.version() == [] and "alembic_version" not in project.tables()
    # the folder checks need no database, and no version table
    assert run_process.in_process("fraiseql", "migrate", "check", "--path", str(versions), url=None).returncode == 0


@needs_plugin_entry_points
def test_fraiseql_migrate_reads_an_env_py_without_a_version_table(project: Project, run_process: ProcessRunner) -> None:
    versions = legacy_project(project, opt_in=True)
    (project.root / "alembic.ini").write_text(
        (project.root / "alembic.ini").read_text()
        + "\n[loggers]\nkeys = root\n[handlers]\nkeys = console\n[formatters]\nkeys = generic\n"
        "[logger_root]\nlevel = INFO\nhandlers = console\n[handler_console]\nclass = StreamHandler\n"
        "args = (sys.stderr,)\nformatter = generic\n[formatter_generic]\nformat = %%(levelname)s %%(message)s\n")
    env = project.root / "alembic" / "env.py"
    env.write_text("from logging.config import fileConfig\nfrom alembic import context\n"
                   "fileConfig(context.config.config_file_name)\n" + env.read_text())
    result = run_process.in_process("fraiseql", "migrate", "up", "--path", str(versions), check=True)
    assert "✓ Running migration: 001_first_sql.sql" in result.stdout
    assert "INFO" not in result.stderr  # the env.py's logging, read offline, stays quiet
    # an env.py that cannot run offline is one line
    env.write_text("raise RuntimeError('needs the app settings')\n")
    result = run_process.in_process("fraiseql", "migrate", "status", "--path", str(versions))
    assert result.returncode == 1
    assert result.stderr == (
        "Error: Could not run alembic/env.py offline to read the settings it gives "
        "context.configure (RuntimeError: needs the app settings); fraiseql migrate needs them "
        "in a project with its own env.py: make `alembic upgrade head --sql` work, or use "
        "`alembic upgrade`/`downgrade` in this project\n")


@pytest.mark.skipif(ALEMBIC_LOADS_PLUGINS, reason="Alembic 1.18+ loads our plugin for any project")
def test_own_env_py_needs_alembic_with_plugin_entry_points(project: Project, run_process: ProcessRunner) -> None:
    """Before 1.18 the `alembic` command of a project with its own env.py never loads us
    (it would not see the SQL files): `fraiseql migrate` refuses the folder in one line."""
    versions = legacy_project(project, opt_in=True)
    result = run_process.in_process("fraiseql", "migrate", "status", "--path", str(versions))
    assert result.returncode == 1
    assert re.fullmatch(
        r"Error: A project with its own env.py \(alembic/env.py\) needs Alembic 1.18 or later, "
        r"which loads our plugin for the `alembic` command; with Alembic 1\.1[67] it would not "
        r"see the SQL migrations: pip install 'alembic>=1.18'\n", result.stderr), result.stderr
    # our shipped environment works on this Alembic: the same folder through it (the
    # installed command: the plugin is installed when Alembic imports our package)
    shutil.copy(REPO / "alembic.ini.example", project.root / "alembic.ini")
    (versions.parent / "env.py").unlink()
    ini = project.root / "alembic.ini"
    ini.write_text(ini.read_text().replace("%(here)s/migrations", "%(here)s/alembic/versions"))
    assert run_process("alembic", "heads", check=True).stdout == "001 (head)\n"
