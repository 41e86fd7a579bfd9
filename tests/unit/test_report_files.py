"""The folders records are written into: made no looser than asked, whatever the umask."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeplex.report.files import make_folders, replace_file


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 000, under which Path.mkdir(parents=True) made the folders above 0777."""
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("open_umask")
def test_the_folders_made_are_never_open_to_others(tmp_path: Path) -> None:
    make_folders(tmp_path / "a" / "b" / "logs", mode=0o700)
    assert [_mode(tmp_path / p) for p in ("a", "a/b", "a/b/logs")] == [0o755, 0o755, 0o700]


def test_what_exists_is_left_as_it_is_and_a_file_in_the_way_is_said(tmp_path: Path) -> None:
    (tmp_path / "open").mkdir()
    (tmp_path / "open").chmod(0o777)
    make_folders(tmp_path / "open", mode=0o700)
    assert _mode(tmp_path / "open") == 0o777  # (the user's own choice, not ours to change)
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError):
        make_folders(tmp_path / "file", mode=0o700)


def test_a_new_file_a_killed_writer_left_goes_at_the_next_write(tmp_path: Path) -> None:
    """pipeplex test --update killed with SIGKILL before its rename left a hidden 12 MB
    file beside the scenarios for good (a `git add -A` would take it). The next write of
    that file removes what a writer that is gone left; not what a running one writes now."""
    gone = subprocess.Popen(["true"])
    gone.wait()  # (reaped: its pid names nobody now, unless it was given out again)
    left = tmp_path / f".case.golden.{gone.pid}-0123456789abcdef.tmp"
    left.write_text("half")
    running = tmp_path / f".case.golden.{os.getpid()}-fedcba9876543210.tmp"
    running.write_text("being written")
    other = tmp_path / ".other.golden.1-0123456789abcdef.tmp"
    other.write_text("not this file's")
    replace_file(tmp_path / "case.golden", b"new\n", mode=0o644)
    assert (tmp_path / "case.golden").read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["case.golden", running.name, other.name]) or _taken_again(gone.pid)


def _taken_again(pid: int) -> bool:
    """Whether ``pid`` names a process again (then its file is rightly left alone)."""
    return Path(f"/proc/{pid}").exists()
