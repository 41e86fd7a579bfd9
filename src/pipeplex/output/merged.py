"""The merged stream kept in memory for reports: the API's ``transcript()``, a failed
test's, a failed scenario's JUnit ``system-out``; its last MiB or so."""

from __future__ import annotations

from collections import deque

from .._events import Event, InputSent, Output, Started
from .render import Renderer

__all__ = ("EVENT_COST", "TRANSCRIPT_KEEP", "MergedTranscript", "weight")

TRANSCRIPT_KEEP = 1024 * 1024
"""About the bytes of rendered text a transcript keeps: the newest."""

EVENT_COST = 100
"""About what an event takes in memory besides its data: a member writing a few bytes at a
time (a heartbeat) must not fill the transcript's bound with objects, not bytes."""


def weight(event: Event) -> int:
    """About what ``event`` takes in a transcript."""
    if isinstance(event, (Output, InputSent)):
        return EVENT_COST + len(event.data)
    if isinstance(event, Started):  # (a spawned script's text is in its argv)
        return EVENT_COST + sum(map(len, event.argv))
    return EVENT_COST


class MergedTranscript:
    """The merged stream, kept for reports: its last ``TRANSCRIPT_KEEP`` bytes or so.

    It keeps events and renders them only when asked, so a busy member costs an append.
    Subscribe it to the kinds in ``SHOWN`` and to ``InputSent``: what was sent shows as
    ``NAME > line``, beside what came back.
    """

    def __init__(self, renderer: Renderer) -> None:
        self._renderer = renderer
        self._events: deque[Event] = deque()
        self._size = 0
        self._trimmed = False

    def __call__(self, event: Event) -> None:
        self._events.append(event)
        # (output and input without a call: nearly every event, on a round trip's path)
        if type(event) is Output or type(event) is InputSent:
            self._size += EVENT_COST + len(event.data)
        else:
            self._size += weight(event)
        if self._size > 2 * TRANSCRIPT_KEEP:
            self._trim()

    def _trim(self) -> None:
        while self._size > 2 * TRANSCRIPT_KEEP and len(self._events) > 1:
            old = self._events.popleft()
            self._size -= weight(old)
            self._trimmed = True

    def text(self, since: float | None = None) -> str:
        render, render_input = self._renderer.render, self._renderer.render_input
        events = list(self._events)
        cut = self._trimmed
        if since is not None:
            cut = cut and (not events or events[0].t > since)
            events = [e for e in events if e.t >= since]
        rendered = b"".join(render_input(e) if type(e) is InputSent else render(e)
                            for e in events)
        if not cut and len(rendered) <= TRANSCRIPT_KEEP:
            return rendered.decode("utf-8", "replace")
        kept = rendered[-TRANSCRIPT_KEEP:]
        line_start = kept.find(b"\n") + 1  # (whole lines, and no character cut in two)
        if 0 < line_start < len(kept):
            kept = kept[line_start:]
        return ("[earlier lines not kept: the transcript keeps the last "
                f"{TRANSCRIPT_KEEP // 2**20} MiB]\n") + kept.decode("utf-8", "replace")
