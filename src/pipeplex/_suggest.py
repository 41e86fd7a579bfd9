"""The spelling a mistyped word was probably meant as, for error messages: a key of a cast
file, a member's name, a command, an option."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ("close_match", "suggest")


def close_match(word: str, choices: Sequence[str]) -> str | None:
    """The choice ``word`` is closest to, if one is close; its case counts for nothing
    (``B`` is close to ``b``, which ``difflib`` alone would not find in one letter)."""
    import difflib  # only for messages: kept out of every start

    folded = {choice.casefold(): choice for choice in reversed(choices)}
    close = difflib.get_close_matches(word.casefold(), folded, n=1, cutoff=0.6)
    return folded[close[0]] if close else None


def suggest(word: str, choices: Sequence[str]) -> str:
    """``; did you mean 'x'?``, or `` (valid: a, b, c)`` when nothing is close."""
    close = close_match(word, choices)
    if close is not None:
        return f"; did you mean {close!r}?"
    return f" (valid: {', '.join(choices)})"
