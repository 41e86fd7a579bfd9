"""A run's process keeps big buffers on its heap (glibc): a flood's reads and writes then
cost no mapping, page faults and unmapping each."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys

class Info(ctypes.Structure):  # struct mallinfo2 (glibc 2.33)
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
if not hasattr(libc, "mallinfo2"):
    sys.exit(3)
libc.mallinfo2.restype = Info
if sys.argv[1] == "kept":
    from pipeplex._allocator import keep_big_buffers
    keep_big_buffers()
mapped = libc.mallinfo2().hblks
chunk = bytes(1 << 20)  # a 256 KiB read would do; a pass of the loop joins several
mapping = libc.mallinfo2().hblks - mapped
del chunk
kept = libc.mallinfo2().keepcost >= 1 << 20  # (free at the heap's top, not given back)
print(mapping, int(kept))
"""


@pytest.mark.parametrize(("how", "seen"), [("default", "1 0"), ("kept", "0 1")])
def test_a_big_buffer_comes_from_the_heap_and_stays_once_kept(how: str, seen: str) -> None:
    """By default a 1 MiB block is a mapping of its own, unmapped when freed; kept, it
    comes from the heap and stays there, free, for the next one."""
    env = {k: v for k, v in os.environ.items()  # (malloc's own settings, if any, out)
           if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")}
    probe = subprocess.run([sys.executable, "-c", PROBE, how], capture_output=True,
                           text=True, timeout=60, env=env)
    if probe.returncode == 3:
        pytest.skip("not glibc 2.33 or newer (no mallinfo2)")
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == seen


WIRING = """
import sys
import pipeplex._allocator as allocator, pipeplex._guardian_process as guardian, pipeplex.cli as cli
kept = []
allocator.keep_big_buffers = lambda: kept.append(True)
guardian.start_early_guardian = lambda: None
cli.main = lambda: None
from pipeplex._entry import main
sys.argv = ["pipeplex", sys.argv[1]]
main()
print(len(kept))
"""


@pytest.mark.parametrize(("command", "kept"), [
    ("run", "1"), ("demo", "1"), ("test", "1"), ("attach", "1"), ("send", "0"), ("status", "0")])
def test_the_commands_that_merge_output_keep_big_buffers(command: str, kept: str) -> None:
    probe = subprocess.run([sys.executable, "-c", WIRING, command], capture_output=True,
                           text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == kept
