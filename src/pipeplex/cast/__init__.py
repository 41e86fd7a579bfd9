"""What to run: the cast's members, read from a TOML file or from ``-p NAME=CMD`` options."""

from __future__ import annotations

from .load import load_cast, parse_proc_option
from .spec import CastSpec, ProcSpec

__all__ = ("CastSpec", "ProcSpec", "load_cast", "parse_proc_option")
