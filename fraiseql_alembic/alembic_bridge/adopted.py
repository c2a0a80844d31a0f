"""Projects that keep their own env.py and opted in (``fraiseql_migrations = true``).

Their env.py calls ``context.configure(...)`` and ``context.run_migrations()`` itself, so
our env.py's lock and checks do not run there.  This module, a second ``alembic.plugins``
entry point (``fraiseql_adopted``), wraps two methods of Alembic's ``EnvironmentContext``
for such projects only:

- ``configure``: the keyword arguments the env.py passed are kept in
  ``config.attributes`` (:data:`CONFIGURED_KEY`); :func:`configured_by_env` runs the
  env.py offline to read them for ``fraiseql migrate``.
- ``run_migrations``: commands that move the database (``upgrade``, ``downgrade``,
  ``stamp``, ``ensure_version``) take our migration lock first, and ``upgrade`` makes the
  checks ``fraiseql migrate up`` makes (changed applied files, revisions merged out of
  order, every pending file read and split) before anything runs.

Any other project, our own environment included, gets Alembic's methods untouched.  The
plugin module never imports this one (the import rules forbid the cycle), hence the
second entry point.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from .plugin import (
    DEFAULT_HISTORY_SCHEMA,
    OPT_IN_OPTION,
    PluginModule,
    as_command_error,
    config_option,
    is_our_env,
    opted_in,
    run_context,
    set_run_context,
)

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext
    from alembic.runtime.migration import MigrationContext
    from alembic.runtime.plugins import Plugin
    from alembic.script.base import ScriptDirectory
    from psycopg2.extensions import connection as Connection

log = logging.getLogger(__name__)

#: ``config.attributes`` key: the keyword arguments an adopted env.py gave ``configure``.
CONFIGURED_KEY = "fraiseql_configure"
_INSTALLED_FLAG = "_fraiseql_adopted_installed"
# The commands that move the database, by the name of the function Alembic's command
# hands to env.py (used when Alembic is driven from Python, without a command line).
_MOVING = {"upgrade": "upgrade", "downgrade": "downgrade", "do_stamp": "stamp",
           "do_ensure_version": "ensure_version"}


def setup(plugin: Plugin) -> None:
    """Called by Alembic for the entry point; installs the hooks once, never raises."""
    try:
        install()
    except Exception:  # a broken plugin must never break unrelated `alembic` use
        log.warning("fraiseql-alembic: could not install the adopted env.py hooks",
                    exc_info=True)


def install() -> None:
    # lazy: Alembic imports this plugin while it is itself being imported
    from alembic.script.base import ScriptDirectory

    if getattr(ScriptDirectory, _INSTALLED_FLAG, False):
        return
    original_run_env = ScriptDirectory.run_env

    def run_env(self: ScriptDirectory) -> None:
        _install_environment_hooks()  # every env.py starts here, once Alembic is imported
        original_run_env(self)

    ScriptDirectory.run_env = run_env  # type: ignore[method-assign]
    setattr(ScriptDirectory, _INSTALLED_FLAG, True)


def _install_environment_hooks() -> None:
    """Wrap ``EnvironmentContext.configure`` and ``run_migrations`` (see the module
    docstring); not at :func:`install`, where Alembic's modules are half imported."""
    # lazy: see the docstring
    from alembic.runtime.environment import EnvironmentContext

    if getattr(EnvironmentContext, _INSTALLED_FLAG, False):
        return
    original_configure = EnvironmentContext.configure
    original_run = EnvironmentContext.run_migrations

    def configure(self: EnvironmentContext, *args: Any, **kwargs: Any) -> None:
        if adopted(self):
            self.config.attributes[CONFIGURED_KEY] = dict(kwargs)
        original_configure(self, *args, **kwargs)

    def run_migrations(self: EnvironmentContext, **kw: Any) -> None:
        if not adopted(self) or self.is_offline_mode():
            original_run(self, **kw)
            return
        with guarded(self):
            original_run(self, **kw)

    EnvironmentContext.configure = configure  # type: ignore[method-assign]
    EnvironmentContext.run_migrations = run_migrations  # type: ignore[method-assign]
    setattr(EnvironmentContext, _INSTALLED_FLAG, True)


def adopted(environment: EnvironmentContext) -> bool:
    """A project that opted in and runs its own env.py (not ours).  Never raises."""
    try:
        return not is_our_env(environment.script.dir) and opted_in(environment.config)
    except Exception:  # never break a project that did not opt in
        log.debug("fraiseql-alembic: could not tell whether the project opted in",
                  exc_info=True)
        return False


def moving_command(environment: EnvironmentContext) -> str | None:
    """``upgrade``, ``downgrade``, ``stamp`` or ``ensure_version`` when that is what runs,
    else None (a command that only reads, or autogenerate)."""
    # lazy: Alembic imports this plugin for every project; ours load only for opted-in ones
    from .environment import command_name

    name = command_name(environment.config)
    if name:
        return name if name in _MOVING.values() else None
    fn = environment.context_opts.get("fn")
    return _MOVING.get(getattr(fn, "__name__", ""))


@contextmanager
def guarded(environment: EnvironmentContext) -> Iterator[None]:
    """Our lock around an adopted env.py's ``run_migrations``, and ``up``'s checks before
    an upgrade; our errors become Alembic's CommandError (one ``FAILED:`` line)."""
    # lazy: Alembic imports this plugin for every project; ours load only for opted-in ones
    from ..errors import MigrationError
    from .environment import lock_for, run_options, url_of

    config = environment.config
    command = moving_command(environment)
    migration_context = environment.get_context()
    connection = migration_context.connection
    if command is None or connection is None or run_context(config).lock_held:
        yield
        return
    run = run_context(config)
    schema = run.history_schema or config_option(
        config, "fraiseql_history_schema", DEFAULT_HISTORY_SCHEMA
    )
    set_run_context(config, replace(run, history_schema=schema))
    with ExitStack() as stack:
        try:
            stack.enter_context(lock_for(config, url_of(connection), run_options(config)))
            if command == "upgrade":
                _verify(environment, migration_context, schema)
        except MigrationError as err:
            raise as_command_error(err) from err
        yield


def _verify(
    environment: EnvironmentContext, migration_context: MigrationContext, schema: str
) -> None:
    """The checks `fraiseql migrate up` makes, on the env.py's own connection, inside
    whatever transaction it began (nothing is committed or rolled back here); the
    applied revisions are read from the env.py's own version table."""
    # lazy: Alembic imports this plugin for every project; ours load only for opted-in ones
    from ..engine.database import read_state, standard_strings
    from ..engine.preflight import refuse_inconsistent, sql_migration, validate_pending
    from ..engine.status import PENDING, build

    connection = migration_context.connection
    assert connection is not None
    dbapi = cast("Connection", connection.connection.dbapi_connection)  # psycopg2's
    scripts = list(reversed(list(environment.script.walk_revisions())))
    heads = tuple(sorted(migration_context.get_current_heads()))
    state = read_state(dbapi, schema, heads=heads)
    report = build(scripts, state, sql_migration, lambda s: os.path.basename(s.path))
    refuse_inconsistent(report)
    validate_pending([row for row in report.rows if row.state == PENDING],
                     standard_strings=standard_strings(dbapi))


def refuse_unsupported(folder: Path, database_url: str | None, cwd: Path) -> None:
    """Refuse, in one line, to run ``fraiseql migrate`` on the versions folder of an
    adopted project (``alembic.ini`` or ``[tool.alembic]`` in ``cwd``) whose env.py
    keeps its revisions where we would not read them (``version_table``,
    ``version_table_schema``).  Anything else returns at once; Alembic is imported only
    when a config file there mentions ``fraiseql_migrations``."""
    ini, pyproject = cwd / "alembic.ini", cwd / "pyproject.toml"
    if not any(_mentions(file, OPT_IN_OPTION) for file in (ini, pyproject)):
        return
    # lazy: Alembic, and ours, only for a project that may have opted in
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from ..engine.database import VERSION_TABLE
    from ..errors import ConfigError, shown_path

    config = Config(str(ini) if ini.is_file() else None,
                    toml_file=str(pyproject) if pyproject.is_file() else None)
    if not opted_in(config) or is_our_env(config_option(config, "script_location") or ""):
        return
    try:
        script = ScriptDirectory.from_config(config)
        # private Alembic API: the resolved version_locations, as Alembic itself reads them
        locations = {Path(location).resolve() for location in script._version_locations}  # noqa: SLF001
    except Exception:  # Alembic says what is wrong with its config when it runs
        log.debug("fraiseql-alembic: could not read the project's Alembic config",
                  exc_info=True)
        return
    if folder.resolve() not in locations:
        return
    env = shown_path(Path(script.dir) / "env.py")
    if database_url and not config_option(config, "sqlalchemy.url"):
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    try:
        settings = configured_by_env(config, script)
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0]
        raise ConfigError(
            f"Could not run {env} offline to read the settings it gives "
            f"context.configure ({type(err).__name__}: {first}); fraiseql migrate needs "
            "them in a project with its own env.py: make `alembic upgrade head --sql` "
            "work, or use `alembic upgrade`/`downgrade` in this project"
        ) from err
    named = {key: settings[key] for key in ("version_table", "version_table_schema")
             if settings.get(key) not in (None, VERSION_TABLE if key == "version_table" else None)}
    if named:
        shown = ", ".join(f"{key}={value!r}" for key, value in named.items())
        raise ConfigError(
            f"{env} configures {shown}, and fraiseql migrate reads and moves "
            f"{VERSION_TABLE} on the search_path: run `alembic upgrade`/`alembic downgrade` "
            "in this project instead (they take the same lock and make the same checks)"
        )


def _mentions(path: Path, word: str) -> bool:
    try:
        return word in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


@contextmanager
def _logging_kept() -> Iterator[None]:
    """Undo what an env.py's ``fileConfig`` does to this process's logging, and keep
    its INFO lines quiet while it runs."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    loggers = {name: (logger.disabled, logger.level)
               for name, logger in logging.Logger.manager.loggerDict.items()
               if isinstance(logger, logging.Logger)}
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, (disabled, logger_level) in loggers.items():
            logger = logging.getLogger(name)
            logger.disabled, logger.level = disabled, logger_level


def configured_by_env(config: Config, script: ScriptDirectory) -> Mapping[str, Any]:
    """The keyword arguments an adopted project's env.py gives ``context.configure``,
    read by running it offline (as ``alembic upgrade --sql`` would, its output thrown
    away): nothing connects, nothing is written."""
    # lazy: Alembic only when a run needs it
    from alembic.runtime.environment import EnvironmentContext

    _install_environment_hooks()
    config.attributes.pop(CONFIGURED_KEY, None)
    with _logging_kept(), EnvironmentContext(
        config, script, fn=lambda rev, context: [], as_sql=True,
        output_buffer=io.StringIO(), dont_mutate=True,
    ):
        script.run_env()
    found = config.attributes.get(CONFIGURED_KEY)
    return found if isinstance(found, dict) else {}


# Alembic 1.18.0-1.20.0 iterate over what the entry point loads (see PluginModule)
sys.modules[__name__].__class__ = PluginModule
