"""A member's program is looked up on its PATH once, and looked up again when it is gone."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pipeplex.participants._spawn import find_executable, forget_executables, spawn_reason


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    forget_executables()


def _program(folder: Path, name: str = "prog") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_a_program_is_found_on_the_childs_path(tmp_path: Path) -> None:
    prog = _program(tmp_path / "bin")
    path = f"{tmp_path / 'empty'}:{tmp_path / 'bin'}"
    assert find_executable("prog", {"PATH": path}) == str(prog)


def test_a_program_that_went_away_is_looked_up_again(tmp_path: Path) -> None:
    first, second = _program(tmp_path / "a"), _program(tmp_path / "b")
    env = {"PATH": f"{tmp_path / 'a'}:{tmp_path / 'b'}"}
    assert find_executable("prog", env) == str(first)
    first.unlink()
    assert find_executable("prog", env) == str(second)
    second.unlink()
    assert find_executable("prog", env) is None


@pytest.mark.parametrize("path", ["bin:/usr/bin", ":/usr/bin", "/usr/bin::/bin"])
def test_relative_path_entries_are_left_to_the_child(path: str) -> None:
    assert find_executable("sh", {"PATH": path}) is None  # they depend on the member's cwd


def test_names_with_a_slash_are_left_to_the_child(tmp_path: Path) -> None:
    prog = _program(tmp_path)
    assert find_executable(str(prog), {"PATH": os.defpath}) is None
    assert find_executable("./prog", {"PATH": os.defpath}) is None


def test_a_script_refused_though_its_interpreter_runs_is_not_told_to_chmod_it(
        tmp_path: Path) -> None:
    """EACCES for an executable script whose #! names a program that is there and
    executable (a file system mounted noexec): its interpreter was said not executable, to
    be made so with chmod +x, /bin/sh included."""
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    exc = PermissionError(errno.EACCES, "Permission denied", str(script))
    assert spawn_reason(exc, [str(script)]) == (
        f"permission denied: {str(script)!r} is executable, but this system refused to run "
        "it (is its file system mounted noexec?)")
