"""The guardian's program, and its start: loadable before asyncio and the rest.

What the guardian does, and how pipeplex talks to it, is told in
:mod:`pipeplex.participants.guardian`. Its program is here, away from that module's
imports, so that ``pipeplex run`` can start it first thing (:func:`start_early_guardian`,
from the entry point): its interpreter, some 10-15 ms of CPU, then starts on the core that
pipeplex's own imports leave idle, rather than on the cores the members' start needs.
"""

from __future__ import annotations

import os
import subprocess
import sys

__all__ = ("GUARDIAN_CODE", "spawn_guardian", "start_early_guardian", "take_early_guardian")

GUARDIAN_CODE = r"""
import os, select, signal, sys, time
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
    signal.signal(sig, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_SETMASK, ())  # (pipeplex run starts it with them held)
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


def spawn_guardian() -> tuple[subprocess.Popen[bytes], int]:
    """A new guardian process, and the write end of the pipe it reads."""
    read_end, write_end = os.pipe()
    try:
        proc = subprocess.Popen(
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
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    return proc, write_end


_early: tuple[subprocess.Popen[bytes], int] | None = None


def start_early_guardian() -> None:
    """Start the guardian of the run this process is about to make. Should the run never
    come (a usage error), the guardian reads EOF as pipeplex exits, finds nothing to stop
    and leaves."""
    global _early
    try:
        _early = spawn_guardian()
    except OSError:  # (the run tries again, and says what failed)
        _early = None


def take_early_guardian() -> tuple[subprocess.Popen[bytes], int] | None:
    """The guardian :func:`start_early_guardian` started, once; None if there is none."""
    global _early
    early, _early = _early, None
    return early
