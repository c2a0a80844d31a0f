"""Our API's calls into Alembic: its config, its script directory, and its ``upgrade``,
``downgrade`` and ``stamp`` commands, with Alembic's errors turned into ours.

The API (one level up) never imports Alembic; everything it needs of it is here.
Alembic is imported inside the functions (lazily): a folder of SQL files alone is
planned and run without it, and ``fraiseql --help`` must not load it.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..engine.plan import Script
from ..engine.translate import in_a_run
from ..errors import MigrationError
from ..project import loader
from .envconfig import refuse_unsupported
from .plugin import (
    ENV_LOCATION,
    OPT_IN_OPTION,
    RunContext,
    install_without_entry_points,
    load_parsed,
    set_run_context,
)

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory as ScriptDirectory  # the API names it

    from ..engine.cancel import CancelToken
    from ..engine.deploy import Reporter
    from ..settings import Settings


def alembic_config(
    settings: Settings,
    reporter: Reporter | None = None,
    *,
    cancel: CancelToken | None = None,
    lock_held: bool = False,
    directory: ScriptDirectory | None = None,
) -> Config:
    """An in-memory Alembic Config for our environment and the migrations folder."""
    from alembic.config import Config  # lazy: Alembic only when a run needs it

    with alembic_errors():  # Alembic before 1.18 loads no plugin of its own
        install_without_entry_points()
    config = Config()
    config.set_main_option("script_location", ENV_LOCATION)
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(settings.path).replace("%", "%%"))
    config.set_main_option(OPT_IN_OPTION, "true")
    set_run_context(config, RunContext(
        url=settings.database_url,
        history_schema=settings.history_schema,
        run_options=settings.run,
        reporter=reporter,
        cancel=cancel,
        lock_held=lock_held,
        script_directory=directory,
    ))
    return config


@contextmanager
def alembic_errors(running: Callable[[], str | None] | None = None) -> Iterator[None]:
    """Alembic's CommandError becomes ours (the one of ours it wraps, when it wraps one),
    and SQLAlchemy's database errors :func:`~fraiseql_alembic.engine.translate.in_a_run`'s;
    ``running`` names the migration under way, if any."""
    from alembic.util import CommandError  # lazy: Alembic only when a run needs it
    from sqlalchemy.exc import DBAPIError  # lazy: Alembic only when a run needs it

    try:
        yield
    except CommandError as err:
        original = getattr(err, "original", None)
        if isinstance(original, MigrationError):
            # not `from err`: err was raised from original, and the chain would loop
            raise original  # noqa: B904  # its own cause (the driver's error) is kept
        raise MigrationError(str(err)) from err
    except DBAPIError as err:
        raise in_a_run(err, running() if running is not None else None) from err


def upgrade(config: Config, target: str, running: Callable[[], str | None]) -> None:
    """``alembic upgrade <target>``; ``running`` names the migration under way."""
    from alembic import command  # lazy: Alembic only when a run needs it

    with alembic_errors(running):
        command.upgrade(config, target)


def downgrade(config: Config, target: str, running: Callable[[], str | None]) -> None:
    """``alembic downgrade <target>``."""
    from alembic import command  # lazy: Alembic only when a run needs it

    with alembic_errors(running):
        command.downgrade(config, target)


def stamp(config: Config, target: str) -> None:
    """``alembic stamp <target>``: move ``alembic_version`` without running anything."""
    from alembic import command  # lazy: Alembic only when a run needs it

    with alembic_errors():
        command.stamp(config, target)


def script_directory(settings: Settings) -> ScriptDirectory:
    """Load every revision of the folder (SQL files and .py revisions)."""
    from alembic.script import ScriptDirectory  # lazy: Alembic only when a run needs it

    loader.list_folder(settings.path)  # clear errors for a missing folder or --path to a file
    with alembic_errors():
        directory = ScriptDirectory.from_config(alembic_config(settings))
        directory.revision_map.heads  # noqa: B018  (forces loading: errors surface here)
    return directory


def heads(settings: Settings) -> tuple[str, ...]:
    """The heads of the folder's chain, as Alembic sees them."""
    return tuple(script_directory(settings).get_heads())


def chain(directory: ScriptDirectory) -> list[Script]:
    """All revisions, base first."""
    with alembic_errors():
        return list(reversed(list(directory.walk_revisions())))


@dataclass(frozen=True)
class SqlRevision:
    """A SQL migration as a revision, without Alembic (what status and planning need)."""

    revision: str
    down_revision: str | None
    path: str
    module: Any  # has ``fraiseql_migration``, like the modules the plugin makes
    dependencies: tuple[str, ...] = ()


def revisions(settings: Settings) -> tuple[list[Script], ScriptDirectory | None]:
    """The chain, base first, and Alembic's ScriptDirectory when it was needed.

    A folder of SQL files alone (no ``.py`` revision, no ``-- revises:``) is linked
    by our loader without importing Alembic: ``status``, ``up --dry-run`` and an
    ``up`` with nothing to do then start in a fraction of the time.
    """
    listing = loader.list_folder(settings.path)
    if settings.database_url:  # the version table is read: is it where we read it?
        refuse_unsupported(settings.path, settings.database_url, Path.cwd())
    if not loader.has_python_revisions(settings.path):
        parsed = [load_parsed(name, path) for name, path in listing.migrations]
        if all(migration.revises is None for migration in parsed):
            parents = loader.link_chain(parsed, [])
            return [
                SqlRevision(
                    migration.name.version,
                    parents[migration.name.version],
                    str(path),
                    types.SimpleNamespace(fraiseql_migration=migration),
                )
                for migration, (_, path) in zip(parsed, listing.migrations, strict=True)
            ], None
    directory = script_directory(settings)
    return chain(directory), directory
