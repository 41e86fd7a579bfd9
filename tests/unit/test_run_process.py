"""RunProcess: a client's look at whether the process serving a run is stopped, which never
takes a stranger with the run's pid, nor a command name that looks like a state, for it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeplex._run_process import RunProcess
from pipeplex.errors import RunStopped
from pipeplex.inputs.rundir import LOCK_NAME

NAMED_LIKE_A_STATE = ("import sys\n"
                      "open('/proc/self/comm', 'w').write('x) T (y')\n"
                      "print('ready', flush=True)\n"
                      "sys.stdin.read()\n")
"""A program whose name (``comm``) holds a parenthesis, then ``T``: read from the first
``)``, its state would be that T."""


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """A run folder's descriptor, and its lock file's (open for writing, as a run's is)."""
    folder_fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    lock_fd = os.open(tmp_path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    yield folder_fd, lock_fd
    os.close(lock_fd)
    os.close(folder_fd)


def _started(pass_fds: tuple[int, ...]) -> subprocess.Popen[bytes]:
    child = subprocess.Popen([sys.executable, "-c", NAMED_LIKE_A_STATE], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, pass_fds=pass_fds)
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n"
    return child


def _stop(child: subprocess.Popen[bytes]) -> None:
    """SIGSTOP, and wait until the kernel tells its parent it is stopped."""
    child.send_signal(signal.SIGSTOP)
    os.waitid(os.P_PID, child.pid, os.WSTOPPED | os.WNOWAIT)


def _end(child: subprocess.Popen[bytes]) -> None:
    child.kill()
    child.wait()
    for stream in (child.stdin, child.stdout):
        assert stream is not None
        stream.close()


def test_the_run_is_stopped_once_it_is_and_its_name_does_not_count(
        folder: tuple[int, int]) -> None:
    folder_fd, lock_fd = folder
    child = _started(pass_fds=(lock_fd,))
    run = RunProcess.hold(child.pid, folder_fd)
    try:
        assert run is not None
        assert run.stopped() is None  # (it runs: its name's "T" is not its state)
        _stop(child)
        assert run.stopped() == "T"
        child.send_signal(signal.SIGCONT)
        _end(child)
        assert run.stopped() is None  # (gone: its pid may be anyone's now)
    finally:
        if run is not None:
            run.close()
        if child.returncode is None:
            _end(child)
    assert RunProcess.hold(child.pid, folder_fd) is None


def test_a_stopped_process_without_the_runs_lock_file_is_not_the_run(
        folder: tuple[int, int]) -> None:
    """A stranger that took the run's pid (here: a process that never had its lock)."""
    folder_fd, _lock_fd = folder
    child = _started(pass_fds=())
    run = RunProcess.hold(child.pid, folder_fd)
    try:
        assert run is not None
        _stop(child)
        assert run.stopped() is None
    finally:
        if run is not None:
            run.close()
        _end(child)


def test_the_message_says_how_to_let_the_run_go_on() -> None:
    by_signal = RunStopped(run_dir="/tmp/r", pid=42)
    assert str(by_signal) == ("the pipeplex run at /tmp/r (pid 42) is stopped (suspended by "
                              "SIGSTOP or Ctrl-Z): 'kill -CONT 42', or 'fg' in its terminal, "
                              "resumes it; nothing was sent")
    traced = RunStopped(run_dir="/tmp/r", pid=42, traced=True, sent=True)
    assert str(traced) == ("the pipeplex run at /tmp/r (pid 42) is stopped in a debugger (a "
                           "tracing stop): let it go on there; the request was sent before "
                           "it stopped, and is carried out once it goes on")
    assert traced.pid == 42 and traced.run_dir == "/tmp/r" and not traced.stale
