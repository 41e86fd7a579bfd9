"""The run folder's own promises that need no run: how it is opened and given up."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeplex.inputs.rundir import LOCK_NAME, RunDir


def test_a_folder_removed_as_it_is_opened_is_made_anew(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A run ending there removes the folder between our opening it and locking it: the
    folder is made again, not reported as impossible to create."""
    path = tmp_path / "run"
    lock = RunDir._lock
    removed: list[Path] = []

    def lock_after_removal(where: Path, dir_fd: int, given_as: str) -> tuple[int, list[str]]:
        if not removed:
            os.rmdir(where)  # the ending run's last step, at the worst moment
            removed.append(where)
        return lock(where, dir_fd, given_as)

    monkeypatch.setattr(RunDir, "_lock", staticmethod(lock_after_removal))
    run_dir = RunDir.open(path)
    try:
        assert removed == [path]
        assert os.path.samestat(os.stat(path), os.fstat(run_dir.dir_fd))
        assert (path / LOCK_NAME).read_text() == f"{os.getpid()} -\n"  # (no run id)
    finally:
        run_dir.close()
        run_dir.close()  # (idempotent: the run gives the folder up before it closes)
    assert not path.exists()


@pytest.mark.parametrize(("earlier", "guardian"), [
    ("4242 abc 4343 99\n", (4343, 99)),
    ("4242 abc\n", None),  # (a lock of an earlier version: no guardian recorded)
])
def test_an_earlier_runs_guardian_is_read_from_its_record(
        tmp_path: Path, earlier: str, guardian: tuple[int, int] | None) -> None:
    path = tmp_path / "run"
    path.mkdir(mode=0o700)
    (path / LOCK_NAME).write_text(earlier)
    run_dir = RunDir.open(path, "mine", guardian=(5, 6))
    try:
        assert (run_dir.stale_pid, run_dir.stale_run_id) == (4242, "abc")
        assert run_dir.stale_guardian == guardian
        assert (path / LOCK_NAME).read_text() == f"{os.getpid()} mine 5 6\n"
    finally:
        run_dir.close()


def test_a_guardian_taking_over_is_recorded_in_one_write_never_shorter(
        tmp_path: Path) -> None:
    """Another run may read the record as it is rewritten: the new one is written over the
    old, padded to its length, never truncated first (an empty or cut lock file would be
    taken for another program's)."""
    path = tmp_path / "run"
    run_dir = RunDir.open(path, "mine", guardian=(123456, 7654321))
    try:
        run_dir.record_guardian((7, 8))
        assert (path / LOCK_NAME).read_text() == f"{os.getpid()} mine 7 8{' ' * 11}\n"
        run_dir.record_guardian(None)  # (its start time could not be read)
        assert (path / LOCK_NAME).read_text().split() == [str(os.getpid()), "mine"]
    finally:
        run_dir.close()
    run_dir.record_guardian((9, 10))  # (once the folder is given up: nothing)
    assert not path.exists()


@pytest.mark.skipif(shutil.which("systemd-tmpfiles") is None, reason="needs systemd-tmpfiles")
def test_a_cleaner_of_temporary_files_leaves_a_live_run_folder_alone(tmp_path: Path) -> None:
    """systemd-tmpfiles removes from /tmp what nobody touched for its age (ten days on many
    systems): a run started without a runtime folder, left to run for longer, would lose the
    pipes nobody wrote to. It leaves alone a folder that someone holds a lock on."""
    cleaned = tmp_path / "tmp"
    run_dir = RunDir.open(cleaned / f"pipeplex-{os.geteuid()}" / "run")
    try:
        run_dir.make_fifo("a.in")
        config = tmp_path / "clean.conf"
        config.write_text(f"e {cleaned} - - - 0\n")  # (age 0: everything is old enough)
        subprocess.run(["systemd-tmpfiles", "--clean", str(config)], capture_output=True,
                       timeout=60, check=False)
        assert sorted(os.listdir(run_dir.path)) == ["a.in", LOCK_NAME]
    finally:
        run_dir.close()
    assert not run_dir.path.exists()
