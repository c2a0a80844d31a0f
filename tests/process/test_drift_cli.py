"""``fraiseql migrate drift`` as typed, with a throwaway shadow PostgreSQL: exit 0 on an
untouched database, 3 with the list on stdout once it is changed by hand, the progress on
stderr, and no cluster left behind.  The run after the change compares in a pooled shadow
database (the throwaway cluster is the first run's subject, not the second's)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psycopg2
from conftest import Cli, ProcessRunner

SCHEMA = """-- migrate:up
CREATE TABLE tb_user (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL);
CREATE INDEX ix_user_email ON tb_user (email);

-- migrate:down
DROP TABLE tb_user;
"""


def test_drift_with_a_throwaway_shadow(run_process: ProcessRunner, cli: Cli, tmp_path: Path,
                                       database_url: str, shadow_url: str) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "001_users.sql").write_text(SCHEMA, encoding="utf-8")
    applied = cli("migrate", "up", env={"DATABASE_URL": database_url})  # a set-up step
    assert applied.exit_code == 0, applied.output
    temp = Path(tempfile.mkdtemp(prefix="drift-throwaway-", dir="/tmp"))
    temp.chmod(0o755)  # the server runs as postgres when the tests run as root
    env = {"FRAISEQL_SHADOW_DATABASE_URL": None, "TMPDIR": str(temp)}
    try:
        same = run_process("fraiseql", "migrate", "drift", env=env)
        assert (same.returncode, same.stdout) == (0, (
            "✓ No drift: the database's schema is what the 1 migration applied to it "
            "build\n")), same.stderr
        assert same.stderr == (
            "Starting a throwaway PostgreSQL for the shadow database...\n"
            "Building the schema of the 1 migration applied to the database in a throwaway "
            "PostgreSQL...\n")
        assert list(temp.iterdir()) == []  # the throwaway cluster is removed
        connection = psycopg2.connect(database_url)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute("DROP INDEX ix_user_email")
        finally:
            connection.close()
        changed = run_process("fraiseql", "migrate", "drift",
                              env={"FRAISEQL_SHADOW_DATABASE_URL": shadow_url})
        assert changed.returncode == 3, changed.stderr
        assert changed.stdout.splitlines()[1:] == [
            "  index public.ix_user_email: missing from the database (the migrations create "
            "it)"]
    finally:
        shutil.rmtree(temp, ignore_errors=True)
