"""Which console pipeplex's own stdin gives: a prompt, lines, or none."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pipeplex.inputs.stdin import console_mode


@pytest.fixture
def terminal() -> Iterator[int]:
    """A terminal whose foreground group is ours (as a shell's foreground job's is)."""
    master, slave = os.openpty()
    yield slave
    os.close(master)
    os.close(slave)


def test_a_terminal_gets_the_prompt(terminal: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    assert console_mode(terminal, terminal) == "prompt"


def test_a_dumb_terminal_gets_lines_without_a_prompt(terminal: int,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Emacs's shell, some CI consoles: a prompt drawn with cursor moves would show as
    escape codes around every line and key."""
    monkeypatch.setenv("TERM", "dumb")
    assert console_mode(terminal, terminal) == "lines"


def test_a_pipe_gets_lines_and_dev_null_nothing() -> None:
    r, w = os.pipe()
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        assert console_mode(r, w) == "lines"
        assert console_mode(null, w) is None
    finally:
        for fd in (r, w, null):
            os.close(fd)
