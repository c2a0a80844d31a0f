"""``fraiseql migrate lint`` as a library function: :func:`lint` and its :class:`LintReport`.

Documented and used as ``fraiseql_alembic.api.lint`` (:mod:`.api` re-exports both names);
it lives in a module of its own because it needs none of what the other verbs do: lint
reads files (:mod:`.project.check`) and parses them (:mod:`.sql.lint`), and never
reaches the engine, the Alembic bridge or fleet code.  ``fraiseql migrate lint`` imports
this module rather than :mod:`.api`, so that a run starts without loading them.

    >>> from fraiseql_alembic import api, settings
    >>> report = api.lint(settings.resolve("migrations", None))   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .project import check as rules
from .settings import Settings

if TYPE_CHECKING:
    from .sql.lint import Finding


@dataclass(frozen=True)
class LintReport:
    findings: tuple[Finding, ...]
    files: tuple[Path, ...]  # the files linted
    fail_on: str = "warning"  # the least severity that fails (the project's ``fail_on``)

    @property
    def failing(self) -> tuple[Finding, ...]:
        """The findings at or above ``fail_on``: a run with any exits 1."""
        levels = ("info", "warning", "error")
        return tuple(finding for finding in self.findings
                     if levels.index(finding.severity) >= levels.index(self.fail_on))


def lint(settings: Settings, files: Sequence[Path] = (), *,
         base: str | None = None) -> LintReport:
    """Lint migration files (all of the folder, or ``files``) for risky operations.

    Every migration of the folder is read in order, so that what an earlier file
    did (e.g. a validated ``CHECK (col IS NOT NULL)``) counts; findings are
    reported for ``files`` only, and with ``base`` (a git ref) only for those added
    or changed since it (as ``check --base`` sees them).  The project's
    ``lock_timeout`` setting decides rule FQL009, its lint settings
    (``settings.lint``: disabled rules, severities, ``postgres_version``, excluded
    paths, ``fail_on``) the rest.  A file that cannot be parsed raises
    MigrationFileError; an unknown rule in the settings, or a base git cannot read,
    ConfigError.  Findings name files as seen from the current directory.
    """
    run = rules.lint_files(settings.path, files, lock_timeout=settings.run.lock_timeout,
                           options=settings.lint, base=base)
    return LintReport(tuple(run.findings), tuple(run.files), settings.lint.fail_on)
