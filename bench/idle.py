"""What pipeplex costs while its members are quiet, and how fast it stops them.

    .venv/bin/python bench/idle.py                 # 10 members, 10 s window
    .venv/bin/python bench/idle.py --seconds 30

Ten members run ``sleep`` under ``pipeplex run`` (stdout on a pty, the default). Once the
ten ``started`` notes have appeared on pipeplex's stdout, and one more second has passed,
a window of ``--seconds`` opens; over it we report pipeplex's CPU time (utime+stime from
/proc/PID/stat, in clock ticks, and to the microsecond from the scheduler's per-thread
runtime when the kernel exposes it), then its thread count and RSS. Then pipeplex gets
SIGTERM: we report how long it took to exit and whether any process of a member's
process group is left behind (any such leftover is killed, and the run fails).
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import (
    CLOCK_TICKS,
    cpu_ticks,
    proc_stat_fields,
    proc_status,
    sched_runtime_ns,
    status_kib,
)
from throughput import find_pipeplex

STARTED = re.compile(rb"^(s\d+) +\* started \(pid (\d+)\)$")
TARGET_CPU_PER_10S = 0.01


class LineReader:
    """Lines from a pipe, with a deadline."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.eof = False
        self.seen: list[bytes] = []

    def lines_until(self, deadline: float) -> list[bytes]:
        """Lines that arrive before ``deadline`` (or EOF); returns after the first batch."""
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return []
            data = os.read(self.fd, 65536)
            if not data:
                self.eof = True
                break
            self.buf += data
            if b"\n" in self.buf:
                *lines, self.buf = self.buf.split(b"\n")
                self.seen += lines
                return lines
        rest, self.buf = ([self.buf] if self.buf else []), b""
        self.seen += rest
        return rest


def group_members(pgids: set[int]) -> list[tuple[int, int, str, str]]:
    """(pid, pgid, state, command) of every process whose process group is in ``pgids``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            fields = proc_stat_fields(pid)
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        pgid = int(fields[2])
        if pgid in pgids:
            found.append((pid, pgid, fields[0], cmd))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the window")
    parser.add_argument("--members", type=int, default=10, help="number of sleeping members")
    parser.add_argument("--pty", choices=["stdout", "true", "false"], default="stdout",
                        help="pipeplex's --pty mode for the members")  # fmt: skip
    args = parser.parse_args(argv)
    sleep_for = int(args.seconds + 60)
    work = Path(tempfile.mkdtemp(prefix="pipeplex-idle-"))
    run_dir = work / "run"
    cmd = [find_pipeplex(), "run"]
    for i in range(args.members):
        cmd += ["-p", f"s{i}=sleep {sleep_for}"]
    cmd += ["--run-dir", str(run_dir), "--no-color", "--on-exit", "ignore", "--pty", args.pty]
    err_path = work / "stderr.txt"
    problems: list[str] = []
    member_pids: dict[str, int] = {}
    with open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=err)  # fmt: skip
    assert proc.stdout is not None
    reader = LineReader(proc.stdout.fileno())
    pidfd = os.pidfd_open(proc.pid)
    try:
        deadline = time.monotonic() + 15
        while len(member_pids) < args.members and time.monotonic() < deadline:
            for line in reader.lines_until(deadline):
                m = STARTED.match(line)
                if m:
                    member_pids[m[1].decode()] = int(m[2])
            if reader.eof:
                break
        if len(member_pids) < args.members:
            problems.append(f"only {len(member_pids)} of {args.members} members started")
            raise SystemExit
        print(f"pipeplex (pid {proc.pid}) with {args.members} idle `sleep` members "
              f"(--pty {args.pty}); waiting 1 s, then measuring {args.seconds:g} s")  # fmt: skip
        time.sleep(1.0)
        ticks0, _ = cpu_ticks(proc.pid)
        ns0 = sched_runtime_ns(proc.pid)
        t0 = time.monotonic()
        time.sleep(args.seconds)
        ticks1, _ = cpu_ticks(proc.pid)
        ns1 = sched_runtime_ns(proc.pid)
        window = time.monotonic() - t0
        status = proc_status(proc.pid)
        late = reader.lines_until(time.monotonic())  # anything printed while idle

        cpu_ticks_s = (ticks1 - ticks0) / CLOCK_TICKS
        cpu_fine = (ns1 - ns0) / 1e9 if ns0 is not None and ns1 is not None else None
        cpu = cpu_fine if cpu_fine is not None else cpu_ticks_s
        per10 = cpu * 10 / window
        rss = status_kib(status, "VmRSS")
        hwm = status_kib(status, "VmHWM")

        start = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        exited = bool(select.select([pidfd], [], [], 30)[0])
        stop_seconds = time.monotonic() - start
        if not exited:
            problems.append("pipeplex had not exited 30 s after SIGTERM")
            proc.kill()
        _, wstatus, _ = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(wstatus)
        while not reader.eof:
            reader.lines_until(time.monotonic() + 5)
        leftovers = group_members(set(member_pids.values()))
        for pgid in sorted({pgid for _, pgid, _, _ in leftovers}):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if leftovers:
            problems.append("left behind after pipeplex exited: " + ", ".join(
                f"pid {pid} ({state}) {cmd!r}" for pid, _, state, cmd in leftovers))  # fmt: skip
        stopped = sum(1 for line in reader.seen if re.match(rb"^s\d+ +\* stopped", line))

        print()
        print("| figure | value |")
        print("|:--|--:|")
        print(f"| CPU in the {window:.1f} s window (clock ticks, 1/{CLOCK_TICKS} s) "
              f"| {cpu_ticks_s:.2f} s |")  # fmt: skip
        if cpu_fine is not None:
            print(f"| CPU in the window (scheduler runtime) | {cpu_fine * 1000:.2f} ms |")
        print(f"| CPU per 10 s idle | {per10 * 1000:.2f} ms |")
        print(f"| threads | {status.get('Threads', '?')} |")
        print(f"| RSS (peak so far) | {fmt_mib(rss)} MB ({fmt_mib(hwm)} MB) |")
        print(f"| lines printed while idle | {len(late)} |")
        print(f"| SIGTERM to exit | {stop_seconds:.3f} s |")
        print(f"| pipeplex exit status | {proc.returncode} |")
        print(f"| members reported stopped | {stopped} of {len(member_pids)} |")
        print(f"| processes left behind | {len(leftovers)} |")
        print()
        verdict = "met" if per10 < TARGET_CPU_PER_10S else "NOT met"
        print(f"target: under {TARGET_CPU_PER_10S} CPU s per 10 s idle: {verdict}")
        if proc.returncode not in (0, 128 + signal.SIGTERM, -signal.SIGTERM):
            problems.append(f"pipeplex exited with status {proc.returncode}")
    except SystemExit:
        pass
    finally:
        os.close(pidfd)
        if proc.returncode is None:  # cut short: stop pipeplex, then its members
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            left = group_members(set(member_pids.values()))
            for pgid in sorted({pgid for _, pgid, _, _ in left}):
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        proc.stdout.close()
        stderr = err_path.read_text(errors="replace").strip()
        shutil.rmtree(work, ignore_errors=True)
    if problems:
        print()
        print("PROBLEMS")
        for text in problems:
            print(f"- {text}")
        if stderr:
            print("pipeplex stderr (last lines):")
            print("\n".join(stderr.splitlines()[-10:]))
        return 1
    return 0


def fmt_mib(kib: int | None) -> str:
    return "n/a" if kib is None else f"{kib / 1024:.1f}"


if __name__ == "__main__":
    sys.exit(main())
