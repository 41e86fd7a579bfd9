"""How long a run waits for a dead run's guardian to stop what that run left: until it is
all gone, the time is up, or that guardian has exited, whichever comes first."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator

import pytest

from pipeplex.inputs.folder import _outliving

DEADLINE = 10.0


class Left:
    """What a dead run left (``left``, ``sleep 60``) and its guardian (``guardian``, another
    one), watched through ``pidfd``."""

    def __init__(self) -> None:
        self.left = subprocess.Popen(["sleep", "60"])
        self.guardian = subprocess.Popen(["sleep", "60"])
        self.pidfd = os.pidfd_open(self.guardian.pid)

    def outliving(self, seconds: float) -> set[int]:
        """:func:`_outliving` of ``left``, for at most ``seconds``, until the guardian exits."""
        async def main() -> set[int]:
            async with asyncio.timeout(DEADLINE):  # (far below 60 s: a wait cut short)
                return await _outliving([self.left.pid], seconds, until=self.pidfd)

        return asyncio.run(main())


@pytest.fixture
def dead_run() -> Iterator[Left]:
    found = Left()
    yield found
    os.close(found.pidfd)
    for proc in (found.left, found.guardian):
        proc.kill()
        proc.wait()


def test_the_wait_ends_once_the_guardian_has_exited(dead_run: Left) -> None:
    """A guardian gone will stop nothing more: what is left is said at once, not after the
    guardian's time (60 s here, which the test's deadline would cut short)."""
    dead_run.guardian.kill()
    dead_run.guardian.wait()
    assert dead_run.outliving(60.0) == {dead_run.left.pid}


def test_a_live_guardian_is_waited_for_until_what_was_left_has_ended(dead_run: Left) -> None:
    """While the guardian lives, the wait ends with what it stops: nothing is left."""
    dead_run.left.kill()  # (as the guardian would have)
    assert dead_run.outliving(60.0) == set()
    assert dead_run.guardian.poll() is None


def test_what_a_live_guardian_does_not_stop_in_its_time_is_left(dead_run: Left) -> None:
    """A guardian that lives but does nothing (stopped) has its time, no more."""
    assert dead_run.outliving(0.1) == {dead_run.left.pid}
