"""Lint policy: default severities, [tool.fraiseql.lint] / [fraiseql.lint] settings, file-level
ignores, excluded paths, --fail-on and --exit-zero.  No database needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Cli

from fraiseql_alembic.errors import ConfigError
from fraiseql_alembic.settings import LintOptions, lint_options
from fraiseql_alembic.sql.lint import (
    RULES,
    SEVERITIES,
    LintPolicy,
    lint_migrations,
    policy_from,
)
from fraiseql_alembic.sql.names import parse_filename
from fraiseql_alembic.sql.parse import ParsedMigration, parse_migration

INDEX = "CREATE INDEX idx_a ON tb_user (a);\n"  # FQL001, error
RENAME = "ALTER TABLE tb_user RENAME COLUMN a TO b;\n"  # FQL008, warning


def parsed(text: str, filename: str = "010_change.sql") -> ParsedMigration:
    name = parse_filename(filename)
    assert name is not None
    return parse_migration(name, text)


def found(text: str, policy: LintPolicy | None = None) -> list[tuple[str, str]]:
    return [(finding.rule, finding.severity)
            for finding in lint_migrations([parsed(text)], policy=policy)]


def test_every_rule_has_a_default_severity() -> None:
    assert {rule.severity for rule in RULES} <= set(SEVERITIES)
    assert found(INDEX + RENAME) == [("FQL001", "error"), ("FQL008", "warning")]


def test_policy_disables_rules_and_changes_severities() -> None:
    options = LintOptions(disable=("index-not-concurrent",), severity=(("FQL008", "info"),))
    assert found(INDEX + RENAME, policy_from(options)) == [("FQL008", "info")]
    with pytest.raises(ConfigError, match=r"disable in \[tool.fraiseql.lint\] in pyproject.toml "
                       r"names 'FQL999', which is no lint rule"):
        policy_from(LintOptions(disable=("FQL999",)))
    policy = LintPolicy(fail_on="error")
    assert policy.fails("error") and not policy.fails("warning")
    assert LintPolicy().fails("warning") and not LintPolicy().fails("info")


def test_postgres_version_11_scans_for_set_not_null_despite_a_check() -> None:
    text = ("ALTER TABLE tb_user ADD CONSTRAINT nn CHECK (a IS NOT NULL);\n"
            "ALTER TABLE tb_user ALTER COLUMN a SET NOT NULL;\n")
    assert found(text) == [("FQL005", "warning")]
    assert found(text, LintPolicy(postgres_version=11)) == [
        ("FQL005", "warning"), ("FQL004", "warning")]


def test_ignore_file_silences_a_rule_in_the_whole_file_only() -> None:
    header = "-- Migration 010: change\n-- fraiseql-lint: ignore-file FQL001 -- tiny tables\n"
    assert found(f"{header}-- migrate:up\n{INDEX}{INDEX}{RENAME}") == [("FQL008", "warning")]
    # in the up section too, below the statements it silences, any form of comment
    assert found(f"{INDEX}{RENAME}/* fraiseql-lint: ignore-file rename, FQL001 */\n") == []
    # a plain `ignore` in the header silences nothing (it is above no statement)
    assert found(f"-- fraiseql-lint: ignore FQL001\n-- migrate:up\n\n{INDEX}") == [
        ("FQL001", "error")]
    # a typo is reported, as for ignore
    assert [rule for rule, _ in found(f"-- fraiseql-lint: ignore-file FQL01\n{INDEX}")] == [
        "FQL010", "FQL001"]
    # other files are not silenced
    first = parsed(f"-- fraiseql-lint: ignore-file FQL001\n{INDEX}", "001_a.sql")
    second = parsed(INDEX, "002_b.sql")
    assert [(f.file, f.rule) for f in lint_migrations([first, second])] == [
        ("002_b.sql", "FQL001")]


def test_lint_settings_from_pyproject(tmp_path: Path) -> None:
    assert lint_options(tmp_path) == LintOptions()
    (tmp_path / "pyproject.toml").write_text(
        '[tool.fraiseql.lint]\ndisable = ["FQL008"]\nseverity = { rename = "error", '
        'FQL001 = "Info" }\npostgres_version = 13\nexclude = ["migrations/00*.sql"]\n'
        'fail_on = "error"\ntimezone = "UTC"\n', encoding="utf-8")
    assert lint_options(tmp_path) == LintOptions(
        ("FQL008",), (("rename", "error"), ("FQL001", "info")), 13, ("migrations/00*.sql",),
        "error", "[tool.fraiseql.lint] in pyproject.toml", "UTC")


def test_lint_settings_from_alembic_ini(tmp_path: Path) -> None:
    (tmp_path / "alembic.ini").write_text(
        "[alembic]\nscript_location = x\n\n[fraiseql.lint]\ndisable = FQL008, rename\n"
        "severity.FQL001 = warning\npostgres_version = 12\nexclude =\n  001_*.sql\n"
        "  legacy/*.sql\n", encoding="utf-8")
    assert lint_options(tmp_path) == LintOptions(
        ("FQL008", "rename"), (("fql001", "warning"),), 12, ("001_*.sql", "legacy/*.sql"),
        "warning", "[fraiseql.lint] in alembic.ini")
    # pyproject.toml's table, when there is one, wins
    (tmp_path / "pyproject.toml").write_text('[tool.fraiseql.lint]\nfail_on = "info"\n',
                                             encoding="utf-8")
    assert lint_options(tmp_path).fail_on == "info"
    assert lint_options(tmp_path).disable == ()


@pytest.mark.parametrize(("table", "message"), [
    ('disabled = ["FQL001"]', "disabled in [tool.fraiseql.lint] in pyproject.toml is not a "
     "lint setting; use disable, severity, postgres_version, exclude, fail_on, timezone"),
    ('severity = { FQL001 = "fatal" }', "severity.FQL001 = 'fatal' in [tool.fraiseql.lint] "
     "in pyproject.toml is not a severity; use info, warning or error"),
    ("postgres_version = 9", "postgres_version = 9 in [tool.fraiseql.lint] in pyproject.toml "
     "is not a PostgreSQL major version lint supports; use 11 or later, e.g. 15"),
    ('postgres_version = "15.2"', "postgres_version = '15.2' in"),
    ('disable = "FQL001, FQL002"', None),
    ("exclude = [1]", "exclude in [tool.fraiseql.lint] in pyproject.toml must be a list of "
     "strings"),
    ('fail_on = "never"', "fail_on = 'never' in"),
])
def test_bad_lint_settings_are_one_config_error(tmp_path: Path, table: str,
                                                message: str | None) -> None:
    (tmp_path / "pyproject.toml").write_text(f"[tool.fraiseql.lint]\n{table}\n",
                                             encoding="utf-8")
    if message is None:  # a single string is one name
        assert lint_options(tmp_path).disable == ("FQL001, FQL002",)
        return
    with pytest.raises(ConfigError) as raised:
        lint_options(tmp_path)
    assert str(raised.value).startswith(message)


# ---------------------------------------------------------------------------
# CLI


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    monkeypatch.chdir(tmp_path)
    (migrations / "001_index.sql").write_text(INDEX, encoding="utf-8")
    (migrations / "002_rename.sql").write_text(RENAME, encoding="utf-8")
    return migrations


def settings(folder: Path, text: str) -> None:
    (folder.parent / "pyproject.toml").write_text(f"[tool.fraiseql.lint]\n{text}\n",
                                                  encoding="utf-8")


def test_cli_fail_on_and_exit_zero(folder: Path, cli: Cli) -> None:
    result = cli("migrate", "lint")
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith(
        "✗ 2 lint findings (1 error, 1 warning; 2 migrations linted); fix them")
    assert cli("migrate", "lint", "--exit-zero").exit_code == 0
    (folder / "001_index.sql").write_text("SELECT 1;\n", encoding="utf-8")
    result = cli("migrate", "lint", "--fail-on", "error")
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        result.output.splitlines()[0],
        "✓ 1 lint finding below --fail-on error (1 warning; 2 migrations linted)"]
    assert result.output.startswith("migrations/002_rename.sql:1:1: warning FQL008 rename: ")
    # fail_on in the settings; the flag wins
    settings(folder, 'fail_on = "error"')
    assert cli("migrate", "lint").exit_code == 0
    assert cli("migrate", "lint", "--fail-on", "warning").exit_code == 1
    assert cli("migrate", "lint", "--fail-on", "nope").exit_code == 2


def test_cli_severity_disable_and_exclude(folder: Path, cli: Cli) -> None:
    settings(folder, 'severity = { "index-not-concurrent" = "info" }\ndisable = ["FQL008"]')
    result = cli("migrate", "lint")
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "migrations/001_index.sql:1:1: info FQL001 index-not-concurrent: CREATE INDEX on "
        + result.output.split("CREATE INDEX on ", 1)[1].splitlines()[0],
        "✓ 1 lint finding below --fail-on warning (1 info; 2 migrations linted)"]
    github = cli("migrate", "lint", "--format", "github").output
    assert github.startswith("::notice file=migrations/001_index.sql,line=1,col=1,")
    # excluded files are read (what they create counts), not reported
    settings(folder, 'exclude = ["migrations/001_*.sql", "002_rename.sql"]')
    assert cli("migrate", "lint").output == "✓ No lint findings in 0 migrations\n"
    assert cli("migrate", "lint", "migrations/002_rename.sql").output == (
        "✓ No lint findings in 0 migrations\n")
    settings(folder, 'disable = ["FQL0001"]')
    result = cli("migrate", "lint")
    assert result.exit_code == 1
    assert result.output == (
        "Error: disable in [tool.fraiseql.lint] in pyproject.toml names 'FQL0001', which is "
        "no lint rule; use a rule id or slug from docs/lint.md (FQL001, index-not-concurrent)\n")


def test_check_follows_the_lint_policy(folder: Path, cli: Cli) -> None:
    assert "FQL001" in cli("migrate", "check").output
    settings(folder, 'disable = ["FQL001"]\nseverity = { FQL008 = "info" }')
    result = cli("migrate", "check")
    assert result.exit_code == 0, result.output
    settings(folder, 'exclude = ["001_index.sql"]\nfail_on = "error"')
    assert cli("migrate", "check").exit_code == 0
