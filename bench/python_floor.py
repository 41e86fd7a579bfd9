"""The least a Python tool built on asyncio spends to start a cast: scale.py's
``python-floor``.

    python bench/python_floor.py NAME=COMMAND ...

It does what pipeplex must and nothing else: the interpreter starts, imports what such a
tool imports (asyncio, argparse, json, pathlib, subprocess...), then starts each member with
``os.posix_spawn`` in its own session, its stdout and stderr on a raw pty, and copies each
line out under the member's name. No readiness, guardian, run folder, control socket or
console. SIGTERM kills the members' process groups and ends it.

Against the shell, this is how close any Python tool of this kind can come: the imports
take the interpreter tens of milliseconds on one core while the other waits, and each
spawn waits for its child's ``exec`` (vfork), which the shell's ``fork`` does not.
"""

from __future__ import annotations

import sys

# ruff: noqa: E402  (ssl is kept out first, as pipeplex does: asyncio loads it eagerly)
sys.modules["ssl"] = None  # type: ignore[assignment]

import argparse  # noqa: F401  (the imports are the point: what such a tool loads)
import asyncio  # noqa: F401
import dataclasses  # noqa: F401
import json  # noqa: F401
import os
import pathlib  # noqa: F401
import selectors
import shlex
import shutil
import signal
import subprocess  # noqa: F401
import tty


def main(members: list[str]) -> None:
    env = dict(os.environ)
    groups: list[int] = []

    def stop(signum: int, frame: object) -> None:
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    selector = selectors.DefaultSelector()
    for member in members:
        name, command = member.split("=", 1)
        argv = shlex.split(command)
        program = shutil.which(argv[0]) or argv[0]
        master, slave = os.openpty()
        tty.setraw(slave)
        actions = [(os.POSIX_SPAWN_DUP2, slave, 1), (os.POSIX_SPAWN_DUP2, slave, 2)]
        groups.append(os.posix_spawn(program, argv, env, file_actions=actions, setsid=True))
        os.close(slave)
        selector.register(master, selectors.EVENT_READ, [name.encode() + b" | ", b""])
    while selector.get_map():
        for key, _ in selector.select():
            prefix, rest = key.data
            try:
                data = os.read(key.fd, 65536)
            except OSError:  # EIO: the member is gone
                data = b""
            if not data:
                selector.unregister(key.fd)
                os.close(key.fd)
                continue
            *lines, key.data[1] = (rest + data).split(b"\n")
            if lines:
                os.write(1, b"".join(prefix + line + b"\n" for line in lines))


if __name__ == "__main__":
    main(sys.argv[1:])
