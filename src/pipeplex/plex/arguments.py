"""What the Python API takes as arguments, checked: a bad one is a ValueError that says
what is expected, raised in the caller's code rather than later in the engine."""

from __future__ import annotations

import math
import os
import re
import signal
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from .._seconds import SECONDS_SAID, is_seconds
from .._signals import parse_signal
from ..errors import ArgumentError, PipeplexError, UnknownMember, ours_in_tracebacks
from ..expect import EOF, TIMEOUT
from ..expect.patterns import Pattern

if TYPE_CHECKING:
    from ..cast.spec import ProcSpec

__all__ = (
    "Patterns",
    "PtyOption",
    "call_timeout",
    "check_stream",
    "control_byte",
    "environment_of",
    "exact_patterns",
    "not_a_member",
    "path_of",
    "patterns_of",
    "positive_seconds",
    "pty_mode",
    "ready_text",
    "signal_number",
)
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)

PtyOption = Literal["stdout"] | bool
Patterns = Sequence[Pattern]


def not_a_member(name: object, members: Iterable[str]) -> PipeplexError:
    """The error for looking up ``name`` among ``members`` where it is none of them: a name
    that is not a member's, or something that is no name (a member itself, given where its
    name was meant: a natural slip in ``expect_any({member: ...})``)."""
    if isinstance(name, str):
        return UnknownMember(name, members, all_too=False)
    own = getattr(name, "name", None)
    if isinstance(own, str):
        return ArgumentError(f"a member is named by a str: {own!r} (its .name), not "
                             f"{type(name).__name__} {own!r} itself")
    return ArgumentError(f"a member is named by a str, not {name!r}")
"""A list (or tuple) of patterns, of which :data:`EOF` and :data:`TIMEOUT` may be two."""
_SIGNALS = frozenset(s.value for s in signal.Signals)


def environment_of(env: object) -> dict[str, str]:
    """A plex's ``env``: what every member's environment gets.

    Raises:
        ArgumentError: not a mapping of str to str, or one no environment can hold.
    """
    from ..cast._member_fields import env_problem

    if env is None:
        return {}
    if not isinstance(env, Mapping):
        raise ArgumentError(f"env is a mapping of names to values, as {{'TERM': 'dumb'}}, "
                            f"not {env!r}")
    for key, value in env.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ArgumentError(f"env maps names to values, both str: not {key!r}: {value!r}")
        if (problem := env_problem(key, value)) is not None:
            raise ArgumentError(f"env {problem}")
    return dict(env)


def signal_number(sig: int | str) -> int:
    """A signal's number from its name or number; :class:`ArgumentError` for one this
    system lacks."""
    if isinstance(sig, str):
        try:
            return parse_signal(sig)
        except ValueError as exc:
            raise ArgumentError(str(exc)) from None
    if type(sig) is not int:  # (not True, which would be SIGHUP, nor 2.0)
        raise ArgumentError(f"a signal is a name such as 'INT' or a number, not {sig!r}")
    if sig not in _SIGNALS:
        raise ArgumentError(f"no signal number {sig}")
    return sig


def pattern_of(pattern: object) -> Pattern:
    """``pattern`` if expect() can search for it; a ValueError that says why otherwise."""
    if isinstance(pattern, str) or pattern is EOF or pattern is TIMEOUT:
        return pattern
    if isinstance(pattern, re.Pattern):
        if isinstance(pattern.pattern, str):
            return pattern
        raise ArgumentError(f"{pattern!r} is a bytes pattern; output is searched as text: "
                            "compile a str pattern instead")
    if isinstance(pattern, bytes | bytearray):
        raise ArgumentError(f"{pattern!r} is bytes; output is searched as text: use a str "
                            "pattern")
    raise ArgumentError(f"a pattern is a str, a compiled str regex, EOF or TIMEOUT, not "
                        f"{pattern!r}")


def path_of(value: object, what: str) -> str | None:
    """``value`` as a path (a str or an ``os.PathLike`` giving one; None stays None); a
    ValueError that names ``what`` otherwise."""
    if value is None:
        return None
    path = os.fspath(value) if isinstance(value, str | os.PathLike) else None
    if not isinstance(path, str):
        raise ArgumentError(f"{what} is a path, as a str or a pathlib.Path, not {value!r}")
    return path


_INLINE_FLAGS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"),
                 (re.VERBOSE, "x"), (re.ASCII, "a"))


def ready_text(ready: object) -> str | None:
    """``spawn``'s ``ready`` as a cast holds it, a regular expression's text: a compiled one
    gives its pattern, its flags written inline (``(?i)``); a ValueError for anything else."""
    if ready is None or isinstance(ready, str):
        return ready
    if isinstance(ready, re.Pattern) and isinstance(ready.pattern, str):
        flags = "".join(letter for flag, letter in _INLINE_FLAGS if ready.flags & flag)
        return f"(?{flags}){ready.pattern}" if flags else ready.pattern
    raise ArgumentError(f"ready is a regular expression, as a str or a compiled str pattern "
                        f"(output is searched as text), not {ready!r}")


def patterns_of(pattern: Any) -> tuple[bool, list[Pattern]]:
    """(whether ``pattern`` is a single one, the list of patterns) for expect()."""
    if isinstance(pattern, str | re.Pattern) or pattern is EOF or pattern is TIMEOUT:
        return True, [pattern_of(pattern)]
    if not isinstance(pattern, list | tuple):
        return True, [pattern_of(pattern)]  # (says what is wrong with it)
    if not pattern:
        raise ArgumentError("expect() needs at least one pattern, not an empty list")
    return False, [pattern_of(p) for p in pattern]


def exact_patterns(text: Any) -> tuple[bool, list[Pattern]]:
    """:func:`patterns_of` for expect_exact(): strings match literally."""
    single, patterns = patterns_of(text)
    if any(isinstance(p, re.Pattern) for p in patterns):  # (it would be searched as one)
        raise ArgumentError("expect_exact() takes text, not a compiled regular expression "
                            "(use expect() for that)")
    return single, [re.compile(re.escape(p)) if isinstance(p, str) else p for p in patterns]


def positive_seconds(value: object, what: str, *, none_ok: bool = True) -> float | None:
    """A default timeout or a grace given to the API: a duration as in a cast file
    (:mod:`._seconds`)."""
    if value is None and none_ok:
        return None
    if not is_seconds(value):
        raise ArgumentError(f"{what} must be {SECONDS_SAID}, not {value!r}")
    return float(value)  # type: ignore[arg-type]


def call_timeout(value: float) -> float:
    """The timeout of one call: seconds, 0 (look once, as in pexpect) or inf (no limit)."""
    if (isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value)
            or value < 0):
        raise ArgumentError(f"timeout must be a number of seconds (0 or more), not {value!r}")
    return float(value)


def control_byte(char: str) -> bytes:
    """The byte that Ctrl and ``char`` give on a terminal: "c" is ^C (3), "?" is DEL."""
    if not isinstance(char, str) or len(char) != 1:
        raise ArgumentError(f"sendcontrol() takes one character, not {char!r}")
    lower = char.lower()
    if "a" <= lower <= "z":
        return bytes([ord(lower) - ord("a") + 1])
    code = _CONTROL_PUNCTUATION.get(char)
    if code is None:
        raise ArgumentError(f"there is no control character for {char!r} (letters, and "
                            f"{' '.join(_CONTROL_PUNCTUATION)})")
    return bytes([code])


_CONTROL_PUNCTUATION = {"@": 0, "`": 0, "[": 27, "{": 27, "\\": 28, "|": 28, "]": 29, "}": 29,
                        "^": 30, "~": 30, "_": 31, "?": 127}


def check_stream(stream: str, spec: ProcSpec | None = None) -> None:
    """``stream`` names one of the member's streams (``spec``: the member, whose stderr may
    go to its stdout, when it is known)."""
    if stream not in ("stdout", "stderr"):
        raise ArgumentError(f"stream must be 'stdout' or 'stderr' (or None for both), "
                            f"not {stream!r}")
    if stream == "stderr" and spec is not None and spec.stderr != "apart":
        raise ArgumentError(f"{spec.name} has stderr='stdout': what it writes to stderr comes "
                            "on its stdout, in order (leave stream out)")


def pty_mode(pty: PtyOption) -> Literal["stdout", "full", "pipes"]:
    if pty is True:
        return "full"
    if pty is False:
        return "pipes"
    if pty == "stdout":
        return "stdout"
    raise ArgumentError(f'pty must be "stdout" (stdout on a terminal), True (a full terminal) or '
                        f"False (pipes), not {pty!r}")
