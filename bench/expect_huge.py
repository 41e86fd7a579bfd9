"""Waiting for one line at the end of a flood: ``pipeplex test`` and the API next to pexpect.

    .venv/bin/python bench/expect_huge.py                 # 10, 50, 100 MB; 2 repetitions
    .venv/bin/python bench/expect_huge.py --mb 5 --mb 20 --repeat 1
    .venv/bin/python bench/expect_huge.py --mb 45 --tool AsyncPlex

A member writes M MB of 80-byte lines (``writer.py``, 64 KiB writes) and then the line
``FINAL-MARK``; the scenario has one step, ``expect = '^FINAL-MARK$'``. For pipeplex
the scenario is a generated TOML file in a temporary folder, run with
``pipeplex test -v``; we time the whole command (start-up, the step, stopping the cast)
and read the step's own time from its ``-v`` line, and sample the VmHWM of the pipeplex
process every 20 ms (the test command runs the members as its children, so their
memory is not in it).

The Python API does the same in a process of its own (this Python): an ``AsyncPlex``
spawns the member (``shell=True``) and ``expect('^FINAL-MARK$')`` waits for the line; it
reports its own VmHWM and the time from before the spawn to the match.

pexpect does the same in a process of its own (the peers' venv):
``pexpect.spawn('sh', ['-c', CMD], maxread=65536, searchwindowsize=4096)`` and
``expect(rb'FINAL-MARK\\r?\\n')``; it reports its own VmHWM and the time from before
the spawn to the match, and we time its whole process too.

Time should grow linearly with M (the MB/s stay level) and memory stay bounded (the
same at 10 and 100 MB): a tool that keeps the whole output shows M in its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import fmt, markdown_table, median

HERE = Path(__file__).resolve().parent
WRITER = HERE / "writer.py"
MiB = 1024 * 1024
MARK = "FINAL-MARK"
SEARCH_WINDOW = 4096


def member_command(nbytes: int) -> str:
    return f"{shlex.join([sys.executable, str(WRITER), '--id', '0', '--bytes', str(nbytes)])}; " \
           f"echo {MARK}"  # fmt: skip


def scenario_text(nbytes: int, timeout: float) -> str:
    cmd = member_command(nbytes).replace("'", "'\"'\"'")
    return (f"[procs.big]\ncmd = '''{cmd}'''\nshell = true\n\n"
            f"[[step]]\nexpect = '^{MARK}$'\nin = \"big\"\ntimeout = {timeout:g}\n")  # fmt: skip


def pipeplex_test_argv() -> list[str]:
    """``pipeplex test``, of the pipeplex next to this Python or on PATH."""
    from throughput import find_pipeplex

    return [find_pipeplex(), "test"]


@dataclass
class ExpectSample:
    tool: str
    mb: float
    wall_s: float | None = None  # the whole command
    expect_s: float | None = None  # spawn (or step start) to the match
    peak_rss_mb: float | None = None
    cpu_s: float | None = None
    problem: str = ""


def run_pipeplex(nbytes: int, work: Path, timeout: float) -> ExpectSample:
    sample = ExpectSample("pipeplex test", nbytes / MiB)
    path = work / "huge.toml"
    path.write_text(scenario_text(nbytes, timeout))
    argv = [*pipeplex_test_argv(), "-v", "--color", "never", str(path)]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=work)  # fmt: skip
    assert proc.stdout is not None
    pidfd = os.pidfd_open(proc.pid)
    hwm = 0
    out = b""
    try:
        deadline = start + timeout + 30
        fd = proc.stdout.fileno()
        while time.perf_counter() < deadline:
            ready = select.select([pidfd, fd], [], [], 0.02)[0]
            if fd in ready:
                out += os.read(fd, 65536)
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            hwm = max(hwm, int(line.split()[1]))
            except OSError:
                pass
            if pidfd in ready:
                break
        else:
            sample.problem = "timed out"
        sample.wall_s = time.perf_counter() - start
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        sample.cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        status = proc.wait()
        out += proc.stdout.read()
    finally:
        os.close(pidfd)
        if proc.returncode is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    text = out.decode(errors="replace")
    m = re.search(r"ok\s+([\d.]+) s\s+expect", text)
    sample.expect_s = float(m[1]) if m else None
    sample.peak_rss_mb = hwm / 1024 if hwm else None
    if status != 0 or m is None:
        sample.problem = f"pipeplex test exited {status}: " + " / ".join(text.splitlines()[-4:])
    return sample


_REPORT = r"""
hwm = 0
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"expect_s": took, "hwm_kib": hwm, "cpu_s": usage.ru_utime + usage.ru_stime}))
"""
"""How a probe ends: the time it took (``took``), its own VmHWM and CPU, as JSON."""

PROBE = r"""
import json, resource, sys, time
import pexpect
cmd, window, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
t0 = time.perf_counter()
child = pexpect.spawn("sh", ["-c", cmd], maxread=65536, searchwindowsize=window,
                      timeout=timeout)
child.expect(rb"FINAL-MARK\r?\n")
took = time.perf_counter() - t0
child.close()
""" + _REPORT

API_PROBE = r"""
import asyncio, json, resource, sys, time
from pipeplex import AsyncPlex
cmd, window, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])

async def main():
    async with AsyncPlex(timeout=timeout) as plex:
        t0 = time.perf_counter()
        big = await plex.spawn("big", cmd, shell=True)
        await big.expect("^FINAL-MARK$")
        return time.perf_counter() - t0

took = asyncio.run(main())
""" + _REPORT


def run_probe(tool: str, python: str, nbytes: int, timeout: float) -> ExpectSample:
    """pexpect or the API in a process of its own, which reports its times and VmHWM."""
    sample = ExpectSample(tool, nbytes / MiB)
    probe = PROBE if tool == "pexpect" else API_PROBE
    start = time.perf_counter()
    try:
        done = subprocess.run([python, "-c", probe, member_command(nbytes), str(SEARCH_WINDOW),
                               str(timeout)], capture_output=True, text=True,
                              timeout=timeout + 30, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        sample.problem = "timed out"
        return sample
    sample.wall_s = time.perf_counter() - start
    try:
        got = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        sample.problem = f"{tool} failed: " + " / ".join(done.stderr.strip().splitlines()[-3:])
        return sample
    sample.expect_s, sample.cpu_s = got["expect_s"], got["cpu_s"]
    sample.peak_rss_mb = got["hwm_kib"] / 1024
    return sample


TOOLS = ("pipeplex test", "AsyncPlex", "pexpect")


def run_expect(sizes_mb: list[float], repeat: int, *, pexpect_python: str | None,
               timeout: float = 120.0, log=print,
               tools: Sequence[str] = TOOLS) -> list[ExpectSample]:  # fmt: skip
    """Every size, every tool in turn (the order alternating), ``repeat`` times."""
    samples: list[ExpectSample] = []
    work = Path(tempfile.mkdtemp(prefix="pipeplex-expect-"))
    tools = [t for t in tools if t != "pexpect" or pexpect_python]
    try:
        for rep in range(repeat):
            for mb in sizes_mb:
                nbytes = int(mb * MiB)
                order = tools if rep % 2 == 0 else tools[::-1]
                for tool in order:
                    if tool == "pexpect":
                        assert pexpect_python is not None
                        s = run_probe(tool, pexpect_python, nbytes, timeout)
                    elif tool == "AsyncPlex":
                        s = run_probe(tool, sys.executable, nbytes, timeout)
                    else:
                        s = run_pipeplex(nbytes, work, timeout)
                    samples.append(s)
                    log(f"  [{rep + 1}/{repeat}] {tool:<14} {mb:6g} MB: expect "
                        f"{fmt(s.expect_s, '.2f')} s, whole {fmt(s.wall_s, '.2f')} s, "
                        f"peak RSS {fmt(s.peak_rss_mb, '.1f')} MB"
                        + (f"  ({s.problem})" if s.problem else ""))  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return samples



def summarize(samples: list[ExpectSample]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for tool in dict.fromkeys(s.tool for s in samples):
        for mb in dict.fromkeys(s.mb for s in samples):
            ss = [s for s in samples if s.tool == tool and s.mb == mb]
            if not ss:
                continue
            expect = median(s.expect_s for s in ss)
            rows.append({
                "tool": tool, "mb": mb, "runs": len(ss), "expect_s": expect,
                "wall_s": median(s.wall_s for s in ss),
                "mb_s": mb / expect if expect else None,
                "cpu_s": median(s.cpu_s for s in ss),
                "peak_rss_mb": median(s.peak_rss_mb for s in ss),
                "problems": [s.problem for s in ss if s.problem],
            })  # fmt: skip
    return rows


def table(rows: list[dict[str, object]]) -> str:
    f = fmt
    return markdown_table(
        ["tool", "MB before the line", "runs", "expect s", "MB/s", "whole command s",
         "CPU s", "peak RSS MB"],
        [[str(r["tool"]), f(r["mb"], "g"), str(r["runs"]), f(r["expect_s"], ".2f"),
          f(r["mb_s"], ".0f"), f(r["wall_s"], ".2f"), f(r["cpu_s"], ".2f"),
          f(r["peak_rss_mb"], ".1f")] for r in rows])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    from peers import venv_python

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, action="append", help="MB before the line")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="5, 10, 20 MB; 1 repetition")
    parser.add_argument("--tool", action="append", choices=TOOLS, help="only these (repeat)")
    args = parser.parse_args(argv)
    sizes = args.mb or ([5, 10, 20] if args.quick else [10, 50, 100])
    repeat = 1 if args.quick else args.repeat
    tools = args.tool or TOOLS
    python = venv_python() if "pexpect" in tools else None
    if "pexpect" in tools and (python is None or subprocess.run(
            [python, "-c", "import pexpect"], capture_output=True, check=False).returncode):
        print("pexpect: skipped, not installed (pip)")
        python = None
    samples = run_expect(sizes, repeat, pexpect_python=python, tools=tools)
    rows = summarize(samples)
    print()
    print(table(rows))
    problems = [f"- {r['tool']} {r['mb']:g} MB: {p}" for r in rows for p in r["problems"]]  # type: ignore[attr-defined]
    if problems:
        print("\nPROBLEMS")
        print("\n".join(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
