"""`fraiseql migrate create NAME --cqrs ENTITY [--sync-history]`: the spec's CQRS template."""

from __future__ import annotations

import pytest
from conftest import Project

from fraiseql_alembic.sql.names import parse_filename
from fraiseql_alembic.sql.parse import parse_migration
from fraiseql_alembic.sql.statements import split_statements


def statements(path_text: str, filename: str, section: str) -> list[str]:
    name = parse_filename(filename)
    assert name is not None
    migration = parse_migration(name, path_text)
    chosen = migration.up if section == "up" else migration.down
    assert chosen is not None
    return [s.sql for s in split_statements(migration, chosen).statements]


def test_cqrs_file_parses_into_the_expected_statements(project: Project) -> None:
    result = project.cli("create", "add_comments", "--cqrs", "comment", "--sync-history")
    assert result.exit_code == 0, result.output
    assert result.output == "✓ Created migrations/001_add_comments.sql\n"
    text = (project.migrations / "001_add_comments.sql").read_text()
    assert text.startswith("-- Migration 001: Add comments\n")
    up = statements(text, "001_add_comments.sql", "up")
    assert [s.split("(")[0].strip() for s in up] == [
        "CREATE TABLE tb_comment",
        "CREATE TABLE tv_comment",
        "CREATE INDEX idx_tv_comment_data ON tv_comment USING GIN",
        "CREATE TABLE IF NOT EXISTS sync_history",
        "CREATE INDEX IF NOT EXISTS idx_sync_history_synced ON sync_history",
    ]
    assert "DEFAULT gen_random_uuid()" in up[0] and "uuid_generate_v4" not in text
    assert "data JSONB NOT NULL" in up[1]
    down = statements(text, "001_add_comments.sql", "down")
    assert down == [
        "DELETE FROM sync_history WHERE entity_type = 'comment'",
        "DROP INDEX idx_tv_comment_data",
        "DROP TABLE tv_comment",
        "DROP TABLE tb_comment",
    ]


@pytest.mark.parametrize("extra", [(), ("--sync-history",)])
def test_cqrs_template_passes_our_own_lint(project: Project, extra: tuple[str, ...]) -> None:
    assert project.cli("create", "add_comments", "--cqrs", "comment", *extra).exit_code == 0
    assert project.cli("create", "add_posts", "--cqrs", "post", *extra).exit_code == 0
    result = project.cli("lint")
    assert result.exit_code == 0, result.output


def test_without_sync_history_there_is_no_sync_table(project: Project) -> None:
    assert project.cli("create", "add_posts", "--cqrs", "post").exit_code == 0
    text = (project.migrations / "001_add_posts.sql").read_text()
    assert "sync_history" not in text
    assert "-- migrate:down\nDROP INDEX idx_tv_post_data;\n" in text


def test_cqrs_migration_applies_rolls_back_and_applies_again(project: Project) -> None:
    project.cli("create", "add_comments", "--cqrs", "comment", "--sync-history")
    project.cli("create", "add_posts", "--cqrs", "post", "--sync-history")
    up = project.cli("up")
    assert up.exit_code == 0, up.output
    assert {"tb_comment", "tv_comment", "tb_post", "tv_post", "sync_history"} <= project.tables()
    indexes = {row[0]: row[1] for row in project.query(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'")}
    assert "USING gin (data)" in indexes["idx_tv_comment_data"]
    assert "synced_at DESC" in indexes["idx_sync_history_synced"]
    project.query(
        "INSERT INTO tb_comment DEFAULT VALUES; "
        "INSERT INTO tv_comment (id, data) SELECT id, '{\"text\": \"hi\"}' FROM tb_comment; "
        "INSERT INTO sync_history (entity_type, entity_id) "
        "SELECT 'comment', id FROM tb_comment UNION ALL SELECT 'post', gen_random_uuid()")
    assert project.query("SELECT count(*) FROM tv_comment WHERE data @> '{\"text\": \"hi\"}'") == [(1,)]

    down = project.cli("down", "--force")
    assert down.exit_code == 0, down.output
    assert "tb_post" not in project.tables() and "tv_post" not in project.tables()
    # sync_history is shared: the comment entity still uses it, only post's rows went
    assert project.query("SELECT entity_type FROM sync_history") == [("comment",)]
    down = project.cli("down", "--force")
    assert down.exit_code == 0, down.output
    assert project.tables() & {"tb_comment", "tv_comment"} == set()
    assert "sync_history" in project.tables()
    assert project.query("SELECT count(*) FROM sync_history") == [(0,)]

    again = project.cli("up")
    assert again.exit_code == 0, again.output
    assert {"tb_comment", "tv_comment", "tb_post", "tv_post"} <= project.tables()


@pytest.mark.parametrize(
    "entity", ["Comment", "blog post", "2fa", "_x", "comment;drop", "naïve", "", "tv-x"]
)
def test_bad_entity_is_one_line_usage_error_and_writes_nothing(project: Project, entity: str) -> None:
    result = project.cli("create", "add_x", "--cqrs", entity)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"Error: CQRS entity {entity!r} is not a snake_case SQL identifier")
    assert len(result.output.strip().splitlines()) == 1
    assert list(project.migrations.iterdir()) == []


def test_identifier_limit_of_63_bytes(project: Project) -> None:
    longest_ok = "e" * 51  # idx_tv_<51>_data is exactly 63 bytes
    assert project.cli("create", "ok", "--cqrs", longest_ok).exit_code == 0
    result = project.cli("create", "too_long", "--cqrs", longest_ok + "e")
    assert result.exit_code == 2
    assert result.output == (
        f"Error: CQRS entity {longest_ok + 'e'!r} is too long: idx_tv_{longest_ok}e_data would "
        "be 64 bytes and PostgreSQL truncates identifiers to 63; use at most 51 characters\n"
    )
    assert project.cli("up").exit_code == 0
    assert f"tv_{longest_ok}" in project.tables()
    assert project.query(
        f"SELECT count(*) FROM pg_indexes WHERE indexname = 'idx_tv_{longest_ok}_data'") == [(1,)]


def test_sync_history_needs_cqrs(project: Project) -> None:
    result = project.cli("create", "x", "--sync-history")
    assert result.exit_code == 2
    assert result.output == "Error: --sync-history belongs to a CQRS migration: add --cqrs ENTITY\n"
    assert list(project.migrations.iterdir()) == []
