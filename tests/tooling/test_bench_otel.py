"""bench/otel.py still works: a few migrations, one round, no warm-up, no timing asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_otel_bench_measures_every_case_in_every_installation(database_url: str,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "otel-results.md"
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "otel.py"), "--migrations", "3", "--runs", "1",
         "--no-warmup", "--quiet", "--database-url", database_url, "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = out.read_text(encoding="utf-8")
    for label in ("| `fraiseql --version` | ", "| `fraiseql migrate up`, nothing pending | ",
                  "| `fraiseql migrate up`, 3 migrations from empty | "):
        (row,) = [line for line in text.splitlines() if line.startswith(label)]
        assert row.count(" ms (CPU ") == 3 and row.count("x / CPU ") == 2, row
    assert text in result.stdout  # the report is printed too
