"""The Python side of a send/expect round trip, counted in instructions: no processes.

    .venv/bin/python bench/api_path.py              # instructions per trip (valgrind)
    .venv/bin/python bench/api_path.py --floor      # the same for a bare asyncio wake-up
    .venv/bin/python bench/api_path.py --opcodes    # Python opcodes per trip, by function

A member's answer is fed through the line framer and the bus on the next loop pass, as
the reader would feed it, while ten tasks each wait for their line with the matcher: the
events, sinks, buffers, expectation set-up, deadline queue and wake-ups of a real trip,
without the system calls. ``valgrind --tool=callgrind`` counts the instructions of a run
of 1 and of ``--trips`` trips per task; the difference per trip is the figure. It does not
move with the machine's load, so a change of a few percent shows (the round-trip rates of
``api_roundtrip.py`` vary by more than that from run to run on a shared machine).

callgrind sees the interpreter's C functions, not which Python function runs; ``--opcodes``
says that: a ``sys.settrace`` hook counts the opcodes each function executes (no valgrind
needed; also the same from run to run), again as the difference between two runs.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


async def _trips(trips: int, members: int, floor: bool) -> None:
    from pipeplex._bus import Bus
    from pipeplex._events import SHOWN, InputSent, Output
    from pipeplex.engine.recent import RecentOutput
    from pipeplex.expect import Matcher
    from pipeplex.output.merged import MergedTranscript
    from pipeplex.output.render import Renderer
    from pipeplex.participants._framing import LineFramer

    loop = asyncio.get_running_loop()
    names = [f"c{n}" for n in range(members)]
    bus = Bus()  # the sinks of an AsyncPlex
    bus.subscribe(MergedTranscript(Renderer(names, color=False)), (*SHOWN, InputSent))
    bus.subscribe(RecentOutput(), [Output])
    matcher = Matcher(bus)
    waiters: dict[str, asyncio.Future[None]] = {}

    async def drive(name: str) -> None:
        def emit(data: bytes, partial: bool) -> None:  # what a member's reader does
            bus.publish(Output(name, "stdout", data, partial))

        framer = LineFramer(emit)
        for i in range(trips):
            line = f"x{i}\n"
            if floor:  # a bare task waking on a future, for comparison
                loop.call_soon(lambda: waiters[name].set_result(None))
                waiters[name] = loop.create_future()
                await waiters[name]
            else:
                loop.call_soon(framer.feed, line.encode())
                await matcher.expect([name], [line], timeout=30)

    await asyncio.gather(*(drive(name) for name in names))


def _instructions(trips: int, members: int, floor: bool) -> int:
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
            __file__, "--run", str(trips), "--members", str(members)]
    if floor:
        argv.append("--floor")
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stderr
    found = re.search(r"Collected : (\d+)", out)
    if found is None:
        raise SystemExit(f"no instruction count from valgrind:\n{out}")
    return int(found[1])


def _opcodes(trips: int, members: int) -> tuple[int, collections.Counter[str]]:
    """Opcodes executed per function, in a run of ``trips`` trips per member."""
    counts: collections.Counter[str] = collections.Counter()

    def trace(frame: types.FrameType, event: str, arg: object) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        code = frame.f_code
        where = f"{Path(code.co_filename).name}:{code.co_name}"

        def count(frame: types.FrameType, event: str, arg: object) -> Any:
            if event == "opcode":
                counts[where] += 1
            return count

        return count

    sys.settrace(trace)
    try:
        asyncio.run(_trips(trips, members, floor=False))
    finally:
        sys.settrace(None)
    return sum(counts.values()), counts


def _by_function(trips: int, members: int) -> None:
    sys.path.insert(0, str(HERE.parent / "src"))
    _opcodes(2, members)  # patterns compiled, caches filled: not counted
    one, first = _opcodes(1, members)
    many, counts = _opcodes(trips, members)
    per_trip = (trips - 1) * members
    print(f"pipeplex round trip (Python side): {(many - one) / per_trip:,.0f} opcodes per trip "
          f"({members} members, {trips} trips each); by function:")
    rows = sorted(((n - first[where]) / per_trip, where) for where, n in counts.items())
    for opcodes, where in reversed(rows):
        if opcodes >= 1:
            print(f"{opcodes:8.1f}  {where}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trips", type=int, default=501, help="trips per member")
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--floor", action="store_true", help="a bare asyncio wake-up instead")
    parser.add_argument("--opcodes", action="store_true",
                        help="Python opcodes per trip and by function, instead (no valgrind)")
    parser.add_argument("--run", type=int, help=argparse.SUPPRESS)  # the measured child
    args = parser.parse_args()
    if args.run is not None:
        asyncio.run(_trips(args.run, args.members, args.floor))
        return 0
    if args.opcodes:
        _by_function(args.trips, args.members)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: nothing to count with", file=sys.stderr)
        return 1
    one = _instructions(1, args.members, args.floor)
    many = _instructions(args.trips, args.members, args.floor)
    per_trip = (many - one) / ((args.trips - 1) * args.members)
    what = "bare asyncio wake-up" if args.floor else "pipeplex round trip (Python side)"
    print(f"{what}: {per_trip:,.0f} instructions per trip "
          f"({args.members} members, {args.trips} trips each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
