"""Every benchmark side by side with the peers, and the figures in docs/benchmarks.md.

    .venv/bin/python bench/run_all.py            # full: about 6-8 minutes; writes docs/
    .venv/bin/python bench/run_all.py --quick    # about a minute; writes bench/results/
    .venv/bin/python bench/run_all.py --only throughput --only idle
    .venv/bin/python bench/run_all.py --from-results   # rewrite the page, measure nothing

Runs, one after the other (never two measurements at once, on a 2-core machine):

1. throughput (``throughput.py``): K = 1, 4, 16 writers of 80-byte lines (whole-line
   writes) and K = 4 with 4096-byte writes that split lines; raw cat, the bare pty
   loop, pipeplex in pipe mode and in its default mode, concurrently and honcho; every
   output checked line by line;
2. idle (``idle.py``): 10 sleeping members, pipeplex, concurrently and honcho;
3. scale (``scale.py``): N = 100, 500, 1000 members, next to a shell, honcho and
   concurrently;
4. expect on huge output (``expect_huge.py``): ``pipeplex test``, an ``AsyncPlex`` and
   pexpect waiting for a line after 10, 50 and 100 MB;
5. round trip (``roundtrip.py``), when that script is there.

Each scenario runs every tool in turn, several times, the order rotating; the tables give
medians. The peers come from ``bench/.peers`` (``peers.py`` installs them; ``make bench``
does that first); a peer that is not installed is skipped and the tables say so.

The full run writes ``docs/benchmarks.md`` and ``docs/benchmarks.png``; ``--quick`` writes
``bench/results/benchmarks-quick.md`` and ``.png`` instead, so that a smoke test never
replaces the published figures (``--docs`` / ``--no-docs`` override). The raw figures go
to ``bench/results/results[-quick].json``. The "what we found" section of the page is
``bench/findings.md``, included as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import expect_huge
import idle
import peers
import scale
import throughput
from _casts import runtime_folder
from _common import MiB, fmt, markdown_table, median
from throughput import Load, run_series

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DOCS = ROOT / "docs"
SCENARIOS = ("throughput", "idle", "scale", "expect", "roundtrip")

TP_TOOLS = ["raw cat (pipes)", "bare pty loop", "pipeplex --pty false", "pipeplex --pty stdout",
            "concurrently", "honcho"]  # fmt: skip
TP_LABELS = {
    "raw cat (pipes)": "raw limit: writers into cat",
    "bare pty loop": "pty limit: bare pty loop",
    "pipeplex --pty false": "pipeplex --pty false",
    "pipeplex --pty stdout": "pipeplex (default: pty stdout)",
    "concurrently": "concurrently (prefixed)",
    "honcho": "honcho",
}
TARGETS = {
    "pipe_vs_concurrently": 1.5,
    "default_mb_s": 50.0,
    "idle_cpu_10s": 0.01,
    "n1000_up_s": 10.0,
    "n1000_stop_s": 5.0,
    "n1000_rss_mb": 200.0,
}


def plan(quick: bool) -> dict[str, object]:
    """Sizes and repetitions of each scenario (quick: a smoke test of about a minute)."""
    configs = [(1, None), (4, None), (16, None), (4, 4096)]  # (K writers, bytes per write)
    if quick:
        return {"tp_mb": 32, "tp_repeat": 1, "honcho_mb": 2, "startup_runs": 1,
                "tp_configs": configs, "idle_s": 3.0, "idle_repeat": 1,
                "scale_n": [100, 300], "scale_repeat": 1, "expect_mb": [5, 10, 20],
                "expect_repeat": 1}  # fmt: skip
    return {"tp_mb": 256, "tp_repeat": 3, "honcho_mb": 8, "startup_runs": 3,
            "tp_configs": configs, "idle_s": 10.0, "idle_repeat": 2,
            "scale_n": [100, 500, 1000], "scale_repeat": 2, "expect_mb": [10, 50, 100],
            "expect_repeat": 2}  # fmt: skip


def log(text: str) -> None:
    print(text, flush=True)


# Scenarios --------------------------------------------------------------------------------


def run_throughput(p: dict[str, object], available: dict[str, str]) -> list[dict[str, object]]:
    tools = [t for t in TP_TOOLS if not available.get(t)]
    out = []
    for writers, chunk in p["tp_configs"]:  # type: ignore[attr-defined]
        total = int(p["tp_mb"]) * MiB  # type: ignore[call-overload]
        load = Load(writers, total // writers, chunk)
        honcho = Load(writers, int(p["honcho_mb"]) * MiB // writers, chunk)  # type: ignore[call-overload]
        what = f"K={writers}, " + (f"{chunk}-byte writes" if chunk else "whole-line writes")
        log(f"throughput: {what}, {load.payload / MiB:.0f} MB (honcho "
            f"{honcho.payload / MiB:.0f} MB), {p['tp_repeat']} repetition(s)")  # fmt: skip
        series = run_series(load, tools, int(p["tp_repeat"]),  # type: ignore[call-overload]
                            loads={"honcho": honcho},
                            startup_runs=int(p["startup_runs"]),  # type: ignore[call-overload]
                            ratio_to="raw cat (pipes)", log=log)  # fmt: skip
        rows = []
        for tool in tools:
            m = series.summary(tool)
            m["tool"] = tool
            rows.append(m)
        out.append({"writers": writers, "chunk": chunk, "mb": load.payload / MiB,
                    "lines": load.lines, "rows": rows, "failures": series.failures})
    return out


def run_idle(p: dict[str, object], available: dict[str, str]) -> dict[str, object]:
    tools = [t for t in idle.IDLE_TOOLS if not available.get(t)]
    repeat = int(p["idle_repeat"])  # type: ignore[call-overload]
    log(f"idle: 10 sleeping members, {p['idle_s']:g} s window; {', '.join(tools)}; "
        f"{repeat} repetition(s)")  # fmt: skip
    results: list[idle.IdleResult] = []
    for rep in range(repeat):
        order = tools[rep % len(tools):] + tools[: rep % len(tools)]
        for tool in order:
            r = idle.measure_idle(tool, float(p["idle_s"]))  # type: ignore[arg-type]
            results.append(r)
            log(f"  [{rep + 1}/{repeat}] {tool:<12} CPU {fmt(cpu_ms(r), '.2f')} ms per 10 s, "
                f"{r.wakeups} wake-ups, threads {r.threads}, stop {fmt(r.stop_exit_s, '.3f')} s"
                + (f"  ({r.problem})" if r.problem else ""))  # fmt: skip
    rows = []
    for tool in tools:
        rs = [r for r in results if r.tool == tool]
        rows.append({
            "tool": tool, "runs": len(rs),
            "cpu_ms_10s": median(cpu_ms(r) for r in rs),
            "cpu_ms_10s_max": max((cpu_ms(r) or 0.0) for r in rs),
            "wakeups_s": median(r.wakeups / r.window_s if r.wakeups is not None and r.window_s
                                else None for r in rs),
            "processes": median(r.processes for r in rs),
            "threads": median(r.threads for r in rs),
            "threads_main": median(r.threads_main for r in rs),
            "rss_main_mb": median(r.rss_main_mb for r in rs),
            "pss_sum_mb": median(r.pss_sum_mb for r in rs),
            "lines_while_idle": sum(r.lines_while_idle for r in rs),
            "stop_exit_s": median(r.stop_exit_s for r in rs),
            "stop_gone_s": median(r.stop_gone_s for r in rs),
            "left_behind": max(r.left_behind for r in rs),
            "problems": [r.problem for r in rs if r.problem],
        })  # fmt: skip
    return {"seconds": p["idle_s"], "rows": rows, "samples": [asdict(r) for r in results]}


def cpu_ms(r: idle.IdleResult) -> float | None:
    v = r.cpu_per_10s
    return None if v is None else v * 1000


def run_scale(p: dict[str, object], available: dict[str, str]) -> dict[str, object]:
    tools = [t for t in scale.TOOLS if not available.get(t)]
    ns = list(p["scale_n"])  # type: ignore[call-overload]
    log(f"scale: N = {', '.join(map(str, ns))}; {', '.join(tools)}; "
        f"{p['scale_repeat']} repetition(s); the casts' folders in "
        f"{runtime_folder() or tempfile.gettempdir()}, "
        "pipeplex-tmp's run folder in /tmp")  # fmt: skip
    samples = scale.run_scale(ns, tools, int(p["scale_repeat"]), log=log)  # type: ignore[call-overload]
    rows = scale.summarize(samples)
    return {"rows": rows, "targets": scale.targets(rows), "samples": [asdict(s) for s in samples]}


def run_expect(p: dict[str, object], available: dict[str, str]) -> dict[str, object]:
    python = None if available.get("pexpect") else peers.venv_python()
    sizes = list(p["expect_mb"])  # type: ignore[call-overload]
    log(f"expect on huge output: {', '.join(map(str, sizes))} MB; pipeplex test, AsyncPlex"
        f"{', pexpect' if python else ''}; {p['expect_repeat']} repetition(s)")  # fmt: skip
    samples = expect_huge.run_expect(sizes, int(p["expect_repeat"]),  # type: ignore[call-overload]
                                     pexpect_python=python, log=log)  # fmt: skip
    return {"rows": expect_huge.summarize(samples), "samples": [asdict(s) for s in samples]}


def run_roundtrip(quick: bool) -> dict[str, object]:
    """Run bench/roundtrip.py (written separately) when it is there; keep what it prints."""
    script = HERE / "roundtrip.py"
    if not script.exists():
        log("round trip: bench/roundtrip.py is not there yet; skipped")
        return {"present": False}
    log("round trip: bench/roundtrip.py" + (" --quick" if quick else ""))
    argv = [sys.executable, str(script), *(["--quick"] if quick else [])]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        out, status = done.stdout, done.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        status = None
    for line in out.splitlines():
        log("  " + line)
    lines = out.splitlines()
    tables = [line for line in lines if line.startswith("|")]
    targets = [line.removeprefix("target: ") for line in lines if line.startswith("target: ")]
    problems = lines[lines.index("PROBLEMS") + 1:] if "PROBLEMS" in lines else []
    api = _api_roundtrip(quick)
    return {"present": True, "status": status, "output": out, "table": "\n".join(tables),
            "targets": targets, "problems": problems, "api_table": api}  # fmt: skip


def _api_roundtrip(quick: bool) -> str:
    """Round trips through the Python API beside pexpect (bench/api_roundtrip.py)."""
    log("round trip through the Python API: bench/api_roundtrip.py" + (" --quick" if quick else ""))
    argv = [sys.executable, str(HERE / "api_roundtrip.py"), *(["--quick"] if quick else [])]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        return ""
    for line in done.stdout.splitlines():
        log("  " + line)
    tables: list[str] = []
    for line in done.stdout.splitlines():
        if line.startswith("| tool") and tables:
            tables.append("")  # (the REPL's table after the one against cat)
        if line.startswith("|"):
            tables.append(line)
    return "\n".join(tables)


# The page ---------------------------------------------------------------------------------



def machine() -> dict[str, str]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = ""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB RAM"
    return {"cpus": str(os.cpu_count()), "model": model, "memory": mem,
            "kernel": platform.release(), "python": platform.python_version(),
            "load_before": "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())}  # fmt: skip


def throughput_table(config: dict[str, object], missing: dict[str, str]) -> str:
    rows = []
    for m in config["rows"]:  # type: ignore[attr-defined]
        tool = m["tool"]
        rows.append([
            TP_LABELS.get(tool, tool), fmt(m["mb"], ".0f"), fmt(m["mb_s"], ".0f"),
            fmt(m["net_mb_s"], ".0f"),
            "1.00x" if tool == "raw cat (pipes)" else fmt(m["ratio"], ".2f") + "x",
            fmt(m["wall_s"], ".2f"), fmt(m["startup_s"], ".2f"), fmt(m["cpu_s"], ".2f"),
            fmt(m["cpu_us_line"], ".2f"), fmt(m["rss_mb"], ".0f"),
            "-" if m["lost"] is None else str(m["lost"]),
            "-" if m["torn"] is None else str(m["torn"]),
        ])  # fmt: skip
    for tool, why in missing.items():
        if tool in TP_TOOLS:
            rows.append([TP_LABELS.get(tool, tool), *["-"] * 10, f"skipped: {why}"])
    return markdown_table(["tool", "MB", "MB/s", "net MB/s", "x raw", "wall s",
                           "start-up s", "tool CPU s", "CPU µs/line", "peak RSS MB",
                           "lost", "torn"], rows)  # fmt: skip


def by_tool(rows: list[dict[str, object]], tool: str) -> dict[str, object] | None:
    return next((r for r in rows if r["tool"] == tool), None)


def target_rows(res: dict[str, object]) -> list[tuple[str, str, str]]:
    """(target, result, met?) for the project's side-by-side targets."""
    out: list[tuple[str, str, str]] = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("yes" if ok else "**no**")

    for config in res.get("throughput", []):  # type: ignore[attr-defined]
        rows = config["rows"]
        what = f"K={config['writers']}" + (f", {config['chunk']}-byte writes"
                                            if config["chunk"] else "")  # fmt: skip
        pipe = by_tool(rows, "pipeplex --pty false")
        conc = by_tool(rows, "concurrently")
        default = by_tool(rows, "pipeplex --pty stdout")
        if pipe and conc:
            ratio = pipe["mb_s"] / conc["mb_s"]  # type: ignore[operator]
            clean = pipe["lost"] == 0 and pipe["torn"] == 0
            out.append((f"throughput {what}: pipe mode >= {TARGETS['pipe_vs_concurrently']}x "
                        "concurrently, 0 lost, 0 torn",
                        f"{ratio:.2f}x ({pipe['mb_s']:.0f} vs {conc['mb_s']:.0f} MB/s); "
                        f"lost {pipe['lost']}, torn {pipe['torn']}",
                        verdict(ratio >= TARGETS["pipe_vs_concurrently"] and clean)))  # fmt: skip
        if default:
            ok = default["mb_s"] >= TARGETS["default_mb_s"] and default["lost"] == 0 \
                and default["torn"] == 0  # type: ignore[operator]
            out.append((f"throughput {what}: default mode >= {TARGETS['default_mb_s']:g} MB/s",
                        f"{default['mb_s']:.0f} MB/s; lost {default['lost']}, "
                        f"torn {default['torn']}", verdict(ok)))  # fmt: skip
    idle_res = res.get("idle")
    if idle_res:
        pp = by_tool(idle_res["rows"], "pipeplex")  # type: ignore[index]
        if pp:
            cpu = pp["cpu_ms_10s"]
            out.append((f"idle: <= {TARGETS['idle_cpu_10s']} CPU s per 10 s",
                        f"{fmt(cpu, '.2f')} ms per 10 s (worst run "
                        f"{pp['cpu_ms_10s_max']:.2f} ms)",  # type: ignore[str-format]
                        verdict(cpu is not None and cpu / 1000 <= TARGETS["idle_cpu_10s"])))
    scale_res = res.get("scale")
    if scale_res:
        for name, result, met in scale_res["targets"]:  # type: ignore[index]
            out.append((f"scale {name}", result, verdict(met)))
    rt = res.get("roundtrip") or {}
    for text in rt.get("targets", []):  # type: ignore[union-attr]
        # "FIFO (c.in) p50 within 2x the bare relay: 1.23x, met" (from roundtrip.py)
        claim, _, result = str(text).rpartition(": ")
        figure, _, met = result.rpartition(", ")
        out.append((f"round trip: {claim}", figure, verdict(met == "met")))
    return out


def idle_table(res: dict[str, object]) -> str:
    rows = [[r["tool"], str(r["runs"]), fmt(r["cpu_ms_10s"], ".2f"),
             fmt(r["cpu_ms_10s_max"], ".2f"), fmt(r["wakeups_s"], ".1f"),
             fmt(r["processes"], ".0f"), f"{r['threads']:.0f} ({r['threads_main']:.0f})",
             fmt(r["rss_main_mb"], ".1f"), fmt(r["pss_sum_mb"], ".1f"),
             fmt(r["stop_exit_s"], ".3f"), fmt(r["stop_gone_s"], ".3f"),
             str(r["left_behind"])] for r in res["rows"]]  # type: ignore[attr-defined]  # fmt: skip
    return markdown_table(["tool", "runs", "CPU ms per 10 s", "worst run", "wake-ups/s",
                           "procs", "threads (main)", "RSS MB (main)", "PSS MB (all)",
                           "SIGTERM to exit s", "to all gone s", "left behind"],
                          rows)  # fmt: skip


def write_page(res: dict[str, object], path: Path, png: Path | None, quick: bool) -> None:
    m = res["machine"]
    v = res["versions"]
    missing = res["missing"]
    p = res["plan"]
    parts: list[str] = []
    add = parts.append
    add("# Benchmarks\n")
    add(f"Measured {res['date']} on a {m['cpus']}-core machine ({m['model']}, "  # type: ignore[index]
        f"{m['memory']}, Linux {m['kernel']}, Python {m['python']}), pipeplex "  # type: ignore[index]
        f"{res['pipeplex_version']}, side by side with "
        + ", ".join(f"{k} {v[k]}" for k in ("concurrently", "honcho", "pexpect")  # type: ignore[index]
                    if k in v)  # type: ignore[operator]
        + (f" (Node {v['node']})" if "node" in v else "") + ". "  # type: ignore[operator,index]
        f"Load average before / after: {m['load_before']} / {res['load_after']}; "  # type: ignore[index]
        "the machine is shared, so read the ratios measured in the same run rather than "
        f"the absolute rates. Whole run: {res['seconds']:.0f} s"
        + (f"; measured again afterwards with `--only`: {', '.join(res['remeasured'])}"  # type: ignore[arg-type]
           if res.get("remeasured") else "")
        + (" (`--quick`: small sizes, one repetition; a smoke test, not a measurement)."
           if quick else "."))  # fmt: skip
    add("")
    add("Produced by `make bench` (`bench/run_all.py`); `make bench-quick` is a one-minute "
        "smoke test. The scripts and exactly what they measure are described in "
        "[bench/README.md](../bench/README.md).")
    if missing:
        add("")
        add("Skipped (could not be installed): " + ", ".join(
            f"{k} ({w})" for k, w in missing.items()) + ".")  # type: ignore[attr-defined]
    if png is not None:
        add(f"\n![benchmarks]({png.name})\n")
    add("## Against the targets\n")
    add(markdown_table(["target", "result", "met?"], [list(t) for t in target_rows(res)]))
    add("")

    if "throughput" in res:
        add("## Throughput\n")
        add(f"K writers ({'`bench/writer.py`'}) write 80-byte sequence-numbered lines as fast "
            f"as they can, {p['tp_mb']} MB in all (MB = 2^20 bytes), honcho {p['honcho_mb']} "  # type: ignore[index]
            "MB (it moves about 3-5 MB/s). The merged stream goes to a file, which is "
            "checked line by line: every line must come out whole, under its own member's "
            "prefix, in order. Medians of "
            f"{p['tp_repeat']} repetitions (the order of the tools rotates); lost and torn "  # type: ignore[index]
            "are totals over them.\n")  # fmt: skip
        for config in res["throughput"]:  # type: ignore[attr-defined]
            what = ("whole-line writes (~64 KiB each)" if not config["chunk"]
                    else f"{config['chunk']}-byte writes that split lines")  # fmt: skip
            add(f"### K = {config['writers']}, {what}\n")
            add(throughput_table(config, missing))  # type: ignore[arg-type]
            add("")
            bad = config["failures"]
            if bad:
                add("Problems seen (first lines of each):\n")
                add("```")
                for text in bad[:6]:
                    add("\n".join(text.splitlines()[:4]))
                if len(bad) > 6:
                    add(f"... and {len(bad) - 6} more")
                add("```\n")
        add("Columns: **MB/s** payload over wall time from the first spawn to the tool's "
            "exit, start-up included; **net MB/s** the same without the tool's start-up and "
            "shutdown (**start-up s**: the same tool with writers that write nothing); "
            "**x raw**: MB/s over the raw limit's in the same repetition (median of the "
            "ratios; honcho's smaller size makes its start-up weigh more); "
            "**tool CPU s**: user+system CPU of the tool's processes without the writers "
            "(wait4 rusage of the whole tree minus what each writer reports for itself; "
            "for cat and the bare pty loop, their own); **peak RSS**: sum of the VmHWM of "
            "the tool's processes (honcho: its main process and one helper per member); "
            "**lost**: lines that never came out intact; **torn**: output lines that are "
            "not an intact line (a line cut in two counts twice). honcho's writers wait for "
            "each other before exiting, since honcho stops every member when one exits.\n")

    if "idle" in res:
        add("## Idle\n")
        add(f"Ten members run `sleep`; a {res['idle']['seconds']:g} s window opens one "  # type: ignore[index]
            "second after all are running. CPU is the scheduler runtime of every thread of "
            "the tool's processes (nanoseconds, /proc/PID/task/*/schedstat), members not "
            "counted; wake-ups are the times those threads were scheduled. Then SIGTERM to "
            "the tool.\n")
        add(idle_table(res["idle"]))  # type: ignore[arg-type]
        add("")

    if "scale" in res:
        add("## Scale\n")
        add("N members `sh -c 'echo up cI; exec sleep 60'`. **all up**: from starting the "
            "tool until the N-th `up` line came out of it; **x shell**: over a shell that "
            "starts the same members in the background (its figure is the time to start them "
            "all; it is stopped with `killpg`, the floor for stopping). **python-floor**: "
            "the least a Python tool built on asyncio spends (`python_floor.py`: "
            "its imports, one `posix_spawn` per member, the lines copied out), the floor "
            "under pipeplex's own figure. Every cast's folder, pipeplex's run folder "
            "with it, is in memory, where a login session's runtime folder is "
            "(`$XDG_RUNTIME_DIR`, else `/dev/shm`); **pipeplex-tmp** is pipeplex with its "
            "run folder in `/tmp`: what making a named pipe per member costs on that file "
            "system (see What we found, end of Scale); where there is no runtime folder (no "
            "`XDG_RUNTIME_DIR`: many containers and CI jobs, and this machine), pipeplex's own "
            "default run folder is in `/tmp`, so **pipeplex-tmp** is what a default run gets "
            "there. Threads and memory "
            "are taken once everyone is up: PSS sums the tool's processes with shared pages "
            "split (honcho forks one Python per member). **left behind**: members still "
            "alive 3 s after the tool exited, or at the deadline (30 s after SIGTERM, "
            "concurrently 60 s); they are then killed. concurrently at N = 1000 runs once "
            "(it stops its members one `ps` call at a time). **CPU s**: what the tool's "
            "processes and the members had spent once all were up; on two cores no tool is "
            "up sooner than their sum over 2 (see What we found, end of Scale).\n")
        add(scale.table(res["scale"]["rows"]))  # type: ignore[index]
        add("")

    if "expect" in res:
        add("## Expect on huge output\n")
        add("A member writes M MB of 80-byte lines, then `FINAL-MARK`; the scenario waits "
            "for `^FINAL-MARK$`. pipeplex: a generated scenario file run with "
            "`pipeplex test -v`; **expect s** is the step's time from its `-v` line, "
            "**whole command s** start-up to exit, **peak RSS** the VmHWM of the pipeplex "
            "process (its members are its children and not counted). AsyncPlex: the API "
            "in a process of its own, `spawn(..., shell=True)` then "
            "`expect('^FINAL-MARK$')`; expect s from before the spawn to the match, peak "
            "RSS its own VmHWM. pexpect: "
            "`spawn('sh', ['-c', CMD], maxread=65536, "
            f"searchwindowsize={expect_huge.SEARCH_WINDOW})` "
            "and `expect(rb'FINAL-MARK\\r?\\n')` in a process of its own; expect s from "
            "before the spawn to the match, peak RSS its own VmHWM.\n")
        add(expect_huge.table(res["expect"]["rows"]))  # type: ignore[index]
        add("")

    add("## Round trip\n")
    rt = res.get("roundtrip") or {}
    if rt.get("present") and rt.get("table"):  # type: ignore[union-attr]
        add("From `bench/roundtrip.py" + (" --quick" if quick else "") + "` (see its "
            "docstring for the paths): a line sent to a `cat` member until its echo comes "
            "out of pipeplex, next to a bare Python relay with the same hops.\n")
        add(str(rt["table"]))  # type: ignore[index]
        if rt.get("problems"):  # type: ignore[union-attr]
            add("\nProblems: " + "; ".join(rt["problems"]))  # type: ignore[index,arg-type]
        if rt.get("api_table"):  # type: ignore[union-attr]
            add("\nThrough the Python API (`bench/api_roundtrip.py`): `sendline` then `expect` "
                "against `cat`, beside pexpect with `delaybeforesend=None`; the async row drives "
                "ten members at once and gives the rate per member. The second table drives "
                "`python3 -q -i` on a full terminal: each round trip waits for the answer and "
                "for the next prompt, a line without its end.\n")
            add(str(rt["api_table"]))  # type: ignore[index]
    elif rt.get("present"):  # type: ignore[union-attr]
        add("`bench/roundtrip.py` ran but printed no table; its output:\n")
        add("```\n" + str(rt.get("output", "")).strip()[-2000:] + "\n```")  # type: ignore[union-attr]
    else:
        add("*Not measured in this run: `bench/roundtrip.py` was not there yet. `run_all.py` "
            "runs it when it exists (`--quick` passes through) and puts the markdown table "
            "it prints here.*")
    add("")
    findings = HERE / "findings.md"
    if findings.exists():
        add(findings.read_text().rstrip() + "\n")
    path.write_text("\n".join(parts).rstrip() + "\n")


def plot(results_json: Path, png: Path, python: str | None) -> bool:
    if python is None:
        log("plot: skipped, matplotlib is not installed (bench/.peers/venv)")
        return False
    done = subprocess.run([python, str(HERE / "plot.py"), str(results_json), str(png)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode:
        log("plot: failed: " + " / ".join(done.stderr.strip().splitlines()[-3:]))
        return False
    return True


def pipeplex_version() -> str:
    done = subprocess.run([throughput.find_pipeplex(), "--version"], capture_output=True,
                          text=True, check=False)  # fmt: skip
    return done.stdout.strip().split()[-1] if done.stdout.strip() else "?"


def outputs(quick: bool, docs: bool) -> tuple[Path, Path, Path]:
    """(results JSON, page, plot) for a full or quick run."""
    suffix = "-quick" if quick else ""
    page = DOCS / "benchmarks.md" if docs else RESULTS / f"benchmarks{suffix}.md"
    return RESULTS / f"results{suffix}.json", page, page.with_suffix(".png")


def rewrite(quick: bool, docs: bool) -> int:
    results_json, page, png = outputs(quick, docs)
    if not results_json.exists():
        print(f"{results_json.relative_to(ROOT)} is not there: run the benchmarks first")
        return 1
    res = json.loads(results_json.read_text())
    found = peers.locate()
    drew = plot(results_json, png, found.python if found.matplotlib else None)
    write_page(res, page, png if drew else None, bool(res.get("quick")))
    log(f"wrote {page.relative_to(ROOT)}" + (f" and {png.relative_to(ROOT)}" if drew else "")
        + f" from {results_json.relative_to(ROOT)}")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one repetition")
    parser.add_argument("--only", action="append", choices=SCENARIOS, help="only this scenario")
    parser.add_argument("--docs", dest="docs", action="store_true", default=None,
                        help="write docs/benchmarks.md and .png (default unless --quick)")
    parser.add_argument("--no-docs", dest="docs", action="store_false")
    parser.add_argument("--from-results", action="store_true",
                        help="measure nothing: rewrite the page and plot from the saved "
                             "bench/results/results[-quick].json (after editing findings.md)")
    args = parser.parse_args(argv)
    docs = (not args.quick) if args.docs is None else args.docs
    if args.from_results:
        return rewrite(args.quick, docs)
    scenarios = args.only or list(SCENARIOS)
    p = plan(args.quick)
    began = time.monotonic()
    found = peers.locate()
    available = dict(found.missing)
    log(f"pipeplex benchmarks{' (quick)' if args.quick else ''}: {', '.join(scenarios)}")
    for name, why in found.missing.items():
        log(f"  {name}: SKIPPED ({why})")
    res: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d"), "quick": args.quick, "plan": p,
        "machine": machine(), "versions": found.versions, "missing": found.missing,
        "pipeplex_version": pipeplex_version(),
    }  # fmt: skip
    if "throughput" in scenarios:
        res["throughput"] = run_throughput(p, available)
    if "idle" in scenarios:
        res["idle"] = run_idle(p, available)
    if "scale" in scenarios:
        res["scale"] = run_scale(p, available)
    if "expect" in scenarios:
        res["expect"] = run_expect(p, available)
    if "roundtrip" in scenarios:
        res["roundtrip"] = run_roundtrip(args.quick)
    res["seconds"] = time.monotonic() - began
    res["load_after"] = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())

    RESULTS.mkdir(exist_ok=True)
    results_json, page, png = outputs(args.quick, docs)
    if args.only and results_json.exists():
        # A part measured again: the other parts keep the figures saved by the last run.
        saved = json.loads(results_json.read_text())
        res = {**saved, **{k: v for k, v in res.items() if k in scenarios},
               "remeasured": sorted({*saved.get("remeasured", []), *scenarios})}
    results_json.write_text(json.dumps(res, indent=1, default=str))
    drew = plot(results_json, png, found.python if found.matplotlib else None)
    write_page(res, page, png if drew else None, args.quick)
    log("")
    for target, result, met in target_rows(res):
        log(f"  {met:>6}  {target}: {result}")
    log(f"\nwrote {page.relative_to(ROOT)}" + (f" and {png.relative_to(ROOT)}" if drew else "")
        + f", {results_json.relative_to(ROOT)}; {res['seconds']:.0f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
