"""Events as attach streams them: every field comes back, bytes exact."""

from __future__ import annotations

from pipeplex import Exited, InputSent, Note, Output, Ready, Started
from pipeplex._events_wire import decode_event, encode_event


def test_events_come_back_as_they_were_sent() -> None:
    events = [
        Output("py", "stderr", b">>> ", True, t=1.5, new_line=True),
        Output("web", "stdout", b"caf\xc3\xa9 \xff\n", t=2.0),
        Note("hello", "web", "warning", t=3.0),
        Started("web", 42, ("python3", "-m", "http.server"), t=4.0),
        Exited("web", -15, True, 1.25, t=5.0),
        Exited("db", -2, True, 0.5, t=5.5, stop_signal=2),
        Ready("web", (("port", "8080"),), t=6.0),
    ]
    assert [decode_event(encode_event(e) or {}) for e in events] == events
    assert "new_line" not in (encode_event(events[1]) or {})  # (only where it is true)
    assert "stop_signal" not in (encode_event(events[4]) or {})  # (only when not SIGTERM)
    assert encode_event(InputSent("web", b"hi\n", t=7.0)) is not None
