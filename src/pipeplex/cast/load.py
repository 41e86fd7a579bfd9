"""Read a cast from TOML or from ``-p NAME=COMMAND`` options, and check it thoroughly.

Every mistake becomes a :class:`~pipeplex.errors.CastError` naming the file and line, the
member, and what to write instead; nothing starts until the whole cast is valid.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import math
import os
import re
import shutil
import stat
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._file_kind import file_kind
from .._suggest import close_match, suggest
from ..errors import CastError, CastErrors, ours_in_tracebacks
from .order import after_first, circle
from .spec import (
    MAX_ARGUMENT,
    NAME_RE,
    RESERVED_NAMES,
    CastSpec,
    OnExit,
    ProcSpec,
    PtyMode,
    StderrMode,
    comment_of,
    is_port,
    matches_anywhere,
    quoted,
    ready_regex,
    shell_syntax_of,
    split_command,
    toml_value,
    variables_in,
)

if TYPE_CHECKING:
    import tomllib

    from ._toml_lines import KeyLines

__all__ = (
    "Mistakes",
    "cast_warnings",
    "check_commands",
    "check_fields",
    "load_cast",
    "parse_proc_option",
    "validate_cast",
    "variable_warnings",
)
__tracebackhide__ = ours_in_tracebacks  # (pytest: see there)

TOP_KEYS = ("procs",)
MAX_FILE = 16 * 2**20
"""The most a cast or scenario file may hold: its text is kept for messages."""
SCENARIO_KEYS = ("defaults", "step", "golden", "normalize")
"""What a scenario file adds (``scenario.load``), which a plain cast file does not take."""
ON_EXIT: tuple[OnExit, ...] = ("stop", "ignore", "restart")
PTY_MODES: tuple[PtyMode, ...] = ("stdout", "full", "pipes")
STDERR_MODES: tuple[StderrMode, ...] = ("apart", "stdout")


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


def check_name(name: str, source: str | None) -> None:
    if not NAME_RE.fullmatch(name):
        raise CastError(
            f"invalid member name {name!r}: use 1 to 64 letters, digits, '_', '.' or '-',"
            " starting with a letter or digit",
            source=source,
        )
    if name in RESERVED_NAMES:
        raise CastError(f"the name {name!r} is reserved ({RESERVED_NAMES[name]}); choose "
                        "another", source=source)


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
    problem = _command_too_long(command)
    if problem:
        raise CastError(f"{name}: {problem}", source=f"-p {name}=...")
    try:
        split_command(command)
    except ValueError as exc:
        raise CastError(f"cannot split the command: {exc}", source=source) from None
    return ProcSpec(name=name, cmd=command, source="-p", **defaults)


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
        raise CastError(f"no such {what}", source=shown) from None
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
        return "; write one key = value a line, with text in quotes"
    if message.endswith("is declared twice"):
        return "; a table may be given once: merge the two"
    if message.startswith("Cannot overwrite a value"):
        return "; a key may be given once in its table"
    return ""


class Mistakes:
    """The mistakes found in a file so far, each a :class:`CastError`, to be said all at
    once (:meth:`raise_any`) rather than one a run: each check that can fail on its own
    runs in :meth:`collecting`."""

    def __init__(self) -> None:
        self.found: list[CastError] = []

    @contextlib.contextmanager
    def collecting(self) -> Iterator[None]:
        try:
            yield
        except CastError as exc:
            self.add(exc)

    def add(self, error: CastError) -> None:
        self.found += error.errors if isinstance(error, CastErrors) else (error,)

    def raise_any(self) -> None:
        """Raise what was found, if anything (see :meth:`error`)."""
        if self.found:
            raise self.error()

    def error(self) -> CastError:
        """What was found: the one mistake, or :class:`CastErrors` (at least one); raised
        from where it is raised again (not also from where it was first)."""
        error = self.found[0] if len(self.found) == 1 else CastErrors(self.found)
        return error.with_traceback(None)


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
            hint = ("; a file with steps is a scenario: load it with load_scenario() or "
                    "Plex.load()" if key in SCENARIO_KEYS else suggest(key, allowed))
            mistakes.found.append(CastError(f"unknown table or key {key!r}{hint}",
                                            source=where(key)))
    procs_table = data.get("procs")
    if procs_table is not None and not isinstance(procs_table, dict):
        mistakes.found.append(CastError(
            f"procs must be a table of members, not {procs_table!r}: write each member as a "
            '[procs.NAME] table, e.g.\n  [procs.server]\n  cmd = "python3 -m http.server"',
            source=where("procs"),
        ))
    elif not procs_table:
        mistakes.found.append(CastError(
            "the cast has no members: add a [procs.NAME] table with a cmd, e.g.\n"
            '  [procs.server]\n  cmd = "python3 -m http.server"',
            source=where("procs"),
        ))
    if not isinstance(procs_table, dict) or not procs_table:
        raise mistakes.error()
    procs = []
    for name, table in procs_table.items():
        with mistakes.collecting():
            procs.append(_proc(name, table, where, base_dir, defaults))
    mistakes.raise_any()
    return validate_cast(CastSpec(tuple(procs), path=getattr(where, "path", None)))


def _proc(
    name: str,
    table: Any,
    where: Callable[..., str | None],
    base_dir: Path | None,
    defaults: Mapping[str, Any],
) -> ProcSpec:
    here = where("procs", name)
    check_name(name, here)
    if not isinstance(table, dict):
        raise CastError(f"procs.{name} must be a table with at least cmd = ...", source=here)
    mistakes = Mistakes()
    for key in table:
        if key not in PROC_KEYS:
            member = isinstance(table[key], dict) and "cmd" in table[key]  # ([procs.a.b])
            hint = (f"; for a member named {name}.{key}, quote the name: "
                    f"[procs.\"{name}.{key}\"]" if member and close_match(key, PROC_KEYS) is None
                    else suggest_key(key, PROC_KEYS))
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
    return ProcSpec(name=name, source=here, key_sources=sources, **read.fields)


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
    problem = _command_too_long(cmd, shell=read.table.get("shell") is True)
    if problem:
        raise read.error(key, problem)
    if isinstance(cmd, str) and cmd.strip():
        if read.table.get("shell") is not True:  # a shell's script is the shell's to read
            try:
                split_command(cmd)
            except ValueError as exc:
                raise read.error(key, f"cannot split cmd: {exc}") from None
        read.fields["cmd"] = cmd
    elif isinstance(cmd, list) and cmd and all(isinstance(w, str) for w in cmd):
        read.fields["cmd"] = tuple(cmd)
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
            shown = variable if _ASSIGNMENT.fullmatch(f"{variable}=") else quoted(variable)
            raise read.error(key, f"env {shown} = {toml_value(value)}: a value is a string or "
                                  'a number (a true or false is written "1" or "")', variable)
        problem = _env_problem(variable, str(value))
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
    if matches_anywhere(regex):
        raise read.error(key, _ready_at_once(read.name, pattern))
    read.fields["ready"] = pattern


def _read_ready_port(read: _Read, key: str, port: Any) -> None:
    if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
        read.fields["ready_port"] = str(port)
    elif isinstance(port, str) and (is_port(port) or variables_in(port)):
        read.fields["ready_port"] = port
    else:
        raise read.bad(key, 'a TCP port number or a variable such as "{port}"')


def _read_seconds(read: _Read, key: str, value: Any) -> None:
    if (not isinstance(value, int | float) or isinstance(value, bool)
            or not 0 < value < 1e9):  # (also refuses nan and inf)
        raise read.bad(key, "a positive number of seconds below 1e9")
    read.fields[key] = float(value)


def _read_autostart(read: _Read, key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise read.bad(key, "true or false")
    read.fields["autostart"] = value


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
    "ready_timeout": _read_seconds, "stop_timeout": _read_seconds,
    "autostart": _read_autostart, "max_restarts": _read_max_restarts,
}
"""How each key of a member's table is read: each on its own, so that every mistake in a
table is found in one reading."""
PROC_KEYS = tuple(_READERS)
"""The keys a member may have."""


def validate_cast(cast_spec: CastSpec) -> CastSpec:
    """Check what involves several members: names, ``after`` and variables.

    Also each member's own fields, as the loaders do key by key, for specs built in code.
    """
    mistakes = Mistakes()
    seen: dict[str, ProcSpec] = {}
    for proc in cast_spec.procs:
        with mistakes.collecting():
            check_fields(proc)
    mistakes.raise_any()  # (what follows reads each member's name and after)
    for proc in cast_spec.procs:
        if proc.name in seen:
            earlier = seen[proc.name].source
            also = ("another -p gives it too" if earlier == "-p" and proc.source == "-p" else
                    f"also declared at {earlier or 'the command line'}")
            mistakes.found.append(CastError(f"duplicate member name {proc.name!r} ({also})",
                                            source=proc.source))
        seen[proc.name] = proc
    for proc in cast_spec.procs:
        for dep in proc.after:
            if dep == proc.name:
                mistakes.found.append(CastError(
                    f"{proc.name}: a member cannot start after itself",
                    source=proc.where("after")))
            elif dep not in seen:
                mistakes.found.append(CastError(
                    f"{proc.name}: after names {dep!r}, which is not a member"
                    f"{suggest(dep, list(seen))}", source=proc.where("after")))
    mistakes.raise_any()  # (what follows reads each member's fields, and the whole graph)
    _check_cycles(cast_spec, seen)
    captures = {proc.name: proc.captured_variables() for proc in cast_spec.procs}
    captured: dict[str, str] = {}
    for proc in cast_spec.procs:
        for var in sorted(captures[proc.name]):
            if var in captured:  # one namespace: which value {var} meant would depend on timing
                mistakes.found.append(CastError(
                    f"{proc.name}: its ready captures {{{var}}}, which {captured[var]} "
                    f"captures too; give the groups different names, e.g. "
                    f"(?P<{_identifier(proc.name)}_{var}>...)", source=proc.where("ready")))
            else:
                captured[var] = proc.name
    for proc in cast_spec.procs:
        with mistakes.collecting():
            _check_variables(proc, captures, captured, seen)
    mistakes.raise_any()
    return cast_spec


def _check_variables(proc: ProcSpec, captures: Mapping[str, set[str]],
                     captured: Mapping[str, str], seen: Mapping[str, ProcSpec]) -> None:
    """Refuse a ``{name}`` in ``proc`` that a member captures, but one ``proc`` does not
    start after (or ``proc`` itself), and a ``ready_port`` variable none of them captures."""
    used = proc.referenced_variables() & captured.keys()
    port = (variables_in(proc.ready_port)
            if proc.ready_port and not is_port(proc.ready_port) else set())
    wanted = used | (port - captures[proc.name])
    available: set[str] = set()
    for dep in _closure(proc, seen) if wanted else ():
        available |= captures[dep]
        if wanted <= available:  # (a long chain of after need not be walked to its end)
            break
    missing = used - available
    if missing:
        var = sorted(missing)[0]
        provider = captured[var]
        where = proc.where(_key_using(proc, var))
        if provider == proc.name:
            raise CastError(f"{proc.name}: uses {{{var}}}, which it captures itself; a "
                            "captured value is known once its member is ready, so only "
                            "members that start after it can use it", source=where)
        raise CastError(f"{proc.name}: uses {{{var}}}, which {provider} captures, but "
                        f"does not start after it; {_add_after(proc, provider)}",
                        source=where)
    unknown = port - available - captures[proc.name]
    if unknown:
        var = sorted(unknown)[0]
        close = close_match(var, list(captured))
        hint = (_add_after(proc, captured[var], ", which captures it")
                if var in captured else
                f"did you mean {{{close}}}, which {captured[close]} captures?"
                if close is not None else
                "capture it with a named group, e.g. ready = 'port (?P<port>\\d+)'")
        raise CastError(f"{proc.name}: ready_port uses {{{var}}}, which no member it "
                        f"starts after captures; {hint}", source=proc.where("ready_port"))


def _add_after(proc: ProcSpec, provider: str, why: str = "") -> str:
    """What to do for ``proc`` to start after ``provider``: a -p member has no after."""
    if proc.source == "-p":
        return (f"declare {proc.name} in a cast file instead, with after = "
                f"[\"{provider}\"]{why} (-p gives no after)")
    return f"add after = [\"{provider}\"]{why}"


def _closure(proc: ProcSpec, procs: Mapping[str, ProcSpec]) -> Iterator[str]:
    """The members ``proc`` starts after, directly or through others, each once: those it
    names first."""
    return after_first(proc.name, lambda name: procs[name].after if name in procs else ())


def check_fields(proc: ProcSpec) -> None:
    """Refuse a member whose fields a loader would have refused (a spec built in code)."""
    if not isinstance(proc.name, str):
        raise CastError(f"invalid member name {proc.name!r}", source=proc.source)
    check_name(proc.name, proc.source)

    def bad(what: str, key: str = "cmd") -> CastError:
        return CastError(f"{proc.name}: {what}", source=proc.where(key))

    problem = _command_too_long(proc.cmd, shell=proc.shell)
    if problem:
        raise bad(problem)
    if isinstance(proc.cmd, str):
        if not proc.cmd.strip():
            raise bad("the command is empty")
        if not proc.shell and proc.source is None:  # a loader split it already
            try:
                split_command(proc.cmd)
            except ValueError as exc:
                raise bad(f"cannot split the command: {exc}") from None
    elif proc.shell:
        raise bad("shell = true needs the command as one string")
    elif not proc.cmd or not all(isinstance(arg, str) for arg in proc.cmd):
        raise bad("cmd must be a string, or a non-empty list (or tuple) of strings")
    words = [proc.cmd] if isinstance(proc.cmd, str) else proc.cmd
    if any("\0" in word for word in words):
        raise bad("the command has a NUL character (\\u0000), which no command line can "
                  "carry")
    if proc.pty not in PTY_MODES:
        raise bad(f"pty must be one of {', '.join(map(repr, PTY_MODES))}, not {proc.pty!r}",
                  "pty")
    if proc.stderr not in STDERR_MODES:
        raise bad(f"stderr must be one of {', '.join(map(repr, STDERR_MODES))}, "
                  f"not {proc.stderr!r}", "stderr")
    if proc.on_exit not in ON_EXIT:
        raise bad(f"on_exit must be one of {', '.join(map(repr, ON_EXIT))}, "
                  f"not {proc.on_exit!r}", "on_exit")
    for key in ("after", "input"):
        value = getattr(proc, key)
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise bad(f"{key} must be a tuple of strings, not {value!r}", key)
    for key, value in proc.env.items():
        if not (isinstance(key, str) and isinstance(value, str)):
            raise bad(f"env names and values must be strings, not {key!r}: {value!r}", "env")
    for key, value in proc.env.items():
        problem = _env_problem(key, value)
        if problem:
            raise bad(f"env {problem}", "env")
    if proc.ready is not None:
        if not isinstance(proc.ready, str):  # (a spec built by hand is not checked)
            raise bad(f"ready must be a regular expression as a string, not {proc.ready!r}",
                      "ready")
        try:
            regex = ready_regex(proc.ready)
        except re.error as exc:
            raise bad(f"ready is not a valid regular expression: {exc}", "ready") from None
        if matches_anywhere(regex):
            raise bad(_ready_at_once(proc.name, proc.ready), "ready")
    port = proc.ready_port
    if port is not None and not (
        isinstance(port, str)
        and (variables_in(port) or is_port(port))
    ):  # one with a {variable} is checked once expanded, when the member gets ready
        raise bad(f"ready_port must be a TCP port number (1-65535) as a string, or a variable "
                  f"such as '{{port}}', not {port!r}", "ready_port")
    for key in ("ready_timeout", "stop_timeout"):
        value = getattr(proc, key)
        if value is None and key == "stop_timeout":
            continue
        if (not isinstance(value, int | float) or isinstance(value, bool)
                or not 0 < value < 1e9):  # (also refuses nan and inf)
            raise bad(f"{key} must be a positive number of seconds below 1e9, not {value!r}",
                      key)
    if (not isinstance(proc.max_restarts, int) or isinstance(proc.max_restarts, bool)
            or proc.max_restarts < 0):
        raise bad(f"max_restarts must be a whole number, 0 or more, not {proc.max_restarts!r}",
                  "max_restarts")


def _command_too_long(cmd: object, *, shell: bool = False) -> str | None:
    """Why Linux would refuse ``cmd``, or None: a command string, or an argument of a list,
    of :data:`MAX_ARGUMENT` bytes or more. Said at load, before a string is split (which
    would take minutes), not when the member starts."""
    if isinstance(cmd, str):
        size = _bytes(cmd)
        if size < MAX_ARGUMENT:
            return None
        hint = (", and a shell's script is one: put the script in a file and run that file"
                if shell else ": write a longer command as a list of arguments, each under "
                "128 KiB")
        return (f"cmd is {size:,} bytes long; a command string must be under 128 KiB, as "
                f"Linux refuses an argument that long{hint}")
    if isinstance(cmd, list | tuple):
        for number, arg in enumerate(cmd, start=1):
            if isinstance(arg, str) and (size := _bytes(arg)) >= MAX_ARGUMENT:
                return (f"argument {number} of cmd is {size:,} bytes long, and Linux refuses "
                        "an argument of 128 KiB or more: put the text in a file and give "
                        "the program its name")
    return None


def _bytes(text: str) -> int:
    """How many bytes ``text`` takes on a command line, in UTF-8."""
    return len(text.encode("utf-8", "surrogatepass"))


def _env_problem(key: str, value: str) -> str | None:
    """Why the environment cannot hold ``key=value``, or None: checked at load, since the
    spawn would refuse it only once the member starts."""
    if not key:
        return "has an empty variable name"
    if "=" in key or "\0" in key:
        char = "'='" if "=" in key else "a NUL character"
        return f"variable name {key!r} contains {char}, which no variable name may hold"
    if "\0" in value:
        return (f"variable {key} has a NUL character in its value, which the environment "
                "cannot hold")
    if key in ("PIPEPLEX_NAME", "PIPEPLEX_RUN_ID"):
        return (f"sets {key}, which pipeplex sets itself (it tells which member and run a "
                "process belongs to, and stops what the member started by it): remove it")
    return None


def _identifier(name: str) -> str:
    """A member's name as a Python identifier, for a group name in a hint."""
    text = re.sub(r"\W", "_", name)
    return f"_{text}" if text[0].isdigit() else text


def _check_cycles(cast_spec: CastSpec, procs: Mapping[str, ProcSpec]) -> None:
    """Refuse members that wait for each other in a circle, naming the first one found."""
    found = circle(procs, {name: proc.after for name, proc in procs.items()})
    if found is not None:
        raise CastError(f"members wait for each other in a circle: {' -> '.join(found)}; "
                        f"{_break_circle(found, procs)}", source=procs[found[0]].where("after"))


def _break_circle(circle: Sequence[str], procs: Mapping[str, ProcSpec]) -> str:
    """What to remove to break ``circle`` (``a, b, a``): one of its links, at its line."""
    if len(circle) > 4:
        return "remove one of them from the after of the member before it"
    links = []
    for name, dep in itertools.pairwise(circle):
        where = procs[name].where("after") or ""
        number = where.rpartition(":")[2]
        line = f" (line {number})" if number.isdigit() and where != procs[name].source else ""
        links.append(f"{dep!r} from {name}'s after{line}")
    return "remove " + " or ".join(links)


def cast_warnings(cast_spec: CastSpec) -> list[str]:
    """What a run says before it starts, about what may not be what the user meant:
    comments left out of a one-line command, a shell's syntax in a command no shell runs,
    and ``{names}`` no member captures."""
    return [*comment_warnings(cast_spec), *shell_syntax_warnings(cast_spec),
            *variable_warnings(cast_spec)]


def comment_warnings(cast_spec: CastSpec) -> list[str]:
    """A ``#`` comment in a command of one line, which a shell would leave out as pipeplex
    does, but which may be meant as an argument (``echo issue #12``): said. (Over several
    lines, comments are what a script has.)"""
    warnings = []
    for proc in cast_spec.procs:
        if isinstance(proc.cmd, str) and not proc.shell and "\n" not in proc.cmd:
            comment = comment_of(proc.cmd)
            if comment is not None:
                word = comment.split()[0]
                warnings.append(f"{proc.where('cmd') or proc.name}: {proc.name}'s command has "
                                f"a comment, {quoted(comment)}, which is not passed to it, as "
                                f"in a shell; quote it ('{word}') if it is meant as an argument")
    return warnings


def shell_syntax_warnings(cast_spec: CastSpec) -> list[str]:
    """An operator, a redirection or an expansion outside quotes in a command that no shell
    runs (``cd web && npm start``, ``server > log``, ``--data $HOME/x``): the program gets it
    as text, which is seldom what was meant. Said, not refused: a program may want the text
    (``find . -exec ls {} ;``), and quoting it says so."""
    warnings = []
    for proc in cast_spec.procs:
        if not isinstance(proc.cmd, str) or proc.shell:
            continue
        program = split_command(proc.cmd)[0].rpartition("/")[2]
        fix = ("set shell = true to have /bin/sh run the command" if proc.source != "-p" else
               f"write -p {proc.name}=\"sh -c '...'\" to have a shell run it")
        if split_command(proc.cmd)[0] in _SHELL_BUILTINS:  # (one on PATH: else refused)
            warnings.append(f"{proc.where('cmd') or proc.name}: {proc.name}'s command runs "
                            f"{quoted(program)}, a shell's own command, which changes nothing "
                            f"run on its own: {fix}")
            continue
        found = shell_syntax_of(proc.cmd)
        if found is None:
            continue
        piece, kind, word = found
        within = "" if word == piece else f" (in {quoted(word)})"
        warnings.append(f"{proc.where('cmd') or proc.name}: {proc.name}'s command has "
                        f"{quoted(piece)} outside quotes, which a shell would read as {kind}; "
                        f"no shell runs it, so {program} gets it as text{within}: {fix}, or "
                        "quote it if the text is what you mean")
    return warnings


def variable_warnings(cast_spec: CastSpec, *, guesses: bool = False) -> list[str]:
    """What a ``{name}`` that no member captures was most likely meant as: a captured name
    close to it (``{prot}``, ``{port}``), or a named group of a member it starts after that
    has groups without names. Such a name reaches the program as it is written (braces
    that mean something else, an f-string's or ``${HOME}``, must pass), so this is told,
    not refused. ``guesses``: also where it is only a guess, for the report of a failure
    (which a false one costs little): after a member whose ready captures nothing, with
    groups that have no names."""
    captured = {var: proc.name for proc in cast_spec.procs
                for var in sorted(proc.captured_variables())}
    unnamed = [proc.name for proc in cast_spec.procs
               if proc.ready and ready_regex(proc.ready).groups > len(proc.captured_variables())]
    if not captured and not unnamed:
        return []
    procs = {proc.name: proc for proc in cast_spec.procs}
    warnings = []
    for proc in cast_spec.procs:
        for var in sorted(proc.referenced_variables() - captured.keys()):
            where = proc.where(_key_using(proc, var))
            said = f"{where}: {proc.name} uses {{{var}}}, which no member captures (it is "
            close = close_match(var, list(captured))
            if close is not None:
                warnings.append(f"{said}passed on as written); did you mean {{{close}}}, which "
                                f"{captured[close]} captures?")
                continue
            # (only for a name the pattern mentions, 'port (\d+)' for {port}: not for an
            # awk program's {print} or an f-string's {x})
            before = [dep for dep in _closure(proc, procs) if dep in unnamed]
            groups = [dep for dep in before
                      if re.search(rf"(?i)\b{re.escape(var)}\b", procs[dep].ready or "")]
            if groups:
                warnings.append(f"{said}passed on as written); {groups[0]}'s ready has a group "
                                f"without a name: name it, (?P<{_identifier(var)}>...), to "
                                "capture it")
                continue
            # A guess, after a member whose ready captures nothing at all: its groups
            # without names are the likely slip ('listening on :(\d+)' for {port}).
            bare = [dep for dep in before if not procs[dep].captured_variables()]
            if bare and guesses:
                warnings.append(f"{said}passed on as written); {bare[0]}'s ready captures "
                                "nothing, its groups having no names: if {" + var + "} is "
                                f"what one matches, name it, (?P<{_identifier(var)}>...)")
    return warnings


def _key_using(proc: ProcSpec, var: str) -> str:
    """The key of ``proc`` that uses ``{var}``, to point at: its command, else its env,
    else its input."""
    if var in variables_in(proc.command_text):
        return "cmd"
    return "env" if any(var in variables_in(v) for v in proc.env.values()) else "input"


def _ready_at_once(name: str, pattern: str) -> str:
    return (f"ready {quoted(pattern)} matches where nothing was written, so {name} would be "
            "ready at its first output; make it match some text")


def check_commands(cast_spec: CastSpec) -> None:
    """Fail early, before anything starts, when a member's program does not exist.

    A member that starts later (``after`` others, or ``autostart = false``) may run what an
    earlier one builds (``./app`` after ``make``): its program file is looked for when it
    starts. A program it finds on PATH, and its cwd, are checked now all the same: a
    misspelt tool or folder is the usual mistake.
    """
    found: dict[tuple[str, str], bool] = {}  # (program, PATH): a cast often repeats both
    mistakes = Mistakes()
    for proc in cast_spec.procs:
        with mistakes.collecting():
            _check_command(proc, found)
    mistakes.raise_any()


def _check_command(proc: ProcSpec, found: dict[tuple[str, str], bool]) -> None:
    later = bool(proc.after) or not proc.autostart
    cwd = Path(proc.cwd) if proc.cwd else Path.cwd()
    if proc.cwd and not cwd.is_dir():  # also for a shell, or a command with variables
        raise CastError(f"{proc.name}: cwd {proc.cwd!r} is not a folder",
                        source=proc.where("cwd"))
    if proc.shell or variables_in(proc.command_text):
        return  # the shell finds the program; a variable may name it
    program = proc.argv()[0]
    if "/" in program and later:
        return
    if "/" in program:
        target = cwd / program
        if not target.exists():
            raise CastError(f"{proc.name}: command not found: {program!r} "
                            f"(cmd = {proc.command_text!r}){_no_shell_hint(proc)}",
                            source=proc.where("cmd"))
        if target.is_dir() or not os.access(target, os.X_OK):
            fix = "" if target.is_dir() else "; chmod +x it, or run it with its interpreter"
            raise CastError(f"{proc.name}: {program!r} is not an executable file "
                            f"(cmd = {proc.command_text!r}){fix}", source=proc.where("cmd"))
    elif not _on_path(program, proc.env.get("PATH", os.environ.get("PATH", os.defpath)),
                      found):
        own = "PATH" in proc.env and f"; its env sets PATH to {proc.env['PATH']!r}, which lacks it"
        raise CastError(f"{proc.name}: command not found: {program!r} (cmd = "
                        f"{proc.command_text!r})"
                        f"{_no_shell_hint(proc) or own or '; check the spelling and PATH'}",
                        source=proc.where("env" if own else "cmd"))


_SHELL_BUILTINS = frozenset({".", "[[", "alias", "case", "cd", "declare", "eval", "exec",
                             "export", "for", "if", "local", "readonly", "set", "source",
                             "trap", "ulimit", "umask", "unset", "until", "while"})
"""A shell's own commands and words, which mean nothing as a program: some systems have a
``cd`` file on PATH (POSIX asks for one), which changes nothing run on its own."""
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def _no_shell_hint(proc: ProcSpec) -> str:
    """Why a program was not found, when it is something only a shell knows (``cd``, ``~``,
    ``PORT=1 server``): a hint to append to the message, else ''."""
    program = proc.argv()[0]
    by_hand = proc.source == "-p"
    shell = (f"write -p {proc.name}=\"sh -c '...'\"" if by_hand else "set shell = true")
    if _ASSIGNMENT.match(program):
        name, _, value = program.partition("=")
        where = f"env {program} COMMAND" if by_hand else f"env = {{ {name} = {quoted(value)} }}"
        return (f"; {quoted(program)} sets a variable only in a shell, and no shell runs this "
                f"command: use {where}")
    if program.startswith("~"):
        return (f"; no shell runs this command, so ~ is not your home folder: write the path "
                f"in full, or {shell}")
    if program in _SHELL_BUILTINS:
        cwd = "" if by_hand or program != "cd" else " (or cwd = 'FOLDER' instead of cd)"
        return (f"; {quoted(program)} is a shell's own command, and no shell runs this one: "
                f"{shell}{cwd}")
    found = shell_syntax_of(proc.cmd, first_word=True) if isinstance(proc.cmd, str) else None
    if found is not None:
        return (f"; it has {quoted(found[0])} outside quotes, which a shell would read as "
                f"{found[1]}, and no shell runs this command: {shell}")
    return ""


def _on_path(program: str, path: str, found: dict[tuple[str, str], bool]) -> bool:
    key = (program, path)
    if key not in found:
        found[key] = shutil.which(program, path=path) is not None
    return found[key]
