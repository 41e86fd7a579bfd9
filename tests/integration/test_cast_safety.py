"""What a cast cannot be turned into: captured values that run as shell code, records
written through planted links, and mistakes that surface only once members run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .helpers import run

HOSTILE = ("x; touch M1 $(touch M2) `touch M3` ' ; touch M4 ; ' \" ; touch M5 ; \" "
           "& touch M6 | touch M7 > M8 end")


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string


def test_captured_value_never_runs_in_a_shell_command(tmp_path: Path, run_dir: Path) -> None:
    """A server prints shell syntax where a variable is captured: the client's shell
    command gets it as data, unquoted or between double quotes, and runs none of it."""
    work = tmp_path / "work"
    work.mkdir()
    server = tmp_path / "server.py"
    server.write_text(f"import sys\nprint('hello ' + {HOSTILE!r}, flush=True)\nsys.stdin.read()\n")
    cast = tmp_path / "cast.toml"
    cast.write_text(
        "[procs.server]\n"
        f"cmd = [{_toml(sys.executable)}, {_toml(str(server))}]\n"
        "ready = 'hello (?P<who>.+)'\n"
        "[procs.client]\n"
        "cmd = '''printf 'got:%s|%s\\n' {who} \"{who}\"'''\n"
        "shell = true\n"
        'after = ["server"]\n'
    )
    result = run("run", cast, "--run-dir", run_dir, "--no-console", cwd=work)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"client | got:{HOSTILE}|{HOSTILE}\n" in result.stdout
    assert sorted(p.name for p in work.iterdir()) == []


def test_transcript_through_a_planted_link_is_refused(tmp_path: Path, run_dir: Path) -> None:
    """--transcript at a symbolic link: status 2 before anything starts, the file it points
    to left as it was."""
    victim = tmp_path / "victim"
    victim.write_text("original\n")
    victim.chmod(0o644)
    link = tmp_path / "t.jsonl"
    link.symlink_to(victim)
    result = run("run", "-p", "a=echo secret", "--transcript", link, "--run-dir", run_dir,
                 "--no-console")
    assert result.returncode == 2
    assert result.stderr == (f"pipeplex: error: cannot write the transcript {link}: it is a "
                             "symbolic link, which pipeplex does not follow; remove it, or give "
                             "another file\n")
    assert "started" not in result.stdout
    assert not run_dir.exists()
    assert victim.read_text() == "original\n"
    assert victim.stat().st_mode & 0o777 == 0o644


def test_log_through_a_planted_link_is_refused(tmp_path: Path, run_dir: Path) -> None:
    """--log-dir with a symbolic link as a member's log: the run says so and goes on, and
    the file it points to is left as it was."""
    victim = tmp_path / "victim"
    victim.write_text("original\n")
    victim.chmod(0o644)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").symlink_to(victim)
    result = run("run", "-p", "a=echo secret", "--log-dir", logs, "--run-dir", run_dir,
                 "--no-console")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "a | secret" in result.stdout
    assert (f"cannot write the log {logs / 'a.log'}: it is a symbolic link, which pipeplex "
            "does not follow") in result.stdout
    assert victim.read_text() == "original\n"
    assert victim.stat().st_mode & 0o777 == 0o644


def test_missing_cwd_of_a_member_with_variables_is_reported_before_start(
    tmp_path: Path, run_dir: Path
) -> None:
    """The cwd of a member whose command uses a variable is checked before anything starts,
    with the file and line."""
    cast = tmp_path / "cast.toml"
    cast.write_text(
        "[procs.server]\n"
        "cmd = ['sh', '-c', 'echo port 5; sleep 100']\n"
        "ready = 'port (?P<port>\\d+)'\n"
        "\n"
        "[procs.client]\n"
        'cmd = "echo {port}"\n'
        'cwd = "no-such-folder"\n'
        'after = ["server"]\n'
    )
    result = run("run", cast, "--run-dir", run_dir, "--no-console")
    assert result.returncode == 2
    assert result.stderr == (f"pipeplex: error: {cast}:5: client: cwd "
                             f"{str(tmp_path / 'no-such-folder')!r} is not a folder\n")
    assert "started" not in result.stdout


def test_env_name_with_equals_is_reported_before_start(tmp_path: Path, run_dir: Path) -> None:
    """An env name the environment cannot hold is refused at load, with its line."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.a]\ncmd = "echo"\nenv = {"A=B" = "x"}\n')
    result = run("run", cast, "--run-dir", run_dir, "--no-console")
    assert result.returncode == 2
    assert result.stderr == (f"pipeplex: error: {cast}:3: a: env variable name 'A=B' contains "
                             "'=', which no variable name may hold\n")
