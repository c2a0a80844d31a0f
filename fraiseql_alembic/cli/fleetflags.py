"""The fleet options of the verbs that take ``--targets`` (``--jobs``, ``--wave``,
``--shard``/``--shards``, the failure policy, the run record, ``--resume``), parsed into
:class:`FleetFlags`, and what they resolve to: the targets of one run and its shard (a
Kubernetes Indexed Job's pod takes its index from ``JOB_COMPLETION_INDEX``).
:mod:`.fleet` runs a verb on those targets and renders the outcome.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import api
from ..engine.fleet import RUN_ID_PATTERN
from ..errors import UsageError
from ..project.targets import Shard, parse_shard

R = TypeVar("R")

#: The environment variable a Kubernetes Indexed Job sets in each pod: its index.
JOB_INDEX = "JOB_COMPLETION_INDEX"


@dataclass(frozen=True)
class FleetFlags:
    """The fleet options Click parsed; ``targets`` None: a single database."""

    targets: Path | None = None
    jobs: int | None = None
    wave: str | None = None
    shard: str | None = None
    shards: int | None = None
    continue_on_error: bool = False
    max_failures: int | None = None
    record: Path | None = None
    no_record: bool = False

    def max_failures_allowed(self) -> int | None:
        """None: never stop starting targets; else stop after that many failures."""
        if self.continue_on_error and self.max_failures is not None:
            raise click.UsageError("--continue-on-error and --max-failures cannot be "
                                   "combined: --continue-on-error never stops")
        if self.continue_on_error:
            return None
        return self.max_failures if self.max_failures is not None else 1


def _as_fleet_flags(func: Callable[..., R]) -> Callable[..., R]:
    names = [flag.name for flag in fields(FleetFlags)]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        fleet = FleetFlags(**{name: kwargs.pop(name) for name in names if name in kwargs})
        return func(*args, fleet=fleet, **kwargs)

    return wrapper


def fleet_options(*, policy: bool) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """``--targets``, ``--jobs``, ``--wave``, ``--shard``, ``--shards`` (and, with
    ``policy``, ``--continue-on-error`` and ``--max-failures``) as ``fleet: FleetFlags``."""

    def decorate(func: Callable[..., R]) -> Callable[..., R]:
        func = _as_fleet_flags(func)
        if policy:
            func = click.option("--no-record", is_flag=True,
                                help="With --targets: write no run record.")(func)
            func = click.option("--record", type=click.Path(path_type=Path), default=None,
                                metavar="FILE",
                                help="With --targets: append the run record (JSON lines) to "
                                "FILE (default: NAME.runs.jsonl beside the targets file).")(func)
            func = click.option("--max-failures", type=click.IntRange(min=1), default=None,
                                metavar="K", help="With --targets: stop starting targets "
                                "after K failed (default 1).")(func)
            func = click.option("--continue-on-error", is_flag=True,
                                help="With --targets: start every target even when some "
                                "failed.")(func)
        func = click.option("--shards", type=click.IntRange(min=1), default=None, metavar="N",
                            envvar="FRAISEQL_SHARDS",
                            help="With --targets: take shard $JOB_COMPLETION_INDEX of N "
                            "(a Kubernetes Indexed Job; default: $FRAISEQL_SHARDS).")(func)
        func = click.option("--shard", metavar="I/N", default=None,
                            help="With --targets: take only shard I of N (0 <= I < N), "
                            "chosen by a stable hash of each target's name.")(func)
        func = click.option("--wave", metavar="NAME", default=None,
                            help="With --targets: only the targets of wave NAME.")(func)
        func = click.option("--jobs", type=click.IntRange(min=1), default=None, metavar="N",
                            help=f"With --targets: targets run at the same time (default "
                            f"{api.DEFAULT_JOBS}).")(func)
        return click.option("--targets", type=click.Path(path_type=Path), default=None,
                            metavar="FILE",
                            help="Run on every database listed in FILE (plain text, one URL "
                            "a line, or TOML: docs/fleet.md) instead of one.")(func)

    return decorate


def check_resume(_ctx: click.Context, _param: click.Parameter, value: str | None
                 ) -> str | None:
    """``--resume``: ``done`` or ``again`` (one database), or a fleet run's id."""
    if value is None or value in ("done", "again") or re.fullmatch(RUN_ID_PATTERN, value):
        return value
    raise click.BadParameter(f"{value!r} is not done, again or a run id (e.g. "
                             "20261203T184500Z-3f9a, with --targets)")


def single_resume(resume: str | None) -> api.Resume | None:
    """``--resume`` without --targets: done or again."""
    if resume is None or resume == "done":
        return "done" if resume else None
    if resume == "again":
        return "again"
    raise click.UsageError(f"--resume {resume} continues a fleet run: it needs --targets "
                           "FILE")


def fleet_resume(resume: str | None) -> str | None:
    """``--resume`` with --targets: a run id (done/again settle one database's statement)."""
    if resume in ("done", "again"):
        raise click.UsageError(f"--resume {resume} cannot be combined with --targets; run it "
                               "on one database (--database-url)")
    return resume


def check_single(flags: FleetFlags) -> None:
    """Without --targets, the other fleet options mean nothing: refuse them."""
    given = [name for name, value in (
        ("--jobs", flags.jobs), ("--wave", flags.wave), ("--shard", flags.shard),
        ("--max-failures", flags.max_failures), ("--record", flags.record),
        ("--no-record", flags.no_record or None),
        ("--continue-on-error", flags.continue_on_error or None)) if value is not None]
    if given:
        raise click.UsageError(f"{given[0]} needs --targets FILE")


def load_fleet(flags: FleetFlags, database_url: str | None,
               environ: Mapping[str, str] | None = None) -> api.Fleet:
    """The targets of ``flags.targets``, its wave and its shard."""
    assert flags.targets is not None
    if database_url:
        raise click.UsageError("--database-url cannot be combined with --targets: the "
                               "targets file names the databases")
    return api.fleet(flags.targets, wave=flags.wave, shard=shard_of_run(flags, environ),
                     environ=environ)


def shard_of_run(flags: FleetFlags, environ: Mapping[str, str] | None = None) -> Shard | None:
    """``--shard I/N``; or ``--shards N`` with I from JOB_COMPLETION_INDEX; else None."""
    environ = os.environ if environ is None else environ
    if flags.shard is not None:
        if flags.shards is not None:
            raise click.UsageError("--shard and --shards (or FRAISEQL_SHARDS) cannot be "
                                   "combined: --shard I/N names both")
        return parse_shard(flags.shard)
    index = environ.get(JOB_INDEX)
    if flags.shards is None:
        if index is not None:
            raise UsageError(f"{JOB_INDEX} is set (a Kubernetes Indexed Job?) but the number "
                             "of shards is not: give --shards N or FRAISEQL_SHARDS=N (the "
                             "Job's completions), or --shard I/N")
        return None
    if index is None:
        raise UsageError(f"--shards {flags.shards} needs {JOB_INDEX} (set by a Kubernetes "
                         "Indexed Job) to know which shard is this one; or give --shard I/N")
    return parse_shard(f"{index}/{flags.shards}", f"{JOB_INDEX}={index} with --shards")
