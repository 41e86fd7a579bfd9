"""The guardian: a tiny process that kills the cast if pipeplex itself dies.

pipeplex can be killed with SIGKILL, which no handler sees; its members, each in its own
session, would live on as orphans. So pipeplex starts a guardian, tells it through a pipe
each process group it creates (``+PGID``) and each one that is gone (``-PGID``), and keeps
the pipe's write end open. The kernel closes that end when pipeplex dies, however it dies:
the guardian reads EOF, stops every group still registered (SIGSTOP, so that none forks
while it looks for what they started), sends SIGKILL to what ignores SIGTERM, SIGTERM and
SIGCONT to the rest, and SIGKILL to those still there half a second later.

Registering is one write, made as soon as the member is spawned. The guardian reads the
first line of a burst at once and the rest a quarter second later (its death, not its lines,
is what must wake it): a start wave of 100 members wakes it twice, not 100 times, so that
its wake-ups do not take turns with pipeplex's spawns on a busy core.

A group is unregistered once it is empty, never before: its id may then go to a stranger.
A group that empties while pipeplex cannot say so (stopped by SIGSTOP, or in a debugger)
stays registered: the guardian reads its leader's start time as it is told of it, and at
the end leaves a group alone whose number a process of another start time has (a group
keeps its number while any process is in it).
On a clean exit everything is already gone (pipeplex says so: ``.``) and the guardian just
leaves.

A member with a full terminal (``pty = true``) is handed over too: its terminal's master
goes down a socket beside the pipe (the guardian's stdout), which the guardian holds until
the group is let go (see ``_guardian_news.py`` for why).

Three more nets catch what no registered group holds (a child caught mid-spawn, what
holds a member's output pipe, a child that left its group; and the orphans pipeplex
adopts), and a console's raw terminal is set back: what the guardian is told for them, line
by line, is in ``_guardian_news.py``. Here is the guardian process itself: its pipe, its
death seen at once, one started in its place, and its close.

A child forked from pipeplex's process (``multiprocessing``, a library that daemonises)
would inherit the pipe's write end and so keep the guardian from seeing pipeplex die: the
child lets it go at once (``os.register_at_fork``), and leaves the guardian to the parent.

The guardian runs in its own session (a Ctrl-C on the terminal does not reach it) and
ignores the usual stop signals; its program (``_guardian_main.py``) is a few lines of the
standard library run with ``python -I -S`` so it starts in milliseconds and needs nothing
from pipeplex. Its command line does not name pipeplex, so that ``pkill -9 -f pipeplex``
leaves it to stop the cast (``_guardian_process.LABEL``).
"""

from __future__ import annotations

import asyncio
import collections
import os
import select
import socket
import subprocess
import time
import weakref
from collections.abc import Callable

from .._guardian_process import GUARDIAN, INTERPRETER, spawn_guardian
from ..errors import PipeplexError
from ._escaped import start_time
from ._group import exits_within
from ._guardian_news import GuardianNews
from ._proc import suspended

__all__ = ("Guardian",)

REPLACE_AT_MOST = 3
"""Guardians started in place of one killed, in one run."""

RETRY_AFTER = 1.0
"""Seconds before a replacement that could not start is tried again."""

STALLED_AFTER = 5.0
"""Seconds the guardian may leave its pipe full before it is taken for stuck (stopped):
killed, and another started, told the cast as it is now. What the stuck one never read
(groups let go since) must not be acted on should pipeplex die; it reads a start wave's
lines within a quarter second."""

CLOSE_WAIT = 5.0
"""Seconds a closing run waits for the guardian to take its last lines (or to exit)."""


class Guardian(GuardianNews):
    """Handle on the guardian process; register every process group you create."""

    def __init__(
        self,
        *,
        on_lost: Callable[[str], None] | None = None,
        spawned: tuple[subprocess.Popen[bytes], int, int] | None = None,
    ) -> None:
        """``spawned``: a guardian process started earlier, its pipe's write end and its
        socket's, from :func:`~pipeplex._guardian_process.take_early_guardian` (else one is
        started now)."""
        super().__init__()
        self._on_lost = on_lost
        """Told, once, when the guardian process is found gone (someone killed it)."""
        self.on_started: Callable[[tuple[int, int] | None], None] | None = None
        """Told the :attr:`identity` of each guardian process started in place of one gone
        (the run folder keeps it for the next run)."""
        self.token = os.urandom(16).hex()
        """Put in members' environment as ``PIPEPLEX_RUN_ID``; the guardian hunts it down."""
        if spawned is not None and spawned[0].poll() is not None:
            # Killed while pipeplex loaded: it knew nothing, so another one in its place is
            # no replacement (said, or counted against the few a run may start).
            os.close(spawned[1])
            os.close(spawned[2])
            spawned = None
        self._handing: collections.deque[tuple[bytes, int | None]] = collections.deque()
        """What the guardian is to be handed on its socket and has not taken yet: each
        message, and a copy of the descriptor it passes (closed once passed)."""
        self._handing_in: asyncio.AbstractEventLoop | None = None
        try:
            self._proc, self._fd, hands = spawned or spawn_guardian()
        except OSError as exc:
            raise PipeplexError(f"cannot start the guardian process ({INTERPRETER} -I -S "
                                f"{GUARDIAN}): "
                                f"{exc.strerror or exc}; nothing was started") from None
        self.pid = self._proc.pid
        self._hands = self._socket(hands)
        self._replaced = 0
        """Guardians started (or tried) in place of one that was killed."""
        self._retry = False
        """The last replacement could not start: the next thing to tell tries again, from
        ``_retry_at`` on (monotonic), not at each line of a start wave."""
        self._retry_at = 0.0
        self._dying: list[subprocess.Popen[bytes]] = []
        """Guardians replaced before they could be reaped: reaped as the run closes."""
        self._closing = False
        os.set_blocking(self._fd, False)
        self._pending = bytearray()
        """What the guardian has not taken yet: a guardian that stalls (stopped, starved)
        must not stop pipeplex's loop with it, which a blocking write would."""
        self._flushing: asyncio.AbstractEventLoop | None = None
        self._stall: asyncio.TimerHandle | None = None
        self._stuck: tuple[int, str] | None = None
        """A guardian killed for being stuck: its pid, and why (as the note says it)."""
        self._forked = False
        """This is a child forked from the process that started the guardian: hands off."""
        self._watch: tuple[asyncio.AbstractEventLoop, int] | None = None
        _LIVE.add(self)
        self._watch_it()
        self._say(f"={self.token}\n")

    def _watch_it(self) -> None:
        # (Once: a second pidfd left registered, readable for ever once that guardian died,
        # would take every guardian after it for dead, at each pass of the loop.)
        self._unwatch()
        try:
            loop = asyncio.get_running_loop()
            pidfd = os.pidfd_open(self.pid)
        except (RuntimeError, OSError):  # (no loop; or gone already: a write will tell)
            return
        loop.add_reader(pidfd, self._died)  # not when it happens to write next: at once
        self._watch = (loop, pidfd)

    def __repr__(self) -> str:
        return f"<Guardian pid={self.pid}>"

    @property
    def identity(self) -> tuple[int, int] | None:
        """The guardian process's pid and start time, by which a run started after this one
        died knows it (its pid alone may be a stranger's by then); None once it is gone."""
        if self._fd < 0 or self._proc.returncode is not None:
            return None
        try:  # (our child, not reaped: its pid is its own while we read)
            started = start_time(self.pid)
        except OSError:  # (out of descriptors: not known)
            return None
        return None if started is None else (self.pid, started)

    def _say(self, line: str) -> None:
        # At once, not batched per pass of the loop: a member that pipeplex dies before
        # telling about is found only through PIPEPLEX_RUN_ID, which `env -i` drops.
        if self._fd < 0:
            if (not self._retry or self._closing or self._forked
                    or time.monotonic() < self._retry_at):
                return
            self._replace_again()  # (told everything, this line's news included)
            return
        self._pending += line.encode()
        if self._flushing is None:
            self._flush()

    @staticmethod
    def _socket(fd: int) -> socket.socket:
        channel = socket.socket(fileno=fd)
        channel.setblocking(False)  # (as the pipe: a guardian that stalls stalls nothing)
        return channel

    def _hand(self, line: str, fd: int | None = None) -> None:
        if self._fd < 0:
            self._say("")  # (a replacement, if one is due, is handed every master held)
            return
        self._handing.append((line.encode(), None if fd is None else os.dup(fd)))
        if self._handing_in is None:
            self._hand_over()

    def _hand_over(self) -> None:
        """Send what waits on the socket; what it cannot take yet waits for it to take more
        (a guardian that is not reading: its pipe's stall, or its death, says so)."""
        try:
            while self._handing:
                data, fd = self._handing[0]
                sent = (self._hands.send(data) if fd is None
                        else socket.send_fds(self._hands, [data], [fd]))
                if fd is not None:
                    os.close(fd)  # (passed with the first byte sent)
                if sent < len(data):
                    self._handing[0] = (data[sent:], None)
                else:
                    self._handing.popleft()
        except BlockingIOError:
            pass
        except OSError:  # (gone: its pidfd, or the pipe, tells; a replacement is handed all)
            self._forget_handing()
        if self._handing and self._handing_in is None:
            try:
                self._handing_in = asyncio.get_running_loop()
            except RuntimeError:  # (no loop: what waits goes with the next message)
                return
            self._handing_in.add_writer(self._hands.fileno(), self._hand_over)
        elif not self._handing and self._handing_in is not None:
            self._stop_handing()

    def _stop_handing(self) -> None:
        if self._handing_in is not None:
            if not self._handing_in.is_closed() and self._hands.fileno() >= 0:
                self._handing_in.remove_writer(self._hands.fileno())
            self._handing_in = None

    def _forget_handing(self) -> None:
        self._stop_handing()
        while self._handing:
            fd = self._handing.popleft()[1]
            if fd is not None:
                os.close(fd)

    def _flush(self) -> None:
        """Write what waits; what the pipe cannot take yet waits for it to take more."""
        try:
            del self._pending[:os.write(self._fd, self._pending)]
        except BlockingIOError:  # (full: the guardian is not reading)
            pass
        except OSError:  # EPIPE: the guardian is gone
            self._lost()
            return
        if self._pending and self._flushing is None:
            try:
                self._flushing = asyncio.get_running_loop()
            except RuntimeError:  # (no loop to wait in: wait here)
                self._drain(deadline=None)
                return
            self._flushing.add_writer(self._fd, self._flush)
            self._stall = self._flushing.call_later(STALLED_AFTER, self._stalled)
        elif not self._pending and self._flushing is not None:
            self._stop_flushing()

    def _stop_flushing(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        if self._flushing is not None:
            if not self._flushing.is_closed():
                self._flushing.remove_writer(self._fd)
            self._flushing = None

    def _stalled(self) -> None:
        """Its pipe stayed full: kill it (its death, seen through its pidfd, starts
        another)."""
        self._stall = None
        if self._pending and self._fd >= 0:
            self._stuck = (self.pid, f"left its pipe full for {STALLED_AFTER:g} s (stopped?): "
                                     "killed it")
            self._proc.kill()

    def look_at_it(self) -> None:
        """A guardian that is stopped (SIGSTOP) would do nothing until someone let it go on,
        and one of a quiet cast never fills its pipe to be found so: taken for stuck and
        replaced, as one that leaves its pipe full. Looked at on each SIGCHLD, which its
        stop sends pipeplex, its parent (the orphan reaper's looks)."""
        being_killed = self._stuck is not None and self._stuck[0] == self.pid
        if self._fd < 0 or self._closing or self._forked or being_killed:
            return
        if suspended(self.pid):  # (gone: its pidfd tells)
            self._stuck = (self.pid, "was stopped (SIGSTOP?): killed it")
            self._proc.kill()  # (its death, seen through its pidfd, starts another)

    def _drain(self, deadline: float | None) -> bool:
        """Write what waits, waiting for the pipe (until ``deadline``, monotonic); whether
        all of it went."""
        while self._pending and self._fd >= 0:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            poller = select.poll()  # (not select: the descriptor may be past 1023)
            poller.register(self._fd, select.POLLOUT)
            poller.poll(None if left is None else left * 1000)
            try:
                del self._pending[:os.write(self._fd, self._pending)]
            except BlockingIOError:
                pass
            except OSError:
                self._lost()
        return not self._pending

    def _died(self) -> None:
        self._proc.poll()  # (reaped)
        self._lost()

    def _lost(self) -> None:
        self._unwatch()
        if self._fd < 0:
            return
        self._stop_flushing()
        self._pending.clear()
        os.close(self._fd)
        self._fd = -1
        self._forget_handing()
        self._hands.close()
        gone = self.pid
        if self._closing:  # (everything is stopped: nothing to keep)
            return
        what = (self._stuck[1] if self._stuck is not None and self._stuck[0] == gone
                else "is gone")
        failed = self._replace()
        if failed is None:
            said = (f"the guardian process (pid {gone}) {what}; started another (pid "
                    f"{self.pid}), which knows the cast's groups")
        else:
            again = "; tried again as the cast changes" if self._retry else ""
            said = (f"the guardian process (pid {gone}) {what}{failed}{again}: the members "
                    "are stopped as usual, but if pipeplex itself is killed now, they may "
                    "outlive it")
        self._tell(said)

    def _tell(self, text: str) -> None:
        if self._on_lost is not None:
            self._on_lost(text)

    def _replace(self) -> str | None:
        """Start a guardian in place of one that was killed, and tell it what the cast
        holds (its groups, its adopted orphans); None if one runs, else why not. A few
        times at most: something that kills every guardian (``pkill python``) is not raced
        for ever. A start that failed (no process to be had) is tried again at the next
        thing to tell, as long as tries are left."""
        self._retry = False
        if self._replaced >= REPLACE_AT_MOST:
            return ""
        self._replaced += 1
        if self._proc.poll() is None:  # (its pipe broke as it exits: not reapable yet)
            self._dying.append(self._proc)
        try:
            self._proc, self._fd, hands = spawn_guardian()
        except OSError as exc:
            self._retry = self._replaced < REPLACE_AT_MOST
            self._retry_at = time.monotonic() + RETRY_AFTER
            return f"; could not start another ({exc.strerror or exc})"
        self.pid = self._proc.pid
        self._hands = self._socket(hands)
        os.set_blocking(self._fd, False)
        self._watch_it()
        if self.on_started is not None:
            self.on_started(self.identity)
        # In one write: should this one die at once too, the next is started once.
        self._say(f"={self.token}\n" + self._cast_so_far())
        self._masters_so_far()
        return None if self._fd >= 0 else ""

    def _replace_again(self) -> None:
        """A replacement that could not start: try once more, now that there is something
        to tell (what was told since is in what the new one is told)."""
        gone = self.pid
        failed = self._replace()
        if failed is None:
            self._tell(f"started a guardian process (pid {self.pid}) in place of the one "
                       f"that was gone (pid {gone}); it knows the cast's groups")
        elif not self._retry:
            self._tell(f"still no guardian process{failed}; no more tries: if pipeplex "
                       "itself is killed now, the members may outlive it")

    def _unwatch(self) -> None:
        if self._watch is not None:
            loop, pidfd = self._watch
            self._watch = None
            if not loop.is_closed():
                loop.remove_reader(pidfd)
            os.close(pidfd)

    def _let_go_in_child(self) -> None:
        """In a forked child: close the inherited pipe and pidfd, and touch nothing more
        (the guardian and the groups it keeps are the parent's)."""
        self._forked = True
        for fd in (self._fd, *(self._watch[1:] if self._watch else ()),
                   *self._masters.values()):  # (no terminal is held open by the child)
            if fd >= 0:
                os.close(fd)
        self._fd = -1
        self._watch = None
        self._flushing = None
        # A new buffer, not clear(): a write from another thread may have held the old one
        # as the fork came, and the child's copy stays held (BufferError).
        self._pending = bytearray()
        self._handing_in = None
        self._forget_handing()
        self._masters.clear()
        self._hands.close()

    def close(self) -> None:
        """Let the guardian go: every group should be stopped and unregistered by now."""
        if self._forked:
            return
        self._closing = True
        self._unwatch()
        self._stop_flushing()
        if self._fd >= 0:
            # pipeplex ends well: what still holds a member's pipe is not for the guardian
            # to stop (the Python API leaves a program's orphans be, as it always did).
            self._pending += b".\n"
            # Its last lines unregister groups: a guardian that cannot take them (stopped)
            # would stop those groups, whose ids may be a stranger's by then. It goes first.
            if not self._drain(deadline=time.monotonic() + CLOSE_WAIT):
                self._proc.kill()
                self._tell(f"the guardian process (pid {self.pid}) did not take the run's "
                           f"last lines within {CLOSE_WAIT:g} s (stopped?): killed it")
            if self._fd >= 0:  # (a write that failed let it go already)
                os.close(self._fd)
                self._fd = -1
        # (Every group is let go by now: what is handed no longer matters.)
        self._forget_handing()
        self._hands.close()
        for master in self._masters.values():
            os.close(master)
        self._masters.clear()
        for gone in self._dying:
            gone.kill()  # (dead or dying, long since: no longer told anything)
            gone.wait()
        if not _exits_within(self._proc, CLOSE_WAIT):
            self._proc.kill()
            self._tell(f"the guardian process (pid {self.pid}) did not end within "
                       f"{CLOSE_WAIT:g} s of the run's end (stopped?): killed it")
        self._proc.wait()


_LIVE: weakref.WeakSet[Guardian] = weakref.WeakSet()


def _let_go_in_child() -> None:
    failed: list[Exception] = []
    for guardian in list(_LIVE):  # (each, whatever one of them meets)
        try:
            guardian._let_go_in_child()
        except Exception as exc:
            failed.append(exc)
    if failed:
        raise failed[0]


os.register_at_fork(after_in_child=_let_go_in_child)


def _exits_within(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    """Whether ``proc`` exits within ``seconds``, seen through a pidfd: ``Popen.wait`` with
    a timeout polls, and sleeps up to 50 ms between looks while the guardian is long gone."""
    if proc.returncode is not None:
        return True
    try:
        pidfd = os.pidfd_open(proc.pid)
    except ProcessLookupError:  # reaped already
        return True
    try:
        return exits_within(pidfd, seconds)
    finally:
        os.close(pidfd)
