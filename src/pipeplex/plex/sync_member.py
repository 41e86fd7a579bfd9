"""A member of the blocking API's plex (:class:`Member`), with pexpect's names.

Apart from :class:`~.sync_plex.Plex`, which runs the cast in its background thread (as
``async_member.py`` is apart from ``async_plex.py`` for the async API): a member is what the
caller's thread talks to. Its sends are queued for the plex's loop without a round trip,
in order with its other inputs; its expects search the members' output from the caller's
own thread, so a round trip costs one wake-up, not a task.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, overload

from .._events import Stream
from ..errors import ExpectTimeout, UnexpectedExit, ours_in_tracebacks
from ..expect.patterns import Pattern, Sentinel
from .arguments import (
    Patterns,
    call_timeout,
    check_stream,
    control_byte,
    exact_patterns,
    patterns_of,
    signal_number,
)
from .async_member import AsyncMember, input_bytes

if TYPE_CHECKING:
    from .sync_plex import Plex

__all__ = ("Member",)
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)


class Member:
    """The synchronous face of :class:`AsyncMember` (see it for the semantics)."""

    def __init__(self, plex: Plex, member: AsyncMember) -> None:
        self._plex = plex
        self._member = member
        self._may_be_full = False
        """The last send left 1 MiB or more queued: the next waits for room first."""
        self.name = member.name
        self._wakeups = threading.local()

    def __repr__(self) -> str:
        return repr(self._member)

    @property
    def before(self) -> str:
        return self._member.before

    @property
    def after(self) -> str:
        return self._member.after

    @property
    def match(self) -> re.Match[str] | None:
        return self._member.match

    @property
    def pid(self) -> int | None:
        return self._member.pid

    @property
    def background(self) -> bool:
        return self._member.background

    @property
    def returncode(self) -> int | None:
        return self._member.returncode

    @property
    def running(self) -> bool:
        return self._member.running

    def send(self, data: str | bytes) -> None:
        data = input_bytes(data, "send")
        self._plex._check_usable()
        if self._member._removed:
            self._member._check_running()  # (raises)
        process = self._member._process
        if process.pid is None:  # never started: the loop drops it, with a note
            self._plex._call_soon(process.send, data)
            return
        # (Full of its own last send, or of what others queued: the run folder's pipes,
        # the control socket, another handle. A look from this thread: a hint, which the
        # drain's own look in the loop settles.)
        if (self._may_be_full or process.input_full) and not self._plex._in_own_thread():
            # As a write to a full pipe waits (a sink cannot wait for itself): before this
            # send is queued, so that a TimeoutError means it was not sent.
            try:
                self.drain()
            except TimeoutError as exc:
                raise TimeoutError(f"{exc.args[0].removesuffix('; it stays queued for it')}; "
                                   "this send was not queued (send it again once the member "
                                   "reads)") from None
        with self._plex._handing_over():
            self._may_be_full = process.send_threadsafe(data)

    def drain(self, timeout: float | None = None) -> None:
        """:meth:`AsyncMember.drain`; ``send`` waits so itself once the member is full."""
        self._plex._call(self._member.drain(timeout))

    def sendline(self, line: str | bytes = "") -> None:
        self.send(input_bytes(line, "sendline") + b"\n")

    def sendcontrol(self, char: str) -> None:
        self.send(control_byte(char))

    def close_stdin(self) -> None:
        self._in_order(self._member._process.close_input)

    def signal(self, sig: int | str) -> None:
        self._in_order(self._member._process.signal_as_asked, signal_number(sig))

    def _in_order(self, fn: Any, *args: Any) -> None:
        """Run ``fn`` in the plex's loop, neither overtaken by a later send of this member
        nor overtaking an earlier one."""
        self._plex._check_usable()
        if self._member._removed:
            self._member._check_running()  # (raises)
        process = self._member._process
        if process.pid is None:
            self._plex._call_soon(fn, *args)
        else:
            with self._plex._handing_over():
                process.stdin.call_threadsafe(fn, *args)

    @overload
    def expect(  # type: ignore[overload-overlap]
        self, pattern: str | re.Pattern[str], timeout: float | None = None, *,
        stream: Stream | None = None,
    ) -> re.Match[str]: ...
    @overload
    def expect(self, pattern: Sentinel | Patterns, timeout: float | None = None, *,
               stream: Stream | None = None) -> int: ...

    def expect(self, pattern: Pattern | Patterns, timeout: float | None = None, *,
               stream: Stream | None = None) -> re.Match[str] | int:
        if stream is not None:
            check_stream(stream, self._member._process.spec)
        single, patterns = patterns_of(pattern)
        return self._expect(single, patterns, timeout, stream)

    def _expect(self, single: bool, patterns: list[Pattern], timeout: float | None,
                stream: Stream | None) -> re.Match[str] | int:
        member, plex = self._member, self._plex
        if timeout is not None:
            timeout = call_timeout(timeout)
        plex._refuse_own_thread()
        plex._warn_in_a_loop()
        plex._check_not_forked()  # (its lock may have been held as the child was forked)
        if member._replaced or member._removed:
            return member._expect_replaced(patterns)
        if member._process.pid is None:
            member._refuse_never_started()
        # Searched from this thread: waiting costs one wake-up from the loop, not a task.
        try:
            found = plex._async.matcher.expect_blocking(
                member.name, patterns,
                timeout=plex._async.timeout if timeout is None else timeout,
                stream=stream, publish=plex._publish, wakeup=self._wakeup(),
                exit_ends=not member._restarts(),
            )
        except (ExpectTimeout, UnexpectedExit) as exc:
            member._failed(stream, exc)
            raise member._explained(exc) from None
        return member._took(found, single)

    @overload
    def expect_exact(  # type: ignore[overload-overlap]
        self, text: str, timeout: float | None = None, *, stream: Stream | None = None,
    ) -> re.Match[str]: ...
    @overload
    def expect_exact(self, text: Sentinel | Sequence[str | Sentinel],
                     timeout: float | None = None, *, stream: Stream | None = None) -> int: ...

    def expect_exact(
        self, text: str | Sentinel | Sequence[str | Sentinel], timeout: float | None = None, *,
        stream: Stream | None = None,
    ) -> re.Match[str] | int:
        if stream is not None:
            check_stream(stream, self._member._process.spec)
        single, patterns = exact_patterns(text)
        try:
            return self._expect(single, patterns, timeout, stream)
        except (ExpectTimeout, UnexpectedExit) as exc:
            raise exc.naming(patterns_of(text)[1]) from None

    def _wakeup(self) -> threading.Event:
        """This thread's event to sleep on (one per thread, made once)."""
        event: threading.Event | None = getattr(self._wakeups, "event", None)
        if event is None:
            event = self._wakeups.event = threading.Event()
        return event

    def wait(self, timeout: float | None = None) -> int:
        process = self._member._process
        if self._plex._loop is None and process.returncode is not None:
            self._member._exit_seen = True
            return process.returncode  # (the plex is closed; its exit is known, as in pexpect)
        return self._plex._call(self._member.wait(timeout))

    def start(self) -> None:
        self._plex._call(self._member.start())

    def restart(self, timeout: float | None = None) -> int:
        return self._plex._call(self._member.restart(timeout))

