"""The after graph on its own: closure, circles, waves and the stop's order."""

from __future__ import annotations

import pytest

from pipeplex.cast.order import after_first, circle, depths, stop_order

GRAPH = {"db": (), "cache": (), "api": ("db", "cache"), "web": ("api",), "job": ("db",)}


def test_after_first_gives_each_member_once_those_named_first() -> None:
    def after_of(name: str) -> tuple[str, ...]:
        return GRAPH.get(name, ("gone",) if name == "x" else ())

    assert list(after_first("web", after_of)) == ["api", "db", "cache"]
    assert list(after_first("db", after_of)) == []
    assert list(after_first("x", after_of)) == ["gone"]  # (given, not followed)


def test_a_circle_is_found_from_the_first_member_in_it() -> None:
    assert circle(GRAPH, GRAPH) is None
    looped = {"top": ("a",), "a": ("b",), "b": ("c",), "c": ("a",)}
    assert circle(looped, looped) == ["a", "b", "c", "a"]
    assert circle(["x"], {"x": ("x",)}) == ["x", "x"]


def test_depths_are_waves_and_a_circle_is_refused() -> None:
    assert depths(GRAPH) == {"db": 0, "cache": 0, "api": 1, "web": 2, "job": 1}
    with pytest.raises(ValueError, match="starts after itself"):
        depths({"a": ("b",), "b": ("a",)})


def test_the_stop_goes_through_the_waves_backwards() -> None:
    """And through each wave backwards: the member started last is signalled first."""
    waves = [["db", "cache"], ["api", "job"], ["web"]]
    assert stop_order(waves, GRAPH) == [["web"], ["job", "api"], ["cache", "db"]]


def test_a_member_added_later_stops_first_but_never_before_one_after_it() -> None:
    """A late member stops first; one that took the name of a member others start after
    waits for them (here: "db" came back later, and "api" starts after it)."""
    waves = [["cache"], ["api", "job"], ["web"], ["db"]]
    assert stop_order(waves, GRAPH) == [["web"], ["job", "api"], ["db", "cache"]]
    assert stop_order([["a"], ["b"]], {"a": (), "b": (), "late": ("a",)}) == [["b", "late"], ["a"]]
