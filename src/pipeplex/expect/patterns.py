"""What an expectation waits for, and how a regular expression is searched fast.

A pattern is a regular expression, or one of the sentinels ``EOF`` and ``TIMEOUT``:
conditions, not text, as in pexpect. Patterns given as text are compiled with
``re.MULTILINE``, so ``^`` and ``$`` match at line boundaries (what a line is, and what
``$`` matches at the end of the output received so far: :mod:`.buffer`). A precompiled
pattern is used as given (no ``re.MULTILINE`` added).

Apart from the buffer, which holds the text they are searched in: these are about the
patterns alone (what the API takes, how sre is helped past a leading ``^``), and the
buffer uses only :func:`search_regex` of them.
"""

from __future__ import annotations

import functools
import re
from typing import Final

from .._regex import compile_regex
from ..errors import ArgumentError, ours_in_tracebacks

__all__ = (
    "EOF",
    "MAX_CANDIDATE_MISSES",
    "TIMEOUT",
    "Pattern",
    "Sentinel",
    "compile_pattern",
    "line_start_literal",
    "search_regex",
)
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)


class Sentinel:
    """The type of EOF and TIMEOUT: patterns that are conditions, not text."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"pipeplex.{self.name}"

    def __reduce__(self) -> str:
        return self.name  # pickled by name: unpickling gives the one EOF (TIMEOUT) back


EOF: Final = Sentinel("EOF")
"""As a pattern: matches when the member has exited and its output is drained."""
TIMEOUT: Final = Sentinel("TIMEOUT")
"""As a pattern: matches when the expectation's time is up, instead of raising."""

Pattern = str | re.Pattern[str] | Sentinel


def compile_pattern(pattern: str | re.Pattern[str]) -> re.Pattern[str]:
    """A regex with ``^``/``$`` at line boundaries (unless given precompiled)."""
    compiled = _compiled.get(pattern)  # type: ignore[arg-type]
    if compiled is not None:
        return compiled
    if isinstance(pattern, re.Pattern):
        return pattern
    if len(_compiled) >= _COMPILED_KEEP:
        _compiled.clear()
    try:
        compiled = _compiled[pattern] = compile_regex(pattern, re.MULTILINE)
    except re.error as exc:  # (not a ValueError, as every other bad argument is)
        raise ArgumentError(f"not a valid regular expression: {pattern!r} ({exc})") from None
    return compiled


_compiled: dict[str, re.Pattern[str]] = {}
"""Patterns as given to expect, compiled: one dict lookup on every expectation, where re's
own cache costs several calls. Emptied when full, like re's."""
_COMPILED_KEEP = 512


_METACHARACTERS = frozenset(".^$*+?{}[]\\|()")
_QUANTIFIERS = frozenset("*+?{")
_MULTILINE = int(re.MULTILINE)  # plain ints: an operation on re's flag enum costs ~1.5 us
_CHANGES_LITERALS = int(re.IGNORECASE | re.VERBOSE)
MAX_CANDIDATE_MISSES = 16
"""Candidates of a line-start literal that may fail before the search hands over to sre."""


@functools.lru_cache(maxsize=256)
def line_start_literal(regex: re.Pattern[str]) -> str | None:
    """The text that every match of a ``^LITERAL...`` multi-line pattern starts with, or None.

    sre finds a pattern's leading literal at C speed, but not once the pattern starts with
    ``^``: ``^DONE$`` scans about 200 MB/s where ``DONE`` scans 3 GB/s, and anchored lines
    are what people expect. Read conservatively from the pattern's source: no ``|`` at all
    (``^a|b`` is not anchored), no flags that change what a literal matches.
    """
    source = regex.pattern
    if (not source.startswith("^") or "|" in source or not regex.flags & _MULTILINE
            or regex.flags & _CHANGES_LITERALS):
        return None
    end = 1
    while end < len(source) and source[end] not in _METACHARACTERS:
        end += 1
    if end < len(source) and source[end] in _QUANTIFIERS:
        end -= 1  # "^abc*": the c is optional
    return source[1:end] if end > 1 else None


def search_regex(regex: re.Pattern[str], text: str, pos: int) -> re.Match[str] | None:
    """``regex.search(text, pos)``, with a ``str.find`` for line-start literals first."""
    literal = line_start_literal(regex)
    if literal is None:
        return regex.search(text, pos)
    for _ in range(MAX_CANDIDATE_MISSES):
        # Every match starts at a place where the literal does: try those places only.
        start = text.find(literal, pos)
        if start < 0:
            return None
        match = regex.match(text, start)
        if match:
            return match
        pos = start + 1
    return regex.search(text, pos)  # a literal found on most lines: sre is faster there
