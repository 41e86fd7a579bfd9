"""Members of a cast: a local child process each, its start and its streams, and the
guardian that stops them all should pipeplex die."""

from __future__ import annotations

from .guardian import Guardian
from .process import Process, ProcessState

__all__ = ("Guardian", "Process", "ProcessState")
