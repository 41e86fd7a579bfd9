"""The terminal sink: rendered events written to pipeplex's stdout without stalling the loop.

Writes go out at once when the terminal keeps up. When it does not (a slow terminal, a
pipe into a paused pager), the rest is buffered and written as the fd becomes writable;
past ``high_water`` buffered bytes the sink pauses every reader on the bus, so children
block on their own full pipes: memory stays bounded and nothing is dropped.

stdout is shared with the shell that started us: how it is written without blocking the
loop, and without changing what others share, is the outlet's business (``outlet.py``).

When the terminal hangs up (its window closed, the ssh connection dropped), every write
fails with EIO: from then on writes are dropped quietly and ``on_hangup`` says so once,
as a broken pipe calls ``on_broken``. Any other refusal (a full disk, ``> /dev/full``, a
descriptor not open for writing) drops the rest the same way and calls ``on_failed``
with the error.

While an interactive console shows its prompt on the same terminal, the writer is *held*:
writes are kept (still counted against ``high_water``, so back-pressure works the same)
and the console writes them out in short windows while its prompt is hidden.
"""

from __future__ import annotations

import asyncio
import errno
from collections import deque
from collections.abc import Callable

from .._bus import Bus
from .._events import Event
from .outlet import open_outlet
from .render import Renderer

__all__ = ("TerminalSink", "Writer")

HIGH_WATER = 4 * 1024 * 1024
LOW_WATER = 256 * 1024


class Writer:
    """Buffered, back-pressured writes to one file descriptor."""

    def __init__(
        self,
        fd: int,
        bus: Bus,
        *,
        on_broken: Callable[[], None] = lambda: None,
        on_failed: Callable[[OSError], None] = lambda exc: None,
        high_water: int = HIGH_WATER,
        low_water: int = LOW_WATER,
    ) -> None:
        self.fd = fd
        """The descriptor it writes to (through a private copy, if the outlet makes one)."""
        self._bus = bus
        self._on_broken = on_broken
        self._on_failed = on_failed
        self.on_hangup: Callable[[], None] = on_broken
        """Called instead of ``on_broken`` when the terminal hung up (a write got EIO)."""
        self._high = high_water
        self._low = low_water
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._closed = False
        self._refused_once = False
        self._outlet = open_outlet(fd, on_error=self._failed_later)
        self._drained: asyncio.Event | None = None
        self._holding = False
        self._held: deque[bytes] = deque()
        self._held_bytes = 0
        self._on_held: Callable[[], None] = lambda: None
        self._batch: list[bytes] = []
        """Writes of this loop iteration, joined into one system call at its end."""

    @property
    def refused(self) -> bool:
        """A write failed for good (the terminal hung up, the reader left...): what comes
        is dropped."""
        return self._refused_once

    @property
    def stalled(self) -> bool:
        """The reader takes less than comes: the members' output waits for it, unread."""
        return self._bus.paused_by(self)

    @property
    def pending(self) -> int:
        """Bytes accepted but not yet written (held or buffered)."""
        return self._buffered + self._held_bytes

    def write(self, data: bytes) -> None:
        if self._closed or not data:
            return
        if self._holding:
            self._held.append(data)
            self._held_bytes += len(data)
            if self.pending > self._high:
                self._bus.pause(self)
            if len(self._held) == 1:
                self._on_held()
            return
        if self._buffer:
            self._buffer.append(data)
            self._buffered += len(data)
            if self.pending > self._high:
                self._bus.pause(self)
            return
        if not self._batch:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self._write_now(data)
                return
            # Everything written in this pass of the loop goes out in one write(): a flood
            # from several members costs one system call per pass, not one per chunk.
            loop.call_soon(self._flush_batch)
        self._batch.append(data)

    def _flush_batch(self) -> None:
        batch, self._batch = self._batch, []
        if not batch or self._closed:
            return
        data = batch[0] if len(batch) == 1 else b"".join(batch)
        if self._buffer:
            self._append([data])
            if self.pending > self._high:
                self._bus.pause(self)
        else:
            self._write_now(data)

    # Holding (an interactive prompt owns the terminal) ------------------------------

    def hold(self, on_held: Callable[[], None]) -> None:
        """Keep writes from now on; call ``on_held`` when the first one arrives."""
        self._flush_batch()  # what came before the hold goes out before the prompt shows
        self._holding = True
        self._on_held = on_held
        if self._held:
            on_held()

    def flush_held(self, limit: int | None = None) -> bool:
        """Write out what was held so far (then :meth:`drain` waits for it); keep holding.
        With ``limit``, only the first pieces, about that many bytes (at least one): a slow
        terminal then takes a flood a window at a time, the prompt reading keys between.
        True if some stays held."""
        if limit is None:
            held, self._held = list(self._held), deque()
            taken = self._held_bytes
        else:  # (from the front: a window's cost is its own size, not what stays held)
            held, taken = [], 0
            while self._held and (not held or taken + len(self._held[0]) <= limit):
                held.append(self._held.popleft())
                taken += len(held[-1])
        self._held_bytes -= taken
        if held and not self._closed:
            if self._buffer:
                self._append(held)
            else:
                self._write_now(b"".join(held))
        if self.pending <= self._low:
            self._bus.resume(self)
        return bool(self._held)

    def write_through(self, data: bytes) -> None:
        """Write ``data`` past what is held, after what is already on its way: the prompt's
        own drawing, which waits neither for the cast's output nor, blocking the loop,
        for a full terminal."""
        if self._closed or not data:
            return
        self._flush_batch()
        if self._buffer:
            self._append([data])
        else:
            self._write_now(data)

    def release(self) -> None:
        """Stop holding: write what was held, and write directly from now on."""
        self._holding = False
        self._on_held = lambda: None
        self.flush_held()

    def _append(self, chunks: list[bytes]) -> None:
        self._buffer.extend(chunks)
        self._buffered += sum(map(len, chunks))

    def _write_now(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = self._outlet.write(view)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError as exc:
                self._refused(exc)
                return
            view = view[written:]
        if view:
            self._buffer.append(bytes(view))
            self._buffered += len(view)
            self._outlet.when_writable(self._flush_some)
            if self.pending > self._high:
                self._bus.pause(self)
        elif self._outlet.busy:  # (taken by a thread that writes it: told when it has)
            self._outlet.when_writable(self._flush_some)

    def _flush_some(self) -> None:
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        try:
            written = self._outlet.write(data) if data else 0
        except BlockingIOError:
            written = 0
        except OSError as exc:
            self._outlet.stop_waiting()
            self._refused(exc)
            return
        rest = data[written:]
        if rest:
            self._buffer.append(rest)
            self._buffered = len(rest)
        elif not self._outlet.busy:
            self._outlet.stop_waiting()
            if self._drained is not None:
                self._drained.set()
        if self.pending <= self._low:
            self._bus.resume(self)

    def _failed_later(self, exc: OSError) -> None:
        """A write that the outlet's thread carried out failed."""
        self._outlet.stop_waiting()
        if not self._closed:
            self._refused(exc)

    def _refused(self, exc: OSError) -> None:
        """A write failed for good: drop what is kept and what comes from now on, and say
        why (the reader left, the terminal hung up, or the file cannot take more)."""
        self._refused_once = True
        self._drop()
        if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            self._on_broken()
        elif exc.errno == errno.EIO:
            self.on_hangup()
        else:
            self._on_failed(exc)

    def abandon(self) -> None:
        """Drop what is kept and what comes from now on: we are leaving, and the reader
        is not taking it (a stop signal came after the cast had ended, or again during a
        stop that waits for output the reader will not take). Once closed, nothing."""
        if self._closed:  # (its outlet may be let go of, its descriptor closed)
            return
        self._outlet.stop_waiting()
        self._batch.clear()
        self._drop()

    def _drop(self) -> None:
        self._closed = True
        self._buffer.clear()
        self._buffered = 0
        self._held.clear()
        self._held_bytes = 0
        self._bus.resume(self)
        if self._drained is not None:
            self._drained.set()

    async def drain(self) -> None:
        """Wait until everything buffered has been written (or the reader went away)."""
        self._flush_batch()
        while (self._buffer or self._outlet.busy) and not self._closed:
            self._drained = asyncio.Event()
            await self._drained.wait()
            self._drained = None

    def close(self) -> None:
        self._flush_batch()
        if self._held and not self._closed:
            self._append(list(self._held))
        self._held.clear()
        self._held_bytes = 0
        self._outlet.stop_waiting()
        if self._closed:
            self._outlet.release()
        else:
            try:  # shutting down: what is left goes out with blocking writes
                self._outlet.finish(b"".join(self._buffer))
            except OSError as exc:
                self._refused(exc)  # (the last lines refused: said, as any others)
        self._buffer.clear()
        self._closed = True


class TerminalSink:
    """Renders every event and writes it to a :class:`Writer`."""

    def __init__(self, renderer: Renderer, writer: Writer) -> None:
        self.renderer = renderer
        self.writer = writer

    def __call__(self, event: Event) -> None:
        self.writer.write(self.renderer.render(event))
