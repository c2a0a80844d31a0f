"""``fraiseql migrate squash`` as typed, with a throwaway shadow PostgreSQL: the baseline
written, the progress on stderr, the files removed, no cluster left behind; then ``status``
and ``up`` on the database it was checked against, and a fresh one (those, and the ``up``
that sets the database up, in-process: squash is the command under test here)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from conftest import ProcessRunner, Tenants
from scenarios import UP_DOWN, git, init_repo

from fraiseql_alembic.secrets import mask_url


def test_squash_with_a_throwaway_shadow(run_process: ProcessRunner, tmp_path: Path,
                                        database_url: str, tenants: Tenants) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    for number, table in enumerate(["a", "b", "c"], start=1):
        (folder / f"00{number}_add_{table}.sql").write_text(UP_DOWN.format(t=table))
    (folder / "001_add_a.sql").write_text(
        UP_DOWN.format(t="a").replace("(id int);", "(id int);\nINSERT INTO a VALUES (7);"))
    init_repo(tmp_path)
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "migrations")
    run_process.in_process("fraiseql", "migrate", "up", "--steps", "2", check=True)
    temp = Path(tempfile.mkdtemp(prefix="squash-throwaway-", dir="/tmp"))
    temp.chmod(0o755)  # the server runs as postgres when the tests run as root
    env = {"FRAISEQL_SHADOW_DATABASE_URL": None, "TMPDIR": str(temp)}
    try:
        done = run_process("fraiseql", "migrate", "squash", "--through", "2", env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout == (
            "✓ Wrote migrations/002_baseline.sql: the baseline of 001_add_a.sql .. "
            "002_add_b.sql (2 migrations), built in a throwaway PostgreSQL; a fresh database "
            "built from it dumps the same\n"
            "Removed 001_add_a.sql, 002_add_b.sql (git keeps them); 1 database checked, each "
            "at 002 or past it. Commit the change: git add -A migrations\n")
        assert done.stderr == (
            f"[{mask_url(database_url)}] has applied 002_add_b.sql...\n"
            "Starting a throwaway PostgreSQL for the shadow database...\n"
            "Applying 2 migrations to a throwaway PostgreSQL...\n"
            "Dumping its schema and rows with pg_dump...\n"
            "Checking 002_baseline.sql: a fresh database built from it dumps the same...\n")
        assert list(temp.iterdir()) == []  # the throwaway cluster is removed
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    assert sorted(path.name for path in folder.iterdir()) == ["002_baseline.sql",
                                                             "003_add_c.sql"]
    status = run_process.in_process("fraiseql", "migrate", "status", "--exit-code")
    assert status.returncode == 3, status.stdout  # 003 pending, nothing inconsistent
    assert "✓ 001_add_a.sql (applied " in status.stdout
    assert "; squashed into 002_baseline.sql)" in status.stdout
    run_process.in_process("fraiseql", "migrate", "up", check=True)
    fresh = tenants(1)[0]
    run_process.in_process("fraiseql", "migrate", "up", url=fresh, check=True)
    seeded = run_process("psql", "-XAtc", "SELECT id FROM a", fresh, url=None, check=True)
    assert seeded.stdout == "7\n"  # the row 001 inserted came with the baseline
