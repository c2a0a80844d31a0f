"""The process's output streams: is it a terminal, may it have colour, and what to do
once its reader went away.  Standard library only (the group in :mod:`.app` uses it
before any verb loads)."""

from __future__ import annotations

import os
import sys
from typing import TextIO

#: Why ``down`` refuses with no terminal, and what to do instead (an answer piped in is
#: not read: ``echo y | fraiseql migrate down`` must not roll back by accident).
NO_TERMINAL_TO_ASK = (
    "there is no terminal to ask on (standard input is not a terminal, and a piped answer "
    "such as `echo y |` is not read). Run it on a terminal to be asked, or add --force to "
    "roll back without asking; nothing was changed"
)


def isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


def wants_color(stream: TextIO) -> bool:
    """Colour on a terminal, unless NO_COLOR is set to anything but an empty string."""
    return isatty(stream) and not os.environ.get("NO_COLOR")


def discard_stdout() -> None:
    """Point stdout at /dev/null after its reader went away, so that later writes and
    the flush at exit do not raise BrokenPipeError again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (e.g. under a test runner)
        pass
