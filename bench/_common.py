"""Shared pieces of the pipeplex benchmarks: the line format, process figures, a table.

The line format (see ``writer.py``): ``ID SEQ FILLER\\n``, exactly 80 bytes, SEQ zero-padded
to 10 digits, FILLER letters chosen by SEQ. Lines are produced 1000 at a time from a
template in which the upper 7 digits of SEQ are a placeholder; both the writer and the
output checker use it, so neither spends Python work per line.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path

LINE_BYTES = 80
SEQ_DIGITS = 10
BLOCK_LINES = 1000
WHOLE_LINES_CHUNK = (64 * 1024 // LINE_BYTES) * LINE_BYTES  # 819 lines, 65,520 bytes
MiB = 1024 * 1024
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cache_bytecode() -> None:
    """Let every Python the benchmarks start (pipeplex, honcho, the writers) cache its
    bytecode, as an installed package does, instead of compiling pipeplex's modules
    afresh at each start when ``PYTHONDONTWRITEBYTECODE`` is set; the cache goes to the
    ignored ``bench/.peers/pycache``, never next to the sources."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ.setdefault("PYTHONPYCACHEPREFIX",
                          str(Path(__file__).resolve().parent / ".peers" / "pycache"))


_cache_bytecode()

_ALPHABET = b"abcdefghijklmnopqrstuvwxy"  # 25 letters: 1000 lines hold 40 whole turns
_PLACEHOLDER = b"#######"  # the upper 7 of the 10 SEQ digits in a block template
_HIGH_DIGITS = len(_PLACEHOLDER)


def _filler(seq: int, length: int) -> bytes:
    turn = seq % len(_ALPHABET)
    letters = _ALPHABET * (length // len(_ALPHABET) + 2)
    return letters[turn : turn + length]


def expected_line(writer_id: str, seq: int) -> bytes:
    """The exact 80 bytes (with the newline) of line ``seq`` of writer ``writer_id``."""
    head = f"{writer_id} {seq:0{SEQ_DIGITS}d} ".encode()
    filler = LINE_BYTES - len(head) - 1
    if filler < 1:
        raise ValueError(f"writer id {writer_id!r} is too long for an {LINE_BYTES}-byte line")
    return head + _filler(seq, filler) + b"\n"


def block_template(writer_id: str, prefix: bytes = b"") -> bytes:
    """1000 lines (each after ``prefix``) with the upper SEQ digits left as a placeholder."""
    if "#" in writer_id or " " in writer_id:
        raise ValueError("a writer id may not contain '#' or spaces")
    head = f"{writer_id} ".encode()
    filler = LINE_BYTES - len(head) - SEQ_DIGITS - 2
    if filler < 1:
        raise ValueError(f"writer id {writer_id!r} is too long for an {LINE_BYTES}-byte line")
    low_digits = SEQ_DIGITS - _HIGH_DIGITS
    return b"".join(
        prefix + head + _PLACEHOLDER + b"%0*d " % (low_digits, j) + _filler(j, filler) + b"\n"
        for j in range(BLOCK_LINES)
    )


def render_block(template: bytes, block: int) -> bytearray:
    """Lines ``1000 * block`` to ``1000 * block + 999`` from a :func:`block_template`.

    Every line of a template has the same length, so each of the 7 placeholder digit
    columns is filled by one strided slice assignment (4x faster than ``bytes.replace``).
    """
    first = template.index(_PLACEHOLDER)
    stride = len(template) // BLOCK_LINES
    out = bytearray(template)
    digits = b"%0*d" % (_HIGH_DIGITS, block)
    if len(digits) > _HIGH_DIGITS:
        raise ValueError(f"SEQ past {SEQ_DIGITS} digits")
    for k in range(_HIGH_DIGITS):
        out[first + k :: stride] = digits[k : k + 1] * BLOCK_LINES
    return out


# Process figures from /proc ---------------------------------------------------------------


def proc_stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat from field 3 (state) on; index 11 is utime, 12 stime."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text.rsplit(")", 1)[1].split()


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(own utime+stime, reaped children's cutime+cstime) of ``pid``, in clock ticks."""
    fields = proc_stat_fields(pid)
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as a dict (values stripped)."""
    out: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def status_kib(status: dict[str, str], key: str) -> int | None:
    """A ``kB`` figure of /proc/PID/status (VmRSS, VmHWM) or None if absent."""
    value = status.get(key)
    return int(value.split()[0]) if value else None


def sched_runtime_ns(pid: int) -> int | None:
    """CPU time of every thread of ``pid`` in ns from /proc/PID/task/*/sched, if available.

    Finer than the 1/CLK_TCK resolution of /proc/PID/stat; needs a kernel with
    scheduler debug files, so callers fall back to :func:`cpu_ticks` on None.
    """
    total = 0.0
    try:
        threads = os.listdir(f"/proc/{pid}/task")
        for tid in threads:
            for line in Path(f"/proc/{pid}/task/{tid}/sched").read_text().splitlines():
                if line.startswith("se.sum_exec_runtime"):
                    total += float(line.split(":")[1])  # milliseconds
                    break
            else:
                return None
    except OSError:
        return None
    return round(total * 1e6)


# Reporting ---------------------------------------------------------------------------------


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    rows = [list(r) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]  # fmt: skip
    right = [i > 0 for i in range(len(headers))]

    def fmt(cells: Sequence[str]) -> str:
        return "| " + " | ".join(
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        ) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if r else (":" + "-" * (w + 1))
                          for w, r in zip(widths, right, strict=True)) + "|"  # fmt: skip
    return "\n".join([fmt(headers), rule, *(fmt(r) for r in rows)])


def fmt(value: object, spec: str) -> str:
    """``value`` formatted with ``spec``, or ``n/a`` when it was not measured."""
    return "n/a" if value is None else format(value, spec)
