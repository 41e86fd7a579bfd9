"""After a member exits, its output gets a grace to reach EOF before the exit is published
anyway; that grace counts only while pipeplex reads (not while the bus is paused by a sink
that cannot keep up), so a slow terminal never makes an exit overtake its last lines; and
a pause keeps what is left of it, so pauses and resumes cannot put the exit off for ever."""

from __future__ import annotations

import asyncio
import sys

import pytest

from pipeplex import Bus, Event, Exited, Note, Output, ProcSpec
from pipeplex.participants import _output
from pipeplex.participants.process import Process


def _recorded() -> tuple[Bus, list[Event]]:
    """A bus, and the list of every event it carries."""
    bus = Bus()
    events: list[Event] = []
    bus.subscribe(events.append)
    return bus, events


def test_the_drain_grace_waits_while_reading_is_paused() -> None:
    async def scenario() -> list[Event]:
        bus, events = _recorded()
        spec = ProcSpec("s", ("sh", "-c", "echo last-line; exit 3"), pty="pipes")
        member = Process(spec, bus, on_crash=lambda exc: None)
        slow = object()
        bus.pause(slow)  # a sink that cannot keep up, from before the start
        await member.start()
        await asyncio.wait_for(asyncio.shield(member.exit_future), 30)
        assert member.output._drain_timer is None  # the grace is not running while nothing is read
        assert not any(isinstance(e, (Exited, Note)) for e in events), events
        bus.resume(slow)
        await asyncio.wait_for(member.wait_exited(), 30)
        return events

    events = asyncio.run(scenario())
    kinds = [type(e).__name__ for e in events if isinstance(e, (Output, Exited, Note))]
    assert kinds == ["Output", "Exited"], events


def test_pauses_keep_what_is_left_of_the_drain_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_output, "DRAIN_GRACE", 30.0)

    async def scenario() -> tuple[float, list[float]]:
        loop = asyncio.get_running_loop()
        bus = Bus()
        spec = ProcSpec("s", ("sh", "-c", "sleep 60 & exit 3"), pty="pipes")  # output held
        member = Process(spec, bus, on_crash=lambda exc: None)
        await member.start()
        await asyncio.wait_for(asyncio.shield(member.exit_future), 30)
        first = member.output._drain_deadline
        deadlines = []
        slow = object()
        for _ in range(3):
            bus.pause(slow)
            bus.resume(slow)
            deadlines.append(member.output._drain_deadline)
        assert loop.time() < first  # (still within the grace)
        member.signal(9)  # the held output's writer goes: EOF, and the exit is published
        await asyncio.wait_for(member.wait_exited(), 30)
        return first, deadlines

    first, deadlines = asyncio.run(scenario())
    assert all(abs(d - first) < 1.0 for d in deadlines), (first, deadlines)


def test_a_run_that_ended_during_a_pause_does_not_leave_the_next_one_paused() -> None:
    """Run 1 closed its output, then exited while the bus was paused; the bus resumed.
    Run 2 is read as usual: its prompt (no newline) shows after the quiet time."""

    async def scenario() -> list[Event]:
        bus, events = _recorded()
        quiet = ProcSpec("m", ("sh", "-c", "exec >&- 2>&-; read x"), pty="pipes")
        member = Process(quiet, bus, on_crash=lambda exc: None)
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        close_reader = member.output._close_reader

        def on_close(fd: int) -> None:  # (told when its closed output's EOF was read)
            close_reader(fd)
            if not member.output.readers and not closed.done():
                closed.set_result(None)

        member.output._close_reader = on_close  # type: ignore[method-assign]
        await member.start()
        await asyncio.wait_for(closed, 30)
        slow = object()
        bus.pause(slow)
        member.close_input()  # it ends while nothing is read
        await asyncio.wait_for(member.wait_exited(), 30)
        bus.resume(slow)
        member.spec = ProcSpec("m", ("sh", "-c", "printf 'prompt> '; exec sleep 60"),
                               pty="pipes")
        await member.start()
        shown: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        bus.subscribe(lambda e: shown.done() or shown.set_result(None), [Output])
        await asyncio.wait_for(shown, 30)  # (within the quiet time, not at the end)
        member.signal(9)
        await asyncio.wait_for(member.wait_exited(), 30)
        return events

    outputs = [e for e in asyncio.run(scenario()) if isinstance(e, Output)]
    assert outputs[0].data == b"prompt> " and outputs[0].partial


def test_input_from_another_thread_is_refused_once_the_program_exited() -> None:
    """The program exited; a process it started holds its stdin and output (the exit is
    not published yet). A line from the synchronous API's thread is refused, as one from
    the loop is: it never reaches that other process."""
    child = "import sys; print('child got:', sys.stdin.readline().strip(), flush=True)"
    parent = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {child!r}])"

    async def scenario() -> list[Event]:
        bus, events = _recorded()
        spec = ProcSpec("m", (sys.executable, "-c", parent), pty="pipes")
        member = Process(spec, bus, on_crash=lambda exc: None)
        await member.start()
        await asyncio.wait_for(asyncio.shield(member.exit_future), 30)
        await asyncio.to_thread(member.send_threadsafe, b"hello\n")
        member.close_input()  # (the child's EOF: it reads nothing, and ends)
        member.signal(9)
        await asyncio.wait_for(member.wait_exited(), 30)
        member.close()
        return events

    events = asyncio.run(scenario())
    assert not any(isinstance(e, Output) and b"hello" in e.data for e in events), events
    assert any(isinstance(e, Note) and "is not running; dropped 6 bytes" in e.text
               for e in events), events


def test_the_note_of_held_output_says_the_grace_it_waited(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The grace is looked up as it starts, and the note says that one (not the default)."""
    monkeypatch.setattr(_output, "DRAIN_GRACE", 1.0)

    async def scenario() -> list[str]:
        bus, events = _recorded()
        spec = ProcSpec("s", ("sh", "-c", "sleep 60 & exit 3"), pty="pipes")  # output held
        member = Process(spec, bus, on_crash=lambda exc: None)
        await member.start()
        await asyncio.wait_for(member.wait_exited(), 30)  # published once the grace ran out
        member.signal(9)  # the holder, in the member's group
        return [e.text for e in events if isinstance(e, Note)]

    notes = asyncio.run(scenario())
    assert notes == ["its stderr and stdout are still open in a process it started (1 s after "
                     "it exited); what that writes there is still shown"], notes
