"""How a run's process allocates: big buffers kept for the next one, not mapped and
unmapped each time.

A flood is read 256 KiB at a time, and each read, its lines with their prefixes and the
batch written out are new objects of about that size. glibc's malloc serves such sizes
with a fresh mapping (from 128 KiB up, a threshold that grows only as such blocks are
freed), and gives the top of its heap back to the system past its trim threshold: either
way, each of those objects cost a mapping, a page fault per 4 KiB and an unmapping, more
than the copy it holds (the rendering of one 256 KiB read: 200 µs, against 56 µs with
memory kept). Both thresholds raised, freed memory stays for the next buffer. The price:
after a flood the process keeps what the flood took at its peak (3-10 MiB more than it
would have given back, measured), which the next flood reuses rather than grows.
"""

from __future__ import annotations

__all__ = ("keep_big_buffers",)

MMAP_THRESHOLD = 8 << 20
"""Blocks below this come from the heap (a pass of the loop may join sixteen 256 KiB reads)."""
TRIM_THRESHOLD = 32 << 20
"""Free memory at the top of the heap kept, up to this."""

_M_TRIM_THRESHOLD = -1  # (malloc.h)
_M_MMAP_THRESHOLD = -3


def keep_big_buffers() -> None:
    """Raise glibc's thresholds for this process (nothing elsewhere: musl has no mallopt)."""
    import ctypes  # (loaded by a run anyway, for its prctl calls)

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
