"""pipeplex's limit on open descriptors: lifted for a big cast, given back to its children.

Each member costs pipeplex a few descriptors (its pipes or ptys, its pidfd, its input
pipe), so a cast of hundreds needs more than the usual soft limit of 1024: pipeplex lifts
its own soft limit, up to the hard one. Its children must not inherit that: a program using
``select()`` breaks on a descriptor past 1024 (systemd gives its services 1024 back for that
reason). A vfork child runs no code of ours to set it back, and setting it from here once
its program has begun comes too late (a shell has read it by then). So pipeplex spawns with
the limit it was given, put back for the moment of the spawn (:func:`as_given`), which the
child inherits. The spawn's own pipe then needs descriptor numbers below that limit, where a
big cast has taken them all: a few are held from the start, and freed for it.
"""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator

__all__ = ("as_given", "lift_for")

_SPARE_COUNT = 3
"""Numbers a spawn needs below the given limit: the pipe ``Popen`` reads the exec's outcome
from, and one more where it moves an end off 0-2."""

_given: tuple[int, int] | None = None
"""The limit pipeplex was given, once it lifted its own (None: it did not)."""
_lifted: tuple[int, int] | None = None
_spare: list[int] = []
"""Descriptors held at numbers below the given limit, closed while a spawn needs them."""


def lift_for(members: int, connections: int = 0) -> None:
    """Lift the soft limit, if need be, for a cast of ``members`` and up to ``connections``
    clients at once. Each member costs about six descriptors, each connection one."""
    global _given, _lifted
    needed = 64 + 8 * members + connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target <= soft:
        return
    if _given is None:
        _hold_spares(soft)
        if len(_spare) < _SPARE_COUNT:  # (the given limit is used up already: no spawn could
            _let_go_of_spares()        # have it: its children get the lifted one)
        else:
            _given = (soft, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    _lifted = (target, hard)


@contextlib.contextmanager
def as_given() -> Iterator[None]:
    """Around a spawn: the limit pipeplex was given, which the child inherits (nothing to
    do if pipeplex did not lift its own). Its spare numbers are free meanwhile."""
    if _given is None or _lifted is None:
        yield
        return
    soft = _given[0]
    _let_go_of_spares()
    resource.setrlimit(resource.RLIMIT_NOFILE, _given)
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, _lifted)
        _hold_spares(soft)


def _hold_spares(below: int) -> None:
    """Hold :data:`_SPARE_COUNT` descriptors numbered below ``below`` (the lowest free)."""
    while len(_spare) < _SPARE_COUNT:
        try:
            fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        if fd >= below:
            os.close(fd)
            return
        _spare.append(fd)


def _let_go_of_spares() -> None:
    while _spare:
        os.close(_spare.pop())
