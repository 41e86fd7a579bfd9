"""Ctrl-C while the command is still parsing ends it with 130, quietly. (A real one is held
until then: test_stop_signals.py.)"""

from __future__ import annotations

import sys

import pytest

import pipeplex.cli
import pipeplex.cli._running


def test_ctrl_c_while_the_arguments_are_read_exits_130(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeplex.cli._running, "_build_cast", interrupted)
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
