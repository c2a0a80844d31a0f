"""README.md's "A short tour", run as written: the block's commands in one bash on a
terminal, in a scratch folder, against the throwaway PostgreSQL the tour starts; what the
terminal shows is compared with the block's `#` lines (times and dates masked).

The block's first lines set up a virtualenv and install the package: here this test's
virtualenv stands in for them (its commands come first on PATH);
tests/tooling/test_packaging.py installs the wheel into a fresh virtualenv instead.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from conftest import BIN, ProcessRunner
from scenarios import REPO

from fraiseql_alembic import devdb
from fraiseql_alembic.devdb import DIR_VARIABLE

#: The tour's set-up lines (comments after them left out), replaced here by our virtualenv.
SETUP = (
    "sudo apt-get update && sudo apt-get install -y python3-venv postgresql",
    "python3 -m venv ~/fraiseql-venv && . ~/fraiseql-venv/bin/activate",
    "pip install .",
)
_HEREDOC = re.compile(r"<<-?'?(\w+)'?")
_PROMPT = re.compile(r"(.*\[y/N\]: )(\S+)$")
_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_STEP = re.compile(r"^::tour (\d+) (start|exit (\d+))::$")
#: Times and dates that differ from run to run.
_VARIABLE = (
    (re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"), "<date>"),
    (re.compile(r"\b\d+\.\d+s\b"), "<time>"),
)


@dataclass
class Step:
    """A command of the block (with its here-document, if any) and the output shown."""

    command: str
    output: list[str] = field(default_factory=list)


def tour_block() -> list[str]:
    """The lines of the first ```bash block under '## A short tour' in README.md."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## A short tour\n", 1)[1]
    block = section.split("```bash\n", 1)[1].split("\n```\n", 1)[0]
    return block.splitlines()


def parse(lines: list[str]) -> list[Step]:
    steps: list[Step] = []
    rows = iter(lines)
    for line in rows:
        if not line.strip():
            continue
        if line.startswith("#"):
            assert steps, f"output before any command: {line!r}"
            steps[-1].output.append(line[2:] if line.startswith("# ") else line[1:])
            continue
        command = [line]
        heredoc = _HEREDOC.search(line)
        if heredoc:
            for body in rows:
                command.append(body)
                if body == heredoc.group(1):
                    break
            else:
                raise AssertionError(f"here-document {heredoc.group(1)} does not end")
        steps.append(Step("\n".join(command)))
    return steps


def script(steps: list[Step]) -> str:
    """The steps as one bash script: a marker line before each, its exit code after it,
    and on exit the throwaway cluster's directory (to clean up after a failure)."""
    parts = [f"trap 'printf \"\\n::tour devdb %s::\\n\" \"${{{DIR_VARIABLE}:-}}\"' EXIT"]
    for number, step in enumerate(steps):
        parts += [f"printf '::tour {number} start::\\n'", step.command,
                  f"printf '\\n::tour {number} exit %d::\\n' $?"]
    return "\n".join(parts) + "\n"


def screen(raw: str) -> list[str]:
    """What the terminal shows: each line as left after carriage returns, no colours."""
    lines = []
    for line in raw.replace("\r\n", "\n").split("\n"):
        lines.append(_ESCAPE.sub("", line.rsplit("\r", 1)[-1]))
    return lines


def split_by_step(lines: list[str]) -> tuple[dict[int, list[str]], dict[int, int], str]:
    """Each step's lines, each step's exit code, and the cluster directory left at exit."""
    outputs: dict[int, list[str]] = {}
    codes: dict[int, int] = {}
    current: int | None = None
    devdb_dir = ""
    for line in lines:
        if line.startswith("::tour devdb "):
            devdb_dir = line.removeprefix("::tour devdb ").removesuffix("::")
            continue
        marker = _STEP.match(line)
        if marker:
            number = int(marker.group(1))
            if marker.group(2) == "start":
                current, outputs[number] = number, []
            else:
                current, codes[number] = None, int(marker.group(3))
        elif current is not None:
            outputs[current].append(line)
    for output in outputs.values():  # the newline each exit marker starts with
        while output and not output[-1]:
            output.pop()
    return outputs, codes, devdb_dir


def masked(lines: list[str]) -> list[str]:
    result = []
    for line in lines:
        for pattern, placeholder in _VARIABLE:
            line = pattern.sub(placeholder, line)
        result.append(line)
    return result


def test_the_tour_block_parses_as_commands_and_outputs() -> None:
    steps = parse(["cd x", "# out 1", "#", "cat > f <<'SQL'   # note", "a", "SQL", "", "ls"])
    assert [(s.command, s.output) for s in steps] == [
        ("cd x", ["out 1", ""]), ("cat > f <<'SQL'   # note\na\nSQL", []), ("ls", [])]
    assert screen("  [1/1] x ...\r\x1b[32m✓\x1b[0m [1/1] x (0.0s)\r\nnext") == [
        "✓ [1/1] x (0.0s)", "next"]


def test_readme_tour_runs_as_written(run_process: ProcessRunner, tmp_path: Path) -> None:
    steps = parse(tour_block())
    setup = [re.sub(r"\s+#.*$", "", step.command) for step in steps[:len(SETUP)]]
    assert tuple(setup) == SETUP, "the tour's set-up lines changed: update SETUP and say how "\
        "tests/tooling/test_packaging.py covers them"
    tour = steps[len(SETUP):]
    answers = [(m.group(1), m.group(2)) for step in tour for line in step.output
               if (m := _PROMPT.match(line))]
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "TMPDIR": str(scratch),
           DIR_VARIABLE: None, "VIRTUAL_ENV": None, "NO_COLOR": None}
    code, raw = run_process.on_terminal("bash", "-c", script(tour), cwd=tmp_path, url=None,
                                        env=env, answers=answers, timeout=120)
    outputs, codes, devdb_dir = split_by_step(screen(raw))
    try:
        assert code == 0, raw
        for number, step in enumerate(tour):
            assert codes.get(number) == 0, f"{step.command!r} failed:\n{raw}"
            assert masked(outputs[number]) == masked(step.output), step.command
        assert devdb_dir and not Path(devdb_dir).exists(), "the tour left its cluster behind"
        assert not (tmp_path / "migrations").exists(), "the tour did not run in a scratch folder"
    finally:
        if devdb_dir and Path(devdb_dir, devdb.STATE_FILE).exists():
            devdb.main(["stop", "--dir", devdb_dir])
        if devdb_dir:
            shutil.rmtree(devdb_dir, ignore_errors=True)
