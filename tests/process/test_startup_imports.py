"""`fraiseql --version` and the help of the groups load no verb: neither
fraiseql_alembic.cli.verbs nor, through it, the API, psycopg2, SQLAlchemy, Alembic or
pglast (the lazy verb table in cli/app.py); a verb's own help loads its verb, not Alembic;
`fraiseql migrate lint` loads the lint alone: no engine, Alembic bridge, fleet, driver,
click (cli/lintfast.py) or pglast's Python (sql/pgparse.py calls its parser in place),
nor the standard modules only other paths need (hashlib, configparser, signal, getpass)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from scenarios import REPO, UP_DOWN

HEAVY = {"alembic", "sqlalchemy", "psycopg2", "pglast"}

#: What the installed `fraiseql` script runs, reporting sys.modules as the process exits.
RUN = """
import atexit, sys
atexit.register(lambda: print("MODULES", *sorted(sys.modules), file=sys.stderr))
sys.argv = ["fraiseql", *sys.argv[1:]]
from fraiseql_alembic.console import main
main()
"""


def imported_by(*argv: str, cwd: Path | None = None) -> set[str]:
    """Every module loaded when ``fraiseql argv`` (run in ``cwd``) ends."""
    result = subprocess.run([sys.executable, "-c", RUN, *argv], capture_output=True,
                            text=True, timeout=60, cwd=cwd)
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
    # the standard modules a single code path needs load with it: alembic.ini (configparser),
    # init/create's templates (importlib.resources), `python -m fraiseql_alembic.devdb`
    # (argparse), drift's diff (difflib), a fleet run's id (secrets)
    assert not {"configparser", "importlib.resources", "argparse", "difflib", "secrets"} & modules


def test_lint_loads_neither_the_engine_nor_alembic_nor_a_driver(tmp_path: Path) -> None:
    """The lint verb imports lintapi, not the API: a run on a few hundred files would
    otherwise pay for loading the engine, the Alembic bridge and fleet code (bench/lint.py)."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "001_t.sql").write_text(UP_DOWN.format(t="t"), encoding="utf-8")
    (folder / "002_notice.sql").write_text(
        "DO $$ BEGIN RAISE NOTICE 'x'; END $$;\nCREATE INDEX CONCURRENTLY i ON t (id);\n",
        encoding="utf-8")
    modules = imported_by("migrate", "lint", cwd=tmp_path)
    assert {"fraiseql_alembic.cli.lintfast", "fraiseql_alembic.sql.lint"} <= modules
    assert "fraiseql_alembic.sql.pgparse" in modules  # the files were parsed, not passed over
    assert "pglast" not in modules  # its parser is called in place (sql/pgparse.py)
    assert not {name.split(".")[0] for name in modules} & {
        "alembic", "sqlalchemy", "psycopg2", "click",  # plain forms need no click
        "subprocess",  # git, for --base only
        "hashlib",  # checksums (up, check) and --format gitlab's fingerprints only
        "configparser",  # alembic.ini, read only when the project has one
        "signal",  # console.py sets its SIGTERM handler with _signal
        "getpass"}  # a permission error's message only
    ours = {name for name in modules if name.startswith("fraiseql_alembic.")}
    heavy = ("engine", "alembic_bridge", "api", "cli.verbs", "cli.fleet", "cli.fleetflags", "cli.render",
             "project.targets")
    assert not {name for name in ours for part in heavy
                if name == f"fraiseql_alembic.{part}"
                or name.startswith(f"fraiseql_alembic.{part}.")}, sorted(ours)


def test_up_loads_no_opentelemetry_unless_the_program_did(database_url: str,
                                                          tmp_path: Path) -> None:
    """OpenTelemetry is installed here (the test extra), yet `fraiseql migrate up` imports
    none of it, with a migration to run or none pending: only a program that loaded it
    itself (opentelemetry-instrument, a sitecustomize) gets spans (engine/tracing.py;
    importing the API alone costs ~35 ms, bench/otel-results.md)."""
    assert importlib.util.find_spec("opentelemetry.trace") is not None
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "001_t.sql").write_text(UP_DOWN.format(t="t"), encoding="utf-8")
    for pending in (1, 0):
        modules = imported_by("migrate", "up", "--database-url", database_url, cwd=tmp_path)
        assert "fraiseql_alembic.engine.tracing" in modules, pending
        assert not {name for name in modules if name.split(".")[0] == "opentelemetry"}, pending


@pytest.mark.parametrize("verb", ["status", "up"])
def test_migrate_in_a_project_on_our_alembic_env_loads_no_alembic(
        database_url: str, tmp_path: Path, verb: str) -> None:
    """A project made with alembic.ini.example (``script_location`` our env.py,
    ``fraiseql_migrations`` in a comment) runs `fraiseql migrate` without Alembic or
    SQLAlchemy: only a project with its own env.py has settings to read through them
    (alembic_bridge/envconfig.py; they cost ~0.3 s and ~27 MB, bench/results.md)."""
    shutil.copy(REPO / "alembic.ini.example", tmp_path / "alembic.ini")
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "001_t.sql").write_text(UP_DOWN.format(t="t"), encoding="utf-8")
    modules = imported_by("migrate", verb, "--database-url", database_url, cwd=tmp_path)
    assert "fraiseql_alembic.alembic_bridge.envconfig" in modules
    assert not {name.split(".")[0] for name in modules} & {"alembic", "sqlalchemy"}
    if verb == "status":  # it reads the state: no deploy, lock, backup or rehearsal code
        assert not {f"fraiseql_alembic.engine.{name}" for name in (
            "deploy", "run", "locking", "backup", "rehearsal")} & modules


#: Plain ``alembic ARGS``, reporting sys.modules as the process exits.
ALEMBIC = """
import atexit, sys
atexit.register(lambda: print("MODULES", *sorted(sys.modules), file=sys.stderr))
from alembic.config import main
main(argv=sys.argv[1:], prog="alembic")
"""


def test_alembic_upgrade_loads_no_autogenerate_machinery(database_url: str,
                                                         tmp_path: Path) -> None:
    """Our env.py loads the comparison machinery (models, shadow database, SQL writer:
    alembic_bridge/autogen_env.py) only for `alembic check` / `revision --autogenerate`:
    every other alembic command is spared its imports."""
    shutil.copy(REPO / "alembic.ini.example", tmp_path / "alembic.ini")
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "001_t.sql").write_text(UP_DOWN.format(t="t"), encoding="utf-8")
    result = subprocess.run([sys.executable, "-c", ALEMBIC, "upgrade", "head"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env={**os.environ, "DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr[-2000:]
    line = next(line for line in result.stderr.splitlines() if line.startswith("MODULES "))
    modules = set(line.split()[1:])
    assert "fraiseql_alembic.alembic_bridge.environment" in modules  # our env.py ran
    assert "fraiseql_alembic.alembic_bridge.autogen_env" not in modules
