"""Processes a member started that left its process group, found by their environment
(or, when they dropped it, by the output of the ended member they still hold).

A daemon that calls ``setsid``, or a job of an interactive shell (job control gives each
job its own group), is out of the member's process group: stopping the group misses it.
Every member runs with ``PIPEPLEX_RUN_ID`` (the run's token) and ``PIPEPLEX_NAME`` in its
environment, and what it starts inherits both unless it drops them (``env -i``). A pass
over ``/proc`` finds them: before a restart (what the old run left must not hold the new
run's port) and when the cast ends (stopped the usual way, announced, rather than only by
the guardian as pipeplex exits).

From then on each is known by its pid and start time, not by its environment (which a
process may drop as it handles SIGTERM): the escalation reaches what it signalled first.
Each signal goes through a pidfd opened for it, after the start time was read again
through ``/proc`` once the pidfd held the process: a pid reused meanwhile is left alone.

A process in the midst of ``exec()`` shows an environment empty or cut short: its new
memory has none until the kernel has copied it there, and memory taken before is gone (a
shell's ``sleep 60 &``, read just after the fork). Such a process is read again, after
the pass, until its ``exec()`` is through (see :func:`_environ`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import NamedTuple

from ._proc import (
    ENV_END,
    ENV_START,
    FLAGS,
    GONE,
    PF_EXITING,
    PF_KTHREAD,
    PGRP,
    START_TIME,
    STATE,
    exited,
    proc_is_ours,
    running_thread,
    stat_fields,
)

__all__ = ("EXEC_AGAIN_AFTER", "EXEC_PATIENCE", "SEARCH_SLICE", "End", "Ends", "Escaped",
           "OutOfDescriptors", "Unsettled", "carrying", "far_ends", "find_escaped",
           "find_holding", "hold", "holding_ends", "look_through", "proc_pids", "send",
           "start_time", "ticks_since_boot")

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
"""Ticks a second, in which /proc gives start times."""

Escaped = tuple[int, int]
"""A process by its pid and its start time (clock ticks after boot): who it is, even once
its pid goes to another process."""


class OutOfDescriptors(Exception):
    """pipeplex has no file descriptor left to look in /proc or to open a pidfd."""


class _InExec(Exception):
    """The process is in the midst of ``exec()``: its environment cannot be read yet."""

    def __init__(self, begins: int) -> None:
        super().__init__(begins)
        self.begins = begins


Unsettled = dict[int, int]
"""Processes read in the midst of ``exec()``, to read again: for each pid, where its
environment began in memory then (0: not set). An ``exec()`` moves it (the stack's place
is random): one seen empty at the same place twice is one with no environment."""


SEARCH_SLICE = 128
"""Processes looked at between two returns to the event loop: a machine may run thousands
(2,000 took 46 ms to look through here), and the members' output must not wait that long."""

EXEC_AGAIN_AFTER = 0.001
EXEC_PATIENCE = 0.5
"""Seconds after which those found in the midst of ``exec()`` are read again, and for how
long at most (an ``exec()`` takes well under a millisecond, unless its program is read from
a disk that is slow to answer): then the look ends without them."""


def proc_pids() -> list[int]:
    """Every pid in ``/proc`` but ours, to look through in slices with :func:`find_escaped`.

    Raises:
        OutOfDescriptors: ``/proc`` could not be opened.
    """
    if not proc_is_ours():
        return []
    me = os.getpid()
    with _descriptors(), os.scandir("/proc") as entries:
        return [int(e.name) for e in entries if e.name.isdigit() and int(e.name) != me]


def find_escaped(run_id: str, names: Collection[str], pids: Iterable[int],
                 inside: Collection[int] = (), *, before: Unsettled | None = None
                 ) -> tuple[dict[str, list[Escaped]], Unsettled]:
    """Per member name, the live processes among ``pids`` whose environment carries
    ``run_id`` and that name, but for those in the process groups ``inside`` (running
    members': theirs are not escaped); and those in the midst of ``exec()``, to read again
    (``before``: what an earlier pass found of these; see :func:`_environ`).

    Raises:
        OutOfDescriptors: the pass could not be made, or not to its end.
    """
    token = f"PIPEPLEX_RUN_ID={run_id}".encode()
    wanted = {f"PIPEPLEX_NAME={name}".encode(): name for name in names}
    found: dict[str, list[Escaped]] = {}
    in_exec: Unsettled = {}
    with _descriptors():
        for pid in pids:
            try:
                if _name_in(pid, token, wanted, before) is None:
                    continue
                # Its start time, then its environment again, then its start time again:
                # the environment read between two equal start times is that process's
                # (the pid may go to a stranger between any two reads).
                fields = stat_fields(pid, strict=True)
                if fields is None or exited(pid, fields) or int(fields[PGRP]) in inside:
                    continue
                started = int(fields[START_TIME])
                name = _name_in(pid, token, wanted, before)
            except _InExec as exc:
                in_exec[pid] = exc.begins
                continue
            if name is not None and start_time(pid) == started:
                found.setdefault(name, []).append((pid, started))
    return found, in_exec


class End(NamedTuple):
    """The far end of a member's output, as a process that holds it shows it."""

    member: str
    """The member whose output it is."""
    device: tuple[int, int] | None
    """A terminal's devpts instance and device number: one of the same name in another
    devpts (a container's, a sandbox's) is another's. None for a pipe, whose name is its
    own while we hold our end."""
    since: int
    """When the member's run began, in clock ticks after boot: what holds it started since."""


Ends = Mapping[str, End]
"""What processes that hold members' output hold of it, as their ``/proc/PID/fd`` names it
(see :func:`far_ends`)."""


def far_ends(name: str, fds: Iterable[int], since: int) -> dict[str, End]:
    """The far ends of our ``fds``, a member ``name``'s output in its run begun at ``since``
    (clock ticks after boot), which a process it started may hold (:data:`Ends`): a pipe by
    its name, the same at both ends (``pipe:[4242]``); a pty by its terminal's
    (``/dev/pts/3``), with its devpts and number. Its number stays ours while we hold the
    master."""
    ends: dict[str, End] = {}
    for fd in fds:
        with contextlib.suppress(OSError, ValueError, StopIteration):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("pipe:["):
                ends[link] = End(name, None, since)
                continue
            with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as info:
                index = next(line.split()[1] for line in info if line.startswith("tty-index:"))
            terminal = f"/dev/pts/{int(index)}"
            found = os.stat(terminal)
            ends[terminal] = End(name, (found.st_dev, found.st_rdev), since)
    return ends


@contextlib.contextmanager
def holding_ends(runs: Iterable[tuple[str, Iterable[int], float]]) -> Iterator[dict[str, End]]:
    """The far ends (:func:`far_ends`) of the output of each of ``runs`` (a member's name,
    our ends of its output, and when its spawn began, a ``time.monotonic()``), with a copy
    of each of our ends held open meanwhile: should the run's last holder close a pty as
    it is looked for, its number stays ours, where it would go to the next terminal opened
    anywhere, and that one's process be taken for the member's. An end that cannot be
    copied (out of descriptors) is not looked for."""
    copies: list[int] = []
    ends: dict[str, End] = {}
    try:
        for name, fds, spawned_at in runs:
            since = ticks_since_boot(spawned_at)
            for fd in fds:
                try:
                    copies.append(os.dup(fd))
                except OSError:
                    continue
                ends.update(far_ends(name, copies[-1:], since))
        yield ends
    finally:
        for fd in copies:
            os.close(fd)


def ticks_since_boot(monotonic: float) -> int:
    """``monotonic`` (a ``time.monotonic()`` of this boot) in clock ticks after boot, as
    ``/proc`` gives start times: a tick early, for what started in the same tick."""
    boot = time.clock_gettime(time.CLOCK_BOOTTIME) - time.monotonic() + monotonic
    return int(boot * _CLOCK_TICKS) - 1


def find_holding(ends: Ends, pids: Iterable[int], inside: Collection[int] = ()
                 ) -> dict[str, list[Escaped]]:
    """Per member name, the live processes among ``pids`` that hold one of ``ends`` open
    for writing, started since the member's run began, but for those in the process groups
    ``inside``: what a member started that left both its group and its environment
    (``setsid env -i``) and still writes to its output. (Not a process forked from ours,
    a program's using the Python API: it holds our reading end.)

    Raises:
        OutOfDescriptors: the pass could not be made, or not to its end.
    """
    found: dict[str, list[Escaped]] = {}
    oldest = min((end.since for end in ends.values()), default=0)
    with _descriptors():
        for pid in pids:
            fields = stat_fields(pid, strict=True)
            if (fields is None or exited(pid, fields) or int(fields[PGRP]) in inside
                    or int(fields[START_TIME]) < oldest):
                continue
            started = int(fields[START_TIME])
            name = _holding(pid, ends, started)
            # (Its start time again: the pid may have gone to a stranger meanwhile.)
            if name is not None and start_time(pid) == started:
                found.setdefault(name, []).append((pid, started))
    return found


def _holding(pid: int, ends: Ends, started: int) -> str | None:
    """The member whose output (one of ``ends``) process ``pid``, started at ``started``,
    holds to write to, if it holds one."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError as exc:  # (gone, or not ours to read)
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            raise
        return None
    for fd in fds:
        path = f"/proc/{pid}/fd/{fd}"
        try:
            end = ends.get(os.readlink(path))
            if end is None or started < end.since:
                continue
            if end.device is not None:
                found = os.stat(path)
                if (found.st_dev, found.st_rdev) != end.device:
                    continue
            if _for_writing(pid, fd):  # (not a person's cat of it, nor our reading end)
                return end.member
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                raise
    return None


def _for_writing(pid: int, fd: str) -> bool:
    """Whether ``pid`` holds its descriptor ``fd`` to write to (a pipe's writing end, a
    terminal open for writing)."""
    with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as info:
        flags = next((line.split()[1] for line in info if line.startswith("flags:")), "0")
    return int(flags, 8) & os.O_ACCMODE != os.O_RDONLY


def carrying(run_id: str, pids: Iterable[int], *, before: Unsettled | None = None
             ) -> tuple[list[tuple[int, str]], Unsettled]:
    """The live processes among ``pids`` whose environment carries ``run_id``, each with
    the member name it carries too ("" for none): what a run left running; and those in
    the midst of ``exec()``, to read again (``before``: as for :func:`find_escaped`).

    Raises:
        OutOfDescriptors: the pass could not be made, or not to its end.
    """
    token = f"PIPEPLEX_RUN_ID={run_id}".encode()
    found = []
    in_exec: Unsettled = {}
    with _descriptors():
        for pid in pids:
            try:
                environ = _environ(pid, before)
            except _InExec as exc:
                in_exec[pid] = exc.begins
                continue
            if environ is None or token not in environ or start_time(pid) is None:
                continue
            variables = environ.split(b"\0")
            if token in variables:
                name = next((v[len(b"PIPEPLEX_NAME="):] for v in variables
                             if v.startswith(b"PIPEPLEX_NAME=")), b"")
                found.append((pid, name.decode("utf-8", "replace")))
    return found, in_exec


async def look_through(pids: list[int],
                       look: Callable[[list[int], Unsettled | None], Unsettled]) -> None:
    """``look`` over ``pids`` a slice at a time, the event loop running in between; then,
    every :data:`EXEC_AGAIN_AFTER` for :data:`EXEC_PATIENCE` at most, over those it found
    in the midst of ``exec()`` (which it returns), with what it found of them (None in the
    first pass).

    Raises:
        OutOfDescriptors: from ``look``.
    """
    loop = asyncio.get_running_loop()
    deadline: float | None = None
    before: Unsettled | None = None
    while pids:
        in_exec: Unsettled = {}
        for start in range(0, len(pids), SEARCH_SLICE):
            if start:
                await asyncio.sleep(0)
            in_exec.update(look(pids[start:start + SEARCH_SLICE], before))
        if deadline is None:
            deadline = loop.time() + EXEC_PATIENCE
        if not in_exec or loop.time() >= deadline:
            return
        await asyncio.sleep(EXEC_AGAIN_AFTER)
        pids, before = list(in_exec), in_exec


def send(processes: Iterable[Escaped], signals: Iterable[int]) -> tuple[list[Escaped], bool]:
    """Send ``signals`` to each of ``processes`` still alive: those reached, and whether
    all could be tried (False: pipeplex ran out of descriptors on the way)."""
    signals = tuple(signals)
    reached: list[Escaped] = []
    for process in processes:
        try:
            fd = _open(process)
        except OutOfDescriptors:
            return reached, False
        if fd is None:
            continue
        try:
            for sig in signals:
                signal.pidfd_send_signal(fd, sig)
        except ProcessLookupError:  # gone already
            pass
        except PermissionError:  # it runs as another user: not reached (the caller says so)
            continue
        finally:
            os.close(fd)
        reached.append(process)
    return reached, True


def hold(processes: Iterable[Escaped], limit: int
         ) -> tuple[list[tuple[Escaped, int]], list[Escaped]]:
    """At most ``limit`` of ``processes`` that are still alive, each with a pidfd (which
    the caller closes), to wait for; and the others, not looked at yet (wait for them next).

    Raises:
        OutOfDescriptors: no pidfd could be opened (none is held then).
    """
    held: list[tuple[Escaped, int]] = []
    rest: list[Escaped] = []
    try:
        for process in processes:
            if len(held) == limit:
                rest.append(process)
                continue
            fd = _open(process)
            if fd is not None:
                held.append((process, fd))
    except OutOfDescriptors:
        for _, fd in held:
            os.close(fd)
        raise
    return held, rest


def _open(process: Escaped) -> int | None:
    """A pidfd of ``process`` if it is still that process and alive; else None."""
    pid, started = process
    with _descriptors():
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return None
        try:
            same = start_time(pid) == started  # (the pid may have gone to a stranger)
        except BaseException:
            os.close(fd)
            raise
    if not same:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def _descriptors() -> Iterator[None]:
    """Out of descriptors (EMFILE, ENFILE) becomes :class:`OutOfDescriptors`."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            raise OutOfDescriptors from None
        raise


READ_AT_ONCE = 1 << 16
"""Bytes of an environment read in one go. The kernel reads the process's memory once per
read: one that the process's ``exec()`` interrupts between two reads ends short of the
token (which comes last: see :func:`pipeplex.participants._spawn.run_environment`)."""


def _environ(pid: int, before: Unsettled | None = None) -> bytes | None:
    """``/proc/PID/environ``; None if the process is gone or not ours to read. Of a process
    whose main thread has ended (its entry then reads empty, or fails, by the kernel's
    version and who reads it), read through a thread that runs on.

    An empty one, or one read in pieces and cut short, may be a process in the midst of
    ``exec()``: its environment's place in memory (``/proc/PID/stat``) is not set yet (0),
    or is set and empty for the instant the kernel writes the pointers to it (that of a
    process run with none, ``env -i``, is set and empty for good), or the read took the
    memory it had before, gone since. Then it is read again after the pass (``before``
    says where its environment began then): an empty place where it was is taken as it
    is. (One that stays cut short, its memory unmapped under it, is read again until the
    look's patience ends.)

    Raises:
        _InExec: it is, or may be, in the midst of ``exec()``.
        OSError: out of descriptors (EMFILE, ENFILE).
    """
    data = _read(f"/proc/{pid}/environ")
    if data and len(data) < READ_AT_ONCE:
        return data
    fields = stat_fields(pid, strict=True)
    if fields is None:
        return data
    if not data and fields[STATE] == b"Z" and (thread := running_thread(pid)) is not None:
        return _read(f"/proc/{pid}/task/{thread}/environ")
    if data is None or len(fields) <= ENV_END or fields[STATE] in GONE \
            or int(fields[FLAGS]) & (PF_KTHREAD | PF_EXITING):
        return data
    begins, ends = int(fields[ENV_START]), int(fields[ENV_END])
    if ends != 0 and len(data) == ends - begins \
            and (data or (before is not None and before.get(pid) == begins)):
        return data  # (a big one, whole; or an empty place, seen twice)
    raise _InExec(begins)


def _read(path: str) -> bytes | None:
    """The bytes of ``path`` (in one read up to :data:`READ_AT_ONCE`); None where it cannot
    be read (ESRCH: empty, as the kernel says of a process whose main thread has ended).

    Raises:
        OSError: out of descriptors (EMFILE, ENFILE).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            raise
        return b"" if exc.errno == errno.ESRCH else None
    try:
        pieces = [os.read(fd, READ_AT_ONCE)]
        while len(pieces[-1]) == READ_AT_ONCE:
            pieces.append(os.read(fd, READ_AT_ONCE))
    except OSError as exc:
        return b"" if exc.errno == errno.ESRCH else None
    finally:
        os.close(fd)
    return b"".join(pieces)


def _name_in(pid: int, token: bytes, wanted: dict[bytes, str], before: Unsettled | None
             ) -> str | None:
    """The member name that ``pid``'s environment carries with ``token``, if any.

    Raises:
        _InExec: see :func:`_environ`.
    """
    environ = _environ(pid, before)
    if environ is None or token not in environ:  # (most processes: no split needed)
        return None
    variables = environ.split(b"\0")
    if token not in variables:
        return None
    return next((wanted[v] for v in variables if v in wanted), None)


def start_time(pid: int) -> int | None:
    """When ``pid`` started, or None if it is gone or a zombie.

    Raises:
        OSError: out of descriptors (EMFILE, ENFILE).
    """
    fields = stat_fields(pid, strict=True)
    if fields is None or exited(pid, fields):
        return None
    return int(fields[START_TIME])
