"""Sinks that turn events into something to read: today the merged terminal stream."""

from __future__ import annotations

from .render import ColorMode, Renderer, use_color
from .terminal import TerminalSink, Writer

__all__ = ("ColorMode", "Renderer", "TerminalSink", "Writer", "use_color")
