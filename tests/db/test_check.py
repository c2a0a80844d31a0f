"""`fraiseql migrate check`: the rules on their own, the CLI in a real git repository, and
with a real database."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Cli, Project
from scenarios import git, init_repo

CLEAN = "-- migrate:up\nCREATE TABLE tb_{0} (id int);\n-- migrate:down\nDROP TABLE tb_{0};\n"


# ---------------------------------------------------------------------------
# Rules


# ---------------------------------------------------------------------------
# CLI in a git repository, no database


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository with main holding 001 and 002, checked out on a feature branch."""
    init_repo(tmp_path)
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    for number, table in (("001", "user"), ("002", "post")):
        (migrations / f"{number}_{table}.sql").write_text(CLEAN.format(table), encoding="utf-8")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "base")
    git(tmp_path, "checkout", "-qb", "feature")
    monkeypatch.chdir(tmp_path)
    return migrations


def test_clean_folder_passes(repo: Path, cli: Cli) -> None:
    (repo / "003_comment.sql").write_text(CLEAN.format("comment"), encoding="utf-8")
    result = cli("migrate", "check", "--base", "main")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "✓ No problems (3 migrations; 1 new since main; database not checked: no database "
        "configured)\n"
    )


def test_problems_of_every_kind_are_listed_with_file_and_line(repo: Path, cli: Cli) -> None:
    # main moves on while the branch was open
    git(repo.parent, "checkout", "-q", "main")
    (repo / "003_tag.sql").write_text(CLEAN.format("tag"), encoding="utf-8")
    git(repo.parent, "add", "-A")
    git(repo.parent, "commit", "-qm", "tag")
    git(repo.parent, "checkout", "-q", "feature")
    (repo / "003_comment.sql").write_text(CLEAN.format("comment"), encoding="utf-8")
    (repo / "004_index.sql").write_text("CREATE INDEX idx_post_id ON tb_post (id);\n",
                                        encoding="utf-8")
    (repo / "005_broken.sql").write_text("SELECT 1;\n-- migrate:up\n", encoding="utf-8")
    (repo / "6-add-likes.sql").write_text("SELECT 1;\n", encoding="utf-8")
    # a merged file whose down section grew: neither linted (merged) nor a change that counts
    (repo / "002_post.sql").write_text(CLEAN.format("post") + "CREATE INDEX i ON tb_user (id);\n",
                                       encoding="utf-8")
    result = cli("migrate", "check", "--base", "main")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "migrations/6-add-likes.sql:1: is not loaded: migration files are named "
        "NNN_snake_case_name.sql: rename it to 6_add_likes.sql",
        "migrations/005_broken.sql:2: SQL on line 1 comes before `-- migrate:up`; move it "
        "below the marker",
        "migrations/003_comment.sql:1: numbered 003 but main already has 003: renumber it to "
        "006_comment.sql so that it runs after the migrations already merged",
        "migrations/004_index.sql:1: FQL001 index-not-concurrent: CREATE INDEX on tb_post "
        "without CONCURRENTLY blocks every write to tb_post (SHARE lock) until the whole index "
        "is built. Instead: CREATE INDEX CONCURRENTLY idx_post_id ON tb_post (...); fraiseql "
        "runs it outside a transaction and resumes the file there if it is interrupted",
        "✗ 4 problems (5 migrations; 3 new since main; database not checked: no database "
        "configured)",
    ]
    assert "003_tag.sql" not in result.output  # the checkout of feature has no 003_tag.sql


def test_merged_files_may_not_be_deleted_or_have_their_up_section_edited(repo: Path, cli: Cli) -> None:
    (repo / "001_user.sql").unlink()
    result = cli("migrate", "check", "--base", "main")
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == (
        "migrations/001_user.sql:1: was deleted, but main has it, so databases may have applied "
        "it; restore it (git checkout main -- migrations/001_user.sql) and undo its change in "
        "a new migration")
    git(repo.parent, "checkout", "-q", "--", ".")
    # the down section and the whitespace the checksum ignores may change
    text = (repo / "002_post.sql").read_text(encoding="utf-8")
    down_edit = text.replace("-- migrate:down\n", "-- migrate:down\n-- undo it\n")
    assert down_edit != text
    (repo / "002_post.sql").write_text(down_edit.replace("\n", "\r\n"), encoding="utf-8")
    result = cli("migrate", "check", "--base", "main")
    assert result.exit_code == 0, result.output
    git(repo.parent, "commit", "-qam", "edit down")  # committed on the branch: still compared
    (repo / "002_post.sql").write_text(text.replace("CREATE TABLE", "CREATE UNLOGGED TABLE"),
                                       encoding="utf-8")
    result = cli("migrate", "check", "--base", "main")
    assert result.exit_code == 1
    assert "002_post.sql:1: its up section changed since main" in result.output


def test_a_renamed_merged_file_is_to_be_renamed_back_not_renumbered(repo: Path, cli: Cli) -> None:
    git(repo.parent, "mv", "migrations/002_post.sql", "migrations/002_posts.sql")
    result = cli("migrate", "check", "--base", "main")
    assert result.exit_code == 1
    assert result.output.splitlines()[:-1] == [
        "migrations/002_posts.sql:1: renames 002_post.sql, which main has already: databases "
        "know a migration by its number and file, so rename it back to 002_post.sql (a new "
        "change goes in a new migration)"]


def test_no_shared_history_with_the_base_is_one_error_line(repo: Path, cli: Cli) -> None:
    git(repo.parent, "checkout", "-q", "--orphan", "elsewhere")
    git(repo.parent, "commit", "-qm", "unrelated")
    git(repo.parent, "checkout", "-q", "feature")
    result = cli("migrate", "check", "--base", "elsewhere")
    assert result.exit_code == 1
    assert "share no commit that git can see (a shallow clone?)" in result.output
    assert "fetch-depth: 0" in result.output


def test_files_merged_into_base_after_the_fork_are_not_deleted_by_the_branch(repo: Path, cli: Cli) -> None:
    git(repo.parent, "checkout", "-q", "main")
    (repo / "003_tag.sql").write_text(CLEAN.format("tag"), encoding="utf-8")
    (repo / "001_user.sql").write_text(CLEAN.format("user") + "-- reviewed\n", encoding="utf-8")
    git(repo.parent, "add", "-A")
    git(repo.parent, "commit", "-qm", "main moves on")
    git(repo.parent, "checkout", "-q", "feature")
    (repo / "004_comment.sql").write_text(CLEAN.format("comment"), encoding="utf-8")
    result = cli("migrate", "check", "--base", "main")
    assert result.exit_code == 0, result.output


def test_duplicate_numbers_are_problems_and_all_files_are_linted_without_base(
    repo: Path, cli: Cli,
) -> None:
    (repo / "002_comment.sql").write_text("CREATE INDEX i ON tb_post (id);\n", encoding="utf-8")
    result = cli("migrate", "check")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == (
        "migrations/002_post.sql:1: shares number 002 with 002_comment.sql (two branches "
        "merged?); renumber the one that is not applied anywhere yet, e.g. to 003_post.sql"
    )
    assert lines[1].startswith("migrations/002_comment.sql:1: FQL001 index-not-concurrent:")
    assert lines[2] == ("✗ 2 problems (3 migrations; database not checked: no database "
                        "configured)")


def test_github_format(repo: Path, cli: Cli) -> None:
    (repo / "001_user.sql").write_text(CLEAN.format("user") + "DO $$ BEGIN\n", encoding="utf-8")
    result = cli("migrate", "check", "--format", "github")
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == (
        "::error file=migrations/001_user.sql,line=5::unterminated dollar-quoted string at or "
        'near "$$ BEGIN"; close it (PostgreSQL would reject the file)'
    )


def test_base_errors_are_one_line(repo: Path, tmp_path_factory: pytest.TempPathFactory, cli: Cli) -> None:
    unknown = cli("migrate", "check", "--base", "origin/nope")
    assert unknown.exit_code == 1
    assert unknown.output == (
        "Error: --base origin/nope: no such branch, tag or commit in this repository (in "
        "GitHub Actions, check out with `fetch-depth: 0`, then use origin/<branch>; see "
        "docs/check.md)\n"
    )
    outside = tmp_path_factory.mktemp("not_a_repo")
    (outside / "001_a.sql").write_text("SELECT 1;\n", encoding="utf-8")
    result = cli("migrate", "check", "--base", "main", "--path", str(outside))
    assert result.exit_code == 1
    assert result.output == (
        f"Error: --base main: {outside} is not inside a git repository; run check in a clone "
        "of the project, or leave out --base\n"
    )


# ---------------------------------------------------------------------------
# With a database


def test_database_adds_pending_count_and_inconsistencies(project: Project) -> None:
    project.write("001_user.sql", CLEAN.format("user"))
    project.write("002_post.sql", CLEAN.format("post"))
    assert project.cli("up").exit_code == 0
    project.write("003_comment.sql", CLEAN.format("comment"))
    clean = project.cli("check")
    assert clean.exit_code == 0, clean.output
    assert clean.output == "✓ No problems (3 migrations; database: 1 pending)\n"

    project.write("002_post.sql", CLEAN.format("post").replace("(id int)", "(id bigint)"))
    (project.migrations / "001_user.sql").unlink()
    result = project.cli("check")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith("migrations/002_post.sql:1: changed after it was applied to the "
                               "database on ")
    assert lines[0].endswith("(checksum mismatch); restore it from git and put the change in "
                             "a new migration")
    assert lines[1].startswith("migrations/001_user.sql:1: was applied to the database on ")
    assert lines[2] == "✗ 2 problems (2 migrations; database: 1 pending)"


def test_database_is_not_asked_while_the_folder_is_broken(project: Project) -> None:
    project.write("001_user.sql", CLEAN.format("user"))
    project.write("001_post.sql", CLEAN.format("post"))
    result = project.cli("check")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == (
        "✗ 1 problem (2 migrations; database not checked: the folder has the problems above)")


def test_unreachable_database_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Cli,
) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "001_a.sql").write_text(CLEAN.format("a"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = cli("migrate", "check", env={"DATABASE_URL": "postgresql://app:s3cret@127.0.0.1:1/app"})
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert result.output.count("\n") == 1
    assert "s3cret" not in result.output


def test_database_problems_of_each_state() -> None:
    from datetime import datetime, timezone

    from fraiseql_alembic.engine import status as status_view
    from fraiseql_alembic.engine.history import Progress
    from fraiseql_alembic.engine.plan import database_problems

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    partial = Progress("005", "up", "c", 1, 7)
    report = status_view.StatusReport((
        status_view.StatusRow("001", "001_a.sql", status_view.APPLIED, when),
        status_view.StatusRow("002", "002_b.sql", status_view.UNRECORDED),
        status_view.StatusRow("003", "003_c.sql", status_view.UNTRACKED, when),
        status_view.StatusRow("005", "005_e.sql", status_view.PENDING, partial=partial),
        status_view.StatusRow("006", "006_f.sql", status_view.PENDING),
    ), ("001",))
    assert database_problems(report) == [
        ("002_b.sql", 1, "never ran on the database, yet later migrations did (merged late?); "
                         "renumber it above the last applied migration"),
        ("003_c.sql", 1, "fraiseql_migrations says it was applied on 2026-01-02 03:04:05 but "
                         "alembic_version does not; see `fraiseql migrate status` and "
                         "docs/troubleshooting.md"),
        ("005_e.sql", 7, "partly applied on the database; `fraiseql migrate up` resumes at "
                         "this line"),
    ]
