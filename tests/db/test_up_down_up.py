"""api.up_down_up on a real PostgreSQL: every migration up, down and up again, the schema
compared at each step; a wrong or missing down section is named."""

from __future__ import annotations

import pytest

from fraiseql_alembic import api
from fraiseql_alembic.errors import UsageError
from fraiseql_alembic.settings import Settings, resolve
from tests.conftest import Project
from tests.scenarios import UP_DOWN

POSTS = ("-- migrate:up\nCREATE TABLE posts (id bigserial PRIMARY KEY, user_id int);\n"
         "CREATE INDEX posts_user ON posts (user_id);\n-- migrate:down\n{down}\n")


def settings(project: Project) -> Settings:
    return resolve(project.migrations, project.database_url, cwd=project.root)


def test_every_migration_round_trips(project: Project) -> None:
    project.write("001_users.sql", UP_DOWN.format(t="users"))
    project.write("002_posts.sql", POSTS.format(down="DROP TABLE posts;"))
    seen: list[str] = []
    report = api.up_down_up(settings(project), on_migration=lambda r: seen.append(r.migration))
    assert report.ok and seen == ["001_users.sql", "002_posts.sql"]
    assert [item.outcome for item in report.migrations] == ["ok", "ok"]
    assert report.describe() == "up -> down -> up: 2 ok"
    assert project.version() == ["002"] and project.tables() == {"users", "posts",
                                                                 "alembic_version",
                                                                 "fraiseql_migrations"}


def test_a_down_that_leaves_a_table_is_named(project: Project) -> None:
    project.write("001_users.sql", UP_DOWN.format(t="users"))
    project.write("002_posts.sql", POSTS.format(down="DROP INDEX posts_user;"))
    project.write("003_tags.sql", UP_DOWN.format(t="tags"))
    report = api.up_down_up(settings(project))
    assert not report.ok
    assert [item.outcome for item in report.migrations] == ["ok", "failed", "not checked"]
    detail = report.failed[0].detail
    assert detail.startswith("down did not undo up: ")
    assert "table public.posts left" in detail and "index" not in detail.split(";")[0]
    assert report.describe().splitlines()[-1] == "up -> down -> up: 1 ok, 1 failed, 1 not checked"


def test_a_down_that_drops_too_much_is_named(project: Project) -> None:
    project.write("001_users.sql", UP_DOWN.format(t="users"))
    project.write("002_posts.sql", POSTS.format(down="DROP TABLE posts; DROP TABLE users;"))
    report = api.up_down_up(settings(project))
    assert report.failed[0].migration == "002_posts.sql"
    assert "table public.users removed" in report.failed[0].detail


def test_an_up_that_cannot_run_again_after_its_down_is_named(project: Project) -> None:
    # the down undoes the schema but not the row in a table of an earlier migration
    project.write("001_users.sql", UP_DOWN.format(t="users").replace(
        "(id int)", "(id int PRIMARY KEY)"))
    project.write("002_admin.sql",
                  "-- migrate:up\nCREATE TABLE admin (id int);\nINSERT INTO users VALUES (1);\n"
                  "-- migrate:down\nDROP TABLE admin;\n")
    report = api.up_down_up(settings(project))
    assert report.failed[0].detail.startswith("up after down failed: ")
    assert "duplicate key" in report.failed[0].detail


def test_no_down_section_fails_unless_named_irreversible(project: Project) -> None:
    project.write("001_users.sql", UP_DOWN.format(t="users"))
    project.write("002_backfill.sql", "CREATE TABLE backfill (id int);\n")
    project.write("003_tags.sql", UP_DOWN.format(t="tags"))
    report = api.up_down_up(settings(project))
    assert report.failed[0].migration == "002_backfill.sql"
    assert report.failed[0].detail.startswith("no down section: add a `-- migrate:down`")

    project.query("DROP SCHEMA public CASCADE; CREATE SCHEMA public")  # empty again
    report = api.up_down_up(settings(project), irreversible=["002_backfill.sql"])
    assert report.ok
    assert [item.outcome for item in report.migrations] == ["ok", "skipped", "ok"]
    assert report.describe().splitlines() == [
        "002_backfill.sql: no down section (allowed: irreversible=)",
        "up -> down -> up: 2 ok, 1 skipped"]


def test_refusals(project: Project) -> None:
    project.write("001_users.sql", UP_DOWN.format(t="users"))
    with pytest.raises(UsageError, match=r"irreversible= names no migration of .*: 009_x\.sql"):
        api.up_down_up(settings(project), irreversible=["009_x.sql"])
    project.cli("up")
    with pytest.raises(UsageError, match="needs a database where no migration is applied"):
        api.up_down_up(settings(project))
