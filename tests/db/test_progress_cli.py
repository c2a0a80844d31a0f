"""`fraiseql migrate up` without a terminal prints plain progress lines."""

from __future__ import annotations

from conftest import Project
from scenarios import UP_DOWN


def test_cli_without_a_terminal_prints_plain_lines(project: Project) -> None:
    project.write("001_a.sql", UP_DOWN.format(t="a"))
    project.write("002_b.sql", UP_DOWN.format(t="b"))
    assert project.cli("up").output == (
        "✓ Running migration: 001_a.sql\n"
        "✓ Running migration: 002_b.sql\n"
        "✓ Migration completed successfully\n"
    )
    assert project.cli("down", "--steps", "2", "--force").output == (
        "About to roll back 2 migrations:\n"
        "  002_b.sql\n"
        "  001_a.sql\n"
        "✓ Rolling back migration: 002_b.sql\n"
        "✓ Rolling back migration: 001_a.sql\n"
        "✓ Rollback completed successfully (2 migrations rolled back)\n"
    )
