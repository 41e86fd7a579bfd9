"""The orphans of a cast come to pipeplex: it reaps them, and stops them at the end.

A process whose parent died goes to the nearest *subreaper* among its ancestors, or to
PID 1. ``pipeplex run`` and ``pipeplex test`` make themselves their members' subreaper
(:class:`Adoption`): a daemon a member double-forked, or a worker whose parent died,
becomes pipeplex's child, even one that left every process group and environment
variable of its member behind (``setsid env -i``). The engine stops those with the rest
at the end, and pipeplex waits for each that exits on SIGCHLD, as ``init`` or ``tini``
would (members are waited for through their pidfds). As a container's first process it
is every orphan's parent anyway.

Only a process that waits for no child of its own may do this: one running casts inside
a program (``run_cast``, ``Plex``) does not, unless asked. Children it had before (the
ones a shell's ``exec`` passed on) are never taken for the cast's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from ._escaped import start_time
from ._proc import PPID, START_TIME, all_stats, proc_is_ours, stat_fields

if TYPE_CHECKING:
    from .guardian import Guardian

__all__ = ("Adoption", "OrphanReaper", "children", "descendants")

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37


def children(pid: int | str = "self") -> list[int]:
    """The children of ``pid`` (zombies included), from /proc (none where it is not ours)."""
    found: list[int] = []
    if not proc_is_ours():
        return found
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(child) for child in f.read().split()]
        except OSError:
            pass
    return found


def descendants(roots: Collection[int]) -> list[int]:
    """Every process below ``roots`` (not themselves), from one pass over /proc: the ones
    still to be orphaned when their parents, the members, are killed at once."""
    parents: dict[int, list[int]] = {}
    for pid, fields in all_stats():
        parents.setdefault(int(fields[PPID]), []).append(pid)
    found: list[int] = []
    todo = list(roots)
    while todo:
        below = parents.get(todo.pop(), [])
        found += below
        todo += below
    return found


class Adoption:
    """This process as its casts' subreaper from now on (as PID 1, it is anyway); undone
    by :meth:`close`. ``active`` is False where the kernel refused."""

    def __init__(self) -> None:
        self.before: frozenset[int] = frozenset()
        """The children this process had already: never taken for the cast's."""
        self._before: dict[int, int | None] = {}
        self.rebase()
        self._restore: Callable[[], None] | None = None
        if os.getpid() == 1:
            self.active = True
        else:
            self._restore = _become_subreaper()
            self.active = self._restore is not None

    def rebase(self) -> None:
        """Take the children this process has now for its own (a new cast begins: what an
        earlier one left, said then, is not this one's to answer for)."""
        self._before = {pid: _started(pid) for pid in children()}
        self.before = frozenset(self._before)

    @property
    def before_started(self) -> dict[int, int]:
        """The children it had before, alive or unreaped, by pid and start time."""
        return {pid: when for pid, when in self._before.items() if when is not None}

    @property
    def spared(self) -> frozenset[int]:
        """Children never reaped here: the ones from before, whose owner may wait for them;
        as PID 1 nobody else would, and they are reaped as any orphan."""
        return frozenset() if os.getpid() == 1 else self.before

    def theirs(self, pid: int) -> bool:
        """Whether ``pid`` is a child this process had before (not a pid reused), alive or
        ended and not yet waited for by its owner."""
        if pid not in self._before:
            return False
        started = self._before[pid]
        return started is not None and _started(pid) == started

    def close(self) -> None:
        if self._restore is not None:
            self._restore()
            self._restore = None


def _started(pid: int) -> int | None:
    """When ``pid`` started, alive or a zombie; None if it is gone."""
    fields = stat_fields(pid)
    return None if fields is None else int(fields[START_TIME])


def _become_subreaper() -> Callable[[], None] | None:
    """Set PR_SET_CHILD_SUBREAPER; what puts it back as it was, or None if refused."""
    import ctypes  # (2-3 ms: only for the prctl calls, only where casts are adopted)

    libc = ctypes.CDLL(None, use_errno=True)
    was = ctypes.c_int(0)
    libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(was), 0, 0, 0)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        return None

    def restore() -> None:
        libc.prctl(_PR_SET_CHILD_SUBREAPER, was.value, 0, 0, 0)

    return restore


def _c_level_default() -> Callable[[], None]:
    """What sets SIGCHLD's action to the default below Python, leaving Python's table as
    it is (see :class:`OrphanReaper`)."""
    import ctypes  # (loaded by then: the prctl calls of an adoption)

    c_signal = ctypes.CDLL(None).signal
    c_signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
    c_signal.restype = ctypes.c_void_p

    def disarm() -> None:
        c_signal(signal.SIGCHLD, None)  # (SIG_DFL is the null pointer)

    return disarm


class OrphanReaper:
    """Reaps this process's children that are not its own: ``ours()`` names those (the
    members, the guardian), which their owners wait for. Tells ``guardian`` of each orphan
    it sees come and go, so that it stops them should pipeplex die.

    A SIGCHLD says that a child ended, as for init and tini, and a look at the children
    follows each: it reaps the orphans that ended, and tells the guardian of the ones that
    came (a daemon whose parent, a member, exited). Nothing says that one came whose old
    parent was a member's own child (a daemon double-forked from a member's script): the
    SIGCHLD goes to that parent. The guardian looks for those itself, once a second (and
    while pipeplex is stopped, when it cannot look): pipeplex is woken by nothing but
    SIGCHLD. The guardian itself is a child: its SIGCHLD as it is stopped (SIGSTOP) is
    taken as a cue to look at it (:meth:`.Guardian.look_at_it`).

    The SIGCHLD handler is armed for one signal at a time, and armed again as a look
    begins. Each signal caught puts a byte in the loop's wake-up pipe: a thousand members
    stopping at once filled it while the loop was busy with their exits, Python printed a
    traceback for each byte it could not write, and a signal that came then (a second
    Ctrl-C) would have been lost, as asyncio runs a handler for each byte it reads. Armed
    once, they cost a byte per look, and the zombies of orphans that end in a burst are
    still reaped at once (they count against a container's process limit).

    It is disarmed below Python (libc's ``signal``), where no more can be caught, while
    Python's own table keeps the handler: ``signal.signal(SIGCHLD, SIG_DFL)`` runs the
    handlers of signals caught so far and then sets the default, so a SIGCHLD caught in
    between met the default in Python's table, which Python reports on stderr ("Signal 17
    ignored due to race condition", with a traceback) when orphans end by the thousand."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ours: Callable[[], Collection[int]],
                 guardian: Guardian | None = None) -> None:
        self._loop = loop
        self._ours = ours
        self._guardian = guardian
        self._told: set[int] = set()
        self._pending = False
        self._closed = False
        self._disarm = _c_level_default()
        self._look()  # (what came before we listened: its SIGCHLD is gone)

    def _look(self) -> None:
        """Arm for the next SIGCHLD, then look: a child that ends (or stops) from here on
        fires it again."""
        if self._closed:
            return
        self._pending = False
        signal.signal(signal.SIGCHLD, self._child_ended)
        self.reap()
        if self._guardian is not None:
            self._guardian.look_at_it()

    def _child_ended(self, signum: int, frame: object) -> None:
        """A Python-level handler, run between two bytecodes of the main thread: disarmed
        at once (SIG_DFL: children are still waited for, and a SIGCHLD then costs nothing),
        it asks the loop for one look."""
        self._disarm()
        if not self._pending and not self._closed:
            self._pending = True
            with contextlib.suppress(RuntimeError):  # (its loop closed without close())
                self._loop.call_soon_threadsafe(self._look)

    def reap(self) -> int:
        """Reap every child that has exited and is not ours; how many there were."""
        ours = set(self._ours())
        reaped = 0
        for pid in children():
            if pid in ours:
                continue
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if done == pid:
                reaped += 1
                self._told.discard(pid)
                if self._guardian is not None:  # (told or not: it may have found it itself,
                    self._guardian.reaped(pid)  # and the pid may go to the next orphan)
            elif self._guardian is not None and pid not in self._told:
                started = start_time(pid)  # (a child: its pid is not reused while unreaped)
                if started is not None:
                    self._told.add(pid)
                    self._guardian.adopted(pid, started)
        return reaped

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._disarm()  # (first: none is caught while Python's table changes)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.reap()
