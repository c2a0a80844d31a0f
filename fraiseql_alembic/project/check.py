"""The rules of ``fraiseql migrate check``: what makes a migrations folder unfit to merge.

Pure: functions here take file names, parsed migrations and status rows and return
problems.  :func:`fraiseql_alembic.api.check` gathers their inputs (the folder, git,
the database) and :mod:`fraiseql_alembic.project.gitbase` asks git what a base ref holds.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ..engine import status as status_view
from ..sql.names import MigrationName, parse_filename
from ..sql.parse import ParsedMigration


@dataclass(frozen=True)
class Problem:
    """One reason not to merge: ``file:line: message`` (``file`` None: not about one file)."""

    file: str | None
    line: int
    message: str

    def text(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.file else self.message


def duplicate_numbers(names: Sequence[MigrationName]) -> list[tuple[MigrationName, str]]:
    """Each file that shares its number with an earlier one, and what to do about it."""
    first: dict[int, MigrationName] = {}
    top = max((name.number for name in names), default=0)
    found: list[tuple[MigrationName, str]] = []
    for name in sorted(names, key=lambda item: (item.number, item.filename)):
        if name.number not in first:
            first[name.number] = name
            continue
        top += 1
        found.append((name, (
            f"shares number {name.version} with {first[name.number].filename} (two branches "
            "merged?); renumber the one that is not applied anywhere yet, e.g. to "
            f"{name.renumbered(top)}"
        )))
    return found


def misnamed(filename: str) -> str:
    """Why a file that looks like a migration is not loaded, with a name that would be."""
    hint = ""
    match = re.match(r"^(?P<number>\d+)[_\-\s]*(?P<rest>.*?)(?:\.sql)?$", filename, re.I)
    if match is not None:
        slug = "_".join(re.sub(r"[^a-z0-9]+", " ", match.group("rest").lower()).split())
        candidate = f"{match.group('number')}_{slug}.sql"
        if slug and parse_filename(candidate) is not None:
            hint = f": rename it to {candidate}"
    return (
        "is not loaded: migration files are named NNN_snake_case_name.sql"
        + (hint or " (rename it, or move it out of the migrations folder)")
    )


def numbering_against_base(
    local: Sequence[MigrationName], base_files: Collection[str], ref: str
) -> list[tuple[MigrationName, str]]:
    """New files (not on ``ref``) numbered at or below the highest number on ``ref``.

    Such a file would run out of order on databases that already have the base's
    migrations: ``up`` refuses it there.  Each one gets the next free number.
    """
    on_base: list[tuple[int, str]] = []
    for filename in base_files:
        name = parse_filename(filename)
        if name is not None:
            on_base.append((name.number, name.version))
        elif filename.endswith(".py") and re.match(r"^\d+_", filename):
            stem = filename.split("_", 1)[0]
            on_base.append((int(stem), stem))
    if not on_base:
        return []
    top_number, top_version = max(on_base)
    next_free = max([top_number, *(name.number for name in local)]) + 1
    found: list[tuple[MigrationName, str]] = []
    for name in sorted(local, key=lambda item: (item.number, item.filename)):
        if name.filename in base_files or name.number > top_number:
            continue
        found.append((name, (
            f"numbered {name.version} but {ref} already has {top_version}: renumber it to "
            f"{name.renumbered(next_free)} so that it runs after the migrations already merged"
        )))
        next_free += 1
    return found


@dataclass(frozen=True)
class Revision:
    """What the branch rule needs of a revision: its id, parents and file name."""

    revision: str
    parents: tuple[str, ...]
    filename: str


def branches(
    revisions: Sequence[Revision], base_files: Collection[str] | None = None,
    ref: str | None = None,
) -> list[tuple[str | None, str]]:
    """(file or None, message) when the chain has several heads (lines nothing joins).

    ``up`` applies nothing then.  With ``base_files`` (what ``ref`` holds), a new revision
    that branches off where ``ref`` already has a later migration was made before that one
    was merged: it is named, with the parent it must take to run after what is merged.
    """
    children: dict[str | None, list[Revision]] = {}
    for revision in revisions:
        for parent in revision.parents or (None,):
            children.setdefault(parent, []).append(revision)
    heads = [revision for revision in revisions if revision.revision not in children]
    if len(heads) < 2:
        return []
    by_id = {revision.revision: revision for revision in revisions}

    def line_head(start: Revision) -> Revision | None:
        found = [head for head in heads if start.revision in _below(head, by_id)]
        return found[0] if len(found) == 1 else None

    found: list[tuple[str | None, str]] = []
    if base_files is not None and ref is not None:
        for parent, siblings in children.items():
            merged = [sibling for sibling in siblings if sibling.filename in base_files]
            if len(siblings) < 2 or not merged:
                continue
            parent_name = by_id[parent].filename if parent in by_id else "<base>"
            head = line_head(merged[0])
            for sibling in siblings:
                if sibling.filename in base_files:
                    continue
                follow = head.revision if head is not None else "<the head>"
                relink = (f"add a `-- revises: {follow}` header line to it"
                          if sibling.filename.endswith(".sql")
                          else f"set `down_revision = \"{follow}\"` in it")
                found.append((sibling.filename, (
                    f"follows {parent_name}, but {ref} already has {merged[0].filename} after "
                    f"it, so databases that ran that would skip this one (two heads): {relink} "
                    "so that it runs after the migrations already merged"
                )))
    if not found:
        found.append((None, status_view.branched_message([head.filename for head in heads])))
    return found


def _below(head: Revision, by_id: dict[str, Revision]) -> set[str]:
    """``head`` and every revision under it."""
    seen: set[str] = set()
    stack = [head.revision]
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            revision = by_id.get(current)
            stack.extend(revision.parents if revision is not None else ())
    return seen


def changed_since_base(
    filename: str, status: str, before: ParsedMigration | None, after: ParsedMigration | None,
    ref: str,
) -> str | None:
    """Why a file that ``ref`` already has must not change on this branch, or None.

    Merged migrations may be applied anywhere, so deleting one or editing its up section
    is a problem; editing only its down section (or comments in a way the checksum
    ignores) is fine, as it is for ``up``'s checksum check.  ``before``/``after`` are the
    parsed versions on ``ref`` and in the folder (None when one does not parse).
    """
    if status == "D":
        return (f"was deleted, but {ref} has it, so databases may have applied it; restore "
                f"it (git checkout {ref} -- {filename}) and undo its change in a new migration")
    if before is not None and after is not None and before.up_checksum == after.up_checksum:
        return None
    return (f"its up section changed since {ref}, where it is merged already, so databases "
            "may have applied the old version; restore it and put the change in a new "
            "migration (editing the down section alone is fine)")


def database_problems(report: status_view.StatusReport) -> list[tuple[str | None, int, str]]:
    """(file name, line, message) for each row of the status that ``up`` would refuse or
    that needs a person: modified, missing, never ran here, not in alembic_version, merged
    out of order, partial; and (None, 1, message) for rows of alembic_version that cannot
    all be right."""
    found: list[tuple[str | None, int, str]] = []
    if report.version_rows_problem is not None:
        found.append((None, 1, report.version_rows_problem))
    for row in report.rows:
        when = f" on {row.applied_at:%Y-%m-%d %H:%M:%S}" if row.applied_at else ""
        if row.state == status_view.MODIFIED:
            found.append((row.filename, 1, (
                f"changed after it was applied to the database{when} (checksum mismatch); "
                "restore it from git and put the change in a new migration"
            )))
        elif row.state == status_view.MISSING:
            found.append((row.filename, 1, (
                f"was applied to the database{when} but the file is missing from the folder; "
                "restore it from git"
            )))
        elif row.state == status_view.UNRECORDED:
            found.append((row.filename, 1, (
                "never ran on the database, yet later migrations did (merged late?); "
                "renumber it above the last applied migration"
            )))
        elif row.state == status_view.OUT_OF_ORDER or (
            row.state == status_view.UNTRACKED and row.fork is not None
        ):
            found.append((row.filename, 1, status_view.out_of_order_message(row)))
        elif row.state == status_view.UNTRACKED:
            found.append((row.filename, 1, (
                f"fraiseql_migrations says it was applied{when} but alembic_version does not; "
                "see `fraiseql migrate status` and docs/troubleshooting.md"
            )))
        elif row.partial is not None:
            direction = "up" if row.state == status_view.PENDING else "down"
            found.append((row.filename, row.partial.next_line, (
                f"partly {'applied' if direction == 'up' else 'rolled back'} on the database; "
                f"`fraiseql migrate {direction}` resumes at this line"
            )))
    return found
