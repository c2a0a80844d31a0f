"""`lint --base REF` lints only the files added or changed since REF (as `check --base`
reads them), in a real git repository; earlier files still give their context."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Cli
from scenarios import git, init_repo

OLD = "CREATE TABLE tb_user (id int, name varchar(20));\nCREATE INDEX i_old ON tb_user (id);\n"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """main holds 001 and 002 with old findings; the feature branch is checked out."""
    init_repo(tmp_path)
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_user.sql").write_text(OLD, encoding="utf-8")
    (migrations / "002_index.sql").write_text("CREATE INDEX i_name ON tb_user (name);\n",
                                              encoding="utf-8")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", "base")
    git(tmp_path, "checkout", "-qb", "feature")
    monkeypatch.chdir(tmp_path)
    return migrations


def test_only_added_and_changed_files_are_linted(repo: Path, cli: Cli) -> None:
    assert cli("migrate", "lint").exit_code == 1  # the old findings
    result = cli("migrate", "lint", "--base", "main")
    assert (result.exit_code, result.output) == (0, "✓ No lint findings in 0 migrations\n")
    # a new file is linted, with the context of the old ones (tb_user.name is varchar(20))
    (repo / "003_widen.sql").write_text(
        "ALTER TABLE tb_user ALTER COLUMN name TYPE text;\nDROP INDEX i_old;\n",
        encoding="utf-8")
    result = cli("migrate", "lint", "--base", "main")
    assert result.exit_code == 1
    assert [line.split(": ")[0:2] for line in result.output.splitlines()[:-1]] == [
        ["migrations/003_widen.sql:2:1", "warning FQL015 drop-index-not-concurrent"]]
    assert result.output.splitlines()[-1].startswith("✗ 1 lint finding (1 warning; 1 migration")
    # committed on the branch: still new; an old file edited: linted again
    git(repo.parent, "add", "-A")
    git(repo.parent, "commit", "-qm", "003")
    with (repo / "002_index.sql").open("a", encoding="utf-8") as file:
        file.write("-- reviewed\n")
    result = cli("migrate", "lint", "--base", "main", "--format", "json")
    assert '"files": 2' in result.output and "002_index.sql" in result.output
    # named files are narrowed to the changed ones
    assert cli("migrate", "lint", "--base", "main", "migrations/001_user.sql").output == (
        "✓ No lint findings in 0 migrations\n")


def test_files_merged_into_the_base_after_the_fork_are_not_the_branchs(
    repo: Path, cli: Cli
) -> None:
    git(repo.parent, "checkout", "-q", "main")
    (repo / "003_main.sql").write_text("DROP INDEX i_old;\n", encoding="utf-8")
    git(repo.parent, "add", "-A")
    git(repo.parent, "commit", "-qm", "main moves on")
    git(repo.parent, "checkout", "-q", "feature")
    git(repo.parent, "merge", "-q", "main")
    assert cli("migrate", "lint", "--base", "main").output == (
        "✓ No lint findings in 0 migrations\n")


def test_a_bad_base_is_one_error_line(repo: Path, cli: Cli) -> None:
    result = cli("migrate", "lint", "--base", "nope")
    assert result.exit_code == 1
    assert result.output.startswith("Error: --base nope: no such branch, tag or commit")
