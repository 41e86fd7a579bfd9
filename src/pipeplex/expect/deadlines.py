"""When waiting expectations time out: one loop timer for all of them.

A timer per wait (``loop.call_at`` then ``cancel``) goes through the loop's heap, whose
entries compare in Python, and leaves a cancelled entry behind to be popped later: about a
seventh of a send/expect round trip. Expectations of a round trip come and go thousands of
times a second with the same timeout, so their deadlines arrive in order; a queue in that
order needs one timer, for its first live deadline. A deadline earlier than the last one
queued (a shorter timeout) gets a loop timer of its own.

Waiters are futures; one that is done (woken by output, or cancelled) is simply skipped.
Done waiters are swept out whenever the queue has doubled (one pass over it, not a check
on every wait), so neither round trips nor a long wait at the front make memory grow.

The timer stays when the waits end: it fires at the deadline it was set for, finds them
done, and is not set again. Cancelling it at the end of each wait would bring back a timer
per round trip; but whoever ends the waits for good (a plex that closes) calls
:meth:`Deadlines.let_go`, so that no timer of theirs stays in the caller's loop (a test
suite's loop, after hundreds of plexes, held one for each until its deadline).
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ("Deadlines", "wake")

_SWEEP_MIN = 64


def wake(waiter: asyncio.Future[None]) -> None:
    """Resolve ``waiter`` unless it is done already (answered, or cancelled)."""
    if not waiter.done():
        waiter.set_result(None)


class Deadlines:
    """Wakes each waiter at its deadline (in ``loop.time()``) unless it is done by then."""

    def __init__(self) -> None:
        self._queue: deque[tuple[float, asyncio.Future[None]]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._sweep_at = _SWEEP_MIN

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, deadline: float, waiter: asyncio.Future[None]) -> asyncio.TimerHandle | None:
        """Wake ``waiter`` at ``deadline``; a handle to cancel when it got a timer of its own."""
        queue = self._queue
        if queue and deadline < queue[-1][0]:
            return waiter.get_loop().call_at(deadline, wake, waiter)
        queue.append((deadline, waiter))  # answered waits ahead of it go at the next sweep
        if len(queue) > self._sweep_at:
            queue = self._sweep()
        if self._timer is None:
            loop = waiter.get_loop()
            self._timer = loop.call_at(queue[0][0], self._expire, loop)
        return None

    def let_go(self) -> None:
        """Let go of the answered waits and, when no wait is left, of the loop timer."""
        if not self._sweep() and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        queue = self._queue
        now = loop.time()
        while queue and (queue[0][1].done() or queue[0][0] <= now):
            wake(queue.popleft()[1])
        if queue:
            self._timer = loop.call_at(queue[0][0], self._expire, loop)

    def _sweep(self) -> deque[tuple[float, asyncio.Future[None]]]:
        self._queue = deque(entry for entry in self._queue if not entry[1].done())
        self._sweep_at = max(_SWEEP_MIN, 2 * len(self._queue))
        return self._queue
