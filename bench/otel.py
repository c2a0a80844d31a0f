#!/usr/bin/env python3
"""OpenTelemetry and start-up: ``fraiseql --version`` and ``fraiseql migrate up`` with and
without the OpenTelemetry packages installed, side by side in one run.

Three installations of the same code, measured round by round in turn:

- ``without``: a virtualenv holding everything this one has except ``opentelemetry*``
  (its site-packages links every other entry of this one's; its ``fraiseql`` script is
  this one's with its own interpreter);
- ``installed``: this virtualenv, with ``opentelemetry-api`` and ``opentelemetry-sdk``
  installed and nothing set up (what a team gets when a dependency pulls them in);
- ``traced``: this virtualenv with a tracer provider set before ``fraiseql`` runs (a
  ``sitecustomize`` on ``PYTHONPATH`` sets the SDK's provider with a span processor
  that keeps the spans in memory), as ``opentelemetry-instrument`` would.

The order of the three changes from round to round, so that none is always first.
Cases: ``fraiseql --version``; ``fraiseql migrate up`` with nothing pending on a database at
the head of ``--migrations`` migrations; ``fraiseql migrate up`` of them all on an empty
database (a fresh one per run, made outside the timed region).  Wall time and the child's
CPU (user + system) are medians over ``--runs`` rounds.

    python bench/otel.py [--migrations 100] [--runs 15] [--out bench/otel-results.md]
                         [--cluster-dir auto|disk|DIR] [--database-url URL] [--quiet]
                         [--no-warmup]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE))
import fleet as projects  # noqa: E402  (bench/fleet.py: the same migrations)
import run as harness  # noqa: E402  (bench/run.py: cluster and databases)

VARIANTS = ("without", "installed", "traced")
#: The machine's load average (1 min) as the rounds start and as they end.
LOADS: list[float] = []
CASES = ("version", "up_noop", "up_empty")
LABELS = {"version": "`fraiseql --version`",
          "up_noop": "`fraiseql migrate up`, nothing pending",
          "up_empty": "`fraiseql migrate up`, {n} migrations from empty"}

SITECUSTOMIZE = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
trace.set_tracer_provider(provider)
"""


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float


def venv_without_opentelemetry(root: Path) -> Path:
    """A virtualenv in ``root`` with this one's packages but OpenTelemetry's; its
    ``fraiseql`` script's path."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    ours = Path(sysconfig.get_paths()["purelib"])
    theirs = Path(subprocess.run(
        [str(root / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip())
    for entry in ours.iterdir():
        if entry.name.startswith("opentelemetry"):
            continue
        (theirs / entry.name).symlink_to(entry)
    script = root / "bin" / "fraiseql"
    text = (BIN / "fraiseql").read_text(encoding="utf-8")
    script.write_text(f"#!{root / 'bin' / 'python'}\n" + text.split("\n", 1)[1],
                      encoding="utf-8")
    script.chmod(0o755)
    probe = subprocess.run([str(root / "bin" / "python"), "-c", "import opentelemetry"],
                           capture_output=True, text=True)
    if probe.returncode == 0:
        raise SystemExit("bench: the venv without OpenTelemetry still imports it")
    return script


def measure(argv: list[str], env: dict[str, str], cwd: Path) -> Sample:
    """Run ``argv`` (it must succeed): its wall time and its CPU (user + system)."""
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=output, stderr=output)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            output.seek(0)
            raise SystemExit(f"bench: {' '.join(argv)} failed:\n"
                             + output.read().decode("utf-8", "replace")[-2000:])
    return Sample(wall, usage.ru_utime + usage.ru_stime)


def run(args: argparse.Namespace, fresh: Callable[[str], tuple[str, Callable[[], None]]],
        workdir: Path, say: Callable[[str], None]) -> dict[tuple[str, str], list[Sample]]:
    project = projects.build_project(workdir / "project", args.migrations)
    site = workdir / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    say("making a virtualenv without OpenTelemetry ...")
    scripts = {"without": str(venv_without_opentelemetry(workdir / "venv-without")),
               "installed": str(BIN / "fraiseql"), "traced": str(BIN / "fraiseql")}
    base = {key: value for key, value in os.environ.items()
            if key not in ("DATABASE_URL", "PYTHONPATH") and not key.startswith("OTEL_")}
    base.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode cached, as an installed package

    def env(variant: str, url: str | None = None) -> dict[str, str]:
        found = dict(base)
        if variant == "traced":
            found["PYTHONPATH"] = str(site)
        if url is not None:
            found["DATABASE_URL"] = url
        return found

    expected = f"{args.migrations:03d}"
    at_head, drop_head = fresh("otel_head")
    samples: dict[tuple[str, str], list[Sample]] = {
        (variant, case): [] for variant in VARIANTS for case in CASES}
    LOADS.append(os.getloadavg()[0])
    try:
        warm_up = () if args.no_warmup else VARIANTS
        for variant in warm_up:  # untimed: bytecode written, caches filled
            measure([scripts[variant], "--version"], env(variant), project)
            measure([scripts[variant], "migrate", "up"], env(variant, at_head), project)
        for number in range(args.runs):
            say(f"round {number + 1} of {args.runs} ...")
            for variant in VARIANTS[number % 3:] + VARIANTS[:number % 3]:  # each goes first
                samples[variant, "version"].append(
                    measure([scripts[variant], "--version"], env(variant), project))
                samples[variant, "up_noop"].append(
                    measure([scripts[variant], "migrate", "up"], env(variant, at_head),
                            project))
                url, drop = fresh("otel_empty")
                try:
                    samples[variant, "up_empty"].append(
                        measure([scripts[variant], "migrate", "up"], env(variant, url),
                                project))
                    if projects.version_of(url) != expected:
                        raise SystemExit(f"bench: {variant} did not reach {expected}")
                finally:
                    drop()
    finally:
        drop_head()
        LOADS.append(os.getloadavg()[0])
    return samples


def render(samples: dict[tuple[str, str], list[Sample]], args: argparse.Namespace,
           where: str, server: str) -> str:
    def median(variant: str, case: str, what: str) -> float:
        return statistics.median(getattr(sample, what) for sample in samples[variant, case])

    lines = [
        "# OpenTelemetry and start-up", "",
        f"`python bench/otel.py --migrations {args.migrations} --runs {args.runs}`: "
        f"PostgreSQL {server}, cluster: {where}, {os.cpu_count()} CPUs, Python "
        f"{sys.version.split()[0]}; medians over {args.runs} rounds, the three installations "
        "measured in turn in each round (bench/otel.py says how each is made)"
        + ("; no warm-up" if args.no_warmup else "") + "; load average "
        + " then ".join(f"{load:.1f}" for load in LOADS) + ".", "",
        "Each cell: median wall time (median CPU, user + system); vs without: the ratios of "
        "the wall times and of the CPU times.", "",
        "| case | without OpenTelemetry | installed, not set up | vs without "
        "| traced (SDK provider set) | vs without |",
        "|------|------|------|------|------|------|",
    ]
    for case in CASES:
        cells = []
        for variant in VARIANTS:
            wall = median(variant, case, "wall")
            cpu = median(variant, case, "cpu")
            cells.append(f"{1000 * wall:.0f} ms (CPU {1000 * cpu:.0f} ms)")
            if variant != "without":
                cells.append(f"{wall / median('without', case, 'wall'):.2f}x / CPU "
                             f"{cpu / median('without', case, 'cpu'):.2f}x")
        label = LABELS[case].format(n=args.migrations)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--migrations", type=int, default=100)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--out", type=Path, default=HERE / "otel-results.md")
    parser.add_argument("--cluster-dir", default="auto")
    parser.add_argument("--database-url")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--no-warmup", action="store_true",
                        help="skip the untimed first run of each installation (bytecode, "
                             "caches): a quick check that the script works, not numbers")
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        if not args.quiet:
            print(f"bench: {text}", file=sys.stderr, flush=True)

    parent, where = ((None, "given URL") if args.database_url
                     else harness.cluster_parent(args.cluster_dir))
    with harness.database_server(args.database_url, 0.0, parent) as databases, \
            tempfile.TemporaryDirectory(prefix="fraiseql-bench-otel-") as workdir:
        samples = run(args, databases.fresh, Path(workdir), say)
        report = render(samples, args, where, databases.server_version())
        shutil.rmtree(Path(workdir) / "venv-without", ignore_errors=True)
    args.out.write_text(report, encoding="utf-8")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
