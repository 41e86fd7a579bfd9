"""A member of the Python API's plex (:class:`AsyncMember`), with pexpect's names.

Apart from :mod:`.async_plex`, which builds the cast (and :mod:`._hosting`, which runs
it): a member is what a test talks to (send, expect, signal, wait, restart), each call
through the plex's engine and matcher.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar, overload

from .._events import Stream
from .._seconds import seconds_said
from .._signals import describe_returncode
from ..errors import (
    ArgumentError,
    ArgumentTypeError,
    ExpectTimeout,
    PipeplexError,
    UnexpectedExit,
    ours_in_tracebacks,
)
from ..expect import EOF
from ..expect.patterns import Pattern, Sentinel
from ..participants import Process
from .arguments import (
    Patterns,
    call_timeout,
    check_stream,
    control_byte,
    exact_patterns,
    not_a_member,
    patterns_of,
    signal_number,
)

if TYPE_CHECKING:
    from ..expect.matcher import Expectation
    from .async_plex import AsyncPlex

__all__ = ("AsyncMember", "Members", "input_bytes")
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)


M = TypeVar("M")

CLOSED = "the plex was closed: its with block ended, or close() was called"
"""Why a member the plex's close stopped ended, for an expectation that waited on it."""


class Members(dict[str, M]):
    """A plex's members by name: a name not among them raises :class:`UnknownMember` (a
    ``KeyError``) saying which there are, as ``plex[name]`` does."""

    def __missing__(self, name: str) -> M:
        raise not_a_member(name, self)


def input_bytes(data: object, method: str) -> bytes:
    """What ``send(data)`` writes: text as UTF-8, bytes-like objects as they are. Text that
    ``os.fsdecode`` made of bytes that are no UTF-8 (a file's name) goes as those bytes."""
    if isinstance(data, str):
        try:
            return data.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError as exc:
            raise ArgumentError(f"{method}() sends text as UTF-8, which has no "
                                f"{data[exc.start:exc.end]!r} (at {exc.start}: half of a "
                                "surrogate pair); send bytes to send other bytes") from None
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise ArgumentTypeError(f"{method}() takes str or bytes, not {type(data).__name__}")


class AsyncMember:
    """One member of an :class:`AsyncPlex`, with pexpect's names.

    After an :meth:`expect`, ``before`` holds the output between the previous match and this
    one, ``after`` the matched text and ``match`` the ``re.Match`` (None for EOF/TIMEOUT).
    """

    def __init__(self, plex: AsyncPlex, process: Process) -> None:
        self._plex = plex
        self._matcher = plex.matcher
        self._process = process
        self.name = process.name
        self.before = ""
        self.after = ""
        self.match: re.Match[str] | None = None
        self._replaced = False
        """Its name was used again: the plex's output under that name is a newer member's."""
        self._removed = False
        """It was removed from the plex (:meth:`AsyncPlex.remove`): it is over."""
        self.background = False
        """Meant to run until the plex closes (``spawn(background=True)``): the pytest plugin
        does not report it as left running."""
        self._exit_seen = False
        """The caller has seen how it ended (its returncode, wait(), an UnexpectedExit): the
        pytest plugin tells of an error exit only when nobody looked."""

    def __repr__(self) -> str:
        p = self._process
        pid = f" pid={p.pid}" if p.pid else ""
        state = "exited" if p.returncode is not None else p.state
        code = f" returncode={p.returncode}" if p.returncode is not None else ""
        return f"<Member {self.name!r}{pid} {state}{code}>"

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """The exit code once it exited (negative for a signal), else None."""
        code = self._process.returncode
        if code is not None:
            self._exit_seen = True
        return code

    @property
    def running(self) -> bool:
        return self._process.running

    def _check_running(self) -> None:
        if self._plex._engine is None:
            raise self._plex._not_running()
        if self._removed:
            raise PipeplexError(f"{self.name} was removed from the plex; spawn a new member")
        self._plex._check_loop()

    def send(self, data: str | bytes) -> None:
        """Write ``data`` to the member's stdin as it is.

        Raises:
            TypeError: ``data`` is neither text nor bytes.
            ArgumentError: text with half of a surrogate pair (no UTF-8 has it).
        """
        data = input_bytes(data, "send")
        if self._plex._engine is None or self._removed:
            self._check_running()
        self._plex._check_loop()
        self._process.send(data)

    def sendline(self, line: str | bytes = "") -> None:
        """Write ``line`` and a newline."""
        line = input_bytes(line, "sendline")
        if self._plex._engine is None or self._removed:
            self._check_running()
        self._plex._check_loop()
        self._process.send(line + b"\n")

    async def drain(self, timeout: float | None = None) -> None:
        """Wait while the member has 1 MiB or more of input it has not read, until it is
        down to 256 KiB or its stdin is gone; return at once otherwise. ``send`` never
        waits, so a program that sends more than a member may read in good time calls this
        between sends, as with an asyncio stream's ``drain``.

        Raises:
            TimeoutError: still that much waiting after ``timeout`` seconds (the plex's
                timeout by default); what was sent stays queued for the member.
        """
        limit = self._plex.timeout if timeout is None else call_timeout(timeout)
        if self._plex._engine is None:
            self._check_running()
        self._plex._check_loop()
        process = self._process
        if not process.input_full:
            return
        try:
            await asyncio.wait_for(process.input_room(), limit)
        except TimeoutError:
            raise TimeoutError(
                f"{self.name} still had {process.input_waiting // 1024} KiB of input it had "
                f"not read after {seconds_said(limit)} s; it stays queued for it") from None

    def sendcontrol(self, char: str) -> None:
        """Write a control character: ``sendcontrol("c")`` is ^C, ``"?"`` is DEL.

        Raises:
            ValueError: not a letter or one of ``@[\\]^_?`` (and their shifted forms).
        """
        self.send(control_byte(char))

    def close_stdin(self) -> None:
        """EOF on the member's stdin (``^D`` in a full terminal)."""
        self._check_running()
        self._process.close_input()

    def signal(self, sig: int | str) -> None:
        """Send a signal (number or name such as ``"INT"``) to the member's process group.

        INT, QUIT and TSTP to a member with ``pty=True`` go where those keys would send
        them: to the terminal's foreground job, a command its shell runs in a group of its own.

        Raises:
            ValueError: no such signal.
        """
        number = signal_number(sig)
        self._check_running()
        self._process.signal_as_asked(number)

    # A str is also a sequence of str: it takes the first overload, which comes first.
    @overload
    async def expect(  # type: ignore[overload-overlap]
        self, pattern: str | re.Pattern[str], timeout: float | None = None, *,
        stream: Stream | None = None,
    ) -> re.Match[str]: ...
    @overload
    async def expect(self, pattern: Sentinel | Patterns, timeout: float | None = None, *,
                     stream: Stream | None = None) -> int: ...

    async def expect(
        self, pattern: Pattern | Patterns, timeout: float | None = None, *,
        stream: Stream | None = None,
    ) -> re.Match[str] | int:
        """Wait for ``pattern`` in the member's output, from its cursor on.

        One pattern: returns the ``re.Match``. A list (which may hold :data:`EOF` and
        :data:`TIMEOUT`): returns the index of the one that matched first. :data:`EOF` or
        :data:`TIMEOUT` alone returns 0, as in pexpect.

        Raises:
            ExpectTimeout: no match in time (unless TIMEOUT is a pattern).
            UnexpectedExit: the member exited first (unless EOF is a pattern).
            RuntimeError: another expectation already waits on this output (from another
                task or thread): the two would race for it.
        """
        if stream is not None:
            check_stream(stream, self._process.spec)
        patterns: list[Pattern]
        if type(pattern) is str:  # nearly every call: no list to check
            single, patterns = True, [pattern]
        else:
            single, patterns = patterns_of(pattern)
        if timeout is not None:
            timeout = call_timeout(timeout)
        self._plex._check_loop()
        if self._replaced or self._removed:
            return self._expect_replaced(patterns)
        if self._process.pid is None:
            self._refuse_never_started()
        try:
            found = await self._matcher.expect_one(
                self.name, patterns, self._plex.timeout if timeout is None else timeout, stream,
                exit_ends=self._process.spec.on_exit != "restart" or not self._restarts())
        except (ExpectTimeout, UnexpectedExit) as exc:
            self._failed(stream, exc)
            raise self._explained(exc) from None
        return self._took(found, single)

    def _took(self, found: Expectation, single: bool) -> re.Match[str] | int:
        """What an expect returns, once ``found`` met it (``before``, ``after`` and
        ``match`` set): its match for a single pattern, else the index of the pattern."""
        self.before, self.after, self.match = found.before, found.after, found.match
        if not single or found.match is None:
            return found.index
        return found.match

    def _restarts(self) -> bool:
        """Whether an exit of this member is followed by a next run (a cast's
        ``on_exit = "restart"``, not given up): an expectation then waits through it, for
        the next run's output, as a scenario's step does."""
        engine = self._plex._engine
        return engine is not None and engine.will_restart(self.name)

    def _refuse_never_started(self) -> None:
        """An expect on a member that nothing will start fails at once (it would time out:
        nothing starts it while we wait), as in test mode."""
        why = self._never_starting()
        if why is not None:
            raise PipeplexError(f"{self.name} was never started: {why}")

    def _never_starting(self) -> str | None:
        """Why this member, not started, will not start while one waits; None if it may."""
        engine = self._plex.engine
        blocked = engine.never_started_for(self.name)
        if blocked is not None:
            why = "has" if blocked == self.name else f"starts after {blocked}, which has"
            return f"it {why} autostart = false, and nothing started it (member.start())"
        return engine.start_failure(self.name)

    def _failed(self, stream: Stream | None, exc: Exception) -> None:
        """After an expect that raised ``exc``, as in pexpect: ``before`` holds the output
        it did not match (it stays unread), ``after`` and ``match`` are empty. An
        UnexpectedExit shows the caller how the member ended."""
        self.before = self._matcher.buffer(self.name, stream).text
        self.after, self.match = "", None
        if isinstance(exc, UnexpectedExit):
            self._exit_seen = True

    def _explained(self, exc: ExpectTimeout | UnexpectedExit) -> ExpectTimeout | UnexpectedExit:
        """``exc``, saying why the member was stopped when a stop ended it: its exit alone
        does not tell (a cat ends with 0 at the EOF of the stop). It was removed, or the
        plex was closed (by another thread or task while this waited, or before this
        began), or stopped from elsewhere (``pipeplex stop``, another member's exit). Or
        why no run follows an exit of a member that restarts: its policy gave up."""
        if not isinstance(exc, UnexpectedExit):
            return exc
        engine = self._plex._engine
        if not self._process.stopping:
            # Its restart policy's end: the exit is the last of a row, not the first.
            gave_up = engine.gave_up(self.name) if engine is not None else None
            if gave_up is None:
                return exc
            limit = f"max_restarts = {self._process.spec.max_restarts}"
            return exc.explained(f"no restart followed: {limit}" if limit in gave_up
                                 else f"no restart followed: it {gave_up}, {limit}")
        if self._removed or (engine is not None and engine.being_removed(self.name)):
            return exc.explained("plex.remove() stopped it")
        if self._plex._closing is not None:
            return exc.explained(CLOSED)
        if engine is not None and engine.stopping and (cause := engine.stop_cause):
            return exc.explained(f"the plex was stopped: {cause}")
        return exc

    def _expect_replaced(self, patterns: list[Pattern]) -> int:
        """expect() on a member whose name a newer member took, or that was removed: it has
        ended, and what it wrote after the last match went with it (as with a pexpect child
        that is closed)."""
        if EOF not in patterns:
            returncode = self._process.returncode
            self._exit_seen = True
            why = ("it was removed from the plex" if self._removed
                   else f"a newer member is named {self.name!r} now")
            raise UnexpectedExit(self.name, 0 if returncode is None else returncode, patterns,
                                 0.0, f"({why})")
        self.before, self.after, self.match = "", "", None
        return patterns.index(EOF)

    @overload
    async def expect_exact(  # type: ignore[overload-overlap]
        self, text: str, timeout: float | None = None, *, stream: Stream | None = None,
    ) -> re.Match[str]: ...
    @overload
    async def expect_exact(self, text: Sentinel | Sequence[str | Sentinel],
                           timeout: float | None = None, *,
                           stream: Stream | None = None) -> int: ...

    async def expect_exact(
        self, text: str | Sentinel | Sequence[str | Sentinel], timeout: float | None = None, *,
        stream: Stream | None = None,
    ) -> re.Match[str] | int:
        """:meth:`expect` for text taken literally (no regular expression): one string, or a
        list of strings that may hold :data:`EOF` and :data:`TIMEOUT`."""
        single, patterns = exact_patterns(text)
        try:
            return await self.expect(patterns[0] if single else patterns,
                                     timeout, stream=stream)
        except (ExpectTimeout, UnexpectedExit) as exc:
            raise exc.naming(patterns_of(text)[1]) from None

    async def start(self) -> None:
        """Start this member, declared with ``autostart = false``, and return once it is
        ready (as a scenario's ``start`` step does).

        Raises:
            PipeplexError: it starts by itself, was started already, waits for another
                ``autostart = false`` member nobody started, or did not get ready.
        """
        self._plex._check_loop()
        await self._plex.engine.start(self.name, "member.restart()")

    async def restart(self, timeout: float | None = None) -> int:
        """Stop this member's run as the plex's stop would (stdin closed, SIGTERM, the
        grace, SIGKILL), start it again, and return once the new run is ready (its
        ``ready``, ``ready_port``, ``ready_cmd``), as ``pipeplex restart`` does; the new
        run's pid. What its ``ready`` captures is the new run's in :attr:`AsyncPlex.variables`
        (members already running keep the values they started with, as the stream says).
        Its output goes on as one stream: an :meth:`expect` after the restart also finds
        what the earlier run wrote that no expect took.

        Raises:
            TimeoutError: the new run was not ready within ``timeout`` seconds (the plex's
                by default); it is left to get ready (or not) as its policy says.
            PipeplexError: it was removed, has not started yet, or its new run ended before
                it was ready, or the plex began to stop first: which, and its last output.
        """
        limit = self._plex.timeout if timeout is None else call_timeout(timeout)
        self._check_running()
        engine = self._plex.engine
        try:
            # (Not wait_for, which with a timeout of 0 would cancel it before it began: the
            # restart is asked for whatever the timeout, then waited for up to it.)
            async with asyncio.timeout(limit):
                return await engine.restart_until_ready(self.name)
        except TimeoutError:
            waiting = engine.waiting_for(self.name)
            raise TimeoutError(
                f"{self.name} was not ready again within {seconds_said(limit)} s"
                f"{f', waiting for {waiting}' if waiting else ''}\n"
                f"{engine.recent.describe(self.name)}") from None

    async def wait(self, timeout: float | None = None) -> int:
        """Wait until the member exits and its output is read; return its exit code.

        Raises:
            TimeoutError: still running (or its output still open) after ``timeout`` seconds.
            PipeplexError: the member was never started (it waited for one that failed).
        """
        limit = self._plex.timeout if timeout is None else call_timeout(timeout)
        self._plex._check_loop()
        process = self._process
        if process.pid is None:
            raise PipeplexError(f"{self.name} was never started, so it has no exit code")
        try:
            code = await asyncio.wait_for(asyncio.shield(process.done_future), limit)
        except TimeoutError:
            if process.returncode is not None:
                raise TimeoutError(
                    f"{self.name} {describe_returncode(process.returncode)}, but its output "
                    f"was still open after {seconds_said(limit)} s: a process it started holds it"
                ) from None
            raise TimeoutError(
                f"{self.name} was still running after {seconds_said(limit)} s") from None
        self._exit_seen = True
        return code
