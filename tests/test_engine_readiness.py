"""Readiness of every run, and variables that follow restarts, with real processes.

Each member here counts its runs in a file and, from its second run on, becomes ready only
when it reads a line: the test decides when, and waits on events with deadlines.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from pipeplex import Bus, CastSpec, Event, Exited, Note, Output, ProcSpec, Ready, Started
from pipeplex.engine.engine import Engine

DEADLINE = 30.0


class Events:
    """Every event, and a way to wait until they say something."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], what: str) -> None:
        try:
            async with asyncio.timeout(DEADLINE):
                while not predicate():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"no {what} after {DEADLINE} s: {self.events}") from None

    def of(self, kind: type, name: str) -> list[Event]:
        return [e for e in self.events if isinstance(e, kind) and e.name == name]

    def count(self, kind: type, name: str) -> int:
        return len(self.of(kind, name))

    def notes(self, name: str) -> list[str]:
        return [e.text for e in self.events if isinstance(e, Note) and e.name == name]


def server(name: str, folder: Path, **options: object) -> ProcSpec:
    """Prints ``NAME N`` (N: its run) and waits for a line to exit with 1; from its second
    run on, it first waits for a line before it prints (it is not ready until then)."""
    script = (f"n=$(cat {name}.count 2>/dev/null || echo 0); n=$((n + 1)); "
              f"echo $n > {name}.count; if [ $n -gt 1 ]; then read go; fi; "
              f"echo {name} $n; read quit; exit 1")
    return ProcSpec(name, ("sh", "-c", script), cwd=str(folder),
                    ready=rf"^{name} (?P<{name}>\d+)$", on_exit="restart", **options)  # type: ignore[arg-type]


def test_a_dependent_restarts_only_with_a_whole_new_set_of_values(tmp_path: Path) -> None:
    """client starts after a and b; both restart, then client does: it waits until both
    are ready again and starts with both new values, never with one old and one new."""
    client = ProcSpec("client", ("sh", "-c", "echo client {a} {b}; read quit; exit 1"),
                      after=("a", "b"), on_exit="restart")

    async def main() -> tuple[Engine, Events]:
        events = Events()
        bus = Bus()
        bus.subscribe(events)
        engine = Engine(CastSpec((server("a", tmp_path), server("b", tmp_path), client)), bus,
                        grace=2.0)
        run = asyncio.ensure_future(engine.run())
        try:
            await events.until(lambda: events.count(Started, "client") == 1, "client start")
            for name in ("a", "b"):
                engine.router.send(name, b"quit\n")
            await events.until(lambda: events.count(Started, "a") == 2
                               and events.count(Started, "b") == 2, "second runs")
            engine.router.send("client", b"quit\n")
            await events.until(lambda: "waiting for a, b to be ready again"
                               in events.notes("client"), "client waiting")
            engine.router.send("a", b"go\n")
            await events.until(lambda: events.count(Ready, "a") == 2, "a ready again")
            engine.router.send("b", b"go\n")
            await events.until(lambda: events.count(Started, "client") == 2, "client restart")
        finally:
            engine.request_stop()
            await asyncio.wait_for(run, DEADLINE)
        return engine, events

    engine, events = asyncio.run(main())
    starts = [e for e in events.of(Started, "client") if isinstance(e, Started)]
    # (sh -c gets the values in its environment: see "Variables in a shell command")
    assert [list(s.argv[1:3]) for s in starts] == [["PIPEPLEX_VAR_a=1", "PIPEPLEX_VAR_b=1"],
                                                   ["PIPEPLEX_VAR_a=2", "PIPEPLEX_VAR_b=2"]]
    # It started only once b (ready last) was ready again.
    b_ready = events.events.index(events.of(Ready, "b")[1])
    assert events.events.index(starts[1]) > b_ready
    assert [e.variables for e in events.of(Ready, "a") if isinstance(e, Ready)] == [
        (("a", "1"),), (("a", "2"),)]
    assert engine.variables == {"a": "2", "b": "2"}
    assert engine.restarts == {"a": 1, "b": 1, "client": 1}


def test_a_stop_while_waiting_for_the_next_run_does_not_count_a_restart(tmp_path: Path) -> None:
    """client waits for its server's next run; the cast stops meanwhile: client's restart
    never happened, and its summary does not count it."""
    client = ProcSpec("client", ("sh", "-c", "echo on {srv}; read quit; exit 1"),
                      after=("srv",), on_exit="restart")

    async def main() -> tuple[Engine, Events]:
        events = Events()
        bus = Bus()
        bus.subscribe(events)
        engine = Engine(CastSpec((server("srv", tmp_path), client)), bus, grace=2.0)
        run = asyncio.ensure_future(engine.run())
        try:
            await events.until(lambda: events.count(Started, "client") == 1, "client start")
            engine.router.send("srv", b"quit\n")
            await events.until(lambda: events.count(Started, "srv") == 2, "second run")
            engine.router.send("client", b"quit\n")
            await events.until(lambda: "waiting for srv to be ready again"
                               in events.notes("client"), "client waiting")
        finally:
            engine.request_stop()
            await asyncio.wait_for(run, DEADLINE)
        return engine, events

    engine, events = asyncio.run(main())
    assert events.count(Started, "client") == 1
    assert engine.restarts == {"srv": 1, "client": 0}
    assert any(n.startswith("summary: exited with code 1 after") and "restarts" not in n
               for n in events.notes("client"))


def test_a_later_run_that_exits_before_it_is_ready_backs_off_like_any_exit(
        tmp_path: Path) -> None:
    """Run 1 is ready, run 2 exits before it is ready, run 3 is ready: each ready run is
    announced with what it captured, and the exit before readiness is restarted with the
    usual (growing) pause and counted."""
    script = ("n=$(cat count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > count; "
              "[ $n -eq 2 ] && exit 1; echo up $n; [ $n -eq 1 ] && exit 1; read quit")
    spec = ProcSpec("srv", ("sh", "-c", script), cwd=str(tmp_path), ready=r"^up (?P<n>\d+)$",
                    on_exit="restart")
    delays: list[float] = []

    async def main() -> tuple[Engine, Events]:
        events = Events()
        bus = Bus()
        bus.subscribe(events)

        async def no_wait(delay: float) -> None:
            delays.append(delay)

        engine = Engine(CastSpec((spec,)), bus, grace=2.0, sleep=no_wait)
        run = asyncio.ensure_future(engine.run())
        try:
            await events.until(lambda: events.count(Ready, "srv") == 2, "second readiness")
        finally:
            engine.request_stop()
            await asyncio.wait_for(run, DEADLINE)
        return engine, events

    engine, events = asyncio.run(main())
    assert delays == [0.1, 0.2]
    assert engine.restarts["srv"] == 2
    assert [e.variables for e in events.of(Ready, "srv") if isinstance(e, Ready)] == [
        (("n", "1"),), (("n", "3"),)]
    assert engine.variables == {"n": "3"}


def test_a_dependency_that_ends_right_after_its_ready_line_lets_its_dependent_start(
        tmp_path: Path) -> None:
    """build prints its ready line and ends. The loop is held from that line until build
    has exited (build ends only then), so build's supervisor learns of the line and of the
    exit in one go. app, after build, starts: it does not wait for a next run of build that
    will never come."""
    go = tmp_path / "go"
    os.mkfifo(go)
    build = ProcSpec("build", ("sh", "-c", 'echo built; cat "$0" >/dev/null', str(go)),
                     ready="^built$", on_exit="ignore")
    app = ProcSpec("app", ("sh", "-c", "echo app runs"), after=("build",), on_exit="ignore")
    pids: dict[str, int] = {}

    def hold_until_exited(event: Event) -> None:
        if isinstance(event, Started):
            pids[event.name] = event.pid
        elif isinstance(event, Output) and event.name == "build":
            # Lets build end, and blocks the loop until it has, without reaping it.
            os.close(os.open(go, os.O_WRONLY))
            os.waitid(os.P_PID, pids["build"], os.WEXITED | os.WNOWAIT)

    async def main() -> Events:
        events = Events()
        bus = Bus()
        bus.subscribe(hold_until_exited)
        bus.subscribe(events)
        engine = Engine(CastSpec((build, app)), bus, grace=2.0)
        run = asyncio.ensure_future(engine.run())
        try:
            await events.until(lambda: events.count(Exited, "app") == 1, "app's exit")
        finally:
            engine.request_stop()
            await asyncio.wait_for(run, DEADLINE)
        return events

    events = asyncio.run(main())
    assert not [n for n in events.notes("app") if "ready again" in n]


def test_an_input_line_whose_echo_matches_ready_once_filled_in_is_said_once() -> None:
    """cli types 'echo connect {port}' on a full terminal, whose echo its ready matches once
    {port} has db's value: said as its first run starts, under its name; not again when
    it restarts."""
    db = ProcSpec("db", ("sh", "-c", "echo port 4242; exec cat"), ready=r"port (?P<port>\d+)")
    cli = ProcSpec("cli", ("sh", "-c", "read line; echo got; exit 0"), pty="full",
                   after=("db",), input=("connect {port}",), ready=r"connect \d+",
                   on_exit="restart", max_restarts=1)

    async def scenario() -> list[str]:
        events = Events()
        bus = Bus()
        bus.subscribe(events)
        engine = Engine(CastSpec((db, cli)), bus, grace=5.0)
        run = asyncio.ensure_future(engine.run())
        await events.until(lambda: events.count(Started, "cli") == 2
                           and events.count(Exited, "cli") >= 1, "cli's second run")
        engine.request_stop()
        await asyncio.wait_for(run, DEADLINE)
        return events.notes("cli")

    notes = asyncio.run(scenario())
    said = [n for n in notes if "matches its own input line" in n]
    assert said == [
        "its ready 'connect \\d+' matches its own input line 'connect 4242' (its {variables} "
        "filled in), which its terminal (pty = true) shows as it is typed: that echo makes "
        "it ready before it answers; make the pattern match only the answer (anchored, "
        "'^...', or with what the answer adds)"], notes
