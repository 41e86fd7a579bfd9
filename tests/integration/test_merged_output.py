"""The merged stream: prefixes, stderr, partial lines, odd bytes, floods."""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import select
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from .helpers import DEADLINE, PIPEPLEX, PROGS, Pipeplex, py, run, write_fifo


def test_lines_come_back_prefixed_and_padded(run_dir: Path) -> None:
    """Each line is shown under its member's name, names padded to the longest."""
    result = run("run", "-p", "a=echo one", "-p", "longer=echo two", "--on-exit", "ignore",
                 "--run-dir", run_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "a      | one\n" in result.stdout
    assert "longer | two\n" in result.stdout


def test_stderr_lines_are_marked(run_dir: Path) -> None:
    """stderr lines carry '!' instead of '|'."""
    result = run("run", "-p", "e=" + py("import sys; print('bad', file=sys.stderr)"),
                 "--run-dir", run_dir)
    assert "e ! bad\n" in result.stdout


def test_last_partial_line_of_an_exiting_member_is_kept(run_dir: Path) -> None:
    """An unfinished last line is shown, and the member's exit status is pipeplex's."""
    result = run("run", "-p", "m=sh -c 'printf \"a\\nlast\"; exit 3'", "--run-dir", run_dir)
    assert "m | a\nm | last\n" in result.stdout
    assert result.returncode == 3


def test_prompt_without_newline_is_shown_before_the_answer(run_dir: Path) -> None:
    """A prompt with no newline shows up after a quiet time, while its program waits."""
    with Pipeplex("run", "-p", f"ask={sys.executable} {PROGS / 'prompt.py'}",
                  "--run-dir", run_dir) as plex:
        plex.expect(r"run folder")
        plex.expect(r"^ask \| what's your name\? $")
        write_fifo(run_dir / "ask.in", b"bob\n")
        plex.expect(r"^ask \| hello bob$")
        assert plex.wait() == 0


def test_a_slow_progress_bar_shows_its_state_at_most_every_half_second() -> None:
    """Each state comes after a pause (here, as soon as the last one was seen): it was a
    line per state for any bar slower than ten a second; now the latest state at most
    every half second, as for a fast bar, and the line's end at once."""
    from pipeplex import Output, Plex
    from pipeplex.participants._output import MAX_PARTIAL_AGE

    code = ("import sys\nfor i in range(3):\n    sys.stdout.write(f'\\r{i}'); "
            "sys.stdout.flush(); sys.stdin.readline()\nprint(' done')")
    shown: list[tuple[float, bytes]] = []
    with Plex(timeout=DEADLINE) as plex:
        plex.bus.subscribe(lambda event: shown.append((event.t, event.data)), [Output])
        bar = plex.spawn("bar", [sys.executable, "-c", code])
        for state in "012":
            bar.expect(state)
            bar.sendline()
        bar.expect("done")
    states = [t for t, data in shown if data.startswith(b"\r") and not data.endswith(b"\n")]
    assert len(states) == 3, shown
    assert all(later - earlier >= MAX_PARTIAL_AGE - 0.01
               for earlier, later in itertools.pairwise(states)), shown


def test_a_pause_inside_a_character_does_not_break_it(run_dir: Path) -> None:
    """The member pauses between the two bytes of "é": the line so far is shown, and the
    character comes whole with the rest, not as two replacement characters."""
    code = ("import os, sys\nos.write(1, b'caf\\xc3')\nsys.stdin.readline()\n"
            "os.write(1, b'\\xa9!\\n')")
    with Pipeplex("run", "-p", "b=" + py(code), "--run-dir", run_dir) as plex:
        plex.expect(r"^b \| caf")  # shown after the pause, as a prompt is
        write_fifo(run_dir / "b.in", b"go\n")
        plex.expect(r"^b \| .*!$")
        assert plex.wait() == 0
    assert "\ufffd" not in plex.text
    assert re.search(r"^b \| caf\n(.*\n)*b \| é!$", plex.text, re.MULTILINE), plex.text


@pytest.mark.parametrize("pty", ["stdout", "false"])
def test_bytes_that_are_not_utf8_reach_a_pipe_as_they_were_written(run_dir: Path,
                                                                   tmp_path: Path,
                                                                   pty: str) -> None:
    """Latin-1 text and binary data are not text to mend: a pipe or a file gets the bytes
    (on a terminal they show as U+FFFD, the rest of the line intact); the transcript keeps
    each byte, NULs and a terminal's controls too."""
    code = ("import sys; sys.stdout.buffer.write(b'ok \\xff\\xfe caf\\xe9 \\xc3( end\\n')\n"
            "sys.stdout.buffer.write(b'nul \\x00 \\x88 title \\x1b]0;x\\x07 end\\n')")
    transcript = tmp_path / "run.jsonl"
    result = subprocess.run([*PIPEPLEX, "run", "-p", "b=" + py(code), "--pty", pty,
                             "--transcript", str(transcript), "--run-dir", str(run_dir)],
                            capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    assert b"b | ok \xff\xfe caf\xe9 \xc3( end\n" in result.stdout
    recorded = b""
    for record in map(json.loads, transcript.read_text().splitlines()):
        if record.get("s") == "out":
            recorded += (base64.b64decode(record["b64"]) if "b64" in record
                         else record["d"].encode())
    assert recorded == b"ok \xff\xfe caf\xe9 \xc3( end\nnul \x00 \x88 title \x1b]0;x\x07 end\n"


STEPS = {"": "", "expect": "[[step]]\nexpect = '^DONE$'\nin = 'big'\n",
         "wait_exit": "[[step]]\nwait_exit = 'big'\n"}


@pytest.mark.parametrize("step", STEPS)
def test_a_huge_line_is_shown_in_pieces_with_bounded_memory(run_dir: Path, tmp_path: Path,
                                                            step: str) -> None:
    """50 MB without a newline comes out whole, in pieces, without 50 MB of memory; also
    while a step waits for what comes after it (the expectations' buffers keep the newest
    8 MiB each, however the line is cut)."""
    size = 50 * 1024 * 1024
    code = ("import os\nblock = b'x' * 65536\n"
            f"for _ in range({size // 65536}): os.write(1, block)\n"
            "os.write(1, b'\\nDONE\\n')\n")
    cast = tmp_path / "cast.toml"
    cast.write_text(f"[procs.big]\ncmd = {json.dumps([sys.executable, '-c', code])}\n"
                    f"pty = false\n{STEPS[step]}")
    xs = pieces = 0
    peak_kib = 0
    with subprocess.Popen(
        [*PIPEPLEX, "run", str(cast), "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(b"big | x"):
                pieces += 1
                xs += line.count(b"x")
            # pipeplex's own high-water mark (rusage of a child started by vfork would
            # start from pytest's), read while it is still alive.
            peak_kib = max(peak_kib, _vm_hwm_kib(proc.pid))
        status = proc.wait(timeout=60)
    assert status == 0
    assert xs == size
    assert pieces >= size // (256 * 1024)
    # Holding the line whole would take 50 MB and more on top of the interpreter (with a
    # step: three times that).
    assert 0 < peak_kib < (100 if step else 60) * 1024, peak_kib


def _vm_hwm_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match[1]) if match else 0


@pytest.mark.parametrize("pty", ["false", "stdout"])
@pytest.mark.parametrize("chunk", [0, 4096])
def test_flooding_writers_lose_and_tear_no_line(run_dir: Path, pty: str, chunk: int) -> None:
    """Four writers at full speed: every line arrives once, whole, under its own prefix."""
    count = 20000
    args = ["run", "--run-dir", str(run_dir), "--pty", pty, "--on-exit", "ignore"]
    for i in range(4):
        args += ["-p", f"w{i}={sys.executable} {PROGS / 'flood.py'} w{i} {count} {chunk}"]
    line_re = re.compile(rb"^(w\d) \| (w\d) (\d{10}) x{65}\n$")
    expected = {f"w{i}".encode(): 0 for i in range(4)}
    bad = []
    with subprocess.Popen([*PIPEPLEX, *args], stdout=subprocess.PIPE,
                          stdin=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if b" * " in line[:12] or line.startswith(b"pipeplex"):
                continue
            m = line_re.match(line)
            if not m or m[1] != m[2] or int(m[3]) != expected[m[1]]:
                bad.append(line)
                continue
            expected[m[1]] += 1
        assert proc.wait(timeout=60) == 0
    assert bad[:5] == []
    assert all(n == count for n in expected.values()), expected


@pytest.mark.parametrize("pty", ["false", "stdout"])
def test_lines_of_any_length_on_both_streams_arrive_whole_and_as_recorded(
        run_dir: Path, tmp_path: Path, pty: str) -> None:
    """Eight writers, six of them in random-sized writes of lines up to 4 KB, two of them a
    byte per write, each on stdout and stderr at once: on the console, every line of each
    stream arrives once, in order, whole (its CRC holds) and under its own name and mark;
    and the transcript holds exactly what the console showed, stream by stream."""
    count = {"chunks": 300, "bytes": 100}
    writers = {f"c{i}": "bytes" if i >= 6 else "chunks" for i in range(8)}
    transcript = tmp_path / "run.jsonl"
    args = ["run", "--run-dir", str(run_dir), "--pty", pty, "--on-exit", "ignore",
            "--transcript", str(transcript)]
    for name, mode in writers.items():
        args += ["-p", f"{name}={sys.executable} {PROGS / 'seq_flood.py'} {name} "
                       f"{count[mode]} {mode}"]
    line_re = re.compile(r"^(c\d) ([|!]) (c\d) ([12]) (\d{6}) ([0-9a-f]{8}) ([A-Za-z]*)$")
    shown: dict[tuple[str, str], list[str]] = {
        (name, stream): [] for name in writers for stream in ("out", "err")}
    bad = []
    result = subprocess.run([*PIPEPLEX, *args], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    for line in result.stdout.splitlines():
        if line.startswith("pipeplex") or line[3:4] == "*":
            continue
        m = line_re.match(line)
        stream = "out" if m and m[2] == "|" else "err"
        if (not m or m[1] != m[3] or m[4] != {"out": "1", "err": "2"}[stream]
                or int(m[6], 16) != zlib.crc32(m[7].encode())
                or int(m[5]) != len(shown[m[1], stream])):
            bad.append(line)
            continue
        shown[m[1], stream].append(line[5:])
    assert bad[:3] == []
    for (name, stream), lines in shown.items():
        assert len(lines) == count[writers[name]], (name, stream, len(lines))
    recorded: dict[tuple[str, str], str] = {key: "" for key in shown}
    with transcript.open() as records:
        for record in map(json.loads, records):
            if record.get("s") in ("out", "err"):
                recorded[record["p"], record["s"]] += record["d"]
    for key, lines in shown.items():
        assert recorded[key].splitlines() == lines, key


def test_a_slow_reader_of_pipeplex_slows_the_members_loses_nothing_and_costs_no_memory(
        run_dir: Path) -> None:
    """64 MB from a member, to a reader of pipeplex's output that takes it more slowly
    than the member writes: every line arrives, in order, and pipeplex's memory grows by
    far less than what waits (it stops reading the member while its own reader lags, past
    4 MiB, rather than keep what the member would write meanwhile)."""
    count = 800_000  # (80-byte lines)
    args = ["run", "--run-dir", str(run_dir), "--pty", "false", "--on-exit", "ignore",
            "--no-console", "-p", f"w={sys.executable} {PROGS / 'flood.py'} w {count} 0",
            "-p", "idle=sleep 60"]
    line_re = re.compile(rb"^w +\| w (\d{10}) x+$")
    expected, peaks = 0, []
    with subprocess.Popen([*PIPEPLEX, *args], stdout=subprocess.PIPE,
                          stdin=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None

        def peak() -> int:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1]) * 1024

        try:
            pending = b""
            while len(peaks) < 2:
                select.select([], [], [], 0.002)  # (the reader's pace, not a wait for anything)
                data = os.read(proc.stdout.fileno(), 65536)
                assert data, "pipeplex ended first"
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    m = line_re.match(line)
                    if m:
                        assert int(m[1]) == expected, line
                        if expected == 0:
                            peaks.append(peak())  # (everything loaded and running)
                        expected += 1
                    elif re.match(rb"w +\* exited with code 0$", line):
                        peaks.append(peak())
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=DEADLINE) == 143
        finally:
            proc.kill()
    assert expected == count
    assert peaks[1] - peaks[0] < 24 * 2**20, f"{(peaks[1] - peaks[0]) / 2**20:.0f} MiB more"


def test_children_do_not_inherit_pipeplex_resources(run_dir: Path) -> None:
    """A member sees only fds 0, 1 and 2: no pipe or FIFO of pipeplex leaks into it, nor
    a descriptor pipeplex itself inherited open (``cmd 3>file``, a CI runner's pipe)."""
    code = "import os; print('fds', sorted(int(f) for f in os.listdir('/proc/self/fd')))"
    inherited_r, inherited_w = os.pipe()
    os.set_inheritable(inherited_w, True)
    try:
        result = subprocess.run(
            [*PIPEPLEX, "run", "-p", "f=" + py(code), "--run-dir", str(run_dir)],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
            pass_fds=(inherited_w,))
    finally:
        os.close(inherited_r)
        os.close(inherited_w)
    # listdir itself opens one fd, which shows in its own listing.
    fds = re.search(r"f \| fds \[(.*)\]", result.stdout)
    assert fds, result.stdout
    assert [int(x) for x in fds[1].split(",")][:3] == [0, 1, 2]
    assert len(fds[1].split(",")) == 4



def test_a_reader_that_goes_away_stops_the_cast(run_dir: Path, tmp_path: Path) -> None:
    """pipeplex run ... | head: when stdout's reader leaves, the cast is stopped, and the
    records say why."""
    transcript = tmp_path / "t.jsonl"
    with subprocess.Popen(
        [*PIPEPLEX, "run", "-p", "y=yes hello", "--run-dir", str(run_dir), "--no-console",
         "--transcript", str(transcript)],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
    ) as proc:
        assert proc.stdout is not None
        seen = 0
        for line in proc.stdout:
            seen += line == b"y | hello\n"
            if seen == 3:
                break
        proc.stdout.close()
        assert proc.wait(timeout=30) == 0
    notes = [json.loads(line).get("d") for line in transcript.read_text().splitlines()
             if '"note"' in line]
    assert "the reader of pipeplex's output went away: stopping the cast" in notes


@pytest.mark.parametrize("pty", ["stdout", "false"])
def test_stderr_into_stdout_keeps_the_order_written(run_dir: Path, pty: str) -> None:
    """Two streams come in either order; one does not: a line printed before a failure
    comes before its traceback, every time (and the traceback is one piece)."""
    code = ("import sys\n"
            "for i in range(200):\n"
            "    print(f'out {i}', flush=True)\n"
            "    print(f'err {i}', file=sys.stderr, flush=True)\n")
    result = run("run", "-p", "m=" + py(code), "--stderr", "stdout", "--pty", pty,
                 "--run-dir", run_dir)
    lines = [line for line in result.stdout.splitlines() if line.startswith("m |")]
    assert lines == [f"m | {kind} {i}" for i in range(200) for kind in ("out", "err")]


@pytest.mark.parametrize("value", ["0", "false"])
def test_force_color_0_means_off(tmp_path: Path, value: str) -> None:
    """FORCE_COLOR=0 is "off" to the tools that read it (Node's among them), set so in CI
    to quiet them: it turned pipeplex's colours on in a pipe, and kept NO_COLOR from the
    members."""
    result = subprocess.run(
        [*PIPEPLEX, "run", "-p", "a=sh -c 'echo no_color=$NO_COLOR'", "--no-console",
         "--run-dir", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=DEADLINE, stdin=subprocess.DEVNULL,
        env={**os.environ, "FORCE_COLOR": value})
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout
    assert re.search(r"^a +\| no_color=1$", result.stdout, re.M), result.stdout


def test_members_keep_the_callers_term_where_the_output_is_a_file_or_a_pipe(
        tmp_path: Path) -> None:
    """NO_COLOR there, but the caller's TERM: under TERM=dumb, tput and clear fail, and a
    build script under set -e that calls them ended in a log with no word of why."""
    script = tmp_path / "build.sh"
    script.write_text("#!/bin/sh\nset -eu\nbold=$(tput bold)\n"
                      "echo \"term=$TERM color=$NO_COLOR\"\n")
    script.chmod(0o755)
    result = subprocess.run(
        [*PIPEPLEX, "run", "-p", f"b={script}", "--no-console", "--run-dir",
         str(tmp_path / "r")],
        capture_output=True, text=True, timeout=DEADLINE, stdin=subprocess.DEVNULL,
        env={**os.environ, "TERM": "xterm-256color"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^b +\| term=xterm-256color color=1$", result.stdout, re.M), result.stdout
