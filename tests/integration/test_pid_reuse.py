"""A member's process group id, once the group is empty, may go to another program: pipeplex
never signals it again, neither in its stop nor through its guardian after a SIGKILL.

The kernel hands out pids in turn. The tests make the group's old id the next one by writing
``/proc/sys/kernel/ns_last_pid`` (as root), so that a stranger takes it at once rather than
after some 32,000 other processes.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import DEADLINE, Pipeplex, guardian_of

LAST_PID = Path("/proc/sys/kernel/ns_last_pid")

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not os.access(LAST_PID, os.W_OK),
                                reason="needs root, to choose the next pid")


@pytest.fixture
def strangers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Where tests keep the strangers they start; each is killed afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for stranger in started:
        stranger.kill()
        stranger.wait()


def _stranger_as(pid: int, strangers: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """``sleep 60`` as pid ``pid``, leading a process group (and session) of that number."""
    for _ in range(5):  # (another process may take the pid first)
        LAST_PID.write_text(str(pid - 1))
        stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
        strangers.append(stranger)
        if stranger.pid == pid:
            return stranger
    pytest.skip(f"pid {pid} went to other processes five times")


def test_the_stop_leaves_a_group_id_that_went_to_another_program(
        run_dir: Path, strangers: list[subprocess.Popen[bytes]]) -> None:
    with Pipeplex("run", "-p", "brief=true", "-p", "keeper=sleep 60", "--on-exit", "ignore",
                  "--grace", "0.5", "--run-dir", run_dir) as plex:
        pid = int(plex.expect(r"^brief +\* started \(pid (\d+)\)$")[1])
        plex.expect(r"^brief +\* exited with code 0$")
        stranger = _stranger_as(pid, strangers)
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 128 + signal.SIGTERM
    assert stranger.poll() is None, plex.text
    assert "brief * left processes" not in plex.text


def test_the_guardian_leaves_a_group_id_that_went_to_another_program(
        run_dir: Path, strangers: list[subprocess.Popen[bytes]]) -> None:
    """pipeplex killed with SIGKILL: its guardian stops the members' groups, but not that
    one, which it was told was empty."""
    with Pipeplex("run", "-p", "brief=true", "-p", "keeper=sleep 60", "--on-exit", "ignore",
                  "--run-dir", run_dir) as plex:
        pid = int(plex.expect(r"^brief +\* started \(pid (\d+)\)$")[1])
        keeper = int(plex.expect(r"^keeper +\* started \(pid (\d+)\)$")[1])
        plex.expect(r"^brief +\* exited with code 0$")
        guardian = os.pidfd_open(guardian_of(plex.proc.pid))
        keeper_fd = os.pidfd_open(keeper)
        try:
            stranger = _stranger_as(pid, strangers)
            plex.proc.kill()
            assert select.select([guardian], [], [], DEADLINE)[0], "the guardian still runs"
            assert select.select([keeper_fd], [], [], DEADLINE)[0], "the keeper still runs"
        finally:
            os.close(guardian)
            os.close(keeper_fd)
    assert stranger.poll() is None
