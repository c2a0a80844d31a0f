"""The live display of a fleet run on a terminal (cli/fleetlive.py): one status line
redrawn in place, failures and lock waits printed above it."""

from __future__ import annotations

import io

from fraiseql_alembic.cli.fleetlive import LiveDisplay, LiveReporter
from fraiseql_alembic.engine.fleet import FAILED, SUCCEEDED, TargetOutcome
from fraiseql_alembic.project.targets import Target

CLEAR = "\r\x1b[2K"


def screen(text: str) -> list[str]:
    """What a terminal shows: each line as its last redraw left it."""
    return [line.split(CLEAR)[-1] for line in text.split("\n")]


def test_the_status_line_counts_and_names_the_slowest_target() -> None:
    stream = io.StringIO()
    display = LiveDisplay(3, stream)
    acme, globex, initech = (Target(name, f"postgresql://h/{name}")
                             for name in ("acme", "globex", "initech"))
    try:
        display.started(acme)
        display.started(globex)
        LiveReporter(acme, display).start("002_b.sql", True)
        assert display.status().startswith("0/3 done, 2 running; slowest: acme ")
        assert display.status().endswith(" 002_b.sql")
        LiveReporter(globex, display).waiting("Waiting up to 60s for the migration lock")
        display.ended(TargetOutcome(globex, FAILED, error="Cannot connect"))
        display.ended(TargetOutcome(acme, SUCCEEDED, result=object()))
        display.started(initech)
        assert display.status().startswith("2/3 done, 1 running, 1 failed; slowest: initech ")
    finally:
        display.close()
    shown = screen(stream.getvalue())
    assert shown == ["[globex] Waiting up to 60s for the migration lock",
                     "[globex] ✗ Failed: Cannot connect", ""]  # the status line is cleared
    assert "2/3 done, 1 running, 1 failed; slowest: initech" in stream.getvalue()
