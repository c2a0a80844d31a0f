"""`fraiseql migrate up --rehearse`: run pending migrations in one transaction, roll back."""

from __future__ import annotations

import json
import threading
from typing import Any

import psycopg2
import pytest
from conftest import Project
from scenarios import UP_DOWN

from fraiseql_alembic import api, settings
from fraiseql_alembic.engine.cancel import CancelToken, MigrationInterrupted
from fraiseql_alembic.engine.locking import LOCK_KEY


def snapshot(project: Project) -> tuple[Any, ...]:
    """Everything a rehearsal must leave as it was."""
    tables = project.tables()
    history = (
        project.query("SELECT version, action, checksum FROM fraiseql_migrations ORDER BY id")
        if "fraiseql_migrations" in tables else []
    )
    columns = project.query(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' ORDER BY 1, 2"
    )
    return tables, project.version(), history, columns


def test_rehearsal_reports_each_migration_and_writes_nothing(project: Project) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="tb_user"))
    assert project.cli("up").exit_code == 0
    project.write("002_add_comments.sql", UP_DOWN.format(t="tb_comment"))
    project.write("003_add_bio.sql", "-- migrate:up\nALTER TABLE tb_comment ADD COLUMN c int;\n"
                  "\nALTER TABLE tb_nope ADD COLUMN bio text;\n")
    project.write("004_later.sql", UP_DOWN.format(t="tb_later"))
    before = snapshot(project)

    result = project.cli("up", "--rehearse")

    assert result.exit_code == 1, result.output
    assert result.output == (
        "✓ Would apply: 002_add_comments.sql\n"
        "✗ Would fail: 003_add_bio.sql:4:1: relation \"tb_nope\" does not exist "
        "[SQLSTATE 42P01] in statement `ALTER TABLE tb_nope ADD COLUMN bio text`\n"
        "○ Not reached: 004_later.sql\n"
        "Rehearsal: 1 of 3 migrations would apply; 003_add_bio.sql would fail; "
        "nothing was written.\n"
    )
    assert snapshot(project) == before


def test_rehearsal_of_a_good_plan_exits_0_and_a_fresh_database_stays_empty(
    project: Project,
) -> None:
    project.write("001_initial_schema.sql", UP_DOWN.format(t="tb_user"))
    project.write("002_data.sql", "-- migrate:up\nINSERT INTO tb_user VALUES (1);\n"
                  "DO $$ BEGIN RAISE NOTICE 'rows: %', (SELECT count(*) FROM tb_user); END $$;\n")

    result = project.cli("up", "--rehearse")

    assert result.exit_code == 0, result.output
    assert result.output == (
        "✓ Would apply: 001_initial_schema.sql\n"
        "  NOTICE: rows: 1\n"
        "✓ Would apply: 002_data.sql\n"
        "Rehearsal: 2 of 2 migrations would apply; nothing was written.\n"
    )
    assert project.tables() == set()
    assert project.cli("up").exit_code == 0  # and the real run does what was rehearsed
    assert project.query("SELECT id FROM tb_user") == [(1,)]
    assert project.cli("up", "--rehearse").output == "Already up to date; nothing to rehearse\n"


def test_rehearsal_stops_at_a_migration_that_cannot_run_in_a_transaction(
    project: Project,
) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    project.write("002_index.sql", "-- migrate:up\n-- big table\nCREATE INDEX CONCURRENTLY ia "
                  "ON a (id);\n")
    project.write("003_b.sql", UP_DOWN.format(t="b"))
    project.write("004_vacuum.sql", "-- migrate:up transaction:false\nVACUUM a;\n")

    result = project.cli("up", "--rehearse")

    assert result.exit_code == 0, result.output
    assert result.output == (
        "✓ Would apply: 001_a.sql\n"
        "○ Not rehearsed: 002_index.sql: line 3: `CREATE INDEX CONCURRENTLY ia` cannot run "
        "inside a transaction, so it cannot be rehearsed\n"
        "○ Not rehearsed: 003_b.sql\n"
        "○ Not rehearsed: 004_vacuum.sql\n"
        "Rehearsal: 1 of 4 migrations would apply; 3 not rehearsed, from 002_index.sql on "
        "(run them with `fraiseql migrate up`); nothing was written.\n"
    )
    assert project.tables() == set()

    project.write("002_index.sql", "-- migrate:up transaction:false\nCREATE TABLE x (id int);\n")
    output = project.cli("up", "--rehearse", "--steps", "2").output
    assert "○ Not rehearsed: 002_index.sql: its up marker (line 1) says transaction:false" in output


def test_transaction_control_in_a_migration_is_a_located_failure_and_commits_nothing(
    project: Project,
) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    project.write("002_commits.sql", "-- migrate:up\nINSERT INTO a VALUES (1);\nCOMMIT;\n"
                  "INSERT INTO a VALUES (2);\n")

    result = project.cli("up", "--rehearse")

    assert result.exit_code == 1
    assert "✗ Would fail: 002_commits.sql:3: transaction control `COMMIT` inside a migration" \
        in result.output
    assert project.tables() == set()


def test_a_commit_that_slips_past_the_splitter_stops_the_rehearsal(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Last line of defence: if a statement ever ended the transaction, say so loudly."""
    from fraiseql_alembic.sql import statements as splitter

    monkeypatch.setattr(splitter, "_unwrap_transaction",
                        lambda found, _filename: splitter.SplitSection(found, False))
    project.write("001_a.sql", "-- migrate:up\nCREATE TABLE a (id int);\nCOMMIT;\n")
    project.write("002_b.sql", UP_DOWN.format(t="b"))

    result = project.cli("up", "--rehearse")

    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "Error: Rehearsal stopped: 001_a.sql ended the rehearsal's transaction, so what ran "
        "before it may have been committed; check the database with `fraiseql migrate "
        "status` and report this as a bug")
    assert "b" not in project.tables()  # nothing after it ran


def test_rehearsal_options(project: Project) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    project.write("002_b.sql", UP_DOWN.format(t="b"))

    for combination in (["--rehearse", "--dry-run"], ["--backup", "--dry-run"],
                        ["--rehearse", "--backup"]):
        result = project.cli("up", *combination)
        assert result.exit_code == 2, combination
        assert result.output.startswith("Error: "), result.output
    assert project.cli("up", "--rehearse", "--steps", "1").output == (
        "✓ Would apply: 001_a.sql\n"
        "Rehearsal: 1 of 1 migration would apply; nothing was written.\n"
    )

    result = project.cli("up", "--rehearse", "--json")
    events = [json.loads(line) for line in result.output.splitlines()]
    assert [(e["event"], e.get("file"), e.get("outcome")) for e in events[:2]] == [
        ("rehearsal", "001_a.sql", "would-apply"), ("rehearsal", "002_b.sql", "would-apply")]
    assert events[-1] == {
        "event": "summary", "rehearsal": True, "would_fail": False,
        "outcomes": [
            {"version": "001", "file": "001_a.sql", "outcome": "would-apply", "detail": None},
            {"version": "002", "file": "002_b.sql", "outcome": "would-apply", "detail": None},
        ],
    }
    assert project.tables() == set()


def test_rehearsal_refuses_a_changed_applied_file(project: Project) -> None:
    path = project.write("001_a.sql", UP_DOWN.format(t="a"))
    project.cli("up")
    path.write_text(UP_DOWN.format(t="a2"), encoding="utf-8")
    project.write("002_b.sql", UP_DOWN.format(t="b"))

    result = project.cli("up", "--rehearse")

    assert result.exit_code == 1
    assert result.output.startswith("Error: Migration 001_a.sql checksum mismatch")
    assert "b" not in project.tables()


def test_rehearsal_records_hand_marked_migrations_as_up_would(project: Project) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    project.cli("up")
    project.write("002_by_hand.sql", UP_DOWN.format(t="by_hand"))
    project.write("003_c.sql", UP_DOWN.format(t="c"))
    project.query("CREATE TABLE by_hand (id int)")
    project.query("INSERT INTO fraiseql_migrations (version, applied_at) "
                  "VALUES ('002_by_hand', NOW())")  # the spec's recipe
    before = snapshot(project)

    result = project.cli("up", "--rehearse")

    assert result.output == (
        "✓ Would record as applied (marked by hand): 002_by_hand.sql\n"
        "✓ Would apply: 003_c.sql\n"
        "Rehearsal: 1 of 2 migrations would apply; 1 would be recorded as applied (marked by "
        "hand); nothing was written.\n"
    )
    assert snapshot(project) == before


def test_rehearsal_holds_the_migration_lock(project: Project) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    holder = psycopg2.connect(project.database_url)
    holder.autocommit = True
    try:
        holder.cursor().execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        result = project.cli("up", "--rehearse", "--lock-wait", "0")
    finally:
        holder.close()
    assert result.exit_code == 1
    assert "Gave up after waiting 0s for the migration lock" in result.output


def test_rehearsal_uses_lock_timeout_and_the_files_own_timeouts(project: Project) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    project.cli("up")
    project.write("002_alter.sql", "-- migrate:up\nALTER TABLE a ADD COLUMN b int;\n")
    blocker = psycopg2.connect(project.database_url)
    try:
        blocker.cursor().execute("LOCK TABLE a IN ACCESS SHARE MODE")
        result = project.cli("up", "--rehearse", "--lock-timeout", "100ms")
        assert result.exit_code == 1
        assert "✗ Would fail: 002_alter.sql:2:1: canceling statement due to lock timeout " \
            "[SQLSTATE 55P03]" in result.output

        project.write("002_alter.sql", "-- migrate:up statement_timeout:100ms\n"
                      "SELECT pg_sleep(2);\n")
        result = project.cli("up", "--rehearse")
        assert result.exit_code == 1
        assert "canceling statement due to statement timeout [SQLSTATE 57014]" in result.output
    finally:
        blocker.close()
    assert project.query("SELECT count(*) FROM information_schema.columns "
                         "WHERE table_name = 'a'") == [(1,)]


def test_cancelling_a_rehearsal_writes_nothing(project: Project) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    project.write("002_slow.sql", "-- migrate:up\nSELECT pg_sleep(30);\n")
    token = CancelToken()
    stop = threading.Event()

    def cancel_when_sleeping() -> None:  # the event, not a guess at how long start-up takes
        while not stop.wait(0.05):
            if project.query("SELECT count(*) FROM pg_stat_activity "
                             "WHERE wait_event = 'PgSleep' AND datname = current_database()")[0][0]:
                token.cancel("SIGINT")
                return

    watcher = threading.Thread(target=cancel_when_sleeping)
    watcher.start()
    try:
        with pytest.raises(MigrationInterrupted, match=r"Stopped by SIGINT in 002_slow\.sql"):
            api.rehearse(settings.resolve(project.migrations, project.database_url),
                         cancel=token)
    finally:
        stop.set()
        watcher.join()
    assert project.tables() == set()


def test_a_python_revision_is_not_rehearsed_and_the_alembic_path_backs_up(
    project: Project,
) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    (project.migrations / "002_add_tags.py").write_text(
        '"""Add tags."""\nfrom alembic import op\n\nrevision = "002"\ndown_revision = "001"\n\n'
        "def upgrade() -> None:\n    op.execute('CREATE TABLE tags (id int)')\n\n"
        "def downgrade() -> None:\n    op.execute('DROP TABLE tags')\n"
    )
    project.write("003_c.sql", UP_DOWN.format(t="c"))

    result = project.cli("up", "--rehearse")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:3] == [
        "✓ Would apply: 001_a.sql",
        "○ Not rehearsed: 002_add_tags.py: a Python revision: only SQL files can be rehearsed",
        "○ Not rehearsed: 003_c.sql",
    ]
    assert project.tables() == set()

    result = project.cli("up", "--backup", "before.dump")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("✓ Backup: before.dump (")
    assert "✓ Running migration: 002_add_tags.py" in result.output
    assert {"a", "tags", "c"} <= project.tables()


def test_deferred_constraints_are_checked_as_commit_would(project: Project) -> None:
    project.write("001_fk.sql", "CREATE TABLE p (id int PRIMARY KEY);\n"
                  "CREATE TABLE c (pid int REFERENCES p DEFERRABLE INITIALLY DEFERRED);\n")
    project.cli("up")
    project.write("002_bad.sql", "INSERT INTO c VALUES (999);\n")
    result = project.cli("up", "--rehearse")
    assert result.exit_code == 1
    assert "✗ Would fail: 002_bad.sql: at COMMIT: insert or update on table \"c\"" in result.output
    assert project.query("SELECT count(*) FROM c") == [(0,)]


def test_what_follows_a_new_enum_value_is_not_rehearsed(project: Project) -> None:
    project.write("001_type.sql", "CREATE TYPE mood AS ENUM ('sad');\n"
                  "CREATE TABLE feel (m mood);\n")
    project.cli("up")
    project.write("002_add.sql", "ALTER TYPE mood ADD VALUE 'happy';\n")
    project.write("003_use.sql", "INSERT INTO feel VALUES ('happy');\n")
    result = project.cli("up", "--rehearse")
    assert result.exit_code == 0, result.output
    assert "✓ Would apply: 002_add.sql" in result.output
    assert "Not rehearsed: 003_use.sql: it comes after 002_add.sql, which adds an enum value" \
        in result.output
    assert project.cli("up").exit_code == 0  # and up applies both


def test_each_rehearsed_migration_starts_from_a_reset_session(project: Project) -> None:
    project.write("001_dump.sql", "SELECT pg_catalog.set_config('search_path', '', false);\n"
                  "CREATE TABLE public.t (id int);\n")
    project.write("002_plain.sql", "CREATE TABLE u (id int);\n")  # needs search_path back
    result = project.cli("up", "--rehearse")
    assert result.exit_code == 0, result.output
    assert "✓ Would apply: 002_plain.sql" in result.output
    assert project.tables() == set()
