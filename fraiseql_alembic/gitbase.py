"""What a git ref holds in the migrations folder (for ``check --base REF``).

Runs ``git`` in the folder's repository; every failure is one ConfigError line.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from .errors import ConfigError


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
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
