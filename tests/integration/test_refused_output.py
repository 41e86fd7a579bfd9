"""A standard output that refuses writes (a full disk, ``> /dev/full``) or was closed
(``>&-``): every command says so in one line on stderr and fails, with no traceback; a
run stops its cast and leaves nobody behind."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .helpers import DEADLINE, PIPEPLEX, Pipeplex, py, write_fifo

FULL = "No space left on device"
CLOSED = "Bad file descriptor"


def pipeplex(*args: str | Path, stdout: str) -> subprocess.CompletedProcess[str]:
    """``pipeplex ARGS`` with its stdout on /dev/full (``full``) or closed (``closed``)."""
    argv = [*PIPEPLEX, *map(str, args)]
    redirect = "> /dev/full" if stdout == "full" else ">&-"
    return subprocess.run(["sh", "-c", f'exec "$@" {redirect}', "sh", *argv],
                          stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=DEADLINE)


def said_once(result: subprocess.CompletedProcess[str], reason: str) -> None:
    assert f"pipeplex: error: cannot write to standard output: {reason}" in result.stderr
    assert result.stderr.count("cannot write") == 1, result.stderr
    assert "Traceback" not in result.stderr


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize(("stdout", "reason"), [("full", FULL), ("closed", CLOSED)])
def test_a_run_whose_output_is_refused_from_the_start_starts_nothing(
        tmp_path: Path, stdout: str, reason: str) -> None:
    """The first line is refused: with ``>&-``, no descriptor pipeplex opens took number 1
    and got the stream; the transcript keeps what happened."""
    transcript = tmp_path / "t.jsonl"
    result = pipeplex("run", "-p", "a=sleep 60", "--no-console", "--run-dir", tmp_path / "r",
                      "--transcript", transcript, stdout=stdout)
    assert result.returncode == 1, result.stderr
    said_once(result, reason)
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert f"cannot write to standard output: {reason}; stopping the cast" in [
        r["d"] for r in records if r.get("e") == "note"]
    assert not [r for r in records if r.get("e") == "start"]


def limited(size: int, *args: str | Path, out: Path) -> subprocess.CompletedProcess[str]:
    """``pipeplex ARGS`` writing into ``out``, a file that may not grow past ``size`` bytes
    (RLIMIT_FSIZE): its writes then fail with EFBIG, as on a full disk."""
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    with open(out, "wb") as file:
        return subprocess.run([*PIPEPLEX, *map(str, args)], stdin=subprocess.DEVNULL,
                              stdout=file, stderr=subprocess.PIPE, text=True,
                              preexec_fn=limit, timeout=DEADLINE)


def test_a_run_whose_output_is_refused_midway_stops_its_members(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    member = py(f"import os, signal\nopen({str(pids)!r}, 'w').write(str(os.getpid()))\n"
                "for i in range(300): print('x' * 60, flush=True)\nsignal.pause()")
    result = limited(4096, "run", "-p", f"a={member}", "--no-console", "--run-dir",
                     tmp_path / "r", out=tmp_path / "out")
    assert result.returncode == 1, result.stderr
    said_once(result, "File too large")
    assert "; stopping the cast" in result.stderr
    assert gone(int(pids.read_text()))


def test_a_run_whose_last_lines_are_refused_exits_1(tmp_path: Path) -> None:
    """The summaries come once the status is known: refused, they still make it 1."""
    args = ("run", "-p", "a=echo hello", "--no-console", "--run-dir", tmp_path / "r")
    whole = limited(2**20, *args, out=tmp_path / "whole")
    assert whole.returncode == 0
    lines = (tmp_path / "whole").read_bytes().splitlines(keepends=True)
    assert b"summary" in lines[-1]
    size = sum(map(len, lines[:-1])) + 3  # (room for a longer pid, not for the summary)
    cut = limited(size, *args, out=tmp_path / "cut")
    assert cut.returncode == 1, cut.stderr
    said_once(cut, "File too large")
    assert "stopping the cast" not in cut.stderr


@pytest.mark.parametrize(("stdout", "reason"), [("full", FULL), ("closed", CLOSED)])
def test_replay_and_test_say_that_their_output_is_refused(
        tmp_path: Path, stdout: str, reason: str) -> None:
    transcript = tmp_path / "t.jsonl"
    transcript.write_text(json.dumps({"t": 1.0, "p": "a", "s": "out", "d": "hi\n"}) + "\n")
    replayed = pipeplex("replay", transcript, stdout=stdout)
    assert replayed.returncode == 1
    said_once(replayed, reason)
    scenario = tmp_path / "s.toml"
    scenario.write_text('[procs.a]\ncmd = "cat"\n\n[[step]]\nsend = "hi"\nto = "a"\n\n'
                        "[[step]]\nexpect = '^hi$'\nin = \"a\"\n")
    tested = pipeplex("test", "-v", scenario, stdout=stdout)
    assert tested.returncode == 1
    said_once(tested, reason)


def test_the_clients_say_that_their_output_is_refused(run_dir: Path) -> None:
    with Pipeplex("run", "-p", "c=cat", "--run-dir", run_dir) as plex:
        plex.expect("run folder")
        for args in (["status"], ["status", "--json"], ["restart", "c"]):
            result = pipeplex(*args, "--run-dir", run_dir, stdout="full")
            assert result.returncode == 1, args
            said_once(result, FULL)
        plex.expect(r"^c +\* started .*\n(?s:.*)^c +\* started")  # the restart happened
        attach = subprocess.Popen(
            ["sh", "-c", 'exec "$@" > /dev/full', "sh", *PIPEPLEX, "attach",
             "--run-dir", str(run_dir)], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        assert attach.stderr is not None
        try:
            assert "attached to the run" in attach.stderr.readline()
            write_fifo(run_dir / "c.in", b"to c\n")
            assert attach.wait(timeout=DEADLINE) == 1
            err = attach.stderr.read()
            assert err == f"pipeplex: error: cannot write to standard output: {FULL}\n"
        finally:
            attach.kill()
            attach.wait()
            attach.stderr.close()


@pytest.mark.parametrize("buffered", [True, False])
@pytest.mark.parametrize("words", [["--version"], ["-h"], ["status", "-h"]])
def test_help_and_the_version_say_that_their_output_is_refused(
        words: list[str], buffered: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Also with stdout buffered, as it is in a shell that does not set PYTHONUNBUFFERED:
    what help wrote was flushed at the interpreter's exit then, too late to be said."""
    if buffered:
        monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    else:
        monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    result = pipeplex(*words, stdout="full")
    assert result.returncode == 1
    said_once(result, FULL)


FLOOD = py("import signal, sys\n"
           "signal.signal(signal.SIGTERM, signal.SIG_IGN)  # (it floods on through the stop)\n"
           "line = 'x' * 999 + '\\n'\n"
           "while True:\n"
           "    sys.stdout.write(line)\n")
DROPPED = ("got SIGTERM while the reader of pipeplex's output takes nothing: what it has not "
           "taken is dropped, and the rest of the run goes to the records only")


@pytest.mark.parametrize("stdout", ["pipe", "socket"])
def test_a_stop_asked_for_again_ends_though_nobody_reads_the_output(
        tmp_path: Path, stdout: str) -> None:
    """A member floods while the reader of pipeplex's output takes nothing: past the 4 MiB
    kept for a slow reader, pipeplex stops reading the members, and the stop waited for
    their last output, which waited for that reader, whatever signal came. A stop signal
    during such a stop drops what the reader has not taken (the records keep the rest).
    A socket (a service's journal stream) is written without waiting as a pipe is: a
    blocking write there held the loop, and no signal was heard."""
    transcript = tmp_path / "t.jsonl"
    ours, theirs = socket.socketpair() if stdout == "socket" else (None, None)
    with ours or contextlib.nullcontext(), theirs or contextlib.nullcontext(), subprocess.Popen(
            [*PIPEPLEX, "run", "-p", f"flood={FLOOD}", "-p", "idle=sleep 60", "--no-console",
             "--grace", "60", "--run-dir", tmp_path / "r", "--transcript", transcript],
            stdin=subprocess.DEVNULL, stdout=theirs or subprocess.PIPE,
            stderr=subprocess.DEVNULL, start_new_session=True) as run:  # (nobody reads it)
        try:
            _until(lambda: transcript.exists() and b'"s": "out"' in transcript.read_bytes())
            run.send_signal(signal.SIGTERM)  # (the member ignores it, and floods on)
            # Asked again until the output is stalled (it will be: the member floods on).
            _until(lambda: run.send_signal(signal.SIGTERM) or DROPPED.encode()
                   in transcript.read_bytes())
            run.send_signal(signal.SIGINT)  # (the grace skipped: SIGKILL to the member)
            assert run.wait(timeout=DEADLINE) == 128 + signal.SIGTERM
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert [r["code"] for r in records if r.get("e") == "exit" and r["p"] == "flood"] == [-9]


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "not within the deadline"
        select.select([], [], [], 0.05)
