"""The validated description of a cast: plain, frozen data that the engine runs.

Variables captured by ``ready`` patterns (``(?P<port>\\d+)``) are substituted into later
members' commands, environment and input as ``{port}``. Substitution works on each
argument separately, so a variable can never add arguments. A shell script (a ``shell =
true`` command, or the script of ``sh -c SCRIPT``) never contains a value: the shell gets it
in its environment (``PIPEPLEX_VAR_port``) and ``{port}`` becomes an expansion of that
variable, so the shell treats it as data.
"""

from __future__ import annotations

import functools
import re
import shlex
import signal
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Literal

from .._regex import compile_regex
from ..errors import SpawnError
from .order import depths
from .shell import ENV_PROGRAM, SHELL, SHELL_VAR_PREFIX, shell_script, shell_script_operand
from .variables import (  # (re-exported: the engine, steps)
    expand,
    is_port,
    is_port_template,
    variables_in,
)

__all__ = (
    "DEFAULTS_TIMEOUT",
    "DEFAULT_READY_CMD_TIMEOUT",
    "HELPERS",
    "NAME_RE",
    "TEST_ENVIRONMENT",
    "CastSpec",
    "HelperKey",
    "OnExit",
    "ProcSpec",
    "PtyMode",
    "StderrMode",
    "comment_of",
    "expand",
    "is_port",
    "is_port_template",
    "matches_anywhere",
    "quoted",
    "ready_regex",
    "shell_syntax_of",
    "split_command",
    "toml_value",
    "variables_in",
)

PtyMode = Literal["stdout", "full", "pipes"]
HelperKey = Literal["ready_cmd", "stop_cmd"]
"""A member's commands run beside it: its health check and how it is asked to stop."""
HELPERS: tuple[HelperKey, ...] = ("ready_cmd", "stop_cmd")
OnExit = Literal["stop", "ignore", "restart"]
StderrMode = Literal["apart", "stdout"]

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

TEST_ENVIRONMENT = {"NO_COLOR": "1", "TERM": "dumb"}
"""What members get in test mode, and in the pytest plugin's ``plex`` fixture (a member's
own ``env`` still wins): a test must read the same on a developer's terminal as in CI, where
``TERM`` is often unset. Under ``xterm``, ``ls`` and ``grep --color=auto`` colour, and
readline (sqlite3, bash) wraps each line in bracketed-paste sequences."""

RESERVED_NAMES = {
    "all": "it addresses every member",
    "pipeplex": "pipeplex's own lines go under it",
}


ON_EXIT_OPTION = "--on-exit"
"""What :attr:`ProcSpec.key_sources` holds for ``on_exit`` when the command line's option
set it, over the cast file's: messages name the option, not a key the file does not hold."""

DEFAULT_GRACE = 5.0
"""Seconds a member may take to exit after SIGTERM before SIGKILL."""
DEFAULT_READY_TIMEOUT = 30.0
DEFAULT_READY_CMD_TIMEOUT = 5.0
"""Seconds one run of a health check (``ready_cmd``) may take before it is killed and counts
as failed: a check that hangs (a server that accepts and never answers) is tried again,
rather than taking the whole ``ready_timeout``."""
DEFAULT_MAX_RESTARTS = 5
MAX_ARGUMENT = 128 * 2**10
"""Bytes in an argument that Linux refuses (MAX_ARG_STRLEN, which counts its ending NUL): a
cast's command string, or an argument of a list, this long is refused at load."""

DEFAULTS_TIMEOUT = "[defaults] timeout"
"""The key of :attr:`ProcSpec.key_sources` that names a scenario's ``[defaults] timeout``,
when that line set the member's ``ready_timeout``."""


@dataclass(frozen=True, slots=True)
class ProcSpec:
    """One member of the cast, as the user described it."""

    name: str
    cmd: str | tuple[str, ...]
    _: KW_ONLY  # (the rest by name: a key added among them moves no caller's argument)
    shell: bool = False
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    pty: PtyMode = "stdout"
    stderr: StderrMode = "apart"
    """"stdout": stderr goes to the member's stdout (one stream, in the order written)."""
    on_exit: OnExit = "stop"
    on_failure: OnExit | None = None
    """What follows a failed end instead of ``on_exit`` (None: the same): an exit with
    another code than 0 or by a signal, one before it was ready, a start that failed or
    timed out. ``on_exit = "ignore"`` with ``on_failure = "restart"`` restarts a worker that
    crashes and lets one that finished its work end, as systemd's ``Restart=on-failure``."""
    input: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    ready: str | None = None
    ready_port: str | None = None
    ready_exit: bool = False
    """Ready when it exits with 0 (a build step, a migration): the members after it start
    then, and that exit is its work done, not an end its ``on_exit`` answers."""
    ready_cmd: str | tuple[str, ...] | None = None
    """A health check: once the member has started (and its ``ready`` line and
    ``ready_port`` came, if it has them), this command runs again and again until it exits
    with 0 (``pg_isready``). Split as ``cmd`` is; it never runs through a shell unless it
    names one (``sh -c '...'``)."""
    ready_cmd_timeout: float = DEFAULT_READY_CMD_TIMEOUT
    """Seconds one run of ``ready_cmd`` may take; a run still going then is killed and
    counts as failed."""
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    stop_timeout: float | None = None
    stop_cmd: str | tuple[str, ...] | None = None
    """How it is asked to stop, in place of its stop signal (``redis-cli -p {port}
    shutdown``, ``docker stop web``): run as ``ready_cmd`` is, once its stdin is closed;
    the stop signal follows if it fails, SIGKILL if the member still runs after
    ``stop_timeout``."""
    stop_signal: int = signal.SIGTERM.value
    """The signal that asks it to stop (SIGINT for a program whose SIGTERM is a slow "smart"
    shutdown, SIGQUIT for nginx's graceful one); SIGKILL after ``stop_timeout`` either way."""
    max_restarts: int = DEFAULT_MAX_RESTARTS
    autostart: bool = True
    """False: the member starts only when asked (a scenario's ``start`` step)."""
    source: str | None = None
    """Where the member was declared (``cast.toml:12`` or ``-p``), for messages."""
    key_sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    """Where each of its keys was written (``cast.toml:14``), for messages about one; and
    under :data:`DEFAULTS_TIMEOUT`, where a scenario's ``[defaults] timeout`` that gave it
    its ``ready_timeout`` was."""
    timeout_factor: float = field(default=1.0, compare=False, repr=False)
    """What its ``ready_timeout`` and ``ready_cmd_timeout`` were scaled by (``pipeplex test
    --timeout-factor``), for messages that give where they were written."""
    file_folder: str | None = field(default=None, compare=False, repr=False)
    """The folder of the cast file that declared it (None for ``-p`` and the API): a
    relative path in its command not found where it runs, but there, is said to be."""

    def where(self, key: str) -> str | None:
        """Where ``key`` was written, or else the member."""
        return self.key_sources.get(key, self.source)

    @property
    def command_text(self) -> str:
        """The command as a user would type it, for messages."""
        return self.cmd if isinstance(self.cmd, str) else shlex.join(self.cmd)

    def argv(self, variables: Mapping[str, str] | None = None) -> list[str]:
        """The argument vector to execute, with variables substituted.

        Each argument gets its values on its own, except a shell script: the command of
        ``shell = true``, or the script of a command that runs a shell with ``-c`` (see
        :func:`shell_script_operand`). A command with such a script that uses variables runs
        as ``/usr/bin/env PIPEPLEX_VAR_x=VALUE ... PROGRAM ...``: the values reach the shell
        in its environment, never in its script (see :func:`shell_script`).

        Raises:
            SpawnError: a value cannot be given to the shell safely (see :func:`shell_script`).
        """
        if self.shell:
            assert isinstance(self.cmd, str)
            return self._argv([SHELL, "-c", self.cmd], 2, self.command_text, variables)
        words = _words(self.cmd)
        return self._argv(words, shell_script_operand(words), self.command_text, variables)

    def on_end(self, failed: bool) -> OnExit:
        """What follows an end of its run: ``on_failure`` for a failure, if it has one."""
        return self.on_failure if failed and self.on_failure is not None else self.on_exit

    def policy_key(self, failed: bool) -> str:
        """The key that decides :meth:`on_end`: ``on_failure`` or ``on_exit``."""
        return "on_failure" if failed and self.on_failure is not None else "on_exit"

    def policy_said(self, failed: bool) -> str:
        """:meth:`policy_key` and its value, for messages: ``on_failure = restart``; or the
        option that set it for every member: ``--on-exit stop``."""
        key = self.policy_key(failed)
        if self.key_sources.get(key) == ON_EXIT_OPTION:
            return f"{ON_EXIT_OPTION} {self.on_end(failed)}"
        return f"{key} = {self.on_end(failed)}"

    @property
    def may_restart(self) -> bool:
        """Whether some end of its run is followed by a restart, by its policy."""
        return "restart" in (self.on_exit, self.on_failure)

    @property
    def waits_to_be_ready(self) -> bool:
        """Whether it has a readiness of its own (else it is ready once started)."""
        return bool(self.ready or self.ready_port or self.ready_cmd or self.ready_exit)

    @property
    def ready_cmd_text(self) -> str:
        """:attr:`ready_cmd` as the cast file writes it (see :meth:`helper_text`)."""
        return self.helper_text("ready_cmd")

    def ready_argv(self, variables: Mapping[str, str] | None = None) -> list[str]:
        """:attr:`ready_cmd`'s argument vector (see :meth:`helper_argv`)."""
        return self.helper_argv("ready_cmd", variables)

    def helper_text(self, key: HelperKey) -> str:
        """Its ``ready_cmd`` or ``stop_cmd`` as the cast file writes it (a TOML string or
        list), for messages: such a command is often a shell's script, whose quotes a join
        would escape."""
        cmd = getattr(self, key)
        assert cmd is not None
        return toml_value(cmd if isinstance(cmd, str) else list(cmd))

    def helper_argv(self, key: HelperKey,
                    variables: Mapping[str, str] | None = None) -> list[str]:
        """Its ``ready_cmd``'s or ``stop_cmd``'s argument vector, made as :meth:`argv`
        makes the command's.

        Raises:
            SpawnError: as :meth:`argv`, naming that command.
        """
        words = _words(getattr(self, key))
        return self._argv(words, shell_script_operand(words), self.helper_text(key), variables)

    def _argv(self, words: Sequence[str], script: int | None, command: str,
              variables: Mapping[str, str] | None) -> list[str]:
        """``words`` with ``variables`` substituted, ``words[script]`` being a shell's script
        (None: there is none); ``command`` names them in an error."""
        variables = variables or {}
        if script is None:
            return [expand(word, variables) for word in words]
        try:
            text, used = shell_script(words[script], variables)
        except ValueError as exc:
            raise SpawnError(self.name, command, str(exc)) from None
        argv = [expand(word, variables) for word in words[:script]]
        argv += [text, *(expand(word, variables) for word in words[script + 1:])]
        if not used:
            return argv
        values = [f"{SHELL_VAR_PREFIX}{name}={variables[name]}" for name in used]
        return [ENV_PROGRAM, *values, *argv]

    def referenced_variables(self) -> set[str]:
        """The variables its command, environment and input use. In a shell script, as
        :meth:`argv` reads it: ``\\{x}`` and a ``{x}`` in a comment are no use of ``x``."""
        used = set().union(*(variables_in(t) for t in (*self.env.values(), *self.input)))
        if self.shell:
            assert isinstance(self.cmd, str)
            return used | _command_variables([self.cmd], 0)
        words = _words(self.cmd)
        return used | _command_variables(words, shell_script_operand(words))

    def helper_variables(self, key: HelperKey) -> set[str]:
        """The variables its ``ready_cmd`` or ``stop_cmd`` uses, read as
        :meth:`referenced_variables` reads the command's."""
        cmd = getattr(self, key)
        if cmd is None:
            return set()
        words = _words(cmd)
        return _command_variables(words, shell_script_operand(words))

    def ready_cmd_variables(self) -> set[str]:
        """The variables its ``ready_cmd`` and ``stop_cmd`` use: both run once the member
        has started (and got ready), so they may use what it captures itself."""
        return self.helper_variables("ready_cmd") | self.helper_variables("stop_cmd")

    def captured_variables(self) -> set[str]:
        return set(ready_regex(self.ready).groupindex) if self.ready else set()


def _words(cmd: str | tuple[str, ...] | list[str]) -> tuple[str, ...] | list[str]:
    """A command's words: a string split as a shell would, a list as it is."""
    return split_command(cmd) if isinstance(cmd, str) else cmd


def _command_variables(words: Sequence[str], script: int | None) -> set[str]:
    """The variables a command's ``words`` use, ``words[script]`` being a shell's script."""
    used = set().union(*(variables_in(word) for i, word in enumerate(words) if i != script))
    if script is not None:
        zeros = dict.fromkeys(variables_in(words[script]), "0")  # (0: fit for arithmetic)
        try:
            used.update(shell_script(words[script], zeros)[1])
        except ValueError:  # (nested too deep: argv says so when it runs)
            used.update(zeros)
    return used


@functools.lru_cache(maxsize=4096)
def ready_regex(pattern: str) -> re.Pattern[str]:
    """``ready``, compiled once: it is checked, read for its groups and matched, and re's
    own cache (512) is too small for a cast of a thousand members."""
    return compile_regex(pattern)


def matches_anywhere(regex: re.Pattern[str]) -> bool:
    """Whether ``regex`` matches where nothing was written (``""``, ``x*``, ``(ok)?``,
    ``$|ready``): in any text, so a wait for it ends at once. A slip, surely."""
    return all(regex.search(text) for text in ("", "a", "\n"))


def quoted(text: str) -> str:
    """``text`` as it is written in a cast file: between single quotes, as a TOML literal
    string holds a regex, its backslashes single (``'port (\\d+)'``, not repr's doubled
    ones, which cannot be pasted back); repr's form when it holds a quote or a control
    character."""
    return f"'{text}'" if "'" not in text and text.isprintable() else repr(text)


def toml_value(value: object) -> str:
    """``value`` as a cast file writes it (``true``, ``{ A = 1 }``, ``'\\d+'``), for
    messages about a value that came from one: Python's repr would show ``True``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quoted(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(toml_value, value)) + "]"
    if isinstance(value, dict):
        pairs = (f"{k if re.fullmatch(r'[A-Za-z0-9_-]+', k) else quoted(k)} = {toml_value(v)}"
                 for k, v in value.items())
        return "{ " + ", ".join(pairs) + " }" if value else "{}"
    return str(value)  # (numbers; dates and times as TOML writes them)


@functools.lru_cache(maxsize=4096)
def split_command(cmd: str) -> tuple[str, ...]:
    """``cmd`` split as a shell would (``ValueError`` if it cannot be): once per command,
    not again when it is checked, started and restarted.

    A command of :data:`MAX_ARGUMENT` characters or more is refused unsplit: shlex takes
    time that grows with the square of a word's length (minutes for a few megabytes).
    """
    if len(cmd) >= MAX_ARGUMENT:
        raise ValueError(f"it is {len(cmd):,} characters long; a command string must be "
                         "under 128 KiB")
    text, comments = _as_one_line(cmd)
    words = tuple(shlex.split(text))
    if not words and cmd.strip():
        raise ValueError("it is only a # comment: nothing is left to run" if comments else
                         "it is only a backslash at a line's end: nothing is left to run")
    return words


def comment_of(cmd: str) -> str | None:
    """The first ``#`` comment of ``cmd`` as a shell reads it (which :func:`split_command`
    leaves out), else None."""
    comments = _as_one_line(cmd)[1]
    return cmd[comments[0]:].partition("\n")[0] if comments else None


_SHELL_SYNTAX = re.compile(
    r"\$\(|\$\{|\$'|\$[A-Za-z_][A-Za-z0-9_]*|\$[0-9?$@!#*-]|`|&&|\|\||[;&|<>]|^~")
_MAYBE_SYNTAX = re.compile(r"[$`&|;<>~]")
_SYNTAX_KINDS = {"$(": "a command substitution", "`": "a command substitution",
                 "$'": "a string with escapes to decode",
                 "${": "a variable to expand", "$": "a variable to expand", "&&": "an operator",
                 "||": "an operator", ";": "an operator", "&": "an operator",
                 "|": "a pipe", "<": "a redirection", ">": "a redirection",
                 "~": "your home folder"}


def shell_syntax_of(cmd: str, *, first_word: bool = False) -> tuple[str, str, str] | None:
    """The first piece of ``cmd`` outside quotes that a shell would read as its own syntax
    (an operator, a redirection, an expansion, a leading ``~``), what a shell would read it
    as, and the word it is in, as written; else None. With no shell to read it, the program
    gets it as text: ``echo hi; ls`` prints ``hi; ls``. (Within double quotes, ``$`` and
    backquotes are left alone: such a word is as often meant for a program that reads it,
    ``sh -c "echo $HOME"``, as for a shell.) ``first_word``: in the program's word only."""
    if not _MAYBE_SYNTAX.search(cmd):  # (most commands: no word to scan)
        return None
    words = _raw_words(_as_one_line(cmd)[0])
    for word, plain in words[:1] if first_word else words:
        found = _SHELL_SYNTAX.search(plain)
        if found is not None:
            piece = found.group()
            kind = _SYNTAX_KINDS.get(piece) or _SYNTAX_KINDS[piece[0]]
            return piece, kind, word
    return None


def _raw_words(text: str) -> list[tuple[str, str]]:
    """``text``'s words as a shell splits them but as written (quotes kept), each with its
    characters outside quotes and escapes, the others blanked out (NUL), but for the quote
    that opens a quoted part."""
    words: list[tuple[str, str]] = []
    word: list[str] = []
    plain: list[str] = []
    quote = ""
    i, end = 0, len(text)
    while i < end:
        char = text[i]
        if not quote and char in _SHELL_BLANKS:
            if word:
                words.append(("".join(word), "".join(plain)))
                word, plain = [], []
            i += 1
            continue
        if char == "\\" and quote != "'":
            escaped = text[i:i + 2]
            word.append(escaped)
            plain.append("\0" * len(escaped))
            i += 2
            continue
        if quote:
            quote = "" if char == quote else quote
            plain.append("\0")
        elif char in "'\"":
            quote = char
            plain.append(char)  # (kept: $'...' is read by what comes before its quote)
        else:
            plain.append(char)
        word.append(char)
        i += 1
    if word:
        words.append(("".join(word), "".join(plain)))
    return words


_SHELL_BLANKS = frozenset(" \t\r\n")


def _as_one_line(cmd: str) -> tuple[str, list[int]]:
    """``cmd`` without what a shell reads before it splits words, and shlex does not: a
    backslash at a line's end, which joins the next line (also in double quotes), the
    backslash of ``\\$`` and ``\\``` in double quotes (shlex keeps it there, where a
    shell drops it: ``"home=\\$HOME"`` is ``home=$HOME``), and ``#`` comments, from a
    ``#`` that begins a word to the line's end (``a#b`` is a word); with where each comment
    began."""
    comments: list[int] = []
    if "\\" not in cmd and "#" not in cmd:
        return cmd, comments
    out: list[str] = []
    quote = ""  # the quote we are in, if any
    word_start = True
    i, end = 0, len(cmd)
    while i < end:
        char = cmd[i]
        if quote == "'":  # (nothing is special in single quotes but their end)
            quote = "" if char == "'" else quote
        elif char == "\\":
            if cmd.startswith("\n", i + 1):
                i += 2  # joined: the next line goes on this word, or begins one
                continue
            if quote == '"' and cmd[i + 1:i + 2] in ("$", "`"):
                out.append(cmd[i + 1])  # (shlex would keep the backslash)
            else:
                out.append(cmd[i:i + 2])  # the escaped character is not read again
            word_start = False
            i += 2
            continue
        elif quote:
            quote = "" if char == quote else quote
        elif char == "#" and word_start:
            comments.append(i)
            newline = cmd.find("\n", i)
            i = end if newline < 0 else newline
            continue
        elif char in "'\"":
            quote = char
        word_start = not quote and char in _SHELL_BLANKS
        out.append(char)
        i += 1
    return "".join(out), comments


@dataclass(frozen=True, slots=True)
class CastSpec:
    """The whole cast, members in declaration order."""

    procs: tuple[ProcSpec, ...]
    path: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.procs)

    def __getitem__(self, name: str) -> ProcSpec:
        for proc in self.procs:
            if proc.name == name:
                return proc
        raise KeyError(name)

    def start_waves(self) -> list[list[ProcSpec]]:
        """Members grouped by dependency depth: wave N needs only waves before it.

        Members of one wave start together; stopping goes through the waves backwards.
        """
        depth = depths({proc.name: proc.after for proc in self.procs})
        waves: list[list[ProcSpec]] = []
        for proc in self.procs:
            d = depth[proc.name]
            while len(waves) <= d:
                waves.append([])
            waves[d].append(proc)
        return waves
