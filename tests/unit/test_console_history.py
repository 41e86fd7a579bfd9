"""Where the console keeps its history, and when it keeps it in memory only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prompt_toolkit.history import FileHistory, InMemoryHistory

from pipeplex.inputs._prompt import _history


def test_a_relative_xdg_state_home_is_ignored(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """As the XDG spec says: not a folder under wherever the console was started."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")
    monkeypatch.chdir(tmp_path)
    history = _history()
    assert isinstance(history, FileHistory)
    assert Path(os.fsdecode(history.filename)) == home / ".local/state/pipeplex/console-history"
    assert not (tmp_path / "relative").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_no_folder_is_made_in_a_home_of_another_user(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Root with a user's HOME (sudo -E): folders of root's there would keep the user's own
    history out afterwards. The history is kept in memory instead."""
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, os.geteuid() + 1, os.getegid())
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    assert isinstance(_history(), InMemoryHistory)
    assert list(home.iterdir()) == []
    state = home / ".local" / "state" / "pipeplex"  # (the user's, without a history yet)
    state.mkdir(parents=True)
    os.chown(state, os.geteuid() + 1, os.getegid())
    assert isinstance(_history(), InMemoryHistory)
    assert list(state.iterdir()) == []
