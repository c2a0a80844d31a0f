"""The library API: one function per ``fraiseql migrate`` verb.

Each function takes resolved :class:`~fraiseql_alembic.settings.Settings` and plain
arguments, does the work through Alembic, and returns a result object; the CLI
only renders it.  Every failure is a :class:`~fraiseql_alembic.errors.MigrationError`.

    >>> from fraiseql_alembic import api, settings
    >>> s = settings.resolve("migrations", "postgresql://app@localhost/app")
    >>> api.upgrade(s)                                    # doctest: +SKIP
"""

from __future__ import annotations

import os
import string
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .engine import status as status_view
from .engine.database import standard_strings
from .engine.executor import Step
from .engine.preflight import refuse_inconsistent, sql_migration, validate_pending
from .engine.preflight import relative as _relative
from .engine.preflight import shown as _shown
from .engine.preflight import when_applied as _when
from .engine.translate import alembic_errors, foreign_error
from .errors import (
    AbortedByUser,
    IrreversibleMigrationError,
    MigrationError,
    MigrationExecutionError,
    MigrationFileError,
    MigrationLayoutError,
    UsageError,
    file_access_error,
)
from .project import loader
from .settings import Settings
from .sql.names import MAX_SLUG_LENGTH, SLUG_RE, parse_filename, suggest_slug
from .sqlstate import LOCK_NOT_AVAILABLE

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import Script, ScriptDirectory

    from .engine.backup import Backup
    from .engine.cancel import CancelToken
    from .engine.database import DatabaseState
    from .engine.rehearsal import Outcome
    from .project.check import Problem
    from .sql.lint import Finding
    from .sql.names import MigrationName
    from .sql.parse import ParsedMigration


def _template(name: str) -> str:
    """Text of a file shipped in templates/ (package data ``fraiseql_alembic.templates``)."""
    from importlib.resources import files

    return files("fraiseql_alembic.templates").joinpath(name).read_text(encoding="utf-8")



class Reporter(Protocol):
    """Receives progress while migrations run (the CLI prints it).

    ``plan``, ``backed_up`` and ``rehearsed`` are optional: a reporter without them
    is still accepted (they are looked up when called).
    """

    def start(self, filename: str, is_upgrade: bool) -> None: ...
    def done(self, filename: str, is_upgrade: bool) -> None: ...
    def notice(self, text: str) -> None: ...
    def marked(self, filename: str) -> None: ...
    def waiting(self, text: str) -> None: ...
    def plan(self, total: int, is_upgrade: bool) -> None:
        """How many migrations are about to run (before the first ``start``)."""
    def backed_up(self, backup: Backup) -> None:
        """``up --backup`` finished its dump, before anything is applied."""
    def rehearsed(self, outcome: Outcome) -> None:
        """``up --rehearse`` found what one pending migration would do."""


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
        raise MigrationLayoutError(
            f"--path {path} is a file, not a folder; point --path at the migrations folder"
        )
    created: list[Path] = []
    readme = path / "README.md"
    try:
        if not path.exists():
            path.mkdir(parents=True)
            created.append(path)
        if not readme.exists():
            readme.write_text(_template("migrations_README.md"), encoding="utf-8")
            created.append(readme)
    except OSError as err:
        raise file_access_error(err, action="create", writing=True) from err
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
        suggestion = suggest_slug(name)
        hint = f" (e.g. {suggestion})" if suggestion else ""
        raise UsageError(
            f"Migration name {name!r} is not snake_case: use lower-case letters, digits and _, "
            f"starting with a letter{hint}"
        )
    return name


def create(
    path: Path,
    name: str,
    *,
    today: date | None = None,
    cqrs: str | None = None,
    sync_history: bool = False,
) -> Path:
    """Write ``NNN_<name>.sql`` with the next number; return its path.

    With ``cqrs`` (an entity such as ``comment``) the file holds the CQRS template:
    ``tb_<entity>``, ``tv_<entity>`` with a GIN index on ``data``, and with
    ``sync_history`` the shared ``sync_history`` table; its down section undoes it.
    """
    from .project import cqrs as cqrs_template

    validate_name(name)
    if cqrs is not None:
        cqrs_template.validate_entity(cqrs)
    elif sync_history:
        raise UsageError("--sync-history belongs to a CQRS migration: add --cqrs ENTITY")
    if path.is_file():
        loader.list_folder(path)  # the same message as every other verb
    if not path.is_dir():
        raise MigrationLayoutError(
            f"Migrations folder {path} does not exist; run `fraiseql migrate init` first "
            "or pass --path"
        )
    listing = loader.list_folder(path)
    numbered = [(migration.number, migration.version) for migration, _ in listing.migrations]
    widths = [len(migration.version) for migration, _ in listing.migrations]
    for entry in path.iterdir():  # numbered .py revisions count too
        stem = entry.name.split("_", 1)[0]
        if entry.suffix == ".py" and loader.is_numeric_id(stem) and "_" in entry.name:
            numbered.append((int(stem), stem))
            widths.append(len(stem))
    number = max(numbered, default=(0, ""))[0] + 1
    version = str(number).zfill(max([3, *widths[-1:]]))
    filename = f"{version}_{name}.sql"
    assert parse_filename(filename) is not None
    values = {
        "version": version,
        "title": name.replace("_", " ").capitalize(),
        "date": (today or date.today()).isoformat(),
    }
    if cqrs is not None:
        content = cqrs_template.render(
            {template: _template(template) for template in cqrs_template.TEMPLATES},
            entity=cqrs, sync_history=sync_history, **values,
        )
    else:
        content = string.Template(_template("migration.sql")).substitute(values)
    follow = _head_to_follow(path, max(numbered, default=(0, None))[1])
    if follow is not None:  # after the title line
        content = content.replace("\n", f"\n-- revises: {follow}\n", 1)
    target = path / filename
    opened = False
    try:
        with open(target, "x", encoding="utf-8") as handle:
            opened = True
            handle.write(content)
    except OSError as err:
        if opened:  # a partial file (disk full) would look like a migration
            with suppress(OSError):
                target.unlink()
        raise file_access_error(err, target, action="create", writing=True) from err
    return target


def _head_to_follow(path: Path, highest: str | None) -> str | None:
    """The parent a new SQL file must name in a ``-- revises:`` line: the folder's single
    head when that is not the highest-numbered revision (which numbering alone would
    chain onto), e.g. a hex-id revision from ``alembic revision`` or ``alembic merge``."""
    if not loader.has_python_revisions(path):
        return None
    heads = script_directory(Settings(path, None, None)).get_heads()
    return heads[0] if len(heads) == 1 and heads[0] != highest else None


# ---------------------------------------------------------------------------
# Alembic plumbing


def alembic_config(
    settings: Settings,
    reporter: Reporter | None = None,
    *,
    cancel: CancelToken | None = None,
    lock_held: bool = False,
    directory: ScriptDirectory | None = None,
) -> Config:
    """An in-memory Alembic Config for our environment and the migrations folder."""
    from alembic.config import Config

    from .alembic_bridge.plugin import ENV_LOCATION, OPT_IN_OPTION, RunContext, set_run_context

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
def _alembic_errors(running: _Progress | None = None) -> Iterator[None]:
    """:func:`.translate.alembic_errors`, naming the migration ``running`` is at."""
    with alembic_errors(lambda: running.current if running else None):
        yield


class _Progress:
    """Forwards progress to the caller's reporter and remembers which migration is running."""

    def __init__(self, reporter: Reporter | None) -> None:
        self.reporter = reporter
        self.current: str | None = None
        #: called before each migration starts (the lease's check: stop if it was lost)
        self.before_each: Callable[[], None] | None = None

    def start(self, filename: str, is_upgrade: bool) -> None:
        if self.before_each is not None:
            self.before_each()
        self.current = filename
        if self.reporter is not None:
            self.reporter.start(filename, is_upgrade)

    def done(self, filename: str, is_upgrade: bool) -> None:
        self.current = None
        if self.reporter is not None:
            self.reporter.done(filename, is_upgrade)

    def notice(self, text: str) -> None:
        if self.reporter is not None:
            self.reporter.notice(text)

    def marked(self, filename: str) -> None:
        if self.reporter is not None:
            self.reporter.marked(filename)

    def waiting(self, text: str) -> None:
        if self.reporter is not None:
            self.reporter.waiting(text)

    def plan(self, total: int, is_upgrade: bool) -> None:
        self._optional("plan", total, is_upgrade)

    def backed_up(self, backup: Backup) -> None:
        self._optional("backed_up", backup)

    def rehearsed(self, outcome: Outcome) -> None:
        self._optional("rehearsed", outcome)

    def _optional(self, name: str, *args: Any) -> None:
        method = getattr(self.reporter, name, None)
        if method is not None:
            method(*args)


@contextmanager
def _migration_lock(
    settings: Settings, progress: _Progress, cancel: CancelToken | None
) -> Iterator[Any]:
    """Hold the database's migration lock (advisory, or a lease with ``--lock lease``)
    while planning and running; yields the lock's connection (autocommit, idle), which
    the direct path also plans and runs on.  Under a lease, ``progress.start`` first
    checks that the lease is still ours, so a lost lease stops the run before the next
    migration."""
    from .engine.locking import LeaseLock, MigrationLock
    from .settings import LEASE

    options = settings.run

    def on_wait(holder: Any) -> None:
        who = holder.describe() if holder is not None else "another session"
        progress.waiting(
            f"Waiting up to {options.lock_wait:.0f}s for the migration lock held by {who}"
        )

    should_stop = (lambda: cancel.cancelled) if cancel is not None else None
    lock: LeaseLock | MigrationLock
    if options.lock == LEASE:
        lock = LeaseLock(
            settings.require_url(), wait_seconds=options.lock_wait,
            expiry=options.lease_expiry, history_schema=settings.history_schema,
            on_wait=on_wait, on_notice=progress.waiting, should_stop=should_stop,
        )
    else:
        lock = MigrationLock(
            settings.require_url(), wait_seconds=options.lock_wait, on_wait=on_wait,
            should_stop=should_stop, history_schema=settings.history_schema,
        )
    with lock:
        progress.before_each = lock.check
        try:
            yield lock.connection
        finally:
            progress.before_each = None


def _run_direct(
    settings: Settings, progress: _Progress, cancel: CancelToken | None, steps: list[Step],
    connection: Any,
) -> None:
    """Run SQL-only steps with :mod:`fraiseql_alembic.engine.executor` (retries included), on
    ``connection``, the session holding the migration lock."""
    from .engine.executor import run_steps

    done: set[str] = set()  # versions completed, so that a retry resumes after them
    _run_with_retries(
        settings,
        progress,
        lambda: run_steps(
            settings.require_url(),
            steps,
            history_schema=settings.history_schema,
            options=settings.run,
            reporter=progress,
            cancel=cancel,
            done=done,
            connection=connection,
        ),
        through_alembic=False,
    )


def _run_with_retries(
    settings: Settings,
    progress: _Progress,
    run: Callable[[], None],
    *,
    through_alembic: bool = True,
) -> None:
    """Run an Alembic command; a migration that hit lock_timeout (55P03) is retried.

    Every migration is one transaction, so a failed attempt left nothing behind and
    the next attempt resumes from the last completed migration.
    """
    import time

    attempts = settings.run.lock_retries + 1
    for attempt in range(1, attempts + 1):
        try:
            with _alembic_errors(progress) if through_alembic else nullcontext():
                run()
            return
        except MigrationExecutionError as err:
            if err.sqlstate != LOCK_NOT_AVAILABLE or attempt == attempts:
                if err.sqlstate == LOCK_NOT_AVAILABLE:
                    raise MigrationError(
                        f"Migration {err.filename} could not get a lock"
                        + (f" at line {err.line}" if err.line else "") + " "
                        f"({err.pg_message} [SQLSTATE {LOCK_NOT_AVAILABLE}]). Gave up after "
                        f"{attempts} "
                        f"attempt{'s' if attempts != 1 else ''}: a long transaction holds a "
                        "lock this migration needs; "
                        "nothing of it was kept. Retry when that transaction ends, or raise "
                        "--lock-timeout"
                    ) from err
                raise
            delay = min(2 ** (attempt - 1), 30)
            progress.notice(
                f"Lock timeout in {err.filename} (SQLSTATE {LOCK_NOT_AVAILABLE}): attempt "
                f"{attempt} of {attempts} rolled back; retrying in {delay}s"
            )
            time.sleep(delay)



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


@dataclass(frozen=True)
class SqlRevision:
    """A SQL migration as a revision, without Alembic (what status and planning need)."""

    revision: str
    down_revision: str | None
    path: str
    module: Any  # has ``fraiseql_migration``, like the modules the plugin makes
    dependencies: tuple[str, ...] = ()


def revisions(settings: Settings) -> tuple[list[Any], ScriptDirectory | None]:
    """The chain, base first, and Alembic's ScriptDirectory when it was needed.

    A folder of SQL files alone (no ``.py`` revision, no ``-- revises:``) is linked
    by our loader without importing Alembic: ``status``, ``up --dry-run`` and an
    ``up`` with nothing to do then start in a fraction of the time.
    """
    import types

    from .alembic_bridge.plugin import load_parsed

    listing = loader.list_folder(settings.path)
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


def _read_state(settings: Settings, connection: Any = None) -> DatabaseState:
    """Where the database is, on a read-only psycopg2 session (no SQLAlchemy needed):
    a new one, or a read-only transaction on ``connection`` (autocommit, idle)."""
    import psycopg2

    from .engine.database import open_dbapi, read_state

    own = connection is None
    if own:  # read only by BEGIN READ ONLY: poolers refuse a startup `options` parameter
        connection = open_dbapi(settings.require_url())
        connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("BEGIN READ ONLY")
        try:
            return read_state(connection, settings.history_schema)
        finally:
            with suppress(psycopg2.Error), connection.cursor() as cursor:
                cursor.execute("ROLLBACK")
    except psycopg2.Error as err:
        from .engine.locking import statement_pooling

        if own and connection.closed and statement_pooling(settings.require_url()):
            from .engine.locking import STATEMENT, pooler_error

            raise pooler_error(settings.require_url(), STATEMENT) from err
        raise foreign_error(err) from err
    finally:
        if own:
            connection.close()


def display_name(script: Any) -> str:
    migration = sql_migration(script)
    return migration.name.filename if migration is not None else os.path.basename(script.path)


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
    backup: Backup | None = None  # the dump ``backup=`` made before applying

    @property
    def up_to_date(self) -> bool:
        return not self.planned


def upgrade(
    settings: Settings,
    *,
    steps: int | None = None,
    dry_run: bool = False,
    reporter: Reporter | None = None,
    cancel: CancelToken | None = None,
    backup: Path | bool = False,
    resume: Resume | None = None,
) -> UpgradeResult:
    """Apply pending migrations in order (all, or the next ``steps``).

    Holds the database's migration lock from planning to the end, so concurrent
    deploys apply each migration once.  Refuses to run anything when an applied
    migration's file changed.  With ``dry_run`` nothing is written and no lock is
    taken: the connection is read-only and the result lists each pending migration
    with its SQL.  ``cancel`` stops the run between or inside statements.

    ``backup`` (a path, or True for ``backups/<db>-<UTC time>.dump``) runs
    ``pg_dump --format=custom`` under the lock, once something is pending and
    before anything is applied; if the dump fails nothing is applied.

    ``resume`` settles a statement that an earlier run sent outside a transaction and
    stopped before recording (:func:`settle_interrupted`) before anything runs.
    """
    _check_steps(steps)
    if dry_run and backup is not False:
        raise UsageError("--backup cannot be combined with --dry-run: a dry run changes nothing")
    if dry_run and resume is not None:
        raise UsageError("--resume cannot be combined with --dry-run: a dry run changes nothing")
    if not dry_run:
        _load_sql_scanner_in_background()
    scripts, directory = revisions(settings)
    if dry_run:
        return _plan_upgrade(settings, scripts, steps, dry_run=True)
    progress = _Progress(reporter)
    with _migration_lock(settings, progress, cancel) as connection:
        if resume is not None:
            settle_interrupted(settings, connection, "up", resume, scripts, progress.notice)
        plan = _plan_upgrade(settings, scripts, steps, dry_run=False, connection=connection)
        if not plan.planned:
            return plan
        if backup is not False:
            dumped = _back_up(settings, backup, cancel)
            progress.backed_up(dumped)
            plan = replace(plan, backup=dumped)
        marked = plan.marked
        to_run = plan.planned[len(marked) :]
        progress.plan(len(to_run), True)
        if directory is None and not marked:  # SQL files only: run them directly
            by_version = {script.revision: script for script in scripts}
            _run_direct(settings, progress, cancel, [
                Step(sql_migration(by_version[item.version]),  # type: ignore[arg-type]
                     True, by_version[item.version].down_revision, item.version)
                for item in to_run
            ], connection)
            return replace(plan, applied=tuple(item.version for item in to_run))
        from alembic import command

        if marked:
            with _alembic_errors(progress):
                command.stamp(
                    alembic_config(settings, lock_held=True, directory=directory), marked[-1]
                )
            for item in plan.planned[: len(marked)]:
                progress.marked(item.filename)
        if len(plan.planned) > len(marked):
            config = alembic_config(
                settings, progress, cancel=cancel, lock_held=True, directory=directory
            )
            _run_with_retries(
                settings, progress,
                lambda: command.upgrade(config, plan.planned[-1].version),
            )
    applied = tuple(item.version for item in plan.planned[len(marked) :])
    return replace(plan, applied=applied)


#: ``--resume``: what became of the statement an interrupted run left unrecorded.
Resume = Literal["done", "again"]


def settle_interrupted(
    settings: Settings,
    connection: Any,
    direction: str,
    resume: Resume,
    scripts: Sequence[Script],
    notice: Callable[[str], None],
) -> None:
    """Settle, by the user's word, the statement that a run of ``direction`` sent
    outside a transaction and stopped before recording (the run that finds it stops
    with an :class:`~fraiseql_alembic.errors.InterruptedStatementError`).

    ``"done"``: it took effect; it is recorded as completed and the file resumes after
    it.  ``"again"``: the record of it is dropped, and the file resumes with it.
    ``connection`` is an idle autocommit session under the migration lock.
    """
    import psycopg2

    from .engine import history

    try:
        with connection.cursor() as cursor:
            settled = history.resolve_running(
                cursor, settings.history_schema, direction, done=resume == "done"
            )
    except psycopg2.Error as err:
        raise foreign_error(err) from err
    if settled is None:
        raise MigrationError(
            f"--resume {resume}: no statement of an earlier `fraiseql migrate {direction}` "
            "was left unrecorded (see `fraiseql migrate status`); nothing was run. Run the "
            "command without --resume"
        )
    names = {script.revision: display_name(script) for script in scripts}
    where = f"{names.get(settled.version, settled.version)}:{settled.statement_line}"
    notice(f"{where}: recorded as done, not run again (--resume done)" if resume == "done"
           else f"{where}: will be run again (--resume again)")


def _load_sql_scanner_in_background() -> None:
    """Start importing the splitter (psqlscan: about 10 ms compiling its patterns) and
    pglast (about 35 ms; it classifies statements such as ``CREATE INDEX CONCURRENTLY``)
    on a daemon thread.

    Reading the pending files needs them, but nothing before that does; loaded here, the
    imports overlap with waiting for the lock connection and the state queries instead
    of delaying the first migration.  A failed import is left for the real one to report.
    """
    import sys
    import threading

    if "pglast.parser" in sys.modules and "fraiseql_alembic.sql.psqlscan" in sys.modules:
        return

    def load() -> None:
        with suppress(Exception):
            from .sql import psqlscan  # noqa: F401
        with suppress(Exception):
            import pglast.parser  # noqa: F401

    threading.Thread(target=load, name="fraiseql-load-scanner", daemon=True).start()


def _check_steps(steps: int | None) -> None:
    if steps is not None and steps < 1:
        raise UsageError(f"--steps must be a positive number, got {steps}")


def _back_up(settings: Settings, target: Path | bool, cancel: CancelToken | None) -> Backup:
    from .engine import backup

    url = settings.require_url()
    if target is True:
        from .engine.locking import libpq_url

        target = backup.default_path(backup.split_password(libpq_url(url)).dbname)
    assert isinstance(target, Path)
    return backup.dump(url, target, lock_timeout=settings.run.lock_timeout, cancel=cancel)


# ---------------------------------------------------------------------------
# up --rehearse


@dataclass(frozen=True)
class RehearsalResult:
    """What each pending migration would do; nothing of it was written."""

    outcomes: tuple[Outcome, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def up_to_date(self) -> bool:
        return not self.outcomes

    @property
    def failed(self) -> Outcome | None:
        """The migration that would fail, if one would."""
        from .engine.rehearsal import WOULD_FAIL

        return next((item for item in self.outcomes if item.result == WOULD_FAIL), None)


def rehearse(
    settings: Settings,
    *,
    steps: int | None = None,
    reporter: Reporter | None = None,
    cancel: CancelToken | None = None,
) -> RehearsalResult:
    """Run the pending migrations (all, or the next ``steps``) in one transaction and
    roll it back: would each one apply, and if not, where would it fail?

    Holds the migration lock like :func:`upgrade` and refuses the same inconsistent
    states.  Stops at the first failure (the rest are "not reached") and at the first
    migration that cannot run in a transaction or is a Python revision (it and the
    rest are "not rehearsed").  Takes real locks on the tables the migrations touch,
    for as long as the rehearsal runs.  Writes nothing.
    """
    from .engine.rehearsal import WOULD_RECORD, Candidate, Outcome
    from .engine.rehearsal import rehearse as run_rehearsal

    _check_steps(steps)
    scripts, _ = revisions(settings)
    by_version = {script.revision: script for script in scripts}
    progress = _Progress(reporter)
    with _migration_lock(settings, progress, cancel):
        plan = _plan_upgrade(settings, scripts, steps, dry_run=False, validate=False)
        outcomes = []
        for item in plan.planned[: len(plan.marked)]:
            outcomes.append(Outcome(item.version, item.filename, WOULD_RECORD))
            progress.rehearsed(outcomes[-1])
        candidates = [
            Candidate(item.version, item.filename, sql_migration(by_version[item.version]))
            for item in plan.planned[len(plan.marked) :]
        ]
        outcomes += run_rehearsal(
            settings.require_url(), candidates, options=settings.run,
            on_outcome=progress.rehearsed, on_notice=progress.notice, cancel=cancel,
        )
    return RehearsalResult(tuple(outcomes), plan.warnings)


def _plan_upgrade(
    settings: Settings, scripts: list[Script], steps: int | None, *, dry_run: bool,
    connection: Any = None, validate: bool = True,
) -> UpgradeResult:
    """What ``up`` would run; ``validate`` reads every pending file first (a rehearsal
    reports an unreadable file as that migration's outcome instead)."""
    state = _read_state(settings, connection)
    report = status_view.with_ignored(
        status_view.build(scripts, state, sql_migration, display_name),
        loader.list_folder(settings.path).ignored,
    )
    refuse_inconsistent(report, settings.path)
    if report.branched:
        raise MigrationLayoutError(
            f"{status_view.branched_message(report.folder_heads)}. Nothing was applied"
        )
    lost_heads = [row for row in report.rows
                  if row.state == status_view.MISSING and row.version in state.heads]
    if lost_heads:
        raise MigrationLayoutError(
            f"The database is at {lost_heads[0].filename}, whose file is missing from "
            f"{settings.path}; restore it (e.g. from git) before applying anything after it"
        )
    pending = [row for row in report.rows if row.state == status_view.PENDING]
    marked = _leading_manual_marks(pending)
    if validate:
        validate_pending(pending[len(marked):], standard_strings=(
            standard_strings(connection) if connection is not None else True))
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
    return UpgradeResult(planned, (), dry_run, warnings, tuple(marked))


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
    cancel: CancelToken | None = None,
    resume: Resume | None = None,
) -> DowngradeResult:
    """Roll back the most recent ``steps`` migrations, newest first.

    Every migration in the plan must have a down section, or nothing is rolled
    back.  ``confirm`` sees the plan and may refuse it (AbortedByUser); it is asked
    before the migration lock is taken, so a prompt never blocks other deploys.
    Under the lock the plan is made again, and if the database moved meanwhile
    nothing is rolled back.  ``resume``: as for :func:`upgrade`.
    """
    _check_steps(steps)
    scripts, directory = revisions(settings)
    planned, target = _plan_downgrade(settings, scripts, steps)
    if confirm is not None and not confirm(planned):
        raise AbortedByUser("Rollback cancelled; nothing was changed")
    _load_sql_scanner_in_background()
    progress = _Progress(reporter)
    with _migration_lock(settings, progress, cancel) as connection:
        if resume is not None:
            settle_interrupted(settings, connection, "down", resume, scripts, progress.notice)
        if _plan_downgrade(settings, scripts, steps, connection) != (planned, target):
            raise MigrationError(
                "The database changed while the rollback waited (another deploy ran?); "
                "nothing was rolled back. Run the command again to see the new plan"
            )
        progress.plan(len(planned), False)
        if directory is None:  # SQL files only: run them directly
            by_version = {script.revision: script for script in scripts}
            _run_direct(settings, progress, cancel, [
                Step(sql_migration(by_version[item.version]),  # type: ignore[arg-type]
                     False, item.version, by_version[item.version].down_revision)
                for item in planned
            ], connection)
            return DowngradeResult(planned, tuple(item.version for item in planned))
        from alembic import command

        config = alembic_config(
            settings, progress, cancel=cancel, lock_held=True, directory=directory
        )
        _run_with_retries(settings, progress, lambda: command.downgrade(config, target))
    return DowngradeResult(planned, tuple(item.version for item in planned))


def _plan_downgrade(
    settings: Settings, scripts: list[Script], steps: int, connection: Any = None
) -> tuple[tuple[PlannedMigration, ...], str]:
    """What ``steps`` rollbacks would undo, newest first, and the revision they end at."""
    state = _read_state(settings, connection)
    report = status_view.build(scripts, state, sql_migration, display_name)
    if report.version_rows_problem is not None:
        raise MigrationLayoutError(
            f"Refusing to roll back: {report.version_rows_problem}. Nothing was rolled back"
        )
    partial = [row for row in report.rows if row.partial is not None and not row.applied]
    if partial:
        raise MigrationLayoutError(
            f"{partial[0].filename} is partly applied (up to line "
            f"{partial[0].partial.next_line - 1 if partial[0].partial else '?'}); finish it "
            "with `fraiseql migrate up` before rolling back anything, so that the rollback "
            "starts from a known state. Nothing was rolled back"
        )
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
            from .alembic_bridge.plugin import irreversible_message

            raise IrreversibleMigrationError(
                irreversible_message(row.migration) + " Nothing was rolled back."
            )
    validate_pending(plan_rows, upgrade=False, standard_strings=(
        standard_strings(connection) if connection is not None else True))
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
    target_row = applied[len(applied) - steps - 1] if steps < len(applied) else None
    return planned, target_row.version if target_row is not None else "base"


# ---------------------------------------------------------------------------
# status


def status(settings: Settings) -> status_view.StatusReport:
    """Every migration with its state: applied, pending, modified or missing."""
    scripts, _ = revisions(settings)
    state = _read_state(settings)
    report = status_view.build(scripts, state, sql_migration, display_name)
    listing = loader.list_folder(settings.path)
    return status_view.with_ignored(report, listing.ignored)


# ---------------------------------------------------------------------------
# lint / check (no database needed)


@dataclass(frozen=True)
class LintReport:
    findings: tuple[Finding, ...]
    files: tuple[Path, ...]  # the files linted


def lint(settings: Settings, files: Sequence[Path] = ()) -> LintReport:
    """Lint migration files (all of the folder, or ``files``) for risky operations.

    Every migration of the folder is read in order, so that what an earlier file
    did (e.g. a validated ``CHECK (col IS NOT NULL)``) counts; findings are
    reported for ``files`` only.  The project's ``lock_timeout`` setting decides
    rule FQL009.  A file that cannot be parsed raises MigrationFileError.
    Findings name files as seen from the current directory.
    """
    from .sql.lint import lint_migrations

    chosen: list[tuple[MigrationName, Path]] = []
    for path in files:
        name = parse_filename(path.name)
        if name is None:
            raise UsageError(
                f"{path} is not a migration file: names look like 001_initial_schema.sql"
            )
        chosen.append((name, path))
    folder = (
        list(loader.list_folder(settings.path, check_numbers=False).migrations)
        if not files or settings.path.is_dir()
        else []
    )
    if not files:
        chosen = folder
    order = _merged_order(folder, chosen)
    reported = {path.resolve() for _, path in chosen}
    parsed: list[ParsedMigration] = []
    shown: dict[str, str] = {}
    for name, path in order:
        try:
            migration = loader.read_migration(name, path)
        except MigrationFileError:
            if path.resolve() in reported:
                raise
            continue  # read only for context
        parsed.append(migration)
        if path.resolve() in reported:
            shown[name.filename] = _shown(path.resolve().parent, path.name)
    findings = lint_migrations(parsed, lock_timeout=settings.run.lock_timeout, report=shown)
    return LintReport(
        tuple(replace(finding, file=shown[finding.file]) for finding in findings),
        tuple(path for _, path in chosen),
    )


def _merged_order(
    folder: Sequence[tuple[MigrationName, Path]], chosen: Sequence[tuple[MigrationName, Path]]
) -> list[tuple[MigrationName, Path]]:
    """Folder files and chosen files, each once, in the order they run."""
    seen = {path.resolve() for _, path in folder}
    extra = [item for item in chosen if item[1].resolve() not in seen]
    return sorted([*folder, *extra], key=lambda item: (item[0].number, item[0].filename))


@dataclass(frozen=True)
class CheckReport:
    problems: tuple[Problem, ...]
    migrations: int  # files in the folder
    new_files: tuple[str, ...] | None  # files not on --base (None without --base)
    pending: int | None  # pending on the database (None: not checked)
    database_skipped: str | None  # why the database was not checked, if it was not


def check(settings: Settings, *, base: str | None = None) -> CheckReport:
    """Everything that should stop a pull request, in one pass (``fraiseql migrate check``).

    Without a database: duplicate numbers, misnamed files, files that do not parse,
    a chain that does not link, and lint findings.  With ``base`` (a git ref): files
    new relative to it must be numbered above its highest number, and only new files
    are linted (what is merged already was linted when it was new).  With a database
    configured (``settings.database_url``): applied files that changed, missing,
    unrecorded or partly applied files; pending migrations are counted, not problems.
    A database that cannot be reached raises DatabaseError.
    """
    from .project import check as rules
    from .sql.lint import lint_migrations
    from .sql.statements import split_statements

    listing = loader.list_folder(settings.path, check_numbers=False)
    paths = {name.filename: path for name, path in listing.migrations}

    def shown(filename: str) -> str:
        return _shown(settings.path, filename)

    problems = [
        rules.Problem(shown(name.filename), 1, message)
        for name, message in rules.duplicate_numbers([name for name, _ in listing.migrations])
    ]
    problems += [rules.Problem(shown(path.name), 1, rules.misnamed(path.name))
                 for path in listing.ignored]
    parsed: list[ParsedMigration] = []
    for name, path in listing.migrations:
        try:
            migration = loader.read_migration(name, path)
            for section in (migration.up, migration.down):
                if section is not None:
                    split_statements(migration, section)
        except MigrationFileError as err:
            problems.append(rules.Problem(shown(name.filename), err.line or 1, err.detail))
            continue
        parsed.append(migration)
    chain: list[rules.Revision] | None = None
    if not problems:
        try:
            chain = _chain_of(settings, parsed)
        except MigrationError as err:
            problems.append(rules.Problem(None, 1, err.message))
    layout_ok = not problems

    new_files: tuple[str, ...] | None = None
    on_base: set[str] | None = None
    if base is not None:
        from .project.gitbase import files_at

        on_base = files_at(settings.path, base)
        new_files = tuple(name for name in paths if name not in on_base)
        changed, renamed = _changed_since_base(settings.path, base, on_base, parsed, shown)
        problems += [
            rules.Problem(shown(name.filename), 1, message)
            for name, message in rules.numbering_against_base(
                [name for name, _ in listing.migrations if name.filename not in renamed],
                on_base, base,
            )
        ]
        problems += changed
    branched = [rules.Problem(shown(filename) if filename else None, 1, message)
                for filename, message in rules.branches(chain or [], on_base, base)]
    problems += branched
    report = set(new_files) if new_files is not None else None
    problems += [
        rules.Problem(shown(finding.file), finding.line,
                f"{finding.rule} {finding.slug}: {finding.message}. Instead: {finding.fix}")
        for finding in lint_migrations(
            parsed, lock_timeout=settings.run.lock_timeout, report=report
        )
    ]

    pending: int | None = None
    skipped: str | None = None
    if not settings.database_url:
        skipped = "no database configured"
    elif not layout_ok:
        skipped = "the folder has the problems above"
    else:
        database = status(settings)
        pending = len(database.pending)
        problems += [rules.Problem(shown(filename) if filename else None, line, message)
                     for filename, line, message in rules.database_problems(database)]
        if any(row.state == status_view.OUT_OF_ORDER for row in database.rows):
            # the database's explanation names the file and the way out: say it once
            problems = [problem for problem in problems
                        if problem not in branched or problem.file is not None]
    return CheckReport(tuple(problems), len(listing.migrations), new_files, pending, skipped)


def _chain_of(settings: Settings, parsed: Sequence[ParsedMigration]) -> list[Any]:
    """Every revision with its parents (check.Revision), base first; Alembic loads the
    ``.py`` revisions when there are any."""
    from .project.check import Revision

    if not loader.has_python_revisions(settings.path):
        parents = loader.link_chain(parsed, [])
        return [Revision(migration.name.version,
                         (parent,) if (parent := parents[migration.name.version]) else (),
                         migration.name.filename)
                for migration in parsed]
    scripts, _ = revisions(settings)
    return [Revision(script.revision, status_view.parents_of(script), display_name(script))
            for script in scripts]


def _changed_since_base(
    folder: Path, base: str, on_base: set[str], parsed: Sequence[ParsedMigration],
    shown: Callable[[str], str],
) -> tuple[list[Any], set[str]]:
    """Migrations that ``base`` has and this branch deleted, renamed or whose up section
    it edited; and the new names of the renamed ones.

    Compared with the fork point (``git merge-base``), as a pull request's diff is: a file
    merged into ``base`` after the branch was made is not "deleted" by the branch.  A new
    file with a deleted file's number is a rename: databases track the number, so the
    advice is to rename it back, never to renumber it (which would apply it twice).
    """
    from .project import check as rules
    from .project.gitbase import changed_since, content_at, fork_point
    from .sql.names import parse_filename
    from .sql.parse import normalize_text, parse_migration

    current = {migration.name.filename: migration for migration in parsed}
    by_version = {migration.name.version: migration.name.filename for migration in parsed}
    fork = fork_point(folder, base)
    problems = []
    renamed: set[str] = set()
    for filename, change in sorted(changed_since(folder, fork).items()):
        name = parse_filename(filename)
        if name is None or filename not in on_base:
            continue
        new_name = by_version.get(name.version)
        if change == "D" and new_name is not None and new_name not in on_base:
            renamed.add(new_name)
            problems.append(rules.Problem(shown(new_name), 1, (
                f"renames {filename}, which {base} has already: databases know a migration by "
                f"its number and file, so rename it back to {filename} (a new change goes "
                "in a new migration)")))
            continue
        before: ParsedMigration | None = None
        if change == "M":
            try:
                before = parse_migration(
                    name, normalize_text(content_at(folder, fork, filename), filename))
            except MigrationFileError:
                before = None
        message = rules.changed_since_base(shown(filename), change, before,
                                           current.get(filename), base)
        if message is not None:
            problems.append(rules.Problem(shown(filename), 1, message))
    return problems, renamed


# mark-applied / repair: change the record, never the schema


@dataclass(frozen=True)
class Recorded:
    """A history row written by ``mark_applied`` or ``repair``."""

    version: str
    filename: str
    previous_checksum: str | None = None  # repair: the checksum it replaced


def mark_applied(
    settings: Settings,
    version: str,
    *,
    reason: str | None = None,
    reporter: Reporter | None = None,
) -> Recorded:
    """Record ``version`` as applied without running it (its changes were made by hand).

    Only the next pending migration can be marked: a linear chain cannot skip one.
    ``alembic_version`` moves to it like a stamp and a ``marked_applied`` history row
    keeps who, when, why (``reason``) and the file's checksum.  A file that sits
    below applied migrations but never ran here (merged late) is recorded the same
    way, without moving ``alembic_version``.  Under the migration lock.
    """
    from .engine.executor import record_without_running
    from .engine.history import MARKED_APPLIED, Entry

    scripts, _ = revisions(settings)
    with _migration_lock(settings, _Progress(reporter), None):
        state = _read_state(settings)
        report = status_view.build(scripts, state, sql_migration, display_name)
        row = _find_row(report, version, settings.path)
        if row.state in (status_view.APPLIED, status_view.MODIFIED, status_view.MISSING):
            missing = "; its file is missing" if row.state == status_view.MISSING else ""
            raise MigrationError(
                f"{row.filename} is already applied{_when(row)}{missing}; nothing to mark "
                "(`fraiseql migrate status` shows every migration)"
            )
        others = replace(report, rows=tuple(other for other in report.rows if other is not row))
        refuse_inconsistent(others, settings.path)
        if row.state in (status_view.UNTRACKED, status_view.OUT_OF_ORDER):
            refuse_inconsistent(report, settings.path)  # explains this one
        move: tuple[str | None, str] | None = None
        if row.state == status_view.PENDING:
            first = report.pending[0]
            if first is not row:
                raise MigrationLayoutError(
                    f"Cannot mark {row.filename} applied while {first.filename} before it is "
                    "pending: the chain cannot skip it. Apply it (`fraiseql migrate up "
                    f"--steps 1`) or mark it first (`fraiseql migrate mark-applied "
                    f"{first.version}`). Nothing was recorded"
                )
            move = (_linear_parent(scripts, row, state.heads), row.version)
        migration = row.migration
        entry = Entry(
            version=row.version,
            name=migration.name.slug if migration is not None else None,
            filename=row.filename,
            checksum=row.checksum,
            execution_ms=None,
            action=MARKED_APPLIED,
            up_checksum=migration.up_checksum if migration is not None else None,
            note=reason,
        )
        record_without_running(
            settings.require_url(), [entry], history_schema=settings.history_schema,
            options=settings.run, move=move,
        )
    return Recorded(row.version, row.filename)


def repair(
    settings: Settings,
    version: str | None = None,
    *,
    reason: str | None = None,
    reporter: Reporter | None = None,
) -> tuple[Recorded, ...]:
    """Accept the current checksum of applied files that changed after they ran.

    Every MODIFIED migration, or only ``version`` (which must be MODIFIED), gets a
    ``repaired`` history row with its new checksums; its note keeps the previous
    checksum and ``reason``.  ``status`` then shows it applied (at the original time)
    and ``up`` stops refusing.  Returns what was repaired: empty when nothing was
    modified.  Under the migration lock.
    """
    from .engine.executor import record_without_running
    from .engine.history import REPAIRED, Entry

    scripts, _ = revisions(settings)
    with _migration_lock(settings, _Progress(reporter), None):
        state = _read_state(settings)
        report = status_view.build(scripts, state, sql_migration, display_name)
        rows = [row for row in report.rows if row.state == status_view.MODIFIED]
        if version is not None:
            row = _find_row(report, version, settings.path)
            if row.state != status_view.MODIFIED:
                raise MigrationError(
                    f"{row.filename} is not modified ({_describe(row)}); nothing to repair. "
                    "`repair` accepts the new checksum of an applied file that changed "
                    "(✗ MODIFIED in `fraiseql migrate status`)"
                )
            rows = [row]
        entries = []
        for row in rows:
            migration = row.migration
            assert migration is not None  # MODIFIED needs a SQL file to compare
            previous = f"previous checksum {row.recorded_checksum}"
            entries.append(Entry(
                version=row.version,
                name=migration.name.slug,
                filename=row.filename,
                checksum=migration.checksum,
                execution_ms=None,
                action=REPAIRED,
                up_checksum=migration.up_checksum,
                note=f"{previous}; {reason}" if reason else previous,
            ))
        if entries:
            record_without_running(
                settings.require_url(), entries, history_schema=settings.history_schema,
                options=settings.run,
            )
    return tuple(Recorded(row.version, row.filename, row.recorded_checksum) for row in rows)


def _find_row(
    report: status_view.StatusReport, given: str, folder: Path
) -> status_view.StatusRow:
    """The row a user means by ``003``, ``3``, ``003_add_indexes`` or a file name/path."""
    wanted = Path(given.strip()).name.removesuffix(".sql")
    for row in report.rows:
        stem = row.filename.removesuffix(".sql")
        if wanted in (row.version, stem) or (
            wanted.isdigit() and row.version.isdigit() and int(wanted) == int(row.version)
        ):
            return row
    raise UsageError(
        f"No migration {given!r} in {_relative(folder)} or in the database's history; give "
        "a version such as 003 (`fraiseql migrate status` lists them)"
    )


def _linear_parent(
    scripts: list[Any], row: status_view.StatusRow, heads: tuple[str, ...]
) -> str | None:
    """The version ``alembic_version`` must hold for ``row`` to be the next step."""
    script = next(script for script in scripts if script.revision == row.version)
    parent = script.down_revision
    expected = () if parent is None else (parent,)
    if not isinstance(parent, (str, type(None))) or tuple(heads) != expected:
        raise MigrationLayoutError(
            f"Cannot mark {row.filename} applied: it is not one step after where the "
            f"database is (alembic_version: {', '.join(heads) or 'empty'}; its parent: "
            f"{parent or 'none'}). For branches and merges use `alembic stamp "
            f"{row.version}`. Nothing was recorded"
        )
    return parent


def _describe(row: status_view.StatusRow) -> str:
    if row.state == status_view.APPLIED:
        return f"applied{_when(row)} and unchanged since"
    return {
        status_view.PENDING: "it is pending",
        status_view.MISSING: "its file is missing",
        status_view.UNRECORDED: "it never ran here",
        status_view.UNTRACKED: "it is not in alembic_version",
        status_view.OUT_OF_ORDER: "it was merged out of order",
    }.get(row.state, row.state)
