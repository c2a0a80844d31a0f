"""Resuming a file that runs in segments, after a failure or a client killed while a
statement ran outside a transaction: real processes (SIGSTOP/SIGKILL), real PostgreSQL,
on both engines (the direct path, and Alembic through a ``.py`` revision in the folder,
or the plain ``alembic`` command). The frozen and killed runs are the installed commands;
the runs after them (resume, refusal, ``--resume``) run in-process: what they find and
say is the subject."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable

import pytest
from conftest import ProcessRunner, Project
from scenarios import REPO, blocker, frozen

ENGINES = ["direct", "alembic"]

BASE_SQL = ("-- migrate:up\nCREATE TABLE t (a int);\nINSERT INTO t VALUES (1), (2);\n"
            "-- migrate:down\nDROP TABLE t;\n")
BASE_PY = '''"""Base."""
from alembic import op

revision = "001"
down_revision = None

def upgrade():
    op.execute("CREATE TABLE t (a int)")
    op.execute("INSERT INTO t VALUES (1), (2)")

def downgrade():
    op.execute("DROP TABLE t")
'''


def setup(project: Project, engine: str) -> None:
    """``001`` makes table ``t`` and is applied (in-process: a set-up step); with
    ``alembic`` the folder holds a ``.py`` revision (so `fraiseql migrate up` runs through
    Alembic) and an alembic.ini."""
    if engine == "alembic":
        shutil.copy(REPO / "alembic.ini.example", project.root / "alembic.ini")
        (project.migrations / "001_base.py").write_text(BASE_PY)
    else:
        project.write("001_base.sql", BASE_SQL)
    applied = project.cli("up")
    assert applied.exit_code == 0, applied.output


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def backend(project: Project, statement: str) -> tuple[int, str, str | None] | None:
    """(pid, state, wait_event_type) of the session whose query starts with ``statement``."""
    rows = project.query(
        "SELECT pid, state, wait_event_type FROM pg_stat_activity WHERE query LIKE "
        f"'{statement}%' AND pid <> pg_backend_pid() AND datname = current_database()")
    return rows[0] if rows else None


def waiting(project: Project, statement: str) -> Callable[[], bool]:
    def check() -> bool:
        found = backend(project, statement)
        return found is not None and found[1] == "active" and found[2] == "Lock"
    return check


def killed_after_the_server_finished(
    run_process: ProcessRunner, project: Project, command: list[str], statement: str, blocking_sql: str,
) -> None:
    """Start ``command``; while ``statement`` waits for the blocker, freeze the client
    (SIGSTOP), let the server finish the statement, then SIGKILL the client: the server
    completed the statement and the client never saw it."""
    with blocker(project, blocking_sql) as holder:
        process = run_process.start(*command, capture=False)
        try:
            wait_until(waiting(project, statement))
            found = backend(project, statement)
            assert found is not None
            frozen(process.pid)
            holder.commit()
            wait_until(lambda: project.query(
                f"SELECT state FROM pg_stat_activity WHERE pid = {found[0]}") == [("idle",)])
        finally:
            process.kill()
            process.wait(timeout=30)
    wait_until(lambda: backend(project, statement) is None)


def progress_rows(project: Project) -> list[tuple[object, ...]]:
    return project.query("SELECT version, state, statement_line FROM "
                         "fraiseql_migration_progress ORDER BY version")


def index_oid(project: Project, name: str) -> list[tuple[object, ...]]:
    return project.query("SELECT c.oid, i.indisvalid FROM pg_index i JOIN pg_class c "
                         f"ON c.oid = i.indexrelid WHERE c.relname = '{name}'")


INDEXED = """-- migrate:up
CREATE TABLE before_index (a int);
INSERT INTO before_index VALUES (1);
CREATE INDEX CONCURRENTLY idx_t_a ON t (a);
CREATE TABLE after_index (a int);
-- migrate:down
DROP TABLE after_index;
DROP INDEX idx_t_a;
DROP TABLE before_index;
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_index_the_server_finished_after_the_client_died_is_recorded_not_built_again(
    project: Project, engine: str, run_process: ProcessRunner,
) -> None:
    setup(project, engine)
    project.write("002_indexed.sql", INDEXED)
    command = ["alembic", "upgrade", "head"] if engine == "alembic" else [
        "fraiseql", "migrate", "up"]
    # an open writing transaction on t: the index build waits for it before building
    killed_after_the_server_finished(run_process,
        project, command, "CREATE INDEX CONCURRENTLY", "INSERT INTO t VALUES (3)")
    built = index_oid(project, "idx_t_a")
    assert [valid for _, valid in built] == [True]  # the server finished it on its own
    assert progress_rows(project) == [("002", "running", 4)]
    assert "PARTIALLY APPLIED: stopped while line 4 ran outside a transaction" in project.cli("status").output

    resumed = project.cli("up")
    assert resumed.exit_code == 0, resumed.stdout + resumed.stderr
    assert ("002_indexed.sql:4: an earlier run stopped before recording this statement's "
            "outcome; index idx_t_a exists and is valid: recorded as done, not run again"
            ) in resumed.stdout + resumed.stderr
    assert index_oid(project, "idx_t_a") == built  # not built again
    assert project.query("SELECT count(*) FROM before_index") == [(1,)]  # not run again
    assert "after_index" in project.tables() and project.version() == ["002"]
    assert progress_rows(project) == []
    assert project.query("SELECT count(*) FROM fraiseql_migration_segments") == [(0,)]


@pytest.mark.parametrize("engine", ENGINES)
def test_index_build_the_server_cancelled_with_its_client_is_built_again(
    project: Project, engine: str, run_process: ProcessRunner,
) -> None:
    setup(project, engine)
    project.write("002_indexed.sql", INDEXED)
    with blocker(project, "INSERT INTO t VALUES (3)"):
        process = run_process.start("fraiseql", "migrate", "up", capture=False)
        wait_until(waiting(project, "CREATE INDEX CONCURRENTLY"))
        process.kill()
        process.wait(timeout=30)
        # the server notices the dead client and stops the build: an INVALID index stays
        wait_until(lambda: backend(project, "CREATE INDEX CONCURRENTLY") is None)
    assert [valid for _, valid in index_oid(project, "idx_t_a")] == [False]
    resumed = project.cli("up")
    output = resumed.stdout + resumed.stderr
    assert resumed.exit_code == 0, output
    assert "index idx_t_a is INVALID (the build did not finish): running it again" in output
    assert "dropping INVALID index public.idx_t_a" in output
    assert [valid for _, valid in index_oid(project, "idx_t_a")] == [True]
    assert project.query("SELECT count(*) FROM before_index") == [(1,)]
    assert project.version() == ["002"] and progress_rows(project) == []


OUTSIDE = """-- migrate:up transaction:false
INSERT INTO t VALUES (10);
INSERT INTO t VALUES (20);
-- migrate:down
DELETE FROM t WHERE a IN (10, 20);
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_statement_of_unknown_outcome_stops_with_two_ways_out(
    project: Project, engine: str, run_process: ProcessRunner,
) -> None:
    setup(project, engine)
    project.write("002_outside.sql", OUTSIDE)
    command = ["alembic", "upgrade", "head"] if engine == "alembic" else [
        "fraiseql", "migrate", "up"]
    killed_after_the_server_finished(run_process,
        project, command, "INSERT INTO t VALUES (10)", "LOCK TABLE t IN SHARE MODE")
    assert project.query("SELECT count(*) FROM t WHERE a = 10") == [(1,)]

    stopped = project.cli("up")
    assert stopped.exit_code == 1
    assert stopped.stderr.splitlines()[-1] == (
        "Error: 002_outside.sql:2: `INSERT INTO t VALUES (10)` ran outside a transaction and "
        "an earlier run stopped before recording its outcome, so it may have taken effect; "
        "nothing was run. Check the database, then run `fraiseql migrate up --resume done` "
        "if it took effect, or `fraiseql migrate up --resume again` to run it again")
    assert project.query("SELECT count(*) FROM t WHERE a = 10") == [(1,)]  # never twice
    if engine == "alembic":  # the plain alembic command stops the same way
        plain = run_process.in_process("alembic", "upgrade", "head")
        assert plain.returncode != 0
        assert "002_outside.sql:2: `INSERT INTO t VALUES (10)` ran outside" in plain.stdout
        assert project.query("SELECT count(*) FROM t WHERE a = 10") == [(1,)]

    done = project.cli("up", "--resume", "done")
    assert done.exit_code == 0, done.stdout + done.stderr
    assert "002_outside.sql:2: recorded as done, not run again (--resume done)" in done.stdout
    assert project.query("SELECT a, count(*) FROM t WHERE a >= 10 GROUP BY a ORDER BY a") == [
        (10, 1), (20, 1)]
    assert project.version() == ["002"] and progress_rows(project) == []


def test_resume_again_runs_the_interrupted_statement_again(project: Project, run_process: ProcessRunner) -> None:
    setup(project, "direct")
    project.write("002_outside.sql", OUTSIDE)
    killed_after_the_server_finished(run_process, project, ["fraiseql", "migrate", "up"],
                                     "INSERT INTO t VALUES (10)", "LOCK TABLE t IN SHARE MODE")
    again = project.cli("up", "--resume", "again")
    assert again.exit_code == 0, again.output
    assert "002_outside.sql:2: will be run again (--resume again)" in again.output
    assert project.query("SELECT a, count(*) FROM t WHERE a >= 10 GROUP BY a ORDER BY a") == [
        (10, 2), (20, 1)]  # as asked
    assert project.version() == ["002"]


def test_resume_without_an_interrupted_statement_is_refused(project: Project, run_process: ProcessRunner) -> None:
    setup(project, "direct")
    project.write("002_outside.sql", OUTSIDE)
    result = project.cli("up", "--resume", "done")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "Error: --resume done: no statement of an earlier `fraiseql migrate up` was left "
        "unrecorded (see `fraiseql migrate status`); nothing was run. Run the command "
        "without --resume")
    assert project.version() == ["001"]
    assert project.cli("up", "--dry-run", "--resume", "done").exit_code == 2


ONE_CONCURRENT = """-- migrate:up
CREATE TABLE m1 (a int);
INSERT INTO m1 VALUES (1), (1);
CREATE UNIQUE INDEX CONCURRENTLY idx_m1 ON m1 (a);
CREATE TABLE m2 (a int);
-- migrate:down
DROP TABLE m2;
DROP TABLE m1;
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_fix_that_removes_the_last_concurrent_statement_resumes_exactly(
    project: Project, engine: str, run_process: ProcessRunner,
) -> None:
    setup(project, engine)
    project.write("002_one.sql", ONE_CONCURRENT)
    failed = project.cli("up")
    assert failed.exit_code == 1 and "failed at line 4" in failed.stderr
    # the fix: a plain (transactional) index; nothing in the file needs autocommit now
    project.write("002_one.sql", ONE_CONCURRENT.replace(
        "CREATE UNIQUE INDEX CONCURRENTLY idx_m1 ON m1 (a);",
        "CREATE INDEX idx_m1 ON m1 (a);"))
    resumed = project.cli("up")
    output = resumed.stdout + resumed.stderr
    assert resumed.exit_code == 0, output
    assert "Resuming 002_one.sql at line 4" in output
    assert "dropping INVALID index public.idx_m1" in output
    assert project.query("SELECT count(*) FROM m1") == [(2,)]  # line 3 not run again
    assert [valid for _, valid in index_oid(project, "idx_m1")] == [True]
    assert "m2" in project.tables() and project.version() == ["002"]
    assert progress_rows(project) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_edit_inside_a_completed_segment_is_refused_with_its_line(
    project: Project, engine: str, run_process: ProcessRunner,
) -> None:
    setup(project, engine)
    project.write("002_one.sql", ONE_CONCURRENT)
    assert project.cli("up").exit_code == 1
    project.write("002_one.sql", ONE_CONCURRENT.replace("VALUES (1), (1)", "VALUES (1)"))
    refused = project.cli("up")
    assert refused.exit_code == 1
    assert refused.stderr.splitlines()[-1].startswith(
        "Error: 002_one.sql:3: this statement changed since an earlier run completed it "
        "(lines 2-3 are applied; the file is partly applied). Restore it")
    assert project.query("SELECT count(*) FROM m1") == [(2,)]
    # edits after the completed part are allowed: a statement added at the resume point runs
    project.write("002_one.sql", ONE_CONCURRENT.replace(
        "CREATE UNIQUE INDEX", "DELETE FROM m1 WHERE ctid <> (SELECT min(ctid) FROM m1);\n"
        "CREATE UNIQUE INDEX"))
    resumed = project.cli("up")
    assert resumed.exit_code == 0, resumed.stdout + resumed.stderr
    assert project.query("SELECT count(*) FROM m1") == [(1,)]
    assert [valid for _, valid in index_oid(project, "idx_m1")] == [True]


def test_statement_still_running_on_the_server_is_not_sent_again(project: Project, run_process: ProcessRunner) -> None:
    """Under a lease (a pooler in front), the lease of a frozen client expires while its
    statement still runs on the server: the next run names the backend instead."""
    (project.root / "pyproject.toml").write_text(
        "[tool.fraiseql.migrations]\nlock = \"lease\"\nlease_expiry = 1\n")
    setup(project, "direct")
    project.write("002_indexed.sql", INDEXED)
    with blocker(project, "INSERT INTO t VALUES (3)") as holder:
        process = run_process.start("fraiseql", "migrate", "up", capture=False)
        try:
            wait_until(waiting(project, "CREATE INDEX CONCURRENTLY"))
            found = backend(project, "CREATE INDEX CONCURRENTLY")
            assert found is not None
            frozen(process.pid)  # its lease is no longer renewed
            stopped = project.cli("up")
            assert stopped.exit_code == 1
            assert stopped.stderr.splitlines()[-1] == (
                "Error: 002_indexed.sql:4: `CREATE INDEX CONCURRENTLY idx_t_a ON t (a)`, sent by "
                "an earlier run that stopped, is still running on the server "
                f"(pid {found[0]}); nothing was run. Wait for it to finish, or cancel it "
                f"(SELECT pg_cancel_backend({found[0]})), then run `fraiseql migrate up` again")
            holder.commit()  # the server finishes the build
            wait_until(lambda: project.query(
                f"SELECT state FROM pg_stat_activity WHERE pid = {found[0]}") == [("idle",)])
        finally:
            process.kill()
            process.wait(timeout=30)
    resumed = project.cli("up")
    assert resumed.exit_code == 0, resumed.stdout + resumed.stderr
    assert "index idx_t_a exists and is valid: recorded as done" in resumed.stdout
    assert project.query("SELECT count(*) FROM before_index") == [(1,)]
    assert project.version() == ["002"]
