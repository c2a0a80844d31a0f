"""The live display of a fleet run on a terminal: one status line, redrawn in place (how
many targets are done, running and failed; the slowest running target and its current
migration), with the lines that matter (failures, lock waits, notices) printed above it.

Plain output (a pipe, a CI log) and ``--json`` print every target's lines instead
(:mod:`.fleet`).
"""

from __future__ import annotations

import threading
import time
from typing import Any, TextIO

import click

from ..engine.fleet import SUCCEEDED, TargetOutcome
from ..project.targets import Target
from .render import PROBLEM_MARK, elapsed_text
from .reporting import TextReporter

#: How often the status line is redrawn (the slowest target's time moves on).
REDRAW_SECONDS = 0.5


class LiveDisplay:
    """The status line of ``total`` targets on ``stream`` (a terminal)."""

    def __init__(self, total: int, stream: TextIO, *, color: bool = False) -> None:
        self.total = total
        self.stream = stream
        self.color = color
        self.lock = threading.Lock()
        self.running: dict[str, tuple[float, str | None]] = {}  # name: (since, migration)
        self.done = 0
        self.failed = 0
        self._shown = False  # a status line is on the screen
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="fraiseql-fleet-display",
                                        daemon=True)
        self._ticker.start()

    # -- what the targets tell ----------------------------------------------------------

    def started(self, target: Target) -> None:
        with self.lock:
            self.running[target.name] = (time.monotonic(), None)
            self._draw()

    def migrating(self, target: Target, filename: str) -> None:
        with self.lock:
            since, _ = self.running.get(target.name, (time.monotonic(), None))
            self.running[target.name] = (since, filename)
            self._draw()

    def ended(self, outcome: TargetOutcome[Any]) -> None:
        with self.lock:
            self.running.pop(outcome.target.name, None)
            self.done += 1
            if outcome.state != SUCCEEDED:
                self.failed += 1
                mark = click.style(PROBLEM_MARK, fg="red") if self.color else PROBLEM_MARK
                self._line(f"[{outcome.target.name}] {mark} {outcome.state.capitalize()}: "
                           f"{outcome.error}")
            self._draw()

    def line(self, text: str) -> None:
        """A line above the status line (a notice, a lock wait)."""
        with self.lock:
            self._line(text)
            self._draw()

    def close(self) -> None:
        """Stop redrawing and clear the status line."""
        self._stop.set()
        self._ticker.join(timeout=2)
        with self.lock:
            self._clear()

    # -- drawing (under the lock) ---------------------------------------------------------

    def status(self) -> str:
        """``12/200 done, 8 running, 1 failed; slowest: acme 12.3s 004_add_index.sql``."""
        text = f"{self.done}/{self.total} done, {len(self.running)} running"
        if self.failed:
            text += f", {self.failed} failed"
        if self.running:
            name, (since, filename) = min(self.running.items(), key=lambda item: item[1][0])
            text += f"; slowest: {name} {elapsed_text(time.monotonic() - since)}"
            if filename:
                text += f" {filename}"
        return text

    def _draw(self) -> None:
        if self._stop.is_set():
            return
        self._write("\r\x1b[2K" + self.status())
        self._shown = True

    def _clear(self) -> None:
        if self._shown:
            self._write("\r\x1b[2K")
            self._shown = False

    def _line(self, text: str) -> None:
        self._clear()
        self._write(text + "\n")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (BrokenPipeError, ValueError):  # the terminal went away: nothing to draw on
            self._stop.set()

    def _tick(self) -> None:
        while not self._stop.wait(REDRAW_SECONDS):
            with self.lock:
                if self.running:
                    self._draw()


class LiveReporter(TextReporter):
    """A target's progress for the live display: its current migration feeds the status
    line; notices and lock waits are printed above it, prefixed with ``[name]``."""

    def __init__(self, target: Target, display: LiveDisplay) -> None:
        super().__init__(display.stream)
        self.target = target
        self.display = display

    def start(self, filename: str, is_upgrade: bool) -> None:
        self.display.migrating(self.target, filename)

    def done(self, filename: str, is_upgrade: bool) -> None:
        return None

    def failed(self) -> None:
        return None

    def notice(self, text: str) -> None:
        self.display.line(f"[{self.target.name}]   {text}")

    def marked(self, filename: str) -> None:
        return None

    def waiting(self, text: str) -> None:
        self.display.line(f"[{self.target.name}] {text}")
