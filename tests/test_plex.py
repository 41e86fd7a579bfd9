"""The Python API: Plex and AsyncPlex, with pexpect's names across several members."""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

import pipeplex
from pipeplex import EOF, TIMEOUT, AsyncPlex, ExpectTimeout, Plex, UnexpectedExit
from pipeplex.participants._group import live_in_group

PY = sys.executable
LONG = 30.0
"""A timeout that is never reached when the behaviour is right."""
ECHO_PORT = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); " \
    "print('port', s.getsockname()[1], flush=True); c, _ = s.accept(); " \
    "c.sendall(c.recv(100)); c.close()"


def test_spawn_expect_send_and_wait() -> None:
    """The issue's example: a server, a client using its port, exit codes, before/after."""
    with Plex() as plex:
        server = plex.spawn("server", [PY, "-c", ECHO_PORT])
        m = server.expect(r"port (\d+)", timeout=10)
        client = plex.spawn("client", [PY, "-c",
            "import socket, sys; s = socket.create_connection(('127.0.0.1', int(sys.argv[1]))); "
            "s.sendall(b'ping'); print('got', s.recv(100).decode())", m[1]])
        assert client.expect(r"got (\w+)")[1] == "ping"
        assert client.before == ""
        assert client.after == "got ping"
        assert client.wait(timeout=10) == 0
        assert server.wait(timeout=10) == 0


def test_expect_with_a_list_returns_the_index_and_sentinels_work() -> None:
    """Lists give indexes; TIMEOUT and EOF are usable as patterns."""
    with Plex() as plex:
        cat = plex.spawn("cat", "cat")
        cat.sendline("two")
        assert cat.expect(["one", "two"]) == 1
        assert cat.expect(["never", TIMEOUT], timeout=0.1) == 1
        cat.sendline("rest")
        cat.close_stdin()
        assert cat.expect(["never", EOF]) == 1
        assert cat.before == "\nrest\n"  # the newline after "two", then the rest


def test_a_timeout_carries_the_evidence() -> None:
    """ExpectTimeout is a TimeoutError and says who, what, how long, and recent output."""
    with Plex() as plex:
        cat = plex.spawn("cat", "cat")
        cat.sendline("something else")
        cat.expect("something")
        with pytest.raises(TimeoutError) as info:
            cat.expect("^ready$", timeout=0.2)
    error = info.value
    assert isinstance(error, ExpectTimeout)
    assert "'^ready$' did not appear in the output of cat within 0.2 s" in str(error)
    assert "something else" in str(error)


def test_an_exit_fails_an_expectation_at_once() -> None:
    """A member that exits while waited on raises UnexpectedExit with its code."""
    with Plex() as plex:
        quitter = plex.spawn("quitter", "sh -c 'echo bye; exit 3'")
        with pytest.raises(UnexpectedExit) as info:
            quitter.expect("never", timeout=60)
    assert info.value.returncode == 3
    assert "quitter exited with code 3" in str(info.value)


def test_an_expectation_waits_on_output_a_process_the_member_started_still_holds(
        tmp_path: Path) -> None:
    """The member exits, but a process it started holds its output open past the drain's
    grace (the member's exit is published then): what that writes is shown, so a wait goes
    on for it; once that output ends, the wait ends as at an exit, and says so."""
    go = tmp_path / "go"
    os.mkfifo(go)
    script = f"(read line < {go}; echo late) & echo early; exit 3"

    async def main() -> None:
        async with AsyncPlex(timeout=LONG) as plex:
            member = await plex.spawn("m", ["sh", "-c", script])
            await member.expect("early")
            waiting = asyncio.ensure_future(member.expect("late"))
            assert await member.wait() == 3  # (its exit, published with its output held)
            assert not waiting.done()
            await asyncio.to_thread(go.write_text, "now\n")  # (its reader is there)
            assert (await waiting).group(0) == "late"
            with pytest.raises(UnexpectedExit) as caught:
                await member.expect("never")
            assert caught.value.output_held
            assert str(caught.value).startswith("m exited with code 3; its output, held open "
                                                "by a process it started, ")

    asyncio.run(main())


def test_expect_any_returns_the_first_member_to_match() -> None:
    """expect_any waits on several members at once (what pexpect cannot do)."""
    with Plex() as plex:
        a = plex.spawn("a", "cat")
        plex.spawn("b", "cat")
        a.sendline("done here")
        member, match = plex.expect_any({"a": "done", "b": "error"})
        assert member.name == "a"
        assert match is not None and match[0] == "done"


def test_signals_and_control_characters() -> None:
    """signal() reaches the member; a full terminal turns ^C into SIGINT."""
    handler = ("import signal, sys\n"
               "signal.signal(signal.SIGUSR1, lambda *a: print('usr1', flush=True))\n"
               "signal.signal(signal.SIGINT, lambda *a: sys.exit(7))\n"
               "print('ready', flush=True)\nwhile True: signal.pause()")
    with Plex() as plex:
        m = plex.spawn("m", [PY, "-c", handler], pty=True)
        m.expect("ready")
        m.signal("USR1")
        m.expect("usr1")
        m.sendcontrol("c")
        assert m.wait() == 7


def test_nothing_outlives_the_with_block() -> None:
    """Leaving the block stops every member, even one that ignores SIGTERM."""
    code = ("import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('up', flush=True); signal.pause()")
    with Plex(grace=0.3) as plex:
        stubborn = plex.spawn("stubborn", [PY, "-c", code])
        stubborn.expect("up")
        pid = stubborn.pid
    assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_spawned_member_is_stopped_with_its_stop_signal() -> None:
    """spawn(stop_signal=...), as a cast's: a program that ends cleanly on SIGINT only
    (SIGTERM ignored) ends so within the grace, and each word of its stop names SIGINT."""
    code = ("import signal, sys\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "signal.signal(signal.SIGINT, lambda *_: sys.exit(3))\n"
            "print('up', flush=True)\n"
            "while True:\n"
            "    signal.pause()\n")
    notes: list[str] = []
    with Plex(grace=30) as plex:
        plex.bus.subscribe(lambda e: notes.append(e.text) if isinstance(e, pipeplex.Note)
                           else None)
        db = plex.spawn("db", [PY, "-c", code], stop_signal="INT")
        db.expect("up")
        plex.remove("db")
        assert db.wait(timeout=30) == 3
        with pytest.raises(pipeplex.CastError, match=r"^spawn\(\): x: stop_signal: TSTP would "
                                                     "suspend a member rather than stop it"):
            plex.spawn("x", ["true"], stop_signal="TSTP")
        with pytest.raises(pipeplex.CastError, match="x: stop_signal must be a signal's name"):
            plex.spawn("x", ["true"], stop_signal=True)
    assert "sent SIGINT to its process group" in " ".join(notes), notes
    assert not any("SIGTERM" in note or "SIGKILL" in note for note in notes), notes


def test_a_plex_says_how_its_members_are() -> None:
    """A traceback shows the plex as pytest prints it: not "running" members that ended."""
    plex = Plex(grace=1)
    assert repr(plex) == "<Plex not started, 0 members>"
    with plex:
        plex.spawn("a", ["sleep", "60"])
        plex.spawn("b", "true").wait(timeout=30)
        assert repr(plex) == "<Plex running, 2 members: 1 running, 1 exited>"
    assert repr(plex) == "<Plex stopped, 2 members: 2 exited>"


def test_a_plex_its_cast_stopped_says_so(tmp_path: Path) -> None:
    """A loaded member whose end stops the cast (on_exit = "stop") leaves the plex open
    but running nothing more: it says stopped, as a spawn then refused says."""
    cast = tmp_path / "c.toml"
    cast.write_text("[procs.job]\ncmd = 'true'\non_exit = 'stop'\nready_exit = false\n")
    stopping = threading.Event()
    with Plex() as plex:
        plex.bus.subscribe(lambda note: stopping.set() if "stopping the cast" in note.text
                           else None, [pipeplex.Note])
        plex.load(cast)
        assert plex["job"].wait(timeout=30) == 0
        assert stopping.wait(30)
        with pytest.raises(pipeplex.PipeplexError, match="the plex has stopped"):
            plex.spawn("x", "true")
        assert repr(plex) == "<Plex stopped, 1 member: 1 exited>"


def test_bad_spawns_raise_clear_errors() -> None:
    """A missing program or a bad name raise PipeplexError subclasses."""
    with Plex() as plex:
        with pytest.raises(pipeplex.CastError, match="command not found: 'no-such-program'"):
            plex.spawn("x", "no-such-program")
        with pytest.raises(pipeplex.CastError, match="invalid member name"):
            plex.spawn("../x", "cat")
        with pytest.raises(pipeplex.CastError, match="cannot split the command"):
            plex.spawn("x", "echo 'unbalanced")
        with pytest.raises(pipeplex.CastError, match="the command is empty"):
            plex.spawn("x", [])
        cat = plex.spawn("cat", "cat")
        with pytest.raises(pipeplex.UnknownMember, match="no member named 'nope'"):
            plex["nope"]
        with pytest.raises(pipeplex.UnknownMember, match=r"'cta'; did you mean 'cat'\?"):
            plex.members["cta"]  # (as plex["cta"]: not a bare KeyError)
        with pytest.raises(pipeplex.UnknownMember):
            plex.expect_any({"nope": "x"})
        # The member where its name was meant: said so, not an error of pipeplex's own.
        said = r"a member is named by a str: 'cat' \(its \.name\), not Member 'cat' itself"
        for looked_up in (lambda: plex.expect_any({cat: "x"}), lambda: plex[cat],  # type: ignore[dict-item, index]
                          lambda: plex.members[cat], lambda: plex.remove(cat)):  # type: ignore[index, arg-type]
            with pytest.raises(pipeplex.ArgumentError, match=said):
                looked_up()
        with pytest.raises(pipeplex.ArgumentError, match="a member is named by a str, not 5"):
            plex[5]  # type: ignore[index]
        with pytest.raises(ValueError, match="stream must be"):
            cat.expect("x", stream="stdrr")  # type: ignore[call-overload]
        for bad in ("BOGUS", 9999):
            with pytest.raises(ValueError, match="signal"):
                cat.signal(bad)
    with pytest.raises(pipeplex.PipeplexError, match="the plex has been closed"):
        cat.sendline("late")


def test_a_member_that_does_not_get_ready_fails_its_spawn_alone() -> None:
    """spawn(ready=...) raises NotReady when the member exits or times out first; that
    member is stopped, and the others and the plex go on."""
    with Plex() as plex:
        cat = plex.spawn("cat", "cat")
        with pytest.raises(pipeplex.NotReady, match=r"(?s)slow was not ready after 1\.0 s.*nope"):
            plex.spawn("slow", ["sh", "-c", "echo nope; exec cat"],
                       ready="READY", ready_timeout=1)  # (time for its line to be read)
        with pytest.raises(pipeplex.NotReady, match="quits exited with code 4 before it was ready"):
            plex.spawn("quits", ["sh", "-c", "exit 4"], ready="READY")
        assert "slow" not in plex.members
        cat.sendline("still here")
        cat.expect("still here")
        assert plex.spawn("later", "cat").running


SERVE_ONCE_MORE = "import os, socket, sys\n" \
    "runs = os.path.join(sys.argv[1], 'runs'); n = len(open(runs).read()) if " \
    "os.path.exists(runs) else 0; open(runs, 'a').write('x')\n" \
    "if n == 1 and sys.argv[2] == 'fail': print('cannot bind', flush=True); sys.exit(3)\n" \
    "if n == 1 and sys.argv[2] == 'hang': sys.stdin.read()\n" \
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n" \
    "print('port', s.getsockname()[1], flush=True); sys.stdin.read()\n"
"""A server that prints its port once ready and runs until its stdin ends (the stop's EOF);
its second run, with ``fail`` or ``hang``, fails or never gets ready."""


def test_a_restart_returns_once_the_new_run_is_ready(tmp_path: Path) -> None:
    """As pipeplex restart: the new run's pid, its captured values in the plex's
    variables, its output in the member's stream."""
    with Plex(grace=1) as plex:
        server = plex.spawn("server", [PY, "-c", SERVE_ONCE_MORE, str(tmp_path), "ok"],
                            ready=r"port (?P<port>\d+)")
        first, port = server.pid, plex.variables["port"]
        pid = server.restart()
        assert pid == server.pid != first
        assert plex.variables["port"] != port
        assert server.expect(r"port (\d+)")[1] == port  # (what no expect took before)
        assert server.expect(r"port (\d+)")[1] == plex.variables["port"]
        assert server.running


def test_a_restart_whose_new_run_fails_says_how(tmp_path: Path) -> None:
    """It ended before it was ready: raised with its exit and its last output; one that
    never gets ready raises TimeoutError after the timeout, with what it waits for."""
    with Plex(grace=1) as plex:
        server = plex.spawn("server", [PY, "-c", SERVE_ONCE_MORE, str(tmp_path), "fail"],
                            ready=r"port (?P<port>\d+)")
        with pytest.raises(pipeplex.PipeplexError, match=(
                r"(?s)server did not get ready again \(server exited with code 3\).*"
                r"cannot bind")):
            server.restart()
    (tmp_path / "runs").unlink()
    with Plex(grace=1) as plex:
        server = plex.spawn("server", [PY, "-c", SERVE_ONCE_MORE, str(tmp_path), "hang"],
                            ready=r"port (?P<port>\d+)")
        with pytest.raises(TimeoutError, match=(
                r"(?s)server was not ready again within 0\.5 s, waiting for output matching")):
            server.restart(timeout=0.5)


def test_a_restart_with_no_time_to_wait_still_restarts() -> None:
    """restart(timeout=0) asks for the restart and does not wait for the new run: it said
    'was not ready again within 0 s' of a restart that never began."""
    with Plex() as plex:
        member = plex.spawn("c", ["sh", "-c", "echo run $$; exec cat"])
        first = member.pid
        member.expect(rf"run {first}\b")
        with pytest.raises(TimeoutError, match=r"c was not ready again within 0\.0 s"):
            member.restart(timeout=0)
        member.expect(rf"run (?!{first}\b)\d+")  # (the new run's first line)
        assert member.pid != first


def test_an_async_restart_returns_once_the_new_run_is_ready(tmp_path: Path) -> None:
    async def main() -> None:
        async with AsyncPlex(grace=1) as plex:
            server = await plex.spawn("server", [PY, "-c", SERVE_ONCE_MORE, str(tmp_path),
                                                 "ok"], ready=r"port (?P<port>\d+)")
            first = server.pid
            assert await server.restart() == server.pid != first
            await plex.remove("server")
            with pytest.raises(pipeplex.PipeplexError, match="server was removed"):
                await server.restart()
    asyncio.run(main())


def test_a_spawn_that_fails_lets_its_member_go(tmp_path: Path) -> None:
    """Nobody holds the handle of a member whose spawn failed: its pipe, its name in the
    status and its tables go, as remove() would let them go. Under new names, each kept a
    descriptor until spawns failed with "Too many open files"."""
    missing = tmp_path / "script"
    missing.write_text("#!/nonexistent/interpreter\n")
    missing.chmod(0o755)
    run_dir = tmp_path / "run"
    with Plex(run_dir=run_dir) as plex:
        for i in range(3):
            with pytest.raises(pipeplex.NotReady):
                plex.spawn(f"quits{i}", ["sh", "-c", "exit 3"], ready="never")
            with pytest.raises(pipeplex.SpawnError):
                plex.spawn(f"broken{i}", [str(missing)])
        assert sorted(p.name for p in run_dir.iterdir()) == ["all.in", "control.sock",
                                                              "run.lock"]
        status = subprocess.run([PY, "-m", "pipeplex", "status", "--run-dir", str(run_dir)],
                                capture_output=True, text=True, timeout=LONG)
        assert "quits" not in status.stdout and "broken" not in status.stdout, status.stdout
        assert plex.spawn("quits0", "cat").running  # (its name free, as before)


def test_a_member_given_a_removed_ones_name_has_no_exit_of_its_own_yet(tmp_path: Path) -> None:
    """pipeplex status showed the removed member's exit for the new one (and kept an entry
    for every name that ever was)."""
    run_dir = tmp_path / "run"
    with Plex(run_dir=run_dir) as plex:
        assert plex.spawn("x", ["sh", "-c", "exit 5"]).wait() == 5
        plex.remove("x")
        plex.spawn("x", "cat")
        assert plex.spawn("y", ["sh", "-c", "exit 6"]).wait() == 6
        plex.spawn("y", "cat")  # (its name free again, without a remove)
        status = subprocess.run([PY, "-m", "pipeplex", "status", "--json", "--run-dir",
                                 str(run_dir)], capture_output=True, text=True, timeout=LONG)
        shown = {m["name"]: (m["state"], m["last_exit"]) for m in
                 json.loads(status.stdout)["members"]}
        assert shown == {"x": ("running", None), "y": ("running", None)}


def test_eof_and_timeout_alone_return_zero_as_in_pexpect() -> None:
    """``expect(EOF)`` is pexpect's idiom for "wait until it ends"; after TIMEOUT, ``before``
    holds what came so far and it stays unread."""
    with Plex() as plex:
        talker = plex.spawn("talker", [PY, "-c", "print('partial', flush=True); input()"])
        # (Until its line has come: a loaded machine may take longer to start it.)
        deadline = time.monotonic() + 30
        while talker.expect(TIMEOUT, timeout=0.2) == 0 and not talker.before:
            assert time.monotonic() < deadline, "talker printed nothing in 30 s"
        assert talker.before == "partial\n"
        assert talker.expect("partial").start() == 0
        done = plex.spawn("done", ["echo", "bye"])
        assert done.expect(EOF) == 0
        assert (done.before, done.match) == ("bye\n", None)
        member, match = plex.expect_any({"talker": ["never", TIMEOUT]}, timeout=0.1)
        assert (member.name, match) == ("talker", None)
        # An end waited for in vain is not text that did not appear.
        with pytest.raises(ExpectTimeout, match=r"^talker did not end \(its output stayed "
                                                r"open\) within 0\.1 s\n"):
            talker.expect(EOF, timeout=0.1)
        with pytest.raises(ExpectTimeout, match=r"^'never' did not appear in the output of "
                                                r"talker, nor did it end, within 0\.1 s\n"):
            talker.expect(["never", EOF], timeout=0.1)


def test_load_and_run_steps(tmp_path: Path) -> None:
    """A scenario file is usable from Python: load() starts it, run_steps() runs it."""
    scenario = tmp_path / "s.toml"
    scenario.write_text('[procs.c]\ncmd = "cat"\n[[step]]\nsend = "hi"\nto = "c"\n'
                        '[[step]]\nexpect = "^hi$"\nin = "c"\n')
    with Plex() as plex:
        plex.load(scenario)
        plex.run_steps()
        assert "c" in plex.members
    failing = tmp_path / "f.toml"
    failing.write_text('[procs.c]\ncmd = "cat"\n[[step]]\nexpect = "never"\ntimeout = 0.1\n')
    with Plex() as plex:
        plex.load(failing)
        with pytest.raises(pipeplex.StepFailed, match=r"not seen within 0\.1 s"):
            plex.run_steps()


def test_a_loaded_cast_is_stopped_by_its_start_waves_in_reverse(tmp_path: Path) -> None:
    """As pipeplex run stops it: b (after a) first, then a and d together, which started
    together (d last of them, so first); not each alone, in the reverse of the file's
    order (d, b, a)."""
    cast = tmp_path / "c.toml"
    cast.write_text("[procs.a]\ncmd = \"sh -c 'echo up; exec sleep 60'\"\nready = 'up'\n"
                    "[procs.b]\ncmd = 'sleep 60'\nafter = ['a']\n"
                    "[procs.d]\ncmd = 'sleep 60'\n")
    signalled: list[str | None] = []
    with Plex() as plex:
        plex.bus.subscribe(lambda e: signalled.append(e.name) if isinstance(e, pipeplex.Note)
                           and "sent SIGTERM" in e.text else None)
        plex.load(cast)
    assert signalled == ["b", "d", "a"]


def test_a_status_set_by_an_earlier_member_of_the_name_says_so() -> None:
    """The exit status came from a member whose name a later spawn took: the last line says
    so, not "in an earlier run" of the member now under that name."""
    notes: list[str] = []
    with Plex() as plex:
        plex.bus.subscribe(lambda note: notes.append(note.text), [pipeplex.Note])
        first = plex.spawn("c", "cat")
        first.signal("KILL")
        assert first.wait() == -signal.SIGKILL
        plex.spawn("c", "cat")
    assert notes[-1] == ("exit status 137: c killed by SIGKILL, of an earlier member of that "
                         "name"), notes


def test_an_expect_through_a_restart_that_never_ran_ends_with_the_exit(tmp_path: Path) -> None:
    """A restart asked for while an expect waited, whose new run could not start: the wait
    ends with the old run's exit, as a restart that is not happening says, rather than
    waiting out its timeout for a run that will not come."""
    program = tmp_path / "srv.sh"
    program.write_text("#!/bin/sh\necho ready; exec sleep 60\n")
    program.chmod(0o755)

    async def main() -> str:
        async with AsyncPlex(timeout=30) as plex:
            member = await plex.spawn("srv", [str(program)], ready="ready")
            waiting = asyncio.ensure_future(member.expect("never", timeout=30))
            program.chmod(0o644)  # (the new run cannot be spawned)
            with pytest.raises(pipeplex.SpawnError):
                await member.restart()
            with pytest.raises(UnexpectedExit) as ended:
                await asyncio.wait_for(waiting, 10)
            with pytest.raises(UnexpectedExit):  # (and a new wait, at once)
                await asyncio.wait_for(member.expect("never", timeout=30), 10)
            return str(ended.value)

    said = asyncio.run(asyncio.wait_for(main(), 60))
    assert said.startswith("srv "), said


def test_steps_that_a_clients_stop_cut_short_raise(tmp_path: Path) -> None:
    """pipeplex stop, in the plex's run folder, as the loaded steps run: they end there, and
    run_steps says so rather than return as if they had all passed."""
    scenario = tmp_path / "s.toml"
    scenario.write_text('[procs.c]\ncmd = "cat"\n[[step]]\nsleep = 60\n'
                        '[[step]]\nsend = "hi"\nto = "c"\n')
    run_dir = tmp_path / "run"
    with Plex(run_dir=run_dir) as plex:
        plex.load(scenario)
        stop = subprocess.run([sys.executable, "-m", "pipeplex", "stop", "--no-wait",
                               "--run-dir", str(run_dir)], capture_output=True, text=True,
                              timeout=LONG)
        assert stop.returncode == 0, stop.stderr
        with pytest.raises(pipeplex.PipeplexError, match=(
                r"the steps were cut short: the plex was asked to stop \(.*\) before "
                r".*s\.toml:\d+: (sleep '60\.0'|send 'hi' to c)")):
            plex.run_steps()


def test_a_sleep_step_a_clients_stop_cuts_short_did_not_pass(tmp_path: Path) -> None:
    """The stop came during the last step, a sleep: run_steps raises, rather than return as
    if the whole script had run."""
    scenario = tmp_path / "s.toml"
    scenario.write_text('[procs.c]\ncmd = "cat"\n[[step]]\nsleep = 60\n')
    run_dir = tmp_path / "run"

    async def main() -> None:
        async with AsyncPlex(run_dir=run_dir) as plex:
            await plex.load(scenario)
            steps = asyncio.ensure_future(plex.run_steps())
            await asyncio.sleep(0)  # (a yield, no wait: the steps run to the sleep's wait)
            stop = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pipeplex", "stop", "--no-wait", "--run-dir",
                str(run_dir))
            assert await stop.wait() == 0
            with pytest.raises(pipeplex.StepFailed, match=r"s\.toml:4: sleep '60\.0': cut "
                               r"short [\d.]+ s into it \(the cast was stopping: stop "
                               r"requested through the control socket"):
                await asyncio.wait_for(steps, 30)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_the_wait_for_a_killed_runs_guardian_keeps_the_loop_going(tmp_path: Path) -> None:
    """A plex started in the folder of a run that was killed gives that run's guardian its
    time to stop what it left (up to 2 s) before its own members start; the program's other
    tasks go on meanwhile. Here one of them stops the leftover during that wait, which
    then ends at once, nothing named (a held loop ran it only after, the leftover named)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    run_id = os.urandom(8).hex()  # (no id an earlier run may have left behind)
    (run_dir / "run.lock").write_text(f"999999 {run_id}\n")
    env = {**os.environ, "PIPEPLEX_RUN_ID": run_id, "PIPEPLEX_NAME": "db"}

    async def scenario(left: subprocess.Popen[bytes]) -> list[str]:
        plex = AsyncPlex(run_dir=run_dir)
        notes: list[str] = []
        plex.bus.subscribe(lambda e: notes.append(e.text) if isinstance(e, pipeplex.Note)
                           else None)
        # Runs at the plex's first wait: the one for the leftover, which it found by then.
        stopping = asyncio.ensure_future(_call(left.kill))
        try:
            await plex.start()
            assert stopping.done(), "the loop was held while the plex waited"
            return notes
        finally:
            await plex.aclose()

    with subprocess.Popen(["sleep", "60"], env=env) as left:
        try:
            notes = asyncio.run(scenario(left))
        finally:
            left.kill()
    assert any("cleaned up after an earlier run (pid 999999)" in n for n in notes), notes
    assert not any("that run left" in n for n in notes), notes


async def _call(action: Callable[[], object]) -> None:
    action()


def test_removed_members_let_their_names_pipes_and_output_go(tmp_path: Path) -> None:
    """A plex that spawns short-lived members under new names removes each when done:
    it is stopped if it runs, its NAME.in goes, and so does what it held (a pipe per name
    before: about 1,000 names and the plex was out of descriptors)."""
    run_dir = tmp_path / "run"
    with Plex(timeout=LONG, run_dir=run_dir) as plex:
        held = []
        for i in range(40):
            member = plex.spawn(f"m{i}", ["cat"])
            member.sendline(f"hello {i}")
            member.expect(f"^hello {i}$")
            plex.remove(f"m{i}")  # (still running: stopped first)
            held.append(len(os.listdir("/proc/self/fd")))
        assert held[-1] <= held[0], held
        assert sorted(os.listdir(run_dir)) == ["all.in", "control.sock", "run.lock"]
        assert not plex.members
        assert member.returncode is not None and member.expect(EOF) == 0
        with pytest.raises(pipeplex.PipeplexError, match="m39 was removed from the plex"):
            member.sendline("too late")
        again = plex.spawn("m39", ["cat"])  # (the name is free)
        again.sendline("anew")
        again.expect("^anew$")
        assert "m39 | hello 39" in plex.transcript()  # (what it wrote stays there)
        with pytest.raises(pipeplex.UnknownMember):
            plex.remove("m0")


def test_a_member_removed_between_restarts_is_not_started_again(tmp_path: Path) -> None:
    """on_exit = "restart": removed while it runs, exits or waits out its back-off, it is
    gone for good, and the others go on (its supervisor found its tables gone before)."""
    cast = tmp_path / "c.toml"
    cast.write_text('[procs.r]\ncmd = "sh -c \'echo up; exit 3\'"\non_exit = "restart"\n'
                    'max_restarts = 100\n[procs.other]\ncmd = "cat"\n')
    with Plex(timeout=LONG) as plex:
        plex.load(cast)
        plex["r"].expect("up")
        plex.remove("r")
        assert list(plex.members) == ["other"]
        runs = re.findall(r"(?m)^r +\* started", plex.transcript())
        assert runs  # (and none comes after remove() returned: its supervisor is done)
        other = plex["other"]
        other.sendline("still here")
        other.expect("^still here$")
        assert re.findall(r"(?m)^r +\* started", plex.transcript()) == runs
        assert "r" not in plex._async.engine.members


def test_removing_a_member_ends_its_spawn_and_expectations(tmp_path: Path) -> None:
    """A spawn still waiting for readiness raises at once, and so does an expect that
    waits on the member in another thread (EOF among its patterns: EOF)."""

    async def spawning() -> None:
        async with AsyncPlex(timeout=LONG) as plex:
            started = asyncio.Event()
            plex.bus.subscribe(lambda event: started.set(), [pipeplex.Started])
            spawn = asyncio.create_task(plex.spawn("r", ["sleep", "60"], ready="never"))
            await asyncio.wait_for(started.wait(), LONG)
            await asyncio.wait_for(plex.remove("r"), LONG)
            with pytest.raises(pipeplex.PipeplexError, match="r was removed before it was ready"):
                await asyncio.wait_for(spawn, LONG)

    asyncio.run(spawning())
    with Plex(timeout=LONG) as plex:
        member = plex.spawn("m", ["cat"])
        found: list[int] = []
        waiting = threading.Thread(target=lambda: found.append(member.expect(["never", EOF])))
        waiting.start()
        plex.remove("m")
        waiting.join(LONG)
        assert found == [1]


def test_a_member_that_another_starts_after_is_not_removed(tmp_path: Path) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text('[procs.c]\ncmd = "cat"\n[procs.d]\ncmd = "cat"\nafter = ["c"]\n')
    with Plex() as plex:
        plex.load(scenario)
        with pytest.raises(pipeplex.PipeplexError, match="c cannot be removed: d starts after"):
            plex.remove("c")
        assert plex["c"].running
        plex.remove("d")
        assert list(plex.members) == ["c"]


def test_load_does_not_wait_for_a_member_after_one_a_step_starts(tmp_path: Path) -> None:
    """w starts after lazy (autostart = false), which the first step starts: load() returns
    without waiting for w, and the steps then run as pipeplex test runs them."""
    scenario = tmp_path / "s.toml"
    scenario.write_text('[procs.lazy]\ncmd = "sh -c \'echo lazy up; exec cat\'"\n'
                        'ready = "lazy up"\nautostart = false\n'
                        '[procs.w]\ncmd = "sh -c \'echo w up; exec cat\'"\nafter = ["lazy"]\n'
                        '[[step]]\nstart = "lazy"\n[[step]]\nexpect = "w up"\nin = "w"\n')
    with Plex(timeout=10) as plex:
        plex.load(scenario)
        plex.run_steps()
    with Plex(timeout=10) as plex:  # or from Python: the member's start()
        plex.load(scenario)
        plex["lazy"].start()
        plex["w"].expect("w up")
        with pytest.raises(pipeplex.PipeplexError, match="lazy was already started"):
            plex["lazy"].start()
    with Plex(timeout=30) as plex:  # an expect on one nothing started fails at once
        plex.load(scenario)
        with pytest.raises(pipeplex.PipeplexError, match="w was never started: it starts "
                           "after lazy, which has autostart = false"):
            plex["w"].expect("w up")


def test_a_second_start_of_a_member_that_ended_names_the_api_s_restart(tmp_path: Path) -> None:
    """start() of an autostart = false member whose run has ended is refused, and says what
    runs it again in the API's words (it said "pipeplex restart job"); and that does."""
    cast = tmp_path / "c.toml"
    cast.write_text('[procs.job]\ncmd = "sh -c \'echo run $$; read x; exit 4\'"\n'
                    'autostart = false\non_exit = "ignore"\n[procs.other]\ncmd = "cat"\n')
    with Plex(timeout=30) as plex:
        plex.load(cast)
        job = plex["job"]
        job.start()
        first = job.expect(r"^run (\d+)$")[1]
        job.sendline("end")
        assert job.wait() == 4
        with pytest.raises(pipeplex.PipeplexError) as refused:
            job.start()
        assert str(refused.value) == ("job was already started, and has ended (exited with "
                                      "code 4): member.restart() runs it again")
        job.restart()
        assert job.expect(r"^run (\d+)$")[1] != first


def test_a_start_that_fails_raises_once_the_member_is_stopped(tmp_path: Path) -> None:
    """NotReady from start() comes once the member has been stopped, as from spawn() and
    load(): it raised as the ready_timeout came, the member (which ignores SIGTERM) still
    in its grace."""
    cast = tmp_path / "c.toml"
    cast.write_text("[procs.lazy]\ncmd = \"sh -c 'trap \\\"\\\" TERM; echo up; exec sleep 60'\"\n"
                    "ready = 'never'\nready_timeout = 0.2\nautostart = false\n"
                    "on_exit = 'ignore'\n[procs.keep]\ncmd = 'cat'\n")
    with Plex(grace=0.5, timeout=LONG) as plex:
        plex.load(cast)
        lazy = plex["lazy"]
        with pytest.raises(pipeplex.NotReady, match=r"lazy was not ready after 0\.2 s"):
            lazy.start()
        assert not lazy.running and lazy.returncode == -signal.SIGKILL, lazy


def test_a_loaded_member_that_failed_to_get_ready_can_be_restarted(tmp_path: Path) -> None:
    """A spawn that fails is let go of; a loaded member stays in its cast, and the messages
    say to restart it: restart() runs it again (it was refused, as a failed spawn is), and
    then the member that starts after it can start."""
    cast = tmp_path / "c.toml"
    cast.write_text("[procs.m]\ncmd = \"sh -c 'if [ -e ran ]; then echo up; exec cat; fi; "
                    ": > ran; exit 4'\"\nready = '^up$'\nautostart = false\ncwd = '.'\n"
                    "[procs.n]\ncmd = 'cat'\nautostart = false\nafter = ['m']\n")
    with Plex(grace=1, timeout=LONG) as plex:
        plex.load(cast)
        with pytest.raises(pipeplex.NotReady, match="m exited with code 4 before it was ready"):
            plex["m"].start()
        with pytest.raises(pipeplex.PipeplexError, match="n starts after m, which exited with "
                           "code 4; restart m first"):
            plex["n"].start()
        assert plex["m"].restart() == plex["m"].pid
        plex["n"].start()
        assert plex["n"].running


def test_an_expect_on_a_member_held_back_by_a_failed_one_fails_at_once(tmp_path: Path) -> None:
    """dep starts after base, which exited before it was ready: dep will never start, so
    an expect on it (or on it alone through expect_any) says so instead of timing out."""
    cast = tmp_path / "c.toml"
    cast.write_text('[procs.base]\ncmd = "sh -c \'echo booting; exit 2\'"\nready = "ready"\n'
                    '[procs.dep]\ncmd = "cat"\nafter = ["base"]\n'
                    '[procs.other]\ncmd = "sh -c \'echo other up; exec cat\'"\n')
    held = "dep was never started: it waits for base, which exited with code 2 before it was ready"
    with Plex(timeout=5) as plex:
        with pytest.raises(pipeplex.NotReady):
            plex.load(cast)
        with pytest.raises(pipeplex.PipeplexError, match=f"^{held}$"):
            plex["dep"].expect("anything")
        with pytest.raises(pipeplex.PipeplexError, match=f"^{held}$"):
            plex["dep"].expect(pipeplex.EOF)
        with pytest.raises(pipeplex.PipeplexError, match=f"^{held}$"):
            plex.expect_any({"dep": "anything"})
        member, _ = plex.expect_any({"dep": "anything", "other": "other up"})  # (one may)
        assert member.name == "other"


def test_an_async_plex_called_from_another_event_loop_says_so() -> None:
    """Its pipes and futures are its own loop's: from another loop a spawn or a close
    waited for ever and an expect for its whole timeout. Each call says where to make it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        async def started() -> tuple[AsyncPlex, pipeplex.AsyncMember]:
            plex = AsyncPlex(timeout=LONG)
            await plex.start()
            return plex, await plex.spawn("cat", "cat")
        plex, cat = asyncio.run_coroutine_threadsafe(started(), loop).result(LONG)
        elsewhere = "runs in the event loop it was started in, not this one: call it from there"
        for call in (lambda: plex.spawn("c2", "cat"), lambda: cat.expect("x"),
                     lambda: cat.wait(), plex.aclose, cat.restart):
            with pytest.raises(pipeplex.PipeplexError, match=elsewhere):
                asyncio.run(asyncio.wait_for(call(), LONG))
        with pytest.raises(pipeplex.PipeplexError, match="and this thread runs none"):
            cat.sendline("x")
        asyncio.run_coroutine_threadsafe(plex.aclose(), loop).result(LONG)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


def test_a_blocking_plex_call_in_a_running_event_loop_is_warned_of() -> None:
    """It holds that loop (an async test's fake server cannot answer, and the wait then
    blames the member): said once, at the caller's line; not outside a loop."""
    async def main() -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cat = plex.spawn("cat", "cat")
            cat.sendline("hi")
            cat.expect("hi")
        assert [(str(w.message)[:60], w.category, w.filename) for w in caught] == [
            ("a blocking pipeplex.Plex call was made in a running event lo", RuntimeWarning,
             __file__)]
    with Plex(timeout=LONG) as plex:
        asyncio.run(main())
        plex.spawn("again", "cat")  # (no warning: made an error in this suite)


def test_a_blocking_call_whose_warning_is_an_error_leaves_no_coroutine_behind() -> None:
    """With that warning an error (-W error, a suite's filterwarnings), the call raises it
    and runs nothing: what it would have run is closed, not left to give a warning of its
    own ("coroutine 'AsyncPlex.spawn' was never awaited") wherever it is collected."""
    import gc

    async def main() -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.filterwarnings("error", message="a blocking pipeplex.Plex call")
            with pytest.raises(RuntimeWarning, match=r"a blocking pipeplex\.Plex call"):
                plex.spawn("cat", "cat")
            gc.collect()
        assert [str(w.message) for w in caught] == []
    with Plex(timeout=LONG) as plex:
        asyncio.run(main())
        assert "cat" not in plex.members


def test_an_async_plex_left_open_when_its_loop_ends_lets_everything_go() -> None:
    """asyncio.run ends under a plex nobody closed: its members are killed, and its guardian
    process and descriptors go too (not one of each per run until the interpreter exits);
    an aclose() later is a no-op, not an error about a closed loop."""
    def children() -> set[str]:
        found: set[str] = set()
        for task in os.listdir("/proc/self/task"):
            try:
                found.update(Path(f"/proc/self/task/{task}/children").read_text().split())
            except (FileNotFoundError, ProcessLookupError):  # (a thread ended meanwhile)
                pass
        return found

    async def left_open() -> pipeplex.AsyncPlex:
        plex = pipeplex.AsyncPlex()
        await plex.start()
        await plex.spawn("a", "sleep 60")
        return plex

    fds, kids = len(os.listdir("/proc/self/fd")), children()
    plexes = [asyncio.run(left_open()) for _ in range(5)]
    assert children() == kids
    assert len(os.listdir("/proc/self/fd")) == fds
    assert all(plex.members["a"].returncode == -signal.SIGKILL for plex in plexes)
    for plex in plexes:  # (said to be left open otherwise: see the plugin's tests)
        asyncio.run(plex.aclose())


def test_wait_after_the_plex_closed_returns_the_known_exit_code() -> None:
    with Plex() as plex:
        done = plex.spawn("done", ["sh", "-c", "exit 3"])
        assert done.wait() == 3
        cat = plex.spawn("cat", "cat")
    assert done.wait() == 3
    assert cat.wait() == 0  # (stopped by its stdin's end, as cat ends)


def test_using_a_closed_plex_says_it_was_closed() -> None:
    """Not 'use it in a with block', which the caller did."""
    with Plex() as plex:
        cat = plex.spawn("cat", "cat")
    for call in (lambda: plex.spawn("again", "cat"), lambda: cat.sendline("late")):
        with pytest.raises(pipeplex.PipeplexError, match="the plex has been closed"):
            call()

    async def closed_async() -> None:
        async with AsyncPlex() as plex:
            pass
        with pytest.raises(pipeplex.PipeplexError, match="the plex has been closed"):
            await plex.spawn("again", "cat")

    asyncio.run(closed_async())
    with pytest.raises(pipeplex.PipeplexError, match="not running: use it in a with block"):
        Plex().spawn("never", "cat")


def _once_waited_on(plex: Plex, name: str, then: Callable[[], object]) -> threading.Thread:
    """A thread that calls ``then`` once an expectation waits on member ``name``."""
    cursor = plex._async.matcher.buffer(name)

    def once_waited_on() -> None:
        deadline = time.monotonic() + LONG
        while not cursor.waited_on and time.monotonic() < deadline:
            os.sched_yield()
        then()

    thread = threading.Thread(target=once_waited_on)
    thread.start()
    return thread


def test_an_expectation_ended_by_a_close_or_a_remove_says_so() -> None:
    """A member stopped by the plex's close (another thread's, while this waited; or before
    the expect began), or by its remove, ends with the code its stop gave it (cat's 0, at
    its EOF), which alone would read as an end of its own."""
    closed = "the plex was closed: its with block ended, or close() was called"
    with Plex(timeout=LONG) as plex:
        cat = plex.spawn("cat", "cat")
        closer = _once_waited_on(plex, "cat", plex.close)
        with pytest.raises(UnexpectedExit) as info:
            cat.expect("never")
        closer.join(LONG)
    assert info.value.because == closed
    assert str(info.value).startswith(f"cat exited with code 0 ({closed})")
    with pytest.raises(UnexpectedExit, match=re.escape(f"({closed})")):
        cat.expect("never")
    with Plex(timeout=LONG) as plex:
        plex.spawn("a", "cat")
        plex.spawn("b", "cat")
        closer = _once_waited_on(plex, "b", plex.close)
        with pytest.raises(UnexpectedExit) as info:
            plex.expect_any({"a": "never", "b": "never"})
        closer.join(LONG)
    assert info.value.because == closed
    with Plex(timeout=LONG) as plex:
        cat = plex.spawn("cat", "cat")
        remover = _once_waited_on(plex, "cat", lambda: plex.remove("cat"))
        with pytest.raises(UnexpectedExit) as info:
            cat.expect("never")
        remover.join(LONG)
    assert str(info.value).startswith("cat exited with code 0 (plex.remove() stopped it)")


def _close_under_calls() -> list[BaseException]:
    """Close a plex while a thread waits on a member and another sends to it, each over and
    over; what ended their calls."""
    plex = Plex(timeout=LONG)
    plex.start()
    cat = plex.spawn("cat", "cat")
    closed = threading.Event()
    ended: list[BaseException] = []

    def waits() -> None:
        try:
            while not closed.is_set():
                cat.wait()  # (a round trip to the plex's loop, once cat has ended)
        except BaseException as exc:
            ended.append(exc)

    def sends() -> None:
        try:
            while True:
                cat.sendline("x")
        except BaseException as exc:
            ended.append(exc)

    callers = [threading.Thread(target=calls, daemon=True)  # (a hung one is let be)
               for calls in (waits, sends)]
    for caller in callers:
        caller.start()
    plex.close()
    closed.set()
    for caller in callers:
        caller.join(LONG)
        assert not caller.is_alive(), "a call waits for ever for the closed plex's loop"
    return ended


def test_calls_from_other_threads_as_the_plex_closes_raise_that_it_closed() -> None:
    """Calls that other threads make as the plex closes, up to its loop's end (stopping, or
    just closed), raise that the plex was closed, as those made after it: none waits for
    ever for a loop that will not run it, nor says that an event loop is closed."""
    for _ in range(10):
        for error in _close_under_calls():
            assert isinstance(error, pipeplex.PipeplexError), repr(error)
            assert "the plex has been closed" in str(error)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (not gone, nor a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_two_threads_closing_one_plex_at_once_take_turns() -> None:
    """A watchdog thread's close() as the with block ends: the second caller waits for the
    first close to end. Both stopped the plex's loop, and one said "Event loop is closed",
    or the plex's own thread died of "Event loop stopped before Future completed" (4 times
    in 10 here)."""
    problems: list[BaseException] = []
    hook, threading.excepthook = threading.excepthook, lambda failed: problems.append(
        failed.exc_value or RuntimeError(failed))  # (the plex's own thread's too)
    try:
        for _ in range(10):
            plex = Plex(grace=1.0)
            plex.start()
            member = plex.spawn("a", "sleep 60")
            meet = threading.Barrier(2)

            def close(plex: Plex = plex, meet: threading.Barrier = meet) -> None:
                meet.wait()
                try:
                    plex.close()
                except BaseException as exc:
                    problems.append(exc)

            closers = [threading.Thread(target=close) for _ in range(2)]
            for closer in closers:
                closer.start()
            for closer in closers:
                closer.join(LONG)
                assert not closer.is_alive()
            assert not _alive(member.pid)
    finally:
        threading.excepthook = hook
    assert problems == []


def _started_from_two_threads(plex: Plex) -> list[str]:
    """What ``plex.start()`` said in each of two threads let go at once."""
    meet = threading.Barrier(2)
    said: list[str] = []

    def start() -> None:
        meet.wait()
        try:
            plex.start()
            said.append("started")
        except pipeplex.PipeplexError as exc:
            said.append(str(exc))

    starters = [threading.Thread(target=start) for _ in range(2)]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join(LONG)
    return said


def test_a_start_from_two_threads_at_once_leaves_the_plex_started_once() -> None:
    """One start wins, the other says the plex was started; the winner's plex works. (The
    loser's clean-up stopped the winner's loop: every call then said the plex was closed,
    while its engine ran on in a thread nothing would stop.)"""
    for _ in range(5):
        plex = Plex(grace=1.0)
        said = _started_from_two_threads(plex)
        try:
            assert sorted(said) == ["started", "this plex has already been started: use a new one"]
            assert plex.spawn("a", "echo hi").expect("hi")
        finally:
            plex.close()
        assert not any(t.name == "pipeplex" for t in threading.enumerate())


def test_a_plex_dropped_while_running_says_so_and_lets_everything_go() -> None:
    """Like an unclosed file: a ResourceWarning, and its members stopped, its guardian and
    thread gone, instead of all of them living on until the interpreter exits. (In a
    program of its own: in a test, the pytest plugin holds the plex, and closes it at the
    test's end.)"""
    script = """
import gc, os, select, warnings
from pathlib import Path
from pipeplex import Plex

def children():
    found = set()
    for task in os.listdir("/proc/self/task"):
        try:
            found.update(Path(f"/proc/self/task/{task}/children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):  # (a thread joined, not yet gone)
            pass
    return found

kids = children()
plex = Plex()
plex.start()
member = plex.spawn("a", "sleep 60")
pidfd = os.pidfd_open(member.pid)
thread = plex._thread
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    del plex, member
    gc.collect()
for warning in caught:
    print("warned:", warning.category.__name__, warning.message)
thread.join(timeout=30)
print("thread alive:", thread.is_alive())
print("member ended:", select.select([pidfd], [], [], 0)[0] == [pidfd])
print("children as before:", children() == kids)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=LONG, check=True)
    assert done.stdout.splitlines() == [
        "warned: ResourceWarning a pipeplex.Plex was dropped while running, without close(): "
        "its members are being stopped; use it as 'with Plex() as plex:'",
        "thread alive: False", "member ended: True", "children as before: True"], done.stderr


def test_an_async_plex_left_open_as_its_loop_ended_says_what_that_did() -> None:
    """An AsyncPlex never closed when ``asyncio.run`` ends: its members are killed on the
    way out, and once the plex is let go, a ResourceWarning says so, with the fix (the
    sync Plex's says as much). One that was closed says nothing. (In a program of its own:
    in a test, the pytest plugin holds the plex, and says it at the test's end.)"""
    script = """
import asyncio, gc, os, warnings
from pipeplex import AsyncPlex

async def left_open():
    plex = AsyncPlex()
    await plex.start()
    print((await plex.spawn("a", "sleep 60")).pid, flush=True)
    await plex.spawn("b", "true")
    await plex["b"].wait()

async def closed():
    async with AsyncPlex() as plex:
        await plex.spawn("c", "sleep 60")

warnings.simplefilter("always")
asyncio.run(left_open())
asyncio.run(closed())
gc.collect()
print("collected", flush=True)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=LONG, check=True)
    pid, collected = done.stdout.split()
    assert collected == "collected"
    warned = [line for line in done.stderr.splitlines() if ": ResourceWarning: " in line]
    assert len(warned) == 1 and warned[0].endswith(
        "ResourceWarning: this program left a pipeplex.AsyncPlex open, without aclose(): its "
        "event loop's end killed member a (SIGKILL), without the grace; use it as 'async "
        "with AsyncPlex() as plex:'"), done.stderr
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)


def test_the_transcript_is_the_merged_stream(tmp_path: Path) -> None:
    """transcript() is the merged stream; transcript= also writes JSON Lines."""
    path = tmp_path / "t.jsonl"
    with Plex(transcript=path) as plex:
        cat = plex.spawn("cat", "cat")
        cat.sendline("hello")
        cat.expect("hello")
        cat.send(b"two\nlines\n")
        cat.expect("lines")
        cat.send("no end")
        cat.close_stdin()
        assert cat.wait(timeout=LONG) == 0
        text = plex.transcript()
    # What was sent shows beside what came back.
    assert "cat > hello\ncat | hello\n" in text
    assert "cat > two\ncat > lines\n" in text
    assert "cat > no end [no newline]\n" in text  # (send(), not sendline(): told apart)
    assert "cat > [EOF]\n" in text
    assert '"d": "hello\\n"' in path.read_text()
    # Input and matches are records nobody else keeps: made because the file wants them.
    kinds = {(r["s"], r.get("e")) for r in map(json.loads, path.read_text().splitlines())}
    assert {("in", None), ("event", "match")} <= kinds


def test_a_full_terminals_lines_end_in_the_transcript_as_others_do() -> None:
    """A terminal ends its lines in \\r\\n: the transcript (and a failed test's report)
    folds them, as pipeplex run does, rather than show a \\x0d at the end of each."""
    with Plex() as plex:
        sh = plex.spawn("sh", ["sh", "-c", "echo one; echo two"], pty=True)
        assert sh.wait(timeout=LONG) == 0
        text = plex.transcript()
    assert "sh | one\nsh | two\n" in text and "\r" not in text, repr(text)


def test_the_transcript_has_each_line_sent_before_its_answer() -> None:
    """Sent from the caller's thread and answered at once: the record of the line still
    comes first."""
    with Plex(timeout=LONG) as plex:
        cat = plex.spawn("cat", "cat")
        for i in range(1000):
            cat.sendline(f"line {i}")
            cat.expect(f"^line {i}$")
        text = plex.transcript()
    for i in range(1000):
        assert text.index(f"cat > line {i}\n") < text.index(f"cat | line {i}\n"), i


def test_sending_what_is_neither_text_nor_bytes_is_a_type_error() -> None:
    with Plex(timeout=LONG) as plex:
        cat = plex.spawn("cat", "cat")
        for bad in (5, None, ["a"]):
            with pytest.raises(TypeError, match=r"send\(\) takes str or bytes, not "):
                cat.send(bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"sendline\(\) takes str or bytes, not int"):
            cat.sendline(5)  # type: ignore[arg-type]
        cat.send(bytearray(b"bytes-like\n"))
        cat.expect("^bytes-like$")


def test_sending_what_is_neither_text_nor_bytes_is_a_type_error_async() -> None:
    async def main() -> None:
        async with AsyncPlex(timeout=LONG) as plex:
            cat = await plex.spawn("cat", "cat")
            with pytest.raises(TypeError, match=r"send\(\) takes str or bytes, not int"):
                cat.send(5)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=r"sendline\(\) takes str or bytes, not int"):
                cat.sendline(5)  # type: ignore[arg-type]

    asyncio.run(main())


def test_text_sent_goes_as_utf8_and_a_file_names_undecodable_bytes_as_they_were() -> None:
    """What ``os.fsdecode`` made of bytes that are no UTF-8 goes as those bytes; half of a
    surrogate pair, which no encoding has, is an ArgumentError that says so (it was
    Python's own UnicodeEncodeError from inside pipeplex)."""
    async def main() -> None:
        async with AsyncPlex(timeout=LONG) as plex:
            od = await plex.spawn("od", ["od", "-An", "-tx1"])
            od.sendline(os.fsdecode(b"caf\xe9"))
            od.close_stdin()  # (od writes once its input ends)
            await od.expect(r"63 61 66 e9 0a")
            for send in (od.send, od.sendline):
                with pytest.raises(pipeplex.ArgumentError,
                                   match=r"has no '\\ud800' \(at 1: half of a surrogate pair\)"):
                    send("a\ud800")

    asyncio.run(main())


def test_a_wait_that_times_out_shows_only_the_callers_frames() -> None:
    """Not the engine thread's, nor concurrent.futures': the message says it all."""
    with Plex(timeout=LONG) as plex:
        sleeper = plex.spawn("s", "sleep 60")
        with pytest.raises(TimeoutError, match=r"s was still running after 0\.1 s") as caught:
            sleeper.wait(timeout=0.1)
    files = {frame.filename for frame in traceback.extract_tb(caught.value.__traceback__)}
    assert not any("concurrent" in f or "asyncio" in f for f in files), files


def test_an_interrupt_reaches_the_job_a_full_terminals_shell_runs(tmp_path: Path) -> None:
    """signal("INT") does what Ctrl-C in that terminal would."""
    job = tmp_path / "job.py"
    job.write_text("import signal, sys\n"
                   "signal.signal(signal.SIGINT, lambda *a: (print('job got INT'), sys.exit(0)))\n"
                   "print('job ready', flush=True)\n"
                   "signal.pause()\n")
    with Plex(timeout=LONG) as plex:
        sh = plex.spawn("sh", "sh -i", pty=True)
        sh.sendline(f"{PY} {job}")
        sh.expect("job ready")
        sh.signal("INT")
        sh.expect("job got INT")
        sh.sendline("exit")
        assert sh.wait() == 0


def test_a_long_transcript_keeps_whole_lines_and_says_it_was_cut() -> None:
    """Beyond its last megabyte the transcript starts at a line, after a line that says so
    (not in the middle of a line, or of a character)."""
    with Plex() as plex:
        flood = plex.spawn("flood", [PY, "-c", "for i in range(40000): print('é' * 30, i)"])
        assert flood.wait(timeout=60) == 0
        text = plex.transcript()
    first, second, *_ = text.splitlines()
    assert first == "[earlier lines not kept: the transcript keeps the last 1 MiB]"
    assert re.fullmatch(r"flood \| é{30} \d+", second), second
    assert "\ufffd" not in text
    assert f"flood | {'é' * 30} 39999\n" in text


def test_two_threads_cannot_wait_on_one_members_output_at_once() -> None:
    """A second expectation on a cursor that one already waits on is refused: the two would
    race for the same output."""
    with Plex(timeout=LONG) as plex:
        cat = plex.spawn("c", "cat")
        results: list[object] = []
        waiter = threading.Thread(target=lambda: results.append(cat.expect("one")[0]))
        waiter.start()
        cursor = plex._async.matcher.buffer("c")
        deadline = time.monotonic() + LONG
        while not cursor.waited_on:
            assert time.monotonic() < deadline, "the thread did not start waiting"
            os.sched_yield()
        with pytest.raises(RuntimeError, match="already waiting on the output of c"):
            cat.expect("two")
        cat.sendline("one two")
        waiter.join(LONG)
        assert results == ["one"]
        assert cat.expect("two")[0] == "two"


def test_async_plex_drives_many_members_concurrently() -> None:
    """The async API: ten members, each in its own task, expectations at once."""

    async def main() -> list[str]:
        async with AsyncPlex() as plex:
            members = [await plex.spawn(f"c{i}", "cat") for i in range(10)]

            async def talk(member: pipeplex.AsyncMember) -> str:
                for n in range(20):
                    member.sendline(f"{member.name} {n}")
                    await member.expect(f"^{member.name} {n}$")
                return member.name

            return await asyncio.gather(*(talk(m) for m in members))

    assert asyncio.run(main()) == [f"c{i}" for i in range(10)]


def test_repr_shows_state() -> None:
    """A member's repr names it and shows its pid and state."""
    with Plex() as plex:
        cat = plex.spawn("cat", "cat")
        assert re.fullmatch(r"<Member 'cat' pid=\d+ running>", repr(cat))


def test_a_member_spawned_with_stderr_into_stdout_gives_one_stream_in_order() -> None:
    code = "import sys; print('before'); sys.exit('failed')"
    with Plex() as plex:
        m = plex.spawn("m", [PY, "-c", code], stderr="stdout")
        m.expect("^before\nfailed$", stream="stdout")
        with pytest.raises(ValueError, match="m has stderr='stdout': what it writes to "
                                             "stderr comes on its stdout"):
            m.expect("failed", stream="stderr")  # (it could only time out)
        assert m.expect(EOF) == 0
        refused = "stderr must be one of 'apart', 'stdout', not 'x'"
        with pytest.raises(pipeplex.CastError, match=refused):
            plex.spawn("n", "true", stderr="x")  # type: ignore[arg-type]


def test_a_command_may_hold_paths_as_subprocess_takes_them(tmp_path: Path) -> None:
    script = tmp_path / "hello.py"
    script.write_text("print('hello from a path')\n")
    with Plex() as plex:
        plex.spawn("p", [Path(PY), script]).expect("^hello from a path$")
        assert plex.spawn("q", Path(shutil.which("true") or "/bin/true")).wait() == 0
        with pytest.raises(ValueError, match=r"since is a time.time\(\), not 'x'"):
            plex.transcript(since="x")  # type: ignore[arg-type]


def test_big_sends_from_the_sync_api_keep_their_order() -> None:
    """Sends larger than a pipe's buffer are finished by the loop, in order with later ones."""
    with Plex(pty=False) as plex:
        cat = plex.spawn("cat", "cat")
        for i in range(5):
            cat.sendline(f"start{i} " + "x" * 300_000 + f" end{i}")
            cat.sendline(f"after{i}")
        for i in range(5):
            # A match reaches at most 4 KiB back, so wait for the end and check what came
            # before it: the whole line, in order.
            cat.expect(f" end{i}\n")
            assert cat.before == f"start{i} " + "x" * 300_000
            cat.expect(f"^after{i}\n")
            assert cat.before == ""


def test_a_repls_prompt_on_stderr_ends_its_line_before_the_answer() -> None:
    """python -i, bash and perl write their prompt to stderr, the answer to stdout: in the
    default mode (two pipes' worth of order) the answer is still a line of its own."""
    repl = "while printf '> ' >&2 && read l; do echo \"ans=$l\"; done"
    with Plex(timeout=LONG) as plex:
        shell = plex.spawn("repl", ["sh", "-c", repl])
        for i in range(3):
            shell.expect("^> ")
            shell.sendline(str(i))
            shell.expect(f"^ans={i}$")


def test_colours_are_not_in_the_way_of_ready_and_expect() -> None:
    """A member on a terminal colours its output: ready and expect patterns are searched
    in the text the screen shows, and a captured value has no escape sequence in it."""
    server = ("printf 'running on \\033[1mhttp://127.0.0.1:4242\\033[0m (ok)\\n' >&2; "
              "printf '\\033[32mgreen\\033[0m and \\033]0;title\\007plain\\n'; exec cat")
    with Plex(timeout=LONG) as plex:
        member = plex.spawn("srv", ["sh", "-c", server],
                            ready=r"on http://127\.0\.0\.1:(?P<port>\d+) \(ok\)$")
        member.expect(r"^running on http://127\.0\.0\.1:4242 \(ok\)$", stream="stderr")
        member.sendline("\x1b[1mbold\x1b[0m second")  # (cat's own stdout, after the first)
        member.expect(r"^bold second$", stream="stdout")
        assert member.before == "green and plain\n"
        client = plex.spawn("client", ["sh", "-c", "echo port={port}"])
        client.expect("^port=4242$")


def test_members_without_a_full_terminal_get_no_pager(monkeypatch: pytest.MonkeyPatch) -> None:
    """git log on a pty stdout would start less, which no key can reach: PAGER=cat, unless
    the member has a full terminal (where keys reach it) or its env says otherwise."""
    monkeypatch.setenv("PAGER", "less")
    monkeypatch.setenv("MANPAGER", "less")  # (man takes it before PAGER)
    monkeypatch.delenv("GIT_PAGER", raising=False)
    show = ["sh", "-c", "echo pager=$PAGER git=$GIT_PAGER man=$MANPAGER"]
    with Plex(timeout=LONG) as plex:
        plex.spawn("stdout", show).expect("^pager=cat git=cat man=cat$")
        plex.spawn("pipes", show, pty=False).expect("^pager=cat git=cat man=cat$")
        plex.spawn("full", show, pty=True).expect("^pager=less git= man=less$")
        plex.spawn("own", show, env={"PAGER": "more"}).expect("^pager=more git=cat man=cat$")


def test_sends_to_a_member_that_answers_nothing_keep_no_pile_of_records() -> None:
    """A send's record waits for the loop's next event, so the loop is not woken for each;
    a member that never answers makes none, and the records piled up without end."""
    from pipeplex.participants._stdin import RECORDS_WAITING

    with Plex(pty=False, timeout=LONG) as plex:
        sink = plex.spawn("sink", ["sh", "-c", "exec cat > /dev/null"])
        for i in range(5000):
            sink.sendline(f"line {i}")
        sink.drain()  # (a call through the loop: after the flushes the sends asked for)
        assert len(plex._async.bus._from_threads) < RECORDS_WAITING
        assert "sink > line 4999" in plex.transcript()


def test_an_eof_sent_while_a_repl_on_a_full_terminal_is_busy_still_ends_it(
        tmp_path: Path) -> None:
    """close_stdin() sends the terminal's ^D. Sent while a readline REPL ran a command (its
    terminal back in line mode meanwhile), the ^D waited there, and the kernel dropped it
    as readline took the terminal raw for the next prompt: the REPL ran on, unreachable.
    It goes again once the terminal has left line mode."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    with Plex(timeout=LONG) as plex:
        py = plex.spawn("py", [PY, "-q", "-i"], pty=True)
        py.expect(r">>> $")
        py.sendline(f"import os; print('busy', flush=True); os.read(os.open({str(gate)!r}, "
                    "os.O_RDONLY), 1)")
        py.expect(r"^busy\r?$")  # (it waits on the gate, its terminal in line mode)
        py.close_stdin()
        with open(gate, "wb") as opened:  # (the command ends: readline's next prompt)
            opened.write(b"x")
        assert py.wait(timeout=10) == 0


LINE_EDITOR = """
import os, sys, termios, tty
os.read(os.open(sys.argv[1], os.O_RDONLY), 1)  # (busy, its terminal in line mode)
tty.setraw(0, termios.TCSANOW)
erase, line = termios.tcgetattr(0)[6][termios.VERASE], b""
print("prompt", end="", flush=True)
while (key := os.read(0, 1)) != b"\\x04" or line:  # (^D ends an empty line only)
    line = line[:-1] if key == erase else line + key
"""


def test_an_eof_that_reaches_a_line_editor_as_a_nul_is_erased_before_it_goes_again(
        tmp_path: Path) -> None:
    """The ^D waiting in line mode reaches a program that takes its terminal raw as a NUL;
    Python's own REPL puts that NUL in its line, where ^D no longer ends it. The ^D sent
    again follows the terminal's erase key."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    with Plex(timeout=LONG) as plex:
        editor = plex.spawn("editor", [PY, "-c", LINE_EDITOR, str(gate)], pty=True)
        editor.close_stdin()
        with open(gate, "wb") as opened:
            opened.write(b"x")
        assert editor.wait(timeout=10) == 0


def test_the_waits_on_a_members_output_are_counted_while_they_wait() -> None:
    """Its prompts are cut at once while an expectation waits for them: the count
    comes back to nothing however a wait ends, found, timed out or at an exit."""
    with Plex(timeout=LONG) as plex:
        cat = plex.spawn("cat", "cat")
        cat.sendline("hi")
        cat.expect("^hi$")
        with pytest.raises(pipeplex.ExpectTimeout):
            cat.expect("never", timeout=0.05)
        assert cat.expect(["never", TIMEOUT], timeout=0.05) == 1
        cat.close_stdin()
        assert cat.expect(EOF) == 0
        assert plex.bus.awaited == {}


def test_a_line_too_long_for_a_full_terminal_is_said() -> None:
    """A full terminal in line mode hands a program at most 4095 bytes of a line and drops
    the rest without a word: pipeplex says so."""
    with Plex(timeout=LONG) as plex:
        notes: list[str] = []
        plex.bus.subscribe(lambda e: notes.append(e.text), [pipeplex.Note])
        counter = plex.spawn("counter", [PY, "-c", "print('in', len(input()))"], pty=True)
        counter.sendline("x" * 10_000)
        counter.expect(r"^in 4095$")
        assert counter.wait() == 0
    assert [n for n in notes if "at most 4095 bytes" in n] == [
        "its terminal takes lines of at most 4095 bytes (a full terminal in line mode): "
        "a line of 10000 bytes reaches the program cut short; a member with pty = \"stdout\" "
        "or false reads lines of any length"]


def test_a_member_that_exits_with_0_before_it_is_ready_gets_the_daemon_hint() -> None:
    """nginx and redis put themselves in the background and exit 0: the message says to run
    them in the foreground, where pipeplex can watch them."""
    hint = (r"exited with code 0 before it was ready; if it runs on in the background "
            r"\(a daemon\), run it in the foreground instead")
    with Plex(timeout=LONG) as plex, pytest.raises(pipeplex.NotReady, match=hint):
        plex.spawn("daemon", ["sh", "-c", "exit 0"], ready="never")


def test_a_full_terminal_erases_a_whole_utf8_character() -> None:
    """As in a terminal window (IUTF8): a backspace after é takes both of its bytes."""
    with Plex(timeout=LONG) as plex:
        echo = plex.spawn("echo", [PY, "-c", "print('got', ascii(input()))"], pty=True)
        echo.send("ab\u00e9\x7fc\n")
        echo.expect(r"^got 'abc'$")


def test_a_failure_of_pipeplex_itself_during_a_spawn_is_raised_not_waited_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in the start of a member (here one planted in making its pty) ended the run,
    while spawn() waited for the member for ever, past any timeout."""
    from pipeplex.participants import _spawn

    def broken(**_: object) -> tuple[int, int]:
        raise RuntimeError("planted")

    monkeypatch.setattr(_spawn, "open_pty", broken)
    plex = Plex(timeout=LONG)
    plex.start()
    try:
        with pytest.raises(pipeplex.PipeplexError, match=r"^pipeplex failed while this member "
                                                         r"started: RuntimeError\('planted'\)$"):
            plex.spawn("m", ["true"])
    finally:
        with pytest.raises(BaseExceptionGroup) as ended:  # (close() raises the run's failure)
            plex.close()
    assert ended.group_contains(RuntimeError, match="planted")


def test_input_dropped_for_a_member_that_ended_is_said_once_then_counted() -> None:
    """A script's every line to a member that ended made a note of its own (thousands);
    the first is said, the rest counted in one note when it starts again or the cast ends."""
    notes: list[str] = []
    with Plex(timeout=LONG) as plex:
        plex.bus.subscribe(lambda e: notes.append(f"{e.name}: {e.text}"), [pipeplex.Note])
        gone = plex.spawn("gone", ["true"])
        assert gone.wait() == 0
        for i in range(5):
            gone.sendline(f"line {i}")  # 7 bytes each
    dropped = [n for n in notes if "dropped" in n]
    assert dropped == ["gone: is not running; dropped 7 bytes of input",
                       "gone: dropped 28 more bytes of input sent while it could not take "
                       "them"], notes


def test_a_repl_prompting_again_after_a_silent_line_shows_a_prompt_of_its_own() -> None:
    """python -i, prompts on stderr: after ``x = 1`` (which prints nothing) its next prompt
    follows the first with nothing between (``>>> >>> ``); the line sent ends the first,
    as the screen shows them, so ``^>>> $`` waits for the next prompt as it does in pexpect."""
    with Plex(timeout=LONG) as plex:
        repl = plex.spawn("py", [PY, "-i", "-q"], env={"PYTHONSTARTUP": ""})
        repl.expect("^>>> $")
        for line in ("x = 6 * 7", "y = x + 1"):
            repl.sendline(line)
            repl.expect("^>>> $")
        repl.sendline("print(y)")
        repl.expect("^43$")
        repl.expect("^>>> $")


HOLDER = ("import signal, sys, zlib\n"
          "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])\n"
          "print('waiting', flush=True)\n"
          "signal.sigwait([signal.SIGUSR1])\n"
          "data = sys.stdin.buffer.read()\n"
          "print('read', len(data), zlib.crc32(data), flush=True)\n")
"""Reads its stdin only once it gets SIGUSR1, then all of it, and tells its size and CRC."""


def test_a_send_waits_also_when_others_filled_the_member(tmp_path: Path) -> None:
    """The wait was for a handle's own last send only: a member that input from the control
    socket (or the run folder's pipes) had filled took a handle's send at once, on top."""
    from pipeplex.control_client import ControlClient
    from pipeplex.errors import RequestFailed

    with Plex(pty=False, timeout=0.5, run_dir=tmp_path / "run") as plex:
        holder = plex.spawn("holder", [PY, "-c", HOLDER])
        holder.expect("waiting\n", timeout=LONG)
        with ControlClient(tmp_path / "run") as client:
            refused: str | None = None
            for _ in range(100):  # (in requests under the socket's 64 KiB, until it is full)
                try:
                    client.request("send", name="holder", data="x" * 60_000)
                except RequestFailed as exc:
                    refused = exc.code
                    break
            assert refused == "input_full"
        with pytest.raises(TimeoutError, match=r"this send was not queued"):
            holder.send(b"more")
        holder.signal("USR1")
        holder.drain(timeout=LONG)


def test_a_send_waits_while_the_member_has_a_mebibyte_it_has_not_read() -> None:
    """As a write to a full pipe: send waits (up to the plex's timeout) while 1 MiB or more
    is queued for a member that does not read, before it queues: one that times out sent
    nothing (sending it again sends it once). What was sent arrives, in order, once the
    member reads."""
    import zlib

    first, second = os.urandom(2 * 1024 * 1024), os.urandom(300_000)
    with Plex(pty=False, timeout=0.5) as plex:
        holder = plex.spawn("holder", [PY, "-c", HOLDER])
        holder.expect("waiting\n", timeout=LONG)
        holder.send(b"a few bytes")
        holder.drain(timeout=0)  # (not full: at once)
        holder.send(first)  # (queued: there was room before it)
        with pytest.raises(TimeoutError, match=r"^holder still had \d+ KiB of input it had "
                           r"not read after 0\.5 s; this send was not queued \(send it again "
                           r"once the member reads\)$"):
            holder.send(second)
        with pytest.raises(TimeoutError):
            holder.drain(timeout=0)
        holder.signal("USR1")
        holder.drain(timeout=LONG)
        holder.send(second)
        holder.close_stdin()
        sent = b"a few bytes" + first + second
        holder.expect(rf"read {len(sent)} {zlib.crc32(sent)}\n", timeout=LONG)


def test_an_async_send_never_waits_and_drain_waits_for_room() -> None:
    """AsyncMember.send queues at once, whatever is waiting; drain() waits while 1 MiB or
    more is, until the member reads it down (or its stdin goes)."""
    async def main() -> None:
        async with AsyncPlex(pty=False, timeout=LONG) as plex:
            holder = await plex.spawn("holder", [PY, "-c", HOLDER])
            await holder.expect("waiting\n")
            await holder.drain(timeout=0)
            holder.send(b"x" * (3 * 1024 * 1024))
            with pytest.raises(TimeoutError, match=r"^holder still had 30\d\d KiB "):
                await holder.drain(timeout=0.2)
            with pytest.raises(TimeoutError):
                await holder.drain(timeout=0.05)
            assert not holder._process.stdin._room_waiters  # (none kept by the timed-out drains)
            draining = asyncio.ensure_future(holder.drain())
            holder.signal("USR1")
            await draining
            holder.close_stdin()
            await holder.expect(rf"read {3 * 1024 * 1024} ")

            other = await plex.spawn("other", [PY, "-c", HOLDER])
            await other.expect("waiting\n")
            other.send(b"x" * (2 * 1024 * 1024))
            draining = asyncio.ensure_future(other.drain())
            other.signal("KILL")  # (its stdin goes with it: nothing is waited for any more)
            await draining
            assert await other.wait() == -signal.SIGKILL

    asyncio.run(main())


def test_a_send_from_a_sink_never_waits_for_room() -> None:
    """A sink runs in the plex's own thread, where waiting for the member would wait for
    itself: its send queues, as an AsyncMember's does."""
    with Plex(pty=False, timeout=LONG) as plex:
        queued = threading.Event()

        def flood(event: pipeplex.Output) -> None:
            if b"waiting" in event.data:
                plex["holder"].send(b"x" * (2 * 1024 * 1024))
                queued.set()

        plex.bus.subscribe(flood, [pipeplex.Output])
        holder = plex.spawn("holder", [PY, "-c", HOLDER])
        assert queued.wait(LONG)
        holder.signal("USR1")
        holder.close_stdin()
        holder.expect(rf"read {2 * 1024 * 1024} ")


def test_a_sink_finds_a_member_whose_spawn_has_not_returned_yet() -> None:
    """Its first output reaches a sink (in the plex's thread) before spawn() returns to its
    caller: plex[name] answers all the same."""
    code = "import sys; print('first', flush=True); sys.stdin.readline(); print('ready')"
    with Plex(pty=False, timeout=LONG) as plex:
        def answer(event: pipeplex.Output) -> None:
            if event.name == "m" and b"first" in event.data:
                plex["m"].send(b"go\n")  # (its spawn waits for 'ready', which this brings)

        plex.bus.subscribe(answer, [pipeplex.Output])
        member = plex.spawn("m", [PY, "-c", code], ready="^ready$", ready_timeout=LONG)
        assert plex["m"] is member and list(plex.members) == ["m"]


def _cli(*args: str) -> str:
    import subprocess

    done = subprocess.run([PY, "-m", "pipeplex", *args], capture_output=True, text=True,
                          timeout=30, check=True)
    return done.stdout


def test_run_dir_lets_the_outside_reach_the_members(tmp_path: Path) -> None:
    """Plex(run_dir=...): a FIFO per member and the control socket, private, removed after."""
    import stat

    run_dir = tmp_path / "run"
    with Plex(run_dir=run_dir) as plex:
        cat = plex.spawn("cat", "cat")
        assert sorted(os.listdir(run_dir)) == ["all.in", "cat.in", "control.sock", "run.lock"]
        assert stat.S_IMODE(os.stat(run_dir).st_mode) == 0o700
        for entry in ("cat.in", "all.in", "control.sock"):
            assert stat.S_IMODE(os.stat(run_dir / entry).st_mode) == 0o600
        (run_dir / "cat.in").write_text("through the pipe\n")
        cat.expect("through the pipe")
        _cli("send", "--run-dir", str(run_dir), "cat", "through the socket")
        cat.expect("through the socket")
        later = plex.spawn("later", "cat")  # a member spawned later gets its pipe too
        (run_dir / "all.in").write_text("to everyone\n")
        cat.expect("to everyone")
        later.expect("to everyone")
        status = _cli("status", "--run-dir", str(run_dir))
        assert re.search(r"^cat +\d+ +running", status, re.M), status
        assert re.search(r"^later +\d+ +running", status, re.M), status
    assert not run_dir.exists()


def test_a_stop_from_outside_ends_the_plex(tmp_path: Path) -> None:
    """`pipeplex stop` stops the members as for the CLI; the plex refuses new members."""
    run_dir = tmp_path / "run"
    with Plex(run_dir=run_dir) as plex:
        cat = plex.spawn("cat", "cat")
        _cli("stop", "--run-dir", str(run_dir))
        assert cat.expect(EOF) == 0
        assert cat.wait() == 0  # cat ends on the closed stdin, before any SIGTERM
        with pytest.raises(pipeplex.PipeplexError, match=r"the plex has stopped \(stop "
                           r"requested through the control socket"):
            plex.spawn("more", "cat")
        # An expect on it says why it ended: its exit alone does not.
        with pytest.raises(UnexpectedExit, match=r"^cat exited with code 0 \(the plex was "
                           r"stopped: stop requested through the control socket \(pid \d+\)\), "
                           r"so the wait for 'more' ended at once"):
            cat.expect("more")
    assert not run_dir.exists()


def test_an_unusable_run_dir_fails_the_start_and_leaves_nothing(tmp_path: Path) -> None:
    import threading

    (tmp_path / "file").write_text("")
    threads = threading.active_count()
    with pytest.raises(pipeplex.RunDirError, match="file"), Plex(run_dir=tmp_path / "file" / "run"):
        pass
    assert threading.active_count() == threads


def test_a_run_dir_another_plex_of_this_process_holds_is_said_so(tmp_path: Path) -> None:
    """Not "another pipeplex run (pid N)", N being our own pid, nor the command's option."""
    run_dir = tmp_path / "run"
    with Plex(run_dir=run_dir), pytest.raises(pipeplex.RunDirError) as caught, \
            Plex(run_dir=run_dir):
        pass
    assert "in use by another plex of this process" in str(caught.value)
    assert "run_dir" in str(caught.value)
    assert "--run-dir" not in str(caught.value)


def test_a_run_dirs_message_names_run_dir_not_the_commands_option(tmp_path: Path) -> None:
    """An open folder is refused with what to do in Python's words: run_dir=, not the
    command's --run-dir."""
    open_folder = tmp_path / "open"
    open_folder.mkdir()
    open_folder.chmod(0o777)
    with pytest.raises(pipeplex.RunDirError) as caught, Plex(run_dir=open_folder):
        pass
    assert str(caught.value) == (
        f"refusing run folder {open_folder}: its mode is 0777, others may plant files there (a "
        f"run folder is 0700); run chmod 700 {open_folder} or give another run folder "
        "(run_dir=)")


@pytest.mark.parametrize(("run_dir", "why"), [
    ("/proc/nope/x", "No such file or directory"),
    ("/proc/self/x", "no folder can be made in /proc/self")])
def test_a_run_dir_that_cannot_be_made_says_why(run_dir: str, why: str) -> None:
    """Not 'something keeps removing it', the words for a folder an ending run removed."""
    with pytest.raises(pipeplex.RunDirError,
                       match=f"^cannot create run folder {run_dir}: {why}$"), Plex(run_dir=run_dir):
        pass


def test_folders_made_above_a_run_dir_go_with_it(tmp_path: Path) -> None:
    """run_dir in folders that did not exist: they are made for it and removed with it,
    unless something else was put in one of them meanwhile."""
    with Plex(run_dir=tmp_path / "a" / "b" / "run") as plex:
        plex.spawn("c", "cat")
    assert list(tmp_path.iterdir()) == []
    with Plex(run_dir=tmp_path / "a" / "b" / "run") as plex:
        (tmp_path / "a" / "keep").write_text("mine")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["keep"]


def test_a_spawn_waiting_when_the_plex_is_stopped_raises(tmp_path: Path) -> None:
    """A member still waiting to be ready when pipeplex stop arrives: spawn says so."""
    import threading

    run_dir = tmp_path / "run"
    with Plex(run_dir=run_dir) as plex:
        stopper = threading.Thread(target=_cli, args=("stop", "--run-dir", str(run_dir)))
        plex.spawn("marker", "cat")  # the control socket is up once a spawn returned
        stopper.start()
        try:
            with pytest.raises(pipeplex.PipeplexError, match="stopped before it was ready"):
                plex.spawn("slow", "cat", ready="never shown", ready_timeout=30)
        finally:
            stopper.join()
        assert not run_dir.exists()  # the run is over: its folder goes at once


def test_run_dir_never_removes_a_file_of_yours(tmp_path: Path) -> None:
    """A member named like a file in an existing folder: a clear error, the file kept."""
    tmp_path.chmod(0o700)
    (tmp_path / "web.in").write_text("precious")
    with Plex(run_dir=tmp_path) as plex:
        with pytest.raises(pipeplex.RunDirError, match=r"web\.in exists already \(a regular "
                           rf"file of uid {os.geteuid()}\), and no earlier run left it; move it"):
            plex.spawn("web", "cat")
        assert "web" not in plex.members
    assert (tmp_path / "web.in").read_text() == "precious"


def test_a_plex_starts_once() -> None:
    plex = Plex()
    with plex, pytest.raises(pipeplex.PipeplexError, match="already been started"):
        plex.start()


@pytest.mark.parametrize("first_run", ["exit 3", "exec sleep 60"], ids=["exits", "hangs"])
def test_load_restarts_a_member_whose_first_run_is_not_ready(tmp_path: Path,
                                                             first_run: str) -> None:
    """on_exit = restart in a loaded file covers a failed start, as in pipeplex run: an exit
    before readiness, and a run still not ready at its ready_timeout."""
    cast = tmp_path / "cast.toml"
    flaky = ("n=$(cat count 2>/dev/null || echo 0); echo $((n + 1)) > count; "
             f"[ \"$n\" -ge 1 ] && {{ echo ready; exec cat; }}; {first_run}")
    cast.write_text(f"[procs.flaky]\ncmd = {json.dumps(['sh', '-c', flaky])}\n"
                    f"cwd = {json.dumps(str(tmp_path))}\nready = '^ready$'\n"
                    "ready_timeout = 2\non_exit = 'restart'\n")  # (room for the second run)
    with Plex() as plex:
        plex.load(cast)
        flaky_member = plex["flaky"]
        flaky_member.sendline("still here")
        flaky_member.expect("still here")
    assert (tmp_path / "count").read_text() == "2\n"


def test_a_member_removed_while_a_run_not_ready_is_stopped_is_not_restarted(
        tmp_path: Path) -> None:
    """remove() during the stop of a run not ready in time: no run follows, and the load
    that waited for it hears it was removed."""
    cast = tmp_path / "cast.toml"
    hangs = ("echo run >> runs; trap '' TERM; exec sleep 60")  # (its stop takes the grace)
    cast.write_text(f"[procs.slow]\ncmd = {json.dumps(['sh', '-c', hangs])}\n"
                    f"cwd = {json.dumps(str(tmp_path))}\nready = '^ready$'\n"
                    "ready_timeout = 0.5\non_exit = 'restart'\n")

    async def scenario() -> BaseException | None:
        async with AsyncPlex(grace=1) as plex:
            loop = asyncio.get_running_loop()
            removed: list[asyncio.Task[None]] = []

            def seen(event: object) -> None:
                if (isinstance(event, pipeplex.Note) and not removed
                        and "stopping this run (on_exit = restart)" in event.text):
                    removed.append(loop.create_task(plex.remove("slow")))

            plex.bus.subscribe(seen)
            try:
                await asyncio.wait_for(plex.load(cast), LONG)
            except pipeplex.PipeplexError as exc:
                await asyncio.wait_for(removed[0], LONG)
                return exc
            return None

    error = asyncio.run(scenario())
    assert isinstance(error, pipeplex.PipeplexError) and not isinstance(
        error, pipeplex.NotReady), repr(error)
    assert "slow was removed before it was ready" in str(error)
    assert (tmp_path / "runs").read_text() == "run\n"  # (no run after it)


def test_the_guardians_last_word_reaches_the_transcript(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A guardian that does not end as the plex closes (stopped) is killed, and says so:
    the transcript, closed after it, has that line."""
    from pipeplex.participants import guardian as guardian_module

    monkeypatch.setattr(guardian_module, "CLOSE_WAIT", 0.2)
    transcript = tmp_path / "t.jsonl"

    async def scenario() -> None:
        async with AsyncPlex(transcript=transcript) as plex:
            assert plex._guardian is not None
            os.kill(plex._guardian.pid, signal.SIGSTOP)

    asyncio.run(scenario())
    assert "did not end within 0.2 s of the run's end (stopped?): killed it" in \
        transcript.read_text()


def test_a_name_is_free_again_once_its_member_has_ended(tmp_path: Path) -> None:
    """After NotReady (an exit, a timeout) or an exit, spawn may use the name again; a name
    whose member still runs is refused. The old member's exit comes before the new start,
    and the new member's expectations start after what the old one wrote."""
    seen: list[tuple[str, str]] = []
    run_dir = tmp_path / "run"
    with Plex(run_dir=run_dir) as plex:
        plex.bus.subscribe(lambda e: seen.append((type(e).__name__, e.name)),
                           [pipeplex.Started, pipeplex.Exited])
        with pytest.raises(pipeplex.NotReady, match="web exited with code 4 before it was ready"):
            plex.spawn("web", ["sh", "-c", "echo first attempt; exit 4"], ready="READY")
        assert "web" not in plex.members
        web = plex.spawn("web", ["sh", "-c", "echo READY; exec cat"], ready="READY")
        assert seen == [("Started", "web"), ("Exited", "web"), ("Started", "web")]
        assert plex["web"] is web and web.running
        web.sendline("second")
        assert web.expect(["first attempt", "second"]) == 1
        assert "first attempt" not in web.before
        (run_dir / "web.in").write_text("through the pipe\n")  # the pipe stays for the name
        web.expect("through the pipe")

        with pytest.raises(pipeplex.PipeplexError,
                           match=rf"'web' already exists and is still running \(pid {web.pid}\)"):
            plex.spawn("web", "cat")
        assert plex["web"] is web and web.running

        with pytest.raises(pipeplex.NotReady, match=r"slow was not ready after 0\.2 s"):
            plex.spawn("slow", "cat", ready="never shown", ready_timeout=0.2)
        assert plex.spawn("slow", ["sh", "-c", "echo up; exec cat"], ready="up").running

        job = plex.spawn("job", ["echo", "one"])
        assert job.wait() == 0
        again = plex.spawn("job", ["echo", "two"])
        assert again.expect(["one", "two"]) == 1
        assert again.wait() == 0 and plex["job"] is again


def test_a_second_failure_of_a_name_shows_only_its_own_output() -> None:
    """NotReady carries the recent output of the member that failed, not of an earlier
    member of the same name."""
    with Plex() as plex:
        with pytest.raises(pipeplex.NotReady):
            plex.spawn("web", ["sh", "-c", "echo first attempt; exit 4"], ready="READY")
        with pytest.raises(pipeplex.NotReady) as info:
            plex.spawn("web", ["sh", "-c", "echo second attempt; exit 5"], ready="READY")
    assert "second attempt" in info.value.recent
    assert "first attempt" not in info.value.recent


def test_a_failed_spawn_leaves_nothing_of_its_member_behind() -> None:
    """What an unready member left in its process group is stopped before spawn raises:
    a worker that would hold its port cannot spoil the next try."""
    pids: list[int] = []
    with Plex(grace=2.0) as plex:
        plex.bus.subscribe(lambda e: pids.append(e.pid), [pipeplex.Started])
        with pytest.raises(pipeplex.NotReady, match="exited with code 3 before it was ready"):
            plex.spawn("web", ["sh", "-c", "sleep 60 & exit 3"], ready="READY")
        assert live_in_group(pids[0]) == []  # (a zombie its new parent did not reap is gone)


def test_spawn_checks_its_ready_options() -> None:
    """A bad ready pattern or ready_timeout is a CastError, and nothing starts."""
    with Plex() as plex:
        for options, message in (({"ready": "(unclosed"}, "not a valid regular expression"),
                                 ({"ready_timeout": 0}, "ready_timeout must be a number of"),
                                 ({"ready_timeout": float("nan")}, "not nan"),
                                 ({"ready_timeout": -1}, "not -1")):
            with pytest.raises(pipeplex.CastError, match=message):
                plex.spawn("x", "cat", **{"ready": "up", **options})
        assert not plex.members
        assert plex.spawn("x", ["sh", "-c", "echo up; exec cat"], ready="up").running


def test_spawn_takes_a_compiled_ready_pattern_and_refuses_other_types() -> None:
    """A compiled pattern, as ``expect`` takes, with its flags; bytes or a number is a
    ValueError in the caller's code, and a ready_timeout without ready a CastError. Before,
    a compiled pattern or bytes broke the engine: every member was killed at once."""
    with Plex(grace=1) as plex:
        other = plex.spawn("other", "cat")
        up = plex.spawn("up", ["sh", "-c", "echo UP; exec cat"],
                        ready=re.compile("^up$", re.IGNORECASE | re.MULTILINE))
        assert up.running
        for ready in (b"up", re.compile(b"up"), 5):
            with pytest.raises(ValueError, match="ready is a regular expression"):
                plex.spawn("x", "cat", ready=ready)  # type: ignore[arg-type]
        with pytest.raises(pipeplex.CastError, match="ready_timeout is how long ready"):
            plex.spawn("x", "cat", ready_timeout=5)
        assert other.running and set(plex.members) == {"other", "up"}


def _chain(cast: Path, db: str) -> None:
    """client after api after db, declared in that order (the last one starts first)."""
    cast.write_text("[procs.client]\ncmd = 'cat'\nafter = ['api']\n"
                    "[procs.api]\ncmd = 'cat'\nafter = ['db']\n"
                    f"[procs.db]\ncmd = {json.dumps(['sh', '-c', db])}\nready = '^up$'\n")


def test_load_of_a_chain_whose_first_member_fails_raises_and_may_be_retried(
        tmp_path: Path) -> None:
    """Members waiting on one that did not get ready fail too (load raised nothing and hung
    when the one waited on was declared last); once all have ended, a load may try again,
    while one with a member still running is refused whole."""
    cast = tmp_path / "cast.toml"
    _chain(cast, "echo starting; exit 3")

    async def main() -> None:
        async with AsyncPlex(timeout=10) as plex:
            with pytest.raises(pipeplex.NotReady) as info:
                await asyncio.wait_for(plex.load(cast), 30)
            assert info.value.reason == ("client was not started: it waits for api, which "
                                         "waited for db, which exited with code 3 before it "
                                         "was ready")
            assert "starting" in info.value.recent  # db's output: the cause
            assert sorted(plex.members) == ["api", "client", "db"]
            assert not any(m.running for m in plex.members.values())

            _chain(cast, "echo up; exec cat")
            await asyncio.wait_for(plex.load(cast), 30)
            assert all(m.running for m in plex.members.values())
            client = plex["client"]
            with pytest.raises(pipeplex.PipeplexError, match="'client' already exists and is "
                               "still running"):
                await plex.load(cast)
            assert plex["client"] is client and client.running

    asyncio.run(main())


def test_a_failed_load_still_gives_the_members_it_started(tmp_path: Path) -> None:
    """Plex.load raising NotReady for one member: the others it started are plex[name]."""
    cast = tmp_path / "cast.toml"
    cast.write_text("[procs.db]\ncmd = \"sh -c 'exit 3'\"\nready = 'up'\n"
                    "[procs.cat]\ncmd = 'cat'\n")
    with Plex() as plex:
        with pytest.raises(pipeplex.NotReady, match="db exited with code 3"):
            plex.load(cast)
        cat = plex["cat"]
        cat.sendline("still here")
        cat.expect("still here")


def test_a_reused_name_does_not_expect_what_the_old_members_leftover_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old member's leftover still holds its output and wrote a line nobody read yet:
    that line is the old member's, out before the new member's expectations begin."""
    from pipeplex.participants import _output

    monkeypatch.setattr(_output, "DRAIN_GRACE", 0.0)  # its output is held at once
    gate, done = tmp_path / "gate", tmp_path / "done"
    os.mkfifo(gate)
    os.mkfifo(done)
    old = (f"setsid sh -c 'read x < {gate}; echo MARK-FROM-OLD; echo . > {done}' & "
           "echo old-member")

    async def scenario() -> str:
        async with AsyncPlex(timeout=30) as plex:
            first = await plex.spawn("w", ["sh", "-c", old], pty=False)
            await first.expect("old-member")
            await first.wait()  # it exited; its leftover holds the output
            slow = object()
            plex.bus.pause(slow)  # nothing is read: the leftover's line waits in the pipe
            told = os.open(done, os.O_RDONLY | os.O_NONBLOCK)
            loop = asyncio.get_running_loop()
            written: asyncio.Future[None] = loop.create_future()
            loop.add_reader(told, lambda: written.done() or written.set_result(None))
            await asyncio.wait_for(asyncio.to_thread(gate.write_text, "go\n"), 30)
            await asyncio.wait_for(written, 30)
            loop.remove_reader(told)
            os.close(told)
            second = await plex.spawn("w", ["sh", "-c", "echo new-member; exec sleep 60"])
            plex.bus.resume(slow)
            await second.expect("new-member")
            return second.before

    assert "MARK-FROM-OLD" not in asyncio.run(scenario())


def test_a_member_found_not_ready_is_never_announced_ready(tmp_path: Path) -> None:
    """Its ready line comes while it is being stopped for its timeout: no Ready event, and
    what the line would capture is not taken."""
    late = [sys.executable, "-c",
            "import sys, time; sys.stdin.read(); print('READY port=4242', flush=True); "
            "import signal; signal.pause()"]

    async def scenario() -> tuple[list[str], dict[str, str]]:
        async with AsyncPlex(timeout=30) as plex:
            readies: list[str] = []
            plex.bus.subscribe(lambda e: readies.append(e.name), [pipeplex.Ready])
            with pytest.raises(pipeplex.NotReady, match=r"w was not ready after 0\.3 s"):
                await plex.spawn("w", late, ready=r"READY port=(?P<port>\d+)",
                                 ready_timeout=0.3)
            return readies, dict(plex.engine.variables)

    readies, variables = asyncio.run(scenario())
    assert readies == [] and "port" not in variables


def test_a_name_used_again_first_stops_what_the_ended_member_left(tmp_path: Path) -> None:
    """As before a restart: the ended member's leftovers are stopped (and it is said)
    before the new member of that name starts."""
    pid_file = tmp_path / "left"

    async def scenario() -> tuple[list[str], int]:
        async with AsyncPlex(timeout=30) as plex:
            notes: list[str] = []
            plex.bus.subscribe(lambda e: e.name == "w" and notes.append(e.text), [pipeplex.Note])
            first = await plex.spawn(
                "w", ["sh", "-c", f"sleep 60 >/dev/null 2>&1 & echo $! > {pid_file}; echo up"])
            await first.expect("up")
            await first.wait()
            left = int(pid_file.read_text())
            second = await plex.spawn("w", ["sh", "-c", "echo new; exec sleep 60"])
            await second.expect("new")
            return notes, left

    notes, left = asyncio.run(scenario())
    assert "left processes in its process group; sent them SIGTERM" in notes, notes
    try:  # gone, or a zombie its new parent has not reaped yet
        with open(f"/proc/{left}/stat", "rb") as f:
            assert f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except OSError:  # ENOENT at open, or ESRCH when reaped between open and read
        pass


def test_a_member_that_waited_for_a_failed_one_names_it_after_the_name_is_reused(
    tmp_path: Path,
) -> None:
    """y waited for x, which was not ready; x is spawned again, fine: y's summary still
    says why it never started (the old x), not that the stop came first."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.x]\ncmd = "sleep 60"\nready = "never"\nready_timeout = 0.3\n'
                    '[procs.y]\ncmd = "sleep 60"\nafter = ["x"]\n')

    async def scenario() -> list[str]:
        notes: list[str] = []
        async with AsyncPlex(timeout=30) as plex:
            plex.bus.subscribe(lambda e: e.name == "y" and notes.append(e.text), [pipeplex.Note])
            with pytest.raises(pipeplex.NotReady):
                await plex.load(cast)
            await plex.spawn("x", ["sh", "-c", "echo again; exec sleep 60"])
        return notes

    notes = asyncio.run(scenario())
    assert "summary: never started (waited for x, which was not ready after 0.3 s)" in notes, notes


def test_a_reused_names_old_leftovers_are_stopped_before_their_output_is_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ended member's leftover says goodbye on SIGTERM: that line is shown (under the
    name, before the new member starts), as when a restart stops leftovers."""
    from pipeplex.participants import _output

    monkeypatch.setattr(_output, "DRAIN_GRACE", 0.0)  # its output is held at once
    leftover = ("sh -c 'trap \"echo bye-from-leftover; exit 0\" TERM; echo armed; "
                "while :; do sleep 0.1; done' & echo up")

    async def scenario() -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        async with AsyncPlex(timeout=30) as plex:
            plex.bus.subscribe(
                lambda e: e.name == "w" and seen.append(
                    (type(e).__name__, e.data.decode() if isinstance(e, pipeplex.Output) else "")),
                [pipeplex.Output, pipeplex.Started])
            armed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            plex.bus.subscribe(lambda e: b"armed" in e.data and not armed.done()
                               and armed.set_result(None), [pipeplex.Output])
            first = await plex.spawn("w", ["sh", "-c", leftover], pty=False)
            await first.wait()
            await asyncio.wait_for(armed, 30)  # its trap is set
            await plex.spawn("w", ["sh", "-c", "echo new; exec sleep 60"])
        return seen

    seen = asyncio.run(scenario())
    bye = seen.index(("Output", "bye-from-leftover\n"))
    assert bye < [i for i, (kind, _) in enumerate(seen) if kind == "Started"][1], seen


def test_two_spawns_reusing_a_name_at_once_wait_for_the_same_leftovers(tmp_path: Path) -> None:
    """Both wait for the one stop of the ended member's leftovers (its last words shown);
    then one gets the name and the other is told it is taken."""
    leftover = ("sh -c 'trap \"sleep 0.3; echo last-words; exit 0\" TERM; echo armed; "
                "while :; do sleep 0.1; done' & echo up")

    async def scenario() -> tuple[list[tuple[str, str]], list[object]]:
        seen: list[tuple[str, str]] = []
        async with AsyncPlex(timeout=30) as plex:
            armed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            plex.bus.subscribe(lambda e: b"armed" in e.data and not armed.done()
                               and armed.set_result(None), [pipeplex.Output])
            plex.bus.subscribe(
                lambda e: e.name == "a" and seen.append(
                    (type(e).__name__, e.data.decode() if isinstance(e, pipeplex.Output) else "")),
                [pipeplex.Output, pipeplex.Started])
            first = await plex.spawn("a", ["sh", "-c", leftover], pty=False)
            await first.wait()
            await asyncio.wait_for(armed, 30)
            results = await asyncio.gather(
                plex.spawn("a", ["sh", "-c", "echo new; exec sleep 60"]),
                plex.spawn("a", ["sh", "-c", "echo newer; exec sleep 60"]),
                return_exceptions=True)
        return seen, list(results)

    seen, results = asyncio.run(scenario())
    assert sum(isinstance(r, pipeplex.PipeplexError) for r in results) == 1, results
    last = seen.index(("Output", "last-words\n"))
    starts = [i for i, (kind, _) in enumerate(seen) if kind == "Started"]
    assert len(starts) == 2 and last < starts[1], seen


def test_a_new_member_of_a_reused_name_is_not_blamed_for_the_old_ones_failure(
    tmp_path: Path,
) -> None:
    """b waited for the first a (not ready); c waits for the second a when the plex closes:
    each summary tells its own a."""
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    first.write_text('[procs.a]\ncmd = "sleep 60"\nready = "never"\nready_timeout = 0.3\n'
                     '[procs.b]\ncmd = "sleep 60"\nafter = ["a"]\n')
    second.write_text('[procs.a]\ncmd = "sleep 60"\nready = "never"\nready_timeout = 30\n'
                      '[procs.c]\ncmd = "sleep 60"\nafter = ["a"]\n')

    async def scenario() -> dict[str, str]:
        summaries: dict[str, str] = {}
        async with AsyncPlex(timeout=30) as plex:
            plex.bus.subscribe(lambda e: e.text.startswith("summary: ") and summaries.update(
                {e.name: e.text}), [pipeplex.Note])
            with pytest.raises(pipeplex.NotReady):
                await plex.load(first)
            loading = asyncio.ensure_future(plex.load(second))
            started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            plex.bus.subscribe(lambda e: e.name == "a" and not started.done()
                               and started.set_result(None), [pipeplex.Started])
            await asyncio.wait_for(started, 30)
        with pytest.raises(pipeplex.PipeplexError):
            await loading
        return summaries

    summaries = asyncio.run(scenario())
    assert summaries["b"] == "summary: never started (waited for a, which was not ready after " \
        "0.3 s)", summaries
    assert summaries["c"] == "summary: never started (waited for a, which was not ready when " \
        "the cast stopped)", summaries


def test_two_spawns_of_one_new_name_at_once_start_one_member() -> None:
    """The second is refused at once: the first member, not yet running, has the name."""
    async def scenario() -> tuple[list[object], dict[str, int | None]]:
        async with AsyncPlex() as plex:
            results = await asyncio.gather(plex.spawn("dup", "cat"), plex.spawn("dup", "cat"),
                                           return_exceptions=True)
            return results, {name: m.pid for name, m in plex.members.items()}

    results, members = asyncio.run(asyncio.wait_for(scenario(), 60))
    spawned = [r for r in results if isinstance(r, pipeplex.AsyncMember)]
    refused = [r for r in results if isinstance(r, pipeplex.PipeplexError)]
    assert len(spawned) == 1 and len(refused) == 1, results
    assert "a member named 'dup' already exists" in str(refused[0])
    assert members == {"dup": spawned[0].pid}


IGNORE_TERM = ("import signal\n"
               "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
               "print('up', flush=True)\n"
               "signal.pause()\n")


def test_a_member_removed_while_the_plex_closes_is_not_looked_for_again() -> None:
    """aclose() stops the latest spawn first; a remove() of an earlier member ends during
    that grace. The close then came to the removed name: a KeyError out of aclose(), and
    the members after it SIGKILLed by the fallback without their grace."""
    async def scenario() -> None:
        plex = AsyncPlex(grace=0.5)
        await plex.start()
        await plex.spawn("a", "cat")
        stubborn = await plex.spawn("b", [PY, "-c", IGNORE_TERM], ready="^up$")
        signalled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        plex.bus.subscribe(lambda e: isinstance(e, pipeplex.Note) and e.name == "b"
                           and "sent SIGTERM" in e.text and not signalled.done()
                           and signalled.set_result(None))
        closing = asyncio.ensure_future(plex.aclose())
        await asyncio.wait_for(signalled, 30)  # b's grace has begun
        await asyncio.wait_for(plex.remove("a"), 30)  # (cat ended at the stop's EOF)
        await asyncio.wait_for(closing, 30)
        assert stubborn.returncode == -signal.SIGKILL

    asyncio.run(scenario())


def test_a_restart_whose_caller_gives_up_still_ends_the_old_run() -> None:
    """A timeout around restart() during the grace: the escalation goes on (SIGKILL after
    the grace) and the new run starts; the member is not left "stopping" for ever."""
    async def scenario() -> tuple[int | None, int, list[str]]:
        async with AsyncPlex(grace=0.5) as plex:
            member = await plex.spawn("s", [PY, "-c", IGNORE_TERM], ready="^up$")
            old = member.pid
            seen: asyncio.Queue[str] = asyncio.Queue()
            plex.bus.subscribe(lambda e: isinstance(e, pipeplex.Note) and seen.put_nowait(e.text))
            again: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            plex.bus.subscribe(lambda e: isinstance(e, pipeplex.Started) and e.pid != old
                               and not again.done() and again.set_result(e.pid))
            restart = asyncio.ensure_future(plex.engine.restart("s"))
            while "sent SIGTERM" not in await asyncio.wait_for(seen.get(), 30):
                pass
            restart.cancel()
            await asyncio.gather(restart, return_exceptions=True)
            texts = []
            while "sent SIGKILL" not in (text := await asyncio.wait_for(seen.get(), 30)):
                texts.append(text)
            new = await asyncio.wait_for(again, 30)
            return old, new, texts

    old, new, _ = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert new is not None and new != old


def test_a_start_cancelled_before_the_cast_began_leaves_nothing_started() -> None:
    """Nothing is said of it either: the loop's handler got an AssertionError from inside
    pipeplex (the cancelled run's end, taken for a run its loop's end cancelled)."""
    told: list[dict[str, object]] = []

    async def scenario() -> int | None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: told.append(context))
        made: list[asyncio.Task[object]] = []

        def task(loop: asyncio.AbstractEventLoop,
                 coro: Coroutine[Any, Any, object]) -> asyncio.Task[object]:
            made.append(asyncio.Task(coro, loop=loop))
            return made[-1]

        loop.set_task_factory(task)
        plex = AsyncPlex()
        start = asyncio.ensure_future(plex.start())
        # Cancelled once it runs to its first wait, before the cast began.
        loop.call_soon(start.cancel)
        await asyncio.gather(start, return_exceptions=True)
        assert start.cancelled()
        # Every task it made has ended, and what their ends call has run (called before
        # this wakes: added to them first).
        await asyncio.gather(*made, return_exceptions=True)
        loop.set_task_factory(None)
        assert told == []
        async with plex:  # as if never started: it starts now
            member = await plex.spawn("cat", "cat")
            return member.pid

    assert asyncio.run(asyncio.wait_for(scenario(), 60)) is not None
    assert told == []


CLOSE_AND_SAY = """
try:
    plex.close()
except KeyboardInterrupt:
    print("interrupted")
print("loop closed" if plex._loop is None else "loop open")
try:
    os.kill(pid, 0)
    print("member alive")
except ProcessLookupError:
    print("member gone")
"""
"""What a script of a plex and its member ``pid`` says as it closes the plex."""

CLOSE_UNDER_CTRL_C = """
import os, signal, sys, threading
from pipeplex import Note, Plex
IGNORE_TERM = sys.argv[1]
if sys.argv[2] == "own-handler":  # a handler of the program's own, which raises
    def own(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGINT, own)
plex = Plex(grace=600)
plex.start()
pid = plex.spawn("s", [sys.executable, "-c", IGNORE_TERM], ready="^up$").pid
termed = threading.Event()
plex.bus.subscribe(lambda e: isinstance(e, Note) and "sent SIGTERM" in e.text and termed.set())

def ctrl_c_three_times():
    termed.wait(30)
    for _ in range(3):
        os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=ctrl_c_three_times, daemon=True).start()
""" + CLOSE_AND_SAY + """
plex.close()  # (a second close() does nothing)
print("closed again")
"""


@pytest.mark.parametrize("handler", ["python's", "own-handler"])
def test_closing_ends_everything_through_several_ctrl_cs(handler: str) -> None:
    """Ctrl-C three times at once while close() waits out a grace: the grace is skipped
    (SIGKILL), and close() still ends the member, its thread and loop, then raises
    KeyboardInterrupt; a second close() does nothing. Also when the program has a SIGINT
    handler of its own that raises."""
    result = subprocess.run([PY, "-c", CLOSE_UNDER_CTRL_C, IGNORE_TERM, handler],
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.split("\n")[:4] == ["interrupted", "loop closed", "member gone",
                                             "closed again"], result


CTRL_C_WHILE_ANOTHER_CLOSES = """
import os, signal, sys, threading
from pipeplex import Note, Plex
plex = Plex(grace=600)
plex.start()
pid = plex.spawn("s", [sys.executable, "-c", sys.argv[1]], ready="^up$").pid
termed = threading.Event()
plex.bus.subscribe(lambda e: isinstance(e, Note) and "sent SIGTERM" in e.text and termed.set())

class Waited:  # the plex's lock, saying when the main thread is about to wait for it
    def __init__(self, lock):
        self.lock, self.waiting = lock, threading.Event()
    def acquire(self):
        if threading.current_thread() is threading.main_thread():
            self.waiting.set()  # (a Ctrl-C from here on lands in close())
        return self.lock.acquire()
    def release(self):
        self.lock.release()
    def __enter__(self):
        return self.lock.__enter__()
    def __exit__(self, *exc):
        return self.lock.__exit__(*exc)

plex._lifecycle = lock = Waited(plex._lifecycle)
watchdog = threading.Thread(target=plex.close)  # (its close has the turn, waits the grace)
watchdog.start()
termed.wait(30)

def ctrl_c():
    lock.waiting.wait(30)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=ctrl_c, daemon=True).start()
""" + CLOSE_AND_SAY


def test_a_ctrl_c_while_close_waits_for_another_threads_close_skips_its_graces() -> None:
    """A watchdog thread closes the plex, and the main thread's close() waits its turn: a
    Ctrl-C then skips what is left of the graces, as in the close itself, and is raised
    once everything has ended (it came out at once, the grace ran on, and the process
    took the whole of it to end)."""
    result = subprocess.run([PY, "-c", CTRL_C_WHILE_ANOTHER_CLOSES, IGNORE_TERM],
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.split("\n")[:3] == ["interrupted", "loop closed", "member gone"], result


def test_a_sink_that_closes_the_plex_as_it_closes_is_told_it_would_wait_for_itself() -> None:
    """A sink runs in the plex's thread: its close() raises RuntimeError, as every call that
    waits does there, rather than wait for the lock the closing thread holds (for ever)."""
    said: list[str] = []

    def sink(event: pipeplex.Exited) -> None:
        try:
            plex.close()
        except RuntimeError as exc:
            said.append(str(exc))

    plex = Plex(grace=1.0)
    with plex:
        plex.spawn("a", "sleep 60")
        plex.bus.subscribe(sink, [pipeplex.Exited])
    assert said and said[0].startswith("a Plex call that waits was made from the plex's own "
                                       "thread"), said


CTRL_C_AS_CLOSE_BEGINS = """
import os, signal, sys
from pipeplex import Plex
plex = Plex(grace=600)
plex.start()
pid = plex.spawn("s", [sys.executable, "-c", sys.argv[1]], ready="^up$").pid
real = signal.getsignal

def ctrl_c_now(sig):  # close() asks for SIGINT's handler before it puts its own in
    signal.getsignal = real
    os.kill(os.getpid(), signal.SIGINT)  # (a real one: Python raises it on return)
    return real(sig)

signal.getsignal = ctrl_c_now
""" + CLOSE_AND_SAY


def test_a_ctrl_c_as_close_begins_still_ends_everything() -> None:
    """A Ctrl-C that lands in close() before its own SIGINT handler is in counts as one
    that comes after: the grace is skipped, and the member, thread and loop still end
    (it used to leave them all running)."""
    result = subprocess.run([PY, "-c", CTRL_C_AS_CLOSE_BEGINS, IGNORE_TERM],
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.split("\n")[:3] == ["interrupted", "loop closed", "member gone"], result


def test_a_cancelled_aclose_skips_the_grace_but_not_another_callers_wait() -> None:
    """One aclose() is cancelled during the grace of a member that ignores SIGTERM: it
    SIGKILLs everything, and a second aclose() waiting meanwhile returns normally."""
    async def scenario() -> tuple[bool, BaseException | None]:
        plex = AsyncPlex(grace=600)
        await plex.start()
        member = await plex.spawn("s", [PY, "-c", IGNORE_TERM], ready="^up$")
        seen: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        plex.bus.subscribe(lambda e: isinstance(e, pipeplex.Note) and "sent SIGTERM" in e.text
                           and not seen.done() and seen.set_result(None))
        first, second = asyncio.ensure_future(plex.aclose()), asyncio.ensure_future(plex.aclose())
        await asyncio.wait_for(seen, 30)
        first.cancel()
        (outcome,) = await asyncio.gather(first, return_exceptions=True)
        assert isinstance(outcome, asyncio.CancelledError)
        (other,) = await asyncio.wait_for(asyncio.gather(second, return_exceptions=True), 30)
        return member.returncode is not None, other

    ended, other = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert ended
    assert other is None


def test_a_cancelled_remove_skips_the_grace_and_still_lets_the_member_go() -> None:
    """A remove cancelled during the grace of a member that ignores SIGTERM (a timeout
    around it): SIGKILL to its group, as a cancelled aclose() does, and the member is let
    go before the cancellation goes on: its name is free at once, not held by a member
    stopped half way."""
    async def scenario() -> tuple[int | None, list[str], list[str]]:
        notes: list[str] = []
        async with AsyncPlex(grace=600) as plex:
            member = await plex.spawn("s", [PY, "-c", IGNORE_TERM], ready="^up$")
            termed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def heard(event: object) -> None:
                if isinstance(event, pipeplex.Note) and event.name == "s":
                    notes.append(event.text)
                    if "sent SIGTERM" in event.text and not termed.done():
                        termed.set_result(None)

            plex.bus.subscribe(heard)
            removing = asyncio.ensure_future(plex.remove("s"))
            await asyncio.wait_for(termed, 30)
            removing.cancel()
            (outcome,) = await asyncio.wait_for(
                asyncio.gather(removing, return_exceptions=True), 30)
            assert isinstance(outcome, asyncio.CancelledError)
            names, said = list(plex.members), list(notes)
            again = await plex.spawn("s", "cat")  # (the name is free)
            assert again is not member
            return member.returncode, names, said

    code, names, notes = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert code == -signal.SIGKILL
    assert names == []
    assert notes[-1] == "sent SIGKILL to its process group"


def test_a_load_whose_name_is_taken_while_it_waits_starts_nothing(tmp_path: Path) -> None:
    """load() waits for what a's previous member left to stop; meanwhile a spawn takes b.
    The whole file is refused, as if b had been taken before: a is not started either."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    leftover = ("import signal, sys\n"
                f"def bye(*_): open({str(gate)!r}).read(); sys.exit()\n"
                "signal.signal(signal.SIGTERM, bye)\n"
                "print('left', flush=True)\n"
                "signal.pause()\n")
    starter = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {leftover!r}])"
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.a]\ncmd = "cat"\n[procs.b]\ncmd = "cat"\n')

    async def scenario() -> tuple[BaseException | None, bool, list[str]]:
        async with AsyncPlex(grace=600) as plex:
            old = await plex.spawn("a", [PY, "-c", starter])
            await asyncio.wait_for(old.expect("^left$"), 30)
            await asyncio.wait_for(old.wait(), 30)
            swept: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            plex.bus.subscribe(lambda e: isinstance(e, pipeplex.Note) and "sent them SIGTERM"
                               in e.text and not swept.done() and swept.set_result(None))
            load = asyncio.ensure_future(plex.load(cast))
            await asyncio.wait_for(swept, 30)  # load waits for the leftover to go
            await plex.spawn("b", "cat")
            await asyncio.to_thread(gate.write_text, "go\n")  # the leftover goes
            (outcome,) = await asyncio.wait_for(asyncio.gather(load, return_exceptions=True),
                                                30)
            return outcome, plex.members["a"] is old, sorted(plex.members)

    outcome, a_is_old, names = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert isinstance(outcome, pipeplex.PipeplexError), outcome
    assert "'b' already exists" in str(outcome)
    assert names == ["a", "b"]
    assert a_is_old  # no new a was started


def test_a_password_sent_to_a_full_terminal_is_recorded_as_stars() -> None:
    """getpass turns the echo off in line mode: what is sent then is in no record."""
    asks = "import getpass; print('got', len(getpass.getpass('pw: ')))"
    with Plex(timeout=LONG) as plex:
        member = plex.spawn("m", [PY, "-c", asks], pty=True)
        member.expect("pw: ")
        member.sendline("hunter2")
        member.expect("got 7")
        member.wait()
        assert "hunter2" not in plex.transcript()
        assert "m > *******" in plex.transcript()


FORKING = """\
import os, signal
import pipeplex
plex = pipeplex.Plex(grace=1)
plex.start()
member = plex.spawn("m", ["sleep", "60"])
print("member", member.pid, flush=True)
reader, writer = os.pipe()
child = os.fork()
if child == 0:  # (as multiprocessing's fork start method, or a daemonising library)
    os.close(writer)
    signal.alarm(20)  # (a call that hangs ends here)
    for call in (lambda: member.sendline("hi"), lambda: plex.spawn("n", ["true"]),
                 lambda: member.expect("x")):
        try:
            call()
            print("child: no error", flush=True)
        except pipeplex.PipeplexError as exc:
            print("child:", exc, flush=True)
    plex.close()
    print("child: closed", flush=True)
    os.read(reader, 1)  # (until the parent is gone)
    os._exit(0)
os.close(reader)
os.waitpid(child, 0)
"""


def test_a_child_forked_while_a_plex_runs_cannot_use_it_nor_keep_its_members_alive() -> None:
    """In the child, each call says why it cannot be made (it hung for ever, or did nothing)
    and close() lets go; and the pipe to the guardian is not kept open by the child, so when
    the parent dies the members die with it, the child still running."""
    with subprocess.Popen([sys.executable, "-c", FORKING], stdout=subprocess.PIPE,
                          text=True) as parent:
        assert parent.stdout is not None
        try:
            member = int(parent.stdout.readline().removeprefix("member "))
            said = [parent.stdout.readline() for _ in range(4)]
            assert said[:3] == [f"child: this plex runs in process {parent.pid}, and this is a "
                                "child forked from it, where its thread does not run: start a "
                                "Plex of the child's own (or use multiprocessing's 'spawn' "
                                "start method)\n"] * 3, said
            assert said[3] == "child: closed\n"
            parent.kill()  # as by SIGKILL: its guardian stops the members
            pidfd = os.pidfd_open(member)
            try:
                assert select.select([pidfd], [], [], 30)[0], "the member outlived its plex"
            finally:
                os.close(pidfd)
        finally:
            parent.kill()


FORKED_STDIN = """\
import os
import pipeplex
reader, writer = os.pipe()
with pipeplex.Plex(grace=1) as plex:
    members = [plex.spawn(f"cat{i}", "cat", pty=mode) for i, mode in enumerate(("stdout", False))]
    child = os.fork()
    if child == 0:  # (as multiprocessing's fork start method: it runs on)
        os.close(writer)
        os.read(reader, 1)  # (until the parent is done)
        os._exit(0)
    for member in members:
        member.close_stdin()
        try:
            print(member.name, member.wait(timeout=10), flush=True)
        except TimeoutError as exc:
            print(member.name, exc, flush=True)
    os.close(writer)
    os.waitpid(child, 0)
"""


def test_a_child_forked_while_a_plex_runs_does_not_hold_its_members_stdin_open() -> None:
    """The child's copy of a member's stdin pipe kept the EOF of close_stdin() from the
    member for as long as the child lived: cat never ended."""
    result = subprocess.run([sys.executable, "-c", FORKED_STDIN], capture_output=True,
                            text=True, timeout=LONG)
    assert result.stdout.splitlines() == ["cat0 0", "cat1 0"], result


def test_closing_a_plex_gives_every_member_its_eof_at_once() -> None:
    """The members' graces at EOF run together, not one member's after another's (each
    member spawned is a wave of its own: a hundred took 30 s to close); the SIGTERMs still
    go in the reverse order of the spawns."""
    notes: list[tuple[str | None, str]] = []
    with Plex(grace=5) as plex:
        plex.bus.subscribe(lambda e: notes.append((e.name, e.text)), [pipeplex.Note])
        for name in ("first", "second", "third"):
            plex.spawn(name, ["sleep", "60"])
        plex.spawn("reader", "cat")  # (it ends at EOF)
    # (How long each was said to run on is 0.3 s, or a little more when a turn came late.)
    stops = [(name, re.sub(r"running [\d.]+ s", "running N s", text)) for name, text in notes
             if "stdin" in text or "sent SIGTERM" in text]
    assert stops == [
        ("reader", "closed its stdin"), ("third", "closed its stdin"),
        ("second", "closed its stdin"), ("first", "closed its stdin"),
        *((name, "still running N s after its stdin closed; sent SIGTERM to its process "
                 "group") for name in ("third", "second", "first")),
    ], stops


FLAKY = ("[procs.flaky]\ncmd = \"sh -c 'echo run $$; exit 3'\"\non_exit = 'restart'\n"
         "max_restarts = 3\n")
"""A member that ends at once, and its policy restarts: four runs, each saying its pid."""


def test_expect_waits_through_a_restart_as_a_scenario_step_does(tmp_path: Path) -> None:
    """An exit that its policy follows with a next run is not the end: expect waits for the
    next run's output (it raised UnexpectedExit at the first exit), in both APIs."""
    cast = tmp_path / "flaky.toml"
    cast.write_text(FLAKY)
    with Plex(grace=1, timeout=30) as plex:
        plex.load(cast)
        flaky = plex["flaky"]
        runs = {flaky.expect(r"^run (\d+)$")[1] for _ in range(4)}
        assert len(runs) == 4

    async def main() -> set[str]:
        async with AsyncPlex(grace=1, timeout=30) as aplex:
            await aplex.spawn("other", "cat")  # (before: the cast stops once flaky gives up)
            await aplex.load(cast)
            member = aplex["flaky"]
            found = {(await member.expect(r"^run (\d+)$"))[1] for _ in range(3)}
            matched, match = await aplex.expect_any({"flaky": r"^run (\d+)$", "other": "x"})
            assert matched is member and match is not None
            return found | {match[1]}

    assert len(asyncio.run(main())) == 4


GIVES_UP = ("[procs.flaky]\ncmd = \"\"\"sh -c 'n=$(cat runs 2>/dev/null || echo 0); "
            "echo $((n + 1)) > runs; [ $n -lt 2 ] && exit 3; echo last; read x; exit 3'\"\"\"\n"
            "on_exit = 'restart'\nmax_restarts = 2\n")
"""Three runs: two that end at once, and a last one that ends (and is given up on) once it
reads a line."""


def test_an_expect_through_restarts_ends_when_the_member_is_given_up_on(
        tmp_path: Path) -> None:
    """An expectation that waits through a member's restarts ends with UnexpectedExit when
    its policy gives up on it (it used to wait out its timeout), and says it gave up. (The
    synchronous API's wait in its own thread: tests/unit/test_matcher_threads.py.)"""
    cast = tmp_path / "flaky.toml"
    cast.write_text(GIVES_UP.replace("cmd =", f"cwd = {json.dumps(str(tmp_path))}\ncmd ="))

    async def main() -> int:
        async with AsyncPlex(grace=1, timeout=30) as aplex:
            await aplex.spawn("other", "cat")  # (the cast stops once flaky gives up)
            await aplex.load(cast)
            flaky = aplex["flaky"]
            await flaky.expect("^last$")  # (through two restarts)
            waiting = asyncio.ensure_future(flaky.expect("never"))
            # Sent once the expectation waits (the loop runs its first step before this),
            # while the member still has a next run.
            asyncio.get_running_loop().call_soon(flaky.sendline, "end")
            with pytest.raises(pipeplex.UnexpectedExit) as caught:
                await waiting
            # Its exit alone reads as the first of a crash: the message says it was the last.
            assert str(caught.value).startswith(
                "flaky exited with code 3 (no restart followed: it gave up after 2 restarts, "
                "max_restarts = 2)"), caught.value
            return caught.value.returncode

    assert asyncio.run(asyncio.wait_for(main(), 60)) == 3

    (tmp_path / "runs").unlink()

    async def any_of_them() -> int:
        async with AsyncPlex(grace=1, timeout=30) as aplex:
            other = await aplex.spawn("other", "cat")
            await aplex.load(cast)
            await aplex["flaky"].expect("^last$")
            waiting = asyncio.ensure_future(
                aplex.expect_any({"flaky": "never", "other": "never either"}))
            asyncio.get_running_loop().call_soon(aplex["flaky"].sendline, "end")  # (as above)
            with pytest.raises(pipeplex.UnexpectedExit) as caught:
                await waiting
            assert caught.value.name == "flaky" and other.returncode is None
            assert "(no restart followed: it gave up after 2 restarts" in str(caught.value)
            return caught.value.returncode

    assert asyncio.run(asyncio.wait_for(any_of_them(), 60)) == 3


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_an_answer_of_bash_on_a_full_terminal_matches_at_its_line_start() -> None:
    """bash writes its answer after a carriage return (once bracketed paste's escape is out),
    which moves nothing on the screen: ^42$ matches, as on the screen."""
    with Plex(grace=1, timeout=30) as plex:
        bash = plex.spawn("bash", ["bash", "--norc", "--noprofile", "-i"], pty=True,
                          env={"PS1": "PROMPT$ ", "TERM": "xterm"})
        bash.expect(r"PROMPT\$ ")
        bash.sendline("echo $((6*7))")
        assert bash.expect(r"^42$")[0] == "42"


def test_arguments_of_the_wrong_type_are_named_in_the_error(tmp_path: Path) -> None:
    """Not a TypeError from deep inside (``expected str, bytes or os.PathLike object``, or
    ``'list' object has no attribute 'items'``): a ValueError, or the CastError of a bad
    environment, that names the argument and what it takes."""
    with pytest.raises(ValueError, match="run_dir is a path"):
        Plex(run_dir=123)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="transcript is a path"):
        AsyncPlex(transcript=["t.jsonl"])  # type: ignore[arg-type]
    with Plex(grace=1) as plex:
        with pytest.raises(ValueError, match="a member's name is a str, not 5"):
            plex.spawn(5, ["true"])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="cwd is a path"):
            plex.spawn("a", ["true"], cwd=5)  # type: ignore[arg-type]
        with pytest.raises(pipeplex.CastError, match="not 'X': 1"):
            plex.spawn("a", ["true"], env={"X": 1})  # type: ignore[dict-item]
        with pytest.raises(ValueError, match="load\\(\\)'s path is a path"):
            plex.load(5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="a mapping of member names to patterns"):
            plex.expect_any([("a", "x")])  # type: ignore[arg-type]
        assert plex.spawn("a", ["true"], cwd=tmp_path).pid


AFTER_USR1 = ("import signal\n"
              "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])\n"
              "print('waiting', flush=True)\n"
              "signal.sigwait([signal.SIGUSR1])\n"
              "print('late', flush=True)\n")
"""Says ``late`` once it gets SIGUSR1."""


def test_expect_any_goes_on_when_a_member_ends_with_0() -> None:
    """One that ended with 0 (its job done) leaves the others to match, as a scenario's
    expect does (it raised UnexpectedExit at once); an error still ends the wait."""

    async def main() -> None:
        async with AsyncPlex(grace=1, timeout=30) as plex:
            done = await plex.spawn("done", ["true"])
            assert await done.wait() == 0
            late = await plex.spawn("late", [PY, "-c", AFTER_USR1])
            await late.expect("waiting")
            waiting = asyncio.ensure_future(plex.expect_any({"done": "x", "late": "late"}))
            late.signal("USR1")
            member, match = await waiting
            assert member is late and match is not None
            failed = await plex.spawn("failed", ["sh", "-c", "exit 3"])
            assert await failed.wait() == 3
            with pytest.raises(UnexpectedExit, match="failed exited with code 3"):
                await plex.expect_any({"failed": "x", "late": "never"})

    asyncio.run(main())


def test_captured_values_are_read_from_python_and_used_by_a_later_spawn() -> None:
    """A test reads the port a server's ready line captured, rather than expecting that
    line again; a later spawn's command uses it as {port}."""
    server = "import sys; print('listening on', 41000 + 234, flush=True); sys.stdin.read()"
    with Plex(timeout=LONG) as plex:
        plex.spawn("server", [PY, "-c", server], ready=r"listening on (?P<port>\d+)")
        assert plex.variables == {"port": "41234"}
        plex.variables["port"] = "1"  # (a copy: the plex's own stay)
        client = plex.spawn("client", "echo port={port}")
        client.expect("^port=41234$")


def test_a_spawn_using_a_value_not_captured_yet_is_refused(tmp_path: Path) -> None:
    """{port}, which a server spawned at the same time captures once ready, or which the
    member captures itself, has no value yet: the member would run with the text {port}
    (a client told to connect to port '{port}'), which a cast file refuses too."""
    server = ("import sys; sys.stdin.readline(); print('listening on', 41000 + 234, "
              "flush=True); sys.stdin.read()")
    cast = tmp_path / "client.toml"
    cast.write_text('[procs.client]\ncmd = "echo port={port}"\n')

    async def main() -> None:
        async with AsyncPlex(timeout=LONG) as plex:
            started = asyncio.Event()
            plex.bus.subscribe(lambda event: started.set(), [pipeplex.Started])
            starting = asyncio.ensure_future(
                plex.spawn("server", [PY, "-c", server], ready=r"listening on (?P<port>\d+)"))
            await asyncio.wait_for(started.wait(), LONG)  # (running, not ready: it waits)
            with pytest.raises(pipeplex.CastError, match=re.escape(
                    "spawn(): client: uses {port}, which server captures once it is ready, "
                    "and it has not been ready yet: start client once server's spawn has "
                    "returned")):
                await plex.spawn("client", "echo port={port}")
            with pytest.raises(pipeplex.CastError,
                               match=re.escape("client: uses {port}, which server ")):
                await plex.load(cast)
            assert "client" not in plex.members
            with pytest.raises(pipeplex.CastError, match=re.escape(
                    "spawn(): self: uses {own}, which it captures itself; a captured value is "
                    "known once its member is ready, so only members spawned after it can use "
                    "it")):
                await plex.spawn("self", "echo {own} port=1", ready=r"port=(?P<own>\d+)")
            plex["server"].sendline()
            await starting
            client = await plex.spawn("client", "echo port={port}")
            await client.expect("^port=41234$")

    asyncio.run(main())


def test_a_second_member_capturing_a_name_is_refused(tmp_path: Path) -> None:
    """One member only captures a name, as in a cast file: a spawn (or a loaded file) whose
    ready captures {port} as well would give a restarted member that starts after the first
    one the other's port. Once the first is removed, the name is free."""
    cast = tmp_path / "c.toml"
    cast.write_text("[procs.p1]\ncmd = \"sh -c 'echo port 1111; exec cat'\"\n"
                    "ready = 'port (?P<port>\\d+)'\n"
                    "[procs.c1]\ncmd = \"sh -c 'echo c1 {port}; exec cat'\"\nafter = ['p1']\n")
    other = tmp_path / "other.toml"
    other.write_text("[procs.p2]\ncmd = \"sh -c 'echo port 2222; exec cat'\"\n"
                     "ready = 'port (?P<port>\\d+)'\n")
    with Plex(grace=1, timeout=LONG) as plex:
        plex.load(cast)
        refused = re.escape("s: its ready captures {port}, which p1 captures already; one "
                            "member only may capture a name: give the group a name of its own "
                            "(?P<s_port>...), or remove p1 first")
        with pytest.raises(pipeplex.CastError, match=refused):
            plex.spawn("s", ["sh", "-c", "echo port 3333; exec cat"], ready=r"port (?P<port>\d+)")
        with pytest.raises(pipeplex.CastError, match=r"p2: its ready captures \{port\}"):
            plex.load(other)
        assert "s" not in plex.members and "p2" not in plex.members
        plex["c1"].restart()
        assert plex["c1"].expect(r"c1 (\d+)")[1] == plex["c1"].expect(r"c1 (\d+)")[1] == "1111"
        plex.remove("c1")
        plex.remove("p1")
        assert plex.spawn("s", ["sh", "-c", "echo port 3333; exec cat"],
                          ready=r"port (?P<port>\d+)").running


def test_a_later_spawn_may_name_its_program_by_a_captured_value(tmp_path: Path) -> None:
    """cmd = "{prog} hello", prog captured by a member spawned before: the check of the
    program, made on a cast of that one member, took the braces for text no member
    fills and refused '{prog}' as not found."""
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\necho tool says \"$1\"\n")
    tool.chmod(0o755)
    with Plex(timeout=LONG) as plex:
        plex.spawn("server", ["sh", "-c", f"echo prog={tool}; exec cat"],
                   ready=r"prog=(?P<prog>\S+)")
        client = plex.spawn("client", "{prog} hello")
        client.expect("^tool says hello$")


SIGCHLD_LATER = """\
import signal, warnings
import pipeplex
warnings.simplefilter("always")
with pipeplex.Plex(timeout=30) as plex:
    before = plex.spawn("before", ["sh", "-c", "read x; exit 3"])
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # (set once the plex runs)
    before.sendline("go")
    print("before", before.wait(), flush=True)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # (and again, before a spawn)
    after = plex.spawn("after", ["sh", "-c", "exit 4"])
    print("after", after.wait(), flush=True)
"""


def test_sigchld_ignored_once_the_plex_runs_is_said_and_set_back() -> None:
    """A program that ignores SIGCHLD after its plex began: its members' exits read 0, with
    no word (it was looked at only as the plex began). A spawn sets it back, with the
    warning the start gives; an exit that was lost to it says so."""
    result = subprocess.run([sys.executable, "-c", SIGCHLD_LATER], capture_output=True,
                            text=True, timeout=LONG)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["before 0", "after 4"], result
    assert ("the exit status of before is lost: SIGCHLD was ignored in this process as it "
            "exited, so the kernel reaped it (it reads 0)") in result.stderr, result.stderr
    assert result.stderr.count("SIGCHLD was ignored in this process (set in it") == 1, \
        result.stderr


REAPED_BY_THE_PROGRAM = """\
import asyncio, os, warnings
from pipeplex import AsyncPlex
warnings.simplefilter("always")

async def main():
    async with AsyncPlex() as plex:
        member = await plex.spawn("m", ["sh", "-c", "read x; exit 3"])
        member.sendline("go")  # (written at once)
        # Blocking on purpose, with no await since: the plex's loop has not seen the exit.
        os.waitpid(member.pid, 0)
        print("code", await member.wait(), flush=True)

asyncio.run(asyncio.wait_for(main(), 60))
"""


def test_a_member_the_program_reaped_itself_is_said_so() -> None:
    """The program waited for its member's pid itself: the exit status is lost (it reads 0),
    and the warning says what took it, not that SIGCHLD was ignored, which it was not. (In
    a program of its own: the command's handling of signals, which a test in this process
    may have run, is not the API's.)"""
    result = subprocess.run([sys.executable, "-c", REAPED_BY_THE_PROGRAM], capture_output=True,
                            text=True, timeout=LONG)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "code 0\n", result
    assert ("the exit status of m is lost: something else in this process reaped it first "
            "(os.wait(), os.waitpid() on its pid or on -1, or SIGCHLD ignored for a moment), "
            "so it reads 0; leave the members' exits to pipeplex (wait(), returncode)"
            ) in result.stderr, result.stderr
    assert "SIGCHLD was ignored" not in result.stderr, result.stderr


DIRTY_SIGNALS = """\
import signal, sys, threading, warnings
import pipeplex
warnings.simplefilter("always")
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGUSR1})
for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGCHLD):
    signal.signal(sig, signal.SIG_IGN)

def plex_of(mode, label=None):
    with pipeplex.Plex(timeout=30, grace=30, pty=mode) as plex:
        m = plex.spawn("m", ["sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status | "
                                         "tr '\\\\n' ' '; echo; exit 3"])
        m.expect(r"\\n")
        s = plex.spawn("s", "sleep 60")
        s.signal("TERM")
        blocked, ignored = (int(word, 16) for word in m.before.split()[1::2])
        internal = 0x180000000  # (the C library's 32 and 33: make's posix_spawn ignores one)
        print(label or mode, blocked, ignored & ~internal, m.wait(), s.wait(), flush=True)

for mode in ("stdout", True, False):
    plex_of(mode)
thread = threading.Thread(target=plex_of, args=(False, "thread"))
thread.start()
thread.join()
"""


def test_members_start_clean_whatever_the_program_ignores_or_blocks() -> None:
    """A program (a test suite run as `pytest &`, under nohup, or code of its own) ignores
    SIGINT, SIGQUIT, SIGHUP and SIGCHLD and blocks SIGTERM and SIGUSR1: its members still
    start with every signal at its default and none blocked, in every mode and from a plex
    in another thread; a member's SIGTERM ends it; and exit statuses are not lost to the
    kernel's reaping of children while SIGCHLD is ignored (it used to make each read 0),
    which pipeplex sets back to the default, with a warning."""
    result = subprocess.run([sys.executable, "-c", DIRTY_SIGNALS], capture_output=True,
                            text=True, timeout=LONG)
    clean = "0 0 3 -15"
    assert result.stdout.splitlines() == [
        f"stdout {clean}", f"True {clean}", f"False {clean}", f"thread {clean}"], result
    assert result.stderr.count("SIGCHLD was ignored in this process") == 1, result.stderr


HANDLER_CLOSES = """
import os, signal, sys
import pipeplex

plex = pipeplex.Plex(grace=0.3)
plex.start()

def on_term(signum, frame):  # a program's usual clean-up on SIGTERM
    plex.close()
    sys.exit(3)

signal.signal(signal.SIGTERM, on_term)
# The member signals us once it runs, while this thread waits in spawn() for its readiness.
plex.spawn("a", ["sh", "-c", f"kill -TERM {os.getpid()}; exec sleep 30"], ready="never")
"""


def test_a_signal_handler_that_closes_the_plex_and_exits_keeps_its_status() -> None:
    """The handler ran while this thread waited for the plex's loop: the loop was closed by
    the time the wait was given up, which raised RuntimeError over the program's own
    SystemExit(3)."""
    result = subprocess.run([sys.executable, "-c", HANDLER_CLOSES], capture_output=True,
                            text=True, timeout=LONG)
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
