"""A backend killed during COMMIT is told alike by `fraiseql migrate up` and plain `alembic
upgrade`.

The subject is what the command says, not its process: each run is made in-process
(``run_process.in_process``: the argv, folder, environment, output and exit code of the
installed command), and the backend is ended from a thread once pg_stat_activity shows
the migration in its COMMIT."""

from __future__ import annotations

import re
import shutil

import pytest
from conftest import ProcessRunner, Project
from scenarios import REPO, meanwhile, on_path

from fraiseql_alembic.devdb import DevCluster

# A deferred constraint trigger that sleeps: the migration's COMMIT takes a minute, long
# enough to end its backend while pg_stat_activity shows it in COMMIT.
SLOW_COMMIT = (
    "CREATE TABLE t (id int);\n"
    "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN PERFORM pg_sleep(60); RETURN NULL; END $$;\n"
    "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON t DEFERRABLE INITIALLY DEFERRED "
    "FOR EACH ROW EXECUTE FUNCTION slow_commit();\n"
)


@pytest.mark.parametrize(("how", "cause"), [
    ("direct", "terminate"), ("alembic", "terminate"), ("plain alembic", "terminate"),
    ("alembic", "restart"),
])
def test_a_backend_killed_during_commit_is_told_alike_on_every_path(
    project: Project, pg_cluster: DevCluster, how: str, cause: str, run_process: ProcessRunner,
) -> None:
    on_path(project, "alembic" if how != "direct" else "direct", "001_slow_commit.sql",
            SLOW_COMMIT)
    argv = ["fraiseql", "migrate", "up"]
    if how == "plain alembic":
        shutil.copy(REPO / "alembic.ini.example", project.root / "alembic.ini")
        argv = ["alembic", "upgrade", "head"]
    applied = project.cli("up")  # 001, in-process: a set-up step
    assert applied.exit_code == 0, applied.output
    project.write("002_insert.sql", "INSERT INTO t VALUES (1);\n")
    in_commit = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                 "AND wait_event = 'PgSleep' AND query ~ 'COMMIT\\s*$'")

    def end_it() -> None:
        if cause == "restart":  # the server ends every backend, and is back a moment later
            pg_cluster.restart()
        else:
            assert project.query(f"SELECT pg_terminate_backend(pid) FROM ({in_commit}) c") \
                == [(True,)]

    with meanwhile(lambda: project.query(in_commit), end_it):
        done = run_process.in_process(*argv)
    out, err = done.stdout, done.stderr
    # The reason is the driver's: the server's last word when psycopg2 kept it (the
    # direct path reads the results itself), else libpq's.
    message = (r"Migration 002_insert\.sql was interrupted: (terminating connection due to "
               r"administrator command|server closed the connection unexpectedly)\. The "
               r"connection to the database was lost; nothing of this migration was kept\. "
               r"Run the command again once the database is back")
    if how == "plain alembic":
        assert done.returncode != 0
        assert re.search(f"^FAILED: {message}$", out + err, re.MULTILINE), out + err
    else:
        assert done.returncode == 1, err
        assert re.fullmatch(f"Error: {message}\n", err), err
    assert "Traceback" not in out + err
    assert project.version() == ["001"]
    assert project.query("SELECT count(*) FROM t") == [(0,)]
