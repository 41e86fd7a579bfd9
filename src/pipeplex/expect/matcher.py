"""Expectations over several members at once: the first match among them wins.

The :class:`Matcher` is a sink: its base (:mod:`.sink`) keeps an :class:`OutputBuffer` per
member (both streams interleaved as they arrived) and one per member and stream, each with
its own cursor, and wakes whoever waits when output or an exit arrives. Here are the waits.
A member that exits while an expectation waits on it fails that expectation at once, unless
``EOF`` is one of the patterns.

A matcher made with ``threads=True`` also serves callers blocked in other threads
(:meth:`Matcher.expect_blocking`, the synchronous API): they search the member's buffer
themselves and sleep on an event the loop sets (what the loop may then touch:
:mod:`.sink`), and a caller reads an exit's return code once.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._bus import Bus
from .._events import Matched
from ..errors import ArgumentError, ExpectTimeout, UnexpectedExit, ours_in_tracebacks
from .buffer import MAX_BEFORE, Found
from .deadlines import Deadlines
from .patterns import EOF, TIMEOUT, Pattern, compile_pattern
from .sink import MatcherSink, WatchedMember

if TYPE_CHECKING:
    from ..engine.engine import Engine

__all__ = ("Expectation", "Matcher")
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)

_INF = float("inf")
_END = re.compile(r"\Z")
_MAX_WAIT = threading.TIMEOUT_MAX
"""The longest a thread may sleep on a lock at once: a longer wait is an OverflowError."""


def _check_timeout(timeout: float) -> None:
    """Refuse a timeout that is not a number of seconds from 0 to inf (nan, negative)."""
    if not timeout >= 0:  # (nan too: every comparison with it is false)
        raise ArgumentError(f"an expectation's timeout must be 0 or more seconds (inf: no "
                            f"deadline), not {timeout!r}")


def _size(characters: int) -> str:
    return (f"{characters / 2**20:.1f} MiB" if characters >= 100_000
            else f"{characters} characters")


def _refuse_second(name: str, stream: str | None) -> None:
    """Two expectations on one cursor would race for the same output (the one that looks
    first consumes what the other waits for), as two readers of one stream would."""
    raise RuntimeError(f"another expectation is already waiting on the "
                       f"{stream or 'output'} of {name}: wait for one at a time (one "
                       "expectation can wait for several patterns)")


def _searchable(patterns: Sequence[Pattern]) -> tuple[list[int], list[re.Pattern[str]]]:
    """Where the regular expressions are among ``patterns`` (not EOF, TIMEOUT), compiled."""
    positions = [i for i, p in enumerate(patterns) if p is not EOF and p is not TIMEOUT]
    return positions, [compile_pattern(patterns[i]) for i in positions]  # type: ignore[arg-type]


@dataclass(slots=True)  # made on every round trip and read once: not frozen, which costs
class Expectation:
    """What an expectation found (pexpect's names)."""

    name: str
    """The member whose output matched (for TIMEOUT, the first that listed it)."""
    index: int
    """Which pattern of the list matched."""
    match: re.Match[str] | None
    """The match; None for the EOF and TIMEOUT sentinels."""
    before: str
    after: str


class Matcher(MatcherSink):
    """A sink that lets coroutines wait for patterns in members' output."""

    def __init__(self, bus: Bus, *, recent: Callable[[str], str] = lambda name: "",
                 held_output_end: Callable[[str], asyncio.Future[None] | None] = (
                     lambda name: None),
                 ended_at: Callable[[str], float | None] = lambda name: None,
                 threads: bool = False,
                 restarting: Callable[[str], bool] = lambda name: False) -> None:
        super().__init__(bus, held_output_end=held_output_end, ended_at=ended_at,
                         threads=threads, restarting=restarting)
        self._recent = recent
        self._deadlines = Deadlines()
        self._claiming = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        """The loop that waits here, kept: asyncio.get_running_loop() makes a getpid()
        system call on every wait (Python 3.11), a round trip's only one besides its I/O."""

    @classmethod
    def of(cls, engine: Engine, *, threads: bool = False) -> Matcher:
        """A matcher of ``engine``'s members: a failure quotes their recent output; the
        exit of a run that a restart asked for ends no wait; and a wait that goes on through
        a member's restarts ends once the engine says that no run of it follows
        (:meth:`over`)."""
        matcher = cls(engine.bus, recent=engine.recent.describe,
                      held_output_end=engine.held_output_end, ended_at=engine.ended_at,
                      threads=threads, restarting=engine.restarting)
        engine.when_over.append(matcher.over)
        return matcher

    def close(self) -> None:
        """Nothing will wait here any more: stop taking output, and let go of the deadline
        timer (see :meth:`waits_over`)."""
        super().close()
        self.waits_over()

    def waits_over(self) -> None:
        """The waits here are over (the plex closed): the timer of their deadlines leaves
        the loop, which would otherwise hold it until the last deadline it served (30 s for
        an expectation with the default timeout). One that still waits keeps its deadline."""
        self._deadlines.let_go()

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
        fail it. ``timeout`` is in seconds; ``inf`` sets no deadline.

        Raises:
            ValueError: ``timeout`` is negative or nan.
            ExpectTimeout: nothing matched within ``timeout`` (and TIMEOUT is not a pattern).
            UnexpectedExit: a member exited while waited on (and EOF is not a pattern).
        """
        # The coroutine itself, not one that awaits it: one frame less on every wake-up.
        if len(names) == 1:
            name = names[0]
            return self.expect_one(name, patterns, timeout, stream,
                                   exit_ends=watch_exits is None or name in watch_exits)
        return self.expect_each(dict.fromkeys(names, patterns), timeout=timeout, stream=stream,
                                watch_exits=watch_exits)

    async def expect_one(self, name: str, patterns: Sequence[Pattern], timeout: float,
                         stream: str | None = None, *, exit_ends: bool = True) -> Expectation:
        """:meth:`expect` for one member: a round trip's path, with nothing else.

        The same steps as :meth:`expect_each` (whose sleep it repeats inline rather than
        through a helper), without the loops over members: 12 % of a round trip's Python
        (``bench/api_path.py``: 109k -> 96k instructions). An infinite timeout (no deadline)
        takes :meth:`expect_each`'s path, so this one looks at the timeout once: one test
        that also catches a nan or negative timeout, which are refused."""
        if not 0 <= timeout < _INF:
            _check_timeout(timeout)  # (inf is let through)
            return await self.expect_each({name: patterns}, timeout=timeout, stream=stream,
                                          watch_exits=None if exit_ends else ())
        if len(patterns) == 1 and type(patterns[0]) is str:  # nearly every expectation
            positions: Sequence[int] = (0,)
            regexes = [compile_pattern(patterns[0])]
        else:
            positions, regexes = _searchable(patterns)
        member = self._members.get(name) or self._member(name)
        buffer = member.buffers.get(stream)
        if buffer is None:  # (not "or": an empty buffer is falsy)
            buffer = self.buffer(name, stream)
        if buffer.waited_on:
            _refuse_second(name, stream)
        found = buffer.search(regexes)
        if found is None:
            loop = self._loop
            if loop is None or loop.is_closed():
                loop = self._loop = asyncio.get_running_loop()
            started = now = loop.time()
            deadline = started + timeout
            waiting = member.waiters
            buffer.waited_on = True
            self._bus.awaiting((name,), regexes)
            try:
                while True:
                    returncode = (self._exits.get(name, member.gone) if exit_ends
                                  else member.gone)  # (one that left the cast has ended)
                    if returncode is not None:
                        return self._exited(name, member, patterns, loop.time() - started,
                                            stream, returncode)
                    if now >= deadline:
                        return self._timed_out({name: patterns}, timeout, stream)
                    wakeup: asyncio.Future[None] = loop.create_future()
                    timer = self._deadlines.add(deadline, wakeup)
                    waiting.add(wakeup)
                    try:
                        await wakeup
                    finally:
                        if timer is not None:
                            timer.cancel()
                        waiting.discard(wakeup)
                    found = buffer.search(regexes)
                    if found is not None:
                        break
                    now = loop.time()
            finally:
                self._bus.not_awaiting((name,), regexes)
                buffer.waited_on = False
        return self._result(name, patterns, positions, found)

    async def expect_each(
        self,
        patterns_by_name: Mapping[str, Sequence[Pattern]],
        *,
        timeout: float,
        stream: str | None = None,
        watch_exits: Sequence[str] | None = None,
        watch_over: Sequence[str] = (),
    ) -> Expectation:
        """Like :meth:`expect`, with patterns of its own for each member.

        Output comes first: every member's buffer is searched before any exit counts, so a
        member that has ended does not hide a match that another one has already written.
        When several members have a match at once, the one listed first wins (the buffers do
        not keep when their output arrived); of several ended members, the one listed first.
        ``watch_over``: members whose exits do not end the wait (their policy restarts them)
        until no run of them follows (:meth:`over`): then their last exit does.
        """
        if not timeout >= 0:
            _check_timeout(timeout)
        searches = []
        exits = []
        members: list[WatchedMember] = []
        for name, patterns in patterns_by_name.items():
            positions, regexes = _searchable(patterns)
            searches.append((name, self.buffer(name, stream), patterns, positions, regexes))
            member = self._member(name)
            if watch_exits is None or name in watch_exits:
                exits.append((name, patterns, member, True))
            elif name in watch_over:
                exits.append((name, patterns, member, False))
            members.append(member)
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + timeout
        bounded = deadline < _INF  # inf: no deadline, and nothing in the deadline queue
        now = started
        for name, buffer, *_ in searches:
            if buffer.waited_on:
                _refuse_second(name, stream)
        for _, buffer, *_ in searches:
            buffer.waited_on = True
        try:
            while True:
                for name, buffer, patterns, positions, regexes in searches:
                    found = buffer.search(regexes)
                    if found is not None:
                        return self._result(name, patterns, positions, found)
                for name, patterns, member, watched in exits:
                    returncode = self._exits.get(name, member.gone) if watched else member.gone
                    if returncode is not None:
                        return self._exited(name, member, patterns, loop.time() - started,
                                            stream, returncode)
                if now >= deadline:
                    return self._timed_out(patterns_by_name, timeout, stream)
                wakeup: asyncio.Future[None] = loop.create_future()
                timer = self._deadlines.add(deadline, wakeup) if bounded else None
                for member in members:
                    member.waiters.add(wakeup)
                for name, _, _, _, regexes in searches:
                    self._bus.awaiting((name,), regexes)
                try:
                    await wakeup
                finally:
                    for name, _, _, _, regexes in searches:
                        self._bus.not_awaiting((name,), regexes)
                    if timer is not None:
                        timer.cancel()
                    for member in members:
                        member.waiters.discard(wakeup)
                now = loop.time()
        finally:
            for _, buffer, *_ in searches:
                buffer.waited_on = False

    def _result(self, name: str, patterns: Sequence[Pattern], positions: Sequence[int],
                found: Found, publish: Callable[[Matched], None] | None = None) -> Expectation:
        text = found.match.group(0)
        if self._bus.wants(Matched):  # a record for transcripts and reports
            shown = patterns[positions[found.index]]
            (publish or self._bus.publish)(Matched(name, str(getattr(shown, "pattern", shown)),
                                                   text))
        return Expectation(name, positions[found.index], found.match, found.before, text)

    def _timed_out(self, patterns_by_name: Mapping[str, Sequence[Pattern]],
                   timeout: float, stream: str | None) -> Expectation:
        for name, patterns in patterns_by_name.items():
            if TIMEOUT in patterns:
                # As in pexpect: ``before`` is what came so far, and it stays unread.
                before = self.buffer(name, stream).text
                return Expectation(name, patterns.index(TIMEOUT), None, before, "")
        all_patterns = list(dict.fromkeys(
            p for patterns in patterns_by_name.values() for p in patterns
        ))
        recent = "\n".join(self._recent(n) for n in patterns_by_name)
        dropped = [f"{n}: {_size(b.dropped_unsearched)} of output came before it was searched "
                   f"and was dropped (unsearched output is kept up to {_size(MAX_BEFORE)})"
                   for n in patterns_by_name
                   if (b := self.buffer(n, stream)).dropped_unsearched]
        raise ExpectTimeout(list(patterns_by_name), all_patterns, timeout,
                            "\n".join([*dropped, recent]), stream=stream)

    def expect_blocking(
        self,
        name: str,
        patterns: Sequence[Pattern],
        *,
        timeout: float,
        stream: str | None = None,
        publish: Callable[[Matched], None],
        wakeup: threading.Event | None = None,
        exit_ends: bool = True,
    ) -> Expectation:
        """:meth:`expect` for one member, from a thread other than the loop's.

        The caller searches the member's buffer itself and sleeps on a threading.Event that
        the loop sets when the member writes: one hand-over between threads per wake-up
        instead of a task round trip. ``publish`` delivers the Matched event on the loop.
        ``timeout`` as for :meth:`expect`: inf sets no deadline, nan or a negative one is a
        ValueError. ``exit_ends``: False for a member whose exit is followed by a next run.
        """
        if not timeout >= 0:
            _check_timeout(timeout)
        positions, regexes = _searchable(patterns)
        started = time.monotonic()
        deadline = started + timeout
        wakeup = wakeup or threading.Event()  # callers may reuse one: it costs a Condition
        member = self._member(name)
        waiters = member.thread_waiters
        buffer = self.buffer(name, stream)
        with self._claiming:  # (two threads may come at once)
            if buffer.waited_on:
                _refuse_second(name, stream)
            buffer.waited_on = True
        waiters.add(wakeup)
        self._bus.awaiting((name,), regexes)
        try:
            while True:
                wakeup.clear()
                # Seen before searching: the loop publishes a member's last output before
                # its exit, so an exit seen here has its output in the buffer already. Read
                # once: a restart (Started) may take it away before it is reported.
                returncode = self._exits.get(name, member.gone) if exit_ends else member.gone
                found = buffer.search(regexes)
                if found is not None:
                    return self._result(name, patterns, positions, found, publish)
                if returncode is not None:
                    return self._exited(name, member, patterns, time.monotonic() - started,
                                        stream, returncode)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return self._timed_out({name: patterns}, timeout, stream)
                # inf (no deadline), or longer than a lock can wait (292 years): no limit.
                wakeup.wait(remaining if remaining < _MAX_WAIT else None)
        finally:
            self._bus.not_awaiting((name,), regexes)
            waiters.discard(wakeup)
            buffer.waited_on = False

    def _exited(self, name: str, member: WatchedMember, patterns: Sequence[Pattern], waited: float,
                stream: str | None, returncode: int) -> Expectation:
        if EOF in patterns:
            # All that is left, consumed in one search (one hold of a shared buffer's lock,
            # so nothing fed meanwhile is skipped): ``before`` is all of it.
            found = self.buffer(name, stream).search([_END])
            rest = found.before if found is not None else ""
            return Expectation(name, patterns.index(EOF), None, rest, "")
        held = member.held_exit is not None
        output_ended = None
        if not held and member.exited_at is not None:
            # When it exited, not when that was seen (its output's end): 0 if it had
            # ended before the wait began.
            exited = min(waited, max(0.0, waited - (time.monotonic() - member.exited_at)))
            if waited - exited >= 0.5:  # (a process left in its group held the output)
                output_ended = waited
            waited = exited
        raise UnexpectedExit(name, returncode, patterns, waited, self._recent(name),
                             output_held=held, output_ended=output_ended)
