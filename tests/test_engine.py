"""The engine with real processes and an injected clock for its timing rules."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from pipeplex import (
    Bus,
    CastSpec,
    Event,
    Exited,
    InputSent,
    Note,
    Output,
    ProcSpec,
    Ready,
    Started,
)
from pipeplex.engine._exit_policy import BACKOFF_CAP, BACKOFF_START, backoff_delay
from pipeplex.engine.engine import Engine
from pipeplex.errors import PipeplexError
from pipeplex.participants import _output, process
from pipeplex.scenario.run import _why_gone


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def notes(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, Note)]


def _engine(*procs: ProcSpec, delays: list[float] | None = None) -> tuple[Engine, Recorder]:
    bus = Bus()
    recorder = Recorder()
    bus.subscribe(recorder)

    async def instant_sleep(delay: float) -> None:
        if delays is not None:
            delays.append(delay)

    return Engine(CastSpec(procs), bus, grace=2.0, sleep=instant_sleep), recorder


def test_a_cast_of_no_member_that_nothing_holds_is_over_at_once() -> None:
    """Nothing would end it, and a stop had nothing to wait for: it ran for ever."""
    engine, _ = _engine()
    assert asyncio.run(asyncio.wait_for(engine.run(), 30)) == 0


def test_a_crash_loop_backs_off_exponentially_then_gives_up() -> None:
    """Restarts wait 0.1, 0.2, 0.4 ... s; past max_restarts the cast stops with the status."""
    delays: list[float] = []
    crasher = ProcSpec("crasher", ("sh", "-c", "exit 3"), on_exit="restart", max_restarts=4)
    engine, recorder = _engine(crasher, delays=delays)
    status = asyncio.run(engine.run())
    assert delays == [0.1, 0.2, 0.4, 0.8]
    assert status == 3
    assert engine.restarts["crasher"] == 4
    assert sum(isinstance(e, Started) for e in recorder.events) == 5
    assert any("restarted 4 times; giving up" in n for n in recorder.notes())
    # What stopped the cast, for whoever asks later (a spawn refused: "the plex has stopped")
    assert engine.stop_reason.startswith("crasher exited with code 3 and was restarted 4 "
                                         "times; giving up and stopping the cast")
    said = recorder.notes()  # (once: not again as the stop's reason)
    assert sum("giving up" in n or "gave up" in n for n in said) == 1, said


def test_a_crash_loop_that_leaves_processes_keeps_one_sweep_a_member() -> None:
    """Each run's leftovers (a background job) are stopped before the next run starts;
    what is kept of that is its latest run's, not one per restart."""
    crasher = ProcSpec("crasher", ("sh", "-c", "sleep 30 >/dev/null 2>&1 & exit 3"),
                       on_exit="restart", max_restarts=5)
    engine, recorder = _engine(crasher)
    assert asyncio.run(engine.run()) == 3
    assert engine.restarts["crasher"] == 5
    assert sum("left processes in its process group" in n for n in recorder.notes()) == 6
    assert len(engine.stopper._sweeps) == 1


def test_failures_kept_are_bounded_and_the_first_decides() -> None:
    """A member that fails again and again with on_exit = "ignore" (or a stream of API
    jobs that fail) must not grow the list without end; the first failure sets the status."""
    from pipeplex.engine.verdict import MAX_FAILURES

    engine, _ = _engine(ProcSpec("a", ("true",)))
    for i in range(MAX_FAILURES + 500):
        engine.record_failure("a", 1 + i % 7, f"failure {i}", at=float(i))
    assert len(engine.failures) == MAX_FAILURES
    assert engine.failures[0].reason == "failure 0" and engine.exit_status() == 1


def test_giving_up_says_in_a_row_when_earlier_restarts_do_not_count(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A run long enough to start the count afresh came in between: the note and what its
    dependents wait for say the restarts were in a row, as the summary counts all of them.
    The second run is made to count as long (RESTART_RESET 0 while it runs)."""
    from pipeplex.engine import _exit_policy as policy_module

    crasher = ProcSpec("crasher", ("sh", "-c", "echo up; exit 3"), on_exit="restart",
                       max_restarts=2, ready="^up$")
    gate = ProcSpec("gate", ("sleep", "60"), ready="never")
    # (Held back by gate: it never starts, and its summary blames the one that failed.)
    after = ProcSpec("after", ("true",), after=("gate", "crasher"))
    engine, recorder = _engine(crasher, gate, after)
    monkeypatch.setattr(policy_module, "RESTART_RESET", 1e9)
    runs = 0

    def long_second_run(event: Event) -> None:
        nonlocal runs
        if isinstance(event, Started) and event.name == "crasher":
            runs += 1
            monkeypatch.setattr(policy_module, "RESTART_RESET", 0.0 if runs == 2 else 1e9)

    engine.bus.subscribe(long_second_run)
    assert asyncio.run(engine.run()) == 3
    assert engine.restarts["crasher"] == 3
    assert any("exited with code 3 and was restarted 2 times in a row; giving up" in n
               for n in recorder.notes()), recorder.notes()
    summaries = [n for n in recorder.notes() if n.startswith("summary: ")]
    assert any(re.fullmatch(r"summary: exited with code 3 after [\d.]+ s, 3 restarts", n)
               for n in summaries), summaries
    assert ("summary: never started (waited for crasher, which gave up after 2 restarts in a "
            "row)") in summaries, summaries


def test_a_long_run_that_never_got_ready_does_not_start_the_count_afresh(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that crashes at start, however slowly (a migration that fails after a
    minute), is not restarted forever: only a run that got ready starts the count afresh.
    Every run is made to count as long (RESTART_RESET 0)."""
    from pipeplex.engine import _exit_policy as policy_module

    crasher = ProcSpec("crasher", ("sh", "-c", "exit 3"), on_exit="restart", max_restarts=2,
                       ready="never")
    engine, recorder = _engine(crasher)
    monkeypatch.setattr(policy_module, "RESTART_RESET", 0.0)
    assert asyncio.run(engine.run()) == 3
    assert engine.restarts["crasher"] == 2
    assert any("exited with code 3 before it was ready and was restarted 2 times; giving up"
               in n for n in recorder.notes()), recorder.notes()


def test_a_stop_during_the_backoff_does_not_count_a_restart() -> None:
    """Stopped while it waits to restart: the restart that never happened is not counted,
    and its last exit (3) is how it ended: the run's status, even though it was stopped."""
    crasher = ProcSpec("crasher", ("sh", "-c", "exit 3"), on_exit="restart")

    async def main() -> tuple[int, Engine]:
        stopped = asyncio.Event()  # set when the stop came during the backoff

        async def stop_in_the_first_wait(delay: float) -> None:
            engine.request_stop("stop")
            stopped.set()

        engine = Engine(CastSpec((crasher,)), Bus(), sleep=stop_in_the_first_wait)
        status = await engine.run()
        assert stopped.is_set()
        return status, engine

    status, engine = asyncio.run(main())
    assert engine.restarts["crasher"] == 0
    assert status == 3
    assert engine.failures[0].reason == ("crasher exited with code 3, and the cast stopped "
                                         "before its restart")


def test_backoff_is_capped() -> None:
    """The delay doubles up to its cap and stays there."""
    delays: list[float] = []
    crasher = ProcSpec("c", ("false",), on_exit="restart", max_restarts=9)
    engine, _ = _engine(crasher, delays=delays)
    asyncio.run(engine.run())
    assert max(delays) == BACKOFF_CAP
    assert delays[-1] == BACKOFF_CAP


def test_backoff_past_a_thousand_restarts_stays_at_its_cap() -> None:
    """0.1 * 2 ** 1024 overflows a float: the supervisor crashed there, SIGKILLing every
    member, after some 85 minutes of a crash loop with max_restarts above 1024."""
    assert [backoff_delay(n) for n in (0, 1, 2)] == [BACKOFF_START, 2 * BACKOFF_START,
                                                      4 * BACKOFF_START]
    assert {backoff_delay(n) for n in (6, 1023, 1024, 10**6)} == {BACKOFF_CAP}


def test_a_member_being_stopped_is_never_restarted() -> None:
    """When the cast stops, a member with on_exit = restart stays stopped."""
    sleeper = ProcSpec("sleeper", ("sleep", "60"), on_exit="restart")
    quitter = ProcSpec("quitter", ("true",))
    engine, recorder = _engine(sleeper, quitter)
    assert asyncio.run(engine.run()) == 0
    assert engine.restarts["sleeper"] == 0
    exits = {e.name: e for e in recorder.events if isinstance(e, Exited)}
    assert exits["sleeper"].stopped


def test_restart_on_request_starts_a_new_process() -> None:
    """Engine.restart stops a running member and starts it again, without its on_exit."""
    code = "import sys; print('up', flush=True); sys.stdin.read()"
    member = ProcSpec("m", (sys.executable, "-c", code), ready="^up$")

    async def scenario() -> tuple[int, list[int]]:
        engine, recorder = _engine(member)
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_event(event: Event) -> None:
            if isinstance(event, Ready) and not ready.done():
                ready.set_result(None)

        engine.bus.subscribe(on_event)
        run = asyncio.ensure_future(engine.run())
        await asyncio.wait_for(ready, 30)
        first = engine.members["m"].pid
        await engine.restart("m")
        second = engine.members["m"].pid
        assert first != second
        engine.request_stop()
        status = await asyncio.wait_for(run, 30)
        pids = [e.pid for e in recorder.events if isinstance(e, Started)]
        return status, pids

    status, pids = asyncio.run(scenario())
    assert status == 0
    assert len(pids) == 2


def test_a_restart_asks_with_the_stop_cmd_and_kills_one_that_hangs_at_the_grace(
        tmp_path: Path) -> None:
    """A restart's stop runs the member's stop_cmd, as the cast's stop does; a stop_cmd
    that hangs is killed, with its group, when the grace is over and SIGKILL ends the
    member: it is gone once the restart returns, not left to the end of the cast."""
    code = ("import signal, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('up', flush=True); sys.stdin.read(); signal.pause()")
    stuck = tmp_path / "stop.pid"
    member = ProcSpec("m", (sys.executable, "-c", code), ready="^up$", stop_timeout=0.5,
                      stop_cmd=("sh", "-c", f"echo $$ > {stuck}; exec sleep 600"))

    async def scenario() -> tuple[bool, list[str]]:
        engine, recorder = _engine(member)
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        engine.bus.subscribe(lambda e: isinstance(e, Ready) and not ready.done()
                             and ready.set_result(None))
        run = asyncio.ensure_future(engine.run())
        await asyncio.wait_for(ready, 30)
        await asyncio.wait_for(engine.restart("m"), 30)
        gone = not stuck.exists() or _gone(int(stuck.read_text()))
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return gone, recorder.notes()

    gone, notes = asyncio.run(scenario())
    assert gone, notes
    assert "closed its stdin; ran its stop_cmd (['sh', '-c', " in " ".join(notes), notes
    assert "still running 0.5 s after its stop_cmd; sent SIGKILL to its process group" in notes


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie not reaped yet counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except OSError:
        return True


async def _restart_error(engine: Engine, name: str) -> str:
    """What restarting ``name`` raised ("" if it restarted)."""
    try:
        await asyncio.wait_for(engine.restart(name), 30)
    except PipeplexError as exc:
        return str(exc)
    return ""


def _kill(pids: list[int]) -> None:
    """What a test's members left running, should the test fail before pipeplex stops it."""
    import signal

    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _marked_engine(*procs: ProcSpec, grace: float, run_id: str) -> tuple[Engine, Recorder]:
    """An engine whose members carry ``PIPEPLEX_RUN_ID`` (``run_id``, made this test
    process's own): what they leave outside their groups is found by it."""
    bus = Bus()
    recorder = Recorder()
    bus.subscribe(recorder)
    return Engine(CastSpec(procs), bus, grace=grace,
                  env_overrides={"PIPEPLEX_RUN_ID": f"{run_id}-{os.getpid()}"}), recorder


async def _running(engine: Engine, name: str) -> asyncio.Future[int]:
    """Run ``engine`` until member ``name`` is ready; the run's future."""
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_event(event: Event) -> None:
        if isinstance(event, Ready) and event.name == name and not ready.done():
            ready.set_result(None)

    engine.bus.subscribe(on_event)
    run = asyncio.ensure_future(engine.run())
    await asyncio.wait_for(ready, 30)
    return run


def test_restart_requests_that_come_together_make_one_restart() -> None:
    """Twenty requests at once: one new instance, and every request returns with it."""
    code = "import sys; print('up', flush=True); sys.stdin.read()"
    member = ProcSpec("m", (sys.executable, "-c", code), ready="^up$")

    async def scenario() -> tuple[list[int], int, int | None]:
        engine, recorder = _engine(member)
        run = await _running(engine, "m")
        await asyncio.wait_for(asyncio.gather(*(engine.restart("m") for _ in range(20))), 30)
        restarts, pid = engine.restarts["m"], engine.members["m"].pid
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return [e.pid for e in recorder.events if isinstance(e, Started)], restarts, pid

    pids, restarts, pid = asyncio.run(scenario())
    assert len(pids) == 2 and restarts == 1
    assert pid == pids[-1]


def test_start_requests_that_come_together_share_one_start(tmp_path: Path) -> None:
    """lazy (autostart = false) waits for db to be ready when two requests to start it
    come: the second waits for the same start, rather than being refused with "lazy was
    already started" while lazy has not started; once it has, one more is refused."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    db = ProcSpec("db", ("sh", "-c", f"read x < {gate}; echo db up; exec sleep 60"),
                  ready="^db up")
    lazy = ProcSpec("lazy", ("sh", "-c", "echo lazy up; exec sleep 60"), ready="^lazy up",
                    after=("db",), autostart=False)

    async def scenario() -> tuple[list[int], str]:
        engine, recorder = _engine(db, lazy)
        run = await _running_began(engine)
        await _seen(engine, recorder, "db", "started")
        # Both asked before db can be ready: their first steps run as _open first waits,
        # before anything db writes after the gate can be read.
        starts = [asyncio.ensure_future(engine.start("lazy")) for _ in range(2)]
        await _open(gate)
        await asyncio.wait_for(asyncio.gather(*starts), 30)
        with pytest.raises(PipeplexError) as refused:
            await engine.start("lazy")
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return [e.pid for e in recorder.events if isinstance(e, Started)
                and e.name == "lazy"], str(refused.value)

    pids, refused = asyncio.run(scenario())
    assert len(pids) == 1 and refused == "lazy was already started"


def test_a_restart_that_the_stop_cuts_short_says_so() -> None:
    """The cast stops before the member started again: restart raises, it does not return
    as if the old instance (still being stopped) were the new one."""
    member = ProcSpec("m", ("sleep", "60"))

    async def scenario() -> str:
        engine, recorder = _engine(member)
        run = asyncio.ensure_future(engine.run())
        mark = await _seen(engine, recorder, "m", "started")
        restart = asyncio.ensure_future(engine.restart("m"))
        await _seen(engine, recorder, "m", "sent SIGTERM", mark)  # its stop is under way
        engine.request_stop()
        try:
            await asyncio.wait_for(restart, 30)
        except PipeplexError as exc:
            return str(exc)
        finally:
            await asyncio.wait_for(run, 30)
        return "returned"

    assert asyncio.run(scenario()) == "m did not start again: the cast is stopping"


def test_a_restart_asked_for_is_answered_as_the_cast_stop_begins() -> None:
    """The request that began the restart is answered once the cast's stop begins, as
    requests that joined it are: it used to wait out the member's whole grace (30 s here),
    which the cast's stop then went on with."""
    member = ProcSpec("m", ("sh", "-c", "trap '' TERM; echo up; while :; do sleep 1; done"),
                      ready="^up$", stop_timeout=30)

    async def scenario() -> tuple[str, int | None]:
        engine, recorder = _engine(member)
        run = asyncio.ensure_future(engine.run())
        mark = await _seen(engine, recorder, "m", "ready")
        restart = asyncio.ensure_future(engine.restart("m"))
        await _seen(engine, recorder, "m", "sent SIGTERM", mark)  # its grace has begun
        engine.request_stop()
        refused = "returned"
        try:
            await asyncio.wait_for(restart, 20)
        except PipeplexError as exc:
            refused = str(exc)
        # Answered within the grace: the member's stop, now the cast's, goes on.
        still = engine.members["m"].returncode
        engine.force_stop()
        await asyncio.wait_for(run, 30)
        return refused, still

    refused, still = asyncio.run(scenario())
    assert refused == "m did not start again: the cast is stopping" and still is None


def test_a_restart_whose_program_is_gone_raises_the_spawn_error(tmp_path: Path) -> None:
    """The new instance cannot start: restart raises why, it does not wait forever."""
    program = tmp_path / "server"
    program.write_text("#!/bin/sh\necho up\nexec sleep 60\n")
    program.chmod(0o755)
    member = ProcSpec("m", (str(program),), ready="^up$")

    async def scenario() -> str:
        engine, _ = _engine(member)
        run = await _running(engine, "m")
        program.unlink()
        try:
            await asyncio.wait_for(engine.restart("m"), 30)
        except PipeplexError as exc:
            return type(exc).__name__ + ": " + str(exc)
        finally:
            await asyncio.wait_for(run, 30)
        return "returned"

    text = asyncio.run(scenario())
    assert text.startswith("SpawnError: ") and "not found" in text, text


def test_restarting_a_member_whose_output_still_drains_starts_it_again() -> None:
    """It exited (on_exit = ignore) but a child of its still holds its output open: the
    restart waits for the drain and starts it, instead of waiting for nothing."""
    keeper = ProcSpec("keep", ("sleep", "60"))
    member = ProcSpec("w", ("sh", "-c", "sleep 30 & echo started; exit 0"), on_exit="ignore",
                      pty="pipes", ready="started")

    async def scenario() -> tuple[int, int, int]:
        engine, _ = _engine(keeper, member)
        run = await _running(engine, "w")
        process = engine.members["w"]
        first = process.pid
        assert first is not None
        await asyncio.wait_for(asyncio.shield(process.exit_future), 30)
        assert not process.done_future.done()  # gone, its output not drained yet
        pid = await asyncio.wait_for(engine.restart("w"), 30)
        restarts = engine.restarts["w"]
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return first, pid, restarts

    first, pid, restarts = asyncio.run(scenario())
    assert pid != first and restarts == 1


def test_a_member_waiting_out_its_backoff_is_restarting_in_its_status() -> None:
    """Not 'exited', which a member that is over shows too: 'restarting', and when."""
    import re

    crasher = ProcSpec("c", ("sh", "-c", "exit 3"), on_exit="restart", max_restarts=5)

    async def scenario() -> tuple[dict[str, object], dict[str, object]]:
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def long_backoff(delay: float) -> None:
            await never  # only the stop ends it

        engine = Engine(CastSpec((crasher,)), Bus(), sleep=long_backoff)
        waiting: asyncio.Queue[None] = asyncio.Queue()
        engine.bus.subscribe(lambda e: waiting.put_nowait(None)
                             if isinstance(e, Note) and e.text.startswith("restarting in")
                             else None, [Note])
        run = asyncio.ensure_future(engine.run())
        await asyncio.wait_for(waiting.get(), 30)
        during = engine.status()[0]
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return during, engine.status()[0]

    during, after = asyncio.run(scenario())
    assert during["state"] == "restarting", during
    assert re.fullmatch(r"its restart in \d+\.\d s \(restart 1 of 5\)",
                        str(during["waiting_for"])), during
    assert (after["state"], after["waiting_for"]) == ("exited", None), after


def test_a_restart_request_cuts_the_backoff_short_and_starts_the_count_afresh() -> None:
    """A member waiting out a restart's backoff is restarted at once on request, and the
    request counts as a fresh start (like a restart of a running member)."""
    crasher = ProcSpec("c", ("sh", "-c", "exit 3"), on_exit="restart", max_restarts=5)

    async def scenario() -> list[str]:
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def long_backoff(delay: float) -> None:
            await never  # only the request (or the stop) ends it

        engine = Engine(CastSpec((crasher,)), Bus(), sleep=long_backoff)
        notes: list[str] = []
        waiting: asyncio.Queue[None] = asyncio.Queue()

        def on_note(event: Event) -> None:
            if isinstance(event, Note):
                notes.append(event.text)
                if event.text.startswith("restarting in"):
                    waiting.put_nowait(None)

        engine.bus.subscribe(on_note, [Note])
        run = asyncio.ensure_future(engine.run())
        await asyncio.wait_for(waiting.get(), 30)
        await asyncio.wait_for(engine.restart("c"), 30)
        await asyncio.wait_for(waiting.get(), 30)  # it crashed again: a new backoff
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return [n for n in notes if n.startswith("restarting in")]

    assert asyncio.run(scenario()) == ["restarting in 0.1 s (restart 1 of 5)"] * 2


def test_restart_gives_the_new_pid_even_if_it_has_exited_since() -> None:
    """A new instance that exits at once was still started: restart says which it was."""
    keeper = ProcSpec("keep", ("sleep", "60"))
    quick = ProcSpec("q", ("sh", "-c", "exit 3"), on_exit="ignore")

    async def scenario() -> tuple[int, list[int]]:
        engine, recorder = _engine(keeper, quick)
        exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        engine.bus.subscribe(lambda e: e.name != "q" or exited.done() or exited.set_result(None),
                             [Exited])
        run = asyncio.ensure_future(engine.run())
        await asyncio.wait_for(exited, 30)
        pid = await asyncio.wait_for(engine.restart("q"), 30)
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return pid, [e.pid for e in recorder.events if isinstance(e, Started) and e.name == "q"]

    pid, started = asyncio.run(scenario())
    assert len(started) == 2 and pid == started[1]


def test_a_failed_restart_of_an_ignored_member_leaves_it_down_and_says_why(
    tmp_path: Path,
) -> None:
    """on_exit = ignore: the new instance cannot start, the cast goes on without it, and
    its summary says it could not start again (a restart that never ran is not counted);
    the run's status is 127, as for an exit it ignores with its code."""
    program = tmp_path / "server"
    program.write_text("#!/bin/sh\necho up\nexec sleep 60\n")
    program.chmod(0o755)
    keeper = ProcSpec("keep", ("sleep", "60"))
    member = ProcSpec("m", (str(program),), ready="^up$", on_exit="ignore")

    async def scenario() -> tuple[str, bool, int, list[str]]:
        engine, recorder = _engine(keeper, member)
        run = await _running(engine, "m")
        program.unlink()
        error = await _restart_error(engine, "m")
        stopping, restarts = engine.stopping, engine.restarts["m"]
        engine.request_stop()
        status = await asyncio.wait_for(run, 30)
        assert status == 127
        summaries = [e.text for e in recorder.events
                     if isinstance(e, Note) and e.name == "m" and e.text.startswith("summary")]
        return error, stopping, restarts, summaries

    error, stopping, restarts, summaries = asyncio.run(scenario())
    assert "command not found" in error or "No such file" in error, error
    assert not stopping and restarts == 0
    assert len(summaries) == 1 and "; could not start again (" in summaries[0], summaries


@pytest.mark.parametrize(("pty", "handshake"), [("pipes", True), ("stdout", True),
                                               ("pipes", False)],
                         ids=["pipes", "pty", "leaving as the member exits"])
def test_an_exit_whose_output_another_process_holds_is_acted_on_once_its_output_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pty: str, handshake: bool
) -> None:
    """A process the member started outside its group holds its output open as it exits:
    that output's end is not coming, so the exit, and the restart its policy makes, wait
    only until what the member wrote is read, not for the drain's grace (an hour here).
    Its last line comes before its exit, as always. Without the handshake, the daemon may
    still be in the member's group as the exit is seen (a daemon's usual start): it is
    looked at again until it has left."""
    import contextlib
    import re
    import signal

    monkeypatch.setattr(_output, "DRAIN_GRACE", 3600.0)
    runs, away = tmp_path / "runs", tmp_path / "away"
    os.mkfifo(away)
    wait = f"read x < {away}; " if handshake else ""  # (the daemon has left its group)
    script = (f"if [ -e {runs} ]; then echo second; exec sleep 60; fi; touch {runs}; "
              f"setsid sh -c 'echo held $$; {'echo > ' + str(away) + '; ' if handshake else ''}"
              f"exec sleep 60' & {wait}echo first; exit 3")
    member = ProcSpec("m", ("sh", "-c", script), on_exit="restart", pty=pty)  # type: ignore[arg-type]
    events: list[Event] = []

    async def scenario() -> None:
        engine, recorder = _engine(member)
        run = asyncio.ensure_future(engine.run())
        try:
            await _seen(engine, recorder, "m", "| second")
        finally:
            engine.request_stop()
            await asyncio.wait_for(run, 30)
            events.extend(recorder.events)

    try:
        asyncio.run(scenario())
    finally:  # (not a member's: out of its group, and no run's environment tells it)
        for pid in (int(m[1]) for e in events if isinstance(e, Output)
                    for m in re.finditer(rb"held (\d+)", e.data)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    first = next(i for i, e in enumerate(events) if isinstance(e, Output) and b"first" in e.data)
    exited = next(i for i, e in enumerate(events) if isinstance(e, Exited))
    assert first < exited
    assert any(isinstance(e, Note) and e.text.startswith("restarting in ") for e in events)


def test_a_restarted_member_is_not_made_ready_by_what_the_last_runs_leftover_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run 1 is ready and exits, leaving a process that holds its output and later prints
    a ready line; that line, still unread when run 2 starts, is run 1's: run 2 (which never
    prints one) must not count as ready because of it."""
    monkeypatch.setattr(_output, "DRAIN_GRACE", 0.0)  # its output is held at once
    gate, done, runs = tmp_path / "gate", tmp_path / "done", tmp_path / "runs"
    os.mkfifo(gate)
    os.mkfifo(done)
    script = (f"if [ -e {runs} ]; then echo second; exec sleep 60; fi; touch {runs}; "
              f"echo READY first; setsid sh -c 'read x < {gate}; echo READY-old; "
              f"echo . > {done}' & exit 0")
    member = ProcSpec("m", ("sh", "-c", script), ready="READY", on_exit="ignore", pty="pipes")

    async def scenario() -> list[Event]:
        engine, recorder = _engine(ProcSpec("keep", ("sleep", "60")), member)
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()
        engine.bus.subscribe(lambda e: e.name != "m" or exited.done() or exited.set_result(None),
                             [Exited])
        run = asyncio.ensure_future(engine.run())
        await asyncio.wait_for(exited, 30)  # run 1 ended; its leftover holds the output
        slow = object()
        engine.bus.pause(slow)  # nothing is read now: the leftover's line waits in the pipe
        told = os.open(done, os.O_RDONLY | os.O_NONBLOCK)
        written: asyncio.Future[None] = loop.create_future()
        loop.add_reader(told, lambda: written.done() or written.set_result(None))
        await asyncio.wait_for(asyncio.to_thread(gate.write_text, "go\n"), 30)  # (its open
        # waits for the leftover to open the other end)
        await asyncio.wait_for(written, 30)  # the leftover wrote its READY-old line
        loop.remove_reader(told)
        os.close(told)
        await asyncio.wait_for(engine.restart("m"), 30)  # (a wrong match: made ready by now)
        engine.bus.resume(slow)
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return [e for e in recorder.events if e.name == "m"]

    events = asyncio.run(scenario())
    assert sum(isinstance(e, Ready) for e in events) == 1, events  # run 1's only
    second = max(i for i, e in enumerate(events) if isinstance(e, Started))
    old = [i for i, e in enumerate(events) if isinstance(e, Output) and b"READY-old" in e.data]
    assert old and old[0] < second  # shown, as the last run's, before the new one starts


def _gated_cast(tmp_path: Path) -> tuple[ProcSpec, ProcSpec, Path, Path]:
    """a: ready at once the first time, then only when its gate opens; b (after a, restarted
    on exit): exits 3 each time its gate opens."""
    a_gate, b_gate, runs = tmp_path / "a-gate", tmp_path / "b-gate", tmp_path / "runs"
    os.mkfifo(a_gate)
    os.mkfifo(b_gate)
    a = ProcSpec("a", ("sh", "-c", f"if [ -e {runs} ]; then read x < {a_gate}; fi; "
                                   f"touch {runs}; echo READY; exec sleep 60"), ready="READY")
    b = ProcSpec("b", ("sh", "-c", f"read x < {b_gate}; exit 3"), after=("a",),
                 on_exit="restart")
    return a, b, a_gate, b_gate


async def _seen(engine: Engine, recorder: Recorder, name: str, what: str, after: int = 0) -> int:
    """Wait until member ``name`` has a Started, Exited or Ready event (``what``
    "started", "exited", "ready"), output holding what follows "| " (``what == "| text"``),
    or a note holding ``what``, past the first ``after`` events; the count of events by
    then."""
    kinds = {"started": Started, "exited": Exited, "ready": Ready}

    def fits(e: Event) -> bool:
        if e.name != name:
            return False
        if what in kinds:
            return isinstance(e, kinds[what])
        if what.startswith("| "):
            return isinstance(e, Output) and what[2:].encode() in e.data
        return isinstance(e, Note) and what in e.text

    seen: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    unsubscribe = engine.bus.subscribe(
        lambda e: fits(e) and not seen.done() and seen.set_result(None))
    try:
        if not any(fits(e) for e in recorder.events[after:]):
            await asyncio.wait_for(seen, 30)
    finally:
        unsubscribe()
    return len(recorder.events)


async def _open(gate: Path) -> None:
    await asyncio.wait_for(asyncio.to_thread(gate.write_text, "go\n"), 30)


def test_stopped_while_waiting_for_its_dependency_after_failing_counts_the_failure(
    tmp_path: Path,
) -> None:
    """b failed (3) and waits for a to be ready again before its restart when the cast
    stops: it ended with 3, as when the stop comes during the backoff itself."""
    a, b, _, b_gate = _gated_cast(tmp_path)

    async def scenario() -> int:
        engine, recorder = _engine(a, b, delays=[])
        run = await _running(engine, "a")
        mark = await _seen(engine, recorder, "b", "started")
        restart = asyncio.ensure_future(engine.restart("a"))  # a is down until its gate opens
        mark = await _seen(engine, recorder, "a", "started", mark)
        await _open(b_gate)  # b exits 3, and waits for a before its restart
        await _seen(engine, recorder, "b", "waiting for a to be ready again", mark)
        engine.request_stop()
        status = await asyncio.wait_for(run, 30)
        await asyncio.gather(restart, return_exceptions=True)
        return status

    assert asyncio.run(scenario()) == 3


def test_a_failure_whose_restart_is_held_back_counts_first(tmp_path: Path) -> None:
    """b failed (4) and waits out its backoff when a, which it starts after, fails for
    good (5): b is not started again, so its failure is how it ended, and being first,
    it sets the status (it was not recorded at all, and a's 5 did)."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    a = ProcSpec("a", ("sh", "-c", f"read x < {gate}; exit 5"), on_exit="ignore")
    b = ProcSpec("b", ("sh", "-c", "exit 4"), after=("a",), on_exit="restart")
    engine: Engine | None = None

    async def backoff(delay: float) -> None:  # (a ends for good during b's backoff)
        assert engine is not None
        await _open(gate)
        await asyncio.wait_for(asyncio.shield(engine.members["a"].exit_future), 30)

    async def scenario() -> tuple[int, list[str]]:
        nonlocal engine
        recorder = Recorder()
        bus = Bus()
        bus.subscribe(recorder)
        engine = Engine(CastSpec((a, b)), bus, grace=2.0, sleep=backoff)
        status = await asyncio.wait_for(engine.run(), 30)
        return status, [f.reason for f in engine.failures]

    status, reasons = asyncio.run(scenario())
    assert status == 4, reasons
    assert reasons[0] == ("b exited with code 4, and was not started again: it starts after a, "
                          "which exited with code 5; restart a first"), reasons


def test_a_member_started_while_its_dependency_is_stopped_for_a_restart_waits_for_it(
        tmp_path: Path) -> None:
    """srv is being stopped for a restart (it takes its time at SIGTERM) when w, which
    starts after it, is started: w started at once, with the value srv's ending run had
    captured, as srv was still up until its exit. It now waits for srv's next run."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    code = ("import os, signal, sys\n"
            "def term(*_):\n"
            f"    open({str(gate)!r}).read()  # (ends once the test lets it)\n"
            "    sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, term)\n"
            "print('run', os.getpid(), flush=True)  # (ready once it takes SIGTERM so)\n"
            "while True:\n"
            "    signal.pause()\n")
    srv = ProcSpec("srv", (sys.executable, "-c", code), ready=r"^run (?P<spid>\d+)",
                   stop_timeout=60)
    w = ProcSpec("w", ("sh", "-c", "echo w got {spid}; exec sleep 60"), after=("srv",),
                 autostart=False)

    async def scenario() -> tuple[str, str, list[bytes]]:
        engine, recorder = _engine(srv, w)
        run = await _running(engine, "srv")
        first_run = engine.variables["spid"]
        mark = len(recorder.events)
        restart = asyncio.ensure_future(engine.restart("srv"))
        mark = await _seen(engine, recorder, "srv", "sent SIGTERM", mark)
        start = asyncio.ensure_future(engine.start("w"))
        await _seen(engine, recorder, "w", "waiting for srv to be ready again", mark)
        await _open(gate)  # srv's run ends; its next one starts and gets ready
        await asyncio.wait_for(asyncio.gather(restart, start), 30)
        await _seen(engine, recorder, "w", "| w got", mark)
        said = [e.data for e in recorder.events if isinstance(e, Output) and e.name == "w"]
        engine.force_stop()  # (srv's next run would wait for the gate again)
        await asyncio.wait_for(run, 30)
        return first_run, engine.variables["spid"], said

    first_run, second_run, said = asyncio.run(scenario())
    assert first_run != second_run
    assert said == [f"w got {second_run}\n".encode()]


def test_a_restart_request_met_while_waiting_for_a_dependency_is_not_kept(
    tmp_path: Path,
) -> None:
    """A restart of b asked for while b waits for a: b's next run meets it, so b's next
    exit gets the usual backoff (counted afresh), not a second, unasked-for restart."""
    a, b, a_gate, b_gate = _gated_cast(tmp_path)

    async def scenario() -> list[str]:
        engine, recorder = _engine(a, b, delays=[])
        run = await _running(engine, "a")
        mark = await _seen(engine, recorder, "b", "started")
        restart_a = asyncio.ensure_future(engine.restart("a"))
        mark = await _seen(engine, recorder, "a", "started", mark)
        await _open(b_gate)
        mark = await _seen(engine, recorder, "b", "waiting for a to be ready again", mark)
        restart_b = asyncio.ensure_future(engine.restart("b"))
        mark = await _seen(engine, recorder, "b", "restarting on request", mark)
        await _open(a_gate)  # a is ready again: b starts, meeting the request
        await asyncio.wait_for(asyncio.gather(restart_a, restart_b), 30)
        mark = await _seen(engine, recorder, "b", "started", mark)
        await _open(b_gate)  # b exits 3 again
        await _seen(engine, recorder, "b", "restarting in", mark)
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return [e.text for e in recorder.events if isinstance(e, Note) and e.name == "b"
                and e.text.startswith("restarting in")]

    assert asyncio.run(scenario()) == ["restarting in 0.1 s (restart 1 of 5)"] * 2


def test_exit_status_is_the_first_member_that_failed_on_its_own() -> None:
    """Members stopped by pipeplex do not count; the first own failure does."""
    engine, _ = _engine(
        ProcSpec("ok", ("sleep", "60")),
        ProcSpec("bad", ("sh", "-c", "kill -TERM $$")),
    )
    assert asyncio.run(engine.run()) == 128 + 15
    assert engine.failures[0].name == "bad"


def test_an_exit_not_yet_read_when_the_stop_comes_is_an_end_of_its_own() -> None:
    """A member that had died (killed from outside here, a crash in life) when the stop
    reached it, its exit unread yet, failed on its own: its failure counts even though a
    member of its wave then ended at the stop's EOF (which excuses only failures the stop
    may have caused), and its Exited is not "stopped"."""
    bus = Bus()
    recorder = Recorder()
    bus.subscribe(recorder)
    cast = CastSpec([ProcSpec("a", ("sh", "-c", "echo up; exec sleep 60")),
                     ProcSpec("b", ("cat",))])
    engine = Engine(cast, bus, grace=2.0, stdin_grace=5.0)

    async def scenario() -> int:
        up = asyncio.get_running_loop().create_future()
        bus.subscribe(lambda e: isinstance(e, Output) and e.name == "a" and not up.done()
                      and up.set_result(None))
        run = asyncio.create_task(engine.run())
        await asyncio.wait_for(up, 30)
        member = engine.members["a"]
        assert member.pid is not None
        watch = os.pidfd_open(member.pid)
        try:
            os.kill(member.pid, 9)
            assert select.select([watch], [], [], 30)[0], "a did not die"  # (loop held)
        finally:
            os.close(watch)
        # The stop reaches both members before the loop reads a's exit.
        engine.stopper.close_inputs(engine.members.values())
        engine.request_stop()
        return await asyncio.wait_for(run, 60)

    assert asyncio.run(scenario()) == 128 + 9
    assert [f.name for f in engine.failures] == ["a"]
    exits = {e.name: e for e in recorder.events if isinstance(e, Exited)}
    assert not exits["a"].stopped
    assert exits["b"].returncode == 0


def test_an_exit_at_the_stops_eof_is_the_stops_at_its_next_touch_too() -> None:
    """Only the stop's first touch of a member looks for an exit unread: by its next (the
    wave's SIGTERM, after the EOF it gave), the member may have ended at that EOF, which is
    the stop's doing, not an end before it."""
    async def scenario() -> tuple[bool, bool]:
        member = process.Process(ProcSpec("c", ("cat",)), Bus(), on_crash=lambda exc: None)
        await member.start()
        assert member.pid is not None
        watch = os.pidfd_open(member.pid)
        try:
            member.begin_stop()
            first = member.exited_before_stop
            member.close_input()  # cat ends at this EOF
            assert select.select([watch], [], [], 30)[0], "cat did not end"  # (loop held)
        finally:
            os.close(watch)
        member.begin_stop()
        await asyncio.wait_for(member.wait_exited(), 30)
        return first, member.exited_before_stop

    assert asyncio.run(scenario()) == (False, False)


def test_who_excuses_a_failure_at_the_stops_eof() -> None:
    """Only a member started before it or with it that ended before it (or within 10 ms,
    two exits seen in one pass of the loop) excuses a failure at the stop's EOF: not one
    that ended well 30 ms later, nor one started after it (its client)."""
    from pipeplex.engine.verdict import Failure, Verdict

    def judged(ended: list[tuple[str, float]], waves: list[list[str]]) -> list[str]:
        verdict = Verdict()
        verdict.failed_at_eof(Failure("server", 4, "server exited with code 4", 100.0))
        for name, at in ended:
            verdict.ended_in_stop(name, at)
        verdict.judge_at_eof(waves)
        return [f.name for f in verdict.failures]

    waves = [["server", "peer"], ["client"]]
    assert judged([("peer", 99.9)], waves) == []  # (a peer of its wave ended first)
    assert judged([("peer", 100.005)], waves) == []  # (seen in the same pass)
    assert judged([("peer", 100.03)], waves) == ["server"]
    assert judged([("client", 99.9)], waves) == ["server"]

    # A member added later under the cast's first member's name started after the server:
    # the engine's waves put it last.
    engine, _ = _engine(ProcSpec("db", ("true",)), ProcSpec("server", ("true",)))
    engine.state.late_waves.append(["db"])
    assert engine.state.start_waves() == [["db", "server"], ["db"]]
    assert judged([("db", 99.9)], engine.state.start_waves()) == ["server"]


@pytest.mark.parametrize("apart", [0.005, 0.03])
def test_two_members_that_fail_at_the_stops_eof_together_do_not_excuse_each_other(
        apart: float) -> None:
    """Each ended within 10 ms of the other, so each would excuse the other, and the run
    passed while both had failed on their own: the earlier failure counts (and excuses the
    later one, which may have failed of it), however close together they were seen."""
    from pipeplex.engine.verdict import Failure, Verdict

    for first, second in (("a", "b"), ("b", "a")):
        verdict = Verdict()
        verdict.failed_at_eof(Failure(second, 3, f"{second} exited with code 3", 100.0 + apart))
        verdict.failed_at_eof(Failure(first, 4, f"{first} exited with code 4", 100.0))
        verdict.ended_in_stop(second, 100.0 + apart)
        verdict.ended_in_stop(first, 100.0)
        verdict.judge_at_eof([["a", "b"]])
        assert [f.name for f in verdict.failures] == [first]
        assert verdict.status(None) == 4


def test_a_client_that_fails_at_the_stops_eof_is_not_blamed_before_its_server() -> None:
    """The server (first wave) fails at its EOF, and its client, seen 5 ms before it,
    fails too: the server's failure counts (no later wave excuses it), and it excuses the
    client's, whichever exit was seen first."""
    from pipeplex.engine.verdict import Failure, Verdict

    verdict = Verdict()
    verdict.failed_at_eof(Failure("client", 1, "client exited with code 1", 99.995))
    verdict.failed_at_eof(Failure("server", 3, "server exited with code 3", 100.0))
    verdict.ended_in_stop("client", 99.995)
    verdict.ended_in_stop("server", 100.0)
    verdict.judge_at_eof([["server"], ["client"]])
    assert [f.name for f in verdict.failures] == ["server"]
    assert verdict.status(None) == 3


def test_a_summary_line_per_member() -> None:
    """At the end each member gets one summary note: how it ended, how long it ran."""
    engine, recorder = _engine(ProcSpec("a", ("true",)), ProcSpec("b", ("sleep", "60")))
    asyncio.run(engine.run())
    summaries = [e for e in recorder.events if isinstance(e, Note) and "summary" in e.text]
    assert [e.name for e in summaries] == ["a", "b"]
    assert "exited with code 0" in summaries[0].text
    assert "stopped by SIGTERM after" in summaries[1].text



def test_an_exit_before_readiness_is_restarted_and_dependents_wait(tmp_path: Path) -> None:
    """on_exit = restart covers a start that fails: its dependents start once it is ready."""
    count = tmp_path / "count"
    flaky = ("n=$(cat count 2>/dev/null || echo 0); echo $((n + 1)) > count; "
             "[ \"$n\" -ge 2 ] && { echo ready; exec sleep 60; }; exit 3")
    engine, recorder = _engine(
        ProcSpec("flaky", ("sh", "-c", flaky), cwd=str(tmp_path), ready="^ready$",
                 on_exit="restart"),
        ProcSpec("dependent", ("true",), after=("flaky",)),
    )
    assert asyncio.run(engine.run()) == 0
    assert count.read_text() == "3\n"
    assert engine.restarts["flaky"] == 2
    kinds = [(type(e).__name__, e.name) for e in recorder.events
             if isinstance(e, Started | Ready)]
    assert kinds == [("Started", "flaky")] * 3 + [("Ready", "flaky"), ("Started", "dependent")]


def test_a_run_not_ready_in_time_is_restarted_and_dependents_wait(tmp_path: Path) -> None:
    """A run that hangs before it is ready is a failed start, as an exit then is: with
    on_exit = restart it is stopped and started again (as systemd restarts a start that
    timed out), and its dependents start once a run is ready."""
    count = tmp_path / "count"
    hangs_once = ("n=$(cat count 2>/dev/null || echo 0); echo $((n + 1)) > count; "
                  "[ \"$n\" -ge 1 ] && echo ready; exec sleep 60")
    engine, recorder = _engine(
        ProcSpec("slow", ("sh", "-c", hangs_once), cwd=str(tmp_path), ready="^ready$",
                 ready_timeout=2, on_exit="restart"),  # (room for the second run's line)
        ProcSpec("dependent", ("true",), after=("slow",)),
    )
    assert asyncio.run(asyncio.wait_for(engine.run(), 30)) == 0
    assert count.read_text() == "2\n"
    assert engine.restarts["slow"] == 1
    kinds = [(type(e).__name__, e.name) for e in recorder.events
             if isinstance(e, Started | Ready)]
    assert kinds == [("Started", "slow")] * 2 + [("Ready", "slow"), ("Started", "dependent")]
    said = next(e for e in recorder.events if isinstance(e, Note) and e.name == "slow"
                and e.text.startswith("was not ready after 2.0 s"))
    assert said.level == "warning"
    assert said.text.split("\n")[0] == (
        "was not ready after 2.0 s (ready_timeout); it never showed output matching ready = "
        "'^ready$'; stopping this run (on_exit = restart)")


COUNTED = ('n=$(cat count 2>/dev/null || echo 0); echo $((n + 1)) > count; '
           'set -- {}; shift "$n"; echo "run $n"; exit "${{1:-9}}"')
"""A member whose run N (from 0) exits with the Nth of the codes given (9 past them)."""


def test_on_failure_restarts_a_crash_and_lets_a_clean_exit_end(tmp_path: Path) -> None:
    """on_exit = ignore, on_failure = restart: a worker that crashes twice is restarted
    with the backoff, and its clean exit then ends it (nothing else runs: the cast ends,
    with 0: the crashes were restarted, not failures of the cast)."""
    delays: list[float] = []
    engine, recorder = _engine(
        ProcSpec("worker", ("sh", "-c", COUNTED.format("3 3 0")), cwd=str(tmp_path),
                 on_exit="ignore", on_failure="restart"), delays=delays)
    assert asyncio.run(asyncio.wait_for(engine.run(), 30)) == 0
    assert (tmp_path / "count").read_text() == "3\n"
    assert delays == [0.1, 0.2]
    assert engine.restarts["worker"] == 2
    notes = recorder.notes()
    assert not any("stopping the cast" in n for n in notes), notes
    assert any(re.fullmatch(r"summary: exited with code 0 after [\d.]+ s, 2 restarts", n)
               for n in notes), notes


def test_on_failure_stop_ends_a_job_restarted_after_each_clean_exit(tmp_path: Path) -> None:
    """on_exit = restart, on_failure = stop: a job run again after each clean exit stops
    the cast at its first failure, said with the key that decided it."""
    engine, recorder = _engine(
        ProcSpec("job", ("sh", "-c", COUNTED.format("0 0 4")), cwd=str(tmp_path),
                 on_exit="restart", on_failure="stop", max_restarts=10),
        ProcSpec("keep", ("sleep", "60")))
    assert asyncio.run(asyncio.wait_for(engine.run(), 30)) == 4
    assert engine.restarts["job"] == 2
    assert ("job exited with code 4; stopping the cast (on_failure = stop)"
            in recorder.notes()), recorder.notes()


def test_on_failure_restart_takes_a_run_not_ready_in_time_and_an_exit_before_ready(
        tmp_path: Path) -> None:
    """A start that fails is a failure, whatever the code: an exit with 0 before the ready
    line, and a run not ready in time, are restarted by on_failure = restart (on_exit =
    stop would have stopped the cast), and the members after it start once a run is
    ready."""
    flaky = ('n=$(cat count 2>/dev/null || echo 0); echo $((n + 1)) > count; '
             'case $n in 0) exit 0;; 1) exec sleep 60;; esac; echo ready; exec sleep 60')
    engine, recorder = _engine(
        ProcSpec("flaky", ("sh", "-c", flaky), cwd=str(tmp_path), ready="^ready$",
                 ready_timeout=1, on_failure="restart"),
        ProcSpec("dependent", ("true",), after=("flaky",)))
    assert asyncio.run(asyncio.wait_for(engine.run(), 30)) == 0
    assert (tmp_path / "count").read_text() == "3\n"
    assert engine.restarts["flaky"] == 2
    kinds = [(type(e).__name__, e.name) for e in recorder.events
             if isinstance(e, Started | Ready)]
    assert kinds == [("Started", "flaky")] * 3 + [("Ready", "flaky"), ("Started", "dependent")]
    said = [e.text.split("\n")[0].split("; ")[-1] for e in recorder.events
            if isinstance(e, Note) and e.name == "flaky" and e.text.startswith("was not ready")]
    assert said == ["stopping this run (on_failure = restart)"], said


def test_a_member_without_on_failure_follows_on_exit_for_every_end(tmp_path: Path) -> None:
    """on_failure unset: a crash follows on_exit as before (ignore: the cast goes on, and
    the status counts it)."""
    engine, _ = _engine(ProcSpec("worker", ("sh", "-c", "exit 5"), on_exit="ignore"))
    assert asyncio.run(asyncio.wait_for(engine.run(), 30)) == 5
    assert engine.restarts.get("worker", 0) == 0


def test_the_last_run_not_ready_in_time_is_not_said_to_be_restarted(tmp_path: Path) -> None:
    """The run that uses up max_restarts is stopped as the others were, but its note says
    that no restart follows (the give-up comes next), as an error."""
    engine, recorder = _engine(
        ProcSpec("slow", ("sleep", "60"), ready="^never$", ready_timeout=0.2,
                 on_exit="restart", max_restarts=1))
    assert asyncio.run(asyncio.wait_for(engine.run(), 30)) == 1
    said = [(e.level, e.text.split("\n")[0].split("; ")[-1]) for e in recorder.events
            if isinstance(e, Note) and e.name == "slow" and e.text.startswith("was not ready")]
    assert said == [("warning", "stopping this run (on_exit = restart)"),
                    ("error", "stopping this run, with no restart left (max_restarts = 1)")]


HANGS_ONCE_IGNORING_SIGTERM = (
    "n=$(cat count 2>/dev/null || echo 0); echo $((n + 1)) > count; "
    "[ \"$n\" -ge 1 ] && { echo ready; exit 3; }; trap '' TERM; exec sleep 60")
"""A member whose first run hangs, never ready, through its stop's grace; its second gets
ready and exits with 3."""


def _on_the_not_ready_stop(engine: Engine, act: Callable[[], object]) -> None:
    """Call ``act`` once the engine says it stops a run not ready in time."""
    def seen(event: Event) -> None:
        if isinstance(event, Note) and "; stopping this run" in event.text:
            asyncio.get_running_loop().call_soon(act)

    engine.bus.subscribe(seen, [Note])


def test_a_restart_asked_for_while_a_run_not_ready_is_stopped_starts_afresh(
        tmp_path: Path) -> None:
    """A restart asked for during the stop of a run not ready in time meets the next run,
    which is judged as any: its exit with 3 gives up with 3, not as "not ready"."""
    member = ProcSpec("m", ("sh", "-c", HANGS_ONCE_IGNORING_SIGTERM), cwd=str(tmp_path),
                      ready="^ready$", ready_timeout=0.5, on_exit="restart", max_restarts=0)

    async def scenario() -> tuple[int, list[str]]:
        engine, recorder = _engine(member)
        _on_the_not_ready_stop(engine, lambda: asyncio.ensure_future(engine.restart("m")))
        return await asyncio.wait_for(engine.run(), 30), recorder.notes()

    status, notes = asyncio.run(scenario())
    assert status == 3, notes
    assert notes[-1].startswith("summary: exited with code 3 after "), notes
    assert any(n.startswith("m exited with code 3 (max_restarts = 0); giving up") for n in notes)


def test_a_signal_that_came_once_a_member_stopped_the_cast_is_not_said_to_have_stopped_it(
) -> None:
    """x's failure stopped the cast; a SIGTERM came during that stop. The last line says
    the failure decides the status, and not that the SIGTERM stopped the cast."""
    x = ProcSpec("x", ("sh", "-c", "exit 3"))

    def signal_in_the_stop(event: Event) -> None:
        if isinstance(event, Note) and "stopping the cast" in event.text:
            engine.interrupted_by = signal.SIGTERM  # (as pipeplex run's handler does)

    engine, recorder = _engine(x, ProcSpec("keep", ("sleep", "60")))
    engine.bus.subscribe(signal_in_the_stop)
    assert asyncio.run(engine.run()) == 3
    assert recorder.notes()[-1] == (
        "exit status 3: x exited with code 3 (a member's own failure decides it, not the "
        "SIGTERM that came as the cast stopped)"), recorder.notes()


def test_a_grace_at_eof_cut_short_says_how_long_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop that closes stdin first, cut short by a second Ctrl-C: the member was not
    "still running 30.0 s after its stdin closed" (the grace), but a moment."""
    from pipeplex.engine import _cast_state

    monkeypatch.setattr(_cast_state, "EOF_GRACE", 30.0)
    member = ProcSpec("m", ("sh", "-c", "trap '' TERM; echo up; exec sleep 60"), ready="^up$")

    async def scenario() -> list[str]:
        engine, recorder = _engine(member)
        run = await _running(engine, "m")
        engine.request_stop(stdin_first=True)  # (as pipeplex stop and :quit do)
        await _seen(engine, recorder, "m", "closed its stdin")
        engine.force_stop()
        await asyncio.wait_for(run, 30)
        return recorder.notes()

    said = [n for n in asyncio.run(scenario()) if "after its stdin closed" in n]
    assert len(said) == 1 and re.match(r"still running 0\.\d\d s after its stdin closed; ",
                                       said[0]), said


ENDS_WITH_0_ON_SIGTERM = "trap 'exit 0' TERM; echo hanging; sleep 60 & wait"
"""A run never ready that ends with 0 when it is stopped."""


@pytest.mark.parametrize("script", [HANGS_ONCE_IGNORING_SIGTERM, ENDS_WITH_0_ON_SIGTERM],
                         ids=["killed", "ends-with-0"])
def test_a_stop_during_the_stop_of_a_run_not_ready_counts_its_failure(
        tmp_path: Path, script: str) -> None:
    """The cast stopped (a Ctrl-C) while a run not ready in time is being stopped for its
    restart: the member is down after a failure, which decides the status, as in its
    backoff a moment later; the last line says so, however that run ended."""
    member = ProcSpec("m", ("sh", "-c", script), cwd=str(tmp_path), ready="^ready$",
                      ready_timeout=0.5, on_exit="restart")

    async def scenario() -> tuple[int, list[str]]:
        engine, recorder = _engine(member)
        _on_the_not_ready_stop(engine, lambda: engine.request_stop(
            "got SIGINT", interrupted_by=signal.SIGINT))
        return await asyncio.wait_for(engine.run(), 30), recorder.notes()

    status, notes = asyncio.run(scenario())
    assert status == 1, notes
    assert notes[-1] == ("exit status 1: m was not ready after 0.5 s, and the cast stopped "
                         "before its restart (a member's own failure decides it, not the "
                         "SIGINT that stopped the cast)"), notes


def test_giving_up_on_a_run_not_ready_is_said_as_such_whatever_its_stop_gave() -> None:
    """max_restarts = 0: the run not ready in time is stopped, and that is the give-up; it
    is not also "down, waiting for a restart" (the last line said the cast stopped before
    its restart), even when the run ended with 0 as it was stopped."""
    notes = _notes_of_run(ProcSpec("m", ("sh", "-c", ENDS_WITH_0_ON_SIGTERM), ready="never",
                                   ready_timeout=0.5, on_exit="restart", max_restarts=0),
                          status=1)
    assert notes[-1] == "exit status 1: m was not ready after 0.5 s (max_restarts = 0)", notes


def test_a_member_never_ready_in_time_gives_up_with_status_1() -> None:
    """Runs that are never ready in time use up max_restarts, then the cast stops with 1;
    its last line says why, as the member's own summary says the stop ended it."""
    notes = _notes_of_run(ProcSpec("db", ("sleep", "60"), ready="never", ready_timeout=0.2,
                                   on_exit="restart", max_restarts=1), status=1)
    assert ("db was not ready after 0.2 s and was restarted 1 time; giving up and stopping "
            "the cast (raise max_restarts to allow more)") in notes
    # (Its runtime: the 0.2 s, and the stop, which a loaded machine makes longer.)
    assert re.fullmatch(r"summary: stopped by SIGTERM after [\d.]+ s, 1 restart",
                        notes[-2]), notes
    assert notes[-1] == "exit status 1: db gave up after 1 restart", notes
    notes = _notes_of_run(ProcSpec("db", ("sleep", "60"), ready="never", ready_timeout=0.2),
                          status=1)
    assert re.fullmatch(r"summary: stopped by SIGTERM after [\d.]+ s", notes[-2]), notes
    assert notes[-1] == "exit status 1: db was not ready after 0.2 s", notes


def test_a_failure_seen_after_the_one_that_stopped_the_cast_is_named_last(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """a exits with 3 first, but a process it left holds its output, so its exit is seen
    after b's (5), which stops the cast: the status is a's, and the last line says why."""
    monkeypatch.setattr(_output, "DRAIN_GRACE", 60.0)  # (a's exit: seen only at the stop)

    async def scenario() -> tuple[int, list[str]]:
        engine, recorder = _engine(ProcSpec("a", ("sh", "-c", "sleep 60 & exit 3")),
                                   ProcSpec("b", ("sh", "-c", "read x; exit 5")))
        run = asyncio.ensure_future(engine.run())
        await _seen(engine, recorder, "a", "started")
        await _seen(engine, recorder, "b", "started")
        await engine.members["a"].exit_future  # (seen, in a pass of its own)
        engine.members["b"].send(b"go\n")  # b ends after it
        return await asyncio.wait_for(run, 30), recorder.notes()

    status, notes = asyncio.run(scenario())
    assert status == 3, notes
    assert "b exited with code 5; stopping the cast (on_exit = stop)" in notes
    assert notes[-1] == "exit status 3: a exited with code 3, first (before b, whose end " \
        "stopped the cast)"


def test_a_failure_during_the_stop_before_its_turn_is_not_said_to_come_first() -> None:
    """b ends with 0 and stops the cast; while c (after a) takes its grace, a fails on its
    own before its turn came: the status is a's, and the last line says when a failed,
    not that it failed before b."""
    async def scenario() -> tuple[int, list[str]]:
        engine, recorder = _engine(
            ProcSpec("a", ("sh", "-c", "read x; exit 5")),
            ProcSpec("b", ("sh", "-c", "read x; exit 0")),
            ProcSpec("c", ("sh", "-c", "trap '' TERM; echo deaf; sleep 60"), after=("a",)))
        run = asyncio.ensure_future(engine.run())
        await _seen(engine, recorder, "c", "| deaf")  # (started is too soon: not deaf yet)
        engine.members["b"].send(b"go\n")
        await _seen(engine, recorder, "c", "sent SIGTERM")  # (c holds the stop: its grace)
        engine.members["a"].send(b"go\n")  # a ends on its own, before its turn
        return await asyncio.wait_for(run, 30), recorder.notes()

    status, notes = asyncio.run(scenario())
    assert status == 5, notes
    assert notes[-1] == "exit status 5: a exited with code 5 during the stop, before its " \
        "turn came (after b, whose end stopped the cast)", notes


def test_a_program_that_cannot_be_run_counts_126_as_in_a_shell(tmp_path: Path) -> None:
    """A file that is there but not executable (made so after the cast was checked) is not
    a missing command: 126, as a shell says, with what to do; a missing one stays 127."""
    script = tmp_path / "serve.sh"
    script.write_text("echo hi\n")
    script.chmod(0o644)
    notes = _notes_of_run(ProcSpec("web", ("./serve.sh",), cwd=str(tmp_path)), status=126)
    assert "web: cannot start './serve.sh': permission denied: './serve.sh' is not " \
        "executable; make it so (chmod +x ./serve.sh), or run it with its interpreter (sh " \
        "./serve.sh)" in notes
    _notes_of_run(ProcSpec("web", (str(tmp_path / "missing"),)), status=127)
    binary = tmp_path / "other"  # (an ELF header the kernel refuses: another system's)
    binary.write_bytes(b"\x7fELF" + bytes(60))
    binary.chmod(0o755)
    notes = _notes_of_run(ProcSpec("web", ("./other",), cwd=str(tmp_path)), status=126)
    assert "web: cannot start './other': './other' is a program built for another system " \
        "(its processor or its format): this one cannot run it" in notes
    script.chmod(0o755)  # (no #! line: not a program the kernel runs)
    notes = _notes_of_run(ProcSpec("web", ("./serve.sh",), cwd=str(tmp_path)), status=126)
    assert "web: cannot start './serve.sh': './serve.sh' is not a program this system can " \
        "run (a script without a #! line?); begin it with one (#!/bin/sh), or run it with " \
        "its interpreter (sh ./serve.sh)" in notes


def test_a_cwd_that_cannot_be_entered_at_the_start_is_blamed_not_the_program(
        tmp_path: Path) -> None:
    """The cwd checked at load is a file by the time the member starts (its folder was
    replaced): the child's chdir fails, and the message said the program was not
    executable, to be made so with chmod +x, of /usr/bin/true."""
    cwd = tmp_path / "work"
    cwd.write_text("not a folder\n")
    notes = _notes_of_run(ProcSpec("web", ("true",), cwd=str(cwd)), status=127)
    assert f"web: cannot start 'true': cannot enter its cwd {str(cwd)!r}: Not a directory" \
        in notes
    assert not any("chmod" in note for note in notes)


def test_an_exit_before_readiness_gives_the_members_status() -> None:
    """Not ready because it exited with 3: the run's status is 3; with 0 it is 1."""
    for code, status in ((3, 3), (0, 1)):
        engine, recorder = _engine(ProcSpec("early", ("sh", "-c", f"exit {code}"),
                                            ready="never"))
        assert asyncio.run(engine.run()) == status
        assert any(n.startswith("was not ready yet when it ended: it waited for output "
                                "matching ready = 'never'") for n in recorder.notes())


def _notes_of_run(*procs: ProcSpec, status: int) -> list[str]:
    """The notes of a whole run of ``procs`` that ends by itself with ``status``."""
    async def scenario() -> list[str]:
        engine, recorder = _engine(*procs)
        assert await asyncio.wait_for(engine.run(), 30) == status
        return recorder.notes()

    return asyncio.run(scenario())


def _summaries(recorder: Recorder) -> dict[str | None, str]:
    return {e.name: e.text for e in recorder.events
            if isinstance(e, Note) and e.text.startswith("summary: ")}


def test_ready_comes_right_after_the_line_before_the_exit() -> None:
    """A member that prints its ready line and exits at once: the stream says it was ready
    after that line and before its exit, not the other way round."""
    quick = [ProcSpec(f"q{i}", ("echo", "READY"), ready="READY", on_exit="ignore")
             for i in range(5)]

    async def scenario() -> list[Event]:
        engine, recorder = _engine(*quick)
        await asyncio.wait_for(engine.run(), 30)
        return recorder.events

    events = asyncio.run(scenario())
    for spec in quick:
        kinds = [type(e).__name__ for e in events if e.name == spec.name
                 and isinstance(e, (Output, Ready, Exited))]
        assert kinds == ["Output", "Ready", "Exited"], (spec.name, kinds)


def test_members_whose_turn_the_stop_took_say_so() -> None:
    """The stop begins just as the member they wait for gets ready: they never started
    because the cast stopped, not because of it ("which was ready" is no reason)."""
    cast = (ProcSpec("a", ("sh", "-c", "echo R; exec sleep 60"), ready="R"),
            ProcSpec("b", ("sleep", "60"), after=("a",)),
            ProcSpec("c", ("sleep", "60"), after=("b",)))

    async def scenario() -> dict[str | None, str]:
        engine, recorder = _engine(*cast)
        engine.bus.subscribe(lambda e: e.name == "a" and engine.request_stop(), [Ready])
        await asyncio.wait_for(engine.run(), 30)
        return _summaries(recorder)

    summaries = asyncio.run(scenario())
    assert summaries["b"] == "summary: never started (the cast began to stop before its turn)"
    assert summaries["c"] == ("summary: never started (waited for b, which never started "
                              "(the cast began to stop before its turn))")


def test_a_member_waiting_for_one_that_restarts_and_gives_up_names_it(tmp_path: Path) -> None:
    """c waits (through b) for a's next run when a gives up: its summary names a and why,
    not "the cast began to stop before its turn"."""
    a_gate, b_gate, runs = tmp_path / "a-gate", tmp_path / "b-gate", tmp_path / "runs"
    os.mkfifo(a_gate)
    os.mkfifo(b_gate)
    a = ProcSpec("a", ("sh", "-c", f"if [ -e {runs} ]; then read x < {a_gate}; exit 3; fi; "
                                   f"touch {runs}; echo READY; read x < {a_gate}; exit 3"),
                 ready="READY", on_exit="restart", max_restarts=1)
    b = ProcSpec("b", ("sh", "-c", f"read x < {b_gate}; echo ok; exec sleep 60"), ready="ok",
                 after=("a",))
    c = ProcSpec("c", ("sleep", "60"), after=("b",))

    async def scenario() -> dict[str | None, str]:
        engine, recorder = _engine(a, b, c, delays=[])
        run = await _running(engine, "a")
        mark = await _seen(engine, recorder, "b", "started")
        await _open(a_gate)  # a's first run exits 3: it is restarted, not ready again
        mark = await _seen(engine, recorder, "a", "started", mark)
        await _open(b_gate)  # b is ready: c now waits for a's next run
        await _seen(engine, recorder, "c", "waiting for a to be ready again", mark)
        await _open(a_gate)  # a's second run exits 3: it gives up, the cast stops
        await asyncio.wait_for(run, 30)
        return _summaries(recorder)

    summaries = asyncio.run(scenario())
    assert summaries["c"] == ("summary: never started (waited for a, which gave up after 1 "
                              "restart)"), summaries


def test_a_member_after_several_names_the_one_that_failed_not_the_slow_one(
        tmp_path: Path) -> None:
    """web starts after db and cache: db is slow (never ready here), cache fails. web waited
    for db first, but its summary names cache, whose failure stopped the cast."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    db = ProcSpec("db", ("sh", "-c", f"read x < {gate}; echo db ready; exec sleep 60"),
                  ready="db ready")
    cache = ProcSpec("cache", ("sh", "-c", "echo cannot bind; exit 4"), ready="cache ready")
    web = ProcSpec("web", ("sleep", "60"), after=("db", "cache"))

    async def scenario() -> tuple[int, dict[str | None, str]]:
        engine, recorder = _engine(db, cache, web)
        status = await asyncio.wait_for(engine.run(), 30)
        return status, _summaries(recorder)

    status, summaries = asyncio.run(scenario())
    assert status == 4
    assert summaries["web"] == ("summary: never started (waited for cache, which exited with "
                                "code 4 before it was ready)"), summaries


def test_an_autostart_false_member_nothing_started_says_so_whatever_it_starts_after(
        tmp_path: Path) -> None:
    """late starts after server, which was ready and then ended the cast: late never
    started because nothing asked for it, not because server was not ready."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    server = ProcSpec("server", ("sh", "-c", f"echo listening; read x < {gate}"),
                      ready="listening")
    late = ProcSpec("late", ("cat",), autostart=False, after=("server",))

    async def scenario() -> dict[str | None, str]:
        engine, recorder = _engine(server, late)
        run = asyncio.ensure_future(engine.run())
        await _seen(engine, recorder, "server", "ready")
        await _open(gate)  # server ends, and the cast with it
        assert await asyncio.wait_for(run, 30) == 0
        return _summaries(recorder)

    summaries = asyncio.run(scenario())
    assert summaries["late"] == "summary: never started (autostart = false, and nothing " \
        "started it)", summaries


def test_a_restart_waiting_for_a_run_that_never_got_ready_says_so(tmp_path: Path) -> None:
    """srv's first run was ready, its second is not yet when the cast stops; cli's restart
    waited for it. cli's summary says it was not started again, and why, though srv was
    ready once."""
    srv_gate, cli_gate, runs = tmp_path / "srv-gate", tmp_path / "cli-gate", tmp_path / "runs"
    os.mkfifo(srv_gate)
    os.mkfifo(cli_gate)
    srv = ProcSpec("srv", ("sh", "-c", f"if [ -e {runs} ]; then read x < {srv_gate}; fi; "
                                       f"touch {runs}; echo READY; read x < {srv_gate}; exit 1"),
                   ready="READY", on_exit="restart")
    cli = ProcSpec("cli", ("sh", "-c", f"read x < {cli_gate}; exit 2"), after=("srv",),
                   on_exit="restart")

    async def scenario() -> dict[str | None, str]:
        engine, recorder = _engine(srv, cli, delays=[])
        run = await _running(engine, "srv")
        mark = await _seen(engine, recorder, "cli", "started")
        await _open(srv_gate)  # srv's first run exits 1: its second is never ready
        mark = await _seen(engine, recorder, "srv", "started", mark)
        await _open(cli_gate)  # cli exits 2: its restart waits for srv
        await _seen(engine, recorder, "cli", "waiting for srv to be ready again", mark)
        states = {record["name"]: record["state"] for record in engine.status()}
        assert states["cli"] == "pending", states  # (its restart waits: not "exited")
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return _summaries(recorder)

    summaries = asyncio.run(scenario())
    assert summaries["cli"].endswith("; not started again (waited for srv, which was not ready "
                                     "when the cast stopped)"), summaries


def test_giving_up_after_runs_that_crash_before_they_are_ready_says_so(tmp_path: Path) -> None:
    """db's first run was ready; its later runs crash before their ready line. The give-up
    says "before it was ready" and shows db's last output, as it would at the first start."""
    runs = tmp_path / "runs"
    db = ProcSpec("db", ("sh", "-c", f"if [ -e {runs} ]; then echo 'db: fatal: corrupt'; "
                                     f"exit 3; fi; touch {runs}; echo ready; exit 1"),
                  ready="ready", on_exit="restart", max_restarts=2)

    async def scenario() -> tuple[int, list[str]]:
        engine, recorder = _engine(db, delays=[])
        status = await asyncio.wait_for(engine.run(), 30)
        return status, recorder.notes()

    status, notes = asyncio.run(scenario())
    assert status == 3
    gave_up = next(n for n in notes if "giving up" in n)
    assert gave_up.startswith("db exited with code 3 before it was ready and was restarted 2 "
                              "times; giving up"), gave_up
    assert "db: fatal: corrupt" in gave_up


def _db_that_fails(gate: Path) -> ProcSpec:
    """Ready with its pid as {port}, then exits 3 once ``gate`` is opened; on_exit = ignore:
    the cast goes on without it."""
    return ProcSpec("db", ("sh", "-c", f"echo listening on $$; read x < {gate}; exit 3"),
                    ready=r"listening on (?P<port>\d+)", on_exit="ignore")


def test_a_start_the_stop_came_before_says_why_the_cast_stopped() -> None:
    """A member asked to start once the cast has begun to stop (another ended, with
    on_exit = "stop"): the refusal gives the stop's reason, not only that it is stopping;
    and, refused, it was not asked to start, as its summary says."""
    late = ProcSpec("late", ("cat",), autostart=False)

    async def scenario() -> tuple[str, dict[str | None, str]]:
        engine, recorder = _engine(ProcSpec("a", ("cat",)), late)
        run = await _running_began(engine)
        engine.request_stop("a exited with code 0; stopping the cast (on_exit = stop)")
        try:
            refused = await _refusal(engine.start("late"))
        finally:
            await asyncio.wait_for(run, 30)
        return refused, _summaries(recorder)

    refused, summaries = asyncio.run(scenario())
    assert refused == "late did not start: the cast began to stop (a exited with code 0)"
    assert summaries["late"] == "summary: never started (autostart = false, and nothing " \
        "started it)", summaries


def test_a_stop_for_a_member_not_ready_or_not_started_says_which() -> None:
    """The stop's own line was a bare "stopping the cast", and a start refused because of
    it read "the cast began to stop: stopping the cast"."""
    notes = _notes_of_run(ProcSpec("a", ("cat",)),
                          ProcSpec("bad", ("sh", "-c", "exit 4"), ready="ok"), status=4)
    assert "bad was not ready: stopping the cast (on_exit = stop)" in notes
    # "ignore" does not answer a failed start: the stop says so, and what would try again.
    notes = _notes_of_run(ProcSpec("a", ("cat",)),
                          ProcSpec("bad", ("sh", "-c", "exit 4"), ready="ok", on_exit="ignore"),
                          status=4)
    assert ('bad was not ready: stopping the cast (on_exit = ignore, but a start that failed '
            'stops the cast all the same; "restart" would try again)') in notes
    notes = _notes_of_run(ProcSpec("a", ("cat",)), ProcSpec("gone", ("/no/such/program",)),
                          status=127)
    assert "gone could not be started: stopping the cast" in notes


async def _refusal(call: Awaitable[object]) -> str:
    """What ``call`` was refused with (its PipeplexError), or "done"."""
    try:
        await asyncio.wait_for(call, 30)
    except PipeplexError as exc:
        return str(exc)
    return "done"


async def _running_began(engine: Engine) -> asyncio.Future[int]:
    run = asyncio.ensure_future(engine.run())
    await engine.wait_began()
    return run


def test_a_runs_readiness_checks_use_the_values_it_started_with(tmp_path: Path) -> None:
    """web started with cfg's {port}; cfg restarts with another before web is ready. Its
    ready_port and ready_cmd are what web was started with (they were the cast's values of
    the moment: web, listening where it was told, was never ready)."""
    import socket

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    first, second = free_port(), free_port()
    told = tmp_path / "port"
    told.write_text(f"{first}\n")
    serve = ("import socket, sys\nsys.stdin.readline()\ns = socket.socket()\n"
             "s.bind(('127.0.0.1', int(sys.argv[1])))\ns.listen()\n"
             "print('listening', flush=True)\nsys.stdin.readline()\n")
    cfg = ProcSpec("cfg", ("sh", "-c", f"echo use port $(cat {told}); exec sleep 60"),
                   ready=r"use port (?P<port>\d+)", on_exit="restart")
    web = ProcSpec("web", (sys.executable, "-c", serve, "{port}"), after=("cfg",),
                   ready="^listening", ready_port="{port}",
                   ready_cmd=("sh", "-c", f"test {{port}} = {first}"), ready_timeout=30)

    async def scenario() -> list[Event]:
        engine, recorder = _engine(cfg, web)
        run = await _running(engine, "cfg")
        await _seen(engine, recorder, "web", "started")
        told.write_text(f"{second}\n")
        before = len(recorder.events)
        await asyncio.wait_for(engine.restart("cfg"), 30)
        await _seen(engine, recorder, "cfg", "ready", before)
        assert engine.variables["port"] == str(second)
        engine.members["web"].send(b"listen\n")
        await _seen(engine, recorder, "web", "ready")
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return recorder.events

    events = asyncio.run(scenario())
    assert [e for e in events if isinstance(e, Ready) and e.name == "web"], \
        [e for e in events if isinstance(e, Note)]


def test_a_restart_after_a_member_that_ended_for_good_is_refused(tmp_path: Path) -> None:
    """db failed and nothing will start it again: a restart of app, which starts after it,
    is refused at once (app is left running), rather than made with db's old {port};
    restarting db first lets it through."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    app = ProcSpec("app", ("sh", "-c", "echo app got {port}; exec cat"), after=("db",))

    async def scenario() -> tuple[str, list[str], list[str]]:
        engine, recorder = _engine(_db_that_fails(gate), app)
        run = await _running(engine, "db")
        mark = await _seen(engine, recorder, "app", "| app got")
        await _open(gate)
        await _seen(engine, recorder, "db", "exited", mark)
        refused = await _refusal(engine.restart("app"))
        app_notes = [e.text for e in recorder.events if isinstance(e, Note) and e.name == "app"]
        await asyncio.wait_for(engine.restart("db"), 30)
        await asyncio.wait_for(engine.restart("app"), 30)
        await _seen(engine, recorder, "app", "| app got", mark + 1)
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        lines = [e.data.decode().strip() for e in recorder.events
                 if isinstance(e, Output) and e.name == "app"]
        return refused, app_notes, lines

    refused, app_notes, lines = asyncio.run(scenario())
    assert refused == ("app starts after db, which exited with code 3; restart db first")
    assert "restarting on request" not in app_notes
    assert len(lines) == 2 and lines[0] != lines[1], lines  # the second with db's new pid


def test_a_refusal_names_the_member_through_which_it_starts_after_the_one_gone(
        tmp_path: Path) -> None:
    """app starts after db through mid: the refusal names db, at the root, and mid, the
    member of app's own after that leads there."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    mid = ProcSpec("mid", ("sh", "-c", "echo mid up; exec cat"), after=("db",))
    app = ProcSpec("app", ("sh", "-c", "echo app up; exec cat"), after=("mid",))

    async def scenario() -> str:
        engine, recorder = _engine(_db_that_fails(gate), mid, app)
        run = await _running(engine, "db")
        mark = await _seen(engine, recorder, "app", "| app up")
        await _open(gate)
        await _seen(engine, recorder, "db", "exited", mark)
        refused = await _refusal(engine.restart("app"))
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return refused

    assert asyncio.run(scenario()) == ("app starts after db (through mid), which exited with "
                                       "code 3; restart db first")


def test_a_member_after_one_that_ended_for_good_is_not_started_again(tmp_path: Path) -> None:
    """app's own restart (on_exit = restart) after db failed for good does not happen: it
    says why, at once (no "restarting in" for a restart that is not coming), and its
    summary names db."""
    db_gate, app_gate = tmp_path / "db-gate", tmp_path / "app-gate"
    os.mkfifo(db_gate)
    os.mkfifo(app_gate)
    app = ProcSpec("app", ("sh", "-c", f"echo app got {{port}}; read x < {app_gate}; exit 1"),
                   after=("db",), on_exit="restart")

    async def scenario() -> tuple[int, list[str], dict[str | None, str], str]:
        engine, recorder = _engine(_db_that_fails(db_gate), app, delays=[])
        run = await _running(engine, "db")
        mark = await _seen(engine, recorder, "app", "| app got")
        await _open(db_gate)
        mark = await _seen(engine, recorder, "db", "exited", mark)
        await _open(app_gate)
        status = await asyncio.wait_for(run, 30)  # nothing is left to run
        app_notes = [e.text for e in recorder.events if isinstance(e, Note) and e.name == "app"]
        return status, app_notes, _summaries(recorder), _why_gone(engine, "app")

    status, app_notes, summaries, why = asyncio.run(scenario())
    assert status == 3
    assert ("not started again: it starts after db, which exited with code 3; restart db "
            "first") in app_notes
    assert not [n for n in app_notes if n.startswith("restarting in")], app_notes
    # (what a step's failure on app adds: why it is gone for good)
    assert why == ("; it was not started again: it starts after db, which exited with code 3; "
                   "restart db first")
    assert summaries["app"].endswith("; not started again (waited for db, which exited with "
                                     "code 3)"), summaries


def test_starting_a_member_after_one_that_ended_for_good_fails_with_why(tmp_path: Path) -> None:
    """A start (a scenario's start step) of lazy, which starts after db, once db failed:
    it fails at once, saying so, rather than starting lazy with the dead db's {port}; and
    it starts once db runs again, as the refusal says."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    lazy = ProcSpec("lazy", ("sh", "-c", "echo lazy got {port}; exec cat"), after=("db",),
                    autostart=False)

    async def scenario() -> tuple[str, list[str]]:
        engine, recorder = _engine(_db_that_fails(gate), lazy)
        run = await _running(engine, "db")
        engine.hold()  # (once db is gone, nothing else would keep the cast going)
        await _open(gate)
        await _seen(engine, recorder, "db", "exited")
        try:
            result = await _refusal(engine.start("lazy"))
            await asyncio.wait_for(engine.restart("db"), 30)
            await asyncio.wait_for(engine.start("lazy"), 30)
        finally:
            engine.release()
            engine.request_stop()
            await asyncio.wait_for(run, 30)
        return result, [e.name for e in recorder.events if isinstance(e, Started)]

    result, started = asyncio.run(scenario())
    assert result == "lazy starts after db, which exited with code 3; restart db first"
    assert started == ["db", "db", "lazy"]


def test_members_held_back_at_their_first_start_start_once_asked(tmp_path: Path) -> None:
    """db ends for good while app still waits for slow: app is held back before it ever
    ran, and web, after app, is not started either, each saying why. Once db runs again,
    restarting app and web starts them."""
    db_gate, slow_gate = tmp_path / "db-gate", tmp_path / "slow-gate"
    os.mkfifo(db_gate)
    os.mkfifo(slow_gate)
    slow = ProcSpec("slow", ("sh", "-c", f"read x < {slow_gate}; echo up; exec cat"),
                    ready="up")
    app = ProcSpec("app", ("cat",), after=("db", "slow"))
    web = ProcSpec("web", ("cat",), after=("app",))

    async def scenario() -> tuple[list[str], list[str]]:
        engine, recorder = _engine(_db_that_fails(db_gate), slow, app, web)
        run = await _running(engine, "db")
        await _open(db_gate)
        mark = await _seen(engine, recorder, "db", "exited")
        await _open(slow_gate)
        await _seen(engine, recorder, "web", "not started", mark)
        try:
            await asyncio.wait_for(engine.restart("db"), 30)
            await asyncio.wait_for(engine.restart("app"), 30)
            await asyncio.wait_for(engine.restart("web"), 30)
        finally:
            engine.request_stop()
            await asyncio.wait_for(run, 30)
        notes = [f"{e.name}: {e.text}" for e in recorder.events
                 if isinstance(e, Note) and e.name in ("app", "web")]
        return notes, [e.name for e in recorder.events if isinstance(e, Started)]

    notes, started = asyncio.run(scenario())
    held = "it starts after db, which exited with code 3; restart db first"
    assert f"app: not started: {held}" in notes, notes
    assert f"web: not started: app was not started: {held}" in notes, notes
    assert started == ["db", "slow", "db", "app", "web"]


def test_a_member_added_in_the_place_of_one_that_ended_is_stopped_after_its_dependents(
        ) -> None:
    """server ended and a new server took its name (the API's spawn): the stop still stops
    client, which starts after server, before server, not the newest member first."""
    server = ProcSpec("server", ("sh", "-c", "echo up; exec cat"), ready="up", on_exit="ignore")
    client = ProcSpec("client", ("cat",), after=("server",))

    async def scenario() -> list[str]:
        engine, recorder = _engine(server, client)
        run = await _running(engine, "server")
        mark = await _seen(engine, recorder, "client", "started")
        engine.router.close_input("server")  # it ends (cat at EOF)
        mark = await _seen(engine, recorder, "server", "exited", mark)
        await asyncio.wait_for(engine.wait_ended("server"), 30)  # (then its name is free)
        engine.add(server)
        assert await asyncio.wait_for(engine.wait_ready("server"), 30)
        mark = len(recorder.events)
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return [e.name for e in recorder.events[mark:] if isinstance(e, Exited)]

    assert asyncio.run(scenario()) == ["client", "server"]


def test_the_stop_order_of_a_long_chain() -> None:
    """A chain of 2000 members (each after the one before) stops from its end to its
    start, one at a time: worked out without recursion, which such a chain would exhaust."""
    chain = [ProcSpec("m0", ("true",))] + [
        ProcSpec(f"m{i}", ("true",), after=(f"m{i - 1}",)) for i in range(1, 2000)]
    engine, _ = _engine(*reversed(chain))  # (the last first: the deepest look-ups)
    assert engine._cast_stop.order() == [[f"m{i}"] for i in reversed(range(2000))]


def test_a_run_being_stopped_for_a_restart_is_not_made_ready(tmp_path: Path) -> None:
    """Its ready line comes while a restart stops it (it ignores SIGTERM): that run is
    not ready, its value is not taken, and the member after it waits for the next run."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    srv = ProcSpec("srv", ("sh", "-c", f"trap '' TERM; echo armed; read x < {gate}; "
                                       "echo port $$; exec sleep 60"), ready=r"port (?P<port>\d+)")
    cli = ProcSpec("cli", ("echo", "{port}"), after=("srv",), on_exit="ignore")

    async def scenario() -> tuple[list[Event], list[Event]]:
        engine, recorder = _engine(srv, cli)
        run = asyncio.ensure_future(engine.run())
        mark = await _seen(engine, recorder, "srv", "| armed")  # it ignores SIGTERM now
        restart = asyncio.ensure_future(engine.restart("srv"))
        mark = await _seen(engine, recorder, "srv", "sent SIGTERM", mark)
        await _open(gate)  # run 1 says its port while it is being stopped
        await _seen(engine, recorder, "srv", "started", mark)  # run 2 (after SIGKILL)
        await _open(gate)
        await asyncio.wait_for(restart, 30)
        await _seen(engine, recorder, "cli", "started")
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        started = [e for e in recorder.events if isinstance(e, Started)]
        return [e for e in recorder.events if isinstance(e, Ready)], started

    readies, started = asyncio.run(scenario())
    srv_pids = [e.pid for e in started if e.name == "srv"]
    assert len(srv_pids) == 2
    assert [(e.name, e.variables) for e in readies] == [("srv", (("port", str(srv_pids[1])),))]
    assert [e.argv for e in started if e.name == "cli"] == [("echo", str(srv_pids[1]))]


def test_a_restart_of_an_added_member_found_not_ready_is_refused() -> None:
    """The restart comes while the member is stopped for its ready timeout: it does not
    bring it back (its name is free again for a new member), and it says why."""
    stubborn = ProcSpec("x", ("sh", "-c", "trap '' TERM; echo up; exec sleep 60"),
                        ready="never", ready_timeout=0.3, on_exit="ignore")

    async def scenario() -> tuple[str, str]:
        engine, recorder = _engine(ProcSpec("keep", ("sleep", "60")))
        run = asyncio.ensure_future(engine.run())
        await engine.wait_began()
        engine.add(stubborn, let_go_on_failure=True)  # (a spawn)
        try:
            await asyncio.wait_for(engine.wait_ready("x"), 30)
        except PipeplexError as exc:
            failed = str(exc)
        await _seen(engine, recorder, "x", "closed its stdin")  # its stop has begun
        try:
            await asyncio.wait_for(engine.restart("x"), 30)
            refused = "restarted"
        except PipeplexError as exc:
            refused = str(exc)
        await _seen(engine, recorder, "x", "exited")
        engine.check_can_add("x")  # free again
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return failed, refused

    failed, refused = asyncio.run(scenario())
    assert "x was not ready after 0.3 s" in failed
    assert refused == "x did not start again: it failed to start or to get ready", refused


def test_a_restart_that_cannot_start_is_tried_again_when_failures_restart(
        tmp_path: Path) -> None:
    """on_failure = "restart": a restart whose program is gone (being replaced) is a
    failure like an exit, tried again after the pause; here the program is back by the
    second try, which runs. (It stopped the cast, where on_failure = "ignore" went on.)"""
    program = tmp_path / "worker"
    program.write_text('#!/bin/sh\nrm -f "$0"\nexit 3\n')  # (gone once it ran)
    program.chmod(0o755)
    member = ProcSpec("w", (str(program),), on_exit="ignore", on_failure="restart")
    pauses: list[float] = []

    async def backoff(delay: float) -> None:
        pauses.append(delay)
        if len(pauses) == 2:
            program.write_text("#!/bin/sh\necho back\nexec sleep 60\n")
            program.chmod(0o755)

    async def scenario() -> tuple[int, list[str], int]:
        recorder, bus = Recorder(), Bus()
        bus.subscribe(recorder)
        engine = Engine(CastSpec((member,)), bus, grace=2.0, sleep=backoff)
        run = asyncio.ensure_future(engine.run())
        await _seen(engine, recorder, "w", "| back")
        assert not engine.stopping
        engine.request_stop()
        return await asyncio.wait_for(run, 30), recorder.notes(), engine.restarts["w"]

    status, notes, restarts = asyncio.run(scenario())
    assert status == 0, notes
    assert pauses == [0.1, 0.2]
    assert sum("cannot start" in note for note in notes) == 1, notes
    assert "restarting in 0.2 s (restart 2 of 5)" in notes, notes
    assert restarts == 1  # (a restart that never ran is not counted)


def test_a_restart_that_never_can_start_gives_up_at_max_restarts(tmp_path: Path) -> None:
    """Tried again and again, it gives up as a crash loop does, with the status of a
    program that cannot start (127) and a summary that says why."""
    program = tmp_path / "worker"
    program.write_text('#!/bin/sh\nrm -f "$0"\nexit 3\n')
    program.chmod(0o755)
    member = ProcSpec("w", (str(program),), on_exit="restart", max_restarts=2)
    engine, recorder = _engine(member, delays=[])
    assert asyncio.run(engine.run()) == 127
    notes = recorder.notes()
    assert sum("cannot start" in note for note in notes) == 2, notes
    # (Not "raise max_restarts": what would help is the reason said with each try.)
    assert ("w could not be started again (restart 2 of 2); giving up and stopping the cast"
            in notes), notes
    summary = _summaries(recorder)["w"]
    assert summary.startswith("summary: exited with code 3 after ") and (
        "; could not start again (" in summary), summary


def test_a_member_that_cannot_start_again_before_it_was_ever_ready_stops_the_cast(
    tmp_path: Path,
) -> None:
    """on_exit = ignore lets a member stay down after a failed restart, but not one that was
    never ready: members after it would wait for it for ever."""
    program = tmp_path / "db"
    program.write_text("#!/bin/sh\necho booting\nexec sleep 60\n")
    program.chmod(0o755)
    db = ProcSpec("db", (str(program),), ready="accepting", on_exit="ignore")
    api = ProcSpec("api", ("sleep", "60"), after=("db",))

    async def scenario() -> tuple[int, str, dict[str | None, str]]:
        engine, recorder = _engine(db, api)
        run = asyncio.ensure_future(engine.run())
        await _seen(engine, recorder, "db", "| booting")
        program.unlink()
        error = await _restart_error(engine, "db")
        status = await asyncio.wait_for(run, 30)
        return status, error, _summaries(recorder)

    status, error, summaries = asyncio.run(scenario())
    assert "cannot start" in error and status == 127
    assert summaries["api"] == "summary: never started (waited for db, which could not be " \
        "started)", summaries


def test_members_that_never_started_say_whom_they_waited_for(tmp_path: Path) -> None:
    """A member that gives up, exits or times out before it is ready, or cannot start: the
    summary of each member that waited for it says so, on one line, naming it."""
    never = ("sh", "-c", "exit 3")
    cases = [
        (ProcSpec("db", never, ready="never", on_exit="restart", max_restarts=1),
         "waited for db, which gave up after 1 restart"),
        (ProcSpec("db", never, ready="never", on_exit="restart", max_restarts=0),
         "waited for db, which gave up (max_restarts = 0)"),
        (ProcSpec("db", never, ready="never"),
         "waited for db, which exited with code 3 before it was ready"),
        (ProcSpec("db", ("sh", "-c", "kill -TERM $$"), ready="never"),
         "waited for db, which was killed by SIGTERM before it was ready"),
        (ProcSpec("db", ("sleep", "60"), ready="never", ready_timeout=0.2),
         "waited for db, which was not ready after 0.2 s"),
        (ProcSpec("db", (str(tmp_path / "missing"),)),
         "waited for db, which could not be started"),
    ]
    for db, why in cases:
        engine, recorder = _engine(
            db,
            ProcSpec("api", ("sleep", "60"), after=("db",)),
            ProcSpec("client", ("sleep", "60"), after=("api",)),
        )
        assert asyncio.run(asyncio.wait_for(engine.run(), 30)) != 0
        summaries = _summaries(recorder)
        assert summaries["api"] == f"summary: never started ({why})"
        chained = why.replace("waited for db", "waited for api, which waited for db")
        assert summaries["client"] == f"summary: never started ({chained})"
    assert summaries["db"] == f"summary: never started (cannot start: command not found: " \
        f"{str(tmp_path / 'missing')!r})"


def test_a_member_the_cast_stopped_while_it_waited_says_so() -> None:
    """Stopped from outside while its dependency was starting; one never asked to start."""

    async def main() -> dict[str | None, str]:
        engine, recorder = _engine(
            ProcSpec("db", ("sleep", "60"), ready="never"),
            ProcSpec("api", ("true",), after=("db",)),
            ProcSpec("tool", ("true",), autostart=False),
        )

        def stop_once_db_runs(event: Event) -> None:
            if isinstance(event, Started) and event.name == "db":
                engine.request_stop("stop")

        engine.bus.subscribe(stop_once_db_runs, [Started])
        await asyncio.wait_for(engine.run(), 30)
        return _summaries(recorder)

    summaries = asyncio.run(main())
    assert summaries["api"] == ("summary: never started (waited for db, which was not ready "
                                "when the cast stopped)")
    assert summaries["tool"] == "summary: never started (autostart = false, and nothing " \
        "started it)"


def test_a_captured_port_out_of_range_fails_at_once_naming_the_member() -> None:
    """ready_port = "{port}" that expands to 0 or 70000: a clear failure, not a long wait."""
    for shown in ("0", "70000"):
        server = ProcSpec("server", ("sh", "-c", f"echo port {shown}; exec sleep 60"),
                          ready=r"port (?P<port>\d+)", ready_port="{port}", ready_timeout=600)
        engine, recorder = _engine(server, ProcSpec("client", ("true",), after=("server",)))
        assert asyncio.run(asyncio.wait_for(engine.run(), 30)) == 1
        assert any(e.name == "server" and e.text.startswith(  # (under its name, once)
            f"ready_port = '{{port}}' is '{shown}', not a TCP port (1-65535)")
            for e in recorder.events if isinstance(e, Note))
        assert _summaries(recorder)["client"] == (
            f"summary: never started (waited for server, whose ready_port was '{shown}', "
            "not a TCP port)")


def test_a_captured_value_with_a_nul_byte_is_named_where_it_cannot_be_passed() -> None:
    """s's ready captures {tok} from output holding a NUL byte, which no command line can
    carry: c, which uses it, cannot start, and the reason names {tok}, not only "embedded
    null byte in its command or environment"."""
    s = ProcSpec("s", ("sh", "-c", "printf 'token a\\000b\\n'; exec sleep 60"),
                 ready=r"token (?P<tok>.+)", pty="false")
    c = ProcSpec("c", ("echo", "{tok}"), after=("s",))

    async def main() -> dict[str | None, str]:
        engine, recorder = _engine(s, c)
        assert await asyncio.wait_for(engine.run(), 30) == 127
        return _summaries(recorder)

    assert asyncio.run(main())["c"] == (
        "summary: never started (cannot start: {tok} holds a NUL byte (a\\x00b), which no "
        "command or environment can carry; make the pattern that captures it (a ready, or an "
        "expect step's) match less (\\w+, [^\\x00]+))")


def test_a_status_that_is_not_the_signals_is_explained() -> None:
    """Ctrl-C while a member waits out its restart's backoff: the run's status is that
    member's failure (3), not 130, and a last line says so; a Ctrl-C with no failure
    still ends with "stopped by SIGINT"."""
    import signal

    async def main(failing: bool) -> tuple[int, list[str]]:
        worker = ProcSpec("worker", ("sh", "-c", "exit 3" if failing else "exec sleep 60"),
                          on_exit="restart", max_restarts=100)
        engine, recorder = _engine(worker, ProcSpec("keep", ("sleep", "60")))
        run = await _running_began(engine)
        await _seen(engine, recorder, "worker", "restarting in" if failing else "started")
        engine.request_stop("got SIGINT", interrupted_by=signal.SIGINT)
        return await asyncio.wait_for(run, 30), [e.text for e in recorder.events
                                                 if isinstance(e, Note) and e.name is None]

    status, said = asyncio.run(main(failing=True))
    assert status == 3 and said[-1] == (
        "exit status 3: worker exited with code 3, and the cast stopped before its restart "
        "(a member's own failure decides it, not the SIGINT that stopped the cast)"), said
    status, said = asyncio.run(main(failing=False))
    assert status == 130 and said[-1] == "stopped by SIGINT", said


def test_a_status_that_is_not_the_asked_stops_is_explained() -> None:
    """pipeplex stop (or :quit) while a member waits out its restart's backoff: status 3,
    as for a Ctrl-C, but with no line to say why (its summary reads as an earlier exit)."""

    async def main() -> tuple[int, list[str]]:
        worker = ProcSpec("worker", ("sh", "-c", "exit 3"), on_exit="restart",
                          max_restarts=100)
        engine, recorder = _engine(worker, ProcSpec("keep", ("sleep", "60")))
        run = await _running_began(engine)
        await _seen(engine, recorder, "worker", "restarting in")
        engine.request_stop("stop requested through the control socket: stopping the cast",
                            asked=True)
        return await asyncio.wait_for(run, 30), [e.text for e in recorder.events
                                                 if isinstance(e, Note) and e.name is None]

    status, said = asyncio.run(main())
    assert status == 3 and said[-1] == (
        "exit status 3: worker exited with code 3, and the cast stopped before its restart "
        "(a member's own failure decides it, not the stop asked for)"), said


def test_a_ready_port_never_opened_says_where_the_member_listens() -> None:
    """The member listens on one port and ready_port names another: the failure says
    where it listens, the likelier fix than a longer wait."""
    import socket

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    told, waited = free_port(), free_port()
    serve = ("import socket, sys\ns = socket.socket()\n"
             f"s.bind(('127.0.0.1', {told}))\ns.listen()\n"
             "print('listening', flush=True)\nsys.stdin.read()\n")
    web = ProcSpec("web", (sys.executable, "-c", serve), ready="^listening",
                   ready_port=str(waited), ready_timeout=3)

    async def main() -> list[str]:
        engine, recorder = _engine(web)
        assert await asyncio.wait_for(engine.run(), 30) == 1
        return [e.text for e in recorder.events if isinstance(e, Note) and e.name == "web"]

    said = asyncio.run(main())
    assert any(f"; port {waited} on 127.0.0.1 or ::1 never accepted a connection; it "
               f"listens on port {told}: is ready_port the port it was told to use?" in n
               for n in said), said


@pytest.mark.parametrize("fails", [True, False])
def test_a_failed_member_that_used_a_name_nobody_captures_gets_the_guess(fails: bool) -> None:
    """server's ready has a group without a name; alice uses {port}, which reaches it as
    written. Not worth a word as the run starts (braces in a command are often the
    program's own), but once alice has failed, the run's end says what was likely meant,
    as a failed test's report does."""
    server = ProcSpec("server", ("sh", "-c", "echo listening on :4242; exec sleep 60"),
                      ready=r"listening on :(\d+)")
    check = "test '{port}' = 4242" if fails else "true {port}"
    alice = ProcSpec("alice", ("sh", "-c", check), after=("server",))

    async def main() -> tuple[int, list[str]]:
        engine, recorder = _engine(server, alice)
        status = await asyncio.wait_for(engine.run(), 30)
        return status, [e.text for e in recorder.events if isinstance(e, Note)]

    status, said = asyncio.run(main())
    guess = ("alice uses {port}, which no member captures (it is passed on as written); "
             "server's ready captures nothing, its groups having no names: if {port} is what "
             "one matches, name it, (?P<port>...)")
    assert status == (1 if fails else 0)
    assert any(n.endswith(guess) for n in said) == fails, said


@pytest.mark.parametrize(("reason", "by", "cause"), [
    ("db exited with code 3; stopping the cast (on_exit = stop)", "db", "db exited with code 3"),
    ("got SIGINT: stopping the cast; press Ctrl-C again to skip the grace period", None,
     "got SIGINT"),
    ("stopping the cast", "web", "because of web"),
    # (A give-up's note runs on into its stop: "...; giving up and stopping the cast".)
    ("db exited with code 2 and was restarted 1 time; giving up and stopping the cast (raise "
     "max_restarts to allow more)", "db", "db exited with code 2 and was restarted 1 time; "
     "giving up"),
])
def test_the_stops_cause_in_short_for_a_status(reason: str, by: str | None,
                                               cause: str) -> None:
    """What pipeplex status says of a stop: not "(stopping the cast)", nor advice for the
    terminal that pressed Ctrl-C."""

    async def main() -> str | None:
        engine, _ = _engine(ProcSpec("web", ("sleep", "60")))
        run = await _running_began(engine)
        assert engine.stop_cause is None
        engine.request_stop(reason, by=by)
        said = engine.stop_cause
        await asyncio.wait_for(run, 30)
        return said

    assert asyncio.run(main()) == cause


def test_members_after_one_nobody_starts_do_not_keep_the_cast_alive() -> None:
    """waiter is after manual (autostart = false): with nothing left that could start
    manual, the cast ends on its own; started, manual lets waiter start after it."""

    async def ends_on_its_own() -> dict[str | None, str]:
        engine, recorder = _engine(
            ProcSpec("manual", ("cat",), autostart=False),
            ProcSpec("waiter", ("cat",), after=("manual",)),
            ProcSpec("then", ("cat",), after=("waiter",)),
            ProcSpec("job", ("true",), on_exit="ignore"),
        )
        assert await asyncio.wait_for(engine.run(), 30) == 0
        return _summaries(recorder)

    summaries = asyncio.run(ends_on_its_own())
    assert summaries["waiter"] == "summary: never started (waited for manual, which never " \
        "started)"

    async def started_later() -> list[str]:
        engine, recorder = _engine(
            ProcSpec("manual", ("cat",), autostart=False),
            ProcSpec("waiter", ("cat",), after=("manual",)),
        )
        run = asyncio.create_task(engine.run())
        engine.hold()  # as a scenario's steps do, until they have run
        await engine.wait_began()
        await asyncio.wait_for(engine.start("manual"), 30)
        await asyncio.wait_for(engine.wait_ready("waiter"), 30)
        engine.release()
        engine.request_stop("done")
        await asyncio.wait_for(run, 30)
        return [e.name for e in recorder.events if isinstance(e, Started)]

    assert asyncio.run(started_later()) == ["manual", "waiter"]


def test_starting_a_member_that_waits_for_one_nobody_started_says_so() -> None:
    """The refusal changes nothing: once first is started, second may be, as it says."""
    async def main() -> tuple[str, list[str | None]]:
        engine, recorder = _engine(
            ProcSpec("first", ("cat",), autostart=False),
            ProcSpec("second", ("cat",), autostart=False, after=("first",)),
        )
        run = asyncio.create_task(engine.run())
        engine.hold()
        await engine.wait_began()
        try:
            refused = await _refusal(engine.start("second"))
            await asyncio.wait_for(engine.start("first"), 30)
            await asyncio.wait_for(engine.start("second"), 30)
        finally:
            engine.release()
            engine.request_stop()
            await asyncio.wait_for(run, 30)
        return refused, [e.name for e in recorder.events if isinstance(e, Started)]

    refused, started = asyncio.run(main())
    assert refused == ("second starts after first, which has autostart = false and was not "
                       "started: start first first")
    assert started == ["first", "second"]


def test_a_member_down_after_failing_failed_before_one_that_fails_later() -> None:
    """x exits 3 and waits out its backoff; then y exits 5 and stops the cast: x failed
    first, so the run's status is x's, not y's."""
    x = ProcSpec("x", ("sh", "-c", "exit 3"), on_exit="restart")
    y = ProcSpec("y", ("sh", "-c", "read line; exit 5"))

    async def scenario() -> tuple[int, Engine]:
        async def fail_y_in_the_backoff(delay: float) -> None:
            await _seen(engine, recorder, "y", "started")
            engine.members["y"].send(b"go\n")
            await engine.until_stopping()

        bus = Bus()
        recorder = Recorder()
        bus.subscribe(recorder)
        engine = Engine(CastSpec((x, y)), bus, sleep=fail_y_in_the_backoff)
        return await asyncio.wait_for(engine.run(), 30), engine

    status, engine = asyncio.run(scenario())
    assert status == 3
    assert [f.name for f in engine.failures] == ["x", "y"]


def test_a_restart_asked_for_after_an_exit_on_its_own_does_not_erase_it(tmp_path: Path) -> None:
    """w exits 3 on its own; a process it started still holds its output, so the exit is
    not published yet when a restart is asked for. The exit came first: on_exit = stop
    stops the cast with 3, and the restart does not happen."""
    gate, marker = tmp_path / "gate", tmp_path / "marker"
    os.mkfifo(gate)
    script = (f"if [ -e {marker} ]; then exec cat; fi; touch {marker}; "
              f"cat {gate} & exit 3")
    w = ProcSpec("w", ("sh", "-c", script))

    async def scenario() -> tuple[int, BaseException | int]:
        engine, recorder = _engine(w)
        run = asyncio.ensure_future(engine.run())
        await _seen(engine, recorder, "w", "started")
        await asyncio.wait_for(asyncio.shield(engine.members["w"].exit_future), 30)
        restart = asyncio.ensure_future(engine.restart("w"))
        await _open(gate)  # the held output ends: the exit is published
        (outcome,) = await asyncio.wait_for(asyncio.gather(restart, return_exceptions=True),
                                            30)
        engine.request_stop()
        return await asyncio.wait_for(run, 30), outcome

    status, outcome = asyncio.run(scenario())
    assert status == 3
    assert isinstance(outcome, PipeplexError), outcome


def test_a_member_whose_restart_waited_for_a_dependency_in_vain_says_so(tmp_path: Path) -> None:
    """api is restarted while db is down; db gives up: api's summary says why it did not
    start again, as a member that never started would."""
    gate, marker = tmp_path / "gate", tmp_path / "marker"
    os.mkfifo(gate)
    db = ProcSpec("db", ("sh", "-c", f"if [ -e {marker} ]; then exit 7; fi; touch {marker}; "
                                     f"echo ready; read x < {gate}; exit 7"),
                  ready="^ready$", on_exit="restart", max_restarts=1)
    api = ProcSpec("api", ("sh", "-c", "echo up; exec cat"), after=("db",), ready="^up$")

    async def scenario() -> list[str]:
        restarts: list[asyncio.Future[int]] = []

        async def backoff(delay: float) -> None:  # db is down: api is restarted meanwhile
            restarts.append(asyncio.ensure_future(engine.restart("api")))
            await _seen(engine, recorder, "api", "waiting for db to be ready again")

        bus = Bus()
        recorder = Recorder()
        bus.subscribe(recorder)
        engine = Engine(CastSpec((db, api)), bus, sleep=backoff)
        run = await _running(engine, "api")
        await _open(gate)
        assert await asyncio.wait_for(run, 30) == 7
        await asyncio.gather(*restarts, return_exceptions=True)
        return recorder.notes()

    notes = asyncio.run(scenario())
    summary = next(n for n in notes if n.startswith("summary:") and "not started again" in n)
    assert summary.endswith("; not started again (waited for db, which gave up after 1 "
                            "restart)"), summary


DAEMON = ("import subprocess, sys\n"
          "d = subprocess.Popen([sys.executable, '-c', 'import signal; signal.pause()'],\n"
          "                     start_new_session=True, stdin=subprocess.DEVNULL,\n"
          "                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
          "print('daemon', d.pid, flush=True)\n"
          "sys.stdin.read()\n")


def test_a_line_sent_is_recorded_after_what_the_member_wrote_before_it(
        tmp_path: Path) -> None:
    """b wrote "go" before the line is sent, but the loop has not read it yet (it is held
    meanwhile): the records still show b's line first, then the input, as a golden
    transcript must, whichever pipe the loop would have come to first."""
    import select

    wrote = tmp_path / "wrote"
    os.mkfifo(wrote)
    b = ProcSpec("b", ("sh", "-c", 'echo go; echo > "$0"; exec cat', str(wrote)))

    async def scenario() -> list[Event]:
        bus = Bus()
        recorder = Recorder()
        bus.subscribe(recorder)
        engine = Engine(CastSpec((b,)), bus)
        run = asyncio.ensure_future(engine.run())
        await _seen(engine, recorder, "b", "started")
        fd = os.open(wrote, os.O_RDONLY | os.O_NONBLOCK)
        try:  # the loop held until b has written "go" (it then writes to the FIFO)
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            assert poller.poll(30_000), "b never wrote"
        finally:
            os.close(fd)
        engine.router.send("b", b"x\n")
        await _seen(engine, recorder, "b", "| x")
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return recorder.events

    events = asyncio.run(scenario())
    order = [("in" if isinstance(e, InputSent) else e.data.decode().strip())
             for e in events if e.name == "b" and isinstance(e, Output | InputSent)
             and not getattr(e, "eof", False)]
    assert order[:2] == ["go", "in"], order


def test_a_line_sent_from_a_sink_leaves_the_members_unfinished_line_whole(
        tmp_path: Path) -> None:
    """A sink answers m's "ping" at once, from inside its delivery, while the rest of m's
    chunk ("AB", a line not finished yet) waits to be framed and "CD" is already in the
    pipe: the send reads nothing then, and m's line comes out whole, "ABCD"."""
    go, wrote = tmp_path / "go", tmp_path / "wrote"
    os.mkfifo(go)
    os.mkfifo(wrote)
    script = ("printf 'ping\\nAB'; read x < \"$0\"; printf 'CD\\n'; echo > \"$1\"; exec cat")
    m = ProcSpec("m", ("sh", "-c", script, str(go), str(wrote)), pty="pipes")

    async def scenario() -> list[bytes]:
        bus = Bus()
        recorder = Recorder()
        bus.subscribe(recorder)
        engine = Engine(CastSpec((m,)), bus)

        def answer(event: Event) -> None:
            if isinstance(event, Output) and event.data == b"ping\n":
                os.close(os.open(go, os.O_WRONLY))  # m writes "CD" now
                with open(wrote, "rb") as f:  # (it has, once it writes here)
                    f.read()
                engine.router.send("m", b"pong\n")

        bus.subscribe(answer, [Output])
        run = asyncio.ensure_future(engine.run())
        await _seen(engine, recorder, "m", "| pong")
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return [e.data for e in recorder.events if isinstance(e, Output)]

    lines = b"".join(asyncio.run(scenario())).split(b"\n")
    assert b"ABCD" in lines, lines


def test_a_stop_right_after_a_full_terminal_member_exited_is_clean(tmp_path: Path) -> None:
    """m (pty = "full") has exited, but the loop has not seen it yet when its stop begins:
    reading its last output before the ^D it is sent ends its terminal, and the stop goes on
    without writing to a closed stdin."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    m = ProcSpec("m", ("sh", "-c", 'echo hello; read x < "$0"; exit 0', str(gate)),
                 pty="full")

    async def scenario() -> int:
        engine, recorder = _engine(m)
        run = asyncio.ensure_future(engine.run())
        await _seen(engine, recorder, "m", "| hello")
        member = engine.members["m"]
        assert member.pid is not None
        os.close(os.open(gate, os.O_WRONLY))  # m ends now
        # The loop is held (on purpose) until m has exited, without reaping it.
        os.waitid(os.P_PID, member.pid, os.WEXITED | os.WNOWAIT)  # noqa: ASYNC222
        await asyncio.wait_for(engine.stopper.stop(member), 30)
        engine.request_stop()
        return await asyncio.wait_for(run, 30)

    assert asyncio.run(scenario()) == 0


@pytest.mark.parametrize("found", [True, False], ids=["found-by-its-environment", "env-i"])
def test_a_stop_does_not_wait_out_the_drain_for_output_held_outside_the_group(
        found: bool) -> None:
    """The member is gone, but a process it started outside its group (setsid) holds its
    output open. The stop does not first wait the 2 s in which a member's last output may
    still come: it stops that process at once, found by its environment, or, when it
    dropped that (env -i), by the output it holds."""
    import re

    env = "" if found else "env -i "
    script = f"setsid {env}sh -c 'echo held $$; exec sleep 60' & exec cat"
    member = ProcSpec("m", ("sh", "-c", script), ready="^held")
    held: list[int] = []

    async def scenario() -> list[str]:
        engine, recorder = _marked_engine(member, grace=5.0, run_id="held")
        run = await _running(engine, "m")
        held.extend(int(m[1]) for e in recorder.events if isinstance(e, Output)
                    for m in re.finditer(rb"held (\d+)", e.data))
        engine.request_stop()
        assert await asyncio.wait_for(run, 30) == 0
        return [e.text for e in recorder.events if isinstance(e, Note) and e.name == "m"]

    try:
        notes = asyncio.run(scenario())
        assert len(held) == 1
        assert (f"left 1 process (pid {held[0]}) outside its process group; sent it "
                "SIGTERM" in notes), notes
        assert not [n for n in notes if "still open" in n], notes
    finally:
        _kill(held)


def test_what_a_run_started_outside_its_group_is_stopped_at_a_restart_and_at_the_end() -> None:
    """A daemon the member started left its process group (setsid): a restart stops it
    before the new run starts (it could hold the new run's port), and the end of the
    cast stops the new run's, each announced, found by the run's id in its environment."""
    import re
    import select

    member = ProcSpec("m", (sys.executable, "-c", DAEMON), ready="^daemon")
    daemons: list[int] = []

    def daemon_of(events: list[Event]) -> list[int]:
        return [int(m[1]) for e in events if isinstance(e, Output)
                for m in re.finditer(rb"daemon (\d+)", e.data)]

    async def scenario() -> tuple[int, list[str], list[int]]:
        engine, recorder = _marked_engine(member, grace=5.0, run_id="escaped")
        run = await _running(engine, "m")
        first_line = next(i for i, e in enumerate(recorder.events) if daemon_of([e]))
        await asyncio.wait_for(engine.restart("m"), 30)
        await _seen(engine, recorder, "m", "| daemon", first_line + 1)  # the new run's
        daemons.extend(daemon_of(recorder.events))
        gone_at_restart = []
        for pid in daemons[:1]:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                gone_at_restart.append(pid)
                continue
            gone_at_restart.extend([pid] if select.select([fd], [], [], 0)[0] else [])
            os.close(fd)
        engine.request_stop()
        return await asyncio.wait_for(run, 30), recorder.notes(), gone_at_restart

    try:
        status, notes, gone_at_restart = asyncio.run(scenario())
        assert status == 0
        assert len(daemons) == 2 and gone_at_restart == daemons[:1], (daemons, notes)
        for pid in daemons:
            assert (f"left 1 process (pid {pid}) outside its process group; sent it "
                    "SIGTERM") in notes, notes
            try:  # a zombie until init reaps it is gone
                with open(f"/proc/{pid}/stat") as f:
                    assert f.read().rsplit(")", 1)[1].split()[0] == "Z", pid
            except OSError:  # ENOENT at open, or ESRCH when reaped between open and read
                continue
    finally:
        _kill(daemons)


@pytest.mark.parametrize("pty", ["stdout", "false"])
def test_what_an_ended_run_left_holding_its_output_is_stopped_before_the_restart(
        pty: str) -> None:
    """A daemon the member started left its group and its environment (``setsid env -i``,
    as a database's busy backend that writes over its environment for its title) but still
    holds the member's output: the restart stops it first, found by that output (it would
    hold the old run's port, or its shared memory), announced as any process the member
    left outside its group. Before, it was left to the end of the cast, and its next write
    failed (EIO, SIGPIPE) once the new run began."""
    orphan = "import os, signal; print('orphan', os.getpid(), flush=True); signal.pause()"
    script = (f"setsid env -i {sys.executable} -c {shlex.quote(orphan)} & "
              "echo run $$; exec cat")
    member = ProcSpec("m", ("sh", "-c", script), ready="^run", pty=pty)
    orphans: list[int] = []

    def orphans_of(events: list[Event]) -> list[int]:
        return [int(m[1]) for e in events if isinstance(e, Output)
                for m in re.finditer(rb"orphan (\d+)", e.data)]

    async def scenario() -> tuple[list[str], bool]:
        engine, recorder = _marked_engine(member, grace=5.0, run_id="holding")
        run = await _running(engine, "m")
        await _seen(engine, recorder, "m", "| orphan")
        orphans.extend(orphans_of(recorder.events))
        await asyncio.wait_for(engine.restart("m"), 30)
        gone = _ended(orphans[0])  # (at the new run's start, before any wait of the test)
        engine.request_stop()
        assert await asyncio.wait_for(run, 30) == 0
        return recorder.notes(), gone

    try:
        notes, gone = asyncio.run(scenario())
        assert len(orphans) == 1, orphans
        assert gone, f"the restart left the old run's orphan (pid {orphans[0]}) running"
        assert any(n.startswith(f"left 1 process (pid {orphans[0]}) outside its process "
                                "group; sent it SIGTERM") for n in notes), notes
    finally:
        _kill(orphans)


def test_what_holds_the_members_output_but_is_no_part_of_it_is_left_alone() -> None:
    """The search by held output takes only what writes to the member's output and started
    since its run: not a child the host program forked (multiprocessing's way) with copies
    of pipeplex's reading ends, nor a process of a container's devpts whose terminal has
    the member's number, nor a person's process that only reads the member's terminal.
    Each was sent SIGTERM at the restart as what the member left."""
    if subprocess.run(["unshare", "-Urm", "true"], capture_output=True).returncode != 0:
        pytest.skip("no user namespace to mount a devpts of its own in")
    orphan = "import os, signal; print('orphan', os.getpid(), flush=True); signal.pause()"
    script = (f"setsid env -i {sys.executable} -c {shlex.quote(orphan)} & "
              "echo on $(readlink /proc/$$/fd/1); exec cat")
    member = ProcSpec("m", ("sh", "-c", script), ready="^on ", pty="stdout")
    stranger_code = ("import os, signal, sys\n"
                     "held = [os.openpty() for _ in range(int(sys.argv[1]) + 1)]\n"
                     "print(os.readlink(f'/proc/self/fd/{held[-1][1]}'), flush=True)\n"
                     "signal.pause()\n")
    pids: list[int] = []

    async def scenario() -> tuple[bool, bool, bool, str, list[str]]:
        engine, recorder = _marked_engine(member, grace=5.0, run_id="strangers")
        run = await _running(engine, "m")
        await _seen(engine, recorder, "m", "| orphan")
        text = b"".join(e.data for e in recorder.events if isinstance(e, Output)).decode()
        pids.extend(int(m[1]) for m in re.finditer(r"orphan (\d+)", text))
        terminal = re.search(r"on (/dev/pts/(\d+))", text)
        assert terminal is not None, text
        stranger = await asyncio.create_subprocess_exec(
            "unshare", "-Urm", "sh", "-c", "mount -t devpts -o newinstance devpts /dev/pts "
            f'&& exec "$0" -c "$1" {terminal[2]}', sys.executable, stranger_code,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        pids.append(stranger.pid)
        assert stranger.stdout is not None
        said = (await asyncio.wait_for(stranger.stdout.readline(), 30)).decode().strip()
        forked = os.fork()
        if forked == 0:  # (a worker of the host program: pipeplex's reading ends, copied)
            signal.pause()
            os._exit(0)
        pids.append(forked)
        looker = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import os, signal, sys\n"
            "os.open(sys.argv[1], os.O_RDONLY | os.O_NOCTTY)\n"
            "print('looking', flush=True)\n"
            "signal.pause()\n", terminal[1], stdout=subprocess.PIPE)
        pids.append(looker.pid)
        assert looker.stdout is not None
        await asyncio.wait_for(looker.stdout.readline(), 30)
        await asyncio.wait_for(engine.restart("m"), 30)
        alive = (stranger.returncode is None and not _ended(stranger.pid), not _ended(forked),
                 not _ended(looker.pid))
        engine.request_stop()
        assert await asyncio.wait_for(run, 30) == 0
        for other in (stranger, looker):
            with contextlib.suppress(ProcessLookupError):  # (ended: it was stopped)
                other.kill()
            await other.wait()
        return *alive, said, recorder.notes()

    try:
        stranger_alive, worker_alive, looker_alive, said, notes = asyncio.run(scenario())
        assert said.startswith("/dev/pts/"), said  # (its own devpts, the member's number)
        assert stranger_alive, ("the container's process with a terminal of the member's "
                                f"number was stopped: {notes}")
        assert worker_alive, f"the host's forked worker was stopped: {notes}"
        assert looker_alive, f"a process reading the member's terminal was stopped: {notes}"
        assert any(n.startswith(f"left 1 process (pid {pids[0]}) outside its process group")
                   for n in notes), notes
    finally:
        _kill(pids)
        with contextlib.suppress(ChildProcessError, IndexError):
            os.waitpid(pids[2], 0)  # (the forked worker)


def _ended(pid: int) -> bool:
    """Whether ``pid`` has ended (gone, or a zombie until its parent reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def test_what_a_member_started_outside_its_group_shares_its_grace_in_its_wave() -> None:
    """a and its daemon (setsid) both ignore SIGTERM; b starts after a. The cast's stop
    takes one grace per wave, not two: a's daemon gets its SIGTERM with a's group, before
    a's SIGKILL (it used to get it once every member had been killed); and it goes in a's
    wave, after b has stopped, as a's part of the cast."""
    import re

    daemon = "setsid sh -c 'trap \"\" TERM; echo daemon $$; exec sleep 60' </dev/null"
    a = ProcSpec("a", ("sh", "-c", f"trap '' TERM; {daemon} & sleep 60 & wait"),
                 ready="^daemon")  # (a's trap before the daemon whose line makes a ready)
    b = ProcSpec("b", ("sh", "-c", "echo b; exec sleep 60"), ready="^b", after=("a",))
    daemons: list[int] = []

    async def scenario() -> list[Event]:
        engine, recorder = _marked_engine(a, b, grace=0.5, run_id="wave")
        run = await _running(engine, "b")
        daemons.extend(int(m[1]) for e in recorder.events if isinstance(e, Output)
                       for m in re.finditer(rb"daemon (\d+)", e.data))
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return recorder.events

    try:
        events = asyncio.run(scenario())
        assert len(daemons) == 1
        said = [(e.name, e.text) for e in events if isinstance(e, Note)]
        termed = ("a", f"left 1 process (pid {daemons[0]}) outside its process group; sent it "
                       "SIGTERM")
        killed = ("a", "ignored SIGTERM for 0.5 s; sent SIGKILL to its process group")
        assert termed in said and killed in said, said
        assert said.index(termed) < said.index(killed), said
        b_exited = next(i for i, e in enumerate(events) if isinstance(e, Exited)
                        and e.name == "b")
        assert events.index(next(e for e in events if isinstance(e, Note)
                                 and (e.name, e.text) == termed)) > b_exited, said
        assert ("a", f"1 process (pid {daemons[0]}) it left outside its process group "
                     "ignored SIGTERM for 0.5 s; sent it SIGKILL") in said, said
    finally:
        _kill(daemons)


def test_a_daemons_worker_forked_after_the_look_is_stopped_with_it(tmp_path: Path) -> None:
    """a's daemon (setsid) leads a process group of its own; at its SIGTERM it forks a
    worker that ignores SIGTERM, and exits. The worker, which no look saw, is reached
    through the daemon's group: SIGTERM, the grace, SIGKILL, in a's stop, once (it used to
    be orphaned and stopped again by the look at the end, with a second grace)."""
    import re

    from pipeplex.participants import _escaped

    script = tmp_path / "daemon.sh"
    # The sleep is forked before the trap (a SIGTERM in its instant before exec would meet
    # the trap, not kill it), and the line comes after both: the stop's look finds both.
    # (One in the midst of its exec() is read again until it is through.)
    script.write_text(
        "sleep 60 &\n"
        f"trap 'trap \"\" TERM; sh -c \"echo \\$\\$ > {tmp_path}/worker; exec sleep 60\" "
        "</dev/null >/dev/null & exit' TERM\n"
        "echo daemon $$\n"
        "wait\n")
    a = ProcSpec("a", ("sh", "-c", f"setsid sh {script} </dev/null & exec sleep 60"),
                 ready="^daemon")
    pids: list[int] = []

    async def scenario() -> list[str]:
        engine, recorder = _marked_engine(a, grace=0.5, run_id="led")
        run = await _running(engine, "a")
        pids.extend(int(m[1]) for e in recorder.events if isinstance(e, Output)
                    for m in re.finditer(rb"daemon (\d+)", e.data))
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return recorder.notes()

    try:
        notes = asyncio.run(scenario())
        assert len(pids) == 1
        daemon, worker = pids[0], int((tmp_path / "worker").read_text())
        pids.append(worker)
        # Found: the daemon and its sleep; said once, with the group.
        termed = [n for n in notes if "outside its process group; sent" in n]
        assert len(termed) == 1, notes
        # (The two in the order of /proc: by number, which the pid counter's wrap reverses.)
        found = re.match(r"left 2 processes \(pid (\d+), (\d+)\)", termed[0])
        assert found is not None and str(daemon) in found.groups(), notes
        assert termed[0].endswith("; sent them SIGTERM, and to the process group one of them "
                                  "leads"), notes
        killed = [n for n in notes if "SIGKILL" in n and "outside" in n]
        assert len(killed) == 1 and killed[0].startswith(
            f"processes in the groups of 2 processes (pid {found[1]}, {found[2]})"), notes
        assert killed[0].endswith("it left outside its process group still ran 0.5 s after "
                                  "the SIGTERM to those groups; sent them SIGKILL"), notes
        assert _escaped.start_time(worker) is None  # gone (or a zombie)
    finally:
        _kill(pids)


def test_a_worker_left_in_a_daemons_group_is_said_to_be_in_its_group() -> None:
    """The daemon leads its group and exits at SIGTERM; its worker, in that group, ignores
    SIGTERM. The SIGKILL's line says the worker's group is the daemon's ("of pid D"), not
    one the worker leads."""
    import re

    daemon = ("import os, signal\n"
              "r, w = os.pipe()\n"
              "worker = os.fork()\n"
              "if worker == 0:\n"
              "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "    os.write(w, b'x')\n"  # (its SIGTERM ignored before the line below)
              "    signal.pause()\n"
              "else:\n"
              "    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))\n"
              "    os.read(r, 1)\n"
              "    print('daemon', os.getpid(), worker, flush=True)\n"
              "    signal.pause()\n")
    a = ProcSpec("a", ("sh", "-c", 'setsid "$0" -c "$1" </dev/null & exec sleep 60',
                       sys.executable, daemon), ready="^daemon")
    pids: list[int] = []

    async def scenario() -> list[str]:
        engine, recorder = _marked_engine(a, grace=0.5, run_id="worker")
        run = await _running(engine, "a")
        pids.extend(int(pid) for e in recorder.events if isinstance(e, Output)
                    for m in re.finditer(rb"daemon (\d+) (\d+)", e.data) for pid in m.groups())
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return recorder.notes()

    try:
        notes = asyncio.run(scenario())
        daemon_pid, worker = pids
        assert (f"1 process (pid {worker}) it left outside its process group ignored SIGTERM "
                f"for 0.5 s; sent it SIGKILL, and to the process group of pid {daemon_pid}"
                ) in notes, notes
    finally:
        _kill(pids)


def test_a_member_on_its_way_out_as_the_stop_begins_ended_on_its_own() -> None:
    """x has called exit(3) and its process is being torn down (512 MB to free: tens of
    milliseconds before it is a zombie and its pidfd says so) when the cast's stop first
    touches it: its exit is its own failure (status 3), not the stop's doing (it used to be
    judged "stopped", the run's status that of the signal that stopped the cast)."""
    script = ("import os, sys\nheld = bytearray(512 * 1024 * 1024)\n"
              "for i in range(0, len(held), 4096): held[i] = 1\n"
              "print('up', flush=True)\nsys.stdin.readline()\nos._exit(3)\n")
    x = ProcSpec("x", (sys.executable, "-c", script), ready="^up", pty="stdout")
    y = ProcSpec("y", ("sleep", "60"))

    def exiting_or_gone(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            return True
        return fields[0] == b"Z" or bool(int(fields[6]) & 0x4)  # PF_EXITING

    async def scenario() -> tuple[int, list[Event]]:
        bus = Bus()
        recorder = Recorder()
        bus.subscribe(recorder)
        engine = Engine(CastSpec((x, y)), bus, grace=5.0)
        run = await _running(engine, "x")
        member = engine.members["x"]
        assert member.pid is not None
        member.send(b"go\n")
        deadline = time.monotonic() + 30
        while not exiting_or_gone(member.pid):  # (the loop waits: its exit is not seen)
            assert time.monotonic() < deadline, "x did not exit"
        engine.request_stop()
        return await asyncio.wait_for(run, 30), recorder.events

    status, events = asyncio.run(scenario())
    exited = next(e for e in events if isinstance(e, Exited) and e.name == "x")
    assert (exited.returncode, exited.stopped, status) == (3, False, 3), events


def test_a_member_whose_main_thread_ended_is_still_stopped_by_the_stop() -> None:
    """Its main thread called pthread_exit and its other threads run on: its leader is a
    zombie marked as exiting for as long as they do. It has not ended before the stop: the
    stop's SIGTERM ends it, and the run's status is 0."""
    script = ("import ctypes, threading\n"
              "def serve():\n"
              "    print('serving', flush=True)\n"
              "    threading.Event().wait()  # (serves until it is stopped)\n"
              "threading.Thread(target=serve).start()\n"
              "ctypes.CDLL(None).pthread_exit(None)\n")
    server = ProcSpec("server", (sys.executable, "-c", script), ready="^serving")

    def leader_a_zombie(pid: int) -> bool:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"

    async def scenario() -> tuple[int, list[Event]]:
        bus = Bus()
        recorder = Recorder()
        bus.subscribe(recorder)
        engine = Engine(CastSpec((server,)), bus, grace=5.0)
        run = await _running(engine, "server")
        pid = engine.members["server"].pid
        assert pid is not None
        deadline = time.monotonic() + 30
        while not leader_a_zombie(pid):  # (its main thread gone, the process running)
            assert time.monotonic() < deadline, "its main thread did not end"
        engine.request_stop()
        return await asyncio.wait_for(run, 30), recorder.events

    status, events = asyncio.run(scenario())
    exited = next(e for e in events if isinstance(e, Exited))
    assert (exited.returncode, exited.stopped, status) == (-15, True, 0), events


def test_a_grace_finer_than_a_tenth_of_a_second_is_said_as_it_was_set() -> None:
    """stop_timeout = 0.05: 'ignored SIGTERM for 0.05 s', not '0.0 s'."""
    stubborn = ProcSpec("a", ("sh", "-c", "trap '' TERM; echo up; while :; do sleep 1; done"),
                        ready="^up", stop_timeout=0.05)

    async def scenario() -> list[str]:
        bus = Bus()
        recorder = Recorder()
        bus.subscribe(recorder)
        engine = Engine(CastSpec((stubborn,)), bus, grace=5.0)
        run = await _running(engine, "a")
        engine.request_stop()
        await asyncio.wait_for(run, 30)
        return recorder.notes()

    notes = asyncio.run(scenario())
    assert "ignored SIGTERM for 0.05 s; sent SIGKILL to its process group" in notes, notes


def test_a_misspelt_variable_is_said_before_the_members_start() -> None:
    db = ProcSpec("db", ("sh", "-c", "echo port 4242"), ready="port (?P<port>\\d+)",
                  on_exit="ignore")
    client = ProcSpec("client", ("echo", "{prot}"), after=("db",))

    async def scenario() -> list[Event]:
        engine, recorder = _engine(db, client)
        assert await asyncio.wait_for(engine.run(), 30) == 0
        return recorder.events

    events = asyncio.run(scenario())
    warned = next(i for i, e in enumerate(events) if isinstance(e, Note) and "{prot}" in e.text)
    assert events[warned].level == "warning"
    assert "did you mean {port}, which db captures?" in events[warned].text
    assert warned < next(i for i, e in enumerate(events) if isinstance(e, Started))
    assert any(isinstance(e, Output) and e.data == b"{prot}\n" for e in events)


def test_a_ready_value_at_the_end_of_a_line_that_never_ends_is_explained() -> None:
    """The line shown under "not ready" matches the pattern: the message says why that
    was not taken (the value may still grow) and what to do."""
    srv = ProcSpec("srv", ("sh", "-c", "printf 'port: 4242'; exec sleep 60"),
                   ready="port: (?P<port>\\d+)", ready_timeout=3)  # (time to be read)

    notes = _notes_of_run(srv, status=1)
    assert any("'port: 4242' in its last line matches, but that line has not ended, and a "
               "value at its end may still grow: end the line, or let the pattern match what "
               "follows the value" in note for note in notes), notes


def test_a_build_step_that_ended_holds_nothing_back_while_its_child_keeps_its_output(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pg_ctl start, any launcher: it exits with 0, and a child it started says it is ready
    and keeps its output open. Members after it start once it is ready: no run of it is to
    come (on_exit = "ignore"), so none is waited for (its supervisor waits for the output to
    close, or for the drain's 2 s, before it ends: made long here, so that a slow moment
    between build's exit and its child's line cannot end the wait first)."""
    monkeypatch.setattr(_output, "DRAIN_GRACE", 3600.0)
    ready_gate, end_gate = tmp_path / "ready-gate", tmp_path / "end-gate"
    os.mkfifo(ready_gate)
    os.mkfifo(end_gate)
    build = ProcSpec("build", ("sh", "-c", f"(read x < {ready_gate}; echo built; "
                                           f"read y < {end_gate}) & exit 0"),
                     ready="built", on_exit="ignore")
    app = ProcSpec("app", ("echo", "app ran"), after=("build",), on_exit="ignore")

    async def scenario() -> list[Event]:
        engine, recorder = _engine(build, app)
        run = asyncio.ensure_future(engine.run())
        await _seen(engine, recorder, "build", "started")
        await _open(ready_gate)  # (after build's own exit, most likely: its child is ready)
        await _seen(engine, recorder, "app", "started")
        await _open(end_gate)
        assert await asyncio.wait_for(run, 30) == 0
        return recorder.events

    events = asyncio.run(scenario())
    assert not [e for e in events if isinstance(e, Note) and "again" in e.text], events
    app_started = next(i for i, e in enumerate(events)
                       if isinstance(e, Started) and e.name == "app")
    build_done = next(i for i, e in enumerate(events)
                      if isinstance(e, Exited) and e.name == "build")
    assert app_started < build_done, events


def test_a_member_that_wrote_nothing_on_a_pipe_for_stdin_is_told_of_pty_true() -> None:
    """sqlite3 and psql prompt only when their stdin is a terminal: with the default mode,
    a ready pattern for the prompt waits in vain, and the message says what to change."""
    repl = ProcSpec("sql", ("sh", "-c", "exec sleep 60"), ready="sqlite> $", ready_timeout=0.2)

    notes = _notes_of_run(repl, status=1)
    assert any("\nwrote nothing (a program that prompts only when its stdin is a terminal, "
               "as sqlite3 and psql do, writes no prompt with pty = \"stdout\"; pty = true "
               "gives it one)" in note for note in notes), notes


def test_a_member_that_ended_is_not_told_of_prompts() -> None:
    """It wrote nothing because it failed, not because it waits at a prompt it never wrote."""
    failed = ProcSpec("job", ("sh", "-c", "exit 3"), ready="done")

    notes = _notes_of_run(failed, status=3)
    assert any(note.startswith("was not ready yet when it ended: it waited for output "
                               "matching ready = 'done'\nwrote nothing")
               for note in notes), notes  # (under its name, which the note need not repeat)
    assert not any("sqlite3" in note for note in notes), notes


def test_a_restart_while_a_build_step_drains_holds_back_who_starts_after_it(
        tmp_path: Path) -> None:
    """build exited (on_exit = "ignore"), a child of it still holds its output. Restarting
    build, and app that starts after it, at once: app waits for build's new run and gets
    its new value, not the old run's."""
    gate, count = tmp_path / "gate", tmp_path / "count"
    os.mkfifo(gate)
    build = ProcSpec("build", ("sh", "-c", f"n=$(($(cat {count} 2>/dev/null || echo 0) + 1)); "
                                           f"echo $n > {count}; echo ready $n; "
                                           f"(read x < {gate}) & exit 0"),
                     ready="ready (?P<v>[0-9]+)", on_exit="ignore")
    app = ProcSpec("app", ("echo", "app got {v}"), after=("build",), on_exit="ignore")

    async def scenario() -> list[bytes]:
        engine, recorder = _engine(build, app)
        engine.hold()
        run = asyncio.ensure_future(engine.run())
        await _seen(engine, recorder, "app", "| app got 1")
        await asyncio.wait_for(asyncio.gather(engine.restart("build"), engine.restart("app")), 30)
        seen = await _seen(engine, recorder, "app", "| app got 2")
        engine.release()
        engine.request_stop()  # (which stops the gate's readers that build's runs left)
        await asyncio.wait_for(run, 30)
        return [e.data for e in recorder.events[:seen]
                if isinstance(e, Output) and e.name == "app"]

    assert asyncio.run(scenario()) == [b"app got 1\n", b"app got 2\n"]


def test_a_silent_server_is_not_told_of_prompts() -> None:
    """Its ready pattern waits for a log line, not a prompt: the hint would mislead."""
    server = ProcSpec("api", ("sh", "-c", "exec sleep 60"), ready="listening on", ready_timeout=0.2)

    notes = _notes_of_run(server, status=1)
    assert any("\nwrote nothing" in note for note in notes), notes
    assert not any("sqlite3" in note for note in notes), notes
