"""How the console reads a script's lines: in order, a restart's line holding back the next,
and a terminal's hangup not waiting for it. Real pipes, files and a pty."""

from __future__ import annotations

import asyncio
import os
import pty
from collections.abc import Awaitable
from pathlib import Path

from pipeplex.inputs.console import HELD_LINES, MAX_LINE, READ_SIZE, _read_lines

DEADLINE = 30.0


def test_a_line_whose_handling_is_awaited_holds_back_the_lines_after_it() -> None:
    """Every line is handled, in order, the ones after "wait" only once it is done; past
    HELD_LINES waiting lines reading pauses (the writer blocks), and goes on after."""
    total = 3 * HELD_LINES
    script = b"".join(b"line %d\n" % i for i in range(total // 2)) + b"wait\n" + b"".join(
        b"line %d\n" % i for i in range(total // 2, total)) + b"last, without a newline"

    async def main() -> list[str]:
        handled: list[str] = []
        gate = asyncio.get_running_loop().create_future()
        waiting = asyncio.Event()

        def handle(line: str) -> Awaitable[None] | None:
            handled.append(line)
            if line != "wait":
                return None
            waiting.set()
            return gate

        read, write = os.pipe()
        reader = asyncio.ensure_future(_read_lines(read, handle))
        writer = asyncio.ensure_future(asyncio.to_thread(_write_all, write, script))
        async with asyncio.timeout(DEADLINE):
            await waiting.wait()
            assert handled[-1] == "wait"  # the lines after it wait for it
            gate.set_result(None)
            assert await reader is False  # (a pipe's end: no hangup)
            await writer
        os.close(read)
        return handled

    handled = asyncio.run(main())
    assert handled == ([f"line {i}" for i in range(total // 2)] + ["wait"]
                       + [f"line {i}" for i in range(total // 2, total)]
                       + ["last, without a newline"])


def test_a_file_is_read_in_order_too(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_bytes(b"a\r\nwait\nb\n")

    async def main() -> list[str]:
        handled: list[str] = []

        async def waited() -> None:
            handled.append("(done)")

        def handle(line: str) -> Awaitable[None] | None:
            handled.append(line)
            return waited() if line == "wait" else None

        fd = os.open(script, os.O_RDONLY)
        try:
            assert await asyncio.wait_for(_read_lines(fd, handle), DEADLINE) is False
        finally:
            os.close(fd)
        return handled

    assert asyncio.run(main()) == ["a", "wait", "(done)", "b"]


def test_a_terminals_hangup_does_not_wait_for_the_line_being_handled() -> None:
    """A restart is awaited when the terminal hangs up: the hangup is said at once (the run
    then stops), and the restart's waiting is cancelled."""

    async def main() -> tuple[bool, bool]:
        never = asyncio.get_running_loop().create_future()
        master, slave = pty.openpty()

        def handle(line: str) -> Awaitable[None] | None:
            if line == "wait":
                os.close(master)  # the terminal goes away while the line is handled
            return never if line == "wait" else None

        os.write(master, b"wait\n")
        try:
            hung_up = await asyncio.wait_for(_read_lines(slave, handle), DEADLINE)
        finally:
            os.close(slave)
        return hung_up, never.cancelled()

    assert asyncio.run(main()) == (True, True)


def _write_all(fd: int, data: bytes) -> None:
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def test_a_line_too_long_is_dropped_whole_not_taken_in_pieces() -> None:
    """A piece of it taken as a line would go elsewhere: to the member its text names, or
    carried out as a command. Dropped up to its newline (or the input's end), its size said
    in its place; the lines around it are handled as usual, in order."""
    cut = MAX_LINE + READ_SIZE  # (where a piece would have begun)
    long = b"f: " + b"A" * (cut - 3) + b"e: not for e\r\n"
    script = (b"before\n" + long + b"after\n" + b"y" * MAX_LINE + b"\r\n"
              + b"z" * (MAX_LINE + 1) + b"\r\n" + b"x" * (MAX_LINE + 1))

    async def main() -> list[str | int]:
        handled: list[str | int] = []

        def handle(line: str) -> None:
            handled.append(line)

        read, write = os.pipe()
        reader = asyncio.ensure_future(_read_lines(read, handle, handled.append))
        writer = asyncio.ensure_future(asyncio.to_thread(_write_all, write, script))
        async with asyncio.timeout(DEADLINE):
            assert await reader is False
            await writer
        os.close(read)
        return handled

    assert asyncio.run(main()) == ["before", len(long) - 2, "after", "y" * MAX_LINE,
                                   MAX_LINE + 1, MAX_LINE + 1]
