"""The terminal sink: rendered events written to pipeplex's stdout without stalling the loop.

Writes go out at once when the terminal keeps up. When it does not (a slow terminal, a
pipe into a paused pager), the rest is buffered and written as the fd becomes writable;
past ``high_water`` buffered bytes the sink pauses every reader on the bus, so children
block on their own full pipes: memory stays bounded and nothing is dropped.

stdout is shared with the shell that started us, so we never leave O_NONBLOCK set on it:
for a pipe or a terminal we open a second, private file description of the same object
through ``/proc/self/fd/1``. Where that is refused (a pipe or a terminal of another user,
as after ``su`` or ``runuser`` from root's terminal), each write sets O_NONBLOCK on the
shared description and clears it again at once; a socket (a service's journal stream) is
written with ``MSG_DONTWAIT``, which changes nothing shared. Either way a reader that takes
nothing never blocks the loop, so a stop signal is still heard. A regular file gets plain
blocking writes, which it absorbs at once.

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
import fcntl
import functools
import os
import socket
import stat
from collections import deque
from collections.abc import Callable

from .._bus import Bus
from .._events import Event
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
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fd, self._close_own, self._write = _nonblocking_writes(fd)
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
                written = self._write(view)
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
            if self._loop is None:
                self._loop = asyncio.get_running_loop()
            self._loop.add_writer(self._fd, self._flush_some)
            if self.pending > self._high:
                self._bus.pause(self)

    def _flush_some(self) -> None:
        assert self._loop is not None
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._buffered = 0
        try:
            written = self._write(data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            self._loop.remove_writer(self._fd)
            self._refused(exc)
            return
        rest = data[written:]
        if rest:
            self._buffer.append(rest)
            self._buffered = len(rest)
        else:
            self._loop.remove_writer(self._fd)
            if self._drained is not None:
                self._drained.set()
        if self.pending <= self._low:
            self._bus.resume(self)

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
        stop that waits for output the reader will not take)."""
        if self._loop is not None and self._buffer:
            self._loop.remove_writer(self._fd)
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
        while self._buffer and not self._closed:
            self._drained = asyncio.Event()
            await self._drained.wait()
            self._drained = None

    def close(self) -> None:
        self._flush_batch()
        if self._held and not self._closed:
            self._append(list(self._held))
        self._held.clear()
        self._held_bytes = 0
        if self._loop is not None and self._buffer:
            self._loop.remove_writer(self._fd)
        if self._buffer and not self._closed:
            # Shutting down: what is left goes out with blocking writes.
            if self._close_own is not None:
                os.set_blocking(self._fd, True)  # (ours; a shared one is blocking already)
            try:
                os.write(self._fd, b"".join(self._buffer))
            except OSError as exc:
                self._refused(exc)  # (the last lines refused: said, as any others)
        self._buffer.clear()
        if self._close_own is not None:
            self._close_own()
        self._closed = True


Write = Callable[[bytes | memoryview], int]


def _nonblocking_writes(fd: int) -> tuple[int, Callable[[], None] | None, Write]:
    """For ``fd``, shared with whoever started us: the descriptor to watch, what to close
    at the end (a descriptor of our own), and how to write without blocking (a
    BlockingIOError when the reader takes nothing now). See the module's docstring."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return fd, None, functools.partial(os.write, fd)
    if not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)):
        return fd, None, functools.partial(os.write, fd)  # a file: no reader to wait for
    if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
        return fd, None, functools.partial(os.write, fd)  # not ours: writes fail, as they should
    if stat.S_ISSOCK(mode):
        sock = socket.socket(fileno=os.dup(fd))
        return fd, sock.close, functools.partial(_send_now, sock)
    try:
        own = os.open(
            f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
        )
    except OSError:  # (another user's pipe or terminal)
        return fd, None, functools.partial(write_without_waiting, fd)
    return own, functools.partial(os.close, own), functools.partial(os.write, own)


def _send_now(sock: socket.socket, data: bytes | memoryview) -> int:
    return sock.send(data, socket.MSG_DONTWAIT)


def write_without_waiting(fd: int, data: bytes | memoryview) -> int:
    """``os.write`` to a shared descriptor that stays blocking: O_NONBLOCK is set for this
    one write and cleared at once, so a reader that takes nothing gives BlockingIOError
    here, and whoever shares the descriptor finds it as it was."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        return os.write(fd, data)
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags)


class TerminalSink:
    """Renders every event and writes it to a :class:`Writer`."""

    def __init__(self, renderer: Renderer, writer: Writer) -> None:
        self.renderer = renderer
        self.writer = writer

    def __call__(self, event: Event) -> None:
        self.writer.write(self.renderer.render(event))
