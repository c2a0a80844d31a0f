"""Pure (no database): what ``run_interruptible`` makes of a signal, in this process."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from fraiseql_alembic.cli.signals import run_interruptible
from fraiseql_alembic.engine.cancel import CancelToken, MigrationInterrupted


@pytest.fixture(autouse=True)
def _sigint_raises_keyboardinterrupt() -> Iterator[None]:
    """SIGINT as a terminal delivers it to a foreground command (Python's default handler).

    A run started in the background (`pytest ... &` in a script) inherits SIGINT ignored,
    and Python keeps it ignored: the SIGINT case would then wait for a signal that never
    comes."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _finishes_after_a_signal(signum: int) -> object:
    """Work that is sent ``signum`` as it ends and finishes anyway (its last COMMIT was
    already answered): the token is cancelled, but nothing is left to cancel."""

    def work(token: CancelToken) -> str:
        threading.Event().wait(0.2)  # the main thread is waiting for the work by then
        os.kill(os.getpid(), signum)
        for _ in range(200):  # the main thread cancels the token on the signal
            if token.cancelled:
                break
            threading.Event().wait(0.01)
        assert token.cancelled
        return "all applied"

    return work


@pytest.mark.parametrize(("signum", "name", "code"), [
    (signal.SIGINT, "SIGINT", 130), (signal.SIGTERM, "SIGTERM", 143),
])
def test_a_signal_as_the_work_ends_is_not_reported_as_success(
    signum: int, name: str, code: int, capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(MigrationInterrupted) as stopped:
        run_interruptible(_finishes_after_a_signal(signum))  # type: ignore[arg-type]
    assert stopped.value.exit_code == code
    assert str(stopped.value) == (
        f"Stopped by {name} as the work ended: it had finished, so nothing was rolled back "
        "and what it did is kept"
    )
    assert f"{name}: cancelling the running statement" in capsys.readouterr().err


def test_work_without_a_signal_returns_its_result() -> None:
    assert run_interruptible(lambda token: "done") == "done"
