"""Scenarios: a cast plus ordered steps (send, expect, wait, signal, ...) that pass or fail."""

from __future__ import annotations

from .load import load_scenario
from .model import NormalizeRule, Scenario, Step
from .run import StepFailed, run_steps

__all__ = ("NormalizeRule", "Scenario", "Step", "StepFailed", "load_scenario", "run_steps")
