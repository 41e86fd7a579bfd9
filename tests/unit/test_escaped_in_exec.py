"""The look for processes by their environment, when one is in the midst of ``exec()``: its
environment then reads empty for a moment. With real processes: one that runs its program
anew, without end, is read in every instant of that cycle."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeplex.participants._escaped import carrying, find_escaped, look_through

LOOKS = 2000
"""Looks at the process running anew: about one in thirty falls in an ``exec()`` here."""


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def anew(tmp_path: Path, run_id: str) -> Iterator[int]:
    """The pid of a shell that runs its script anew (``exec``), over and over, carrying
    ``run_id`` and the name ``a``."""
    script = tmp_path / "anew.sh"
    script.write_text(f'exec sh "{script}"\n')
    child = subprocess.Popen(["sh", str(script)], env={
        **os.environ, "PIPEPLEX_RUN_ID": run_id, "PIPEPLEX_NAME": "a"})
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait(10)


def _found_in_each_look(pid: int, look: Callable[[list[int]], list[int]],
                        found: Callable[[], bool]) -> int:
    """How many of :data:`LOOKS` looks through :func:`look_through` found ``pid``."""

    async def looks() -> int:
        seen = 0
        for _ in range(LOOKS):
            await look_through([pid], look)
            seen += found()
        return seen

    return asyncio.run(looks())


def test_the_look_for_escaped_ones_finds_one_in_the_midst_of_exec(anew: int,
                                                                   run_id: str) -> None:
    hits: list[int] = []

    def look(pids: list[int]) -> list[int]:
        part, in_exec = find_escaped(run_id, ["a"], pids)
        hits.clear()
        hits.extend(pid for pid, _ in part.get("a", ()))
        return in_exec

    assert _found_in_each_look(anew, look, lambda: hits == [anew]) == LOOKS


def test_the_look_for_what_a_run_left_finds_one_in_the_midst_of_exec(anew: int,
                                                                     run_id: str) -> None:
    hits: list[tuple[int, str]] = []

    def look(pids: list[int]) -> list[int]:
        part, in_exec = carrying(run_id, pids)
        hits.clear()
        hits.extend(part)
        return in_exec

    assert _found_in_each_look(anew, look, lambda: hits == [(anew, "a")]) == LOOKS


def test_a_process_with_no_environment_is_looked_at_once() -> None:
    """Run with none (``env -i``): it reads empty, and is no ``exec()`` to wait out."""
    code = "import sys; print('up', flush=True); sys.stdin.read()"
    with subprocess.Popen(["env", "-i", sys.executable, "-c", code],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE) as child:
        try:
            assert child.stdout is not None and child.stdout.readline() == b"up\n"
            assert Path(f"/proc/{child.pid}/environ").read_bytes() == b""
            calls: list[list[int]] = []

            def look(pids: list[int]) -> list[int]:
                calls.append(pids)
                part, in_exec = find_escaped("x", ["a"], pids)
                assert part == {}
                return in_exec

            asyncio.run(look_through([child.pid], look))
            assert calls == [[child.pid]]
        finally:
            child.kill()
