"""Run the real ``pipeplex`` command and read its output with deadlines, never sleeps."""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

PIPEPLEX = [sys.executable, "-m", "pipeplex"]
DEADLINE = 30.0


def py(code: str) -> str:
    """A shell-quoted command running ``code`` with this Python (for -p options)."""
    import shlex

    return shlex.join([sys.executable, "-c", code])


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


class Pipeplex:
    """A ``pipeplex`` running in the background, its output read as it comes."""

    def __init__(self, *args: str | os.PathLike[str], cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [*PIPEPLEX, *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
        assert self.proc.stdout is not None
        self._fd = self.proc.stdout.fileno()
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
        data = os.read(self._fd, 65536)
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

    def wait(self, timeout: float = DEADLINE) -> int:
        """Read everything until pipeplex exits; return its exit status."""
        deadline = time.monotonic() + timeout
        while not self._eof:
            if not self._read_some(deadline) and time.monotonic() >= deadline:
                raise AssertionError(f"pipeplex still running after {timeout} s:\n{self.text}")
        return self.proc.wait(timeout=max(deadline - time.monotonic(), 1))

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.wait(timeout=15)
            except AssertionError:
                self.proc.kill()
                self.proc.wait()
        self._selector.close()
        assert self.proc.stdout is not None
        self.proc.stdout.close()

    def __enter__(self) -> Pipeplex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_fifo(path: Path, data: bytes) -> None:
    """One writer: open, write, close, like ``echo data > path``."""
    with open(path, "wb") as f:
        f.write(data)
