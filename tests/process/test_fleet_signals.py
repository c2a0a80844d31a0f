"""A signal stops a fleet run cleanly: the targets in flight are cancelled on the server and
rolled back, no new target starts, the report says who finished, who was interrupted and
who never started; running the command again continues.  The runs that are signalled, read
by a pipe that closes or shown on a terminal are processes; the run after a signal and
the set-up run are the same runs in this process (``run_process.in_process``)."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest
from conftest import ProcessRunner, Tenants
from scenarios import execute, fetch_one

from fraiseql_alembic.devdb import DevCluster
from fraiseql_alembic.engine.locking import LOCK_KEY

#: Sleeps an hour where a table ``slow`` exists (so ending early proves the cancel).
SLOW_WHERE_MARKED = """-- migrate:up
CREATE TABLE a (id int);
DO $$ BEGIN IF to_regclass('slow') IS NOT NULL THEN PERFORM pg_sleep(3600); END IF; END $$;
-- migrate:down
DROP TABLE a;
"""


def count(pg_cluster: DevCluster, sql: str) -> int:
    return int(fetch_one(pg_cluster.url(), sql))  # type: ignore[call-overload]


def wait_for(condition: object, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.parametrize(("signum", "name", "code"), [(signal.SIGINT, "SIGINT", 130),
                                                       (signal.SIGTERM, "SIGTERM", 143)])
def test_a_signal_stops_every_target_and_says_who_finished(
    tmp_path: Path, tenants: Tenants, pg_cluster: DevCluster, run_process: ProcessRunner,
    signum: int, name: str, code: int,
) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "001_a.sql").write_text(SLOW_WHERE_MARKED, encoding="utf-8")
    urls = tenants(5)
    for url in urls[1:3]:
        execute(url, "CREATE TABLE slow ()")
    targets = tmp_path / "targets.txt"
    targets.write_text("\n".join(urls) + "\n", encoding="utf-8")
    names = [tenant.rsplit("/", 1)[1] for tenant in urls]
    # this test's databases only: the cluster is the worker's, shared with earlier tests
    running = ("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
               "AND query LIKE '%pg_sleep(3600)%' AND pid <> pg_backend_pid() "
               f"AND datname IN ({', '.join(repr(name) for name in names)})")
    # in pg_sleep, not only running the DO block: the fast target runs it too, for a moment
    sleeping = f"{running} AND wait_event = 'PgSleep'"

    process = run_process.start("fraiseql", "migrate", "up", "--targets", str(targets),
                                "--jobs", "2", url=None)
    wait_for(lambda: count(pg_cluster, sleeping) == 2)  # slow1 and slow2 run, fast0 is done
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == code, out + err
    assert pg_cluster.password not in out + err
    states = {}
    for line in out.splitlines():
        for tenant in names:
            if line.startswith(("✓ ", "✗ ", "○ ")) and tenant in line.split()[1]:
                states[tenant] = re.split(r"\s{2,}", line)[1]  # target, state, ...
    assert states == {names[0]: "succeeded", names[1]: "interrupted",
                      names[2]: "interrupted", names[3]: "not started",
                      names[4]: "not started"}, out
    assert f"{name}: cancelling the running statement and rolling back..." in err
    assert (f"Error: Stopped by {name}: 5 targets: 1 succeeded, 2 interrupted, 2 not "
            "started; what was in flight was rolled back. Run the command again to "
            "continue") in err
    # rolled back on the server; no lock, no session left behind
    assert [fetch_one(url, "SELECT to_regclass('a') IS NOT NULL") for url in urls] == [
        True, False, False, False, False]
    assert count(pg_cluster, running) == 0
    assert count(pg_cluster, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                 f"AND objid = ({LOCK_KEY} & 4294967295)::oid") == 0
    # again, once the slow ones are fast: it continues where each target stopped
    for url in urls[1:3]:
        execute(url, "DROP TABLE slow")
    again = run_process.in_process("fraiseql", "migrate", "up", "--targets", str(targets),
                                   url=None)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("Already up to date") == 1
    assert "\n5 targets: 5 succeeded\n" in again.stdout
    # the run record: the stopped run, then the one that finished
    runs: dict[str, list[dict[str, object]]] = {}
    for line in (tmp_path / "targets.runs.jsonl").read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        runs.setdefault(str(event["run"]), []).append(event)
    stopped, finished = runs.values()
    assert [event["event"] for event in stopped] == ["start", "target", "target", "target",
                                                     "end"]
    assert sorted(str(event["state"]) for event in stopped if event["event"] == "target") == [
        "interrupted", "interrupted", "succeeded"]
    assert stopped[-1]["not_started"] == [urls[3].replace(pg_cluster.password, "***"),
                                          urls[4].replace(pg_cluster.password, "***")]
    assert finished[-1]["counts"] == {"succeeded": 5, "failed": 0, "interrupted": 0,
                                      "not started": 0}
    assert pg_cluster.password not in (tmp_path / "targets.runs.jsonl").read_text()


def test_a_reader_that_goes_away_stops_no_target(
    tmp_path: Path, tenants: Tenants, run_process: ProcessRunner,
) -> None:
    """``up --targets | head -1``: every target is still migrated, as a single ``up`` is.
    The first targets are up to date, so the first write to the closed pipe is a target's
    end line (the per-target progress lines have handled a closed pipe all along)."""
    (tmp_path / "migrations").mkdir()
    for number in range(1, 4):
        (tmp_path / "migrations" / f"00{number}_t{number}.sql").write_text(
            f"CREATE TABLE t{number} (id int);\n", encoding="utf-8")
    urls = tenants(12)
    targets = tmp_path / "targets.txt"
    targets.write_text("\n".join(urls[:10]) + "\n", encoding="utf-8")
    run_process.in_process("fraiseql", "migrate", "up", "--targets", str(targets),
                           "--no-record", url=None, check=True)  # set-up
    targets.write_text("\n".join(urls) + "\n", encoding="utf-8")
    process = run_process.start("fraiseql", "migrate", "up", "--targets", str(targets),
                                "--jobs", "2", "--no-record", url=None)
    assert process.stdout is not None and process.stderr is not None
    assert "Already up to date" in process.stdout.readline()
    process.stdout.close()  # as `head -1` does
    process.wait(timeout=120)
    process.stderr.close()
    assert process.returncode in (0, 141)
    assert [fetch_one(url, "SELECT version_num FROM alembic_version") for url in urls] == [
        "003"] * 12


def test_on_a_terminal_one_status_line_is_redrawn_and_failures_print_above_it(
    tmp_path: Path, tenants: Tenants, pg_cluster: DevCluster, run_process: ProcessRunner,
) -> None:
    """A real pseudo-terminal: no `[name]` progress lines, a status line redrawn in place
    (carriage return, erase line) that names the slowest target and its migration, a
    failed target's line above it, and the table at the end."""
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "001_a.sql").write_text(
        "-- migrate:up\nCREATE TABLE a (id int);\nSELECT pg_sleep(1.2);\n"
        "-- migrate:down\nDROP TABLE a;\n", encoding="utf-8")
    urls = tenants(4)
    execute(urls[3], "CREATE TABLE a (id int)")  # 001 fails there
    targets = tmp_path / "targets.txt"
    targets.write_text("\n".join(urls) + "\n", encoding="utf-8")
    code, screen = run_process.on_terminal("fraiseql", "migrate", "up", "--targets",
                                           str(targets), "--jobs", "2",
                                           "--continue-on-error", url=None)
    assert code == 1, screen
    assert pg_cluster.password not in screen
    assert "] ✓ Running migration" not in screen  # no per-target progress lines
    redraws = re.findall(r"\r\x1b\[2K(\d+/4 done, \d running[^\r\n]*)", screen)
    assert redraws, screen
    assert any(re.search(r"slowest: \S+ [\d.]+s 001_a\.sql$", line) for line in redraws)
    assert redraws[-1].startswith(("3/4 done", "4/4 done"))
    failed = urls[3].rsplit("/", 1)[1]
    assert "\x1b[31m✗" in screen  # a terminal gets colour
    plain = re.sub(r"\x1b\[[0-9;]*m", "", screen)
    assert re.search(rf"\[[^\]]*{failed}\] ✗ Failed: Migration 001_a\.sql failed", plain)
    assert "\r\n4 targets: 3 succeeded, 1 failed\r\n" in plain
