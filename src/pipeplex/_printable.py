"""Members' text, and file names, made safe to show: on its own, so that a client command
loads no more."""

from __future__ import annotations

import re

__all__ = ("printable", "quoted")

# Control characters other than \n and \t: C0, DEL and C1 (U+009B is a CSI on some terminals);
# and the bytes that are not UTF-8 in a file name (surrogateescape), which stdout would write
# as they are (0x9b among them).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\udc80-\udcff]")


def printable(text: str) -> str:
    """``text`` with control characters other than newline and tab shown as ``\\xNN``: a
    member's bytes, or a file's name, in a message or a report must not move the reader's
    cursor or clear the screen. A byte that is not UTF-8, as ``os.fsdecode`` keeps it (a
    lone surrogate), is shown as ``\\xNN`` too."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code - 0xDC00 if code >= 0xDC00 else code:02x}"


_SURROGATE_SHOWN = re.compile(r"(\\+)udc([89a-f][0-9a-f])")
"""In a repr: an escape such as ``\\udcff``, with the backslashes before it (an even number
of them is a backslash of the text itself, followed by the letters ``udc..``)."""


def quoted(text: str) -> str:
    """``repr(text)``, with a byte that is not UTF-8 (kept by ``os.fsdecode`` as a lone
    surrogate) shown as ``\\xff`` rather than ``\\udcff``: a name as somebody typed it."""
    shown = repr(text)
    if "\\udc" not in shown:
        return shown
    return _SURROGATE_SHOWN.sub(_as_byte, shown)


def _as_byte(match: re.Match[str]) -> str:
    slashes = match[1]
    if len(slashes) % 2 == 0:  # the text's own backslashes, then plain letters
        return match[0]
    return f"{slashes[:-1]}\\x{match[2]}"
