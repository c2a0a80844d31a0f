"""Every SQL example of the user's spec, applied for real through `fraiseql migrate`."""

from __future__ import annotations

import re

from conftest import Project

EXTENSION = 'CREATE EXTENSION IF NOT EXISTS "uuid-ossp";\n\n'

SPEC_001 = EXTENSION + """-- Migration 001: Initial schema

-- Users table
CREATE TABLE tb_user (
    id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
    email TEXT NOT NULL UNIQUE,
    username TEXT NOT NULL UNIQUE,
    full_name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Posts table
CREATE TABLE tb_post (
    id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
    title TEXT NOT NULL,
    content TEXT NOT NULL,
    author_id UUID NOT NULL REFERENCES tb_user(id),
    published BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);
"""

SPEC_005 = """-- Migration 005: Add email verification

ALTER TABLE tb_user ADD COLUMN email_verified BOOLEAN DEFAULT FALSE;
CREATE INDEX idx_user_email_verified ON tb_user(email_verified);
"""

SPEC_010 = """-- Migration 010: Add post categories

CREATE TABLE tb_category (
    id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
    name TEXT NOT NULL UNIQUE
);

-- Rollback:
-- DROP TABLE tb_category;
"""

SPEC_015 = """-- Migration 015: Make email required

-- First, ensure all existing users have emails
UPDATE tb_user SET email = username || '@example.com'
WHERE email IS NULL;

-- Now make it NOT NULL
ALTER TABLE tb_user ALTER COLUMN email SET NOT NULL;
"""

SPEC_020 = """-- Migration 020: Add comments with CQRS pattern

-- ============================================================================
-- COMMAND SIDE: Normalized table for writes
-- ============================================================================

CREATE TABLE tb_comment (
    id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
    post_id UUID NOT NULL REFERENCES tb_post(id) ON DELETE CASCADE,
    author_id UUID NOT NULL REFERENCES tb_user(id) ON DELETE CASCADE,
    content TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE INDEX idx_comment_post ON tb_comment(post_id);
CREATE INDEX idx_comment_author ON tb_comment(author_id);

-- ============================================================================
-- QUERY SIDE: Denormalized table for reads
-- ============================================================================

CREATE TABLE tv_comment (
    id UUID PRIMARY KEY,
    data JSONB NOT NULL,  -- Contains comment + author info
    updated_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- GIN index for fast JSONB queries
CREATE INDEX idx_tv_comment_data ON tv_comment USING GIN(data);

-- ============================================================================
-- SYNC TRACKING (optional but recommended)
-- ============================================================================

-- Track when each entity was last synced
CREATE TABLE sync_history (
    entity_type TEXT NOT NULL,
    entity_id UUID NOT NULL,
    synced_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    PRIMARY KEY (entity_type, entity_id)
);

CREATE INDEX idx_sync_history_synced ON sync_history(synced_at DESC);
"""

SPEC_030 = """-- Migration 030: Update post status

BEGIN;

ALTER TABLE tb_post ADD COLUMN status TEXT DEFAULT 'draft';
UPDATE tb_post SET status = CASE
    WHEN published THEN 'published'
    ELSE 'draft'
END;
ALTER TABLE tb_post DROP COLUMN published;

COMMIT;
"""

SPEC_035_CONCURRENTLY = """-- Migration 035: Index posts by date

-- ✅ Better: Create index concurrently (doesn't lock)
CREATE INDEX CONCURRENTLY idx_post_created ON tb_post(created_at);
"""

SPEC_040 = """-- Migration 040: Multiple operations

ALTER TABLE tb_user ADD COLUMN phone TEXT;  -- ✓ Applied
CREATE INDEX idx_user_phone ON tb_user(phone);  -- ✓ Applied
ALTER TABLE tb_post ADD COLUMN invalid_column INVALID_TYPE;  -- ✗ Failed
"""

SPEC_050 = """-- Migration 050: Migrate user preferences

-- Create new table
CREATE TABLE tb_user_preferences (
    user_id UUID PRIMARY KEY REFERENCES tb_user(id),
    preferences JSONB NOT NULL DEFAULT '{}'
);

-- Migrate data in batches (for large datasets)
DO $$
DECLARE
    batch_size INTEGER := 1000;
    offset_val INTEGER := 0;
    rows_affected INTEGER;
BEGIN
    LOOP
        INSERT INTO tb_user_preferences (user_id, preferences)
        SELECT id, jsonb_build_object('theme', 'light', 'language', 'en')
        FROM tb_user
        ORDER BY id
        LIMIT batch_size OFFSET offset_val;

        GET DIAGNOSTICS rows_affected = ROW_COUNT;
        EXIT WHEN rows_affected = 0;

        offset_val := offset_val + batch_size;
        RAISE NOTICE 'Migrated % users', offset_val;
    END LOOP;
END $$;
"""

SPEC_060 = """-- Migration 060: Add comments with CASCADE

CREATE TABLE tb_comment (
    id UUID PRIMARY KEY,
    post_id UUID NOT NULL REFERENCES tb_post(id) ON DELETE CASCADE,
    -- ☝️ When post deleted, comments are automatically deleted
    author_id UUID NOT NULL REFERENCES tb_user(id) ON DELETE SET NULL
    -- ☝️ When user deleted, comments remain but author_id becomes NULL
);
"""

SPEC_PROFILE = """-- Migration 003: Add user profiles
--
-- Author: Your Name
-- Date: 2024-01-15
--
-- This migration adds support for user profiles with bio and avatar.

-- Create table
CREATE TABLE tb_user_profile (
    user_id UUID PRIMARY KEY REFERENCES tb_user(id) ON DELETE CASCADE,
    bio TEXT,
    avatar_url TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

-- Add index
CREATE INDEX idx_user_profile_user ON tb_user_profile(user_id);

-- Add initial data (if needed)
INSERT INTO tb_user_profile (user_id, bio)
SELECT id, 'Default bio'
FROM tb_user
WHERE created_at < NOW() - INTERVAL '1 day';
"""

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
