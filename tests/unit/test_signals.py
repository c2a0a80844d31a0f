"""Pure (no database): what ``run_interruptible`` makes of a signal, in this process."""

from __future__ import annotations

import os
import signal
import threading
import types
from collections.abc import Iterator

import pytest

from fraiseql_alembic.cli import signals
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
        os.kill(os.getpid(), signum)  # the handlers are in place before the work starts
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


class _SignalledAsItLooks(threading.Event):
    """The main thread's "has the work finished?" event, which sends the process a signal
    (once) as that thread first looks at it: the signal lands while the main thread runs
    its waiting loop's own code, not while it sleeps inside a wait (where a signal
    usually finds it)."""

    signum = signal.SIGTERM
    sent = False

    def _land(self) -> None:
        if not _SignalledAsItLooks.sent:
            _SignalledAsItLooks.sent = True
            os.kill(os.getpid(), self.signum)

    def is_set(self) -> bool:
        self._land()
        return super().is_set()

    def wait(self, timeout: float | None = None) -> bool:
        finished = super().wait(timeout)
        self._land()
        return finished


@pytest.mark.parametrize(("signum", "name", "code"), [
    (signal.SIGINT, "SIGINT", 130), (signal.SIGTERM, "SIGTERM", 143),
])
def test_a_signal_at_any_moment_of_the_wait_cancels_cleanly(
    signum: int, name: str, code: int, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Wherever the main thread is in its wait for the work, a signal is a clean cancel
    (it escaped as a bare KeyboardInterrupt or an internal exception, with the work still
    running, when it landed as the loop checked whether the work had finished)."""
    monkeypatch.setattr(_SignalledAsItLooks, "signum", signum)
    monkeypatch.setattr(_SignalledAsItLooks, "sent", False)
    monkeypatch.setattr(signals, "threading", types.SimpleNamespace(
        **{**vars(threading), "Event": _SignalledAsItLooks}))

    def work(token: CancelToken) -> str:
        for _ in range(500):  # the running statement, until the main thread cancels it
            token.check("in 001_a.sql")
            threading.Event().wait(0.01)
        return "never cancelled"

    with pytest.raises(MigrationInterrupted) as stopped:
        run_interruptible(work)
    assert _SignalledAsItLooks.sent
    assert stopped.value.exit_code == code
    assert str(stopped.value) == f"Stopped by {name} in 001_a.sql"
    assert capsys.readouterr().err == (
        f"{name}: cancelling the running statement and rolling back...\n")


@pytest.mark.parametrize(("signum", "name", "code"), [
    (signal.SIGINT, "SIGINT", 130), (signal.SIGTERM, "SIGTERM", 143),
])
def test_a_second_signal_exits_at_once(
    signum: int, name: str, code: int, capsys: pytest.CaptureFixture[str],
) -> None:
    """The second signal does not wait for the work (a statement slow to act on its
    cancel): it exits at once, with its own status and one more line."""
    release = threading.Event()

    def work(token: CancelToken) -> str:
        os.kill(os.getpid(), signum)
        for _ in range(200):  # the main thread cancels the token on the signal
            if token.cancelled:
                break
            threading.Event().wait(0.01)
        os.kill(os.getpid(), signum)
        release.wait(60)  # still running when the command exits
        return "too late"

    try:
        with pytest.raises(SystemExit) as exited:
            run_interruptible(work)
    finally:
        release.set()
    assert exited.value.code == code
    assert capsys.readouterr().err == (
        f"{name}: cancelling the running statement and rolling back...\n"
        f"{name} again: stopping now; the server rolls back what was in flight.\n")
