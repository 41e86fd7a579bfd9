"""Test mode's report of one scenario's run (:func:`pipeplex.scenario.suite.run_scenario`),
driven in this process, where a test can hold the event loop at a chosen moment."""

from __future__ import annotations

import asyncio
import os
import select
import signal
from pathlib import Path

import pytest

from pipeplex.participants import process
from pipeplex.scenario import load_scenario
from pipeplex.scenario.suite import ScenarioOutcome, run_scenario


def test_a_member_dead_before_the_stop_is_not_said_to_end_at_its_eof(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain cast file (a test of the start and the stop): a member dies as the stop
    that follows its start comes to it (killed from outside here; a crash in life), its
    exit not read yet. It ended before the stop: the report says how it ended, not that
    it ended at the EOF the stop gave it, with steps to write for that."""
    case = tmp_path / "cast.toml"
    case.write_text("[procs.a]\ncmd = ['sleep', '60']\n[procs.b]\ncmd = ['sleep', '60']\n")
    begin_stop = process.Process.begin_stop

    def dead_first(member: process.Process) -> None:
        if member.name == "a" and member.pid is not None and not member.stopping:
            watch = os.pidfd_open(member.pid)
            try:
                os.kill(member.pid, signal.SIGKILL)
                # The loop is held until a is dead: its exit is unread as the stop begins.
                assert select.select([watch], [], [], 30)[0], "a did not die"
            finally:
                os.close(watch)
        begin_stop(member)

    monkeypatch.setattr(process.Process, "begin_stop", dead_first)

    async def scenario() -> ScenarioOutcome:
        return await asyncio.wait_for(run_scenario(load_scenario(case), grace=2.0), 60)

    outcome = asyncio.run(scenario())
    assert outcome.failure is not None
    assert outcome.failure.startswith(f"{case}:1: a killed by SIGKILL\n"), outcome.failure
    assert "end of input" not in outcome.failure
