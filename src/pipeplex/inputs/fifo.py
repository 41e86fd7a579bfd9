"""Named pipes in the run folder: ``echo hi > run/alice.in`` from any terminal or script.

Input is delivered line by line: bytes are held until their newline, so two writers
taking turns that end their lines never splice them. When every writer has closed, Linux
reports EOF; a line left without its newline is dropped with a warning (it belonged to a
writer that is gone). A FIFO keeps no record of who wrote what: when the next writer opens
it before those bytes were read, there is no EOF between them, and they join its first
line. After an EOF the pipe is reopened, so the next writer is heard and an idle pipe costs
nothing (a FIFO with no writers would otherwise wake the loop forever).
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Callable

from .._bus import Bus
from .._events import Note
from ..errors import RunDirError
from .rundir import RunDir

__all__ = ("FifoChannel",)

READ_SIZE = 64 * 1024
MAX_PENDING = 1024 * 1024


class FifoChannel:
    """Reads one FIFO and hands each complete line to ``deliver``."""

    def __init__(
        self,
        run_dir: RunDir,
        filename: str,
        deliver: Callable[[bytes], None],
        bus: Bus,
        *,
        on_crash: Callable[[BaseException], None],
        full: Callable[[Callable[[], None]], bool] = lambda resume: False,
    ) -> None:
        self._run_dir = run_dir
        self.filename = filename
        self._deliver = deliver
        self._bus = bus
        self._on_crash = on_crash
        self._full = full
        """``full(resume)``: whether the members it feeds have as much input waiting as they
        may; then ``resume`` is called once they have room again."""
        self._paused = False
        self._fd: int | None = None
        self._pending = b""
        self._loop: asyncio.AbstractEventLoop | None = None
        self.path = run_dir.make_fifo(filename)

    def __repr__(self) -> str:
        return f"<FifoChannel {self.filename!r} {'open' if self._fd is not None else 'closed'}>"

    def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._fd = self._run_dir.open_fifo(self.filename)
        self._loop.add_reader(self._fd, self._readable)

    def close(self) -> None:
        """Stop reading, saying what was written and never delivered: a line its writer,
        still there, had not ended, and what was still in the pipe (nothing else would tell
        them)."""
        left = len(self._pending) + (self._unread() if self._fd is not None else 0)
        self._pending = b""
        if left:
            self._note(f"dropped {left} bytes that writers had sent and no member got (the "
                       "pipe closed before a newline came, or before they were read)")
        if self._fd is not None and self._loop is not None:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
        self._fd = None

    def _unread(self) -> int:
        """How many bytes the pipe still holds, read and thrown away (up to MAX_PENDING: a
        writer that goes on writing meanwhile is not followed for ever)."""
        assert self._fd is not None
        count = 0
        while count < MAX_PENDING:
            try:
                data = os.read(self._fd, READ_SIZE)
            except OSError:  # (BlockingIOError: it is empty)
                break
            if not data:
                break
            count += len(data)
        return count

    def _readable(self) -> None:
        try:
            self._read()
        except Exception as exc:
            self._on_crash(exc)

    def _read(self) -> None:
        assert self._fd is not None
        if self._full(self._resume):  # (filled another way meanwhile: the socket, all.in)
            self._pause()
            return
        if self._read_once() and self._full(self._resume):
            self._pause()

    def take_waiting(self) -> None:
        """Deliver the whole lines the pipe holds now, even past ``full``: the member's
        stdin is about to close, and what was written before goes before that (a writer's
        ``write()`` returns once its bytes are in the pipe, not once pipeplex has read
        them: ``cat data > db.in; pipeplex send db --eof`` gives db all of data)."""
        taken = 0
        while self._fd is not None and taken <= MAX_PENDING:
            count = self._read_once()
            if not count:
                return
            taken += count

    def _read_once(self) -> int:
        """Read the pipe once, delivering the lines it ends; how many bytes came (0: none,
        or every writer has gone)."""
        assert self._fd is not None
        try:
            data = os.read(self._fd, READ_SIZE)
        except BlockingIOError:
            return 0
        if not data:
            self._writers_gone()
            return 0
        count = len(data)
        data = self._pending + data if self._pending else data
        end = data.rfind(b"\n") + 1
        self._pending = data[end:]
        if end:
            self._deliver(data[:end])
        if len(self._pending) > MAX_PENDING:
            self._note(f"dropped {len(self._pending)} bytes without a newline (a line may hold "
                       f"at most {MAX_PENDING // (1024 * 1024)} MiB)")
            self._pending = b""
        return count

    def _pause(self) -> None:
        """Read no more for now: the pipe fills and its writer waits, as on any pipe,
        instead of pipeplex holding all it would write."""
        self._paused = True
        assert self._loop is not None and self._fd is not None
        self._loop.remove_reader(self._fd)

    def _resume(self) -> None:
        if not self._paused or self._fd is None or self._full(self._resume):
            return
        self._paused = False
        assert self._loop is not None
        self._loop.add_reader(self._fd, self._readable)

    def _writers_gone(self) -> None:
        if self._pending:
            self._note(f"dropped {len(self._pending)} bytes after the writer closed without "
                       "ending its line; end each line with a newline")
            self._pending = b""
        # Open the new descriptor before closing the old one: a FIFO with no reader left
        # frees its buffer, and a next writer may already have written into it.
        try:
            fd = self._run_dir.open_fifo(self.filename)
        except FileNotFoundError:
            fd, why = None, "it was removed"
        except RunDirError:
            fd, why = None, "something that is not a FIFO of yours is in its place"
        except OSError as exc:
            fd, why = None, ("a symbolic link is in its place" if exc.errno == errno.ELOOP
                             else f"it cannot be opened again: {exc.strerror}")
        old, self._fd = self._fd, fd
        assert self._loop is not None and old is not None
        self._loop.remove_reader(old)
        os.close(old)
        if fd is None:
            self._note(f"{why}; input through it has stopped (pipeplex send still reaches "
                       "the member), and whatever is there now is left alone")
            return
        self._loop.add_reader(fd, self._readable)

    def _note(self, text: str) -> None:
        self._bus.publish(Note(f"{self.filename}: {text}", level="warning"))
