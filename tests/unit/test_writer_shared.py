"""Writes to a standard output that pipeplex shares and cannot reopen for itself (another
user's pipe or terminal): they never wait for the reader, and leave the descriptor as it
was for whoever shares it."""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket

import pytest

from pipeplex._bus import Bus
from pipeplex.output.terminal import Writer, write_without_waiting


def test_a_write_to_a_full_pipe_fails_at_once_and_leaves_it_blocking() -> None:
    read_end, write_end = os.pipe()
    try:
        written = 0
        for _ in range(10_000):  # (a blocking write would hang once the pipe is full)
            try:
                written += write_without_waiting(write_end, b"x" * 4096)
            except BlockingIOError:
                break
        else:
            pytest.fail("the pipe never filled")
        assert written >= 4096
        assert not fcntl.fcntl(write_end, fcntl.F_GETFL) & os.O_NONBLOCK
        assert os.get_blocking(write_end)
        assert len(os.read(read_end, 65536)) > 0  # what went in is there
    finally:
        os.close(read_end)
        os.close(write_end)


def test_the_writer_keeps_what_a_socket_nobody_reads_cannot_take() -> None:
    """A socket is written with MSG_DONTWAIT: what does not fit is buffered (and counted),
    the loop goes on, and the socket's own flags are never changed."""
    ours, theirs = socket.socketpair()
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    async def main() -> int:
        writer = Writer(theirs.fileno(), Bus())
        writer.write(b"y" * 4_000_000)
        await asyncio.sleep(0)  # (one pass of the loop: the batch goes out)
        assert os.get_blocking(theirs.fileno())
        pending = writer.pending
        writer.abandon()
        writer.close()
        return pending

    with ours, theirs:
        assert 0 < asyncio.run(main()) < 4_000_000
