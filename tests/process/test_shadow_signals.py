"""SIGINT/SIGTERM while a verb builds the migrations' schema in a shadow database: the
statement running there is cancelled, as ``up``'s is (the two lines, exit 130/143, within
seconds), the shadow is emptied (a throwaway cluster removed) and nothing is written.
One row per verb that builds a shadow (``create --autogenerate``'s own case is in
test_autogenerate_cli).  Real processes: the signal handling is the subject."""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from conftest import Cli, ProcessRunner
from scenarios import UP_DOWN, USER_MODELS, fetch_one, git, init_repo, wait_until

from fraiseql_alembic.devdb import DevCluster, DevDBError

#: Sleeps in every database but the live one (which has it applied in no time).
SLOW = ("-- migrate:up\nSELECT pg_sleep(CASE current_database() WHEN '{live}' THEN 0 "
        "ELSE 60 END);\n-- migrate:down\nSELECT 1;\n")
_SLEEPING = ("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(CASE%' "
             "AND state = 'active' AND pid <> pg_backend_pid()")
_USER_TABLES = ("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                "c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname !~ '^pg_toast'")

CASES = [
    # (id, arguments, signal, a throwaway cluster instead of the pooled shadow)
    ("check-models", ["check", "--models"], signal.SIGINT, False),
    ("check-schema-file", ["check", "--schema-file", "schema.sql"], signal.SIGTERM, False),
    ("drift", ["drift"], signal.SIGINT, False),
    ("drift-targets", ["drift", "--targets", "targets.txt"], signal.SIGTERM, False),
    ("squash", ["squash", "--through", "2"], signal.SIGINT, False),
    ("squash-throwaway", ["squash", "--through", "2"], signal.SIGTERM, True),
]


@pytest.fixture
def throwaway_root() -> Iterator[Path]:
    """TMPDIR for a throwaway cluster; one still running at the end is stopped."""
    temp = Path(tempfile.mkdtemp(prefix="shadow-signal-", dir="/tmp"))
    temp.chmod(0o755)  # the server runs as postgres when the tests run as root
    try:
        yield temp
    finally:
        for base in temp.glob("fraiseql-devdb-*"):
            with contextlib.suppress(DevDBError):  # DevDBError: not (or no longer) running
                DevCluster.attach(base).stop("immediate")
        shutil.rmtree(temp, ignore_errors=True)


def _sleeping(url: str | None) -> bool:
    if url is None:
        return False
    try:
        return bool(fetch_one(url, _SLEEPING))
    except psycopg2.OperationalError:  # a throwaway cluster still starting
        return False


@pytest.mark.parametrize(("args", "sig", "throwaway"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_signal_during_the_shadow_build_cancels_the_running_statement(
    args: list[str], sig: signal.Signals, throwaway: bool, run_process: ProcessRunner,
    cli: Cli, tmp_path: Path, database_url: str, shadow_url: str,
    throwaway_root: Path,
) -> None:
    live = str(fetch_one(database_url, "SELECT current_database()"))
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "001_add_a.sql").write_text(UP_DOWN.format(t="a"))
    (folder / "002_slow.sql").write_text(SLOW.format(live=live))
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "models.py").write_text(USER_MODELS)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.fraiseql]\ntarget_metadata = "myapp.models:Base.metadata"\n')
    (tmp_path / "schema.sql").write_text("-- whatever: never compared\n")
    (tmp_path / "targets.txt").write_text(database_url + "\n")
    init_repo(tmp_path)
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "migrations")
    applied = cli("migrate", "up", env={"DATABASE_URL": database_url})  # a set-up step
    assert applied.exit_code == 0, applied.output
    env: dict[str, str | None] = (
        {"FRAISEQL_SHADOW_DATABASE_URL": None, "TMPDIR": str(throwaway_root)} if throwaway
        else {"FRAISEQL_SHADOW_DATABASE_URL": shadow_url})

    def shadow() -> str | None:
        if not throwaway:
            return shadow_url
        for base in throwaway_root.glob("fraiseql-devdb-*"):
            with contextlib.suppress(DevDBError):  # still starting
                return DevCluster.attach(base).url("postgres")
        return None

    command = run_process.start("fraiseql", "migrate", *args, env=env)
    try:
        wait_until(lambda: _sleeping(shadow()))
        command.send_signal(sig)
        out, err = command.communicate(timeout=20)  # not the 60 s the statement would take
    finally:
        if command.poll() is None:
            command.kill()
            command.communicate()
    name, code = ("SIGINT", 130) if sig == signal.SIGINT else ("SIGTERM", 143)
    assert command.returncode == code, out + err
    stopped = (f"Stopped by {name} in 002_slow.sql at line 2; that migration was rolled "
               "back")
    if "--targets" in args:
        assert f"✗ Could not compare: {stopped}\n" in out
        stopped = (f"Stopped by {name}: 1 target: 1 interrupted; what was in flight was "
                   "rolled back. Run the command again to continue")
    assert err.splitlines()[-2:] == [
        f"{name}: cancelling the running statement and rolling back...", f"Error: {stopped}"]
    if throwaway:
        assert list(throwaway_root.iterdir()) == []  # the cluster is stopped and removed
        running = run_process("ps", "-eww", "-o", "args").stdout
        assert f"-D {throwaway_root}" not in running  # its server is stopped
    else:
        assert fetch_one(shadow_url, _USER_TABLES) == 0  # emptied after the stop
    assert sorted(path.name for path in folder.iterdir()) == ["001_add_a.sql", "002_slow.sql"]
