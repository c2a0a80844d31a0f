"""The pytest plugin as a project uses it: a user's test files run by ``python -m pytest`` in
a project folder, the plugin loaded through its ``pytest11`` entry point, the databases
made on this worker's PostgreSQL (or on a throwaway one when no server is given).

The sessions whose subject is what the fixtures do run in this process (``pytester``'s
``runpytest_inprocess``: the same arguments, folder and environment; the inner session's
own plugin manager loads the plugin through its entry point, as ``python -m pytest``
does).  A fresh interpreter stays where it is the subject: what loading the plugin
imports, and xdist's workers sharing one template.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pglast.parser  # noqa: F401
import psycopg2
import pytest

# Loaded before any in-process session: pytester takes sys.modules back to what it was
# after each one, and would otherwise have SQLAlchemy, the engine and pglast (the template's
# migrations are split) imported anew each time.
import fraiseql_alembic.api
import fraiseql_alembic.testing  # noqa: F401
from fraiseql_alembic.devdb import DevCluster
from fraiseql_alembic.engine.templatedb import COMMENT_PREFIX
from tests.conftest import ProcessRunner
from tests.scenarios import UP_DOWN

ADMIN = "FRAISEQL_TEST_ADMIN_URL"

#: ``pytester``: a project's session in this process (:func:`in_process_pytest`).
pytest_plugins = ["pytester"]

#: A user's conftest-free test file: each test gets a copy of the template.
USER_TESTS = '''
import sqlalchemy

SEEN = []

def test_writes(fraiseql_connection, fraiseql_template):
    SEEN.append(fraiseql_template)
    with fraiseql_connection, fraiseql_connection.cursor() as cursor:
        cursor.execute("INSERT INTO users (id) VALUES (1)")
        cursor.execute("SELECT count(*) FROM users")
        assert cursor.fetchone() == (1,)

def test_does_not_see_the_write(fraiseql_engine, fraiseql_template):
    SEEN.append(fraiseql_template)
    with fraiseql_engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("SELECT count(*) FROM users")).scalar() == 0
        # the migrations ran in the template, not again for this test
        applied = connection.execute(sqlalchemy.text(
            "SELECT count(*) FROM fraiseql_migrations")).scalar()
        assert applied == 2

def test_one_template_per_session(fraiseql_database_url, fraiseql_template):
    SEEN.append(fraiseql_template)
    assert len({id(template) for template in SEEN}) == 1
    print("TEMPLATE", fraiseql_template.name, "BUILT", fraiseql_template.built)
'''


def python_pytest(run_process: ProcessRunner, root: Path, admin: str | None,
                  *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``python -m pytest ARGS`` in the project, the plugin's server given or not."""
    return run_process(sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                       "-p", "no:pytest_alembic", *args, cwd=root, url=None,
                       env={ADMIN: admin, "PYTEST_ADDOPTS": None}, timeout=timeout)


def in_process_pytest(pytester: pytest.Pytester, root: Path, admin: str | None,
                      *args: str) -> subprocess.CompletedProcess[str]:
    """The session :func:`python_pytest` runs, in this process: ``pytest ARGS`` in the
    project with the same environment (DATABASE_URL and PYTEST_ADDOPTS unset, the server
    in FRAISEQL_TEST_ADMIN_URL or not); its exit code and output."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.delenv("DATABASE_URL", raising=False)
        if admin is None:
            patch.delenv(ADMIN, raising=False)
        else:
            patch.setenv(ADMIN, admin)
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider",
                                              "-p", "no:pytest_alembic", *args)
    return subprocess.CompletedProcess(["pytest", *args], int(result.ret),
                                       result.stdout.str() + "\n", result.stderr.str())


def make_project(root: Path, tests: str = USER_TESTS) -> Path:
    (root / "migrations").mkdir(parents=True)
    (root / "migrations" / "001_users.sql").write_text(UP_DOWN.format(t="users"))
    (root / "migrations" / "002_tags.sql").write_text(UP_DOWN.format(t="tags"))
    (root / "pyproject.toml").write_text("[tool.pytest.ini_options]\naddopts = \"-s\"\n")
    (root / "test_app.py").write_text(tests)
    return root


def query(cluster: DevCluster, sql: str, *params: object) -> list[tuple[object, ...]]:
    connection = psycopg2.connect(cluster.url("postgres"))
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(sql, params or None)
            return cursor.fetchall()
    finally:
        connection.close()


def templates_of(cluster: DevCluster, folder: Path) -> list[str]:
    rows = query(cluster, "SELECT datname FROM pg_database WHERE datistemplate AND "
                 "shobj_description(oid, 'pg_database') LIKE %s",
                 f"{COMMENT_PREFIX}{folder.resolve()} %")
    return [str(row[0]) for row in rows]


def copies_left(cluster: DevCluster) -> list[str]:
    """The databases sessions made (copies, up/down/up's) and did not drop."""
    return [str(row[0]) for row in query(
        cluster, "SELECT datname FROM pg_database WHERE datname LIKE 'fraiseql\\_t\\_%'")]


def test_each_test_gets_a_fresh_copy_of_a_template_built_once(
        pytester: pytest.Pytester, pg_cluster: DevCluster, tmp_path: Path) -> None:
    root = make_project(tmp_path / "project")
    admin = pg_cluster.url("postgres")
    first = in_process_pytest(pytester, root, admin)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3 passed" in first.stdout and "BUILT True" in first.stdout
    [template] = templates_of(pg_cluster, root / "migrations")
    assert f"TEMPLATE {template} " in first.stdout
    assert copies_left(pg_cluster) == []  # every copy dropped

    again = in_process_pytest(pytester, root, admin)  # the same migrations: reused
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"TEMPLATE {template} BUILT False" in again.stdout

    # a changed folder never reuses the template; the older one is dropped
    (root / "migrations" / "003_more.sql").write_text(UP_DOWN.format(t="more"))
    (root / "test_app.py").write_text(USER_TESTS.replace("assert applied == 2",
                                                         "assert applied == 3"))
    changed = in_process_pytest(pytester, root, admin)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    [newer] = templates_of(pg_cluster, root / "migrations")
    assert newer != template and f"TEMPLATE {newer} BUILT True" in changed.stdout


def test_parallel_workers_share_one_template(
        run_process: ProcessRunner, pg_cluster: DevCluster, tmp_path: Path) -> None:
    tests = USER_TESTS.replace("assert len({id(template) for template in SEEN}) == 1", "")
    tests += "".join(f"\ndef test_more_{n}(fraiseql_connection):\n"
                     "    with fraiseql_connection.cursor() as cursor:\n"
                     "        cursor.execute('INSERT INTO tags VALUES (1)')\n"
                     for n in range(4))
    # a failing test that leaves a session open on its database: dropped all the same
    tests += ("\nimport psycopg2\nLEAKED = []\n\n"
              "def test_fails_with_a_session_left_open(fraiseql_database_url):\n"
              "    LEAKED.append(psycopg2.connect(fraiseql_database_url))\n"
              "    assert False, 'on purpose'\n")
    root = make_project(tmp_path / "project", tests)
    result = python_pytest(run_process, root, pg_cluster.url("postgres"), "-n", "2",
                           "-p", "xdist")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 7 passed" in result.stdout and "on purpose" in result.stdout
    assert len(templates_of(pg_cluster, root / "migrations")) == 1
    assert copies_left(pg_cluster) == []


def test_up_down_up_fixture_names_a_wrong_down(
        pytester: pytest.Pytester, pg_cluster: DevCluster, tmp_path: Path) -> None:
    root = make_project(tmp_path / "project", (
        "def test_round_trip(fraiseql_up_down_up):\n    fraiseql_up_down_up()\n\n"
        "def test_allowed(fraiseql_up_down_up):\n"
        "    report = fraiseql_up_down_up(irreversible=['003_seed.sql'])\n"
        "    print('REPORT', report.describe().splitlines()[-1])\n"))
    (root / "migrations" / "002_tags.sql").write_text(
        "-- migrate:up\nCREATE TABLE tags (id int);\nCREATE INDEX tags_id ON tags (id);\n"
        "-- migrate:down\nDROP INDEX tags_id;\n")
    (root / "migrations" / "003_seed.sql").write_text("INSERT INTO users VALUES (1);\n")
    result = in_process_pytest(pytester, root, pg_cluster.url("postgres"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert ("002_tags.sql: down did not undo up: table public.tags left; "
            "column public.tags.id left") in result.stdout
    assert "up -> down -> up: 1 ok, 1 failed, 1 not checked" in result.stdout
    assert "2 failed" in result.stdout

    (root / "migrations" / "002_tags.sql").write_text(UP_DOWN.format(t="tags"))
    fixed = in_process_pytest(pytester, root, pg_cluster.url("postgres"))
    assert "003_seed.sql: no down section: add a `-- migrate:down` section" in fixed.stdout
    assert "REPORT up -> down -> up: 2 ok, 1 skipped" in fixed.stdout
    assert "1 failed, 1 passed" in fixed.stdout
    assert copies_left(pg_cluster) == []


def test_a_session_without_its_fixtures_loads_nothing_and_makes_nothing(
        run_process: ProcessRunner, pytester: pytest.Pytester, pg_cluster: DevCluster,
        tmp_path: Path) -> None:
    root = make_project(tmp_path / "project", (
        "import sys\n\n"
        "def test_inert(pytestconfig):\n"
        "    assert pytestconfig.pluginmanager.has_plugin('fraiseql')\n"
        "    loaded = [name for name in ('psycopg2', 'sqlalchemy', 'alembic', 'pglast',\n"
        "              'fraiseql_alembic.settings', 'fraiseql_alembic.api',\n"
        "              'fraiseql_alembic.engine', 'fraiseql_alembic.testing')\n"
        "              if name in sys.modules]\n"
        "    assert loaded == []\n"))
    before = query(pg_cluster, "SELECT count(*) FROM pg_database")
    result = python_pytest(run_process, root, pg_cluster.url("postgres"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert query(pg_cluster, "SELECT count(*) FROM pg_database") == before
    assert templates_of(pg_cluster, root / "migrations") == []
    help_text = in_process_pytest(pytester, root, None, "--help").stdout
    assert "--fraiseql-admin-url=URL" in help_text and "--fraiseql-migrations=PATH" in help_text


def test_without_a_server_a_throwaway_one_is_started_and_removed(
        pytester: pytest.Pytester, tmp_path: Path) -> None:
    tests = USER_TESTS + (
        "\nimport os\n\ndef test_server(fraiseql_databases):\n"
        "    assert fraiseql_databases.admin_url is None\n"
        "    fraiseql_databases.server\n"
        "    print('CLUSTER', fraiseql_databases.cluster_dir)\n")
    root = make_project(tmp_path / "project", tests)
    result = in_process_pytest(pytester, root, None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
    [directory] = re.findall(r"CLUSTER (\S+)", result.stdout)
    assert directory.startswith("/") and not Path(directory).exists()
    if os.access("/dev/shm", os.W_OK):  # in memory where there is room (Linux)
        assert directory.startswith("/dev/shm/fraiseql-tests-")


def test_the_migrations_folder_and_server_from_the_ini_file(
        pytester: pytest.Pytester, pg_cluster: DevCluster, tmp_path: Path) -> None:
    root = make_project(tmp_path / "project")
    (root / "migrations").rename(root / "db")
    (root / "pyproject.toml").write_text(
        "[tool.pytest.ini_options]\naddopts = \"-s\"\nfraiseql_migrations = \"db\"\n"
        f"fraiseql_admin_url = \"{pg_cluster.url('postgres')}\"\n")
    result = in_process_pytest(pytester, root, None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(templates_of(pg_cluster, root / "db")) == 1

    (root / "db" / "003_more.sql").write_text(UP_DOWN.format(t="more"))
    (root / "test_app.py").write_text(USER_TESTS.replace("assert applied == 2",
                                                         "assert applied == 3"))
    with (root / "pyproject.toml").open("a") as ini:
        ini.write("fraiseql_keep_template = false\n")
    own = in_process_pytest(pytester, root, None)
    assert own.returncode == 0, own.stdout + own.stderr
    assert "BUILT True" in own.stdout and copies_left(pg_cluster) == []
    assert len(templates_of(pg_cluster, root / "db")) == 1  # the kept one, left alone


def test_the_conftest_of_the_docs_runs_as_written(
        pytester: pytest.Pytester, pg_cluster: DevCluster, tmp_path: Path) -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "testing.md").read_text()
    blocks = dict(
        (block.split("\n", 1)[0].removeprefix("# "), block)
        for block in re.findall(r"```python\n(.*?)```", page, re.S))
    root = make_project(tmp_path / "project", blocks["test_users.py"])
    (root / "conftest.py").write_text(blocks["conftest.py"])
    (root / "migrations" / "001_users.sql").write_text(
        "-- migrate:up\nCREATE TABLE users (id serial PRIMARY KEY, email text);\n"
        "-- migrate:down\nDROP TABLE users;\n")
    (root / "migrations" / "007_backfill_emails.sql").write_text(
        "UPDATE users SET email = lower(email);\n")
    result = in_process_pytest(pytester, root, pg_cluster.url("postgres"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_a_server_or_a_migration_that_fails_is_one_line(
        pytester: pytest.Pytester, pg_cluster: DevCluster, tmp_path: Path) -> None:
    root = make_project(tmp_path / "project")
    unreachable = pg_cluster.url("postgres").replace(f":{pg_cluster.port}/", ":1/")
    result = in_process_pytest(pytester, root, unreachable)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "3 errors" in result.stdout
    [line] = {line for line in result.stdout.splitlines() if line.startswith("fraiseql: ")}
    assert "127.0.0.1:1" in line and pg_cluster.password not in result.stdout
    assert line.endswith("--fraiseql-admin-url, FRAISEQL_TEST_ADMIN_URL or the "
                         "fraiseql_admin_url ini option (a role with CREATEDB), or none of "
                         "them for a throwaway PostgreSQL")
    assert "Traceback" not in result.stdout and "templatedb.py" not in result.stdout
    assert "During handling" not in result.stdout

    (root / "migrations" / "003_bad.sql").write_text("CREATE TABLE users (id int);\n")
    failed = in_process_pytest(pytester, root, pg_cluster.url("postgres"))
    assert failed.returncode == 1, failed.stdout + failed.stderr
    [line] = {line for line in failed.stdout.splitlines() if line.startswith("fraiseql: ")}
    assert "003_bad.sql" in line and "already exists" in line
    assert templates_of(pg_cluster, root / "migrations") == []
