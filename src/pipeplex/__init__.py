"""pipeplex: run, drive and test several cooperating programs at once."""

from __future__ import annotations

from ._bus import Bus as Bus
from ._engine import Engine as Engine
from ._events import Event as Event
from ._events import Exited as Exited
from ._events import InputSent as InputSent
from ._events import Note as Note
from ._events import Output as Output
from ._events import Ready as Ready
from ._events import Started as Started
from ._plex import AsyncMember as AsyncMember
from ._plex import AsyncPlex as AsyncPlex
from ._plex import Member as Member
from ._plex import Plex as Plex
from ._run import RunOptions as RunOptions
from ._run import run_cast as run_cast
from .cast import CastSpec as CastSpec
from .cast import ProcSpec as ProcSpec
from .cast import load_cast as load_cast
from .errors import CastError as CastError
from .errors import ExpectTimeout as ExpectTimeout
from .errors import PipeplexError as PipeplexError
from .errors import RunDirError as RunDirError
from .errors import SpawnError as SpawnError
from .errors import UnexpectedExit as UnexpectedExit
from .errors import UnknownMember as UnknownMember
from .expect import EOF as EOF
from .expect import TIMEOUT as TIMEOUT
from .scenario import StepFailed as StepFailed

__version__ = "0.1.0"

__all__ = (
    "EOF",
    "TIMEOUT",
    "AsyncMember",
    "AsyncPlex",
    "Bus",
    "CastError",
    "CastSpec",
    "Engine",
    "Event",
    "Exited",
    "ExpectTimeout",
    "InputSent",
    "Member",
    "Note",
    "Output",
    "PipeplexError",
    "Plex",
    "ProcSpec",
    "Ready",
    "RunDirError",
    "RunOptions",
    "SpawnError",
    "Started",
    "StepFailed",
    "UnexpectedExit",
    "UnknownMember",
    "load_cast",
    "run_cast",
)
