"""The plain `alembic` CLI and the installed `fraiseql` command on a folder of SQL revisions.

The installed commands run where the process is the subject (`alembic heads` and `alembic
upgrade head` as typed, the adopted project's `alembic heads` loading our plugin through its
entry point, containment, the quick start, a terminal); the other runs go through
``run_process.in_process`` (Alembic's own CommandLine, same argv, folder, environment,
output and exit code)."""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import ProcessRunner, Project
from scenarios import BIN, REPO, UP_DOWN, needs_plugin_entry_points


@pytest.fixture
def ini_project(project: Project) -> Project:
    shutil.copy(REPO / "alembic.ini.example", project.root / "alembic.ini")
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.write("002_add_comments_table.sql", "-- Migration 002: Add comments table\n" + UP_DOWN.format(t="b"))
    project.write("003_add_indexes.sql", "-- migrate:up\nCREATE INDEX i ON b (id);\n-- migrate:down\nDROP INDEX i;\n")
    return project


def test_alembic_reads_the_sql_chain(ini_project: Project, run_process: ProcessRunner) -> None:
    """The installed command reads the chain (a new interpreter: the plugin loads as for a
    team's `alembic`); the other reading commands run in-process."""
    assert run_process("alembic", "heads", check=True).stdout == "003 (head)\n"
    history = run_process.in_process("alembic", "history", check=True).stdout
    assert history.splitlines() == [
        "002 -> 003 (head), Add indexes",
        "001 -> 002, Add comments table",
        "<base> -> 001, Initial schema",
    ]
    show = run_process.in_process("alembic", "show", "002", check=True).stdout
    assert "Rev: 002" in show and "Parent: 001" in show and "002_add_comments_table.sql" in show
    assert run_process.in_process("alembic", "current", check=True).stdout == ""


def test_alembic_upgrade_downgrade_stamp(ini_project: Project, run_process: ProcessRunner) -> None:
    """`alembic upgrade head` as a team types it (the installed command); the other moves
    in-process."""
    run_process.in_process("alembic", "upgrade", "+1", check=True)
    assert ini_project.version() == ["001"]
    run_process("alembic", "upgrade", "head", check=True)
    assert ini_project.version() == ["003"]
    assert run_process.in_process("alembic", "current", check=True).stdout == "003 (head)\n"
    run_process.in_process("alembic", "downgrade", "-1", check=True)
    assert ini_project.version() == ["002"]
    run_process.in_process("alembic", "downgrade", "001", check=True)
    assert ini_project.version() == ["001"] and "b" not in ini_project.tables()
    run_process.in_process("alembic", "downgrade", "base", check=True)
    assert ini_project.version() == [] and "a" not in ini_project.tables()
    run_process.in_process("alembic", "upgrade", "002", check=True)
    run_process.in_process("alembic", "stamp", "003", check=True)
    assert ini_project.version() == ["003"]
    actions = ini_project.query("SELECT version, action FROM fraiseql_migrations ORDER BY id")
    assert actions[-1] == ("003", "stamped")
    assert ("001", "rolled_back") in actions
    # the same state is what `fraiseql migrate status` shows
    status = ini_project.cli("status")
    assert status.exit_code == 0 and "✓ 003_add_indexes.sql (applied" in status.output


def test_alembic_offline_sql_runs_in_psql(ini_project: Project, run_process: ProcessRunner) -> None:
    run_process.in_process("alembic", "upgrade", "001", check=True)
    sql = run_process.in_process("alembic", "upgrade", "001:003", "--sql", check=True).stdout
    assert "CREATE TABLE b (id int);" in sql and "UPDATE alembic_version SET version_num='003'" in sql
    run_process("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", ini_project.database_url,
                input=sql, timeout=60, check=True)
    assert ini_project.version() == ["003"]
    assert {"a", "b"} <= ini_project.tables()
    status = ini_project.cli("status")
    assert status.exit_code == 0, status.output
    assert "○" not in status.output and "MODIFIED" not in status.output


def test_alembic_unknown_revision_is_one_line(ini_project: Project, run_process: ProcessRunner) -> None:
    result = run_process.in_process("alembic", "upgrade", "999", check=False)
    assert result.returncode != 0
    assert result.stdout.strip() == "FAILED: Can't locate revision identified by '999'"
    # stderr holds only what alembic.ini's logging section asks for
    assert all(line.startswith(("INFO ", "ERROR ")) for line in result.stderr.splitlines())
    assert "Traceback" not in result.stderr


def test_in_process_run_leaves_the_test_logging_as_it_was(
    ini_project: Project, run_process: ProcessRunner, caplog: pytest.LogCaptureFixture
) -> None:
    """alembic.ini's ``[loggers]``, set up by our env.py, are the run's, as in a process:
    the test's logging (pytest's capture, the loggers' levels) is back after it."""
    result = run_process.in_process("alembic", "upgrade", "head", check=True)
    assert "INFO  [alembic.runtime.migration] Running upgrade  -> 001" in result.stderr
    logging.getLogger("fraiseql_alembic.tests").warning("after the run")
    assert [record.getMessage() for record in caplog.records] == ["after the run"]
    assert logging.getLogger("alembic").level == logging.NOTSET


def test_alembic_reports_sql_errors_as_one_line(ini_project: Project, run_process: ProcessRunner) -> None:
    ini_project.write("004_bad.sql", "SELECT * FROM no_such_table;\n")
    result = run_process.in_process("alembic", "upgrade", "head", check=False)
    assert result.returncode != 0
    assert "FAILED: Migration 004_bad.sql failed at line 1, column 15: relation \"no_such_table\" does not exist" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert ini_project.version() == ["003"]


def test_hand_written_py_revision_joins_the_chain(ini_project: Project, run_process: ProcessRunner) -> None:
    (ini_project.migrations / "004_add_tags.py").write_text(
        '"""Add tags."""\nfrom alembic import op\n\nrevision = "004"\ndown_revision = "003"\n\n'
        "def upgrade() -> None:\n    op.execute('CREATE TABLE tags (id int)')\n\n"
        "def downgrade() -> None:\n    op.execute('DROP TABLE tags')\n"
    )
    ini_project.write("005_after_tags.sql", UP_DOWN.format(t="e"))
    assert run_process.in_process("alembic", "heads", check=True).stdout == "005 (head)\n"
    assert "004 -> 005 (head)" in run_process.in_process("alembic", "history", check=True).stdout
    up = run_process.in_process("fraiseql", "migrate", "up", check=True).stdout
    assert "✓ Running migration: 004_add_tags.py\n✓ Running migration: 005_after_tags.sql" in up
    assert {"tags", "e"} <= ini_project.tables()
    status = ini_project.cli("status")
    assert status.exit_code == 0 and "✓ 004_add_tags.py (applied" in status.output
    assert ("004", "applied") in ini_project.query("SELECT version, action FROM fraiseql_migrations")
    run_process.in_process("fraiseql", "migrate", "down", "--steps", "2", "--force", check=True)
    assert ini_project.version() == ["003"] and "tags" not in ini_project.tables()


def test_alembic_revision_with_hex_id_then_sql_file_stays_one_chain(ini_project: Project, run_process: ProcessRunner) -> None:
    run_process.in_process("alembic", "revision", "-m", "hand made", "--rev-id", "0123abcdef99", check=True)
    # `create` names the hex head it follows: numbering alone would fork from 003
    run_process.in_process("fraiseql", "migrate", "create", "next", check=True)
    created = ini_project.migrations / "004_next.sql"
    assert created.read_text().splitlines()[1] == "-- revises: 0123abcdef99"
    created.write_text(created.read_text().replace("-- migrate:up\n", "-- migrate:up\nCREATE TABLE f (id int);\n"))
    heads = run_process.in_process("alembic", "heads", check=True).stdout
    assert heads == "004 (head)\n"
    run_process.in_process("fraiseql", "migrate", "up", check=True)
    assert ini_project.version() == ["004"]


LEGACY_ENV = '''
from alembic import context
from sqlalchemy import create_engine
import os

config = context.config
if context.is_offline_mode():
    context.configure(url=os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg2://"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg2://"))
    with engine.connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
'''

LEGACY_REV = '''"""{doc}"""
from alembic import op

revision = "{rev}"
down_revision = {down!r}

def upgrade():
    op.execute("CREATE TABLE {table} (id int)")

def downgrade():
    op.execute("DROP TABLE {table}")
'''


def legacy_project(project: Project, *, opt_in: bool) -> Path:
    root = project.root / "alembic"
    versions = root / "versions"
    versions.mkdir(parents=True)
    (root / "env.py").write_text(LEGACY_ENV)
    (root / "script.py.mako").write_text("")
    (versions / "1a2b3c4d5e6f_first.py").write_text(
        LEGACY_REV.format(doc="first", rev="1a2b3c4d5e6f", down=None, table="legacy_one"))
    (versions / "9f8e7d6c5b4a_second.py").write_text(
        LEGACY_REV.format(doc="second", rev="9f8e7d6c5b4a", down="1a2b3c4d5e6f", table="legacy_two"))
    (project.root / "alembic.ini").write_text(
        "[alembic]\nscript_location = %(here)s/alembic\npath_separator = os\n"
        + ("fraiseql_migrations = true\n" if opt_in else "")
    )
    (versions / "001_first_sql.sql").write_text(UP_DOWN.format(t="from_sql"))
    return versions


@needs_plugin_entry_points
def test_existing_alembic_history_adopts_sql_files(project: Project, run_process: ProcessRunner) -> None:
    versions = legacy_project(project, opt_in=True)
    run_process.in_process("alembic", "upgrade", "9f8e7d6c5b4a", check=True)  # the team's database, already migrated
    # the installed command: Alembic loads our plugin through its entry point
    assert run_process("alembic", "heads", check=True).stdout == "001 (head)\n"
    assert "9f8e7d6c5b4a -> 001 (head)" in run_process.in_process("alembic", "history", check=True).stdout
    run_process.in_process("alembic", "upgrade", "head", check=True)
    assert "from_sql" in project.tables()
    status = run_process.in_process("fraiseql", "migrate", "status", "--path", str(versions), check=True).stdout
    assert "✓ 1a2b3c4d5e6f_first.py" in status and "✓ 9f8e7d6c5b4a_second.py" in status
    assert "✓ 001_first_sql.sql" in status
    (versions / "002_second_sql.sql").write_text("-- revises: 001\n" + UP_DOWN.format(t="from_sql2"))
    up = run_process.in_process("fraiseql", "migrate", "up", "--path", str(versions), check=True).stdout
    assert "✓ Running migration: 002_second_sql.sql" in up


@needs_plugin_entry_points
def test_revises_header_names_the_parent(project: Project, run_process: ProcessRunner) -> None:
    versions = legacy_project(project, opt_in=True)
    (versions / "001_first_sql.sql").write_text("-- revises: 1a2b3c4d5e6f\n" + UP_DOWN.format(t="x"))
    heads = run_process.in_process("alembic", "heads", check=True).stdout.split()
    assert sorted(h for h in heads if h != "(head)") == ["001", "9f8e7d6c5b4a"]


def test_project_that_did_not_opt_in_is_untouched(project: Project, run_process: ProcessRunner) -> None:
    """In-process (our plugin installed, on every Alembic) and as the installed command (a
    new interpreter, as the team runs it), a project that did not opt in sees no SQL file."""
    legacy_project(project, opt_in=False)
    assert run_process.in_process("alembic", "heads", check=True).stdout == "9f8e7d6c5b4a (head)\n"
    run_process("alembic", "upgrade", "head", check=True)
    assert "from_sql" not in project.tables()
    assert "fraiseql_migrations" not in project.tables()


def test_installed_fraiseql_quick_start(project: Project, run_process: ProcessRunner) -> None:
    shutil.rmtree(project.migrations)
    init = run_process("fraiseql", "migrate", "init", check=True).stdout
    assert "Initialized migrations" in init
    created = run_process("fraiseql", "migrate", "create", "initial_schema", check=True).stdout
    assert created == "✓ Created migrations/001_initial_schema.sql\n"
    path = project.migrations / "001_initial_schema.sql"
    path.write_text(path.read_text().replace("-- migrate:up\n", "-- migrate:up\nCREATE TABLE tb_user (id int);\n")
                    .replace("-- migrate:down\n", "-- migrate:down\nDROP TABLE tb_user;\n"))
    assert run_process("fraiseql", "migrate", "up", check=True).stdout == (
        "✓ Running migration: 001_initial_schema.sql\n✓ Migration completed successfully\n")
    # the installed command did init, create and up; the rest of the tour runs in-process
    assert "✓ 001_initial_schema.sql (applied" in run_process.in_process("fraiseql", "migrate", "status", check=True).stdout
    run_process.in_process("fraiseql", "migrate", "down", "--force", check=True)
    assert "○ 001_initial_schema.sql (pending)" in run_process.in_process("fraiseql", "migrate", "status", check=True).stdout


def test_down_asks_on_a_terminal(project: Project) -> None:
    import pty

    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    assert project.cli("up").exit_code == 0

    def run_on_tty(answer: bytes) -> str:
        pid, fd = pty.fork()
        if pid == 0:  # child: the installed command on a real terminal
            os.chdir(project.root)
            os.environ["DATABASE_URL"] = project.database_url
            os.environ.pop("NO_COLOR", None)
            os.execv(str(BIN / "fraiseql"), ["fraiseql", "migrate", "down"])
        output = b""
        answered = False
        while True:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"Continue?" in output:
                os.write(fd, answer)
                answered = True
        os.waitpid(pid, 0)
        return output.decode()

    declined = run_on_tty(b"n\n")
    assert "About to roll back 1 migration:" in declined and "001_initial_schema.sql" in declined
    assert "Rollback cancelled; nothing was changed" in declined
    assert project.version() == ["001"]
    accepted = run_on_tty(b"y\n")
    green_check = "\x1b[32m✓\x1b[0m"  # the progress display of a terminal
    assert re.search(
        r"  \[1/1\] Rolling back migration: 001_initial_schema\.sql \.\.\."
        rf"\r{re.escape(green_check)} \[1/1\] Rolling back migration: "
        r"001_initial_schema\.sql \(\d+\.\ds\)\r\n", accepted), accepted
    assert f"{green_check} Rollback completed successfully (1 migration rolled back)" in accepted
    assert re.search(r"Rolled back 1 migration in \d+\.\ds\r\n", accepted), accepted
    assert project.version() == []


def test_alembic_upgrade_refuses_changed_applied_file(ini_project: Project, run_process: ProcessRunner) -> None:
    run_process.in_process("alembic", "upgrade", "002", check=True)
    ini_project.write("002_add_comments_table.sql", UP_DOWN.format(t="b").replace("(id int)", "(id bigint)"))
    result = run_process.in_process("alembic", "upgrade", "head", check=False)
    assert result.returncode != 0
    assert "FAILED: Migration 002_add_comments_table.sql checksum mismatch" in result.stdout
    assert ini_project.version() == ["002"]


def test_alembic_stamp_records_every_covered_revision(ini_project: Project, run_process: ProcessRunner) -> None:
    run_process.in_process("alembic", "upgrade", "head", check=True)
    run_process.in_process("alembic", "downgrade", "base", check=True)
    run_process.in_process("alembic", "stamp", "002", check=True)
    status = ini_project.cli("status").output
    assert "✓ 001_initial_schema.sql (applied" in status and "✓ 002_add_comments_table.sql (applied" in status
    assert "○ 003_add_indexes.sql (pending)" in status
    rows = ini_project.query("SELECT version, action FROM fraiseql_migrations WHERE action = 'stamped' ORDER BY version")
    assert rows == [("001", "stamped"), ("002", "stamped")]


def test_alembic_upgrade_runs_concurrent_index_after_checks(ini_project: Project, run_process: ProcessRunner) -> None:
    ini_project.write("004_concurrent.sql", "CREATE INDEX CONCURRENTLY idx_a ON a (id);\n")
    run_process.in_process("alembic", "upgrade", "head", check=True)
    assert ini_project.version() == ["004"]
    assert ini_project.query("SELECT to_regclass('idx_a') IS NOT NULL") == [(True,)]
