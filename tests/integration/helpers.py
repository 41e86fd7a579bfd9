"""Run the real ``pipeplex`` command and read its output with deadlines, never sleeps."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import select
import selectors
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import IO, Any

from pipeplex._guardian_process import LABEL

PIPEPLEX = [sys.executable, "-m", "pipeplex"]
PROGS = Path(__file__).parent.parent / "progs"
DEADLINE = 30.0


def py(code: str) -> str:
    """A shell-quoted command running ``code`` with this Python (for -p options)."""
    import shlex

    return shlex.join([sys.executable, "-c", code])


def late_reader(size: int) -> str:
    """A member (for -p) that reads nothing until it gets SIGUSR1 (it says ``waiting``
    first), then ``size`` bytes of its stdin, and says ``read SIZE CRC32``."""
    return py("import signal, sys, zlib\n"
              "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])\n"
              "print('waiting', flush=True)\n"
              "signal.sigwait([signal.SIGUSR1])\n"
              "data = b''\n"
              f"while len(data) < {size}:\n"
              "    data += sys.stdin.buffer.read1(65536)\n"
              "print('read', len(data), zlib.crc32(data), flush=True)\n")


def run(
    *args: str | os.PathLike[str],
    timeout: float = DEADLINE,
    input: bytes | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``pipeplex ARGS`` to the end and capture its output."""
    return subprocess.run(
        [*PIPEPLEX, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input.decode() if input is not None else None,
        stdin=None if input is not None else subprocess.DEVNULL,
        cwd=cwd,
    )


def start_client(*args: str | os.PathLike[str]) -> subprocess.Popen[str]:
    """``pipeplex ARGS`` (a client command) started in the background, its stdout and stderr
    piped, as text: the caller reads them (``communicate``) and kills one still running."""
    return subprocess.Popen([*PIPEPLEX, *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


GATED_DB = ('[procs.db]\ncmd = "sh -c \'echo run $$; read go; echo ready; exec cat\'"\n'
            'ready = "^ready$"\n')
"""A cast file of one member, db: each run of it says ``run PID``, and is ready only once
it reads a line (``pipeplex send db go``)."""


class Pipeplex:
    """A ``pipeplex`` running in the background, its output read as it comes.

    ``stdin=subprocess.PIPE`` gives it a pipe on stdin (the console without a prompt):
    :meth:`write` to it, :meth:`close_stdin` for its EOF.
    """

    def __init__(
        self,
        *args: str | os.PathLike[str],
        cwd: Path | None = None,
        stdin: int | None = subprocess.DEVNULL,
        env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = (),
        command: tuple[str, ...] = tuple(PIPEPLEX),
    ) -> None:
        self.proc = subprocess.Popen(
            [*prefix, *command, *map(str, args)],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            preexec_fn=_hangup_not_ignored,
        )
        assert self.proc.stdout is not None
        self._setup(self.proc.stdout.fileno())

    def _setup(self, fd: int) -> None:
        self._fd = fd
        os.set_blocking(self._fd, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)
        self.output = b""
        self._eof = False
        self._cursor = 0

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", "replace")

    def _read_some(self, deadline: float) -> bool:
        if self._eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        if not self._selector.select(remaining):
            return False
        try:
            data = os.read(self._fd, 65536)
        except OSError as exc:  # a pty master reports EIO once the other side is gone
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:
            self._eof = True
            return False
        self.output += data
        return True

    def expect(self, pattern: str, timeout: float = DEADLINE) -> re.Match[str]:
        """Wait for ``pattern`` in the output after the previous match."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.text, self._cursor)
            if match:
                self._cursor = match.end()
                return match
            if not self._read_some(deadline):
                if self._eof:
                    raise AssertionError(f"pipeplex ended before {pattern!r}:\n{self.text}")
                if time.monotonic() >= deadline:
                    raise AssertionError(f"no {pattern!r} after {timeout} s:\n{self.text}")

    def skip_until(self, pattern: str, timeout: float = DEADLINE) -> re.Match[str]:
        """Wait for a line matching ``pattern``, forgetting every line read before it.

        For floods: the output is scanned line by line and not kept, so a test reading
        megabytes does not hold them (the test process's memory is everyone's: a child
        started with vfork inherits its peak in ``ru_maxrss``).
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        buffer = self.text[self._cursor:]
        self.output, self._cursor = b"", 0
        while True:
            *lines, buffer = buffer.split("\n")
            for i, line in enumerate(lines):
                match = regex.search(line)
                if match:
                    self.output = "\n".join([*lines[i + 1:], buffer]).encode()
                    return match
            if not self._read_some(deadline):
                state = "ended" if self._eof else f"still running after {timeout} s"
                raise AssertionError(f"pipeplex {state} without {pattern!r}; last: {buffer!r}")
            buffer += self.output.decode("utf-8", "replace")
            self.output = b""

    def wait(self, timeout: float = DEADLINE) -> int:
        """Read everything until pipeplex exits; return its exit status."""
        deadline = time.monotonic() + timeout
        while not self._eof:
            if not self._read_some(deadline) and time.monotonic() >= deadline:
                raise AssertionError(f"pipeplex still running after {timeout} s:\n{self.text}")
        return self.proc.wait(timeout=max(deadline - time.monotonic(), 1))

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def write(self, data: bytes) -> None:
        """Write to pipeplex's stdin (a pipe: ``stdin=subprocess.PIPE``)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.wait(timeout=15)
            except AssertionError:
                self.proc.kill()
                self.proc.wait()
        self._selector.close()
        self._close_streams()

    def _close_streams(self) -> None:
        for stream in (self.proc.stdout, self.proc.stdin):
            if stream is not None and not stream.closed:
                try:
                    stream.close()
                except BrokenPipeError:
                    pass

    def __enter__(self) -> Pipeplex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def guardian_of(pipeplex: int) -> int:
    """The guardian process ``pipeplex`` started: its one child whose command line ends in
    the guardian's label."""
    children = Path(f"/proc/{pipeplex}/task/{pipeplex}/children").read_text().split()
    found = [int(pid) for pid in children
             if Path(f"/proc/{pid}/cmdline").read_bytes().endswith(b"\0" + LABEL.encode() + b"\0")]
    assert len(found) == 1, found
    return found[0]


def wait_exited(pid: int, timeout: float = 10.0, *, after: str = "pipeplex died") -> None:
    """Wait for ``pid`` (not our child) to exit, through a pidfd; one still alive then fails
    the test and is killed (nothing is left behind, even by a failure)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(fd)
    assert ready, f"process {pid} is still alive {timeout} s after {after}"


def write_fifo(path: Path, data: bytes) -> None:
    """One writer: open, write, close, like ``echo data > path``."""
    with open(path, "wb") as f:
        f.write(data)


_CONTROL = re.compile(
    rb"\x1b\[([0-9;?]*)[ -/]*([@-~])|\x1b\][^\x07]*\x07|\x1b[()][0-9A-B]|\x1b[^\[\]()]"
    rb"|[\r\n\b]"
)


class Screen:
    """Just enough of a terminal to read what a prompt_toolkit program shows.

    Lines never wrap and scrolled-off lines are kept, so the whole history stays readable;
    cursor moves (up, down, forward, back, column 1), erase to the end of the line or of
    the screen, and overwriting are applied; other sequences (colours, modes) are ignored.
    """

    def __init__(self) -> None:
        self.lines: list[list[str]] = [[]]
        self.row = 0
        self.col = 0
        self._pending = b""

    def feed(self, data: bytes) -> None:
        data = self._pending + data
        # An escape sequence may be cut at the end of a read: keep it for the next one.
        cut = data.rfind(b"\x1b")
        if cut >= 0 and not _CONTROL.match(data, cut):
            data, self._pending = data[:cut], data[cut:]
        else:
            self._pending = b""
        pos = 0
        for match in _CONTROL.finditer(data):
            self._put(data[pos:match.start()].decode("utf-8", "replace"))
            self._control(match)
            pos = match.end()
        self._put(data[pos:].decode("utf-8", "replace"))

    def _put(self, text: str) -> None:
        line = self.lines[self.row]
        for char in text:
            if self.col < len(line):
                line[self.col] = char
            else:
                line.extend(" " * (self.col - len(line)))
                line.append(char)
            self.col += 1

    def _control(self, match: re.Match[bytes]) -> None:
        token = match[0]
        if token == b"\r":
            self.col = 0
        elif token == b"\n":
            self._down(1)
        elif token == b"\b":
            self.col = max(self.col - 1, 0)
        elif match[2] is not None:
            params, final = match[1].decode(), match[2]
            n = int(params) if params.isdigit() else 1
            if final == b"A":
                self.row = max(self.row - n, 0)
            elif final == b"B":
                self._down(n)
            elif final == b"C":
                self.col += n
            elif final == b"D":
                self.col = max(self.col - n, 0)
            elif final == b"G":
                self.col = n - 1
            elif final == b"K" and params in ("", "0"):
                del self.lines[self.row][self.col:]
            elif final == b"J" and params in ("", "0"):
                del self.lines[self.row][self.col:]
                del self.lines[self.row + 1:]

    def _down(self, n: int) -> None:
        self.row += n
        while len(self.lines) <= self.row:
            self.lines.append([])

    @property
    def text(self) -> str:
        return "\n".join("".join(line).rstrip() for line in self.lines)


class PtyPipeplex(Pipeplex):
    """``pipeplex`` on a pseudo-terminal, as if started from an interactive shell.

    The terminal is its controlling terminal and it is the foreground process group, so it
    shows its console prompt. :meth:`type` sends keys (``"\\r"`` is Enter); :attr:`text` is
    what the terminal shows (see :class:`Screen`). The last line is the live one (the
    prompt): it is redrawn as output arrives, so :meth:`expect` may match it again.
    ``stderr`` (a descriptor or a file) keeps pipeplex's stderr off the terminal.
    """

    def __init__(self, *args: str | os.PathLike[str], cwd: Path | None = None,
                 env: dict[str, str] | None = None, rows: int = 24, columns: int = 100,
                 stderr: int | IO[bytes] | None = None, prefix: tuple[str, ...] = ()) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        environ = dict(os.environ if env is None else env)
        # (Nothing here answers cursor-position requests: pipeplex sends none.)
        environ["TERM"] = "xterm"
        self.proc = subprocess.Popen(
            [*prefix, *PIPEPLEX, *map(str, args)],
            stdin=slave, stdout=slave, stderr=slave if stderr is None else stderr,
            cwd=cwd, env=environ, start_new_session=True,
            preexec_fn=_take_terminal,
        )
        os.close(slave)
        self.master: int | None = master
        self.screen = Screen()
        self._fed = 0
        self._setup(master)

    @property
    def text(self) -> str:
        self.screen.feed(self.output[self._fed:])
        self._fed = len(self.output)
        return self.screen.text

    def expect(self, pattern: str, timeout: float = DEADLINE) -> re.Match[str]:
        match = super().expect(pattern, timeout)
        text = self.text
        end = text.find("\n", match.end())
        # Past the matched line; but the live last line may be redrawn with new content.
        self._cursor = end + 1 if end >= 0 else text.rfind("\n", 0, match.start()) + 1
        return match

    def type(self, keys: str) -> None:
        assert self.master is not None
        os.write(self.master, keys.encode())

    def terminal_flags(self) -> int:
        """The terminal's local flags (ECHO, ICANON, ...) as the program left them."""
        assert self.master is not None
        return int(termios.tcgetattr(self.master)[3])

    def hang_up(self) -> None:
        """Close the terminal, as closing its window or losing the ssh connection does."""
        assert self.master is not None
        self._selector.unregister(self.master)
        os.close(self.master)
        self.master = None
        self._eof = True  # nothing more to read: wait() only waits for the exit

    def _close_streams(self) -> None:
        if self.master is not None:
            os.close(self.master)


def _take_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    _hangup_not_ignored()


def _hangup_not_ignored() -> None:
    """SIGHUP as a shell leaves it, even where the suite runs under ``nohup``: pipeplex keeps
    an ignored SIGHUP, and its cast would outlive a terminal's hang-up (a test that wants
    that says so, with a ``prefix`` that ignores it)."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


# The control socket ----------------------------------------------------------------------


class Connection:
    """A raw connection to a run's control socket, for speaking the protocol by hand."""

    def __init__(self, run_dir: Path, timeout: float = DEADLINE) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # Blocking: a full listen backlog makes connect wait rather than fail with EAGAIN.
        self.sock.connect(str(run_dir / "control.sock"))
        self.sock.settimeout(timeout)
        self._buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        self.send(json.dumps(message).encode() + b"\n")
        answer = self.read()
        assert answer is not None, "the connection closed before an answer"
        return answer

    def read(self) -> dict[str, Any] | None:
        """The next JSON line, or None when the run closed the connection."""
        while b"\n" not in self._buffer:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return None
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    def closed_by_peer(self) -> bool:
        """True once the run has closed its end (reads until EOF)."""
        while True:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return True
            if not data:
                return True
            self._buffer += data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def status(run_dir: Path) -> dict[str, Any]:
    """The run's status through a fresh connection (asserts that it answers)."""
    with Connection(run_dir) as conn:
        answer = conn.request({"op": "status"})
    assert answer["ok"], answer
    return answer
