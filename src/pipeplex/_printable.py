"""Members' text made safe to show: on its own, so that a client command loads no more."""

from __future__ import annotations

import re

__all__ = ("printable",)

# Control characters other than \n and \t: C0, DEL and C1 (U+009B is a CSI on some terminals).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with control characters other than newline and tab shown as ``\\xNN``: a
    member's bytes in a message or a report must not move the reader's cursor or clear the
    screen."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)
