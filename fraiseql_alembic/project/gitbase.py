"""What a git ref holds in the migrations folder (for ``check --base REF``).

Runs ``git`` in the folder's repository; every failure is one ConfigError line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    import subprocess


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    import subprocess  # lazy: ~3 ms that only --base and squash need (lint loads this module)

    try:
        return subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, check=False
        )
    except FileNotFoundError as err:
        raise ConfigError("--base needs git, which is not installed (not on PATH)") from err


def files_at(folder: Path, ref: str) -> set[str]:
    """Names of the files directly inside ``folder`` in commit ``ref``."""
    inside = _git(folder, "rev-parse", "--show-prefix")
    if inside.returncode != 0:
        said = " ".join(inside.stderr.split())
        if "safe.directory" in said or "dubious ownership" in said:
            raise ConfigError(
                f"--base {ref}: git refuses to read {folder}: {said[:300]}"
            )
        raise ConfigError(
            f"--base {ref}: {folder} is not inside a git repository; run check in a clone "
            "of the project, or leave out --base"
        )
    if ref.startswith("-") or _git(
        folder, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"
    ).returncode != 0:
        raise ConfigError(
            f"--base {ref}: no such branch, tag or commit in this repository (in GitHub "
            "Actions, check out with `fetch-depth: 0`, then use origin/<branch>; see "
            "docs/check.md)"
        )
    prefix = inside.stdout.strip()
    listing = _git(folder, "ls-tree", "-z", "--name-only", "--full-name", ref, "--", ".")
    if listing.returncode != 0:
        raise ConfigError(f"--base {ref}: git ls-tree failed: {listing.stderr.strip()}")
    names: set[str] = set()
    for path in listing.stdout.split("\0"):
        if path.startswith(prefix) and path and "/" not in path[len(prefix):]:
            names.add(path[len(prefix):])
    return names


def fork_point(folder: Path, ref: str) -> str:
    """Where this branch left ``ref`` (``git merge-base ref HEAD``); a ConfigError when they
    share no history.  Call :func:`files_at` first (it checks the repository and the ref)."""
    merge_base = _git(folder, "merge-base", ref, "HEAD")
    if merge_base.returncode != 0:
        raise ConfigError(
            f"--base {ref}: this branch and {ref} share no commit that git can see (a shallow "
            "clone?); fetch the history (in GitHub Actions, `fetch-depth: 0` on "
            "actions/checkout) so that check can tell what the branch changed"
        )
    return merge_base.stdout.strip()


def changed_since(folder: Path, commit: str) -> dict[str, str]:
    """Files directly inside ``folder`` that differ from ``commit`` in the working tree:
    name -> ``M`` (modified) or ``D`` (deleted)."""
    diff = _git(folder, "diff", "--no-renames", "--name-status", "-z", commit, "--", ".")
    if diff.returncode != 0:
        raise ConfigError(f"git diff {commit} failed: {diff.stderr.strip()}")
    prefix = _git(folder, "rev-parse", "--show-prefix").stdout.strip()
    fields = diff.stdout.split("\0")
    changed: dict[str, str] = {}
    for status, path in zip(fields[::2], fields[1::2], strict=False):  # a trailing "" field
        name = path[len(prefix):] if path.startswith(prefix) else ""
        if name and "/" not in name and status in ("M", "D"):
            changed[name] = status
    return changed


def content_at(folder: Path, ref: str, filename: str) -> bytes:
    """The bytes of ``folder/filename`` in commit ``ref``."""
    import subprocess  # lazy: as in _git

    try:
        shown = subprocess.run(
            ["git", "show", f"{ref}:./{filename}"], cwd=folder, capture_output=True,
            check=False,
        )
    except FileNotFoundError as err:
        raise ConfigError("--base needs git, which is not installed (not on PATH)") from err
    if shown.returncode != 0:
        raise ConfigError(f"--base {ref}: git show {filename} failed: "
                          f"{shown.stderr.decode(errors='replace').strip()}")
    return shown.stdout


def uncommitted(folder: Path) -> dict[str, str] | None:
    """Files directly inside ``folder`` whose working-tree state is not committed (``git
    status --porcelain``): name -> its two-letter code (``??`` untracked, `` M`` modified,
    ``A `` added but not committed, ...).  None when git is missing or ``folder`` is not in
    a git work tree (``squash`` checks nothing then)."""
    import subprocess  # lazy: as in _git

    try:
        listed = subprocess.run(
            ["git", "status", "--porcelain=v1", "-z", "--untracked-files=all",
             "--no-renames", "--", "."],
            cwd=folder, capture_output=True, text=True, check=False,
        )
    except FileNotFoundError:
        return None
    if listed.returncode != 0:
        return None
    prefix = _git(folder, "rev-parse", "--show-prefix").stdout.strip()  # paths: from the top
    found: dict[str, str] = {}
    for entry in listed.stdout.split("\0"):
        code, path = entry[:2], entry[3:]
        name = path[len(prefix):] if path.startswith(prefix) else ""
        if name and "/" not in name:
            found[name] = code
    return found
