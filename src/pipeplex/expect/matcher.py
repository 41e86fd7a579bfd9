"""Expectations over several members at once: the first match among them wins.

The :class:`Matcher` is a sink. It keeps an :class:`OutputBuffer` per member (both streams
interleaved as they arrived) and one per member and stream, each with its own cursor, and
wakes whoever waits when output or an exit arrives. A member that exits while an expectation
waits on it fails that expectation at once, unless ``EOF`` is one of the patterns.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._bus import Bus
from .._events import Event, Exited, Matched, Output, Started
from ..errors import ExpectTimeout, UnexpectedExit
from .buffer import EOF, TIMEOUT, OutputBuffer, Pattern, compile_pattern
from .deadlines import Deadlines, wake

__all__ = ("Expectation", "Matcher")


@dataclass(slots=True)  # made on every round trip and read once: not frozen, which costs
class Expectation:
    """What an expectation found (pexpect's names)."""

    name: str
    """The member whose output matched ('' when TIMEOUT matched)."""
    index: int
    """Which pattern of the list matched."""
    match: re.Match[str] | None
    """The match; None for the EOF and TIMEOUT sentinels."""
    before: str
    after: str


class Matcher:
    """A sink that lets coroutines wait for patterns in members' output."""

    def __init__(self, bus: Bus, *, recent: Callable[[str], str] = lambda name: "") -> None:
        self._bus = bus
        self._recent = recent
        self._buffers: dict[tuple[str, str | None], OutputBuffer] = {}
        self._exits: dict[str, int] = {}
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        """Per member, the expectations waiting on it: only they wake for its output."""
        self._deadlines = Deadlines()
        self._thread_waiters: dict[str, set[threading.Event]] = {}
        """The same for callers blocked in other threads (the synchronous API)."""
        bus.subscribe(self, [Output, Exited, Started])

    def buffer(self, name: str, stream: str | None = None) -> OutputBuffer:
        key = (name, stream)
        found = self._buffers.get(key)
        if found is None:
            found = self._buffers[key] = OutputBuffer()
        return found

    def __call__(self, event: Event) -> None:
        if type(event) is Output:  # nearly every event: the cheapest test first
            name, stream, data = event.name, event.stream, event.data
            merged, own = self._buffers.get((name, None)), self._buffers.get((name, stream))
            (self.buffer(name) if merged is None else merged).feed(data, stream)
            (self.buffer(name, stream) if own is None else own).feed(data, stream)
        elif isinstance(event, Exited):
            self._exits[event.name] = event.returncode
        elif isinstance(event, Started):
            self._exits.pop(event.name, None)
        else:
            return
        for waiter in self._waiters.get(event.name, ()):
            wake(waiter)
        for thread_waiter in self._thread_waiters.get(event.name, ()):
            thread_waiter.set()

    def expect(
        self,
        names: Sequence[str],
        patterns: Sequence[Pattern],
        *,
        timeout: float,
        stream: str | None = None,
        watch_exits: Sequence[str] | None = None,
    ) -> Coroutine[Any, Any, Expectation]:
        """Wait until one of ``patterns`` appears in the output of one of ``names``.

        ``watch_exits`` limits which members' exits end the wait (default: all of
        ``names``), so a member that ended before an any-member expectation began does not
        fail it.

        Raises:
            ExpectTimeout: nothing matched within ``timeout`` (and TIMEOUT is not a pattern).
            UnexpectedExit: a member exited while waited on (and EOF is not a pattern).
        """
        # The coroutine of expect_each itself: one frame less to resume on every wake-up.
        by_name = {names[0]: patterns} if len(names) == 1 else dict.fromkeys(names, patterns)
        return self.expect_each(by_name, timeout=timeout, stream=stream, watch_exits=watch_exits)

    async def expect_each(
        self,
        patterns_by_name: Mapping[str, Sequence[Pattern]],
        *,
        timeout: float,
        stream: str | None = None,
        watch_exits: Sequence[str] | None = None,
    ) -> Expectation:
        """Like :meth:`expect`, with patterns of its own for each member."""
        # This sits on every round trip: everything that does not change while waiting is
        # worked out once, and what only a timeout needs is left to the timeout.
        searches = []
        waiters = []
        for name, patterns in patterns_by_name.items():
            positions: list[int] = []
            regexes: list[re.Pattern[str]] = []
            for i, pattern in enumerate(patterns):
                if pattern is not EOF and pattern is not TIMEOUT:
                    positions.append(i)
                    regexes.append(compile_pattern(pattern))  # type: ignore[arg-type]
            searches.append((name, self.buffer(name, stream), patterns, positions, regexes,
                             watch_exits is None or name in watch_exits))
            waiting = self._waiters.get(name)
            if waiting is None:
                waiting = self._waiters[name] = set()
            waiters.append(waiting)
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + timeout
        now = started
        while True:
            for name, buffer, patterns, positions, regexes, exit_ends in searches:
                found = buffer.search(regexes) if regexes else None
                if found is not None:
                    text = found.match.group(0)
                    shown = patterns[positions[found.index]]
                    if self._bus.wants(Matched):  # a record for transcripts and reports
                        self._bus.publish(Matched(name, str(getattr(shown, "pattern", shown)),
                                                  text))
                    return Expectation(name, positions[found.index], found.match,
                                       found.before, text)
                if exit_ends and name in self._exits:
                    return self._exited(name, patterns, loop.time() - started, stream)
            if now >= deadline:
                return self._timed_out(patterns_by_name, timeout)
            # Sleep until output or an exit arrives, or the time is up: one future, no task,
            # and a timer shared with the other waits (see deadlines.py).
            wakeup: asyncio.Future[None] = loop.create_future()
            timer = self._deadlines.add(deadline, wakeup)
            for waiting in waiters:
                waiting.add(wakeup)
            try:
                await wakeup
            finally:
                if timer is not None:
                    timer.cancel()
                for waiting in waiters:
                    waiting.discard(wakeup)
            now = loop.time()

    def _timed_out(self, patterns_by_name: Mapping[str, Sequence[Pattern]],
                   timeout: float) -> Expectation:
        for patterns in patterns_by_name.values():
            if TIMEOUT in patterns:
                return Expectation("", patterns.index(TIMEOUT), None, "", "")
        all_patterns = list(dict.fromkeys(
            p for patterns in patterns_by_name.values() for p in patterns
        ))
        recent = "\n".join(self._recent(n) for n in patterns_by_name)
        raise ExpectTimeout(list(patterns_by_name), all_patterns, timeout, recent)

    def expect_blocking(
        self,
        name: str,
        patterns: Sequence[Pattern],
        *,
        timeout: float,
        stream: str | None = None,
        publish: Callable[[Matched], None],
        wakeup: threading.Event | None = None,
    ) -> Expectation:
        """:meth:`expect` for one member, from a thread other than the loop's.

        The caller searches the member's buffer itself and sleeps on a threading.Event that
        the loop sets when the member writes: one hand-over between threads per wake-up
        instead of a task round trip. ``publish`` delivers the Matched event on the loop.
        """
        positions = [i for i, p in enumerate(patterns) if p is not EOF and p is not TIMEOUT]
        regexes = [compile_pattern(patterns[i]) for i in positions]  # type: ignore[arg-type]
        started = time.monotonic()
        deadline = started + timeout
        wakeup = wakeup or threading.Event()  # callers may reuse one: it costs a Condition
        waiters = self._thread_waiters.setdefault(name, set())
        waiters.add(wakeup)
        try:
            while True:
                wakeup.clear()
                buffer = self.buffer(name, stream)
                found = buffer.search(regexes) if regexes else None
                if found is not None:
                    text = found.match.group(0)
                    shown = patterns[positions[found.index]]
                    if self._bus.wants(Matched):
                        publish(Matched(name, str(getattr(shown, "pattern", shown)), text))
                    return Expectation(name, positions[found.index], found.match,
                                       found.before, text)
                if name in self._exits:
                    return self._exited(name, patterns, time.monotonic() - started, stream)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if TIMEOUT in patterns:
                        return Expectation("", patterns.index(TIMEOUT), None, "", "")
                    raise ExpectTimeout([name], patterns, timeout, self._recent(name))
                wakeup.wait(remaining)
        finally:
            waiters.discard(wakeup)

    def _exited(
        self, name: str, patterns: Sequence[Pattern], waited: float, stream: str | None
    ) -> Expectation:
        if EOF in patterns:
            buffer = self.buffer(name, stream)
            rest = buffer.text
            buffer.search([re.compile(r"\Z")])  # consume everything: the cursor is at the end
            return Expectation(name, patterns.index(EOF), None, rest, "")
        raise UnexpectedExit(name, self._exits[name], patterns, waited, self._recent(name))
