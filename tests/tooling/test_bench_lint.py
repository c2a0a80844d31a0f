"""Tooling: bench/lint.py's folders (shaped as a real project's, or copied from one)
are what its report says they are."""

from __future__ import annotations

import statistics
from pathlib import Path

from scenarios import bench_module


def test_folder_argument_takes_an_optional_label() -> None:
    lint = bench_module("lint")
    assert lint.folder_argument("Lemmy=../lemmy/migrations") == (
        "Lemmy", Path("../lemmy/migrations"))
    assert lint.folder_argument("../lemmy/migrations") == (
        "../lemmy/migrations", Path("../lemmy/migrations"))


def test_a_real_folder_is_copied_up_migrations_only_in_path_order(tmp_path: Path) -> None:
    source = tmp_path / "src"
    for name, text in {"2020-01-02_add_b/up.sql": "b", "2020-01-02_add_b/down.sql": "x",
                       "2019-12-31_init/up.sql": "a", "003_c.down.sql": "x",
                       "004_d.sql": "d"}.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text, encoding="utf-8")
    copied = tmp_path / "migrations"
    assert bench_module("lint").copy_folder(source, copied) == 3
    found = sorted(copied.iterdir())
    assert [path.name for path in found] == [
        "0001_d.sql", "0002_init_up.sql", "0003_add_b_up.sql"]
    assert [path.read_text(encoding="utf-8") for path in found] == ["d", "a", "b"]


def test_the_shaped_folder_has_a_long_tail_of_big_files(tmp_path: Path) -> None:
    """Mostly short files and a few big ones, as bench/README.md says: median about
    430 bytes, mean about 1.5 KB."""
    lint = bench_module("lint")
    lint.write_corpus(tmp_path, 100, lint.SHAPE)
    sizes = [path.stat().st_size for path in tmp_path.glob("*.sql")]
    assert len(sizes) == 100
    assert 300 < statistics.median(sizes) < 600, statistics.median(sizes)
    assert 1000 < statistics.mean(sizes) < 2200, statistics.mean(sizes)
    assert max(sizes) > 10 * statistics.median(sizes)
