"""ProcSpec and CastSpec: variables, argument vectors and start order."""

from __future__ import annotations

import subprocess

import pytest

from pipeplex.cast import CastSpec, ProcSpec
from pipeplex.cast.spec import MAX_ARGUMENT, expand, split_command, variables_in


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("serve --port {port}", {"port"}),
        ("{host}:{port}/{_x9}", {"host", "port", "_x9"}),
        ("${HOME}/bin", set()),
        ("{9lives} { port } {a-b} {}", set()),
        ("plain", set()),
    ],
    ids=["one", "several", "shell-style", "not-names", "none"],
)
def test_variables_in(text: str, names: set[str]) -> None:
    """Only ``{identifier}`` counts; ``${NAME}`` and other braces do not."""
    assert variables_in(text) == names


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("--port={port}", "--port=8080"),
        ("{host}:{port}", "localhost:8080"),
        ("${HOME}/{port}", "${HOME}/8080"),
        ("print(f'{i}') {port}", "print(f'{i}') 8080"),
        ("{ port }", "{ port }"),
        ("}{", "}{"),
        ("no braces", "no braces"),
    ],
    ids=["one", "two", "shell", "unknown-name", "spaced", "stray", "plain"],
)
def test_expand(text: str, expanded: str) -> None:
    """expand substitutes known variables and leaves every other brace as written."""
    assert expand(text, {"port": "8080", "host": "localhost"}) == expanded


def test_expand_does_not_rescan_values() -> None:
    """A value containing braces is inserted as is, not expanded again."""
    assert expand("{a}", {"a": "{b}", "b": "no"}) == "{b}"


def test_expand_leaves_names_without_a_value() -> None:
    """A name without a value stays as literal text."""
    assert expand("--port {port}", {}) == "--port {port}"


class TestArgv:
    def test_string_cmd_is_split_then_substituted(self) -> None:
        """Variables are substituted per argument: a value with spaces stays one argument."""
        proc = ProcSpec("c", 'client --msg "{msg}" {msg} --port={port}')
        argv = proc.argv({"msg": "hi there; rm -rf /", "port": "80"})
        assert argv == ["client", "--msg", "hi there; rm -rf /", "hi there; rm -rf /", "--port=80"]

    def test_list_cmd_substitutes_each_word(self) -> None:
        """A list cmd keeps its words and substitutes inside each."""
        proc = ProcSpec("c", ("echo", "{a}", "x{a}y", "{b}"))
        assert proc.argv({"a": "1 2"}) == ["echo", "1 2", "x1 2y", "{b}"]

    def test_shell_cmd_runs_through_sh(self) -> None:
        """shell = true gives ``/bin/sh -c`` with the command text as written."""
        proc = ProcSpec("c", "echo {a} | tr a b", shell=True)
        assert proc.argv() == ["/bin/sh", "-c", "echo {a} | tr a b"]
        assert proc.argv({"b": "x"}) == ["/bin/sh", "-c", "echo {a} | tr a b"]

    def test_shell_cmd_gets_values_in_its_environment(self) -> None:
        """A variable in a shell command reaches the shell in its environment, never in
        its script (tests/unit/test_cast_shell_variables.py runs it)."""
        proc = ProcSpec("c", "echo {a} | tr a b", shell=True)
        assert proc.argv({"a": "x; y"}) == [
            "/usr/bin/env", "PIPEPLEX_VAR_a=x; y",
            "/bin/sh", "-c", 'echo "${PIPEPLEX_VAR_a}" | tr a b',
        ]

    def test_no_variables_needed(self) -> None:
        """A command without variables needs no mapping."""
        assert ProcSpec("c", "ls -l '/tmp/a b'").argv() == ["ls", "-l", "/tmp/a b"]

    def test_command_text(self) -> None:
        """command_text shows a list cmd as a shell would need it typed."""
        assert ProcSpec("c", ("echo", "a b")).command_text == "echo 'a b'"
        assert ProcSpec("c", "echo 'a b'").command_text == "echo 'a b'"


def test_referenced_variables_cover_cmd_env_and_input() -> None:
    """Variables count wherever they are substituted: cmd, env and input."""
    proc = ProcSpec("c", "run {a}", env={"X": "{b}", "Y": "${HOME}"}, input=("hello {c}",))
    assert proc.referenced_variables() == {"a", "b", "c"}


def test_a_shell_script_uses_only_the_variables_it_would_substitute() -> None:
    """As argv reads it: a backslash keeps ``\\{x}``, and a comment is no use."""
    shell = ProcSpec("c", "echo \\{a} {b} # {c}", shell=True)
    assert shell.referenced_variables() == {"b"}
    operand = ProcSpec("c", ("sh", "-c", "echo \\{a} $(( {b} + 1 ))", "{d}"))
    assert operand.referenced_variables() == {"b", "d"}


def test_captured_variables_are_named_groups() -> None:
    """A ready pattern's named groups are the variables it captures."""
    proc = ProcSpec("db", "x", ready=r"(?P<host>\S+):(?P<port>\d+) (\w+)")
    assert proc.captured_variables() == {"host", "port"}
    assert ProcSpec("db", "x").captured_variables() == set()


def names(waves: list[list[ProcSpec]]) -> list[list[str]]:
    return [[p.name for p in wave] for wave in waves]


def test_start_waves_group_by_dependency_depth() -> None:
    """Each wave needs only earlier waves; members keep declaration order inside a wave."""
    cast = CastSpec(
        (
            ProcSpec("web", "w", after=("api", "db")),
            ProcSpec("db", "d"),
            ProcSpec("api", "a", after=("db",)),
            ProcSpec("cache", "c"),
            ProcSpec("worker", "k", after=("db",)),
        )
    )
    assert names(cast.start_waves()) == [["db", "cache"], ["api", "worker"], ["web"]]


def test_start_waves_when_two_members_wait_for_one() -> None:
    """A member that two others start after, one of them through the other, is no circle."""
    cast = CastSpec(
        (
            ProcSpec("web", "w", after=("db", "api")),
            ProcSpec("db", "d"),
            ProcSpec("api", "a", after=("db",)),
        )
    )
    assert names(cast.start_waves()) == [["db"], ["api"], ["web"]]


def test_start_waves_of_a_circle_built_in_code() -> None:
    """A circle that validate_cast would have refused is an error here too, not a hang."""
    cast = CastSpec((ProcSpec("a", "x", after=("b",)), ProcSpec("b", "y", after=("a",))))
    with pytest.raises(ValueError, match=r"^a starts after itself, through its after$"):
        cast.start_waves()


def test_split_command_refuses_a_string_too_long_for_linux_unsplit() -> None:
    """Splitting takes time that grows with the square of a word's length: a string that
    Linux would refuse anyway is refused at once."""
    assert split_command("echo " + "x" * (MAX_ARGUMENT - 6)) == ("echo", "x" * (MAX_ARGUMENT - 6))
    with pytest.raises(ValueError, match=r"^it is 131,072 characters long; a command string "
                                         r"must be under 128 KiB$"):
        split_command("echo " + "x" * (MAX_ARGUMENT - 5))


@pytest.mark.parametrize(
    "cmd",
    [
        "prog --port 8080 \\\n    --name x",
        'prog "a \\\nb" \'c \\\nd\'',
        "prog one # a comment",
        "prog a#b '#c' \"#d\" \\#e #f",
        "prog \\\\\n#next",
        "prog x\\\n#y",
        "prog 'it''s' \"a'#b\" #c",
        "prog \"a\\\"#b\" c",
        "prog \"home=\\$HOME\" \"a\\`b\" \"c\\\\\\$d\" 'e\\$f' g\\$h",
    ],
    ids=["continued-lines", "continued-in-quotes", "comment", "not-comments",
         "escaped-backslash", "joined-word", "quotes", "escaped-quote", "dollar-in-quotes"],
)
def test_split_command_splits_as_the_shell_does(cmd: str) -> None:
    """A backslash at a line's end joins the lines, a word beginning with ``#`` begins a
    comment, and ``\\$`` in double quotes is ``$``, as /bin/sh reads them (shlex alone keeps
    the first two as arguments, and the backslash of the last)."""
    script = f"f() {{ for a; do printf '%s\\0' \"$a\"; done; }}; f {cmd}"
    words = subprocess.run(["sh", "-c", script], capture_output=True, check=True,
                           timeout=10).stdout
    assert split_command(cmd) == tuple(word.decode() for word in words.split(b"\0")[:-1])


@pytest.mark.parametrize(("cmd", "why"), [
    ("# server --old", "it is only a # comment"),
    ("  \\\n", "it is only a backslash at a line's end"),
])
def test_a_command_with_nothing_left_to_run_is_refused(cmd: str, why: str) -> None:
    """A command commented out is no command (it crashed the checks, which took its first
    word)."""
    with pytest.raises(ValueError, match=f"^{why}: nothing is left to run$"):
        split_command(cmd)


def test_start_waves_without_dependencies() -> None:
    """Independent members all start in the first wave; an empty cast has no waves."""
    cast = CastSpec((ProcSpec("a", "x"), ProcSpec("b", "y")))
    assert names(cast.start_waves()) == [["a", "b"]]
    assert CastSpec(()).start_waves() == []


def test_cast_lookup_by_name() -> None:
    """A cast gives its members by name and lists names in order."""
    a, b = ProcSpec("a", "x"), ProcSpec("b", "y")
    cast = CastSpec((a, b))
    assert cast.names == ("a", "b")
    assert cast["b"] is b
    with pytest.raises(KeyError):
        cast["c"]
