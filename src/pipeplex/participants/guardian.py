"""The guardian: a tiny process that kills the cast if pipeplex itself dies.

pipeplex can be killed with SIGKILL, which no handler sees; its members, each in its own
session, would live on as orphans. So pipeplex starts a guardian, tells it through a pipe
each process group it creates (``+PGID``) and each one that is gone (``-PGID``), and keeps
the pipe's write end open. The kernel closes that end when pipeplex dies, however it dies:
the guardian reads EOF, sends SIGTERM to every group still registered, and SIGKILL to
those still there half a second later.

Registering is one write, made as soon as the member is spawned. The guardian reads the
first line of a burst at once and the rest a quarter second later (its death, not its lines,
is what must wake it): a start wave of 100 members wakes it twice, not 100 times, and its
wake-ups no longer take turns with pipeplex's spawns on a busy core.

Two more nets, used at EOF. A spawn's child exists while pipeplex waits for its exec: a
SIGKILL then leaves it unregistered. So before each spawn pipeplex tells the streams it gives
the member, as ``/proc`` names them with their mount, and the time
(``?TICKS MNT:pipe:[INO] MNT:/dev/pts/N ...``); the guardian signals the processes holding
one of them that started since, and their group when they lead one. It looks once, as
pipeplex ended, then follows them by pid and start time: a pty's number, freed, may go to a
stranger's terminal (ours reads ``/dev/pts/N (deleted)`` by then). ``!`` forgets a spawn
that made no child. And a member's child may leave its
process group (``setsid``): every member runs with ``PIPEPLEX_RUN_ID`` in its environment,
which its children inherit, and the guardian signals every process carrying that id.

A group is unregistered once it is empty, never before: its id may then go to a stranger.
On a clean exit everything is already gone and the guardian just leaves.

The guardian runs in its own session (a Ctrl-C on the terminal does not reach it) and
ignores the usual stop signals; its code is a few lines of the standard library run with
``python -S`` so it starts in milliseconds and needs nothing from pipeplex.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable

from ._group import exits_within

__all__ = ("Guardian",)

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
"""The unit of a process's start time in ``/proc/PID/stat``."""

GUARDIAN_CODE = r"""
import os, select, signal, sys, time
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
    signal.signal(sig, signal.SIG_IGN)
groups = set()
token = None
spawning = None
buffer = b""
parent = os.getppid()  # pipeplex: at EOF, its exit may not be complete yet
try:
    parent_exit = os.pidfd_open(parent)
except OSError:
    parent_exit = None
def drained():
    global buffer, token, spawning
    while True:
        try:
            data = os.read(0, 65536)
        except BlockingIOError:
            return True
        if not data:
            return False
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            try:  # a line it cannot read must not cost the others their effect
                if line[:1] == b"?":
                    since, *streams = line[1:].split(b" ")
                    spawning = (int(since), {tuple(s.split(b":", 1)) for s in streams
                                             if b":" in s})
                elif line[:1] == b"!":
                    spawning = None
                elif line[:1] == b"+":
                    pgid = int(line[1:])
                    if not 0 < pgid < 1 << 31:
                        raise ValueError(pgid)
                    groups.add(pgid)
                    spawning = None
                elif line[:1] == b"-":
                    groups.discard(int(line[1:]))
                elif line[:1] == b"=":
                    token = b"PIPEPLEX_RUN_ID=" + line[1:]
            except ValueError:
                pass
os.set_blocking(0, False)
waiting = select.poll()
waiting.register(0, select.POLLIN)
while True:
    waiting.modify(0, select.POLLIN)
    waiting.poll()
    if not drained():
        break
    # A start wave writes a line per member: let the rest gather for a quarter second,
    # woken early only by pipeplex's end (POLLHUP), instead of waking for each line and
    # taking the core pipeplex spawns on. Unread lines wait safely in the pipe.
    waiting.modify(0, 0)
    waiting.poll(250)
    if not drained():
        break
def started(pid):
    # Its start time in clock ticks after boot; None once it is gone (or a zombie).
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
    except OSError:
        return None
    try:
        fields = stat[stat.rindex(b")") + 2:].split()
        return None if fields[0] in (b"Z", b"X") else int(fields[19])
    except (ValueError, IndexError):  # (read as it went)
        return None
def streams_of(pid):
    # Its stdin, stdout and stderr: (mount id, what /proc names them) each.
    found = set()
    for fd in (b"0", b"1", b"2"):
        try:
            link = os.readlink(b"/proc/%d/fd/" % pid + fd)
            with open(b"/proc/%d/fdinfo/" % pid + fd, "rb") as f:
                info = f.read()
        except OSError:
            continue
        for field in info.split(b"\n"):
            if field.startswith(b"mnt_id:"):
                found.add((field[7:].strip(), link))
    return found
def caught_mid_spawn():
    # The member pipeplex was spawning as it died: its child exists before the spawn
    # returns, unregistered. Known by the streams it was given (it may drop one before
    # we look), and by having started since the spawn was told. A pty of ours reads
    # "/dev/pts/N (deleted)" once pipeplex's end is complete: a live /dev/pts/N is a
    # stranger's terminal that got the number (or one in another container's devpts,
    # which the mount id tells apart).
    found = set()
    if spawning is None:
        return found
    since, streams = spawning
    ptys = any(link.startswith(b"/dev/pts/") for _, link in streams)
    if ptys and parent_exit is not None and os.getppid() == parent:
        select.select([parent_exit], [], [], 1.0)  # (a clean close: pipeplex lives, 1 s once)
    ours = {(mnt, link + b" (deleted)" if link.startswith(b"/dev/pts/") else link)
            for mnt, link in streams}
    now = int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK")) + 1
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me and streams_of(int(entry)) & ours:
            when = started(int(entry))
            if when is not None and since - 1 <= when <= now:
                found.add((int(entry), when))
    return found
caught = caught_mid_spawn()  # once, as pipeplex ended; then followed by pid and start time
for pid, when in caught:  # one that leads its group (a member does): the group is ours too
    try:
        if os.getpgid(pid) == pid:
            groups.add(pid)
    except OSError:
        pass
def marked():
    found = set()
    if token is None:
        return found
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me:
            try:
                with open("/proc/" + entry + "/environ", "rb") as f:
                    if token in f.read().split(b"\0"):
                        found.add(int(entry))
            except OSError:
                pass
    return found
def signal_all(sig):
    for pgid in groups:
        try:
            os.killpg(pgid, sig)
        except OSError:
            pass
    for pid in marked() | {pid for pid, when in caught if started(pid) == when}:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
def left():
    # A zombie left in a group (its parent has not reaped it yet) is dead already.
    if marked() or any(started(pid) == when for pid, when in caught):
        return True
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/" + entry + "/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(b")") + 2:].split()
            if int(fields[2]) in groups and fields[0] not in (b"Z", b"X"):
                return True
    return False
signal_all(signal.SIGTERM)
deadline = time.monotonic() + 0.5
while left() and time.monotonic() < deadline:
    time.sleep(0.02)
if left():
    signal_all(signal.SIGKILL)
"""


_MOUNT_IDS: dict[int, str] = {}
"""Per device, the id of its mount (pipefs, a devpts): read once, as a spawn is told."""


def _mount_id(fd: int) -> str:
    device = os.fstat(fd).st_dev
    if device not in _MOUNT_IDS:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            _MOUNT_IDS[device] = next(line.split()[1] for line in f if line.startswith("mnt_id:"))
    return _MOUNT_IDS[device]


class Guardian:
    """Handle on the guardian process; register every process group you create."""

    def __init__(self, *, on_lost: Callable[[str], None] | None = None) -> None:
        self._on_lost = on_lost
        """Told, once, when the guardian process is found gone (someone killed it)."""
        self.token = os.urandom(16).hex()
        """Put in members' environment as ``PIPEPLEX_RUN_ID``; the guardian hunts it down."""
        read_end, self._fd = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-S", "-c", GUARDIAN_CODE],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
                # Not marked as a member's: when this pipeplex is itself a member (of an
                # outer run), the outer stop must not take its guardian for a process the
                # member left behind, and kill it before it has stopped our members.
                env={k: v for k, v in os.environ.items()
                     if k not in ("PIPEPLEX_RUN_ID", "PIPEPLEX_NAME")},
            )
        finally:
            os.close(read_end)
        self.pid = self._proc.pid
        self._say(f"={self.token}\n")
        self._watch: tuple[asyncio.AbstractEventLoop, int] | None = None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        pidfd = os.pidfd_open(self.pid)
        loop.add_reader(pidfd, self._died)  # not when it happens to write next: at once
        self._watch = (loop, pidfd)

    def __repr__(self) -> str:
        return f"<Guardian pid={self.pid}>"

    def _say(self, line: str) -> None:
        # At once, not batched per pass of the loop: a member that pipeplex dies before
        # telling about is found only through PIPEPLEX_RUN_ID, which `env -i` drops.
        if self._fd < 0:
            return
        try:
            os.write(self._fd, line.encode())
        except OSError:  # EPIPE: the guardian is gone
            self._lost()

    def _died(self) -> None:
        self._unwatch()
        self._proc.poll()  # (reaped)
        self._lost()

    def _lost(self) -> None:
        if self._fd < 0:
            return
        os.close(self._fd)
        self._fd = -1
        if self._on_lost is not None:
            self._on_lost(f"the guardian process (pid {self.pid}) is gone: the members are "
                          "stopped as usual, but if pipeplex itself is killed now, they may "
                          "outlive it")

    def _unwatch(self) -> None:
        if self._watch is not None:
            loop, pidfd = self._watch
            self._watch = None
            if not loop.is_closed():
                loop.remove_reader(pidfd)
            os.close(pidfd)

    def spawning(self, streams: Iterable[int]) -> None:
        """A member is about to be spawned with ``streams`` (its stdin, stdout, stderr): if
        pipeplex dies before :meth:`register` (while it waits for the child's exec), the
        guardian finds the child by them (as ``/proc`` names them, and their mount), started
        since now."""
        told = []
        for fd in streams:
            try:
                link = os.readlink(f"/proc/self/fd/{fd}")
                mount = _mount_id(fd)
            except (OSError, StopIteration):  # (no /proc: the guardian could not look either)
                continue
            told.append(f"{mount}:{link}")
        if told:
            now = int(time.clock_gettime(time.CLOCK_BOOTTIME) * _CLOCK_TICKS)
            self._say(f"?{now} {' '.join(told)}\n")

    def spawn_failed(self) -> None:
        """The spawn announced by :meth:`spawning` did not happen: forget its stdin (a pty's
        number, freed, may go to a stranger's terminal)."""
        self._say("!\n")

    def register(self, pgid: int) -> None:
        """A process group created (the spawn announced by :meth:`spawning` done)."""
        self._say(f"+{pgid}\n")

    def unregister(self, pgid: int) -> None:
        self._say(f"-{pgid}\n")

    def close(self) -> None:
        """Let the guardian go: every group should be stopped and unregistered by now."""
        self._unwatch()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if not _exits_within(self._proc, 5.0):
            self._proc.kill()
        self._proc.wait()


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
