"""``--targets FILE``: a verb on a fleet of databases.  The options, the per-target
reporters (each line starts with ``[name]``), and the summary table or JSON at the end.

The verbs in :mod:`.verbs` hand over to the functions here when ``--targets`` is given;
these call one :mod:`fraiseql_alembic.api` fleet function each, under
:func:`.signals.run_interruptible` (Ctrl-C and SIGTERM stop every target cleanly).
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Generic, TextIO, TypeVar

import click

from .. import api
from ..engine.cancel import CancelToken
from ..engine.fleet import (
    FAILED,
    INTERRUPTED,
    NOT_STARTED,
    RUN_ID_PATTERN,
    STATES,
    SUCCEEDED,
    FleetResult,
    RunRecord,
    TargetOutcome,
    default_record_path,
    succeeded_in,
)
from ..engine.status import StatusReport
from ..errors import AbortedByUser, UsageError, plural, shown_path
from ..project.targets import Shard, Target, parse_shard
from ..settings import Settings
from .fleetlive import LiveDisplay, LiveReporter
from .render import CHECK, PENDING_MARK, PROBLEM_MARK, elapsed_text
from .reporting import JsonReporter, TextReporter
from .signals import run_interruptible
from .streams import NO_TERMINAL_TO_ASK, discard_stdout, isatty, wants_color

R = TypeVar("R")

#: ``status --targets --exit-code``: a target could not be read (as any failure).
EXIT_FAILED = 1
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


# -- per-target output ------------------------------------------------------------------


class _Output:
    """One lock for every line the targets print, so that lines never mix."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.closed = False  # the reader of stdout went away

    def echo(self, text: str) -> None:
        """A line on stdout; a reader that went away (``up --targets | head``) stops no
        target, as it stops no single ``up``: the rest of the output is discarded."""
        with self.lock:
            if self.closed:
                return
            try:
                click.echo(text)
            except BrokenPipeError:
                self.closed = True
                discard_stdout()


class TargetTextReporter(TextReporter):
    """A target's progress lines, each starting with ``[name]`` (plain lines: several
    targets run at once, so nothing is redrawn in place)."""

    def __init__(self, target: Target, output: _Output, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.terminal = False
        self.prefix = f"[{target.name}] "
        self.output = output

    def echo(self, text: str = "", *, nl: bool = True) -> None:
        with self.output.lock:
            super().echo(self.prefix + text, nl=nl)

    def waiting(self, text: str) -> None:
        with self.output.lock:
            click.echo(self.prefix + text, err=True)


class TargetJsonReporter(JsonReporter):
    """``--json``: every event carries ``"target": name``."""

    def __init__(self, target: Target, output: _Output, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.target = target
        self.output = output

    def emit(self, **event: object) -> None:
        with self.output.lock:
            super().emit(target=self.target.name, **event)


def _target_json(outcome: TargetOutcome[Any]) -> dict[str, object]:
    target = outcome.target
    return {
        "target": target.name, "url": target.shown_url, "schema": target.schema,
        "wave": target.wave, "state": outcome.state, "error": outcome.error,
        "started_at": outcome.started_at.isoformat() if outcome.started_at else None,
        "finished_at": outcome.finished_at.isoformat() if outcome.finished_at else None,
        "elapsed_ms": round(outcome.elapsed * 1000) if outcome.elapsed is not None else None,
    }


def _target_table(header: list[str], rows: list[list[str]],
                  targets: Sequence[Target]) -> list[str]:
    """:func:`_table` of rows whose second column is the target's masked URL, left out
    when every target is named by that URL already (a plain-text targets file)."""
    if all(target.name == target.shown_url for target in targets):
        header, rows = header[:1] + header[2:], [row[:1] + row[2:] for row in rows]
    return _table(header, rows)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Columns padded to their widest cell; the last column is not padded."""
    widths = [max(len(row[column]) for row in [header, *rows])
              for column in range(len(header) - 1)]
    return ["  ".join([cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
                      + [row[-1]]).rstrip() for row in [header, *rows]]


_MARK = {SUCCEEDED: CHECK, FAILED: PROBLEM_MARK, INTERRUPTED: PROBLEM_MARK,
         NOT_STARTED: PENDING_MARK}


# -- a verb on every target ------------------------------------------------------------


@dataclass(frozen=True)
class VerbOutput(Generic[R]):
    """How a verb's result is told: the line as a target ends, the table's column, JSON."""

    line: Callable[[R], str]  # after ✓, e.g. "Applied 2 migrations"
    title: str  # the summary table's column
    cell: Callable[[R], str]
    details: Callable[[R], dict[str, object]]


Verb = Callable[[Settings, Target, CancelToken, TextReporter], R]


def run_verb(name: str, settings: Settings, flags: FleetFlags, database_url: str | None,
             verb: Verb[R], output: VerbOutput[R], *, as_json: bool = False,
             create_schemas: bool = False, fleet: api.Fleet | None = None,
             resume: str | None = None) -> None:
    """``verb`` on every target under :func:`run_interruptible`; the table (or JSON) at the
    end; exit 1 when a target failed or did not start, 130/143 on a signal.
    ``create_schemas``: see :func:`fraiseql_alembic.api.on_fleet`; ``fleet``: the targets,
    when the caller has read them already; ``resume``: a recorded run's id, whose targets
    that succeeded are skipped."""
    if fleet is None:
        fleet = load_fleet(flags, database_url)
    if resume is not None:
        done = succeeded_in(_record_path(flags), resume, name)
        skipped = [target for target in fleet.targets if target.name in done]
        fleet = replace(fleet, targets=tuple(t for t in fleet.targets if t.name not in done))
        if not as_json:
            click.echo(f"Resuming run {resume}: {plural(len(skipped), 'target')} that "
                       f"succeeded in it skipped, {len(fleet.targets)} to run")
    if not fleet.targets:
        _no_targets(fleet, as_json)
        return
    lines = _Output()
    max_failures = flags.max_failures_allowed()
    record = _record(name, flags, len(fleet.targets), resume)
    live = (LiveDisplay(len(fleet.targets), sys.stdout, color=wants_color(sys.stdout))
            if not as_json and isatty(sys.stdout) else None)

    def on_end(outcome: TargetOutcome[R]) -> None:
        if record is not None:
            record.target(outcome, output.details(outcome.result)
                          if outcome.result is not None else {})
        if live is not None:
            live.ended(outcome)
        elif as_json:
            lines.echo(json.dumps({"event": "target", **_outcome_json(outcome, output)}))
        elif outcome.state == SUCCEEDED:
            assert outcome.result is not None
            took = f" ({elapsed_text(outcome.elapsed or 0)})"
            lines.echo(f"[{outcome.target.name}] {CHECK} {output.line(outcome.result)}{took}")
        else:
            lines.echo(f"[{outcome.target.name}] {PROBLEM_MARK} "
                       f"{outcome.state.capitalize()}: {outcome.error}")

    def work(token: CancelToken) -> FleetResult[R]:
        def one(target_settings: Settings, target: Target) -> R:
            reporter: TextReporter
            if live is not None:
                live.started(target)
                reporter = LiveReporter(target, live)
            elif as_json:
                reporter = TargetJsonReporter(target, lines)
            else:
                reporter = TargetTextReporter(target, lines)
            return verb(target_settings, target, token, reporter)

        return api.on_fleet(settings, fleet, one, jobs=flags.jobs or api.DEFAULT_JOBS,
                            max_failures=max_failures, create_schemas=create_schemas,
                            on_end=on_end, cancel=token)

    try:
        result = run_interruptible(work)
    except api.FleetInterrupted as stopped:
        if live is not None:
            live.close()
        _summary(stopped.result, output, as_json, record)
        raise
    finally:
        if live is not None:
            live.close()
    _summary(result, output, as_json, record)
    if not result.ok:
        sys.exit(1)


def _record_path(flags: FleetFlags) -> Path:
    assert flags.targets is not None
    return flags.record if flags.record is not None else default_record_path(flags.targets)


def _record(verb: str, flags: FleetFlags, targets: int, resumes: str | None
            ) -> RunRecord | None:
    if flags.no_record:
        if flags.record is not None:
            raise click.UsageError("--record and --no-record cannot be combined")
        return None
    return RunRecord(_record_path(flags), verb, targets, resumes=resumes,
                     on_problem=lambda text: click.echo(f"Warning: {text}", err=True))


def _no_targets(fleet: api.Fleet, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"event": "summary", "targets": [], "counts": {}}))
    else:
        click.echo(f"No targets to run on in {fleet.file} (after --wave and --shard)")


def _outcome_json(outcome: TargetOutcome[R], output: VerbOutput[R]) -> dict[str, object]:
    details = output.details(outcome.result) if outcome.result is not None else {}
    return {**_target_json(outcome), **details}


def _summary(result: FleetResult[R], output: VerbOutput[R], as_json: bool,
             record: RunRecord | None) -> None:
    if record is not None:
        record.end(result)
    kept = record is not None and not record.broken
    if as_json:
        click.echo(json.dumps({
            "event": "summary", "run": record.id if record is not None else None,
            "record": str(record.path) if kept and record is not None else None,
            "stopped": result.stopped, "jobs": result.jobs,
            "warnings": list(result.warnings),
            "counts": {state: len(result.having(state)) for state in STATES},
            "targets": [_outcome_json(outcome, output) for outcome in result.outcomes],
        }))
        return
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    rows = [[f"{_MARK[o.state]} {o.target.name}", o.target.shown_url, o.state,
             output.cell(o.result) if o.result is not None else "-",
             elapsed_text(o.elapsed) if o.elapsed is not None else "-", o.error or ""]
            for o in result.outcomes]
    click.echo("")
    for line in _target_table(["  target", "database", "state", output.title, "time", "error"],
                              rows, [outcome.target for outcome in result.outcomes]):
        click.echo(line)
    stopped = f" ({result.stopped})" if result.stopped else ""
    click.echo(f"{result.counts()}{stopped}")
    if kept and record is not None:
        click.echo(f"Run {record.id} recorded in {shown_path(record.path)}")


# -- up, down, mark-applied, repair --targets ---------------------------------------------

UPGRADED = VerbOutput[api.UpgradeResult](
    line=lambda result: ("Already up to date" if result.up_to_date
                         else f"Applied {plural(len(result.applied))}"),
    title="applied", cell=lambda result: str(len(result.applied)),
    details=lambda result: {"applied": list(result.applied),
                            "warnings": list(result.warnings)},
)


def up(settings: Settings, flags: FleetFlags, database_url: str | None, *,
       steps: int | None, as_json: bool, resume: str | None = None,
       confirm: str | None = None) -> None:
    """``up --targets``: every target as a single ``up``; ``confirm`` (where an
    environment says ``confirm = true``): asked once for the whole fleet first."""
    fleet = load_fleet(flags, database_url)
    if confirm is not None and fleet.targets:
        count = plural(len(fleet.targets), "target")
        if not sys.stdin.isatty():
            raise AbortedByUser(
                f"Refusing to apply migrations on {count} without confirmation (confirm = "
                f"true in {confirm}): there is no terminal to ask on. Pass --force to apply "
                "anyway; nothing was changed")
        if not click.confirm(f"Apply the pending migrations on each of {count}?",
                             default=False, err=as_json):
            raise AbortedByUser("Upgrade cancelled; nothing was applied")
    run_verb("up", settings, flags, database_url,
             lambda target_settings, _, token, reporter: api.upgrade(
                 target_settings, steps=steps, reporter=reporter, cancel=token),
             UPGRADED, as_json=as_json, create_schemas=True, fleet=fleet, resume=resume)


ROLLED_BACK = VerbOutput[api.DowngradeResult](
    line=lambda result: f"Rolled back {plural(len(result.rolled_back))}",
    title="rolled back", cell=lambda result: str(len(result.rolled_back)),
    details=lambda result: {"rolled_back": list(result.rolled_back)},
)


def down(settings: Settings, flags: FleetFlags, database_url: str | None, *,
         steps: int, force: bool, resume: str | None = None) -> None:
    """``down --targets``: asked once for the whole fleet (unless ``force``), then every
    target as a single ``down --force``."""
    fleet = load_fleet(flags, database_url)
    if not force and fleet.targets:
        what = (f"the {plural(steps)} most recent" if steps > 1 else "the most recent "
                "migration")
        if not sys.stdin.isatty():
            raise AbortedByUser(
                f"Refusing to roll back {what} on {plural(len(fleet.targets), 'target')} "
                f"without confirmation: {NO_TERMINAL_TO_ASK}")
        if not click.confirm(f"Roll back {what} on each of "
                             f"{plural(len(fleet.targets), 'target')}?", default=False):
            raise AbortedByUser("Rollback cancelled; nothing was changed")
    run_verb("down", settings, flags, database_url,
             lambda target_settings, _, token, reporter: api.downgrade(
                 target_settings, steps=steps, reporter=reporter, cancel=token),
             ROLLED_BACK, fleet=fleet, resume=resume)


MARKED = VerbOutput[api.Recorded](
    line=lambda recorded: f"Marked {recorded.filename} as applied without running it",
    title="marked", cell=lambda recorded: recorded.filename,
    details=lambda recorded: {"marked": recorded.filename},
)


def mark_applied(settings: Settings, flags: FleetFlags, database_url: str | None, *,
                 version: str, reason: str | None) -> None:
    """``mark-applied VERSION --targets``: on every target."""
    run_verb("mark-applied", settings, flags, database_url,
             lambda target_settings, _, token, reporter: api.mark_applied(
                 target_settings, version, reason=reason, reporter=reporter),
             MARKED)


REPAIRED = VerbOutput[tuple[api.Recorded, ...]](
    line=lambda repaired: (f"Repaired {', '.join(item.filename for item in repaired)}"
                           if repaired else "Nothing to repair"),
    title="repaired", cell=lambda repaired: str(len(repaired)),
    details=lambda repaired: {"repaired": [item.filename for item in repaired]},
)


def repair(settings: Settings, flags: FleetFlags, database_url: str | None, *,
           version: str | None, reason: str | None, missing: bool = False) -> None:
    """``repair [VERSION] [--missing] --targets``: on every target."""
    run_verb("repair", settings, flags, database_url,
             lambda target_settings, _, token, reporter: api.repair(
                 target_settings, version, reason=reason, reporter=reporter,
                 missing=missing),
             REPAIRED)


# -- status --targets -------------------------------------------------------------------


def status(settings: Settings, flags: FleetFlags, database_url: str | None, *,
           as_json: bool, exit_code: bool, pending_code: int, inconsistent_code: int) -> None:
    """``status --targets``: one row per target and totals; exit 1 when a target could
    not be read; with ``exit_code``, ``inconsistent_code`` or ``pending_code``."""
    fleet = load_fleet(flags, database_url)
    if not fleet.targets:
        _no_targets(fleet, as_json)
        return
    result = run_interruptible(lambda token: api.status_fleet(
        settings, fleet, jobs=flags.jobs or api.DEFAULT_JOBS, cancel=token))
    reports = [(o, o.result) for o in result.outcomes]
    if as_json:
        environment = settings.environment
        click.echo(json.dumps({
            "environment": None if environment is None else {
                "name": environment.name, "targets": str(fleet.file)},
            "targets": [{**_target_json(o), **_status_json(report)} for o, report in reports],
            "totals": _status_totals(result),
        }, indent=2))
    else:
        for warning in result.warnings:
            click.echo(f"Warning: {warning}", err=True)
        rows = [[f"{_status_mark(o, report)} {o.target.name}", o.target.shown_url,
                 o.target.schema or "-", *_status_cells(o, report)] for o, report in reports]
        for line in _target_table(["  target", "database", "schema", "current", "pending",
                                   "problems"], rows, [o.target for o, _ in reports]):
            click.echo(line)
        totals = _status_totals(result)
        click.echo(f"{result.counts().split(':')[0]}: {totals['up_to_date']} up to date, "
                   f"{totals['behind']} behind, {totals['inconsistent']} inconsistent, "
                   f"{totals['failed']} could not be read")
    if result.having(FAILED):
        sys.exit(EXIT_FAILED)
    if exit_code:
        if any(report is not None and report.inconsistent for _, report in reports):
            sys.exit(inconsistent_code)
        if any(report is not None and report.pending for _, report in reports):
            sys.exit(pending_code)


def _current(report: StatusReport) -> str | None:
    applied = [row for row in report.rows if row.applied]
    return applied[-1].filename if applied else None


def _status_mark(outcome: TargetOutcome[StatusReport], report: StatusReport | None) -> str:
    if report is None or report.inconsistent:
        return PROBLEM_MARK
    return PENDING_MARK if report.pending else CHECK


def _status_cells(outcome: TargetOutcome[StatusReport], report: StatusReport | None
                  ) -> list[str]:
    if report is None:
        return ["-", "-", f"could not be read: {outcome.error}"]
    problems = len(report.problems) + bool(report.version_rows_problem) + bool(report.branched)
    problems += sum(row.partial is not None for row in report.rows)
    return [_current(report) or "(none)", str(len(report.pending)), str(problems)]


def _status_json(report: StatusReport | None) -> dict[str, object]:
    if report is None:
        return {"current": None, "pending": None, "inconsistent": None, "problems": None}
    return {"current": _current(report), "pending": len(report.pending),
            "inconsistent": report.inconsistent,
            "problems": [f"{row.filename}: {row.state}" for row in report.problems]}


def _status_totals(result: FleetResult[StatusReport]) -> dict[str, int]:
    reports = [o.result for o in result.outcomes if o.result is not None]
    return {
        "targets": len(result.outcomes),
        "up_to_date": sum(not r.pending and not r.inconsistent for r in reports),
        "behind": sum(bool(r.pending) and not r.inconsistent for r in reports),
        "inconsistent": sum(r.inconsistent for r in reports),
        "failed": len(result.having(FAILED)),
        "pending_migrations": sum(len(r.pending) for r in reports),
    }
