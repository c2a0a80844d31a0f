"""Containment: installing fraiseql-alembic changes nothing for Alembic projects that did not opt in.

For each of Alembic's own templates (``generic``, ``async``, ``multidb``, ``pyproject``,
``pyproject_async``, and a pyproject.toml-only project with no alembic.ini), the same
session of commands runs twice against a real PostgreSQL: through the installed
``alembic`` command's function in a Python process that loads our ``alembic.plugins``
entry point, and through the same function in one with that entry point hidden.  Exit
codes, output, the files written and the database state must be identical.  Every
project also holds a file named like one of our migrations, which must stay invisible.
The two processes (one per side) serve every project of the module, one after another,
as a long-lived process using Alembic would; the installed ``alembic`` itself runs as
typed in the opt-in tests and on the other config forms.

The opt-in half: a pyproject.toml-only project opts in with ``fraiseql_migrations = true``
or our environment under ``[tool.alembic]``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import alembic
import pytest
from conftest import ProcessRunner, Tenants
from scenarios import BIN, needs_plugin_entry_points

TEMPLATES = Path(alembic.__file__).resolve().parent / "templates"
PLACEHOLDER_URL = "driver://user:pass@localhost/dbname"

# One Python process per side runs the installed `alembic` console script's function
# (its console_scripts entry point) once per command it reads on stdin (a folder, the
# variables to set and the arguments), and answers with the exit code and what the
# command printed.  Starting `alembic` anew for every command would cost ~0.6 s each
# (importing SQLAlchemy), 150 times.  "without" filters our entry point out of
# importlib.metadata before Alembic imports (and so loads) its plugins.  The first
# command of a project ("fresh") finds logging as a new `alembic` process has it: what
# an earlier project's alembic.ini configured (fileConfig) is undone.
DRIVER = """\
import json, logging, os, sys, tempfile
from importlib import metadata

if sys.argv[1] == "without":
    _entry_points = metadata.entry_points

    def entry_points(**params):
        found = _entry_points(**params)
        if params.get("group") == "alembic.plugins":
            found = metadata.EntryPoints(
                e for e in found if not e.value.startswith("fraiseql_alembic")
            )
        return found

    metadata.entry_points = entry_points
(script,) = metadata.entry_points(group="console_scripts", name="alembic")
main = script.load()
saved = os.dup(1), os.dup(2)
environment = dict(os.environ)


def loggers():
    return [logging.root, *(logger for logger in logging.Logger.manager.loggerDict.values()
                            if isinstance(logger, logging.Logger))]


as_loaded = {logger.name: (logger.level, logger.disabled, logger.propagate,
                           list(logger.handlers)) for logger in loggers()}
for line in sys.stdin:
    command = json.loads(line)
    if command["fresh"]:
        for logger in loggers():
            level, disabled, propagate, handlers = as_loaded.get(
                logger.name, (logging.NOTSET, False, True, []))
            logger.setLevel(level)
            logger.disabled, logger.propagate, logger.handlers[:] = disabled, propagate, handlers
    os.chdir(command["cwd"])
    os.environ.clear()
    os.environ.update(environment, **command["env"])
    # Capture at the file descriptors: Alembic binds sys.stdout when it is imported.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        code = 0
        try:
            main(argv=command["argv"], prog="alembic")
        except SystemExit as exit:
            code = exit.code % 256 if isinstance(exit.code, int) else 1  # as the OS reports it
        except Exception as error:  # the console script would print a traceback
            code = 1
            print(f"{type(error).__name__}: {error}", file=sys.stderr)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
        printed = []
        for captured in (out, err):
            captured.seek(0)
            printed.append(captured.read().decode(errors="replace"))
    plugin_loaded = "fraiseql_alembic.alembic_bridge.plugin" in sys.modules
    print(json.dumps([code, *printed, plugin_loaded]), flush=True)
"""

LOOKALIKE = "-- migrate:up\nCREATE TABLE lookalike (id int);\n-- migrate:down\nDROP TABLE lookalike;\n"


@dataclass(frozen=True)
class Scenario:
    name: str
    template: str
    driver: str = "postgresql+psycopg2"  # SQLAlchemy URL scheme
    engines: tuple[str, ...] = ("",)  # multidb: one database per engine
    toml_only: bool = False  # remove alembic.ini, as a pyproject.toml-only project has none


SCENARIOS = [
    Scenario("generic", "generic"),
    Scenario("async", "async", driver="postgresql+asyncpg"),
    Scenario("multidb", "multidb", engines=("engine1", "engine2")),
    Scenario("pyproject", "pyproject"),
    Scenario("pyproject_async", "pyproject_async", driver="postgresql+asyncpg"),
    Scenario("pyproject_toml_only", "pyproject", toml_only=True),
]

COMMANDS: list[list[str]] = [
    ["revision", "-m", "create account", "--rev-id", "aaaa00000001"],
    ["revision", "-m", "add email", "--rev-id", "bbbb00000002"],
    ["heads"],
    ["history"],
    ["branches"],
    ["upgrade", "head", "--sql"],
    ["upgrade", "head"],
    ["current"],
    ["check"],
    ["downgrade", "base"],
    ["current"],
]


@dataclass
class Run:
    """What one session of commands did: outputs, files written and database states."""

    outputs: list[tuple[list[str], int, str, str]]
    files: dict[str, str]
    states: list[dict[str, tuple[set[str], list[str]]]]


def test_templates_under_test_exist() -> None:
    """Alembic's templates as listed by this Alembic; the four the issue names must be there."""
    names = {path.name for path in TEMPLATES.iterdir() if (path / "env.py").exists()}
    assert {"generic", "async", "multidb", "pyproject"} <= names
    assert {scenario.template for scenario in SCENARIOS} >= names, (
        f"a template with no containment scenario: {names}"
    )


class Driver:
    """One side's Python process (DRIVER): ``alembic ARGS`` run by the installed console
    script's function, in a folder, with the variables given set over the environment
    the process started with (os.environ without DATABASE_URL and ALEMBIC_CONFIG)."""

    def __init__(self, side: str, cwd: Path) -> None:
        self.side = side
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ALEMBIC_CONFIG")}
        self.process = subprocess.Popen(
            [sys.executable, "-c", DRIVER, side], cwd=cwd, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )

    def __call__(self, cwd: Path, argv: Sequence[str], env: Mapping[str, str] | None = None,
                 *, fresh: bool) -> tuple[int, str, str]:
        """Exit code (as the OS reports it), stdout and stderr of ``alembic ARGV``;
        ``fresh``: the first command of a project (logging as in a new process)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"cwd": str(cwd), "env": dict(env or {}),
                                             "argv": list(argv), "fresh": fresh}) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, f"the {self.side} driver ended (exit {self.process.wait()})"
        code, out, err, plugin_loaded = json.loads(answer)
        assert plugin_loaded == (self.side == "with"), f"plugin loaded: {plugin_loaded} ({self.side})"
        return code, out, err

    def close(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)
        self.process.stdout.close()


@pytest.fixture(scope="module")
def drivers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Driver]]:
    """The two sides' processes, for every test of the module that compares them."""
    folder = tmp_path_factory.mktemp("drivers")
    started = {side: Driver(side, folder) for side in ("with", "without")}
    try:
        yield started
    finally:
        for driver in started.values():
            driver.close()


@pytest.mark.parametrize(
    "scenario",
    [s for s in SCENARIOS if (TEMPLATES / s.template / "env.py").exists()],
    ids=lambda s: s.name,
)
@needs_plugin_entry_points  # before 1.18 it is not loaded at all: nothing to contain
def test_alembic_project_without_opt_in_is_untouched(
    scenario: Scenario, tmp_path: Path, tenants: Tenants, drivers: dict[str, Driver]
) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:  # the two sides are independent
        futures = {
            side: pool.submit(
                session, scenario, tmp_path / side / "project", drivers[side],
                [(url.rsplit("/", 1)[1], url) for url in tenants(len(scenario.engines))],
            )
            for side in ("with", "without")
        }
        with_plugin, without_plugin = futures["with"].result(), futures["without"].result()

    for ours, theirs in zip(with_plugin.outputs, without_plugin.outputs, strict=True):
        assert ours == theirs, f"alembic {' '.join(ours[0])} differs with the plugin installed"
    assert with_plugin.files == without_plugin.files
    assert with_plugin.states == without_plugin.states
    # The session did real work (so the comparison means something) and never saw our file.
    commands = {" ".join(argv): code for argv, code, _, _ in without_plugin.outputs}
    assert commands["upgrade head"] == 0 and commands["downgrade base"] == 0
    after_upgrade = without_plugin.states[0]
    for tables, version in after_upgrade.values():
        assert "account_aaaa00000001" in tables and "lookalike" not in tables
        assert version == ["bbbb00000002"]
    heads = next(out for argv, _, out, _ in without_plugin.outputs if argv == ["heads"])
    assert heads == "bbbb00000002 (head)\n"


def session(scenario: Scenario, root: Path, driver: Driver, dbs: list[tuple[str, str]]) -> Run:
    """``alembic init`` then COMMANDS in a fresh project at ROOT; all paths and names normalized."""
    root.mkdir(parents=True)
    replacements = [(str(root), "<project>")] + [(name, f"<db{i}>") for i, (name, _) in enumerate(dbs)]

    def normalize(text: str) -> str:
        for old, new in replacements:
            text = text.replace(old, new)
        return text

    outputs, states = _commands(scenario, root, dbs, driver, normalize)
    files = {
        str(path.relative_to(root)): _stable(normalize(path.read_text()))
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }
    return Run(outputs, files, states)


def _commands(
    scenario: Scenario, root: Path, dbs: list[tuple[str, str]], driver: Driver,
    normalize: Callable[[str], str],
) -> tuple[list[tuple[list[str], int, str, str]], list[dict[str, tuple[set[str], list[str]]]]]:
    """Send ``init`` and COMMANDS to the driver, doing between them what a user would."""
    env = {"CONTAINMENT_URL": _with_driver(dbs[0][1], scenario.driver)}

    def alembic_run(*argv: str) -> tuple[list[str], int, str, str]:
        code, out, err = driver(root, argv, env, fresh=argv[0] == "init")
        return list(argv), code, normalize(out), normalize(err)

    outputs = [alembic_run("init", "--template", scenario.template, "scripts")]
    assert outputs[0][1] == 0, outputs[0]
    _configure(scenario, root, dbs)
    (root / "scripts" / "versions" / "001_looks_like_ours.sql").write_text(LOOKALIKE)
    states = []
    for argv in COMMANDS:
        outputs.append(alembic_run(*argv))
        if argv[0] == "revision":
            _fill_in(root / "scripts" / "versions", argv[-1])
        if argv[:2] in (["upgrade", "head"], ["downgrade", "base"]) and "--sql" not in argv:
            states.append({f"<db{i}>": _state(url) for i, (_, url) in enumerate(dbs)})
    return outputs, states


def _with_driver(url: str, driver: str) -> str:
    return driver + url[len("postgresql") :]


def _configure(scenario: Scenario, root: Path, dbs: list[tuple[str, str]]) -> None:
    """What a user does after ``alembic init``: the real URLs (or env.py edits when toml-only)."""
    ini = root / "alembic.ini"
    if scenario.toml_only:
        ini.unlink()
        env_py = root / "scripts" / "env.py"
        text = env_py.read_text()
        edits = [
            ("if config.config_file_name is not None:",
             "if config.config_file_name is not None and os.path.exists(config.config_file_name):"),
            ('config.get_main_option("sqlalchemy.url")', 'os.environ["CONTAINMENT_URL"]'),
            ("config.get_section(config.config_ini_section, {})",
             '{"sqlalchemy.url": os.environ["CONTAINMENT_URL"]}'),
        ]
        for old, new in edits:
            assert old in text, f"{scenario.template}/env.py changed: no {old!r}"
            text = text.replace(old, new)
        env_py.write_text("import os\n" + text)
        assert (root / "pyproject.toml").exists()
        return
    text = ini.read_text()
    for i, (_, url) in enumerate(dbs):
        placeholder = PLACEHOLDER_URL + (str(i + 1) if i else "")
        pattern = re.compile(rf"^sqlalchemy\.url = {re.escape(placeholder)}$", re.MULTILINE)
        text, count = pattern.subn(
            f"sqlalchemy.url = {_with_driver(url, scenario.driver)}".replace("%", "%%"), text, count=1
        )
        assert count == 1, f"{scenario.template}/alembic.ini changed: no {placeholder}"
    ini.write_text(text)


def _fill_in(versions: Path, rev_id: str) -> None:
    """Give the new revision real DDL: one table per revision (per engine for multidb)."""
    (path,) = versions.glob(f"{rev_id}_*.py")
    lines, function = path.read_text().splitlines(keepends=True), ""
    for number, line in enumerate(lines):
        found = re.match(r"def ((?:up|down)grade\w*)\(", line)
        if found:
            function = found.group(1)
        elif line.strip() == "pass" and function:
            table = f"account_{rev_id}"
            sql = f"CREATE TABLE {table} (id int)" if function.startswith("up") else f"DROP TABLE {table}"
            lines[number] = line.replace("pass", f"op.execute({sql!r})")
            function = ""
    path.write_text("".join(lines))


def _stable(text: str) -> str:
    return re.sub(r"^Create Date: .*$", "Create Date: <date>", text, flags=re.MULTILINE)


def _state(url: str) -> tuple[set[str], list[str]]:
    import psycopg2

    connection = psycopg2.connect(url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            tables = {row[0] for row in cursor.fetchall()}
            versions: list[str] = []
            if "alembic_version" in tables:
                cursor.execute("SELECT version_num FROM alembic_version ORDER BY 1")
                versions = [row[0] for row in cursor.fetchall()]
            return tables, versions
    finally:
        connection.close()


# ---------------------------------------------------------------------------
# Opting in from pyproject.toml


def _toml_project(root: Path, tool_alembic: str) -> Path:
    (root / "migrations").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[tool.alembic]\n" + tool_alembic)
    (root / "migrations" / "001_first.sql").write_text(
        "-- migrate:up\nCREATE TABLE first (id int);\n-- migrate:down\nDROP TABLE first;\n"
    )
    return root


def test_pyproject_only_project_opts_in_with_our_environment(tmp_path: Path, database_url: str, run_process: ProcessRunner) -> None:
    root = _toml_project(
        tmp_path,
        'script_location = "fraiseql_alembic:alembic_env"\n'
        'version_locations = ["%(here)s/migrations"]\n'
        "fraiseql_lock_wait = 5\n",
    )
    assert not (root / "alembic.ini").exists()
    for argv, expected in [
        (["history"], "<base> -> 001 (head), First\n"),
        (["upgrade", "head"], ""),
        (["current"], "001 (head)\n"),
        (["downgrade", "base"], ""),
        (["current"], ""),
    ]:
        # the upgrade as typed; the others the same runs in this process
        run = run_process if argv == ["upgrade", "head"] else run_process.in_process
        done = run("alembic", *argv, cwd=root, url=database_url, env={"ALEMBIC_CONFIG": None})
        assert (done.returncode, done.stdout) == (0, expected), done.stderr


@needs_plugin_entry_points
def test_pyproject_only_project_opts_in_with_its_own_env(tmp_path: Path, database_url: str, run_process: ProcessRunner) -> None:
    """``fraiseql_migrations = true`` under ``[tool.alembic]``, keeping Alembic's env.py.
    The upgrade and the last ``heads`` run as typed; the others in this process."""
    init = run_process.in_process("alembic", "init", "--template", "pyproject", "scripts", cwd=tmp_path, url=database_url, env={"ALEMBIC_CONFIG": None})
    assert init.returncode == 0, init.stderr
    (tmp_path / "alembic.ini").unlink()
    env_py = tmp_path / "scripts" / "env.py"
    env_py.write_text(
        "import os\n"
        + env_py.read_text()
        .replace("if config.config_file_name is not None:", "if False:")
        .replace(
            "config.get_section(config.config_ini_section, {})",
            '{"sqlalchemy.url": os.environ["DATABASE_URL"].replace("postgresql:", "postgresql+psycopg2:")}',
        )
    )
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("[tool.alembic]\n", "[tool.alembic]\nfraiseql_migrations = true\n", 1))
    (tmp_path / "scripts" / "versions" / "001_first.sql").write_text(
        "-- migrate:up\nCREATE TABLE first (id int);\n-- migrate:down\nDROP TABLE first;\n"
    )
    assert run_process.in_process("alembic", "heads", cwd=tmp_path, url=database_url, env={"ALEMBIC_CONFIG": None}).stdout == "001 (head)\n"
    upgrade = run_process("alembic", "upgrade", "head", cwd=tmp_path, url=database_url, env={"ALEMBIC_CONFIG": None})
    assert upgrade.returncode == 0, upgrade.stderr
    assert run_process.in_process("alembic", "current", cwd=tmp_path, url=database_url, env={"ALEMBIC_CONFIG": None}).stdout == "001 (head)\n"
    assert "first" in _state(database_url)[0]
    # false (a TOML boolean) is not opting in
    pyproject.write_text(pyproject.read_text().replace("fraiseql_migrations = true", "fraiseql_migrations = false"))
    assert run_process("alembic", "heads", cwd=tmp_path, url=database_url, env={"ALEMBIC_CONFIG": None}).stdout == ""


NAMED_SECTION = "\n[other]\nscript_location = %(here)s/scripts\nsqlalchemy.url = driver://u@h/d\n"


@pytest.mark.parametrize(
    "case, argv, extra_env",
    [
        ("no config at all", ["heads"], {}),
        ("-n with a section", ["-n", "other", "heads"], {}),
        ("-n without one", ["-n", "nosuch", "heads"], {}),
        ("ALEMBIC_CONFIG", ["heads"], {"ALEMBIC_CONFIG": "other.ini"}),
    ],
)
def test_other_config_forms_behave_as_alembic_does(
    case: str, argv: list[str], extra_env: dict[str, str], tmp_path: Path,
    run_process: ProcessRunner, drivers: dict[str, Driver],
) -> None:
    """The installed command, and Alembic without our plugin, on less common config forms
    (the project's ``alembic init`` is set-up: in this process)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ALEMBIC_CONFIG")}
    if case != "no config at all":
        init = run_process.in_process("alembic", "init", "scripts", url=None,
                                      env={"ALEMBIC_CONFIG": None})
        assert init.returncode == 0, init.stdout + init.stderr
        with open(tmp_path / "alembic.ini", "a") as ini:
            ini.write(NAMED_SECTION)
        if extra_env:
            shutil.move(tmp_path / "alembic.ini", tmp_path / "other.ini")
        (tmp_path / "scripts" / "versions" / "001_looks_like_ours.sql").write_text(LOOKALIKE)
    env.update(extra_env)
    ours = subprocess.run(
        [str(BIN / "alembic"), *argv], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )
    code, out, err = drivers["without"](tmp_path, argv, extra_env, fresh=True)  # no plugin
    assert (ours.returncode, ours.stdout, ours.stderr) == (code, out, err)
    assert (code == 0) == (case in ("-n with a section", "ALEMBIC_CONFIG")), out + err
