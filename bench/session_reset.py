#!/usr/bin/env python3
"""The cost of giving every migration a clean session: N small migrations with and without
the session reset, side by side on the same server in one run.

Three variants send N migrations (a ``CREATE TABLE`` with a primary key and a ``CREATE
INDEX``, then the version move and the history row through a prepared statement, as the
direct path's bookkeeping) on one connection, to a fresh database:

- ``none``: ``BEGIN; <migration>; EXECUTE <bookkeeping>; COMMIT`` as one query, no reset;
- ``direct``: the same query with the direct path's reset at its head, in a transaction of
  its own (``BEGIN; <SESSION_CLEAN_SQL> EXECUTE fraiseql_session_check; COMMIT;``): one
  round trip per migration, as ``fraiseql migrate up`` on .sql files sends it;
- ``alembic``: the Alembic path's reset (``session_reset_sql``) sent on its own and
  committed (psycopg2: ``BEGIN``, the reset, ``COMMIT``), then the same query: what
  ``SessionReset.run`` adds before each SQL migration under Alembic.

The reset SQL is the package's own (``fraiseql_alembic.engine.session``), so the numbers
follow it when it changes.  The variants take turns migration by migration on one
connection (``--rounds`` fresh databases of ``--migrations`` each), so that a machine that
slows down for a moment slows each alike; the report gives the median time per migration,
the reset's cost (the difference to ``none``) and the ratio.

    python bench/session_reset.py [--migrations 1000] [--rounds 5]
                                  [--out bench/session-reset-results.md]
                                  [--cluster-dir auto|disk|DIR] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import psycopg2

from fraiseql_alembic.engine.session import (
    SESSION_CLEAN_SQL,
    session_check_sql,
    session_reset_sql,
)
from fraiseql_alembic.settings import RunOptions

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as harness  # noqa: E402  (bench/run.py: cluster and databases)

VARIANTS = ("none", "direct", "alembic")
RECORD = "bench_record"
CHECK = "fraiseql_session_check"

SETUP = f"""CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);
INSERT INTO alembic_version VALUES ('0');
CREATE TABLE fraiseql_migrations (id bigserial PRIMARY KEY, version text NOT NULL,
    filename text, checksum text, applied_at timestamptz NOT NULL DEFAULT now(),
    execution_ms integer, action text NOT NULL);
PREPARE {RECORD} (text, text, text) AS WITH moved AS (
    UPDATE alembic_version SET version_num = $2 WHERE version_num = $1 RETURNING 1)
    INSERT INTO fraiseql_migrations (version, filename, checksum, execution_ms, action)
    SELECT $2, $3, md5($3), (extract(epoch FROM clock_timestamp() - statement_timestamp())
        * 1000)::integer, 'applied' FROM moved"""


def migration(number: int) -> str:
    """One small migration's query, without the reset."""
    table = f"bench_t{number:05d}"
    return (f"BEGIN;\nCREATE TABLE {table} (id bigserial PRIMARY KEY, name text NOT NULL, "
            f"created_at timestamptz NOT NULL DEFAULT now());\n"
            f"CREATE INDEX {table}_name ON {table} (name);\n"
            f"EXECUTE {RECORD}('{number - 1}', '{number}', '{number:05d}_{table}.sql');\n"
            "COMMIT")


def run_interleaved(url: str, count: int, offset: int) -> dict[str, list[float]]:
    """Seconds each migration took, by variant: ``count`` migrations on one new connection
    to a fresh database, the variants taking turns migration by migration (so that a
    machine that slows down for a moment slows each variant alike)."""
    options = RunOptions()
    connection = psycopg2.connect(url, application_name="bench-session-reset")
    try:
        connection.autocommit = True  # the queries hold their own BEGIN/COMMIT
        cursor = connection.cursor()
        cursor.execute(SETUP)
        cursor.execute(f"PREPARE {CHECK} AS " + session_check_sql(options, [RECORD, CHECK]))
        head = "BEGIN;\n" + SESSION_CLEAN_SQL + f"EXECUTE {CHECK};\nCOMMIT;\n"
        # the Alembic path's reset without DEALLOCATE ALL, which would drop this
        # connection's prepared bookkeeping (Alembic's sessions prepare none)
        alembic_reset = session_reset_sql(options).replace("DEALLOCATE ALL;\n", "")
        times: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        for number in range(1, count + 1):
            variant = VARIANTS[(number + offset) % len(VARIANTS)]
            query = migration(number)
            began = time.perf_counter()
            if variant == "direct":
                cursor.execute(head + query)
            elif variant == "alembic":  # as SessionReset.run: psycopg2's BEGIN, then COMMIT
                connection.autocommit = False
                cursor.execute(alembic_reset)
                connection.commit()
                connection.autocommit = True
                cursor.execute(query)
            else:
                cursor.execute(query)
            times[variant].append(time.perf_counter() - began)
        cursor.execute("SELECT version_num, (SELECT count(*) FROM fraiseql_migrations) "
                       "FROM alembic_version")
        assert cursor.fetchone() == (str(count), count), "the bookkeeping went wrong"
        return times
    finally:
        connection.close()


def measure(fresh: Callable[[str], tuple[str, Callable[[], None]]], count: int,
            rounds: int, quiet: bool = False) -> dict[str, list[float]]:
    """Seconds per migration of each variant, over ``rounds`` fresh databases."""
    samples: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for index in range(rounds):
        url, drop = fresh("reset")
        try:
            for variant, times in run_interleaved(url, count, index).items():
                samples[variant] += times
        finally:
            drop()
        if not quiet:
            print(f"bench: round {index + 1} of {rounds} done", file=sys.stderr, flush=True)
    return samples


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.system()} {platform.release()}, {os.cpu_count()} CPUs"
            + (f" ({model})" if model else "") + f", Python {platform.python_version()}, "
            "load average %.1f %.1f %.1f" % os.getloadavg())


def render(samples: dict[str, list[float]], count: int, rounds: int, where: str,
           server: str) -> str:
    per = {variant: statistics.median(values) * 1000 for variant, values in samples.items()}
    mean = {variant: statistics.fmean(values) * 1000 for variant, values in samples.items()}
    base = per["none"]
    labels = {"none": "no reset", "direct": "direct path: reset at the head of the query",
              "alembic": "Alembic path: reset sent and committed on its own"}
    lines = [
        "# Session reset benchmark (bench/session_reset.py)",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {machine()}; PostgreSQL "
        f"{server}; cluster: {where}; {rounds} rounds of {count} migrations, the variants "
        f"taking turns migration by migration ({len(samples['none'])} migrations each).",
        "",
        "| variant | median ms per migration | reset cost (ms) | ratio to no reset | "
        "mean ms |",
        "|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        cost = "" if variant == "none" else f"{per[variant] - base:+.3f}"
        lines.append(f"| {labels[variant]} | {per[variant]:.3f} | {cost} | "
                     f"{per[variant] / base:.3f}x | {mean[variant]:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--migrations", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "session-reset-results.md")
    parser.add_argument("--cluster-dir", default="auto")
    parser.add_argument("--database-url")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    parent, where = ((None, "given URL") if args.database_url
                     else harness.cluster_parent(args.cluster_dir))
    with harness.database_server(args.database_url, 0.0, parent) as databases:
        samples = measure(databases.fresh, args.migrations, args.rounds, args.quiet)
        report = render(samples, args.migrations, args.rounds, where,
                        databases.server_version())
    args.out.write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
