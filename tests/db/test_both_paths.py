"""The execution behaviours, run on every path a `.sql` migration can take, with one
expected outcome.

The same file runs three ways: the direct path (`fraiseql migrate up` on a folder of only
numbered .sql files), the Alembic path (`fraiseql migrate up` on a folder that also holds a
`.py` revision) and the plain `alembic upgrade head` (alembic.ini naming our env.py). Each
test writes the same migrations, runs them on each path, and asserts the same user-visible
outcome: the error line, the exit code, what was kept, the history rows. Settings come
from pyproject.toml for `fraiseql` and from alembic.ini for plain `alembic`, the one place
each reads them. A difference found today is a strict xfail saying what differs (drift):
it fails the day the paths agree, so the mark goes then.

A run whose subject is what the command does (failure location, a backend ended under
it, notices, timeouts, the lock, session isolation, resume, history rows) is made in the
test's process (``run_process.in_process``: the same argv, folder, environment, output and
exit code as the installed command, through click's CliRunner and Alembic's own
CommandLine), what the test does meanwhile from a thread (``scenarios.meanwhile``); a run
that takes a signal, or is frozen, is the installed command as a process.

Nothing waits on a sleep racing a threshold: the tests wait for what pg_stat_activity,
pg_locks or the command's own output show.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2
import pytest
from conftest import ProcessRunner, Project
from scenarios import MIXED, REPO, blocker, frozen, hold_lock, meanwhile, on_path, wait_until

#: direct: only .sql files; alembic: a .py revision in the folder, `fraiseql migrate up`;
#: plain: `alembic upgrade head` with alembic.ini
PATHS = ["direct", "alembic", "plain"]

BASE = "-- migrate:up\nCREATE TABLE t (id int);\n-- migrate:down\nDROP TABLE t;\n"

Setting = str | int


def on(paths: Mapping[str, str]) -> list[object]:
    """PATHS as parameters, those named in ``paths`` marked as drift with the reason."""
    return [pytest.param(path, marks=pytest.mark.xfail(strict=True,
                                                        reason=f"drift: {paths[path]}"))
            if path in paths else path for path in PATHS]


# ---------------------------------------------------------------------------
# Running one path


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    @property
    def error(self) -> str | None:
        """The one error line as the user reads it, without `Error: ` (fraiseql) or
        `FAILED: ` (alembic)."""
        for line in self.text.splitlines():
            for prefix in ("Error: ", "FAILED: "):
                if line.startswith(prefix):
                    return line[len(prefix):]
        return None


def failed(path: str) -> int:
    """The exit code of a failed run: fraiseql's 1; Alembic's `sys.exit(-1)`."""
    return 255 if path == "plain" else 1


def stopped(path: str, sig: int) -> int:
    return 128 + sig


def setup(project: Project, path: str, settings: Mapping[str, Setting] | None = None) -> None:
    """The folder for ``path`` with ``001_base.sql`` (table ``t``) applied, by
    `fraiseql migrate up` in-process: what the tests compare is the next run, on ``path``."""
    settings = settings or {}
    if path == "plain":
        ini = (REPO / "alembic.ini.example").read_text(encoding="utf-8")
        # plain alembic has no retries: fraiseql_lock_retries is not one of its options
        extra = "".join(f"fraiseql_{key} = {value}\n" for key, value in settings.items()
                        if key != "lock_retries")
        marker = "# fraiseql_history_schema = public\n"
        assert marker in ini
        (project.root / "alembic.ini").write_text(ini.replace(marker, marker + extra))
    elif settings:
        (project.root / "pyproject.toml").write_text("[tool.fraiseql.migrations]\n" + "".join(
            f"{key} = {value!r}\n".replace("'", '"') for key, value in settings.items()))
    on_path(project, "alembic" if path == "alembic" else "direct", "001_base.sql", BASE)
    first = project.cli("up")
    assert first.exit_code == 0, first.output
    assert project.version() == ["001"]


def argv(path: str, verb: str = "up") -> list[str]:
    if path == "plain":
        return ["alembic", *(["upgrade", "head"] if verb == "up" else ["downgrade", "-1"])]
    return ["fraiseql", "migrate", *(["up"] if verb == "up"
                                     else ["down", "--steps", "1", "--force"])]


def commands(project: Project) -> ProcessRunner:
    """The installed commands in the project, as the run_process fixture runs them."""
    return ProcessRunner(project.root, project.database_url)


def up(project: Project, path: str, verb: str = "up") -> Ran:
    """The run of ``path`` in the test's process, as the installed command makes it."""
    done = commands(project).in_process(*argv(path, verb), env={"NO_COLOR": "1"})
    return Ran(done.returncode, done.stdout, done.stderr)


@contextmanager
def running(project: Project, path: str) -> Iterator[subprocess.Popen[str]]:
    """The run as the installed command, started in the background (for a signal or a
    freeze); killed on the way out if still running."""
    process = commands(project).start(*argv(path), env={"NO_COLOR": "1"})
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def finish(process: subprocess.Popen[str], timeout: float = 60) -> Ran:
    out, err = process.communicate(timeout=timeout)
    return Ran(process.returncode, out, err)


def activity(project: Project, like: str) -> list[tuple[object, ...]]:
    """(pid, state, wait_event_type) of the other sessions whose query matches ``like``."""
    return project.query(
        "SELECT pid, state, wait_event_type FROM pg_stat_activity WHERE query LIKE "
        f"'{like}' AND pid <> pg_backend_pid() AND datname = current_database()")


def history(project: Project) -> list[tuple[object, ...]]:
    return project.query("SELECT version, action FROM fraiseql_migrations "
                         "WHERE version <> '000' ORDER BY id")


def kept_nothing_of_002(project: Project) -> None:
    assert project.version() == ["001"]
    assert history(project) == [("001", "applied")]


# ---------------------------------------------------------------------------
# Failure location


FAILURES = {
    # one query: the error has a position
    "with a position": (
        "CREATE TABLE x (id int);\nALTER TABLE x ADD COLUMN y no_such_type;\n",
        'Migration 002_bad.sql failed at line 2, column 28: type "no_such_type" does not '
        "exist [SQLSTATE 42704] in statement `ALTER TABLE x ADD COLUMN y no_such_type`. "
        "The migration was rolled back; fix the file and run the command again."),
    # one query: no position, located from the results before the error
    "without a position": (
        "CREATE TABLE x (id int NOT NULL);\nINSERT INTO x\n  VALUES (NULL);\n",
        'Migration 002_bad.sql failed at line 2, column 1: null value in column "id" of '
        'relation "x" violates not-null constraint [SQLSTATE 23502] in statement '
        "`INSERT INTO x`. The migration was rolled back; fix the file and run the command "
        "again."),
    # a marker option: sent statement by statement
    "statement by statement": (
        "-- migrate:up lock_timeout:5s\nCREATE TABLE x (id int);\nSELECT 1 / 0;\n",
        "Migration 002_bad.sql failed at line 3, column 1: division by zero [SQLSTATE "
        "22012] in statement `SELECT 1 / 0`. The migration was rolled back; fix the file "
        "and run the command again."),
    # COPY data: the line of the bad row
    "copy data": (
        "CREATE TABLE x (a int, b text);\nCOPY x (a, b) FROM stdin;\n1\tone\n"
        "two\t2\n\\.\n",
        'Migration 002_bad.sql failed at line 4, column 1: invalid input syntax for type '
        'integer: "two" (line 2 of the COPY data) [SQLSTATE 22P02] in statement '
        "`COPY x (a, b) FROM stdin`. The "
        "migration was rolled back; fix the file and run the command again."),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", list(FAILURES))
def test_a_failure_names_the_same_line_and_message(project: Project, path: str,
                                                   case: str) -> None:
    sql, message = FAILURES[case]
    setup(project, path)
    project.write("002_bad.sql", sql)
    project.write("003_after.sql", "CREATE TABLE after_it (id int);\n")
    result = up(project, path)
    assert (result.code, result.error) == (failed(path), message), result.text
    assert "Traceback" not in result.text
    kept_nothing_of_002(project)
    assert {"x", "after_it"}.isdisjoint(project.tables())


# ---------------------------------------------------------------------------
# Interruption


SLOW = "CREATE TABLE slow (id int);\nSELECT pg_sleep(60);\n"
SLOW_LINE = 2  # of pg_sleep(60) in SLOW

def stops_within(path: str) -> float:
    """Seconds a run may take to stop after a signal.  fraiseql cancels the running
    statement at once (a 60 s sleep, a lock the test holds, a 1 min statement_timeout), so
    50 s tells a cancel from a statement that ran out, however loaded the machine; plain
    alembic does not cancel (its drift, a strict xfail), so its run is given up after 5 s
    (a tenth of what a cancel may take) instead of being waited out."""
    return 5 if path == "plain" else 50


NO_SIGNALS = {"plain": "plain `alembic upgrade` handles no signal (docs/alembic-interop.md "
              "says so): SIGINT is a KeyboardInterrupt traceback once the statement ends "
              "(exit -2, the running statement is not cancelled), SIGTERM kills it (exit "
              "-15, no message); fraiseql on either path cancels the statement, rolls back, "
              "says what was applied and exits 130/143"}


@pytest.mark.parametrize("path", on(NO_SIGNALS))
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_a_statement_cancels_it_and_keeps_what_finished(
    project: Project, path: str, sig: signal.Signals,
) -> None:
    setup(project, path)
    project.write("002_fast.sql", "CREATE TABLE fast (id int);\n")
    project.write("003_slow.sql", SLOW)
    project.write("004_after.sql", "CREATE TABLE after_it (id int);\n")
    with running(project, path) as process:
        wait_until(lambda: activity(project, "%pg_sleep(60)%"))
        process.send_signal(sig)
        result = finish(process, timeout=stops_within(path))  # the 60 s statement was cancelled
    name = sig.name
    assert result.code == stopped(path, sig), result.text
    # sent as one query, the statements that completed before the cancel name the line
    # of the one that was running, as statement by statement (the segmented test below)
    assert result.error == (f"Stopped by {name} in 003_slow.sql at line {SLOW_LINE}; that "
                            "migration was rolled back"), result.text
    assert f"{name}: cancelling the running statement" in result.err
    assert "Applied before the stop: 002_fast.sql" in result.err
    assert "Interrupted and rolled back, not applied: 003_slow.sql" in result.err
    assert project.version() == ["002"]
    assert "fast" in project.tables() and {"slow", "after_it"}.isdisjoint(project.tables())
    assert history(project) == [("001", "applied"), ("002", "applied")]
    assert not activity(project, "%pg_sleep(60)%")


@pytest.mark.parametrize("path", on(NO_SIGNALS))
def test_a_signal_between_two_statements_stops_before_the_next(
    project: Project, path: str,
) -> None:
    # 002 runs statement by statement (its marker); its line 3 waits for one blocker,
    # line 4 for another. The client is frozen, the first blocker lets line 3 finish,
    # SIGINT arrives while the client has not sent line 4: the run stops before line 4,
    # or (when the worker sends line 4 before the signal is handled) cancels line 4,
    # which cannot finish on its own. Either way nothing of 002 is kept.
    setup(project, path)
    project.write("002_steps.sql", "-- migrate:up statement_timeout:1min\n"
                  "CREATE TABLE steps (id int);\nSELECT count(*) FROM t;\n"
                  "SELECT count(*) FROM u;\nINSERT INTO steps VALUES (5);\n")
    project.query("CREATE TABLE u (id int)")
    with blocker(project, "LOCK TABLE t IN ACCESS EXCLUSIVE MODE") as holder, \
            blocker(project, "LOCK TABLE u IN ACCESS EXCLUSIVE MODE"), \
            running(project, path) as process:
        def waiting() -> bool:
            rows = activity(project, "SELECT count(*) FROM t%")
            return bool(rows) and rows[0][2] == "Lock"
        wait_until(waiting)
        frozen(process.pid)
        holder.commit()
        wait_until(lambda: activity(project, "SELECT count(*) FROM t%")[0][1]
                   == "idle in transaction")
        process.send_signal(signal.SIGINT)
        os.kill(process.pid, signal.SIGCONT)
        result = finish(process, timeout=stops_within(path))
    assert result.code == stopped(path, signal.SIGINT), result.text
    assert result.error in ("Stopped by SIGINT in 002_steps.sql before line 4",
                            "Stopped by SIGINT in 002_steps.sql at line 4; that migration "
                            "was rolled back"), result.text
    assert "Interrupted and rolled back, not applied: 002_steps.sql" in result.err
    assert "steps" not in project.tables()
    kept_nothing_of_002(project)


@pytest.mark.parametrize("path", PATHS)
def test_a_backend_ended_during_a_statement_is_told_alike(project: Project, path: str) -> None:
    setup(project, path)
    project.write("002_fast.sql", "CREATE TABLE fast (id int);\n")
    project.write("003_slow.sql", SLOW)

    def terminate() -> None:
        assert project.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                             "query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()") \
            == [(True,)]

    with meanwhile(lambda: activity(project, "%pg_sleep(60)%"), terminate):
        result = up(project, path)
    assert result.code == failed(path), result.text
    assert result.error is not None and re.fullmatch(
        r"Migration 003_slow\.sql was interrupted at line 2: (terminating connection "
        r"due to "
        r"administrator command|server closed the connection unexpectedly)\. The connection "
        r"to the database was lost; nothing of this migration was kept\. Run the command "
        r"again once the database is back\.?", result.error), result.text
    assert "Traceback" not in result.text
    assert project.version() == ["002"] and "slow" not in project.tables()
    assert history(project) == [("001", "applied"), ("002", "applied")]


# ---------------------------------------------------------------------------
# Resume of a segmented migration


@pytest.mark.parametrize("path", PATHS)
def test_a_failed_segmented_migration_keeps_its_segments_and_resumes_at_its_line(
    project: Project, path: str,
) -> None:
    setup(project, path)
    project.write("002_mixed.sql", MIXED)
    result = up(project, path)
    assert result.code == failed(path), result.text
    assert result.error is not None and result.error.startswith(
        'Migration 002_mixed.sql failed at line 8, column 1: could not create unique index '
        '"idx_m1_unique"; it left the INVALID index public.idx_m1_unique behind'), result.text
    assert result.error.endswith(
        "[SQLSTATE 23505] in statement `CREATE UNIQUE INDEX CONCURRENTLY idx_m1_unique ON m1 "
        "(a)`. The parts of the file before this statement's segment were run and are "
        "recorded; fix the file from here on and run `fraiseql migrate up` to resume.")
    assert {"m1", "m2"} <= project.tables() and "m3" not in project.tables()
    assert project.version() == ["001"]
    assert project.query("SELECT version FROM fraiseql_migration_progress") == [("002",)]
    project.write("002_mixed.sql", MIXED.replace("CREATE UNIQUE INDEX", "CREATE INDEX"))
    resumed = up(project, path)
    assert resumed.code == 0, resumed.text
    assert "Resuming 002_mixed.sql at line 8" in resumed.text
    assert "dropping INVALID index public.idx_m1_unique" in resumed.text
    assert project.query("SELECT count(*) FROM m1") == [(2,)]  # line 3 ran once
    assert project.query("SELECT count(*) FROM m2") == [(1,)]
    assert "m3" in project.tables() and project.version() == ["002"]
    assert project.query("SELECT count(*) FROM fraiseql_migration_progress") == [(0,)]
    assert history(project) == [("001", "applied"), ("002", "applied")]


SEGMENTED = """-- migrate:up
CREATE TABLE s1 (a int);
INSERT INTO s1 VALUES (1);
CREATE INDEX CONCURRENTLY idx_s1 ON s1 (a);
CREATE TABLE s2 (a int);
SELECT count(*) FROM t;
CREATE TABLE s3 (a int);
-- migrate:down
DROP TABLE s3;
DROP TABLE s2;
DROP TABLE s1;
"""


@pytest.mark.parametrize("path", on(NO_SIGNALS))
def test_a_signal_in_a_segmented_migration_keeps_the_finished_segments_and_resumes(
    project: Project, path: str,
) -> None:
    # line 6 (after the CONCURRENTLY segment) waits for a blocker; SIGINT cancels it
    setup(project, path)
    project.write("002_segments.sql", SEGMENTED)
    with blocker(project, "LOCK TABLE t IN ACCESS EXCLUSIVE MODE"), \
            running(project, path) as process:
        wait_until(lambda: [row for row in activity(project, "SELECT count(*) FROM t%")
                            if row[2] == "Lock"])
        process.send_signal(signal.SIGINT)
        result = finish(process, timeout=stops_within(path))
    assert result.code == stopped(path, signal.SIGINT), result.text
    assert result.error == ("Stopped by SIGINT in 002_segments.sql at line 6; that migration "
                            "was rolled back"), result.text
    assert "Interrupted and rolled back, not applied: 002_segments.sql" in result.err
    # the segments before the CONCURRENTLY index and the index itself are kept
    assert {"s1"} <= project.tables() and {"s2", "s3"}.isdisjoint(project.tables())
    assert project.version() == ["001"]
    resumed = up(project, path)
    assert resumed.code == 0, resumed.text
    assert "Resuming 002_segments.sql at line 5" in resumed.text
    assert project.query("SELECT count(*) FROM s1") == [(1,)]  # line 3 ran once
    assert {"s2", "s3"} <= project.tables() and project.version() == ["002"]
    assert history(project) == [("001", "applied"), ("002", "applied")]


# ---------------------------------------------------------------------------
# Session isolation, notices


@pytest.mark.parametrize("path", PATHS)
def test_each_migration_starts_from_a_clean_session(project: Project, path: str) -> None:
    # The cases one by one are in tests/process/test_session_isolation.py; here, what
    # one migration leaves, all at once, as the next one sees it on each path.
    setup(project, path)
    project.write("002_leave.sql", "CREATE TEMP TABLE scratch (i int);\n"
                  "PREPARE mine AS SELECT 1;\nSET fraiseql_test.tenant = 'acme';\n"
                  "SET search_path = pg_catalog;\nLISTEN deploys;\n")
    project.write("003_look.sql", "CREATE TEMP TABLE scratch (i int);\n"
                  "PREPARE mine AS SELECT 2;\n"
                  "CREATE TABLE public.seen AS SELECT "
                  "coalesce(current_setting('fraiseql_test.tenant', true), '') AS tenant, "
                  "current_setting('search_path') AS search_path, "
                  "(SELECT count(*)::int FROM pg_listening_channels()) AS listening;\n")
    result = up(project, path)
    assert result.code == 0, result.text
    assert project.query("SELECT * FROM seen") == [("", '"$user", public', 0)]
    assert history(project) == [("001", "applied"), ("002", "applied"), ("003", "applied")]


@pytest.mark.parametrize("path", PATHS)
def test_notices_are_printed_under_the_migration_that_raised_them(
    project: Project, path: str,
) -> None:
    setup(project, path)
    project.write("002_notice.sql", "CREATE TABLE n (id int);\n"
                  "DO $$ BEGIN RAISE NOTICE 'rows: % (%%)', 2; END $$;\n")
    project.write("003_warning.sql", "DO $$ BEGIN RAISE WARNING 'careful'; END $$;\n")
    result = up(project, path)
    assert result.code == 0, result.text
    # fraiseql prints its own lines (the notice indented under the migration), plain
    # alembic its log lines (`Running upgrade 001 -> 002`, the notice after it)
    seen = []
    for line in result.text.splitlines():
        started = re.search(r"Running migration: (\d+)_|Running upgrade \S+ -> (\d+)", line)
        if started:
            seen.append(started.group(1) or started.group(2))
        elif line.lstrip().startswith(("NOTICE", "WARNING")):
            seen.append(line.strip())
    assert seen == ["002", "NOTICE: rows: 2 (%)", "003", "WARNING: careful"], result.text
    if path != "plain":
        assert "✓ Running migration: 002_notice.sql\n  NOTICE: rows: 2 (%)\n" in result.out


# ---------------------------------------------------------------------------
# Timeouts, from the settings and from the file's marker


LOCK_TIMEOUT = ("Migration 002_alter.sql could not get a lock at line {line} (canceling "
                "statement due to lock timeout [SQLSTATE 55P03]). Gave up after 1 attempt: ")


@pytest.mark.parametrize("path", on({"plain": (
    "plain `alembic upgrade` (which does not retry, as documented) tells a lock timeout "
    "as a failed statement: `Migration "
    "002_alter.sql failed at line 2, column 1: canceling statement due to lock timeout "
    "[SQLSTATE 55P03] in statement `ALTER TABLE t ADD COLUMN y int`. Another session holds "
    "a lock this migration needs (lock_timeout); nothing of it was kept. Retry when that "
    "transaction ends.`; fraiseql (either path, --lock-retries 0): `Migration 002_alter.sql "
    "could not get a lock at line 2 (canceling statement due to lock timeout [SQLSTATE "
    "55P03]). Gave up after 1 attempt: ...`")}))
@pytest.mark.parametrize("source", ["settings", "marker"])
def test_lock_timeout_stops_the_migration_at_its_line(
    project: Project, path: str, source: str,
) -> None:
    settings: dict[str, Setting] = {"lock_retries": 0}
    marker = ""
    if source == "settings":
        settings["lock_timeout"] = "200ms"
    else:
        marker = "-- migrate:up lock_timeout:200ms\n"
    setup(project, path, settings)
    project.write("002_alter.sql", marker + "CREATE TABLE before_it (id int);\n"
                  "ALTER TABLE t ADD COLUMN y int;\n")
    with blocker(project, "LOCK TABLE t IN ACCESS SHARE MODE"):
        result = up(project, path)
    assert result.code == failed(path), result.text
    assert result.error is not None and result.error.startswith(
        LOCK_TIMEOUT.format(line=3 if marker else 2)), result.text
    assert "before_it" not in project.tables()
    kept_nothing_of_002(project)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("source", ["settings", "marker"])
def test_statement_timeout_stops_the_migration_at_its_line(
    project: Project, path: str, source: str,
) -> None:
    marker = "" if source == "settings" else "-- migrate:up statement_timeout:300ms\n"
    setup(project, path, {"statement_timeout": "300ms"} if source == "settings" else {})
    project.write("002_slow.sql", marker + "CREATE TABLE before_it (id int);\n"
                  "SELECT pg_sleep(60);\n")
    result = up(project, path)
    line = 3 if marker else 2
    assert (result.code, result.error) == (failed(path), (
        f"Migration 002_slow.sql failed at line {line}, column 1: canceling statement due "
        "to statement timeout [SQLSTATE 57014] in statement `SELECT pg_sleep(60)`. The "
        "migration was rolled back; fix the file and run the command again.")), result.text
    assert "before_it" not in project.tables()
    kept_nothing_of_002(project)


# ---------------------------------------------------------------------------
# The migration lock


def backend_pid(connection: psycopg2.extensions.connection) -> int:
    return int(connection.get_backend_pid())


@pytest.mark.parametrize("path", PATHS)
def test_a_run_that_cannot_get_the_migration_lock_is_refused(
    project: Project, path: str,
) -> None:
    setup(project, path, {"lock_wait": 1})
    project.write("002_next.sql", "CREATE TABLE next_one (id int);\n")
    holder = hold_lock(project)
    try:
        result = up(project, path)
        pid = backend_pid(holder)
    finally:
        holder.close()
    assert result.code == failed(path), result.text
    held = f"the migration lock held by pid {pid} (someone else's deploy)"
    assert f"Waiting up to 1s for {held}" in result.err, result.text
    assert result.error is not None and result.error.startswith(
        f"Gave up after waiting 1s for {held}"), result.text
    assert "next_one" not in project.tables()
    kept_nothing_of_002(project)


@pytest.mark.parametrize("path", PATHS)
def test_a_run_waits_for_the_migration_lock_then_applies_each_migration_once(
    project: Project, path: str,
) -> None:
    setup(project, path)
    project.write("002_next.sql", "CREATE TABLE next_one (id int);\n")
    holder = hold_lock(project)
    pid = backend_pid(holder)

    def waiting() -> bool:
        # the run has tried the lock and looked up its holder (then says it waits)
        return any(state == "idle" for _, state, _ in activity(
            project, "%FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid%"))

    def release() -> None:
        try:
            assert project.version() == ["001"]
        finally:
            holder.close()

    try:
        with meanwhile(waiting, release):
            result = up(project, path)
    finally:
        holder.close()
    # the first line, printed when the wait starts: it names the holder's pid, seen while
    # the lock was held
    line = result.err.splitlines()[0] if result.err else ""
    assert line.startswith("Waiting up to 60s for the migration lock held by pid "
                           f"{pid} (someone else's deploy)"), result.text
    assert result.code == 0, result.text
    assert project.version() == ["002"]
    assert history(project) == [("001", "applied"), ("002", "applied")]
    assert up(project, path).code == 0  # nothing left to do
    assert history(project) == [("001", "applied"), ("002", "applied")]


# ---------------------------------------------------------------------------
# COPY FROM stdin, and the history rows


COPY = ("CREATE TABLE c (a int, b text);\nCOPY c (a, b) FROM stdin;\n1\tone\n2\t\\N\n"
        "3\ttab\\there; -- not a comment\n\\.\nINSERT INTO c VALUES (4, 'four');\n")


@pytest.mark.parametrize("path", PATHS)
def test_copy_data_and_the_history_rows(project: Project, path: str) -> None:
    setup(project, path)
    down = "-- migrate:down\nDROP TABLE c;\n"
    text = "-- migrate:up\n" + COPY + down
    project.write("002_copy.sql", text)
    result = up(project, path)
    assert result.code == 0, result.text
    assert project.query("SELECT a, b FROM c ORDER BY a") == [
        (1, "one"), (2, None), (3, "tab\there; -- not a comment"), (4, "four")]
    rows = project.query(
        "SELECT version, filename, action, checksum, up_checksum IS NOT NULL, "
        "execution_ms >= 0, applied_by IS NOT NULL, applied_at <= now() "
        "FROM fraiseql_migrations WHERE version = '002'")
    assert rows == [("002", "002_copy.sql", "applied",
                     hashlib.sha256(text.encode()).hexdigest(), True, True, True, True)]

    back = up(project, path, "down")
    assert back.code == 0, back.text
    assert "c" not in project.tables() and project.version() == ["001"]
    assert history(project) == [("001", "applied"), ("002", "applied"),
                                ("002", "rolled_back")]
    assert project.query("SELECT execution_ms >= 0 FROM fraiseql_migrations "
                         "WHERE action = 'rolled_back'") == [(True,)]
