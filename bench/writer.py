"""A benchmark writer: floods stdout with self-describing lines of exactly 80 bytes.

    python3 bench/writer.py --id ID --bytes N [--chunk SIZE]

Each line is ``ID SEQ FILLER\\n``: SEQ is a zero-padded counter from 0, FILLER a run of
letters that depends on SEQ, and the whole line is always 80 bytes. Any line that was
lost, cut or spliced with another writer's output is therefore easy to spot (see
``_common.expected_line`` and the checker in ``throughput.py``).

By default each ``os.write`` carries a whole number of lines (819 lines, 65,520 bytes).
``--chunk 4096`` writes 4096-byte pieces instead, which split lines the way a C program's
block-buffered stdout does. The lines are produced 1000 at a time from a template, so
the writer itself costs little CPU next to whoever reads it.

Two options serve the side-by-side runs with other tools:

- ``--cpu-report PATH`` writes the writer's own user+system CPU seconds to PATH when it
  is done, so that a tool's CPU can be told apart from its members' (the tool's whole
  process tree minus the writers);
- ``--barrier DIR --barrier-n N``: once done writing, the writer creates ``DIR/ID`` and
  waits (polling every 5 ms) until N writers have done so, then exits. Tools that stop
  every member as soon as one exits (honcho) then stop none before all have written.

Standard library only; run by whichever Python runs the benchmark.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import LINE_BYTES, WHOLE_LINES_CHUNK, block_template, render_block


def write_all(fd: int, data: memoryview) -> None:
    """Write every byte of ``data``, looping over partial writes."""
    while data:
        try:
            written = os.write(fd, data)
        except InterruptedError:
            continue
        data = data[written:]


def run(writer_id: str, total_bytes: int, chunk: int, fd: int = 1) -> int:
    """Write ``total_bytes // 80`` lines to ``fd`` in pieces of ``chunk`` bytes."""
    lines = total_bytes // LINE_BYTES
    template = block_template(writer_id)
    pending = bytearray()
    block = 0
    made = 0
    while made < lines or pending:
        while made < lines and len(pending) < chunk:
            data = render_block(template, block)
            take = min(1000, lines - made)
            pending += data[: take * LINE_BYTES]
            made += take
            block += 1
        piece = min(chunk, len(pending))
        write_all(fd, memoryview(pending)[:piece])
        del pending[:piece]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--id", required=True, help="writer id (no spaces), starts each line")
    parser.add_argument("--bytes", type=int, required=True, help="bytes to write (whole lines)")
    parser.add_argument("--chunk", type=int, default=WHOLE_LINES_CHUNK,
                        help=f"bytes per os.write (default {WHOLE_LINES_CHUNK}: 819 whole lines)")
    parser.add_argument("--cpu-report", metavar="PATH",
                        help="write this writer's own CPU seconds here when done")
    parser.add_argument("--barrier", metavar="DIR",
                        help="when done, wait until --barrier-n writers are done (files in DIR)")
    parser.add_argument("--barrier-n", type=int, default=0, metavar="N")
    args = parser.parse_args(argv)
    if " " in args.id or not args.id:
        parser.error("--id must be a non-empty word")
    if args.chunk <= 0:
        parser.error("--chunk must be positive")
    if args.barrier_n and not args.barrier:
        parser.error("--barrier-n needs --barrier")
    status = 0
    try:
        run(args.id, args.bytes, args.chunk)
    except BrokenPipeError:
        status = 1
    if args.barrier:
        wait_at_barrier(args.barrier, args.id, args.barrier_n)
    if args.cpu_report:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        with open(args.cpu_report, "w") as f:
            f.write(f"{usage.ru_utime + usage.ru_stime:.6f}\n")
    return status


def wait_at_barrier(folder: str, writer_id: str, count: int) -> None:
    """Mark this writer done in ``folder``; return once ``count`` writers are."""
    with open(os.path.join(folder, writer_id), "w"):
        pass
    while len(os.listdir(folder)) < count:
        time.sleep(0.005)


if __name__ == "__main__":
    sys.exit(main())
