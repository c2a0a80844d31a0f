"""Find migration files in a folder and link them into one chain of revisions.

The loader reads files; it does not talk to the database.  Linking is pure:
``link_chain`` gets the SQL files and the Alembic ``.py`` revisions already in the
folder and decides each SQL file's parent.
"""

from __future__ import annotations

import bisect
import itertools
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..errors import (
    MigrationFileError,
    MigrationLayoutError,
    file_access_error,
    os_reason,
    shown_path,
)
from ..sql.names import NUMERIC_ID_RE, MigrationName, parse_filename
from ..sql.names import is_numeric_id as is_numeric_id  # api.py calls loader.is_numeric_id
from ..sql.parse import ParsedMigration, normalize_text, parse_migration

# Names that look like an attempt at a migration but will not be loaded.
_ALMOST_SQL_RE = re.compile(r"^\d+[_\-].*|.*\.sql$", re.IGNORECASE)


class FolderListing(NamedTuple):
    """The migration files of a folder, in order, and the names that were passed over.

    A named tuple, not a frozen dataclass: every command (lint too) loads this module,
    and a frozen dataclass costs about 0.5 ms to build at import."""

    migrations: tuple[tuple[MigrationName, Path], ...]
    ignored: tuple[Path, ...]


def has_python_revisions(folder: Path) -> bool:
    """Whether the folder holds ``.py`` files (hand-written Alembic revisions)."""
    with os.scandir(folder) as entries:
        return any(entry.name.endswith(".py") and entry.is_file() for entry in entries)


_LISTINGS: dict[tuple[str, int], FolderListing] = {}


def list_folder(folder: Path, *, check_numbers: bool = True) -> FolderListing:
    """List ``NNN_slug.sql`` files in ``folder`` ordered by number.

    Raises MigrationLayoutError when two files share a number (naming both),
    unless ``check_numbers`` is false (``lint`` and ``check`` report it).  A
    listing is kept while the folder's mtime is unchanged (adding, removing or
    renaming a file changes it), so one command scans the folder once.
    """
    try:
        key = (str(folder.resolve()), folder.stat().st_mtime_ns)
    except OSError:
        key = None
    cached = _LISTINGS.get(key) if key is not None else None
    if cached is None:
        cached = _list_folder(folder)
        if key is not None:
            _LISTINGS[key] = cached
    if check_numbers:
        check_unique_numbers([name for name, _ in cached.migrations])
    return cached


def _list_folder(folder: Path) -> FolderListing:
    if not folder.exists():
        if folder.is_symlink():
            raise MigrationLayoutError(
                f"Migrations folder {shown_path(folder)} is a symbolic link to "
                f"{os.readlink(folder)}, which does not exist or loops; point it at the "
                "migrations folder or pass --path"
            )
        raise MigrationLayoutError(
            f"Migrations folder {folder} does not exist; run `fraiseql migrate init` "
            "or pass --path"
        )
    if not folder.is_dir():
        raise MigrationLayoutError(
            f"--path {folder} is a file, not a folder; point --path at the migrations folder"
        )
    found: list[tuple[MigrationName, Path]] = []
    ignored: list[Path] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                name = parse_filename(entry.name)
                if name is None and (not _ALMOST_SQL_RE.match(entry.name)
                                     or entry.name.endswith((".py", ".pyc"))):
                    continue
                if not _is_file(entry, named_like_a_migration=name is not None):
                    continue
                if name is not None:
                    found.append((name, Path(entry.path)))
                else:
                    ignored.append(Path(entry.path))
    except OSError as err:
        raise file_access_error(err, folder, action="read the migrations folder") from err
    found.sort(key=lambda item: (item[0].number, item[0].filename))
    return FolderListing(tuple(found), tuple(sorted(ignored)))


def _is_file(entry: os.DirEntry[str], *, named_like_a_migration: bool) -> bool:
    """Whether ``entry`` is a file (or a link to one).  Anything else named like a
    migration is an error naming it, never silently passed over: a folder, a symbolic
    link to nothing, a link loop."""
    try:
        if entry.is_file():
            return True
    except OSError as err:  # ELOOP: a symbolic link loop
        if not named_like_a_migration:
            return False
        where = shown_path(entry.path)
        raise MigrationLayoutError(
            f"{where} is named like a migration but cannot be read: "
            f"{os_reason(err, where)}"
        ) from err
    if not named_like_a_migration:
        return False
    where = shown_path(entry.path)  # only for the error: a path per file costs (lint)
    if entry.is_dir():
        what = "a folder, not a file"
        fix = "move it out of the migrations folder, or rename it so it does not end in .sql"
    elif entry.is_symlink():
        what = f"a symbolic link to {os.readlink(entry.path)}, which does not exist"
        fix = "restore the file it points to, or remove the link"
    else:
        what = "not a regular file"
        fix = "move it out of the migrations folder"
    raise MigrationLayoutError(f"{where} is named like a migration but is {what}; {fix}")


def check_unique_numbers(names: Sequence[MigrationName]) -> None:
    """Refuse two files with the same number (two branches merged)."""
    for previous, current in itertools.pairwise(names):
        if previous.number == current.number:
            raise MigrationLayoutError(
                f"Two migrations share number {current.version}: {previous.filename} and "
                f"{current.filename}. Renumber the one that is not applied yet "
                "(e.g. `git mv` it to the next free number)."
            )


def read_migration(name: MigrationName, path: Path) -> ParsedMigration:
    """Read and parse one migration file."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise MigrationFileError(
            shown_path(path), f"cannot be read: {os_reason(err, shown_path(path))}"
        ) from err
    return parse_migration(name, normalize_text(raw, name.filename))


@dataclass(frozen=True)
class Revision:
    """A revision as linking and ``check``'s branch rule see it: its id, its parents
    (``down_revision`` as a tuple) and its file name."""

    revision: str
    parents: tuple[str, ...]
    filename: str


def link_chain(
    sql: Sequence[ParsedMigration], python: Iterable[Revision]
) -> dict[str, str | None]:
    """Decide the parent revision of each SQL migration; returns {version: parent}.

    - ``-- revises: <id>`` in the header wins.
    - Otherwise the nearest lower number among SQL files and numeric ``.py`` ids.
    - The lowest SQL file with nothing lower chains onto the single head of the
      existing hex-id ``.py`` history (teams adopting us keep their Alembic history).

    A parent depends only on the numbers and on the file's own header, never on which
    hex-id revisions happen to be in the folder: a ``.py`` revision merged late with
    ``down_revision = "003"`` starts a second head beside ``004``; it never slips in
    below ``004``, which databases may have applied already.  A SQL file meant to follow
    a hex-id revision names it with ``-- revises:`` (``create`` writes that line).
    """
    python = list(python)
    by_number: dict[int, tuple[str, str]] = {}
    for migration in sql:
        by_number[migration.name.number] = (migration.name.version, migration.name.filename)
    for script in python:
        if NUMERIC_ID_RE.match(script.revision):
            number = int(script.revision)
            if number in by_number:
                raise MigrationLayoutError(
                    f"Two migrations share number {script.revision}: {by_number[number][1]} and "
                    f"{script.filename}. Renumber the one that is not applied yet."
                )
            by_number[number] = (script.revision, script.filename)
    numbers = sorted(by_number)
    legacy_heads = _legacy_heads(python)
    sql_ids = {migration.name.version for migration in sql}
    known = sql_ids | {script.revision for script in python}
    parents: dict[str, str | None] = {}
    for migration in sql:
        if migration.revises is not None:
            if migration.revises not in known:
                raise MigrationLayoutError(
                    f"{migration.name.filename}: `-- revises: {migration.revises}` names no "
                    "revision in the migrations folder; use an id that `alembic history` lists"
                )
            parents[migration.name.version] = migration.revises
            continue
        position = bisect.bisect_left(numbers, migration.name.number)
        if position > 0:
            parents[migration.name.version] = by_number[numbers[position - 1]][0]
        elif len(legacy_heads) == 1:
            parents[migration.name.version] = legacy_heads[0]
        elif len(legacy_heads) > 1:
            raise MigrationLayoutError(
                f"{migration.name.filename} could chain onto several existing Alembic heads "
                f"({', '.join(legacy_heads)}); name its parent with a `-- revises: <id>` "
                "header line"
            )
        else:
            parents[migration.name.version] = None
    return parents


def _legacy_heads(python: Sequence[Revision]) -> list[str]:
    """Heads of the hex-id history that no numbered revision is part of.

    A hex-id revision is legacy when every revision below it is a hex-id ``.py``
    revision too; one made with ``alembic revision`` on top of a numbered revision
    (or of a SQL file) is not a place for the first SQL file to adopt.
    """
    hex_ids = {script.revision for script in python if not NUMERIC_ID_RE.match(script.revision)}
    children: dict[str, list[str]] = {}
    for script in python:
        for parent in script.parents:
            children.setdefault(parent, []).append(script.revision)
    not_legacy = [
        script.revision
        for script in python
        if script.revision in hex_ids
        and any(parent not in hex_ids for parent in script.parents)
    ]
    seen = set(not_legacy)
    while not_legacy:  # everything above a numbered revision is not legacy either
        for child in children.get(not_legacy.pop(), ()):
            if child not in seen:
                seen.add(child)
                not_legacy.append(child)
    referenced = set(children)
    return sorted(hex_ids - seen - referenced)
