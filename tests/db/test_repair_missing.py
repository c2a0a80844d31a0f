"""`fraiseql migrate repair --missing VERSION`: an applied file deleted on purpose."""

from __future__ import annotations

import json

import pytest
from conftest import Project, Tenants
from scenarios import UP_DOWN

from fraiseql_alembic import api, settings
from fraiseql_alembic.errors import MigrationError, UsageError


def three_applied(project: Project) -> None:
    for number, table in enumerate(["a", "b", "c"], start=1):
        project.write(f"00{number}_add_{table}.sql", UP_DOWN.format(t=table))
    assert project.cli("up").exit_code == 0


def states(project: Project) -> dict[str, str]:
    result = project.cli("status", "--json")
    assert result.exit_code == 0, result.output
    return {row["file"]: row["state"] for row in json.loads(result.output)["migrations"]}


def test_a_deleted_middle_file_is_recorded_and_status_and_up_are_clean(
        project: Project) -> None:
    three_applied(project)
    (project.migrations / "002_add_b.sql").unlink()
    status = project.cli("status")
    assert "✗ 002_add_b.sql (applied " in status.output and "; file MISSING)" in status.output
    assert "`fraiseql migrate repair --missing 002`" in status.output  # the way out is named
    result = project.cli("repair", "--missing", "002", "--reason", "dead feature")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "✓ Recorded that 002_add_b.sql was deleted on purpose; its history stays in "
        "fraiseql_migrations, and its changes in the database\n")
    assert states(project) == {"001_add_a.sql": "applied", "003_add_c.sql": "applied"}
    assert project.version() == ["003"]
    assert "b" in project.tables()  # the schema is not touched
    rows = project.query("SELECT version, action, note FROM fraiseql_migrations "
                         "WHERE version = '002' ORDER BY id")
    assert rows == [("002", "applied", None),
                    ("002", "file_deleted", "file deleted on purpose; dead feature")]
    project.write("004_add_d.sql", UP_DOWN.format(t="d"))
    up = project.cli("up")
    assert up.exit_code == 0 and "MISSING" not in up.output, up.output
    assert project.cli("check").exit_code == 0


def test_a_deleted_head_moves_alembic_version_below_it(project: Project) -> None:
    three_applied(project)
    (project.migrations / "003_add_c.sql").unlink()
    up = project.cli("up")
    assert up.exit_code == 1 and "`fraiseql migrate repair --missing 003`" in up.output
    result = project.cli("repair", "--missing", "3")
    assert result.exit_code == 0, result.output
    assert "alembic_version moved from 003 to 002" in result.output
    assert project.version() == ["002"]
    assert states(project) == {"001_add_a.sql": "applied", "002_add_b.sql": "applied"}
    project.write("004_add_d.sql", UP_DOWN.format(t="d"))  # follows 002 now
    assert project.cli("up").exit_code == 0
    assert project.version() == ["004"]
    note = project.query("SELECT note FROM fraiseql_migrations WHERE action = 'file_deleted'")
    assert note == [("file deleted on purpose; alembic_version moved from 003 to 002",)]


def test_the_only_applied_file_deleted_leaves_no_version_row(project: Project) -> None:
    project.write("001_add_a.sql", UP_DOWN.format(t="a"))
    assert project.cli("up").exit_code == 0
    (project.migrations / "001_add_a.sql").unlink()
    project.write("002_add_b.sql", UP_DOWN.format(t="b"))
    result = project.cli("repair", "--missing", "001")
    assert result.exit_code == 0 and "from 001 to (nothing)" in result.output, result.output
    assert project.version() == []
    assert states(project) == {"002_add_b.sql": "pending"}


def test_a_renamed_file_is_refused(project: Project) -> None:
    three_applied(project)
    (project.migrations / "002_add_b.sql").rename(project.migrations / "005_add_b.sql")
    result = project.cli("repair", "--missing", "002")
    assert result.exit_code == 1
    assert "002_add_b.sql was not deleted but renamed: 005_add_b.sql holds" in result.output
    assert "Rename it back to 002_add_b.sql" in result.output
    assert project.query("SELECT count(*) FROM fraiseql_migrations "
                         "WHERE action = 'file_deleted'") == [(0,)]


def test_refusals(project: Project) -> None:
    three_applied(project)
    not_missing = project.cli("repair", "--missing", "002")
    assert not_missing.exit_code == 1
    assert "002_add_b.sql is not missing (applied on " in not_missing.output
    no_version = project.cli("repair", "--missing")
    assert no_version.exit_code == 2 and "--missing needs the VERSION" in no_version.output
    own = settings.resolve(project.migrations, project.database_url)
    with pytest.raises(UsageError, match="needs the VERSION"):
        api.repair(own, missing=True)
    with pytest.raises(MigrationError, match="is not missing"):
        api.repair(own, "1", missing=True)


def test_on_every_target_of_a_fleet(project: Project, tenants: Tenants) -> None:
    urls = tenants(2)
    for number, table in enumerate(["a", "b", "c"], start=1):
        project.write(f"00{number}_add_{table}.sql", UP_DOWN.format(t=table))
    for url in urls:
        assert Project(project.root, url).cli("up").exit_code == 0
    (project.migrations / "003_add_c.sql").unlink()
    targets = project.root / "fleet.targets"
    targets.write_text("".join(f"{url}\n" for url in urls))
    result = project.cli("repair", "--missing", "003", "--targets", str(targets))
    assert result.exit_code == 0, result.output
    for url in urls:
        assert Project(project.root, url).version() == ["002"]
        assert states(Project(project.root, url)) == {"001_add_a.sql": "applied",
                                                      "002_add_b.sql": "applied"}
