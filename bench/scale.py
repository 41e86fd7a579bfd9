"""How pipeplex copes with many members, next to a shell, honcho and concurrently.

    .venv/bin/python bench/scale.py                  # N = 100, 500, 1000; 2 repetitions
    .venv/bin/python bench/scale.py --quick          # N = 100, 300; 1 repetition
    .venv/bin/python bench/scale.py --n 1000 --tool pipeplex

N members each run ``sh -c 'echo up cI; exec sleep 60'``. For each tool (see
``_casts.py``): the time from starting the tool until the N-th ``up`` line has come out
of it (every member runs and its output is plumbed); then the tool's processes, threads,
RSS (the main process, and the sum over its processes) and PSS (the sum: shared pages
split, the fair figure for tools that fork a process per member); then SIGTERM to the
tool and the time until it exited and until the last member was gone, and how many
members were still alive 3 s after it exited (they are then killed).

Once all are up, the CPU time spent so far by the tool's processes (pipeplex and its
guardian) and by the members (each ``sh`` that became its ``sleep``) is read too. On the
two cores here the members' work alone takes about as long as the shell's whole start, so
no tool can be up sooner than (its CPU + the members' CPU) / 2: what the ``x shell`` column
can reach, whatever the tool does in parallel.

Every cast's folder is made in memory, where a login session's runtime folder is (see
``_casts.runtime_folder``), pipeplex's run folder with it; ``pipeplex-tmp`` is pipeplex
with its run folder in ``/tmp``, which shows what making a named pipe per member costs on
that file system, apart from pipeplex's own cost.

The shell starts the same members in the background and waits; its figure is the
time it takes to start them all, the floor for everyone. It does not pass SIGTERM on,
so its members are stopped with ``killpg`` (the physical limit for stopping).

Every run is bounded: the tool gets ``--up-timeout`` seconds (default 60) to start
everyone and 30 s to stop (concurrently 60 s); leftovers are killed. concurrently stops
its members one ``ps`` call at a time (O(N^2), 20-30 s at N = 1000), so at N >= 1000 it
runs in the first repetition only. The order of the tools rotates every repetition.
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

from _casts import (
    PIPEPLEX_TOOLS,
    TOOLS,
    Cast,
    available,
    cpu_seconds,
    footprint,
    runtime_folder,
    tree,
)
from _common import fmt, markdown_table, median

SLEEP = 60
TARGETS = {  # pipeplex's own targets for this scenario
    "up_vs_shell": 2.0,  # all up within 2x the shell
    "rss_mb": 100.0,  # RSS under 100 MB (N <= 500), under 200 MB at N = 1000
    "rss_mb_1000": 200.0,
    "stop_s": 2.0,  # everyone stopped within 2 s of SIGTERM (5 s at N = 1000)
    "stop_s_1000": 5.0,
    "up_s_1000": 10.0,  # 1000 members up within 10 s
}


@dataclass
class ScaleSample:
    tool: str
    n: int
    up_s: float | None
    processes: int = 0
    threads: int = 0
    threads_main: int = 0
    rss_main_mb: float | None = None
    rss_sum_mb: float | None = None
    pss_sum_mb: float | None = None
    members_found: int = 0
    stop_exit_s: float | None = None
    stop_gone_s: float | None = None
    left_behind: int = 0
    status: int | None = None
    problem: str = ""
    cpu_tool_s: float | None = None  # the tool's processes, once all are up
    cpu_members_s: float | None = None  # the members, once all are up


def run_one(tool: str, n: int, work: Path, up_timeout: float) -> ScaleSample:
    members = {f"c{i}": f"echo up c{i}; exec sleep {SLEEP}" for i in range(n)}
    cast = Cast(tool, members, work / f"{tool}-{n}")
    sample = ScaleSample(tool, n, None)
    try:
        sample.up_s = cast.wait_for(b"up c", n, up_timeout)
        if sample.up_s is None:
            sample.problem = f"not all {n} up within {up_timeout:g} s"
            return sample
        deadline = time.monotonic() + 3  # the last `exec sleep` may lag its `echo`
        while True:
            tool_pids, member_pids = tree(cast.proc.pid, "sleep")
            if len(member_pids) >= n or time.monotonic() > deadline:
                break
            cast.idle_for(0.05)
        sample.cpu_tool_s, sample.cpu_members_s = cpu_seconds(tool_pids), cpu_seconds(member_pids)
        sample.members_found = len(member_pids)
        fp = footprint(tool_pids)
        sample.processes, sample.threads = fp.processes, fp.threads
        sample.threads_main = fp.threads_main
        sample.rss_main_mb = fp.rss_main_kib / 1024 if fp.rss_main_kib is not None else None
        sample.rss_sum_mb, sample.pss_sum_mb = fp.rss_sum_kib / 1024, fp.pss_sum_kib / 1024
        stop_deadline = 60.0 if tool == "concurrently" else 30.0  # it is quadratic
        stopped = cast.stop(member_pids, deadline=stop_deadline)
        sample.stop_exit_s, sample.stop_gone_s = stopped.tool_exit_s, stopped.members_gone_s
        sample.left_behind, sample.status = stopped.left_behind, stopped.status
        if stopped.tool_exit_s is None:
            sample.problem = f"did not exit within {stop_deadline:g} s of SIGTERM"
        elif stopped.left_behind:
            sample.problem = f"left {stopped.left_behind} members behind"
        if sample.members_found < n:
            sample.problem += f" (found {sample.members_found} of {n} members)"
        return sample
    finally:
        if cast.proc.returncode is None:
            cast.close()
        if sample.problem:
            tail = cast.stderr_tail()
            if tail:
                sample.problem += " | stderr: " + tail.replace("\n", " / ")
        shutil.rmtree(work / f"{tool}-{n}", ignore_errors=True)


def run_scale(ns: list[int], tools: list[str], repeat: int, *, up_timeout: float = 60.0,
              log=print) -> list[ScaleSample]:  # fmt: skip
    """Every N, every tool in turn (the order rotating each repetition), ``repeat`` times."""
    samples: list[ScaleSample] = []
    folders: list[Path] = []
    try:
        work = Path(tempfile.mkdtemp(prefix="pipeplex-scale-", dir=runtime_folder()))
        folders.append(work)
        on_tmp = work
        if "pipeplex-tmp" in tools:
            on_tmp = Path(tempfile.mkdtemp(prefix="pipeplex-scale-", dir="/tmp"))
            folders.append(on_tmp)
        for rep in range(repeat):
            for n in ns:
                order = tools[rep % len(tools):] + tools[: rep % len(tools)]
                for tool in order:
                    if tool == "concurrently" and n >= 1000 and rep > 0:
                        continue
                    s = run_one(tool, n, on_tmp if tool == "pipeplex-tmp" else work, up_timeout)
                    samples.append(s)
                    log(f"  [{rep + 1}/{repeat}] {tool:<12} N={n:<5} up {fmt(s.up_s, '.2f')} s, "
                        f"{s.processes} procs, {s.threads} threads, "
                        f"RSS {fmt(s.rss_main_mb, '.0f')} MB, PSS {fmt(s.pss_sum_mb, '.0f')} MB,"
                        f" stop {fmt(s.stop_exit_s, '.2f')} / {fmt(s.stop_gone_s, '.2f')} s,"
                        f" left {s.left_behind}"
                        + (f"  ({s.problem})" if s.problem else ""))  # fmt: skip
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    return samples



def summarize(samples: list[ScaleSample]) -> list[dict[str, object]]:
    """One row per (N, tool): medians; left behind and problems are totals."""
    rows: list[dict[str, object]] = []
    keys = list(dict.fromkeys((s.n, s.tool) for s in samples))
    keys.sort(key=lambda k: (k[0], TOOLS.index(k[1])))
    shell_up = {n: median(s.up_s for s in samples if s.n == n and s.tool == "shell")
                for n, _ in keys}  # fmt: skip
    for n, tool in keys:
        ss = [s for s in samples if s.n == n and s.tool == tool]
        up = median(s.up_s for s in ss)
        base = shell_up.get(n)
        rows.append({
            "n": n, "tool": tool, "runs": len(ss),
            "up_s": up,
            "up_vs_shell": up / base if up is not None and base else None,
            "processes": median(s.processes for s in ss),
            "threads": median(s.threads for s in ss),
            "threads_main": median(s.threads_main for s in ss),
            "rss_main_mb": median(s.rss_main_mb for s in ss),
            "pss_sum_mb": median(s.pss_sum_mb for s in ss),
            "stop_exit_s": median(s.stop_exit_s for s in ss),
            "stop_gone_s": median(s.stop_gone_s for s in ss),
            "left_behind": max(s.left_behind for s in ss),
            "cpu_tool_s": median(s.cpu_tool_s for s in ss),
            "cpu_members_s": median(s.cpu_members_s for s in ss),
            "problems": [s.problem for s in ss if s.problem],
        })  # fmt: skip
    return rows


def table(rows: list[dict[str, object]]) -> str:
    f = fmt
    return markdown_table(
        ["N", "tool", "runs", "all up s", "x shell", "procs", "threads (main)", "RSS MB (main)",
         "PSS MB (all)", "SIGTERM to exit s", "to all gone s", "left behind",
         "CPU s (tool / members)"],
        [[str(r["n"]), str(r["tool"]), str(r["runs"]), f(r["up_s"], ".2f"),
          f(r["up_vs_shell"], ".2f"), f(r["processes"], ".0f"),
          f"{f(r['threads'], '.0f')} ({f(r['threads_main'], '.0f')})",
          f(r["rss_main_mb"], ".0f"), f(r["pss_sum_mb"], ".0f"),
          f(r["stop_exit_s"], ".2f"),
          f(r["stop_gone_s"], ".2f"), str(r["left_behind"]),
          f"{f(r.get('cpu_tool_s'), '.2f')} / {f(r.get('cpu_members_s'), '.2f')}"]
         for r in rows])  # fmt: skip


def targets(rows: list[dict[str, object]]) -> list[tuple[str, str, bool]]:
    """(target, result, met) for pipeplex's scale targets."""
    out = []
    for r in rows:
        if r["tool"] != "pipeplex":
            continue
        n = r["n"]
        assert isinstance(n, int)
        up, ratio = r["up_vs_shell"], r["up_s"]
        if isinstance(up, float):
            out.append((f"N={n}: all up within {TARGETS['up_vs_shell']:g}x the shell",
                        f"{up:.2f}x ({fmt(ratio, '.2f')} s)",  # type: ignore[arg-type]
                        up <= TARGETS["up_vs_shell"]))  # fmt: skip
        rss = r["rss_main_mb"]
        limit = TARGETS["rss_mb_1000"] if n >= 1000 else TARGETS["rss_mb"]
        if isinstance(rss, float):
            out.append((f"N={n}: RSS under {limit:g} MB", f"{rss:.0f} MB", rss < limit))
        threads = r["threads_main"]
        if isinstance(threads, (int, float)):
            out.append((f"N={n}: one thread doing I/O",
                        f"{threads:.0f} thread(s) in the pipeplex process", threads == 1))
        times = [r["stop_exit_s"], r["stop_gone_s"]]
        gone = max(times) if all(isinstance(t, float) for t in times) else None  # type: ignore[type-var]
        limit = TARGETS["stop_s_1000"] if n >= 1000 else TARGETS["stop_s"]
        out.append((f"N={n}: pipeplex and all members stopped within {limit:g} s of SIGTERM",
                    f"{fmt(gone, '.2f')} s, {r['left_behind']} left behind",  # type: ignore[arg-type]
                    isinstance(gone, float) and gone <= limit and r["left_behind"] == 0))
        if n >= 1000 and isinstance(ratio, float):
            out.append((f"N={n}: all up within {TARGETS['up_s_1000']:g} s", f"{ratio:.2f} s",
                        ratio <= TARGETS["up_s_1000"]))  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, action="append", help="members (repeatable)")
    parser.add_argument("--tool", action="append", choices=TOOLS, help="only this tool")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--up-timeout", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="N = 100, 300; 1 repetition")
    args = parser.parse_args(argv)
    ns = args.n or ([100, 300] if args.quick else [100, 500, 1000])
    repeat = 1 if args.quick else args.repeat
    tools = []
    for tool in args.tool or TOOLS:
        why = available(tool)
        if why:
            print(f"{tool}: skipped, {why}")
        else:
            tools.append(tool)
    print(f"scale: N = {', '.join(map(str, ns))}; {', '.join(tools)}; {repeat} repetition(s);"
          f" the casts' folders in {runtime_folder() or tempfile.gettempdir()}, pipeplex-tmp's"
          " run folder in /tmp")
    samples = run_scale(ns, tools, repeat, up_timeout=args.up_timeout)
    rows = summarize(samples)
    print()
    print(table(rows))
    checks = targets(rows)
    if checks:
        print()
        for name, result, met in checks:
            print(f"- {name}: {result}: {'met' if met else 'NOT met'}")
    problems = [f"{r['tool']} N={r['n']}: {p}" for r in rows for p in r["problems"]]  # type: ignore[attr-defined]
    if problems:
        print()
        print("PROBLEMS")
        for text in problems:
            print(f"- {text}")
    return 1 if any(r["tool"] in PIPEPLEX_TOOLS and r["problems"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
