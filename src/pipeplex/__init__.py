"""pipeplex: run, drive and test several cooperating programs at once."""

from __future__ import annotations

import importlib as _importlib

# (Not typing.TYPE_CHECKING: the command loads this package before it can hold back a
# Ctrl-C, so the package imports nothing it need not.)
_TYPE_CHECKING = False
if _TYPE_CHECKING:
    import typing as _typing

    from ._bus import Bus as Bus
    from ._events import Event as Event
    from ._events import Exited as Exited
    from ._events import InputSent as InputSent
    from ._events import Matched as Matched
    from ._events import Note as Note
    from ._events import Output as Output
    from ._events import Ready as Ready
    from ._events import Started as Started
    from ._run import RunOptions as RunOptions
    from ._run import run_cast as run_cast
    from .cast import CastSpec as CastSpec
    from .cast import ProcSpec as ProcSpec
    from .cast import load_cast as load_cast
    from .engine.engine import Engine as Engine
    from .errors import ArgumentError as ArgumentError
    from .errors import ArgumentTypeError as ArgumentTypeError
    from .errors import CastError as CastError
    from .errors import CastErrors as CastErrors
    from .errors import ExpectTimeout as ExpectTimeout
    from .errors import NotReady as NotReady
    from .errors import PipeplexError as PipeplexError
    from .errors import RunDirError as RunDirError
    from .errors import SignalRefused as SignalRefused
    from .errors import SpawnError as SpawnError
    from .errors import UnexpectedExit as UnexpectedExit
    from .errors import UnknownMember as UnknownMember
    from .expect import EOF as EOF
    from .expect import TIMEOUT as TIMEOUT
    from .expect.patterns import Sentinel as Sentinel
    from .plex.async_member import AsyncMember as AsyncMember
    from .plex.async_plex import AsyncPlex as AsyncPlex
    from .plex.sync_member import Member as Member
    from .plex.sync_plex import Plex as Plex
    from .scenario import StepFailed as StepFailed

__version__ = "0.1.0"

__all__ = (
    "EOF",
    "TIMEOUT",
    "ArgumentError",
    "ArgumentTypeError",
    "AsyncMember",
    "AsyncPlex",
    "Bus",
    "CastError",
    "CastErrors",
    "CastSpec",
    "Engine",
    "Event",
    "Exited",
    "ExpectTimeout",
    "InputSent",
    "Matched",
    "Member",
    "NotReady",
    "Note",
    "Output",
    "PipeplexError",
    "Plex",
    "ProcSpec",
    "Ready",
    "RunDirError",
    "RunOptions",
    "Sentinel",
    "SignalRefused",
    "SpawnError",
    "Started",
    "StepFailed",
    "UnexpectedExit",
    "UnknownMember",
    "load_cast",
    "run_cast",
)

# Imported on first use, so that `pipeplex send` and friends start without loading the
# engine; `from pipeplex import Plex` works as usual.
_SOURCES = {
    "Bus": "._bus",
    "Engine": ".engine.engine",
    "Event": "._events",
    "Exited": "._events",
    "InputSent": "._events",
    "Matched": "._events",
    "Note": "._events",
    "Output": "._events",
    "Ready": "._events",
    "Started": "._events",
    "AsyncMember": ".plex.async_member",
    "AsyncPlex": ".plex.async_plex",
    "Member": ".plex.sync_member",
    "Plex": ".plex.sync_plex",
    "RunOptions": "._run",
    "run_cast": "._run",
    "CastSpec": ".cast",
    "ProcSpec": ".cast",
    "load_cast": ".cast",
    "ArgumentError": ".errors",
    "ArgumentTypeError": ".errors",
    "CastError": ".errors",
    "CastErrors": ".errors",
    "ExpectTimeout": ".errors",
    "NotReady": ".errors",
    "PipeplexError": ".errors",
    "RunDirError": ".errors",
    "SignalRefused": ".errors",
    "SpawnError": ".errors",
    "UnexpectedExit": ".errors",
    "UnknownMember": ".errors",
    "EOF": ".expect",
    "TIMEOUT": ".expect",
    "Sentinel": ".expect.patterns",
    "StepFailed": ".scenario",
}


def __getattr__(name: str) -> _typing.Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'pipeplex' has no attribute {name!r}")
    value = getattr(_importlib.import_module(source, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
