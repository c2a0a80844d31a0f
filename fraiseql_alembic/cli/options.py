"""Options several verbs share (the run flags, lock, records, resume, the schema snapshot,
``--format``) and what they resolve to: the run's settings, an environment's fleet, the
first line that names the environment."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

import click

from ..errors import UsageError
from ..settings import Settings, check_duration, check_seconds, resolve
from ..settings import schema_file as schema_file_setting
from .app import CliState
from .fleetflags import FleetFlags, check_resume

F = TypeVar("F", bound=Callable[..., Any])
R = TypeVar("R")


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
        "--resume", metavar="done|again|RUN_ID", callback=check_resume,
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


def resolved(path: Path | None, database_url: str | None, env: str | None = None
             ) -> Settings:
    """:func:`.settings.resolve`'s settings, kept for the verb's error handler: a failure to
    connect then names where the URL was set (``Check DATABASE_URL ...``)."""
    settings = resolve(path, database_url, env=env)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.ensure_object(CliState).settings = settings
    return settings


def run_settings(path: Path | None, database_url: str | None, flags: RunFlags,
                 env: str | None = None) -> Settings:
    """The settings (of the environment ``env`` or FRAISEQL_ENV names, if any) with the run
    flags applied; a bad flag is a UsageError (exit 2)."""
    settings = resolved(path, database_url, env)
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
