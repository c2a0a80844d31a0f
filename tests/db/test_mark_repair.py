"""`fraiseql migrate mark-applied` and `repair`: change the record, never the schema."""

from __future__ import annotations

import getpass
import json
from typing import Any

import psycopg2
from conftest import Project
from scenarios import UP_DOWN

from fraiseql_alembic import api, settings
from fraiseql_alembic.engine.locking import LOCK_KEY
from fraiseql_alembic.sql.parse import checksum_of


def four_files(project: Project) -> None:
    for number, table in enumerate(["a", "b", "c", "d"], start=1):
        project.write(f"00{number}_add_{table}.sql", UP_DOWN.format(t=table))


def history(project: Project) -> list[tuple[Any, ...]]:
    return project.query(
        "SELECT version, action, filename, checksum, up_checksum, applied_by, note "
        "FROM fraiseql_migrations ORDER BY id"
    )


def status_json(project: Project) -> dict[str, dict[str, Any]]:
    result = project.cli("status", "--json")
    assert result.exit_code == 0, result.output
    return {row["version"]: row for row in json.loads(result.output)["migrations"]}


# ---------------------------------------------------------------------------
# mark-applied


def test_mark_applied_records_without_running_and_up_continues(project: Project) -> None:
    four_files(project)
    assert project.cli("up", "--steps", "1").exit_code == 0
    project.query("CREATE TABLE b (id int)")  # 002 applied by hand
    result = project.cli("mark-applied", "002", "--reason", "applied by hand in incident 42")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "✓ Marked 002_add_b.sql as applied without running it (recorded in fraiseql_migrations)\n"
    )
    assert project.version() == ["002"]
    version, action, filename, checksum, up_checksum, applied_by, note = history(project)[-1]
    text = (project.migrations / "002_add_b.sql").read_text()
    assert (version, action, filename, note) == (
        "002", "marked_applied", "002_add_b.sql", "applied by hand in incident 42")
    assert checksum == checksum_of(text) and up_checksum is not None
    assert applied_by.startswith(getpass.getuser() + "@") and applied_by.endswith(" as fraiseql")

    status = project.cli("status").output
    assert "✓ 002_add_b.sql (applied " in status
    assert "; marked applied without running it)" in status
    rows = status_json(project)
    assert rows["002"]["state"] == "applied" and rows["002"]["action"] == "marked_applied"
    assert rows["001"]["action"] == "applied"

    up = project.cli("up")  # would fail on CREATE TABLE b if 002 ran
    assert up.exit_code == 0, up.output
    assert "002" not in up.output and "✓ Running migration: 003_add_c.sql" in up.output
    assert project.version() == ["004"]


def test_mark_applied_on_a_fresh_database(project: Project) -> None:
    four_files(project)
    result = project.cli("mark-applied", "1")
    assert result.exit_code == 0, result.output
    assert project.version() == ["001"]
    assert project.tables() == {"alembic_version", "fraiseql_migrations"}  # `a` never made
    assert history(project)[0][:2] == ("001", "marked_applied")
    assert history(project)[0][6] is None  # no --reason


def test_mark_applied_refuses_to_skip_a_pending_migration(project: Project) -> None:
    four_files(project)
    project.cli("up", "--steps", "1")
    before = history(project)
    result = project.cli("mark-applied", "003")
    assert result.exit_code == 1
    assert result.output == (
        "Error: Cannot mark 003_add_c.sql applied while 002_add_b.sql before it is pending: "
        "the chain cannot skip it. Apply it (`fraiseql migrate up --steps 1`) or mark it first "
        "(`fraiseql migrate mark-applied 002`). Nothing was recorded\n"
    )
    assert history(project) == before and project.version() == ["001"]
    # marking one at a time gets there
    assert project.cli("mark-applied", "002").exit_code == 0
    assert project.cli("mark-applied", "003").exit_code == 0
    assert project.version() == ["003"]


def test_mark_applied_version_forms_and_errors(project: Project) -> None:
    four_files(project)
    project.cli("up", "--steps", "1")
    assert project.cli("mark-applied", "migrations/002_add_b.sql").exit_code == 0
    assert project.cli("mark-applied", "003_add_c").exit_code == 0
    assert project.version() == ["003"]

    unknown = project.cli("mark-applied", "9")
    assert unknown.exit_code == 2
    assert unknown.output == (
        "Error: No migration '9' in migrations or in the database's history; give a version "
        "such as 003 (`fraiseql migrate status` lists them)\n"
    )
    applied = project.cli("mark-applied", "001")
    assert applied.exit_code == 1
    assert applied.output.startswith("Error: 001_add_a.sql is already applied on ")
    assert applied.output.endswith("; nothing to mark (`fraiseql migrate status` shows every migration)\n")
    project.cli("up")
    (project.migrations / "004_add_d.sql").unlink()
    missing = project.cli("mark-applied", "004")
    assert missing.exit_code == 1
    assert "004_add_d.sql is already applied on" in missing.output
    assert "; its file is missing; nothing to mark" in missing.output


def test_mark_applied_refuses_while_an_applied_file_changed(project: Project) -> None:
    four_files(project)
    project.cli("up", "--steps", "1")
    project.write("001_add_a.sql", UP_DOWN.format(t="a_changed"))
    result = project.cli("mark-applied", "002")
    assert result.exit_code == 1
    assert "Migration 001_add_a.sql checksum mismatch" in result.output
    assert "accept it with `fraiseql migrate repair 001`" in result.output
    assert project.version() == ["001"]


def test_mark_applied_records_a_file_merged_late(project: Project) -> None:
    project.write("001_add_a.sql", UP_DOWN.format(t="a"))
    project.write("003_add_c.sql", UP_DOWN.format(t="c"))
    project.cli("up")
    project.write("002_add_b.sql", UP_DOWN.format(t="b"))  # merged after 003 was applied
    refused = project.cli("up")
    assert refused.exit_code == 1
    assert "record it with `fraiseql migrate mark-applied 002`" in refused.output
    project.query("CREATE TABLE b (id int)")
    result = project.cli("mark-applied", "002", "--reason", "was applied from the branch")
    assert result.exit_code == 0, result.output
    assert project.version() == ["003"]  # alembic_version already covered it
    assert "✓ 002_add_b.sql (applied " in project.cli("status").output
    assert project.cli("up").output == "Already up to date\n"


def test_mark_applied_uses_up_a_hand_made_mark(project: Project) -> None:
    four_files(project)
    project.cli("up", "--steps", "1")
    project.query("INSERT INTO fraiseql_migrations (version, applied_at) VALUES ('002_add_b', NOW())")
    assert project.cli("mark-applied", "002").exit_code == 0
    assert "marked applied by hand" not in project.cli("status").output
    assert [row[:2] for row in history(project)][-2:] == [("002_add_b", "manual"), ("002", "marked_applied")]


def test_mark_applied_adds_the_note_column_to_an_old_history_table(project: Project) -> None:
    four_files(project)
    project.query(  # the table as the first pre-releases made it
        "CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY);"
        "INSERT INTO alembic_version VALUES ('001');"
        "CREATE TABLE fraiseql_migrations (id BIGSERIAL PRIMARY KEY, version TEXT NOT NULL, "
        "name TEXT, filename TEXT, checksum TEXT, applied_at TIMESTAMPTZ NOT NULL DEFAULT now(), "
        "execution_ms INTEGER, applied_by TEXT DEFAULT current_user, "
        "action TEXT NOT NULL DEFAULT 'manual');"
        "INSERT INTO fraiseql_migrations (version, filename, action) VALUES ('001', '001_add_a.sql', 'applied')"
    )
    project.query("CREATE TABLE a (id int)")
    assert "✓ 001_add_a.sql (applied " in project.cli("status").output  # reads without note
    result = project.cli("mark-applied", "002", "--reason", "by hand")
    assert result.exit_code == 0, result.output
    assert history(project)[-1][1:2] + history(project)[-1][6:] == ("marked_applied", "by hand")


def test_mark_applied_waits_for_the_migration_lock(project: Project) -> None:
    four_files(project)
    holder = psycopg2.connect(project.database_url, application_name="someone else's deploy")
    holder.autocommit = True
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        result = project.cli("mark-applied", "001", "--lock-wait", "1")
        assert result.exit_code == 1
        assert "Waiting up to 1s for the migration lock held by pid" in result.output
        assert "Gave up after waiting 1s for the migration lock" in result.output
        repair = project.cli("repair", "--lock-wait", "0.5")
        assert repair.exit_code == 1 and "Gave up after waiting" in repair.output
    finally:
        holder.close()
    assert project.version() == []
    assert project.cli("mark-applied", "001").exit_code == 0


# ---------------------------------------------------------------------------
# repair


def test_repair_accepts_the_new_checksum_and_keeps_applied_at(project: Project) -> None:
    four_files(project)
    project.cli("up", "--steps", "2")
    applied_at = status_json(project)["002"]["applied_at"]
    project.write("002_add_b.sql", "-- creates b\n" + UP_DOWN.format(t="b").replace(
        "(id int)", "(id int)  -- the id"))
    refused = project.cli("up")
    assert refused.exit_code == 1
    assert refused.output.endswith(
        "if the edit is harmless (e.g. a comment), accept it with `fraiseql migrate repair 002`\n")

    result = project.cli("repair", "002", "--reason", "comment only")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("✓ Repaired 002_add_b.sql: accepted its current checksum (was ")
    assert result.output.endswith(
        "1 migration repaired; `fraiseql migrate up` no longer refuses them\n")
    old_checksum = history(project)[1][3]
    version, action, filename, checksum, up_checksum, applied_by, note = history(project)[-1]
    assert (version, action, filename) == ("002", "repaired", "002_add_b.sql")
    assert checksum == checksum_of((project.migrations / "002_add_b.sql").read_text())
    assert checksum != old_checksum and up_checksum is not None
    assert note == f"previous checksum {old_checksum}; comment only"
    assert applied_by.endswith(" as fraiseql")

    row = status_json(project)["002"]
    assert row["state"] == "applied" and row["applied_at"] == applied_at
    assert row["action"] == "applied" and row["repaired_at"] is not None
    assert row["recorded_checksum"] == checksum
    assert "; checksum accepted by repair " in project.cli("status").output
    up = project.cli("up")
    assert up.exit_code == 0, up.output
    assert project.version() == ["004"]


def test_repair_all_modified_and_nothing_to_repair(project: Project) -> None:
    four_files(project)
    project.cli("up", "--steps", "3")
    assert project.cli("repair").output == (
        "Nothing to repair: every applied migration file matches its recorded checksum\n")
    project.write("001_add_a.sql", UP_DOWN.format(t="a").replace("(id int)", "(id int) "))
    project.write("003_add_c.sql", UP_DOWN.format(t="c").replace("(id int)", "(id  int)"))
    result = project.cli("repair")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("✓ Repaired 001_add_a.sql: ")
    assert lines[1].startswith("✓ Repaired 003_add_c.sql: ")
    assert lines[2] == "2 migrations repaired; `fraiseql migrate up` no longer refuses them"
    assert [row[:2] for row in history(project)][-2:] == [("001", "repaired"), ("003", "repaired")]
    assert history(project)[-1][6].startswith("previous checksum ")
    assert project.cli("status", "--exit-code").exit_code == 3  # pending only, consistent
    # a second edit is a change again, and can be repaired again
    project.write("003_add_c.sql", UP_DOWN.format(t="c").replace("(id int)", "(id   int)"))
    assert project.cli("status", "--exit-code").exit_code == 4
    assert project.cli("repair", "3").exit_code == 0
    assert project.cli("status", "--exit-code").exit_code == 3


def test_repair_errors(project: Project) -> None:
    four_files(project)
    project.cli("up", "--steps", "1")
    not_modified = project.cli("repair", "001")
    assert not_modified.exit_code == 1
    assert not_modified.output.startswith("Error: 001_add_a.sql is not modified (applied on ")
    assert "and unchanged since); nothing to repair." in not_modified.output
    pending = project.cli("repair", "002")
    assert pending.exit_code == 1
    assert pending.output.startswith("Error: 002_add_b.sql is not modified (it is pending)")
    assert project.cli("repair", "042").exit_code == 2
    assert [row[1] for row in history(project)] == ["applied"]


def test_repair_then_rollback_and_reapply(project: Project) -> None:
    four_files(project)
    project.cli("up", "--steps", "2")
    project.write("002_add_b.sql", UP_DOWN.format(t="b").replace("(id int)", "(id int, x int)"))
    project.cli("repair")
    assert project.cli("down", "--force").exit_code == 0
    assert project.cli("status", "--exit-code").exit_code == 3
    assert project.cli("up", "--steps", "1").exit_code == 0
    row = status_json(project)["002"]
    assert row["state"] == "applied" and row["repaired_at"] is None
    assert project.query("SELECT count(*) FROM information_schema.columns "
                         "WHERE table_name = 'b' AND column_name = 'x'") == [(1,)]


def test_python_api(project: Project) -> None:
    four_files(project)
    config = settings.resolve(project.migrations, project.database_url)
    assert api.mark_applied(config, "001", reason="api").filename == "001_add_a.sql"
    assert api.repair(config) == ()
    project.write("001_add_a.sql", UP_DOWN.format(t="a").replace("(id int)", "(id int) "))
    (repaired,) = api.repair(config, "001")
    assert repaired.version == "001" and repaired.previous_checksum == history(project)[0][3]


def test_marking_a_partly_applied_file_clears_its_resume_point(project: Project) -> None:
    project.write("001_add_a.sql", UP_DOWN.format(t="a"))
    project.write("002_split.sql", (
        "-- migrate:up\n"
        "CREATE TABLE s (id int);\n"
        "INSERT INTO s VALUES (1), (1);\n"
        "CREATE UNIQUE INDEX CONCURRENTLY idx_s ON s (id);\n"
        "-- migrate:down\nDROP TABLE s;\n"
    ))
    assert project.cli("up").exit_code == 1
    assert "◐ 002_split.sql (PARTIALLY APPLIED" in project.cli("status").output
    project.query("DROP INDEX idx_s; DELETE FROM s; CREATE UNIQUE INDEX idx_s ON s (id)")  # by hand
    result = project.cli("mark-applied", "002", "--reason", "finished by hand")
    assert result.exit_code == 0, result.output
    assert project.query("SELECT count(*) FROM fraiseql_migration_progress") == [(0,)]
    status = project.cli("status").output
    assert "◐" not in status and "✓ 002_split.sql (applied " in status
    assert project.version() == ["002"]
