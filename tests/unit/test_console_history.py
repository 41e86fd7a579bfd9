"""Where the console keeps its history, and when it keeps it in memory only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prompt_toolkit.history import FileHistory, InMemoryHistory

from pipeplex.inputs._prompt_history import console_history as _history


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


def test_the_history_is_written_where_it_was_checked_not_through_a_link_put_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whoever may write to its folder could swap the file for a link after the check:
    what is typed then went wherever the link pointed."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    (tmp_path / "state" / "pipeplex").mkdir(parents=True, mode=0o700)
    path = tmp_path / "state" / "pipeplex" / "console-history"
    path.write_text("\n# earlier\n+first line\n+and its second\n\n# later\n+second\n")
    history = _history()
    assert list(history.load_history_strings()) == ["second", "first line\nand its second"]
    target = tmp_path / "elsewhere"
    target.write_text("not yours\n")
    kept = tmp_path / "kept"
    path.rename(kept)
    path.symlink_to(target)
    history.store_string("typed: secret")
    assert target.read_text() == "not yours\n"
    assert kept.read_text().endswith("\n+typed: secret\n")


def test_a_line_that_is_not_utf8_is_kept_as_it_was_typed(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A Latin-1 terminal, or a paste of binary: the prompt gives such bytes as surrogates,
    which the history writes back as the bytes they were (and recalls as the same line)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    history = _history()
    assert isinstance(history, FileHistory)
    typed = b"f: caf\xe9".decode("utf-8", "surrogateescape")
    history.store_string(typed)
    assert b"+f: caf\xe9\n" in Path(os.fsdecode(history.filename)).read_bytes()
    assert list(_history().load_history_strings()) == [typed]
