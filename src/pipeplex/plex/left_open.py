"""A plex its caller left open, found and closed by whoever knows that its time is over.

The pytest plugin, at the end of a test: a ``Plex`` the test started and never closed would
otherwise run on until the cycle collector frees it (its members hold it), and its warning
would then land in a later, unrelated test; an ``AsyncPlex`` left open under
``asyncio.run`` has had its members killed, without their grace, and is said only once it
is collected. :func:`close_left_open` closes the one and tells of both, with how to write
it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Iterable

from ..errors import PipeplexError
from .async_plex import AsyncPlex
from .sync_plex import Plex

__all__ = ("close_left_open", "has_closed")

CLOSE_MARGIN = 10.0
"""Seconds beyond the grace that closing a plex whose loop another thread runs may take."""


def close_left_open(cast: AsyncPlex | Plex) -> str | None:
    """Close ``cast`` if it is still open; what that was, to be said after "... left" (None:
    it had been closed, as it should be). Its members are stopped with the usual escalation (stdin,
    SIGTERM, the grace, SIGKILL).

    Raises:
        PipeplexError: an AsyncPlex that cannot be closed from here (why): its loop is the
            one running here, or its loop's thread did not close it in time.
    """
    if isinstance(cast, Plex):
        if cast._loop is None:
            return None
        running = _running(m.name for m in cast.members.values() if m.running)
        cast.close()
        return (f"a pipeplex.Plex running, without close(){running}: stopped at its end; "
                "use it as 'with Plex() as plex:', or the plex fixture")
    ended = cast.left_open()
    if ended is not None:  # (asyncio.run ended under it: said here, not when collected)
        cast._killed_unclosed = None
        return ended
    run = cast._run
    if has_closed(cast) or run is None:
        return None
    running = _running(name for name, member in cast.members.items() if member.running)
    _close_in(run.get_loop(), cast)
    return (f"a pipeplex.AsyncPlex open, without aclose(){running}: stopped at its end; "
            "use it as 'async with AsyncPlex() as plex:'")


def has_closed(cast: AsyncPlex | Plex) -> bool:
    """Whether ``cast`` was closed (or is closing), as it should be: nothing of it is left
    to close or to tell (an AsyncPlex whose loop ended under it is still to be told)."""
    if isinstance(cast, Plex):
        return cast._loop is None
    return cast.left_open() is None and (
        cast._engine is None or cast._run is None or cast._closing is not None)


def _close_in(loop: asyncio.AbstractEventLoop, cast: AsyncPlex) -> None:
    """Close ``cast`` in its own loop: run here if nothing runs it, else handed to the
    thread that runs it (never this one's: a loop does not run inside itself)."""
    if not loop.is_running():
        loop.run_until_complete(cast.aclose())
        return
    try:
        here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    if here is loop:
        raise PipeplexError("its event loop is the one this code runs in: close it there, "
                            "with 'await plex.aclose()'")
    closing = asyncio.run_coroutine_threadsafe(cast.aclose(), loop)
    wait = cast.grace + CLOSE_MARGIN
    try:
        closing.result(timeout=wait)
    except concurrent.futures.TimeoutError:
        closing.cancel()
        raise PipeplexError(f"the thread that runs its event loop did not close it within "
                            f"{wait:g} s") from None


def _running(names: Iterable[str]) -> str:
    """``", with members a, b"``, or nothing for none."""
    listed = list(names)
    if not listed:
        return ""
    return f", with {'member' if len(listed) == 1 else 'members'} {', '.join(listed)}"
