"""What a matcher keeps of each member as events come: its output, its exit, its waiters.

A :class:`MatcherSink` keeps an :class:`OutputBuffer` per member (both streams interleaved
as they arrived) and one per member and stream, each with its own cursor, and wakes whoever
waits when output or an exit arrives: what the bus's events do to a member's state, apart
from how a wait reads it. It is the base of :class:`~.matcher.Matcher`, which holds the
waits: a base class rather than a collaborator, so that the bus calls these methods and a
round trip's wait reads a member's state with no step between.

A sink made with ``threads=True`` also serves callers blocked in other threads
(:meth:`Matcher.expect_blocking`, the synchronous API). They search buffers that lock
(:class:`SharedOutputBuffer`), and from their own threads they add and discard the events
they sleep on, and may add a member's stream buffer, while the loop's thread goes through
them. So the loop never iterates what those threads change, only a copy (the events to set,
a member's buffers on its exit), and a caller reads an exit's return code once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

from .._bus import Bus
from .._events import Event, Exited, Output, Started
from ..errors import ours_in_tracebacks
from .buffer import OutputBuffer, SharedOutputBuffer

__all__ = ("MatcherSink", "WatchedMember")
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)


class WatchedMember:
    """What the matcher keeps for one member: found with one lookup per event."""

    __slots__ = ("buffers", "exited_at", "gone", "held_exit", "merged", "over_when_held_ends",
                 "thread_waiters", "waiters")

    def __init__(self, shared: bool) -> None:
        self.merged = SharedOutputBuffer() if shared else OutputBuffer()
        """Both streams interleaved as they arrived."""
        self.buffers: dict[str | None, OutputBuffer] = {None: self.merged}
        self.waiters: set[asyncio.Future[None]] = set()
        """The expectations waiting on this member: only they wake for its output."""
        self.gone: int | None = None
        """Its exit code once the member left the cast (:meth:`Matcher.forget`): a wait
        that was on it ends as at its exit."""
        self.thread_waiters: set[threading.Event] = set()
        """The same for callers blocked in other threads (the synchronous API). They add
        and discard theirs from their own threads: the loop iterates a copy."""
        self.held_exit: int | None = None
        """The exit code of its run, whose output a process it started held open after it
        (the run's end, for a wait, is that output's): kept until its next start."""
        self.over_when_held_ends = False
        """No run follows that one (:meth:`Matcher.over`): its end is that, once the
        output ends."""
        self.exited_at: float | None = None
        """When its last run exited (``time.monotonic()``), which a failure says: its exit
        is seen once its output is read, which a process left in its group may hold open
        for a while, or (held outside it) never, when the member leaves the cast first."""


class MatcherSink:
    """The events a :class:`~.matcher.Matcher` takes: members' output and their exits and
    starts, kept per member, each waking whoever waits on that member."""

    def __init__(self, bus: Bus, *,
                 held_output_end: Callable[[str], asyncio.Future[None] | None],
                 ended_at: Callable[[str], float | None], threads: bool,
                 restarting: Callable[[str], bool]) -> None:
        self._bus = bus
        self._restarting = restarting
        """Whether a restart asked for (``pipeplex restart``, ``:restart``) is under way for
        a member: its run's exit is then the restart's doing, which ends no wait."""
        self._held_output_end = held_output_end
        """For a member that has just exited: done once no process it started holds its
        output open any more (None: none did)."""
        self._ended_at = ended_at
        """When a member's last run ended (``time.monotonic()``; None: not known): its exit
        is published once its output is read, which a process left in its group may hold
        open for a while, and a failure says when it exited."""
        self._threads = threads
        """Whether callers in other threads use :meth:`Matcher.expect_blocking` (buffers
        then lock)."""
        self._members: dict[str, WatchedMember] = {}
        self._exits: dict[str, int] = {}
        self._restart_exits: dict[str, int] = {}
        """The exit of a run that a restart asked for ended: no wait's end, unless no run
        follows it (:meth:`over`)."""
        # The hot path on its own (no test of the kind); the bus hands it Output only.
        self._unsubscribe = (bus.subscribe(self._output, [Output]),  # type: ignore[arg-type]
                             bus.subscribe(self, [Exited, Started]))

    def close(self) -> None:
        """Nothing will wait here any more (a run's steps are over): stop taking output,
        which would otherwise pile up unsearched for as long as the cast runs."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._members.clear()

    def forget(self, name: str) -> None:
        """Member ``name`` has left the cast: drop its output and its exit."""
        member = self._members.pop(name, None)
        held = member.held_exit if member is not None else None
        held = self._restart_exits.pop(name, held)  # (removed as a restart was under way)
        returncode = self._exits.pop(name, 0 if held is None else held)
        if member is not None:
            member.gone = returncode
            member.held_exit = None  # (its output did not end: it left with it open)
            self._wake(member)  # (a wait still on it looks again, and ends as at the exit)

    def over(self, name: str) -> None:
        """No run of ``name`` follows its last exit (its policy gave up on it, the cast
        stopped it): a wait that went on through its exits, for its next run, ends as at
        that exit (engines call this: :attr:`Engine.when_over`)."""
        member = self._members.get(name)
        returncode = self._exits.get(name)
        if returncode is None and name in self._restart_exits:  # (a restart that never ran)
            returncode = self._exits[name] = self._restart_exits.pop(name)
        if member is not None and returncode is not None:
            member.gone = returncode
            self._wake(member)
        elif member is not None and member.held_exit is not None:
            member.over_when_held_ends = True  # (its output is still open: see below)

    def _member(self, name: str) -> WatchedMember:
        member = self._members.get(name)
        if member is None:  # setdefault: a synchronous caller's thread may ask at once
            member = self._members.setdefault(name, WatchedMember(self._threads))
        return member

    def buffer(self, name: str, stream: str | None = None) -> OutputBuffer:
        buffers = self._member(name).buffers
        found = buffers.get(stream)
        if found is None:
            made = SharedOutputBuffer() if self._threads else OutputBuffer()
            found = buffers.setdefault(stream, made)
        return found

    def _output(self, event: Output) -> None:
        member = self._members.get(event.name)
        if member is None:
            member = self._member(event.name)
        data, stream = event.data, event.stream
        own = member.buffers.get(stream)
        if own is None:
            own = self.buffer(event.name, stream)
        if event.new_line:  # (a prompt again, after a line sent answered the one before)
            member.merged.new_line(stream)
            own.new_line(stream)
        member.merged.feed(data, stream)
        own.feed(data, stream)
        if event.partial:  # a pause or the end: what decoding holds back is all there is
            member.merged.release(stream)
            own.release(stream)
        self._wake(member)

    def __call__(self, event: Event) -> None:
        if type(event) is Output:  # (the bus hands output to _output)
            self._output(event)
            return
        if isinstance(event, Exited):
            # A copy: a caller's thread may add a stream's buffer meanwhile (an empty one:
            # output on a stream makes its buffer here first, so it holds nothing to let go).
            member = self._member(event.name)
            for buffer in tuple(member.buffers.values()):
                buffer.release("stdout", final=True)
                buffer.release("stderr", final=True)
            ended = self._ended_at(event.name)
            member.exited_at = ended if ended is not None else time.monotonic()
            if self._restarting(event.name):
                # A wait goes on to its next run; should that not come (the cast stopped, the
                # spawn failed), the engine says the member is over, and this exit ends it.
                self._restart_exits[event.name] = event.returncode
                return
            held = self._held_output_end(event.name)
            if held is not None and not held.done():
                # What that process writes is shown, and may be what a wait is for: the
                # run's end, for a wait, is its output's.
                member.held_exit = event.returncode
                held.add_done_callback(lambda _: self._held_output_ended(event.name))
                return
            self._exits[event.name] = event.returncode
        elif isinstance(event, Started):
            self._exits.pop(event.name, None)
            self._restart_exits.pop(event.name, None)
            member = self._member(event.name)
            member.gone = member.held_exit = member.exited_at = None  # (over, started again)
            member.over_when_held_ends = False
        else:
            return
        self._wake(self._member(event.name))

    def _held_output_ended(self, name: str) -> None:
        member = self._members.get(name)
        if member is None or member.held_exit is None:
            return  # (forgotten, or started again: that run's end is no longer waited for)
        self._exits[name] = member.held_exit
        if member.over_when_held_ends:
            member.gone = member.held_exit
        self._wake(member)

    @staticmethod
    def _wake(member: WatchedMember) -> None:
        for waiter in member.waiters:
            if not waiter.done():  # (an answered or cancelled wait is left alone)
                waiter.set_result(None)
        if member.thread_waiters:
            # A copy, made in one step: callers' threads add and discard theirs meanwhile.
            # A caller that has just left may be set once more: it clears its event
            # before every search.
            for thread_waiter in tuple(member.thread_waiters):
                thread_waiter.set()
