"""Behind a real PgBouncer: transaction pooling is detected, statement pooling is named,
and the lease lock mode keeps concurrent deploys apart through transaction pooling.

The installed command runs where the process matters (the refusal as typed, eight
concurrent deploys, a holder killed, a lease lost under a running deploy); the other
runs are the same runs in this process (``run_process.in_process``), which would also
show a connection left open on the pool's server sessions.

The session fixture starts our own PgBouncer (Debian's ``pgbouncer`` package) on free
loopback ports, one per pool mode, in front of the test cluster; as root it runs as the
cluster's unprivileged user, as PostgreSQL does.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest
from conftest import ProcessRunner, Project
from scenarios import on_path

from fraiseql_alembic.devdb import DevCluster, _as_user, _chown, _free_port, _which
from fraiseql_alembic.engine.locking import HEARTBEAT_APPLICATION, LOCK_KEY

MODES = ("session", "transaction", "statement")


@pytest.fixture(scope="session")
def pgbouncer(pg_cluster: DevCluster) -> Iterator[dict[str, int]]:
    """``{pool mode: port}`` of PgBouncers in front of ``pg_cluster``, stopped at the end."""
    binary = _which("pgbouncer")
    if binary is None:
        pytest.fail("pgbouncer is not installed: apt-get install pgbouncer (.ci/setup does)")
    base = Path(tempfile.mkdtemp(prefix="fraiseql-pgbouncer-", dir="/tmp"))
    base.chmod(0o755)
    (base / "userlist.txt").write_text(f'"{pg_cluster.user}" "{pg_cluster.password}"\n')
    ports: dict[str, int] = {}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for mode in MODES:
            port = _free_port()
            ini = base / f"{mode}.ini"
            ini.write_text(
                "[databases]\n"
                f"* = host=127.0.0.1 port={pg_cluster.port}\n"
                "[pgbouncer]\n"
                f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
                f"auth_type = scram-sha-256\nauth_file = {base / 'userlist.txt'}\n"
                f"pool_mode = {mode}\ndefault_pool_size = 20\nmax_client_conn = 200\n"
                f"logfile = {base / mode}.log\npidfile = {base / mode}.pid\n"
            )
            if pg_cluster.os_user is not None:
                for path in (base, ini, base / "userlist.txt"):
                    _chown(path, pg_cluster.os_user)
                (base / "userlist.txt").chmod(0o600)
            processes.append(subprocess.Popen(
                _as_user([binary, str(ini)], pg_cluster.os_user),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
            ports[mode] = port
        for mode, port in ports.items():
            _wait_for_port(port, base / f"{mode}.log")
        yield ports
    finally:
        for mode in MODES:
            pidfile = base / f"{mode}.pid"
            if pidfile.exists():
                with contextlib.suppress(ValueError, ProcessLookupError):
                    os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(base, ignore_errors=True)


def _wait_for_port(port: int, log: Path) -> None:
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    tail = log.read_text()[-2000:] if log.exists() else "(no log)"
    raise AssertionError(f"pgbouncer did not listen on {port}: {tail}")


def through(url: str, port: int) -> str:
    """The same database URL, through the PgBouncer on ``port``."""
    return re.sub(r"@127\.0\.0\.1:\d+/", f"@127.0.0.1:{port}/", url)


def advisory_locks(project: Project) -> int:
    return int(project.query(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 "
        f"AND classid = ({LOCK_KEY} >> 32)::oid AND objid = ({LOCK_KEY} & 4294967295)::oid"
    )[0][0])


def leases(project: Project) -> list[tuple[object, ...]]:
    if "fraiseql_migration_lock" not in project.tables():
        return []
    return project.query("SELECT host, pid, application FROM fraiseql_migration_lock")


def applied_rows(project: Project) -> list[tuple[object, ...]]:
    return project.query(
        "SELECT version, count(*) FROM fraiseql_migrations WHERE action = 'applied' "
        "GROUP BY version ORDER BY version"
    )


def use_lease_expiry(project: Project, seconds: float) -> None:
    (project.root / "pyproject.toml").write_text(
        f"[tool.fraiseql.migrations]\nlease_expiry = {seconds}\n"
    )


# ---------------------------------------------------------------------------
# detection


def test_transaction_pooling_is_refused_with_the_fixes(
    project: Project, pgbouncer: dict[str, int], run_process: ProcessRunner
) -> None:
    project.write("001_initial_schema.sql", "CREATE TABLE tb_user (id int);\n")
    url = through(project.database_url, pgbouncer["transaction"])
    result = run_process("fraiseql", "migrate", "up", url=url)
    assert result.returncode == 1, result
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: postgresql://fraiseql:***@127.0.0.1:")
    assert "connection pooler in transaction mode" in lines[0]
    assert "--lock lease (FRAISEQL_LOCK=lease" in lines[0]
    assert "session mode" in lines[0] and "nothing was changed" in lines[0]
    assert project.query("SELECT current_user")  # the database answers directly
    assert project.version() == [] and "tb_user" not in project.tables()
    assert advisory_locks(project) == 0  # nothing left held on a pooled server session
    # mark-applied and repair take the same lock and refuse the same way
    for argv in (("mark-applied", "001"), ("repair",)):
        other = run_process.in_process("fraiseql", "migrate", *argv, url=url)
        assert "connection pooler in transaction mode" in other.stderr, (argv, other)
        assert other.returncode == 1


def test_session_pooling_and_direct_connections_are_not_refused(
    project: Project, pgbouncer: dict[str, int], run_process: ProcessRunner
) -> None:
    project.write("001_initial_schema.sql", "CREATE TABLE tb_user (id int);\n")
    result = run_process.in_process("fraiseql", "migrate", "up",
                                    url=through(project.database_url, pgbouncer["session"]))
    assert result.returncode == 0, result
    assert project.version() == ["001"]


def test_statement_pooling_is_named(project: Project, pgbouncer: dict[str, int], run_process: ProcessRunner) -> None:
    project.write("001_initial_schema.sql", "CREATE TABLE tb_user (id int);\n")
    url = through(project.database_url, pgbouncer["statement"])
    for argv in (("up",), ("up", "--lock", "lease"), ("status",), ("up", "--dry-run")):
        result = run_process.in_process("fraiseql", "migrate", *argv, url=url)
        assert result.returncode == 1, (argv, result)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (argv, result.stderr)
        assert "connection pooler in statement mode (PgBouncer pool_mode = statement)" in (
            lines[0]), argv
        assert "server closed the connection" not in result.stderr
    assert project.version() == []


def test_status_works_through_transaction_pooling(
    project: Project, pgbouncer: dict[str, int], run_process: ProcessRunner
) -> None:
    """PgBouncer refuses a startup `options` parameter: status must not send one."""
    project.write("001_initial_schema.sql", "CREATE TABLE tb_user (id int);\n")
    result = run_process.in_process("fraiseql", "migrate", "status",
                                    url=through(project.database_url, pgbouncer["transaction"]))
    assert result.returncode == 0, result
    assert "○ 001_initial_schema.sql (pending)" in result.stdout


# ---------------------------------------------------------------------------
# lease mode


def test_eight_concurrent_deploys_through_transaction_pooling_apply_each_once(
    project: Project, pgbouncer: dict[str, int], run_process: ProcessRunner
) -> None:
    use_lease_expiry(project, 10)  # longer than a CPU-starved CI machine may stall
    total = 6
    for number in range(1, total + 1):
        project.write(
            f"{number:03d}_step_{number}.sql",
            f"-- migrate:up\nCREATE TABLE t{number} (lt text, st text, prepared int);\n"
            # what this migration's transaction sees: the run's settings, set locally
            f"INSERT INTO t{number} SELECT current_setting('lock_timeout'), "
            "current_setting('statement_timeout'), "
            "(SELECT count(*) FROM pg_prepared_statements);\n"
            "SELECT pg_sleep(0.1);\n"
            + ("SET search_path = '';\n" if number == 2 else "")  # leaks to the pooled session
            + f"-- migrate:down\nDROP TABLE t{number};\n",
        )
    url = through(project.database_url, pgbouncer["transaction"])
    processes = [
        run_process.start("fraiseql", "migrate", "up", "--lock-timeout", "3s", "--statement-timeout", "1min", *(("--lock", "lease") if index % 2 else ()), url=url, env={} if index % 2 else {"FRAISEQL_LOCK": "lease"})
        for index in range(8)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]
    results = [(process.returncode, out, err)
               for process, (out, err) in zip(processes, outputs, strict=True)]
    assert [code for code, _, _ in results] == [0] * 8, [err for code, _, err in results if code]
    runs = sum(out.count("✓ Running migration:") for _, out, _ in results)
    assert runs == total, results
    assert sum("Already up to date" in out for _, out, _ in results) >= 1
    # Whether a deploy had to wait (and said so) depends on how the 8 start-ups overlap on
    # a loaded machine: not asserted here; test_a_crashed_lease_holder_* checks the message.
    assert applied_rows(project) == [(f"{n:03d}", 1) for n in range(1, total + 1)]
    assert project.version() == [f"{total:03d}"]
    for number in range(1, total + 1):
        assert project.query(f"SELECT lt, st, prepared FROM public.t{number}") == [
            ("3s", "1min", 0)], number
    assert leases(project) == [] and advisory_locks(project) == 0
    # nothing of ours was left on the pooled server sessions for the pool's other clients
    check = psycopg2.connect(url)
    try:
        check.autocommit = True
        with check.cursor() as cursor:
            for _ in range(5):
                cursor.execute("SELECT current_setting('lock_timeout'), "
                               "current_setting('statement_timeout')")
                assert cursor.fetchone() == ("0", "0")
    finally:
        check.close()


@pytest.mark.parametrize("path", ["direct", "alembic"])
def test_a_setting_left_on_the_pooled_sessions_does_not_mislead_the_next_deploy(
    project: Project, pgbouncer: dict[str, int], run_process: ProcessRunner, path: str
) -> None:
    """A migration's own ``SET search_path = ''`` (pg_dump output starts with it) stays on
    the server session its transaction ran on, which the pooler then hands to any client.
    A deploy must read where the database is as a new session would, not through it:
    it once found no alembic_version there and refused every applied migration as
    "untracked" (the concurrent-deploys test failed now and then)."""
    on_path(project, path, "001_initial_schema.sql", "CREATE TABLE tb_user (id int);\n")
    url = through(project.database_url, pgbouncer["transaction"])
    run_process.in_process("fraiseql", "migrate", "up", "--lock", "lease", url=url, check=True)
    # every server session of the pool is left with what a migration's SET leaves:
    # hold five at once (one transaction each), then clear their search_path
    clients = [psycopg2.connect(url) for _ in range(5)]
    try:
        for client in clients:
            with client.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
        for client in clients:
            with client.cursor() as cursor:
                cursor.execute("SET search_path = ''")
            client.commit()
    finally:
        for client in clients:
            client.close()
    project.write("002_more.sql", "CREATE TABLE public.tb_more (id int);\n")
    result = run_process.in_process("fraiseql", "migrate", "status", url=url)
    assert result.returncode == 0, result.stderr
    assert "✓ 001_initial_schema.sql" in result.stdout, result.stdout
    result = run_process.in_process("fraiseql", "migrate", "up", "--lock", "lease", url=url)
    assert result.returncode == 0, result.stderr
    assert "✓ Running migration: 002_more.sql" in result.stdout
    assert project.version() == ["002"]
    assert applied_rows(project)[-2:] == [("001", 1), ("002", 1)]


def test_a_crashed_lease_holder_expires_and_the_next_deploy_proceeds(
    project: Project, pgbouncer: dict[str, int], run_process: ProcessRunner
) -> None:
    use_lease_expiry(project, 2)
    project.query("CREATE TABLE ctl (s float8); INSERT INTO ctl VALUES (30)")
    project.write("001_initial_schema.sql", "CREATE TABLE tb_user (id int);\n")
    project.write("002_slow.sql", "SELECT pg_sleep((SELECT s FROM ctl));\n"
                                  "CREATE TABLE tb_slow (id int);\n")
    url = through(project.database_url, pgbouncer["transaction"])
    holder = run_process.start("fraiseql", "migrate", "up", "--lock", "lease", url=url)
    assert holder.stdout is not None
    seen = ""
    while "002_slow.sql" not in seen:
        line = holder.stdout.readline()
        assert line, holder.stderr.read() if holder.stderr else ""
        seen += line
    assert len(leases(project)) == 1
    holder.kill()  # SIGKILL: no clean-up in the process
    holder.communicate()
    assert leases(project)[0][1] == holder.pid  # the lease outlives its holder...
    project.query("UPDATE ctl SET s = 0")
    # ...until it expires.  The next deploy must see it live first, however long it takes to
    # start: the lease is kept live until the deploy says it waits, then left to expire by
    # itself 2 s later; it is taken over well before the 60 s lock wait gives up.
    project.query("UPDATE fraiseql_migration_lock SET expires_at = now() + interval '1 hour'")
    deploy = run_process.start("fraiseql", "migrate", "up", "--lock", "lease", "--lock-wait",
                               "60", url=url)
    assert deploy.stderr is not None
    waiting = ""
    while "held by pid" not in waiting and (line := deploy.stderr.readline()):
        waiting += line
    assert f"held by pid {holder.pid} (fraiseql) on host" in waiting, waiting
    project.query("UPDATE fraiseql_migration_lock SET expires_at = now() + interval '2 seconds'")
    out, err = deploy.communicate(timeout=120)
    result = subprocess.CompletedProcess(deploy.args, deploy.returncode, out, waiting + err)
    assert result.returncode == 0, result
    assert f"Took over the migration lease of pid {holder.pid} (fraiseql)" in result.stderr
    assert "✓ Running migration: 002_slow.sql" in result.stdout
    assert applied_rows(project) == [("001", 1), ("002", 1)]
    assert leases(project) == [] and "tb_slow" in project.tables()


#: An advisory lock key the lost-lease test holds to keep its first migration running.
GATE = 4242


def heartbeats(project: Project) -> int:
    """How many lease heartbeat connections are open on the test's database."""
    return int(project.query(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        f"AND application_name = '{HEARTBEAT_APPLICATION}'")[0][0])


def wait_for(condition: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_a_lost_lease_stops_before_the_next_migration(project: Project, run_process: ProcessRunner) -> None:
    use_lease_expiry(project, 2)
    # 001 waits for a lock the test holds, so the lease is deleted while it runs (events,
    # not a race with a sleep): the test waits for the heartbeat to find the row gone and
    # end, then lets 001 finish.
    project.write("001_slow.sql", f"SELECT pg_advisory_xact_lock({GATE});\n")
    project.write("002_after.sql", "CREATE TABLE tb_after (id int);\n")
    gate = psycopg2.connect(project.database_url)
    gate.autocommit = True
    try:
        with gate.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", (GATE,))
        process = run_process.start("fraiseql", "migrate", "up", "--lock", "lease",
                                    url=project.database_url)
        wait_for(lambda: bool(leases(project)) and heartbeats(project) == 1 and project.query(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            f"AND objid = {GATE}")[0][0] == 1)
        project.query("DELETE FROM fraiseql_migration_lock")  # taken over by someone else
        wait_for(lambda: heartbeats(project) == 0)
    finally:
        gate.close()
    out, err = process.communicate(timeout=60)
    code = process.returncode
    assert code == 1, (out, err)
    assert "✓ Running migration: 001_slow.sql" in out
    assert "002_after.sql" not in out
    assert err.strip().splitlines()[-1].startswith(
        "Error: Lost the migration lease in \"public\".fraiseql_migration_lock (its row was "
        "taken over or deleted): another deploy may be migrating this database now, so this "
        "one stopped before its next migration"), err
    assert project.version() == ["001"] and "tb_after" not in project.tables()


def test_lease_and_advisory_modes_exclude_each_other(project: Project, run_process: ProcessRunner) -> None:
    project.write("001_initial_schema.sql", "CREATE TABLE tb_user (id int);\n")
    holder = psycopg2.connect(project.database_url, application_name="deploy on web-1")
    try:
        holder.autocommit = True
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s), pg_backend_pid()", (LOCK_KEY,))
            row = cursor.fetchone()
            assert row is not None
        result = run_process.in_process("fraiseql", "migrate", "up", "--lock", "lease",
                                        "--lock-wait", "1", url=project.database_url)
        assert result.returncode == 1, result
        assert f"held by pid {row[1]} (deploy on web-1)" in result.stderr
        assert leases(project) == []
    finally:
        holder.close()
    use_lease_expiry(project, 30)
    project.query(
        "CREATE TABLE IF NOT EXISTS fraiseql_migration_lock (id integer PRIMARY KEY, token text, "
        "host text, pid integer, application text, "
        "acquired_at timestamptz, heartbeat_at timestamptz, "
        "expires_at timestamptz); INSERT INTO fraiseql_migration_lock "
        "VALUES (1, 'x', 'web-2', 4242, 'fraiseql', now(), now(), now() + interval '30s')"
    )
    result = run_process.in_process("fraiseql", "migrate", "up", "--lock-wait", "1",
                                    url=project.database_url)
    assert result.returncode == 1, result
    assert "held by pid 4242 (fraiseql) on host web-2" in result.stderr
    assert ("if that deploy is dead, wait for its lease to expire or delete it (DELETE FROM "
            "\"public\".fraiseql_migration_lock)") in result.stderr
    assert project.version() == [] and advisory_locks(project) == 0


