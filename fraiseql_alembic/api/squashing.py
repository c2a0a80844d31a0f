"""``squash``: replace migrations 001..N by one baseline file built from a shadow database.

The baseline takes N's version id (its file is ``<N>_baseline.sql``) and, being the
lowest file of the folder, has no parent: Alembic's chain stays one line, and a database
at N (or past it) is where it was.  Its header lists each file it replaced with the
checksums their history rows hold, so that ``status`` shows those rows as squashed into
the baseline (never MISSING), and the baseline as applied on a database whose row for N
was written by the file it replaced (never MODIFIED).  A fresh database runs the
baseline, then N+1 on.  See docs/squash.md.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..alembic_bridge.commands import revisions
from ..engine import baseline as dumping
from ..engine import status as status_view
from ..engine.cancel import CancelToken
from ..engine.plan import Script, display_name
from ..engine.preflight import sql_migration
from ..engine.shadow import THROWAWAY, empty, shadow_database
from ..errors import (
    MigrationError,
    MigrationLayoutError,
    UsageError,
    file_access_error,
    plural,
    shown_path,
)
from ..fleetapi import Fleet, on_fleet
from ..project import gitbase
from ..secrets import mask_url
from ..settings import Settings
from ..settings import shadow_database_url as shadow_url_setting
from ..sql.names import parse_filename
from ..sql.parse import ParsedMigration, Squashed
from .migrate import upgrade
from .state import status

#: The slug of a baseline file: ``003_baseline.sql``.
BASELINE_SLUG = "baseline"


class SquashRefused(MigrationError):
    """``squash`` will not replace the files: a target has not applied N, a file is
    modified, uncommitted or a ``.py`` revision, ... (one line per reason)."""


@dataclass(frozen=True)
class SquashResult:
    """What :func:`squash` wrote (or, with ``dry_run``, would write)."""

    version: str  # N: the baseline's version id
    baseline: Path  # the baseline file
    squashed: tuple[str, ...]  # the files it replaces, in order
    removed: tuple[Path, ...]  # the files removed (would be, with dry_run)
    targets: tuple[str, ...]  # the databases checked, each at N or past it
    shadow: str  # where it was built (masked URL, or THROWAWAY); "" for a dry run
    dry_run: bool
    text: str = ""  # the baseline file's text ("" for a dry run)
    verified: bool = False  # a fresh database built from it dumps the same as from 001..N


def squash(
    settings: Settings,
    through: str,
    *,
    fleet: Fleet | None = None,
    shadow_database_url: str | None = None,
    dry_run: bool = False,
    on_step: Callable[[str], None] | None = None,
    cancel: CancelToken | None = None,
) -> SquashResult:
    """Replace migrations 001..``through`` by one baseline file (``fraiseql migrate
    squash --through N``; docs/squash.md).

    Refused (:class:`SquashRefused`, one line per reason) unless every known database
    has applied N with files unchanged: ``settings.database_url`` and every target of
    ``fleet`` (schema-per-tenant ones too), one line per target behind, partial,
    inconsistent or unreachable; also when N is not a version of the folder, when a file
    up to N is a ``.py`` revision, not in N's line, or uncommitted in git, or when a file
    above N names one below N as its parent, or when a target of ``fleet`` is a schema
    of a shared database (checked, then refused: a baseline names its objects with their
    schema).  Then 001..N are applied to a shadow
    database (``shadow_database_url``, else ``FRAISEQL_SHADOW_DATABASE_URL``, else a
    throwaway PostgreSQL) by our engine, pg_dump writes its schema and rows
    (:mod:`.engine.baseline`), the text is applied to the emptied shadow database as a
    migration and must dump the same again (``verified``), and only then is
    ``<N>_baseline.sql`` written and the files it replaces removed (git keeps them).
    ``dry_run`` checks everything but builds and writes nothing.  ``cancel`` cancels the
    statement the shadow build (or the check of the baseline) is running, as
    :func:`upgrade`'s, and terminates pg_dump; nothing is written then.
    """
    folder = settings.path
    scripts, _ = revisions(settings)
    chain = _squashed_chain(scripts, through, folder)
    last = chain[-1]
    baseline_name = f"{last.name.version}_{BASELINE_SLUG}.sql"
    _refuse_uncommitted(folder, chain)
    checked = _check_targets(settings, fleet, chain, on_step)
    tenants = [target.name for target in (fleet.targets if fleet is not None else ())
               if target.schema is not None]
    if tenants:
        raise SquashRefused(
            f"Refusing to squash: target {tenants[0]} is a schema of a shared database, and "
            "a baseline names every object with its schema (pg_dump writes public.x), "
            "which a new tenant's schema cannot use; squash is for whole databases")
    removed = tuple(folder / migration.name.filename for migration in chain
                    if migration.name.filename != baseline_name)
    squashed = tuple(migration.name.filename for migration in chain)
    if dry_run:
        return SquashResult(last.name.version, folder / baseline_name, squashed, removed,
                            checked, "", True)
    url, _ = shadow_url_setting(shadow_database_url)
    shown_shadow = mask_url(url) if url else THROWAWAY

    def step(line: str) -> None:
        if on_step is not None:
            on_step(line)

    with shadow_database(url, live_url=settings.database_url, on_start=lambda what: step(
            f"Starting {what} for the shadow database")) as shadow:
        own = replace(settings, database_url=shadow, url_source="the shadow database")
        step(f"Applying {plural(len(chain))} to {shown_shadow}")
        upgrade(own, steps=len(chain), cancel=cancel)
        built = tuple(row.filename for row in status(own).rows if row.applied)
        if built != squashed:
            raise MigrationLayoutError(
                f"The shadow database applied {', '.join(built)} instead of "
                f"{', '.join(squashed)}; nothing was written")
        step("Dumping its schema and rows with pg_dump")
        body = dumping.dump(shadow, cancel=cancel)
        schema = dumping.dump(shadow, schema_only=True, cancel=cancel)
        text = baseline_text(chain, body)
        step(f"Checking {baseline_name}: a fresh database built from it dumps the same")
        empty(shadow)
        _verify(own, baseline_name, text, body, schema, cancel)
    _write(folder / baseline_name, text, removed)
    return SquashResult(last.name.version, folder / baseline_name, squashed, removed, checked,
                        shown_shadow, False, text, True)


def baseline_text(chain: Sequence[ParsedMigration], body: str) -> str:
    """Pure: the baseline file: a header naming the files it replaces (with their
    checksums; a baseline among them passes its own list on), then ``body`` as the up
    section.  No down section: rolling back below a baseline is refused."""
    first, last = chain[0].name.version, chain[-1].name.version
    entries: list[Squashed] = []
    for migration in chain:
        entries += migration.squashes
        entries.append(Squashed(migration.name.version, migration.name.filename,
                                migration.checksum, migration.up_checksum))
    header = [
        f"-- Migration {last}: Baseline of {first}..{last}",
        f"-- Written by `fraiseql migrate squash --through {last}`: the schema and the rows",
        f"-- that {chain[0].name.filename} .. {chain[-1].name.filename} build (pg_dump of a "
        "shadow database).",
        f"-- Databases that applied {last} keep their history; fresh databases start here.",
        "-- Do not edit the `squashed:` lines: they are how those history rows are known.",
        *(entry.header_line() for entry in entries),
        "-- migrate:up",
    ]
    return "\n".join(header) + "\n" + body


def _squashed_chain(scripts: Sequence[Script], through: str, folder: Path
                    ) -> list[ParsedMigration]:
    """The files 001..N, base first; refused unless they are one line of SQL files that
    nothing above N branches off."""
    wanted = Path(through.strip()).name.removesuffix(".sql")
    by_id = {script.revision: script for script in scripts}
    target = next((script for script in scripts
                   if wanted in (script.revision, display_name(script).removesuffix(".sql"))
                   or (wanted.isdigit() and script.revision.isdigit()
                       and int(wanted) == int(script.revision))), None)
    if target is None:
        raise UsageError(f"--through {through}: no migration {through!r} in "
                         f"{shown_path(folder)}; give a version such as 003 "
                         "(`fraiseql migrate status` lists them)")
    below = status_view.ancestors([target.revision], by_id.get)
    chain = [script for script in scripts if script.revision in below]
    python = [display_name(script) for script in chain if sql_migration(script) is None]
    if python:
        raise SquashRefused(f"Refusing to squash: {python[0]} is a Python revision; squash "
                            "works on SQL files only (squash through a version below it)")
    for script in chain:
        if len(status_view.parents_of(script)) > 1:
            raise SquashRefused(f"Refusing to squash: {display_name(script)} merges several "
                                "heads; squash through a version of a single line")
    migrations = [migration for script in chain
                  if (migration := sql_migration(script)) is not None]
    if len(migrations) < 2:
        raise SquashRefused(f"Nothing to squash: {display_name(target)} is the first migration "
                            "of the folder")
    number = migrations[-1].name.number
    for script in scripts:
        name = parse_filename(display_name(script))
        if script.revision not in below and name is not None and name.number <= number:
            raise SquashRefused(
                f"Refusing to squash: {name.filename} is numbered below {through} but is not "
                f"in its line of migrations (another branch?); settle it first")
        parents = set(status_view.parents_of(script)) & (below - {target.revision})
        if script.revision not in below and parents:
            raise SquashRefused(
                f"Refusing to squash: {display_name(script)} follows "
                f"{display_name(by_id[sorted(parents)[0]])}, which the baseline replaces; "
                f"squash through {sorted(parents)[0]} or below")
    return migrations


def _refuse_uncommitted(folder: Path, chain: Sequence[ParsedMigration]) -> None:
    """The files squash removes must be committed: git is where they stay."""
    changes = gitbase.uncommitted(folder)
    if not changes:
        return
    for migration in chain:
        code = changes.get(migration.name.filename)
        if code is not None:
            what = "not in git (untracked)" if code == "??" else "changed and not committed"
            raise SquashRefused(
                f"Refusing to squash: {shown_path(folder / migration.name.filename)} is "
                f"{what}; squash removes it, so commit it first (git keeps it)")


def _check_targets(settings: Settings, fleet: Fleet | None,
                   chain: Sequence[ParsedMigration], on_step: Callable[[str], None] | None
                   ) -> tuple[str, ...]:
    """Every known database has applied 001..N unchanged; else SquashRefused, one line per
    target that is behind, partial, inconsistent or unreachable."""
    versions = [migration.name.version for migration in chain]
    reports: list[tuple[str, status_view.StatusReport | None, str | None]] = []
    if settings.database_url:
        name = mask_url(settings.database_url)
        try:
            reports.append((name, status(settings), None))
        except MigrationError as err:
            reports.append((name, None, f"unreachable: {err.message}"))
    if fleet is not None:
        result = on_fleet(settings, fleet, lambda own, _: status(own), jobs=4,
                          max_failures=None, in_waves=False)
        for outcome in result.outcomes:
            reports.append((outcome.target.name, outcome.result,
                            f"unreachable: {outcome.error or outcome.state}"
                            if outcome.result is None else None))
    if not reports:
        raise UsageError("squash needs the databases that have these migrations: give "
                         "--database-url (or DATABASE_URL) and/or --targets FILE")
    lines = []
    for name, report, error in reports:
        problem = error if report is None else target_problem(report, versions)
        if problem is not None:
            lines.append(f"  [{name}] {problem}")
        elif on_step is not None:
            on_step(f"[{name}] has applied {chain[-1].name.filename}")
    if lines:
        raise SquashRefused(
            f"Refusing to squash through {chain[-1].name.version}: "
            f"{plural(len(lines), 'target')} of {len(reports)} not ready (each must have "
            "applied it, unchanged); nothing was written\n" + "\n".join(lines))
    return tuple(name for name, _, _ in reports)


def target_problem(report: status_view.StatusReport, versions: Sequence[str]) -> str | None:
    """Pure: why a database is not ready for a baseline of ``versions`` (base first), or
    None when it has applied every one of them unchanged and in order."""
    if report.version_rows_problem is not None:
        return f"inconsistent: {report.version_rows_problem}"
    rows = {row.version: row for row in report.rows}
    for version in versions:
        row = rows.get(version)
        if row is None:
            continue
        if row.partial is not None:
            return f"partial: {row.filename} is partly applied; finish it with `up` first"
        if row.state == status_view.MODIFIED:
            return (f"modified: {row.filename} changed after it was applied here; restore "
                    "it or accept it with `fraiseql migrate repair` first")
        if row.state in (status_view.PENDING, status_view.OUT_OF_ORDER):
            applied = [other.filename for other in report.rows if other.applied]
            at = applied[-1] if applied else "nothing applied"
            return f"behind: at {at}; {row.filename} is not applied"
        if row.state != status_view.APPLIED:
            return (f"inconsistent: {row.filename} is {row.state.replace('_', ' ')} (see "
                    "`fraiseql migrate status`)")
    return None


def _verify(own: Settings, name: str, text: str, body: str, schema: str,
            cancel: CancelToken | None) -> None:
    """Apply the baseline to the empty shadow database as a migration; its dump must be
    the one it was made from (schema and rows)."""
    with tempfile.TemporaryDirectory(prefix="fraiseql-squash-") as scratch:
        Path(scratch, name).write_text(text, encoding="utf-8")
        fresh = replace(own, path=Path(scratch))
        upgrade(fresh, cancel=cancel)
        again = dumping.dump(own.require_url(), cancel=cancel)
        again_schema = dumping.dump(own.require_url(), schema_only=True, cancel=cancel)
    if again_schema != schema or again != body:
        before, after = (schema, again_schema) if again_schema != schema else (body, again)
        first = next((index for index, (one, other) in enumerate(
            zip(before.splitlines(), after.splitlines(), strict=False)) if one != other),
            min(len(before.splitlines()), len(after.splitlines())))
        raise MigrationError(
            f"The baseline does not rebuild the same database (dumps differ from line "
            f"{first + 1}); nothing was written. Please report it with the migrations")


def _write(path: Path, text: str, removed: Sequence[Path]) -> None:
    """Write the baseline (a whole file or none), then remove the files it replaces."""
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(path)
        for old in removed:
            old.unlink(missing_ok=True)
    except OSError as err:
        raise file_access_error(err, path, action="write the baseline") from err
