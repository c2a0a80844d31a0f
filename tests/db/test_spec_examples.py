"""Every SQL example of the user's spec, applied for real through `fraiseql migrate`."""

from __future__ import annotations

import re

from conftest import Project
from scenarios import (
    SPEC_001,
    SPEC_005,
    SPEC_010,
    SPEC_015,
    SPEC_020,
    SPEC_030,
    SPEC_035_CONCURRENTLY,
    SPEC_040,
    SPEC_050,
    SPEC_060,
    SPEC_PROFILE,
)

USERS = (
    "INSERT INTO tb_user (email, username, full_name, created_at) VALUES "
    "('a@x.org', 'a', 'A', now() - interval '2 days'), ('b@x.org', 'b', 'B', now());"
    "INSERT INTO tb_post (title, content, author_id, published) "
    "SELECT 't', 'c', id, username = 'a' FROM tb_user"
)


def test_quick_start_001_then_status(project: Project) -> None:
    project.write("001_initial_schema.sql", SPEC_001)
    result = project.cli("up")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "✓ Running migration: 001_initial_schema.sql\n✓ Migration completed successfully\n"
    )
    assert {"tb_user", "tb_post", "alembic_version", "fraiseql_migrations"} <= project.tables()
    status = project.cli("status")
    assert re.fullmatch(
        r"Migration Status:\n  ✓ 001_initial_schema\.sql \(applied \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\)\n",
        status.output,
    )


def test_all_spec_examples_apply_in_order(project: Project) -> None:
    project.write("001_initial_schema.sql", SPEC_001)
    assert project.cli("up").exit_code == 0
    project.query(USERS)
    project.write("003_add_user_profiles.sql", SPEC_PROFILE)
    project.write("005_add_email_verification.sql", SPEC_005)
    project.write("010_add_post_categories.sql", SPEC_010)
    project.write("015_make_email_required.sql", SPEC_015)
    project.write("020_add_comments_cqrs.sql", SPEC_020)
    project.write("030_update_post_status.sql", SPEC_030)
    project.write("035_index_posts_by_date.sql", SPEC_035_CONCURRENTLY)
    project.write("050_migrate_user_preferences.sql", SPEC_050)
    result = project.cli("up")
    assert result.exit_code == 0, result.output
    for name in ("003", "005", "010", "015", "020", "030", "035", "050"):
        assert f"✓ Running migration: {name}_" in result.output
    assert "NOTICE: Migrated 1000 users" in result.output
    assert "wrapped in BEGIN; ... COMMIT;" in result.output
    assert project.version() == ["050"]
    assert {"tb_user_profile", "tb_category", "tb_comment", "tv_comment", "sync_history",
            "tb_user_preferences"} <= project.tables()
    assert project.query("SELECT count(*) FROM tb_user_profile") == [(1,)]
    assert project.query("SELECT count(*) FROM tb_user_preferences") == [(2,)]
    assert sorted(project.query("SELECT status FROM tb_post")) == [("draft",), ("published",)]
    assert project.query(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = 'idx_post_created'"
    ) == [(True,)]
    # the spec's `-- Rollback:` block serves as 010's down section
    project.write("050_migrate_user_preferences.sql", SPEC_050 + "-- migrate:down\n"
                  "DROP TABLE tb_user_preferences;\n")


def test_040_failure_midway_keeps_nothing_and_names_file_line_statement(project: Project) -> None:
    project.write("001_initial_schema.sql", SPEC_001)
    project.write("040_multiple_operations.sql", SPEC_040)
    result = project.cli("up")
    assert result.exit_code == 1
    assert "✓ Running migration: 001_initial_schema.sql" in result.output
    assert "✓ Running migration: 040_multiple_operations.sql" in result.output
    error = result.output.strip().splitlines()[-1]
    assert error == (
        "Error: Migration 040_multiple_operations.sql failed at line 5, column 47: "
        'type "invalid_type" does not exist [SQLSTATE 42704] in statement '
        "`ALTER TABLE tb_post ADD COLUMN invalid_column INVALID_TYPE`. The migration was "
        "rolled back; fix the file and run the command again."
    )
    # 001 stays applied; nothing of 040 remains
    assert project.version() == ["001"]
    columns = {row[0] for row in project.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'tb_user'")}
    assert "phone" not in columns
    assert project.query("SELECT to_regclass('idx_user_phone')") == [(None,)]
    assert project.query(
        "SELECT version, action FROM fraiseql_migrations ORDER BY id") == [("001", "applied")]
    # fix the file and re-apply, as the spec says
    project.write("040_multiple_operations.sql", SPEC_040.replace("INVALID_TYPE", "TEXT"))
    again = project.cli("up")
    assert again.exit_code == 0, again.output
    assert project.version() == ["040"]


def test_060_cascade_and_rollback_comment(project: Project) -> None:
    project.write("001_initial_schema.sql", SPEC_001 + "\n-- migrate:down\nDROP TABLE tb_post;\n"
                  "DROP TABLE tb_user;\n")
    project.write("010_add_post_categories.sql", SPEC_010)
    project.write("060_add_comments_cascade.sql", SPEC_060)
    assert project.cli("up").exit_code == 0
    assert project.query(
        "SELECT confdeltype FROM pg_constraint WHERE conrelid = 'tb_comment'::regclass "
        "AND contype = 'f' ORDER BY conname") == [("n",), ("c",)]
    # 060 has no down section: refused, nothing rolled back
    refused = project.cli("down", "--force")
    assert refused.exit_code == 1
    assert "060_add_comments_cascade.sql has no down section" in refused.output
    assert "-- migrate:down" in refused.output
    assert project.version() == ["060"]
    project.write("060_add_comments_cascade.sql", SPEC_060 + "-- migrate:down\nDROP TABLE tb_comment;\n")
    # the file changed after it was applied: up refuses, down is still allowed to undo it
    rolled = project.cli("down", "--steps", "2", "--force")
    assert rolled.exit_code == 0, rolled.output
    assert "✓ Rolling back migration: 060_add_comments_cascade.sql" in rolled.output
    assert "✓ Rolling back migration: 010_add_post_categories.sql" in rolled.output
    assert project.version() == ["001"]
    assert "tb_category" not in project.tables()
