"""Compiling a regular expression a person wrote (a ``ready`` pattern, a step's, a
normalize rule's, the API's): every mistake in it comes out as :class:`re.error`, which
each caller turns into a message naming where the pattern was written.

``re`` itself raises two other errors for patterns it cannot take: ``OverflowError`` for a
repetition count past its limit (``x{99999999999}``), and ``RecursionError`` for groups
nested some thousand deep.
"""

from __future__ import annotations

import re

__all__ = ("compile_regex",)


def compile_regex(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """``re.compile(pattern, flags)``, its every refusal a :class:`re.error`."""
    try:
        return re.compile(pattern, flags)
    except OverflowError:
        raise re.error("a repetition count is too large", pattern) from None
    except RecursionError:
        raise re.error("groups are nested too deep", pattern) from None
