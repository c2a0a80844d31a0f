"""The ``fraiseql migrate`` verbs but ``lint`` (:mod:`.lintverb`): parse the flags, call one
:mod:`fraiseql_alembic.api` function, hand its result to a reporter or a renderer.

Loaded on first use through :data:`.app.VERBS`, never by ``fraiseql --version``.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import api
from ..engine.cancel import MigrationInterrupted
from ..errors import AbortedByUser, UsageError, shown_path
from ..settings import Settings, check_duration, check_seconds, resolve
from ..settings import schema_file as schema_file_setting
from . import fleet as cli_fleet
from .app import common_options, env_option, handle_errors
from .fleet import FleetFlags, fleet_options
from .render import (
    CHECK,
    PROBLEM_MARK,
    escape_data,
    github_annotation,
    plural,
    render_plan,
    render_status,
    render_status_json,
)
from .reporting import JsonReporter, TextReporter
from .signals import run_interruptible, run_reported
from .streams import NO_TERMINAL_TO_ASK

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")

EXIT_PENDING = 3  # status --exit-code: migrations are pending, nothing is wrong
EXIT_INCONSISTENT = 4  # status --exit-code: modified, missing, partial or unrecorded files


# -- options shared by some verbs ------------------------------------------------------


@dataclass(frozen=True)
class RunFlags:
    """How a run waits for the lock and times out; None: the settings' value."""

    lock_wait: str | None = None
    lock_timeout: str | None = None
    statement_timeout: str | None = None
    lock_retries: int | None = None
    lock: str | None = None


def _as_run_flags(func: Callable[..., R]) -> Callable[..., R]:
    """Hands the run flags Click parsed to ``func`` as one ``run: RunFlags``."""
    names = [flag.name for flag in fields(RunFlags)]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        run = RunFlags(**{name: kwargs.pop(name) for name in names if name in kwargs})
        return func(*args, run=run, **kwargs)

    return wrapper


def lock_option(func: F) -> F:
    """``--lock advisory|lease``: how deploys exclude each other."""
    return click.option("--lock", "lock", type=click.Choice(["advisory", "lease"],
                        case_sensitive=False), default=None,
                        help="advisory (default): a session advisory lock; lease: a lease "
                        "row with a heartbeat, for a pooler in transaction mode (default: "
                        "$FRAISEQL_LOCK, then lock in pyproject.toml).")(func)


def lock_wait_option(func: F) -> F:
    return click.option("--lock-wait", default=None, metavar="SECONDS",
                        help="How long to wait for another deploy's migration lock "
                        "(default 60).")(func)


def run_options(func: Callable[..., R]) -> Callable[..., R]:
    """Options of the verbs that move the database (up, down), as ``run: RunFlags``."""
    func = lock_option(_as_run_flags(func))
    func = click.option("--lock-retries", type=click.IntRange(min=0), default=None,
                        metavar="N", help="Retries of a migration that hit lock_timeout "
                        "(default 3).")(func)
    func = click.option("--statement-timeout", metavar="DURATION", default=None,
                        help="PostgreSQL statement_timeout for migrations (default: the "
                        "server's).")(func)
    func = click.option("--lock-timeout", metavar="DURATION", default=None,
                        help="PostgreSQL lock_timeout for migrations (default 10s; 0 = wait "
                        "forever).")(func)
    return lock_wait_option(func)


def record_options(func: Callable[..., R]) -> Callable[..., R]:
    """Options of the verbs that change the record only (mark-applied, repair): ``reason``
    and ``run: RunFlags``."""
    func = lock_option(_as_run_flags(func))
    func = lock_wait_option(func)
    return click.option("--reason", metavar="TEXT", default=None,
                        help="Why, for the audit trail (stored in fraiseql_migrations.note)."
                        )(func)


def resume_option(func: F) -> F:
    """``--resume done|again``: settle a statement an interrupted run left unrecorded;
    ``--resume RUN_ID`` with --targets: continue a recorded fleet run."""
    return click.option(
        "--resume", metavar="done|again|RUN_ID", callback=cli_fleet.check_resume,
        default=None,
        help="An earlier run stopped while a statement ran outside a transaction: record "
        "that statement as done (it took effect), or run it again; then go on. With "
        "--targets, RUN_ID: skip the targets that succeeded in that recorded run.")(func)


def dump_schema_options(func: F) -> F:
    """``--dump-schema [FILE]`` and ``--no-dump-schema`` (up, down)."""
    func = click.option("--no-dump-schema", is_flag=True,
                        help="Do not write the schema snapshot, even if dump_schema is "
                        "configured.")(func)
    return click.option(
        "--dump-schema", "dump_schema", is_flag=False, flag_value="", default=None,
        metavar="[FILE]",
        help="After success, write the normalised schema (pg_dump --schema-only) to FILE "
        "(default: the dump_schema setting, else schema.sql beside the migrations folder); "
        "on by default when dump_schema is configured.")(func)


def snapshot_path(settings: Settings, given: str | None, off: bool, option: str
                  ) -> Path | None:
    """Where the schema snapshot goes (or is checked): ``--OPTION [FILE]``, else the
    project's ``dump_schema``; None with ``--no-OPTION``."""
    if given is not None and off:
        raise click.UsageError(f"--{option} and --no-{option} cannot be combined")
    return schema_file_setting(settings.path, given, off=off)


FORMAT_OPTION = click.option(
    "--format", "output_format", type=click.Choice(["text", "github"]), default="text",
    show_default=True,
    help="text: one `file:line: ...` line per problem; github: GitHub Actions annotations.",
)


def run_settings(path: Path | None, database_url: str | None, flags: RunFlags,
                 env: str | None = None) -> Settings:
    """The settings (of the environment ``env`` or FRAISEQL_ENV names, if any) with the run
    flags applied; a bad flag is a UsageError (exit 2)."""
    settings = resolve(path, database_url, env=env)
    run = settings.run
    if flags.lock_wait is not None:
        run = replace(run, lock_wait=check_seconds(flags.lock_wait, "--lock-wait", UsageError))
    if flags.lock_timeout is not None:
        run = replace(run, lock_timeout=check_duration(flags.lock_timeout, "--lock-timeout",
                                                       UsageError))
    if flags.statement_timeout is not None:
        run = replace(run, statement_timeout=check_duration(
            flags.statement_timeout, "--statement-timeout", UsageError))
    if flags.lock_retries is not None:
        run = replace(run, lock_retries=flags.lock_retries)
    if flags.lock is not None:
        run = replace(run, lock=flags.lock.lower())
    return replace(settings, run=run)


def env_fleet(fleet: FleetFlags, settings: Settings) -> FleetFlags:
    """The fleet flags, with the environment's ``targets`` when --targets is not given."""
    environment = settings.environment
    if fleet.targets is None and environment is not None and environment.targets is not None:
        return replace(fleet, targets=environment.targets)
    return fleet


def announce(settings: Settings, *, as_json: bool = False) -> None:
    """The first line of a run in a named environment: its name and masked database."""
    environment = settings.environment
    if environment is None:
        return
    if as_json:
        click.echo(json.dumps({"event": "environment", "name": environment.name,
                               "database": environment.database}))
    else:
        click.echo(f"Environment {environment.name}: {environment.database}")


# -- the folder: init, create ----------------------------------------------------------


@click.command()
@common_options
@handle_errors
def init(path: Path | None, database_url: str | None) -> None:
    """Create the migrations folder and its README.md (safe to run twice)."""
    result = api.init(resolve(path, database_url, env="").path)
    if result.already_initialized:
        click.echo(f"Already initialized: {shown_path(result.folder)} and its README.md "
                   "exist; nothing changed")
        return
    click.echo(f"{CHECK} Initialized migrations in {shown_path(result.folder)}")
    for created in result.created:
        click.echo(f"  created {shown_path(created)}{'/' if created.is_dir() else ''}")
    click.echo("Next: fraiseql migrate create initial_schema")


@click.command()
@click.argument("name")
@click.option("--cqrs", "entity", metavar="ENTITY", default=None,
              help="Write the CQRS template for ENTITY: tb_ENTITY, tv_ENTITY (JSONB data, "
              "GIN index) and their down section.")
@click.option("--sync-history", is_flag=True,
              help="With --cqrs: also create the shared sync_history table.")
@click.option("--autogenerate", is_flag=True,
              help="Write the SQL that brings the migrations' schema to the SQLAlchemy "
              "models (docs/autogenerate.md).")
@click.option("--metadata", "metadata", multiple=True, metavar="MODULE:ATTR",
              help="With --autogenerate: the models' MetaData, e.g. myapp.models:Base."
              "metadata (repeatable; default: target_metadata in pyproject.toml).")
@click.option("--shadow-database-url", metavar="URL", default=None,
              help="With --autogenerate: an empty database to build the migrations' "
              "schema in, emptied before and after (default: "
              "$FRAISEQL_SHADOW_DATABASE_URL, else a throwaway PostgreSQL).")
@common_options
@handle_errors
def create(
    name: str, entity: str | None, sync_history: bool, autogenerate: bool,
    metadata: tuple[str, ...], shadow_database_url: str | None, path: Path | None,
    database_url: str | None,
) -> None:
    """Write migrations/NNN_<name>.sql with the next number (NAME in snake_case)."""
    settings = resolve(path, database_url, env="")
    if not autogenerate:
        if metadata or shadow_database_url:
            option = "--metadata" if metadata else "--shadow-database-url"
            raise UsageError(f"{option} belongs to --autogenerate: add --autogenerate")
        created = api.create(settings.path, name, cqrs=entity, sync_history=sync_history)
        click.echo(f"{CHECK} Created {shown_path(created)}")
        return
    if entity is not None:
        raise UsageError("--cqrs writes a template; --autogenerate writes what the models "
                         "add: use one of them")
    result = api.create_autogenerated(
        settings, name, metadata=metadata or None, shadow_database_url=shadow_database_url,
        on_step=lambda line: click.echo(f"{line}...", err=True),
    )
    if result.path is None:
        click.echo(f"{CHECK} No differences between the models and the migrations' schema; "
                   "nothing written")
        for line in result.unchecked:
            click.echo(f"  note: {line}")
        return
    click.echo(f"{CHECK} Created {shown_path(result.path)} (autogenerated; review it before "
               "applying it)")
    for line in result.data_loss:
        click.echo(f"  DATA LOSS: {line}")
    for line in result.warnings:
        click.echo(f"  warning: {line}")
    for line in result.unchecked:
        click.echo(f"  note: {line}")
    if result.data_loss:
        click.echo("  The statements that lose data are marked `-- DATA LOSS` in the file "
                   "(and reported by `fraiseql migrate lint`): keep them only if that is what "
                   "you want")


# -- the database: up, down ------------------------------------------------------------


@click.command()
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
@click.option("--no-backup", is_flag=True,
              help="Take no backup this time, although the environment says backup = true.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per line for each event instead of text.")
@click.option("--force", is_flag=True,
              help="Do not ask for confirmation (an environment with confirm = true asks "
              "before applying).")
@resume_option
@dump_schema_options
@fleet_options(policy=True)
@run_options
@env_option
@common_options
@handle_errors
def up(
    steps: int | None,
    dry_run: bool,
    rehearse: bool,
    backup: str | None,
    no_backup: bool,
    as_json: bool,
    force: bool,
    resume: str | None,
    dump_schema: str | None,
    no_dump_schema: bool,
    fleet: FleetFlags,
    run: RunFlags,
    env: str | None,
    path: Path | None,
    database_url: str | None,
) -> None:
    """Apply pending migrations in order."""
    if backup is not None and no_backup:
        raise click.UsageError("--backup and --no-backup cannot be combined")
    settings = run_settings(path, database_url, run, env)
    environment = settings.environment
    fleet = env_fleet(fleet, settings)
    asks = environment is not None and environment.confirm and not force
    if fleet.targets is not None:
        for flag, given in (("--dry-run", dry_run), ("--rehearse", rehearse),
                            ("--backup", backup is not None),
                            ("--dump-schema", dump_schema is not None)):
            if given:
                raise click.UsageError(f"{flag} cannot be combined with --targets; run it on "
                                       "one database (--database-url)")
        announce(settings, as_json=as_json)
        cli_fleet.up(settings, fleet, database_url, steps=steps, as_json=as_json,
                     resume=cli_fleet.fleet_resume(resume),
                     confirm=environment.where if asks and environment else None)
        return
    cli_fleet.check_single(fleet)
    settled = cli_fleet.single_resume(resume)
    for flag, given in (("--rehearse", rehearse), ("--backup", backup is not None),
                        ("--resume", resume is not None),
                        ("--dump-schema", dump_schema is not None)):
        if dry_run and given:
            raise click.UsageError(f"{flag} cannot be combined with --dry-run")
    if rehearse and resume is not None:
        raise click.UsageError("--resume cannot be combined with --rehearse: a rehearsal "
                               "writes nothing")
    if rehearse and backup is not None:
        raise click.UsageError("--backup cannot be combined with --rehearse: a rehearsal "
                               "writes nothing")
    if rehearse and dump_schema is not None:
        raise click.UsageError("--dump-schema cannot be combined with --rehearse: a "
                               "rehearsal writes nothing")
    snapshot = (None if dry_run or rehearse
                else snapshot_path(settings, dump_schema, no_dump_schema, "dump-schema"))
    announce(settings, as_json=as_json)
    reporter = JsonReporter() if as_json else TextReporter()
    if rehearse:
        _rehearse(settings, steps, reporter)
        return
    backup_to: Path | bool = False if backup is None else (Path(backup) if backup else True)
    if (backup is None and not no_backup and not dry_run and environment is not None
            and environment.backup):
        backup_to = True

    def confirm(plan: tuple[api.PlannedMigration, ...]) -> bool:
        assert environment is not None
        click.echo(render_plan("About to apply", plan, show_sql=False), err=as_json)
        if not sys.stdin.isatty():
            raise AbortedByUser(
                f"Refusing to apply migrations without confirmation (confirm = true in "
                f"{environment.where}): there is no terminal to ask on. Pass --force to "
                "apply anyway; nothing was changed"
            )
        return click.confirm("Continue?", default=False, err=as_json)

    result = run_reported(
        lambda token: api.upgrade(
            settings, steps=steps, dry_run=dry_run, reporter=reporter, cancel=token,
            backup=backup_to, resume=settled, confirm=confirm if asks else None,
            dump_schema=snapshot,
        ),
        reporter,
        is_upgrade=True,
    )
    reporter.upgraded(result, backup_asked=backup_to is not False)


def _rehearse(settings: Settings, steps: int | None, reporter: TextReporter) -> None:
    """``up --rehearse``: outcomes as they come, a summary, exit 1 if one would fail."""
    try:
        result = run_interruptible(
            lambda token: api.rehearse(settings, steps=steps, reporter=reporter, cancel=token)
        )
    except MigrationInterrupted:
        click.echo("Rehearsal stopped; nothing was written.", err=True)
        raise
    reporter.rehearsal_finished(result)
    if result.failed is not None:
        sys.exit(1)


@click.command()
@click.option("--steps", type=click.IntRange(min=1), default=1, show_default=True, metavar="N",
              help="Roll back the N most recent migrations.")
@click.option("--force", is_flag=True, help="Do not ask for confirmation.")
@click.option("--allow-down", is_flag=True,
              help="Roll back in an environment that says allow_down = false.")
@resume_option
@dump_schema_options
@fleet_options(policy=True)
@run_options
@env_option
@common_options
@handle_errors
def down(
    steps: int,
    force: bool,
    allow_down: bool,
    resume: str | None,
    dump_schema: str | None,
    no_dump_schema: bool,
    fleet: FleetFlags,
    run: RunFlags,
    env: str | None,
    path: Path | None,
    database_url: str | None,
) -> None:
    """Roll back the most recent migration(s), newest first."""
    settings = run_settings(path, database_url, run, env)
    environment = settings.environment
    if environment is not None and not environment.allow_down and not allow_down:
        raise AbortedByUser(f"Environment {environment.name} does not allow down "
                            f"(allow_down = false in {environment.where}): pass --allow-down "
                            "to roll back anyway; nothing was changed")
    fleet = env_fleet(fleet, settings)
    announce(settings)
    if fleet.targets is not None:
        if dump_schema is not None:
            raise click.UsageError("--dump-schema cannot be combined with --targets; run it "
                                   "on one database (--database-url)")
        cli_fleet.down(settings, fleet, database_url, steps=steps, force=force,
                       resume=cli_fleet.fleet_resume(resume))
        return
    cli_fleet.check_single(fleet)
    settled = cli_fleet.single_resume(resume)
    snapshot = snapshot_path(settings, dump_schema, no_dump_schema, "dump-schema")

    def confirm(plan: tuple[api.PlannedMigration, ...]) -> bool:
        click.echo(render_plan("About to roll back", plan, show_sql=False))
        if force:
            return True
        if not sys.stdin.isatty():
            raise AbortedByUser(
                f"Refusing to roll back without confirmation: {NO_TERMINAL_TO_ASK}"
            )
        return click.confirm("Continue?", default=False)

    reporter = TextReporter()
    result = run_reported(
        lambda token: api.downgrade(
            settings, steps=steps, confirm=confirm, reporter=reporter, cancel=token,
            resume=settled, dump_schema=snapshot,
        ),
        reporter,
        is_upgrade=False,
    )
    reporter.rolled_back(result)


# -- the record: mark-applied, repair --------------------------------------------------


@click.command("mark-applied")
@click.argument("version")
@record_options
@fleet_options(policy=True)
@env_option
@common_options
@handle_errors
def mark_applied(
    version: str, reason: str | None, fleet: FleetFlags, run: RunFlags, env: str | None,
    path: Path | None, database_url: str | None,
) -> None:
    """Record the next pending migration as applied without running it (it was applied
    by hand).  VERSION: 003, 003_add_indexes or the file name."""
    settings = run_settings(path, database_url, run, env)
    fleet = env_fleet(fleet, settings)
    announce(settings)
    if fleet.targets is not None:
        cli_fleet.mark_applied(settings, fleet, database_url, version=version, reason=reason)
        return
    cli_fleet.check_single(fleet)
    recorded = api.mark_applied(settings, version, reason=reason, reporter=TextReporter())
    click.echo(f"{CHECK} Marked {recorded.filename} as applied without running it "
               "(recorded in fraiseql_migrations)")


@click.command()
@click.argument("version", required=False)
@click.option("--missing", is_flag=True,
              help="Record that the applied file VERSION was deleted on purpose (file "
              "MISSING in status), instead of accepting changed checksums.")
@record_options
@fleet_options(policy=True)
@env_option
@common_options
@handle_errors
def repair(
    version: str | None, missing: bool, reason: str | None, fleet: FleetFlags, run: RunFlags,
    env: str | None, path: Path | None, database_url: str | None,
) -> None:
    """Accept the current checksum of applied files that changed (all MODIFIED ones, or
    VERSION); with --missing, record that an applied file was deleted on purpose."""
    if missing and version is None:
        raise click.UsageError("--missing needs the VERSION of the deleted file, e.g. "
                               "`fraiseql migrate repair --missing 003`")
    settings = run_settings(path, database_url, run, env)
    fleet = env_fleet(fleet, settings)
    announce(settings)
    if fleet.targets is not None:
        cli_fleet.repair(settings, fleet, database_url, version=version, reason=reason,
                         missing=missing)
        return
    cli_fleet.check_single(fleet)
    repaired = api.repair(settings, version, reason=reason, reporter=TextReporter(),
                          missing=missing)
    if missing:
        item = repaired[0]
        moved = (f"; alembic_version moved from {item.moved[0]} to "
                 f"{item.moved[1] or '(nothing)'}" if item.moved is not None else "")
        click.echo(f"{CHECK} Recorded that {item.filename} was deleted on purpose{moved}; its "
                   "history stays in fraiseql_migrations, and its changes in the database")
        return
    if not repaired:
        click.echo("Nothing to repair: every applied migration file matches its recorded "
                   "checksum")
        return
    for item in repaired:
        was = (item.previous_checksum or "none")[:12]
        click.echo(f"{CHECK} Repaired {item.filename}: accepted its current checksum "
                   f"(was {was}...)")
    click.echo(f"{plural(len(repaired))} repaired; `fraiseql migrate up` no longer refuses "
               "them")


# -- reading: status, check (lint: lintverb.py) ----------------------------------------


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--exit-code", is_flag=True,
              help=f"Exit {EXIT_PENDING} when migrations are pending, {EXIT_INCONSISTENT} when "
              "anything is inconsistent (0 otherwise).")
@fleet_options(policy=False)
@env_option
@common_options
@handle_errors
def status(as_json: bool, exit_code: bool, fleet: FleetFlags, env: str | None,
           path: Path | None, database_url: str | None) -> None:
    """Show every migration: applied (when), pending, modified or missing."""
    settings = resolve(path, database_url, env=env)
    fleet = env_fleet(fleet, settings)
    if fleet.targets is not None:
        if not as_json:
            announce(settings)
        cli_fleet.status(settings, fleet, database_url, as_json=as_json,
                         exit_code=exit_code, pending_code=EXIT_PENDING,
                         inconsistent_code=EXIT_INCONSISTENT)
        return
    cli_fleet.check_single(fleet)
    report = api.status(settings)
    click.echo(render_status_json(report, settings.environment) if as_json
               else render_status(report, settings.environment))
    if exit_code:
        if report.inconsistent:
            sys.exit(EXIT_INCONSISTENT)
        if report.pending:
            sys.exit(EXIT_PENDING)


@click.command()
@click.option("--base", metavar="REF",
              help="Git ref the pull request merges into (e.g. origin/main): new files must "
              "be numbered above its migrations, and only they are linted.")
@click.option("--models/--no-models", "models", default=None,
              help="Also compare the SQLAlchemy models with the schema the migrations build "
              "(default: with --base, when target_metadata is configured).")
@click.option("--metadata", "metadata", multiple=True, metavar="MODULE:ATTR",
              help="The models' MetaData for --models (default: target_metadata in "
              "pyproject.toml).")
@click.option("--shadow-database-url", metavar="URL", default=None,
              help="For --models and the schema snapshot: an empty database to build the "
              "migrations' schema in (default: $FRAISEQL_SHADOW_DATABASE_URL, else a "
              "throwaway PostgreSQL).")
@click.option("--schema-file", "schema_file", is_flag=False, flag_value="", default=None,
              metavar="[FILE]",
              help="Check that the schema snapshot FILE (default: the dump_schema setting, "
              "else schema.sql beside the migrations folder) is what the migrations build; "
              "on by default when dump_schema is configured.")
@click.option("--no-schema-file", is_flag=True,
              help="Do not check the schema snapshot, even if dump_schema is configured.")
@FORMAT_OPTION
@env_option
@common_options
@handle_errors
def check(base: str | None, models: bool | None, metadata: tuple[str, ...],
          shadow_database_url: str | None, schema_file: str | None, no_schema_file: bool,
          output_format: str, env: str | None,
          path: Path | None, database_url: str | None) -> None:
    """Check the migrations folder before merging; no database needed.

    Duplicate numbers, misnamed or unparseable files, numbering below --base, lint
    findings; with a database configured also changed, missing, unrecorded and
    partly applied migrations.  Exit 0 when clean, 1 when problems were found.
    """
    settings = resolve(path, database_url, env=env)
    snapshot = snapshot_path(settings, schema_file, no_schema_file, "schema-file")
    report = api.check(settings, base=base, models=models,
                       metadata=metadata or None, shadow_database_url=shadow_database_url,
                       schema_file=snapshot if snapshot is not None else False)
    for problem in report.problems:
        if output_format == "github":
            click.echo(github_annotation("error", problem.file or "", problem.line,
                                         problem.message) if problem.file
                       else f"::error::{escape_data(problem.message)}")
        else:
            click.echo(problem.text())
    facts = [plural(report.migrations)]
    if report.new_files is not None:
        facts.append(f"{len(report.new_files)} new since {base}")
    if report.pending is not None:
        facts.append(f"database: {report.pending} pending")
    else:
        facts.append(f"database not checked: {report.database_skipped}")
    if report.models is not None:
        facts.append(f"models: {plural(len(report.models), 'difference')}" if report.models
                     else "models match the migrations")
    if report.schema_file is not None:
        shown = shown_path(report.schema_file)
        stale = any(problem.file == shown for problem in report.problems)
        facts.append(f"{shown} {'does not match' if stale else 'matches'} the migrations")
    for line in report.models_unchecked:
        click.echo(f"::notice::{escape_data(line)}" if output_format == "github"
                   else f"models: note: {line}")
    if report.problems:
        click.echo(f"{PROBLEM_MARK} {plural(len(report.problems), 'problem')} "
                   f"({'; '.join(facts)})")
        sys.exit(1)
    click.echo(f"{CHECK} No problems ({'; '.join(facts)})")
