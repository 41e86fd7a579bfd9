"""Starting a child both ways (``posix_spawn`` and ``Popen``): the same streams, session,
signal state and exit statuses, and nothing else inherited."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

import pytest

from pipeplex.participants import _spawn
from pipeplex.participants._spawn import Child, spawn

# Run in a process of its own: close_inherited_on_exec changes the whole process.
SCRIPT = r"""
import os, select, signal, sys
from pipeplex.participants import _spawn

leak_r, leak_w = os.pipe()
os.set_inheritable(leak_w, True)  # as inherited from a parent
if sys.argv[1] == "swept":
    _spawn.close_inherited_on_exec()
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})  # (not for the child)

def run(*argv):
    out_r, out_w = os.pipe()
    child = _spawn.spawn(list(argv), executable=None, streams=(0, out_w, out_w), env={},
                         cwd=None, in_child=None)
    os.close(out_w)
    said = b""
    while data := os.read(out_r, 4096):
        said += data
    os.close(out_r)
    ended = os.pidfd_open(child.pid)
    select.select([ended], [], [])
    assert child.poll() == 0
    return said.decode(), child

fds, child = run("/bin/ls", "/proc/self/fd")  # (3: its listing's own descriptor)
print("fds:", " ".join(fds.split()))
print("posix_spawn:", child._popen is None)
print(run("/bin/grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status")[0].replace("	", " "),
      end="")
print("pid and session:", run("/bin/sh", "-c", "echo $$ $(cut -d' ' -f6 /proc/$$/stat)")[0].strip())
"""


@pytest.mark.parametrize("how", ["swept", "as-inherited"])
def test_a_child_inherits_only_its_streams(how: str) -> None:
    """posix_spawn only once the inherited descriptors are close-on-exec; Popen (which
    closes them itself) until then: either way the child gets fds 0-2 (and ls its own 3),
    its own session, SIGPIPE back at its default (Python ignores it), and, with
    posix_spawn, an empty signal mask (Popen leaves that to the caller)."""
    result = subprocess.run([sys.executable, "-c", SCRIPT, how], capture_output=True,
                            text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    said = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert said["fds"] == "0 1 2 3", result.stdout
    assert said["posix_spawn"] == str(how == "swept")
    if how == "swept":
        assert int(said["SigBlk"], 16) == 0, result.stdout
    # Signals 1-31: 32 and 33 are the C library's, which a harness may leave ignored.
    assert int(said["SigIgn"], 16) & 0x7FFFFFFF == 0, result.stdout
    pid, session = said["pid and session"].split()
    assert session == pid  # (its own)


def _wait_ended(child: Child) -> None:
    ended = os.pidfd_open(child.pid)
    try:
        select.select([ended], [], [], 30)
    finally:
        os.close(ended)


def test_the_exit_status_is_the_code_or_the_signal() -> None:
    child = spawn(["sh", "-c", "exit 3"], executable="/bin/sh", streams=(0, 1, 2),
                  env={}, cwd=None, in_child=None)
    _wait_ended(child)
    assert child.poll() == 3
    assert child.poll() == 3  # (once reaped, kept)
    child = spawn(["sleep", "60"], executable=None, streams=(0, 1, 2),
                  env={"PATH": os.defpath}, cwd="/", in_child=None)
    assert child.poll() is None
    os.kill(child.pid, signal.SIGKILL)
    _wait_ended(child)
    assert child.poll() == -signal.SIGKILL


def test_a_child_reaped_by_someone_else_ended_with_255() -> None:
    """Its status is lost; 255 says it failed rather than guess it succeeded."""
    for inherited_closed in (False, True):
        _spawn._inherited_closed, before = inherited_closed, _spawn._inherited_closed
        try:
            child = spawn(["true"], executable="/bin/true", streams=(0, 1, 2), env={},
                          cwd=None, in_child=None)
        finally:
            _spawn._inherited_closed = before
        _wait_ended(child)
        os.waitpid(child.pid, 0)  # (a SIGCHLD handler of the program, say)
        assert child.poll() == 255


def test_a_program_that_cannot_run_raises_with_its_errno() -> None:
    for inherited_closed in (False, True):
        _spawn._inherited_closed, before = inherited_closed, _spawn._inherited_closed
        try:
            with pytest.raises(FileNotFoundError) as missing:
                spawn(["/nonexistent/prog"], executable=None, streams=(0, 1, 2), env={},
                      cwd=None, in_child=None)
            with pytest.raises(PermissionError):
                spawn(["/etc/passwd"], executable=None, streams=(0, 1, 2), env={},
                      cwd=None, in_child=None)
        finally:
            _spawn._inherited_closed = before
        assert missing.value.filename == "/nonexistent/prog"


def test_popen_is_what_a_cwd_uses(tmp_path: os.PathLike[str]) -> None:
    out_r, out_w = os.pipe()
    try:
        child = spawn(["pwd"], executable="/bin/pwd", streams=(0, out_w, 2), env={},
                      cwd=os.fspath(tmp_path), in_child=None)
        os.close(out_w)
        out_w = -1
        assert os.read(out_r, 4096).decode().strip() == os.path.realpath(tmp_path)
        _wait_ended(child)
        assert child.poll() == 0
        assert isinstance(child._popen, subprocess.Popen)
    finally:
        os.close(out_r)
        if out_w >= 0:
            os.close(out_w)
