"""A process's line of ``/proc/PID/stat``, read by the name of its fields rather than by
counted indexes (the guardian keeps a copy of its own: it loads nothing of pipeplex)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator

__all__ = ("ENV_END", "ENV_START", "FLAGS", "GONE", "PF_EXITING", "PF_FORKNOEXEC", "PF_KTHREAD",
           "PGRP", "PPID", "START_TIME", "STATE", "all_stats", "child_flags", "exited",
           "proc_is_ours", "running_thread", "signal_pending", "stat_fields", "suspended")

STATE, PPID, PGRP, FLAGS, START_TIME, ENV_START, ENV_END = 0, 1, 2, 6, 19, 47, 48
"""Indexes in :func:`stat_fields`, which begin after ``pid (comm)``: ``proc(5)``'s fields
3 (state), 4 (ppid), 5 (pgrp), 9 (flags), 22 (starttime), 50 and 51 (env_start, env_end:
where the environment lies in memory; 0 where there is no memory, or none set up yet)."""

GONE = (b"Z", b"X")
"""The states of a process that has exited: a zombie, or dead. But a process shows Z as
soon as its main thread has ended, while its other threads may run on: see :func:`exited`."""

PF_EXITING = 0x4
PF_FORKNOEXEC = 0x40
PF_KTHREAD = 0x200000
"""Linux's flags of a task (:data:`FLAGS`): it is exiting; it has not exec'd since its
fork; it is one of the kernel's threads."""


_OURS: tuple[int, bool] | None = None
"""What :func:`proc_is_ours` found, and for which process (a child, forked after an
``unshare`` of the PID namespace, is in another)."""


def proc_is_ours() -> bool:
    """Whether ``/proc`` shows this PID namespace's processes: not where it is missing (a
    chroot), nor in a namespace made without a ``/proc`` of its own (``unshare -p`` without
    ``--mount-proc``), where ``/proc/N`` is some other process than this namespace's N, and
    a look there would signal strangers. Where it is not, nothing is read there (as where
    there is none): pipeplex keeps to the members' process groups."""
    global _OURS
    pid = os.getpid()
    if _OURS is None or _OURS[0] != pid:
        try:
            ours = os.readlink("/proc/self") == str(pid)
        except OSError:
            ours = False
        _OURS = (pid, ours)
    return _OURS[1]


def stat_fields(pid: int | str, *, strict: bool = False) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after ``pid (comm)`` (whose name may hold spaces
    and parentheses); None if the process is gone, or its entry cannot be read.

    Raises:
        OSError: with ``strict``, out of descriptors (EMFILE, ENFILE), which a caller that
            must not take it for a process gone lets through.
    """
    if not proc_is_ours():
        return None
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        if strict and exc.errno in (errno.EMFILE, errno.ENFILE):
            raise
        return None
    try:
        stat = os.read(fd, 4096)
    except OSError:  # (gone as it was read)
        return None
    finally:
        os.close(fd)
    end = stat.rfind(b")")
    return stat[end + 2:].split() if end >= 0 else None


def exited(pid: int | str, fields: list[bytes]) -> bool:
    """Whether the process ``pid`` (its :func:`stat_fields`) has exited: dead, or a zombie
    with no thread left. Linux shows a process Z once its main thread has ended, while its
    other threads run on (a program whose ``main`` ends with ``pthread_exit``): that one
    lives, takes signals, and must be stopped like any other."""
    state = fields[STATE]
    return state == b"X" or (state == b"Z" and running_thread(pid) is None)


def running_thread(pid: int | str) -> int | None:
    """A thread of ``pid`` other than its main one, if there is one (the main one has
    ended: its /proc entry no longer shows the environment or the descriptors, which the
    other threads share); None if there is none."""
    if not proc_is_ours():
        return None
    try:
        with os.scandir(f"/proc/{pid}/task") as tasks:
            return next((int(task.name) for task in tasks if task.name != str(pid)), None)
    except OSError:
        return None


def suspended(pid: int) -> bool:
    """Whether ``pid`` is stopped by a signal (SIGSTOP, SIGTSTP...) until a SIGCONT."""
    fields = stat_fields(pid)
    return fields is not None and fields[STATE] == b"T"  # (not "t": held by a debugger)


def all_stats() -> Iterator[tuple[int, list[bytes]]]:
    """Every process's pid and :func:`stat_fields`, in one pass over /proc (those that exit
    meanwhile left out)."""
    if not proc_is_ours():
        return
    with os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit() and (fields := stat_fields(entry.name)) is not None:
                yield int(entry.name), fields


def child_flags(pid: int) -> int | None:
    """Linux's flags of our child ``pid``; None if it is gone, or if that entry is not our
    child's (in a PID namespace whose /proc is another's, the same number names some other
    process)."""
    fields = stat_fields(pid)
    if fields is None or int(fields[PPID]) != os.getpid():
        return None
    return int(fields[FLAGS])


def signal_ignored(pid: int, sig: int) -> bool:
    """Whether ``pid`` ignores ``sig``. (Not one that blocks it: a program that takes its
    signals in a thread of its own, or through a signalfd, blocks them in its main thread,
    which is all ``/proc/PID/status`` shows, and ends well on them.)"""
    return _status_has(pid, sig, (b"SigIgn:",))


def signal_pending(pid: int, sig: int) -> bool:
    """Whether ``sig`` waits to be taken by ``pid`` (``/proc/PID/status``: sent to it, or to
    its group, and not yet delivered: it is stopped, or has not run since)."""
    return _status_has(pid, sig, (b"SigPnd:", b"ShdPnd:"))


def _status_has(pid: int, sig: int, masks: tuple[bytes, ...]) -> bool:
    """Whether ``sig`` is in one of the signal masks of ``/proc/PID/status`` named."""
    if not proc_is_ours():
        return False
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            lines = status.read().splitlines()
    except OSError:
        return False
    bit = 1 << (sig - 1)
    return any(int(line.split()[1], 16) & bit for line in lines if line.startswith(masks))
