"""`fraiseql migrate lint` in its plain forms runs without click (cli/lintfast.py): it
prints, and exits with, exactly what the click command (cli/lintverb.py) does, and leaves
help, usage errors and failures to it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from scenarios import BIN, UP_DOWN

from fraiseql_alembic.cli import lintfast
from fraiseql_alembic.cli.lintverb import lint

#: The click command alone, as `fraiseql` ran it before the fast path.
CLICK = "import sys; from fraiseql_alembic.cli.app import main; sys.argv[0] = 'fraiseql'; main()"
#: The installed command, reporting whether click was loaded.
CONSOLE = """
import atexit, sys
atexit.register(lambda: print("CLICK", "click" in sys.modules, file=sys.stderr))
sys.argv = ["fraiseql", *sys.argv[1:]]
from fraiseql_alembic.console import main
main()
"""

RISKY = ("-- migrate:up\nCREATE INDEX i ON t (id);\nALTER TABLE t ALTER COLUMN id TYPE bigint;\n"
         "-- migrate:down\nDROP INDEX i;\n")
BROKEN = "-- migrate:up\nSELECT 'never closed;\n"


def test_options_are_the_click_commands() -> None:
    """A new option of `lint` that the fast path does not know sends its runs to click; a
    changed choice or default must change both."""
    options = {param.opts[0]: param for param in lint.params if isinstance(param, click.Option)}
    flags = {name for name, param in options.items() if param.is_flag}
    assert flags == {*lintfast.FLAGS, "--verbose"}  # --verbose: click's to handle
    valued = {name: param for name, param in options.items() if not param.is_flag}
    assert set(valued) == set(lintfast.OPTIONS)
    unset = getattr(click.core, "UNSET", None)  # click 8.3's "no default"; None before
    for name, param in valued.items():
        choices = tuple(param.type.choices) if isinstance(param.type, click.Choice) else None
        assert choices == lintfast.OPTIONS[name], name
        default = "text" if name == "--format" else None  # lintfast.run's default
        assert (None if param.default is unset else param.default) == default, name


def _project(root: Path, *, broken: bool = False) -> Path:
    folder = root / "migrations"
    folder.mkdir()
    (folder / "001_t.sql").write_text(UP_DOWN.format(t="t"), encoding="utf-8")
    (folder / "002_risky.sql").write_text(RISKY, encoding="utf-8")
    if broken:
        (folder / "003_broken.sql").write_text(BROKEN, encoding="utf-8")
    return root


def _both(root: Path, *argv: str) -> tuple[subprocess.CompletedProcess[str], bool,
                                           subprocess.CompletedProcess[str]]:
    """The console script's run (and whether it loaded click) and the click command's."""
    env = {"PATH": str(BIN), "HOME": str(root), "PYTHONIOENCODING": "utf-8",
           "FRAISEQL_ENV": "nowhere"}  # lint picks no environment, on either path
    fast = subprocess.run([sys.executable, "-c", CONSOLE, "migrate", "lint", *argv],
                          cwd=root, capture_output=True, text=True, timeout=60, env=env)
    slow = subprocess.run([sys.executable, "-c", CLICK, "migrate", "lint", *argv],
                          cwd=root, capture_output=True, text=True, timeout=60, env=env)
    stderr, _, marker = fast.stderr.rpartition("CLICK ")
    fast = subprocess.CompletedProcess(fast.args, fast.returncode, fast.stdout, stderr)
    return fast, marker.strip() == "True", slow


@pytest.mark.parametrize("argv", [
    (),
    ("--format", "json"),
    ("--format=sarif", "--exit-zero"),
    ("--fail-on", "error", "--format", "gitlab"),
    ("--path", "migrations", "--format", "github", "migrations/002_risky.sql"),
    ("--exit-zero", "migrations/001_t.sql"),
])
def test_plain_forms_print_what_click_prints_without_loading_it(
    tmp_path: Path, argv: tuple[str, ...]
) -> None:
    fast, loaded_click, slow = _both(_project(tmp_path), *argv)
    assert not loaded_click, fast.stderr
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        slow.returncode, slow.stdout, slow.stderr)
    assert fast.stdout


@pytest.mark.parametrize(("argv", "broken"), [
    (("--help",), False),
    (("--format", "xml"), False),  # a bad choice: click's usage error
    (("--format",), False),
    (("--verbose",), False),
    (("missing.sql",), False),
    (("--format", "json", "--format", "text"), False),
    (("--base", "no-such-ref"), False),  # no git repository: the run fails
    ((), True),  # a file the splitter refuses: MigrationFileError, one line
])
def test_other_forms_are_clicks(tmp_path: Path, argv: tuple[str, ...], broken: bool) -> None:
    fast, loaded_click, slow = _both(_project(tmp_path, broken=broken), *argv)
    assert loaded_click
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        slow.returncode, slow.stdout, slow.stderr)
