"""The rules' table: each rule's id, slug, summary and default severity.

What policies, ignore comments and report formats need to know about the rules, apart
from how they match (:mod:`.rules`, :mod:`.hazards`).  docs/lint.md describes every rule.
"""

from __future__ import annotations

from dataclasses import dataclass

ERROR, WARNING, INFO = "error", "warning", "info"
#: Severities from the least to the most serious.
SEVERITIES = (INFO, WARNING, ERROR)


@dataclass(frozen=True)
class Rule:
    id: str
    slug: str
    summary: str
    severity: str  # the default: error, warning or info (a project's policy may change it)


RULES: tuple[Rule, ...] = (
    Rule("FQL001", "index-not-concurrent", "index built without CONCURRENTLY on an existing table",
         ERROR),
    Rule("FQL002", "not-null-without-default", "ADD COLUMN ... NOT NULL without a DEFAULT",
         ERROR),
    Rule("FQL003", "volatile-default", "ADD COLUMN whose default rewrites the table", ERROR),
    Rule("FQL004", "set-not-null", "SET NOT NULL without a validated CHECK (col IS NOT NULL)",
         WARNING),
    Rule("FQL005", "constraint-without-not-valid",
         "FOREIGN KEY / CHECK added to an existing table without NOT VALID", WARNING),
    Rule("FQL006", "alter-column-type", "ALTER COLUMN ... TYPE on an existing table", ERROR),
    Rule("FQL007", "drop-without-down",
         "DROP TABLE / DROP COLUMN / DROP SCHEMA ... CASCADE / TRUNCATE in a file with no down "
         "section", WARNING),
    Rule("FQL008", "rename",
         "RENAME of a column, table or schema, or SET SCHEMA, that the application uses",
         WARNING),
    Rule("FQL009", "missing-lock-timeout", "ACCESS EXCLUSIVE lock with lock_timeout disabled",
         WARNING),
    Rule("FQL010", "unknown-ignore", "`-- fraiseql-lint:` comment naming no known rule", ERROR),
    Rule("FQL011", "syntax-error", "statement PostgreSQL's parser rejects", ERROR),
    Rule("FQL012", "blocking-maintenance",
         "VACUUM FULL / CLUSTER / REINDEX without CONCURRENTLY on an existing table", ERROR),
    Rule("FQL013", "new-enum-value-used",
         "enum value added by ALTER TYPE ... ADD VALUE used in the same transaction", ERROR),
    Rule("FQL014", "validate-in-same-transaction",
         "VALIDATE CONSTRAINT in the transaction that added it NOT VALID", ERROR),
    Rule("FQL015", "drop-index-not-concurrent", "DROP INDEX without CONCURRENTLY", WARNING),
    Rule("FQL016", "detach-partition-not-concurrent",
         "DETACH PARTITION without CONCURRENTLY", WARNING),
    Rule("FQL017", "table-rewrite",
         "ALTER TABLE ... SET TABLESPACE / SET LOGGED / SET UNLOGGED / SET ACCESS METHOD",
         ERROR),
    Rule("FQL018", "refresh-not-concurrent",
         "REFRESH MATERIALIZED VIEW without CONCURRENTLY", WARNING),
    Rule("FQL019", "enum-rename-value", "ALTER TYPE ... RENAME VALUE", WARNING),
    Rule("FQL020", "destructive",
         "DROP NOT NULL, DROP CONSTRAINT, DROP DATABASE / VIEW / TYPE / FUNCTION / ... "
         "(policy)", INFO),
    Rule("FQL021", "backfill-with-ddl",
         "whole-table UPDATE / DELETE / INSERT ... SELECT in the transaction of DDL on it",
         WARNING),
    Rule("FQL022", "json-column", "column of type json rather than jsonb", WARNING),
)
BY_ID = {rule.id: rule for rule in RULES}
_BY_NAME = {**{rule.id.lower(): rule for rule in RULES}, **{rule.slug: rule for rule in RULES}}


def rule_named(name: str) -> Rule | None:
    """The rule of an id (``FQL001``, any case) or slug (``index-not-concurrent``)."""
    return _BY_NAME.get(name.strip().lower())
