"""A SIGTERM while the installed `fraiseql` command is still starting (importing its
modules) is an interruption like any other: exit 143 and one line, never a kill."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import ProcessRunner, Project

# Stands in for click, which cli/app.py imports first: it waits on a FIFO (the test holds its
# write end open and writes nothing), then loads the real click.  It waits in short select()
# calls, not one blocking read: a signal that lands after Python released the GIL for a read
# but before the read() system call began is handled by C at once but by Python only when
# the call returns, and a read of a FIFO nobody writes never returns (2-4 hangs in 100 runs).
# A real import reads files, whose reads end.
BLOCKING_CLICK = '''
import os, select, sys
fd = os.open(os.environ["FRAISEQL_TEST_FIFO"], os.O_RDONLY)
while not select.select([fd], [], [], 0.05)[0]:
    pass
del sys.modules["click"]
sys.path.remove(os.path.dirname(__file__))
import click  # the real one
'''


def _writer_of(fifo: Path, process: subprocess.Popen[str], timeout: float = 60) -> int:
    """The FIFO's write end, opened once the command has opened its read end (so it is
    now blocked reading it, inside its imports)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as err:  # ENXIO: no reader yet
            if err.errno != errno.ENXIO or process.poll() is not None:
                raise
            if time.monotonic() > deadline:
                raise TimeoutError("the command never reached its imports") from err
            time.sleep(0.01)


def test_sigterm_while_the_command_starts_exits_143_with_one_line(
    project: Project, tmp_path: Path, run_process: ProcessRunner,
) -> None:
    project.write("001_a.sql", "CREATE TABLE a (id int);\n")
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "click.py").write_text(BLOCKING_CLICK)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    process = run_process.start("fraiseql", "migrate", "up",
                                env={"PYTHONPATH": str(shim), "FRAISEQL_TEST_FIFO": str(fifo)})
    writer = _writer_of(fifo, process)
    try:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        os.close(writer)
    assert process.returncode == 143, (process.returncode, err)
    assert err == "Error: Stopped by SIGTERM while starting; nothing was changed\n"
    assert out == ""
    assert project.tables() == set()
