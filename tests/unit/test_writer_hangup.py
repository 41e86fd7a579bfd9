"""The terminal writer when its writes fail for good: the terminal hung up (EIO from then
on), or the file cannot take more (``/dev/full``)."""

from __future__ import annotations

import asyncio
import errno
import os
import select

from pipeplex._bus import Bus
from pipeplex.output.terminal import Writer


def _writer(fd: int, calls: list[object]) -> Writer:
    """A writer to ``fd`` that notes in ``calls`` each way it is told a write failed."""
    writer = Writer(fd, Bus(), on_broken=lambda: calls.append("broken"),
                    on_failed=lambda exc: calls.append(exc.errno))
    writer.on_hangup = lambda: calls.append("hangup")
    return writer


async def _three_lines_dropped(writer: Writer) -> None:
    for _ in range(3):
        writer.write(b"line\n")
        await writer.drain()
    assert writer.pending == 0
    writer.close()


def test_a_hung_up_terminal_drops_writes_and_says_so_once() -> None:
    master, slave = os.openpty()
    calls: list[object] = []

    async def main() -> None:
        writer = _writer(slave, calls)
        writer.write(b"before\n")
        await writer.drain()
        seen = b""
        while not seen.endswith(b"\n"):  # (the terminal may pass it on in pieces)
            assert select.select([master], [], [], 10)[0], seen
            seen += os.read(master, 100)
        assert seen == b"before\r\n"
        os.close(master)  # closing the window: the kernel hangs the terminal up
        await _three_lines_dropped(writer)

    try:
        asyncio.run(main())
    finally:
        os.close(slave)
    assert calls == ["hangup"]


def test_a_file_that_refuses_writes_drops_them_and_says_why_once() -> None:
    fd = os.open("/dev/full", os.O_WRONLY)
    calls: list[object] = []
    try:
        asyncio.run(_three_lines_dropped(_writer(fd, calls)))
    finally:
        os.close(fd)
    assert calls == [errno.ENOSPC]
