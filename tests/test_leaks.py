"""What casts leave behind in pipeplex's own process: descriptors, threads, children.

A program using the API (a pytest session) starts and closes hundreds of casts in one
process; whatever one of them leaves open adds up until the process is out of
descriptors. Each test counts its own process's descriptors, threads and children
before and after, and waits for them with a deadline, never a sleep.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from pipeplex import Bus, CastSpec, ProcSpec
from pipeplex.engine.engine import Engine

DEADLINE = 5.0
"""Seconds what a cast opened may take to be let go of, far more than it needs."""


def descriptors() -> dict[int, str]:
    """This process's open descriptors, and what each one is."""
    found = {}
    for entry in os.listdir("/proc/self/fd"):  # (listdir's own is closed by the readlink)
        try:
            found[int(entry)] = os.readlink(f"/proc/self/fd/{entry}")
        except OSError:
            pass
    return found


def children() -> set[int]:
    """This process's children, zombies included, whichever thread started them."""
    return {int(pid) for task in os.listdir("/proc/self/task")
            for pid in Path(f"/proc/self/task/{task}/children").read_text().split()}


def new_since(before: dict[int, str]) -> dict[int, str]:
    """The descriptors open now that were not ``before`` (or are something else now),
    after waiting up to :data:`DEADLINE` for them to go."""
    deadline = time.monotonic() + DEADLINE
    while True:
        now = descriptors()
        new = {fd: what for fd, what in now.items() if before.get(fd) != what}
        if not new or time.monotonic() > deadline:
            return new
        time.sleep(0.01)  # (polled against a deadline: nothing tells when an fd closes)


@pytest.mark.parametrize("pty", ["pipes", "stdout", "full"])
def test_a_run_that_fails_lets_go_of_its_members_descriptors(pty: str) -> None:
    """The run ends on an error (a bug) while a member runs: SIGKILLed, its exit not read
    yet. Its pidfd, its pipes and its terminal's master are closed and the child reaped by
    the time run() raises, not left to a loop that may never run again (they were, for
    ever: a full terminal's master kept for the exit that nobody would read)."""
    before = descriptors()
    kids = children()

    async def crashed() -> None:
        engine = Engine(CastSpec((ProcSpec("a", ("sleep", "30"), pty=pty),)), Bus())
        run = asyncio.ensure_future(engine.run())
        await engine.wait_up()
        engine.crash(RuntimeError("a bug"))
        with pytest.raises(ExceptionGroup) as raised:
            await run
        assert raised.group_contains(RuntimeError, match="a bug")
        # Not one turn of the loop after the run: what is open now stays open.
        left = {fd: what for fd, what in descriptors().items() if before.get(fd) != what
                and not what.startswith(("anon_inode:[eventpoll]", "socket:"))}  # (the loop's)
        assert left == {}
        assert engine.members["a"].returncode is not None

    asyncio.run(crashed())
    assert new_since(before) == {}
    assert children() == kids
