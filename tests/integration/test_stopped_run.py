"""Clients of a run that is stopped (SIGSTOP, Ctrl-Z in its terminal) say so, and how to
let it go on, instead of waiting out their timeout in silence: the kernel still takes their
connections into the socket's backlog, so nothing else tells them.

Each client is given ``BOUND`` seconds, well below the 60 s that ``pipeplex status`` waits
for an answer; the run is continued (SIGCONT) whatever happens, then stopped.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

from pipeplex.control_client import CONNECT_TIMEOUT

from .helpers import GATED_DB, Pipeplex, run, start_client, status

BOUND = 20.0
"""Seconds a client of a stopped run may take to say so (it says so within one)."""


def stopped_message(run_dir: Path, pid: int, what: str) -> str:
    return (f"pipeplex: error: the pipeplex run at {run_dir} (pid {pid}) is stopped (suspended "
            f"by SIGSTOP or Ctrl-Z): 'kill -CONT {pid}', or 'fg' in its terminal, resumes it; "
            f"{what}\n")


@contextlib.contextmanager
def stopped(plex: Pipeplex) -> Iterator[int]:
    """pipeplex stopped by SIGSTOP, and continued (SIGCONT) when the block ends; its pid."""
    plex.signal(signal.SIGSTOP)
    try:
        # Stopped once the kernel says so to its parent (left for Popen to reap later).
        os.waitid(os.P_PID, plex.proc.pid, os.WSTOPPED | os.WNOWAIT)
        yield plex.proc.pid
    finally:
        plex.signal(signal.SIGCONT)


def test_clients_of_a_stopped_run_say_so_and_send_nothing(run_dir: Path) -> None:
    """status, send and attach say at once that the run is stopped (status 4, as for a run
    they cannot reach), and send nothing: the line is not delivered once the run goes on."""
    with Pipeplex("run", "-p", "c=cat", "--run-dir", run_dir, "--no-console") as plex:
        plex.expect(r"^c +\* started")
        with stopped(plex) as pid:
            for args in (("status",), ("send", "c", "lost"), ("attach",)):
                result = run(*args, "--run-dir", run_dir, timeout=BOUND)
                assert result.returncode == 4, (args, result)
                assert result.stderr == stopped_message(run_dir, pid, "nothing was sent"), args
                assert result.stdout == ""
        assert run("send", "c", "after", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^c +\| after$")
        assert "lost" not in plex.text
        assert run("stop", "--run-dir", run_dir).returncode == 0
        assert plex.wait() == 0


def test_a_client_of_a_stopped_run_with_a_full_backlog_says_so_without_waiting_it_out(
        run_dir: Path) -> None:
    """Clients that gave up on a stopped run stay in its socket's listen backlog (1,024)
    until it goes on: a script polling its status fills it in a quarter of an hour. A
    client then cannot even connect; it waited out the 10 s connect timeout before it said
    the run was stopped, and now looks at the run while it waits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096 and hard >= 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    with Pipeplex("run", "-p", "c=cat", "--run-dir", run_dir, "--no-console") as plex:
        plex.expect(r"^c +\* started")
        try:
            with stopped(plex) as pid, contextlib.ExitStack() as clients:
                for _ in range(4096):  # (the backlog's 1,024, and one; a bound)
                    client = clients.enter_context(socket.socket(socket.AF_UNIX))
                    client.setblocking(False)
                    try:
                        client.connect(str(run_dir / "control.sock"))
                    except BlockingIOError:
                        break
                else:
                    raise AssertionError("the backlog never filled up")
                # (within the connect timeout: not waited out)
                result = run("status", "--run-dir", run_dir, timeout=CONNECT_TIMEOUT)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        assert result.returncode == 4, result
        assert result.stderr == stopped_message(run_dir, pid, "nothing was sent")
        assert run("stop", "--run-dir", run_dir).returncode == 0
        assert plex.wait() == 0


def test_a_run_stopped_while_a_client_waits_for_its_answer_is_said_to_be(
        run_dir: Path, tmp_path: Path) -> None:
    """The run takes a restart of db, then is stopped before db's new run is ready (it is
    once it reads a line): the client, waiting for that, says the run is stopped and that
    it has the request. Once continued, the run carries it out."""
    cast = tmp_path / "cast.toml"
    cast.write_text(GATED_DB)
    with Pipeplex("run", cast, "--run-dir", run_dir, "--no-console") as plex:
        plex.expect(r"^db +\| run \d+$")
        client = start_client("restart", "db", "--run-dir", run_dir)
        try:
            new_pid = plex.expect(r"^db +\| run (\d+)$")[1]  # (not ready until it reads)
            with stopped(plex) as pid:
                out, err = client.communicate(timeout=BOUND)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        assert client.returncode == 4, err
        assert err == stopped_message(run_dir, pid, "the request was sent before it "
                                      "stopped, and is carried out once it goes on")
        assert out == ""
        assert run("send", "db", "go", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^db +\| ready$")
        assert [(m["pid"], m["restarts"]) for m in status(run_dir)["members"]] == [
            (int(new_pid), 1)]
        assert run("stop", "--run-dir", run_dir).returncode == 0
        assert plex.wait() == 0
