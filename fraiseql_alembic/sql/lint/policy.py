"""A project's lint policy: rules turned off, severities changed, the PostgreSQL release
assumed, and the least severity that fails a run (``[tool.fraiseql.lint]``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import ConfigError
from ...settings import DEFAULT_POSTGRES_VERSION, LintOptions
from .ruletable import BY_ID, SEVERITIES, WARNING, rule_named


@dataclass(frozen=True)
class LintPolicy:
    disabled: frozenset[str] = frozenset()  # rule ids
    severities: tuple[tuple[str, str], ...] = field(default=())  # (rule id, severity)
    postgres_version: int = DEFAULT_POSTGRES_VERSION
    fail_on: str = WARNING
    timezone: str | None = None  # the TimeZone migrations run with, if the project says

    def severity(self, rule: str) -> str:
        """The severity of ``rule`` (an id) under this policy."""
        return dict(self.severities).get(rule, BY_ID[rule].severity)

    def fails(self, severity: str) -> bool:
        """Whether a finding of ``severity`` fails the run (exit 1)."""
        return SEVERITIES.index(severity) >= SEVERITIES.index(self.fail_on)


def policy_from(options: LintOptions) -> LintPolicy:
    """The policy of the project's lint settings; a ConfigError names an unknown rule."""

    def rule_id(name: str, key: str) -> str:
        rule = rule_named(name)
        if rule is None:
            raise ConfigError(
                f"{key} in {options.source} names {name!r}, which is no lint rule; use a rule "
                "id or slug from docs/lint.md (FQL001, index-not-concurrent)"
            )
        return rule.id

    return LintPolicy(
        disabled=frozenset(rule_id(name, "disable") for name in options.disable),
        severities=tuple((rule_id(name, f"severity.{name}"), level)
                         for name, level in options.severity),
        postgres_version=options.postgres_version,
        fail_on=options.fail_on,
        timezone=options.timezone,
    )
