"""``fraiseql migrate``: parse the command line, call :mod:`fraiseql_alembic.api`, render.

Imports stay light: Alembic, SQLAlchemy and pglast load only when a verb needs them.
Exit codes: 0 success, 1 a failure (one line on stderr), 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from .. import __version__
from ..errors import MigrationError
from ..secrets import password_of, redact
from .reporting import CHECK, PENDING_MARK, PROBLEM_MARK, JsonReporter, TextReporter

if TYPE_CHECKING:
    from ..api import PlannedMigration, RehearsalResult, Resume
    from ..engine.cancel import CancelToken
    from ..engine.history import Progress
    from ..engine.status import StatusReport
    from ..settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

PARTIAL_MARK = "◐"


class CliState:
    """What the group-level options hold for the verbs."""

    def __init__(self) -> None:
        self.verbose = False


pass_state = click.make_pass_decorator(CliState, ensure=True)


def _set_verbose(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.ensure_object(CliState).verbose = True
    return value


verbose_option = click.option(
    "--verbose",
    "-v",
    is_flag=True,
    expose_value=False,
    callback=_set_verbose,
    help="Show tracebacks and more detail on errors.",
)


def common_options(func: F) -> F:
    """``--path`` and ``--database-url``, accepted by every verb."""
    func = click.option(
        "--database-url",
        metavar="URL",
        help="PostgreSQL URL (default: $DATABASE_URL, then the project config).",
    )(func)
    func = click.option(
        "--path",
        "path",
        type=click.Path(path_type=Path),
        default=None,
        help="Migrations folder (default: ./migrations).",
    )(func)
    return verbose_option(func)


def handle_errors(func: F) -> F:
    """One line and a non-zero exit for every failure; a traceback only with --verbose."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        state = ctx.ensure_object(CliState)
        secret = password_of(kwargs.get("database_url"))
        try:
            return func(*args, **kwargs)
        except click.exceptions.Exit:
            raise
        except BrokenPipeError:  # `fraiseql migrate status | head`: the reader has enough
            from .reporting import discard_stdout

            discard_stdout()
            ctx.exit(141)  # what a process killed by SIGPIPE reports (128 + 13)
        except click.ClickException:
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except (MigrationError, OSError) as err:
            if isinstance(err, OSError):  # one that no verb put into words (errors.py does)
                from ..errors import file_access_error

                err = file_access_error(err)
            if state.verbose:
                click.echo(redact(traceback.format_exc(), secret), err=True)
            click.echo(f"Error: {redact(err.message, secret)}", err=True)
            ctx.exit(err.exit_code)
        except Exception as err:  # a bug or an unforeseen failure: still one line
            if state.verbose:
                click.echo(redact(traceback.format_exc(), secret), err=True)
                hint = ""
            else:
                hint = " (run again with --verbose for the traceback)"
            text = str(err).strip().splitlines()
            detail = redact(text[0] if text else "", secret)
            click.echo(f"Error: {type(err).__name__}: {detail}{hint}", err=True)
            ctx.exit(1)

    return wrapper  # type: ignore[return-value]


def _settings(path: Path | None, database_url: str | None) -> Settings:
    from ..settings import resolve

    return resolve(path, database_url)


class _OneLineErrors(click.Group):
    """Bad usage is one line too (`Error: ... (see `fraiseql migrate up --help`)`, exit 2),
    instead of Click's usage block."""

    def main(
        self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
        standalone_mode: bool = True, **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as err:
            hint = f" (see `{err.ctx.command_path} --help`)" if err.ctx is not None else ""
            click.echo(f"Error: {err.format_message()}{hint}", err=True)
            sys.exit(err.exit_code)
        except click.ClickException as err:
            err.show()
            sys.exit(err.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="fraiseql")
def main() -> None:
    """FraiseQL command line."""


@main.group()
@verbose_option
def migrate() -> None:
    """Numbered SQL migrations for PostgreSQL (Alembic underneath).

    Write migrations as migrations/NNN_name.sql; apply them with `up`, see where
    the database is with `status`, undo with `down`.  Docs: docs/ in the project.
    """


@migrate.command()
@common_options
@handle_errors
def init(path: Path | None, database_url: str | None) -> None:
    """Create the migrations folder and its README.md (safe to run twice)."""
    from ..api import init as api_init

    settings = _settings(path, database_url)
    result = api_init(settings.path)
    if result.already_initialized:
        click.echo(f"Already initialized: {_shown(result.folder)} and its README.md exist; "
                   "nothing changed")
        return
    click.echo(f"{CHECK} Initialized migrations in {_shown(result.folder)}")
    for created in result.created:
        click.echo(f"  created {_shown(created)}{'/' if created.is_dir() else ''}")
    click.echo("Next: fraiseql migrate create initial_schema")


@migrate.command()
@click.argument("name")
@click.option("--cqrs", "entity", metavar="ENTITY", default=None,
              help="Write the CQRS template for ENTITY: tb_ENTITY, tv_ENTITY (JSONB data, "
              "GIN index) and their down section.")
@click.option("--sync-history", is_flag=True,
              help="With --cqrs: also create the shared sync_history table.")
@common_options
@handle_errors
def create(
    name: str, entity: str | None, sync_history: bool, path: Path | None,
    database_url: str | None,
) -> None:
    """Write migrations/NNN_<name>.sql with the next number (NAME in snake_case)."""
    from ..api import create as api_create

    settings = _settings(path, database_url)
    created = api_create(settings.path, name, cqrs=entity, sync_history=sync_history)
    click.echo(f"{CHECK} Created {_shown(created)}")


class _Terminated(BaseException):
    """SIGTERM, turned into an exception in the main thread."""


def _raise_terminated(_signum: int, _frame: Any) -> None:
    raise _Terminated


T = TypeVar("T")

#: Set once :func:`run_interruptible` starts work (read by :mod:`.console` on a SIGTERM).
work_started = False


def run_interruptible(work: Callable[[CancelToken], T]) -> T:
    """Run ``work`` in a worker thread; SIGINT/SIGTERM cancel it cleanly.

    The first signal cancels the running statement on the server and stops before
    the next one: the migration in flight is rolled back, the lock released.  A
    second signal exits at once (the server rolls back when the connection drops).
    """
    import signal
    import threading

    from ..engine.cancel import CancelToken, MigrationInterrupted

    token = CancelToken()
    if threading.current_thread() is not threading.main_thread():
        return work(token)
    box: dict[str, Any] = {}
    finished = threading.Event()

    def target() -> None:
        try:
            box["result"] = work(token)
        except BaseException as err:  # handed to the main thread below
            box["error"] = err
        finally:
            finished.set()

    worker = threading.Thread(target=target, name="fraiseql-migrate", daemon=True)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    global work_started
    work_started = True
    exit_code = 0
    try:
        worker.start()
        # Wait on an Event, not Thread.join(): a signal landing inside join() can leave
        # the thread's bookkeeping claiming it ended while it still runs.
        while not finished.is_set():
            try:
                finished.wait(0.05)
            except (KeyboardInterrupt, _Terminated) as caught:
                name, code = (("SIGTERM", 143) if isinstance(caught, _Terminated)
                              else ("SIGINT", 130))
                if token.cancelled:
                    click.echo(f"{name} again: stopping now; the server rolls back what was "
                               "in flight.", err=True)
                    sys.exit(code)
                exit_code = code
                click.echo(f"{name}: cancelling the running statement and rolling back...",
                           err=True)
                token.cancel(name)
    finally:
        signal.signal(signal.SIGTERM, previous)
    error = box.get("error")
    if error is not None:
        if isinstance(error, MigrationInterrupted) and exit_code:
            error.exit_code = exit_code
        raise error
    return box["result"]  # type: ignore[no-any-return]


def _run_reported(
    work: Callable[[CancelToken], T], reporter: TextReporter, *, is_upgrade: bool
) -> T:
    """``run_interruptible``, telling the user what did and did not happen on a stop."""
    from ..engine.cancel import MigrationInterrupted

    try:
        return run_interruptible(work)
    except MigrationInterrupted:
        reporter.failed()
        for line in reporter.summary_after_stop(is_upgrade=is_upgrade):
            click.echo(line, err=True)
        raise
    except BaseException:
        reporter.failed()
        raise


def lock_option(func: F) -> F:
    """``--lock advisory|lease``: how deploys exclude each other."""
    return click.option("--lock", "lock", type=click.Choice(["advisory", "lease"],
                        case_sensitive=False), default=None,
                        help="advisory (default): a session advisory lock; lease: a lease "
                        "row with a heartbeat, for a pooler in transaction mode (default: "
                        "$FRAISEQL_LOCK, then lock in pyproject.toml).")(func)


def run_options(func: F) -> F:
    """Options of the verbs that move the database (up, down)."""
    func = lock_option(func)
    func = click.option("--lock-retries", type=click.IntRange(min=0), default=None,
                        metavar="N", help="Retries of a migration that hit lock_timeout "
                        "(default 3).")(func)
    func = click.option("--statement-timeout", metavar="DURATION", default=None,
                        help="PostgreSQL statement_timeout for migrations (default: the "
                        "server's).")(func)
    func = click.option("--lock-timeout", metavar="DURATION", default=None,
                        help="PostgreSQL lock_timeout for migrations (default 10s; 0 = wait "
                        "forever).")(func)
    func = click.option("--lock-wait", default=None, metavar="SECONDS",
                        help="How long to wait for another deploy's migration lock "
                        "(default 60).")(func)
    return func


def _run_settings(
    path: Path | None,
    database_url: str | None,
    lock_wait: str | None,
    lock_timeout: str | None,
    statement_timeout: str | None,
    lock_retries: int | None,
    lock: str | None = None,
) -> Settings:
    """The settings with the run flags applied; a bad flag is a UsageError (exit 2)."""
    from dataclasses import replace

    from ..errors import UsageError
    from ..settings import check_duration, check_seconds

    settings = _settings(path, database_url)
    run = settings.run
    if lock_wait is not None:
        run = replace(run, lock_wait=check_seconds(lock_wait, "--lock-wait", UsageError))
    if lock_timeout is not None:
        run = replace(run, lock_timeout=check_duration(lock_timeout, "--lock-timeout",
                                                       UsageError))
    if statement_timeout is not None:
        run = replace(run, statement_timeout=check_duration(statement_timeout,
                                                            "--statement-timeout", UsageError))
    if lock_retries is not None:
        run = replace(run, lock_retries=lock_retries)
    if lock is not None:
        run = replace(run, lock=lock.lower())
    return replace(settings, run=run)


def _resume_point(partial: Progress, direction: str) -> str:
    """Where `up`/`down` goes on in a partly run file, for the status line."""
    if partial.state == "running":
        return (f"stopped while line {partial.statement_line} ran outside a transaction; "
                f"`fraiseql migrate {direction}` checks whether it took effect")
    return f"`fraiseql migrate {direction}` resumes at line {partial.next_line}"


def resume_option(func: F) -> F:
    """``--resume done|again``: settle a statement an interrupted run left unrecorded."""
    return click.option(
        "--resume", type=click.Choice(["done", "again"]), default=None,
        help="An earlier run stopped while a statement ran outside a transaction: record "
        "that statement as done (it took effect), or run it again; then go on.")(func)


@migrate.command()
@click.option("--steps", type=click.IntRange(min=1), default=None, metavar="N",
              help="Apply only the next N pending migrations.")
@click.option("--dry-run", is_flag=True, help="Show what would run and its SQL; write nothing.")
@click.option("--rehearse", is_flag=True,
              help="Run the pending migrations in one transaction and roll it back: report "
              "which would apply and where one would fail; write nothing.")
@click.option("--backup", "backup", is_flag=False, flag_value="", default=None,
              metavar="[FILE]",
              help="pg_dump --format=custom to FILE (default backups/<db>-<UTC time>.dump) "
              "before applying anything; nothing is applied if the dump fails.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per line for each event instead of text.")
@resume_option
@run_options
@common_options
@handle_errors
def up(
    steps: int | None,
    dry_run: bool,
    rehearse: bool,
    backup: str | None,
    as_json: bool,
    resume: Resume | None,
    path: Path | None,
    database_url: str | None,
    **run: Any,
) -> None:
    """Apply pending migrations in order."""
    from ..api import upgrade

    for flag, given in (("--rehearse", rehearse), ("--backup", backup is not None),
                        ("--resume", resume is not None)):
        if dry_run and given:
            raise click.UsageError(f"{flag} cannot be combined with --dry-run")
    if rehearse and resume is not None:
        raise click.UsageError("--resume cannot be combined with --rehearse: a rehearsal "
                               "writes nothing")
    if rehearse and backup is not None:
        raise click.UsageError("--backup cannot be combined with --rehearse: a rehearsal "
                               "writes nothing")
    settings = _run_settings(path, database_url, **run)
    reporter = JsonReporter() if as_json else TextReporter()
    if rehearse:
        _rehearse(settings, steps, reporter)
        return
    result = _run_reported(
        lambda token: upgrade(
            settings, steps=steps, dry_run=dry_run, reporter=reporter, cancel=token,
            backup=False if backup is None else (Path(backup) if backup else True),
            resume=resume,
        ),
        reporter,
        is_upgrade=True,
    )
    if as_json:
        import json

        for warning in result.warnings:
            click.echo(json.dumps({"event": "warning", "text": warning}))
        click.echo(json.dumps({
            "event": "summary",
            "dry_run": dry_run,
            "applied": list(result.applied),
            "marked": list(result.marked),
            "planned": [
                {"version": item.version, "file": item.filename, "sql": item.sql}
                for item in result.planned
            ],
            "backup": str(result.backup.path) if result.backup is not None else None,
        }))
        return
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    if result.up_to_date:
        click.echo("Already up to date" + ("; no backup taken" if backup is not None else ""))
        return
    if dry_run:
        marked = set(result.marked)
        for item in result.planned:
            if item.version in marked:
                click.echo(f"Dry run: would record {item.filename} as applied (marked by hand)")
        to_run = tuple(item for item in result.planned if item.version not in marked)
        if to_run:
            _render_plan("Dry run: would apply", to_run, show_sql=True)
        click.echo("Nothing was applied (dry run).")
        return
    reporter.echo(f"{reporter.mark(CHECK)} Migration completed successfully")
    timing = reporter.timing_line(is_upgrade=True)
    if timing:
        reporter.echo(timing)


def _rehearse(settings: Settings, steps: int | None, reporter: TextReporter) -> None:
    """``up --rehearse``: outcomes as they come, a summary, exit 1 if one would fail."""
    from ..api import rehearse
    from ..engine.cancel import MigrationInterrupted

    try:
        result = run_interruptible(
            lambda token: rehearse(settings, steps=steps, reporter=reporter, cancel=token)
        )
    except MigrationInterrupted:
        click.echo("Rehearsal stopped; nothing was written.", err=True)
        raise
    if isinstance(reporter, JsonReporter):
        for warning in result.warnings:
            reporter.emit(event="warning", text=warning)
        reporter.emit(
            event="summary", rehearsal=True, would_fail=result.failed is not None,
            outcomes=[{"version": item.version, "file": item.filename,
                       "outcome": item.result, "detail": item.detail}
                      for item in result.outcomes],
        )
    else:
        for warning in result.warnings:
            click.echo(f"Warning: {warning}", err=True)
        click.echo(rehearsal_summary(result))
    if result.failed is not None:
        sys.exit(1)


def rehearsal_summary(result: RehearsalResult) -> str:
    """``Rehearsal: 1 of 3 migrations would apply; 003_x.sql would fail; nothing was
    written.``"""
    from ..engine.rehearsal import NOT_REHEARSED, WOULD_APPLY, WOULD_RECORD
    from .reporting import plural

    if result.up_to_date:
        return "Already up to date; nothing to rehearse"
    outcomes = result.outcomes
    count = {kind: sum(1 for item in outcomes if item.result == kind)
             for kind in (WOULD_APPLY, WOULD_RECORD, NOT_REHEARSED)}
    parts = [f"{count[WOULD_APPLY]} of {plural(len(outcomes))} would apply"]
    if count[WOULD_RECORD]:
        parts.append(f"{count[WOULD_RECORD]} would be recorded as applied (marked by hand)")
    if result.failed is not None:
        parts.append(f"{result.failed.filename} would fail")
    if count[NOT_REHEARSED]:
        first = next(item for item in outcomes if item.result == NOT_REHEARSED)
        parts.append(f"{count[NOT_REHEARSED]} not rehearsed, from {first.filename} on "
                     "(run them with `fraiseql migrate up`)")
    return f"Rehearsal: {'; '.join(parts)}; nothing was written."


@migrate.command()
@click.option("--steps", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="Roll back the N most recent migrations.")
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@resume_option
@run_options
@common_options
@handle_errors
def down(
    steps: int,
    force: bool,
    resume: Resume | None,
    path: Path | None,
    database_url: str | None,
    **run: Any,
) -> None:
    """Roll back the most recent migration(s), newest first."""
    from ..api import downgrade
    from ..errors import AbortedByUser

    settings = _run_settings(path, database_url, **run)

    def confirm(plan: tuple[PlannedMigration, ...]) -> bool:
        _render_plan("About to roll back", plan, show_sql=False)
        if force:
            return True
        if not sys.stdin.isatty():
            raise AbortedByUser(
                "Refusing to roll back without confirmation: there is no terminal to ask on. "
                "Pass --force to roll back anyway; nothing was changed"
            )
        return click.confirm("Continue?", default=False)

    reporter = TextReporter()
    result = _run_reported(
        lambda token: downgrade(
            settings, steps=steps, confirm=confirm, reporter=reporter, cancel=token,
            resume=resume,
        ),
        reporter,
        is_upgrade=False,
    )
    count = len(result.rolled_back)
    reporter.echo(f"{reporter.mark(CHECK)} Rollback completed successfully ({count} migration"
                  f"{'s' if count != 1 else ''} rolled back)")
    timing = reporter.timing_line(is_upgrade=False)
    if timing:
        reporter.echo(timing)


def record_options(func: F) -> F:
    """Options of the verbs that change the record only (mark-applied, repair)."""
    func = lock_option(func)
    func = click.option("--lock-wait", default=None, metavar="SECONDS",
                        help="How long to wait for another deploy's migration lock "
                        "(default 60).")(func)
    return click.option("--reason", metavar="TEXT", default=None,
                        help="Why, for the audit trail (stored in fraiseql_migrations.note)."
                        )(func)


@migrate.command("mark-applied")
@click.argument("version")
@record_options
@common_options
@handle_errors
def mark_applied(
    version: str, reason: str | None, lock_wait: str | None, lock: str | None,
    path: Path | None, database_url: str | None,
) -> None:
    """Record the next pending migration as applied without running it (it was applied
    by hand).  VERSION: 003, 003_add_indexes or the file name."""
    from ..api import mark_applied as api_mark_applied

    settings = _run_settings(path, database_url, lock_wait, None, None, None, lock)
    recorded = api_mark_applied(settings, version, reason=reason, reporter=TextReporter())
    click.echo(f"{CHECK} Marked {recorded.filename} as applied without running it "
               "(recorded in fraiseql_migrations)")


@migrate.command()
@click.argument("version", required=False)
@record_options
@common_options
@handle_errors
def repair(
    version: str | None, reason: str | None, lock_wait: str | None, lock: str | None,
    path: Path | None, database_url: str | None,
) -> None:
    """Accept the current checksum of applied files that changed (all MODIFIED ones, or
    VERSION)."""
    from ..api import repair as api_repair

    settings = _run_settings(path, database_url, lock_wait, None, None, None, lock)
    repaired = api_repair(settings, version, reason=reason, reporter=TextReporter())
    if not repaired:
        click.echo("Nothing to repair: every applied migration file matches its recorded "
                   "checksum")
        return
    for item in repaired:
        was = (item.previous_checksum or "none")[:12]
        click.echo(f"{CHECK} Repaired {item.filename}: accepted its current checksum "
                   f"(was {was}...)")
    count = len(repaired)
    click.echo(f"{count} migration{'s' if count != 1 else ''} repaired; `fraiseql migrate up` "
               "no longer refuses them")


EXIT_PENDING = 3  # status --exit-code: migrations are pending, nothing is wrong
EXIT_INCONSISTENT = 4  # status --exit-code: modified, missing, partial or unrecorded files


@migrate.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--exit-code", is_flag=True,
              help=f"Exit {EXIT_PENDING} when migrations are pending, {EXIT_INCONSISTENT} when "
              "anything is inconsistent (0 otherwise).")
@common_options
@handle_errors
def status(as_json: bool, exit_code: bool, path: Path | None, database_url: str | None) -> None:
    """Show every migration: applied (when), pending, modified or missing."""
    from ..api import status as api_status

    report = api_status(_settings(path, database_url))
    click.echo(render_status_json(report) if as_json else render_status(report))
    if exit_code:
        if (report.problems or report.branched or report.version_rows_problem
                or any(row.partial is not None for row in report.rows)):
            sys.exit(EXIT_INCONSISTENT)
        if report.pending:
            sys.exit(EXIT_PENDING)


def render_status_json(report: StatusReport) -> str:
    """The status as one JSON document (docs/status.md describes the fields)."""
    import json

    from ..engine.status import PENDING

    def state(row: Any) -> str:
        return "partial" if row.partial is not None and row.state == PENDING else str(row.state)

    migrations = [
        {
            "version": row.version,
            "file": row.filename,
            "state": state(row),
            "applied_at": row.applied_at.isoformat() if row.applied_at else None,
            "execution_ms": row.execution_ms,
            "applied_by": row.applied_by,
            "checksum": row.checksum,
            "recorded_checksum": row.recorded_checksum,
            "resumes_at_line": row.partial.next_line if row.partial is not None else None,
            "interrupted_at_line": (
                row.partial.statement_line
                if row.partial is not None and row.partial.state == "running" else None),
            "marked_by_hand": row.marked_by_hand is not None,
            "action": row.action,
            "repaired_at": row.repair.applied_at.isoformat() if row.repair else None,
        }
        for row in report.rows
    ]
    return json.dumps(
        {
            "heads": list(report.heads),
            "folder_heads": list(report.folder_heads),
            "pending": len(report.pending),
            "problems": len(report.problems) + (report.version_rows_problem is not None),
            "version_rows_problem": report.version_rows_problem,
            "migrations": migrations,
            "ignored_files": [path.name for path in report.ignored],
        },
        indent=2,
    )


def render_status(report: StatusReport) -> str:
    from ..engine.status import (
        APPLIED,
        MISSING,
        MODIFIED,
        OUT_OF_ORDER,
        PENDING,
        UNRECORDED,
        UNTRACKED,
        out_of_order_message,
        warnings,
    )

    lines = ["Migration Status:"]
    problems: list[str] = []
    if not report.rows:
        lines.append("  (no migrations yet: create one with `fraiseql migrate create <name>`)")
    for row in report.rows:
        when = (
            f"applied {row.applied_at.astimezone():%Y-%m-%d %H:%M:%S}"
            if row.applied_at is not None
            else "applied"
        )
        if row.state == APPLIED and row.partial is not None:
            lines.append(f"  {PARTIAL_MARK} {row.filename} ({when}; PARTLY ROLLED BACK: "
                         f"{_resume_point(row.partial, 'down')})")
        elif row.state == APPLIED:
            lines.append(f"  {CHECK} {row.filename} ({when}{_record_note(row)})")
        elif row.state == PENDING and row.partial is not None:
            lines.append(f"  {PARTIAL_MARK} {row.filename} (PARTIALLY APPLIED: "
                         f"{_resume_point(row.partial, 'up')})")
        elif row.state == PENDING and row.marked_by_hand is not None:
            lines.append(
                f"  {PENDING_MARK} {row.filename} (pending; marked applied by hand "
                f"{row.marked_by_hand.applied_at.astimezone():%Y-%m-%d %H:%M:%S}: "
                "`fraiseql migrate up` records it without running it)"
            )
        elif row.state == PENDING and row.migration is not None and row.migration.up.is_empty:
            lines.append(f"  {PENDING_MARK} {row.filename} (pending; EMPTY: write its SQL below "
                         "`-- migrate:up`)")
        elif row.state == PENDING:
            lines.append(f"  {PENDING_MARK} {row.filename} (pending)")
        elif row.state == MODIFIED:
            lines.append(f"  {PROBLEM_MARK} {row.filename} ({when}; MODIFIED since: checksum "
                         "mismatch)")
        elif row.state == MISSING:
            lines.append(f"  {PROBLEM_MARK} {row.filename} ({when}; file MISSING)")
        elif row.state == OUT_OF_ORDER or (row.state == UNTRACKED and row.fork is not None):
            lines.append(f"  {PROBLEM_MARK} {row.filename} (NOT APPLIED: merged out of order)"
                         if row.state == OUT_OF_ORDER else
                         f"  {PROBLEM_MARK} {row.filename} ({when}; NOT in alembic_version: "
                         "the chain changed under it)")
            problems.append(out_of_order_message(row))
        elif row.state == UNTRACKED:
            lines.append(f"  {PROBLEM_MARK} {row.filename} (NOT in alembic_version, but "
                         f"fraiseql_migrations says {when}: alembic_version edited by hand?)")
        elif row.state == UNRECORDED:
            lines.append(f"  {PROBLEM_MARK} {row.filename} (NEVER RAN HERE, yet below applied "
                         "migrations: merged late, or its history row was deleted)")
    if report.version_rows_problem is not None:
        problems.insert(0, report.version_rows_problem)
    lines += [f"Problem: {problem}" for problem in problems]
    lines += [f"Warning: {warning}" for warning in warnings(report)]
    return "\n".join(lines)


FORMAT_OPTION = click.option(
    "--format", "output_format", type=click.Choice(["text", "github"]), default="text",
    show_default=True,
    help="text: one `file:line: ...` line per problem; github: GitHub Actions annotations.",
)


def github_annotation(level: str, file: str, line: int, message: str, *,
                      column: int | None = None, title: str | None = None) -> str:
    """``::error file=...,line=...::message``, escaped as GitHub's workflow commands want."""
    properties = [f"file={_escape_property(file)}", f"line={line}"]
    if column is not None:
        properties.append(f"col={column}")
    if title is not None:
        properties.append(f"title={_escape_property(title)}")
    return f"::{level} {','.join(properties)}::{_escape_data(message)}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


@migrate.command()
@click.argument("files", nargs=-1,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@FORMAT_OPTION
@common_options
@handle_errors
def lint(files: tuple[Path, ...], output_format: str, path: Path | None,
         database_url: str | None) -> None:
    """Find risky operations in migrations (default: every file in the folder).

    Rules FQL001-FQL013 (docs/lint.md).  Silence one for a statement with
    `-- fraiseql-lint: ignore FQL001` in it or on the line above.  Exit 0 when
    nothing is found, 1 when findings remain.
    """
    from ..api import lint as api_lint

    report = api_lint(_settings(path, database_url), files)
    for finding in report.findings:
        if output_format == "github":
            click.echo(github_annotation(
                "warning", finding.file, finding.line,
                f"{finding.message}. Instead: {finding.fix}",
                column=finding.column, title=f"{finding.rule} {finding.slug}",
            ))
        else:
            click.echo(finding.text())
    count, files_count = len(report.findings), len(report.files)
    linted = f"{files_count} migration{'s' if files_count != 1 else ''}"
    if not count:
        click.echo(f"{CHECK} No lint findings in {linted}")
        return
    click.echo(f"{PROBLEM_MARK} {count} lint finding{'s' if count != 1 else ''} ({linted} "
               "linted); "
               "fix them, or silence one with `-- fraiseql-lint: ignore <rule>` above its "
               "statement (docs/lint.md)")
    sys.exit(1)


@migrate.command()
@click.option("--base", metavar="REF",
              help="Git ref the pull request merges into (e.g. origin/main): new files must "
              "be numbered above its migrations, and only they are linted.")
@FORMAT_OPTION
@common_options
@handle_errors
def check(base: str | None, output_format: str, path: Path | None,
          database_url: str | None) -> None:
    """Check the migrations folder before merging; no database needed.

    Duplicate numbers, misnamed or unparseable files, numbering below --base, lint
    findings; with a database configured also changed, missing, unrecorded and
    partly applied migrations.  Exit 0 when clean, 1 when problems were found.
    """
    from ..api import check as api_check

    report = api_check(_settings(path, database_url), base=base)
    for problem in report.problems:
        if output_format == "github":
            click.echo(github_annotation("error", problem.file or "", problem.line,
                                         problem.message) if problem.file
                       else f"::error::{_escape_data(problem.message)}")
        else:
            click.echo(problem.text())
    count = len(report.problems)
    facts = [f"{report.migrations} migration{'s' if report.migrations != 1 else ''}"]
    if report.new_files is not None:
        facts.append(f"{len(report.new_files)} new since {base}")
    if report.pending is not None:
        facts.append(f"database: {report.pending} pending")
    else:
        facts.append(f"database not checked: {report.database_skipped}")
    if count:
        click.echo(f"{PROBLEM_MARK} {count} problem{'s' if count != 1 else ''} "
                   f"({'; '.join(facts)})")
        sys.exit(1)
    click.echo(f"{CHECK} No problems ({'; '.join(facts)})")


def _record_note(row: Any) -> str:
    """``; marked applied without running it`` and ``; checksum accepted by repair ...``."""
    from ..engine.history import MARKED_APPLIED

    notes = []
    if row.action == MARKED_APPLIED:
        notes.append("marked applied without running it")
    if row.repair is not None:
        repaired = row.repair.applied_at.astimezone()
        notes.append(f"checksum accepted by repair {repaired:%Y-%m-%d %H:%M:%S}")
    return "".join(f"; {note}" for note in notes)


def _render_plan(title: str, plan: tuple[PlannedMigration, ...], *, show_sql: bool) -> None:
    count = len(plan)
    click.echo(f"{title} {count} migration{'s' if count != 1 else ''}:")
    for item in plan:
        click.echo(f"  {item.filename}")
        if show_sql:
            body = item.sql if item.sql is not None else "(Python revision: see the file)"
            click.echo("\n".join(f"    {line}" for line in body.splitlines()))
            click.echo("")


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":  # pragma: no cover
    main()
