"""A run killed with its guardian: the next run in its folder knows that guardian is dead
(its lock file names it, by pid and start time) and says at once what was left, rather
than waiting for a guardian that will never come to stop it."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path

from .helpers import Pipeplex, guardian_of, run, wait_exited


def _recorded(run_dir: Path) -> list[str]:
    """The words of the run's record in its lock file."""
    return (run_dir / "run.lock").read_text().split()


def _start_time(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2:].split()[19])


def test_a_run_killed_with_its_guardian_leaves_no_guardian_to_wait_for(run_dir: Path) -> None:
    """``kill -9`` of pipeplex and of its guardian: the next run finds the guardian the lock
    file names gone, and names what was left without waiting for it."""
    member = None
    try:
        with Pipeplex("run", "-p", f"db=sh -c 'cat {run_dir}/run.lock; exec sleep 60'",
                      "--run-dir", run_dir) as plex:
            member = int(plex.expect(r"^db +\* started \(pid (\d+)\)")[1])
            seen = plex.expect(r"^db +\| (.*)$")[1].split()  # (as the member started)
            guardian = guardian_of(plex.proc.pid)
            assert seen == [str(plex.proc.pid), seen[1], str(guardian),
                            str(_start_time(guardian))]
            # Stopped first: pipeplex must not see its guardian die and start another.
            plex.signal(signal.SIGSTOP)
            os.kill(guardian, signal.SIGKILL)
            plex.signal(signal.SIGKILL)
            assert plex.wait() == -signal.SIGKILL
        wait_exited(guardian, after="SIGKILL")
        result = run("run", "-p", "b=true", "--run-dir", run_dir)
        assert result.returncode == 0, result.stdout + result.stderr
        assert (f"pipeplex * that run left 1 process running: {member} (db) (its guardian "
                f"(pid {guardian}), which would have stopped it, is gone too); kill -TERM "
                f"{member} stops it\n") in result.stdout, result.stdout
    finally:
        if member is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGKILL)
            wait_exited(member, after="SIGKILL")


def test_a_guardian_started_in_place_of_one_killed_is_recorded(run_dir: Path) -> None:
    """The guardian that takes over from one killed is the one the next run waits for."""
    with Pipeplex("run", "-p", "db=sleep 60", "--run-dir", run_dir) as plex:
        plex.expect(r"^db +\* started")
        first = guardian_of(plex.proc.pid)
        os.kill(first, signal.SIGKILL)
        second = int(plex.expect(rf"the guardian process \(pid {first}\) is gone; started "
                                 r"another \(pid (\d+)\)")[1])
        assert _recorded(run_dir)[2:] == [str(second), str(_start_time(second))]
        assert re.fullmatch(rf"{plex.proc.pid} [0-9a-f]{{32}} {second} \d+ *\n",
                            (run_dir / "run.lock").read_text())


def test_a_stopped_guardian_of_a_quiet_cast_is_replaced(run_dir: Path) -> None:
    """A guardian stopped by SIGSTOP would do nothing should pipeplex die, and a quiet cast
    never fills its pipe: pipeplex, its parent, hears of the stop (SIGCHLD), kills it and
    starts another, which then stops the cast when pipeplex is killed."""
    with Pipeplex("run", "-p", "db=sleep 60", "--run-dir", run_dir) as plex:
        member = int(plex.expect(r"^db +\* started \(pid (\d+)\)")[1])
        first = guardian_of(plex.proc.pid)
        os.kill(first, signal.SIGSTOP)
        second = int(plex.expect(rf"the guardian process \(pid {first}\) was stopped "
                                 r"\(SIGSTOP\?\): killed it; started another \(pid (\d+)\), "
                                 r"which knows the cast's groups$")[1])
        wait_exited(first, after="it was found stopped")
        plex.signal(signal.SIGKILL)
        assert plex.wait() == -signal.SIGKILL
        wait_exited(member)
        wait_exited(second, after="it stopped the cast")


def test_a_pid_reused_is_not_taken_for_the_dead_runs_guardian(run_dir: Path) -> None:
    """The guardian the lock file names is known by its pid and its start time: a process
    that has that pid now but started at another time is a stranger, not the guardian at
    work, and the next run waits for nothing."""
    run_dir.mkdir(mode=0o700)
    run_id = os.urandom(8).hex()  # (no id an earlier run may have left behind)
    env = {**os.environ, "PIPEPLEX_RUN_ID": run_id, "PIPEPLEX_NAME": "db"}
    with subprocess.Popen(["sleep", "60"]) as stranger, \
            subprocess.Popen(["sleep", "60"], env=env) as left:
        try:
            (run_dir / "run.lock").write_text(
                f"999999 {run_id} {stranger.pid} {_start_time(stranger.pid) - 1}\n")
            result = run("run", "-p", "a=echo hi", "--run-dir", run_dir)
        finally:
            stranger.kill()
            left.kill()
    assert result.returncode == 0, result.stdout + result.stderr
    assert (f"that run left 1 process running: {left.pid} (db) (its guardian (pid "
            f"{stranger.pid}), which would have stopped it, is gone too)") in result.stdout, \
        result.stdout
