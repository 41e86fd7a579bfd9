"""The control socket's ``attach``: a connection that becomes a stream of the run's events.

Apart from the connections' requests and answers (``control.py``, ``_control_requests.py``):
an attach client subscribes to the bus. Its sink only queues events; the connection's own
task encodes and sends them, so the bus (and with it the cast) never waits for a client. A
client that lets more than :data:`ATTACH_BACKLOG` bytes pile up is dropped with a notice,
in the run and (if it still reads) on its connection. When the run ends, each client gets
its last events and the run's status, within :data:`END_GRACE`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._events import Event, InputSent, Note, Output
from ..errors import UnknownMember
from ._control_requests import Answer, Refused, Requests, write_answer

if TYPE_CHECKING:
    from ..engine.engine import Engine

__all__ = ("ATTACH_BACKLOG", "AttachClients")

ATTACH_BACKLOG = 4 * 1024 * 1024
"""Bytes of events waiting for one attach client before it is dropped (as much as the
terminal writer holds before it pauses the cast)."""
DROP_GRACE = 1.0
"""Seconds a dropped (or, at the end, a finished) attach client gets to take its last lines."""
END_GRACE = 2.0


class _Subscriber:
    """An attach client's queue of events, fed by the bus and emptied by its connection."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.events: deque[Event] = deque()
        self.queued = 0
        self.wake = asyncio.Event()
        self.dropped: str | None = None
        self.end: Answer | None = None
        self.sending: asyncio.Timeout | None = None
        self.unsubscribe: Callable[[], None] = lambda: None
        self.on_drop: Callable[[_Subscriber], None] = lambda sub: None

    def __call__(self, event: Event) -> None:
        if isinstance(event, InputSent) or self.dropped:
            return
        if self.name is not None and getattr(event, "name", None) not in (self.name, None):
            return  # following one member: its events, and notes about the whole run
        self.events.append(event)
        self.queued += (len(event.data) + 64) if isinstance(event, Output) else 128
        if self.queued > ATTACH_BACKLOG:
            self.drop(f"this client fell {self.queued} bytes behind the run")
        self.wake.set()

    def drop(self, reason: str) -> None:
        self.dropped = reason
        self.unsubscribe()
        self.events.clear()
        self.queued = 0
        if self.sending is not None:
            self.sending.reschedule(asyncio.get_running_loop().time() + DROP_GRACE)
        self.on_drop(self)
        self.wake.set()


class AttachClients:
    """The attach clients of ``engine``'s control socket; ``requests`` names their member."""

    def __init__(self, engine: Engine, requests: Requests) -> None:
        self._engine = engine
        self._bus = engine.bus
        self._requests = requests
        self._subscribers: set[_Subscriber] = set()
        self._no_subscribers = asyncio.Event()
        self._no_subscribers.set()

    def __len__(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        """Unsubscribe every client from the bus: the run's events go to none of them."""
        for sub in list(self._subscribers):
            sub.unsubscribe()

    async def finish(self, status: int) -> None:
        """Give every client its last events and the run's ``status``, and wait (at most
        :data:`END_GRACE`) until they are gone."""
        for sub in self._subscribers:
            sub.end = {"event": "end", "status": status}
            sub.wake.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(END_GRACE):
                await self._no_subscribers.wait()

    async def attach(self, reader: asyncio.StreamReader, stream: asyncio.StreamWriter,
                     request: dict[str, Any]) -> bool:
        """Stream the run's events to this connection until either side ends; False when
        the request was refused (answered, and nothing else happened)."""
        name = request.get("name")
        try:
            if name is not None:
                name = self._requests.member_name(request, allow_all=False)
        except Refused as refused:
            await write_answer(stream, refused.answer)
            return False
        except UnknownMember as exc:
            await write_answer(stream, Refused("unknown_member", str(exc),
                                               members=list(exc.valid)).answer)
            return False
        try:  # (loaded now, not by the pump: a module's file takes a descriptor to read)
            import json  # noqa: F401

            from .. import _events_wire  # noqa: F401
        except OSError as exc:  # out of descriptors: this client is refused, the run goes on
            await write_answer(stream, Refused(
                "failed", f"cannot attach now: {exc.strerror or exc}").answer)
            return False
        sub = _Subscriber(name)
        members = [{"name": spec.name, "pty": spec.pty} for spec in self._engine.cast.procs]
        answer: Answer = {"ok": True, "members": members}
        if "id" in request:
            answer["id"] = request["id"]
        await write_answer(stream, answer)
        sub.on_drop = self._dropped
        sub.unsubscribe = self._bus.subscribe(sub)
        self._subscribers.add(sub)
        self._no_subscribers.clear()
        try:
            async with asyncio.TaskGroup() as tg:
                pump = tg.create_task(self._pump(stream, sub), name="attach pump")
                watch = tg.create_task(_until_eof(reader), name="attach watch")
                # Either ends the other: the client left, or the stream is over.
                pump.add_done_callback(lambda _: watch.cancel())
                watch.add_done_callback(lambda _: pump.cancel())
        finally:
            sub.unsubscribe()
            self._subscribers.discard(sub)
            if not self._subscribers:
                self._no_subscribers.set()
        return True

    def _dropped(self, sub: _Subscriber) -> None:
        self._bus.publish(Note(f"control socket: an attach client was too slow and was "
                               f"dropped ({sub.dropped}); the run goes on", level="warning"))

    async def _pump(self, stream: asyncio.StreamWriter, sub: _Subscriber) -> None:
        """Send the subscriber's events until the run ends, or it is dropped, or it leaves.

        Batches are written whole, so the transport only ever holds whole lines: a dropped
        client that still reads gets the notice on a line of its own; one that does not
        read within DROP_GRACE is disconnected, and what was buffered for it freed.
        """
        try:
            while True:
                await sub.wake.wait()
                sub.wake.clear()
                if sub.dropped:
                    break
                if sub.events:
                    import json

                    from .._events_wire import encode_event

                    batch, sub.events = sub.events, deque()
                    sub.queued = 0
                    stream.write("".join(json.dumps(message) + "\n" for e in batch
                                         if (message := encode_event(e)) is not None).encode())
                    async with asyncio.timeout(None) as sub.sending:
                        await stream.drain()
                    sub.sending = None
                    if sub.dropped:
                        break
                if sub.end is not None and not sub.events:
                    async with asyncio.timeout(DROP_GRACE):
                        await write_answer(stream, sub.end)
                    return
            async with asyncio.timeout(DROP_GRACE):
                await write_answer(stream, {"event": "dropped", "reason": sub.dropped})
        except TimeoutError:
            stream.transport.abort()  # it stopped reading: let go of what is buffered for it
        except ConnectionError:
            pass  # it left


async def _until_eof(reader: asyncio.StreamReader) -> None:
    """Return when the client closes its side (whatever else it sends is ignored)."""
    with contextlib.suppress(ConnectionError):
        while await reader.read(64 * 1024):
            pass
