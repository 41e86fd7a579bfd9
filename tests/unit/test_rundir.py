"""The run folder's own promises that need no run: how it is opened and given up."""

from __future__ import annotations

import os
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

    def lock_after_removal(where: Path, dir_fd: int, run_id: str | None,
                           given_as: str) -> tuple[int, int | None, str | None]:
        if not removed:
            os.rmdir(where)  # the ending run's last step, at the worst moment
            removed.append(where)
        return lock(where, dir_fd, run_id, given_as)

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
