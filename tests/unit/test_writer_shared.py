"""Writes to a standard output that pipeplex shares with others: never waiting for the
reader, and never changing the descriptor's flags, which the others share."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import socket
import threading

import pytest

from pipeplex._bus import Bus
from pipeplex.output import outlet, terminal
from pipeplex.output.terminal import Writer


@pytest.fixture
def threaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The outlet of a pipe that cannot be opened again (another user's, or no /proc)."""
    monkeypatch.setattr(terminal, "open_outlet",
                        lambda fd, on_error: outlet._Thread(fd, on_error))


def _flags(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_GETFL)


async def _callbacks_run() -> None:
    """Return once the callbacks already scheduled have run (the writer's batch is one):
    the loop runs them in order, so one scheduled after them marks the moment."""
    after = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(after.set_result, None)
    await after


@pytest.mark.usefixtures("threaded")
@pytest.mark.parametrize("left", ["blocking", "non-blocking"])
def test_a_pipe_nobody_reads_holds_a_thread_not_the_loop(left: str) -> None:
    """The loop goes on (and a stop signal would be heard) while the reader takes nothing;
    once it reads, everything arrives in order; the shared flags are never touched. Whoever
    shares stdout may have left it non-blocking: the thread then waits for room, as a
    blocking write would, rather than taking EAGAIN for a refusal."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, left == "blocking")
    before = _flags(write_end)
    data = b"".join(b"%08d\n" % i for i in range(200_000))  # 1.8 MB: far past the pipe
    received = bytearray()

    def reader() -> None:
        while chunk := os.read(read_end, 65536):
            received.extend(chunk)

    async def main() -> None:
        writer = Writer(write_end, Bus())
        writer.write(data)
        await _callbacks_run()  # (the batch's write: a blocking one would never return)
        assert _flags(write_end) == before
        assert writer.pending > 0 or writer._outlet.busy  # (nothing read yet)
        thread = threading.Thread(target=reader)
        thread.start()
        await writer.drain()
        assert not writer.refused
        writer.close()
        os.close(write_end)
        await asyncio.to_thread(thread.join)

    try:
        asyncio.run(main())
        assert bytes(received) == data
    finally:
        os.close(read_end)


@pytest.mark.usefixtures("threaded")
def test_a_reader_gone_is_said_from_the_thread_as_from_the_loop() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    calls: list[str] = []

    async def main() -> None:
        writer = Writer(write_end, Bus(), on_broken=lambda: calls.append("broken"))
        writer.write(b"nobody reads this\n")
        await writer.drain()
        assert writer.refused
        writer.close()

    try:
        asyncio.run(main())
    finally:
        os.close(write_end)
    assert calls == ["broken"]


def _blocked_signals(task: int) -> int:
    """The signal mask of this process's thread ``task`` (a bit per signal, 1 << N-1)."""
    with open(f"/proc/self/task/{task}/status") as status:
        return int(next(line for line in status if line.startswith("SigBlk:")).split()[1], 16)


@pytest.mark.usefixtures("threaded")
def test_the_writing_thread_takes_no_signal() -> None:
    """The kernel gives a process's signal to any thread that does not block it: the
    writing thread blocks them all, so a stop signal always reaches the loop's thread (and
    one that comes as the run ends, when the loop's thread holds them, waits there instead
    of meeting the default action in the writer)."""
    read_end, write_end = os.pipe()
    main_thread = threading.main_thread().native_id
    assert main_thread is not None
    held = signal.pthread_sigmask(signal.SIG_SETMASK, ())  # (whatever came before: none)

    async def main() -> tuple[int, int]:
        writer = Writer(write_end, Bus())
        writer.write(b"to start the thread\n")
        await writer.drain()
        thread = next(t for t in threading.enumerate() if t.name == "pipeplex stdout")
        assert thread.native_id is not None
        blocked = _blocked_signals(thread.native_id), _blocked_signals(main_thread)
        writer.close()
        return blocked

    try:
        in_thread, in_loop = asyncio.run(main())
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        os.close(read_end)
        os.close(write_end)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD,
                signal.SIGUSR1, signal.SIGWINCH):
        assert in_thread & 1 << (sig - 1), sig.name
    # (A fault of the thread's own must still reach faulthandler.)
    assert not in_thread & 1 << (signal.SIGSEGV - 1)
    assert in_loop == 0  # the loop's thread hears every signal, as before


def test_the_writer_keeps_what_a_socket_nobody_reads_cannot_take() -> None:
    """A socket is written with MSG_DONTWAIT: what does not fit is buffered (and counted),
    the loop goes on, and the socket's own flags are never changed."""
    ours, theirs = socket.socketpair()
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    async def main() -> int:
        writer = Writer(theirs.fileno(), Bus())
        writer.write(b"y" * 4_000_000)
        await _callbacks_run()  # (the batch has gone out, as far as the socket took it)
        assert os.get_blocking(theirs.fileno())
        pending = writer.pending
        writer.abandon()
        writer.close()
        assert os.get_blocking(theirs.fileno())
        return pending

    with ours, theirs:
        assert 0 < asyncio.run(main()) < 4_000_000
