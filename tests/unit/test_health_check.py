"""A ``ready_cmd`` run cut short goes with everything in its group before its task ends."""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from pathlib import Path

from pipeplex.participants._group import live_in_group
from pipeplex.participants.health_check import run_check

DEADLINE = 10.0


def test_a_cancelled_run_ends_once_its_group_is_gone(tmp_path: Path) -> None:
    """A check still going at its member's ready_timeout is killed; what said so used to
    come while a process of its group still lived, which the stop that follows took for
    one the member had left outside its own group (`left 1 process ... outside its process
    group`), blaming the member for pipeplex's own check."""
    told = tmp_path / "told"
    os.mkfifo(told)

    async def scenario() -> tuple[list[int], list[int]]:
        loop = asyncio.get_running_loop()
        reader = os.open(told, os.O_RDONLY | os.O_NONBLOCK)
        forked: asyncio.Future[int] = loop.create_future()

        def read() -> None:
            data = os.read(reader, 64)
            if data.endswith(b"\n") and not forked.done():
                forked.set_result(int(data))

        loop.add_reader(reader, read)
        # A process of its group slower to go than the run itself: 256 MiB to give back.
        slow = (f"import os, signal; held = bytearray(256 << 20); "
                f"open({str(told)!r}, 'w').write(f'{{os.getpid()}}\\n'); signal.pause()")
        check = asyncio.ensure_future(run_check(
            "m", ["sh", "-c", f"{shlex.quote(sys.executable)} -c {shlex.quote(slow)} & wait"],
            "sh -c ...", bytearray(), env=dict(os.environ), cwd=None, guardian=None,
            running=set()))
        try:
            child = await asyncio.wait_for(forked, DEADLINE)  # (in its group)
        finally:
            loop.remove_reader(reader)
            os.close(reader)
        group = os.getpgid(child)
        before = live_in_group(group)
        check.cancel()
        await asyncio.wait({check})
        return before, live_in_group(group)

    before, after = asyncio.run(scenario())
    assert len(before) == 2  # (sh and its child)
    assert after == []
