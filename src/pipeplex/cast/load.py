"""Read a cast from TOML or from ``-p NAME=COMMAND`` options: the file (read by
:mod:`._toml_file`), its top level (``procs``, ``include``), then each member's table key by
key (:mod:`._member_table`).

Every mistake becomes a :class:`~pipeplex.errors.CastError` naming the file and line, the
member, and what to write instead, and every mistake of a reading is said together; the
checks across members are :mod:`.checks`'. Nothing starts until the whole cast is valid.
"""


from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .._suggest import close_match, suggest
from ..errors import CastError, ours_in_tracebacks
from ._member_fields import check_name, command_too_long
from ._member_table import for_member, proc_from_table, suggest_key
from ._toml_file import _Where, read_toml
from .checks import Mistakes, validate_cast
from .spec import CastSpec, ProcSpec, split_command, toml_value

__all__ = ("SCENARIO_KEYS", "cast_from_data", "load_cast", "parse_proc_option")


__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)


TOP_KEYS = ("procs", "include")


SCENARIO_KEYS = ("defaults", "step", "golden", "normalize", "skip")
"""What a scenario file adds (``scenario.load``), which a plain cast file does not take."""


def parse_proc_option(option: str, **defaults: Any) -> ProcSpec:
    """Parse ``NAME=COMMAND`` from the command line."""
    name, sep, command = option.partition("=")
    source = f"-p {option}"
    if not sep:
        raise CastError("expected NAME=COMMAND, e.g. -p server='python3 -m http.server'",
                        source=source)
    if not command.strip():
        raise CastError(f"the command is empty: give it after the =, e.g. -p "
                        f"{name.strip() or 'server'}='python3 -m http.server'", source=source)
    name = name.strip()
    check_name(name, source)
    problem = command_too_long(command)
    if problem:
        raise CastError(f"{name}: {problem}", source=f"-p {name}=...")
    try:
        split_command(command)
    except ValueError as exc:
        raise CastError(f"cannot split the command: {exc}", source=source) from None
    return ProcSpec(name=name, cmd=command, source="-p", **for_member(defaults, False))


def load_cast(path: str | os.PathLike[str], **defaults: Any) -> CastSpec:
    """Load and validate a cast file.

    Raises:
        CastError: the file is missing, not TOML, or describes an invalid cast.
    """
    shown, text, data = read_toml(path, "cast file")
    return cast_from_data(data, where=_Where(shown, text), base_dir=Path(path).parent, **defaults)


def cast_from_data(
    data: Mapping[str, Any],
    *,
    where: Callable[..., str | None] = lambda *keys: None,
    base_dir: Path | None = None,
    extra_top_keys: Sequence[str] = (),
    **defaults: Any,
) -> CastSpec:
    """Build a :class:`CastSpec` from parsed TOML, checking every key."""
    allowed = (*TOP_KEYS, *extra_top_keys)
    mistakes = Mistakes()
    elsewhere = [key for key in data if key not in allowed and _members_in(data[key])]
    for key in data:
        if key not in allowed:
            hint = (f"; {'steps are' if key == 'step' else repr(key) + ' is'} a scenario "
                    "file's (as pipeplex run and test read it): load it with load_scenario() "
                    "or Plex.load()" if key in SCENARIO_KEYS else suggest(key, allowed))
            if key in elsewhere and close_match(key, allowed) != "procs":
                first = next(iter(data[key]))
                hint = (f"; a cast's members are [procs.NAME] tables: write [procs.{first}] "
                        f"in place of [{key}.{first}]")
            mistakes.found.append(CastError(f"unknown table or key {key!r}{hint}",
                                            source=where(key)))
    included: list[ProcSpec] = []
    if "include" in data:
        included = _included(data["include"], where, base_dir, defaults, mistakes)
    procs_table = data.get("procs")
    if procs_table is None and included:
        procs_table = {}
    elif procs_table is not None and not isinstance(procs_table, dict):
        mistakes.found.append(CastError(
            f"procs must be a table of members, not {procs_table!r}: write each member as a "
            '[procs.NAME] table, e.g.\n  [procs.server]\n  cmd = "python3 -m http.server"',
            source=where("procs"),
        ))
    elif not procs_table and not included and "include" not in data and not elsewhere and not any(
            close_match(key, allowed) == "procs" for key in data if key not in allowed):
        # (but for a misspelt [procs...], or members under another table's name (compose's
        # [services.NAME]), said above: the cause, not what follows from it)
        mistakes.found.append(CastError(
            "the cast has no members: add a [procs.NAME] table with a cmd, e.g.\n"
            '  [procs.server]\n  cmd = "python3 -m http.server"',
            source=where("procs"),
        ))
    if not isinstance(procs_table, dict) or not (procs_table or included):
        raise mistakes.error()
    procs = list(included)
    theirs = {proc.name: proc.source for proc in included}
    for name, table in procs_table.items():
        with mistakes.collecting():
            if name in theirs:
                raise CastError(f"[procs.{name}] is declared in {theirs[name]} too, which this "
                                "file includes: give one of them another name",
                                source=where("procs", name))
            procs.append(proc_from_table(name, table, where, base_dir, defaults))
    mistakes.raise_any()
    return validate_cast(CastSpec(tuple(procs), path=getattr(where, "path", None)))


def _members_in(value: Any) -> bool:
    """Whether ``value`` reads as a table of members: tables, one of them with a command
    (``cmd``, or ``command`` as docker compose and process-compose write it)."""
    return isinstance(value, dict) and bool(value) and all(
        isinstance(table, dict) for table in value.values()) and any(
        "cmd" in table or "command" in table for table in value.values())


def _included(value: Any, where: Callable[..., str | None], base_dir: Path | None,
              defaults: Mapping[str, Any], mistakes: Mistakes) -> list[ProcSpec]:
    """The members of the cast files ``include`` names, in order, each read from its own
    file (its lines in messages, a relative ``cwd`` from its folder): a suite's scenarios
    share one cast instead of copying it. What is wrong goes to ``mistakes``; the members
    that could be read are returned all the same (a clash with them is said too)."""
    paths = [value] if isinstance(value, str) else value
    if not isinstance(paths, list) or not paths or not all(
            isinstance(path, str) and path for path in paths):
        mistakes.add(CastError("include is a cast file's path, or a list of them (include = "
                               f"\"cast.toml\"), not {toml_value(value)}",
                               source=where("include")))
        return []
    procs: list[ProcSpec] = []
    seen: set[str] = set()
    including = getattr(where, "path", None)
    for written in paths:
        path = Path(written).expanduser()
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        with mistakes.collecting():
            try:
                os.lstat(path)
            except (FileNotFoundError, NotADirectoryError, ValueError):  # (ValueError: a NUL)
                raise CastError(f"include: no such cast file {written!r} (looked for {path})",
                                source=where("include")) from None
            except OSError as exc:  # (a folder on the way that may not be entered)
                hint = (" (a folder on its way may not be entered)"
                        if isinstance(exc, PermissionError) else "")
                raise CastError(f"include: cannot read the cast file {written!r}: "
                                f"{exc.strerror or exc}{hint}", source=where("include")) from None
            real = os.path.realpath(path)
            if including is not None and real == os.path.realpath(including):
                raise CastError(f"include: {written!r} is this file itself",
                                source=where("include"))
            if real in seen:
                raise CastError(f"include: {written!r} is named twice", source=where("include"))
            seen.add(real)
            try:
                shown, text, data = read_toml(path, "cast file")
            except CastError as exc:
                if exc.source != os.fspath(path):  # (at a line of it: said there)
                    raise
                raise CastError(f"include: {written!r}: {exc.message}",
                                source=where("include")) from None
            inner = _Where(shown, text)
            others = [key for key in data if key != "procs"]
            if others and others[0] not in (*TOP_KEYS, *SCENARIO_KEYS):
                raise CastError(f"unknown table or key {others[0]!r} in an included file, "
                                "which gives members only ([procs.NAME])"
                                f"{suggest_key(others[0], ('procs',))}",
                                source=inner(others[0]))
            if others:
                raise CastError(f"{others[0]} in an included file: it gives members only "
                                f"([procs.NAME]); {others[0]} belongs in the file that "
                                "includes it", source=inner(others[0]))
            table = data.get("procs")
            if not isinstance(table, dict) or not table:
                raise CastError("an included file gives members ([procs.NAME] tables), and "
                                "this one has none", source=inner("procs"))
            for name, proc_table in table.items():
                with mistakes.collecting():
                    if any(proc.name == name for proc in procs):
                        raise CastError(f"[procs.{name}] is declared in another included file "
                                        "too: give one of them another name",
                                        source=inner("procs", name))
                    procs.append(proc_from_table(name, proc_table, inner, path.parent, defaults))
    return procs
