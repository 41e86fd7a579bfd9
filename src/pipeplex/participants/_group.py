"""What is left in a process group once its leader exited, and waiting for it to go.

A member's descendants may outlive it (a daemon it forked, a pipeline's other end). Their
pids are not ours to know, so they are read from ``/proc`` (only when ``killpg(pgid, 0)``
says someone is left, which is rare), and each is watched through a pidfd: waiting costs
no polling, and a pidfd names that process only, even if its pid is reused.

A member's own group (:class:`MemberGroup`) is signalled only while it is known to be
there, and watched so once its leader exited: its id is a stranger's to take as soon as it
is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import weakref
from collections.abc import Callable, Collection, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from .._signals import signal_name
from ..errors import SignalRefused
from ._proc import PGRP, all_stats, exited, proc_is_ours

if TYPE_CHECKING:
    from .guardian import Guardian

__all__ = ("GroupOwner", "MemberGroup", "exits_within", "live_in_group", "live_in_groups",
           "owner", "pidfds_exit", "unwatch_group", "wait_group_gone", "wait_groups_gone",
           "watch_group")


def live_in_group(pgid: int) -> list[int]:
    """Pids in process group ``pgid`` that have not exited (zombies do not count)."""
    return live_in_groups({pgid}).get(pgid, [])


def owner(pids: Iterable[int]) -> str:
    """Who processes run as (another user, which pipeplex may not signal), by the real user
    of the first of ``pids`` still there: ``root``, or ``uid 1001`` without a name."""
    for pid in pids if proc_is_ours() else ():
        try:
            with open(f"/proc/{pid}/status", "rb") as f:
                uid = int(next(line for line in f if line.startswith(b"Uid:")).split()[1])
        except (OSError, StopIteration, ValueError):  # gone meanwhile
            continue
        import pwd  # (only here: pipeplex otherwise has no use for user names)

        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return f"uid {uid}"
    return "another user"


def live_in_groups(groups: Collection[int]) -> dict[int, list[int]]:
    """The pids of each of ``groups`` that have not exited, in one pass over ``/proc``."""
    found: dict[int, list[int]] = {}
    for pid, fields in all_stats():
        pgid = int(fields[PGRP])
        if pgid in groups and not exited(pid, fields):
            found.setdefault(pgid, []).append(pid)
    return found


def exits_within(pidfd: int, seconds: float) -> bool:
    """Whether the process behind ``pidfd`` has exited, or does within ``seconds`` (this
    blocks). poll, not select: a descriptor past 1023 is common with a large cast."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(max(seconds, 0.0) * 1000))


async def wait_group_gone(pgid: int, within: float,
                          until: asyncio.Future[Any] | None = None) -> bool:
    """Wait until nothing lives in group ``pgid``; False after ``within`` s or once ``until``.

    A process may fork into the group while we wait, so the group is read again each time
    those we watched have all exited.
    """
    return not await wait_groups_gone((pgid,), within, until)


async def wait_groups_gone(groups: Collection[int], within: float,
                           until: asyncio.Future[Any] | None = None) -> list[int]:
    """Wait until nothing lives in any of ``groups``: those still alive after ``within`` s
    or once ``until`` (none: all gone). One pass over ``/proc`` reads them all, again each
    time the processes watched have exited (a process may fork into a group meanwhile)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while live := live_in_groups(set(groups)):
        remaining = deadline - loop.time()
        pids = [pid for members in live.values() for pid in members]
        if remaining <= 0 or not await _all_exit(pids, remaining, until):
            still = live_in_groups(set(live))
            return [group for group in groups if group in still]
    return []


async def _all_exit(pids: list[int], within: float, until: asyncio.Future[Any] | None) -> bool:
    """Whether every process in ``pids`` exits within ``within`` s (and before ``until``)."""
    fds = []
    try:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                fds.append(os.pidfd_open(pid))
        return await pidfds_exit(fds, within, until)
    finally:
        for fd in fds:
            os.close(fd)


async def pidfds_exit(fds: list[int], within: float,
                      until: asyncio.Future[Any] | None = None) -> bool:
    """Whether every process behind ``fds`` (pidfds) exits within ``within`` s (and before
    ``until``). The pidfds stay open: they are the caller's."""
    loop = asyncio.get_running_loop()
    all_exited: asyncio.Future[None] = loop.create_future()
    watched: set[int] = set()

    def exited(fd: int) -> None:
        loop.remove_reader(fd)
        watched.discard(fd)
        if not watched and not all_exited.done():
            all_exited.set_result(None)

    if not fds:
        return True
    try:
        for fd in fds:
            watched.add(fd)
            loop.add_reader(fd, exited, fd)
        waits: list[asyncio.Future[Any]] = [all_exited]
        if until is not None:
            waits.append(until)
        await asyncio.wait(waits, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        return all_exited.done()
    finally:
        for fd in watched:
            loop.remove_reader(fd)


def watch_group(pgid: int, on_empty: Callable[[int], None]) -> None:
    """Call ``on_empty(pgid)`` (in the running loop) once nothing that has not exited is
    left in group ``pgid``.

    A group's id stays taken while any process is in it, and is free for a stranger's
    ``setsid`` once it is empty: whoever would signal the group later must know it is gone.
    Zombies do not count: they cannot be signalled, and their id is not free until reaped.
    If the group cannot be watched (pipeplex is out of descriptors), ``on_empty`` is never
    called: the group is then taken for alive (signalled as a live one is, never reported
    empty).
    """
    loop = asyncio.get_running_loop()
    watcher = _WATCHERS.get(loop)
    if watcher is None:
        watcher = _WATCHERS[loop] = _GroupWatcher()
    watcher.watch(pgid, on_empty)


def unwatch_group(pgid: int) -> None:
    """Stop watching group ``pgid`` (in the running loop: the cast is over)."""
    watcher = _WATCHERS.get(asyncio.get_running_loop())
    if watcher is not None:
        watcher.unwatch(pgid)


class GroupOwner(Protocol):
    """What a member's group asks of its process: its name, its pid (its group's id), and
    whether it has exited."""

    @property
    def name(self) -> str: ...
    @property
    def pid(self) -> int | None: ...
    @property
    def returncode(self) -> int | None: ...


class MemberGroup:
    """A member's process group, run after run, and the groups of its ended runs that
    processes still hold, watched until they are empty (and forgotten by the guardian
    then). The process tells it each run (:meth:`new_run`), its leader's exit
    (:meth:`leader_exited`) and the end of the cast (:meth:`close`)."""

    def __init__(self, process: GroupOwner, guardian: Guardian | None) -> None:
        self._process = process
        self._guardian = guardian
        self._gone = True
        self._watched: set[int] = set()
        """Groups of ended runs that processes still hold, watched until they are empty."""

    def new_run(self) -> None:
        """A run has started, leading a group of its own."""
        self._gone = False

    def signal(self, sig: int) -> bool:
        """Send ``sig`` to the member's whole process group; False if nothing was left.

        Raises:
            SignalRefused: every process left in the group runs as another user, and this
                one may not signal them; they run on (and their group stays registered).
        """
        pid = self._process.pid
        if pid is None or self._gone:
            return False
        try:
            if (self._process.returncode is not None and proc_is_ours()
                    and os.path.exists(f"/proc/{pid}")):
                # Its leader was reaped, and a group keeps its number while it has any
                # process: a process of that number now means the group emptied unseen
                # (pipeplex stopped meanwhile) and a stranger's setsid took the number.
                raise ProcessLookupError
            os.killpg(pid, sig)
        except ProcessLookupError:
            self._gone = True
            if self._guardian is not None:
                self._guardian.unregister(pid)
            return False
        except PermissionError:
            raise SignalRefused(self._process.name, pid, signal_name(sig),
                                owner(live_in_group(pid))) from None
        return True

    def alive(self) -> bool:
        """True while any process remains in the member's process group."""
        try:
            return self.signal(0)
        except SignalRefused:  # (there, as another user)
            return True

    def has_leftovers(self) -> bool:
        """True while a process that has not exited remains in the member's process group.

        Unlike :meth:`alive`, a zombie that its new parent has not reaped yet does not
        count.
        """
        pid = self._process.pid
        return pid is not None and self.alive() and bool(live_in_group(pid))

    def leader_exited(self, pgid: int) -> None:
        """The run whose group is ``pgid`` has exited: its group is watched while a process
        is left in it. Once the group is empty its id may go to a stranger: it is never
        signalled after."""
        if self.alive():  # a process it started lives on (or a zombie, not reaped yet)
            self._watched.add(pgid)
            watch_group(pgid, self._emptied)

    def _emptied(self, pgid: int) -> None:
        self._watched.discard(pgid)
        if pgid == self._process.pid:
            self._gone = True
        if self._guardian is not None:
            self._guardian.unregister(pgid)

    def close(self) -> None:
        """The cast is over: stop watching the groups of ended runs."""
        for pgid in self._watched:
            unwatch_group(pgid)
        self._watched.clear()


class _GroupWatcher:
    """The groups watched in one loop. Each group's processes are found in ``/proc`` and
    watched through pidfds; when those have all exited, the group is read again (one may
    have forked meanwhile). One pass over ``/proc`` serves every group that needs reading
    in a pass of the loop: many members exiting together cost one, not one each."""

    def __init__(self) -> None:
        # (No reference to the loop: the loop is the key this watcher is kept under, weakly.)
        self._on_empty: dict[int, Callable[[int], None]] = {}
        self._group_of: dict[int, int] = {}
        """Per pidfd open, its process's group."""
        self._open: dict[int, set[int]] = {}
        """Per group, its pidfds open."""
        self._to_read: set[int] = set()
        self._reading: asyncio.Handle | None = None

    def watch(self, pgid: int, on_empty: Callable[[int], None]) -> None:
        self._on_empty[pgid] = on_empty
        self._read_soon(pgid)

    def unwatch(self, pgid: int) -> None:
        self._on_empty.pop(pgid, None)
        self._to_read.discard(pgid)
        loop = asyncio.get_running_loop()
        for fd in self._open.pop(pgid, set()):
            del self._group_of[fd]
            loop.remove_reader(fd)
            os.close(fd)

    def _read_soon(self, pgid: int) -> None:
        self._to_read.add(pgid)
        if self._reading is None:
            self._reading = asyncio.get_running_loop().call_soon(self._read)

    def _read(self) -> None:
        self._reading = None
        loop = asyncio.get_running_loop()
        groups, self._to_read = self._to_read, set()
        found = live_in_groups(groups)
        for pgid in groups:
            if pgid not in self._on_empty:
                continue  # unwatched meanwhile
            try:
                for pid in found.get(pgid, ()):
                    with contextlib.suppress(ProcessLookupError):  # gone meanwhile
                        fd = os.pidfd_open(pid)
                        self._group_of[fd] = pgid
                        self._open.setdefault(pgid, set()).add(fd)
                        loop.add_reader(fd, self._exited, fd)
            except OSError:  # out of descriptors: taken for alive, as if never watched
                self.unwatch(pgid)
                continue
            if pgid not in self._open:
                self._on_empty.pop(pgid)(pgid)

    def _exited(self, fd: int) -> None:
        asyncio.get_running_loop().remove_reader(fd)
        os.close(fd)
        pgid = self._group_of.pop(fd)
        left = self._open[pgid]
        left.discard(fd)
        if not left:
            del self._open[pgid]
            self._read_soon(pgid)


_WATCHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _GroupWatcher] = (
    weakref.WeakKeyDictionary())
