"""The ``fraiseql`` console script: a SIGTERM is an interruption from the first line on.

The installed command imports this small module rather than :mod:`.cli.app`, so that
the SIGTERM handler is in place before click and the rest load (about 0.1 s).  A deploy
stopped while the command starts then exits 143 with one line, as one stopped later
does (:func:`.cli.signals.run_interruptible`), instead of being killed by the signal.
``fraiseql migrate lint`` in its plain forms runs without click (:mod:`.cli.lintfast`).
"""

from __future__ import annotations

# signal's C half: setting a handler is all this needs, and `signal` builds its enums at
# import (~0.4 ms); typeshed has no stub for it
import _signal  # type: ignore[import-not-found]
import gc
import sys
from types import FrameType

#: Exit status of a command stopped by SIGTERM (128 + 15), as a shell reports it.
SIGTERM_EXIT = 143


class Terminated(BaseException):
    """SIGTERM outside :func:`.cli.signals.run_interruptible`, raised in the main thread."""


def _raise_terminated(_signum: int, _frame: FrameType | None) -> None:
    raise Terminated


def main() -> None:
    _signal.signal(_signal.SIGTERM, _raise_terminated)
    try:
        if sys.argv[1:3] == ["migrate", "lint"]:  # its plain forms run without click
            # A short run whose trees reference counting frees: the cycle collector, at
            # its default of every 700 new objects, cost ~10% of a run (mypy does this too)
            gc.set_threshold(100_000, 50, 100)
            from .cli.lintfast import run  # lazy: the handler above must come first

            status = run(sys.argv[3:])
            if status is not None:
                # Printed and done: the cycle collections as Python exits would visit every
                # object (~20 M instructions, 7% of a run on an empty folder) to free memory
                # the process hands back anyway, and nothing of lint has a finalizer to run
                gc.freeze()
                sys.exit(status)
        from .cli.app import main as cli_main  # lazy: the handler above must come first

        cli_main()
    except Terminated:
        signals = sys.modules.get(f"{__package__}.cli.signals")  # loaded once work began
        if getattr(signals, "work_started", False):  # the work is over: what it did is kept
            line = ("Error: Stopped by SIGTERM as the command ended; what it did is kept "
                    "(`fraiseql migrate status` shows where the database is)")
        else:
            line = "Error: Stopped by SIGTERM while starting; nothing was changed"
        print(line, file=sys.stderr)
        sys.exit(SIGTERM_EXIT)
