"""What an adopted project's env.py gives ``context.configure``, for ``fraiseql migrate``.

``fraiseql migrate`` reads and moves ``alembic_version`` on the search_path.  A project
that keeps its own env.py (and opted in) may configure another ``version_table`` or a
``version_table_schema``; :func:`refuse_unsupported` runs that env.py offline to read
them, and refuses in one line rather than read the wrong table.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import alembic_ini_option, toml_loads
from ..errors import ConfigError
from .plugin import (
    ENV_LOCATION,
    OPT_IN_OPTION,
    PLUGINS_SINCE,
    alembic_version,
    config_option,
    is_our_env,
    opted_in,
)

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script.base import ScriptDirectory

log = logging.getLogger(__name__)


def refuse_unsupported(folder: Path, database_url: str | None, cwd: Path) -> None:
    """Refuse, in one line, to run ``fraiseql migrate`` on the versions folder of an
    adopted project (``alembic.ini`` or ``[tool.alembic]`` in ``cwd``) whose env.py
    keeps its revisions where we would not read them (``version_table``,
    ``version_table_schema``).  Anything else returns at once; Alembic is imported only
    when a config file there mentions ``fraiseql_migrations``."""
    ini, pyproject = cwd / "alembic.ini", cwd / "pyproject.toml"
    if not any(_mentions(file, OPT_IN_OPTION) for file in (ini, pyproject)):
        return
    if _script_location(ini, pyproject) == ENV_LOCATION:
        return  # our own environment (alembic.ini.example): nothing to read, Alembic unloaded
    # lazy: Alembic, and ours, only for a project that may have opted in
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from ..engine.database import VERSION_TABLE
    from ..errors import shown_path

    config = Config(str(ini) if ini.is_file() else None,
                    toml_file=str(pyproject) if pyproject.is_file() else None)
    if not opted_in(config):
        return
    try:
        script = ScriptDirectory.from_config(config)
        # private Alembic API: the resolved version_locations, as Alembic itself reads them
        locations = {Path(location).resolve() for location in script._version_locations}  # noqa: SLF001
    except Exception:  # Alembic says what is wrong with its config when it runs
        log.debug("fraiseql-alembic: could not read the project's Alembic config",
                  exc_info=True)
        return
    if is_our_env(script.dir) or folder.resolve() not in locations:
        return  # our own environment, or not this project's folder
    env = shown_path(Path(script.dir) / "env.py")
    version = alembic_version()
    if version < PLUGINS_SINCE:
        raise ConfigError(
            f"A project with its own env.py ({env}) needs Alembic "
            f"{PLUGINS_SINCE[0]}.{PLUGINS_SINCE[1]} or later, which loads our plugin for "
            f"the `alembic` command; with Alembic {version[0]}.{version[1]} it would not see "
            f"the SQL migrations: pip install 'alembic>={PLUGINS_SINCE[0]}.{PLUGINS_SINCE[1]}'"
        )
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


def _script_location(ini: Path, pyproject: Path) -> str | None:
    """``script_location`` where Alembic reads it (the ``[alembic]`` section of
    alembic.ini, else ``[tool.alembic]`` in pyproject.toml), read without Alembic;
    None when neither file says, or one cannot be read (Alembic then reads it)."""
    try:
        location = alembic_ini_option(ini, "script_location") if ini.is_file() else None
        if location is None and pyproject.is_file():
            table = toml_loads(pyproject.read_text(encoding="utf-8")).get("tool", {})
            location = table.get("alembic", {}).get("script_location")
    except (OSError, ValueError, AttributeError, ConfigError):
        log.debug("fraiseql-alembic: could not read script_location", exc_info=True)
        return None
    return location.strip() if isinstance(location, str) else None


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

    found: dict[str, Any] = {}
    environment = EnvironmentContext(config, script, fn=lambda rev, context: [], as_sql=True,
                                     output_buffer=io.StringIO(), dont_mutate=True)
    configure = environment.configure

    def keep(*args: Any, **kwargs: Any) -> None:
        found.update(kwargs)
        configure(*args, **kwargs)

    # the env.py's `context.configure` is this instance's (Alembic's proxy takes the
    # instance's attributes when the context is entered)
    environment.configure = keep  # type: ignore[method-assign]
    with _logging_kept(), environment:
        script.run_env()
    return found
