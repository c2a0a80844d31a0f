"""``fraiseql migrate check`` on the folder: what makes a migrations folder unfit to merge.

The rules (:func:`duplicate_numbers`, :func:`branches`, ...) are pure: they take file
names, parsed migrations and revisions and return problems.  :func:`check_folder`
gathers their inputs from the folder and from git (:mod:`.gitbase` asks git what a base
ref holds) and lints; :func:`lint_files` is ``fraiseql migrate lint``'s reading of the
files.  What a database adds is the engine's (``engine.plan.database_problems``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..errors import MigrationError, MigrationFileError, UsageError, shown_path
from ..settings import LintOptions
from ..sql.names import MigrationName, parse_filename
from ..sql.parse import ParsedMigration, normalize_text, parse_migration
from ..sql.statements import split_statements
from . import gitbase, loader
from .loader import Revision

if TYPE_CHECKING:
    from ..sql.lint import Finding

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
        found.append((None, branched_message([head.filename for head in heads])))
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


def branched_message(heads: Sequence[str]) -> str:
    """Why ``up`` applies nothing while the folder has several heads, and the way out."""
    return (
        f"The migrations folder has {len(heads)} heads ({', '.join(heads)}): two lines of "
        "history that nothing joins, so `fraiseql migrate up` applies nothing and `alembic "
        "upgrade head` refuses. Make one follow the other (its `down_revision`, or a "
        "`-- revises: <id>` header line in a SQL file), or join them with `alembic merge "
        "heads -m merge`"
    )


@dataclass(frozen=True)
class FolderCheck:
    """What :func:`check_folder` found in the folder (and against ``base``)."""

    problems: tuple[Problem, ...]
    migrations: int  # files in the folder
    new_files: tuple[str, ...] | None  # files not on ``base`` (None without one)
    #: No problem of layout (numbers, names, parsing, the chain): a database can be checked
    layout_ok: bool
    branched: tuple[Problem, ...]  # the branch rule's problems (a database may say it better)


def check_folder(
    folder: Path, *, base: str | None, lock_timeout: str,
    python_chain: Callable[[], list[Revision]], lint: LintOptions | None = None,
) -> FolderCheck:
    """Duplicate numbers, misnamed files, files that do not parse, a chain that does not
    link, lint findings; with ``base`` (a git ref), files new relative to it must be
    numbered above its highest number, and only new files are linted.  ``python_chain``
    gives the chain, base first, when the folder holds ``.py`` revisions (Alembic's)."""
    listing = loader.list_folder(folder, check_numbers=False)

    def shown(filename: str) -> str:
        return shown_path(folder / filename)

    problems = [
        Problem(shown(name.filename), 1, message)
        for name, message in duplicate_numbers([name for name, _ in listing.migrations])
    ]
    problems += [Problem(shown(path.name), 1, misnamed(path.name)) for path in listing.ignored]
    parsed: list[ParsedMigration] = []
    for name, path in listing.migrations:
        try:
            migration = loader.read_migration(name, path)
            for section in (migration.up, migration.down):
                if section is not None:
                    split_statements(migration, section)
        except MigrationFileError as err:
            problems.append(Problem(shown(name.filename), err.line or 1, err.detail))
            continue
        parsed.append(migration)
    chain: list[Revision] | None = None
    if not problems:
        try:
            chain = (python_chain() if loader.has_python_revisions(folder)
                     else _sql_chain(parsed))
        except MigrationError as err:
            problems.append(Problem(None, 1, err.message))
    layout_ok = not problems

    new_files: tuple[str, ...] | None = None
    on_base: set[str] | None = None
    if base is not None:
        on_base = gitbase.files_at(folder, base)
        new_files = tuple(name.filename for name, _ in listing.migrations
                          if name.filename not in on_base)
        changed, renamed = changes_against_base(folder, base, on_base, parsed)
        problems += [
            Problem(shown(name.filename), 1, message)
            for name, message in numbering_against_base(
                [name for name, _ in listing.migrations if name.filename not in renamed],
                on_base, base,
            )
        ]
        problems += changed
    branched = [Problem(shown(filename) if filename else None, 1, message)
                for filename, message in branches(chain or [], on_base, base)]
    problems += branched
    from ..sql.lint import lint_migrations, policy_from  # lazy: pglast, for check and lint only

    lint = lint or LintOptions()
    policy = policy_from(lint)
    report = {name.filename for name, path in listing.migrations
              if (new_files is None or name.filename in new_files)
              and not excluded(path, lint.exclude)}
    problems += [
        Problem(shown(finding.file), finding.line,
                f"{finding.rule} {finding.slug}: {finding.message}. Instead: {finding.fix}")
        for finding in lint_migrations(parsed, lock_timeout=lock_timeout, report=report,
                                       policy=policy)
        if policy.fails(finding.severity)
    ]
    return FolderCheck(tuple(problems), len(listing.migrations), new_files, layout_ok,
                       tuple(branched))


def _sql_chain(parsed: Sequence[ParsedMigration]) -> list[Revision]:
    """The chain of a folder of SQL files alone, linked by our loader."""
    parents = loader.link_chain(parsed, [])
    return [Revision(migration.name.version,
                     (parent,) if (parent := parents[migration.name.version]) else (),
                     migration.name.filename)
            for migration in parsed]


def changes_against_base(
    folder: Path, base: str, on_base: set[str], parsed: Sequence[ParsedMigration],
) -> tuple[list[Problem], set[str]]:
    """Migrations that ``base`` has and this branch deleted, renamed or whose up section
    it edited; and the new names of the renamed ones.

    Compared with the fork point (``git merge-base``), as a pull request's diff is: a file
    merged into ``base`` after the branch was made is not "deleted" by the branch.  A new
    file with a deleted file's number is a rename: databases track the number, so the
    advice is to rename it back, never to renumber it (which would apply it twice).  A
    file a baseline's header lists (``squash``) is deleted on purpose; the baseline
    counts among the renamed ones (it keeps the replaced file's number).
    """
    current = {migration.name.filename: migration for migration in parsed}
    by_version = {migration.name.version: migration.name.filename for migration in parsed}
    # files a baseline replaced (``squash``): their deletion is the point of it
    squashed = {entry.filename: migration.name.filename
                for migration in parsed for entry in migration.squashes}
    fork = gitbase.fork_point(folder, base)
    problems = []
    renamed: set[str] = set()
    for filename, change in sorted(gitbase.changed_since(folder, fork).items()):
        name = parse_filename(filename)
        if name is None or filename not in on_base:
            continue
        if change == "D" and filename in squashed:
            renamed.add(squashed[filename])  # the baseline is not a file to renumber
            continue
        new_name = by_version.get(name.version)
        if change == "D" and new_name is not None and new_name not in on_base:
            renamed.add(new_name)
            problems.append(Problem(shown_path(folder / new_name), 1, (
                f"renames {filename}, which {base} has already: databases know a migration by "
                f"its number and file, so rename it back to {filename} (a new change goes "
                "in a new migration)")))
            continue
        before: ParsedMigration | None = None
        if change == "M":
            try:
                before = parse_migration(
                    name, normalize_text(gitbase.content_at(folder, fork, filename), filename))
            except MigrationFileError:
                before = None
        where = shown_path(folder / filename)
        message = changed_since_base(where, change, before, current.get(filename), base)
        if message is not None:
            problems.append(Problem(where, 1, message))
    return problems, renamed


def excluded(path: Path, patterns: Sequence[str]) -> bool:
    """Whether a glob of ``exclude`` (lint settings) matches the file's name or its path
    as seen from the current directory (the project's)."""
    if not patterns:
        return False
    shown = Path(shown_path(path.resolve())).as_posix()
    return any(fnmatch.fnmatchcase(path.name, pattern) or fnmatch.fnmatchcase(shown, pattern)
               for pattern in patterns)


def changed_files(folder: Path, base: str) -> set[str]:
    """Names of the files of ``folder`` added or changed since ``base``: not on ``base``, or
    modified in the working tree since this branch left it (``git merge-base``), as a pull
    request's diff shows them."""
    on_base = gitbase.files_at(folder, base)
    modified = gitbase.changed_since(folder, gitbase.fork_point(folder, base))
    return {path.name for path in folder.iterdir() if path.name not in on_base} | {
        name for name, change in modified.items() if change == "M"}


class LintRun(NamedTuple):
    """What :func:`lint_files` found, and the files it reported on (a named tuple: it is
    built at lint's start, where a frozen dataclass costs about 0.5 ms)."""

    findings: list[Finding]
    files: list[Path]  # the files reported on


def lint_files(
    folder: Path, files: Sequence[Path], *, lock_timeout: str,
    options: LintOptions | None = None, base: str | None = None,
) -> LintRun:
    """Lint ``files`` (all of the folder when none is given; with ``base``, a git ref,
    only those added or changed since it), naming files as seen from the current
    directory, under the project's lint ``options`` (files it excludes are read, not
    reported).  Every migration of the folder is read in order, so that what an earlier
    file did counts; a chosen file that does not parse raises MigrationFileError, another
    one is passed over."""
    from ..sql.lint import lint_migrations, policy_from  # lazy: pglast, for check and lint only

    options = options or LintOptions()
    policy = policy_from(options)

    chosen: list[tuple[MigrationName, Path]] = []
    for path in files:
        name = parse_filename(path.name)
        if name is None:
            raise UsageError(
                f"{path} is not a migration file: names look like 001_initial_schema.sql"
            )
        chosen.append((name, path))
    in_folder = (
        list(loader.list_folder(folder, check_numbers=False).migrations)
        if not files or folder.is_dir()
        else []
    )
    if not files:
        chosen = in_folder
    if base is not None:
        changed = changed_files(folder, base)
        inside = folder.resolve()
        chosen = [(name, path) for name, path in chosen
                  if path.name in changed and path.resolve().parent == inside]
    resolved: dict[Path, Path] = {}  # each path resolved once (a system call per part)
    if in_folder:  # the folder's files: the folder resolved once, then one lstat a file
        folder_real = folder.resolve()
        for _, path in in_folder:
            if not path.is_symlink():  # (a link is followed by resolve(), below)
                resolved[path] = folder_real / path.name

    def real(path: Path) -> Path:
        found = resolved.get(path)
        if found is None:
            found = resolved[path] = path.resolve()
        return found

    seen = {real(path) for _, path in in_folder}
    order = sorted([*in_folder, *(item for item in chosen if real(item[1]) not in seen)],
                   key=lambda item: (item[0].number, item[0].filename))
    reported = {real(path) for _, path in chosen if not excluded(path, options.exclude)}
    parsed: list[ParsedMigration] = []
    shown: dict[str, str] = {}
    try:
        cwd: Path | None = Path.cwd()  # once, not per file
    except OSError:  # the current directory is gone: paths are shown as they are
        cwd = None
    folders: dict[Path, Path] = {}  # a folder as shown: one relative_to per folder

    def shown_as(path: Path) -> str:
        folder = folders.get(path.parent)
        if folder is None:
            folder = folders[path.parent] = Path(shown_path(path.parent, cwd) if cwd
                                                 else str(path.parent))
        return str(folder / path.name)

    for name, path in order:
        try:
            migration = loader.read_migration(name, path)
        except MigrationFileError:
            if real(path) in reported:
                raise
            continue  # read only for context
        parsed.append(migration)
        if real(path) in reported:
            shown[name.filename] = shown_as(real(path))
    findings = lint_migrations(parsed, lock_timeout=lock_timeout, report=shown, policy=policy)
    return LintRun([replace(finding, file=shown[finding.file]) for finding in findings],
                   [path for _, path in chosen if real(path) in reported])
