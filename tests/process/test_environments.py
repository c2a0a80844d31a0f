"""Named environments (docs/environments.md) through ``fraiseql`` as typed, on real
PostgreSQL: two environments on two databases, ``${VAR}`` in their URLs, FRAISEQL_ENV,
a shell's DATABASE_URL never used by an explicit environment, ``confirm`` with and without
a terminal, ``allow_down``, ``backup``, a fleet through ``targets``, and ``fraiseql.toml``
in a project that is not a Python package.

The installed command runs where its process is the subject: ``--env`` with the shell's
DATABASE_URL set, FRAISEQL_ENV read from the environment it starts with, a refusal
without a terminal on stdin (a pipe), one refused ``down``, and the prompts on a real
terminal; the other runs are the same runs in this process (``run_process.in_process``)."""

from __future__ import annotations

import json
import os
import pty
import re
from collections.abc import Mapping
from pathlib import Path

import pytest
from conftest import ProcessRunner, Project, Tenants
from scenarios import BIN, UP_DOWN

from fraiseql_alembic.devdb import DevCluster
from tests.process.test_pytest_plugin import in_process_pytest, make_project

PASSWORD = "DB_PASSWORD"
#: ``pytester``: the pytest plugin's session in this process (in_process_pytest).
pytest_plugins = ["pytester"]


def hidden(url: str) -> tuple[str, str]:
    """``url`` with its password replaced by ``${DB_PASSWORD}``, and that password."""
    match = re.match(r"^(postgresql://[^:/@]+:)([^@]+)(@.*)$", url)
    assert match is not None, url
    return f"{match[1]}${{{PASSWORD}}}{match[3]}", match[2]


def masked(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@]+@", r"://\1:***@", url)


def tables(url: str) -> set[str]:
    import psycopg2  # lazy: as in conftest's Project.query

    connection = psycopg2.connect(url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            return {row[0] for row in cursor.fetchall()}
    finally:
        connection.close()


def two_environments(project: Project, blue: str, green: str) -> dict[str, str]:
    """pyproject.toml with ``blue`` (plain) and ``green`` (confirm, no down) on the two
    databases, their passwords as ${DB_PASSWORD}; the variables a run needs."""
    (blue_url, secret), (green_url, _) = hidden(blue), hidden(green)
    (project.root / "pyproject.toml").write_text(f"""
[tool.fraiseql.environments.blue]
url = "{blue_url}"

[tool.fraiseql.environments.green]
url = "{green_url}"
confirm = true
allow_down = false
lock_timeout = "2s"
""", encoding="utf-8")
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    return {PASSWORD: secret}


def on_terminal(project: Project, argv: list[str], answer: bytes,
                env: Mapping[str, str]) -> str:
    """The installed command with stdin, stdout and stderr on a real terminal; ``answer``
    typed at the ``Continue?`` prompt; everything it wrote."""
    pid, fd = pty.fork()
    if pid == 0:  # child: the installed command on a real terminal
        os.chdir(project.root)
        environment = {key: value for key, value in os.environ.items()
                       if key not in ("DATABASE_URL", "FRAISEQL_ENV")}
        os.execve(str(BIN / "fraiseql"), ["fraiseql", *argv], {**environment, **env})
    output = b""
    answered = False
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # EIO: the command ended
            break
        if not chunk:
            break
        output += chunk
        if not answered and b"Continue?" in output:
            os.write(fd, answer)
            answered = True
    os.waitpid(pid, 0)
    return output.decode()


def test_two_environments_on_two_databases_never_the_shells_database_url(
        project: Project, tenants: Tenants, run_process: ProcessRunner) -> None:
    blue, green = tenants(2)
    env = two_environments(project, blue, green)

    # DATABASE_URL (the project's database) is set in the shell: --env does not use it
    applied = run_process("fraiseql", "migrate", "up", "--env", "blue", env=env, check=True)
    assert applied.stdout.splitlines()[0] == f"Environment blue: {masked(blue)}"
    assert (tables(blue), tables(green), project.tables()) == (
        {"a", "alembic_version", "fraiseql_migrations"}, set(), set())
    assert env[PASSWORD] not in applied.stdout + applied.stderr

    status = run_process("fraiseql", "migrate", "status", env={**env, "FRAISEQL_ENV": "green"},
                         check=True)
    assert status.stdout.splitlines()[:3] == [
        f"Environment green: {masked(green)}", "Migration Status:", "  ○ 001_a.sql (pending)"]
    document = json.loads(run_process.in_process("fraiseql", "migrate", "status", "--env", "blue",
                                                 "--json", env=env, check=True).stdout)
    assert document["environment"] == {"name": "blue", "url": masked(blue)}
    assert document["pending"] == 0
    plain = json.loads(run_process.in_process("fraiseql", "migrate", "status", "--json",
                                              check=True).stdout)
    assert plain["environment"] is None and plain["pending"] == 1  # DATABASE_URL's database

    # the flag wins over FRAISEQL_ENV; --database-url with an environment is refused
    wins = run_process.in_process("fraiseql", "migrate", "status", "--env", "blue",
                                  env={**env, "FRAISEQL_ENV": "green"}, check=True)
    assert wins.stdout.startswith("Environment blue: ")
    both = run_process.in_process("fraiseql", "migrate", "status", "--database-url",
                                  project.database_url, env={**env, "FRAISEQL_ENV": "green"})
    assert (both.returncode, both.stdout) == (2, "")
    assert both.stderr == (
        "Error: --database-url cannot be combined with FRAISEQL_ENV=green: the environment "
        "names its database ([tool.fraiseql.environments.green] in pyproject.toml); drop one "
        "of them\n")


def test_an_unset_variable_or_unknown_name_is_one_line(
        project: Project, tenants: Tenants, run_process: ProcessRunner) -> None:
    two_environments(project, *tenants(2))
    unset = run_process.in_process("fraiseql", "migrate", "up", "--env", "blue",
                                   env={PASSWORD: None})
    assert (unset.returncode, unset.stdout) == (1, "")
    assert unset.stderr == (
        "Error: url of environment blue ([tool.fraiseql.environments.blue] in pyproject.toml): "
        "environment variable DB_PASSWORD is not set; export it before the run (the file says "
        "${DB_PASSWORD})\n")
    unknown = run_process.in_process("fraiseql", "migrate", "up", env={"FRAISEQL_ENV": "prod"})
    assert (unknown.returncode, unknown.stderr) == (
        2, "Error: Unknown environment 'prod' (FRAISEQL_ENV); the known ones are: blue, "
        "green\n")
    assert project.tables() == set()


def test_confirm_asks_on_a_terminal_and_refuses_without_one(
        project: Project, tenants: Tenants, run_process: ProcessRunner) -> None:
    blue, green = tenants(2)
    env = two_environments(project, blue, green)

    refused = run_process("fraiseql", "migrate", "up", "--env", "green", env=env, input="y\n")
    assert refused.returncode == 1
    assert refused.stdout.splitlines() == [
        f"Environment green: {masked(green)}", "About to apply 1 migration:", "  001_a.sql"]
    assert refused.stderr == (
        "Error: Refusing to apply migrations without confirmation (confirm = true in "
        "[tool.fraiseql.environments.green] in pyproject.toml): there is no terminal to ask "
        "on. Pass --force to apply anyway; nothing was changed\n")
    assert tables(green) == set()
    # --json: stdout holds JSON lines only; the plan and the refusal go to stderr
    as_json = run_process.in_process("fraiseql", "migrate", "up", "--env", "green", "--json",
                                     env=env)
    assert as_json.returncode == 1
    assert [json.loads(line) for line in as_json.stdout.splitlines()] == [
        {"event": "environment", "name": "green", "database": masked(green)}]
    assert as_json.stderr.startswith("About to apply 1 migration:\n  001_a.sql\nError: ")
    # a dry run or a rehearsal writes nothing: it does not ask
    rehearsed = run_process.in_process("fraiseql", "migrate", "up", "--env", "green",
                                       "--rehearse", env=env)
    assert rehearsed.returncode == 0, rehearsed.stderr
    dry = run_process.in_process("fraiseql", "migrate", "up", "--env", "green", "--dry-run",
                                 env=env)
    assert dry.returncode == 0 and "Nothing was applied (dry run)." in dry.stdout

    declined = on_terminal(project, ["migrate", "up", "--env", "green"], b"n\n", env)
    assert "About to apply 1 migration:" in declined, declined
    assert "Upgrade cancelled; nothing was applied" in declined
    assert tables(green) == set()
    accepted = on_terminal(project, ["migrate", "up", "--env", "green"], b"y\n", env)
    assert "Migration completed successfully" in accepted, accepted
    assert "a" in tables(green)

    # nothing pending: nothing to confirm; --force never asks
    again = run_process.in_process("fraiseql", "migrate", "up", "--env", "green", env=env,
                                   check=True)
    assert again.stdout.splitlines()[-1] == "Already up to date"
    project.write("002_b.sql", UP_DOWN.format(t="b"))
    forced = run_process.in_process("fraiseql", "migrate", "up", "--env", "green", "--force",
                                    env=env, check=True)
    assert "About to apply" not in forced.stdout and "b" in tables(green)
    # an environment without confirm does not ask
    run_process.in_process("fraiseql", "migrate", "up", "--env", "blue", env=env, check=True)
    assert {"a", "b"} <= tables(blue)


def test_allow_down_false_refuses_down_without_allow_down(
        project: Project, tenants: Tenants, run_process: ProcessRunner) -> None:
    blue, green = tenants(2)
    env = two_environments(project, blue, green)
    run_process.in_process("fraiseql", "migrate", "up", "--env", "green", "--force", env=env,
                           check=True)

    refused = run_process("fraiseql", "migrate", "down", "--env", "green", "--force", env=env)
    assert (refused.returncode, refused.stdout) == (1, "")
    assert refused.stderr == (
        "Error: Environment green does not allow down (allow_down = false in "
        "[tool.fraiseql.environments.green] in pyproject.toml): pass --allow-down to roll back "
        "anyway; nothing was changed\n")
    assert "a" in tables(green)
    allowed = run_process.in_process("fraiseql", "migrate", "down", "--env", "green",
                                     "--allow-down", "--force", env=env, check=True)
    assert allowed.stdout.splitlines()[0] == f"Environment green: {masked(green)}"
    assert "a" not in tables(green)
    # allow_down is green's only: blue rolls back as any database does
    run_process.in_process("fraiseql", "migrate", "up", "--env", "blue", env=env, check=True)
    run_process.in_process("fraiseql", "migrate", "down", "--env", "blue", "--force", env=env,
                           check=True)
    assert "a" not in tables(blue)


def test_backup_true_dumps_before_up_unless_no_backup(
        project: Project, run_process: ProcessRunner) -> None:
    url, secret = hidden(project.database_url)
    (project.root / "pyproject.toml").write_text(
        f'[tool.fraiseql.environments.prod]\nurl = "{url}"\nbackup = true\n', encoding="utf-8")
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    env = {PASSWORD: secret, "DATABASE_URL": None}

    taken = run_process.in_process("fraiseql", "migrate", "up", "--env", "prod", env=env,
                                   check=True)
    (dump,) = (project.root / "backups").iterdir()
    assert f"✓ Backup: backups/{dump.name} (" in taken.stdout
    project.write("002_b.sql", UP_DOWN.format(t="b"))
    skipped = run_process.in_process("fraiseql", "migrate", "up", "--env", "prod", "--no-backup",
                                     env=env, check=True)
    assert "Backup" not in skipped.stdout and len(list((project.root / "backups").iterdir())) == 1
    assert project.tables() >= {"a", "b"}


def test_an_environment_of_targets_runs_the_fleet(
        project: Project, tenants: Tenants, run_process: ProcessRunner) -> None:
    first, second = tenants(2)
    (project.root / "deploy").mkdir()
    (project.root / "deploy" / "tenants.txt").write_text(
        f"{hidden(first)[0]}\n{hidden(second)[0]}\n", encoding="utf-8")
    (project.root / "pyproject.toml").write_text(
        '[tool.fraiseql.environments.tenants]\ntargets = "deploy/tenants.txt"\n', encoding="utf-8")
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    env = {PASSWORD: hidden(first)[1]}

    result = run_process.in_process("fraiseql", "migrate", "up", "--env", "tenants",
                                    "--no-record", env=env, check=True)
    assert result.stdout.splitlines()[0] == (
        f"Environment tenants: the targets in {project.root / 'deploy' / 'tenants.txt'}")
    assert "a" in tables(first) and "a" in tables(second) and project.tables() == set()
    status = run_process.in_process("fraiseql", "migrate", "status", "--env", "tenants", env=env,
                                    check=True)
    assert status.stdout.splitlines()[-1] == (
        "2 targets: 2 up to date, 0 behind, 0 inconsistent, 0 could not be read")
    document = json.loads(run_process.in_process("fraiseql", "migrate", "status", "--json",
                                                 url=None, env={**env, "FRAISEQL_ENV": "tenants"},
                                                 check=True).stdout)
    assert document["environment"] == {
        "name": "tenants", "targets": str(project.root / "deploy" / "tenants.txt")}
    assert document["totals"]["up_to_date"] == 2
    assert env[PASSWORD] not in result.stdout + status.stdout


def test_fraiseql_toml_in_a_project_without_python(
        tmp_path: Path, tenants: Tenants, run_process: ProcessRunner) -> None:
    (dev,) = tenants(1)
    url, secret = hidden(dev)
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "001_a.sql").write_text(UP_DOWN.format(t="a"), encoding="utf-8")
    (tmp_path / "fraiseql.toml").write_text(
        f'[migrations]\npath = "db"\n\n[environments.dev]\nurl = "{url}"\n', encoding="utf-8")

    run_process.in_process("fraiseql", "migrate", "up", "--env", "dev", url=None,
                           env={PASSWORD: secret}, check=True)
    assert "a" in tables(dev)
    status = run_process.in_process("fraiseql", "migrate", "status", url=None,
                                    env={PASSWORD: secret, "FRAISEQL_ENV": "dev"}, check=True)
    assert status.stdout.splitlines()[:2] == [f"Environment dev: {masked(dev)}",
                                              "Migration Status:"]
    assert "✓ 001_a.sql (applied" in status.stdout


def test_the_pytest_plugin_never_takes_a_deploy_environment(
        pytester: pytest.Pytester, pg_cluster: DevCluster, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """FRAISEQL_ENV left in a developer's shell does not reach the application's tests: the
    template databases use the project's own settings, never prod's URL variables or
    history schema."""
    root = make_project(tmp_path / "project")
    with (root / "pyproject.toml").open("a", encoding="utf-8") as pyproject:
        pyproject.write('[tool.fraiseql.environments.prod]\n'
                        'url = "postgresql://deploy:${UNSET_PROD_PASSWORD}@db.prod/app"\n'
                        'history_schema = "nowhere"\n')
    monkeypatch.setenv("FRAISEQL_ENV", "prod")  # the shell the plugin's pytest runs in
    monkeypatch.delenv("UNSET_PROD_PASSWORD", raising=False)
    result = in_process_pytest(pytester, root, pg_cluster.url("postgres"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
