"""The Python API at its edges: bad arguments, order across threads, interrupted calls,
handles of ended members, errors that travel between processes."""

from __future__ import annotations

import asyncio
import collections
import math
import os
import pickle
import re
import signal
import sys
import threading
from pathlib import Path

import pytest

import pipeplex
from pipeplex import EOF, TIMEOUT, AsyncPlex, Plex, UnexpectedExit

PY = sys.executable
SIGNAL_THEN_LINES = (
    "import signal, sys\n"
    "signal.signal(signal.SIGUSR1, lambda *a: print('usr1', flush=True))\n"
    "print('ready', flush=True)\n"
    "for line in sys.stdin:\n"
    "    print('got', line.strip(), flush=True)\n"
)


@pytest.mark.parametrize("options", [{"timeout": -5}, {"timeout": math.nan}, {"timeout": 0},
                                     {"timeout": math.inf}, {"timeout": 1e9},
                                     {"grace": 0}, {"grace": "5"}, {"grace": math.inf},
                                     {"pty": "full"}, {"pty": "junk"}])
def test_bad_plex_options_are_refused_at_once(options: dict[str, object]) -> None:
    """Not at the first spawn, blamed on an argument the caller never gave."""
    with pytest.raises(ValueError, match=f"{next(iter(options))} must be"):
        Plex(**options)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"{next(iter(options))} must be"):
        AsyncPlex(**options)  # type: ignore[arg-type]


def test_a_call_that_waits_from_a_sink_is_refused_not_a_deadlock() -> None:
    """Sinks run in the plex's own thread: a call there that waits for that thread (close,
    spawn, wait...) would wait for ever, so it raises instead."""
    raised: list[BaseException] = []

    def sink(event: object) -> None:
        if isinstance(event, pipeplex.Exited):
            for call in (plex.close, lambda: plex.spawn("late", "cat"),
                         lambda: plex["c"].wait(), lambda: plex["c"].expect("x")):
                try:
                    call()
                except RuntimeError as exc:
                    raised.append(exc)

    with Plex() as plex:
        plex.bus.subscribe(sink, [pipeplex.Exited])
        c = plex.spawn("c", "true")
        assert c.wait() == 0
    assert len(raised) == 4, raised
    assert all("from the plex's own thread" in str(exc) for exc in raised)


def test_bad_arguments_of_members_are_value_errors() -> None:
    with Plex() as plex:
        with pytest.raises(pipeplex.ArgumentError, match="c: background is True or False"):
            plex.spawn("c", "cat", background="yes")  # type: ignore[arg-type]
        with pytest.raises(pipeplex.ArgumentError, match="c: shell is True or False, not 'no'"):
            plex.spawn("c", "cat", shell="no")  # type: ignore[arg-type]
        for env in ("A=1", ["A=1"], [("A", "1")]):
            with pytest.raises(pipeplex.ArgumentError,
                               match=r"c: env is a mapping of names to values, as \{'DEBUG'"):
                plex.spawn("c", "cat", env=env)  # type: ignore[arg-type]
        cat = plex.spawn("cat", "cat")
        for pattern, message in ((b"hello", "is bytes"), (5, "not 5"), ([], "at least one"),
                                 (["ok", b"x"], "is bytes")):
            with pytest.raises(ValueError, match=message):
                cat.expect(pattern, timeout=5)  # type: ignore[call-overload]
        import re
        with pytest.raises(ValueError, match="bytes pattern"):
            cat.expect(re.compile(b"x"), timeout=5)  # type: ignore[call-overload]
        for timeout in (-1, math.nan, "5"):
            with pytest.raises(ValueError, match="timeout must be a number of seconds"):
                cat.expect("x", timeout=timeout)  # type: ignore[arg-type]
        with pytest.raises(pipeplex.ExpectTimeout):  # 0: look once, as in pexpect
            cat.expect("x", timeout=0)
        with pytest.raises(TimeoutError, match=r"cat was still running after 0\.0 s"):
            cat.wait(timeout=0)
        for sig in (2.0, True, "NOPE", 99999):
            with pytest.raises(ValueError, match=r"a signal is|unknown signal|no signal number"):
                cat.signal(sig)  # type: ignore[arg-type]
        for char in ("1", "", "ab"):
            with pytest.raises(ValueError, match=r"control character|takes one character"):
                cat.sendcontrol(char)
        with pytest.raises(ValueError, match="at least one member"):
            plex.expect_any({})
        with pytest.raises(ValueError, match="pty must be"):
            plex.spawn("other", "cat", pty="full")  # type: ignore[arg-type]
        for cmd, kind in ((5, "int"), (3.5, "float"), ({"cat": 1}, "dict"),
                          ({"cat"}, "set"), (None, "NoneType"), (b"cat", "bytes")):
            with pytest.raises(ValueError, match=r"^other: cmd is a list of arguments, a Path "
                                                 rf"or a string, not a value of type {kind}$"):
                plex.spawn("other", cmd)  # type: ignore[arg-type]
        for cmd, kind in ((["echo", b"x"], "bytes"), (["echo", 3], "int")):
            with pytest.raises(ValueError, match=r"^other: each argument of cmd is a string or "
                                                 rf"a Path, not a value of type {kind} "):
                plex.spawn("other", cmd)  # type: ignore[arg-type]
        plex.spawn("seq", collections.UserList(["true"])).wait(timeout=10)  # (any sequence)
        assert cat.running


def test_sendcontrol_sends_what_ctrl_gives_on_a_terminal() -> None:
    with Plex() as plex:
        od = plex.spawn("od", ["od", "-An", "-tx1"])
        for char in "cC@[?_":
            od.sendcontrol(char)
        od.close_stdin()
        od.expect(EOF)
        assert od.before.split() == ["03", "03", "00", "1b", "7f", "1f"]


async def _one_turn() -> None:
    """Nothing: run in the plex's loop, it returns after what the loop had queued before."""


def test_an_interrupted_call_does_not_go_on_in_the_background() -> None:
    """Ctrl-C during expect_any: the expectation is cancelled before the KeyboardInterrupt
    reaches the caller, so it cannot take the output a later expect waits for."""
    with Plex() as plex:
        cat = plex.spawn("cat", "cat")
        waiting = threading.Event()

        async def expect_foo() -> object:
            waiting.set()
            return await plex._async.expect_any({"cat": "foo"})

        main = threading.get_ident()
        poke = threading.Thread(target=lambda: waiting.wait(10) and signal.pthread_kill(
            main, signal.SIGINT))
        poke.start()
        with pytest.raises(KeyboardInterrupt):
            plex._call(expect_foo())
        poke.join()
        seen = threading.Event()
        plex.bus.subscribe(lambda e: b"foo" in e.data and seen.set(), [pipeplex.Output])
        cat.sendline("foo")
        assert seen.wait(10)
        plex._call(_one_turn())  # a waiter that output woke was queued first: it has run
        assert cat.expect("foo", timeout=10)[0] == "foo"


@pytest.mark.parametrize("attempt", range(20))
def test_input_sent_after_close_stdin_never_reaches_the_member(attempt: int) -> None:
    with Plex() as plex:
        cat = plex.spawn("cat", "cat")
        cat.sendline("before")
        cat.close_stdin()
        cat.sendline("after")
        assert cat.wait(timeout=10) == 0
        assert cat.expect(["after", EOF], timeout=10) == 1
        assert "before" in cat.before and "after" not in cat.before


@pytest.mark.parametrize("attempt", range(10))
def test_a_signal_reaches_the_member_before_input_sent_after_it(attempt: int) -> None:
    with Plex() as plex:
        member = plex.spawn("m", [PY, "-c", SIGNAL_THEN_LINES])
        member.expect("ready", timeout=10)
        member.signal("USR1")
        member.sendline("x")
        assert member.expect(["usr1", "got x"], timeout=10) == 0
        member.expect("got x", timeout=10)


def test_expect_exact_takes_lists_sentinels_and_a_stream() -> None:
    with Plex() as plex:
        sh = plex.spawn("sh", ["sh", "-c", "echo 'a.b'; echo '[x]' >&2; exit 0"])
        assert sh.expect_exact("[x]", stream="stderr", timeout=10).group() == "[x]"
        assert sh.expect_exact(["a?b", "a.b", TIMEOUT], timeout=10) == 1
        assert sh.expect_exact(EOF, timeout=10) == 0
        assert sh.expect_exact(["zzz", EOF], timeout=10) == 1
        with pytest.raises(ValueError, match="expect_exact\\(\\) takes text, not a compiled"):
            sh.expect_exact(re.compile("a.c"))  # (it was searched as a pattern)


def test_expect_exact_failures_name_the_text_given_not_its_escaped_pattern() -> None:
    with Plex() as plex:
        cat = plex.spawn("cat", "cat")
        with pytest.raises(pipeplex.ExpectTimeout) as timed_out:
            cat.expect_exact("a.b (x)", timeout=0)
        assert str(timed_out.value).startswith("'a.b (x)' did not appear in the output of cat")
        assert timed_out.value.patterns == ("a.b (x)",)
        sh = plex.spawn("sh", ["sh", "-c", "exit 3"])
        with pytest.raises(UnexpectedExit) as exited:
            sh.expect_exact(["1+1", "[2]"], timeout=10)
        assert re.match(r"sh exited with code 3(, so the wait for '1\+1' or '\[2\]' ended at "
                        r"once| [0-9.]+ s into the wait for '1\+1' or '\[2\]')\n",
                        str(exited.value))
        sh.wait(timeout=30)  # (ended: the wait begins after its end)
        with pytest.raises(UnexpectedExit,
                           match=r"^sh exited with code 3, so the wait for 'x' ended at once\n"):
            sh.expect("x", timeout=10)


def test_an_exit_whose_output_its_group_held_is_said_at_the_exit_not_at_the_output_end(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """sh exits at once, and what it left in its group holds its output for 2 s (within the
    time an ended member's last output gets, made long here), so its exit is seen only then:
    the failure still says when sh exited, and then when its output ended."""
    from pipeplex.participants import _output

    monkeypatch.setattr(_output, "DRAIN_GRACE", 3600.0)
    with Plex() as plex:
        sh = plex.spawn("sh", ["sh", "-c", "(sleep 2) & exit 3"])
        with pytest.raises(UnexpectedExit) as exited:
            sh.expect("x", timeout=30)
        said = re.match(r"sh exited with code 3 (as|([0-9.]+) s into) the wait for 'x'( began)?"
                        r"; its output, held open by a process it left, ended ([0-9.]+) s into "
                        r"it\n", str(exited.value))
        assert said is not None and (said[2] is None or float(said[2]) < 1.0), exited.value
        ended = exited.value.output_ended
        assert ended is not None and ended >= 1.0 and float(said[4]) >= 1.0, exited.value


def test_async_expect_exact_failures_name_the_text_given() -> None:
    async def main() -> None:
        async with AsyncPlex() as plex:
            cat = await plex.spawn("cat", "cat")
            await cat.expect_exact(["()", EOF], timeout=0)

    with pytest.raises(pipeplex.ExpectTimeout,
                       match=r"^'\(\)' did not appear in the output of cat, nor did it end"):
        asyncio.run(main())


def test_a_handle_whose_name_was_used_again_is_over() -> None:
    """The old handle does not read the new member's output: it is at its EOF."""
    with Plex() as plex:
        old = plex.spawn("w", ["sh", "-c", "echo old-output"])
        old.expect("old-output", timeout=10)
        assert old.wait(timeout=10) == 0
        new = plex.spawn("w", ["sh", "-c", "echo new-output; exec cat"])
        assert old.expect(["new-output", EOF], timeout=10) == 1
        with pytest.raises(UnexpectedExit, match="a newer member is named 'w'"):
            old.expect("new-output", timeout=10)
        assert old.returncode == 0 and repr(old).endswith("exited returncode=0>")
        new.expect("new-output", timeout=10)


def test_members_of_a_failed_load_that_never_started(tmp_path: Path) -> None:
    """A member that waited for one that failed: input to it is dropped with a note, and
    wait() says it never started (no RuntimeError from inside)."""
    cast = tmp_path / "cast.toml"
    cast.write_text("[procs.first]\ncmd = \"sh -c 'exit 3'\"\nready = 'up'\n"
                    "[procs.second]\ncmd = 'cat'\nafter = ['first']\n")
    notes: list[str] = []
    with Plex() as plex:
        plex.bus.subscribe(lambda e: notes.append(f"{e.name}: {e.text}"), [pipeplex.Note])
        with pytest.raises(pipeplex.NotReady):
            plex.load(cast)
        second = plex["second"]
        second.sendline("hello")
        second.close_stdin()
        second.signal("TERM")
        with pytest.raises(pipeplex.PipeplexError, match="second was never started"):
            second.wait(timeout=10)
        plex.spawn("probe", "true").wait(timeout=10)  # (the loop has run the sends by now)
    assert any("second: has not started yet; dropped 6 bytes" in n for n in notes)


def test_async_members_refuse_to_act_once_the_plex_is_closed() -> None:
    async def main() -> None:
        async with AsyncPlex() as plex:
            cat = await plex.spawn("cat", "cat")
        for act in (lambda: cat.send("x"), lambda: cat.sendline("x"), cat.close_stdin,
                    lambda: cat.signal("TERM")):
            with pytest.raises(pipeplex.PipeplexError, match="the plex has been closed"):
                act()

    asyncio.run(main())


def test_wait_says_when_the_member_exited_but_its_output_is_held_open() -> None:
    """Held by a process in its group (on its way out, perhaps): the wait is up to 2 s."""
    with Plex() as plex:
        member = plex.spawn("m", ["sh", "-c", "sleep 30 & echo started"])
        member.expect("started", timeout=10)
        plex._call(member._member._process.wait_exit_seen())
        with pytest.raises(TimeoutError, match=r"m exited with code 0, but its output was "
                                               r"still open after 0\.5 s"):
            member.wait(timeout=0.5)


@pytest.mark.parametrize("pty", ["stdout", False], ids=["pty", "pipes"])
def test_wait_is_not_held_back_by_a_daemon_that_holds_the_members_output(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pty: str | bool) -> None:
    """Held by a process that left the group, which is empty: its end is not coming, and
    the member's exit is its end once what it wrote is read, not after the drain's grace
    (an hour here). The plex's close stops the daemon (found by its environment)."""
    from pipeplex.participants import _output

    monkeypatch.setattr(_output, "DRAIN_GRACE", 3600.0)
    away = tmp_path / "away"
    os.mkfifo(away)
    script = (f"setsid sh -c 'echo > {away}; exec sleep 30' & read x < {away}; "
              "echo started")  # (once the daemon is in a session of its own)
    with Plex() as plex:
        member = plex.spawn("m", ["sh", "-c", script], pty=pty)
        member.expect("started", timeout=10)
        assert member.wait(timeout=30) == 0


def test_errors_survive_pickling() -> None:
    """As multiprocessing and test runners with workers need."""
    errors = [
        pipeplex.ExpectTimeout(["web"], ["ready", EOF], 1.5, "last output of web:\n    booting"),
        UnexpectedExit("web", -9, ["ready"], 0.5, "web wrote nothing"),
        pipeplex.NotReady("web", "web exited with code 3 before it was ready", "(none)"),
        pipeplex.CastError("bad key", source="cast.toml:3"),
        pipeplex.SpawnError("web", "srv", "no such file"),
        pipeplex.UnknownMember("x", ["web"]),
    ]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert vars(copy) == vars(error)
    assert isinstance(pickle.loads(pickle.dumps(errors[0])), TimeoutError)
    assert pickle.loads(pickle.dumps([EOF, TIMEOUT])) == [EOF, TIMEOUT]


def test_a_spawn_after_the_plex_stopped_says_why(tmp_path: Path) -> None:
    """A loaded cast keeps its on_exit = "stop": when a member ends, the plex stops, and a
    later spawn names that cause instead of blaming `pipeplex stop`."""
    cast = tmp_path / "cast.toml"
    cast.write_text("[procs.once]\ncmd = \"sh -c 'echo done'\"\n")
    stopped = threading.Event()
    with Plex() as plex:
        plex.bus.subscribe(lambda e: "stopping the cast" in e.text and stopped.set(),
                           [pipeplex.Note])
        plex.load(cast)
        assert stopped.wait(10)
        with pytest.raises(pipeplex.PipeplexError, match=r"cannot add 'late': the plex has "
                           r"stopped \(once exited with code 0; stopping the cast"):
            plex.spawn("late", "cat")


def test_before_holds_the_unread_output_after_an_expect_that_raised() -> None:
    """As in pexpect: what did the member print instead? before says, and it stays unread."""
    with Plex() as plex:
        sh = plex.spawn("sh", "cat")
        sh.sendline("partial answer")
        sh.expect("partial", timeout=10)
        with pytest.raises(pipeplex.ExpectTimeout):
            sh.expect("never", timeout=0.2)
        assert (sh.before, sh.after, sh.match) == (" answer\n", "", None)
        sh.close_stdin()
        with pytest.raises(UnexpectedExit):
            sh.expect("never", timeout=10)
        assert (sh.before, sh.after, sh.match) == (" answer\n", "", None)
        assert sh.expect("answer", timeout=10)  # still there: a failed expect reads nothing

    async def main() -> None:
        async with AsyncPlex() as plex:
            sh = await plex.spawn("sh", ["sh", "-c", "echo one; exit 3"])
            with pytest.raises(UnexpectedExit):
                await sh.expect("never")
            assert (sh.before, sh.after, sh.match) == ("one\n", "", None)

    asyncio.run(main())


@pytest.mark.parametrize(("env", "said"), [
    ("TERM=dumb", "env is a mapping of names to values"),
    ({"TERM": 1}, "env maps names to values, both str: not 'TERM': 1"),
    ({"": "x"}, "env has an empty variable name"),
    ({"PIPEPLEX_NAME": "x"}, "env sets PIPEPLEX_NAME, which pipeplex sets itself"),
])
def test_a_plex_env_that_no_environment_can_hold_is_refused(env: object, said: str) -> None:
    with pytest.raises(pipeplex.ArgumentError, match=re.escape(said)):
        Plex(env=env)  # type: ignore[arg-type]
