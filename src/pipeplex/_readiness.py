"""Waiting for a member to be ready: a line matching its ``ready`` pattern, or an open port."""

from __future__ import annotations

import asyncio
import codecs
import re
from collections.abc import Callable

from ._events import Event, Output, Stream

__all__ = ("LineWatch", "port_accepts")

PORT_POLL = 0.05
MAX_PARTIAL = 64 * 1024


class LineWatch:
    """A sink that searches each line of one member's output for a pattern.

    Lines are matched whole (``^`` and ``$`` anchor at the line), and an unfinished line
    is tried too, so a prompt without a newline can signal readiness. The cost is linear
    in the output: each byte is looked at once, plus the unfinished line on each piece.
    """

    def __init__(self, name: str, pattern: str, on_match: Callable[[re.Match[str]], None]) -> None:
        self.name = name
        self._regex = re.compile(pattern)
        self._on_match = on_match
        # Per stream: an unfinished line, and a decoder that keeps a split character.
        self._partial: dict[Stream, str] = {"stdout": "", "stderr": ""}
        self._decoders = {
            stream: codecs.getincrementaldecoder("utf-8")("replace") for stream in self._partial
        }
        self.done = False

    def __call__(self, event: Event) -> None:
        if self.done or not isinstance(event, Output) or event.name != self.name:
            return
        stream = event.stream
        text = self._partial[stream] + self._decoders[stream].decode(event.data)
        lines = text.split("\n")
        partial = lines.pop()[-MAX_PARTIAL:]
        self._partial[stream] = partial
        for line in lines:
            if self._try(line.removesuffix("\r")):
                return
        if partial:
            self._try(partial)

    def _try(self, line: str) -> bool:
        match = self._regex.search(line)
        if match:
            self.done = True
            self._on_match(match)
        return match is not None


async def port_accepts(port: int, host: str = "127.0.0.1") -> None:
    """Return once a TCP connection to ``host:port`` succeeds (poll until cancelled)."""
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(PORT_POLL)
            continue
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return
