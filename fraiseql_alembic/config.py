"""The project's configuration file and its named environments.

The configuration is ``[tool.fraiseql]`` in ``pyproject.toml``, or, for a project that is
not a Python package, the top level of ``fraiseql.toml`` (the same keys, without the
``tool.fraiseql.`` prefix).  Both in one folder is refused when both configure us: half
of a configuration in each file would silently be ignored.

A named environment (``[tool.fraiseql.environments.prod]``) says which database a run
uses (``url``, ``${VAR}`` expanded, or a fleet's ``targets`` file), the run options it
overrides, and its policy (``backup``, ``confirm``, ``allow_down``).  This module reads
and checks the table; :func:`fraiseql_alembic.settings.resolve` applies it.  Pure
stdlib, like settings.py: the CLI reads it before loading any verb.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, UsageError
from .secrets import mask_url

PYPROJECT = "pyproject.toml"
FRAISEQL_TOML = "fraiseql.toml"
#: What we read of ``[tool.fraiseql]`` (or of fraiseql.toml's top level).
TOP_KEYS = ("migrations", "lint", "drift", "environments", "target_metadata", "dump_schema")
#: The environment variable naming the environment when ``--env`` is not given.
ENV_VARIABLE = "FRAISEQL_ENV"

#: The run options an environment may set, as under ``[tool.fraiseql.migrations]``.
RUN_KEYS = ("lock_wait", "lock_timeout", "statement_timeout", "lock_retries", "lock",
            "lease_expiry")
ENVIRONMENT_KEYS = ("url", "targets", "history_schema", *RUN_KEYS, "backup", "confirm",
                    "allow_down")
_POLICY_DEFAULTS = {"backup": False, "confirm": False, "allow_down": True}

_VARIABLE_RE = re.compile(r"\$(\$)?\{([^}]*)\}")
_VARIABLE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: A plain schema name (unquoted identifier, at most 63 bytes): history_schema, a tenant schema.
SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


def toml_loads(text: str) -> dict[str, Any]:
    """Parse TOML with tomllib (Python 3.11+) or tomli, its backport (a dependency on 3.10);
    both raise ``TOMLDecodeError``, a ValueError, naming the line and column."""
    if sys.version_info >= (3, 11):
        import tomllib  # lazy: only projects with a pyproject.toml or TOML file need it
    else:
        import tomli as tomllib  # lazy: as above; the same module, backported
    return tomllib.loads(text)


def alembic_ini_option(ini: Path, name: str) -> str | None:
    """Option ``name`` of the ``[alembic]`` section of ``ini`` (read as it is written: no
    interpolation), or None when it is not set; a file configparser cannot read is a
    ConfigError naming it."""
    import configparser  # lazy: ~1 ms that only a project with an alembic.ini needs

    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(ini, encoding="utf-8")
        return parser.get("alembic", name, fallback=None)
    except configparser.Error as err:
        raise ConfigError(f"Cannot read {ini}: {' '.join(str(err).split())}") from err


def expand(value: str, where: str, environ: Mapping[str, str]) -> str:
    """``value`` with each ``${VAR}`` replaced by the environment's ``VAR`` (``$${``
    writes a literal ``${``); an unset or malformed variable is a ConfigError naming
    ``where``."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(1):  # $${...}: a literal ${...}
            return match.group(0)[1:]
        name = match.group(2)
        if not _VARIABLE_NAME_RE.match(name):
            raise ConfigError(f"{where}: ${{{name}}} is not a variable name; use letters, "
                              "digits and _ (write $${ for a literal ${)")
        if name not in environ:
            raise ConfigError(f"{where}: environment variable {name} is not set; export it "
                              f"before the run (the file says ${{{name}}})")
        return environ[name]

    return _VARIABLE_RE.sub(substitute, value)


@dataclass(frozen=True)
class ProjectConfig:
    """Our table of the project's configuration file, and which file it came from."""

    table: Mapping[str, Any]
    file: str | None = None  # PYPROJECT or FRAISEQL_TOML; None: neither configures us
    folder: Path = Path()

    def section(self, name: str) -> dict[str, Any]:
        """The sub-table ``name`` (``migrations``, ``lint``...), empty when absent."""
        value = self.table.get(name, {})
        return dict(value) if isinstance(value, Mapping) else {}

    def where(self, name: str) -> str:
        """How errors name the sub-table ``name``: ``[tool.fraiseql.lint] in
        pyproject.toml`` or ``[lint] in fraiseql.toml``."""
        if self.file == FRAISEQL_TOML:
            return f"[{name}] in {FRAISEQL_TOML}"
        return f"[tool.fraiseql.{name}] in {PYPROJECT}"

    def where_key(self, key: str) -> str:
        """How errors name a top-level key: ``target_metadata under [tool.fraiseql] in
        pyproject.toml`` or ``target_metadata in fraiseql.toml``."""
        if self.file == FRAISEQL_TOML:
            return f"{key} in {FRAISEQL_TOML}"
        return f"{key} under [tool.fraiseql] in {PYPROJECT}"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return toml_loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # TOMLDecodeError and UnicodeDecodeError too
        raise ConfigError(f"Cannot read {path}: {err}") from err


def project_config(cwd: Path) -> ProjectConfig:
    """``[tool.fraiseql]`` of ``cwd/pyproject.toml``, or the top level of
    ``cwd/fraiseql.toml`` (whose unknown keys are refused); empty without either."""
    table: dict[str, Any] = {}
    pyproject = cwd / PYPROJECT
    if pyproject.is_file():
        tool = _read_toml(pyproject).get("tool", {})
        found = tool.get("fraiseql", {}) if isinstance(tool, dict) else {}
        table = found if isinstance(found, dict) else {}
    standalone = cwd / FRAISEQL_TOML
    if not standalone.is_file():
        return ProjectConfig(table, PYPROJECT if table else None, cwd)
    ours = [key for key in TOP_KEYS if key in table]
    if ours:
        raise ConfigError(
            f"Both {FRAISEQL_TOML} and [tool.fraiseql] in {PYPROJECT} configure "
            f"fraiseql-alembic (pyproject.toml sets {', '.join(ours)}): keep one of them, "
            "so that no setting is silently ignored"
        )
    data = _read_toml(standalone)
    for key in data:
        if key not in TOP_KEYS:
            raise ConfigError(f"{key} in {FRAISEQL_TOML} is not a setting; use "
                              f"{', '.join(TOP_KEYS)} (docs/environments.md)")
    return ProjectConfig(data, FRAISEQL_TOML, cwd)


@dataclass(frozen=True)
class Environment:
    """A named environment, checked (docs/environments.md).  ``url`` has its ``${VAR}``
    expanded: print :attr:`shown_url`, never ``url``."""

    name: str
    where: str  # ``[tool.fraiseql.environments.prod] in pyproject.toml``
    selected_by: str  # ``--env`` or ``FRAISEQL_ENV``: named in errors about the choice
    url: str | None = None
    targets: Path | None = None  # a fleet's targets file instead of one URL
    history_schema: str | None = None
    run: tuple[tuple[str, Any], ...] = ()  # RUN_KEYS it sets, checked by settings
    backup: bool = False  # up takes a backup first (--no-backup: not this time)
    confirm: bool = False  # up asks first (--force: does not)
    allow_down: bool = True  # False: down is refused without --allow-down

    @property
    def shown_url(self) -> str | None:
        return mask_url(self.url) if self.url is not None else None

    @property
    def database(self) -> str:
        """What the run's first line names: the masked URL or the targets file."""
        if self.url is not None:
            return mask_url(self.url)
        return f"the targets in {self.targets}"


def selected_name(env: str | None, environ: Mapping[str, str]) -> tuple[str | None, str]:
    """The environment asked for, and by what: ``env`` (``--env``; ``""`` asks for none),
    else ``FRAISEQL_ENV`` when set and not empty."""
    if env is not None:
        return (env or None), "--env"
    return (environ.get(ENV_VARIABLE) or None), ENV_VARIABLE


def environment(config: ProjectConfig, name: str, selected_by: str,
                environ: Mapping[str, str]) -> Environment:
    """The environment ``name`` of ``config``, checked, its ``url`` expanded."""
    tables = config.table.get("environments", {})
    if not isinstance(tables, Mapping):
        raise ConfigError(f"environments in {config.file} must be tables of named "
                          "environments, e.g. [tool.fraiseql.environments.prod]")
    if name not in tables:
        known = ", ".join(sorted(str(key) for key in tables))
        if known:
            raise UsageError(f"Unknown environment {name!r} ({selected_by}); the known ones "
                             f"are: {known}")
        where = (f"[environments.{name}] to {FRAISEQL_TOML}" if config.file == FRAISEQL_TOML
                 else f"[tool.fraiseql.environments.{name}] to {PYPROJECT}")
        raise UsageError(f"Unknown environment {name!r} ({selected_by}): none is defined; "
                         f"add {where} (docs/environments.md)")
    table = tables[name]
    where = config.where(f"environments.{name}")
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table, e.g. url = \"${{PROD_DATABASE_URL}}\"")
    for key in table:
        if key not in ENVIRONMENT_KEYS:
            raise ConfigError(f"{key} in {where} is not an environment setting; use "
                              f"{', '.join(ENVIRONMENT_KEYS)} (docs/environments.md)")
    url = table.get("url")
    if url is not None:
        if not isinstance(url, str) or not url.strip():
            raise ConfigError(f"url in {where} must be a database URL, e.g. "
                              'url = "postgresql://deploy:${PROD_DB_PASSWORD}@db:5432/app"')
        url = expand(url.strip(), f"url of environment {name} ({where})", environ)
    targets = table.get("targets")
    if targets is not None:
        if not isinstance(targets, str) or not targets.strip():
            raise ConfigError(f"targets in {where} must be the path of a targets file, e.g. "
                              'targets = "deploy/prod-targets.toml"')
        targets = config.folder / targets.strip()
    if (url is None) == (targets is None):
        raise ConfigError(f"{where} must set url (one database) or targets (a fleet), and "
                          "not both")
    schema = table.get("history_schema")
    if schema is not None and (not isinstance(schema, str) or not SCHEMA_RE.match(schema)):
        raise ConfigError(f"history_schema = {schema!r} in {where} is not a plain "
                          "identifier; use letters, digits and _ (at most 63)")
    policy = {}
    for key, default in _POLICY_DEFAULTS.items():
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{key} = {value!r} in {where} must be true or false")
        policy[key] = value
    if targets is not None and policy["backup"]:
        raise ConfigError(f"backup = true in {where} cannot be combined with targets: a "
                          "fleet run takes no backup (back up each database first)")
    return Environment(
        name, where, selected_by, url, targets, schema,
        tuple((key, table[key]) for key in RUN_KEYS if key in table),
        backup=policy["backup"], confirm=policy["confirm"], allow_down=policy["allow_down"],
    )
