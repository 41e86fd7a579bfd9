"""Signal names and exit statuses, spelled the way people read them."""

from __future__ import annotations

import functools
import signal
from collections.abc import Iterable

__all__ = (
    "HELD_AT_START",
    "PASSED_ON",
    "STOP_SIGNALS",
    "clean_inherited_signals",
    "describe_returncode",
    "exit_status",
    "ignored_for_children",
    "inherited_as_ignored",
    "parse_signal",
    "reap_children_again",
    "signal_name",
    "stopped_by",
)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""What stops a run."""

PASSED_ON = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGVTALRM, signal.SIGPROF,
             signal.SIGIO, signal.SIGPWR)
"""Signals that would end pipeplex and mean nothing to it: a run passes them on to its
running members, as tini and dumb-init do (``kill -USR1`` to have every member reopen its
logs), rather than die and leave its members to the guardian's SIGKILL."""

HELD_AT_START = (*STOP_SIGNALS, signal.SIGQUIT, *PASSED_ON)
"""What the command holds back until it can take them (see ``_entry``), and holds again
once a run has let them go: SIGQUIT, which a run takes as a stop without the grace, would
otherwise dump core at its default."""


def signal_name(sig: int) -> str:
    """``SIGTERM``; a real-time signal by its place, as ``kill -l`` says it: ``SIGRTMIN+6``
    in the lower half, ``SIGRTMAX-2`` in the upper."""
    try:
        return signal.Signals(sig).name
    except ValueError:
        if signal.SIGRTMIN < sig < signal.SIGRTMAX:
            middle = (signal.SIGRTMIN + signal.SIGRTMAX) // 2
            return (f"SIGRTMIN+{sig - signal.SIGRTMIN}" if sig <= middle else
                    f"SIGRTMAX-{signal.SIGRTMAX - sig}")
        return f"signal {sig}"


def describe_returncode(returncode: int) -> str:
    """``exited with code 3`` or ``killed by SIGKILL``."""
    if returncode < 0:
        return f"killed by {signal_name(-returncode)}"
    return f"exited with code {returncode}"


_SENT_TO_STOP = frozenset({signal.SIGKILL, signal.SIGHUP})
"""What a stop sends a member besides the signal that asks it to stop: SIGKILL once its
grace is over, and SIGHUP to the programs in a full terminal (as closing its window would)."""


def stopped_by(returncode: int, asked: int = signal.SIGTERM) -> str | None:
    """For a member a stop ended: the stop's signal that ended it (``SIGTERM``, or the
    member's stop signal, ``asked``), the end that was asked for and no failure; None for
    another end (``exited with code 0``, or a crash on the way out), which is worth its own
    words."""
    if returncode < 0 and (-returncode == asked or -returncode in _SENT_TO_STOP):
        return signal_name(-returncode)
    return None


def exit_status(returncode: int) -> int:
    """A shell-style status: the code itself, or 128+N for signal N."""
    return 128 - returncode if returncode < 0 else returncode


def parse_signal(text: str) -> int:
    """``TERM``, ``SIGTERM``, ``term`` or ``15`` to a signal number; a real-time signal by
    its number or its place (``RTMIN+6``, ``SIGRTMAX-2``).

    Raises:
        ValueError: not a signal this system knows.
    """
    text = text.strip()
    if text.isascii() and text.isdigit():  # ("²" is a digit to isdigit, no number to int)
        number = int(text)
        if number in _valid():
            return number
        raise ValueError(f"no signal number {number} on this system")
    if text.startswith("-") and text[1:].isascii() and text[1:].isdigit():
        raise ValueError(f"a signal number is positive ({text[1:]}, not {text})")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    for edge in ("SIGRTMIN", "SIGRTMAX"):  # (RTMIN+6, RTMAX-2: a real-time one's place)
        rest = name.removeprefix(edge)
        if rest == name or (rest and not (rest[0] in "+-" and rest[1:].isascii()
                                         and rest[1:].isdigit() and len(rest) <= 4)):
            continue
        number = getattr(signal, edge) + (int(rest) if rest else 0)
        if signal.SIGRTMIN <= number <= signal.SIGRTMAX:
            return int(number)
        raise ValueError(f"no signal {text!r}: the real-time signals run from RTMIN to "
                         f"RTMIN+{signal.SIGRTMAX - signal.SIGRTMIN} (RTMAX)")
    try:
        return int(signal.Signals[name])
    except KeyError:
        from ._printable import quoted  # (a client's error only: the command loads it later)

        raise ValueError(
            f"unknown signal {quoted(text)} (try TERM, INT, HUP, KILL, USR1 or a number)"
        ) from None


_RESET_BY_SPAWN = frozenset({signal.SIGPIPE, signal.SIGXFSZ})
"""Python ignores these itself; subprocess sets them back to the default in the child."""


def _ignore(signum: int, frame: object) -> None:
    """Does nothing, like SIG_IGN, except that exec() resets it to the default."""


_cleaned = False
"""Whether :func:`clean_inherited_signals` has run: the command's own process, whose
children start clean without a look at each spawn."""


def clean_inherited_signals(held: Iterable[int] = ()) -> None:
    """Undo what a parent may have done to us, so our children start clean.

    A shell running ``pipeplex &`` ignores SIGINT and SIGQUIT in it, and ignored signals
    survive exec(): members would inherit the deafness. Caught signals are reset by
    exec(), so we catch (and still ignore) what we inherited as ignored; and we empty the
    signal mask, which exec() keeps as well, but for ``held``: the caller unblocks those
    before it starts a child.
    """
    global _cleaned
    signal.pthread_sigmask(signal.SIG_SETMASK, held)
    for sig in signal.valid_signals():
        if sig in _RESET_BY_SPAWN:
            continue
        try:
            if signal.getsignal(sig) == signal.SIG_IGN:
                signal.signal(sig, _ignore)
        except (OSError, ValueError):  # SIGKILL, SIGSTOP, and those the C library keeps
            pass
    _cleaned = True


def ignored_for_children() -> frozenset[int] | None:
    """What a child spawned from this thread now would start with, that it should not: the
    signals this process ignores (exec() keeps them ignored), or an empty set when only
    the thread's signal mask (which exec() keeps too) is not empty; None when a child
    starts clean. The Python API runs in programs that may have set either, or inherited
    it (a test suite run as ``pytest &`` ignores SIGINT and SIGQUIT); the command cleans
    its own state first (:func:`clean_inherited_signals`) and is not looked at."""
    if _cleaned:
        return None
    # (Not the C library's own two, which no call here can set: a process that make or
    # another posix_spawn() started has one ignored, and its threads take it anyway.)
    ignored = (_ignored() & _valid()) - _RESET_BY_SPAWN
    if ignored or signal.pthread_sigmask(signal.SIG_BLOCK, ()):
        return ignored
    return None


SIGCHLD_IGNORED = ("SIGCHLD was ignored in this process (set in it, or inherited from what "
                   "started it), so the kernel would reap each member as it exits and every exit "
                   "status would read 0: pipeplex set SIGCHLD back to its default")


def signals_cleaned() -> bool:
    """Whether the command cleaned its inherited signals (:func:`clean_inherited_signals`):
    then nothing sets them since, as a program using the API may."""
    return _cleaned


def reap_children_again() -> bool:
    """With SIGCHLD ignored, set here or inherited (exec() keeps it), the kernel reaps
    every child as it exits, and its exit status is lost: each would read 0. Set it back
    to the default (from any thread: the C library's own call); whether it was so. (Not
    looked at in the command, which cleaned its signals: only a program using the API may
    have set it, at any time.)"""
    if _cleaned or signal.SIGCHLD not in _ignored():
        return False
    import ctypes
    import threading

    ctypes.CDLL(None).signal(signal.SIGCHLD, signal.SIG_DFL)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # (and Python's record of it)
    return True


@functools.cache
def _valid() -> frozenset[int]:
    """``signal.valid_signals()``, made once (it costs 70 µs, at every API spawn)."""
    return frozenset(signal.valid_signals())


def _ignored() -> frozenset[int]:
    """The signals this process ignores, as the kernel has them (``/proc/self/status``;
    where /proc is not mounted, as Python has them)."""
    try:
        with open("/proc/self/status", "rb") as status:
            bits = next(int(line.split()[1], 16) for line in status
                        if line.startswith(b"SigIgn:"))
    except (OSError, StopIteration, ValueError):
        return frozenset(sig for sig in signal.valid_signals()
                         if signal.getsignal(sig) == signal.SIG_IGN)
    return frozenset(sig for sig in range(1, bits.bit_length() + 1) if bits >> (sig - 1) & 1)


def inherited_as_ignored(sig: int) -> bool:
    """Whether ``sig`` came to pipeplex ignored (after :func:`clean_inherited_signals`):
    ``nohup`` ignores SIGHUP, a shell ignores SIGINT and SIGQUIT in ``cmd &``. Like shells
    and other POSIX programs, pipeplex keeps ignoring such a signal rather than stop on it.
    """
    return signal.getsignal(sig) is _ignore
