"""Members of a cast. Today a local child process; the interface leaves room for others."""

from __future__ import annotations

from .guardian import Guardian
from .process import Process, ProcessState

__all__ = ("Guardian", "Process", "ProcessState")
