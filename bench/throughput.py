"""How fast pipeplex merges floods of output, against the limits of the machine and peers.

    .venv/bin/python bench/throughput.py            # 4 writers x 64 MB, 3 repetitions
    .venv/bin/python bench/throughput.py --quick    # 4 writers x 8 MB, 1 repetition
    .venv/bin/python bench/throughput.py --chunk 4096   # writers that split lines
    .venv/bin/python bench/throughput.py --peers    # also concurrently and honcho

K writers (``writer.py``) each write M MB of 80-byte lines as fast as they can. The same
writers run under each tool, one after the other, in an order that rotates each
repetition:

- ``raw cat (pipes)``: every writer's stdout into one ``cat > /dev/null`` pipe; the
  limit for plain pipes;
- ``bare pty loop``: a Python loop reading one pty master (raw mode) per writer with
  ``os.read``, output thrown away; the limit for pseudo-terminals;
- ``pipeplex --pty false`` (pipes), ``pipeplex --pty stdout`` (the default: stdout on a
  raw pty) and ``pipeplex --pty true`` (a full terminal), each writing its merged stream
  to a file;
- with ``--peers`` (installed by ``peers.py``): ``concurrently`` (prefix ``{name} |``)
  and ``honcho`` (a Procfile; a smaller size, ``--honcho-mb``, since it is slow; its
  writers wait for each other before exiting, as honcho stops everyone when one exits).

Wall time runs from the first spawn to the last exit, start-up included (the script
prints pipeplex's start-up and shutdown time with one ``true`` member for reference).

Every output file is checked line by line, streaming: each writer's lines must appear
under its own prefix (``w0 | `` for pipeplex and concurrently, ``HH:MM:SS w0.1   | ``
for honcho), complete, with SEQ running 0..n-1; the tools' own notes are skipped. Then
it is deleted, so at most one output (K x M MB) is on disk at a time.

Figures per tool (medians over the repetitions): MB/s of payload (MB = 2**20 bytes);
the CPU seconds of the tool alone (cat from its wait4 rusage; the bare loop from this
script's own rusage; pipeplex and the peers from the wait4 rusage of their whole process
tree minus the CPU each writer reports for itself, ``writer.py --cpu-report``); CPU
microseconds per line; peak RSS (the VmHWM of the tool's processes, writers left out,
sampled every 50 ms); lost and torn lines; and the rate as a fraction of the limit for
the same kind of output (pipes: raw cat; stdout and full: bare pty) from the same
repetition. ``run_series`` is what ``run_all.py`` calls.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import resource
import select
import selectors
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _casts import children
from _common import (
    BLOCK_LINES,
    CLOCK_TICKS,
    LINE_BYTES,
    MiB,
    block_template,
    cpu_ticks,
    expected_line,
    fmt,
    markdown_table,
    median,
    proc_status,
    render_block,
    status_kib,
)

HERE = Path(__file__).resolve().parent
WRITER = HERE / "writer.py"
READ_SIZE = 256 * 1024
CHECK_READ = 8 * MiB
SAMPLE_LIMIT = 5


def find_pipeplex() -> str:
    """The pipeplex next to this Python (a venv's bin), else the one on PATH."""
    beside = Path(sys.executable).parent / "pipeplex"
    if beside.exists():
        return str(beside)
    found = shutil.which("pipeplex")
    if not found:
        sys.exit("pipeplex not found: run with the Python of the venv it is installed in")
    return found


# Writers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    writers: int
    bytes_per_writer: int
    chunk: int | None

    @property
    def lines_per_writer(self) -> int:
        return self.bytes_per_writer // LINE_BYTES

    @property
    def payload(self) -> int:
        return self.writers * self.lines_per_writer * LINE_BYTES

    @property
    def lines(self) -> int:
        return self.writers * self.lines_per_writer

    def writer_argv(self, i: int, cpu_dir: Path | None = None,
                    barrier: Path | None = None) -> list[str]:  # fmt: skip
        """The command of writer ``i``; ``cpu_dir``: where it reports its own CPU time;
        ``barrier``: a folder where the writers wait for each other once done."""
        argv = [sys.executable, str(WRITER), "--id", str(i), "--bytes",
                str(self.bytes_per_writer)]  # fmt: skip
        if self.chunk:
            argv += ["--chunk", str(self.chunk)]
        if cpu_dir is not None:
            argv += ["--cpu-report", str(cpu_dir / f"w{i}")]
        if barrier is not None:
            argv += ["--barrier", str(barrier), "--barrier-n", str(self.writers)]
        return argv

    def member_name(self, i: int) -> str:
        """``w0``..``w9``, or zero-padded (``w00``..``w15``) so that all names are as wide."""
        return f"w{i:0{len(str(max(self.writers - 1, 0)))}d}"


# Output checking ------------------------------------------------------------------------


@dataclass
class _Member:
    writer_id: str
    total: int
    template: bytes
    next_seq: int = 0
    block: int = -1
    rendered: bytearray = field(default_factory=bytearray)
    torn_seqs: set[int] = field(default_factory=set)


@dataclass
class CheckResult:
    lines_ok: int = 0
    lost: int = 0
    torn: int = 0
    other: int = 0
    notes: int = 0
    samples: list[str] = field(default_factory=list)
    lost_ranges: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.torn or self.other)


@dataclass(frozen=True)
class StreamFormat:
    """How a tool prefixes its members' lines, and which of its lines are its own notes.

    ``prefixes[i]`` is the exact prefix of writer ``i``'s lines (all of the same length);
    a line that starts with one of ``notes``, or (under a member's prefix) matches
    ``note_re``, is the tool's own and is skipped.
    """

    prefixes: tuple[bytes, ...]
    notes: tuple[bytes, ...] = ()
    note_re: re.Pattern[bytes] | None = None


def pipeplex_format(load: Load) -> StreamFormat:
    """``NAME | text`` with names padded to the widest, notes ``NAME * ...``."""
    names = [load.member_name(i) for i in range(load.writers)]
    width = max(len(n) for n in names)
    return StreamFormat(
        tuple(n.ljust(width).encode() + b" | " for n in names),
        (b"pipeplex * ", *(n.ljust(width).encode() + b" * " for n in names)),
    )


class OutputChecker:
    """Checks a merged stream, fed in arbitrary pieces, without holding it all.

    Runs of consecutive lines of one member are compared in bulk against the expected
    rendering (prefix + line); only lines that do not match are looked at one by one.
    The prefixes are pipeplex's unless ``fmt`` gives another tool's.
    """

    def __init__(self, load: Load, fmt: StreamFormat | None = None) -> None:
        fmt = fmt or pipeplex_format(load)
        self.key_len = len(fmt.prefixes[0])
        if any(len(p) != self.key_len for p in fmt.prefixes):
            raise ValueError("every prefix must have the same length")
        self.members: dict[bytes, _Member] = {}
        self.notes: tuple[bytes, ...] = fmt.notes
        self.note_re = fmt.note_re
        for i, out in enumerate(fmt.prefixes):
            self.members[out] = _Member(str(i), load.lines_per_writer, block_template(str(i), out))
        self.row = self.key_len + LINE_BYTES
        self.result = CheckResult()
        self._tail = b""

    def _bad(self, kind: str, line: bytes) -> None:
        if len(self.result.samples) < SAMPLE_LIMIT:
            shown = line if len(line) <= 200 else line[:120] + b"..." + line[-40:]
            self.result.samples.append(f"{kind}: {shown!r}")

    def _rendered(self, m: _Member, block: int) -> bytearray:
        if m.block != block:
            m.block = block
            m.rendered = render_block(m.template, block)
        return m.rendered

    def feed(self, data: bytes) -> None:
        buf = self._tail + data if self._tail else data
        limit = buf.rfind(b"\n") + 1
        self._tail = buf[limit:]
        pos = 0
        row, key_len, res = self.row, self.key_len, self.result
        while pos < limit:
            m = self.members.get(buf[pos : pos + key_len])
            if m is None:
                pos = self._other_line(buf, pos)
                continue
            s = m.next_seq
            fits = min(BLOCK_LINES - s % BLOCK_LINES, m.total - s, (limit - pos) // row)
            if fits > 0:
                blk = self._rendered(m, s // BLOCK_LINES)
                off = (s % BLOCK_LINES) * row
                if buf[pos : pos + fits * row] == blk[off : off + fits * row]:
                    good = fits
                else:  # the longest matching run of whole lines: binary search
                    lo, hi = 0, fits
                    while hi - lo > 1:
                        mid = (lo + hi) // 2
                        if buf[pos : pos + mid * row] == blk[off : off + mid * row]:
                            lo = mid
                        else:
                            hi = mid
                    good = lo
                if good:
                    m.next_seq += good
                    res.lines_ok += good
                    pos += good * row
                    continue
            pos = self._member_line(m, buf, pos)

    def _other_line(self, buf: bytes, pos: int) -> int:
        end = buf.index(b"\n", pos) + 1
        line = buf[pos:end]
        if any(line.startswith(n) for n in self.notes) or (
                self.note_re is not None and self.note_re.search(line)):  # fmt: skip
            self.result.notes += 1
        else:
            self.result.torn += 1
            self._bad("line under no member's prefix", line)
        return end

    def _member_line(self, m: _Member, buf: bytes, pos: int) -> int:
        """One line under ``m``'s prefix that is not the next expected line."""
        end = buf.index(b"\n", pos) + 1
        line = buf[pos:end]
        payload = line[self.key_len :]
        words = payload.split(b" ", 2)
        seq = int(words[1]) if len(words) == 3 and words[1].isdigit() else None
        res = self.result
        if seq is not None and words[0].decode(errors="replace") == m.writer_id:
            if payload == expected_line(m.writer_id, seq):
                if seq >= m.next_seq:
                    self._gap(m, seq)
                    m.next_seq = seq + 1
                    res.lines_ok += 1
                else:
                    res.other += 1
                    self._bad(f"repeated or out of order (expected SEQ {m.next_seq})", line)
                return end
            m.torn_seqs.add(seq)
        elif self.note_re is not None and self.note_re.search(line):
            res.notes += 1
            return end
        res.torn += 1
        self._bad("torn", line)
        return end

    def _gap(self, m: _Member, upto: int) -> None:
        if upto <= m.next_seq:
            return
        missing = upto - m.next_seq - sum(1 for s in m.torn_seqs if m.next_seq <= s < upto)
        if missing > 0:
            self.result.lost += missing
            if len(self.result.lost_ranges) < SAMPLE_LIMIT:
                self.result.lost_ranges.append(
                    f"w{m.writer_id}: SEQ {m.next_seq}..{upto - 1} ({missing} lines)")

    def finish(self) -> CheckResult:
        if self._tail:  # an unfinished last line: checked as if it had its newline
            self.feed(b"\n")
        for m in self.members.values():
            self._gap(m, m.total)
            m.next_seq = m.total
        return self.result


def check_file(path: Path, load: Load, fmt: StreamFormat | None = None,
               transform: Callable[[bytes], bytes] | None = None) -> CheckResult:  # fmt: skip
    """Check a whole output file; ``transform`` rewrites each piece of whole lines first."""
    checker = OutputChecker(load, fmt)
    tail = b""
    with open(path, "rb") as f:
        while chunk := f.read(CHECK_READ):
            if transform is not None:
                chunk = tail + chunk
                cut = chunk.rfind(b"\n") + 1
                chunk, tail = transform(chunk[:cut]), chunk[cut:]
            checker.feed(chunk)
    if tail:
        checker.feed(transform(tail) if transform is not None else tail)
    return checker.finish()


# Runs -----------------------------------------------------------------------------------


@dataclass
class Sample:
    seconds: float
    cpu: float | None = None
    rss_kib: int | None = None
    check: CheckResult | None = None
    exit_status: int | None = None
    stderr_tail: str = ""
    problem: str = ""


def run_raw_cat(load: Load, _work: Path) -> Sample:
    start = time.perf_counter()
    cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert cat.stdin is not None
    writers = [subprocess.Popen(load.writer_argv(i), stdout=cat.stdin, stdin=subprocess.DEVNULL)
               for i in range(load.writers)]  # fmt: skip
    cat.stdin.close()
    codes = [w.wait() for w in writers]
    # cat has no children, so its rusage is its own (its ru_maxrss is not: a forked
    # child keeps the high-water mark of the Python it was forked from).
    _, status, usage = os.wait4(cat.pid, 0)
    cat.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    bad = [c for c in codes if c] + ([cat.returncode] if cat.returncode else [])
    return Sample(seconds, usage.ru_utime + usage.ru_stime,
                  problem=f"exit codes {bad}" if bad else "")  # fmt: skip


def run_bare_pty(load: Load, _work: Path) -> Sample:
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_SELF)
    sel = selectors.DefaultSelector()
    writers = []
    for i in range(load.writers):
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        writers.append(subprocess.Popen(load.writer_argv(i), stdout=slave,
                                        stdin=subprocess.DEVNULL))  # fmt: skip
        os.close(slave)
        sel.register(master, selectors.EVENT_READ)
    sink = os.open(os.devnull, os.O_WRONLY)
    received = 0
    try:
        while sel.get_map():
            for key, _ in sel.select():
                fd = key.fd
                try:
                    data = os.read(fd, READ_SIZE)
                except BlockingIOError:
                    continue
                except OSError as exc:  # EIO: every slave end is closed
                    if exc.errno != errno.EIO:
                        raise
                    data = b""
                if data:
                    received += len(data)
                    os.write(sink, data)
                else:
                    sel.unregister(fd)
                    os.close(fd)
        codes = [w.wait() for w in writers]
    finally:
        os.close(sink)
        sel.close()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    problem = ""
    if any(codes):
        problem = f"exit codes {codes}"
    if received != load.payload:
        problem += f" received {received} of {load.payload} bytes"
    return Sample(seconds, cpu, problem=problem.strip())


def pipeplex_argv(load: Load, mode: str, run_dir: Path, cpu_dir: Path | None = None) -> list[str]:
    argv = [find_pipeplex(), "run"]
    for i in range(load.writers):
        argv += ["-p", f"{load.member_name(i)}={shlex.join(load.writer_argv(i, cpu_dir))}"]
    return [*argv, "--run-dir", str(run_dir), "--no-color", "--on-exit", "ignore",
            "--pty", mode]  # fmt: skip


@dataclass
class Finished:
    seconds: float
    cpu: float
    rss_kib: int | None
    status: int


def _is_writer(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return WRITER.name.encode() in f.read()
    except OSError:
        return False


def tool_processes(root: int) -> list[int]:
    """``root`` and its descendants, writers (and what they started) left out."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += [c for c in children(pid) if not _is_writer(c)]
    return found


def writers_cpu(cpu_dir: Path) -> float:
    """The CPU seconds the writers reported for themselves (``writer.py --cpu-report``)."""
    return sum(float(p.read_text() or 0) for p in cpu_dir.iterdir())


def run_measured(argv: list[str], stdout: int, stderr: int, cpu_dir: Path | None = None,
                 cwd: Path | None = None) -> Finished:  # fmt: skip
    """Run ``argv`` and measure its CPU time and peak RSS, without its members'.

    Without ``cpu_dir`` the figures are the process's own: VmHWM sampled every 20 ms,
    and utime+stime from /proc read once it has exited but is not yet reaped
    (``waitid(WNOWAIT)``), since ``wait4``'s rusage would add the CPU of every member it
    reaped. With ``cpu_dir`` (where the writers report their own CPU) the figures cover
    the tool's whole process tree, for tools that fork helpers: CPU is ``wait4``'s
    rusage (the tool and everything it reaped) minus what the writers report, and RSS
    the sum of the VmHWM of the tool's processes other than the writers, sampled every
    50 ms.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                            cwd=cwd)  # fmt: skip
    pidfd = os.pidfd_open(proc.pid)
    peaks: dict[int, int] = {}
    tree = cpu_dir is not None
    try:
        while not select.select([pidfd], [], [], 0.05 if tree else 0.02)[0]:
            for pid in tool_processes(proc.pid) if tree else [proc.pid]:
                try:
                    value = status_kib(proc_status(pid), "VmHWM")
                except OSError:
                    continue
                if value is not None:
                    peaks[pid] = max(peaks.get(pid, 0), value)
        seconds = time.perf_counter() - start
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        own, _children = cpu_ticks(proc.pid)
        _, status, rusage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        os.close(pidfd)
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    cpu = own / CLOCK_TICKS
    if cpu_dir is not None:
        cpu = max(rusage.ru_utime + rusage.ru_stime - writers_cpu(cpu_dir), 0.0)
    return Finished(seconds, cpu, sum(peaks.values()) if peaks else None, proc.returncode)


def run_and_check(tag: str, argv: list[str], load: Load, work: Path, cpu_dir: Path,
                  fmt: StreamFormat | None = None,
                  transform: Callable[[bytes], bytes] | None = None,
                  cwd: Path | None = None,
                  ok_status: tuple[int, ...] = (0,)) -> Sample:  # fmt: skip
    """Run a tool whose stdout is the merged stream, check that stream, then delete it."""
    out_path = work / f"out-{tag}.txt"
    err_path = work / f"err-{tag}.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        done = run_measured(argv, out.fileno(), err.fileno(), cpu_dir, cwd)
    try:
        check = check_file(out_path, load, fmt, transform)
    finally:
        out_path.unlink()
    stderr = err_path.read_text(errors="replace")
    err_path.unlink()
    problem = f"{tag} exited with status {done.status}" if done.status not in ok_status else ""
    tail = "\n".join(stderr.strip().splitlines()[-6:])
    return Sample(done.seconds, done.cpu, done.rss_kib, check, done.status, tail, problem)


def _scratch(work: Path) -> Path:
    scratch = Path(tempfile.mkdtemp(dir=work))
    (scratch / "cpu").mkdir()
    return scratch


def run_pipeplex(mode: str) -> Callable[[Load, Path], Sample]:
    def run(load: Load, work: Path) -> Sample:
        scratch = _scratch(work)
        try:
            argv = pipeplex_argv(load, mode, scratch / "run", scratch / "cpu")
            return run_and_check(f"pipeplex-{mode}", argv, load, work, scratch / "cpu")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    return run


# Peers (installed by peers.py into bench/.peers) -----------------------------------------

CONCURRENTLY_NOTE = re.compile(rb" exited with code -?\d+\n\Z")
HONCHO_TIME = re.compile(rb"^\d\d:\d\d:\d\d ", re.MULTILINE)


def run_concurrently(load: Load, work: Path) -> Sample:
    """concurrently with the prefix ``{name} |``: ``w0 | text``, like pipeplex's.

    Its notes (``w0 | CMD exited with code 0``) come under the member's prefix.
    """
    from peers import concurrently_bin

    scratch = _scratch(work)
    try:
        names = [load.member_name(i) for i in range(load.writers)]
        cmds = [shlex.join(load.writer_argv(i, scratch / "cpu")) for i in range(load.writers)]
        argv = [concurrently_bin() or "concurrently", "--no-color", "--prefix", "{name} |",
                "-n", ",".join(names), *cmds]  # fmt: skip
        fmt = StreamFormat(tuple(n.encode() + b" | " for n in names), (), CONCURRENTLY_NOTE)
        return run_and_check("concurrently", argv, load, work, scratch / "cpu", fmt)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_honcho(load: Load, work: Path) -> Sample:
    """honcho with a Procfile; lines ``HH:MM:SS w0.1   | text``, notes under ``system``.

    honcho stops every member as soon as one exits, so the writers wait for each other
    at a barrier once done (``writer.py --barrier``) and exit together. The time stamps
    are cut off before the check.
    """
    from peers import honcho_bin

    scratch = _scratch(work)
    try:
        (scratch / "barrier").mkdir()
        names = [load.member_name(i) for i in range(load.writers)]
        procfile = scratch / "Procfile"
        procfile.write_text("".join(
            f"{n}: {shlex.join(load.writer_argv(i, scratch / 'cpu', scratch / 'barrier'))}\n"
            for i, n in enumerate(names)))  # fmt: skip
        width = max(6, *(len(n) + 2 for n in names))
        fmt = StreamFormat(tuple(f"{n}.1".ljust(width).encode() + b" | " for n in names),
                           ("system".ljust(width).encode() + b" | ",))  # fmt: skip
        argv = [honcho_bin() or "honcho", "--no-colour", "-f", str(procfile), "start"]
        # honcho's status is that of the first member to exit, or of one it stopped.
        return run_and_check("honcho", argv, load, work, scratch / "cpu", fmt,
                             lambda b: HONCHO_TIME.sub(b"", b), cwd=scratch,
                             ok_status=(0, 1, 143, -15))  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


TOOLS: dict[str, tuple[Callable[[Load, Path], Sample], str | None]] = {
    "raw cat (pipes)": (run_raw_cat, None),
    "bare pty loop": (run_bare_pty, None),
    "pipeplex --pty false": (run_pipeplex("false"), "raw cat (pipes)"),
    "pipeplex --pty stdout": (run_pipeplex("stdout"), "bare pty loop"),
    "pipeplex --pty true": (run_pipeplex("true"), "bare pty loop"),
    "concurrently": (run_concurrently, "raw cat (pipes)"),
    "honcho": (run_honcho, "raw cat (pipes)"),
}
PEERS = ("concurrently", "honcho")


def available_peers() -> dict[str, str]:
    """Peer tool -> '' when installed, else why not."""
    from peers import concurrently_bin, honcho_bin

    return {"concurrently": "" if concurrently_bin() else "not installed (npm)",
            "honcho": "" if honcho_bin() else "not installed (pip)"}  # fmt: skip


def startup_seconds(work: Path) -> float:
    """Wall time of a pipeplex run whose one member exits at once (start-up and shutdown)."""
    run_dir = Path(tempfile.mkdtemp(dir=work)) / "run"
    start = time.perf_counter()
    subprocess.run([find_pipeplex(), "run", "-p", "t=true", "--run-dir", str(run_dir),
                    "--no-color", "--on-exit", "ignore", "--pty", "false"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)  # fmt: skip
    seconds = time.perf_counter() - start
    shutil.rmtree(run_dir.parent, ignore_errors=True)
    return seconds



# A series: every tool in turn, several times -----------------------------------------------


@dataclass
class Series:
    """The samples of every tool over the repetitions of one load."""

    load: Load
    loads: dict[str, Load]
    tools: list[str]
    repeat: int
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    ratios: dict[str, list[float]] = field(default_factory=dict)
    startup: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def rate(self, tool: str, sample: Sample) -> float:
        return self.loads[tool].payload / MiB / sample.seconds

    def net_rate(self, tool: str, sample: Sample) -> float | None:
        """The rate without the tool's start-up and shutdown; None when they are most of
        the run (then the difference is mostly noise)."""
        startup = self.startup.get(tool)
        if startup is None or sample.seconds - startup < 0.25 * sample.seconds:
            return None
        return self.loads[tool].payload / MiB / (sample.seconds - startup)

    def summary(self, tool: str) -> dict[str, float | int | str | None]:
        """Medians over the repetitions (lost and torn: totals)."""
        ss = self.samples[tool]
        load = self.loads[tool]
        secs = median(s.seconds for s in ss)
        cpu = median(s.cpu for s in ss)
        rss = median(s.rss_kib for s in ss)
        checked = [s.check for s in ss if s.check is not None]
        return {
            "mb": load.payload / MiB,
            "mb_s": median(self.rate(tool, s) for s in ss),
            "net_mb_s": median(self.net_rate(tool, s) for s in ss),
            "wall_s": secs,
            "startup_s": self.startup.get(tool),
            "cpu_s": cpu,
            "cpu_us_line": cpu * 1e6 / load.lines if cpu is not None and load.lines else None,
            "rss_mb": rss / 1024 if rss is not None else None,
            "lost": sum(c.lost for c in checked) if checked else None,
            "torn": sum(c.torn + c.other for c in checked) if checked else None,
            "ratio": median(self.ratios[tool]) if self.ratios[tool] else None,
            "limit": TOOLS[tool][1] or "",
            "problems": sum(1 for s in ss if s.problem),
        }


def run_series(load: Load, tools: list[str], repeat: int, *,
               loads: dict[str, Load] | None = None, startup_runs: int = 0,
               ratio_to: str | None = None, warm_up: bool = True,
               log: Callable[[str], None] = print) -> Series:  # fmt: skip
    """Run every tool of ``tools`` ``repeat`` times, rotating the order each repetition.

    ``loads`` gives some tools a load of their own (a slow peer a smaller size);
    ``startup_runs``: first time each tool that many times (median) with writers that
    write nothing (start-up and shutdown, for the net rates); ``ratio_to`` names the
    limit every tool's rate is compared with in each repetition (default: each tool's
    own limit in ``TOOLS``).
    """
    series = Series(load, {t: (loads or {}).get(t, load) for t in tools}, tools, repeat)
    series.samples = {t: [] for t in tools}
    series.ratios = {t: [] for t in tools}
    work = Path(tempfile.mkdtemp(prefix="pipeplex-bench-"))
    try:
        if warm_up:  # not measured: page cache, CPU frequency, the first fork of a big Python
            run_raw_cat(Load(load.writers, 4 * MiB, load.chunk), work)
            if "bare pty loop" in tools:
                run_bare_pty(Load(load.writers, 4 * MiB, load.chunk), work)
            startup_seconds(work)
        if startup_runs:
            empty = Load(load.writers, 0, load.chunk)
            for tool in tools:
                series.startup[tool] = statistics.median(
                    TOOLS[tool][0](empty, work).seconds for _ in range(startup_runs))
            log("  start-up and shutdown with writers that write nothing: " + ", ".join(
                f"{t} {s:.2f} s" for t, s in series.startup.items()))  # fmt: skip
        for rep in range(repeat):
            order = tools[rep % len(tools):] + tools[: rep % len(tools)]
            this_rep: dict[str, Sample] = {}
            for tool in order:
                sample = TOOLS[tool][0](series.loads[tool], work)
                this_rep[tool] = sample
                series.samples[tool].append(sample)
                extra = ""
                if sample.cpu is not None:
                    extra = f" cpu {sample.cpu:.2f} s"
                if sample.check is not None:
                    c = sample.check
                    extra += f", lost {c.lost}, torn {c.torn}"
                    if c.other:
                        extra += f", other {c.other}"
                log(f"  [{rep + 1}/{repeat}] {tool:<22} {sample.seconds:6.2f} s "
                    f"{series.rate(tool, sample):8.1f} MB/s{extra}"
                    + (f"  ({sample.problem})" if sample.problem else ""))  # fmt: skip
                if sample.problem or (sample.check and not sample.check.clean):
                    series.failures.append(
                        describe_failure(tool, rep, sample, series.loads[tool]))
            for tool in tools:
                limit = ratio_to if ratio_to is not None else TOOLS[tool][1]
                if limit is None or limit == tool or limit not in this_rep:
                    continue
                series.ratios[tool].append(series.rate(tool, this_rep[tool])
                                           / series.rate(limit, this_rep[limit]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return series


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, default=4, help="number of writers (K)")
    parser.add_argument("--mb-per-writer", type=float, default=64.0,
                        help="MB (2**20 bytes) each writer writes")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (medians reported)")
    parser.add_argument("--chunk", type=int, default=None,
                        help="bytes per write in the writers (e.g. 4096: lines split across "
                             "writes); default whole lines, ~64 KiB per write")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="4 writers x 8 MB, 1 repetition")
    parser.add_argument("--only", action="append", choices=list(TOOLS),
                        help="run only this tool (repeatable; limits are always run)")  # fmt: skip
    parser.add_argument("--peers", action="store_true",
                        help="also run concurrently and honcho (installed by peers.py)")
    parser.add_argument("--honcho-mb", type=float, default=8.0,
                        help="MB in all for honcho, which is slow (default 8)")
    args = parser.parse_args(argv)
    if args.quick:
        args.writers, args.mb_per_writer, args.repeat = 4, 8.0, 1
    load = Load(args.writers, int(args.mb_per_writer * MiB), args.chunk)
    tools = [t for t in TOOLS if t not in PEERS]
    if args.peers:
        for peer, why in available_peers().items():
            if why:
                print(f"{peer}: skipped, {why}")
            else:
                tools.append(peer)
    tools = [t for t in tools if TOOLS[t][1] is None or not args.only or t in args.only]
    loads = {"honcho": Load(load.writers, int(args.honcho_mb * MiB / load.writers), load.chunk)}

    chunk_text = f"{args.chunk}-byte writes" if args.chunk else "whole-line ~64 KiB writes"
    print(f"pipeplex throughput: {load.writers} writers x {args.mb_per_writer:g} MB "
          f"({load.payload / MiB:.0f} MB, {load.lines:,} lines of {LINE_BYTES} bytes), "
          f"{chunk_text}, {args.repeat} repetition(s), {os.cpu_count()} CPUs")  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="pipeplex-bench-"))
    try:
        print(f"pipeplex start-up + shutdown with one `true` member: "
              f"{startup_seconds(work):.2f} s")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    series = run_series(load, tools, args.repeat, loads=loads)
    rows = []
    for tool in tools:
        m = series.summary(tool)
        rows.append([
            tool,
            fmt(m["mb_s"], ".0f"),  # type: ignore[arg-type]
            fmt(m["wall_s"], ".2f"),  # type: ignore[arg-type]
            fmt(m["cpu_s"], ".2f"),  # type: ignore[arg-type]
            fmt(m["cpu_us_line"], ".2f"),  # type: ignore[arg-type]
            fmt(m["rss_mb"], ".0f"),  # type: ignore[arg-type]
            "-" if m["lost"] is None else str(m["lost"]),
            "-" if m["torn"] is None else str(m["torn"]),
            f"{m['ratio']:.2f}x" if m["ratio"] is not None else "limit",
        ])  # fmt: skip
    print()
    print(markdown_table(["tool", "MB/s", "wall s", "tool CPU s", "CPU µs/line",
                          "peak RSS MB", "lost", "torn", "vs limit"], rows))  # fmt: skip
    print()
    print("MB = 2**20 bytes; medians of the repetitions; lost and torn are totals over them.")
    print("tool CPU: the process that reads the writers (cat, this script's own loop), or the")
    print("tool's processes without the writers; peak RSS: VmHWM of the tool's processes.")
    if "honcho" in tools:
        print(f"honcho: {loads['honcho'].payload / MiB:g} MB in all (it is slow); its writers "
              "wait for each other before exiting.")  # fmt: skip
    if series.failures:
        print()
        print("PROBLEMS")
        for text in series.failures:
            print(text)
    return 1 if series.failures else 0


def describe_failure(tool: str, rep: int, sample: Sample, load: Load) -> str:
    lines = [f"- {tool}, repetition {rep + 1}: {sample.problem or 'bad output'}"]
    if sample.check is not None:
        c = sample.check
        lines.append(f"  intact {c.lines_ok:,} of {load.lines:,} lines; lost {c.lost}, "
                     f"torn {c.torn}, repeated/out of order {c.other}, "
                     f"notes {c.notes}")  # fmt: skip
        lines += [f"  lost: {r}" for r in c.lost_ranges]
        lines += [f"  {s}" for s in c.samples]
    if sample.stderr_tail:
        lines += ["  stderr: " + s for s in sample.stderr_tail.splitlines()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
