"""The input side of a member: its stdin, the queue of what it has not taken yet, and the
writer that gives it the rest as it reads.

Input comes from the loop (a step, the console, the run folder's pipes) and from other
threads (the synchronous API), which write directly when nothing waits, so a member gets
its line without waiting for the loop to wake. Past INPUT_FULL bytes waiting, the sources
that can wait are told to (see :attr:`Stdin.input_full`). What is sent to a password
prompt is recorded as stars. Apart from ``process.py`` so that the life of the process
reads on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import termios
import threading
import weakref
from collections.abc import Callable
from typing import Protocol

from .._bus import Bus
from .._events import InputSent, Note
from ._output import OutputReaders
from ._terminal import Terminal

__all__ = ("INPUT_FULL", "INPUT_ROOM", "RECORDS_WAITING", "Stdin", "StdinOwner")

INPUT_FULL = 1024 * 1024
"""Bytes of input waiting for a member to read them past which the run folder's pipes stop
being read for it (their writers wait, as on any pipe) and sends are refused."""
INPUT_ROOM = 256 * 1024
"""Bytes left waiting below which those pipes are read again."""
GATHER = 4096
"""Input waiting in pieces shorter than this gathers in one buffer, up to GATHER_MAX bytes:
a piece of its own costs ~250 bytes and a step in every count of what waits (a script
sending a million short lines to a member that reads slowly)."""
GATHER_MAX = 64 * 1024
_SECRET = re.compile(rb"[^\r\n]")
"""What of a password sent is shown as a star: all but its line ends."""
MAX_CANON = 4095
"""The longest line a terminal in canonical mode hands a program (Linux: 4096, newline
included)."""
RECORDS_WAITING = 256
"""Input records a thread's sends leave for the loop's next event, past which the loop is
woken to take them: else sends to a member that never answers kept every record."""


class StdinOwner(Protocol):
    """What a member's stdin asks of its process: whether it runs."""

    @property
    def name(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def returncode(self) -> int | None: ...

    def _guard(self, callback: Callable[[], object]) -> Callable[[], None]:
        """``callback`` for the loop, an exception in it routed to the engine."""
        ...

    def _exited_unread(self) -> bool:
        """Its process has exited, its pidfd not read yet."""
        ...

    def _exiting(self) -> bool:
        """Its process is on its way out, not a zombie yet."""
        ...


class Stdin:
    """A member's stdin, run after run, and what waits to be written to it.

    The process opens the descriptor and hands it over (:attr:`fd`, :attr:`is_pty`),
    readies a new run (:meth:`new_run`), and drops it once the run's exit is published
    (:meth:`drop`); a full terminal's master, which is stdin and output at once, goes
    when its output ends (:meth:`gone`), under :attr:`lock`. It asks of the process only
    what :class:`StdinOwner` says, of the output side (``output``) to read what waits
    before a line is sent and whether the member stands at a prompt, and of its terminal
    (``terminal``) its full terminal's master.
    """

    def __init__(self, process: StdinOwner, bus: Bus, output: OutputReaders,
                 terminal: Terminal) -> None:
        _LIVE.add(self)
        self.fd: int | None = None
        """The member's stdin (a pipe's write end, or its full terminal's master)."""
        self.is_pty = False
        self._process = process
        self._bus = bus
        self._output = output
        self._terminal = terminal
        self.loop: asyncio.AbstractEventLoop | None = None
        """The loop of the process's latest start (set by it)."""
        self._pending_input: list[memoryview | bytearray] = []
        """Input the member's stdin has not taken yet, in order (see :meth:`_queue`)."""
        self._room_waiters: list[Callable[[], None]] = []
        """Called once the input waiting falls below INPUT_ROOM (or stdin is gone)."""
        self.lock = threading.RLock()
        """Held by the loop while it changes stdin's queue or closes it, and by writes from
        other threads, which must not overtake queued input or hit a reused descriptor."""
        self._queued_from_threads = 0
        self._dropped: int | None = None
        """Once a send was dropped with a note: the bytes dropped since, told in one note
        when it starts again or the cast ends."""
        self._bytes_from_threads = 0
        """Bytes other threads handed to the loop that it has not queued or written yet."""
        self._close_after_drain = False

    def new_run(self) -> None:
        """A run starts: nothing of the last one waits, and its stdin is open."""
        self._pending_input.clear()
        self._close_after_drain = False

    @property
    def input_open(self) -> bool:
        """Whether a line sent now can reach the program: not once it has exited, even
        while what it wrote is still being read."""
        return (self.fd is not None and not self._close_after_drain
                and self._process.returncode is None)

    @property
    def input_waiting(self) -> int:
        """Bytes sent to the member that its stdin has not taken yet."""
        return sum(len(chunk) for chunk in self._pending_input) if self._pending_input else 0

    @property
    def reads_secret(self) -> bool:
        """Whether the member's full terminal reads a password: echo off in line mode, as
        getpass, sudo, ssh and ``read -s`` set it (readline, in a REPL, turns line mode off
        as well, and echoes itself). What is sent now is not to be shown or kept."""
        terminal = self._terminal.master()
        if terminal is None:
            return False
        try:
            flags = termios.tcgetattr(terminal)[3]
        except termios.error:  # (its terminal has just gone)
            return False
        return bool(flags & (termios.ECHO | termios.ICANON) == termios.ICANON)

    # Room -------------------------------------------------------------------------------

    @property
    def input_full(self) -> bool:
        """Whether the member has INPUT_FULL bytes or more of input it has not read."""
        return self.input_waiting >= INPUT_FULL

    def when_input_room(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the input waiting has fallen below INPUT_ROOM, or the
        member's stdin is gone (then nothing waits any more)."""
        self._room_waiters.append(callback)

    async def input_room(self) -> None:
        """Return once the member has taken its input down below INPUT_ROOM, or its stdin
        is gone; at once unless it is full (as a stream's ``drain``: a member that reads
        does not make every send wait)."""
        if self.fd is None or not self.input_full:
            return
        assert self.loop is not None
        room: asyncio.Future[None] = self.loop.create_future()

        def roomy() -> None:
            if not room.done():  # (cancelled: a drain's timeout, between two steps)
                room.set_result(None)

        self.when_input_room(roomy)
        try:
            await room
        finally:
            if room.cancelled():  # (nor kept: one a drain's timeout each would add up)
                with contextlib.suppress(ValueError):
                    self._room_waiters.remove(roomy)

    def _tell_room(self) -> None:
        if self._room_waiters and (self.fd is None or self.input_waiting < INPUT_ROOM):
            waiters, self._room_waiters = self._room_waiters, []
            for callback in waiters:
                callback()

    # Sending ----------------------------------------------------------------------------

    def send(self, data: bytes, *, record: bool = True) -> bool:
        """Queue ``data`` for the member's stdin; False (with a note) if stdin is closed,
        also when the write finds that the member closed it.
        ``record=False``: the caller published its :class:`InputSent` already."""
        output = self._output
        recording = record and self._bus.wants(InputSent)  # (a record only: skipped when
        if recording:                                      # nobody keeps records)
            output.take_output()  # (first: its end, read now, closes a full terminal's stdin)
        if self.fd is None or self._close_after_drain or self._process.returncode is not None:
            # (not input_open, spelled out: a call less per line)
            if self._dropped is not None:  # (said already: a script's every later line
                self._dropped += len(data)  # would make a note of its own)
                return False
            self._dropped = 0
            why = {"pending": "has not started yet", "failed": "could not start"}.get(
                self._process.state,
                "is not running" if self._process.returncode is not None
                else "has its stdin closed")
            self._bus.publish(Note(f"{why}; dropped {len(data)} bytes of input",
                                   name=self._process.name, level="warning"))
            return False
        if recording:
            self._bus.publish(self._input_record(data))
        if output.prompt is not None:
            self._line_sent(data)
        if self.is_pty and len(data) > MAX_CANON:
            self._warn_if_cut(data)
        with self.lock:
            if self._pending_input:
                self._queue(data)
            elif not self._write(data):
                self._closed_by_member(len(data))
                return False
        return True

    def _input_record(self, data: bytes) -> InputSent:
        """The record of ``data`` sent: a password (see :attr:`reads_secret`) as stars, so
        that no transcript, golden file or attach client keeps it."""
        if self.is_pty and self.reads_secret:
            data = _SECRET.sub(b"*", data)
        return InputSent(self._process.name, data)

    def _line_sent(self, data: bytes) -> None:
        """A line sent where the member stands at a prompt answers it. When what the stream
        writes next is a prompt again (``python -i`` after ``x = 1``: ``>>> >>> ``), that
        prompt starts a line of its own (``Output.new_line``), as a terminal's echo of the
        line would have put it. Anything else it writes first (an answer, its own echo of
        the line, the rest of a line sent in pieces, a slow line's next dot: a prompt ends
        in a space) goes on as written. Not on a full terminal, whose own echo does it."""
        if b"\n" in data and not self.is_pty:
            self._output.answer_prompt()

    def _warn_if_cut(self, data: bytes) -> None:
        if (note := self._cut_short(data)) is not None:
            self._bus.publish(note)

    def _cut_short(self, data: bytes) -> Note | None:
        """A full terminal in canonical mode (a shell's prompt, ``input()``) cuts a line at
        MAX_CANON bytes, without a word: the warning that says so, where the program will
        see less. Asked as the bytes are written: by the time the loop comes to it, the
        program may have read them, and ended."""
        longest = max(len(line) for line in data.split(b"\n"))
        if longest <= MAX_CANON or not self._in_line_mode():
            return None
        return Note(f"its terminal takes lines of at most {MAX_CANON} bytes (a full terminal "
                    f"in line mode): a line of {longest} bytes reaches the program cut short; "
                    "a member with pty = \"stdout\" or false reads lines of any length",
                    name=self._process.name, level="warning")

    def close_input(self) -> None:
        """Close the member's stdin once queued input is written (EOF for the program).

        In full-terminal mode there is no pipe to close: send the terminal's EOF (^D).
        """
        if self.is_pty and self._bus.wants(InputSent):
            self._output.take_output()  # (its end, read now, closes its stdin: then no ^D)
        if not self.input_open:
            return
        if self.is_pty:
            in_line_mode = self._in_line_mode()  # (either side of the write: a program
            self.send(b"\x04", record=False)  # may take its terminal raw in between)
            if in_line_mode or self._in_line_mode():  # (the ^D's record is the end's, below)
                self._output.after_output = self._eof_maybe_lost
            self._close_after_drain = True
            self._bus.publish(InputSent(self._process.name, b"", eof=True))
            return
        self._close_after_drain = True
        self._bus.publish(InputSent(self._process.name, b"", eof=True))
        if not self._pending_input:
            self.drop()

    def _in_line_mode(self) -> bool:
        """Whether the full terminal is in line mode (canonical) now."""
        terminal = self._terminal.master()
        try:
            return terminal is not None and bool(termios.tcgetattr(terminal)[3]
                                                 & termios.ICANON)
        except termios.error:
            return False

    def _eof_maybe_lost(self) -> None:
        """The ^D of a close, typed while the terminal was in line mode, waits there for a
        read; a REPL busy with a command (readline gives the terminal back its line mode
        meanwhile) takes it out of line mode before it reads again, and the kernel hands
        it over as a NUL then: the REPL would never end. Looked at as it writes (its
        prompt comes once its terminal is raw): then the ^D goes again, as a person would
        type it, after the terminal's erase key for that NUL (Python's own REPL puts it in
        the line, where ^D no longer ends it; readline has it set a mark)."""
        if self._in_line_mode():
            return
        self._output.after_output = None
        if self._process.returncode is None:
            with self.lock:
                if self.fd is not None and not self._pending_input:
                    self._write(self._erase_key() + b"\x04")

    def _erase_key(self) -> bytes:
        """The full terminal's erase key (DEL unless the program set another), or none."""
        terminal = self._terminal.master()
        if terminal is None:
            return b""
        try:
            erase = termios.tcgetattr(terminal)[6][termios.VERASE]
        except termios.error:
            return b""
        return erase if erase not in (b"", b"\x00") else b""

    def tell_dropped(self) -> None:
        """Tell in one note the bytes dropped since the first dropped send's own note."""
        if self._dropped:
            self._bus.publish(Note(f"dropped {self._dropped} more bytes of input sent while it "
                                   "could not take them", name=self._process.name,
                                   level="warning"))
        self._dropped = None

    # Writing ----------------------------------------------------------------------------

    def _write(self, data: bytes | bytearray | memoryview) -> bool:
        """Write what the pipe takes and queue the rest; False, with nothing queued, when
        the member has closed its stdin (the caller tells what that drops)."""
        assert self.fd is not None
        try:
            written = os.write(self.fd, data)
        except BlockingIOError:
            written = 0
        except (BrokenPipeError, ConnectionResetError):
            return False
        if written < len(data):
            self._queue(memoryview(data)[written:])
            assert self.loop is not None
            self.loop.add_writer(self.fd, self._process._guard(self._write_more))
        return True

    def _queue(self, data: bytes | bytearray | memoryview) -> None:
        """Put ``data`` behind the input waiting: a short piece joins the short ones before
        it in one buffer (copied), a long one waits as it is (no copy)."""
        pending = self._pending_input
        if len(data) >= GATHER:
            pending.append(memoryview(data))
        elif pending and type(last := pending[-1]) is bytearray and len(last) < GATHER_MAX:
            last += data
        else:
            pending.append(bytearray(data))

    def _closed_by_member(self, dropped: int) -> None:
        """A write found the pipe's other end closed. A process that ends closes its
        descriptors after it is marked exiting, so one not exiting closed its stdin itself
        (or whatever it handed its stdin to ended)."""
        if self._process._exited_unread() or self._process._exiting():
            text = f"ended with {dropped} bytes of input it never read; dropped"
        else:
            text = f"closed its stdin; dropped {dropped} bytes of input"
        self._bus.publish(Note(text, name=self._process.name, level="warning"))
        self.drop()

    def _write_more(self) -> None:
        with self.lock:
            self._write_pending()

    def _write_pending(self) -> None:
        assert self.fd is not None and self.loop is not None
        self.loop.remove_writer(self.fd)
        pending, self._pending_input = self._pending_input, []
        for i, chunk in enumerate(pending):
            if not self._write(chunk):
                self._closed_by_member(sum(len(rest) for rest in pending[i:]))
                return
            if self._pending_input:  # blocked again: keep the rest in order
                self._pending_input.extend(pending[i + 1 :])
                self._tell_room()
                return
        self._tell_room()
        if self._close_after_drain:
            self.drop()

    def drop(self) -> None:
        """Close stdin (unless the readers still read it: a full terminal's master), and
        drop what waits for it."""
        with self.lock:
            fd, self.fd = self.fd, None
            self._pending_input.clear()
            if fd is not None and self.loop is not None:
                self.loop.remove_writer(fd)
                if fd not in self._output.readers:
                    os.close(fd)
        self._tell_room()

    def gone(self) -> None:
        """The readers closed stdin's descriptor (a full terminal's master, whose output
        ended): nothing more is written, and what waits is dropped. The caller holds
        :attr:`lock`."""
        assert self.fd is not None and self.loop is not None
        self.loop.remove_writer(self.fd)
        self.fd = None
        self._pending_input.clear()

    # From other threads -----------------------------------------------------------------

    def send_threadsafe(self, data: bytes) -> bool:
        """:meth:`send` from a thread other than the loop's (the synchronous API); True
        when the member may now be full (see :meth:`input_room`).

        When nothing is queued, the bytes are written at once from the calling thread, so
        the member gets them without waiting for the loop to wake up; the loop then records
        them, and writes whatever did not fit.
        """
        loop = self.loop
        if loop is None:
            raise RuntimeError(f"{self._process.name} was never started")
        written = 0
        recorded = False
        cut: Note | None = None
        with self.lock:
            fd = self.fd
            direct = (fd is not None and not self._pending_input and not self._close_after_drain
                      and self._process.returncode is None and self._queued_from_threads == 0)
            if direct:
                if self._bus.wants(InputSent):
                    # The record waits for the loop's next event, so the loop is not woken
                    # for it; made before the write, it comes before the answer, which the
                    # loop may read the moment the write is done.
                    waiting = self._bus.publish_threadsafe(self._input_record(data))
                    recorded = True
                    if waiting % RECORDS_WAITING == 0:  # (a member that answers nothing)
                        loop.call_soon_threadsafe(self._bus.flush_threadsafe)
                if self._output.prompt is not None:
                    self._line_sent(data)
                if self.is_pty and len(data) > MAX_CANON:  # (else send() says it)
                    cut = self._cut_short(data)
                try:
                    written = os.write(fd, data)  # type: ignore[arg-type]
                except OSError:
                    written = 0  # full, or closed: the loop's send() deals with it
            if written < len(data):
                self._queued_from_threads += 1
                self._bytes_from_threads += len(data) - written
                backlog = self._bytes_from_threads + self.input_waiting
        if written and cut is not None:
            loop.call_soon_threadsafe(self._bus.publish, cut)
        if written == len(data):
            return False
        loop.call_soon_threadsafe(self._sent_from_thread, data, written, recorded)
        return backlog >= INPUT_FULL

    def _sent_from_thread(self, data: bytes, written: int, recorded: bool) -> None:
        try:
            if written == 0:
                self.send(data, record=not recorded)
                return
            if not recorded and self._bus.wants(InputSent):
                self._bus.publish(self._input_record(data))
            rest = memoryview(data)[written:]
            with self.lock:
                if self.fd is None:
                    return
                if self._pending_input:
                    self._queue(rest)
                elif not self._write(rest):
                    self._closed_by_member(len(rest))
        finally:
            # Only now may a thread write directly again: not before these bytes.
            with self.lock:
                self._queued_from_threads -= 1
                self._bytes_from_threads -= len(data) - written

    def call_threadsafe(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` in the loop, in order with :meth:`send_threadsafe`.

        For what a thread asks of the member besides input (close its stdin, a signal):
        input the thread sends afterwards waits until ``fn`` has run, so it can neither
        overtake a close nor reach the member before a signal sent first.
        """
        loop = self.loop
        if loop is None:
            raise RuntimeError(f"{self._process.name} was never started")
        with self.lock:
            self._queued_from_threads += 1
        loop.call_soon_threadsafe(self._call_from_thread, fn, args)

    def _call_from_thread(self, fn: Callable[..., object], args: tuple[object, ...]) -> None:
        try:
            fn(*args)
        finally:
            with self.lock:
                self._queued_from_threads -= 1


_LIVE: weakref.WeakSet[Stdin] = weakref.WeakSet()


def _let_go_in_child() -> None:
    """In a child forked from this process (``multiprocessing``'s default start, a library
    that daemonises): close each member's stdin pipe, whose copy there would keep the
    member from ever reading to its end (the EOF that closing its stdin gives)."""
    for stdin in list(_LIVE):
        fd = getattr(stdin, "fd", None)  # (one made as the fork came: not yet)
        if fd is not None and not stdin.is_pty:
            stdin.fd = None
            with contextlib.suppress(OSError):
                os.close(fd)


os.register_at_fork(after_in_child=_let_go_in_child)
