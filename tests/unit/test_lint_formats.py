"""`lint --format json|sarif|gitlab|github|text`: every format names the same 1-based line and
column (CRLF files, non-ASCII text before the finding, multi-line statements, statements
after comments); SARIF validates against the official SARIF 2.1.0 JSON schema
(tests/data/sarif-schema-2.1.0.json, OASIS, as published in the oasis-tcs/sarif-spec
repository), GitLab Code Quality has its documented fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import Cli

SCHEMA = Path(__file__).resolve().parent.parent / "data" / "sarif-schema-2.1.0.json"

# (file name, bytes, [(rule, line, column)] the findings must have)
FILES = [
    ("001_crlf.sql",
     b"-- Migration 001: crlf\r\n-- migrate:up\r\nCREATE TABLE tb_new (a int);\r\n\r\n"
     b"CREATE INDEX idx_a\r\n    ON tb_user (a);\r\n",
     [("FQL001", 5, 1)]),
    ("002_unicode.sql",
     "-- Migration 002: caf\u00e9 \u2615\n/* na\u00efve */ ALTER TABLE \"t\u00ebst\u2615\"\n"
     "  ADD COLUMN \u00e9 int NOT NULL;\n".encode(),
     [("FQL002", 3, 14)]),
    ("003_comments.sql",
     "-- first \u2615\n/* a block\n   comment */\n-- another\n\n   ALTER TABLE tb_user "
     "ADD COLUMN b json; SELECT 1;\nDROP INDEX idx_old;\n".encode(),
     [("FQL022", 6, 35), ("FQL015", 7, 1)]),
]


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    monkeypatch.chdir(tmp_path)
    for name, raw, _ in FILES:
        (migrations / name).write_bytes(raw)
    return migrations


def expected() -> list[tuple[str, str, int, int]]:
    return [(f"migrations/{name}", rule, line, column)
            for name, _, found in FILES for rule, line, column in found]


def test_text_and_json_name_the_right_line_and_column(folder: Path, cli: Cli) -> None:
    result = cli("migrate", "lint", "--format", "json")
    assert result.exit_code == 1
    document = json.loads(result.output)  # one document, no summary line
    assert [(item["file"], item["rule"], item["line"], item["column"])
            for item in document["findings"]] == expected()
    assert set(document["findings"][0]) == {"file", "line", "column", "rule", "slug",
                                            "severity", "message", "fix"}
    assert (document["files"], document["fail_on"], document["failing"]) == (3, "warning", 4)
    text = cli("migrate", "lint").output.splitlines()
    assert [line.split(": ", 1)[0] for line in text[:-1]] == [
        f"{file}:{line}:{column}" for file, _, line, column in expected()]
    # --exit-zero and the document formats: still one document, exit 0
    assert json.loads(cli("migrate", "lint", "--format", "json", "--exit-zero").output)


def test_sarif_is_valid_sarif_2_1_0_with_the_right_regions(folder: Path, cli: Cli) -> None:
    result = cli("migrate", "lint", "--format", "sarif")
    assert result.exit_code == 1
    log = json.loads(result.output)
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.validate(log, schema, cls=jsonschema.Draft4Validator)
    (run,) = log["runs"]
    assert run["columnKind"] == "unicodeCodePoints"
    rules = run["tool"]["driver"]["rules"]
    found = [(
        result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        result["ruleId"],
        result["locations"][0]["physicalLocation"]["region"]["startLine"],
        result["locations"][0]["physicalLocation"]["region"]["startColumn"],
    ) for result in run["results"]]
    assert found == expected()
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    levels = {result["ruleId"]: result["level"] for result in run["results"]}
    assert levels == {"FQL001": "error", "FQL002": "error", "FQL022": "warning",
                      "FQL015": "warning"}
    # a document the schema refuses is refused: the check can fail
    run["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(log, schema, cls=jsonschema.Draft4Validator)


def test_sarif_with_no_findings_and_paths_that_need_escaping(folder: Path, cli: Cli) -> None:
    for path in folder.iterdir():
        path.unlink()
    (folder / "001_ok.sql").write_text("SELECT 1;\n", encoding="utf-8")
    log = json.loads(cli("migrate", "lint", "--format", "sarif").output)
    assert log["runs"][0]["results"] == []
    spaced = folder.parent / "my migrations"
    spaced.mkdir()
    (spaced / "001_x.sql").write_text("DROP INDEX i;\n", encoding="utf-8")
    log = json.loads(cli("migrate", "lint", "--format", "sarif", "--path", "my migrations").output)
    location = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "my%20migrations/001_x.sql"


def gitlab_issue_problems(issue: dict[str, Any]) -> list[str]:
    """What GitLab's Code Quality report format requires of one issue, not met."""
    problems = []
    for key in ("description", "check_name", "fingerprint", "severity"):
        if not isinstance(issue.get(key), str) or not issue[key]:
            problems.append(key)
    if issue.get("severity") not in ("info", "minor", "major", "critical", "blocker"):
        problems.append("severity value")
    location = issue.get("location", {})
    if not isinstance(location.get("path"), str):
        problems.append("location.path")
    begin = location.get("lines", {}).get("begin")
    if not isinstance(begin, int) or begin < 1:
        problems.append("location.lines.begin")
    return problems


def test_gitlab_code_quality_fields(folder: Path, cli: Cli) -> None:
    result = cli("migrate", "lint", "--format", "gitlab")
    assert result.exit_code == 1
    issues = json.loads(result.output)
    assert isinstance(issues, list)
    assert [gitlab_issue_problems(issue) for issue in issues] == [[]] * len(expected())
    assert [(issue["location"]["path"], issue["check_name"].split()[0],
             issue["location"]["lines"]["begin"]) for issue in issues] == [
        (file, rule, line) for file, rule, line, _ in expected()]
    assert [issue["severity"] for issue in issues] == ["major", "major", "minor", "minor"]
    assert len({issue["fingerprint"] for issue in issues}) == len(issues)
    # fingerprints stay when lines are added above (GitLab tracks issues by them)
    before = [issue["fingerprint"] for issue in issues]
    crlf = folder / "001_crlf.sql"
    crlf.write_bytes(b"-- one more line\r\n" + crlf.read_bytes())
    after = [issue["fingerprint"] for issue in json.loads(
        cli("migrate", "lint", "--format", "gitlab").output)]
    assert after == before
    assert gitlab_issue_problems({"description": "x", "check_name": "x", "fingerprint": "x",
                                  "severity": "fatal", "location": {"path": "a",
                                                                    "lines": {"begin": 0}}}) == [
        "severity value", "location.lines.begin"]


def test_github_annotations_at_the_same_positions(folder: Path, cli: Cli) -> None:
    lines = cli("migrate", "lint", "--format", "github").output.splitlines()
    assert [line.split("::")[1] for line in lines[:-1]] == [
        f"{'error' if rule in ('FQL001', 'FQL002') else 'warning'} file={file},line={line},"
        f"col={column},title={rule} " + line_slug
        for (file, rule, line, column), line_slug in zip(
            expected(), ["index-not-concurrent", "not-null-without-default", "json-column",
                         "drop-index-not-concurrent"], strict=True)]
