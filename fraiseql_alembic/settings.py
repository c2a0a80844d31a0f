"""Where the migrations are and which database to use: flags, environment, project config.

Order: ``--path`` / ``--database-url``, then a named environment (``--env`` or
``FRAISEQL_ENV``: :mod:`.config`), then ``DATABASE_URL``, then the project's
``pyproject.toml`` (``[tool.fraiseql.migrations]``: ``path``, ``database_url``,
``history_schema``; or the same in ``fraiseql.toml``), then ``alembic.ini``'s
``sqlalchemy.url``.  An environment's database is never replaced by ``DATABASE_URL``, and
``--database-url`` with an environment is refused.  Pure stdlib: the CLI imports this
before deciding whether Alembic is needed at all.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .config import (
    RUN_KEYS,
    Environment,
    ProjectConfig,
    alembic_ini_option,
    environment,
    project_config,
    selected_name,
)
from .errors import ConfigError, ConnectError, MigrationError, UsageError
from .secrets import mask_url, password_of

DEFAULT_PATH = "migrations"
_URL_RE = re.compile(r"^(?P<scheme>postgres(?:ql)?)(?P<driver>\+[a-z0-9_]+)?://(?P<rest>.*)$", re.I)


_DURATION_RE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>us|ms|s|min|h|d)?$", re.ASCII)
_MS_PER_UNIT = {"us": 0.001, "ms": 1.0, "s": 1e3, "min": 6e4, "h": 3.6e6, "d": 8.64e7}
#: PostgreSQL's ceiling for lock_timeout and statement_timeout, in milliseconds.
MAX_TIMEOUT_MS = 2_147_483_647


def check_duration(
    value: str, option: str, error: type[MigrationError] = ConfigError
) -> str:
    """A PostgreSQL duration (``500ms``, ``10s``, ``2min``, ``0`` = off), else ``error``.

    PostgreSQL rounds to whole milliseconds, so ``0.4ms`` would silently mean 0 (no
    timeout at all); such a value is refused, like one above its ceiling (about 24 days).
    """
    value = value.strip()
    match = _DURATION_RE.match(value)
    if not match:
        raise error(
            f"{option} {value!r} is not a duration; use e.g. 500ms, 10s, 2min (0 turns it off)"
        )
    milliseconds = round(float(match["number"]) * _MS_PER_UNIT[match["unit"] or "ms"])
    if milliseconds == 0 and float(match["number"]) != 0:
        raise error(
            f"{option} {value!r} is below 1ms, which PostgreSQL rounds to 0 (no timeout at "
            "all); use 1ms or more, or 0 to turn it off"
        )
    if milliseconds > MAX_TIMEOUT_MS:
        raise error(
            f"{option} {value!r} is longer than PostgreSQL allows (2147483647ms, about 24 "
            "days); use a shorter duration, or 0 to turn it off"
        )
    return value


def check_seconds(
    value: str | float, option: str, error: type[MigrationError] = ConfigError
) -> float:
    """A number of seconds to wait, finite and 0 or more, else ``error`` (``nan`` and
    ``inf`` would wait forever, a negative number not at all)."""
    try:
        seconds = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise error(
            f"{option} {value!r} is not a number of seconds; use 0 or more, e.g. 60 "
            "(0: do not wait)"
        )
    return seconds


@dataclass(frozen=True)
class RunOptions:
    """How migrations run: waiting for the deploy lock, and the server-side timeouts."""

    lock_wait: float = 60.0  # seconds to wait for another deploy's migration lock
    lock_timeout: str = "10s"  # PostgreSQL lock_timeout of migration sessions
    statement_timeout: str | None = None  # PostgreSQL statement_timeout (None: server's)
    lock_retries: int = 3  # retries of a migration that failed with lock_not_available
    lock: str = "advisory"  # how deploys exclude each other: see LOCK_MODES
    lease_expiry: float = 60.0  # seconds a lease outlives its holder's last heartbeat

    @property
    def pooled(self) -> bool:
        """Lease mode: assume a transaction pooler may sit in front of PostgreSQL, so that
        nothing of a session (settings, prepared statements) survives a transaction."""
        return self.lock == LEASE


ADVISORY, LEASE = "advisory", "lease"
#: ``advisory``: a session advisory lock (PostgreSQL directly, or a pool in session mode);
#: ``lease``: a row in ``fraiseql_migration_lock`` with expiry and heartbeat (any pooler).
LOCK_MODES = (ADVISORY, LEASE)


def check_lock_mode(value: str, option: str) -> str:
    """``advisory`` or ``lease`` (any case), else ConfigError naming ``option``."""
    mode = str(value).strip().lower()
    if mode not in LOCK_MODES:
        raise ConfigError(
            f"{option} {value!r} is not a lock mode; use advisory (the default) or lease "
            "(behind a transaction-pooling PgBouncer)"
        )
    return mode


def check_lease_expiry(value: object, option: str) -> float:
    """Seconds, at least 1 (a heartbeat runs every quarter of it), else ConfigError."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = float("nan")
    if not (1 <= seconds <= 86400):
        raise ConfigError(
            f"{option} {value!r} is not a lease expiry; give seconds between 1 and 86400 "
            "(default 60)"
        )
    return seconds


#: The PostgreSQL release lint assumes unless ``postgres_version`` says otherwise.
DEFAULT_POSTGRES_VERSION = 15
LINT_SEVERITIES = ("info", "warning", "error")


@dataclass(frozen=True)
class LintOptions:
    """``[tool.fraiseql.lint]`` (or ``[fraiseql.lint]`` in alembic.ini), checked for shape;
    rule names are checked by the linter (``sql.lint.policy``)."""

    disable: tuple[str, ...] = ()  # rule ids or slugs
    severity: tuple[tuple[str, str], ...] = ()  # (rule id or slug, info|warning|error)
    postgres_version: int = DEFAULT_POSTGRES_VERSION
    exclude: tuple[str, ...] = ()  # globs on the file name or its path in the project
    fail_on: str = "warning"  # the least severity that makes lint exit 1
    source: str = "[tool.fraiseql.lint] in pyproject.toml"
    timezone: str | None = None  # the TimeZone migrations run with (lint cannot ask)


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one command run."""

    path: Path
    database_url: str | None
    url_source: str | None
    history_schema: str = "public"
    run: RunOptions = RunOptions()
    lint: LintOptions = LintOptions()
    environment: Environment | None = None  # the named environment in use, if any

    def require_url(self) -> str:
        """The database URL, validated; a clear error when there is none or it is not one."""
        if not self.database_url:
            if self.environment is not None:
                raise ConfigError(
                    f"Environment {self.environment.name} is a fleet (targets in "
                    f"{self.environment.where}) and this command runs on one database: "
                    "use an environment with a url"
                )
            raise ConfigError(
                "No database configured: pass --database-url, set DATABASE_URL "
                "(e.g. postgresql://app@localhost:5432/mydb), or set "
                "database_url under [tool.fraiseql.migrations] in pyproject.toml"
            )
        sqlalchemy_url(self.database_url)
        return self.database_url

    def naming_source(self, err: ConnectError) -> ConnectError:
        """``err`` saying where this URL was set, when it is this URL that failed (not,
        say, a shadow database's) and ``err`` does not name a source yet."""
        if not self.database_url or err.shown != mask_url(self.database_url):
            return err
        return err.named(self.url_source)


#: The keys of ``[tool.fraiseql.migrations]``; any other is refused (a typo would
#: otherwise silently change what a run does).
MIGRATIONS_KEYS = ("path", "database_url", "history_schema", *RUN_KEYS)


def resolve(
    path: str | os.PathLike[str] | None = None,
    database_url: str | None = None,
    *,
    env: str | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Settings for a command run in ``cwd`` with the given flags.

    ``env`` names an environment of the project's configuration (``--env``); None: the
    one ``FRAISEQL_ENV`` names, if set; ``""``: none (``FRAISEQL_ENV`` ignored).  An
    environment's values come after the flags and before everything else: its ``url``
    (or ``targets``) is the database, never ``DATABASE_URL`` or a configured
    ``database_url``; ``database_url`` given with an environment is a UsageError.  Its
    run options override ``FRAISEQL_LOCK`` and ``[tool.fraiseql.migrations]``.  The
    environment is ``Settings.environment``; its policy (``confirm``, ``allow_down``,
    ``backup``) is applied by the CLI (docs/environments.md)::

        settings.resolve(env="prod")    # [tool.fraiseql.environments.prod]
    """
    cwd = cwd or Path.cwd()
    environ = os.environ if environ is None else environ
    config = project_config(cwd)
    project = config.section("migrations")
    for key in project:
        if key not in MIGRATIONS_KEYS:
            raise ConfigError(f"{key} in {config.where('migrations')} is not a setting; use "
                              f"{', '.join(MIGRATIONS_KEYS)} (docs/configuration.md)")
    folder = Path(path) if path is not None else Path(str(project.get("path", DEFAULT_PATH)))
    if not folder.is_absolute():
        folder = cwd / folder
    name, selected_by = selected_name(env, environ)
    chosen = environment(config, name, selected_by, environ) if name is not None else None
    url, source = database_url, "--database-url" if database_url else None
    if chosen is not None:
        if database_url:
            how = f"--env {name}" if selected_by == "--env" else f"FRAISEQL_ENV={name}"
            raise UsageError(f"--database-url cannot be combined with {how}: the environment "
                             f"names its database ({chosen.where}); drop one of them")
        url, source = chosen.url, f"environment {chosen.name}"
        if url is not None:
            try:
                sqlalchemy_url(url)
            except ConfigError as err:
                raise ConfigError(f"url of environment {chosen.name} ({chosen.where}): "
                                  f"{err.message}") from err
    else:
        if not url and environ.get("DATABASE_URL"):
            url, source = environ["DATABASE_URL"], "DATABASE_URL"
        if not url and project.get("database_url"):
            url, source = str(project["database_url"]), config.file
        if not url:
            ini_url = _alembic_ini_url(cwd)
            if ini_url:
                url, source = ini_url, "alembic.ini"
    schema = str(project.get("history_schema", "public"))
    run = _run_options(project, config.where("migrations"))
    if environ.get("FRAISEQL_LOCK"):
        run = replace(run, lock=check_lock_mode(environ["FRAISEQL_LOCK"], "FRAISEQL_LOCK"))
    if chosen is not None:
        run = _run_options(dict(chosen.run), chosen.where, run)
        schema = chosen.history_schema or schema
    return Settings(folder, url, source, schema, run, lint=lint_options(cwd, config),
                    environment=chosen)


def _run_options(project: dict[str, Any], where: str, base: RunOptions = RunOptions()
                 ) -> RunOptions:
    """The run options ``project`` sets (``where`` names it in errors), the rest
    ``base``'s."""

    def number(key: str, default: float, kind: type[int] | type[float]) -> Any:
        value = project.get(key, default)
        try:
            result = math.nan if isinstance(value, bool) else float(value)
        except (TypeError, ValueError):
            result = math.nan
        if math.isnan(result):
            raise ConfigError(f"{key} = {value!r} in {where} must be a number")
        if result < 0:
            raise ConfigError(f"{key} = {value!r} in {where} must not be negative")
        if math.isinf(result):  # would wait, or retry, forever
            raise ConfigError(f"{key} = {value!r} in {where} must be a finite number")
        if kind is int and not result.is_integer():
            raise ConfigError(f"{key} = {value!r} in {where} must be a whole number")
        return kind(result)

    statement_timeout = project.get("statement_timeout")
    return RunOptions(
        lock_wait=number("lock_wait", base.lock_wait, float),
        lock_timeout=check_duration(
            str(project.get("lock_timeout", base.lock_timeout)), f"lock_timeout in {where}"
        ),
        statement_timeout=(
            check_duration(str(statement_timeout), f"statement_timeout in {where}")
            if statement_timeout is not None
            else base.statement_timeout
        ),
        lock_retries=number("lock_retries", base.lock_retries, int),
        lock=check_lock_mode(str(project.get("lock", base.lock)), f"lock in {where}"),
        lease_expiry=check_lease_expiry(project.get("lease_expiry", base.lease_expiry),
                                        f"lease_expiry in {where}"),
    )


def sqlalchemy_url(url: str) -> str:
    """A ``postgresql+psycopg2://`` URL for any PostgreSQL URL; refuse anything else clearly.

    ``postgres://`` (Heroku style) and other drivers' URLs (``+asyncpg``, ``+psycopg``)
    an application may share with us are accepted: migrations always run on psycopg2.
    """
    match = _URL_RE.match(url.strip())
    if match is None or not match.group("rest"):
        raise ConfigError(
            f"Database URL {mask_url(url)!r} is not a PostgreSQL URL; expected "
            "postgresql://user:password@host:5432/dbname"
        )
    secret = password_of(url)
    if secret is not None and "@" in re.split(r"[/?]", secret, maxsplit=1)[0]:
        # libpq (and SQLAlchemy) end the password at its first "@" and would look up
        # the rest of it as the host name, quoting it in their error.
        raise ConfigError(
            f"The password in database URL {mask_url(url)!r} contains '@', which must be "
            "percent-encoded: write %40 for each '@' in it (app:p%40ss@host)"
        )
    return f"postgresql+psycopg2://{match.group('rest')}"


def lint_options(cwd: Path, config: ProjectConfig | None = None) -> LintOptions:
    """The lint policy: ``[tool.fraiseql.lint]`` in pyproject.toml (or ``[lint]`` in
    fraiseql.toml), else the ``[fraiseql.lint]`` section of alembic.ini, else the
    defaults."""
    config = config or project_config(cwd)
    table = config.section("lint")
    if table:
        return _lint_from(table, config.where("lint"))
    ini = cwd / "alembic.ini"
    if not ini.is_file():
        return LintOptions()
    import configparser  # lazy: ~1 ms that only a project with an alembic.ini needs

    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(ini, encoding="utf-8")
    except configparser.Error as err:
        raise ConfigError(f"Cannot read {ini}: {' '.join(str(err).split())}") from err
    if not parser.has_section("fraiseql.lint"):
        return LintOptions()
    where = "[fraiseql.lint] in alembic.ini"
    values: dict[str, Any] = {}
    severity: dict[str, str] = {}
    for key, value in parser.items("fraiseql.lint"):
        if key.startswith("severity."):
            severity[key.removeprefix("severity.")] = value.strip()
        elif key in ("disable", "exclude"):
            values[key] = [item for item in re.split(r"[\s,]+", value) if item]
        else:
            values[key] = value.strip()
    if severity:
        values["severity"] = severity
    return _lint_from(values, where)


def _lint_from(table: Mapping[str, Any], where: str) -> LintOptions:
    known = ("disable", "severity", "postgres_version", "exclude", "fail_on", "timezone")
    for key in table:
        if key not in known:
            raise ConfigError(
                f"{key} in {where} is not a lint setting; use {', '.join(known)} (docs/lint.md)"
            )

    def names(key: str) -> tuple[str, ...]:
        value = table.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{key} in {where} must be a list of strings, e.g. "
                              f"{key} = [\"FQL008\"]")
        return tuple(value)

    def level(key: str, value: object) -> str:
        if not isinstance(value, str) or value.strip().lower() not in LINT_SEVERITIES:
            raise ConfigError(f"{key} = {value!r} in {where} is not a severity; use info, "
                              "warning or error")
        return value.strip().lower()

    severity = table.get("severity", {})
    if not isinstance(severity, Mapping):
        raise ConfigError(f"severity in {where} must map rules to severities, e.g. "
                          "severity = { FQL008 = \"error\" }")
    version = table.get("postgres_version", DEFAULT_POSTGRES_VERSION)
    try:
        number = int(str(version).strip()) if not isinstance(version, bool) else 0
    except ValueError:
        number = 0
    if not 11 <= number <= 99:
        raise ConfigError(f"postgres_version = {version!r} in {where} is not a PostgreSQL "
                          "major version lint supports; use 11 or later, e.g. 15")
    return LintOptions(
        disable=names("disable"),
        severity=tuple((str(rule), level(f"severity.{rule}", value))
                       for rule, value in severity.items()),
        postgres_version=number,
        exclude=names("exclude"),
        fail_on=level("fail_on", table.get("fail_on", "warning")),
        source=where,
        timezone=str(table["timezone"]).strip() if table.get("timezone") else None,
    )


def _alembic_ini_url(cwd: Path) -> str | None:
    ini = cwd / "alembic.ini"
    if not ini.is_file():
        return None
    import configparser  # lazy: as in lint_options

    parser = configparser.ConfigParser(defaults={"here": str(cwd)})
    try:
        parser.read(ini, encoding="utf-8")
        value = parser.get("alembic", "sqlalchemy.url", fallback="").strip()
    except configparser.Error:
        return None
    return value or None


# -- autogenerate: where the models are, the shadow database --------------------------

#: The environment variable naming the shadow database of ``create --autogenerate``.
SHADOW_URL_ENV = "FRAISEQL_SHADOW_DATABASE_URL"
#: The alembic.ini option (``[alembic]`` section) naming the models' MetaData.
METADATA_INI_OPTION = "fraiseql.target_metadata"


@dataclass(frozen=True)
class ModelsSetting:
    """Where the SQLAlchemy models are: ``module:attribute`` paths to MetaData objects (or
    lists of them), and the setting they came from (named in every error about them)."""

    paths: tuple[str, ...]
    source: str
    root: Path  # the project folder, importable while the models load


def models_setting(
    given: str | tuple[str, ...] | list[str] | None = None, *, cwd: Path | None = None,
    source: str = "--metadata",
) -> ModelsSetting | None:
    """``--metadata`` (``given``, which ``source`` names; a string may hold several paths
    separated by commas or spaces), else ``target_metadata`` under ``[tool.fraiseql]`` in
    pyproject.toml, else ``fraiseql.target_metadata`` in alembic.ini's ``[alembic]``
    section; None when none is set."""
    cwd = cwd or Path.cwd()
    if given:
        paths = re.split(r"[\s,]+", given) if isinstance(given, str) else tuple(given)
        return ModelsSetting(_metadata_paths(paths, source), source, cwd)
    config = project_config(cwd)
    where = config.where_key("target_metadata")
    value = config.table.get("target_metadata")
    if value is not None:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{where} must be a string or a list of strings, e.g. "
                              '"myapp.models:Base.metadata"')
        return ModelsSetting(_metadata_paths(value, where), where, cwd)
    ini = cwd / "alembic.ini"
    if ini.is_file():
        text = (alembic_ini_option(ini, METADATA_INI_OPTION) or "").strip()
        if text:
            where = f"{METADATA_INI_OPTION} in alembic.ini"
            return ModelsSetting(_metadata_paths(re.split(r"[\s,]+", text), where), where, cwd)
    return None


def _metadata_paths(paths: Any, where: str) -> tuple[str, ...]:
    found = tuple(str(path).strip() for path in paths if str(path).strip())
    for path in found:
        module, _, attribute = path.partition(":")
        if not module or not attribute or not all(
            part.isidentifier() for part in [*module.split("."), *attribute.split(".")]
        ):
            raise ConfigError(
                f"{where}: {path!r} is not a models path; write module:attribute, e.g. "
                "myapp.models:Base.metadata"
            )
    if not found:
        raise ConfigError(f"{where} is empty; write module:attribute, e.g. "
                          "myapp.models:Base.metadata")
    return found


def _pyproject_tool_fraiseql(cwd: Path) -> dict[str, Any]:
    """Our table of the project's configuration: ``[tool.fraiseql]`` of pyproject.toml or
    the top level of fraiseql.toml (:func:`.config.project_config`; empty without one)."""
    return dict(project_config(cwd).table)


def shadow_database_url(
    given: str | None = None, *, environ: Mapping[str, str] | None = None
) -> tuple[str | None, str | None]:
    """``--shadow-database-url`` (``given``), else ``FRAISEQL_SHADOW_DATABASE_URL``, with
    where it came from; ``(None, None)``: start a throwaway PostgreSQL instead."""
    environ = os.environ if environ is None else environ
    if given:
        return given, "--shadow-database-url"
    if environ.get(SHADOW_URL_ENV):
        return environ[SHADOW_URL_ENV], SHADOW_URL_ENV
    return None, None


def drift_ignore(cwd: Path | None = None) -> tuple[object, ...]:
    """``ignore`` under ``[tool.fraiseql.drift]`` in pyproject.toml: what ``fraiseql migrate
    drift`` leaves out (globs on object names, ``KIND:GLOB``; checked by
    :func:`fraiseql_alembic.project.drift.check_patterns`); empty without one."""
    config = project_config(cwd or Path.cwd())
    table, where = config.section("drift"), config.where("drift")
    for key in table:
        if key != "ignore":
            raise ConfigError(f"{key} in {where} is not a drift setting; use ignore "
                              "(docs/drift.md)")
    value = table.get("ignore", [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(f"ignore in {where} must be a list of patterns, e.g. "
                          'ignore = ["public.tmp_*", "extension:pg_stat_statements"]')
    return tuple(value)


#: Where :func:`drift_ignore` reads its patterns (named in errors about them).
DRIFT_SOURCE = "[tool.fraiseql.drift] in pyproject.toml"


# -- the schema snapshot (up --dump-schema, check) -------------------------------------

#: The setting that turns the schema snapshot on (true) or names its file (a path).
DUMP_SCHEMA_SOURCE = "dump_schema under [tool.fraiseql] in pyproject.toml"
#: alembic.ini's equivalent, in its ``[alembic]`` section.
DUMP_SCHEMA_INI_OPTION = "fraiseql.dump_schema"
#: The snapshot's file name, beside the migrations folder, when no path is configured.
SCHEMA_FILE_NAME = "schema.sql"
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0", "")


def schema_file(
    folder: Path, given: str | None = None, *, off: bool = False, cwd: Path | None = None,
) -> Path | None:
    """Where the schema snapshot is written (``up``/``down``) or checked (``check``); None
    when it is not.

    ``given`` is a flag's value: a path, or ``""`` for the configured path.  Without a
    flag (``given`` None, ``off`` false), the project's setting decides: ``dump_schema``
    under ``[tool.fraiseql]`` in pyproject.toml (true, false or a path), else
    ``fraiseql.dump_schema`` in alembic.ini's ``[alembic]`` section.  ``off`` (the
    ``--no-...`` flag) wins over the setting.  The default path is ``schema.sql`` in the
    folder that holds the migrations ``folder``; a relative path is under ``cwd``.
    """
    cwd = cwd or Path.cwd()
    if given:
        return _under(cwd, given)
    configured = _dump_schema_setting(cwd)
    if given is None and (off or configured is None):
        return None
    if isinstance(configured, str):
        return _under(cwd, configured)
    return folder.parent / SCHEMA_FILE_NAME


def _under(cwd: Path, path: str) -> Path:
    return Path(path) if Path(path).is_absolute() else cwd / path


def _dump_schema_setting(cwd: Path) -> str | bool | None:
    """The configured path, True (the default path), or None (off or not set)."""
    table = _pyproject_tool_fraiseql(cwd)
    if "dump_schema" in table:
        value = table["dump_schema"]
        if isinstance(value, bool):
            return True if value else None
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise ConfigError(f"{DUMP_SCHEMA_SOURCE} must be true, false or a path, e.g. "
                          f'dump_schema = "db/{SCHEMA_FILE_NAME}"')
    ini = cwd / "alembic.ini"
    if not ini.is_file():
        return None
    text = alembic_ini_option(ini, DUMP_SCHEMA_INI_OPTION)
    if text is None or text.strip().lower() in _FALSE:
        return None
    return True if text.strip().lower() in _TRUE else text.strip()
