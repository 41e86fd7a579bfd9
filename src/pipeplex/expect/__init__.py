"""Expectations: wait for a pattern in a member's output, with pexpect's semantics."""

from __future__ import annotations

from .buffer import OutputBuffer
from .matcher import Expectation, Matcher
from .patterns import EOF, TIMEOUT, Pattern, compile_pattern

__all__ = (
    "EOF",
    "TIMEOUT",
    "Expectation",
    "Matcher",
    "OutputBuffer",
    "Pattern",
    "compile_pattern",
)
