"""The terminal writer when its terminal hangs up: writes fail with EIO from then on."""

from __future__ import annotations

import asyncio
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
