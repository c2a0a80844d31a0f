"""Pure: planning (engine/plan.py) from a chain of revisions and a DatabaseState, no database.

Like Django's ``test_executor.py`` tests of ``migration_plan``: each test builds the
folder's chain and where the database is, and checks the plan or the refusal.
"""

from __future__ import annotations

import types
from datetime import datetime, timezone
from pathlib import Path

import pytest

from fraiseql_alembic.engine import history
from fraiseql_alembic.engine import plan as planning
from fraiseql_alembic.engine.database import DatabaseState
from fraiseql_alembic.engine.status import MODIFIED, PENDING
from fraiseql_alembic.errors import (
    ChecksumMismatchError,
    IrreversibleMigrationError,
    MigrationError,
    MigrationLayoutError,
    UsageError,
)
from fraiseql_alembic.sql.names import parse_filename
from fraiseql_alembic.sql.parse import ParsedMigration, parse_migration

FOLDER = Path("migrations")
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def sql(filename: str, up: str = "CREATE TABLE t (id int);", down: str | None = "DROP TABLE t;",
        ) -> ParsedMigration:
    name = parse_filename(filename)
    assert name is not None
    text = f"-- migrate:up\n{up}\n" + (f"-- migrate:down\n{down}\n" if down is not None else "")
    return parse_migration(name, text)


def chain(*migrations: ParsedMigration) -> list[types.SimpleNamespace]:
    """Revisions as the loader links SQL files alone: each follows the one before."""
    scripts = []
    parent = None
    for migration in migrations:
        version = migration.name.version
        scripts.append(types.SimpleNamespace(
            revision=version, down_revision=parent, path=f"migrations/{migration.name.filename}",
            module=types.SimpleNamespace(fraiseql_migration=migration), dependencies=()))
        parent = version
    return scripts


def applied(*migrations: ParsedMigration, action: str = history.APPLIED) -> DatabaseState:
    """A database with ``migrations`` applied, the last one in alembic_version."""
    rows = {
        migration.name.version: history.HistoryRow(
            index, migration.name.version, migration.name.slug, migration.name.filename,
            migration.checksum, WHEN, 5, "app", action, migration.up_checksum)
        for index, migration in enumerate(migrations, 1)
    }
    heads = (migrations[-1].name.version,) if migrations else ()
    return DatabaseState(heads, rows)


ONE, TWO, THREE = sql("001_a.sql"), sql("002_b.sql"), sql("003_c.sql")


def plan_up(scripts: list[types.SimpleNamespace], state: DatabaseState,
            steps: int | None = None) -> planning.UpgradePlan:
    return planning.plan_upgrade(planning.reconcile(scripts, state), state.heads, steps,
                                 folder=FOLDER)


def test_an_empty_database_plans_every_migration_in_order() -> None:
    plan = plan_up(chain(ONE, TWO, THREE), applied())
    assert [item.filename for item in plan.planned] == ["001_a.sql", "002_b.sql", "003_c.sql"]
    assert plan.planned[0].sql == "CREATE TABLE t (id int);"
    assert plan.marked == () and plan.warnings == ()


def test_steps_and_what_is_applied_limit_the_plan() -> None:
    plan = plan_up(chain(ONE, TWO, THREE), applied(ONE), steps=1)
    assert [item.version for item in plan.planned] == ["002"]
    assert plan_up(chain(ONE, TWO), applied(ONE, TWO)).planned == ()


def test_a_changed_applied_file_refuses_the_whole_plan() -> None:
    edited = sql("001_a.sql", up="CREATE TABLE t (id bigint);")
    with pytest.raises(ChecksumMismatchError, match=r"001_a\.sql checksum mismatch"):
        plan_up(chain(edited, TWO), applied(ONE))


def test_a_file_merged_below_applied_ones_is_refused() -> None:
    with pytest.raises(MigrationLayoutError, match=r"002_b\.sql sits below migrations"):
        plan_up(chain(ONE, TWO, THREE), DatabaseState(("003",), applied(ONE, THREE).history))


def test_hand_marks_at_the_front_are_stamped_and_one_behind_a_gap_is_refused() -> None:
    mark = history.HistoryRow(9, "002", None, None, None, WHEN, None, "dba", history.MANUAL)
    state = applied(ONE)
    plan = plan_up(chain(ONE, TWO, THREE), DatabaseState(state.heads, {**state.history,
                                                                       "002": mark}))
    assert plan.marked == ("002",) and [item.version for item in plan.planned] == ["002", "003"]
    gap = DatabaseState(state.heads, {**state.history, "003": mark})
    with pytest.raises(MigrationLayoutError, match=r"003_c\.sql is marked applied by hand"):
        plan_up(chain(ONE, TWO, THREE), gap)


def test_a_migration_with_an_empty_up_section_is_refused() -> None:
    with pytest.raises(MigrationError, match="has no SQL to run"):
        plan_up(chain(ONE, sql("002_b.sql", up="-- nothing yet")), applied(ONE))


def test_downgrade_plans_newest_first_and_names_the_target() -> None:
    report = planning.reconcile(chain(ONE, TWO, THREE), applied(ONE, TWO, THREE))
    planned, target = planning.plan_downgrade(report, 2, folder=FOLDER)
    assert [item.version for item in planned] == ["003", "002"] and target == "001"
    assert planning.plan_downgrade(report, 3, folder=FOLDER)[1] == "base"
    assert planned[0].sql == "DROP TABLE t;"


def test_downgrade_refusals() -> None:
    with pytest.raises(MigrationError, match="Nothing to roll back"):
        planning.plan_downgrade(planning.reconcile(chain(ONE), applied()), 1, folder=FOLDER)
    report = planning.reconcile(chain(ONE, TWO), applied(ONE, TWO))
    with pytest.raises(UsageError, match="more than the 2 applied"):
        planning.plan_downgrade(report, 3, folder=FOLDER)
    one_way = sql("002_b.sql", down=None)
    report = planning.reconcile(chain(ONE, one_way), applied(ONE, one_way))
    with pytest.raises(IrreversibleMigrationError, match=r"002_b\.sql has no down section"):
        planning.plan_downgrade(report, 1, folder=FOLDER)


def test_find_row_accepts_a_number_a_stem_or_a_path() -> None:
    report = planning.reconcile(chain(ONE, TWO), applied(ONE))
    for given in ("002", "2", "002_b", "migrations/002_b.sql"):
        assert planning.find_row(report, given, FOLDER).version == "002"
    with pytest.raises(UsageError, match="No migration '9'"):
        planning.find_row(report, "9", FOLDER)


def test_mark_only_the_next_pending_migration_and_move_alembic_version() -> None:
    scripts = chain(ONE, TWO, THREE)
    row, entry, move = planning.plan_mark(scripts, applied(ONE), "2", folder=FOLDER,
                                          reason="done by hand")
    assert (row.state, entry.action, entry.note, move) == (
        PENDING, history.MARKED_APPLIED, "done by hand", ("001", "002"))
    with pytest.raises(MigrationLayoutError, match=r"while 002_b\.sql before it is pending"):
        planning.plan_mark(scripts, applied(ONE), "003", folder=FOLDER)
    with pytest.raises(MigrationError, match=r"001_a\.sql is already applied"):
        planning.plan_mark(scripts, applied(ONE), "001", folder=FOLDER)


def test_repair_accepts_modified_files_only() -> None:
    edited = sql("001_a.sql", up="CREATE TABLE t (id bigint);")
    report = planning.reconcile(chain(edited, TWO), applied(ONE, TWO))
    [(row, entry)] = planning.plan_repair(report, None, folder=FOLDER, reason="typo")
    assert row.state == MODIFIED and entry.action == history.REPAIRED
    assert entry.checksum == edited.checksum
    assert entry.note == f"previous checksum {ONE.checksum}; typo"
    with pytest.raises(MigrationError, match=r"002_b\.sql is not modified"):
        planning.plan_repair(report, "002", folder=FOLDER)
