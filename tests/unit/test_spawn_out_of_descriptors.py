"""A member whose pipes cannot be opened (pipeplex is out of descriptors) fails to start
with a SpawnError that says so, and leaks none of the descriptors it did open."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys

import pytest

from pipeplex.participants._spawn import spawn_reason, spawn_status

SCRIPT = r"""
import asyncio, os, resource
from pipeplex import Bus, ProcSpec
from pipeplex.errors import SpawnError
from pipeplex.participants.process import Process

async def main():
    member = Process(ProcSpec("m", ("true",)), Bus(), on_crash=print)
    before = sorted(os.listdir("/proc/self/fd"))  # (listdir's own descriptor is gone after)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    top = max(int(fd) for fd in before)
    resource.setrlimit(resource.RLIMIT_NOFILE, (top + 3, hard))  # room for one pipe only
    try:
        await member.start()
    except SpawnError as exc:
        print("SpawnError:", exc)
        print("status:", exc.status)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    print("leaked:", sorted(set(os.listdir("/proc/self/fd")) - set(before)))

asyncio.run(main())
"""


def test_no_descriptor_for_a_members_pipes_is_a_spawn_error() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert "SpawnError: m: cannot start 'true'" in result.stdout
    # What ran out, the limit, and how to raise it; and not "command not found"'s 127.
    assert re.search(r"cannot open its stdin and output: pipeplex is out of file descriptors "
                     r"\(its limit is \d+, a few for each member\); raise it with ulimit -n "
                     r"\(up to \d+ without root\), or run fewer members", result.stdout), \
        result.stdout
    assert "status: 1" in result.stdout
    assert "leaked: []" in result.stdout


@pytest.mark.parametrize(("code", "said"), [
    (errno.EAGAIN, "no process could be created: this user's limit on processes (ulimit -u: "),
    (errno.ENFILE, "the system is out of file descriptors (fs.file-max)"),
    (errno.ENOMEM, "the system is out of memory for a new process"),
])
def test_a_spawn_short_of_processes_or_memory_names_what_ran_out(code: int, said: str) -> None:
    """fork's EAGAIN (a limit on processes, which root here is not held to) said only
    "Resource temporarily unavailable", and counted 127, "command not found"."""
    failed = OSError(code, os.strerror(code))
    assert spawn_reason(failed, ["sleep", "60"]).startswith(said)
    assert spawn_status(failed) == 1
