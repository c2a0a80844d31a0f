#!/usr/bin/env python3
"""Per-test cost of the pytest plugin's database: a copy of the template versus running
the migrations again, side by side on the same server in one run.

A project of ``--migrations`` files (each a ``CREATE TABLE`` with a primary key and a
``CREATE INDEX``, and a down section, as bench/fleet.py writes them) gets its template
built once through :class:`fraiseql_alembic.testing.TemplateDatabases`, the class behind
the fixtures.  Then, round after round, the cases take turns (so that a machine that slows
down for a moment slows each alike):

- ``clone``: what ``fraiseql_database_url`` does around a test: ``CREATE DATABASE ...
  TEMPLATE`` (the server's default strategy; WAL_LOG on PostgreSQL 15+) and, after the
  test, ``DROP DATABASE ... WITH (FORCE)``;
- ``clone_file_copy``: the same with ``STRATEGY FILE_COPY`` (PostgreSQL 15+ only);
- ``clone_background``: the fixture as it runs by default: the next copy is made in a
  thread while a test runs and the drop happens behind it; three tests in a row per round,
  so that a test body shorter than a copy waits for the rest of it;
- ``migrate``: a new empty database, ``api.upgrade`` of every migration in-process (what
  a test would pay without a template), and the drop.

The report gives the median milliseconds per test, the ratio to ``migrate``, the one-off
template build and its reuse by a later session (found on the server by content hash),
and ``api.up_down_up`` over the whole folder.

    python bench/testing.py [--migrations 100] [--rounds 15]
                            [--out bench/testing-results.md]
                            [--cluster-dir auto|disk|DIR] [--database-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from fraiseql_alembic import api
from fraiseql_alembic.settings import resolve
from fraiseql_alembic.testing import TemplateDatabases

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import fleet  # noqa: E402  (bench/fleet.py: the project's migrations)
import run as harness  # noqa: E402  (bench/run.py: cluster and databases)
from session_reset import machine  # noqa: E402

CASES = ("clone", "clone_file_copy", "clone_background", "migrate")
LABELS = {
    "clone": "copy of the template (CREATE DATABASE ... TEMPLATE, default strategy) + drop",
    "clone_file_copy": "copy of the template, STRATEGY FILE_COPY + drop",
    "clone_background": "the fixture's wait: copy made ahead, drop behind (the default)",
    "migrate": "new database + every migration (api.upgrade) + drop",
}


#: Tests in a row for the background case (the copies made ahead while tests run).
BURST = 3


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def one_test(databases: TemplateDatabases, ahead: TemplateDatabases, case: str,
             body: float) -> float:
    """Seconds a test waits for its database in ``case`` (made, then dropped after a test
    body of ``body`` seconds, which is not counted)."""
    server = databases.server
    template = databases.template()
    began = time.perf_counter()
    if case == "migrate":
        name, url = databases.create()
        api.upgrade(databases.settings_for(url))
    elif case == "clone_background":
        name, url = ahead.clone()
    else:
        name = f"{databases.prefix}copy"
        server.clone(template.name, name, "FILE_COPY" if case == "clone_file_copy" else None)
    made = time.perf_counter()
    time.sleep(body)
    assert server.databases(name) == [name], f"{case}: no database {name}"
    ended = time.perf_counter()
    (ahead if case == "clone_background" else databases).drop(name)
    return (made - began) + (time.perf_counter() - ended)


def measure(admin_url: str, count: int, rounds: int, cases: tuple[str, ...], body: float,
            quiet: bool) -> tuple[dict[str, list[float]], dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="fraiseql-bench-testing-") as scratch:
        root = fleet.build_project(Path(scratch) / "project", count)
        settings = resolve(root / "migrations", cwd=root)
        once: dict[str, float] = {}
        databases = TemplateDatabases(settings, admin_url, "bench", background=False)
        ahead = TemplateDatabases(settings, admin_url, "ahead")
        try:
            once["template built"] = timed(databases.template)
            later = TemplateDatabases(settings, admin_url, "bench2")
            try:
                once["template reused by a later session"] = timed(later.template)
                assert not later.template().built
            finally:
                later.close()
            began = time.perf_counter()
            report = databases.up_down_up()
            once[f"up_down_up ({count} migrations up, down, up; schemas compared)"] = (
                time.perf_counter() - began)
            assert report.ok, report.describe()
            samples: dict[str, list[float]] = {case: [] for case in cases}
            for index in range(rounds):
                for offset in range(len(cases)):
                    case = cases[(index + offset) % len(cases)]
                    # the background case back to back, as a session runs its tests
                    for _ in range(BURST if case == "clone_background" else 1):
                        samples[case].append(one_test(databases, ahead, case, body))
                    ahead.settle()  # its work does not run into the next case's time
                if not quiet:
                    print(f"bench: round {index + 1} of {rounds} done", file=sys.stderr,
                          flush=True)
            databases.server.drop_template(databases.template().name)
        finally:
            ahead.close()
            databases.close()
    return samples, once


def render(samples: dict[str, list[float]], once: dict[str, float], count: int, rounds: int,
           body: float, where: str, server: str) -> str:
    per = {case: statistics.median(values) * 1000 for case, values in samples.items()}
    base = per.get("migrate")
    lines = [
        "# Test database benchmark (bench/testing.py)",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {machine()}; PostgreSQL "
        f"{server}; cluster: {where}; {count} migrations; {rounds} rounds, the cases "
        f"taking turns; a test body of {body * 1000:.0f} ms between making and dropping "
        "(not counted).",
        "",
        "| per test | median ms | min ms | max ms | ratio to migrate |",
        "|---|---|---|---|---|",
    ]
    for case, values in samples.items():
        ratio = f"{per[case] / base:.3f}x" if base else ""
        lines.append(f"| {LABELS[case]} | {per[case]:.1f} | {min(values) * 1000:.1f} | "
                     f"{max(values) * 1000:.1f} | {ratio} |")
    lines += ["", "| once per session | ms |", "|---|---|"]
    lines += [f"| {what} | {seconds * 1000:.1f} |" for what, seconds in once.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--migrations", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--body-ms", type=float, default=50.0,
                        help="a test's own time between its database made and dropped")
    parser.add_argument("--out", type=Path, default=HERE / "testing-results.md")
    parser.add_argument("--cluster-dir", default="auto")
    parser.add_argument("--database-url", help="a database on the server to use (CREATEDB)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    parent, where = ((None, "given URL") if args.database_url
                     else harness.cluster_parent(args.cluster_dir))
    with harness.database_server(args.database_url, 0.0, parent) as databases:
        admin_url = getattr(databases, "admin_url", None)
        if admin_url is None:
            raise SystemExit("bench: the role of --database-url needs CREATEDB")
        version = databases.server_version()
        cases = (CASES if int(version.split(".")[0]) >= 15
                 else tuple(case for case in CASES if case != "clone_file_copy"))
        body = args.body_ms / 1000
        samples, once = measure(admin_url, args.migrations, args.rounds, cases, body,
                                args.quiet)
    report = render(samples, once, args.migrations, args.rounds, body, where, version)
    args.out.write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
