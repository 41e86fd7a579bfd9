"""Members whose processes run as another user, which pipeplex may not signal.

A member may run a setuid program that takes its new user for good (``su``, a privileged
helper that calls ``setresuid``). pipeplex, run by an ordinary user, then has no right to
signal it. It says so, where it used to announce signals that never went, tells how to send
them as that user, and waits for the member to end rather than taking its group for gone.

These tests run pipeplex as ``nobody`` (from a copy of its package that ``nobody`` can read,
on the system's Python) and the member on a setuid-root copy of that Python. Only the group
``nogroup`` may run the copy, and it is removed with the test's folder.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import pipeplex

from .helpers import Pipeplex

SYSTEM_PYTHON = Path("/usr/bin/python3")


def _system_python_is_ours() -> bool:
    """The system's Python is of this version (pipeplex's copy runs on it)."""
    if not SYSTEM_PYTHON.exists():
        return False
    version = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
    return version == str(sys.version_info[:2])


pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: a setuid-root program, and "
                                                 "pipeplex run as another user"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)"),
    pytest.mark.skipif(os.geteuid() == 0 and not _system_python_is_ours(),
                       reason=f"needs {SYSTEM_PYTHON} of this Python's version"),
]

BECOME_ROOT = ("import os, select, sys\n"
               "os.setresgid(0, 0, 0)\n"
               "os.setresuid(0, 0, 0)  # for good: whoever started it may not signal it now\n")
MEMBER = BECOME_ROOT + "print('root now', flush=True)\nselect.select([], [], [])\n"
STRAY = ("import os, select, sys\n"
         "reader, writer = os.pipe()\n"
         "if os.fork() == 0:  # a daemon: a session of its own, the member's parent gone\n"
         "    os.setsid()\n"
         + "".join(f"    {line}\n" for line in BECOME_ROOT.splitlines()[1:]) +
         "    print('stray', os.getpid(), flush=True)\n"
         "    os.close(writer)\n"
         "    select.select([], [], [])\n"
         "os.close(writer)\n"
         "os.read(reader, 1)  # (its line first)\n")


@dataclass
class AnotherUser:
    """What a test needs to run pipeplex as ``nobody`` with members that become root."""

    command: tuple[str, ...]
    """pipeplex, as ``nobody``."""
    root_python: Path
    """Python, setuid root (for ``nogroup``)."""
    work: Path
    """A folder of ``nobody``'s, for the run folder and the members' scripts."""

    def script(self, name: str, code: str) -> str:
        path = self.work / name
        path.write_text(code)
        path.chmod(0o644)
        return f"{self.root_python} {path}"


@pytest.fixture
def another_user() -> Iterator[AnotherUser]:
    nobody, nogroup = pwd.getpwnam("nobody"), grp.getgrnam("nogroup")
    base = Path(tempfile.mkdtemp(prefix="pipeplex-another-user-"))  # (pytest's: root's only)
    try:
        base.chmod(0o755)
        lib = base / "lib"
        shutil.copytree(Path(pipeplex.__file__).parent, lib / "pipeplex",
                        ignore=shutil.ignore_patterns("__pycache__"))
        root_python = base / "root-python"
        shutil.copy(SYSTEM_PYTHON.resolve(), root_python)
        os.chown(root_python, 0, nogroup.gr_gid)
        root_python.chmod(0o4750)
        work = base / "work"
        work.mkdir()
        os.chown(work, nobody.pw_uid, nogroup.gr_gid)
        yield AnotherUser(
            ("setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nogroup.gr_gid}",
             "--clear-groups", "env", f"HOME={work}", f"PYTHONPATH={lib}",
             str(SYSTEM_PYTHON), "-m", "pipeplex"),
            root_python, work)
    finally:
        shutil.rmtree(base)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_a_stop_says_it_may_not_signal_the_member_and_waits_for_it(
        another_user: AnotherUser) -> None:
    """Not "sent SIGTERM", then SIGKILL, then a wait for an exit that never comes without a
    word: the stop says that it may not, how to do it, and ends once the member does."""
    member = another_user.script("member.py", MEMBER)
    with Pipeplex("run", "-p", f"m={member}", "--grace", "0.3", "--no-color",
                  "--run-dir", another_user.work / "run", command=another_user.command) as plex:
        pgid = int(plex.expect(r"^m +\* started \(pid (\d+)\)$")[1])
        try:
            plex.expect(r"^m +\| root now$")
            plex.signal(signal.SIGTERM)
            plex.expect(r"^m +\* closed its stdin; may not signal it: its processes run as "
                        r"root; waiting 0\.3 s for it to end$")
            plex.expect(r"^m +\* still running after 0\.3 s, and may not be killed: its "
                        r"processes run as root; waiting for it to end \(stop it as that "
                        rf"user: sudo kill -KILL -- -{pgid}\)$")
            assert plex.proc.poll() is None  # it waits: the member runs
        finally:
            _kill_group(pgid)  # as root, as the note says
        assert plex.wait() == 128 + signal.SIGTERM
    assert not re.search(r"^m +\* .*sent SIG", plex.text, re.MULTILINE), plex.text
    assert "m * summary: stopped by SIGKILL" in plex.text
    assert "Traceback" not in plex.text


def test_a_signal_asked_for_is_refused_with_the_reason(another_user: AnotherUser) -> None:
    """The console, ``pipeplex signal`` and a scenario's step say why nothing was sent,
    rather than that the member is not running."""
    member = another_user.script("member.py", MEMBER)
    run_dir = another_user.work / "run"
    with Pipeplex("run", "-p", f"m={member}", "--grace", "0.3", "--no-color",
                  "--run-dir", run_dir, stdin=subprocess.PIPE,
                  command=another_user.command) as plex:
        pgid = int(plex.expect(r"^m +\* started \(pid (\d+)\)$")[1])
        try:
            plex.expect(r"^m +\| root now$")
            refusal = (r"may not send SIGUSR1 to m: its processes run as root; send it as "
                       rf"that user \(sudo kill -USR1 -- -{pgid}\)")
            plex.write(b":signal m USR1\n")
            plex.expect(rf"^pipeplex \* {refusal}$")
            asked = subprocess.run([*another_user.command, "signal", "--run-dir", str(run_dir),
                                    "m", "USR1"], capture_output=True, text=True, timeout=30)
            assert asked.returncode == 1, asked
            assert re.fullmatch(rf"pipeplex: error: {refusal}\n", asked.stderr), asked.stderr
        finally:
            _kill_group(pgid)
        plex.expect(r"^m +\* killed by SIGKILL")
    assert "is not running" not in plex.text


def test_a_stray_of_another_user_is_said_and_left_alone(another_user: AnotherUser) -> None:
    """What the cast orphaned outside its groups, as another user, is named at the end (it
    runs on), and the stop ends: it used to fail there, on the signal refused."""
    member = another_user.script("stray.py", STRAY)
    stray = None
    with Pipeplex("run", "-p", f"daemon={member}", "-p", "keeper=sleep 60",
                  "--on-exit", "ignore", "--grace", "0.3", "--no-color",
                  "--run-dir", another_user.work / "run", command=another_user.command) as plex:
        try:
            stray = int(plex.expect(r"^daemon +\| stray (\d+)$")[1])
            plex.expect(r"^daemon +\* exited with code 0$")
            plex.signal(signal.SIGTERM)
            assert plex.wait() == 128 + signal.SIGTERM
        finally:
            if stray is not None:
                _kill_group(stray)  # (it leads its session's group)
    assert (f"pipeplex * the cast left 1 process (pid {stray}) outside its members' process "
            "groups that runs as root, which pipeplex may not signal; it runs on (stop it as "
            f"that user: sudo kill {stray})") in plex.text, plex.text
    assert "Traceback" not in plex.text
