"""The library API: one function per ``fraiseql migrate`` verb.

Each function takes resolved :class:`~fraiseql_alembic.settings.Settings` and plain
arguments and reads resolve → lock → plan → run → result: planning is
:mod:`.engine.plan`'s, files are :mod:`.project`'s, Alembic is reached through
:mod:`.alembic_bridge.commands`.  It returns a result object; the CLI only renders
it.  Every failure is a :class:`~fraiseql_alembic.errors.MigrationError`.

    >>> from fraiseql_alembic import api, settings
    >>> s = settings.resolve("migrations", "postgresql://app@localhost/app")
    >>> api.upgrade(s)                                    # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .alembic_bridge import commands
from .alembic_bridge.commands import SqlRevision as SqlRevision
from .alembic_bridge.commands import alembic_config as alembic_config
from .alembic_bridge.commands import chain as chain
from .alembic_bridge.commands import revisions as revisions
from .alembic_bridge.commands import script_directory as script_directory
from .engine import plan as planning
from .engine import status as status_view
from .engine.database import standard_strings
from .engine.deploy import (
    Progress,
    back_up,
    current_state,
    load_sql_scanner_in_background,
    migration_lock,
    run_direct,
    run_with_retries,
)
from .engine.deploy import Reporter as Reporter
from .engine.deploy import Resume as Resume
from .engine.deploy import settle_interrupted as settle_interrupted
from .engine.fleet import FleetInterrupted as FleetInterrupted
from .engine.fleet import FleetResult, TargetOutcome, resolve_targets, run_fleet
from .engine.plan import PlannedMigration as PlannedMigration
from .engine.plan import Script, UpgradePlan
from .engine.plan import display_name as display_name
from .engine.preflight import refuse_inconsistent as refuse_inconsistent
from .engine.preflight import shown
from .engine.preflight import sql_migration as sql_migration
from .engine.preflight import validate_pending as validate_pending
from .engine.recorder import Step, record_without_running
from .engine.rehearsal import WOULD_FAIL, WOULD_RECORD, Candidate, Outcome
from .engine.rehearsal import rehearse as run_rehearsal
from .errors import AbortedByUser, MigrationError, UsageError, shown_path
from .project import check as rules
from .project import loader, scaffold
from .project.scaffold import InitResult as InitResult
from .project.scaffold import init as init
from .project.scaffold import validate_name as validate_name
from .project.targets import Shard, Target, in_shard, only_wave, read_targets, waves_of
from .settings import Settings

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

    from .alembic_bridge.commands import ScriptDirectory
    from .engine.backup import Backup
    from .engine.cancel import CancelToken
    from .engine.rehearsal import Outcome
    from .project.check import Problem
    from .sql.lint import Finding


# ---------------------------------------------------------------------------
# init / create (files only): project/scaffold.py


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
    A folder with ``.py`` revisions is read by Alembic, so that a new file follows
    a hex-id head (from ``alembic revision`` or ``alembic merge``) with ``-- revises:``.
    """
    return scaffold.create(
        path, name, today=today, cqrs=cqrs, sync_history=sync_history,
        heads=lambda: commands.heads(Settings(path, None, None)),
    )


# ---------------------------------------------------------------------------
# up


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
        raise UsageError("backup= cannot be combined with dry_run=: a dry run changes nothing")
    if dry_run and resume is not None:
        raise UsageError("resume= cannot be combined with dry_run=: a dry run changes nothing")
    if not dry_run:
        load_sql_scanner_in_background()
    scripts, directory = revisions(settings)
    if dry_run:
        return _upgrade_result(_plan_upgrade(settings, scripts, steps), dry_run=True)
    progress = Progress(reporter)
    with migration_lock(settings, progress, cancel) as connection:
        if resume is not None:
            settle_interrupted(settings, connection, "up", resume, scripts, progress.notice)
        plan = _plan_upgrade(settings, scripts, steps, connection=connection)
        if not plan.planned:
            return _upgrade_result(plan)
        dumped = None
        if backup is not False:
            dumped = back_up(settings, backup, cancel)
            progress.backed_up(dumped)
        marked = plan.marked
        to_run = plan.planned[len(marked) :]
        progress.plan(len(to_run), True)
        if directory is None and not marked:  # SQL files only: run them directly
            run_direct(settings, progress, cancel, _steps(scripts, to_run, upgrade=True),
                       connection)
        else:
            _upgrade_through_alembic(settings, plan, directory, progress, cancel)
    return _upgrade_result(plan, applied=tuple(item.version for item in to_run),
                           backup=dumped)


def _upgrade_through_alembic(
    settings: Settings, plan: UpgradePlan, directory: ScriptDirectory | None,
    progress: Progress, cancel: CancelToken | None,
) -> None:
    """Stamp the migrations marked applied by hand, then ``alembic upgrade`` the rest."""
    if plan.marked:
        commands.stamp(
            alembic_config(settings, lock_held=True, directory=directory), plan.marked[-1]
        )
        for item in plan.planned[: len(plan.marked)]:
            progress.marked(item.filename)
    if len(plan.planned) > len(plan.marked):
        config = alembic_config(
            settings, progress, cancel=cancel, lock_held=True, directory=directory
        )
        run_with_retries(settings, progress, lambda: commands.upgrade(
            config, plan.planned[-1].version, lambda: progress.current))


def _upgrade_result(plan: UpgradePlan, *, dry_run: bool = False, applied: tuple[str, ...] = (),
                    backup: Backup | None = None) -> UpgradeResult:
    return UpgradeResult(plan.planned, applied, dry_run, plan.warnings, plan.marked, backup)


def _plan_upgrade(
    settings: Settings, scripts: Sequence[Script], steps: int | None, *,
    connection: Connection | None = None,
    validate: bool = True,
) -> UpgradePlan:
    """:func:`.plan.plan_upgrade` on the database's state, read on ``connection`` (the
    lock's) or on a read-only session of its own."""
    state = current_state(settings, connection)
    report = planning.reconcile(scripts, state, loader.list_folder(settings.path).ignored)
    return planning.plan_upgrade(
        report, state.heads, steps, folder=settings.path, validate=validate,
        standard_strings=standard_strings(connection) if connection is not None else True,
    )


def _steps(
    scripts: Sequence[Script], planned: Sequence[PlannedMigration], *, upgrade: bool
) -> list[Step]:
    """The direct path's steps for ``planned`` (SQL files only)."""
    by_version = {script.revision: script for script in scripts}
    steps = []
    for item in planned:
        script = by_version[item.version]
        migration = sql_migration(script)
        assert migration is not None  # a folder with .py revisions runs through Alembic
        ends = (script.down_revision, item.version)
        steps.append(Step(migration, upgrade, *(ends if upgrade else ends[::-1])))
    return steps


def _check_steps(steps: int | None) -> None:
    if steps is not None and steps < 1:
        raise UsageError(f"steps= must be a positive number, got {steps}")


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
    _check_steps(steps)
    scripts, _ = revisions(settings)
    by_version = {script.revision: script for script in scripts}
    progress = Progress(reporter)
    with migration_lock(settings, progress, cancel):
        plan = _plan_upgrade(settings, scripts, steps, validate=False)
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
    load_sql_scanner_in_background()
    progress = Progress(reporter)
    with migration_lock(settings, progress, cancel) as connection:
        if resume is not None:
            settle_interrupted(settings, connection, "down", resume, scripts, progress.notice)
        if _plan_downgrade(settings, scripts, steps, connection) != (planned, target):
            raise MigrationError(
                "The database changed while the rollback waited (another deploy ran?); "
                "nothing was rolled back. Run the command again to see the new plan"
            )
        progress.plan(len(planned), False)
        if directory is None:  # SQL files only: run them directly
            run_direct(settings, progress, cancel, _steps(scripts, planned, upgrade=False),
                       connection)
        else:
            config = alembic_config(
                settings, progress, cancel=cancel, lock_held=True, directory=directory
            )
            run_with_retries(settings, progress, lambda: commands.downgrade(
                config, target, lambda: progress.current))
    return DowngradeResult(planned, tuple(item.version for item in planned))


def _plan_downgrade(
    settings: Settings, scripts: Sequence[Script], steps: int,
    connection: Connection | None = None,
) -> tuple[tuple[PlannedMigration, ...], str]:
    """:func:`.plan.plan_downgrade` on the database's state (as :func:`_plan_upgrade`)."""
    report = planning.reconcile(scripts, current_state(settings, connection))
    return planning.plan_downgrade(
        report, steps, folder=settings.path,
        standard_strings=standard_strings(connection) if connection is not None else True,
    )


# ---------------------------------------------------------------------------
# status, lint, check


def status(settings: Settings) -> status_view.StatusReport:
    """Every migration with its state: applied, pending, modified or missing."""
    scripts, _ = revisions(settings)
    state = current_state(settings)
    return planning.reconcile(scripts, state, loader.list_folder(settings.path).ignored)


@dataclass(frozen=True)
class LintReport:
    findings: tuple[Finding, ...]
    files: tuple[Path, ...]  # the files linted
    fail_on: str = "warning"  # the least severity that fails (the project's ``fail_on``)

    @property
    def failing(self) -> tuple[Finding, ...]:
        """The findings at or above ``fail_on``: a run with any exits 1."""
        levels = ("info", "warning", "error")
        return tuple(finding for finding in self.findings
                     if levels.index(finding.severity) >= levels.index(self.fail_on))


def lint(settings: Settings, files: Sequence[Path] = ()) -> LintReport:
    """Lint migration files (all of the folder, or ``files``) for risky operations.

    Every migration of the folder is read in order, so that what an earlier file
    did (e.g. a validated ``CHECK (col IS NOT NULL)``) counts; findings are
    reported for ``files`` only.  The project's ``lock_timeout`` setting decides
    rule FQL009, its lint settings (``settings.lint``: disabled rules, severities,
    ``postgres_version``, excluded paths, ``fail_on``) the rest.  A file that cannot
    be parsed raises MigrationFileError; an unknown rule in the settings ConfigError.
    Findings name files as seen from the current directory.
    """
    findings = rules.lint_files(settings.path, files, lock_timeout=settings.run.lock_timeout,
                                options=settings.lint)
    linted = [path for path in files or [
        path for _, path in loader.list_folder(settings.path, check_numbers=False).migrations
    ] if not rules.excluded(path, settings.lint.exclude)]
    return LintReport(tuple(findings), tuple(linted), settings.lint.fail_on)


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
    def python_chain() -> list[loader.Revision]:
        scripts, _ = revisions(settings)
        return [loader.Revision(script.revision, status_view.parents_of(script),
                                display_name(script)) for script in scripts]

    folder = rules.check_folder(settings.path, base=base, python_chain=python_chain,
                                lock_timeout=settings.run.lock_timeout, lint=settings.lint)
    problems = list(folder.problems)
    pending: int | None = None
    skipped: str | None = None
    if not settings.database_url:
        skipped = "no database configured"
    elif not folder.layout_ok:
        skipped = "the folder has the problems above"
    else:
        database = status(settings)
        pending = len(database.pending)
        problems += [
            rules.Problem(shown(settings.path, filename) if filename else None,
                          line, message)
            for filename, line, message in planning.database_problems(database)
        ]
        if any(row.state == status_view.OUT_OF_ORDER for row in database.rows):
            # the database's explanation names the file and the way out: say it once
            problems = [problem for problem in problems
                        if problem not in folder.branched or problem.file is not None]
    return CheckReport(tuple(problems), folder.migrations, folder.new_files, pending, skipped)


# ---------------------------------------------------------------------------
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
    scripts, _ = revisions(settings)
    with migration_lock(settings, Progress(reporter), None):
        row, entry, move = planning.plan_mark(scripts, current_state(settings), version,
                                         folder=settings.path, reason=reason)
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
    scripts, _ = revisions(settings)
    with migration_lock(settings, Progress(reporter), None):
        report = planning.reconcile(scripts, current_state(settings))
        planned = planning.plan_repair(report, version, folder=settings.path, reason=reason)
        if planned:
            record_without_running(
                settings.require_url(), [entry for _, entry in planned],
                history_schema=settings.history_schema, options=settings.run,
            )
    return tuple(Recorded(row.version, row.filename, row.recorded_checksum)
                 for row, _ in planned)


# ---------------------------------------------------------------------------
# fleets: one verb on many targets (project/targets.py, engine/fleet.py)

R = TypeVar("R")

#: ``--jobs`` when not given: targets migrated at the same time.  Each holds two or three
#: connections (the lock's, the migration's, a heartbeat under a lease) on its server.
DEFAULT_JOBS = 4


@dataclass(frozen=True)
class Fleet:
    """The targets of a fleet run, after queries, ``wave`` and ``shard`` were applied."""

    file: Path
    targets: tuple[Target, ...]
    waves: tuple[str, ...] = ()  # the file's declared wave order


def fleet(
    file: Path,
    *,
    wave: str | None = None,
    shard: Shard | None = None,
    environ: Mapping[str, str] | None = None,
) -> Fleet:
    """Read the targets file ``file`` (:mod:`.project.targets`), run its queries on their
    control databases, and keep the targets of ``wave`` and of ``shard``, if given."""
    environ = os.environ if environ is None else environ
    parsed = read_targets(file, environ)
    targets = resolve_targets(parsed, environ)
    if wave is not None:
        targets = only_wave(targets, wave, parsed.waves, shown_path(file))
    if shard is not None:
        targets = in_shard(targets, shard)
    for target in targets:
        if target.schema is not None:
            raise UsageError(f"{target.where}: target {target.name} names a schema; schema "
                             "per tenant is not supported yet: give each tenant a database")
    return Fleet(file, tuple(targets), parsed.waves)


def target_settings(settings: Settings, target: Target) -> Settings:
    """``settings`` for one target of a fleet: its URL instead of the configured one."""
    return replace(settings, database_url=target.url, url_source=f"target {target.name}")


def on_fleet(
    settings: Settings,
    fleet: Fleet,
    verb: Callable[[Settings, Target], R],
    *,
    jobs: int = DEFAULT_JOBS,
    max_failures: int | None = 1,
    in_waves: bool = True,
    on_end: Callable[[TargetOutcome[R]], None] | None = None,
    cancel: CancelToken | None = None,
) -> FleetResult[R]:
    """Call ``verb(target's settings, target)`` for every target of ``fleet``, ``jobs`` at
    a time; ``verb`` is one of this module's functions, so that each target behaves
    exactly as a single run (its own connection, lock, checks, timeouts, retries)::

        api.on_fleet(settings, fleet, lambda s, target: api.upgrade(s, cancel=token),
                     cancel=token)

    A target whose ``verb`` raises is ``failed`` (its one line kept, masked).  Once
    ``max_failures`` targets failed (None: never) no new target starts and the running
    ones finish.  ``in_waves``: wave by wave, a wave starting only if every target before
    it succeeded.  ``cancel`` (the token ``verb`` passes on) stops every running target
    and raises FleetInterrupted holding the result.  A folder with ``.py`` revisions runs
    one target at a time (Alembic keeps its running context in module globals).
    """
    if jobs < 1:
        raise UsageError(f"jobs= must be 1 or more, got {jobs}")
    warnings: tuple[str, ...] = ()
    if jobs > 1 and loader.has_python_revisions(settings.path):
        jobs, warnings = 1, ("the folder holds .py revisions, which Alembic runs one "
                             f"database at a time: running with 1 job instead of {jobs}",)
    return run_fleet(
        waves_of(fleet.targets, fleet.waves) if in_waves else [(None, fleet.targets)],
        lambda target: verb(target_settings(settings, target), target),
        jobs=jobs, max_failures=max_failures, cancel=cancel, on_end=on_end,
        warnings=warnings,
    )
