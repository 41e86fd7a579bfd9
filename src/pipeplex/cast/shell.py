"""Captured values in shell scripts: through the environment, never in the script.

A value comes from a program's output, so it may hold anything. A shell script (a ``shell =
true`` command, or the script of ``sh -c SCRIPT``) therefore never contains one: the shell gets
it in its environment (``PIPEPLEX_VAR_port``), and ``{port}`` in the script becomes an
expansion of that variable, in the form its place in the script needs, so the shell treats it
as data. See docs/cast-file.md, "Variables in a shell command".
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .variables import VAR_RE

__all__ = ("ENV_PROGRAM", "SHELL", "SHELL_VAR_PREFIX", "shell_script", "shell_script_operand")

SHELL_VAR_PREFIX = "PIPEPLEX_VAR_"
"""``{name}`` in a ``shell = true`` command reaches the shell as ``$PIPEPLEX_VAR_name``."""
SHELL = "/bin/sh"
ENV_PROGRAM = "/usr/bin/env"
"""Starts the shell with the variables it uses added to its environment."""


def shell_script(cmd: str, variables: Mapping[str, str]) -> tuple[str, list[str]]:
    """``cmd`` for ``/bin/sh -c``, each ``{name}`` of a variable made an expansion of
    ``$PIPEPLEX_VAR_name``; and the names used, sorted (the caller puts their values in
    the shell's environment).

    Whatever a value holds, it never becomes part of the script: the shell only ever sees
    it as the result of an expansion, which it does not parse as code (see
    :class:`~._shell_scanner.Scanner` for how the form is chosen, and where a value must be a
    whole number).

    Raises:
        ValueError: a value used in arithmetic is not a whole number, or the command nests
            too deeply to be read.
    """
    if not any(m[1] in variables for m in VAR_RE.finditer(cmd)):
        return cmd, []  # no value to put in (most scripts): nothing to scan
    from ._shell_scanner import Scanner  # (only for a script with a value to put in)

    try:
        script, used = Scanner(cmd, variables).result()
    except RecursionError:
        raise ValueError("the command nests $(...), quotes or ${...} too deeply for pipeplex "
                         "to see where its variables stand") from None
    for name in used:
        if _command_in_subscript(variables[name]):
            raise ValueError(
                f"{{{name}}} holds {variables[name]!r}, an array subscript with a command in "
                "it, which bash runs if the script uses the value in arithmetic anywhere; "
                "pipeplex does not pass such a value to a shell")
    for match in VAR_RE.finditer(cmd):
        value = variables.get(match[1])
        if value is not None and _EXPANDS.search(value) and _after_a_bracket(cmd, match.start()):
            raise ValueError(
                f"{{{match[1]}}} holds {value!r}, with a $ or a backtick, and stands after a "
                "[ in its word, in what bash may take for an array subscript (as "
                "test -v \"a[{...}]\" or unset \"a[{...}]\" do), where it runs a command in "
                "the value; pipeplex does not pass such a value to a shell")
    return script, used


_EXPANDS = re.compile(r"[$`]")
_WORD_END = re.compile(r"[\s;&|()<>]")


def _after_a_bracket(script: str, at: int) -> bool:
    """Whether the text at ``at`` may stand in an array subscript: after a ``[`` that no
    ``]`` closed, in its word. Quoted or escaped too (``"a[{v}]"``, ``a\\[{v}\\]``): bash
    finds the subscript of ``test -v``, ``unset``, ``declare``, ``printf -v`` and ``read``
    in the word after quote removal, and expands its text once more, a command included.
    The word starts after the last blank or operator character before it, quoted or not (a
    wider span only refuses more). A net under the scanner, as for a subscript in a value."""
    start = max((m.end() for m in _WORD_END.finditer(script, 0, at)), default=0)
    span = script[start:at]
    bracket = span.rfind("[")
    # (after a name: a[, "a"[, a\[; a lone [ is the test command or text, "[{v}]")
    return bracket > span.rfind("]") and _NAME_END.search(span[:bracket]) is not None


_NAME_END = re.compile(r"[A-Za-z0-9_][\"'\\]*\Z")


def _command_in_subscript(value: str) -> bool:
    """Whether ``value`` may hold a command inside an array subscript, as ``a[$(cmd)]``:
    bash runs ``cmd`` when it evaluates the value in arithmetic. A net under the scanner,
    whose reading of a script can be wrong in corners: the only way arithmetic turns data
    into code. Where a subscript ends is bash's to say (quotes, backslashes and ``${...}``
    hide a ``]`` from it, and ``${x@P}`` makes a command of text), so any ``$`` or backtick
    after a ``[`` counts."""
    return _SUBSCRIPT_EXPANSION.search(value) is not None


_SUBSCRIPT_EXPANSION = re.compile(r"\[.*[$`]", re.DOTALL)


# Programs whose -c runs its first operand as a POSIX shell script, also as builds named
# bash5.2, zsh-static, mksh-static, busybox.static.
_SHELL_NAME = re.compile(r"([a-z0-9]*?sh)(?:[-.]?static|[0-9][0-9.]*)?")
_BUSYBOX = re.compile(r"busybox(?:[-.]?static)?")
_SHELLS = frozenset({"sh", "bash", "rbash", "dash", "ash", "ksh", "ksh93", "mksh", "lksh",
                     "oksh", "pdksh", "posh", "yash", "zsh", "hush"})
_LONG_OPTIONS_WITH_ARGUMENT = frozenset({"--rcfile", "--init-file"})


def shell_script_operand(words: tuple[str, ...] | list[str]) -> int | None:
    """The index of the script in ``words`` if they run a POSIX shell with ``-c``
    (``sh -c SCRIPT``, ``bash -euo pipefail -c SCRIPT``, ``busybox sh -c SCRIPT``), else
    None. The script is the first operand after the options, wherever ``-c`` stands among
    them (alone or in a cluster: ``-ec``); ``-o``/``-O`` take the next word."""
    if not words:
        return None
    program = words[0].rpartition("/")[2]
    i = 1
    if _BUSYBOX.fullmatch(program) and len(words) > 1:
        program, i = words[1], 2
    shell = _SHELL_NAME.fullmatch(program)
    if shell is None or shell[1] not in _SHELLS:
        return None
    command = False
    while i < len(words):
        word = words[i]
        if word in ("-", "--"):
            i += 1
            break
        if word.startswith("--"):
            i += 2 if word in _LONG_OPTIONS_WITH_ARGUMENT else 1
        elif len(word) > 1 and word[0] in "-+":
            command = command or (word[0] == "-" and "c" in word)
            i += 1 + word.count("o") + word.count("O")
        else:
            break
    return i if command and i < len(words) else None
