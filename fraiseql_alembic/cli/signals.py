"""SIGINT and SIGTERM while a verb works: the work runs in a worker thread, and the main
thread turns the first signal into a clean cancel and a second into an exit.

The installed command handles a SIGTERM that lands before this module is in charge
(:mod:`fraiseql_alembic.console`); it reads :data:`work_started` to word its line.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

import click

from ..engine.cancel import CancelToken, MigrationInterrupted
from .reporting import TextReporter

T = TypeVar("T")

#: Set once :func:`run_interruptible` starts work (read by :mod:`.console` on a SIGTERM).
work_started = False


def run_interruptible(work: Callable[[CancelToken], T]) -> T:
    """Run ``work`` in a worker thread; SIGINT/SIGTERM cancel it cleanly.

    The first signal cancels the running statement on the server and stops before
    the next one: the migration in flight is rolled back, the lock released.  A
    second signal exits at once (the server rolls back when the connection drops).
    """
    token = CancelToken()
    if threading.current_thread() is not threading.main_thread():
        return work(token)
    results: list[T] = []
    errors: list[BaseException] = []
    finished = threading.Event()
    caught: list[tuple[str, int]] = []  # the first signal's name and exit status

    def target() -> None:
        try:
            results.append(work(token))
        except BaseException as err:  # handed to the main thread below
            errors.append(err)
        finally:
            finished.set()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Python runs this in the main thread between any two of its steps, wherever the
        # wait below is: it raises nothing (but the exit a second signal asks for), so no
        # moment of the wait lets a signal out as an exception while the work goes on
        name, code = ("SIGTERM", 143) if signum == signal.SIGTERM else ("SIGINT", 130)
        if caught:  # marked first: a second signal that lands inside this handler exits
            click.echo(f"{name} again: stopping now; the server rolls back what was "
                       "in flight.", err=True)
            sys.exit(code)
        caught.append((name, code))
        click.echo(f"{name}: cancelling the running statement and rolling back...",
                   err=True)
        token.cancel(name)

    worker = threading.Thread(target=target, name="fraiseql-migrate", daemon=True)
    # SIGINT stays ignored where it was (a background job's), as Python leaves it
    handled = [signal.SIGTERM] + (
        [signal.SIGINT] if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN else [])
    previous = {signum: signal.signal(signum, on_signal) for signum in handled}
    global work_started
    work_started = True
    try:
        worker.start()
        # Wait on an Event, not Thread.join(): a signal landing inside join() can leave
        # the thread's bookkeeping claiming it ended while it still runs.  The timeout:
        # a signal delivered to the worker thread runs its handler once this one wakes
        while not finished.wait(0.05):
            pass
    finally:
        for signum, handler in previous.items():  # None: one set outside Python
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    exit_code, caught_name = (caught[0][1], caught[0][0]) if caught else (0, "")
    if errors:
        error = errors[0]
        if isinstance(error, MigrationInterrupted) and exit_code:
            error.exit_code = exit_code
        raise error
    if exit_code:  # the signal came as the work ended: it finished, nothing was rolled back
        stopped = MigrationInterrupted(
            f"Stopped by {caught_name} as the work ended: it had finished, so nothing was "
            "rolled back and what it did is kept"
        )
        stopped.exit_code = exit_code
        raise stopped
    return results[0]


def run_reported(
    work: Callable[[CancelToken], T], reporter: TextReporter, *, is_upgrade: bool
) -> T:
    """:func:`run_interruptible`, telling the user what did and did not happen on a stop."""
    try:
        return run_interruptible(work)
    except MigrationInterrupted:
        reporter.failed()
        for line in reporter.summary_after_stop(is_upgrade=is_upgrade):
            click.echo(line, err=True)
        raise
    except BaseException:
        reporter.failed()
        raise
