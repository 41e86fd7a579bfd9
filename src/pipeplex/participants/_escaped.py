"""Processes a member started that left its process group, found by their environment.

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
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Collection, Iterable, Iterator

from ._proc import PGRP, START_TIME, STATE, exited, proc_is_ours, running_thread, stat_fields

__all__ = ("SEARCH_SLICE", "Escaped", "OutOfDescriptors", "carrying", "find_escaped", "hold",
           "proc_pids", "send", "start_time")

Escaped = tuple[int, int]
"""A process by its pid and its start time (clock ticks after boot): who it is, even once
its pid goes to another process."""


class OutOfDescriptors(Exception):
    """pipeplex has no file descriptor left to look in /proc or to open a pidfd."""


SEARCH_SLICE = 128
"""Processes looked at between two returns to the event loop: a machine may run thousands
(2,000 took 46 ms to look through here), and the members' output must not wait that long."""


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
                 inside: Collection[int] = ()) -> dict[str, list[Escaped]]:
    """Per member name, the live processes among ``pids`` whose environment carries
    ``run_id`` and that name, but for those in the process groups ``inside`` (running
    members': theirs are not escaped).

    Raises:
        OutOfDescriptors: the pass could not be made, or not to its end.
    """
    token = f"PIPEPLEX_RUN_ID={run_id}".encode()
    wanted = {f"PIPEPLEX_NAME={name}".encode(): name for name in names}
    found: dict[str, list[Escaped]] = {}
    with _descriptors():
        for pid in pids:
            if _name_in(pid, token, wanted) is None:
                continue
            # Its start time, then its environment again, then its start time again: the
            # environment read between two equal start times is that process's (the pid
            # may go to a stranger between any two reads).
            fields = stat_fields(pid, strict=True)
            if fields is None or exited(pid, fields) or int(fields[PGRP]) in inside:
                continue
            started = int(fields[START_TIME])
            name = _name_in(pid, token, wanted)
            if started is not None and name is not None and start_time(pid) == started:
                found.setdefault(name, []).append((pid, started))
    return found


def carrying(run_id: str, pids: Iterable[int]) -> list[tuple[int, str]]:
    """The live processes among ``pids`` whose environment carries ``run_id``, each with
    the member name it carries too ("" for none): what a run left running.

    Raises:
        OutOfDescriptors: the pass could not be made, or not to its end.
    """
    token = f"PIPEPLEX_RUN_ID={run_id}".encode()
    found = []
    with _descriptors():
        for pid in pids:
            environ = _read(pid, "environ")
            if environ is None or token not in environ or start_time(pid) is None:
                continue
            variables = environ.split(b"\0")
            if token in variables:
                name = next((v[len(b"PIPEPLEX_NAME="):] for v in variables
                             if v.startswith(b"PIPEPLEX_NAME=")), b"")
                found.append((pid, name.decode("utf-8", "replace")))
    return found


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


def _read(pid: int, what: str) -> bytes | None:
    """``/proc/PID/WHAT``; None if the process is gone or not ours to read. Of a process
    whose main thread has ended (its entry then reads empty, or fails with ESRCH, by the
    kernel's version), read through a thread that runs on.

    Raises:
        OSError: out of descriptors (EMFILE, ENFILE).
    """
    data: bytes | None = None
    try:
        with open(f"/proc/{pid}/{what}", "rb") as f:
            data = f.read()
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            raise
        if exc.errno != errno.ESRCH:
            return None
    if data:
        return data
    fields = stat_fields(pid, strict=True)
    thread = running_thread(pid) if fields is not None and fields[STATE] == b"Z" else None
    if thread is None:
        return data
    try:
        with open(f"/proc/{pid}/task/{thread}/{what}", "rb") as f:
            return f.read()
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            raise
        return None


def _name_in(pid: int, token: bytes, wanted: dict[bytes, str]) -> str | None:
    """The member name that ``pid``'s environment carries with ``token``, if any."""
    environ = _read(pid, "environ")
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
