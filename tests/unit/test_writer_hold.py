"""The terminal writer while a console prompt holds the terminal."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from pipeplex._bus import Bus
from pipeplex.output.terminal import Writer


class Source:
    def __init__(self) -> None:
        self.paused = False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    r, w = os.pipe()
    os.set_blocking(r, False)
    yield r, w
    os.close(r)
    os.close(w)


def read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            return b"".join(chunks)
        chunks.append(chunk)


def test_held_writes_wait_for_flush_held(pipe: tuple[int, int]) -> None:
    r, w = pipe

    async def main() -> None:
        writer = Writer(w, Bus())
        woken: list[int] = []
        writer.hold(lambda: woken.append(1))
        writer.write(b"one\n")
        writer.write(b"two\n")
        assert read_all(r) == b""
        assert woken == [1]  # once, for the first held write
        assert writer.pending == 8
        writer.flush_held()
        await writer.drain()
        assert read_all(r) == b"one\ntwo\n"
        writer.write(b"three\n")  # still holding
        assert read_all(r) == b"" and woken == [1, 1]
        writer.release()
        assert read_all(r) == b"three\n"
        writer.write(b"four\n")  # goes out at the end of this pass of the loop
        await writer.drain()
        assert read_all(r) == b"four\n"
        writer.close()

    asyncio.run(main())


def _held(fd: int, *, high_water: int, low_water: int) -> tuple[Writer, Source]:
    """A writer to ``fd`` that holds what it gets, and the source its back-pressure pauses."""
    bus = Bus()
    source = Source()
    bus.add_source(source)
    writer = Writer(fd, bus, high_water=high_water, low_water=low_water)
    writer.hold(lambda: None)
    return writer, source


def test_held_bytes_count_for_back_pressure(pipe: tuple[int, int]) -> None:
    """Past the high-water mark the sources pause; flushing resumes them."""
    r, w = pipe

    async def main() -> None:
        writer, source = _held(w, high_water=100, low_water=10)
        writer.write(b"x" * 60)
        assert not source.paused
        writer.write(b"x" * 60)
        assert source.paused
        writer.flush_held()
        await writer.drain()
        assert not source.paused
        assert read_all(r) == b"x" * 120
        writer.close()

    asyncio.run(main())


def test_held_output_goes_out_a_window_at_a_time(pipe: tuple[int, int]) -> None:
    """A flood held for a slow terminal goes out in windows (the prompt reads keys between
    them): whole pieces, at least one each time, in order, the rest still held."""
    r, w = pipe

    async def main() -> None:
        writer, source = _held(w, high_water=250, low_water=100)
        for piece in (b"a" * 100, b"b" * 100, b"c" * 100):
            writer.write(piece)
        assert source.paused
        assert writer.flush_held(150) is True  # (a and b would be 200: a alone)
        await writer.drain()
        assert read_all(r) == b"a" * 100 and writer.pending == 200 and source.paused
        assert writer.flush_held(10) is True  # (at least one piece, however small the window)
        await writer.drain()
        assert read_all(r) == b"b" * 100 and writer.pending == 100 and not source.paused
        assert writer.flush_held(150) is False
        await writer.drain()
        assert read_all(r) == b"c" * 100 and writer.pending == 0
        writer.close()

    asyncio.run(main())


def test_close_writes_what_was_held(pipe: tuple[int, int]) -> None:
    r, w = pipe

    async def main() -> None:
        writer = Writer(w, Bus())
        writer.hold(lambda: None)
        writer.write(b"last words\n")
        writer.close()

    asyncio.run(main())
    assert read_all(r) == b"last words\n"
