"""Expectations: wait for a pattern in a member's output, with pexpect's semantics."""

from __future__ import annotations

from .buffer import EOF, TIMEOUT, OutputBuffer, Pattern, compile_pattern
from .matcher import Expectation, Matcher

__all__ = (
    "EOF",
    "TIMEOUT",
    "Expectation",
    "Matcher",
    "OutputBuffer",
    "Pattern",
    "compile_pattern",
)
