"""How fast pipeplex merges floods of output, against the limits of the machine.

    .venv/bin/python bench/throughput.py            # 4 writers x 64 MB, 3 repetitions
    .venv/bin/python bench/throughput.py --quick    # 4 writers x 8 MB, 1 repetition
    .venv/bin/python bench/throughput.py --chunk 4096   # writers that split lines

K writers (``writer.py``) each write M MB of 80-byte lines as fast as they can. The same
writers run under five tools, one after the other, in an order that rotates each
repetition:

- ``raw cat (pipes)``: every writer's stdout into one ``cat > /dev/null`` pipe; the
  limit for plain pipes;
- ``bare pty loop``: a Python loop reading one pty master (raw mode) per writer with
  ``os.read``, output thrown away; the limit for pseudo-terminals;
- ``pipeplex --pty false`` (pipes), ``pipeplex --pty stdout`` (the default: stdout on a
  raw pty) and ``pipeplex --pty true`` (a full terminal), each writing its merged stream
  to a file.

Wall time runs from the first spawn to the last exit, start-up included (the script
prints pipeplex's start-up and shutdown time with one ``true`` member for reference).

Every pipeplex output file is checked line by line, streaming: each writer's lines must
appear under its own ``wID | `` prefix, complete, with SEQ running 0..n-1. Then it is
deleted, so at most one output (K x M MB) is on disk at a time.

Figures per tool (medians over the repetitions): MB/s of payload (MB = 2**20 bytes);
the CPU seconds of the reading process alone (cat from its wait4 rusage; the bare loop
from this script's own rusage; pipeplex from /proc/PID/stat read once it has exited and
before it is reaped, because wait4's rusage would also count the members it reaped);
CPU microseconds per line; pipeplex's peak RSS (VmHWM, sampled every 20 ms); lost and
torn lines; and the rate as a fraction of the limit for the same kind of output (pipes:
raw cat; stdout and full: bare pty) from the same repetition.
"""

from __future__ import annotations

import argparse
import errno
import os
import resource
import select
import selectors
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    BLOCK_LINES,
    CLOCK_TICKS,
    LINE_BYTES,
    MiB,
    block_template,
    cpu_ticks,
    expected_line,
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

    def writer_argv(self, i: int) -> list[str]:
        argv = [sys.executable, str(WRITER), "--id", str(i), "--bytes",
                str(self.bytes_per_writer)]  # fmt: skip
        if self.chunk:
            argv += ["--chunk", str(self.chunk)]
        return argv

    def member_name(self, i: int) -> str:
        return f"w{i}"


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


class OutputChecker:
    """Checks pipeplex's merged stream, fed in arbitrary pieces, without holding it all.

    Runs of consecutive lines of one member are compared in bulk against the expected
    rendering (prefix + line); only lines that do not match are looked at one by one.
    """

    def __init__(self, load: Load) -> None:
        names = [load.member_name(i) for i in range(load.writers)]
        width = max(len(n) for n in names)
        self.key_len = width + 3
        self.members: dict[bytes, _Member] = {}
        self.notes: set[bytes] = {b"pipeplex * "}
        for i, name in enumerate(names):
            out = name.ljust(width).encode() + b" | "
            self.members[out] = _Member(str(i), load.lines_per_writer, block_template(str(i), out))
            self.notes.add(name.ljust(width).encode() + b" * ")
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
        if any(line.startswith(n) for n in self.notes):
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


def check_file(path: Path, load: Load) -> CheckResult:
    checker = OutputChecker(load)
    with open(path, "rb") as f:
        while chunk := f.read(CHECK_READ):
            checker.feed(chunk)
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


def pipeplex_argv(load: Load, mode: str, run_dir: Path) -> list[str]:
    argv = [find_pipeplex(), "run"]
    for i in range(load.writers):
        argv += ["-p", f"{load.member_name(i)}={shlex.join(load.writer_argv(i))}"]
    return [*argv, "--run-dir", str(run_dir), "--no-color", "--on-exit", "ignore",
            "--pty", mode]  # fmt: skip


@dataclass
class Finished:
    seconds: float
    cpu: float
    rss_kib: int | None
    status: int


def run_measured(argv: list[str], stdout: int, stderr: int) -> Finished:
    """Run ``argv`` and measure its own CPU time and peak RSS, not its children's.

    ``wait4``'s rusage would add the CPU of every child the program reaped (the members),
    so the figures come from /proc: VmHWM sampled while it runs, and utime+stime read
    once it has exited but is not yet reaped (``waitid(WNOWAIT)``).
    """
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
    pidfd = os.pidfd_open(proc.pid)
    hwm: int | None = None
    try:
        while not select.select([pidfd], [], [], 0.02)[0]:
            try:
                value = status_kib(proc_status(proc.pid), "VmHWM")
            except OSError:
                continue
            if value is not None:
                hwm = max(hwm or 0, value)
        seconds = time.perf_counter() - start
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        own, _children = cpu_ticks(proc.pid)
        _, status, _rusage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        os.close(pidfd)
        if proc.returncode is None:
            proc.kill()
            proc.wait()
    return Finished(seconds, own / CLOCK_TICKS, hwm, proc.returncode)


def run_pipeplex(mode: str) -> Callable[[Load, Path], Sample]:
    def run(load: Load, work: Path) -> Sample:
        out_path = work / f"out-{mode}.txt"
        err_path = work / f"err-{mode}.txt"
        run_dir = Path(tempfile.mkdtemp(dir=work)) / "run"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            done = run_measured(pipeplex_argv(load, mode, run_dir), out.fileno(), err.fileno())
        try:
            check = check_file(out_path, load)
        finally:
            out_path.unlink()
        stderr = err_path.read_text(errors="replace")
        err_path.unlink()
        shutil.rmtree(run_dir.parent, ignore_errors=True)
        problem = f"pipeplex exited with status {done.status}" if done.status else ""
        tail = "\n".join(stderr.strip().splitlines()[-6:])
        return Sample(done.seconds, done.cpu, done.rss_kib, check, done.status, tail, problem)

    return run


TOOLS: dict[str, tuple[Callable[[Load, Path], Sample], str | None]] = {
    "raw cat (pipes)": (run_raw_cat, None),
    "bare pty loop": (run_bare_pty, None),
    "pipeplex --pty false": (run_pipeplex("false"), "raw cat (pipes)"),
    "pipeplex --pty stdout": (run_pipeplex("stdout"), "bare pty loop"),
    "pipeplex --pty true": (run_pipeplex("true"), "bare pty loop"),
}


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


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


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
    args = parser.parse_args(argv)
    if args.quick:
        args.writers, args.mb_per_writer, args.repeat = 4, 8.0, 1
    load = Load(args.writers, int(args.mb_per_writer * MiB), args.chunk)
    tools = [t for t in TOOLS if TOOLS[t][1] is None or not args.only or t in args.only]

    chunk_text = f"{args.chunk}-byte writes" if args.chunk else "whole-line ~64 KiB writes"
    print(f"pipeplex throughput: {load.writers} writers x {args.mb_per_writer:g} MB "
          f"({load.payload / MiB:.0f} MB, {load.lines:,} lines of {LINE_BYTES} bytes), "
          f"{chunk_text}, {args.repeat} repetition(s), {os.cpu_count()} CPUs")  # fmt: skip
    samples: dict[str, list[Sample]] = {t: [] for t in tools}
    ratios: dict[str, list[float]] = {t: [] for t in tools}
    failures: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="pipeplex-bench-"))
    try:
        # Warm-up, not measured: page cache, CPU frequency, the first fork of a big Python.
        run_raw_cat(Load(load.writers, 4 * MiB, load.chunk), work)
        run_bare_pty(Load(load.writers, 4 * MiB, load.chunk), work)
        startup_seconds(work)
        startup = startup_seconds(work)
        print(f"pipeplex start-up + shutdown with one `true` member: {startup:.2f} s")
        for rep in range(args.repeat):
            order = tools[rep % len(tools):] + tools[: rep % len(tools)]
            this_rep: dict[str, Sample] = {}
            for tool in order:
                sample = TOOLS[tool][0](load, work)
                this_rep[tool] = sample
                samples[tool].append(sample)
                rate = load.payload / MiB / sample.seconds
                extra = ""
                if sample.cpu is not None:
                    extra = f" cpu {sample.cpu:.2f} s"
                if sample.check is not None:
                    c = sample.check
                    extra += f", lost {c.lost}, torn {c.torn}"
                    if c.other:
                        extra += f", other {c.other}"
                print(f"  [{rep + 1}/{args.repeat}] {tool:<22} {sample.seconds:6.2f} s "
                      f"{rate:8.1f} MB/s{extra}" + (f"  ({sample.problem})" if sample.problem
                                                    else ""))  # fmt: skip
                if sample.problem or (sample.check and not sample.check.clean):
                    failures.append(describe_failure(tool, rep, sample, load))
            for tool in tools:
                limit = TOOLS[tool][1]
                if limit is not None:
                    ratios[tool].append(this_rep[limit].seconds / this_rep[tool].seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = []
    for tool in tools:
        ss = samples[tool]
        secs = median(s.seconds for s in ss)
        assert secs is not None
        cpu = median(s.cpu for s in ss)
        rss = median(s.rss_kib for s in ss)
        checked = [s.check for s in ss if s.check is not None]
        rows.append([
            tool,
            f"{load.payload / MiB / secs:.0f}",
            f"{secs:.2f}",
            fmt(cpu, ".2f"),
            fmt(cpu * 1e6 / load.lines if cpu is not None else None, ".2f"),
            fmt(rss / 1024 if rss is not None else None, ".0f"),
            str(sum(c.lost for c in checked)) if checked else "-",
            str(sum(c.torn + c.other for c in checked)) if checked else "-",
            f"{median(ratios[tool]):.2f}x" if ratios[tool] else "limit",
        ])  # fmt: skip
    print()
    print(markdown_table(["tool", "MB/s", "wall s", "reader CPU s", "CPU µs/line",
                          "peak RSS MB", "lost", "torn", "vs limit"], rows))  # fmt: skip
    print()
    print("MB = 2**20 bytes; medians of the repetitions; lost and torn are totals over them.")
    print("reader CPU: the process that reads the writers (cat, this script's own loop, or")
    print("pipeplex without its children); peak RSS: pipeplex's VmHWM.")
    if failures:
        print()
        print("PROBLEMS")
        for text in failures:
            print(text)
    return 1 if failures else 0


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
