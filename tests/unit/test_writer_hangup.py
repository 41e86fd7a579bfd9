"""The terminal writer when its writes fail for good: the terminal hung up (EIO from then
on), or the file cannot take more (``/dev/full``)."""

from __future__ import annotations

import asyncio
import errno
import os

from pipeplex._bus import Bus
from pipeplex.output.terminal import Writer


def test_a_hung_up_terminal_drops_writes_and_says_so_once() -> None:
    master, slave = os.openpty()
    calls: list[str] = []

    async def main() -> None:
        writer = Writer(slave, Bus(), on_broken=lambda: calls.append("broken"))
        writer.on_hangup = lambda: calls.append("hangup")
        writer.write(b"before\n")
        await writer.drain()
        assert os.read(master, 100) == b"before\r\n"
        os.close(master)  # closing the window: the kernel hangs the terminal up
        for _ in range(3):
            writer.write(b"after\n")
            await writer.drain()
        assert writer.pending == 0
        writer.close()

    try:
        asyncio.run(main())
    finally:
        os.close(slave)
    assert calls == ["hangup"]


def test_a_file_that_refuses_writes_drops_them_and_says_why_once() -> None:
    fd = os.open("/dev/full", os.O_WRONLY)
    calls: list[object] = []

    async def main() -> None:
        writer = Writer(fd, Bus(), on_broken=lambda: calls.append("broken"),
                        on_failed=lambda exc: calls.append(exc.errno))
        writer.on_hangup = lambda: calls.append("hangup")
        for _ in range(3):
            writer.write(b"line\n")
            await writer.drain()
        assert writer.pending == 0
        writer.close()

    try:
        asyncio.run(main())
    finally:
        os.close(fd)
    assert calls == [errno.ENOSPC]
