"""A tiny line-based chat room over TCP.

It is one of the cooperating programs in the demo: its own stdout narrates everything
that happens in the room, so next to the clients' output it shows the same conversation
from the other side.

Protocol (UTF-8, one message per ``\\n``-terminated line): a client's first line is its
name; every later line is relayed to the other clients as ``NAME: text``.  Joins and
departures are announced to everyone as ``* NAME joined (N online)``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence


def decode(line: bytes) -> str:
    """Turn a received line into text; a bad byte must never take the room down."""
    return line.decode("utf-8", errors="replace").rstrip("\r\n")


class ChatRoom:
    """The connected clients, and what to tell whom when something happens."""

    def __init__(self) -> None:
        self.members: dict[asyncio.StreamWriter, str] = {}
        # Set when the last member leaves, for --exit-when-empty.
        self.emptied = asyncio.Event()

    def broadcast(self, text: str, skip: asyncio.StreamWriter | None = None) -> None:
        """Send a line to every member but ``skip``; a slow reader must not stall the room."""
        data = (text + "\n").encode()
        for writer in self.members:
            if writer is not skip and not writer.is_closing():
                writer.write(data)

    def announce(self, text: str) -> None:
        """A notice goes to the server's own output and to every member."""
        print(text)
        self.broadcast(f"* {text}")

    async def serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Handle one connection from its name line to its disconnection, however abrupt."""
        name = ""
        try:
            first = await reader.readline()
            if not first:
                return  # Disconnected before saying who it was.
            name = decode(first).strip() or "anonymous"
            self.members[writer] = name
            self.announce(f"{name} joined ({len(self.members)} online)")
            while line := await reader.readline():
                message = f"{name}: {decode(line)}"
                print(message)
                self.broadcast(message, skip=writer)
        except (ConnectionError, ValueError):
            pass  # Reset by the peer, or a line longer than the reader's limit: drop it.
        finally:
            # No awaits in here, so the room is consistent even if this task is cancelled.
            writer.close()
            if self.members.pop(writer, None) is not None:
                self.announce(f"{name} left ({len(self.members)} online)")
                if not self.members:
                    self.emptied.set()


async def serve(host: str, port: int, exit_when_empty: bool) -> None:
    """Open the room and keep it open until it empties (if asked to) or forever."""
    room = ChatRoom()
    server = await asyncio.start_server(room.serve_client, host, port)
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    # The first line tells whoever started us where to connect.
    print(f"listening on {bound_host}:{bound_port}", flush=True)
    async with server:
        if exit_when_empty:
            await room.emptied.wait()
            print("room is empty; bye")
        else:
            await server.serve_forever()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A tiny line-based chat room over TCP.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free one)")
    parser.add_argument(
        "--exit-when-empty",
        action="store_true",
        help="exit once somebody has joined and everybody has left",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(serve(args.host, args.port, args.exit_when_empty))
    except KeyboardInterrupt:
        return 130  # Ctrl-C is how an interactive room is meant to end: no traceback.
    except OSError as exc:
        print(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
