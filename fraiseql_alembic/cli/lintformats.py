"""What ``fraiseql migrate lint`` prints: its findings in each ``--format``, and the summary.

``text`` and ``github`` print a line per finding and the summary; ``json``, ``sarif``
(SARIF 2.1.0, for GitHub code scanning) and ``gitlab`` (GitLab Code Quality) print one
JSON document and nothing else, so that the output can be saved as the report.  Lines
and columns are 1-based; columns count characters (Unicode code points).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .. import __version__
from ..errors import plural
from ..lintapi import LintReport
from .marks import CHECK, PROBLEM_MARK, github_annotation

if TYPE_CHECKING:
    from ..sql.lint import Finding

#: --format values; docs/lint.md describes each.
FORMATS = ("text", "json", "sarif", "gitlab", "github")
#: The formats that print one JSON document (no summary line).
DOCUMENTS = ("json", "sarif", "gitlab")
_GITHUB_LEVEL = {"error": "error", "warning": "warning", "info": "notice"}
_SARIF_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
_GITLAB_SEVERITY = {"error": "major", "warning": "minor", "info": "info"}


def render_findings(report: LintReport, output_format: str) -> list[str]:
    """The lines that show the findings of ``report`` in ``output_format``."""
    if output_format == "github":
        return [github_annotation(
            _GITHUB_LEVEL[finding.severity], finding.file, finding.line,
            f"{finding.message}. Instead: {finding.fix}",
            column=finding.column, title=f"{finding.rule} {finding.slug}",
        ) for finding in report.findings]
    if output_format == "json":
        return [json.dumps(_json(report), indent=2, ensure_ascii=False)]
    if output_format == "sarif":
        return [json.dumps(_sarif(report), indent=2, ensure_ascii=False)]
    if output_format == "gitlab":
        return [json.dumps(_gitlab(report.findings), indent=2, ensure_ascii=False)]
    return [finding.text() for finding in report.findings]


def summary(report: LintReport) -> str:
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


def _json(report: LintReport) -> dict[str, Any]:
    return {
        "findings": [{
            "file": finding.file, "line": finding.line, "column": finding.column,
            "rule": finding.rule, "slug": finding.slug, "severity": finding.severity,
            "message": finding.message, "fix": finding.fix,
        } for finding in report.findings],
        "files": len(report.files),
        "fail_on": report.fail_on,
        "failing": len(report.failing),
    }


def _uri(path: str) -> str:
    """A relative path as a URI reference (GitHub resolves it from the repository root),
    an absolute one as a file: URI."""
    posix = PurePath(path).as_posix()
    quoted = quote(posix, safe="/")
    return f"file://{quoted}" if posix.startswith("/") else quoted


def _sarif(report: LintReport) -> dict[str, Any]:
    """One SARIF 2.1.0 log with one run (the rule table, then the results)."""
    from ..sql.lint.ruletable import RULES  # lazy: the lint that just ran loaded it

    index = {rule.id: number for number, rule in enumerate(RULES)}
    rules = [{
        "id": rule.id,
        "name": rule.slug,
        "shortDescription": {"text": rule.summary},
        "help": {"text": f"docs/lint.md, section {rule.id} {rule.slug}: why it is risky "
                         "and what to write instead"},
        "defaultConfiguration": {"level": _SARIF_LEVEL[rule.severity]},
    } for rule in RULES]
    results = [{
        "ruleId": finding.rule,
        "ruleIndex": index[finding.rule],
        "level": _SARIF_LEVEL[finding.severity],
        "message": {"text": f"{finding.message}. Instead: {finding.fix}"},
        "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": _uri(finding.file)},
            "region": {"startLine": finding.line, "startColumn": finding.column},
        }}],
        "partialFingerprints": {"fraiseqlLint/v1": fingerprint},
    } for finding, fingerprint in zip(report.findings, _fingerprints(report.findings),
                                      strict=True)]
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "fraiseql-lint",
                "version": __version__,
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }


def _gitlab(findings: Sequence[Finding]) -> list[dict[str, Any]]:
    """GitLab Code Quality: its documented fields, one issue per finding."""
    return [{
        "description": f"{finding.rule} {finding.slug}: {finding.message}. Instead: {finding.fix}",
        "check_name": f"{finding.rule} {finding.slug}",
        "fingerprint": fingerprint,
        "severity": _GITLAB_SEVERITY[finding.severity],
        "location": {"path": finding.file, "lines": {"begin": finding.line}},
    } for finding, fingerprint in zip(findings, _fingerprints(findings), strict=True)]


def _fingerprints(findings: Sequence[Finding]) -> list[str]:
    """A stable id per finding: file, rule and message (not the line, which moves when
    lines are added above), and the count of the same ones before it."""
    import hashlib  # lazy: ~1.5 ms (OpenSSL) that only --format gitlab needs

    seen: Counter[str] = Counter()
    found = []
    for finding in findings:
        key = f"{finding.file}\0{finding.rule}\0{finding.message}"
        seen[key] += 1
        found.append(hashlib.sha256(f"{key}\0{seen[key]}".encode()).hexdigest())
    return found
