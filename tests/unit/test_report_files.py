"""The folders records are written into: made no looser than asked, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeplex.report.files import make_folders


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
