"""The bus: every event goes through here to every sink, in order.

Sinks are plain callables run synchronously, so two members' lines can never interleave
inside a sink. A sink that cannot keep up (a slow terminal) asks the bus to pause the
sources; readers then stop reading, the children block on their full pipes, and memory
stays bounded without losing a byte. A sink that raises is removed with a note, so one
broken consumer never stops the draining of children.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

from ._events import Event, Note

__all__ = ("Bus", "Sink", "Source")

Sink = Callable[[Event], None]


class Source(Protocol):
    """Something that produces output and can stop reading for a while."""

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


class Bus:
    """Fan-out of events to sinks, with back-pressure from sinks to sources."""

    def __init__(self) -> None:
        self._sinks: list[Sink] = []
        self._sources: set[Source] = set()
        self._pausers: set[object] = set()
        self._queue: deque[Event] = deque()
        self._delivering = False
        self._from_threads: deque[Event] = deque()
        """Events from other threads, delivered before the loop's next event."""

    def subscribe(self, sink: Sink) -> Callable[[], None]:
        """Add a sink; returns a function that removes it."""
        self._sinks.append(sink)

        def unsubscribe() -> None:
            if sink in self._sinks:
                self._sinks.remove(sink)

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every sink.

        A sink may publish in turn (a matcher announcing a match); such events are queued
        and delivered after the current one, so every sink sees the same order.
        """
        if self._from_threads:
            self._take_from_threads()
        self._queue.append(event)
        if not self._delivering:
            self._deliver()

    def _deliver(self) -> None:
        self._delivering = True
        try:
            while self._queue:
                current = self._queue.popleft()
                failed: list[tuple[Sink, Exception]] = []
                # A copy: a sink may unsubscribe itself (or another) while handling.
                for sink in tuple(self._sinks):
                    try:
                        sink(current)
                    except Exception as exc:
                        failed.append((sink, exc))
                for sink, error in failed:
                    self._sinks.remove(sink)
                    self._queue.append(
                        Note(f"an output sink failed and was disabled: {error!r}", level="error")
                    )
        finally:
            self._delivering = False

    def publish_threadsafe(self, event: Event) -> None:
        """Publish from another thread, without waking the loop.

        The event is delivered, in order, just before the next event the loop publishes (or
        at :meth:`flush_threadsafe`): for records such as "input sent" that must come before
        the output they cause, and need nothing done at once.
        """
        self._from_threads.append(event)

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

    def pause(self, who: object) -> None:
        """``who`` cannot keep up: stop every source until it calls :meth:`resume`."""
        if not self._pausers:
            for source in self._sources:
                source.pause_reading()
        self._pausers.add(who)

    def resume(self, who: object) -> None:
        if who not in self._pausers:
            return
        self._pausers.discard(who)
        if not self._pausers:
            for source in list(self._sources):
                source.resume_reading()
