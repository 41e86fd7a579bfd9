"""Which members failed on their own, and the exit status a run gets for it.

A member fails on its own when it ends with an error the stop did not cause, and that a
scenario's step did not expect (a ``wait_exit`` with the ``code`` it ended with). Failures
are kept in the order they happened, and the first decides the status. An error at the EOF a
stop gave a member is judged only once the stop is over, against the members that ended
in the stop before it (:meth:`Verdict.judge_at_eof`).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

__all__ = ("MAX_FAILURES", "Failure", "Verdict")

MAX_FAILURES = 1000
"""Failures kept (the earliest) toward the exit status and a scenario's report."""

SEEN_TOGETHER = 0.01
"""Seconds within which two exits may be seen in either order (one pass of a busy loop):
more, and a member ending well an instant after another's failure would excuse it."""


@dataclass(frozen=True, slots=True)
class Failure:
    """Why the run will exit non-zero: the first member that failed on its own."""

    name: str
    status: int
    reason: str
    at: float
    """When it failed (``time.monotonic()``): the failures are kept in that order."""
    step: bool = False
    """A scenario's step failed (``name``: the member it was about, or "steps"), not the
    member itself."""


class Verdict:
    """The failures of a run so far, and what is still to be judged once its stop is over."""

    def __init__(self) -> None:
        self.failures: list[Failure] = []
        self._failed_at_eof: list[Failure] = []
        """Members that ended with an error at the EOF a stop gave them, before any signal."""
        self._ended_in_stop: list[tuple[str, float]] = []
        """Members that ended once the cast began to stop, and when."""
        self._expected: list[tuple[str, frozenset[float]]] = []
        """Exits a step expected: the member, and the times its failure would be said at."""

    def record(self, name: str, status: int, reason: str, at: float | None = None, *,
               step: bool = False) -> None:
        """Count a failure toward the exit status (the first one decides it); ``at``: when
        it happened, if that was before now; ``step``: a scenario's step failed."""
        failure = Failure(name, status, reason, time.monotonic() if at is None else at, step)
        if self._is_expected(failure):
            return
        bisect.insort(self.failures, failure, key=lambda f: f.at)
        if len(self.failures) > MAX_FAILURES:
            self.failures.pop()  # (the latest: the first ones decide, and a member that
            # fails again and again with on_exit = "ignore" must not grow the list for ever)

    def expected(self, name: str, at: Collection[float]) -> None:
        """The exit of ``name`` said to be ``at`` (one of these times) was as a step expected:
        it is no failure, whether it was counted already or is yet to be."""
        self._expected.append((name, frozenset(at)))
        self.failures = [f for f in self.failures if not self._is_expected(f)]

    def _is_expected(self, failure: Failure) -> bool:
        return any(failure.name == name and failure.at in at for name, at in self._expected)

    def ended_in_stop(self, name: str, at: float) -> None:
        self._ended_in_stop.append((name, at))

    def failed_at_eof(self, failure: Failure) -> None:
        """``failure`` came at the EOF a stop gave its member: judged once the stop is over."""
        self._failed_at_eof.append(failure)

    def judge_at_eof(self, waves: Sequence[Sequence[str]]) -> None:
        """An error at the EOF a stop gave a member is its own failure, unless a member that
        started no later than it (by the start's ``waves``) ended in the stop before it:
        members get their EOF together, and a client whose server ended at its EOF then
        fails because of the stop. One that started after it does not excuse it: a server
        that crashes as its clients leave at the stop has a bug of its own. "Before" with a
        margin: two exits seen in one pass of the loop are seen in any order.

        A member that failed at its EOF too excuses only once its own failure counts: two
        that fail at the EOF together do not excuse each other, whichever was seen first.
        So failures are judged wave by wave (a later wave never excuses an earlier one),
        and within a wave in the order they ended: the earlier one counts, and excuses the
        later one."""
        wave = {name: i for i, names in enumerate(waves) for name in names}
        # (the last wave a name is in: a member added under an ended one's name is that)
        failed = {(f.name, f.at) for f in self._failed_at_eof}
        counted: set[tuple[str, float]] = set()
        for failure in sorted(self._failed_at_eof, key=lambda f: (wave.get(f.name, 0), f.at)):
            mine = wave.get(failure.name, 0)
            if not any(name != failure.name and at < failure.at + SEEN_TOGETHER
                       and wave.get(name, 0) <= mine
                       and ((name, at) not in failed or (name, at) in counted)
                       for name, at in self._ended_in_stop):
                self.record(failure.name, failure.status, failure.reason, failure.at)
                counted.add((failure.name, failure.at))
        self._failed_at_eof.clear()

    def status(self, interrupted_by: int | None) -> int:
        """0 when every member that ended on its own succeeded; else the first failure's
        (128 + N for a run stopped by signal N that nothing failed in)."""
        if self.failures:
            return self.failures[0].status
        if interrupted_by is not None:
            return 128 + interrupted_by
        return 0
