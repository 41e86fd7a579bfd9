"""A run folder checked again once it is held open: what someone else swapped in above it
between the first check and the making of it is seen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeplex.errors import RunDirError
from pipeplex.inputs import _private_dir, rundir


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder to another user")
def test_a_folder_above_that_another_user_took_meanwhile_is_seen(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    above = tmp_path / "shared"
    above.mkdir()
    made = _private_dir.private_dir

    def taken_meanwhile(path: Path, given_as: str, **own: str | None) -> tuple[int, bool]:
        os.chown(above, 65534, 65534)  # (as if their folder had won the race to mkdir)
        return made(path, given_as, **own)

    monkeypatch.setattr(_private_dir, "private_dir", taken_meanwhile)
    with pytest.raises(RunDirError, match=f"{above} belongs to uid 65534"):
        rundir.RunDir.open(above / "run")
    assert list(above.iterdir()) == []
