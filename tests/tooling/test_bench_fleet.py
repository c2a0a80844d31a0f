"""bench/fleet.py still works: a few databases and schemas, no timing asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_fleet_bench_measures_every_case(database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "fleet-results.md"
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "fleet.py"), "--databases", "2",
         "--migrations", "4", "--jobs", "2", "--schemas", "4", "--quiet",
         "--database-url", database_url, "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = out.read_text(encoding="utf-8")
    for label in ("| shell loop of `up` | 2 | ", "| `up --targets --jobs 2` | 2 | ",
                  "| `up --targets --jobs 2` (schemas) | 4 | ",
                  "| `status --targets` (schemas) | 4 | ", "Fleet / loop, wall time: **",
                  "`status --targets` over 4 schemas: **"):
        assert label in text, text
    assert text in result.stdout  # the report is printed too
