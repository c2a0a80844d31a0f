"""The targets file of a fleet run (``--targets FILE``): which databases (and schemas) to
migrate, in which waves.  Pure: it reads the file and the environment, never a database
(the rows of a ``[[query]]`` are read by :mod:`fraiseql_alembic.engine.fleet`).

Two formats, told apart by the file name:

- ``*.toml``: named targets (``[targets.NAME]`` with ``url``, optional ``schema`` and
  ``wave``, or ``group``), an optional ``waves = [...]`` order, and ``[[query]]`` tables
  (``url`` of a control database, ``sql`` returning ``url`` and optionally ``name``,
  ``schema``, ``wave`` columns);
- anything else: plain text, one database URL per line, ``#`` comment lines and blank
  lines ignored; each target is named by its URL with the password masked.

``${VAR}`` in a URL is replaced by the environment variable ``VAR``, so that passwords
stay out of the file (``$${`` writes a literal ``${``).  Every error names the file and
line, says what is wrong and what to do, and never shows a password.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ..config import SCHEMA_RE, expand, toml_loads
from ..errors import ConfigError, UsageError, file_access_error, shown_path
from ..secrets import mask_url
from ..settings import sqlalchemy_url

#: A schema, as the history table's schema: a plain identifier PostgreSQL keeps as written.
_NAME_RE = re.compile(r"^[^\s\[\]]+$")
_TARGET_KEYS = ("url", "schema", "wave", "group")
_QUERY_KEYS = ("url", "sql")
_TOP_KEYS = ("waves", "targets", "query")
#: The columns a ``[[query]]`` may return (``url`` is required).
QUERY_COLUMNS = ("name", "url", "schema", "wave", "group")


@dataclass(frozen=True)
class Target:
    """One database (and schema) of the fleet."""

    name: str  # unique in the file; what every output line starts with
    url: str  # with ${VAR} expanded: never print it, print ``shown_url``
    schema: str | None = None
    wave: str | None = None
    where: str = ""  # ``targets.toml:12``: where it was defined

    @property
    def shown_url(self) -> str:
        return mask_url(self.url)


@dataclass(frozen=True)
class TargetQuery:
    """A ``[[query]]``: the targets are the rows ``sql`` returns on the control database."""

    url: str
    sql: str
    where: str


@dataclass(frozen=True)
class TargetsFile:
    path: Path
    targets: tuple[Target, ...]
    queries: tuple[TargetQuery, ...] = ()
    waves: tuple[str, ...] = ()  # the declared order (``waves = [...]``), if any


def read_targets(path: Path, environ: Mapping[str, str] | None = None) -> TargetsFile:
    """Read and check ``path`` (TOML when it ends in ``.toml``, else plain text)."""
    environ = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise file_access_error(err, path, action="read the targets file") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{shown_path(path)}: the targets file is not UTF-8 text ({err.reason} "
                          f"at byte {err.start}); save it as UTF-8") from err
    if path.suffix.lower() == ".toml":
        return parse_toml(text, path, environ)
    return parse_plain(text, path, environ)


def _check_url(url: str, where: str) -> str:
    try:
        sqlalchemy_url(url)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err.message}") from err
    return url


def parse_plain(text: str, path: Path, environ: Mapping[str, str]) -> TargetsFile:
    """One URL per line; ``#`` lines and blank lines are skipped."""
    shown = shown_path(path)
    targets = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{shown}:{number}"
        if any(char.isspace() for char in line):
            raise ConfigError(f"{where}: expected one database URL on the line, found "
                              f"{mask_url(line)!r}; write one URL per line (# starts a "
                              "comment line)")
        url = _check_url(expand(line, where, environ), where)
        targets.append(Target(mask_url(line), url, where=where))
    check_unique(targets)
    return TargetsFile(path, tuple(targets))


def parse_toml(text: str, path: Path, environ: Mapping[str, str]) -> TargetsFile:
    """Named targets, waves and queries (see the module docstring)."""
    shown = shown_path(path)
    try:
        data = toml_loads(text)
    except ValueError as err:  # tomllib's (or tomli's) TOMLDecodeError
        at = re.search(r"\(at line (\d+), column \d+\)", str(err))
        what = re.sub(r"\s*\(at (?:line \d+, column \d+|end of document)\)", "", str(err))
        line = at.group(1) if at else str(len(text.rstrip().splitlines()))
        where = f"{shown}:{line}"
        raise ConfigError(f"{where}: not valid TOML ({what}); fix the syntax "
                          "(https://toml.io)") from err
    lines = text.splitlines()
    _unknown_keys(data, _TOP_KEYS, shown, "at the top level", lines)
    waves = data.get("waves", [])
    at_waves = _at(shown, lines, r"waves\s*=")
    if not isinstance(waves, list) or not all(isinstance(w, str) and w for w in waves):
        raise ConfigError(f"{at_waves}: waves must be a list of wave names, e.g. "
                          'waves = ["canary", "rest"]')
    if len(set(waves)) != len(waves):
        raise ConfigError(f"{at_waves}: waves names a wave twice; name each once, in the "
                          "order they run")
    tables = data.get("targets", {})
    if not isinstance(tables, dict):
        at_targets = _at(shown, lines, r"targets\s*=")
        raise ConfigError(f"{at_targets}: targets must be a table of named targets: "
                          "[targets.NAME] with url = ...")
    targets = []
    for name, table in tables.items():
        where = _at(shown, lines, _header("targets", name), _key_line(name))
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: target {name} must be a table with url = ... "
                              f"([targets.{name}])")
        targets.append(target_from_row(name, table, where, environ, waves))
    queries = data.get("query", [])
    if isinstance(queries, dict):
        queries = [queries]
    if not isinstance(queries, list):
        raise ConfigError(f"{shown}: query must be [[query]] tables with url and sql")
    found = []
    for index, table in enumerate(queries):
        where = _at(shown, lines, r"\[\[\s*query\s*\]\]|\[\s*query\s*\]", nth=index)
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: a query must be a table with url and sql")
        _unknown_keys(table, _QUERY_KEYS, where, "in [[query]]", None)
        url, sql = table.get("url"), table.get("sql")
        if not isinstance(url, str) or not url:
            raise ConfigError(f"{where}: [[query]] needs url = the control database's URL "
                              '(e.g. url = "${CONTROL_DATABASE_URL}")')
        if not isinstance(sql, str) or not sql.strip():
            raise ConfigError(f"{where}: [[query]] needs sql = a query returning a url column "
                              '(e.g. sql = "SELECT name, url FROM tenants WHERE active")')
        found.append(TargetQuery(_check_url(expand(url, where, environ), where), sql, where))
    if not targets and not found:
        raise ConfigError(f"{shown}: no targets; add [targets.NAME] tables with url = ..., "
                          "or a [[query]]")
    check_unique(targets)
    return TargetsFile(path, tuple(targets), tuple(found), tuple(waves))


def target_from_row(
    name: str | None, row: Mapping[str, Any], where: str, environ: Mapping[str, str],
    waves: Sequence[str] = (),
) -> Target:
    """A target from a TOML table or a query's row; ``name`` None: the masked URL."""
    _unknown_keys(row, _TARGET_KEYS, where, f"in target {name}" if name else "", None)
    url = row.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{where}: target {name or '(a row)'} has no url; give it "
                          'url = "postgresql://user:${PASSWORD}@host:5432/db"')
    url = _check_url(expand(url.strip(), where, environ), where)
    name = mask_url(url) if name is None else name
    if not _NAME_RE.match(name):
        raise ConfigError(f"{where}: target name {name!r} has spaces or brackets; use a "
                          "name without them (e.g. tenant_42)")
    schema = row.get("schema")
    if schema is not None and (not isinstance(schema, str) or not SCHEMA_RE.match(schema)):
        raise ConfigError(f"{where}: schema {schema!r} of target {name} is not a plain "
                          "identifier; use letters, digits and _ (at most 63)")
    wave, group = row.get("wave"), row.get("group")
    if wave is not None and group is not None and wave != group:
        raise ConfigError(f"{where}: target {name} has wave {wave!r} and group {group!r}; "
                          "they are the same setting: keep one")
    wave = wave if wave is not None else group
    if wave is not None and (not isinstance(wave, str) or not wave):
        raise ConfigError(f"{where}: wave of target {name} must be a name, e.g. "
                          'wave = "canary"')
    if wave is not None and waves and wave not in waves:
        raise ConfigError(f"{where}: target {name} is in wave {wave!r}, which waves = "
                          f"[{', '.join(map(repr, waves))}] does not list; add it there")
    return Target(name, url, schema or None, wave, where)


def _unknown_keys(table: Mapping[str, Any], known: Sequence[str], where: str, place: str,
                  lines: list[str] | None) -> None:
    for key in table:
        if key not in known:
            at = _at(where, lines, rf"{re.escape(str(key))}\s*=|\[+\s*{re.escape(str(key))}\b") \
                if lines is not None else where
            raise ConfigError(f"{at}: unknown key {key!r}{' ' + place if place else ''}; "
                              f"expected {', '.join(known)}")


def _header(table: str, name: str) -> str:
    """A regex for ``[table.name]`` with the name bare or quoted."""
    quoted = re.escape(name)
    return rf"\[\s*{table}\s*\.\s*(?:{quoted}|\"{quoted}\"|'{quoted}')\s*\]"


def _key_line(name: str) -> str:
    quoted = re.escape(name)
    return rf"(?:{quoted}|\"{quoted}\"|'{quoted}')\s*="


def _at(shown: str, lines: list[str] | None, *patterns: str, nth: int = 0) -> str:
    """``file:line`` of the ``nth`` line matching one of ``patterns``, else ``file``."""
    if lines is None:
        return shown
    for pattern in patterns:
        regex = re.compile(rf"^\s*(?:{pattern})")
        hits = [number for number, line in enumerate(lines, start=1) if regex.match(line)]
        if len(hits) > nth:
            return f"{shown}:{hits[nth]}"
    return shown


def check_unique(targets: Iterable[Target]) -> None:
    """Every name, and every (URL, schema), once (checked again once queries' rows are in)."""
    seen: dict[tuple[str, str | None], Target] = {}
    names: dict[str, Target] = {}
    for target in targets:
        if target.name in names:
            raise ConfigError(f"{target.where}: target {target.name} is also at "
                              f"{names[target.name].where}; list each target once")
        key = (target.url, target.schema)
        if key in seen:
            raise ConfigError(f"{target.where}: target {target.name} is the same database"
                              f"{' and schema' if target.schema else ''} as "
                              f"{seen[key].name} ({seen[key].where}); list each once")
        names[target.name] = seen[key] = target


def schema_url(target: Target) -> str:
    """The target's URL, for a target with a ``schema`` with ``options=-c
    search_path="schema",public`` added: every session (the lock's, the migrations',
    Alembic's) starts with the schema first on its search_path, so that ``alembic_version``
    and the tables the migrations create are the schema's.  Values set at connect are what
    the clean-session reset before each migration returns to."""
    if target.schema is None:
        return target.url
    parts = urlsplit(target.url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "options" for key, _ in query):
        raise ConfigError(f"{target.where}: target {target.name} has a schema and its URL "
                          "sets options= too; drop options from the URL (the schema sets "
                          "search_path through it)")
    query.append(("options", f'-c search_path="{target.schema}",public'))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


# ---------------------------------------------------------------------------
# choosing: waves, --wave, --shard


def waves_of(targets: Sequence[Target], declared: Sequence[str] = ()) -> list[
        tuple[str | None, list[Target]]]:
    """The targets in waves, in order: the declared ``waves`` first (in that order), then
    other named waves in order of first appearance, then the targets without a wave."""
    order = list(declared)
    for target in targets:
        if target.wave is not None and target.wave not in order:
            order.append(target.wave)
    groups: list[tuple[str | None, list[Target]]] = [
        (wave, [target for target in targets if target.wave == wave]) for wave in order]
    rest = [target for target in targets if target.wave is None]
    if rest:
        groups.append((None, rest))
    return [(wave, members) for wave, members in groups if members]


def only_wave(targets: Sequence[Target], wave: str, declared: Sequence[str],
              where: str) -> list[Target]:
    """``--wave NAME``: the targets of that wave; an unknown wave is an error."""
    known = list(dict.fromkeys([*declared, *(t.wave for t in targets if t.wave is not None)]))
    if wave not in known:
        listed = ", ".join(known) if known else "none: no target has a wave"
        raise UsageError(f"--wave {wave}: {where} has no wave of that name (waves: {listed})")
    return [target for target in targets if target.wave == wave]


@dataclass(frozen=True)
class Shard:
    """``--shard I/N``: this process takes the targets whose name hashes to ``index``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(spec: str, option: str = "--shard") -> Shard:
    """``I/N`` with 0 <= I < N, else UsageError."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
    if match is None or int(match.group(2)) < 1 or int(match.group(1)) >= int(match.group(2)):
        raise UsageError(f"{option} {spec!r} is not a shard; give I/N with 0 <= I < N "
                         "(e.g. 0/4 for the first of four)")
    return Shard(int(match.group(1)), int(match.group(2)))


def shard_of(name: str, count: int) -> int:
    """The shard of target ``name`` among ``count``: a stable hash of the name alone, so
    that every process agrees without talking and adding a target moves no other."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def in_shard(targets: Sequence[Target], shard: Shard) -> list[Target]:
    return [target for target in targets if shard_of(target.name, shard.count) == shard.index]
