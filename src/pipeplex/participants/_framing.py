"""Cut a member's byte stream into whole lines, cheaply and with bounded memory.

Work happens per read chunk, not per line: everything up to the chunk's last newline goes
out as one piece, so a flood of short lines costs one slice per read. What follows the last
newline waits for the rest of its line; it goes out anyway as a *partial* piece when it
grows past ``max_line`` (a 50 MB line never sits in memory whole), when the stream ends,
or when the owner's quiet timer decides it is a prompt.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

__all__ = ("MAX_LINE", "LineFramer")

MAX_LINE = 256 * 1024


def _utf8_cut(data: bytes, limit: int) -> int:
    """The largest cut at or below ``limit`` that does not split a UTF-8 sequence."""
    cut = limit
    # Step back over continuation bytes (0b10xxxxxx), at most 3, to a sequence start.
    while cut > limit - 3 and cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut if cut > 0 else limit


class LineFramer:
    """Splits one stream into line-aligned pieces and hands them to ``emit(data, partial)``."""

    __slots__ = ("_emit", "_max_line", "_tail", "last_data", "shown_at", "tail_since")

    def __init__(self, emit: Callable[[bytes, bool], None], *, max_line: int = MAX_LINE) -> None:
        self._emit = emit
        self._max_line = max_line
        self._tail = b""
        self.last_data = 0.0
        """Monotonic time of the last feed."""
        self.tail_since = 0.0
        """Monotonic time when the current unfinished line began."""
        self.shown_at: float | None = None
        """When :meth:`flush` last emitted a line unfinished, if no line end came since."""

    @property
    def pending(self) -> bool:
        """True while an unfinished line waits for its end."""
        return bool(self._tail)

    @property
    def tail(self) -> bytes:
        """The unfinished line that waits for its end."""
        return self._tail

    def feed(self, data: bytes) -> None:
        now = time.monotonic()
        self.last_data = now
        if self._tail:
            data = self._tail + data
            self._tail = b""
        else:
            self.tail_since = now
        first = data.find(b"\n")
        while first > self._max_line:  # (the line the tail began, longer than a piece)
            cut = _long_line_cut(data, self._max_line)
            self._emit(data[:cut], True)
            data = data[cut:]
            first -= cut
        end = data.rfind(b"\n") + 1
        if end == len(data):
            self.shown_at = None
            self._emit(data, False)
            return
        if end:
            self._emit(data[:end], False)
            data = data[end:]
            self.tail_since = now
            self.shown_at = None
        while len(data) > self._max_line:
            cut = _long_line_cut(data, self._max_line)
            self._emit(data[:cut], True)
            data = data[cut:]
        self._tail = data

    def starts_again(self) -> bool:
        """Whether the unfinished line starts with a carriage return: it writes over the
        one shown before it (a progress bar's next state)."""
        return self._tail[:1] == b"\r"

    def flush(self, *, whole_characters: bool = False) -> None:
        """Emit the unfinished line as a partial piece, if there is one.

        With ``whole_characters`` (a pause, not the end), the start of a UTF-8 character
        cut at the end stays for the rest of it: every reader of the pieces (the terminal,
        attach clients) decodes each on its own, and would show two broken halves. So does
        the start of an escape sequence (a colour cut by a pause would show as text).
        """
        tail = self._tail
        if not tail:
            return
        cut = _whole_start(tail) if whole_characters else len(tail)
        if cut:
            self._tail = tail[cut:]
            self.shown_at = time.monotonic()
            if self._tail:
                self.tail_since = self.shown_at  # (its line begins anew)
            self._emit(tail[:cut], True)


_CUT_ESCAPE = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*|[\]P^_X][^\x07\x1b\n]*\x1b?|[ -/]*)\Z")
"""An escape sequence that the data ends in the middle of (as in :mod:`.._plain_text`)."""
_ESCAPE_LOOKBACK = 256


def _whole_start(data: bytes) -> int:
    """Where what ``data`` ends with, cut short, begins (a character, or an escape sequence
    within its last 256 bytes), else ``len(data)``."""
    cut = _incomplete_character_start(data)
    if b"\x1b" in data[-_ESCAPE_LOOKBACK:]:
        escape = _CUT_ESCAPE.search(data, max(len(data) - _ESCAPE_LOOKBACK, 0))
        if escape is not None:
            cut = min(cut, escape.start())
    return cut


def _long_line_cut(data: bytes, limit: int) -> int:
    """Where to cut a line longer than ``limit``: at ``limit``, or before a UTF-8 character
    or an escape sequence (within its last 256 bytes) that the cut would split."""
    cut = _utf8_cut(data, limit)
    if b"\x1b" in data[max(cut - _ESCAPE_LOOKBACK, 0):cut]:
        escape = _CUT_ESCAPE.search(data, max(cut - _ESCAPE_LOOKBACK, 0), cut)
        if escape is not None and escape.start() > 0:
            cut = escape.start()
    return cut


def _incomplete_character_start(data: bytes) -> int:
    """Where a UTF-8 sequence that ``data`` ends before its end begins, else ``len(data)``."""
    start = len(data) - 1
    while start > len(data) - 4 and start > 0 and (data[start] & 0xC0) == 0x80:
        start -= 1
    lead = data[start]
    needed = 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else (
        4 if lead >> 3 == 0b11110 else 1)
    return start if len(data) - start < needed else len(data)
