"""``up_down_up``: every migration applied, rolled back and applied again, the schema
compared at each step (what pytest-alembic's ``test_up_down_consistency`` checks for
Alembic ``.py`` revisions, here for the SQL files, and stricter: it compares schemas)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..alembic_bridge.commands import revisions
from ..engine.catalog import Catalog, read_catalog
from ..engine.database import current_state
from ..engine.plan import Script, display_name
from ..engine.preflight import sql_migration
from ..errors import MigrationError, UsageError
from ..project.drift import MISSING, UNEXPECTED, Difference, compare
from ..secrets import mask_url
from ..settings import Settings
from .migrate import downgrade, upgrade

OK = "ok"
#: No down section, and named in ``irreversible=``: applied, not rolled back.
SKIPPED = "skipped"
FAILED = "failed"
#: Not reached: an earlier migration failed.
NOT_CHECKED = "not checked"

_SHOWN_DIFFERENCES = 5


@dataclass(frozen=True)
class RoundTrip:
    """One migration's check: its file, ``OK``/``SKIPPED``/``FAILED``/``NOT_CHECKED``, and
    what went wrong (or why it was skipped)."""

    migration: str
    outcome: str
    detail: str = ""


@dataclass(frozen=True)
class RoundTripReport:
    """The checks, base first."""

    migrations: tuple[RoundTrip, ...] = field(default=())

    @property
    def failed(self) -> tuple[RoundTrip, ...]:
        return tuple(item for item in self.migrations if item.outcome == FAILED)

    @property
    def ok(self) -> bool:
        return not self.failed

    def describe(self) -> str:
        """One line per migration that failed or was skipped, then the counts."""
        lines = [f"{item.migration}: {item.detail}" for item in self.migrations
                 if item.outcome in (FAILED, SKIPPED)]
        counts = {outcome: sum(item.outcome == outcome for item in self.migrations)
                  for outcome in (OK, FAILED, SKIPPED, NOT_CHECKED)}
        lines.append("up -> down -> up: " + ", ".join(
            f"{count} {outcome}" for outcome, count in counts.items() if count))
        return "\n".join(lines)


def up_down_up(
    settings: Settings,
    *,
    irreversible: Iterable[str] = (),
    on_migration: Callable[[RoundTrip], None] | None = None,
) -> RoundTripReport:
    """Apply each migration, roll it back, apply it again, on an **empty** database.

    After the down the schema must be what it was before the up, and after the second up
    what the first up built (compared as ``drift`` compares: tables, columns, constraints,
    indexes, functions, grants, comments, ...; our bookkeeping tables left out).  A
    migration without a down section fails, unless its file name is in ``irreversible``:
    then it is applied and the check goes on with the next one.  The first failure ends
    the check (the database is then in no known state); the migrations after it are
    ``NOT_CHECKED``.  ``on_migration`` hears each result as it is known.
    """
    allowed = set(irreversible)
    url = settings.require_url()
    scripts, _directory = revisions(settings)
    names = [display_name(script) for script in scripts]
    unknown = sorted(allowed - set(names))
    if unknown:
        raise UsageError(
            f"irreversible= names no migration of {settings.path}: {', '.join(unknown)}; "
            "give file names, e.g. 005_backfill.sql")
    if current_state(settings).heads:
        raise UsageError(
            f"up_down_up needs a database where no migration is applied; "
            f"{mask_url(url)} has some: give it an empty database")
    results: list[RoundTrip] = []

    def note(result: RoundTrip) -> None:
        results.append(result)
        if on_migration is not None:
            on_migration(result)

    before = read_catalog(url)
    for script, name in zip(scripts, names, strict=True):
        if any(result.outcome == FAILED for result in results):
            note(RoundTrip(name, NOT_CHECKED))
            continue
        result, before = _round_trip(settings, url, script, name, before, allowed)
        note(result)
    return RoundTripReport(tuple(results))


def _round_trip(settings: Settings, url: str, script: Script, name: str, before: Catalog,
                allowed: set[str]) -> tuple[RoundTrip, Catalog]:
    """One migration's check, and the schema after its (first) up."""

    def failed(detail: str) -> RoundTrip:
        return RoundTrip(name, FAILED, detail)

    try:
        upgrade(settings, steps=1)
    except MigrationError as err:
        return failed(f"up failed: {err}"), before
    after = read_catalog(url)
    migration = sql_migration(script)
    if migration is not None and not migration.reversible:
        if name in allowed:
            return RoundTrip(name, SKIPPED, "no down section (allowed: irreversible=)"), after
        return failed("no down section: add a `-- migrate:down` section that undoes it, or "
                      "name the file in irreversible= if it cannot be undone"), after
    try:
        downgrade(settings, steps=1)
    except MigrationError as err:
        return failed(f"down failed: {err}"), after
    differences = compare(read_catalog(url), before)
    if differences:
        return failed("down did not undo up: "
                      + _shown(differences, "left", "removed")), after
    try:
        upgrade(settings, steps=1)
    except MigrationError as err:
        return failed(f"up after down failed: {err}"), after
    differences = compare(read_catalog(url), after)
    if differences:
        return failed("up after down built another schema: "
                      + _shown(differences, "built only now", "not built")), after
    return RoundTrip(name, OK), after


def _shown(differences: tuple[Difference, ...], extra: str, lacking: str) -> str:
    """A few differences in words: what one side has that the other lacks."""
    words = []
    for difference in differences[:_SHOWN_DIFFERENCES]:
        if difference.state == UNEXPECTED:
            state = extra
        elif difference.state == MISSING:
            state = lacking
        else:
            state = "changed (" + ", ".join(difference.changed) + ")"
        words.append(f"{difference.kind} {difference.name} {state}")
    more = len(differences) - _SHOWN_DIFFERENCES
    return "; ".join(words) + (f"; and {more} more" if more > 0 else "")
