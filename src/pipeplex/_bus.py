"""The bus: every event goes through here to every sink that takes it, in order.

Sinks are plain callables run synchronously, so two members' lines can never interleave
inside a sink. A sink that cannot keep up (a slow terminal) asks the bus to pause the
sources; readers then stop reading, the children block on their full pipes, and memory
stays bounded without losing a byte. A sink that raises is removed with a note, so one
broken consumer never stops the draining of children.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from ._events import KINDS, Event, Note

__all__ = ("Bus", "Sink", "Source")

Sink = Callable[[Event], None]


class Source(Protocol):
    """Something that produces output and can stop reading for a while."""

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class Bus:
    """Fan-out of events to sinks, with back-pressure from sinks to sources."""

    def __init__(self) -> None:
        self._sinks: list[tuple[Sink, frozenset[type] | None]] = []
        self._routes: dict[type, tuple[Sink, ...]] = {kind: () for kind in KINDS}
        """Per kind of event, the sinks that take it: worked out when sinks come and go, not
        per event, and replaced whole, so a thread asking :meth:`wants` sees a consistent
        picture."""
        self._sources: set[Source] = set()
        self._pausers: set[object] = set()
        self._queue: deque[Event] = deque()
        self._delivering = False
        self._from_threads: deque[Event] = deque()
        """Events from other threads, delivered before the loop's next event."""
        self.awaited: dict[str, list[Sequence[re.Pattern[str]]]] = {}
        """Members whose output an expectation waits for now, and the patterns of each
        that waits: an unfinished line (a prompt) is handed over sooner, and at once when
        it is what one of them waits for (see ``OutputReaders``)."""
        self._awaiting = threading.Lock()  # (the synchronous API's waits come from threads)
        self.prompt_lookers: dict[str, Callable[[], None]] = {}
        """Per member whose output is read, how to look again at once at its unfinished
        lines, when an expectation begins to wait on it (``OutputReaders.look_again``)."""

    def awaiting(self, names: Iterable[str], patterns: Sequence[re.Pattern[str]]) -> None:
        """An expectation waits for ``patterns`` in the output of each of ``names``."""
        with self._awaiting:
            for name in names:
                self.awaited.setdefault(name, []).append(patterns)
        for name in names:
            if (look := self.prompt_lookers.get(name)) is not None:
                look()

    def not_awaiting(self, names: Iterable[str], patterns: Sequence[re.Pattern[str]]) -> None:
        """That expectation (see :meth:`awaiting`) waits no more."""
        with self._awaiting:
            for name in names:
                waits = self.awaited.get(name)
                if waits is not None:
                    waits.remove(patterns)
                    if not waits:
                        del self.awaited[name]

    def subscribe(self, sink: Sink, kinds: Iterable[type] | None = None) -> Callable[[], None]:
        """Add a sink for the events of ``kinds`` (default: all); returns a function that
        removes it.

        Naming the kinds is how a sink stays off the hot path of events it ignores, and
        how a publisher learns (:meth:`wants`) that nobody needs an event at all.
        """
        if not callable(sink):
            raise TypeError(f"a sink is called with each event: {sink!r} is not callable")
        chosen = None if kinds is None else frozenset(kinds)
        if chosen is not None and (strange := chosen - set(KINDS)):
            raise TypeError(f"kinds are event classes ({', '.join(k.__name__ for k in KINDS)}),"
                            f" not {', '.join(sorted(map(repr, strange)))}")
        entry = (sink, chosen)
        self._sinks.append(entry)
        self._reroute()

        def unsubscribe() -> None:
            if entry in self._sinks:
                self._sinks.remove(entry)
                self._reroute()

        return unsubscribe

    def wants(self, kind: type) -> bool:
        """Whether any sink takes events of ``kind``: if not, there is no need to make one."""
        return bool(self._routes[kind])  # every kind in KINDS has a route, maybe empty

    def _sinks_for(self, kind: type) -> tuple[Sink, ...]:
        return tuple(sink for sink, kinds in self._sinks if kinds is None or kind in kinds)

    def _reroute(self) -> None:
        self._routes = {kind: self._sinks_for(kind) for kind in KINDS}

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every sink that takes it.

        A sink may publish in turn (a matcher announcing a match); such events are queued
        and delivered after the current one, so every sink sees the same order.
        """
        if self._from_threads:
            self._take_from_threads()
        if self._delivering or self._queue:
            self._queue.append(event)
            if not self._delivering:
                self._deliver()
            return
        self._delivering = True  # nothing else waits: deliver it without the queue
        try:
            self._send(event)
            while self._queue:
                self._send(self._queue.popleft())
        finally:
            self._delivering = False

    def _deliver(self) -> None:
        self._delivering = True
        try:
            while self._queue:
                self._send(self._queue.popleft())
        finally:
            self._delivering = False

    def _send(self, event: Event) -> None:
        route = self._routes.get(type(event))
        # A route is a tuple: a sink may unsubscribe itself (or another) meanwhile.
        for sink in self._sinks_for(type(event)) if route is None else route:
            try:
                sink(event)
            except Exception as exc:
                self._disable(sink, exc)

    def _disable(self, sink: Sink, error: Exception) -> None:
        self._sinks = [entry for entry in self._sinks if entry[0] is not sink]
        self._reroute()
        note = f"an output sink failed and was disabled: {_named(sink)} raised {error!r}"
        self._queue.append(Note(note, level="error"))

    def publish_threadsafe(self, event: Event) -> int:
        """Publish from another thread, without waking the loop; how many such events now
        wait (past a few hundred, the caller has the loop call :meth:`flush_threadsafe`: a
        member that answers nothing makes the loop publish nothing).

        The event is delivered, in order, just before the next event the loop publishes (or
        at :meth:`flush_threadsafe`): for records such as "input sent" that must come before
        the output they cause, and need nothing done at once.
        """
        self._from_threads.append(event)
        return len(self._from_threads)

    @property
    def from_threads(self) -> int:
        """How many events other threads published that wait for the loop."""
        return len(self._from_threads)

    def flush_threadsafe(self) -> None:
        """Deliver what other threads published (call on the loop)."""
        if self._from_threads:
            self._take_from_threads()
            if not self._delivering:
                self._deliver()

    def _take_from_threads(self) -> None:
        # deque.popleft is atomic: a thread may append while we take.
        while self._from_threads:
            self._queue.append(self._from_threads.popleft())

    # Back-pressure -----------------------------------------------------------------

    def add_source(self, source: Source) -> None:
        self._sources.add(source)
        if self._pausers:
            source.pause_reading()

    def remove_source(self, source: Source) -> None:
        self._sources.discard(source)

    @property
    def paused(self) -> bool:
        return bool(self._pausers)

    @property
    def delivering(self) -> bool:
        """Whether a sink is being called now (what is published waits its turn)."""
        return self._delivering

    def pause(self, who: object) -> None:
        """``who`` cannot keep up: stop every source until it calls :meth:`resume`."""
        if not self._pausers:
            for source in self._sources:
                source.pause_reading()
        self._pausers.add(who)

    def paused_by(self, who: object) -> bool:
        """Whether ``who`` holds the sources back now."""
        return who in self._pausers

    def resume(self, who: object) -> None:
        if who not in self._pausers:
            return
        self._pausers.discard(who)
        if not self._pausers:
            for source in list(self._sources):
                source.resume_reading()


def _named(sink: Sink) -> str:
    """A sink as its author would know it: its function's or class's name."""
    name = getattr(sink, "__qualname__", None) or type(sink).__qualname__
    return str(name)
