"""A revision merged after later migrations were applied is never skipped, and an
applied migration is never given a new parent (issue 11, item 3).

Through `fraiseql` and `alembic`, on a real PostgreSQL: in-process (``Project.cli``,
``run_process.in_process``), since what each command reports is the subject; the first
`alembic heads` is the installed command.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import Result
from conftest import Cli, ProcessRunner, Project
from scenarios import FEATURE, REPO, UP_DOWN

PY_REVISION = '''"""{doc}"""
from alembic import op

revision = "{rev}"
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE TABLE {table} (id int)")


def downgrade():
    op.execute("DROP TABLE {table}")
'''


def fraiseql(project: Project, *args: str, code: int = 0) -> Result:
    """``fraiseql migrate ARGS`` in-process (the project's own reports are the subject; the
    command as typed is tests/process/test_alembic_cli and test_mistakes); asserts the exit
    code."""
    ran = project.cli(*args)
    assert ran.exit_code == code, ran.output
    return ran


def write_py(project: Project, rev: str, down: str | tuple[str, ...] | None, table: str) -> Path:
    return project.write(f"{rev}_{table}.py",
                         PY_REVISION.format(doc=table, rev=rev, down=down, table=table))


@pytest.fixture
def deployed(project: Project) -> Project:
    """001..004 (SQL) applied with `fraiseql migrate up` (in-process: a set-up step); plain
    `alembic` set up too."""
    shutil.copy(REPO / "alembic.ini.example", project.root / "alembic.ini")
    for number in range(1, 5):
        project.write(f"00{number}_t{number}.sql", UP_DOWN.format(t=f"t{number}"))
    assert project.cli("up").exit_code == 0
    assert project.version() == ["004"]
    return project


# ---------------------------------------------------------------------------
# The loader: parents come from numbers and the file's own header only


# ---------------------------------------------------------------------------
# The scenario: 001..004 applied, then a .py revision with parent 003 merged


def test_late_merged_py_revision_is_reported_by_every_command(deployed: Project, run_process: ProcessRunner) -> None:
    write_py(deployed, FEATURE, "003", "feature")
    # plain Alembic sees two heads, and the branch point
    heads = run_process("alembic", "heads", check=True).stdout.splitlines()
    assert sorted(heads) == ["004 (head)", f"{FEATURE} (head)"]
    branches_out = run_process.in_process("alembic", "branches", check=True).stdout
    assert "003 (branchpoint)" in branches_out and f"-> {FEATURE} (head)" in branches_out

    advice = (
        f"{FEATURE}_feature.py was merged after 004_t4.sql was applied: it follows "
        "003_t3.sql, which this database has moved past, so it would run out of order. If no "
        "database has run it yet, set `down_revision = \"004\"` in it so that it runs after "
        "the migrations already applied; to run it out of order on purpose, join the two "
        "lines with `alembic merge heads -m merge`"
    )
    status = fraiseql(deployed, "status").stdout
    assert f"  ✗ {FEATURE}_feature.py (NOT APPLIED: merged out of order)\n" in status
    assert f"Problem: {advice}" in status
    assert "✓ 004_t4.sql" in status
    fraiseql(deployed, "status", "--exit-code", code=4)
    document = json.loads(fraiseql(deployed, "status", "--json").stdout)
    assert document["folder_heads"] == ["004_t4.sql", f"{FEATURE}_feature.py"]
    assert {row["file"]: row["state"] for row in document["migrations"]}[
        f"{FEATURE}_feature.py"] == "out_of_order"

    up = fraiseql(deployed, "up", code=1)
    assert up.stderr == f"Error: Refusing to migrate: {advice}. Nothing was applied\n"
    alembic_up = run_process.in_process("alembic", "upgrade", "head")
    assert alembic_up.returncode != 0
    assert f"FAILED: Refusing to migrate: {advice}. Nothing was applied" in alembic_up.stdout
    assert deployed.version() == ["004"] and "feature" not in deployed.tables()

    check = fraiseql(deployed, "check", code=1)
    assert f"migrations/{FEATURE}_feature.py:1: {advice}" in check.stdout
    assert "heads (" not in check.stdout  # said once, by the file's own problem

    # the way out for a revision no database has run: make it follow the head
    write_py(deployed, FEATURE, "004", "feature")
    assert run_process.in_process("alembic", "heads", check=True).stdout == f"{FEATURE} (head)\n"
    up = fraiseql(deployed, "up").stdout
    assert f"✓ Running migration: {FEATURE}_feature.py" in up
    assert deployed.version() == [FEATURE] and "feature" in deployed.tables()


def test_merge_heads_runs_the_late_revision_on_purpose(deployed: Project, run_process: ProcessRunner) -> None:
    write_py(deployed, FEATURE, "003", "feature")
    write_py(deployed, "f00dfeed0001", ("004", FEATURE), "merge")
    assert run_process.in_process("alembic", "heads", check=True).stdout == "f00dfeed0001 (head)\n"
    status = fraiseql(deployed, "status").stdout
    assert f"○ {FEATURE}_feature.py (pending)" in status and "Problem" not in status
    up = fraiseql(deployed, "up").stdout
    assert f"✓ Running migration: {FEATURE}_feature.py" in up
    assert deployed.version() == ["f00dfeed0001"] and "feature" in deployed.tables()
    # the next SQL file names the hex head it follows, instead of forking from 004
    fraiseql(deployed, "create", "after_merge")
    created = (deployed.migrations / "005_after_merge.sql").read_text()
    assert created.splitlines()[1] == "-- revises: f00dfeed0001"
    assert run_process.in_process("alembic", "heads", check=True).stdout == "005 (head)\n"


def test_numbered_file_merged_below_an_applied_hex_revision(deployed: Project, run_process: ProcessRunner) -> None:
    assert deployed.cli("down", "--force").exit_code == 0  # back to 003 (a set-up step)
    (deployed.migrations / "004_t4.sql").unlink()
    write_py(deployed, FEATURE, "003", "feature")
    assert deployed.cli("up").exit_code == 0  # a set-up step, in-process
    assert deployed.version() == [FEATURE]
    deployed.write("004_late.sql", UP_DOWN.format(t="late"))  # made on a branch before FEATURE
    status = fraiseql(deployed, "status").stdout
    assert "✗ 004_late.sql (NOT APPLIED: merged out of order)" in status
    assert (f"Problem: 004_late.sql was merged after {FEATURE}_feature.py was applied: it "
            "follows 003_t3.sql") in status
    assert f"add a `-- revises: {FEATURE}` header line to it" in status
    assert "by hand" not in status
    up = fraiseql(deployed, "up", code=1)
    assert "004_late.sql was merged after" in up.stderr
    deployed.write("004_late.sql", f"-- revises: {FEATURE}\n" + UP_DOWN.format(t="late"))
    fraiseql(deployed, "up")
    assert deployed.version() == ["004"] and "late" in deployed.tables()


def test_a_file_whose_parent_changed_after_it_ran_is_not_blamed_on_alembic_version(
    deployed: Project, run_process: ProcessRunner,
) -> None:
    # 004 ran on top of FEATURE (it named it); then the header line was lost in a merge
    assert deployed.cli("down", "--force").exit_code == 0  # back to 003 (a set-up step)
    (deployed.migrations / "004_t4.sql").unlink()
    write_py(deployed, FEATURE, "003", "feature")
    deployed.write("004_t4.sql", f"-- revises: {FEATURE}\n" + UP_DOWN.format(t="t4"))
    assert deployed.cli("up").exit_code == 0  # a set-up step, in-process
    assert deployed.version() == ["004"]
    deployed.write("004_t4.sql", UP_DOWN.format(t="t4"))
    status = fraiseql(deployed, "status").stdout
    assert f"✗ {FEATURE}_feature.py (applied" in status
    assert "NOT in alembic_version: the chain changed under it)" in status
    assert (f"Problem: {FEATURE}_feature.py was applied, and 004_t4.sql after it, but in the "
            f"folder 004_t4.sql follows 003_t3.sql, not {FEATURE}_feature.py, so "
            "alembic_version no longer covers it: give 004_t4.sql its parent back (add a "
            f"`-- revises: {FEATURE}` header line to 004_t4.sql)") in status
    assert "by hand" not in status
    up = fraiseql(deployed, "up", code=1)
    assert "give 004_t4.sql its parent back" in up.stderr


def test_a_deliberate_branch_shows_in_alembic_branches_and_stops_up(project: Project, run_process: ProcessRunner) -> None:
    shutil.copy(REPO / "alembic.ini.example", project.root / "alembic.ini")
    for number in range(1, 4):
        project.write(f"00{number}_t{number}.sql", UP_DOWN.format(t=f"t{number}"))
    made = run_process.in_process("alembic", "revision", "--head", "002", "--splice",
                                  "--rev-id", "5ab1ce000001", "-m", "side", check=True)
    assert "5ab1ce000001_side.py" in made.stdout
    branches_out = run_process.in_process("alembic", "branches", check=True).stdout
    assert "002 (branchpoint)" in branches_out
    assert "-> 003 (head)" in branches_out and "-> 5ab1ce000001 (head)" in branches_out
    status = fraiseql(project, "status").stdout
    assert ("Warning: The migrations folder has 2 heads (003_t3.sql, 5ab1ce000001_side.py)"
            in status)
    fraiseql(project, "status", "--exit-code", code=4)
    up = fraiseql(project, "up", code=1)
    assert "join them with `alembic merge heads -m merge`. Nothing was applied" in up.stderr
    assert project.version() == []
    check = fraiseql(project, "check", code=1)
    assert "The migrations folder has 2 heads" in check.stdout


# ---------------------------------------------------------------------------
# check --base: at pull-request time, before any database runs it


def test_check_base_flags_a_branch_revision_made_before_main_moved_on(
    project: Project, run_process: ProcessRunner, cli: Cli,
) -> None:
    shutil.copy(REPO / "alembic.ini.example", project.root / "alembic.ini")

    def git(*args: str) -> None:
        run_process("git", *args, check=True)

    git("init", "-q", "-b", "main")
    git("config", "user.name", "Test")
    git("config", "user.email", "test@example.com")
    for number in range(1, 4):
        project.write(f"00{number}_t{number}.sql", UP_DOWN.format(t=f"t{number}"))
    git("add", "-A")
    git("commit", "-qm", "base")
    git("checkout", "-qb", "feature")
    write_py(project, FEATURE, "003", "feature")  # `alembic revision` while 003 was the head
    git("add", "-A")
    git("commit", "-qm", "feature")
    git("checkout", "-q", "main")
    project.write("004_t4.sql", UP_DOWN.format(t="t4"))
    git("add", "-A")
    git("commit", "-qm", "main moves on")
    git("checkout", "-q", "feature")
    git("merge", "-q", "--no-edit", "main")
    result = cli("migrate", "check", "--base", "main", env={"DATABASE_URL": ""})
    assert result.exit_code == 1
    assert (f"migrations/{FEATURE}_feature.py:1: follows 003_t3.sql, but main already has "
            "004_t4.sql after it, so databases that ran that would skip this one (two heads): "
            "set `down_revision = \"004\"` in it so that it runs after the migrations already "
            "merged") in result.stdout
