"""Every mistake gets one clear line: `fraiseql`, case by case.

Each case checks the exit code, that stderr is exactly one `Error: ...` line (or the
expected warning), that no traceback and no password is printed, and that nothing
changed.  The line is the subject, so the runs are in-process (``run_process.in_process``:
the same arguments, folder, environment, exit code, stdout and stderr as the installed
command); a wrong password is also tried with the installed command, where anything a
library wrote to the process's stderr would show too.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable

import pytest
from conftest import ProcessRunner, Project
from scenarios import UP_DOWN, login_role

from fraiseql_alembic.devdb import DevCluster


def password(url: str) -> str:
    match = re.search(r"://[^:]+:([^@]+)@", url)
    assert match
    return match.group(1)


def assert_one_error(result: subprocess.CompletedProcess[str], code: int, needle: str,
                     *secrets: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert needle in lines[0], lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    for secret in secrets:
        assert secret not in result.stdout + result.stderr


NAMES = ["", "add users", "AddUsers", "../evil", "a/b", "x;drop table y", "$(touch pwned)",
         "`id`", "a" * 300, "ünïcode", "-rf"]


@pytest.mark.parametrize("name", NAMES)
def test_create_refuses_bad_names_and_writes_nothing(project: Project, name: str, run_process: ProcessRunner) -> None:
    before = sorted(str(p) for p in project.root.parent.rglob("*"))
    args = ("--", name) if name.startswith("-") else (name,)
    result = run_process.in_process("fraiseql", "migrate", "create", *args)
    assert_one_error(result, 2, "Migration name")
    assert sorted(str(p) for p in project.root.parent.rglob("*")) == before


Setup = Callable[[Project], None]


def _dupes(p: Project) -> None:
    p.write("002_from_alice.sql", "SELECT 1;\n")
    p.write("002_from_bob.sql", "SELECT 2;\n")


def _not_utf8(p: Project) -> None:
    p.migrations.mkdir(exist_ok=True)
    (p.migrations / "001_latin1.sql").write_bytes(b"SELECT 'caf\xe9';\n")


def _empty(p: Project) -> None:
    p.write("001_empty.sql", "")


def _only_comments(p: Project) -> None:
    p.write("001_comments.sql", "-- nothing here yet\n/* still nothing */\n")


CASES: list[tuple[str, Setup, tuple[str, ...], int, str]] = [
    ("duplicate numbers / status", _dupes, ("status",), 1,
     "Two migrations share number 002: 002_from_alice.sql and 002_from_bob.sql. Renumber the one that is not applied yet"),
    ("duplicate numbers / up", _dupes, ("up",), 1, "Two migrations share number 002"),
    ("duplicate numbers / down", _dupes, ("down", "--force"), 1, "Two migrations share number 002"),
    ("duplicate numbers / create", _dupes, ("create", "x"), 1, "Two migrations share number 002"),
    ("not UTF-8", _not_utf8, ("status",), 1, "001_latin1.sql:1: is not valid UTF-8 text"),
    ("empty file", _empty, ("up",), 1, "001_empty.sql: has no SQL to run"),
    ("only comments", _only_comments, ("up",), 1, "001_comments.sql: has no SQL to run"),
    ("missing folder", lambda p: None, ("status", "--path", "nope"), 1, "does not exist; run `fraiseql migrate init`"),
    ("path is a file", lambda p: (p.root / "notes.txt").write_text("x") and None, ("up", "--path", "notes.txt"), 1,
     "is a file, not a folder"),
    ("steps 0", lambda p: None, ("up", "--steps", "0"), 2, "--steps"),
    ("steps negative", lambda p: None, ("down", "--steps", "-1"), 2, "--steps"),
    ("steps not a number", lambda p: None, ("up", "--steps", "two"), 2, "--steps"),
    ("down with nothing applied", lambda p: p.write("001_a.sql", UP_DOWN.format(t="a")) and None,
     ("down", "--force"), 1, "Nothing to roll back"),
]


@pytest.mark.parametrize(("setup", "args", "code", "needle"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input(project: Project, setup: Setup, args: tuple[str, ...], code: int, needle: str, run_process: ProcessRunner) -> None:
    setup(project)
    before = project.tables()
    assert_one_error(run_process.in_process("fraiseql", "migrate", *args), code, needle, password(project.database_url))
    assert project.tables() == before


@pytest.mark.parametrize("filename", ["003_x.sq", "003_x.SQL", "3-x.sql", "004_Bad_Name.sql"])
def test_near_miss_file_names_are_warned_about(project: Project, filename: str, run_process: ProcessRunner) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    project.write(filename, "SELECT 1;\n")
    status = run_process.in_process("fraiseql", "migrate", "status")
    assert status.returncode == 0
    assert f"Warning: {filename} is not loaded: migration files are named NNN_snake_case_name.sql" in status.stdout
    up = run_process.in_process("fraiseql", "migrate", "up")
    assert f"Warning: {filename} is not loaded" in up.stderr


def test_database_problems_are_one_masked_line(project: Project, pg_cluster: DevCluster, run_process: ProcessRunner) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    secret = password(project.database_url)
    base = project.database_url.rsplit("/", 1)[0]
    assert_one_error(run_process.in_process("fraiseql", "migrate", "status", url=None), 1, "No database configured")
    assert_one_error(run_process.in_process("fraiseql", "migrate", "status", url="not a url at all"), 1, "is not a PostgreSQL URL")
    assert_one_error(run_process.in_process("fraiseql", "migrate", "up", url=f"postgresql://fraiseql:{secret}@127.0.0.1:1/x"), 1,
                     "Cannot connect to postgresql://fraiseql:***@127.0.0.1:1/x", secret)
    wrong = base.replace(secret, "not-the-password-4711") + "/postgres"
    for result in (run_process.in_process("fraiseql", "migrate", "up", url=wrong),
                   run_process("fraiseql", "migrate", "up", url=wrong)):  # installed too
        assert_one_error(result, 1, "password authentication failed",
                         "not-the-password-4711", secret)
    assert_one_error(run_process.in_process("fraiseql", "migrate", "status", url=f"{base}/no_such_db"), 1,
                     'database "no_such_db" does not exist', secret)
    assert project.tables() == set()


def test_insufficient_privileges(project: Project, run_process: ProcessRunner) -> None:
    with login_role(project, "limited_role", "limited-pw-123") as (url, _admin):
        project.write("001_a.sql", "SELECT 1;\n")
        result = run_process.in_process("fraiseql", "migrate", "up", url=url)
        assert_one_error(result, 1, "permission denied for schema public [SQLSTATE 42501]",
                         "limited-pw-123")
        assert "GRANT CREATE, USAGE ON SCHEMA public" in result.stderr


def test_deleted_applied_file(project: Project, run_process: ProcessRunner) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    gone = project.write("002_b.sql", UP_DOWN.format(t="b"))
    project.write("003_c.sql", UP_DOWN.format(t="c"))
    assert project.cli("up").exit_code == 0  # set-up in-process; the commands below are the subject
    gone.unlink()
    assert "✗ 002_b.sql (applied" in run_process.in_process("fraiseql", "migrate", "status").stdout
    up = run_process.in_process("fraiseql", "migrate", "up")
    assert up.returncode == 0
    assert "Warning: Applied migration 002_b.sql is missing" in up.stderr
    assert_one_error(run_process.in_process("fraiseql", "migrate", "down", "--force"), 1, "002_b.sql is missing from")
    assert project.version() == ["003"]


def test_tampered_history_is_reported_and_nothing_runs_twice(project: Project, run_process: ProcessRunner) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    project.write("002_b.sql", "-- migrate:up\nINSERT INTO a VALUES (1);\n-- migrate:down\nDELETE FROM a;\n")
    project.write("003_c.sql", UP_DOWN.format(t="c"))
    assert project.cli("up").exit_code == 0  # set-up in-process; the commands below are the subject
    # 1. a history row deleted
    project.query("DELETE FROM fraiseql_migrations WHERE version = '002'")
    assert "✗ 002_b.sql (NEVER RAN HERE" in run_process.in_process("fraiseql", "migrate", "status").stdout
    project.query("INSERT INTO fraiseql_migrations (version, filename, checksum, action) "
                  "SELECT '002', '002_b.sql', checksum, 'applied' FROM fraiseql_migrations WHERE version = '001'")
    # 2. a checksum edited
    assert "✗ 002_b.sql (applied" in run_process.in_process("fraiseql", "migrate", "status").stdout
    assert_one_error(run_process.in_process("fraiseql", "migrate", "up"), 1, "002_b.sql checksum mismatch")
    project.query("UPDATE fraiseql_migrations SET checksum = NULL WHERE version = '002'")
    # 3. alembic_version moved back by hand: 002 and 003 must not run again
    project.query("UPDATE alembic_version SET version_num = '001'")
    status = run_process.in_process("fraiseql", "migrate", "status").stdout
    assert "✗ 002_b.sql (NOT in alembic_version, but fraiseql_migrations says applied" in status
    assert_one_error(run_process.in_process("fraiseql", "migrate", "up"), 1, "Refusing to apply 002_b.sql")
    assert project.query("SELECT count(*) FROM a") == [(1,)]
