"""The command holds the garbage collector off while it loads, and lets it in again; and
it loads nothing it does not use.

A run can last for days: a collector left off would let every reference cycle it makes
(an exception and its traceback, a cancelled task) pile up for as long.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

LAUNCHER = ("import atexit, gc, sys\n"
            "from pipeplex._entry import main\n"
            "print('while loading:', gc.isenabled(), file=sys.stderr)\n"
            "atexit.register(lambda: print('at exit:', gc.isenabled(),\n"
            "                              gc.get_freeze_count() > 0, file=sys.stderr))\n"
            "atexit.register(lambda: print('loaded:', [m for m in UNUSED if sys.modules.get(m)],\n"
            "                              file=sys.stderr))\n"
            "sys.exit(main())\n")
"""The command's script (its name makes it the command), saying whether the collector runs
and which of ``UNUSED`` it loaded."""

UNUSED = ("ssl", "bz2", "lzma", "json")
"""Modules a run loads only if someone asks for them: asyncio and shutil would load the first
three for TLS and archives, which pipeplex never uses; a run nobody talks to through its
control socket never reads JSON. Each would add a millisecond or more to every start."""


def _command(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "pipeplex"
    script.write_text(f"UNUSED = {UNUSED!r}\n{LAUNCHER}")
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)


def test_a_run_lets_the_collector_in_once_loaded(tmp_path: Path, run_dir: Path) -> None:
    result = _command(tmp_path, "run", "-p", "m=true", "--run-dir", str(run_dir))
    assert result.returncode == 0, result
    assert "while loading: False" in result.stderr
    assert "at exit: True True" in result.stderr  # (what the loading made, frozen)


def test_a_run_loads_only_what_it_uses(tmp_path: Path, run_dir: Path) -> None:
    result = _command(tmp_path, "run", "-p", "m=true", "--run-dir", str(run_dir))
    assert result.returncode == 0, result
    assert "loaded: []" in result.stderr, result


@pytest.mark.parametrize("args", [("status", "--run-dir", "{tmp}/none"),
                                  ("test", "{tmp}/case.toml")])
def test_the_other_commands_let_it_in_too(tmp_path: Path, args: tuple[str, ...]) -> None:
    (tmp_path / "case.toml").write_text('[procs.c]\ncmd = "cat"\n[[step]]\nsend = "hi"\n'
                                        '[[step]]\nexpect = "hi"\n')
    result = _command(tmp_path, *(arg.format(tmp=tmp_path) for arg in args))
    assert "at exit: True True" in result.stderr, result


def test_pipeplex_imported_as_a_library_leaves_the_collector_alone() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import gc, pipeplex._entry, pipeplex.cli; print(gc.isenabled())"],
        capture_output=True, text=True, timeout=30)
    assert result.stdout == "True\n", result
