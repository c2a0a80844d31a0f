"""``mark-applied`` and ``repair``: change the record, never the schema."""

from __future__ import annotations

from dataclasses import dataclass

from ..alembic_bridge.commands import revisions
from ..engine import plan as planning
from ..engine.database import current_state
from ..engine.deploy import (
    Progress,
    Reporter,
    migration_lock,
)
from ..engine.recorder import record_without_running
from ..errors import UsageError
from ..settings import Settings

# ---------------------------------------------------------------------------
# mark-applied / repair: change the record, never the schema


@dataclass(frozen=True)
class Recorded:
    """A history row written by ``mark_applied`` or ``repair``."""

    version: str
    filename: str
    previous_checksum: str | None = None  # repair: the checksum it replaced
    #: ``repair --missing`` at the database's head: alembic_version (from, to; None: no row)
    moved: tuple[str | None, str | None] | None = None


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
    missing: bool = False,
) -> tuple[Recorded, ...]:
    """Accept the current checksum of applied files that changed after they ran; with
    ``missing``, record that the applied file ``version`` was deleted on purpose.

    Every MODIFIED migration, or only ``version`` (which must be MODIFIED), gets a
    ``repaired`` history row with its new checksums; its note keeps the previous
    checksum and ``reason``.  ``status`` then shows it applied (at the original time)
    and ``up`` stops refusing.  Returns what was repaired: empty when nothing was
    modified.  Under the migration lock.

    ``missing`` (``repair --missing VERSION``; ``version`` required): ``version`` must be
    MISSING (applied, its file gone) and not renamed (no file holds the checksum it was
    applied with).  A ``file_deleted`` history row is added (earlier rows stay), after
    which it no longer counts as applied; when ``alembic_version`` is at it, it moves to
    the newest applied revision below (``Recorded.moved``).  Its changes stay in the
    database.
    """
    scripts, _ = revisions(settings)
    if missing:
        if version is None:
            raise UsageError("repair --missing needs the VERSION of the deleted file (one "
                             "at a time: deleting an applied file is a decision)")
        with migration_lock(settings, Progress(reporter), None):
            report = planning.reconcile(scripts, current_state(settings))
            row, entry, move = planning.plan_missing(scripts, report, version,
                                                     folder=settings.path, reason=reason)
            record_without_running(
                settings.require_url(), [entry], history_schema=settings.history_schema,
                options=settings.run, move=move,
            )
        return (Recorded(row.version, row.filename, row.recorded_checksum, move),)
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
