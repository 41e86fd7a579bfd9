"""Send/expect round trips against ``cat``: pipeplex's Python API beside pexpect.

    .venv/bin/python bench/api_roundtrip.py [--trips 5000] [--repeat 3] [--quick]

Each tool runs in its own Python process, in turn, several times:

- ``pexpect``: ``pexpect.spawn("cat", echo=False)`` with ``delaybeforesend=None`` (its
  default 50 ms delay would make it 20 round trips a second), ``sendline`` then ``expect``;
- ``pipeplex sync``: ``Plex().spawn("cat", "cat")``, ``sendline`` then ``expect``;
- ``pipeplex async x10``: ten ``cat`` members driven at once through ``AsyncPlex``, each
  by its own task: round trips per second per member, and in total.

Reports round trips per second, p50 and p99 in microseconds (medians over repetitions), and
the ratio to pexpect. pexpect comes from the peers' folder (``bench/peers.py``).

A second table drives a REPL (``python3 -q -i`` on a full terminal, as pexpect's is): each
round trip sends a line, then waits for its answer and for the next prompt, an unfinished
line that pexpect searches as it comes and pipeplex once the REPL has been quiet after it
(0.01 s while an expectation waits).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peers import Peers, locate  # noqa: E402  (bench scripts run from the repository root)

PEXPECT = r"""
import json, sys, time, pexpect
trips = int(sys.argv[1])
child = pexpect.spawn("cat", echo=False, encoding="utf-8")
child.delaybeforesend = None
times = []
for i in range(trips):
    t = time.perf_counter()
    child.sendline(f"x{i}")
    child.expect(f"x{i}\r\n")
    times.append(time.perf_counter() - t)
child.close(force=True)
print(json.dumps(times))
"""

PIPEPLEX_SYNC = r"""
import json, sys, time
from pipeplex import Plex
trips = int(sys.argv[1])
with Plex() as plex:
    cat = plex.spawn("cat", "cat")
    times = []
    for i in range(trips):
        t = time.perf_counter()
        cat.sendline(f"x{i}")
        cat.expect(f"x{i}\n")
        times.append(time.perf_counter() - t)
print(json.dumps(times))
"""

PEXPECT_REPL = r"""
import json, sys, time, pexpect
trips = int(sys.argv[1])
child = pexpect.spawn(sys.argv[2], ["-q", "-i"], encoding="utf-8",
                      env={"TERM": "dumb", "PYTHON_BASIC_REPL": "1"})
child.delaybeforesend = None
child.expect(">>> ")
times = []
for i in range(trips):
    t = time.perf_counter()
    child.sendline(f"print({i} * 2)")
    child.expect(f"\r\n{i * 2}\r\n>>> ")
    times.append(time.perf_counter() - t)
child.close(force=True)
print(json.dumps(times))
"""

PIPEPLEX_REPL = r"""
import json, sys, time
from pipeplex import Plex
trips = int(sys.argv[1])
with Plex(env={"TERM": "dumb", "PYTHON_BASIC_REPL": "1"}) as plex:
    py = plex.spawn("py", [sys.argv[2], "-q", "-i"], pty=True)
    py.expect(r">>> $")
    times = []
    for i in range(trips):
        t = time.perf_counter()
        py.sendline(f"print({i} * 2)")
        py.expect(f"^{i * 2}$")
        py.expect(r"^>>> $")
        times.append(time.perf_counter() - t)
print(json.dumps(times))
"""

PIPEPLEX_ASYNC = r"""
import asyncio, json, sys, time
from pipeplex import AsyncPlex
trips, members = int(sys.argv[1]), int(sys.argv[2])
async def main():
    async with AsyncPlex() as plex:
        cats = [await plex.spawn(f"c{n}", "cat") for n in range(members)]
        times = []
        async def drive(cat):
            for i in range(trips):
                t = time.perf_counter()
                cat.sendline(f"x{i}")
                await cat.expect(f"x{i}\n")
                times.append(time.perf_counter() - t)
        began = time.perf_counter()
        await asyncio.gather(*(drive(c) for c in cats))
        return times, time.perf_counter() - began
times, wall = asyncio.run(main())
print(json.dumps({"times": times, "wall": wall}))
"""


def _run(python: str, code: str, *args: str) -> object:
    done = subprocess.run([python, "-c", code, *args], capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trips", type=int, default=5000)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="500 trips, 1 repetition")
    args = parser.parse_args(argv)
    if args.quick:
        args.trips, args.repeat = 500, 1
    peers = locate()
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for rep in range(args.repeat):
        tools = ["pexpect", "pipeplex sync", "pipeplex async"]
        for tool in tools[rep % 3:] + tools[: rep % 3]:
            if tool == "pexpect":
                if not (peers.pexpect and peers.python):
                    continue
                times = _run(peers.python, PEXPECT, str(args.trips))
                assert isinstance(times, list)
                rate = len(times) / sum(times)
            elif tool == "pipeplex sync":
                times = _run(sys.executable, PIPEPLEX_SYNC, str(args.trips))
                assert isinstance(times, list)
                rate = len(times) / sum(times)
            else:
                result = _run(sys.executable, PIPEPLEX_ASYNC, str(args.trips // 5),
                              str(args.members))
                assert isinstance(result, dict)
                times, wall = result["times"], result["wall"]
                rate = len(times) / wall / args.members  # per member
            rows.setdefault(tool, []).append((rate, _pct(times, 0.5), _pct(times, 0.99)))
    base = statistics.median(r[0] for r in rows["pexpect"]) if "pexpect" in rows else None
    print(f"Round trips against cat ({args.trips} per run, median of {args.repeat}):\n")
    print("| tool | round trips/s | p50 us | p99 us | x pexpect |")
    print("|:--|--:|--:|--:|--:|")
    for tool, values in rows.items():
        rate = statistics.median(v[0] for v in values)
        label = f"{tool} x{args.members} (per member)" if tool == "pipeplex async" else tool
        ratio = f"{rate / base:.2f}" if base else "-"
        print(f"| {label} | {rate:,.0f} | {statistics.median(v[1] for v in values):.0f} | "
              f"{statistics.median(v[2] for v in values):.0f} | {ratio} |")
    if "pexpect" not in rows:
        print(f"\npexpect is not installed ({peers.missing.get('pexpect')}): run bench/peers.py")
    _repl(args, peers)
    return 0


def _repl(args: argparse.Namespace, peers: Peers) -> None:
    """The second table: round trips to a REPL, a prompt each (see the module's text)."""
    trips = max(args.trips // 25, 20)
    python = sys.executable
    rows: dict[str, list[list[float]]] = {}
    for rep in range(args.repeat):
        tools = ["pexpect", "pipeplex sync"]
        for tool in tools[rep % 2:] + tools[: rep % 2]:
            if tool == "pexpect":
                if not (peers.pexpect and peers.python):
                    continue
                times = _run(peers.python, PEXPECT_REPL, str(trips), python)
            else:
                times = _run(python, PIPEPLEX_REPL, str(trips), python)
            assert isinstance(times, list)
            rows.setdefault(tool, []).append(times)
    rates = {tool: statistics.median(len(t) / sum(t) for t in runs) for tool, runs in rows.items()}
    base = rates.get("pexpect")
    print(f"\nRound trips against {Path(python).name} -q -i, a prompt each ({trips} per run, "
          f"median of {args.repeat}):\n")
    print("| tool | round trips/s | p50 us | p99 us | x pexpect |")
    print("|:--|--:|--:|--:|--:|")
    for tool, runs in rows.items():
        ratio = f"{rates[tool] / base:.2f}" if base else "-"
        print(f"| {tool} (REPL) | {rates[tool]:,.0f} | "
              f"{statistics.median(_pct(t, 0.5) for t in runs):.0f} | "
              f"{statistics.median(_pct(t, 0.99) for t in runs):.0f} | {ratio} |")


if __name__ == "__main__":
    sys.exit(main())
