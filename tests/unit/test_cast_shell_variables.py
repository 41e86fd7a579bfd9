"""Captured variables in ``shell = true`` commands: values reach the shell as data only.

A value comes from a program's output, so these tests give it every piece of shell syntax
(``;``, ``$(...)``, backticks, both quotes, a newline, ``&``, ``|``, ``>``) and run the real
shell: no command in the value may run, and the value must arrive intact wherever the
template is unquoted or between double quotes.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pipeplex.cast import ProcSpec
from pipeplex.cast.spec import shell_script
from pipeplex.errors import SpawnError

# Each "touch" makes a file if the shell ever reads the value as code.
HOSTILE = (
    "x; touch M1 $(touch M2) `touch M3` ' ; touch M4 ; ' \" ; touch M5 ; \" "
    "\n touch M6 & touch M7 | touch M8 > M9 * ${HOME} \\ end"
)
SHELLS = ["/bin/sh", *(["bash"] if shutil.which("bash") else [])]


def run_shell(
    template: str, variables: dict[str, str], folder: Path, shell: str = "/bin/sh"
) -> subprocess.CompletedProcess[str]:
    """Run the member's argv (with ``shell`` in place of /bin/sh) in an empty ``folder``."""
    folder.mkdir()
    argv = ProcSpec("client", template, shell=True).argv(variables)
    argv = [shell if word == "/bin/sh" else word for word in argv]
    result = subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=10,
                            stdin=subprocess.DEVNULL)
    assert sorted(p.name for p in folder.iterdir()) == [], "the value ran as a command"
    return result


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("printf '%s' {who}", HOSTILE),
        ("printf '%s' \"<{who}>\"", f"<{HOSTILE}>"),
        ("printf '%s' a{who}b", f"a{HOSTILE}b"),
        ("x={who}; printf '%s' \"$x\"", HOSTILE),
        ("printf '%s' \"$(printf '%s' {who})\"", HOSTILE),
        ("printf '%s' \"`printf '%s' {who}`\"", HOSTILE),
        ("printf '%s' \"${UNSET:-{who}}\"", HOSTILE),
        ("sh -c 'printf %s {who}'", HOSTILE),
        ("# don't stop\nprintf '%s' {who} # it's done", HOSTILE),
    ],
    ids=["unquoted", "double-quoted", "unquoted-in-a-word", "assignment",
         "command-substitution", "backticks", "default-value", "inner-shell",
         "after-comments"],
)
def test_hostile_value_arrives_intact_and_runs_nothing(
    tmp_path: Path, shell: str, template: str, expected: str
) -> None:
    """Unquoted, between double quotes, in $(...) or backticks, or for an inner shell:
    the program gets the value byte for byte, and nothing in it runs."""
    result = run_shell(template, {"who": HOSTILE}, tmp_path / "work", shell)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == expected


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("printf '%s' '<{who}>'", '<"${PIPEPLEX_VAR_who}">'),
        ("printf '%s' '{who}'", '"${PIPEPLEX_VAR_who}"'),
        ("printf '%s' '\"{who}\"'", '""${PIPEPLEX_VAR_who}""'),
    ],
    ids=["inside", "whole", "double-quotes-inside"],
)
def test_hostile_value_in_single_quotes_stays_text(
    tmp_path: Path, shell: str, template: str, expected: str
) -> None:
    """Between single quotes the shell expands nothing: the program gets the expansion's
    text, never the value, so nothing in the value can end the quotes and run."""
    result = run_shell(template, {"who": HOSTILE}, tmp_path / "work", shell)
    assert (result.returncode, result.stdout) == (0, expected)


@pytest.mark.parametrize("shell", SHELLS)
def test_several_values_each_in_its_own_variable(tmp_path: Path, shell: str) -> None:
    """Each variable the command uses gets its own environment variable; others do not."""
    variables = {"a": "1 2", "b": "'; touch M'", "unused": "no"}
    result = run_shell('printf "%s|%s|%s" {a} "{b}" "${PIPEPLEX_VAR_unused-none}"',
                       variables, tmp_path / "work", shell)
    assert result.stdout == "1 2|'; touch M'|none"


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("value", ["41", "-1", "+7"])
def test_whole_number_in_arithmetic(tmp_path: Path, shell: str, value: str) -> None:
    """In $((...)) a whole number is used as the number it is."""
    result = run_shell("echo $(( {port} + 1 ))", {"port": value}, tmp_path / "work", shell)
    assert result.stdout == f"{int(value) + 1}\n"


@pytest.mark.parametrize("value", ["a[$(touch M)]", "1+1", "x", " 1", "1\n", ""])
def test_other_values_in_arithmetic_do_not_start(value: str) -> None:
    """bash evaluates the text of a variable in $((...)) (``a[$(cmd)]`` runs cmd): anything
    but a whole number there fails to start, naming the variable and its value."""
    proc = ProcSpec("client", "echo $(( {port} + 1 ))", shell=True)
    with pytest.raises(SpawnError) as info:
        proc.argv({"port": value})
    assert info.value.name == "client"
    assert info.value.command == "echo $(( {port} + 1 ))"
    assert info.value.reason == (f"{{port}} is used in $((...)), where the shell evaluates its "
                                 f"text, and its value {value!r} is not a whole number")


def test_escaped_brace_stays_as_written(tmp_path: Path) -> None:
    """A backslash before the brace keeps ``{who}`` as literal text."""
    result = run_shell("printf '%s' \\{who}", {"who": HOSTILE}, tmp_path / "work")
    assert result.stdout == "{who}"


def test_messages_show_the_command_as_written() -> None:
    """A member's command_text (what messages show) is the template, not the script."""
    proc = ProcSpec("client", "echo greeting {who}", shell=True)
    assert proc.command_text == "echo greeting {who}"


@pytest.mark.parametrize(
    ("template", "script"),
    [
        ("echo {v}", 'echo "${PIPEPLEX_VAR_v}"'),
        ('echo "a {v} b"', 'echo "a ${PIPEPLEX_VAR_v} b"'),
        ("echo 'a {v} b'", "echo 'a \"${PIPEPLEX_VAR_v}\" b'"),
        ("echo 'it''s' {v}", "echo 'it''s' \"${PIPEPLEX_VAR_v}\""),
        ('echo "$(echo {v})"', 'echo "$(echo "${PIPEPLEX_VAR_v}")"'),
        ('echo "$(f() ( echo ); echo {v})" "{v}"',
         'echo "$(f() ( echo ); echo "${PIPEPLEX_VAR_v}")" "${PIPEPLEX_VAR_v}"'),
        ("echo $(( {v} * 2 )) {v}", 'echo $(( ${PIPEPLEX_VAR_v} * 2 )) "${PIPEPLEX_VAR_v}"'),
        ("echo $(( ({v}) )) {v}", 'echo $(( (${PIPEPLEX_VAR_v}) )) "${PIPEPLEX_VAR_v}"'),
        ("echo \\\\{v}", 'echo \\\\"${PIPEPLEX_VAR_v}"'),
        ('echo "\\"{v}"', 'echo "\\"${PIPEPLEX_VAR_v}"'),
        ("echo $# {v}", 'echo $# "${PIPEPLEX_VAR_v}"'),
        ("echo ${v} {x} {v}", 'echo ${v} {x} "${PIPEPLEX_VAR_v}"'),
    ],
    ids=["unquoted", "double", "single", "single-ended", "substitution-in-double",
         "nested-parentheses", "arithmetic", "arithmetic-parentheses", "escaped-backslash",
         "escaped-quote", "not-a-comment", "others-untouched"],
)
def test_shell_script_forms(template: str, script: str) -> None:
    """What ``{v}`` becomes follows the quoting where it stands."""
    assert shell_script(template, {"v": "1"}) == (script, ["v"])


def test_shell_script_without_variables_is_the_command() -> None:
    """Without a known variable the command is passed as written, and no variable."""
    assert shell_script("echo {v} '{w}'", {}) == ("echo {v} '{w}'", [])
    assert ProcSpec("c", "echo {v}", shell=True).argv({}) == ["/bin/sh", "-c", "echo {v}"]
