"""The exceptions pipeplex raises.

One root, :class:`PipeplexError`; each subclass is named for the condition and builds a
message that says what went wrong and what to do next. The CLI prints ``str(error)`` and
never a traceback for these.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from ._printable import quoted
from ._seconds import seconds_said

__all__ = (
    "ArgumentError",
    "ArgumentTypeError",
    "CastError",
    "CastErrors",
    "ControlError",
    "ExpectTimeout",
    "NoRun",
    "NotReady",
    "PipeplexError",
    "RequestFailed",
    "RunDirError",
    "RunStopped",
    "SignalRefused",
    "SpawnError",
    "UnexpectedExit",
    "UnknownMember",
)


class PipeplexError(Exception):
    """Root of every error pipeplex raises on purpose."""

    def __reduce__(self) -> tuple[object, ...]:
        # The subclasses take other arguments than their message: rebuild one from its
        # message and attributes, so that it can be pickled (multiprocessing, pytest-xdist).
        return _rebuild, (type(self), self.args, self.__dict__)


def ours_in_tracebacks(excinfo: Any) -> bool:
    """pytest's ``__tracebackhide__`` for pipeplex's API modules: a :class:`PipeplexError`
    (or the ``TimeoutError`` of ``wait``) says what went wrong in its message, and the
    frames of pipeplex it came through are noise in a test report; any other error (a
    bug) keeps them."""
    return excinfo is not None and bool(excinfo.errisinstance((PipeplexError, TimeoutError)))


def _rebuild(cls: type[PipeplexError], args: tuple[object, ...],
             state: dict[str, object]) -> PipeplexError:
    error = cls.__new__(cls, *args)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ArgumentError(PipeplexError, ValueError):
    """A call of the API was given a value it cannot use (a regex that does not compile, a
    timeout below zero, an unknown stream); the message says which, and what it takes. A
    ``ValueError`` as well, as Python's own functions raise for such a value."""


class ArgumentTypeError(PipeplexError, TypeError):
    """A call of the API was given a value of a type it does not take (``send(5)``). A
    ``TypeError`` as well."""


class CastError(PipeplexError):
    """A cast file or a ``-p`` option is invalid.

    ``source`` names where the problem is (``cast.toml:12:5`` or ``-p alice=...``).
    """

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.message = message
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class CastErrors(CastError):
    """Several mistakes in one cast or scenario file, found in one reading: each a
    :class:`CastError` (``errors``), in the file's order. Said all at once, a file's
    mistakes cost one run to learn, not one run each. Its ``message`` and ``source`` are
    the first one's."""

    SHOWN = 20
    """At most this many are listed; the rest are counted."""

    def __init__(self, errors: Sequence[CastError]) -> None:
        self.errors = tuple(sorted(errors, key=_place))
        self.message, self.source = self.errors[0].message, self.errors[0].source
        listed = "\n".join(f"  {error}" for error in self.errors[:self.SHOWN])
        more = len(self.errors) - self.SHOWN
        files = {_place(error)[0] for error in self.errors if _place(error)[1]}
        file = f"{files.pop()}: " if len(files) == 1 else ""
        PipeplexError.__init__(self, f"{file}{len(self.errors)} mistakes:\n{listed}"
                               + (f"\n  and {more} more" if more > 0 else ""))


def _place(error: CastError) -> tuple[str, int, int]:
    """Where a mistake is, to sort by: its file, line and column (``cast.toml:12:5``)."""
    found = re.fullmatch(r"(.*?):(\d+)(?::(\d+))?", error.source or "")
    if found is None:
        return (error.source or "", 0, 0)
    return (found[1], int(found[2]), int(found[3] or 0))


_SHOWN = 200
"""How much of a command a message shows (one that failed for its length can be megabytes)."""


class SpawnError(PipeplexError):
    """A member's program could not be started. ``status``: the exit status it counts for,
    as a shell's: 126 for a file that is there but cannot be run (not executable, not a
    program), 127 for one that is not there (or no folder to start in); 1 when pipeplex or
    the system was out of descriptors, processes or memory."""

    def __init__(self, name: str, command: str, reason: str, status: int = 127) -> None:
        self.name = name
        self.command = command
        self.reason = reason
        self.status = status
        shown = (repr(command) if len(command) <= _SHOWN else
                 f"{command[:_SHOWN]!r}... (of {len(command):,} characters)")
        super().__init__(f"{name}: cannot start {shown}: {reason}")


class SignalRefused(PipeplexError):
    """A member's processes run as another user, and this one may not signal them (a
    setuid program that took its new user for good: ``su``, a privileged helper). Nothing
    was sent; they run on."""

    def __init__(self, name: str, pgid: int, signal: str, owner: str) -> None:
        self.name = name
        self.pgid = pgid
        self.signal = signal
        self.owner = owner
        super().__init__(f"may not send {signal} to {name}: its processes run as {owner}; "
                         f"send it as that user (sudo kill -{signal.removeprefix('SIG')} -- "
                         f"-{pgid})")


class RunDirError(PipeplexError):
    """The run folder is unsafe, busy, or cannot be created."""


class UnknownMember(PipeplexError, KeyError):
    """A name does not belong to the cast."""

    def __init__(self, name: str, valid: Iterable[str], *, all_too: bool = True) -> None:
        """``all_too``: where the name was given, ``all`` would have meant everyone."""
        from ._suggest import close_match

        self.name = name
        self.valid = tuple(valid)
        listed = ", ".join(self.valid) or "none"
        everyone = "; or 'all' for everyone" if all_too else ""
        close = close_match(name, [*self.valid, "all"] if all_too else list(self.valid))
        meant = f"; did you mean {close!r}?" if close is not None else ""
        super().__init__(f"no member named {quoted(name)}{meant} (members: {listed}{everyone})")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def _is_eof(pattern: object) -> bool:
    from .expect.patterns import EOF  # (it imports this module: loaded by now, when this runs)

    return pattern is EOF


def _show_patterns(patterns: Sequence[object]) -> str:
    return " or ".join(repr(getattr(p, "pattern", p)) for p in patterns)


class ExpectTimeout(PipeplexError, TimeoutError):
    """No pattern matched in time. Carries who, what, how long, and the recent output."""

    def __init__(
        self, names: Sequence[str], patterns: Sequence[object], waited: float, recent: str,
        *, stream: str | None = None,
    ) -> None:
        self.names = tuple(names)
        self.patterns = tuple(patterns)
        self.waited = waited
        self.recent = recent
        self.stream = stream
        """The stream searched (``stdout``, ``stderr``), or None for both."""
        where = " or ".join(self.names) if self.names else "any member"
        texts = [p for p in self.patterns if not _is_eof(p)]
        if not texts:  # (EOF alone: no text was awaited)
            what = f"{where} did not end (its output stayed open)"
        else:
            what = f"{_show_patterns(texts)} did not appear in the {stream or 'output'} of {where}"
            if len(texts) < len(self.patterns):
                what += ", nor did it end,"
        super().__init__(f"{what} within {seconds_said(waited)} s\n{recent}")

    def naming(self, patterns: Sequence[object]) -> ExpectTimeout:
        """The same failure, naming ``patterns``: the text ``expect_exact()`` was given,
        rather than the escaped expression it searched for."""
        return ExpectTimeout(self.names, patterns, self.waited, self.recent, stream=self.stream)


class UnexpectedExit(PipeplexError):
    """The member exited while an expectation waited on it."""

    def __init__(
        self,
        name: str,
        returncode: int,
        patterns: Sequence[object],
        waited: float,
        recent: str,
        *,
        output_held: bool = False,
        output_ended: float | None = None,
        because: str | None = None,
    ) -> None:
        from ._signals import describe_returncode

        self.name = name
        self.returncode = returncode
        self.patterns = tuple(patterns)
        self.waited = waited
        self.recent = recent
        self.output_held = output_held
        """A process it started held its output open after its exit: the wait went on
        until that output ended (``waited`` is until then)."""
        self.output_ended = output_ended
        """Where a process left in its group held its output a while after the exit: how
        far into the wait that output ended (``waited`` is until the exit)."""
        self.because = because
        """Why it ended, when its exit alone does not say (the plex was stopped)."""
        wait = f"the wait for {_show_patterns(self.patterns)}"
        if output_held:
            when = (f"; its output, held open by a process it started, "
                    f"{'had ended before' if waited < 0.05 else f'ended {waited:.1f} s into'}"
                    f" {wait}")
        elif output_ended is not None:
            exited = "as" if waited < 0.05 else f"{waited:.1f} s into"  # (or before)
            began = " began" if waited < 0.05 else ""
            when = (f" {exited} {wait}{began}; its output, held open by a process it left, "
                    f"ended {output_ended:.1f} s into it")
        else:
            when = (f", so {wait} ended at once" if waited < 0.05  # (it had ended, or did then)
                    else f" {waited:.1f} s into {wait}")
        why = f" ({because})" if because else ""
        super().__init__(f"{name} {describe_returncode(returncode)}{why}{when}\n{recent}")

    def naming(self, patterns: Sequence[object]) -> UnexpectedExit:
        """The same failure, naming ``patterns`` (see :meth:`ExpectTimeout.naming`)."""
        return UnexpectedExit(self.name, self.returncode, patterns, self.waited, self.recent,
                              output_held=self.output_held, output_ended=self.output_ended,
                              because=self.because)

    def explained(self, because: str) -> UnexpectedExit:
        """The same failure, saying why the member ended."""
        return UnexpectedExit(self.name, self.returncode, self.patterns, self.waited,
                              self.recent, output_held=self.output_held,
                              output_ended=self.output_ended, because=because)


class NotReady(PipeplexError):
    """A member added to a running cast did not become ready (it exited, or timed out).

    The member is stopped and the cast goes on; ``reason`` says what it waited for and
    ``recent`` holds its last output.
    """

    def __init__(self, name: str, reason: str, recent: str) -> None:
        self.name = name
        self.reason = reason
        self.recent = recent
        super().__init__(f"{reason}\n{recent}")


class ControlError(PipeplexError):
    """Talking to a running cast through its control socket went wrong."""


class NoRun(ControlError):
    """Nothing answers at a run folder: no run there, or one that ended without cleaning up.

    ``stale`` is true when a run left its files behind (it was killed); ``absent`` when
    there is no run there at all (no socket, no live run's lock).
    """

    def __init__(self, message: str, *, run_dir: str, stale: bool = False,
                 absent: bool = False) -> None:
        self.run_dir = run_dir
        self.stale = stale
        self.absent = absent
        super().__init__(message)


class RunStopped(NoRun):
    """The run's process is stopped, so it answers nobody until it is let go on: by a
    signal (SIGSTOP, Ctrl-Z in its terminal), or ``traced``, held by a debugger.

    ``sent`` tells whether the request had been sent: the run then carries it out once it
    goes on; otherwise nothing was sent.
    """

    def __init__(self, *, run_dir: str, pid: int, traced: bool = False,
                 sent: bool = False) -> None:
        self.pid = pid
        self.traced = traced
        self.sent = sent
        how = (" in a debugger (a tracing stop): let it go on there" if traced else
               f" (suspended by SIGSTOP or Ctrl-Z): 'kill -CONT {pid}', or 'fg' in its "
               "terminal, resumes it")
        what = ("; the request was sent before it stopped, and is carried out once it goes on"
                if sent else "; nothing was sent")
        super().__init__(f"the pipeplex run at {run_dir} (pid {pid}) is stopped{how}{what}",
                         run_dir=run_dir)


class RequestFailed(ControlError):
    """The run answered a control request with an error.

    ``code`` is the protocol's error code (``unknown_member``, ``not_running``, ...);
    ``answer`` the whole answer, e.g. ``answer["members"]`` for an unknown member.
    """

    def __init__(self, code: str, message: str, answer: dict[str, object] | None = None) -> None:
        self.code = code
        self.answer = answer or {}
        super().__init__(message)
