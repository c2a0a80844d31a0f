"""Bad input from the command line, the environment, the folder and the database: each is
one line in our words, never a silent default.

The message is the subject, so most runs are in-process (``run_process.in_process``: same
arguments, folder, environment, exit code, stdout and stderr); the installed command runs
where the process matters: a URL libpq reads as it connects, file permissions under
dropped capabilities (``setpriv``) and a read-only mount (``unshare``)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg2
import pytest
from conftest import ProcessRunner, Project
from scenarios import BIN, UP_DOWN


def one_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The single `Error: ...` line of a failed run (and nothing else on stderr)."""
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return lines[0]


# ---------------------------------------------------------------------------
# A password with an unencoded "@"


def test_a_password_with_an_unencoded_at_is_refused_before_connecting(
    project: Project, database_url: str, run_process: ProcessRunner
) -> None:
    """libpq ends the password at the first "@" and takes the rest as the host name (and
    prints it): the URL is refused in one line that shows none of the password; the
    percent-encoded URL connects."""
    parts = database_url.split("@", 1)
    host_and_db = parts[1]
    connection = psycopg2.connect(database_url)
    connection.autocommit = True
    role = f"r_at_{os.getpid()}"
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'se@cret@x'")
        bad = f"postgresql://{role}:se@cret@x@{host_and_db}"
        result = run_process("fraiseql", "migrate", "status", url=bad)
        line = one_error(result, 1)
        assert line == (
            f"Error: The password in database URL 'postgresql://{role}:***@{host_and_db}' "
            "contains '@', which must be percent-encoded: write %40 for each '@' in it "
            "(app:p%40ss@host)")
        assert "cret" not in result.stdout + result.stderr
        good = run_process.in_process("fraiseql", "migrate", "status", url=f"postgresql://{role}:se%40cret%40x@{host_and_db}")
        assert good.returncode == 0, good.stderr
        assert good.stdout.startswith("Migration Status:")
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP ROLE {role}")
        connection.close()


# ---------------------------------------------------------------------------
# Durations: nan, inf, negative, below 1ms and above PostgreSQL's ceiling


@pytest.mark.parametrize(("args", "message"), [
    (("up", "--lock-wait", "nan"),
     "--lock-wait 'nan' is not a number of seconds; use 0 or more, e.g. 60 (0: do not wait)"),
    (("up", "--lock-wait", "inf"),
     "--lock-wait 'inf' is not a number of seconds; use 0 or more, e.g. 60 (0: do not wait)"),
    (("up", "--lock-wait", "-1"),
     "--lock-wait '-1' is not a number of seconds; use 0 or more, e.g. 60 (0: do not wait)"),
    (("down", "--force", "--lock-wait", "NaN"),
     "--lock-wait 'NaN' is not a number of seconds; use 0 or more, e.g. 60 (0: do not wait)"),
    (("mark-applied", "001", "--lock-wait", "infinity"),
     "--lock-wait 'infinity' is not a number of seconds; use 0 or more, e.g. 60 (0: do not "
     "wait)"),
    (("repair", "--lock-wait", "1e999"),
     "--lock-wait '1e999' is not a number of seconds; use 0 or more, e.g. 60 (0: do not wait)"),
    (("up", "--lock-timeout", "0.4ms"),
     "--lock-timeout '0.4ms' is below 1ms, which PostgreSQL rounds to 0 (no timeout at all); "
     "use 1ms or more, or 0 to turn it off"),
    (("up", "--statement-timeout", "100us"),
     "--statement-timeout '100us' is below 1ms, which PostgreSQL rounds to 0 (no timeout at "
     "all); use 1ms or more, or 0 to turn it off"),
    (("down", "--force", "--lock-timeout", "25d"),
     "--lock-timeout '25d' is longer than PostgreSQL allows (2147483647ms, about 24 days); use "
     "a shorter duration, or 0 to turn it off"),
    (("up", "--lock-timeout", "-1s"),
     "--lock-timeout '-1s' is not a duration; use e.g. 500ms, 10s, 2min (0 turns it off)"),
    (("up", "--lock-timeout", "\u0665s"),
     "--lock-timeout '\u0665s' is not a duration; use e.g. 500ms, 10s, 2min (0 turns it off)"),
])
def test_bad_durations_on_the_command_line_are_usage_errors(
    project: Project, args: tuple[str, ...], message: str, run_process: ProcessRunner
) -> None:
    """`--lock-wait nan` used to be accepted and wait forever (nan >= 0 is false, so the
    wait never ran out); `--lock-timeout 0.4ms` reached PostgreSQL as 0, no timeout."""
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    result = run_process.in_process("fraiseql", "migrate", *args)
    assert one_error(result, 2) == f"Error: {message}"
    assert project.version() == []


@pytest.mark.parametrize(("setting", "message"), [
    ("lock_wait = nan", "lock_wait = nan in [tool.fraiseql.migrations] in pyproject.toml must "
     "be a number"),
    ("lock_wait = inf", "lock_wait = inf in [tool.fraiseql.migrations] in pyproject.toml must "
     "be a finite number"),
    ('lock_wait = "-inf"', "lock_wait = '-inf' in [tool.fraiseql.migrations] in pyproject.toml "
     "must not be negative"),
    ("lock_wait = true", "lock_wait = True in [tool.fraiseql.migrations] in pyproject.toml "
     "must be a number"),
    ("lock_retries = inf", "lock_retries = inf in [tool.fraiseql.migrations] in "
     "pyproject.toml must be a finite number"),
    ("lock_retries = 2.5", "lock_retries = 2.5 in [tool.fraiseql.migrations] in "
     "pyproject.toml must be a whole number"),
    ('lock_timeout = "0.1ms"', "lock_timeout in [tool.fraiseql.migrations] in pyproject.toml "
     "'0.1ms' is below 1ms, which PostgreSQL rounds to 0 (no timeout at all); use 1ms or more, "
     "or 0 to turn it off"),
    ('statement_timeout = "9999999999"', "statement_timeout in [tool.fraiseql.migrations] in "
     "pyproject.toml '9999999999' is longer than PostgreSQL allows (2147483647ms, about 24 "
     "days); use a shorter duration, or 0 to turn it off"),
])
def test_bad_durations_in_pyproject_stop_every_verb(
    project: Project, setting: str, message: str, run_process: ProcessRunner
) -> None:
    (project.root / "pyproject.toml").write_text(f"[tool.fraiseql.migrations]\n{setting}\n")
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    for verb in ("status", "up"):
        result = run_process.in_process("fraiseql", "migrate", verb)
        assert one_error(result, 1) == f"Error: {message}"
    assert project.version() == []


def test_a_bad_lock_wait_in_alembic_ini_is_one_line(project: Project, run_process: ProcessRunner) -> None:
    ini = (Path(__file__).resolve().parents[2] / "alembic.ini.example").read_text()
    ini = ini.replace("# fraiseql_history_schema = public", "fraiseql_lock_wait = nan")
    assert "fraiseql_lock_wait = nan" in ini
    (project.root / "alembic.ini").write_text(ini)
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    result = run_process.in_process("alembic", "upgrade", "head")
    assert result.returncode == 255, result.stdout + result.stderr  # Alembic's exit code
    assert result.stdout.strip().splitlines() == [
        "FAILED: fraiseql_lock_wait 'nan' is not a number of seconds; use 0 or more, e.g. 60 "
        "(0: do not wait)"]
    assert "Traceback" not in result.stderr
    assert project.version() == []


# ---------------------------------------------------------------------------
# The folder: links, folders and permissions, in our words and relative paths

VERBS = ("status", "lint", "check", "up")


def without_root_bypass() -> tuple[str, ...]:
    """A command prefix under which file permissions apply: root ignores them, so as root
    the capabilities that bypass them are dropped (setpriv, from util-linux)."""
    if os.geteuid() != 0:
        return ()
    caps = "-dac_override,-dac_read_search"
    return ("setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}")


@pytest.mark.parametrize(("make", "message"), [
    (lambda folder: (folder / "002_loop.sql").symlink_to("002_loop.sql"),
     "Error: migrations/002_loop.sql is named like a migration but cannot be read: it is a "
     "symbolic link that leads back to itself (a loop); point it at a real file or folder, or "
     "remove it"),
    (lambda folder: (folder / "002_gone.sql").symlink_to("missing.sql"),
     "Error: migrations/002_gone.sql is named like a migration but is a symbolic link to "
     "missing.sql, which does not exist; restore the file it points to, or remove the link"),
    (lambda folder: (folder / "002_x.sql").mkdir(),
     "Error: migrations/002_x.sql is named like a migration but is a folder, not a file; move "
     "it out of the migrations folder, or rename it so it does not end in .sql"),
])
def test_a_link_or_folder_named_like_a_migration_is_reported_by_every_verb(
    project: Project, make: object, message: str, run_process: ProcessRunner
) -> None:
    """A loop was `Error: OSError: [Errno 40] ...`; a folder or a dangling link was passed
    over in silence, and `up` went on to apply 003 without 002."""
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    project.write("003_c.sql", UP_DOWN.format(t="c"))
    make(project.migrations)  # type: ignore[operator]
    for verb in VERBS:
        result = run_process.in_process("fraiseql", "migrate", verb)
        assert one_error(result, 1) == message, verb
    assert project.version() == []


def test_links_and_folders_not_named_like_migrations_are_left_alone(project: Project, run_process: ProcessRunner) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    (project.migrations / "notes").symlink_to("notes")  # a loop, not a migration's name
    (project.migrations / "drafts").mkdir()
    (project.migrations / "old.txt").symlink_to("gone.txt")
    result = run_process.in_process("fraiseql", "migrate", "up")
    assert result.returncode == 0, result.stderr
    assert project.version() == ["001"]


def test_an_unreadable_folder_or_file_is_one_line_with_its_relative_path(
    project: Project, run_process: ProcessRunner
) -> None:
    import getpass

    user = getpass.getuser()
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    project.migrations.chmod(0)
    try:
        for verb in VERBS:
            result = run_process("fraiseql", "migrate", verb, prefix=without_root_bypass())
            assert one_error(result, 1) == (
                f"Error: Cannot read the migrations folder migrations: permission denied: user "
                f"{user} may not read it; fix its permissions (see `ls -ld migrations`) or run "
                "as a user who may"), verb
    finally:
        project.migrations.chmod(0o755)
    (project.migrations / "001_a.sql").chmod(0)
    expected = (f"migrations/001_a.sql: cannot be read: permission denied: user {user} may not "
                "read it; fix its permissions (see `ls -ld migrations/001_a.sql`) or run as a "
                "user who may")
    for verb in ("status", "up", "lint"):
        result = run_process("fraiseql", "migrate", verb, prefix=without_root_bypass())
        assert one_error(result, 1) == f"Error: {expected}", verb
    result = run_process("fraiseql", "migrate", "check", prefix=without_root_bypass())
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == expected.replace("001_a.sql:", "001_a.sql:1:", 1)
    assert project.version() == []


def test_create_in_a_read_only_folder_is_one_line(tmp_path: Path, run_process: ProcessRunner) -> None:
    import getpass

    assert run_process.in_process("fraiseql", "migrate", "init", url="").returncode == 0
    migrations = tmp_path / "migrations"
    migrations.chmod(0o555)
    try:
        result = run_process("fraiseql", "migrate", "create", "add_x", url="", prefix=without_root_bypass())
    finally:
        migrations.chmod(0o755)
    assert one_error(result, 1) == (
        f"Error: Cannot create migrations/001_add_x.sql: permission denied: user "
        f"{getpass.getuser()} may not write there; fix the folder's permissions (see `ls -ld "
        "migrations`) or run as a user who may")
    assert sorted(path.name for path in migrations.iterdir()) == ["README.md"]


def test_create_and_init_on_a_read_only_file_system_are_one_line(tmp_path: Path, run_process: ProcessRunner) -> None:
    """The folder is bind-mounted read-only in a private mount namespace (unshare; as a
    normal user inside a user namespace)."""
    assert run_process.in_process("fraiseql", "migrate", "init", url="").returncode == 0
    (tmp_path / "migrations" / "README.md").unlink()
    fraiseql_bin = BIN / "fraiseql"
    script = (
        "mount --bind migrations migrations && mount -o remount,bind,ro migrations && "
        f"{fraiseql_bin} migrate create add_x; {fraiseql_bin} migrate init"
    )
    namespace = ("unshare", "-m") if os.geteuid() == 0 else ("unshare", "-rm")
    result = run_process("sh", "-c", script, prefix=namespace, url="")
    read_only = ("the file system is read-only; run this where the migrations folder is "
                 "writable (e.g. your checkout, not a deployed image)")
    assert result.stderr.splitlines() == [
        f"Error: Cannot create migrations/001_add_x.sql: {read_only}",
        f"Error: Cannot create migrations/README.md: {read_only}",
    ]
    assert list((tmp_path / "migrations").iterdir()) == []


# ---------------------------------------------------------------------------
# alembic_version with two rows in a single line of migrations


def test_two_alembic_version_rows_in_a_linear_project_are_a_problem(project: Project, run_process: ProcessRunner) -> None:
    """Someone INSERTed instead of UPDATE: rows 001 and 003 of one line. Nothing said so,
    and `up` went on from 003. Now status shows it (exit 4 with --exit-code), `up`,
    `down` and the plain `alembic upgrade` refuse with the way out, `check` lists it."""
    for number, table in (("001", "a"), ("002", "b"), ("003", "c")):
        project.write(f"{number}_{table}.sql", UP_DOWN.format(t=table))
    assert project.cli("up").exit_code == 0
    project.write("004_d.sql", UP_DOWN.format(t="d"))
    project.query("INSERT INTO alembic_version VALUES ('001')")
    problem = (
        "alembic_version holds 2 rows (001_a.sql, 003_c.sql), but this project's migrations "
        "form a single line, so the database can be at only one of them. fraiseql_migrations "
        "says 003_c.sql ran last: keep its row and delete the other (`DELETE FROM "
        "alembic_version WHERE version_num <> '003'`)")
    url = project.database_url

    status = run_process.in_process("fraiseql", "migrate", "status", "--exit-code", url=url)
    assert status.returncode == 4, status.stdout + status.stderr
    assert status.stdout.splitlines()[-1] == f"Problem: {problem}"
    import json

    as_json = json.loads(run_process.in_process("fraiseql", "migrate", "status", "--json", url=url).stdout)
    assert as_json["version_rows_problem"] == problem and as_json["problems"] == 1

    up = run_process.in_process("fraiseql", "migrate", "up", url=url)
    assert one_error(up, 1) == f"Error: Refusing to migrate: {problem}. Nothing was applied"
    down = run_process.in_process("fraiseql", "migrate", "down", "--force", url=url)
    assert one_error(down, 1) == (
        f"Error: Refusing to roll back: {problem}. Nothing was rolled back")
    check = run_process.in_process("fraiseql", "migrate", "check", url=url)
    assert check.returncode == 1
    assert check.stdout.splitlines()[0] == problem
    ini = (Path(__file__).resolve().parents[2] / "alembic.ini.example").read_text()
    (project.root / "alembic.ini").write_text(ini)
    alembic = run_process.in_process("alembic", "upgrade", "head", url=url)
    assert alembic.returncode == 255
    assert f"FAILED: Refusing to migrate: {problem}. Nothing was applied" in alembic.stdout
    assert sorted(project.version()) == ["001", "003"]
    assert "d" not in project.tables()

    project.query("DELETE FROM alembic_version WHERE version_num <> '003'")  # the way out
    assert run_process.in_process("fraiseql", "migrate", "up", url=url).returncode == 0
    assert project.version() == ["004"]


def test_a_hand_inserted_row_without_history_says_to_find_the_right_one(
    project: Project, run_process: ProcessRunner
) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    project.write("002_b.sql", UP_DOWN.format(t="b"))
    project.query("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY); "
                  "INSERT INTO alembic_version VALUES ('001'), ('002')")
    result = run_process.in_process("fraiseql", "migrate", "up")
    assert one_error(result, 1) == (
        "Error: Refusing to migrate: alembic_version holds 2 rows (001_a.sql, 002_b.sql), but "
        "this project's migrations form a single line, so the database can be at only one of "
        "them. Keep only the row of the migration the database is really at and delete the "
        "other (`DELETE FROM alembic_version WHERE version_num <> '<version>'`). Nothing was "
        "applied")
