"""Round-trip latency: a line sent into pipeplex, until a ``cat`` member's echo comes out.

    .venv/bin/python bench/roundtrip.py            # 2000 round trips per path (~1 min)
    .venv/bin/python bench/roundtrip.py --quick    # 200 per path (~15 s)

Each path sends a unique line to a member running ``cat`` and waits until its echo
(``c | LINE``) appears on pipeplex's stdout (a pipe read by this script):

- **bare relay**: no pipeplex. A small Python process reads lines from its stdin pipe,
  writes them to a ``cat`` child, reads cat's output back and writes it to its stdout:
  the hops any multiplexer adds, with nothing else (no prefix, no events). The floor;
- **FIFO**: written to ``RUN_DIR/c.in`` (opened once, one ``write`` per line);
- **control socket**: a ``send`` request on one persistent connection (its answer is read
  after the echo);
- **console (pipe)**: ``c: LINE`` written to pipeplex's stdin, a pipe, through the
  console's parser and the router;
- **pipeplex send**: the client command, one process per line: dominated by starting
  Python and importing pipeplex, so it runs fewer times;
- **FIFO, pty stdout**: the FIFO path with pipeplex's default terminal mode (cat's stdout
  on a pseudo-terminal), for comparison.

pipeplex runs with ``--pty false`` (cat on plain pipes, like the bare relay) except in
the last path. The paths take turns, in rounds, so that noise from the rest of the
machine falls on all of them alike; the first round trips of each path are a warm-up.
Prints a markdown table: p50 and p99 in microseconds, each over the bare relay's, and the
CPU time the relay or pipeplex spent per round trip (cat's and this script's left out; for
``pipeplex send``, the client processes too). On a busy two-core machine latency depends
on whether a core happens to be free when a process wakes, so the CPU column is the
steadier figure. Standard library only; exits 1 when a path fails (a lost echo, a
deadline missed).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import cpu_ticks, markdown_table, sched_runtime_ns
from throughput import find_pipeplex

DEADLINE = 10.0
ROUNDS = 10
WARMUP = 20

RELAY = r"""
import os, selectors, subprocess, sys
cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
cat_in, cat_out = cat.stdin.fileno(), cat.stdout.fileno()
sel = selectors.DefaultSelector()
sel.register(0, selectors.EVENT_READ)
sel.register(cat_out, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        data = os.read(key.fd, 65536)
        if key.fd == 0:
            if not data:
                cat.stdin.close()
                sel.unregister(0)
                continue
            os.write(cat_in, data)
        else:
            if not data:
                sys.exit(cat.wait())
            os.write(1, data)
"""


class Output:
    """A child's stdout, read until an expected echo shows up."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = b""

    def wait_for(self, token: bytes, deadline: float) -> None:
        while True:
            at = self.buffer.find(token)
            if at >= 0:
                self.buffer = self.buffer[at + len(token):]
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"no echo of {token!r} within {DEADLINE} s")
            data = os.read(self.fd, 65536)
            if not data:
                raise EOFError(f"output ended before {token!r}")
            self.buffer = (self.buffer + data)[-65536:]


class Pipeplex:
    """``pipeplex run -p c=cat`` with its stdout on a pipe to us."""

    def __init__(self, binary: str, run_dir: Path, *, pty: str = "false",
                 stdin: int = subprocess.DEVNULL) -> None:
        self.run_dir = run_dir
        self.proc = subprocess.Popen(
            [binary, "run", "-p", "c=cat", "--pty", pty, "--no-color", "--run-dir", str(run_dir)],
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        self.out = Output(self.proc.stdout.fileno())
        self.out.wait_for(b"c * started", time.monotonic() + DEADLINE)

    def close(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            while os.read(self.out.fd, 65536):
                pass
            return self.proc.wait(timeout=DEADLINE)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            return self.proc.wait()
        finally:
            assert self.proc.stdout is not None
            self.proc.stdout.close()


Send = Callable[[bytes], None]


def measure(send: Send, out: Output, count: int, first: int, prefix: bytes) -> list[float]:
    """``count`` round trips (microseconds), tokens numbered from ``first``."""
    samples = []
    for i in range(first, first + count):
        token = b"rt%09d" % i
        started = time.perf_counter_ns()
        send(token)
        out.wait_for(prefix + token + b"\n", time.monotonic() + DEADLINE)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 round trips per path")
    parser.add_argument("-n", type=int, help="round trips per path (default 2000, quick 200)")
    parser.add_argument("--send-n", type=int,
                        help="round trips through 'pipeplex send' (default 100, quick 20)")
    args = parser.parse_args(argv)
    n = args.n or (200 if args.quick else 2000)
    send_n = args.send_n or (20 if args.quick else 100)
    binary = find_pipeplex()
    scratch = Path(tempfile.mkdtemp(prefix="pipeplex-roundtrip-"))
    problems: list[str] = []
    results: dict[str, list[float]] = {}
    started = time.monotonic()

    relay = subprocess.Popen([sys.executable, "-c", RELAY], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, bufsize=0)
    assert relay.stdin is not None and relay.stdout is not None
    relay_out = Output(relay.stdout.fileno())
    relay_in = relay.stdin.fileno()

    # One run serves every pipe-mode path, so they share its process and its placement.
    pipes = Pipeplex(binary, scratch / "pipes", stdin=subprocess.PIPE)
    assert pipes.proc.stdin is not None
    console_in = pipes.proc.stdin.fileno()
    fifo = os.open(scratch / "pipes" / "c.in", os.O_WRONLY)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(scratch / "pipes" / "control.sock"))
    answers = sock.makefile("rb")
    ptyrun = Pipeplex(binary, scratch / "pty", pty="stdout")
    pty_fifo = os.open(scratch / "pty" / "c.in", os.O_WRONLY)

    unanswered = 0
    clients: list[subprocess.Popen[bytes]] = []

    def via_socket(token: bytes) -> None:
        nonlocal unanswered
        request = {"op": "send", "name": "c", "data": token.decode() + "\n"}
        sock.sendall(json.dumps(request).encode() + b"\n")
        unanswered += 1

    def via_send_command(token: bytes) -> None:
        clients.append(subprocess.Popen([binary, "send", "c", token.decode(), "--run-dir",
                                         str(scratch / "pipes")], stdin=subprocess.DEVNULL))

    def settle() -> None:
        """Outside the timing: read the socket's answers, reap the send commands."""
        nonlocal unanswered
        for _ in range(unanswered):
            answer = json.loads(answers.readline())
            if not answer.get("ok"):
                problems.append(f"control socket answered {answer}")
        unanswered = 0
        for client in clients:
            if client.wait(timeout=DEADLINE) != 0:
                problems.append(f"pipeplex send exited {client.returncode}")
        clients.clear()

    paths: dict[str, tuple[Send, Output, bytes, int, int]] = {
        "bare relay (Python, pipes)": (lambda t: _write(relay_in, t + b"\n"), relay_out, b"", n,
                                       relay.pid),
        "FIFO (c.in)": (lambda t: _write(fifo, t + b"\n"), pipes.out, b"c | ", n,
                        pipes.proc.pid),
        "control socket, one connection": (via_socket, pipes.out, b"c | ", n, pipes.proc.pid),
        "console (stdin a pipe)": (lambda t: _write(console_in, b"c: " + t + b"\n"),
                                   pipes.out, b"c | ", n, pipes.proc.pid),
        "pipeplex send (a process per line)": (via_send_command, pipes.out, b"c | ", send_n,
                                               pipes.proc.pid),
        "FIFO, pty stdout (default mode)": (lambda t: _write(pty_fifo, t + b"\n"), ptyrun.out,
                                            b"c | ", n, ptyrun.proc.pid),
    }
    cpu_ns: dict[str, int] = {}
    token = 0
    try:
        for send, out, prefix, count, _pid in paths.values():
            warmup = min(WARMUP, count // 5)
            measure(send, out, warmup, token, prefix)
            token += warmup
            settle()
        for _ in range(ROUNDS):
            for name, (send, out, prefix, count, pid) in paths.items():
                per_round = max(count // ROUNDS, 1)
                before = _cpu_ns(pid)
                samples = measure(send, out, per_round, token, prefix)
                cpu_ns[name] = cpu_ns.get(name, 0) + _cpu_ns(pid) - before
                token += per_round
                settle()
                results.setdefault(name, []).extend(samples)
    except (TimeoutError, EOFError, OSError) as exc:
        problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        for client in clients:
            client.wait(timeout=DEADLINE)
        os.close(fifo)
        os.close(pty_fifo)
        answers.close()
        sock.close()
        relay.stdin.close()
        relay.wait(timeout=DEADLINE)
        relay.stdout.close()
        pipes.proc.stdin.close()
        for run in (pipes, ptyrun):
            status = run.close()
            if status not in (0, 143):
                problems.append(f"pipeplex exited {status}")
        for leftover in scratch.iterdir():
            problems.append(f"left behind: {leftover}")
        os.rmdir(scratch)

    base = results.get("bare relay (Python, pipes)")
    rows = []
    for name, samples in results.items():
        p50, p99 = statistics.median(samples), percentile(samples, 0.99)
        ratio50 = f"{p50 / statistics.median(base):.2f}x" if base else "-"
        ratio99 = f"{p99 / percentile(base, 0.99):.2f}x" if base else "-"
        cpu = f"{cpu_ns[name] / len(samples) / 1000:.0f}" if name in cpu_ns else "-"
        rows.append([name, str(len(samples)), f"{p50:.0f}", f"{p99:.0f}", ratio50, ratio99, cpu])
    print(markdown_table(["path", "round trips", "p50 µs", "p99 µs", "p50 / relay",
                          "p99 / relay", "CPU µs / trip"], rows))
    if base:
        print()
        for name in ("FIFO (c.in)", "console (stdin a pipe)"):
            if name in results:
                ratio = statistics.median(results[name]) / statistics.median(base)
                verdict = "met" if ratio <= 2 else "NOT met"
                print(f"target: {name} p50 within 2x the bare relay: {ratio:.2f}x, {verdict}")
    print(f"\n{time.monotonic() - started:.1f} s, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if problems:
        print("\nPROBLEMS")
        for problem in problems:
            print(f"- {problem}")
        return 1
    return 0


def _write(fd: int, data: bytes) -> None:
    os.write(fd, data)


def _cpu_ns(pid: int) -> int:
    """CPU time of process ``pid`` so far, in ns (scheduler figures when available)."""
    runtime = sched_runtime_ns(pid)
    if runtime is not None:
        return runtime
    return cpu_ticks(pid)[0] * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    sys.exit(main())
