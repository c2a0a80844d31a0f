"""``fraiseql migrate lint`` in its plain forms, run before click loads.

:mod:`fraiseql_alembic.console` hands ``fraiseql migrate lint ...`` here first: loading
click and building the command group cost about a tenth of a lint run on a few hundred
files (bench/lint.py).  :func:`run` reads only the arguments it fully understands (the
options of :data:`OPTIONS`, each at most once, with a valid value; files that exist), runs
what :func:`.lintverb.lint` runs and prints what it prints.  Anything else, such as
``--help``, ``--verbose``, a bad value or a failure of the run, it leaves to click
(:func:`run` returns None) so that help, usage errors and error lines come from the one
definition in :mod:`.lintverb`; the lint is a pure read, so running it again there
changes nothing.  tests/process/test_lint_fast_path.py checks that :data:`OPTIONS`
matches the click command's options and that both paths print the same.
"""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import replace
from pathlib import Path

from .. import lintapi
from ..settings import resolve
from .lintformats import DOCUMENTS, FORMATS, render_findings, summary
from .streams import discard_stdout

#: Each option of ``lint`` with a value: its choices (None: any text), default None.
OPTIONS: dict[str, tuple[str, ...] | None] = {
    "--format": FORMATS,
    "--fail-on": ("info", "warning", "error"),
    "--base": None,
    "--path": None,
    "--database-url": None,
}
#: The flags of ``lint``.
FLAGS = ("--exit-zero",)


def run(args: list[str]) -> int | None:
    """The exit status of ``fraiseql migrate lint ARGS``, or None when click must run it."""
    parsed = _parse(args)
    if parsed is None or not _utf8(sys.stdout):
        return None
    values, files = parsed
    try:
        settings = resolve(Path(values["--path"]) if "--path" in values else None,
                           values.get("--database-url"), env="")  # as lintverb.lint
        fail_on = values.get("--fail-on")
        if fail_on is not None:
            settings = replace(settings, lint=replace(settings.lint, fail_on=fail_on))
        report = lintapi.lint(settings, files, base=values.get("--base"))
        output_format = values.get("--format", "text")
        lines = list(render_findings(report, output_format))
        if output_format not in DOCUMENTS:
            lines.append(summary(report))
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except Exception:  # click runs it again, and says what failed as every verb does
        return None
    try:
        for line in lines:
            sys.stdout.write(f"{line}\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `fraiseql migrate lint | head`: the reader has enough
        discard_stdout()
        return 141
    return 1 if report.failing and "--exit-zero" not in values else 0


def _parse(args: list[str]) -> tuple[dict[str, str], list[Path]] | None:
    """The options (name -> value; a flag maps to "") and files of ``args``, or None for
    anything :func:`run` leaves to click."""
    values: dict[str, str] = {}
    files: list[Path] = []
    position = 0
    while position < len(args):
        arg = args[position]
        position += 1
        if not arg.startswith("-"):
            if not _is_file(arg):
                return None
            files.append(Path(arg))
            continue
        name, equals, value = arg.partition("=")
        if name in values:
            return None
        if name in FLAGS and not equals:
            values[name] = ""
            continue
        if name not in OPTIONS:
            return None  # --help, --verbose, --, a typo: click's to answer
        if not equals:
            if position == len(args):
                return None
            value = args[position]
            position += 1
        choices = OPTIONS[name]
        if not value or value.startswith("-") or (choices is not None and value not in choices):
            return None
        values[name] = value
    return values, files


def _is_file(name: str) -> bool:
    """What ``click.Path(exists=True, dir_okay=False)`` accepts."""
    try:
        return name != "" and not stat.S_ISDIR(os.stat(name).st_mode)
    except (OSError, ValueError):
        return False


def _utf8(stream: object) -> bool:
    """Whether ``stream`` takes any text as click.echo writes it (else click decides)."""
    encoding = str(getattr(stream, "encoding", "") or "").lower().replace("-", "")
    return encoding in ("utf8", "utf_8")
