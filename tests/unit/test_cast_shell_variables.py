"""Captured variables in shell scripts: values reach the shell as data only.

A shell script is the command of ``shell = true``, or the script of a command that runs a
shell with ``-c`` (``sh -c '...'``, ``["bash", "-c", "..."]``). A value comes from a
program's output, so these tests give it every piece of shell syntax (``;``, ``$(...)``,
backticks, both quotes, a newline, ``*``, ``a[$(cmd)]``, a here-document's end) and run the
real shells, dash (/bin/sh here) and bash, as the shell of the command and as a shell that
command starts: no command in the value may run, no file may be globbed or removed, and the
value must arrive intact wherever the script expands it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from pipeplex.cast import ProcSpec
from pipeplex.cast.shell import shell_script, shell_script_operand
from pipeplex.errors import SpawnError

# Each "touch" makes a file if a shell ever reads the value as code.
HOSTILE = (
    "x; touch M1 $(touch M2) `touch M3` ' ; touch M4 ; ' \" ; touch M5 ; \" "
    "\n touch M6 & touch M7 | touch M8 > M9 * ${HOME} \\ end"
)
VALUES = {
    "everything": HOSTILE,
    "star": "*",
    "semicolon": "x; touch M11",
    "substitution": "$(touch M12)",
    "backticks": "`touch M13`",
    "single-quotes": "'; touch M14; '",
    "double-quotes": '"; touch M15; "',
    "newline": "x\ntouch M16",
    "end-of-here-document": "EOF\ntouch M17\nEOF",
    "parenthesis": 'x)"; touch M18; ("',
    "esac": "a) touch M19;; esac; touch M20; case a in a",
}
SHELLS = ["/bin/sh", "/bin/bash"]
KEEP = "keep"  # a file in the member's folder: a glob of the value would find it


def run_argv(argv: Sequence[str], folder: Path) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in ``folder``, which holds only KEEP, and check that it still does:
    nothing in a value ran, was globbed or removed a file."""
    folder.mkdir()
    (folder / KEEP).write_text("")
    result = subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=10,
                            stdin=subprocess.DEVNULL)
    assert sorted(p.name for p in folder.iterdir()) == [KEEP], "a value ran as a command"
    return result


def run_shell(
    template: str, variables: dict[str, str], folder: Path, shell: str = "/bin/sh"
) -> subprocess.CompletedProcess[str]:
    """Run the ``shell = true`` member's argv, with ``shell`` in place of /bin/sh."""
    argv = ProcSpec("client", template, shell=True).argv(variables)
    return run_argv([shell if word == "/bin/sh" else word for word in argv], folder)


def brackets(value: str) -> str:
    return f"[{value}]"


# A template, and what it prints for a value. `sh` is dash, whatever the command's shell.
INTACT: dict[str, tuple[str, Callable[[str], str]]] = {
    "unquoted": ("printf '[%s]' {v}", brackets),
    "double-quoted": ("printf '[%s]' \"<{v}>\"", lambda v: f"[<{v}>]"),
    "in-a-word": ("printf '[%s]' a{v}b", lambda v: f"[a{v}b]"),
    "assignment": ("x={v}; printf '[%s]' \"$x\"", brackets),
    "for-loop": ("for x in {v}; do printf '[%s]' \"$x\"; done", brackets),
    "case-subject": ("case {v} in *) printf '[%s]' {v};; esac", brackets),
    "command-substitution": ("printf '[%s]' \"$(printf '%s' {v})\"", brackets),
    "backticks": ("printf '[%s]' \"`printf '%s' {v}`\"", brackets),
    "default-value": ("printf '[%s]' ${UNSET:-{v}}", brackets),
    "default-value-quoted": ("printf '[%s]' \"${UNSET:-{v}}\"", brackets),
    "case-in-substitution": ("printf '[%s]' \"$(case a in a) echo \"{v}\";; esac)\"", brackets),
    "case-and-subshell-in-substitution": (
        "printf '[%s]' \"$(case a in (a) (printf '%s' {v});; esac)\"", brackets),
    "after-comments": ("# don't stop\nprintf '[%s]' {v} # it's done", brackets),
    "inner-sh": ("sh -c 'printf \"[%s]\" {v}'", brackets),
    "inner-sh-double-quoted": ("sh -c 'printf \"[%s]\" \"{v}\"'", brackets),
    "inner-sh-substitution": ("sh -c 'printf \"[%s]\" \"$(printf %s {v})\"'", brackets),
    "inner-bash": ("bash -c 'printf \"[%s]\" \"{v}\"'", brackets),
    "inner-bash-default-value": ("bash -c 'printf \"[%s]\" \"${UNSET:-{v}}\"'", brackets),
    "shell-in-a-shell": ("sh -c 'sh -c '\\''printf \"[%s]\" {v}'\\'''", brackets),
    "here-document": ("cat <<EOF\n[{v}]\nEOF", lambda v: f"[{v}]\n"),
    "here-document-tabs": ("cat <<-EOF\n\t[{v}]\n\tEOF", lambda v: f"[{v}]\n"),
    "here-document-apostrophe": ("cat <<EOF\nit's\nEOF\nprintf '[%s]' \"{v}\"  # that's all",
                                 lambda v: f"it's\n[{v}]"),
    "quoted-here-document-apostrophe": (
        "cat <<'EOF'\nit's\nEOF\nprintf '[%s]' \"{v}\"", lambda v: f"it's\n[{v}]"),
    "here-document-script": ("sh <<'EOF'\nprintf '[%s]' \"{v}\"\nEOF", brackets),
    "two-here-documents": ("cat - /dev/fd/3 <<A 3<<\"B\"\n{v}\nA\n'{v}'\nB\nprintf '[%s]' {v}",
                           lambda v: f'{v}\n\'"${{PIPEPLEX_VAR_v}}"\'\n[{v}]'),
    "here-document-in-substitution": ("printf '[%s]' \"$(cat <<EOF\n{v}\nEOF\n)\"", brackets),
    "rm-unquoted": ("rm -f -- {v}; printf '[%s]' {v}", brackets),
    "rm-inner-sh": ("sh -c 'rm -f -- \"{v}\"'; printf '[%s]' {v}", brackets),
    "rm-after-here-document": (
        "cat <<EOF\nit's cleaning up\nEOF\nrm -f -- \"{v}\"   # that's the temp file\n"
        "printf '[%s]' {v}", lambda v: f"it's cleaning up\n[{v}]"),
}


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("value", VALUES.values(), ids=VALUES.keys())
@pytest.mark.parametrize(("template", "expected"), INTACT.values(), ids=INTACT.keys())
def test_hostile_value_arrives_intact_and_runs_nothing(
    tmp_path: Path, shell: str, value: str, template: str, expected: Callable[[str], str]
) -> None:
    """Unquoted, between double quotes, in $(...), backticks, ${...:-...}, a here-document,
    a case in $(...), or for a shell the command starts: the program gets the value byte for
    byte, nothing in it runs, nothing is globbed."""
    result = run_shell(template, {"v": value}, tmp_path / "work", shell)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == expected(value)


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("printf '%s' '<{who}>'", '<"${PIPEPLEX_VAR_who}">'),
        ("printf '%s' '{who}'", '"${PIPEPLEX_VAR_who}"'),
        ("printf '%s' '\"{who}\"'", '"${PIPEPLEX_VAR_who}"'),
        ("cat <<'EOF'\nhi {who}\nEOF", 'hi "${PIPEPLEX_VAR_who}"\n'),
        ("cat <<\\EOF\nhi \"{who}\"\nEOF", 'hi "${PIPEPLEX_VAR_who}"\n'),
    ],
    ids=["inside", "whole", "double-quotes-inside", "quoted-here-document",
         "backslash-here-document"],
)
def test_hostile_value_in_literal_text_stays_text(
    tmp_path: Path, shell: str, template: str, expected: str
) -> None:
    """Single quotes and a quoted here-document expand nothing: their text is written for
    another shell, and printed as it is, the expansion's text rather than the value."""
    result = run_shell(template, {"who": HOSTILE}, tmp_path / "work", shell)
    assert (result.returncode, result.stdout) == (0, expected)


@pytest.mark.parametrize("shell", SHELLS)
def test_several_values_each_in_its_own_variable(tmp_path: Path, shell: str) -> None:
    """Each variable the command uses gets its own environment variable; others do not."""
    variables = {"a": "1 2", "b": "'; touch M'", "unused": "no"}
    result = run_shell('printf "%s|%s|%s" {a} "{b}" "${PIPEPLEX_VAR_unused-none}"',
                       variables, tmp_path / "work", shell)
    assert result.stdout == "1 2|'; touch M'|none"


# Arithmetic: bash (ksh, zsh) evaluates the text of a variable there, a[$(cmd)] runs cmd.
_DUPLICATION = "a redirection to a descriptor (>&WORD, which bash expands again)"
ARITHMETIC = {
    "arithmetic": ("echo $(( {p} + 1 ))", "$((...))", "2\n"),
    "arithmetic-quoted": ('echo "$(( {p} + 1 ))"', "$((...))", "2\n"),
    "arithmetic-substitution": ("echo $(( $(echo {p}) + 1 ))", "$((...))", "2\n"),
    "arithmetic-default-value": ("echo $(( ${UNSET:-{p}} + 1 ))", "$((...))", "2\n"),
    "arithmetic-in-here-document": ("cat <<EOF\n$(( {p} + 1 ))\nEOF", "$((...))", "2\n"),
    "inner-sh": ("sh -c 'echo $(( {p} + 1 ))'", "$((...))", "2\n"),
    "inner-bash": ("bash -c 'echo $(( {p} + 1 ))'", "$((...))", "2\n"),
    "quoted-here-document-script": ("bash <<'EOF'\necho $(( {p} + 1 ))\nEOF", "$((...))",
                                    "2\n"),
    "bash-brackets": ("bash -c 'echo $[{p} + 1]'", "$[...]", "2\n"),
    "bash-command": ("bash -c '(( n = {p} + 1 )); echo $n'", "((...))", "2\n"),
    "bash-for": ("bash -c 'for ((i = {p}; i < 3; i++)); do echo $i; done'", "((...))",
                 "1\n2\n"),
    "bash-subscript": ("bash -c 'a=(5 6 7); echo ${a[{p}]}'", "an array subscript", "6\n"),
    "bash-subscript-assignment": ("bash -c 'a[{p}]=x; echo ${a[1]}'", "an array subscript",
                                  "x\n"),
    "bash-subscript-in-a-list": ("bash -c 'a=([{p}]=x); echo ${a[1]}'", "an array subscript",
                                 "x\n"),
    "bash-offset": ("bash -c 's=hello; echo ${s:{p}}'", "${name:offset}", "ello\n"),
    "bash-length": ("bash -c 's=hello; echo ${s:0:{p}}'", "${name:offset}", "h\n"),
    "duplication": ("echo 1 >&{p}", _DUPLICATION, "1\n"),
    "duplication-spaced": ("echo 1 >& {p}", _DUPLICATION, "1\n"),
    "bash-duplication": ("bash -c 'echo 1 >&\"{p}\"'", _DUPLICATION, "1\n"),
}


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("template", "where", "expected"), ARITHMETIC.values(),
                         ids=ARITHMETIC.keys())
def test_whole_number_in_arithmetic(
    tmp_path: Path, shell: str, template: str, where: str, expected: str
) -> None:
    """Where the shell evaluates arithmetic, in a script or one for a shell it starts, a
    whole number is used as the number it is (dash too: no quotes around it there)."""
    result = run_shell(template, {"p": "1"}, tmp_path / "work", shell)
    assert (result.returncode, result.stderr, result.stdout) == (0, "", expected)


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("value", ["41", "-1", "+7"])
def test_signed_whole_number_in_arithmetic(tmp_path: Path, shell: str, value: str) -> None:
    """A sign is part of a whole number."""
    result = run_shell("echo $(( {port} + 1 )) && sh -c 'echo $(( {port} + 1 ))'",
                       {"port": value}, tmp_path / "work", shell)
    assert result.stdout == f"{int(value) + 1}\n" * 2


@pytest.mark.parametrize(
    "value", [*VALUES.values(), "1+1", "x", " 1", "1\n", "", "0x10", "1.5"],
    ids=[*VALUES.keys(), "sum", "name", "space", "newline-after", "empty", "hex", "decimal"])
@pytest.mark.parametrize(("template", "where", "expected"), ARITHMETIC.values(),
                         ids=ARITHMETIC.keys())
def test_other_values_in_arithmetic_do_not_start(
    value: str, template: str, where: str, expected: str
) -> None:
    """Anything but a whole number in arithmetic fails to start, naming the variable, the
    arithmetic and the value."""
    proc = ProcSpec("client", template, shell=True)
    with pytest.raises(SpawnError) as info:
        proc.argv({"p": value})
    assert info.value.name == "client"
    assert info.value.command == template
    assert info.value.reason == (f"{{p}} is used in {where}, where the shell evaluates its "
                                 f"text, and its value {value!r} is not a whole number")


@pytest.mark.parametrize(
    "template",
    ["echo $[{p}]", "(( {p} ))", "a[{p}]=1", "echo ${a[{p}]}", "echo ${#a[{p}]}",
     "echo ${s:{p}}", "echo ${s: {p}}", "echo ${s:0:{p}}", "for ((i={p};;)); do :; done",
     "if (( {p} )); then :; fi", "x=$(( {p} ))", "echo \"${x:-$(( {p} ))}\"",
     "echo $(( a[{p}] ))", 'echo $(( "{p}" + 1 ))', "echo $( (( {p} )) )", "a=([{p}]=1)",
     "declare -a a; a+=( [{p}]=1 )", "echo ${a[@]:{p}}"],
)
def test_arithmetic_at_the_top_is_checked_too(template: str) -> None:
    """Where /bin/sh is bash, the command's own arithmetic evaluates a value too."""
    with pytest.raises(SpawnError, match="is not a whole number"):
        ProcSpec("client", template, shell=True).argv({"p": "a[$(touch M)]"})
    assert ProcSpec("client", template, shell=True).argv({"p": "-12"})[1] == "PIPEPLEX_VAR_p=-12"


@pytest.mark.parametrize(
    ("template", "script"),
    [
        ("echo {v}", 'echo "${PIPEPLEX_VAR_v}"'),
        ('echo "a {v} b"', 'echo "a ${PIPEPLEX_VAR_v} b"'),
        ("echo 'a {v} b'", "echo 'a \"${PIPEPLEX_VAR_v}\" b'"),
        ("echo 'it''s' {v}", "echo 'it''s' \"${PIPEPLEX_VAR_v}\""),
        ("sh -c 'echo \"{v}\"'", "sh -c 'echo \"${PIPEPLEX_VAR_v}\"'"),
        ("sh -c 'echo $(( {v} ))'", "sh -c 'echo $(( ${PIPEPLEX_VAR_v} ))'"),
        ('echo "$(echo {v})"', 'echo "$(echo "${PIPEPLEX_VAR_v}")"'),
        ('echo "$(f() ( echo ); echo {v})" "{v}"',
         'echo "$(f() ( echo ); echo "${PIPEPLEX_VAR_v}")" "${PIPEPLEX_VAR_v}"'),
        ('echo "$(case a in a) echo "{v}";; esac)" "{v}"',
         'echo "$(case a in a) echo "${PIPEPLEX_VAR_v}";; esac)" "${PIPEPLEX_VAR_v}"'),
        ('echo $(case a in (a|b) echo;; *) (echo) ;; esac; echo "{v}")',
         'echo $(case a in (a|b) echo;; *) (echo) ;; esac; echo "${PIPEPLEX_VAR_v}")'),
        ('echo $(echo case a in x) "{v}"', 'echo $(echo case a in x) "${PIPEPLEX_VAR_v}"'),
        ("echo $(( {v} * 2 )) {v}", 'echo $(( ${PIPEPLEX_VAR_v} * 2 )) "${PIPEPLEX_VAR_v}"'),
        ("echo $(( ({v}) )) {v}", 'echo $(( (${PIPEPLEX_VAR_v}) )) "${PIPEPLEX_VAR_v}"'),
        ("echo ${x:-{v}} \"${x:-{v}}\"",
         'echo ${x:-"${PIPEPLEX_VAR_v}"} "${x:-${PIPEPLEX_VAR_v}}"'),
        ("echo ${a[{v}]} ${s:{v}} ${s:-{v}}",
         'echo ${a[${PIPEPLEX_VAR_v}]} ${s:${PIPEPLEX_VAR_v}} ${s:-"${PIPEPLEX_VAR_v}"}'),
        ("cat <<EOF\n'{v}' \"{v}\"\nEOF\necho {v}",
         'cat <<EOF\n\'${PIPEPLEX_VAR_v}\' "${PIPEPLEX_VAR_v}"\nEOF\necho "${PIPEPLEX_VAR_v}"'),
        ("cat <<-'E F'\n\t{v} it's\n\tE F\necho {v}",
         "cat <<-'E F'\n\t\"${PIPEPLEX_VAR_v}\" it's\n\tE F\necho \"${PIPEPLEX_VAR_v}\""),
        ("cat <<<'{v}' {v}", "cat <<<'\"${PIPEPLEX_VAR_v}\"' \"${PIPEPLEX_VAR_v}\""),
        ("echo $(( 1 << 2 )) {v}", 'echo $(( 1 << 2 )) "${PIPEPLEX_VAR_v}"'),
        ("[ {v} = x ] && [[ {v} ]]", '[ "${PIPEPLEX_VAR_v}" = x ] && [[ "${PIPEPLEX_VAR_v}" ]]'),
        ("echo \\\\{v}", 'echo \\\\"${PIPEPLEX_VAR_v}"'),
        ('echo "\\"{v}"', 'echo "\\"${PIPEPLEX_VAR_v}"'),
        ("echo $# {v}", 'echo $# "${PIPEPLEX_VAR_v}"'),
        ("echo a#{v} # {v}", 'echo a#"${PIPEPLEX_VAR_v}" # {v}'),
        ("echo ${v} {x} {v}", 'echo ${v} {x} "${PIPEPLEX_VAR_v}"'),
    ],
    ids=["unquoted", "double", "single", "single-ended", "inner-double", "inner-arithmetic",
         "substitution-in-double", "nested-parentheses", "case-in-substitution",
         "case-patterns", "not-a-case", "arithmetic", "arithmetic-parentheses",
         "default-value", "subscript-offset-default", "here-document",
         "quoted-here-document", "here-string", "shift-not-here-document", "test-not-subscript",
         "escaped-backslash", "escaped-quote", "not-a-comment", "comment", "others-untouched"],
)
def test_shell_script_forms(template: str, script: str) -> None:
    """What ``{v}`` becomes follows the quoting where it stands."""
    assert shell_script(template, {"v": "1"}) == (script, ["v"])


def test_escaped_brace_stays_as_written(tmp_path: Path) -> None:
    """A backslash before the brace keeps ``{who}`` as literal text."""
    result = run_shell("printf '%s' \\{who}", {"who": HOSTILE}, tmp_path / "work")
    assert result.stdout == "{who}"


def test_messages_show_the_command_as_written() -> None:
    """A member's command_text (what messages show) is the template, not the script."""
    proc = ProcSpec("client", "echo greeting {who}", shell=True)
    assert proc.command_text == "echo greeting {who}"


def test_shell_script_without_variables_is_the_command() -> None:
    """Without a known variable the command is passed as written, and no variable."""
    assert shell_script("echo {v} '{w}'", {}) == ("echo {v} '{w}'", [])
    assert ProcSpec("c", "echo {v}", shell=True).argv({}) == ["/bin/sh", "-c", "echo {v}"]


# A command without shell = true that runs a shell -------------------------------------


@pytest.mark.parametrize(
    ("words", "index"),
    [
        (["sh", "-c", "s"], 2),
        (["/bin/sh", "-c", "s", "name", "arg"], 2),
        (["bash", "-ec", "s"], 2),
        (["bash", "-xc", "s"], 2),
        (["bash", "-lc", "s"], 2),
        (["bash", "-euc", "s"], 2),
        (["bash", "-e", "-c", "s"], 3),
        (["bash", "-c", "-e", "s"], 3),
        (["bash", "-o", "pipefail", "-c", "s"], 4),
        (["bash", "-euo", "pipefail", "-c", "s"], 4),
        (["bash", "-c", "-o", "pipefail", "s"], 4),
        (["bash", "+o", "posix", "-c", "s"], 4),
        (["bash", "-O", "extglob", "-c", "s"], 4),
        (["bash", "--norc", "-c", "s"], 3),
        (["bash", "--rcfile", "f", "-c", "s"], 4),
        (["sh", "-c", "--", "s"], 3),
        (["sh", "-c", "-", "s"], 3),
        (["busybox", "sh", "-c", "s"], 3),
        (["/usr/bin/dash", "-c", "s"], 2),
        (["zsh", "-c", "s"], 2),
        (["ksh", "-c", "s"], 2),
        (["mksh", "-c", "s"], 2),
        (["ash", "-c", "s"], 2),
        (["sh", "script.sh", "-c"], None),
        (["sh", "script.sh", "{v}"], None),
        (["sh", "-s", "x"], None),
        (["sh", "-c"], None),
        (["sh", "+c", "s"], None),
        (["python3", "-c", "s"], None),
        (["timeout", "5", "sh", "-c", "s"], None),
        (["busybox", "ls", "-c"], None),
        (["fish", "-c", "s"], None),
        (["shell", "-c", "s"], None),
        ([], None),
    ],
)
def test_shell_script_operand(words: list[str], index: int | None) -> None:
    """The script of a POSIX shell run with -c: the first operand after the options."""
    assert shell_script_operand(words) == index


def test_shell_without_shell_true_gets_values_in_its_environment() -> None:
    """``sh -c '...'`` without shell = true: its script is a shell script too, the other
    arguments get their values as they are."""
    value = "x; touch M"
    proc = ProcSpec("c", "sh -c 'echo hello {who}'")
    assert proc.argv({"who": value}) == [
        "/usr/bin/env", f"PIPEPLEX_VAR_who={value}", "sh", "-c",
        'echo hello "${PIPEPLEX_VAR_who}"']
    proc = ProcSpec("c", ("bash", "-eu", "-c", "echo {v} \"$1\"", "{name}", "{v}"))
    assert proc.argv({"v": value, "name": "n"}) == [
        "/usr/bin/env", f"PIPEPLEX_VAR_v={value}", "bash", "-eu", "-c",
        'echo "${PIPEPLEX_VAR_v}" "$1"', "n", value]
    proc = ProcSpec("c", ("sh", "-c", 'echo "$1"', "sh", "{v}"))
    assert proc.argv({"v": value}) == ["sh", "-c", 'echo "$1"', "sh", value]


def test_other_programs_get_values_in_their_arguments() -> None:
    """Any other program gets each value in the argument, as it is: a program that reads
    that argument as code (python3 -c, a wrapper running sh -c) runs it, as documented."""
    value = "'); import os; os.system('touch M'); print('"
    assert ProcSpec("c", "python3 -c \"print('{v}')\"").argv({"v": value}) == [
        "python3", "-c", f"print('{value}')"]
    assert ProcSpec("c", "timeout 5 sh -c 'echo {v}'").argv({"v": value}) == [
        "timeout", "5", "sh", "-c", f"echo {value}"]


def test_shell_without_shell_true_in_arithmetic_does_not_start() -> None:
    """The whole-number rule holds for its script too."""
    proc = ProcSpec("client", ("bash", "-c", "echo $(( {p} + 1 ))"))
    with pytest.raises(SpawnError) as info:
        proc.argv({"p": "a[$(touch M)]"})
    assert info.value.reason == ("{p} is used in $((...)), where the shell evaluates its "
                                 "text, and its value 'a[$(touch M)]' is not a whole number")
    assert proc.argv({"p": "4"})[-1] == "echo $(( ${PIPEPLEX_VAR_p} + 1 ))"


NOT_SHELL_TRUE: dict[str, tuple[str | tuple[str, ...], Callable[[str], str]]] = {
    "string": ("sh -c 'printf \"[%s]\" {v}'", brackets),
    "string-double-quoted": ("sh -c 'printf \"[%s]\" \"{v}\"'", brackets),
    "list": (("bash", "-c", "printf '[%s]' {v}"), brackets),
    "options-before": ("sh -eu -c 'printf \"[%s]\" \"{v}\"'", brackets),
    "clustered": ("bash -ec 'printf \"[%s]\" {v}'", brackets),
    "option-with-argument": ("bash -o pipefail -c 'printf \"[%s]\" {v} | cat'", brackets),
    "positional-argument": ("/bin/sh -c 'printf \"[%s]\" \"$1\"' sh {v}", brackets),
    "rm": ("sh -c 'rm -f -- {v}; printf \"[%s]\" {v}'", brackets),
    "here-document": (("sh", "-c", "cat <<EOF\n[{v}]\nEOF"), lambda v: f"[{v}]\n"),
}


@pytest.mark.parametrize("value", VALUES.values(), ids=VALUES.keys())
@pytest.mark.parametrize(("cmd", "expected"), NOT_SHELL_TRUE.values(), ids=NOT_SHELL_TRUE.keys())
def test_hostile_value_in_a_shell_without_shell_true(
    tmp_path: Path, value: str, cmd: str | tuple[str, ...], expected: Callable[[str], str]
) -> None:
    """A shell run with -c by a command without shell = true: the value arrives intact,
    and nothing in it runs or is globbed."""
    result = run_argv(ProcSpec("client", cmd).argv({"v": value}), tmp_path / "work")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == expected(value)


@pytest.mark.skipif(shutil.which("busybox") is None, reason="busybox is not installed")
def test_busybox_sh(tmp_path: Path) -> None:
    """``busybox sh -c`` is a shell too."""
    result = run_argv(ProcSpec("client", "busybox sh -c 'printf \"[%s]\" {v}'").argv(
        {"v": HOSTILE}), tmp_path / "work")
    assert result.stdout == f"[{HOSTILE}]"


@pytest.mark.parametrize("value", ["a[$(touch M)]", "x[1 `touch M`]", "[$(id)]",
                                   "a[b[0]+$(touch M)]", "a[b[0]+`touch M`]",
                                   'a["]"$(touch M)]', "a[']'$(touch M)]", "a[${x:-]}$(touch M)]",
                                   "a[\\]$(touch M)]", "a[\\044(touch M)${n@P}]"])
@pytest.mark.parametrize("template", ["echo {v}", "echo \"{v}\"", "sh -c 'echo {v}'",
                                      "cat <<EOF\n{v}\nEOF"])
def test_a_subscript_holding_a_command_never_reaches_a_shell(template: str, value: str) -> None:
    """A net under the scanner: bash runs the command of ``a[$(cmd)]`` wherever the script
    uses the value in arithmetic, which the scanner may not see (X={v}; $((X))): such a
    value is refused in every context, naming it."""
    with pytest.raises(SpawnError, match=r"an array subscript with a command in it"):
        ProcSpec("client", template, shell=True).argv({"v": value})
    for harmless in ("[::1]:8080", "] $(x) [", "$(x) [1]"):
        assert ProcSpec("client", template, shell=True).argv({"v": harmless})


@pytest.mark.parametrize("script", [
    'test -v "seen[{v}]"', 'unset "a[{v}]"', 'unset -v "a[{v}]"', '[ -v "a[{v}]" ]',
    'unset "a"[{v}]', 'printf -v "a[{v}]" %s x', 'read "a[{v}]" <<< x', 'declare "a[{v}]=1"',
    "unset a\\[{v}\\]", '[[ -v "a[{v}]" ]]'])
def test_a_value_with_a_command_never_stands_in_a_quoted_subscript(script: str) -> None:
    """bash finds the subscript of test -v, unset, declare, printf -v and read after quote
    removal, and expands its text again: a command in the value runs. A value with a $ or
    a backtick after a [ in its word is refused; a plain one, and such a value elsewhere,
    pass."""
    spec = ProcSpec("u", ["bash", "-c", script])
    with pytest.raises(SpawnError, match=r"stands after a \[ in its word"):
        spec.argv({"v": "$(touch M)"})
    with pytest.raises(SpawnError, match=r"stands after a \[ in its word"):
        spec.argv({"v": "`touch M`"})
    assert spec.argv({"v": "key-1"})
    assert ProcSpec("u", ["bash", "-c", 'echo "[{v}]" "{v}"']).argv({"v": "] $(x)"})
    assert ProcSpec("u", ["bash", "-c", 'echo "a[1]" "{v}"']).argv({"v": "$(x)"})


# Where the shell's quoting is easy to misread: each template uses the value quoted, or where
# it must stay one word, after such a place; the value arrives intact, KEEP survives.
MISREAD: dict[str, tuple[str, Callable[[str], str], list[str]]] = {
    "quote-in-pattern": (
        "x='\"ab'; x=\"${x#'\"'}\"; rm -f -- {v}; printf '[%s]' \"$x\" {v}",
        lambda v: f"[ab][{v}]", SHELLS),
    "quote-in-suffix-pattern": (
        "x='ab\"'; x=\"${x%'\"'}\"; rm -f -- {v}; printf '[%s]' \"$x\" {v}",
        lambda v: f"[ab][{v}]", SHELLS),
    "quote-in-longest-pattern": (
        "x=\"${UNSET##'\"'}\"; rm -f -- {v}; printf '[%s]' {v}", brackets, SHELLS),
    "quote-in-replacement": (
        "x=a; x=\"${x/a/'\"'}\"; rm -f -- {v}; printf '[%s]' \"$x\" {v}",
        lambda v: f'["][{v}]', ["/bin/bash"]),
    "here-document-closed-with-parenthesis": (
        "b=$(cat <<EOF\nhi\nEOF)\nrm -f -- {v}; printf '[%s]' \"$b\" {v}",
        lambda v: f"[hi][{v}]", ["/bin/bash"]),
    "here-document-closed-with-backtick": (
        "b=`cat <<EOF\nhi\nEOF`\nrm -f -- {v}; printf '[%s]' \"$b\" {v}",
        lambda v: f"[hi][{v}]", SHELLS),
    "continued-here-document-delimiter": (
        "cat <<EOF\nhi\nEO\\\nF\nrm -f -- {v}; printf '[%s]' {v}",
        lambda v: f"hi\n[{v}]", ["/bin/bash"]),
    "continued-line-before-case": (
        "printf '[%s]' \"$(true; \\\ncase a in a) rm -f -- {v}; printf '<%s>' {v};; esac)\"",
        lambda v: f"[<{v}>]", SHELLS),
    "comment-after-escaped-space": (
        "printf '[%s]' a\\ #\"\n\"{v}\"\n\"; rm -f -- \"{v}\"", lambda v: f"[a #\n{v}\n]",
        SHELLS),
    "comment-after-escaped-semicolon": (
        "printf '[%s]' \\;#\"\n\"{v}\"\n\"; rm -f -- \"{v}\"", lambda v: f"[;#\n{v}\n]",
        SHELLS),
    "quoted-here-document-keeps-continuation": (
        "cat <<'EOF'\nEO\\\nF\nEOF\nrm -f -- {v}; printf '[%s]' {v}",
        lambda v: f"EO\\\nF\n[{v}]", SHELLS),
}


@pytest.mark.parametrize("value", ["*", "a b", "keep *"])
@pytest.mark.parametrize(("template", "expected", "shells"), MISREAD.values(), ids=MISREAD.keys())
def test_value_stays_one_word_where_quoting_is_easy_to_misread(
    tmp_path: Path, value: str, template: str, expected: Callable[[str], str], shells: list[str]
) -> None:
    """Quotes in ``${x#'...'}`` (which quote there, even between double quotes), a
    here-document that ends at ``EOF)``, continuation lines, ``#`` after an escaped
    character: the scanner reads them as the shell does."""
    for shell in shells:
        result = run_shell(template, {"v": value}, tmp_path / shell.rpartition("/")[2], shell)
        assert result.stdout == expected(value), result.stderr


@pytest.mark.parametrize(
    ("template", "where"),
    [
        ("echo $\\\n(( {v} + 1 ))", "$((...))"),
        ("(\\\n( {v} > 1 ))", "((...))"),
        ("a=(1 2); echo ${a\\\n[{v}]}", "an array subscript"),
        ("x=$(cat <<EOF\nhi\nEOF)\n(( {v} > 0 ))", "((...))"),
        ("echo \"${1#'\"'}\"; (( {v} > 0 ))", "((...))"),
        ("echo a\\ #x\"\n\"\n(( {v} > 0 ))\n# \"", "((...))"),
    ],
)
def test_arithmetic_after_a_misreadable_place_is_seen(template: str, where: str) -> None:
    """Continuation lines and the rest are read as the shell reads them, so arithmetic
    after them is arithmetic."""
    with pytest.raises(ValueError, match=re.escape(f"is used in {where}")):
        shell_script(template, {"v": "x"})


def test_continuation_lines_are_written_as_they_are() -> None:
    """The script is the command as written, but for its variables."""
    template = "echo \\\n{v} \"a\\\n{v}\" '\\\n{v}' $(( \\\n{v} )) {v}\\\n{v}\\\n"
    assert shell_script(template, {"v": "1"}) == (
        'echo \\\n"${PIPEPLEX_VAR_v}" "a\\\n${PIPEPLEX_VAR_v}" \'\\\n"${PIPEPLEX_VAR_v}"\' '
        '$(( \\\n${PIPEPLEX_VAR_v} )) "${PIPEPLEX_VAR_v}"\\\n"${PIPEPLEX_VAR_v}"\\\n', ["v"])
