#!/usr/bin/env python3
"""Benchmark one large pg_dump-style migration: ``fraiseql migrate up`` against ``psql -1 -f``.

The file is what ``pg_dump`` writes for a small schema with a lot of data: ``SET`` lines,
``CREATE TABLE``s, ``COPY ... FROM stdin;`` blocks of tab-separated rows up to ``\\.`` (with
escapes, NULLs, quotes, semicolons and non-ASCII text), then indexes, constraints and
``setval``.  Both tools apply it to a fresh database in one transaction; the harness checks
the row counts after each run, so a fast wrong answer is an error, not a time.

    python bench/bigfile.py [--size-mb 50] [--runs 3] [--out bench/bigfile-results.md]
                            [--cluster-dir auto|disk|DIR] [--database-url URL]

Targets (issue 11): ``up`` at most 2x the time of ``psql -1 -f``, and peak client memory
at most 4x the file size.  Times are medians over ``--runs``, run interleaved (psql, ours,
psql, ours, ...) so that drift on a shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as harness  # noqa: E402  (bench/run.py: cluster, databases, timed runs)

TABLES = 3
TIME_TARGET = 2.0
MEMORY_TARGET = 4.0


def write_dump(path: Path, size_mb: float) -> dict[str, int]:
    """A pg_dump-style file of about ``size_mb`` megabytes; the rows each table gets."""
    target = int(size_mb * 1024 * 1024)
    counts = {f"item_{t}": 0 for t in range(TABLES)}
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write(
            "--\n-- PostgreSQL database dump\n--\n\n"
            "SET statement_timeout = 0;\nSET lock_timeout = 0;\n"
            "SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n"
            "SELECT pg_catalog.set_config('search_path', '', false);\n"
            "SET check_function_bodies = false;\nSET client_min_messages = warning;\n\n"
        )
        for table in counts:
            out.write(
                f"CREATE TABLE public.{table} (\n    id bigint NOT NULL,\n    label text,\n"
                "    note text,\n    amount numeric(12,2),\n    created_at timestamp with "
                "time zone\n);\n\n"
                f"CREATE SEQUENCE public.{table}_id_seq START WITH 1 INCREMENT BY 1;\n\n"
            )
        per_table = target // TABLES
        row_id = 0
        for table in counts:
            out.write(f"COPY public.{table} (id, label, note, amount, created_at) FROM stdin;\n")
            written = 0
            lines = []
            while written < per_table:
                row_id += 1
                note = ("\\N" if row_id % 7 == 0 else
                        f"note {row_id}; it's a \\\"quoted\\\" line\\twith a tab, é ü ß")
                line = (f"{row_id}\tlabel {row_id}\t{note}\t{row_id % 100000}.{row_id % 100:02d}"
                        f"\t2026-01-{1 + row_id % 28:02d} 12:{row_id % 60:02d}:00+00\n")
                lines.append(line)
                written += len(line.encode("utf-8"))
                counts[table] += 1
                if len(lines) >= 10000:
                    out.write("".join(lines))
                    lines.clear()
            out.write("".join(lines))
            out.write("\\.\n\n\n")
        for table in counts:
            out.write(
                f"SELECT pg_catalog.setval('public.{table}_id_seq', {row_id}, true);\n"
                f"ALTER TABLE ONLY public.{table}\n    ADD CONSTRAINT {table}_pkey PRIMARY KEY "
                "(id);\n"
                f"CREATE INDEX {table}_label_idx ON public.{table} USING btree (label);\n\n"
            )
        out.write("--\n-- PostgreSQL database dump complete\n--\n\n")
    return counts


def check_rows(url: str, counts: dict[str, int]) -> str | None:
    import psycopg2

    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            for table, expected in counts.items():
                cursor.execute(f"SELECT count(*) FROM public.{table}")
                found = cursor.fetchone()[0]
                if found != expected:
                    return f"{table}: {found} rows, expected {expected}"
    finally:
        connection.close()
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=50.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "bigfile-results.md")
    parser.add_argument("--cluster-dir", default="auto")
    parser.add_argument("--database-url")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args(argv)
    if shutil.which("psql") is None:
        raise SystemExit("bench: psql is not on PATH (apt-get install postgresql-client)")
    workdir = Path(tempfile.mkdtemp(prefix="fraiseql-bigfile-"))
    use_gnu_time = harness.gnu_time_available()
    try:
        project = workdir / "project"
        (project / "migrations").mkdir(parents=True)
        dump = project / "migrations" / "001_restore_dump.sql"
        print(f"bench: writing a {args.size_mb:g} MB dump ...", file=sys.stderr, flush=True)
        counts = write_dump(dump, args.size_mb)
        size = dump.stat().st_size
        parent, where = harness.cluster_parent(args.cluster_dir)
        samples: dict[str, list[Any]] = {"psql": [], "fraiseql": []}
        with harness.database_server(args.database_url, 0.0, parent) as databases:
            for run_index in range(args.runs):
                for case in ("psql", "fraiseql"):
                    url, drop = databases.fresh(f"big_{case}")
                    try:
                        env = {**os.environ, "DATABASE_URL": url}
                        argv_ = (["psql", "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f",
                                  str(dump), url] if case == "psql"
                                 else [str(harness.BIN / "fraiseql"), "migrate", "up"])
                        sample = harness.measure(argv_, cwd=project, env=env,
                                                 timeout=args.timeout,
                                                 log_prefix=workdir / f"{case}_{run_index}",
                                                 use_gnu_time=use_gnu_time)
                        wrong = check_rows(url, counts) if sample.ok else None
                        if wrong:
                            sample = harness.Sample("error", sample.wall_s, sample.cpu_s,
                                                    sample.maxrss_mb, wrong)
                        samples[case].append(sample)
                        print(f"bench: {case} run {run_index + 1}: {sample.status} "
                              f"{sample.wall_s or 0:.2f}s {sample.maxrss_mb or 0:.0f} MB "
                              f"{sample.detail}", file=sys.stderr, flush=True)
                    finally:
                        drop()
        report = render(samples, size, counts, where, args, use_gnu_time)
        args.out.write_text(report, encoding="utf-8")
        print(report)
        return 0 if "FAIL" not in report else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def render(samples: dict[str, list[Any]], size: int, counts: dict[str, int], where: str,
           args: argparse.Namespace, gnu_time: bool) -> str:
    def median(case: str, attribute: str) -> float | None:
        values = [getattr(s, attribute) for s in samples[case] if s.ok]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def peak(case: str) -> float | None:
        values = [s.maxrss_mb for s in samples[case] if s.maxrss_mb is not None]
        return max(values) if values else None

    size_mb = size / 1024 / 1024
    floor, ours = median("psql", "wall_s"), median("fraiseql", "wall_s")
    memory = peak("fraiseql")
    errors = [s.detail for case in samples for s in samples[case] if not s.ok]
    ratio = ours / floor if ours and floor else None
    memory_ratio = memory / size_mb if memory else None
    lines = [
        "# Large file benchmark (bench/bigfile.py)",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; Python {platform.python_version()}; "
        f"{os.cpu_count()} CPUs; cluster: {where}; {args.runs} runs, interleaved; peak RSS: "
        + ("GNU time %M" if gnu_time else "os.wait4 ru_maxrss"),
        "",
        f"File: {size_mb:.1f} MB pg_dump-style ({sum(counts.values()):,} rows of COPY data in "
        f"{len(counts)} tables, schema, indexes, constraints, setval).",
        "",
        "| case | median wall (s) | median CPU (s) | peak RSS (MB) | ratio |",
        "|---|---|---|---|---|",
    ]
    for case, label in (("psql", "`psql -1 -f` (floor)"), ("fraiseql", "`fraiseql migrate up`")):
        wall, cpu, rss = median(case, "wall_s"), median(case, "cpu_s"), peak(case)
        shown_ratio = f"{wall / floor:.2f}x" if wall and floor else "n/a"
        lines.append(f"| {label} | {wall or 0:.2f} | {cpu or 0:.2f} | {rss or 0:.0f} | "
                     f"{shown_ratio} |")
    lines += [
        "",
        "## Targets",
        "",
        f"- `up` within {TIME_TARGET:g}x `psql -1 -f`: "
        + (f"{ratio:.2f}x: {'PASS' if ratio <= TIME_TARGET else 'FAIL'}" if ratio else "FAIL"),
        f"- peak client memory within {MEMORY_TARGET:g}x the file size: "
        + (f"{memory:.0f} MB = {memory_ratio:.2f}x: "
           f"{'PASS' if memory_ratio <= MEMORY_TARGET else 'FAIL'}"
           if memory and memory_ratio else "FAIL"),
    ]
    if errors:
        lines += ["", "Errors: " + "; ".join(str(e) for e in errors) + " (FAIL)"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
