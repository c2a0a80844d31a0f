"""The schema snapshot (``schema.sql``): written after ``up``/``down`` (``--dump-schema``),
compared with what the migrations build by ``check``; see docs/drift.md."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..engine.shadow import shadow_database
from ..engine.snapshot import SnapshotError, dump_schema_text
from ..errors import os_reason, shown_path
from ..project import snapshot as snapshot_text
from ..project.check import Problem
from ..settings import Settings, schema_file
from .state import status

if TYPE_CHECKING:
    from ..engine.cancel import CancelToken

#: How to go on when the snapshot cannot be written after up/down.
WITHOUT_SNAPSHOT = ("or run without it (drop --dump-schema, or pass --no-dump-schema when "
                    "dump_schema is configured)")


@dataclass(frozen=True)
class SchemaSnapshot:
    """A snapshot written by :func:`dump_schema`."""

    path: Path
    applied: tuple[str, ...]  # the migrations applied to the database it was dumped from
    changed: bool  # False: the file held this text already and was left as it was


def dump_schema(
    settings: Settings,
    path: Path | None = None,
    *,
    cwd: Path | None = None,
    cancel: CancelToken | None = None,
) -> SchemaSnapshot:
    """Write the normalised schema of ``settings.database_url`` to ``path`` (what ``up
    --dump-schema`` does after the migrations; see docs/drift.md#schema-snapshot).

    ``path`` None: the project's ``dump_schema`` path (pyproject.toml or alembic.ini in
    ``cwd``), else ``schema.sql`` beside the migrations folder.  The text is ``pg_dump
    --schema-only --no-owner`` without what changes between runs and machines, and a
    trailing list of the applied migrations; the file is replaced in one step, and left
    untouched when it holds that text already.  A missing or too old pg_dump, or a dump or
    write that fails, raises SnapshotError.
    """
    target = path if path is not None else schema_file(settings.path, "", cwd=cwd)
    assert target is not None  # a flag's "" always names a file
    text, applied = _snapshot(settings, instead=WITHOUT_SNAPSHOT,
                              cancel=cancel)
    return SchemaSnapshot(target, applied, _write(target, text))


def dump_after(settings: Settings, path: Path | None, done: str,
               cancel: CancelToken | None) -> SchemaSnapshot | None:
    """:func:`dump_schema` at the end of ``up``/``down`` (None: no ``path``); a failure
    says what the run did (``done``: "2 migrations were applied")."""
    if path is None:
        return None
    try:
        return dump_schema(settings, path, cancel=cancel)
    except SnapshotError as err:
        raise SnapshotError(f"{done}, but the schema snapshot {shown_path(path)} was not "
                            f"written: {err.message}") from err


def schema_file_problems(
    settings: Settings,
    path: Path,
    *,
    shadow_url: str | None,
    build: Callable[[Settings], object],
    cancel: CancelToken | None = None,
) -> tuple[Problem, ...]:
    """``check``'s problems with the snapshot at ``path``: missing, unreadable, or not what
    the migrations build (``build`` applies them to a shadow database, as for ``check
    --models``; the snapshot of that database is compared line by line; ``cancel`` stops
    its pg_dump)."""
    shown = shown_path(path)
    regenerate = (f"write it with `fraiseql migrate up --dump-schema {shown}` on a database "
                  "that has every migration and nothing else")
    try:
        written = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return (Problem(shown, 1, f"missing: there is no schema snapshot at this path; "
                        f"{regenerate}"),)
    except OSError as err:
        return (Problem(shown, 1, f"cannot be read: {os_reason(err, shown)}"),)
    except UnicodeDecodeError:
        return (Problem(shown, 1, f"is not UTF-8 text; {regenerate}"),)
    with shadow_database(shadow_url, live_url=settings.database_url) as shadow:
        own = replace(settings, database_url=shadow, url_source="the shadow database")
        build(own)
        expected, _ = _snapshot(own, instead="or run check with --no-schema-file",
                                cancel=cancel)
    difference = snapshot_text.first_difference(written, expected)
    if difference is None:
        return ()
    return (Problem(shown, difference.line, f"stale schema snapshot: {difference.describe()}; "
                    f"{regenerate}"),)


def _snapshot(settings: Settings, *, instead: str, cancel: CancelToken | None
              ) -> tuple[str, tuple[str, ...]]:
    """The snapshot text of ``settings.database_url`` and the migrations applied to it."""
    url = settings.require_url()
    applied = tuple(row.filename for row in status(settings).rows if row.applied)
    dumped = dump_schema_text(url, instead=instead, lock_timeout=settings.run.lock_timeout,
                              cancel=cancel)
    return snapshot_text.normalise(dumped, applied), applied


def _write(path: Path, text: str) -> bool:
    """Put ``text`` at ``path`` in one step (a ``.partial`` file renamed); False when the
    file holds it already."""
    shown = shown_path(path)
    try:
        if path.read_bytes() == text.encode("utf-8"):
            return False
    except FileNotFoundError:
        pass
    except OSError as err:
        raise SnapshotError(f"Cannot read the schema snapshot {shown}: "
                            f"{os_reason(err, shown)}") from err
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(text.encode("utf-8"))
        partial.replace(path)
    except OSError as err:
        with suppress(OSError):
            partial.unlink(missing_ok=True)
        raise SnapshotError(f"Cannot write the schema snapshot {shown}: "
                            f"{os_reason(err, shown_path(path.parent), writing=True)}"
                            ) from err
    return True
