"""What a duration given to pipeplex may be: one rule for the cast file, the options, the
API and the pytest plugin (a grace, a timeout, a ready_timeout); and how one is said."""

from __future__ import annotations

__all__ = ("SECONDS_SAID", "is_seconds", "seconds_meant", "seconds_said", "seconds_waited")

SHORTEST = 0.001
"""A millisecond: less is no wait the loop can keep (``1e-300`` gave "ignored SIGTERM for
1e-300 s" about a member that had had no time to end)."""
LONGEST = 1e9
"""Some 30 years: a grace without end would never come to SIGKILL (a call's own
``timeout=math.inf`` is the API's way to wait without limit)."""

SECONDS_SAID = "a number of seconds from 0.001 to below 1e9"


def is_seconds(value: object) -> bool:
    """Whether ``value`` is such a duration: a number (not a bool), NaN and infinities
    refused."""
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and SHORTEST <= value < LONGEST)


def seconds_said(value: float) -> str:
    """A grace as it was given: ``1.0``, ``0.25``, ``0.01`` (not ``0.0``)."""
    return f"{value:.1f}" if round(value, 1) == value else f"{value:g}"


def seconds_waited(waited: float, meant: float, *, slack: float = 0.1) -> str:
    """A wait of ``meant`` seconds that took ``waited``: said as it was given when it kept
    to it (within ``slack``), else as it was. A grace is longer than given when pipeplex
    was held up (stopped with SIGSTOP or Ctrl-Z), or in a later turn (a member whose stdin
    closed with the whole cast's); shorter when it was cut short."""
    if abs(waited - meant) < slack:
        return seconds_said(meant)
    return f"{waited:.1f}" if waited >= 1 else f"{waited:.2f}"


_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
          "ms": 0.001, "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
          "h": 3600.0, "hour": 3600.0, "hours": 3600.0}


def seconds_meant(value: object, *, quoted: bool = True) -> str:
    """For a duration written as text (``"5s"``, ``"500ms"``, ``"2m"``, ``"5"``), what to
    write instead: ``; write 5 (seconds, as a number: no quotes, no unit)``; else ``""``.
    ``quoted``: the text was in quotes (TOML); else it was a word (an option, an ini). For
    a 0 (refused: no wait a timer keeps), the short one to give instead."""
    zero = "; for next to no wait, give a short one such as 0.1"
    if isinstance(value, int | float) and not isinstance(value, bool) and value == 0:
        return zero
    if not isinstance(value, str):
        return ""
    text = value.strip().lower()
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz").rstrip()
    unit = text[len(number):].strip()
    try:
        seconds = float(number) * _UNITS[unit]
    except (KeyError, ValueError):
        return ""
    if seconds == 0:  # ("0" as a word, "0s")
        return zero
    if not SHORTEST <= seconds < LONGEST:
        return ""
    how = "as a number: no quotes, no unit" if quoted else "without a unit"
    return f"; write {seconds:g} (seconds, {how})"
