"""What a cast file can hold that no one means, refused or loaded without hanging: a named
pipe given as the file, a command too long for Linux, a thousand members, an ``after``
chain a thousand deep, TOML nested past Python's stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeplex.cast import CastSpec, ProcSpec, load_cast, parse_proc_option
from pipeplex.cast.checks import validate_cast
from pipeplex.cast.spec import MAX_ARGUMENT
from pipeplex.errors import CastError

PIPEPLEX = [sys.executable, "-m", "pipeplex"]
DEADLINE = 30.0
"""A pipeplex that waits instead of refusing is killed by then, and the test fails."""


def pipeplex(*args: str | os.PathLike[str]) -> subprocess.CompletedProcess[str]:
    """Run ``pipeplex ARGS`` to the end, as a user would: a refusal is status 2, one line."""
    return subprocess.run([*PIPEPLEX, *map(str, args)], capture_output=True, text=True,
                          timeout=DEADLINE, stdin=subprocess.DEVNULL)


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """What pipeplex said (``pipeplex test`` reports on stdout) when it refused to start."""
    said = result.stdout + result.stderr
    assert "Traceback" not in said
    assert result.returncode == 2, said
    return said


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cast.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error(tmp_path: Path, text: str) -> tuple[CastError, Path]:
    path = write(tmp_path, text)
    with pytest.raises(CastError) as info:
        load_cast(path)
    return info.value, path


@pytest.mark.parametrize(("command", "what"), [("run", "cast file"), ("test", "scenario file")])
def test_a_named_pipe_is_refused_not_waited_on(tmp_path: Path, command: str, what: str) -> None:
    """``pipeplex run run/all.in`` (a member's pipe, given by mistake) says what it is at
    once: opening it to read would wait for a writer, with Ctrl-C held off."""
    fifo = tmp_path / "all.in"
    os.mkfifo(fifo, 0o600)
    stderr = refused(pipeplex(command, fifo))
    assert f"{fifo}: this is a named pipe, not a {what}" in stderr


class TestCommandLength:
    def test_a_command_string_of_128_kib_is_refused_at_its_line(self, tmp_path: Path) -> None:
        """One byte under 128 KiB loads; 128 KiB is refused at load, not when Linux refuses
        it as the member starts."""
        word = "x" * (MAX_ARGUMENT - 1 - len("echo "))
        assert load_cast(write(tmp_path, f'[procs.web]\ncmd = "echo {word}"\n'))
        err, path = error(tmp_path, f'# long\n[procs.web]\ncmd = "echo {word}x"\n')
        assert err.source == f"{path}:3"
        assert err.message == ("web: cmd is 131,072 bytes long; a command string must be "
                               "under 128 KiB, as Linux refuses an argument that long: write "
                               "a longer command as a list of arguments, each under 128 KiB")

    def test_bytes_are_counted_not_characters(self, tmp_path: Path) -> None:
        """Linux counts bytes: 65,536 two-byte characters are 128 KiB."""
        err, _ = error(tmp_path, f'[procs.web]\ncmd = "echo {"é" * 65536}"\n')
        assert err.message.startswith("web: cmd is 131,077 bytes long; ")

    def test_a_shell_script_is_one_argument(self, tmp_path: Path) -> None:
        """With shell = true the script is never split, and still refused."""
        err, path = error(tmp_path, f'[procs.web]\nshell = true\ncmd = "{"x" * MAX_ARGUMENT}"\n')
        assert err.source == f"{path}:3"
        assert err.message.endswith("as Linux refuses an argument that long, and a shell's "
                                    "script is one: put the script in a file and run that file")

    def test_an_argument_of_a_list_is_refused(self, tmp_path: Path) -> None:
        err, path = error(tmp_path, f'[procs.web]\ncmd = ["echo", "{"x" * MAX_ARGUMENT}"]\n')
        assert err.source == f"{path}:2"
        assert err.message == ("web: argument 2 of cmd is 131,072 bytes long, and Linux "
                               "refuses an argument of 128 KiB or more: put the text in a "
                               "file and give the program its name")

    def test_a_proc_option_is_checked_the_same(self) -> None:
        """``-p NAME=CMD`` (as the Python API takes it: a shell cannot pass one this long)
        is refused, and its source does not repeat the command."""
        with pytest.raises(CastError) as info:
            parse_proc_option("web=echo " + "x" * (5 * 2**20))
        assert info.value.source == "-p web=..."
        assert info.value.message.startswith("web: cmd is 5,242,885 bytes long; ")

    @pytest.mark.parametrize("cmd", ["x" * MAX_ARGUMENT, ("echo", "x" * MAX_ARGUMENT)],
                             ids=["string", "list"])
    def test_a_spec_built_in_code_is_checked_the_same(self, cmd: str | tuple[str, ...]) -> None:
        proc = ProcSpec("web", cmd, source="app.py")
        with pytest.raises(CastError, match=r"^app\.py: web: .* 131,072 bytes long"):
            validate_cast(CastSpec((proc,)))

    def test_a_huge_command_is_refused_by_the_cli(self, tmp_path: Path) -> None:
        """Refused before it is split (which took minutes), with status 2."""
        path = write(tmp_path, f'[procs.web]\ncmd = "echo {"x" * (5 * 2**20)}"\n')
        stderr = refused(pipeplex("run", path, "--no-console"))
        assert f"{path}:2: web: cmd is 5,242,885 bytes long;" in stderr


def chain(n: int, *, back_to: int | None = None) -> str:
    """A cast of ``n`` members, each after the next; the last after ``back_to`` if given."""
    lines = []
    for i in range(n):
        after = i + 1 if i + 1 < n else back_to
        lines += [f"[procs.m{i}]", 'cmd = "true"'] + ([f'after = "m{after}"']
                                                       if after is not None else [])
    return "\n".join(lines) + "\n"


class TestManyMembers:
    def test_an_after_chain_a_thousand_deep_loads(self, tmp_path: Path) -> None:
        """Deeper than Python's stack: checked and ordered without recursion."""
        cast = load_cast(write(tmp_path, chain(1000)))
        waves = cast.start_waves()
        assert len(waves) == 1000
        assert [wave[0].name for wave in waves[:2]] == ["m999", "m998"]

    def test_a_circle_a_thousand_members_round_is_found(self, tmp_path: Path) -> None:
        err, path = error(tmp_path, chain(1000, back_to=0))
        loop = " -> ".join(f"m{i}" for i in (*range(1000), 0))
        assert err.message == (f"members wait for each other in a circle: {loop}; remove one "
                               "of them from the after of the member before it")
        assert err.source == f"{path}:3"

    def test_a_circle_at_the_end_of_a_long_chain_is_found(self, tmp_path: Path) -> None:
        err, path = error(tmp_path, chain(1000, back_to=997))
        assert err.message.startswith("members wait for each other in a circle: "
                                      "m997 -> m998 -> m999 -> m997; remove 'm998' from m997's "
                                      f"after (line {997 * 3 + 3}) or ")
        assert err.source == f"{path}:{997 * 3 + 3}"

    def test_every_key_of_a_thousand_members_has_its_line(self, tmp_path: Path) -> None:
        """Each key is located in the file (from one reading of it) at its own line."""
        lines = []
        for i in range(1000):
            lines += [f"[procs.m{i}]", f'cmd = "echo {i}"', f'env = {{ N = "{i}" }}',
                      f"ready = 'ready {i} (?P<v{i}>\\d+)'"]
            if i:
                lines.append(f'after = ["m{i - 1}"]')
        lines.append('[procs.last]\ncmd = "echo {v998}"\nafter = "m999"')
        path = write(tmp_path, "\n".join(lines) + "\n")
        cast = load_cast(path)
        assert cast["m0"].source == f"{path}:1"
        assert cast["m999"].source == f"{path}:{999 * 5}"
        assert cast["m999"].key_sources == {key: f"{path}:{999 * 5 + n}" for n, key in
                                            enumerate(("cmd", "env", "ready", "after"), 1)}
        assert cast["last"].argv({"v998": "7"}) == ["echo", "7"]


@pytest.mark.parametrize("value", ["[" * 2000 + "]" * 2000, "1" * 5000], ids=["deep", "digits"])
def test_toml_python_cannot_read_is_refused_by_the_cli(tmp_path: Path, value: str) -> None:
    """No traceback: status 2 and the file named, as for any TOML error."""
    path = write(tmp_path, f'[procs.web]\ncmd = "true"\nx = {value}\n')
    stderr = refused(pipeplex("run", path, "--no-console"))
    assert f"{path}: cannot read this TOML: " in stderr
