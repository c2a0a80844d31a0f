#!/usr/bin/env python3
"""Fleets: one ``fraiseql migrate up --targets`` against a shell loop of single ``up`` runs,
and ``status --targets`` over many schemas of one database, on the same server in one run.

- ``loop``: ``for url in ...; do DATABASE_URL=$url fraiseql migrate up; done`` over
  ``--databases`` fresh databases, each getting ``--migrations`` migrations;
- ``fleet``: ``fraiseql migrate up --targets FILE --jobs N`` over as many other fresh
  databases;
- ``schemas``: ``--schemas`` tenant schemas in one database, migrated by
  ``up --targets`` (timed too), then ``status --targets`` over them.

Each migration is a ``CREATE TABLE`` with a primary key and a ``CREATE INDEX``.  Wall time
and the client's CPU (user + system of the ``fraiseql`` processes, from the kernel's
accounting of waited children) are measured; the report gives the fleet's time as a
fraction of the loop's, and the client CPU per target.

    python bench/fleet.py [--databases 200] [--migrations 20] [--jobs 8] [--schemas 1000]
                          [--out bench/fleet-results.md] [--cluster-dir auto|disk|DIR]
                          [--database-url URL] [--quiet]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg2

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE))
import run as harness  # noqa: E402  (bench/run.py: cluster and databases)


@dataclass(frozen=True)
class Timing:
    wall: float  # seconds
    cpu: float  # client CPU seconds (user + system of the commands run)


def migration(number: int) -> str:
    table = f"bench_t{number:03d}"
    return (f"-- migrate:up\nCREATE TABLE {table} (id bigserial PRIMARY KEY, name text, "
            f"created timestamptz DEFAULT now());\nCREATE INDEX {table}_name ON {table} (name);\n"
            f"-- migrate:down\nDROP TABLE {table};\n")


def build_project(root: Path, count: int) -> Path:
    folder = root / "migrations"
    folder.mkdir(parents=True)
    for number in range(1, count + 1):
        (folder / f"{number:03d}_create_bench_t{number:03d}.sql").write_text(
            migration(number), encoding="utf-8")
    return root


def timed(commands: Sequence[tuple[list[str], dict[str, str]]], cwd: Path) -> Timing:
    """Run the commands one after the other; each must succeed."""
    before = os.times()
    started = time.perf_counter()
    for argv, env in commands:
        result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                                check=False)
        if result.returncode != 0:
            raise SystemExit(f"bench: {' '.join(argv[:4])} failed ({result.returncode}):\n"
                             f"{result.stdout[-2000:]}{result.stderr[-2000:]}")
    wall = time.perf_counter() - started
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system)
    return Timing(wall, cpu)


def environment(url: str | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    if url is not None:
        env["DATABASE_URL"] = url
    return env


def version_of(url: str, schema: str = "public") -> str | None:
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT max(version_num) FROM {schema}.alembic_version")
            row = cursor.fetchone()
            return str(row[0]) if row and row[0] else None
    finally:
        connection.close()


def run(args: argparse.Namespace, fresh: Callable[[str], tuple[str, Callable[[], None]]],
        workdir: Path, say: Callable[[str], None]) -> dict[str, Timing]:
    project = build_project(workdir / "project", args.migrations)
    fraiseql = str(BIN / "fraiseql")
    expected = f"{args.migrations:03d}"
    disposals: list[Callable[[], None]] = []
    try:
        say(f"creating {2 * args.databases} databases ...")
        made = [fresh("fleet") for _ in range(2 * args.databases)]
        disposals += [drop for _, drop in made]
        loop_urls = [url for url, _ in made[: args.databases]]
        fleet_urls = [url for url, _ in made[args.databases:]]
        results: dict[str, Timing] = {}
        say("loop: one `fraiseql migrate up` per database ...")
        results["loop"] = timed([([fraiseql, "migrate", "up"], environment(url))
                                 for url in loop_urls], project)
        targets = workdir / "targets.txt"
        targets.write_text("\n".join(fleet_urls) + "\n", encoding="utf-8")
        say(f"fleet: `fraiseql migrate up --targets --jobs {args.jobs}` ...")
        results["fleet"] = timed([([fraiseql, "migrate", "up", "--targets", str(targets),
                                    "--jobs", str(args.jobs)], environment())], project)
        wrong = [url for url in loop_urls + fleet_urls if version_of(url) != expected]
        if wrong:
            raise SystemExit(f"bench: {len(wrong)} databases are not at {expected}")
        if args.schemas:
            url, drop = fresh("schemas")
            disposals.append(drop)
            schemas = workdir / "schemas.toml"
            schemas.write_text("".join(f'[targets.tenant_{n}]\nurl = "{url}"\n'
                                       f'schema = "tenant_{n}"\n'
                                       for n in range(args.schemas)), encoding="utf-8")
            say(f"schemas: `up --targets` over {args.schemas} schemas of one database ...")
            results["schemas up"] = timed([([fraiseql, "migrate", "up", "--targets",
                                             str(schemas), "--jobs", str(args.jobs)],
                                            environment())], project)
            say("schemas: `status --targets` ...")
            results["schemas status"] = timed([([fraiseql, "migrate", "status", "--targets",
                                                 str(schemas), "--exit-code"], environment())],
                                              project)
            if version_of(url, f"tenant_{args.schemas - 1}") != expected:
                raise SystemExit("bench: the last schema is not migrated")
        return results
    finally:
        for drop in disposals:
            drop()


def render(results: dict[str, Timing], args: argparse.Namespace, where: str,
           server: str) -> str:
    loop, fleet = results["loop"], results["fleet"]
    lines = [
        "# Fleet benchmark", "",
        f"`python bench/fleet.py --databases {args.databases} --migrations {args.migrations} "
        f"--jobs {args.jobs} --schemas {args.schemas}`: PostgreSQL {server}, cluster: "
        f"{where}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}.", "",
        "| case | targets | wall | client CPU | client CPU per target |",
        "|------|---------|------|------------|-----------------------|",
    ]
    counts = {"loop": args.databases, "fleet": args.databases,
              "schemas up": args.schemas, "schemas status": args.schemas}
    labels = {"loop": "shell loop of `up`", "fleet": f"`up --targets --jobs {args.jobs}`",
              "schemas up": f"`up --targets --jobs {args.jobs}` (schemas)",
              "schemas status": "`status --targets` (schemas)"}
    for name, timing in results.items():
        lines.append(f"| {labels[name]} | {counts[name]} | {timing.wall:.1f} s | "
                     f"{timing.cpu:.1f} s | {1000 * timing.cpu / counts[name]:.0f} ms |")
    lines += ["", f"Fleet / loop, wall time: **{fleet.wall / loop.wall:.2f}x** (target: at "
              "most 0.3x)."]
    if "schemas status" in results:
        status = results["schemas status"].wall
        lines.append(f"`status --targets` over {args.schemas} schemas: **{status:.1f} s** "
                     "(target: under 10 s).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--databases", type=int, default=200)
    parser.add_argument("--migrations", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--schemas", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=HERE / "fleet-results.md")
    parser.add_argument("--cluster-dir", default="auto")
    parser.add_argument("--database-url")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        if not args.quiet:
            print(f"bench: {text}", file=sys.stderr, flush=True)

    parent, where = ((None, "given URL") if args.database_url
                     else harness.cluster_parent(args.cluster_dir))
    with harness.database_server(args.database_url, 0.0, parent) as databases, \
            tempfile.TemporaryDirectory(prefix="fraiseql-bench-fleet-") as workdir:
        results = run(args, databases.fresh, Path(workdir), say)
        report = render(results, args, where, databases.server_version())
    args.out.write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
