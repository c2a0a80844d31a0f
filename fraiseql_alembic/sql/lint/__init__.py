"""Lint migrations for operations that hurt a busy production database.

Pure: :func:`lint_migrations` takes parsed migrations and returns findings; nothing
here reads files or talks to a database.  Each statement of a file's up section is
parsed with PostgreSQL's own parser (pglast) and the rules match the syntax tree;
the SQL statements of a ``DO`` block are parsed out of its PL/pgSQL body and go
through the same rules.  docs/lint.md describes every rule: why it is dangerous and
what to write instead.

The package: :mod:`.rules` and :mod:`.hazards` (the rules), :mod:`.ruletable` (their
ids, slugs and severities), :mod:`.state` (what is carried from statement to statement
and file to file), :mod:`.plpgsql` (DO blocks), :mod:`.directives` (``-- fraiseql-lint:
ignore``), :mod:`.policy` (the project's severities and disabled rules), :mod:`.nodes`
and :mod:`.fastast` (the parse trees); this module runs them over the files.

"""

from __future__ import annotations

from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass

from ...errors import MigrationFileError
from ..parse import ParsedMigration
from ..pgparse import ParseError
from ..statements import split_statements
from .directives import read_directives, silenced
from .fastast import parse_statements
from .hazards import hazard_hits, remember_hazards
from .nodes import ast
from .plpgsql import do_hits
from .policy import LintPolicy, policy_from
from .rules import statement_hits
from .ruletable import BY_ID, RULES, SEVERITIES, Rule, rule_named
from .state import Catalog, FileState, Hit, Session, position, remember

__all__ = ["RULES", "SEVERITIES", "Finding", "LintPolicy", "Rule", "lint_migrations",
           "policy_from", "rule_named"]


@dataclass(frozen=True)
class Finding:
    """One problem: where (file name, 1-based line and column), which rule, how serious
    (error, warning or info), why, what instead."""

    file: str
    line: int
    column: int
    rule: str
    slug: str
    message: str
    fix: str
    severity: str = "warning"

    def text(self) -> str:
        """``003_x.sql:12:1: error FQL001 index-not-concurrent: <why>. Instead: <fix>``."""
        return (
            f"{self.file}:{self.line}:{self.column}: {self.severity} {self.rule} {self.slug}: "
            f"{self.message}. Instead: {self.fix}"
        )


def lint_migrations(
    migrations: Sequence[ParsedMigration],
    *,
    lock_timeout: str = "10s",
    report: Container[str] | None = None,
    policy: LintPolicy | None = None,
) -> list[Finding]:
    """Findings for the up sections of ``migrations`` (in the order they run).

    ``lock_timeout`` is the project's setting (``RunOptions.lock_timeout``).  Files
    whose name is not in ``report`` are read only for what later files depend on
    (constraints); ``None`` reports every file.  A reported file that the splitter
    refuses (e.g. transaction control) raises MigrationFileError; one read only for
    context is skipped.  ``policy`` (default: every rule at its default severity)
    turns rules off, changes their severity and names the PostgreSQL release assumed.
    """
    policy = policy or LintPolicy()
    catalog = Catalog()
    session = Session(lock_timeout, "lock_timeout in the project settings",
                      postgres_version=policy.postgres_version, timezone=policy.timezone)
    findings: list[Finding] = []
    for migration in migrations:
        reported = report is None or migration.name.filename in report
        try:
            found = _lint_file(migration, catalog, session, policy)
        except MigrationFileError:
            if reported:
                raise
            continue  # context only: its own lint run reports it
        if reported:
            findings.extend(found)
    return findings


def _lint_file(migration: ParsedMigration, catalog: Catalog, session: Session,
               policy: LintPolicy) -> list[Finding]:
    findings = [finding for finding in _file_findings(migration, catalog, session, policy)
                if finding.rule not in policy.disabled]
    findings.sort(key=lambda finding: (finding.line, finding.column, finding.rule))
    return findings


def _file_findings(migration: ParsedMigration, catalog: Catalog, session: Session,
                   policy: LintPolicy) -> list[Finding]:
    section = migration.up
    statements = split_statements(migration, section).statements
    layout, directive_hits = read_directives(migration)
    findings = [_finding(migration, hit.location, hit, policy) for hit in directive_hits]
    timeouts = dict(section.timeouts)
    if "lock_timeout" in timeouts:
        source = f"lock_timeout:{timeouts['lock_timeout']} on the `-- migrate:up` marker"
        effective = timeouts["lock_timeout"]
    else:
        source, effective = session.lock_timeout_source, session.lock_timeout
    state = FileState(migration, session, effective, source, session.search_path,
                      session.timezone)
    for index, statement in enumerate(statements):
        state.line = statement.line
        state.in_transaction = section.transaction is True or (
            section.transaction is None and not statement.non_transactional
        )
        if not state.in_transaction:
            state.transaction_ended()
        hits = list(_sql_hits(statement.sql, state, catalog))
        if not hits:
            continue
        hits = [hit for hit in hits if hit.rule not in layout.file_rules]
        if not hits:
            continue
        quiet = silenced(migration, statements, index, layout)
        findings.extend(_finding(migration, statement.offset + hit.location, hit, policy)
                        for hit in hits if hit.rule not in quiet)
    return findings


def _finding(migration: ParsedMigration, offset: int, hit: Hit, policy: LintPolicy) -> Finding:
    """The finding of ``hit``, at character ``offset`` of the file text."""
    line, column = position(migration.text, offset)
    rule = BY_ID[hit.rule]
    return Finding(migration.name.filename, line, column, rule.id, rule.slug, hit.message,
                   hit.fix, policy.severity(rule.id))


def _sql_hits(sql: str, state: FileState, catalog: Catalog) -> Iterator[Hit]:
    """Hits of the statement(s) in ``sql``, located inside ``sql``; updates the state."""
    try:
        nodes = parse_statements(sql)
    except ParseError as err:
        index = err.args[1] if len(err.args) > 1 and isinstance(err.args[1], int) else 0
        yield Hit(
            "FQL011",
            f"PostgreSQL's parser rejects this statement ({err.args[0] if err.args else err})",
            "fix the SQL; `fraiseql migrate up` would fail here",
            max(0, min(index, len(sql))),
        )
        return
    for node in nodes:
        yield from statement_hits(node, state, catalog)
        yield from hazard_hits(node, state, catalog)
        if isinstance(node, ast.DoStmt):
            yield from do_hits(node, sql, lambda query: _sql_hits(query, state, catalog))
        remember_hazards(node, state, catalog)
        remember(node, state, catalog)
