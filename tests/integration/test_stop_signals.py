"""Stopping when things are not simple: a member that is stopped (SIGSTOP), a signal to
pipeplex while the cast is already stopping on its own."""

from __future__ import annotations

import contextlib
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import DEADLINE, PIPEPLEX, PROGS, Connection, Pipeplex, py, status, wait_exited


@contextlib.contextmanager
def _started(*args: str | os.PathLike[str], **popen: Any) -> Iterator[subprocess.Popen[bytes]]:
    """``pipeplex ARGS`` with its stdout a pipe; killed if it still runs at the end, and its
    pipe closed."""
    proc = subprocess.Popen([*PIPEPLEX, *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


CLEAN_ON_TERM = (
    "import signal, sys\n"
    "def bye(*_):\n"
    "    print('clean shutdown', flush=True)\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, bye)\n"
    "print('up', flush=True)\n"
    "while True:\n"
    "    signal.pause()\n"
)


def _wait_stopped(pid: int, timeout: float = 10.0) -> None:
    """Until the kernel shows ``pid`` stopped (state T)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "T":
                return
        os.sched_yield()
    raise AssertionError(f"{pid} was not stopped within {timeout} s")


def test_a_stopped_member_gets_its_grace(run_dir: Path) -> None:
    """A member stopped by SIGSTOP (or Ctrl-Z) is continued after SIGTERM, so its handler
    runs within the grace instead of the member waiting, frozen, for SIGKILL."""
    with Pipeplex("run", "-p", f"app={py(CLEAN_ON_TERM)}", "--grace", "20",
                  "--run-dir", run_dir) as plex:
        plex.expect(r"^app +\| up$")
        pid = status(run_dir)["members"][0]["pid"]
        os.kill(pid, signal.SIGSTOP)
        _wait_stopped(pid)
        plex.signal(signal.SIGTERM)
        plex.expect(r"^app +\| clean shutdown$")
        assert plex.wait() == 143
    assert "SIGKILL" not in plex.text


def test_the_members_of_one_wave_are_stopped_in_the_reverse_of_their_start(
        run_dir: Path) -> None:
    """Signalled together, but in the reverse of their start, and said so: the last
    started first."""
    with Pipeplex("run", "-p", "a=sleep 60", "-p", "b=sleep 60", "-p", "c=sleep 60",
                  "--run-dir", run_dir) as plex:
        plex.expect(r"^c +\* started")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
    termed = re.findall(r"^(\w) \* closed its stdin; sent SIGTERM to its process group$",
                        plex.text, re.M)
    assert termed == ["c", "b", "a"], plex.text


def test_the_first_ctrl_c_while_the_cast_stops_on_its_own_keeps_the_grace(
        run_dir: Path, tmp_path: Path) -> None:
    """A member's exit stopped the cast; Ctrl-C then is the first interrupt: the others
    keep their grace, a second Ctrl-C would skip it, and the run ends as interrupted."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    slow = (
        "import os, signal, sys\n"
        "def bye(*_):\n"
        f"    gate = os.open({str(gate)!r}, os.O_RDWR)  # a reader before it says so\n"
        "    print('flushing', flush=True)\n"
        "    os.read(gate, 1)  # until the test lets it finish\n"
        "    print('flushed', flush=True)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('up', flush=True)\n"
        "while True:\n"
        "    signal.pause()\n"
    )
    with Pipeplex("run", "-p", f"db={py(slow)}", "-p", "job=sh -c 'read x'", "--grace", "20",
                  "--run-dir", run_dir, "--no-console") as plex:
        plex.expect(r"^db +\| up$")
        with Connection(run_dir) as conn:  # job ends with 0: on_exit = stop stops the cast
            assert conn.request({"op": "send", "name": "job", "data": "go\n"})["ok"]
        plex.expect(r"^db +\| flushing$")
        plex.signal(signal.SIGINT)
        plex.expect(r"got SIGINT: the cast is already stopping; press Ctrl-C again to skip "
                    r"the grace period")
        opened = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)  # (its reader is there)
        os.write(opened, b"go")
        os.close(opened)
        plex.expect(r"^db +\| flushed$")
        assert plex.wait() == 130
    assert "skipping the grace" not in plex.text


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found += [int(c) for c in f.read().split()]
    return found


def test_a_killed_guardian_is_replaced_and_the_run_goes_on(run_dir: Path) -> None:
    """Someone kills the guardian: another takes its place, told what the cast holds, and
    the run says so once (nothing else breaks: restarts and the stop still work, with no
    traceback)."""
    with Pipeplex("run", "-p", "a=sleep 60", "--run-dir", run_dir) as plex:
        plex.expect(r"^a +\* started")
        member = status(run_dir)["members"][0]["pid"]
        guardian = next(c for c in _children(plex.proc.pid) if c != member)
        os.kill(guardian, signal.SIGKILL)
        plex.expect(rf"the guardian process \(pid {guardian}\) is gone; started another "
                    r"\(pid \d+\), which knows the cast's groups")
        with Connection(run_dir) as conn:
            assert conn.request({"op": "restart", "name": "a"})["ok"]
        plex.expect(r"^a +\* started")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
    assert "Traceback" not in plex.text
    assert plex.text.count("the guardian process") == 1


def test_a_guardian_started_in_place_of_a_killed_one_stops_the_cast(run_dir: Path) -> None:
    """The guardian killed, then pipeplex: the guardian started in the first one's place
    knows the members' groups, and stops them (they used to outlive the run)."""
    with Pipeplex("run", "-p", "a=sleep 60", "-p", "b=sh -c 'sleep 60 & echo child $!; wait'",
                  "--run-dir", run_dir) as plex:
        plex.expect(r"^a +\* started")
        child = int(plex.expect(r"^b +\| child (\d+)$")[1])  # (in b's group)
        members = [m["pid"] for m in status(run_dir)["members"]]
        first = next(c for c in _children(plex.proc.pid) if c not in members)
        os.kill(first, signal.SIGKILL)
        second = int(plex.expect(r"started another \(pid (\d+)\)")[1])
        assert second != first
        plex.signal(signal.SIGKILL)
        assert plex.wait() == -signal.SIGKILL
        for pid in [*members, child]:
            wait_exited(pid, after="pipeplex died, its first guardian dead before it")
        wait_exited(second, after="the second guardian's work")


def _zombie_children(pid: int) -> list[int]:
    zombies = []
    for child in _children(pid):
        try:
            with open(f"/proc/{child}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    zombies.append(child)
        except OSError:
            pass
    return zombies


class _InNamespace(Pipeplex):
    """pipeplex ARGS as the first process of a new PID namespace (``before``: a shell
    script run first, which then execs pipeplex)."""

    def __init__(self, *args: str | os.PathLike[str], before: str = "") -> None:
        prefix = ["sh", "-c", f'{before}\nexec "$@"', "sh"] if before else []
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", *prefix,
             *PIPEPLEX, *map(str, args)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.proc.stdout is not None
        self._setup(self.proc.stdout.fileno())


def test_as_pid_1_orphans_are_reaped(run_dir: Path, tmp_path: Path) -> None:
    """In a container pipeplex may be the first process: orphans of its members come to it,
    and it reaps them as init would (they would stay zombies otherwise)."""
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a PID namespace here: {probe.stderr.strip()}")
    done = tmp_path / "done"
    leaver = f"for i in 1 2 3; do (sleep 0.1; echo x >> {done}) & done; exit 0"

    with _InNamespace("run", "-p", f"leaver=sh -c {shlex.quote(leaver)}", "-p", "stay=sleep 60",
                     "--on-exit", "ignore", "--run-dir", run_dir) as plex:
        plex.expect(r"^leaver +\* exited with code 0")
        deadline = time.monotonic() + 10
        while not (done.exists() and done.read_text().count("x") == 3):
            assert time.monotonic() < deadline, "the orphans did not finish"
            os.sched_yield()
        pipeplex_pid = _children(plex.proc.pid)[0]  # unshare's child: PID 1 inside
        # An orphan that wrote its x may not have exited yet: until its children are stay
        # and the guardian alone, zombies or not.
        while _zombie_children(pipeplex_pid) or len(_children(pipeplex_pid)) > 2:
            assert time.monotonic() < deadline, f"zombies: {_zombie_children(pipeplex_pid)}"
            os.sched_yield()
        os.kill(pipeplex_pid, signal.SIGTERM)  # (unshare passes no signal on)
        assert plex.wait() == 143


def test_orphans_of_the_members_come_to_pipeplex_and_are_reaped(run_dir: Path) -> None:
    """pipeplex is its members' subreaper: a process whose parent (a member) exited
    becomes its child rather than PID 1's, and is reaped when it exits."""
    leaver = "sleep 60 & echo orphan $!; exit 0"
    with Pipeplex("run", "-p", f"leaver=sh -c {shlex.quote(leaver)}", "-p", "stay=sleep 60",
                  "--on-exit", "ignore", "--run-dir", run_dir) as plex:
        orphan = int(plex.expect(r"^leaver \| orphan (\d+)")[1])
        plex.expect(r"^leaver +\* exited with code 0")
        with open(f"/proc/{orphan}/stat") as f:  # (its parent's exit moved it, before that)
            assert int(f.read().rsplit(")", 1)[1].split()[1]) == plex.proc.pid
        os.kill(orphan, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{orphan}"):  # a zombie of pipeplex until it reaps it
            assert time.monotonic() < deadline, f"zombies: {_zombie_children(plex.proc.pid)}"
            os.sched_yield()
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143


def test_a_burst_of_orphans_ending_at_once_leaves_no_zombie(run_dir: Path) -> None:
    """A hundred orphans that end together send SIGCHLDs the kernel merges into a few: each
    is reaped all the same, and the member that made them runs on."""
    burst = "for i in $(seq 100); do (/bin/true &); done; echo forked; exec sleep 60"
    with Pipeplex("run", "-p", f"burst=sh -c {shlex.quote(burst)}",
                  "--run-dir", run_dir) as plex:
        plex.expect(r"^burst \| forked$")  # (each subshell has exited: the rest are ours)
        deadline = time.monotonic() + 10
        while _zombie_children(plex.proc.pid) or len(_children(plex.proc.pid)) > 2:
            assert time.monotonic() < deadline, f"left: {_children(plex.proc.pid)}"
            os.sched_yield()
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
    assert "burst * stopped by SIGTERM" in plex.text, plex.text


def test_as_pid_1_the_children_it_had_before_are_reaped_too(run_dir: Path,
                                                             tmp_path: Path) -> None:
    """A shell that execs pipeplex as PID 1 passes its background jobs on: nobody else can
    wait for them."""
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a PID namespace here: {probe.stderr.strip()}")
    done = tmp_path / "done"
    with _InNamespace("run", "-p", "stay=sleep 60", "--run-dir", run_dir,
                      before=f"(sleep 0.1; echo x > {done}) > /dev/null 2>&1 &") as plex:
        plex.expect(r"^stay +\* started")
        deadline = time.monotonic() + 10
        while not done.exists():
            assert time.monotonic() < deadline, "the job did not finish"
            os.sched_yield()
        pipeplex_pid = _children(plex.proc.pid)[0]  # unshare's child: PID 1 inside
        while _zombie_children(pipeplex_pid) or len(_children(pipeplex_pid)) > 2:
            assert time.monotonic() < deadline, f"zombies: {_zombie_children(pipeplex_pid)}"
            os.sched_yield()
        os.kill(pipeplex_pid, signal.SIGTERM)  # (unshare passes no signal on)
        assert plex.wait() == 143


IGNORING = ("import signal, sys, os\n"
            "for name in sys.argv[1].split(','):\n"
            "    signal.signal(getattr(signal, name), signal.SIG_IGN)\n"
            "os.execvp(sys.argv[2], sys.argv[2:])\n")


@pytest.mark.parametrize("ignored", ["SIGHUP", "SIGINT", "SIGTERM"])
def test_a_stop_signal_inherited_as_ignored_stays_ignored(run_dir: Path, ignored: str) -> None:
    """nohup pipeplex run: a hangup does not stop the cast (nor SIGINT in a background job,
    nor a SIGTERM its parent ignored); the other stop signals still do."""
    sig = getattr(signal, ignored)
    with Pipeplex("run", "-p", "c=cat", "--run-dir", run_dir,
                  prefix=(sys.executable, "-c", IGNORING, ignored)) as plex:
        plex.expect(r"^c +\* started")
        plex.signal(sig)
        for _ in range(2):  # two round trips: the loop has passed the signal's wake-up
            answer = status(run_dir)
        assert not answer["stopping"] and answer["members"][0]["state"] == "running"
        other = signal.SIGTERM if sig != signal.SIGTERM else signal.SIGINT
        plex.signal(other)
        assert plex.wait() == 128 + other
    assert f"got {ignored}" not in plex.text


PENDING = ("import os, signal, sys\n"
           "sig = getattr(signal, sys.argv[1])\n"
           "signal.pthread_sigmask(signal.SIG_BLOCK, [sig])\n"
           "os.kill(os.getpid(), sig)  # pending, and it stays so across exec\n"
           "os.execvp(sys.argv[2], sys.argv[2:])\n")
"""Runs its command with a stop signal already pending: as if it came at the first
instruction, before the command could take it."""


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_stop_signal_during_the_start_stops_the_cast_as_later(run_dir: Path,
                                                                 name: str) -> None:
    """A Ctrl-C while pipeplex loads and sets up is held until the run takes it, then stops
    the cast as at any other time: no traceback from the middle of an import or of the
    loop's set-up. It is taken before the first member starts: none does, where the
    signal used to be read only once the first waves had started (a chain of members
    ready at once started whole). (test_members_start_with_clean_signal_state: it is let
    in before the members start.)"""
    sig = getattr(signal, name)
    with Pipeplex("run", "-p", "m=sleep 60", "-p", "n=sleep 60", "--run-dir", run_dir,
                  "--no-color", prefix=(sys.executable, "-c", PENDING, name)) as plex:
        assert plex.wait() == 128 + sig
    assert f"got {name}: stopping the cast" in plex.text
    for member in ("m", "n"):
        assert (f"{member} * summary: never started (the cast began to stop before its "
                "turn)") in plex.text, plex.text
    assert " started (pid" not in plex.text, plex.text
    assert "Traceback" not in plex.text


LAUNCHER = ("import os, sys\n"
            "class SendOnImport:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'pipeplex._signals':\n"
            "            os.kill(os.getpid(), 2)  # SIGINT, as the command loads\n"
            "sys.meta_path.insert(0, SendOnImport())\n"
            "from pipeplex._entry import main\n"
            "sys.exit(main())\n")
"""The command's script, but a Ctrl-C arrives while its entry point loads what it needs to
hold signals back with ``signal``'s names (those take 10-15 ms to load)."""


def test_a_ctrl_c_while_the_entry_point_loads_is_held_too(tmp_path: Path,
                                                         run_dir: Path) -> None:
    """Not a traceback of KeyboardInterrupt from the middle of an import: the run takes the
    signal as it begins, and stops (130) before the member starts."""
    script = tmp_path / "pipeplex"
    script.write_text(LAUNCHER)
    result = subprocess.run(
        [sys.executable, str(script), "run", "-p", "m=sleep 60", "--run-dir", str(run_dir),
         "--no-color"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 130, result
    assert "got SIGINT: stopping the cast" in result.stdout
    assert "m * summary: never started" in result.stdout, result.stdout
    assert "Traceback" not in result.stderr


def test_a_sigterm_during_pipeplex_tests_start_ends_it_as_later(tmp_path: Path) -> None:
    """pipeplex test takes a SIGTERM from its first moment as it does later (status 143),
    rather than dying of it."""
    scenario = tmp_path / "case.toml"
    scenario.write_text('[procs.c]\ncmd = "cat"\n[[step]]\nexpect = "never"\n')
    result = subprocess.run(
        [sys.executable, "-c", PENDING, "SIGTERM", *PIPEPLEX, "test", str(scenario)],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 143, result
    assert "Traceback" not in result.stderr


def test_a_ctrl_c_during_a_client_commands_start_exits_130(tmp_path: Path) -> None:
    """The other commands let the held signal in once their arguments are read."""
    result = subprocess.run(
        [sys.executable, "-c", PENDING, "SIGINT", *PIPEPLEX, "status",
         "--run-dir", str(tmp_path / "none")],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 130, result
    assert result.stderr == ""


IGNORE_TERM = ("import signal\n"
               "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
               "print('up', flush=True)\n"
               "signal.pause()\n")


def test_a_persons_kill_in_the_grace_is_its_own_end_in_its_summary_too(run_dir: Path) -> None:
    """pipeplex signal during a member's grace ends it: its own end (status 137), and its
    exit line and summary say so, not "stopped" (the summary said the stop did it)."""
    with Pipeplex("run", "-p", f"stuck={py(IGNORE_TERM)}", "--grace", "600",
                  "--run-dir", run_dir) as plex:
        plex.expect(r"^stuck +\| up$")
        plex.signal(signal.SIGTERM)
        plex.expect(r"^stuck +\* closed its stdin; sent SIGTERM")
        killed = subprocess.run([*PIPEPLEX, "signal", "stuck", "KILL", "--run-dir",
                                 str(run_dir)], capture_output=True, timeout=DEADLINE)
        assert killed.returncode == 0, killed
        assert plex.wait() == 128 + 9
    assert re.search(r"^stuck +\* killed by SIGKILL$", plex.text, re.M), plex.text
    assert re.search(r"^stuck +\* summary: killed by SIGKILL after ", plex.text, re.M), \
        plex.text


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT])
def test_ctrl_c_after_pipeplex_stop_skips_the_grace(run_dir: Path, sig: signal.Signals) -> None:
    """`pipeplex stop` asked for the stop: a Ctrl-C then is the second request, as after a
    first Ctrl-C, and ends the grace of a member that ignores SIGTERM; so does Ctrl-\\.
    The line says which signal did it (it said only "skipping the grace period", the
    signal named nowhere before the last line)."""
    with Pipeplex("run", "-p", f"stuck={py(IGNORE_TERM)}", "--grace", "600",
                  "--run-dir", run_dir) as plex:
        plex.expect(r"^stuck +\| up$")
        stop = subprocess.run([*PIPEPLEX, "stop", "--no-wait", "--run-dir", str(run_dir)],
                              capture_output=True, timeout=30)
        assert stop.returncode == 0, stop
        plex.expect(r"^stuck +\* still running [\d.]+ s after its stdin closed; sent SIGTERM")
        plex.signal(sig)
        plex.expect(rf"^pipeplex \* got {sig.name}: skipping the grace period: SIGKILL to every "
                    r"member$")
        assert plex.wait() == 128 + sig
    assert "already stopping" not in plex.text


def test_a_second_sigterm_keeps_the_grace_and_says_so(run_dir: Path) -> None:
    """A SIGTERM or SIGHUP may come twice with nobody asking for haste (a closing terminal's
    hangup, then its shell's): the stop keeps its grace, and says once what would skip it."""
    with Pipeplex("run", "-p", f"stuck={py(IGNORE_TERM)}", "--grace", "600",
                  "--run-dir", run_dir) as plex:
        plex.expect(r"^stuck +\| up$")
        plex.signal(signal.SIGTERM)
        plex.expect(r"^stuck +\* closed its stdin; sent SIGTERM")
        plex.signal(signal.SIGTERM)
        plex.expect(r"^pipeplex \* got SIGTERM again: the stop keeps its grace period "
                    r"\(SIGINT or SIGQUIT skips it\)$")
        plex.signal(signal.SIGTERM)
        plex.signal(signal.SIGHUP)  # (not "again": the first of its kind)
        plex.expect(r"^pipeplex \* got SIGHUP as well: the stop keeps its grace period ")
        plex.signal(signal.SIGINT)
        plex.expect(r"skipping the grace period")
        assert plex.wait() == 143
    assert plex.text.count("again") == 1


def test_a_signal_after_the_cast_ended_keeps_its_status_and_records(tmp_path: Path,
                                                                    run_dir: Path) -> None:
    """The cast ended (status 3); pipeplex still writes its last output to a reader that
    takes none. SIGTERM then drops that output: the status stays 3, the transcript whole."""
    code = "import sys\nfor i in range(400): print('x' * 999)\nsys.exit(3)\n"
    transcript_r, transcript_w = os.pipe()
    with _started("run", "-p", f"m={py(code)}", "--run-dir", run_dir,
                  "--transcript", f"/dev/fd/{transcript_w}", stderr=subprocess.STDOUT,
                  pass_fds=(transcript_w,)) as proc:
        os.close(transcript_w)
        with os.fdopen(transcript_r, "rb") as transcript:
            # Written at the end, after the summary: the cast is over, its output stuck.
            records = []
            for line in transcript:
                records.append(line)
                if b"summary: " in line:
                    break
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 3
            records.extend(transcript)
        assert sum(r.count(b"x" * 999) for r in records) == 400


def test_sigquit_stops_the_cast_without_the_grace(run_dir: Path) -> None:
    """Ctrl-\\ is the key for "quit harder": pipeplex used to die of it, with no summary,
    its run folder left behind, and its members SIGKILLed by the guardian half a second
    later whatever their grace. Now it is a stop that skips the grace."""
    with Pipeplex("run", "-p", f"stuck={py(IGNORE_TERM)}", "--grace", "600",
                  "--run-dir", run_dir) as plex:
        plex.expect(r"^stuck +\| up$")
        plex.signal(signal.SIGQUIT)
        plex.expect(r"^pipeplex \* got SIGQUIT: stopping the cast without the grace period$")
        plex.expect(r"skipping the grace period")
        assert plex.wait() == 128 + signal.SIGQUIT
    assert "stuck * summary: stopped by SIGKILL" in plex.text
    assert not run_dir.exists()


def test_a_stop_without_the_grace_runs_no_stop_cmd(run_dir: Path, tmp_path: Path) -> None:
    """A stop that skips the grace (Ctrl-\\, a second Ctrl-C) would kill a member's stop_cmd
    as it starts (a `docker stop` cut off): it is not run, and the member is signalled."""
    cast = tmp_path / "cast.toml"
    cast.write_text(f"[procs.db]\ncmd = 'sleep 60'\nstop_cmd = 'touch {tmp_path}/asked'\n")
    with Pipeplex("run", cast, "--run-dir", run_dir) as plex:
        plex.expect(r"^db +\* started")
        plex.signal(signal.SIGQUIT)
        assert plex.wait() == 128 + signal.SIGQUIT
    assert "stop_cmd" not in plex.text, plex.text
    assert "db * summary: stopped by SIGTERM" in plex.text, plex.text
    assert not (tmp_path / "asked").exists()


WAITS_FOR_SIGNALS = (
    "import signal, sys\n"
    "wanted = [signal.SIGUSR1, signal.SIGUSR2]\n"
    "signal.pthread_sigmask(signal.SIG_BLOCK, wanted)\n"
    "print('up', flush=True)\n"
    "while True:\n"
    "    print('got', signal.Signals(signal.sigwait(wanted)).name, flush=True)\n"
)


def test_signals_that_mean_nothing_to_pipeplex_go_to_the_members(run_dir: Path) -> None:
    """SIGUSR1 and the like would end pipeplex and leave the members to the guardian: they
    go to every running member instead, as tini passes them on, and the run goes on."""
    with Pipeplex("run", "-p", f"a={py(WAITS_FOR_SIGNALS)}", "-p", f"b={py(WAITS_FOR_SIGNALS)}",
                  "--run-dir", run_dir) as plex:
        assert {plex.expect(r"^([ab]) +\| up$")[1] for _ in "ab"} == {"a", "b"}
        plex.signal(signal.SIGUSR1)
        plex.expect(r"got SIGUSR1: passed it on to the 2 running members")
        assert {plex.expect(r"^([ab]) +\| got SIGUSR1$")[1] for _ in "ab"} == {"a", "b"}
        plex.signal(signal.SIGUSR2)
        assert {plex.expect(r"^([ab]) +\| got SIGUSR2$")[1] for _ in "ab"} == {"a", "b"}
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143  # (stopped as usual, by the signal that stops it)


def test_a_member_that_does_not_take_the_signal_passed_on_ends_by_it(run_dir: Path) -> None:
    """Passed on means sent as ``kill -USR1`` would: a program with no use for it ends, and
    its exit counts like any other."""
    with Pipeplex("run", "-p", "quiet=sleep 60", "--run-dir", run_dir) as plex:
        plex.expect(r"started")
        plex.signal(signal.SIGALRM)
        plex.expect(r"got SIGALRM: passed it on to the running member")
        assert plex.wait() == 128 + signal.SIGALRM
    assert "killed by SIGALRM" in plex.text


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGQUIT], ids=["TERM", "QUIT"])
def test_a_sender_that_keeps_sending_gets_the_status_not_the_signal(
        run_dir: Path, sig: signal.Signals) -> None:
    """The signal every millisecond until pipeplex has ended (a supervisor's retries, a
    Ctrl-\\ held down): it ends with status 128+N, not killed by one that came as it took
    its handlers away at the end (for SIGQUIT, with a core dump)."""
    with _started("run", "-p", "a=sleep 60", "--run-dir", run_dir, "--no-console",
                  stderr=subprocess.DEVNULL) as proc:
        ended = os.pidfd_open(proc.pid)  # (readable once it has ended; its pid stays unused)
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if b"started" in line:
                    break
            sent = 0
            deadline = time.monotonic() + DEADLINE
            while not select.select([ended], [], [], 0.001)[0]:
                assert time.monotonic() < deadline, f"still running after {sent} signals"
                signal.pidfd_send_signal(ended, sig)
                sent += 1
        finally:
            os.close(ended)
        assert proc.wait(timeout=DEADLINE) == 128 + sig, f"after {sent} signals"


def test_a_thousand_members_stop_without_a_word_on_stderr(run_dir: Path, tmp_path: Path) -> None:
    """1000 members stopped at once: no "Exception ignored when trying to write to the
    signal wakeup fd" for each of hundreds of SIGCHLDs (each one caught put a byte in the
    loop's wake-up pipe), and the status of a SIGTERM."""
    cast = tmp_path / "cast.toml"
    cast.write_text("".join(f'[procs.m{i}]\ncmd = "sleep 60"\n' for i in range(1000)))
    errors = tmp_path / "stderr"
    with errors.open("wb") as err, _started("run", cast, "--run-dir", run_dir,
                                            stderr=err) as proc:
        assert proc.stdout is not None
        started = 0
        for line in proc.stdout:
            started += b"* started (pid" in line
            if started == 1000:
                break
        proc.send_signal(signal.SIGTERM)
        proc.stdout.read()  # (to its end: the summaries)
        assert proc.wait(timeout=DEADLINE) == 143
    assert errors.read_text() == ""


def test_the_spawns_guards_against_a_signal_meant_for_pipeplex() -> None:
    """Without timing: a child killed before its exec is told from one whose program died,
    or runs; a pending group signal is dropped, an ignored one stays ignored, and the mask is
    the parent's (see progs/exec_check.py). The start-wave test below is the whole story."""
    result = subprocess.run([sys.executable, str(PROGS / "exec_check.py")],
                            capture_output=True, text=True, timeout=DEADLINE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["before-exec", "True", "after-exec", "False",
                                     "running", "False", "dropped", "True"]


@pytest.mark.parametrize(("kind", "count"), [("pipes", 400), ("terminal", 200)])
def test_a_ctrl_c_in_a_start_wave_reaches_no_member_being_spawned(kind: str, count: int) -> None:
    """A child is in pipeplex's process group from its fork until its setsid(), so a Ctrl-C
    then reached it too. Spawned by vfork, it died of it before its program ran (reported
    as a member killed by SIGINT, its own failure); forked for a full terminal, it ran
    pipeplex's own handler, which told pipeplex's loop of a second Ctrl-C (skipping the
    grace). Now the first is spawned again and the second drops it; each member starts
    with no signal blocked or ignored. (A SIGINT every 10 ms to a process group that
    spawns: hits are likely, never certain; a few tries of one member come within 10 ms.)"""
    result = subprocess.run([sys.executable, str(PROGS / "spawn_under_signals.py"), str(count),
                             kind], start_new_session=True, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    died, sent, told, unclean = map(int, result.stdout.split()[1::2])
    assert sent > 0, result.stdout
    assert (died, unclean) == (0, 0), result.stdout + result.stderr[:500]
    assert told <= sent, result.stdout  # (more: a child told pipeplex's loop of them too)
