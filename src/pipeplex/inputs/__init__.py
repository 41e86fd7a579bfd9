"""Ways into a running cast: the run folder's named pipes, and the router behind them."""

from __future__ import annotations

from .fifo import FifoChannel
from .router import Router
from .rundir import RunDir, default_run_dir

__all__ = ("FifoChannel", "Router", "RunDir", "default_run_dir")
