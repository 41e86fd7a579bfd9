"""Talking to members through the run folder's named pipes, with no buffering surprises."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import termios
import time
import zlib
from pathlib import Path

import pytest

from pipeplex.participants._stdin import INPUT_FULL

from .helpers import (
    DEADLINE,
    PIPEPLEX,
    PROGS,
    Connection,
    Pipeplex,
    late_reader,
    py,
    run,
    status,
    write_fifo,
)


def test_the_tutorial_programs_answer_every_line_repeatedly(run_dir: Path, tmp_path: Path) -> None:
    """Two never-flushing Python programs answer each line, even with PYTHONUNBUFFERED off."""
    cast = tmp_path / "cast.toml"
    cast.write_text(
        f'[procs.a]\ncmd = ["{sys.executable}", "{PROGS / "tutorial_a.py"}"]\n'
        'env = { PYTHONUNBUFFERED = "" }\n'
        f'[procs.b]\ncmd = ["{sys.executable}", "{PROGS / "tutorial_b.py"}"]\n'
        'env = { PYTHONUNBUFFERED = "" }\n'
    )
    with Pipeplex("run", cast, "--run-dir", run_dir) as plex:
        plex.expect("run folder")
        for i in range(5):
            write_fifo(run_dir / "a.in", f"hello {i}\n".encode())
            plex.expect(rf"^a \| A heard: hello {i}$")
            write_fifo(run_dir / "b.in", f"abc{i}\n".encode())
            plex.expect(rf"^b \| B #{i + 1}: {i}cba$")
        write_fifo(run_dir / "all.in", b"both\n")
        plex.expect(r"^. \| (A heard: both|B #6: htob)$")
        plex.expect(r"^. \| (A heard: both|B #6: htob)$")


@pytest.mark.parametrize(
    ("cmd", "question", "answer"),
    [
        ("tr a-z A-Z", "shout", r"SHOUT"),
        ("bc", "6*7", r"42"),
        ("sqlite3", "select 40+2;", r"42"),
    ],
)
def test_block_buffering_programs_answer_line_by_line(
    run_dir: Path, cmd: str, question: str, answer: str
) -> None:
    """tr, bc and sqlite3 answer each line at once, without stdbuf."""
    program = cmd.split()[0]
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed (make test installs it where it can)")
    with Pipeplex("run", "-p", f"m={cmd}", "--run-dir", run_dir) as plex:
        plex.expect("run folder")
        for _ in range(3):
            write_fifo(run_dir / "m.in", question.encode() + b"\n")
            plex.expect(rf"^m \| {answer}$")


def test_many_writers_in_turn_never_give_the_member_eof(run_dir: Path) -> None:
    """Open, write, close, again and again: the member keeps reading its stdin."""
    with Pipeplex("run", "-p", "c=cat", "--run-dir", run_dir) as plex:
        plex.expect("run folder")
        for i in range(30):
            write_fifo(run_dir / "c.in", f"line {i}\n".encode())
            plex.expect(rf"^c \| line {i}$")
        assert "exited" not in plex.text


def test_all_in_reaches_every_member(run_dir: Path) -> None:
    """A line written to all.in goes to each member's stdin."""
    with Pipeplex("run", "-p", "x=cat", "-p", "y=cat", "-p", "z=cat",
                  "--run-dir", run_dir) as plex:
        plex.expect("run folder")
        write_fifo(run_dir / "all.in", b"to everyone\n")
        seen = {plex.expect(r"^(\w) \| to everyone$")[1] for _ in range(3)}
        assert seen == {"x", "y", "z"}


def test_a_writer_that_quits_mid_line_does_not_splice_into_the_next(run_dir: Path) -> None:
    """Bytes without a newline are dropped with a warning when their writer closes."""
    with Pipeplex("run", "-p", "c=cat", "--run-dir", run_dir) as plex:
        plex.expect("run folder")
        write_fifo(run_dir / "c.in", b"hel")
        plex.expect(r"c\.in: dropped 3 bytes")
        write_fifo(run_dir / "c.in", b"lo\n")
        plex.expect(r"^c \| lo$")
        assert "hello" not in plex.text


def test_a_line_a_writer_still_holds_unended_at_the_stop_is_said_to_be_dropped(
        run_dir: Path) -> None:
    """A writer that keeps the pipe open with a line not ended when the run stops: its
    bytes were dropped with no word (one that closed got a warning), whether pipeplex had
    read them or they were still in the pipe."""
    with Pipeplex("run", "-p", "c=cat", "--run-dir", run_dir, "--no-console") as plex:
        plex.expect(r"^c +\* started")
        writer = os.open(run_dir / "c.in", os.O_WRONLY)
        try:
            os.write(writer, b"hel")
            assert run("stop", "--run-dir", run_dir).returncode == 0
            plex.expect(r"^pipeplex \* c\.in: dropped 3 bytes that writers had sent and no "
                        r"member got \(the pipe closed before a newline came, or before they "
                        r"were read\)$")
            assert plex.wait() == 0
        finally:
            os.close(writer)


LINE_WRITER = (
    "import os, random, string, sys, zlib\n"
    "path, ident, count = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
    "rng = random.Random(ident)\n"
    "fd = os.open(path, os.O_WRONLY)\n"
    "for seq in range(count):\n"
    "    payload = ''.join(rng.choices(string.ascii_letters, k=rng.randint(0, 4070)))\n"
    "    line = f'{ident} {seq} {zlib.crc32(payload.encode()):08x} {payload}\\n'.encode()\n"
    "    assert os.write(fd, line) == len(line) <= 4096\n"
    "os.close(fd)\n")
"""Writes COUNT lines of up to 4096 bytes, each in one write (which a pipe keeps whole),
to the pipe PATH: IDENT, a sequence number, the CRC of the payload, the payload."""

LINE_CHECKER = (
    "import sys, zlib\n"
    "writers, count = int(sys.argv[1]), int(sys.argv[2])\n"
    "seen, bad = {}, 0\n"
    "for line in sys.stdin:\n"
    "    ident, seq, crc, payload = (line.rstrip('\\n').split(' ') + ['', '', ''])[:4]\n"
    "    if (not seq.isdigit() or int(seq) != seen.get(ident, 0)\n"
    "            or crc != f'{zlib.crc32(payload.encode()):08x}'):\n"
    "        bad += 1; print('bad', line[:60], flush=True); continue\n"
    "    seen[ident] = int(seq) + 1\n"
    "    if sum(seen.values()) == writers * count: break\n"
    "print('done', sorted(seen.items()), 'bad', bad, flush=True)\n")
"""Reads lines from its stdin until WRITERS times COUNT good ones came, saying each bad one
(out of its writer's order, or torn: its CRC fails)."""


def test_writers_sharing_a_pipe_never_mix_within_a_line(run_dir: Path) -> None:
    """Four programs write lines of up to 4 KB to one NAME.in at once, each line in one
    write: the member reads every line whole, in each writer's order."""
    writers, count = 4, 300
    with Pipeplex("run", "-p", f"m={py(LINE_CHECKER)} {writers} {count}",
                  "--run-dir", run_dir) as plex:
        plex.expect(r"m +\* started")
        procs = [subprocess.Popen([sys.executable, "-c", LINE_WRITER, str(run_dir / "m.in"),
                                   f"w{i}", str(count)]) for i in range(writers)]
        assert [proc.wait(timeout=DEADLINE) for proc in procs] == [0] * writers
        done = plex.expect(r"^m \| done (.*) bad (\d+)$")
        assert done[1] == str([(f"w{i}", count) for i in range(writers)])
        assert done[2] == "0", plex.text[-2000:]
        assert plex.wait() == 0


ECHO_AFTER_A_MEGABYTE = (
    "import hashlib, sys\n"
    "for i in range(16384): sys.stderr.write(f'{i:063d}\\n')\n"
    "sys.stderr.flush()\n"
    "digest = hashlib.sha256()\n"
    "for line in sys.stdin.buffer:\n"
    "    digest.update(line); sys.stdout.buffer.write(line)\n"
    "sys.stdout.buffer.write(b'sha256 ' + digest.hexdigest().encode() + b'\\n')\n")
"""Writes 1 MB to stderr before it reads anything, then echoes its stdin and ends with the
SHA-256 of what it read."""


def test_megabytes_through_a_member_both_ways_arrive_whole(run_dir: Path,
                                                           tmp_path: Path) -> None:
    """A member that writes 1 MB to stderr before it reads, then echoes 4 MB sent through
    its NAME.in: pipeplex reads its output while it writes its input, so neither side
    waits for the other; every byte arrives, on the member's stdin and back on the stream."""
    sent = [os.urandom(48).hex() + "\n" for _ in range(40000)]
    output = tmp_path / "output"
    with output.open("wb") as out, subprocess.Popen(
            [*PIPEPLEX, "run", "-p", f"m={py(ECHO_AFTER_A_MEGABYTE)}", "--run-dir", run_dir],
            stdin=subprocess.DEVNULL, stdout=out) as proc:
        try:
            deadline = time.monotonic() + DEADLINE
            while not (run_dir / "m.in").exists():  # (opening it then waits for pipeplex)
                assert proc.poll() is None and time.monotonic() < deadline
                os.sched_yield()
            write_fifo(run_dir / "m.in", "".join(sent).encode())
            assert run("send", "--run-dir", run_dir, "m", "--eof").returncode == 0
            assert proc.wait(timeout=120) == 0
        finally:
            proc.kill()
    shown = output.read_text().splitlines()
    errors = [line for line in shown if line.startswith("m ! ")]
    assert errors == [f"m ! {i:063d}" for i in range(16384)]
    echoed = [line[4:] + "\n" for line in shown if line.startswith("m | ")]
    assert echoed[:-1] == sent
    assert echoed[-1] == f"sha256 {hashlib.sha256(''.join(sent).encode()).hexdigest()}\n"


def test_the_run_folder_is_private_and_removed_at_the_end(run_dir: Path) -> None:
    """The folder is 0700, each pipe a 0600 FIFO, whatever the umask; all gone afterwards."""
    old = os.umask(0)
    try:
        plex = Pipeplex("run", "-p", "c=cat", "--run-dir", run_dir)
    finally:
        os.umask(old)
    with plex:
        plex.expect("run folder")
        st = os.lstat(run_dir)
        assert stat.S_IMODE(st.st_mode) == 0o700
        for name in ("c.in", "all.in"):
            st = os.lstat(run_dir / name)
            assert stat.S_ISFIFO(st.st_mode)
            assert stat.S_IMODE(st.st_mode) == 0o600
            assert st.st_uid == os.geteuid()
        plex.signal()
        assert plex.wait() == 143
    assert not run_dir.exists(), (plex.text, list(run_dir.iterdir()))


@pytest.mark.parametrize("instead", ["a file", "a link", "nothing"])
def test_a_pipe_replaced_under_a_writer_stops_that_input_only(run_dir: Path, tmp_path: Path,
                                                              instead: str) -> None:
    """c.in swapped while a writer holds it: when that writer leaves, input through c.in
    stops with a note, the cast goes on (send still reaches c), and what is in its place
    now is left alone at the end."""
    with Pipeplex("run", "-p", "c=cat", "-p", "d=cat", "--run-dir", run_dir) as plex:
        plex.expect("run folder")
        path = run_dir / "c.in"
        writer = os.open(path, os.O_WRONLY)
        try:
            path.unlink()
            if instead == "a file":
                path.write_text("mine\n")
            elif instead == "a link":
                path.symlink_to(tmp_path)
            os.write(writer, b"through the old pipe\n")
        finally:
            os.close(writer)
        why = {"a file": "something that is not a FIFO of yours is in its place",
               "a link": "a symbolic link is in its place", "nothing": "it was removed"}[instead]
        plex.expect(rf"^pipeplex \* c\.in: {why}; input through it has stopped")
        write_fifo(run_dir / "d.in", b"still here\n")
        plex.expect(r"^d \| still here$")
        assert run("send", "--run-dir", run_dir, "c", "by send").returncode == 0
        plex.expect(r"^c \| by send$")
        assert "c | through the old pipe\n" in plex.text  # (cat answers in order)
        plex.signal()
        assert plex.wait() == 143
    assert "Traceback" not in plex.text
    if instead == "a file":
        assert path.read_text() == "mine\n"
    elif instead == "a link":
        assert path.is_symlink()
    else:
        assert not run_dir.exists()


def test_a_member_that_does_not_read_holds_up_the_writer_not_pipeplexs_memory(
        run_dir: Path) -> None:
    """4 MiB into a.in of a member that reads only once told: pipeplex stops reading the
    pipe with 1 MiB waiting (the writer waits, as on any pipe), refuses sends meanwhile, and
    everything arrives, in order, once the member reads."""
    size = 4 * 1024 * 1024
    reader = late_reader(size)
    lines = b"".join(b"%07d" % i + b"x" * 1016 + b"\n" for i in range(size // 1024))
    with Pipeplex("run", "-p", f"a={reader}", "--run-dir", run_dir) as plex:
        plex.expect(r"^a \| waiting$")
        writer = subprocess.Popen(
            [sys.executable, "-c", "import sys; open(sys.argv[1], 'wb').write(sys.stdin.buffer"
             ".read())", str(run_dir / "a.in")], stdin=subprocess.PIPE)
        try:
            assert writer.stdin is not None
            writer.stdin.write(lines)
            writer.stdin.close()
            deadline = time.monotonic() + DEADLINE  # (until the run stops reading the pipe)
            while status(run_dir)["members"][0]["pending_input"] < INPUT_FULL:
                assert time.monotonic() < deadline
            refused = run("send", "--run-dir", run_dir, "a", "more")
            assert refused.returncode == 1
            assert re.fullmatch(r"pipeplex: error: a has \d+ KiB of input it has not read yet; "
                                r"nothing was sent \(send again once it reads\)\n",
                                refused.stderr), refused.stderr
            waiting = status(run_dir)["members"][0]["pending_input"]
            assert INPUT_FULL <= waiting < INPUT_FULL + 256 * 1024
            assert writer.poll() is None  # (it waits on the pipe, with most yet to write)
            assert run("signal", "--run-dir", run_dir, "a", "USR1").returncode == 0
            plex.expect(rf"^a \| read {size} {zlib.crc32(lines)}$")
            assert writer.wait(timeout=DEADLINE) == 0
        finally:
            writer.kill()
            writer.wait()
        assert plex.wait() == 0  # (a ends once it has read: on_exit = stop ends the run)


def _fill_then_leave_a_line_in_the_pipe(conn: Connection, run_dir: Path) -> bytes:
    """Fill member a's input through the socket, then write a line to a.in, which stays in
    the pipe (asserted); all that was sent, in order."""
    sent = b""
    piece = "x" * (60 * 1024 - 1) + "\n"
    for _ in range(2 * INPUT_FULL // len(piece)):
        if conn.request({"op": "send", "name": "a", "data": piece})["ok"] is not True:
            break
        sent += piece.encode()
    else:
        raise AssertionError("the member's input never became full")
    fifo = os.open(run_dir / "a.in", os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fifo, b"one more\n")
        assert conn.request({"op": "ping"})["ok"]  # (the loop has looked at the pipe)
        left = struct.unpack("i", fcntl.ioctl(fifo, termios.FIONREAD, b"\0" * 4))[0]
        assert left == len(b"one more\n")  # (still in the pipe)
    finally:
        os.close(fifo)
    return sent + b"one more\n"


def test_a_member_filled_through_the_socket_takes_no_more_from_its_pipe(
        run_dir: Path) -> None:
    """Once sends through the control socket have filled a member's input, a line written
    to its NAME.in stays in the pipe (its writer waits): the pipe's reader had taken one
    more line before it looked."""
    reader = late_reader(64 * 1024 * 1024)  # (reads nothing in this test)
    with Pipeplex("run", "-p", f"a={reader}", "--run-dir", run_dir) as plex:
        plex.expect(r"^a \| waiting$")
        with Connection(run_dir) as conn:
            _fill_then_leave_a_line_in_the_pipe(conn, run_dir)
        plex.signal()
        assert plex.wait() == 143


READS_TO_THE_END = py("import signal, sys, zlib\n"
                     "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])\n"
                     "print('waiting', flush=True)\n"
                     "signal.sigwait([signal.SIGUSR1])\n"
                     "data = sys.stdin.buffer.read()\n"
                     "print('read', len(data), zlib.crc32(data), flush=True)\n")
"""A member that reads nothing until it gets SIGUSR1, then its stdin to the end."""


def test_what_its_pipe_holds_goes_before_the_eof_asked_for(run_dir: Path) -> None:
    """``cat data > a.in; pipeplex send a --eof``: the line still in a.in when the EOF is
    asked for (pipeplex had not read it: a's input was full) reaches a before its EOF."""
    with Pipeplex("run", "-p", f"a={READS_TO_THE_END}", "--run-dir", run_dir) as plex:
        plex.expect(r"^a \| waiting$")
        with Connection(run_dir) as conn:
            sent = _fill_then_leave_a_line_in_the_pipe(conn, run_dir)
            assert conn.request({"op": "send", "name": "a", "eof": True})["ok"] is True
        assert run("signal", "--run-dir", run_dir, "a", "USR1").returncode == 0
        plex.expect(rf"^a \| read {len(sent)} {zlib.crc32(sent)}$")
        assert plex.wait() == 0
        assert "dropped" not in plex.text, plex.text


def test_a_member_can_write_to_anothers_pipe_as_soon_as_it_starts(run_dir: Path) -> None:
    """Every NAME.in exists before any member starts: one member may feed another through
    the run folder from its first instant (a plain file made there would break the run)."""
    feeder = f"sh -c 'echo from-a > {run_dir}/b.in; exec sleep 60'"
    with Pipeplex("run", "-p", f"a={feeder}", "-p", "b=cat", "--run-dir", run_dir) as plex:
        plex.expect(r"^b +\| from-a$")
        plex.signal()
        assert plex.wait() == 143


def test_input_lines_are_sent_at_start(run_dir: Path, tmp_path: Path) -> None:
    """input = [...] lines reach the member's stdin as soon as it starts."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.c]\ncmd = "cat"\ninput = ["first", "second"]\n')
    with Pipeplex("run", cast, "--run-dir", run_dir) as plex:
        plex.expect(r"^c \| first$")
        plex.expect(r"^c \| second$")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("stdout", "tty 010"), ("true", "tty 111"), ("false", "tty 000")],
)
def test_terminal_modes(run_dir: Path, mode: str, expected: str) -> None:
    """stdout mode puts only stdout on a terminal; true gives a full one; false none."""
    with Pipeplex("run", "-p", f"t={sys.executable} {PROGS / 'ttys.py'}", "--pty", mode,
                  "--run-dir", run_dir) as plex:
        plex.expect(rf"^t \| {expected} leader 11$")
        assert plex.wait() == 0


def test_full_terminal_turns_ctrl_c_into_sigint(run_dir: Path) -> None:
    """With pty = true, ^C written to the member reaches it as SIGINT."""
    code = ("import signal, sys\n"
            "signal.signal(signal.SIGINT, lambda *a: (print('got SIGINT'), sys.exit(0)))\n"
            "print('ready'); signal.pause()")
    with Pipeplex("run", "-p", "t=" + py(code), "--pty", "true", "--run-dir", run_dir) as plex:
        plex.expect(r"^t \| ready$")
        write_fifo(run_dir / "t.in", b"\x03\n")
        plex.expect(r"^t \| got SIGINT$")
        assert plex.wait() == 0


def test_a_writer_opening_a_pipe_as_the_run_ends_is_never_left_waiting(tmp_path: Path) -> None:
    """The run's end removes NAME.in before it closes the pipe's read end: a writer that
    opened it in between waited for a reader for ever (its folder gone, nobody could free
    it). A script writes line after line while the run is stopped, six times: it must end
    once the pipe is gone. (The window is narrow; six tries found it with the old order.)"""
    for attempt in range(6):
        run_dir = tmp_path / f"run{attempt}"
        with Pipeplex("run", "-p", "a=cat", "--run-dir", run_dir) as plex:
            plex.expect(r"^a \* started")
            fifo = run_dir / "a.in"
            writer = subprocess.Popen(
                ["sh", "-c", 'while [ -p "$1" ]; do echo x > "$1" || break; done', "sh",
                 str(fifo)], stderr=subprocess.DEVNULL)
            try:
                plex.expect(r"^a \| x$")
                assert run("stop", "--run-dir", run_dir).returncode == 0
                assert plex.wait() == 0
                # It ends: at the loop's test once the pipe is gone, or of SIGPIPE when its
                # echo had opened the pipe just before the run closed the reading end.
                assert writer.wait(timeout=DEADLINE) in (0, -signal.SIGPIPE)
            finally:
                writer.kill()
                writer.wait()
