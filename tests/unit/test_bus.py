"""Bus: ordered fan-out to sinks, removal of broken sinks, back-pressure on sources."""

from __future__ import annotations

import pytest

from pipeplex._bus import Bus
from pipeplex._events import Event, InputSent, Note, Output


def note(text: str) -> Note:
    return Note(text, t=0.0)


class Recorder:
    """A sink that logs ``(label, event)`` into a shared list."""

    def __init__(self, label: str, log: list[tuple[str, Event]]) -> None:
        self.label = label
        self.log = log

    def __call__(self, event: Event) -> None:
        self.log.append((self.label, event))

    def seen(self) -> list[Event]:
        return [e for label, e in self.log if label == self.label]


def test_sinks_receive_events_in_order() -> None:
    """Each event reaches every sink, in subscription order, before the next event."""
    log: list[tuple[str, Event]] = []
    bus = Bus()
    bus.subscribe(Recorder("a", log))
    bus.subscribe(Recorder("b", log))
    e1, e2 = note("1"), Output("web", "stdout", b"x\n", t=0.0)
    bus.publish(e1)
    bus.publish(e2)
    assert log == [("a", e1), ("b", e1), ("a", e2), ("b", e2)]


def test_event_published_by_a_sink_is_delivered_after_the_current_one() -> None:
    """A sink publishing while handling an event does not reorder events for later sinks."""
    log: list[tuple[str, Event]] = []
    bus = Bus()
    first, echo = note("first"), note("echo")

    def announcer(event: Event) -> None:
        log.append(("a", event))
        if event is first:
            bus.publish(echo)

    bus.subscribe(announcer)
    later = Recorder("b", log)
    bus.subscribe(later)
    bus.publish(first)
    assert log == [("a", first), ("b", first), ("a", echo), ("b", echo)]
    assert later.seen() == [first, echo]


def test_unsubscribe_stops_delivery() -> None:
    """After unsubscribing a sink gets nothing more; unsubscribing twice is harmless."""
    log: list[tuple[str, Event]] = []
    bus = Bus()
    unsubscribe = bus.subscribe(Recorder("a", log))
    bus.publish(note("1"))
    unsubscribe()
    unsubscribe()
    bus.publish(note("2"))
    assert [e.text for _, e in log if isinstance(e, Note)] == ["1"]


def test_failing_sink_is_removed_and_reported() -> None:
    """A sink that raises is removed, and the other sinks get an error Note about it."""
    log: list[tuple[str, Event]] = []
    calls: list[Event] = []
    bus = Bus()

    def broken(event: Event) -> None:
        calls.append(event)
        raise RuntimeError("disk full")

    before, after = Recorder("before", log), Recorder("after", log)
    bus.subscribe(before)
    bus.subscribe(broken)
    bus.subscribe(after)
    e1, e2 = note("1"), note("2")
    bus.publish(e1)
    bus.publish(e2)
    assert calls == [e1]
    for sink in (before, after):
        seen = sink.seen()
        assert seen[0] is e1
        assert seen[2] is e2
        report = seen[1]
        assert isinstance(report, Note)
        assert report.level == "error"
        assert report.name is None
        assert "an output sink failed and was disabled" in report.text
        # (Which one: a program may have several.)
        assert ("test_failing_sink_is_removed_and_reported.<locals>.broken raised "
                "RuntimeError('disk full')") in report.text
    assert before.seen() == after.seen()


def test_bus_keeps_working_after_a_sink_fails_during_a_nested_publish() -> None:
    """A failure while delivering a queued event still leaves the bus usable."""
    log: list[tuple[str, Event]] = []
    bus = Bus()
    trigger = note("go")

    def publisher(event: Event) -> None:
        if event is trigger:
            bus.publish(note("nested"))

    def fails_on_nested(event: Event) -> None:
        if isinstance(event, Note) and event.text == "nested":
            raise ValueError("no")

    bus.subscribe(publisher)
    bus.subscribe(fails_on_nested)
    rec = Recorder("r", log)
    bus.subscribe(rec)
    bus.publish(trigger)
    bus.publish(note("after"))
    texts = [e.text for e in rec.seen() if isinstance(e, Note)]
    assert texts[:2] == ["go", "nested"]
    assert "failed and was disabled" in texts[2]
    assert texts[3] == "after"


def test_sink_unsubscribing_itself_does_not_starve_the_next_sink() -> None:
    """A one-shot sink that unsubscribes while handling an event does not hide it from others."""
    log: list[tuple[str, Event]] = []
    bus = Bus()

    def once(event: Event) -> None:
        log.append(("once", event))
        unsubscribe()

    unsubscribe = bus.subscribe(once)
    rec = Recorder("r", log)
    bus.subscribe(rec)
    event = note("1")
    bus.publish(event)
    assert rec.seen() == [event]


def test_a_sink_gets_only_the_kinds_it_asked_for_in_the_common_order() -> None:
    log: list[tuple[str, Event]] = []
    bus = Bus()
    bus.subscribe(Recorder("outputs", log), [Output])
    bus.subscribe(Recorder("all", log))
    line, message = Output("web", "stdout", b"x\n", t=0.0), note("hello")
    bus.publish(message)
    bus.publish(line)
    assert log == [("all", message), ("outputs", line), ("all", line)]


def test_wants_tells_whether_anyone_takes_a_kind() -> None:
    bus = Bus()
    assert not bus.wants(InputSent)
    bus.subscribe(Recorder("outputs", []), [Output])
    assert bus.wants(Output) and not bus.wants(InputSent)
    unsubscribe = bus.subscribe(Recorder("all", []))
    assert bus.wants(InputSent)
    unsubscribe()
    assert not bus.wants(InputSent)


def test_a_failing_kind_limited_sink_is_removed_from_every_route() -> None:
    bus = Bus()
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken, [Output, Note])
    bus.subscribe(seen.append, [Note])
    bus.publish(Output("web", "stdout", b"x\n", t=0.0))
    assert not bus.wants(Output)
    assert [type(e) for e in seen] == [Note]  # the report of the removal
    bus.publish(note("after"))
    assert len(seen) == 2


class FakeSource:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


class TestBackPressure:
    def test_pause_and_resume_reach_every_source_once(self) -> None:
        """Sources pause once for the first pauser and resume once the last one resumes."""
        bus = Bus()
        a, b = FakeSource(), FakeSource()
        bus.add_source(a)
        bus.add_source(b)
        assert not bus.paused
        bus.pause("terminal")
        bus.pause("transcript")
        bus.pause("terminal")
        assert bus.paused
        assert a.calls == b.calls == ["pause"]
        bus.resume("terminal")
        assert bus.paused
        assert a.calls == ["pause"]
        bus.resume("transcript")
        assert not bus.paused
        assert a.calls == b.calls == ["pause", "resume"]

    def test_resume_by_a_stranger_does_nothing(self) -> None:
        """Resuming for someone who never paused neither resumes nor errors."""
        bus = Bus()
        source = FakeSource()
        bus.add_source(source)
        bus.resume("nobody")
        bus.pause("terminal")
        bus.resume("nobody")
        assert source.calls == ["pause"]
        assert bus.paused

    def test_source_added_while_paused_is_paused(self) -> None:
        """A source added during a pause starts paused and resumes with the others."""
        bus = Bus()
        bus.pause("terminal")
        late = FakeSource()
        bus.add_source(late)
        assert late.calls == ["pause"]
        bus.resume("terminal")
        assert late.calls == ["pause", "resume"]

    def test_source_added_while_running_is_left_alone(self) -> None:
        """Adding a source to a running bus does not pause it."""
        bus = Bus()
        source = FakeSource()
        bus.add_source(source)
        assert source.calls == []

    def test_removed_source_is_not_resumed(self) -> None:
        """A source removed during a pause is not resumed later."""
        bus = Bus()
        source = FakeSource()
        bus.add_source(source)
        bus.pause("terminal")
        bus.remove_source(source)
        bus.remove_source(source)
        bus.resume("terminal")
        assert source.calls == ["pause"]


def test_a_subscription_that_could_never_be_called_is_refused() -> None:
    """subscribe(5), or kinds that are no event class, were taken without a word: the
    first event then disabled the sink, or it never got one."""
    bus = Bus()
    with pytest.raises(TypeError, match=r"^a sink is called with each event: 5 is not "
                                        r"callable$"):
        bus.subscribe(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^kinds are event classes \(Started, .*\), not "
                                        r"<class 'int'>$"):
        bus.subscribe(lambda event: None, [int])
