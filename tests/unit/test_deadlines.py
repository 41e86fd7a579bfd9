"""Deadlines: one loop timer wakes every waiter at its time, and done waiters do not pile up."""

from __future__ import annotations

import asyncio

from pipeplex.expect.deadlines import Deadlines


async def _woken_at(waiter: asyncio.Future[None]) -> float:
    await asyncio.wait_for(waiter, 10)  # a bound for a broken build, never reached otherwise
    return asyncio.get_running_loop().time()


def test_waiters_wake_at_their_deadlines_in_order() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines()
        now = loop.time()
        waiters = [loop.create_future() for _ in range(3)]
        wanted = [now + 0.01, now + 0.02, now + 0.03]
        for when, waiter in zip(wanted, waiters, strict=True):
            assert deadlines.add(when, waiter) is None  # in order: the shared timer
        woken = [await _woken_at(w) for w in waiters]
        assert all(at >= when - 1e-6 for at, when in zip(woken, wanted, strict=True))
        assert len(deadlines) == 0

    asyncio.run(main())


def test_an_earlier_deadline_than_the_last_gets_a_timer_of_its_own() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines()
        late, early = loop.create_future(), loop.create_future()
        assert deadlines.add(loop.time() + 60, late) is None
        handle = deadlines.add(loop.time() + 0.01, early)
        assert handle is not None
        await _woken_at(early)
        assert not late.done()
        late.cancel()

    asyncio.run(main())


def test_a_waiter_done_early_is_left_alone() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines()
        answered, waiting = loop.create_future(), loop.create_future()
        deadlines.add(loop.time() + 0.01, answered)
        deadlines.add(loop.time() + 0.02, waiting)
        answered.set_result(None)  # output came first
        await _woken_at(waiting)

    asyncio.run(main())


def test_done_waiters_behind_a_long_wait_are_swept() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines()
        long_wait = loop.create_future()
        deadlines.add(loop.time() + 3600, long_wait)
        for _ in range(10_000):  # round trips answered while the long wait goes on
            trip = loop.create_future()
            deadlines.add(loop.time() + 3600, trip)
            trip.set_result(None)
        assert len(deadlines) <= 130
        long_wait.cancel()

    asyncio.run(main())


def test_letting_go_keeps_the_deadline_of_a_wait_still_on() -> None:
    """let_go (a plex closing) drops the answered waits, and the timer only once none is
    left: one still waiting wakes at its deadline all the same."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines()
        waiting = loop.create_future()
        deadlines.add(loop.time() + 0.02, waiting)
        for _ in range(100):
            answered = loop.create_future()
            deadlines.add(loop.time() + 3600, answered)
            answered.set_result(None)
        deadlines.let_go()
        assert len(deadlines) == 1
        await _woken_at(waiting)
        deadlines.let_go()
        assert len(deadlines) == 0

    asyncio.run(main())
