"""The progress display of `up` and `down`: [k/n] and times on a terminal, plain lines otherwise."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from fraiseql_alembic.cli.reporting import JsonReporter, TextReporter, elapsed_text
from fraiseql_alembic.engine.backup import Backup
from fraiseql_alembic.engine.events import WOULD_APPLY, WOULD_FAIL, Outcome

GREEN_CHECK = "\x1b[32m✓\x1b[0m"
RED_CROSS = "\x1b[31m✗\x1b[0m"


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def times(text: str) -> str:
    """The output with run times replaced by T, so that it can be compared exactly."""
    return re.sub(r"\d+(\.\d)?s\b", "T", text)


def test_terminal_shows_counter_and_times(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    stream = FakeTerminal()
    reporter = TextReporter(stream)
    reporter.plan(3, True)
    reporter.start("001_a.sql", True)
    reporter.done("001_a.sql", True)
    reporter.start("002_b.sql", True)
    reporter.notice("NOTICE: hello")
    reporter.done("002_b.sql", True)
    reporter.start("003_c.sql", True)
    reporter.notice("Lock timeout in 003_c.sql (SQLSTATE 55P03): attempt 1 of 4 rolled back")
    reporter.start("003_c.sql", True)  # the retry keeps its number
    reporter.failed()

    assert times(stream.getvalue()) == (
        "  [1/3] Running migration: 001_a.sql ..."
        f"\r{GREEN_CHECK} [1/3] Running migration: 001_a.sql (T)\n"
        "  [2/3] Running migration: 002_b.sql ...\n"
        "  NOTICE: hello\n"
        f"{GREEN_CHECK} [2/3] Running migration: 002_b.sql (T)\n"
        "  [3/3] Running migration: 003_c.sql ...\n"
        "  Lock timeout in 003_c.sql (SQLSTATE 55P03): attempt 1 of 4 rolled back\n"
        "  [3/3] Running migration: 003_c.sql ..."
        f"\r{RED_CROSS} [3/3] Running migration: 003_c.sql (T)\n"
    )
    assert times(reporter.timing_line(is_upgrade=True) or "") == "Applied 2 migrations in T"
    assert reporter.summary_after_stop(is_upgrade=True)[1] == (
        "Interrupted and rolled back, not applied: 003_c.sql")


def test_no_color_keeps_the_marks_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    stream = FakeTerminal()
    reporter = TextReporter(stream)
    reporter.plan(1, False)
    reporter.start("001_a.sql", False)
    reporter.done("001_a.sql", False)
    reporter.rehearsed(Outcome("002", "002_b.sql", WOULD_APPLY, elapsed_ms=1500))
    reporter.rehearsed(Outcome("003", "003_c.sql", WOULD_FAIL, "003_c.sql:2:1: boom"))

    assert "\x1b[3" not in stream.getvalue()
    assert times(stream.getvalue()) == (
        "  [1/1] Rolling back migration: 001_a.sql ..."
        "\r✓ [1/1] Rolling back migration: 001_a.sql (T)\n"
        "✓ Would apply: 002_b.sql (T)\n"
        "✗ Would fail: 003_c.sql:2:1: boom\n"
    )
    assert times(reporter.timing_line(is_upgrade=False) or "") == "Rolled back 1 migration in T"

    monkeypatch.setenv("NO_COLOR", "")  # an empty NO_COLOR does not count (no-color.org)
    assert TextReporter(FakeTerminal()).mark("✓") == GREEN_CHECK


def test_plain_stream_keeps_todays_lines(tmp_path: Path) -> None:
    stream = io.StringIO()
    reporter = TextReporter(stream)
    reporter.plan(2, True)
    reporter.start("001_a.sql", True)
    reporter.done("001_a.sql", True)
    reporter.backed_up(Backup(tmp_path / "b.dump", 12_300_000, "app",
                              "postgresql://app@db:5432/postgres"))
    reporter.failed()
    assert stream.getvalue() == (
        "✓ Running migration: 001_a.sql\n"
        f"✓ Backup: {tmp_path}/b.dump (12.3 MB)\n"
        "  restore with: pg_restore --clean --create --if-exists --no-owner --dbname "
        f"postgresql://app@db:5432/postgres {tmp_path}/b.dump\n"
        "  (this drops and recreates app as it was before the migrations: stop the "
        "application first)\n"
    )
    assert reporter.timing_line(is_upgrade=True) is None


def test_json_reporter_is_never_a_terminal_display() -> None:
    stream = FakeTerminal()
    reporter = JsonReporter(stream)
    reporter.plan(1, True)
    reporter.start("001_a.sql", True)
    assert stream.getvalue().splitlines() == [
        '{"event": "plan", "total": 1, "direction": "up"}',
        '{"event": "start", "file": "001_a.sql", "direction": "up"}',
    ]
    assert reporter.timing_line(is_upgrade=True) is None


def test_elapsed_text() -> None:
    assert [elapsed_text(s) for s in (0.04, 12.34, 125, 3725)] == [
        "0.0s", "12.3s", "2m05s", "1h02m"]


