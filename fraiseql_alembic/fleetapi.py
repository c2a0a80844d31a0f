"""Fleets as library functions: read a targets file (:func:`fleet`) and run one verb of
:mod:`.api` on each of its targets (:func:`on_fleet`), as ``--targets FILE`` does.

Documented and used as ``fraiseql_alembic.api.fleet`` / ``api.on_fleet`` (:mod:`.api`
re-exports every public name); it lives apart to keep :mod:`.api` to one function per
verb.  The verbs over a fleet (``api.status_fleet``, ``api.drift_fleet``) are in
:mod:`.api`, since they call its verbs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .engine.fleet import (
    FAILED,
    SUCCEEDED,
    FleetResult,
    TargetOutcome,
    prepare_schema,
    resolve_targets,
    run_fleet,
)
from .engine.tracing import fleet_span
from .errors import ConnectError, UsageError, shown_path
from .project import loader
from .project.targets import Shard, Target, in_shard, only_wave, read_targets, schema_url, waves_of
from .settings import Settings

if TYPE_CHECKING:
    from .engine.cancel import CancelToken


R = TypeVar("R")

#: ``--jobs`` when not given: targets migrated at the same time.  Each holds one to three
#: connections on its server (the lock's, on which SQL files run; Alembic's; a lease's
#: heartbeat).
DEFAULT_JOBS = 4


@dataclass(frozen=True)
class Fleet:
    """The targets of a fleet run, after queries, ``wave`` and ``shard`` were applied."""

    file: Path
    targets: tuple[Target, ...]
    waves: tuple[str, ...] = ()  # the file's declared wave order


def fleet(
    file: Path,
    *,
    wave: str | None = None,
    shard: Shard | None = None,
    environ: Mapping[str, str] | None = None,
) -> Fleet:
    """Read the targets file ``file`` (:mod:`.project.targets`), run its queries on their
    control databases, and keep the targets of ``wave`` and of ``shard``, if given."""
    environ = os.environ if environ is None else environ
    parsed = read_targets(file, environ)
    targets = resolve_targets(parsed, environ)
    if wave is not None:
        targets = only_wave(targets, wave, parsed.waves, shown_path(file))
    if shard is not None:
        targets = in_shard(targets, shard)
    for target in targets:
        schema_url(target)  # a URL that cannot take the schema is told before anything runs
    return Fleet(file, tuple(targets), parsed.waves)


def target_settings(settings: Settings, target: Target) -> Settings:
    """``settings`` for one target of a fleet: its URL instead of the configured one; with
    a ``schema``, that schema first on every session's search_path (so alembic_version and
    what the migrations create are there) and the history tables and the lock's key in it."""
    return replace(settings, database_url=schema_url(target), url_source=f"target {target.name}",
                   history_schema=target.schema or settings.history_schema)


def on_fleet(
    settings: Settings,
    fleet: Fleet,
    verb: Callable[[Settings, Target], R],
    *,
    jobs: int = DEFAULT_JOBS,
    max_failures: int | None = 1,
    in_waves: bool = True,
    create_schemas: bool = False,
    check_schemas: bool = True,
    on_end: Callable[[TargetOutcome[R]], None] | None = None,
    cancel: CancelToken | None = None,
) -> FleetResult[R]:
    """Call ``verb(target's settings, target)`` for every target of ``fleet``, ``jobs`` at
    a time; ``verb`` is one of this module's functions, so that each target behaves
    exactly as a single run (its own connection, lock, checks, timeouts, retries)::

        api.on_fleet(settings, fleet, lambda s, target: api.upgrade(s, cancel=token),
                     cancel=token)

    A target whose ``verb`` raises is ``failed`` (its one line kept, masked).  Once
    ``max_failures`` targets failed (None: never) no new target starts and the running
    ones finish.  ``in_waves``: wave by wave, a wave starting only if every target before
    it succeeded.  ``cancel`` (the token ``verb`` passes on) stops every running target
    and raises FleetInterrupted holding the result.  A folder with ``.py`` revisions runs
    one target at a time (Alembic keeps its running context in module globals).

    A target with a ``schema`` runs with :func:`target_settings`; its schema and
    ``alembic_version`` in it must exist, or, with ``create_schemas`` (``up``), are made
    (``check_schemas=False``: ``verb`` sees to it, as :func:`status_fleet`).
    """
    if jobs < 1:
        raise UsageError(f"jobs= must be 1 or more, got {jobs}")
    if settings.run.pooled and any(target.schema is not None for target in fleet.targets):
        raise UsageError("targets with a schema cannot use --lock lease: a pooler in "
                         "transaction mode does not keep each client's search_path; connect "
                         "directly (or through a session pool) with --lock advisory")
    warnings: tuple[str, ...] = ()
    if jobs > 1 and loader.has_python_revisions(settings.path):
        jobs, warnings = 1, ("the folder holds .py revisions, which Alembic runs one "
                             f"database at a time: running with 1 job instead of {jobs}",)
    with fleet_span(settings, len(fleet.targets), jobs) as span:
        result = run_fleet(
            waves_of(fleet.targets, fleet.waves) if in_waves else [(None, fleet.targets)],
            lambda target: _on_target(settings, target, verb, create_schemas, check_schemas),
            jobs=jobs, max_failures=max_failures, cancel=cancel, on_end=on_end,
            warnings=warnings,
        )
        succeeded, failed = len(result.having(SUCCEEDED)), len(result.having(FAILED))
        span.ended(succeeded, failed, len(result.outcomes) - succeeded - failed)
    return result


def _on_target(settings: Settings, target: Target, verb: Callable[[Settings, Target], R],
               create_schema: bool, check_schema: bool) -> R:
    own = target_settings(settings, target)
    try:
        if target.schema is not None and check_schema:
            prepare_schema(own.require_url(), target.schema, create=create_schema)
        return verb(own, target)
    except ConnectError as err:  # "Check the url of target NAME in the targets file"
        named = own.naming_source(err)
        if named is err:
            raise
        raise named from err
