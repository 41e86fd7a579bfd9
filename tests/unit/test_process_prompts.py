"""A line sent where a member stands at a prompt (an unfinished line it went quiet on)
ends that line, as a terminal's echo would: the member's next piece of that stream says so
(``Output.new_line``). A full terminal echoes the line itself: nothing is marked there."""

from __future__ import annotations

import asyncio

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
