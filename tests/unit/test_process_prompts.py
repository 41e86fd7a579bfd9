"""A line sent where a member stands at a prompt (an unfinished line it went quiet on)
answers it: if what that stream writes next is a prompt again, that piece starts a line of
its own (``Output.new_line``), as a terminal's echo of the line would have put it. Anything
else it writes first goes on as written. A full terminal echoes the line itself: nothing is
marked there."""

from __future__ import annotations

import asyncio
import re
import shlex
import signal
import sys
import types
from collections.abc import Generator

from pipeplex import Bus, Output, ProcSpec
from pipeplex.participants._output import QUIET
from pipeplex.participants.process import Process

DEADLINE = 30.0
ASKS_TWICE = "printf '> ' >&2; read a; printf '> ' >&2; read b; echo \"got $a $b\""


def _python(code: str) -> str:
    """A member's script: Python running ``code`` with SIGUSR1 held back, so that its
    ``signal.sigwait`` waits for the test's go-ahead (a "signal" step) however late it comes."""
    code = "import signal, sys\nsignal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])\n" + code
    return f"exec {shlex.join([sys.executable, '-c', code])}"


def _driven(script: str, steps: list[tuple[str, bytes]], pty: str = "pipes") -> list[Output]:
    """Run ``script`` under sh; each step waits until the output after the previous wait's
    text holds its bytes ("wait"), sends them ("send") or sends SIGUSR1 ("signal"). Every
    piece of output, in order. (An unfinished line is there only once it was cut as the
    member went quiet: a wait for one is a wait for its prompt.)"""

    async def scenario() -> list[Output]:
        bus = Bus()
        pieces: asyncio.Queue[Output] = asyncio.Queue()
        seen: list[Output] = []

        def take(event: Output) -> None:
            seen.append(event)
            pieces.put_nowait(event)

        bus.subscribe(take, [Output])  # type: ignore[arg-type]
        member = Process(ProcSpec("m", ("sh", "-c", script), pty=pty), bus,  # type: ignore[arg-type]
                         on_crash=lambda exc: None)
        await member.start()
        out, cursor = b"", 0
        for what, data in steps:
            if what == "send":
                member.send(data)
            elif what == "signal":
                member.signal(signal.SIGUSR1)
            else:
                while (found := out.find(data, cursor)) < 0:
                    out += (await asyncio.wait_for(pieces.get(), DEADLINE)).data
                cursor = found + len(data)
        member.close_input()
        await asyncio.wait_for(member.wait_exited(), DEADLINE)
        return seen

    return asyncio.run(scenario())


def _answered(pty: str) -> list[Output]:
    """Each prompt waited for, then answered (a full terminal's echo of an answer comes
    before the next prompt)."""
    return _driven(ASKS_TWICE, [("wait", b"> "), ("send", b"x\n"), ("wait", b"> "),
                                ("send", b"y\n"), ("wait", b"got x y")], pty)


def test_a_line_sent_at_a_prompt_starts_the_next_piece_on_a_line_of_its_own() -> None:
    seen = _answered("pipes")
    assert [(e.data, e.partial, e.new_line) for e in seen] == [
        (b"> ", True, False),
        (b"> ", True, True),  # (the first answer ended the first prompt's line)
        (b"got x y\n", False, False),  # (stdout stood at no prompt)
    ], seen


def test_a_full_terminal_echoes_the_line_itself() -> None:
    seen = _answered("full")
    assert b"".join(e.data for e in seen).replace(b"\r\n", b"\n") == (
        b"> x\n> y\ngot x y\n"), seen
    assert not any(e.new_line for e in seen), seen


def test_a_line_sent_without_a_prompt_marks_nothing() -> None:
    """Output that went on after the prompt (or a line sent before any prompt) leaves the
    next piece as it is: only a stream that stands at a prompt gets its line ended."""

    async def scenario() -> list[Output]:
        bus = Bus()
        seen: list[Output] = []
        bus.subscribe(seen.append, [Output])  # type: ignore[arg-type]
        script = "read a; printf 'ask> '; read b; echo \"got $a $b\""
        member = Process(ProcSpec("m", ("sh", "-c", script), pty="pipes"), bus,
                         on_crash=lambda exc: None)
        await member.start()
        member.send(b"early\n")  # (no prompt yet)
        member.send(b"later\n")
        await asyncio.wait_for(member.wait_exited(), DEADLINE)
        return seen

    seen = asyncio.run(scenario())
    assert b"".join(e.data for e in seen) == b"ask> got early later\n", seen
    assert not any(e.new_line for e in seen), seen



def test_a_member_that_echoes_the_line_itself_keeps_it_on_the_prompts_line() -> None:
    """bash -i and sqlite3 -interactive, reading a pipe, write the line read after their
    prompt: ``$ echo hi`` stays one line."""
    seen = _driven("printf '$ ' >&2; read a; echo \"$a\" >&2; printf '$ ' >&2; read b",
                   [("wait", b"$ "), ("send", b"echo hi\n"), ("wait", b"$ ")])
    assert b"".join(e.data for e in seen) == b"$ echo hi\n$ ", seen
    assert not any(e.new_line for e in seen), seen


def test_a_line_sent_in_pieces_is_not_cut() -> None:
    seen = _driven("exec cat", [("send", b"hello "), ("wait", b"hello "),
                                ("send", b"world\n"), ("wait", b"world\n")])
    assert not any(e.new_line for e in seen), seen


def test_a_slow_lines_next_dot_is_no_prompt() -> None:
    """A line sent while a member writes a line slowly (a dot at a time, each cut as the
    member goes quiet) does not cut it: a prompt ends in a space."""
    slow = ("sys.stdin.readline(); print('Working', end='', flush=True)\n"
            "signal.sigwait([signal.SIGUSR1]); print('.', end='', flush=True)\n"
            "signal.sigwait([signal.SIGUSR1]); print('. done')\n")
    seen = _driven(_python(slow), [("send", b"go\n"), ("wait", b"Working"),
                                   ("send", b"more\n"), ("signal", b""), ("wait", b"."),
                                   ("signal", b""), ("wait", b"done\n")])
    assert b"".join(e.data for e in seen) == b"Working.. done\n", seen
    assert not any(e.new_line for e in seen), seen


def test_only_the_stream_of_the_latest_prompt_is_answered() -> None:
    """stdout stands at an unfinished line, then stderr asks: the line sent answers stderr's
    question, and stdout's line goes on as written."""
    asks = ("print('progress: ', end='', flush=True)\n"
            "signal.sigwait([signal.SIGUSR1])  # (asked once stdout's line stands)\n"
            "sys.stderr.write('continue? '); sys.stderr.flush(); sys.stdin.readline()\n"
            "print('half ', end='', flush=True)\n"
            "signal.sigwait([signal.SIGUSR1]); print('done')\n")
    seen = _driven(_python(asks), [("wait", b"progress: "), ("signal", b""),
                                   ("wait", b"continue? "), ("send", b"y\n"),
                                   ("wait", b"half "), ("signal", b""), ("wait", b"done\n")])
    assert b"".join(e.data for e in seen if e.stream == "stdout") == b"progress: half done\n"
    assert not any(e.new_line for e in seen), seen


def test_a_prompt_ending_in_what_looks_like_a_cut_character_is_shown_in_time() -> None:
    """A latin-1 prompt ends in a byte that starts a UTF-8 character: it waits a while for
    the rest, then goes out with the member still quiet, not at its next write."""
    seen = _driven("printf 'employ\\351'; read answer; echo \"got $answer\"",
                   [("wait", b"employ\xe9"), ("send", b"x\n"), ("wait", b"got x")])
    assert b"".join(e.data for e in seen) == b"employ\xe9got x\n", seen


def test_a_prompt_waited_for_is_cut_sooner() -> None:
    """An unfinished line is cut once the member has been quiet for QUIET (0.1 s). While an
    expectation waits on the member, a prompt (it ends in a space) that its pattern matches
    is cut at once, so that a REPL's round trip, which waits for its prompt, does not cost
    0.1 s each; not a line's first piece, though it matches. (The cut as scheduled.)"""
    async def scheduled(written: str, waits_for: str | None) -> float:
        bus = Bus()
        member = Process(ProcSpec("m", ("sh", "-c", f"read go; printf '{written}'; read a"),
                                  pty="pipes"), bus, on_crash=lambda exc: None)
        cut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        bus.subscribe(lambda e: cut.done() or cut.set_result(None), [Output])
        await member.start()
        loop = asyncio.get_running_loop()
        delays: list[float] = []
        output = member.output
        output.after_output = lambda: delays.append(output._timers["stdout"].when() - loop.time())
        if waits_for is not None:
            bus.awaiting(["m"], [re.compile(waits_for, re.MULTILINE)])
        member.send(b"go\n")
        await asyncio.wait_for(cut, DEADLINE)
        member.close_input()
        await asyncio.wait_for(member.wait_exited(), DEADLINE)
        return delays[0]

    assert asyncio.run(scheduled("> ", "^> $")) <= 0
    assert 0 < asyncio.run(scheduled("count: ", "^done$")) <= QUIET  # (matched by nothing)
    assert 0 < asyncio.run(scheduled("* bob left", "^[*] bob")) <= QUIET  # (no prompt)
    assert 0 < asyncio.run(scheduled("> ", None)) <= QUIET


def test_a_wait_that_begins_looks_again_at_a_prompt_already_there() -> None:
    """A prompt that came before the expectation began to wait (a REPL's answer and its
    next prompt in one read, the answer's expectation done first) waited out the whole
    quiet time: the wait that begins has it cut at once."""
    async def scenario() -> float:
        bus = Bus()
        member = Process(ProcSpec("m", ("sh", "-c", "printf '> '; read a"), pty="pipes"), bus,
                         on_crash=lambda exc: None)
        read: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await member.start()
        output = member.output
        output.after_output = lambda: read.done() or read.set_result(None)
        await asyncio.wait_for(read, DEADLINE)  # (its timer: QUIET, as nothing waits)
        loop = asyncio.get_running_loop()
        bus.awaiting(["m"], [re.compile("^> $", re.MULTILINE)])
        left = output._timers["stdout"].when() - loop.time()
        member.close_input()
        await asyncio.wait_for(member.wait_exited(), DEADLINE)
        return left

    assert asyncio.run(scenario()) <= 0


def test_a_prompt_held_back_by_a_paused_sink_is_looked_at_again_later_not_at_once() -> None:
    """A sink that holds the output back (a slow terminal) pauses reading: a prompt that a
    waiting expectation matches was looked at again at once, and again, the loop spinning a
    core for as long as the pause lasted."""
    looks = 0

    async def scenario() -> None:
        nonlocal looks
        bus = Bus()
        member = Process(ProcSpec("m", ("sh", "-c", "printf '> '; read a"), pty="pipes"), bus,
                         on_crash=lambda exc: None)
        bus.awaiting(["m"], [re.compile("^> $", re.MULTILINE)])
        read: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await member.start()
        output = member.output
        quiet = output._quiet

        def counted(stream: str) -> None:
            nonlocal looks
            looks += 1
            quiet(stream)  # type: ignore[arg-type]

        output._quiet = counted  # type: ignore[method-assign]

        def paused_after_the_read() -> None:
            output.after_output = None
            output.pause_reading()
            read.set_result(None)

        output.after_output = paused_after_the_read
        await asyncio.wait_for(read, DEADLINE)
        for _ in range(200):  # loop passes, no time: each would run a timer due at once
            await _one_pass()
        output.resume_reading()
        member.close_input()
        await asyncio.wait_for(member.wait_exited(), DEADLINE)

    asyncio.run(scenario())
    assert looks <= 2, looks


@types.coroutine
def _one_pass() -> Generator[None, None, None]:
    yield  # (one pass of the event loop)
