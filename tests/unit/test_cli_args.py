"""The command line: options and arguments in any order, usage errors said by the command
that has them (status 2), and values checked before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeplex.cli import _command_parser, main


def _usage_error(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main(list(words))
    assert exited.value.code == 2
    return capsys.readouterr().err


def test_options_and_arguments_come_in_any_order(tmp_path: Path) -> None:
    run = _command_parser("run").parse_intermixed_args(
        ["-p", "a=echo one", "cast.toml", "--grace", "0.5", "--proc=b=echo two", "--no-color"])
    assert run.procs == ["a=echo one", "b=echo two"]
    assert run.cast_file == Path("cast.toml")
    assert run.grace == 0.5 and run.no_color
    send = _command_parser("send").parse_intermixed_args(
        ["srv", "hello", "--run-dir", str(tmp_path), "world", "-n"])
    assert (send.name, send.text, send.run_dir, send.no_newline) == (
        "srv", ["hello", "world"], tmp_path, True)


def test_text_after_a_double_dash_may_start_with_one() -> None:
    send = _command_parser("send").parse_intermixed_args(["srv", "--", "-v", "--eof"])
    assert send.text == ["-v", "--eof"] and not send.eof


def test_a_usage_error_is_said_by_the_command_that_has_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(capsys, "run", "-p", "a=true", "--bogus")
    assert "pipeplex run: error: unrecognized arguments: --bogus" in err
    err = _usage_error(capsys, "run", "-p")
    assert "pipeplex run: error: argument -p/--proc: expected one argument" in err


def test_long_options_are_never_guessed_from_a_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    assert "unrecognized arguments: --pro" in _usage_error(capsys, "run", "--pro", "a=true")


@pytest.mark.parametrize(
    ("words", "said"),
    [
        (["run", "-p", "a=true", "--grace", "0"], "0.0 is not a positive number of seconds"),
        (["run", "-p", "a=true", "--grace", "soon"], "'soon' is not a number of seconds"),
        (["run", "-p", "a=true", "--color", "blue"], "invalid choice: 'blue'"),
        (["signal", "a", "BOGUS"], "unknown signal 'BOGUS'"),
        (["replay", "/nonexistent/t.jsonl"], "'/nonexistent/t.jsonl' does not exist"),
        (["bogus"], "invalid choice: 'bogus'"),
        (["send"], "the following arguments are required: NAME"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_value(
        capsys: pytest.CaptureFixture[str], words: list[str], said: str) -> None:
    assert said in _usage_error(capsys, *words)


def test_a_folder_is_no_cast_file_and_a_file_no_run_folder(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = _usage_error(capsys, "run", str(tmp_path))
    assert f"argument CAST_FILE: '{tmp_path}' is a folder, not a file" in err
    plain = tmp_path / "plain"
    plain.write_text("")
    err = _usage_error(capsys, "status", "--run-dir", str(plain))
    assert f"argument --run-dir: '{plain}' is a file, not a folder" in err


def test_no_command_shows_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    err = _usage_error(capsys)
    for command in ("run", "send", "status", "signal", "restart", "stop", "attach", "test",
                    "replay", "demo"):
        assert f"\n  {command} " in err


def test_the_client_commands_load_neither_the_engine_nor_the_cast() -> None:
    """``pipeplex send`` in a script's loop pays for its imports at each call."""
    import subprocess
    import sys

    code = ("import sys; from pipeplex import cli; cli._command_parser('send'); "
            "print(sorted(m for m in sys.modules if m.startswith(('pipeplex.cast', "
            "'pipeplex._engine', 'asyncio', 'click'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60).stdout.strip()
    assert loaded == "[]"
