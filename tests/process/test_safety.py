"""Concurrency, signals, kills, restarts and busy tables: real processes, real PostgreSQL.

Runs whose subject is what the command says or does (a refusal, a lock timeout read from
alembic.ini, a resume) are in-process (``Project.cli``, ``run_process.in_process``); the
processes left are the ones signalled, killed, run side by side or cut off from stdout."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import psycopg2
import pytest
from conftest import ProcessRunner, Project
from scenarios import BIN, MIXED, REPO, UP_DOWN, hold_lock

from fraiseql_alembic.devdb import DevCluster
from fraiseql_alembic.engine.locking import LOCK_KEY


def finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    """Wait for the process; return its exit code, the rest of its stdout, and stderr."""
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def wait_for_output(process: subprocess.Popen[str], needle: str, timeout: float = 60) -> str:
    """Read stdout lines until one contains ``needle``."""
    assert process.stdout is not None
    seen = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen += line
        if needle in line:
            return seen
    raise AssertionError(f"never saw {needle!r}; got {seen!r}")


def wait_until(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def lock_is_free(project: Project) -> bool:
    rows = project.query(
        f"SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
        f"AND classid = ({LOCK_KEY} >> 32)::oid AND objid = ({LOCK_KEY} & 4294967295)::oid")
    return rows == [(0,)]


def no_migration_backend(project: Project) -> bool:
    rows = project.query(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'fraiseql-migrate%' "
        "AND datname = current_database()")
    return rows == [(0,)]


def wait_for_sleep_on_the_server(project: Project) -> None:
    """Wait until a migration's ``pg_sleep`` statement runs on the server (an event, not a
    guess at how long starting takes)."""
    wait_until(lambda: project.query(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
        "AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()")[0][0] == 1, timeout=120)


def slow(table: str, seconds: float) -> str:
    return (f"-- migrate:up\nCREATE TABLE {table} (id int);\nSELECT pg_sleep({seconds});\n"
            f"-- migrate:down\nDROP TABLE {table};\n")


def test_six_concurrent_ups_apply_each_migration_once(project: Project, run_process: ProcessRunner) -> None:
    project.write("001_initial_schema.sql", slow("a", 1))
    project.write("002_add_comments_table.sql", slow("b", 0.5))
    project.write("003_add_indexes.sql",
                  "CREATE INDEX CONCURRENTLY idx_b ON b (id);\nCREATE TABLE c (id int);\n")
    # All six start while another session holds the lock, so each of them waits (a fact,
    # not a guess at how start-ups overlap); released, they run at the same moment.
    holder = hold_lock(project)
    try:
        processes = [run_process.start("fraiseql", "migrate", "up") for _ in range(6)]
        first_lines = [process.stderr.readline() if process.stderr else "" for process in processes]
    finally:
        holder.close()
    results = [(code, out, first + err) for (code, out, err), first
               in zip((finish(p) for p in processes), first_lines, strict=True)]
    assert [code for code, _, _ in results] == [0] * 6, results
    outputs = "".join(out for _, out, _ in results)
    for name in ("001_initial_schema.sql", "002_add_comments_table.sql", "003_add_indexes.sql"):
        assert outputs.count(f"Running migration: {name}") == 1
    assert sum("Already up to date" in out for _, out, _ in results) == 5
    assert any("Waiting up to 60s for the migration lock held by pid" in err for _, _, err in results)
    assert project.query(
        "SELECT version, count(*) FROM fraiseql_migrations GROUP BY version ORDER BY version"
    ) == [("001", 1), ("002", 1), ("003", 1)]
    assert project.version() == ["003"]
    assert lock_is_free(project)


def test_lock_wait_timeout_names_the_holder(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    holder = hold_lock(project)
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]  # type: ignore[index]
        result = project.cli("up", "--lock-wait", "1")
        assert result.exit_code == 1
        assert f"Waiting up to 1s for the migration lock held by pid {pid} (someone else's deploy)" in result.output
        assert f"Gave up after waiting 1s for the migration lock held by pid {pid}" in result.output
        assert project.tables() == set()
        # read-only commands do not wait
        assert project.cli("status").exit_code == 0
        assert project.cli("up", "--dry-run").exit_code == 0
    finally:
        holder.close()
    assert project.cli("up").exit_code == 0


def test_plain_alembic_upgrade_takes_the_same_lock(project: Project, run_process: ProcessRunner) -> None:
    ini = (REPO / "alembic.ini.example").read_text().replace(
        "# fraiseql_history_schema = public", "fraiseql_lock_wait = 1")
    (project.root / "alembic.ini").write_text(ini)
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    holder = hold_lock(project)
    try:
        blocked = run_process.in_process("alembic", "upgrade", "head")
        assert blocked.returncode != 0
        assert "Gave up after waiting 1s for the migration lock held by pid" in blocked.stdout + blocked.stderr
        current = run_process.in_process("alembic", "current")
        assert current.returncode == 0  # reading does not wait for the lock
    finally:
        holder.close()
    assert project.tables() == set()
    done = run_process("alembic", "upgrade", "head", timeout=60)
    assert done.returncode == 0, done.stderr
    assert lock_is_free(project)


def test_sigkill_mid_migration_leaves_nothing(project: Project, run_process: ProcessRunner) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    # The killed client's backend goes on sleeping, then finds its client gone and rolls back.
    project.write("002_slow.sql", slow("killed", 3))
    process = run_process.start("fraiseql", "migrate", "up")
    wait_for_output(process, "Running migration: 002_slow.sql")
    wait_for_sleep_on_the_server(project)
    process.kill()
    finish(process, timeout=10)
    wait_until(lambda: no_migration_backend(project) and lock_is_free(project), timeout=60)
    assert project.version() == ["001"]
    assert "killed" not in project.tables()
    result = project.cli("up")
    assert result.exit_code == 0, result.output
    assert project.version() == ["002"]


@pytest.mark.parametrize(("sig", "code", "name"), [(signal.SIGINT, 130, "SIGINT"),
                                                    (signal.SIGTERM, 143, "SIGTERM")])
def test_sigint_sigterm_cancel_roll_back_and_report(project: Project, sig: int, code: int, name: str, run_process: ProcessRunner) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.write("002_slow.sql", slow("interrupted", 3600))
    project.write("003_after.sql", UP_DOWN.format(t="c"))
    process = run_process.start("fraiseql", "migrate", "up")
    wait_for_output(process, "Running migration: 002_slow.sql")
    wait_for_sleep_on_the_server(project)
    process.send_signal(sig)
    # the hour-long statement was cancelled on the server: the command ends, and no
    # backend is left sleeping
    returncode, _, err = finish(process, timeout=120)
    assert returncode == code, err
    wait_until(lambda: project.query(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' "
        "AND pid <> pg_backend_pid()")[0][0] == 0, timeout=120)
    assert f"{name}: cancelling the running statement" in err
    assert "Applied before the stop: 001_initial_schema.sql" in err
    assert "Interrupted and rolled back, not applied: 002_slow.sql" in err
    assert f"Error: Stopped by {name}" in err
    assert project.version() == ["001"]
    assert "interrupted" not in project.tables() and "c" not in project.tables()
    wait_until(lambda: lock_is_free(project), timeout=5)


def test_server_restart_mid_run(project: Project, pg_cluster: DevCluster, run_process: ProcessRunner) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.write("002_slow.sql", slow("during_restart", 3600))  # ended by the restart
    process = run_process.start("fraiseql", "migrate", "up")
    wait_for_output(process, "Running migration: 002_slow.sql")
    wait_for_sleep_on_the_server(project)
    pg_cluster.restart()
    returncode, _, err = finish(process, timeout=60)
    assert returncode == 1, err
    assert "Migration 002_slow.sql was interrupted" in err, err
    # The error is told after reconnecting (up to 10 s) to see whether it committed.
    assert "nothing of this migration was kept" in err or "cannot be reached now" in err, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert project.version() == ["001"]
    assert "during_restart" not in project.tables()
    project.write("002_slow.sql", slow("during_restart", 0))  # not applied: may change
    result = project.cli("up")
    assert result.exit_code == 0, result.output
    assert project.version() == ["002"]


def test_backend_killed_mid_migration_keeps_nothing(project: Project, run_process: ProcessRunner) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.write("002_slow.sql", slow("killed", 5))
    process = run_process.start("fraiseql", "migrate", "up")
    wait_for_output(process, "Running migration: 002_slow.sql")
    wait_until(lambda: project.query(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' "
        "AND pid <> pg_backend_pid()")[0][0] == 1)
    project.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  "WHERE query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()")
    returncode, _, err = finish(process, timeout=60)
    assert returncode == 1, err
    assert "Migration 002_slow.sql was interrupted" in err, err
    assert "connection to the database was lost; nothing of this migration was kept" in err
    assert len(err.strip().splitlines()) == 1, err
    assert project.version() == ["001"] and "killed" not in project.tables()


def test_ending_the_lock_holder_stops_its_migration_too(project: Project, run_process: ProcessRunner) -> None:
    # The pid a waiting deploy names is the session that runs the migrations: ending it
    # (as the lock-wait error suggests) never leaves a migration running unlocked.
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.write("002_slow.sql", slow("killed", 30))
    process = run_process.start("fraiseql", "migrate", "up")
    wait_for_output(process, "Running migration: 002_slow.sql")
    holder = f"""SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted
        AND l.classid = ({LOCK_KEY} >> 32)::oid AND l.objid = ({LOCK_KEY} & 4294967295)::oid"""
    wait_until(lambda: project.query(
        f"SELECT count(*) FROM pg_stat_activity WHERE pid = ({holder}) "
        "AND query LIKE '%pg_sleep%'")[0][0] == 1)
    project.query(f"SELECT pg_terminate_backend(({holder}))")
    returncode, _, err = finish(process, timeout=60)
    assert returncode == 1 and "Migration 002_slow.sql was interrupted" in err, err
    assert project.version() == ["001"] and "killed" not in project.tables()
    assert lock_is_free(project) and no_migration_backend(project)


def test_connection_lost_at_commit_tells_whether_it_was_applied(project: Project) -> None:
    from fraiseql_alembic.engine.run import Step
    from fraiseql_alembic.engine.run import step_connection_lost as _connection_lost
    from fraiseql_alembic.sql.names import parse_filename
    from fraiseql_alembic.sql.parse import parse_migration

    project.write("001_a.sql", UP_DOWN.format(t="a"))
    project.write("002_b.sql", UP_DOWN.format(t="b"))
    assert project.cli("up").exit_code == 0
    name = parse_filename("002_b.sql")
    assert name is not None
    migration = parse_migration(name, UP_DOWN.format(t="b"))
    lost = OSError("server closed the connection unexpectedly")
    applied = _connection_lost(project.database_url, Step(migration, True, "001", "002"), lost)
    assert "was applied, but the connection was lost as it committed" in str(applied)
    rolled_back = _connection_lost(project.database_url, Step(migration, False, "002", "001"), lost)
    assert "was interrupted" in str(rolled_back) and "nothing of this migration was kept" in str(rolled_back)
    gone = project.database_url.rsplit("@", 1)[0] + "@127.0.0.1:1/nowhere"
    unknown = _connection_lost(gone, Step(migration, True, "001", "002"), lost, probe_seconds=0)
    assert "cannot be reached now" in str(unknown) and "migrate status" in str(unknown)


def test_busy_table_lock_timeout_retries_then_gives_up(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="busy"))
    project.cli("up")
    project.write("002_alter_busy.sql", "ALTER TABLE busy ADD COLUMN x int;\n")
    blocker = psycopg2.connect(project.database_url)
    try:
        with blocker.cursor() as cursor:
            cursor.execute("LOCK TABLE busy IN ACCESS SHARE MODE")  # a long reader
        result = project.cli("up", "--lock-timeout", "300ms", "--lock-retries", "2")
        assert result.exit_code == 1
        assert "Lock timeout in 002_alter_busy.sql (SQLSTATE 55P03): attempt 1 of 3 rolled back; retrying in 1s" in result.output
        assert "attempt 2 of 3 rolled back; retrying in 2s" in result.output
        assert "Gave up after 3 attempts" in result.output
        assert "canceling statement due to lock timeout [SQLSTATE 55P03]" in result.output
        assert project.version() == ["001"]
    finally:
        blocker.close()


def test_busy_table_released_during_retries_succeeds(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="busy"))
    project.cli("up")
    project.write("002_alter_busy.sql", "-- migrate:up lock_timeout:200ms\nALTER TABLE busy ADD COLUMN x int;\n")
    blocker = psycopg2.connect(project.database_url)
    with blocker.cursor() as cursor:
        cursor.execute("LOCK TABLE busy IN ACCESS SHARE MODE")
    releaser = threading.Timer(1.5, blocker.close)
    releaser.start()
    try:
        result = project.cli("up", "--lock-timeout", "1min")  # the file's 200ms wins
        assert result.exit_code == 0, result.output
        assert "attempt 1 of 4 rolled back" in result.output
    finally:
        releaser.cancel()
        blocker.close()
    assert project.version() == ["002"]


def test_cli_run_options_validate(project: Project) -> None:
    result = project.cli("up", "--lock-timeout", "soon")
    assert result.exit_code == 2
    assert "--lock-timeout 'soon' is not a duration" in result.output


def test_mixed_file_runs_in_segments_and_resumes(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.write("002_mixed.sql", MIXED)
    failed = project.cli("up")
    assert failed.exit_code == 1
    assert "Migration 002_mixed.sql failed at line 8" in failed.output
    assert "could not create unique index" in failed.output
    assert "INVALID index public.idx_m1_unique" in failed.output
    assert "parts of the file before this statement's segment were run and are recorded" in failed.output
    # segments 1-4 committed, in file order; the transactional segment after the failure did not run
    assert {"m1", "m2"} <= project.tables() and "m3" not in project.tables()
    assert project.version() == ["001"]
    status = project.cli("status").output
    assert "◐ 002_mixed.sql (PARTIALLY APPLIED: `fraiseql migrate up` resumes at line 8)" in status
    # fix the failing statement (lines before it unchanged) and resume
    project.write("002_mixed.sql", MIXED.replace("CREATE UNIQUE INDEX CONCURRENTLY idx_m1_unique",
                                                 "CREATE INDEX CONCURRENTLY idx_m1_unique"))
    resumed = project.cli("up")
    assert resumed.exit_code == 0, resumed.output
    assert "Resuming 002_mixed.sql at line 8" in resumed.output
    assert "dropping INVALID index public.idx_m1_unique" in resumed.output
    assert project.query("SELECT count(*) FROM m1") == [(2,)]  # the INSERT was not run twice
    assert project.query("SELECT count(*) FROM m2") == [(1,)]
    assert "m3" in project.tables() and project.version() == ["002"]
    assert project.query("SELECT count(*) FROM fraiseql_migration_progress") == [(0,)]
    assert project.query(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = 'idx_m1_unique'") == [(True,)]
    assert "◐" not in project.cli("status").output


def test_changing_the_applied_part_of_a_partial_file_is_refused(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.write("002_mixed.sql", MIXED)
    project.cli("up")
    project.write("002_mixed.sql", MIXED.replace("CREATE TABLE m2", "CREATE TABLE m2b"))
    result = project.cli("up")
    assert result.exit_code == 1
    assert ("002_mixed.sql:6: this statement changed since an earlier run completed it "
            "(lines 3-7 are applied; the file is partly applied)") in result.output
    assert "m2b" not in project.tables()


def test_transactional_segment_is_atomic_inside_a_mixed_file(project: Project) -> None:
    project.write("001_mixed.sql",
                  "CREATE TABLE t (a int);\nCREATE INDEX CONCURRENTLY i ON t (a);\n"
                  "CREATE TABLE u (a int);\nSELECT 1/0;\n")
    result = project.cli("up")
    assert result.exit_code == 1
    assert "failed at line 4" in result.output and "division by zero" in result.output
    assert "t" in project.tables() and "u" not in project.tables()  # u's segment rolled back


def test_statement_inserted_at_the_resume_line_runs(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.write("002_mixed.sql", MIXED)
    project.cli("up")  # stops at line 8
    fixed = MIXED.replace(
        "CREATE UNIQUE INDEX CONCURRENTLY idx_m1_unique ON m1 (a);",
        "DELETE FROM m1 WHERE ctid NOT IN (SELECT min(ctid) FROM m1 GROUP BY a);\n"
        "CREATE UNIQUE INDEX CONCURRENTLY idx_m1_unique ON m1 (a);",
    )
    project.write("002_mixed.sql", fixed)
    result = project.cli("up")
    assert result.exit_code == 0, result.output
    assert project.query("SELECT count(*) FROM m1") == [(1,)]
    assert project.version() == ["002"]


def test_down_is_refused_while_a_file_is_partly_applied(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    project.write("002_mixed.sql", MIXED)
    project.cli("up")
    result = project.cli("down", "--force")
    assert result.exit_code == 1
    assert "002_mixed.sql is partly applied (up to line 7); finish it with `fraiseql migrate up`" in result.output
    assert project.version() == ["001"]


def test_sigterm_while_waiting_for_the_lock(project: Project, run_process: ProcessRunner) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    holder = hold_lock(project)
    try:
        process = run_process.start("fraiseql", "migrate", "up")
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "Waiting up to 60s for the migration lock" in line
        process.send_signal(signal.SIGTERM)
        returncode, _, err = finish(process, timeout=15)
        assert returncode == 143, err
        assert "Stopped while waiting for the migration lock; nothing was changed" in err
    finally:
        holder.close()
    assert project.tables() == set()


def test_plain_alembic_applies_lock_timeout_from_alembic_ini(project: Project, run_process: ProcessRunner) -> None:
    ini = (REPO / "alembic.ini.example").read_text().replace(
        "# fraiseql_history_schema = public", "fraiseql_lock_timeout = 300ms")
    (project.root / "alembic.ini").write_text(ini)
    project.write("001_initial_schema.sql", UP_DOWN.format(t="busy"))
    assert project.cli("up").exit_code == 0  # 001, in-process: a set-up step
    project.write("002_alter.sql", "ALTER TABLE busy ADD COLUMN x int;\n")
    blocker = psycopg2.connect(project.database_url)
    try:
        with blocker.cursor() as cursor:
            cursor.execute("LOCK TABLE busy IN ACCESS SHARE MODE")
        # lock_timeout cancels the ALTER (the message below): it does not wait for the blocker
        result = run_process.in_process("alembic", "upgrade", "head")
        assert result.returncode != 0
        assert "canceling statement due to lock timeout [SQLSTATE 55P03]" in result.stdout
        assert "Another session holds a lock this migration needs" in result.stdout
    finally:
        blocker.close()
    assert project.version() == ["001"]


def _run_with_stdout_closed(project: Project, *argv: str) -> tuple[int, str]:
    """Run a command whose stdout reader has gone away before it prints (`... | head -0`)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [str(BIN / argv[0]), *argv[1:]], cwd=project.root, stdout=write_end,
            stderr=subprocess.PIPE, text=True, timeout=120,
            env={**os.environ, "DATABASE_URL": project.database_url},
        )
    finally:
        os.close(write_end)
    return done.returncode, done.stderr


def test_a_closed_stdout_never_stops_a_run_half_way(project: Project) -> None:
    for number in range(1, 4):
        project.write(f"00{number}_t{number}.sql", UP_DOWN.format(t=f"t{number}"))
    code, err = _run_with_stdout_closed(project, "fraiseql", "migrate", "up")
    assert (code, err) == (0, "")
    assert project.version() == ["003"] and {"t1", "t2", "t3"} <= project.tables()
    code, err = _run_with_stdout_closed(project, "fraiseql", "migrate", "status")
    assert (code, err) == (141, "")  # like a process that SIGPIPE ended, without a word


@pytest.mark.parametrize(("sql", "forgets"), [
    ("CREATE TABLE t (id int);\n", False),
    ("DEALLOCATE ALL;\n", True),
    ("deallocate my_plan;\n", True),
    ("DISCARD PLANS;\n", True),
    ("DO $$ BEGIN EXECUTE 'DISCARD ALL'; END $$;\n", True),
    ("CREATE TABLE discarded_items (id int);\n", False),
])
def test_which_migrations_make_the_bookkeeping_be_prepared_again(sql: str, forgets: bool) -> None:
    from fraiseql_alembic.engine.run import forgets_statements
    from fraiseql_alembic.sql.names import parse_filename
    from fraiseql_alembic.sql.parse import parse_migration
    from fraiseql_alembic.sql.statements import split_statements

    name = parse_filename("001_a.sql")
    assert name is not None
    migration = parse_migration(name, sql)
    assert forgets_statements(split_statements(migration, migration.up).statements) is forgets


def test_the_prepared_bookkeeping_numbers_every_parameter_once() -> None:
    import re

    from fraiseql_alembic.engine.recorder import record_statements as _record_statements

    statements = dict(_record_statements("public", '"odd%s"".schema".alembic_version'))
    assert set(statements) == {"fraiseql_record_insert", "fraiseql_record_update",
                               "fraiseql_record_delete"}
    for name, sql in statements.items():
        types = re.match(rf"PREPARE {name} \(([^)]*)\) AS ", sql)
        assert types is not None, sql
        count = len(types.group(1).split(", "))
        numbers = [int(n) for n in re.findall(r"\$(\d+)", sql)]
        assert numbers == list(range(1, count + 1)), sql  # each once, in order
        assert '"odd%s"".schema".alembic_version' in sql and "%s" not in sql.replace(
            '"odd%s"', "")
