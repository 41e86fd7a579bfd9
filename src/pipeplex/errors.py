"""The exceptions pipeplex raises.

One root, :class:`PipeplexError`; each subclass is named for the condition and builds a
message that says what went wrong and what to do next. The CLI prints ``str(error)`` and
never a traceback for these.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = (
    "CastError",
    "PipeplexError",
    "RunDirError",
    "SpawnError",
    "UnknownMember",
)


class PipeplexError(Exception):
    """Root of every error pipeplex raises on purpose."""


class CastError(PipeplexError):
    """A cast file or a ``-p`` option is invalid.

    ``source`` names where the problem is (``cast.toml:12:5`` or ``-p alice=...``).
    """

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.message = message
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class SpawnError(PipeplexError):
    """A member's program could not be started."""

    def __init__(self, name: str, command: str, reason: str) -> None:
        self.name = name
        self.command = command
        self.reason = reason
        super().__init__(f"{name}: cannot start {command!r}: {reason}")


class RunDirError(PipeplexError):
    """The run folder is unsafe, busy, or cannot be created."""


class UnknownMember(PipeplexError, KeyError):
    """A name does not belong to the cast."""

    def __init__(self, name: str, valid: Iterable[str]) -> None:
        self.name = name
        self.valid = tuple(valid)
        listed = ", ".join(self.valid) or "none"
        super().__init__(f"no member named {name!r} (members: {listed}; or 'all' for everyone)")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])
