"""The run_process fixture never lets a started command outlive its test: a test that
failed while waiting for one (a timeout) would otherwise leave it running, and its
ResourceWarning would fail whichever later test the worker ran when it was collected."""

from __future__ import annotations

import signal
from pathlib import Path

from conftest import ProcessRunner


def test_end_all_kills_and_reaps_what_is_still_running(tmp_path: Path) -> None:
    runner = ProcessRunner(tmp_path, None)
    done = runner.start("true")
    done.wait(timeout=60)
    running = runner.start("sleep", "600")
    runner.end_all()
    assert running.returncode == -signal.SIGKILL
    assert done.returncode == 0
    assert running.stdout is not None and running.stdout.closed
