"""What a run leaves behind: transcripts, per-member logs, golden files and JUnit reports."""

from __future__ import annotations

from .golden import compare_golden, golden_text
from .junit import CaseResult, write_junit
from .transcript import LogDirSink, TranscriptSink, read_transcript

__all__ = (
    "CaseResult",
    "LogDirSink",
    "TranscriptSink",
    "compare_golden",
    "golden_text",
    "read_transcript",
    "write_junit",
)
