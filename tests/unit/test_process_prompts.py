"""A line sent where a member stands at a prompt (an unfinished line it went quiet on)
ends that line, as a terminal's echo would: the member's next piece of that stream says so
(``Output.new_line``). A full terminal echoes the line itself: nothing is marked there."""

from __future__ import annotations

import asyncio
import shlex
import signal
import sys

from pipeplex import Bus, Output, ProcSpec
from pipeplex.participants.process import Process

DEADLINE = 30.0
ASKS_TWICE = "printf '> ' >&2; read a; printf '> ' >&2; read b; echo \"got $a $b\""


def _answered(pty: str) -> list[Output]:
    """Each prompt waited for, then answered; every piece of output, in order."""

    async def scenario() -> list[Output]:
        bus = Bus()
        pieces: asyncio.Queue[Output] = asyncio.Queue()
        seen: list[Output] = []

        def take(event: Output) -> None:
            seen.append(event)
            pieces.put_nowait(event)

        bus.subscribe(take, [Output])  # type: ignore[arg-type]
        member = Process(ProcSpec("m", ("sh", "-c", ASKS_TWICE), pty=pty), bus,  # type: ignore[arg-type]
                         on_crash=lambda exc: None)
        await member.start()
        for answer in (b"x\n", b"y\n"):
            while not (await asyncio.wait_for(pieces.get(), DEADLINE)).data.endswith(b"> "):
                pass  # (a full terminal's echo of the last answer comes first)
            member.send(answer)
        await asyncio.wait_for(member.wait_exited(), DEADLINE)
        return seen

    return asyncio.run(scenario())


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


def _driven(script: str, steps: list[tuple[str, bytes]], pty: str = "pipes") -> list[Output]:
    """Run ``script`` under sh; each step waits until the output so far holds its bytes
    ("wait"), sends them ("send") or sends SIGUSR1 ("signal"). Every piece, in order."""

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
        out = b""
        for what, data in steps:
            if what == "send":
                member.send(data)
            elif what == "signal":
                member.signal(signal.SIGUSR1)
            else:
                while data not in out:
                    out += (await asyncio.wait_for(pieces.get(), DEADLINE)).data
        member.close_input()
        await asyncio.wait_for(member.wait_exited(), DEADLINE)
        return seen

    return asyncio.run(scenario())


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
    """A line sent while a member writes a line slowly (a dot at a time) does not cut it:
    a prompt ends in a space."""
    script = "read a; printf Working; sleep 0.3; printf .; sleep 0.3; printf '. done\\n'"
    seen = _driven(script, [("send", b"go\n"), ("wait", b"Working"), ("send", b"more\n"),
                            ("wait", b"done\n")])
    assert b"".join(e.data for e in seen) == b"Working.. done\n", seen
    assert not any(e.new_line for e in seen), seen


def test_only_the_stream_of_the_latest_prompt_is_answered() -> None:
    """stdout stands at an unfinished line, then stderr asks: the line sent answers stderr's
    question, and stdout's line goes on as written."""
    asks = ("import signal, sys, time\n"
            "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])\n"
            "sys.stdout.write('progress: '); sys.stdout.flush()\n"
            "signal.sigwait([signal.SIGUSR1])  # (asked once stdout's line stands)\n"
            "sys.stderr.write('continue? '); sys.stderr.flush(); sys.stdin.readline()\n"
            "sys.stdout.write('half '); sys.stdout.flush(); time.sleep(0.3); print('done')\n")
    seen = _driven(f"exec {shlex.join([sys.executable, '-c', asks])}",
                   [("wait", b"progress: "), ("signal", b""), ("wait", b"continue? "),
                    ("send", b"y\n"), ("wait", b"done\n")])
    assert not any(e.new_line for e in seen), seen
