"""run_cast from Python: it checks a cast built by hand, and refuses threads it cannot serve."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeplex import CastError, CastSpec, PipeplexError, ProcSpec, RunOptions, run_cast


@pytest.fixture
def options(tmp_path: Path) -> Iterator[RunOptions]:
    out = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    yield RunOptions(run_dir=tmp_path / "run", console=False, output_fd=out)
    os.close(out)


@pytest.mark.parametrize(("procs", "message"), [
    ((ProcSpec("a", "true"), ProcSpec("a", "true")), "duplicate member name 'a'"),
    ((ProcSpec("a", "true", after=("nope",)),),
     r"after names 'nope', which is not a member \(the cast has no other\)"),
    ((ProcSpec("a", "no-such-program-here"),), "no-such-program-here"),
    ((ProcSpec("../evil", "true"),), "invalid member name '../evil'"),
    ((ProcSpec("all", "true"),), "reserved"),
    ((ProcSpec("a", ()),), r"non-empty list \(or tuple\) of strings"),
    ((ProcSpec("a", "sh -c 'open"),), "cannot split the command"),
    ((ProcSpec("a", "true", pty="bogus"),), "pty must be one of"),  # type: ignore[arg-type]
    ((ProcSpec("a", "true", on_exit="bogus"),), "on_exit must be"),  # type: ignore[arg-type]
    ((ProcSpec("a", "true", after="b"),), "after must be a tuple"),  # type: ignore[arg-type]
    ((ProcSpec("a", "true", ready="(unclosed"),), "not a valid regular expression"),
    ((ProcSpec("a", "true", ready="(?P<ü>x)"),), r"captures 'ü', which no field can use"),
    ((ProcSpec("a", "true", ready_port="0"),), r"a: ready_port must be a TCP port .*'0'"),
    ((ProcSpec("a", "true", ready_port="70000"),), r"a: ready_port must be .*'70000'"),
    ((ProcSpec("a", "true", ready_port="http"),), r"a: ready_port must be .*'http'"),
    ((ProcSpec("a", "true", ready_port=8080),), "a: ready_port must be"),  # type: ignore[arg-type]
    ((ProcSpec("a", "true", ready_timeout=0),), "a: ready_timeout must be a number of seconds"),
    ((ProcSpec("a", "true", ready_timeout=-1),), r"a: ready_timeout must be .*, not -1"),
    ((ProcSpec("a", "true", ready_timeout=float("nan")),), r"a: ready_timeout .*, not nan"),
    ((ProcSpec("a", "true", ready_timeout=float("inf")),), r"a: ready_timeout .*, not inf"),
    ((ProcSpec("a", "true", stop_timeout=0.0),), "a: stop_timeout must be a number of seconds"),
    ((ProcSpec("a", "true", stop_timeout=float("nan")),), r"a: stop_timeout .*, not nan"),
    ((ProcSpec("a", "true", stop_timeout=float("-inf")),), r"a: stop_timeout .*, not -inf"),
    ((ProcSpec("a", "true", max_restarts=-1),), r"a: max_restarts must be .*, not -1"),
    # (It ran until a SIGKILL: SIGTERM and SIGINT only said they stopped the cast.)
    ((), r"the cast has no members: give run_cast\(\) a CastSpec of one ProcSpec or more"),
])
def test_a_cast_built_by_hand_is_checked_before_anything_starts(
        tmp_path: Path, options: RunOptions, procs: tuple[ProcSpec, ...], message: str) -> None:
    with pytest.raises(CastError, match=message):
        asyncio.run(run_cast(CastSpec(procs), options))
    assert not (tmp_path / "run").exists()


def test_outside_the_main_thread_it_refuses_and_starts_nothing(options: RunOptions) -> None:
    """It handles signals, which only the main thread can: a clear error, no guardian left."""
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            asyncio.run(run_cast(CastSpec((ProcSpec("a", "true"),)), options))
        except BaseException as exc:
            errors.append(exc)

    children = _children()
    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join()
    assert len(errors) == 1 and isinstance(errors[0], PipeplexError), errors
    assert "main thread" in str(errors[0])
    assert _children() == children


def _children() -> set[int]:
    me = str(os.getpid())
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            if stat.rsplit(b")", 1)[1].split()[1].decode() == me:
                found.add(int(entry))
    return found


def _subreaper() -> int:
    import ctypes

    state = ctypes.c_int(-1)
    assert ctypes.CDLL(None).prctl(37, ctypes.byref(state), 0, 0, 0) == 0  # GET_SUBREAPER
    return state.value


@pytest.mark.parametrize("adopt", [False, True])
def test_the_process_is_the_members_subreaper_only_if_asked_and_while_the_cast_runs(
        options: RunOptions, tmp_path: Path, adopt: bool) -> None:
    """Asked (as pipeplex run asks), its members' orphans come to it while the cast runs,
    to be stopped and reaped with the cast; afterwards, a program's own orphans go where
    they went before. Not asked, a program's own children are none of its business."""
    import dataclasses
    import subprocess

    seen: list[int] = []
    own = subprocess.Popen(["sh", "-c", "exit 7"])  # a child of the program's: not reaped
    up = tmp_path / "up"
    os.mkfifo(up)
    member = ProcSpec("a", ("sh", "-c", f"echo up > {up}; read line"))  # (then it ends)

    async def main() -> int:
        loop = asyncio.get_running_loop()
        said = os.open(up, os.O_RDWR | os.O_NONBLOCK)  # (readable once the member wrote)
        running = loop.create_future()
        loop.add_reader(said, running.set_result, None)
        run = asyncio.ensure_future(run_cast(CastSpec((member,)),
                                             dataclasses.replace(options, adopt_orphans=adopt)))
        try:
            await asyncio.wait([run, running], return_when=asyncio.FIRST_COMPLETED)
            seen.append(_subreaper())  # while the member runs
            fd = os.open(tmp_path / "run" / "a.in", os.O_WRONLY)  # (the run reads it)
            os.write(fd, b"go\n")
            os.close(fd)
            return await run
        finally:
            loop.remove_reader(said)
            os.close(said)

    assert _subreaper() == 0
    assert asyncio.run(main()) == 0
    assert seen == [int(adopt)]
    assert _subreaper() == 0
    assert own.wait(timeout=30) == 7


def test_run_options_refuse_a_colour_mode_that_is_none() -> None:
    with pytest.raises(ValueError, match="color must be 'auto', 'always' or 'never', not 'bogus'"):
        RunOptions(color="bogus")  # type: ignore[arg-type]


def test_a_run_folders_message_names_the_option_of_run_options(tmp_path: Path) -> None:
    """An open folder given as RunOptions(run_dir=...) is refused in Python's words,
    run_dir=, not the command's --run-dir (the command sets run_dir_option)."""
    import dataclasses

    from pipeplex.errors import RunDirError

    folder = tmp_path / "open"
    folder.mkdir()
    folder.chmod(0o755)
    cast = CastSpec((ProcSpec("a", ("true",)),))
    with open(os.devnull, "wb") as sink:
        options = RunOptions(run_dir=folder, console=False, output_fd=sink.fileno())
        for given, said in ((options, "(run_dir=)"),
                            (dataclasses.replace(options, run_dir_option="--run-dir"),
                             "(--run-dir)")):
            with pytest.raises(RunDirError) as caught:
                asyncio.run(run_cast(cast, given))
            assert str(caught.value).endswith(f"or give another run folder {said}"), caught.value
