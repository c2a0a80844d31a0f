"""``status`` of one database, or of every target of a fleet."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..alembic_bridge.commands import revisions
from ..engine import plan as planning
from ..engine import status as status_view
from ..engine.database import current_state
from ..engine.fleet import (
    FleetResult,
    SchemaSessions,
)
from ..fleetapi import DEFAULT_JOBS, Fleet, on_fleet
from ..project import loader
from ..project.targets import Target
from ..settings import Settings

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

    from ..engine.cancel import CancelToken


# ---------------------------------------------------------------------------
# status


def status(settings: Settings, *, connection: Connection | None = None
           ) -> status_view.StatusReport:
    """Every migration with its state: applied, pending, modified or missing.

    Read on ``connection`` (an idle autocommit session) when given, else on a session
    of its own."""
    scripts, _ = revisions(settings)
    state = current_state(settings, connection)
    return planning.reconcile(scripts, state, loader.list_folder(settings.path).ignored)


# ---------------------------------------------------------------------------
# status --targets: every target of a fleet (fleetapi.py: the targets file, on_fleet)


def status_fleet(
    settings: Settings,
    fleet: Fleet,
    *,
    jobs: int = DEFAULT_JOBS,
    cancel: CancelToken | None = None,
) -> FleetResult[status_view.StatusReport]:
    """:func:`status` of every target of ``fleet``, ``jobs`` at a time; a target that
    cannot be read is ``failed`` and the others are still read.  The schemas of one
    database are read on one session per job (:class:`.engine.fleet.SchemaSessions`),
    its search_path set to each in turn: connecting costs more than reading a schema."""
    sessions = SchemaSessions()

    def one(own: Settings, target: Target) -> status_view.StatusReport:
        if target.schema is None:
            return status(own)
        return status(own, connection=sessions.session(target.url, target.schema))

    try:
        return on_fleet(settings, fleet, one, jobs=jobs, max_failures=None, in_waves=False,
                        check_schemas=False, cancel=cancel)
    finally:
        sessions.close()
