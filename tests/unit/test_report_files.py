"""The folders records are written into: made no looser than asked, whatever the umask,
and never on a way another user could change."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeplex.report.files import UnsafeWay, make_folders, open_record, replace_file

ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")


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


def _way(tmp_path: Path, way: str) -> tuple[Path, Path, str]:
    """A folder to write in, reached the way named; the folder it really is; and who could
    swap what on that way, as the refusal says it."""
    target = tmp_path / "mine"
    target.mkdir()
    if way == "another user's link":
        link = tmp_path / "link"
        link.symlink_to(target)
        os.lchown(link, 65534, 65534)
        return link, target, f"{link} is a symbolic link of uid 65534, who could point it"
    if way == "a link in another user's folder":
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        (theirs / "out").symlink_to(target)
        os.chown(theirs, 65534, 65534)
        return theirs / "out", target, f"{theirs} belongs to uid 65534, who could put a link"
    if way == "another user's folder":
        os.chown(target, 65534, 65534)
        return target, target, f"{target} belongs to uid 65534, who could put a link"
    outer = tmp_path / "open"
    outer.mkdir()
    outer.chmod(0o777)
    inner = outer / "records"
    target.rename(inner)
    return inner, inner, f"others may write to {outer} (mode 0777), and so put a link of theirs"


WAYS = [pytest.param("another user's link", marks=ROOT),
        pytest.param("a link in another user's folder", marks=ROOT),
        pytest.param("another user's folder", marks=ROOT),
        "an open folder above"]


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("writer", ["open_record", "replace_file"])
def test_a_record_on_a_way_another_user_could_change_is_refused(
        tmp_path: Path, way: str, writer: str) -> None:
    """Whoever may swap a folder or a link on the way to a record could point it at a file
    of the user's between a check and the write: the record is refused, and nothing is
    written either where the path leads now."""
    given, real, who = _way(tmp_path, way)
    (real / "run.jsonl").write_text("kept")
    write = {"open_record": lambda path: os.close(open_record(path)),
             "replace_file": lambda path: replace_file(path, b"new")}[writer]
    with pytest.raises(UnsafeWay, match="^" + re.escape(who)):
        write(given / "run.jsonl")
    assert (real / "run.jsonl").read_text() == "kept"


def test_a_way_through_root_s_and_the_user_s_own_links_and_sticky_folders_is_taken(
        tmp_path: Path) -> None:
    """Root's folders, the user's own, a sticky folder others may write to (as /tmp), and a
    link of the user's own, are ways no one else can change."""
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    (sticky / "mine").mkdir()
    (tmp_path / "link").symlink_to(sticky / "mine")
    os.close(open_record(tmp_path / "link" / "run.jsonl"))
    replace_file(tmp_path / "link" / "report.xml", b"<ok/>")
    assert sorted(p.name for p in (sticky / "mine").iterdir()) == ["report.xml", "run.jsonl"]


@ROOT
def test_the_working_folder_s_owner_is_trusted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root in a container, on a checkout of the host's user: pipeplex runs what that
    user's files say anyway, so their folders and links on the way are no way in."""
    checkout = tmp_path / "checkout"
    (checkout / "build").mkdir(parents=True)
    for folder in (checkout, checkout / "build"):
        os.chown(folder, 65534, 65534)
    with pytest.raises(UnsafeWay):
        os.close(open_record(checkout / "build" / "run.jsonl"))
    monkeypatch.chdir(checkout)
    os.close(open_record(Path("build/run.jsonl")))
    replace_file(checkout / "build" / "junit.xml", b"<ok/>")
    assert sorted(p.name for p in (checkout / "build").iterdir()) == ["junit.xml", "run.jsonl"]


def test_a_relative_path_is_taken_from_the_working_folder_whatever_is_above_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The process holds its working folder: no folder above it can take it away, so an
    open folder there does not matter to a relative path (it does to the absolute one)."""
    outer = tmp_path / "open"
    (outer / "mine").mkdir(parents=True)
    outer.chmod(0o777)
    monkeypatch.chdir(outer / "mine")
    os.close(open_record(Path("run.jsonl")))
    with pytest.raises(UnsafeWay, match=f"^others may write to {re.escape(str(outer))} "):
        os.close(open_record(outer / "mine" / "other.jsonl"))
    with pytest.raises(UnsafeWay, match=r"^others may write to \./\.\. "):
        os.close(open_record(Path("../mine/up.jsonl")))
