"""Whose doing a member's end was once a stop took its run over: the stop's, a person's, or
its own.

An end the stop caused says ``stopped`` and is no failure; one a person's signal caused,
or one the program came to before the stop reached it (a server that crashed as a
scenario's last step matched), is the member's own, and is judged so. Telling them apart
takes what the stop and a person sent, in which order, and a look at the process as the
stop begins (exited, its exit not read yet; on its way out; a signal still pending).
Apart from ``process.py`` so that the life of the process reads on its own: the process
tells it each step (:meth:`StopVerdict.new_run`, :meth:`~StopVerdict.asked`,
:meth:`~StopVerdict.begin`, :meth:`~StopVerdict.signalling`) and reads its verdict; it asks
of the process only what :class:`VerdictOwner` says.
"""

from __future__ import annotations

from typing import Protocol

from ._proc import PF_EXITING, child_flags, signal_pending

__all__ = ("StopVerdict", "VerdictOwner")


class VerdictOwner(Protocol):
    """What the verdict asks of the process: its pid, its exit, and whether it is over."""

    @property
    def pid(self) -> int | None: ...
    @property
    def returncode(self) -> int | None: ...

    def _exited_unread(self) -> bool:
        """Its process has exited, its pidfd not read yet."""
        ...

    def _exiting(self) -> bool:
        """Its process is on its way out, not a zombie yet."""
        ...


class StopVerdict:
    """What the stop and a person did to one run of a member, and whose its end was."""

    def __init__(self, process: VerdictOwner) -> None:
        self._process = process
        self.stopping = False
        """True once pipeplex decided to stop this member (its exit is then expected)."""
        self.signalled_to_stop = False
        """The stop signalled it (SIGTERM, SIGKILL) before it exited: its exit is the stop's
        doing. One that ends at the EOF a stop gave it, before any signal, ended on its own."""
        self.signals_asked: set[int] = set()
        """Signals a person sent this run (:meth:`asked`): one of them that ends it, even as
        a stop begins, ended it on its own."""
        self.exited_before_stop = False
        """Its process had already exited when the stop took this run over (:meth:`begin`),
        its exit not read yet: it ended on its own, before the stop, whatever came after."""

    def new_run(self) -> None:
        """A new run started: nothing done to it yet."""
        self.stopping = False
        self.signalled_to_stop = False
        self.exited_before_stop = False
        self.signals_asked.clear()

    def asked(self, sig: int) -> None:
        """A person sends ``sig`` (the console, ``pipeplex signal``, the API)."""
        if self._process.returncode is None:
            self.signals_asked.add(sig)

    def signalling(self, sig: int) -> None:
        """The stop sends ``sig``: an exit from now on is the stop's doing, and a death by
        ``sig`` the stop's, though a person sent it before (the member lived on) — unless
        the person's is still on its way (pending, the member stopped or not yet run since),
        or the member is exiting or has exited, its exit not yet read: then the person's
        signal, an instant before the stop, is what ends it (see :attr:`ended_by_a_person`)."""
        process = self._process
        if process.returncode is None:
            self.signalled_to_stop = True
            if (sig in self.signals_asked and not process._exited_unread()
                    and not _on_its_way(process.pid, sig)):
                self.signals_asked.discard(sig)

    def asked_by_command(self) -> None:
        """The stop runs the member's ``stop_cmd``, in place of its first signal: an exit
        from now on is the stop's doing, as after that signal."""
        if self._process.returncode is None:
            self.signalled_to_stop = True

    def begin(self) -> None:
        """The stop takes this run over (its exit is then expected). A process that has
        already exited, its exit not read yet, ended before the stop (a server that crashed
        as a scenario's last step matched, its client's exit seen first): so it is judged
        (:attr:`exited_before_stop`), not as an end the stop caused. Only the stop's first
        touch looks: by the next (its SIGTERM after the EOF), the exit may be the stop's. A
        process on its way out (Linux's PF_EXITING: it has called ``exit``, and becomes a
        zombie a millisecond or so later) has ended before the stop too."""
        if not self.stopping:
            self.exited_before_stop = self._process._exited_unread() or self._process._exiting()
        self.stopping = True

    @property
    def ended_by_the_stop(self) -> bool:
        """Its end was the stop's doing: a signal of the stop's, not a person's, and not an
        end it had come to before the stop reached it (its exit then says ``stopped``)."""
        return (self.stopping and self.signalled_to_stop and not self.ended_by_a_person
                and not self.exited_before_stop)

    @property
    def ended_by_a_person(self) -> bool:
        """Its exit was by a signal a person sent (:meth:`asked`), which it did not live
        through until the stop sent the same: its own end, not the stop's."""
        returncode = self._process.returncode
        return returncode is not None and returncode < 0 and -returncode in self.signals_asked


def _on_its_way(pid: int | None, sig: int) -> bool:
    """Whether ``sig`` was sent to our child ``pid`` and will end it: it waits to be taken
    (pending: the child is stopped, or has not run since), or the child is exiting."""
    if pid is None:
        return False
    # Pending first, then exiting: a child that takes the signal between the two looks is
    # exiting by the second (the other order missed it: not exiting yet, no longer pending).
    pending = signal_pending(pid, sig)
    flags = child_flags(pid)  # (None: gone, or no child of ours)
    return flags is not None and (pending or bool(flags & PF_EXITING))
