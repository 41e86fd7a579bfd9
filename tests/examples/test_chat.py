"""The chat examples, run as real processes, the way the demo and the tutorial run them.

Every wait is for an event (a line of output, an exit) with a deadline, never a sleep.
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import pytest

DEADLINE = 20.0
PROMPT = "what should I say? "
SERVER = (sys.executable, "-m", "pipeplex.examples.chat_server")
CLIENT = (sys.executable, "-m", "pipeplex.examples.chat_client")
ALICE_SAYS = ["hi bob!", "great: pipeplex shows us both", "/quit"]
BOB_SAYS = ["hi alice, how are you?", "bye!", "/quit"]
CONVERSATION = [
    "alice: hi bob!",
    "bob: hi alice, how are you?",
    "alice: great: pipeplex shows us both",
    "bob: bye!",
]


@contextmanager
def running(*argv: str) -> Iterator[subprocess.Popen[bytes]]:
    """Start a program with piped stdio; whatever happens, it is gone afterwards."""
    # Here stdout is a pipe, not pipeplex's terminal: make the children line-buffered.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # Give the child the default Ctrl-C behaviour even if a shell made us ignore SIGINT:
    # exec resets a handled signal to its default, but an ignored one stays ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    with proc:  # Closes the pipes and reaps the process on the way out.
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


def read_line(stream: IO[bytes] | None) -> str:
    """The next line a child prints, read byte by byte so that no buffer keeps the rest."""
    assert stream is not None
    deadline = time.monotonic() + DEADLINE
    line = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            if not selector.select(max(deadline - time.monotonic(), 0)):
                pytest.fail(f"no complete line within {DEADLINE}s, got {line!r}")
            byte = os.read(stream.fileno(), 1)
            if not byte:
                pytest.fail(f"output ended before a complete line, got {line!r}")
            line += byte
    return line.decode()


def listening_port(server: subprocess.Popen[bytes]) -> int:
    """Check the server's first line, and return the port it announces."""
    first = read_line(server.stdout)
    match = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", first)
    assert match, f"first line of the server: {first!r}"
    return int(match[1])


def finish(proc: subprocess.Popen[bytes]) -> tuple[str, str]:
    """Wait for a program to exit by itself; return its output and error output."""
    out, err = proc.communicate(timeout=DEADLINE)
    return out.decode(), err.decode()


@contextmanager
def client(
    port: int, name: str, *options: str, says: list[str]
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a chat client with all of its input already waiting on its stdin."""
    with running(*CLIENT, "--port", str(port), "--name", name, *options) as proc:
        assert proc.stdin is not None
        proc.stdin.write("".join(f"{line}\n" for line in says).encode())
        proc.stdin.flush()  # Left open: communicate() closes it, after these lines.
        yield proc


def test_two_clients_talk_in_turns_and_everybody_exits() -> None:
    with running(*SERVER, "--exit-when-empty") as server:
        port = listening_port(server)
        with (
            client(port, "alice", "--wait-for", "2", "--take-turns", says=ALICE_SAYS) as alice,
            client(
                port, "bob", "--wait-for", "2", "--take-turns", "--listen-first", says=BOB_SAYS
            ) as bob,
        ):
            alice_out, alice_err = finish(alice)
            bob_out, bob_err = finish(bob)
        server_out, server_err = finish(server)

    assert (server.returncode, alice.returncode, bob.returncode) == (0, 0, 0)
    assert (server_err, alice_err, bob_err) == ("", "", "")

    # Who connects first is up to the scheduler; everything after that is not.
    lines = server_out.splitlines()
    assert sorted(lines[:2]) in (
        ["alice joined (1 online)", "bob joined (2 online)"],
        ["alice joined (2 online)", "bob joined (1 online)"],
    )
    assert lines[2:] == [
        *CONVERSATION,
        "alice left (1 online)",
        "bob left (0 online)",
        "room is empty; bye",
    ]

    # Each client asked before each line it read (echoing it, as stdin is not a terminal)
    # and saw the other's messages, in order.
    assert alice_out.count(PROMPT) == bob_out.count(PROMPT) == 3
    alice_said = [ln[len(PROMPT) :] for ln in alice_out.splitlines() if ln.startswith(PROMPT)]
    bob_said = [ln[len(PROMPT) :] for ln in bob_out.splitlines() if ln.startswith(PROMPT)]
    assert alice_said == ["hi bob!", "great: pipeplex shows us both", "/quit"]
    assert bob_said == ["hi alice, how are you?", "bye!", "/quit"]
    alice_saw = [ln for ln in alice_out.splitlines() if not ln.startswith(PROMPT)]
    bob_saw = [ln for ln in bob_out.splitlines() if not ln.startswith(PROMPT)]
    assert alice_saw[0] == bob_saw[0] == "connected"
    assert [line for line in alice_saw if ": " in line] == [
        m for m in CONVERSATION if m.startswith("bob")
    ]
    assert [line for line in bob_saw if ": " in line] == [
        m for m in CONVERSATION if m.startswith("alice")
    ]
    assert bob_saw[-1] == "* alice left (1 online)"


@contextmanager
def raw_client(port: int, name: bytes) -> Iterator[tuple[socket.socket, IO[bytes]]]:
    """A bare TCP client, to send what the real client never would."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    with sock, sock.makefile("rb") as received:
        sock.sendall(name + b"\n")
        yield sock, received


def test_server_survives_invalid_utf8_and_abrupt_disconnects() -> None:
    with running(*SERVER, "--exit-when-empty") as server:
        port = listening_port(server)
        with raw_client(port, b"mallory") as (mallory, to_mallory):
            assert to_mallory.readline() == b"* mallory joined (1 online)\n"
            with raw_client(port, b"eve") as (_, to_eve):
                assert to_eve.readline() == b"* eve joined (2 online)\n"
                assert to_mallory.readline() == b"* eve joined (2 online)\n"
                mallory.sendall(b"bad \xff\xfe bytes\n")
                assert to_eve.readline().decode() == "mallory: bad \ufffd\ufffd bytes\n"
                # Vanish with a reset instead of an orderly close.
                mallory.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                to_mallory.close()
                mallory.close()
                assert to_eve.readline() == b"* mallory left (1 online)\n"
        out, err = finish(server)
    assert server.returncode == 0
    assert err == ""
    assert "mallory: bad \ufffd\ufffd bytes" in out.splitlines()
    assert out.endswith("eve left (0 online)\nroom is empty; bye\n")


def test_server_exits_when_the_room_empties() -> None:
    with running(*SERVER, "--exit-when-empty") as server:
        port = listening_port(server)
        with raw_client(port, b"solo") as (_, to_solo):
            assert to_solo.readline() == b"* solo joined (1 online)\n"
        out, err = finish(server)
    assert server.returncode == 0
    assert err == ""
    assert out.splitlines() == [
        "solo joined (1 online)",
        "solo left (0 online)",
        "room is empty; bye",
    ]


def test_client_reports_a_refused_connection_without_traceback() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))  # Bound, never listening: connections are refused.
        port = placeholder.getsockname()[1]
        with running(*CLIENT, "--port", str(port), "--name", "nobody") as proc:
            out, err = finish(proc)
    assert proc.returncode == 1
    assert out == ""
    assert err == f"cannot connect to 127.0.0.1:{port}: Connection refused\n"


def test_ctrl_c_ends_client_and_server_quietly() -> None:
    with running(*SERVER) as server:
        port = listening_port(server)
        with running(*CLIENT, "--port", str(port), "--name", "carol") as carol:
            assert read_line(carol.stdout) == "connected\n"
            carol.send_signal(signal.SIGINT)
            _, carol_err = finish(carol)
        server.send_signal(signal.SIGINT)
        _, server_err = finish(server)
    assert (carol.returncode, carol_err) == (130, "")
    assert (server.returncode, server_err) == (130, "")
