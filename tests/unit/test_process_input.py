"""Input that waits for a member to read it: short sends gather in few buffers (a piece
each made a million short lines cost a quarter of a gigabyte, and every count of what
waits went through all of them), and all of it arrives, in order."""

from __future__ import annotations

import asyncio
import hashlib
import signal

from pipeplex import Bus, Output, ProcSpec
from pipeplex.participants._stdin import GATHER_MAX, INPUT_FULL
from pipeplex.participants.process import Process

DEADLINE = 30.0


def test_short_sends_to_a_member_that_does_not_read_gather_and_all_arrive_in_order() -> None:
    async def scenario() -> tuple[int, int, bytes, bytes]:
        bus = Bus()
        out: list[bytes] = []
        bus.subscribe(lambda event: out.append(event.data), [Output])  # type: ignore[attr-defined]
        member = Process(ProcSpec("m", ("md5sum",), pty="pipes"), bus, on_crash=lambda e: None)
        await member.start()
        member.signal(signal.SIGSTOP)  # (it reads nothing until told to go on)
        sent = hashlib.md5()
        i = 0
        while not member.input_full:
            data = b"x" * 70_000 if i == 50_000 else b"%d\n" % i  # (one long piece among them)
            member.send(data)
            sent.update(data)
            i += 1
        pieces, waiting = len(member.stdin._pending_input), member.input_waiting
        member.signal(signal.SIGCONT)
        member.close_input()
        await asyncio.wait_for(member.wait_exited(), DEADLINE)
        return pieces, waiting, b"".join(out), sent.hexdigest().encode()

    pieces, waiting, out, digest = asyncio.run(scenario())
    assert waiting >= INPUT_FULL
    assert pieces <= 2 * waiting // GATHER_MAX + 2, pieces
    assert out.split()[0] == digest
