"""The marks the verbs' lines start with, and GitHub workflow commands, escaped.

Pure and standard library only: :mod:`.lintformats` (``fraiseql migrate lint``) uses it
without loading :mod:`.render`, whose status and plans import the engine.
"""

from __future__ import annotations

CHECK = "✓"
PENDING_MARK = "○"
PROBLEM_MARK = "✗"
PARTIAL_MARK = "◐"


def github_annotation(level: str, file: str, line: int, message: str, *,
                      column: int | None = None, title: str | None = None) -> str:
    """``::error file=...,line=...::message``, escaped as GitHub's workflow commands want."""
    properties = [f"file={_escape_property(file)}", f"line={line}"]
    if column is not None:
        properties.append(f"col={column}")
    if title is not None:
        properties.append(f"title={_escape_property(title)}")
    return f"::{level} {','.join(properties)}::{escape_data(message)}"


def escape_data(text: str) -> str:
    """The message of a GitHub workflow command, escaped."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")
