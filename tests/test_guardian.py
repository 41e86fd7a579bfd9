"""The guardian's two promises: a member spawned an instant before pipeplex dies still dies
with it, even one that drops its environment (``env -i``), where PIPEPLEX_RUN_ID cannot
find it; and a process group is let go of once it is empty, never before, since its id is
then free for a stranger's ``setsid``."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import math
import os
import select
import shlex
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from pipeplex import Bus, ProcSpec, SpawnError
from pipeplex._guardian_process import LABEL
from pipeplex.participants import Guardian, Process

DEADLINE = 10.0

SPAWN_THEN_DIE = """
import asyncio, os

from pipeplex import Bus, ProcSpec
from pipeplex.participants import Guardian, Process

async def main():
    guardian = Guardian()
    spec = ProcSpec("m", ("env", "-i", "sleep", "300"), pty="pipes")
    member = Process(spec, Bus(), on_crash=print, guardian=guardian)
    await member.start()
    print(member.pid, flush=True)
    os._exit(0)  # as a SIGKILL would: no clean-up, and no further pass of the loop

asyncio.run(main())
"""


def _exits_within(pid: int, seconds: float) -> bool:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], seconds)[0])
    finally:
        os.close(fd)


def _stubborn(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A process outside any member's group, with ``env``'s marks, ignoring SIGTERM."""
    return _daemon(env, "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                        "print('ready', flush=True); signal.pause()")


def _daemon(env: dict[str, str], code: str) -> subprocess.Popen[bytes]:
    """A process in a session of its own, as a daemon's setsid leaves it, with ``env``'s
    marks, running ``code``, which prints ``ready`` once it is set up; returned then."""
    daemon = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              start_new_session=True)
    assert daemon.stdout is not None and daemon.stdout.readline() == b"ready\n"
    return daemon


def _reap(daemon: subprocess.Popen[bytes]) -> None:
    daemon.kill()
    daemon.wait()
    if daemon.stdout is not None:
        daemon.stdout.close()


@contextlib.contextmanager
def _escaped_daemon(run_id: str, code: str) -> Iterator[subprocess.Popen[bytes]]:
    """:func:`_daemon` as member ``m`` of the run ``run_id`` leaves it; reaped at the end."""
    daemon = _daemon({**os.environ, "PIPEPLEX_RUN_ID": run_id, "PIPEPLEX_NAME": "m"}, code)
    try:
        yield daemon
    finally:
        _reap(daemon)


def _stop_escaped(run_id: str, at_once: int = 1,
                  stop_signal: int = signal.SIGTERM) -> list[str]:
    """Run ``at_once`` stops at once of what member ``m`` (with ``stop_signal``) left outside
    its group (grace 0.5 s); the notes said."""
    from pipeplex.engine.stopping import Stopper

    async def scenario() -> list[str]:
        bus = Bus()
        notes: list[str] = []
        bus.subscribe(lambda e: notes.append(e.text) if hasattr(e, "text") else None)
        stopper = Stopper(bus, grace=0.5, run_id=run_id)
        stopper.begin()
        member = Process(ProcSpec("m", ("true",), stop_signal=stop_signal), bus,
                         on_crash=print)
        await asyncio.gather(*(stopper.outside.stop_escaped([member]) for _ in range(at_once)))
        return notes

    return asyncio.run(scenario())


def test_a_member_spawned_just_before_pipeplex_dies_dies_too() -> None:
    result = subprocess.run([sys.executable, "-c", SPAWN_THEN_DIE], capture_output=True,
                            text=True, timeout=60)
    pid = int(result.stdout.split()[0])
    try:
        assert _exits_within(pid, DEADLINE), "the member outlived pipeplex"
    finally:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@contextlib.contextmanager
def _spawn_told(command: list[str]) -> Iterator[tuple[Guardian, subprocess.Popen[bytes]]]:
    """A guardian told of a spawn with a pipe for stdin, and ``command`` started with that
    stdin in a session of its own; both are ended afterwards."""
    stdin, ours = os.pipe()
    guardian = Guardian()
    process: subprocess.Popen[bytes] | None = None
    try:
        guardian.spawning([stdin])
        process = subprocess.Popen(command, stdin=stdin, start_new_session=True)
        yield guardian, process
    finally:
        guardian.close()
        if process is not None:
            process.kill()
            process.wait()
        os.close(stdin)
        os.close(ours)


def test_a_member_caught_mid_spawn_dies_with_pipeplex() -> None:
    """pipeplex killed while it waits for a spawn's exec: the child exists, unregistered,
    maybe without its environment (``env -i``). The guardian, told the stdin it was given
    before the spawn, finds it by that stdin."""
    with _spawn_told(["env", "-i", "sleep", "300"]) as (guardian, member):
        guardian.close()  # as at pipeplex's death: EOF, with the spawn never registered
        assert member.wait(timeout=DEADLINE) in (-signal.SIGTERM, -signal.SIGKILL)


def test_a_stranger_given_the_same_pty_later_is_left_alone() -> None:
    """pty = true: the member caught mid-spawn has a /dev/pts/N stdin, and N, once free, may
    go to a stranger's terminal while the guardian escalates. Only processes found as
    pipeplex ended, and started since the spawn was told, are signalled."""
    import threading

    master, slave = os.openpty()
    code = ("import signal, sys\n"
            "signal.signal(signal.SIGTERM, lambda *a: print('term', flush=True))\n"
            "print('ready', flush=True)\n"
            "while True: signal.pause()")
    guardian = Guardian()
    member: subprocess.Popen[bytes] | None = None
    stranger: subprocess.Popen[bytes] | None = None
    ending = threading.Thread(target=guardian.close)
    try:
        guardian.spawning([slave])
        member = subprocess.Popen([sys.executable, "-c", code], stdin=slave,
                                  stdout=subprocess.PIPE, start_new_session=True)
        assert member.stdout is not None and member.stdout.readline() == b"ready\n"
        os.close(master)  # as at pipeplex's death: its pty masters go, its pipe to the
        master = -1
        ending.start()  # guardian closes (EOF), and the spawn was never registered
        assert member.stdout.readline() == b"term\n"  # the guardian escalates from now
        stranger = subprocess.Popen(["sleep", "300"], stdin=slave, start_new_session=True)
        ending.join(timeout=DEADLINE)
        assert not ending.is_alive()
        assert member.wait(timeout=DEADLINE) == -signal.SIGKILL
        assert not _exits_within(stranger.pid, 0.0), "the stranger was signalled"
    finally:
        if ending.ident is None:  # (never started)
            guardian.close()
        ending.join(timeout=DEADLINE)
        for process in (member, stranger):
            if process is not None:
                process.kill()
                process.wait()
                if process.stdout is not None:
                    process.stdout.close()
        if master >= 0:
            os.close(master)
        os.close(slave)


def test_a_pty_number_freed_before_the_guardian_looks_is_not_ours() -> None:
    """pipeplex killed before its spawn's child took the pty (or that child died at once):
    /dev/pts/N is free, and the next pty opened, a stranger's, gets N before the guardian
    looks. Ours would read "/dev/pts/N (deleted)"; a live /dev/pts/N is left alone."""
    master, slave = os.openpty()
    told = os.readlink(f"/proc/self/fd/{slave}")
    guardian = Guardian()
    stranger: subprocess.Popen[bytes] | None = None
    fds = []
    try:
        guardian.spawning([slave])
        os.close(master)
        os.close(slave)
        fds = list(os.openpty())
        if os.readlink(f"/proc/self/fd/{fds[1]}") != told:
            pytest.skip("another pty took the number meanwhile")
        stranger = subprocess.Popen(["sleep", "300"], stdin=fds[1], start_new_session=True)
        guardian.close()
        assert not _exits_within(stranger.pid, 0.0), "the stranger was signalled"
    finally:
        guardian.close()
        if stranger is not None:
            stranger.kill()
            stranger.wait()
        for fd in fds:
            os.close(fd)


def test_a_spawn_is_told_before_it_is_made_and_registered_after() -> None:
    """What Process.start tells the guardian, in order: the child's stdin as /proc names it
    (before the child exists), then its group; nothing more."""
    told: list[tuple[str, object]] = []

    class Told(Guardian):
        def spawning(self, streams: Iterable[int]) -> None:
            streams = list(streams)
            told.append(("spawning", [os.readlink(f"/proc/self/fd/{fd}") for fd in streams]))
            super().spawning(streams)

        def register(self, pgid: int, outputs: Iterable[int] = (),
                     master: int | None = None) -> None:
            told.append(("register", pgid))
            super().register(pgid, outputs, master)

        def spawn_failed(self) -> None:
            told.append(("spawn_failed", None))
            super().spawn_failed()

    async def scenario() -> tuple[int, list[str]]:
        guardian = Told()
        member = Process(ProcSpec("m", ("cat",), pty="pipes"), Bus(), on_crash=print,
                         guardian=guardian)
        try:
            await member.start()
            assert member.pid is not None
            streams = [os.readlink(f"/proc/{member.pid}/fd/{fd}") for fd in (0, 1, 2)]
            member.close_input()
            await asyncio.wait_for(member.wait_exited(), DEADLINE)
            return member.pid, streams
        finally:
            member.close()
            guardian.close()

    pid, streams = asyncio.run(scenario())
    assert told[:2] == [("spawning", streams), ("register", pid)], told
    assert ("spawn_failed", None) not in told


@contextlib.contextmanager
def _output_told(command: list[str], *, started_before: bool = False
                 ) -> Iterator[tuple[Guardian, subprocess.Popen[bytes], int]]:
    """``command`` started in a session of its own with its stdout a pipe whose read end
    (given too) a guardian was told of as a registered member's output; both are ended
    afterwards. ``started_before``: the process was started before that member's spawn."""
    ours, theirs = os.pipe()
    guardian = Guardian()
    holder: subprocess.Popen[bytes] | None = None
    try:
        if started_before:
            holder = subprocess.Popen(command, stdout=theirs, start_new_session=True)
            # The spawn is told in clock ticks (10 ms): told in the tick after next of the
            # process's start, it is plainly later (one tick's doubt is taken as "since").
            while _ticks_now() - _started(holder.pid) < 2:
                pass
        guardian.spawning([theirs])
        if holder is None:
            holder = subprocess.Popen(command, stdout=theirs, start_new_session=True)
        guardian.register(holder.pid, outputs=[ours])
        guardian.unregister(holder.pid)  # (as once the member's own group is empty)
        yield guardian, holder, ours
    finally:
        guardian.close()
        if holder is not None:
            holder.kill()
            holder.wait()
        os.close(ours)
        os.close(theirs)


def _die(guardian: Guardian) -> None:
    """As pipeplex's death does: the guardian's pipe closes, with no clean end said."""
    os.close(guardian._fd)
    guardian._fd = -1
    assert guardian._proc.wait(timeout=DEADLINE) == 0


def test_what_still_holds_a_members_output_dies_with_pipeplex() -> None:
    """A member's group, empty, is let go of; a process that left it (setsid) without its
    environment (env -i), and that pipeplex had not told of yet, still holds the member's
    output pipe, which pipeplex still read: that pipe finds it."""
    with _output_told(["env", "-i", "sleep", "300"]) as (guardian, holder, _):
        _die(guardian)
        assert holder.wait(timeout=DEADLINE) == -signal.SIGTERM


def test_an_output_let_go_of_finds_nothing() -> None:
    """An output pipeplex no longer reads may be gone, and its number another pipe's: it
    finds nothing, nor does any output after a clean end (the Python API leaves a
    program's orphans be)."""
    with _output_told(["sleep", "300"]) as (guardian, holder, ours):
        guardian.output_ended(ours)
        _die(guardian)
        assert holder.poll() is None, "a process holding a pipe let go of was signalled"
    with _output_told(["sleep", "300"]) as (guardian, holder, _):
        guardian.close()
        assert holder.poll() is None, "a process holding an output was signalled at a clean end"


def test_a_process_that_held_the_pipe_before_the_spawn_is_left_alone() -> None:
    """Only what started since a member's spawn is taken for its own by the pipe: one that
    held it before (the pipe was passed to it by whoever made it) is a stranger."""
    with _output_told(["sleep", "300"], started_before=True) as (guardian, holder, _):
        _die(guardian)
        assert holder.poll() is None, "a process that had the pipe before was signalled"




def _drained(guardian: Guardian) -> None:
    """Until the guardian has read and taken every line sent it so far: the pipe is empty
    once it read them, and once it read one more line, it had taken those before it."""
    for _ in range(2):
        deadline = time.monotonic() + DEADLINE
        while int.from_bytes(fcntl.ioctl(guardian._fd, termios.FIONREAD, b"\0" * 4),
                             sys.byteorder):
            assert time.monotonic() < deadline, "the guardian does not read"
        guardian._say("\n")  # (a line that means nothing)


def test_a_group_number_a_stranger_took_while_pipeplex_could_not_say_is_left_alone() -> None:
    """A group that empties while pipeplex is stopped (SIGSTOP, a debugger) is never
    unregistered; its number may then go to a stranger's setsid. The guardian knows the
    leader it was told of by its start time, and leaves the stranger alone."""
    if not os.access(LAST_PID, os.W_OK):
        pytest.skip("cannot choose the next pid here (root only)")
    guardian = Guardian()
    stranger: subprocess.Popen[bytes] | None = None
    try:
        for _ in range(5):  # (another process may take the number first)
            member = subprocess.Popen(["sleep", "300"], start_new_session=True)
            guardian.register(member.pid)
            _drained(guardian)
            member.kill()
            member.wait()  # its group is empty, and pipeplex said nothing
            Path(LAST_PID).write_text(str(member.pid - 1))
            stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
            if stranger.pid == member.pid:
                break
            stranger.kill()
            stranger.wait()
            stranger = None
        if stranger is None:
            pytest.skip("the pid numbers went to other processes")
        _die(guardian)
        assert stranger.poll() is None, "the guardian signalled a stranger's group"
    finally:
        guardian.close()
        if stranger is not None:
            stranger.kill()
            stranger.wait()


EMPTIED_UNSEEN = """
import asyncio, os, signal, subprocess

from pipeplex import Bus, ProcSpec
from pipeplex.participants import Process
from pipeplex.participants.orphans import _become_subreaper

def group_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[2]
    except OSError:  # (gone since /proc was listed)
        return None

async def main():
    _become_subreaper()  # (the member's child comes to this process, which reaps it)
    spec = ProcSpec("m", ("sh", "-c", "sleep 300 & echo $!"), pty="pipes")
    member = Process(spec, Bus(), on_crash=print)
    await member.start()
    await asyncio.wait_for(asyncio.shield(member.exit_future), 10)
    for _ in range(5):  # the group empties, unseen (no pass of the loop): its number is free
        left = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != member.pid
                and group_of(p) == str(member.pid)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        with open("{last_pid}", "w") as f:
            f.write(str(member.pid - 1))
        stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
        if stranger.pid == member.pid:
            break
        stranger.kill()
        stranger.wait()
    else:
        print("skip")
        return
    print(member.signal(signal.SIGTERM), stranger.poll(), flush=True)
    stranger.kill()
    stranger.wait()
    member.close()

asyncio.run(main())
"""


def test_a_group_number_a_stranger_took_is_not_signalled_by_the_stop() -> None:
    """The same, seen by pipeplex's own stop (pipeplex continued after SIGSTOP, then
    stopped): its member's leader was reaped, so a process of the group's number is a
    stranger's, and the group is gone for it."""
    if not os.access(LAST_PID, os.W_OK):
        pytest.skip("cannot choose the next pid here (root only)")
    result = subprocess.run([sys.executable, "-c", EMPTIED_UNSEEN.replace("{last_pid}", LAST_PID)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    if result.stdout == "skip\n":
        pytest.skip("the pid numbers went to other processes")
    assert result.stdout == "False None\n", result.stdout + result.stderr


LAST_PID = "/proc/sys/kernel/ns_last_pid"
"""The last pid given out (writable by root): the next process gets the number after it."""


def _ticks_now() -> int:
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))


def _started(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return int(f.read().rsplit(b")", 1)[1].split()[19])


ORPHAN_THEN_DIE = """
import os, signal, sys

from pipeplex import Plex

with Plex() as plex:
    member = plex.spawn("m", ["sh", "-c", "setsid env -i sleep 299.{tag} & echo $!"])
    print(member.expect(r"(\\d+)")[1], flush=True)
    member.wait(10)  # (its group is empty now: the orphan is outside it, on its own)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_an_orphan_that_dropped_its_environment_dies_with_a_plex_killed() -> None:
    """The Python API takes no subreaper: a member's `setsid env -i` child, orphaned, goes
    to PID 1, beyond the group and the run id. It still holds the member's stderr pipe, by
    which the guardian finds it when the program using the plex is killed."""
    _dies_with_its_killed_program(ORPHAN_THEN_DIE.format(tag=os.getpid()), "the orphan")


def _dies_with_its_killed_program(script: str, what: str) -> None:
    """Run ``script``, a program using a plex that prints a pid and then kills itself with
    SIGKILL: that process must end with it (the guardian's work); killed here if not."""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == -signal.SIGKILL, result.stderr
    pid = int(result.stdout.split()[0])
    try:
        assert _exits_within(pid, DEADLINE), f"{what} outlived the plex's program"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


HUNG_UP_THEN_DIE = """
import os, signal, sys, time

from pipeplex import Plex

def guardians():  # (the plex's thread started them: each task has children of its own)
    found = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{{task}}/children") as f:
            for child in f.read().split():
                try:  # (by its program: a fork not yet a guardian has this script's words)
                    argv = open(f"/proc/{{child}}/cmdline", "rb").read().split(b"\\0")
                except OSError:
                    continue
                if {label!r} in argv:
                    found.append(int(child))
    return found

def holds_a_master(pid):
    try:
        return any(os.readlink(f"/proc/{{pid}}/fd/{{fd}}").endswith("ptmx")
                   for fd in os.listdir(f"/proc/{{pid}}/fd"))
    except OSError:
        return False

def until(what, done):
    deadline = time.monotonic() + 10
    while not done():
        assert time.monotonic() < deadline, what
        os.sched_yield()

with Plex() as plex:
    member = plex.spawn("m", ["sh", "-c", "setsid env -i sleep 298.{tag} </dev/null "
                                          ">/dev/null 2>&1 & echo $!; wait"], pty=True)
    daemon = int(member.expect(r"(\\d+)")[1])
    print(daemon, flush=True)
    # (setsid, then env, exec their way to sleep)
    until("the daemon did not start",
          lambda: open(f"/proc/{{daemon}}/cmdline", "rb").read().startswith(b"sleep"))
    if {replace}:  # the guardian killed: the one in its place is handed the master too
        first, = guardians()
        os.kill(first, signal.SIGKILL)
        until("no guardian took the master",
              lambda: any(g != first and holds_a_master(g) for g in guardians()))
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("replace", [False, True], ids=["first guardian", "replacement"])
def test_a_daemon_below_a_full_terminals_shell_dies_with_pipeplex_killed(
        replace: bool) -> None:
    """With pty = true the member's terminal is its controlling one: pipeplex's death closed
    its master, the kernel hung it up, and the shell died of that SIGHUP before the
    guardian looked below it, so its `setsid env -i` child (no group, no run id, none of
    the member's streams) was left to PID 1. The guardian holds the master now (a guardian
    started in place of a killed one too), and finds the child below the shell."""
    _dies_with_its_killed_program(HUNG_UP_THEN_DIE.format(tag=os.getpid(), replace=replace,
                                                          label=LABEL.encode()),
                                  "the daemon")


def test_a_line_the_guardian_cannot_read_costs_nothing_else() -> None:
    """A stream named with a space, a group past any pid: ignored, and the registered group
    is still stopped when pipeplex ends."""
    with _spawn_told(["sleep", "300"]) as (guardian, member):
        guardian._say("?1 12:/a dir/pts/3 nonsense\n+99999999999999999999999\n?x\n")
        guardian.register(member.pid)
        guardian.close()
        assert member.wait(timeout=DEADLINE) == -signal.SIGTERM
        assert guardian._proc.returncode == 0  # it went through its whole end


def test_a_spawn_that_failed_is_forgotten() -> None:
    """Its stdin may be a pty whose number, freed, goes to a stranger's terminal: whoever
    holds that stdin later is not ours. Process tells the guardian so when a spawn fails."""
    with _spawn_told(["sleep", "300"]) as (guardian, stranger):
        guardian.spawn_failed()
        guardian.close()
        assert not _exits_within(stranger.pid, 0.0)  # the guardian has exited: decided

    told: list[str] = []

    async def failing_spawn() -> None:
        guardian = Guardian()
        guardian.spawn_failed = lambda: told.append("failed")  # type: ignore[method-assign]
        member = Process(ProcSpec("m", ("/nonexistent/program",)), Bus(), on_crash=print,
                         guardian=guardian)
        try:
            with pytest.raises(SpawnError):
                await member.start()
        finally:
            guardian.close()

    asyncio.run(failing_spawn())
    assert told == ["failed"]


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(child) for child in f.read().split()]
    except OSError:
        return []


def _alive_with_cmdline(*cmdlines: list[str]) -> list[int]:
    wanted = {b"".join(word.encode() + b"\0" for word in cmdline) for cmdline in cmdlines}
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read() in wanted:
                        found.append(int(entry))
            except OSError:
                pass
    return found


@pytest.mark.stress
@pytest.mark.skipif(os.environ.get("PIPEPLEX_STRESS") != "1",
                    reason="heavy (about 30 s): set PIPEPLEX_STRESS=1")
@pytest.mark.parametrize("pty", ["stdout", "true", "false"])
def test_no_member_outlives_pipeplex_killed_anywhere_in_a_start_wave(
        tmp_path: Path, pty: str) -> None:
    """SIGKILL after the k-th of 200 spawns, for k from 1 to 199: every member dies, even
    with an empty environment (``env -i``), one that also lets go of its stdin at once, and
    whether or not its spawn was registered."""
    seconds = f"299.{os.getpid()}"  # tells this test's members from anyone's
    dropping = f"exec 0</dev/null; exec env -i sleep {seconds}"
    for k in (1, 2, 5, 20, 50, 100, 150, 199) * 3:
        argv = [sys.executable, "-m", "pipeplex", "run", "--no-console", "--pty", pty,
                "--run-dir", str(tmp_path / f"run-{k}")]
        for i in range(200):
            command = f"sh -c '{dropping}'" if i % 2 else f"env -i sleep {seconds}"
            argv += ["-p", f"m{i}={command}"]
        plex = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = time.monotonic() + 60
        while len(children := _children(plex.pid)) <= k and time.monotonic() < deadline:
            pass  # (+1: the guardian)
        plex.kill()
        plex.wait()
        for child in children:  # the guardian among them: it has done its work once gone
            assert _exits_within(child, DEADLINE), f"killed after spawn {k}: {child} lives"
        # A member at any stage: still pipeplex's fork (pty = true spawns with a preexec_fn),
        # env, or sleep.
        left = _alive_with_cmdline(argv, ["sh", "-c", dropping], ["env", "-i", "sleep", seconds],
                                   ["sleep", seconds])
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, f"killed after spawn {k}: {len(left)} member(s) outlived pipeplex"


def test_what_a_member_starts_as_pipeplex_dies_is_frozen_and_found(tmp_path: Path) -> None:
    """A member that keeps starting children that leave its group and drop their
    environment (setsid env -i) as fast as it can: pipeplex killed meanwhile, one started
    between the guardian's look and its SIGTERM was orphaned as that SIGTERM ended its
    parent, below nothing the guardian followed. The guardian stops them all first
    (SIGSTOP: none forks), then looks, then signals."""
    seconds = f"298.{os.getpid()}"
    forks = f"i=0; while [ $i -lt 400 ]; do setsid env -i sleep {seconds} & i=$((i+1)); done"
    plex = subprocess.Popen(
        [sys.executable, "-m", "pipeplex", "run", "--no-console", "--run-dir",
         str(tmp_path / "run"), "-p", f"m=sh -c '{forks}; exec sleep {seconds}'"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert plex.stdout is not None
        while b"m * started" not in (line := plex.stdout.readline()):
            assert line, "pipeplex ended before its member started"
        guardians = _children(plex.pid)  # (the guardian, and the member)
        plex.kill()
        plex.wait()
        for child in guardians:
            assert _exits_within(child, DEADLINE), f"{child} lives on"
        left = _alive_with_cmdline(["sleep", seconds])
    finally:
        _end(plex)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"{len(left)} of the member's children outlived pipeplex"


def test_a_helper_a_sigterm_handler_starts_holding_the_output_dies_with_pipeplex(
        tmp_path: Path) -> None:
    """pipeplex killed; the guardian's SIGTERM has the member's handler start a helper in a
    session of its own, without the run's id (setsid env -i), and exit at once: orphaned
    to PID 1, below nothing the guardian follows. It holds the member's output pipes all
    the same, by which the guardian's looks while they answer SIGTERM find it (the first
    look, before the SIGTERM, was the only one that looked at the pipes)."""
    fifo = tmp_path / "helper.fifo"
    os.mkfifo(fifo)
    gate = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # (never EOF, never blocks)
    member = tmp_path / "member.sh"
    pause = f'{shlex.quote(sys.executable)} -c "import signal; signal.pause()"'
    # ($! is the helper's pid: setsid forks only a group's leader, which a job of a
    # shell without job control is not.)
    member.write_text(f"trap 'setsid env -i {pause} & echo $! > {fifo}; exit 0' TERM\n"
                      f"{pause} &\necho up\nwait\n")
    plex = subprocess.Popen(
        [sys.executable, "-m", "pipeplex", "run", "--no-console", "--pty", "false",
         "--run-dir", str(tmp_path / "run"), "-p", f"m=sh {member}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
        bufsize=0)  # (no reading ahead: select then sees what is left to read)
    pid = None
    try:
        _line_with(plex, b"m | up")
        plex.kill()
        plex.wait()
        assert select.select([gate], [], [], DEADLINE)[0], "the member's handler never ran"
        pid = int(os.read(gate, 100).split()[0])
        assert _exits_within(pid, DEADLINE), "the handler's helper outlived pipeplex"
    finally:
        _end(plex)
        os.close(gate)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_one_that_leaves_its_group_in_its_sigterm_handler_gets_no_second_sigterm(
        tmp_path: Path) -> None:
    """pipeplex killed: a member's child takes the guardian's SIGTERM, calls setsid() in its
    handler and cleans up for a moment. Its new group, found by the guardian's next look,
    is no new process: it is not sent SIGTERM again, which to many programs means "now"."""
    fifo = tmp_path / "said.fifo"
    os.mkfifo(fifo)
    gate = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # (never EOF, never blocks)
    child = tmp_path / "child.py"
    child.write_text(  # (its clean-up takes 0.3 s: the pace under test, no wait of ours)
        "import os, signal, sys\n"
        "out = os.open(sys.argv[1], os.O_WRONLY)\n"
        "def term(*_):\n"
        "    os.setsid()\n"
        "    os.write(out, b'term\\n')\n"
        "    again = signal.sigtimedwait([signal.SIGTERM], 0.3)\n"
        "    os.write(out, b'again\\n' if again else b'clean\\n')\n"
        "    os._exit(0)\n"
        "signal.signal(signal.SIGTERM, term)\n"
        "os.write(out, b'up\\n')\n"
        "while True:\n"
        "    signal.pause()\n")
    member = f"{shlex.quote(sys.executable)} {child} {fifo} & wait"
    plex = subprocess.Popen(
        [sys.executable, "-m", "pipeplex", "run", "--no-console", "--run-dir",
         str(tmp_path / "run"), "-p", f"m=sh -c {shlex.quote(member)}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    said = b""
    try:
        while b"up\n" not in said:
            assert select.select([gate], [], [], DEADLINE)[0], said
            said += os.read(gate, 100)
        plex.kill()
        plex.wait()
        while b"clean\n" not in said and b"again\n" not in said:
            assert select.select([gate], [], [], DEADLINE)[0], said
            said += os.read(gate, 100)
    finally:
        _end(plex)
        os.close(gate)
    assert said == b"up\nterm\nclean\n", said


async def _passes(count: int) -> None:
    """Let the loop run ``count`` passes (what is readable now is handled meanwhile)."""
    loop = asyncio.get_running_loop()
    for _ in range(count):
        done = loop.create_future()
        loop.call_soon(done.set_result, None)
        await done


def test_an_early_guardian_killed_before_the_run_is_replaced_quietly_and_once() -> None:
    """The guardian started as pipeplex loads was killed before the run made its own: one
    is started in its place without a word (it knew nothing), and the next guardian's death
    is one replacement, said once (a second watch of one guardian, left registered, took
    each replacement for dead in turn, so the cast was stopped by its own guardians)."""
    from pipeplex._guardian_process import spawn_guardian

    async def scenario() -> tuple[list[str], bool]:
        early, fd, hands = spawn_guardian()
        early.kill()
        early.wait()
        said: list[str] = []
        lost = asyncio.Event()
        guardian = Guardian(on_lost=lambda text: (said.append(text), lost.set()),
                            spawned=(early, fd, hands))
        try:
            assert guardian.pid != early.pid and not said
            os.kill(guardian.pid, signal.SIGKILL)
            await asyncio.wait_for(lost.wait(), DEADLINE)
            await _passes(20)
            return said, guardian._proc.poll() is None
        finally:
            guardian.close()

    said, alive = asyncio.run(scenario())
    assert len(said) == 1 and "is gone; started another" in said[0], said
    assert alive


def test_a_group_is_let_go_of_once_empty(tmp_path: Path) -> None:
    """Its member exited, a process it started held the group, then went: the guardian is
    told, and the group is never signalled again."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        guardian = Guardian()
        let_go: asyncio.Future[int] = loop.create_future()
        unregister = guardian.unregister

        def spy(pgid: int) -> None:
            if not let_go.done():
                let_go.set_result(pgid)
            unregister(pgid)

        guardian.unregister = spy  # type: ignore[method-assign]
        spec = ProcSpec("m", ("sh", "-c", f"cat {gate} >/dev/null & exit 0"), pty="pipes")
        member = Process(spec, Bus(), on_crash=print, guardian=guardian)
        try:
            await member.start()
            await asyncio.wait_for(asyncio.shield(member.exit_future), DEADLINE)
            assert member.has_leftovers()  # the cat holds the group
            assert not let_go.done()
            await asyncio.to_thread(lambda: open(gate, "wb").close())  # the cat's EOF
            assert await asyncio.wait_for(let_go, DEADLINE) == member.pid
            assert not member.group_alive()
            assert not member.signal(signal.SIGTERM)
        finally:
            member.signal(signal.SIGKILL)
            member.close()
            guardian.close()

    asyncio.run(scenario())


def test_a_group_that_cannot_be_watched_is_taken_for_alive(tmp_path: Path) -> None:
    """Out of descriptors when its member exits leaving many processes: the group is not
    watched (it stays registered, and is signalled as before), and the run goes on."""
    import resource

    crashes: list[BaseException] = []

    async def scenario() -> tuple[bool, bool]:
        spec = ProcSpec("m", ("sh", "-c", "for i in $(seq 80); do sleep 300 & done; exit 0"),
                        pty="pipes")
        member = Process(spec, Bus(), on_crash=crashes.append)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        try:
            await member.start()
            # Room for the scan, not for a pidfd per process left.
            resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 20,
                                                        hard))
            # (The watch is tried in the exit's pass: before this wait returns.)
            await asyncio.wait_for(asyncio.shield(member.exit_future), DEADLINE)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        alive = member.has_leftovers()
        reached = member.signal(signal.SIGKILL)
        await asyncio.wait_for(member.wait_exited(), DEADLINE)
        member.close()
        return alive, reached

    alive, reached = asyncio.run(scenario())
    assert crashes == []
    assert alive and reached


def _wake_ups(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError(f"no voluntary_ctxt_switches in /proc/{pid}/status")


def test_a_start_wave_wakes_the_guardian_a_few_times_not_once_per_member() -> None:
    """Each registration is written at its spawn, but the guardian reads a burst's lines
    together: woken for each, it would take turns with pipeplex on a busy core (23 ms of
    a 100-member start here). Its wake-ups are counted over its whole life: at most two
    a quarter second (the first line of a burst, then the rest), and a few to start,
    however long the wave takes; 200 lines would be 200."""
    guardian = Guardian()
    began = time.monotonic()
    try:
        for _ in range(100):
            member = subprocess.Popen(["true"], start_new_session=True)
            guardian.register(member.pid)
            member.wait()
            guardian.unregister(member.pid)
        woken = _wake_ups(guardian.pid)
        quarters = math.ceil((time.monotonic() - began) / 0.25)
    finally:
        guardian.close()
    assert woken <= min(2 * quarters + 10, 199), (
        f"the guardian woke {woken} times for 200 lines in {quarters} quarter seconds")


def test_the_guardian_does_not_pass_for_a_member_of_an_outer_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """pipeplex run as a member of another: its guardian carries neither the outer run's
    id nor the member's name, so the outer stop never takes it for a process the member
    left behind (and kills it before it has stopped the inner members)."""
    monkeypatch.setenv("PIPEPLEX_RUN_ID", "outer-run")
    monkeypatch.setenv("PIPEPLEX_NAME", "inner")
    guardian = Guardian()
    try:
        with open(f"/proc/{guardian.pid}/environ", "rb") as f:
            environ = f.read().split(b"\0")
    finally:
        guardian.close()
    assert not [v for v in environ if v.startswith((b"PIPEPLEX_RUN_ID=", b"PIPEPLEX_NAME="))]


def test_what_was_left_outside_the_group_gets_one_escalation_a_few_watched_at_a_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Five daemons with the member's name and the run's id, ignoring SIGTERM: all get
    SIGTERM at once, one grace, then SIGKILL at once (each step said once), while no more
    than two are held (a pidfd each) at a time."""
    from pipeplex.engine import _stopping_reach

    monkeypatch.setattr(_stopping_reach, "ESCAPED_AT_ONCE", 2)
    held: list[int] = []
    hold = _stopping_reach.hold

    def counted(processes: list[tuple[int, int]], limit: int
                ) -> tuple[list[tuple[tuple[int, int], int]], list[tuple[int, int]]]:
        pairs, rest = hold(processes, limit)
        held.append(len(pairs))
        return pairs, rest

    monkeypatch.setattr(_stopping_reach, "hold", counted)
    env = {**os.environ, "PIPEPLEX_RUN_ID": f"passes-{os.getpid()}", "PIPEPLEX_NAME": "m"}
    daemons = [_stubborn(env) for _ in range(5)]

    try:
        notes = _stop_escaped(env["PIPEPLEX_RUN_ID"])
        # (In the order of /proc, by number: a pid counter that wrapped gives a smaller one.)
        pids = ", ".join(map(str, sorted(d.pid for d in daemons)))
        assert notes == [
            f"left 5 processes (pid {pids}) outside its process group; sent them SIGTERM",
            f"5 processes (pid {pids}) it left outside its process group ignored SIGTERM for "
            "0.5 s; sent them SIGKILL"], notes
        assert all(d.wait(timeout=DEADLINE) == -signal.SIGKILL for d in daemons)
        assert held and max(held) <= 2, held
    finally:
        for daemon in daemons:
            _reap(daemon)


def test_the_search_lets_the_loop_run_between_slices_of_proc(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """With thousands of processes on the machine, reading each one's environment takes tens
    of milliseconds: the loop (the members' output) goes on between slices of /proc. What is
    there is found all the same."""
    from pipeplex.engine.stopping import Stopper
    from pipeplex.participants import _escaped

    monkeypatch.setattr(_escaped, "SEARCH_SLICE", 4)
    env = {**os.environ, "PIPEPLEX_RUN_ID": f"slices-{os.getpid()}", "PIPEPLEX_NAME": "m"}
    daemon = _stubborn(env)

    async def scenario() -> list[tuple[int, str]]:
        loop = asyncio.get_running_loop()
        ticks = 0

        def tick() -> None:
            nonlocal ticks
            ticks += 1
            loop.call_soon(tick)

        bus = Bus()
        notes: list[tuple[int, str]] = []  # (loop passes so far, what was said)
        bus.subscribe(lambda e: notes.append((ticks, e.text)) if hasattr(e, "text") else None)
        stopper = Stopper(bus, grace=0.5, run_id=env["PIPEPLEX_RUN_ID"])
        stopper.begin()
        member = Process(ProcSpec("m", ("true",)), bus, on_crash=print)
        loop.call_soon(tick)
        await stopper.outside.stop_escaped([member])
        return notes

    try:
        notes = asyncio.run(scenario())
        passes, said = notes[0]
        assert said == (f"left 1 process (pid {daemon.pid}) outside its process group; "
                        "sent it SIGTERM"), notes
        assert passes >= 2, f"the loop ran {passes} times during the search"
    finally:
        _reap(daemon)


def test_one_that_drops_its_environment_on_sigterm_still_gets_sigkill() -> None:
    """Found by its environment, then followed by pid and start time: a process that
    execs with an empty environment as it handles SIGTERM still gets SIGKILL after the
    grace, and the first announcement said which process it was."""

    run_id = f"drops-{os.getpid()}"
    code = ("import os, signal\n"
            "signal.signal(signal.SIGTERM, lambda *a: os.execve('/bin/sleep', ['sleep', '300'],"
            " {}))\n"
            "print('ready', flush=True)\n"
            "signal.pause()\n")
    with _escaped_daemon(run_id, code) as daemon:
        notes = _stop_escaped(run_id)
        assert notes == [
            f"left 1 process (pid {daemon.pid}) outside its process group; sent it SIGTERM",
            f"1 process (pid {daemon.pid}) it left outside its process group ignored SIGTERM "
            "for 0.5 s; sent it SIGKILL"], notes
        assert daemon.wait(timeout=DEADLINE) == -signal.SIGKILL


def test_what_a_member_left_outside_its_group_gets_its_stop_signal() -> None:
    """A daemon a member started (setsid) is part of the same program: it gets the member's
    stop_signal, not SIGTERM, and the note names it. This one ignores SIGTERM and ends
    cleanly on SIGINT, within the grace: no SIGKILL."""
    run_id = f"stopsig-{os.getpid()}"
    code = ("import signal, sys\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "signal.signal(signal.SIGINT, lambda *a: sys.exit(7))\n"
            "print('ready', flush=True)\n"
            "while True:\n"
            "    signal.pause()\n")
    with _escaped_daemon(run_id, code) as daemon:
        notes = _stop_escaped(run_id, stop_signal=signal.SIGINT)
        assert notes == [
            f"left 1 process (pid {daemon.pid}) outside its process group; sent it SIGINT"
        ], notes
        assert daemon.wait(timeout=DEADLINE) == 7


def test_a_pidfd_past_1023_can_be_waited_for() -> None:
    """With a large cast, pidfds past 1023 are common; select() cannot take them."""
    import resource

    from pipeplex.participants._group import exits_within

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1500:
        pytest.skip("this machine allows no descriptor past 1500")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048) if hard == resource.RLIM_INFINITY
                                                else min(max(soft, 2048), hard), hard))
    child = subprocess.Popen(["cat"], stdin=subprocess.PIPE)
    fd = os.pidfd_open(child.pid)
    high = os.dup2(fd, 1500)
    try:
        assert not exits_within(high, 0)
        assert child.stdin is not None
        child.stdin.close()  # cat ends at EOF
        assert exits_within(high, DEADLINE)
    finally:
        os.close(fd)
        os.close(high)
        child.wait()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_processes_left_outside_met_twice_get_one_escalation() -> None:
    """A restart's stop and the end of the cast come upon the same process while its
    escalation is under way: SIGTERM and its announcement once; the second waits."""

    env = {**os.environ, "PIPEPLEX_RUN_ID": f"twice-{os.getpid()}", "PIPEPLEX_NAME": "m"}
    daemon = _stubborn(env)
    try:
        notes = _stop_escaped(env["PIPEPLEX_RUN_ID"], at_once=2)
        assert [n.split(" (pid")[0] for n in notes] == ["left 1 process", "1 process"], notes
        assert daemon.wait(timeout=DEADLINE) == -signal.SIGKILL
    finally:
        _reap(daemon)


@pytest.mark.parametrize("when", ["mid-grace", "before-it-began"])
def test_a_stop_cancelled_leaves_its_escalation_to_the_next(when: str) -> None:
    """The stop escalating a process is cancelled (mid-grace, or before its escalation even
    began): the next stop takes the process over, to SIGKILL, and never hangs."""
    from pipeplex.engine.stopping import Stopper

    env = {**os.environ, "PIPEPLEX_RUN_ID": f"cancelled-{os.getpid()}", "PIPEPLEX_NAME": "m"}
    daemon = _stubborn(env)

    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        bus = Bus()
        notes: list[str] = []
        termed = loop.create_future()

        def note(e: object) -> None:
            text = getattr(e, "text", None)
            if text is not None:
                notes.append(text)
                if "SIGTERM" in text and not termed.done():
                    termed.set_result(None)

        bus.subscribe(note)
        stopper = Stopper(bus, grace=0.5, run_id=env["PIPEPLEX_RUN_ID"])
        stopper.begin()
        member = Process(ProcSpec("m", ("true",)), bus, on_crash=print)
        first = asyncio.ensure_future(stopper.outside.stop_escaped([member]))
        if when == "before-it-began":
            loop.call_soon(first.cancel)  # after its first step, before its escalation's
            await asyncio.gather(first, return_exceptions=True)
            second = asyncio.ensure_future(stopper.outside.stop_escaped([member]))
        else:
            await asyncio.wait_for(termed, DEADLINE)
            second = asyncio.ensure_future(stopper.outside.stop_escaped([member]))
            loop.call_soon(first.cancel)  # once the second waits for the first
            await asyncio.gather(first, return_exceptions=True)
        await asyncio.wait_for(second, DEADLINE)
        return notes

    try:
        notes = asyncio.run(scenario())
        assert daemon.wait(timeout=DEADLINE) == -signal.SIGKILL, notes
        assert notes[-1].startswith("1 process (pid"), notes
        assert notes[-1].endswith("ignored SIGTERM for 0.5 s; sent it SIGKILL"), notes
    finally:
        _reap(daemon)


@pytest.mark.parametrize("resumed", [True, False], ids=["resumed", "still-stopped"])
def test_a_stopped_guardian_does_not_stop_pipeplex_with_it(
        resumed: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The guardian stopped (SIGSTOP) while pipeplex keeps telling it things: its pipe
    fills, and a blocking write held pipeplex's whole loop (no status, no Ctrl-C) until
    it went on. What it cannot take waits, in order; resumed, it gets all of it as the run
    closes. A run that closes while it is still stopped does not wait long for it, nor
    leave it to act on lines it never read (the last ones let groups go): it is killed."""
    from pipeplex.participants import guardian as guardian_module

    monkeypatch.setattr(guardian_module, "CLOSE_WAIT", DEADLINE if resumed else 0.2)
    said: list[str] = []

    async def scenario() -> Guardian:
        guardian = Guardian(on_lost=said.append)
        os.kill(guardian.pid, signal.SIGSTOP)
        for _ in range(100_000):  # (200 kB: three times what a pipe holds)
            guardian.spawn_failed()  # ("!": harmless to a guardian, whatever it held)
        assert guardian._pending, "a stopped guardian took everything"
        return guardian

    guardian = asyncio.run(scenario())  # (returns: the loop was never held)
    if resumed:
        os.kill(guardian.pid, signal.SIGCONT)
    guardian.close()
    assert guardian._proc.returncode == (0 if resumed else -signal.SIGKILL)
    assert said == ([] if resumed else [
        f"the guardian process (pid {guardian.pid}) did not take the run's last lines "
        "within 0.2 s (stopped?): killed it"])


def test_a_stopped_guardian_of_a_quiet_cast_is_replaced(tmp_path: Path) -> None:
    """A quiet cast tells its guardian nothing, so a stopped one never fills its pipe: the
    run finds it stopped where it looks once a second anyway, kills it and starts another,
    which a SIGKILL of pipeplex then finds at work."""
    seconds = f"297.{os.getpid()}"
    plex = subprocess.Popen(
        [sys.executable, "-m", "pipeplex", "run", "--no-console", "--run-dir",
         str(tmp_path / "run"), "-p", f"m=sleep {seconds}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
        bufsize=0)  # (no reading ahead: select then sees what is left to read)
    stopped = 0
    try:
        line = _line_with(plex, b"m * started")
        [stopped] = [pid for pid in _children(plex.pid)
                     if LABEL.encode() in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")]
        os.kill(stopped, signal.SIGSTOP)
        line = _line_with(plex, b"the guardian process")
        assert line.decode().startswith(f"pipeplex * the guardian process (pid {stopped}) was "
                                        "stopped (SIGSTOP?): killed it; started another"), line
        plex.kill()
        plex.wait()
        [member] = _alive_with_cmdline(["sleep", seconds]) or [0]
        assert member == 0 or _exits_within(member, DEADLINE), "the member outlived pipeplex"
    finally:
        _end(plex)
        for pid in [*_alive_with_cmdline(["sleep", seconds]), *([stopped] if stopped else [])]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _end(plex: subprocess.Popen[bytes]) -> None:
    """Kill ``plex`` if it still runs, and let go of its output."""
    if plex.poll() is None:
        plex.kill()
        plex.wait()
    if plex.stdout is not None:
        plex.stdout.close()


def _line_with(plex: subprocess.Popen[bytes], text: bytes) -> bytes:
    """The first line of ``plex``'s output that holds ``text``, within the deadline (its
    stdout unbuffered)."""
    assert plex.stdout is not None
    deadline = time.monotonic() + DEADLINE
    while True:
        left = deadline - time.monotonic()
        assert left > 0 and select.select([plex.stdout], [], [], left)[0], f"no {text!r}"
        line = plex.stdout.readline()
        assert line, f"pipeplex ended before {text!r}"
        if text in line:
            return line


REPLACED_LATE_THEN_DIE = """
import asyncio, errno, os, signal, subprocess, sys

from pipeplex.participants import Guardian, guardian as guardian_module

real = guardian_module.spawn_guardian
refusals = [OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))]

def spawn_guardian():  # (the process limit, for one start)
    if refusals:
        raise refusals.pop()
    return real()

async def main():
    lost = asyncio.Event()
    guardian = Guardian(on_lost=lambda text: (print(text, flush=True), lost.set()))
    first = guardian.pid
    guardian_module.spawn_guardian = spawn_guardian
    guardian_module.RETRY_AFTER = 0.0  # (tried again at the next line, not a second on)
    os.kill(first, signal.SIGKILL)
    await lost.wait()
    member = subprocess.Popen(["sleep", "300"], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    guardian.register(member.pid)  # (the news: the one started now is told it)
    print(first, member.pid, guardian.pid, flush=True)
    os._exit(0)  # as a SIGKILL would

asyncio.run(main())
"""


def test_a_replacement_that_could_not_start_is_not_tried_at_every_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The next try waits RETRY_AFTER: a start wave's lines, one per spawn, would spend
    every try in a few milliseconds of the same shortage."""
    from pipeplex.participants import guardian as guardian_module

    tries: list[None] = []

    def refused() -> tuple[subprocess.Popen[bytes], int, int]:
        tries.append(None)
        raise OSError(11, os.strerror(11))

    async def scenario() -> Guardian:
        lost = asyncio.Event()
        guardian = Guardian(on_lost=lambda text: lost.set())
        monkeypatch.setattr(guardian_module, "spawn_guardian", refused)
        os.kill(guardian.pid, signal.SIGKILL)
        await asyncio.wait_for(lost.wait(), DEADLINE)
        for group in range(100_000, 100_050):  # (a wave: none of these ids is signalled)
            guardian.register(group)
        return guardian

    guardian = asyncio.run(scenario())
    guardian.close()
    assert len(tries) == 1


def test_a_guardian_that_could_not_be_replaced_at_once_is_at_the_next_change() -> None:
    """A killed guardian whose replacement could not start (no process to be had, for a
    moment) is replaced at the next thing the cast tells it; the one started then knows
    the cast, that news included, and stops it when pipeplex dies."""
    script = subprocess.run([sys.executable, "-c", REPLACED_LATE_THEN_DIE], capture_output=True,
                            text=True, timeout=DEADLINE)
    *said, pids = script.stdout.splitlines()
    first, member, second = (int(pid) for pid in pids.split())
    try:
        assert said == [
            f"the guardian process (pid {first}) is gone; could not start another (Resource "
            "temporarily unavailable); tried again as the cast changes: the members are "
            "stopped as usual, but if pipeplex itself is killed now, they may outlive it",
            f"started a guardian process (pid {second}) in place of the one that was gone "
            f"(pid {first}); it knows the cast's groups"], script.stderr
        assert _exits_within(member, DEADLINE), "the member outlived its run"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def test_a_guardian_stuck_with_a_full_pipe_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopped for good, the guardian would hold registrations of groups let go since
    (their ids free for strangers) and act on them should pipeplex die: once its pipe has
    stayed full for a while, it is killed and another started, told the cast as it is."""
    from pipeplex.participants import guardian as guardian_module

    monkeypatch.setattr(guardian_module, "STALLED_AFTER", 0.2)
    said: list[str] = []

    async def scenario(group: int) -> tuple[Guardian, int]:
        lost = asyncio.Event()
        guardian = Guardian(on_lost=lambda text: (said.append(text), lost.set()))
        stuck = guardian.pid
        guardian.register(group)  # (told again to the next one)
        os.kill(stuck, signal.SIGSTOP)
        for _ in range(100_000):
            guardian.spawn_failed()
        await asyncio.wait_for(lost.wait(), DEADLINE)
        guardian.unregister(group)  # (let go: the next one must not act on it)
        return guardian, stuck

    member = subprocess.Popen(["sleep", "60"], start_new_session=True)  # (a group of its own)
    try:
        guardian, stuck = asyncio.run(scenario(member.pid))
    finally:
        member.kill()
        member.wait()
    assert guardian.pid != stuck
    assert said == [f"the guardian process (pid {stuck}) left its pipe full for 0.2 s "
                    f"(stopped?): killed it; started another (pid {guardian.pid}), which "
                    "knows the cast's groups"]
    assert _exits_within(stuck, DEADLINE)
    guardian.close()
    assert guardian._proc.returncode == 0


def test_the_looks_below_pipeplex_come_ten_times_a_second_for_a_second_after_a_spawn() -> None:
    """Most daemons fork away as their member starts: for a second after each spawn the
    guardian looks for the orphans pipeplex adopted every tenth of a second, then every
    second; where pipeplex is not the cast's subreaper (the Python API), never."""
    from pipeplex import _guardian_main as program

    now = [100.0]
    told = program.Told(clock=lambda: now[0])
    assert told.until_look() is None
    told.take(b"*")
    assert told.until_look() == 0
    told.look_below(os.getppid())  # (this process's parent: its children, read)
    assert told.until_look() == 1000
    now[0] = 100.5
    told.take(b"+%d" % os.getpid())  # a spawn
    assert told.until_look() == 0  # (a tenth of a second after the last look is past)
    told.look_below(os.getppid())
    assert told.until_look() == 100
    now[0] = 101.55  # (the second after the spawn is over)
    assert told.until_look() == 0
    told.look_below(os.getppid())
    assert told.until_look() == 1000


FORK_MID_WRITE = """
import os
from pipeplex.participants import Guardian

one, two = Guardian(), Guardian()
one._pending += b"+1\\n"
held = memoryview(one._pending)  # (as a write in another thread holds it when a fork comes)
pid = os.fork()
if pid == 0:
    os._exit(0 if one._fd == two._fd == -1 else 1)
_, status = os.waitpid(pid, 0)
held.release()
one._pending.clear()
one.close()
two.close()
print("child let go:", os.waitstatus_to_exitcode(status) == 0)
"""


def test_a_fork_as_a_guardian_is_written_to_lets_go_of_every_guardian() -> None:
    """A fork (multiprocessing's, a daemon's) while another thread wrote to a guardian's
    pipe: the child's copy of the buffer stayed held, clearing it raised BufferError in the
    at-fork handler, and the child kept that guardian's pipe and every later one's."""
    result = subprocess.run([sys.executable, "-c", FORK_MID_WRITE], capture_output=True,
                            text=True, timeout=60)
    assert result.stdout == "child let go: True\n", result.stdout + result.stderr
    assert "BufferError" not in result.stderr, result.stderr
