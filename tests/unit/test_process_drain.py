"""After a member exits, its output gets a grace to reach EOF before the exit is published
anyway; that grace counts only while pipeplex reads (not while the bus is paused by a sink
that cannot keep up), so a slow terminal never makes an exit overtake its last lines."""

from __future__ import annotations

import asyncio

import pytest

from pipeplex import Bus, Event, Exited, Note, Output, ProcSpec
from pipeplex.participants import process
from pipeplex.participants.process import Process


def test_the_drain_grace_waits_while_reading_is_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process, "DRAIN_GRACE", 0.0)  # would expire on the next loop pass

    async def scenario() -> list[Event]:
        bus = Bus()
        events: list[Event] = []
        bus.subscribe(events.append)
        spec = ProcSpec("s", ("sh", "-c", "echo last-line; exit 3"), pty="pipes")
        member = Process(spec, bus, on_crash=lambda exc: None)
        slow = object()
        bus.pause(slow)  # a sink that cannot keep up, from before the start
        await member.start()
        await asyncio.wait_for(asyncio.shield(member.exit_future), 30)
        for _ in range(5):
            await asyncio.sleep(0)  # loop passes in which an expired grace would act
        assert not any(isinstance(e, (Exited, Note)) for e in events), events
        monkeypatch.setattr(process, "DRAIN_GRACE", 30.0)  # reading again: EOF comes first
        bus.resume(slow)
        await asyncio.wait_for(member.wait_exited(), 30)
        return events

    events = asyncio.run(scenario())
    kinds = [type(e).__name__ for e in events if isinstance(e, (Output, Exited, Note))]
    assert kinds == ["Output", "Exited"], events
