"""User mistakes get one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import grp
import json
import os
import re
import resource
import shlex
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .helpers import DEADLINE, PIPEPLEX, Pipeplex, py, run


def _error(result: object) -> str:
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    assert result.returncode == 2, stderr  # type: ignore[attr-defined]
    return stderr


def test_missing_command_names_member_and_command(run_dir: Path) -> None:
    """A program that does not exist is reported before anything starts."""
    stderr = _error(run("run", "-p", "ok=sleep 60", "-p", "srv=no-such-program --x",
                        "--run-dir", run_dir))
    assert "srv: command not found: 'no-such-program'" in stderr
    assert not run_dir.exists()


def test_a_program_name_too_long_for_a_file_is_not_found(run_dir: Path) -> None:
    """A name longer than a file's name may be (255 bytes) is looked for beside pipeplex
    too, for the hint: that look fails with ENAMETOOLONG, which is no traceback."""
    program = "x" * 300
    stderr = _error(run("run", "-p", f"srv={program}", "--run-dir", run_dir))
    assert f"srv: command not found: '{program}'" in stderr
    assert not run_dir.exists()


@pytest.mark.parametrize("called", ["by its path", "by its name on PATH", "./tool"])
def test_a_script_whose_interpreter_is_missing_says_so(
        tmp_path: Path, called: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """exec's ENOENT is for the #! line's interpreter, not the script, which exists: it
    read 'command not found' for a file the user could see. The script is named as the
    command names it (it read '././tool')."""
    script = tmp_path / "tool"
    script.write_text("#!/nonexistent/bin/python3 -u\nprint('hi')\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    command = {"by its path": str(script), "by its name on PATH": "tool"}.get(called, called)
    result = run("run", "-p", f"a={command}", "--no-console", "--run-dir", tmp_path / "r",
                 cwd=tmp_path)
    assert result.returncode == 127, result.stderr
    shown = command if called == "./tool" else str(script)
    assert (f"a: cannot start {command!r}: its interpreter was not found: "
            f"'/nonexistent/bin/python3' (the #! line of {shown!r})") in result.stdout


def test_a_script_with_windows_line_ends_says_so(tmp_path: Path) -> None:
    """The kernel looks for '/bin/sh\\r': /bin/sh itself is there."""
    script = tmp_path / "tool"
    script.write_bytes(b"#!/bin/sh\r\necho hi\r\n")
    script.chmod(0o755)
    result = run("run", "-p", f"a={script}", "--no-console", "--run-dir", tmp_path / "r")
    assert result.returncode == 127, result.stderr
    assert (f"its #! line ends in a Windows line end (\\r): {str(script)!r} names "
            "'/bin/sh\\r' as its interpreter; convert it with dos2unix") in result.stdout


def test_text_the_locale_cannot_encode_says_how_to_run(tmp_path: Path) -> None:
    """A cast file is UTF-8; in the C locale with Python's UTF-8 mode off, "é" in a command
    cannot become the bytes of an argument: the error names it and the way out."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.a]\ncmd = "echo h\u00e9llo"\n', encoding="utf-8")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("LC_", "LANG", "PYTHONUTF8", "PYTHONCOERCECLOCALE"))}
    result = subprocess.run(
        [*PIPEPLEX, "run", str(cast), "--no-console", "--run-dir", str(tmp_path / "r")],
        capture_output=True, timeout=DEADLINE, stdin=subprocess.DEVNULL,
        env={**env, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"})
    assert result.returncode == 127, result.stderr
    assert ("a: cannot start 'echo h\u00e9llo': its command or environment holds '\u00e9', "
            "which the locale's encoding (ascii) cannot express; run pipeplex in a UTF-8 "
            "locale (LC_ALL=C.UTF-8) or with PYTHONUTF8=1").encode() in result.stdout
    assert b"Traceback" not in result.stdout + result.stderr


def test_toml_syntax_error_gives_file_line_and_column(tmp_path: Path) -> None:
    """A TOML syntax error names the file, line and column."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.a]\ncmd = "echo"\nready = \n')
    stderr = _error(run("run", cast))
    assert f"{cast}:3:" in stderr


def test_unknown_key_gets_a_suggestion(tmp_path: Path) -> None:
    """A misspelt key is named with its line and the closest valid key."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.a]\ncmd = "echo"\non_exti = "stop"\n')
    stderr = _error(run("run", cast))
    assert f"{cast}:3: a: unknown key 'on_exti'; did you mean 'on_exit'?" in stderr


@pytest.mark.parametrize("name", ["../x", "a/b", "-rf", "all", "x" * 65, "$(touch p)", "a\nb",
                                  "a b"])
def test_bad_names_are_refused(name: str, tmp_path: Path) -> None:
    """Names that could escape the run folder or confuse routing are refused."""
    stderr = _error(run("run", "-p", f"{name}=echo hi", cwd=tmp_path))
    assert "name" in stderr
    assert not (tmp_path / "p").exists()


def test_duplicate_names_are_refused() -> None:
    """Two members cannot share a name."""
    stderr = _error(run("run", "-p", "a=echo 1", "-p", "a=echo 2"))
    assert "-p: duplicate member name 'a' (another -p gives it too)" in stderr


def test_nothing_to_run_is_a_usage_error() -> None:
    """Without a cast file or -p, pipeplex says what it needs."""
    result = run("run")
    assert result.returncode == 2
    assert "nothing to run" in result.stderr


@pytest.mark.parametrize("words", [["run", "-p", "a=true", "--no-console"],
                                   ["run", "-p", "a=true", "--no-console", "--run-dir", "{tmp}/r"],
                                   ["test", "{tmp}/case.toml"], ["status"], ["send", "a", "x"]])
def test_a_working_folder_that_was_deleted_is_said_in_one_line(
        tmp_path: Path, words: list[str]) -> None:
    """Every command that needs the working folder (a member's cwd, the run folder's name)
    says it is gone, instead of a traceback of os.getcwd()."""
    (tmp_path / "case.toml").write_text('[procs.a]\ncmd = "true"\n')
    gone = tmp_path / "gone"
    gone.mkdir()
    argv = [*PIPEPLEX, *(w.replace("{tmp}", str(tmp_path)) for w in words)]
    result = subprocess.run(["sh", "-c", 'cd "$1" && rmdir "$1" && shift && exec "$@"', "sh",
                             gone, *argv], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=DEADLINE)
    assert _error(result) == ("pipeplex: error: the current folder no longer exists (it was "
                              "deleted): cd to a folder that does, and start again\n")
    assert not (tmp_path / "r").exists()


def test_a_symlinked_run_dir_is_refused(tmp_path: Path) -> None:
    """A run folder that is a symlink could point anywhere: refuse it."""
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    link = tmp_path / "run"
    link.symlink_to(target)
    stderr = _error(run("run", "-p", "a=echo hi", "--run-dir", link))
    assert "is a symlink" in stderr
    assert list(target.iterdir()) == []


@pytest.mark.parametrize(("name", "said"), [
    ("run.lock", "run.lock: it is a symbolic link, not a lock file of a run; move it away"),
    ("a.in", "a.in exists already (a symbolic link of uid")])
def test_a_symlink_planted_in_the_run_folder_is_refused_by_name(tmp_path: Path, name: str,
                                                                said: str) -> None:
    """As the folder's lock or a member's NAME.in: never followed (O_NOFOLLOW), its target
    left as it was, and said as what it is, not as the bare "Too many levels of symbolic
    links" of the system call."""
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("mine")
    (folder / name).symlink_to(victim)
    stderr = _error(run("run", "-p", "a=echo hi", "--run-dir", folder))
    assert said in stderr, stderr
    assert victim.read_text() == "mine"


def test_a_pipe_put_where_a_members_goes_is_refused_not_replaced(tmp_path: Path) -> None:
    """A member's NAME.in there already as a pipe (0666: anyone may write it), with no
    earlier run's lock: no run left it (a killed run's pipes go as its folder is taken
    over), so it is the user's, or planted. It was replaced, and removed at the end: it is
    refused now, and left as it was."""
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    old = os.umask(0)
    try:
        os.mkfifo(folder / "a.in", 0o666)
    finally:
        os.umask(old)
    before = os.lstat(folder / "a.in")
    stderr = _error(run("run", "-p", "a=sleep 60", "--run-dir", folder))
    assert (f"pipeplex: error: {folder / 'a.in'} exists already (a named pipe of uid "
            f"{os.geteuid()}), and no earlier run left it; move it away or use another run "
            "folder\n") == stderr, stderr
    after = os.lstat(folder / "a.in")
    assert (after.st_ino, stat.S_IMODE(after.st_mode)) == (before.st_ino, 0o666)


ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")


@pytest.mark.parametrize("above", [pytest.param("another user's folder", marks=ROOT),
                                   "an open folder",
                                   pytest.param("a shared group's folder", marks=ROOT),
                                   pytest.param("another user's link", marks=ROOT),
                                   pytest.param("a link in another user's folder", marks=ROOT),
                                   pytest.param("a link through another user's link",
                                                marks=ROOT)])
def test_a_run_dir_that_someone_else_could_move_away_is_refused(
        tmp_path: Path, above: str) -> None:
    """Whoever may rename the run folder during the run could put pipes of their own in
    its place, and a script's line to RUN/NAME.in would go to them: a run folder below a
    folder of theirs, an open one that is not sticky, or a link of theirs, is refused."""
    parent = tmp_path / "above"
    parent.mkdir()
    given = parent / "run"
    if above == "another user's folder":
        os.chown(parent, 65534, 65534)
        who = f"{parent} belongs to uid 65534, who could move the run folder away"
    elif above == "an open folder":
        parent.chmod(0o777)
        who = f"others may write to {parent} (mode 0777), and so move the run folder away"
    elif above == "a shared group's folder":
        shared = next((g for g in grp.getgrall() if g.gr_gid != os.getegid()), None)
        if shared is None:
            pytest.skip("no other group")
        os.chown(parent, -1, shared.gr_gid)
        parent.chmod(0o775)
        who = f"others may write to {parent} (mode 0775), and so move the run folder away"
    elif above == "a link through another user's link":
        theirs = tmp_path / "theirs"
        theirs.symlink_to(parent)
        os.lchown(theirs, 65534, 65534)
        (tmp_path / "mine").symlink_to("theirs")  # (one's own, leading through theirs)
        given = tmp_path / "mine" / "run"
        who = f"{theirs} is a symbolic link of uid 65534, who could point it elsewhere"
    elif above == "a link in another user's folder":
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        os.chown(theirs, 65534, 65534)
        (theirs / "link").symlink_to(parent)  # (a link of one's own: they may swap it)
        given = theirs / "link" / "run"
        who = f"{theirs} belongs to uid 65534, who could move the run folder away"
    else:
        link = tmp_path / "link"
        link.symlink_to(parent)
        os.lchown(link, 65534, 65534)
        given = link / "run"
        who = f"{link} is a symbolic link of uid 65534, who could point it elsewhere"
    stderr = _error(run("run", "-p", "a=echo hi", "--run-dir", given))
    assert f"pipeplex: error: refusing run folder {given}: {who}" in stderr
    assert "leave out --run-dir (the default folder is private" in stderr
    assert list(parent.iterdir()) == []


def test_a_run_dir_in_a_sticky_folder_and_the_folders_made_for_it_are_safe(
        tmp_path: Path) -> None:
    """In a sticky folder (as /tmp) only the owner may move a name away; the folders that
    pipeplex makes on the way are private whatever the umask, and go at the end."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    made = shared / "a"
    show = shlex.join(["stat", "-c", "%a %n", str(made), str(made / "b")])
    result = subprocess.run(
        ["sh", "-c", 'umask 000 && exec "$@"', "sh", *PIPEPLEX, "run", "-p", f"modes={show}",
         "--no-console", "--no-color", "--run-dir", made / "b" / "run"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=DEADLINE)
    assert result.returncode == 0, result.stderr
    assert f"| 700 {made}\n" in result.stdout
    assert f"| 700 {made / 'b'}\n" in result.stdout
    assert list(shared.iterdir()) == []


def test_a_file_of_the_users_named_run_lock_is_refused_not_emptied(tmp_path: Path) -> None:
    """A folder of the user's given as --run-dir may hold a run.lock of its own (a project's
    file): one that holds no pid and run id is no run's, and is left as it is."""
    folder = tmp_path / "proj"
    folder.mkdir(mode=0o700)
    (folder / "run.lock").write_text("dependencies, locked\n")
    stderr = _error(run("run", "-p", "a=echo hi", "--run-dir", folder))
    assert (f"refusing {folder / 'run.lock'}: it is a file that no pipeplex run wrote (a run "
            "writes its pid and its run id)") in stderr
    assert (folder / "run.lock").read_text() == "dependencies, locked\n"
    # Another program's pid file: no dead run's lock, whose pipes and socket would go.
    (folder / "run.lock").write_text("4242\n")
    os.mkfifo(folder / "build.in", 0o600)
    stderr = _error(run("run", "-p", "a=echo hi", "--run-dir", folder))
    assert "it is a file that no pipeplex run wrote" in stderr
    assert sorted(os.listdir(folder)) == ["build.in", "run.lock"]
    assert (folder / "run.lock").read_text() == "4242\n"


def test_a_run_dir_too_long_to_make_leaves_none_of_its_folders(tmp_path: Path) -> None:
    """Past the system's longest path (4096 bytes), the folders above the run folder made
    before the first one that could not be were left behind."""
    folder = tmp_path.joinpath("made", *["a" * 250] * 20, "run")
    stderr = _error(run("run", "-p", "a=echo hi", "--run-dir", folder))
    assert stderr.startswith("pipeplex: error: cannot create run folder ") and \
        stderr.endswith(": File name too long\n"), stderr
    assert not (tmp_path / "made").exists()


def test_a_run_folder_whose_lock_cannot_be_written_is_said_and_left_as_it_was(
        tmp_path: Path) -> None:
    """A full file system (a small runtime tmpfs) under the run folder: writing the run's
    record in its lock gave a traceback and left the folder made for it. (A file size limit
    of 0 fails that write as a full disk would.)"""
    limited = ("import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
               "resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0)); os.execv(sys.argv[1], "
               "sys.argv[1:])")
    folder = tmp_path / "made" / "run"
    result = subprocess.run(
        [sys.executable, "-c", limited, *PIPEPLEX, "run", "-p", "a=echo hi", "--run-dir",
         str(folder)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=DEADLINE)
    stderr = _error(result)
    assert stderr == (f"pipeplex: error: cannot write {folder / 'run.lock'}: File too large (free "
                      "some space there, or give another run folder with --run-dir)\n"), stderr
    assert not (tmp_path / "made").exists()


@pytest.mark.parametrize(("mode", "how"), [
    (0o777, "others may plant files there"),
    (0o755, "others may list it"),
    (0o711, "others may reach the pipes in it by name"),
    (0o750, "its group may list it"),
])
def test_a_run_dir_others_can_enter_is_refused(tmp_path: Path, mode: int, how: str) -> None:
    """A run folder with loose permissions is refused with what they allow and the fix."""
    loose = tmp_path / "my run"
    loose.mkdir()
    loose.chmod(mode)
    stderr = _error(run("run", "-p", "a=echo hi", "--run-dir", loose))
    assert (f"mode is {mode:04o}, {how} (a run folder is 0700); run chmod 700 "
            f"{shlex.quote(str(loose))} or give another run folder") in stderr  # (to paste)


@pytest.mark.parametrize("shared", ["sticky", "holds files"])
def test_a_shared_open_run_dir_is_refused_with_a_folder_of_its_own_to_use(
        tmp_path: Path, shared: str) -> None:
    """An open folder that serves others (/tmp, a project's own folder) must not be closed
    to them: the remedy is a folder of its own inside it, never a chmod of it."""
    loose = tmp_path / "shared"
    loose.mkdir()
    if shared == "sticky":
        loose.chmod(0o1777)
    else:
        loose.chmod(0o755)
        (loose / "pyproject.toml").write_text("")
    stderr = _error(run("run", "-p", "a=echo hi", "--run-dir", loose))
    if shared == "sticky":  # (/tmp: a name in it may be anyone's first)
        assert "leave out --run-dir (the default folder is private " \
            "to you), or give a folder of your own" in stderr
    else:
        assert f"give a folder of its own, such as {loose}/run (pipeplex makes it)" in stderr
    assert "chmod" not in stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a folder of another user")
def test_a_run_dir_of_another_user_is_refused(tmp_path: Path) -> None:
    """A run folder owned by someone else is refused, naming the owner."""
    theirs = tmp_path / "run"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    stderr = _error(run("run", "-p", "a=echo hi", "--run-dir", theirs))
    assert "belongs to uid 65534" in stderr


def test_a_run_dir_in_use_by_a_live_run_is_refused(run_dir: Path) -> None:
    """Two runs cannot share a run folder."""
    with Pipeplex("run", "-p", "a=sleep 60", "--run-dir", run_dir) as plex:
        plex.expect("run folder")
        stderr = _error(run("run", "-p", "b=echo hi", "--run-dir", run_dir))
        assert "in use by another pipeplex run" in stderr
        assert f"pid {plex.proc.pid}" in stderr


def test_a_stale_run_dir_is_cleaned_up(run_dir: Path) -> None:
    """Leftovers of a run that was killed are removed, and the new run says so; only its
    pipes and socket: the folder may be a project's, with files of the same names."""
    run_dir.mkdir(mode=0o700)
    (run_dir / "run.lock").write_text("999999 -\n")  # (a run without a run id)
    os.mkfifo(run_dir / "old.in", 0o600)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(run_dir / "control.sock"))
    (run_dir / "Makefile.in").write_text("all: build\n")
    (run_dir / "dir.in").mkdir()
    (run_dir / "link.in").symlink_to(run_dir / "Makefile.in")
    result = run("run", "-p", "a=echo hi", "--run-dir", run_dir)
    assert result.returncode == 0, result.stderr
    assert "cleaned up after an earlier run (pid 999999)" in result.stdout
    assert sorted(os.listdir(run_dir)) == ["Makefile.in", "dir.in", "link.in"]
    assert (run_dir / "Makefile.in").read_text() == "all: build\n"


def test_what_a_stale_run_left_running_is_named(run_dir: Path) -> None:
    """The earlier run was killed with its guardian, which would have stopped its members:
    the run id it kept in its lock file finds what it left, said with how to stop it."""
    run_dir.mkdir(mode=0o700)
    run_id = os.urandom(8).hex()  # (no id an earlier run may have left behind)
    (run_dir / "run.lock").write_text(f"999999 {run_id}\n")
    env = {**os.environ, "PIPEPLEX_RUN_ID": run_id, "PIPEPLEX_NAME": "db"}
    with subprocess.Popen(["sleep", "60"], env=env) as left:
        try:
            result = run("run", "-p", "a=echo hi", "--run-dir", run_dir)
        finally:
            left.kill()
    assert result.returncode == 0, result.stderr
    assert (f"pipeplex * that run left 1 process running: {left.pid} (db) (its guardian, "
            f"which would have stopped it, was killed with it or is stopped); kill -TERM "
            f"{left.pid} stops it\n") in result.stdout, result.stdout
    assert (run_dir / "run.lock").exists() is False  # (removed at the end, as always)


def test_what_a_stale_run_left_ignoring_sigterm_is_told_to_be_killed(run_dir: Path) -> None:
    """A member that trapped SIGTERM (and what it started since) would outlive the
    `kill -TERM` the message gave: those are given `kill -KILL`."""
    run_dir.mkdir(mode=0o700)
    run_id = os.urandom(8).hex()  # (no id an earlier run may have left behind)
    (run_dir / "run.lock").write_text(f"999999 {run_id}\n")
    env = {**os.environ, "PIPEPLEX_RUN_ID": run_id, "PIPEPLEX_NAME": "db"}
    deaf = py("import signal, sys\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
              "print('deaf', flush=True)\nsys.stdin.read()")
    with subprocess.Popen(["sleep", "60"], env=env) as hearing, subprocess.Popen(
            shlex.split(deaf), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as left:
        try:
            assert left.stdout is not None and left.stdout.readline() == b"deaf\n"
            result = run("run", "-p", "a=echo hi", "--run-dir", run_dir)
        finally:
            hearing.kill()
            left.kill()
    assert result.returncode == 0, result.stderr
    assert (f"was killed with it or is stopped); kill -TERM {hearing.pid} stops it; kill -KILL "
            f"{left.pid} (it ignores SIGTERM)\n") in result.stdout, result.stdout


def test_what_a_stale_runs_live_guardian_stops_is_not_named(run_dir: Path,
                                                              tmp_path: Path) -> None:
    """A run started right after a SIGKILL: the dead run's guardian is still stopping what
    it left. What ends within the guardian's time is not named (it was said to be left by
    a guardian killed too, with pids to kill that were about to be gone)."""
    run_dir.mkdir(mode=0o700)
    run_id = os.urandom(8).hex()  # (no id an earlier run may have left behind)
    (run_dir / "run.lock").write_text(f"999999 {run_id}\n")
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    env = {**os.environ, "PIPEPLEX_RUN_ID": run_id, "PIPEPLEX_NAME": "db"}
    with subprocess.Popen(["sh", "-c", f"read x < {gate}"], env=env) as left, \
            subprocess.Popen([*PIPEPLEX, "run", "-p", "a=echo hi", "--run-dir", str(run_dir)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             text=True) as new_run:
        try:
            deadline = time.monotonic() + DEADLINE  # until the new run holds the folder
            while not (run_dir / "run.lock").read_text().startswith(f"{new_run.pid} "):
                assert time.monotonic() < deadline, "the new run never took the folder"
                os.sched_yield()
            with open(gate, "w") as f:  # (the guardian's work, done: the leftover ends)
                f.write("done\n")
            out, _ = new_run.communicate(timeout=DEADLINE)
        finally:
            left.kill()
            new_run.kill()
    assert new_run.returncode == 0, out
    assert "cleaned up after an earlier run (pid 999999)" in out, out
    assert "that run left" not in out, out


def test_a_file_in_the_place_of_the_socket_is_refused_and_kept(run_dir: Path) -> None:
    run_dir.mkdir(mode=0o700)
    (run_dir / "control.sock").write_text("mine\n")
    stderr = _error(run("run", "-p", "a=echo hi", "--run-dir", run_dir))
    assert (f"{run_dir / 'control.sock'} exists and is not the socket of an earlier run "
            f"(a regular file of uid {os.geteuid()}); move it away") in stderr
    assert (run_dir / "control.sock").read_text() == "mine\n"


def _run_from(folder: Path, **env: str | None) -> subprocess.CompletedProcess[str]:
    """``pipeplex run -p 'a=echo hi'`` in ``folder``, ``env`` changing its environment (None:
    the variable unset)."""
    environ = dict(os.environ)
    for name, value in env.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return subprocess.run([*PIPEPLEX, "run", "-p", "a=echo hi", "--no-console"], cwd=folder,
                          env=environ, capture_output=True, text=True, timeout=DEADLINE,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("xdg", ["relative", "open to others",
                                 pytest.param("another user's", marks=ROOT)])
def test_an_xdg_runtime_dir_that_is_not_the_users_own_is_ignored(tmp_path: Path,
                                                                 xdg: str) -> None:
    """As the XDG spec says: one that is relative, not 0700 or not the user's is not used;
    the run folder goes to the fallback under TMPDIR (never to a folder relative to
    wherever pipeplex runs), and nothing is put in it."""
    given = tmp_path / "xdg"
    given.mkdir()
    given.chmod(0o755 if xdg == "open to others" else 0o700)
    if xdg == "another user's":
        os.chown(given, 65534, 65534)
    (tmp_path / "tmp").mkdir()
    result = _run_from(tmp_path, XDG_RUNTIME_DIR="xdg" if xdg == "relative" else str(given),
                       TMPDIR=str(tmp_path / "tmp"))
    assert result.returncode == 0, result.stderr
    assert f"run folder {tmp_path / 'tmp' / f'pipeplex-{os.geteuid()}'}/" in result.stdout
    assert list(given.iterdir()) == []


@pytest.mark.parametrize("tmpdir", ["missing", pytest.param("another user's", marks=ROOT)])
def test_a_tmpdir_that_cannot_hold_the_runs_safely_gives_way_to_tmp(
        tmp_path: Path, tmpdir: str) -> None:
    """A TMPDIR kept across su or sudo -E (another user's), or one that is gone: the runs'
    base goes to /tmp, where clients look too, instead of failing or going where someone
    else could move it."""
    given = tmp_path / "tmp"
    if tmpdir == "another user's":
        given.mkdir(mode=0o700)
        os.chown(given, 65534, 65534)
    result = _run_from(tmp_path, TMPDIR=str(given), XDG_RUNTIME_DIR=None)
    assert result.returncode == 0, result.stderr
    assert f"run folder /tmp/pipeplex-{os.geteuid()}/" in result.stdout


@ROOT
def test_a_runs_base_someone_else_made_first_is_refused_not_used(tmp_path: Path) -> None:
    """Another user who made TMPDIR/pipeplex-UID first (0777, to read what goes in): the
    run refuses it, names its owner and what to do, and puts nothing there."""
    given = tmp_path / "tmp"
    given.mkdir()
    given.chmod(0o1777)  # (as /tmp is)
    squatted = given / f"pipeplex-{os.geteuid()}"
    squatted.mkdir()
    squatted.chmod(0o777)
    os.chown(squatted, 65534, 65534)
    result = _run_from(tmp_path, TMPDIR=str(given), XDG_RUNTIME_DIR=None)
    assert result.returncode == 2, result.stdout
    # (Said as what it may be: a name taken first to have the runs' pipes.)
    assert (f"pipeplex: error: refusing run folder {squatted}: it belongs to uid 65534, not to "
            f"you (uid {os.geteuid()}): they may have made it to have your runs' pipes (it is "
            "the folder of every run of yours without --run-dir); set TMPDIR to a folder of "
            "yours, or give a run folder (--run-dir)") in result.stderr
    assert list(squatted.iterdir()) == []
    assert "started" not in result.stdout


def test_a_default_run_folder_left_open_says_it_may_be_removed(tmp_path: Path) -> None:
    """A default run folder whose mode was opened (a killed run's, chmod 755 since) was
    refused with the advice to make a run folder inside it; pipeplex's own folder may be
    closed again or removed. The base of every run's folder may only be closed."""
    given = tmp_path / "tmp"
    given.mkdir(mode=0o700)
    first = _run_from(tmp_path, TMPDIR=str(given), XDG_RUNTIME_DIR=None)
    assert first.returncode == 0, first.stdout
    base = given / f"pipeplex-{os.geteuid()}"
    named = re.search(r"run folder (\S+):", first.stdout)
    assert named is not None, first.stdout
    folder = Path(named[1])  # (gone with that run: as one killed there left it, opened)
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    shown = shlex.quote(str(folder))
    assert _error(_run_from(tmp_path, TMPDIR=str(given), XDG_RUNTIME_DIR=None)) == (
        f"pipeplex: error: refusing run folder {folder}: its mode is 0755, others may list it "
        f"(a run folder is 0700); run chmod 700 {shown}, or remove it (rm -r {shown}): it is "
        "pipeplex's own, and made anew\n")
    folder.rmdir()
    base.chmod(0o755)
    assert _error(_run_from(tmp_path, TMPDIR=str(given), XDG_RUNTIME_DIR=None)) == (
        f"pipeplex: error: refusing run folder {base}: its mode is 0755, others may list it "
        f"(a run folder is 0700); run chmod 700 {shlex.quote(str(base))} (it holds every run "
        "folder of yours without --run-dir)\n")


@ROOT
def test_an_xdg_runtime_dir_below_another_users_folder_gives_way(tmp_path: Path) -> None:
    """That user could move it away during the run, and put pipes of theirs at its names
    (a script's `echo secret > RUN/NAME.in` would then be theirs): as for a TMPDIR, the
    runs' base goes to the fallback instead."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    (theirs / "xdg").mkdir(mode=0o700)
    (tmp_path / "tmp").mkdir()
    result = _run_from(tmp_path, XDG_RUNTIME_DIR=str(theirs / "xdg"),
                       TMPDIR=str(tmp_path / "tmp"))
    assert result.returncode == 0, result.stderr
    assert f"run folder {tmp_path / 'tmp' / f'pipeplex-{os.geteuid()}'}/" in result.stdout
    assert list((theirs / "xdg").iterdir()) == []


def test_a_link_planted_as_the_default_base_is_named_as_such(tmp_path: Path) -> None:
    """Nobody gave /tmp/pipeplex-UID: the message says what it is and what to do."""
    (tmp_path / "tmp").mkdir()
    (tmp_path / "theirs").mkdir(mode=0o700)
    base = tmp_path / "tmp" / f"pipeplex-{os.geteuid()}"
    base.symlink_to(tmp_path / "theirs")
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    env.pop("XDG_RUNTIME_DIR", None)
    result = subprocess.run([*PIPEPLEX, "run", "-p", "a=echo hi"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=DEADLINE,
                            stdin=subprocess.DEVNULL)
    assert _error(result) == (
        f"pipeplex: error: refusing {base}, the folder of every run of yours without "
        f"--run-dir: it is a symbolic link of uid {os.geteuid()}, which someone may have put "
        "there; remove it if it is yours, or give a run folder (--run-dir)\n")
    assert list((tmp_path / "theirs").iterdir()) == []


def _run_with_limit(members: list[str], run_dir: Path,
                    limit: int) -> tuple[subprocess.CompletedProcess[str], str]:
    """``pipeplex run`` of ``members`` with at most ``limit`` descriptors: its result and all
    it said, which is never a traceback, and its status one a user may meet."""
    result = subprocess.run(
        [*PIPEPLEX, "run", *members, "--no-console", "--run-dir", str(run_dir)],
        capture_output=True, text=True, timeout=DEADLINE, stdin=subprocess.DEVNULL,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)))
    said = result.stdout + result.stderr
    assert "Traceback" not in said and "Exception ignored" not in said, (limit, said)
    assert result.returncode in (0, 1, 2), (limit, said)  # (1: a member could not start)
    return result, said


def test_too_few_file_descriptors_is_said_at_every_step_of_the_start(tmp_path: Path) -> None:
    """Whatever the start is doing when the limit is hit (the guardian, the imports, the
    event loop, the run folder, its pipes, a member), it says so in a line, and leaves no
    folder behind."""
    for limit in range(5, 21):
        run_dir = tmp_path / f"run{limit}"
        result, said = _run_with_limit(["-p", "a=echo hi"], run_dir, limit)
        if result.returncode == 2:
            assert re.fullmatch(r"pipeplex: error: [^\n]*(Too many open files|out of file "
                                r"descriptors)[^\n]*\n", result.stderr), (limit, said)
        assert not run_dir.exists(), (limit, said)


def test_too_few_file_descriptors_for_a_wave_fails_it_member_by_member(
        tmp_path: Path) -> None:
    """With room for some of a start wave's members but not all, the member that finds no
    descriptor cannot start and says why, and the cast stops with every summary, never a
    crash. The limit goes up until the cast runs whole, through the limits where each of
    the wave's members is the first to find none."""
    members = [arg for i in range(20) for arg in ("-p", f"m{i}=sleep 1")]
    for limit in range(40, 400, 2):
        run_dir = tmp_path / f"run{limit}"
        result, said = _run_with_limit(members, run_dir, limit)
        assert not run_dir.exists(), (limit, said)
        if "started (pid" in said:
            assert said.count("summary: ") == 20, (limit, said)
        if result.returncode == 1:
            assert re.search(r"^pipeplex \* m\d+: cannot start 'sleep 1': [^\n]*pipeplex is out "
                             r"of file descriptors \(its limit is \d+, [^\n]*\); raise it with "
                             r"ulimit -n", said, re.M), (limit, said)
        if result.returncode == 0:
            break
    else:
        raise AssertionError("the cast never ran whole")


@pytest.mark.parametrize(("name", "text", "what"), [
    ("Procfile", "web: python3 -m http.server $PORT\n", "a Procfile"),
    (".env", "A=1\nB=two words\n", "a .env file (load it into the shell: set -a; . ./.env; "
                                     "set +a)"),
    ("compose.yaml", "services:\n  web: {}\n", "a YAML file, as compose's"),
])
def test_another_tools_file_given_as_the_cast_is_said_to_be_one(
        tmp_path: Path, name: str, text: str, what: str) -> None:
    """A newcomer's first try: pipeplex run Procfile gave a TOML error about its first line,
    and no word that pipeplex reads cast files only."""
    (tmp_path / name).write_text(text)
    result = subprocess.run([*PIPEPLEX, "run", name], capture_output=True, text=True,
                            cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=DEADLINE)
    assert result.returncode == 2, result.stderr
    assert result.stderr.endswith(f"(pipeplex reads cast files, in TOML, not {what}: "
                                  "docs/migrating.md shows where each of its settings goes)\n")


def test_a_word_of_an_unquoted_command_taken_for_the_cast_file_is_said(tmp_path: Path) -> None:
    """-p web=python3 app.py gives app.py to the run as its cast file: a TOML error about a
    Python file, or "no such cast file" for sleep's 5. Said, with the quoting meant."""
    (tmp_path / "app.py").write_text("print('hi')\n")
    for args, hint in ((["-p", "web=python3", "app.py"], "-p 'web=python3 app.py'"),
                       (["-p", "web=sleep", "5"], "-p 'web=sleep 5'")):
        result = subprocess.run([*PIPEPLEX, "run", *args], capture_output=True, text=True,
                                cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=DEADLINE)
        assert result.returncode == 2, result.stderr
        assert result.stderr.endswith(f"(if {args[-1]} is a word of a -p command, quote the "
                                      f"command whole: {hint})\n"), result.stderr
    quoted = subprocess.run([*PIPEPLEX, "run", "x.toml", "-p", "a=true"], capture_output=True,
                            text=True, cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=DEADLINE)
    assert quoted.stderr == "pipeplex: error: x.toml: no such cast file\n"  # (a cast file)


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["run", "x\x1b[2Jc.toml"], "pipeplex: error: x\\x1b[2Jc.toml: no such cast file"),
        (["run", "caf\udce9.toml"], "pipeplex: error: caf\\xe9.toml: no such cast file"),
        (["run", "-p", "a=true", "--transcript", "f\x1b[2J/t.jsonl"],
         "pipeplex: error: cannot write the transcript f\\x1b[2J/t.jsonl: f\\x1b[2J is a "
         "file, not a folder"),
        (["run", "-p", "a=true", "--run-dir", "f\x1b[2J/run"],
         "pipeplex: error: cannot create run folder "),
    ],
    ids=["cast-file", "not-utf-8", "transcript", "run-dir"],
)
def test_a_typed_name_with_control_characters_is_shown_escaped(
        tmp_path: Path, args: list[str], shown: str) -> None:
    """A name somebody typed, in an error, must not clear the screen or change its colours
    (it did for cast files, run folders and transcripts); a byte that is not UTF-8 reads as
    ``\\xe9``, not Python's ``\\udce9``."""
    (tmp_path / "f\x1b[2J").touch()  # (a file where the run folder's parent should be)
    result = subprocess.run([*PIPEPLEX, *args], capture_output=True, cwd=tmp_path,
                            stdin=subprocess.DEVNULL, timeout=DEADLINE)
    stderr = result.stderr.decode("utf-8", "surrogateescape")
    assert result.returncode == 2, stderr
    assert "\x1b" not in stderr and "\\udc" not in stderr, stderr
    assert shown in stderr


def test_every_mistake_of_a_cast_file_is_said_in_one_run(tmp_path: Path) -> None:
    """One run to learn them, in the file's order, each at its line; nothing starts."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.a]\ncmd = "echo hi"\non_exti = "stop"\n\n'
                    '[procs.b]\ncmd = "cat"\npty = "yes"\n', encoding="utf-8")
    stderr = _error(run("run", cast, "--run-dir", tmp_path / "run"))
    assert stderr.splitlines() == [
        f"pipeplex: error: {cast}: 2 mistakes:",
        f"  {cast}:3: a: unknown key 'on_exti'; did you mean 'on_exit'?",
        f'  {cast}:7: b: pty must be true (a full terminal), false (plain pipes) or "stdout", '
        "not 'yes'"]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("first_line", "said"), [
    ("#!{tmp}", "its interpreter '{tmp}' (the #! line of './tool') is a folder; name a "
                "program there"),
    ("#!{tmp}/plain", "its interpreter '{tmp}/plain' (the #! line of './tool') is not "
                      "executable; make it so (chmod +x), or name another program there"),
    ("#!{tmp}/script", "its interpreter '{tmp}/script' (the #! line of './tool') is not a "
                       "program this system can run"),
    ("#!", "the #! line of './tool' names no interpreter; write one (#!/bin/sh)"),
    ("#!" + "/x" * 200, "the #! line of './tool' is longer than this system reads (255 "
                        "bytes); shorten it"),
])
def test_a_script_whose_interpreter_cannot_run_says_why(
        tmp_path: Path, first_line: str, said: str) -> None:
    """The script is executable; what the system refused is its #! line. It was told to
    chmod +x the script (or, for a #! line it cannot take, that it had none)."""
    (tmp_path / "plain").write_text("echo plain\n")  # (not executable)
    (tmp_path / "script").write_text("echo script\n")  # (executable, no #! line)
    (tmp_path / "script").chmod(0o755)
    tool = tmp_path / "tool"
    tool.write_text(first_line.format(tmp=tmp_path) + "\necho hi\n")
    tool.chmod(0o755)
    result = run("run", "-p", "a=./tool", "--no-console", "--no-color", "--run-dir",
                 tmp_path / "r", cwd=tmp_path)
    assert result.returncode in (126, 127), result.stderr
    assert f"a: cannot start './tool': {said.format(tmp=tmp_path)}" in result.stdout
    assert "chmod +x ./tool" not in result.stdout


@pytest.mark.parametrize("key", ["cwd", "cmd"])
def test_a_path_too_long_to_look_at_is_said_at_its_line(tmp_path: Path, key: str) -> None:
    """Python's checks of a path raise for anything but a missing file: a cwd or a
    program whose name is too long (or on the way to which a folder may not be entered)
    was a traceback."""
    name = "n" * 300
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.a]\ncmd = "true"\ncwd = "' + name + '"\n' if key == "cwd" else
                    '[procs.a]\ncmd = "./' + name + '"\n')
    stderr = _error(run("run", cast, "--no-console", "--run-dir", tmp_path / "r"))
    line = 3 if key == "cwd" else 2
    assert f"cast.toml:{line}: a: " in stderr
    assert (f"a: cwd '{tmp_path / name}' cannot be reached: File name too long" if key == "cwd"
            else f"a: './{name}' cannot be reached: File name too long") in stderr


def test_an_environment_variable_too_long_for_linux_is_said_at_its_line(
        tmp_path: Path) -> None:
    """Linux refuses a string of 128 KiB or more in the environment as in the arguments:
    it was 'Argument list too long' as the member started, blaming its command."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.a]\ncmd = "true"\nenv = { A = "' + "z" * 140_000 + '" }\n')
    stderr = _error(run("run", cast, "--no-console", "--run-dir", tmp_path / "r"))
    assert ("cast.toml:3: a: env variable A is 140,002 bytes long with its name, and Linux "
            "refuses a variable of 128 KiB or more") in stderr


def test_a_command_longer_than_the_system_takes_is_said_short(tmp_path: Path) -> None:
    """3 MB of arguments, each short: the message gave the whole command (one line of 3
    MB) and blamed the argument list without a size or a way out."""
    cast = tmp_path / "cast.toml"
    words = ", ".join(['"' + "y" * 1000 + '"'] * 3000)
    cast.write_text(f'[procs.a]\ncmd = ["echo", {words}]\n')

    def stack_of_8_mib() -> None:  # (the system's limit is a quarter of it: 2 MiB or less)
        hard = resource.getrlimit(resource.RLIMIT_STACK)[1]
        soft = 8 << 20 if hard == resource.RLIM_INFINITY else min(8 << 20, hard)
        resource.setrlimit(resource.RLIMIT_STACK, (soft, hard))

    result = subprocess.run(
        [*PIPEPLEX, "run", str(cast), "--no-console", "--no-color", "--run-dir",
         str(tmp_path / "r")], capture_output=True, text=True, timeout=DEADLINE,
        stdin=subprocess.DEVNULL, preexec_fn=stack_of_8_mib)
    assert result.returncode == 127, result.stderr
    said = next(line for line in result.stdout.splitlines() if "cannot start" in line)
    assert len(said) < 1000
    assert "'... (of 3,003,004 characters): its command is 3,003,005 bytes long" in said
    assert "give the program its data in a file, or on its stdin" in said


def test_replay_refuses_a_device_and_reads_a_pipe(tmp_path: Path) -> None:
    """/dev/zero was read for ever; a pipe (<(zcat t.jsonl.gz)) is read as a file is."""
    assert "'/dev/zero' is a device, not a file to read" in _error(run("replay", "/dev/zero"))
    record = json.dumps({"t": 1.0, "p": "a", "s": "out", "d": "hi\n"}) + "\n"
    result = subprocess.run([*PIPEPLEX, "replay", "/dev/stdin", "--no-color"], input=record,
                            capture_output=True, text=True, timeout=DEADLINE)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "a | hi\n"


@pytest.mark.parametrize("option", ["--junit", "--log-dir"])
def test_a_report_path_that_cannot_be_reached_is_refused_before_anything_runs(
        tmp_path: Path, option: str) -> None:
    """--junit's check met the error of a name too long and said that standard output
    refused a write, with status 1 ("a test failed"); --log-dir was not checked at all, and
    the run went on without its logs."""
    cast = tmp_path / "cast.toml"
    cast.write_text('[procs.a]\ncmd = "true"\n[[step]]\nwait_exit = "a"\n')
    target = tmp_path / ("n" * 300)
    stderr = _error(run("test", cast, option, target / "x"))
    assert f"argument {option}: '{target}/x' cannot be reached: File name too long" in stderr


def test_a_name_the_locale_cannot_decode_is_shown_as_its_bytes(tmp_path: Path) -> None:
    """In the C locale 'é' is two bytes that are no ASCII: the message showed Python's
    internal form of them ('\\udcc3\\udca9') beside the bytes (\\xc3\\xa9)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("LC_", "LANG", "PYTHONUTF8", "PYTHONCOERCECLOCALE"))}
    result = subprocess.run(
        [*PIPEPLEX, "run", "-p", "\u00e9=true", "--run-dir", str(tmp_path / "r")],
        capture_output=True, timeout=DEADLINE, stdin=subprocess.DEVNULL,
        env={**env, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"})
    assert result.returncode == 2, result.stderr
    assert (b"pipeplex: error: -p \\xc3\\xa9=true: invalid member name '\\xc3\\xa9': use 1 "
            b"to 64 ASCII letters") in result.stderr, result.stderr


def test_a_cast_file_that_is_a_link_to_nowhere_or_a_dash_is_said_so(tmp_path: Path) -> None:
    """'no such cast file' for a link the user can see in ls, and for '-', which reads as
    standard input to most tools."""
    link = tmp_path / "cast.toml"
    link.symlink_to(tmp_path / "gone.toml")
    assert (f"{link}: no such cast file (a symbolic link to {tmp_path / 'gone.toml'}, which "
            "does not exist)") in _error(run("run", link))
    assert ("-: no such cast file ('-' is a file's name here: pipeplex reads a cast file by "
            "its path, not from standard input; save it to a file)") in _error(
        run("run", "-", cwd=tmp_path))
    assert ("'-' does not exist (a transcript is read by its path, not from standard input)"
            in _error(run("replay", "-", cwd=tmp_path)))
