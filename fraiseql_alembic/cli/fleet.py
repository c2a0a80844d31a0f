"""``--targets FILE``: a verb on a fleet of databases.  The per-target reporters (each
line starts with ``[name]``), and the summary table or JSON at the end; the options and
what they resolve to are in :mod:`.fleetflags`.

The verbs in :mod:`.verbs` hand over to the functions here when ``--targets`` is given;
these call one :mod:`fraiseql_alembic.api` fleet function each, under
:func:`.signals.run_interruptible` (Ctrl-C and SIGTERM stop every target cleanly).
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TextIO, TypeVar

import click

from .. import api
from ..engine.cancel import CancelToken
from ..engine.fleet import (
    FAILED,
    INTERRUPTED,
    NOT_STARTED,
    STATES,
    SUCCEEDED,
    FleetResult,
    RunRecord,
    TargetOutcome,
    default_record_path,
    succeeded_in,
)
from ..engine.status import StatusReport
from ..errors import AbortedByUser, plural, shown_path
from ..project.targets import Target
from ..settings import Settings
from .fleetflags import FleetFlags, load_fleet
from .fleetlive import LiveDisplay, LiveReporter
from .render import CHECK, PENDING_MARK, PROBLEM_MARK, elapsed_text
from .reporting import JsonReporter, TextReporter
from .signals import run_interruptible
from .streams import NO_TERMINAL_TO_ASK, discard_stdout, isatty, wants_color

R = TypeVar("R")

#: ``status --targets --exit-code``: a target could not be read (as any failure).
EXIT_FAILED = 1


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

UPGRADED: VerbOutput[api.UpgradeResult] = VerbOutput(
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


ROLLED_BACK: VerbOutput[api.DowngradeResult] = VerbOutput(
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


MARKED: VerbOutput[api.Recorded] = VerbOutput(
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


REPAIRED: VerbOutput[tuple[api.Recorded, ...]] = VerbOutput(
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
