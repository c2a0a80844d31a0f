"""``fraiseql migrate drift``, the comparison: two catalogs in, the differences out.

A catalog (read by :mod:`fraiseql_alembic.engine.catalog`) maps each object kind of
:data:`KINDS` to its objects by name, each a dict of normalised attributes (strings,
numbers, booleans, None; never an OID).  :func:`compare` sets the live database's beside
the schema its applied migrations build; :func:`describe` writes one catalog as sorted
lines for a unified diff.  Pure: no I/O, no driver.

Ignore patterns (``[tool.fraiseql.drift] ignore``) are shell globs on an object's name
(``public.tmp_*``), or ``KIND:GLOB`` for one kind only (``extension:pg_stat_statements``).
A glob matches the object's name, the table an index, comment or grant belongs to, and
for ``x on public.t`` names (constraints and triggers in comments) the part after ``on``.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

#: Every kind of object a catalog holds, in the order differences are reported.
KINDS = (
    "schema", "extension", "type", "sequence", "table", "column", "constraint", "index",
    "view", "materialized view", "function", "trigger", "policy", "grant", "comment",
)

#: A catalog: kind -> object name -> its attributes.
Catalog = Mapping[str, Mapping[str, Mapping[str, Any]]]

MISSING = "missing"  # the migrations build it; the live database lacks it
UNEXPECTED = "unexpected"  # the live database has it; the migrations do not build it
CHANGED = "changed"  # both have it, with different attributes


@dataclass(frozen=True)
class Difference:
    """One object that differs: ``live`` or ``expected`` is None when that side lacks it."""

    kind: str
    name: str
    live: Mapping[str, Any] | None
    expected: Mapping[str, Any] | None

    @property
    def state(self) -> str:
        if self.live is None:
            return MISSING
        if self.expected is None:
            return UNEXPECTED
        return CHANGED

    @property
    def changed(self) -> tuple[str, ...]:
        """The attributes whose values differ (every attribute for a missing or unexpected
        object)."""
        live, expected = self.live or {}, self.expected or {}
        if self.live is None or self.expected is None:
            return tuple(sorted({*live, *expected}))
        return tuple(key for key in sorted({*live, *expected})
                     if live.get(key) != expected.get(key))

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "state": self.state,
                "changed": list(self.changed),
                "live": dict(self.live) if self.live is not None else None,
                "expected": dict(self.expected) if self.expected is not None else None}


def check_patterns(patterns: Iterable[object], where: str) -> tuple[str, ...]:
    """The ignore patterns, each a non-empty string whose ``KIND:`` prefix (if any) names a
    kind of :data:`KINDS`; else ConfigError naming ``where``."""
    found = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip():
            raise ConfigError(f"{where}: {pattern!r} is not a pattern; write a glob on object "
                              'names, e.g. "public.tmp_*", or KIND:GLOB, e.g. '
                              '"extension:pg_stat_statements"')
        kind, colon, rest = pattern.partition(":")
        if colon and not rest.strip():
            raise ConfigError(f"{where}: {pattern!r} has no glob after {kind}:")
        if colon and kind.strip() not in KINDS:
            raise ConfigError(f"{where}: {pattern!r} names no kind of object; use one of "
                              f"{', '.join(KINDS)} before the colon")
        found.append(pattern.strip())
    return tuple(found)


def ignored(kind: str, name: str, attributes: Mapping[str, Any] | None,
            patterns: Sequence[str]) -> bool:
    """Does one of ``patterns`` cover this object (see the module's docstring)?"""
    candidates = [name]
    if " on " in name:
        candidates.append(name.rsplit(" on ", 1)[1])
    table = (attributes or {}).get("table")
    if isinstance(table, str):
        candidates.append(table)
    for pattern in patterns:
        pattern_kind, colon, glob = pattern.partition(":")
        if colon and pattern_kind.strip() in KINDS:
            if pattern_kind.strip() != kind:
                continue
            glob = glob.strip()
        else:
            glob = pattern
        if any(fnmatch.fnmatchcase(candidate, glob) for candidate in candidates):
            return True
    return False


def compare(live: Catalog, expected: Catalog, ignore: Sequence[str] = ()
            ) -> tuple[Difference, ...]:
    """Every object of either catalog that the other lacks or holds differently, by kind
    (in :data:`KINDS` order) then name; objects ``ignore`` covers are left out."""
    differences = []
    for kind in KINDS:
        mine, theirs = live.get(kind, {}), expected.get(kind, {})
        for name in sorted({*mine, *theirs}):
            now, wanted = mine.get(name), theirs.get(name)
            if now == wanted:
                continue
            if ignored(kind, name, now or wanted, ignore):
                continue
            differences.append(Difference(kind, name, now, wanted))
    return tuple(differences)


def describe(catalog: Catalog, ignore: Sequence[str] = ()) -> list[str]:
    """The catalog as sorted lines, ``kind name`` then one indented ``attribute: value``
    line per attribute (a multi-line value, e.g. a function's definition, indented
    below it): the same schema always gives the same text."""
    return [line for block in _blocks(catalog, ignore).values() for line in block]


def _blocks(catalog: Catalog, ignore: Sequence[str]) -> dict[tuple[int, str], list[str]]:
    """:func:`describe`'s lines of each object, by (kind's rank, name)."""
    blocks = {}
    for rank, kind in enumerate(KINDS):
        objects = catalog.get(kind, {})
        for name in sorted(objects):
            attributes = objects[name]
            if ignored(kind, name, attributes, ignore):
                continue
            lines = [f"{kind} {name}"]
            for key in sorted(attributes):
                value = attributes[key]
                text = value if isinstance(value, str) else json.dumps(value)
                first, *rest = text.rstrip("\n").split("\n")
                lines.append(f"    {key}: {first}")
                lines.extend(f"        {line}" for line in rest)
            blocks[rank, name] = lines
    return blocks


def unified_diff(live: Catalog, expected: Catalog, ignore: Sequence[str] = (), *,
                 live_name: str = "live", expected_name: str = "expected",
                 context: int = 3) -> list[str]:
    """A unified diff from :func:`describe` of what the migrations build (``-``) to that of
    the live database (``+``), aligned object by object: an object one side lacks is all
    ``-`` or all ``+``, one both have differs in its own lines only."""
    import difflib  # lazy: only drift's diff needs it (every verb loads this module)

    mine, theirs = _blocks(live, ignore), _blocks(expected, ignore)
    rows: list[tuple[str, str]] = []  # (" ", "-" or "+", the line)
    for key in sorted({*mine, *theirs}):
        old, new = theirs.get(key, []), mine.get(key, [])
        matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                rows += [(" ", line) for line in old[i1:i2]]
            else:
                rows += [("-", line) for line in old[i1:i2]]
                rows += [("+", line) for line in new[j1:j2]]
    changed = [index for index, (mark, _) in enumerate(rows) if mark != " "]
    if not changed:
        return []
    hunks: list[list[int]] = []  # [first row, last row] of each hunk
    for index in changed:
        if hunks and index - hunks[-1][1] <= 2 * context:
            hunks[-1][1] = index
        else:
            hunks.append([index, index])
    before = [0]  # lines of the expected side before each row
    after = [0]  # and of the live side
    for mark, _ in rows:
        before.append(before[-1] + (mark != "+"))
        after.append(after[-1] + (mark != "-"))
    out = [f"--- {expected_name}", f"+++ {live_name}"]
    for first, last in hunks:
        start, stop = max(0, first - context), min(len(rows), last + context + 1)
        old_count = before[stop] - before[start]
        new_count = after[stop] - after[start]
        out.append(f"@@ -{_range(before[start], old_count)} "
                   f"+{_range(after[start], new_count)} @@")
        out += [mark + line for mark, line in rows[start:stop]]
    return out


def _range(start: int, count: int) -> str:
    """A hunk's side as unified diffs write it: ``first,count`` (1-based)."""
    return f"{start + 1 if count else start},{count}"


def shown_value(value: Any) -> str:
    """An attribute's value on one line, as the readable list shows it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
