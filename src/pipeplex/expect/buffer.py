"""A member's output as text, with a cursor, searched in time linear in the output.

pexpect's model: each expectation searches from the cursor; on a match the cursor moves past
it, and ``before`` (what came between), ``after`` (the matched text) and ``match`` are kept.
Patterns are regular expressions in which ``^`` and ``$`` match at line boundaries; a line is
what the member wrote up to ``\\n``, without a ``\\r`` before it.

Searching again from the cursor every time a few bytes arrive would cost O(n²) on a big
output. Instead each search starts where the previous one could no longer match: at the start
of the line that was still unfinished, less a look-behind of ``LOOKBEHIND`` characters for
matches that span lines. A match that spans more than that is not found: a documented limit,
like pexpect's ``searchwindowsize``, that keeps the cost linear however long the wait. Text
before the cursor is dropped, and so is unmatched text beyond ``MAX_BEFORE``, so memory stays
bounded too.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = (
    "EOF",
    "LOOKBEHIND",
    "MAX_BEFORE",
    "TIMEOUT",
    "Found",
    "OutputBuffer",
    "Pattern",
    "compile_pattern",
)

LOOKBEHIND = 4096
MAX_BEFORE = 8 * 1024 * 1024


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"pipeplex.{self.name}"


EOF: Final = _Sentinel("EOF")
"""As a pattern: matches when the member has exited and its output is drained."""
TIMEOUT: Final = _Sentinel("TIMEOUT")
"""As a pattern: matches when the expectation's time is up, instead of raising."""

Pattern = str | re.Pattern[str] | _Sentinel


def compile_pattern(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    """A regex with ``^``/``$`` at line boundaries (unless given precompiled)."""
    if isinstance(pattern, re.Pattern):
        return pattern
    return re.compile(pattern, re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Found:
    """A successful search: which pattern, its match, and the text before it."""

    index: int
    match: re.Match[str]
    before: str


class OutputBuffer:
    """One member's decoded output (one stream, or both interleaved) and its cursor."""

    def __init__(self) -> None:
        self._text = ""
        self._decoders: dict[str, codecs.IncrementalDecoder] = {}
        self._pending_cr: dict[str, bool] = {}
        self._scan_from = 0
        self.dropped = 0
        """Characters of unmatched output dropped to keep memory bounded."""
        self.eof = False

    def __len__(self) -> int:
        return len(self._text)

    @property
    def text(self) -> str:
        """What is after the cursor."""
        return self._text

    def feed(self, data: bytes, stream: str = "stdout") -> None:
        decoder = self._decoders.get(stream)
        if decoder is None:
            decoder = self._decoders[stream] = codecs.getincrementaldecoder("utf-8")("replace")
        text = decoder.decode(data)
        # "\r\n" ends a line like "\n"; a "\r" at the end of a chunk may be the first half.
        if self._pending_cr.pop(stream, False):
            text = "\r" + text
        if text.endswith("\r"):
            self._pending_cr[stream] = True
            text = text[:-1]
        if "\r\n" in text:
            text = text.replace("\r\n", "\n")
        self._text += text
        if len(self._text) > MAX_BEFORE + LOOKBEHIND:
            cut = len(self._text) - MAX_BEFORE
            self._text = self._text[cut:]
            self.dropped += cut
            self._scan_from = max(0, self._scan_from - cut)

    def search(self, patterns: Sequence[re.Pattern[str]]) -> Found | None:
        """Search from the cursor; on a match, advance the cursor past it.

        The earliest match in the output wins; between matches at the same place, the
        pattern listed first (as in pexpect).
        """
        start = max(0, self._scan_from - LOOKBEHIND)
        best: tuple[int, int, re.Match[str]] | None = None
        for index, regex in enumerate(patterns):
            match = regex.search(self._text, start)
            if match and (best is None or match.start() < best[0]):
                best = (match.start(), index, match)
        if best is None:
            # Next time, start at the beginning of the line still being written.
            self._scan_from = self._text.rfind("\n") + 1
            return None
        _, index, match = best
        before = self._text[: match.start()]
        self._text = self._text[match.end() :]
        self._scan_from = 0
        return Found(index, match, before)
