"""What ``fraiseql migrate lint`` prints: its findings in each ``--format``, and the summary."""

from __future__ import annotations

from collections import Counter

from .. import api
from ..errors import plural
from .render import CHECK, PROBLEM_MARK, github_annotation

#: --format values; docs/lint.md describes each.
FORMATS = ("text", "github")
_GITHUB_LEVEL = {"error": "error", "warning": "warning", "info": "notice"}


def render_findings(report: api.LintReport, output_format: str) -> list[str]:
    """The lines that show the findings of ``report`` in ``output_format``."""
    if output_format == "github":
        return [github_annotation(
            _GITHUB_LEVEL[finding.severity], finding.file, finding.line,
            f"{finding.message}. Instead: {finding.fix}",
            column=finding.column, title=f"{finding.rule} {finding.slug}",
        ) for finding in report.findings]
    return [finding.text() for finding in report.findings]


def summary(report: api.LintReport) -> str:
    """The last line: how many findings of each severity, and whether they fail."""
    linted = plural(len(report.files))
    if not report.findings:
        return f"{CHECK} No lint findings in {linted}"
    count = Counter(finding.severity for finding in report.findings)
    kinds = ", ".join(
        plural(count[level], level) if level != "info" else f"{count[level]} info"
        for level in ("error", "warning", "info") if count[level]
    )
    found = plural(len(report.findings), "lint finding")
    if report.failing:
        return (f"{PROBLEM_MARK} {found} ({kinds}; {linted} linted); fix them, or silence one "
                "with `-- fraiseql-lint: ignore <rule>` above its statement (docs/lint.md)")
    return (f"{CHECK} {found} below --fail-on {report.fail_on} ({kinds}; {linted} linted)")
