"""The control socket and its clients: pipeplex send, status, signal, restart, stop, attach."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import select
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeplex.control_client import ControlClient

from .helpers import (
    DEADLINE,
    GATED_DB,
    PIPEPLEX,
    Connection,
    Pipeplex,
    py,
    run,
    start_client,
    status,
    write_fifo,
)

TRAP_USR1 = py(
    "import signal, sys\n"
    "signal.signal(signal.SIGUSR1, lambda *a: print('got USR1', flush=True))\n"
    "print('ready', flush=True)\n"
    "for line in sys.stdin: print('read', line.strip(), flush=True)\n"
)


def cats(run_dir: Path, *names: str, extra: tuple[str, ...] = ()) -> Pipeplex:
    """A run of ``cat`` members, started and announced."""
    args = [a for name in names for a in ("-p", f"{name}=cat")]
    plex = Pipeplex("run", *args, *extra, "--run-dir", run_dir)
    plex.expect("run folder")
    return plex


# pipeplex send -----------------------------------------------------------------------------


def test_send_delivers_a_line_to_one_member_and_to_all(run_dir: Path) -> None:
    """send NAME TEXT... joins the words; 'all' reaches everyone."""
    with cats(run_dir, "c", "d") as plex:
        result = run("send", "c", "hello", "there", "--run-dir", run_dir)
        assert result.returncode == 0, result.stderr
        assert result.stdout == result.stderr == ""
        plex.expect(r"^c \| hello there$")
        assert run("send", "all", "everyone", "--run-dir", run_dir).returncode == 0
        seen = {plex.expect(r"^(\w) \| everyone$")[1] for _ in range(2)}
        assert seen == {"c", "d"}


def test_sent_text_is_text_whatever_a_shell_would_make_of_it(run_dir: Path,
                                                             tmp_path: Path) -> None:
    """What send sends reaches the member as written: nothing runs it through a shell."""
    text = f"$(touch {tmp_path}/pwned); `id` > {tmp_path}/pwned # '\"\\"
    with cats(run_dir, "c") as plex:
        assert run("send", "c", text, "--run-dir", run_dir).returncode == 0
        plex.expect(r"^c \| " + re.escape(text) + "$")
    assert not (tmp_path / "pwned").exists()


def test_send_without_newline_then_the_rest_of_the_line(run_dir: Path) -> None:
    """--no-newline leaves the line open; the next send finishes it."""
    lines = py("import sys\nfor line in sys.stdin: print('got', repr(line))")
    with Pipeplex("run", "-p", f"c={lines}", "--run-dir", run_dir) as plex:
        plex.expect("run folder")
        assert run("send", "-n", "c", "half ", "--run-dir", run_dir).returncode == 0
        assert run("send", "c", "and half", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^c \| got 'half and half\\n'$")
        nothing = run("send", "-n", "c", "--run-dir", run_dir)  # (it sent nothing, silently)
        assert nothing.returncode == 2 and "nothing to send" in nothing.stderr


def test_send_passes_bytes_that_are_not_utf8_on(run_dir: Path) -> None:
    """TEXT from a Latin-1 terminal, or a file's name, reaches the member as the bytes it
    was, from pipeplex send and from ControlClient (Python's surrogateescape)."""
    reader = py("import sys\nfor line in sys.stdin.buffer: print('got', line.hex())")
    with Pipeplex("run", "-p", f"c={reader}", "--run-dir", run_dir) as plex:
        plex.expect("run folder")
        result = run("send", "c", os.fsdecode(b"caf\xe9"), "--run-dir", run_dir)
        assert result.returncode == 0, result.stderr
        plex.expect(r"^c \| got 636166e90a$")
        with ControlClient(run_dir) as client:
            assert client.request("send", name="c", data="\udcff\u00e9\n")["delivered"] == 1
        plex.expect(r"^c \| got ffc3a90a$")
        unknown = run("send", os.fsdecode(b"c\xff"), "hi", "--run-dir", run_dir)
        assert unknown.returncode == 1
        assert unknown.stderr == ("pipeplex: error: no member named 'c\\xff'; did you mean 'c'? "
                                  "(members: c; or 'all' for everyone)\n")  # (said as typed)


def test_send_eof_closes_the_members_stdin(run_dir: Path) -> None:
    """--eof after the text: cat reads its last line, then EOF, and exits 0."""
    with cats(run_dir, "c", "d", extra=("--on-exit", "ignore")) as plex:
        assert run("send", "c", "last", "--eof", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^c \| last$")
        plex.expect(r"^c \* exited with code 0$")
        result = run("send", "c", "more", "--run-dir", run_dir)
        assert result.returncode == 1
        assert "c is not running; nothing was sent" in result.stderr
        # --eof alone only closes: what it delivered is that EOF, to the one member.
        with ControlClient(run_dir) as client:
            assert client.request("send", name="d", eof=True)["delivered"] == 1
        plex.expect(r"^d \* exited with code 0$")
        assert plex.wait() == 0


def test_send_to_a_member_that_closed_its_stdin_says_nothing_was_sent(run_dir: Path) -> None:
    """The member closed its end: the write that finds out is refused as the next would
    be, not acknowledged; pipeplex lives on (no SIGPIPE)."""
    with Pipeplex("run", "-p", "dead=sh -c 'exec 0<&-; echo closed; exec sleep 60'",
                  "--run-dir", run_dir) as plex:
        plex.expect(r"^dead \| closed$")
        first = run("send", "--run-dir", run_dir, "dead", "hello")
        assert first.returncode == 1
        assert first.stderr == "pipeplex: error: dead has closed its stdin; nothing was sent\n"
        plex.expect(r"^dead \* closed its stdin; dropped 6 bytes of input$")
        again = run("send", "--run-dir", run_dir, "dead", "hello")
        assert again.returncode == 1
        assert again.stderr == "pipeplex: error: dead has its stdin closed; nothing was sent\n"
        assert status(run_dir)["members"][0]["state"] == "running"
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143


def test_input_a_member_never_read_is_counted_whole_when_dropped(run_dir: Path) -> None:
    """A member that reads nothing, 1 MiB queued for it, then stopped: the note counts all
    that was dropped, not the piece that was being written."""
    size = 1024 * 1024
    with Pipeplex("run", "-p", "a=sleep 60", "--run-dir", run_dir) as plex:
        plex.expect(r"^a +\* started")
        write_fifo(run_dir / "a.in", (b"x" * 1023 + b"\n") * (size // 1024))
        deadline = time.monotonic() + DEADLINE  # (until the run has read the FIFO dry)
        while status(run_dir)["members"][0]["pending_input"] < size - 128 * 1024:
            assert time.monotonic() < deadline
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
    dropped = sum(int(n) for n in re.findall(
        r"^a +\* ended with (\d+) bytes of input it never read; dropped$", plex.text,
        re.MULTILINE))
    assert size - 128 * 1024 <= dropped <= size, plex.text


def test_send_to_an_unknown_member_names_it_and_lists_the_others(run_dir: Path) -> None:
    """Exit 1 with a message; the run goes on."""
    with cats(run_dir, "c", "d") as plex:
        result = run("send", "nosuch", "hi", "--run-dir", run_dir)
        assert result.returncode == 1
        assert result.stderr == ("pipeplex: error: no member named 'nosuch' (members: c, d; "
                                 "or 'all' for everyone)\n")
        assert run("send", "c", "still here", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^c \| still here$")


def test_send_of_a_line_over_the_request_limit_says_where_one_fits(run_dir: Path) -> None:
    with cats(run_dir, "c") as plex:
        result = run("send", "c", "x" * 70_000, "--run-dir", run_dir)
        assert result.returncode == 1
        assert "exceeds 64 KiB; send less at a time, or write a longer line to NAME.in in " \
            "the run folder, which takes lines of up to 1 MiB" in result.stderr
        write_fifo(run_dir / "c.in", b"y" * 70_000 + b"\n")
        plex.expect(r"^c \| y{70000}$")


def test_clients_find_the_run_started_in_the_same_folder(tmp_path: Path) -> None:
    """Without --run-dir, run and its clients agree on the folder from the working folder."""
    with Pipeplex("run", "-p", "c=cat", cwd=tmp_path) as plex:
        plex.expect("run folder")
        assert run("send", "c", "found you", cwd=tmp_path).returncode == 0
        plex.expect(r"^c \| found you$")
        result = run("status", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert re.search(r"^c +\d+ +running", result.stdout, re.MULTILINE)


def test_clients_find_the_run_of_the_folder_that_another_environment_put_elsewhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run started where XDG_RUNTIME_DIR is unset (cron, sudo, another su session) is in
    $TMPDIR/pipeplex-UID; a client whose shell sets XDG_RUNTIME_DIR still finds it, past
    the socket a run killed in its own runtime folder left."""
    project, tmpdir, runtime = tmp_path / "proj", tmp_path / "tmp", tmp_path / "xdg"
    for folder in (project, tmpdir, runtime):
        folder.mkdir(mode=0o700)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    with Pipeplex("run", "-p", "k=cat", cwd=project) as killed:  # (leaves its socket there)
        killed.expect(f"run folder {runtime}/pipeplex/proj-")
        killed.signal(signal.SIGKILL)
        killed.wait()
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    with Pipeplex("run", "-p", "c=cat", cwd=project) as plex:
        plex.expect(f"run folder {tmpdir}/pipeplex-{os.geteuid()}/proj-")
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
        result = run("send", "c", "found you", cwd=project)
        assert result.returncode == 0, result.stderr
        plex.expect(r"^c \| found you$")


def test_a_second_run_of_the_folder_is_refused_where_another_environment_put_the_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run started without XDG_RUNTIME_DIR is in $TMPDIR/pipeplex-UID; a second run of
    the same folder from a shell that sets it went to the runtime folder and ran beside it,
    the clients reaching one or the other. It is refused, as in the same folder, saying
    where the first is; the first goes on, and once it has ended the second starts."""
    project, tmpdir, runtime = tmp_path / "proj", tmp_path / "tmp", tmp_path / "xdg"
    for folder in (project, tmpdir, runtime):
        folder.mkdir(mode=0o700)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    first = tmpdir / f"pipeplex-{os.geteuid()}"
    with Pipeplex("run", "-p", "c=cat", "--no-console", cwd=project) as plex:
        plex.expect(f"run folder {first}/proj-")
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
        second = run("run", "-p", "d=cat", "--no-console", cwd=project)
        assert second.returncode == 2, second.stderr
        assert re.fullmatch(
            rf"pipeplex: error: a run of this folder is already going at {first}/proj-\w+ "
            rf"\(pid {plex.proc.pid}\), where a shell with another XDG_RUNTIME_DIR or TMPDIR put "
            rf"it; stop it first \(pipeplex stop --run-dir {first}/proj-\w+\), or give this "
            r"run a folder of its own \(--run-dir\)\n", second.stderr), second.stderr
        assert not (runtime / "pipeplex").exists()  # (nothing of it was made)
        assert run("send", "c", "still here", cwd=project).returncode == 0
        plex.expect(r"^c \| still here$")
        assert run("stop", cwd=project).returncode == 0
        assert plex.wait() == 0
    with Pipeplex("run", "-p", "d=cat", "--no-console", cwd=project) as plex:
        plex.expect(f"run folder {runtime}/pipeplex/proj-")
        plex.expect(r"^d +\* started")


@pytest.mark.parametrize("lock", ["a named pipe", "a link to /dev/zero"])
def test_a_client_is_not_held_by_a_lock_file_put_in_a_dead_runs_folder(
        tmp_path: Path, lock: str) -> None:
    """What a client reads of a run that does not answer is the pid in its lock file: a
    pipe put there held it for ever, and /dev/zero until memory ran out."""
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    (folder / "control.sock").write_text("")  # (connecting is refused)
    if lock == "a named pipe":
        os.mkfifo(folder / "run.lock")
    else:
        (folder / "run.lock").symlink_to("/dev/zero")
    result = run("status", "--run-dir", folder, timeout=DEADLINE)
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr


def test_concurrent_send_commands(run_dir: Path) -> None:
    """Several pipeplex send processes at once: every line arrives whole."""
    with cats(run_dir, "c") as plex:
        procs = [subprocess.Popen([*PIPEPLEX, "send", "c", f"line {i}", "--run-dir", str(run_dir)],
                                  stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for i in range(8)]
        for proc in procs:
            assert proc.wait(timeout=DEADLINE) == 0
            assert proc.stderr is not None
            proc.stderr.close()
        seen = {int(plex.expect(r"^c \| line (\d+)$")[1]) for _ in range(8)}
        assert seen == set(range(8))


# pipeplex status ---------------------------------------------------------------------------


def test_status_table_and_json(run_dir: Path) -> None:
    """A table with name, pid, state, uptime, restarts, last exit; --json has the same."""
    with Pipeplex("run", "-p", "c=cat", "-p", "quick=true", "--on-exit", "ignore",
                  "--run-dir", run_dir) as plex:
        plex.expect(r"^quick \* exited with code 0$")
        result = run("status", "--run-dir", run_dir)
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].split() == ["NAME", "PID", "STATE", "UPTIME", "RESTARTS", "LAST", "EXIT"]
        assert re.fullmatch(r"c +\d+ +running +\d+\.\ds +0 +-", lines[1]), lines[1]
        assert re.fullmatch(r"quick +- +exited +- +0 +0", lines[2]), lines[2]

        result = run("status", "--json", "--run-dir", run_dir)
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert answer["pid"] == plex.proc.pid
        assert answer["run_dir"] == str(run_dir)
        c, quick = answer["members"]
        assert c["name"] == "c" and c["state"] == "running" and isinstance(c["pid"], int)
        assert c["uptime"] >= 0 and c["restarts"] == 0 and c["last_exit"] is None
        assert quick["state"] == "exited" and quick["last_exit"] == 0 and quick["uptime"] is None


# pipeplex signal ---------------------------------------------------------------------------


def test_signal_by_name_and_number(run_dir: Path) -> None:
    """signal NAME USR1 (or 10) reaches the member's process group, and the stream says
    who sent it."""
    with Pipeplex("run", "-p", f"t={TRAP_USR1}", "--run-dir", run_dir) as plex:
        plex.expect(r"^t \| ready$")
        assert run("signal", "t", "USR1", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^pipeplex \* SIGUSR1 sent to t through the control socket \(pid \d+\)$")
        plex.expect(r"^t \| got USR1$")
        assert run("signal", "t", str(int(signal.SIGUSR1)), "--run-dir", run_dir).returncode == 0
        plex.expect(r"^t \| got USR1$")
        assert run("signal", "t", "sigusr1", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^t \| got USR1$")


SURVIVES_ONE_TERM = py(
    "import signal\n"
    "def once(*a):\n"
    "    print('got TERM, carrying on', flush=True)\n"
    "    signal.signal(signal.SIGTERM, signal.SIG_DFL)\n"
    "signal.signal(signal.SIGTERM, once)\n"
    "print('ready', flush=True)\n"
    "while True: signal.pause()\n"
)
"""The first SIGTERM starts a shutdown (here: nothing); the second one ends it."""


def test_a_signal_a_member_lived_through_is_not_its_end_when_the_stop_sends_it_too(
        run_dir: Path) -> None:
    """pipeplex signal m TERM, which m handles; then pipeplex stop, whose SIGTERM ends it:
    that end is the stop's (status 0), as its summary says, not the person's (143)."""
    with Pipeplex("run", "-p", f"m={SURVIVES_ONE_TERM}", "--on-exit", "ignore",
                  "--run-dir", run_dir) as plex:
        plex.expect(r"^m \| ready$")
        assert run("signal", "m", "TERM", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^m \| got TERM, carrying on$")
        assert run("stop", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^m \* summary: stopped by SIGTERM")
        assert plex.wait() == 0


def test_a_signal_still_on_its_way_when_the_stop_sends_it_too_is_the_persons(
        run_dir: Path) -> None:
    """pipeplex signal m TERM, not yet taken when pipeplex stop sends its own (here m is
    stopped, so the TERM waits in the kernel until the stop's SIGCONT): the person's TERM
    is what ends m, so m ended on its own (143), whichever came first to the loop."""
    with Pipeplex("run", "-p", "m=sleep 60", "--on-exit", "ignore",
                  "--run-dir", run_dir) as plex:
        plex.expect(r"^m \* started")
        pid = status(run_dir)["members"][0]["pid"]
        assert run("signal", "m", "STOP", "--run-dir", run_dir).returncode == 0
        deadline = time.monotonic() + DEADLINE
        while Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "T":
            assert time.monotonic() < deadline
        assert run("signal", "m", "TERM", "--run-dir", run_dir).returncode == 0
        assert run("stop", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^m \* summary: killed by SIGTERM")
        assert plex.wait() == 143


def test_signal_errors(run_dir: Path) -> None:
    """A bad signal is a usage error (2); an unknown member fails (1)."""
    with cats(run_dir, "c"):
        result = run("signal", "c", "BOGUS", "--run-dir", run_dir)
        assert result.returncode == 2
        assert "unknown signal 'BOGUS'" in result.stderr
        result = run("signal", "zz", "TERM", "--run-dir", run_dir)
        assert result.returncode == 1
        assert "no member named 'zz' (members: c;" in result.stderr


# pipeplex restart --------------------------------------------------------------------------


def test_a_restart_that_takes_a_grace_says_so_on_a_terminal(run_dir: Path) -> None:
    """stubborn ignores SIGTERM: its restart waits out the grace (2 s). On a terminal the
    client says what it waits for after a second, rather than look hung; to a pipe (a
    script) it says nothing but its answer."""
    stubborn = "sh -c 'trap \"\" TERM; echo up; while :; do sleep 1; done'"
    with Pipeplex("run", "-p", f"stubborn={stubborn}", "--grace", "2", "--run-dir", run_dir,
                  "--no-console") as plex:
        plex.expect(r"^stubborn \| up$")
        master, slave = os.openpty()
        try:
            client = subprocess.Popen([*PIPEPLEX, "restart", "stubborn", "--run-dir",
                                       str(run_dir)], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=slave)
            os.close(slave)
            said = b""
            deadline = time.monotonic() + DEADLINE
            while b"waiting for stubborn to stop" not in said:
                assert time.monotonic() < deadline, said
                if select.select([master], [], [], 1)[0]:
                    said += os.read(master, 4096)
            out, _ = client.communicate(timeout=DEADLINE)
            assert client.returncode == 0 and out.startswith(b"stubborn restarted (pid ")
        finally:
            os.close(master)
        plex.expect(r"^stubborn \| up$")
        quiet = run("restart", "stubborn", "--run-dir", run_dir)
        assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_restart_starts_a_new_instance(run_dir: Path) -> None:
    """The member gets a new pid, its restart count and last exit code show in status."""
    with cats(run_dir, "c", "d") as plex:
        before = {m["name"]: m for m in status(run_dir)["members"]}
        result = run("restart", "c", "--run-dir", run_dir)
        assert result.returncode == 0, result.stderr
        new_pid = int(re.fullmatch(r"c restarted \(pid (\d+)\) and ready\n", result.stdout)[1])  # type: ignore[index]
        assert new_pid != before["c"]["pid"]
        plex.expect(r"^c \* restarting on request$")
        after = {m["name"]: m for m in status(run_dir)["members"]}
        assert after["c"]["pid"] == new_pid and after["c"]["restarts"] == 1
        assert after["c"]["state"] == "running" and after["c"]["last_exit"] is not None
        assert after["d"]["pid"] == before["d"]["pid"]
        assert run("send", "c", "again", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^c \| again$")
        result = run("restart", "zz", "--run-dir", run_dir)
        assert result.returncode == 1 and "no member named 'zz'" in result.stderr
        result = run("restart", "all", "--run-dir", run_dir)
        assert result.returncode == 2 and "one member, not 'all'" in result.stderr
        assert result.stderr.startswith("usage: pipeplex restart")


def test_restarts_leave_no_descriptor_thread_or_child_behind(run_dir: Path,
                                                             tmp_path: Path) -> None:
    """Restarts of a member with a health check and a stop_cmd, and of one on a full
    terminal, thirty in all: the run holds as many descriptors, threads and children after
    the last as after the first."""
    server = ("import os, signal, sys\n"
              "print('port 40123 pid', os.getpid(), flush=True)\n"
              "sys.stdin.read(); signal.pause()")  # (it ends once its stop_cmd kills it)
    cast = tmp_path / "cast.toml"
    cast.write_text(f"[procs.srv]\ncmd = {json.dumps([sys.executable, '-c', server])}\n"
                    "ready = 'port (?P<port>\\d+) pid (?P<srv_pid>\\d+)'\n"
                    "ready_cmd = 'true'\nstop_cmd = 'kill {srv_pid}'\n\n"
                    "[procs.tty]\ncmd = 'cat'\npty = true\n")

    def held(pid: int) -> tuple[int, int, int]:
        return (len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task")),
                len(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()))

    with Pipeplex("run", cast, "--run-dir", run_dir, "--no-console") as plex:
        plex.expect(r"^srv +\* ready")
        client = ControlClient(run_dir, timeout=DEADLINE)
        client.connect()
        try:
            counts = []
            for _ in range(15):
                for name in ("srv", "tty"):
                    answer = client.request("restart", name=name)
                    assert answer["ok"], answer
                counts.append(held(plex.proc.pid))
        finally:
            client.close()
        assert counts[-1] == counts[0], counts
        assert [m["restarts"] for m in status(run_dir)["members"]] == [15, 15]
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
    assert plex.text.count("ran its stop_cmd ('kill {srv_pid}')") == 16, plex.text


def test_restart_gives_the_member_its_eof_first(run_dir: Path) -> None:
    """As :restart and pipeplex stop do: 0.3 s to end at EOF on its stdin before SIGTERM,
    so that `pipeplex send db COMMIT; pipeplex restart db` gets db's answer."""
    with cats(run_dir, "c", extra=("-p", "s=sleep 60")) as plex:
        assert run("restart", "s", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^s \* closed its stdin$")
        plex.expect(r"^s \* still running [\d.]+ s after its stdin closed; sent SIGTERM to its "
                    r"process group$")


def test_restart_answers_once_the_new_run_is_ready(run_dir: Path, tmp_path: Path) -> None:
    """As pipeplex start (and systemctl restart) do: `pipeplex restart db && ./migrate`
    finds db ready. Each run of db is ready only once it is sent a line: the client waits
    for that, then says so; the members after db are not restarted."""
    cast = tmp_path / "cast.toml"
    cast.write_text(GATED_DB + '[procs.app]\ncmd = "cat"\nafter = ["db"]\n')
    with Pipeplex("run", cast, "--run-dir", run_dir, "--no-console") as plex:
        plex.expect(r"^db +\| run \d+$")
        assert run("send", "db", "go", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^app +\* started")
        client = start_client("restart", "db", "--run-dir", run_dir)
        try:
            new_pid = plex.expect(r"^db +\| run (\d+)$")[1]
            # Not ready until it reads a line: the client has nothing to say yet.
            waiting = next(m for m in status(run_dir)["members"] if m["name"] == "db")
            assert waiting["state"] == "starting", waiting
            assert not select.select([client.stdout], [], [], 0)[0]
            assert client.poll() is None
            assert run("send", "db", "go", "--run-dir", run_dir).returncode == 0
            out, err = client.communicate(timeout=DEADLINE)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        assert client.returncode == 0, err
        assert out == f"db restarted (pid {new_pid}) and ready\n"
        assert [m["restarts"] for m in status(run_dir)["members"]] == [1, 0]


def test_status_says_what_a_member_held_back_needs(run_dir: Path, tmp_path: Path) -> None:
    """w waits for slow; db, which it starts after too, ends for good meanwhile: once slow
    is ready, w is not started (the stream says why), and the status says what it needs,
    not that it waits for a member to be ready."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.db]\ncmd = "sh -c \'echo up; read x; exit 3\'"\nready = "^up$"\n'
                    'on_exit = "ignore"\n'
                    '[procs.slow]\ncmd = "sh -c \'read x; echo up; exec cat\'"\nready = "^up$"\n'
                    '[procs.w]\ncmd = "cat"\nafter = ["db", "slow"]\n')
    with Pipeplex("run", cast, "--run-dir", run_dir, "--no-console") as plex:
        plex.expect(r"^db +\* ready$")
        assert run("status", "--run-dir", run_dir).stdout.endswith(
            "w is waiting for slow to be ready\n")
        assert run("send", "db", "x", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^db +\* exited with code 3$")
        assert run("send", "slow", "x", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^w +\* not started: it starts after db, which exited with code 3")
        table = run("status", "--run-dir", run_dir).stdout
        assert table.endswith("w is waiting for db, which exited with code 3, to run again "
                              "(restart it first)\n"), table
        assert re.search(r"^w +- +pending ", table, re.M), table
        # pipeplex start is for autostart = false members: it says what to do instead.
        refused = run("start", "w", "--run-dir", run_dir)
        assert (refused.returncode, refused.stderr) == (1, (
            "pipeplex: error: w starts by itself, but was not started: it starts after db, "
            "which exited with code 3; restart db first, then pipeplex restart w\n")), refused
        # Once db runs again, a restart starts w: its first run, said so.
        assert run("restart", "db", "--run-dir", run_dir).returncode == 0
        assert run("restart", "w", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^w +\* starting on request \(it had not run yet\)$")


def test_a_restart_overtaken_by_another_answers_with_the_run_that_got_ready(
        run_dir: Path, tmp_path: Path) -> None:
    """A second restart stops the first one's new run before it was ready: both requests
    answer once the run after it is ready, with its pid (not that of the run stopped)."""
    cast = tmp_path / "cast.toml"
    cast.write_text(GATED_DB)
    clients: list[subprocess.Popen[str]] = []
    with Pipeplex("run", cast, "--run-dir", run_dir, "--no-console") as plex:
        try:
            plex.expect(r"^db \| run \d+$")
            assert run("send", "db", "go", "--run-dir", run_dir).returncode == 0
            plex.expect(r"^db \* ready$")
            for _ in range(2):
                clients.append(start_client("restart", "db", "--run-dir", run_dir))
                pid = plex.expect(r"^db \| run (\d+)$")[1]
            assert run("send", "db", "go", "--run-dir", run_dir).returncode == 0
            for client in clients:
                out, err = client.communicate(timeout=DEADLINE)
                assert (client.returncode, out) == (0, f"db restarted (pid {pid}) and ready\n"), err
        finally:
            for client in clients:
                if client.poll() is None:
                    client.kill()
                    client.wait()


def test_a_restart_whose_new_run_ends_before_it_is_ready_fails(run_dir: Path,
                                                                tmp_path: Path) -> None:
    """The new run exits before its ready line: the request fails (status 1) and says how
    the run ended, with its output; the cast goes on as that member's failure decides."""
    flag = tmp_path / "flag"
    cast = tmp_path / "cast.toml"
    cast.write_text(f'[procs.db]\ncmd = "sh -c \'if [ -e {flag} ]; then echo broken; exit 3; fi;'
                    f' : > {flag}; echo ready; exec cat\'"\nready = "^ready$"\n'
                    '[procs.other]\ncmd = "cat"\n')
    with Pipeplex("run", cast, "--run-dir", run_dir, "--no-console") as plex:
        plex.expect(r"^db +\* ready$")
        result = run("restart", "db", "--run-dir", run_dir)
        assert result.returncode == 1, result.stdout
        assert result.stderr.startswith("pipeplex: error: db did not get ready again (db "
                                        "exited with code 3): the cast stops\n"), result.stderr
        assert "| broken" in result.stderr
        plex.expect(r"^pipeplex \* db was not ready: stopping the cast \(on_exit = stop\)$")
        assert plex.wait() == 3


def test_start_starts_an_autostart_false_member_of_a_running_cast(run_dir: Path,
                                                                   tmp_path: Path) -> None:
    """pipeplex start NAME (and :start NAME from a script) start a member declared with
    autostart = false, and the members after it follow; what cannot be started says why."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.a]\ncmd = "cat"\n'
                    '[procs.lazy]\ncmd = "sh -c \'echo lazy up; exec cat\'"\n'
                    'ready = "lazy up"\nautostart = false\n'
                    '[procs.w]\ncmd = "sh -c \'echo w up; exec cat\'"\nafter = ["lazy"]\n')
    with Pipeplex("run", cast, "--run-dir", run_dir) as plex:
        plex.expect(r"^a +\* started")
        refused = run("restart", "lazy", "--run-dir", run_dir)
        assert refused.returncode == 1
        assert "start it with pipeplex start lazy" in refused.stderr, refused.stderr
        # The status says what each member that has not started waits for.
        table = run("status", "--run-dir", run_dir).stdout
        assert table.endswith("lazy is waiting for a start (autostart = false)\n"
                              "w is waiting for lazy to be ready\n"), table
        refused = run("start", "w", "--run-dir", run_dir)
        assert refused.returncode == 1 and "w starts by itself" in refused.stderr
        not_yet = "lazy has not started (autostart = false: pipeplex start lazy starts it)"
        refused = run("signal", "lazy", "TERM", "--run-dir", run_dir)
        assert refused.returncode == 1
        assert refused.stderr == f"pipeplex: error: {not_yet}; SIGTERM was not sent\n"
        refused = run("send", "lazy", "hi", "--run-dir", run_dir)
        assert refused.returncode == 1
        assert refused.stderr == f"pipeplex: error: {not_yet}; nothing was sent\n"
        result = run("start", "lazy", "--run-dir", run_dir)
        assert result.returncode == 0, result.stderr
        assert re.fullmatch(r"lazy started \(pid \d+\) and ready\n", result.stdout)
        plex.expect(r"^w +\| w up$")
        again = run("start", "lazy", "--run-dir", run_dir)
        assert again.returncode == 1 and "lazy was already started" in again.stderr
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 128 + signal.SIGTERM
    script = subprocess.run([*PIPEPLEX, "run", str(cast), "--run-dir", str(tmp_path / "rd2")],
                            input=b":start lazy\nlazy: hello\n:quit\n", capture_output=True,
                            timeout=60)
    out = script.stdout.decode()
    assert "lazy started (pid" in out and "lazy | hello\n" in out, out


def test_a_second_start_of_a_member_that_ended_says_how_to_run_it_again(
        tmp_path: Path, run_dir: Path) -> None:
    """A one-shot with autostart = false, started and ended (with on_exit = "ignore", the
    cast goes on): 'job was already started', with no word of how to run it again."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.a]\ncmd = "cat"\n[procs.job]\ncmd = "sh -c \'exit 4\'"\n'
                    'autostart = false\non_exit = "ignore"\n')
    with Pipeplex("run", cast, "--run-dir", run_dir) as plex:
        plex.expect(r"^a +\* started")
        assert run("start", "job", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^job +\* exited with code 4")
        again = run("start", "job", "--run-dir", run_dir)
        assert again.returncode == 1
        assert ("job was already started, and has ended (exited with code 4): pipeplex "
                "restart job runs it again") in again.stderr, again.stderr
        plex.signal(signal.SIGTERM)
        plex.wait()


def test_a_step_started_on_request_is_said_to_have_run(tmp_path: Path, run_dir: Path) -> None:
    """A step (ready_exit) started with pipeplex start is ready at its exit: the answer says
    it ran, and a second start says how to run it again; so does :start."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.a]\ncmd = "cat"\n'
                    '[procs.seed]\ncmd = "echo seeded"\nready_exit = true\nautostart = false\n')
    with Pipeplex("run", cast, "--run-dir", run_dir) as plex:
        plex.expect(r"^a +\* started")
        result = run("start", "seed", "--run-dir", run_dir)
        assert result.returncode == 0, result.stderr
        assert re.fullmatch(r"seed started \(pid \d+\) and exited with code 0: its step is "
                            r"done\n", result.stdout), result.stdout
        again = run("start", "seed", "--run-dir", run_dir)
        assert again.returncode == 1
        assert ("seed was already started, and its step is done (it exited with code 0): "
                "pipeplex restart seed runs it again") in again.stderr, again.stderr
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 128 + signal.SIGTERM
    script = subprocess.run([*PIPEPLEX, "run", str(cast), "--run-dir", str(tmp_path / "rd2")],
                            input=b":start seed\n:quit\n", capture_output=True, timeout=60)
    out = script.stdout.decode()
    assert re.search(r"seed started \(pid \d+\) and exited with code 0: its step is done",
                     out), out


def test_a_restart_storm_never_runs_two_instances_and_answers_everyone(
    run_dir: Path, tmp_path: Path
) -> None:
    """Thirty restart requests at once (reliability case 14): each is answered with a
    running instance, requests that meet share a restart, and no two instances ever run
    side by side (each holds a lock; one that finds it taken says so); the member's
    NAME.in feeds the instance that runs after it."""
    lock = tmp_path / "lock"
    member = py(
        "import fcntl, sys\n"
        f"f = open({str(lock)!r}, 'w')\n"
        "try:\n"
        "    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except OSError:\n"
        "    print('TWO INSTANCES', flush=True)\n"
        "    sys.exit(1)\n"
        "print('up', flush=True)\n"
        "for line in sys.stdin: print('got', line.strip(), flush=True)\n"
    )
    with Pipeplex("run", "-p", f"s={member}", "--run-dir", run_dir, "--on-exit", "ignore") as plex:
        plex.expect(r"^s \| up$")
        clients = [ControlClient(run_dir, timeout=DEADLINE) for _ in range(30)]
        for client in clients:
            client.connect()
        for client in clients:
            client.send_request("restart", name="s")
        answers = [client.read_answer() for client in clients]
        for client in clients:
            client.close()
        assert all(a["ok"] for a in answers), answers
        members = status(run_dir)["members"]
        assert members[0]["state"] == "running"
        final = members[0]["pid"]
        assert final == max(a["pid"] for a in answers)
        restarts = members[0]["restarts"]
        assert 1 <= restarts <= 30
        (run_dir / "s.in").write_text("after the storm\n")
        plex.expect(r"^s \| got after the storm$")
        assert status(run_dir)["members"][0]["pid"] == final
        assert run("stop", "--run-dir", run_dir).returncode == 0
        assert plex.wait() == 0
        assert "TWO INSTANCES" not in plex.text
        assert plex.text.count("s * restarting on request") == restarts


# pipeplex stop -----------------------------------------------------------------------------


def test_stop_ends_the_run_and_waits_for_it(run_dir: Path) -> None:
    """stop returns once the cast has stopped; the run exits 0 and says who asked. As a
    script's :quit, it gives each member 0.3 s to end at EOF on its stdin before SIGTERM,
    so that what was sent just before gets its answer: s does not end there. (c, cat, does,
    unless this machine is too busy to run it within those 0.3 s.)"""
    with cats(run_dir, "c", extra=("-p", "s=sleep 60")) as plex:
        result = run("stop", "--run-dir", run_dir)
        assert result.returncode == 0, result.stderr
        assert plex.proc.wait(timeout=DEADLINE) == 0
        assert plex.wait() == 0
        assert "stop requested through the control socket" in plex.text
        assert re.search(r"^c \* summary: (exited with code 0|stopped by SIGTERM) after",
                         plex.text, re.M), plex.text
        assert re.search(r"^s \* still running [\d.]+ s after its stdin closed; sent SIGTERM "
                         r"to its process group$", plex.text, re.M), plex.text
    assert not run_dir.exists()


def test_a_later_turn_says_how_long_its_stdin_has_been_closed(run_dir: Path) -> None:
    """pipeplex stop closes every member's stdin at once; a member whose SIGTERM comes
    after a later wave took its whole grace to stop has been waiting longer than the 0.3 s
    at EOF, and is told so (not "0.3 s")."""
    stubborn = py("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                  "print('ignoring', flush=True)\nsignal.pause()\n")
    cast = run_dir.parent / "cast.toml"
    cast.write_text('[procs.a]\ncmd = "sleep 60"\n'
                    f"[procs.b]\ncmd = {json.dumps(stubborn)}\nafter = ['a']\n"
                    "ready = '^ignoring$'\nstop_timeout = 1\n")
    with Pipeplex("run", cast, "--run-dir", run_dir, "--no-console") as plex:
        plex.expect(r"^b \* ready$")
        assert run("stop", "--run-dir", run_dir).returncode == 0
        assert plex.wait() == 0
    assert "b * ignored SIGTERM for 1.0 s; sent SIGKILL to its process group" in plex.text
    waited = re.search(r"^a \* still running ([\d.]+) s after its stdin closed; sent SIGTERM",
                       plex.text, re.M)
    assert waited is not None, plex.text
    assert float(waited[1]) >= 1.3, plex.text  # (b's 0.3 s at EOF and its grace, at least)


def test_the_folder_is_free_by_the_time_anyone_hears_the_run_ended(run_dir: Path) -> None:
    """An attach client that got the end (as pipeplex stop returning) may start the next
    run there at once: the folder is gone already, not removed a moment later."""
    with cats(run_dir, "c") as plex, Connection(run_dir) as watcher:
        assert watcher.request({"op": "attach"})["ok"]
        with Connection(run_dir) as stopper:
            assert stopper.request({"op": "stop"}) == {"ok": True}
        while (event := watcher.read()) is not None and event.get("event") != "end":
            pass
        assert event == {"event": "end", "status": 0}
        assert not run_dir.exists()  # (the connection still open: the run waits for it)
        with cats(run_dir, "next") as after:
            assert "cleaned up after an earlier run" not in after.text
            assert run("stop", "--run-dir", run_dir).returncode == 0
            assert after.wait() == 0
        assert plex.wait() == 0


def test_stop_no_wait(run_dir: Path) -> None:
    with cats(run_dir, "c") as plex:
        assert run("stop", "--no-wait", "--run-dir", run_dir).returncode == 0
        assert plex.wait() == 0


def test_stop_says_so_when_the_run_is_killed_while_it_waits(run_dir: Path) -> None:
    """The run's end gives up its folder's socket before it lets clients go: a connection
    that ends with the socket still there is a run that was killed, not a stop done."""
    deaf = py("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "print('deaf', flush=True)\nsignal.pause()\n")
    with Pipeplex("run", "-p", f"a={deaf}", "--grace", "60", "--run-dir", run_dir,
                  "--no-console") as plex:
        plex.expect(r"^a \| deaf$")
        stopper = start_client("stop", "--run-dir", run_dir)
        try:
            plex.expect(r"^a \* still running [\d.]+ s after its stdin closed; sent SIGTERM")
            plex.proc.kill()
            _, stderr = stopper.communicate(timeout=DEADLINE)
        finally:
            stopper.kill()
            stopper.wait()
        assert stopper.returncode == 1
        assert stderr == ("pipeplex: error: the connection to the run ended before the run "
                          "did: was the run killed? Its guardian stops its members, and the "
                          "next run in that folder cleans it up\n")


# No run, a stale run, odd paths ----------------------------------------------------------


def test_no_run_there_exits_4(tmp_path: Path) -> None:
    """Every client says there is no run, and how to start one."""
    nowhere = tmp_path / "nowhere"
    for args in (("send", "c", "x"), ("status",), ("signal", "c", "TERM"), ("restart", "c"),
                 ("stop",), ("attach",)):
        result = run(*args, "--run-dir", nowhere)
        assert result.returncode == 4, (args, result)
        assert result.stderr == (f"pipeplex: error: no pipeplex run at {nowhere} (has its "
                                 "run ended? A run prints its folder as its first line)\n")
    # Without --run-dir: the run of this folder is looked for, and --run-dir is the way out.
    result = subprocess.run([*PIPEPLEX, "status"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 4
    assert result.stderr.startswith("pipeplex: error: no pipeplex run at ")
    assert result.stderr.endswith(" (start one with pipeplex run, or pass --run-dir)\n")


def test_a_client_in_a_subfolder_is_told_of_the_run_started_above_it(tmp_path: Path) -> None:
    """A run's default folder belongs to the folder it was started from: a client in a
    subfolder of it finds no run there, and is told where the one above is (not sent
    there: which run to talk to is the person's to say)."""
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    with Pipeplex("run", "-p", "c=cat", "--no-console", cwd=project, env=env) as plex:
        folder = plex.expect(r"^pipeplex \* run folder (\S+):")[1]
        result = subprocess.run([*PIPEPLEX, "status"], cwd=project / "sub", env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 4
        assert result.stderr.endswith(
            f" (none was started from {project / 'sub'}; one started from {project} is at "
            f"{folder}: pass --run-dir {folder})\n"), result.stderr
        assert run("status", "--run-dir", folder).returncode == 0
        assert run("stop", "--run-dir", folder).returncode == 0
        assert plex.wait() == 0


def test_a_killed_run_is_reported_stale_and_cleaned_by_the_next(run_dir: Path) -> None:
    """After SIGKILL the socket is left: clients say the run is gone; the next run cleans up."""
    with cats(run_dir, "c") as plex:
        plex.expect(r"^c \* started")
        plex.signal(signal.SIGKILL)
        assert plex.wait() == -signal.SIGKILL
    assert (run_dir / "control.sock").exists()
    result = run("status", "--run-dir", run_dir)
    assert result.returncode == 4
    assert f"the pipeplex run at {run_dir} (pid {plex.proc.pid}) is gone" in result.stderr
    assert "the next 'pipeplex run' there cleans them up" in result.stderr
    with cats(run_dir, "c") as plex:
        assert "cleaned up after an earlier run" in plex.text
        assert status(run_dir)["members"][0]["state"] in ("pending", "running")
        # Its pid, run id and guardian, for the next run should this one die with its
        # guardian.
        lock = (run_dir / "run.lock").read_text()
        assert re.fullmatch(rf"{plex.proc.pid} [0-9a-f]{{32}} \d+ \d+\n", lock), lock


@pytest.mark.parametrize("holds_the_lock", [False, True])
def test_a_live_pid_in_the_lock_is_the_run_only_if_it_holds_the_lock(
        tmp_path: Path, holds_the_lock: bool) -> None:
    """A run that died before its socket was made left its pid in run.lock; once that pid
    is a stranger's, clients say the run is gone (they said it might still be starting).
    A process that holds the lock file open is the run, starting: that is still said."""
    folder = tmp_path / "rd"
    folder.mkdir(mode=0o700)
    lock = folder / "run.lock"
    lock.write_text("")
    # (with the lock: a run before its socket is made; without: a stranger with the pid)
    code = ("import sys\n"
            f"f = open({str(lock)!r}) if {holds_the_lock} else None\n"
            "print('ready', flush=True)\n"
            "sys.stdin.read()\n")
    with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
            lock.write_text(f"{holder.pid} 0123456789abcdef0123456789abcdef\n")
            result = run("status", "--run-dir", folder)
        finally:
            holder.communicate("", timeout=DEADLINE)
    assert result.returncode == 4, result
    if holds_the_lock:
        assert result.stderr == (f"pipeplex: error: the pipeplex run at {folder} (pid "
                                 f"{holder.pid}) has no control socket yet; it may still be "
                                 "starting\n")
    else:
        assert result.stderr.startswith(f"pipeplex: error: the pipeplex run at {folder} (pid "
                                        f"{holder.pid}) is gone: it ended without cleaning up "
                                        "its files"), result.stderr


def test_a_last_request_without_a_newline_is_answered(run_dir: Path) -> None:
    """printf '%s' '{"op": "ping"}' | socat - UNIX-CONNECT:...: the request, then the
    client's half of the connection closed, got no answer and no error."""
    with cats(run_dir, "c") as plex:
        plex.expect(r"^c \* started")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(DEADLINE)
            sock.connect(str(run_dir / "control.sock"))
            sock.sendall(b'{"op": "ping"}')
            sock.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert json.loads(answer)["ok"] is True, answer


def test_a_file_in_place_of_the_socket_is_no_run_to_clean_up(tmp_path: Path) -> None:
    """A regular file named control.sock was said to be a run that ended without
    cleaning up, which the next run would clean up: that run refuses it."""
    folder = tmp_path / "rd"
    folder.mkdir(mode=0o700)
    (folder / "control.sock").write_text("")
    result = run("status", "--run-dir", folder)
    assert result.returncode == 4
    assert result.stderr == (f"pipeplex: error: {folder}/control.sock is a regular file, not "
                             "the socket of a pipeplex run; move it away or use another run "
                             "folder\n")


def test_a_default_run_folder_taken_over_from_a_killed_run_is_removed_at_the_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder a killed run left is the next run's (the runs' base holds only pipeplex's
    folders): it goes at that run's end, as one it made would, not for ever after."""
    project, tmpdir = tmp_path / "proj", tmp_path / "tmp"
    for folder in (project, tmpdir):
        folder.mkdir(mode=0o700)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    base = tmpdir / f"pipeplex-{os.geteuid()}"
    with Pipeplex("run", "-p", "c=cat", cwd=project) as killed:
        killed.expect(r"^c \* started")
        killed.signal(signal.SIGKILL)
        killed.wait()
    assert len(list(base.iterdir())) == 1
    for _ in range(2):
        result = run("run", "-p", "a=echo hi", "--no-console", cwd=project)
        assert result.returncode == 0, result.stderr
        assert list(base.iterdir()) == []


def test_a_socket_path_longer_than_sun_path_works(tmp_path: Path) -> None:
    """A run folder whose socket path exceeds 107 bytes is reached through /proc. The
    socket is there, private, in the run folder: not somewhere shorter."""
    deep = tmp_path / ("x" * 60) / ("y" * 60) / "run"
    assert len(os.fsencode(deep / "control.sock")) > 107
    with cats(deep, "c") as plex:
        made = os.lstat(deep / "control.sock")
        assert stat.S_ISSOCK(made.st_mode) and stat.S_IMODE(made.st_mode) == 0o600
        assert run("send", "c", "deep", "--run-dir", deep).returncode == 0
        plex.expect(r"^c \| deep$")
        result = run("status", "--run-dir", deep)
        assert result.returncode == 0 and "running" in result.stdout


def test_the_socket_is_private_whatever_the_umask(run_dir: Path) -> None:
    old = os.umask(0)
    try:
        plex = cats(run_dir, "c")
    finally:
        os.umask(old)
    with plex:
        st = os.lstat(run_dir / "control.sock")
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert st.st_uid == os.geteuid()


# Garbage, limits, many clients -----------------------------------------------------------


def test_garbage_gets_error_answers_and_the_run_goes_on(run_dir: Path) -> None:
    """Random bytes, bad JSON, wrong shapes: an error answer each; status keeps answering."""
    with cats(run_dir, "c") as plex:
        with Connection(run_dir) as conn:
            conn.send(os.urandom(4000).replace(b"\n", b"") + b"\n")
            assert conn.read()["error"] == "bad_json"  # type: ignore[index]
            conn.send(b"\xff\xfe{}\n")
            assert conn.read()["error"] == "bad_json"  # type: ignore[index]
            conn.send(b"{not json\n")
            assert conn.read()["error"] == "bad_json"  # type: ignore[index]
            assert conn.request([1, 2])["error"] == "bad_request"  # type: ignore[arg-type]
            for op in (["x"], {"a": 1}, None, 3):  # an op that is no name, even unhashable
                answer = conn.request({"op": op})
                assert answer["error"] == "bad_request", answer
                assert "a request needs an 'op', the name of what to do" in answer["message"]
            assert conn.request({"id": 1})["error"] == "bad_request"  # (none at all)
            conn.send(b"[" * 60000 + b"\n")  # deeper than a parser can go
            answer = conn.read()
            assert answer is not None and answer["error"] == "bad_json", answer
            assert "nests too deeply" in answer["message"]
            for constant in (b"NaN", b"Infinity", b"-Infinity", b"1e999"):  # never echoed
                conn.send(b'{"op": "ping", "id": ' + constant + b"}\n")
                answer = conn.read()
                assert answer is not None and answer["error"] == "bad_json", answer
            conn.send(b'{"op": "ping", "id": ' + b"9" * 5000 + b"}\n")
            answer = conn.read()
            assert answer == {"ok": False, "error": "bad_json", "message": "not a JSON object "
                              "on one UTF-8 line: a number of 5000 digits"}, answer
            answer = conn.request({"op": "frobnicate", "id": 7})
            assert answer["error"] == "unknown_op" and answer["id"] == 7
            assert "ops: ping, status, send" in answer["message"]
            assert conn.request({"op": "send"})["error"] == "bad_request"
            assert conn.request({"op": "send", "name": "c", "data": 5})["error"] == "bad_request"
            empty = conn.request({"op": "send", "name": "c", "data": ""})
            assert empty["error"] == "bad_request" and "nothing to send" in empty["message"]
            assert conn.request({"op": "send", "name": "c"})["error"] == "bad_request"
            answer = conn.request({"op": "send", "name": "zz", "data": "x\n"})
            assert answer["error"] == "unknown_member" and answer["members"] == ["c"]
            assert conn.request({"op": "signal", "name": "c", "signal": "NOPE"})["error"] == \
                "bad_signal"
            conn.send(b"\n\n   \n")  # blank lines are ignored
            answer = conn.request({"op": "send", "name": "c", "data": "same connection\n",
                                   "id": "x1"})
            assert answer == {"ok": True, "delivered": 1, "id": "x1"}
            plex.expect(r"^c \| same connection$")
        assert status(run_dir)["members"][0]["state"] == "running"


def test_an_oversized_request_is_refused_and_its_connection_closed(run_dir: Path) -> None:
    with cats(run_dir, "c") as plex:
        chunk = b"x" * 65536
        for size in (70 * 1024, 10 * 1024 * 1024):
            with Connection(run_dir) as conn:
                try:
                    conn.send(b'{"op": "status", "pad": "')
                    for _ in range(size // len(chunk)):
                        conn.send(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the run closed the connection while we were still sending
                answer = conn.read()
                assert answer is not None and answer["error"] == "too_large", answer
                assert "exceeds 64 KiB" in answer["message"]
                assert conn.closed_by_peer()
        with Connection(run_dir) as conn:  # 64 KiB exactly is fine
            line = json.dumps({"op": "ping", "pad": ""}).encode()
            pad = 64 * 1024 - len(line)
            conn.send(line[:-2] + b"x" * pad + b'"}\n')
            assert conn.read() == {"ok": True, "pid": plex.proc.pid}
        assert status(run_dir)["members"][0]["state"] == "running"


def test_half_a_request_then_disconnect_and_idle_clients(run_dir: Path) -> None:
    """Clients that leave mid-request or never speak hold nothing up."""
    with cats(run_dir, "c") as plex:
        for _ in range(20):
            with Connection(run_dir) as conn:
                conn.send(b'{"op": "sta')
        idle = [Connection(run_dir) for _ in range(200)]
        try:  # (answered while they are held: they hold nothing up)
            assert status(run_dir)["members"][0]["state"] == "running"
            result = run("send", "c", "through the crowd", "--run-dir", run_dir)
            assert result.returncode == 0, result.stderr
            plex.expect(r"^c \| through the crowd$")
        finally:
            for conn in idle:
                conn.close()
        assert status(run_dir)["members"][0]["state"] == "running"


def test_a_flood_of_connections_leaves_descriptors_for_starting_members(run_dir: Path) -> None:
    """Past 512 connections (and 64 told "busy"), clients wait in the backlog: the run's
    descriptors stay bounded, so a restart in the middle of the flood can still start."""
    from pipeplex.inputs.control import MAX_CONNECTIONS, REFUSALS

    with cats(run_dir, "c") as plex:
        first = ControlClient(run_dir, timeout=DEADLINE)
        first.connect()
        assert first.request("ping")["ok"]
        fds_before = len(os.listdir(f"/proc/{plex.proc.pid}/fd"))
        flood: list[socket.socket] = []
        try:
            _connect_idle(run_dir, MAX_CONNECTIONS + REFUSALS + 100, flood)
            answer = first.request("restart", name="c")
            assert answer["ok"], answer
            plex.expect(r"^c \* started \(pid " + str(answer["pid"]) + r"\)$")
            fds = len(os.listdir(f"/proc/{plex.proc.pid}/fd"))
            assert fds <= fds_before + MAX_CONNECTIONS + REFUSALS + 16, fds
            for sock in flood:
                sock.close()
            # (On the connection it has: a new one may come before the run has seen the
            # flood go, and be told "busy".)
            assert first.request("status")["members"][0]["state"] == "running"
        finally:
            for sock in flood:
                sock.close()
            first.close()


def test_connections_under_a_low_hard_limit_leave_descriptors_for_a_restart(
        run_dir: Path, tmp_path: Path) -> None:
    """Where a hard limit keeps pipeplex from lifting its own (ulimit -n 256), 512 served
    connections are more than it has: idle ones took the descriptors a member's restart
    needed ("cannot open its stdin and output: Too many open files"), and the stop's look
    for what members left. The connections served are fewer there."""
    cast = tmp_path / "c.toml"
    cast.write_text("".join(f'[procs.m{i}]\ncmd = "sleep 60"\n' for i in range(25))
                    + "[procs.r]\ncmd = \"sh -c 'echo run $$; read x'\"\non_exit = 'restart'\n")
    flood: list[socket.socket] = []
    with Pipeplex("run", cast, "--no-console", "--run-dir", run_dir,
                  prefix=("sh", "-c", 'ulimit -n 256 && exec "$@"', "sh")) as plex:
        try:
            plex.expect(r"^r +\| run \d+")
            before = _sockets_of(plex.proc.pid)
            _connect_idle(run_dir, 240, flood)
            # Once the run has taken as many as it takes (8 served, 2 told busy):
            deadline = time.monotonic() + DEADLINE
            while _sockets_of(plex.proc.pid) < before + 10:
                assert time.monotonic() < deadline, "the run took no connections"
                os.sched_yield()
            write_fifo(run_dir / "r.in", b"end\n")  # r ends, and its policy restarts it
            plex.expect(r"^r +\* restarting")
            plex.expect(r"^r +\| run \d+")
            assert "cannot start" not in plex.text
        finally:
            for sock in flood:
                sock.close()
        plex.signal()
        assert plex.wait() == 143
    assert "could not look for" not in plex.text, plex.text


def _connect_idle(run_dir: Path, count: int, flood: list[socket.socket]) -> None:
    """Up to ``count`` connections to the run's socket that send nothing, into ``flood``
    (the caller closes them); fewer once its listen backlog is full too."""
    for _ in range(count):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        flood.append(sock)
        try:
            sock.connect(str(run_dir / "control.sock"))
        except BlockingIOError:
            return  # the backlog is full too


def _sockets_of(pid: int) -> int:
    """How many sockets process ``pid`` holds."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
    return count


def test_one_client_past_the_limit_is_the_only_one_refused(run_dir: Path) -> None:
    """513 clients connect at once: the first 512 are served, the last is told busy
    (the limit is applied in the order of arrival, not after everyone arrived)."""
    from pipeplex.inputs.control import MAX_CONNECTIONS

    with cats(run_dir, "c"):
        socks = []
        try:
            for _ in range(MAX_CONNECTIONS + 1):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(run_dir / "control.sock"))  # (blocking: waits in the backlog)
                sock.settimeout(DEADLINE)
                socks.append(sock)
            for sock in socks:
                sock.sendall(b'{"op": "ping"}\n')
            answers = []
            for sock in socks:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                answers.append(json.loads(data))
        finally:
            for sock in socks:
                sock.close()
    assert [a.get("error") for a in answers].count("busy") == 1
    assert answers[-1]["error"] == "busy"


def test_a_stop_goes_through_past_the_limit_of_connections(run_dir: Path) -> None:
    """A client that leaks its connections filled the 512: pipeplex stop was told "busy"
    as every other request is, and only a signal could end the cast."""
    from pipeplex.inputs.control import MAX_CONNECTIONS

    with cats(run_dir, "c") as plex:
        held = []
        try:
            for _ in range(MAX_CONNECTIONS):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(str(run_dir / "control.sock"))
                held.append(sock)
            # (Served once the run has taken them: a ping on the last is answered then.)
            held[-1].sendall(b'{"op": "ping"}\n')
            held[-1].settimeout(DEADLINE)
            assert json.loads(held[-1].recv(4096))["ok"]
            refused = run("status", "--run-dir", run_dir)
            assert refused.returncode == 1 and "too many control connections" in \
                refused.stderr, refused.stderr
            stopped = run("stop", "--run-dir", run_dir)
            assert stopped.returncode == 0, stopped.stderr
            # (Answered at once and closed, its connection over the limit: it waited for
            # the run's end all the same, as it says.)
            assert plex.proc.poll() is not None and not run_dir.exists()
            assert plex.wait() == 0
        finally:
            for sock in held:
                sock.close()


def test_fifty_clients_sending_at_once(run_dir: Path) -> None:
    """50 threads, each on its own connection: all 1000 lines arrive whole, in order each."""
    with cats(run_dir, "c", extra=("--pty", "false")) as plex:
        errors: list[BaseException] = []

        def client(i: int) -> None:
            try:
                with ControlClient(run_dir) as conn:
                    for j in range(20):
                        conn.request("send", name="c", data=f"t{i}-{j}\n")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE)
        assert not errors
        assert run("send", "c", "done", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^c \| done$")
        lines = re.findall(r"^c \| t(\d+)-(\d+)$", plex.text, re.MULTILINE)
        assert len(lines) == 1000
        for i in range(50):
            assert [int(j) for k, j in lines if int(k) == i] == list(range(20))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to connect as another user")
def test_a_client_of_another_uid_is_refused(run_dir: Path) -> None:
    """SO_PEERCRED: uid 65534 is refused even with the socket open to everyone."""
    with cats(run_dir, "c") as plex:
        os.chmod(run_dir, 0o711)
        os.chmod(run_dir / "control.sock", 0o666)
        answer = _request_as(65534, run_dir, b'{"op": "send", "name": "c", "data": "evil\\n"}\n')
        assert json.loads(answer) == {
            "ok": False, "error": "permission_denied",
            "message": "permission denied for uid 65534: this run belongs to uid 0",
        }
        plex.expect(r"refused a connection from uid 65534 \(pid \d+\); only uid 0 may use")
        os.chmod(run_dir, 0o700)
        assert run("send", "c", "owner", "--run-dir", run_dir).returncode == 0
        plex.expect(r"^c \| owner$")
        assert "evil" not in plex.text


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to serve as another user")
def test_a_client_sends_nothing_to_a_socket_someone_else_serves(run_dir: Path) -> None:
    """A socket in a folder of ours, but listened on by uid 65534 (who could read what is
    sent): SO_PEERCRED tells, and the client refuses before it sends a byte."""
    run_dir.mkdir(mode=0o700)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(run_dir / "control.sock"))
    listening_r, listening_w = os.pipe()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            _become(65534)
            sock.listen(1)  # (the credentials a client sees are those of this call)
            os.write(listening_w, b"L")
            sock.settimeout(DEADLINE)
            conn, _ = sock.accept()
            conn.settimeout(DEADLINE)
            data = b""
            with contextlib.suppress(ConnectionResetError):
                while chunk := conn.recv(65536):
                    data += chunk
            os.write(w, b"received:" + data)
        except BaseException as exc:
            os.write(w, repr(exc).encode())
        finally:
            os._exit(0)
    os.close(w)
    os.close(listening_w)
    sock.close()
    with os.fdopen(listening_r, "rb") as listening:
        assert listening.read(1) == b"L"
    result = run("send", "c", "password=hunter2", "--run-dir", run_dir)
    with os.fdopen(r, "rb") as reader:
        seen = reader.read()
    os.waitpid(pid, 0)
    assert seen == b"received:"
    assert result.returncode == 4
    assert result.stderr == (f"pipeplex: error: refusing the control socket in {run_dir}: "
                             "uid 65534 serves it, not a pipeplex run of yours; nothing was "
                             "sent\n")


def test_a_client_refuses_a_folder_no_run_of_its_user_made(run_dir: Path, tmp_path: Path) -> None:
    """Open to others, or a link: the client does not even connect."""
    run_dir.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(run_dir / "control.sock"))
        sock.listen(1)
        sock.setblocking(False)
        run_dir.chmod(0o755)
        result = run("status", "--run-dir", run_dir)
        assert result.returncode == 4
        assert f"refusing {run_dir}: its mode is 0755, and a pipeplex run makes its folder " \
               "0700" in result.stderr
        run_dir.chmod(0o700)
        link = tmp_path / "link"
        link.symlink_to(run_dir)
        result = run("send", "c", "x", "--run-dir", link)
        assert result.returncode == 4
        assert f"refusing {link}: it is a symbolic link" in result.stderr
        with pytest.raises(BlockingIOError):
            sock.accept()  # (nobody connected)


def _become(uid: int) -> None:
    """Run on as ``uid`` (its group too, and no other): in a forked child."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _request_as(uid: int, run_dir: Path, request: bytes) -> bytes:
    """Send ``request`` from a forked child running as ``uid``; return what it read."""
    dir_fd = os.open(run_dir, os.O_PATH | os.O_DIRECTORY)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            _become(uid)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(10)
            # Through the folder's descriptor: tmp_path's parents are closed to this uid.
            sock.connect(f"/proc/self/fd/{dir_fd}/control.sock")
            sock.sendall(request)
            data = b""
            try:
                while chunk := sock.recv(65536):
                    data += chunk
            except ConnectionResetError:
                pass  # the run closed without reading our request: that is the refusal
            os.write(w, data)
        except BaseException as exc:
            os.write(w, repr(exc).encode())
        finally:
            os._exit(0)
    os.close(w)
    os.close(dir_fd)
    chunks = []
    with os.fdopen(r, "rb") as reader:
        chunks.append(reader.read())
    os.waitpid(pid, 0)
    return b"".join(chunks)


# pipeplex attach ---------------------------------------------------------------------------


def test_attach_follows_the_output_until_the_run_ends(run_dir: Path) -> None:
    """attach shows the stream from now on, the way run shows it, and ends with the run."""
    with cats(run_dir, "c", "d") as plex, \
            Pipeplex("attach", "--run-dir", run_dir) as watcher, \
            Pipeplex("attach", "--name", "d", "--run-dir", run_dir) as only_d:
        watcher.expect(rf"attached to the run at {re.escape(str(run_dir))}")
        only_d.expect("attached to the run")
        write_fifo(run_dir / "c.in", b"to c\n")
        write_fifo(run_dir / "d.in", b"to d\n")
        plex.expect(r"^d \| to d$")
        seen = {watcher.expect(r"^(c \| to c|d \| to d)$")[1] for _ in range(2)}
        assert seen == {"c | to c", "d | to d"}
        only_d.expect(r"^d \| to d$")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
        assert watcher.wait() == 0
        assert only_d.wait() == 0
        watcher.expect(r"^pipeplex \* got SIGTERM: stopping the cast$")
        watcher.expect(r"^d +\* summary: stopped")
        assert "c | to c" not in only_d.text
        only_d.expect(r"^d \* summary: stopped")


def test_attach_ends_quietly_when_its_reader_leaves(run_dir: Path) -> None:
    """pipeplex attach | head -1: the closed pipe is the reader's wish, not a lost run."""
    with cats(run_dir, "c") as plex:
        attach = subprocess.Popen([*PIPEPLEX, "attach", "--run-dir", str(run_dir)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert attach.stdout is not None and attach.stderr is not None
        try:
            assert b"attached to the run" in attach.stderr.readline()
            attach.stdout.close()
            write_fifo(run_dir / "c.in", b"to c\n")
            plex.expect(r"^c \| to c$")
            assert attach.wait(timeout=DEADLINE) == 0
            assert attach.stderr.read() == b""
        finally:
            attach.kill()
            attach.wait()
            attach.stderr.close()


def test_attach_to_an_unknown_member(run_dir: Path) -> None:
    with cats(run_dir, "c"):
        result = run("attach", "--name", "zz", "--run-dir", run_dir)
        assert result.returncode == 1
        assert "no member named 'zz'" in result.stderr


def test_a_refused_attach_leaves_the_connection_usable(run_dir: Path) -> None:
    """As after any refused request: the next request on it is answered."""
    with cats(run_dir, "c"), Connection(run_dir) as conn:
        for name, error in (("zz", "unknown_member"), ("all", "bad_request"), (5, "bad_request")):
            answer = conn.request({"op": "attach", "name": name, "id": 1})
            assert answer["error"] == error
            assert "'all' for everyone" not in answer["message"]
            assert conn.request({"op": "ping", "id": 2})["ok"]


def test_a_stalled_attach_client_is_dropped_and_nobody_else_slows(run_dir: Path) -> None:
    """A subscriber that never reads is dropped with a notice; another gets everything."""
    flood = py(
        "import sys\n"
        "for line in sys.stdin:\n"
        "    sys.stdout.write(('x' * 99 + '\\n') * 80000)\n"
        "    print('flood done', flush=True)\n"
    )
    # The reader that keeps up runs in a process of its own, free of this one's GIL.
    keeps_up = (
        "import json, socket, sys\n"
        "sock = socket.socket(socket.AF_UNIX)\n"
        "sock.settimeout(30)\n"
        "sock.connect(sys.argv[1])\n"
        "sock.sendall(b'{\"op\": \"attach\", \"name\": \"f\"}\\n')\n"
        "data = bytearray(sock.recv(1 << 20))\n"
        "print('attached' if data.startswith(b'{\"ok\": true') else data, flush=True)\n"
        "while b'flood done' not in data[-4096:]:\n"
        "    chunk = sock.recv(1 << 20)\n"
        "    if not chunk: break\n"
        "    data += chunk\n"
        "print(data.count(b'x' * 99), data.count(b'\"dropped\"'), flush=True)\n"
    )
    with Pipeplex("run", "-p", f"f={flood}", "-p", "c=cat", "--pty", "false",
                  "--run-dir", run_dir) as plex:
        plex.expect("run folder")
        stalled = Connection(run_dir)
        assert stalled.request({"op": "attach"})["ok"]
        reader = subprocess.Popen([sys.executable, "-c", keeps_up, str(run_dir / "control.sock")],
                                  stdout=subprocess.PIPE, text=True)
        assert reader.stdout is not None
        assert reader.stdout.readline() == "attached\n"
        write_fifo(run_dir / "f.in", b"go\n")
        plex.skip_until(r"an attach client was too slow and was dropped \(this client fell "
                        r"\d+ bytes behind the run\); the run goes on")
        plex.skip_until(r"^f \| flood done$")
        out, _ = reader.communicate(timeout=DEADLINE)
        assert out.split() == ["80000", "0"]
        # The run goes on: input, output and status as before.
        write_fifo(run_dir / "c.in", b"still alive\n")
        plex.expect(r"^c \| still alive$")
        assert status(run_dir)["members"][0]["state"] == "running"
        assert stalled.closed_by_peer()  # the run let go of it
        stalled.close()


@contextlib.contextmanager
def _attached(run_dir: Path, stdout: int) -> Iterator[subprocess.Popen[bytes]]:
    """A `pipeplex attach` to the run, once it says it is attached; killed if it is still
    there at the end."""
    attach = subprocess.Popen([*PIPEPLEX, "attach", "--run-dir", str(run_dir)],
                              stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE)
    try:
        assert attach.stderr is not None
        assert attach.stderr.readline().startswith(b"pipeplex: attached to the run")
        yield attach
    finally:
        if attach.poll() is None:
            attach.kill()
            attach.wait()


def test_pipeplex_attach_dropped_says_so_not_that_the_run_was_killed(run_dir: Path) -> None:
    """pipeplex attach whose own output is not read falls behind and is dropped: whether or
    not the notice reached it, it says it was dropped and the run goes on (it said the run
    may have been killed), and exits 1."""
    flood = py("import sys\nfor line in sys.stdin:\n"
               "    sys.stdout.write(('x' * 99 + '\\n') * 80000)\n"
               "    print('flood done', flush=True)\n")
    with Pipeplex("run", "-p", f"f={flood}", "--pty", "false", "--run-dir", run_dir) as plex:
        plex.expect("run folder")
        with _attached(run_dir, subprocess.PIPE) as attach:
            write_fifo(run_dir / "f.in", b"go\n")
            plex.skip_until(r"an attach client was too slow and was dropped")
            _, err = attach.communicate(timeout=DEADLINE)  # (its output read only now)
        assert attach.returncode == 1
        assert b"dropped this client" in err and b"killed" not in err, err


def test_pipeplex_attach_to_a_run_killed_says_it_may_have_been(run_dir: Path) -> None:
    """The connection ends with no end and the run answers nothing more: it was killed."""
    with cats(run_dir, "c") as plex:
        with _attached(run_dir, subprocess.DEVNULL) as attach:
            plex.signal(signal.SIGKILL)
            _, err = attach.communicate(timeout=DEADLINE)
        assert plex.wait() == -signal.SIGKILL
    assert attach.returncode == 1
    assert err == (b"pipeplex: error: the connection to the run ended without its end: was "
                   b"the run killed?\n"), err


def test_a_member_whose_output_is_still_read_after_its_exit_says_it_exited(
        run_dir: Path, tmp_path: Path) -> None:
    """w exited, but a process it started holds its output, so the exit is not published
    yet: status says exited, and send and signal are refused as for any ended member."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    w = f"sh -c 'cat {gate} >/dev/null & echo up; exit 3'"
    with Pipeplex("run", "-p", f"w={w}", "-p", "other=cat", "--on-exit", "ignore",
                  "--run-dir", run_dir) as plex:
        pid = int(plex.expect(r"^w +\* started \(pid (\d+)\)")[1])
        plex.expect(r"^w +\| up$")
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            pass  # exited, and reaped by pipeplex already
        else:
            try:
                assert select.select([fd], [], [], DEADLINE)[0], "w did not exit"
            finally:
                os.close(fd)
        for _ in range(2):  # two round trips: the loop has passed the exit's wake-up
            member = status(run_dir)["members"][0]
        assert (member["state"], member["returncode"]) == ("exited", 3), member
        sent = run("send", "--run-dir", run_dir, "w", "hello")
        assert sent.returncode != 0 and "w is not running; nothing was sent" in sent.stderr
        signalled = run("signal", "--run-dir", run_dir, "w", "TERM")
        assert signalled.returncode != 0, signalled
        assert "w is not running; SIGTERM was not sent" in signalled.stderr
        write_fifo(gate, b"go\n")  # the held output ends: the exit is published
        plex.expect(r"^w +\* exited with code 3")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 3


@pytest.mark.parametrize("clean", [True, False])
def test_a_stop_that_meets_the_runs_own_end_succeeds(tmp_path: Path, clean: bool) -> None:
    """The run ends on its own as pipeplex stop asks (it closes the connection without an
    answer): what was asked is done, status 0 (it was 1, as a refused request); unless the
    run left its socket in place, as one that crashed does, which stays an error."""
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(run_dir / "control.sock"))
        server.listen()

        def end_without_answering() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(4096)  # the request; then the run is gone
                if clean:  # (a run that ends gives its socket up before its clients)
                    (run_dir / "control.sock").unlink()

        ending = threading.Thread(target=end_without_answering)
        ending.start()
        try:
            result = run("stop", "--run-dir", run_dir)
        finally:
            ending.join(timeout=DEADLINE)
    if clean:
        assert (result.returncode, result.stderr) == (0, ""), result.stderr
    else:
        assert result.returncode == 1
        assert "the run closed the connection before answering" in result.stderr


def test_a_request_without_a_descriptor_left_fails_and_the_run_goes_on(
        run_dir: Path) -> None:
    """With no descriptor to spare, a request whose handling needs one (a module's file to
    read: json for the first request, the events' encoder for the first attach) fails for
    that client, not for the run; with descriptors again, the same requests work."""
    with Pipeplex("run", "-p", "a=sleep 60", "--run-dir", run_dir) as plex:
        plex.expect(r"^a \* started")
        pid = plex.proc.pid
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)

        def short_of_descriptors(request: dict[str, Any]) -> dict[str, Any]:
            # At rest (between the loop's callbacks) pipeplex holds the fewest: a look over
            # /proc in a callback only adds for its length, and the orphan reaper looks every
            # 0.1 s as members start: the fewest over longer than that. One more: the
            # connection's.
            sampled, held = time.monotonic(), 1 << 30
            while time.monotonic() < sampled + 0.3:
                held = min(held, len(os.listdir(f"/proc/{pid}/fd")))
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (held + 1, hard))
            try:
                with Connection(run_dir) as conn:
                    return conn.request(request)
            finally:
                resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))

        answer = short_of_descriptors({"op": "status"})
        assert (answer["ok"], answer["error"]) == (False, "failed"), answer
        assert "out of file descriptors" in answer["message"], answer
        assert status(run_dir)["members"][0]["state"] == "running"
        answer = short_of_descriptors({"op": "attach"})
        assert (answer["ok"], answer["error"]) == (False, "failed"), answer
        assert answer["message"].startswith("cannot attach now: "), answer
        with Connection(run_dir) as conn:
            assert conn.request({"op": "attach"})["ok"]
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
    assert "pipeplex: error" not in plex.text, plex.text


def test_a_request_on_a_connection_the_ended_run_closed_fails_as_closed(run_dir: Path) -> None:
    """A client that held its connection while the run ended (a status poller) gets the
    documented RequestFailed with code "closed", not the socket's BrokenPipeError."""
    from pipeplex.errors import RequestFailed

    with cats(run_dir, "c") as plex:
        client = ControlClient(run_dir, timeout=DEADLINE)
        client.connect()
        try:
            assert client.request("ping")["ok"]
            plex.signal(signal.SIGTERM)
            assert plex.wait() == 143
            for _ in range(2):  # (the first write may find the end, or the read after it)
                with pytest.raises(RequestFailed) as failed:
                    client.request("status")
                assert failed.value.code == "closed"
        finally:
            client.close()


def test_a_restart_asked_for_during_an_expect_step_is_waited_through(run_dir: Path,
                                                                      tmp_path: Path) -> None:
    """A step that waits on srv's output sees srv's exit as the restart's doing, not as
    srv going away: it waits for what the new run writes."""
    flag = tmp_path / "ran-once"
    cast = tmp_path / "cast.toml"
    cast.write_text(
        "[procs.srv]\n"
        f"cmd = ['sh', '-c', 'echo up; if [ -e {flag} ]; then echo second run; fi; "
        f"touch {flag}; exec sleep 60']\n"
        "[[step]]\nexpect = '^second run$'\nin = 'srv'\ntimeout = 60\n")
    with Pipeplex("run", cast, "--run-dir", run_dir, "--no-console") as plex:
        plex.expect(r"^srv +\| up$")
        result = run("restart", "srv", "--run-dir", run_dir)
        assert result.returncode == 0, result.stderr
        plex.expect(r"^srv +\| second run$")
        plex.expect(r"^pipeplex \* 1 step done; the cast goes on$")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143, plex.text
    assert "step failed" not in plex.text


def test_a_member_never_started_is_not_said_startable_as_the_cast_stops(
        tmp_path: Path, run_dir: Path) -> None:
    """During the stop, a send to an autostart = false member that never ran no longer
    advises 'pipeplex start lazy', which the stop refuses."""
    code = ("import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('up', flush=True); signal.pause()")  # (ends at the SIGQUIT's SIGKILL)
    cast = tmp_path / "cast.toml"
    cast.write_text(f"[procs.a]\ncmd = {json.dumps([sys.executable, '-c', code])}\n"
                    "stop_timeout = 60\n[procs.lazy]\ncmd = 'cat'\nautostart = false\n")
    with Pipeplex("run", cast, "--run-dir", run_dir, "--no-console") as plex:
        plex.expect(r"^a +\| up$")
        plex.signal(signal.SIGTERM)
        plex.expect(r"^a +\* closed its stdin; sent SIGTERM")
        refused = run("send", "lazy", "hi", "--run-dir", run_dir)
        assert refused.returncode == 1
        assert refused.stderr == ("pipeplex: error: lazy has not started, and will not: the "
                                  "cast is stopping; nothing was sent\n"), refused.stderr
        plex.signal(signal.SIGQUIT)
        assert plex.wait() == 143, plex.text
