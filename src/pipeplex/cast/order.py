"""The ``after`` graph: whom a member starts after, in which waves a cast starts, in which
order it stops. Functions of the graph alone (a name to the names it starts after), so the
loader, the cast and the engine walk it one way. Without recursion throughout: a chain of
``after`` may be longer than Python's stack is deep."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

__all__ = ("after_first", "circle", "depths", "stop_order")

Graph = Mapping[str, Sequence[str]]
"""Each member's name, in the cast's order, to the names of those it starts after."""


def after_first(name: str, after_of: Callable[[str], Sequence[str]]) -> Iterator[str]:
    """The members ``name`` starts after, directly or through others, each once, those it
    names first. ``after_of``: whom a member starts after (nobody, for a name it lacks).
    (A function, not a :data:`Graph`: the engine asks for each member as it starts, and a
    graph made for each would cost the square of the cast's size.)"""
    seen = {name}
    todo = list(reversed(after_of(name)))
    while todo:
        dep = todo.pop()
        if dep not in seen:
            seen.add(dep)
            yield dep
            todo.extend(reversed(after_of(dep)))


def circle(names: Iterable[str], graph: Graph) -> list[str] | None:
    """The first circle of members that wait for each other, found from ``names`` in order
    (``["a", "b", "a"]``), or None. Each member is walked once."""
    done: set[str] = set()
    for name in names:
        if name in done:
            continue
        chain = [name]
        on_chain = {name: 0}  # (its place in the chain)
        todo = [iter(graph.get(name, ()))]
        while todo:
            dep = next(todo[-1], None)
            if dep is None:
                del on_chain[chain[-1]]
                done.add(chain.pop())
                todo.pop()
            elif dep in on_chain:
                return [*chain[on_chain[dep]:], dep]
            elif dep not in done:
                on_chain[dep] = len(chain)
                chain.append(dep)
                todo.append(iter(graph.get(dep, ())))
    return None


def depths(graph: Graph) -> dict[str, int]:
    """Each member's wave: 0 for one that starts after nobody, else one more than the
    deepest it starts after.

    Raises:
        ValueError: members wait for each other in a circle (a loader says so first).
    """
    depth: dict[str, int] = {}
    for name in graph:
        if name in depth:
            continue
        chain = [(name, iter(graph[name]))]
        on_chain = {name}  # (the chain walked: two members may wait for one)
        while chain:
            current, deps = chain[-1]
            dep = next((d for d in deps if d not in depth), None)
            if dep is None:
                depth[current] = 1 + max((depth[d] for d in graph[current]), default=-1)
                on_chain.remove(current)
                chain.pop()
            elif dep in on_chain:
                raise ValueError(f"{dep} starts after itself, through its after")
            else:
                on_chain.add(dep)
                chain.append((dep, iter(graph[dep])))
    return depth


def stop_order(waves: Sequence[Sequence[str]], graph: Graph) -> list[list[str]]:
    """The members in groups, each stopped once those before it are: the start's ``waves``
    backwards, each group in the reverse of its start too; but never a member before one
    that starts after it (a member that took the name of one that ended takes its place
    for those that start after it). Members of ``graph`` in no wave, or in a circle, stop
    last."""
    base: dict[str, int] = {}
    for i, names in enumerate(reversed(waves)):
        for name in names:
            base.setdefault(name, i)
    # A member's rank: its base, or one more than that of any member that starts after it,
    # if higher; worked out from those nobody starts after, towards what they start after.
    after_it: dict[str, list[str]] = {name: [] for name in graph}
    for name, deps in graph.items():
        for dep in set(deps):
            if dep in after_it and dep != name:
                after_it[dep].append(name)
    waiting = {name: len(names) for name, names in after_it.items()}
    todo = [name for name, count in waiting.items() if count == 0]
    rank: dict[str, int] = {}
    while todo:
        name = todo.pop()
        rank[name] = max([base.get(name, 0)] + [rank[n] + 1 for n in after_it[name]])
        for dep in set(graph[name]):
            if dep in waiting and dep != name:
                waiting[dep] -= 1
                if waiting[dep] == 0:
                    todo.append(dep)
    last = max(rank.values(), default=0) + 1  # (for a member in a circle, never ranked)
    order: dict[int, list[str]] = {}
    # Within a group too, the reverse of the start: the last started first (then those
    # never started, as declared). All of a group are signalled at once, in this order.
    started = {name: i for i, name in enumerate(n for names in waves for n in names)}
    backwards = [*sorted((n for n in started if n in graph), key=started.__getitem__,
                         reverse=True), *(n for n in graph if n not in started)]
    for name in backwards:
        order.setdefault(rank.get(name, last), []).append(name)
    return [order[r] for r in sorted(order)]
