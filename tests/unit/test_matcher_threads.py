"""Matcher.expect_blocking: callers in their own threads, and a thread playing the loop's part.

The synchronous API searches a member's buffers from the caller's thread and sleeps on a
threading.Event that the loop's thread sets, so both threads go through the matcher's
records of a member at once. A race between them shows only when one thread changes a
structure in the instant the other goes through it; rather than hope for that instant over
many rounds, the race tests bring it about every time: a hook on the loop's side (an event's
``set``, a buffer's ``release``) or on the caller's (a buffer's ``search``) holds its thread,
with a deadline, until the other thread has made its change.
"""

from __future__ import annotations

import math
import queue
import re
import threading
from collections.abc import Callable, Sequence

import pytest

from pipeplex._bus import Bus
from pipeplex._events import Event, Exited, Matched, Note, Output, Started
from pipeplex.errors import UnexpectedExit
from pipeplex.expect import EOF, TIMEOUT, Matcher
from pipeplex.expect.buffer import Found

STEP = 2.0
"""The deadline of each hand-over: never reached when the behaviour is right."""


def out(name: str, data: bytes, stream: str = "stdout") -> Output:
    return Output(name, stream, data, False)  # type: ignore[arg-type]


def ignore(event: Matched) -> None:
    """Where expect_blocking hands its Matched event (a Plex delivers it on the loop)."""


class LoopThread:
    """A thread that publishes on a bus what the test hands it, as the loop's thread does.

    The bus disables a sink that raises, with a Note: the notes are kept in ``notes``."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.notes: list[str] = []
        bus.subscribe(self._note, [Note])
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="loop", daemon=True)

    def __enter__(self) -> LoopThread:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=STEP)
        assert not self._thread.is_alive()

    def call(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def _note(self, event: Event) -> None:
        if isinstance(event, Note):
            self.notes.append(event.text)

    def _run(self) -> None:
        while (job := self._jobs.get(timeout=10 * STEP)) is not None:
            job()


class Sleeper(threading.Event):
    """A caller's event that tells when the caller goes to sleep on it, and that, set by the
    loop's thread, holds that thread until the caller has finished its expectation."""

    def __init__(self) -> None:
        super().__init__()
        self.asleep = threading.Event()
        self.finished = threading.Event()
        self.finished.set()

    def wait(self, timeout: float | None = None) -> bool:
        self.asleep.set()
        return super().wait(timeout)

    def set(self) -> None:
        super().set()
        self.finished.wait(STEP)


def test_the_loop_wakes_callers_while_one_finishes_its_expectation() -> None:
    """The loop goes through the events of the callers waiting on a member while one of
    them, woken, finishes its expectation and discards its event (the set changes size):
    the loop carries on, and matching goes on working."""
    bus = Bus()
    matcher = Matcher(bus, threads=True)
    wakeup = Sleeper()
    wakeup.finished.clear()  # the loop stays in its first set() until the caller is done
    answered = threading.Event()

    def answer() -> None:
        assert wakeup.asleep.wait(STEP)  # the caller's event is among the member's waiters
        bus.publish(out("a", b"ready\n"))
        answered.set()

    with LoopThread(bus) as loop:
        loop.call(answer)
        found = matcher.expect_blocking("a", ["ready"], timeout=STEP, publish=ignore,
                                        wakeup=wakeup)
        assert found.after == "ready"
        wakeup.finished.set()  # the loop, still among the member's waiters, goes on
        assert answered.wait(STEP)  # (before the next expectation adds its event again)
        loop.call(lambda: bus.publish(out("a", b"again\n")))
        found = matcher.expect_blocking("a", ["again"], timeout=STEP, publish=ignore,
                                        wakeup=wakeup)
        assert found.after == "again"
    assert loop.notes == []


def test_an_exit_while_a_caller_adds_a_stream_buffer() -> None:
    """On an exit the loop goes through the member's buffers while a caller's first
    expectation on a stream adds that stream's buffer: the exit is handled in full."""
    bus = Bus()
    matcher = Matcher(bus, threads=True)
    merged = matcher.buffer("a")
    let_go = merged.release
    in_exit = threading.Event()
    wakeup = Sleeper()

    def release(stream: str, *, final: bool = False) -> None:
        let_go(stream, final=final)
        if final:  # on the loop's thread, among the member's buffers
            in_exit.set()
            assert wakeup.asleep.wait(STEP)  # the caller has added its stream's buffer

    merged.release = release  # type: ignore[method-assign]
    with LoopThread(bus) as loop:
        loop.call(lambda: bus.publish(out("a", b"out\n")))
        loop.call(lambda: bus.publish(Exited("a", 0)))
        assert in_exit.wait(STEP)
        found = matcher.expect_blocking("a", ["zz", EOF], stream="stderr", timeout=STEP,
                                        publish=ignore, wakeup=wakeup)
        assert (found.index, found.before) == (1, "")
        found = matcher.expect_blocking("a", [EOF], timeout=STEP, publish=ignore)
        assert (found.index, found.before) == (0, "out\n")
    assert loop.notes == []


def test_a_restart_between_seeing_an_exit_and_reporting_it() -> None:
    """A restart (Started) clears an exit that a caller has seen and is about to report:
    the caller reports the exit it saw, with its return code."""
    bus = Bus()
    matcher = Matcher(bus, threads=True)
    merged = matcher.buffer("a")
    search = merged.search
    searching = threading.Event()
    restarted = threading.Event()

    def search_then_wait(patterns: Sequence[re.Pattern[str]]) -> Found | None:
        searching.set()
        assert restarted.wait(STEP)  # the member starts again while the caller looks
        return search(patterns)

    def restart() -> None:
        assert searching.wait(STEP)
        bus.publish(Started("a", 4321, ("prog",)))
        restarted.set()

    merged.search = search_then_wait  # type: ignore[method-assign]
    bus.publish(Exited("a", 3))
    with LoopThread(bus) as loop:
        loop.call(restart)
        with pytest.raises(UnexpectedExit) as raised:
            matcher.expect_blocking("a", ["never"], timeout=STEP, publish=ignore)
    assert raised.value.returncode == 3
    assert loop.notes == []


@pytest.mark.parametrize("timeout", [math.inf, 1e12])
def test_a_timeout_longer_than_a_thread_can_sleep_waits_for_output(timeout: float) -> None:
    """inf is no deadline, and a finite timeout longer than a lock can wait is no
    OverflowError: the caller sleeps until the output comes."""
    bus = Bus()
    matcher = Matcher(bus, threads=True)
    wakeup = Sleeper()

    def answer() -> None:  # once the caller sleeps, so that it does sleep
        assert wakeup.asleep.wait(STEP)
        bus.publish(out("a", b"ready\n"))

    with LoopThread(bus) as loop:
        loop.call(answer)
        found = matcher.expect_blocking("a", ["ready"], timeout=timeout, publish=ignore,
                                        wakeup=wakeup)
    assert found.after == "ready"


@pytest.mark.parametrize("timeout", [math.nan, -1.0, -math.inf])
def test_a_nan_or_negative_timeout_is_refused(timeout: float) -> None:
    """A timeout that is not 0 or more seconds is a ValueError at once, even with a match
    already there (nan compares false with everything: it must never reach a wait)."""
    bus = Bus()
    matcher = Matcher(bus, threads=True)
    bus.publish(out("a", b"ready\n"))
    for patterns in (["ready"], ["nothing"], [TIMEOUT]):
        with pytest.raises(ValueError, match="timeout"):
            matcher.expect_blocking("a", patterns, timeout=timeout, publish=ignore)
    assert matcher.expect_blocking("a", ["ready"], timeout=0, publish=ignore).after == "ready"


def test_a_caller_waiting_through_restarts_ends_when_the_member_is_over() -> None:
    """A caller that waits through a member's exits (its policy restarts it) is woken, and
    ends with the last exit, once the engine says no run of it follows (Matcher.over)."""
    bus = Bus()
    matcher = Matcher(bus, threads=True)
    bus.publish(Started("a", 1, ("x",)))
    bus.publish(Exited("a", 3))
    wakeup = Sleeper()

    def give_up() -> None:
        assert wakeup.asleep.wait(STEP)  # (the caller waits through that exit)
        matcher.over("a")

    with LoopThread(bus) as loop:
        loop.call(give_up)
        with pytest.raises(UnexpectedExit) as caught:
            matcher.expect_blocking("a", ["never"], timeout=STEP, publish=ignore,
                                    wakeup=wakeup, exit_ends=False)
    assert caught.value.returncode == 3
    assert loop.notes == []
