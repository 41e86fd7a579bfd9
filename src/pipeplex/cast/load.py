"""Read a cast from TOML or from ``-p NAME=COMMAND`` options: the file (a regular file,
TOML, with tomllib's slips said in words), then each member's table key by key.

Every mistake becomes a :class:`~pipeplex.errors.CastError` naming the file and line, the
member, and what to write instead, and every mistake of a reading is said together; the
checks across members are :mod:`.checks`'. Nothing starts until the whole cast is valid.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._file_kind import file_kind
from .._seconds import SECONDS_SAID, is_seconds
from .._suggest import close_match, suggest
from ..errors import CastError, ours_in_tracebacks
from ._member_fields import (
    ON_EXIT,
    STDERR_MODES,
    check_name,
    command_too_long,
    env_problem,
    never_a_port,
    ready_problem,
)
from .checks import Mistakes, validate_cast
from .spec import (
    CastSpec,
    ProcSpec,
    PtyMode,
    is_port,
    is_port_template,
    quoted,
    ready_regex,
    split_command,
    toml_value,
    variables_in,
)

if TYPE_CHECKING:
    import tomllib

    from ._toml_lines import KeyLines

__all__ = ("PROC_KEYS", "SCENARIO_KEYS", "cast_from_data", "load_cast", "parse_proc_option",
           "parse_toml", "read_toml", "suggest_key")


__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)


TOP_KEYS = ("procs", "include")


MAX_FILE = 16 * 2**20
"""The most a cast or scenario file may hold: its text is kept for messages."""


SCENARIO_KEYS = ("defaults", "step", "golden", "normalize", "skip")
"""What a scenario file adds (``scenario.load``), which a plain cast file does not take."""


_OTHER_TOOLS = {
    "restart": ('; a member restarts with on_exit = "restart" (and max_restarts: how many '
                'times in a row)'),
    "depends_on": "; a member starts after others with after = [...] (once they are ready)",
    "environment": "; did you mean 'env'? (a table: env = { NAME = \"value\" })",
    "working_dir": "; did you mean 'cwd'?",
    "healthcheck": ("; a member's health check is ready_cmd (a command that exits with 0 "
                    "once it is ready), or ready_port"),
    "command": "; did you mean 'cmd'?",
}
"""Keys that other tools' files (docker compose, supervisord) use for what a member's keys
here do: the close spelling of another key would lead astray (restart: max_restarts)."""


def suggest_key(key: str, valid: Sequence[str]) -> str:
    """:func:`suggest`, or for ``golden`` (a top-level key written below a table's header,
    which TOML then reads as that table's) where to put it."""
    if key == "golden":
        return ("; golden is a top-level key: write it above the first table ([procs...] or "
                "[[step]]), as a key below a table's header belongs to that table")
    if key in ("step", "normalize", "defaults"):
        return (f"; a scenario's {key} goes in tables of its own: [[{key}]]"
                if key != "defaults" else "; [defaults] is a table of its own, above the "
                "members'")
    return suggest(key, valid)


class _Where:
    """Turns a key path into ``file:line`` for messages."""

    def __init__(self, path: str | None, text: str | None) -> None:
        self.path = path
        self.text = text
        self._lines: KeyLines | None = None

    def __call__(self, *keys: str | int) -> str | None:
        if self.path is None:
            return None
        if self.text is None:
            return self.path
        if self._lines is None:  # read once: a loader asks for every key of the file
            from ._toml_lines import KeyLines  # only with a file: kept out of -p runs

            self._lines = KeyLines(self.text)
        line = self._lines.line(keys)
        return f"{self.path}:{line}" if line else self.path


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
    return ProcSpec(name=name, cmd=command, source="-p", **_for_member(defaults, False))


def load_cast(path: str | os.PathLike[str], **defaults: Any) -> CastSpec:
    """Load and validate a cast file.

    Raises:
        CastError: the file is missing, not TOML, or describes an invalid cast.
    """
    shown, text, data = read_toml(path, "cast file")
    return cast_from_data(data, where=_Where(shown, text), base_dir=Path(path).parent, **defaults)


def read_toml(path: str | os.PathLike[str], what: str) -> tuple[str, str, dict[str, Any]]:
    """The file's name as shown in messages, its text, and its parsed TOML.

    Raises:
        CastError: missing, not a regular file (a named pipe is refused, never waited
            on), unreadable, or not TOML (with line and column).
    """
    shown = os.fspath(path)
    try:
        # Not blocking: opening a named pipe (run/all.in, given by mistake) would wait for a
        # writer, and the stop signals are held while the cast loads, so Ctrl-C could not
        # end the wait. What is open is then known by fstat, before anything is read.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise CastError(f"no such {what}{_dangling(path)}", source=shown) from None
    except OSError as exc:
        kind = _kind_at(path) if exc.errno == errno.ENXIO else None  # (a socket)
        raise CastError(f"this is {kind}, not a {what}" if kind else
                        f"cannot read the {what}: {exc.strerror or exc}", source=shown) from None
    try:
        kind = _kind(os.fstat(fd).st_mode)
        if kind:
            raise CastError(f"this is {kind}, not a {what}", source=shown)
        os.set_blocking(fd, True)
        with open(fd, "rb", closefd=False) as file:
            data = file.read(MAX_FILE + 1)  # (a file that grows as it is read)
    except OSError as exc:
        raise CastError(f"cannot read the {what}: {exc.strerror or exc}", source=shown) from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE:
        raise CastError(f"the {what} is longer than {MAX_FILE // 2**20} MiB: is it the right "
                        "file?", source=shown)
    try:
        text = data.decode("utf-8-sig")  # (a byte order mark, as some editors write, is no key)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise CastError(f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the {what} as "
                        "UTF-8", source=f"{shown}:{line}") from None
    return shown, text, parse_toml(text, shown)


def _dangling(path: str | os.PathLike[str]) -> str:
    """For a path that is not there: that it is a symbolic link to nowhere, if it is; that
    '-' is no way to say standard input here."""
    if os.fspath(path) == "-":
        return " ('-' is a file's name here: pipeplex reads a cast file by its path, not from "\
            "standard input; save it to a file)"
    try:
        target = os.readlink(path)
    except (OSError, ValueError):
        return ""
    return f" (a symbolic link to {target}, which does not exist)"


def _kind(mode: int) -> str | None:
    """What a file of ``mode`` is, for a message, unless it is a regular file."""
    return None if stat.S_ISREG(mode) else file_kind(mode)


def _kind_at(path: str | os.PathLike[str]) -> str | None:
    try:
        return _kind(os.stat(path).st_mode)
    except OSError:
        return None


def parse_toml(text: str, shown: str) -> dict[str, Any]:
    """Parse TOML; a syntax error becomes a CastError with ``file:line:column``.

    So does what tomllib fails on with another error: arrays or inline tables nested too
    deeply for Python's stack, and a number with more digits than Python converts.
    """
    import tomllib  # only with a file: ``pipeplex run -p ...`` does without it

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message, source = _toml_error(exc, shown)
        raise CastError(message + _toml_hint(message, text, exc), source=source) from None
    except RecursionError:
        raise CastError("cannot read this TOML: its arrays or inline tables are nested too "
                        "deeply (hundreds of levels)", source=shown) from None
    except ValueError as exc:  # (int's limit: the only ValueError tomllib lets through)
        raise CastError(f"cannot read this TOML: it has a number with too many digits "
                        f"(more than the {sys.get_int_max_str_digits()} Python reads)"
                        if "digits" in str(exc) else f"cannot read this TOML: {exc}",
                        source=shown) from None


def _toml_error(exc: tomllib.TOMLDecodeError, path: str) -> tuple[str, str]:
    message = str(exc)
    m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if m:
        return _toml_table_twice(message[: m.start()]), f"{path}:{m[1]}:{m[2]}"
    m = re.search(r"\s*\(at end of document\)$", message)
    if m:
        return message[: m.start()] + " at the end of the file", path
    return message, path


def _toml_table_twice(message: str) -> str:
    """tomllib's "Cannot declare ('procs', 'a') twice" (a Python tuple) as the file writes
    the table: "[procs.a] is declared twice"."""
    m = re.fullmatch(r"Cannot declare \((.*)\) twice", message)
    if m is None:
        return message
    keys = re.findall(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"", m[1])
    names = [single or double for single, double in keys]
    dotted = ".".join(n if re.fullmatch(r"[A-Za-z0-9_-]+", n) else f'"{n}"' for n in names)
    return f"[{dotted}] is declared twice"


def _toml_hint(message: str, text: str, exc: tomllib.TOMLDecodeError) -> str:
    """What to write instead, for the slips tomllib names only by their effect."""
    if message == "Invalid value":
        at = re.search(r"\(at line (\d+), column (\d+)\)$", str(exc))
        line = text.split("\n")[int(at[1]) - 1] if at else ""  # (as TOML counts lines)
        word = re.match(r"[^\s,\]}#]*", line[int(at[2]) - 1:] if at else "")
        if word is not None and word[0].lower() in ("true", "false"):
            return f"; write {word[0].lower()} in lowercase, as TOML does"
        return "; put text in quotes: \"...\" (or '...', where a backslash stays as written)"
    if message.startswith("Unescaped '\\'"):
        return ("; in \"...\" a backslash begins an escape such as \\n: write the value in "
                "single quotes, where it stays as written (a regular expression: '\\d+')")
    if message.startswith("Unterminated string") or message == "Illegal character '\\n'":
        return ("; close the string on its line with the quote it began with (text over "
                "several lines goes in \"\"\"...\"\"\" or '''...''')")
    if message.startswith("Expected newline or end of document"):
        value = _error_line(text, exc).partition("=")[2].strip()
        if value[:1].isdigit() or value[:2] in ("-0", "+0", "-1", "+1"):
            return ("; a number is written 5, 0.5 or 1_000 (no leading zero, digits after "
                    "its point, an underscore only between digits)")
        return "; write one key = value a line, with text in quotes"
    if message == "Invalid initial character for a key part" and _in_inline_table(text, exc):
        return ("; an inline table { A = \"1\", B = \"2\" } stays on one line, with no comma "
                "after its last item (or write it as a table of its own: [procs.NAME.env])")
    if message == "Unclosed array":
        return "; an array's items are separated by commas, and it ends with ]: [\"a\", \"b\"]"
    if message.endswith("is declared twice"):
        return "; a table may be given once: merge the two"
    if message.startswith("Cannot overwrite a value"):
        return "; a key may be given once in its table"
    return ""


def _error_line(text: str, exc: tomllib.TOMLDecodeError) -> str:
    """The line of ``text`` where tomllib's error is ("" at the end of the document)."""
    at = re.search(r"\(at line (\d+), column \d+\)$", str(exc))
    lines = text.split("\n")  # (as TOML counts lines)
    return lines[int(at[1]) - 1] if at and int(at[1]) <= len(lines) else ""


def _in_inline_table(text: str, exc: tomllib.TOMLDecodeError) -> bool:
    """Whether tomllib's error is inside an inline table ``{ ... }`` left open before it."""
    at = re.search(r"\(at line (\d+), column (\d+)\)$", str(exc))
    if at is None:
        return False
    lines = text.split("\n")
    before = "\n".join([*lines[: int(at[1]) - 1], lines[int(at[1]) - 1][: int(at[2]) - 1]])
    start = before.rfind("\n[")  # (from the table's header on: a header's brackets aside)
    return before[start + 1:].count("{") > before[start + 1:].count("}")


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
    for key in data:
        if key not in allowed:
            hint = (f"; {'steps are' if key == 'step' else repr(key) + ' is'} a scenario "
                    "file's (as pipeplex run and test read it): load it with load_scenario() "
                    "or Plex.load()" if key in SCENARIO_KEYS else suggest(key, allowed))
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
    elif not procs_table and not included and "include" not in data and not any(
            close_match(key, allowed) == "procs" for key in data if key not in allowed):
        # (but for a misspelt [procs...], said above: the cause, not what follows from it)
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
            procs.append(_proc(name, table, where, base_dir, defaults))
    mistakes.raise_any()
    return validate_cast(CastSpec(tuple(procs), path=getattr(where, "path", None)))


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
                    procs.append(_proc(name, proc_table, inner, path.parent, defaults))
    return procs


def _proc(
    name: str,
    table: Any,
    where: Callable[..., str | None],
    base_dir: Path | None,
    defaults: Mapping[str, Any],
) -> ProcSpec:
    here = where("procs", name)
    check_name(name, here)
    if isinstance(table, list) and table and all(isinstance(item, dict) for item in table):
        raise CastError(f"procs.{name} is written [[procs.{name}]], an array of tables: write "
                        f"[procs.{name}], in single brackets (a member is one table)",
                        source=here)
    if not isinstance(table, dict):
        raise CastError(f"procs.{name} must be a table with at least cmd = ..., not "
                        f"{toml_value(table)}: write [procs.{name}] and cmd = ... on the next "
                        "line", source=here)
    mistakes = Mistakes()
    for key in table:
        if key not in PROC_KEYS:
            member = isinstance(table[key], dict) and "cmd" in table[key]  # ([procs.a.b])
            hint = (f"; for a member named {name}.{key}, quote the name: "
                    f"[procs.\"{name}.{key}\"]" if member and close_match(key, PROC_KEYS) is None
                    else _OTHER_TOOLS.get(key) or suggest_key(key, PROC_KEYS))
            mistakes.found.append(CastError(f"{name}: unknown key {key!r}{hint}",
                                            source=where("procs", name, key)))
    if "cmd" not in table:
        mistakes.found.append(CastError(f"{name}: missing cmd (the command to run)",
                                        source=here))
    read = _Read(name, table, where, base_dir, defaults)
    for key, reader in _READERS.items():
        if key in table:
            with mistakes.collecting():
                reader(read, key, table[key])
    mistakes.raise_any()
    sources = {key: found for key in table if (found := where("procs", name, key))}
    fields = read.fields if "ready_cmd_timeout" in table else (
        _for_member(read.fields, "ready_cmd" in read.fields))
    return ProcSpec(name=name, source=here, key_sources=sources, **fields,
                    file_folder=None if base_dir is None else os.fspath(base_dir))


def _for_member(defaults: Mapping[str, Any], has_check: bool) -> Mapping[str, Any]:
    """Defaults given for every member, as they apply to one: a ``ready_cmd_timeout`` only
    to a member with a ``ready_cmd`` (elsewhere it is a limit with nothing to limit)."""
    if has_check or "ready_cmd_timeout" not in defaults:
        return defaults
    return {key: value for key, value in defaults.items() if key != "ready_cmd_timeout"}


class _Read:
    """A member's table being read key by key (:data:`_READERS`): the fields read so far,
    and the mistakes, worded, at the line of their key."""

    __slots__ = ("base_dir", "fields", "name", "table", "where")

    def __init__(self, name: str, table: dict[str, Any], where: Callable[..., str | None],
                 base_dir: Path | None, defaults: Mapping[str, Any]) -> None:
        self.name, self.table, self.where, self.base_dir = name, table, where, base_dir
        self.fields: dict[str, Any] = dict(defaults)

    def error(self, key: str, text: str, *keys: str) -> CastError:
        return CastError(f"{self.name}: {text}", source=self.where("procs", self.name, key, *keys))

    def bad(self, key: str, expected: str, choices: Sequence[str] = ()) -> CastError:
        value = self.table[key]
        close = None
        if isinstance(value, str) and choices:
            close = value.lower() if value.lower() in choices else close_match(value, choices)
        meant = f"; did you mean {close!r}?" if close is not None else ""
        if isinstance(value, str) and value.lower() in ("true", "false") and "true" in expected:
            meant = f"; write {value.lower()} without quotes, as TOML writes a yes or no"
        return self.error(key, f"{key} must be {expected}, not {toml_value(value)}{meant}")


def _read_cmd(read: _Read, key: str, cmd: Any) -> None:
    """``cmd``, and ``ready_cmd`` likewise (which no ``shell = true`` applies to)."""
    shell = key == "cmd" and read.table.get("shell") is True
    problem = command_too_long(cmd, shell=shell, key=key)
    if problem:
        raise read.error(key, problem)
    if isinstance(cmd, str) and cmd.strip():
        if not shell:  # a shell's script is the shell's to read
            try:
                split_command(cmd)
            except ValueError as exc:
                raise read.error(key, f"cannot split {key}: {exc}") from None
        read.fields[key] = cmd
    elif isinstance(cmd, list) and cmd and all(isinstance(w, str) for w in cmd):
        read.fields[key] = tuple(cmd)
    else:
        raise read.bad(key, "a non-empty string or a list of strings")


def _read_shell(read: _Read, key: str, shell: Any) -> None:
    if not isinstance(shell, bool):
        raise read.bad(key, "true or false")
    if shell and isinstance(read.table.get("cmd"), list):  # (another cmd: said as its own)
        raise read.error(key, "shell = true needs cmd as one string")
    read.fields["shell"] = shell


def _read_env(read: _Read, key: str, env: Any) -> None:
    if not isinstance(env, dict):
        raise read.bad(key, 'a table of strings or numbers, e.g. env = { LANG = "C", '
                            'WORKERS = 4 }')
    for variable, value in env.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise read.error(key, f"env {variable} = {value}: a number here is finite (write "
                                  f'"{value}" in quotes if the text is meant)', variable)
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            shown = variable if variable.isidentifier() else quoted(variable)
            # (No mapping of true and false is guessed: programs read them their own way.)
            forms = '"true" or "1"' if value is True else '"false", "0" or ""'
            hint = (f" (write it in quotes, in the form the program reads: {forms})"
                    if isinstance(value, bool) else "")
            raise read.error(key, f"env {shown} = {toml_value(value)}: a value is a string or "
                                  f"a number{hint}", variable)
        problem = env_problem(variable, str(value))
        if problem:
            raise read.error(key, f"env {problem}", variable)
    read.fields["env"] = {str(k): str(v) for k, v in env.items()}


def _read_cwd(read: _Read, key: str, folder: Any) -> None:
    if not isinstance(folder, str) or not folder:
        raise read.bad(key, "a folder path")
    try:
        cwd = Path(folder).expanduser()
    except RuntimeError:  # ~someone, and no such user
        raise read.error(key, f"cwd {folder!r} names a home folder of a user this machine "
                              "does not have") from None
    if read.base_dir is not None and not cwd.is_absolute():
        cwd = read.base_dir / cwd
    read.fields["cwd"] = os.fspath(cwd)


def _read_pty(read: _Read, key: str, value: Any) -> None:
    modes: dict[object, PtyMode] = {True: "full", False: "pipes", "stdout": "stdout"}
    if not (isinstance(value, bool) or value == "stdout"):
        raise read.bad(key, 'true (a full terminal), false (plain pipes) or "stdout"',
                       ("stdout",))
    read.fields["pty"] = modes[value]


def _read_choice(read: _Read, key: str, value: Any) -> None:
    choices, expected = _CHOICES[key]
    if value not in choices:
        raise read.bad(key, expected, choices)
    read.fields[key] = value


def _read_words(read: _Read, key: str, value: Any) -> None:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise read.bad(key, "a list of strings")
    read.fields[key] = tuple(value)


def _read_ready(read: _Read, key: str, pattern: Any) -> None:
    if not isinstance(pattern, str) or not pattern:
        raise read.bad(key, "a regular expression")
    try:
        regex = ready_regex(pattern)
    except re.error as exc:
        raise read.error(key, f"invalid ready pattern {quoted(pattern)}: {exc}") from None
    if (problem := ready_problem(read.name, pattern, regex)) is not None:
        raise read.error(key, problem)
    read.fields["ready"] = pattern


def _read_ready_port(read: _Read, key: str, port: Any) -> None:
    if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
        read.fields["ready_port"] = str(port)
    elif isinstance(port, str) and (is_port(port) or is_port_template(port)):
        read.fields["ready_port"] = port
    elif isinstance(port, str) and variables_in(port):
        raise read.error(key, never_a_port(port))
    else:
        raise read.bad(key, 'a TCP port number or a variable such as "{port}"')


def _read_seconds(read: _Read, key: str, value: Any) -> None:
    if not is_seconds(value):
        raise read.bad(key, SECONDS_SAID)
    read.fields[key] = float(value)


def _read_flag(read: _Read, key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise read.bad(key, "true or false")
    read.fields[key] = value


def _read_max_restarts(read: _Read, key: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise read.bad(key, "a whole number, 0 or more")
    read.fields["max_restarts"] = value


_CHOICES: dict[str, tuple[tuple[str, ...], str]] = {
    "stderr": (STDERR_MODES, '"apart" (its own stream, marked !) or "stdout" (into stdout, '
                             "in the order written)"),
    "on_exit": (ON_EXIT, " or ".join(repr(v) for v in ON_EXIT)),
}


_READERS: dict[str, Callable[[_Read, str, Any], None]] = {
    "cmd": _read_cmd, "shell": _read_shell, "env": _read_env, "cwd": _read_cwd,
    "pty": _read_pty, "stderr": _read_choice, "on_exit": _read_choice, "input": _read_words,
    "after": _read_words, "ready": _read_ready, "ready_port": _read_ready_port,
    "ready_cmd": _read_cmd, "ready_cmd_timeout": _read_seconds, "ready_exit": _read_flag,
    "ready_timeout": _read_seconds,
    "stop_timeout": _read_seconds, "autostart": _read_flag, "max_restarts": _read_max_restarts,
}
"""How each key of a member's table is read: each on its own, so that every mistake in a
table is found in one reading."""


PROC_KEYS = tuple(_READERS)
"""The keys a member may have."""
