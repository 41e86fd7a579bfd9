"""Running a cast of long-lived members under pipeplex or a peer, for idle.py and scale.py.

A cast is a dict of member name -> shell command. Each tool runs it in its own session,
with its stdout on a pipe that :class:`Cast` keeps draining (a tool blocked on a full
pipe would stop looking after its members):

- ``pipeplex``: ``pipeplex run -p NAME='sh -c CMD' ...`` (default pty mode), its run
  folder in the cast's folder (see :func:`runtime_folder` for where scale.py puts that);
- ``pipeplex-tmp``: the same with its run folder in ``/tmp``, whatever file system that is
  (pipeplex's own choice where there is no ``XDG_RUNTIME_DIR``);
- ``concurrently``: ``concurrently --no-color --prefix '{name} |' -n NAMES CMD ...``;
- ``honcho``: ``honcho --no-colour -f Procfile start``;
- ``shell``: one ``sh`` that starts every member in the background and waits: the
  cost of starting the same processes with nothing in between (its figure is the time
  to start them all; it does not forward signals, so it is stopped with ``killpg``);
- ``python-floor``: ``python_floor.py``, the least a Python tool built on asyncio
  spends (its imports, one ``posix_spawn`` per member, the lines copied out): the floor
  under pipeplex's figures, to tell its own cost from its language's.

The members are told apart from the tool's own processes by their command name (``comm``,
e.g. ``sleep``); every other process in the tree (the tool, its helper processes, shell
wrappers) counts as the tool's.
"""

from __future__ import annotations

import os
import select
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import proc_status, sched_runtime_ns, status_kib
from peers import concurrently_bin, honcho_bin

TOOLS = ("shell", "python-floor", "pipeplex", "pipeplex-tmp", "concurrently", "honcho")
PIPEPLEX_TOOLS = ("pipeplex", "pipeplex-tmp")


def find_pipeplex() -> str:
    from throughput import find_pipeplex as find

    return find()


def runtime_folder() -> str | None:
    """Where pipeplex's run folder goes on a machine with a login session: the session's
    runtime folder (``$XDG_RUNTIME_DIR``, memory), else ``/dev/shm``, memory too; None
    (the temporary folder) where neither can be written.

    A run folder holds a named pipe per member, one new file each. In memory that costs some
    5 µs; on a disk's file system it costs what that file system makes it cost. On ext4
    without a journal, which leaves a freed inode unused for a minute or more, a new file
    can pass over each file deleted in that time: 20 µs to 0.9 ms a member here, depending
    on what ran in the minute before (a benchmark's own repetitions delete thousands). The
    ``pipeplex-tmp`` rows show that cost; the ``pipeplex`` rows show pipeplex's own."""
    for folder in (os.environ.get("XDG_RUNTIME_DIR"), "/dev/shm"):
        if folder and os.path.isabs(folder) and os.access(folder, os.W_OK | os.X_OK):
            return folder
    return None


def available(tool: str) -> str:
    """'' when ``tool`` can run here, else why not."""
    if tool == "concurrently" and not concurrently_bin():
        return "not installed (npm)"
    if tool == "honcho" and not honcho_bin():
        return "not installed (pip)"
    return ""


def tool_argv(tool: str, members: dict[str, str], work: Path) -> list[str]:
    """The command line that runs ``members`` under ``tool`` (files go to ``work``)."""
    if tool in PIPEPLEX_TOOLS:
        argv = [find_pipeplex(), "run"]
        for name, cmd in members.items():
            argv += ["-p", f"{name}={shlex.join(['sh', '-c', cmd])}"]
        return [*argv, "--run-dir", str(work / "run"), "--no-color", "--on-exit", "ignore"]
    if tool == "concurrently":
        return [concurrently_bin() or "concurrently", "--no-color", "--prefix", "{name} |",
                "-n", ",".join(members), *members.values()]  # fmt: skip
    if tool == "honcho":
        procfile = work / "Procfile"
        procfile.write_text("".join(f"{n}: {c}\n" for n, c in members.items()))
        return [honcho_bin() or "honcho", "--no-colour", "-f", str(procfile), "start"]
    if tool == "python-floor":
        floor = Path(__file__).resolve().parent / "python_floor.py"
        return [sys.executable, str(floor), *(f"{n}={shlex.join(['sh', '-c', c])}"
                                              for n, c in members.items())]
    if tool == "shell":
        script = "".join(f"sh -c {shlex.quote(c)} &\n" for c in members.values()) + "wait\n"
        return ["sh", "-c", script]
    raise ValueError(tool)


# /proc ------------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def tree(root: int, member_comm: str) -> tuple[list[int], list[int]]:
    """(the tool's processes, the members) under ``root``, root included in the first."""
    tool, members, todo = [], [], [root]
    while todo:
        pid = todo.pop()
        if pid != root and comm(pid) == member_comm:
            members.append(pid)
            continue
        tool.append(pid)
        todo += children(pid)
    return tool, members


def pss_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


@dataclass
class Footprint:
    """Memory and threads of the tool's processes at one moment."""

    processes: int
    threads: int  # over all of the tool's processes
    threads_main: int  # of the tool's main process
    rss_main_kib: int | None
    rss_sum_kib: int
    pss_sum_kib: int


def footprint(pids: list[int]) -> Footprint:
    threads = rss = pss = threads_main = 0
    main: int | None = None
    for k, pid in enumerate(pids):
        try:
            status = proc_status(pid)
        except OSError:
            continue
        threads += int(status.get("Threads", "0"))
        value = status_kib(status, "VmRSS") or 0
        rss += value
        if k == 0:
            main, threads_main = value, int(status.get("Threads", "0"))
        pss += pss_kib(pid) or 0
    return Footprint(len(pids), threads, threads_main, main, rss, pss)


def cpu_seconds(pids: list[int]) -> float:
    """CPU time of every thread of ``pids`` (scheduler runtime, ns resolution)."""
    total = 0
    for pid in pids:
        ns = sched_runtime_ns(pid)
        if ns is None:  # exited, or no scheduler debug files: fall back to ticks
            try:
                fields = (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split())
                ns = (int(fields[11]) + int(fields[12])) * 10**9 // os.sysconf("SC_CLK_TCK")
            except OSError:
                ns = 0
        total += ns
    return total / 1e9


# Running ----------------------------------------------------------------------------------


@dataclass
class Stopped:
    tool_exit_s: float | None  # SIGTERM -> the tool has exited
    members_gone_s: float | None  # SIGTERM -> the last member has exited
    left_behind: int  # members alive after the deadline (then killed)
    status: int | None


@dataclass
class Cast:
    """A tool running a cast; read its output with :meth:`wait_lines`, stop with :meth:`stop`."""

    tool: str
    members: dict[str, str]
    work: Path
    options: tuple[str, ...] = ()  # more arguments for pipeplex (e.g. --pty false)
    proc: subprocess.Popen[bytes] = field(init=False)
    started_at: float = field(init=False)
    buf: bytes = b""
    eof: bool = False
    lines: int = 0

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        argv = tool_argv(self.tool, self.members, self.work)
        if self.tool in PIPEPLEX_TOOLS:
            argv += self.options
        self.err = open(self.work / "stderr.txt", "wb")  # noqa: SIM115 (closed in stop)
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.err, cwd=self.work,
                                     start_new_session=True)  # fmt: skip
        assert self.proc.stdout is not None
        self.fd = self.proc.stdout.fileno()
        os.set_blocking(self.fd, False)

    def drain(self, pattern: bytes | None = None) -> int:
        """Read what is there; return how many new lines contain ``pattern``."""
        hits = 0
        while not self.eof:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            if not data:
                self.eof = True
                break
            if pattern is not None:
                joined = self.buf + data
                cut = joined.rfind(b"\n") + 1
                complete, self.buf = joined[:cut], joined[cut:]
                hits += complete.count(pattern)
            self.lines += data.count(b"\n")
        return hits

    def wait_for(self, pattern: bytes, count: int, timeout: float) -> float | None:
        """Seconds from the start until ``count`` lines containing ``pattern`` came out."""
        seen = 0
        deadline = time.monotonic() + timeout
        while seen < count:
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                return None
            select.select([self.fd], [], [], min(left, 0.5))
            seen += self.drain(pattern)
        return time.monotonic() - self.started_at

    def idle_for(self, seconds: float) -> int:
        """Keep reading for ``seconds``; return the lines that came out meanwhile."""
        before = self.lines
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self.eof:
            select.select([self.fd], [], [], left)
            self.drain()
        return self.lines - before

    def stop(self, member_pids: list[int], deadline: float = 30.0,
             after_exit: float = 3.0) -> Stopped:  # fmt: skip
        """SIGTERM (the shell: to its process group), then time the tool and the members.

        Members still alive ``after_exit`` seconds after the tool exited (or at
        ``deadline``) are counted as left behind and killed.
        """
        pidfds: dict[int, int] = {}
        for pid in member_pids:
            try:
                pidfds[os.pidfd_open(pid)] = pid
            except ProcessLookupError:
                pass
        tool_fd = os.pidfd_open(self.proc.pid)
        poller = select.poll()
        for fd in [tool_fd, *pidfds]:
            poller.register(fd, select.POLLIN)
        if not self.eof:
            poller.register(self.fd, select.POLLIN)
        t0 = time.monotonic()
        if self.tool == "shell":
            os.killpg(self.proc.pid, signal.SIGTERM)
        else:
            os.kill(self.proc.pid, signal.SIGTERM)
        alive = set(pidfds)
        tool_exit: float | None = None
        members_gone: float | None = 0.0 if not alive else None
        end = t0 + deadline
        while True:
            now = time.monotonic()
            if tool_exit is not None and (not alive or now > t0 + tool_exit + after_exit):
                break
            if now > end:
                break
            for fd, _ in poller.poll(max(0.0, min(end - now, 0.5)) * 1000):
                if fd == self.fd:
                    self.drain()
                    if self.eof:
                        poller.unregister(self.fd)
                    continue
                poller.unregister(fd)
                if fd == tool_fd:
                    tool_exit = time.monotonic() - t0
                else:
                    alive.discard(fd)
                    if not alive:
                        members_gone = time.monotonic() - t0
        left = [pidfds[fd] for fd in alive]
        for fd in alive:
            try:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for fd in [tool_fd, *pidfds]:
            os.close(fd)
        status = self.close()
        return Stopped(tool_exit, members_gone, len(left), status)

    def close(self, grace: float = 10.0) -> int | None:
        """Make sure the tool and everything in its session is gone; its exit status.

        A tool still running (a run cut short: an error, a Ctrl-C) first gets SIGTERM and
        ``grace`` seconds to stop its members itself: a member it started after a snapshot
        of its tree, in a session of its own, would escape the SIGKILLs that follow."""
        if self.proc.poll() is None and self.tool != "shell":  # (the shell passes nothing on)
            self.proc.terminate()
            deadline = time.monotonic() + grace
            while self.proc.poll() is None and time.monotonic() < deadline and not self.eof:
                self.idle_for(min(0.1, max(deadline - time.monotonic(), 0.0)))
        if self.proc.poll() is None:
            for pid in tree(self.proc.pid, "")[0][1:]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.kill()
        status = self.proc.wait()
        try:  # whatever is left in the tool's session (the shell's members live there)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.err.close()
        return status

    def stderr_tail(self, lines: int = 5) -> str:
        path = self.work / "stderr.txt"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.strip().splitlines()[-lines:])
