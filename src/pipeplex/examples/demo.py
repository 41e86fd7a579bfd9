"""The demo cast: a chat server and two clients who hold a short conversation.

Built in code rather than read from a file so the members run with the same Python as
pipeplex itself (a virtual environment's ``python3`` is not always first on PATH).
"""

from __future__ import annotations

import sys

from ..cast.spec import CastSpec, ProcSpec

__all__ = ("demo_cast",)

READY = r"listening on 127\.0\.0\.1:(?P<port>\d+)"
PACE = 0.6
"""Seconds a client takes to "type" each line: the whole talk took 0.1 s, too fast to watch."""


def _client(name: str, lines: list[str], *extra: str) -> ProcSpec:
    return ProcSpec(
        name=name,
        cmd=(sys.executable, "-m", "pipeplex.examples.chat_client", "--port", "{port}",
             "--name", name, "--wait-for", "2", "--take-turns", "--pace", str(PACE), *extra),
        after=("server",),
        input=tuple(lines),
        on_exit="ignore",
        source="pipeplex demo",
    )


def demo_cast() -> CastSpec:
    """Server first; the clients start once it prints its port, and talk in turns."""
    server = ProcSpec(
        name="server",
        cmd=(sys.executable, "-m", "pipeplex.examples.chat_server", "--exit-when-empty"),
        ready=READY,
        ready_timeout=20.0,
        # Everyone leaves by themselves; the run ends when the last one has.
        on_exit="ignore",
        source="pipeplex demo",
    )
    alice = _client("alice", ["hi bob!", "great: pipeplex shows us both", "/quit"])
    bob = _client("bob", ["hi alice, how are you?", "bye!", "/quit"], "--listen-first")
    return CastSpec((server, alice, bob))
