"""The run folder's pipes opened only once the start wave is spawned: a writer that comes
before they are opened waits (test_live_input: a member writes to another's pipe as soon as
it starts), and is never left waiting for good when they go unopened."""

from __future__ import annotations

import asyncio
import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeplex._bus import Bus
from pipeplex._engine import Engine
from pipeplex.cast import CastSpec
from pipeplex.inputs.folder import FolderInputs

DEADLINE = 30.0


def _writer(fifo: Path) -> subprocess.Popen[bytes]:
    """A shell that writes a line to ``fifo``: its ``open`` waits until the pipe is read."""
    return subprocess.Popen(["sh", "-c", 'echo hello > "$1"', "sh", str(fifo)],
                            stderr=subprocess.DEVNULL)


def _waits_for_a_reader(pid: int) -> bool:
    """Whether ``pid`` waits in the ``open`` of a FIFO that nothing reads."""
    return Path(f"/proc/{pid}/wchan").read_text() == "wait_for_partner"


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"not {what} after {DEADLINE} s"
        select.select([], [], [], 0.01)


@pytest.mark.parametrize("how", ["close", "remove"])
def test_a_writer_at_a_pipe_never_opened_is_let_go_as_the_pipe_goes(tmp_path: Path,
                                                                     how: str) -> None:
    """The run ends (or the member leaves) before its pipe was opened: a writer already in
    its ``open`` would have waited for a reader for ever once the file was gone."""
    async def scenario() -> subprocess.Popen[bytes]:
        inputs = FolderInputs(Engine(CastSpec(()), Bus()), tmp_path / "run")
        writer = None
        try:
            inputs.add("a", open_later=True)
            fifo = tmp_path / "run" / "a.in"
            assert fifo.is_fifo()
            writer = _writer(fifo)
            _until(lambda: _waits_for_a_reader(writer.pid), "waiting in its open")
            if how == "remove":
                inputs.remove("a")
                assert not fifo.exists()
        finally:
            inputs.close()
        assert writer is not None
        return writer

    writer = asyncio.run(scenario())
    try:
        assert writer.wait(timeout=DEADLINE) in (0, 1, -13)  # (written, or SIGPIPE/EPIPE)
    finally:
        writer.kill()
        writer.wait()
