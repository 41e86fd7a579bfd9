"""The look for processes by their environment, when one is in the midst of ``exec()``: its
environment then reads empty for a moment. With real processes: one that runs its program
anew, without end, is read in every instant of that cycle."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeplex.participants._escaped import Unsettled, carrying, find_escaped, look_through

LOOKS = {"small": 2000, "big": 500}
"""Looks at the process running anew. About one in thirty falls in an ``exec()`` of the
shell here; perl, which copies 100 kB at each, spends most of its time in them."""


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex


@pytest.fixture(params=["small", "big"])
def anew(request: pytest.FixtureRequest, tmp_path: Path, run_id: str
         ) -> Iterator[tuple[int, int]]:
    """The pid, and how many looks to make, of a program that runs itself anew (``exec``),
    over and over, carrying ``run_id`` and the name ``a``: a shell, with this test's
    environment; or perl, with 100 kB of other variables before those two, as pipeplex
    puts them (the kernel reads the memory of a process once per read: a read in pieces
    may end at an ``exec()``)."""
    if request.param == "small":
        script = tmp_path / "anew.sh"
        script.write_text(f'exec sh "{script}"\n')
        argv, env = ["sh", str(script)], dict(os.environ)
    else:
        if shutil.which("perl") is None:
            pytest.skip("perl is not installed")
        script = tmp_path / "anew.pl"
        script.write_text("exec $^X, $0;\n")  # (its environment as it is, in its order)
        argv = ["perl", str(script)]
        env = {**{f"FILLER_{i}": "x" * 1000 for i in range(100)}, **os.environ}
    env.update(PIPEPLEX_NAME="a", PIPEPLEX_RUN_ID=run_id)
    child = subprocess.Popen(argv, env=env)
    try:
        yield child.pid, LOOKS[request.param]
    finally:
        child.kill()
        child.wait(10)


def _found_in_each_look(anew: tuple[int, int],
                        look: Callable[[list[int], Unsettled | None], Unsettled],
                        found: Callable[[], bool]) -> int:
    """How many of ``anew``'s looks through :func:`look_through` found it."""
    pid, times = anew

    async def looks() -> int:
        seen = 0
        for _ in range(times):
            await look_through([pid], look)
            seen += found()
        return seen

    return asyncio.run(looks())


def test_the_look_for_escaped_ones_finds_one_in_the_midst_of_exec(anew: tuple[int, int],
                                                                   run_id: str) -> None:
    hits: list[int] = []

    def look(pids: list[int], before: Unsettled | None) -> Unsettled:
        part, in_exec = find_escaped(run_id, ["a"], pids, before=before)
        hits.clear()
        hits.extend(pid for pid, _ in part.get("a", ()))
        return in_exec

    assert _found_in_each_look(anew, look, lambda: hits == [anew[0]]) == anew[1]


def test_the_look_for_what_a_run_left_finds_one_in_the_midst_of_exec(anew: tuple[int, int],
                                                                     run_id: str) -> None:
    hits: list[tuple[int, str]] = []

    def look(pids: list[int], before: Unsettled | None) -> Unsettled:
        part, in_exec = carrying(run_id, pids, before=before)
        hits.clear()
        hits.extend(part)
        return in_exec

    assert _found_in_each_look(anew, look, lambda: hits == [(anew[0], "a")]) == anew[1]


def test_a_process_with_no_environment_is_read_again_once() -> None:
    """Run with none (``env -i``): it reads empty, as one does for the instant the kernel
    writes its environment; read again after the pass, it is taken for empty."""
    code = "import sys; print('up', flush=True); sys.stdin.read()"
    with subprocess.Popen(["env", "-i", sys.executable, "-c", code],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE) as child:
        try:
            assert child.stdout is not None and child.stdout.readline() == b"up\n"
            assert Path(f"/proc/{child.pid}/environ").read_bytes() == b""
            calls: list[list[int]] = []

            def look(pids: list[int], before: Unsettled | None) -> Unsettled:
                calls.append(pids)
                part, in_exec = find_escaped("x", ["a"], pids, before=before)
                assert part == {}
                return in_exec

            asyncio.run(look_through([child.pid], look))
            assert calls == [[child.pid], [child.pid]]
        finally:
            child.kill()


LEADER_GONE = """
import ctypes, os, sys, threading
libc = ctypes.CDLL(None)
libc.pthread_self.restype = ctypes.c_ulong
main = libc.pthread_self()
def run_on():
    libc.pthread_join(ctypes.c_ulong(main), None)
    print("main thread ended", flush=True)
    threading.Event().wait()
threading.Thread(target=run_on).start()
libc.pthread_exit(None)
"""

LOOK_AS_ITS_USER = """
import os, subprocess, sys
sys.path.insert(0, sys.argv[1])
from pipeplex.participants._escaped import carrying
env = {**os.environ, "PIPEPLEX_RUN_ID": "r", "PIPEPLEX_NAME": "a"}
with subprocess.Popen([sys.executable, "-c", sys.argv[2]], env=env, stdout=subprocess.PIPE) as z:
    assert z.stdout.readline() == b"main thread ended\\n"
    print(carrying("r", [z.pid]) == ([(z.pid, "a")], {}), flush=True)
    z.kill()
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv: the look runs as another user")
def test_one_whose_main_thread_ended_is_read_through_another_thread_by_its_user() -> None:
    """Its main thread ended (``pthread_exit``), the others run on: the main one's entry of
    ``/proc`` is root's then, so its own user reads the environment through another thread
    (as root does)."""
    source = Path(__file__).parents[2] / "src"
    # (The system's Python: this one may lie in a folder that only root may enter.)
    as_nobody = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
                 "/usr/bin/python3", "-c"]
    probe = subprocess.run([*as_nobody, "import sys; sys.path.insert(0, sys.argv[1]); "
                            "import pipeplex.participants._escaped", source],
                           capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("nobody cannot run /usr/bin/python3 on pipeplex's source here")
    result = subprocess.run([*as_nobody, LOOK_AS_ITS_USER, source, LEADER_GONE],
                            capture_output=True, text=True, timeout=60)
    assert result.stdout == "True\n", result.stdout + result.stderr
