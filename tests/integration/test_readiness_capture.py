"""Values captured by ``ready``, through the real command: never cut short, never stale."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from .helpers import Pipeplex, run, status, write_fifo


def _cast(path: Path, members: dict[str, dict[str, object]]) -> Path:
    """Write a cast file (JSON strings and lists are valid TOML values)."""
    lines = []
    for name, keys in members.items():
        lines.append(f"[procs.{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in keys.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("pty", [True, False], ids=["pty-stdout", "pipes"])
def test_a_value_written_in_two_pieces_is_taken_whole(run_dir: Path, tmp_path: Path,
                                                      pty: bool) -> None:
    """``listening on 80``, a pause (the line goes out unfinished), then ``81``: the
    port is 8081, for the ready note and for the member that uses it."""
    keys: dict[str, object] = {
        "cmd": ["sh", "-c", "printf 'listening on 80'; sleep 0.3; printf '81\\n'; exec sleep 60"],
        "ready": r"listening on (?P<port>\d+)",
    }
    if not pty:
        keys["pty"] = False
    cast = _cast(tmp_path / "cast.toml", {
        "server": keys,
        "client": {"cmd": "echo port={port}", "after": ["server"], "on_exit": "ignore"},
    })
    with Pipeplex("run", cast, "--run-dir", run_dir) as plex:
        plex.expect(r"^server \* ready: port=8081$")
        plex.expect(r"^client \| port=8081$")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 128 + signal.SIGTERM
    assert "port=80\n" not in plex.text


def test_prompts_without_a_newline_still_make_members_ready(run_dir: Path,
                                                            tmp_path: Path) -> None:
    """A prompt is never finished by a newline: it makes its member ready as it is, and a
    value that ends before the prompt does is taken."""
    cast = _cast(tmp_path / "cast.toml", {
        "login": {"cmd": ["sh", "-c", "printf 'Password: '; exec sleep 60"],
                  "ready": "Password: "},
        "repl": {"cmd": ["sh", "-c", "echo welcome; printf '> '; exec sleep 60"],
                 "ready": "^> $"},
        "server": {"cmd": ["sh", "-c", "printf 'port 8081> '; exec sleep 60"],
                   "ready": r"port (?P<port>\d+)> "},
        "client": {"cmd": "echo port={port}", "after": ["login", "repl", "server"],
                   "on_exit": "ignore"},
    })
    with Pipeplex("run", cast, "--run-dir", run_dir) as plex:
        plex.expect(r"^client \| port=8081$")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 128 + signal.SIGTERM
    for name in ("login", "repl"):
        assert f"\n{name:<6} * ready\n" in plex.text
    assert "\nserver * ready: port=8081\n" in plex.text


def test_a_value_on_the_last_unfinished_line_is_taken_when_its_member_exits(
        run_dir: Path, tmp_path: Path) -> None:
    """The exit ends the last line: a value there is whole, and is taken."""
    cast = _cast(tmp_path / "cast.toml", {
        "setup": {"cmd": ["sh", "-c", "printf 'token abc'"], "ready": r"token (?P<token>\w+)",
                  "on_exit": "ignore"},
        "client": {"cmd": "echo token={token}", "after": ["setup"]},
    })
    result = run("run", cast, "--run-dir", run_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "setup  * ready: token=abc\n" in result.stdout
    assert "client | token=abc\n" in result.stdout


def _restarting_server(folder: Path, **keys: object) -> dict[str, object]:
    """Prints ``listening on 900N`` on its run N (counted in ``folder``) and exits with 1
    when it reads a line; from its second run on, it waits for a line before it prints
    (it is not ready until then)."""
    script = ("n=$(cat count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > count; "
              "if [ $n -gt 1 ]; then read go; fi; echo listening on 900$n; read quit; exit 1")
    return {"cmd": ["sh", "-c", script], "cwd": str(folder),
            "ready": r"listening on (?P<port>\d+)", "on_exit": "restart", **keys}


def test_a_restarted_member_is_ready_again_and_later_starts_get_its_new_values(
        run_dir: Path, tmp_path: Path) -> None:
    """server restarts; client, restarting meanwhile, waits for server's new run to be
    ready and starts with the port that run captured, not the first run's."""
    cast = _cast(tmp_path / "cast.toml", {
        "server": _restarting_server(tmp_path),
        "client": {"cmd": ["sh", "-c", "echo using port {port}; read quit && exit 1; "
                                       "exec sleep 60"],  # (the stop's EOF ends nothing)
                   "after": ["server"], "on_exit": "restart"},
    })
    with Pipeplex("run", cast, "--run-dir", run_dir) as plex:
        plex.expect(r"^server \* ready: port=9001$")
        plex.expect(r"^client \| using port 9001$")
        write_fifo(run_dir / "server.in", b"quit\n")
        plex.expect(r"^server \* restarting in ")
        plex.expect(r"^server \* started ")
        write_fifo(run_dir / "client.in", b"quit\n")
        plex.expect(r"^client \* waiting for server to be ready again$")
        client = next(m for m in status(run_dir)["members"] if m["name"] == "client")
        assert client["waiting_for"] == "server to be ready again", client  # (as said)
        write_fifo(run_dir / "server.in", b"go\n")
        plex.expect(r"^server \* ready: port=9002$")
        plex.expect(r"^client \* started ")
        plex.expect(r"^client \| using port 9002$")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 128 + signal.SIGTERM
    assert plex.text.count("using port 9001") == 1
    assert re.search(r"^client \* summary: stopped by SIGTERM after .*, 1 restart$", plex.text,
                     re.MULTILINE)


def test_a_member_running_with_a_value_a_restart_changed_is_told(run_dir: Path,
                                                                 tmp_path: Path) -> None:
    """Members already running keep the values they started with: when server's new run
    captures another port, the client still using the old one is said to (with how to
    give it the new one), under its name; a member that uses no such value is not."""
    cast = _cast(tmp_path / "cast.toml", {
        "server": _restarting_server(tmp_path),
        "client": {"cmd": ["sh", "-c", "echo using port {port}; exec sleep 60"],
                   "after": ["server"]},
        "other": {"cmd": "sleep 60", "after": ["server"]},
    })
    with Pipeplex("run", cast, "--run-dir", run_dir) as plex:
        plex.expect(r"^client +\| using port 9001$")
        write_fifo(run_dir / "server.in", b"quit\n")
        plex.expect(r"^server +\* started ")
        write_fifo(run_dir / "server.in", b"go\n")
        plex.expect(r"^server +\* ready: port=9002$")
        plex.expect(r"^client +\* runs with port='9001', which server's new run changed to "
                    r"port='9002': restart client to give it the new value \(pipeplex restart "
                    r"client\)$")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 128 + signal.SIGTERM
    assert "other * runs with" not in plex.text
    assert plex.text.count("new value") == 1


def test_a_restarted_run_is_held_to_its_ready_timeout(run_dir: Path, tmp_path: Path) -> None:
    """A run after a restart that never gets ready fails the run as a first start would."""
    cast = _cast(tmp_path / "cast.toml", {"server": _restarting_server(tmp_path, ready_timeout=2)})
    with Pipeplex("run", cast, "--run-dir", run_dir) as plex:
        plex.expect(r"^server \* ready: port=9001$")
        write_fifo(run_dir / "server.in", b"quit\n")
        plex.expect(r"^server \* started ")
        plex.expect(r"^server \* was not ready after 2\.0 s \(its ready_timeout, at "
                    r"\S+cast\.toml:\d+\); it never showed output matching ready = ")
        assert plex.wait() == 1


def test_an_optional_group_the_match_leaves_out_gives_an_empty_value(run_dir: Path,
                                                                      tmp_path: Path) -> None:
    """``Password(?: for (?P<user>\\w+))?: `` on ``Password: ``: ``{user}`` is empty for the
    members after it, in their environment and their arguments, not the text ``{user}``."""
    cast = _cast(tmp_path / "cast.toml", {
        "auth": {"cmd": ["sh", "-c", "printf 'Password: '; exec sleep 60"],
                 "ready": r"Password(?: for (?P<user>\w+))?: "},
        "client": {"cmd": ["sh", "-c", 'echo "env=[$WHO] arg=[$1]"', "sh", "{user}"],
                   "after": ["auth"], "on_exit": "ignore"},
    })
    cast.write_text(cast.read_text() + '[procs.client.env]\nWHO = "{user}"\n')
    with Pipeplex("run", cast, "--run-dir", run_dir) as plex:
        plex.expect(r"^client \| env=\[\] arg=\[\]$")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 128 + signal.SIGTERM
