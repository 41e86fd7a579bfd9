"""Draw docs/benchmarks.png from the figures run_all.py saved (needs matplotlib).

    bench/.peers/venv/bin/python bench/plot.py bench/results/results.json docs/benchmarks.png

Run by run_all.py with the peers' venv, where ``peers.py`` installed matplotlib; the
benchmarks themselves need only the standard library.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = {
    "raw cat (pipes)": "#999999",
    "bare pty loop": "#cccccc",
    "pipeplex --pty false": "#1f77b4",
    "pipeplex --pty stdout": "#6baed6",
    "pipeplex": "#1f77b4",
    "pipeplex-tmp": "#6baed6",
    "pipeplex test": "#1f77b4",
    "concurrently": "#ff7f0e",
    "honcho": "#2ca02c",
    "shell": "#999999",
    "python-floor": "#8c564b",
    "pexpect": "#d62728",
}
LABELS = {
    "raw cat (pipes)": "raw cat",
    "bare pty loop": "bare pty loop",
    "pipeplex --pty false": "pipeplex pipes",
    "pipeplex --pty stdout": "pipeplex default",
}


def main(results: str, out: str) -> int:
    res = json.loads(Path(results).read_text())
    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    fig.suptitle(f"pipeplex side by side, {res['date']}, {res['machine']['cpus']} cores"
                 + (" (quick)" if res.get("quick") else ""))  # fmt: skip

    ax = axes[0][0]
    configs = res.get("throughput", [])
    if configs:
        tools = [r["tool"] for r in configs[0]["rows"]]
        width = 0.8 / max(len(tools), 1)
        for t_i, tool in enumerate(tools):
            xs, ys = [], []
            for c_i, config in enumerate(configs):
                row = next((r for r in config["rows"] if r["tool"] == tool), None)
                if row and row["mb_s"]:
                    xs.append(c_i + (t_i - (len(tools) - 1) / 2) * width)
                    ys.append(row["mb_s"])
            ax.bar(xs, ys, width, label=LABELS.get(tool, tool), color=COLORS.get(tool))
        ax.set_xticks(range(len(configs)))
        ax.set_xticklabels([f"K={c['writers']}" + (f"\n{c['chunk']} B writes" if c["chunk"]
                                                  else "") for c in configs])  # fmt: skip
        ax.set_yscale("log")
        top = max((r["mb_s"] or 0) for c in configs for r in c["rows"])
        ax.set_ylim(top=top * 12)  # room for the legend above the bars
        ax.set_ylabel("MB/s (log)")
        ax.set_title("Throughput, merged to a file")
        ax.legend(fontsize=7, loc="upper center", ncol=3, framealpha=0.9)

    ax = axes[0][1]
    if configs:
        for tool in tools:
            if tool in ("raw cat (pipes)", "bare pty loop"):
                continue
            ys = [next((r["cpu_us_line"] for r in c["rows"] if r["tool"] == tool), None)
                  for c in configs]  # fmt: skip
            ax.plot(range(len(configs)), ys, "o-", label=LABELS.get(tool, tool),
                    color=COLORS.get(tool))  # fmt: skip
        ax.set_xticks(range(len(configs)))
        ax.set_xticklabels([f"K={c['writers']}" + (f"\n{c['chunk']} B" if c["chunk"] else "")
                            for c in configs])  # fmt: skip
        ax.set_yscale("log")
        ax.set_ylabel("tool CPU µs per line (log)")
        ax.set_title("CPU per line")
        ax.legend(fontsize=7)

    ax = axes[0][2]
    idle = res.get("idle")
    if idle:
        rows = idle["rows"]
        ax.bar([r["tool"] for r in rows], [r["cpu_ms_10s"] or 0 for r in rows],
               color=[COLORS.get(r["tool"]) for r in rows])  # fmt: skip
        for k, r in enumerate(rows):
            ax.text(k, (r["cpu_ms_10s"] or 0), f"{r['cpu_ms_10s'] or 0:.1f} ms", ha="center",
                    va="bottom", fontsize=8)  # fmt: skip
        ax.set_ylabel("CPU ms per 10 s")
        ax.set_title(f"Idle: 10 sleeping members, {idle['seconds']:g} s")

    scale = res.get("scale")
    for ax, key, title in ((axes[1][0], "up_s", "Scale: time until all N are up"),
                           (axes[1][1], "stop_gone_s", "Scale: SIGTERM until all are gone")):
        if not scale:
            continue
        for tool in dict.fromkeys(r["tool"] for r in scale["rows"]):
            pts = [(r["n"], r[key]) for r in scale["rows"] if r["tool"] == tool and r[key]]
            if pts:
                ax.plot(*zip(*pts, strict=True), "o-", label=tool, color=COLORS.get(tool))
        ax.set_xlabel("members N")
        ax.set_ylabel("seconds")
        ax.set_title(title)
        ax.legend(fontsize=7)

    ax = axes[1][2]
    expect = res.get("expect")
    if expect:
        ax2 = ax.twinx()
        for tool in dict.fromkeys(r["tool"] for r in expect["rows"]):
            rows = [r for r in expect["rows"] if r["tool"] == tool]
            ax.plot([r["mb"] for r in rows], [r["expect_s"] for r in rows], "o-",
                    color=COLORS.get(tool), label=f"{tool}: time")  # fmt: skip
            ax2.plot([r["mb"] for r in rows], [r["peak_rss_mb"] for r in rows], "s--",
                     color=COLORS.get(tool), label=f"{tool}: peak RSS")  # fmt: skip
        ax.set_xlabel("MB of output before the awaited line")
        ax.set_ylabel("seconds (solid)")
        ax2.set_ylabel("peak RSS MB (dashed)")
        ax2.set_ylim(bottom=0)
        ax.set_ylim(bottom=0)
        ax.set_title("Expect after a flood")
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="upper left")

    fig.tight_layout()
    fig.savefig(out, dpi=80)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
