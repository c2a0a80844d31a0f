"""Alembic's autogenerate in our environment: ``alembic check`` and ``alembic revision
--autogenerate`` compare the models with the migrations' schema, not the live database.

When our env.py runs for one of them, the models come from the project setting
(:func:`~fraiseql_alembic.settings.models_setting`); the schema is built in a shadow
database (``FRAISEQL_SHADOW_DATABASE_URL``, else a throwaway PostgreSQL) by our own
engine (a folder with ``.py`` revisions by a nested Alembic ``upgrade``, after which this
run's ``context`` proxy is put back), and Alembic is configured on it with
:func:`.autogen.options` (our bookkeeping tables filtered out).  ``alembic revision
--autogenerate`` then writes the numbered SQL file ``fraiseql migrate create
--autogenerate`` writes, through
:func:`.revision.write_sql_revision`, instead of a ``.py`` revision (``--rev-id`` or
``fraiseql_revision_format = python`` keep the ``.py``).  A connection handed to env.py
(pytest-alembic) is compared as it is: the caller built it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from alembic import context, util
from alembic.config import Config
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData

from ..engine.deploy import Progress, migration_lock, run_direct
from ..engine.preflight import sql_migration
from ..engine.recorder import Step
from ..engine.shadow import shadow_database
from ..errors import ConfigError, MigrationError
from ..settings import (
    METADATA_INI_OPTION,
    ModelsSetting,
    Settings,
    models_setting,
    resolve,
    shadow_database_url,
)
from .autogen import comparison_of, options, schemas_of
from .commands import alembic_config, revisions, upgrade
from .generate import finish, header_of
from .models import load_metadata
from .plugin import PYTHON_REVISIONS, as_command_error, config_option, revision_format
from .revision import write_sql_revision
from .sqlrender import render


@dataclass(frozen=True)
class AutogenerateRun:
    """This env.py run compares models: ``alembic check`` or ``revision --autogenerate``."""

    models: ModelsSetting
    metadata: tuple[MetaData, ...]
    command: str  # "check", "revision", or "" (called from Python)
    arguments: dict[str, Any]  # the revision command's (message, head, rev_id, ...)

    @property
    def writes_sql(self) -> bool:
        return (self.command == "revision" and not self.arguments.get("rev_id")
                and revision_format(context.config, context.script) != PYTHON_REVISIONS)


def autogenerate_run(config: Config, command: str,
                     arguments: dict[str, Any]) -> AutogenerateRun | None:
    """The run's models when it autogenerates (``arguments``: the revision command's, as
    env.py read them), else None; no models configured for an autogenerating run is one
    line."""
    if not arguments.get("autogenerate"):
        return None
    root = Path(config.config_file_name).resolve().parent if config.config_file_name \
        else Path.cwd()
    option = config_option(config, METADATA_INI_OPTION)  # also a Config made in Python
    models = models_setting(option, cwd=root, source=f"{METADATA_INI_OPTION} in the Alembic "
                            "config") if option else models_setting(cwd=root)
    if models is None:
        raise as_command_error(ConfigError(
            f"No models configured for alembic {command or 'autogenerate'}: set "
            'target_metadata = "myapp.models:Base.metadata" under [tool.fraiseql] in '
            "pyproject.toml, or fraiseql.target_metadata in alembic.ini's [alembic] section"))
    try:
        metadata = load_metadata(models)
    except MigrationError as err:
        raise as_command_error(err) from err
    return AutogenerateRun(models, metadata, command, arguments)


@contextmanager
def shadow(run: AutogenerateRun, config: Config, live_url: str | None,
           history_schema: str) -> Iterator[str]:
    """A shadow database holding the folder's migrations, applied by our engine (or by
    Alembic, when the folder has ``.py`` revisions)."""
    url, _ = shadow_database_url()
    # private Alembic API: the resolved version_locations, as Alembic itself reads them
    locations = [Path(each) for each in context.script._version_locations]  # noqa: SLF001
    if len(locations) != 1:
        raise as_command_error(ConfigError(
            f"alembic {run.command or 'autogenerate'} builds the migrations' schema from one "
            f"folder, and version_locations lists {len(locations)}"))
    with shadow_database(url, live_url=live_url) as shadow_url:
        settings = replace(resolve(locations[0], shadow_url, environ={}),
                           history_schema=history_schema)
        _build(settings)
        yield shadow_url


def _build(settings: Settings) -> None:
    scripts, directory = revisions(settings)
    if directory is not None:  # .py revisions: Alembic runs the folder, nested in this run
        progress = Progress(None)
        with migration_lock(settings, progress, None), _outer_context_kept():
            try:
                upgrade(alembic_config(settings, progress, lock_held=True,
                                       directory=directory), "heads", lambda: progress.current)
            except MigrationError as err:
                raise as_command_error(err) from err
        return
    steps = []
    for script in scripts:
        migration = sql_migration(script)
        assert migration is not None  # SQL files only (above)
        parent = script.down_revision  # one parent, or None: a SQL-only folder is linear
        steps.append(Step(migration, True, parent if isinstance(parent, str) else None,
                          script.revision))
    progress = Progress(None)
    with migration_lock(settings, progress, None) as connection:
        if steps:
            run_direct(settings, progress, None, steps, connection)


@contextmanager
def _outer_context_kept() -> Iterator[None]:
    """Alembic's ``context`` proxy of this run, put back after a nested Alembic command
    (whose EnvironmentContext removes the proxy when it ends, leaving none)."""
    # private Alembic API: the EnvironmentContext the `context` module proxies to
    outer = context._proxy  # type: ignore[attr-defined]  # noqa: SLF001
    try:
        yield
    finally:
        outer._install_proxy()  # noqa: SLF001


def configure_options(run: AutogenerateRun, *, given: bool) -> dict[str, Any]:
    """``context.configure`` options: the models, what is compared, our filters, and (for
    ``revision --autogenerate`` on the shadow database) the hook that writes SQL."""
    found = options(run.metadata, schemas=schemas_of(run.metadata, "public"))
    if run.writes_sql and not given:
        found["process_revision_directives"] = _writer(run)
    elif run.command == "check":
        found["process_revision_directives"] = _checker(run)
    return found


def _writer(run: AutogenerateRun) -> Any:
    def write(migration_context: MigrationContext, _revision: object,
              directives: list[ops.MigrationScript]) -> None:
        script = directives[0]
        comparison = comparison_of(_connection(migration_context), run.metadata,
                                   script.upgrade_ops_list[-1])
        directives[:] = []  # Alembic writes no .py file
        if comparison.empty:
            util.msg("No differences between the models and the migrations' schema; "
                     "nothing written")
            return
        rendered = render(comparison)
        try:
            path = write_sql_revision(
                context.script, run.arguments.get("message"), up=rendered.up,
                down=rendered.down, header=header_of(run.models, rendered, "alembic revision"),
                head=run.arguments.get("head") or "head",
                splice=bool(run.arguments.get("splice")),
                version_path=run.arguments.get("version_path"))
        except MigrationError as err:
            raise as_command_error(err) from err
        finish(path, rendered)
        util.msg(f"Generating {path} ...  done")
        for line in rendered.data_loss:
            util.msg(f"  DATA LOSS: {line}")

    return write


def _checker(run: AutogenerateRun) -> Any:
    """What Alembic's own ``check`` does not count: enum values and types it cannot see."""

    def check(migration_context: MigrationContext, _revision: object,
              directives: list[ops.MigrationScript]) -> None:
        comparison = comparison_of(_connection(migration_context), run.metadata,
                                   directives[0].upgrade_ops_list[-1])
        for line in comparison.unchecked:
            util.msg(f"Note: {line}")
        extra = [f"enum type {enum.name}" for enum in comparison.new_enums] + [
            f"values of enum {current.name}" for current, _ in comparison.added_values]
        if extra and directives[0].upgrade_ops_list[-1].is_empty():
            raise as_command_error(MigrationError(
                f"New upgrade operations detected: {', '.join(extra)} (the models differ "
                "from the migrations' schema)"))

    return check


def _connection(migration_context: MigrationContext) -> Any:
    connection = migration_context.connection
    assert connection is not None  # autogenerate runs online
    return connection
