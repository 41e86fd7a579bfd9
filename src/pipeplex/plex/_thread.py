"""The blocking API's background thread, and the calls that cross into it.

Apart from :class:`~.sync_plex.Plex`, which holds the API: here is how a call made in the
caller's thread runs in the plex's loop and can be abandoned at any moment (a Ctrl-C), how
a Ctrl-C while closing becomes a callback instead of an exception at whatever line it lands
on, the thread's loop itself, and what happens to a plex dropped while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import warnings
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..errors import ours_in_tracebacks

if TYPE_CHECKING:
    from .async_plex import AsyncPlex

__all__ = ("Call", "ctrl_c_calls", "despite_handlers", "dropped_running", "serve")
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)

T = TypeVar("T")
_CANCEL_WAIT = 5.0
"""Seconds an interrupted synchronous call waits for the loop to cancel its work."""


def despite_handlers(step: Callable[[], object]) -> BaseException | None:
    """Run ``step`` to its end, again after each KeyboardInterrupt or SystemExit a signal
    handler raises in it (Ctrl-C held down, under a handler of the program's own); the
    first of those, for the caller to raise once everything is done."""
    raised: BaseException | None = None
    while True:
        try:
            step()
            return raised
        except (KeyboardInterrupt, SystemExit) as exc:
            raised = raised or exc


@contextlib.contextmanager
def ctrl_c_calls(callback: Callable[[], None]) -> Iterator[None]:
    """Within the block, a Ctrl-C (SIGINT) calls ``callback`` instead of raising
    ``KeyboardInterrupt`` at whatever line it lands on: closing must end all it began, or a
    quick double Ctrl-C would leave members running and the loop open. Only in the main
    thread (the only one that gets it), and only over Python's own handler (yours stays).
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: callback())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Call(Generic[T]):
    """A coroutine run in the plex's loop for a caller's thread, which the caller may
    abandon at any moment (Ctrl-C): once :meth:`abandon` returned, it does nothing more."""

    def __init__(self, coroutine: Coroutine[Any, Any, T]) -> None:
        self._coroutine = coroutine
        self._task: asyncio.Task[Any] | None = None
        self._entered = False
        self._abandoned = False
        self._ended = threading.Event()

    async def run(self) -> T:
        self._entered = True  # (before looking at _abandoned: see abandon())
        try:
            if self._abandoned:
                self._coroutine.close()
                raise asyncio.CancelledError
            self._task = asyncio.current_task()
            return await self._coroutine
        finally:
            self._ended.set()

    def abandon(self, loop: asyncio.AbstractEventLoop) -> None:
        self._abandoned = True
        if not self._entered:
            return  # it will see _abandoned when it starts, if it ever does
        try:
            loop.call_soon_threadsafe(self._cancel)
        except RuntimeError:  # the loop is closed: the plex closed (in a signal handler of
            return  # this thread, say) and its loop's end cancelled the call already
        self._ended.wait(_CANCEL_WAIT)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def cut_off(self) -> None:
        """The loop ended before this call began (the plex closed in another thread as it
        was made): what it would have run is closed, never to run."""
        if not self._entered:
            self._coroutine.close()


def serve(loop: asyncio.AbstractEventLoop) -> None:
    """The plex's thread: its loop, until stopped; then closed there (also when nobody joins
    the thread: a plex dropped without close).

    A call another thread made as the plex closed may still be under way when the loop
    stops (begun, only handed over, or ended with its answer not yet passed on): it is
    cancelled and run to its end first, as ``asyncio.run`` ends its tasks, so that its
    caller gets an answer instead of waiting for ever on a loop that will not run again.
    """
    try:
        loop.run_forever()
        loop.run_until_complete(_cancel_left(asyncio.all_tasks(loop)))
    finally:
        loop.close()


async def _cancel_left(tasks: set[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=_CANCEL_WAIT)
    await asyncio.sleep(0)  # (the answers of the last tasks go to their callers' threads)


def dropped_running(plex: AsyncPlex, loop: asyncio.AbstractEventLoop, pid: int) -> None:
    """A started :class:`Plex` was dropped without :meth:`~Plex.close`: said, as an unclosed
    file is, and closed in its own thread, which then ends (nothing waits for that here:
    this may run in any thread, that one included). Not in a forked child: the plex is the
    parent's."""
    if os.getpid() != pid:
        return
    warnings.warn("a pipeplex.Plex was dropped while running, without close(): its members "
                  "are being stopped; use it as 'with Plex() as plex:'", ResourceWarning,
                  stacklevel=1)
    if loop.is_closed():
        return
    closing = asyncio.run_coroutine_threadsafe(plex.aclose(), loop)
    closing.add_done_callback(lambda _: loop.call_soon_threadsafe(loop.stop))
