"""`fraiseql migrate lint` against squawk on the same folders of migrations, side by side.

Writes a folder of N realistic migrations (tables with constraints, indexes, column
changes, backfills, views, functions, DO blocks, comments; about a third of them with a
finding), then times, in one run and alternating, each tool on it as a user runs it (a
new process), at several sizes to show how the time grows with the number of files.
squawk (PyPI `squawk-cli`) is installed into a throwaway virtualenv, never into the
project.  Results go to bench/lint-results.md.

    .venv/bin/python bench/lint.py                      # 342, 684 and 1368 files, 5 runs
    .venv/bin/python bench/lint.py --sizes 50 --runs 1  # a quick look
    .venv/bin/python bench/lint.py --squawk /path/to/squawk   # an installed squawk
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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


def write_corpus(folder: Path, count: int) -> None:
    """``count`` migrations in ``folder``: the templates in turn, starting with a table."""
    folder.mkdir(parents=True, exist_ok=True)
    for number in range(1, count + 1):
        template = TEMPLATES[(number - 1) % len(TEMPLATES)]
        (folder / f"{number:04d}_step_{number}.sql").write_text(template(number),
                                                                encoding="utf-8")


def install_squawk(where: Path) -> Path:
    """squawk-cli from PyPI in a throwaway virtualenv under ``where``."""
    venv = where / "squawk-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "squawk-cli"], check=True)
    return venv / "bin" / "squawk"


def timed(argv: list[str], cwd: Path) -> tuple[float, int]:
    """Wall-clock seconds of one run, and its exit code (findings make both tools exit 1)."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return elapsed, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="342,684,1368")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--squawk", help="an installed squawk (default: install squawk-cli)")
    parser.add_argument("--out", default=str(REPO / "bench" / "lint-results.md"))
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="fraiseql-lint-bench-"))
    try:
        squawk = Path(args.squawk) if args.squawk else install_squawk(work)
        version = subprocess.run([str(squawk), "--version"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        rows = []
        for size in sizes:
            project = work / f"p{size}"
            write_corpus(project / "migrations", size)
            files = sorted(str(path) for path in (project / "migrations").glob("*.sql"))
            ours = [str(FRAISEQL), "migrate", "lint"]
            theirs = [str(squawk), *files]
            timed(ours, project)  # warm the page cache and bytecode
            timed(theirs, project)
            times: dict[str, list[float]] = {"fraiseql": [], "squawk": []}
            for _ in range(args.runs):  # alternate, so that drift hits both alike
                times["fraiseql"].append(timed(ours, project)[0])
                times["squawk"].append(timed(theirs, project)[0])
            ours_s = statistics.median(times["fraiseql"])
            theirs_s = statistics.median(times["squawk"])
            rows.append((size, ours_s, min(times["fraiseql"]), theirs_s,
                         min(times["squawk"]), ours_s / theirs_s))
            print(f"{size} files: fraiseql {ours_s:.3f} s, squawk {theirs_s:.3f} s, "
                  f"ratio {ours_s / theirs_s:.2f}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_report(Path(args.out), rows, version, args.runs)


def write_report(out: Path, rows: list[tuple[int, float, float, float, float, float]],
                 squawk_version: str, runs: int) -> None:
    base = rows[0]
    lines = [
        "# lint: fraiseql against squawk",
        "",
        f"`.venv/bin/python bench/lint.py` on {platform.platform()}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs; {squawk_version} from PyPI "
        f"(squawk-cli, in a throwaway virtualenv). Each tool runs as a new process on the same "
        f"folder of generated migrations (bench/lint.py's templates), alternating, {runs} "
        "runs after a warm-up; median (and best) wall-clock seconds. `fraiseql migrate lint` "
        "reads the folder itself; squawk is given every file.",
        "",
        "| files | fraiseql (s) | best | squawk (s) | best | fraiseql / squawk | fraiseql per "
        "file vs the first size |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, ours, ours_best, theirs, theirs_best, ratio in rows:
        growth = (ours / size) / (base[1] / base[0])
        lines.append(f"| {size} | {ours:.3f} | {ours_best:.3f} | {theirs:.3f} | "
                     f"{theirs_best:.3f} | {ratio:.2f} | {growth:.2f} |")
    lines.append("")
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
