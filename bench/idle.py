"""What pipeplex costs while its members are quiet, next to concurrently and honcho.

    .venv/bin/python bench/idle.py                         # pipeplex: 10 members, 10 s
    .venv/bin/python bench/idle.py --tool pipeplex --tool concurrently --tool honcho
    .venv/bin/python bench/idle.py --seconds 30 --pty false

Ten members run ``sleep`` under the tool (see ``_casts.py``; pipeplex in its default pty
mode unless ``--pty`` says otherwise). Once the ten ``sleep`` processes exist and one
more second has passed, a window of ``--seconds`` opens; over it we take the CPU time of
the tool's processes (every thread's scheduler runtime from /proc/PID/task/*/schedstat,
in nanoseconds; the members are not counted) and how many times they were scheduled
(wake-ups), then their threads, RSS and PSS. Then the tool gets SIGTERM: we report how
long it took to exit, to the last member gone, and whether any member was left behind
(any such leftover is killed, and the run fails).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _casts import Cast, available, footprint, tree
from _common import fmt, markdown_table

TARGET_CPU_PER_10S = 0.01
IDLE_TOOLS = ("pipeplex", "concurrently", "honcho")


def schedstat(pids: list[int]) -> tuple[int, int]:
    """(CPU ns, times scheduled) summed over every thread of ``pids``."""
    ns = slices = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    fields = f.read().split()
            except OSError:
                continue
            ns += int(fields[0])
            slices += int(fields[2])
    return ns, slices


@dataclass
class IdleResult:
    tool: str
    window_s: float = 0.0
    cpu_s: float | None = None  # in the window
    wakeups: int | None = None
    processes: int = 0
    threads: int = 0
    threads_main: int = 0
    rss_main_mb: float | None = None
    pss_sum_mb: float | None = None
    lines_while_idle: int = 0
    stop_exit_s: float | None = None
    stop_gone_s: float | None = None
    left_behind: int = 0
    status: int | None = None
    problem: str = ""

    @property
    def cpu_per_10s(self) -> float | None:
        return None if self.cpu_s is None else self.cpu_s * 10 / self.window_s


def measure_idle(tool: str, seconds: float = 10.0, members: int = 10,
                 pty: str | None = None, settle: float = 1.0) -> IdleResult:  # fmt: skip
    """One idle window of ``tool`` with ``members`` sleeping members, then SIGTERM."""
    result = IdleResult(tool)
    work = Path(tempfile.mkdtemp(prefix="pipeplex-idle-"))
    cast = Cast(tool, {f"s{i}": f"exec sleep {int(seconds + 60)}" for i in range(members)},
                work / "cast", ("--pty", pty) if pty else ())  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while True:
            tool_pids, member_pids = tree(cast.proc.pid, "sleep")
            if len(member_pids) >= members:
                break
            if time.monotonic() > deadline or cast.proc.poll() is not None:
                result.problem = f"only {len(member_pids)} of {members} members started"
                return result
            cast.idle_for(0.05)
        cast.idle_for(settle)
        tool_pids, member_pids = tree(cast.proc.pid, "sleep")
        ns0, sl0 = schedstat(tool_pids)
        t0 = time.monotonic()
        result.lines_while_idle = cast.idle_for(seconds)
        ns1, sl1 = schedstat(tool_pids)
        result.window_s = time.monotonic() - t0
        result.cpu_s, result.wakeups = (ns1 - ns0) / 1e9, sl1 - sl0
        fp = footprint(tool_pids)
        result.processes, result.threads, result.threads_main = (
            fp.processes, fp.threads, fp.threads_main)
        result.rss_main_mb = fp.rss_main_kib / 1024 if fp.rss_main_kib is not None else None
        result.pss_sum_mb = fp.pss_sum_kib / 1024
        stopped = cast.stop(member_pids, deadline=30.0)
        result.stop_exit_s, result.stop_gone_s = stopped.tool_exit_s, stopped.members_gone_s
        result.left_behind, result.status = stopped.left_behind, stopped.status
        if stopped.tool_exit_s is None:
            result.problem = "did not exit within 30 s of SIGTERM"
        elif stopped.left_behind:
            result.problem = f"left {stopped.left_behind} members behind"
        return result
    finally:
        if cast.proc.returncode is None:
            cast.close()
        if result.problem and (tail := cast.stderr_tail()):
            result.problem += " | stderr: " + tail.replace("\n", " / ")
        shutil.rmtree(work, ignore_errors=True)



HEADERS = ["tool", "CPU ms per 10 s", "wake-ups/s", "procs", "threads (main)",
           "RSS MB (main)", "PSS MB (all)", "lines while idle", "SIGTERM to exit s",
           "to all gone s", "left behind"]  # fmt: skip


def row(r: IdleResult) -> list[str]:
    per10 = r.cpu_per_10s
    return [r.tool, fmt(per10 * 1000 if per10 is not None else None, ".2f"),
            fmt(r.wakeups / r.window_s if r.wakeups is not None and r.window_s else None,
                ".1f"),
            str(r.processes), f"{r.threads} ({r.threads_main})", fmt(r.rss_main_mb, ".1f"),
            fmt(r.pss_sum_mb, ".1f"), str(r.lines_while_idle), fmt(r.stop_exit_s, ".3f"),
            fmt(r.stop_gone_s, ".3f"), str(r.left_behind)]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the window")
    parser.add_argument("--members", type=int, default=10, help="number of sleeping members")
    parser.add_argument("--pty", choices=["stdout", "true", "false"], default=None,
                        help="pipeplex's --pty mode for the members (default: its own)")
    parser.add_argument("--tool", action="append", choices=IDLE_TOOLS,
                        help="tool to measure (repeatable; default pipeplex)")
    args = parser.parse_args(argv)
    results = []
    for tool in args.tool or ["pipeplex"]:
        why = available(tool)
        if why:
            print(f"{tool}: skipped, {why}")
            continue
        print(f"{tool}: {args.members} idle `sleep` members; 1 s to settle, then a "
              f"{args.seconds:g} s window", flush=True)  # fmt: skip
        results.append(measure_idle(tool, args.seconds, args.members, args.pty))
    print()
    print(markdown_table(HEADERS, [row(r) for r in results]))
    for r in results:
        if r.tool == "pipeplex" and r.cpu_per_10s is not None:
            verdict = "met" if r.cpu_per_10s <= TARGET_CPU_PER_10S else "NOT met"
            print(f"\ntarget: at most {TARGET_CPU_PER_10S} CPU s per 10 s idle: {verdict}")
    problems = [f"- {r.tool}: {r.problem}" for r in results if r.problem]
    if problems:
        print("\nPROBLEMS")
        print("\n".join(problems))
    return 1 if any(r.problem and r.tool == "pipeplex" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
