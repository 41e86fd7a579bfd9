"""Transcripts: every event of a run as JSON Lines, exact enough to replay and compare.

One record per line, as :mod:`.records` makes them. Writes are buffered and go to disk
every 64 KiB, and at the latest half a second after an event (so a pipeplex killed with
SIGKILL loses no more); a write error disables the transcript with one note and never
stops the run. Logs (``--log-dir``) reach the disk within the same half second.

Transcripts and logs are private (0600), and written only to a regular file of the user's
own: a symbolic link, a named pipe, a device or a file with other hard links in their place
is refused, never followed, since one planted in a shared folder would turn the run's output
against another file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import re
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

from .._bus import Bus
from .._events import Event, Note, Output, Started
from ..errors import PipeplexError
from ..output.terminal import Writer
from .files import Unsafe, check_way, make_folders, open_record
from .records import event_record

__all__ = ("LogDirSink", "TranscriptSink")


def check_given_descriptor(path: str | os.PathLike[str]) -> None:
    """Refuse ``--transcript /dev/fd/N`` for an N the run was not given (one not open when
    the command starts would later be one of pipeplex's own). Call it first thing.

    Raises:
        PipeplexError: descriptor N is not open.
    """
    text = os.fspath(path)
    if not _OWN_DESCRIPTOR.fullmatch(text) or text.startswith("/dev/std") or text == "/dev/null":
        return
    number = int(text.rsplit("/", 1)[1])
    try:
        os.fstat(number)
    except OSError:
        raise PipeplexError(f"cannot write the transcript {text}: descriptor {number} is not "
                            "open (give a file, or open the descriptor for pipeplex, as "
                            "--transcript >(jq .) does)") from None


def _own_descriptor(path: str) -> int:
    """A descriptor of ours for ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N``,
    ``/proc/self/fd/N`` (a copy: written at its own position, never truncated), or
    ``/dev/null``.

    Raises:
        Unsafe: that descriptor is not open for writing.
    """
    if path == "/dev/null":
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    number = {"/dev/stdout": 1, "/dev/stderr": 2}.get(path)
    if number is None:
        number = int(path.rsplit("/", 1)[1])
    try:
        writable = fcntl.fcntl(number, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY
    except OSError:
        writable = False
    if not writable:
        raise Unsafe(f"descriptor {number} is not open for writing")
    return os.dup(number)


_OWN_DESCRIPTOR = re.compile(r"/dev/(stdout|stderr|null)|/dev/fd/\d+|/proc/self/fd/\d+")
"""Paths that name one of the run's own descriptors (or /dev/null): ``--transcript
/dev/stdout``, or a shell's ``>(jq ...)``. Nobody can plant these; the transcript is written
through a copy of the descriptor, never by opening what it points to afresh."""


FLUSH_AFTER = 0.5
"""Seconds a record may wait in memory before it is written (unless 64 KiB came first)."""


def _flush_later(flush: Callable[[], None]) -> asyncio.TimerHandle | None:
    """``flush`` called in FLUSH_AFTER seconds by the running loop (None without one)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop.call_later(FLUSH_AFTER, flush)


class TranscriptSink:
    """Writes every event to a JSON Lines file (0600), or to one of the run's descriptors.

    A descriptor that is a pipe or a terminal (``>(jq .)``, ``/dev/stdout`` in a pipe) is
    written as the terminal is, by a :class:`~pipeplex.output.terminal.Writer`: never
    blocking the loop, its reader slowing the members down past a few MiB kept, and let go
    of by the run on a second stop signal when it takes nothing (``writer.abandon()``).
    One that is the run's own output (``terminal``: ``--transcript /dev/stdout``, or
    ``/dev/stderr`` with ``2>&1``) goes through the terminal's writer itself: a record
    never lands inside a line the terminal has taken half of.
    """

    def __init__(
        self, path: str | os.PathLike[str], bus: Bus, *, flush_at: int = 64 * 1024,
        terminal: Writer | None = None,
    ) -> None:
        self.path = Path(path)
        self._bus = bus
        self._file: IO[bytes] | None = None
        self._out: Writer | None = None
        """Where records go as a stream: the terminal's writer, or :attr:`writer` (None for
        a file, and once a write failed)."""
        self.writer: Writer | None = None
        """Its own writer (a pipe or a terminal other than the run's output), which the run
        drains, lets go of on a second stop signal, and :meth:`close` closes."""
        self._fd = -1
        text = os.fspath(path)
        try:
            if _OWN_DESCRIPTOR.fullmatch(text):
                fd = _own_descriptor(text)
            else:
                # (As --junit's; private, as the transcript is, those above it too. Its way
                # checked before they are made too: none is made where it is refused.)
                check_way(self.path.parent)
                make_folders(self.path.parent, mode=0o700, above=0o700)
                fd = open_record(self.path)
        except Unsafe as exc:
            system = os.fspath(path).startswith(("/dev/", "/proc/"))
            advice = "give another file" if system else exc.advice
            raise PipeplexError(f"cannot write the transcript {self.path}: {exc}; {advice}"
                                ) from None
        except (FileExistsError, NotADirectoryError):  # (a file where a folder of it goes)
            raise PipeplexError(f"cannot write the transcript {self.path}: "
                                f"{_a_file_above(self.path)} is a file, not a folder (give "
                                "another path)") from None
        except OSError as exc:
            raise PipeplexError(f"cannot write the transcript {self.path}: {exc.strerror} "
                                "(give a file in a folder you may write to)") from None
        kind = os.fstat(fd)
        if terminal is not None and text != "/dev/null" and _same_object(kind, terminal.fd):
            os.close(fd)
            self._out = terminal
        elif not stat.S_ISREG(kind.st_mode) and text != "/dev/null":  # (a pipe, a terminal)
            self._fd = fd
            self._out = self.writer = Writer(
                fd, bus, on_broken=lambda: self._fail(BrokenPipeError(errno.EPIPE, "its reader "
                                                                      "went away")),
                on_failed=self._fail)
        else:
            self._file = os.fdopen(fd, "wb")
        self._pending: list[str] = []
        self._size = 0
        self._flush_at = flush_at
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, event: Event) -> None:
        if self._file is None and self._out is None:
            return
        line = json.dumps(event_record(event), ensure_ascii=False) + "\n"
        self._pending.append(line)
        self._size += len(line)
        if self._size >= self._flush_at:
            self.flush()
        elif self._timer is None:
            self._timer = _flush_later(self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        data = "".join(self._pending).encode()
        self._pending.clear()
        self._size = 0
        if self._out is not None:
            self._out.write(data)
        elif self._file is not None:
            try:
                self._file.write(data)
                self._file.flush()
            except OSError as exc:
                self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        file, self._file, self._out = self._file, None, None
        try:
            if file is not None:
                file.close()
        except OSError:
            pass
        self._bus.publish(Note(f"transcript write failed: {exc.strerror} ({self.path}); "
                               "transcript disabled", level="error"))

    async def drain(self) -> None:
        """Write what is kept, and wait until a reader of its own has taken it (or the run
        let it go on a stop signal)."""
        self.flush()
        if self.writer is not None and self._out is self.writer:
            await self.writer.drain()

    def close(self) -> None:
        self.flush()
        self._out = None
        if self.writer is not None:  # (what is left goes out with blocking writes; after a
            self.writer.close()  # failure, its outlet is let go of)
            self.writer = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:
                self._fail(exc)
            self._file = None


def _a_file_above(path: Path) -> Path:
    """The first of ``path``'s folders that is something else (a file) in fact."""
    for folder in reversed(path.parents):
        if os.path.lexists(folder) and not folder.is_dir():
            return folder
    return path.parent


def _same_object(kind: os.stat_result, fd: int) -> bool:
    """Whether ``fd`` is the file (the pipe, the terminal) that ``kind`` describes."""
    try:
        other = os.fstat(fd)
    except OSError:
        return False
    return (kind.st_dev, kind.st_ino) == (other.st_dev, other.st_ino)


class LogDirSink:
    """One plain log per member in a folder: ``NAME.log`` with exactly what it wrote.

    A log is made when its member starts. One that cannot be (a symbolic link or
    a named pipe in its place, say) is skipped with a warning note on ``bus`` (or said to
    ``warn``, where notes are not shown: test mode), and the other members' logs go on;
    without either, the error is raised to the caller instead.
    """

    writer: Writer | None = None
    """A writer of its own: none (logs are files, which take what comes at once)."""

    def __init__(self, folder: str | os.PathLike[str], bus: Bus | None = None, *,
                 warn: Callable[[str], None] | None = None, names: Iterable[str] = ()) -> None:
        self.folder = Path(folder)
        self._bus = bus
        self._warn = warn
        try:
            # Private when we make it, as the logs in it are (0600), whatever the umask;
            # its way checked before and after (none made where it is refused).
            check_way(self.folder)
            make_folders(self.folder, mode=0o700)
            check_way(self.folder)
            # The folder itself, never a link in its place: the logs are made in it by name.
            self._dir_fd = os.open(self.folder,
                                   os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except Unsafe as exc:
            raise PipeplexError(f"cannot use the log folder {self.folder}: {exc}; "
                                f"{exc.advice}") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR
                                            and self.folder.is_symlink()):
                raise PipeplexError(f"cannot use the log folder {self.folder}: it is a "
                                    "symbolic link, which pipeplex does not follow; give the "
                                    "folder it points to, if that is yours") from None
            raise PipeplexError(f"cannot make the log folder {self.folder}: {exc.strerror} "
                                "(give a folder you may write to)") from None
        self._files: dict[str, IO[bytes] | None] = {}  # None: refused, not tried again
        self._unflushed: set[str] = set()
        self._timer: asyncio.TimerHandle | None = None
        for name in names:  # (emptied now: a member that never starts has no earlier log)
            self._empty(name)

    def __call__(self, event: Event) -> None:
        if isinstance(event, Started):
            # Made at the start, so a member that writes nothing has an empty log, not
            # an earlier run's under this run's name.
            if event.name not in self._files:
                self._files[event.name] = self._open(event.name)
            return
        if not isinstance(event, Output):
            return
        if event.name in self._files:
            file = self._files[event.name]
        else:
            file = self._files[event.name] = self._open(event.name)
        if file is not None:
            try:
                file.write(event.data)
            except OSError as exc:
                self._failed(event.name, exc)
                return
            self._unflushed.add(event.name)
            if self._timer is None:
                self._timer = _flush_later(self._flush)

    async def drain(self) -> None:
        """Write what is kept (logs are files: they take it at once)."""
        self._flush()

    def _flush(self) -> None:
        self._timer = None
        for name in self._unflushed:
            file = self._files.get(name)
            if file is not None:
                try:
                    file.flush()
                    removed = os.fstat(file.fileno()).st_nlink == 0
                except OSError as exc:
                    self._failed(name, exc)
                    continue
                if removed:  # (its folder cleaned up, or rotated away: writes would go on
                    self._failed(name, None)  # unseen)
        self._unflushed.clear()

    def _failed(self, name: str, exc: OSError | None) -> None:
        """A log that cannot be written (its disk full, say; None: it was removed): said
        once, then let go; what it holds stays, and the other logs go on."""
        file = self._files.get(name)
        self._files[name] = None
        if file is not None:
            with contextlib.suppress(OSError):  # (its buffer is lost with the disk's room)
                file.close()
        path = self.folder / f"{name}.log"
        self._say(f"cannot write the log {path}: {exc.strerror}; {name}'s output is logged no "
                  "further (what the log holds stays)" if exc is not None else
                  f"the log {path} was removed while the run wrote it; {name}'s output is "
                  "logged no further (give --log-dir a folder that nothing cleans up)", name)

    def _say(self, message: str, name: str) -> None:
        if self._warn is not None:
            self._warn(message)
        elif self._bus is not None:
            self._bus.publish(Note(message, name=name, level="warning"))
        else:
            raise PipeplexError(message)

    def _empty(self, name: str) -> None:
        """Make the log of ``name``, a member of the cast, empty: its earlier run's, left
        there, would pass for this run's if this run never starts it (a member waiting on
        one that failed, one started only when asked)."""
        if os.path.lexists(self.folder / f"{name}.log"):
            file = self._files[name] = self._open(name)
            if file is not None:
                file.close()
                del self._files[name]

    def _open(self, name: str) -> IO[bytes] | None:
        path = self.folder / f"{name}.log"
        try:
            return os.fdopen(open_record(f"{name}.log", dir_fd=self._dir_fd), "wb")
        except Unsafe as exc:
            message = (f"cannot write the log {path}: {exc}; {name}'s output is not logged "
                       "(remove it, or give another --log-dir)")
        except OSError as exc:
            message = (f"cannot write the log {path}: {exc.strerror}; {name}'s output is not "
                       "logged (give a --log-dir you may write to)")
        self._say(message, name)
        return None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._unflushed.clear()
        for name, file in list(self._files.items()):
            if file is not None:
                try:
                    file.close()
                except OSError as exc:
                    self._failed(name, exc)
        self._files.clear()
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1
