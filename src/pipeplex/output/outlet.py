"""Where the terminal writer's bytes go: pipeplex's stdout, which it shares with whoever
started it, written without ever blocking the loop.

stdout is never made non-blocking for everyone who shares it (the shell, a ``tee`` that
others write to): a flag changed there, even for a moment, makes their blocking writes
fail with EAGAIN, and two processes doing so can leave it set for good. Instead:

- a pipe or a terminal gets a second, private file description of the same object, opened
  through ``/proc/self/fd/1`` with O_NONBLOCK (:class:`_Private`);
- a socket (a service's journal stream) is sent to with ``MSG_DONTWAIT``, which changes
  nothing shared (:class:`_Socket`);
- a pipe or a terminal that cannot be opened again (another user's, after ``su`` or
  ``runuser`` from root's terminal; or no /proc) is written by a thread of its own with
  plain blocking writes (:class:`_Thread`): a reader that takes nothing blocks that thread,
  never the loop, so a stop signal and the control socket are still heard;
- a regular file takes plain writes (:class:`_Plain`): it absorbs them at once.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import queue
import select
import signal
import socket
import stat
import threading
from collections.abc import Callable

__all__ = ("Outlet", "open_outlet")


class Outlet:
    """Writes that never wait: :meth:`write` takes what it can now, or raises
    BlockingIOError; :meth:`when_writable` calls back once it can take more."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._loop: asyncio.AbstractEventLoop | None = None

    def write(self, data: bytes | memoryview) -> int:
        return os.write(self.fd, data)

    def when_writable(self, callback: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_writer(self.fd, callback)

    def stop_waiting(self) -> None:
        if self._loop is not None:
            self._loop.remove_writer(self.fd)

    @property
    def busy(self) -> bool:
        """Bytes taken by :meth:`write` are still on their way (a thread writes them)."""
        return False

    def finish(self, rest: bytes) -> None:
        """Shutting down: write ``rest`` whatever it takes, then let go (OSError if refused)."""
        if rest:
            os.write(self.fd, rest)

    def release(self) -> None:
        """Let go at once: what is on its way may be dropped."""


class _Plain(Outlet):
    """A regular file, or a descriptor not open for writing (whose writes fail as they
    should): plain writes."""


class _Private(Outlet):
    """A private non-blocking file description of the same pipe or terminal."""

    def finish(self, rest: bytes) -> None:
        try:
            if rest:
                os.set_blocking(self.fd, True)
                os.write(self.fd, rest)
        finally:
            self.release()

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class _Socket(Outlet):
    """A socket, sent to with MSG_DONTWAIT (a duplicate descriptor of our own)."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd)
        self._socket = socket.socket(fileno=os.dup(fd))

    def write(self, data: bytes | memoryview) -> int:
        return self._socket.send(data, socket.MSG_DONTWAIT)

    def finish(self, rest: bytes) -> None:
        try:
            view = memoryview(rest)
            while view:  # (waiting for room as a blocking send would, flags left alone)
                try:
                    view = view[self.write(view):]
                except BlockingIOError:
                    select.select([], [self.fd], [])
        finally:
            self.release()

    def release(self) -> None:
        self._socket.close()


_KEPT_FROM_THREAD = signal.valid_signals() - {
    signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGTRAP, signal.SIGSYS}
"""What the writing thread blocks: every signal but those its own faults raise (blocked,
they would kill the process with no word from faulthandler)."""


class _Thread(Outlet):
    """Plain blocking writes, done by a thread of their own (started at the first write)."""

    def __init__(self, fd: int, on_error: Callable[[OSError], None]) -> None:
        super().__init__(fd)
        self._on_error = on_error
        self._chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._busy = False
        self._callback: Callable[[], None] | None = None
        self._error: OSError | None = None

    def write(self, data: bytes | memoryview) -> int:
        if self._busy:
            raise BlockingIOError
        if self._thread is None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:  # (no loop to hear back: nothing else can wait either)
                return os.write(self.fd, data)
            thread = threading.Thread(target=self._run, name="pipeplex stdout",
                                      daemon=True)  # (one stalled at exit: let it be)
            # The signals blocked in the thread (it inherits the mask it starts with): a
            # stop signal goes to the loop's thread, and one that comes while the run holds
            # them, at its very end, waits there rather than meeting the default action here.
            # (The mask is read first: a handler run as signals are blocked may raise.)
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, ())
            try:
                signal.pthread_sigmask(signal.SIG_BLOCK, _KEPT_FROM_THREAD)
                thread.start()
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            self._thread = thread
        self._busy = True
        self._chunks.put(bytes(data))
        return len(data)

    def _run(self) -> None:
        assert self._loop is not None
        while (data := self._chunks.get()) is not None:
            error: OSError | None = None
            try:
                view = memoryview(data)
                while view:
                    try:
                        view = view[os.write(self.fd, view):]
                    except BlockingIOError:  # (whoever shares it left it non-blocking)
                        select.select([], [self.fd], [])
            except OSError as exc:
                error = self._error = exc
            try:
                self._loop.call_soon_threadsafe(self._done, error)
            except RuntimeError:  # the loop has closed: nobody waits any more
                return

    def _done(self, error: OSError | None) -> None:
        self._busy = False
        if error is not None:
            self._on_error(error)
        elif self._callback is not None:
            self._callback()

    def when_writable(self, callback: Callable[[], None]) -> None:
        self._callback = callback

    def stop_waiting(self) -> None:
        self._callback = None

    @property
    def busy(self) -> bool:
        return self._busy

    def finish(self, rest: bytes) -> None:
        if self._thread is None:
            super().finish(rest)
            return
        if rest:
            self._chunks.put(rest)
        self._chunks.put(None)
        self._thread.join()  # (blocking, as the other outlets' last write)
        if self._error is not None:
            raise self._error

    def release(self) -> None:
        self._chunks.put(None)


def open_outlet(fd: int, on_error: Callable[[OSError], None]) -> Outlet:
    """The outlet for ``fd``; ``on_error`` hears of a write that failed in a thread."""
    try:
        mode = os.fstat(fd).st_mode
        readable_only = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
    except OSError:
        return _Plain(fd)  # (closed: its writes fail, as they should)
    if readable_only or not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)):
        return _Plain(fd)
    if stat.S_ISSOCK(mode):
        return _Socket(fd)
    try:
        own = os.open(
            f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
        )
    except OSError:
        return _Thread(fd, on_error)
    return _Private(own)
