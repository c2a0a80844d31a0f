"""`fraiseql migrate lint` against squawk on the same folders of migrations, side by side.

Writes a folder of N migrations shaped as a real project's (tables with constraints,
indexes, column changes, backfills, views, functions, DO blocks, comments; about a third
of them with a finding; mostly short files and a long tail of big ones, as in
LemmyNet/lemmy's migrations: see SHAPE), then times, in one run and alternating, each tool
on it as a user runs it (a new process), at several sizes to show how the time grows with
the number of files; and once on a folder of small files (one template each), where
starting the tool weighs most.  ``--folder DIR`` times both tools on a real project's
migrations instead (every ``*.sql`` under DIR but down migrations, in path order, copied
into a numbered folder).
Both tools are installed as a user installs them, each into a throwaway virtualenv:
squawk from PyPI (`squawk-cli`, never a dependency of the project), fraiseql from the
wheel pip builds of this checkout (`pip install .`: bytecode compiled, no editable-install
finder to run at each start; its dependencies come from this virtualenv, through a .pth
line).  The development checkout's own command (an editable install, as the environment
says: here PYTHONDONTWRITEBYTECODE=1) is timed too, for reference.  Results go to
bench/lint-results.md.

    .venv/bin/python bench/lint.py                      # 342, 684 and 1368 files, 5 runs
    .venv/bin/python bench/lint.py --sizes 50 --runs 1  # a quick look
    .venv/bin/python bench/lint.py --squawk /path/to/squawk   # an installed squawk
    .venv/bin/python bench/lint.py --folder ../lemmy/migrations  # a real project's folder
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FRAISEQL = Path(sys.executable).parent / "fraiseql"

# Templates of one migration each; {n} is the migration's number, {p} the previous one's.
TEMPLATES: list[Callable[[int], str]] = [
    lambda n: f"""-- Migration {n:03d}: Create tb_item{n}
-- migrate:up
CREATE TABLE tb_item{n} (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        VARCHAR(200) NOT NULL,
    price       NUMERIC(12, 2) NOT NULL DEFAULT 0 CHECK (price >= 0),
    data        JSONB NOT NULL DEFAULT '{{}}',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT tb_item{n}_name_key UNIQUE (name)
);
CREATE INDEX idx_item{n}_created ON tb_item{n} (created_at);
COMMENT ON TABLE tb_item{n} IS 'Items, batch {n}';

-- migrate:down
DROP TABLE tb_item{n};
""",
    lambda n: f"""-- Migration {n:03d}: Index tb_item{n - 1} by price
-- The table is large in production: build the index without blocking writes.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_item{n - 1}_price ON tb_item{n - 1} (price)
    WHERE price > 0;
""",
    lambda n: f"""-- Migration {n:03d}: Add a status column to tb_item{n - 2}
-- migrate:up
ALTER TABLE tb_item{n - 2} ADD COLUMN status TEXT NOT NULL DEFAULT 'draft';
ALTER TABLE tb_item{n - 2} ADD CONSTRAINT tb_item{n - 2}_status_check
    CHECK (status IN ('draft', 'published', 'archived')) NOT VALID;
-- migrate:down
ALTER TABLE tb_item{n - 2} DROP COLUMN status;
""",
    lambda n: f"""-- Migration {n:03d}: Backfill and views
-- migrate:up
CREATE OR REPLACE VIEW v_item{n - 3} AS
SELECT i.id, i.name, i.price, i.created_at,
       CASE WHEN i.price > 100 THEN 'premium' ELSE 'standard' END AS tier
FROM tb_item{n - 3} i
WHERE i.created_at > now() - INTERVAL '1 year';

UPDATE tb_item{n - 3} SET data = jsonb_set(data, '{{source}}', '"import"')
WHERE id BETWEEN 1 AND 10000;
-- migrate:down
DROP VIEW v_item{n - 3};
""",
    lambda n: f"""-- Migration {n:03d}: Functions and a trigger
-- migrate:up
CREATE OR REPLACE FUNCTION fn_touch_{n}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.created_at := coalesce(NEW.created_at, now());
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_touch_{n} BEFORE INSERT ON tb_item{n - 4}
    FOR EACH ROW EXECUTE FUNCTION fn_touch_{n}();
-- migrate:down
DROP TRIGGER trg_touch_{n} ON tb_item{n - 4};
DROP FUNCTION fn_touch_{n}();
""",
    lambda n: f"""-- Migration {n:03d}: Risky changes to tb_item{n - 5}
-- migrate:up
ALTER TABLE tb_item{n - 5} ALTER COLUMN name TYPE TEXT;
ALTER TABLE tb_item{n - 5} ADD COLUMN owner_id BIGINT;
CREATE INDEX idx_item{n - 5}_owner ON tb_item{n - 5} (owner_id);
ALTER TABLE tb_item{n - 5} ALTER COLUMN price SET NOT NULL;
-- migrate:down
ALTER TABLE tb_item{n - 5} DROP COLUMN owner_id;
""",
    lambda n: f"""-- Migration {n:03d}: Guarded data fix
DO $$
DECLARE
    missing integer;
BEGIN
    SELECT count(*) INTO missing FROM tb_item{n - 6} WHERE data = '{{}}'::jsonb;
    IF missing > 0 THEN
        RAISE NOTICE 'items without data: %', missing;
    END IF;
END
$$;
INSERT INTO tb_item{n - 6} (name, price) VALUES ('seed-{n}-a', 1.00), ('seed-{n}-b', 2.50)
ON CONFLICT (name) DO NOTHING;
""",
]


#: How many templates each migration of the folder holds, file after file (then again).
#: Real folders hold mostly short files and a long tail of big ones: LemmyNet/lemmy's 342
#: up migrations (commit 439734dd6) have a median of 440 bytes and 3 statements, a mean of
#: 1,758 bytes and 9.5 statements, the largest 33 KB.  Here: twelve files of one template,
#: four of 3, two of 8, one of 15 and one of 35 in every 20, a mean of 4.5 templates (about
#: 1.7 KB and 15 statements a file; more statements a byte than Lemmy's, which costs
#: fraiseql more than squawk) and a median of one (about 370 bytes).
SHAPE = (1, 1, 3, 1, 1, 8, 1, 3, 1, 1, 15, 1, 3, 1, 1, 8, 1, 3, 1, 35)


def write_corpus(folder: Path, count: int, shape: tuple[int, ...] = SHAPE) -> None:
    """``count`` migrations in ``folder``, the i-th holding ``shape[i % len(shape)]`` of
    the templates, taken in turn (the first is a table: later ones use the tables of
    earlier ones).  A file of several holds their up sections in order and their down
    sections in reverse."""
    folder.mkdir(parents=True, exist_ok=True)
    taken = 0
    for number in range(1, count + 1):
        parts = []
        for _ in range(shape[(number - 1) % len(shape)]):
            taken += 1
            parts.append(TEMPLATES[(taken - 1) % len(TEMPLATES)](taken))
        (folder / f"{number:04d}_step_{number}.sql").write_text(_joined(parts),
                                                                encoding="utf-8")


def _joined(parts: list[str]) -> str:
    """One migration of the templates ``parts``: the first's heading, every up section,
    then every down section in reverse."""
    if len(parts) == 1:
        return parts[0]
    ups: list[str] = []
    downs: list[str] = []
    for part in parts:
        head, marker, rest = part.partition("-- migrate:up\n")
        up, _, down = (rest if marker else head).partition("-- migrate:down\n")
        ups.append(up)
        downs.insert(0, down)
    heading = parts[0].split("\n", 1)[0]
    return f"{heading}\n-- migrate:up\n{''.join(ups)}-- migrate:down\n{''.join(downs)}"


def copy_folder(source: Path, folder: Path) -> int:
    """Every ``*.sql`` under ``source`` but down migrations (``down.sql``, ``*.down.sql``),
    in the order of their paths, copied into ``folder`` as ``0001_<name>.sql``, ...;
    how many."""
    found = sorted(path for path in source.rglob("*.sql")
                   if path.name != "down.sql" and not path.name.endswith(".down.sql"))
    folder.mkdir(parents=True, exist_ok=True)
    for number, path in enumerate(found, 1):
        words = path.relative_to(source).with_suffix("").as_posix()
        slug = "_".join(re.findall(r"[a-z][a-z0-9]*", words.lower()))[:60] or "migration"
        shutil.copyfile(path, folder / f"{number:04d}_{slug}.sql")
    return len(found)


def folder_argument(given: str) -> tuple[str, Path]:
    """``--folder [LABEL=]DIR``: the report's name for the folder, and the folder."""
    label, _, where = given.partition("=") if "=" in given else ("", "", given)
    return label or where, Path(where)


def install_fraiseql(where: Path) -> Path:
    """This checkout's wheel in a throwaway virtualenv under ``where``, as `pip install .`
    puts it (with its bytecode); the dependencies are this virtualenv's (a .pth line)."""
    wheels = where / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(wheels), str(REPO)], check=True)
    (wheel,) = wheels.glob("fraiseql_alembic-*.whl")
    venv = where / "fraiseql-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_path('purelib'))"], capture_output=True,
                             text=True, check=True).stdout.strip()
    Path(purelib, "_bench_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n",
                                                         encoding="utf-8")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-index", "--no-deps", str(wheel)], check=True)
    return venv / "bin" / "fraiseql"


def install_squawk(where: Path) -> Path:
    """squawk-cli from PyPI in a throwaway virtualenv under ``where``."""
    venv = where / "squawk-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "squawk-cli"], check=True)
    return venv / "bin" / "squawk"


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None
          ) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of one run.  CPU time is what the tool
    itself costs; on a shared machine the wall clock also counts the wait for a core."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False, env=env)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):  # findings make both tools exit 1
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="342,684,1368",
                        help="folders of this many migrations shaped as a real project's "
                             "(SHAPE); empty: none")
    parser.add_argument("--small", type=int, default=342,
                        help="and a folder of this many small migrations, one template "
                             "each (0: none)")
    parser.add_argument("--folder", action="append", default=[], metavar="[LABEL=]DIR",
                        help="a real project's migrations folder, named LABEL in the report "
                             "(default: DIR) (repeatable)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--squawk", help="an installed squawk (default: install squawk-cli)")
    parser.add_argument("--out", default=str(REPO / "bench" / "lint-results.md"))
    args = parser.parse_args()
    cases: list[tuple[str, Callable[[Path], int]]] = [("empty folder",
                                                        partial(_written, count=0))]
    for size in [int(size) for size in args.sizes.split(",") if size]:
        cases.append((f"{size} files", partial(_written, count=size)))
    if args.small:
        cases.append((f"{args.small} small files",
                      partial(_written, count=args.small, shape=(1,))))
    for given in args.folder:
        label, source = folder_argument(given)
        cases.append((label, partial(copy_folder, source.resolve())))
    work = Path(tempfile.mkdtemp(prefix="fraiseql-lint-bench-"))
    try:
        squawk = Path(args.squawk) if args.squawk else install_squawk(work)
        version = subprocess.run([str(squawk), "--version"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        installed = install_fraiseql(work)
        python = [str(installed.parent / "python"), "-c", "pass"]
        timed(python, work)
        interpreter = statistics.median(timed(python, work)[1] for _ in range(args.runs))
        rows = [_measure(label, write, work / f"p{index}", installed, squawk, args.runs)
                for index, (label, write) in enumerate(cases)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_report(Path(args.out), rows, version, args.runs, interpreter)


def _written(folder: Path, count: int, shape: tuple[int, ...] = SHAPE) -> int:
    write_corpus(folder, count, shape)
    return count


def _measure(label: str, write: Callable[[Path], int], project: Path, installed: Path,
             squawk: Path, runs: int) -> Row:
    """Both tools (and the checkout's command), alternating, on the folder ``write``
    fills: the medians."""
    count = write(project / "migrations")
    paths = sorted((project / "migrations").glob("*.sql"))
    files = [str(path) for path in paths]
    tools = {
        "fraiseql": [str(installed), "migrate", "lint"],
        "checkout": [str(FRAISEQL), "migrate", "lint"],
        "squawk": [str(squawk), *files] if files else [str(squawk), "--help"],
    }
    for argv in tools.values():  # warm the page cache
        timed(argv, project)
    times: dict[str, list[tuple[float, float]]] = {tool: [] for tool in tools}
    for _ in range(runs):  # alternate, so that drift hits all alike
        for tool, argv in tools.items():
            times[tool].append(timed(argv, project))
    row = Row(label, count, sum(path.stat().st_size for path in paths),
              *(statistics.median(run[index] for run in times[tool])
                for tool in ("fraiseql", "squawk", "checkout") for index in (0, 1)))
    print(f"{label}: fraiseql {row.ours_wall:.3f} s (cpu {row.ours_cpu:.3f}), "
          f"checkout {row.checkout_wall:.3f} s (cpu {row.checkout_cpu:.3f}), "
          f"squawk {row.theirs_wall:.3f} s (cpu {row.theirs_cpu:.3f})", flush=True)
    return row


@dataclass(frozen=True)
class Row:
    label: str
    files: int
    size: int  # bytes of SQL
    ours_wall: float
    ours_cpu: float
    theirs_wall: float
    theirs_cpu: float
    checkout_wall: float  # the development checkout's command (editable install)
    checkout_cpu: float


def write_report(out: Path, rows: list[Row], squawk_version: str, runs: int,
                 interpreter: float) -> None:
    empty, measured = rows[0], rows[1:]
    lines = [
        "# lint: fraiseql against squawk",
        "",
        f"`.venv/bin/python bench/lint.py` on {platform.platform()}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs. Both tools installed as a "
        f"user installs them, each in a throwaway virtualenv: {squawk_version} from PyPI "
        "(squawk-cli), fraiseql from the wheel pip builds of this checkout (`pip install "
        ".`: compiled bytecode, no editable-install finder). Each tool runs as a new "
        "process on the same folder of migrations, alternating, "
        f"{runs} runs after a warm-up; medians. `fraiseql migrate lint` reads the folder "
        "itself; squawk is given every file. The folders: `N files` are bench/lint.py's "
        "templates shaped as a real project's folder (`SHAPE`: mostly short files, a long "
        "tail of big ones; mean size as LemmyNet/lemmy's migrations); `N small files` hold "
        "one template each (about 370 bytes), where starting the tool weighs most; a path "
        "is a real project's folder given with `--folder`. The checkout columns are the "
        "development virtualenv's command (an editable install, run as the environment "
        f"says: PYTHONDONTWRITEBYTECODE="
        f"{os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}), for reference. CPU is user + "
        "system time of the process (squawk's counts every thread it runs); wall is the "
        "clock. Load average when the report was written: "
        f"{os.getloadavg()[0]:.1f} (on {os.cpu_count()} CPUs; above that, wall times "
        "include waiting for a core, and CPU times grow too).",
        "",
        "| folder | files | KiB | fraiseql wall (s) | fraiseql CPU (s) | squawk wall (s) "
        "| squawk CPU (s) | wall ratio | CPU ratio | checkout wall (s) | checkout CPU (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(f"| {row.label} | {row.files} | {row.size / 1024:.0f} | "
                     f"{row.ours_wall:.3f} | {row.ours_cpu:.3f} | "
                     f"{row.theirs_wall:.3f} | {row.theirs_cpu:.3f} | "
                     f"{row.ours_wall / row.theirs_wall:.2f} | "
                     f"{row.ours_cpu / max(row.theirs_cpu, 1e-3):.2f} | "
                     f"{row.checkout_wall:.3f} | {row.checkout_cpu:.3f} |")
    lines += [
        "",
        "The empty folder (squawk: `--help`) is what starting each tool costs; of "
        f"fraiseql's, {interpreter:.3f} s CPU is Python's own start (`python -c pass` in "
        "its virtualenv). Above that start, per file and per KiB of SQL (CPU milliseconds; "
        "equal values across sizes mean linear time):",
        "",
        "| folder | fraiseql ms/file | squawk ms/file | fraiseql ms/KiB | squawk ms/KiB "
        "| ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in measured:
        ours = (row.ours_cpu - empty.ours_cpu) * 1000
        theirs = (row.theirs_cpu - empty.theirs_cpu) * 1000
        kib = row.size / 1024
        lines.append(f"| {row.label} | {ours / row.files:.3f} | {theirs / row.files:.3f} | "
                     f"{ours / kib:.3f} | {theirs / kib:.3f} | "
                     f"{ours / theirs if theirs > 0 else float('inf'):.2f} |")
    lines.append("")
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
