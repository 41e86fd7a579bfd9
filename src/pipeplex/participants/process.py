"""A member that is a local child process, with its stdin, stdout and stderr.

The child runs in its own session and process group, so a signal reaches everything it
started. pipeplex owns every file descriptor: output is read with ``add_reader`` and
``os.read`` in large chunks (no StreamReader line limit, no thread per child), and the
exit is seen through a pidfd, so asyncio's child watcher (a thread per child on 3.11)
is never involved.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import re
import select
import signal
import subprocess
import termios
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Literal

from .._bus import Bus
from .._events import Exited, InputSent, Note, Output, Started, Stream
from .._printable import printable
from .._signals import signal_name
from ..cast.spec import ProcSpec, expand
from ..errors import SignalRefused, SpawnError
from ._framing import LineFramer
from ._group import exits_within, live_in_group, owner, unwatch_group, watch_group
from ._proc import FLAGS, GONE, PF_EXITING, PPID, STATE, child_flags, signal_pending, stat_fields
from ._pty import open_pty, set_size
from ._spawn import (
    bad_text,
    find_executable,
    forget_executables,
    spawn,
    spawn_reason,
    spawn_status,
)
from .guardian import Guardian

__all__ = ("Process", "ProcessState")

ProcessState = Literal["pending", "running", "stopping", "exited", "failed"]

READ_SIZE = 64 * 1024
"""Bytes asked of one read while output trickles in. Under glibc's mmap threshold (128 KiB):
a larger request costs an mmap and munmap per read, 15 us against 1 us for a short line."""
FLOOD_READ_SIZE = 256 * 1024
"""Bytes asked of one read once a read came back full: fewer passes through the loop in a
flood, where the mmap is shared by a quarter of a megabyte."""
QUIET = 0.1
"""Seconds an unfinished line (a prompt) waits for its end before it is shown anyway."""
MAX_PARTIAL_AGE = 0.5
"""An unfinished line that keeps growing slowly is shown at least this often."""
DRAIN_GRACE = 2.0
"""Seconds after exit that the output may take to reach EOF before the exit is published
anyway (another process holds it open; what it writes goes on being shown). Output held
open as the exit is seen is looked at every QUIET seconds: once nothing is left in the
member's process group (a daemon that left it holds the output) and nothing waits to be
read, its EOF is not coming, and the exit, with what the member's policy does about it,
is published then rather than after those 2 s."""
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
_PROMPT_END = re.compile(rb"[ \t](?:\x1b\[[0-?]*[ -/]*[@-~])*\Z")
"""How a prompt ends: a space (colours after it aside), as ``>>> ``, ``$ ``, ``sqlite> `` do;
a slow line's progress (``Working...``) does not."""
_SECRET = re.compile(rb"[^\r\n]")
"""What of a password sent is shown as a star: all but its line ends."""
MAX_CANON = 4095
"""The longest line a terminal in canonical mode hands a program (Linux: 4096, newline
included)."""
RECORDS_WAITING = 256
"""Input records a thread's sends leave for the loop's next event, past which the loop is
woken to take them: else sends to a member that never answers kept every record."""
NO_PAGER = {name: "cat" for name in ("PAGER", "GIT_PAGER", "MANPAGER", "SYSTEMD_PAGER",
                                     "PSQL_PAGER")}
"""For a member whose stdin is not a terminal: ``git log``, ``man`` or ``psql`` on its
stdout's pty would start ``less``, which reads keys from a terminal nobody types into, shows
one page and quits, and the program dies of SIGPIPE. (A cast's own ``env`` still wins.)"""
_KEYBOARD_SIGNALS = frozenset({signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP})
"""What a terminal's keys send (Ctrl-C, Ctrl-\\, Ctrl-Z), to its foreground job."""



_seen_at: dict[asyncio.AbstractEventLoop, float] = {}


def _unread(fd: int) -> int:
    """Bytes waiting to be read on ``fd`` (a pipe, or a terminal's master)."""
    import fcntl
    import struct

    try:
        return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0])
    except OSError:
        return 0


def _seen_now(loop: asyncio.AbstractEventLoop) -> float:
    """When the exits a pass of ``loop`` handles were seen: one time for all of them, the
    pass's first. Seen together, they are together, whatever their handlers cost in
    between (a busy machine's preemption, a look at what a member left in its group): a
    member that failed because another one ended is then never judged to have ended
    first."""
    seen = _seen_at.get(loop)
    if seen is None:
        seen = _seen_at[loop] = time.monotonic()
        loop.call_soon(_seen_at.pop, loop, None)  # (runs after this pass's callbacks)
    return seen

class Process:
    """One child program of the cast.

    Create it, then ``await start()``; ``wait_exited()`` returns after the program ended
    *and* everything it wrote has been published. Output, start and exit become events
    on the bus.
    """

    def __init__(
        self,
        spec: ProcSpec,
        bus: Bus,
        *,
        on_crash: Callable[[BaseException], None],
        columns: int = 80,
        rows: int = 24,
        env_overrides: Mapping[str, str] | None = None,
        guardian: Guardian | None = None,
    ) -> None:
        _LIVE.add(self)
        self.spec = spec
        self.name = spec.name
        self.state: ProcessState = "pending"
        self.pid: int | None = None
        self.returncode: int | None = None
        self.stopping = False
        """True once pipeplex decided to stop this member (its exit is then expected)."""
        self.signalled_to_stop = False
        """The stop signalled it (SIGTERM, SIGKILL) before it exited: its exit is the stop's
        doing. One that ends at the EOF a stop gave it, before any signal, ended on its own."""
        self.signals_asked: set[int] = set()
        """Signals a person sent this run (:meth:`signal_as_asked`): one of them that ends
        it, even as a stop begins, ended it on its own."""
        self.exited_before_stop = False
        """Its process had already exited when the stop took this run over (:meth:`begin_stop`),
        its exit not read yet: it ended on its own, before the stop, whatever came after."""
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.last_run: tuple[float | None, float] | None = None
        """When the latest run that ended began and ended (kept through the next start)."""
        self._bus = bus
        self._on_crash = on_crash
        self._columns = columns
        self._rows = rows
        self._env_overrides = dict(env_overrides or {})
        self._guardian = guardian
        self._popen: subprocess.Popen[bytes] | None = None
        self._readers: dict[int, Stream] = {}
        self._waiting_output = select.poll()
        """The readers, to ask in one call which of them have output waiting (see
        :meth:`_take_output`)."""
        self._framers: dict[Stream, LineFramer] = {}
        self._read_sizes: dict[int, int] = {}
        """Per output fd in a flood, the larger read size (see FLOOD_READ_SIZE)."""
        self._timers: dict[Stream, asyncio.TimerHandle] = {}
        self._prompt: Stream | None = None
        """The stream that stands at the member's latest prompt: its last piece was an
        unfinished line cut because the member went quiet, and nothing came on it since."""
        self._answered: set[Stream] = set()
        """Streams whose prompt a line sent answered, with nothing to echo it: if their next
        piece is a prompt again, it starts a line of its own (see :attr:`Output.new_line`)."""
        self._prompting: Stream | None = None
        """The stream whose prompt is being cut (in :meth:`_quiet`)."""
        self._paused = False
        self._stdin: int | None = None
        self._stdin_is_pty = False
        self._open_master: int | None = None
        """A full terminal's master whose reading ended before the program did (see
        ``_close_reader``)."""
        self._pending_input: list[memoryview | bytearray] = []
        """Input the member's stdin has not taken yet, in order (see :meth:`_queue`)."""
        self._room_waiters: list[Callable[[], None]] = []
        """Called once the input waiting falls below INPUT_ROOM (or stdin is gone)."""
        self._stdin_lock = threading.RLock()
        """Held by the loop while it changes stdin's queue or closes it, and by writes from
        other threads, which must not overtake queued input or hit a reused descriptor."""
        self._queued_from_threads = 0
        self._dropped: int | None = None
        """Once a send was dropped with a note: the bytes dropped since, told in one note
        when it starts again or the cast ends."""
        self._bytes_from_threads = 0
        """Bytes other threads handed to the loop that it has not queued or written yet."""
        self._close_after_drain = False
        self._pidfd: int | None = None
        self._exit_seen: asyncio.Future[int] | None = None
        self._done: asyncio.Future[int] | None = None
        self._stop_begun: asyncio.Future[None] | None = None
        self._drain_timer: asyncio.TimerHandle | None = None
        self._drain_left = DRAIN_GRACE
        """Of the drain grace, the seconds not yet spent reading (it pauses with reading)."""
        self._drain_deadline = 0.0
        self._held_look: asyncio.TimerHandle | None = None
        """The next look at whether what holds the output open has let it be read."""
        self._held = False
        """The run has ended but a process it started still holds its output open: that
        output is read and shown (under the member's name) until EOF or the next start."""
        self.held_output_end: asyncio.Future[None] | None = None
        """Made when the run's output is found held open so (see :meth:`_drain_expired`):
        done once it no longer is (its EOF, or not read any more)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._group_gone = True
        self._watched_groups: set[int] = set()
        """Groups of ended runs that processes still hold, watched until they are empty."""

    def __repr__(self) -> str:
        pid = f" pid={self.pid}" if self.pid else ""
        code = f" returncode={self.returncode}" if self.returncode is not None else ""
        return f"<Process {self.name!r}{pid} {self.state}{code}>"

    # Starting -------------------------------------------------------------------------

    async def start(self, variables: Mapping[str, str] | None = None) -> None:
        """Spawn the program.

        Raises:
            SpawnError: the program does not exist, is not executable, or its cwd is missing;
                or its pipes cannot be opened (pipeplex is out of descriptors).
        """
        loop = self._loop = asyncio.get_running_loop()
        self._tell_dropped()
        variables = variables or {}
        spec = self.spec
        argv = spec.argv(variables)
        env = self.environment(variables)
        self.release_output()  # what the last run's leftovers held (stopped by now)
        fds: list[int] = []  # the child's ends, closed in the parent after the spawn
        ours: list[int] = []
        try:
            try:
                stdin_child, stdout_child, stderr_child = self._open_streams(ours, fds)
            except OSError as exc:  # out of descriptors (EMFILE), of ptys...
                raise SpawnError(self.name, spec.command_text,
                                 f"cannot open its stdin and output: {exc.strerror or exc}"
                                 ) from None
            executable = find_executable(argv[0], env)
            if self._guardian is not None:
                self._guardian.spawning((stdin_child, stdout_child, stderr_child))
            try:
                # Spawning blocks only for fork+exec, not on the child: fine in the loop.
                self._popen = spawn(argv, full_terminal=spec.pty == "full",
                                    executable=executable, stdin=stdin_child,
                                    stdout=stdout_child, stderr=stderr_child, cwd=spec.cwd,
                                    env=env)
            except OSError as exc:
                self._spawn_failed()
                if executable is not None:
                    forget_executables()
                raise SpawnError(self.name, spec.command_text,
                                 spawn_reason(exc, argv, executable, spec.cwd),
                                 spawn_status(exc)) from None
            except ValueError as exc:  # a NUL byte, or "=" in an environment variable's name
                self._spawn_failed()
                raise SpawnError(self.name, spec.command_text,
                                 _nul_in(variables, spec) or bad_text(exc)) from None
            except subprocess.SubprocessError:  # the preexec_fn failed: the child is reaped
                self._spawn_failed()
                raise
        except BaseException:
            for fd in ours:
                os.close(fd)
            self._readers.clear()
            self._poll_readers()
            self._stdin = None
            self.state = "failed"
            raise
        finally:
            for fd in fds:
                os.close(fd)
        self.pid = self._popen.pid
        self._group_gone = False
        if self._guardian is not None:
            self._guardian.register(self.pid, outputs=self._readers)
        self.state = "running"
        self.stopping = False
        self.signalled_to_stop = False
        self.exited_before_stop = False
        self.signals_asked.clear()
        self.returncode = None
        self.started_at = time.monotonic()
        self.ended_at = None
        self._exit_seen = loop.create_future()
        self._done = loop.create_future()
        self._stop_begun = loop.create_future()
        self._pending_input.clear()
        self._close_after_drain = False
        self._framers = {
            stream: LineFramer(self._emitter(stream)) for stream in self._readers.values()
        }
        self._prompt = None
        self._answered.clear()
        self._bus.publish(Started(self.name, self.pid, tuple(argv),
                                  terminal=spec.pty == "full"))
        self._pidfd = os.pidfd_open(self.pid)
        loop.add_reader(self._pidfd, self._guard(self._on_pidfd))
        self._paused = False  # (a run that ended during a pause was never resumed)
        self._bus.add_source(self)
        if not self._bus.paused:
            self._add_readers()
        for line in spec.input:
            self.send((expand(line, variables) + "\n").encode())

    def _poll_readers(self) -> None:
        self._waiting_output = select.poll()
        for fd in self._readers:
            self._waiting_output.register(fd, select.POLLIN)

    def _spawn_failed(self) -> None:
        """No child was made: the guardian forgets the spawn. (After any other error, such
        as a Ctrl-C inside ``Popen``, a child may be running: the spawn stays told.)"""
        if self._guardian is not None:
            self._guardian.spawn_failed()

    def _open_streams(self, ours: list[int], fds: list[int]) -> tuple[int, int, int]:
        """The child's ends of its stdin, stdout and stderr. Every descriptor opened goes to
        ``fds`` (the child's) or ``ours`` as soon as it exists, for the caller to close."""
        if self.spec.pty == "full":
            master, slave = open_pty(raw=False, columns=self._columns, rows=self._rows)
            ours.append(master)
            fds.append(slave)
            self._stdin, self._stdin_is_pty = master, True
            self._readers = {master: "stdout"}
            self._poll_readers()
            return slave, slave, slave
        in_r, in_w = os.pipe()
        fds.append(in_r)
        ours.append(in_w)
        if self.spec.pty == "stdout":
            out_r, out_w = open_pty(raw=True, columns=self._columns, rows=self._rows)
        else:
            out_r, out_w = os.pipe()
        ours.append(out_r)
        fds.append(out_w)
        self._stdin = in_w
        self._readers = {out_r: "stdout"}
        err_w = out_w  # stderr = "stdout": one stream, in the order written
        if self.spec.stderr == "apart":
            err_r, err_w = os.pipe()
            ours.append(err_r)
            fds.append(err_w)
            self._readers[err_r] = "stderr"
        for fd in (in_w, *self._readers):
            os.set_blocking(fd, False)
        self._poll_readers()
        return in_r, out_w, err_w

    def environment(self, variables: Mapping[str, str]) -> dict[str, str]:
        """The environment a run of this member gets with ``variables``, and its
        ``ready_cmd`` too."""
        env = dict(os.environ)
        # Python children flush each write; harmless for everything else.
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(self._env_overrides)
        if self.spec.pty != "full":
            env.update(NO_PAGER)
        env.update({key: expand(value, variables) for key, value in self.spec.env.items()})
        # Ours, whatever came before (a spec built by hand is not checked): they tell which
        # member of which run a process belongs to, and the stop finds by them what it started.
        env["PIPEPLEX_NAME"] = self.name
        if "PIPEPLEX_RUN_ID" in self._env_overrides:
            env["PIPEPLEX_RUN_ID"] = self._env_overrides["PIPEPLEX_RUN_ID"]
        return env

    def _emitter(self, stream: Stream) -> Callable[[bytes, bool], None]:
        publish, name, answered = self._bus.publish, self.name, self._answered

        def emit(data: bytes, partial: bool) -> None:
            if answered and stream in answered:
                answered.discard(stream)
                if self._prompting == stream and _PROMPT_END.search(data):  # a prompt again
                    publish(Output(name, stream, data, partial, new_line=True))
                    return
            publish(Output(name, stream, data, partial))

        return emit

    def _guard(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Route an exception in a loop callback to the engine instead of a log line."""

        def guarded() -> None:
            try:
                callback()
            except Exception as exc:
                self._on_crash(exc)

        return guarded

    # Reading --------------------------------------------------------------------------

    def _add_readers(self) -> None:
        assert self._loop is not None
        for fd, stream in self._readers.items():
            self._loop.add_reader(fd, self._guard(functools.partial(self._read, fd, stream)))

    def pause_reading(self) -> None:
        if not self._paused and self._loop is not None:
            self._paused = True
            for fd in self._readers:
                self._loop.remove_reader(fd)
            if self._drain_timer is not None:  # the grace is for reading: it waits too
                self._stop_held_look()  # (resuming looks again)
                self._drain_timer.cancel()
                self._drain_timer = None
                self._drain_left = max(self._drain_deadline - self._loop.time(), 0.0)

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            self._add_readers()
            self._start_drain_grace()

    def _start_drain_grace(self) -> None:
        """After the exit, give the output DRAIN_GRACE seconds of reading to reach EOF (in
        all: a pause keeps what is left of them)."""
        if (self.returncode is not None and self._readers and not self._held
                and not self._paused and self._drain_timer is None and self._loop is not None):
            self._drain_deadline = self._loop.time() + self._drain_left
            self._drain_timer = self._loop.call_at(self._drain_deadline, self._drain_expired)
            if self._held_look is None and self.output_held():
                self._held_look = self._loop.call_later(QUIET, self._drained_if_held)

    def _drained_if_held(self) -> None:
        """Output held open since the exit: once the member's group is empty (a process in
        it may be on its way out, writing its last lines; a daemon leaves it as it starts)
        and nothing waits to be read, the holder is outside it and its EOF is not coming
        (see :data:`DRAIN_GRACE`): the exit is published. Looked at every QUIET seconds,
        with a signal 0 to the group and a count of the bytes waiting: no scan of /proc."""
        self._held_look = None
        if self._drain_timer is None or self._loop is None:
            return  # (published already)
        if self.group_alive() or any(_unread(fd) for fd in self._readers):
            self._held_look = self._loop.call_later(QUIET, self._drained_if_held)
            return
        self._drain_timer.cancel()
        self._drain_expired(after=None)

    def _stop_held_look(self) -> None:
        if self._held_look is not None:
            self._held_look.cancel()
            self._held_look = None

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
        if self._prompt == stream:
            self._prompt = None
        framer = self._framers[stream]
        framer.feed(data)
        if framer.pending and stream not in self._timers:
            assert self._loop is not None
            self._timers[stream] = self._loop.call_later(QUIET, self._quiet, stream)
        return True

    def _quiet(self, stream: Stream) -> None:
        del self._timers[stream]
        framer = self._framers[stream]
        if not framer.pending:
            return
        # A busy loop can run this timer before the reader of data that already waits in
        # the pipe: read first, so only a member that really went quiet gets its line cut.
        fd = next((fd for fd, s in self._readers.items() if s == stream), None)
        if self._paused or (fd is not None and self._read(fd, stream)):
            if framer.pending and stream not in self._timers:
                assert self._loop is not None
                self._timers[stream] = self._loop.call_later(QUIET, self._quiet, stream)
            return
        now = time.monotonic()
        if now - framer.last_data < QUIET and now - framer.tail_since < MAX_PARTIAL_AGE:
            assert self._loop is not None
            delay = framer.last_data + QUIET - now
            self._timers[stream] = self._loop.call_later(delay, self._quiet, stream)
            return
        if (framer.shown_at is not None and now - framer.shown_at < MAX_PARTIAL_AGE
                and framer.starts_again()):
            # A progress bar's next state, over the one shown last: its latest state at
            # most every half second, however slowly it goes (one each 0.2 s made a line
            # per update, where a fast one makes two a second).
            assert self._loop is not None
            delay = framer.shown_at + MAX_PARTIAL_AGE - now
            self._timers[stream] = self._loop.call_later(delay, self._quiet, stream)
            return
        # A prompt, told before its piece goes out: a caller that the piece wakes in
        # another thread may send its answer at once (see _line_sent).
        self._prompt = self._prompting = stream
        held_long = now - framer.last_data >= MAX_PARTIAL_AGE
        try:
            # A cut character waits for the rest; but not for ever: what looks like one
            # may be the last of a latin-1 prompt ("employ\xe9").
            framer.flush(whole_characters=not held_long)
        finally:
            self._prompting = None
        if framer.pending:  # (what was cut short is no prompt yet)
            self._prompt = None
            assert self._loop is not None
            delay = framer.last_data + MAX_PARTIAL_AGE - now
            self._timers[stream] = self._loop.call_later(delay, self._quiet, stream)

    def _close_reader(self, fd: int) -> None:
        stream = self._readers.pop(fd)
        if self._guardian is not None:
            self._guardian.output_ended(fd)
        self._waiting_output.unregister(fd)
        self._read_sizes.pop(fd, None)
        assert self._loop is not None
        self._loop.remove_reader(fd)
        timer = self._timers.pop(stream, None)
        if timer:
            timer.cancel()
        self._framers[stream].flush()
        with self._stdin_lock:
            if fd == self._stdin:  # the pty master doubles as stdin in full-terminal mode
                self._loop.remove_writer(fd)
                self._stdin = None
                self._pending_input.clear()
            if self._stdin_is_pty and self.returncode is None:
                # Closing a terminal's master hangs it up: SIGHUP would reach a program that
                # closed its output on its way out (coreutils do) but has not exited yet.
                # Kept until the exit, as a terminal window does.
                self._open_master = fd
            else:
                os.close(fd)
        self._maybe_done()

    # Exit -----------------------------------------------------------------------------

    def _on_pidfd(self) -> None:
        assert self._loop is not None and self._pidfd is not None and self._popen is not None
        returncode = self._popen.poll()
        if returncode is None:  # not yet; pidfds can wake early only in theory
            return
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        self.returncode = returncode
        self.ended_at = _seen_now(self._loop)
        self.last_run = (self.started_at, self.ended_at)
        if self._open_master is not None:
            os.close(self._open_master)
            self._open_master = None
        # Once the group is empty its id may go to a stranger: it is never signalled after.
        if self.group_alive():  # a process it started lives on (or a zombie, not reaped yet)
            self._watched_groups.add(self._popen.pid)
            watch_group(self._popen.pid, self._group_emptied)
        assert self._exit_seen is not None
        self._exit_seen.set_result(returncode)
        self._drain_left = DRAIN_GRACE
        self._start_drain_grace()
        self._maybe_done()

    def stop_waiting_for_output(self) -> None:
        """The run has exited and what still holds its output open is not to be waited for
        (a stop that could not find it): done now, as when the drain's grace runs out."""
        if self.returncode is not None and self._readers and not self._held:
            if self._drain_timer is not None:
                self._drain_timer.cancel()
            self._drain_expired(after=None)

    def _drain_expired(self, after: float | None = DRAIN_GRACE) -> None:
        """The output is still open 2 s (``after``) after the exit: a process the member
        started holds it. The exit is published; what that process writes goes on being
        shown (closing our end would make its next write fail, or kill it with SIGPIPE)."""
        self._drain_timer = None
        self._stop_held_look()
        held = " and ".join(sorted(self._readers.values()))
        self._held = True
        assert self._loop is not None
        self.held_output_end = self._loop.create_future()
        for stream in list(self._timers):  # the run's last piece of a line goes before its exit
            self._timers.pop(stream).cancel()
            self._framers[stream].flush()
        self._maybe_done()
        when = f" ({after:.0f} s after it exited)" if after is not None else ""
        self._bus.publish(Note(
            f"its {held} {'is' if len(self._readers) == 1 else 'are'} still open in a process "
            f"it started{when}; what that writes there is still shown", name=self.name))

    def _group_emptied(self, pgid: int) -> None:
        self._watched_groups.discard(pgid)
        if pgid == self.pid:
            self._group_gone = True
        if self._guardian is not None:
            self._guardian.unregister(pgid)

    def close(self) -> None:
        """The cast is over: stop reading what processes of an ended run still hold open,
        and stop watching their groups."""
        self._tell_dropped()
        self.release_output()
        for pgid in self._watched_groups:
            unwatch_group(pgid)
        self._watched_groups.clear()

    def _tell_dropped(self) -> None:
        if self._dropped:
            self._bus.publish(Note(f"dropped {self._dropped} more bytes of input sent while it "
                                   "could not take them", name=self.name, level="warning"))
        self._dropped = None

    def release_output(self) -> None:
        """Stop reading output that processes of an ended run still hold open (before the
        next start, and when the cast is over)."""
        if self._held:
            for fd, stream in list(self._readers.items()):
                for _ in range(64):  # what is already there, within reason
                    if fd not in self._readers or not self._read(fd, stream):
                        break
                if fd in self._readers:
                    self._close_reader(fd)
            self._held = False

    def _maybe_done(self) -> None:
        if self.returncode is None or self._done is None:
            return
        if self._done.done():
            if not self._readers:
                self._bus.remove_source(self)  # the last output held open reached its EOF
                if self.held_output_end is not None and not self.held_output_end.done():
                    self.held_output_end.set_result(None)
            return
        if self._readers and not self._held:
            return
        if self._drain_timer:
            self._drain_timer.cancel()
            self._drain_timer = None
        self._stop_held_look()
        unread = sum(len(chunk) for chunk in self._pending_input)
        self._drop_stdin()
        if unread:
            self._bus.publish(Note(f"ended with {unread} bytes of input it never read; "
                                   "dropped", name=self.name, level="warning"))
        if not self._readers:
            self._bus.remove_source(self)
        self.state = "exited"
        assert self.started_at is not None and self.ended_at is not None
        self._bus.publish(
            Exited(self.name, self.returncode, self.ended_by_the_stop,
                   self.ended_at - self.started_at)
        )
        self._done.set_result(self.returncode)

    @property
    def running(self) -> bool:
        """True from a successful start until the program has exited."""
        return self.state in ("running", "stopping") and self.returncode is None

    @property
    def exit_future(self) -> asyncio.Future[int]:
        """Resolves with the returncode when this run of the program exits."""
        if self._exit_seen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._exit_seen

    @property
    def stop_future(self) -> asyncio.Future[None]:
        """Done once a stop takes this run over (what waits on the run, a health check,
        gives up then rather than at its exit)."""
        if self._stop_begun is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._stop_begun

    @property
    def done_future(self) -> asyncio.Future[int]:
        """Resolves with the returncode once this run exited and its output is drained."""
        if self._done is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._done

    async def wait_exited(self) -> int:
        """Wait until the program ended and its output is drained; return its returncode."""
        if self._done is None:
            raise RuntimeError(f"{self.name} was never started")
        return await asyncio.shield(self._done)

    async def wait_exit_seen(self) -> int:
        """Wait only for the program's exit, not for its output to drain."""
        if self._exit_seen is None:
            raise RuntimeError(f"{self.name} was never started")
        return await asyncio.shield(self._exit_seen)

    # Input ----------------------------------------------------------------------------

    @property
    def input_open(self) -> bool:
        """Whether a line sent now can reach the program: not once it has exited, even
        while what it wrote is still being read."""
        return (self._stdin is not None and not self._close_after_drain
                and self.returncode is None)

    @property
    def input_waiting(self) -> int:
        """Bytes sent to the member that its stdin has not taken yet."""
        return sum(len(chunk) for chunk in self._pending_input) if self._pending_input else 0

    @property
    def reads_secret(self) -> bool:
        """Whether the member's full terminal reads a password: echo off in line mode, as
        getpass, sudo, ssh and ``read -s`` set it (readline, in a REPL, turns line mode off
        as well, and echoes itself). What is sent now is not to be shown or kept."""
        terminal = self._terminal()
        if terminal is None:
            return False
        try:
            flags = termios.tcgetattr(terminal)[3]
        except termios.error:  # (its terminal has just gone)
            return False
        return bool(flags & (termios.ECHO | termios.ICANON) == termios.ICANON)

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
        if self._stdin is None or not self.input_full:
            return
        assert self._loop is not None
        room: asyncio.Future[None] = self._loop.create_future()

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
        if self._room_waiters and (self._stdin is None or self.input_waiting < INPUT_ROOM):
            waiters, self._room_waiters = self._room_waiters, []
            for callback in waiters:
                callback()

    def send(self, data: bytes, *, record: bool = True) -> bool:
        """Queue ``data`` for the member's stdin; False (with a note) if stdin is closed,
        also when the write finds that the member closed it.
        ``record=False``: the caller published its :class:`InputSent` already."""
        recording = record and self._bus.wants(InputSent)  # (a record only: skipped when
        if recording:                                      # nobody keeps records)
            self._take_output()  # (first: its end, read now, closes a full terminal's stdin)
        if self._stdin is None or self._close_after_drain or self.returncode is not None:
            # (not input_open, spelled out: a call less per line)
            if self._dropped is not None:  # (said already: a script's every later line
                self._dropped += len(data)  # would make a note of its own)
                return False
            self._dropped = 0
            why = {"pending": "has not started yet", "failed": "could not start"}.get(
                self.state,
                "is not running" if self.returncode is not None else "has its stdin closed")
            self._bus.publish(Note(f"{why}; dropped {len(data)} bytes of input",
                                   name=self.name, level="warning"))
            return False
        if recording:
            self._bus.publish(self._input_record(data))
        if self._prompt is not None:
            self._line_sent(data)
        if self._stdin_is_pty and len(data) > MAX_CANON:
            self._warn_if_cut(data)
        with self._stdin_lock:
            if self._pending_input:
                self._queue(data)
            elif not self._write(data):
                self._closed_by_member(len(data))
                return False
        return True

    def _input_record(self, data: bytes) -> InputSent:
        """The record of ``data`` sent: a password (see :attr:`reads_secret`) as stars, so
        that no transcript, golden file or attach client keeps it."""
        if self._stdin_is_pty and self.reads_secret:
            data = _SECRET.sub(b"*", data)
        return InputSent(self.name, data)

    def _line_sent(self, data: bytes) -> None:
        """A line sent where the member stands at a prompt answers it. When what the stream
        writes next is a prompt again (``python -i`` after ``x = 1``: ``>>> >>> ``), that
        prompt starts a line of its own (``Output.new_line``), as a terminal's echo of the
        line would have put it. Anything else it writes first (an answer, its own echo of
        the line, the rest of a line sent in pieces, a slow line's next dot: a prompt ends
        in a space) goes on as written. Not on a full terminal, whose own echo does it."""
        if b"\n" in data and not self._stdin_is_pty and (prompt := self._prompt) is not None:
            self._answered.add(prompt)
            self._prompt = None

    def _warn_if_cut(self, data: bytes) -> None:
        """A full terminal in canonical mode (a shell's prompt, ``input()``) cuts a line at
        MAX_CANON bytes, without a word: say so, where the program will see less."""
        terminal = self._terminal()
        try:
            canonical = terminal is not None and bool(termios.tcgetattr(terminal)[3]
                                                      & termios.ICANON)
        except termios.error:
            return
        longest = max(len(line) for line in data.split(b"\n"))
        if canonical and longest > MAX_CANON:
            self._bus.publish(Note(
                f"its terminal takes lines of at most {MAX_CANON} bytes (a full "
                f"terminal in line mode): a line of {longest} bytes reaches the program cut "
                "short; a member with pty = \"stdout\" or false reads lines of any length",
                name=self.name, level="warning"))

    def _take_output(self) -> None:
        """Read what the member wrote before the line now sent to it (within reason), so
        that the records show it first: the loop may not have come to its pipes yet when
        a step, woken by another member's line, sends. Not while paused (a slow sink), nor
        from a sink (a line of this member may be half framed; what was delivered before
        is before this line anyway)."""
        if self._paused or self._held or self._bus.paused or self._bus.delivering:
            return
        # One poll, not a read of each stream: most sends find nothing waiting, and a
        # read that finds nothing costs five times as much (an API's round trip: 10 %).
        for fd, _ in self._waiting_output.poll(0):
            for _ in range(8):
                if (stream := self._readers.get(fd)) is None or not self._read(fd, stream):
                    break

    def close_input(self) -> None:
        """Close the member's stdin once queued input is written (EOF for the program).

        In full-terminal mode there is no pipe to close: send the terminal's EOF (^D).
        """
        if self._stdin_is_pty and self._bus.wants(InputSent):
            self._take_output()  # (its end, read now, closes its stdin: then no ^D to send)
        if not self.input_open:
            return
        if self._stdin_is_pty:
            self.send(b"\x04", record=False)  # (its record is the end's, just below)
            self._close_after_drain = True
            self._bus.publish(InputSent(self.name, b"", eof=True))
            return
        self._close_after_drain = True
        self._bus.publish(InputSent(self.name, b"", eof=True))
        if not self._pending_input:
            self._drop_stdin()

    def _write(self, data: bytes | bytearray | memoryview) -> bool:
        """Write what the pipe takes and queue the rest; False, with nothing queued, when
        the member has closed its stdin (the caller tells what that drops)."""
        assert self._stdin is not None
        try:
            written = os.write(self._stdin, data)
        except BlockingIOError:
            written = 0
        except (BrokenPipeError, ConnectionResetError):
            return False
        if written < len(data):
            self._queue(memoryview(data)[written:])
            assert self._loop is not None
            self._loop.add_writer(self._stdin, self._guard(self._write_more))
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
        if self._exited_unread() or self._exiting():
            text = f"ended with {dropped} bytes of input it never read; dropped"
        else:
            text = f"closed its stdin; dropped {dropped} bytes of input"
        self._bus.publish(Note(text, name=self.name, level="warning"))
        self._drop_stdin()

    def _write_more(self) -> None:
        with self._stdin_lock:
            self._write_pending()

    def _write_pending(self) -> None:
        assert self._stdin is not None and self._loop is not None
        self._loop.remove_writer(self._stdin)
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
            self._drop_stdin()

    def _drop_stdin(self) -> None:
        with self._stdin_lock:
            fd, self._stdin = self._stdin, None
            self._pending_input.clear()
            if fd is not None and self._loop is not None:
                self._loop.remove_writer(fd)
                if fd not in self._readers:
                    os.close(fd)
        self._tell_room()

    def send_threadsafe(self, data: bytes) -> bool:
        """:meth:`send` from a thread other than the loop's (the synchronous API); True
        when the member may now be full (see :meth:`input_room`).

        When nothing is queued, the bytes are written at once from the calling thread, so
        the member gets them without waiting for the loop to wake up; the loop then records
        them, and writes whatever did not fit.
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError(f"{self.name} was never started")
        written = 0
        recorded = False
        with self._stdin_lock:
            fd = self._stdin
            direct = (fd is not None and not self._pending_input and not self._close_after_drain
                      and self.returncode is None and self._queued_from_threads == 0)
            if direct:
                if self._bus.wants(InputSent):
                    # The record waits for the loop's next event, so the loop is not woken
                    # for it; made before the write, it comes before the answer, which the
                    # loop may read the moment the write is done.
                    waiting = self._bus.publish_threadsafe(self._input_record(data))
                    recorded = True
                    if waiting % RECORDS_WAITING == 0:  # (a member that answers nothing)
                        loop.call_soon_threadsafe(self._bus.flush_threadsafe)
                if self._prompt is not None:
                    self._line_sent(data)
                try:
                    written = os.write(fd, data)  # type: ignore[arg-type]
                except OSError:
                    written = 0  # full, or closed: the loop's send() deals with it
            if written < len(data):
                self._queued_from_threads += 1
                self._bytes_from_threads += len(data) - written
                backlog = self._bytes_from_threads + self.input_waiting
        if written and self._stdin_is_pty and len(data) > MAX_CANON:  # (else send() says it)
            loop.call_soon_threadsafe(self._warn_if_cut, data)
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
            with self._stdin_lock:
                if self._stdin is None:
                    return
                if self._pending_input:
                    self._queue(rest)
                elif not self._write(rest):
                    self._closed_by_member(len(rest))
        finally:
            # Only now may a thread write directly again: not before these bytes.
            with self._stdin_lock:
                self._queued_from_threads -= 1
                self._bytes_from_threads -= len(data) - written

    def call_threadsafe(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` in the loop, in order with :meth:`send_threadsafe`.

        For what a thread asks of the member besides input (close its stdin, a signal):
        input the thread sends afterwards waits until ``fn`` has run, so it can neither
        overtake a close nor reach the member before a signal sent first.
        """
        loop = self._loop
        if loop is None:
            raise RuntimeError(f"{self.name} was never started")
        with self._stdin_lock:
            self._queued_from_threads += 1
        loop.call_soon_threadsafe(self._call_from_thread, fn, args)

    def _call_from_thread(self, fn: Callable[..., object], args: tuple[object, ...]) -> None:
        try:
            fn(*args)
        finally:
            with self._stdin_lock:
                self._queued_from_threads -= 1

    # Signals --------------------------------------------------------------------------

    def signal(self, sig: int) -> bool:
        """Send ``sig`` to the member's whole process group; False if nothing was left.

        Raises:
            SignalRefused: every process left in the group runs as another user, and this
                one may not signal them; they run on (and their group stays registered).
        """
        if self.pid is None or self._group_gone:
            return False
        try:
            if self.returncode is not None and os.path.exists(f"/proc/{self.pid}"):
                # Its leader was reaped, and a group keeps its number while it has any
                # process: a process of that number now means the group emptied unseen
                # (pipeplex stopped meanwhile) and a stranger's setsid took the number.
                raise ProcessLookupError
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            self._group_gone = True
            if self._guardian is not None:
                self._guardian.unregister(self.pid)
            return False
        except PermissionError:
            raise SignalRefused(self.name, self.pid, signal_name(sig),
                                owner(live_in_group(self.pid))) from None
        return True

    def signal_to_stop(self, sig: int) -> bool:
        """:meth:`signal`, from a stop: an exit from now on is the stop's doing, and a death
        by ``sig`` the stop's, though a person sent it before (the member lived on) — unless
        the person's is still on its way (pending, the member stopped or not yet run since),
        or the member is exiting or has exited, its exit not yet read: then the person's
        signal, an instant before the stop, is what ends it (see :attr:`ended_by_a_person`)."""
        if self.returncode is None:
            self.signalled_to_stop = True
            if (sig in self.signals_asked and not self._exited_unread()
                    and not _on_its_way(self.pid, sig)):
                self.signals_asked.discard(sig)
        return self.signal(sig)

    def begin_stop(self) -> None:
        """The stop takes this run over (its exit is then expected). A process that has
        already exited, its exit not read yet, ended before the stop (a server that crashed
        as a scenario's last step matched, its client's exit seen first): so it is judged
        (:attr:`exited_before_stop`), not as an end the stop caused. Only the stop's first
        touch looks: by the next (its SIGTERM after the EOF), the exit may be the stop's. A
        process on its way out (Linux's PF_EXITING: it has called ``exit``, and becomes a
        zombie a millisecond or so later) has ended before the stop too."""
        if not self.stopping:
            self.exited_before_stop = self._exited_unread() or self._exiting()
        self.stopping = True
        self.state = "stopping"
        if self._stop_begun is not None and not self._stop_begun.done():
            self._stop_begun.set_result(None)

    @property
    def ended_by_the_stop(self) -> bool:
        """Its end was the stop's doing: a signal of the stop's, not a person's, and not an
        end it had come to before the stop reached it (its exit then says ``stopped``)."""
        return (self.stopping and self.signalled_to_stop and not self.ended_by_a_person
                and not self.exited_before_stop)

    @property
    def ended_by_a_person(self) -> bool:
        """Its exit was by a signal a person sent (:meth:`signal_as_asked`), which it did not
        live through until the stop sent the same: its own end, not the stop's."""
        return (self.returncode is not None and self.returncode < 0
                and -self.returncode in self.signals_asked)

    def _exited_unread(self) -> bool:
        """Its process has exited, and its pidfd says so, unread yet."""
        return self._pidfd is not None and exits_within(self._pidfd, 0)

    def _exiting(self) -> bool:
        """Its process is exiting, not a zombie yet. (A zombie leader whose pidfd does not
        say it exited is a program whose main thread ended while its other threads run
        on, ``pthread_exit``: its leader keeps PF_EXITING for as long as they do.)"""
        if self.pid is None or not self.running:
            return False
        fields = stat_fields(self.pid)
        return (fields is not None and int(fields[PPID]) == os.getpid()
                and fields[STATE] not in GONE and bool(int(fields[FLAGS]) & PF_EXITING))

    def signal_as_asked(self, sig: int) -> bool:
        """Send ``sig`` as a person asks for it (the console, ``pipeplex signal``, the API):
        to the member's process group, except that INT, QUIT and TSTP to a member on a full
        terminal go where those keys would send them, to the terminal's foreground job (the
        command its shell runs, in a group of its own); False if nothing was left."""
        if self.returncode is None:
            self.signals_asked.add(sig)
        if sig in _KEYBOARD_SIGNALS and (job := self._foreground_job()) is not None:
            try:
                os.killpg(job, sig)
                return True
            except (ProcessLookupError, PermissionError):  # (ended; or a setuid job)
                pass
        return self.signal(sig)

    def _foreground_job(self) -> int | None:
        """The process group of the command a full terminal's shell runs in the foreground
        (job control), when it is not the member's own."""
        terminal = self._terminal()
        if terminal is None or self.returncode is not None:
            return None
        try:
            job = os.tcgetpgrp(terminal)
            # A group of the member's session (the member leads it), which tcsetpgrp
            # allows, still there: the terminal keeps the number of a job that ended,
            # which may since be a stranger's.
            ours = job > 0 and job != self.pid and os.getsid(job) == self.pid
        except OSError:
            ours = False
        return job if ours else None

    def hang_up(self) -> None:
        """What closing a terminal window does, for a stop: SIGHUP (and SIGCONT) to the
        full terminal's foreground job and to the member's group. An interactive shell
        ignores SIGTERM, and the command it runs is in a group of its own: without this
        both would wait out the grace for SIGKILL."""
        if (job := self._foreground_job()) is not None:
            for sig in (signal.SIGHUP, signal.SIGCONT):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(job, sig)
        self.signal_to_stop(signal.SIGHUP)

    def resize(self, columns: int, rows: int) -> None:
        """Make the member's pty ``columns`` wide and ``rows`` high, from now on and at its
        next start: pipeplex's terminal, less the name's column, as at the start."""
        self._columns, self._rows = columns, rows
        if self.spec.pty == "full":
            master = self._terminal()
        elif self.spec.pty == "stdout":
            master = next((fd for fd, stream in self._readers.items() if stream == "stdout"),
                          None)
        else:
            master = None
        if master is not None:
            try:
                set_size(master, columns, rows)
            except OSError:  # (its program is gone and took the pty's last slave with it)
                pass

    def _terminal(self) -> int | None:
        """The master side of the member's full terminal, while it is open."""
        if self.spec.pty != "full":
            return None
        if self._open_master is not None:
            return self._open_master
        return next(iter(self._readers), None)

    def group_alive(self) -> bool:
        """True while any process remains in the member's process group."""
        try:
            return self.signal(0)
        except SignalRefused:  # (there, as another user)
            return True

    def has_leftovers(self) -> bool:
        """True while a process that has not exited remains in the member's process group.

        Unlike :meth:`group_alive`, a zombie that its new parent has not reaped yet does not
        count.
        """
        return self.pid is not None and self.group_alive() and bool(live_in_group(self.pid))

    def output_held(self) -> bool:
        """True while some process still holds this run's output open: one of its streams
        has not hung up (its end may not have been read yet; that is not held)."""
        hung_up = {fd for fd, flags in self._waiting_output.poll(0)
                   if flags & (select.POLLHUP | select.POLLERR)}
        return any(fd not in hung_up for fd in self._readers)

    def statistics(self) -> dict[str, object]:
        # Its program has exited: so it says, even while its last output is still read.
        exited = self.returncode is not None and self.state in ("running", "stopping")
        state: str = "exited" if exited else self.state
        if state == "running" and self.pid is not None and _suspended(self.pid):
            state = "suspended"
        return {
            "name": self.name,
            "pid": self.pid,
            "state": state,
            "returncode": self.returncode,
            "pending_input": self.input_waiting,
        }


_LIVE: weakref.WeakSet[Process] = weakref.WeakSet()


def _let_go_in_child() -> None:
    """In a child forked from this process (``multiprocessing``'s default start, a library
    that daemonises): close each member's stdin pipe, whose copy there would keep the
    member from ever reading to its end (the EOF that closing its stdin gives)."""
    for process in list(_LIVE):
        fd = getattr(process, "_stdin", None)  # (one made as the fork came: not yet)
        if fd is not None and not process._stdin_is_pty:
            process._stdin = None
            with contextlib.suppress(OSError):
                os.close(fd)


os.register_at_fork(after_in_child=_let_go_in_child)


def _suspended(pid: int) -> bool:
    """Whether ``pid`` is stopped by a signal (SIGSTOP, SIGTSTP...) until a SIGCONT."""
    fields = stat_fields(pid)
    return fields is not None and fields[STATE] == b"T"  # (not "t": held by a debugger)


def _on_its_way(pid: int | None, sig: int) -> bool:
    """Whether ``sig`` was sent to our child ``pid`` and will end it: it waits to be taken
    (pending: the child is stopped, or has not run since), or the child is exiting."""
    if pid is None:
        return False
    # Pending first, then exiting: a child that takes the signal between the two looks is
    # exiting by the second (the other order missed it: not exiting yet, no longer pending).
    pending = signal_pending(pid, sig)
    flags = child_flags(pid)  # (None: gone, or no child of ours)
    return flags is not None and (pending or bool(flags & PF_EXITING))


def _nul_in(variables: Mapping[str, str], spec: ProcSpec) -> str | None:
    """Which captured value the member uses holds a NUL byte, which no command line or
    environment can carry: a program's output taken as a value (None: none does)."""
    used = spec.referenced_variables()
    held = sorted(name for name, value in variables.items() if "\0" in value and name in used)
    if not held:
        return None
    name = held[0]
    value = variables[name]
    shown = printable(value[:60]) + ("..." if len(value) > 60 else "")
    return (f"{{{name}}} holds a NUL byte ({shown}), which no command or environment can "
            "carry; make the pattern that captures it (a ready, or an expect step's) match "
            "less (\\w+, [^\\x00]+)")
