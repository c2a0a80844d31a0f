"""``alembic revision`` in our environment: a numbered SQL file instead of a hex-id ``.py``.

The plugin (:mod:`.plugin`) wraps Alembic's ``RevisionContext.generate_scripts``, the
step of ``command.revision`` that turns the revision directives (after any
``process_revision_directives`` hook) into files.  In a project that uses our
environment (or opted in with ``fraiseql_revision_format = sql``), each directive
becomes ``NNN_<slug>.sql``, written by :func:`fraiseql_alembic.project.scaffold.create`
exactly as ``fraiseql migrate create`` writes it.  A ``.py`` revision is still made when
``--rev-id`` is given, with ``--autogenerate`` (its file is the autogenerate code's
business), or with ``fraiseql_revision_format = python``.

:func:`write_sql_revision` is the writer, for autogenerate too (it passes the rendered
up and down SQL and header lines).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from alembic.operations.ops import MigrationScript
from alembic.script.base import ScriptDirectory
from alembic.script.revision import Revision

from ..errors import UsageError
from ..project import scaffold
from ..sql.names import MAX_SLUG_LENGTH, suggest_slug

#: What a refusal says about getting a ``.py`` revision instead.
PYTHON_HINT = (
    "pass --rev-id <id> (or set fraiseql_revision_format = python) for a .py revision"
)


def write_sql_revision(
    directory: ScriptDirectory,
    message: str | None,
    *,
    up: str | None = None,
    down: str | None = None,
    header: Sequence[str] = (),
    head: str = "head",
    splice: bool = False,
    version_path: str | os.PathLike[str] | None = None,
) -> Path:
    """Write ``NNN_<slug of message>.sql`` into the directory's version location; return it.

    The file is the one ``fraiseql migrate create`` writes (the next number, the same
    template, both markers), with ``up`` and ``down`` as its sections and each line of
    ``header`` as a comment above ``-- migrate:up``.  ``head`` and ``splice`` mean what
    they mean to ``alembic revision``: the file follows that revision, in a
    ``-- revises:`` line when numbering alone would not put it there.  Raises one of our
    errors (or Alembic's ``CommandError`` for a ``head`` it cannot resolve) when it cannot
    be written.
    """
    path, _ = _write(directory, message, up=up, down=down, header=header, head=head,
                     splice=splice, version_path=version_path)
    return path


def slug_of(message: str | None) -> str:
    """The file name part for a revision message: ``"Add user bio!"`` -> ``add_user_bio``."""
    slug = suggest_slug(message or "")
    if slug is None:
        shown = "no -m" if not message else f"-m {message!r}"
        raise UsageError(
            f"A SQL revision is named after its message, and {shown} makes no file name: "
            'pass words, like -m "add user bio"'
        )
    if len(slug) > MAX_SLUG_LENGTH:  # cut at a word, as Alembic's truncate_slug_length does
        slug = slug[: MAX_SLUG_LENGTH + 1].rsplit("_", 1)[0]
    return slug


def write_directive(
    directory: ScriptDirectory, directive: MigrationScript
) -> tuple[Path, str | None]:
    """One revision directive of ``alembic revision`` written as a SQL file: its path and
    the revision it follows.  Refuses what a SQL file cannot take (``UsageError``)."""
    if directive.branch_label:
        raise UsageError(
            "--branch-label: a SQL revision has no branch labels (its id is its number); "
            + PYTHON_HINT
        )
    if directive.depends_on:
        raise UsageError(
            "--depends-on: a SQL revision has one parent and no other dependencies; "
            + PYTHON_HINT
        )
    if any(not ops.is_empty() for ops in directive.upgrade_ops_list):
        raise UsageError(
            "The revision directives hold operations, which a SQL file cannot take; "
            + PYTHON_HINT
        )
    return _write(directory, directive.message, head=directive.head or "head",
                  splice=bool(directive.splice), version_path=directive.version_path)


def _write(
    directory: ScriptDirectory,
    message: str | None,
    *,
    up: str | None = None,
    down: str | None = None,
    header: Sequence[str] = (),
    head: str,
    splice: bool,
    version_path: str | os.PathLike[str] | None,
) -> tuple[Path, str | None]:
    folder = _folder(directory, version_path)
    name = slug_of(message)
    parent = _parent(directory, head, splice)
    path = scaffold.create(folder, name, parent=parent, up=up, down=down, header=header)
    return path, parent


def _folder(directory: ScriptDirectory, version_path: str | os.PathLike[str] | None) -> Path:
    """The one version location SQL files are numbered in (``--version-path`` must be it)."""
    # private Alembic API: the resolved version_locations, as Alembic itself reads them
    locations = [Path(location) for location in directory._version_locations]  # noqa: SLF001
    if len(locations) != 1:
        raise UsageError(
            f"SQL revisions are numbered in one folder, and version_locations lists "
            f"{len(locations)} ({', '.join(str(location) for location in locations)}); "
            + PYTHON_HINT
        )
    folder = locations[0]
    if version_path is not None and Path(version_path).absolute() != folder.absolute():
        raise UsageError(
            f"--version-path {version_path}: SQL revisions go in {folder}, the one version "
            "location; leave --version-path out"
        )
    return folder


def _parent(directory: ScriptDirectory, head: str, splice: bool) -> str | None:
    """The revision the new file follows: ``--head`` resolved as Alembic resolves it."""
    # private Alembic API: Alembic's own messages for revisions it cannot resolve
    with directory._catch_revision_errors(  # noqa: SLF001
        multiple_heads=(
            "Multiple heads are present; please specify the head revision on which the "
            "new revision should be based, or perform a merge."
        )
    ):
        found = directory.revision_map.get_revisions(head)
    revisions = [revision for revision in found if isinstance(revision, Revision)]
    if len(revisions) > 1:
        raise UsageError(
            f"--head {head} names {len(revisions)} revisions, and a SQL revision has one "
            "parent: name one of them, or join them with `alembic merge heads`"
        )
    if not revisions:
        if directory.revision_map.heads:
            raise UsageError(
                f"--head {head}: a SQL revision cannot start a second base (its number "
                "puts it after the migrations already in the folder); name a revision "
                "to follow"
            )
        return None
    parent = revisions[0]
    if not splice and not parent.is_head:
        raise UsageError(
            f"Revision {parent.revision} is not a head revision; please specify --splice "
            "to create a new branch from this revision"
        )
    return parent.revision
