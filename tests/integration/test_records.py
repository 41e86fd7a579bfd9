"""--transcript and --log-dir with the run's own descriptors and planted links."""

from __future__ import annotations

import fcntl
import json
import os
import re
import resource
import select
import signal
import stat
import struct
import subprocess
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .helpers import DEADLINE, PIPEPLEX, py, run, status


def test_a_transcript_on_stdout_joins_the_output_instead_of_overwriting_it(
        run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    out.write_text("kept from before\n")
    with out.open("a") as stdout:
        result = subprocess.run([*PIPEPLEX, "run", "-p", "a=echo hi", "--transcript",
                                 "/dev/stdout", "--run-dir", str(run_dir)],
                                stdout=stdout, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = out.read_text().splitlines()
    assert lines[0] == "kept from before"
    assert any(re.fullmatch(r"a +\| hi", line) for line in lines)
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert any(r.get("p") == "a" and r.get("d") == "hi\n" for r in records)


def _member_state(run_dir: Path, name: str) -> str:
    return next(m["state"] for m in status(run_dir)["members"] if m["name"] == name)


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"not {what} after {DEADLINE} s"
        select.select([], [], [], 0.02)


FLOOD = "sh -c 'yes 0123456789abcdef | head -c 8000000; exec sleep 60'"
"""Output the transcript's records of which take more than a pipe and its writer keep."""


def test_a_transcript_reader_that_takes_nothing_stalls_neither_the_run_nor_its_stop(
        run_dir: Path) -> None:
    """A transcript on a pipe (>(jq .)) is written as the terminal is: a reader that takes
    nothing slows the members down, but the run answers its clients and its stop signals
    (it was blocked in a write, deaf to both), and a second signal lets that reader go."""
    read_end, write_end = os.pipe()
    with subprocess.Popen([*PIPEPLEX, "run", "--no-console", "-p", f"a={FLOOD}", "-p", "b=cat",
                           "--on-exit", "ignore", "--transcript", f"/dev/fd/{write_end}",
                           "--run-dir", str(run_dir)],
                          pass_fds=(write_end,), stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as plex:
        os.close(write_end)
        try:
            _until(lambda: _unread(read_end) >= 32768, "the transcript pipe filling")
            assert _member_state(run_dir, "a") == "running"  # (the loop answers)
            plex.send_signal(signal.SIGTERM)
            _until(lambda: _member_state(run_dir, "a") != "running", "a stopped")
            plex.send_signal(signal.SIGTERM)  # (the transcript's reader still takes nothing)
            assert plex.wait(timeout=DEADLINE) == 128 + signal.SIGTERM
        finally:
            plex.kill()
            os.close(read_end)


def test_a_transcript_on_a_piped_stdout_never_lands_inside_a_line(run_dir: Path) -> None:
    """--transcript /dev/stdout into a pipe read late: records and the members' lines take
    turns as whole lines (a record came in the middle of a line the pipe had taken half of)."""
    with subprocess.Popen([*PIPEPLEX, "run", "--no-console", "-p", f"a={FLOOD}", "-p", "b=cat",
                           "--on-exit", "ignore", "--transcript", "/dev/stdout",
                           "--run-dir", str(run_dir)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as plex:
        assert plex.stdout is not None
        try:
            _until(lambda: _unread(plex.stdout.fileno()) >= 32768, "the output pipe filling")
            assert _member_state(run_dir, "a") == "running"
            plex.send_signal(signal.SIGTERM)
            out, _ = plex.communicate(timeout=DEADLINE)
        finally:
            plex.kill()
    assert plex.returncode == 128 + signal.SIGTERM
    lines = out.decode().splitlines()
    torn = [line[:80] for line in lines if not (
        re.fullmatch(r"a +\| [0-9a-f]{0,16}|[\w-]+ +\* .*", line)  # (the last cut by its end)
        or (line.startswith("{") and json.loads(line)))]
    assert not torn
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert sum(record["p"] == "a" and record["s"] == "out" for record in records) > 10


def _unread(fd: int) -> int:
    """Bytes in the pipe of ``fd``, written and not read yet."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]


def test_a_transcript_on_a_descriptor_not_open_for_writing_is_refused(
        run_dir: Path, tmp_path: Path) -> None:
    precious = tmp_path / "input.txt"
    precious.write_text("do not touch\n")
    with precious.open() as stdin:
        result = subprocess.run([*PIPEPLEX, "run", "-p", "a=true", "--transcript", "/dev/fd/0",
                                 "--run-dir", str(run_dir)],
                                stdin=stdin, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "descriptor 0 is not open for writing" in result.stderr
    assert precious.read_text() == "do not touch\n"


def test_a_transcript_never_takes_the_cast_files_place(run_dir: Path, tmp_path: Path) -> None:
    """Not the cast file (by another path too), not its golden file, not a .toml file:
    --transcript *.toml would take the glob's first match, and the cast would be lost."""
    cast = tmp_path / "cast.toml"
    cast.write_text("golden = 'cast.golden'\n[procs.a]\ncmd = 'echo hi'\n"
                    "[[step]]\nexpect = 'hi'\n")
    (tmp_path / "cast.golden").write_text("a | hi\n")
    for path, why in ((cast, "it is the cast file"),
                      (tmp_path / "no" / ".." / "cast.toml", "it is the cast file"),
                      (tmp_path / "cast.golden", f"it is the golden file of {cast}"),
                      (tmp_path / "other.toml", "it ends in .toml")):
        result = run("run", cast, "--transcript", path, "--run-dir", run_dir)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"pipeplex: error: cannot write the transcript {path}: "
                                        f"{why}"), result.stderr
    assert cast.read_text().startswith("golden = ")
    assert (tmp_path / "cast.golden").read_text() == "a | hi\n"
    assert not (tmp_path / "other.toml").exists()


def test_a_log_folder_that_is_a_link_is_refused(run_dir: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "a.log").write_text("someone else's\n")
    (tmp_path / "logs").symlink_to(victim)
    result = run("run", "-p", "a=echo secret", "--log-dir", tmp_path / "logs",
                 "--run-dir", run_dir)
    assert result.returncode == 2
    assert "it is a symbolic link, which pipeplex does not follow" in result.stderr
    assert (victim / "a.log").read_text() == "someone else's\n"


def test_a_member_that_writes_nothing_gets_an_empty_log(run_dir: Path, tmp_path: Path) -> None:
    """Not the log an earlier run left under its name."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "quiet.log").write_text("an earlier run's output\n")
    result = run("run", "-p", "quiet=true", "--log-dir", logs, "--run-dir", run_dir)
    assert result.returncode == 0, result.stderr
    assert (logs / "quiet.log").read_text() == ""


def test_a_log_that_fills_its_disk_is_let_go_and_the_run_goes_on(run_dir: Path,
                                                                   tmp_path: Path) -> None:
    """A log that cannot grow (EFBIG here, as ENOSPC would be) is said once, by name; the
    member's output still reaches the terminal in full, and the run ends as it would."""
    limit = 64 * 1024

    def small_files() -> None:  # (in pipeplex, before it starts)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    logs = tmp_path / "logs"
    code = "for i in range(20000): print('progress', i)\nprint('final')"
    result = subprocess.run(
        [*PIPEPLEX, "run", "--no-console", "-p", f"w={py(code)}", "--log-dir", str(logs),
         "--run-dir", str(run_dir)],
        capture_output=True, text=True, timeout=DEADLINE, stdin=subprocess.DEVNULL,
        preexec_fn=small_files)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    log = logs / "w.log"
    assert re.search(rf"^w +\* cannot write the log {re.escape(str(log))}: File too large; "
                     r"w's output is logged no further \(what the log holds stays\)$",
                     result.stdout, re.MULTILINE), result.stdout[-2000:]
    assert "progress 19999\n" in result.stdout and "w | final\n" in result.stdout
    assert 0 < log.stat().st_size <= limit
    assert log.read_bytes().startswith(b"progress 0\n")


def test_a_transcript_on_a_full_device_is_let_go_and_the_run_goes_on(run_dir: Path) -> None:
    """A transcript whose writes fail with ENOSPC (a descriptor on /dev/full) is said once,
    without a traceback; the member is read to its end, and the status is the members'."""
    code = "for i in range(20000): print('progress', i)\nprint('final')"
    with open("/dev/full", "wb") as full:
        transcript = f"/dev/fd/{full.fileno()}"
        result = subprocess.run(
            [*PIPEPLEX, "run", "--no-console", "-p", f"w={py(code)}", "--transcript",
             transcript, "--run-dir", str(run_dir)],
            capture_output=True, text=True, timeout=DEADLINE, stdin=subprocess.DEVNULL,
            pass_fds=(full.fileno(),))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert result.stderr == ""
    assert result.stdout.count("transcript write failed") == 1, result.stdout[-2000:]
    assert (f"pipeplex * transcript write failed: No space left on device ({transcript}); "
            "transcript disabled\n") in result.stdout
    assert "progress 19999\n" in result.stdout and "w | final\n" in result.stdout


def test_a_log_folder_made_by_the_run_is_private_whatever_the_umask(run_dir: Path,
                                                                   tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    result = subprocess.run([*PIPEPLEX, "run", "-p", "a=echo hi", "--log-dir", str(logs),
                             "--run-dir", str(run_dir)],
                            capture_output=True, text=True, timeout=DEADLINE,
                            stdin=subprocess.DEVNULL, preexec_fn=lambda: os.umask(0))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    assert stat.S_IMODE((logs / "a.log").stat().st_mode) == 0o600


def test_a_transcript_on_a_descriptor_the_run_was_not_given_is_refused(run_dir: Path) -> None:
    """/dev/fd/N that was closed when pipeplex started would be one of its own later."""
    result = subprocess.run(
        ["sh", "-c", 'exec "$@" 7>&-', "sh", *PIPEPLEX, "run", "-p", "a=true",
         "--transcript", "/dev/fd/7", "--run-dir", str(run_dir)],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert "descriptor 7 is not open" in result.stderr


def test_the_transcript_reaches_its_file_while_the_cast_runs(run_dir: Path) -> None:
    """Not only every 64 KiB and at the end: a record is written within half a second, so
    a pipeplex killed with SIGKILL loses no more than that."""
    transcript_r, transcript_w = os.pipe()
    proc = subprocess.Popen(
        [*PIPEPLEX, "run", "-p", "m=sh -c 'echo hello; exec cat'", "--run-dir", str(run_dir),
         "--transcript", f"/dev/fd/{transcript_w}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, pass_fds=(transcript_w,))
    os.close(transcript_w)
    try:
        with os.fdopen(transcript_r, "rb") as transcript:
            records = b""
            while b"hello" not in records:
                assert select.select([transcript], [], [], DEADLINE)[0], records
                chunk = os.read(transcript.fileno(), 65536)
                assert chunk, records
                records += chunk
            assert proc.poll() is None  # written while the cast runs, not at its end
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_transcript_that_is_a_members_log_is_refused(tmp_path: Path) -> None:
    """--transcript logs/a.log --log-dir logs: a's log replaced the transcript without a
    word. Refused before anything starts, nothing written."""
    logs = tmp_path / "logs"
    result = run("run", "-p", "a=echo hello", "--no-console", "--transcript", logs / "a.log",
                 "--log-dir", logs, "--run-dir", tmp_path / "r")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == (f"pipeplex: error: cannot write {logs}/a.log, the log of a: it "
                             "is the transcript; give --log-dir a path of its own\n")
    assert not logs.exists()


def test_a_member_that_never_starts_keeps_no_earlier_runs_log(tmp_path: Path) -> None:
    """w waits for x, which fails before it is ready; lazy is started only when asked: an
    earlier run's logs of theirs stayed, passing for this run's."""
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o700)
    for name in ("x", "w", "lazy"):
        (logs / f"{name}.log").write_text("an earlier run's\n")
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.x]\ncmd = "sh -c \'exit 3\'"\nready = "up"\n'
                    '[procs.w]\ncmd = "echo w"\nafter = "x"\n'
                    '[procs.lazy]\ncmd = "echo lazy"\nautostart = false\n')
    result = run("run", cast, "--no-console", "--log-dir", logs, "--run-dir", tmp_path / "r")
    assert result.returncode == 3, result.stdout + result.stderr
    assert {name: (logs / f"{name}.log").read_text() for name in ("x", "w", "lazy")} == {
        "x": "", "w": "", "lazy": ""}


ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a link to another user")


@ROOT
@pytest.mark.parametrize("record", ["run --transcript", "run --log-dir", "test --junit",
                                    "test --transcript", "test --log-dir"])
def test_a_record_through_another_user_s_link_is_refused(
        run_dir: Path, tmp_path: Path, record: str) -> None:
    """A link of another user's on the way to a record (``/tmp/ci/out``, theirs) could be
    pointed at a folder of yours: the record would replace your file of that name there.
    Refused before anything runs, and the file stays."""
    victim = tmp_path / "victim"
    victim.mkdir()
    link = tmp_path / "out"
    link.symlink_to(victim)
    os.lchown(link, 65534, 65534)
    command, option = record.split()
    name = {"--transcript": "run.jsonl", "--log-dir": "logs", "--junit": "junit.xml"}[option]
    kept = victim / ("logs/a.log" if option == "--log-dir" else name)
    kept.parent.mkdir(exist_ok=True)
    kept.write_text("yours\n")
    if command == "run":
        args = ["run", "-p", "a=echo hi", "--run-dir", run_dir]
    else:
        scenario = tmp_path / "a.toml"
        scenario.write_text('[procs.a]\ncmd = "echo hi"\n[[step]]\nexpect = "^hi"\nin = "a"\n')
        args = ["test", scenario]
    result = run(*args, option, link / name)
    assert result.returncode == 2, result.stdout
    said = result.stderr if option == "--junit" or command == "run" else result.stdout
    assert (f"{link} is a symbolic link of uid 65534, who could point it elsewhere during the "
            "run; give a path in a folder of your own") in said, result
    assert kept.read_text() == "yours\n"


@ROOT
@pytest.mark.parametrize("option", ["--transcript", "--log-dir"])
def test_a_refused_record_makes_no_folder_where_it_leads(
        run_dir: Path, tmp_path: Path, option: str) -> None:
    """The way is checked before the record's folders are made, not only after: a refused
    record leaves nothing in the folder another user's link leads to."""
    victim = tmp_path / "victim"
    victim.mkdir()
    link = tmp_path / "out"
    link.symlink_to(victim)
    os.lchown(link, 65534, 65534)
    target = link / "new" / ("run.jsonl" if option == "--transcript" else "logs")
    result = run("run", "-p", "a=echo hi", "--run-dir", run_dir, option, target)
    assert result.returncode == 2, result.stdout
    assert list(victim.iterdir()) == []
