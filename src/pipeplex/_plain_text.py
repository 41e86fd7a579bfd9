"""Members' output as a person reads it: terminal escape sequences taken out, line ends as
``\\n``. What ``ready`` and ``expect`` patterns are searched in, and what golden files hold.

A member on a terminal colours its output (``ls``, ``grep``, uvicorn's log, compilers, even
on stderr), and a REPL may draw its prompt with cursor moves (node's ``ESC[1G ESC[0J> ESC[3G``).
None of that is text: a pattern copied from what the screen shows must match. A full
terminal (``pty = true``) turns a program's own ``\\r\\n`` into ``\\r\\r\\n``: still one line end.
"""

from __future__ import annotations

import re

__all__ = ("LINE_END", "MAX_CUT", "plain")

_ESCAPE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, erasing (ESC [ 1 ; 31 m)
    r"|[\]P^_X][^\x07\x1b\n]*(?:\x07|\x1b\\)"  # a string in a line: OSC (a title, a link), DCS
    r"|[ -/]*[0-~])"  # the rest: ESC =, ESC 7, ESC ( B
)
_CUT = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|[\]P^_X][^\x07\x1b\n]*\x1b?|[ -/]*)\Z")
"""An escape sequence that the text ends in the middle of."""
MAX_CUT = 4096
"""Longer than this, an unfinished sequence is not one (an ESC in binary output): text."""
LINE_END = re.compile(r"(?<!\r)\r+\n")
"""A line end: ``\\r\\n``, a full terminal's ``\\r\\r\\n``. (Tried only where a run of
carriage returns begins: from each of a long run's, the search was quadratic in it.)"""


def plain(text: str) -> tuple[str, str]:
    """``text`` without its escape sequences, and apart from it the start of one it ends
    in the middle of (``""`` when none), which the text that follows may complete."""
    if "\x1b" not in text:
        return text, ""
    cut = _CUT.search(text)
    rest = ""
    if cut is not None and len(text) - cut.start() <= MAX_CUT:
        text, rest = text[: cut.start()], text[cut.start() :]
    return _ESCAPE.sub("", text), rest
