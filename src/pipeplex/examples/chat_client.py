"""A chat client that says what it reads on stdin, for the chat_server example.

It prints everything the room says and asks ``what should I say? `` (a partial line)
before each line it reads, like a person at a prompt.  ``--wait-for`` and
``--take-turns`` let scripted clients hold a conversation in a fixed order even though
all of their input is available at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import stat
import sys
from collections.abc import Callable, Sequence

PROMPT = "what should I say? "
ONLINE = re.compile(r"^\* .*\((\d+) online\)$")


class Room:
    """What this client has heard so far, so stdin can be gated on it."""

    def __init__(self, wait_for: int) -> None:
        self.wait_for = wait_for
        self.ready = wait_for <= 0  # Enough people online to start talking.
        self.heard = 0  # Lines received since becoming ready: they are the turns.
        self.prompt_open = False  # The prompt is on screen with nothing after it yet.
        self._changed = asyncio.Event()

    def hear(self, line: str) -> None:
        if self.ready:
            self.heard += 1
        elif (match := ONLINE.match(line)) and int(match[1]) >= self.wait_for:
            self.ready = True
        self._changed.set()

    async def until_ready(self) -> None:
        while not self.ready:
            await self._something_heard()

    async def until_heard_more_than(self, count: int) -> None:
        while self.heard <= count:
            await self._something_heard()

    async def _something_heard(self) -> None:
        self._changed.clear()
        await self._changed.wait()


async def open_stdin() -> tuple[asyncio.StreamReader, Callable[[], None]]:
    """Read stdin without blocking the event loop (and so without a thread).

    Returns the reader and a function that gives stdin back as it found it: the event
    loop makes it non-blocking, which a shell sharing the terminal would trip over.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    fd = sys.stdin.fileno()
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)):
        # A file or /dev/null: the event loop cannot watch it, but reading it never blocks.
        reader.feed_data(sys.stdin.buffer.read())
        reader.feed_eof()
        return reader, lambda: None
    was_blocking = os.get_blocking(fd)
    protocol = asyncio.StreamReaderProtocol(reader)
    transport, _ = await loop.connect_read_pipe(lambda: protocol, sys.stdin)

    def restore() -> None:
        os.set_blocking(fd, was_blocking)
        transport.close()

    return reader, restore


async def listen(server: asyncio.StreamReader, room: Room) -> None:
    """Print what the room says, until the server goes away."""
    try:
        while line := await server.readline():
            text = line.decode("utf-8", errors="replace").rstrip("\r\n")
            if room.prompt_open:  # What the room says starts on a line of its own.
                print()
                room.prompt_open = False
            print(text)
            room.hear(text)
    except ConnectionError:
        pass


async def talk(server: asyncio.StreamWriter, room: Room, args: argparse.Namespace) -> None:
    """Send stdin to the room line by line, taking turns if asked to; return on /quit or EOF."""
    stdin, restore_stdin = await open_stdin()
    echoed = os.isatty(sys.stdin.fileno())
    try:
        await room.until_ready()
        if args.take_turns and args.listen_first:
            await room.until_heard_more_than(0)
        while True:
            print(PROMPT, end="", flush=True)
            room.prompt_open = True
            line = await stdin.readline()
            room.prompt_open = False
            text = line.decode("utf-8", errors="replace").rstrip("\r\n")
            if line and not echoed:
                print(text)  # A terminal would have echoed what was typed; a pipe does not.
            if not line or text == "/quit":
                return
            heard = room.heard
            await asyncio.sleep(args.pace)  # (as a person types: the demo is for watching)
            server.write(f"{text}\n".encode())
            await server.drain()
            if args.take_turns:
                await room.until_heard_more_than(heard)
    finally:
        restore_stdin()


async def chat(args: argparse.Namespace) -> int:
    try:
        reader, writer = await asyncio.open_connection(args.host, args.port)
    except OSError as exc:
        # asyncio words its errors "Connect call failed (...)": say why, like other tools do.
        reason = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else exc.strerror
        print(f"cannot connect to {args.host}:{args.port}: {reason or exc}", file=sys.stderr)
        return 1
    writer.write(f"{args.name}\n".encode())
    print("connected")
    room = Room(args.wait_for)
    listener = asyncio.create_task(listen(reader, room))
    talker = asyncio.create_task(talk(writer, room, args))
    done, _ = await asyncio.wait({listener, talker}, return_when=asyncio.FIRST_COMPLETED)
    server_gone = listener in done
    if server_gone:
        talker.cancel()
    else:
        listener.cancel()
        try:
            talker.result()
        except ConnectionError:
            server_gone = True
    if server_gone:
        print("server closed the connection")
    writer.close()
    with contextlib.suppress(ConnectionError):  # Already gone: nothing to close cleanly.
        await writer.wait_closed()
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Chat in a chat_server room from stdin.")
    parser.add_argument("--host", default="127.0.0.1", help="server address")
    parser.add_argument("--port", type=int, required=True, help="server port")
    parser.add_argument("--name", required=True, help="the name others see")
    # Scripted clients use these to hold a conversation in a fixed order.
    parser.add_argument(
        "--wait-for", type=int, default=1, metavar="N", help="read stdin once N are online"
    )
    parser.add_argument(
        "--take-turns", action="store_true", help="after each line, wait to hear something"
    )
    parser.add_argument(
        "--listen-first", action="store_true", help="with --take-turns, also before the first"
    )
    parser.add_argument(
        "--pace", type=float, default=0.0, metavar="SECONDS", help="pause before sending a line"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(chat(args))
    except KeyboardInterrupt:
        return 130  # Ctrl-C is an ordinary way to leave: no traceback.


if __name__ == "__main__":
    sys.exit(main())
