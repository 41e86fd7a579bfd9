"""``pipeplex test`` and ``pipeplex replay``: scenarios as tests, transcripts as a stream.

The command line (``cli.py``) parses their arguments; this module, and the scenario
runner it brings, loads only when one of them runs."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from ._events import Event, Exited, Matched, Note, Output, Ready, Started, Stream
from ._signals import clean_inherited_signals
from .errors import PipeplexError
from .output.render import Renderer, use_color
from .report.junit import CaseResult, write_junit
from .report.transcript import read_transcript, record_data
from .scenario import load_scenario
from .scenario.model import Scenario
from .scenario.run import StepResult
from .scenario.suite import ScenarioOutcome, run_scenario

__all__ = ("replay_transcript", "run_tests")

LOAD_ERROR = 2


def _style(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color else text


def run_tests(files: list[Path], *, verbose: bool, junit: Path | None,
              transcript: Path | None, log_dir: Path | None, update: bool, grace: float,
              color: str) -> NoReturn:
    """``pipeplex test``: load and run the scenarios, report, exit with the status."""
    clean_inherited_signals()
    colored = use_color(color, sys.stdout.isatty())  # type: ignore[arg-type]
    scenarios: list[Scenario] = []
    load_errors: list[str] = []
    for path in files:
        try:
            scenarios.append(load_scenario(path))
        except PipeplexError as exc:
            load_errors.append(str(exc))
    began = time.monotonic()
    try:
        outcomes = asyncio.run(_run_all(scenarios, verbose=verbose, transcript=transcript,
                                        log_dir=log_dir, update=update, grace=grace,
                                        several=len(files) > 1, colored=colored))
    except PipeplexError as exc:  # a record that cannot be written: nothing ran
        print(f"pipeplex: error: {exc}", file=sys.stderr)
        sys.exit(LOAD_ERROR)
    except FileExistsError as exc:  # (a folder made for several scenarios' records)
        print(f"pipeplex: error: with several scenarios, --transcript and --log-dir "
              f"name folders, and {exc.filename} is not one", file=sys.stderr)
        sys.exit(LOAD_ERROR)
    except OSError as exc:
        if exc.filename is None:  # not a record's path: our own output (a reader that left)
            raise
        print(f"pipeplex: error: cannot write the records: {exc.strerror or exc} "
              f"({exc.filename}); give --transcript/--log-dir folders you may write to",
              file=sys.stderr)
        sys.exit(LOAD_ERROR)
    elapsed = time.monotonic() - began
    if not verbose and outcomes:
        print()
    for message in load_errors:
        print(_style("ERROR ", "1;31", colored) + message)
    for outcome in outcomes:
        if not outcome.ok:
            header = f"FAILED {outcome.scenario.path}"
            print("\n" + _style(header, "1;31", colored))
            print(_indent(outcome.failure or ""))
    passed = sum(o.ok for o in outcomes)
    failed = len(outcomes) - passed
    summary = f"{passed} passed, {failed} failed"
    if load_errors:
        summary += f", {len(load_errors)} could not be loaded"
    summary += f" in {elapsed:.2f} s"
    if update:
        summary += f" ({sum(o.golden_updated for o in outcomes)} golden files written)"
    code = "1;32" if not failed and not load_errors else "1;31"
    print(_style(summary, code, colored))
    if junit is not None:
        results = [_case(o) for o in outcomes]
        results += [CaseResult("pipeplex", m.split(":")[0], 0.0, error=m) for m in load_errors]
        write_junit(junit, results)
    sys.stdout.flush()  # (a stdout that refuses it is told of here, not at exit)
    sys.exit(LOAD_ERROR if load_errors else 1 if failed else 0)


async def _run_all(scenarios: list[Scenario], *, verbose: bool, transcript: Path | None,
                   log_dir: Path | None, update: bool, grace: float, several: bool,
                   colored: bool) -> list[ScenarioOutcome]:
    outcomes = []
    names = [scenario.name for scenario in scenarios]
    for index, scenario in enumerate(scenarios):
        # Scenarios of the same name (a/s.toml, b/s.toml) keep records of their own.
        record_name = (scenario.name if names.count(scenario.name) == 1
                       else f"{scenario.name}-{index + 1}")
        if verbose:
            print(f"{scenario.path}", flush=True)

        def on_step(result: StepResult) -> None:
            if verbose:
                mark = _style("ok  ", "32", colored) if result.ok else _style("FAIL", "31", colored)
                print(f"  {mark} {result.seconds:6.2f} s  {result.step.describe()}"
                      f"  ({result.step.source})", flush=True)

        path = transcript
        if transcript is not None and several:
            transcript.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 (instant)
            path = transcript / f"{record_name}.jsonl"
        logs = log_dir / record_name if log_dir is not None and several else log_dir
        outcome = await run_scenario(scenario, grace=grace, transcript=path, log_dir=logs,
                                     update_golden=update, on_step=on_step)
        outcomes.append(outcome)
        if not verbose:
            print(_style(".", "32", colored) if outcome.ok else _style("F", "31", colored),
                  end="", flush=True)
        elif not outcome.ok and not any(not r.ok for r in outcome.steps):
            print(f"  {_style('FAIL', '31', colored)} after the steps", flush=True)
    return outcomes


def _case(outcome: ScenarioOutcome) -> CaseResult:
    path = outcome.scenario.path or "scenario"
    return CaseResult(suite=path, name=outcome.scenario.name, seconds=outcome.seconds,
                      failure=outcome.failure)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def replay_transcript(path: Path, *, color: str, timestamps: bool) -> None:
    """``pipeplex replay``: show a transcript as the merged stream again."""
    try:
        records = list(read_transcript(path))
    except (OSError, ValueError) as exc:
        print(f"pipeplex: error: {exc}", file=sys.stderr)
        sys.exit(LOAD_ERROR)
    names = list(dict.fromkeys(r["p"] for r in records if r.get("p")))
    isatty = sys.stdout.isatty()
    renderer = Renderer(names, color=use_color(color, isatty),  # type: ignore[arg-type]
                        timestamps=timestamps, sanitize=isatty)
    out = sys.stdout.buffer
    for record in records:
        event = _event(record)
        if event is not None:
            out.write(renderer.render(event))
    out.flush()


def _event(record: dict[str, Any]) -> Event | None:
    """The event a transcript record stands for (input is not part of the stream)."""
    t = float(record.get("t", 0.0))
    name = record.get("p")
    kind = record.get("s")
    if kind in ("out", "err") and isinstance(name, str):
        data = record_data(record)
        stream: Stream = "stdout" if kind == "out" else "stderr"
        return Output(name, stream, data, not data.endswith(b"\n"), t)
    what = record.get("e")
    if kind != "event" or not (name is None or isinstance(name, str)):
        return None
    if what == "note":
        return Note(str(record.get("d", "")), name, "info", t)
    if name is None:
        return None
    if what == "start":
        return Started(name, int(record.get("pid", 0)), (), t)
    if what == "exit":
        return Exited(name, int(record.get("code", 0)), bool(record.get("stopped")), 0.0, t)
    if what == "ready":
        return Ready(name, tuple(dict(record.get("vars") or {}).items()), t)
    if what == "match":
        return Matched(name, str(record.get("pattern")), str(record.get("d")), t)
    return None
