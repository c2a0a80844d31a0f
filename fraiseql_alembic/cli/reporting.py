"""What ``up`` and ``down`` print while they run and when they end: text (plain or
terminal) and JSON lines.

Plain text (stdout is not a terminal: CI logs, pipes, tests) prints one line as each
migration starts, as it always has.  On a terminal each migration's line carries
``[k/n]`` and, once the migration finishes, its run time; the final line says how
long the whole run took.  ✓ and ✗ are green and red on a terminal unless
``NO_COLOR`` is set (https://no-color.org).

:class:`JsonReporter` is the one JSON emitter of the CLI: every event of ``up --json``
(progress, warnings, the final summary of a run or a rehearsal) goes through
:meth:`JsonReporter.emit`.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, TextIO

import click

from .. import api
from ..engine.events import NOT_REACHED, NOT_REHEARSED, WOULD_APPLY, WOULD_FAIL, Events, Outcome
from ..errors import shown_path
from .render import (
    CHECK,
    PENDING_MARK,
    PROBLEM_MARK,
    elapsed_text,
    human_size,
    plural,
    rehearsal_summary,
    render_plan,
)
from .streams import discard_stdout, isatty, wants_color

if TYPE_CHECKING:
    from ..engine.backup import Backup

__all__ = ["JsonReporter", "TextReporter", "elapsed_text"]


class TextReporter(Events):
    """Prints progress as migrations run (the engine's :class:`Events`); remembers what
    started and what finished.

    ``stream`` defaults to stdout; whether it is a terminal decides the display.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.terminal = isatty(self.stream)
        self.color = wants_color(self.stream)
        self.started: list[str] = []
        self.finished: list[str] = []
        self.total: int | None = None
        self.index = 0
        self._run_started = time.monotonic()
        self._current: tuple[str, bool] | None = None  # (filename, is_upgrade) running
        self._current_started = 0.0
        self._line_open = False  # a terminal line waiting for its ✓ and time
        self.output_closed = False  # the reader of stdout went away

    # -- helpers ----------------------------------------------------------------

    def echo(self, text: str = "", *, nl: bool = True) -> None:
        """Print a line; a reader that went away (``up | head``) never stops a run.

        Migrations go on with their output discarded: a closed pipe is no reason to
        leave a deploy half done.
        """
        if self.output_closed:
            return
        try:
            click.echo(text, file=self.stream, nl=nl, color=self.color)
        except BrokenPipeError:
            self.output_closed = True
            discard_stdout()

    def mark(self, symbol: str) -> str:
        if not self.color:
            return symbol
        return click.style(symbol, fg="red" if symbol == PROBLEM_MARK else "green")

    def _close_line(self) -> None:
        if self._line_open:
            self.echo()
            self._line_open = False

    def _progress_line(self, symbol: str | None, filename: str, is_upgrade: bool) -> str:
        verb = "Running migration" if is_upgrade else "Rolling back migration"
        counter = f"[{self.index}/{self.total}] " if self.total and self.terminal else ""
        head = self.mark(symbol) if symbol else " "
        return f"{head} {counter}{verb}: {filename}"

    # -- Events -------------------------------------------------------------------

    def plan(self, total: int, is_upgrade: bool) -> None:
        self.total = total
        self._run_started = time.monotonic()

    def start(self, filename: str, is_upgrade: bool) -> None:
        if not self.started or self.started[-1] != filename:  # a retry keeps its number
            self.index += 1
        self.started.append(filename)
        self._current = (filename, is_upgrade)
        self._current_started = time.monotonic()
        if not self.terminal:  # the plain line, printed as the migration starts
            self.echo(self._progress_line(CHECK, filename, is_upgrade))
            return
        self._close_line()
        self.echo(self._progress_line(None, filename, is_upgrade) + " ...", nl=False)
        self._line_open = True

    def done(self, filename: str, is_upgrade: bool) -> None:
        self.finished.append(filename)
        self._finish_current(CHECK)

    def failed(self) -> None:
        """The run stopped with a migration in flight: close its line with ✗."""
        self._finish_current(PROBLEM_MARK)

    def _finish_current(self, symbol: str) -> None:
        current, self._current = self._current, None
        if not self.terminal or current is None:
            return
        took = elapsed_text(time.monotonic() - self._current_started)
        line = f"{self._progress_line(symbol, *current)} ({took})"
        if self._line_open:
            self.echo("\r" + line)  # longer than the " ..." line it overwrites
            self._line_open = False
        else:
            self.echo(line)

    def notice(self, text: str) -> None:
        self._close_line()
        self.echo(f"  {text}")

    def marked(self, filename: str) -> None:
        self._close_line()
        self.echo(f"{self.mark(CHECK)} Recorded as applied without running it (marked by hand "
                  f"in fraiseql_migrations): {filename}")

    def waiting(self, text: str) -> None:
        self._close_line()
        click.echo(text, err=True)

    def backed_up(self, backup: Backup) -> None:
        shown = shown_path(backup.path)
        self.echo(f"{self.mark(CHECK)} Backup: {shown} ({human_size(backup.size_bytes)})")
        self.echo(f"  restore with: {backup.restore_command(shown)}")
        database = backup.database or "the database"
        self.echo(f"  (this drops and recreates {database} as it was before the migrations: "
                  "stop the application first)")

    def rehearsed(self, outcome: Outcome) -> None:
        took = (f" ({elapsed_text(outcome.elapsed_ms / 1000)})"
                if self.terminal and outcome.elapsed_ms is not None else "")
        if outcome.result == WOULD_APPLY:
            self.echo(f"{self.mark(CHECK)} Would apply: {outcome.filename}{took}")
        elif outcome.result == WOULD_FAIL:
            self.echo(f"{self.mark(PROBLEM_MARK)} Would fail: {outcome.detail}")
        elif outcome.result == NOT_REACHED:
            self.echo(f"{PENDING_MARK} Not reached: {outcome.filename}")
        elif outcome.result == NOT_REHEARSED:
            why = f": {outcome.detail}" if outcome.detail else ""
            self.echo(f"{PENDING_MARK} Not rehearsed: {outcome.filename}{why}")
        else:
            self.echo(f"{self.mark(CHECK)} Would record as applied (marked by hand): "
                      f"{outcome.filename}")

    # -- after the run ------------------------------------------------------------

    def timing_line(self, is_upgrade: bool) -> str | None:
        """``Applied 5 migrations in 3.2s`` on a terminal; None in plain mode."""
        if not self.terminal or not self.finished:
            return None
        verb = "Applied" if is_upgrade else "Rolled back"
        took = elapsed_text(time.monotonic() - self._run_started)
        return f"{verb} {plural(len(set(self.finished)))} in {took}"

    def _echo_timing(self, *, is_upgrade: bool) -> None:
        timing = self.timing_line(is_upgrade=is_upgrade)
        if timing:
            self.echo(timing)

    def warned(self, warnings: tuple[str, ...]) -> None:
        for warning in warnings:
            click.echo(f"Warning: {warning}", err=True)

    def upgraded(self, result: api.UpgradeResult, *, backup_asked: bool) -> None:
        """The end of ``up``: up to date, the dry run's plan, or success and timing."""
        self.warned(result.warnings)
        if result.up_to_date:
            click.echo("Already up to date" + ("; no backup taken" if backup_asked else ""))
            self.schema_written(result.schema)
            return
        if result.dry_run:
            marked = set(result.marked)
            for item in result.planned:
                if item.version in marked:
                    click.echo(f"Dry run: would record {item.filename} as applied (marked by "
                               "hand)")
            to_run = tuple(item for item in result.planned if item.version not in marked)
            if to_run:
                click.echo(render_plan("Dry run: would apply", to_run, show_sql=True))
            click.echo("Nothing was applied (dry run).")
            return
        self.echo(f"{self.mark(CHECK)} Migration completed successfully")
        self._echo_timing(is_upgrade=True)
        self.schema_written(result.schema)

    def rolled_back(self, result: api.DowngradeResult) -> None:
        """The end of ``down``."""
        self.echo(f"{self.mark(CHECK)} Rollback completed successfully "
                  f"({plural(len(result.rolled_back))} rolled back)")
        self._echo_timing(is_upgrade=False)
        self.schema_written(result.schema)

    def schema_written(self, snapshot: api.SchemaSnapshot | None) -> None:
        """The schema snapshot ``--dump-schema`` wrote (or found up to date)."""
        if snapshot is not None:
            self.echo(f"{self.mark(CHECK)} Schema snapshot: {shown_path(snapshot.path)} "
                      f"({'written' if snapshot.changed else 'unchanged'})")

    def rehearsal_finished(self, result: api.RehearsalResult) -> None:
        """The end of ``up --rehearse``: warnings and the summary line."""
        self.warned(result.warnings)
        click.echo(rehearsal_summary(result))

    def summary_after_stop(self, is_upgrade: bool) -> list[str]:
        """What happened before an interruption, for the user."""
        verb = "Applied" if is_upgrade else "Rolled back"
        lines = [f"{verb} before the stop: {', '.join(self.finished) or 'nothing'}"]
        unfinished = [name for name in self.started if name not in self.finished]
        if unfinished:
            undone = "rolled back, not applied" if is_upgrade else "left applied"
            lines.append(f"Interrupted and {undone}: {', '.join(dict.fromkeys(unfinished))}")
        lines.append("See `fraiseql migrate status`; run the command again to continue.")
        return lines


class JsonReporter(TextReporter):
    """One JSON object per line for each event (``up --json``); errors stay on stderr."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.terminal = False
        self.color = False
        self._started_at = 0.0

    def emit(self, **event: object) -> None:
        """One event, one line: the only place the CLI writes JSON lines."""
        self.echo(json.dumps(event))

    def plan(self, total: int, is_upgrade: bool) -> None:
        self.emit(event="plan", total=total, direction="up" if is_upgrade else "down")

    def start(self, filename: str, is_upgrade: bool) -> None:
        self.started.append(filename)
        self._started_at = time.monotonic()
        self.emit(event="start", file=filename, direction="up" if is_upgrade else "down")

    def done(self, filename: str, is_upgrade: bool) -> None:
        self.finished.append(filename)
        elapsed = int((time.monotonic() - self._started_at) * 1000)
        self.emit(event="done", file=filename, direction="up" if is_upgrade else "down",
                  elapsed_ms=elapsed)

    def failed(self) -> None:
        return None

    def notice(self, text: str) -> None:
        self.emit(event="notice", text=text)

    def marked(self, filename: str) -> None:
        self.emit(event="marked", file=filename)

    def waiting(self, text: str) -> None:
        self.emit(event="waiting", text=text)

    def backed_up(self, backup: Backup) -> None:
        self.emit(event="backup", file=str(backup.path), size_bytes=backup.size_bytes,
                  restore=backup.restore_command(shown_path(backup.path)))

    def rehearsed(self, outcome: Outcome) -> None:
        self.emit(event="rehearsal", file=outcome.filename, version=outcome.version,
                  outcome=outcome.result, detail=outcome.detail,
                  elapsed_ms=outcome.elapsed_ms)

    # -- after the run ------------------------------------------------------------

    def warned(self, warnings: tuple[str, ...]) -> None:
        for warning in warnings:
            self.emit(event="warning", text=warning)

    def upgraded(self, result: api.UpgradeResult, *, backup_asked: bool) -> None:
        self.warned(result.warnings)
        self.emit(
            event="summary",
            dry_run=result.dry_run,
            applied=list(result.applied),
            marked=list(result.marked),
            planned=[{"version": item.version, "file": item.filename, "sql": item.sql}
                     for item in result.planned],
            backup=str(result.backup.path) if result.backup is not None else None,
            schema=str(result.schema.path) if result.schema is not None else None,
        )

    def rehearsal_finished(self, result: api.RehearsalResult) -> None:
        self.warned(result.warnings)
        self.emit(
            event="summary", rehearsal=True, would_fail=result.failed is not None,
            outcomes=[{"version": item.version, "file": item.filename,
                       "outcome": item.result, "detail": item.detail}
                      for item in result.outcomes],
        )
