"""The lazy verb table of `fraiseql migrate` (cli/app.py) tells the truth about its verbs."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from fraiseql_alembic.cli.app import VERBS, main, migrate


@pytest.mark.parametrize("name", sorted(VERBS))
def test_each_verb_loads_and_its_summary_is_its_first_sentence(name: str) -> None:
    command = migrate.get_command(click.Context(migrate), name)
    assert isinstance(command, click.Command) and command.name == name
    summary = VERBS[name].summary
    assert " ".join((command.help or "").split()).startswith(summary), (name, command.help)
    stand_in = click.Command(name, help=summary)
    for limit in range(10, 121):
        assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit), limit


def test_the_group_help_lists_every_verb_with_its_summary() -> None:
    result = CliRunner().invoke(main, ["migrate", "--help"])
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in listed] == sorted(VERBS)
    assert "  up            Apply pending migrations in order." in listed


def test_an_unknown_verb_is_one_usage_line() -> None:
    result = CliRunner().invoke(main, ["migrate", "nope"])
    assert result.exit_code == 2
    assert "No such command 'nope'" in result.output
