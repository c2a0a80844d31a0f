"""`fraiseql --version` and the help of the groups load no verb: neither
fraiseql_alembic.cli.verbs nor, through it, the API, psycopg2, SQLAlchemy, Alembic or
pglast (the lazy verb table in cli/app.py); a verb's own help loads its verb, not Alembic."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = {"alembic", "sqlalchemy", "psycopg2", "pglast"}

#: What the installed `fraiseql` script runs, reporting sys.modules as the process exits.
RUN = """
import atexit, sys
atexit.register(lambda: print("MODULES", *sorted(sys.modules), file=sys.stderr))
sys.argv = ["fraiseql", *sys.argv[1:]]
from fraiseql_alembic.console import main
main()
"""


def imported_by(*argv: str) -> set[str]:
    """Every module loaded when ``fraiseql argv`` ends."""
    result = subprocess.run([sys.executable, "-c", RUN, *argv], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(line for line in result.stderr.splitlines() if line.startswith("MODULES "))
    return set(line.split()[1:])


@pytest.mark.parametrize("argv", [("--version",), ("--help",), ("migrate", "--help")])
def test_version_and_group_help_import_nothing_heavy(argv: tuple[str, ...]) -> None:
    modules = imported_by(*argv)
    assert "fraiseql_alembic.cli.app" in modules, sorted(modules)
    assert not {name.split(".")[0] for name in modules} & HEAVY, sorted(modules)
    assert not {"fraiseql_alembic.cli.verbs", "fraiseql_alembic.api"} & modules


def test_a_verb_loads_on_demand_still_without_alembic() -> None:
    modules = imported_by("migrate", "up", "--help")
    assert "fraiseql_alembic.cli.verbs" in modules
    assert not {name.split(".")[0] for name in modules} & {"alembic", "sqlalchemy"}
