"""Closing the terminal pipeplex runs in (its window, its ssh connection) stops the cast
the orderly way, as SIGHUP does: no traceback, every member stopped, exit status 129."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import DEADLINE, Pipeplex, PtyPipeplex, py, status

QUIET = py("import os, signal\nprint('quiet', os.getpid(), flush=True)\nsignal.pause()")
STUBBORN = py("import os, signal\n"
              "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "print('stubborn', os.getpid(), flush=True)\n"
              "signal.pause()")
CAST = ("-p", f"quiet={QUIET}", "-p", f"stubborn={STUBBORN}", "--grace", "0.5")
STOP_NOTE = r"(got SIGHUP|the terminal hung up): stopping the cast"


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the console history out of the real home folder."""
    folder = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(folder))
    return folder


@pytest.fixture
def pidfds() -> Iterator[dict[str, int]]:
    """Members' pidfds by name: they name the very process, even once its pid is reused."""
    fds: dict[str, int] = {}
    yield fds
    for fd in fds.values():
        os.close(fd)


def member_pids(plex: Pipeplex, pidfds: dict[str, int]) -> None:
    """Wait until both members have printed their pid; keep a pidfd of each."""
    for _ in range(2):
        name, pid = plex.expect(r"^(quiet|stubborn) +\| \1 (\d+)$").groups()
        pidfds[name] = os.pidfd_open(int(pid))


def assert_stopped_in_order(transcript: Path, pidfds: dict[str, int]) -> None:
    """The transcript holds every stop step; no member is left running."""
    records: list[dict[str, Any]] = [json.loads(line) for line in transcript.read_text()
                                     .splitlines()]
    steps = [(r["p"], r["e"], r.get("d") or r.get("code")) for r in records
             if r["s"] == "event" and r["e"] in ("note", "eof", "exit")]
    stop = next(i for i, (_, _, what) in enumerate(steps)
                if isinstance(what, str) and re.fullmatch(STOP_NOTE, what))
    after = steps[stop + 1:]
    for name in ("quiet", "stubborn"):  # stdin closed, then the exit
        assert after.index((name, "eof", None)) < after.index(
            (name, "exit", -signal.SIGTERM if name == "quiet" else -signal.SIGKILL)), steps
    assert ("stubborn", "note",
            "ignored SIGTERM for 0.5 s; sent SIGKILL to its process group") in after, steps
    assert after[-1] == (None, "note", "stopped by SIGHUP"), steps
    ended, _, _ = select.select(list(pidfds.values()), [], [], 0)
    assert len(ended) == 2, "a member outlived pipeplex"


@pytest.mark.usefixtures("state_home")
def test_closing_the_terminal_of_the_prompt_stops_the_cast(
    run_dir: Path, tmp_path: Path, pidfds: dict[str, int]
) -> None:
    """The pty master closes under the prompt: pipeplex hangs up like SIGHUP, quietly."""
    transcript = tmp_path / "t.jsonl"
    with (tmp_path / "stderr").open("wb") as stderr, PtyPipeplex(
        "run", *CAST, "--transcript", transcript, "--run-dir", run_dir, stderr=stderr
    ) as plex:
        plex.expect(r"console: type NAME: text to send a line")
        member_pids(plex, pidfds)
        plex.hang_up()
        assert plex.wait(timeout=DEADLINE) == 128 + signal.SIGHUP
    errors = (tmp_path / "stderr").read_text()
    assert errors == "", errors
    assert_stopped_in_order(transcript, pidfds)


def test_a_terminal_hanging_up_under_the_line_console_stops_the_cast(
    run_dir: Path, tmp_path: Path, pidfds: dict[str, int]
) -> None:
    """stdin a terminal, stdout a pipe (no prompt): its hangup is noticed by reading alone.

    It is not pipeplex's controlling terminal, so no SIGHUP comes: the read does it all.
    """
    master, slave = os.openpty()
    transcript = tmp_path / "t.jsonl"
    try:
        with Pipeplex("run", *CAST, "--transcript", transcript, "--run-dir", run_dir,
                      stdin=slave) as plex:
            os.close(slave)
            slave = -1
            member_pids(plex, pidfds)
            os.close(master)
            master = -1
            assert plex.wait(timeout=DEADLINE) == 128 + signal.SIGHUP
            assert "Traceback" not in plex.text, plex.text
            assert re.search(r"^pipeplex \* the terminal hung up: stopping the cast$",
                             plex.text, re.MULTILINE), plex.text
    finally:
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)
    assert_stopped_in_order(transcript, pidfds)


def test_no_console_also_stops_quietly(
    run_dir: Path, tmp_path: Path, pidfds: dict[str, int]
) -> None:
    """Without a console, writes to the dead terminal are dropped; SIGHUP stops the cast."""
    transcript = tmp_path / "t.jsonl"
    with (tmp_path / "stderr").open("wb") as stderr, PtyPipeplex(
        "run", *CAST, "--no-console", "--transcript", transcript, "--run-dir", run_dir,
        stderr=stderr,
    ) as plex:
        member_pids(plex, pidfds)
        plex.hang_up()
        assert plex.wait(timeout=DEADLINE) == 128 + signal.SIGHUP
    errors = (tmp_path / "stderr").read_text()
    assert errors == "", errors
    assert_stopped_in_order(transcript, pidfds)


IGNORING_SIGHUP = ("import signal, sys, os\n"
                   "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
                   "os.execvp(sys.argv[1], sys.argv[1:])\n")


def test_with_sighup_ignored_a_hangup_leaves_the_cast_running(run_dir: Path) -> None:
    """trap '' HUP (or nohup): the terminal's hangup, noticed by the console's read, does
    not stop the cast any more than the signal would; it is said, and the run goes on."""
    master, slave = os.openpty()
    try:
        with Pipeplex("run", "-p", "c=cat", "--run-dir", run_dir, stdin=slave,
                      prefix=(sys.executable, "-c", IGNORING_SIGHUP)) as plex:
            os.close(slave)
            slave = -1
            plex.expect(r"^c +\* started")
            os.close(master)
            master = -1
            plex.expect(r"^pipeplex \* the terminal hung up; the cast goes on \(SIGHUP is "
                        r"ignored\)")
            answer = status(run_dir)
            assert not answer["stopping"] and answer["members"][0]["state"] == "running"
            plex.signal(signal.SIGTERM)
            assert plex.wait() == 128 + signal.SIGTERM
    finally:
        for fd in (master, slave):
            if fd >= 0:
                os.close(fd)
