"""bench/session_reset.py still works: a few migrations, one round, no timing asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_session_reset_bench_measures_every_variant(database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "session-reset-results.md"
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "session_reset.py"), "--migrations", "12",
         "--rounds", "1", "--quiet", "--database-url", database_url, "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = out.read_text(encoding="utf-8")
    assert "1 rounds of 12 migrations" in text and "(4 migrations each)" in text
    for label in ("| no reset | ", "| direct path: reset at the head of the query | ",
                  "| Alembic path: reset sent and committed on its own | "):
        assert label in text, text
    assert text in result.stdout  # the report is printed too
