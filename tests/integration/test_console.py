"""The console: lines for members and :commands on pipeplex's stdin, a pipe or a terminal."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shlex
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .helpers import (
    DEADLINE,
    PIPEPLEX,
    PROGS,
    Pipeplex,
    PtyPipeplex,
    late_reader,
    py,
    run,
    status,
    write_fifo,
)

TRAP_USR1 = py(
    "import signal, sys\n"
    "signal.signal(signal.SIGUSR1, lambda *a: print('got USR1', flush=True))\n"
    "print('ready', flush=True)\n"
    "for line in sys.stdin: print('read', line.strip(), flush=True)\n"
)


def piped(run_dir: Path, *args: str) -> Pipeplex:
    plex = Pipeplex("run", *args, "--run-dir", run_dir, stdin=subprocess.PIPE)
    plex.expect("run folder")
    return plex


# From a pipe -------------------------------------------------------------------------------


def test_lines_from_a_pipe_reach_members(run_dir: Path) -> None:
    """NAME: text addresses NAME; plain lines go to the first member, then to :to's."""
    with piped(run_dir, "-p", "c=cat", "-p", "d=cat") as plex:
        plex.write(b"d: to d\n")
        plex.expect(r"^d \| to d$")
        plex.write(b"plain\n")
        plex.expect(r"^c \| plain$")
        plex.write(b":to d\n")
        plex.expect(r"^pipeplex \* plain lines go to d$")
        plex.write(b"now to d\n")
        plex.expect(r"^d \| now to d$")
        plex.write(b"all: both\n")
        seen = {plex.expect(r"^(\w) \| both$")[1] for _ in range(2)}
        assert seen == {"c", "d"}
        plex.write(b"\\:not a command\n")
        plex.expect(r"^d \| :not a command$")
        plex.write(b"\\x: not an address\n")
        plex.expect(r"^d \| x: not an address$")
        plex.write(b"c:\n")
        plex.expect(r"^c \| $")
        plex.write(b"d:\r\nc: from a CRLF script\r\n")  # (written on another system)
        seen = {plex.expect(r"^(d \| |c \| from a CRLF script)$")[1] for _ in range(2)}
        assert seen == {"d | ", "c | from a CRLF script"}


@pytest.mark.parametrize("line", [1024, 128 * 1024], ids=["short lines", "long lines"])
def test_a_script_piped_in_waits_for_a_member_that_does_not_read(run_dir: Path,
                                                                  line: int) -> None:
    """8 MiB of lines for a member that reads only once told: the console stops taking
    lines with 1 MiB waiting for it, and reads ahead at most 1 MiB of lines (the script's
    writer then waits, as on any pipe), not into pipeplex's memory; everything arrives, in
    order, once the member reads."""
    import threading
    import zlib

    from pipeplex.participants._stdin import INPUT_FULL, INPUT_ROOM

    size = 8 * 1024 * 1024
    reader = late_reader(size)
    lines = [b"%07d" % i + b"x" * (line - 8) + b"\n" for i in range(size // line)]
    with piped(run_dir, "-p", f"a={reader}") as plex:
        plex.expect(r"^a \| waiting$")
        assert plex.proc.stdin is not None
        stdin = plex.proc.stdin
        writer = threading.Thread(target=lambda: [stdin.write(b"a: " + line) for line in lines]
                                  + [stdin.flush()], daemon=True)
        writer.start()
        deadline = time.monotonic() + 30
        while status(run_dir)["members"][0]["pending_input"] < INPUT_FULL:
            assert time.monotonic() < deadline
        assert status(run_dir)["members"][0]["pending_input"] < INPUT_FULL + INPUT_ROOM
        assert writer.is_alive()  # (it waits on the pipe, with most yet to write)
        assert run("signal", "--run-dir", run_dir, "a", "USR1").returncode == 0
        plex.expect(rf"^a \| read {size} {zlib.crc32(b''.join(lines))}$")
        writer.join(30)
        assert not writer.is_alive()


def test_a_plain_line_for_an_ended_member_says_where_plain_lines_go(run_dir: Path) -> None:
    """The first member, plain lines' target, has ended: the line is dropped, and the
    console says, once, how to send them elsewhere (after the member's own note, once too:
    a script's every later line would say it again)."""
    with piped(run_dir, "-p", "login=true", "-p", "c=cat", "--on-exit", "ignore") as plex:
        plex.expect(r"^login \* exited with code 0$")
        plex.write(b"hello\nagain\n")
        plex.expect(r"^login \* is not running; dropped 6 bytes of input$")
        plex.expect(r"^pipeplex \* plain lines go to login; :to NAME sends them to another "
                    r"member$")
        plex.write(b"c: next\n")
        plex.expect(r"^c +\| next$")
        assert plex.text.count("plain lines go to login") == 1


def test_unknown_member_and_bad_commands_get_a_message(run_dir: Path) -> None:
    """The run goes on after each."""
    with piped(run_dir, "-p", "c=cat", "-p", "d=cat") as plex:
        plex.write(b"zz: hello\n")
        plex.expect(re.escape("pipeplex * no member named 'zz' (members: c, d; or 'all' for "
                              "everyone); start the line with \\ to send it as it is"))
        plex.write(b":frob\n")
        plex.expect(r"unknown command ':frob'; commands: :to, :list, :signal, :restart, "
                    r":start, :close, :quit, :help")
        plex.write(b":signal c\n")
        plex.expect(r"usage: :signal NAME SIG")
        plex.write(b":to zz\n")
        plex.expect(r"no member named 'zz'")
        plex.write(b"c: still here\n")
        plex.expect(r"^c \| still here$")


def test_list_help_signal_close_restart(run_dir: Path) -> None:
    with piped(run_dir, "-p", f"t={TRAP_USR1}", "-p", "c=cat", "--on-exit", "ignore") as plex:
        plex.expect(r"^t \| ready$")
        plex.write(b":list\n")
        plex.expect(r"^pipeplex \* NAME +PID +STATE +UPTIME +RESTARTS +LAST EXIT$")
        pid = int(plex.expect(r"^pipeplex \* t +(\d+) +running ")[1])
        plex.write(b":help\n")
        plex.expect(r"^pipeplex \* :restart NAME +stop NAME and start it again$")
        plex.write(b":signal t USR1\n")
        plex.expect(r"^pipeplex \* SIGUSR1 sent to t from the console$")
        plex.expect(r"^t \| got USR1$")
        plex.write(b":restart t\n")
        new_pid = int(plex.expect(r"^pipeplex \* t restarted \(pid (\d+)\) and ready$")[1])
        assert new_pid != pid
        plex.write(b":list\n")  # (running again, with its last run's exit: 0, at EOF)
        plex.expect(rf"^pipeplex \* t +{new_pid} +running +\S+ +1 +0$")
        plex.write(b":close c\n")
        plex.expect(r"^pipeplex \* closed the stdin of c$")
        plex.expect(r"^c \* exited with code 0$")
        plex.write(b":signal c TERM\n")
        plex.expect(r"^pipeplex \* c is not running; SIGTERM was not sent$")
        plex.write(b":close c\n")  # (again: not said to be closed, as it is gone)
        plex.expect(r"^pipeplex \* c is not running; nothing was closed$")
        plex.write(b"t: after all that\n")
        plex.expect(r"^t \| read after all that$")


def test_a_member_a_signal_ended_counts_when_the_stop_follows_at_once(run_dir: Path) -> None:
    """:signal db TERM then :quit in one write: db ended on its own, of the signal a person
    sent, though the stop began before its exit was seen; the status says so (143)."""
    with piped(run_dir, "-p", "db=sleep 60", "-p", "b=cat", "--on-exit", "ignore") as plex:
        plex.expect(r"^b +\* started")
        plex.write(b":signal db TERM\n:quit\n")
        plex.expect(r"^db \* summary: killed by SIGTERM after")
        assert plex.wait() == 128 + signal.SIGTERM


def test_list_tells_a_suspended_member_from_a_running_one(run_dir: Path) -> None:
    with piped(run_dir, "-p", "w=sleep 60") as plex:
        pid = int(plex.expect(r"^w \* started \(pid (\d+)\)$")[1])
        plex.write(b":signal w STOP\n")
        plex.expect(r"^pipeplex \* SIGSTOP sent to w from the console$")
        # (A stop takes effect as the process is next scheduled: seen in /proc first.)
        stat = Path(f"/proc/{pid}/stat")
        deadline = time.monotonic() + 10
        while stat.read_text().split(")")[-1].split()[0] != "T" and time.monotonic() < deadline:
            select.select([], [], [], 0.005)
        plex.write(b":list\n")
        plex.expect(rf"^pipeplex \* w +{pid} +suspended ")
        plex.write(b":signal w CONT\n:list\n")
        plex.expect(rf"^pipeplex \* w +{pid} +running ")
        plex.write(b":quit\n")
        assert plex.wait() == 0


def test_interrupting_a_shell_on_a_full_terminal_reaches_its_foreground_job(
        run_dir: Path, tmp_path: Path) -> None:
    """:signal sh INT does what Ctrl-C in that terminal would: the command the shell runs
    (in a group of its own) gets it; the shell, which ignores it, is not the target."""
    job = tmp_path / "job.py"
    job.write_text("import signal, sys\n"
                   "signal.signal(signal.SIGINT, lambda *a: (print('job got INT'), sys.exit(0)))\n"
                   "print('job ready', flush=True)\n"
                   "signal.pause()\n")
    plex = piped(run_dir, "--pty", "true", "-p", "sh=sh -i")
    with plex:
        plex.expect(r"sh +\* started")
        plex.write(f"sh: {sys.executable} {job}\n".encode())
        plex.expect(r"^sh +\| (\S+ )?job ready\r?$")
        plex.write(b":signal sh INT\n")
        plex.expect(r"^sh +\| job got INT\r?$")
        plex.write(b"sh: echo the shell lives on\n")
        plex.expect(r"^sh +\| (\S+ )?the shell lives on\r?$")
        plex.write(b":quit\n")
        assert plex.wait() == 0


def test_a_status_set_before_a_restart_is_explained(run_dir: Path) -> None:
    """The summaries tell each member's last run: when an earlier one set the exit status,
    a last line says which."""
    with piped(run_dir, "-p", "a=cat", "-p", "w=cat", "--on-exit", "ignore") as plex:
        plex.write(b":signal w KILL\n")
        plex.expect(r"^w +\* killed by SIGKILL")
        plex.write(b":restart w\n")
        plex.expect(r"w restarted \(pid \d+\)")
        plex.write(b":quit\n")
        assert plex.wait() == 137
    assert plex.text.splitlines()[-1] == (
        "pipeplex * exit status 137: w killed by SIGKILL, in an earlier run")


def test_a_scripts_line_after_a_restart_reaches_the_new_instance(run_dir: Path) -> None:
    """In a script, the line after :restart waits for the restart: the new instance gets
    it, rather than the one being stopped (which lost it, though it was recorded sent);
    and the line before it, still unread by the old instance, is read before it ends."""
    script = b"c: hello before\n:restart c\nc: hello after restart\n:quit\n"
    result = subprocess.run([*PIPEPLEX, "run", "-p", "c=cat", "--run-dir", str(run_dir)],
                            input=script, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout
    out = result.stdout.decode()
    assert "c restarted (pid" in out
    assert "c | hello after restart\n" in out, out
    assert out.index("c restarted (pid") < out.index("c | hello after restart")
    # The line before it is answered too: like :quit, the restart closes stdin first.
    assert "c | hello before\n" in out and "c * exited with code 0" in out, out


def test_quit_stops_the_cast(run_dir: Path) -> None:
    """:quit stops the cast gracefully; the run exits 0. While it stops, the status says
    why, as for a stop asked for otherwise (it said nothing: the reason holds no text
    before "stopping the cast")."""
    stubborn = py("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                  "print('ignoring', flush=True)\nsignal.pause()\n")
    with piped(run_dir, "-p", "c=cat", "-p", f"s={stubborn}", "--grace", "600") as plex:
        plex.expect(r"^s \| ignoring$")
        plex.write(b":quit\n")
        plex.expect(r"^s +\* still running [\d.]+ s after its stdin closed; sent SIGTERM")
        assert status(run_dir)["stop_reason"] == "asked for with :quit"
        assert run("status", "--run-dir", run_dir).stdout.endswith(
            "the cast is stopping (asked for with :quit)\n")
        plex.signal(signal.SIGINT)  # (a Ctrl-C during a stop skips the grace)
        assert plex.wait() == 130
        assert "stopping the cast (:quit)" in plex.text


def test_a_scripts_last_lines_before_quit_get_their_answers(run_dir: Path) -> None:
    """:quit closes each member's stdin first and gives it a moment to end at EOF: what
    the script sent just before is answered, not cut off by SIGTERM."""
    script = b"".join(b"c: line %d\n" % i for i in range(200)) + b":quit\n"
    result = subprocess.run([*PIPEPLEX, "run", "-p", "c=cat", "--run-dir", str(run_dir)],
                            input=script, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout
    out = result.stdout.decode()
    assert all(f"c | line {i}\n" in out for i in range(200)), out
    assert "c * exited with code 0" in out and "SIGTERM" not in out


def test_eof_on_the_pipe_ends_the_console_not_the_run(run_dir: Path) -> None:
    with piped(run_dir, "-p", "c=cat") as plex:
        plex.write(b"c: last from the pipe\n")
        plex.close_stdin()
        line = r"^c \| last from the pipe$"
        ended = (r"^pipeplex \* console input ended; the cast goes on \(pipeplex stop, "
                 r"Ctrl-C or SIGTERM stops it\)$")
        plex.expect(rf"(?s){line}.*{ended}|{ended}.*{line}")  # (the two in either order)
        write_fifo(run_dir / "c.in", b"the run goes on\n")
        plex.expect(r"^c \| the run goes on$")
        assert status(run_dir)["members"][0]["state"] == "running"
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143


def test_a_file_on_stdin_is_a_script(run_dir: Path, tmp_path: Path) -> None:
    """pipeplex run < file reads the same lines; the last may lack its newline."""
    script = tmp_path / "script"
    script.write_text("c: one\n:list\nc: two")
    with script.open("rb") as stdin:
        result = subprocess.run(
            [*PIPEPLEX, "run", "-p", "c=head -n 2", "--run-dir", str(run_dir)],
            stdin=stdin, capture_output=True, text=True, timeout=30,
        )
    assert result.returncode == 0, result.stdout
    assert "c | one\n" in result.stdout and "c | two\n" in result.stdout
    assert re.search(r"^pipeplex \* c +\d+ +running", result.stdout, re.MULTILINE)


def test_a_script_waits_for_the_cast_to_be_up(run_dir: Path, tmp_path: Path) -> None:
    """Lines piped in before the members are up wait for them instead of being dropped."""
    slow = tmp_path / "slow.py"
    slow.write_text(
        "import signal, sys\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})\n"
        "print('waiting', flush=True)\n"
        "signal.sigwait({signal.SIGUSR1})\n"
        "print('ready', flush=True)\n"
        "print('got', sys.stdin.readline().strip(), flush=True)\n"
    )
    cast = tmp_path / "cast.toml"
    cast.write_text(f'[procs.slow]\ncmd = ["{sys.executable}", "{slow}"]\nready = "^ready$"\n'
                    '[procs.c]\ncmd = "head -n 1"\nafter = ["slow"]\n')
    with Pipeplex("run", cast, "--on-exit", "ignore", "--run-dir", run_dir,
                  stdin=subprocess.PIPE) as plex:
        plex.write(b"slow: first\nc: second\n")
        plex.close_stdin()
        plex.expect(r"^slow \| waiting$")  # not ready: c has not even started
        assert run("signal", "slow", "USR1", "--run-dir", run_dir).returncode == 0
        seen = {plex.expect(r"^(slow \| got first|c    \| second)$")[1] for _ in range(2)}
        assert seen == {"slow | got first", "c    | second"}
        assert plex.wait() == 0
        assert "has not started yet" not in plex.text


def test_no_console_without_a_usable_stdin(run_dir: Path) -> None:
    """With stdin on /dev/null there is no console; everything else works."""
    result = run("run", "-p", "c=echo hi", "--run-dir", run_dir)
    assert result.returncode == 0
    assert "c | hi" in result.stdout
    assert "console:" not in result.stdout


def test_no_console_flag_ignores_a_pipe(run_dir: Path) -> None:
    with Pipeplex("run", "-p", "c=cat", "--no-console", "--run-dir", run_dir,
                  stdin=subprocess.PIPE) as plex:
        plex.expect("run folder")
        plex.write(b":quit\n")
        write_fifo(run_dir / "c.in", b"marker\n")
        plex.expect(r"^c \| marker$")
        assert "(:quit)" not in plex.text


# On a terminal -----------------------------------------------------------------------------


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the console history out of the real home folder."""
    folder = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(folder))
    return folder


@pytest.mark.usefixtures("state_home")
def test_the_prompt_sends_lines_and_output_prints_above_it(run_dir: Path) -> None:
    """Typed lines reach members; output arriving mid-typing leaves the typed line intact."""
    with PtyPipeplex("run", "-p", "c=cat", "-p", "d=cat", "--run-dir", run_dir) as plex:
        plex.expect(r"console: type NAME: text to send a line, :help for more")
        plex.expect(r"^c>$")
        plex.type("c: hello\r")
        plex.expect(r"^c \| hello$")
        plex.type("d: half")
        plex.expect(r"c> d: half")
        write_fifo(run_dir / "c.in", b"meanwhile\n")
        plex.expect(r"^c \| meanwhile$")
        plex.expect(r"c> d: half")  # the prompt and the typed text are drawn again below
        plex.type(" and half\r")
        plex.expect(r"^d \| half and half$")
        plex.type(":to d\r")
        plex.expect(r"plain lines go to d")
        plex.expect(r"^d>$")
        plex.type("plain\r")
        plex.expect(r"^d \| plain$")


def test_ctrl_space_loses_nothing_typed_after_it(run_dir: Path) -> None:
    """Ctrl-Space (NUL: an input method's key, easy to hit) started a selection in which
    the keys typed next were not inserted: the line went out cut, without a sign."""
    with PtyPipeplex("run", "-p", "c=cat", "--run-dir", run_dir) as plex:
        plex.expect(r"^c>$")
        plex.type("c: before")
        plex.expect(r"c> c: before")
        plex.type("\x00")
        plex.type(" and after\r")
        plex.expect(r"^c \| before and after$")


def test_a_pasted_block_is_taken_line_by_line(run_dir: Path) -> None:
    """A terminal brackets a paste: its lines come as one entry, each then taken as if
    typed, with its own address or command; the paste's last newline adds no line."""
    with PtyPipeplex("run", "-p", "c=cat", "-p", "d=cat", "--run-dir", run_dir) as plex:
        plex.expect(r"^c>$")
        plex.type("\x1b[200~c: one\nd: two\n:to d\nthree\n\x1b[201~\r")
        plex.expect(r"^d \| two$")
        plex.expect(r"^d \| three$")  # (after ":to d": the reply may come before "two")
        plex.type(":quit\r")
        assert plex.wait() == 0
    lines = plex.text.splitlines()
    assert "c | one" in lines and "pipeplex * plain lines go to d" in lines
    assert "d | " not in lines and "c | d: two" not in lines


def test_lines_pasted_where_the_terminal_does_not_bracket_them_are_one_entry(
        run_dir: Path, state_home: Path) -> None:
    """A terminal that does not bracket a paste sends its lines as if typed: the lines that
    come in one read are taken as one entry (not a prompt drawn per line), each line still
    as if typed, and every line arrives, in order."""
    lines = ["c: one", "d: two", ":to d", "three", *(f"bulk{i:03d}" for i in range(300))]
    # (A screen taller than what a read brings, which is drawn as the entry: this test's
    # terminal keeps no screen height.)
    with PtyPipeplex("run", "-p", "c=cat", "-p", "d=cat", "--run-dir", run_dir,
                     rows=400) as plex:
        plex.expect(r"^c>$")
        plex.type("".join(line + "\r" for line in lines))
        plex.expect(r"^d \| two$")
        plex.expect(r"^d \| three$")
        for i in range(300):
            plex.expect(rf"^d \| bulk{i:03d}$")
        plex.type(":quit\r")
        assert plex.wait() == 0
    assert "c | one" in plex.text.splitlines()  # (before or after d's: two members)
    history = (state_home / "pipeplex" / "console-history").read_text()
    entries = [[line[1:] for line in block.splitlines() if line.startswith("+")]
               for block in re.split(r"^# .*$", history, flags=re.MULTILINE)]
    assert [line for entry in entries for line in entry] == [*lines, ":quit"]
    assert max(len(entry) for entry in entries) > 1, entries


@pytest.mark.usefixtures("state_home")
def test_the_prompt_never_asks_the_terminal_where_its_cursor_is(run_dir: Path) -> None:
    """prompt_toolkit's cursor-position requests (CPR) are off: a program driving the
    console (pexpect, expect) answers none, and each entered line waited up to a second
    for the answer, with a warning on the screen."""
    with PtyPipeplex("run", "-p", "c=cat", "--run-dir", run_dir) as plex:
        plex.expect(r"^c>$")
        for i in range(3):
            plex.type(f"line{i}\r")
            plex.expect(rf"^c \| line{i}$")
        plex.type(":quit\r")
        assert plex.wait() == 0
    assert b"\x1b[6n" not in plex.output
    assert "CPR" not in plex.text


@pytest.mark.usefixtures("state_home")
def test_keys_typed_while_output_prints_are_not_echoed_by_the_terminal(run_dir: Path) -> None:
    """Only the prompt shows typed keys: the tty never gets to echo them itself."""
    ticker = f"{sys.executable} {PROGS / 'ticker.py'}"
    with PtyPipeplex("run", "-p", "a=cat", "-p", f"ticker={ticker}", "--run-dir", run_dir) as plex:
        plex.expect(r"^ticker \| tick \d+$")
        for key in "a: " + "zq" * 20:  # one key per line of output, right as it prints
            plex.type(key)
            plex.expect(r"^ticker \| tick \d+$")
        plex.type("\r")
        plex.expect(r"^a +\| (zq){20}$")
        plex.type("ticker: enough\r")
        plex.expect(r"^ticker \* exited")
        stray = [line for line in plex.text.splitlines()
                 if "zq" in line and not re.match(r"^a> a: (zq)*z?$|^a +\| (zq){20}$", line)]
        assert not stray, stray


@pytest.mark.usefixtures("state_home")
def test_the_prompt_completes_commands_and_names(run_dir: Path) -> None:
    with PtyPipeplex("run", "-p", "alpha=cat", "-p", "beta=cat", "--run-dir", run_dir) as plex:
        plex.expect(r"^alpha>$")
        plex.type("be\t")
        plex.expect(r"^alpha> beta:$")
        plex.type("completed\r")
        plex.expect(r"^beta  \| completed$")
        plex.type(":li\t")
        plex.expect(r"^alpha> :list$")
        plex.type("\r")
        plex.expect(r"NAME +PID +STATE")
        # Keys that come with the Tab in one read (typed ahead, or by a program) find the
        # line completed.
        plex.type("be\tahead\r")
        plex.expect(r"^beta  \| ahead$")
        plex.type(":li\t\r")
        plex.expect(r"^alpha> :list$")
        plex.expect(r"NAME +PID +STATE")
        plex.type(":signal be\t")
        plex.expect(r"^alpha> :signal beta$")
        plex.type("HU\t")
        plex.expect(r"^alpha> :signal beta HUP$")


@pytest.mark.usefixtures("state_home")
def test_history_recalls_earlier_lines(run_dir: Path, state_home: Path) -> None:
    with PtyPipeplex("run", "-p", "c=cat", "--run-dir", run_dir) as plex:
        plex.expect(r"^c>$")
        plex.type("c: remembered\r")
        plex.expect(r"^c \| remembered$")
        plex.type("\x1b[A\r")  # up arrow, Enter
        plex.expect(r"^c \| remembered$")
    assert "c: remembered" in (state_home / "pipeplex" / "console-history").read_text()


@pytest.mark.usefixtures("state_home")
def test_a_history_file_others_could_read_is_made_private(run_dir: Path,
                                                          state_home: Path) -> None:
    """One made by hand, or by an older version, as 0644: what is typed (hosts, tokens a
    member asked for outside a password prompt) is nobody else's."""
    history = state_home / "pipeplex" / "console-history"
    history.parent.mkdir(parents=True)
    history.write_text("")
    history.chmod(0o644)
    with PtyPipeplex("run", "-p", "c=cat", "--run-dir", run_dir) as plex:
        plex.expect(r"^c>$")
        plex.type(":quit\r")
        assert plex.wait() == 0
    assert oct(history.stat().st_mode & 0o777) == "0o600"


def test_a_password_typed_for_a_member_is_kept_out_of_the_history(
        run_dir: Path, state_home: Path, tmp_path: Path) -> None:
    """A member whose terminal reads a password (echo off in line mode: getpass, sudo) gets
    the line typed for it, but the line shows as stars, and neither the history nor the
    transcript keeps it; also when a pasted ':to' sends it there. A REPL on readline (echo
    and line mode off, as it echoes itself) is typed to as usual."""
    asks = ("import getpass; a = getpass.getpass('pw: '); b = getpass.getpass('pw2: '); "
            "print('got', len(a), len(b)); print('then', input('next: '))")
    cmd = shlex.join([sys.executable, "-c", asks])
    repl = shlex.join([sys.executable, "-i", "-q"])
    transcript = tmp_path / "t.jsonl"
    with PtyPipeplex("run", "-p", f"m={cmd}", "-p", f"r={repl}", "--pty", "true",
                     "--transcript", transcript, "--run-dir", run_dir) as plex:
        plex.expect(r"^m +\| pw:")  # (getpass turns the echo off before it asks)
        plex.type("m: hunter2")
        plex.expect(r"m> m: \*{7}")  # (who gets it stays in sight)
        plex.type("\r")
        plex.expect(r"^m +\| pw2:")
        plex.type(":to r\r")
        plex.expect(r"plain lines go to r")
        plex.type("6*7\r")
        plex.expect(r"^r +\| 42")
        plex.type("\x1b[200~:to m\nswordfish\n\x1b[201~\r")
        plex.expect(r"^m +\| got 7 9")
        plex.expect(r"^m +\| next:")
        plex.type("m: visible\r")
        plex.expect(r"^m +\| then visible")
        assert plex.wait() == 0  # (m ended: on_exit = stop)
    history = (state_home / "pipeplex" / "console-history").read_text()
    assert {"+m: visible", "+6*7"} <= set(history.splitlines()), history
    for secret in ("hunter2", "swordfish"):
        assert secret not in history
        assert secret not in plex.text  # (typed as stars, as the member's prompt shows none)
        assert secret not in transcript.read_text()
    assert "r> 6*7" in plex.text


@pytest.mark.usefixtures("state_home")
def test_ctrl_d_ends_the_console_only(run_dir: Path) -> None:
    with PtyPipeplex("run", "-p", "c=cat", "--run-dir", run_dir) as plex:
        plex.expect(r"^c>$")
        plex.type("\x04")
        plex.expect(r"console closed; the cast goes on")
        write_fifo(run_dir / "c.in", b"still running\n")
        plex.expect(r"^c \| still running$")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143


@pytest.mark.usefixtures("state_home")
def test_a_member_cannot_clear_the_screen_or_retitle_the_terminal(run_dir: Path,
                                                                  tmp_path: Path) -> None:
    """What a member writes to clear the screen or set the window's title never reaches
    pipeplex's terminal, which shows the rest of the line and its colours; the transcript
    keeps every byte as written."""
    transcript = tmp_path / "run.jsonl"
    written = "a\x1b[2J\x1b[H\x1b]0;pwned\x07b\x1b[31mred\x1b[0m"
    with PtyPipeplex("run", "-p", f"e={py(f'print({written!r}, flush=True)')}",
                     "--transcript", transcript, "--run-dir", run_dir) as plex:
        assert plex.wait() == 0
    assert re.search(rb"e\x1b\[0m \| ab\x1b\[31mred\x1b\[0m", plex.output), plex.output
    for control in (b"\x1b[2J", b"\x1b[H", b"\x1b]", b"pwned"):
        assert control not in plex.output, (control, plex.output)
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert [r["d"] for r in records if r.get("s") == "out"] == [written + "\n"]


@pytest.mark.usefixtures("state_home")
def test_ctrl_c_stops_the_cast_and_restores_the_terminal(run_dir: Path) -> None:
    """Ctrl-C at the prompt is SIGINT's stop: exit 130, the terminal back in cooked mode.
    The member gets one stop signal, pipeplex's SIGTERM, and not the terminal's SIGINT too
    (many servers take a second signal as "quit now")."""
    # (Signals taken with sigwaitinfo, not a handler and pause(): one that came between
    # the end of the read and the pause() was never seen, 1 run in 5.)
    code = ("import signal, sys\n"
            "sigs = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT}\n"
            "signal.pthread_sigmask(signal.SIG_BLOCK, sigs)\n"
            "print('stubborn', flush=True)\n"
            "sys.stdin.read()\n"
            "while True:\n"
            "    got = signal.sigwaitinfo(sigs).si_signo\n"
            "    print('got', signal.Signals(got).name, flush=True)\n")
    with PtyPipeplex("run", "-p", f"s={py(code)}", "--grace", "30",
                     "--run-dir", run_dir) as plex:
        plex.expect(r"^s \| stubborn$")
        plex.expect(r"^s>$")
        assert not plex.terminal_flags() & termios.ICANON  # the prompt owns the terminal
        plex.type("\x03")
        plex.expect(r"got SIGINT: stopping the cast; press Ctrl-C again to skip the grace")
        plex.expect(r"^s \| got SIGTERM$")
        plex.type("\x03")
        plex.expect(r"skipping the grace period: SIGKILL to every member")
        assert plex.wait() == 130
        flags = plex.terminal_flags()
        assert flags & termios.ICANON and flags & termios.ECHO
    assert plex.output.count(b"| got SIG") == 1, plex.output


@pytest.mark.usefixtures("state_home")
def test_the_terminal_is_set_back_when_pipeplex_is_killed(run_dir: Path) -> None:
    """SIGKILL, which pipeplex cannot catch, left its terminal raw, and a shell after it
    without line editing of its own (dash) echoed nothing and took no Enter. The guardian,
    told of the terminal's settings, sets them back, and turns bracketed paste off."""
    fresh_master, fresh_slave = os.openpty()  # (how PtyPipeplex's terminal starts)
    as_found = termios.tcgetattr(fresh_slave)
    os.close(fresh_slave)
    os.close(fresh_master)
    with PtyPipeplex("run", "-p", "c=cat", "--run-dir", run_dir) as plex:
        assert plex.master is not None
        # The terminal as the shell that started pipeplex holds it: open after pipeplex.
        shell = fcntl.ioctl(plex.master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY)
        try:
            plex.expect(r"^c>$")
            assert not plex.terminal_flags() & termios.ICANON  # the prompt owns it
            plex.signal(signal.SIGKILL)
            plex.proc.wait(timeout=DEADLINE)
            deadline = time.monotonic() + DEADLINE
            while not plex.output.endswith(b"\x1b[?2004l\x1b[?25h"):
                assert plex._read_some(deadline), plex.output[-80:]
            assert termios.tcgetattr(plex.master) == as_found
        finally:
            os.close(shell)


TIOCGPTPEER = 0x5441
"""Linux's ioctl that opens a pty's other end from its master."""


@pytest.mark.usefixtures("state_home")
def test_the_prompt_comes_back_after_pipeplex_was_stopped_and_continued(run_dir: Path) -> None:
    """Stopped from elsewhere (SIGSTOP, a debugger), the shell takes the terminal and sets
    it cooked; at fg the console had stayed so, echoing keys and holding them until Enter.
    It makes the terminal raw again and draws its prompt anew."""
    with PtyPipeplex("run", "-p", "c=cat", "--run-dir", run_dir) as plex:
        assert plex.master is not None
        plex.expect(r"^c>$")
        cooked = termios.tcgetattr(plex.master)
        cooked[3] |= termios.ICANON | termios.ECHO
        plex.signal(signal.SIGSTOP)
        termios.tcsetattr(plex.master, termios.TCSANOW, cooked)  # (as the shell does)
        plex.signal(signal.SIGCONT)
        plex.expect(r"^c>$")
        deadline = time.monotonic() + DEADLINE
        while plex.terminal_flags() & termios.ICANON:
            assert time.monotonic() < deadline, "the terminal stays cooked"
        plex.type("hello\r")
        plex.expect(r"^c +\| hello$")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143


@pytest.mark.usefixtures("state_home")
def test_ctrl_c_stops_the_cast_at_once_behind_a_terminal_that_takes_nothing(
        run_dir: Path, tmp_path: Path) -> None:
    """A stalled terminal (an ssh link that hangs) while a member floods: Ctrl-C starts the
    stop at once, although the output waits and no key is being read."""
    told = tmp_path / "told"
    os.mkfifo(told)
    reader = os.open(told, os.O_RDONLY | os.O_NONBLOCK)
    code = ("import os, signal\n"
            "def term(*a):\n"
            f"    os.write(os.open({str(told)!r}, os.O_WRONLY), b'SIGTERM')\n"
            "    os._exit(0)\n"
            "signal.signal(signal.SIGTERM, term)\n"
            "os.write(1, b'flooding\\n')\n"
            "while True: os.write(1, (b'x' * 99 + b'\\n') * 100)\n")
    try:
        with PtyPipeplex("run", "-p", f"f={py(code)}", "--run-dir", run_dir) as plex:
            plex.expect(r"^f \| flooding$")
            # From here on nothing is read from the terminal: it fills, then pipeplex's
            # buffer does, and the member is paused on its full pty.
            plex.type("\x03")
            assert select.select([reader], [], [], 10)[0], "the member got no SIGTERM"
            assert os.read(reader, 16) == b"SIGTERM"
            assert plex.wait() == 130  # (read again: the output held, then the stop's lines)
        assert "got SIGINT: stopping the cast" in plex.text
    finally:
        os.close(reader)


@pytest.mark.usefixtures("state_home")
def test_a_stop_signal_after_the_end_gets_out_from_behind_a_terminal_that_takes_nothing(
        run_dir: Path) -> None:
    """The cast ended with output the terminal has not taken (it takes nothing, a stalled
    link), the prompt still winding down: Ctrl-C drops that output and pipeplex leaves."""
    code = ("import os\n"
            "os.write(1, b'flooding\\n')\n"
            "for _ in range(1000): os.write(1, b'x' * 999 + b'\\n')\n")
    with PtyPipeplex("run", "-p", f"f={py(code)}", "--run-dir", run_dir) as plex:
        pid = int(plex.expect(r"^f +\* started \(pid (\d+)\)")[1])
        plex.expect(r"^f \| flooding$")
        # From here on nothing is read. The member ends; a Ctrl-C that comes before the
        # cast has ended stops nothing more: another follows until pipeplex leaves.
        members = os.pidfd_open(pid)
        try:
            assert select.select([members], [], [], 30)[0], "the member did not end"
        finally:
            os.close(members)
        left = os.pidfd_open(plex.proc.pid)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                plex.signal(signal.SIGINT)
                if select.select([left], [], [], 0.2)[0]:
                    break
            assert select.select([left], [], [], 0)[0], "pipeplex still waits for the terminal"
        finally:
            os.close(left)
        plex.wait()


@pytest.mark.usefixtures("state_home")
def test_ctrl_c_stops_the_cast_when_sigint_is_inherited_as_ignored(run_dir: Path) -> None:
    """Under a wrapper's trap '' INT the terminal's SIGINT would not reach pipeplex: Ctrl-C
    is then a key of the prompt, which stops the cast all the same."""
    with PtyPipeplex("run", "-p", "c=cat", "--run-dir", run_dir,
                     prefix=("sh", "-c", 'trap "" INT; exec "$@"', "sh")) as plex:
        plex.expect(r"^c>$")
        plex.type("\x03")
        plex.expect(r"got SIGINT: stopping the cast")
        assert plex.wait() == 130


@pytest.mark.usefixtures("state_home")
def test_ctrl_z_does_not_suspend_and_ctrl_backslash_quits_harder(run_dir: Path) -> None:
    """Ctrl-Z would leave the members running unread: it says so. Ctrl-\\ is what SIGQUIT
    is to a run without a prompt: a stop that skips the grace (it did nothing here)."""
    stuck = py("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
               "print('up', flush=True)\nsignal.pause()\n")
    with PtyPipeplex("run", "-p", "c=cat", "-p", f"s={stuck}", "--grace", "600",
                     "--run-dir", run_dir) as plex:
        plex.expect(r"^s +\| up")
        plex.type("\x1a")
        plex.expect(r"pipeplex does not suspend")
        plex.type("c: still here\r")
        plex.expect(r"^c +\| still here$")
        plex.type("\x1c")
        plex.expect(r"got SIGQUIT: stopping the cast without the grace period")
        assert plex.wait() == 128 + signal.SIGQUIT


@pytest.mark.usefixtures("state_home")
@pytest.mark.parametrize("console", [True, False], ids=["prompt", "no-console"])
def test_members_on_a_pty_follow_the_width_of_pipeplex_terminal(
        run_dir: Path, console: bool) -> None:
    """A resize reaches a full-terminal member as its own SIGWINCH and new size (the
    terminal's, less the name's column), with the prompt up or without a console: its rows
    too, which pagers and full-screen programs go by."""
    code = ("import os, signal\n"
            "def show(*a):\n"
            "    size = os.get_terminal_size(0)\n"
            "    print('cols', size.columns, 'lines', size.lines, flush=True)\n"
            "signal.signal(signal.SIGWINCH, show)\n"
            "show()\n"
            "while True: signal.pause()\n")
    extra = [] if console else ["--no-console"]
    with PtyPipeplex("run", "--pty", "true", "-p", f"w={py(code)}", *extra,
                     "--run-dir", run_dir, columns=100, rows=24) as plex:
        plex.expect(r"^w \| cols 96 lines 24\r?$")  # (100, less "w | ")
        assert plex.master is not None
        fcntl.ioctl(plex.master, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
        plex.expect(r"^w \| cols 116 lines 30\r?$")
        fcntl.ioctl(plex.master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        plex.expect(r"^w \| cols 116 lines 40\r?$")
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143


def test_with_timestamps_members_are_as_wide_as_what_the_stamps_leave(run_dir: Path) -> None:
    """The column of timestamps is taken from a member's width as its name's is: a
    full-width line of a member took 113 columns of a 100-column terminal and wrapped."""
    code = ("import os\n"
            "size = os.get_terminal_size(0)\n"
            "print('cols', size.columns, flush=True)\n")
    with PtyPipeplex("run", "--pty", "true", "--timestamps", "-p", f"w={py(code)}",
                     "--no-console", "--run-dir", run_dir, columns=100, rows=24) as plex:
        plex.expect(r"^[\d:.]{12} w \| cols 83\r?$")  # (100, less "HH:MM:SS.mmm w | ")
        assert plex.wait() == 0


def test_a_terminal_that_does_not_know_its_size_gives_members_80_by_24(run_dir: Path) -> None:
    """script(1), some containers' terminals: 0 x 0. A member got 20 x 2 from it (its least),
    and bash wrapped every line it echoed at 20 columns."""
    code = ("import os\n"
            "size = os.get_terminal_size(0)\n"
            "print('cols', size.columns, 'lines', size.lines, flush=True)\n")
    with PtyPipeplex("run", "--pty", "true", "-p", f"w={py(code)}", "--no-console",
                     "--run-dir", run_dir, columns=0, rows=0) as plex:
        plex.expect(r"^w \| cols 80 lines 24\r?$")
        assert plex.wait() == 0


@pytest.mark.usefixtures("state_home")
def test_the_prompt_is_gone_when_the_run_ends(run_dir: Path) -> None:
    """A run that ends by itself erases its prompt and leaves the terminal as it was."""
    with PtyPipeplex("run", "-p", "c=cat", "--run-dir", run_dir) as plex:
        plex.expect(r"^c>$")
        plex.type(":quit\r")
        assert plex.wait() == 0
        tail = plex.text.rsplit("summary", 1)[1]
        assert "c>" not in tail
        assert plex.terminal_flags() & termios.ICANON


BACKGROUND_JOB = """\
import fcntl, os, sys, termios
master, slave = os.openpty()
os.setsid()
fcntl.ioctl(slave, termios.TIOCSCTTY, 0)  # (this process's job has the terminal)
pid = os.fork()
if pid == 0:  # a job of its own, in the background of that terminal, as `cmd &` is
    os.setpgid(0, 0)
    os.dup2(slave, 0)
    os.execv(sys.executable, [sys.executable, "-m", "pipeplex", *sys.argv[1:]])
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_run_in_the_background_of_its_terminal_says_it_has_no_console(run_dir: Path) -> None:
    """Started with `&` from an interactive shell, pipeplex has no console (reading would
    stop it), and `fg` brings none: it said nothing, and the keys typed for it waited for
    the shell, which ran them once the cast ended."""
    result = subprocess.run(
        [sys.executable, "-c", BACKGROUND_JOB, "run", "-p", "a=echo hi", "--run-dir",
         str(run_dir)], capture_output=True, text=True, timeout=DEADLINE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^pipeplex \* no console: pipeplex was started in the background of its "
                     r"terminal \(fg does not bring one\); send input with pipeplex send or "
                     r"NAME\.in$", result.stdout, re.MULTILINE), result.stdout


def _state(pid: int) -> str:
    """Process ``pid``'s state letter (R, S, T for stopped...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _until(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not done():
        assert time.monotonic() < deadline, what
        os.sched_yield()


JOB_SHELL = """\
import os, signal, sys
signal.signal(signal.SIGTTOU, signal.SIG_IGN)
pid = os.fork()
if pid == 0:  # a job of this shell-like session leader, in the foreground
    os.setpgid(0, 0)
    os.tcsetpgrp(0, os.getpgrp())
    signal.signal(signal.SIGTTOU, signal.SIG_DFL)
    os.execv(sys.argv[1], sys.argv[1:])
signal.signal(signal.SIGUSR1, lambda *_: os.tcsetpgrp(0, os.getpgrp()))  # (takes it back)
signal.signal(signal.SIGUSR2, lambda *_: os.tcsetpgrp(0, pid))  # (fg of a running job)
while True:
    try:
        _, status = os.waitpid(pid, 0)  # (its stops unseen: no WUNTRACED)
        break
    except InterruptedError:
        pass
sys.exit(os.waitstatus_to_exitcode(status))
"""
"""Runs its arguments as a job of its own in the foreground of the terminal, as a shell
does (a session leader's own group is orphaned: the kernel never stops it on SIGTSTP).
SIGUSR1 takes the terminal back for itself, SIGUSR2 gives it to the job, without a
signal to it, as a shell's `fg` of a job running in the background does."""


@pytest.mark.usefixtures("state_home")
def test_a_sigtstp_from_elsewhere_gives_the_shell_its_terminal_back(run_dir: Path) -> None:
    """kill -TSTP of a run with a console (its own Ctrl-Z is no key) stopped it with the
    terminal raw and bracketed paste on, the prompt drawn: the shell took it so. It is now
    given back as it was found, as less and vim do, and at fg the console takes it again."""
    with PtyPipeplex("run", "-p", "c=cat", "--run-dir", run_dir,
                     prefix=(sys.executable, "-c", JOB_SHELL)) as plex:
        plex.expect(r"^c>$")
        job = int(Path(f"/proc/{plex.proc.pid}/task/{plex.proc.pid}/children").read_text())
        plex.type("c: half")
        plex.expect(r"^c> c: half$")
        assert not plex.terminal_flags() & termios.ICANON  # the prompt owns the terminal
        os.kill(job, signal.SIGTSTP)
        _until("pipeplex did not stop", lambda: _state(job) == "T")
        flags = plex.terminal_flags()
        assert flags & termios.ICANON and flags & termios.ECHO
        deadline = time.monotonic() + DEADLINE
        while plex.output.rfind(b"\x1b[?2004l") < plex.output.rfind(b"\x1b[?2004h"):
            assert plex._read_some(deadline), plex.output[-80:]  # (bracketed paste off)
        os.kill(job, signal.SIGCONT)  # (fg: it is the terminal's foreground job still)
        _until("the console did not take the terminal back",
               lambda: not plex.terminal_flags() & termios.ICANON)
        plex.expect(r"^c> c: half$")  # (drawn again, with what was typed)
        plex.type("\r")
        plex.expect(r"^c \| half$")
        os.kill(job, signal.SIGTERM)
        assert plex.wait() == 143


def _continued_in_the_background(plex: PtyPipeplex) -> tuple[int, int]:
    """Under JOB_SHELL: pipeplex stopped (SIGTSTP), the terminal the shell's, and pipeplex
    continued in the background, as `bg` does. The shell's pid and pipeplex's."""
    shell = plex.proc.pid
    job = int(Path(f"/proc/{shell}/task/{shell}/children").read_text())
    os.kill(job, signal.SIGTSTP)
    _until("pipeplex did not stop", lambda: _state(job) == "T")
    os.kill(shell, signal.SIGUSR1)  # the shell takes the terminal,
    _until("the shell did not take the terminal",
           lambda: os.tcgetpgrp(plex.master or 0) != job)
    os.kill(job, signal.SIGCONT)  # bg
    _until("pipeplex did not go on", lambda: _state(job) != "T")
    return shell, job


@pytest.mark.usefixtures("state_home")
def test_a_console_continued_in_the_background_takes_its_terminal_at_fg(
        run_dir: Path) -> None:
    """Stopped, continued in the background (bg), then brought back (fg): a shell sends no
    signal for that fg, and the console stayed as the shell had left the terminal (keys
    echoed twice, Ctrl-Z suspending pipeplex again). It takes the terminal back."""
    with PtyPipeplex("run", "-p", "c=cat", "--run-dir", run_dir,
                     prefix=(sys.executable, "-c", JOB_SHELL)) as plex:
        plex.expect(r"^c>$")
        shell, job = _continued_in_the_background(plex)
        assert plex.terminal_flags() & termios.ICANON  # (the shell's terminal still)
        # Output comes in the background, as any job's does, but no prompt: drawn after
        # each burst (bracketed paste switched on with it), it sat on the shell's line.
        write_fifo(run_dir / "c.in", b"in the background\n")
        plex.expect(r"^c \| in the background$")
        write_fifo(run_dir / "c.in", b"still in it\n")
        plex.expect(r"^c \| still in it$")
        between = plex.output[plex.output.rindex(b"in the background"):
                              plex.output.rindex(b"still in it")]
        assert b"c>" not in between and b"\x1b[?2004h" not in between, between
        os.kill(shell, signal.SIGUSR2)  # then fg
        _until("the console did not take the terminal back",
               lambda: not plex.terminal_flags() & termios.ICANON)
        plex.type("c: back\r")
        plex.expect(r"^c \| back$")
        os.kill(job, signal.SIGTERM)
        assert plex.wait() == 143


@pytest.mark.usefixtures("state_home")
def test_keys_typed_while_the_console_is_in_the_background_leave_it_running(
        run_dir: Path) -> None:
    """In the background, a line typed to the shell woke the console's reader, whose read
    stopped pipeplex (SIGTTIN): the cast's output stopped, and at fg the read sat blocked
    on the shell's cooked terminal, holding the loop. The reader lets go of the terminal in
    the background, and the line is the console's once it is in the foreground again."""
    with PtyPipeplex("run", "-p", "c=cat", "--run-dir", run_dir,
                     prefix=(sys.executable, "-c", JOB_SHELL)) as plex:
        plex.expect(r"^c>$")
        shell, job = _continued_in_the_background(plex)
        plex.type("c: typed in the background\r")  # (a whole line: the terminal is cooked)
        write_fifo(run_dir / "c.in", b"after the typing\n")
        plex.expect(r"^c \| after the typing$")  # (the output goes on: not stopped)
        assert _state(job) != "T"
        os.kill(shell, signal.SIGUSR2)  # then fg
        _until("the console did not take the terminal back",
               lambda: not plex.terminal_flags() & termios.ICANON)
        plex.expect(r"^c \| typed in the background$")
        os.kill(job, signal.SIGTERM)
        assert plex.wait() == 143


@pytest.mark.usefixtures("state_home")
def test_the_console_is_announced_once_its_keys_are_its_own(run_dir: Path) -> None:
    """"console: type NAME: ..." came a third of a second before the console set the
    terminal up: a Ctrl-Z typed on seeing it still suspended pipeplex. It comes once Ctrl-Z
    is no key of the terminal's."""
    with PtyPipeplex("run", "-p", "c=cat", "--run-dir", run_dir) as plex:
        plex.expect(r"console: type NAME: text to send a line, :help for more")
        assert plex.master is not None
        assert termios.tcgetattr(plex.master)[6][termios.VSUSP] == b"\0"  # (disabled)
        plex.signal(signal.SIGTERM)
        assert plex.wait() == 143
