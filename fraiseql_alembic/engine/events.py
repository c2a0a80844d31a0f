"""What a run tells whoever started it, on both paths: one protocol, no-op defaults.

The CLI's reporters implement it (they print each line); the API passes one to the
engine and, through the run context, to the Alembic bridge (``api.Reporter`` is this
protocol).  ``plan``, ``backed_up``, ``rehearsed`` and ``rows`` are optional: a receiver
without them is still accepted (they are looked up when called).  :class:`NoEvents` ignores all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .backup import Backup

#: What ``up --rehearse`` found for a pending migration (:class:`Outcome`'s ``result``).
WOULD_APPLY = "would-apply"
WOULD_FAIL = "would-fail"
NOT_REACHED = "not-reached"
NOT_REHEARSED = "not-rehearsed"
WOULD_RECORD = "would-record"  # marked applied by hand: up records it without running it


@dataclass(frozen=True)
class Outcome:
    """What the rehearsal found for one pending migration."""

    version: str
    filename: str
    result: str  # one of WOULD_APPLY, WOULD_FAIL, NOT_REACHED, NOT_REHEARSED, WOULD_RECORD
    detail: str | None = None  # the located error, or why it could not be rehearsed
    elapsed_ms: int | None = None  # how long its SQL ran (and held its locks)


class Events(Protocol):
    """Receives progress while migrations run."""

    def start(self, filename: str, is_upgrade: bool) -> None:
        """A migration starts (``Running migration: ...``)."""

    def done(self, filename: str, is_upgrade: bool) -> None:
        """A migration finished, committed (or, under Alembic, about to be)."""

    def notice(self, text: str) -> None:
        """A server notice, or a note of ours about the migration running."""

    def marked(self, filename: str) -> None:
        """``mark-applied`` recorded a migration without running it."""

    def waiting(self, text: str) -> None:
        """Waiting for the migration lock held by another deploy."""

    def plan(self, total: int, is_upgrade: bool) -> None:
        """How many migrations are about to run (before the first ``start``)."""

    def backed_up(self, backup: Backup) -> None:
        """``up --backup`` finished its dump, before anything is applied."""

    def rehearsed(self, outcome: Outcome) -> None:
        """``up --rehearse`` found what one pending migration would do."""

    def rows(self, filename: str, count: int) -> None:
        """How many rows the statements of the migration that just ran changed (``INSERT``,
        ``UPDATE``, ``DELETE``, ``MERGE``, ``COPY``), before its ``done``; not told when
        unknown (a migration run in segments outside a transaction).  Optional: by
        default ignored."""
        return None


class NoEvents:
    """An :class:`Events` that ignores everything: the default, and a base class."""

    def start(self, filename: str, is_upgrade: bool) -> None:
        return None

    def done(self, filename: str, is_upgrade: bool) -> None:
        return None

    def notice(self, text: str) -> None:
        return None

    def marked(self, filename: str) -> None:
        return None

    def waiting(self, text: str) -> None:
        return None

    def plan(self, total: int, is_upgrade: bool) -> None:
        return None

    def backed_up(self, backup: Backup) -> None:
        return None

    def rehearsed(self, outcome: Outcome) -> None:
        return None

    def rows(self, filename: str, count: int) -> None:
        return None
