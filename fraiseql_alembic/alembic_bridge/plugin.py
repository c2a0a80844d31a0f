"""The ``alembic.plugins`` entry point: numbered ``.sql`` files become Alembic revisions.

Alembic 1.18+ imports this module whenever ``alembic`` is imported and calls
:func:`setup`; on 1.16 and 1.17, which load no plugins, our package calls
:func:`install_without_entry_points` when Alembic imports it to find our environment.
We wrap ``ScriptDirectory._load_revisions`` (private API; CI runs every minor release
of the supported range, and the newest) so that, in projects that opted
in, every ``NNN_slug.sql`` file in the version locations is yielded as a
``Script`` whose module has ``revision``, ``down_revision``, ``upgrade()`` and
``downgrade()``.  The plain ``alembic`` CLI, pytest-alembic and our own commands
all see the same chain.

A project opts in by using our environment (``script_location =
fraiseql_alembic:alembic_env``) or by setting ``fraiseql_migrations = true`` in
its ``[alembic]`` section (or ``[tool.alembic]`` in pyproject.toml).  Nothing changes
for any other project, whatever its config style, and a failure to install the hooks
is logged, never raised.
"""

from __future__ import annotations

import logging
import os
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from alembic.autogenerate.api import RevisionContext
    from alembic.config import Config
    from alembic.operations.ops import MigrationScript
    from alembic.runtime.migration import MigrationContext
    from alembic.runtime.plugins import Plugin
    from alembic.script.base import Script, ScriptDirectory

    from ..engine.cancel import CancelToken
    from ..engine.events import Events
    from ..engine.session import Session, SessionReset
    from ..settings import RunOptions
    from ..sql.parse import ParsedMigration

log = logging.getLogger(__name__)

OPT_IN_OPTION = "fraiseql_migrations"
ENV_LOCATION = "fraiseql_alembic:alembic_env"
_ENV_DIR = Path(__file__).resolve().parent.parent / "alembic_env"
_INSTALLED_FLAG = "_fraiseql_sql_installed"

#: The one ``config.attributes`` key of ours: it holds a :class:`RunContext`.
RUN_CONTEXT_KEY = "fraiseql"
DEFAULT_HISTORY_SCHEMA = "public"


@dataclass(frozen=True)
class RunContext:
    """What our API tells our env.py and the SQL revisions about one run, and what our
    env.py adds while it prepares the run (with :func:`dataclasses.replace`).

    Read it with :func:`run_context`: a plain ``alembic`` run, which our API did not
    start, gets the defaults."""

    url: str | None = None  # the database URL our API resolved
    history_schema: str | None = None  # None: ``fraiseql_history_schema``, else public
    run_options: RunOptions | None = None  # None: the ``fraiseql_*`` options
    reporter: Events | None = None
    cancel: CancelToken | None = None  # shared with the thread that gets signals
    lock_held: bool = False  # our API holds the migration lock already
    script_directory: ScriptDirectory | None = None  # the folder our API loaded
    # set by our env.py, on a connection it opened
    history_ready: bool = False  # the history table exists (created and committed)
    session_reset: SessionReset | None = None  # run before each SQL migration
    lock_check: Callable[[], None] | None = None  # before each step (a lost lease stops)

    @property
    def schema(self) -> str:
        """The history schema, ``public`` when none was given."""
        return DEFAULT_HISTORY_SCHEMA if self.history_schema is None else self.history_schema


def run_context(config: Config | None) -> RunContext:
    """The :class:`RunContext` our API or env.py stored on ``config``, else the defaults."""
    found = config.attributes.get(RUN_CONTEXT_KEY) if config is not None else None
    return found if isinstance(found, RunContext) else RunContext()


def set_run_context(config: Config, context: RunContext) -> None:
    config.attributes[RUN_CONTEXT_KEY] = context


def setup(plugin: Plugin) -> None:
    """Called by Alembic for the entry point; installs the hooks once, never raises."""
    try:
        install()
    except Exception:  # a broken plugin must never break unrelated `alembic` use
        log.warning("fraiseql-alembic: could not install the SQL revision loader", exc_info=True)


#: The oldest Alembic we run on ([tool.alembic], ``get_alembic_option``: 1.16), and the
#: first that loads ``alembic.plugins`` entry points.
OLDEST_ALEMBIC = (1, 16)
PLUGINS_SINCE = (1, 18)


def alembic_version() -> tuple[int, int]:
    """The installed Alembic's (major, minor)."""
    # lazy: only on the way into Alembic (read from the metadata: Alembic may be half
    # imported when it loads our entry points)
    from importlib.metadata import version

    major, minor, *_ = [*version("alembic").split("."), "0"]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def install_without_entry_points() -> None:
    """On an Alembic without plugin entry points (1.16, 1.17), install the hooks that
    :func:`setup` installs on newer ones.  Called when our package is imported after
    Alembic (``script_location = fraiseql_alembic:alembic_env``), by our env.py and by
    our API before it uses Alembic.  An Alembic older than we support raises Alembic's
    CommandError (one ``FAILED:`` line) wrapping our ConfigError; installing the hooks
    otherwise never raises."""
    version = alembic_version()
    if version >= PLUGINS_SINCE:
        return  # Alembic loaded our entry points itself
    if version < OLDEST_ALEMBIC:
        # lazy: Alembic imports this plugin for every project; ours load only for opted-in ones
        from ..errors import ConfigError

        raise as_command_error(ConfigError(
            f"fraiseql-alembic runs on Alembic {OLDEST_ALEMBIC[0]}.{OLDEST_ALEMBIC[1]} "
            f"and later, and this is Alembic {version[0]}.{version[1]}: "
            f"pip install 'alembic>={OLDEST_ALEMBIC[0]}.{OLDEST_ALEMBIC[1]}'"
        ))
    try:
        install()
        # `alembic revision` may be past ScriptDirectory.from_config already (it is
        # what imported us), so the revision hook is installed now, not there
        _install_revision_hook()
    except Exception:  # a broken plugin must never break unrelated `alembic` use
        log.warning("fraiseql-alembic: could not install the SQL revision loader", exc_info=True)


def install() -> None:
    # lazy: Alembic imports this plugin while it is itself being imported
    from alembic.script.base import ScriptDirectory

    if getattr(ScriptDirectory, _INSTALLED_FLAG, False):
        return
    # private Alembic API (every minor of the range is tested): the one place revisions are listed
    original_load = ScriptDirectory._load_revisions  # noqa: SLF001
    original_from_config = ScriptDirectory.from_config.__func__  # type: ignore[attr-defined]

    def from_config(cls: type[ScriptDirectory], config: Config) -> ScriptDirectory:
        _install_revision_hook()  # `alembic revision` starts here, once Alembic is imported
        loaded = run_context(config).script_directory
        if loaded is not None:  # our API loaded the folder already: do not load it twice
            return loaded
        directory: ScriptDirectory = original_from_config(cls, config)
        # our own mark on Alembic's object, read by _load_revisions below
        directory._fraiseql_opted_in = opted_in(config)  # type: ignore[attr-defined]  # noqa: SLF001
        return directory

    def _load_revisions(self: ScriptDirectory) -> Iterator[Script]:
        ours = getattr(self, "_fraiseql_opted_in", False) or is_our_env(self.dir)
        if not ours:  # not our project: Alembic's own generator, untouched
            yield from original_load(self)
            return
        # Alembic's own scan resolves every file of the folder; with SQL files only,
        # there is nothing for it to find.
        scripts = list(original_load(self)) if _has_python_files(self) else []
        yield from scripts
        yield from sql_scripts(self, scripts)

    ScriptDirectory.from_config = classmethod(from_config)  # type: ignore[assignment,method-assign]
    ScriptDirectory._load_revisions = _load_revisions  # type: ignore[method-assign]  # noqa: SLF001
    setattr(ScriptDirectory, _INSTALLED_FLAG, True)


def _install_revision_hook() -> None:
    """Wrap ``RevisionContext.generate_scripts``, the step of ``alembic revision`` that
    writes the revision directives out as files (after ``process_revision_directives``):
    in our environment they become numbered SQL files (:mod:`.revision`).

    Installed on the first ``ScriptDirectory.from_config``, not in :func:`install`:
    Alembic loads its plugins while ``alembic.autogenerate.api`` is half imported."""
    # lazy: see the docstring
    from alembic.autogenerate.api import RevisionContext

    if getattr(RevisionContext, _INSTALLED_FLAG, False):
        return
    original_generate = RevisionContext.generate_scripts

    def generate_scripts(self: RevisionContext) -> Iterator[Script | None]:
        if writes_sql(self):  # our environment: numbered SQL files, not hex-id .py files
            for directive in self.generated_revisions:
                yield _sql_revision(self.script_directory, directive)
        else:
            yield from original_generate(self)

    RevisionContext.generate_scripts = generate_scripts  # type: ignore[method-assign]
    setattr(RevisionContext, _INSTALLED_FLAG, True)


#: ``sql`` (the default with our environment) or ``python`` (the default with your own
#: env.py): what ``alembic revision`` writes in a project that opted in.
REVISION_FORMAT_OPTION = "fraiseql_revision_format"
SQL_REVISIONS = "sql"
PYTHON_REVISIONS = "python"


def writes_sql(context: RevisionContext) -> bool:
    """Whether this ``alembic revision`` writes SQL files: not with ``--rev-id`` (a ``.py``
    revision on request), not with ``--autogenerate`` (autogenerate writes its own file),
    else as :func:`revision_format` says."""
    args = context.command_args
    if args.get("autogenerate") or args.get("rev_id"):
        return False
    return revision_format(context.config, context.script_directory) == SQL_REVISIONS


def revision_format(config: Config, directory: ScriptDirectory) -> str:
    """``sql`` or ``python``: the ``fraiseql_revision_format`` option, else ``sql`` with
    our environment and ``python`` with your own env.py.  A project that did not opt in
    always gets ``python`` (and the option is not read)."""
    ours = is_our_env(directory.dir)
    if not ours and not opted_in(config):
        return PYTHON_REVISIONS
    value = (config_option(config, REVISION_FORMAT_OPTION) or "").strip().lower()
    if not value:
        return SQL_REVISIONS if ours else PYTHON_REVISIONS
    if value not in (SQL_REVISIONS, PYTHON_REVISIONS):
        # lazy: Alembic imports this plugin for every project; ours load only for opted-in ones
        from ..errors import UsageError

        raise as_command_error(UsageError(
            f"{REVISION_FORMAT_OPTION} = {value}: use {SQL_REVISIONS} or {PYTHON_REVISIONS}"
        ))
    return value


def _sql_revision(directory: ScriptDirectory, directive: MigrationScript) -> Script:
    """Write one revision directive as a SQL file; its ``Script``, as Alembic returns one."""
    # lazy: Alembic imports this plugin while it is itself being imported
    from alembic import util
    from alembic.script.base import Script

    # lazy: Alembic imports this plugin for every project; ours load only for opted-in ones
    from ..errors import MigrationError
    from ..sql.names import parse_filename
    from .revision import write_directive

    try:
        path, parent = write_directive(directory, directive)
        name = parse_filename(path.name)
        assert name is not None  # scaffold writes only names it can read back
        migration = load_parsed(name, path)
    except MigrationError as err:
        raise as_command_error(err) from err
    util.msg(f"Generating {path.absolute()} ...  done", **directory.messaging_opts)
    script = Script(revision_module(migration, parent), migration.name.version, str(path))
    directory.revision_map.add_revision(script)  # as Alembic does with the files it writes
    return script


def opted_in(config: Config) -> bool:
    """Our environment in ``script_location``, or ``fraiseql_migrations = true``.

    Both are read where Alembic reads its own options: the main section of alembic.ini,
    else ``[tool.alembic]`` in pyproject.toml.  Never raises: a configuration we cannot
    read is not ours, and Alembic reports its own problems with it.
    """
    try:
        location = (config_option(config, "script_location") or "").strip()
        if location == ENV_LOCATION or (location and is_our_env(location)):
            return True
        value = (config_option(config, OPT_IN_OPTION) or "").strip().lower()
    except Exception:  # never break a project that did not opt in
        log.debug("fraiseql-alembic: could not read the opt-in options", exc_info=True)
        return False
    return value in ("true", "yes", "on", "1")


@overload
def config_option(config: Config, name: str, default: str) -> str: ...
@overload
def config_option(config: Config, name: str, default: None = None) -> str | None: ...
def config_option(config: Config, name: str, default: str | None = None) -> str | None:
    """An option from the main section of alembic.ini, else from ``[tool.alembic]``.

    Unlike ``Config.get_main_option`` this works without alembic.ini (a project
    configured in pyproject.toml only).  TOML booleans and numbers come back as text
    (``true``, ``60``); lists and tables, which none of our options are, as ``default``.
    """
    if config.file_config.has_option(config.config_ini_section, name):
        return config.file_config.get(config.config_ini_section, name)
    raw = config.toml_alembic_config.get(name)
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int | float):
        return str(raw)
    value = config.get_alembic_option(name) if isinstance(raw, str) else None
    return value if isinstance(value, str) else default


def _has_python_files(directory: ScriptDirectory) -> bool:
    """Whether any version location holds a file Alembic could load as a revision."""
    # private Alembic API: the resolved version_locations, as Alembic itself reads them
    for location in directory._version_locations:  # noqa: SLF001
        if not location.exists():
            continue
        if directory.recursive_version_locations:
            return True  # let Alembic walk it
        with os.scandir(location) as entries:
            if any(entry.name.endswith((".py", ".pyc")) for entry in entries):
                return True
    return False


def is_our_env(directory: str) -> bool:
    try:
        return Path(directory).resolve() == _ENV_DIR
    except OSError:
        return False


def sql_scripts(directory: ScriptDirectory, existing: list[Script]) -> Iterator[Script]:
    """Build a ``Script`` for each SQL migration in the directory's version locations."""
    # lazy: Alembic imports this plugin while it is itself being imported
    from alembic import util
    from alembic.script.base import Script

    # lazy: Alembic imports this plugin for every project; ours load only for opted-in ones
    from ..errors import MigrationError
    from ..project.loader import Revision, check_unique_numbers, link_chain, list_folder
    from ..sql.names import MigrationName

    try:
        found: list[tuple[MigrationName, Path]] = []
        for location in directory._version_locations:  # noqa: SLF001 (as above)
            if location.exists():
                found.extend(list_folder(Path(location)).migrations)
        found.sort(key=lambda item: (item[0].number, item[0].filename))
        check_unique_numbers([name for name, _ in found])
        parsed = [load_parsed(name, path) for name, path in found]
        python = [
            Revision(
                script.revision,
                tuple(util.to_tuple(script.down_revision, default=())),
                Path(script.path).name,
            )
            for script in existing
        ]
        parents = link_chain(parsed, python)
    except MigrationError as err:
        raise as_command_error(err) from err
    for migration, (_, path) in zip(parsed, found, strict=True):
        module = revision_module(migration, parents[migration.name.version])
        yield Script(module, migration.name.version, path)


_command_error_class: type[Exception] | None = None


def as_command_error(err: Exception) -> Exception:
    """Wrap one of our errors in Alembic's CommandError so the `alembic` CLI prints one line.

    The class is made on first use: importing alembic at module level here would be
    circular, since Alembic imports this module while it is itself being imported.
    """
    global _command_error_class
    if _command_error_class is None:
        # lazy: Alembic imports this plugin while it is itself being imported
        from alembic.util import CommandError

        class FraiseqlCommandError(CommandError):
            """One of our errors surfacing through Alembic; ``original`` holds it."""

            def __init__(self, original: Exception) -> None:
                super().__init__(str(original))
                self.original = original

        _command_error_class = FraiseqlCommandError
    return _command_error_class(err)


_PARSE_CACHE: dict[tuple[str, int, int], ParsedMigration] = {}


def load_parsed(name: Any, path: Path) -> ParsedMigration:
    """Parse a file once per process (keyed by path, size and mtime)."""
    # lazy: Alembic imports this plugin for every project; ours load only for opted-in ones
    from ..project.loader import read_migration

    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    cached = _PARSE_CACHE.get(key)
    if cached is None:
        cached = _PARSE_CACHE[key] = read_migration(name, path)
    return cached


def revision_module(migration: ParsedMigration, parent: str | None) -> types.ModuleType:
    """A module that looks to Alembic like a revision file."""
    module = types.ModuleType(f"fraiseql_sql_revision_{migration.name.version}")
    module.__doc__ = migration.title
    module.revision = migration.name.version  # type: ignore[attr-defined]
    module.down_revision = parent  # type: ignore[attr-defined]
    module.branch_labels = None  # type: ignore[attr-defined]
    module.depends_on = None  # type: ignore[attr-defined]
    module.fraiseql_migration = migration  # type: ignore[attr-defined]
    module.upgrade = _direction(migration, "up")  # type: ignore[attr-defined]
    module.downgrade = _direction(migration, "down")  # type: ignore[attr-defined]
    return module


def _direction(migration: ParsedMigration, direction: str) -> Callable[..., None]:
    def run(**_: Any) -> None:
        # lazy: Alembic imports this plugin while it is itself being imported
        from alembic import op

        # lazy: Alembic imports this plugin for every project; ours load only for opted-in ones
        from ..engine.preflight import irreversible_message
        from ..engine.recorder import AlembicRecorder, Step
        from ..engine.run import run_step
        from ..errors import IrreversibleMigrationError, MigrationError

        context = op.get_context()
        run = run_context(context.config)
        try:
            if direction == "down" and (not migration.reversible or migration.down is None):
                raise IrreversibleMigrationError(irreversible_message(migration))
            session = session_of(context)
            # Alembic moves alembic_version: the step's versions are not ours to name
            step = Step(migration, direction == "up", None, None)
            # its statements are sent as on the direct path: a cancel is never lost
            with session.cancellable(None if session.as_sql else run.cancel):
                if run.session_reset is not None and not session.as_sql:
                    run.session_reset.run(session)
                run_step(session, step, AlembicRecorder(run.schema, run.history_ready),
                         run.reporter, run.cancel)
        except MigrationError as err:
            raise as_command_error(err) from err

    run.__name__ = "upgrade" if direction == "up" else "downgrade"
    return run


def session_of(context: MigrationContext) -> Session:
    """Our :class:`Session` over Alembic's MigrationContext: its connection (or, offline,
    its output) and its ``autocommit_block``; one per context, kept on it."""
    # lazy: Alembic imports this plugin for every project; ours load only for opted-in ones
    from ..engine.session import Session

    found = getattr(context, "_fraiseql_session", None)
    if isinstance(found, Session):
        return found
    if context.as_sql:
        session = Session(None, autocommit_block=context.autocommit_block,
                          output=context.impl.static_output)
    else:
        connection = context.connection
        assert connection is not None
        session = Session(connection.connection.dbapi_connection,  # type: ignore[arg-type]
                          autocommit_block=context.autocommit_block)
    # our own mark on Alembic's MigrationContext: one Session for all of its steps
    context._fraiseql_session = session  # type: ignore[attr-defined]  # noqa: SLF001
    return session


class PluginModule(types.ModuleType):
    """This module, iterable over itself.

    Alembic 1.18.0-1.20.0 iterate over what the entry point loads (``for mod in
    entrypoint.load()``); 1.20.1+ accept a module and warn about an iterable.  A module
    that is both satisfies every version in the supported range.
    """

    def __iter__(self) -> Iterator[types.ModuleType]:
        yield self


sys.modules[__name__].__class__ = PluginModule
