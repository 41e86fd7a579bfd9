"""Fixtures for the whole suite.

Every test runs with a unique token in its environment; pipeplex passes the environment
on to its members, so after the test any process still carrying the token is a leak: the
fixture kills it and fails the test.
"""

from __future__ import annotations

import os
import select
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

TOKEN_VAR = "PIPEPLEX_TEST_TOKEN"
LEAK_DEADLINE = 5.0


def pytest_configure(config: pytest.Config) -> None:
    # A runner that starts the suite in the background without job control (`make test &`
    # in a script, some CI agents) has SIGINT and SIGQUIT ignored in it, and ignored
    # signals outlive exec(): every Ctrl-C the tests send (to a Plex call in this process,
    # through a terminal to a pipeplex they start) would be lost, and those tests would wait
    # out their deadlines. They are about a real Ctrl-C, so they get a terminal's defaults
    # back. (That a pipeplex started in the background keeps ignoring them has tests of
    # its own, which set it up.)
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGQUIT) == signal.SIG_IGN:
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def _processes_with(token: bytes) -> list[int]:
    found = []
    needle = TOKEN_VAR.encode() + b"=" + token
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry))
    return found


def _wait_gone(pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        finally:
            os.close(fd)


@pytest.fixture(autouse=True)
def own_cache_and_state(monkeypatch: pytest.MonkeyPatch,
                        tmp_path_factory: pytest.TempPathFactory) -> None:
    """pipeplex's cache (what failed, for --lf) and state (the console's history) go to the
    session's own folder, never the user's: a test run leaves nothing in their home."""
    base = tmp_path_factory.getbasetemp() / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(base / "cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(base / "state"))


@pytest.fixture(autouse=True)
def no_leftover_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test if any process it started (directly or not) outlives it."""
    token = uuid.uuid4().hex
    monkeypatch.setenv(TOKEN_VAR, token)
    yield
    # Processes being torn down may need a moment to disappear: wait for their exits.
    _wait_gone(_processes_with(token.encode()), LEAK_DEADLINE)
    left = _processes_with(token.encode())
    if left:
        details = []
        for pid in left:
            try:
                details.append(f"{pid}: {Path(f'/proc/{pid}/cmdline').read_bytes()!r}")
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        pytest.fail("processes left behind:\n" + "\n".join(details))
