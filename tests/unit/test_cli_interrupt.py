"""Ctrl-C while the command is still loading or parsing ends it with 130, quietly."""

from __future__ import annotations

import importlib.abc
import sys
from typing import Any

import pytest

import pipeplex.cli
from pipeplex import _entry


class _Interrupting(importlib.abc.MetaPathFinder):
    """Raises KeyboardInterrupt when ``pipeplex.cli`` is imported: a Ctrl-C mid-import."""

    def find_spec(self, name: str, *args: Any) -> None:
        if name == "pipeplex.cli":
            raise KeyboardInterrupt
        return None


def test_ctrl_c_while_the_cli_loads_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "pipeplex.cli")
    monkeypatch.delattr(sys.modules["pipeplex"], "cli", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_Interrupting(), *sys.meta_path])
    with pytest.raises(SystemExit) as exited:
        _entry.main()
    assert exited.value.code == 130


def test_ctrl_c_while_the_arguments_are_read_exits_130(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeplex.cli, "_build_cast", interrupted)
    monkeypatch.setattr(sys, "argv", ["pipeplex", "run", "-p", "a=true"])
    with pytest.raises(SystemExit) as exited:
        pipeplex.cli.main()
    assert exited.value.code == 130
    assert "Aborted" not in capsys.readouterr().err


def test_usage_errors_still_exit_2_with_their_message(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["pipeplex", "bogus"])
    with pytest.raises(SystemExit) as exited:
        pipeplex.cli.main()
    assert exited.value.code == 2
    assert "no command 'bogus'" in capsys.readouterr().err
