"""Projects that keep their own env.py and opted in (``fraiseql_migrations = true``).

Their env.py calls ``context.configure(...)`` and ``context.run_migrations()`` itself, so
our env.py's lock and checks do not run there.  This module, a second ``alembic.plugins``
entry point (``fraiseql_adopted``), wraps Alembic's ``EnvironmentContext.run_migrations``
for such projects only: commands that move the database (``upgrade``, ``downgrade``,
``stamp``, ``ensure_version``) take our migration lock first, and ``upgrade`` makes the
checks ``fraiseql migrate up`` makes (changed applied files, revisions merged out of
order, every pending file read and split) before anything runs.

Any other project, our own environment included, gets Alembic's methods untouched.  The
plugin module never imports this one (the import rules forbid the cycle), hence the
second entry point.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from .plugin import (
    DEFAULT_HISTORY_SCHEMA,
    PluginModule,
    as_command_error,
    config_option,
    is_our_env,
    opted_in,
    run_context,
    set_run_context,
)

if TYPE_CHECKING:
    from alembic.runtime.environment import EnvironmentContext
    from alembic.runtime.migration import MigrationContext
    from alembic.runtime.plugins import Plugin
    from alembic.script.base import ScriptDirectory
    from psycopg2.extensions import connection as Connection

log = logging.getLogger(__name__)

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
    """Wrap ``EnvironmentContext.run_migrations`` (see the module docstring); not at
    :func:`install`, where Alembic's modules are half imported."""
    # lazy: see the docstring
    from alembic.runtime.environment import EnvironmentContext

    if getattr(EnvironmentContext, _INSTALLED_FLAG, False):
        return
    original_run = EnvironmentContext.run_migrations

    def run_migrations(self: EnvironmentContext, **kw: Any) -> None:
        if not adopted(self) or self.is_offline_mode():
            original_run(self, **kw)
            return
        with guarded(self):
            original_run(self, **kw)

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


# Alembic 1.18.0-1.20.0 iterate over what the entry point loads (see PluginModule)
sys.modules[__name__].__class__ = PluginModule
