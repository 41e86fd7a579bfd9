"""The benchmarks that import pipeplex's insides still run against them.

A benchmark is not run by the suite, so one that reaches into a module that moved would
only fail when someone next measures with it. The ones that start no process are run
here, tiny.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_the_round_trips_python_side_runs_against_the_current_modules() -> None:
    """``api_path.py`` builds the sinks of an ``AsyncPlex`` from their modules."""
    done = subprocess.run([sys.executable, str(BENCH / "api_path.py"), "--opcodes",
                           "--trips", "3", "--members", "2"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "opcodes per trip" in done.stdout
