"""The output side of a member: the readers of its stdout and stderr, run after run.

Every chunk a member writes comes through here (``os.read`` in large chunks, framed into
lines, a partial line cut after a quiet time as a prompt), and so does what comes after
its exit: the grace its output gets to reach EOF, and output that a process it started
still holds open. Apart from ``process.py`` so that the life of the process (its spawn, its
exit, its signals) reads on its own; and since this is pipeplex's hottest path, all that a
chunk touches is an attribute of the readers themselves, never a step through the process.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import re
import select
import termios
import time
from collections.abc import Callable
from typing import Protocol

from .._bus import Bus
from .._events import Note, Output, Stream
from ._framing import LineFramer
from .guardian import Guardian

__all__ = ("DRAIN_GRACE", "MAX_PARTIAL_AGE", "QUIET", "OutputOwner", "OutputReaders")

READ_SIZE = 64 * 1024
"""Bytes asked of one read while output trickles in. Under glibc's mmap threshold (128 KiB):
a larger request costs an mmap and munmap per read, 15 us against 1 us for a short line."""
FLOOD_READ_SIZE = 256 * 1024
"""Bytes asked of one read once a read came back full: fewer passes through the loop in a
flood, where the mmap is shared by a quarter of a megabyte."""
QUIET = 0.1
"""Seconds an unfinished line (a prompt) waits for its end before it is shown anyway; no
time at all for a prompt that a waiting expectation matches (see ``_quiet_time``)."""
MAX_PARTIAL_AGE = 0.5
"""An unfinished line that keeps growing slowly is shown at least this often."""
DRAIN_GRACE = 2.0
"""Seconds after exit that the output may take to reach EOF before the exit is published
anyway (another process holds it open; what it writes goes on being shown). Output held
open as the exit is seen is looked at every QUIET seconds: once nothing is left in the
member's process group (a daemon that left it holds the output) and nothing waits to be
read, its EOF is not coming, and the exit, with what the member's policy does about it,
is published then rather than after those 2 s."""
_PROMPT_END = re.compile(rb"[ \t](?:\x1b\[[0-?]*[ -/]*[@-~])*\Z")
"""How a prompt ends: a space (colours after it aside), as ``>>> ``, ``$ ``, ``sqlite> `` do;
a slow line's progress (``Working...``) does not."""
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\r")
"""What an unfinished line's text loses before a waiting pattern looks at it (a coloured
prompt), as the matcher's buffer loses it (see ``_plain_text``)."""


def _unread(fd: int) -> int:
    """Bytes waiting to be read on ``fd`` (a pipe, or a terminal's master)."""
    import fcntl
    import struct

    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0])
    except OSError:
        return 0


class OutputOwner(Protocol):
    """What the readers ask of the process whose output they read: all of it, once per
    stream or per run, never per chunk."""

    @property
    def name(self) -> str: ...
    @property
    def returncode(self) -> int | None: ...

    def group_alive(self) -> bool: ...

    def _guard(self, callback: Callable[[], object]) -> Callable[[], None]:
        """``callback`` for the loop, an exception in it routed to the engine."""
        ...

    def _output_ended(self, fd: int) -> None:
        """The readers are done with ``fd``: the process closes it (it owns the descriptors)
        and sees whether the run is over."""
        ...

    def _maybe_done(self) -> None:
        """The output has changed in a way that may end the run (the drain's grace ran
        out): the process publishes its exit if so."""
        ...


class OutputReaders:
    """The readers of one member's output, and the bus's source for it: a sink that cannot
    keep up pauses them (:meth:`pause_reading`), and its pipes fill, until it resumes.

    The process hands them each run's read ends (:meth:`read_from`), readies them
    (:meth:`new_run`) and starts them (:meth:`start_reading`); tells them its exit
    (:meth:`exited`), from which their drain grace runs; and stops them
    (:meth:`stop_drain`) once it publishes that exit. They ask of it only what
    :class:`OutputOwner` says. The input side asks them to read what waits before a line
    is sent (:meth:`take_output`) and whether the member stands at a prompt (:attr:`prompt`).
    """

    def __init__(self, process: OutputOwner, bus: Bus, guardian: Guardian | None) -> None:
        self._process = process
        self._bus = bus
        self._guardian = guardian
        self.loop: asyncio.AbstractEventLoop | None = None
        """The loop of the process's latest start (set by it)."""
        self.readers: dict[int, Stream] = {}
        """The read ends of the run's output, and the stream each one is."""
        self._waiting_output = select.poll()
        """The readers, to ask in one call which of them have output waiting (see
        :meth:`take_output`)."""
        self._framers: dict[Stream, LineFramer] = {}
        self._read_sizes: dict[int, int] = {}
        """Per output fd in a flood, the larger read size (see FLOOD_READ_SIZE)."""
        self._timers: dict[Stream, asyncio.TimerHandle] = {}
        self.prompt: Stream | None = None
        """The stream that stands at the member's latest prompt: its last piece was an
        unfinished line cut because the member went quiet, and nothing came on it since."""
        self._answered: set[Stream] = set()
        """Streams whose prompt a line sent answered, with nothing to echo it: if their next
        piece is a prompt again, it starts a line of its own (see :attr:`Output.new_line`)."""
        self._prompting: Stream | None = None
        """The stream whose prompt is being cut (in :meth:`_quiet`)."""
        self._paused = False
        self._drain_timer: asyncio.TimerHandle | None = None
        self._drain_left = DRAIN_GRACE
        """Of the drain grace, the seconds not yet spent reading (it pauses with reading)."""
        self._drain_deadline = 0.0
        self._held_look: asyncio.TimerHandle | None = None
        """The next look at whether what holds the output open has let it be read."""
        self.held = False
        """The run has ended but a process it started still holds its output open: that
        output is read and shown (under the member's name) until EOF or the next start."""
        self.held_output_end: asyncio.Future[None] | None = None
        """Made when the run's output is found held open so (see :meth:`_drain_expired`):
        done once it no longer is (its EOF, or not read any more)."""
        self.after_output: Callable[[], None] | None = None
        """Called after each read of output while set, for the run (see
        ``Stdin._eof_maybe_lost``)."""

    # A run's start ----------------------------------------------------------------------

    def read_from(self, readers: dict[int, Stream]) -> None:
        """Read the run's output from ``readers`` (none: the start failed)."""
        self.readers = readers
        self._waiting_output = select.poll()
        for fd in readers:
            self._waiting_output.register(fd, select.POLLIN)

    def new_run(self) -> None:
        """Frame the new run's streams afresh, no prompt seen yet."""
        self._framers = {
            stream: LineFramer(self._emitter(stream)) for stream in self.readers.values()
        }
        self.prompt = None
        self._answered.clear()
        self.after_output = None

    def start_reading(self) -> None:
        """Read the new run's output, unless a sink holds the bus back."""
        self._paused = False  # (a run that ended during a pause was never resumed)
        self._bus.add_source(self)
        self._bus.prompt_lookers[self._process.name] = self.look_again
        if not self._bus.paused:
            self._add_readers()

    def _emitter(self, stream: Stream) -> Callable[[bytes, bool], None]:
        publish, name, answered = self._bus.publish, self._process.name, self._answered

        def emit(data: bytes, partial: bool) -> None:
            if answered and stream in answered:
                answered.discard(stream)
                if self._prompting == stream and _PROMPT_END.search(data):  # a prompt again
                    publish(Output(name, stream, data, partial, new_line=True))
                    return
            publish(Output(name, stream, data, partial))

        return emit

    def answer_prompt(self) -> None:
        """A line was sent where the member stands at a prompt (see ``Stdin._line_sent``)."""
        if (prompt := self.prompt) is not None:
            self._answered.add(prompt)
            self.prompt = None

    # Reading ----------------------------------------------------------------------------

    def _add_readers(self) -> None:
        assert self.loop is not None
        guard = self._process._guard
        for fd, stream in self.readers.items():
            self.loop.add_reader(fd, guard(functools.partial(self._read, fd, stream)))

    def pause_reading(self) -> None:
        if not self._paused and self.loop is not None:
            self._paused = True
            for fd in self.readers:
                self.loop.remove_reader(fd)
            if self._drain_timer is not None:  # the grace is for reading: it waits too
                self._stop_held_look()  # (resuming looks again)
                self._drain_timer.cancel()
                self._drain_timer = None
                self._drain_left = max(self._drain_deadline - self.loop.time(), 0.0)

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            self._add_readers()
            self._start_drain_grace()

    def _read(self, fd: int, stream: Stream) -> bool:
        """Read what is there; True if anything (data or EOF) was."""
        size = self._read_sizes.get(fd, READ_SIZE)
        try:
            data = os.read(fd, size)
        except BlockingIOError:
            return False
        except OSError as exc:
            # A pty master reports EIO once every slave end is closed: that is its EOF.
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self._close_reader(fd)
            return True
        if len(data) == size:
            self._read_sizes[fd] = FLOOD_READ_SIZE
        elif size != READ_SIZE and len(data) < READ_SIZE:
            del self._read_sizes[fd]
        if self.prompt == stream:
            self.prompt = None
        framer = self._framers[stream]
        framer.feed(data)
        if framer.pending:
            self._cut_in_time(stream)
        if self.after_output is not None:
            self.after_output()
        return True

    def _cut_in_time(self, stream: Stream) -> None:
        """Have the unfinished line of ``stream`` cut once it has waited its quiet time: a
        timer, unless one runs already that comes as soon (a line's pieces, each a read,
        share one)."""
        quiet = self._quiet_time(stream)
        timer = self._timers.get(stream)
        assert self.loop is not None
        if timer is not None:
            if timer.when() <= self.loop.time() + quiet:
                return
            timer.cancel()
        self._timers[stream] = self.loop.call_later(quiet, self._quiet, stream)

    def look_again(self) -> None:
        """An expectation began to wait on the member (in any thread): an unfinished line
        that waits out its quiet time may be what it waits for, or wait less now."""
        loop = self.loop
        if not self._timers or loop is None or loop.is_closed():
            return  # (no line waits to be cut: nothing to look at, nor a loop to wake)
        if asyncio._get_running_loop() is loop:
            self._look_again()
        else:
            loop.call_soon_threadsafe(self._look_again)

    def _look_again(self) -> None:
        for stream in list(self._timers):
            if self._framers[stream].pending:
                self._cut_in_time(stream)

    def _quiet_time(self, stream: Stream) -> float:
        """How long the unfinished line of ``stream`` waits for its end before it is cut:
        no time at all for a prompt (it ends in a space) that a waiting expectation's
        pattern matches already, which pexpect would see as it came: a REPL's round trip
        cost 0.1 s each. Not for other lines: a line's first piece (``print``'s text, its
        newline a write of its own) cut at once puts what comes between the two, a line
        sent, before the line in a golden file."""
        tail = self._framers[stream].tail
        waits = self._bus.awaited.get(self._process.name)
        if waits and _PROMPT_END.search(tail):
            text = _ESCAPES.sub("", tail.decode("utf-8", "replace"))
            if any(pattern.search(text) for patterns in tuple(waits) for pattern in patterns):
                return 0.0
        return QUIET

    def _quiet(self, stream: Stream) -> None:
        del self._timers[stream]
        framer = self._framers[stream]
        if not framer.pending:
            return
        # A busy loop can run this timer before the reader of data that already waits in
        # the pipe: read first, so only a member that really went quiet gets its line cut.
        fd = next((fd for fd, s in self.readers.items() if s == stream), None)
        if self._paused:  # (a sink holds the output back: looked at again, not at once)
            assert self.loop is not None
            self._timers[stream] = self.loop.call_later(QUIET, self._quiet, stream)
            return
        if fd is not None and self._read(fd, stream):
            if framer.pending:
                self._cut_in_time(stream)
            return
        now = time.monotonic()
        quiet = self._quiet_time(stream)
        if now - framer.last_data < quiet and now - framer.tail_since < MAX_PARTIAL_AGE:
            assert self.loop is not None
            delay = framer.last_data + quiet - now
            self._timers[stream] = self.loop.call_later(delay, self._quiet, stream)
            return
        if (framer.shown_at is not None and now - framer.shown_at < MAX_PARTIAL_AGE
                and framer.starts_again()):
            # A progress bar's next state, over the one shown last: its latest state at
            # most every half second, however slowly it goes (one each 0.2 s made a line
            # per update, where a fast one makes two a second).
            assert self.loop is not None
            delay = framer.shown_at + MAX_PARTIAL_AGE - now
            self._timers[stream] = self.loop.call_later(delay, self._quiet, stream)
            return
        # A prompt, told before its piece goes out: a caller that the piece wakes in
        # another thread may send its answer at once (see Stdin._line_sent).
        self.prompt = self._prompting = stream
        held_long = now - framer.last_data >= MAX_PARTIAL_AGE
        try:
            # A cut character waits for the rest; but not for ever: what looks like one
            # may be the last of a latin-1 prompt ("employ\xe9").
            framer.flush(whole_characters=not held_long)
        finally:
            self._prompting = None
        if framer.pending:  # (what was cut short is no prompt yet)
            self.prompt = None
            assert self.loop is not None
            delay = framer.last_data + MAX_PARTIAL_AGE - now
            self._timers[stream] = self.loop.call_later(delay, self._quiet, stream)

    def _close_reader(self, fd: int) -> None:
        stream = self.readers.pop(fd)
        if self._guardian is not None:
            self._guardian.output_ended(fd)
        self._waiting_output.unregister(fd)
        self._read_sizes.pop(fd, None)
        assert self.loop is not None
        self.loop.remove_reader(fd)
        timer = self._timers.pop(stream, None)
        if timer:
            timer.cancel()
        self._framers[stream].flush()
        if not self.readers and self._bus.prompt_lookers.get(self._process.name) == self.look_again:
            del self._bus.prompt_lookers[self._process.name]
        self._process._output_ended(fd)

    def take_output(self) -> None:
        """Read what the member wrote before the line now sent to it (within reason), so
        that the records show it first: the loop may not have come to its pipes yet when
        a step, woken by another member's line, sends. Not while paused (a slow sink), nor
        from a sink (a line of this member may be half framed; what was delivered before
        is before this line anyway)."""
        if self._paused or self.held or self._bus.paused or self._bus.delivering:
            return
        # One poll, not a read of each stream: most sends find nothing waiting, and a
        # read that finds nothing costs five times as much (an API's round trip: 10 %).
        for fd, _ in self._waiting_output.poll(0):
            for _ in range(8):
                if (stream := self.readers.get(fd)) is None or not self._read(fd, stream):
                    break

    # After the exit ---------------------------------------------------------------------

    def exited(self) -> None:
        """The run's process has exited: its output gets its whole drain grace."""
        self._drain_left = DRAIN_GRACE
        self._start_drain_grace()

    def _start_drain_grace(self) -> None:
        """After the exit, give the output DRAIN_GRACE seconds of reading to reach EOF (in
        all: a pause keeps what is left of them)."""
        if (self._process.returncode is not None and self.readers and not self.held
                and not self._paused and self._drain_timer is None and self.loop is not None):
            self._drain_deadline = self.loop.time() + self._drain_left
            self._drain_timer = self.loop.call_at(self._drain_deadline, self._drain_expired,
                                                  DRAIN_GRACE)
            if self._held_look is None and self.output_held():
                self._held_look = self.loop.call_later(QUIET, self._drained_if_held)

    def _drained_if_held(self) -> None:
        """Output held open since the exit: once the member's group is empty (a process in
        it may be on its way out, writing its last lines; a daemon leaves it as it starts)
        and nothing waits to be read, the holder is outside it and its EOF is not coming
        (see :data:`DRAIN_GRACE`): the exit is published. Looked at every QUIET seconds,
        with a signal 0 to the group and a count of the bytes waiting: no scan of /proc."""
        self._held_look = None
        if self._drain_timer is None or self.loop is None:
            return  # (published already)
        if self._process.group_alive() or any(_unread(fd) for fd in self.readers):
            self._held_look = self.loop.call_later(QUIET, self._drained_if_held)
            return
        self._drain_timer.cancel()
        self._drain_expired()

    def _stop_held_look(self) -> None:
        if self._held_look is not None:
            self._held_look.cancel()
            self._held_look = None

    def stop_drain(self) -> None:
        """The exit is being published: no more grace, nor looks at held output."""
        if self._drain_timer:
            self._drain_timer.cancel()
            self._drain_timer = None
        self._stop_held_look()

    def stop_waiting_for_output(self) -> None:
        """The run has exited and what still holds its output open is not to be waited for
        (a stop that could not find it): done now, as when the drain's grace runs out."""
        if self._process.returncode is not None and self.readers and not self.held:
            if self._drain_timer is not None:
                self._drain_timer.cancel()
            self._drain_expired()

    def _drain_expired(self, after: float | None = None) -> None:
        """The output is still open after the exit: a process the member started holds it
        (``after``: the drain grace ran out, that many seconds, which the note says; None:
        found so sooner, or not waited for). The exit is published; what that process
        writes goes on being shown (closing our end would make its next write fail, or kill
        it with SIGPIPE)."""
        self._drain_timer = None
        self._stop_held_look()
        held = " and ".join(sorted(self.readers.values()))
        self.held = True
        assert self.loop is not None
        self.held_output_end = self.loop.create_future()
        for stream in list(self._timers):  # the run's last piece of a line goes before its exit
            self._timers.pop(stream).cancel()
            self._framers[stream].flush()
        self._process._maybe_done()
        when = f" ({after:.0f} s after it exited)" if after is not None else ""
        self._bus.publish(Note(
            f"its {held} {'is' if len(self.readers) == 1 else 'are'} still open in a process "
            f"it started{when}; what that writes there is still shown",
            name=self._process.name))

    def release_output(self) -> None:
        """Stop reading output that processes of an ended run still hold open (before the
        next start, and when the cast is over)."""
        if self.held:
            self.let_go()
            self.held = False

    def let_go(self) -> None:
        """Stop reading the run's output, what is already there read first (within reason):
        its readers are closed."""
        for fd, stream in list(self.readers.items()):
            for _ in range(64):
                if fd not in self.readers or not self._read(fd, stream):
                    break
            if fd in self.readers:
                self._close_reader(fd)

    def output_held(self) -> bool:
        """True while some process still holds this run's output open: one of its streams
        has not hung up (its end may not have been read yet; that is not held)."""
        hung_up = {fd for fd, flags in self._waiting_output.poll(0)
                   if flags & (select.POLLHUP | select.POLLERR)}
        return any(fd not in hung_up for fd in self.readers)
