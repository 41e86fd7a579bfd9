"""What casts leave behind in pipeplex's own process: descriptors, threads, children, and
timers in the caller's event loop.

A program using the API (a pytest session) starts and closes hundreds of casts in one
process; whatever one of them leaves open adds up until the process is out of
descriptors. Each test counts its own process's descriptors, threads and children
before and after, and waits for them with a deadline, never a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import os
import re
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest

from pipeplex import (
    AsyncPlex,
    Bus,
    CastSpec,
    NotReady,
    PipeplexError,
    Plex,
    ProcSpec,
    SpawnError,
)
from pipeplex.engine.engine import Engine
from pipeplex.participants import process
from pipeplex.plex.arguments import PtyOption, pty_mode
from pipeplex.scenario import load_scenario
from pipeplex.scenario.suite import run_scenario

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
    found: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        with contextlib.suppress(FileNotFoundError):  # (a thread that ended meanwhile)
            found.update(map(int, Path(f"/proc/self/task/{task}/children").read_text().split()))
    return found


@pytest.mark.parametrize("pty", ["pipes", "stdout", "full"])
def test_a_run_that_fails_lets_go_of_its_members_descriptors(
        pty: Literal["pipes", "stdout", "full"]) -> None:
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
    assert {fd: what for fd, what in descriptors().items() if before.get(fd) != what} == {}
    assert children() == kids


def test_a_loop_closed_right_after_an_exit_was_seen_is_not_kept() -> None:
    """When a pass of a loop saw exits is kept until its next pass; a loop closed before
    that pass (a Plex's, stopped in the pass that read a member's exit) was kept for ever
    with it, one per such plex."""
    loop = asyncio.new_event_loop()
    process._seen_now(loop)
    loop.close()
    closed = weakref.ref(loop)
    del loop
    gc.collect()
    assert closed() is None


# Many plexes in one process, as a pytest session starts them --------------------------

PY = sys.executable
MODES: tuple[PtyOption, ...] = (False, "stdout", True)
IGNORES_TERM = [PY, "-c", "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('up', flush=True); signal.pause()"]


async def _async_plex(i: int, folder: Path) -> None:
    """One AsyncPlex, the ``i``-th of a mix of what a test suite does with them."""
    pty = MODES[i % 3]
    kind = i % 8
    if kind == 0:  # a member on each kind of output, sent to and expected from
        async with AsyncPlex(pty=pty) as plex:
            cat = await plex.spawn("cat", "cat")
            cat.sendline("hi")
            await cat.expect("hi")
    elif kind == 1:  # a member that cannot start (its interpreter is missing)
        async with AsyncPlex(pty=pty) as plex:
            with pytest.raises(SpawnError):
                await plex.spawn("bad", [str(folder / "bad")])
    elif kind == 2:  # one that ignores SIGTERM, with a tiny grace; and one not ready
        async with AsyncPlex(grace=0.01, pty=pty) as plex:
            await (await plex.spawn("stubborn", IGNORES_TERM)).expect("up")
            with pytest.raises(NotReady):
                await plex.spawn("slow", ["sleep", "30"], ready="never", ready_timeout=0.01)
    elif kind == 3:  # restarts, by its policy and asked for; spawn and remove
        async with AsyncPlex(pty=pty, run_dir=folder / f"run{i}") as plex:
            await plex.load(folder / "cast.toml")
            await plex["r"].expect("up")
            await plex["other"].restart()
            for name in ("a", "b"):
                member = await plex.spawn(name, "cat")
                member.sendline(name)
                await member.expect(name)
                await plex.remove(name)
    elif kind == 4:  # closed while a member starts
        plex = AsyncPlex(grace=0.01, pty=pty)
        await plex.start()
        spawning = asyncio.ensure_future(plex.spawn("slow", ["sleep", "30"], ready="never"))
        await plex.engine.wait_began()
        await plex.aclose()
        with pytest.raises(PipeplexError):
            await spawning
    elif kind == 5:  # a close cut short: SIGKILL at once
        plex = AsyncPlex(grace=30, pty=pty)
        await plex.start()
        await (await plex.spawn("stubborn", IGNORES_TERM)).expect("up")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(plex.aclose(), 0.01)
    elif kind == 6:  # a scenario, as pipeplex test runs each of its files in one loop
        outcome = await run_scenario(load_scenario(folder / "scenario.toml"), grace=0.5)
        assert outcome.ok, outcome.failure
    else:  # a run that fails (a bug) while its member runs
        engine = Engine(CastSpec((ProcSpec("a", ("sleep", "30"), pty=pty_mode(pty)),)), Bus())
        run = asyncio.ensure_future(engine.run())
        await engine.wait_up()
        engine.crash(RuntimeError("a bug"))
        with pytest.raises(ExceptionGroup):
            await run


class _TimerCountingLoop(asyncio.SelectorEventLoop):
    """An event loop that keeps the timers it hands out, to tell which are still to fire."""

    def __init__(self) -> None:
        super().__init__()
        self._timers: list[asyncio.TimerHandle] = []

    def call_at(self, when: float, callback: Callable[..., object], *args: object,
                context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        timer = super().call_at(when, callback, *args, context=context)
        self._timers.append(timer)
        return timer

    def pending_timers(self) -> int:
        now = self.time()
        self._timers = [t for t in self._timers if not t.cancelled() and t.when() > now]
        return len(self._timers)


def _pending_timers() -> int:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, _TimerCountingLoop)
    return loop.pending_timers()


def _sync_plex(i: int) -> None:
    """One Plex (its own thread and loop), interrupted by a Ctrl-C every other time."""
    with Plex(pty=MODES[i % 3]) as plex:
        cat = plex.spawn("cat", "cat")
        cat.sendline("hi")
        cat.expect("hi")
        if i % 2:
            threading.Timer(0.01, os.kill, (os.getpid(), signal.SIGINT)).start()
            with pytest.raises(KeyboardInterrupt):
                cat.expect("never", timeout=DEADLINE)


def _footprint() -> tuple[int, int, int, frozenset[int]]:
    """What this process holds: its descriptors, its threads (Python's, and the kernel's),
    its children."""
    return (len(descriptors()), threading.active_count(), len(os.listdir("/proc/self/task")),
            frozenset(children()))


def _settled(baseline: tuple[int, int, int, frozenset[int]]) -> tuple[int, int, int,
                                                                       frozenset[int]]:
    """The footprint once it is back to ``baseline``, or as it is after :data:`DEADLINE`
    (a thread that was told to end may still be on its way out)."""
    deadline = time.monotonic() + DEADLINE
    while (now := _footprint()) != baseline and time.monotonic() < deadline:
        pass  # (nothing tells when the kernel let go of a thread that ended)
    return now


def _rss() -> int:
    """This process's resident memory, in KiB."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status)[1])  # type: ignore[index]


def _many_plexes(folder: Path, count: int) -> list[int]:
    """Start and close ``count`` plexes of each kind (async in one loop, and sync), checking
    that the process is back where it began after each; the resident memory measured every
    tenth round, once the first round has filled the caches."""
    (folder / "bad").write_text("#!/nonexistent/interpreter\n")
    (folder / "bad").chmod(0o755)
    (folder / "cast.toml").write_text(
        '[procs.r]\ncmd = "sh -c \'echo up; exit 3\'"\non_exit = "restart"\nmax_restarts = 2\n'
        '[procs.other]\ncmd = "cat"\n')
    (folder / "scenario.toml").write_text(  # (its expect waits: the answer comes later)
        '[procs.echo]\ncmd = "cat"\n[[step]]\nsend = "hi"\nto = "echo"\n'
        '[[step]]\nexpect = "^hi$"\nin = "echo"\n')
    rss: list[int] = []

    async def rounds() -> None:
        tasks, within, timers = asyncio.all_tasks(), _footprint(), _pending_timers()
        for i in range(count):
            await _async_plex(i, folder)
            # Not a turn of the loop after the close: all of it was let go of by then.
            assert (asyncio.all_tasks(), _footprint(), _pending_timers()) == (
                tasks, within, timers), f"round {i}"
            if i % 10 == 1:
                gc.collect()
                rss.append(_rss())

    baseline = _footprint()
    with asyncio.Runner(loop_factory=_TimerCountingLoop) as runner:
        runner.run(rounds())
    assert _settled(baseline) == baseline
    for i in range(count // 8 + 1):
        _sync_plex(i)
        assert _settled(baseline) == baseline
    return rss


def test_plexes_started_and_closed_leave_nothing_behind(tmp_path: Path) -> None:
    """Every kind of plex a test suite starts, closed in every way: the process's
    descriptors, threads and children, and the timers in the loop the plexes ran in, are
    back to what they were after each one (a plex whose expectation had waited left the
    timer of its deadline there, 30 s by default, for each plex of a session)."""
    _many_plexes(tmp_path, 32)


@pytest.mark.stress
@pytest.mark.skipif(os.environ.get("PIPEPLEX_STRESS") != "1",
                    reason="heavy (about a minute): set PIPEPLEX_STRESS=1")
def test_hundreds_of_plexes_in_one_process_use_bounded_memory(tmp_path: Path) -> None:
    """A session's worth of plexes: nothing left behind, and the resident memory does not
    grow with their number (the caches full, what it gains past the first 100 is noise)."""
    rss = _many_plexes(tmp_path, 350)
    assert rss[-1] - rss[len(rss) // 3] < 4096, rss
