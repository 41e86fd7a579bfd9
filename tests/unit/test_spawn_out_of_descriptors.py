"""A member whose pipes cannot be opened (pipeplex is out of descriptors) fails to start
with a SpawnError that says so, and leaks none of the descriptors it did open."""

from __future__ import annotations

import subprocess
import sys

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
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    print("leaked:", sorted(set(os.listdir("/proc/self/fd")) - set(before)))

asyncio.run(main())
"""


def test_no_descriptor_for_a_members_pipes_is_a_spawn_error() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert "SpawnError: m: cannot start 'true'" in result.stdout
    assert "cannot open its stdin and output: Too many open files" in result.stdout
    assert "leaked: []" in result.stdout
