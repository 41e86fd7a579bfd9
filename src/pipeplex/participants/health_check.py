"""One run of a member's health check (``ready_cmd``), for the engine to repeat until it
exits with 0; or of the command that asks it to stop (``stop_cmd``), for its stop.

A run is a child of pipeplex in a session of its own, told to the guardian as a member is
(should pipeplex be killed, the check dies with it), reading nothing (EOF), its output kept
(the end of it, for the message if the member never gets ready) and never shown. When the
run ends, whatever it left in its group is killed. What it started outside its group (a
``setsid`` daemon; it carries the member's environment) is the member's: it is stopped with
the member, at its next stop (a restart's too), not as the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Mapping, MutableSet
from typing import TYPE_CHECKING

from ..errors import SpawnError
from ._group import wait_group_gone
from ._spawn import bad_text, find_executable, short_of, spawn, spawn_reason

if TYPE_CHECKING:
    from .guardian import Guardian

__all__ = ("KEEP", "last_lines", "run_check")

KEEP = 4096
"""Bytes of a run's output kept: its end."""

GROUP_GONE_WITHIN = 1.0
"""Seconds a cancelled run's task waits for its group, killed, to be gone."""


async def run_check(name: str, argv: list[str], command: str, output: bytearray, *,
                    env: Mapping[str, str], cwd: str | None, guardian: Guardian | None,
                    running: MutableSet[int], began: Callable[[], None] | None = None) -> int:
    """Run ``argv`` (``command``, the member ``name``'s ``ready_cmd`` or ``stop_cmd``) once;
    its return code (negative: killed by that signal). The end of what it writes is kept in
    ``output`` (the caller's: a run cancelled still said something). ``running`` holds its
    pid while it is pipeplex's child, for whoever reaps orphans to leave it alone.
    ``began`` is called once it runs (not for one that could not start).

    Cancelled, the run is killed (its whole group) and reaped once it is gone.

    Raises:
        SpawnError: the command cannot be started (not found, not executable, no cwd), or
            pipeplex is out of descriptors.
    """
    loop = asyncio.get_running_loop()
    try:
        read_end, write_end = os.pipe()
    except OSError as exc:
        raise SpawnError(name, command, "cannot open its output: "
                         f"{short_of(exc) or exc.strerror}") from None
    try:
        # An empty pipe for stdin (EOF at once), not /dev/null: should pipeplex die while
        # the run is spawned, the guardian finds it by its streams, and every process has
        # /dev/null somewhere.
        stdin, nothing = os.pipe()
    except OSError as exc:
        os.close(read_end)
        os.close(write_end)
        raise SpawnError(name, command, "cannot open its stdin: "
                         f"{short_of(exc) or exc.strerror}") from None
    os.close(nothing)
    executable = find_executable(argv[0], env)
    try:
        if guardian is not None:
            guardian.spawning((stdin, write_end, write_end))
        child = spawn(argv, full_terminal=False, executable=executable, stdin=stdin,
                      stdout=write_end, stderr=write_end, cwd=cwd, env=env)
    except (OSError, ValueError) as exc:
        os.close(read_end)
        if guardian is not None:
            guardian.spawn_failed()
        reason = (spawn_reason(exc, argv, executable, cwd) if isinstance(exc, OSError)
                  else bad_text(exc))
        raise SpawnError(name, command, reason) from None
    finally:
        os.close(stdin)
        os.close(write_end)
    pid = child.pid
    running.add(pid)
    if guardian is not None:
        guardian.register(pid)
    try:
        pidfd = os.pidfd_open(pid)
    except OSError as exc:  # (out of descriptors)
        os.close(read_end)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        child.wait()
        running.discard(pid)
        if guardian is not None:
            guardian.unregister(pid)
        raise SpawnError(name, command, f"cannot watch it: {exc.strerror}") from None
    if began is not None:
        began()
    exited: asyncio.Future[None] = loop.create_future()
    os.set_blocking(read_end, False)

    def read() -> None:
        while True:
            try:
                data = os.read(read_end, 65536)
            except BlockingIOError:
                return
            if not data:  # (its end: no process holds the pipe any more)
                loop.remove_reader(read_end)
                return
            output.extend(data)
            del output[:-KEEP]

    def ended() -> None:
        loop.remove_reader(pidfd)
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(read_end, read)
    loop.add_reader(pidfd, ended)
    try:
        await exited
        read()  # what it wrote last (a process it left may hold the pipe: not waited for)
    finally:
        loop.remove_reader(read_end)
        os.close(read_end)
        # The run itself if it was cancelled, else what it left in its group. Its pid names
        # the group safely until it is reaped (a zombie's pid is not given out again).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)

        def reap() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            child.wait()
            running.discard(pid)
            if guardian is not None:
                guardian.unregister(pid)

        if exited.done() and not exited.cancelled():  # (cancelled with the task: not ended)
            reap()
        else:  # (killed just now: reaped as it goes)
            loop.add_reader(pidfd, reap)
            # The task ends once the run's group is gone (a second or so at most, as they
            # were killed): a process of it seen later would be taken for one the member
            # left outside its own group, which a stop looks for, and blamed on it.
            with contextlib.suppress(asyncio.CancelledError):
                await wait_group_gone(pid, within=GROUP_GONE_WITHIN)
    assert child.returncode is not None  # (reaped above)
    return child.returncode


def last_lines(output: bytes | bytearray) -> list[str]:
    """The last lines a run wrote, as a message shows them (escapes gone, each printable,
    a long one cut at its start); none if it wrote nothing but blanks."""
    from .._plain_text import plain
    from .._printable import printable

    text = plain(output.decode("utf-8", "surrogateescape"))[0].strip()
    return [printable(line if len(line) <= 200 else "…" + line[-200:])
            for line in text.splitlines()[-3:]]
