"""The Python API for synchronous code: :class:`Plex` runs an :class:`AsyncPlex` in a
background thread and hands each call to its loop; :class:`Member` searches the members'
output from the caller's own thread, so a round trip costs one wake-up, not a task.

This module holds the plex; its members are in ``sync_member.py``, and how a call
crosses into the background thread (and survives a Ctrl-C) in ``_thread.py``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import re
import signal
import sys
import threading
import warnings
import weakref
from collections.abc import Coroutine, Iterator, Mapping, Sequence
from types import FrameType, TracebackType
from typing import Any, TypeVar

from .._bus import Bus
from ..cast.spec import StderrMode
from ..engine.engine import DEFAULT_GRACE
from ..errors import PipeplexError, ours_in_tracebacks
from ..expect.patterns import Pattern
from ..participants._stdin import RECORDS_WAITING
from ..scenario.model import Scenario
from ._thread import Call, ctrl_c_calls, despite_handlers, dropped_running, serve
from .arguments import Patterns, PtyOption, not_a_member
from .async_member import Members
from .async_plex import DEFAULT_TIMEOUT, STARTED, AsyncPlex
from .sync_member import Member

__all__ = ("Plex",)
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)

T = TypeVar("T")


def _outside_pipeplex() -> int:
    """The ``stacklevel`` of a warning that points at the first caller outside pipeplex
    (for a warning raised from this module's caller)."""
    frame: FrameType | None = sys._getframe(2)
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


_PACKAGE = os.path.dirname(__file__) + os.sep


async def _flushed(bus: Bus) -> None:
    bus.flush_threadsafe()


class Plex:
    """A cast built in code, for synchronous code: ``with Plex() as plex:``.

    Same options and methods as :class:`AsyncPlex`; the engine runs in a background thread.
    """

    def __init__(
        self,
        *,
        run_dir: str | os.PathLike[str] | None = None,
        transcript: str | os.PathLike[str] | None = None,
        grace: float = DEFAULT_GRACE,
        pty: PtyOption = "stdout",
        timeout: float = DEFAULT_TIMEOUT,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._async = AsyncPlex(run_dir=run_dir, transcript=transcript, grace=grace, pty=pty,
                                timeout=timeout, env=env)
        self._async._threads = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._members: Members[Member] = Members()
        self._members_lock = threading.Lock()
        self._calls_open = False
        """Calls may be handed to the loop: from the start until the close stops the loop
        (set under ``_calls_lock``, so no call is handed over once the loop is to stop)."""
        self._calls_lock = threading.Lock()
        self._started_as = "this plex has already been started: use a new one"
        """What a second start says (the pytest plugin's fixture says what it is)."""
        self._lifecycle = threading.RLock()
        """Held by :meth:`start` and :meth:`close`: two threads' calls take turns (a
        watchdog's close as the with block ends). Reentrant: a signal handler may close
        the plex while its own thread is in either."""
        self._dropped: weakref.finalize[Any, Plex] | None = None
        self._pid = os.getpid()
        """The process whose thread runs the plex: a child forked from it cannot use it."""
        self._warned_of_a_loop = False

    def __repr__(self) -> str:
        return repr(self._async).replace("AsyncPlex", "Plex")

    def __enter__(self) -> Plex:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        self._refuse_own_thread()  # (first: a sink's call would wait on the lock for ever)
        with self._lifecycle:
            self._start()

    def _start(self) -> None:
        if self._loop is not None:
            raise PipeplexError(self._started_as)
        loop = self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=serve, args=(loop,), name="pipeplex",
                                        daemon=True)
        self._thread.start()
        self._calls_open = True
        try:
            self._call(self._async.start())
        except BaseException:
            self._stop_thread()
            raise
        self._dropped = weakref.finalize(self, dropped_running, self._async, loop, self._pid)
        self._dropped.atexit = False  # (at exit the guardian ends what is left, at once)
        for tell in STARTED:
            tell(self)

    def _check_usable(self) -> asyncio.AbstractEventLoop:
        """Raise unless calls can reach the plex's thread: it runs (a with block), and this
        is not a child forked from the plex's process, which does not have that thread (nor
        the members and the guardian): there a call would wait for ever, or do nothing.
        Its loop, which another thread's close() may take away the next moment."""
        loop = self._loop
        if loop is None:
            raise self._async._not_running("a with block")
        self._check_not_forked()
        return loop

    def _check_not_forked(self) -> None:
        if os.getpid() != self._pid:
            raise PipeplexError(f"this plex runs in process {self._pid}, and this is a child "
                                "forked from it, where its thread does not run: start a Plex "
                                "of the child's own (or use multiprocessing's 'spawn' start "
                                "method)")

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        try:
            self._check_usable()
            self._refuse_own_thread()
            self._warn_in_a_loop()
        except BaseException:  # (also that warning, made an error: -W error, a test suite's)
            coroutine.close()  # (never to run: no "never awaited" warning of its own)
            raise
        call = Call(coroutine)
        with self._calls_lock:
            loop = self._loop
            if not self._calls_open or loop is None:  # (closed meanwhile in another thread)
                coroutine.close()
                raise self._async._not_running("a with block")
            future = asyncio.run_coroutine_threadsafe(call.run(), loop)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            if self._calls_open:
                raise
            # The plex closed in another thread as this was made; its loop cancelled it.
            call.cut_off()
            raise self._async._not_running("a with block") from None
        except (PipeplexError, TimeoutError) as exc:
            # Its message says it all: the frames it came through in the plex's thread, and
            # concurrent.futures', are noise where it is reported.
            raise exc.with_traceback(None) from exc.__cause__
        except BaseException:
            # Ctrl-C (or another exception raised in this thread) while the loop works for
            # us: the call ends here, and must not go on to take output a later one expects.
            call.abandon(loop)
            raise

    def _in_own_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def _refuse_own_thread(self) -> None:
        """A blocking call from the plex's own thread (a sink's) would wait for itself."""
        if self._in_own_thread():
            raise RuntimeError("a Plex call that waits was made from the plex's own thread "
                               "(a sink runs there), where it would wait for itself for ever; "
                               "make it from your own thread, or use AsyncPlex")

    def _warn_in_a_loop(self) -> None:
        """A blocking call from a thread whose event loop runs (an ``async def`` test's)
        holds that loop until it returns: what the loop serves (a fake server of the test's
        own that a member talks to) cannot answer, and the wait then blames the member.
        Said once a plex: it may be meant (nothing on that loop needed meanwhile)."""
        if not self._warned_of_a_loop and asyncio._get_running_loop() is not None:
            self._warned_of_a_loop = True
            warnings.warn("a blocking pipeplex.Plex call was made in a running event loop, "
                          "which waits with it (nothing else on that loop runs meanwhile): "
                          "in async code use pipeplex.AsyncPlex", RuntimeWarning,
                          stacklevel=_outside_pipeplex())

    @contextlib.contextmanager
    def _handing_over(self) -> Iterator[None]:
        """Around what is handed to the loop without a wait (a send, a signal): as another
        thread closes the plex, the loop may close between the check and the handing over,
        which then raises that the plex was closed, as it does once it is."""
        try:
            yield
        except RuntimeError:  # ("Event loop is closed")
            if self._calls_open:
                raise
            raise self._async._not_running("a with block") from None

    def _publish(self, event: Any) -> None:
        bus = self._async.bus
        loop = self._loop
        if bus.publish_threadsafe(event) % RECORDS_WAITING == 0 and loop is not None:
            with contextlib.suppress(RuntimeError):  # (closed meanwhile: nothing to flush for)
                loop.call_soon_threadsafe(bus.flush_threadsafe)  # (see Stdin.send_threadsafe)

    def _call_soon(self, fn: Any, *args: Any) -> None:
        # Not waited for: the loop runs callbacks in order, so a later expect() still sees
        # the effect, and a send costs no thread round trip. Sends never raise (a closed
        # stdin becomes a note in the stream).
        loop = self._check_usable()
        with self._handing_over():
            loop.call_soon_threadsafe(fn, *args)

    @property
    def bus(self) -> Bus:
        """The plex's events; its sinks are called in the plex's own thread, not yours."""
        return self._async.bus

    @property
    def variables(self) -> dict[str, str]:
        return self._async.variables

    @property
    def members(self) -> Mapping[str, Member]:
        if self._members.keys() != self._async.members.keys() or any(
                held._member is not self._async.members.get(name)
                for name, held in self._members.items()):
            self._sync_members()  # (see __getitem__)
        return self._members

    def __getitem__(self, name: str) -> Member:
        member = self._members.get(name)
        if member is None or member._member is not self._async.members.get(name):
            # A member whose spawn has not returned yet (a sink called with its first
            # output, in the plex's thread), or one that took an ended one's name.
            self._sync_members()
            member = self._members.get(name)
        if member is None:
            raise not_a_member(name, self._members)
        return member

    def transcript(self, since: float | None = None) -> str:
        bus = self._async.bus
        if bus.from_threads and self._loop is not None and not self._in_own_thread():
            self._call(_flushed(bus))  # (what you sent last is in it)
        return self._async.transcript(since)

    def spawn(
        self,
        name: str,
        cmd: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        pty: PtyOption | None = None,
        stderr: StderrMode = "apart",
        shell: bool = False,
        ready: str | re.Pattern[str] | None = None,
        ready_timeout: float | None = None,
        stop_signal: int | str = signal.SIGTERM,
        background: bool = False,
    ) -> Member:
        try:
            self._call(self._async.spawn(name, cmd, env=env, cwd=cwd, pty=pty, stderr=stderr,
                                         shell=shell, ready=ready, ready_timeout=ready_timeout,
                                         stop_signal=stop_signal, background=background))
        finally:
            self._sync_members()
        return self._members[name]

    def _sync_members(self) -> None:
        """Mirror the async plex's members, also after a failed spawn or load (which may
        have added some, or freed a name). (Under a lock: the caller's thread and the plex's
        may both do it, and one member gets one handle.)"""
        with self._members_lock:
            current = dict(self._async.members)
            mirror: Members[Member] = Members()
            for name, member in current.items():
                held = self._members.get(name)
                mirror[name] = (held if held is not None and held._member is member
                                else Member(self, member))
            # A new dict, not this one changed: a thread iterating what members gave it
            # goes on over that.
            self._members = mirror

    def remove(self, name: str) -> None:
        """:meth:`AsyncPlex.remove`: stop member ``name`` if it runs, and let it go."""
        try:
            self._call(self._async.remove(name))
        finally:
            self._sync_members()

    def expect_any(self, patterns: Mapping[str, Pattern | Patterns],
                   timeout: float | None = None) -> tuple[Member, re.Match[str] | None]:
        member, match = self._call(self._async.expect_any(patterns, timeout))
        return self._members[member.name], match

    def load(self, path: str | os.PathLike[str]) -> Scenario:
        try:
            return self._call(self._async.load(path))
        finally:
            self._sync_members()

    def run_steps(self) -> None:
        self._call(self._async.run_steps())

    def close(self) -> None:
        """Stop every member and the background thread.

        A Ctrl-C meanwhile skips what is left of the graces (SIGKILL to every member), as a
        second Ctrl-C does in a run; ``close`` still ends all it began (members, thread,
        loop), whatever Ctrl-Cs come, then raises ``KeyboardInterrupt``. Called from two
        threads at once, one closes and the other waits for it (a Ctrl-C as it waits skips
        the graces of that close, and is raised once it is over).
        """
        if self._loop is not None and os.getpid() == self._pid:
            self._refuse_own_thread()  # (first: a sink's close would wait on the lock for ever)
        interrupted = self._take_turn()
        try:
            self._close_once(interrupted)
        finally:
            self._lifecycle.release()
        if interrupted:
            raise KeyboardInterrupt

    def _take_turn(self) -> bool:
        """Take the lock :meth:`start` and :meth:`close` hold; whether a Ctrl-C came while
        another thread held it. Each one that comes makes the close under way skip what is
        left of its graces, as a Ctrl-C in that close would."""
        interrupted = False
        while True:
            try:
                self._lifecycle.acquire()
                return interrupted
            except KeyboardInterrupt:
                interrupted = True
                loop, engine = self._loop, self._async._engine
                if loop is not None and engine is not None:
                    with contextlib.suppress(RuntimeError):  # (its loop closed meanwhile)
                        loop.call_soon_threadsafe(engine.force_stop)

    def _close_once(self, interrupted_before: bool) -> None:
        if self._loop is None:
            return
        if os.getpid() != self._pid:  # the parent's plex: a forked child just lets go of it
            self._loop = None
            return
        interrupted: list[bool] = [True] if interrupted_before else []
        while True:
            try:
                self._close(interrupted)
                break
            except KeyboardInterrupt:
                if self._loop is None:
                    raise  # (the end: all it began is over)
                # A Ctrl-C as close() began, before its handler was in: it counts as one
                # that came after, and the close goes on.
                interrupted[:] = [True]
        if interrupted and not interrupted_before:  # (that one is raised by close)
            raise KeyboardInterrupt

    def _close(self, interrupted: list[bool]) -> None:
        loop = self._loop
        assert loop is not None

        def on_ctrl_c() -> None:
            if not interrupted:
                interrupted.append(True)
                engine = self._async._engine
                if engine is not None:
                    loop.call_soon_threadsafe(engine.force_stop)

        with ctrl_c_calls(on_ctrl_c):
            if self._dropped is not None:
                self._dropped.detach()  # (once the handler is in: close now ends it all)
            if interrupted and (engine := self._async._engine) is not None:
                loop.call_soon_threadsafe(engine.force_stop)
            closing = asyncio.run_coroutine_threadsafe(self._async.aclose(), loop)
            try:
                closing.result()
            except BaseException:
                if not closing.done():
                    # Interrupted another way (a SIGINT handler of yours that raises, say):
                    # as by a Ctrl-C, and what was begun still ends before this goes on.
                    despite_handlers(on_ctrl_c)
                    while not closing.done():
                        with contextlib.suppress(BaseException):
                            closing.result()
                raise
            finally:
                self._stop_thread()

    def _stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None:
            return  # (stopped meanwhile: close() from a signal handler, during close())
        with self._calls_lock:
            self._calls_open = False  # (what was handed over before runs, or is cancelled)
        raised = despite_handlers(lambda: loop.call_soon_threadsafe(loop.stop))
        if thread is not None:
            raised = despite_handlers(thread.join) or raised
        raised = despite_handlers(loop.close) or raised
        self._loop = None
        if raised is not None:
            raise raised
