"""`alembic revision` in our environment writes numbered SQL files.

The first test types `alembic revision` (the installed command: on Alembic 1.16/1.17 the
revision hook is installed while the command runs); the others run Alembic's own
CommandLine in-process (``run_process.in_process``: same argv, folder, environment, output
and exit code)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import ProcessRunner, Project
from scenarios import REPO, UP_DOWN, needs_plugin_entry_points
from test_alembic_cli import legacy_project

from fraiseql_alembic.alembic_bridge.plugin import ENV_LOCATION


@pytest.fixture
def ini_project(project: Project) -> Project:
    shutil.copy(REPO / "alembic.ini.example", project.root / "alembic.ini")
    project.write("001_initial_schema.sql", UP_DOWN.format(t="a"))
    return project


def _files(project: Project) -> list[str]:
    return sorted(path.name for path in project.migrations.iterdir())


def _failed(result: object, line: str) -> None:
    """One `FAILED:` line on stdout, exit 255, no traceback."""
    returncode, stdout, stderr = (getattr(result, name) for name in ("returncode", "stdout", "stderr"))
    assert returncode == 255, stdout + stderr
    assert stdout == f"FAILED: {line}\n"
    assert "Traceback" not in stderr


def test_revision_writes_the_file_create_writes(ini_project: Project, run_process: ProcessRunner, tmp_path: Path) -> None:
    """`alembic revision` as typed (a new interpreter) writes what `create` writes."""
    made = run_process("alembic", "revision", "-m", "Add x!", url=None, check=True)
    path = ini_project.migrations / "002_add_x.sql"
    assert made.stdout == f"Generating {path} ...  done\n"
    assert _files(ini_project) == ["001_initial_schema.sql", "002_add_x.sql"]
    # byte for byte what `fraiseql migrate create add_x` writes in the same folder
    twin = tmp_path / "twin"
    shutil.copytree(ini_project.migrations, twin / "migrations")
    (twin / "migrations" / "002_add_x.sql").unlink()
    run_process.in_process("fraiseql", "migrate", "create", "add_x", cwd=twin, url=None, check=True)
    assert path.read_text() == (twin / "migrations" / "002_add_x.sql").read_text()
    assert "-- migrate:up\n" in path.read_text() and "-- migrate:down\n" in path.read_text()
    assert run_process.in_process("alembic", "heads", check=True).stdout == "002 (head)\n"
    path.write_text(path.read_text()
                    .replace("-- migrate:up\n", "-- migrate:up\nCREATE TABLE x (id int);\n")
                    .replace("-- migrate:down\n", "-- migrate:down\nDROP TABLE x;\n"))
    run_process.in_process("alembic", "upgrade", "head", check=True)
    assert ini_project.version() == ["002"] and "x" in ini_project.tables()
    run_process.in_process("fraiseql", "migrate", "down", "--force", check=True)
    assert "x" not in ini_project.tables()


def test_revision_head_and_splice_write_a_revises_line(ini_project: Project, run_process: ProcessRunner) -> None:
    run_process.in_process("alembic", "revision", "-m", "second", url=None, check=True)
    _failed(run_process.in_process("alembic", "revision", "-m", "side", "--head", "001", url=None),
            "Revision 001 is not a head revision; please specify --splice to create a new "
            "branch from this revision")
    run_process.in_process("alembic", "revision", "-m", "side", "--head", "001", "--splice", url=None, check=True)
    side = (ini_project.migrations / "003_side.sql").read_text().splitlines()
    assert side[:2] == ["-- Migration 003: Side", "-- revises: 001"]
    heads = run_process.in_process("alembic", "heads", check=True).stdout
    assert sorted(heads.splitlines()) == ["002 (head)", "003 (head)"]
    _failed(run_process.in_process("alembic", "revision", "-m", "next", url=None),
            "Multiple heads are present; please specify the head revision on which the new "
            "revision should be based, or perform a merge.")
    _failed(run_process.in_process("alembic", "revision", "-m", "next", "--head", "heads", url=None),
            "--head heads names 2 revisions, and a SQL revision has one parent: name one of "
            "them, or join them with `alembic merge heads`")
    run_process.in_process("alembic", "revision", "-m", "after side", "--head", "003", url=None, check=True)
    assert (ini_project.migrations / "004_after_side.sql").read_text().splitlines()[1] != "-- revises: 003"
    assert sorted(run_process.in_process("alembic", "heads", check=True).stdout.splitlines()) == [
        "002 (head)", "004 (head)"]


def test_revision_rev_id_still_writes_python(ini_project: Project, run_process: ProcessRunner) -> None:
    made = run_process.in_process("alembic", "revision", "-m", "hand made", "--rev-id", "0123abcdef99",
                       "--branch-label", "feature", url=None, check=True)
    assert "0123abcdef99_hand_made.py" in made.stdout
    assert _files(ini_project) == ["001_initial_schema.sql", "0123abcdef99_hand_made.py"]
    # the next SQL revision follows the hex head with a `-- revises:` line, as `create` does
    run_process.in_process("alembic", "revision", "-m", "after hex", url=None, check=True)
    assert (ini_project.migrations / "002_after_hex.sql").read_text().splitlines()[1] == (
        "-- revises: 0123abcdef99")
    # (the file is on the .py revision's branch, so Alembic shows its label)
    assert run_process.in_process("alembic", "heads", check=True).stdout == "002 (feature) (head)\n"
    run_process.in_process("alembic", "upgrade", "head", check=True)
    assert ini_project.version() == ["002"]


def test_revision_format_option(ini_project: Project, run_process: ProcessRunner) -> None:
    ini = ini_project.root / "alembic.ini"
    text = ini.read_text()
    ini.write_text(text.replace("[alembic]\n", "[alembic]\nfraiseql_revision_format = python\n", 1))
    made = run_process.in_process("alembic", "revision", "-m", "in python", url=None, check=True)
    assert made.stdout.rstrip().endswith("_in_python.py ...  done")
    assert not (ini_project.migrations / "002_in_python.sql").exists()
    ini.write_text(text.replace("[alembic]\n", "[alembic]\nfraiseql_revision_format = yaml\n", 1))
    before = _files(ini_project)
    _failed(run_process.in_process("alembic", "revision", "-m", "x", url=None),
            "fraiseql_revision_format = yaml: use sql or python")
    assert _files(ini_project) == before


@pytest.mark.parametrize(("args", "line"), [
    (["-m", "x", "--branch-label", "feature"],
     "--branch-label: a SQL revision has no branch labels (its id is its number); pass "
     "--rev-id <id> (or set fraiseql_revision_format = python) for a .py revision"),
    (["-m", "x", "--depends-on", "001"],
     "--depends-on: a SQL revision has one parent and no other dependencies; pass --rev-id "
     "<id> (or set fraiseql_revision_format = python) for a .py revision"),
    (["-m", "x", "--version-path", "elsewhere"],
     "--version-path elsewhere: SQL revisions go in {folder}, the one version location; "
     "leave --version-path out"),
    ([], "A SQL revision is named after its message, and no -m makes no file name: pass "
     'words, like -m "add user bio"'),
    (["-m", "!!"], "A SQL revision is named after its message, and -m '!!' makes no file "
     'name: pass words, like -m "add user bio"'),
])
def test_revision_refuses_what_a_sql_file_cannot_be(
    ini_project: Project, run_process: ProcessRunner, args: list[str], line: str
) -> None:
    _failed(run_process.in_process("alembic", "revision", *args, url=None),
            line.format(folder=ini_project.migrations))
    assert _files(ini_project) == ["001_initial_schema.sql"]


def test_revision_with_version_path_of_the_one_location(ini_project: Project, run_process: ProcessRunner) -> None:
    run_process.in_process("alembic", "revision", "-m", "here", "--version-path", str(ini_project.migrations),
                url=None, check=True)
    assert (ini_project.migrations / "002_here.sql").exists()


@needs_plugin_entry_points
def test_adopted_project_keeps_python_revisions_unless_asked(project: Project, run_process: ProcessRunner) -> None:
    versions = legacy_project(project, opt_in=True)
    (project.root / "alembic" / "script.py.mako").write_text(
        (REPO / "fraiseql_alembic" / "alembic_env" / "script.py.mako").read_text())
    made = run_process.in_process("alembic", "revision", "-m", "own env", url=None, check=True)
    assert "_own_env.py ...  done" in made.stdout
    python = [path for path in versions.iterdir() if path.name.endswith("_own_env.py")]
    assert len(python) == 1
    python[0].unlink()
    ini = project.root / "alembic.ini"
    ini.write_text(ini.read_text() + "fraiseql_revision_format = sql\n")
    run_process.in_process("alembic", "revision", "-m", "own env", url=None, check=True)
    assert (versions / "002_own_env.sql").read_text().startswith("-- Migration 002: Own env\n")
    assert run_process.in_process("alembic", "heads", check=True).stdout == "002 (head)\n"


@needs_plugin_entry_points
def test_script_location_as_a_path_to_our_environment(ini_project: Project, run_process: ProcessRunner) -> None:
    """``script_location`` naming our env.py's folder by path opts in like the package name."""
    ini = ini_project.root / "alembic.ini"
    folder = REPO / "fraiseql_alembic" / "alembic_env"
    assert ENV_LOCATION in ini.read_text()
    ini.write_text(ini.read_text().replace(ENV_LOCATION, str(folder)))
    assert run_process.in_process("alembic", "heads", check=True).stdout == "001 (head)\n"
    run_process.in_process("alembic", "revision", "-m", "by path", url=None, check=True)
    assert (ini_project.migrations / "002_by_path.sql").exists()
