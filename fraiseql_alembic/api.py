"""The library API: one function per ``fraiseql migrate`` verb.

Each function takes resolved :class:`~fraiseql_alembic.settings.Settings` and plain
arguments, does the work through Alembic, and returns a result object; the CLI
only renders it.  Every failure is a :class:`~fraiseql_alembic.errors.MigrationError`.

    >>> from fraiseql_alembic import api, settings
    >>> s = settings.resolve("migrations", "postgresql://app@localhost/app")
    >>> api.upgrade(s)                                    # doctest: +SKIP
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from . import loader
from . import status as status_view
from .errors import (
    AbortedByUser,
    ChecksumMismatchError,
    IrreversibleMigrationError,
    MigrationError,
    MigrationFileError,
    MigrationLayoutError,
    UsageError,
)
from .settings import URL_KEY, Settings
from .sqlfile import MAX_SLUG_LENGTH, SLUG_RE, parse_filename

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import Script, ScriptDirectory

    from .database import DatabaseState
    from .sqlfile import ParsedMigration


def _template(name: str) -> str:
    """Text of a file shipped in templates/ (package data ``fraiseql_alembic.templates``)."""
    from importlib.resources import files

    return files("fraiseql_alembic.templates").joinpath(name).read_text(encoding="utf-8")



class Reporter(Protocol):
    """Receives progress while migrations run (the CLI prints it)."""

    def start(self, filename: str, is_upgrade: bool) -> None: ...
    def notice(self, text: str) -> None: ...
    def marked(self, filename: str) -> None: ...


# ---------------------------------------------------------------------------
# init / create (files only)


@dataclass(frozen=True)
class InitResult:
    folder: Path
    created: tuple[Path, ...]

    @property
    def already_initialized(self) -> bool:
        return not self.created


def init(path: Path) -> InitResult:
    """Create the migrations folder and its README.md; change nothing if both exist."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"--path {path} is a file, not a folder; choose another --path")
    created: list[Path] = []
    if not path.exists():
        path.mkdir(parents=True)
        created.append(path)
    readme = path / "README.md"
    if not readme.exists():
        readme.write_text(_template("migrations_README.md"), encoding="utf-8")
        created.append(readme)
    return InitResult(path, tuple(created))


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid migration name, else raise UsageError."""
    if not name.strip():
        raise UsageError("Migration name is empty; give a snake_case name like add_comments_table")
    if len(name) > MAX_SLUG_LENGTH:
        raise UsageError(
            f"Migration name is {len(name)} characters long; keep it under "
            f"{MAX_SLUG_LENGTH + 1} (e.g. add_user_bio_column)"
        )
    if not SLUG_RE.match(name):
        suggestion = "_".join(
            "".join(ch if ch.isalnum() and ch.isascii() else " " for ch in name).lower().split()
        ).lstrip("0123456789_")
        hint = f" (e.g. {suggestion})" if suggestion and SLUG_RE.match(suggestion) else ""
        raise UsageError(
            f"Migration name {name!r} is not snake_case: use lower-case letters, digits and _, "
            f"starting with a letter{hint}"
        )
    return name


def create(path: Path, name: str, *, today: date | None = None) -> Path:
    """Write ``NNN_<name>.sql`` with the next number; return its path."""
    validate_name(name)
    if not path.is_dir():
        raise MigrationLayoutError(
            f"Migrations folder {path} does not exist; run `fraiseql migrate init` first "
            "or pass --path"
        )
    listing = loader.list_folder(path)
    numbers = [migration.number for migration, _ in listing.migrations]
    widths = [len(migration.version) for migration, _ in listing.migrations]
    for entry in path.iterdir():  # numbered .py revisions count too
        stem = entry.name.split("_", 1)[0]
        if entry.suffix == ".py" and stem.isdigit() and "_" in entry.name:
            numbers.append(int(stem))
            widths.append(len(stem))
    number = max(numbers, default=0) + 1
    version = str(number).zfill(max([3, *widths[-1:]]))
    filename = f"{version}_{name}.sql"
    assert parse_filename(filename) is not None
    template = string.Template(_template("migration.sql"))
    content = template.substitute(
        version=version,
        title=name.replace("_", " ").capitalize(),
        date=(today or date.today()).isoformat(),
    )
    target = path / filename
    with open(target, "x", encoding="utf-8") as handle:
        handle.write(content)
    return target


# ---------------------------------------------------------------------------
# Alembic plumbing


def alembic_config(settings: Settings, reporter: Reporter | None = None) -> Config:
    """An in-memory Alembic Config for our environment and the migrations folder."""
    from alembic.config import Config

    from .plugin import ENV_LOCATION, HISTORY_SCHEMA_KEY, OPT_IN_OPTION, REPORTER_KEY

    config = Config()
    config.set_main_option("script_location", ENV_LOCATION)
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(settings.path).replace("%", "%%"))
    config.set_main_option(OPT_IN_OPTION, "true")
    config.attributes[URL_KEY] = settings.database_url
    config.attributes[HISTORY_SCHEMA_KEY] = settings.history_schema
    if reporter is not None:
        config.attributes[REPORTER_KEY] = reporter
    return config


@contextmanager
def _alembic_errors() -> Iterator[None]:
    """Turn Alembic's CommandError (and ours wrapped in it) into our errors."""
    from alembic.util import CommandError

    try:
        yield
    except CommandError as err:
        original = getattr(err, "original", None)
        if isinstance(original, MigrationError):
            raise original from err
        raise MigrationError(str(err)) from err


def script_directory(settings: Settings) -> ScriptDirectory:
    """Load every revision of the folder (SQL files and .py revisions)."""
    from alembic.script import ScriptDirectory

    loader.list_folder(settings.path)  # clear errors for a missing folder or --path to a file
    with _alembic_errors():
        directory = ScriptDirectory.from_config(alembic_config(settings))
        directory.revision_map.heads  # noqa: B018  (forces loading: errors surface here)
    return directory


def chain(directory: ScriptDirectory) -> list[Script]:
    """All revisions, base first."""
    with _alembic_errors():
        return list(reversed(list(directory.walk_revisions())))


def _read_state(settings: Settings) -> DatabaseState:
    from .database import connect, read_state

    connection = connect(settings.require_url(), read_only=True)
    try:
        with connection.begin():
            return read_state(connection, settings.history_schema)
    finally:
        connection.close()


def sql_migration(script: Script) -> ParsedMigration | None:
    migration: ParsedMigration | None = getattr(script.module, "fraiseql_migration", None)
    return migration


def display_name(script: Script) -> str:
    return Path(script.path).name


# ---------------------------------------------------------------------------
# up


@dataclass(frozen=True)
class PlannedMigration:
    """A migration that would run, with the SQL it would send."""

    version: str
    filename: str
    sql: str | None  # None for a .py revision


@dataclass(frozen=True)
class UpgradeResult:
    planned: tuple[PlannedMigration, ...]
    applied: tuple[str, ...]
    dry_run: bool
    warnings: tuple[str, ...] = field(default=())
    marked: tuple[str, ...] = field(default=())  # stamped from a hand-made history row

    @property
    def up_to_date(self) -> bool:
        return not self.planned


def upgrade(
    settings: Settings,
    *,
    steps: int | None = None,
    dry_run: bool = False,
    reporter: Reporter | None = None,
) -> UpgradeResult:
    """Apply pending migrations in order (all, or the next ``steps``).

    Refuses to run anything when an applied migration's file changed.  With
    ``dry_run`` nothing is written: the connection is read-only and the result
    lists each pending migration with its SQL.
    """
    if steps is not None and steps < 1:
        raise UsageError(f"--steps must be a positive number, got {steps}")
    directory = script_directory(settings)
    scripts = chain(directory)
    state = _read_state(settings)
    report = status_view.build(scripts, state, sql_migration, display_name)
    _refuse_inconsistent(report)
    pending = [row for row in report.rows if row.state == status_view.PENDING]
    marked = _leading_manual_marks(pending)
    if steps is not None:
        pending = pending[:steps]
    marked = marked[: len(pending)]
    planned = tuple(
        PlannedMigration(
            row.version,
            row.filename,
            migration.up.sql.strip() if (migration := row.migration) is not None else None,
        )
        for row in pending
    )
    for row in pending[len(marked) :]:
        if row.migration is not None and row.migration.up.is_empty:
            raise MigrationFileError(
                row.filename,
                "has no SQL to run (the up section is empty or only comments); write the "
                "migration's SQL below `-- migrate:up` or delete the file. Nothing was applied",
            )
    warnings = tuple(status_view.warnings(report))
    if dry_run or not planned:
        return UpgradeResult(planned, (), dry_run, warnings, tuple(marked))
    from alembic import command

    with _alembic_errors():
        if marked:
            command.stamp(alembic_config(settings), marked[-1])
            for item in planned[: len(marked)]:
                if reporter is not None:
                    reporter.marked(item.filename)
        if len(planned) > len(marked):
            command.upgrade(alembic_config(settings, reporter), planned[-1].version)
    applied = tuple(item.version for item in planned[len(marked) :])
    return UpgradeResult(planned, applied, False, warnings, tuple(marked))


def _leading_manual_marks(pending: list[status_view.StatusRow]) -> list[str]:
    """Versions marked applied by hand (the spec's INSERT) at the front of the pending list.

    They are stamped, not run.  A hand mark behind an unmarked pending migration is
    refused: stamping it would skip the one before it.
    """
    marked: list[str] = []
    for index, row in enumerate(pending):
        if row.marked_by_hand is None:
            later = next((later for later in pending[index:] if later.marked_by_hand), None)
            if later is not None:
                raise MigrationLayoutError(
                    f"{later.filename} is marked applied by hand in fraiseql_migrations, but "
                    f"{row.filename} before it is not applied; apply or mark {row.filename} "
                    "first, or delete the hand-made row"
                )
            break
        marked.append(row.version)
    return marked


def _refuse_inconsistent(report: status_view.StatusReport) -> None:
    for row in report.rows:
        if row.state == status_view.MODIFIED:
            raise ChecksumMismatchError(
                f"Migration {row.filename} checksum mismatch: the file changed after it was "
                f"applied{_when(row)}. Don't edit applied migrations: restore the file "
                "(e.g. `git checkout -- " + row.filename + "`) and put the change in a new "
                "migration (`fraiseql migrate create fix_...`)"
            )


def _when(row: status_view.StatusRow) -> str:
    return f" on {row.applied_at:%Y-%m-%d %H:%M:%S}" if row.applied_at else ""


# ---------------------------------------------------------------------------
# down


@dataclass(frozen=True)
class DowngradeResult:
    planned: tuple[PlannedMigration, ...]
    rolled_back: tuple[str, ...]


def downgrade(
    settings: Settings,
    *,
    steps: int = 1,
    confirm: Callable[[tuple[PlannedMigration, ...]], bool] | None = None,
    reporter: Reporter | None = None,
) -> DowngradeResult:
    """Roll back the most recent ``steps`` migrations, newest first.

    Every migration in the plan must have a down section, or nothing is rolled
    back.  ``confirm`` sees the plan and may refuse it (AbortedByUser).
    """
    if steps < 1:
        raise UsageError(f"--steps must be a positive number, got {steps}")
    directory = script_directory(settings)
    scripts = chain(directory)
    state = _read_state(settings)
    report = status_view.build(scripts, state, sql_migration, display_name)
    applied = [row for row in report.rows if row.applied]
    missing = [row for row in applied if row.state == status_view.MISSING]
    if missing:
        raise MigrationLayoutError(
            f"Applied migration {missing[-1].filename} is missing from {settings.path}; "
            "restore the file (e.g. from git) before rolling back"
        )
    if not applied:
        raise MigrationError("Nothing to roll back: no migration is applied to this database")
    if steps > len(applied):
        raise UsageError(
            f"--steps {steps} is more than the {len(applied)} applied migration(s); "
            f"use --steps {len(applied)} to roll back everything"
        )
    plan_rows = list(reversed(applied))[:steps]
    for row in plan_rows:
        if row.migration is not None and not row.migration.reversible:
            from .plugin import irreversible_message

            raise IrreversibleMigrationError(
                irreversible_message(row.migration) + " Nothing was rolled back."
            )
    planned = tuple(
        PlannedMigration(
            row.version,
            row.filename,
            row.migration.down.sql.strip()
            if row.migration is not None and row.migration.down is not None
            else None,
        )
        for row in plan_rows
    )
    if confirm is not None and not confirm(planned):
        raise AbortedByUser("Rollback cancelled; nothing was changed")
    target_row = applied[len(applied) - steps - 1] if steps < len(applied) else None
    target = target_row.version if target_row is not None else "base"
    from alembic import command

    with _alembic_errors():
        command.downgrade(alembic_config(settings, reporter), target)
    return DowngradeResult(planned, tuple(item.version for item in planned))


# ---------------------------------------------------------------------------
# status


def status(settings: Settings) -> status_view.StatusReport:
    """Every migration with its state: applied, pending, modified or missing."""
    directory = script_directory(settings)
    scripts = chain(directory)
    state = _read_state(settings)
    report = status_view.build(scripts, state, sql_migration, display_name)
    listing = loader.list_folder(settings.path)
    return status_view.with_ignored(report, listing.ignored)
