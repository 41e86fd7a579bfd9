"""The stop of the cast's orphans (those with neither group nor environment of a member):
what it believes of a look for them, with real processes.

The look itself (``strays``) is the stop's caller's: these give it one that lists the test
process's own children, as the kernel lists a subreaper's, which the test reaps as the
reaper would."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Callable, Iterator

import pytest

from pipeplex._bus import Bus
from pipeplex._events import Event, Note
from pipeplex.engine._stopping_outside import OutsideStopper
from pipeplex.participants.orphans import Adoption


def _ended() -> subprocess.Popen[bytes]:
    """A child that has exited and is not yet waited for (a zombie)."""
    child = subprocess.Popen(["true"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    return child


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The test's children, each killed and waited for at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for child in started:
        if child.returncode is None:
            child.kill()
        child.wait(10)


def _stop_strays(strays: Callable[[], list[int]],
                 protected: Callable[[], set[int]] = lambda: {os.getpgrp()}) -> list[str]:
    """Run the stop of the cast's orphans, ``strays`` its look; the notes it published."""
    notes: list[str] = []

    def note(event: Event) -> None:
        assert isinstance(event, Note)
        notes.append(event.text)

    async def main() -> None:
        bus = Bus()
        bus.subscribe(note, [Note])
        stopper = OutsideStopper(bus, grace=10.0)
        stopper.begin(asyncio.get_running_loop().create_future())
        await asyncio.wait_for(stopper.stop_strays(strays, protected), 30)

    asyncio.run(main())
    return notes


def _listing_first_only(orphan: subprocess.Popen[bytes],
                        children: list[subprocess.Popen[bytes]]) -> Callable[[], list[int]]:
    """A look that lists only ``orphan`` the first time (the child it forked is not the
    test's yet), then, ``orphan`` reaped once it ended (the reaper's part, between two
    looks), the children still running."""
    looks = 0

    def strays() -> list[int]:
        nonlocal looks
        looks += 1
        if looks == 1:
            return [orphan.pid]
        if orphan.returncode is None:
            orphan.wait(10)
        return [c.pid for c in children if c.returncode is None]

    return strays


def test_a_look_that_lists_only_an_orphan_ending_as_it_is_read_is_made_again(
        children: list[subprocess.Popen[bytes]]) -> None:
    """An orphan's children come to pipeplex as it ends, not before: a look in that instant
    lists it, ended by the time it is read, and not yet its child. A process that forks
    anew as fast as it can is often seen so; the stop must look again, not take it for
    "none left" and leave the child running."""
    ended = _ended()
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    children += [ended, child]
    notes = _stop_strays(_listing_first_only(ended, children))
    assert child.wait(10) == -signal.SIGTERM, notes
    assert any(f"(pid {child.pid}) outside its members' process groups" in text
               and "sent it SIGTERM" in text for text in notes), notes


def test_an_orphan_read_alive_and_gone_when_signalled_has_its_children_looked_for(
        children: list[subprocess.Popen[bytes]]) -> None:
    """Read alive, and ended by the time its SIGTERM went (a process that forks anew as
    fast as it can, read in its last instant): what it forked came to pipeplex as it went,
    unlisted. The stop took that look for "none left", and the child outlived the cast
    (once in some 50 runs of a busy machine)."""
    going = subprocess.Popen(["sleep", "60"], start_new_session=True)
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    children += [going, child]

    def protected() -> set[int]:  # (asked for after the read, before the signal)
        if going.returncode is None:
            going.kill()  # it ends in that instant (and the reaper takes it)
            going.wait()
        return {os.getpgrp()}

    notes = _stop_strays(_listing_first_only(going, children), protected)
    assert child.wait(10) == -signal.SIGTERM, notes


def test_an_orphan_that_the_stop_itself_ended_is_no_reason_to_look_again(
        children: list[subprocess.Popen[bytes]]) -> None:
    """An orphan the stop killed stays listed until the reaper gets to it, which may be a
    while (it was held from the reaper while its group was signalled); its end is the
    stop's own doing, so the stop ends at the next look rather than keep looking. (That
    look lists twice: what the dead one forked before it died would be listed the second
    time.)"""
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    children.append(child)
    looks = 0

    def strays() -> list[int]:  # (never reaped here: listed as long as the stop looks)
        nonlocal looks
        looks += 1
        return [c.pid for c in children if c.returncode is None]

    notes = _stop_strays(strays)
    assert child.wait(10) == -signal.SIGTERM, notes
    assert looks == 3, notes


def test_an_orphan_the_stop_ended_after_it_was_listed_has_its_children_looked_for(
        children: list[subprocess.Popen[bytes]]) -> None:
    """One the stop signalled, listed alive and read dead: it forked between the two, and
    its child came to pipeplex as it died, after the listing. The look lists again and
    stops that child too, rather than end on the death of one it killed itself."""
    orphan = subprocess.Popen(["sleep", "60"], start_new_session=True)
    forked = subprocess.Popen(["sleep", "60"], start_new_session=True)
    children += [orphan, forked]
    looks = 0

    def strays() -> list[int]:  # (none reaped: the dead stay listed, as zombies)
        nonlocal looks
        looks += 1
        if looks <= 2:  # (the round's look, and the next one's first listing)
            return [orphan.pid]
        return [orphan.pid, forked.pid]  # (come as the orphan died)

    notes = _stop_strays(strays)
    assert orphan.wait(10) == -signal.SIGTERM, notes
    assert forked.wait(10) == -signal.SIGTERM, notes
    assert any(f"(pid {forked.pid}) outside its members' process groups" in text
               for text in notes), notes


def test_a_child_from_before_the_cast_that_ended_is_not_the_casts(
        children: list[subprocess.Popen[bytes]]) -> None:
    """A program's own child that ended, and that the program has not waited for yet, is
    the program's, not an orphan of the cast (its owner waits for it): it is neither
    stopped nor taken for one that just ended."""
    ended = _ended()
    children.append(ended)
    adoption = Adoption()
    try:
        assert adoption.theirs(ended.pid)
    finally:
        adoption.close()
