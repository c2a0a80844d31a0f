"""Scaffolding: the migrations folder (``init``) and new migration files (``create``).

Files only, never the database.  The texts are package data (``templates/``, read with
:func:`template`); the CQRS template's rendering is :mod:`.cqrs`'s.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ..errors import MigrationLayoutError, UsageError, file_access_error
from ..sql.names import MAX_SLUG_LENGTH, SLUG_RE, parse_filename, suggest_slug
from . import cqrs as cqrs_template
from . import loader


def template(name: str) -> str:
    """Text of a file shipped in templates/ (package data ``fraiseql_alembic.templates``)."""
    from importlib.resources import files  # lazy: ~2 ms that only init and create need

    return files("fraiseql_alembic.templates").joinpath(name).read_text(encoding="utf-8")


@dataclass(frozen=True)
class InitResult:
    folder: Path
    created: tuple[Path, ...]

    @property
    def already_initialized(self) -> bool:
        return not self.created


def init(path: Path) -> InitResult:
    """Create the migrations folder and its README.md; change nothing if both exist."""
    if path.exists() and not path.is_dir():
        raise MigrationLayoutError(
            f"--path {path} is a file, not a folder; point --path at the migrations folder"
        )
    created: list[Path] = []
    readme = path / "README.md"
    try:
        if not path.exists():
            path.mkdir(parents=True)
            created.append(path)
        if not readme.exists():
            readme.write_text(template("migrations_README.md"), encoding="utf-8")
            created.append(readme)
    except OSError as err:
        raise file_access_error(err, action="create", writing=True) from err
    return InitResult(path, tuple(created))


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid migration name, else raise UsageError."""
    if not name.strip():
        raise UsageError("Migration name is empty; give a snake_case name like add_comments_table")
    if len(name) > MAX_SLUG_LENGTH:
        raise UsageError(
            f"Migration name is {len(name)} characters long; keep it under "
            f"{MAX_SLUG_LENGTH + 1} (e.g. add_user_bio_column)"
        )
    if not SLUG_RE.match(name):
        suggestion = suggest_slug(name)
        hint = f" (e.g. {suggestion})" if suggestion else ""
        raise UsageError(
            f"Migration name {name!r} is not snake_case: use lower-case letters, digits and _, "
            f"starting with a letter{hint}"
        )
    return name


def create(
    path: Path,
    name: str,
    *,
    today: date | None = None,
    cqrs: str | None = None,
    sync_history: bool = False,
    heads: Callable[[], tuple[str, ...]] = tuple,
    parent: str | None = None,
    up: str | None = None,
    down: str | None = None,
    header: Sequence[str] = (),
) -> Path:
    """Write ``NNN_<name>.sql`` with the next number; return its path.

    With ``cqrs`` (an entity) the file holds the CQRS template (:mod:`.cqrs`).  ``heads``
    gives the heads of the folder's chain; it is asked only when the folder holds
    ``.py`` revisions, whose parents only Alembic reads: the new file then names the
    single head in a ``-- revises:`` line when numbering alone would not follow it.
    ``parent`` names the revision the file follows instead (``heads`` is not asked).

    ``up`` and ``down`` fill the two sections of the plain template, and each line of
    ``header`` becomes a comment line above ``-- migrate:up`` (``alembic revision``,
    autogenerate).
    """
    validate_name(name)
    if cqrs is not None and (up is not None or down is not None or header):
        raise UsageError("A CQRS migration is written from its template: no up/down text")
    if cqrs is not None:
        cqrs_template.validate_entity(cqrs)
    elif sync_history:
        raise UsageError("--sync-history belongs to a CQRS migration: add --cqrs ENTITY")
    if path.is_file():
        loader.list_folder(path)  # the same message as every other verb
    if not path.is_dir():
        raise MigrationLayoutError(
            f"Migrations folder {path} does not exist; run `fraiseql migrate init` first "
            "or pass --path"
        )
    listing = loader.list_folder(path)
    numbered = [(migration.number, migration.version) for migration, _ in listing.migrations]
    widths = [len(migration.version) for migration, _ in listing.migrations]
    for entry in path.iterdir():  # numbered .py revisions count too
        stem = entry.name.split("_", 1)[0]
        if entry.suffix == ".py" and loader.is_numeric_id(stem) and "_" in entry.name:
            numbered.append((int(stem), stem))
            widths.append(len(stem))
    number = max(numbered, default=(0, ""))[0] + 1
    version = str(number).zfill(max([3, *widths[-1:]]))
    filename = f"{version}_{name}.sql"
    assert parse_filename(filename) is not None
    values = {
        "version": version,
        "title": name.replace("_", " ").capitalize(),
        "date": (today or date.today()).isoformat(),
    }
    if cqrs is not None:
        content = cqrs_template.render(
            {file: template(file) for file in cqrs_template.TEMPLATES},
            entity=cqrs, sync_history=sync_history, **values,
        )
    else:
        content = _filled(string.Template(template("migration.sql")).substitute(values),
                          up, down, header)
    highest = max(numbered, default=(0, None))[1]
    if parent is not None:
        found: tuple[str, ...] = (parent,)
    else:
        found = heads() if loader.has_python_revisions(path) else ()
    if len(found) == 1 and found[0] != highest:  # after the title line
        content = content.replace("\n", f"\n-- revises: {found[0]}\n", 1)
    return _write_new(path / filename, content)


_UP = "-- migrate:up\n"
_DOWN = "-- migrate:down\n"


def _filled(content: str, up: str | None, down: str | None, header: Sequence[str]) -> str:
    """The plain template with ``header`` comment lines and the two sections' text."""
    assert content.count(_UP) == 1 and content.count(_DOWN) == 1
    if header:
        lines = [line if line.startswith("--") else f"-- {line}".rstrip()
                 for text in header for line in (text.splitlines() or [""])]
        content = content.replace(_UP, "\n".join(lines) + "\n\n" + _UP, 1)
    if up is not None and up.strip():
        content = content.replace(_UP + "\n", _UP + up.strip("\n") + "\n", 1)
    if down is not None and down.strip():
        content = content.replace(_DOWN + "\n", _DOWN + down.strip("\n") + "\n", 1)
    return content


def _write_new(target: Path, content: str) -> Path:
    """Write a file that must not exist yet; a partial one (disk full) is removed."""
    opened = False
    try:
        with open(target, "x", encoding="utf-8") as handle:
            opened = True
            handle.write(content)
    except OSError as err:
        if opened:  # a partial file would look like a migration
            with suppress(OSError):
                target.unlink()
        raise file_access_error(err, target, action="create", writing=True) from err
    return target
