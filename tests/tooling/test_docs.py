"""The docs keep up with the CLI: every `fraiseql migrate` verb has a page naming its options,
every page is reachable from docs/index.md and from the mkdocs nav, and the site builds with
`mkdocs build --strict` (no broken page or #anchor link).

No database needed: these tests read the Click command tree, the Markdown files and mkdocs.yml.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from fraiseql_alembic.cli.app import migrate

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"

# A Markdown link to a page in docs/: [text](page.md) or [text](page.md#anchor).
_LINK_RE = re.compile(r"\]\(\s*(?:\./)?(?P<page>[A-Za-z0-9_.-]+\.md)(?:#[^)\s]*)?\s*\)")


def _commands() -> list[tuple[str, click.Command]]:
    assert isinstance(migrate, click.Group)
    context = click.Context(migrate, info_name="migrate")
    names = migrate.list_commands(context)
    assert names, "fraiseql migrate has no commands"
    commands = [(name, migrate.get_command(context, name)) for name in names]
    return [(name, command) for name, command in commands if command is not None]


def _long_options(command: click.Command) -> list[str]:
    """Every ``--xyz`` spelling of the command's options (``--flag/--no-flag`` both)."""
    found: list[str] = []
    for param in command.params:
        if not isinstance(param, click.Option):
            continue
        for opt in (*param.opts, *param.secondary_opts):
            if opt.startswith("--") and opt != "--help" and opt not in found:
                found.append(opt)
    return found


def _mentions(text: str, option: str) -> bool:
    """``--lock-wait`` as a whole word: not a prefix of ``--lock-wait-x``, not inside ``a--lock-wait``."""
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


COMMANDS = _commands()


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=[name for name, _ in COMMANDS])
def test_every_command_has_a_page_naming_its_options(name: str, command: click.Command) -> None:
    page = DOCS / f"{name}.md"
    assert page.is_file(), f"`fraiseql migrate {name}` has no page: write docs/{name}.md"
    text = page.read_text(encoding="utf-8")
    missing = [option for option in _long_options(command) if not _mentions(text, option)]
    assert not missing, (
        f"docs/{name}.md does not mention {', '.join(missing)} of `fraiseql migrate {name}` "
        f"(see `fraiseql migrate {name} --help`)"
    )


def test_option_lists_are_not_empty() -> None:
    """Guards the test above against silently checking nothing."""
    options = {name: _long_options(command) for name, command in COMMANDS}
    assert "--lock-wait" in options.get("up", []), options
    assert "--force" in options.get("down", []), options
    assert all("--help" not in found for found in options.values())


def test_every_page_is_linked_from_the_index() -> None:
    index = DOCS / "index.md"
    assert index.is_file(), "docs/index.md is missing"
    linked = {match.group("page") for match in _LINK_RE.finditer(index.read_text(encoding="utf-8"))}
    pages = sorted(path.name for path in DOCS.glob("*.md") if path.name != "index.md")
    assert pages, "docs/ has no pages besides index.md"
    unlinked = [page for page in pages if page not in linked]
    assert not unlinked, f"docs/index.md does not link to: {', '.join(unlinked)}"


def test_index_links_point_at_existing_pages() -> None:
    text = (DOCS / "index.md").read_text(encoding="utf-8")
    broken = sorted({m.group("page") for m in _LINK_RE.finditer(text)} - {p.name for p in DOCS.glob("*.md")})
    assert not broken, f"docs/index.md links to missing pages: {', '.join(broken)}"


def _nav_pages(node: Any) -> Iterator[str]:
    """Every page file named in an mkdocs `nav` (a list of pages, ``{title: page}`` or sections)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for item in node:
            yield from _nav_pages(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from _nav_pages(value)


def _mkdocs_config() -> dict[str, Any]:
    assert MKDOCS_YML.is_file(), "mkdocs.yml is missing at the repository root"
    config = yaml.safe_load(MKDOCS_YML.read_text(encoding="utf-8"))
    assert isinstance(config, dict), "mkdocs.yml is not a mapping"
    return config


def test_nav_pages_are_read() -> None:
    """Guards the nav tests below against walking an empty or misread nav."""
    pages = list(_nav_pages(_mkdocs_config().get("nav")))
    assert "index.md" in pages and "up.md" in pages, pages
    assert list(_nav_pages(["a.md", {"T": "b.md"}, {"S": [{"U": "c.md"}, "d.md"]}])) == [
        "a.md",
        "b.md",
        "c.md",
        "d.md",
    ]


def test_every_page_is_in_the_mkdocs_nav() -> None:
    config = _mkdocs_config()
    assert config.get("docs_dir") == "docs", "mkdocs.yml must build the docs/ folder"
    in_nav = list(_nav_pages(config.get("nav")))
    pages = sorted(path.name for path in DOCS.glob("*.md"))
    missing = [page for page in pages if page not in in_nav]
    assert not missing, f"mkdocs.yml nav does not list: {', '.join(missing)}"
    not_pages = sorted({page for page in in_nav if page not in pages})
    assert not not_pages, f"mkdocs.yml nav lists pages that do not exist: {', '.join(not_pages)}"
    repeated = sorted({page for page in in_nav if in_nav.count(page) > 1})
    assert not repeated, f"mkdocs.yml nav lists these pages more than once: {', '.join(repeated)}"


def test_mkdocs_build_is_strict_clean(tmp_path: Path) -> None:
    """Broken links, unknown #anchors and pages left out of nav all fail `--strict`."""
    site = tmp_path / "site"
    command = [sys.executable, "-m", "mkdocs", "build", "--strict"]
    command += ["--config-file", str(MKDOCS_YML), "--site-dir", str(site)]
    result = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}{result.stderr}"
    built = sorted(path.name for path in site.glob("*.html"))
    expected = [path.with_suffix(".html").name for path in DOCS.glob("*.md")]
    assert set(expected) <= set(built), (expected, built)
